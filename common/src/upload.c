/* Upload sessions (upload.h): staging files written with pwrite and hashed
 * as they grow, checkpoints (offset + BLAKE2b state) written atomically
 * beside them, quota accounting, and reload after a restart. Files of a
 * session <id> in the staging directory:
 *   <id>.env      the signed contribution envelope, written once
 *   <id>.part     the payload bytes received so far
 *   <id>.state    the last checkpoint: offset and hash state at that offset
 *   <id>.verdict  the verdict, once admission decided (the others are gone)
 * A chunk goes through two stages, which may run on two threads so that
 * one session's disk write and its hashing overlap: fx_upload_write puts
 * the bytes in the staging file (the acknowledged offset), fx_upload_hash
 * feeds the same bytes, in order, to the digest and makes the checkpoints,
 * which record the hashed offset only.
 * Locking: the store mutex guards the session table and reference counts.
 * Per session: `wmu` serialises writes, `hmu` serialises hashing (and
 * guards the hash state), `mu` guards the offsets, counters and state and
 * is only held briefly. Order: store mu, then hmu, wmu, mu; the store's
 * bounce-buffer mutex is only ever taken alone. */
#define _GNU_SOURCE /* fallocate(FALLOC_FL_KEEP_SIZE), sync_file_range */
#include "flexo/upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flexo/wire.h"

#define STATE_MAGIC    "FXUPST01"
#define VERDICT_MAGIC  "FXUPVD01"
#define MAGIC_LEN      8
#define HASH_STATE_LEN sizeof(crypto_generichash_state)
/* magic, id, key id, envelope digest, size, offset, touched, hash length,
 * hash state, check digest */
#define STATE_LEN                                                              \
	(MAGIC_LEN + FX_UPLOAD_ID_BYTES + FX_KEY_ID_BYTES + FX_BLAKE2B_BYTES + \
	 8 + 8 + 8 + 4 + HASH_STATE_LEN + FX_BLAKE2B_BYTES)
#define VERDICT_HDR_LEN                                                        \
	(MAGIC_LEN + FX_UPLOAD_ID_BYTES + FX_KEY_ID_BYTES + FX_BLAKE2B_BYTES + \
	 8 + 8 + 4)
#define ID_HEX (2 * FX_UPLOAD_ID_BYTES)
/* Staging writes: whole blocks of DIRECT_ALIGN bytes go through an
 * O_DIRECT descriptor, from aligned bounce buffers of BOUNCE_LEN bytes of
 * which the store keeps BOUNCE_KEEP for reuse. The bytes are written once
 * and never read back by the transport (the digest is computed from the
 * received chunk), so the page cache would only cost: filling fresh page
 * cache pages was measured as the slowest stage of an upload. */
#define DIRECT_ALIGN 4096u
#define BOUNCE_LEN   (4u << 20)
#define BOUNCE_KEEP  2

enum { ST_RECEIVING, ST_ADMITTING, ST_DONE };

typedef struct session {
	uint8_t id[FX_UPLOAD_ID_BYTES];
	uint8_t key_id[FX_KEY_ID_BYTES];
	uint8_t env_digest[FX_BLAKE2B_BYTES];
	uint64_t size;    /* declared payload size */
	uint64_t offset;  /* bytes written: the acknowledged offset */
	uint64_t hashed;  /* bytes hashed (<= offset) */
	uint64_t ckpt;    /* offset of the last durable checkpoint */
	unsigned pending; /* chunks written, not yet hashed */
	int damaged;      /* hashing saw a chunk out of order: dropped */
	int state;
	int fd;  /* staging file, -1 once done */
	int dfd; /* the same, O_DIRECT; -1 if unsupported or done */
	fx_blake2b_ctx hash;
	int64_t touched; /* last activity, Unix seconds */
	uint8_t *verdict;
	size_t verdict_len;
	pthread_mutex_t mu, wmu, hmu;
	pthread_cond_t cv; /* `pending` dropped */
	int refs;          /* holders outside the store lock */
	int dead; /* removed from the table; freed when refs drops to 0 */
} session;

struct fx_upload_store {
	pthread_mutex_t mu;
	char dir[FX_PATH_MAX + 1];
	fx_upload_limits lim;
	session **tab;
	size_t n;
	pthread_mutex_t bmu;          /* guards the two below; taken alone */
	uint8_t *bounce[BOUNCE_KEEP]; /* spare aligned buffers */
	size_t n_bounce;
};

void fx_upload_limits_default(fx_upload_limits *lim)
{
	lim->quota = 4ull << 30;
	lim->max_payload = 2ull << 30;
	lim->max_sessions = 256;
	lim->checkpoint_every = 64ull << 20;
	lim->idle_expiry = 24 * 3600;
	lim->verdict_keep = 24 * 3600;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* dir/<hex id><suffix>; the directory length was bounded at open. */
static void session_path(const fx_upload_store *s, const uint8_t *id,
                         const char *suffix, char out[FX_PATH_MAX + 1])
{
	char hex[ID_HEX + 1];
	snprintf(out, FX_PATH_MAX + 1, "%s/%s%s", s->dir,
	         fx_hex(hex, id, FX_UPLOAD_ID_BYTES), suffix);
}

static void remove_files(const fx_upload_store *s, const uint8_t *id)
{
	static const char *const suffixes[] = {".part", ".env", ".state",
	                                       ".verdict"};
	char path[FX_PATH_MAX + 1];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(*suffixes); i++) {
		session_path(s, id, suffixes[i], path);
		(void)unlink(path);
	}
}

static session *session_new(void)
{
	void *mem = NULL;
	session *ss;

	/* libsodium's hash state is declared 64-byte aligned and the compiler
	 * copies it with aligned vector moves: malloc's 16 is not enough. */
	if (posix_memalign(&mem, _Alignof(session), sizeof(session)) != 0)
		return NULL;
	ss = memset(mem, 0, sizeof(session));
	ss->fd = ss->dfd = -1;
	pthread_mutex_init(&ss->mu, NULL);
	pthread_mutex_init(&ss->wmu, NULL);
	pthread_mutex_init(&ss->hmu, NULL);
	pthread_cond_init(&ss->cv, NULL);
	return ss;
}

static void session_free(session *ss)
{
	if (ss == NULL)
		return;
	if (ss->fd >= 0)
		close(ss->fd);
	if (ss->dfd >= 0)
		close(ss->dfd);
	free(ss->verdict);
	sodium_memzero(&ss->hash, sizeof(ss->hash));
	pthread_cond_destroy(&ss->cv);
	pthread_mutex_destroy(&ss->hmu);
	pthread_mutex_destroy(&ss->wmu);
	pthread_mutex_destroy(&ss->mu);
	free(ss);
}

/* Takes ss out of the table (store lock held); freed now or by the last
 * holder's put. */
static void unlink_session(fx_upload_store *s, size_t i)
{
	session *ss = s->tab[i];
	s->tab[i] = s->tab[--s->n];
	ss->dead = 1;
	if (ss->refs == 0)
		session_free(ss);
}

static session *find_id(fx_upload_store *s, const uint8_t *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->tab[i]->id, id, FX_UPLOAD_ID_BYTES) == 0)
			return s->tab[i];
	return NULL;
}

/* A reference to session `id`, or NULL. Release with put(). */
static session *get(fx_upload_store *s, const uint8_t *id)
{
	session *ss;

	pthread_mutex_lock(&s->mu);
	ss = find_id(s, id);
	if (ss != NULL)
		ss->refs++;
	pthread_mutex_unlock(&s->mu);
	return ss;
}

static void put(fx_upload_store *s, session *ss)
{
	pthread_mutex_lock(&s->mu);
	if (--ss->refs == 0 && ss->dead)
		session_free(ss);
	pthread_mutex_unlock(&s->mu);
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* A second, O_DIRECT descriptor on the staging file, if the file system
 * takes one (some refuse, older tmpfs among them: writes then stay
 * buffered). */
static void open_direct(session *ss, const char *path)
{
	ss->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
}

/* Reserves the disk blocks of the whole declared payload up front (the
 * file size stays the bytes written): the disk is known to suffice before
 * any byte moves, and writing into allocated blocks is several times faster
 * than allocating them chunk by chunk. File systems without fallocate just
 * allocate as they go. */
static fx_err reserve(session *ss, fx_diag *diag)
{
	if (ss->size > ss->offset &&
	    fallocate(ss->fd, FALLOC_FL_KEEP_SIZE, (off_t)ss->offset,
	              (off_t)(ss->size - ss->offset)) != 0 &&
	    errno == ENOSPC)
		return fx_diag_set(diag, FX_EQUOTA,
		                   "no disk space to stage %llu bytes",
		                   (unsigned long long)(ss->size - ss->offset));
	return FX_OK;
}

/* Writes the checkpoint of ss at its hashed offset (hmu held, or the
 * session not yet shared): the staging data first (fdatasync), then the
 * state naming that offset and the hash state there, atomically. Bytes
 * written past it are not named, so a restart cuts them off. */
static fx_err save_state(fx_upload_store *s, session *ss, fx_diag *diag)
{
	uint64_t at;
	int64_t touched;
	uint8_t buf[STATE_LEN], *p = buf;
	char path[FX_PATH_MAX + 1];
	fx_err err;

	pthread_mutex_lock(&ss->mu);
	at = ss->hashed;
	touched = ss->touched;
	pthread_mutex_unlock(&ss->mu);
	if (ss->fd >= 0 && fdatasync(ss->fd) != 0)
		return fx_diag_set(diag, FX_EIO,
		                   "syncing upload staging file: %s",
		                   strerror(errno));
	memcpy(p, STATE_MAGIC, MAGIC_LEN), p += MAGIC_LEN;
	memcpy(p, ss->id, FX_UPLOAD_ID_BYTES), p += FX_UPLOAD_ID_BYTES;
	memcpy(p, ss->key_id, FX_KEY_ID_BYTES), p += FX_KEY_ID_BYTES;
	memcpy(p, ss->env_digest, FX_BLAKE2B_BYTES), p += FX_BLAKE2B_BYTES;
	put_u64(p, ss->size), p += 8;
	put_u64(p, at), p += 8;
	put_u64(p, (uint64_t)touched), p += 8;
	put_u32(p, (uint32_t)HASH_STATE_LEN), p += 4;
	/* libsodium's state is a plain byte array; restoring it needs the same
	 * libsodium build, which the state's own digest cannot promise — a
	 * mismatch at most makes the final digest differ and admission refuse.
	 */
	memcpy(p, &ss->hash.st, HASH_STATE_LEN), p += HASH_STATE_LEN;
	fx_blake2b(p, buf, (size_t)(p - buf));
	session_path(s, ss->id, ".state", path);
	err = fx_write_file_atomic(path, buf, sizeof(buf), 0600, diag);
	sodium_memzero(buf, sizeof(buf));
	if (err == FX_OK) {
		pthread_mutex_lock(&ss->mu);
		ss->ckpt = at;
		pthread_mutex_unlock(&ss->mu);
	}
	return err;
}

/* Reloads one session from its .state (or .verdict) file; returns NULL and
 * leaves the files for the sweep if anything does not add up. */
static session *load_state(fx_upload_store *s, const uint8_t *id)
{
	char path[FX_PATH_MAX + 1];
	uint8_t *buf = NULL, *env = NULL, check[FX_BLAKE2B_BYTES],
	        d[FX_BLAKE2B_BYTES];
	size_t len = 0, env_len = 0;
	const uint8_t *p;
	session *ss = NULL;
	struct stat st;

	session_path(s, id, ".state", path);
	if (fx_read_file(path, STATE_LEN, &buf, &len, NULL) != FX_OK ||
	    len != STATE_LEN || memcmp(buf, STATE_MAGIC, MAGIC_LEN) != 0)
		goto fail;
	fx_blake2b(check, buf, STATE_LEN - FX_BLAKE2B_BYTES);
	if (sodium_memcmp(check, buf + STATE_LEN - FX_BLAKE2B_BYTES,
	                  FX_BLAKE2B_BYTES) != 0 ||
	    memcmp(buf + MAGIC_LEN, id, FX_UPLOAD_ID_BYTES) != 0)
		goto fail;
	if ((ss = session_new()) == NULL)
		goto fail;
	p = buf + MAGIC_LEN;
	memcpy(ss->id, p, FX_UPLOAD_ID_BYTES), p += FX_UPLOAD_ID_BYTES;
	memcpy(ss->key_id, p, FX_KEY_ID_BYTES), p += FX_KEY_ID_BYTES;
	memcpy(ss->env_digest, p, FX_BLAKE2B_BYTES), p += FX_BLAKE2B_BYTES;
	ss->size = get_u64(p), p += 8;
	ss->offset = get_u64(p), p += 8;
	ss->touched = (int64_t)get_u64(p), p += 8;
	if (get_u32(p) != HASH_STATE_LEN || ss->offset > ss->size)
		goto fail;
	p += 4;
	memcpy(&ss->hash.st, p, HASH_STATE_LEN);
	ss->ckpt = ss->hashed = ss->offset;
	/* The envelope must still be the one the session was opened with. */
	session_path(s, id, ".env", path);
	if (fx_read_file(path, FX_WIRE_ENVELOPE_MAX, &env, &env_len, NULL) !=
	    FX_OK)
		goto fail;
	fx_blake2b(d, env, env_len);
	if (memcmp(d, ss->env_digest, FX_BLAKE2B_BYTES) != 0)
		goto fail;
	/* Bytes past the checkpoint were acknowledged but not made durable:
	 * cut them; the sender is told the checkpoint offset and resends. */
	session_path(s, id, ".part", path);
	ss->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (ss->fd < 0 || fstat(ss->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < ss->offset ||
	    ftruncate(ss->fd, (off_t)ss->offset) != 0 ||
	    reserve(ss, NULL) != FX_OK)
		goto fail;
	open_direct(ss, path);
	ss->state = ST_RECEIVING;
	free(buf);
	free(env);
	return ss;
fail:
	free(buf);
	free(env);
	session_free(ss);
	return NULL;
}

static session *load_verdict(fx_upload_store *s, const uint8_t *id)
{
	char path[FX_PATH_MAX + 1];
	uint8_t *buf = NULL, check[FX_BLAKE2B_BYTES];
	size_t len = 0, vlen;
	const uint8_t *p;
	session *ss = NULL;

	session_path(s, id, ".verdict", path);
	if (fx_read_file(path,
	                 VERDICT_HDR_LEN + FX_UPLOAD_VERDICT_MAX +
	                     FX_BLAKE2B_BYTES,
	                 &buf, &len, NULL) != FX_OK ||
	    len < VERDICT_HDR_LEN + FX_BLAKE2B_BYTES ||
	    memcmp(buf, VERDICT_MAGIC, MAGIC_LEN) != 0 ||
	    memcmp(buf + MAGIC_LEN, id, FX_UPLOAD_ID_BYTES) != 0)
		goto fail;
	fx_blake2b(check, buf, len - FX_BLAKE2B_BYTES);
	if (memcmp(check, buf + len - FX_BLAKE2B_BYTES, FX_BLAKE2B_BYTES) != 0)
		goto fail;
	vlen = get_u32(buf + VERDICT_HDR_LEN - 4);
	if (vlen != len - VERDICT_HDR_LEN - FX_BLAKE2B_BYTES ||
	    (ss = session_new()) == NULL)
		goto fail;
	p = buf + MAGIC_LEN;
	memcpy(ss->id, p, FX_UPLOAD_ID_BYTES), p += FX_UPLOAD_ID_BYTES;
	memcpy(ss->key_id, p, FX_KEY_ID_BYTES), p += FX_KEY_ID_BYTES;
	memcpy(ss->env_digest, p, FX_BLAKE2B_BYTES), p += FX_BLAKE2B_BYTES;
	ss->size = ss->offset = ss->hashed = ss->ckpt = get_u64(p), p += 8;
	ss->touched = (int64_t)get_u64(p);
	ss->state = ST_DONE;
	if ((ss->verdict = malloc(vlen ? vlen : 1)) == NULL)
		goto fail;
	memcpy(ss->verdict, buf + VERDICT_HDR_LEN, vlen);
	ss->verdict_len = vlen;
	free(buf);
	return ss;
fail:
	free(buf);
	session_free(ss);
	return NULL;
}

/* "<32 hex>.state" / "<32 hex>.verdict" -> id; 0 if name is not one. */
static int parse_name(const char *name, const char *suffix, uint8_t *id)
{
	char hex[ID_HEX + 1];

	if (strlen(name) != ID_HEX + strlen(suffix) ||
	    strcmp(name + ID_HEX, suffix) != 0)
		return 0;
	memcpy(hex, name, ID_HEX);
	hex[ID_HEX] = '\0';
	return fx_hex_decode(id, FX_UPLOAD_ID_BYTES, hex, NULL) == FX_OK;
}

/* True if `name` is a live file of a loaded session: .part/.env/.state of
 * a receiving one, .verdict of a decided one. */
static int keep_file(fx_upload_store *s, const char *name)
{
	static const char *const live[] = {".part", ".env", ".state"};
	uint8_t id[FX_UPLOAD_ID_BYTES];
	session *ss;

	if (parse_name(name, ".verdict", id))
		return (ss = find_id(s, id)) != NULL && ss->state == ST_DONE;
	for (size_t i = 0; i < sizeof(live) / sizeof(*live); i++)
		if (parse_name(name, live[i], id))
			return (ss = find_id(s, id)) != NULL &&
			       ss->state != ST_DONE;
	return 0;
}

/* Loads every session in the directory, then removes whatever belongs to
 * none of them (temporary files of interrupted writes, damaged sessions). */
static fx_err reload(fx_upload_store *s, fx_diag *diag)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	uint8_t id[FX_UPLOAD_ID_BYTES];
	char path[FX_PATH_MAX + 1];

	if (d == NULL)
		return fx_diag_set(diag, FX_EIO, "staging directory %s: %s",
		                   s->dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		session *ss = NULL;
		if (parse_name(e->d_name, ".verdict", id))
			ss = load_verdict(s, id);
		else if (parse_name(e->d_name, ".state", id) &&
		         find_id(s, id) == NULL)
			ss = load_state(s, id);
		else
			continue;
		if (ss == NULL)
			continue;
		if (s->n >= FX_UPLOAD_MAX_SESSIONS) {
			session_free(ss);
			break;
		}
		/* A verdict supersedes a state left by a crash mid-cleanup. */
		session *old = find_id(s, id);
		if (old != NULL) {
			for (size_t i = 0; i < s->n; i++)
				if (s->tab[i] == old)
					unlink_session(s, i);
		}
		s->tab[s->n++] = ss;
	}
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !keep_file(s, e->d_name))
			if (snprintf(path, sizeof(path), "%s/%s", s->dir,
			             e->d_name) < (int)sizeof(path))
				(void)unlink(path);
	}
	closedir(d);
	return FX_OK;
}

fx_err fx_upload_store_open(fx_upload_store **out, const char *dir,
                            const fx_upload_limits *lim, fx_diag *diag)
{
	fx_upload_store *s = NULL;
	fx_err err;

	if (lim->checkpoint_every == 0 || lim->max_sessions == 0 ||
	    lim->max_sessions > FX_UPLOAD_MAX_SESSIONS)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "upload limits: checkpoint interval must be > 0 "
		    "and sessions 1..%d",
		    FX_UPLOAD_MAX_SESSIONS);
	/* Room for "/<32 hex>.verdict.tmp.XXXXXX" after the directory. */
	if (dir == NULL || strlen(dir) + 64 > FX_PATH_MAX)
		return fx_diag_set(diag, FX_EINVAL, "staging directory path %s",
		                   dir ? "too long" : "missing");
	if ((err = fx_mkdir_p(dir, 0700, diag)) != FX_OK)
		return err;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->tab = calloc(FX_UPLOAD_MAX_SESSIONS, sizeof(*s->tab))) ==
	        NULL) {
		free(s);
		return fx_diag_set(diag, FX_ENOMEM, "upload store");
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->bmu, NULL);
	strcpy(s->dir, dir);
	s->lim = *lim;
	if ((err = reload(s, diag)) != FX_OK) {
		fx_upload_store_close(s);
		return err;
	}
	*out = s;
	return FX_OK;
}

void fx_upload_store_close(fx_upload_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		session_free(s->tab[i]);
	for (size_t i = 0; i < s->n_bounce; i++)
		free(s->bounce[i]);
	free(s->tab);
	pthread_mutex_destroy(&s->bmu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Drops expired sessions nobody holds (store lock held). */
static void sweep(fx_upload_store *s, int64_t now)
{
	for (size_t i = 0; i < s->n;) {
		session *ss = s->tab[i];
		int64_t keep = ss->state == ST_DONE ? s->lim.verdict_keep
		                                    : s->lim.idle_expiry;
		if (ss->refs == 0 && ss->state != ST_ADMITTING &&
		    now - ss->touched > keep) {
			remove_files(s, ss->id);
			unlink_session(s, i);
		} else {
			i++;
		}
	}
}

uint64_t fx_upload_staged(fx_upload_store *s,
                          const uint8_t key_id[FX_KEY_ID_BYTES])
{
	uint64_t total = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++)
		if (s->tab[i]->state != ST_DONE &&
		    memcmp(s->tab[i]->key_id, key_id, FX_KEY_ID_BYTES) == 0)
			total += s->tab[i]->size;
	pthread_mutex_unlock(&s->mu);
	return total;
}

/* Creates the files of a new session (store lock held). */
static fx_err create_session(fx_upload_store *s, session *ss,
                             const uint8_t *env, size_t env_len, fx_diag *diag)
{
	char path[FX_PATH_MAX + 1];
	fx_err err;

	session_path(s, ss->id, ".env", path);
	if ((err = fx_write_file_atomic(path, env, env_len, 0600, diag)) !=
	    FX_OK)
		return err;
	session_path(s, ss->id, ".part", path);
	ss->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	              0600);
	if (ss->fd < 0)
		return fx_diag_set(diag, FX_EIO, "creating %s: %s", path,
		                   strerror(errno));
	open_direct(ss, path);
	if ((err = reserve(ss, diag)) != FX_OK)
		return err;
	return save_state(s, ss, diag);
}

static int same_upload(const session *ss, const fx_upload_claim *claim,
                       const uint8_t *env_digest)
{
	return memcmp(ss->key_id, claim->key_id, FX_KEY_ID_BYTES) == 0 &&
	       memcmp(ss->env_digest, env_digest, FX_BLAKE2B_BYTES) == 0 &&
	       ss->size == claim->payload_size;
}

fx_err fx_upload_begin(fx_upload_store *s, const fx_upload_claim *claim,
                       const uint8_t *envelope, size_t env_len,
                       const uint8_t *resume_id, uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t *offset, fx_diag *diag)
{
	uint8_t digest[FX_BLAKE2B_BYTES];
	session *ss = NULL;
	uint64_t staged = 0;
	int64_t now = now_s();
	fx_err err = FX_OK;

	if (claim->payload_size > s->lim.max_payload)
		return fx_diag_set(
		    diag, FX_ETOOBIG,
		    "payload of %llu bytes > the coordinator's limit "
		    "of %llu",
		    (unsigned long long)claim->payload_size,
		    (unsigned long long)s->lim.max_payload);
	fx_blake2b(digest, envelope, env_len);
	pthread_mutex_lock(&s->mu);
	sweep(s, now);
	/* The same contribution from the same key resumes its session; a
	 * resume id naming another contribution is not honoured. */
	if (resume_id != NULL && (ss = find_id(s, resume_id)) != NULL &&
	    !same_upload(ss, claim, digest))
		ss = NULL;
	for (size_t i = 0; i < s->n && ss == NULL; i++)
		if (same_upload(s->tab[i], claim, digest))
			ss = s->tab[i];
	if (ss != NULL) {
		pthread_mutex_lock(&ss->mu);
		ss->touched = now;
		memcpy(id, ss->id, FX_UPLOAD_ID_BYTES);
		*offset = ss->state == ST_RECEIVING ? ss->offset : ss->size;
		pthread_mutex_unlock(&ss->mu);
		goto out;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->tab[i]->state != ST_DONE &&
		    memcmp(s->tab[i]->key_id, claim->key_id, FX_KEY_ID_BYTES) ==
		        0)
			staged += s->tab[i]->size;
	if (staged + claim->payload_size > s->lim.quota) {
		err = fx_diag_set(diag, FX_EQUOTA,
		                  "contributor quota: %llu bytes staged + %llu "
		                  "> %llu",
		                  (unsigned long long)staged,
		                  (unsigned long long)claim->payload_size,
		                  (unsigned long long)s->lim.quota);
		goto out;
	}
	if (s->n >= s->lim.max_sessions) {
		/* Busy, not over a quota: worth asking again later. */
		err = fx_diag_set(diag, FX_ESTATE,
		                  "coordinator busy: %u upload sessions open",
		                  s->lim.max_sessions);
		goto out;
	}
	if ((ss = session_new()) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "upload session");
		goto out;
	}
	randombytes_buf(ss->id, FX_UPLOAD_ID_BYTES);
	memcpy(ss->key_id, claim->key_id, FX_KEY_ID_BYTES);
	memcpy(ss->env_digest, digest, FX_BLAKE2B_BYTES);
	ss->size = claim->payload_size;
	ss->touched = now;
	ss->state = ST_RECEIVING;
	fx_blake2b_init(&ss->hash);
	if ((err = create_session(s, ss, envelope, env_len, diag)) != FX_OK) {
		remove_files(s, ss->id);
		session_free(ss);
		goto out;
	}
	s->tab[s->n++] = ss;
	memcpy(id, ss->id, FX_UPLOAD_ID_BYTES);
	*offset = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return err;
}

static fx_err pwrite_all(int fd, const uint8_t *data, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, data, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return FX_EIO;
		}
		data += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return FX_OK;
}

/* An aligned bounce buffer of BOUNCE_LEN bytes (a spare one if the store
 * keeps one), or NULL. */
static uint8_t *bounce_get(fx_upload_store *s)
{
	void *b = NULL;

	pthread_mutex_lock(&s->bmu);
	if (s->n_bounce > 0)
		b = s->bounce[--s->n_bounce];
	pthread_mutex_unlock(&s->bmu);
	if (b == NULL && posix_memalign(&b, DIRECT_ALIGN, BOUNCE_LEN) != 0)
		b = NULL;
	return b;
}

static void bounce_put(fx_upload_store *s, uint8_t *b)
{
	pthread_mutex_lock(&s->bmu);
	if (s->n_bounce < BOUNCE_KEEP) {
		s->bounce[s->n_bounce++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->bmu);
	free(b);
}

/* Writes len bytes at off into the staging file of ss (wmu held): the
 * partial blocks at either end through the page cache, the whole blocks
 * between through the O_DIRECT descriptor, copied into an aligned buffer
 * piece by piece. Linux keeps the two paths coherent (a direct write
 * flushes and drops cached pages of its range first); both are made
 * durable by the checkpoint's fdatasync. A file system that refuses the
 * direct write (EINVAL) gets buffered writes from then on. */
static fx_err stage_write(fx_upload_store *s, session *ss, const uint8_t *data,
                          size_t len, uint64_t off)
{
	size_t head =
	    (size_t)((DIRECT_ALIGN - off % DIRECT_ALIGN) % DIRECT_ALIGN);
	size_t body, buffered = 0;
	uint8_t *b = NULL;
	fx_err err = FX_OK;

	if (head > len)
		head = len;
	body = (len - head) / DIRECT_ALIGN * DIRECT_ALIGN;
	if (ss->dfd < 0 || body == 0 || (b = bounce_get(s)) == NULL) {
		head = len; /* all buffered */
		body = 0;
	}
	if (head > 0 && (err = pwrite_all(ss->fd, data, head, off)) != FX_OK)
		goto out;
	buffered += head;
	for (size_t done = 0; done < body;) {
		size_t n = body - done < BOUNCE_LEN ? body - done : BOUNCE_LEN;
		ssize_t w;
		memcpy(b, data + head + done, n);
		w = pwrite(ss->dfd, b, n, (off_t)(off + head + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && done == 0) {
			/* No direct I/O here after all: buffered from now. */
			close(ss->dfd);
			ss->dfd = -1;
			err = pwrite_all(ss->fd, data + head, body, off + head);
			if (err != FX_OK)
				goto out;
			buffered += body;
			break;
		}
		if (w <= 0 || (size_t)w % DIRECT_ALIGN != 0) {
			/* A short direct write is only possible at the end of
			 * the disk: treat it as the error it will be. */
			err = FX_EIO;
			if (w >= 0)
				errno = ENOSPC;
			goto out;
		}
		done += (size_t)w;
	}
	if (head + body < len) {
		err = pwrite_all(ss->fd, data + head + body, len - head - body,
		                 off + head + body);
		buffered += len - head - body;
	}
out:
	if (b != NULL)
		bounce_put(s, b);
	/* Start write-back of buffered bytes now, so the checkpoint's
	 * fdatasync finds little left to do. */
	if (err == FX_OK && buffered > 0)
		(void)sync_file_range(ss->fd, (off_t)off, (off_t)len,
		                      SYNC_FILE_RANGE_WRITE);
	return err;
}

static fx_err unknown(const uint8_t *id, fx_diag *diag)
{
	char hex[ID_HEX + 1];
	return fx_diag_set(diag, FX_ENOTFOUND,
	                   "no upload session %s (expired or finished): begin "
	                   "again",
	                   fx_hex(hex, id, FX_UPLOAD_ID_BYTES));
}

/* Takes a session whose hashing went out of order out of service: its
 * digest no longer matches its file. Its files go; the contributor's next
 * UploadBegin starts a fresh session. */
static void drop_damaged(fx_upload_store *s, session *ss)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++)
		if (s->tab[i] == ss) {
			remove_files(s, ss->id);
			unlink_session(s, i);
			break;
		}
	pthread_mutex_unlock(&s->mu);
}

static fx_err damaged(fx_diag *diag)
{
	return fx_diag_set(diag, FX_ENOTFOUND,
	                   "upload session dropped (its chunks were hashed out "
	                   "of order): begin again");
}

fx_err fx_upload_write(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t offset, const uint8_t *data, size_t len,
                       fx_upload_ack_fn ack, void *ack_arg, uint64_t *acked,
                       int *wrote, fx_diag *diag)
{
	session *ss = get(s, id);
	fx_err err = FX_OK;

	*wrote = 0;
	if (ss == NULL)
		return unknown(id, diag);
	pthread_mutex_lock(&ss->wmu);
	pthread_mutex_lock(&ss->mu);
	ss->touched = now_s();
	if (ss->damaged) {
		err = damaged(diag);
		goto out_mu;
	}
	if (ss->state != ST_RECEIVING) {
		err = fx_diag_set(diag, FX_ESTATE,
		                  "upload session is complete; send UploadEnd");
		goto out_mu;
	}
	if (offset != ss->offset || len == 0) {
		*acked = ss->offset;
		goto out_mu;
	}
	if (len > ss->size - ss->offset) {
		err = fx_diag_set(
		    diag, FX_ETOOBIG,
		    "chunk of %zu bytes at %llu goes past the declared "
		    "payload size %llu",
		    len, (unsigned long long)offset,
		    (unsigned long long)ss->size);
		goto out_mu;
	}
	/* Taken: the range is this chunk's (only writers change `offset`,
	 * and wmu keeps them one at a time; hashing may run meanwhile), and
	 * counted pending so that a finish waits for it. */
	ss->offset += len;
	ss->pending++;
	*acked = ss->offset;
	pthread_mutex_unlock(&ss->mu);
	if (ack != NULL)
		ack(ack_arg, offset + len);
	if (stage_write(s, ss, data, len, offset) != FX_OK) {
		err =
		    fx_diag_set(diag, FX_EIO, "writing upload staging file: %s",
		                strerror(errno));
		/* Give the range back: the sender's next chunk is answered
		 * with this offset and it resends from here. */
		pthread_mutex_lock(&ss->mu);
		ss->offset = offset;
		ss->pending--;
		pthread_cond_broadcast(&ss->cv);
		*acked = offset;
		if (ftruncate(ss->fd, (off_t)offset) != 0)
			ss->state = ST_ADMITTING; /* unusable: refuse more */
		goto out_mu;
	}
	pthread_mutex_lock(&ss->mu);
	*wrote = 1;
out_mu:
	pthread_mutex_unlock(&ss->mu);
	pthread_mutex_unlock(&ss->wmu);
	put(s, ss);
	return err;
}

fx_err fx_upload_hash(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                      uint64_t offset, const uint8_t *data, size_t len,
                      fx_diag *diag)
{
	session *ss = get(s, id);
	fx_err err = FX_OK;
	int due;

	if (ss == NULL)
		return unknown(id, diag);
	pthread_mutex_lock(&ss->hmu);
	pthread_mutex_lock(&ss->mu);
	if (ss->pending == 0 || offset != ss->hashed ||
	    len > ss->offset - ss->hashed) {
		/* Not the next written bytes: a caller bug, but the digest
		 * must never describe other bytes than the file holds. */
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "upload chunk at %llu hashed out of order "
		                  "(hashed %llu, written %llu)",
		                  (unsigned long long)offset,
		                  (unsigned long long)ss->hashed,
		                  (unsigned long long)ss->offset);
		ss->damaged = 1;
		if (ss->pending > 0)
			ss->pending--;
		pthread_cond_broadcast(&ss->cv);
		pthread_mutex_unlock(&ss->mu);
		pthread_mutex_unlock(&ss->hmu);
		drop_damaged(s, ss);
		put(s, ss);
		return err;
	}
	pthread_mutex_unlock(&ss->mu);
	fx_blake2b_update(&ss->hash, data, len);
	pthread_mutex_lock(&ss->mu);
	ss->hashed += len;
	ss->touched = now_s();
	due = ss->hashed - ss->ckpt >= s->lim.checkpoint_every ||
	      ss->hashed == ss->size;
	pthread_mutex_unlock(&ss->mu);
	if (due)
		err = save_state(s, ss, diag);
	/* Last: a finish waiting for pending == 0 then sees the checkpoint
	 * made and the hash state at rest. */
	pthread_mutex_lock(&ss->mu);
	ss->pending--;
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
	pthread_mutex_unlock(&ss->hmu);
	put(s, ss);
	return err;
}

fx_err fx_upload_chunk(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t offset, const uint8_t *data, size_t len,
                       fx_upload_ack_fn ack, void *ack_arg, uint64_t *acked,
                       fx_diag *diag)
{
	int wrote = 0;
	fx_err err = fx_upload_write(s, id, offset, data, len, ack, ack_arg,
	                             acked, &wrote, diag);

	if (err != FX_OK || !wrote)
		return err;
	return fx_upload_hash(s, id, offset, data, len, diag);
}

void fx_upload_done_release(fx_upload_done *d)
{
	free(d->envelope);
	d->envelope = NULL;
	d->envelope_len = 0;
}

fx_err fx_upload_finish(fx_upload_store *s,
                        const uint8_t id[FX_UPLOAD_ID_BYTES],
                        fx_upload_done *out, fx_diag *diag)
{
	session *ss = get(s, id);
	fx_blake2b_ctx h;
	char path[FX_PATH_MAX + 1];
	uint8_t *env = NULL;
	size_t env_len = 0;
	fx_err err = FX_OK;
	int drop;

	if (ss == NULL)
		return unknown(id, diag);
	pthread_mutex_lock(&ss->mu);
	/* Chunks written but still being hashed finish first (the hashing
	 * stage always completes what it was given). */
	while (ss->pending > 0)
		pthread_cond_wait(&ss->cv, &ss->mu);
	ss->touched = now_s();
	if (ss->damaged || ss->hashed != ss->offset) {
		/* Written bytes whose hashing was lost: the digest does not
		 * cover the file. */
		ss->damaged = 1;
		err = damaged(diag);
		goto out;
	}
	if (ss->state != ST_RECEIVING) {
		err = fx_diag_set(
		    diag, FX_ESTATE,
		    ss->state == ST_DONE
		        ? "upload already decided"
		        : "admission of this upload is running; ask "
		          "again shortly");
		goto out;
	}
	if (ss->offset != ss->size) {
		err = fx_diag_set(
		    diag, FX_ESTATE,
		    "payload incomplete: %llu of %llu bytes received",
		    (unsigned long long)ss->offset,
		    (unsigned long long)ss->size);
		goto out;
	}
	if (fdatasync(ss->fd) != 0) {
		err =
		    fx_diag_set(diag, FX_EIO, "syncing upload staging file: %s",
		                strerror(errno));
		goto out;
	}
	session_path(s, id, ".env", path);
	if ((err = fx_read_file(path, FX_WIRE_ENVELOPE_MAX, &env, &env_len,
	                        diag)) != FX_OK)
		goto out;
	/* Finish a copy: the live state stays resumable should admission
	 * fail for reasons of its own (fx_upload_unfinish). */
	h = ss->hash;
	fx_blake2b_final(&h, out->digest);
	session_path(s, id, ".part", out->path);
	out->size = ss->size;
	memcpy(out->key_id, ss->key_id, FX_KEY_ID_BYTES);
	out->envelope = env;
	out->envelope_len = env_len;
	env = NULL;
	ss->state = ST_ADMITTING;
out:
	drop = ss->damaged;
	pthread_mutex_unlock(&ss->mu);
	if (drop)
		drop_damaged(s, ss);
	put(s, ss);
	free(env);
	return err;
}

void fx_upload_unfinish(fx_upload_store *s,
                        const uint8_t id[FX_UPLOAD_ID_BYTES])
{
	session *ss = get(s, id);

	if (ss == NULL)
		return;
	pthread_mutex_lock(&ss->mu);
	if (ss->state == ST_ADMITTING)
		ss->state = ST_RECEIVING;
	pthread_mutex_unlock(&ss->mu);
	put(s, ss);
}

fx_err fx_upload_set_verdict(fx_upload_store *s,
                             const uint8_t id[FX_UPLOAD_ID_BYTES],
                             const uint8_t *verdict, size_t len, fx_diag *diag)
{
	session *ss = get(s, id);
	uint8_t *buf = NULL, *copy = NULL, *p;
	size_t n = VERDICT_HDR_LEN + len + FX_BLAKE2B_BYTES;
	char path[FX_PATH_MAX + 1];
	fx_err err = FX_OK;

	if (ss == NULL)
		return unknown(id, diag);
	if (len > FX_UPLOAD_VERDICT_MAX) {
		err = fx_diag_set(diag, FX_ETOOBIG, "verdict of %zu bytes > %u",
		                  len, FX_UPLOAD_VERDICT_MAX);
		goto out_put;
	}
	if ((buf = malloc(n)) == NULL ||
	    (copy = malloc(len ? len : 1)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "verdict");
		goto out_put;
	}
	pthread_mutex_lock(&ss->mu);
	ss->touched = now_s();
	p = buf;
	memcpy(p, VERDICT_MAGIC, MAGIC_LEN), p += MAGIC_LEN;
	memcpy(p, ss->id, FX_UPLOAD_ID_BYTES), p += FX_UPLOAD_ID_BYTES;
	memcpy(p, ss->key_id, FX_KEY_ID_BYTES), p += FX_KEY_ID_BYTES;
	memcpy(p, ss->env_digest, FX_BLAKE2B_BYTES), p += FX_BLAKE2B_BYTES;
	put_u64(p, ss->size), p += 8;
	put_u64(p, (uint64_t)ss->touched), p += 8;
	put_u32(p, (uint32_t)len), p += 4;
	if (len)
		memcpy(p, verdict, len), p += len;
	fx_blake2b(p, buf, (size_t)(p - buf));
	session_path(s, id, ".verdict", path);
	if ((err = fx_write_file_atomic(path, buf, n, 0600, diag)) == FX_OK) {
		/* The verdict is durable: the staging files have served. */
		static const char *const gone[] = {".state", ".part", ".env"};
		for (size_t i = 0; i < 3; i++) {
			session_path(s, id, gone[i], path);
			(void)unlink(path);
		}
		if (ss->fd >= 0)
			close(ss->fd);
		if (ss->dfd >= 0)
			close(ss->dfd);
		ss->fd = ss->dfd = -1;
		ss->state = ST_DONE;
		if (len)
			memcpy(copy, verdict, len);
		free(ss->verdict);
		ss->verdict = copy;
		ss->verdict_len = len;
		copy = NULL;
	}
	pthread_mutex_unlock(&ss->mu);
out_put:
	put(s, ss);
	free(buf);
	free(copy);
	return err;
}

fx_err fx_upload_get_verdict(fx_upload_store *s,
                             const uint8_t id[FX_UPLOAD_ID_BYTES],
                             uint8_t **verdict, size_t *len)
{
	session *ss = get(s, id);
	fx_err err = FX_ENOTFOUND;

	if (ss == NULL)
		return FX_ENOTFOUND;
	pthread_mutex_lock(&ss->mu);
	if (ss->state == ST_DONE) {
		uint8_t *c = malloc(ss->verdict_len ? ss->verdict_len : 1);
		if (c == NULL) {
			err = FX_ENOMEM;
		} else {
			if (ss->verdict_len)
				memcpy(c, ss->verdict, ss->verdict_len);
			*verdict = c;
			*len = ss->verdict_len;
			err = FX_OK;
		}
	}
	pthread_mutex_unlock(&ss->mu);
	put(s, ss);
	return err;
}
