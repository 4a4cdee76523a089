/* Unit tests for gateway/svc/webhook_reg.c: URL building, the present/create decision from a list
 * answer, the retry backoff and the metrics text. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/metrics.h"
#include "gateway/svc/webhook_reg.h"

#define URL "https://gw.example.com/webhooks/animate3d/main"
#define EP(id, url, ev) "{\"id\":\"" id "\",\"object\":\"webhook_endpoint\",\"url\":\"" url "\",\"events\":" ev "}"
#define JC "[\"job.completed\"]"

static const struct {
	const char *pub, *prefix, *account;
	size_t outlen;
	int rc;
	const char *want;
} url_cases[] = {
	{ "https://gw.example.com", "/webhooks/animate3d/", "main", 1024, 0, URL },
	{ "http://127.0.0.1:8080", "/hooks/", "a-b.c_d~9", 1024, 0, "http://127.0.0.1:8080/hooks/a-b.c_d~9" },
	{ "https://gw.example.com/edge", "/", "x", 1024, 0, "https://gw.example.com/edge/x" },
	/* exactly fits (46 bytes + NUL), one byte short */
	{ "https://gw.example.com", "/webhooks/animate3d/", "main", sizeof URL, 0, URL },
	{ "https://gw.example.com", "/webhooks/animate3d/", "main", sizeof URL - 1, -1, "" },
	/* names that would need escaping in a path, or none */
	{ "https://gw.example.com", "/h/", "", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", "a b", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", "a/b", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", "a?b", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", "a%20", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", "\xc3\xa9t\xc3\xa9", 1024, -1, "" },
	{ NULL, "/h/", "a", 1024, -1, "" },
	{ "https://gw.example.com", NULL, "a", 1024, -1, "" },
	{ "https://gw.example.com", "/h/", NULL, 1024, -1, "" },
};

Test(webhook_reg, url_table)
{
	for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
		char out[1024];
		int rc;

		memset(out, 'X', sizeof out);
		rc = gw_webhook_reg_url(out, url_cases[i].outlen, url_cases[i].pub, url_cases[i].prefix,
					url_cases[i].account);
		cr_expect_eq(rc, url_cases[i].rc, "case %zu: rc %d", i, rc);
		cr_expect_str_eq(out, url_cases[i].want, "case %zu", i);
	}
}

static const struct {
	const char *body;
	enum gw_webhook_reg_decision d;
	const char *id;		/* kept */
	size_t matches, total, ndups;
	const char *dup0;
} decide_cases[] = {
	/* none yet */
	{ "{\"count\":0,\"endpoints\":[]}", GW_WEBHOOK_REG_CREATE, "", 0, 0, 0, NULL },
	{ "[]", GW_WEBHOOK_REG_CREATE, "", 0, 0, 0, NULL },
	/* other urls only (a prefix of ours, ours plus a slash, another account) */
	{ "{\"count\":3,\"endpoints\":[" EP("a1", "https://gw.example.com/webhooks/animate3d/mai", JC) ","
	  EP("a2", URL "/", JC) "," EP("a3", "https://gw.example.com/webhooks/animate3d/other", JC) "]}",
	  GW_WEBHOOK_REG_CREATE, "", 0, 3, 0, NULL },
	/* ours, among others */
	{ "{\"count\":2,\"endpoints\":[" EP("a1", "https://x.example/h", JC) "," EP("ours", URL, JC) "]}",
	  GW_WEBHOOK_REG_PRESENT, "ours", 1, 2, 0, NULL },
	/* a bare array, as some upstream versions answer lists */
	{ "[" EP("ours", URL, JC) "]", GW_WEBHOOK_REG_PRESENT, "ours", 1, 1, 0, NULL },
	/* several with our url: the first kept, the rest reported */
	{ "{\"endpoints\":[" EP("d1", URL, JC) "," EP("d2", URL, JC) "," EP("d3", URL, JC) "]}",
	  GW_WEBHOOK_REG_PRESENT, "d1", 3, 3, 2, "d2" },
	/* the one with job.completed is preferred over an earlier one without */
	{ "{\"endpoints\":[" EP("noev", URL, "[]") "," EP("good", URL, JC) "]}",
	  GW_WEBHOOK_REG_PRESENT, "good", 2, 2, 1, "noev" },
	/* ours without job.completed: update it, do not create a second one */
	{ "{\"endpoints\":[" EP("noev", URL, "[\"job.started\"]") "]}", GW_WEBHOOK_REG_UPDATE, "noev",
	  1, 1, 0, NULL },
	{ "{\"endpoints\":[{\"id\":\"noev\",\"url\":\"" URL "\"}]}", GW_WEBHOOK_REG_UPDATE, "noev", 1, 1,
	  0, NULL },
	/* junk entries never match */
	{ "{\"endpoints\":[1,\"x\",null,{\"id\":\"u\",\"url\":7}," EP("ours", URL, JC) "]}",
	  GW_WEBHOOK_REG_PRESENT, "ours", 1, 5, 0, NULL },
	/* ours without a usable id: cannot keep it, cannot fix it */
	{ "{\"endpoints\":[{\"url\":\"" URL "\",\"events\":" JC "}]}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0,
	  NULL },
	{ "{\"endpoints\":[" EP("a/b", URL, JC) "]}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	{ "{\"endpoints\":[" EP("x?y", URL, JC) "]}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	/* not a list answer */
	{ "", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	{ "not json", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	{ "{\"count\":1}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	{ "{\"endpoints\":{}}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
	{ "{\"error\":\"Unauthorized\"}", GW_WEBHOOK_REG_BAD, "", 0, 0, 0, NULL },
};

Test(webhook_reg, decide_table)
{
	for (size_t i = 0; i < sizeof decide_cases / sizeof decide_cases[0]; i++) {
		struct gw_webhook_reg_found f;
		const char *b = decide_cases[i].body;
		enum gw_webhook_reg_decision d = gw_webhook_reg_decide(b, strlen(b), URL, &f);

		cr_expect_eq(d, decide_cases[i].d, "case %zu: decision %d want %d", i, d, decide_cases[i].d);
		cr_expect_str_eq(f.id, decide_cases[i].id, "case %zu", i);
		cr_expect_eq(f.matches, decide_cases[i].matches, "case %zu: matches %zu", i, f.matches);
		cr_expect_eq(f.total, decide_cases[i].total, "case %zu: total %zu", i, f.total);
		cr_expect_eq(f.ndups, decide_cases[i].ndups, "case %zu: ndups %zu", i, f.ndups);
		if (decide_cases[i].dup0)
			cr_expect_str_eq(f.dups[0], decide_cases[i].dup0, "case %zu", i);
	}
}

Test(webhook_reg, decide_null_inputs)
{
	struct gw_webhook_reg_found f;

	cr_expect_eq(gw_webhook_reg_decide(NULL, 0, URL, &f), GW_WEBHOOK_REG_BAD);
	cr_expect_eq(gw_webhook_reg_decide("[]", 2, NULL, &f), GW_WEBHOOK_REG_BAD);
}

/* Many duplicates: all counted, only the first GW_WEBHOOK_REG_MAX_LOGGED_DUPS ids kept. */
Test(webhook_reg, decide_many_duplicates_are_bounded)
{
	enum { N = GW_WEBHOOK_REG_MAX_LOGGED_DUPS + 5 };
	size_t cap = 64 + N * (sizeof EP("dNN", URL, JC) + 8);
	char *body = malloc(cap);
	struct gw_webhook_reg_found f;
	size_t off;

	cr_assert(body);
	off = (size_t)snprintf(body, cap, "{\"endpoints\":[");
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(body + off, cap - off, "%s{\"id\":\"d%02d\",\"url\":\"%s\",\"events\":%s}",
					i ? "," : "", i, URL, JC);
	off += (size_t)snprintf(body + off, cap - off, "]}");
	cr_assert_lt(off, cap);
	cr_expect_eq(gw_webhook_reg_decide(body, off, URL, &f), GW_WEBHOOK_REG_PRESENT);
	cr_expect_str_eq(f.id, "d00");
	cr_expect_eq(f.matches, N);
	cr_expect_eq(f.ndups, GW_WEBHOOK_REG_MAX_LOGGED_DUPS);
	cr_expect_str_eq(f.dups[0], "d01");
	cr_expect_str_eq(f.dups[GW_WEBHOOK_REG_MAX_LOGGED_DUPS - 1], "d08");
	free(body);
}

static const struct {
	unsigned attempt;
	int64_t lo, hi;		/* the delay's range over every rnd */
} backoff_cases[] = {
	{ 0, 500, 1000 },	/* treated as the first */
	{ 1, 500, 1000 },
	{ 2, 1000, 2000 },
	{ 3, 2000, 4000 },
	{ 9, 128000, 256000 },
	{ 10, 150000, 300000 },	/* capped at GW_WEBHOOK_REG_BACKOFF_MAX_MS */
	{ 64, 150000, 300000 },
	{ 4000000000u, 150000, 300000 },
};

Test(webhook_reg, backoff_table)
{
	static const uint64_t rnds[] = { 0, 1, 499, 500, 501, 12345678901234567ull, UINT64_MAX };

	for (size_t i = 0; i < sizeof backoff_cases / sizeof backoff_cases[0]; i++) {
		int64_t min = INT64_MAX, max = 0;

		for (size_t r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
			int64_t d = gw_webhook_reg_backoff_ms(backoff_cases[i].attempt, rnds[r]);

			cr_expect_geq(d, backoff_cases[i].lo, "case %zu rnd %zu: %lld", i, r, (long long)d);
			cr_expect_leq(d, backoff_cases[i].hi, "case %zu rnd %zu: %lld", i, r, (long long)d);
			min = d < min ? d : min;
			max = d > max ? d : max;
		}
		/* the jitter spreads: not one fixed value */
		cr_expect_lt(min, max, "case %zu: no jitter", i);
	}
}

Test(webhook_reg, metrics_text)
{
	struct gw_webhook_reg_counters c = { .present = 1, .created = 2, .updated = 3, .duplicates = 4,
					     .failed = 5, .skipped = 6, .retargeted = 8 };
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t len;

	cr_assert(out);
	{
		struct gw_metrics_out o = { out, 0 };

		gw_webhook_reg_render(&c, 7, &o);
		cr_expect_eq(o.bad, 0);
	}
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	cr_assert(text);
	evbuffer_copyout(out, text, len);
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"present\"} 1\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"created\"} 2\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"updated\"} 3\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"retargeted\"} 8\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"duplicate\"} 4\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"failed\"} 5\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_registrations_total{result=\"skipped\"} 6\n"));
	cr_expect(strstr(text, "animate3d_gateway_webhook_endpoints_registered 7\n"));
	free(text);
	evbuffer_free(out);
}

/* ---- the path token (issue 13) ---- */

#define TOK "0123456789abcdef0123456789abcdef"	/* 32 characters: the shortest token */
#define TOK2 "fedcba9876543210fedcba9876543210"
#define BASE "https://gw.example.com/webhooks/animate3d/"

Test(webhook_reg, url_token_table)
{
	static const struct {
		const char *token, *account;
		size_t outlen;
		int rc;
		const char *want;
	} cases[] = {
		{ TOK, "main", 1024, 0, BASE TOK "/main" },
		{ NULL, "main", 1024, 0, BASE "main" },
		{ "short", "main", 1024, -1, "" },			/* not a usable token */
		{ TOK "/x", "main", 1024, -1, "" },
		{ TOK, "a/b", 1024, -1, "" },
		{ TOK, "main", sizeof(BASE TOK "/main"), 0, BASE TOK "/main" },	/* exactly fits */
		{ TOK, "main", sizeof(BASE TOK "/main") - 1, -1, "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[1024];
		int rc;

		memset(out, 'X', sizeof out);
		rc = gw_webhook_reg_url_token(out, cases[i].outlen, "https://gw.example.com",
					      "/webhooks/animate3d/", cases[i].token, cases[i].account);
		cr_expect_eq(rc, cases[i].rc, "case %zu: rc %d", i, rc);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
}

Test(webhook_reg, decide_ours_table)
{
	static const struct {
		const char *body;
		enum gw_webhook_reg_decision d;
		const char *id;
	} cases[] = {
		/* ours exactly: kept, whatever else is there */
		{ "{\"endpoints\":[" EP("OLD", BASE TOK2 "/main", JC) "," EP("NEW", BASE TOK "/main", JC) "]}",
		  GW_WEBHOOK_REG_PRESENT, "NEW" },
		/* the token rotated while we were down: the old one is moved */
		{ "{\"endpoints\":[" EP("OLD", BASE TOK2 "/main", JC) "]}", GW_WEBHOOK_REG_RETARGET, "OLD" },
		/* a token added: the endpoint without one is moved */
		{ "{\"endpoints\":[" EP("PLAIN", BASE "main", JC) "]}", GW_WEBHOOK_REG_RETARGET, "PLAIN" },
		/* not ours: another account, another prefix, another host, a longer path */
		{ "{\"endpoints\":[" EP("B", BASE TOK2 "/other", JC) "]}", GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("P", "https://gw.example.com/hooks/" TOK2 "/main", JC) "]}",
		  GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("H", "https://evil.example.com/webhooks/animate3d/main", JC) "]}",
		  GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("L", BASE "a/" TOK2 "/main", JC) "]}", GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("E", BASE "/main", JC) "]}", GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("S", BASE "x%2Fy/main", JC) "]}", GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[" EP("M", BASE "xmain", JC) "]}", GW_WEBHOOK_REG_CREATE, "" },
		{ "{\"endpoints\":[]}", GW_WEBHOOK_REG_CREATE, "" },
	};
	struct gw_webhook_reg_found f;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum gw_webhook_reg_decision d = gw_webhook_reg_decide_ours(
			cases[i].body, strlen(cases[i].body), BASE TOK "/main", BASE, "main", &f);

		cr_expect_eq(d, cases[i].d, "case %zu: %d", i, d);
		cr_expect_str_eq(f.id, cases[i].id, "case %zu", i);
	}
	/* Without base and account, as gw_webhook_reg_decide: no RETARGET. */
	cr_expect_eq(gw_webhook_reg_decide(cases[1].body, strlen(cases[1].body), BASE TOK "/main", &f),
		     GW_WEBHOOK_REG_CREATE);
}
