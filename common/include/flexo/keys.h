/* Ed25519 identities: key pairs in guarded memory, secret key files (mode
 * 0600 enforced, optionally sealed with a passphrase: Argon2id crypto_pwhash
 * + crypto_secretbox), public key files (hex) and passphrase loading.
 * File formats are byte-exact in docs/protocol.md. */
#ifndef FLEXO_KEYS_H
#define FLEXO_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/sign.h"

#define FX_PASSPHRASE_MAX  1024 /* bytes of a passphrase file or variable */
#define FX_SECKEY_FILE_MAX 256  /* larger than any secret key file */
#define FX_PUBKEY_FILE_MAX 256

/* A key pair. sk is NULL for a public-only key; otherwise it points to
 * FX_SK_BYTES of sodium_malloc'd memory (guard pages, wiped on free) owned by
 * the struct. id is fx_key_id(pk). */
typedef struct fx_keypair {
	uint8_t pk[FX_PK_BYTES];
	uint8_t id[FX_KEY_ID_BYTES];
	uint8_t *sk;
} fx_keypair;

/* Sets *kp empty (no allocation), so fx_keypair_release is always safe. */
void fx_keypair_init(fx_keypair *kp);

/* Fresh random key pair into an initialised *kp (previous contents
 * released). */
fx_err fx_keypair_generate(fx_keypair *kp, fx_diag *diag);

/* Deterministic key pair from a 32-byte seed (RFC 8032 "secret key"). */
fx_err fx_keypair_from_seed(fx_keypair *kp, const uint8_t seed[FX_SEED_BYTES],
                            fx_diag *diag);

/* Wipes and frees the secret; leaves *kp empty. */
void fx_keypair_release(fx_keypair *kp);

/* Argon2id cost stored in a sealed key file. */
typedef enum fx_kdf_cost {
	FX_KDF_INTERACTIVE = 0, /* libsodium INTERACTIVE: 64 MiB, 2 passes */
	FX_KDF_MODERATE = 1,    /* libsodium MODERATE: 256 MiB, 3 passes */
} fx_kdf_cost;

/* Writes kp's secret key to path atomically with mode 0600. If pass is
 * non-NULL the seed is sealed under a key derived from pass[0..pass_len)
 * with Argon2id at `cost`; if NULL it is stored in clear (still 0600). */
fx_err fx_seckey_save(const fx_keypair *kp, const char *path,
                      const uint8_t *pass, size_t pass_len, fx_kdf_cost cost,
                      fx_diag *diag);

/* Loads a secret key file into an initialised *kp. Refuses (FX_EPERM, naming
 * the mode) a file readable or writable by group or others; refuses a
 * sealed file without a passphrase (FX_EINVAL) or with a wrong one
 * (FX_ECRYPTO); checks the stored public key against the seed. */
fx_err fx_seckey_load(fx_keypair *kp, const char *path, const uint8_t *pass,
                      size_t pass_len, fx_diag *diag);

/* Reads only the public half of a secret key file (no passphrase needed;
 * the mode check still applies). */
fx_err fx_seckey_public(const char *path, uint8_t pk[FX_PK_BYTES],
                        fx_diag *diag);

/* Public key file: 64 lower-case hex digits and a newline. load also accepts
 * upper case and no newline. */
fx_err fx_pubkey_save(const uint8_t pk[FX_PK_BYTES], const char *path,
                      fx_diag *diag);
fx_err fx_pubkey_load(const char *path, uint8_t pk[FX_PK_BYTES], fx_diag *diag);

/* Loads a passphrase from a file (one trailing newline stripped) or, if
 * file is NULL, from the environment variable named env. On success *pass is
 * sodium_malloc'd (free with fx_passphrase_free) and *len its length.
 * An empty passphrase is refused. */
fx_err fx_passphrase_load(const char *file, const char *env, uint8_t **pass,
                          size_t *len, fx_diag *diag);
void fx_passphrase_free(uint8_t *pass, size_t len);

/* What every command that signs does: loads the passphrase from pass_file
 * or the variable pass_env when either is given (both NULL: none), loads
 * the secret key at path, wipes the passphrase. */
fx_err fx_seckey_load_with(fx_keypair *kp, const char *path,
                           const char *pass_file, const char *pass_env,
                           fx_diag *diag);

#endif
