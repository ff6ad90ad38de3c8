/* `flexo-contributor withdraw`: signs a withdrawal of one of this
 * contributor's accepted contributions (fx_withdrawal_create, sequence from
 * the same counter as manifests), sends it to the coordinator, waits for
 * the verdict and checks that its receipt proves this request's entry. The
 * coordinator logs it and re-assembles the served model without the expert,
 * or logs its refusal and the reason. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "commands.h"
#include "flexo/contrib.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/ledger.h"
#include "flexo/roster.h"
#include "flexo/transport.h"
#include "flexo/wire.h"
#include "ledger_local.h"


enum {
	O_COORD = 1000,
	O_CA,
	O_SNI,
	O_KEY,
	O_PASS_FILE,
	O_PASS_ENV,
	O_STATE,
	O_CONTRIB,
	O_REASON,
	O_TIMEOUT,
	O_ORIGIN,
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-contributor withdraw --coordinator URL --key KEY "
	        "--state DIR\n"
	        "         --contribution HEX [--reason TEXT] [options]\n\n"
	        "Withdraws an accepted contribution (named by the contribution "
	        "digest 'submit'\nprinted): signs a withdrawal with a fresh "
	        "sequence number from DIR/sequence,\nsends it, waits for the "
	        "verdict and verifies its receipt against the roster\nin DIR. "
	        "The coordinator logs it and re-assembles the served model "
	        "without\nthe expert; a refusal is logged too, with its "
	        "reason, and its receipt checked\nthe same way. Both are "
	        "recorded in DIR/submissions. Exit status: 0 withdrawn,\n3 "
	        "refused (receipt verified), 1 error (or a receipt that does "
	        "not verify),\n2 usage.\n\n"
	        "  --coordinator URL      tls+tcp://HOST:PORT, tcp://HOST:PORT "
	        "or ipc:///PATH\n"
	        "  --ca FILE              the one CA trusted for tls+tcp://\n"
	        "  --server-name NAME     name in the coordinator's "
	        "certificate (default localhost)\n"
	        "  --key KEY              the contributor key that signed the "
	        "contribution\n"
	        "  --passphrase-file F    passphrase of a sealed key\n"
	        "  --passphrase-env V     ... or from this environment "
	        "variable\n"
	        "  --state DIR            the state of 'fetch' / 'manifest'\n"
	        "  --contribution HEX     64 hex digits: the contribution "
	        "digest\n"
	        "  --reason TEXT          why (logged; at most 1024 bytes)\n"
	        "  --log-origin NAME      the ledger's origin (default "
	        "flexo/CONSORTIUM)\n"
	        "  --timeout-ms N         wait this long for the verdict "
	        "(default %d)\n",
	        FX_NET_TIMEOUT_MS);
}


/* One request/response exchange on a fresh REQ socket. *out owned by the
 * caller (fx_wire_free). */
static fx_err ask(const char *url, const fx_tls_opts *tls, int timeout_ms,
                  const Flexo__V1__Request *req, Flexo__V1__Response **out,
                  fx_diag *d)
{
	nng_socket s = NNG_SOCKET_INITIALIZER;
	nng_msg *msg = NULL;
	fx_err err;
	int rv, open = 0;

	if ((rv = nng_req0_open(&s)) != 0) {
		err = fx_net_error(rv, d, "socket");
		goto out;
	}
	open = 1;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	if ((err = fx_net_dial(s, url, tls, FX_WIRE_MSG_MAX, 1, d)) != FX_OK ||
	    (err = fx_net_pack(&req->base, &msg, d)) != FX_OK)
		goto out;
	if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
		err = fx_net_error(rv, d, "sending the withdrawal");
		goto out;
	}
	msg = NULL;
	if ((rv = nng_recvmsg(s, &msg, 0)) != 0) {
		err = fx_net_error(rv, d, "waiting for the verdict");
		goto out;
	}
	err = fx_net_unpack(msg, &flexo__v1__response__descriptor,
	                    FX_WIRE_MSG_MAX, (ProtobufCMessage **)out, d);
out:
	if (msg != NULL)
		nng_msg_free(msg);
	if (open)
		nng_close(s);
	return err;
}

int cmd_withdraw(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"coordinator", required_argument, NULL, O_COORD},
	    {"ca", required_argument, NULL, O_CA},
	    {"server-name", required_argument, NULL, O_SNI},
	    {"key", required_argument, NULL, O_KEY},
	    {"passphrase-file", required_argument, NULL, O_PASS_FILE},
	    {"passphrase-env", required_argument, NULL, O_PASS_ENV},
	    {"state", required_argument, NULL, O_STATE},
	    {"contribution", required_argument, NULL, O_CONTRIB},
	    {"reason", required_argument, NULL, O_REASON},
	    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
	    {"log-origin", required_argument, NULL, O_ORIGIN},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL, *key_path = NULL, *pass_file = NULL,
	           *pass_env = NULL, *state = NULL, *hex = NULL, *reason = NULL,
	           *origin = NULL;
	fx_tls_opts tls = {0};
	int timeout_ms = FX_NET_TIMEOUT_MS, opt, rc = 1, refused;
	uint8_t digest[FX_BLAKE2B_BYTES], *rbuf = NULL, *env = NULL;
	size_t rlen = 0, env_len = 0;
	uint64_t index = 0;
	char path[4200], rmsg[512];
	fx_withdrawal_params p;
	fx_keypair key;
	fx_roster roster;
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__Response *resp = NULL;
	const Flexo__V1__Verdict *v;
	fx_diag d = {{0}};

	(void)log;
	fx_keypair_init(&key);
	fx_roster_init(&roster);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case O_COORD:
			url = optarg;
			break;
		case O_CA:
			tls.ca_file = optarg;
			break;
		case O_SNI:
			tls.server_name = optarg;
			break;
		case O_KEY:
			key_path = optarg;
			break;
		case O_PASS_FILE:
			pass_file = optarg;
			break;
		case O_PASS_ENV:
			pass_env = optarg;
			break;
		case O_STATE:
			state = optarg;
			break;
		case O_CONTRIB:
			hex = optarg;
			break;
		case O_REASON:
			reason = optarg;
			break;
		case O_ORIGIN:
			origin = optarg;
			break;
		case O_TIMEOUT:
			timeout_ms = atoi(optarg);
			if (timeout_ms <= 0) {
				fprintf(stderr, "withdraw: --timeout-ms wants "
				                "a positive integer\n");
				rc = 2;
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != argc || !url || !key_path || !state || !hex) {
		fprintf(stderr, "withdraw: --coordinator, --key, --state and "
		                "--contribution are required\n");
		usage(stderr);
		rc = 2;
		goto out;
	}
	if (strlen(hex) != 2 * FX_BLAKE2B_BYTES ||
	    fx_hex_decode(digest, FX_BLAKE2B_BYTES, hex, &d) != FX_OK) {
		fprintf(stderr,
		        "withdraw: --contribution wants the 64 hex digits "
		        "'submit' printed, not '%s'\n",
		        hex);
		rc = 2;
		goto out;
	}
	if (reason != NULL && strlen(reason) > 1024) {
		fprintf(stderr, "withdraw: --reason is longer than 1024 "
		                "bytes\n");
		rc = 2;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/roster.bin", state);
	if (fx_read_file(path, FX_ROSTER_FILE_MAX, &rbuf, &rlen, &d) != FX_OK ||
	    fx_roster_verify_initial(&roster, rbuf, rlen, (int64_t)time(NULL),
	                             &d) != FX_OK) {
		fprintf(stderr, "withdraw: roster %s: %s\n", path, d.msg);
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.consortium = roster.consortium;
	p.contribution_digest = digest;
	p.reason = reason;
	p.created = (int64_t)time(NULL);
	if (fx_seckey_load_with(&key, key_path, pass_file, pass_env, &d) !=
	        FX_OK ||
	    sequence_next(state, &p.sequence, &d) != FX_OK ||
	    fx_withdrawal_create(&p, &key, &env, &env_len, &d) != FX_OK) {
		fprintf(stderr, "withdraw: %s\n", d.msg);
		goto out;
	}
	req.protocol = FX_WIRE_PROTOCOL;
	req.body_case = FLEXO__V1__REQUEST__BODY_WITHDRAWAL;
	req.withdrawal.data = env;
	req.withdrawal.len = env_len;
	if (ask(url, &tls, timeout_ms, &req, &resp, &d) != FX_OK) {
		fprintf(stderr, "withdraw: %s\n", d.msg);
		goto out;
	}
	if (resp->body_case == FLEXO__V1__RESPONSE__BODY_ERROR) {
		fprintf(stderr, "withdraw: the coordinator answered: %s\n",
		        resp->error->message);
		goto out;
	}
	if (resp->body_case != FLEXO__V1__RESPONSE__BODY_VERDICT) {
		fprintf(stderr, "withdraw: the coordinator sent no verdict\n");
		goto out;
	}
	v = resp->verdict;
	refused = v->decision != FLEXO__V1__DECISION__DECISION_WITHDRAWN;
	printf("%s: %s%s%s\n", refused ? "refused" : "withdrawn", v->gate,
	       v->reason[0] ? ": " : "", v->reason);
	/* A refusal is logged too: its receipt proves the coordinator put
	 * this very request and its reason on record. */
	if (v->receipt.len == 0 ||
	    receipt_check_answer(
	        state, origin, v->receipt.data, v->receipt.len,
	        refused ? FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED
	                : FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL,
	        env, env_len, refused ? v->gate : NULL, &index, rmsg,
	        sizeof(rmsg), &d) != FX_OK) {
		printf("receipt: NOT verified: %s\n",
		       v->receipt.len ? d.msg : "the verdict carries none");
		goto out;
	}
	printf("receipt: verified: %s\n", rmsg);
	if (record_append(state, refused ? "refusal" : "withdrawal", digest,
	                  refused ? "refused" : "withdrawn", v->gate, index,
	                  &d) != FX_OK) {
		fprintf(stderr, "withdraw: %s\n", d.msg);
		goto out;
	}
	if (refused) {
		rc = 3;
		goto out;
	}
	rc = 0;
out:
	fx_wire_free(resp ? &resp->base : NULL);
	free(env);
	free(rbuf);
	fx_keypair_release(&key);
	fx_roster_release(&roster);
	return rc;
}
