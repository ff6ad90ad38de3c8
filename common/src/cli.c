/* Subcommand dispatch and the global logging flags of every flexo binary. */
#include "flexo/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out, const char *prog, const char *about,
                  const fx_command *table, int n)
{
	fprintf(out, "usage: %s [--log-level LEVEL] <command> [options]\n\n%s\n\n"
	             "commands:\n",
	        prog, about);
	for (int i = 0; i < n; i++)
		fprintf(out, "  %-12s %s\n", table[i].name, table[i].summary);
	fprintf(out, "\nRun '%s <command> --help' for a command's options.\n",
	        prog);
}

int fx_cli_dispatch(const char *prog, const char *about, int argc, char **argv,
                    const fx_command *table, int n, const fx_logger *log)
{
	const char *name;

	if (argc < 2) {
		usage(stderr, prog, about, table, n);
		return 2;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		usage(stdout, prog, about, table, n);
		return 0;
	}
	for (int i = 0; i < n; i++)
		if (strcmp(name, table[i].name) == 0)
			return table[i].run(argc - 1, argv + 1, log);
	fprintf(stderr, "%s: unknown command '%s'\n\n", prog, name);
	usage(stderr, prog, about, table, n);
	return 2;
}

int fx_cli_init_logger(int *argc, char ***argv, fx_logger *log,
                       const char *tag)
{
	fx_log_level level = FX_INFO;
	char **v = *argv;
	int c = *argc;

	while (c > 1) {
		if (strcmp(v[1], "-q") == 0) {
			level = FX_WARN;
		} else if (strcmp(v[1], "-v") == 0) {
			level = FX_DEBUG;
		} else if (strcmp(v[1], "--log-level") == 0 && c > 2) {
			if (fx_log_level_parse(v[2], &level) != 0) {
				fprintf(stderr, "%s: unknown log level '%s' "
				        "(debug, info, warn, error, quiet)\n",
				        tag, v[2]);
				return 2;
			}
			v[2] = v[0];
			v++;
			c--;
		} else {
			break;
		}
		v[1] = v[0];
		v++;
		c--;
	}
	*argc = c;
	*argv = v;
	fx_logger_init(log, level, tag);
	return 0;
}

int fx_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

int fx_cli_int(const char *cmd, const char *flag, const char *s, int64_t min,
               int64_t max, int64_t *out)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "%s: %s wants an integer in [%lld, %lld], not "
		                "'%s'\n",
		        cmd, flag, (long long)min, (long long)max, s);
		return -1;
	}
	*out = v;
	return 0;
}

int fx_cli_num(const char *cmd, const char *flag, const char *s, double min,
               double max, double *out)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min ||
	    v > max) {
		fprintf(stderr, "%s: %s wants a number in [%g, %g], not '%s'\n",
		        cmd, flag, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}
