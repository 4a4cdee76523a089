/*
 * upstream_guard: the account protection wired around each upstream request (issue 5): breaker,
 * admission queue and Retry-After pause decide whether and when a request may go; its outcome
 * feeds them back; the retry budget and backoff decide whether it goes again. Separate from
 * upstream.c, which only moves bytes (libcurl multi on the loop). See upstream.h.
 */
#include "gateway/upstream/upstream.h"
#include "gateway/base/clock.h"
#include "gateway/upstream/upstream_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "gateway/cluster/csem.h"
#include "gateway/config/config.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/notify.h"

#define UP_ADM_MARGIN_MS 20		/* admitted later than deadline - this, a request is useless */
#define UP_SHARED_KEY_PREFIX "rl:a:"	/* an account's shared rate bucket: rl:a:<account> */
#define UP_CSEM_KEY_PREFIX "cs:a:"	/* an account's shared concurrency cap: cs:a:<account> */

/* ---- pure helpers ---- */

int gw_up_retryable(CURLcode rc, long http_status)
{
	switch (rc) {
	case CURLE_OK:
		return http_status >= 500 && http_status <= 599 && http_status != 501;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return 1;
	default:
		return 0;	/* timeouts (no time left), too large, TLS errors: no */
	}
}

/* ---- limits and upstream protection (issue 5) ---- */

static int64_t up_now_ms(void)
{
	return gw_clock_now_us() / 1000;
}

static const char *up_account_name(const struct gw_account_limits *l)
{
	const struct gw_config *cfg = *l->up->env.cfg;

	return cfg && l->idx < cfg->naccounts ? cfg->accounts[l->idx].name : "?";
}

static void up_limits_arm(struct gw_account_limits *l, int64_t now)
{
	int64_t at = gw_adm_next_wake(&l->adm, now);
	struct timeval tv;

	if (at == l->timer_at_ms || !l->timer)
		return;
	l->timer_at_ms = at;
	if (at < 0) {
		evtimer_del(l->timer);
		return;
	}
	at = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(at / 1000);
	tv.tv_usec = (suseconds_t)((at % 1000) * 1000);
	if (evtimer_add(l->timer, &tv) != 0)
		l->timer_at_ms = -1;
}

static void up_limits_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_account_limits *l = arg;
	int64_t now = up_now_ms();

	(void)fd;
	(void)what;
	l->timer_at_ms = -1;
	gw_adm_run(&l->adm, now);
	up_limits_arm(l, now);
}

void gw_up_guard_free(struct gw_limits *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nacct; i++) {
		gw_adm_detach_all(&l->acct[i].adm);
		if (l->acct[i].timer)
			event_free(l->acct[i].timer);
	}
	free(l->acct);
	gw_csem_free(l->cs);
	free(l);
}

/* The shared bucket's figures for account ac: its whole rate, a second of it as burst (as the
 * local bucket, gw_adm_init). */
static void up_limits_set_shared(struct gw_account_limits *l, const struct gw_account_cfg *ac,
				 unsigned replicas)
{
	double rate = ac->rate_per_second > 0 ? ac->rate_per_second : 0;

	l->clim.rate = rate;
	l->clim.burst = rate > 1 ? rate : 1;
	l->clim.lease = gw_climit_lease_size(rate, l->clim.burst, replicas, 1);
}

/* The admission's own caps for the modes l is in: the whole max_concurrent while the slots held
 * cluster-wide cap it (cshared), else the local share; no rate bucket of its own while the
 * shared bucket decides (shared), else the local share. */
static void up_limits_apply(struct gw_account_limits *l, const struct gw_account_cfg *ac, unsigned n,
			    int64_t now)
{
	gw_adm_configure(&l->adm,
			 l->cshared ? ac->max_concurrent : gw_config_replica_cap(ac->max_concurrent, n),
			 l->shared ? 0 : gw_config_replica_rate(ac->rate_per_second, n), ac->max_queue, now);
}

/* Switches the admission's own rate bucket off (shared decisions) or back to the local share. */
static void up_limits_mode(struct gw_account_limits *l, int shared, int64_t now)
{
	const struct gw_config *cfg = *l->up->env.cfg;

	if (l->shared == shared || !cfg || l->idx >= cfg->naccounts)
		return;
	l->shared = shared;
	up_limits_apply(l, &cfg->accounts[l->idx], cfg->cluster.expected_replicas, now);
}

/*
 * The account's concurrency cap, shared (the slots this replica holds of the cluster-wide
 * semaphore) or local (its share): asks csem with the demand now (in flight + queued + extra,
 * the request about to enter) and applies the answer to the admission. The slots are set before
 * a wider cap is, and the cap narrowed before the slots are lifted: never a moment where
 * neither holds.
 */
static void up_conc_sync(struct gw_account_limits *l, unsigned extra, int64_t now)
{
	const struct gw_config *cfg = *l->up->env.cfg;
	struct gw_limits *lims = l->up->limits;
	const struct gw_account_cfg *ac;
	unsigned n, slots = 0, demand;
	int shared;

	if (!l->cse || !lims || !lims->cs || !cfg || l->idx >= cfg->naccounts)
		return;
	ac = &cfg->accounts[l->idx];
	n = cfg->cluster.expected_replicas;
	if (ac->max_concurrent == 0) {	/* a reload lifted the cap */
		shared = 0;
	} else {
		demand = l->adm.inflight + (unsigned)l->adm.nqueued + extra;
		shared = gw_csem_sync(lims->cs, l->cse, ac->max_concurrent,
				      gw_csem_batch(ac->max_concurrent, n), l->adm.inflight, demand, now,
				      &slots) ==
			 GW_CSEM_SHARED;
	}
	if (shared) {
		gw_adm_set_slots(&l->adm, 1, slots, now);
		if (!l->cshared) {
			l->cshared = 1;
			up_limits_apply(l, ac, n, now);
		}
		return;
	}
	if (l->cshared) {
		l->cshared = 0;
		up_limits_apply(l, ac, n, now);
	}
	if (l->adm.slots_on)
		gw_adm_set_slots(&l->adm, 0, 0, now);
}

/* csem: the account's requests in flight now (the slots its holding must keep). */
static unsigned up_conc_inflight(void *arg)
{
	const struct gw_account_limits *l = arg;

	return l->adm.inflight;
}

/* csem: the slots or the mode of an account may have changed (an answer came). */
static void up_conc_changed(void *arg)
{
	struct gw_account_limits *l = arg;
	int64_t now = up_now_ms();

	up_conc_sync(l, 0, now);
	up_limits_arm(l, now);
}

int gw_up_cluster(struct gw_upstream *up, struct gw_climit *cl)
{
	const struct gw_config *cfg = up && up->env.cfg ? *up->env.cfg : NULL;
	struct gw_limits *l = up ? up->limits : NULL;
	char key[sizeof UP_SHARED_KEY_PREFIX + GW_CLIMIT_NAME_MAX];

	if (!l || !cfg)
		return -1;
	l->cl = cl;
	for (size_t i = 0; i < l->nacct && i < cfg->naccounts; i++) {
		const struct gw_account_cfg *ac = &cfg->accounts[i];

		up_limits_set_shared(&l->acct[i], ac, cfg->cluster.expected_replicas);
		if (cl && snprintf(key, sizeof key, UP_SHARED_KEY_PREFIX "%s", ac->name) < (int)sizeof key)
			l->acct[i].cle = gw_climit_entry(cl, key);
	}
	return 0;
}

int gw_up_cluster_concurrency(struct gw_upstream *up, struct gw_redis *r, const char *instance)
{
	const struct gw_config *cfg = up && up->env.cfg ? *up->env.cfg : NULL;
	struct gw_limits *l = up ? up->limits : NULL;
	char key[sizeof UP_CSEM_KEY_PREFIX + GW_CSEM_NAME_MAX];

	if (!l || !cfg || l->cs)
		return -1;
	l->cs = gw_csem_new(up->env.base, r, instance);
	if (!l->cs)
		return -1;
	/* Every account gets its entry, capped or not: a reload may set a cap later. */
	for (size_t i = 0; i < l->nacct && i < cfg->naccounts; i++)
		if (snprintf(key, sizeof key, UP_CSEM_KEY_PREFIX "%s", cfg->accounts[i].name) <
		    (int)sizeof key)
			l->acct[i].cse = gw_csem_entry(l->cs, key, up_conc_changed, up_conc_inflight,
							  &l->acct[i]);
	return 0;
}

/* A reload swapped the configuration (data): re-apply the accounts' caps. */
static void up_limits_on_reload(void *arg, const void *data)
{
	struct gw_upstream *up = arg;
	const struct gw_config *cfg = data;
	struct gw_limits *l = up->limits;
	int64_t now = up_now_ms();

	for (size_t i = 0; l && cfg && i < l->nacct && i < cfg->naccounts; i++) {
		const struct gw_account_cfg *ac = &cfg->accounts[i];

		unsigned n = cfg->cluster.expected_replicas;

		up_limits_apply(&l->acct[i], ac, n, now);
		up_limits_set_shared(&l->acct[i], ac, n);
		up_conc_sync(&l->acct[i], 0, now);
		up_limits_arm(&l->acct[i], now);
	}
}

int gw_up_guard_init(struct gw_upstream *up)
{
	const struct gw_config *cfg = up->env.cfg ? *up->env.cfg : NULL;
	struct gw_limits *l;
	int64_t now = up_now_ms();

	if (!cfg)
		return 0;	/* no configuration (tests): nothing is limited */
	l = calloc(1, sizeof *l);
	if (!l)
		return -1;
	l->nacct = cfg->naccounts;
	l->acct = l->nacct ? calloc(l->nacct, sizeof *l->acct) : NULL;
	if (l->nacct && !l->acct) {
		free(l);
		return -1;
	}
	for (size_t i = 0; i < l->nacct; i++) {
		struct gw_account_limits *a = &l->acct[i];
		const struct gw_account_cfg *ac = &cfg->accounts[i];

		a->up = up;
		a->idx = i;
		gw_breaker_init(&a->breaker, 0, 0);
		/* Until replicas share the account's limits (Redis, issue 12), each of
		 * cluster.expected_replicas takes its share of them. */
		gw_adm_init(&a->adm, gw_config_replica_cap(ac->max_concurrent, cfg->cluster.expected_replicas),
			    gw_config_replica_rate(ac->rate_per_second, cfg->cluster.expected_replicas),
			    ac->max_queue, now);
		gw_retry_budget_init(&a->budget, GW_RETRY_BUDGET_DEFAULT_PERCENT,
				     GW_RETRY_BUDGET_DEFAULT_MAX);
		a->timer = evtimer_new(up->env.base, up_limits_on_timer, a);
		a->timer_at_ms = -1;
		if (!a->timer) {
			gw_up_guard_free(l);
			return -1;
		}
	}
	if (up->env.reload && gw_notify_sub(up->env.reload, up_limits_on_reload, up) != 0) {
		gw_up_guard_free(l);
		return -1;
	}
	up->limits = l;
	return 0;
}

void gw_up_guard_fini(struct gw_upstream *up)
{
	if (up->env.reload)
		gw_notify_unsub(up->env.reload, up_limits_on_reload, up);
	gw_up_guard_free(up->limits);
	up->limits = NULL;
}

struct gw_limits *gw_up_limits(struct gw_upstream *up)
{
	return up->limits;
}

void gw_up_guard_render_metrics(const struct gw_upstream *up, struct gw_metrics_out *o)
{
	static const enum gw_breaker_state states[] = { GW_BREAKER_CLOSED, GW_BREAKER_OPEN,
							GW_BREAKER_HALF_OPEN };
	const struct gw_limits *l = up->limits;
	char name[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 32];

	if (l && l->cs)
		gw_csem_metrics(l->cs, o);
	if (!l || !l->nacct)
		return;
	gw_metrics_family(o, "breaker_state", "gauge",
			  "1 for the current circuit breaker state of each upstream account.");
	for (size_t i = 0; i < l->nacct; i++) {
		gw_metrics_label(up_account_name(&l->acct[i]), name, sizeof name);
		for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
			snprintf(labels, sizeof labels, "account=\"%s\",state=\"%s\"", name,
				 gw_breaker_state_name(states[s]));
			gw_metrics_value(o, "breaker_state", labels,
					 l->acct[i].breaker.state == states[s] ? 1 : 0);
		}
	}
	gw_metrics_family(o, "breaker_rejected_total", "counter",
			  "Upstream requests failed fast by an open circuit breaker.");
	for (size_t i = 0; i < l->nacct; i++) {
		gw_metrics_label(up_account_name(&l->acct[i]), name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_value(o, "breaker_rejected_total", labels, l->acct[i].breaker.rejected);
	}
	if (!l->cl)
		return;
	gw_metrics_family(o, "upstream_shared_rate_waits_total", "counter",
			  "Times upstream requests were held back by their account's shared (Redis) rate cap "
			  "(a request waits on its timer and asks again).");
	for (size_t i = 0; i < l->nacct; i++) {
		gw_metrics_label(up_account_name(&l->acct[i]), name, sizeof name);
		snprintf(labels, sizeof labels, "account=\"%s\"", name);
		gw_metrics_value(o, "upstream_shared_rate_waits_total", labels, l->acct[i].shared_waits);
	}
}

static void up_breaker_log(struct gw_account_limits *l, enum gw_breaker_state before)
{
	if (l->breaker.state == before)
		return;
	gw_log(l->breaker.state == GW_BREAKER_CLOSED ? GW_LOG_INFO : GW_LOG_WARN, "breaker",
	       GW_LS("account", up_account_name(l)), GW_LS("from", gw_breaker_state_name(before)),
	       GW_LS("to", gw_breaker_state_name(l->breaker.state)),
	       GW_LN("open_ms", (long long)l->breaker.open_ms), GW_LEND);
}

/* Gives back what the request holds (queue place, slot); lets the next waiter go. */
void gw_up_guard_release(struct gw_up_call *c)
{
	struct gw_account_limits *l = c->lim;

	if (!l)
		return;
	if (c->guard == UP_GUARD_QUEUED)
		gw_adm_cancel(&l->adm, &c->adm);
	c->guard = UP_GUARD_PASSED;
	if (c->admitted) {
		c->admitted = 0;
		gw_adm_leave(&l->adm, up_now_ms());
	}
	up_conc_sync(l, 0, up_now_ms());
	up_limits_arm(l, up_now_ms());
	c->lim = NULL;
}

/* The answer of a request that passed the breaker: failure or success, and Retry-After. */
void gw_up_guard_outcome(struct gw_up_call *c, CURLcode rc, long status, int no_session)
{
	struct gw_account_limits *l = c->lim;
	enum gw_breaker_state before;
	int64_t now = up_now_ms();
	long ra;

	if (!l || !c->breaker_counts || no_session || c->attempts == 0)
		return;		/* nothing was sent, or the login path failed: no news of the upstream */
	before = l->breaker.state;
	if (rc != CURLE_OK)
		gw_breaker_result(&l->breaker, rc == CURLE_WRITE_ERROR, now);	/* too large: alive */
	else
		gw_breaker_result(&l->breaker, status < 500, now);
	c->breaker_counts = 0;
	up_breaker_log(l, before);
	if (rc != CURLE_OK || (status != 429 && status != 503) || !c->retry_after)
		return;
	ra = gw_errmap_retry_after_ms(c->retry_after, time(NULL));
	if (ra < 0)
		return;
	status == 429 ? l->paused_429++ : l->paused_503++;
	gw_adm_pause(&l->adm, now, now + ra);
	up_limits_arm(l, now);
	gw_log(GW_LOG_WARN, "upstream_pause", GW_LS("account", up_account_name(l)),
	       GW_LN("status", status), GW_LN("ms", ra), GW_LEND);
}

/* Finishes c refused by its account's protection (nothing was sent). */
static void up_refuse(struct gw_up_call *c, int code, long retry_ms, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void up_refuse(struct gw_up_call *c, int code, long retry_ms, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errbuf, sizeof c->errbuf, fmt, ap);
	va_end(ap);
	c->limited = code;
	c->limited_retry_ms = retry_ms;
	c->breaker_counts = 0;
	c->up->n.limited++;
	/* COULDNT_CONNECT: callers that ignore res.limited still know nothing was sent. */
	gw_up_finish(c, CURLE_COULDNT_CONNECT, 0, c->errbuf, 0);
}

/* Admission's verdict for a queued request: continue from the loop, never inside the
 * gw_adm_* call that decided it (that may be another request's completion). */
static void up_on_admission(struct gw_adm_waiter *w, enum gw_adm_verdict v, void *arg)
{
	struct gw_up_call *c = arg;

	(void)w;
	if (v == GW_ADM_ADMIT) {
		c->admitted = 1;
		c->guard = UP_GUARD_PASSED;
	} else {
		c->guard = UP_GUARD_REFUSED;
	}
	c->phase = UP_WAIT_RETRY;
	event_active(c->retry_ev, EV_TIMEOUT, 0);
}

/*
 * The account's shared rate (gw_up_cluster). 0: go on (a token was taken, or the local share
 * decides); 1: c waits on its timer (guard NONE: up_on_retry enters again) or was refused.
 */
static int up_shared_rate(struct gw_up_call *c, struct gw_climit *cl, struct gw_account_limits *l,
			  int64_t now, int64_t deadline_ms)
{
	int64_t wait = 0;
	struct timeval tv;

	switch (gw_climit_take(cl, l->cle, &l->clim, 1, now, &wait)) {
	case GW_CLIMIT_ALLOW:
		up_limits_mode(l, 1, now);
		return 0;
	case GW_CLIMIT_REFUSE:
		up_limits_mode(l, 1, now);
		break;
	default:
		up_limits_mode(l, 0, now);
		return 0;
	}
	if (wait >= 0 && now + wait <= deadline_ms) {
		tv.tv_sec = (time_t)(wait / 1000);
		tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
		if (evtimer_add(c->retry_ev, &tv) == 0) {
			l->shared_waits++;
			c->guard = UP_GUARD_NONE;
			c->phase = UP_WAIT_RETRY;
			return 1;
		}
	}
	up_refuse(c, GRPC_STATUS_UNAVAILABLE, (long)wait,
		  "upstream account %s cannot take the request before its deadline (shared rate; "
		  "earliest in %lld ms)", up_account_name(l), (long long)wait);
	return 1;
}

/*
 * Before the first attempt of an API request: the breaker, then admission. Returns 0 to go on
 * now, or -1 when c is queued (it continues from up_on_admission) or was finished (refused).
 */
int gw_up_guard_enter(struct gw_up_call *c)
{
	struct gw_limits *lims;
	struct gw_account_limits *l;
	enum gw_breaker_state before;
	int64_t now = up_now_ms(), left = gw_up_time_left_ms(c), wait = 0;

	c->guard = UP_GUARD_PASSED;
	if (!c->api || !c->acct)
		return 0;
	lims = gw_up_limits(c->up);
	if (!lims || c->acct->idx >= lims->nacct)
		return 0;	/* no limits state (out of memory): unprotected, not refused */
	l = &lims->acct[c->acct->idx];
	if (c->idempotent && c->lim != l)
		gw_retry_budget_request(&l->budget);	/* pays for a fifth of a retry, once */
	c->lim = l;
	if (c->admit_by_us)
		left = (c->admit_by_us - gw_clock_now_us()) / 1000;
	/* The shared rate first: a request it holds back has touched nothing else yet (a breaker
	 * probe it let through would otherwise wait too). */
	if (lims->cl && l->cle && up_shared_rate(c, lims->cl, l, now, now + left - UP_ADM_MARGIN_MS))
		return -1;
	before = l->breaker.state;
	if (!gw_breaker_allow(&l->breaker, now, &wait)) {
		up_refuse(c, GRPC_STATUS_UNAVAILABLE, (long)wait,
			  "upstream circuit open for account %s; retry in %lld ms", up_account_name(l),
			  (long long)wait);
		return -1;
	}
	up_breaker_log(l, before);
	c->breaker_counts = 1;
	c->adm.deadline_ms = now + left - UP_ADM_MARGIN_MS;
	c->adm.fn = up_on_admission;
	c->adm.arg = c;
	up_conc_sync(l, 1, now);
	switch (gw_adm_enter(&l->adm, &c->adm, now, &wait)) {
	case GW_ADM_ADMIT:
		c->admitted = 1;
		return 0;
	case GW_ADM_QUEUED:
		c->guard = UP_GUARD_QUEUED;
		c->phase = UP_WAIT_ADMISSION;
		up_limits_arm(l, now);
		return -1;
	case GW_ADM_REFUSE_FULL:
		up_refuse(c, GRPC_STATUS_RESOURCE_EXHAUSTED, wait > 0 ? (long)wait : 100,
			  "upstream queue of account %s is full (%zu waiting)", up_account_name(l),
			  l->adm.nqueued);
		return -1;
	default:
		up_refuse(c, GRPC_STATUS_UNAVAILABLE, (long)wait,
			  "upstream account %s cannot take the request before its deadline "
			  "(earliest in %lld ms%s)", up_account_name(l), (long long)wait,
			  l->adm.pause_until_ms > now ? ", paused by Retry-After" : "");
		return -1;
	}
}

int gw_up_account_hold(struct gw_upstream *up, size_t acct, int64_t *wait_ms, char *msg, size_t cap)
{
	struct gw_limits *lims = gw_up_limits(up);
	struct gw_account_limits *l;
	int64_t now = up_now_ms(), until;

	*wait_ms = 0;
	if (cap)
		msg[0] = '\0';
	if (!lims || acct >= lims->nacct)
		return 0;
	l = &lims->acct[acct];
	/* What gw_breaker_allow would say, without moving it to half-open. */
	until = l->breaker.since_ms + l->breaker.open_ms;
	if (l->breaker.state != GW_BREAKER_CLOSED && now < until) {
		*wait_ms = until - now;
		snprintf(msg, cap, "upstream circuit open for account %s; retry in %lld ms",
			 up_account_name(l), (long long)*wait_ms);
		return GRPC_STATUS_UNAVAILABLE;
	}
	*wait_ms = gw_adm_estimate(&l->adm, now);
	if (l->adm.nqueued >= l->adm.max_queue) {
		snprintf(msg, cap, "upstream queue of account %s is full (%zu waiting)", up_account_name(l),
			 l->adm.nqueued);
		if (*wait_ms <= 0)
			*wait_ms = 100;
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	if (l->adm.pause_until_ms > now)
		snprintf(msg, cap, "upstream account %s is paused (Retry-After) for %lld ms more",
			 up_account_name(l), (long long)(l->adm.pause_until_ms - now));
	else if (*wait_ms > 0)
		snprintf(msg, cap, "upstream account %s admits the next request in %lld ms",
			 up_account_name(l), (long long)*wait_ms);
	return 0;
}

/* A queued request was refused: paused past its deadline, or its deadline came. */
void gw_up_guard_refused_late(struct gw_up_call *c)
{
	struct gw_account_limits *l = c->lim;
	int64_t now = up_now_ms();
	const char *name = l ? up_account_name(l) : "?";

	if (l && l->adm.pause_until_ms > now)
		up_refuse(c, GRPC_STATUS_UNAVAILABLE, (long)(l->adm.pause_until_ms - now),
			  "upstream account %s is paused (Retry-After) for %lld ms more, past the "
			  "request's deadline", name, (long long)(l->adm.pause_until_ms - now));
	else
		up_refuse(c, GRPC_STATUS_DEADLINE_EXCEEDED, -1,
			  "deadline reached while waiting for upstream account %s", name);
}

/*
 * Whether this answer gets a retry (issue 5): idempotent requests only, never after a Retry-After
 * (the account pauses instead), with full-jitter exponential backoff that fits in the time left,
 * and for API requests only while the account's retry budget allows it (retries <= 20% of
 * requests), so a dead upstream sees at most 1.2x the offered load.
 */
long gw_up_guard_retry_delay(struct gw_up_call *c, CURLcode rc, long status)
{
	static const struct gw_retry_policy policy = GW_RETRY_POLICY_DEFAULT;
	long d;

	if (!c->idempotent || c->retry_after || !gw_up_retryable(rc, status))
		return -1;
	d = gw_retry_delay_ms(&policy, c->retried + 1, (long)gw_up_time_left_ms(c), &c->up->rng);
	if (d < 0)
		return -1;
	if (c->lim && !gw_retry_budget_withdraw(&c->lim->budget))
		return -1;
	return d;
}
