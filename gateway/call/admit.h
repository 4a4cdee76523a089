/*
 * admit: the tenant's rate limit on a call, before any work: one token bucket per tenant
 * (gateway/base/ratelimit.h), a call taking its method's cost.
 *
 * A method's cost is its row's (gateway/methods.c), overridden by rate.costs for every tenant and
 * by tenants[].rate.costs for one, resolved into a table per configuration: on the reload event
 * (env->reload) the buckets are rebuilt (tenants that persist keep their levels) and the table
 * resolved again. A call that holds an older generation's tenant is looked up by name. The call
 * (gateway/call/call.c) asks before its handler runs and answers a refusal itself.
 *
 * Several replicas (gw_admit_cluster): a tenant's bucket is shared through Redis
 * (gateway/cluster/climit.h: the tenant's whole rate and burst, taken in leases of
 * gw_climit_lease_size). While Redis is not configured, not connected or failing, the local bucket
 * of rate / cluster.expected_replicas decides instead (each such decision counted as a fallback);
 * shared decisions resume by themselves once Redis is back.
 */
#ifndef A3D_GATEWAY_ADMIT_H
#define A3D_GATEWAY_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/cluster/climit.h"

struct gw_config;
struct gw_notify;
struct gw_metrics_reg;
struct gw_ratelimit;
struct gw_climit;

struct gw_admit;

/*
 * Buckets for cfg's tenants and costs for n methods (names[i]: the method's short name as
 * rate.costs spells it, costs[i]: its row's cost; both arrays copied by reference and must
 * outlive the admission), re-resolved on every reload event (reload may be NULL); its renderer
 * (ratelimited_total) goes to reg (may be NULL). NULL when memory runs out.
 */
struct gw_admit *gw_admit_new(const char *const *names, const unsigned *costs, size_t n,
			      const struct gw_config *cfg, struct gw_notify *reload,
			      struct gw_metrics_reg *reg);
void gw_admit_free(struct gw_admit *a);	/* NULL is a no-op */

/* The cost of method row midx for tenant tidx of the current configuration (a tenant index out of
 * range: the global cost). For tests and messages. */
unsigned gw_admit_cost(const struct gw_admit *a, size_t tidx, size_t midx);

/*
 * Takes the cost of method midx from the bucket of tenant (name; tidx its index in the call's
 * configuration generation, checked by name). Returns 1 to proceed (also for a NULL a or name),
 * or 0 refused: *wait_ms = milliseconds until it would pass, or -1 when the cost is larger than
 * the tenant's burst (never); *cost = what it was asked to pay.
 */
int gw_admit_take(struct gw_admit *a, const char *name, size_t tidx, size_t midx, int64_t *wait_ms,
		  unsigned *cost);

#define GW_ADMIT_PENDING 2	/* gw_admit_take_wait: parked for a lease, fn will tell */

/*
 * A call waiting for a lease of its tenant's shared bucket (gateway/cluster/climit.h: instead of
 * a refusal while a refill is in flight). The caller's: it sets fn and arg and keeps it alive
 * until fn ran or gw_admit_cancel.
 */
struct gw_admit_wait {
	/* Runs once when the lease arrives: ok 1 to proceed, 0 refused with wait_ms as
	 * gw_admit_take (the local bucket decides when the shared one cannot). */
	void (*fn)(struct gw_admit_wait *aw, int ok, int64_t wait_ms);
	void *arg;
	struct gw_climit_wait cw;	/* the rest is admit's */
	struct gw_admit *a;
	const char *name;		/* the tenant's; must stay valid while parked */
	size_t tidx;
};

/*
 * As gw_admit_take, but a call that the shared bucket cannot decide before its refill answers is
 * parked (GW_ADMIT_PENDING; aw->fn tells later, never from within this call), waiting at most
 * max_wait_ms (>= 0; -1: no deadline of its own) or the Redis command timeout.
 */
int gw_admit_take_wait(struct gw_admit *a, const char *name, size_t tidx, size_t midx,
		       int64_t max_wait_ms, int64_t *wait_ms, unsigned *cost, struct gw_admit_wait *aw);
/* The call went away while parked: aw leaves the queue and its fn never runs. No-op otherwise. */
void gw_admit_cancel(struct gw_admit_wait *aw);

/*
 * Decides tenants' limits on the shared buckets of cl from now on (its keys "rl:t:<tenant>"); cl
 * is not owned and must outlive the admission. NULL: local buckets only again.
 */
void gw_admit_cluster(struct gw_admit *a, struct gw_climit *cl);
/* 1 when decisions are shared now (gw_admit_cluster was called and Redis is connected): /readyz. */
int gw_admit_shared(const struct gw_admit *a);
const struct gw_climit *gw_admit_climit(const struct gw_admit *a);	/* NULL without cluster */

/* The buckets, for tests. */
const struct gw_ratelimit *gw_admit_buckets(const struct gw_admit *a);

#endif
