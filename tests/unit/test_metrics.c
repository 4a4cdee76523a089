/*
 * gateway/base/metrics.c: histogram buckets, the upstream route/status table, and the /metrics text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "auth/upstream/session.h"
#include "gateway/base/breaker.h"
#include "gateway/call/call.h"
#include "gateway/base/metrics.h"
#include "gateway/base/ratelimit.h"
#include "gateway/upstream/upstream.h"

#define P GW_METRICS_PREFIX

static char *render(const struct gw_metrics_view *v)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	cr_assert_not_null(b);
	cr_assert_eq(gw_metrics_render(v, b), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	cr_assert_not_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* 1 when line is a whole line of text. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

Test(metrics, observe_picks_the_first_bucket_at_or_above)
{
	static const struct {
		int64_t us;
		size_t bucket;
	} cases[] = {
		{ -5, 0 }, { 0, 0 }, { 1000, 0 }, { 1001, 1 }, { 5000, 1 }, { 99999, 5 },
		{ 100000, 5 }, { 1000000, 8 }, { 29999999, 12 }, { 30000000, 12 },
		{ 30000001, GW_METRICS_NBUCKETS }, { INT64_MAX / 2, GW_METRICS_NBUCKETS },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_metrics_hist h = { 0 };

		gw_metrics_observe(&h, cases[i].us);
		for (size_t b = 0; b <= GW_METRICS_NBUCKETS; b++)
			cr_expect_eq(h.bucket[b], b == cases[i].bucket ? 1u : 0u,
				     "us=%lld bucket %zu = %llu", (long long)cases[i].us, b,
				     (unsigned long long)h.bucket[b]);
		cr_expect_eq(h.count, 1);
		cr_expect_eq(h.sum_us, (uint64_t)(cases[i].us < 0 ? 0 : cases[i].us));
	}
}

Test(metrics, bucket_labels)
{
	cr_expect_str_eq(gw_metrics_bucket_le(0), "0.001");
	cr_expect_str_eq(gw_metrics_bucket_le(GW_METRICS_NBUCKETS - 1), "30");
	cr_expect_str_eq(gw_metrics_bucket_le(GW_METRICS_NBUCKETS), "+Inf");
	cr_expect_str_eq(gw_metrics_bucket_le(1000), "+Inf");
}

Test(metrics, route_templates)
{
	static const struct {
		const char *method, *path, *route;
	} cases[] = {
		{ "GET", "/status/AbC123,dEf456", "GET /status/{rids}" },
		{ "GET", "/status/AbC123?x=1", "GET /status/{rids}" },
		{ "GET", "/status/", "GET other" },			/* no id */
		{ "GET", "/status/a/b", "GET other" },			/* extra segment */
		{ "GET", "/download/r1", "GET /download/{rids}" },
		{ "GET", "/upload?name=a.mp4&resumable=0", "GET /upload" },
		{ "GET", "/uploadx", "GET other" },
		{ "POST", "/process", "POST /process" },
		{ "GET", "/process", "GET other" },			/* method matters */
		{ "GET", "/list", "GET /list" },
		{ "GET", "/list/SUCCESS,FAILURE", "GET /list/{statuses}" },
		{ "POST", "/videoInfo", "POST /videoInfo" },
		{ "GET", "/pesave/getUrls/r1", "GET /pesave/getUrls/{rid}" },
		{ "GET", "/account/creditBalance", "GET /account/creditBalance" },
		{ "GET", "/account/minutesBalance", "GET /account/minutesBalance" },
		{ "GET", "/character/getModelUploadUrl?name=x&modelExt=fbx", "GET /character/getModelUploadUrl" },
		{ "POST", "/character/storeModel", "POST /character/storeModel" },
		{ "GET", "/character/listModels", "GET /character/listModels" },
		{ "GET", "/character/listModels?stockModel=all", "GET /character/listModels" },
		{ "DELETE", "/character/deleteModel/m1", "DELETE /character/deleteModel/{id}" },
		{ "POST", "/webhook_endpoints", "POST /webhook_endpoints" },
		{ "GET", "/webhook_endpoints", "GET /webhook_endpoints" },
		{ "GET", "/webhook_endpoints/we_1", "GET /webhook_endpoints/{id}" },
		{ "POST", "/webhook_endpoints/we_1", "POST /webhook_endpoints/{id}" },
		{ "DELETE", "/webhook_endpoints/we_1", "DELETE /webhook_endpoints/{id}" },
		{ "GET", "/session/auth", "GET /session/auth" },
		{ "PATCH", "/process", "other" },
		{ "GET", "/secret?X-Goog-Signature=abc", "GET other" },
		{ NULL, "/process", "other" },
		{ "GET", NULL, "other" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_str_eq(gw_metrics_route(cases[i].method, cases[i].path), cases[i].route,
				 "%s %s", cases[i].method ? cases[i].method : "(null)",
				 cases[i].path ? cases[i].path : "(null)");
}

Test(metrics, upstream_codes_per_route_bounded)
{
	static struct gw_metrics m;	/* large: keep it off the stack */
	static const char route[] = "GET /status/{rids}";
	char copy[sizeof route];

	memset(&m, 0, sizeof m);
	/* The same route through another pointer lands in the same row. */
	memcpy(copy, route, sizeof route);
	gw_metrics_upstream(&m, route, 200, 10);
	gw_metrics_upstream(&m, copy, 200, 10);
	gw_metrics_upstream(&m, route, 0, 10);		/* no HTTP answer */
	gw_metrics_upstream(&m, route, 999, 10);	/* nonsense status: counted as none */
	for (long s = 500; s < 500 + GW_METRICS_ROUTE_CODES; s++)
		gw_metrics_upstream(&m, route, s, 10);
	cr_expect_str_eq(m.routes[0].route, route);
	cr_expect_null(m.routes[1].route);
	cr_expect_eq(m.routes[0].code[0], 200);
	cr_expect_eq(m.routes[0].n[0], 2);
	cr_expect_eq(m.routes[0].code[1], 0);
	cr_expect_eq(m.routes[0].n[1], 2);
	/* 2 slots used, so 6 of the 8 5xx statuses fit; 2 go to "other". */
	cr_expect_eq(m.routes[0].other, 2);
	cr_expect_eq(m.routes[0].latency.count, 4 + GW_METRICS_ROUTE_CODES);
	gw_metrics_upstream(&m, NULL, 200, 1);
	cr_expect_str_eq(m.routes[1].route, "other");
}

Test(metrics, routes_past_the_table_are_dropped)
{
	static struct gw_metrics m;
	static char names[GW_METRICS_MAX_ROUTES + 2][16];

	memset(&m, 0, sizeof m);
	for (size_t i = 0; i < GW_METRICS_MAX_ROUTES + 2; i++) {
		snprintf(names[i], sizeof names[i], "GET /r%zu", i);
		gw_metrics_upstream(&m, names[i], 200, 1);
	}
	cr_expect_eq(m.routes_dropped, 2);
	cr_expect_str_eq(m.routes[GW_METRICS_MAX_ROUTES - 1].route, names[GW_METRICS_MAX_ROUTES - 1]);
}

Test(metrics, rpc_rows_past_the_table_are_not_timed)
{
	static struct gw_metrics m;

	memset(&m, 0, sizeof m);
	gw_metrics_rpc(&m, 3, 2000);
	gw_metrics_rpc(&m, GW_STATS_MAX_METHODS, 2000);	/* must not write out of bounds */
	cr_expect_eq(m.rpc_latency[3].count, 1);
	cr_expect_eq(m.rpc_latency[3].bucket[1], 1);
}

static const struct gw_method methods[] = {
	{ "/animate3d.v1.Jobs/GetStatus", NULL, GW_UNARY, 1, NULL, NULL },
	{ "/animate3d.v1.Account/GetCreditBalance", NULL, GW_UNARY, 1, NULL, NULL },
	{ "/x.Quote\"d/M", NULL, GW_UNARY, 1, NULL, NULL },
};

struct line_case {
	const char *line;	/* a whole line of the output */
	int present;
};

Test(metrics, render_lines)
{
	static struct gw_stats st;
	static struct gw_metrics m;
	static struct gw_account_rt acct[2];
	struct gw_up_counters up = { .started = 9, .retries = 2, .reauth_retries = 1 };
	struct gw_ratelimit_tenant rlt[2] = { { .name = "team-a", .limited = 4 },
					      { .name = "team-b", .limited = 0 } };
	struct gw_ratelimit rl = { .t = rlt, .n = 2 };
	struct gw_breaker br = { .state = GW_BREAKER_OPEN, .rejected = 6 };
	struct gw_metrics_view v = { 0 };
	static const struct line_case cases[] = {
		{ P "build_info{version=\"1.2.3\"} 1", 1 },
		{ "# TYPE " P "build_info gauge", 1 },
		{ P "draining 0", 1 },
		{ P "rpc_total{method=\"/animate3d.v1.Jobs/GetStatus\",code=\"OK\"} 7", 1 },
		{ P "rpc_total{method=\"/animate3d.v1.Jobs/GetStatus\",code=\"NOT_FOUND\"} 2", 1 },
		{ P "rpc_total{method=\"/animate3d.v1.Account/GetCreditBalance\",code=\"OK\"} 0", 0 },
		{ P "rpc_total{method=\"/x.Quote\\\"d/M\",code=\"UNAUTHENTICATED\"} 1", 1 },
		{ "# TYPE " P "rpc_total counter", 1 },
		{ "# TYPE " P "rpc_duration_seconds histogram", 1 },
		{ P "rpc_duration_seconds_bucket{method=\"/animate3d.v1.Jobs/GetStatus\",le=\"0.001\"} 1", 1 },
		{ P "rpc_duration_seconds_bucket{method=\"/animate3d.v1.Jobs/GetStatus\",le=\"0.005\"} 1", 1 },
		{ P "rpc_duration_seconds_bucket{method=\"/animate3d.v1.Jobs/GetStatus\",le=\"0.25\"} 2", 1 },
		{ P "rpc_duration_seconds_bucket{method=\"/animate3d.v1.Jobs/GetStatus\",le=\"+Inf\"} 3", 1 },
		{ P "rpc_duration_seconds_sum{method=\"/animate3d.v1.Jobs/GetStatus\"} 40.200500", 1 },
		{ P "rpc_duration_seconds_count{method=\"/animate3d.v1.Jobs/GetStatus\"} 3", 1 },
		/* no latency series for a method never called */
		{ P "rpc_duration_seconds_count{method=\"/animate3d.v1.Account/GetCreditBalance\"} 0", 0 },
		{ P "rpc_in_flight 4", 1 },
		{ "# TYPE " P "rpc_in_flight gauge", 1 },
		{ P "rpc_unauthenticated_total 1", 1 },
		{ P "upstream_requests_total{route=\"GET /status/{rids}\",status=\"200\"} 2", 1 },
		{ P "upstream_requests_total{route=\"GET /status/{rids}\",status=\"none\"} 1", 1 },
		{ P "upstream_requests_total{route=\"GET /session/auth\",status=\"401\"} 1", 1 },
		{ P "upstream_duration_seconds_count{route=\"GET /status/{rids}\"} 3", 1 },
		{ P "upstream_duration_seconds_bucket{route=\"GET /status/{rids}\",le=\"0.05\"} 2", 1 },
		{ P "upstream_retries_total 2", 1 },
		{ P "upstream_reauth_retries_total 1", 1 },
		{ P "session_logins_total{account=\"sim\"} 3", 1 },
		{ P "session_refreshes_total{account=\"sim\"} 1", 1 },
		{ P "session_failures_total{account=\"other\"} 2", 1 },
		{ P "session_state{account=\"sim\",state=\"ok\"} 1", 1 },
		{ P "session_state{account=\"sim\",state=\"rejected\"} 0", 1 },
		{ P "session_state{account=\"other\",state=\"rejected\"} 1", 1 },
		{ P "ratelimited_total{tenant=\"team-a\"} 4", 1 },
		{ P "ratelimited_total{tenant=\"team-b\"} 0", 1 },
		{ P "breaker_state{account=\"sim\",state=\"open\"} 1", 1 },
		{ P "breaker_state{account=\"sim\",state=\"closed\"} 0", 1 },
		{ P "breaker_rejected_total{account=\"sim\"} 6", 1 },
		{ P "breaker_state{account=\"other\",state=\"open\"} 0", 0 },	/* no breaker there */
		{ P "reloads_total{result=\"failed\"} 1", 1 },
		{ P "handoff_events_total 120", 1 },
		{ P "handoff_full_waits_total 3", 1 },
		{ P "handoff_high_water 17", 1 },
		{ "# TYPE " P "handoff_high_water gauge", 1 },
	};
	char *out;

	memset(&st, 0, sizeof st);
	memset(&m, 0, sizeof m);
	memset(acct, 0, sizeof acct);
	st.rpc[0][0] = 7;
	st.rpc[0][5] = 2;
	st.rpc[2][16] = 1;
	st.calls_in_flight = 4;
	st.auth_rejected = 1;
	st.reloads_failed = 1;
	gw_metrics_rpc(&m, 0, 500);
	gw_metrics_rpc(&m, 0, 200000);
	gw_metrics_rpc(&m, 0, 40000000);
	gw_metrics_upstream(&m, "GET /status/{rids}", 200, 20000);
	gw_metrics_upstream(&m, "GET /status/{rids}", 200, 30000);
	gw_metrics_upstream(&m, "GET /status/{rids}", 0, 2000000);
	gw_metrics_upstream(&m, "GET /session/auth", 401, 1000);
	acct[0].name = "sim";
	acct[0].state = GW_SESSION_OK;
	acct[0].n.logins = 3;
	acct[0].n.refreshes = 1;
	acct[1].name = "other";
	acct[1].state = GW_SESSION_REJECTED;
	acct[1].n.failures = 2;

	v.version = "1.2.3";
	v.stats = &st;
	v.m = &m;
	v.methods = methods;
	v.nmethods = 3;
	v.accounts = acct;
	v.naccounts = 2;
	v.up = &up;
	v.rl = &rl;
	v.breaker[0] = &br;
	v.has_handoff = 1;
	v.handoff.delivered = 120;
	v.handoff.full_waits = 3;
	v.handoff.high_water = 17;
	out = render(&v);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(has_line(out, cases[i].line), cases[i].present, "%s: %s\n--- output:\n%s",
			     cases[i].present ? "missing" : "unexpected", cases[i].line, out);
	free(out);
}

Test(metrics, render_every_line_is_prefixed_and_typed)
{
	static struct gw_stats st;
	struct gw_metrics_view v = { 0 };
	char *out, *save = NULL;

	memset(&st, 0, sizeof st);
	v.stats = &st;
	v.draining = 1;
	out = render(&v);
	cr_expect(has_line(out, P "draining 1"));
	cr_expect(has_line(out, P "build_info{version=\"dev\"} 1"));
	/* Optional parts are left out, not rendered as zeros. */
	cr_expect_null(strstr(out, "ratelimited_total"));
	cr_expect_null(strstr(out, "session_state"));
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#')
			cr_expect(strncmp(l, "# HELP " P, strlen("# HELP " P)) == 0 ||
				  strncmp(l, "# TYPE " P, strlen("# TYPE " P)) == 0, "%s", l);
		else
			cr_expect(strncmp(l, P, strlen(P)) == 0, "%s", l);
	}
	free(out);
}

Test(metrics, render_null_arguments)
{
	struct evbuffer *b = evbuffer_new();
	struct gw_metrics_view v = { 0 };

	cr_expect_eq(gw_metrics_render(NULL, b), -1);
	cr_expect_eq(gw_metrics_render(&v, NULL), -1);
	evbuffer_free(b);
}

/* Label values (and the account names /readyz prints as JSON strings) escape \, " and newline. */
Test(metrics, label_escaping_table)
{
	static const struct {
		const char *in;
		size_t outlen;
		const char *want;
	} cases[] = {
		{ "plain", 64, "plain" },
		{ "a\"b", 64, "a\\\"b" },
		{ "back\\slash", 64, "back\\\\slash" },
		{ "two\nlines", 64, "two\\nlines" },
		{ NULL, 64, "" },
		{ "abcdef", 4, "a" },		/* cut: room is kept for one escaped pair and the NUL */
		{ "\"\"\"", 6, "\\\"\\\"" },	/* two whole pairs fit in 6, never half of the third */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[64];

		gw_metrics_label(cases[i].in, out, cases[i].outlen);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
}
