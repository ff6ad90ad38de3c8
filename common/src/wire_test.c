/* Malformed protobuf input is refused without a crash (run under ASan):
 * every truncation of a signed envelope, oversized input, wrong wire types,
 * overlong lengths, absurd repeated counts, unknown fields and enum values,
 * wrong fixed sizes, and random mutations. */
#include <stdlib.h>

#include "flexo/keys.h"
#include "flexo/wire.h"
#include "fx_test.h"

static fx_err decode_env(const uint8_t *buf, size_t len, fx_diag *d)
{
	ProtobufCMessage *m = NULL;
	fx_err err = fx_wire_decode(&flexo__v1__envelope__descriptor, buf, len,
	                            FX_WIRE_ENVELOPE_MAX, &m, d);
	fx_wire_free(m);
	return err;
}

static void sealed(uint8_t **buf, size_t *len, int nsig)
{
	fx_keypair k[3];
	const fx_keypair *kp[3] = {&k[0], &k[1], &k[2]};
	fx_diag d;
	for (int i = 0; i < 3; i++) {
		fx_keypair_init(&k[i]);
		CHECK_OK(fx_keypair_generate(&k[i], &d));
	}
	CHECK_OK(fx_envelope_seal("flexo.v1.Test", (const uint8_t *)"hello", 5,
	                          kp, (size_t)nsig, buf, len, &d));
	for (int i = 0; i < 3; i++)
		fx_keypair_release(&k[i]);
}

static void test_roundtrip_and_truncation(void)
{
	Flexo__V1__Envelope *env = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, refused = 0;
	fx_diag d;

	sealed(&buf, &len, 2);
	CHECK_OK(fx_envelope_open(buf, len, "flexo.v1.Test", &env, &d));
	CHECK(env->n_signatures == 2 && env->payload.len == 5);
	fx_wire_free(&env->base);
	CHECK(fx_envelope_open(buf, len, "flexo.v1.Other", &env, &d) ==
	      FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "flexo.v1.Other") != NULL, "%s", d.msg);

	/* Every strict prefix: either refused, or a shorter valid message (a
	 * cut exactly between fields) that still passes the limits. */
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy =
		    malloc(n ? n : 1); /* exact size: ASan sees overreads */
		memcpy(copy, buf, n);
		if (decode_env(copy, n, &d) != FX_OK)
			refused++;
		free(copy);
	}
	CHECK_MSG(refused > len / 2, "%zu of %zu prefixes refused", refused,
	          len);
	/* The last byte belongs to the final signature: cutting it is fatal. */
	CHECK(decode_env(buf, len - 1, &d) == FX_EFORMAT);
	free(buf);
}

static void test_oversized(void)
{
	ProtobufCMessage *m = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_diag d;

	sealed(&buf, &len, 1);
	CHECK(fx_wire_decode(&flexo__v1__envelope__descriptor, buf, len,
	                     len - 1, &m, &d) == FX_ETOOBIG);
	CHECK(m == NULL);
	CHECK_MSG(strstr(d.msg, "exceeds") != NULL, "%s", d.msg);
	free(buf);
}

static void test_wire_types(void)
{
	fx_diag d;
	/* Field 1 (payload_type, a string) sent as a varint. */
	static const uint8_t varint_for_string[] = {0x08, 0x01};
	/* Field 3 (signatures, a message) sent as fixed64. */
	static const uint8_t fixed_for_msg[] = {0x19, 1, 2, 3, 4, 5, 6, 7, 8};
	/* Length prefix far beyond the buffer. */
	static const uint8_t overlong[] = {0x12, 0xff, 0xff, 0xff,
	                                   0xff, 0x0f, 'x'};
	/* Varint length that never ends. */
	static const uint8_t endless[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	/* Wire type 7 does not exist. */
	static const uint8_t bad_type[] = {0x0f, 0x00};
	/* Field number 0 is invalid. */
	static const uint8_t field_zero[] = {0x02, 0x00};

	CHECK(decode_env(varint_for_string, sizeof(varint_for_string), &d) ==
	      FX_EFORMAT);
	CHECK(decode_env(fixed_for_msg, sizeof(fixed_for_msg), &d) ==
	      FX_EFORMAT);
	CHECK(decode_env(overlong, sizeof(overlong), &d) == FX_EFORMAT);
	CHECK(decode_env(endless, sizeof(endless), &d) == FX_EFORMAT);
	CHECK(decode_env(bad_type, sizeof(bad_type), &d) == FX_EFORMAT);
	CHECK(decode_env(field_zero, sizeof(field_zero), &d) == FX_EFORMAT);
}

static void test_counts_and_sizes(void)
{
	Flexo__V1__Envelope env = FLEXO__V1__ENVELOPE__INIT;
	Flexo__V1__Signature sig = FLEXO__V1__SIGNATURE__INIT;
	Flexo__V1__Signature *many[FX_WIRE_MAX_SIGS + 1];
	uint8_t id[8] = {0}, s[64] = {0}, *buf;
	size_t len;
	fx_diag d;

	sig.key_id.data = id;
	sig.key_id.len = 8;
	sig.sig.data = s;
	sig.sig.len = 64;
	for (int i = 0; i <= FX_WIRE_MAX_SIGS; i++)
		many[i] = &sig;
	env.payload_type = "flexo.v1.Test";
	env.payload.data = s;
	env.payload.len = 1;
	env.signatures = many;
	env.n_signatures = FX_WIRE_MAX_SIGS + 1;
	/* The encoder refuses it too; pack by hand to test the decoder. */
	CHECK(fx_wire_encode(&env.base, &buf, &len, &d) == FX_ETOOBIG);
	len = protobuf_c_message_get_packed_size(&env.base);
	buf = malloc(len);
	protobuf_c_message_pack(&env.base, buf);
	CHECK(decode_env(buf, len, &d) == FX_ETOOBIG);
	CHECK_MSG(strstr(d.msg, "signatures has 17 entries") != NULL, "%s",
	          d.msg);
	free(buf);

	/* A 7-byte key ID. */
	env.n_signatures = 1;
	sig.key_id.len = 7;
	len = protobuf_c_message_get_packed_size(&env.base);
	buf = malloc(len);
	protobuf_c_message_pack(&env.base, buf);
	CHECK(decode_env(buf, len, &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "key_id is 7 bytes") != NULL, "%s", d.msg);
	free(buf);
	sig.key_id.len = 8;

	/* Empty payload type. */
	env.payload_type = "";
	len = protobuf_c_message_get_packed_size(&env.base);
	buf = malloc(len);
	protobuf_c_message_pack(&env.base, buf);
	CHECK(decode_env(buf, len, &d) == FX_EFORMAT);
	free(buf);

	/* 1001 ledger entries. */
	{
		Flexo__V1__LedgerEntries le = FLEXO__V1__LEDGER_ENTRIES__INIT;
		ProtobufCBinaryData *e = calloc(1001, sizeof(*e));
		ProtobufCMessage *m = NULL;
		le.entries = e;
		le.n_entries = 1001;
		len = protobuf_c_message_get_packed_size(&le.base);
		buf = malloc(len);
		protobuf_c_message_pack(&le.base, buf);
		CHECK(fx_wire_decode(&flexo__v1__ledger_entries__descriptor,
		                     buf, len, FX_WIRE_MSG_MAX, &m,
		                     &d) == FX_ETOOBIG);
		le.n_entries = 1000;
		len = protobuf_c_message_get_packed_size(&le.base);
		protobuf_c_message_pack(&le.base, buf);
		CHECK_OK(fx_wire_decode(&flexo__v1__ledger_entries__descriptor,
		                        buf, len, FX_WIRE_MSG_MAX, &m, &d));
		fx_wire_free(m);
		free(buf);
		free(e);
	}
	/* A packed float field claiming 2^40 bytes. */
	{
		static const uint8_t absurd[] = {
		    0x1a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0, 0, 0, 0};
		ProtobufCMessage *m = NULL;
		CHECK(fx_wire_decode(&flexo__v1__router_rows__descriptor,
		                     absurd, sizeof(absurd), FX_WIRE_DOC_MAX,
		                     &m, &d) == FX_EFORMAT);
	}
}

/* Builds a Member: name "a", a 32-byte key, then `tail`. */
static size_t member_with(uint8_t *out, const uint8_t *tail, size_t n)
{
	size_t len = 0;
	out[len++] = 0x0a;
	out[len++] = 0x01;
	out[len++] = 'a';
	out[len++] = 0x12;
	out[len++] = 0x20;
	memset(out + len, 0x5a, 32);
	len += 32;
	memcpy(out + len, tail, n);
	return len + n;
}

static void test_unknown(void)
{
	static const uint8_t unknown_field[] = {0x48,
	                                        0x01};      /* field 9 varint */
	static const uint8_t unknown_enum[] = {0x18, 0x09}; /* role = 9 */
	static const uint8_t fine[] = {0x18, 0x02};         /* role = 2 */
	static const uint8_t no_key[] = {0x0a, 0x01, 'a', 0x18, 0x02};
	ProtobufCMessage *m = NULL;
	uint8_t buf[64];
	size_t len;
	fx_diag d;

	len = member_with(buf, unknown_field, sizeof(unknown_field));
	CHECK(fx_wire_decode(&flexo__v1__member__descriptor, buf, len, 100, &m,
	                     &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "unknown field (number 9)") != NULL, "%s",
	          d.msg);
	len = member_with(buf, unknown_enum, sizeof(unknown_enum));
	CHECK(fx_wire_decode(&flexo__v1__member__descriptor, buf, len, 100, &m,
	                     &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "unknown enum value 9") != NULL, "%s", d.msg);
	len = member_with(buf, fine, sizeof(fine));
	CHECK_OK(fx_wire_decode(&flexo__v1__member__descriptor, buf, len, 100,
	                        &m, &d));
	CHECK(m != NULL && ((Flexo__V1__Member *)m)->role == 2);
	fx_wire_free(m);
	/* Member.public_key must be 32 bytes: absent is refused. */
	CHECK(fx_wire_decode(&flexo__v1__member__descriptor, no_key,
	                     sizeof(no_key), 100, &m, &d) == FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "public_key is 0 bytes") != NULL, "%s", d.msg);
}

/* Encodings a C reader would misread are refused. */
static void test_canonical(void)
{
	static const uint8_t nul_in_name[] = {0x0a, 0x03, 'a', 0x00, 'b'};
	static const uint8_t twice[] = {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'};
	static const uint8_t explicit_zero[] = {0x0a, 0x01, 'a', 0x20, 0x00};
	static const uint8_t long_varint[] = {0x0a, 0x01, 'a',
	                                      0x20, 0x81, 0x00};
	static const uint8_t reordered[] = {0x20, 0x01, 0x0a, 0x01, 'a'};
	/* Not UTF-8: a lone continuation byte, an overlong '/', a surrogate. */
	static const uint8_t lone[] = {0x0a, 0x02, 'a', 0x80};
	static const uint8_t overlong[] = {0x0a, 0x02, 0xc0, 0xaf};
	static const uint8_t surrogate[] = {0x0a, 0x03, 0xed, 0xa0, 0x80};
	static const uint8_t fine_utf8[] = {0x0a, 0x04, 0xf0, 0x9f, 0x98, 0x80};
	static const uint8_t *const bad[] = {nul_in_name, twice, explicit_zero,
	                                     long_varint, reordered};
	static const size_t bad_len[] = {
	    sizeof(nul_in_name), sizeof(twice), sizeof(explicit_zero),
	    sizeof(long_varint), sizeof(reordered)};
	uint8_t buf[80];
	fx_diag d;

	for (size_t i = 0; i < 5; i++) {
		ProtobufCMessage *m = NULL;
		/* Valid key appended so only the encoding is at fault. */
		size_t len = bad_len[i];
		memcpy(buf, bad[i], len);
		buf[len++] = 0x12;
		buf[len++] = 0x20;
		memset(buf + len, 0x11, 32);
		len += 32;
		CHECK_MSG(fx_wire_decode(&flexo__v1__member__descriptor, buf,
		                         len, 100, &m, &d) == FX_EFORMAT,
		          "case %zu", i);
		CHECK_MSG(strstr(d.msg, "canonical") != NULL, "case %zu: %s", i,
		          d.msg);
	}
	{
		const uint8_t *const u[] = {lone, overlong, surrogate,
		                            fine_utf8};
		const size_t ul[] = {sizeof(lone), sizeof(overlong),
		                     sizeof(surrogate), sizeof(fine_utf8)};
		for (size_t i = 0; i < 4; i++) {
			ProtobufCMessage *m = NULL;
			size_t len = ul[i];
			fx_err want = i < 3 ? FX_EFORMAT : FX_OK;
			memcpy(buf, u[i], len);
			buf[len++] = 0x12;
			buf[len++] = 0x20;
			memset(buf + len, 0x11, 32);
			len += 32;
			CHECK_MSG(fx_wire_decode(&flexo__v1__member__descriptor,
			                         buf, len, 100, &m, &d) == want,
			          "utf8 case %zu: %s", i, d.msg);
			fx_wire_free(m);
		}
	}
}

/* Random byte mutations of a valid envelope: no crash, no leak (ASan). */
static void test_mutations(void)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	unsigned seed = 12345;
	fx_diag d;

	sealed(&buf, &len, 3);
	for (int round = 0; round < 5000; round++) {
		uint8_t *copy = malloc(len);
		memcpy(copy, buf, len);
		for (int k = 0; k < 1 + round % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % len] = (uint8_t)(seed >> 20);
		}
		(void)decode_env(copy, len - (round % 3), &d);
		free(copy);
	}
	CHECK(1);
	free(buf);
}

/* Random mutations straight into the document decoders (below the
 * signature, which would otherwise stop them first). */
static void test_document_mutations(void)
{
	static const ProtobufCMessageDescriptor *const descs[] = {
	    &flexo__v1__roster__descriptor,
	    &flexo__v1__anchor_release__descriptor,
	    &flexo__v1__contribution__descriptor,
	    &flexo__v1__withdrawal__descriptor,
	    &flexo__v1__request__descriptor,
	    &flexo__v1__response__descriptor};
	Flexo__V1__Contribution c = FLEXO__V1__CONTRIBUTION__INIT;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	Flexo__V1__TrainingMeta t = FLEXO__V1__TRAINING_META__INIT;
	Flexo__V1__KeyValue kv = FLEXO__V1__KEY_VALUE__INIT, *kvp = &kv;
	float vals[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bias[2] = {0, -1};
	uint8_t id[8] = {1}, h[32] = {2}, *buf = NULL;
	unsigned seed = 99;
	size_t len = 0;
	fx_diag d;

	rr.layers = 2;
	rr.dim = 4;
	rr.values = vals;
	rr.n_values = 8;
	kv.key = "lr";
	kv.value = "1e-3";
	t.steps = 5;
	t.hyperparameters = &kvp;
	t.n_hyperparameters = 1;
	t.heldout_bpb = 2.5;
	c.schema = 1;
	c.consortium = "x";
	c.contributor_key_id.data = id;
	c.contributor_key_id.len = 8;
	c.anchor_release_digest.data = h;
	c.anchor_release_digest.len = 32;
	c.domain = "code";
	c.sequence = 3;
	c.payload_size = 10;
	c.payload_blake2b.data = h;
	c.payload_blake2b.len = 32;
	c.router = &rr;
	c.bias = bias;
	c.n_bias = 2;
	c.training = &t;
	CHECK_OK(fx_wire_encode(&c.base, &buf, &len, &d));
	for (int round = 0; round < 6000; round++) {
		ProtobufCMessage *m = NULL;
		uint8_t *copy = malloc(len);
		memcpy(copy, buf, len);
		for (int k = 0; k < 1 + round % 3; k++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % len] ^=
			    (uint8_t)(1 + (seed >> 20) % 255);
		}
		(void)fx_wire_decode(descs[round % 6], copy,
		                     len - (round % 5 == 0), FX_WIRE_DOC_MAX,
		                     &m, &d);
		fx_wire_free(m);
		free(copy);
	}
	{
		ProtobufCMessage *m = NULL;
		CHECK_OK(fx_wire_decode(&flexo__v1__contribution__descriptor,
		                        buf, len, FX_WIRE_DOC_MAX, &m, &d));
		fx_wire_free(m);
	}
	free(buf);
}

int main(void)
{
	RUN(test_roundtrip_and_truncation);
	RUN(test_oversized);
	RUN(test_wire_types);
	RUN(test_counts_and_sizes);
	RUN(test_unknown);
	RUN(test_canonical);
	RUN(test_mutations);
	RUN(test_document_mutations);
	return FX_TEST_REPORT();
}
