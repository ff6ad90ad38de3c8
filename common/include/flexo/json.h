/* Strict RFC 8259 JSON: a parser into a read-only tree (for headers, config
 * files and API requests that come from outside, so everything is bounded and
 * ambiguity is refused) and a small writer shared by every JSON producer.
 * See docs/json.md for why flexo has its own. */
#ifndef FLEXO_JSON_H
#define FLEXO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

/* Default bounds (fx_json_limits zero fields take these). */
#define FX_JSON_MAX_SIZE       (16u << 20) /* whole document, bytes */
#define FX_JSON_MAX_DEPTH      64          /* nested arrays/objects */
#define FX_JSON_MAX_DEPTH_HARD 1024        /* larger max_depth is clamped */
#define FX_JSON_MAX_NODES      (1u << 20)  /* values in the document */
#define FX_JSON_MAX_STRING     (1u << 20)  /* one decoded string, bytes */
#define FX_JSON_MAX_NUMBER     64          /* characters of one number */
#define FX_JSON_MAX_WRITE      (64u << 20) /* default writer output bound */

typedef struct fx_json_limits {
	size_t max_size;
	int max_depth;
	size_t max_nodes;
	size_t max_string;
	size_t max_number;
} fx_json_limits;

typedef enum fx_json_type {
	FX_JSON_NULL = 0,
	FX_JSON_FALSE,
	FX_JSON_TRUE,
	FX_JSON_NUMBER,
	FX_JSON_STRING,
	FX_JSON_ARRAY,
	FX_JSON_OBJECT,
} fx_json_type;

typedef struct fx_json fx_json;

typedef struct fx_json_member {
	const char *key; /* decoded, NUL-terminated, no embedded NUL */
	size_t key_len;
	const fx_json *value;
} fx_json_member;

/* A value. Every pointer in it points into the owning fx_json_doc and stays
 * valid until fx_json_doc_free. Read-only for callers. */
struct fx_json {
	fx_json_type type;
	/* STRING: decoded UTF-8, NUL-terminated, len bytes (no embedded NUL:
	 * the parser refuses \u0000). NUMBER: the number exactly as written
	 * (e.g. "-1.5e3"), NUL-terminated, len characters. */
	const char *str;
	size_t len; /* STRING/NUMBER: bytes of str; ARRAY/OBJECT: count */
	const fx_json *const *items;   /* ARRAY: len elements */
	const fx_json_member *members; /* OBJECT: len, in document order */
	const fx_json_member *const *by_key; /* OBJECT: sorted, for lookup */
};

/* A parsed document: one arena holding every node and string. */
typedef struct fx_json_doc fx_json_doc;

/* Parses exactly `len` bytes of `text` (NUL not needed) as one JSON value,
 * optionally surrounded by whitespace. Refuses: trailing commas, comments,
 * leading zeros, '+', NaN/Infinity, single quotes, unescaped control
 * characters, invalid UTF-8 (overlong, surrogates, > U+10FFFF), a byte-order
 * mark, bad escapes, unpaired surrogate escapes, \u0000, duplicate keys in an
 * object, anything after the value, and any bound of `lim` exceeded (NULL =
 * defaults; a zero field = its default). FX_EFORMAT for syntax, FX_ETOOBIG
 * for bounds; diag says what and where ("line 3, column 7: ..."). On success
 * *out owns the tree; free with fx_json_doc_free. */
fx_err fx_json_parse(const char *text, size_t len, const fx_json_limits *lim,
                     fx_json_doc **out, fx_diag *diag);
void fx_json_doc_free(fx_json_doc *doc);

/* The top-level value. */
const fx_json *fx_json_root(const fx_json_doc *doc);

/* Member `key` of an object; NULL if v is not an object or has no such key.
 * O(log n). */
const fx_json *fx_json_get(const fx_json *v, const char *key);

/* Name of a type ("object", "string", ...), for messages. */
const char *fx_json_type_name(fx_json_type t);

/* Typed conversions of a value. FX_EFORMAT (diag names the type found) on a
 * wrong type. */
/* Exact integer: only -?(0|[1-9][0-9]*) - no fraction, no exponent (even
 * "1.0" or "1e2") - and within int64 range, else FX_EFORMAT/FX_ETOOBIG. */
fx_err fx_json_int64(const fx_json *v, int64_t *out, fx_diag *diag);
/* Any number, to the nearest double; refuses values that overflow to
 * infinity. Parsed in the C locale's format, independent of setlocale. */
fx_err fx_json_double(const fx_json *v, double *out, fx_diag *diag);
fx_err fx_json_bool(const fx_json *v, bool *out, fx_diag *diag);
/* *out points into the document. len may be NULL. */
fx_err fx_json_string(const fx_json *v, const char **out, size_t *len,
                      fx_diag *diag);

/* Member lookups combined with the conversions: FX_ENOTFOUND (diag names
 * the key) if absent, or the conversion's error with the key named. */
fx_err fx_json_get_int64(const fx_json *obj, const char *key, int64_t *out,
                         fx_diag *diag);
fx_err fx_json_get_double(const fx_json *obj, const char *key, double *out,
                          fx_diag *diag);
fx_err fx_json_get_bool(const fx_json *obj, const char *key, bool *out,
                        fx_diag *diag);
fx_err fx_json_get_string(const fx_json *obj, const char *key, const char **out,
                          size_t *len, fx_diag *diag);

/* Member `key` that must be an array / an object: FX_ENOTFOUND if absent,
 * FX_EFORMAT naming the key and the type found otherwise. */
fx_err fx_json_get_array(const fx_json *obj, const char *key,
                         const fx_json **out, fx_diag *diag);
fx_err fx_json_get_object(const fx_json *obj, const char *key,
                          const fx_json **out, fx_diag *diag);

/* Refuses (FX_EFORMAT, naming it) the first member of obj whose key is not
 * one of allowed[0..n): for formats where an unknown field is an error. */
fx_err fx_json_only_keys(const fx_json *obj, const char *const *allowed,
                         size_t n, fx_diag *diag);

/* ---- Writer --------------------------------------------------------- */

/* Builds JSON text in a growing buffer bounded by `max` bytes. Errors are
 * sticky: calls after the first error do nothing, and fx_jw_finish reports
 * it, so producers can chain calls and check once. The writer inserts commas
 * and checks nesting (a value where a key is due is FX_ESTATE).
 *
 *     fx_json_writer w;
 *     fx_jw_init(&w, 0, false);
 *     fx_jw_object_begin(&w);
 *     fx_jw_key(&w, "dtype"); fx_jw_string(&w, "F32");
 *     fx_jw_object_end(&w);
 *     err = fx_jw_finish(&w, &text, &len, diag); // text is the caller's
 *     fx_jw_release(&w);
 */
typedef struct fx_json_writer {
	char *buf; /* owned; NUL-terminated while err == FX_OK */
	size_t len, cap, max;
	fx_err err;    /* first error, sticky */
	char msg[128]; /* what the first error was */
	bool pretty;   /* two-space indentation and newlines */
	int depth;
	bool in_object[FX_JSON_MAX_DEPTH + 1]; /* per level: object or array */
	bool has_items[FX_JSON_MAX_DEPTH + 1]; /* per level: comma needed */
	bool want_value; /* a key was written; its value must follow */
	bool done;       /* the top-level value is complete */
} fx_json_writer;

/* max = 0 means FX_JSON_MAX_WRITE. No allocation until the first write. */
void fx_jw_init(fx_json_writer *w, size_t max, bool pretty);
void fx_jw_release(fx_json_writer *w);

void fx_jw_object_begin(fx_json_writer *w);
void fx_jw_object_end(fx_json_writer *w);
void fx_jw_array_begin(fx_json_writer *w);
void fx_jw_array_end(fx_json_writer *w);
/* A key (NUL-terminated, valid UTF-8) inside an object. */
void fx_jw_key(fx_json_writer *w, const char *key);
/* Strings must be valid UTF-8, else the writer fails with FX_EINVAL;
 * control characters and NUL are escaped. */
void fx_jw_string(fx_json_writer *w, const char *s);
void fx_jw_string_n(fx_json_writer *w, const char *s, size_t len);
/* For arbitrary bytes (model output): each byte that is not part of valid
 * UTF-8 becomes U+FFFD instead of an error. */
void fx_jw_string_lossy(fx_json_writer *w, const char *s, size_t len);
void fx_jw_int64(fx_json_writer *w, int64_t v);
void fx_jw_uint64(fx_json_writer *w, uint64_t v);
/* Shortest text that reads back as the same double ("%.17g" at worst).
 * NaN and infinities are not JSON: FX_ENUMERIC. */
void fx_jw_double(fx_json_writer *w, double v);
/* Shortest text that reads back as the same float. */
void fx_jw_float(fx_json_writer *w, float v);
void fx_jw_bool(fx_json_writer *w, bool v);
void fx_jw_null(fx_json_writer *w);

/* Checks the document is complete (every container closed) and hands the
 * buffer to the caller: *out is malloc'd, NUL-terminated, *len bytes; the
 * caller frees it and the writer is left empty. Returns the sticky error
 * instead (message in diag) and leaves *out untouched. */
fx_err fx_jw_finish(fx_json_writer *w, char **out, size_t *len, fx_diag *diag);

#endif
