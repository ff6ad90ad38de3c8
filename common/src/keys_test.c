/* Secret key files: clear and sealed round trips, wrong or missing
 * passphrase, over-permissive mode, corruption; public key files and
 * passphrase sources. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flexo/keys.h"
#include "fx_test.h"

static char dir[] = "/tmp/fx_keys_testXXXXXX";

static const char *path_in(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void test_clear_roundtrip(void)
{
	fx_keypair a, b;
	uint8_t pk[32];
	struct stat st;
	fx_diag d;
	char path[256];

	fx_keypair_init(&a);
	fx_keypair_init(&b);
	snprintf(path, sizeof(path), "%s", path_in("clear.key"));
	CHECK_OK(fx_keypair_generate(&a, &d));
	CHECK_OK(fx_seckey_save(&a, path, NULL, 0, FX_KDF_INTERACTIVE, &d));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK_OK(fx_seckey_load(&b, path, NULL, 0, &d));
	CHECK(memcmp(a.pk, b.pk, 32) == 0 && memcmp(a.sk, b.sk, 64) == 0);
	CHECK(memcmp(a.id, b.id, 8) == 0);
	CHECK_OK(fx_seckey_public(path, pk, &d));
	CHECK(memcmp(pk, a.pk, 32) == 0);

	/* Group- or world-readable: refused, naming the mode. */
	CHECK(chmod(path, 0644) == 0);
	CHECK(fx_seckey_load(&b, path, NULL, 0, &d) == FX_EPERM);
	CHECK_MSG(strstr(d.msg, "0644") != NULL, "%s", d.msg);
	CHECK(chmod(path, 0640) == 0);
	CHECK(fx_seckey_public(path, pk, &d) == FX_EPERM);
	CHECK_MSG(strstr(d.msg, "0640") != NULL, "%s", d.msg);
	fx_keypair_release(&a);
	fx_keypair_release(&b);
}

static void test_sealed(void)
{
	static const uint8_t pass[] = "correct horse";
	static const uint8_t bad[] = "correct horsf";
	fx_keypair a, b;
	fx_diag d;
	char path[256];

	fx_keypair_init(&a);
	fx_keypair_init(&b);
	snprintf(path, sizeof(path), "%s", path_in("sealed.key"));
	CHECK_OK(fx_keypair_generate(&a, &d));
	CHECK_OK(fx_seckey_save(&a, path, pass, sizeof(pass) - 1,
	                        FX_KDF_INTERACTIVE, &d));
	CHECK_OK(fx_seckey_load(&b, path, pass, sizeof(pass) - 1, &d));
	CHECK(memcmp(a.sk, b.sk, 64) == 0);
	fx_keypair_release(&b);
	CHECK(fx_seckey_load(&b, path, bad, sizeof(bad) - 1, &d) == FX_ECRYPTO);
	CHECK_MSG(strstr(d.msg, "wrong passphrase") != NULL, "%s", d.msg);
	CHECK(b.sk == NULL); /* output untouched on failure */
	CHECK(fx_seckey_load(&b, path, NULL, 0, &d) == FX_EINVAL);
	CHECK_MSG(strstr(d.msg, "passphrase") != NULL, "%s", d.msg);
	CHECK(fx_seckey_save(&a, path, pass, 0, FX_KDF_INTERACTIVE, &d) ==
	      FX_EINVAL);
	fx_keypair_release(&a);
}

static void test_corrupt(void)
{
	fx_keypair a, b;
	fx_diag d;
	char path[256];
	FILE *f;
	uint8_t buf[200];
	size_t n;

	fx_keypair_init(&a);
	fx_keypair_init(&b);
	snprintf(path, sizeof(path), "%s", path_in("corrupt.key"));
	CHECK_OK(fx_keypair_generate(&a, &d));
	CHECK_OK(fx_seckey_save(&a, path, NULL, 0, FX_KDF_INTERACTIVE, &d));
	f = fopen(path, "r+b");
	n = fread(buf, 1, sizeof(buf), f);
	CHECK(n == 72);
	/* Public key no longer matches the seed. */
	buf[8] ^= 1;
	rewind(f);
	fwrite(buf, 1, n, f);
	fclose(f);
	CHECK(fx_seckey_load(&b, path, NULL, 0, &d) == FX_EFORMAT);
	/* Truncated. */
	CHECK(truncate(path, 50) == 0);
	CHECK(fx_seckey_load(&b, path, NULL, 0, &d) == FX_EFORMAT);
	/* Not a key at all. */
	f = fopen(path, "wb");
	fputs("hello", f);
	fclose(f);
	CHECK(fx_seckey_load(&b, path, NULL, 0, &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "magic") != NULL, "%s", d.msg);
	CHECK(fx_seckey_load(&b, path_in("absent.key"), NULL, 0, &d) ==
	      FX_ENOTFOUND);
	fx_keypair_release(&a);
}

static void test_pubkey_and_passphrase(void)
{
	fx_keypair a;
	uint8_t pk[32], *pass = NULL;
	size_t len = 0;
	fx_diag d;
	char path[256];
	FILE *f;

	fx_keypair_init(&a);
	snprintf(path, sizeof(path), "%s", path_in("a.pub"));
	CHECK_OK(fx_keypair_generate(&a, &d));
	CHECK_OK(fx_pubkey_save(a.pk, path, &d));
	CHECK_OK(fx_pubkey_load(path, pk, &d));
	CHECK(memcmp(pk, a.pk, 32) == 0);
	f = fopen(path, "w");
	fputs("abcd\n", f);
	fclose(f);
	CHECK(fx_pubkey_load(path, pk, &d) == FX_EFORMAT);

	setenv("FX_TEST_PASS", "s3cret", 1);
	CHECK_OK(fx_passphrase_load(NULL, "FX_TEST_PASS", &pass, &len, &d));
	CHECK(len == 6 && memcmp(pass, "s3cret", 6) == 0);
	fx_passphrase_free(pass, len);
	CHECK(fx_passphrase_load(NULL, "FX_TEST_UNSET_VAR", &pass, &len, &d) ==
	      FX_ENOTFOUND);
	snprintf(path, sizeof(path), "%s", path_in("pass.txt"));
	f = fopen(path, "w");
	fputs("from file\n", f);
	fclose(f);
	CHECK_OK(fx_passphrase_load(path, NULL, &pass, &len, &d));
	CHECK(len == 9 && memcmp(pass, "from file", 9) == 0);
	fx_passphrase_free(pass, len);
	f = fopen(path, "w");
	fputs("\n", f);
	fclose(f);
	CHECK(fx_passphrase_load(path, NULL, &pass, &len, &d) == FX_EINVAL);
	fx_keypair_release(&a);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	RUN(test_clear_roundtrip);
	RUN(test_sealed);
	RUN(test_corrupt);
	RUN(test_pubkey_and_passphrase);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return FX_TEST_REPORT();
}
