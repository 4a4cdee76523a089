/* Unit tests for gateway/base/slots.c: per-name and global caps, refusals counted per name, the
 * bounded name table, fair shares, and the /metrics rendering. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/metrics.h"
#include "gateway/base/slots.h"

/* One step of a scenario: take (give = 0) or give (give = 1) a slot of name with the caps. */
struct step {
	int give;
	const char *name;
	uint64_t name_cap, global_cap;
	enum gw_slots_verdict want;
};

static void run(struct gw_slots *s, const struct step *st, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (st[i].give) {
			gw_slots_give(s, st[i].name);
			continue;
		}
		enum gw_slots_verdict v = gw_slots_take(s, st[i].name, st[i].name_cap, st[i].global_cap);

		cr_assert_eq(v, st[i].want, "%s step %zu (%s): got %d, want %d", what, i,
			     st[i].name ? st[i].name : "(null)", v, st[i].want);
	}
}

Test(slots, caps_table)
{
	static const struct step steps[] = {
		{ 0, "team-a", 2, 4, GW_SLOTS_OK },
		{ 0, "team-a", 2, 4, GW_SLOTS_OK },
		{ 0, "team-a", 2, 4, GW_SLOTS_NAME_FULL },	/* its share is taken */
		{ 0, "team-b", 2, 4, GW_SLOTS_OK },		/* the other tenant still gets in */
		{ 0, "team-c", 2, 3, GW_SLOTS_GLOBAL_FULL },	/* 3 held, global 3 */
		{ 0, "team-b", 2, 4, GW_SLOTS_OK },
		{ 0, "team-c", 2, 4, GW_SLOTS_GLOBAL_FULL },	/* 4 held */
		{ 1, "team-a", 0, 0, 0 },
		{ 0, "team-c", 2, 4, GW_SLOTS_OK },		/* a slot came back */
		{ 1, "nobody", 0, 0, 0 },			/* unknown: ignored */
		{ 0, "team-a", 0, 0, GW_SLOTS_OK },		/* 0 = no cap */
		{ 0, "", 1, 1, GW_SLOTS_BAD },
		{ 0, NULL, 1, 1, GW_SLOTS_BAD },
	};
	struct gw_slots s;

	cr_assert_eq(gw_slots_init(&s, 16, 1), 0);
	run(&s, steps, sizeof steps / sizeof steps[0], "caps");
	cr_expect_eq(gw_slots_held(&s, "team-a"), 2);
	cr_expect_eq(gw_slots_held(&s, "team-b"), 2);
	cr_expect_eq(gw_slots_held(&s, "team-c"), 1);
	cr_expect_eq(s.used, 5);
	cr_expect_eq(s.peak, 5);
	cr_expect_eq(gw_slots_refused(&s, "team-a"), 1);
	cr_expect_eq(gw_slots_refused(&s, "team-c"), 2);
	cr_expect_eq(s.refused_name, 1);
	cr_expect_eq(s.refused_global, 2);
	gw_slots_free(&s);
	gw_slots_free(&s);	/* zeroed: fine twice */
}

Test(slots, over_long_name_is_refused)
{
	char name[GW_SLOTS_NAME_MAX + 2];
	struct gw_slots s;

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	cr_assert_eq(gw_slots_init(&s, 4, 1), 0);
	cr_expect_eq(gw_slots_take(&s, name, 0, 0), GW_SLOTS_BAD);
	name[GW_SLOTS_NAME_MAX] = '\0';	/* exactly the limit */
	cr_expect_eq(gw_slots_take(&s, name, 0, 0), GW_SLOTS_OK);
	gw_slots_free(&s);
}

Test(slots, table_is_bounded_and_reuses_idle_entries)
{
	struct gw_slots s;
	char name[16];

	cr_assert_eq(gw_slots_init(&s, 3, 1), 0);
	/* Three holders fill the table; a fourth name is refused, counted as "table". */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "t%d", i);
		cr_assert_eq(gw_slots_take(&s, name, 0, 0), GW_SLOTS_OK);
	}
	cr_expect_eq(gw_slots_take(&s, "t3", 0, 0), GW_SLOTS_TABLE_FULL);
	cr_expect_eq(s.refused_table, 1);
	/* t0 is refused once (cap 1), then gives its slot back: idle with a count, kept... */
	cr_expect_eq(gw_slots_take(&s, "t0", 1, 0), GW_SLOTS_NAME_FULL);
	gw_slots_give(&s, "t0");
	cr_expect_eq(s.nnames, 3);
	cr_expect_eq(gw_slots_refused(&s, "t0"), 1);
	/* ...until a new name needs the room: its count moves to refused_dropped. */
	cr_expect_eq(gw_slots_take(&s, "t3", 0, 0), GW_SLOTS_OK);
	cr_expect_eq(gw_slots_refused(&s, "t0"), 0);
	cr_expect_eq(s.refused_dropped, 1);
	cr_expect_eq(s.nnames, 3);
	gw_slots_free(&s);
}

Test(slots, peers_leave_no_entry_behind)
{
	struct gw_slots s;

	cr_assert_eq(gw_slots_init(&s, 2, 0), 0);
	cr_expect_eq(gw_slots_take(&s, "10.0.0.1", 1, 2), GW_SLOTS_OK);
	cr_expect_eq(gw_slots_take(&s, "10.0.0.1", 1, 2), GW_SLOTS_NAME_FULL);
	cr_expect_eq(gw_slots_take(&s, "10.0.0.2", 1, 2), GW_SLOTS_OK);
	cr_expect_eq(gw_slots_take(&s, "10.0.0.3", 1, 2), GW_SLOTS_GLOBAL_FULL);
	cr_expect_eq(s.nnames, 2);	/* the refused peer got no entry */
	gw_slots_give(&s, "10.0.0.1");
	gw_slots_give(&s, "10.0.0.2");
	cr_expect_eq(s.nnames, 0);
	cr_expect_eq(s.used, 0);
	cr_expect_eq(s.refused_name, 1);
	cr_expect_eq(s.refused_global, 1);
	gw_slots_free(&s);
}

Test(slots, fair_share_table)
{
	static const struct {
		uint64_t global;
		size_t names;
		uint64_t want;
	} cases[] = {
		{ 20000, 3, 6667 }, { 20000, 4, 5000 }, { 64, 1, 64 }, { 64, 0, 64 },
		{ 2, 5, 1 }, { 0, 3, 0 }, { 1, 1024, 1 }, { 4096, 3, 1366 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_slots_fair_share(cases[i].global, cases[i].names), cases[i].want,
			     "case %zu", i);
}

Test(slots, render_per_name_and_totals)
{
	struct gw_slots s;
	struct evbuffer *out = evbuffer_new();
	struct gw_metrics_out o = { out, 0 };
	char *text;
	size_t len;

	cr_assert_eq(gw_slots_init(&s, 8, 1), 0);
	gw_slots_take(&s, "team-\"a\"", 1, 0);
	gw_slots_take(&s, "team-\"a\"", 1, 0);
	gw_slots_render(&s, "watch_streams_tenant", "Open streams.", "tenant", "tenant", 1, &o);
	cr_assert_eq(o.bad, 0);
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	evbuffer_remove(out, text, len);
	cr_expect(strstr(text, "# TYPE animate3d_gateway_watch_streams_tenant_held gauge\n"), "%s", text);
	cr_expect(strstr(text, "animate3d_gateway_watch_streams_tenant_held{tenant=\"team-\\\"a\\\"\"} 1\n"),
		  "%s", text);
	cr_expect(strstr(text, "animate3d_gateway_watch_streams_tenant_refused_total{tenant=\"team-\\\"a\\\"\","
			       "cap=\"tenant\"} 1\n"), "%s", text);
	cr_expect(strstr(text, "animate3d_gateway_watch_streams_tenant_refused_total{cap=\"table\"} 0\n"),
		  "%s", text);
	free(text);
	gw_slots_render(&s, "health_watch_peer", "Open streams.", "peer", "peer", 0, &o);
	cr_assert_eq(o.bad, 0);
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	evbuffer_remove(out, text, len);
	cr_expect(strstr(text, "animate3d_gateway_health_watch_peer_held 1\n"), "%s", text);
	cr_expect(strstr(text, "animate3d_gateway_health_watch_peer_refused_total{cap=\"peer\"} 1\n"), "%s",
		  text);
	cr_expect(!strstr(text, "team-"), "no per-name samples: %s", text);
	free(text);
	evbuffer_free(out);
	gw_slots_free(&s);
}
