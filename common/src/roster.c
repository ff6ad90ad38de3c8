/* Roster documents: editing, sealing into an envelope, structural checks
 * and the TUF-style rotation rule (see roster.h). */
#include "flexo/roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flexo/fsutil.h"
#include "flexo/keys.h"

static const char *const role_names[] = {
    [FX_ROLE_ROOT] = "root",
    [FX_ROLE_COORDINATOR] = "coordinator",
    [FX_ROLE_CONTRIBUTOR] = "contributor",
    [FX_ROLE_AUDITOR] = "auditor",
};

const char *fx_role_name(int role)
{
	if (role < FX_ROLE_ROOT || role > FX_ROLE_AUDITOR)
		return NULL;
	return role_names[role];
}

int fx_role_parse(const char *name)
{
	for (int r = FX_ROLE_ROOT; r <= FX_ROLE_AUDITOR; r++)
		if (strcmp(name, role_names[r]) == 0)
			return r;
	return -1;
}

void fx_roster_init(fx_roster *r)
{
	memset(r, 0, sizeof(*r));
}

static void drop_envelope(fx_roster *r)
{
	free(r->envelope);
	r->envelope = NULL;
	r->envelope_len = 0;
	r->n_signatures = 0;
}

void fx_roster_release(fx_roster *r)
{
	free(r->members);
	drop_envelope(r);
	fx_roster_init(r);
}

static size_t count_roots(const fx_roster *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_members; i++)
		n += r->members[i].role == FX_ROLE_ROOT;
	return n;
}

static fx_err check_name(const char *what, const char *name, fx_diag *diag)
{
	size_t n = strnlen(name, FX_NAME_MAX + 1);
	if (n == 0 || n > FX_NAME_MAX)
		return fx_diag_set(diag, FX_EINVAL, "%s must be 1..%d bytes",
		                   what, FX_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return fx_diag_set(diag, FX_EINVAL,
			                   "%s '%s' has a control character",
			                   what, name);
	return FX_OK;
}

fx_err fx_roster_validate(const fx_roster *r, fx_diag *diag)
{
	size_t roots = count_roots(r);
	fx_err err;

	if ((err = check_name("consortium name", r->consortium, diag)) != FX_OK)
		return err;
	if (r->n_members == 0 || r->n_members > FX_ROSTER_MAX_MEMBERS)
		return fx_diag_set(diag, FX_EINVAL,
		                   "roster has %zu members, must have 1..%d",
		                   r->n_members, FX_ROSTER_MAX_MEMBERS);
	for (size_t i = 0; i < r->n_members; i++) {
		const fx_member *m = &r->members[i];
		if ((err = check_name("member name", m->name, diag)) != FX_OK)
			return err;
		if (fx_role_name(m->role) == NULL)
			return fx_diag_set(diag, FX_EINVAL,
			                   "member '%s' has no valid role (%d)",
			                   m->name, (int)m->role);
		if (m->not_after < 0)
			return fx_diag_set(
			    diag, FX_EINVAL,
			    "member '%s' has a negative not-after", m->name);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(m->name, r->members[j].name) == 0)
				return fx_diag_set(
				    diag, FX_EINVAL,
				    "member name '%s' appears twice", m->name);
			if (memcmp(m->pk, r->members[j].pk, FX_PK_BYTES) == 0)
				return fx_diag_set(
				    diag, FX_EINVAL,
				    "members '%s' and '%s' share a key",
				    r->members[j].name, m->name);
		}
	}
	if (roots == 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "roster has no root member");
	if (r->threshold < 1 || r->threshold > roots)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "threshold %u must be 1..%zu (the number of roots)",
		    r->threshold, roots);
	if (r->release_cosigners > roots)
		return fx_diag_set(diag, FX_EINVAL,
		                   "release co-signers %u exceed the %zu roots",
		                   r->release_cosigners, roots);
	if (r->expires <= 0)
		return fx_diag_set(diag, FX_EINVAL, "roster has no expiry");
	return FX_OK;
}

fx_err fx_roster_add(fx_roster *r, const char *name,
                     const uint8_t pk[FX_PK_BYTES], fx_role role,
                     int64_t not_after, fx_diag *diag)
{
	fx_member *grown, *m;
	fx_err err;

	if ((err = check_name("member name", name, diag)) != FX_OK)
		return err;
	if (fx_role_name(role) == NULL)
		return fx_diag_set(diag, FX_EINVAL, "invalid role %d",
		                   (int)role);
	if (r->n_members >= FX_ROSTER_MAX_MEMBERS)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "roster already has %d members",
		                   FX_ROSTER_MAX_MEMBERS);
	for (size_t i = 0; i < r->n_members; i++) {
		if (strcmp(r->members[i].name, name) == 0)
			return fx_diag_set(diag, FX_EEXIST,
			                   "member '%s' already in the roster",
			                   name);
		if (memcmp(r->members[i].pk, pk, FX_PK_BYTES) == 0)
			return fx_diag_set(diag, FX_EEXIST,
			                   "that key already belongs to '%s'",
			                   r->members[i].name);
	}
	grown = realloc(r->members, (r->n_members + 1) * sizeof(*grown));
	if (grown == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "no memory for a member");
	r->members = grown;
	m = &r->members[r->n_members++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	memcpy(m->pk, pk, FX_PK_BYTES);
	fx_key_id(m->id, pk);
	m->role = role;
	m->not_after = not_after;
	drop_envelope(r);
	return FX_OK;
}

fx_err fx_roster_remove(fx_roster *r, const char *name, fx_diag *diag)
{
	for (size_t i = 0; i < r->n_members; i++) {
		if (strcmp(r->members[i].name, name) != 0)
			continue;
		memmove(&r->members[i], &r->members[i + 1],
		        (r->n_members - i - 1) * sizeof(*r->members));
		r->n_members--;
		drop_envelope(r);
		return FX_OK;
	}
	return fx_diag_set(diag, FX_ENOTFOUND, "no member named '%s'", name);
}

fx_err fx_roster_seal(fx_roster *r, fx_diag *diag)
{
	Flexo__V1__Roster msg = FLEXO__V1__ROSTER__INIT;
	Flexo__V1__Member *mem = NULL, **ptr = NULL;
	uint8_t *body = NULL, *env = NULL;
	size_t body_len = 0, env_len = 0;
	fx_err err;

	if ((err = fx_roster_validate(r, diag)) != FX_OK)
		return err;
	mem = calloc(r->n_members, sizeof(*mem));
	ptr = calloc(r->n_members, sizeof(*ptr));
	if (mem == NULL || ptr == NULL) {
		err =
		    fx_diag_set(diag, FX_ENOMEM, "no memory to encode roster");
		goto out;
	}
	for (size_t i = 0; i < r->n_members; i++) {
		flexo__v1__member__init(&mem[i]);
		mem[i].name = r->members[i].name;
		mem[i].public_key.data = r->members[i].pk;
		mem[i].public_key.len = FX_PK_BYTES;
		mem[i].role = (Flexo__V1__Role)r->members[i].role;
		mem[i].not_after = r->members[i].not_after;
		ptr[i] = &mem[i];
	}
	msg.schema = FX_WIRE_SCHEMA;
	msg.consortium = r->consortium;
	msg.version = r->version;
	msg.expires = r->expires;
	msg.threshold = r->threshold;
	msg.members = ptr;
	msg.n_members = r->n_members;
	msg.release_cosigners = r->release_cosigners;
	if ((err = fx_wire_encode(&msg.base, &body, &body_len, diag)) != FX_OK)
		goto out;
	err = fx_envelope_seal(FX_TYPE_ROSTER, body, body_len, NULL, 0, &env,
	                       &env_len, diag);
	if (err != FX_OK)
		goto out;
	drop_envelope(r);
	r->envelope = env;
	r->envelope_len = env_len;
	fx_blake2b(r->digest, body, body_len);
out:
	free(body);
	free(ptr);
	free(mem);
	return err;
}

fx_err fx_roster_sign(fx_roster *r, const fx_keypair *key, fx_diag *diag)
{
	uint8_t *env = NULL;
	size_t len = 0;
	fx_err err;

	if (r->envelope == NULL)
		return fx_diag_set(diag, FX_ESTATE, "roster not sealed yet");
	err = fx_envelope_cosign(r->envelope, r->envelope_len, key, &env, &len,
	                         diag);
	if (err != FX_OK)
		return err;
	free(r->envelope);
	r->envelope = env;
	r->envelope_len = len;
	r->n_signatures++;
	return FX_OK;
}

/* Fills *r from an opened envelope's payload. */
static fx_err parse_payload(fx_roster *r, const Flexo__V1__Envelope *env,
                            fx_diag *diag)
{
	ProtobufCMessage *m = NULL;
	Flexo__V1__Roster *msg;
	fx_err err;

	err = fx_wire_decode(&flexo__v1__roster__descriptor, env->payload.data,
	                     env->payload.len, FX_WIRE_DOC_MAX, &m, diag);
	if (err != FX_OK)
		return err;
	msg = (Flexo__V1__Roster *)m;
	if (msg->schema != FX_WIRE_SCHEMA) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "roster schema %u, expected %d", msg->schema,
		                  FX_WIRE_SCHEMA);
		goto out;
	}
	snprintf(r->consortium, sizeof(r->consortium), "%s", msg->consortium);
	r->version = msg->version;
	r->expires = msg->expires;
	r->threshold = msg->threshold;
	r->release_cosigners = msg->release_cosigners;
	r->members =
	    calloc(msg->n_members ? msg->n_members : 1, sizeof(*r->members));
	if (r->members == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM,
		                  "no memory for roster members");
		goto out;
	}
	for (size_t i = 0; i < msg->n_members; i++) {
		fx_member *mb = &r->members[i];
		/* Lengths were bounded by the wire limits (name <= 64, key =
		 * 32). */
		snprintf(mb->name, sizeof(mb->name), "%s",
		         msg->members[i]->name);
		memcpy(mb->pk, msg->members[i]->public_key.data, FX_PK_BYTES);
		fx_key_id(mb->id, mb->pk);
		mb->role = (fx_role)msg->members[i]->role;
		mb->not_after = msg->members[i]->not_after;
	}
	r->n_members = msg->n_members;
	err = fx_roster_validate(r, diag);
out:
	fx_wire_free(m);
	return err;
}

fx_err fx_roster_parse(fx_roster *r, const uint8_t *env, size_t len,
                       fx_diag *diag)
{
	Flexo__V1__Envelope *e = NULL;
	fx_roster tmp;
	fx_err err;

	fx_roster_init(&tmp);
	if ((err = fx_envelope_open(env, len, FX_TYPE_ROSTER, &e, diag)) !=
	    FX_OK)
		return err;
	if ((err = parse_payload(&tmp, e, diag)) != FX_OK)
		goto out;
	tmp.envelope = malloc(len);
	if (tmp.envelope == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory for roster");
		goto out;
	}
	memcpy(tmp.envelope, env, len);
	tmp.envelope_len = len;
	tmp.n_signatures = e->n_signatures;
	fx_blake2b(tmp.digest, e->payload.data, e->payload.len);
	fx_roster_release(r);
	*r = tmp;
	fx_roster_init(&tmp);
out:
	fx_roster_release(&tmp);
	fx_wire_free(&e->base);
	return err;
}

fx_err fx_roster_load(fx_roster *r, const char *path, fx_diag *diag)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_err err;

	if ((err = fx_read_file(path, FX_ROSTER_FILE_MAX, &buf, &len, diag)) !=
	    FX_OK)
		return err;
	if ((err = fx_roster_parse(r, buf, len, diag)) != FX_OK)
		fx_diag_prefix(diag, "roster %s", path);
	free(buf);
	return err;
}

fx_err fx_roster_save(const fx_roster *r, const char *path, fx_diag *diag)
{
	if (r->envelope == NULL)
		return fx_diag_set(diag, FX_ESTATE, "roster not sealed yet");
	return fx_write_file_atomic(path, r->envelope, r->envelope_len, 0644,
	                            diag);
}

static int member_valid_at(const fx_roster *r, const fx_member *m, int64_t now)
{
	if (now > r->expires)
		return 0;
	return m->not_after == 0 || now <= m->not_after;
}

/* Counts roots of `signers` that signed env. With `any_roster_age` the
 * signers' roster may itself have expired (members' own not-after still
 * holds): that is how a consortium recovers from an expired roster, as in
 * TUF, where the old root's keys vouch for the new root whatever the old
 * root's expiry. */
static size_t count_signed_roots(const fx_roster *signers,
                                 const Flexo__V1__Envelope *env, int64_t now,
                                 int any_roster_age)
{
	size_t n = 0;

	/* Members have distinct keys (validated), so each counts once however
	 * many signature entries an attacker repeats. */
	for (size_t i = 0; i < signers->n_members; i++) {
		const fx_member *m = &signers->members[i];
		int valid = any_roster_age
		                ? (m->not_after == 0 || now <= m->not_after)
		                : member_valid_at(signers, m, now);
		if (m->role != FX_ROLE_ROOT || !valid)
			continue;
		if (fx_envelope_verify_key(env, m->pk) == 0)
			n++;
	}
	return n;
}

size_t fx_roster_count_root_sigs(const fx_roster *signers,
                                 const Flexo__V1__Envelope *env, int64_t now)
{
	return count_signed_roots(signers, env, now, 0);
}

/* Shared body of the two verify functions; trusted may be NULL (initial). */
static fx_err verify(const fx_roster *trusted, fx_roster *out,
                     const uint8_t *env, size_t len, int64_t now, fx_diag *diag)
{
	Flexo__V1__Envelope *e = NULL;
	fx_roster cand;
	char when[32];
	size_t got;
	fx_err err;

	fx_roster_init(&cand);
	if ((err = fx_roster_parse(&cand, env, len, diag)) != FX_OK)
		return err;
	if ((err = fx_envelope_open(env, len, FX_TYPE_ROSTER, &e, diag)) !=
	    FX_OK)
		goto out;
	if (trusted != NULL) {
		if (strcmp(trusted->consortium, cand.consortium) != 0) {
			err = fx_diag_set(
			    diag, FX_EMISMATCH,
			    "roster is for consortium '%s', trusted "
			    "roster is for '%s'",
			    cand.consortium, trusted->consortium);
			goto out;
		}
		if (cand.version <= trusted->version) {
			err = fx_diag_set(
			    diag, FX_EROLLBACK,
			    "roster version %llu is not higher than the "
			    "trusted version %llu",
			    (unsigned long long)cand.version,
			    (unsigned long long)trusted->version);
			goto out;
		}
		got = count_signed_roots(trusted, e, now, 1);
		if (got < trusted->threshold) {
			err = fx_diag_set(
			    diag, FX_EBADSIG,
			    "roster v%llu has %zu valid signature(s) of "
			    "the trusted v%llu roots, needs %u",
			    (unsigned long long)cand.version, got,
			    (unsigned long long)trusted->version,
			    trusted->threshold);
			goto out;
		}
	}
	got = fx_roster_count_root_sigs(&cand, e, now);
	if (now > cand.expires) {
		err = fx_diag_set(
		    diag, FX_EEXPIRED, "roster v%llu expired at %s",
		    (unsigned long long)cand.version,
		    fx_time_format(when, sizeof(when), cand.expires));
		goto out;
	}
	if (got < cand.threshold) {
		err = fx_diag_set(
		    diag, FX_EBADSIG,
		    "roster v%llu has %zu valid signature(s) of its "
		    "own roots, needs %u",
		    (unsigned long long)cand.version, got, cand.threshold);
		goto out;
	}
	fx_roster_release(out);
	*out = cand;
	fx_roster_init(&cand);
out:
	if (e != NULL)
		fx_wire_free(&e->base);
	fx_roster_release(&cand);
	return err;
}

fx_err fx_roster_verify_initial(fx_roster *out, const uint8_t *env, size_t len,
                                int64_t now, fx_diag *diag)
{
	return verify(NULL, out, env, len, now, diag);
}

fx_err fx_roster_verify_update(const fx_roster *trusted, fx_roster *out,
                               const uint8_t *env, size_t len, int64_t now,
                               fx_diag *diag)
{
	return verify(trusted, out, env, len, now, diag);
}

const fx_member *fx_roster_find_key(const fx_roster *r,
                                    const uint8_t pk[FX_PK_BYTES])
{
	for (size_t i = 0; i < r->n_members; i++)
		if (memcmp(r->members[i].pk, pk, FX_PK_BYTES) == 0)
			return &r->members[i];
	return NULL;
}

fx_err fx_roster_find_signer(const fx_roster *r, const Flexo__V1__Envelope *env,
                             fx_role role, int64_t now,
                             const fx_member **signer, fx_diag *diag)
{
	char when[32];
	const fx_member *expired = NULL;

	if (now > r->expires)
		return fx_diag_set(
		    diag, FX_EEXPIRED, "roster v%llu expired at %s",
		    (unsigned long long)r->version,
		    fx_time_format(when, sizeof(when), r->expires));
	for (size_t i = 0; i < r->n_members; i++) {
		const fx_member *m = &r->members[i];
		if (m->role != role || fx_envelope_verify_key(env, m->pk) != 0)
			continue;
		if (!member_valid_at(r, m, now)) {
			expired = m;
			continue;
		}
		*signer = m;
		return FX_OK;
	}
	if (expired != NULL)
		return fx_diag_set(
		    diag, FX_EEXPIRED,
		    "signed by %s '%s' whose key expired at %s",
		    fx_role_name(role), expired->name,
		    fx_time_format(when, sizeof(when), expired->not_after));
	return fx_diag_set(diag, FX_EBADSIG,
	                   "%s is not signed by any %s of roster v%llu (%zu "
	                   "signature(s) present)",
	                   env->payload_type, fx_role_name(role),
	                   (unsigned long long)r->version, env->n_signatures);
}

fx_err fx_time_parse(const char *s, int64_t now, int64_t *out, fx_diag *diag)
{
	char *end = NULL;
	long long v;
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, se = 0, used = 0, tail = 0;

	if (s == NULL || *s == '\0')
		return fx_diag_set(diag, FX_EINVAL, "empty time");
	if (s[0] == '+') {
		long long mul;
		v = strtoll(s + 1, &end, 10);
		if (end == s + 1 || v < 0 || v > 100LL * 366 * 86400)
			return fx_diag_set(diag, FX_EINVAL,
			                   "bad relative time '%s'", s);
		switch (*end) {
		case 'd':
			mul = 86400;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'm':
			mul = 60;
			break;
		case 's':
		case '\0':
			mul = 1;
			break;
		default:
			return fx_diag_set(
			    diag, FX_EINVAL,
			    "bad unit in '%s' (use d, h, m or s)", s);
		}
		if (*end != '\0' && end[1] != '\0')
			return fx_diag_set(diag, FX_EINVAL,
			                   "trailing text in '%s'", s);
		*out = now + v * mul;
		return FX_OK;
	}
	if (strchr(s, '-') == NULL) {
		v = strtoll(s, &end, 10);
		if (end == s || *end != '\0' || v < 0)
			return fx_diag_set(diag, FX_EINVAL, "bad time '%s'", s);
		*out = v;
		return FX_OK;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used == 0 ||
	    (s[used] != '\0' &&
	     (sscanf(s + used, "T%2d:%2d:%2dZ%n", &h, &mi, &se, &tail) != 3 ||
	      tail == 0 || s[used + tail] != '\0')))
		return fx_diag_set(diag, FX_EINVAL,
		                   "bad time '%s' (YYYY-MM-DD or "
		                   "YYYY-MM-DDTHH:MM:SSZ, UTC)",
		                   s);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || se > 60)
		return fx_diag_set(diag, FX_EINVAL, "time '%s' out of range",
		                   s);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	*out = (int64_t)timegm(&tm);
	return FX_OK;
}

char *fx_time_format(char *buf, size_t size, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
	return buf;
}
