/* The subcommands of flexo-keys, listed in main.c's table. */
#ifndef FLEXO_KEYS_COMMANDS_H
#define FLEXO_KEYS_COMMANDS_H

#include "flexo/log.h"

int cmd_keygen(int argc, char **argv, const fx_logger *log);
int cmd_pubkey(int argc, char **argv, const fx_logger *log);
int cmd_fingerprint(int argc, char **argv, const fx_logger *log);
int cmd_roster(int argc, char **argv, const fx_logger *log);

#endif
