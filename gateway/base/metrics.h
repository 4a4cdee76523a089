/*
 * metrics: latency histograms, upstream answers by route and HTTP status, the printers of the
 * Prometheus text exposition format 0.0.4, and the registry of renderers /metrics walks.
 *
 * Every metric name starts with GW_METRICS_PREFIX, except the process_* families of the
 * Prometheus client conventions (gateway/base/procmetrics.h), which the *_ext printers write.
 * Label values are bounded by construction: gRPC method paths of our own method table,
 * documented upstream route templates (never a rid or a query string), HTTP status codes
 * (GW_METRICS_ROUTE_CODES distinct ones per route, the rest counted as status="other"),
 * configured account and tenant names, and fixed enums. No label or value ever carries a
 * secret, a cookie, an API key or a signed URL.
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

/*
 * RPC outcomes by tenant, method and gRPC code, with latency (rpc_total, rpc_duration_seconds).
 *
 * A call must not format or look up a label: each tenant name gets a slot when a configuration
 * is loaded (gw_metrics_rpc_map, once per tenant per load), the slot a block of cells, one per
 * method row; a call keeps its tenant's block from authentication on and bumps cells[midx] at its
 * end. Slot 0 is GW_METRICS_NO_TENANT: calls without an authenticated tenant (no or a wrong key
 * or certificate, and methods that need none, such as Health). Calls to methods this server does
 * not serve are counted apart (rpc_unknown_method_total in gateway/call/call.c).
 *
 * Slots are counted references: every configuration generation that maps a name holds one, and
 * gives it back (gw_metrics_rpc_unmap) when the generation is freed, which is after the last call
 * that authenticated with it. A tenant a reload removes keeps its series while any call can still
 * count into them (a generation still alive: an old WatchStatus stream holds its own); then its
 * series are dropped from /metrics and the slot may go to another name. A tenant that comes back
 * while its slot lives finds its counters where they were. A tenant named like
 * GW_METRICS_NO_TENANT shares slot 0.
 */
#define GW_METRICS_NO_TENANT "-"		/* tenant label of calls without one */
#define GW_METRICS_MAX_TENANT_SLOTS 4096	/* tenant names alive at once (every generation);
						 * a load past it is refused, counted */

struct gw_metrics_rpc_cell {
	uint64_t code[GW_STATS_GRPC_CODES];	/* finished calls by gRPC code */
	struct gw_metrics_hist latency;
};

struct gw_metrics_rpc_slot {
	char *name;				/* NULL: free */
	unsigned refs;
	struct gw_metrics_rpc_cell *cells;	/* [GW_STATS_MAX_METHODS], index = method row */
};

struct gw_metrics_rpc {
	struct gw_metrics_rpc_cell none[GW_STATS_MAX_METHODS];	/* slot 0: no tenant */
	struct gw_metrics_rpc_slot *slot;	/* [cap]; slot[0] stands for none (name NULL) */
	size_t nslots;				/* slots ever used: 1 + the highest one */
	size_t cap;
	uint64_t refused;			/* names past GW_METRICS_MAX_TENANT_SLOTS */
};

struct gw_metrics {
	struct gw_metrics_rpc rpc;
	struct gw_metrics_route routes[GW_METRICS_MAX_ROUTES];
	uint64_t routes_dropped;		/* answers for routes past the table */
};

/*
 * Gives each of the n names (a configuration's tenants, in order) a slot, one reference each:
 * the name's slot when it has one, else a free one (its counters zero). slots[i] gets names[i]'s
 * slot (1.. ; GW_METRICS_NO_TENANT gets 0, which holds no reference). Names are copied. 0, or -1
 * when out of memory or past GW_METRICS_MAX_TENANT_SLOTS (counted in refused): nothing is then
 * held. A zeroed struct gw_metrics_rpc is ready for use.
 */
int gw_metrics_rpc_map(struct gw_metrics_rpc *r, const char *const *names, size_t n,
		       uint32_t *slots);
/* Gives back the references gw_metrics_rpc_map took for slots[0..n); a slot left without one is
 * freed with its series. */
void gw_metrics_rpc_unmap(struct gw_metrics_rpc *r, const uint32_t *slots, size_t n);
/* The cells of slot s (none for 0 or a free slot), for a call to keep. */
struct gw_metrics_rpc_cell *gw_metrics_rpc_cells(struct gw_metrics_rpc *r, uint32_t s);
/* Frees every slot (after the last generation is gone); r is zeroed. */
void gw_metrics_rpc_free(struct gw_metrics_rpc *r);

/* Adds one observation of us microseconds (negative counts as 0). */
void gw_metrics_observe(struct gw_metrics_hist *h, int64_t us);
/* A finished call of method row midx (< GW_STATS_MAX_METHODS, the caller checks) with gRPC code
 * (< GW_STATS_GRPC_CODES) into its tenant's cells: an index, no lookup. */
static inline void gw_metrics_rpc(struct gw_metrics_rpc_cell *cells, size_t midx, unsigned code,
				  int64_t latency_us)
{
	cells[midx].code[code]++;
	gw_metrics_observe(&cells[midx].latency, latency_us);
}
/* Prints rpc_total{tenant,method,code} and rpc_duration_seconds{tenant,method} for method rows
 * 0..n-1 (n capped at GW_STATS_MAX_METHODS), method_path(arg, i) naming row i; series that never
 * counted are left out. */
struct gw_metrics_out;
void gw_metrics_rpc_render(const struct gw_metrics_rpc *r, size_t n,
			   const char *(*method_path)(const void *arg, size_t i), const void *arg,
			   struct gw_metrics_out *o);
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
/* The same for names given in full, without GW_METRICS_PREFIX (process_*). */
void gw_metrics_family_ext(struct gw_metrics_out *o, const char *name, const char *type,
			   const char *help);
void gw_metrics_gauge_ext(struct gw_metrics_out *o, const char *name, double v);
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
