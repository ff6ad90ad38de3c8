/* Tests of the transport helpers: URL checks, error mapping, listener
 * arguments and TLS files named in errors, and NNG_OPT_RECVMAXSZ really
 * set: a message over the limit is dropped (the sender sees no reply) while
 * one under it is answered — the reason every chunk is acknowledged; and
 * packing a chunk with its bytes read from a file straight into the
 * message decodes to exactly those bytes. */
#include "flexo/transport.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "flexo.pb-c.h"
#include "flexo/wire.h"
#include "fx_test.h"

static void test_urls_and_errors(void)
{
	fx_diag d = {{0}};

	CHECK_OK(fx_net_url_check("tcp://127.0.0.1:7000", &d));
	CHECK_OK(fx_net_url_check("tls+tcp://localhost:7443", &d));
	CHECK_OK(fx_net_url_check("ipc:///tmp/x.ipc", &d));
	CHECK(fx_net_url_check("http://x", &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "http://x") != NULL);
	CHECK(fx_net_url_check("tcp://", &d) == FX_EINVAL);
	CHECK(fx_net_url_check("", &d) == FX_EINVAL);
	CHECK(fx_net_error(NNG_ETIMEDOUT, &d, "waiting") == FX_ETIMEOUT);
	CHECK(strncmp(d.msg, "waiting: ", 9) == 0);
	CHECK(fx_net_error(NNG_ECONNREFUSED, &d, "x") == FX_ENET);
	CHECK(fx_net_error(NNG_EPEERAUTH, &d, "x") == FX_ECRYPTO);
}

static void test_listen_arguments(void)
{
	nng_socket s;
	fx_tls_opts tls = {"/nonexistent/cert.pem", "/nonexistent/key.pem",
	                   NULL, NULL};
	fx_diag d = {{0}};

	CHECK_OK(nng_rep0_open(&s));
	CHECK(fx_net_listen(s, "tcp://127.0.0.1:0", NULL, 0, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "receive limit") != NULL);
	CHECK(fx_net_listen(s, "tls+tcp://127.0.0.1:0", NULL, 1024, &d) ==
	      FX_EINVAL);
	CHECK(strstr(d.msg, "certificate and key") != NULL);
	CHECK(fx_net_listen(s, "tls+tcp://127.0.0.1:0", &tls, 1024, &d) ==
	      FX_ENOTFOUND);
	CHECK_MSG(strstr(d.msg, "/nonexistent/cert.pem") != NULL, "%s", d.msg);
	nng_close(s);
	CHECK_OK(nng_req0_open(&s));
	CHECK(fx_net_dial(s, "tls+tcp://127.0.0.1:1", NULL, 1024, 0, &d) ==
	      FX_EINVAL);
	CHECK(strstr(d.msg, "pinned CA") != NULL);
	nng_close(s);
}

static void test_recv_limit(void)
{
	char url[64];
	nng_socket rep, req;
	nng_msg *m = NULL;
	fx_diag d = {{0}};
	int rv;

	snprintf(url, sizeof(url), "ipc:///tmp/fx-transport-%d.ipc",
	         (int)getpid());
	CHECK_OK(nng_rep0_open(&rep));
	CHECK_OK(nng_req0_open(&req));
	CHECK_OK(fx_net_listen(rep, url, NULL, 1024, &d));
	CHECK_OK(fx_net_dial(req, url, NULL, 1 << 20, 1, &d));
	nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 300);
	nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 300);
	nng_socket_set_ms(req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);

	/* Over the limit: sent "successfully", never delivered. */
	CHECK_OK(nng_msg_alloc(&m, 2048));
	CHECK_OK(nng_sendmsg(req, m, 0));
	rv = nng_recvmsg(rep, &m, 0);
	CHECK(rv == NNG_ETIMEDOUT);
	if (rv == 0)
		nng_msg_free(m);

	/* Under it (after nng redials): delivered and answered. */
	usleep(300000);
	CHECK_OK(nng_msg_alloc(&m, 512));
	CHECK_OK(nng_sendmsg(req, m, 0));
	nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 3000);
	rv = nng_recvmsg(rep, &m, 0);
	CHECK_MSG(rv == 0, "%s", nng_strerror(rv));
	if (rv == 0) {
		CHECK(nng_msg_len(m) == 512);
		CHECK_OK(nng_sendmsg(rep, m, 0));
		nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 3000);
		CHECK_OK(nng_recvmsg(req, &m, 0));
		nng_msg_free(m);
	}
	nng_close(req);
	nng_close(rep);
}

static void test_pack_file(void)
{
	char path[] = "/tmp/fx-transport-test-XXXXXX";
	static uint8_t bytes[300000], hole[100001];
	uint8_t sid[16];
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__UploadChunk uc = FLEXO__V1__UPLOAD_CHUNK__INIT;
	Flexo__V1__Request *back = NULL;
	nng_msg *msg = NULL;
	int fd = mkstemp(path);
	fx_diag d = {{0}};

	CHECK(fd >= 0);
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 7 + (i >> 9));
	memset(sid, 0x42, sizeof(sid));
	CHECK(write(fd, bytes, sizeof(bytes)) == (ssize_t)sizeof(bytes));
	uc.session_id.data = sid;
	uc.session_id.len = sizeof(sid);
	uc.offset = 123457;
	uc.data.data = hole;
	uc.data.len = sizeof(hole);
	req.protocol = FX_WIRE_PROTOCOL;
	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_CHUNK;
	req.upload_chunk = &uc;
	CHECK_OK(fx_net_pack_file(&req.base, hole, sizeof(hole), fd, 123457,
	                          &msg, &d));
	if (msg != NULL) {
		CHECK_OK(fx_net_unpack(msg, &flexo__v1__request__descriptor,
		                       FX_WIRE_MSG_MAX,
		                       (ProtobufCMessage **)&back, &d));
		nng_msg_free(msg);
		msg = NULL;
	}
	if (back != NULL) {
		const Flexo__V1__UploadChunk *c = back->upload_chunk;
		CHECK(back->body_case == FLEXO__V1__REQUEST__BODY_UPLOAD_CHUNK);
		CHECK(c->offset == 123457 && c->session_id.len == sizeof(sid));
		CHECK(c->data.len == sizeof(hole));
		CHECK(memcmp(c->data.data, bytes + 123457, sizeof(hole)) == 0);
		fx_wire_free(&back->base);
	}
	/* The file ends before the field does. */
	CHECK(fx_net_pack_file(&req.base, hole, sizeof(hole), fd, 250000, &msg,
	                       &d) == FX_EIO);
	CHECK_MSG(strstr(d.msg, "250000") != NULL, "%s", d.msg);
	/* No field points at the marker. */
	CHECK(fx_net_pack_file(&req.base, bytes, sizeof(hole), fd, 0, &msg,
	                       &d) == FX_EINTERNAL);
	CHECK(msg == NULL);
	close(fd);
	unlink(path);
}

int main(void)
{
	RUN(test_urls_and_errors);
	RUN(test_listen_arguments);
	RUN(test_recv_limit);
	RUN(test_pack_file);
	nng_fini();
	return FX_TEST_REPORT();
}
