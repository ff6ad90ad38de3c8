/* fsutil: atomic replacement leaves exactly the new file (never a temporary)
 * on success and on failure, reads honour their bound, mkdir -p nests. */
#include "flexo/fsutil.h"
#include "fx_test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* Number of directory entries other than . and .. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_write_read(void)
{
	char path[512], sub[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;
	fx_diag d;

	snprintf(sub, sizeof(sub), "%s/wr", tmpdir);
	CHECK_OK(fx_mkdir_p(sub, 0700, &d));
	snprintf(path, sizeof(path), "%s/file.txt", sub);
	CHECK_OK(fx_write_file_atomic(path, "hello", 5, 0640, &d));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
	CHECK_OK(fx_read_file(path, 5, &buf, &len, &d));
	CHECK(len == 5 && memcmp(buf, "hello", 5) == 0 && buf[5] == '\0');
	free(buf);
	buf = NULL;

	/* Replacing keeps one file, with the new contents. */
	CHECK_OK(fx_write_file_atomic(path, "bye", 3, 0600, &d));
	CHECK_OK(fx_read_file(path, 100, &buf, &len, &d));
	CHECK(len == 3 && memcmp(buf, "bye", 3) == 0);
	free(buf);
	buf = NULL;
	CHECK(count_entries(sub) == 1);

	/* Empty file. */
	CHECK_OK(fx_write_file_atomic(path, NULL, 0, 0600, &d));
	CHECK_OK(fx_read_file(path, 0, &buf, &len, &d));
	CHECK(len == 0 && buf != NULL && buf[0] == '\0');
	free(buf);
}

static void test_read_bounds(void)
{
	char path[512];
	uint8_t *buf = (uint8_t *)"untouched";
	size_t len = 77;
	fx_diag d;

	snprintf(path, sizeof(path), "%s/ten", tmpdir);
	CHECK_OK(fx_write_file_atomic(path, "0123456789", 10, 0600, &d));
	CHECK(fx_read_file(path, 9, &buf, &len, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "limit") != NULL);
	CHECK(len == 77); /* outputs written only on success */

	/* A device that never ends: the bound must stop the read loop. */
	CHECK(fx_read_file("/dev/zero", 100000, &buf, &len, &d) == FX_ETOOBIG);
	CHECK(len == 77);

	snprintf(path, sizeof(path), "%s/does-not-exist", tmpdir);
	CHECK(fx_read_file(path, 10, &buf, &len, &d) == FX_ENOTFOUND);
	CHECK(strstr(d.msg, "does-not-exist") != NULL);
	CHECK(fx_read_file(tmpdir, 10, &buf, &len, &d) == FX_EINVAL);
	CHECK(fx_read_file("", 10, &buf, &len, &d) == FX_EINVAL);
}

static void test_failures_leave_nothing(void)
{
	char path[512], sub[512];
	fx_atomic_file af;
	fx_diag d;

	/* Directory missing: the temporary file cannot even be created. */
	snprintf(path, sizeof(path), "%s/missing/x", tmpdir);
	CHECK(fx_write_file_atomic(path, "a", 1, 0600, &d) == FX_EIO);
	CHECK(strstr(d.msg, "missing/x") != NULL);

	/* Target is a directory: rename fails after the data is written; the
	 * temporary file must be gone afterwards. */
	snprintf(sub, sizeof(sub), "%s/fail", tmpdir);
	CHECK_OK(fx_mkdir_p(sub, 0700, &d));
	snprintf(path, sizeof(path), "%s/fail/target", tmpdir);
	CHECK_OK(fx_mkdir_p(path, 0700, &d));
	snprintf(path, sizeof(path), "%s/fail/target/inner", tmpdir);
	CHECK_OK(fx_mkdir_p(path, 0700, &d)); /* non-empty: rename refuses */
	snprintf(path, sizeof(path), "%s/fail/target", tmpdir);
	CHECK(fx_write_file_atomic(path, "abc", 3, 0600, &d) == FX_EIO);
	CHECK(strstr(d.msg, "renaming") != NULL);
	CHECK(count_entries(sub) == 1);

	/* Streaming writer abandoned mid-way. */
	snprintf(path, sizeof(path), "%s/fail/streamed", tmpdir);
	CHECK_OK(fx_atomic_open(&af, path, 0644, &d));
	CHECK_OK(fx_atomic_write(&af, "part", 4, &d));
	CHECK(af.written == 4);
	CHECK(count_entries(sub) == 2);
	fx_atomic_abort(&af);
	fx_atomic_abort(&af); /* idempotent */
	CHECK(count_entries(sub) == 1);
	CHECK(access(path, F_OK) != 0);

	/* Streaming writer committed. */
	CHECK_OK(fx_atomic_open(&af, path, 0644, &d));
	CHECK_OK(fx_atomic_write(&af, "one,", 4, &d));
	CHECK_OK(fx_atomic_write(&af, "two", 3, &d));
	CHECK_OK(fx_atomic_commit(&af, &d));
	fx_atomic_abort(&af); /* no-op after commit: must not unlink */
	CHECK(access(path, F_OK) == 0);
	CHECK(count_entries(sub) == 2);
	CHECK(fx_atomic_write(&af, "x", 1, &d) == FX_ESTATE);
}

static void test_mkdir_p(void)
{
	char path[512];
	fx_diag d;
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b//c/", tmpdir);
	CHECK_OK(fx_mkdir_p(path, 0755, &d));
	snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_OK(fx_mkdir_p(path, 0755, &d)); /* already there */
	snprintf(path, sizeof(path), "%s/a/f", tmpdir);
	CHECK_OK(fx_write_file_atomic(path, "x", 1, 0600, &d));
	snprintf(path, sizeof(path), "%s/a/f/g", tmpdir);
	CHECK(fx_mkdir_p(path, 0755, &d) == FX_EEXIST);
	CHECK(strstr(d.msg, "not a directory") != NULL);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char cmd[600];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "%s/fsutil_test.XXXXXX",
	         base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_write_read);
	RUN(test_read_bounds);
	RUN(test_failures_leave_nothing);
	RUN(test_mkdir_p);
	rc = FX_TEST_REPORT();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return rc;
}
