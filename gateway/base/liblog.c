/*
 * liblog: library log callbacks -> rate-limited JSON lines. See liblog.h for why the state is
 * process-wide.
 */
#include "gateway/base/liblog.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <event2/event.h>
#include <grpc/support/log.h>

#include "gateway/base/log.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"

static pthread_mutex_t liblog_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_lograte liblog_rate[GW_LIBLOG_NSOURCES];
static uint64_t liblog_written[GW_LIBLOG_NSOURCES];

static const char *const liblog_names[GW_LIBLOG_NSOURCES] = { "libevent", "grpc_core" };

static int64_t liblog_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_liblog_line(enum gw_liblog_source src, int lvl, const char *file, int line, const char *msg)
{
	uint64_t held = 0;
	int ok;

	if ((unsigned)src >= GW_LIBLOG_NSOURCES || lvl < (int)gw_log_get_level())
		return;	/* filtered lines do not spend the budget */
	pthread_mutex_lock(&liblog_mu);
	ok = gw_lograte_allow(&liblog_rate[src], liblog_now_ms(), GW_LIBLOG_PER_S, &held);
	if (ok)
		liblog_written[src]++;
	pthread_mutex_unlock(&liblog_mu);
	if (!ok)
		return;
	if (file)
		gw_log((enum gw_log_level)lvl, liblog_names[src], GW_LS("file", file), GW_LN("line", line),
		       GW_LS("msg", msg), GW_LN("suppressed", held), GW_LEND);
	else
		gw_log((enum gw_log_level)lvl, liblog_names[src], GW_LS("msg", msg),
		       GW_LN("suppressed", held), GW_LEND);
}

static void liblog_libevent(int severity, const char *msg)
{
	int lvl = severity >= EVENT_LOG_ERR ? GW_LOG_ERROR
		  : severity == EVENT_LOG_WARN ? GW_LOG_WARN
		  : severity == EVENT_LOG_MSG ? GW_LOG_INFO : GW_LOG_DEBUG;

	gw_liblog_line(GW_LIBLOG_LIBEVENT, lvl, NULL, 0, msg);
}

static void liblog_grpc(gpr_log_func_args *a)
{
	gw_liblog_line(GW_LIBLOG_GRPC, a->severity == GPR_LOG_SEVERITY_ERROR ? GW_LOG_WARN : GW_LOG_DEBUG,
		       a->file, a->line, a->message);
}

void gw_liblog_install(void)
{
	event_set_log_callback(liblog_libevent);
	gpr_set_log_function(liblog_grpc);
}

void gw_liblog_counts(struct gw_liblog_counts *out)
{
	pthread_mutex_lock(&liblog_mu);
	for (int i = 0; i < GW_LIBLOG_NSOURCES; i++) {
		out->written[i] = liblog_written[i];
		out->suppressed[i] = liblog_rate[i].suppressed_total;
	}
	pthread_mutex_unlock(&liblog_mu);
}

void gw_liblog_render_metrics(void *arg, struct gw_metrics_out *o)
{
	struct gw_liblog_counts c;
	char labels[64];

	(void)arg;
	gw_liblog_counts(&c);
	gw_metrics_family(o, "library_log_lines_total", "counter",
			  "Log lines of libevent and gRPC core, written or held back by the "
			  "per-source rate limit.");
	for (int i = 0; i < GW_LIBLOG_NSOURCES; i++) {
		snprintf(labels, sizeof labels, "source=\"%s\",outcome=\"written\"", liblog_names[i]);
		gw_metrics_value(o, "library_log_lines_total", labels, c.written[i]);
		snprintf(labels, sizeof labels, "source=\"%s\",outcome=\"suppressed\"", liblog_names[i]);
		gw_metrics_value(o, "library_log_lines_total", labels, c.suppressed[i]);
	}
}
