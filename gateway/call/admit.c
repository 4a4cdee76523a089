/*
 * admit: tenants' token buckets and method costs. See admit.h.
 */
#include "gateway/call/admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/clock.h"
#include "gateway/base/metrics.h"
#include "gateway/base/notify.h"
#include "gateway/base/ratelimit.h"
#include "gateway/cluster/climit.h"
#include "gateway/config/config.h"

#define ADMIT_KEY_PREFIX "rl:t:"	/* a tenant's shared bucket: rl:t:<tenant> */

struct gw_admit {
	const char *const *names;	/* per method: its short name */
	const unsigned *row_cost;	/* per method: its row's cost */
	size_t nmethods;
	struct gw_ratelimit *rl;	/* index-aligned with the current configuration's tenants */
	unsigned *cost;			/* [(ntenants + 1) * nmethods]: row t = tenant t, the last
					 * row the global costs (tenants not in the table) */
	size_t ntenants;
	/* Shared buckets (gw_admit_cluster), index-aligned with rl: the cluster-wide limit and its
	 * lease per tenant, and the entry of each, found by name on first use. */
	struct gw_climit *cl;		/* not owned */
	struct gw_climit_limit *clim;
	struct gw_climit_entry **cle;
	struct gw_notify *reload;
	struct gw_metrics_reg *reg;
	struct gw_admit_wait *spare;	/* offered to the next take that may park */
};

struct gw_admit_wait {
	struct gw_climit_wait cw;
	gw_admit_fn fn;
	void *arg;
	struct gw_admit *a;
	const char *name;		/* the tenant's, the caller's */
	size_t tidx;
};

static unsigned admit_clamp(long c)
{
	return c > (long)GW_RATELIMIT_MAX_COST ? GW_RATELIMIT_MAX_COST : (unsigned)c;
}

/* New buckets and costs for cfg; the old ones are kept when memory runs out. */
static int admit_build(struct gw_admit *a, const struct gw_config *cfg)
{
	struct gw_ratelimit_spec *spec = NULL;
	struct gw_ratelimit *rl = NULL;
	unsigned *cost = NULL;
	struct gw_climit_limit *clim = NULL;
	struct gw_climit_entry **cle = NULL;
	size_t nt = cfg ? cfg->ntenants : 0;
	int rc = -1;

	spec = calloc(nt ? nt : 1, sizeof *spec);
	cost = calloc((nt + 1) * (a->nmethods ? a->nmethods : 1), sizeof *cost);
	clim = calloc(nt ? nt : 1, sizeof *clim);
	cle = calloc(nt ? nt : 1, sizeof *cle);
	if (!spec || !cost || !clim || !cle)
		goto out;
	for (size_t m = 0; m < a->nmethods; m++) {
		const char *name = a->names[m];
		long g = cfg ? gw_config_cost(&cfg->costs, name) : -1;
		unsigned global = admit_clamp(g >= 0 ? g : (long)a->row_cost[m]);

		cost[nt * a->nmethods + m] = global;
		for (size_t t = 0; t < nt; t++) {
			long own = gw_config_cost(&cfg->tenants[t].costs, name);

			cost[t * a->nmethods + m] = own >= 0 ? admit_clamp(own) : global;
		}
	}
	/* The local buckets (no Redis, or Redis down): each of cluster.expected_replicas admits its
	 * share of a tenant's rate; the bucket keeps room for the tenant's dearest call. The shared
	 * bucket has the whole limit, taken in leases (gateway/cluster/climit.h). */
	for (size_t t = 0; t < nt; t++) {
		unsigned replicas = cfg->cluster.expected_replicas, dearest = 1;

		for (size_t m = 0; m < a->nmethods; m++)
			if (cost[t * a->nmethods + m] > dearest)
				dearest = cost[t * a->nmethods + m];
		spec[t].name = cfg->tenants[t].name;
		spec[t].rate_per_second = gw_config_replica_rate(cfg->tenants[t].rate_per_second, replicas);
		spec[t].burst = gw_config_replica_burst(cfg->tenants[t].burst, replicas, dearest);
		clim[t].rate = cfg->tenants[t].rate_per_second;
		clim[t].burst = cfg->tenants[t].burst;
		/* The lease of a cost-1 call; a dearer call takes one of its own cost (climit.h). */
		clim[t].lease = gw_climit_lease_size(clim[t].rate, clim[t].burst, replicas, 1);
	}
	rl = gw_ratelimit_rebuild(a->rl, spec, nt, gw_clock_now_us() / 1000);
	if (!rl)
		goto out;
	gw_ratelimit_free(a->rl);
	free(a->cost);
	free(a->clim);
	free(a->cle);
	a->rl = rl;
	a->cost = cost;
	a->clim = clim;
	a->cle = cle;
	a->ntenants = nt;
	rl = NULL;
	cost = NULL;
	clim = NULL;
	cle = NULL;
	rc = 0;
out:
	gw_ratelimit_free(rl);
	free(cost);
	free(clim);
	free(cle);
	free(spec);
	return rc;
}

static void admit_on_reload(void *arg, const void *data)
{
	/* Out of memory keeps the previous buckets: limits never vanish on a reload. */
	admit_build(arg, data);
}

static void admit_render(void *arg, struct gw_metrics_out *o)
{
	const struct gw_admit *a = arg;
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 16];

	gw_metrics_family(o, "ratelimited_total", "counter",
			  "Calls answered RESOURCE_EXHAUSTED by the tenant's rate limit.");
	for (size_t i = 0; a->rl && i < a->rl->n; i++) {
		gw_metrics_label(a->rl->t[i].name, l, sizeof l);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", l);
		gw_metrics_value(o, "ratelimited_total", labels, a->rl->t[i].limited);
	}
}

struct gw_admit *gw_admit_new(const char *const *names, const unsigned *costs, size_t n,
			      const struct gw_config *cfg, struct gw_notify *reload,
			      struct gw_metrics_reg *reg)
{
	struct gw_admit *a = calloc(1, sizeof *a), *ret = NULL;

	if (!a)
		goto out;
	a->names = names;
	a->row_cost = costs;
	a->nmethods = n;
	if (admit_build(a, cfg) != 0)
		goto out;
	if (reload && gw_notify_sub(reload, admit_on_reload, a) != 0)
		goto out;
	a->reload = reload;
	if (reg && gw_metrics_register(reg, admit_render, a) != 0)
		goto out;
	a->reg = reg;
	ret = a;
	a = NULL;
out:
	gw_admit_free(a);
	return ret;
}

void gw_admit_free(struct gw_admit *a)
{
	if (!a)
		return;
	if (a->reload)
		gw_notify_unsub(a->reload, admit_on_reload, a);
	if (a->reg)
		gw_metrics_unregister(a->reg, admit_render, a);
	gw_ratelimit_free(a->rl);
	free(a->cost);
	free(a->clim);
	free(a->cle);
	free(a->spare);
	free(a);
}

unsigned gw_admit_cost(const struct gw_admit *a, size_t tidx, size_t midx)
{
	if (!a || midx >= a->nmethods)
		return 1;
	if (tidx > a->ntenants)
		tidx = a->ntenants;
	return a->cost[tidx * a->nmethods + midx];
}

const struct gw_ratelimit *gw_admit_buckets(const struct gw_admit *a)
{
	return a ? a->rl : NULL;
}

/* The tenant's index now: a call of an older configuration generation may name another one. */
static size_t admit_tenant(const struct gw_admit *a, const char *name, size_t tidx)
{
	if (tidx < a->ntenants && a->rl && strcmp(a->rl->t[tidx].name, name) == 0)
		return tidx;
	tidx = a->ntenants;
	for (size_t i = 0; a->rl && i < a->rl->n; i++)
		if (strcmp(a->rl->t[i].name, name) == 0)
			tidx = i;
	return tidx;
}

/* A shared decision rc (GW_CLIMIT_*) of cost for tenant tidx: 1 proceed, 0 refused. */
static int admit_decided(struct gw_admit *a, int rc, const char *name, size_t tidx, unsigned cost,
			 int64_t now, int64_t *wait_ms)
{
	switch (rc) {
	case GW_CLIMIT_ALLOW:
		if (tidx < a->ntenants)
			a->rl->t[tidx].b.allowed++;
		return 1;
	case GW_CLIMIT_REFUSE:
		if (tidx < a->ntenants) {
			a->rl->t[tidx].b.refused++;
			a->rl->t[tidx].limited++;
		}
		return 0;
	default:
		break;	/* counted there; the local bucket decides */
	}
	return gw_ratelimit_take(a->rl, tidx, name, cost, now, wait_ms);
}

static void admit_resumed(struct gw_climit_wait *w, int rc, int64_t wait_ms)
{
	struct gw_admit_wait *aw = w->arg;
	struct gw_admit *a = aw->a;
	size_t tidx = admit_tenant(a, aw->name, aw->tidx);
	int ok = admit_decided(a, rc, aw->name, tidx, w->cost, gw_clock_now_us() / 1000, &wait_ms);
	gw_admit_fn fn = aw->fn;
	void *arg = aw->arg;

	free(aw);
	fn(arg, ok, ok ? 0 : wait_ms);
}

int gw_admit_take_wait(struct gw_admit *a, const char *name, size_t tidx, size_t midx,
		       int64_t max_wait_ms, int64_t *wait_ms, unsigned *cost, gw_admit_fn fn, void *arg,
		       struct gw_admit_wait **parked)
{
	struct gw_admit_wait *aw = NULL;
	int64_t now;
	int rc = GW_CLIMIT_FALLBACK;

	*wait_ms = 0;
	*cost = 0;
	if (parked)
		*parked = NULL;
	if (!a || !name)
		return 1;
	tidx = admit_tenant(a, name, tidx);
	*cost = gw_admit_cost(a, tidx, midx);
	now = gw_clock_now_us() / 1000;
	if (a->cl && tidx < a->ntenants) {
		char key[sizeof ADMIT_KEY_PREFIX + GW_CLIMIT_NAME_MAX];

		if (!a->cle[tidx] && snprintf(key, sizeof key, ADMIT_KEY_PREFIX "%s", name) < (int)sizeof key)
			a->cle[tidx] = gw_climit_entry(a->cl, key);
		/* Out of memory: no wait offered, a busy lease refuses as it did. */
		if (fn && parked && !a->spare)
			a->spare = calloc(1, sizeof *a->spare);
		aw = fn && parked ? a->spare : NULL;
		if (aw) {
			aw->cw.fn = admit_resumed;
			aw->cw.arg = aw;
			aw->a = a;
			aw->name = name;
			aw->tidx = tidx;
			aw->fn = fn;
			aw->arg = arg;
		}
		rc = gw_climit_take_wait(a->cl, a->cle[tidx], &a->clim[tidx], *cost, now, max_wait_ms,
					 wait_ms, aw ? &aw->cw : NULL);
		if (rc == GW_CLIMIT_PENDING) {
			*parked = aw;
			a->spare = NULL;
			return GW_ADMIT_PENDING;
		}
	}
	return admit_decided(a, rc, name, tidx, *cost, now, wait_ms);
}

int gw_admit_take(struct gw_admit *a, const char *name, size_t tidx, size_t midx, int64_t *wait_ms,
		  unsigned *cost)
{
	return gw_admit_take_wait(a, name, tidx, midx, -1, wait_ms, cost, NULL, NULL, NULL);
}

void gw_admit_cancel(struct gw_admit_wait *aw)
{
	if (!aw)
		return;
	gw_climit_cancel(&aw->cw);
	free(aw);
}

void gw_admit_cluster(struct gw_admit *a, struct gw_climit *cl)
{
	if (a)
		a->cl = cl;
}

int gw_admit_shared(const struct gw_admit *a)
{
	return a && gw_climit_shared(a->cl);
}

const struct gw_climit *gw_admit_climit(const struct gw_admit *a)
{
	return a ? a->cl : NULL;
}
