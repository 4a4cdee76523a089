/*
 * climit: cluster-wide token buckets in Redis, spent locally through leases. See climit.h.
 */
#include "gateway/cluster/climit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/clock.h"
#include "gateway/base/metrics.h"
#include "gateway/cluster/redis.h"

/*
 * The bucket: tokens (a float) and the server time of their last refill (microseconds, written
 * in full: tostring() keeps 14 digits, a 16-digit time would lose its last two). Time
 * never moves the refill backwards (a failover to a replica whose clock is behind). The key
 * expires a second after it would be full again: an absent key is a full bucket.
 */
const char GW_CLIMIT_LUA[] =
	"local rate = tonumber(ARGV[1])\n"
	"local burst = tonumber(ARGV[2])\n"
	"local want = tonumber(ARGV[3])\n"
	"local need = tonumber(ARGV[4])\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local v = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
	"local tokens = tonumber(v[1])\n"
	"local ts = tonumber(v[2])\n"
	"if tokens == nil or ts == nil then tokens = burst; ts = now end\n"
	"if now > ts then\n"
	"  tokens = tokens + (now - ts) * rate / 1000000\n"
	"  ts = now\n"
	"end\n"
	"if tokens > burst then tokens = burst end\n"
	"local granted = 0\n"
	"local wait = 0\n"
	"if need > burst then\n"
	"  wait = -1\n"
	"elseif tokens >= need then\n"
	"  granted = math.min(want, math.floor(tokens))\n"
	"  tokens = tokens - granted\n"
	"else\n"
	"  wait = math.ceil((need - tokens) * 1000 / rate)\n"
	"  if wait < 1 then wait = 1 end\n"
	"  if wait > 60000 then wait = 60000 end\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.0f', ts))\n"
	"redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)\n"
	"return {granted, wait, math.floor(tokens)}\n";

/* A refill in flight: its own allocation, so that a climit freed first can detach it. */
struct climit_req {
	struct gw_climit *c;		/* NULL: detached, drop the answer */
	struct gw_climit_entry *e;
};

struct gw_climit_entry {
	char *name;
	char *key;			/* prefixed Redis key */
	int64_t local;			/* tokens held; negative: the debt of the overdraft */
	int64_t denied_until_ms;	/* the shared bucket said empty until then */
	int64_t fail_until_ms;		/* a refill failed: fall back until then */
	struct climit_req *req;		/* the refill in flight, or NULL */
	struct gw_climit_limit lim;	/* of the last take, for the refills it starts */
	struct gw_climit_wait *whead, *wtail;	/* parked calls, oldest first */
	unsigned nparked;		/* at most GW_CLIMIT_MAX_PARKED */
	int64_t parked_cost;		/* their tokens: the next refill asks for them too */
};

#define CLIMIT_BUSY (-1)	/* internal: lease and overdraft spent while a refill is in flight */

struct gw_climit {
	struct gw_redis *r;
	struct gw_redis_script script;
	struct gw_climit_entry **e;
	size_t n, cap;
	struct gw_climit_stats st;
	long park_ms;			/* a parked call's wait limit */
};

unsigned gw_climit_lease_size(double rate, double burst, unsigned replicas, unsigned max_cost)
{
	double share, l, top;

	if (!(rate > 0))
		return 0;
	if (replicas < 1)
		replicas = 1;
	if (max_cost < 1)
		max_cost = 1;
	if (!(burst > 0))
		burst = 0;
	share = burst / (GW_CLIMIT_LEASE_SHARE * (double)replicas);
	l = floor(fmin(share, rate * GW_CLIMIT_LEASE_SECONDS));
	if (l < max_cost)
		l = max_cost;
	top = fmax(floor(burst), (double)max_cost);
	if (l > top)
		l = top;
	if (l > 1e6)
		l = 1e6;
	return (unsigned)l;
}

int64_t gw_climit_pushback(double tokens, double need, double rate, double burst)
{
	double ms;

	if (need > burst)
		return -1;
	if (tokens >= need)
		return 0;
	if (!(rate > 0))
		return -1;
	ms = ceil((need - tokens) * 1000.0 / rate);
	if (ms < 1)
		ms = 1;
	return ms > GW_CLIMIT_MAX_WAIT_MS ? GW_CLIMIT_MAX_WAIT_MS : (int64_t)ms;
}

struct gw_climit *gw_climit_new(struct gw_redis *r)
{
	struct gw_climit *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->r = r;
	c->park_ms = GW_CLIMIT_DEFAULT_PARK_MS;
	gw_redis_part_use(r, GW_REDIS_PART_LIMITS);
	c->script.lua = GW_CLIMIT_LUA;
	gw_redis_script_init(&c->script);
	return c;
}

void gw_climit_free(struct gw_climit *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i]->req)
			c->e[i]->req->c = NULL;
		for (struct gw_climit_wait *w = c->e[i]->whead; w; w = w->next)
			w->e = NULL;
		free(c->e[i]->name);
		free(c->e[i]->key);
		free(c->e[i]);
	}
	free(c->e);
	free(c);
}

struct gw_climit_entry *gw_climit_entry(struct gw_climit *c, const char *name)
{
	struct gw_climit_entry *e = NULL;
	char key[GW_REDIS_KEY_MAX], raw[GW_CLIMIT_NAME_MAX + 1];
	size_t len = name ? strlen(name) : 0;

	if (!c || len == 0 || len > GW_CLIMIT_NAME_MAX)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i]->name, name) == 0)
			return c->e[i];
	if (c->n >= GW_CLIMIT_MAX_KEYS)
		return NULL;
	memcpy(raw, name, len + 1);
	if (c->r) {
		if (gw_redis_key(c->r, raw, key, sizeof key) < 0)
			return NULL;
	} else {
		memcpy(key, raw, len + 1);
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct gw_climit_entry **ne = realloc(c->e, cap * sizeof *ne);

		if (!ne)
			return NULL;
		c->e = ne;
		c->cap = cap;
	}
	e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->name = strdup(name);
	e->key = strdup(key);
	if (!e->name || !e->key) {
		free(e->name);
		free(e->key);
		free(e);
		return NULL;
	}
	c->e[c->n++] = e;
	return e;
}

int gw_climit_shared(const struct gw_climit *c)
{
	return c && c->r && gw_redis_connected(c->r);
}

int64_t gw_climit_local(const struct gw_climit_entry *e, int *inflight)
{
	if (inflight)
		*inflight = e && e->req;
	return e ? e->local : 0;
}

const struct gw_climit_stats *gw_climit_stats(const struct gw_climit *c)
{
	return &c->st;
}

static int climit_refill(struct gw_climit *c, struct gw_climit_entry *e, unsigned cost);
static int climit_decide(struct gw_climit *c, struct gw_climit_entry *e, unsigned cost,
			 int64_t now_ms, int64_t *wait_ms);
static int climit_fallback(struct gw_climit *c, struct gw_climit_entry *e);

static void climit_unlink(struct gw_climit_wait *w)
{
	struct gw_climit_entry *e = w->e;

	if (w->prev)
		w->prev->next = w->next;
	else
		e->whead = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		e->wtail = w->prev;
	e->nparked--;
	e->parked_cost -= w->cost;
	w->prev = w->next = NULL;
	w->e = NULL;
}

/*
 * A refill answered: parked calls past their wait limit fall back (without forgetting the lease:
 * Redis answers, only this call waited too long), then the others take tokens in order until one
 * finds the lease short again with a refill in flight (it and those behind it wait for that one).
 * fn may start or park other calls, so the FIFO is read afresh after each.
 */
static void climit_resume(struct gw_climit *c, struct gw_climit_entry *e, int64_t now)
{
	struct gw_climit_wait *w;
	int64_t wait;
	int rc;

	for (;;) {
		for (w = e->whead; w && w->until_ms > now; w = w->next)
			;
		if (!w)
			break;
		climit_unlink(w);
		c->st.park_timeout++;
		w->fn(w, climit_fallback(c, NULL), 0);
	}
	while ((w = e->whead) != NULL) {
		wait = 0;
		rc = climit_decide(c, e, w->cost, now, &wait);
		if (rc == CLIMIT_BUSY)
			break;
		climit_unlink(w);
		c->st.resumed++;
		w->fn(w, rc, wait);
	}
}

static void climit_done(void *arg, const redisReply *reply, const char *err)
{
	struct climit_req *req = arg;
	struct gw_climit *c = req->c;
	struct gw_climit_entry *e = req->e;
	int64_t now = gw_clock_now_us() / 1000, granted, wait;

	free(req);
	if (!c)
		return;
	e->req = NULL;
	if (err || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER) {
		/* Unknown outcome: decide locally for a while rather than retrying on every call. */
		c->st.refill_failed++;
		e->fail_until_ms = now + GW_CLIMIT_FAIL_HOLD_MS;
		climit_resume(c, e, now);
		return;
	}
	granted = reply->element[0]->integer;
	wait = reply->element[1]->integer;
	if (granted > 0) {
		e->local += granted;
		c->st.refill_granted += (uint64_t)granted;
		e->denied_until_ms = 0;
		climit_resume(c, e, now);
		/* Still short (a debt was paid): ask again while the bucket has tokens. */
		if (!e->req && 2 * e->local < (int64_t)e->lim.lease)
			climit_refill(c, e, 1);
		return;
	}
	c->st.refill_refused++;
	e->denied_until_ms = now + (wait > 0 ? wait : GW_CLIMIT_FAIL_HOLD_MS);
	climit_resume(c, e, now);
}

/*
 * Asks the shared bucket for a lease: at least `need` = what the call of cost lacks (the debt
 * included; at most the burst, a larger debt is paid by the next refills), up to one lease plus
 * the debt plus the parked calls' tokens (all paid for: the bound is unchanged). 0 sent, -1 refused by the client (not connected, queue full).
 */
static int climit_refill(struct gw_climit *c, struct gw_climit_entry *e, unsigned cost)
{
	struct climit_req *req;
	int64_t need = (int64_t)cost - e->local, debt = e->local < 0 ? -e->local : 0, want;
	int64_t top = (int64_t)floor(e->lim.burst);
	char rate[48], burst[48], swant[24], sneed[24];
	const char *argv[5];
	int rc;

	if (top < 1)
		top = 1;
	if (need < 1)
		need = 1;
	if (need > top)
		need = top;
	want = (int64_t)e->lim.lease + debt + e->parked_cost;
	if (want < need)
		want = need;
	req = malloc(sizeof *req);
	if (!req)
		return -1;
	req->c = c;
	req->e = e;
	snprintf(rate, sizeof rate, "%.6f", e->lim.rate);
	snprintf(burst, sizeof burst, "%.6f", e->lim.burst);
	snprintf(swant, sizeof swant, "%lld", (long long)want);
	snprintf(sneed, sizeof sneed, "%lld", (long long)need);
	argv[0] = e->key;
	argv[1] = rate;
	argv[2] = burst;
	argv[3] = swant;
	argv[4] = sneed;
	rc = gw_redis_eval(c->r, &c->script, 1, 4, argv, NULL, climit_done, req);
	if (rc != GW_REDIS_OK) {
		free(req);
		return -1;
	}
	e->req = req;
	c->st.refills++;
	return 0;
}

static int climit_fallback(struct gw_climit *c, struct gw_climit_entry *e)
{
	c->st.fallback++;
	c->st.shared_mode = 0;
	gw_redis_part_note(c->r, GW_REDIS_PART_LIMITS, 1);
	if (e) {
		e->local = 0;
		e->denied_until_ms = 0;
	}
	return GW_CLIMIT_FALLBACK;
}

int gw_climit_take_wait(struct gw_climit *c, struct gw_climit_entry *e,
			const struct gw_climit_limit *lim, unsigned cost, int64_t now_ms,
			int64_t max_wait_ms, int64_t *wait_ms, struct gw_climit_wait *w)
{
	int rc;

	*wait_ms = 0;
	if (!c)
		return GW_CLIMIT_FALLBACK;
	if (!(lim->rate > 0))
		return GW_CLIMIT_ALLOW;
	if (!e) {
		c->st.no_entry++;
		return climit_fallback(c, NULL);
	}
	e->lim = *lim;
	if (e->lim.lease < 1)
		e->lim.lease = 1;
	rc = climit_decide(c, e, cost, now_ms, wait_ms);
	if (rc != CLIMIT_BUSY)
		return rc;
	if (w && e->nparked < GW_CLIMIT_MAX_PARKED) {
		int64_t lim_ms = c->park_ms;

		if (max_wait_ms >= 0 && max_wait_ms < lim_ms)
			lim_ms = max_wait_ms;
		w->c = c;
		w->e = e;
		w->cost = cost;
		w->until_ms = now_ms + lim_ms;
		w->next = NULL;
		w->prev = e->wtail;
		if (e->wtail)
			e->wtail->next = w;
		else
			e->whead = w;
		e->wtail = w;
		e->nparked++;
		e->parked_cost += cost;
		c->st.parked++;
		return GW_CLIMIT_PENDING;
	}
	if (w)
		c->st.park_overflow++;
	c->st.busy_refused++;
	c->st.shared++;
	c->st.shared_mode = 1;
	gw_redis_part_note(c->r, GW_REDIS_PART_LIMITS, 0);
	*wait_ms = gw_climit_pushback(0, cost, lim->rate, lim->burst);
	if (*wait_ms < 1)
		*wait_ms = 1;
	return GW_CLIMIT_REFUSE;
}

int gw_climit_take(struct gw_climit *c, struct gw_climit_entry *e, const struct gw_climit_limit *lim,
		   unsigned cost, int64_t now_ms, int64_t *wait_ms)
{
	return gw_climit_take_wait(c, e, lim, cost, now_ms, -1, wait_ms, NULL);
}

void gw_climit_cancel(struct gw_climit_wait *w)
{
	if (!w || !w->e)
		return;
	w->c->st.park_cancelled++;
	climit_unlink(w);
}

void gw_climit_wait_limit(struct gw_climit *c, long ms)
{
	if (c)
		c->park_ms = ms < 1 ? 1 : ms;
}

/* The decision for cost tokens of e (its lim set), or CLIMIT_BUSY: the caller parks or refuses. */
static int climit_decide(struct gw_climit *c, struct gw_climit_entry *e, unsigned cost,
			 int64_t now_ms, int64_t *wait_ms)
{
	*wait_ms = 0;
	if (!c->r || !gw_redis_connected(c->r) || now_ms < e->fail_until_ms)
		return climit_fallback(c, e);
	if ((double)cost > e->lim.burst) {
		c->st.shared++;
		*wait_ms = -1;
		return GW_CLIMIT_REFUSE;
	}
	if (e->local >= (int64_t)cost) {
		e->local -= cost;
		/* Prefetch: the next lease is on its way before this one is spent. */
		if (!e->req && 2 * e->local < (int64_t)e->lim.lease && now_ms >= e->denied_until_ms)
			climit_refill(c, e, 1);
		goto shared_allow;
	}
	if (now_ms < e->denied_until_ms) {
		c->st.shared++;
		c->st.shared_mode = 1;
		*wait_ms = e->denied_until_ms - now_ms;
		return GW_CLIMIT_REFUSE;
	}
	if (!e->req && climit_refill(c, e, cost) != 0)
		return climit_fallback(c, e);
	/* The overdraft: on credit while the refill is in flight, one lease of debt at most (the
	 * lease of this call: never smaller than its cost, or a dear call could never pass on it). */
	if (e->local - (int64_t)cost >= -(int64_t)(cost > e->lim.lease ? cost : e->lim.lease)) {
		e->local -= cost;
		c->st.overdraft++;
		goto shared_allow;
	}
	return CLIMIT_BUSY;
shared_allow:
	c->st.shared++;
	c->st.shared_mode = 1;
	gw_redis_part_note(c->r, GW_REDIS_PART_LIMITS, 0);
	return GW_CLIMIT_ALLOW;
}

void gw_climit_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_climit *c = arg;
	static const char *const what[] = { "shared", "fallback", "lease_refill", "lease_granted",
					    "lease_refused", "lease_failed", "overdraft",
					    "busy_refused", "no_entry", "parked", "resumed",
					    "park_timeout", "park_overflow", "park_cancelled" };
	uint64_t v[14];
	char labels[64];

	v[0] = c->st.shared;
	v[1] = c->st.fallback;
	v[2] = c->st.refills;
	v[3] = c->st.refill_granted;
	v[4] = c->st.refill_refused;
	v[5] = c->st.refill_failed;
	v[6] = c->st.overdraft;
	v[7] = c->st.busy_refused;
	v[8] = c->st.no_entry;
	v[9] = c->st.parked;
	v[10] = c->st.resumed;
	v[11] = c->st.park_timeout;
	v[12] = c->st.park_overflow;
	v[13] = c->st.park_cancelled;
	gw_metrics_family(o, "cluster_limit_total", "counter",
			  "Rate-limit decisions on the shared (Redis) buckets and their leases: "
			  "shared decisions, fallback decisions (local bucket), lease requests, tokens "
			  "granted, refused and failed requests, calls admitted on credit, calls refused "
			  "while a lease was on its way, keys without an entry, calls parked for a lease, "
			  "resumed, timed out into a fallback, not parked (queue full), cancelled.");
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		snprintf(labels, sizeof labels, "what=\"%s\"", what[i]);
		gw_metrics_value(o, "cluster_limit_total", labels, v[i]);
	}
	gw_metrics_one(o, "cluster_limit_shared", "gauge",
		       "1 when rate limits are decided on the shared buckets (Redis connected), 0 local.",
		       gw_climit_shared(c));
}
