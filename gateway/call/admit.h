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
 * a refusal while a refill is in flight), allocated by the admission only when a call parks so
 * that a call carries one pointer; freed when its fn has run or by gw_admit_cancel.
 */
struct gw_admit_wait;

/* A parked call's answer, once: ok 1 to proceed, 0 refused with wait_ms as gw_admit_take (the
 * local bucket decides when the shared one cannot). Its gw_admit_wait is gone by then. */
typedef void (*gw_admit_fn)(void *arg, int ok, int64_t wait_ms);

/*
 * As gw_admit_take, but a call that the shared bucket cannot decide before its refill answers is
 * parked: GW_ADMIT_PENDING with *parked set; fn(arg, ...) tells later, never from within this
 * call. It waits at most max_wait_ms (-1: no deadline of its own) or the Redis command timeout.
 * name must stay valid while parked.
 */
int gw_admit_take_wait(struct gw_admit *a, const char *name, size_t tidx, size_t midx,
		       int64_t max_wait_ms, int64_t *wait_ms, unsigned *cost, gw_admit_fn fn, void *arg,
		       struct gw_admit_wait **parked);
/* The call went away while parked: it leaves the queue, fn never runs, aw is freed. NULL: no-op. */
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
