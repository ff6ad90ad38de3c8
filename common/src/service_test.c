/* Tests of the service and the client together, in one process over
 * ipc://: an accepted round trip, the verdict asked for again, a payload
 * that does not match its manifest, a key outside the roster refused before
 * any payload moves, chunks of an odd size, release downloads (and refused
 * names), a service restarted mid-upload with the upload resuming, and
 * concurrent contributors. Multi-process, TCP and TLS runs are in tests/net/.
 */
#include "flexo/client.h"
#include "flexo/service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flexo/admit.h"
#include "flexo/contrib.h"
#include "flexo/fsutil.h"
#include "flexo/wire.h"
#include "fx_test.h"
#include <nng/protocol/reqrep0/req.h>

#define N_CONCURRENT 8

static char dir[256], url[300], staging[300], release[300];
static fx_roster roster;
static fx_keypair alice, mallory, crowd[N_CONCURRENT];
static uint8_t anchor_digest[FX_BLAKE2B_BYTES];

static void fill(uint8_t *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		buf[i] = (uint8_t)(seed >> 24);
	}
}

static int write_random(const char *path, size_t n, uint32_t seed)
{
	uint8_t *b = malloc(n);
	fx_err err;
	if (b == NULL)
		return -1;
	fill(b, n, seed);
	err = fx_write_file_atomic(path, b, n, 0644, NULL);
	free(b);
	return err == FX_OK ? 0 : -1;
}

static void service_config(fx_service_config *cfg)
{
	fx_service_config_init(cfg);
	cfg->urls[0] = url;
	cfg->n_urls = 1;
	cfg->staging_dir = staging;
	cfg->release_dir = release;
	cfg->contexts = 4;
	cfg->limits.checkpoint_every = 128u << 10;
	cfg->admit = fx_admit_signed;
	cfg->precheck = fx_precheck_signed;
	cfg->ctx = &roster;
}

static void client_opts(fx_client_opts *o)
{
	fx_client_opts_init(o);
	o->url = url;
	o->chunk = 128u << 10;
	o->timeout_ms = 2000;
}

static fx_err seal(const fx_keypair *k, const char *payload, uint64_t seq,
                   uint8_t **env, size_t *len)
{
	static const float router[4] = {0.5f, -0.25f, 0.125f, 1.0f};
	fx_contrib_params p;

	memset(&p, 0, sizeof(p));
	p.consortium = "testnet";
	p.release_digest = anchor_digest;
	p.release_version = 1;
	p.domain = "code";
	p.sequence = seq;
	p.payload_path = payload;
	p.layers = 1;
	p.dim = 4;
	p.router = router;
	p.created = (int64_t)time(NULL);
	return fx_contrib_create(&p, k, env, len, NULL);
}

static void test_round_trip(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	fx_client_opts o;
	fx_client *c = NULL;
	fx_submit_result r;
	Flexo__V1__Envelope *e = NULL;
	uint8_t *env = NULL, want[FX_BLAKE2B_BYTES];
	size_t env_len = 0;
	char payload[320], other[320];
	fx_diag d = {{0}};

	snprintf(payload, sizeof(payload), "%s/expert.bin", dir);
	snprintf(other, sizeof(other), "%s/other.bin", dir);
	CHECK_OK(write_random(payload, 1000003, 11));
	CHECK_OK(write_random(other, 1000003, 12));
	service_config(&cfg);
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	client_opts(&o);
	CHECK_OK(fx_client_open(&c, &o, &d));
	CHECK_OK(seal(&alice, payload, 1, &env, &env_len));

	memset(&r, 0, sizeof(r));
	CHECK_MSG(fx_client_submit(c, env, env_len, payload, &r, &d) == FX_OK,
	          "%s", d.msg);
	CHECK_MSG(r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED,
	          "%s: %s", r.gate, r.reason);
	CHECK(r.sent == 1000003);
	CHECK_OK(
	    fx_envelope_open(env, env_len, FX_TYPE_CONTRIBUTION, &e, NULL));
	if (e) {
		fx_blake2b(want, e->payload.data, e->payload.len);
		CHECK(memcmp(r.contribution_digest, want, sizeof(want)) == 0);
		fx_wire_free(&e->base);
	}
	fx_submit_result_release(&r);

	/* Asking again after the verdict (as after a lost reply): the stored
	 * verdict, no payload resent. */
	memset(&r, 0, sizeof(r));
	CHECK_OK(fx_client_submit(c, env, env_len, payload, &r, &d));
	CHECK(r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED);
	CHECK(r.sent == 0);
	fx_submit_result_release(&r);
	free(env);

	/* A manifest for one file, another file's bytes. */
	CHECK_OK(seal(&alice, payload, 2, &env, &env_len));
	memset(&r, 0, sizeof(r));
	CHECK_OK(fx_client_submit(c, env, env_len, other, &r, &d));
	CHECK(r.decision == FLEXO__V1__DECISION__DECISION_REJECTED);
	CHECK(strcmp(r.gate, "payload") == 0);
	CHECK_MSG(strstr(r.reason, "BLAKE2b-256") != NULL, "%s", r.reason);
	fx_submit_result_release(&r);
	free(env);

	/* A key outside the roster: refused at UploadBegin. */
	CHECK_OK(seal(&mallory, payload, 1, &env, &env_len));
	memset(&r, 0, sizeof(r));
	CHECK_OK(fx_client_submit(c, env, env_len, payload, &r, &d));
	CHECK(r.decision == FLEXO__V1__DECISION__DECISION_REJECTED);
	CHECK(strcmp(r.gate, "signature") == 0);
	CHECK(r.sent == 0);
	fx_submit_result_release(&r);
	free(env);

	/* Not a contribution at all. */
	memset(&r, 0, sizeof(r));
	CHECK(fx_client_submit(c, (const uint8_t *)"junk", 4, payload, &r,
	                       &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "contribution") != NULL, "%s", d.msg);

	fx_client_close(c);
	fx_service_stop(svc);
}

/* Chunks of an odd size: every staging write starts and ends inside a
 * disk block (direct and buffered writes mixed), the client packs each
 * next chunk ahead, and checkpoints fall between chunks. */
static void test_odd_chunks(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	fx_client_opts o;
	fx_client *c = NULL;
	fx_submit_result r;
	uint8_t *env = NULL;
	size_t env_len = 0;
	char payload[320];
	fx_diag d = {{0}};

	snprintf(payload, sizeof(payload), "%s/odd.bin", dir);
	CHECK_OK(write_random(payload, 1000003, 41));
	service_config(&cfg);
	cfg.limits.checkpoint_every = 150001;
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	client_opts(&o);
	o.chunk = 100003;
	CHECK_OK(fx_client_open(&c, &o, &d));
	CHECK_OK(seal(&alice, payload, 7, &env, &env_len));
	memset(&r, 0, sizeof(r));
	CHECK_MSG(fx_client_submit(c, env, env_len, payload, &r, &d) == FX_OK,
	          "%s", d.msg);
	CHECK_MSG(r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED,
	          "%s: %s", r.gate, r.reason);
	CHECK(r.sent == 1000003 && r.rewinds == 0 && r.resumes == 0);
	fx_submit_result_release(&r);
	free(env);
	fx_client_close(c);
	fx_service_stop(svc);
}

static void test_fetch(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	fx_client_opts o;
	fx_client *c = NULL;
	char src[320], dst[320];
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	fx_diag d = {{0}};

	snprintf(src, sizeof(src), "%s/anchor.safetensors", release);
	snprintf(dst, sizeof(dst), "%s/fetched.safetensors", dir);
	CHECK_OK(write_random(src, 700001, 21));
	service_config(&cfg);
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	client_opts(&o);
	CHECK_OK(fx_client_open(&c, &o, &d));
	CHECK_MSG(fx_client_fetch(c, "anchor.safetensors", dst, 1u << 20, &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK_OK(fx_read_file(src, 1u << 20, &a, &alen, NULL));
	CHECK_OK(fx_read_file(dst, 1u << 20, &b, &blen, NULL));
	CHECK(a && b && alen == blen && memcmp(a, b, alen) == 0);
	free(a);
	free(b);
	CHECK(fx_client_fetch(c, "anchor.safetensors", dst, 1000, &d) ==
	      FX_ETOOBIG);
	CHECK(fx_client_fetch(c, "../staging", dst, 1u << 20, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "plain name") != NULL);
	CHECK(fx_client_fetch(c, "missing.bin", dst, 1u << 20, &d) ==
	      FX_ENOTFOUND);
	CHECK(strstr(d.msg, "missing.bin") != NULL);
	fx_client_close(c);
	fx_service_stop(svc);
}

/* One raw exchange: packs req, returns the decoded Response (or NULL). */
static Flexo__V1__Response *raw(nng_socket s, Flexo__V1__Request *req)
{
	nng_msg *m = NULL;
	ProtobufCMessage *r = NULL;

	if (fx_net_pack(&req->base, &m, NULL) != FX_OK)
		return NULL;
	if (nng_sendmsg(s, m, 0) != 0) {
		nng_msg_free(m);
		return NULL;
	}
	if (nng_recvmsg(s, &m, 0) != 0)
		return NULL;
	(void)fx_net_unpack(m, &flexo__v1__response__descriptor,
	                    FX_WIRE_MSG_MAX, &r, NULL);
	nng_msg_free(m);
	return (Flexo__V1__Response *)r;
}

static int error_code(Flexo__V1__Response *r, const char *needle)
{
	int code = -1;
	if (r != NULL && r->body_case == FLEXO__V1__RESPONSE__BODY_ERROR &&
	    (needle == NULL || strstr(r->error->message, needle) != NULL))
		code = (int)r->error->code;
	if (r != NULL)
		fx_wire_free(&r->base);
	return code;
}

/* Requests that break the rules get an Error naming what was wrong, and
 * the quota holds through the service. */
static void test_protocol_errors(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	nng_socket s;
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__UploadChunk uc = FLEXO__V1__UPLOAD_CHUNK__INIT;
	Flexo__V1__UploadBegin ub = FLEXO__V1__UPLOAD_BEGIN__INIT;
	Flexo__V1__UploadEnd ue = FLEXO__V1__UPLOAD_END__INIT;
	uint8_t sid[16] = {9}, data[8] = {0}, *env = NULL;
	size_t env_len = 0;
	char payload[320];
	fx_diag d = {{0}};

	service_config(&cfg);
	cfg.limits.quota = 1000; /* smaller than the payload below */
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	CHECK_OK(nng_req0_open(&s));
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
	CHECK_OK(nng_dial(s, url, NULL, 0));

	req.protocol = 2;
	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_END;
	ue.session_id.data = sid;
	ue.session_id.len = sizeof(sid);
	req.upload_end = &ue;
	CHECK(error_code(raw(s, &req), "protocol") == FX_EPROTO);

	req.protocol = 1;
	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_CHUNK;
	uc.session_id.data = sid;
	uc.session_id.len = sizeof(sid);
	uc.data.data = data;
	uc.data.len = sizeof(data);
	req.upload_chunk = &uc;
	CHECK(error_code(raw(s, &req), "no upload session") == FX_ENOTFOUND);

	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_END;
	req.upload_end = &ue; /* the bodies share a union */
	CHECK(error_code(raw(s, &req), "no upload session") == FX_ENOTFOUND);

	req.body_case = FLEXO__V1__REQUEST__BODY__NOT_SET;
	CHECK(error_code(raw(s, &req), "empty request") == FX_EPROTO);

	req.body_case = FLEXO__V1__REQUEST__BODY_RECEIPT;
	{
		Flexo__V1__ReceiptRequest rr = FLEXO__V1__RECEIPT_REQUEST__INIT;
		uint8_t dg[32] = {1};
		rr.contribution_digest.data = dg;
		rr.contribution_digest.len = sizeof(dg);
		req.receipt = &rr;
		CHECK(error_code(raw(s, &req), "not served") == FX_ESTATE);
	}

	snprintf(payload, sizeof(payload), "%s/quota.bin", dir);
	CHECK_OK(write_random(payload, 5000, 41));
	CHECK_OK(seal(&alice, payload, 7, &env, &env_len));
	ub.contribution.data = env;
	ub.contribution.len = env_len;
	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &ub;
	CHECK(error_code(raw(s, &req), "quota") == FX_EQUOTA);
	free(env);
	nng_close(s);
	fx_service_stop(svc);
}

typedef struct job {
	const fx_keypair *key;
	char payload[320];
	uint64_t rate;
	fx_err err;
	fx_submit_result r;
	fx_diag d;
} job;

static void *submit_job(void *arg)
{
	job *j = arg;
	fx_client_opts o;
	fx_client *c = NULL;
	uint8_t *env = NULL;
	size_t len = 0;

	client_opts(&o);
	o.max_rate = j->rate;
	o.chunk = 64u << 10;
	o.timeout_ms = 1000;
	if ((j->err = seal(j->key, j->payload, 1, &env, &len)) != FX_OK ||
	    (j->err = fx_client_open(&c, &o, &j->d)) != FX_OK)
		goto out;
	j->err = fx_client_submit(c, env, len, j->payload, &j->r, &j->d);
out:
	fx_client_close(c);
	free(env);
	return NULL;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_restart_mid_upload(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	pthread_t t;
	job j;
	fx_diag d = {{0}};

	memset(&j, 0, sizeof(j));
	j.key = &crowd[0];
	j.rate = 1u << 20; /* 2 MiB at 1 MiB/s: the stop lands mid-upload */
	snprintf(j.payload, sizeof(j.payload), "%s/slow.bin", dir);
	CHECK_OK(write_random(j.payload, 2u << 20, 31));
	service_config(&cfg);
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	pthread_create(&t, NULL, submit_job, &j);
	nap_ms(800);
	fx_service_stop(svc); /* no final checkpoint, as after a crash */
	nap_ms(300);
	svc = NULL;
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	pthread_join(t, NULL);
	CHECK_MSG(j.err == FX_OK, "%s", j.d.msg);
	CHECK_MSG(j.r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED,
	          "%s: %s", j.r.gate, j.r.reason);
	/* Continued from a checkpoint, not from scratch: some bytes went
	 * twice, far from all. */
	CHECK_MSG(j.r.resumes + j.r.rewinds >= 1, "resumes %u rewinds %u",
	          j.r.resumes, j.r.rewinds);
	CHECK(j.r.sent > 2u << 20 && j.r.sent < 3u << 20);
	fx_submit_result_release(&j.r);
	fx_service_stop(svc);
}

static void test_concurrent(void)
{
	fx_service_config cfg;
	fx_service *svc = NULL;
	pthread_t t[N_CONCURRENT];
	static job jobs[N_CONCURRENT];
	fx_diag d = {{0}};

	service_config(&cfg);
	CHECK_OK(fx_service_start(&svc, &cfg, &d));
	for (int i = 0; i < N_CONCURRENT; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].key = &crowd[i];
		snprintf(jobs[i].payload, sizeof(jobs[i].payload), "%s/c%d.bin",
		         dir, i);
		CHECK_OK(write_random(jobs[i].payload, 300000 + 1000 * i,
		                      (uint32_t)(100 + i)));
		pthread_create(&t[i], NULL, submit_job, &jobs[i]);
	}
	for (int i = 0; i < N_CONCURRENT; i++) {
		pthread_join(t[i], NULL);
		CHECK_MSG(jobs[i].err == FX_OK, "%d: %s", i, jobs[i].d.msg);
		CHECK(jobs[i].r.decision ==
		      FLEXO__V1__DECISION__DECISION_ACCEPTED);
		fx_submit_result_release(&jobs[i].r);
	}
	fx_service_stop(svc);
}

static int setup(void)
{
	int64_t now = (int64_t)time(NULL);
	fx_keypair root;
	char name[16];

	snprintf(dir, sizeof(dir), "/tmp/fx-service-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(url, sizeof(url), "ipc://%s/sock", dir);
	snprintf(staging, sizeof(staging), "%s/staging", dir);
	snprintf(release, sizeof(release), "%s/release", dir);
	if (fx_mkdir_p(release, 0755, NULL) != FX_OK)
		return -1;
	fill(anchor_digest, sizeof(anchor_digest), 5);
	fx_keypair_init(&root);
	fx_keypair_init(&alice);
	fx_keypair_init(&mallory);
	fx_roster_init(&roster);
	snprintf(roster.consortium, sizeof(roster.consortium), "testnet");
	roster.version = 1;
	roster.expires = now + 3600;
	roster.threshold = 1;
	if (fx_keypair_generate(&root, NULL) != FX_OK ||
	    fx_keypair_generate(&alice, NULL) != FX_OK ||
	    fx_keypair_generate(&mallory, NULL) != FX_OK ||
	    fx_roster_add(&roster, "root", root.pk, FX_ROLE_ROOT, 0, NULL) !=
	        FX_OK ||
	    fx_roster_add(&roster, "alice", alice.pk, FX_ROLE_CONTRIBUTOR, 0,
	                  NULL) != FX_OK)
		return -1;
	for (int i = 0; i < N_CONCURRENT; i++) {
		fx_keypair_init(&crowd[i]);
		snprintf(name, sizeof(name), "c%d", i);
		if (fx_keypair_generate(&crowd[i], NULL) != FX_OK ||
		    fx_roster_add(&roster, name, crowd[i].pk,
		                  FX_ROLE_CONTRIBUTOR, 0, NULL) != FX_OK)
			return -1;
	}
	fx_keypair_release(&root);
	return 0;
}

int main(void)
{
	char cmd[300];

	if (sodium_init() < 0 || setup() != 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	RUN(test_round_trip);
	RUN(test_odd_chunks);
	RUN(test_fetch);
	RUN(test_protocol_errors);
	RUN(test_restart_mid_upload);
	RUN(test_concurrent);
	fx_keypair_release(&alice);
	fx_keypair_release(&mallory);
	for (int i = 0; i < N_CONCURRENT; i++)
		fx_keypair_release(&crowd[i]);
	fx_roster_release(&roster);
	nng_fini();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return FX_TEST_REPORT();
}
