/* Unit tests for gateway/base/iobrake.c: the decision as a table, then a real thread stopped by
 * the brake's signal (it notes the time as fast as it can; the brake shows as a gap). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "gateway/base/clock.h"
#include "gateway/base/iobrake.h"

#define MIB (1ull << 20)

Test(iobrake, decide)
{
	static const struct {
		uint64_t rss, ceiling, calls;
		int64_t span_ms, tick_ms, want;
		const char *why;
	} rows[] = {
		{ 300 * MIB, 512 * MIB, 100, 20, 20, 20, "half the ceiling, 5000 calls/s: a tick" },
		{ 256 * MIB, 512 * MIB, 20, 20, 20, 20, "exactly half, exactly 1000/s" },
		{ 255 * MIB, 512 * MIB, 1000, 20, 20, 0, "under half: never" },
		{ 500 * MIB, 512 * MIB, 19, 20, 20, 0, "950 calls/s: the loop keeps up" },
		{ 500 * MIB, 0, 100000, 20, 20, 0, "no ceiling: never" },
		{ 500 * MIB, 512 * MIB, 100, 0, 20, 0, "no span" },
		{ 500 * MIB, 512 * MIB, 1000, 200, 200, 50, "capped at GW_IOBRAKE_MAX_MS" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_iobrake_decide(rows[i].rss, rows[i].ceiling, rows[i].calls,
					       rows[i].span_ms, rows[i].tick_ms),
			     rows[i].want, "row %zu: %s", i, rows[i].why);
}

struct spinner {
	volatile int stop;
	int64_t max_gap_us;
};

static void *spin(void *arg)
{
	struct spinner *s = arg;
	int64_t last = gw_clock_now_us();

	while (!s->stop) {
		int64_t now = gw_clock_now_us();

		if (now - last > s->max_gap_us)
			s->max_gap_us = now - last;
		last = now;
	}
	return NULL;
}

Test(iobrake, stops_the_thread)
{
	struct spinner s = { 0 };
	struct timespec settle = { 0, 20 * 1000000L };
	pthread_t t;
	struct gw_iobrake *b;
	int failed = 1;

	cr_assert_eq(pthread_create(&t, NULL, spin, &s), 0);
	/* A 1 MiB ceiling: this process is over half of it, so a flood of calls brakes. */
	b = gw_iobrake_new(t, 1 * MIB, &failed);
	cr_assert_eq(failed, 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	cr_expect_null(b, "sanitizer build: no brake");
	s.stop = 1;
	pthread_join(t, NULL);
	return;
#endif
	cr_assert_not_null(b);
	nanosleep(&settle, NULL);
	gw_iobrake_tick(b, 1000, 20, 50);	/* 50 000 calls/s: stop it for 50 ms */
	nanosleep(&(struct timespec){ 0, 150 * 1000000L }, NULL);
	s.stop = 1;
	pthread_join(t, NULL);
	gw_iobrake_free(b);
	cr_expect_geq(s.max_gap_us, 45000, "the thread ran on: its longest gap was %lld us",
		      (long long)s.max_gap_us);
	cr_expect_null(gw_iobrake_new(t, 0, &failed), "no ceiling: no brake");
	cr_expect_eq(failed, 0);
}
