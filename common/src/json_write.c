/* The JSON writer: a bounded growing buffer with sticky errors, automatic
 * commas, nesting checks, string escaping and shortest round-trip numbers.
 * Shared by safetensors headers, config files, tokenizer.json and the HTTP
 * API so that every JSON flexo emits is valid and parses back strictly. */
#include "flexo/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_utf8.h"

void fx_jw_init(fx_json_writer *w, size_t max, bool pretty)
{
	memset(w, 0, sizeof(*w));
	w->max = max ? max : FX_JSON_MAX_WRITE;
	w->pretty = pretty;
}

void fx_jw_release(fx_json_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

__attribute__((format(printf, 3, 4))) static void
set_err(fx_json_writer *w, fx_err err, const char *fmt, ...)
{
	va_list ap;

	if (w->err != FX_OK)
		return;
	w->err = err;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
}

static void put(fx_json_writer *w, const void *s, size_t n)
{
	if (w->err != FX_OK)
		return;
	if (n > w->max - w->len) {
		set_err(w, FX_ETOOBIG, "JSON output exceeds %zu bytes", w->max);
		return;
	}
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		char *nb;
		while (cap < w->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		nb = realloc(w->buf, cap);
		if (nb == NULL) {
			set_err(w, FX_ENOMEM, "out of memory writing JSON");
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void puts_(fx_json_writer *w, const char *s)
{
	put(w, s, strlen(s));
}

static void newline_indent(fx_json_writer *w, int depth)
{
	static const char spaces[] = "                                ";

	put(w, "\n", 1);
	for (int i = 0; i < depth; i++)
		put(w, spaces, 2);
}

/* Writes the separator a new value or key needs; checks it is allowed. */
static bool begin_item(fx_json_writer *w, bool is_key)
{
	if (w->err != FX_OK)
		return false;
	if (w->depth == 0) {
		if (w->done || is_key) {
			set_err(w, FX_ESTATE,
			        is_key ? "key outside an object"
			               : "second top-level value");
			return false;
		}
		return true;
	}
	if (w->in_object[w->depth] && !is_key && !w->want_value) {
		set_err(w, FX_ESTATE, "value where an object key is due");
		return false;
	}
	if (is_key && (!w->in_object[w->depth] || w->want_value)) {
		set_err(w, FX_ESTATE,
		        w->want_value ? "key where a value is due"
		                      : "key inside an array");
		return false;
	}
	if (w->want_value)
		return true; /* the value after "key": */
	if (w->has_items[w->depth])
		put(w, ",", 1);
	if (w->pretty)
		newline_indent(w, w->depth);
	return true;
}

static void end_item(fx_json_writer *w)
{
	w->want_value = false;
	if (w->depth == 0)
		w->done = true;
	else
		w->has_items[w->depth] = true;
}

static void open_(fx_json_writer *w, bool object)
{
	if (!begin_item(w, false))
		return;
	if (w->depth >= FX_JSON_MAX_DEPTH) {
		set_err(w, FX_ETOOBIG, "JSON nesting deeper than %d",
		        FX_JSON_MAX_DEPTH);
		return;
	}
	put(w, object ? "{" : "[", 1);
	w->want_value = false;
	w->depth++;
	w->in_object[w->depth] = object;
	w->has_items[w->depth] = false;
}

static void close_(fx_json_writer *w, bool object)
{
	if (w->err != FX_OK)
		return;
	if (w->depth == 0 || w->in_object[w->depth] != object ||
	    w->want_value) {
		set_err(w, FX_ESTATE, "unbalanced %s end",
		        object ? "object" : "array");
		return;
	}
	if (w->pretty && w->has_items[w->depth])
		newline_indent(w, w->depth - 1);
	put(w, object ? "}" : "]", 1);
	w->depth--;
	end_item(w);
}

void fx_jw_object_begin(fx_json_writer *w)
{
	open_(w, true);
}

void fx_jw_object_end(fx_json_writer *w)
{
	close_(w, true);
}

void fx_jw_array_begin(fx_json_writer *w)
{
	open_(w, false);
}

void fx_jw_array_end(fx_json_writer *w)
{
	close_(w, false);
}

/* Quoted, escaped string. lossy: invalid UTF-8 bytes become U+FFFD. */
static void put_string(fx_json_writer *w, const char *str, size_t len,
                       bool lossy)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	if (s == NULL && len > 0) {
		set_err(w, FX_EINVAL, "NULL string");
		return;
	}
	put(w, "\"", 1);
	/* Copy runs of plain bytes in one put; escape the rest. */
	while (i < len && w->err == FX_OK) {
		unsigned c = s[i];
		size_t k;
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		put(w, s + i - run, run);
		run = 0;
		if (c >= 0x80) {
			k = fx_utf8_valid_seq(s + i, len - i);
			if (k > 0) {
				put(w, s + i, k);
				i += k;
			} else if (lossy) {
				put(w, "\xEF\xBF\xBD", 3);
				i++;
			} else {
				set_err(w, FX_EINVAL,
				        "invalid UTF-8 at byte %zu of a string",
				        i);
			}
			continue;
		}
		switch (c) {
		case '"':
			puts_(w, "\\\"");
			break;
		case '\\':
			puts_(w, "\\\\");
			break;
		case '\n':
			puts_(w, "\\n");
			break;
		case '\r':
			puts_(w, "\\r");
			break;
		case '\t':
			puts_(w, "\\t");
			break;
		case '\b':
			puts_(w, "\\b");
			break;
		case '\f':
			puts_(w, "\\f");
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			puts_(w, esc);
		}
		i++;
	}
	put(w, s + i - run, run);
	put(w, "\"", 1);
}

void fx_jw_key(fx_json_writer *w, const char *key)
{
	if (key == NULL) {
		set_err(w, FX_EINVAL, "NULL key");
		return;
	}
	if (!begin_item(w, true))
		return;
	put_string(w, key, strlen(key), false);
	put(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
	w->want_value = true;
}

void fx_jw_string_n(fx_json_writer *w, const char *s, size_t len)
{
	if (!begin_item(w, false))
		return;
	put_string(w, s, len, false);
	end_item(w);
}

void fx_jw_string(fx_json_writer *w, const char *s)
{
	if (s == NULL) {
		set_err(w, FX_EINVAL, "NULL string");
		return;
	}
	fx_jw_string_n(w, s, strlen(s));
}

void fx_jw_string_lossy(fx_json_writer *w, const char *s, size_t len)
{
	if (!begin_item(w, false))
		return;
	put_string(w, s, len, true);
	end_item(w);
}

static void scalar(fx_json_writer *w, const char *text)
{
	if (!begin_item(w, false))
		return;
	puts_(w, text);
	end_item(w);
}

void fx_jw_int64(fx_json_writer *w, int64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%" PRId64, v);
	scalar(w, b);
}

void fx_jw_uint64(fx_json_writer *w, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	scalar(w, b);
}

/* printf follows LC_NUMERIC; JSON wants '.'. */
static void fix_decimal_point(char *b)
{
	for (; *b; b++)
		if (*b == ',')
			*b = '.';
}

void fx_jw_double(fx_json_writer *w, double v)
{
	char b[40];

	if (!isfinite(v)) {
		set_err(w, FX_ENUMERIC, "NaN or infinity is not JSON");
		return;
	}
	/* The shortest %g precision that reads back exactly. */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof(b), "%.*g", prec, v);
		if (strtod(b, NULL) == v)
			break;
	}
	fix_decimal_point(b);
	scalar(w, b);
}

void fx_jw_float(fx_json_writer *w, float v)
{
	char b[40];

	if (!isfinite(v)) {
		set_err(w, FX_ENUMERIC, "NaN or infinity is not JSON");
		return;
	}
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(b, sizeof(b), "%.*g", prec, (double)v);
		if (strtof(b, NULL) == v)
			break;
	}
	fix_decimal_point(b);
	scalar(w, b);
}

void fx_jw_bool(fx_json_writer *w, bool v)
{
	scalar(w, v ? "true" : "false");
}

void fx_jw_null(fx_json_writer *w)
{
	scalar(w, "null");
}

fx_err fx_jw_finish(fx_json_writer *w, char **out, size_t *len, fx_diag *diag)
{
	if (w->err == FX_OK && (!w->done || w->depth != 0))
		set_err(w, FX_ESTATE, "JSON document incomplete");
	if (w->err != FX_OK)
		return fx_diag_set(diag, w->err, "writing JSON: %s", w->msg);
	*out = w->buf;
	*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return FX_OK;
}
