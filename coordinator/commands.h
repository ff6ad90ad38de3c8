/* The subcommands of flexo-coordinator, one source file each
 * (cmd_<name>.c), listed in main.c's table. */
#ifndef FLEXO_COORDINATOR_COMMANDS_H
#define FLEXO_COORDINATOR_COMMANDS_H

#include "flexo/log.h"

int cmd_anchor(int argc, char **argv, const fx_logger *log);
int cmd_assemble(int argc, char **argv, const fx_logger *log);
int cmd_eval(int argc, char **argv, const fx_logger *log);
int cmd_release(int argc, char **argv, const fx_logger *log);
int cmd_serve(int argc, char **argv, const fx_logger *log);
int cmd_ledger(int argc, char **argv, const fx_logger *log);

#endif
