/* flexo-coordinator: the consortium side — anchor training and release,
 * the contribution and inference service, assembly, export, ledger. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    {"anchor", "train the anchor and make its public router rows", cmd_anchor},
    {"assemble", "merge expert files into one mixture-of-experts model", cmd_assemble},
    {"eval", "held-out bits/byte of models per domain, with opt-outs", cmd_eval},
    {"release", "publish a signed anchor release", cmd_release},
    {"serve", "run the contribution endpoint (uploads, downloads, admission)", cmd_serve},
    {"ledger", "ledger status, checkpoints, receipts, export", cmd_ledger},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-coordinator") != 0)
		return 2;
	return fx_cli_dispatch("flexo-coordinator",
	                       "Coordinator of a flexo consortium.", argc, argv,
	                       commands, (int)(sizeof(commands) / sizeof(*commands)),
	                       &log);
}
