/*
 * gateway/http.c pure parts: /metrics rendering, /readyz body, listen address parsing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "auth/session.h"
#include "gateway/call.h"
#include "gateway/http.h"
#include "gateway/stats.h"

/* The buffer's contents as a malloc'd C string. */
static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static char *render(const struct gw_stats *st, const struct gw_method *m, size_t nm, int draining)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	cr_assert_eq(gw_http_render_metrics(st, m, nm, "1.2.3", draining, b), 0);
	s = drain(b);
	evbuffer_free(b);
	return s;
}

static const struct gw_method methods[] = {
	{ "/animate3d.v1.Jobs/GetStatus", NULL, GW_UNARY, 1, NULL, NULL },
	{ "/animate3d.v1.Account/GetCreditBalance", NULL, GW_UNARY, 1, NULL, NULL },
};

struct line_case {
	const char *line;	/* a whole line expected in the output */
	int present;
};

Test(http, metrics_lines)
{
	static struct gw_stats st;	/* large: keep it off the stack */
	static const struct line_case want[] = {
		{ "a3dgw_build_info{version=\"1.2.3\"} 1", 1 },
		{ "a3dgw_rpc_total{method=\"/animate3d.v1.Jobs/GetStatus\",code=\"OK\"} 7", 1 },
		{ "a3dgw_rpc_total{method=\"/animate3d.v1.Jobs/GetStatus\",code=\"NOT_FOUND\"} 2", 1 },
		{ "a3dgw_rpc_total{method=\"/animate3d.v1.Account/GetCreditBalance\",code=\"UNAUTHENTICATED\"} 3", 1 },
		/* zero series are not written */
		{ "a3dgw_rpc_total{method=\"/animate3d.v1.Account/GetCreditBalance\",code=\"OK\"} 0", 0 },
		{ "a3dgw_calls_in_flight 4", 1 },
		{ "a3dgw_calls_total 12", 1 },
		{ "a3dgw_auth_rejected_total 3", 1 },
		{ "a3dgw_draining 0", 1 },
		{ "a3dgw_upstream_responses_total{route=\"GET /status/{rids}\",class=\"2xx\"} 2", 1 },
		{ "a3dgw_upstream_responses_total{route=\"GET /status/{rids}\",class=\"5xx\"} 1", 1 },
		{ "a3dgw_upstream_responses_total{route=\"GET /session/auth\",class=\"none\"} 1", 1 },
		{ "a3dgw_logins_total{result=\"ok\"} 5", 1 },
		{ "# TYPE a3dgw_rpc_total counter", 1 },
		{ "# TYPE a3dgw_calls_in_flight gauge", 1 },
	};
	char *out;

	memset(&st, 0, sizeof st);
	st.rpc[0][0] = 7;
	st.rpc[0][5] = 2;
	st.rpc[1][16] = 3;
	st.calls_in_flight = 4;
	st.calls_total = 12;
	st.auth_rejected = 3;
	st.logins_ok = 5;
	gw_stats_upstream(&st, "GET /status/{rids}", 200);
	gw_stats_upstream(&st, "GET /status/{rids}", 204);
	gw_stats_upstream(&st, "GET /status/{rids}", 503);
	gw_stats_upstream(&st, "GET /session/auth", 0);
	out = render(&st, methods, 2, 0);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char line[256];

		snprintf(line, sizeof line, "\n%s\n", want[i].line);
		cr_expect_eq(strstr(out, line) != NULL, want[i].present, "line \"%s\" %s", want[i].line,
			     want[i].present ? "missing" : "unexpected");
	}
	free(out);
}

Test(http, metrics_draining_and_escaping)
{
	static struct gw_stats st;
	static const struct gw_method odd[] = {
		{ "/x.Y/Quote\"Back\\slash", NULL, GW_UNARY, 1, NULL, NULL },
	};
	char *out;

	memset(&st, 0, sizeof st);
	st.rpc[0][14] = 1;
	out = render(&st, odd, 1, 1);
	cr_expect(strstr(out, "\na3dgw_draining 1\n") != NULL);
	cr_expect(strstr(out, "method=\"/x.Y/Quote\\\"Back\\\\slash\",code=\"UNAVAILABLE\"} 1\n") != NULL,
		  "%s", out);
	free(out);
}

/* Every line is a comment or "name[{labels}] value": a scraper would reject anything else. */
Test(http, metrics_format)
{
	static struct gw_stats st;
	char *out, *save = NULL;

	memset(&st, 0, sizeof st);
	st.rpc[1][3] = 9;
	gw_stats_upstream(&st, "POST /process", 400);
	out = render(&st, methods, 2, 0);
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *sp;

		if (l[0] == '#')
			continue;
		sp = strrchr(l, ' ');
		cr_assert_not_null(sp, "line without value: %s", l);
		cr_expect(strspn(sp + 1, "0123456789") == strlen(sp + 1), "bad value: %s", l);
		cr_expect(strchr("abcdefghijklmnopqrstuvwxyz_", l[0]) != NULL, "bad name: %s", l);
	}
	free(out);
}

/* Route table overflow is counted, not silently lost. */
Test(http, stats_route_overflow)
{
	static struct gw_stats st;
	static char names[GW_STATS_MAX_ROUTES + 2][16];

	memset(&st, 0, sizeof st);
	for (size_t i = 0; i < GW_STATS_MAX_ROUTES + 2; i++) {
		snprintf(names[i], sizeof names[i], "GET /r%zu", i);
		gw_stats_upstream(&st, names[i], 200);
	}
	cr_assert_eq(st.upstream_routes_dropped, 2);
	cr_assert_eq(st.routes[GW_STATS_MAX_ROUTES - 1].by_class[2], 1);
}

struct ready_case {
	int draining;
	enum gw_session_state states[2];
	size_t n;
	int ready;
	const char *body;
};

Test(http, readyz_table)
{
	static const struct ready_case cases[] = {
		{ 0, { GW_SESSION_OK, GW_SESSION_OK }, 2, 1,
		  "{\"ready\":true,\"draining\":false,\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"},"
		  "{\"name\":\"a1\",\"state\":\"ok\"}]}\n" },
		{ 0, { GW_SESSION_OK, GW_SESSION_REJECTED }, 2, 0,
		  "{\"ready\":false,\"draining\":false,\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"},"
		  "{\"name\":\"a1\",\"state\":\"rejected\"}]}\n" },
		{ 1, { GW_SESSION_OK, GW_SESSION_OK }, 1, 0,
		  "{\"ready\":false,\"draining\":true,\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"}]}\n" },
		{ 0, { GW_SESSION_LOGGING_IN, GW_SESSION_OK }, 1, 0,
		  "{\"ready\":false,\"draining\":false,\"accounts\":[{\"name\":\"a0\",\"state\":\"logging_in\"}]}\n" },
		{ 0, { GW_SESSION_OK, GW_SESSION_OK }, 0, 1,
		  "{\"ready\":true,\"draining\":false,\"accounts\":[]}\n" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_account_rt acct[2];
		struct evbuffer *b = evbuffer_new();
		char *out;
		int ready;

		memset(acct, 0, sizeof acct);
		acct[0].name = "a0";
		acct[1].name = "a1";
		acct[0].state = cases[i].states[0];
		acct[1].state = cases[i].states[1];
		ready = gw_http_render_ready(cases[i].draining, acct, cases[i].n, b);
		out = drain(b);
		cr_expect_eq(ready, cases[i].ready, "case %zu", i);
		cr_expect_str_eq(out, cases[i].body, "case %zu", i);
		free(out);
		evbuffer_free(b);
	}
}

struct hp_case {
	const char *in;
	int rc;
	const char *host;
	unsigned short port;
};

Test(http, split_hostport_table)
{
	static const struct hp_case cases[] = {
		{ "127.0.0.1:8080", 0, "127.0.0.1", 8080 },
		{ "0.0.0.0:0", 0, "0.0.0.0", 0 },
		{ "[::1]:9090", 0, "::1", 9090 },
		{ "localhost:65535", 0, "localhost", 65535 },
		{ "localhost:65536", -1, NULL, 0 },
		{ "127.0.0.1", -1, NULL, 0 },
		{ "127.0.0.1:", -1, NULL, 0 },
		{ ":8080", -1, NULL, 0 },
		{ "host:80x", -1, NULL, 0 },
		{ "[::1:80", -1, NULL, 0 },
		{ "", -1, NULL, 0 },
		{ NULL, -1, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char host[64] = "";
		unsigned short port = 1;
		int rc = gw_http_split_hostport(cases[i].in, host, sizeof host, &port);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].in ? cases[i].in : "NULL");
		if (rc == 0 && cases[i].rc == 0) {
			cr_expect_str_eq(host, cases[i].host, "case %zu", i);
			cr_expect_eq(port, cases[i].port, "case %zu", i);
		}
	}
}

Test(http, grpc_code_names)
{
	cr_expect_str_eq(gw_http_grpc_code_name(0), "OK");
	cr_expect_str_eq(gw_http_grpc_code_name(5), "NOT_FOUND");
	cr_expect_str_eq(gw_http_grpc_code_name(8), "RESOURCE_EXHAUSTED");
	cr_expect_str_eq(gw_http_grpc_code_name(16), "UNAUTHENTICATED");
	cr_expect_str_eq(gw_http_grpc_code_name(17), "UNKNOWN");
}
