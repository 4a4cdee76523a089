/* Unit tests for gateway/base/lograte.c: lines per window, suppressed counts carried to the next
 * line written, a clock that goes back. */
#include <criterion/criterion.h>

#include "gateway/base/lograte.h"

Test(lograte, window_table)
{
	static const struct {
		int64_t now_ms;
		int allow;
		uint64_t suppressed;	/* reported with an allowed line */
	} steps[] = {
		{ 1000, 1, 0 }, { 1001, 1, 0 }, { 1002, 0, 0 }, { 1500, 0, 0 }, { 1999, 0, 0 },
		{ 2000, 1, 3 },		/* new window: the three dropped lines are reported once */
		{ 2001, 1, 0 }, { 2002, 0, 0 },
		{ 1500, 1, 1 },		/* the clock went back: a new window rather than silence */
		{ 9000, 1, 0 },
	};
	struct gw_lograte r = { 0 };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		uint64_t sup = 99;
		int a = gw_lograte_allow(&r, steps[i].now_ms, 2, &sup);

		cr_assert_eq(a, steps[i].allow, "step %zu", i);
		if (a)
			cr_assert_eq(sup, steps[i].suppressed, "step %zu: %llu", i, (unsigned long long)sup);
	}
	cr_expect_eq(r.suppressed_total, 4);
}

Test(lograte, default_budget)
{
	struct gw_lograte r = { 0 };
	int n = 0;

	for (int i = 0; i < 100; i++)
		n += gw_lograte_allow(&r, 5000, 0, NULL);
	cr_expect_eq(n, GW_LOGRATE_DEFAULT_LINES);
}
