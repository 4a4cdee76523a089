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

struct line_case {
	const char *line;	/* a whole line of the output */
	int present;
};

/*
 * The tenant slot index, as configuration loads and frees make it: each step maps a load's
 * tenants (want: their slots) or frees an earlier load; live lists the slots holding a name
 * afterwards, and nslots the table's extent.
 */
#define MAX_STEP_NAMES 4
struct rpc_step {
	int free_load;				/* >= 0: free this earlier step's load instead */
	const char *names[MAX_STEP_NAMES];	/* NULL-terminated */
	uint32_t want[MAX_STEP_NAMES];
	const char *live[8];			/* names by slot 1.., "" = free; NULL ends */
	size_t nslots;
};

Test(metrics, rpc_tenant_slots_follow_loads)
{
	static const struct rpc_step steps[] = {
		/* 0: the boot config */
		{ -1, { "team-a", "team-b" }, { 1, 2 }, { "team-a", "team-b" }, 3 },
		/* 1: a reload keeps team-b's slot, adds team-c; "-" is the no-tenant slot 0 */
		{ -1, { "team-b", "team-c", GW_METRICS_NO_TENANT }, { 2, 3, 0 },
		  { "team-a", "team-b", "team-c" }, 4 },
		/* 2: the boot load's last call ends: team-a (removed) goes, team-b stays */
		{ 0, { NULL }, { 0 }, { "", "team-b", "team-c" }, 4 },
		/* 3: a new tenant takes the free slot; team-a, back, starts from zero elsewhere */
		{ -1, { "team-d", "team-a" }, { 1, 4 }, { "team-d", "team-b", "team-c", "team-a" }, 5 },
		/* 4: load 1 goes: team-b and team-c are in no live load */
		{ 1, { NULL }, { 0 }, { "team-d", "", "", "team-a" }, 5 },
		/* 5: the last load goes: the table is empty again */
		{ 3, { NULL }, { 0 }, { NULL }, 1 },
	};
	static struct gw_metrics_rpc r;
	uint32_t got[sizeof steps / sizeof steps[0]][MAX_STEP_NAMES];
	size_t count[sizeof steps / sizeof steps[0]] = { 0 };

	memset(&r, 0, sizeof r);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		const struct rpc_step *st = &steps[i];

		if (st->free_load >= 0) {
			gw_metrics_rpc_unmap(&r, got[st->free_load], count[st->free_load]);
		} else {
			while (count[i] < MAX_STEP_NAMES && st->names[count[i]])
				count[i]++;
			cr_assert_eq(gw_metrics_rpc_map(&r, st->names, count[i], got[i]), 0, "step %zu", i);
			for (size_t k = 0; k < count[i]; k++)
				cr_expect_eq(got[i][k], st->want[k], "step %zu: %s got slot %u, want %u", i,
					     st->names[k], got[i][k], st->want[k]);
		}
		cr_expect_eq(r.nslots, st->nslots, "step %zu: nslots %zu", i, r.nslots);
		for (size_t s = 1; s < r.nslots; s++) {
			const char *want = st->live[s - 1] ? st->live[s - 1] : "";

			cr_expect_str_eq(r.slot[s].name ? r.slot[s].name : "", want, "step %zu slot %zu", i, s);
			cr_expect_eq(!!r.slot[s].cells, !!r.slot[s].name, "step %zu slot %zu", i, s);
		}
		cr_expect_eq(r.refused, 0);
	}
	gw_metrics_rpc_free(&r);
	cr_expect_null(r.slot);
}

/* A call counts by index into its tenant's cells; a tenant that stays across a reload keeps its
 * counts, a slot given to a new name starts from zero. */
Test(metrics, rpc_counts_by_tenant_method_code)
{
	static struct gw_metrics_rpc r;
	static const char *const boot[] = { "team-a", "team-b" }, *const next[] = { "team-b", "team-c" };
	uint32_t s1[2], s2[2];
	struct gw_metrics_rpc_cell *a, *b;

	memset(&r, 0, sizeof r);
	cr_assert_eq(gw_metrics_rpc_map(&r, boot, 2, s1), 0);
	a = gw_metrics_rpc_cells(&r, s1[0]);
	b = gw_metrics_rpc_cells(&r, s1[1]);
	cr_assert(a != b && a != r.none && b != r.none);
	gw_metrics_rpc(a, 3, 0, 2000);
	gw_metrics_rpc(a, 3, 0, 2000);
	gw_metrics_rpc(a, 3, 16, 20);
	gw_metrics_rpc(b, 0, 5, 7000);
	gw_metrics_rpc(r.none, GW_STATS_MAX_METHODS - 1, 16, 1);
	cr_expect_eq(a[3].code[0], 2);
	cr_expect_eq(a[3].code[16], 1);
	cr_expect_eq(a[3].latency.count, 3);
	cr_expect_eq(a[3].latency.bucket[1], 2);
	cr_expect_eq(b[0].code[5], 1);
	cr_expect_eq(b[3].latency.count, 0);
	cr_expect_eq(r.none[GW_STATS_MAX_METHODS - 1].code[16], 1);
	cr_expect_eq(gw_metrics_rpc_cells(&r, 0), r.none);
	cr_expect_eq(gw_metrics_rpc_cells(&r, 999), r.none);	/* never a wild pointer */

	cr_assert_eq(gw_metrics_rpc_map(&r, next, 2, s2), 0);
	cr_expect_eq(gw_metrics_rpc_cells(&r, s2[0]), b);		/* team-b: same cells */
	gw_metrics_rpc_unmap(&r, s1, 2);				/* team-a's slot is free */
	cr_expect_eq(s2[1], 3);
	cr_expect_eq(gw_metrics_rpc_cells(&r, s2[0])[0].code[5], 1);
	gw_metrics_rpc_unmap(&r, s2, 2);
	gw_metrics_rpc_free(&r);
}

Test(metrics, rpc_tenant_slots_past_the_cap_refused_whole)
{
	static struct gw_metrics_rpc r;
	static char names[GW_METRICS_MAX_TENANT_SLOTS][16];
	static const char *ptr[GW_METRICS_MAX_TENANT_SLOTS];
	static uint32_t slots[GW_METRICS_MAX_TENANT_SLOTS];
	static const char *const small[] = { "x" };

	memset(&r, 0, sizeof r);
	for (size_t i = 0; i < GW_METRICS_MAX_TENANT_SLOTS; i++) {
		snprintf(names[i], sizeof names[i], "t%zu", i);
		ptr[i] = names[i];
	}
	/* Slot 0 is no tenant's: one name fewer than slots fits. */
	cr_expect_eq(gw_metrics_rpc_map(&r, ptr, GW_METRICS_MAX_TENANT_SLOTS, slots), -1);
	cr_expect_eq(r.refused, 1);
	cr_expect_eq(r.nslots, 1, "a refused load holds nothing (nslots %zu)", r.nslots);
	cr_expect_eq(gw_metrics_rpc_map(&r, ptr, GW_METRICS_MAX_TENANT_SLOTS - 1, slots), 0);
	cr_expect_eq(slots[GW_METRICS_MAX_TENANT_SLOTS - 2], GW_METRICS_MAX_TENANT_SLOTS - 1);
	cr_expect_eq(gw_metrics_rpc_map(&r, small, 1, slots + 0), -1);
	cr_expect_eq(r.refused, 2);
	gw_metrics_rpc_free(&r);
}

static const char *const rpc_paths[] = { "/a.S/One", "/a.S/Two" };

static const char *rpc_path(const void *arg, size_t i)
{
	return ((const char *const *)arg)[i];
}

static void print_rpc(void *arg, struct gw_metrics_out *o)
{
	gw_metrics_rpc_render(arg, 2, rpc_path, rpc_paths, o);
}

Test(metrics, rpc_render_by_tenant)
{
	static struct gw_metrics_rpc r;
	static const char *const tenants[] = { "team-a", "we \"quote\"" };
	static const struct line_case cases[] = {
		{ "# TYPE " P "rpc_total counter", 1 },
		{ P "rpc_total{tenant=\"team-a\",method=\"/a.S/One\",code=\"OK\"} 2", 1 },
		{ P "rpc_total{tenant=\"team-a\",method=\"/a.S/One\",code=\"NOT_FOUND\"} 1", 1 },
		{ P "rpc_total{tenant=\"we \\\"quote\\\"\",method=\"/a.S/Two\",code=\"OK\"} 1", 1 },
		{ P "rpc_total{tenant=\"-\",method=\"/a.S/Two\",code=\"UNAUTHENTICATED\"} 4", 1 },
		{ P "rpc_total{tenant=\"team-a\",method=\"/a.S/Two\",code=\"OK\"} 0", 0 },
		{ "# TYPE " P "rpc_duration_seconds histogram", 1 },
		{ P "rpc_duration_seconds_count{tenant=\"team-a\",method=\"/a.S/One\"} 3", 1 },
		{ P "rpc_duration_seconds_bucket{tenant=\"-\",method=\"/a.S/Two\",le=\"0.001\"} 4", 1 },
		{ P "rpc_duration_seconds_count{tenant=\"team-a\",method=\"/a.S/Two\"} 0", 0 },
		{ P "rpc_tenant_slots_refused_total 0", 1 },
	};
	struct gw_metrics_reg reg = { 0 };
	uint32_t slots[2];
	char *out;

	memset(&r, 0, sizeof r);
	cr_assert_eq(gw_metrics_rpc_map(&r, tenants, 2, slots), 0);
	gw_metrics_rpc(gw_metrics_rpc_cells(&r, slots[0]), 0, 0, 10);
	gw_metrics_rpc(gw_metrics_rpc_cells(&r, slots[0]), 0, 0, 10);
	gw_metrics_rpc(gw_metrics_rpc_cells(&r, slots[0]), 0, 5, 10);
	gw_metrics_rpc(gw_metrics_rpc_cells(&r, slots[1]), 1, 0, 10);
	for (int i = 0; i < 4; i++)
		gw_metrics_rpc(r.none, 1, 16, 10);
	cr_assert_eq(gw_metrics_register(&reg, print_rpc, &r), 0);
	out = render(&reg);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(has_line(out, cases[i].line), cases[i].present, "%s: %s\n--- output:\n%s",
			     cases[i].present ? "missing" : "unexpected", cases[i].line, out);
	free(out);
	gw_metrics_rpc_unmap(&r, slots, 2);
	out = render(&reg);	/* the tenants are gone: their series with them */
	cr_expect_null(strstr(out, "team-a"), "%s", out);
	cr_expect(has_line(out, P "rpc_total{tenant=\"-\",method=\"/a.S/Two\",code=\"UNAUTHENTICATED\"} 4"));
	free(out);
	gw_metrics_rpc_free(&r);
}

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
