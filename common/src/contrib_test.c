/* Contribution manifests: create and verify, then an exhaustive
 * single-byte flip over the signed envelope and over the payload (every
 * flip must be refused), and each refusal the coordinator's gate relies on:
 * unsigned, wrong role, unknown key, key ID not the signer's, expired key,
 * replayed sequence, other anchor release, wrong router shape, bad values. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "flexo/config.h"
#include "flexo/contrib.h"
#include "flexo/expert.h"
#include "flexo/fsutil.h"
#include "fx_test.h"

#define NOW 1800000000LL

static char dir[] = "/tmp/fx_contrib_testXXXXXX";
static char payload_path[256];
static uint8_t payload[96];
static fx_keypair root, coord, alice, mallory;
static fx_roster roster;
static uint8_t release_digest[32];
static float router[2 * 4] = {0.1f, -0.2f, 0.3f, 0.4f, 1, 2, 3, 4};
static float bias[2] = {0.0f, -1.5f};
static const fx_kv hyper[] = {
    {"lr", "3e-4"}, {"batch", "8"}, {"z_loss", "1e-3"}};

static void setup(void)
{
	fx_diag d;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	snprintf(payload_path, sizeof(payload_path), "%s/expert.safetensors",
	         dir);
	CHECK_OK(fx_write_file_atomic(payload_path, payload, sizeof(payload),
	                              0644, &d));
	for (int i = 0; i < 32; i++)
		release_digest[i] = (uint8_t)(0xa0 + i);
	fx_keypair_init(&root);
	fx_keypair_init(&coord);
	fx_keypair_init(&alice);
	fx_keypair_init(&mallory);
	CHECK_OK(fx_keypair_generate(&root, &d));
	CHECK_OK(fx_keypair_generate(&coord, &d));
	CHECK_OK(fx_keypair_generate(&alice, &d));
	CHECK_OK(fx_keypair_generate(&mallory, &d));
	fx_roster_init(&roster);
	snprintf(roster.consortium, sizeof(roster.consortium), "test");
	roster.version = 1;
	roster.expires = NOW + 86400;
	roster.threshold = 1;
	CHECK_OK(fx_roster_add(&roster, "root", root.pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(fx_roster_add(&roster, "coord", coord.pk, FX_ROLE_COORDINATOR,
	                       0, &d));
	CHECK_OK(fx_roster_add(&roster, "alice", alice.pk, FX_ROLE_CONTRIBUTOR,
	                       NOW + 3600, &d));
}

static fx_contrib_params params(void)
{
	fx_contrib_params p;
	memset(&p, 0, sizeof(p));
	p.consortium = "test";
	p.release_digest = release_digest;
	p.release_version = 4;
	p.domain = "legal";
	p.sequence = 7;
	p.payload_path = payload_path;
	p.layers = 2;
	p.dim = 4;
	p.router = router;
	p.bias = bias;
	p.steps = 100;
	p.tokens = 100 * 8 * 256;
	p.seed = 42;
	p.hyper = hyper;
	p.n_hyper = 3;
	p.heldout_bpb = 1.25;
	p.heldout_bytes = 4096;
	p.created = NOW;
	return p;
}

static fx_contrib_expect expect_all(const uint64_t *last)
{
	fx_contrib_expect x;
	memset(&x, 0, sizeof(x));
	x.release_digest = release_digest;
	x.layers = 2;
	x.dim = 4;
	x.last_sequence = last;
	x.payload = payload;
	x.payload_len = sizeof(payload);
	return x;
}

static void test_roundtrip(void)
{
	fx_contrib_params p = params();
	uint64_t last = 6;
	fx_contrib_expect x = expect_all(&last);
	fx_contrib c;
	uint8_t *env = NULL, h[32];
	size_t len = 0;
	fx_diag d;

	fx_contrib_init(&c);
	CHECK_OK(fx_contrib_create(&p, &alice, &env, &len, &d));
	CHECK_MSG(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK(strcmp(c.signer, "alice") == 0);
	CHECK(c.msg->sequence == 7 && strcmp(c.msg->domain, "legal") == 0);
	CHECK(c.msg->router->values[7] == 4.0f && c.msg->bias[1] == -1.5f);
	CHECK(c.msg->training->n_hyperparameters == 3);
	CHECK(strcmp(c.msg->training->hyperparameters[0]->key, "batch") == 0);
	CHECK(c.msg->payload_size == sizeof(payload));
	/* By digest instead of bytes (a streamed upload). */
	fx_blake2b(h, payload, sizeof(payload));
	x.payload = NULL;
	x.payload_digest = h;
	x.payload_size = sizeof(payload);
	CHECK_OK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d));
	x.payload_size++;
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
	      FX_EMISMATCH);
	/* Without expectations only the signature and form are checked. */
	CHECK_OK(fx_contrib_verify(&c, env, len, &roster, NOW, NULL, &d));
	/* Replay: the same sequence again. */
	last = 7;
	x = expect_all(&last);
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
	      FX_EROLLBACK);
	CHECK_MSG(strstr(d.msg, "sequence 7") != NULL, "%s", d.msg);
	/* Another anchor release, another router shape. */
	last = 0;
	x = expect_all(&last);
	{
		uint8_t other[32];
		memcpy(other, release_digest, 32);
		other[31] ^= 1;
		x.release_digest = other;
		CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
		      FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "anchor release") != NULL, "%s", d.msg);
	}
	x = expect_all(&last);
	x.dim = 8;
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
	      FX_EMISMATCH);
	/* alice's key expires an hour after NOW. */
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW + 3601, NULL, &d) ==
	      FX_EEXPIRED);
	fx_contrib_release(&c);
	free(env);
}

static void test_signers(void)
{
	fx_contrib_params p = params();
	fx_contrib c;
	uint8_t *env = NULL, *bare = NULL;
	size_t len = 0, bare_len = 0;
	Flexo__V1__Envelope *e = NULL;
	const fx_keypair *wrong[1] = {&coord};
	fx_diag d;

	fx_contrib_init(&c);
	/* The coordinator is not a contributor; mallory is not in the roster
	 * (her manifest carries her own key ID). */
	CHECK_OK(fx_contrib_create(&p, &coord, &env, &len, &d));
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, NULL, &d) ==
	      FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "contributor") != NULL, "%s", d.msg);
	free(env);
	CHECK_OK(fx_contrib_create(&p, &mallory, &env, &len, &d));
	CHECK(fx_contrib_verify(&c, env, len, &roster, NOW, NULL, &d) ==
	      FX_EBADSIG);
	free(env);
	/* alice's manifest: unsigned; and co-signed by alice over a payload
	 * naming mallory's key ID. */
	CHECK_OK(fx_contrib_create(&p, &alice, &env, &len, &d));
	CHECK_OK(fx_envelope_open(env, len, FX_TYPE_CONTRIBUTION, &e, &d));
	CHECK_OK(fx_envelope_seal(FX_TYPE_CONTRIBUTION, e->payload.data,
	                          e->payload.len, NULL, 0, &bare, &bare_len,
	                          &d));
	CHECK(fx_contrib_verify(&c, bare, bare_len, &roster, NOW, NULL, &d) ==
	      FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "unsigned") != NULL, "%s", d.msg);
	free(bare);
	/* Signed by the coordinator as a second signer does not make it
	 * verify as someone else's. */
	CHECK_OK(fx_envelope_cosign(env, len, wrong[0], &bare, &bare_len, &d));
	CHECK_OK(fx_contrib_verify(&c, bare, bare_len, &roster, NOW, NULL, &d));
	CHECK(strcmp(c.signer, "alice") == 0);
	free(bare);
	fx_wire_free(&e->base);
	free(env);
	{
		/* Payload naming mallory's key ID, signed by alice. */
		ProtobufCMessage *m = NULL;
		const fx_keypair *a[1] = {&alice};
		uint8_t *body = NULL;
		size_t body_len = 0;
		CHECK_OK(fx_contrib_create(&p, &mallory, &env, &len, &d));
		CHECK_OK(
		    fx_envelope_open(env, len, FX_TYPE_CONTRIBUTION, &e, &d));
		CHECK_OK(fx_wire_decode(&flexo__v1__contribution__descriptor,
		                        e->payload.data, e->payload.len,
		                        FX_WIRE_DOC_MAX, &m, &d));
		CHECK_OK(fx_wire_encode(m, &body, &body_len, &d));
		CHECK_OK(fx_envelope_seal(FX_TYPE_CONTRIBUTION, body, body_len,
		                          a, 1, &bare, &bare_len, &d));
		CHECK(fx_contrib_verify(&c, bare, bare_len, &roster, NOW, NULL,
		                        &d) == FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "another contributor key") != NULL,
		          "%s", d.msg);
		free(bare);
		free(body);
		fx_wire_free(m);
		fx_wire_free(&e->base);
		free(env);
	}
	fx_contrib_release(&c);
}

static void test_bad_values(void)
{
	fx_contrib_params p = params();
	float bad_bias[2] = {0.5f, 0.0f}, nan_router[8];
	uint8_t *env = NULL;
	size_t len = 0;
	fx_diag d;

	p.bias = bad_bias;
	CHECK(fx_contrib_create(&p, &alice, &env, &len, &d) == FX_ENUMERIC);
	CHECK_MSG(strstr(d.msg, "bias 0") != NULL, "%s", d.msg);
	p = params();
	memcpy(nan_router, router, sizeof(router));
	nan_router[3] = NAN;
	p.router = nan_router;
	CHECK(fx_contrib_create(&p, &alice, &env, &len, &d) == FX_ENUMERIC);
	p = params();
	p.domain = "";
	CHECK(fx_contrib_create(&p, &alice, &env, &len, &d) == FX_EFORMAT);
	p = params();
	p.payload_path = "/nonexistent/expert.safetensors";
	CHECK(fx_contrib_create(&p, &alice, &env, &len, &d) == FX_ENOTFOUND);
	p = params();
	p.heldout_bpb = INFINITY;
	CHECK(fx_contrib_create(&p, &alice, &env, &len, &d) == FX_ENUMERIC);
}

/* Acceptance: flipping any single byte of the signed manifest envelope, or
 * of its payload, fails verification. Three flips per byte (low bit, high
 * bit, all bits). */
static void test_flip_every_byte(void)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	fx_contrib_params p = params();
	uint64_t last = 0;
	fx_contrib_expect x = expect_all(&last);
	fx_contrib c;
	uint8_t *env = NULL;
	size_t len = 0, accepted = 0, tried = 0;
	fx_diag d;

	fx_contrib_init(&c);
	CHECK_OK(fx_contrib_create(&p, &alice, &env, &len, &d));
	CHECK_OK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d));
	for (size_t i = 0; i < len; i++)
		for (size_t k = 0; k < sizeof(masks); k++) {
			env[i] ^= masks[k];
			tried++;
			if (fx_contrib_verify(&c, env, len, &roster, NOW, &x,
			                      &d) == FX_OK) {
				accepted++;
				fprintf(stderr,
				        "envelope byte %zu ^ %02x accepted\n",
				        i, masks[k]);
			}
			env[i] ^= masks[k];
		}
	for (size_t i = 0; i < sizeof(payload); i++)
		for (size_t k = 0; k < sizeof(masks); k++) {
			payload[i] ^= masks[k];
			tried++;
			if (fx_contrib_verify(&c, env, len, &roster, NOW, &x,
			                      &d) == FX_OK) {
				accepted++;
				fprintf(stderr,
				        "payload byte %zu ^ %02x accepted\n", i,
				        masks[k]);
			}
			payload[i] ^= masks[k];
		}
	CHECK_MSG(accepted == 0, "%zu of %zu flips accepted", accepted, tried);
	CHECK(tried == 3 * (len + sizeof(payload)));
	/* And the untouched pair still verifies. */
	CHECK_OK(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d));
	fx_contrib_release(&c);
	free(env);
}

static void test_withdrawal(void)
{
	uint8_t digest[32], got[32], *env = NULL;
	size_t len = 0;
	uint64_t last = 7;
	fx_withdrawal_params w = {"test", digest, 8, "found a licence problem",
	                          NOW};
	Flexo__V1__Withdrawal *m = NULL;
	fx_diag d;

	memset(digest, 0x5c, sizeof(digest));
	CHECK_OK(fx_withdrawal_create(&w, &alice, &env, &len, &d));
	CHECK_OK(fx_withdrawal_verify(&m, got, env, len, &roster, NOW, alice.pk,
	                              &last, &d));
	CHECK(m != NULL && m->sequence == 8 &&
	      memcmp(m->contribution_digest.data, digest, 32) == 0);
	fx_wire_free(&m->base);
	/* Only the owner may withdraw; no replay. */
	CHECK(fx_withdrawal_verify(&m, NULL, env, len, &roster, NOW, mallory.pk,
	                           NULL, &d) == FX_EPERM);
	last = 8;
	CHECK(fx_withdrawal_verify(&m, NULL, env, len, &roster, NOW, alice.pk,
	                           &last, &d) == FX_EROLLBACK);
	env[len / 2] ^= 1;
	CHECK(fx_withdrawal_verify(&m, NULL, env, len, &roster, NOW, NULL, NULL,
	                           &d) != FX_OK);
	free(env);
	/* mallory is not in the roster. */
	CHECK_OK(fx_withdrawal_create(&w, &mallory, &env, &len, &d));
	CHECK(fx_withdrawal_verify(&m, NULL, env, len, &roster, NOW, NULL, NULL,
	                           &d) == FX_EBADSIG);
	free(env);
}

/* An expert file as the trainer writes it, turned into a signed manifest:
 * rows, bias and metadata land in their fields; an expert for another
 * anchor is refused before anything is signed. */
static void test_from_expert(void)
{
	Flexo__V1__AnchorRelease am = FLEXO__V1__ANCHOR_RELEASE__INIT;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	uint8_t anchor_digest[32], *env = NULL, *file = NULL;
	char hex[65], path[300];
	size_t len = 0, file_len = 0;
	uint64_t last = 0;
	fx_contrib_expect x;
	fx_release rel;
	fx_expert e;
	fx_config cfg;
	fx_contrib c;
	fx_diag d;

	memset(&e, 0, sizeof(e));
	fx_contrib_init(&c);
	CHECK_OK(fx_config_preset("tiny", &cfg, &d));
	CHECK_OK(fx_expert_init(&e, &cfg, &d));
	for (int i = 0; i < cfg.n_layers * cfg.d_model; i++)
		e.router[i] = 0.01f * (float)i;
	e.bias[cfg.n_layers - 1] = -0.5f;
	memset(anchor_digest, 0x42, sizeof(anchor_digest));
	CHECK_OK(fx_expert_set_meta(&e, "anchor_digest",
	                            fx_hex(hex, anchor_digest, 32), &d));
	CHECK_OK(fx_expert_set_meta(&e, "domain", "law", &d));
	CHECK_OK(fx_expert_set_meta(&e, "train.steps", "300", &d));
	CHECK_OK(fx_expert_set_meta(&e, "train.tokens", "1.2288e+06", &d));
	CHECK_OK(fx_expert_set_meta(&e, "train.seed", "7", &d));
	CHECK_OK(fx_expert_set_meta(&e, "train.lr", "0.001", &d));
	CHECK_OK(fx_expert_set_meta(&e, "train.heldout_bpb", "2.25", &d));
	snprintf(path, sizeof(path), "%s/law.expert", dir);
	CHECK_OK(fx_expert_save(&e, path, &d));

	/* A verified release as fetch leaves it (only the fields used). */
	rr.layers = (uint32_t)cfg.n_layers;
	rr.dim = (uint32_t)cfg.d_model;
	am.consortium = "test";
	am.release_version = 4;
	am.anchor_blake2b.data = anchor_digest;
	am.anchor_blake2b.len = 32;
	am.router_pub = &rr;
	fx_release_init(&rel);
	rel.msg = &am;
	memcpy(rel.digest, release_digest, 32);

	CHECK_MSG(fx_contrib_from_expert(path, &rel, 1, NOW, &alice, &env, &len,
	                                 &d) == FX_OK,
	          "%s", d.msg);
	CHECK_OK(fx_read_file(path, 1u << 24, &file, &file_len, &d));
	x = expect_all(&last);
	x.layers = rr.layers;
	x.dim = rr.dim;
	x.payload = file;
	x.payload_len = file_len;
	CHECK_MSG(fx_contrib_verify(&c, env, len, &roster, NOW, &x, &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK(strcmp(c.msg->domain, "law") == 0 && c.msg->sequence == 1);
	CHECK(c.msg->training->steps == 300 &&
	      c.msg->training->tokens == 1228800 && c.msg->training->seed == 7);
	CHECK(c.msg->training->heldout_bpb == 2.25);
	CHECK(c.msg->training->n_hyperparameters == 1 &&
	      strcmp(c.msg->training->hyperparameters[0]->key, "train.lr") ==
	          0);
	CHECK(c.msg->router->values[5] == e.router[5]);
	CHECK(c.msg->n_bias == (size_t)cfg.n_layers &&
	      c.msg->bias[cfg.n_layers - 1] == -0.5f);
	free(env);
	free(file);

	/* Trained from another anchor: refused, nothing signed. */
	anchor_digest[0] ^= 1;
	env = NULL;
	CHECK(fx_contrib_from_expert(path, &rel, 2, NOW, &alice, &env, &len,
	                             &d) == FX_EMISMATCH);
	CHECK(env == NULL);
	CHECK_MSG(strstr(d.msg, "anchor") != NULL, "%s", d.msg);
	anchor_digest[0] ^= 1;
	rr.dim++;
	CHECK(fx_contrib_from_expert(path, &rel, 2, NOW, &alice, &env, &len,
	                             &d) == FX_EMISMATCH);
	unlink(path);
	fx_expert_release(&e);
	fx_contrib_release(&c);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	setup();
	RUN(test_roundtrip);
	RUN(test_signers);
	RUN(test_bad_values);
	RUN(test_flip_every_byte);
	RUN(test_withdrawal);
	RUN(test_from_expert);
	fx_roster_release(&roster);
	fx_keypair_release(&root);
	fx_keypair_release(&coord);
	fx_keypair_release(&alice);
	fx_keypair_release(&mallory);
	unlink(payload_path);
	rmdir(dir);
	return FX_TEST_REPORT();
}
