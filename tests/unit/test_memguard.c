/* Unit tests for gateway/base/memguard.c: the decision as a table of (RSS, time) -> action, with a
 * 1000-byte ceiling (shed mark 750, trim mark 500). */
#include <criterion/criterion.h>

#include "gateway/base/memguard.h"

Test(memguard, decisions)
{
	static const struct {
		uint64_t rss;
		int64_t now_ms;
		enum gw_memguard_action want;
	} steps[] = {
		{ 100, 0, GW_MEMGUARD_NONE },		/* calm */
		{ 500, 10, GW_MEMGUARD_TRIM },		/* half the ceiling: give freed memory back */
		{ 600, 20, GW_MEMGUARD_NONE },		/* ...at most once a second */
		{ 750, 30, GW_MEMGUARD_SHED },		/* 3/4: shed; the next no sooner than 1 s */
		{ 900, 500, GW_MEMGUARD_NONE },
		{ 900, 1010, GW_MEMGUARD_TRIM },	/* waiting: trims go on */
		{ 900, 1029, GW_MEMGUARD_NONE },
		{ 900, 1030, GW_MEMGUARD_SHED },	/* never under the mark since: the wait doubles */
		{ 900, 2010, GW_MEMGUARD_TRIM },
		{ 900, 2500, GW_MEMGUARD_NONE },
		{ 900, 3030, GW_MEMGUARD_SHED },	/* after 2 s; the next after 4 s */
		{ 300, 4000, GW_MEMGUARD_NONE },	/* back under the mark: shedding helped */
		{ 800, 7029, GW_MEMGUARD_TRIM },
		{ 800, 7030, GW_MEMGUARD_SHED },	/* and the wait is back to 1 s */
		{ 800, 7500, GW_MEMGUARD_NONE },
		{ 800, 8030, GW_MEMGUARD_SHED },
	};
	struct gw_memguard_state s = { 0 };
	unsigned sheds = 0;

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		enum gw_memguard_action a = gw_memguard_decide(&s, steps[i].rss, 1000, steps[i].now_ms);

		cr_expect_eq(a, steps[i].want, "step %zu (rss %llu at %lld): %d", i,
			     (unsigned long long)steps[i].rss, (long long)steps[i].now_ms, a);
		sheds += a == GW_MEMGUARD_SHED;
	}
	cr_expect_eq(s.sheds, sheds);
}

Test(memguard, waits_cap_and_no_ceiling)
{
	struct gw_memguard_state s = { 0 };
	int64_t t = 0;

	for (int i = 0; i < 12; i++) {	/* never calm: 1, 2, 4, ... capped at the maximum */
		while (gw_memguard_decide(&s, 10000, 1000, t) != GW_MEMGUARD_SHED)
			t += 100;
		if (i >= 6)
			cr_expect_eq(s.shed_wait_ms, GW_MEMGUARD_SHED_MAX_MS, "shed %d", i);
	}
	cr_expect_eq(gw_memguard_decide(&(struct gw_memguard_state){ 0 }, 1u << 30, 0, 0), GW_MEMGUARD_NONE);
	cr_expect_gt(gw_memguard_rss(), 0);
}

/* A relief that closed connections (relieved_ms) holds the shed back for GW_MEMGUARD_SHED_MIN_MS:
 * what those connections had queued needs time to drain, and the shed would fail everyone. */
Test(memguard, relief_holds_the_shed)
{
	static const struct {
		int64_t relieved_ms;	/* 0: no relief */
		int64_t now_ms;
		enum gw_memguard_action want;
	} steps[] = {
		{ 100, 100, GW_MEMGUARD_TRIM },		/* over the mark, relieved just now: no shed */
		{ 100, 1099, GW_MEMGUARD_NONE },
		{ 100, 1100, GW_MEMGUARD_SHED },	/* a second without relief: shed */
		{ 2500, 2600, GW_MEMGUARD_TRIM },	/* relieved again: the shed waits (trims go on) */
		{ 2500, 3499, GW_MEMGUARD_NONE },
		{ 2500, 3500, GW_MEMGUARD_SHED },
	};
	struct gw_memguard_state s = { 0 };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		s.relieved_ms = steps[i].relieved_ms;
		cr_expect_eq(gw_memguard_decide(&s, 900, 1000, steps[i].now_ms), steps[i].want,
			     "step %zu", i);
	}
}
