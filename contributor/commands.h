/* The subcommands of flexo-contributor, one source file each
 * (cmd_<name>.c), listed in main.c's table. */
#ifndef FLEXO_CONTRIBUTOR_COMMANDS_H
#define FLEXO_CONTRIBUTOR_COMMANDS_H

#include "flexo/log.h"

int cmd_fetch(int argc, char **argv, const fx_logger *log);
int cmd_train(int argc, char **argv, const fx_logger *log);
int cmd_manifest(int argc, char **argv, const fx_logger *log);
int cmd_download(int argc, char **argv, const fx_logger *log);
int cmd_submit(int argc, char **argv, const fx_logger *log);
int cmd_withdraw(int argc, char **argv, const fx_logger *log);
int cmd_status(int argc, char **argv, const fx_logger *log);

#endif
