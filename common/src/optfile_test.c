/* Tests of config files merged into argument vectors: order (file first,
 * command line wins), switches, comments, --config=FILE, bad lines named by
 * line number. */
#include "flexo/optfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flexo/fsutil.h"
#include "fx_test.h"

static char path[64];

static void test_merge(void)
{
	const char *text = "# coordinator\nlisten = tcp://127.0.0.1:1 \n\n"
	                   "quota=100 # bytes\nverbose\n";
	char *argv[] = {"serve", "--quota", "5", "--config", path, "--x", NULL};
	fx_optargs a = {0};
	fx_diag d = {{0}};

	CHECK_OK(fx_write_file_atomic(path, text, strlen(text), 0600, NULL));
	CHECK_OK(fx_optfile_merge(6, argv, &a, &d));
	CHECK(a.argc == 9);
	if (a.argc == 9) {
		const char *want[] = {
		    "serve",   "--listen", "tcp://127.0.0.1:1",
		    "--quota", "100",      "--verbose",
		    "--quota", "5",        "--x"};
		for (int i = 0; i < 9; i++)
			CHECK_MSG(strcmp(a.argv[i], want[i]) == 0, "%d: %s", i,
			          a.argv[i]);
		CHECK(a.argv[9] == NULL);
	}
	fx_optargs_release(&a);
}

static void test_no_config_and_equals_form(void)
{
	char opt[80];
	char *argv[] = {"submit", "--a", NULL, NULL};
	fx_optargs a = {0};

	CHECK_OK(fx_optfile_merge(2, argv, &a, NULL));
	CHECK(a.argc == 2 && strcmp(a.argv[1], "--a") == 0);
	fx_optargs_release(&a);
	snprintf(opt, sizeof(opt), "--config=%s", path);
	argv[1] = opt;
	CHECK_OK(fx_optfile_merge(2, argv, &a, NULL));
	CHECK(a.argc == 6);
	fx_optargs_release(&a);
}

static void test_bad_lines(void)
{
	const char *bad[] = {"ok = 1\nBad = 2\n", "x =\n", "= 3\n"};
	char *argv[] = {"serve", "--config", path, NULL};
	fx_optargs a = {0};
	fx_diag d = {{0}};

	for (size_t i = 0; i < 3; i++) {
		CHECK_OK(fx_write_file_atomic(path, bad[i], strlen(bad[i]),
		                              0600, NULL));
		CHECK(fx_optfile_merge(3, argv, &a, &d) == FX_EFORMAT);
		CHECK(strstr(d.msg, i == 0 ? "line 2" : "line 1") != NULL);
	}
	argv[2] = "/nonexistent/flexo.conf";
	CHECK(fx_optfile_merge(3, argv, &a, &d) == FX_ENOTFOUND);
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/fx-optfile-%d.conf", (int)getpid());
	RUN(test_merge);
	RUN(test_no_config_and_equals_form);
	RUN(test_bad_lines);
	unlink(path);
	return FX_TEST_REPORT();
}
