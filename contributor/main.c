/* flexo-contributor: the data owner's side — fetch and verify the anchor,
 * train an expert on local text, submit it, withdraw it, check receipts.
 * Only dials out; opens no port. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    {"fetch", "fetch and verify a signed anchor release", cmd_fetch},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-contributor") != 0)
		return 2;
	return fx_cli_dispatch(
	    "flexo-contributor", "Data owner's side of a flexo consortium.",
	    argc, argv, commands, (int)(sizeof(commands) / sizeof(*commands)),
	    &log);
}
