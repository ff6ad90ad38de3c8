/* flexo-contributor: the data owner's agent — verify the anchor, train an
 * expert on local text, submit it, withdraw it. It only ever dials out. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    {"fetch", "fetch and verify a signed anchor release", cmd_fetch},
    {"train", "train an expert on local text from the anchor", cmd_train},
    {"manifest", "sign the contribution manifest of an expert file",
     cmd_manifest},
    {"download", "download the anchor release from the coordinator", cmd_download},
    {"submit", "sign and upload an expert, wait for the verdict", cmd_submit},
    {"withdraw", "withdraw an accepted contribution", cmd_withdraw},
    {"status", "what this contributor submitted and the verdicts", cmd_status},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-contributor") != 0)
		return 2;
	return fx_cli_dispatch("flexo-contributor",
	                       "Data owner's agent of a flexo consortium.", argc,
	                       argv, commands,
	                       (int)(sizeof(commands) / sizeof(*commands)),
	                       &log);
}
