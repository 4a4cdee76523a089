/*
 * liblog: libevent's and gRPC core's own log messages as our JSON lines, rate-limited.
 *
 * Both libraries log through a process-wide callback that carries no user pointer and may run on
 * any thread (gRPC's pollers, the loop), so this module's state is process-wide too, behind one
 * mutex, like the log level (gateway/base/log.h). Unrouted, libevent writes "[warn] Error from
 * accept() call" to stderr once per failed accept: 751 000 non-JSON lines in 3 s under fd
 * exhaustion. Routed, each source writes at most GW_LIBLOG_PER_S lines per second, and each line
 * says how many of its source's lines were held back since the previous one ("suppressed"):
 *
 *   {"level":"warn","event":"libevent","msg":"Error from accept() call: ...","suppressed":0}
 *   {"level":"warn","event":"grpc_core","file":"...","line":123,"msg":"...","suppressed":4211}
 *
 * gRPC's errors are warnings here because every one that matters to us (a bind failure, ...) is
 * also reported by our own code; its other severities are debug lines.
 */
#ifndef A3D_GATEWAY_LIBLOG_H
#define A3D_GATEWAY_LIBLOG_H

#include <stdint.h>

#define GW_LIBLOG_PER_S 10	/* lines per second and source, past which lines are only counted */


enum gw_liblog_source { GW_LIBLOG_LIBEVENT, GW_LIBLOG_GRPC, GW_LIBLOG_NSOURCES };

struct gw_liblog_counts {
	uint64_t written[GW_LIBLOG_NSOURCES];
	uint64_t suppressed[GW_LIBLOG_NSOURCES];
};

/* Installs both callbacks (idempotent). Call before the libraries may log. */
void gw_liblog_install(void);
/* One library line at level lvl (enum gw_log_level) from source; what the callbacks call, public
 * for tests. file may be NULL (libevent gives none). */
void gw_liblog_line(enum gw_liblog_source src, int lvl, const char *file, int line, const char *msg);
void gw_liblog_counts(struct gw_liblog_counts *out);
/* animate3d_gateway_library_log_lines_total{source,outcome}: a renderer for the metrics registry
 * (arg unused; the counts are process-wide). */
struct gw_metrics_out;
void gw_liblog_render_metrics(void *arg, struct gw_metrics_out *o);

#endif
