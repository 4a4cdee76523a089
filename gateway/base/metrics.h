/*
 * metrics: latency histograms, upstream answers by route and HTTP status, the printers of the
 * Prometheus text exposition format 0.0.4, and the registry of renderers /metrics walks.
 *
 * Every metric name starts with GW_METRICS_PREFIX. Label values are bounded by construction:
 * gRPC method paths of our own method table, documented upstream route templates (never a rid
 * or a query string), HTTP status codes (GW_METRICS_ROUTE_CODES distinct ones per route, the
 * rest counted as status="other"), configured account and tenant names, and fixed enums. No
 * label or value ever carries a secret, a cookie, an API key or a signed URL.
 *
 * Writers (the loop thread only, like struct gw_stats): gw_metrics_rpc() when a call is freed,
 * gw_metrics_upstream() when an upstream transfer ends. Counters live in the module that owns
 * them; each module registers a renderer (struct gw_metrics_reg) that prints its families with
 * the printers below, and /metrics walks the registrations.
 */
#ifndef A3D_GATEWAY_METRICS_H
#define A3D_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/base/stats.h"

#define GW_METRICS_PREFIX "animate3d_gateway_"
#define GW_METRICS_NBUCKETS 13		/* finite histogram bounds (see metrics.c); +Inf is extra */
#define GW_METRICS_MAX_ROUTES 48	/* distinct upstream routes; more: routes_dropped */
#define GW_METRICS_ROUTE_CODES 8	/* distinct HTTP statuses per route; more: status="other" */
#define GW_METRICS_MAX_LABEL 256	/* an escaped label value; longer values are cut */

/* A latency histogram: bucket[i] counts observations in (bound[i-1], bound[i]] (not cumulative;
 * the renderer accumulates), bucket[GW_METRICS_NBUCKETS] those above the last bound. */
struct gw_metrics_hist {
	uint64_t bucket[GW_METRICS_NBUCKETS + 1];
	uint64_t count;
	uint64_t sum_us;
};

struct gw_metrics_route {
	const char *route;			/* static string; NULL = free slot */
	uint16_t code[GW_METRICS_ROUTE_CODES];	/* HTTP status; 0 = no HTTP answer (curl error) */
	uint64_t n[GW_METRICS_ROUTE_CODES];	/* n[i] answers with code[i]; n[i] == 0: free slot */
	uint64_t other;				/* statuses past the table */
	struct gw_metrics_hist latency;		/* every attempt, whatever its answer */
};

struct gw_metrics {
	struct gw_metrics_hist rpc_latency[GW_STATS_MAX_METHODS];	/* index = method table row */
	struct gw_metrics_route routes[GW_METRICS_MAX_ROUTES];
	uint64_t routes_dropped;		/* answers for routes past the table */
};

/* Adds one observation of us microseconds (negative counts as 0). */
void gw_metrics_observe(struct gw_metrics_hist *h, int64_t us);
/* A finished call of method row midx (rows past GW_STATS_MAX_METHODS are not timed). */
void gw_metrics_rpc(struct gw_metrics *m, size_t midx, int64_t latency_us);
/* One upstream attempt on route (static string; NULL counts as "other"); http_status 0 = no
 * HTTP answer. */
void gw_metrics_upstream(struct gw_metrics *m, const char *route, long http_status,
			 int64_t latency_us);
/*
 * The documented route template of an upstream API request, for metrics and logs: method
 * ("GET") and path ("/status/a,b?x=1") -> "GET /status/{rids}". Ids and query strings never
 * appear in the result (bounded label values); a path outside the upstream document gives
 * "<METHOD> other", an unknown method "other". Always a static string.
 */
const char *gw_metrics_route(const char *method, const char *path);
/* The finite bound of bucket i in seconds as text ("0.005"), or "+Inf" for i >= NBUCKETS. */
const char *gw_metrics_bucket_le(size_t i);

/* Copies in to out (outlen bytes) as a Prometheus label value: backslash, double quote and
 * newline escaped (the same escapes keep a JSON string valid), cut to fit. NULL in gives "". */
void gw_metrics_label(const char *in, char *out, size_t outlen);

/*
 * Printers: every family on /metrics is written through these, names given without
 * GW_METRICS_PREFIX. labels is the inside of the braces, already escaped ("tenant=\"a\""), or
 * NULL for none. A failed append marks the output bad (gw_metrics_render_all returns -1).
 */
struct evbuffer;
struct gw_metrics_out {
	struct evbuffer *b;
	int bad;
};
void gw_metrics_family(struct gw_metrics_out *o, const char *name, const char *type,
		       const char *help);
void gw_metrics_value(struct gw_metrics_out *o, const char *name, const char *labels, uint64_t v);
void gw_metrics_gauge_f(struct gw_metrics_out *o, const char *name, const char *labels, double v);
/* The same with 15 significant digits, for values read as exact (a balance of 123456.78, a unix
 * time in seconds with its milliseconds), where the 6 of gw_metrics_gauge_f would round. */
void gw_metrics_gauge_exact(struct gw_metrics_out *o, const char *name, const char *labels,
			    double v);
/* A family with one unlabelled sample. */
void gw_metrics_one(struct gw_metrics_out *o, const char *name, const char *type, const char *help,
		    uint64_t v);
/* The series of one histogram (labels not NULL). */
void gw_metrics_hist(struct gw_metrics_out *o, const char *name, const char *labels,
		     const struct gw_metrics_hist *h);

/*
 * The registry /metrics walks: each module registers its renderer once (when it is created) and
 * unregisters it before it is freed, the way Redis modules add INFO sections. Renderers run in
 * registration order.
 */
#define GW_METRICS_MAX_RENDERERS 32
typedef void (*gw_metrics_render_fn)(void *arg, struct gw_metrics_out *o);
struct gw_metrics_reg {
	struct {
		gw_metrics_render_fn fn;
		void *arg;
	} r[GW_METRICS_MAX_RENDERERS];
	size_t n;
	uint64_t refused;		/* registrations past the table */
};
/* 0, or -1 when the table is full (counted). */
int gw_metrics_register(struct gw_metrics_reg *reg, gw_metrics_render_fn fn, void *arg);
void gw_metrics_unregister(struct gw_metrics_reg *reg, gw_metrics_render_fn fn, void *arg);
/* Runs every renderer into out. 0, or -1 when an append failed. */
int gw_metrics_render_all(const struct gw_metrics_reg *reg, struct evbuffer *out);

#endif
