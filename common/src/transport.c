/* nng endpoints with flexo's rules and protobuf <-> nng message glue
 * (transport.h). TLS material is read with bounded reads and handed to nng
 * as PEM strings; the private key text is wiped once nng has parsed it. */
#include "flexo/transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "flexo/fsutil.h"
#include "flexo/wire.h"

fx_err fx_net_error(int rv, fx_diag *diag, const char *what)
{
	fx_err err;

	switch (rv) {
	case NNG_ETIMEDOUT:
		err = FX_ETIMEOUT;
		break;
	case NNG_ENOMEM:
		err = FX_ENOMEM;
		break;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		err = FX_EINVAL;
		break;
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
		err = FX_ECRYPTO;
		break;
	case NNG_EPROTO:
		err = FX_EPROTO;
		break;
	default:
		err = FX_ENET;
		break;
	}
	return fx_diag_set(diag, err, "%s: %s", what, nng_strerror(rv));
}

fx_err fx_net_url_check(const char *url, fx_diag *diag)
{
	static const char *const schemes[] = {"tcp://", "tls+tcp://", "ipc://"};

	if (url == NULL || url[0] == '\0')
		return fx_diag_set(diag, FX_EINVAL, "empty endpoint URL");
	if (strnlen(url, FX_URL_MAX + 1) > FX_URL_MAX)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "endpoint URL longer than %d bytes",
		                   FX_URL_MAX);
	for (size_t i = 0; i < sizeof(schemes) / sizeof(*schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 &&
		    url[strlen(schemes[i])] != '\0')
			return FX_OK;
	return fx_diag_set(diag, FX_EINVAL,
	                   "endpoint '%s': want tcp://HOST:PORT, "
	                   "tls+tcp://HOST:PORT or ipc:///PATH",
	                   url);
}

static int is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0;
}

/* Reads a PEM file (bounded, NUL-terminated). */
static fx_err read_pem(const char *what, const char *path, char **out,
                       size_t *len, fx_diag *diag)
{
	uint8_t *buf = NULL;
	fx_err err;

	if (path == NULL)
		return fx_diag_set(diag, FX_EINVAL, "TLS needs a %s file",
		                   what);
	err = fx_read_file(path, FX_PEM_MAX, &buf, len, diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "TLS %s", what);
		return err;
	}
	*out = (char *)buf;
	return FX_OK;
}

/* Builds a TLS config for a listener (server) or dialer (client). */
static fx_err tls_config(nng_tls_config **out, int server,
                         const fx_tls_opts *tls, fx_diag *diag)
{
	nng_tls_config *cfg = NULL;
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	fx_err err = FX_OK;
	int rv;

	if (tls == NULL) {
		err = fx_diag_set(diag, FX_EINVAL,
		                  "tls+tcp:// needs TLS files (%s)",
		                  server ? "certificate and key" : "pinned CA");
		goto out;
	}
	rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER
	                                       : NNG_TLS_MODE_CLIENT);
	if (rv != 0) {
		err = fx_net_error(rv, diag, "TLS config");
		goto out;
	}
	if (server) {
		if ((err = read_pem("certificate", tls->cert_file, &cert,
		                    &cert_len, diag)) != FX_OK ||
		    (err = read_pem("private key", tls->key_file, &key,
		                    &key_len, diag)) != FX_OK)
			goto out;
		rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
		if (rv != 0) {
			err = fx_net_error(rv, diag, "TLS certificate/key");
			fx_diag_prefix(diag, "%s, %s", tls->cert_file,
			               tls->key_file);
			goto out;
		}
	} else {
		/* The CA file is the whole trust: only certificates it issued
		 * are accepted, and the name must match. */
		if ((err = read_pem("CA", tls->ca_file, &cert, &cert_len,
		                    diag)) != FX_OK)
			goto out;
		rv = nng_tls_config_ca_chain(cfg, cert, NULL);
		if (rv == 0)
			rv = nng_tls_config_auth_mode(
			    cfg, NNG_TLS_AUTH_MODE_REQUIRED);
		if (rv == 0)
			rv = nng_tls_config_server_name(
			    cfg,
			    tls->server_name ? tls->server_name : "localhost");
		if (rv != 0) {
			err = fx_net_error(rv, diag, "TLS CA");
			fx_diag_prefix(diag, "%s", tls->ca_file);
			goto out;
		}
	}
	*out = cfg;
	cfg = NULL;
out:
	if (key != NULL) {
		sodium_memzero(key, key_len);
		free(key);
	}
	free(cert);
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	return err;
}

fx_err fx_net_listen(nng_socket sock, const char *url, const fx_tls_opts *tls,
                     size_t recv_max, fx_diag *diag)
{
	nng_listener l;
	nng_tls_config *cfg = NULL;
	fx_err err;
	int rv;

	if ((err = fx_net_url_check(url, diag)) != FX_OK)
		return err;
	if (recv_max == 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "listener %s: receive limit must be > 0",
		                   url);
	if ((rv = nng_listener_create(&l, sock, url)) != 0) {
		err = fx_net_error(rv, diag, "listener");
		fx_diag_prefix(diag, "%s", url);
		return err;
	}
	rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, recv_max);
	if (rv == 0 && is_tls(url)) {
		if ((err = tls_config(&cfg, 1, tls, diag)) != FX_OK)
			goto fail;
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
	}
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0) {
		err = fx_net_error(rv, diag, "listen");
		fx_diag_prefix(diag, "%s", url);
		goto fail;
	}
	if (cfg != NULL)
		nng_tls_config_free(cfg); /* the listener holds its own ref */
	return FX_OK;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_listener_close(l);
	return err;
}

fx_err fx_net_dial(nng_socket sock, const char *url, const fx_tls_opts *tls,
                   size_t recv_max, int wait, fx_diag *diag)
{
	nng_dialer d;
	nng_tls_config *cfg = NULL;
	fx_err err;
	int rv;

	if ((err = fx_net_url_check(url, diag)) != FX_OK)
		return err;
	if ((rv = nng_dialer_create(&d, sock, url)) != 0) {
		err = fx_net_error(rv, diag, "dialer");
		fx_diag_prefix(diag, "%s", url);
		return err;
	}
	rv = nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, recv_max);
	/* Reconnect quickly after a drop; a restarted coordinator is back
	 * within a second or so. */
	if (rv == 0)
		rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 100);
	if (rv == 0)
		rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 2000);
	if (rv == 0 && is_tls(url)) {
		if ((err = tls_config(&cfg, 0, tls, diag)) != FX_OK)
			goto fail;
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	}
	if (rv == 0)
		rv = nng_dialer_start(d, wait ? 0 : NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		err = fx_net_error(rv, diag, "connect");
		if (err == FX_ECRYPTO && is_tls(url))
			fx_diag_prefix(diag,
			               "%s: TLS handshake refused (is the "
			               "server's certificate from CA %s, for "
			               "name '%s'?)",
			               url, tls->ca_file,
			               tls->server_name ? tls->server_name
			                                : "localhost");
		else
			fx_diag_prefix(diag, "%s", url);
		goto fail;
	}
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	return FX_OK;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	nng_dialer_close(d);
	return err;
}

/* The checks every outgoing message passes (canonical, within the wire
 * bound), and its packed size. */
static fx_err checked_size(const ProtobufCMessage *m, size_t *n,
                           fx_diag *diag)
{
	fx_err err;

	if ((err = fx_wire_check(m, diag)) != FX_OK)
		return err;
	*n = protobuf_c_message_get_packed_size(m);
	if (*n > FX_WIRE_MSG_MAX)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "%s message of %zu bytes > %u",
		                   m->descriptor->name, *n, FX_WIRE_MSG_MAX);
	return FX_OK;
}

fx_err fx_net_pack(const ProtobufCMessage *m, nng_msg **out, fx_diag *diag)
{
	nng_msg *msg = NULL;
	size_t n;
	fx_err err;
	int rv;

	if ((err = checked_size(m, &n, diag)) != FX_OK)
		return err;
	/* Packed straight into the nng buffer: no intermediate copy of a
	 * 4 MiB chunk. */
	if ((rv = nng_msg_alloc(&msg, n)) != 0)
		return fx_net_error(rv, diag, "message");
	if (protobuf_c_message_pack(m, nng_msg_body(msg)) != n) {
		nng_msg_free(msg);
		return fx_diag_set(diag, FX_EINTERNAL,
		                   "%s: packed size changed",
		                   m->descriptor->name);
	}
	*out = msg;
	return FX_OK;
}

/* A ProtobufCBuffer writing into a message body of known size, leaving a
 * gap where the bytes at `hole` would go (and noting where). */
typedef struct hole_buffer {
	ProtobufCBuffer base;
	uint8_t *p;
	size_t at, cap;
	const void *hole;
	size_t hole_len, hole_at;
	int found, overflow;
} hole_buffer;

static void hole_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	hole_buffer *h = (hole_buffer *)b;

	if (h->overflow || len > h->cap - h->at) {
		h->overflow = 1;
		return;
	}
	if (!h->found && (const void *)data == h->hole && len == h->hole_len) {
		h->found = 1;
		h->hole_at = h->at;
	} else if (len > 0) {
		memcpy(h->p + h->at, data, len);
	}
	h->at += len;
}

fx_err fx_net_pack_file(const ProtobufCMessage *m, const void *hole,
                        size_t hole_len, int fd, uint64_t file_off,
                        nng_msg **out, fx_diag *diag)
{
	hole_buffer h;
	nng_msg *msg = NULL;
	size_t n;
	fx_err err;
	int rv;

	if ((err = checked_size(m, &n, diag)) != FX_OK)
		return err;
	if (hole_len == 0)
		return fx_diag_set(diag, FX_EINVAL, "empty file field");
	if ((rv = nng_msg_alloc(&msg, n)) != 0)
		return fx_net_error(rv, diag, "message");
	memset(&h, 0, sizeof(h));
	h.base.append = hole_append;
	h.p = nng_msg_body(msg);
	h.cap = n;
	h.hole = hole;
	h.hole_len = hole_len;
	/* protobuf-c hands a bytes field's data pointer to append as is, so
	 * the field is recognised by its pointer and length. */
	if (protobuf_c_message_pack_to_buffer(m, &h.base) != n || h.overflow ||
	    h.at != n || !h.found) {
		nng_msg_free(msg);
		return fx_diag_set(diag, FX_EINTERNAL,
		                   "%s: packing left no place for the file "
		                   "bytes",
		                   m->descriptor->name);
	}
	for (size_t got = 0; got < hole_len;) {
		ssize_t k = pread(fd, h.p + h.hole_at + got, hole_len - got,
		                  (off_t)(file_off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			err = fx_diag_set(
			    diag, FX_EIO, "reading %zu bytes at %llu: %s",
			    hole_len, (unsigned long long)file_off,
			    k < 0 ? strerror(errno) : "file ends before");
			nng_msg_free(msg);
			return err;
		}
		got += (size_t)k;
	}
	*out = msg;
	return FX_OK;
}

fx_err fx_net_unpack(nng_msg *msg, const ProtobufCMessageDescriptor *desc,
                     size_t max_len, ProtobufCMessage **out, fx_diag *diag)
{
	return fx_wire_decode(desc, nng_msg_body(msg), nng_msg_len(msg),
	                      max_len, out, diag);
}
