/* Bounded protobuf-c decoding and the signed Envelope. Every message from
 * outside goes through fx_wire_decode: its size is checked before unpacking,
 * then every string and bytes length and every repeated count is checked
 * against a named limit (one table in wire.c, listed in docs/protocol.md),
 * unknown fields and unknown enum values are refused, and the input must be
 * the canonical encoding of the decoded message. */
#ifndef FLEXO_WIRE_H
#define FLEXO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "flexo.pb-c.h"
#include "flexo/err.h"
#include "flexo/keys.h"
#include "flexo/sign.h"

#define FX_WIRE_CHUNK_MAX (4u << 20) /* payload bytes in one UploadChunk */
#define FX_WIRE_MSG_MAX                                                        \
	(FX_WIRE_CHUNK_MAX + (64u << 10)) /* one Request/Response */
#define FX_WIRE_DOC_MAX      (8u << 20)   /* payload of one signed document */
#define FX_WIRE_ENVELOPE_MAX (FX_WIRE_DOC_MAX + (16u << 10))
#define FX_WIRE_MAX_SIGS     16 /* signatures on one envelope */
#define FX_WIRE_MAX_DEPTH    8  /* message nesting */
#define FX_WIRE_PROTOCOL     1  /* Request/Response.protocol */
#define FX_WIRE_SCHEMA       1  /* schema of every signed document */

/* Payload types bound into the PAE of each signed document. */
#define FX_TYPE_ROSTER       "flexo.v1.Roster"
#define FX_TYPE_RELEASE      "flexo.v1.AnchorRelease"
#define FX_TYPE_CONTRIBUTION "flexo.v1.Contribution"
#define FX_TYPE_WITHDRAWAL   "flexo.v1.Withdrawal"

/* Decodes len bytes of buf as a `desc` message. Refuses (FX_ETOOBIG) more
 * than max_len bytes without looking at them, malformed wire data
 * (FX_EFORMAT), then any limit violation (FX_ETOOBIG / FX_EFORMAT naming the
 * field), then bytes that are not the canonical encoding of the decoded
 * message (FX_EFORMAT: embedded NUL in a string, duplicate or out-of-order
 * fields, explicit defaults, non-minimal varints). On success *out is owned by
 * the caller: free with fx_wire_free. */
fx_err fx_wire_decode(const ProtobufCMessageDescriptor *desc,
                      const uint8_t *buf, size_t len, size_t max_len,
                      ProtobufCMessage **out, fx_diag *diag);

/* Checks a decoded or locally built message against the limits table. */
fx_err fx_wire_check(const ProtobufCMessage *m, fx_diag *diag);

/* Checks m, then encodes it into a fresh malloc'd buffer (caller frees). */
fx_err fx_wire_encode(const ProtobufCMessage *m, uint8_t **out, size_t *len,
                      fx_diag *diag);

/* Frees a message from fx_wire_decode. NULL is fine. */
void fx_wire_free(ProtobufCMessage *m);

/* Builds an encoded Envelope carrying body under `type`, signed by each of
 * the n keys (n may be 0: an unsigned envelope, to be co-signed). *out is
 * malloc'd, caller frees. */
fx_err fx_envelope_seal(const char *type, const uint8_t *body, size_t len,
                        const fx_keypair *const *keys, size_t n, uint8_t **out,
                        size_t *out_len, fx_diag *diag);

/* Adds key's signature to an encoded envelope (co-signing). The payload
 * bytes are carried over untouched; FX_EEXIST if key already signed. */
fx_err fx_envelope_cosign(const uint8_t *env, size_t len, const fx_keypair *key,
                          uint8_t **out, size_t *out_len, fx_diag *diag);

/* Decodes an envelope (bounded) and checks its payload_type is `type`.
 * Nothing is verified yet. Free with fx_wire_free(&(*out)->base). */
fx_err fx_envelope_open(const uint8_t *buf, size_t len, const char *type,
                        Flexo__V1__Envelope **out, fx_diag *diag);

/* 0 if env carries a signature by pk valid over its exact payload bytes,
 * -1 otherwise. */
int fx_envelope_verify_key(const Flexo__V1__Envelope *env,
                           const uint8_t pk[FX_PK_BYTES])
    __attribute__((warn_unused_result));

#endif
