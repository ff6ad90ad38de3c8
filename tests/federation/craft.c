/* Test tool for the federation tests: makes submissions that must fail one
 * admission gate each — an expert file changed in one way (mutate), and a
 * contribution manifest signed for any payload with chosen faults (sign) —
 * and withdrawal requests the contributor CLI never sends: one signed with
 * a chosen sequence (withdrawal), any bytes as a request (send, printing
 * the verdict and keeping its receipt).
 *   fx_craft mutate IN OUT nan|scale-ffn X|negate-down X|router-pub X RPUB|
 *                   anchor-digest
 *   fx_craft sign MANIFEST_FROM PAYLOAD KEY RELEASE_DIR ROSTER SEQ OUT
 *                 [normal|other-release|flip-sig]
 *   fx_craft withdrawal KEY ROSTER CONTRIBUTION_HEX SEQ OUT
 *   fx_craft send URL REQUEST_FILE RECEIPT_OUT
 * `sign` takes router rows, bias, domain and training figures from the
 * expert MANIFEST_FROM and size + digest from PAYLOAD (which may differ). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "flexo/contrib.h"
#include "flexo/expert.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/release.h"
#include "flexo/roster.h"
#include "flexo/routerpub.h"
#include "flexo/transport.h"
#include "flexo/wire.h"

static int mutate(int argc, char **argv)
{
	const char *mode = argv[4];
	fx_expert x;
	fx_diag d = {{0}};
	size_t L, F, dm, n;
	double k = argc > 5 ? strtod(argv[5], NULL) : 1.0;

	if (fx_expert_load(&x, argv[2], &d) != FX_OK) {
		fprintf(stderr, "fx_craft: %s\n", d.msg);
		return 1;
	}
	L = (size_t)x.cfg.n_layers;
	F = (size_t)x.cfg.d_ff;
	dm = (size_t)x.cfg.d_model;
	n = L * F * dm;
	if (strcmp(mode, "nan") == 0) {
		x.gate[n / 2] = NAN;
	} else if (strcmp(mode, "scale-ffn") == 0) {
		for (size_t i = 0; i < n; i++) {
			x.gate[i] *= (float)k;
			x.up[i] *= (float)k;
			x.down[i] *= (float)k;
		}
	} else if (strcmp(mode, "negate-down") == 0) {
		for (size_t i = 0; i < n; i++)
			x.down[i] *= (float)-k;
	} else if (strcmp(mode, "router-pub") == 0 && argc > 6) {
		fx_routerpub r;
		if (fx_routerpub_load(&r, argv[6], x.cfg.n_layers,
		                      x.cfg.d_model, &d) != FX_OK) {
			fprintf(stderr, "fx_craft: %s\n", d.msg);
			return 1;
		}
		for (size_t i = 0; i < L * dm; i++)
			x.router[i] = (float)k * r.rows[i];
		for (size_t l = 0; l < L; l++)
			x.bias[l] = 0.0f;
		fx_routerpub_release(&r);
	} else if (strcmp(mode, "anchor-digest") == 0) {
		char zeros[65];
		memset(zeros, '0', 64);
		zeros[64] = '\0';
		if (fx_expert_set_meta(&x, "anchor_digest", zeros, &d) != FX_OK)
			return 1;
	} else {
		fprintf(stderr, "fx_craft: unknown mutation %s\n", mode);
		return 2;
	}
	if (fx_expert_save(&x, argv[3], &d) != FX_OK) {
		fprintf(stderr, "fx_craft: %s\n", d.msg);
		return 1;
	}
	fx_expert_release(&x);
	return 0;
}

/* Flips one bit of the first signature of an encoded envelope. */
static int flip_sig(uint8_t **env, size_t *len)
{
	Flexo__V1__Envelope *e = NULL;
	uint8_t *out = NULL;
	size_t out_len = 0;

	if (fx_envelope_open(*env, *len, FX_TYPE_CONTRIBUTION, &e, NULL) !=
	        FX_OK ||
	    e->n_signatures == 0)
		return -1;
	e->signatures[0]->sig.data[5] ^= 0x01;
	if (fx_wire_encode(&e->base, &out, &out_len, NULL) != FX_OK)
		return -1;
	fx_wire_free(&e->base);
	free(*env);
	*env = out;
	*len = out_len;
	return 0;
}

static int sign(int argc, char **argv)
{
	const char *mode = argc > 9 ? argv[9] : "normal";
	fx_expert x;
	fx_keypair key;
	fx_roster roster;
	fx_release rel;
	fx_contrib_params p;
	uint8_t *buf = NULL, *env = NULL, other[FX_BLAKE2B_BYTES];
	size_t len = 0, env_len = 0;
	fx_diag d = {{0}};
	int rc = 1;

	memset(&p, 0, sizeof(p));
	fx_keypair_init(&key);
	fx_roster_init(&roster);
	fx_release_init(&rel);
	if (fx_expert_load(&x, argv[2], &d) != FX_OK ||
	    fx_seckey_load(&key, argv[4], NULL, 0, &d) != FX_OK ||
	    fx_read_file(argv[6], FX_ROSTER_FILE_MAX, &buf, &len, &d) !=
	        FX_OK ||
	    fx_roster_verify_initial(&roster, buf, len, (int64_t)time(NULL),
	                             &d) != FX_OK)
		goto out;
	free(buf);
	buf = NULL;
	if (fx_release_read(argv[5], &buf, &len, &d) != FX_OK ||
	    fx_release_verify(&rel, buf, len, &roster, (int64_t)time(NULL), 0,
	                      NULL, &d) != FX_OK)
		goto out;
	randombytes_buf(other, sizeof(other));
	p.consortium = roster.consortium;
	p.release_digest =
	    strcmp(mode, "other-release") == 0 ? other : rel.digest;
	p.release_version = rel.msg->release_version;
	p.domain = fx_expert_meta(&x, "domain");
	p.sequence = strtoull(argv[7], NULL, 10);
	p.payload_path = argv[3];
	p.layers = (uint32_t)x.cfg.n_layers;
	p.dim = (uint32_t)x.cfg.d_model;
	p.router = x.router;
	p.bias = x.bias;
	p.steps = 1;
	/* a fresh time, so every crafted manifest has its own digest */
	p.created = (int64_t)time(NULL) + (int64_t)randombytes_uniform(100000);
	if (fx_contrib_create(&p, &key, &env, &env_len, &d) != FX_OK)
		goto out;
	if (strcmp(mode, "flip-sig") == 0 && flip_sig(&env, &env_len) != 0) {
		snprintf(d.msg, sizeof(d.msg), "could not flip the signature");
		goto out;
	}
	if (fx_write_file_atomic(argv[8], env, env_len, 0644, &d) != FX_OK)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "fx_craft: %s\n", d.msg);
	free(buf);
	free(env);
	fx_expert_release(&x);
	fx_keypair_release(&key);
	fx_roster_release(&roster);
	fx_release_release(&rel);
	return rc;
}

/* A withdrawal of CONTRIBUTION_HEX signed by KEY with sequence SEQ. */
static int withdrawal(char **argv)
{
	fx_keypair key;
	fx_roster roster;
	fx_withdrawal_params p;
	uint8_t digest[FX_BLAKE2B_BYTES], *buf = NULL, *env = NULL;
	size_t len = 0, env_len = 0;
	fx_diag d = {{0}};
	int rc = 1;

	fx_keypair_init(&key);
	fx_roster_init(&roster);
	memset(&p, 0, sizeof(p));
	if (fx_seckey_load(&key, argv[2], NULL, 0, &d) != FX_OK ||
	    fx_read_file(argv[3], FX_ROSTER_FILE_MAX, &buf, &len, &d) !=
	        FX_OK ||
	    fx_roster_verify_initial(&roster, buf, len, (int64_t)time(NULL),
	                             &d) != FX_OK ||
	    fx_hex_decode(digest, sizeof(digest), argv[4], &d) != FX_OK)
		goto out;
	p.consortium = roster.consortium;
	p.contribution_digest = digest;
	p.sequence = strtoull(argv[5], NULL, 10);
	p.reason = "crafted";
	p.created = (int64_t)time(NULL);
	if (fx_withdrawal_create(&p, &key, &env, &env_len, &d) != FX_OK ||
	    fx_write_file_atomic(argv[6], env, env_len, 0644, &d) != FX_OK)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "fx_craft: %s\n", d.msg);
	free(buf);
	free(env);
	fx_keypair_release(&key);
	fx_roster_release(&roster);
	return rc;
}

/* Sends the bytes of REQUEST_FILE as a withdrawal request; prints
 * "DECISION GATE INDEX: REASON" (decision 1 accepted, 2 rejected, 3
 * withdrawn) and writes the receipt, if any, to RECEIPT_OUT. */
static int send_request(char **argv)
{
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__Response *resp = NULL;
	nng_socket s = NNG_SOCKET_INITIALIZER;
	nng_msg *msg = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_diag d = {{0}};
	int rc = 1, open = 0, rv;

	if (fx_read_file(argv[3], FX_WIRE_MSG_MAX, &buf, &len, &d) != FX_OK)
		goto out;
	if ((rv = nng_req0_open(&s)) != 0) {
		fx_net_error(rv, &d, "socket");
		goto out;
	}
	open = 1;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 20000);
	req.protocol = FX_WIRE_PROTOCOL;
	req.body_case = FLEXO__V1__REQUEST__BODY_WITHDRAWAL;
	req.withdrawal.data = buf;
	req.withdrawal.len = len;
	if (fx_net_dial(s, argv[2], NULL, FX_WIRE_MSG_MAX, 1, &d) != FX_OK ||
	    fx_net_pack(&req.base, &msg, &d) != FX_OK)
		goto out;
	if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
		fx_net_error(rv, &d, "sending");
		goto out;
	}
	msg = NULL;
	if ((rv = nng_recvmsg(s, &msg, 0)) != 0) {
		fx_net_error(rv, &d, "receiving");
		goto out;
	}
	if (fx_net_unpack(msg, &flexo__v1__response__descriptor,
	                  FX_WIRE_MSG_MAX, (ProtobufCMessage **)&resp,
	                  &d) != FX_OK)
		goto out;
	if (resp->body_case != FLEXO__V1__RESPONSE__BODY_VERDICT) {
		snprintf(d.msg, sizeof(d.msg), "no verdict: %s",
		         resp->body_case == FLEXO__V1__RESPONSE__BODY_ERROR
		             ? resp->error->message
		             : "?");
		goto out;
	}
	printf("%d %s %llu: %s\n", (int)resp->verdict->decision,
	       resp->verdict->gate,
	       (unsigned long long)resp->verdict->ledger_index,
	       resp->verdict->reason);
	if (resp->verdict->receipt.len > 0 &&
	    fx_write_file_atomic(argv[4], resp->verdict->receipt.data,
	                         resp->verdict->receipt.len, 0644, &d) != FX_OK)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "fx_craft: %s\n", d.msg);
	if (msg != NULL)
		nng_msg_free(msg);
	if (open)
		nng_close(s);
	fx_wire_free(resp ? &resp->base : NULL);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc >= 5 && strcmp(argv[1], "mutate") == 0)
		return mutate(argc, argv);
	if (argc >= 9 && strcmp(argv[1], "sign") == 0)
		return sign(argc, argv);
	if (argc == 7 && strcmp(argv[1], "withdrawal") == 0)
		return withdrawal(argv);
	if (argc == 5 && strcmp(argv[1], "send") == 0)
		return send_request(argv);
	fprintf(stderr,
	        "usage: fx_craft mutate IN OUT MODE [X [RPUB]]\n"
	        "       fx_craft sign MANIFEST_FROM PAYLOAD KEY RELEASE_DIR "
	        "ROSTER SEQ OUT [normal|other-release|flip-sig]\n"
	        "       fx_craft withdrawal KEY ROSTER CONTRIBUTION_HEX SEQ "
	        "OUT\n"
	        "       fx_craft send URL REQUEST_FILE RECEIPT_OUT\n");
	return 2;
}
