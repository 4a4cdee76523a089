/*
 * ratelimit: token buckets in fixed point and the per-tenant table. See ratelimit.h.
 */
#include "gateway/base/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config/config.h"

/* tokens/s -> micro-tokens per ms; a positive rate never rounds down to "unlimited". */
static int64_t bucket_rate(double rate_per_s)
{
	int64_t r;

	if (!(rate_per_s > 0))
		return 0;
	if (rate_per_s > GW_BUCKET_MAX_RATE)
		rate_per_s = GW_BUCKET_MAX_RATE;
	r = llround(rate_per_s * (double)GW_BUCKET_SCALE / 1000.0);
	return r > 0 ? r : 1;
}

static int64_t bucket_burst(double burst)
{
	if (!(burst > 0))
		return 0;
	if (burst > GW_BUCKET_MAX_BURST)
		burst = GW_BUCKET_MAX_BURST;
	return llround(burst * (double)GW_BUCKET_SCALE);
}

/*
 * Adds what the elapsed time earned. Whole milliseconds only, and last_ms advances by exactly the
 * milliseconds credited, so the sum of many refills equals one refill over the same span.
 */
static void bucket_refill(struct gw_bucket *b, int64_t now_ms)
{
	int64_t elapsed, deficit;

	if (now_ms <= b->last_ms)
		return;
	elapsed = now_ms - b->last_ms;
	b->last_ms = now_ms;
	if (b->rate <= 0)
		return;
	deficit = b->burst - b->tokens;
	/* Compare before multiplying: a long idle span would overflow elapsed * rate. */
	if (elapsed >= deficit / b->rate + 1)
		b->tokens = b->burst;
	else
		b->tokens += elapsed * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

void gw_bucket_init(struct gw_bucket *b, double rate_per_s, double burst, int64_t now_ms)
{
	memset(b, 0, sizeof *b);
	b->rate = bucket_rate(rate_per_s);
	b->burst = bucket_burst(burst);
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

void gw_bucket_set(struct gw_bucket *b, double rate_per_s, double burst, int64_t now_ms)
{
	int was_unlimited = b->rate <= 0;

	bucket_refill(b, now_ms);
	b->rate = bucket_rate(rate_per_s);
	b->burst = bucket_burst(burst);
	/* An unlimited bucket had no level to keep: a new limit starts full. */
	if (was_unlimited || b->tokens > b->burst)
		b->tokens = b->burst;
}

int gw_bucket_take(struct gw_bucket *b, unsigned cost, int64_t now_ms, int64_t *wait_ms)
{
	int64_t need, missing, w;

	if (wait_ms)
		*wait_ms = 0;
	if (b->rate <= 0) {
		b->allowed++;
		return 1;
	}
	bucket_refill(b, now_ms);
	need = (int64_t)cost * GW_BUCKET_SCALE;
	if (need > b->burst) {
		b->refused++;
		b->refused_never++;
		if (wait_ms)
			*wait_ms = -1;
		return 0;
	}
	if (b->tokens >= need) {
		b->tokens -= need;
		b->allowed++;
		return 1;
	}
	missing = need - b->tokens;
	w = (missing + b->rate - 1) / b->rate;	/* ceil: at now + w the tokens are there */
	b->refused++;
	if (wait_ms)
		*wait_ms = w;
	return 0;
}

int64_t gw_bucket_time_for(struct gw_bucket *b, uint64_t tokens, int64_t now_ms)
{
	int64_t need, missing;

	if (b->rate <= 0)
		return 0;
	bucket_refill(b, now_ms);
	/* Clamped far below overflow: a queue never holds this many tokens' worth. */
	if (tokens > (uint64_t)(INT64_MAX / GW_BUCKET_SCALE / 2))
		tokens = (uint64_t)(INT64_MAX / GW_BUCKET_SCALE / 2);
	need = (int64_t)tokens * GW_BUCKET_SCALE;
	missing = need - b->tokens;
	if (missing <= 0)
		return 0;
	return (missing + b->rate - 1) / b->rate;
}

double gw_bucket_level(struct gw_bucket *b, int64_t now_ms)
{
	bucket_refill(b, now_ms);
	return (double)b->tokens / (double)GW_BUCKET_SCALE;
}

/* Every rpc of proto/animate3d/v1 with its built-in cost: the calls that cost the upstream most
 * (a job, a video's bytes, a signed URL) weigh more. */
static const struct {
	const char *name;	/* as the configuration spells it */
	const char *path;
	unsigned cost;
} ratelimit_methods[GW_RATELIMIT_NMETHODS] = {
	{ "GetUploadUrl", "/animate3d.v1.Jobs/GetUploadUrl", 2 },
	{ "UploadVideo", "/animate3d.v1.Jobs/UploadVideo", 5 },
	{ "StartJob", "/animate3d.v1.Jobs/StartJob", 5 },
	{ "GetStatus", "/animate3d.v1.Jobs/GetStatus", 1 },
	{ "WatchStatus", "/animate3d.v1.Jobs/WatchStatus", 1 },
	{ "GetDownloadUrls", "/animate3d.v1.Jobs/GetDownloadUrls", 1 },
	{ "ListJobs", "/animate3d.v1.Jobs/ListJobs", 1 },
	{ "GetVideoInfo", "/animate3d.v1.Jobs/GetVideoInfo", 1 },
	{ "GetModelUploadUrl", "/animate3d.v1.Characters/GetModelUploadUrl", 2 },
	{ "StoreModel", "/animate3d.v1.Characters/StoreModel", 1 },
	{ "ListModels", "/animate3d.v1.Characters/ListModels", 1 },
	{ "DeleteModel", "/animate3d.v1.Characters/DeleteModel", 1 },
	{ "CreateEndpoint", "/animate3d.v1.Webhooks/CreateEndpoint", 1 },
	{ "GetEndpoint", "/animate3d.v1.Webhooks/GetEndpoint", 1 },
	{ "ListEndpoints", "/animate3d.v1.Webhooks/ListEndpoints", 1 },
	{ "UpdateEndpoint", "/animate3d.v1.Webhooks/UpdateEndpoint", 1 },
	{ "DeleteEndpoint", "/animate3d.v1.Webhooks/DeleteEndpoint", 1 },
	{ "GetCreditBalance", "/animate3d.v1.Account/GetCreditBalance", 1 },
	{ "GetMinutesBalance", "/animate3d.v1.Account/GetMinutesBalance", 1 },
};

/* config.h sizes its cost tables without including this header. */
_Static_assert(GW_RATELIMIT_NMETHODS <= GW_CONFIG_MAX_COSTS, "GW_CONFIG_MAX_COSTS is too small");

int gw_ratelimit_method_index(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < GW_RATELIMIT_NMETHODS; i++)
		if (strcmp(name, ratelimit_methods[i].name) == 0 ||
		    strcmp(name, ratelimit_methods[i].path) == 0)
			return (int)i;
	return -1;
}

const char *gw_ratelimit_method_name(size_t i)
{
	return i < GW_RATELIMIT_NMETHODS ? ratelimit_methods[i].name : NULL;
}

const char *gw_ratelimit_method_path(size_t i)
{
	return i < GW_RATELIMIT_NMETHODS ? ratelimit_methods[i].path : NULL;
}

unsigned gw_ratelimit_cost(const char *grpc_path)
{
	int i = grpc_path && grpc_path[0] == '/' ? gw_ratelimit_method_index(grpc_path) : -1;

	return i < 0 ? 1 : ratelimit_methods[i].cost;
}

/* Fills cost[] from the configured table over base[] (the built-in costs or the global ones). */
static void ratelimit_costs_resolve(unsigned cost[GW_RATELIMIT_NMETHODS], const unsigned *base,
				    const struct gw_costs_cfg *cfg)
{
	for (size_t i = 0; i < GW_RATELIMIT_NMETHODS; i++) {
		cost[i] = base ? base[i] : ratelimit_methods[i].cost;
		if (cfg && cfg->set[i])
			cost[i] = cfg->cost[i];
		if (cost[i] > GW_RATELIMIT_MAX_COST)
			cost[i] = GW_RATELIMIT_MAX_COST;
	}
}

/* Index of the tenant called name, or rl->n (also when rl or name is NULL). */
static size_t ratelimit_index(const struct gw_ratelimit *rl, const char *name)
{
	if (!rl || !name)
		return rl ? rl->n : 0;
	for (size_t i = 0; i < rl->n; i++)
		if (strcmp(rl->t[i].name, name) == 0)
			return i;
	return rl->n;
}

struct gw_ratelimit *gw_ratelimit_rebuild(const struct gw_ratelimit *old, const struct gw_config *cfg,
					  int64_t now_ms)
{
	struct gw_ratelimit *rl = NULL, *ret = NULL;

	if (!cfg || cfg->ntenants > GW_RATELIMIT_MAX_TENANTS)
		goto out;
	rl = calloc(1, sizeof *rl);
	if (!rl)
		goto out;
	ratelimit_costs_resolve(rl->cost, NULL, &cfg->costs);
	if (cfg->ntenants) {
		rl->t = calloc(cfg->ntenants, sizeof *rl->t);
		if (!rl->t)
			goto out;
	}
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct gw_tenant_cfg *tc = &cfg->tenants[i];
		size_t k = ratelimit_index(old, tc->name);
		const struct gw_ratelimit_tenant *prev = old && k < old->n ? &old->t[k] : NULL;
		struct gw_ratelimit_tenant *t = &rl->t[i];

		t->name = strdup(tc->name ? tc->name : "");
		if (!t->name)
			goto out;
		rl->n = i + 1;
		ratelimit_costs_resolve(t->cost, rl->cost, &tc->costs);
		if (prev) {
			/* Same tenant: its level (and a debt of refusals) survives the reload. */
			t->b = prev->b;
			t->limited = prev->limited;
			gw_bucket_set(&t->b, tc->rate_per_second, tc->burst, now_ms);
		} else {
			gw_bucket_init(&t->b, tc->rate_per_second, tc->burst, now_ms);
		}
	}
	if (old)
		rl->unknown_tenant = old->unknown_tenant;
	ret = rl;
	rl = NULL;
out:
	gw_ratelimit_free(rl);
	return ret;
}

void gw_ratelimit_free(struct gw_ratelimit *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < rl->n; i++)
		free(rl->t[i].name);
	free(rl->t);
	free(rl);
}

unsigned gw_ratelimit_tenant_cost(const struct gw_ratelimit *rl, size_t idx, const char *name,
				  const char *grpc_path)
{
	int m = grpc_path && grpc_path[0] == '/' ? gw_ratelimit_method_index(grpc_path) : -1;

	if (!rl)
		return gw_ratelimit_cost(grpc_path);
	if (m < 0)
		return 1;
	if (idx >= rl->n || !name || strcmp(rl->t[idx].name, name) != 0)
		idx = ratelimit_index(rl, name);
	return idx < rl->n ? rl->t[idx].cost[m] : rl->cost[m];
}

int gw_ratelimit_take(struct gw_ratelimit *rl, size_t idx, const char *name, unsigned cost,
		      int64_t now_ms, int64_t *wait_ms)
{
	struct gw_ratelimit_tenant *t = NULL;
	int ok;

	if (wait_ms)
		*wait_ms = 0;
	if (!rl)
		return 1;
	if (idx >= rl->n || !name || strcmp(rl->t[idx].name, name) != 0)
		idx = ratelimit_index(rl, name);
	if (idx < rl->n)
		t = &rl->t[idx];
	if (!t) {
		rl->unknown_tenant++;
		return 1;
	}
	if (cost > GW_RATELIMIT_MAX_COST)
		cost = GW_RATELIMIT_MAX_COST;
	ok = gw_bucket_take(&t->b, cost, now_ms, wait_ms);
	if (!ok)
		t->limited++;
	return ok;
}
