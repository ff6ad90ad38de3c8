/* Tests of upload sessions: chunk order and duplicates, quota and bounds,
 * the digest against libsodium's one-shot BLAKE2b of the same bytes, resume
 * from a checkpoint after the store is reopened (a restart), damaged state,
 * stored verdicts surviving a restart, and the two chunk stages (write,
 * then hash on another thread): a finish waits for the hashing, staged
 * bytes are exact across direct and buffered writes, checkpoints name only
 * hashed bytes, and hashing out of order drops the session. */
#include "flexo/upload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fx_test.h"

static char dir[256];

static void fill(uint8_t *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		buf[i] = (uint8_t)(seed >> 24);
	}
}

static fx_upload_limits limits(void)
{
	fx_upload_limits lim;
	fx_upload_limits_default(&lim);
	lim.checkpoint_every = 1000;
	return lim;
}

static void claim_of(fx_upload_claim *c, uint8_t key, uint64_t size)
{
	memset(c->key_id, key, sizeof(c->key_id));
	c->payload_size = size;
}

static int acks;
static uint64_t last_ack;
static void on_ack(void *arg, uint64_t acked)
{
	(void)arg;
	acks++;
	last_ack = acked;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_chunks_and_digest(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	fx_upload_done done;
	uint8_t data[3000], want[FX_BLAKE2B_BYTES], id[FX_UPLOAD_ID_BYTES];
	uint8_t id2[FX_UPLOAD_ID_BYTES], *v = NULL;
	uint64_t off = 99, acked = 0;
	size_t vlen = 0;
	fx_diag d = {{0}};

	fill(data, sizeof(data), 1);
	crypto_generichash(want, sizeof(want), data, sizeof(data), NULL, 0);
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 1, sizeof(data));
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-a", 5, NULL,
	                         id, &off, &d));
	CHECK(off == 0);
	acks = 0;
	CHECK_OK(
	    fx_upload_chunk(s, id, 0, data, 1200, on_ack, NULL, &acked, &d));
	CHECK(acked == 1200 && acks == 1 && last_ack == 1200);
	/* A resent chunk (lost ack) and one from the future: nothing written,
	 * the current offset comes back, no ack callback. */
	CHECK_OK(
	    fx_upload_chunk(s, id, 0, data, 1200, on_ack, NULL, &acked, &d));
	CHECK(acked == 1200 && acks == 1);
	CHECK_OK(
	    fx_upload_chunk(s, id, 2000, data, 10, on_ack, NULL, &acked, &d));
	CHECK(acked == 1200 && acks == 1);
	/* Past the declared size. */
	CHECK(fx_upload_chunk(s, id, 1200, data, sizeof(data), NULL, NULL,
	                      &acked, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "declared payload size") != NULL);
	/* Incomplete: no finish. */
	CHECK(fx_upload_finish(s, id, &done, &d) == FX_ESTATE);
	CHECK(strstr(d.msg, "1200 of 3000") != NULL);
	CHECK_OK(fx_upload_chunk(s, id, 1200, data + 1200, 1800, NULL, NULL,
	                         &acked, &d));
	CHECK(acked == 3000);
	/* Same envelope again: the same session, at its offset. */
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-a", 5, NULL,
	                         id2, &off, &d));
	CHECK(memcmp(id, id2, sizeof(id)) == 0 && off == 3000);
	memset(&done, 0, sizeof(done));
	CHECK_OK(fx_upload_finish(s, id, &done, &d));
	CHECK(memcmp(done.digest, want, sizeof(want)) == 0);
	CHECK(done.size == 3000 && done.envelope_len == 5 &&
	      memcmp(done.envelope, "env-a", 5) == 0);
	CHECK(file_size(done.path) == 3000);
	CHECK(fx_upload_finish(s, id, &done, &d) == FX_ESTATE);
	CHECK(fx_upload_get_verdict(s, id, &v, &vlen) == FX_ENOTFOUND);
	CHECK_OK(
	    fx_upload_set_verdict(s, id, (const uint8_t *)"VERDICT", 7, &d));
	CHECK(file_size(done.path) == -1); /* staging file removed */
	CHECK_OK(fx_upload_get_verdict(s, id, &v, &vlen));
	CHECK(vlen == 7 && memcmp(v, "VERDICT", 7) == 0);
	free(v);
	CHECK(fx_upload_staged(s, claim.key_id) == 0);
	fx_upload_done_release(&done);
	fx_upload_store_close(s);

	/* The verdict survives a restart. */
	s = NULL;
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	v = NULL;
	CHECK_OK(fx_upload_get_verdict(s, id, &v, &vlen));
	CHECK(v && vlen == 7 && memcmp(v, "VERDICT", 7) == 0);
	free(v);
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-a", 5, NULL,
	                         id2, &off, &d));
	CHECK(memcmp(id, id2, sizeof(id)) == 0 && off == 3000);
	fx_upload_store_close(s);
}

static void test_quota_and_bounds(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	uint8_t id[FX_UPLOAD_ID_BYTES];
	uint64_t off;
	fx_diag d = {{0}};

	lim.quota = 100;
	lim.max_payload = 80;
	lim.max_sessions = 3;
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 2, 81);
	CHECK(fx_upload_begin(s, &claim, (const uint8_t *)"q0", 2, NULL, id,
	                      &off, &d) == FX_ETOOBIG);
	claim_of(&claim, 2, 60);
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"q1", 2, NULL, id,
	                         &off, &d));
	CHECK(fx_upload_staged(s, claim.key_id) == 60);
	CHECK(fx_upload_begin(s, &claim, (const uint8_t *)"q2", 2, NULL, id,
	                      &off, &d) == FX_EQUOTA);
	CHECK(strstr(d.msg, "quota") != NULL);
	claim_of(&claim, 3, 60); /* another contributor has its own quota */
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"q3", 2, NULL, id,
	                         &off, &d));
	/* The table is bounded too (the earlier test's finished session is
	 * the third). */
	claim_of(&claim, 4, 1);
	CHECK(fx_upload_begin(s, &claim, (const uint8_t *)"q4", 2, NULL, id,
	                      &off, &d) == FX_ESTATE);
	CHECK(strstr(d.msg, "sessions") != NULL);
	fx_upload_store_close(s);
}

static void test_restart_resume(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	fx_upload_done done;
	uint8_t data[5000], want[FX_BLAKE2B_BYTES], id[FX_UPLOAD_ID_BYTES];
	uint8_t id2[FX_UPLOAD_ID_BYTES];
	char path[512], hex[2 * FX_UPLOAD_ID_BYTES + 1];
	uint64_t off, acked;
	fx_diag d = {{0}};

	lim.quota = 1u << 20;
	fill(data, sizeof(data), 7);
	crypto_generichash(want, sizeof(want), data, sizeof(data), NULL, 0);
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 5, sizeof(data));
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-r", 5, NULL,
	                         id, &off, &d));
	/* 700-byte chunks: checkpoints (every >= 1000 bytes) at 1400 and 2800;
	 * 3500 bytes acknowledged when the coordinator "dies". */
	for (off = 0; off < 3500; off += 700)
		CHECK_OK(fx_upload_chunk(s, id, off, data + off, 700, NULL,
		                         NULL, &acked, &d));
	CHECK(acked == 3500);
	snprintf(path, sizeof(path), "%s/%s.part", dir,
	         fx_hex(hex, id, sizeof(id)));
	CHECK(file_size(path) == 3500);
	fx_upload_store_close(s); /* no final checkpoint: as after SIGKILL */

	s = NULL;
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	CHECK(file_size(path) == 2800); /* cut back to the checkpoint */
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-r", 5, id,
	                         id2, &off, &d));
	CHECK(memcmp(id, id2, sizeof(id)) == 0);
	CHECK(off == 2800);
	/* The client still believes 3500: told 2800, it goes back. */
	CHECK_OK(fx_upload_chunk(s, id, 3500, data + 3500, 700, NULL, NULL,
	                         &acked, &d));
	CHECK(acked == 2800);
	for (off = acked; off < sizeof(data); off += 1100) {
		size_t n =
		    sizeof(data) - off < 1100 ? sizeof(data) - off : 1100;
		CHECK_OK(fx_upload_chunk(s, id, off, data + off, n, NULL, NULL,
		                         &acked, &d));
	}
	CHECK(acked == sizeof(data));
	memset(&done, 0, sizeof(done));
	CHECK_OK(fx_upload_finish(s, id, &done, &d));
	CHECK(memcmp(done.digest, want, sizeof(want)) == 0);
	fx_upload_done_release(&done);
	/* Admission failing internally: the upload stays complete. */
	fx_upload_unfinish(s, id);
	CHECK_OK(fx_upload_finish(s, id, &done, &d));
	CHECK(memcmp(done.digest, want, sizeof(want)) == 0);
	fx_upload_done_release(&done);
	fx_upload_store_close(s);
}

static void test_damaged_state(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	uint8_t data[1500], id[FX_UPLOAD_ID_BYTES], id2[FX_UPLOAD_ID_BYTES];
	char path[512], hex[2 * FX_UPLOAD_ID_BYTES + 1];
	uint64_t off, acked;
	FILE *f;
	fx_diag d = {{0}};

	fill(data, sizeof(data), 9);
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 6, sizeof(data));
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-d", 5, NULL,
	                         id, &off, &d));
	CHECK_OK(fx_upload_chunk(s, id, 0, data, 1200, NULL, NULL, &acked, &d));
	fx_upload_store_close(s);
	snprintf(path, sizeof(path), "%s/%s.state", dir,
	         fx_hex(hex, id, sizeof(id)));
	f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (f) {
		fseek(f, 60, SEEK_SET);
		fputc(0x5a, f);
		fclose(f);
	}
	s = NULL;
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	CHECK(file_size(path) == -1); /* dropped with its files */
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-d", 5, id,
	                         id2, &off, &d));
	CHECK(off == 0 && memcmp(id, id2, sizeof(id)) != 0);
	fx_upload_store_close(s);
}

/* Reads a whole (small) file into buf; its size or -1. */
static long slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return (long)n;
}

/* Chunk sizes that start and end inside 4 KiB blocks and span whole
 * blocks: the staging write mixes buffered edges and direct blocks. */
static const size_t stage_sizes[] = {5000, 9000, 100, 20000, 4096, 3};
#define STAGE_N     (sizeof(stage_sizes) / sizeof(*stage_sizes))
#define STAGE_TOTAL (5000 + 9000 + 100 + 20000 + 4096 + 3)

typedef struct hasher {
	fx_upload_store *s;
	const uint8_t *id;
	const uint8_t *data;
	int ok;
} hasher;

/* Hashes the written chunks late, in order, from another thread. */
static void *hash_late(void *arg)
{
	hasher *h = arg;
	struct timespec ts = {0, 50 * 1000 * 1000};
	uint64_t off = 0;
	fx_diag d = {{0}};

	nanosleep(&ts, NULL);
	h->ok = 1;
	for (size_t i = 0; i < STAGE_N; i++) {
		if (fx_upload_hash(h->s, h->id, off, h->data + off,
		                   stage_sizes[i], &d) != FX_OK)
			h->ok = 0;
		off += stage_sizes[i];
	}
	return NULL;
}

static void test_two_stages(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	fx_upload_done done;
	static uint8_t data[STAGE_TOTAL], back[STAGE_TOTAL + 1];
	uint8_t want[FX_BLAKE2B_BYTES], id[FX_UPLOAD_ID_BYTES];
	char path[512], hex[2 * FX_UPLOAD_ID_BYTES + 1];
	uint64_t off = 0, acked = 0;
	hasher h;
	pthread_t t;
	int wrote = 0;
	fx_diag d = {{0}};

	lim.checkpoint_every = 8192;
	fill(data, sizeof(data), 11);
	crypto_generichash(want, sizeof(want), data, sizeof(data), NULL, 0);
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 7, sizeof(data));
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-2", 5, NULL,
	                         id, &off, &d));
	acks = 0;
	for (size_t i = 0; i < STAGE_N; i++) {
		CHECK_OK(fx_upload_write(s, id, off, data + off, stage_sizes[i],
		                         on_ack, NULL, &acked, &wrote, &d));
		CHECK(wrote == 1 && acked == off + stage_sizes[i]);
		CHECK(last_ack == acked); /* told before the write */
		off += stage_sizes[i];
	}
	CHECK(acks == (int)STAGE_N);
	/* A resent chunk: nothing written, nothing to hash, no ack. */
	CHECK_OK(fx_upload_write(s, id, 0, data, 5000, on_ack, NULL, &acked,
	                         &wrote, &d));
	CHECK(wrote == 0 && acked == sizeof(data) && acks == (int)STAGE_N);
	snprintf(path, sizeof(path), "%s/%s.part", dir,
	         fx_hex(hex, id, sizeof(id)));
	CHECK(slurp(path, back, sizeof(back)) == (long)sizeof(data));
	CHECK(memcmp(back, data, sizeof(data)) == 0);
	/* Finish must wait for the late hashing, then see every byte. */
	h.s = s, h.id = id, h.data = data, h.ok = 0;
	CHECK(pthread_create(&t, NULL, hash_late, &h) == 0);
	memset(&done, 0, sizeof(done));
	CHECK_OK(fx_upload_finish(s, id, &done, &d));
	pthread_join(t, NULL);
	CHECK(h.ok);
	CHECK(done.size == sizeof(data));
	CHECK(memcmp(done.digest, want, sizeof(want)) == 0);
	fx_upload_done_release(&done);
	fx_upload_store_close(s);
}

static void test_checkpoint_names_hashed(void)
{
	fx_upload_limits lim = limits();
	fx_upload_store *s = NULL;
	fx_upload_claim claim;
	uint8_t data[3000], id[FX_UPLOAD_ID_BYTES], id2[FX_UPLOAD_ID_BYTES];
	char path[512], hex[2 * FX_UPLOAD_ID_BYTES + 1];
	uint64_t off = 0, acked = 0;
	int wrote = 0;
	fx_diag d = {{0}};

	fill(data, sizeof(data), 13);
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	claim_of(&claim, 8, sizeof(data));
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-h", 5, NULL,
	                         id, &off, &d));
	/* 2400 bytes written, only the first 1200 hashed (a checkpoint at
	 * 1200: >= 1000 since the last), then the "SIGKILL". */
	for (off = 0; off < 2400; off += 600)
		CHECK_OK(fx_upload_write(s, id, off, data + off, 600, NULL,
		                         NULL, &acked, &wrote, &d));
	CHECK(acked == 2400);
	CHECK_OK(fx_upload_hash(s, id, 0, data, 600, &d));
	CHECK_OK(fx_upload_hash(s, id, 600, data + 600, 600, &d));
	fx_upload_store_close(s);
	s = NULL;
	CHECK_OK(fx_upload_store_open(&s, dir, &lim, &d));
	snprintf(path, sizeof(path), "%s/%s.part", dir,
	         fx_hex(hex, id, sizeof(id)));
	CHECK(file_size(path) == 1200);
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-h", 5, id,
	                         id2, &off, &d));
	CHECK(off == 1200 && memcmp(id, id2, sizeof(id)) == 0);

	/* Hashing out of order (a caller bug) drops the session: its digest
	 * could no longer describe its file. */
	CHECK_OK(fx_upload_write(s, id, 1200, data + 1200, 600, NULL, NULL,
	                         &acked, &wrote, &d));
	CHECK_OK(fx_upload_write(s, id, 1800, data + 1800, 600, NULL, NULL,
	                         &acked, &wrote, &d));
	CHECK(fx_upload_hash(s, id, 1800, data + 1800, 600, &d) ==
	      FX_EINTERNAL);
	CHECK(strstr(d.msg, "out of order") != NULL);
	CHECK(fx_upload_write(s, id, 2400, data + 2400, 600, NULL, NULL, &acked,
	                      &wrote, &d) == FX_ENOTFOUND);
	CHECK(file_size(path) == -1);
	CHECK_OK(fx_upload_begin(s, &claim, (const uint8_t *)"env-h", 5, id,
	                         id2, &off, &d));
	CHECK(off == 0 && memcmp(id, id2, sizeof(id)) != 0);
	fx_upload_store_close(s);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	snprintf(dir, sizeof(dir), "/tmp/fx-upload-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	RUN(test_chunks_and_digest);
	RUN(test_quota_and_bounds);
	RUN(test_restart_resume);
	RUN(test_damaged_state);
	RUN(test_two_stages);
	RUN(test_checkpoint_names_hashed);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return FX_TEST_REPORT();
}
