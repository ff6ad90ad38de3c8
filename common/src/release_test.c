/* Anchor releases end to end in a temporary directory: create, verify and
 * check files; then every refusal a contributor relies on — unsigned, wrong
 * signer, missing root co-signature, expired, rolled back, equivocating
 * same version, other consortium, tampered anchor or tokenizer — and an
 * exhaustive single-byte flip over the release envelope. */
#include <stdlib.h>
#include <unistd.h>

#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/release.h"
#include "flexo/safetensors.h"
#include "fx_test.h"

#define NOW 1800000000LL

static char dir[] = "/tmp/fx_release_testXXXXXX";
static fx_keypair root, coord, alice;
static fx_roster roster;

static const char *at(const char *name)
{
	/* A ring of buffers: params() keeps three paths while others are made.
	 */
	static char buf[64][512];
	static int k;
	k = (k + 1) % 64;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void fixtures(void)
{
	static float emb[8 * 4], gate[2 * 4], rp[2 * 4], rp1[4];
	int64_t s_emb[2] = {8, 4}, s_gate[2] = {2, 4}, s_rp[2] = {2, 4},
	        s_rp1[1] = {4};
	fx_st_writer *w = NULL;
	fx_diag d;

	for (int i = 0; i < 32; i++)
		emb[i] = (float)i * 0.25f;
	for (int i = 0; i < 8; i++) {
		gate[i] = -(float)i;
		rp[i] = 0.5f * (float)i;
	}
	for (int i = 0; i < 4; i++)
		rp1[i] = 1.0f + (float)i;
	CHECK_OK(fx_st_writer_new(&w));
	CHECK_OK(fx_st_writer_add(w, "model.embed_tokens.weight", 2, s_emb, emb,
	                          &d));
	CHECK_OK(fx_st_writer_add(w, "model.layers.0.mlp.gate.weight", 2,
	                          s_gate, gate, &d));
	CHECK_OK(fx_st_writer_meta(w, "num_hidden_layers", "2", &d));
	CHECK_OK(fx_st_writer_meta(w, "hidden_size", "4", &d));
	CHECK_OK(fx_st_writer_meta(w, "format", "flexo-model-1", &d));
	CHECK_OK(fx_st_writer_commit(w, at("anchor.safetensors"), &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_st_writer_new(&w));
	CHECK_OK(fx_st_writer_add(w, "router.pub", 2, s_rp, rp, &d));
	CHECK_OK(fx_st_writer_commit(w, at("router2.safetensors"), &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_st_writer_new(&w));
	CHECK_OK(fx_st_writer_add(w, "router.pub", 1, s_rp1, rp1, &d));
	CHECK_OK(fx_st_writer_commit(w, at("router1.safetensors"), &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_write_file_atomic(at("tokenizer.json"), "{\"model\":{}}",
	                              12, 0644, &d));

	fx_keypair_init(&root);
	fx_keypair_init(&coord);
	fx_keypair_init(&alice);
	CHECK_OK(fx_keypair_generate(&root, &d));
	CHECK_OK(fx_keypair_generate(&coord, &d));
	CHECK_OK(fx_keypair_generate(&alice, &d));
	fx_roster_init(&roster);
	snprintf(roster.consortium, sizeof(roster.consortium), "test");
	roster.version = 3;
	roster.expires = NOW + 30 * 86400;
	roster.threshold = 1;
	CHECK_OK(fx_roster_add(&roster, "root", root.pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(fx_roster_add(&roster, "coord", coord.pk, FX_ROLE_COORDINATOR,
	                       0, &d));
	CHECK_OK(fx_roster_add(&roster, "alice", alice.pk, FX_ROLE_CONTRIBUTOR,
	                       0, &d));
}

static fx_release_params params(uint64_t version, const char *router)
{
	fx_release_params p = {at("anchor.safetensors"),
	                       at(router),
	                       at("tokenizer.json"),
	                       version,
	                       NOW,
	                       NOW + 86400,
	                       &roster};
	return p;
}

static fx_err load_release(const char *sub, uint8_t **env, size_t *len)
{
	fx_diag d;
	return fx_release_read(at(sub), env, len, &d);
}

static void test_create_verify(void)
{
	fx_release_params p = params(1, "router2.safetensors");
	fx_release r;
	uint8_t *env = NULL;
	size_t len = 0;
	fx_diag d;

	fx_release_init(&r);
	CHECK_OK(fx_release_create(&p, &coord, NULL, 0, at("rel1"), &d));
	CHECK_OK(load_release("rel1", &env, &len));
	CHECK_OK(
	    fx_release_verify(&r, env, len, &roster, NOW + 10, 0, NULL, &d));
	CHECK(r.msg->release_version == 1 && r.msg->n_tensors == 2);
	CHECK(r.msg->router_pub->layers == 2 && r.msg->router_pub->dim == 4);
	CHECK(r.msg->router_pub->values[7] == 3.5f);
	CHECK(strcmp(r.signer, "coord") == 0);
	/* config sorted by key */
	CHECK(r.msg->n_config == 3 &&
	      strcmp(r.msg->config[0]->key, "format") == 0);
	CHECK_OK(fx_release_check_files(&r, at("rel1"), &d));

	/* Rollback: an older version than accepted; same version with another
	 * digest; the same release again is fine. */
	CHECK(fx_release_verify(&r, env, len, &roster, NOW, 2, NULL, &d) ==
	      FX_EROLLBACK);
	CHECK_MSG(strstr(d.msg, "older") != NULL, "%s", d.msg);
	{
		uint8_t other[32] = {1};
		uint8_t same[32];
		memcpy(same, r.digest, 32);
		CHECK(fx_release_verify(&r, env, len, &roster, NOW, 1, other,
		                        &d) == FX_EROLLBACK);
		CHECK_OK(
		    fx_release_verify(&r, env, len, &roster, NOW, 1, same, &d));
	}
	/* Expired. */
	CHECK(fx_release_verify(&r, env, len, &roster, NOW + 86401, 0, NULL,
	                        &d) == FX_EEXPIRED);
	CHECK_MSG(strstr(d.msg, "expired") != NULL, "%s", d.msg);
	fx_release_release(&r);
	free(env);

	/* A [d] router row is repeated for every layer. */
	p = params(2, "router1.safetensors");
	CHECK_OK(fx_release_create(&p, &coord, NULL, 0, at("rel2"), &d));
	CHECK_OK(load_release("rel2", &env, &len));
	CHECK_OK(fx_release_verify(&r, env, len, &roster, NOW, 1, NULL, &d));
	CHECK(r.msg->router_pub->values[4] == 1.0f &&
	      r.msg->router_pub->values[7] == 4.0f);
	fx_release_release(&r);
	free(env);
}

static void test_signers(void)
{
	fx_release_params p = params(1, "router2.safetensors");
	const fx_keypair *wrong[1] = {&alice};
	const fx_keypair *cos[1] = {&root};
	fx_release r;
	uint8_t *env = NULL;
	size_t len = 0;
	Flexo__V1__Envelope *e = NULL;
	fx_diag d;

	fx_release_init(&r);
	/* A contributor key cannot make a release. */
	CHECK(fx_release_create(&p, &alice, NULL, 0, at("bad"), &d) ==
	      FX_EPERM);
	/* Take a good release apart and re-seal its payload unsigned and
	 * signed by the wrong member. */
	CHECK_MSG(fx_release_create(&p, &coord, NULL, 0, at("rel3"), &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK_OK(load_release("rel3", &env, &len));
	CHECK_OK(fx_envelope_open(env, len, FX_TYPE_RELEASE, &e, &d));
	free(env);
	CHECK_OK(fx_envelope_seal(FX_TYPE_RELEASE, e->payload.data,
	                          e->payload.len, NULL, 0, &env, &len, &d));
	CHECK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d) ==
	      FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "unsigned") != NULL, "%s", d.msg);
	free(env);
	CHECK_OK(fx_envelope_seal(FX_TYPE_RELEASE, e->payload.data,
	                          e->payload.len, wrong, 1, &env, &len, &d));
	CHECK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d) ==
	      FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "coordinator") != NULL, "%s", d.msg);
	free(env);
	/* Another consortium's roster with the same coordinator key. */
	{
		fx_roster other;
		fx_roster_init(&other);
		snprintf(other.consortium, sizeof(other.consortium), "other");
		other.version = 3;
		other.expires = NOW + 86400;
		other.threshold = 1;
		CHECK_OK(fx_roster_add(&other, "root", root.pk, FX_ROLE_ROOT, 0,
		                       &d));
		CHECK_OK(fx_roster_add(&other, "coord", coord.pk,
		                       FX_ROLE_COORDINATOR, 0, &d));
		CHECK_OK(load_release("rel3", &env, &len));
		CHECK(fx_release_verify(&r, env, len, &other, NOW, 0, NULL,
		                        &d) == FX_EMISMATCH);
		free(env);
		fx_roster_release(&other);
	}
	/* The roster asks for one root co-signature. */
	roster.release_cosigners = 1;
	CHECK_OK(load_release("rel3", &env, &len));
	CHECK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d) ==
	      FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "co-signature") != NULL, "%s", d.msg);
	free(env);
	CHECK(fx_release_create(&p, &coord, NULL, 0, at("rel4"), &d) ==
	      FX_EBADSIG);
	CHECK_OK(fx_release_create(&p, &coord, cos, 1, at("rel4"), &d));
	CHECK_OK(load_release("rel4", &env, &len));
	CHECK_OK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d));
	free(env);
	roster.release_cosigners = 0;
	fx_wire_free(&e->base);
	fx_release_release(&r);
}

static void flip_file_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c;
	fseek(f, off, SEEK_SET);
	c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x01, f);
	fclose(f);
}

static void test_files(void)
{
	fx_release_params p = params(1, "router2.safetensors");
	fx_release r;
	uint8_t *env = NULL;
	size_t len = 0;
	fx_diag d;

	fx_release_init(&r);
	CHECK_OK(fx_release_create(&p, &coord, NULL, 0, at("rel5"), &d));
	CHECK_OK(load_release("rel5", &env, &len));
	CHECK_OK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d));
	CHECK_OK(fx_release_check_files(&r, at("rel5"), &d));
	{
		/* Last data byte: inside a tensor. */
		FILE *f = fopen(at("rel5/anchor.safetensors"), "rb");
		long end;
		fseek(f, 0, SEEK_END);
		end = ftell(f);
		fclose(f);
		flip_file_byte(at("rel5/anchor.safetensors"), end - 1);
		CHECK(fx_release_check_files(&r, at("rel5"), &d) ==
		      FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "anchor.safetensors") != NULL, "%s",
		          d.msg);
		flip_file_byte(at("rel5/anchor.safetensors"), end - 1);
		CHECK_OK(fx_release_check_files(&r, at("rel5"), &d));
	}
	flip_file_byte(at("rel5/router.pub.safetensors"), 20);
	CHECK(fx_release_check_files(&r, at("rel5"), &d) == FX_EMISMATCH);
	CHECK_MSG(strstr(d.msg, "r_pub") != NULL, "%s", d.msg);
	flip_file_byte(at("rel5/router.pub.safetensors"), 20);
	CHECK_OK(fx_release_check_files(&r, at("rel5"), &d));
	flip_file_byte(at("rel5/tokenizer.json"), 3);
	CHECK(fx_release_check_files(&r, at("rel5"), &d) == FX_EMISMATCH);
	CHECK_MSG(strstr(d.msg, "tokenizer") != NULL, "%s", d.msg);
	unlink(at("rel5/tokenizer.json"));
	CHECK(fx_release_check_files(&r, at("rel5"), &d) == FX_ENOTFOUND);
	fx_release_release(&r);
	free(env);
}

/* The contributor's high-water mark file: round trip, absent, damaged. */
static void test_state_file(void)
{
	uint8_t dg[32], got[32];
	uint64_t v = 0;
	int have = 1;
	fx_diag d;

	memset(dg, 0xab, sizeof(dg));
	CHECK_OK(fx_mkdir_p(at("st"), 0700, &d));
	CHECK_OK(fx_release_state_load(at("st"), &have, &v, got, &d));
	CHECK(have == 0);
	CHECK_OK(fx_release_state_save(at("st"), 12, dg, &d));
	CHECK_OK(fx_release_state_load(at("st"), &have, &v, got, &d));
	CHECK(have == 1 && v == 12 && memcmp(got, dg, 32) == 0);
	CHECK_OK(fx_write_file_atomic(at("st/release.state"), "version 99\n",
	                              11, 0644, &d));
	CHECK(fx_release_state_load(at("st"), &have, &v, got, &d) ==
	      FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "damaged") != NULL, "%s", d.msg);
}

/* Every single-byte change of the release envelope is refused. */
static void test_flip_every_byte(void)
{
	uint8_t *env = NULL;
	size_t len = 0, accepted = 0;
	fx_release r;
	fx_diag d;

	fx_release_init(&r);
	CHECK_OK(load_release("rel1", &env, &len));
	CHECK_OK(fx_release_verify(&r, env, len, &roster, NOW, 0, NULL, &d));
	for (size_t i = 0; i < len; i++) {
		static const uint8_t masks[] = {0x01, 0x80, 0xff};
		for (size_t k = 0; k < sizeof(masks); k++) {
			env[i] ^= masks[k];
			if (fx_release_verify(&r, env, len, &roster, NOW, 0,
			                      NULL, &d) == FX_OK) {
				accepted++;
				fprintf(stderr, "byte %zu ^ %02x accepted\n", i,
				        masks[k]);
			}
			env[i] ^= masks[k];
		}
	}
	CHECK_MSG(accepted == 0, "%zu of %zu flips accepted", accepted,
	          3 * len);
	fx_release_release(&r);
	free(env);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	fixtures();
	RUN(test_create_verify);
	RUN(test_signers);
	RUN(test_files);
	RUN(test_flip_every_byte);
	RUN(test_state_file);
	fx_roster_release(&roster);
	fx_keypair_release(&root);
	fx_keypair_release(&coord);
	fx_keypair_release(&alice);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return FX_TEST_REPORT();
}
