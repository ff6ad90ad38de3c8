/* The audit of a ledger export. Order of work: the trusted key, signed
 * checkpoints, the committed leaf hashes (leaves.bin) authenticated against
 * them, then every entry on `threads` threads (decode, leaf hash, envelope
 * signature), then one ordered pass for the rules that depend on history
 * (rosters, withdrawals, refused withdrawals, assemblies), then the state
 * file. */
#include "flexo/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flexo/assemble.h"
#include "flexo/blobstore.h"
#include "flexo/config.h"
#include "flexo/fsutil.h"
#include "flexo/ledger.h"
#include "flexo/merkle.h"

enum {
	K_ROSTER = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER,
	K_ANCHOR = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR,
	K_ACCEPTED = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED,
	K_REJECTED = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED,
	K_WITHDRAWAL = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL,
	K_ASSEMBLY = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY,
	K_REFUSED = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED,
};

static const char *kind_name(int k)
{
	switch (k) {
	case K_ROSTER:
		return "roster update";
	case K_ANCHOR:
		return "anchor release";
	case K_ACCEPTED:
		return "accepted contribution";
	case K_REJECTED:
		return "rejected contribution";
	case K_WITHDRAWAL:
		return "withdrawal";
	case K_ASSEMBLY:
		return "assembly";
	case K_REFUSED:
		return "refused withdrawal";
	default:
		return "entry";
	}
}

/* ---- state file ---- */

fx_err fx_audit_state_load(const char *path, fx_audit_state *out, fx_diag *diag)
{
	char buf[FX_AUDIT_STATE_MAX + 1], vkey[256];
	char hex[2 * FX_HASH_LEN + 1];
	unsigned long long size = 0;
	fx_audit_state st;
	FILE *f;
	size_t n;
	int fields;
	fx_err err;

	memset(&st, 0, sizeof(st));
	if ((f = fopen(path, "rb")) == NULL)
		return fx_diag_set(diag,
		                   errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                   "state %s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > FX_AUDIT_STATE_MAX)
		return fx_diag_set(diag, FX_ETOOBIG, "state %s: over %d bytes",
		                   path, FX_AUDIT_STATE_MAX);
	buf[n] = '\0';
	fields =
	    sscanf(buf, "flexo-audit-state 1\nvkey %255s\nsize %llu\nroot %64s",
	           vkey, &size, hex);
	if (fields != 1 && fields != 3)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "state %s: not a flexo-audit state file",
		                   path);
	_Static_assert(FX_NOTE_VKEY_MAX < 255, "vkey scan width");
	if ((err = fx_note_vkey_parse(vkey, &st.log, diag)) != FX_OK) {
		fx_diag_prefix(diag, "state %s", path);
		return err;
	}
	if (fields == 3) {
		if (fx_merkle_from_hex(hex, st.checkpoint.root) != 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "state %s: bad root", path);
		st.has_checkpoint = 1;
		st.checkpoint.size = size;
		memcpy(st.checkpoint.origin, st.log.name, sizeof(st.log.name));
	}
	*out = st;
	return FX_OK;
}

fx_err fx_audit_state_save(const char *path, const fx_audit_state *st,
                           fx_diag *diag)
{
	char vkey[FX_NOTE_VKEY_MAX], hex[2 * FX_HASH_LEN + 1];
	char buf[FX_AUDIT_STATE_MAX];
	fx_err err;
	int n;

	if ((err = fx_note_vkey_format(&st->log, vkey, sizeof(vkey), diag)))
		return err;
	if (st->has_checkpoint) {
		fx_merkle_hex(st->checkpoint.root, hex);
		n = snprintf(buf, sizeof(buf),
		             "flexo-audit-state 1\nvkey %s\nsize %llu\n"
		             "root %s\n",
		             vkey, (unsigned long long)st->checkpoint.size,
		             hex);
	} else {
		n = snprintf(buf, sizeof(buf), "flexo-audit-state 1\nvkey %s\n",
		             vkey);
	}
	if (n < 0 || (size_t)n >= sizeof(buf))
		return fx_diag_set(diag, FX_ETOOBIG, "state too large");
	return fx_write_file_atomic(path, buf, (size_t)n, 0644, diag);
}

/* ---- files of the export ---- */

typedef struct mapped {
	uint8_t *p;
	size_t n;
} mapped;

static fx_err map_file(const char *dir, const char *name, mapped *m,
                       fx_diag *diag)
{
	char path[4200];
	struct stat sb;
	int fd;

	m->p = NULL;
	m->n = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY)) < 0)
		return fx_diag_set(
		    diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		    "export: cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return fx_diag_set(diag, FX_EIO, "export: stat %s", path);
	}
	if (sb.st_size == 0) {
		close(fd);
		return FX_OK;
	}
	m->p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->p == MAP_FAILED) {
		m->p = NULL;
		return fx_diag_set(diag, FX_EIO, "export: cannot map %s", path);
	}
	m->n = (size_t)sb.st_size;
	return FX_OK;
}

static void unmap(mapped *m)
{
	if (m->p != NULL)
		munmap(m->p, m->n);
	m->p = NULL;
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Splits length-prefixed records; *pos[i] is where record i's bytes start. */
static fx_err split_records(const mapped *m, const char *what, size_t max_len,
                            uint64_t max_count, uint64_t **pos, uint64_t *count,
                            fx_diag *diag)
{
	uint64_t n = 0, cap = 0, *v = NULL, *p;
	size_t off = 0;

	while (off < m->n) {
		uint32_t len;
		if (m->n - off < 4) {
			free(v);
			return fx_diag_set(diag, FX_EFORMAT,
			                   "%s: record %llu has a truncated "
			                   "length",
			                   what, (unsigned long long)n);
		}
		len = rd_be32(m->p + off);
		if (len > max_len || len > m->n - off - 4) {
			free(v);
			return fx_diag_set(diag, FX_EFORMAT,
			                   "%s: record %llu of %u bytes is "
			                   "truncated or over the %zu limit",
			                   what, (unsigned long long)n, len,
			                   max_len);
		}
		if (n == max_count) {
			free(v);
			return fx_diag_set(diag, FX_ETOOBIG,
			                   "%s: more than %llu records", what,
			                   (unsigned long long)max_count);
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((p = realloc(v, cap * sizeof(*v))) == NULL) {
				free(v);
				return fx_diag_set(diag, FX_ENOMEM,
				                   "out of memory");
			}
			v = p;
		}
		v[n++] = off + 4;
		off += 4 + (size_t)len;
	}
	*pos = v;
	*count = n;
	return FX_OK;
}

/* ---- rosters, in log order ---- */

typedef struct roster_at {
	uint64_t from; /* in force for entries after this one */
	fx_roster roster;
} roster_at;

/* ---- per-entry work, in parallel ---- */

typedef struct entry_info {
	int64_t time;
	uint64_t ref; /* fx_entry_facts.ref */
	uint8_t kind;
	uint8_t has_signer;
	uint8_t signer[32];
	uint8_t digest[32];  /* accepted: manifest digest; withdrawal: the
	                      * contribution digest it names */
	uint8_t release[32]; /* accepted: the anchor release it names;
	                      * anchor: its own release digest */
	uint64_t sequence;   /* refused withdrawal that verifies: its own */
	uint8_t refusal;     /* refused withdrawal: fx_refusal */
	uint8_t has_named;   /* refused withdrawal: names a 32-byte digest */
} entry_info;

/* Work is handed out in chunks from a shared counter, so a thread slowed by
 * another process on its core does not hold the others back. */
#define CHUNK_ENTRIES 1024

typedef struct work_queue {
	_Atomic uint64_t next;  /* first entry of the next chunk */
	_Atomic uint64_t limit; /* lowest failing entry so far: no work above */
	uint64_t n;
} work_queue;

typedef struct worker {
	pthread_t thread;
	work_queue *q;
	const uint8_t *base;
	const uint64_t *pos;
	const roster_at *rosters;
	size_t n_rosters;
	entry_info *info;
	uint8_t (*leaf)[FX_HASH_LEN];
	uint64_t sigs;
	uint64_t fail_index;
	fx_err err;
	fx_diag diag;
	int started;
} worker;

/* Lowers q->limit to i if i is lower. */
static void lower_limit(work_queue *q, uint64_t i)
{
	uint64_t cur = atomic_load(&q->limit);
	while (i < cur && !atomic_compare_exchange_weak(&q->limit, &cur, i))
		;
}

/* Checks entries [c, end); returns 0, or -1 after recording a failure. */
static int work_chunk(worker *w, uint64_t c, uint64_t end)
{
	size_t r = 0; /* rosters[r - 1] is in force; none while r == 0 */

	while (r < w->n_rosters && w->rosters[r].from < c)
		r++;
	for (uint64_t i = c; i < end; i++) {
		const uint8_t *p = w->base + w->pos[i];
		uint32_t len = rd_be32(p - 4);
		fx_entry_facts f;
		fx_entry *e;

		while (r < w->n_rosters && w->rosters[r].from < i)
			r++;
		fx_merkle_leaf_hash(p, len, w->leaf[i]);
		e = flexo__ledger__v1__entry__unpack(NULL, len, p);
		if (e == NULL) {
			w->err = fx_diag_set(&w->diag, FX_EFORMAT,
			                     "entry %llu: does not decode as a "
			                     "flexo.ledger.v1.Entry",
			                     (unsigned long long)i);
			w->fail_index = i;
			lower_limit(w->q, i);
			return -1;
		}
		if (e->version != FX_LEDGER_ENTRY_VERSION || e->index != i ||
		    e->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND__NOT_SET) {
			w->err = fx_diag_set(
			    &w->diag, FX_EFORMAT,
			    e->index != i
			        ? "entry %llu: carries index %llu (an entry "
			          "was "
			          "dropped, duplicated or reordered)"
			        : "entry %llu: version %llu or kind not valid",
			    (unsigned long long)i,
			    (unsigned long long)(e->index != i ? e->index
			                                       : e->version));
			w->fail_index = i;
			lower_limit(w->q, i);
			flexo__ledger__v1__entry__free_unpacked(e, NULL);
			return -1;
		}
		w->info[i].kind = (uint8_t)e->kind_case;
		w->info[i].time = e->time_unix;
		if ((int)e->kind_case != K_ROSTER) {
			fx_err err = fx_ledger_check_entry(
			    e, r > 0 ? &w->rosters[r - 1].roster : NULL, &f,
			    &w->diag);
			if (err != FX_OK) {
				w->err = err;
				w->fail_index = i;
				fx_diag_prefix(&w->diag, "entry %llu (%s)",
				               (unsigned long long)i,
				               kind_name(e->kind_case));
				lower_limit(w->q, i);
				flexo__ledger__v1__entry__free_unpacked(e,
				                                        NULL);
				return -1;
			}
			w->info[i].ref = f.ref;
			if (f.has_signer) {
				w->info[i].has_signer = 1;
				memcpy(w->info[i].signer, f.signer, 32);
				w->sigs++;
			}
			memcpy(w->info[i].digest,
			       (int)e->kind_case == K_WITHDRAWAL ||
			               (int)e->kind_case == K_REFUSED
			           ? f.named_digest
			           : f.doc_digest,
			       32);
			w->info[i].sequence = f.sequence;
			w->info[i].refusal = (uint8_t)f.refusal;
			w->info[i].has_named = (uint8_t)f.has_named;
			memcpy(w->info[i].release,
			       (int)e->kind_case == K_ANCHOR ? f.doc_digest
			                                     : f.release_digest,
			       32);
		}
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	}
	return 0;
}

static void *work(void *arg)
{
	worker *w = arg;

	w->fail_index = FX_AUDIT_NO_INDEX;
	for (;;) {
		uint64_t c = atomic_fetch_add(&w->q->next, CHUNK_ENTRIES);
		uint64_t end = c + CHUNK_ENTRIES;
		if (c >= w->q->n || c >= atomic_load(&w->q->limit))
			break;
		if (end > w->q->n)
			end = w->q->n;
		if (work_chunk(w, c, end) != 0)
			break;
	}
	return NULL;
}

/* ---- the ordered rules ---- */

typedef struct rules {
	uint64_t release_version;
	int have_release;
	uint64_t *releases; /* entries of the anchor releases so far */
	size_t n_releases;
	/* per entry: 0 not a live contribution, 1 live, w + 2 withdrawn by w */
	uint64_t *status;
	uint64_t live;
} rules;

/* Accepted contributions by manifest digest, for the refusals that say
 * what a withdrawal names is (not) logged. */
typedef struct acc_key {
	uint8_t digest[32];
	uint64_t idx;
} acc_key;

static int cmp_acc(const void *a, const void *b)
{
	const acc_key *x = a, *y = b;
	int c = memcmp(x->digest, y->digest, 32);
	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The first accepted entry with manifest digest d before entry `before`,
 * or -1. */
static int64_t first_accepted(const acc_key *v, size_t n, const uint8_t *d,
                              uint64_t before)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(v[mid].digest, d, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && memcmp(v[lo].digest, d, 32) == 0 && v[lo].idx < before)
		return (int64_t)v[lo].idx;
	return -1;
}

/* A refused withdrawal's reason against the entries before it: the same
 * rules fx_ledger_append applies (docs/ledger.md §1), from the export. */
static fx_err apply_refusal(uint64_t i, const entry_info *info,
                            const acc_key *acc, size_t n_acc, const mapped *em,
                            const uint64_t *pos, fx_diag *diag)
{
	const entry_info *x = &info[i];
	const char *g = fx_refusal_name((fx_refusal)x->refusal);
	uint64_t ev = x->ref;
	int64_t j = -1;

	if (x->refusal == FX_REFUSAL_FORMAT)
		return FX_OK;
	if (x->has_named)
		j = first_accepted(acc, n_acc, x->digest, i);
	if (x->refusal == FX_REFUSAL_UNKNOWN) {
		if (j >= 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "entry %llu (refused withdrawal): "
			                   "refused as '%s', but entry %lld is "
			                   "the accepted contribution it names",
			                   (unsigned long long)i, g,
			                   (long long)j);
		return FX_OK;
	}
	if (j < 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "entry %llu (refused withdrawal): refused as "
		    "'%s', but it names no accepted contribution "
		    "logged before it (that is "
		    "'unknown-contribution')",
		    (unsigned long long)i, g);
	if (x->refusal == FX_REFUSAL_SIGNATURE)
		return FX_OK;
	if (x->refusal == FX_REFUSAL_NOT_OWNER) {
		if (ev >= i || info[ev].kind != K_ACCEPTED ||
		    memcmp(info[ev].digest, x->digest, 32) != 0)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (refused withdrawal): "
			    "refused as 'not-owner', but evidence "
			    "entry %llu is not the accepted "
			    "contribution it names",
			    (unsigned long long)i, (unsigned long long)ev);
		if (memcmp(info[ev].signer, x->signer, 32) == 0)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (refused withdrawal): "
			    "refused as 'not-owner', but its signer "
			    "made contribution %llu",
			    (unsigned long long)i, (unsigned long long)ev);
		return FX_OK;
	}
	if (memcmp(info[j].signer, x->signer, 32) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "entry %llu (refused withdrawal): refused as "
		    "'%s', but it is not signed by the owner of "
		    "contribution %lld (that is 'not-owner')",
		    (unsigned long long)i, g, (long long)j);
	if (x->refusal == FX_REFUSAL_ALREADY_WITHDRAWN) {
		if (ev >= i || info[ev].kind != K_WITHDRAWAL ||
		    info[ev].ref != (uint64_t)j)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (refused withdrawal): "
			    "refused as 'already-withdrawn', but "
			    "entry %llu is not a withdrawal of "
			    "contribution %lld",
			    (unsigned long long)i, (unsigned long long)ev,
			    (long long)j);
		return FX_OK;
	}
	{ /* replay: the evidence holds a document by the same key with a
	   * sequence at least this one's */
		const uint8_t *p = ev < i ? em->p + pos[ev] : NULL;
		if (p == NULL ||
		    !fx_ledger_entry_shows_sequence(p, rd_be32(p - 4),
		                                    x->signer, x->sequence))
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (refused withdrawal): "
			    "refused as 'replay', but evidence "
			    "entry %llu holds no document of this "
			    "key with a sequence of at least %llu",
			    (unsigned long long)i, (unsigned long long)ev,
			    (unsigned long long)x->sequence);
	}
	return FX_OK;
}

static fx_err apply_withdrawal(rules *r, uint64_t i, const entry_info *info,
                               fx_diag *diag)
{
	uint64_t j = info[i].ref;

	if (j >= i || r->status[j] != 1)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "entry %llu (withdrawal): names entry %llu, "
		                   "which is not a live accepted contribution",
		                   (unsigned long long)i,
		                   (unsigned long long)j);
	if (memcmp(info[j].signer, info[i].signer, 32) != 0)
		return fx_diag_set(diag, FX_EPERM,
		                   "entry %llu (withdrawal): not signed by the "
		                   "contributor of entry %llu",
		                   (unsigned long long)i,
		                   (unsigned long long)j);
	if (memcmp(info[j].digest, info[i].digest, 32) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "entry %llu (withdrawal): names a contribution "
		    "digest other than that of entry %llu",
		    (unsigned long long)i, (unsigned long long)j);
	r->status[j] = i + 2;
	r->live--;
	return FX_OK;
}

static fx_err check_assembly(const rules *r, uint64_t i,
                             const Flexo__Ledger__V1__Assembly *a,
                             const entry_info *info, uint64_t *failed,
                             fx_diag *diag)
{
	uint64_t prev = 0, k;

	*failed = i;
	if (a->model_digest.len != 32)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "entry %llu (assembly): model digest is %zu "
		                   "bytes",
		                   (unsigned long long)i, a->model_digest.len);
	if (a->anchor_index >= i || info[a->anchor_index].kind != K_ANCHOR)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "entry %llu (assembly): builds on entry %llu, "
		    "which is not an earlier anchor release",
		    (unsigned long long)i, (unsigned long long)a->anchor_index);
	for (size_t n = 0; n < a->n_included; n++) {
		uint64_t j = a->included[n];
		if (n > 0 && j <= prev)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "entry %llu (assembly): included "
			    "entries not strictly ascending at %llu",
			    (unsigned long long)i, (unsigned long long)j);
		prev = j;
		if (j >= i || r->status[j] == 0)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (assembly): includes entry "
			    "%llu, which is not an accepted "
			    "contribution",
			    (unsigned long long)i, (unsigned long long)j);
		if (r->status[j] > 1)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "entry %llu (assembly): includes expert "
			    "of entry %llu, withdrawn by entry %llu",
			    (unsigned long long)i, (unsigned long long)j,
			    (unsigned long long)(r->status[j] - 2));
	}
	if (a->n_included != r->live) {
		/* Every listed entry is live, so some live one is missing. */
		size_t n = 0;
		for (k = 0; k < i; k++) {
			if (r->status[k] != 1)
				continue;
			if (n < a->n_included && a->included[n] == k) {
				n++;
				continue;
			}
			break;
		}
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "entry %llu (assembly): omits accepted, not "
		                   "withdrawn contribution %llu",
		                   (unsigned long long)i,
		                   (unsigned long long)k);
	}
	return FX_OK;
}

/* A blob of the export by digest: present and hashing to its name. */
static fx_err blob_path(const fx_blobstore *bs, const uint8_t digest[32],
                        char *path, size_t cap, fx_audit_report *rep,
                        fx_diag *diag)
{
	fx_err err;
	if ((err = fx_blobstore_check(bs, digest, diag)) != FX_OK ||
	    (err = fx_blobstore_path(bs, digest, path, cap, diag)) != FX_OK)
		return err;
	rep->blobs_checked++;
	return FX_OK;
}

/* The anchor file and router-rows file digests of the release at entry k. */
static fx_err release_files(const mapped *em, const uint64_t *pos, uint64_t k,
                            uint8_t anchor[32], uint8_t router[32],
                            fx_diag *diag)
{
	const uint8_t *p = em->p + pos[k];
	fx_entry *e = flexo__ledger__v1__entry__unpack(NULL, rd_be32(p - 4), p);
	Flexo__V1__Envelope *env = NULL;
	ProtobufCMessage *m = NULL;
	Flexo__V1__AnchorRelease *rel;
	fx_err err;

	if (e == NULL || (int)e->kind_case != K_ANCHOR) {
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "entry %llu changed under the audit",
		                  (unsigned long long)k);
		goto out;
	}
	if ((err = fx_envelope_open(e->anchor->envelope.data,
	                            e->anchor->envelope.len, FX_TYPE_RELEASE,
	                            &env, diag)) != FX_OK ||
	    (err = fx_wire_decode(&flexo__v1__anchor_release__descriptor,
	                          env->payload.data, env->payload.len,
	                          FX_WIRE_DOC_MAX, &m, diag)) != FX_OK)
		goto out;
	rel = (Flexo__V1__AnchorRelease *)m;
	if (rel->anchor_blake2b.len != 32 ||
	    rel->router_pub_blake2b.len != 32) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "release of entry %llu lacks file digests",
		                  (unsigned long long)k);
		goto out;
	}
	memcpy(anchor, rel->anchor_blake2b.data, 32);
	memcpy(router, rel->router_pub_blake2b.data, 32);
out:
	fx_wire_free(m);
	if (env != NULL)
		fx_wire_free(&env->base);
	if (e != NULL)
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	return err;
}

/* --reassemble: every input of the assembly at entry i is in DIR/blobs and
 * hashes to its logged digest (the release's anchor and router-rows files,
 * each included expert's payload); fx_assemble over them, in the logged
 * order with the logged top-k, must reproduce the logged model digest. The
 * served model file itself, if exported too, must hash to it. */
static fx_err reassemble(const char *dir, uint64_t i,
                         const Flexo__Ledger__V1__Assembly *a, const mapped *em,
                         const uint64_t *pos, fx_audit_report *rep,
                         fx_diag *diag)
{
	char bdir[FX_PATH_MAX], anchor_path[FX_PATH_MAX],
	    router_path[FX_PATH_MAX];
	char tmpdir[FX_PATH_MAX], out_path[FX_PATH_MAX + 16];
	char got_hex[65], want_hex[65];
	uint8_t anchor[32], router[32], got[32];
	char(*paths)[FX_PATH_MAX] = NULL;
	const char **list = NULL;
	const char *tmp = getenv("TMPDIR");
	fx_blobstore bs;
	fx_err err;
	size_t n = a->n_included;

	tmpdir[0] = '\0';
	snprintf(bdir, sizeof(bdir), "%s/%s", dir, FX_EXPORT_BLOBS);
	if (strlen(bdir) > FX_BLOB_MAX_DIR)
		return fx_diag_set(diag, FX_EINVAL, "export path too long");
	memcpy(bs.dir, bdir, strlen(bdir) + 1);
	if (n > FX_MAX_EXPERTS)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "entry %llu (assembly): %zu experts",
		                   (unsigned long long)i, n);
	if ((paths = calloc(n + 1, sizeof(*paths))) == NULL ||
	    (list = calloc(n + 1, sizeof(*list))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	if ((err = release_files(em, pos, a->anchor_index, anchor, router,
	                         diag)) != FX_OK ||
	    (err = blob_path(&bs, anchor, anchor_path, sizeof(anchor_path), rep,
	                     diag)) != FX_OK ||
	    (err = blob_path(&bs, router, router_path, sizeof(router_path), rep,
	                     diag)) != FX_OK) {
		fx_diag_prefix(diag,
		               "entry %llu (assembly): anchor release of entry "
		               "%llu",
		               (unsigned long long)i,
		               (unsigned long long)a->anchor_index);
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		uint64_t j = a->included[k];
		const uint8_t *p = em->p + pos[j];
		fx_entry *e =
		    flexo__ledger__v1__entry__unpack(NULL, rd_be32(p - 4), p);
		if (e == NULL || (int)e->kind_case != K_ACCEPTED) {
			if (e != NULL)
				flexo__ledger__v1__entry__free_unpacked(e,
				                                        NULL);
			err = fx_diag_set(diag, FX_EINTERNAL,
			                  "entry %llu changed under the audit",
			                  (unsigned long long)j);
			goto out;
		}
		err = blob_path(&bs, e->accepted->payload_digest.data, paths[k],
		                sizeof(paths[k]), rep, diag);
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
		if (err != FX_OK) {
			fx_diag_prefix(diag,
			               "entry %llu (assembly): expert of entry "
			               "%llu",
			               (unsigned long long)i,
			               (unsigned long long)j);
			goto out;
		}
		list[k] = paths[k];
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/flexo-audit.XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		tmpdir[0] = '\0';
		err = fx_diag_set(diag, FX_EIO,
		                  "cannot create a folder to re-assemble in");
		goto out;
	}
	snprintf(out_path, sizeof(out_path), "%s/model", tmpdir);
	err = fx_assemble(anchor_path, router_path, list, (int)n, (int)a->top_k,
	                  out_path, got, diag);
	unlink(out_path);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "entry %llu (assembly): re-assembly",
		               (unsigned long long)i);
		goto out;
	}
	if (memcmp(got, a->model_digest.data, 32) != 0) {
		fx_hex(got_hex, got, 32);
		fx_hex(want_hex, a->model_digest.data, 32);
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "entry %llu (assembly): the experts re-assemble "
		    "to a model with BLAKE2b-256 %.16s..., the log "
		    "says %.16s...",
		    (unsigned long long)i, got_hex, want_hex);
		goto out;
	}
	rep->reassembled++;
	/* The served file, if the export carries it, is that model. */
	err = fx_blobstore_check(&bs, a->model_digest.data, diag);
	if (err == FX_ENOTFOUND) {
		err = FX_OK;
	} else if (err != FX_OK) {
		fx_diag_prefix(diag, "entry %llu (assembly): served model",
		               (unsigned long long)i);
	} else {
		rep->blobs_checked++;
	}
out:
	if (tmpdir[0] != '\0')
		rmdir(tmpdir);
	free(paths);
	free(list);
	return err;
}

/* ---- roots at chosen sizes ---- */

typedef struct size_root {
	uint64_t size;
	uint8_t root[FX_HASH_LEN];
	size_t slot; /* index of the checkpoint, or SIZE_MAX for the state */
} size_root;

static int cmp_size(const void *a, const void *b)
{
	const size_root *x = a, *y = b;
	return x->size < y->size ? -1 : x->size > y->size;
}

/* Fills roots[k].root for sorted roots[k].size <= n from leaf hashes. */
static void roots_at(const uint8_t (*leaf)[FX_HASH_LEN], uint64_t n,
                     size_root *roots, size_t k)
{
	fx_merkle_frontier f;
	size_t next = 0;

	fx_merkle_frontier_init(&f);
	while (next < k && roots[next].size == 0)
		fx_merkle_empty_root(roots[next++].root);
	for (uint64_t i = 0; i < n && next < k; i++) {
		(void)fx_merkle_frontier_append(&f, leaf[i], NULL, NULL);
		while (next < k && roots[next].size == i + 1)
			fx_merkle_frontier_root(&f, roots[next++].root);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

fx_err fx_audit_export(const char *dir, const fx_audit_opts *opts,
                       fx_audit_report *rep, fx_diag *diag)
{
	mapped em = {0}, lm = {0}, cm = {0}, vm = {0};
	uint64_t *pos = NULL, *cpos = NULL, n = 0, nc = 0;
	fx_checkpoint *cps = NULL;
	size_root *roots = NULL;
	entry_info *info = NULL;
	uint8_t(*leaf)[FX_HASH_LEN] = NULL;
	worker *w = NULL;
	work_queue queue;
	roster_at *rosters = NULL;
	size_t n_rosters = 0, n_acc = 0;
	acc_key *acc = NULL;
	rules r;
	fx_audit_state state;
	fx_note_verifier trusted;
	int have_state = 0, threads, leaves_ok = 0;
	size_t nroots = 0;
	double t0 = now_s();
	fx_err err;

	memset(rep, 0, sizeof(*rep));
	memset(&r, 0, sizeof(r));
	memset(&state, 0, sizeof(state));
	memset(&trusted, 0, sizeof(trusted));
	rep->failed_index = FX_AUDIT_NO_INDEX;
	threads = opts->threads < 1 ? 1 : opts->threads;
	if (threads > FX_AUDIT_MAX_THREADS)
		threads = FX_AUDIT_MAX_THREADS;

	/* 1. Whom to trust: the given key and/or the one remembered. */
	if (opts->state_path != NULL) {
		err = fx_audit_state_load(opts->state_path, &state, diag);
		if (err == FX_OK)
			have_state = 1;
		else if (err != FX_ENOTFOUND)
			goto out;
	}
	if (opts->trusted != NULL) {
		trusted = *opts->trusted;
		if (have_state && (trusted.id != state.log.id ||
		                   memcmp(trusted.pk, state.log.pk, 32) != 0 ||
		                   strcmp(trusted.name, state.log.name) != 0)) {
			err = fx_diag_set(diag, FX_EMISMATCH,
			                  "the given log key is not the one in "
			                  "state file %s",
			                  opts->state_path);
			goto out;
		}
	} else if (have_state) {
		trusted = state.log;
	} else {
		err = fx_diag_set(diag, FX_EINVAL,
		                  "no trusted log key: give one, or a state "
		                  "file from an earlier audit");
		goto out;
	}
	if (have_state && state.has_checkpoint)
		rep->previous_size = state.checkpoint.size;

	/* 2. The export's own key must be the trusted one. */
	if ((err = map_file(dir, FX_EXPORT_VKEY, &vm, diag)) != FX_OK)
		goto out;
	{
		char text[FX_NOTE_VKEY_MAX + 2];
		fx_note_verifier ev;
		size_t k = vm.n < sizeof(text) - 1 ? vm.n : sizeof(text) - 1;
		memcpy(text, vm.p ? (char *)vm.p : "", k);
		while (k > 0 && (text[k - 1] == '\n' || text[k - 1] == '\r'))
			k--;
		text[k] = '\0';
		if ((err = fx_note_vkey_parse(text, &ev, diag)) != FX_OK) {
			fx_diag_prefix(diag, "export %s", FX_EXPORT_VKEY);
			goto out;
		}
		if (ev.id != trusted.id || memcmp(ev.pk, trusted.pk, 32) != 0 ||
		    strcmp(ev.name, trusted.name) != 0) {
			err =
			    fx_diag_set(diag, FX_EMISMATCH,
			                "export is signed by log key %s+%08x, "
			                "not the trusted %s+%08x",
			                ev.name, (unsigned)ev.id, trusted.name,
			                (unsigned)trusted.id);
			goto out;
		}
	}

	/* 3. Every checkpoint must be signed by the log; sizes never shrink. */
	if ((err = map_file(dir, FX_EXPORT_CHECKPOINTS, &cm, diag)) ||
	    (err = split_records(&cm, FX_EXPORT_CHECKPOINTS, FX_NOTE_MAX_SIZE,
	                         FX_AUDIT_MAX_CHECKPOINTS, &cpos, &nc, diag)))
		goto out;
	if (nc > 0 && (cps = calloc(nc, sizeof(*cps))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t k = 0; k < nc; k++) {
		const char *note = (const char *)cm.p + cpos[k];
		if ((err = fx_checkpoint_open(note, rd_be32(cm.p + cpos[k] - 4),
		                              &trusted, &cps[k], diag))) {
			fx_diag_prefix(diag, "checkpoint #%llu",
			               (unsigned long long)k);
			goto out;
		}
		if (k > 0 && cps[k].size < cps[k - 1].size) {
			err = fx_diag_set(
			    diag, FX_EROLLBACK,
			    "checkpoint #%llu (size %llu) is smaller "
			    "than checkpoint #%llu (size %llu): the "
			    "log signed a rollback",
			    (unsigned long long)k,
			    (unsigned long long)cps[k].size,
			    (unsigned long long)(k - 1),
			    (unsigned long long)cps[k - 1].size);
			goto out;
		}
		rep->checkpoints++;
	}
	if (nc > 0)
		rep->newest = cps[nc - 1];
	if (have_state && state.has_checkpoint &&
	    rep->newest.size < state.checkpoint.size) {
		err = fx_diag_set(
		    diag, FX_EROLLBACK,
		    "rollback: the export's newest checkpoint (size "
		    "%llu) is older than the checkpoint of size %llu "
		    "accepted by an earlier audit",
		    (unsigned long long)rep->newest.size,
		    (unsigned long long)state.checkpoint.size);
		goto out;
	}

	/* 4. Entries and committed leaves. */
	if ((err = map_file(dir, FX_EXPORT_ENTRIES, &em, diag)) ||
	    (err = split_records(&em, FX_EXPORT_ENTRIES, FX_LEDGER_MAX_ENTRY,
	                         FX_LEDGER_MAX_ENTRIES, &pos, &n, diag)))
		goto out;
	rep->entries = n;
	if ((err = map_file(dir, FX_EXPORT_LEAVES, &lm, diag)) != FX_OK &&
	    err != FX_ENOTFOUND)
		goto out;

	/* Roots wanted: every checkpoint's size, and the remembered one. */
	nroots = (size_t)nc + 1;
	if ((roots = calloc(nroots, sizeof(*roots))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nc; k++) {
		roots[k].size = cps[k].size;
		roots[k].slot = k;
	}
	if (have_state && state.has_checkpoint) {
		roots[nc].size = state.checkpoint.size;
		roots[nc].slot = SIZE_MAX;
	} else {
		nroots--;
	}
	qsort(roots, nroots, sizeof(*roots), cmp_size);

	/* leaves.bin is only a locator: if it reproduces every signed root
	 * it is authentic, and a differing entry leaf names the entry. */
	if (nc > 0 && lm.n == n * FX_HASH_LEN) {
		roots_at((const uint8_t(*)[FX_HASH_LEN])lm.p, n, roots, nroots);
		leaves_ok = 1;
		for (size_t k = 0; k < nroots; k++)
			if (roots[k].slot != SIZE_MAX &&
			    memcmp(roots[k].root, cps[roots[k].slot].root,
			           FX_HASH_LEN) != 0)
				leaves_ok = 0;
	}

	/* 5a. Rosters first, in order: each later entry is checked against
	 * the roster in force at it. The first roster is trusted on its own
	 * root signatures (it is what the log committed to). */
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *p = em.p + pos[i];
		uint32_t len = rd_be32(p - 4);
		int k = fx_ledger_peek_kind(p, len);
		fx_entry *e;
		roster_at *grown;

		if (k < 0) {
			rep->failed_index = i;
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "entry %llu: not a protobuf message",
			                  (unsigned long long)i);
			goto out;
		}
		if (k != K_ROSTER)
			continue;
		e = flexo__ledger__v1__entry__unpack(NULL, len, p);
		if (e == NULL || e->index != i) {
			if (e != NULL)
				flexo__ledger__v1__entry__free_unpacked(e,
				                                        NULL);
			rep->failed_index = i;
			err =
			    fx_diag_set(diag, FX_EFORMAT,
			                "entry %llu (roster update): does not "
			                "decode or carries another index (an "
			                "entry was dropped or reordered)",
			                (unsigned long long)i);
			goto out;
		}
		grown = realloc(rosters, (n_rosters + 1) * sizeof(*rosters));
		if (grown == NULL) {
			flexo__ledger__v1__entry__free_unpacked(e, NULL);
			err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
			goto out;
		}
		rosters = grown;
		fx_roster_init(&rosters[n_rosters].roster);
		rosters[n_rosters].from = i;
		err = fx_ledger_check_roster(
		    e, n_rosters ? &rosters[n_rosters - 1].roster : NULL,
		    &rosters[n_rosters].roster, diag);
		/* A pinned roster replaces trust on first use: the log's first
		 * roster must be it, or a rotation its roots signed. */
		if (err == FX_OK && n_rosters == 0 && opts->pinned != NULL &&
		    memcmp(rosters[0].roster.digest, opts->pinned->digest,
		           FX_BLAKE2B_BYTES) != 0) {
			fx_roster rot;
			fx_roster_init(&rot);
			err = fx_roster_verify_update(
			    opts->pinned, &rot, e->roster->envelope.data,
			    e->roster->envelope.len, e->time_unix, diag);
			fx_roster_release(&rot);
			if (err != FX_OK)
				fx_diag_prefix(
				    diag,
				    "not the pinned roster "
				    "v%llu nor a rotation of it",
				    (unsigned long long)opts->pinned->version);
		}
		n_rosters++;
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
		if (err != FX_OK) {
			rep->failed_index = i;
			fx_diag_prefix(diag, "entry %llu (roster update)",
			               (unsigned long long)i);
			goto out;
		}
		rep->signatures++;
	}

	/* 5b. Decode, hash and verify every entry, on `threads` threads. */
	if (n > 0 && ((info = calloc(n, sizeof(*info))) == NULL ||
	              (leaf = malloc(n * FX_HASH_LEN)) == NULL ||
	              (r.status = calloc(n, sizeof(*r.status))) == NULL)) {
		err = fx_diag_set(diag, FX_ENOMEM,
		                  "out of memory for %llu "
		                  "entries",
		                  (unsigned long long)n);
		goto out;
	}
	if ((w = calloc((size_t)threads, sizeof(*w))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	fx_log(opts->log, FX_INFO, "checking %llu entries on %d threads",
	       (unsigned long long)n, threads);
	atomic_init(&queue.next, 0);
	atomic_init(&queue.limit, UINT64_MAX);
	queue.n = n;
	for (int t = 0; t < threads; t++) {
		w[t].q = &queue;
		w[t].base = em.p;
		w[t].pos = pos;
		w[t].info = info;
		w[t].leaf = leaf;
		w[t].rosters = rosters;
		w[t].n_rosters = n_rosters;
		/* Thread 0 is this one; a thread that cannot start runs here.
		 */
		w[t].started = t > 0 && pthread_create(&w[t].thread, NULL, work,
		                                       &w[t]) == 0;
	}
	for (int t = 0; t < threads; t++)
		if (!w[t].started)
			work(&w[t]);
	for (int t = 0; t < threads; t++)
		if (w[t].started)
			pthread_join(w[t].thread, NULL);
	for (int t = 0; t < threads; t++)
		rep->signatures += w[t].sigs;
	{
		/* The earliest failure, whichever thread found it. */
		int first = -1;
		for (int t = 0; t < threads; t++)
			if (w[t].err != FX_OK &&
			    (first < 0 ||
			     w[t].fail_index < w[first].fail_index))
				first = t;
		if (first >= 0) {
			err = w[first].err;
			rep->failed_index = w[first].fail_index;
			fx_diag_set(diag, err, "%s", w[first].diag.msg);
			goto out;
		}
	}

	/* Only now, so that a gap inside the log is named by its entry. */
	if (rep->newest.size > n) {
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "the export has %llu entries but checkpoint "
		                  "#%llu covers %llu: entries were dropped",
		                  (unsigned long long)n,
		                  (unsigned long long)(nc - 1),
		                  (unsigned long long)rep->newest.size);
		goto out;
	}
	rep->unattested = n - rep->newest.size;

	/* 6. The tree: name the first entry whose bytes differ from what the
	 * log committed to, else compare roots computed from the entries. */
	if (leaves_ok) {
		for (uint64_t i = 0; i < n; i++) {
			if (memcmp(leaf[i], lm.p + i * FX_HASH_LEN,
			           FX_HASH_LEN) != 0) {
				rep->failed_index = i;
				err = fx_diag_set(
				    diag, FX_EMISMATCH,
				    "entry %llu (%s): its bytes differ from "
				    "the entry the signed checkpoints commit "
				    "to (leaf hash mismatch)",
				    (unsigned long long)i,
				    kind_name(info[i].kind));
				goto out;
			}
		}
	} else {
		roots_at((const uint8_t(*)[FX_HASH_LEN])leaf, n, roots, nroots);
	}
	for (size_t k = 0; k < nroots; k++) {
		if (roots[k].slot == SIZE_MAX) {
			if (memcmp(roots[k].root, state.checkpoint.root,
			           FX_HASH_LEN) != 0) {
				err = fx_diag_set(
				    diag, FX_EMISMATCH,
				    "fork: the log's root at size %llu differs "
				    "from the checkpoint accepted by an "
				    "earlier "
				    "audit (state %s)",
				    (unsigned long long)roots[k].size,
				    opts->state_path);
				goto out;
			}
		} else if (memcmp(roots[k].root, cps[roots[k].slot].root,
		                  FX_HASH_LEN) != 0) {
			err = fx_diag_set(
			    diag, FX_EMISMATCH,
			    "checkpoint #%llu (size %llu): the entries give "
			    "another root — entries before %llu were changed, "
			    "dropped or reordered, or the log signed a fork",
			    (unsigned long long)roots[k].slot,
			    (unsigned long long)roots[k].size,
			    (unsigned long long)roots[k].size);
			goto out;
		}
	}

	/* 7. History rules, in log order. */
	for (uint64_t i = 0; i < n; i++)
		if (info[i].kind == K_ACCEPTED)
			n_acc++;
	if (n_acc > 0 && (acc = malloc(n_acc * sizeof(*acc))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	n_acc = 0;
	for (uint64_t i = 0; i < n; i++)
		if (info[i].kind == K_ACCEPTED) {
			memcpy(acc[n_acc].digest, info[i].digest, 32);
			acc[n_acc++].idx = i;
		}
	if (n_acc > 1)
		qsort(acc, n_acc, sizeof(*acc), cmp_acc);
	for (uint64_t i = 0; i < n; i++) {
		int kind = info[i].kind;
		const uint8_t *p;
		fx_entry *e = NULL;

		rep->by_kind[kind - K_ROSTER]++;
		switch (kind) {
		case K_ACCEPTED: {
			/* Trained on a release this log published before. */
			size_t k = 0;
			while (k < r.n_releases &&
			       memcmp(info[r.releases[k]].release,
			              info[i].release, 32) != 0)
				k++;
			if (k == r.n_releases) {
				rep->failed_index = i;
				err = fx_diag_set(
				    diag, FX_EMISMATCH,
				    "entry %llu (accepted contribution): names "
				    "an anchor release not logged before it",
				    (unsigned long long)i);
				goto out;
			}
			r.status[i] = 1;
			r.live++;
			continue;
		}
		case K_ANCHOR:
			if (r.have_release &&
			    info[i].ref <= r.release_version) {
				rep->failed_index = i;
				err = fx_diag_set(
				    diag, FX_EROLLBACK,
				    "entry %llu (anchor release): version %llu "
				    "is not above %llu",
				    (unsigned long long)i,
				    (unsigned long long)info[i].ref,
				    (unsigned long long)r.release_version);
				goto out;
			}
			r.release_version = info[i].ref;
			r.have_release = 1;
			{
				uint64_t *grown =
				    realloc(r.releases, (r.n_releases + 1) *
				                            sizeof(*grown));
				if (grown == NULL) {
					err = fx_diag_set(diag, FX_ENOMEM,
					                  "out of memory");
					goto out;
				}
				r.releases = grown;
				r.releases[r.n_releases++] = i;
			}
			continue;
		case K_WITHDRAWAL:
			if ((err = apply_withdrawal(&r, i, info, diag))) {
				rep->failed_index = i;
				goto out;
			}
			continue;
		case K_REFUSED:
			if ((err = apply_refusal(i, info, acc, n_acc, &em, pos,
			                         diag))) {
				rep->failed_index = i;
				goto out;
			}
			continue;
		case K_ASSEMBLY:
			break;
		default:
			continue;
		}
		p = em.p + pos[i];
		e = flexo__ledger__v1__entry__unpack(NULL, rd_be32(p - 4), p);
		if (e == NULL) {
			err = fx_diag_set(diag, FX_EINTERNAL,
			                  "entry %llu changed under the audit",
			                  (unsigned long long)i);
			goto out;
		}
		{
			uint64_t failed;
			rep->assemblies++;
			err = check_assembly(&r, i, e->assembly, info, &failed,
			                     diag);
			if (err == FX_OK && opts->reassemble)
				err = reassemble(dir, i, e->assembly, &em, pos,
				                 rep, diag);
		}
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
		if (err != FX_OK) {
			rep->failed_index = i;
			goto out;
		}
	}

	/* 8. Remember the newest checkpoint for the next audit. */
	if (opts->state_path != NULL) {
		fx_audit_state next;
		memset(&next, 0, sizeof(next));
		next.log = trusted;
		if (nc > 0) {
			next.has_checkpoint = 1;
			next.checkpoint = rep->newest;
		} else if (have_state) {
			next = state;
		}
		if ((err = fx_audit_state_save(opts->state_path, &next,
		                               diag)) != FX_OK)
			goto out;
	}
	err = FX_OK;
out:
	rep->seconds = now_s() - t0;
	unmap(&em);
	unmap(&lm);
	unmap(&cm);
	unmap(&vm);
	free(pos);
	free(cpos);
	free(cps);
	free(roots);
	free(info);
	free(leaf);
	free(w);
	for (size_t k = 0; k < n_rosters; k++)
		fx_roster_release(&rosters[k].roster);
	free(rosters);
	free(r.releases);
	free(r.status);
	free(acc);
	return err;
}
