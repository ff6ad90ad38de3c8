/* Subcommand dispatch shared by the flexo binaries: a table of named
 * commands, `--help` for the program and for each command, and global
 * options (--log-level) handled once. Nested commands ("anchor train") are
 * a command whose run function dispatches again with its own table. */
#ifndef FLEXO_CLI_H
#define FLEXO_CLI_H

#include <stdint.h>

#include "flexo/log.h"

/* A command's entry point: argv[0] is the command name; returns the process
 * exit status (0 success, 1 failure, 2 usage error). */
typedef int (*fx_command_fn)(int argc, char **argv, const fx_logger *log);

typedef struct fx_command {
	const char *name;
	const char *summary; /* one line for the program's --help */
	fx_command_fn run;
} fx_command;

/* Runs the command named by argv[1] of `n` in `table`. Handles `--help`,
 * `-h`, `help`, and an unknown or missing command (usage, status 2).
 * `prog` is the name shown in usage ("flexo-coordinator anchor"). */
int fx_cli_dispatch(const char *prog, const char *about, int argc, char **argv,
                    const fx_command *table, int n, const fx_logger *log);

/* For main(): strips a leading `--log-level LEVEL` / `-q` / `-v` from argv
 * and initialises *log accordingly. Returns 0, or 2 on a bad level. */
int fx_cli_init_logger(int *argc, char ***argv, fx_logger *log,
                       const char *tag);

/* Option values: parse s as an integer in [min, max] / a finite number in
 * [min, max]; on failure print "<cmd>: <flag> wants ..." to stderr and
 * return -1 (the caller exits with status 2). */
int fx_cli_int(const char *cmd, const char *flag, const char *s, int64_t min,
               int64_t max, int64_t *out);
int fx_cli_num(const char *cmd, const char *flag, const char *s, double min,
               double max, double *out);

/* True if argv[1..] contains --help or -h (for commands' own help). */
int fx_cli_wants_help(int argc, char **argv);

#endif
