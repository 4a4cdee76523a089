/*
 * balance: the upstream balance poller. See balance.h.
 */
#include "gateway/svc/balance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "animate3d/v1/account.pb-c.h"
#include "auth/upstream/session.h"
#include "gateway/api/translate.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/trace.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/upstream/upstream.h"

/* One of an account's two requests of a poll. */
struct bal_req {
	struct bal_acct *a;
	enum gw_balance_kind kind;
	struct gw_up_call *call;	/* in flight, or NULL */
	int ok;				/* answered and parsed in this poll */
	double value;
};

struct bal_acct {
	struct gw_balance *b;
	size_t idx;			/* in env->accounts */
	const char *name;		/* the account's, lives as long as env->accounts */
	struct bal_req req[2];		/* by enum gw_balance_kind */
	unsigned pending;		/* requests of the current poll still in flight */
	int failed;			/* the current poll already failed (counted once) */
	struct gw_trace trace;		/* the current poll's */
	int have;			/* cur holds a good poll */
	struct gw_balance_sample cur;
	uint64_t polls, failures, skipped;
};

struct gw_balance {
	struct gw_env *env;
	struct event *tick;		/* NULL when off */
	long poll_s;
	int draining;
	struct bal_acct *acct;		/* index-aligned with env->accounts */
	size_t nacct;
	struct {
		gw_balance_update_fn fn;
		void *arg;
	} obs[GW_BALANCE_OBSERVERS_MAX];
	size_t nobs;
	uint64_t obs_refused;		/* registrations past GW_BALANCE_OBSERVERS_MAX */
};

static const char *const bal_path[2] = { "/account/creditBalance", "/account/minutesBalance" };

/* ---- the pure part ---- */

int gw_balance_parse(enum gw_balance_kind k, const char *body, size_t len, double *out, char *err,
		     size_t errlen)
{
	ProtobufCMessage *m = NULL;
	int rc = -1;

	/* The Account rows' own parsers: the poller and the RPCs cannot read an answer differently. */
	if (k == GW_BALANCE_CREDITS) {
		if (gw_tr_parse_get_credit_balance(NULL, body, len, &m, err, errlen) != GW_TR_OK)
			goto out;
		*out = ((Animate3d__V1__GetCreditBalanceResponse *)m)->credits;
	} else if (k == GW_BALANCE_MINUTES) {
		if (gw_tr_parse_get_minutes_balance(NULL, body, len, &m, err, errlen) != GW_TR_OK)
			goto out;
		*out = ((Animate3d__V1__GetMinutesBalanceResponse *)m)->minutes;
	} else {
		snprintf(err, errlen, "unknown balance kind %d", (int)k);
		goto out;
	}
	rc = 0;
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* ---- the poller ---- */

struct gw_balance *gw_balance_of(const struct gw_env *env)
{
	return env ? gw_env_svc(env, &gw_svc_balance) : NULL;
}

static const struct bal_acct *bal_find(const struct gw_balance *b, const char *account)
{
	for (size_t i = 0; b && account && i < b->nacct; i++)
		if (strcmp(b->acct[i].name, account) == 0)
			return &b->acct[i];
	return NULL;
}

int gw_balance_get(const struct gw_balance *b, const char *account, double *credits,
		   double *minutes, int64_t *at_ms)
{
	const struct bal_acct *a = bal_find(b, account);

	if (!a)
		return -1;
	if (!a->have)
		return 1;
	if (credits)
		*credits = a->cur.credits;
	if (minutes)
		*minutes = a->cur.minutes;
	if (at_ms)
		*at_ms = a->cur.at_ms;
	return 0;
}

int gw_balance_on_update(struct gw_balance *b, gw_balance_update_fn fn, void *arg)
{
	if (!b || !fn)
		return -1;
	if (b->nobs >= GW_BALANCE_OBSERVERS_MAX) {
		b->obs_refused++;
		return -1;
	}
	b->obs[b->nobs].fn = fn;
	b->obs[b->nobs].arg = arg;
	b->nobs++;
	return 0;
}

/* The poll of a ended (no request in flight): a good one replaces the sample and is told. */
static void bal_poll_end(struct bal_acct *a)
{
	struct gw_balance *b = a->b;
	struct gw_balance_sample prev = a->cur;
	int had = a->have;

	if (a->failed)
		return;		/* counted and logged when it failed; the last values stay */
	a->cur.credits = a->req[GW_BALANCE_CREDITS].value;
	a->cur.minutes = a->req[GW_BALANCE_MINUTES].value;
	a->cur.at_ms = gw_clock_wall_ms();
	a->have = 1;
	for (size_t i = 0; i < b->nobs; i++)
		b->obs[i].fn(b->obs[i].arg, a->name, &a->cur, had ? &prev : NULL);
}

/* The current poll of a failed: one count and one log line per poll, whichever request failed. */
static void bal_fail(struct bal_acct *a, enum gw_balance_kind k, const char *why)
{
	if (a->failed)
		return;
	a->failed = 1;
	a->failures++;
	gw_log(GW_LOG_WARN, "balance_poll_failed", GW_LS("account", a->name),
	       GW_LS("path", bal_path[k]), GW_LS("error", why), GW_LTRACE(&a->trace), GW_LEND);
}

static void bal_done(void *arg, const struct gw_up_response *res)
{
	struct bal_req *r = arg;
	struct bal_acct *a = r->a;
	struct gw_up_failure fail;
	char err[GW_BALANCE_ERR_MAX];

	r->call = NULL;
	a->pending--;
	if (gw_up_failure_of(res, r->kind == GW_BALANCE_CREDITS ? "credit balance" : "minutes balance",
			     &fail) != GRPC_STATUS_OK) {
		bal_fail(a, r->kind, fail.msg);
	} else {
		err[0] = '\0';
		if (gw_balance_parse(r->kind, res->body, res->body_len, &r->value, err, sizeof err) == 0)
			r->ok = 1;
		else
			bal_fail(a, r->kind, err);
	}
	if (a->pending == 0)
		bal_poll_end(a);
}

/* Starts a poll of account a: both requests at once, one trace. */
static void bal_poll(struct gw_balance *b, struct bal_acct *a)
{
	struct gw_env *env = b->env;
	struct gw_trace_in none = { 0 };
	struct gw_up_request rq;

	if (a->pending) {
		a->skipped++;	/* the last poll still runs: never two at once */
		return;
	}
	a->polls++;
	a->failed = 0;
	gw_trace_begin(&a->trace, &env->trace_rng, &none);
	for (int k = 0; k < 2; k++) {
		struct bal_req *r = &a->req[k];

		r->ok = 0;
		memset(&rq, 0, sizeof rq);
		rq.method = "GET";
		rq.path = bal_path[k];
		rq.idempotent = 1;
		rq.trace = &a->trace;
		r->call = gw_up_start(env->up, &env->accounts[a->idx].up, &rq, bal_done, r);
		if (r->call)
			a->pending++;
		else
			bal_fail(a, (enum gw_balance_kind)k, "upstream request could not be started");
	}
	/* Both refused at once: done() never runs, so the poll ends here (already failed). */
	if (a->pending == 0)
		bal_poll_end(a);
}

static void bal_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_balance *b = arg;

	(void)fd;
	(void)what;
	if (b->draining)
		return;
	for (size_t i = 0; i < b->nacct; i++)
		bal_poll(b, &b->acct[i]);
}

static void bal_cancel_all(struct gw_balance *b)
{
	for (size_t i = 0; i < b->nacct; i++)
		for (int k = 0; k < 2; k++)
			if (b->acct[i].req[k].call) {
				gw_up_cancel(b->acct[i].req[k].call);	/* done() will not run */
				b->acct[i].req[k].call = NULL;
				b->acct[i].pending--;
			}
}

static void bal_free(void *state)
{
	struct gw_balance *b = state;

	if (!b)
		return;
	bal_cancel_all(b);
	if (b->tick)
		event_free(b->tick);
	free(b->acct);
	free(b);
}

static int bal_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_balance *b = NULL;
	int rc = -1;

	*state = NULL;
	b = calloc(1, sizeof *b);
	if (!b)
		goto oom;
	b->env = env;
	b->poll_s = env->cfg ? env->cfg->balance.poll_s : 0;
	b->nacct = env->naccounts;
	if (b->nacct && !(b->acct = calloc(b->nacct, sizeof *b->acct)))
		goto oom;
	for (size_t i = 0; i < b->nacct; i++) {
		struct bal_acct *a = &b->acct[i];

		a->b = b;
		a->idx = i;
		a->name = env->accounts[i].up.name;
		for (int k = 0; k < 2; k++) {
			a->req[k].a = a;
			a->req[k].kind = (enum gw_balance_kind)k;
		}
	}
	if (b->poll_s <= 0 || !env->up || !b->nacct || !env->base) {
		gw_log(GW_LOG_INFO, "balance_poller_off",
		       GW_LS("why", b->poll_s <= 0 ? "balance.poll_s is 0"
				    : !b->nacct ? "no upstream accounts" : "no upstream engine"),
		       GW_LEND);
		goto done;
	}
	b->tick = event_new(env->base, -1, EV_PERSIST, bal_tick_cb, b);
	if (!b->tick)
		goto oom;
done:
	*state = b;
	b = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "cannot start the balance poller (out of memory)");
out:
	bal_free(b);
	return rc;
}

static void bal_start(void *state)
{
	struct gw_balance *b = state;
	struct timeval tv;

	if (!b || !b->tick)
		return;
	tv.tv_sec = b->poll_s;
	tv.tv_usec = 0;
	event_add(b->tick, &tv);
	event_active(b->tick, 0, 0);	/* the first poll now: the gauges need not wait a period */
}

/* SIGTERM: no new polls; those in flight are dropped (their answer would only fill a gauge). */
static void bal_drain(void *state)
{
	struct gw_balance *b = state;

	if (!b)
		return;
	b->draining = 1;
	if (b->tick)
		event_del(b->tick);
	bal_cancel_all(b);
}

static void bal_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_balance *b = state;
	char name[GW_METRICS_MAX_LABEL];
	char labels[GW_METRICS_MAX_LABEL + 16];

	gw_metrics_one(o, "balance_poll_seconds", "gauge",
		       "balance.poll_s: seconds between balance polls of each account (0 = off).",
		       (uint64_t)(b->poll_s > 0 ? b->poll_s : 0));
	gw_metrics_family(o, "upstream_credit_balance", "gauge",
			  "Upstream credits of the account at its last good balance poll.");
	for (size_t i = 0; i < b->nacct; i++) {
		if (!b->acct[i].have)
			continue;
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_gauge_exact(o, "upstream_credit_balance", labels, b->acct[i].cur.credits);
	}
	gw_metrics_family(o, "upstream_minutes_balance", "gauge",
			  "Upstream minutes of the account at its last good balance poll.");
	for (size_t i = 0; i < b->nacct; i++) {
		if (!b->acct[i].have)
			continue;
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_gauge_exact(o, "upstream_minutes_balance", labels, b->acct[i].cur.minutes);
	}
	gw_metrics_family(o, "upstream_balance_updated_seconds", "gauge",
			  "Unix time of the account's last good balance poll.");
	for (size_t i = 0; i < b->nacct; i++) {
		if (!b->acct[i].have)
			continue;
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_gauge_exact(o, "upstream_balance_updated_seconds", labels,
				   (double)b->acct[i].cur.at_ms / 1000.0);
	}
	gw_metrics_family(o, "balance_polls_total", "counter",
			  "Balance polls started (two upstream GETs each).");
	for (size_t i = 0; i < b->nacct; i++) {
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_value(o, "balance_polls_total", labels, b->acct[i].polls);
	}
	gw_metrics_family(o, "balance_poll_failures_total", "counter",
			  "Balance polls that failed; the gauges keep their last values.");
	for (size_t i = 0; i < b->nacct; i++) {
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_value(o, "balance_poll_failures_total", labels, b->acct[i].failures);
	}
	gw_metrics_family(o, "balance_polls_skipped_total", "counter",
			  "Balance polls not started because the account's previous one still ran.");
	for (size_t i = 0; i < b->nacct; i++) {
		gw_metrics_label(b->acct[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_value(o, "balance_polls_skipped_total", labels, b->acct[i].skipped);
	}
	gw_metrics_one(o, "balance_observers_refused_total", "counter",
		       "Balance observers refused: GW_BALANCE_OBSERVERS_MAX were registered.",
		       b->obs_refused);
}

const struct gw_svc gw_svc_balance = {
	.name = "balance",
	.init = bal_init,
	.start = bal_start,
	.drain = bal_drain,
	.free = bal_free,
	.metrics = bal_metrics,
};
