/* "name = value" config files merged into getopt argument vectors
 * (optfile.h). The file is read bounded and parsed in place: names and
 * values point into one buffer the fx_optargs owns. */
#include "flexo/optfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/fsutil.h"

#define NAME_SLOT (FX_OPTFILE_NAME_MAX + 3) /* "--" + name + NUL */

void fx_optargs_release(fx_optargs *a)
{
	free(a->argv);
	free(a->buf);
	free(a->names);
	a->argv = NULL;
	a->buf = NULL;
	a->names = NULL;
	a->argc = 0;
}

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > FX_OPTFILE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
			return 0;
	return 1;
}

fx_err fx_optfile_merge(int argc, char **argv, fx_optargs *out, fx_diag *diag)
{
	const char *path = NULL;
	uint8_t *file = NULL;
	size_t len = 0, n_extra = 0, line_no = 0, cap;
	char **v = NULL, *buf = NULL, *names = NULL, *p, *line;
	size_t n_names = 0;
	int skip = -1, k = 0;
	fx_err err = FX_OK;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			skip = i;
			break;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
			skip = i;
			break;
		}
	}
	if (path != NULL && (err = fx_read_file(path, FX_OPTFILE_MAX, &file,
	                                        &len, diag)) != FX_OK) {
		fx_diag_prefix(diag, "config");
		return err;
	}
	buf = (char *)file; /* NUL-terminated by fx_read_file */
	cap = (size_t)argc + 2 * FX_OPTFILE_MAX_ARGS + 1;
	if ((v = calloc(cap, sizeof(*v))) == NULL ||
	    (names = malloc((size_t)FX_OPTFILE_MAX_ARGS * NAME_SLOT)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "config arguments");
		goto out;
	}
	v[k++] = argv[0];
	for (p = buf; p != NULL && *p != '\0';) {
		char *nl = strchr(p, '\n'), *eq, *name, *val = NULL;
		if (nl)
			*nl = '\0';
		line = p;
		p = nl ? nl + 1 : NULL;
		line_no++;
		if ((eq = strchr(line, '#')) != NULL)
			*eq = '\0';
		line = trim(line);
		if (*line == '\0')
			continue;
		if ((eq = strchr(line, '=')) != NULL) {
			*eq = '\0';
			val = trim(eq + 1);
		}
		name = trim(line);
		if (!name_ok(name) || (val != NULL && *val == '\0')) {
			err = fx_diag_set(
			    diag, FX_EFORMAT,
			    "%s line %zu: want 'name = value' with a "
			    "name of a-z, 0-9 and '-'",
			    path, line_no);
			goto out;
		}
		if (n_names >= FX_OPTFILE_MAX_ARGS) {
			err = fx_diag_set(diag, FX_ETOOBIG,
			                  "%s: more than %d options", path,
			                  FX_OPTFILE_MAX_ARGS);
			goto out;
		}
		{
			char *dst = names + n_names++ * NAME_SLOT;
			snprintf(dst, NAME_SLOT, "--%s", name);
			name = dst;
		}
		v[k++] = name;
		n_extra++;
		if (val != NULL) {
			v[k++] = val;
			n_extra++;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (i == skip) {
			if (strcmp(argv[i], "--config") == 0)
				i++;
			continue;
		}
		v[k++] = argv[i];
	}
	v[k] = NULL;
	out->argc = k;
	out->argv = v;
	out->buf = buf;
	out->names = names;
	return FX_OK;
out:
	free(v);
	free(buf);
	free(names);
	return err;
}
