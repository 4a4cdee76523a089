/* Unit tests for gateway/svc/follower.c: its pure parts (the polling pace, the retry backoff, the
 * polling token bucket, the tick, the outcome metric's error label, the source names). */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/svc/follower.h"

#define S 1000LL
#define MIN (60 * S)

Test(follower, poll_delay_table)
{
	static const struct {
		int64_t interval, max, quiet;
		int webhooks;
		int64_t age;
		int64_t want;
	} cases[] = {
		/* no webhooks: the first poll one interval after the start */
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 0, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 4 * S, 6 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, -5 * S, 10 * S },	/* clock step: as new */
		/* then age / 8 within [interval, max] */
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 10 * S, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 80 * S, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 16 * MIN, 2 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 40 * MIN, 5 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 6 * 60 * MIN, 5 * MIN },
		/* webhooks configured: nothing before the job has been quiet for quiet_ms */
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 0, 10 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 9 * MIN, 1 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 16 * MIN, 2 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 60 * MIN, 5 * MIN },
		/* interval == max: a fixed period */
		{ 300, 300, 600000, 0, 50 * S, 300 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_follower_pace p = { cases[i].interval, cases[i].max, cases[i].quiet,
					      cases[i].webhooks };

		cr_expect_eq(gw_follower_poll_delay(&p, cases[i].age), cases[i].want, "case %zu: %lld", i,
			     (long long)gw_follower_poll_delay(&p, cases[i].age));
	}
}

Test(follower, retry_delay_doubles_to_its_cap)
{
	static const struct {
		unsigned attempt;
		int64_t want;
	} cases[] = {
		{ 0, GW_FOLLOWER_RETRY_MIN_MS }, { 1, GW_FOLLOWER_RETRY_MIN_MS },
		{ 2, 2 * GW_FOLLOWER_RETRY_MIN_MS }, { 5, 16 * GW_FOLLOWER_RETRY_MIN_MS },
		{ 10, 512 * GW_FOLLOWER_RETRY_MIN_MS }, { 11, GW_FOLLOWER_RETRY_MAX_MS },
		{ 1000, GW_FOLLOWER_RETRY_MAX_MS }, { 4000000000u, GW_FOLLOWER_RETRY_MAX_MS },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_follower_retry_delay(cases[i].attempt), cases[i].want, "case %zu", i);
}

Test(follower, refill_table)
{
	static const struct {
		double tokens, rate;
		int64_t dt;
		double want;
	} cases[] = {
		{ 0, 20, 100, 2 },	/* 20/s for 100 ms */
		{ 0, 20, 5000, 20 },	/* capped at one second's worth */
		{ 19.5, 20, 100, 20 },
		{ 0, 0.5, 1000, 0.5 },	/* slow rates still reach one token: cap is 1 */
		{ 0.5, 0.5, 5000, 1 },
		{ 3, 20, 0, 3 },
		{ 3, 20, -50, 3 },	/* the clock never runs back, but if it did: nothing */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_float_eq(gw_follower_refill(cases[i].tokens, cases[i].rate, cases[i].dt),
				   cases[i].want, 1e-9, "case %zu", i);
}

Test(follower, tick_table)
{
	static const struct {
		int64_t interval, want;
	} cases[] = {
		{ 100, GW_FOLLOWER_TICK_MIN_MS }, { 300, 75 }, { 2000, 500 }, { 10000, GW_FOLLOWER_TICK_MAX_MS },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_follower_tick_ms(cases[i].interval), cases[i].want, "case %zu", i);
}

Test(follower, error_label_and_source_names)
{
	static const struct {
		int state, code;
		const char *want;
	} cases[] = {
		{ ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, "" },
		{ ANIMATE3D__V1__JOB_STATE__SUCCESS, 513, "" },	/* a success has no error */
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 513, "513" },
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 0, "0" },
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 1399, "1399" },
	};
	char out[16];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_follower_error_label(cases[i].state, cases[i].code, out);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_WEBHOOK), "webhook");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_POLL), "poll");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_PEER), "peer");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_FOLLOWER), "follower");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_NSRC), "unknown");
	cr_expect_str_eq(gw_follower_source_name(-1), "unknown");
}
