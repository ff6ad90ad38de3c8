/* Bounded decoding of the wire schema and the signed Envelope (wire.h). The
 * limits live in one table keyed by message and field name, walked
 * generically through the protobuf-c descriptors, so a new message gets the
 * conservative defaults until someone writes down a bound for it. */
#include "flexo/wire.h"

#include <stdlib.h>
#include <string.h>

#include "flexo/config.h"
#include "flexo/safetensors.h"

/* Defaults for fields not in the table: short strings, hash-sized bytes,
 * few repeated entries. */
#define DEF_STRING_MAX 256
#define DEF_BYTES_MAX  64
#define DEF_COUNT_MAX  16

typedef struct limit {
	const char *msg; /* full message name, e.g. "flexo.v1.Envelope" */
	const char *field;
	size_t len_min; /* string/bytes length of each value */
	size_t len_max;
	size_t count_max; /* repeated fields: number of entries */
} limit;

#define V1 "flexo.v1."
static const limit limits[] = {
    {V1 "Signature", "key_id", FX_KEY_ID_BYTES, FX_KEY_ID_BYTES, 0},
    {V1 "Signature", "sig", FX_SIG_BYTES, FX_SIG_BYTES, 0},
    {V1 "Envelope", "payload_type", 1, FX_SIG_TYPE_MAX, 0},
    {V1 "Envelope", "payload", 1, FX_WIRE_DOC_MAX, 0},
    {V1 "Envelope", "signatures", 0, 0, FX_WIRE_MAX_SIGS},
    {V1 "Member", "name", 1, 64, 0},
    {V1 "Member", "public_key", FX_PK_BYTES, FX_PK_BYTES, 0},
    {V1 "Roster", "consortium", 1, 64, 0},
    {V1 "Roster", "members", 0, 0, 1024},
    {V1 "KeyValue", "key", 1, 128, 0},
    {V1 "KeyValue", "value", 0, FX_ST_MAX_META_LEN, 0},
    {V1 "TensorDigest", "name", 1, FX_ST_MAX_NAME - 1, 0},
    {V1 "TensorDigest", "dtype", 1, 8, 0},
    {V1 "TensorDigest", "shape", 0, 0, FX_ST_MAX_DIMS},
    {V1 "TensorDigest", "blake2b", 32, 32, 0},
    {V1 "RouterRows", "values", 0, 0, (size_t)FX_MAX_LAYERS *FX_MAX_DIM},
    {V1 "AnchorRelease", "consortium", 1, 64, 0},
    {V1 "AnchorRelease", "config", 0, 0, FX_ST_MAX_METADATA},
    {V1 "AnchorRelease", "anchor_file", 1, 255, 0},
    {V1 "AnchorRelease", "anchor_blake2b", 32, 32, 0},
    {V1 "AnchorRelease", "tensors", 0, 0, FX_ST_MAX_TENSORS},
    {V1 "AnchorRelease", "tokenizer_blake2b", 32, 32, 0},
    {V1 "AnchorRelease", "tokenizer_file", 1, 255, 0},
    {V1 "AnchorRelease", "router_pub_file", 1, 255, 0},
    {V1 "AnchorRelease", "router_pub_blake2b", 32, 32, 0},
    {V1 "TrainingMeta", "hyperparameters", 0, 0, 64},
    {V1 "Contribution", "consortium", 1, 64, 0},
    {V1 "Contribution", "contributor_key_id", FX_KEY_ID_BYTES, FX_KEY_ID_BYTES,
     0},
    {V1 "Contribution", "anchor_release_digest", 32, 32, 0},
    {V1 "Contribution", "domain", 1, 64, 0},
    {V1 "Contribution", "payload_blake2b", 32, 32, 0},
    {V1 "Contribution", "bias", 0, 0, FX_MAX_LAYERS},
    {V1 "Withdrawal", "consortium", 1, 64, 0},
    {V1 "Withdrawal", "contributor_key_id", FX_KEY_ID_BYTES, FX_KEY_ID_BYTES,
     0},
    {V1 "Withdrawal", "contribution_digest", 32, 32, 0},
    {V1 "Withdrawal", "reason", 0, 1024, 0},
    {V1 "UploadBegin", "contribution", 1, FX_WIRE_ENVELOPE_MAX, 0},
    {V1 "UploadBegin", "resume_id", 0, 16, 0},
    {V1 "UploadBeginReply", "session_id", 16, 16, 0},
    {V1 "UploadChunk", "session_id", 16, 16, 0},
    {V1 "UploadChunk", "data", 0, FX_WIRE_CHUNK_MAX, 0},
    {V1 "UploadAck", "session_id", 16, 16, 0},
    {V1 "UploadEnd", "session_id", 16, 16, 0},
    {V1 "Verdict", "contribution_digest", 0, 32, 0},
    {V1 "Verdict", "gate", 0, 64, 0},
    {V1 "Verdict", "reason", 0, 1024, 0},
    {V1 "Verdict", "receipt", 0, 2u << 20, 0},
    {V1 "Receipt", "entry", 0, 1u << 20, 0},
    {V1 "Receipt", "checkpoint", 0, 8192, 0},
    {V1 "Receipt", "inclusion_proof", 32, 32, 64},
    {V1 "ReceiptRequest", "contribution_digest", 32, 32, 0},
    {V1 "LedgerEntries", "entries", 0, 1u << 20, 1000},
    {V1 "FileRequest", "name", 1, 255, 0},
    {V1 "FileChunk", "name", 1, 255, 0},
    {V1 "FileChunk", "data", 0, FX_WIRE_CHUNK_MAX, 0},
    {V1 "Request", "withdrawal", 1, FX_WIRE_ENVELOPE_MAX, 0},
    {V1 "Error", "message", 0, 1024, 0},
};

static limit find_limit(const ProtobufCMessageDescriptor *d,
                        const ProtobufCFieldDescriptor *f)
{
	limit l = {d->name, f->name, 0, DEF_BYTES_MAX, DEF_COUNT_MAX};

	if (f->type == PROTOBUF_C_TYPE_STRING)
		l.len_max = DEF_STRING_MAX;
	for (size_t i = 0; i < sizeof(limits) / sizeof(*limits); i++)
		if (strcmp(limits[i].msg, d->name) == 0 &&
		    strcmp(limits[i].field, f->name) == 0)
			return limits[i];
	return l;
}

static fx_err check_msg(const ProtobufCMessage *m, int depth, fx_diag *diag);

/* proto3 requires strings to be valid UTF-8 and other implementations
 * refuse them otherwise; protobuf-c does not check, so we do, lest a
 * document parse here and fail elsewhere. Overlong forms, surrogates and
 * code points above U+10FFFF are invalid (RFC 3629). */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 &&
		     (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Checks one value of field f stored at p (an element of a repeated field
 * or the field itself). */
static fx_err check_value(const ProtobufCMessageDescriptor *d,
                          const ProtobufCFieldDescriptor *f, const limit *l,
                          const void *p, int depth, fx_diag *diag)
{
	size_t len;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		len = s ? strlen(s) : 0;
		if (!utf8_valid((const unsigned char *)(s ? s : ""), len))
			return fx_diag_set(diag, FX_EFORMAT,
			                   "%s.%s is not valid UTF-8", d->name,
			                   f->name);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES:
		len = ((const ProtobufCBinaryData *)p)->len;
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		return sub ? check_msg(sub, depth + 1, diag) : FX_OK;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		if (protobuf_c_enum_descriptor_get_value(f->descriptor, v) ==
		    NULL)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "%s.%s: unknown enum value %d",
			                   d->name, f->name, v);
		return FX_OK;
	}
	default:
		return FX_OK;
	}
	if (len < l->len_min || len > l->len_max) {
		if (l->len_min == l->len_max)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "%s.%s is %zu bytes, must be exactly %zu", d->name,
			    f->name, len, l->len_max);
		return fx_diag_set(
		    diag, len > l->len_max ? FX_ETOOBIG : FX_EFORMAT,
		    "%s.%s is %zu bytes, must be %zu..%zu", d->name, f->name,
		    len, l->len_min, l->len_max);
	}
	return FX_OK;
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	default:
		return 0; /* scalars: only the count is checked */
	}
}

static fx_err check_msg(const ProtobufCMessage *m, int depth, fx_diag *diag)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	fx_err err;

	if (depth > FX_WIRE_MAX_DEPTH)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "messages nested deeper than %d",
		                   FX_WIRE_MAX_DEPTH);
	if (m->n_unknown_fields > 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "%s has an unknown field (number %u): not a "
		                   "version-1 message",
		                   d->name, m->unknown_fields[0].tag);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		limit l = find_limit(d, f);

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n =
			    *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)(base + f->offset);
			size_t sz = elem_size(f);
			if (n > l.count_max)
				return fx_diag_set(
				    diag, FX_ETOOBIG,
				    "%s.%s has %zu entries, at most %zu",
				    d->name, f->name, n, l.count_max);
			for (size_t k = 0; sz && k < n; k++)
				if ((err = check_value(d, f, &l, arr + k * sz,
				                       depth, diag)) != FX_OK)
					return err;
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if ((err = check_value(d, f, &l, base + f->offset, depth,
		                       diag)) != FX_OK)
			return err;
	}
	return FX_OK;
}

fx_err fx_wire_check(const ProtobufCMessage *m, fx_diag *diag)
{
	return check_msg(m, 0, diag);
}

/* Re-encodes m and requires the input bytes back. This refuses what a C
 * reader would silently lose or reinterpret — an embedded NUL that shortens
 * a string, a repeated non-repeated field (last one wins), explicit default
 * values, non-minimal varints, unpacked repeated scalars — so one document
 * has one encoding and every reader sees the same fields. */
static fx_err check_canonical(const ProtobufCMessage *m, const uint8_t *buf,
                              size_t len, fx_diag *diag)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *again;
	int same;

	if (n != len)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "%s is not canonically encoded (%zu bytes, "
		                   "re-encodes to %zu)",
		                   m->descriptor->name, len, n);
	again = malloc(n ? n : 1);
	if (again == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no memory to check encoding");
	protobuf_c_message_pack(m, again);
	same = n == 0 || memcmp(again, buf, n) == 0;
	free(again);
	if (!same)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "%s is not canonically encoded (field order or "
		    "values differ when re-encoded)",
		    m->descriptor->name);
	return FX_OK;
}

fx_err fx_wire_decode(const ProtobufCMessageDescriptor *desc,
                      const uint8_t *buf, size_t len, size_t max_len,
                      ProtobufCMessage **out, fx_diag *diag)
{
	ProtobufCMessage *m;
	fx_err err;

	if (len > max_len)
		return fx_diag_set(
		    diag, FX_ETOOBIG,
		    "%s message of %zu bytes exceeds the %zu allowed",
		    desc->name, len, max_len);
	m = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (m == NULL)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "%s message of %zu bytes is malformed (truncated, "
		    "wrong wire type or bad length)",
		    desc->name, len);
	if ((err = check_msg(m, 0, diag)) != FX_OK ||
	    (err = check_canonical(m, buf, len, diag)) != FX_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return err;
	}
	*out = m;
	return FX_OK;
}

fx_err fx_wire_encode(const ProtobufCMessage *m, uint8_t **out, size_t *len,
                      fx_diag *diag)
{
	size_t n;
	uint8_t *buf;
	fx_err err;

	if ((err = check_msg(m, 0, diag)) != FX_OK)
		return err;
	n = protobuf_c_message_get_packed_size(m);
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no memory to encode %zu bytes", n);
	if (protobuf_c_message_pack(m, buf) != n) {
		free(buf);
		return fx_diag_set(diag, FX_EINTERNAL,
		                   "%s packed to a different size",
		                   m->descriptor->name);
	}
	*out = buf;
	*len = n;
	return FX_OK;
}

void fx_wire_free(ProtobufCMessage *m)
{
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

/* Encodes an envelope whose signatures are sigs[0..n). */
static fx_err encode_envelope(const char *type, const uint8_t *body, size_t len,
                              Flexo__V1__Signature **sigs, size_t n,
                              uint8_t **out, size_t *out_len, fx_diag *diag)
{
	Flexo__V1__Envelope env = FLEXO__V1__ENVELOPE__INIT;

	env.payload_type = (char *)type;
	env.payload.data = (uint8_t *)body;
	env.payload.len = len;
	env.signatures = sigs;
	env.n_signatures = n;
	return fx_wire_encode(&env.base, out, out_len, diag);
}

fx_err fx_envelope_seal(const char *type, const uint8_t *body, size_t len,
                        const fx_keypair *const *keys, size_t n, uint8_t **out,
                        size_t *out_len, fx_diag *diag)
{
	Flexo__V1__Signature sig[FX_WIRE_MAX_SIGS], *ptr[FX_WIRE_MAX_SIGS];
	uint8_t raw[FX_WIRE_MAX_SIGS][FX_SIG_BYTES];
	fx_err err;

	if (n > FX_WIRE_MAX_SIGS)
		return fx_diag_set(diag, FX_ETOOBIG, "%zu signers, at most %d",
		                   n, FX_WIRE_MAX_SIGS);
	for (size_t i = 0; i < n; i++) {
		if (keys[i]->sk == NULL)
			return fx_diag_set(diag, FX_EINVAL,
			                   "signer %zu has no secret key", i);
		for (size_t j = 0; j < i; j++)
			if (memcmp(keys[i]->pk, keys[j]->pk, FX_PK_BYTES) == 0)
				return fx_diag_set(diag, FX_EEXIST,
				                   "signer %zu appears twice",
				                   i);
		if ((err = fx_sign(raw[i], type, body, len, keys[i]->sk,
		                   diag)) != FX_OK)
			return err;
		flexo__v1__signature__init(&sig[i]);
		sig[i].key_id.data = (uint8_t *)keys[i]->id;
		sig[i].key_id.len = FX_KEY_ID_BYTES;
		sig[i].sig.data = raw[i];
		sig[i].sig.len = FX_SIG_BYTES;
		ptr[i] = &sig[i];
	}
	return encode_envelope(type, body, len, ptr, n, out, out_len, diag);
}

fx_err fx_envelope_open(const uint8_t *buf, size_t len, const char *type,
                        Flexo__V1__Envelope **out, fx_diag *diag)
{
	ProtobufCMessage *m = NULL;
	Flexo__V1__Envelope *env;
	fx_err err;

	err = fx_wire_decode(&flexo__v1__envelope__descriptor, buf, len,
	                     FX_WIRE_ENVELOPE_MAX, &m, diag);
	if (err != FX_OK)
		return err;
	env = (Flexo__V1__Envelope *)m;
	if (type != NULL && strcmp(env->payload_type, type) != 0) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "envelope carries a %s, expected a %s",
		                  env->payload_type, type);
		fx_wire_free(m);
		return err;
	}
	*out = env;
	return FX_OK;
}

fx_err fx_envelope_cosign(const uint8_t *buf, size_t len, const fx_keypair *key,
                          uint8_t **out, size_t *out_len, fx_diag *diag)
{
	Flexo__V1__Signature sig = FLEXO__V1__SIGNATURE__INIT;
	Flexo__V1__Signature *ptr[FX_WIRE_MAX_SIGS];
	Flexo__V1__Envelope *env = NULL;
	uint8_t raw[FX_SIG_BYTES];
	fx_err err;

	if (key->sk == NULL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "co-signer has no secret key");
	if ((err = fx_envelope_open(buf, len, NULL, &env, diag)) != FX_OK)
		return err;
	if (fx_envelope_verify_key(env, key->pk) == 0) {
		err = fx_diag_set(diag, FX_EEXIST, "this key already signed");
		goto out;
	}
	if (env->n_signatures >= FX_WIRE_MAX_SIGS) {
		err = fx_diag_set(diag, FX_ETOOBIG,
		                  "envelope already has %d "
		                  "signatures",
		                  FX_WIRE_MAX_SIGS);
		goto out;
	}
	err = fx_sign(raw, env->payload_type, env->payload.data,
	              env->payload.len, key->sk, diag);
	if (err != FX_OK)
		goto out;
	sig.key_id.data = (uint8_t *)key->id;
	sig.key_id.len = FX_KEY_ID_BYTES;
	sig.sig.data = raw;
	sig.sig.len = FX_SIG_BYTES;
	for (size_t i = 0; i < env->n_signatures; i++)
		ptr[i] = env->signatures[i];
	ptr[env->n_signatures] = &sig;
	err = encode_envelope(env->payload_type, env->payload.data,
	                      env->payload.len, ptr, env->n_signatures + 1, out,
	                      out_len, diag);
out:
	fx_wire_free(&env->base);
	return err;
}

int fx_envelope_verify_key(const Flexo__V1__Envelope *env,
                           const uint8_t pk[FX_PK_BYTES])
{
	uint8_t id[FX_KEY_ID_BYTES];

	fx_key_id(id, pk);
	for (size_t i = 0; i < env->n_signatures; i++) {
		const Flexo__V1__Signature *s = env->signatures[i];
		/* The key ID only picks candidates; the signature decides. */
		if (s->key_id.len != FX_KEY_ID_BYTES ||
		    s->sig.len != FX_SIG_BYTES ||
		    memcmp(s->key_id.data, id, FX_KEY_ID_BYTES) != 0)
			continue;
		if (fx_verify(s->sig.data, env->payload_type, env->payload.data,
		              env->payload.len, pk) == 0)
			return 0;
	}
	return -1;
}
