/* The nng side of flexo's wire: listeners and dialers with the project's
 * rules (NNG_OPT_RECVMAXSZ on every endpoint, TLS from PEM files, a pinned
 * CA on the dialing side), nng error mapping, and protobuf messages packed
 * into and decoded (bounded, via wire.h) out of nng messages. */
#ifndef FLEXO_TRANSPORT_H
#define FLEXO_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>

#include "flexo/err.h"

#define FX_PEM_MAX        (64u << 10) /* bytes of a certificate, key or CA file */
#define FX_URL_MAX        1024        /* bytes of an endpoint URL */
#define FX_NET_TIMEOUT_MS 30000       /* default send/receive timeout */

/* TLS material, all PEM files. A listener needs cert_file and key_file; a
 * dialer needs ca_file (the only CA it trusts) and checks the server's
 * certificate against server_name (NULL = "localhost"). Fields the role does
 * not use are ignored. Used only for tls+tcp:// URLs. */
typedef struct fx_tls_opts {
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
	const char *server_name;
} fx_tls_opts;

/* Maps an nng error code to fx_err and writes "<what>: <nng message>" into
 * diag. rv must be non-zero. */
fx_err fx_net_error(int rv, fx_diag *diag, const char *what);

/* Checks a URL: one of tcp://, tls+tcp://, ipc://, at most FX_URL_MAX
 * bytes. FX_EINVAL naming the URL otherwise. */
fx_err fx_net_url_check(const char *url, fx_diag *diag);

/* Adds a started listener on url to sock with NNG_OPT_RECVMAXSZ = recv_max
 * (> 0). For tls+tcp:// tls must name a certificate and key. The listener
 * belongs to the socket (closed with it). */
fx_err fx_net_listen(nng_socket sock, const char *url, const fx_tls_opts *tls,
                     size_t recv_max, fx_diag *diag);

/* Adds a dialer on url to sock with NNG_OPT_RECVMAXSZ = recv_max. For
 * tls+tcp:// tls->ca_file is required. With `wait`, the first connection
 * must succeed now (FX_ENET otherwise); without, nng keeps dialing in the
 * background. Either way nng reconnects after a drop. */
fx_err fx_net_dial(nng_socket sock, const char *url, const fx_tls_opts *tls,
                   size_t recv_max, int wait, fx_diag *diag);

/* Checks m against wire.h's limits, then packs it into a fresh nng message
 * (*out, caller frees with nng_msg_free or hands it to nng). */
fx_err fx_net_pack(const ProtobufCMessage *m, nng_msg **out, fx_diag *diag);

/* Packs m like fx_net_pack, except that one bytes field's content comes
 * from a file, read straight into the message (no copy through memory):
 * that field's data must point at `hole` with length hole_len (> 0; the
 * bytes at hole are never read), and the message gets hole_len bytes of fd
 * from file_off in their place. FX_EIO naming the offset if the file is
 * shorter or unreadable, FX_EINTERNAL if no field pointed at hole. */
fx_err fx_net_pack_file(const ProtobufCMessage *m, const void *hole,
                        size_t hole_len, int fd, uint64_t file_off,
                        nng_msg **out, fx_diag *diag);

/* Decodes the body of msg as a `desc` message through fx_wire_decode with
 * max_len bytes at most. msg stays the caller's. Free *out with
 * fx_wire_free. */
fx_err fx_net_unpack(nng_msg *msg, const ProtobufCMessageDescriptor *desc,
                     size_t max_len, ProtobufCMessage **out, fx_diag *diag);

#endif
