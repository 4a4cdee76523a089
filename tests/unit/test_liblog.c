/* Unit tests for gateway/base/liblog.c: library log lines are written within the per-source
 * budget or counted as held back, and the counts reach /metrics. */
#include <criterion/criterion.h>

#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/liblog.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"

Test(liblog, lines_are_written_or_counted)
{
	struct gw_liblog_counts before, after;
	struct gw_metrics_reg reg = { 0 };
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
	cr_assert_eq(gw_metrics_register(&reg, gw_liblog_render_metrics, NULL), 0);
	cr_assert_eq(gw_metrics_render_all(&reg, b), 0);
	cr_assert_eq(evbuffer_add(b, "", 1), 0);
	text = (char *)evbuffer_pullup(b, -1);
	cr_expect(strstr(text, "# TYPE animate3d_gateway_library_log_lines_total counter\n") != NULL);
	cr_expect(strstr(text, "animate3d_gateway_library_log_lines_total{source=\"libevent\",outcome=\"suppressed\"} ") != NULL);
	cr_expect(strstr(text, "animate3d_gateway_library_log_lines_total{source=\"grpc_core\",outcome=\"written\"} ") != NULL);
	evbuffer_free(b);
}
