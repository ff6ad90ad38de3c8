/* Strict RFC 8259 parser: recursive descent with a depth bound, nodes and
 * strings in one arena owned by the document, duplicate keys found by sorting
 * each object's keys (which also gives O(log n) lookups). The writer is in
 * json_write.c; UTF-8 validation is shared through json_utf8.h. */
#include "flexo/json.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_utf8.h"

/* ---- arena ---------------------------------------------------------- */

#define CHUNK_SIZE (64u << 10)

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[]; /* aligned storage */
} chunk;

struct fx_json_doc {
	chunk *chunks;
	const fx_json *root;
};

static void *arena_alloc(fx_json_doc *doc, size_t n)
{
	const size_t align = _Alignof(max_align_t);
	chunk *c = doc->chunks;
	void *p;

	if (n > SIZE_MAX - align)
		return NULL;
	n = (n + align - 1) / align * align;
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
		if (cap > SIZE_MAX - sizeof(chunk))
			return NULL;
		c = malloc(sizeof(chunk) + cap);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = doc->chunks;
		doc->chunks = c;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += n;
	return p;
}

void fx_json_doc_free(fx_json_doc *doc)
{
	chunk *c, *next;

	if (doc == NULL)
		return;
	for (c = doc->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(doc);
}

const fx_json *fx_json_root(const fx_json_doc *doc)
{
	return doc->root;
}

/* ---- parser --------------------------------------------------------- */

typedef struct parser {
	const unsigned char *start, *p, *end;
	fx_json_limits lim;
	fx_json_doc *doc;
	size_t nodes;
	int depth;
	/* Scratch stacks: children of the containers being parsed. Nested
	 * containers push above their parent's children and pop back before
	 * the parent continues, so one stack serves every level. */
	const fx_json **items;
	size_t n_items, cap_items;
	fx_json_member *members;
	size_t n_members, cap_members;
	unsigned char *sbuf; /* decoded string being built */
	size_t cap_sbuf;
	fx_diag *diag;
} parser;

/* Formats an error at byte offset `at` as "line L, column C: ...". */
static fx_err fail_at(parser *ps, const unsigned char *at, fx_err err,
                      const char *what)
{
	size_t line = 1, col = 1;

	for (const unsigned char *q = ps->start; q < at; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	return fx_diag_set(ps->diag, err, "JSON line %zu, column %zu: %s", line,
	                   col, what);
}

static fx_err fail(parser *ps, fx_err err, const char *what)
{
	return fail_at(ps, ps->p, err, what);
}

static fx_err oom(parser *ps)
{
	return fx_diag_set(ps->diag, FX_ENOMEM, "out of memory parsing JSON");
}

static void skip_ws(parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
	                           *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static fx_json *new_node(parser *ps, fx_json_type t)
{
	fx_json *v;

	if (ps->nodes >= ps->lim.max_nodes)
		return NULL;
	v = arena_alloc(ps->doc, sizeof(*v));
	if (v == NULL)
		return NULL;
	memset(v, 0, sizeof(*v));
	v->type = t;
	ps->nodes++;
	return v;
}

/* new_node failed: say whether it was the bound or memory. */
static fx_err node_fail(parser *ps)
{
	if (ps->nodes >= ps->lim.max_nodes) {
		char m[96];
		snprintf(m, sizeof(m), "more than %zu values",
		         ps->lim.max_nodes);
		return fail(ps, FX_ETOOBIG, m);
	}
	return oom(ps);
}

/* Grows a scratch array so it holds at least need elements. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *n;

	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -1;
		ncap *= 2;
	}
	if (ncap == *cap)
		return 0;
	n = realloc(*arr, ncap * elem);
	if (n == NULL)
		return -1;
	*arr = n;
	*cap = ncap;
	return 0;
}

static fx_err parse_value(parser *ps, const fx_json **out);

static int hex4(const unsigned char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned c = s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	*out = v;
	return 0;
}

/* Parses a string at ps->p (on the opening quote) into a fresh arena copy. */
static fx_err parse_string(parser *ps, const char **out, size_t *out_len)
{
	size_t n = 0;
	char *copy;

	ps->p++; /* opening quote */
	for (;;) {
		const unsigned char *at = ps->p;
		unsigned char tmp[4];
		size_t k = 0;
		unsigned c;

		if (ps->p >= ps->end)
			return fail(ps, FX_EFORMAT, "unterminated string");
		c = *ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20) {
			char m[64];
			snprintf(m, sizeof(m),
			         "control character 0x%02x in string "
			         "(must be escaped)",
			         c);
			return fail(ps, FX_EFORMAT, m);
		}
		if (c == '\\') {
			unsigned cp, lo;
			if (ps->end - ps->p < 2)
				return fail(ps, FX_EFORMAT,
				            "unterminated string");
			switch (ps->p[1]) {
			case '"':
				tmp[k++] = '"';
				break;
			case '\\':
				tmp[k++] = '\\';
				break;
			case '/':
				tmp[k++] = '/';
				break;
			case 'b':
				tmp[k++] = '\b';
				break;
			case 'f':
				tmp[k++] = '\f';
				break;
			case 'n':
				tmp[k++] = '\n';
				break;
			case 'r':
				tmp[k++] = '\r';
				break;
			case 't':
				tmp[k++] = '\t';
				break;
			case 'u':
				if (ps->end - ps->p < 6 ||
				    hex4(ps->p + 2, &cp) != 0)
					return fail(
					    ps, FX_EFORMAT,
					    "\\u needs four hex digits");
				if (cp == 0)
					return fail(ps, FX_EFORMAT,
					            "\\u0000 is refused (NUL "
					            "inside a string)");
				if (cp >= 0xDC00 && cp <= 0xDFFF)
					return fail(ps, FX_EFORMAT,
					            "unpaired low surrogate "
					            "escape");
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					const unsigned char *q = ps->p + 6;
					if (ps->end - q < 6 || q[0] != '\\' ||
					    q[1] != 'u' ||
					    hex4(q + 2, &lo) != 0 ||
					    lo < 0xDC00 || lo > 0xDFFF)
						return fail(
						    ps, FX_EFORMAT,
						    "high surrogate escape "
						    "not followed by a low "
						    "surrogate escape");
					cp = 0x10000 + ((cp - 0xD800) << 10) +
					     (lo - 0xDC00);
					ps->p += 6;
				}
				k = fx_utf8_encode(cp, tmp);
				ps->p += 4;
				break;
			default:
				return fail(ps, FX_EFORMAT,
				            "invalid escape in string");
			}
			ps->p += 2;
		} else if (c < 0x80) {
			tmp[k++] = (unsigned char)c;
			ps->p++;
		} else {
			k = fx_utf8_valid_seq(ps->p, (size_t)(ps->end - ps->p));
			if (k == 0)
				return fail(ps, FX_EFORMAT,
				            "invalid UTF-8 in string");
			memcpy(tmp, ps->p, k);
			ps->p += k;
		}
		if (n + k > ps->lim.max_string) {
			char m[96];
			snprintf(m, sizeof(m), "string longer than %zu bytes",
			         ps->lim.max_string);
			return fail_at(ps, at, FX_ETOOBIG, m);
		}
		if (n + k > ps->cap_sbuf &&
		    grow((void **)&ps->sbuf, &ps->cap_sbuf, n + k, 1) != 0)
			return oom(ps);
		memcpy(ps->sbuf + n, tmp, k);
		n += k;
	}
	copy = arena_alloc(ps->doc, n + 1);
	if (copy == NULL)
		return oom(ps);
	if (n > 0)
		memcpy(copy, ps->sbuf, n);
	copy[n] = '\0';
	*out = copy;
	*out_len = n;
	return FX_OK;
}

static int is_digit(const parser *ps, const unsigned char *q)
{
	return q < ps->end && *q >= '0' && *q <= '9';
}

static fx_err parse_number(parser *ps, const fx_json **out)
{
	const unsigned char *s = ps->p, *q = ps->p;
	fx_json *v;
	char *text;
	size_t n;

	if (*q == '-')
		q++;
	if (!is_digit(ps, q))
		return fail_at(ps, q, FX_EFORMAT, "expected a digit");
	if (*q == '0') {
		q++;
		if (is_digit(ps, q))
			return fail_at(ps, q, FX_EFORMAT,
			               "leading zero in number");
	} else {
		while (is_digit(ps, q))
			q++;
	}
	if (q < ps->end && *q == '.') {
		q++;
		if (!is_digit(ps, q))
			return fail_at(ps, q, FX_EFORMAT,
			               "expected a digit after '.'");
		while (is_digit(ps, q))
			q++;
	}
	if (q < ps->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < ps->end && (*q == '+' || *q == '-'))
			q++;
		if (!is_digit(ps, q))
			return fail_at(ps, q, FX_EFORMAT,
			               "expected a digit in exponent");
		while (is_digit(ps, q))
			q++;
	}
	n = (size_t)(q - s);
	if (n > ps->lim.max_number) {
		char m[96];
		snprintf(m, sizeof(m), "number longer than %zu characters",
		         ps->lim.max_number);
		return fail(ps, FX_ETOOBIG, m);
	}
	if ((v = new_node(ps, FX_JSON_NUMBER)) == NULL)
		return node_fail(ps);
	if ((text = arena_alloc(ps->doc, n + 1)) == NULL)
		return oom(ps);
	memcpy(text, s, n);
	text[n] = '\0';
	v->str = text;
	v->len = n;
	ps->p = q;
	*out = v;
	return FX_OK;
}

static int member_cmp(const void *a, const void *b)
{
	const fx_json_member *x = *(const fx_json_member *const *)a;
	const fx_json_member *y = *(const fx_json_member *const *)b;
	return strcmp(x->key, y->key);
}

static fx_err enter(parser *ps)
{
	if (ps->depth >= ps->lim.max_depth) {
		char m[96];
		snprintf(m, sizeof(m), "nesting deeper than %d",
		         ps->lim.max_depth);
		return fail(ps, FX_ETOOBIG, m);
	}
	ps->depth++;
	ps->p++; /* '[' or '{' */
	return FX_OK;
}

static fx_err parse_array(parser *ps, const fx_json **out)
{
	size_t base = ps->n_items, n;
	const fx_json **items = NULL;
	fx_json *v;
	fx_err err;

	if ((err = enter(ps)) != FX_OK)
		return err;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
	} else {
		for (;;) {
			const fx_json *e;
			if ((err = parse_value(ps, &e)) != FX_OK)
				return err;
			if (grow((void **)&ps->items, &ps->cap_items,
			         ps->n_items + 1, sizeof(*ps->items)) != 0)
				return oom(ps);
			ps->items[ps->n_items++] = e;
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail(ps, FX_EFORMAT,
				            "unterminated array");
			if (*ps->p == ']') {
				ps->p++;
				break;
			}
			if (*ps->p != ',')
				return fail(ps, FX_EFORMAT,
				            "expected ',' or ']' in array");
			ps->p++;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ']')
				return fail(ps, FX_EFORMAT,
				            "trailing comma in array");
		}
	}
	n = ps->n_items - base;
	if ((v = new_node(ps, FX_JSON_ARRAY)) == NULL)
		return node_fail(ps);
	if (n > 0) {
		items = arena_alloc(ps->doc, n * sizeof(*items));
		if (items == NULL)
			return oom(ps);
		memcpy(items, ps->items + base, n * sizeof(*items));
	}
	ps->n_items = base;
	v->items = items;
	v->len = n;
	ps->depth--;
	*out = v;
	return FX_OK;
}

static fx_err parse_object(parser *ps, const fx_json **out)
{
	const unsigned char *open = ps->p;
	size_t base = ps->n_members, n;
	fx_json_member *members = NULL;
	const fx_json_member **by_key = NULL;
	fx_json *v;
	fx_err err;

	if ((err = enter(ps)) != FX_OK)
		return err;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
	} else {
		for (;;) {
			fx_json_member m;
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, FX_EFORMAT,
				            "expected a string key in object");
			if ((err = parse_string(ps, &m.key, &m.key_len)) !=
			    FX_OK)
				return err;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, FX_EFORMAT,
				            "expected ':' after object key");
			ps->p++;
			if ((err = parse_value(ps, &m.value)) != FX_OK)
				return err;
			if (grow((void **)&ps->members, &ps->cap_members,
			         ps->n_members + 1, sizeof(*ps->members)) != 0)
				return oom(ps);
			ps->members[ps->n_members++] = m;
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail(ps, FX_EFORMAT,
				            "unterminated object");
			if (*ps->p == '}') {
				ps->p++;
				break;
			}
			if (*ps->p != ',')
				return fail(ps, FX_EFORMAT,
				            "expected ',' or '}' in object");
			ps->p++;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == '}')
				return fail(ps, FX_EFORMAT,
				            "trailing comma in object");
		}
	}
	n = ps->n_members - base;
	if ((v = new_node(ps, FX_JSON_OBJECT)) == NULL)
		return node_fail(ps);
	if (n > 0) {
		members = arena_alloc(ps->doc, n * sizeof(*members));
		by_key = arena_alloc(ps->doc, n * sizeof(*by_key));
		if (members == NULL || by_key == NULL)
			return oom(ps);
		memcpy(members, ps->members + base, n * sizeof(*members));
		for (size_t i = 0; i < n; i++)
			by_key[i] = &members[i];
		qsort(by_key, n, sizeof(*by_key), member_cmp);
		for (size_t i = 1; i < n; i++) {
			if (strcmp(by_key[i - 1]->key, by_key[i]->key) == 0) {
				char m[FX_DIAG_MAX / 2];
				snprintf(m, sizeof(m),
				         "duplicate key \"%.100s\" in object",
				         by_key[i]->key);
				return fail_at(ps, open, FX_EFORMAT, m);
			}
		}
	}
	ps->n_members = base;
	v->members = members;
	v->by_key = by_key;
	v->len = n;
	ps->depth--;
	*out = v;
	return FX_OK;
}

static int literal(parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return 0;
	ps->p += n;
	return 1;
}

static fx_err parse_value(parser *ps, const fx_json **out)
{
	fx_json *v;
	fx_err err;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, FX_EFORMAT, "unexpected end of input");
	switch (*ps->p) {
	case '{':
		return parse_object(ps, out);
	case '[':
		return parse_array(ps, out);
	case '"':
		if ((v = new_node(ps, FX_JSON_STRING)) == NULL)
			return node_fail(ps);
		if ((err = parse_string(ps, &v->str, &v->len)) != FX_OK)
			return err;
		*out = v;
		return FX_OK;
	case 't':
	case 'f':
	case 'n': {
		fx_json_type t;
		if (literal(ps, "true"))
			t = FX_JSON_TRUE;
		else if (literal(ps, "false"))
			t = FX_JSON_FALSE;
		else if (literal(ps, "null"))
			t = FX_JSON_NULL;
		else
			return fail(ps, FX_EFORMAT, "invalid literal");
		if ((v = new_node(ps, t)) == NULL)
			return node_fail(ps);
		*out = v;
		return FX_OK;
	}
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return parse_number(ps, out);
		{
			char m[64];
			snprintf(m, sizeof(m), "unexpected byte 0x%02x",
			         *ps->p);
			return fail(ps, FX_EFORMAT, m);
		}
	}
}

fx_err fx_json_parse(const char *text, size_t len, const fx_json_limits *lim,
                     fx_json_doc **out, fx_diag *diag)
{
	parser ps;
	const fx_json *root = NULL;
	fx_err err;

	memset(&ps, 0, sizeof(ps));
	if (lim != NULL)
		ps.lim = *lim;
	if (ps.lim.max_size == 0)
		ps.lim.max_size = FX_JSON_MAX_SIZE;
	if (ps.lim.max_depth <= 0)
		ps.lim.max_depth = FX_JSON_MAX_DEPTH;
	/* The parser recurses once per level: keep the C stack safe. */
	if (ps.lim.max_depth > FX_JSON_MAX_DEPTH_HARD)
		ps.lim.max_depth = FX_JSON_MAX_DEPTH_HARD;
	if (ps.lim.max_nodes == 0)
		ps.lim.max_nodes = FX_JSON_MAX_NODES;
	if (ps.lim.max_string == 0)
		ps.lim.max_string = FX_JSON_MAX_STRING;
	if (ps.lim.max_number == 0)
		ps.lim.max_number = FX_JSON_MAX_NUMBER;
	ps.diag = diag;
	if (text == NULL && len > 0)
		return fx_diag_set(diag, FX_EINVAL, "NULL JSON text");
	if (text == NULL)
		text = ""; /* no arithmetic on a null pointer below */
	if (len > ps.lim.max_size)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "JSON document of %zu bytes exceeds the "
		                   "limit of %zu",
		                   len, ps.lim.max_size);
	ps.start = ps.p = (const unsigned char *)text;
	ps.end = ps.start + len;
	ps.doc = calloc(1, sizeof(*ps.doc));
	if (ps.doc == NULL)
		return oom(&ps);
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		err = fail(&ps, FX_EFORMAT, "byte-order mark before JSON");
		goto out;
	}
	if ((err = parse_value(&ps, &root)) != FX_OK)
		goto out;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		err = fail(&ps, FX_EFORMAT, "unexpected data after the value");
		goto out;
	}
	ps.doc->root = root;
	*out = ps.doc;
	ps.doc = NULL;
out:
	fx_json_doc_free(ps.doc);
	free(ps.items);
	free(ps.members);
	free(ps.sbuf);
	return err;
}

/* ---- access --------------------------------------------------------- */

const char *fx_json_type_name(fx_json_type t)
{
	switch (t) {
	case FX_JSON_NULL:
		return "null";
	case FX_JSON_FALSE:
		return "false";
	case FX_JSON_TRUE:
		return "true";
	case FX_JSON_NUMBER:
		return "number";
	case FX_JSON_STRING:
		return "string";
	case FX_JSON_ARRAY:
		return "array";
	case FX_JSON_OBJECT:
		return "object";
	}
	return "unknown";
}

static int key_cmp(const void *k, const void *m)
{
	return strcmp((const char *)k,
	              (*(const fx_json_member *const *)m)->key);
}

const fx_json *fx_json_get(const fx_json *v, const char *key)
{
	const fx_json_member *const *m;

	if (v == NULL || v->type != FX_JSON_OBJECT || v->len == 0)
		return NULL;
	m = bsearch(key, v->by_key, v->len, sizeof(*v->by_key), key_cmp);
	return m ? (*m)->value : NULL;
}

static fx_err wrong_type(const fx_json *v, const char *want, fx_diag *diag)
{
	return fx_diag_set(diag, FX_EFORMAT, "expected %s, found %s", want,
	                   v ? fx_json_type_name(v->type) : "nothing");
}

fx_err fx_json_int64(const fx_json *v, int64_t *out, fx_diag *diag)
{
	const char *s;
	bool neg;
	uint64_t mag = 0, lim;

	if (v == NULL || v->type != FX_JSON_NUMBER)
		return wrong_type(v, "an integer", diag);
	s = v->str;
	neg = *s == '-';
	if (neg)
		s++;
	if (strspn(s, "0123456789") != strlen(s))
		return fx_diag_set(diag, FX_EFORMAT,
		                   "%s is not an integer (fraction or "
		                   "exponent)",
		                   v->str);
	/* Magnitude limit: 2^63 for negatives, 2^63 - 1 otherwise. */
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (mag > (lim - d) / 10)
			return fx_diag_set(diag, FX_ETOOBIG,
			                   "integer %s out of 64-bit range",
			                   v->str);
		mag = mag * 10 + d;
	}
	if (neg)
		*out =
		    mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		*out = (int64_t)mag;
	return FX_OK;
}

/* strtod honours LC_NUMERIC; JSON's '.' must not depend on it. strtod_l
 * with a "C" locale object would do, but a number's text is at most
 * max_number characters, so rewriting '.' to the current decimal point is
 * simpler and portable. */
fx_err fx_json_double(const fx_json *v, double *out, fx_diag *diag)
{
	char buf[FX_JSON_MAX_NUMBER * 4 + 8];
	const char *dp = localeconv()->decimal_point;
	size_t j = 0, dpl = strlen(dp);
	char *end;
	double d;

	if (v == NULL || v->type != FX_JSON_NUMBER)
		return wrong_type(v, "a number", diag);
	if (v->len + dpl >= sizeof(buf))
		return fx_diag_set(diag, FX_ETOOBIG, "number %s too long",
		                   v->str);
	for (size_t i = 0; i < v->len; i++) {
		if (v->str[i] == '.') {
			memcpy(buf + j, dp, dpl);
			j += dpl;
		} else {
			buf[j++] = v->str[i];
		}
	}
	buf[j] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (*end != '\0')
		return fx_diag_set(diag, FX_EFORMAT, "cannot read number %s",
		                   v->str);
	if (isinf(d))
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "number %s overflows a double", v->str);
	*out = d;
	return FX_OK;
}

fx_err fx_json_bool(const fx_json *v, bool *out, fx_diag *diag)
{
	if (v == NULL || (v->type != FX_JSON_TRUE && v->type != FX_JSON_FALSE))
		return wrong_type(v, "true or false", diag);
	*out = v->type == FX_JSON_TRUE;
	return FX_OK;
}

fx_err fx_json_string(const fx_json *v, const char **out, size_t *len,
                      fx_diag *diag)
{
	if (v == NULL || v->type != FX_JSON_STRING)
		return wrong_type(v, "a string", diag);
	*out = v->str;
	if (len != NULL)
		*len = v->len;
	return FX_OK;
}

static fx_err member(const fx_json *obj, const char *key, const fx_json **v,
                     fx_diag *diag)
{
	if (obj == NULL || obj->type != FX_JSON_OBJECT)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "looking up \"%s\": expected an object, "
		    "found %s",
		    key, obj ? fx_json_type_name(obj->type) : "nothing");
	*v = fx_json_get(obj, key);
	if (*v == NULL)
		return fx_diag_set(diag, FX_ENOTFOUND, "missing key \"%s\"",
		                   key);
	return FX_OK;
}

#define GETTER(name, conv, type)                                               \
	fx_err name(const fx_json *obj, const char *key, type *out,            \
	            fx_diag *diag)                                             \
	{                                                                      \
		const fx_json *v = NULL;                                       \
		fx_err err = member(obj, key, &v, diag);                       \
		if (err == FX_OK && (err = conv(v, out, diag)) != FX_OK)       \
			fx_diag_prefix(diag, "key \"%s\"", key);               \
		return err;                                                    \
	}

GETTER(fx_json_get_int64, fx_json_int64, int64_t)
GETTER(fx_json_get_double, fx_json_double, double)
GETTER(fx_json_get_bool, fx_json_bool, bool)

fx_err fx_json_get_string(const fx_json *obj, const char *key, const char **out,
                          size_t *len, fx_diag *diag)
{
	const fx_json *v = NULL;
	fx_err err = member(obj, key, &v, diag);

	if (err == FX_OK && (err = fx_json_string(v, out, len, diag)) != FX_OK)
		fx_diag_prefix(diag, "key \"%s\"", key);
	return err;
}

static fx_err get_typed(const fx_json *obj, const char *key, fx_json_type t,
                        const fx_json **out, fx_diag *diag)
{
	const fx_json *v = NULL;
	fx_err err = member(obj, key, &v, diag);

	if (err != FX_OK)
		return err;
	if (v->type != t)
		return fx_diag_set(
		    diag, FX_EFORMAT, "key \"%s\": expected %s, found %s", key,
		    t == FX_JSON_ARRAY ? "an array" : "an object",
		    fx_json_type_name(v->type));
	*out = v;
	return FX_OK;
}

fx_err fx_json_get_array(const fx_json *obj, const char *key,
                         const fx_json **out, fx_diag *diag)
{
	return get_typed(obj, key, FX_JSON_ARRAY, out, diag);
}

fx_err fx_json_get_object(const fx_json *obj, const char *key,
                          const fx_json **out, fx_diag *diag)
{
	return get_typed(obj, key, FX_JSON_OBJECT, out, diag);
}

fx_err fx_json_only_keys(const fx_json *obj, const char *const *allowed,
                         size_t n, fx_diag *diag)
{
	if (obj == NULL || obj->type != FX_JSON_OBJECT)
		return wrong_type(obj, "an object", diag);
	for (size_t i = 0; i < obj->len; i++) {
		size_t j;
		for (j = 0; j < n; j++)
			if (strcmp(obj->members[i].key, allowed[j]) == 0)
				break;
		if (j == n)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "unknown field \"%.200s\"",
			                   obj->members[i].key);
	}
	return FX_OK;
}
