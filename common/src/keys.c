/* Key pairs, secret/public key files and passphrases (see keys.h). Secrets
 * live only in sodium_malloc'd memory or stack buffers wiped on every path. */
#include "flexo/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "flexo/fsutil.h"
#include "flexo/hash.h"

/* Secret key file layout (docs/protocol.md "Secret key file"). */
#define SK_MAGIC       "FXSK"
#define SK_VERSION     1
#define SK_KIND_CLEAR  0
#define SK_KIND_SEALED 1
#define SK_HDR         8                  /* magic, version, kind, 2 zero */
#define SK_CLEAR_LEN   (SK_HDR + 32 + 32) /* + pk + seed */
#define SK_SALT        crypto_pwhash_SALTBYTES     /* 16 */
#define SK_NONCE       crypto_secretbox_NONCEBYTES /* 24 */
#define SK_BOX         (crypto_secretbox_MACBYTES + FX_SEED_BYTES)
#define SK_SEALED_LEN  (SK_HDR + 32 + 8 + 8 + SK_SALT + SK_NONCE + SK_BOX)

static void put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void fx_keypair_init(fx_keypair *kp)
{
	memset(kp, 0, sizeof(*kp));
}

void fx_keypair_release(fx_keypair *kp)
{
	if (kp->sk != NULL)
		sodium_free(kp->sk); /* wipes before unmapping */
	fx_keypair_init(kp);
}

fx_err fx_keypair_from_seed(fx_keypair *kp, const uint8_t seed[FX_SEED_BYTES],
                            fx_diag *diag)
{
	uint8_t *sk;
	uint8_t pk[FX_PK_BYTES];

	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	sk = sodium_malloc(FX_SK_BYTES);
	if (sk == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no secure memory for a key");
	if (crypto_sign_seed_keypair(pk, sk, seed) != 0) {
		sodium_free(sk);
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "Ed25519 key derivation failed");
	}
	fx_keypair_release(kp);
	kp->sk = sk;
	memcpy(kp->pk, pk, FX_PK_BYTES);
	fx_key_id(kp->id, pk);
	return FX_OK;
}

fx_err fx_keypair_generate(fx_keypair *kp, fx_diag *diag)
{
	uint8_t seed[FX_SEED_BYTES];
	fx_err err;

	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	randombytes_buf(seed, sizeof(seed));
	err = fx_keypair_from_seed(kp, seed, diag);
	sodium_memzero(seed, sizeof(seed));
	return err;
}

static void kdf_limits(fx_kdf_cost cost, uint64_t *ops, uint64_t *mem)
{
	if (cost == FX_KDF_MODERATE) {
		*ops = crypto_pwhash_OPSLIMIT_MODERATE;
		*mem = crypto_pwhash_MEMLIMIT_MODERATE;
	} else {
		*ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		*mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
	}
}

fx_err fx_seckey_save(const fx_keypair *kp, const char *path,
                      const uint8_t *pass, size_t pass_len, fx_kdf_cost cost,
                      fx_diag *diag)
{
	uint8_t *buf = NULL, *key = NULL;
	size_t len;
	uint64_t ops, mem;
	fx_err err = FX_OK;

	if (kp->sk == NULL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "key pair has no secret half");
	if (pass != NULL && pass_len == 0)
		return fx_diag_set(diag, FX_EINVAL, "empty passphrase");
	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	len = pass ? SK_SEALED_LEN : SK_CLEAR_LEN;
	buf = sodium_malloc(len);
	key = sodium_malloc(crypto_secretbox_KEYBYTES);
	if (buf == NULL || key == NULL) {
		err =
		    fx_diag_set(diag, FX_ENOMEM, "no secure memory for a key");
		goto out;
	}
	memcpy(buf, SK_MAGIC, 4);
	buf[4] = SK_VERSION;
	buf[5] = pass ? SK_KIND_SEALED : SK_KIND_CLEAR;
	buf[6] = buf[7] = 0;
	memcpy(buf + SK_HDR, kp->pk, FX_PK_BYTES);
	if (pass == NULL) {
		/* libsodium's sk is seed || pk: the seed is its first half. */
		memcpy(buf + SK_HDR + 32, kp->sk, FX_SEED_BYTES);
	} else {
		uint8_t *p = buf + SK_HDR + 32;
		uint8_t *salt = p + 16, *nonce = salt + SK_SALT;
		kdf_limits(cost, &ops, &mem);
		put_u64le(p, ops);
		put_u64le(p + 8, mem);
		randombytes_buf(salt, SK_SALT);
		randombytes_buf(nonce, SK_NONCE);
		if (crypto_pwhash(key, crypto_secretbox_KEYBYTES,
		                  (const char *)pass, pass_len, salt, ops,
		                  (size_t)mem,
		                  crypto_pwhash_ALG_ARGON2ID13) != 0) {
			err = fx_diag_set(
			    diag, FX_ENOMEM,
			    "Argon2id needs %llu MiB and could not get it",
			    (unsigned long long)(mem >> 20));
			goto out;
		}
		crypto_secretbox_easy(nonce + SK_NONCE, kp->sk, FX_SEED_BYTES,
		                      nonce, key);
	}
	err = fx_write_file_atomic(path, buf, len, 0600, diag);
out:
	if (buf)
		sodium_free(buf);
	if (key)
		sodium_free(key);
	return err;
}

/* Reads a secret key file into buf (SK_SEALED_LEN bytes, secure memory),
 * refusing group/world permissions, and checks its header. */
static fx_err read_seckey_file(const char *path, uint8_t *buf, size_t *len,
                               fx_diag *diag)
{
	struct stat st;
	fx_err err = FX_OK;
	size_t have = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return fx_diag_set(
		    diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		    "cannot open secret key %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		err = fx_diag_set(diag, FX_EIO, "stat %s: %s", path,
		                  strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fx_diag_set(diag, FX_EINVAL,
		                  "secret key %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		err = fx_diag_set(
		    diag, FX_EPERM,
		    "secret key %s has mode %04o: group or others may "
		    "access it; run chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, SK_SEALED_LEN + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > SK_SEALED_LEN) {
			err = fx_diag_set(
			    diag, FX_EFORMAT,
			    "%s is too long for a flexo secret key", path);
			goto out;
		}
	}
	if (have < SK_HDR || memcmp(buf, SK_MAGIC, 4) != 0) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "%s is not a flexo secret key (bad magic)",
		                  path);
		goto out;
	}
	if (buf[4] != SK_VERSION) {
		err =
		    fx_diag_set(diag, FX_EFORMAT,
		                "%s: secret key format version %u, expected %u",
		                path, buf[4], SK_VERSION);
		goto out;
	}
	if ((buf[5] == SK_KIND_CLEAR && have != SK_CLEAR_LEN) ||
	    (buf[5] == SK_KIND_SEALED && have != SK_SEALED_LEN) ||
	    buf[5] > SK_KIND_SEALED || buf[6] != 0 || buf[7] != 0) {
		err = fx_diag_set(
		    diag, FX_EFORMAT,
		    "%s: secret key kind %u with %zu bytes is malformed", path,
		    buf[5], have);
		goto out;
	}
	*len = have;
out:
	close(fd);
	return err;
}

fx_err fx_seckey_public(const char *path, uint8_t pk[FX_PK_BYTES],
                        fx_diag *diag)
{
	uint8_t *buf;
	size_t len;
	fx_err err;

	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	buf = sodium_malloc(SK_SEALED_LEN + 1);
	if (buf == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no secure memory for a key");
	err = read_seckey_file(path, buf, &len, diag);
	if (err == FX_OK)
		memcpy(pk, buf + SK_HDR, FX_PK_BYTES);
	sodium_free(buf);
	return err;
}

fx_err fx_seckey_load(fx_keypair *kp, const char *path, const uint8_t *pass,
                      size_t pass_len, fx_diag *diag)
{
	uint8_t *buf = NULL, *key = NULL, *seed = NULL;
	fx_keypair tmp;
	size_t len;
	fx_err err;

	fx_keypair_init(&tmp);
	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	buf = sodium_malloc(SK_SEALED_LEN + 1);
	key = sodium_malloc(crypto_secretbox_KEYBYTES);
	seed = sodium_malloc(FX_SEED_BYTES);
	if (buf == NULL || key == NULL || seed == NULL) {
		err =
		    fx_diag_set(diag, FX_ENOMEM, "no secure memory for a key");
		goto out;
	}
	if ((err = read_seckey_file(path, buf, &len, diag)) != FX_OK)
		goto out;
	if (buf[5] == SK_KIND_CLEAR) {
		memcpy(seed, buf + SK_HDR + 32, FX_SEED_BYTES);
	} else {
		const uint8_t *p = buf + SK_HDR + 32;
		const uint8_t *salt = p + 16, *nonce = salt + SK_SALT;
		uint64_t ops = get_u64le(p), mem = get_u64le(p + 8);
		if (pass == NULL) {
			err = fx_diag_set(
			    diag, FX_EINVAL,
			    "secret key %s is sealed with a passphrase; "
			    "give --passphrase-file or --passphrase-env",
			    path);
			goto out;
		}
		/* Bounds keep a crafted file from demanding absurd work. */
		if (ops < crypto_pwhash_OPSLIMIT_MIN ||
		    ops > crypto_pwhash_OPSLIMIT_SENSITIVE ||
		    mem < crypto_pwhash_MEMLIMIT_MIN ||
		    mem > crypto_pwhash_MEMLIMIT_SENSITIVE) {
			err = fx_diag_set(
			    diag, FX_EFORMAT,
			    "%s: Argon2id cost (ops %llu, mem %llu) out "
			    "of bounds",
			    path, (unsigned long long)ops,
			    (unsigned long long)mem);
			goto out;
		}
		if (crypto_pwhash(key, crypto_secretbox_KEYBYTES,
		                  (const char *)pass, pass_len, salt, ops,
		                  (size_t)mem,
		                  crypto_pwhash_ALG_ARGON2ID13) != 0) {
			err = fx_diag_set(
			    diag, FX_ENOMEM,
			    "Argon2id needs %llu MiB and could not get it",
			    (unsigned long long)(mem >> 20));
			goto out;
		}
		if (crypto_secretbox_open_easy(seed, nonce + SK_NONCE, SK_BOX,
		                               nonce, key) != 0) {
			err = fx_diag_set(
			    diag, FX_ECRYPTO,
			    "wrong passphrase for secret key %s (or the "
			    "file is corrupted)",
			    path);
			goto out;
		}
	}
	if ((err = fx_keypair_from_seed(&tmp, seed, diag)) != FX_OK)
		goto out;
	if (sodium_memcmp(tmp.pk, buf + SK_HDR, FX_PK_BYTES) != 0) {
		err = fx_diag_set(
		    diag, FX_EFORMAT,
		    "secret key %s: stored public key does not match "
		    "the secret (file corrupted)",
		    path);
		goto out;
	}
	fx_keypair_release(kp);
	*kp = tmp;
	fx_keypair_init(&tmp);
out:
	fx_keypair_release(&tmp);
	if (buf)
		sodium_free(buf);
	if (key)
		sodium_free(key);
	if (seed)
		sodium_free(seed);
	return err;
}

fx_err fx_pubkey_save(const uint8_t pk[FX_PK_BYTES], const char *path,
                      fx_diag *diag)
{
	char line[2 * FX_PK_BYTES + 2];

	fx_hex(line, pk, FX_PK_BYTES);
	line[2 * FX_PK_BYTES] = '\n';
	return fx_write_file_atomic(path, line, sizeof(line) - 1, 0644, diag);
}

fx_err fx_pubkey_load(const char *path, uint8_t pk[FX_PK_BYTES], fx_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_err err;

	if ((err = fx_read_file(path, FX_PUBKEY_FILE_MAX, &buf, &len, diag)) !=
	    FX_OK)
		return err;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	err = fx_hex_decode(pk, FX_PK_BYTES, (const char *)buf, diag);
	if (err != FX_OK)
		fx_diag_prefix(diag, "public key file %s", path);
	free(buf);
	return err;
}

fx_err fx_passphrase_load(const char *file, const char *env, uint8_t **pass,
                          size_t *len, fx_diag *diag)
{
	uint8_t *raw = NULL, *out = NULL;
	size_t n = 0, raw_len = 0;
	fx_err err = FX_OK;

	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	if (file != NULL) {
		if ((err = fx_read_file(file, FX_PASSPHRASE_MAX, &raw, &n,
		                        diag)) != FX_OK) {
			fx_diag_prefix(diag, "passphrase file");
			return err;
		}
		raw_len = n;
		if (n > 0 && raw[n - 1] == '\n')
			n--;
	} else {
		const char *v = env ? getenv(env) : NULL;
		if (v == NULL)
			return fx_diag_set(diag, FX_ENOTFOUND,
			                   "environment variable %s is not set",
			                   env ? env : "(none)");
		n = strnlen(v, FX_PASSPHRASE_MAX + 1);
		if (n > FX_PASSPHRASE_MAX)
			return fx_diag_set(
			    diag, FX_ETOOBIG,
			    "passphrase in %s longer than %d bytes", env,
			    FX_PASSPHRASE_MAX);
		raw = (uint8_t *)v;
	}
	if (n == 0) {
		err = fx_diag_set(diag, FX_EINVAL, "empty passphrase in %s",
		                  file ? file : env);
		goto out;
	}
	out = sodium_malloc(n);
	if (out == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM,
		                  "no secure memory for passphrase");
		goto out;
	}
	memcpy(out, raw, n);
	*pass = out;
	*len = n;
out:
	if (file != NULL && raw != NULL) {
		sodium_memzero(raw, raw_len);
		free(raw);
	}
	return err;
}

void fx_passphrase_free(uint8_t *pass, size_t len)
{
	(void)len; /* sodium_free wipes the whole allocation */
	if (pass != NULL)
		sodium_free(pass);
}

fx_err fx_seckey_load_with(fx_keypair *kp, const char *path,
                           const char *pass_file, const char *pass_env,
                           fx_diag *diag)
{
	uint8_t *pass = NULL;
	size_t len = 0;
	fx_err err;

	if (pass_file != NULL || pass_env != NULL) {
		err =
		    fx_passphrase_load(pass_file, pass_env, &pass, &len, diag);
		if (err != FX_OK)
			return err;
	}
	err = fx_seckey_load(kp, path, pass, len, diag);
	fx_passphrase_free(pass, len);
	return err;
}
