/* Unit tests for gateway/base/breaker.c: the state machine as tables of (time, event) -> answer/state. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/base/breaker.h"

enum { ALLOW, OK, FAIL };

struct step {
	int op;
	int64_t now;
	int allowed;		/* ALLOW only */
	int64_t wait;		/* ALLOW only */
	enum gw_breaker_state state;	/* after the step */
};

static void run_steps(const char *name, struct gw_breaker *b, const struct step *s, size_t n)
{
	static const char *ops[] = { "allow", "ok", "fail" };

	for (size_t i = 0; i < n; i++) {
		int64_t wait = -7;

		if (s[i].op == ALLOW) {
			int a = gw_breaker_allow(b, s[i].now, &wait);

			cr_expect_eq(a, s[i].allowed, "%s step %zu (%s t=%lld): allowed %d", name, i,
				     ops[s[i].op], (long long)s[i].now, a);
			cr_expect_eq(wait, s[i].wait, "%s step %zu (%s t=%lld): wait %lld want %lld", name,
				     i, ops[s[i].op], (long long)s[i].now, (long long)wait,
				     (long long)s[i].wait);
		} else {
			gw_breaker_result(b, s[i].op == OK, s[i].now);
		}
		cr_expect_eq(b->state, s[i].state, "%s step %zu (%s t=%lld): state %s want %s", name, i,
			     ops[s[i].op], (long long)s[i].now, gw_breaker_state_name(b->state),
			     gw_breaker_state_name(s[i].state));
	}
}

#define C GW_BREAKER_CLOSED
#define O GW_BREAKER_OPEN
#define H GW_BREAKER_HALF_OPEN

Test(breaker, open_probe_close_table)
{
	struct gw_breaker b;
	static const struct step steps[] = {
		{ ALLOW, 0, 1, 0, C },
		{ FAIL, 1, 0, 0, C },
		{ FAIL, 2, 0, 0, C },
		{ OK, 3, 0, 0, C },		/* a success resets the streak */
		{ FAIL, 4, 0, 0, C },
		{ FAIL, 5, 0, 0, C },
		{ FAIL, 10, 0, 0, O },		/* third in a row: open at t=10 */
		{ ALLOW, 10, 0, 1000, O },	/* fail fast, probe in 1000 ms */
		{ ALLOW, 500, 0, 510, O },
		{ OK, 600, 0, 0, O },		/* a late answer from before the opening changes nothing */
		{ FAIL, 601, 0, 0, O },
		{ ALLOW, 1009, 0, 1, O },
		{ ALLOW, 1010, 1, 0, H },	/* the probe */
		{ ALLOW, 1011, 0, 999, H },	/* only one probe at a time */
		{ FAIL, 1020, 0, 0, O },	/* probe failed: open again from t=1020 */
		{ ALLOW, 2019, 0, 1, O },
		{ ALLOW, 2020, 1, 0, H },
		{ OK, 2030, 0, 0, C },		/* probe succeeded */
		{ ALLOW, 2031, 1, 0, C },
		{ FAIL, 2032, 0, 0, C },	/* the streak starts from zero after closing */
		{ FAIL, 2033, 0, 0, C },
		{ FAIL, 2034, 0, 0, O },
	};

	gw_breaker_init(&b, 3, 1000);
	run_steps("3/1000", &b, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(b.opened, 3);
	cr_expect_eq(b.half_opened, 2);
	cr_expect_eq(b.closed, 1);
	cr_expect_eq(b.rejected, 5);
}

Test(breaker, lost_probe_does_not_stick)
{
	struct gw_breaker b;
	static const struct step steps[] = {
		{ FAIL, 0, 0, 0, O },		/* threshold 1 */
		{ ALLOW, 100, 1, 0, H },	/* probe goes, and its answer never comes (cancelled) */
		{ ALLOW, 150, 0, 50, H },
		{ ALLOW, 199, 0, 1, H },
		{ ALLOW, 200, 1, 0, H },	/* presumed lost after open_ms: a new probe */
		{ OK, 210, 0, 0, C },
	};

	gw_breaker_init(&b, 1, 100);
	run_steps("lost probe", &b, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(b.half_opened, 2);
}

Test(breaker, defaults_and_clamps)
{
	struct gw_breaker b;
	int64_t wait;

	gw_breaker_init(&b, 0, 0);
	cr_expect_eq(b.threshold, GW_BREAKER_DEFAULT_FAILURES);
	cr_expect_eq(b.open_ms, GW_BREAKER_DEFAULT_OPEN_MS);
	for (int i = 0; i < GW_BREAKER_DEFAULT_FAILURES - 1; i++)
		gw_breaker_result(&b, 0, 0);
	cr_expect_eq(b.state, GW_BREAKER_CLOSED);
	gw_breaker_result(&b, 0, 0);
	cr_expect_eq(b.state, GW_BREAKER_OPEN);
	cr_expect_not(gw_breaker_allow(&b, 0, &wait));
	cr_expect_eq(wait, GW_BREAKER_DEFAULT_OPEN_MS);
	cr_expect_not(gw_breaker_allow(&b, 1, NULL));	/* NULL wait is fine */
	gw_breaker_init(&b, 2, -5);
	cr_expect_eq(b.open_ms, GW_BREAKER_DEFAULT_OPEN_MS);
	gw_breaker_init(&b, 2, 10LL * GW_BREAKER_MAX_OPEN_MS);
	cr_expect_eq(b.open_ms, GW_BREAKER_MAX_OPEN_MS);
}

Test(breaker, state_names)
{
	static const struct {
		enum gw_breaker_state s;
		const char *name;
	} cases[] = {
		{ GW_BREAKER_CLOSED, "closed" },
		{ GW_BREAKER_OPEN, "open" },
		{ GW_BREAKER_HALF_OPEN, "half_open" },
		{ (enum gw_breaker_state)42, "unknown" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_str_eq(gw_breaker_state_name(cases[i].s), cases[i].name, "case %zu", i);
}
