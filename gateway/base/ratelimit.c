/*
 * ratelimit: token buckets in fixed point and the per-tenant table. See ratelimit.h.
 */
#include "gateway/base/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

struct gw_ratelimit *gw_ratelimit_rebuild(const struct gw_ratelimit *old,
					  const struct gw_ratelimit_spec *spec, size_t n, int64_t now_ms)
{
	struct gw_ratelimit *rl = NULL, *ret = NULL;

	if (n > GW_RATELIMIT_MAX_TENANTS || (n && !spec))
		goto out;
	rl = calloc(1, sizeof *rl);
	if (!rl)
		goto out;
	if (n) {
		rl->t = calloc(n, sizeof *rl->t);
		if (!rl->t)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gw_ratelimit_spec *ts = &spec[i];
		size_t k = ratelimit_index(old, ts->name);
		const struct gw_ratelimit_tenant *prev = old && k < old->n ? &old->t[k] : NULL;
		struct gw_ratelimit_tenant *t = &rl->t[i];

		t->name = strdup(ts->name ? ts->name : "");
		if (!t->name)
			goto out;
		rl->n = i + 1;
		if (prev) {
			/* Same tenant: its level (and a debt of refusals) survives the reload. */
			t->b = prev->b;
			t->limited = prev->limited;
			gw_bucket_set(&t->b, ts->rate_per_second, ts->burst, now_ms);
		} else {
			gw_bucket_init(&t->b, ts->rate_per_second, ts->burst, now_ms);
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
