/* An independent verifier of anchor releases and contribution manifests,
 * written from docs/protocol.md alone: its own protobuf wire reader, PAE
 * built by hand, libsodium primitives only (no wire.c, sign.c, release.c or
 * protobuf-c on the checking side). It checks releases and contributions
 * that the library made, so the document and the code must agree byte for
 * byte. */
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include "flexo/contrib.h"
#include "flexo/fsutil.h"
#include "flexo/release.h"
#include "flexo/safetensors.h"
#include "fx_test.h"

#define NOW 1800000000LL

/* ---- a minimal protobuf reader (docs §4: proto3 binary encoding) ---- */

typedef struct slice {
	const uint8_t *p;
	size_t n;
} slice;

static int varint(slice *s, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64 && s->n > 0; shift += 7) {
		uint8_t b = *s->p++;
		s->n--;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* Finds the k-th (0-based) occurrence of field `num`; LEN fields give
 * their bytes in *out, VARINT fields their value in *v. */
static int field(slice msg, uint32_t num, int k, slice *out, uint64_t *v)
{
	while (msg.n > 0) {
		uint64_t key, len;
		if (varint(&msg, &key) != 0)
			return -1;
		switch (key & 7) {
		case 0:
			if (varint(&msg, &len) != 0)
				return -1;
			if ((key >> 3) == num && k-- == 0) {
				*v = len;
				return 0;
			}
			break;
		case 2:
			if (varint(&msg, &len) != 0 || len > msg.n)
				return -1;
			if ((key >> 3) == num && k-- == 0) {
				out->p = msg.p;
				out->n = (size_t)len;
				return 0;
			}
			msg.p += len;
			msg.n -= (size_t)len;
			break;
		case 1:
		case 5: {
			size_t w = (key & 7) == 1 ? 8 : 4;
			if (msg.n < w)
				return -1;
			msg.p += w;
			msg.n -= w;
			break;
		}
		default:
			return -1;
		}
	}
	return -1;
}

static int eq_str(slice s, const char *str)
{
	return s.n == strlen(str) && memcmp(s.p, str, s.n) == 0;
}

/* docs §3.1 */
static uint8_t *pae(slice type, slice body, size_t *len)
{
	uint8_t *m = malloc(12 + 8 + type.n + 8 + body.n), *p = m;
	memcpy(p, "flexo-sig-v1", 12);
	p += 12;
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)((uint64_t)type.n >> (8 * i));
	memcpy(p, type.p, type.n);
	p += type.n;
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)((uint64_t)body.n >> (8 * i));
	memcpy(p, body.p, body.n);
	p += body.n;
	*len = (size_t)(p - m);
	return m;
}

/* docs §3.2: is the envelope signed by pk? Returns the payload too. */
static int signed_by(slice env, const char *type, const uint8_t pk[32],
                     slice *payload)
{
	slice t, s, kid, sig;
	uint8_t h[32];
	uint64_t v;
	int ok = 0;

	if (field(env, 1, 0, &t, &v) || !eq_str(t, type) ||
	    field(env, 2, 0, payload, &v))
		return 0;
	crypto_generichash(h, 32, pk, 32, NULL, 0);
	for (int k = 0; field(env, 3, k, &s, &v) == 0; k++) {
		size_t mlen;
		uint8_t *m;
		if (field(s, 1, 0, &kid, &v) || field(s, 2, 0, &sig, &v) ||
		    kid.n != 8 || sig.n != 64 || memcmp(kid.p, h, 8) != 0)
			continue;
		m = pae(t, *payload, &mlen);
		ok |= crypto_sign_verify_detached(sig.p, m, mlen, pk) == 0;
		free(m);
	}
	return ok;
}

static int file_digest(const char *dir, slice name, uint8_t h[32],
                       uint64_t *size)
{
	char path[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/%.*s", dir, (int)name.n,
	         (const char *)name.p);
	if (fx_read_file(path, 1u << 26, &buf, &len, NULL) != FX_OK)
		return -1;
	crypto_generichash(h, 32, buf, len, NULL, 0);
	*size = len;
	free(buf);
	return 0;
}

/* docs §7.1 steps 1-3, 5 (names), 7 and 9, independently. */
static int independent_release_ok(const char *dir, const uint8_t coord_pk[32])
{
	char path[512];
	uint8_t *env_buf = NULL, *anchor = NULL, h[32];
	size_t env_len = 0, anchor_len = 0;
	slice env, payload, s, digest, tensor;
	uint64_t v, size, hdr;
	int ok = 0;

	snprintf(path, sizeof(path), "%s/release.bin", dir);
	if (fx_read_file(path, 1u << 24, &env_buf, &env_len, NULL) != FX_OK)
		return 0;
	env.p = env_buf;
	env.n = env_len;
	if (!signed_by(env, "flexo.v1.AnchorRelease", coord_pk, &payload))
		goto out;
	if (field(payload, 1, 0, &s, &v) || v != 1) /* schema */
		goto out;
	if (field(payload, 5, 0, &s, &v) || (int64_t)v < NOW) /* expires */
		goto out;
	/* tokenizer (13 name, 12 digest), r_pub file (15, 16), anchor (8, 10)
	 */
	{
		static const uint32_t names[3] = {13, 15, 8},
		                      digs[3] = {12, 16, 10};
		for (int i = 0; i < 3; i++) {
			if (field(payload, names[i], 0, &s, &v) ||
			    memchr(s.p, '/', s.n) != NULL ||
			    field(payload, digs[i], 0, &digest, &v) ||
			    digest.n != 32 || file_digest(dir, s, h, &size) ||
			    memcmp(h, digest.p, 32) != 0)
				goto out;
		}
		if (field(payload, 9, 0, &s, &v) || v != size) /* anchor_size */
			goto out;
	}
	/* Every tensor's digest over its raw bytes in the data section. */
	snprintf(path, sizeof(path), "%s/anchor.safetensors", dir);
	if (fx_read_file(path, 1u << 26, &anchor, &anchor_len, NULL) != FX_OK ||
	    anchor_len < 8)
		goto out;
	hdr = 0;
	for (int i = 7; i >= 0; i--)
		hdr = hdr << 8 | anchor[i];
	for (int k = 0; field(payload, 11, k, &tensor, &v) == 0; k++) {
		uint64_t off, sz;
		if (field(tensor, 4, 0, &s, &off))
			off = 0; /* proto3: a zero offset is not encoded */
		if (field(tensor, 5, 0, &s, &sz) ||
		    field(tensor, 6, 0, &digest, &v) ||
		    8 + hdr + off + sz > anchor_len)
			goto out;
		crypto_generichash(h, 32, anchor + 8 + hdr + off, (size_t)sz,
		                   NULL, 0);
		if (memcmp(h, digest.p, 32) != 0)
			goto out;
		ok = 1;
	}
out:
	free(env_buf);
	free(anchor);
	return ok;
}

static char dir[] = "/tmp/fx_protocol_testXXXXXX";

static const char *at(const char *name)
{
	static char buf[16][512];
	static int k;
	k = (k + 1) % 16;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void test_release(void)
{
	static float emb[6 * 4], rp[3 * 4];
	int64_t s_emb[2] = {6, 4}, s_rp[2] = {3, 4};
	fx_keypair root, coord;
	fx_st_writer *w = NULL;
	fx_release_params p;
	fx_roster roster;
	fx_diag d;
	FILE *f;

	for (int i = 0; i < 24; i++)
		emb[i] = (float)i;
	for (int i = 0; i < 12; i++)
		rp[i] = 0.25f * (float)i;
	CHECK_OK(fx_st_writer_new(&w));
	CHECK_OK(fx_st_writer_add(w, "a", 2, s_emb, emb, &d));
	CHECK_OK(fx_st_writer_add(w, "b", 2, s_emb, emb, &d));
	CHECK_OK(fx_st_writer_meta(w, "num_hidden_layers", "3", &d));
	CHECK_OK(fx_st_writer_meta(w, "hidden_size", "4", &d));
	CHECK_OK(fx_st_writer_commit(w, at("anchor.in"), &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_st_writer_new(&w));
	CHECK_OK(fx_st_writer_add(w, "router.pub", 2, s_rp, rp, &d));
	CHECK_OK(fx_st_writer_commit(w, at("rpub.in"), &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_write_file_atomic(at("tok.in"), "{}", 2, 0644, &d));
	fx_keypair_init(&root);
	fx_keypair_init(&coord);
	CHECK_OK(fx_keypair_generate(&root, &d));
	CHECK_OK(fx_keypair_generate(&coord, &d));
	fx_roster_init(&roster);
	snprintf(roster.consortium, sizeof(roster.consortium), "indep");
	roster.version = 1;
	roster.expires = NOW + 86400;
	roster.threshold = 1;
	CHECK_OK(fx_roster_add(&roster, "root", root.pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(
	    fx_roster_add(&roster, "c", coord.pk, FX_ROLE_COORDINATOR, 0, &d));
	p.anchor_path = at("anchor.in");
	p.router_pub_path = at("rpub.in");
	p.tokenizer_path = at("tok.in");
	p.version = 5;
	p.created = NOW;
	p.expires = NOW + 3600;
	p.roster = &roster;
	CHECK_OK(fx_release_create(&p, &coord, NULL, 0, at("rel"), &d));
	CHECK(independent_release_ok(at("rel"), coord.pk));
	/* The independent verifier is not a rubber stamp: wrong key, and a
	 * changed anchor byte, are refused. */
	CHECK(!independent_release_ok(at("rel"), root.pk));
	f = fopen(at("rel/anchor.safetensors"), "r+b");
	fseek(f, -1, SEEK_END);
	fputc(0x7f, f);
	fclose(f);
	CHECK(!independent_release_ok(at("rel"), coord.pk));
	fx_roster_release(&roster);
	fx_keypair_release(&root);
	fx_keypair_release(&coord);
}

/* docs §8: the contribution's key ID, payload digest and release digest
 * fields read independently, and the signature over the PAE. */
static void test_contribution(void)
{
	static float router[2 * 3] = {1, 2, 3, 4, 5, 6};
	uint8_t rel[32], h[32], *env = NULL;
	size_t len = 0;
	fx_contrib_params p;
	fx_keypair alice;
	slice e, payload, s;
	uint64_t v;
	fx_diag d;

	memset(rel, 0x3c, sizeof(rel));
	fx_keypair_init(&alice);
	CHECK_OK(fx_keypair_generate(&alice, &d));
	CHECK_OK(fx_write_file_atomic(at("expert.in"), "expert-bytes", 12, 0644,
	                              &d));
	memset(&p, 0, sizeof(p));
	p.consortium = "indep";
	p.release_digest = rel;
	p.release_version = 5;
	p.domain = "code";
	p.sequence = 1;
	p.payload_path = at("expert.in");
	p.layers = 2;
	p.dim = 3;
	p.router = router;
	CHECK_OK(fx_contrib_create(&p, &alice, &env, &len, &d));
	e.p = env;
	e.n = len;
	CHECK(signed_by(e, "flexo.v1.Contribution", alice.pk, &payload));
	crypto_generichash(h, 32, alice.pk, 32, NULL, 0);
	CHECK(field(payload, 3, 0, &s, &v) == 0 && s.n == 8 &&
	      memcmp(s.p, h, 8) == 0);
	CHECK(field(payload, 4, 0, &s, &v) == 0 && memcmp(s.p, rel, 32) == 0);
	CHECK(field(payload, 8, 0, &s, &v) == 0 && v == 12);
	crypto_generichash(h, 32, (const uint8_t *)"expert-bytes", 12, NULL, 0);
	CHECK(field(payload, 9, 0, &s, &v) == 0 && memcmp(s.p, h, 32) == 0);
	/* Router rows: packed little-endian float32 (field 10 -> 3). */
	{
		slice rr, vals;
		float f;
		CHECK(field(payload, 10, 0, &rr, &v) == 0);
		CHECK(field(rr, 3, 0, &vals, &v) == 0 && vals.n == 6 * 4);
		memcpy(&f, vals.p + 5 * 4, 4); /* x86/ARM: little-endian host */
		CHECK(f == 6.0f);
	}
	free(env);
	fx_keypair_release(&alice);
}

int main(void)
{
	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	RUN(test_release);
	RUN(test_contribution);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return FX_TEST_REPORT();
}
