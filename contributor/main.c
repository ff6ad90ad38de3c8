/* flexo-contributor: the data owner's agent — verify the anchor, train an
 * expert on local text, submit it, withdraw it. It only ever dials out. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    {"train", "train an expert on local text from the anchor", cmd_train},
    {"fetch", "download the anchor release from the coordinator", cmd_fetch},
    {"submit", "sign and upload an expert, wait for the verdict", cmd_submit},
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
