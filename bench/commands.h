/* The subcommands of flexo-bench, one source file each (cmd_<name>.c),
 * listed in main.c's table. */
#ifndef FLEXO_BENCH_COMMANDS_H
#define FLEXO_BENCH_COMMANDS_H

#include "flexo/log.h"

int cmd_train(int argc, char **argv, const fx_logger *log);
int cmd_flexmix(int argc, char **argv, const fx_logger *log);
int cmd_upload(int argc, char **argv, const fx_logger *log);
int cmd_audit(int argc, char **argv, const fx_logger *log);

#endif
