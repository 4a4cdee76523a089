/*
 * liblog: library log callbacks -> rate-limited JSON lines. See liblog.h for why the state is
 * process-wide.
 */
#include "gateway/base/liblog.h"

#include <pthread.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <grpc/support/log.h>

#include "gateway/base/log.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"

static pthread_mutex_t liblog_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_lograte liblog_rate[GW_LIBLOG_NSOURCES];
static int liblog_ready;

static const char *const liblog_names[GW_LIBLOG_NSOURCES] = { "libevent", "grpc_core" };

static int64_t liblog_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void liblog_init_locked(void)
{
	if (liblog_ready)
		return;
	for (int i = 0; i < GW_LIBLOG_NSOURCES; i++)
		gw_lograte_init(&liblog_rate[i], GW_LIBLOG_PER_S);
	liblog_ready = 1;
}

void gw_liblog_line(enum gw_liblog_source src, int lvl, const char *file, int line, const char *msg)
{
	uint64_t held = 0;
	int ok;

	if ((unsigned)src >= GW_LIBLOG_NSOURCES || lvl < (int)gw_log_get_level())
		return;	/* filtered lines do not spend the budget */
	pthread_mutex_lock(&liblog_mu);
	liblog_init_locked();
	ok = gw_lograte_allow(&liblog_rate[src], liblog_now_ms(), &held);
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
	pthread_mutex_lock(&liblog_mu);
	liblog_init_locked();
	pthread_mutex_unlock(&liblog_mu);
	event_set_log_callback(liblog_libevent);
	gpr_set_log_function(liblog_grpc);
}

void gw_liblog_counts(struct gw_liblog_counts *out)
{
	pthread_mutex_lock(&liblog_mu);
	liblog_init_locked();
	for (int i = 0; i < GW_LIBLOG_NSOURCES; i++) {
		out->written[i] = liblog_rate[i].written;
		out->suppressed[i] = liblog_rate[i].suppressed;
	}
	pthread_mutex_unlock(&liblog_mu);
}

int gw_liblog_render_metrics(struct evbuffer *out)
{
	struct gw_liblog_counts c;

	gw_liblog_counts(&c);
	if (evbuffer_add_printf(out,
		"# HELP " GW_METRICS_PREFIX "library_log_lines_total Log lines of libevent and gRPC core, "
		"written or held back by the per-source rate limit.\n"
		"# TYPE " GW_METRICS_PREFIX "library_log_lines_total counter\n") < 0)
		return -1;
	for (int i = 0; i < GW_LIBLOG_NSOURCES; i++)
		if (evbuffer_add_printf(out,
			GW_METRICS_PREFIX "library_log_lines_total{source=\"%s\",outcome=\"written\"} %llu\n"
			GW_METRICS_PREFIX "library_log_lines_total{source=\"%s\",outcome=\"suppressed\"} %llu\n",
			liblog_names[i], (unsigned long long)c.written[i], liblog_names[i],
			(unsigned long long)c.suppressed[i]) < 0)
			return -1;
	return 0;
}
