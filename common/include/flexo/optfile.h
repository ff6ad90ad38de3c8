/* Config files for commands: lines of "name = value" (or a bare "name" for
 * a switch), '#' comments and blank lines, turned into "--name value"
 * arguments placed before the command line's own, so that a flag given on
 * the command line wins (getopt keeps the last). One format for every
 * command's --config. */
#ifndef FLEXO_OPTFILE_H
#define FLEXO_OPTFILE_H

#include "flexo/err.h"

#define FX_OPTFILE_MAX      (64u << 10) /* bytes of a config file */
#define FX_OPTFILE_MAX_ARGS 512         /* arguments it may add */
#define FX_OPTFILE_NAME_MAX 64          /* bytes of an option name */

/* A merged argument vector. argv[0..argc) points into buf and the original
 * argv; argv[argc] is NULL. */
typedef struct fx_optargs {
	int argc;
	char **argv;
	char *buf;   /* the file's text (values point into it) */
	char *names; /* "--name" strings */
} fx_optargs;

/* If argv holds "--config FILE" (or "--config=FILE"), reads FILE and builds
 * argv[0], the file's options, then argv[1..] without the --config pair.
 * Without --config, out is a copy of argv. Names must be [a-z0-9-]; a bad
 * line is FX_EFORMAT naming the file and line. Release with
 * fx_optargs_release. */
fx_err fx_optfile_merge(int argc, char **argv, fx_optargs *out, fx_diag *diag);
void fx_optargs_release(fx_optargs *a);

#endif
