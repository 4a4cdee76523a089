/* Unit tests for gateway/base/log.c: fields in, one valid JSON line out (checked by parsing it back). */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "gateway/base/log.h"

static size_t fmt(char *buf, size_t buflen, enum gw_log_level lvl, const char *event, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, event);
	n = gw_log_format(buf, buflen, lvl, event, ap);
	va_end(ap);
	return n;
}

/* The line parses as one JSON object, ends in exactly one newline and matches its length. */
static json_t *parse_line(const char *line, size_t n)
{
	json_error_t jerr;
	json_t *j;

	cr_assert_eq(strlen(line), n);
	cr_assert_gt(n, 1);
	cr_assert_eq(line[n - 1], '\n', "no trailing newline");
	cr_assert_null(memchr(line, '\n', n - 1), "newline inside the line");
	j = json_loadb(line, n, 0, &jerr);
	cr_assert_not_null(j, "invalid JSON (%s): %s", jerr.text, line);
	cr_assert(json_is_object(j));
	return j;
}

static int ts_ok(const char *ts)
{
	/* 2026-11-28T07:20:00.123Z */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (strlen(ts) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? !(ts[i] >= '0' && ts[i] <= '9') : ts[i] != shape[i])
			return 0;
	}
	return 1;
}

Test(log, line_shape)
{
	char buf[GW_LOG_LINE_MAX];
	size_t n = fmt(buf, sizeof(buf), GW_LOG_INFO, "rpc", GW_LS("tenant", "team-a"), GW_LN("latency_ms", 3),
		       GW_LN("neg", -9223372036854775807LL - 1), GW_LS("nothing", NULL), GW_LEND);
	const char *tail = "\",\"level\":\"info\",\"event\":\"rpc\",\"tenant\":\"team-a\",\"latency_ms\":3,"
			   "\"neg\":-9223372036854775808,\"nothing\":null}\n";
	char ts[32];
	json_t *j;

	cr_assert_eq(strncmp(buf, "{\"ts\":\"", 7), 0, "%s", buf);
	memcpy(ts, buf + 7, 24);
	ts[24] = '\0';
	cr_expect(ts_ok(ts), "timestamp %s", ts);
	cr_expect_str_eq(buf + 7 + 24, tail);
	j = parse_line(buf, n);
	cr_expect_str_eq(json_string_value(json_object_get(j, "tenant")), "team-a");
	json_decref(j);
}

Test(log, levels)
{
	static const struct {
		const char *s;
		int rc;
		enum gw_log_level lvl;
	} cases[] = {
		{ "debug", 0, GW_LOG_DEBUG }, { "info", 0, GW_LOG_INFO }, { "warn", 0, GW_LOG_WARN },
		{ "warning", 0, GW_LOG_WARN }, { "error", 0, GW_LOG_ERROR }, { "INFO", -1, 0 },
		{ "", -1, 0 },			{ "fatal", -1, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum gw_log_level l = 99;
		int rc = gw_log_level_parse(cases[i].s, &l);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].s);
		if (rc == 0)
			cr_expect_eq(l, cases[i].lvl, "case %zu", i);
	}
	cr_expect_eq(gw_log_level_parse(NULL, NULL), -1);
	for (int l = GW_LOG_DEBUG; l <= GW_LOG_ERROR; l++) {
		enum gw_log_level back;
		cr_expect_eq(gw_log_level_parse(gw_log_level_name(l), &back), 0);
		cr_expect_eq(back, (enum gw_log_level)l);
	}
}

/* Strings come back out of the JSON byte for byte (valid UTF-8) or with U+FFFD (invalid bytes). */
Test(log, escaping_round_trips)
{
	static const struct {
		const char *in, *out;	/* out NULL: same as in */
		const char *raw;	/* the escaped form that must appear in the line, or NULL */
	} cases[] = {
		{ "plain", NULL, "\"plain\"" },
		{ "quote\"back\\slash", NULL, "\"quote\\\"back\\\\slash\"" },
		{ "nl\ncr\rtab\t", NULL, "\"nl\\ncr\\rtab\\t\"" },
		{ "\x01\x1f\x7f", NULL, "\"\\u0001\\u001f\\u007f\"" },
		{ "caf\xc3\xa9 \xf0\x9f\x98\x80", NULL, NULL },		/* é and an emoji pass through */
		{ "bad\xff", "bad\xef\xbf\xbd", "\"bad\\ufffd\"" },
		{ "cut\xc3", "cut\xef\xbf\xbd", NULL },
		{ "overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd", NULL },
		{ "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", NULL },
		{ "</script>", NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[GW_LOG_LINE_MAX];
		size_t n = fmt(buf, sizeof(buf), GW_LOG_WARN, "e", GW_LS("v", cases[i].in), GW_LEND);
		json_t *j = parse_line(buf, n);
		const char *want = cases[i].out ? cases[i].out : cases[i].in;

		cr_expect_str_eq(json_string_value(json_object_get(j, "v")), want, "case %zu", i);
		if (cases[i].raw)
			cr_expect_not_null(strstr(buf, cases[i].raw), "case %zu: %s", i, buf);
		json_decref(j);
	}
}

/* Long lines are cut, still valid JSON, marked truncated, and never longer than the limit. */
Test(log, truncation_keeps_json_valid)
{
	static char big[3 * GW_LOG_LINE_MAX], utf[3 * GW_LOG_LINE_MAX];
	static const size_t sizes[] = { GW_LOG_MIN_BUF, 200, 1000, GW_LOG_LINE_MAX, 4 * GW_LOG_LINE_MAX };

	memset(big, 'x', sizeof(big) - 1);
	for (size_t i = 0; i + 2 < sizeof(utf); i += 2) {
		utf[i] = '\xc3';
		utf[i + 1] = '\xa9';
	}
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t cap = sizes[s], limit = cap < GW_LOG_LINE_MAX ? cap : GW_LOG_LINE_MAX;
		char *buf = malloc(cap);
		size_t n;
		json_t *j;

		cr_assert_not_null(buf);
		/* one huge string value */
		n = fmt(buf, cap, GW_LOG_ERROR, "big", GW_LS("a", "short"), GW_LS("b", big), GW_LEND);
		cr_expect_lt(n, limit, "size %zu: %zu", cap, n);
		j = parse_line(buf, n);
		cr_expect(json_is_true(json_object_get(j, "truncated")), "size %zu: %s", cap, buf);
		json_decref(j);
		/* multi-byte characters are never split */
		n = fmt(buf, cap, GW_LOG_ERROR, "utf", GW_LS("u", utf), GW_LEND);
		cr_expect_lt(n, limit);
		j = parse_line(buf, n);
		cr_expect(json_is_true(json_object_get(j, "truncated")));
		json_decref(j);
		/* a huge event name and escapes that expand 6x */
		n = fmt(buf, cap, GW_LOG_ERROR, big, GW_LS("c", "\x01\x01\x01\x01\x01\x01\x01\x01"), GW_LEND);
		j = parse_line(buf, n);
		json_decref(j);
		free(buf);
	}
}

Test(log, more_fields_than_the_limit_are_cut)
{
	char buf[GW_LOG_LINE_MAX];
#define S10 GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), \
	    GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1)
	size_t n = fmt(buf, sizeof(buf), GW_LOG_INFO, "few", S10, S10, S10, S10, S10, S10, GW_LN("k", 1),
		       GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LEND);
	json_t *j = parse_line(buf, n);

	cr_expect_null(json_object_get(j, "truncated"), "exactly GW_LOG_MAX_FIELDS fields fit: %s", buf);
	json_decref(j);
	n = fmt(buf, sizeof(buf), GW_LOG_INFO, "few", S10, S10, S10, S10, S10, S10, GW_LN("k", 1), GW_LN("k", 1),
		GW_LN("k", 1), GW_LN("k", 1), GW_LN("k", 1), GW_LEND);
	j = parse_line(buf, n);
	cr_expect(json_is_true(json_object_get(j, "truncated")), "%s", buf);
	json_decref(j);
}

Test(log, long_lines_are_cut_at_a_field_boundary)
{
	char buf[GW_LOG_LINE_MAX];
	size_t n = fmt(buf, sizeof(buf), GW_LOG_INFO, "many",
#define F10 GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), \
	    GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), \
	    GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), GW_LN("field_number_with_a_long_name", 1234567890), \
	    GW_LN("field_number_with_a_long_name", 1234567890)
		       F10, F10, F10, F10, F10, F10, F10, GW_LEND);
	json_t *j = parse_line(buf, n);

	cr_expect_lt(n, GW_LOG_LINE_MAX);
	cr_expect(json_is_true(json_object_get(j, "truncated")));
	cr_expect_not_null(strstr(buf, "1234567890,\"truncated\":true}\n"), "%s", buf);	/* whole fields only */
	json_decref(j);
}

Test(log, too_small_buffer)
{
	char buf[GW_LOG_MIN_BUF - 1];

	memset(buf, 'x', sizeof(buf));
	cr_expect_eq(fmt(buf, sizeof(buf), GW_LOG_INFO, "e", GW_LEND), 0);
	cr_expect_eq(buf[0], '\0');
}

struct redact_case {
	const char *in;
	size_t outlen;
	const char *want;
};

Test(log, redact_url_table)
{
	static const struct redact_case cases[] = {
		{ "https://storage.example/b/o?X-Goog-Signature=abcdef&X-Goog-Date=1", 256, "https://storage.example/b/o" },
		{ "https://u:pw@h:8/p?q=1#f", 256, "https://h:8/p" },
		{ "http://h/p#frag", 256, "http://h/p" },
		{ "https://h/p/a@b?x", 256, "https://h/p/a@b" },
		{ "https://h?x", 256, "https://h" },
		{ "/relative?x=1", 256, "/relative" },
		{ "no-query", 256, "no-query" },
		{ "", 256, "" },
		{ "https://h/abc?x", 10, "https://h" },
		{ "https://user@h/abc", 4, "htt" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];

		memset(out, '#', sizeof(out));
		gw_log_redact_url(cases[i].in, out, cases[i].outlen);
		cr_expect_str_eq(out, cases[i].want, "case %zu: %s", i, out);
	}
	{
		char out[4] = "zzz";
		gw_log_redact_url(NULL, out, sizeof(out));
		cr_expect_str_eq(out, "");
	}
}

/* gw_log writes exactly one line for levels at or above the setting, nothing below. */
Test(log, level_filter_and_single_write)
{
	char path[] = "/tmp/a3d-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char buf[4 * GW_LOG_LINE_MAX];
	ssize_t n;

	cr_assert_geq(fd, 0);
	cr_assert_geq(saved, 0);
	cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
	gw_log_set_level(GW_LOG_WARN);
	cr_expect_eq(gw_log_get_level(), GW_LOG_WARN);
	gw_log(GW_LOG_INFO, "hidden", GW_LS("k", "v"), GW_LEND);
	gw_log(GW_LOG_DEBUG, "hidden", GW_LEND);
	gw_log(GW_LOG_WARN, "shown", GW_LN("n", 1), GW_LEND);
	gw_log(GW_LOG_ERROR, "shown", GW_LN("n", 2), GW_LEND);
	gw_log_set_level(GW_LOG_INFO);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_expect_null(strstr(buf, "hidden"), "%s", buf);
	char *nl = strchr(buf, '\n');
	cr_assert_not_null(nl);
	char first[GW_LOG_LINE_MAX];
	memcpy(first, buf, (size_t)(nl - buf + 1));
	first[nl - buf + 1] = '\0';
	json_t *a = parse_line(first, (size_t)(nl - buf + 1));
	json_t *b = parse_line(nl + 1, strlen(nl + 1));
	cr_expect_str_eq(json_string_value(json_object_get(a, "level")), "warn");
	cr_expect_eq(json_integer_value(json_object_get(a, "n")), 1);
	cr_expect_str_eq(json_string_value(json_object_get(b, "level")), "error");
	cr_expect_eq(json_integer_value(json_object_get(b, "n")), 2);
	json_decref(a);
	json_decref(b);
}
