/* Unit tests for gateway/base/ratelimit.c: token-bucket arithmetic as tables of time -> verdict/wait,
 * and the per-tenant table across a reload (method costs: test_admit.c). */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/base/ratelimit.h"

struct take_step {
	int64_t now;
	unsigned cost;
	int ok;
	int64_t wait;
};

static void run_takes(const char *name, double rate, double burst, const struct take_step *s, size_t n)
{
	struct gw_bucket b;

	gw_bucket_init(&b, rate, burst, 0);
	for (size_t i = 0; i < n; i++) {
		int64_t wait = 12345;
		int ok = gw_bucket_take(&b, s[i].cost, s[i].now, &wait);

		cr_expect_eq(ok, s[i].ok, "%s step %zu (t=%lld cost=%u): ok %d, want %d", name, i,
			     (long long)s[i].now, s[i].cost, ok, s[i].ok);
		cr_expect_eq(wait, s[i].wait, "%s step %zu (t=%lld cost=%u): wait %lld, want %lld", name,
			     i, (long long)s[i].now, s[i].cost, (long long)wait, (long long)s[i].wait);
	}
}

Test(ratelimit, bucket_table_10_per_s_burst_5)
{
	static const struct take_step steps[] = {
		{ 0, 5, 1, 0 },		/* starts full */
		{ 0, 1, 0, 100 },	/* empty: one token every 100 ms */
		{ 50, 1, 0, 50 },	/* half a token earned: exactly 50 ms to go */
		{ 99, 1, 0, 1 },
		{ 100, 1, 1, 0 },
		{ 100, 3, 0, 300 },
		{ 399, 3, 0, 1 },
		{ 400, 3, 1, 0 },
		{ 400, 6, 0, -1 },	/* more than the burst: never */
		{ 400, 0, 1, 0 },	/* free */
		{ 10000, 5, 1, 0 },	/* long idle: refilled to the burst, not beyond */
		{ 10000, 1, 0, 100 },
		{ 9000, 1, 0, 100 },	/* clock went back: nothing earned, nothing lost */
		{ 10100, 1, 1, 0 },
	};

	run_takes("10/s", 10, 5, steps, sizeof steps / sizeof steps[0]);
}

Test(ratelimit, bucket_table_fractional_and_unlimited)
{
	static const struct take_step half[] = {
		{ 0, 1, 1, 0 },
		{ 0, 1, 0, 2000 },	/* 0.5 token/s */
		{ 1999, 1, 0, 1 },
		{ 2000, 1, 1, 0 },
		{ 2000, 2, 0, -1 },	/* burst 1 */
	};
	static const struct take_step third[] = {
		{ 0, 2, 1, 0 },
		{ 0, 1, 0, 334 },	/* 333.3 ms rounds up: at 333 the token is not whole yet */
		{ 333, 1, 0, 1 },
		{ 334, 1, 1, 0 },
		{ 334, 2, 0, 666 },	/* the 0.002 token left over at 334 ms counts: 666, not 667 */
		{ 999, 2, 0, 1 },
		{ 1000, 2, 1, 0 },
	};
	static const struct take_step unlimited[] = {
		{ 0, 1, 1, 0 },
		{ 0, 1000, 1, 0 },
		{ 0, 1000, 1, 0 },
		{ -5, 7, 1, 0 },
	};
	static const struct take_step tiny[] = {
		/* 0.0001/s is below the fixed-point step: it must stay a limit, never become "unlimited". */
		{ 0, 1, 1, 0 },
		{ 0, 1, 0, 1000000 },
	};
	static const struct take_step zero_burst[] = {
		{ 0, 1, 0, -1 },
		{ 100000, 1, 0, -1 },
		{ 0, 0, 1, 0 },
	};

	run_takes("0.5/s", 0.5, 1, half, sizeof half / sizeof half[0]);
	run_takes("3/s", 3, 2, third, sizeof third / sizeof third[0]);
	run_takes("unlimited", 0, 0, unlimited, sizeof unlimited / sizeof unlimited[0]);
	run_takes("tiny", 0.0001, 1, tiny, sizeof tiny / sizeof tiny[0]);
	run_takes("zero burst", 5, 0, zero_burst, sizeof zero_burst / sizeof zero_burst[0]);
}

Test(ratelimit, many_small_refills_equal_one_big_one)
{
	static const double rates[] = { 7.3, 20, 0.5, 333.333, 1000000 };

	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
		struct gw_bucket a, b;
		const double burst = 1e6;

		gw_bucket_init(&a, rates[r], burst, 0);
		gw_bucket_init(&b, rates[r], burst, 0);
		cr_assert(gw_bucket_take(&a, 1000, 0, NULL));
		cr_assert(gw_bucket_take(&b, 1000, 0, NULL));
		for (int64_t t = 1; t <= 10000; t++)
			(void)gw_bucket_level(&a, t);
		cr_expect_eq(gw_bucket_level(&a, 10000), gw_bucket_level(&b, 10000),
			     "rate %g: stepwise %.6f vs at once %.6f", rates[r], (double)a.tokens / 1e6,
			     (double)b.tokens / 1e6);
	}
}

Test(ratelimit, honouring_the_wait_always_succeeds_and_rate_is_exact)
{
	/* A client that sleeps exactly the wait it is told gets through every time, and over 10 s
	 * of saturation gets burst + rate * 10 grants: no drift either way. */
	static const struct {
		double rate, burst;
		unsigned cost;
	} cases[] = {
		{ 20, 40, 1 }, { 20, 40, 5 }, { 7, 3, 2 }, { 0.5, 1, 1 }, { 1000, 10, 1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_bucket b;
		int64_t now = 0, wait;
		uint64_t grants = 0;
		unsigned guard = 0;

		gw_bucket_init(&b, cases[i].rate, cases[i].burst, 0);
		while (now <= 10000 && guard++ < 100000) {
			if (gw_bucket_take(&b, cases[i].cost, now, &wait)) {
				grants++;
				continue;
			}
			cr_assert_gt(wait, 0, "case %zu: wait %lld", i, (long long)wait);
			now += wait;
			if (now > 10000)
				break;
			cr_assert(gw_bucket_take(&b, cases[i].cost, now, &wait),
				  "case %zu: refused at t=%lld after waiting as told", i, (long long)now);
			grants++;
		}
		uint64_t want = (uint64_t)((cases[i].burst + cases[i].rate * 10) / cases[i].cost);

		cr_expect_eq(grants, want, "case %zu: %llu grants in 10 s, want %llu", i,
			     (unsigned long long)grants, (unsigned long long)want);
	}
}

Test(ratelimit, time_for_projection)
{
	struct gw_bucket b;
	static const struct {
		int64_t now;
		uint64_t tokens;
		int64_t ms;
	} cases[] = {
		{ 0, 0, 0 }, { 0, 1, 100 }, { 0, 3, 300 }, { 50, 1, 50 },
		{ 50, 25, 2450 },	/* past the burst: a queue projection ignores the cap */
		{ 1000, 10, 0 },
	};

	gw_bucket_init(&b, 10, 10, 0);
	cr_assert(gw_bucket_take(&b, 10, 0, NULL));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ms = gw_bucket_time_for(&b, cases[i].tokens, cases[i].now);

		cr_expect_eq(ms, cases[i].ms, "case %zu: %lld ms, want %lld", i, (long long)ms,
			     (long long)cases[i].ms);
	}
	gw_bucket_init(&b, 0, 0, 0);
	cr_expect_eq(gw_bucket_time_for(&b, 1000, 0), 0);
}

Test(ratelimit, set_keeps_level)
{
	struct gw_bucket b;
	int64_t wait;

	gw_bucket_init(&b, 10, 10, 0);
	cr_assert(gw_bucket_take(&b, 8, 0, NULL));	/* 2 left */
	gw_bucket_set(&b, 20, 5, 0);
	cr_expect_eq(gw_bucket_level(&b, 0), 2.0);
	cr_expect_not(gw_bucket_take(&b, 3, 0, &wait));
	cr_expect_eq(wait, 50);				/* the new rate: 1 token in 50 ms */
	gw_bucket_set(&b, 20, 1, 0);			/* smaller burst clamps the level */
	cr_expect_eq(gw_bucket_level(&b, 0), 1.0);
	gw_bucket_init(&b, 0, 0, 0);
	gw_bucket_set(&b, 10, 4, 0);			/* unlimited -> limited starts full */
	cr_expect_eq(gw_bucket_level(&b, 0), 4.0);
	cr_expect_eq(b.allowed + b.refused, 0);
}

Test(ratelimit, counters)
{
	struct gw_bucket b;

	gw_bucket_init(&b, 1, 2, 0);
	(void)gw_bucket_take(&b, 1, 0, NULL);
	(void)gw_bucket_take(&b, 1, 0, NULL);
	(void)gw_bucket_take(&b, 1, 0, NULL);
	(void)gw_bucket_take(&b, 3, 0, NULL);
	cr_expect_eq(b.allowed, 2);
	cr_expect_eq(b.refused, 2);
	cr_expect_eq(b.refused_never, 1);
}

Test(ratelimit, tenants_survive_reload)
{
	static const struct gw_ratelimit_spec s1[] = { { "team-a", 100, 100 }, { "team-b", 1, 2 } },
					      s2[] = { { "team-b", 1, 2 }, { "team-c", 5, 5 } };
	struct gw_ratelimit *rl, *rl2;
	int64_t wait;

	rl = gw_ratelimit_rebuild(NULL, s1, 2, 0);
	cr_assert_not_null(rl);
	cr_expect(gw_ratelimit_take(rl, 1, "team-b", 2, 0, &wait));
	cr_expect_not(gw_ratelimit_take(rl, 1, "team-b", 1, 0, &wait));
	cr_expect_eq(wait, 1000);
	cr_expect_eq(rl->t[1].limited, 1);

	rl2 = gw_ratelimit_rebuild(rl, s2, 2, 10);
	cr_assert_not_null(rl2);
	gw_ratelimit_free(rl);
	/* team-b moved to index 0 and is still empty (10 ms earned 0.01 token). */
	cr_expect_not(gw_ratelimit_take(rl2, 0, "team-b", 1, 10, &wait));
	cr_expect_eq(wait, 990);
	cr_expect_eq(rl2->t[0].limited, 2);
	/* A call holding team-b's old index 1 is looked up by name. */
	cr_expect_not(gw_ratelimit_take(rl2, 1, "team-b", 1, 10, &wait));
	/* team-c is new: full. */
	cr_expect(gw_ratelimit_take(rl2, 1, "team-c", 5, 10, &wait));
	/* team-a is gone: allowed, counted. */
	cr_expect(gw_ratelimit_take(rl2, 0, "team-a", 1, 10, &wait));
	cr_expect_eq(wait, 0);
	cr_expect_eq(rl2->unknown_tenant, 1);
	/* Cost clamped: 1e6 > burst 5 of team-c is never satisfiable. */
	cr_expect_not(gw_ratelimit_take(rl2, 1, "team-c", 1000000, 10, &wait));
	cr_expect_eq(wait, -1);
	gw_ratelimit_free(rl2);
	gw_ratelimit_free(NULL);
	cr_expect(gw_ratelimit_take(NULL, 0, "x", 1, 0, &wait));
}

Test(ratelimit, rebuild_bounds)
{
	cr_expect_null(gw_ratelimit_rebuild(NULL, NULL, 1, 0));
	cr_expect_null(gw_ratelimit_rebuild(NULL, NULL, GW_RATELIMIT_MAX_TENANTS + 1, 0));
	{
		struct gw_ratelimit *rl = gw_ratelimit_rebuild(NULL, NULL, 0, 0);

		cr_assert_not_null(rl);
		cr_expect_eq(rl->n, 0);
		gw_ratelimit_free(rl);
	}
}
