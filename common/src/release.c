/* Anchor release manifests: creation by the coordinator and verification by
 * contributors (see release.h). Files are copied into the release directory
 * first and every digest is taken from the copies, so what is signed is what
 * was written. */
#include "flexo/release.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flexo/config.h"
#include "flexo/fsutil.h"
#include "flexo/safetensors.h"
#include "flexo/wire.h"

#define PATH_BUF 4352

void fx_release_init(fx_release *r)
{
	memset(r, 0, sizeof(*r));
}

void fx_release_release(fx_release *r)
{
	if (r->msg != NULL)
		fx_wire_free(&r->msg->base);
	free(r->envelope);
	fx_release_init(r);
}

/* A plain file name: no directory part, so a manifest can never point a
 * verifier outside the release directory. */
static int plain_name(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0;
}

/* The safetensors dtype string, as in the file header. */
static const char *dtype_str(fx_dtype t)
{
	switch (t) {
	case FX_F32:
		return "F32";
	case FX_F16:
		return "F16";
	case FX_BF16:
		return "BF16";
	}
	return "?";
}

static fx_err meta_int(const fx_st_file *f, const char *key, long max,
                       long *out, fx_diag *diag)
{
	const char *v = fx_st_meta_get(f, key);
	char *end = NULL;
	long n;

	if (v == NULL)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "anchor metadata lacks %s (not a flexo model file?)", key);
	n = strtol(v, &end, 10);
	if (end == v || *end != '\0' || n < 1 || n > max)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "anchor metadata %s = \"%.32s\" is not 1..%ld", key, v,
		    max);
	*out = n;
	return FX_OK;
}

static int cmp_kv(const void *a, const void *b)
{
	const Flexo__V1__KeyValue *x = *(Flexo__V1__KeyValue *const *)a;
	const Flexo__V1__KeyValue *y = *(Flexo__V1__KeyValue *const *)b;
	return strcmp(x->key, y->key);
}

/* Reads r_pub as [L, d] (a [d] tensor is repeated for every layer). */
static fx_err read_router_pub(const char *path, long L, long d, float **out,
                              fx_diag *diag)
{
	fx_st_file *f = NULL;
	const fx_st_tensor *t;
	float *rows = NULL;
	int64_t shape[2] = {L, d};
	fx_err err;

	if ((err = fx_st_open(path, &f, diag)) != FX_OK)
		return err;
	t = fx_st_find(f, FX_ROUTER_PUB_TENSOR);
	if (t == NULL) {
		err = fx_diag_set(diag, FX_ENOTFOUND, "%s has no tensor %s",
		                  path, FX_ROUTER_PUB_TENSOR);
		goto out;
	}
	rows = malloc((size_t)L * (size_t)d * sizeof(float));
	if (rows == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory for router rows");
		goto out;
	}
	if (t->ndim == 1) {
		err = fx_st_read_f32(t, 1, &shape[1], rows, diag);
		for (long l = 1; err == FX_OK && l < L; l++)
			memcpy(rows + l * d, rows, (size_t)d * sizeof(float));
	} else {
		err = fx_st_read_f32(t, 2, shape, rows, diag);
	}
	if (err != FX_OK) {
		fx_diag_prefix(diag, "%s in %s", FX_ROUTER_PUB_TENSOR, path);
		goto out;
	}
	for (long i = 0; i < L * d; i++)
		if (!isfinite(rows[i])) {
			err = fx_diag_set(diag, FX_ENUMERIC,
			                  "%s[%ld] is not finite",
			                  FX_ROUTER_PUB_TENSOR, i);
			goto out;
		}
	*out = rows;
	rows = NULL;
out:
	free(rows);
	fx_st_close(f);
	return err;
}

/* Fills the tensor digests and config of m from an open anchor. The
 * pointers stored in m borrow from f and from the arrays allocated here
 * (freed by free_manifest). */
typedef struct built {
	Flexo__V1__TensorDigest *td;
	Flexo__V1__TensorDigest **tdp;
	uint8_t (*hash)[FX_BLAKE2B_BYTES];
	Flexo__V1__KeyValue *kv;
	Flexo__V1__KeyValue **kvp;
} built;

static void free_built(built *b)
{
	free(b->td);
	free(b->tdp);
	free(b->hash);
	free(b->kv);
	free(b->kvp);
}

static fx_err describe_anchor(const fx_st_file *f, Flexo__V1__AnchorRelease *m,
                              built *b, fx_diag *diag)
{
	size_t n = f->n_tensors;

	b->td = calloc(n ? n : 1, sizeof(*b->td));
	b->tdp = calloc(n ? n : 1, sizeof(*b->tdp));
	b->hash = calloc(n ? n : 1, sizeof(*b->hash));
	b->kv = calloc(f->n_meta ? f->n_meta : 1, sizeof(*b->kv));
	b->kvp = calloc(f->n_meta ? f->n_meta : 1, sizeof(*b->kvp));
	if (!b->td || !b->tdp || !b->hash || !b->kv || !b->kvp)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no memory for the manifest");
	for (size_t i = 0; i < n; i++) {
		const fx_st_tensor *t = &f->tensors[i];
		Flexo__V1__TensorDigest *d = &b->td[i];
		flexo__v1__tensor_digest__init(d);
		d->name = (char *)t->name;
		d->dtype = (char *)dtype_str(t->dtype);
		d->shape = (int64_t *)t->shape;
		d->n_shape = (size_t)t->ndim;
		d->offset = t->begin;
		d->size = t->end - t->begin;
		fx_blake2b(b->hash[i], t->raw, (size_t)(t->end - t->begin));
		d->blake2b.data = b->hash[i];
		d->blake2b.len = FX_BLAKE2B_BYTES;
		b->tdp[i] = d;
	}
	m->tensors = b->tdp;
	m->n_tensors = n;
	for (size_t i = 0; i < f->n_meta; i++) {
		flexo__v1__key_value__init(&b->kv[i]);
		b->kv[i].key = f->meta[i].key;
		b->kv[i].value = f->meta[i].value;
		b->kvp[i] = &b->kv[i];
	}
	/* Sorted so the manifest does not depend on the writer's key order. */
	qsort(b->kvp, f->n_meta, sizeof(*b->kvp), cmp_kv);
	m->config = b->kvp;
	m->n_config = f->n_meta;
	return FX_OK;
}

/* Streams src into dst through fsutil's atomic file (temporary file,
 * fsync, rename), so a crash never leaves a half-copied anchor. */
static fx_err copy_file(const char *src, const char *dst, mode_t mode,
                        fx_diag *diag)
{
	enum { BLOCK = 1 << 20 };
	fx_atomic_file af;
	uint8_t *buf = NULL;
	fx_err err;
	int in;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fx_diag_set(diag,
		                   errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                   "cannot open %s: %s", src, strerror(errno));
	if ((err = fx_atomic_open(&af, dst, mode, diag)) != FX_OK) {
		close(in);
		return err;
	}
	buf = malloc(BLOCK);
	if (buf == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory to copy %s", src);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", src,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((err = fx_atomic_write(&af, buf, (size_t)n, diag)) != FX_OK)
			goto out;
	}
	err = fx_atomic_commit(&af, diag);
out:
	fx_atomic_abort(&af);
	free(buf);
	close(in);
	return err;
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

fx_err fx_release_create(const fx_release_params *p, const fx_keypair *coord,
                         const fx_keypair *const *cosigners, size_t n_cosign,
                         const char *out_dir, fx_diag *diag)
{
	Flexo__V1__AnchorRelease m = FLEXO__V1__ANCHOR_RELEASE__INIT;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	const fx_keypair *signers[FX_WIRE_MAX_SIGS];
	char anchor[PATH_BUF], tok[PATH_BUF], relf[PATH_BUF], rpub[PATH_BUF];
	uint8_t file_hash[FX_BLAKE2B_BYTES], tok_hash[FX_BLAKE2B_BYTES];
	uint8_t rpub_hash[FX_BLAKE2B_BYTES];
	uint8_t *body = NULL, *env = NULL;
	size_t body_len = 0, env_len = 0;
	const fx_member *me;
	fx_st_file *f = NULL;
	float *rows = NULL;
	uint64_t size = 0;
	built b = {0};
	fx_release check;
	long L, d;
	fx_err err;

	fx_release_init(&check);
	me = fx_roster_find_key(p->roster, coord->pk);
	if (me == NULL || me->role != FX_ROLE_COORDINATOR)
		return fx_diag_set(
		    diag, FX_EPERM,
		    "the signing key is not a coordinator of roster "
		    "v%llu",
		    (unsigned long long)p->roster->version);
	if (n_cosign + 1 > FX_WIRE_MAX_SIGS)
		return fx_diag_set(diag, FX_ETOOBIG, "too many co-signers");
	if (p->expires <= p->created)
		return fx_diag_set(diag, FX_EINVAL,
		                   "release expires before it is "
		                   "created");
	if ((err = fx_mkdir_p(out_dir, 0755, diag)) != FX_OK)
		return err;
	join(anchor, sizeof(anchor), out_dir, FX_RELEASE_ANCHOR);
	join(tok, sizeof(tok), out_dir, FX_RELEASE_TOKENIZER);
	join(relf, sizeof(relf), out_dir, FX_RELEASE_FILE);
	join(rpub, sizeof(rpub), out_dir, FX_RELEASE_ROUTER);
	if ((err = copy_file(p->anchor_path, anchor, 0644, diag)) != FX_OK ||
	    (err = copy_file(p->tokenizer_path, tok, 0644, diag)) != FX_OK ||
	    (err = copy_file(p->router_pub_path, rpub, 0644, diag)) != FX_OK)
		goto out;
	if ((err = fx_blake2b_file(anchor, file_hash, &size, diag)) != FX_OK ||
	    (err = fx_blake2b_file(tok, tok_hash, NULL, diag)) != FX_OK ||
	    (err = fx_blake2b_file(rpub, rpub_hash, NULL, diag)) != FX_OK)
		goto out;
	if ((err = fx_st_open(anchor, &f, diag)) != FX_OK) {
		fx_diag_prefix(diag, "anchor %s", p->anchor_path);
		goto out;
	}
	if ((err = meta_int(f, "num_hidden_layers", FX_MAX_LAYERS, &L, diag)) !=
	        FX_OK ||
	    (err = meta_int(f, "hidden_size", FX_MAX_DIM, &d, diag)) != FX_OK)
		goto out;
	if ((err = read_router_pub(rpub, L, d, &rows, diag)) != FX_OK)
		goto out;
	if ((err = describe_anchor(f, &m, &b, diag)) != FX_OK)
		goto out;
	rr.layers = (uint32_t)L;
	rr.dim = (uint32_t)d;
	rr.values = rows;
	rr.n_values = (size_t)(L * d);
	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)p->roster->consortium;
	m.release_version = p->version;
	m.created = p->created;
	m.expires = p->expires;
	m.roster_version = p->roster->version;
	m.anchor_file = FX_RELEASE_ANCHOR;
	m.anchor_size = size;
	m.anchor_blake2b.data = file_hash;
	m.anchor_blake2b.len = FX_BLAKE2B_BYTES;
	m.tokenizer_blake2b.data = tok_hash;
	m.tokenizer_blake2b.len = FX_BLAKE2B_BYTES;
	m.tokenizer_file = FX_RELEASE_TOKENIZER;
	m.router_pub = &rr;
	m.router_pub_file = FX_RELEASE_ROUTER;
	m.router_pub_blake2b.data = rpub_hash;
	m.router_pub_blake2b.len = FX_BLAKE2B_BYTES;
	if ((err = fx_wire_encode(&m.base, &body, &body_len, diag)) != FX_OK)
		goto out;
	signers[0] = coord;
	for (size_t i = 0; i < n_cosign; i++)
		signers[i + 1] = cosigners[i];
	err = fx_envelope_seal(FX_TYPE_RELEASE, body, body_len, signers,
	                       n_cosign + 1, &env, &env_len, diag);
	if (err != FX_OK)
		goto out;
	/* Verify what we are about to publish exactly as a contributor will:
	 * catches missing co-signatures or an expired key before anyone
	 * downloads it. */
	err = fx_release_verify(&check, env, env_len, p->roster, p->created, 0,
	                        NULL, diag);
	if (err == FX_OK)
		err = fx_release_check_files(&check, out_dir, diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "self-check of the new release");
		goto out;
	}
	err = fx_write_file_atomic(relf, env, env_len, 0644, diag);
out:
	fx_release_release(&check);
	fx_st_close(f);
	free_built(&b);
	free(rows);
	free(body);
	free(env);
	return err;
}

/* Manifest consistency that does not need the files. */
static fx_err check_manifest(const Flexo__V1__AnchorRelease *m, fx_diag *diag)
{
	const Flexo__V1__RouterRows *rr = m->router_pub;

	if (m->schema != FX_WIRE_SCHEMA)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "anchor release schema %u, expected %d",
		                   m->schema, FX_WIRE_SCHEMA);
	if (!plain_name(m->anchor_file) || !plain_name(m->tokenizer_file) ||
	    !plain_name(m->router_pub_file))
		return fx_diag_set(diag, FX_EFORMAT,
		                   "anchor release names a file outside its "
		                   "directory");
	if (m->n_tensors == 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "anchor release lists no tensors");
	if (rr == NULL || rr->layers < 1 || rr->layers > FX_MAX_LAYERS ||
	    rr->dim < 1 || rr->dim > FX_MAX_DIM ||
	    rr->n_values != (size_t)rr->layers * rr->dim)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "anchor release router_pub is not layers x dim "
		    "values");
	for (size_t i = 0; i < rr->n_values; i++)
		if (!isfinite(rr->values[i]))
			return fx_diag_set(
			    diag, FX_ENUMERIC,
			    "anchor release router_pub[%zu] is not finite", i);
	return FX_OK;
}

fx_err fx_release_verify(fx_release *out, const uint8_t *env, size_t len,
                         const fx_roster *roster, int64_t now,
                         uint64_t last_version, const uint8_t *last_digest,
                         fx_diag *diag)
{
	Flexo__V1__Envelope *e = NULL;
	ProtobufCMessage *pm = NULL;
	Flexo__V1__AnchorRelease *m;
	const fx_member *signer = NULL;
	uint8_t digest[FX_BLAKE2B_BYTES];
	char when[32];
	size_t roots;
	fx_err err;

	if ((err = fx_envelope_open(env, len, FX_TYPE_RELEASE, &e, diag)) !=
	    FX_OK)
		return err;
	if (e->n_signatures == 0) {
		err =
		    fx_diag_set(diag, FX_EBADSIG, "anchor release is unsigned");
		goto out;
	}
	/* Signatures first: nothing in an unauthenticated payload is trusted,
	 * not even for an error message. */
	err = fx_roster_find_signer(roster, e, FX_ROLE_COORDINATOR, now,
	                            &signer, diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "anchor release");
		goto out;
	}
	roots = fx_roster_count_root_sigs(roster, e, now);
	if (roots < roster->release_cosigners) {
		err =
		    fx_diag_set(diag, FX_EBADSIG,
		                "anchor release has %zu root co-signature(s), "
		                "roster v%llu requires %u",
		                roots, (unsigned long long)roster->version,
		                roster->release_cosigners);
		goto out;
	}
	err = fx_wire_decode(&flexo__v1__anchor_release__descriptor,
	                     e->payload.data, e->payload.len, FX_WIRE_DOC_MAX,
	                     &pm, diag);
	if (err != FX_OK)
		goto out;
	m = (Flexo__V1__AnchorRelease *)pm;
	if ((err = check_manifest(m, diag)) != FX_OK)
		goto out;
	if (strcmp(m->consortium, roster->consortium) != 0) {
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "anchor release is for consortium '%s', the roster "
		    "is '%s'",
		    m->consortium, roster->consortium);
		goto out;
	}
	if (m->roster_version > roster->version) {
		err = fx_diag_set(
		    diag, FX_ESTATE,
		    "anchor release was made under roster v%llu, newer "
		    "than the trusted v%llu: update the roster first",
		    (unsigned long long)m->roster_version,
		    (unsigned long long)roster->version);
		goto out;
	}
	if (now > m->expires) {
		err = fx_diag_set(
		    diag, FX_EEXPIRED, "anchor release v%llu expired at %s",
		    (unsigned long long)m->release_version,
		    fx_time_format(when, sizeof(when), m->expires));
		goto out;
	}
	fx_blake2b(digest, e->payload.data, e->payload.len);
	if (m->release_version < last_version ||
	    (m->release_version == last_version && last_digest != NULL &&
	     memcmp(digest, last_digest, FX_BLAKE2B_BYTES) != 0)) {
		err = fx_diag_set(diag, FX_EROLLBACK,
		                  "anchor release v%llu %s the accepted v%llu",
		                  (unsigned long long)m->release_version,
		                  m->release_version < last_version
		                      ? "is older than"
		                      : "differs from, but has the version of,",
		                  (unsigned long long)last_version);
		goto out;
	}
	fx_release_release(out);
	out->envelope = malloc(len);
	if (out->envelope == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory for the release");
		goto out;
	}
	memcpy(out->envelope, env, len);
	out->envelope_len = len;
	out->msg = m;
	pm = NULL;
	memcpy(out->digest, digest, FX_BLAKE2B_BYTES);
	snprintf(out->signer, sizeof(out->signer), "%s", signer->name);
out:
	fx_wire_free(pm);
	fx_wire_free(&e->base);
	return err;
}

fx_err fx_release_check_files(const fx_release *r, const char *dir,
                              fx_diag *diag)
{
	const Flexo__V1__AnchorRelease *m = r->msg;
	char path[PATH_BUF];
	uint8_t h[FX_BLAKE2B_BYTES];
	fx_st_file *f = NULL;
	uint64_t size = 0;
	fx_err err;

	join(path, sizeof(path), dir, m->tokenizer_file);
	if ((err = fx_blake2b_file(path, h, NULL, diag)) != FX_OK)
		return err;
	if (memcmp(h, m->tokenizer_blake2b.data, FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "%s does not match the release's tokenizer digest", path);
	join(path, sizeof(path), dir, m->router_pub_file);
	if ((err = fx_blake2b_file(path, h, NULL, diag)) != FX_OK)
		return err;
	if (memcmp(h, m->router_pub_blake2b.data, FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "%s does not match the release's r_pub digest", path);
	join(path, sizeof(path), dir, m->anchor_file);
	if ((err = fx_blake2b_file(path, h, &size, diag)) != FX_OK)
		return err;
	if (size != m->anchor_size)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "%s is %llu bytes, the release says %llu",
		                   path, (unsigned long long)size,
		                   (unsigned long long)m->anchor_size);
	if (memcmp(h, m->anchor_blake2b.data, FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "%s does not match the release's BLAKE2b-256 "
		    "digest",
		    path);
	if ((err = fx_st_open(path, &f, diag)) != FX_OK)
		return err;
	if (f->n_tensors != m->n_tensors) {
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "%s has %zu tensors, the release lists %zu",
		                  path, f->n_tensors, m->n_tensors);
		goto out;
	}
	for (size_t i = 0; i < f->n_tensors; i++) {
		const fx_st_tensor *t = &f->tensors[i];
		const Flexo__V1__TensorDigest *d = m->tensors[i];
		int same = strcmp(t->name, d->name) == 0 &&
		           strcmp(dtype_str(t->dtype), d->dtype) == 0 &&
		           d->n_shape == (size_t)t->ndim &&
		           d->offset == t->begin &&
		           d->size == t->end - t->begin;
		for (int k = 0; same && k < t->ndim; k++)
			same = d->shape[k] == t->shape[k];
		if (same) {
			fx_blake2b(h, t->raw, (size_t)(t->end - t->begin));
			same =
			    memcmp(h, d->blake2b.data, FX_BLAKE2B_BYTES) == 0;
		}
		if (!same) {
			err = fx_diag_set(
			    diag, FX_EMISMATCH,
			    "tensor %zu (%s) of %s does not match the "
			    "release's entry for %s",
			    i, t->name, path, d->name);
			goto out;
		}
	}
out:
	fx_st_close(f);
	return err;
}

fx_err fx_release_read(const char *dir, uint8_t **env, size_t *len,
                       fx_diag *diag)
{
	char path[PATH_BUF];
	join(path, sizeof(path), dir, FX_RELEASE_FILE);
	return fx_read_file(path, FX_WIRE_ENVELOPE_MAX, env, len, diag);
}

fx_err fx_release_install(const fx_release *r, const char *from_dir,
                          const char *to_dir, fx_diag *diag)
{
	const char *names[3] = {r->msg->anchor_file, r->msg->tokenizer_file,
	                        r->msg->router_pub_file};
	char src[PATH_BUF], dst[PATH_BUF];
	fx_err err;

	if ((err = fx_mkdir_p(to_dir, 0755, diag)) != FX_OK)
		return err;
	for (int i = 0; i < 3; i++) {
		join(src, sizeof(src), from_dir, names[i]);
		join(dst, sizeof(dst), to_dir, names[i]);
		if ((err = copy_file(src, dst, 0644, diag)) != FX_OK)
			return err;
	}
	join(dst, sizeof(dst), to_dir, FX_RELEASE_FILE);
	err =
	    fx_write_file_atomic(dst, r->envelope, r->envelope_len, 0644, diag);
	if (err != FX_OK)
		return err;
	return fx_release_check_files(r, to_dir, diag);
}

fx_err fx_release_state_load(const char *state_dir, int *have,
                             uint64_t *version,
                             uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	char path[PATH_BUF], hex[2 * FX_BLAKE2B_BYTES + 2];
	unsigned long long v = 0;
	uint8_t *buf = NULL, d[FX_BLAKE2B_BYTES];
	size_t len = 0;
	fx_err err;

	join(path, sizeof(path), state_dir, FX_RELEASE_STATE);
	err = fx_read_file(path, 4096, &buf, &len, diag);
	if (err == FX_ENOTFOUND) {
		*have = 0;
		return FX_OK;
	}
	if (err != FX_OK)
		return err;
	if (sscanf((const char *)buf,
	           "flexo-release-state 1\nversion %llu\ndigest %65s\n", &v,
	           hex) != 2 ||
	    fx_hex_decode(d, FX_BLAKE2B_BYTES, hex, NULL) != FX_OK) {
		free(buf);
		/* Refuse rather than start over: a damaged state file must not
		 * silently re-open the door to a rollback. */
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "%s is damaged; restore it or remove it knowingly", path);
	}
	free(buf);
	*have = 1;
	*version = v;
	memcpy(digest, d, FX_BLAKE2B_BYTES);
	return FX_OK;
}

fx_err fx_release_state_save(const char *state_dir, uint64_t version,
                             const uint8_t digest[FX_BLAKE2B_BYTES],
                             fx_diag *diag)
{
	char path[PATH_BUF], hex[2 * FX_BLAKE2B_BYTES + 1], text[160];
	int n;

	join(path, sizeof(path), state_dir, FX_RELEASE_STATE);
	n = snprintf(text, sizeof(text),
	             "flexo-release-state 1\nversion %llu\ndigest %s\n",
	             (unsigned long long)version,
	             fx_hex(hex, digest, FX_BLAKE2B_BYTES));
	return fx_write_file_atomic(path, text, (size_t)n, 0644, diag);
}
