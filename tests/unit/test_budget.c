/* Unit tests for gateway/svc/budget.c: the pure parts (the charge of a job, the windows and
 * their reset times, the month of the CSV export, the decision and the refusal's text). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/config/config.h"
#include "gateway/svc/budget.h"

/* input seconds (-1 unknown), trim? from, to -> charged seconds (-1: cannot be told). The
 * simulator charges ceil(processed), processed = min(to, input) - from when > 0, else input. */
static const struct {
	double input;
	int trim;
	double from, to;
	int64_t want;
} charge_cases[] = {
	{ 3.0, 0, 0, 0, 3 },
	{ 2.001, 0, 0, 0, 3 },		/* rounded up */
	{ 59.999, 0, 0, 0, 60 },
	{ 0.0, 0, 0, 0, 0 },
	{ 10.0, 1, 2.0, 5.5, 4 },	/* 3.5 s kept */
	{ 10.0, 1, 2.0, 50.0, 8 },	/* to past the end: the rest of the video */
	{ 10.0, 1, 12.0, 20.0, 10 },	/* nothing left: upstream processes the whole input */
	{ 10.0, 1, 5.0, 5.0, 10 },
	{ -1.0, 0, 0, 0, -1 },		/* unknown */
	{ -1.0, 1, 1.0, 4.2, 4 },	/* unknown input, trimmed: the trim's span */
	{ -1.0, 1, 4.0, 1.0, -1 },
};

Test(budget, charge_table)
{
	for (size_t i = 0; i < sizeof charge_cases / sizeof charge_cases[0]; i++)
		cr_expect_eq(gw_budget_charge_s(charge_cases[i].input, charge_cases[i].trim,
						charge_cases[i].from, charge_cases[i].to),
			     charge_cases[i].want, "case %zu", i);
}

#define MS(y) ((int64_t)(y) * 1000)

/* window, now, oldest -> from, reset (as RFC 3339) */
static const struct {
	int window;
	int64_t now, oldest;
	const char *from, *reset;
} window_cases[] = {
	/* 1795996800 is 2026-11-30T00:00:00Z, 1796083200 2026-12-01 */
	{ GW_BUDGET_WINDOW_MONTH, MS(1795996800), 0, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, MS(1796083200) - 1, 0, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, MS(1796083200), 0, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, MS(1798761599), 0, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, MS(1798761600), 0, "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, MS(1709164800), 0, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_MONTH, 0, 0, "1970-01-01T00:00:00Z", "1970-02-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_ROLLING_30D, MS(1798761600), 0, "2026-12-02T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ GW_BUDGET_WINDOW_ROLLING_30D, MS(1798761600), MS(1798675200), "2026-12-02T00:00:00Z",
	  "2027-01-30T00:00:00Z" },	/* the oldest counted row leaves 30 days after it started */
};

Test(budget, window_table)
{
	for (size_t i = 0; i < sizeof window_cases / sizeof window_cases[0]; i++) {
		int64_t from = -1, reset = -1;
		char a[32], b[32];

		gw_budget_window(window_cases[i].window, window_cases[i].now, window_cases[i].oldest,
				 &from, &reset);
		cr_expect_str_eq(gw_budget_rfc3339(from, a, sizeof a), window_cases[i].from, "case %zu", i);
		cr_expect_str_eq(gw_budget_rfc3339(reset, b, sizeof b), window_cases[i].reset, "case %zu", i);
	}
}

Test(budget, rfc3339_has_the_time_of_day)
{
	char out[32];

	cr_expect_str_eq(gw_budget_rfc3339(MS(1796041845) + 999, out, sizeof out),
			 "2026-11-30T12:30:45Z");
}

static const struct {
	const char *s;
	int rc;
	const char *from, *to;
} month_cases[] = {
	{ "2026-11", 0, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z" },
	{ "2026-12", 0, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ "2024-02", 0, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z" },
	{ "2026-13", -1, NULL, NULL },
	{ "2026-00", -1, NULL, NULL },
	{ "2026-1", -1, NULL, NULL },
	{ "2026/11", -1, NULL, NULL },
	{ "2026-11-01", -1, NULL, NULL },
	{ "20a6-11", -1, NULL, NULL },
	{ "+026-11", -1, NULL, NULL },
	{ "", -1, NULL, NULL },
};

Test(budget, month_table)
{
	for (size_t i = 0; i < sizeof month_cases / sizeof month_cases[0]; i++) {
		int64_t from = 0, to = 0;
		char a[32], b[32];
		int rc = gw_budget_month(month_cases[i].s, &from, &to);

		cr_expect_eq(rc, month_cases[i].rc, "case %zu (%s)", i, month_cases[i].s);
		if (rc == 0 && month_cases[i].rc == 0) {
			cr_expect_str_eq(gw_budget_rfc3339(from, a, sizeof a), month_cases[i].from);
			cr_expect_str_eq(gw_budget_rfc3339(to, b, sizeof b), month_cases[i].to);
		}
	}
	cr_expect_eq(gw_budget_month(NULL, NULL, NULL), -1);
}

/* used, need, limit minutes -> over */
static const struct {
	int64_t used, need;
	long long limit;
	int over;
} over_cases[] = {
	{ 0, 60, 1, 0 },	/* exactly the budget */
	{ 0, 61, 1, 1 },
	{ 57, 3, 1, 0 },
	{ 57, 4, 1, 1 },
	{ 0, 0, 0, 0 },		/* a zero budget still runs jobs of unknown (0) length */
	{ 0, 1, 0, 1 },
};

Test(budget, over_table)
{
	for (size_t i = 0; i < sizeof over_cases / sizeof over_cases[0]; i++)
		cr_expect_eq(gw_budget_over(over_cases[i].used, over_cases[i].need, over_cases[i].limit),
			     over_cases[i].over, "case %zu", i);
}

Test(budget, refusal_names_team_minutes_and_reset)
{
	char out[GW_BUDGET_MSG_MAX];

	gw_budget_refusal(out, sizeof out, "team-b", 57, 6, 1, GW_BUDGET_WINDOW_MONTH, MS(1796083200));
	cr_expect_str_eq(out, "budget of team team-b is spent: 0.95 of 1 minutes used this month,"
			      " this job needs 0.10 more; it resets at 2026-12-01T00:00:00Z");
	gw_budget_refusal(out, sizeof out, "t", 600, 60, 10, GW_BUDGET_WINDOW_ROLLING_30D, 0);
	cr_expect_str_eq(out, "budget of team t is spent: 10.00 of 10 minutes used in the last 30"
			      " days, this job needs 1.00 more; it resets at 1970-01-01T00:00:00Z");
}
