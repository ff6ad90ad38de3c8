/* Upload sessions on the coordinator: a contribution's payload arrives in
 * chunks at increasing offsets and is written to a staging file while it is
 * hashed (streaming BLAKE2b-256), so memory stays flat whatever the payload
 * size. Session state is checkpointed in the staging directory, so an upload
 * resumes after a dropped connection and after a coordinator restart.
 * Per-contributor disk quota. Thread-safe: one store serves every context. */
#ifndef FLEXO_UPLOAD_H
#define FLEXO_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/fsutil.h"
#include "flexo/hash.h"
#include "flexo/sign.h"

#define FX_UPLOAD_ID_BYTES     16
#define FX_UPLOAD_MAX_SESSIONS 4096       /* hard bound on sessions held */
#define FX_UPLOAD_VERDICT_MAX  (2u << 20) /* bytes of a stored verdict */

typedef struct fx_upload_limits {
	uint64_t quota;        /* bytes staged per contributor key at once */
	uint64_t max_payload;  /* largest payload accepted */
	uint32_t max_sessions; /* sessions held at once (<=
	                          FX_UPLOAD_MAX_SESSIONS) */
	uint64_t checkpoint_every; /* bytes between durable checkpoints (> 0) */
	int64_t idle_expiry;       /* seconds without activity before an
	                            * unfinished session is dropped */
	int64_t verdict_keep;      /* seconds a finished session's verdict is
	                            * kept for a contributor that lost it */
} fx_upload_limits;

/* Sensible defaults: 4 GiB quota, 2 GiB payload, 256 sessions, checkpoint
 * every 64 MiB, 24 h idle expiry, verdicts kept 24 h. */
void fx_upload_limits_default(fx_upload_limits *lim);

typedef struct fx_upload_store fx_upload_store;

/* Opens (creating it 0700) the staging directory and reloads every session
 * checkpointed there: the staging file is cut back to the last checkpoint
 * and the hash state restored; a damaged state file is reported in diag of
 * nothing, its session dropped (the contributor simply starts over). *out
 * is owned by the caller: fx_upload_store_close. */
fx_err fx_upload_store_open(fx_upload_store **out, const char *dir,
                            const fx_upload_limits *lim, fx_diag *diag);
void fx_upload_store_close(fx_upload_store *s);

/* What the service learned from the (not yet verified) contribution: who
 * claims to send it and how big the payload will be. */
typedef struct fx_upload_claim {
	uint8_t key_id[FX_KEY_ID_BYTES];
	uint64_t payload_size;
} fx_upload_claim;

/* Starts a session for `envelope` (the encoded, signed contribution), or
 * resumes the session already holding the same envelope (by resume_id if
 * given and known, else by envelope digest and key). *offset is where the
 * sender continues (0 for a new session, the payload size for one already
 * finished). Refuses FX_ETOOBIG over max_payload, FX_EQUOTA when this key's
 * staged sessions would exceed the quota or the disk cannot hold the
 * payload, FX_ESTATE ("busy", retry later) when max_sessions are open. Outputs
 * written on success only. */
fx_err fx_upload_begin(fx_upload_store *s, const fx_upload_claim *claim,
                       const uint8_t *envelope, size_t env_len,
                       const uint8_t *resume_id, uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t *offset, fx_diag *diag);

/* Called by fx_upload_write once a chunk is taken (it is the next one and
 * fits) and before its bytes are written, with the offset reached: the
 * reply can travel while the disk works. Should the write then fail, the
 * session's offset goes back to the chunk's start; the sender's next chunk
 * is answered with that offset and it resends from there. */
typedef void (*fx_upload_ack_fn)(void *arg, uint64_t acked);

/* A chunk is taken in two stages, so that writing one chunk and hashing
 * the one before can run on two threads:
 *
 * fx_upload_write stores len bytes at `offset`. If offset is not the
 * session's current (written) offset, nothing is written and *acked is
 * that offset (FX_OK: the sender seeks there — this is how duplicates and
 * resumes are handled); *wrote = 0, `ack` is not called. Otherwise `ack`
 * (may be NULL) is called, the bytes are written to the staging file,
 * *acked is the new offset and *wrote = 1: the caller must then pass the
 * same bytes to fx_upload_hash, in the order they were written. FX_ENOTFOUND
 * for an unknown (or dropped) session, FX_ESTATE if it is no longer
 * receiving, FX_ETOOBIG past the declared payload size, FX_EIO on disk
 * errors (nothing counted; `ack` may have been called).
 *
 * fx_upload_hash feeds bytes written by fx_upload_write to the session's
 * digest and makes a checkpoint when due (checkpoints name the hashed
 * offset only). Bytes that are not the next written ones are a caller bug:
 * the session is dropped (its digest could no longer describe its file) and
 * FX_EINTERNAL returned. An error from the checkpoint (FX_EIO) leaves the
 * bytes hashed: the next checkpoint tries again.
 *
 * Concurrent calls are safe; calls for one session are serialised per
 * stage. Memory held by chunks between the stages is the caller's. */
fx_err fx_upload_write(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t offset, const uint8_t *data, size_t len,
                       fx_upload_ack_fn ack, void *ack_arg, uint64_t *acked,
                       int *wrote, fx_diag *diag);
fx_err fx_upload_hash(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                      uint64_t offset, const uint8_t *data, size_t len,
                      fx_diag *diag);

/* Both stages on the calling thread: fx_upload_write (with `ack`), then
 * fx_upload_hash if the bytes were written. *acked as for
 * fx_upload_write. */
fx_err fx_upload_chunk(fx_upload_store *s, const uint8_t id[FX_UPLOAD_ID_BYTES],
                       uint64_t offset, const uint8_t *data, size_t len,
                       fx_upload_ack_fn ack, void *ack_arg, uint64_t *acked,
                       fx_diag *diag);

/* A complete payload handed to admission. envelope is malloc'd (caller
 * frees with fx_upload_done_release); path is the staging file, which the
 * admission may move away (rename) — it is removed when the verdict is
 * stored. */
typedef struct fx_upload_done {
	char path[FX_PATH_MAX + 1];
	uint8_t digest[FX_BLAKE2B_BYTES]; /* BLAKE2b-256 of the staged bytes */
	uint64_t size;
	uint8_t key_id[FX_KEY_ID_BYTES];
	uint8_t *envelope;
	size_t envelope_len;
} fx_upload_done;

void fx_upload_done_release(fx_upload_done *d);

/* Ends the receiving phase. Waits until every written chunk is hashed
 * (fx_upload_hash), then the payload must be complete (FX_ESTATE naming
 * how many bytes are missing otherwise). Syncs the staging file, finishes
 * the digest and marks the session "admitting" (a second finish gets
 * FX_ESTATE until fx_upload_set_verdict or fx_upload_unfinish). */
fx_err fx_upload_finish(fx_upload_store *s,
                        const uint8_t id[FX_UPLOAD_ID_BYTES],
                        fx_upload_done *out, fx_diag *diag);

/* Admission could not decide (internal error): back to a complete,
 * receiving session so the contributor may ask again. */
void fx_upload_unfinish(fx_upload_store *s,
                        const uint8_t id[FX_UPLOAD_ID_BYTES]);

/* Stores the verdict bytes (durably) for the session, removes its staging
 * files and releases its quota. */
fx_err fx_upload_set_verdict(fx_upload_store *s,
                             const uint8_t id[FX_UPLOAD_ID_BYTES],
                             const uint8_t *verdict, size_t len, fx_diag *diag);

/* The stored verdict of a finished session: FX_OK with a malloc'd copy
 * (caller frees), FX_ENOTFOUND if the session has none (yet). */
fx_err fx_upload_get_verdict(fx_upload_store *s,
                             const uint8_t id[FX_UPLOAD_ID_BYTES],
                             uint8_t **verdict, size_t *len);

/* Bytes currently reserved by unfinished sessions of key_id. */
uint64_t fx_upload_staged(fx_upload_store *s,
                          const uint8_t key_id[FX_KEY_ID_BYTES]);

#endif
