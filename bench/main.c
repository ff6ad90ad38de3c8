/* flexo-bench: the benchmarks of flexo. Each subcommand measures one thing
 * on this machine and ends with one `name: value` line. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    /* {"name", "one-line summary", cmd_name}, — one line per command */
    {"train", "training-step throughput vs. this machine's sgemm", cmd_train},
    {"flexmix", "the FlexOLMo table: experts, merge, opt-out, baselines", cmd_flexmix},
    {"upload", "a contribution end to end vs loopback TCP; coordinator RSS", cmd_upload},
    {"audit", "ledger append, proofs and audit vs. Ed25519 verify rate", cmd_audit},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-bench") != 0)
		return 2;
	return fx_cli_dispatch(
	    "flexo-bench", "Benchmarks of flexo.", argc, argv, commands,
	    (int)(sizeof(commands) / sizeof(*commands)), &log);
}
