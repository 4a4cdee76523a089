/*
 * reconcile: the usage ledger against the upstream balance. See reconcile.h.
 */
#include "gateway/svc/reconcile.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/metrics.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/state/store.h"
#include "gateway/svc/balance.h"

/* A poll showing more minutes than the last by more than the minutes balance's rounding (it is
 * given in hundredths) is a top-up. */
#define RC_TOPUP_MIN 0.011

struct rc_acct {
	char *name;			/* the configured account's name */
	int based, compared, inflight;
	double base_min;		/* minutes at the baseline */
	int64_t base_ms;		/* the baseline's poll time (unix ms) */
	double upstream_min, ledger_min;	/* the last comparison */
	uint64_t resets, skipped, failures;
};

struct reconcile {
	struct gw_env *env;
	struct rc_acct *accts;
	size_t naccts;
};

/* One comparison in flight: what upstream said, waiting for the ledger's side. */
struct rc_op {
	struct reconcile *r;
	size_t idx;
	double upstream_min;
};

static struct rc_acct *rc_find(struct reconcile *r, const char *account, size_t *idx)
{
	for (size_t i = 0; i < r->naccts; i++)
		if (strcmp(r->accts[i].name, account) == 0) {
			*idx = i;
			return &r->accts[i];
		}
	return NULL;
}

/* The ledger's side: the seconds charged to the account's tenants since the baseline. */
static void rc_charged(void *arg, const struct gw_store_res *res)
{
	struct rc_op *op = arg;
	struct rc_acct *a = &op->r->accts[op->idx];
	const struct gw_config *cfg = op->r->env->cfg;
	long long secs = 0;

	a->inflight = 0;
	if (res->rc != 0) {
		a->failures++;
		free(op);
		return;
	}
	for (long i = 0; i < res->count; i++) {
		int t = gw_config_tenant_index(cfg, res->usage_sums[i].tenant);

		/* A tenant a reload removed is not known any more: its account cannot be told. */
		if (t >= 0 && strcmp(cfg->tenants[t].account, a->name) == 0)
			secs += res->usage_sums[i].seconds;
	}
	a->upstream_min = op->upstream_min;
	a->ledger_min = (double)secs / 60.0;
	a->compared = 1;
	free(op);
}

static void rc_update(void *arg, const char *account, const struct gw_balance_sample *cur,
		      const struct gw_balance_sample *prev)
{
	struct reconcile *r = arg;
	struct gw_usage_req q = { .op = GW_USAGE_CHARGED };
	struct rc_op *op;
	struct rc_acct *a;
	size_t idx;

	if (!(a = rc_find(r, account, &idx)))
		return;
	if (!a->based || (prev && cur->minutes > prev->minutes + RC_TOPUP_MIN)) {
		if (a->based)
			a->resets++;
		a->based = 1;
		a->base_min = cur->minutes;
		a->base_ms = cur->at_ms;
		a->upstream_min = a->ledger_min = 0;
		a->compared = 1;
		return;
	}
	if (a->inflight) {
		a->skipped++;	/* the figures are cumulative: the next poll catches up */
		return;
	}
	if (!(op = calloc(1, sizeof *op))) {
		a->failures++;
		return;
	}
	op->r = r;
	op->idx = idx;
	op->upstream_min = a->base_min - cur->minutes;
	q.from_ms = a->base_ms;
	q.to_ms = cur->at_ms + 1;
	a->inflight = 1;
	gw_store_usage(r->env->store, &q, rc_charged, op);
}

static void rc_metrics(void *state, struct gw_metrics_out *o)
{
	static const struct {
		const char *name, *help;
		int what;
	} gauges[] = {
		{ "usage_reconcile_upstream_minutes", "Minutes the upstream balance fell since the "
		  "reconciliation's baseline.", 0 },
		{ "usage_reconcile_ledger_minutes", "Minutes the usage ledger charged to the account's "
		  "tenants since the same baseline.", 1 },
		{ "usage_unreconciled_minutes", "Upstream minus ledger minutes: usage the gateway did "
		  "not see (positive) or charged wrongly (negative).", 2 },
		{ "usage_reconcile_since_seconds", "The baseline's poll time (unix).", 3 },
	};
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "usage_reconcile_resets_total", "Baselines started over after a top-up.",
		  offsetof(struct rc_acct, resets) },
		{ "usage_reconcile_skipped_total", "Polls not compared: the previous comparison still "
		  "ran.", offsetof(struct rc_acct, skipped) },
		{ "usage_reconcile_failures_total", "Comparisons the state store could not answer.",
		  offsetof(struct rc_acct, failures) },
	};
	struct reconcile *r = state;
	char name[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 16];

	for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
		gw_metrics_family(o, gauges[g].name, "gauge", gauges[g].help);
		for (size_t i = 0; r && i < r->naccts; i++) {
			const struct rc_acct *a = &r->accts[i];
			double v = gauges[g].what == 0 ? a->upstream_min :
				   gauges[g].what == 1 ? a->ledger_min :
				   gauges[g].what == 2 ? a->upstream_min - a->ledger_min :
				   (double)a->base_ms / 1000.0;

			if (!a->compared)
				continue;
			gw_metrics_label(a->name, name, sizeof name);
			snprintf(labels, sizeof labels, "account=\"%s\"", name);
			gw_metrics_gauge_exact(o, gauges[g].name, labels, v);
		}
	}
	for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
		gw_metrics_family(o, counters[c].name, "counter", counters[c].help);
		for (size_t i = 0; r && i < r->naccts; i++) {
			const struct rc_acct *a = &r->accts[i];
			uint64_t v;

			memcpy(&v, (const char *)a + counters[c].off, sizeof v);
			gw_metrics_label(a->name, name, sizeof name);
			snprintf(labels, sizeof labels, "account=\"%s\"", name);
			gw_metrics_value(o, counters[c].name, labels, v);
		}
	}
}

static int rc_idle(void *state)
{
	const struct reconcile *r = state;

	for (size_t i = 0; r && i < r->naccts; i++)
		if (r->accts[i].inflight)
			return 0;
	return 1;
}

static void rc_free(void *state)
{
	struct reconcile *r = state;

	if (!r)
		return;
	for (size_t i = 0; i < r->naccts; i++)
		free(r->accts[i].name);
	free(r->accts);
	free(r);
}

static int rc_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_balance *bal = gw_balance_of(env);
	const struct gw_config *cfg = env->cfg;
	struct reconcile *r;

	*state = NULL;
	/* Nothing to compare without a poller or a ledger (a read-only store keeps none either). */
	if (!bal || !env->store || gw_store_read_only(env->store) || cfg->balance.poll_s == 0)
		return 0;
	r = calloc(1, sizeof *r);
	if (!r || (cfg->naccounts && !(r->accts = calloc(cfg->naccounts, sizeof *r->accts))))
		goto oom;
	r->env = env;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		if (!(r->accts[i].name = strdup(cfg->accounts[i].name)))
			goto oom;
		r->naccts++;
	}
	if (gw_balance_on_update(bal, rc_update, r) != 0) {
		snprintf(err, errlen, "cannot observe the balance poller: too many observers");
		rc_free(r);
		return -1;
	}
	*state = r;
	return 0;
oom:
	snprintf(err, errlen, "cannot start the usage reconciliation (out of memory)");
	rc_free(r);
	return -1;
}

const struct gw_svc gw_svc_reconcile = {
	.name = "reconcile",
	.init = rc_init,
	.idle = rc_idle,
	.free = rc_free,
	.metrics = rc_metrics,
};
