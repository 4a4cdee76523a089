/*
 * metrics: latency histograms, upstream answers by route and HTTP status, and the /metrics
 * renderer (Prometheus text exposition format 0.0.4) over every counter the server keeps.
 *
 * Every metric name starts with GW_METRICS_PREFIX. Label values are bounded by construction:
 * gRPC method paths of our own method table, documented upstream route templates (never a rid
 * or a query string), HTTP status codes (GW_METRICS_ROUTE_CODES distinct ones per route, the
 * rest counted as status="other"), configured account and tenant names, and fixed enums. No
 * label or value ever carries a secret, a cookie, an API key or a signed URL.
 *
 * Writers (the loop thread only, like struct gw_stats): gw_metrics_rpc() when a call is freed,
 * gw_metrics_upstream() when an upstream transfer ends. The renderer reads a view
 * (struct gw_metrics_view) so it can be tested without a server. Modules with their own
 * counters (status cache and batcher, state store) append their own families after these.
 */
#ifndef A3D_GATEWAY_METRICS_H
#define A3D_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config/config.h"
#include "gateway/base/handoff.h"
#include "gateway/base/stats.h"

#define GW_METRICS_PREFIX "animate3d_gateway_"
#define GW_METRICS_NBUCKETS 13		/* finite histogram bounds (see metrics.c); +Inf is extra */
#define GW_METRICS_MAX_ROUTES 48	/* distinct upstream routes; more: routes_dropped */
#define GW_METRICS_ROUTE_CODES 8	/* distinct HTTP statuses per route; more: status="other" */
#define GW_METRICS_MAX_LABEL 256	/* an escaped label value; longer values are cut */

struct evbuffer;
struct gw_method;
struct gw_account_rt;
struct gw_up_counters;
struct gw_ratelimit;
struct gw_breaker;
struct gw_server;

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

/* What the renderer reads. Pointers may be NULL (their series are left out). */
struct gw_metrics_view {
	const char *version;
	int draining;
	const struct gw_stats *stats;
	const struct gw_metrics *m;
	const struct gw_method *methods;	/* names rows of stats->rpc and m->rpc_latency */
	size_t nmethods;
	const struct gw_account_rt *accounts;	/* session counters and state per account */
	size_t naccounts;
	const struct gw_up_counters *up;
	const struct gw_ratelimit *rl;		/* rate-limited calls per tenant */
	const struct gw_breaker *breaker[GW_CONFIG_MAX_ACCOUNTS];	/* per account, may be NULL */
	size_t health_watchers;
	uint64_t health_watchers_refused;
	int has_handoff;			/* handoff below is filled */
	struct gw_handoff_stats handoff;	/* poller -> loop queue (gateway/base/handoff.h) */
};

/* Copies in to out (outlen bytes) as a Prometheus label value: backslash, double quote and
 * newline escaped (the same escapes keep a JSON string valid), cut to fit. NULL in gives "". */
void gw_metrics_label(const char *in, char *out, size_t outlen);

/* Fills v from a running server (what /metrics shows). */
void gw_metrics_view_of(struct gw_server *srv, struct gw_metrics_view *v);

/* Appends the exposition to out. Returns 0, or -1 when v/out is NULL or an append failed. */
int gw_metrics_render(const struct gw_metrics_view *v, struct evbuffer *out);

#endif
