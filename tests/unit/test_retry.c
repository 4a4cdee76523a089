/* Unit tests for gateway/base/retry.c: full-jitter backoff bounds, the retry delay within a deadline,
 * and the retry budget (retries <= 20% of requests). */
#include <criterion/criterion.h>

#include <limits.h>

#include "gateway/base/retry.h"

#define DRAWS 20000

Test(retry, backoff_bounds_table)
{
	static const struct {
		unsigned attempt;
		long base, cap;
		long ceiling;	/* min(cap, base * 2^attempt) */
	} cases[] = {
		{ 0, 100, 10000, 100 },
		{ 1, 100, 10000, 200 },
		{ 3, 100, 10000, 800 },
		{ 6, 100, 10000, 6400 },
		{ 7, 100, 10000, 10000 },	/* 12800 capped */
		{ 40, 100, 10000, 10000 },
		{ 63, 100, 10000, 10000 },
		{ 64, 100, 10000, 10000 },	/* no shift past the width */
		{ 1000, 100, 10000, 10000 },
		{ 0, 50, 20, 20 },		/* base above cap */
		{ 30, 1, LONG_MAX, 1L << 30 },
		{ 70, 1, LONG_MAX, LONG_MAX },
		{ 2, 0, 1000, 0 },		/* no base: no wait */
		{ 2, 100, 0, 0 },
		{ 2, 100, -5, 0 },
		{ 2, -100, 1000, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t rng = 0x1234567 + i;
		long lo = LONG_MAX, hi = -1;
		double sum = 0;

		for (int k = 0; k < DRAWS; k++) {
			long d = gw_backoff_ms(cases[i].attempt, cases[i].base, cases[i].cap, &rng);

			cr_assert(d >= 0 && d <= cases[i].ceiling, "case %zu: %ld outside [0, %ld]", i, d,
				  cases[i].ceiling);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += (double)d;
		}
		/* Full jitter spreads over the whole range: the extremes are reached and the mean sits
		 * in the middle (20000 uniform draws: +-3% is ~10 standard deviations). */
		double c = (double)cases[i].ceiling, mean = sum / DRAWS;

		cr_expect(lo <= (long)(c * 0.01), "case %zu: smallest %ld of %ld", i, lo, cases[i].ceiling);
		cr_expect(hi >= (long)(c * 0.99), "case %zu: largest %ld of %ld", i, hi, cases[i].ceiling);
		cr_expect(mean >= c * 0.47 && mean <= c * 0.53, "case %zu: mean %.1f of %.0f", i, mean, c);
	}
}

Test(retry, prng_is_deterministic_and_survives_zero)
{
	uint64_t a = 42, b = 42, z = 0;
	int same = 1;

	for (int i = 0; i < 1000; i++)
		same &= gw_retry_rand(&a) == gw_retry_rand(&b);
	cr_expect(same);
	cr_expect_neq(gw_retry_rand(&z), 0);
	cr_expect_neq(z, 0);
	/* Different seeds, different streams. */
	a = 1;
	b = 2;
	cr_expect_neq(gw_retry_rand(&a), gw_retry_rand(&b));
}

Test(retry, delay_within_deadline_table)
{
	const struct gw_retry_policy p = { 50, 2000, 3, 200 };
	static const struct {
		unsigned attempt;
		long left;
		long lo, hi;	/* hi < 0: always -1 */
	} cases[] = {
		{ 0, 10000, -1, -1 },		/* attempt 0 is the first try, not a retry */
		{ 1, 10000, 0, 50 },
		{ 2, 10000, 0, 100 },
		{ 3, 10000, -1, -1 },		/* max_attempts 3: two retries */
		{ 1, -1, 0, 50 },		/* no deadline */
		{ 1, 250, 0, 50 },		/* 50 + 200 fits exactly */
		{ 1, 199, -1, -1 },		/* less than min_left */
		{ 1, 0, -1, -1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t rng = 99 + i;

		for (int k = 0; k < 2000; k++) {
			long d = gw_retry_delay_ms(&p, cases[i].attempt, cases[i].left, &rng);

			if (cases[i].hi < 0)
				cr_assert_eq(d, -1, "case %zu: %ld", i, d);
			else
				cr_assert(d >= cases[i].lo && d <= cases[i].hi, "case %zu: %ld", i, d);
		}
	}
	/* A deadline between: some delays fit, the others are refused, never one that does not fit. */
	uint64_t rng = 7;
	int fit = 0, refused = 0;

	for (int k = 0; k < 2000; k++) {
		long d = gw_retry_delay_ms(&p, 2, 260, &rng);

		cr_assert(d == -1 || (d >= 0 && d <= 60), "%ld", d);
		d < 0 ? refused++ : fit++;
	}
	cr_expect(fit > 0 && refused > 0, "fit %d refused %d", fit, refused);
	cr_expect_eq(gw_retry_delay_ms(NULL, 1, 1000, &rng), -1);
}

Test(retry, budget_table)
{
	struct gw_retry_budget b;
	static const struct {
		char op;	/* r = request, w = withdraw */
		int n;		/* times */
		int granted;	/* withdrawals expected granted among the n */
	} steps[] = {
		{ 'w', 12, 10 },	/* starts with max_tokens = 10 */
		{ 'r', 4, 0 },		/* 4 x 0.2 = 0.8 token */
		{ 'w', 1, 0 },
		{ 'r', 1, 0 },		/* 1.0 */
		{ 'w', 2, 1 },
		{ 'r', 1000, 0 },	/* capped at 10 tokens */
		{ 'w', 20, 10 },
	};

	gw_retry_budget_init(&b, 20, 10);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int granted = 0;

		for (int k = 0; k < steps[i].n; k++) {
			if (steps[i].op == 'r')
				gw_retry_budget_request(&b);
			else
				granted += gw_retry_budget_withdraw(&b);
		}
		cr_expect_eq(granted, steps[i].granted, "step %zu: %d granted", i, granted);
	}
	cr_expect_eq(b.requests, 1005);
	cr_expect_eq(b.retries, 21);
	cr_expect_eq(b.denied, 14);
}

Test(retry, dead_upstream_sees_at_most_1_2x)
{
	/* Every request fails and asks for up to 2 retries: attempts stay <= 1.2 x requests + the
	 * initial burst, whatever the load. */
	static const unsigned loads[] = { 10, 100, 1000, 100000 };

	for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++) {
		struct gw_retry_budget b;
		uint64_t attempts = 0;

		gw_retry_budget_init(&b, GW_RETRY_BUDGET_DEFAULT_PERCENT, GW_RETRY_BUDGET_DEFAULT_MAX);
		for (unsigned r = 0; r < loads[i]; r++) {
			gw_retry_budget_request(&b);
			attempts++;
			for (int k = 0; k < 2 && gw_retry_budget_withdraw(&b); k++)
				attempts++;
		}
		cr_expect(attempts <= loads[i] + loads[i] / 5 + GW_RETRY_BUDGET_DEFAULT_MAX,
			  "load %u: %llu attempts", loads[i], (unsigned long long)attempts);
		cr_expect(attempts >= loads[i] + loads[i] / 5, "load %u: budget unused (%llu)", loads[i],
			  (unsigned long long)attempts);
	}
}

Test(retry, budget_limits)
{
	struct gw_retry_budget b;

	gw_retry_budget_init(&b, 0, 10);	/* percent 0: never */
	gw_retry_budget_request(&b);
	cr_expect_not(gw_retry_budget_withdraw(&b));
	gw_retry_budget_init(&b, 500, 1);	/* clamped to 100%: one request pays one retry */
	cr_expect(gw_retry_budget_withdraw(&b));
	cr_expect_not(gw_retry_budget_withdraw(&b));
	gw_retry_budget_request(&b);
	cr_expect(gw_retry_budget_withdraw(&b));
	gw_retry_budget_init(&b, 20, 0);	/* 0 counts as 1: one retry, then five requests each */
	cr_expect(gw_retry_budget_withdraw(&b));
	cr_expect_not(gw_retry_budget_withdraw(&b));
	for (int i = 0; i < 4; i++)
		gw_retry_budget_request(&b);
	cr_expect_not(gw_retry_budget_withdraw(&b));
	gw_retry_budget_request(&b);
	cr_expect(gw_retry_budget_withdraw(&b));
}
