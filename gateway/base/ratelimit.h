/*
 * ratelimit: token buckets, and one per tenant.
 *
 * Pure: time is a parameter (now_ms, any monotonic millisecond clock), no globals, no I/O.
 * Tokens are kept in fixed point (GW_BUCKET_SCALE micro-tokens per token) and refilled from the
 * elapsed milliseconds in integer arithmetic, so many small refills add up exactly to one big one
 * (no drift). A rate is rounded once, at init, to a multiple of 0.001 token/s.
 *
 * struct gw_ratelimit holds one bucket per tenant, index-aligned with the specs it was built
 * from; gw_ratelimit_rebuild() carries each bucket's state over to a new set (a configuration
 * reload) for tenants that persist, by name. What a call costs is the caller's business
 * (gateway/call/admit.h: the method row's cost, overridden by the configuration).
 */
#ifndef A3D_GATEWAY_RATELIMIT_H
#define A3D_GATEWAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define GW_BUCKET_SCALE 1000000LL	/* micro-tokens per token */
#define GW_BUCKET_MAX_RATE 1000000.0	/* tokens/s; higher rates are clamped to this */
#define GW_BUCKET_MAX_BURST 1000000.0	/* tokens; larger bursts are clamped to this */
#define GW_RATELIMIT_MAX_COST 1000u	/* a method cost above this is clamped */
#define GW_RATELIMIT_MAX_TENANTS 1024	/* = GW_CONFIG_MAX_TENANTS */

struct gw_bucket {
	int64_t rate;		/* micro-tokens per millisecond; 0 = unlimited */
	int64_t burst;		/* capacity, micro-tokens */
	int64_t tokens;		/* current level, micro-tokens, 0..burst */
	int64_t last_ms;	/* time of the last refill; never moves backwards */
	uint64_t allowed;	/* takes granted */
	uint64_t refused;	/* takes refused (never-satisfiable ones included) */
	uint64_t refused_never;	/* cost > burst: refused with wait -1 */
};

/* A full bucket. rate_per_s <= 0 (or NaN) means unlimited; burst < 0 (or NaN) counts as 0. */
void gw_bucket_init(struct gw_bucket *b, double rate_per_s, double burst, int64_t now_ms);

/* New rate and burst, keeping the current level (clamped to the new burst): for a reload. */
void gw_bucket_set(struct gw_bucket *b, double rate_per_s, double burst, int64_t now_ms);

/*
 * Takes cost tokens (cost >= 0). Returns 1 (allowed, *wait_ms = 0) or 0 (refused: nothing taken,
 * *wait_ms = the exact milliseconds until cost tokens will be there, >= 1; or -1 when cost is
 * larger than the burst, a request that can never pass). wait_ms may be NULL.
 * An unlimited bucket always allows. A clock going backwards refills nothing.
 */
int gw_bucket_take(struct gw_bucket *b, unsigned cost, int64_t now_ms, int64_t *wait_ms);

/*
 * Milliseconds from now_ms until `tokens` tokens will have been available in all, counting the
 * current level and the refill but not the burst cap: a lower bound for a queue whose waiters ahead
 * take tokens as they come. 0 when they are already there or the bucket is unlimited. Takes nothing.
 */
int64_t gw_bucket_time_for(struct gw_bucket *b, uint64_t tokens, int64_t now_ms);

/* Whole tokens available at now_ms (refilling first), for metrics and tests. */
double gw_bucket_level(struct gw_bucket *b, int64_t now_ms);

/* One tenant's limit, as the caller read it from its configuration. */
struct gw_ratelimit_spec {
	const char *name;
	double rate_per_second;		/* <= 0: unlimited */
	double burst;
};

struct gw_ratelimit_tenant {
	char *name;		/* copy of the tenant's name */
	struct gw_bucket b;
	uint64_t limited;	/* calls answered RESOURCE_EXHAUSTED for this tenant */
};

struct gw_ratelimit {
	struct gw_ratelimit_tenant *t;	/* index-aligned with the cfg->tenants it was built from */
	size_t n;
	uint64_t unknown_tenant;	/* takes for a tenant not in the table (allowed) */
};

/*
 * Builds the buckets for n tenants (full, index-aligned with spec), carrying over level and
 * counters from old (may be NULL) for tenants of the same name. old is left untouched (free it
 * after). Returns NULL when memory runs out or n > GW_RATELIMIT_MAX_TENANTS.
 */
struct gw_ratelimit *gw_ratelimit_rebuild(const struct gw_ratelimit *old,
					  const struct gw_ratelimit_spec *spec, size_t n, int64_t now_ms);
void gw_ratelimit_free(struct gw_ratelimit *rl);	/* NULL is fine */

/*
 * gw_bucket_take() on the bucket of tenant idx, checked by name (a call may hold a tenant index of
 * an older configuration generation; then the tenant is looked up by name). A tenant that is not
 * in the table is allowed (counted in unknown_tenant): limits never refuse because of a reload.
 * On refusal the tenant's limited counter is bumped.
 */
int gw_ratelimit_take(struct gw_ratelimit *rl, size_t idx, const char *name, unsigned cost,
		      int64_t now_ms, int64_t *wait_ms);

#endif
