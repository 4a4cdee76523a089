/* Unit tests for gateway/base/lograte.c (a table of (time, expected verdict, reported held-back
 * count)) and gateway/base/liblog.c (counts and their metrics). */
#include <criterion/criterion.h>

#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/liblog.h"
#include "gateway/base/log.h"
#include "gateway/base/lograte.h"

Test(lograte, budget_per_window_and_held_back_reported_on_the_next_line)
{
	static const struct {
		int64_t now_ms;
		int allow;		/* expected verdict */
		uint64_t held;		/* expected *held_back when allowed */
	} steps[] = {
		{ 1000, 1, 0 }, { 1001, 1, 0 }, { 1002, 1, 0 },	/* budget 3 */
		{ 1003, 0, 0 }, { 1500, 0, 0 }, { 1999, 0, 0 },	/* held back: 3 */
		{ 2000, 1, 3 },					/* a new window reports them */
		{ 2001, 1, 0 }, { 2002, 1, 0 }, { 2003, 0, 0 },
		{ 9000, 1, 1 },					/* long silence: new window */
		{ 8000, 1, 0 },					/* clock went back: new window */
	};
	struct gw_lograte r;

	gw_lograte_init(&r, 3);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		uint64_t held = 777;
		int ok = gw_lograte_allow(&r, steps[i].now_ms, &held);

		cr_expect_eq(ok, steps[i].allow, "step %zu at %lld", i, (long long)steps[i].now_ms);
		if (ok)
			cr_expect_eq(held, steps[i].held, "step %zu: held %llu", i, (unsigned long long)held);
		else
			cr_expect_eq(held, 777, "step %zu: held_back written on a suppressed line", i);
	}
	cr_expect_eq(r.written, 8);
	cr_expect_eq(r.suppressed, 4);
	cr_expect_eq(gw_lograte_allow(&r, 8001, NULL), 1);	/* NULL held_back is fine */
}

Test(lograte, zero_budget_suppresses_everything)
{
	struct gw_lograte r;

	gw_lograte_init(&r, 0);
	for (int i = 0; i < 5; i++)
		cr_expect_eq(gw_lograte_allow(&r, i * 1000, NULL), 0);
	cr_expect_eq(r.suppressed, 5);
	cr_expect_eq(r.written, 0);
}

/* Every line is either written or counted as suppressed, per source; the metric shows both. */
Test(liblog, lines_are_written_or_counted)
{
	struct gw_liblog_counts before, after;
	struct evbuffer *b = evbuffer_new();
	const int n = 3 * GW_LIBLOG_PER_S;
	char *text;

	gw_log_set_level(GW_LOG_WARN);
	gw_liblog_counts(&before);
	for (int i = 0; i < n; i++)
		gw_liblog_line(GW_LIBLOG_LIBEVENT, GW_LOG_WARN, NULL, 0, "Error from accept() call");
	gw_liblog_line(GW_LIBLOG_GRPC, GW_LOG_DEBUG, "f.cc", 1, "below the level: not counted");
	gw_liblog_counts(&after);
	cr_expect_eq(after.written[GW_LIBLOG_LIBEVENT] + after.suppressed[GW_LIBLOG_LIBEVENT] -
			     before.written[GW_LIBLOG_LIBEVENT] - before.suppressed[GW_LIBLOG_LIBEVENT],
		     (uint64_t)n);
	cr_expect_gt(after.suppressed[GW_LIBLOG_LIBEVENT], 0);
	cr_expect_eq(after.written[GW_LIBLOG_GRPC] + after.suppressed[GW_LIBLOG_GRPC],
		     before.written[GW_LIBLOG_GRPC] + before.suppressed[GW_LIBLOG_GRPC]);

	cr_assert_not_null(b);
	cr_assert_eq(gw_liblog_render_metrics(b), 0);
	cr_assert_eq(evbuffer_add(b, "", 1), 0);
	text = (char *)evbuffer_pullup(b, -1);
	cr_expect(strstr(text, "# TYPE animate3d_gateway_library_log_lines_total counter\n") != NULL);
	cr_expect(strstr(text, "animate3d_gateway_library_log_lines_total{source=\"libevent\",outcome=\"suppressed\"} ") != NULL);
	cr_expect(strstr(text, "animate3d_gateway_library_log_lines_total{source=\"grpc_core\",outcome=\"written\"} ") != NULL);
	evbuffer_free(b);
}
