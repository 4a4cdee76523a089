/*
 * gateway/base/metrics.c: histogram buckets, the upstream route/status table, the printers and the
 * registry of renderers /metrics walks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/metrics.h"

#define P GW_METRICS_PREFIX

/* Runs every renderer of reg into a string (freed by the caller). */
static char *render(const struct gw_metrics_reg *reg)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	cr_assert_not_null(b);
	cr_assert_eq(gw_metrics_render_all(reg, b), 0);
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

struct line_case {
	const char *line;	/* a whole line of the output */
	int present;
};

/* A renderer that prints with every printer. */
static void print_all(void *arg, struct gw_metrics_out *o)
{
	const struct gw_metrics_hist *h = arg;

	gw_metrics_family(o, "things_total", "counter", "Things seen.");
	gw_metrics_value(o, "things_total", "kind=\"a\"", 3);
	gw_metrics_value(o, "things_total", NULL, 18446744073709551615ull);
	gw_metrics_one(o, "open", "gauge", "Open things.", 0);
	gw_metrics_family(o, "ratio", "gauge", "A ratio.");
	gw_metrics_gauge_f(o, "ratio", NULL, 0.25);
	gw_metrics_gauge_f(o, "ratio", "x=\"y\"", 1500000.0);
	gw_metrics_family(o, "money", "gauge", "Exact values.");
	gw_metrics_gauge_exact(o, "money", NULL, 123456.78);
	gw_metrics_gauge_exact(o, "money", "at=\"t\"", 1796642129.581);
	gw_metrics_family(o, "lat_seconds", "histogram", "Latency.");
	gw_metrics_hist(o, "lat_seconds", "m=\"k\"", h);
}

Test(metrics, printers_table)
{
	static const struct line_case cases[] = {
		{ "# HELP " P "things_total Things seen.", 1 },
		{ "# TYPE " P "things_total counter", 1 },
		{ P "things_total{kind=\"a\"} 3", 1 },
		{ P "things_total 18446744073709551615", 1 },
		{ "# TYPE " P "open gauge", 1 },
		{ P "open 0", 1 },
		{ P "ratio 0.25", 1 },
		{ P "ratio{x=\"y\"} 1.5e+06", 1 },
		{ P "money 123456.78", 1 },			/* %.6g would say 123457 */
		{ P "money{at=\"t\"} 1796642129.581", 1 },
		{ "# TYPE " P "lat_seconds histogram", 1 },
		{ P "lat_seconds_bucket{m=\"k\",le=\"0.001\"} 1", 1 },
		{ P "lat_seconds_bucket{m=\"k\",le=\"0.25\"} 2", 1 },
		{ P "lat_seconds_bucket{m=\"k\",le=\"+Inf\"} 3", 1 },
		{ P "lat_seconds_sum{m=\"k\"} 40.200500", 1 },
		{ P "lat_seconds_count{m=\"k\"} 3", 1 },
	};
	struct gw_metrics_hist h = { 0 };
	struct gw_metrics_reg reg = { 0 };
	char *out, *save = NULL;

	gw_metrics_observe(&h, 500);
	gw_metrics_observe(&h, 200000);
	gw_metrics_observe(&h, 40000000);
	cr_assert_eq(gw_metrics_register(&reg, print_all, &h), 0);
	out = render(&reg);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(has_line(out, cases[i].line), cases[i].present, "%s: %s\n--- output:\n%s",
			     cases[i].present ? "missing" : "unexpected", cases[i].line, out);
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#')
			cr_expect(strncmp(l, "# HELP " P, strlen("# HELP " P)) == 0 ||
				  strncmp(l, "# TYPE " P, strlen("# TYPE " P)) == 0, "%s", l);
		else
			cr_expect(strncmp(l, P, strlen(P)) == 0, "%s", l);
	}
	free(out);
}

static void print_tag(void *arg, struct gw_metrics_out *o)
{
	gw_metrics_one(o, (const char *)arg, "gauge", "A tag.", 1);
}

static void print_other(void *arg, struct gw_metrics_out *o)
{
	gw_metrics_one(o, (const char *)arg, "counter", "Another.", 2);
}

/* Renderers run in registration order; unregistering removes exactly (fn, arg). */
Test(metrics, registry_order_and_unregister)
{
	static const struct {
		const char *ops;	/* +a register print_tag("a"), -a unregister it, *a print_other */
		const char *want;	/* the sample names in output order */
	} rows[] = {
		{ "", "" },
		{ "+a", "a" },
		{ "+a+b+c", "abc" },
		{ "+a+b+c-b", "ac" },
		{ "+a*a-a", "a" },		/* the other function with the same arg stays */
		{ "+a-z", "a" },		/* unknown: no-op */
		{ "+a-a-a+b", "b" },
	};
	static const char *const names[] = { "a", "b", "c", "z" };

	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		struct gw_metrics_reg reg = { 0 };
		char got[16] = "", *out, *save = NULL;

		for (const char *p = rows[r].ops; *p; p += 2) {
			const char *arg = NULL;

			for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
				if (names[k][0] == p[1])
					arg = names[k];
			if (p[0] == '+')
				gw_metrics_register(&reg, print_tag, (void *)arg);
			else if (p[0] == '*')
				gw_metrics_register(&reg, print_other, (void *)arg);
			else
				gw_metrics_unregister(&reg, print_tag, (void *)arg);
		}
		out = render(&reg);
		for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (l[0] != '#' && strlen(got) + 1 < sizeof got)
				strncat(got, l + strlen(P), 1);
		cr_expect_str_eq(got, rows[r].want, "row %zu (%s)", r, rows[r].ops);
		free(out);
	}
}

Test(metrics, registry_bounds)
{
	struct gw_metrics_reg reg = { 0 };
	struct evbuffer *b = evbuffer_new();

	for (size_t i = 0; i < GW_METRICS_MAX_RENDERERS; i++)
		cr_assert_eq(gw_metrics_register(&reg, print_tag, (void *)"a"), 0);
	cr_expect_eq(gw_metrics_register(&reg, print_tag, (void *)"a"), -1);
	cr_expect_eq(gw_metrics_register(&reg, NULL, NULL), -1);
	cr_expect_eq(reg.refused, 2);
	cr_expect_eq(gw_metrics_render_all(NULL, b), -1);
	cr_expect_eq(gw_metrics_render_all(&reg, NULL), -1);
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
