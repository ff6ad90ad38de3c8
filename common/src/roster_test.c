/* Roster rotation as TUF's root rule: accepted with k signatures of the
 * trusted roots, refused with k-1, with a version not higher, when expired,
 * when signed by a key the trusted roster removed, and when one key's
 * signature is repeated; plus structural rules, signer lookup and times. */
#include <stdlib.h>

#include "flexo/keys.h"
#include "flexo/roster.h"
#include "fx_test.h"

#define NOW 1800000000LL /* a fixed "now" keeps the test reproducible */

static fx_keypair root[4], coord, contrib;

static void make_keys(void)
{
	fx_diag d;
	for (int i = 0; i < 4; i++) {
		fx_keypair_init(&root[i]);
		CHECK_OK(fx_keypair_generate(&root[i], &d));
	}
	fx_keypair_init(&coord);
	fx_keypair_init(&contrib);
	CHECK_OK(fx_keypair_generate(&coord, &d));
	CHECK_OK(fx_keypair_generate(&contrib, &d));
}

static void free_keys(void)
{
	for (int i = 0; i < 4; i++)
		fx_keypair_release(&root[i]);
	fx_keypair_release(&coord);
	fx_keypair_release(&contrib);
}

/* v1: roots 0,1,2 (k = 2), a coordinator and a contributor. */
static void build_v1(fx_roster *r)
{
	fx_diag d;
	fx_roster_init(r);
	snprintf(r->consortium, sizeof(r->consortium), "test-consortium");
	r->version = 1;
	r->expires = NOW + 86400;
	r->threshold = 2;
	CHECK_OK(fx_roster_add(r, "root0", root[0].pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(fx_roster_add(r, "root1", root[1].pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(fx_roster_add(r, "root2", root[2].pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(
	    fx_roster_add(r, "coord", coord.pk, FX_ROLE_COORDINATOR, 0, &d));
	CHECK_OK(fx_roster_add(r, "alice", contrib.pk, FX_ROLE_CONTRIBUTOR,
	                       NOW + 3600, &d));
	CHECK_OK(fx_roster_seal(r, &d));
}

/* Next version of `from`: root2 removed, root3 added, signed by `signers`. */
static void build_next(const fx_roster *from, fx_roster *r, uint64_t version,
                       int64_t expires, const int *signers, int n)
{
	fx_diag d;
	fx_roster_init(r);
	CHECK_OK(fx_roster_parse(r, from->envelope, from->envelope_len, &d));
	r->version = version;
	r->expires = expires;
	if (fx_roster_find_key(r, root[2].pk) != NULL)
		CHECK_OK(fx_roster_remove(r, "root2", &d));
	if (fx_roster_find_key(r, root[3].pk) == NULL)
		CHECK_OK(
		    fx_roster_add(r, "root3", root[3].pk, FX_ROLE_ROOT, 0, &d));
	CHECK_OK(fx_roster_seal(r, &d));
	for (int i = 0; i < n; i++)
		CHECK_OK(fx_roster_sign(r, &root[signers[i]], &d));
}

static void test_initial(void)
{
	fx_roster v1, out;
	fx_diag d;

	build_v1(&v1);
	fx_roster_init(&out);
	CHECK(fx_roster_verify_initial(&out, v1.envelope, v1.envelope_len, NOW,
	                               &d) == FX_EBADSIG);
	CHECK_OK(fx_roster_sign(&v1, &root[0], &d));
	CHECK(fx_roster_sign(&v1, &root[0], &d) == FX_EEXIST);
	CHECK(fx_roster_verify_initial(&out, v1.envelope, v1.envelope_len, NOW,
	                               &d) == FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "1 valid signature") != NULL, "%s", d.msg);
	/* A non-root signature does not count. */
	CHECK_OK(fx_roster_sign(&v1, &coord, &d));
	CHECK(fx_roster_verify_initial(&out, v1.envelope, v1.envelope_len, NOW,
	                               &d) == FX_EBADSIG);
	CHECK_OK(fx_roster_sign(&v1, &root[1], &d));
	CHECK_OK(fx_roster_verify_initial(&out, v1.envelope, v1.envelope_len,
	                                  NOW, &d));
	CHECK(out.version == 1 && out.n_members == 5 && out.threshold == 2);
	CHECK(strcmp(out.members[4].name, "alice") == 0);
	CHECK(out.members[4].not_after == NOW + 3600);
	CHECK(memcmp(out.digest, v1.digest, 32) == 0);
	CHECK(fx_roster_verify_initial(&out, v1.envelope, v1.envelope_len,
	                               NOW + 86401, &d) == FX_EEXPIRED);
	fx_roster_release(&out);
	fx_roster_release(&v1);
}

static void test_rotation(void)
{
	static const int k_ok[] = {0, 1}, k_minus[] = {0}, with_new[] = {0, 3};
	static const int removed[] = {0, 2};
	fx_roster v1, v2, v3, out;
	fx_diag d;

	build_v1(&v1);
	CHECK_OK(fx_roster_sign(&v1, &root[0], &d));
	CHECK_OK(fx_roster_sign(&v1, &root[1], &d));
	fx_roster_init(&out);

	/* k signatures of the trusted roots: accepted. */
	build_next(&v1, &v2, 2, NOW + 86400, k_ok, 2);
	CHECK_OK(fx_roster_verify_update(&v1, &out, v2.envelope,
	                                 v2.envelope_len, NOW, &d));
	CHECK(out.version == 2);
	fx_roster_release(&v2);

	/* k-1: refused. */
	build_next(&v1, &v2, 2, NOW + 86400, k_minus, 1);
	CHECK(fx_roster_verify_update(&v1, &out, v2.envelope, v2.envelope_len,
	                              NOW, &d) == FX_EBADSIG);
	CHECK_MSG(strstr(d.msg, "trusted v1") != NULL, "%s", d.msg);
	fx_roster_release(&v2);

	/* A new root's signature does not count towards the old threshold. */
	build_next(&v1, &v2, 2, NOW + 86400, with_new, 2);
	CHECK(fx_roster_verify_update(&v1, &out, v2.envelope, v2.envelope_len,
	                              NOW, &d) == FX_EBADSIG);
	fx_roster_release(&v2);

	/* Same or lower version: rollback. */
	build_next(&v1, &v2, 1, NOW + 86400, k_ok, 2);
	CHECK(fx_roster_verify_update(&v1, &out, v2.envelope, v2.envelope_len,
	                              NOW, &d) == FX_EROLLBACK);
	fx_roster_release(&v2);

	/* The trusted v1 has lapsed (it expires at NOW + 1 day): its roots can
	 * still vouch for a fresh v2, as in TUF. */
	build_next(&v1, &v2, 2, NOW + 5 * 86400, k_ok, 2);
	CHECK_OK(fx_roster_verify_update(&v1, &out, v2.envelope,
	                                 v2.envelope_len, NOW + 2 * 86400, &d));
	fx_roster_release(&v2);

	/* Expired candidate. */
	build_next(&v1, &v2, 2, NOW - 1, k_ok, 2);
	CHECK(fx_roster_verify_update(&v1, &out, v2.envelope, v2.envelope_len,
	                              NOW, &d) == FX_EEXPIRED);
	fx_roster_release(&v2);

	/* v3 signed by root2, which v2 removed, plus root0: only 1 of the
	 * trusted v2 roots, refused. */
	build_next(&v1, &v2, 2, NOW + 86400, k_ok, 2);
	build_next(&v2, &v3, 3, NOW + 86400, removed, 2);
	CHECK(fx_roster_verify_update(&v2, &out, v3.envelope, v3.envelope_len,
	                              NOW, &d) == FX_EBADSIG);
	fx_roster_release(&v3);
	/* ... and with root0 + root3 (both v2 roots) it is accepted. */
	build_next(&v2, &v3, 3, NOW + 86400, with_new, 2);
	CHECK_OK(fx_roster_verify_update(&v2, &out, v3.envelope,
	                                 v3.envelope_len, NOW, &d));
	fx_roster_release(&v3);
	fx_roster_release(&v2);
	fx_roster_release(&out);
	fx_roster_release(&v1);
}

/* One key's signature repeated k times still counts once. */
static void test_repeated_signature(void)
{
	Flexo__V1__Envelope env = FLEXO__V1__ENVELOPE__INIT;
	Flexo__V1__Envelope *open = NULL;
	Flexo__V1__Signature *sigs[2];
	fx_roster v1, out;
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_diag d;

	build_v1(&v1);
	CHECK_OK(fx_roster_sign(&v1, &root[0], &d));
	CHECK_OK(fx_envelope_open(v1.envelope, v1.envelope_len, FX_TYPE_ROSTER,
	                          &open, &d));
	sigs[0] = sigs[1] = open->signatures[0];
	env.payload_type = open->payload_type;
	env.payload = open->payload;
	env.signatures = sigs;
	env.n_signatures = 2;
	CHECK_OK(fx_wire_encode(&env.base, &buf, &len, &d));
	fx_roster_init(&out);
	CHECK(fx_roster_verify_initial(&out, buf, len, NOW, &d) == FX_EBADSIG);
	CHECK(fx_roster_count_root_sigs(&v1, &env, NOW) == 1);
	free(buf);
	fx_wire_free(&open->base);
	fx_roster_release(&v1);
}

static void test_structure(void)
{
	fx_roster r;
	fx_diag d;

	build_v1(&r);
	CHECK(fx_roster_add(&r, "alice", root[3].pk, FX_ROLE_AUDITOR, 0, &d) ==
	      FX_EEXIST);
	CHECK(fx_roster_add(&r, "bob", contrib.pk, FX_ROLE_AUDITOR, 0, &d) ==
	      FX_EEXIST);
	CHECK(fx_roster_remove(&r, "nobody", &d) == FX_ENOTFOUND);
	r.threshold = 4;
	CHECK(fx_roster_seal(&r, &d) == FX_EINVAL);
	CHECK_MSG(strstr(d.msg, "threshold") != NULL, "%s", d.msg);
	r.threshold = 0;
	CHECK(fx_roster_seal(&r, &d) == FX_EINVAL);
	r.threshold = 1;
	r.release_cosigners = 4;
	CHECK(fx_roster_seal(&r, &d) == FX_EINVAL);
	r.release_cosigners = 0;
	CHECK_OK(fx_roster_remove(&r, "root0", &d));
	CHECK_OK(fx_roster_remove(&r, "root1", &d));
	CHECK_OK(fx_roster_remove(&r, "root2", &d));
	CHECK(fx_roster_seal(&r, &d) == FX_EINVAL);
	CHECK_MSG(strstr(d.msg, "no root") != NULL, "%s", d.msg);
	CHECK(fx_roster_add(&r, "", root[0].pk, FX_ROLE_ROOT, 0, &d) ==
	      FX_EINVAL);
	fx_roster_release(&r);
}

static void test_signer(void)
{
	const fx_keypair *signers[1] = {&contrib};
	Flexo__V1__Envelope *env = NULL;
	const fx_member *who = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_roster r;
	fx_diag d;

	build_v1(&r);
	CHECK_OK(fx_envelope_seal("flexo.v1.Test", (const uint8_t *)"x", 1,
	                          signers, 1, &buf, &len, &d));
	CHECK_OK(fx_envelope_open(buf, len, "flexo.v1.Test", &env, &d));
	CHECK_OK(
	    fx_roster_find_signer(&r, env, FX_ROLE_CONTRIBUTOR, NOW, &who, &d));
	CHECK(who != NULL && strcmp(who->name, "alice") == 0);
	CHECK(fx_roster_find_signer(&r, env, FX_ROLE_COORDINATOR, NOW, &who,
	                            &d) == FX_EBADSIG);
	/* alice's key is valid for an hour. */
	CHECK(fx_roster_find_signer(&r, env, FX_ROLE_CONTRIBUTOR, NOW + 3601,
	                            &who, &d) == FX_EEXPIRED);
	CHECK_MSG(strstr(d.msg, "alice") != NULL, "%s", d.msg);
	fx_wire_free(&env->base);
	free(buf);
	fx_roster_release(&r);
}

static void test_time(void)
{
	int64_t t = 0;
	fx_diag d;
	char buf[32];
	CHECK_OK(fx_time_parse("2026-12-04", 0, &t, &d));
	CHECK(t == 1796342400LL);
	CHECK_OK(fx_time_parse("2026-12-04T01:02:03Z", 0, &t, &d));
	CHECK(t == 1796342400LL + 3723);
	CHECK(strcmp(fx_time_format(buf, sizeof(buf), t),
	             "2026-12-04T01:02:03Z") == 0);
	CHECK_OK(fx_time_parse("+2d", 100, &t, &d));
	CHECK(t == 100 + 2 * 86400);
	CHECK_OK(fx_time_parse("12345", 0, &t, &d));
	CHECK(t == 12345);
	CHECK(fx_time_parse("2026-13-01", 0, &t, &d) == FX_EINVAL);
	CHECK(fx_time_parse("2026-12-04T01:02:03", 0, &t, &d) == FX_EINVAL);
	CHECK(fx_time_parse("+3w", 0, &t, &d) == FX_EINVAL);
	CHECK(fx_time_parse("12a", 0, &t, &d) == FX_EINVAL);
}

int main(void)
{
	make_keys();
	RUN(test_initial);
	RUN(test_rotation);
	RUN(test_repeated_signature);
	RUN(test_structure);
	RUN(test_signer);
	RUN(test_time);
	free_keys();
	return FX_TEST_REPORT();
}
