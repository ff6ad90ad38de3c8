/* JSON: RFC 8259 accept/reject tables (cases chosen from the RFC grammar and
 * RFC 3629's UTF-8 table, not from the parser), exact integer conversion,
 * bounds (depth bomb, huge number, node count), and writer round trips. */
#include "flexo/json.h"
#include "fx_test.h"

#include <float.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

static fx_err parse(const char *s, size_t n, fx_json_doc **doc, fx_diag *d)
{
	return fx_json_parse(s, n, NULL, doc, d);
}

/* Documents RFC 8259 allows. */
static const char *const accept[] = {
    "{}",
    "[]",
    "0",
    "-0",
    "1",
    "-1",
    "123456789",
    "0.5",
    "-0.5",
    "1e5",
    "1E5",
    "1e+5",
    "1e-5",
    "1.25e-3",
    "\"\"",
    "\"abc\"",
    "true",
    "false",
    "null",
    " \t\r\n{ } \n",
    "[1,2,3]",
    "[[[]]]",
    "{\"a\":{\"b\":[1,{}]}}",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\"",
    "\"\\uD83D\\uDE00\"",
    "\"\xC3\xA9\"",
    "\"\xE2\x82\xAC\"",
    "\"\xF0\x9F\x98\x80\"",
    "\"\xF4\x8F\xBF\xBF\"",
    "{\"a\":1,\"b\":2}",
    "{\"\":0}",
    "[true,false,null]",
    "{\"a\" : [ 1 , 2 ] }",
    "\"\xEF\xBF\xBF\"",
};

/* Documents it does not (or that flexo refuses deliberately: \u0000,
 * duplicate keys, byte-order mark). */
static const struct {
	const char *text;
	const char *why; /* substring the diagnostic must contain */
} reject[] = {
    {"", "end of input"},
    {"   ", "end of input"},
    {"[1,2,]", "trailing comma"},
    {"{\"a\":1,}", "trailing comma"},
    {"[,1]", "unexpected byte"},
    {"{,}", "string key"},
    {"01", "leading zero"},
    {"-01", "leading zero"},
    {"+1", "unexpected byte"},
    {".5", "unexpected byte"},
    {"1.", "digit after '.'"},
    {"1e", "exponent"},
    {"1e+", "exponent"},
    {"-", "expected a digit"},
    {"NaN", "unexpected byte"},
    {"Infinity", "unexpected byte"},
    {"tru", "invalid literal"},
    {"nul", "invalid literal"},
    {"True", "unexpected byte"},
    {"'a'", "unexpected byte"},
    {"\"abc", "unterminated string"},
    {"\"a\tb\"", "control character"},
    {"\"\\x\"", "invalid escape"},
    {"\"\\u12\"", "four hex digits"},
    {"\"\\u0000\"", "NUL"},
    {"\"\\uDE00\"", "low surrogate"},
    {"\"\\uD83D\"", "high surrogate"},
    {"\"\\uD83Dx\"", "high surrogate"},
    {"\"\\uD83D\\u0041\"", "high surrogate"},
    {"\"\x80\"", "UTF-8"},             /* lone continuation byte */
    {"\"\xC0\xAF\"", "UTF-8"},         /* overlong '/' */
    {"\"\xE0\x80\xAF\"", "UTF-8"},     /* overlong 3-byte */
    {"\"\xED\xA0\x80\"", "UTF-8"},     /* UTF-8-encoded surrogate */
    {"\"\xF4\x90\x80\x80\"", "UTF-8"}, /* above U+10FFFF */
    {"\"\xF5\x80\x80\x80\"", "UTF-8"},
    {"\"\xC3\"", "UTF-8"}, /* truncated sequence */
    {"\"\xFF\"", "UTF-8"},
    {"[1 2]", "',' or ']'"},
    {"{\"a\" 1}", "':'"},
    {"{\"a\":1 \"b\":2}", "',' or '}'"},
    {"{1:2}", "string key"},
    {"[1]]", "after the value"},
    {"{} {}", "after the value"},
    {"1 2", "after the value"},
    {"[1] // c", "after the value"},
    {"/* c */ 1", "unexpected byte"},
    {"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
    {"{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", "duplicate key \"b\""},
    {"\xEF\xBB\xBF{}", "byte-order mark"},
    {"[", "end of input"},
    {"{\"a\":", "end of input"},
};

static void test_accept(void)
{
	for (size_t i = 0; i < sizeof(accept) / sizeof(accept[0]); i++) {
		fx_json_doc *doc = NULL;
		fx_diag d = {{0}};
		fx_err err = parse(accept[i], strlen(accept[i]), &doc, &d);
		CHECK_MSG(err == FX_OK, "refused %s: %s", accept[i], d.msg);
		fx_json_doc_free(doc);
	}
}

static void test_reject(void)
{
	CHECK(sizeof(reject) / sizeof(reject[0]) >= 30);
	for (size_t i = 0; i < sizeof(reject) / sizeof(reject[0]); i++) {
		fx_json_doc *doc = NULL;
		fx_diag d = {{0}};
		fx_err err =
		    parse(reject[i].text, strlen(reject[i].text), &doc, &d);
		CHECK_MSG(err == FX_EFORMAT,
		          "accepted or wrong error for "
		          "case %zu (%s): %d",
		          i, reject[i].text, err);
		CHECK_MSG(strstr(d.msg, reject[i].why) != NULL,
		          "case %zu: message \"%s\" lacks \"%s\"", i, d.msg,
		          reject[i].why);
		CHECK(doc == NULL);
	}
}

static void test_embedded_nul_and_position(void)
{
	fx_json_doc *doc = NULL;
	fx_diag d;
	/* A NUL byte inside the input is data, not the end of the text. */
	CHECK(parse("[1,\0]", 5, &doc, &d) == FX_EFORMAT);
	CHECK(fx_json_parse(NULL, 0, NULL, &doc, &d) == FX_EFORMAT);
	CHECK(fx_json_parse(NULL, 1, NULL, &doc, &d) == FX_EINVAL);
	CHECK(parse("\"a\0b\"", 5, &doc, &d) == FX_EFORMAT);
	CHECK(strstr(d.msg, "control character 0x00") != NULL);
	/* Position is reported as line and column. */
	CHECK(parse("{\n  \"a\": 1,\n  \"b\": x\n}", 22, &doc, &d) ==
	      FX_EFORMAT);
	CHECK_MSG(strstr(d.msg, "line 3, column 8") != NULL, "%s", d.msg);
	CHECK(doc == NULL);
}

static void test_tree(void)
{
	const char *text = "{\"name\":\"caf\\u00e9 \\uD83D\\uDE00\","
	                   "\"n\":-42,\"list\":[1,2.5,true,null],"
	                   "\"nested\":{\"k\":\"v\"}}";
	fx_json_doc *doc = NULL;
	const fx_json *root, *list;
	const char *s;
	size_t n;
	int64_t i;
	double x;
	bool b;
	fx_diag d;

	CHECK_OK(parse(text, strlen(text), &doc, &d));
	if (doc == NULL)
		return;
	root = fx_json_root(doc);
	CHECK(root->type == FX_JSON_OBJECT && root->len == 4);
	/* Document order is kept. */
	CHECK(strcmp(root->members[0].key, "name") == 0);
	CHECK(strcmp(root->members[3].key, "nested") == 0);
	CHECK_OK(fx_json_get_string(root, "name", &s, &n, &d));
	CHECK(n == 10 && memcmp(s, "caf\xC3\xA9 \xF0\x9F\x98\x80", 10) == 0);
	CHECK_OK(fx_json_get_int64(root, "n", &i, &d));
	CHECK(i == -42);
	list = fx_json_get(root, "list");
	CHECK(list != NULL && list->type == FX_JSON_ARRAY && list->len == 4);
	if (list != NULL && list->len == 4) {
		CHECK_OK(fx_json_double(list->items[1], &x, &d));
		CHECK(x == 2.5);
		CHECK(fx_json_int64(list->items[1], &i, &d) == FX_EFORMAT);
		CHECK(strstr(d.msg, "2.5") != NULL);
		CHECK_OK(fx_json_bool(list->items[2], &b, &d));
		CHECK(b);
		CHECK(list->items[3]->type == FX_JSON_NULL);
	}
	CHECK(fx_json_get(fx_json_get(root, "nested"), "k") != NULL);
	{
		const fx_json *a = NULL, *o = NULL;
		CHECK_OK(fx_json_get_array(root, "list", &a, &d));
		CHECK(a == list);
		CHECK_OK(fx_json_get_object(root, "nested", &o, &d));
		CHECK(o != NULL && o->type == FX_JSON_OBJECT);
		CHECK(fx_json_get_object(root, "list", &o, &d) == FX_EFORMAT);
		CHECK(strstr(d.msg, "key \"list\": expected an object, "
		                    "found array") != NULL);
		CHECK(fx_json_get_array(root, "zzz", &a, &d) == FX_ENOTFOUND);
		CHECK(fx_json_get_array(list, "x", &a, &d) == FX_EFORMAT);
	}
	CHECK(fx_json_get(root, "absent") == NULL);
	CHECK(fx_json_get_int64(root, "absent", &i, &d) == FX_ENOTFOUND);
	CHECK(strstr(d.msg, "absent") != NULL);
	CHECK(fx_json_get_int64(root, "name", &i, &d) == FX_EFORMAT);
	CHECK(strstr(d.msg, "\"name\"") != NULL &&
	      strstr(d.msg, "string") != NULL);
	{
		const char *ok[] = {"name", "n", "list", "nested"};
		const char *few[] = {"name", "n", "nested"};
		CHECK_OK(fx_json_only_keys(root, ok, 4, &d));
		CHECK(fx_json_only_keys(root, few, 3, &d) == FX_EFORMAT);
		CHECK(strstr(d.msg, "unknown field \"list\"") != NULL);
	}
	fx_json_doc_free(doc);
}

/* One number parsed and converted with fx_json_int64. */
static fx_err int_of(const char *text, int64_t *out, fx_diag *d)
{
	fx_json_doc *doc = NULL;
	fx_err err = parse(text, strlen(text), &doc, d);
	if (err == FX_OK)
		err = fx_json_int64(fx_json_root(doc), out, d);
	fx_json_doc_free(doc);
	return err;
}

static void test_int64(void)
{
	int64_t v = 0;
	fx_diag d;

	CHECK(int_of("9223372036854775807", &v, &d) == FX_OK && v == INT64_MAX);
	CHECK(int_of("-9223372036854775808", &v, &d) == FX_OK &&
	      v == INT64_MIN);
	CHECK(int_of("0", &v, &d) == FX_OK && v == 0);
	CHECK(int_of("-0", &v, &d) == FX_OK && v == 0);
	CHECK(int_of("9223372036854775808", &v, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "64-bit range") != NULL);
	CHECK(int_of("-9223372036854775809", &v, &d) == FX_ETOOBIG);
	CHECK(int_of("18446744073709551616", &v, &d) == FX_ETOOBIG);
	CHECK(int_of("100000000000000000000000000000", &v, &d) == FX_ETOOBIG);
	CHECK(int_of("1.0", &v, &d) == FX_EFORMAT);
	CHECK(int_of("1e2", &v, &d) == FX_EFORMAT);
	CHECK(int_of("\"1\"", &v, &d) == FX_EFORMAT);
	CHECK(strstr(d.msg, "found string") != NULL);
}

static void test_bounds(void)
{
	fx_json_limits lim = {0};
	fx_json_doc *doc = NULL;
	fx_diag d;
	char *bomb;
	size_t n = 100000;
	double x;

	/* Depth bomb: 100k nested arrays must fail at the bound, not blow
	 * the stack. */
	bomb = malloc(2 * n);
	if (bomb == NULL)
		return;
	memset(bomb, '[', n);
	memset(bomb + n, ']', n);
	CHECK(parse(bomb, 2 * n, &doc, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "nesting deeper than 64") != NULL);
	/* Exactly at the bound is fine. */
	CHECK_OK(parse(bomb + n - FX_JSON_MAX_DEPTH, 2 * FX_JSON_MAX_DEPTH,
	               &doc, &d));
	fx_json_doc_free(doc);
	doc = NULL;
	CHECK(parse(bomb + n - FX_JSON_MAX_DEPTH - 1, 2 * FX_JSON_MAX_DEPTH + 2,
	            &doc, &d) == FX_ETOOBIG);

	/* Huge number: a 1000-digit literal is refused by length. */
	memset(bomb, '9', 1000);
	CHECK(parse(bomb, 1000, &doc, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "number longer than") != NULL);
	/* 1e400 is short but overflows a double. */
	CHECK_OK(parse("1e400", 5, &doc, &d));
	if (doc != NULL) {
		CHECK(fx_json_double(fx_json_root(doc), &x, &d) == FX_ETOOBIG);
		fx_json_doc_free(doc);
		doc = NULL;
	}

	/* Document size and node count bounds. */
	lim.max_size = 10;
	CHECK(fx_json_parse("[1,2,3,4,5]", 11, &lim, &doc, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "limit of 10") != NULL);
	lim.max_size = 0;
	lim.max_nodes = 3;
	CHECK(fx_json_parse("[1,2,3]", 7, &lim, &doc, &d) == FX_ETOOBIG);
	CHECK(strstr(d.msg, "more than 3 values") != NULL);
	lim.max_nodes = 4;
	CHECK_OK(fx_json_parse("[1,2,3]", 7, &lim, &doc, &d));
	fx_json_doc_free(doc);
	doc = NULL;
	lim.max_nodes = 0;
	lim.max_string = 3;
	CHECK(fx_json_parse("\"abcd\"", 6, &lim, &doc, &d) == FX_ETOOBIG);
	CHECK_OK(fx_json_parse("\"abc\"", 5, &lim, &doc, &d));
	fx_json_doc_free(doc);
	free(bomb);
}

static void test_many_keys(void)
{
	/* Large object: sorted index finds every key, duplicate found among
	 * thousands. */
	fx_json_writer w;
	fx_json_doc *doc = NULL;
	char *text = NULL, key[32];
	size_t len;
	int64_t v;
	fx_diag d;
	int bad = 0;

	fx_jw_init(&w, 0, false);
	fx_jw_object_begin(&w);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", (i * 7919) % 5000);
		fx_jw_key(&w, key);
		fx_jw_int64(&w, i);
	}
	fx_jw_object_end(&w);
	CHECK_OK(fx_jw_finish(&w, &text, &len, &d));
	fx_jw_release(&w);
	if (text == NULL)
		return;
	CHECK_OK(parse(text, len, &doc, &d));
	for (int i = 0; doc != NULL && i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", (i * 7919) % 5000);
		if (fx_json_get_int64(fx_json_root(doc), key, &v, &d) !=
		        FX_OK ||
		    v != i)
			bad++;
	}
	CHECK(bad == 0);
	fx_json_doc_free(doc);
	doc = NULL;
	/* Turn the last key into a duplicate of the first. */
	{
		char *last = strstr(text, "\"k4999\"");
		char *first = strstr(text, "\"k0\"");
		CHECK(last != NULL && first != NULL);
		if (last != NULL && first != NULL) {
			memcpy(last, "\"k0\"   ", 7);
			/* keep it valid: "k0"   :... */
			CHECK(parse(text, len, &doc, &d) == FX_EFORMAT);
			CHECK(strstr(d.msg, "duplicate key \"k0\"") != NULL);
		}
	}
	free(text);
}

static void test_writer_roundtrip(void)
{
	static const double doubles[] = {
	    0.0,       -0.0,    1.0,     0.1,      1.0 / 3.0,  1e300,
	    -2.5e-308, DBL_MAX, DBL_MIN, 4.9e-324, 123456789.0};
	static const float floats[] = {0.1f,   1.0f / 3.0f, FLT_MAX,    FLT_MIN,
	                               1e-45f, 3.14159274f, 16777216.0f};
	const char weird[] = "q\"b\\s/\n\r\t\b\f\x01\x1f caf\xC3\xA9 "
	                     "\xF0\x9F\x98\x80";
	fx_json_writer w;
	fx_json_doc *doc = NULL;
	const fx_json *root, *arr;
	char *text = NULL;
	size_t len, n;
	const char *s;
	fx_diag d;

	fx_jw_init(&w, 0, true);
	fx_jw_object_begin(&w);
	fx_jw_key(&w, weird);
	fx_jw_string(&w, weird);
	fx_jw_key(&w, "ints");
	fx_jw_array_begin(&w);
	fx_jw_int64(&w, INT64_MIN);
	fx_jw_int64(&w, INT64_MAX);
	fx_jw_uint64(&w, UINT64_MAX);
	fx_jw_array_end(&w);
	fx_jw_key(&w, "doubles");
	fx_jw_array_begin(&w);
	for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++)
		fx_jw_double(&w, doubles[i]);
	fx_jw_array_end(&w);
	fx_jw_key(&w, "floats");
	fx_jw_array_begin(&w);
	for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++)
		fx_jw_float(&w, floats[i]);
	fx_jw_array_end(&w);
	fx_jw_key(&w, "empty");
	fx_jw_object_begin(&w);
	fx_jw_object_end(&w);
	fx_jw_key(&w, "lossy");
	fx_jw_string_lossy(&w, "a\xFF\xC3z", 4);
	fx_jw_key(&w, "nul");
	fx_jw_string_n(&w, "a\0b", 3);
	fx_jw_object_end(&w);
	CHECK_OK(fx_jw_finish(&w, &text, &len, &d));
	fx_jw_release(&w);
	if (text == NULL)
		return;
	/* NUL was escaped as \u0000 (valid JSON for others) - which our own
	 * parser refuses, so check the text and drop that member. */
	CHECK(strstr(text, "\"a\\u0000b\"") != NULL);
	CHECK(strstr(text, "\\u0001\\u001f") != NULL);
	{
		char *nul = strstr(text, ",\n  \"nul\"");
		CHECK(nul != NULL);
		if (nul != NULL) {
			strcpy(nul, "\n}");
			len = strlen(text);
		}
	}
	CHECK_OK(parse(text, len, &doc, &d));
	if (doc == NULL) {
		fprintf(stderr, "%s\n%s\n", d.msg, text);
		free(text);
		return;
	}
	root = fx_json_root(doc);
	CHECK_OK(fx_json_get_string(root, weird, &s, &n, &d));
	CHECK(n == strlen(weird) && memcmp(s, weird, n) == 0);
	arr = fx_json_get(root, "ints");
	if (arr != NULL && arr->len == 3) {
		int64_t v;
		CHECK(fx_json_int64(arr->items[0], &v, &d) == FX_OK &&
		      v == INT64_MIN);
		CHECK(fx_json_int64(arr->items[1], &v, &d) == FX_OK &&
		      v == INT64_MAX);
		CHECK(strcmp(arr->items[2]->str, "18446744073709551615") == 0);
	} else {
		CHECK(0);
	}
	arr = fx_json_get(root, "doubles");
	CHECK(arr != NULL && arr->len == sizeof(doubles) / sizeof(doubles[0]));
	for (size_t i = 0; arr != NULL && i < arr->len; i++) {
		double v = 1;
		CHECK_OK(fx_json_double(arr->items[i], &v, &d));
		CHECK_MSG(memcmp(&v, &doubles[i], sizeof(v)) == 0,
		          "%.17g wrote %s", doubles[i], arr->items[i]->str);
	}
	arr = fx_json_get(root, "floats");
	for (size_t i = 0; arr != NULL && i < arr->len; i++) {
		float f = strtof(arr->items[i]->str, NULL);
		CHECK_MSG(f == floats[i], "%.9g wrote %s", (double)floats[i],
		          arr->items[i]->str);
	}
	/* Shortest form: 0.1f is written as 0.1, not 0.100000001. */
	CHECK(arr != NULL && strcmp(arr->items[0]->str, "0.1") == 0);
	CHECK_OK(fx_json_get_string(root, "lossy", &s, &n, &d));
	CHECK(n == 8 && memcmp(s, "a\xEF\xBF\xBD\xEF\xBF\xBDz", 8) == 0);
	fx_json_doc_free(doc);
	free(text);
}

static void test_writer_errors(void)
{
	fx_json_writer w;
	char *text = (char *)"untouched";
	size_t len = 0;
	fx_diag d;

	fx_jw_init(&w, 0, false);
	fx_jw_object_begin(&w);
	fx_jw_int64(&w, 1); /* value where a key is due */
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_ESTATE);
	CHECK(strstr(d.msg, "key is due") != NULL);
	CHECK(strcmp(text, "untouched") == 0);
	fx_jw_release(&w);

	fx_jw_init(&w, 0, false);
	fx_jw_array_begin(&w);
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_ESTATE);
	fx_jw_release(&w);

	fx_jw_init(&w, 0, false);
	fx_jw_string(&w, "bad \xC0\xAF utf8");
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "UTF-8") != NULL);
	fx_jw_release(&w);

	fx_jw_init(&w, 0, false);
	fx_jw_array_begin(&w);
	fx_jw_double(&w, NAN);
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_ENUMERIC);
	fx_jw_release(&w);

	fx_jw_init(&w, 16, false);
	fx_jw_string(&w, "this is longer than sixteen bytes");
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_ETOOBIG);
	fx_jw_release(&w);

	fx_jw_init(&w, 0, false);
	fx_jw_int64(&w, 1);
	fx_jw_int64(&w, 2);
	CHECK(fx_jw_finish(&w, &text, &len, &d) == FX_ESTATE);
	CHECK(strstr(d.msg, "second top-level") != NULL);
	fx_jw_release(&w);

	/* Compact output is exactly as expected. */
	fx_jw_init(&w, 0, false);
	fx_jw_object_begin(&w);
	fx_jw_key(&w, "a");
	fx_jw_array_begin(&w);
	fx_jw_int64(&w, 1);
	fx_jw_bool(&w, false);
	fx_jw_null(&w);
	fx_jw_array_end(&w);
	fx_jw_key(&w, "b");
	fx_jw_string(&w, "x");
	fx_jw_object_end(&w);
	CHECK_OK(fx_jw_finish(&w, &text, &len, &d));
	CHECK(strcmp(text, "{\"a\":[1,false,null],\"b\":\"x\"}") == 0);
	CHECK(len == strlen(text));
	free(text);
	fx_jw_release(&w);
}

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* Every proper prefix of a document is refused; random byte changes are
 * refused with a message or accepted, never a crash (ASan build). */
static void test_mutations(void)
{
	const char *good = "{\"a\":[1,-2.5e3,true,null,\"x\\u00e9\\n\"],"
	                   "\"b\":{\"c\":\"\xC3\xA9\"},\"d\":false}";
	size_t len = strlen(good);
	char buf[128];
	uint32_t seed = 99;
	int bad = 0;
	fx_diag d;

	for (size_t n = 0; n < len; n++) {
		fx_json_doc *doc = NULL;
		memcpy(buf, good, n);
		d.msg[0] = '\0';
		if (fx_json_parse(buf, n, NULL, &doc, &d) == FX_OK ||
		    d.msg[0] == '\0')
			bad++;
		fx_json_doc_free(doc);
	}
	CHECK_MSG(bad == 0, "%d prefixes accepted", bad);
	for (int iter = 0; iter < 20000; iter++) {
		fx_json_doc *doc = NULL;
		memcpy(buf, good, len);
		buf[lcg(&seed) % len] = (char)lcg(&seed);
		d.msg[0] = '\0';
		if (fx_json_parse(buf, len, NULL, &doc, &d) != FX_OK &&
		    d.msg[0] == '\0')
			bad++;
		fx_json_doc_free(doc);
	}
	CHECK(bad == 0);
}

int main(void)
{
	RUN(test_accept);
	RUN(test_reject);
	RUN(test_embedded_nul_and_position);
	RUN(test_tree);
	RUN(test_int64);
	RUN(test_bounds);
	RUN(test_many_keys);
	RUN(test_writer_roundtrip);
	RUN(test_writer_errors);
	RUN(test_mutations);
	return FX_TEST_REPORT();
}
