/* Unit tests for gateway/svc/status.c: batching, coalescing, splitting, watchers, refresh; with a
 * fake transport (records each GET /status) and a fake clock. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <grpc/status.h>

#include "gateway/api/cache.h"
#include "gateway/base/trace.h"
#include "gateway/svc/status.h"

#define P ANIMATE3D__V1__JOB_STATE__PROGRESS
#define S ANIMATE3D__V1__JOB_STATE__SUCCESS
#define MAX_FETCHES 64

struct fake_fetch {
	struct gw_status_fetch *f;
	size_t acct;
	char rids[512];		/* "a,b,c" as the URL would carry them */
	long timeout_ms;	/* what the batch asked for: 0 = the transport's default */
	const struct gw_trace *trace;	/* gw_status_fetch_trace at the start */
	int done, cancelled;
};

struct fix {
	int64_t now;
	struct gw_cache *cache;
	struct gw_status *s;
	struct fake_fetch fetch[MAX_FETCHES];
	size_t nfetch;
	int refuse;		/* start() fails */
	int hold_code;		/* fake_hold: 0 = may wait, else refused whatever the deadline */
	int64_t hold_wait;	/* fake_hold: how long the account holds requests back */
};

static int64_t fake_now(void *arg)
{
	return ((struct fix *)arg)->now;
}

static void *fake_start(void *arg, size_t acct, const char *const *rids, size_t n, long timeout_ms,
			struct gw_status_fetch *f)
{
	struct fix *x = arg;
	struct fake_fetch *ff;

	if (x->refuse || x->nfetch >= MAX_FETCHES)
		return NULL;
	ff = &x->fetch[x->nfetch++];
	memset(ff, 0, sizeof *ff);
	ff->f = f;
	ff->acct = acct;
	ff->timeout_ms = timeout_ms;
	ff->trace = gw_status_fetch_trace(f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(ff->rids, ",");
		strcat(ff->rids, rids[i]);
	}
	return ff;
}

static int fake_hold(void *arg, size_t acct, int64_t *wait_ms, char *msg, size_t cap)
{
	struct fix *x = arg;

	(void)acct;
	*wait_ms = x->hold_wait;
	snprintf(msg, cap, "held %lld ms", (long long)x->hold_wait);
	return x->hold_code;
}

static void fake_cancel(void *arg, void *handle)
{
	(void)arg;
	((struct fake_fetch *)handle)->cancelled = 1;
}

static void fix_init(struct fix *x, size_t batch_max, int64_t window, int64_t ttl)
{
	struct gw_status_opts o = { 0 };

	memset(x, 0, sizeof *x);
	x->now = 1000;
	x->cache = gw_cache_new(1000, ttl);
	cr_assert(x->cache);
	o.naccounts = 2;
	o.batch_max = batch_max;
	o.window_ms = window;
	o.ttl_ms = ttl;
	o.now_ms = fake_now;
	o.clock_arg = x;
	o.start = fake_start;
	o.cancel = fake_cancel;
	o.hold = fake_hold;
	o.transport_arg = x;
	x->s = gw_status_new(&o, x->cache);
	cr_assert(x->s);
}

static void fix_fini(struct fix *x)
{
	gw_status_free(x->s);
	gw_cache_free(x->cache);
}

/* Answers fetch i with the given "rid:state:step" items (others left out = unknown upstream). */
static void answer(struct fix *x, size_t i, const char *const *items, size_t n)
{
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	Animate3d__V1__JobStatus st[16], *stp[16];
	char rid[16][32];
	struct gw_status_result res = { .code = 0, .retry_after_ms = -1, .resp = &resp };

	cr_assert(i < x->nfetch && !x->fetch[i].done);
	for (size_t k = 0; k < n; k++) {
		int state = 0;
		long step = 0;

		animate3d__v1__job_status__init(&st[k]);
		cr_assert_eq(sscanf(items[k], "%31[^:]:%d:%ld", rid[k], &state, &step), 3);
		st[k].rid = rid[k];
		st[k].state = (Animate3d__V1__JobState)state;
		st[k].step = step;
		stp[k] = &st[k];
	}
	resp.statuses = stp;
	resp.n_statuses = n;
	x->fetch[i].done = 1;
	gw_status_fetch_done(x->fetch[i].f, &res);
}

static void answer_error(struct fix *x, size_t i, int code)
{
	struct gw_status_result res = { .code = code, .msg = "boom", .retry_after_ms = 1500 };

	x->fetch[i].done = 1;
	gw_status_fetch_done(x->fetch[i].f, &res);
}

/* A waiter that records what it got. */
struct got {
	struct gw_status_waiter w;
	int calls, code, state;
	int64_t step;
	long retry;
};

static void got_done(struct gw_status_waiter *w, int code, const Animate3d__V1__JobStatus *st,
		     const char *msg, long retry)
{
	struct got *g = (struct got *)w;

	g->calls++;
	g->code = code;
	g->retry = retry;
	cr_assert(code == 0 ? st != NULL : msg != NULL);
	g->state = st ? (int)st->state : -1;
	g->step = st ? st->step : -1;
}

static void want(struct fix *x, const char *rid, struct got *g)
{
	memset(g, 0, sizeof *g);
	g->w.done = got_done;
	cr_assert_eq(gw_status_want(x->s, 0, rid, &g->w), 0, "want %s", rid);
}

/* ---- batching ---- */

/* n distinct rids wanted at t=1000, then one tick at 1000 + tick_at: the requests that leave. */
static const struct {
	size_t batch_max;
	int64_t window;
	int nwant;
	int64_t tick_at;
	const char *want[4];	/* rid lists of the fetches, in order; NULL-terminated */
} batch_cases[] = {
	{ 3, 5, 2, 4, { NULL } },			/* window not over, not full */
	{ 3, 5, 2, 5, { "r0,r1", NULL } },		/* window over */
	{ 3, 5, 3, 0, { "r0,r1,r2", NULL } },		/* full: leaves at once */
	{ 3, 5, 4, 0, { "r0,r1,r2", "r3", NULL } },	/* full, the rest goes along */
	{ 3, 5, 7, 0, { "r0,r1,r2", "r3,r4,r5", "r6", NULL } },
	{ 50, 0, 1, 0, { "r0", NULL } },		/* window 0: next tick */
	{ 1, 100, 2, 0, { "r0", "r1", NULL } },
};

Test(status, batch_flush_table)
{
	for (size_t i = 0; i < sizeof batch_cases / sizeof batch_cases[0]; i++) {
		struct fix x;
		struct got g[8];
		char rid[16];
		size_t nwant = 0;

		fix_init(&x, batch_cases[i].batch_max, batch_cases[i].window, 1000);
		for (int k = 0; k < batch_cases[i].nwant; k++) {
			snprintf(rid, sizeof rid, "r%d", k);
			want(&x, rid, &g[k]);
		}
		x.now += batch_cases[i].tick_at;
		gw_status_tick(x.s);
		while (batch_cases[i].want[nwant])
			nwant++;
		cr_expect_eq(x.nfetch, nwant, "case %zu: %zu fetches, want %zu", i, x.nfetch, nwant);
		for (size_t k = 0; k < nwant && k < x.nfetch; k++)
			cr_expect_str_eq(x.fetch[k].rids, batch_cases[i].want[k], "case %zu fetch %zu", i, k);
		cr_expect_eq(gw_status_counters(x.s)->fetches, x.nfetch, "case %zu", i);
		fix_fini(&x);
	}
}

/* A batch goes upstream under the trace of the first waiter (in rid order, then arrival order)
 * that has one; none when nobody waiting has one (the follower's polls). */
Test(status, fetch_trace_table)
{
	static struct gw_trace t1, t2;
	static const struct {
		const char *rid[3];
		const struct gw_trace *trace[3];
		const struct gw_trace *want;
	} rows[] = {
		{ { "a", "b", "c" }, { NULL, NULL, NULL }, NULL },
		{ { "a", "b", "c" }, { NULL, &t1, NULL }, &t1 },
		{ { "a", "b", "c" }, { &t2, &t1, NULL }, &t2 },
		{ { "a", "a", "b" }, { NULL, &t1, &t2 }, &t1 },		/* a joined a's waiter */
		{ { "b", "a", "a" }, { &t2, NULL, &t1 }, &t2 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct fix x;
		struct got g[3];

		fix_init(&x, 50, 5, 1000);
		for (size_t k = 0; k < 3; k++) {
			memset(&g[k], 0, sizeof g[k]);
			g[k].w.done = got_done;
			g[k].w.trace = rows[i].trace[k];
			cr_assert_eq(gw_status_want(x.s, 0, rows[i].rid[k], &g[k].w), 0);
		}
		x.now += 5;
		gw_status_tick(x.s);
		cr_assert_eq(x.nfetch, 1, "row %zu", i);
		cr_expect_eq(x.fetch[0].trace, rows[i].want, "row %zu", i);
		fix_fini(&x);
	}
}

static void watch_noop(struct gw_status_watch *w, int code, const Animate3d__V1__JobStatus *st)
{
	(void)w;
	(void)code;
	(void)st;
}

/* A fetch only watchers wait for (WatchStatus's first read) goes under a watcher's trace; a
 * waiter's comes first. */
Test(status, fetch_trace_of_watchers)
{
	static struct gw_trace tw, tg;
	struct gw_status_watch w1 = { .notify = watch_noop }, w2 = { .notify = watch_noop, .trace = &tw };
	struct got g;
	struct fix x;

	fix_init(&x, 50, 5, 1000);
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w1), 0);
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w2), 0);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_expect_eq(x.fetch[0].trace, &tw);
	gw_status_unwatch(&w1);
	gw_status_unwatch(&w2);
	fix_fini(&x);

	fix_init(&x, 50, 5, 1000);
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w2), 0);
	memset(&g, 0, sizeof g);
	g.w.done = got_done;
	g.w.trace = &tg;
	cr_assert_eq(gw_status_want(x.s, 0, "a", &g.w), 0);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_expect_eq(x.fetch[0].trace, &tg);
	gw_status_unwatch(&w2);
	fix_fini(&x);
}

Test(status, split_answers_and_not_found)
{
	struct fix x;
	struct got a, b, c;
	const char *items[] = { "c:2:9", "a:1:3" };	/* upstream order differs; b unknown */

	fix_init(&x, 50, 5, 1000);
	want(&x, "a", &a);
	want(&x, "b", &b);
	want(&x, "c", &c);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_expect_str_eq(x.fetch[0].rids, "a,b,c");
	cr_expect_eq(a.calls + b.calls + c.calls, 0, "nothing before the answer");
	answer(&x, 0, items, 2);
	cr_expect_eq(a.calls, 1);
	cr_expect_eq(a.code, 0);
	cr_expect_eq(a.state, P);
	cr_expect_eq(a.step, 3);
	cr_expect_eq(b.calls, 1);
	cr_expect_eq(b.code, GRPC_STATUS_NOT_FOUND);
	cr_expect_eq(c.calls, 1);
	cr_expect_eq(c.state, S);
	cr_expect_eq(c.step, 9);
	/* Both answers are cached, with the fetch's start time. */
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 1);
	cr_expect_eq(gw_cache_get(x.cache, 0, "b", x.now, NULL), 0);
	cr_expect_eq(gw_cache_get(x.cache, 0, "c", x.now + 999999, NULL), 1);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now + 1000, NULL), 0, "TTL counts from the fetch start");
	fix_fini(&x);
}

/* Coalescing: wants while queued or in flight join; counts per table row. */
static const struct {
	int queued, flying;	/* extra wants of the same rid before the tick / while in flight */
	uint64_t coalesced;
} coalesce_cases[] = {
	{ 0, 0, 0 }, { 1, 0, 1 }, { 0, 1, 1 }, { 5, 7, 12 }, { 99, 0, 99 },
};

Test(status, coalescing_table)
{
	for (size_t i = 0; i < sizeof coalesce_cases / sizeof coalesce_cases[0]; i++) {
		struct fix x;
		static struct got g[128];
		int n = 0;
		const char *items[] = { "a:1:4" };

		fix_init(&x, 50, 5, 1000);
		want(&x, "a", &g[n++]);
		for (int k = 0; k < coalesce_cases[i].queued; k++)
			want(&x, "a", &g[n++]);
		x.now += 5;
		gw_status_tick(x.s);
		for (int k = 0; k < coalesce_cases[i].flying; k++)
			want(&x, "a", &g[n++]);
		gw_status_tick(x.s);
		cr_expect_eq(x.nfetch, 1, "case %zu: one request whatever the callers", i);
		cr_expect_str_eq(x.fetch[0].rids, "a");
		cr_expect_eq(gw_status_counters(x.s)->coalesced, coalesce_cases[i].coalesced, "case %zu", i);
		answer(&x, 0, items, 1);
		for (int k = 0; k < n; k++) {
			cr_expect_eq(g[k].calls, 1, "case %zu waiter %d", i, k);
			cr_expect_eq(g[k].step, 4, "case %zu waiter %d", i, k);
		}
		fix_fini(&x);
	}
}

Test(status, error_reaches_every_waiter_and_is_not_cached)
{
	struct fix x;
	struct got a, b;

	fix_init(&x, 50, 0, 1000);
	want(&x, "a", &a);
	want(&x, "b", &b);
	gw_status_tick(x.s);
	answer_error(&x, 0, GRPC_STATUS_RESOURCE_EXHAUSTED);
	cr_expect_eq(a.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
	cr_expect_eq(a.retry, 1500);
	cr_expect_eq(b.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 0);
	cr_expect_eq(gw_status_counters(x.s)->fetch_errors, 1);
	/* The next want starts a new request. */
	want(&x, "a", &a);
	gw_status_tick(x.s);
	cr_expect_eq(x.nfetch, 2);
	fix_fini(&x);
}

Test(status, start_refused_fails_waiters_unavailable)
{
	struct fix x;
	struct got a;

	fix_init(&x, 50, 0, 1000);
	x.refuse = 1;
	want(&x, "a", &a);
	cr_expect_eq(a.calls, 0, "never inside want");
	gw_status_tick(x.s);
	cr_expect_eq(a.calls, 1);
	cr_expect_eq(a.code, GRPC_STATUS_UNAVAILABLE);
	cr_expect_eq(gw_status_counters(x.s)->start_failed, 1);
	fix_fini(&x);
}

Test(status, unwant_means_no_callback)
{
	struct fix x;
	struct got a, b;
	const char *items[] = { "a:1:1" };

	fix_init(&x, 50, 0, 1000);
	want(&x, "a", &a);
	want(&x, "a", &b);
	gw_status_tick(x.s);
	gw_status_unwant(&a.w);
	gw_status_unwant(&a.w);		/* twice is harmless */
	answer(&x, 0, items, 1);
	cr_expect_eq(a.calls, 0);
	cr_expect_eq(b.calls, 1);
	fix_fini(&x);
}

Test(status, bad_arguments_and_limit)
{
	struct fix x;
	struct got g;
	struct gw_status_opts o = { 0 };

	fix_init(&x, 50, 0, 1000);
	memset(&g, 0, sizeof g);
	g.w.done = got_done;
	cr_expect_eq(gw_status_want(x.s, 0, "", &g.w), -1);
	cr_expect_eq(gw_status_want(x.s, 0, "bad/rid", &g.w), -1);
	cr_expect_eq(gw_status_want(x.s, 2, "a", &g.w), -1, "account out of range");
	cr_expect_eq(gw_status_want(NULL, 0, "a", &g.w), -1);
	fix_fini(&x);

	/* max_rids: the third distinct rid is refused (counted); a known rid is still fine. */
	memset(&x, 0, sizeof x);
	x.cache = gw_cache_new(10, 1000);
	o.naccounts = 1;
	o.max_rids = 2;
	o.now_ms = fake_now;
	o.clock_arg = &x;
	o.start = fake_start;
	o.transport_arg = &x;
	x.s = gw_status_new(&o, x.cache);
	cr_assert(x.s);
	{
		struct got a, b, c, d;

		want(&x, "a", &a);
		want(&x, "b", &b);
		memset(&c, 0, sizeof c);
		c.w.done = got_done;
		cr_expect_eq(gw_status_want(x.s, 0, "c", &c.w), -1);
		cr_expect_eq(gw_status_counters(x.s)->rejected_full, 1);
		want(&x, "a", &d);
		gw_status_free(x.s);	/* waiters dropped without callbacks */
		cr_expect_eq(a.calls + b.calls + d.calls, 0);
	}
	gw_cache_free(x.cache);
}

/* Hot rids ride along: pollers of 10 rids cause one request per TTL, not one per rid. */
Test(status, hot_rids_ride_along)
{
	struct fix x;
	struct got g[10];
	char rid[16];
	const char *items[10];
	char buf[10][32];

	fix_init(&x, 50, 5, 100);
	for (int k = 0; k < 10; k++) {
		snprintf(rid, sizeof rid, "r%d", k);
		want(&x, rid, &g[k]);
		snprintf(buf[k], sizeof buf[k], "r%d:1:%d", k, k);
		items[k] = buf[k];
	}
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	answer(&x, 0, items, 10);
	/* r0 expires first for its poller; the batch carries every other hot rid. */
	x.now += 100;
	cr_expect_eq(gw_cache_get(x.cache, 0, "r0", x.now, NULL), 0);
	want(&x, "r0", &g[0]);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	cr_expect_str_eq(x.fetch[1].rids, "r0,r9,r8,r7,r6,r5,r4,r3,r2,r1");
	cr_expect_eq(gw_status_counters(x.s)->piggybacked, 9);
	answer(&x, 1, items, 10);
	/* Cold rids (no want for 2 TTL) do not ride along. */
	x.now += 300;
	want(&x, "r0", &g[0]);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 3);
	cr_expect_str_eq(x.fetch[2].rids, "r0");
	fix_fini(&x);
}

/* ---- watchers ---- */

#define NWATCH 1000

struct seen {
	struct gw_status_watch w;
	int calls, last_code, end_on_final;
};

static void seen_notify(struct gw_status_watch *w, int code, const Animate3d__V1__JobStatus *st)
{
	struct seen *s = (struct seen *)w;

	s->calls++;
	s->last_code = code;
	if (s->end_on_final && st && gw_cache_state_final((int)st->state))
		gw_status_unwatch(w);	/* what WatchStatus does when a rid is final */
}

Test(status, thousand_watchers_one_poll_per_ttl)
{
	static struct seen w[NWATCH];
	struct fix x;
	const char *p1[] = { "a:1:1" }, *p2[] = { "a:1:2" }, *done[] = { "a:2:5" };
	size_t total = 0;

	fix_init(&x, 50, 5, 100);
	memset(w, 0, sizeof w);
	for (int k = 0; k < NWATCH; k++) {
		w[k].w.notify = seen_notify;
		w[k].end_on_final = 1;
		cr_assert_eq(gw_status_watch(x.s, 0, "a", &w[k].w), 0);
	}
	cr_expect_eq(gw_status_counters(x.s)->watches, NWATCH);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1, "1000 watchers, one request");
	answer(&x, 0, p1, 1);
	for (int k = 0; k < NWATCH; k++)
		total += (size_t)w[k].calls;
	cr_expect_eq(total, NWATCH);
	/* Before the TTL nothing is fetched; at the TTL one refresh for everyone. */
	x.now += 50;
	gw_status_tick(x.s);
	cr_expect_eq(x.nfetch, 1);
	x.now += 50;
	gw_status_tick(x.s);	/* queued */
	x.now += 5;
	gw_status_tick(x.s);	/* window over */
	cr_assert_eq(x.nfetch, 2);
	answer(&x, 1, p1, 1);	/* unchanged: nobody notified */
	total = 0;
	for (int k = 0; k < NWATCH; k++)
		total += (size_t)w[k].calls;
	cr_expect_eq(total, NWATCH);
	x.now += 105;
	gw_status_tick(x.s);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 3);
	answer(&x, 2, p2, 1);
	x.now += 105;
	gw_status_tick(x.s);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 4);
	answer(&x, 3, done, 1);
	for (int k = 0; k < NWATCH; k++)
		cr_expect_eq(w[k].calls, 3, "watcher %d: %d notifications", k, w[k].calls);
	/* Final: every watcher unwatched itself; nothing is polled any more, the rid is forgotten. */
	for (int t = 0; t < 10; t++) {
		x.now += 100;
		gw_status_tick(x.s);
	}
	cr_expect_eq(x.nfetch, 4);
	cr_expect_eq(gw_status_counters(x.s)->tracked, 0);
	fix_fini(&x);
}

Test(status, watcher_not_found_and_unwatch)
{
	struct fix x;
	struct seen a, b;

	fix_init(&x, 50, 0, 100);
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.w.notify = b.w.notify = seen_notify;
	cr_assert_eq(gw_status_watch(x.s, 0, "zz", &a.w), 0);
	cr_assert_eq(gw_status_watch(x.s, 0, "zz", &b.w), 0);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	gw_status_unwatch(&b.w);
	answer(&x, 0, NULL, 0);
	cr_expect_eq(a.calls, 1);
	cr_expect_eq(a.last_code, GRPC_STATUS_NOT_FOUND);
	cr_expect_eq(b.calls, 0);
	gw_status_unwatch(&a.w);
	fix_fini(&x);
}

/* ---- webhook refresh ---- */

Test(status, refresh_invalidates_and_refetches)
{
	struct fix x;
	struct got a;
	struct seen w;
	const char *p[] = { "a:1:1" }, *done[] = { "a:2:7" };

	fix_init(&x, 50, 5, 10000);
	want(&x, "a", &a);
	x.now += 5;
	gw_status_tick(x.s);
	answer(&x, 0, p, 1);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 1);
	memset(&w, 0, sizeof w);
	w.w.notify = seen_notify;
	w.w.last_state = P;
	w.w.last_step = 1;
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w.w), 0);
	/* The webhook: cache dropped, one fetch within the window, watcher told. */
	cr_expect_eq(gw_status_refresh(x.s, 0, "a"), 0);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 0);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	answer(&x, 1, done, 1);
	cr_expect_eq(w.calls, 1);
	cr_expect_eq(gw_status_counters(x.s)->forced, 1);
	gw_status_unwatch(&w.w);
	fix_fini(&x);
}

Test(status, refresh_while_in_flight_fetches_again_after)
{
	struct fix x;
	struct got a;
	const char *p[] = { "a:1:1" }, *done[] = { "a:2:7" };

	fix_init(&x, 50, 0, 10000);
	want(&x, "a", &a);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	gw_status_refresh(x.s, 0, "a");	/* the answer in flight may predate the completion */
	gw_status_tick(x.s);
	cr_expect_eq(x.nfetch, 1, "no second request while one is in flight");
	answer(&x, 0, p, 1);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	answer(&x, 1, done, 1);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 1);
	fix_fini(&x);
}

Test(status, free_cancels_fetches_in_flight)
{
	struct fix x;
	struct got a;

	fix_init(&x, 50, 0, 1000);
	want(&x, "a", &a);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	gw_status_free(x.s);
	cr_expect_eq(x.fetch[0].cancelled, 1);
	cr_expect_eq(a.calls, 0);
	gw_cache_free(x.cache);
}

Test(status, forget_after_restart_drops_final_and_in_flight_answer)
{
	struct fix x;
	struct got a, b;
	const char *done[] = { "a:2:7" }, *again[] = { "a:1:1" };

	fix_init(&x, 50, 0, 10000);
	want(&x, "a", &a);
	gw_status_tick(x.s);
	answer(&x, 0, done, 1);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 1, "final cached");
	/* StartJob(mp_detection_rid=a) restarted it: the final is history. */
	cr_expect_eq(gw_status_forget(x.s, 0, "a"), 0);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 0);
	/* A fetch in flight across a restart is not believed: its waiter gets the next one. */
	want(&x, "a", &b);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	gw_status_forget(x.s, 0, "a");
	answer(&x, 1, done, 1);
	cr_expect_eq(b.calls, 0);
	cr_expect_eq(gw_cache_get(x.cache, 0, "a", x.now, NULL), 0);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 3);
	answer(&x, 2, again, 1);
	cr_expect_eq(b.calls, 1);
	cr_expect_eq(b.state, P);
	fix_fini(&x);
}

/* Rids served from the cache stay hot when touched: they ride along instead of expiring alone. */
Test(status, touched_rids_stay_hot)
{
	struct fix x;
	struct got g[3];
	const char *items[] = { "a:1:1", "b:1:1", "c:1:1" };

	fix_init(&x, 50, 5, 100);
	want(&x, "a", &g[0]);
	want(&x, "b", &g[1]);
	want(&x, "c", &g[2]);
	x.now += 5;
	gw_status_tick(x.s);
	answer(&x, 0, items, 3);
	/* b and c are polled from the cache (touched) for 5 TTLs; a keeps missing and fetching. */
	for (int cycle = 1; cycle <= 5; cycle++) {
		x.now += 100;
		gw_status_touch(x.s, 0, "b");
		gw_status_touch(x.s, 0, "c");
		want(&x, "a", &g[0]);
		x.now += 5;
		gw_status_tick(x.s);
		cr_assert_eq(x.nfetch, (size_t)cycle + 1);
		cr_expect_eq(strlen(x.fetch[cycle].rids), strlen("a,c,b"), "cycle %d: %s", cycle,
			     x.fetch[cycle].rids);
		answer(&x, (size_t)cycle, items, 3);
	}
	fix_fini(&x);
}

/* ---- deadlines (issue 5) ---- */

static void want_by(struct fix *x, const char *rid, struct got *g, int64_t deadline)
{
	memset(g, 0, sizeof *g);
	g->w.done = got_done;
	g->w.deadline_ms = deadline;
	cr_assert_eq(gw_status_want(x->s, 0, rid, &g->w), 0, "want %s", rid);
}

/* Waiters' deadlines (relative to now = 1000; 0 = none) -> the timeout the batch asks for. */
static const struct {
	int64_t d[3];		/* up to 3 waiters on distinct rids; -1 = no such waiter */
	long timeout;
} batch_deadline_cases[] = {
	{ { 500, -1, -1 }, 500 },
	{ { 500, 800, 300 }, 800 },	/* the latest one */
	{ { 500, 0, -1 }, 0 },		/* one without a deadline: the default */
	{ { 0, -1, -1 }, 0 },
	{ { -999, -1, -1 }, 1 },	/* already past: 1 ms, the transport says DEADLINE_EXCEEDED */
};

Test(status, batch_carries_latest_deadline_table)
{
	for (size_t i = 0; i < sizeof batch_deadline_cases / sizeof batch_deadline_cases[0]; i++) {
		struct fix x;
		struct got g[3];
		char rid[8];

		fix_init(&x, 50, 0, 1000);
		for (int k = 0; k < 3; k++) {
			int64_t d = batch_deadline_cases[i].d[k];

			if (d == -1)
				continue;
			snprintf(rid, sizeof rid, "r%d", k);
			want_by(&x, rid, &g[k], d == 0 ? 0 : x.now + d);
		}
		gw_status_tick(x.s);
		cr_assert_eq(x.nfetch, 1, "case %zu", i);
		cr_expect_eq(x.fetch[0].timeout_ms, batch_deadline_cases[i].timeout,
			     "case %zu: timeout %ld, want %ld", i, x.fetch[0].timeout_ms,
			     batch_deadline_cases[i].timeout);
		fix_fini(&x);
	}
}

/* Nobody waits but a watcher (and a ride-along): no caller deadline, the default timeout. */
Test(status, watch_refresh_has_no_deadline)
{
	struct fix x;
	struct seen w;
	struct got a;

	fix_init(&x, 50, 0, 1000);
	memset(&w, 0, sizeof w);
	w.w.notify = seen_notify;
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w.w), 0);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_expect_eq(x.fetch[0].timeout_ms, 0);
	want_by(&x, "b", &a, 1300);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	cr_expect_eq(x.fetch[1].timeout_ms, 300, "the watcher is in flight: b alone sets it");
	gw_status_unwatch(&w.w);
	fix_fini(&x);
}

/* A fetch that times out fails the waiters whose deadline it covered; a later deadline, or none
 * (joined in flight), goes out again with the next batch and gets the answer. */
Test(status, timeout_fails_only_covered_waiters)
{
	struct fix x;
	struct got a, b, c, d;

	fix_init(&x, 50, 0, 1000);
	want_by(&x, "a", &a, 1100);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_expect_eq(x.fetch[0].timeout_ms, 100);
	want_by(&x, "a", &b, 3000);		/* joins in flight, later deadline */
	want_by(&x, "a", &c, 0);		/* joins in flight, no deadline */
	want_by(&x, "a", &d, 1050);		/* joins in flight, earlier deadline */
	x.now = 1100;
	answer_error(&x, 0, GRPC_STATUS_DEADLINE_EXCEEDED);
	cr_expect_eq(a.calls, 1);
	cr_expect_eq(a.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	cr_expect_eq(d.calls, 1);
	cr_expect_eq(d.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	cr_expect_eq(b.calls, 0, "a later deadline waits for the next batch");
	cr_expect_eq(c.calls, 0, "no deadline waits for the next batch");
	cr_expect_eq(gw_status_counters(x.s)->requeued, 2);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2, "requeued: one more fetch");
	cr_expect_str_eq(x.fetch[1].rids, "a");
	cr_expect_eq(x.fetch[1].timeout_ms, 0, "c has no deadline: the default");
	/* Without a deadline the fetch covers everybody: a second timeout ends it. */
	answer_error(&x, 1, GRPC_STATUS_DEADLINE_EXCEEDED);
	cr_expect_eq(b.calls, 1);
	cr_expect_eq(b.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	cr_expect_eq(c.calls, 1);
	gw_status_tick(x.s);
	cr_expect_eq(x.nfetch, 2, "nobody left: no third fetch");
	fix_fini(&x);
}

Test(status, requeued_waiter_gets_the_answer)
{
	struct fix x;
	struct got a, b;
	const char *items[] = { "a:1:4" };

	fix_init(&x, 50, 0, 1000);
	want_by(&x, "a", &a, 1100);
	gw_status_tick(x.s);
	want_by(&x, "a", &b, 3000);
	x.now = 1100;
	answer_error(&x, 0, GRPC_STATUS_DEADLINE_EXCEEDED);
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	cr_expect_eq(x.fetch[1].timeout_ms, 1900, "b's deadline now");
	answer(&x, 1, items, 1);
	cr_expect_eq(b.calls, 1);
	cr_expect_eq(b.code, 0);
	cr_expect_eq(b.state, P);
	cr_expect_eq(b.step, 4);
	fix_fini(&x);
}

/* gw_status_check: the account's hold (fake) against the caller's deadline, window 5 ms, now 1000. */
static const struct {
	int hold_code;
	int64_t hold_wait;
	int64_t deadline;	/* relative to now; 0 = none */
	int refused, code;
	long retry;
} check_cases[] = {
	{ 0, 0, 500, 0, 0, -1 },				/* not held */
	{ 0, 0, 0, 0, 0, -1 },
	{ 0, 2000, 500, 1, GRPC_STATUS_UNAVAILABLE, 2000 },	/* paused past the deadline */
	{ 0, 2000, 0, 0, 0, -1 },				/* no deadline: waits */
	{ 0, 2000, 3000, 0, 0, -1 },				/* outlasts the pause */
	{ 0, 2000, 2019, 1, GRPC_STATUS_UNAVAILABLE, 2000 },	/* inside the margin */
	{ 0, 2000, 2020, 0, 0, -1 },
	{ 0, 1, 24, 1, GRPC_STATUS_UNAVAILABLE, 1 },		/* the window (5) + margin (20) */
	{ 0, 1, 25, 0, 0, -1 },
	{ GRPC_STATUS_UNAVAILABLE, 3000, 0, 1, GRPC_STATUS_UNAVAILABLE, 3000 },	/* circuit open */
	{ GRPC_STATUS_RESOURCE_EXHAUSTED, 0, 9000, 1, GRPC_STATUS_RESOURCE_EXHAUSTED, 1 },
};

Test(status, check_table)
{
	for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
		struct fix x;
		char msg[GW_STATUS_MSG_MAX];
		long retry;
		int code, r;

		fix_init(&x, 50, 5, 1000);
		x.hold_code = check_cases[i].hold_code;
		x.hold_wait = check_cases[i].hold_wait;
		r = gw_status_check(x.s, 0, check_cases[i].deadline ? x.now + check_cases[i].deadline : 0,
				    &code, &retry, msg, sizeof msg);
		cr_expect_eq(r, check_cases[i].refused, "case %zu", i);
		cr_expect_eq(code, check_cases[i].code, "case %zu: code %d", i, code);
		cr_expect_eq(retry, check_cases[i].retry, "case %zu: retry %ld", i, retry);
		if (r) {
			cr_expect(strncmp(msg, "GetStatus: held ", 16) == 0, "case %zu: %s", i, msg);
			cr_expect_eq(gw_status_counters(x.s)->refused, 1, "case %zu", i);
		}
		cr_expect_eq(x.nfetch, 0, "case %zu: a check sends nothing", i);
		fix_fini(&x);
	}
}

/* A pending batch leaves at its due time, not a new window from now. */
Test(status, check_counts_the_pending_window)
{
	struct fix x;
	struct got a;
	char msg[GW_STATUS_MSG_MAX];
	long retry;
	int code;

	fix_init(&x, 50, 100, 1000);
	want_by(&x, "a", &a, 0);	/* batch due at 1100 */
	x.now = 1090;
	x.hold_wait = 1;
	cr_expect_eq(gw_status_check(x.s, 0, 1125, &code, &retry, msg, sizeof msg), 0);
	cr_expect_eq(gw_status_check(x.s, 0, 1115, &code, &retry, msg, sizeof msg), 1);
	fix_fini(&x);
}

/* ---- statuses from elsewhere (gw_status_apply) and the on_final hook ---- */

static int g_finals;

static void count_final(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	(void)arg;
	(void)acct;
	cr_assert(gw_cache_state_final((int)st->state));
	g_finals++;
}

Test(status, apply_delivers_at_once_and_beats_older_fetches)
{
	struct gw_status_opts o = { 0 };
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT;
	Animate3d__V1__JobStatus *cur = NULL;
	struct seen w = { 0 };
	struct got g;
	struct fix x;
	char p1[32], sb[32];
	const char *prog[] = { p1 }, *finb[] = { sb };

	snprintf(p1, sizeof p1, "a:%d:1", P);
	snprintf(sb, sizeof sb, "b:%d:5", S);
	fix_init(&x, 50, 5, 100);
	gw_status_free(x.s);
	o.naccounts = 2;
	o.batch_max = 50;
	o.window_ms = 5;
	o.ttl_ms = 100;
	o.now_ms = fake_now;
	o.clock_arg = &x;
	o.start = fake_start;
	o.cancel = fake_cancel;
	o.transport_arg = &x;
	o.on_final = count_final;
	x.s = gw_status_new(&o, x.cache);
	cr_assert(x.s);
	g_finals = 0;

	/* A watcher sees PROGRESS, then a fetch is in flight when a final arrives from elsewhere. */
	w.w.notify = seen_notify;
	cr_assert_eq(gw_status_watch(x.s, 0, "a", &w.w), 0);
	x.now += 5;
	gw_status_tick(x.s);
	answer(&x, 0, prog, 1);
	cr_assert_eq(w.calls, 1);
	cr_assert_eq(gw_status_refresh(x.s, 0, "a"), 0);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	st.rid = "a";
	st.state = S;
	st.step = 5;
	cr_assert_eq(gw_status_apply(x.s, 0, &st), 1);
	cr_assert_eq(w.calls, 2, "delivered at once");
	cr_assert_eq(g_finals, 0, "an applied status is not shared again");
	/* The older fetch answers PROGRESS: the cache keeps the final, nobody is told twice. */
	answer(&x, 1, prog, 1);
	cr_assert_eq(gw_cache_peek(x.cache, 0, "a", x.now, &cur, NULL), 1);
	cr_assert_eq(cur->state, S);
	protobuf_c_message_free_unpacked(&cur->base, NULL);
	cr_assert_eq(w.calls, 2);

	/* Untracked: cached only. A final read upstream fires on_final once. */
	st.rid = "c";
	cr_assert_eq(gw_status_apply(x.s, 0, &st), 0);
	cr_assert_eq(gw_cache_get(x.cache, 0, "c", x.now, NULL), 1);
	want(&x, "b", &g);
	x.now += 5;
	gw_status_tick(x.s);
	answer(&x, 2, finb, 1);
	cr_assert_eq(g.state, S);
	cr_assert_eq(g_finals, 1);
	gw_status_unwatch(&w.w);
	fix_fini(&x);
}

/* ---- cluster coordination: claims (fake claim hook) ---- */

struct fake_claim {
	struct gw_status_claim *c;
	char rids[512];
	int cancelled;
};

static struct fake_claim g_claims[16];
static size_t g_nclaims;
static int g_claim_refuse;

static void *fake_claim(void *arg, size_t acct, const char *const *rids, size_t n,
			struct gw_status_claim *c)
{
	struct fake_claim *fc;

	(void)arg;
	(void)acct;
	if (g_claim_refuse || g_nclaims >= 16)
		return NULL;
	fc = &g_claims[g_nclaims++];
	memset(fc, 0, sizeof *fc);
	fc->c = c;
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(fc->rids, ",");
		strcat(fc->rids, rids[i]);
	}
	return fc;
}

static void fake_claim_cancel(void *arg, void *handle)
{
	(void)arg;
	((struct fake_claim *)handle)->cancelled = 1;
}

static void fix_init_claim(struct fix *x, size_t claim_max)
{
	struct gw_status_opts o = { 0 };

	memset(x, 0, sizeof *x);
	g_nclaims = 0;
	g_claim_refuse = 0;
	x->now = 1000;
	x->cache = gw_cache_new(1000, 1000);
	o.naccounts = 1;
	o.batch_max = 10;
	o.window_ms = 5;
	o.ttl_ms = 1000;
	o.now_ms = fake_now;
	o.clock_arg = x;
	o.start = fake_start;
	o.cancel = fake_cancel;
	o.transport_arg = x;
	o.claim = fake_claim;
	o.claim_cancel = fake_claim_cancel;
	o.claim_max = claim_max;
	x->s = gw_status_new(&o, x->cache);
	cr_assert(x->cache && x->s);
}

static void apply_progress(struct fix *x, const char *rid, int64_t step)
{
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT;

	st.rid = (char *)rid;
	st.state = P;
	st.step = step;
	cr_assert_geq(gw_status_apply_aged(x->s, 0, &st, 0, 1), 0);
}

Test(status, claims_poll_wait_extra_and_fallback)
{
	struct fix x;
	struct got g[4];
	const struct gw_status_counters *c;
	const unsigned char v0[] = { GW_STATUS_CLAIM_POLL, GW_STATUS_CLAIM_WAIT };
	const unsigned char v2[] = { GW_STATUS_CLAIM_WAIT };
	const char *extra[] = { "x1", "r2", "r0" };
	struct gw_status_claim_result res = { .ok = 1, .wait_ms = 100 };

	fix_init_claim(&x, 2);
	c = gw_status_counters(x.s);
	want(&x, "r0", &g[0]);
	want(&x, "r1", &g[1]);
	want(&x, "r2", &g[2]);
	x.now += 5;
	gw_status_tick(x.s);
	/* Claimed in claim_max chunks; nothing goes upstream before the answers. */
	cr_assert_eq(g_nclaims, 2);
	cr_assert_str_eq(g_claims[0].rids, "r0,r1");
	cr_assert_str_eq(g_claims[1].rids, "r2");
	cr_assert_eq(x.nfetch, 0);
	/* A second want joins the claim. */
	want(&x, "r0", &g[3]);
	cr_assert_eq(g_nclaims, 2);

	/* Lease taken: r0 to poll here with the cluster's x1 (r2 is being claimed, r0 listed
	 * once), once the flush's other claim is answered too. */
	res.verdict = v0;
	res.extra = extra;
	res.nextra = 3;
	gw_status_claim_done(g_claims[0].c, &res);
	cr_assert_eq(x.nfetch, 0);
	cr_assert_eq(c->cluster_polled, 1);
	cr_assert_eq(c->cluster_waited, 1);

	/* r1 waits; another replica's answer serves it. */
	apply_progress(&x, "r1", 4);
	cr_assert_eq(g[1].calls, 1);
	cr_assert_eq(g[1].step, 4);
	cr_assert_eq(c->cluster_served, 1);

	/* r2 waits too: the flush's last claim is answered, r0 and x1 go upstream. */
	res.verdict = v2;
	res.extra = NULL;
	res.nextra = 0;
	gw_status_claim_done(g_claims[1].c, &res);
	cr_assert_eq(x.nfetch, 1);
	cr_assert_str_eq(x.fetch[0].rids, "r0,x1");
	/* Nobody answers r2: polled here once the wait is over. */
	x.now += 99;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	x.now += 1;
	gw_status_tick(x.s);		/* queued for the next batch, without a claim */
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 2);
	cr_assert_str_eq(x.fetch[1].rids, "r2");
	cr_assert_eq(c->cluster_fallback, 1);
	cr_assert_eq(g_nclaims, 2);

	{
		const char *a0[] = { "r0:1:2", "x1:1:3" }, *a1[] = { "r2:1:5" };

		answer(&x, 0, a0, 2);
		answer(&x, 1, a1, 1);
	}
	cr_assert(g[0].calls == 1 && g[3].calls == 1 && g[2].calls == 1);
	cr_assert_eq(g[2].step, 5);
	fix_fini(&x);
}

Test(status, claims_refused_failed_or_forced_poll_here)
{
	struct fix x;
	struct got g[3];
	const struct gw_status_counters *c;

	fix_init_claim(&x, 8);
	c = gw_status_counters(x.s);
	/* No claim can be sent (Redis down): polled at once, as one replica. */
	g_claim_refuse = 1;
	want(&x, "r0", &g[0]);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(x.nfetch, 1);
	cr_assert_eq(c->claim_local, 1);
	g_claim_refuse = 0;

	/* A claim that fails: polled. */
	want(&x, "r1", &g[1]);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(g_nclaims, 1);
	gw_status_claim_done(g_claims[0].c, NULL);
	cr_assert_eq(x.nfetch, 2);
	cr_assert_str_eq(x.fetch[1].rids, "r1");
	cr_assert_eq(c->claim_local, 2);

	/* A webhook refresh is polled here without a claim. */
	cr_assert_eq(gw_status_refresh(x.s, 0, "r2"), 0);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(g_nclaims, 1);
	cr_assert_eq(x.nfetch, 3);
	cr_assert_str_eq(x.fetch[2].rids, "r2");

	/* A claim in flight at free is cancelled. */
	want(&x, "r3", &g[2]);
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(g_nclaims, 2);
	gw_status_unwant(&g[2].w);
	fix_fini(&x);
	cr_assert_eq(g_claims[1].cancelled, 1);
}

/*
 * The claims of one flush (claim_max 4, batch_max 10): what they leave to this replica goes
 * upstream once the last of them is answered, in batch_max-sized requests, not claim by claim.
 * Per claim (in order): 'p' all POLL, 'w' all WAIT, 'f' failed (no answer), 'r' refused (not
 * sent, Redis down). -> the requests' sizes, in order.
 */
static const struct {
	size_t nrids;
	const char *claims;	/* one letter per claim */
	size_t sizes[4];	/* rids per request, 0-terminated */
} claim_group_cases[] = {
	{ 12, "ppp", { 10, 2 } },	/* per claim: 4 + 4 + 4 */
	{ 8, "pp", { 8 } },
	{ 8, "wp", { 4 } },
	{ 12, "pfp", { 10, 2 } },
	{ 12, "rrr", { 10, 2 } },	/* Redis down: polled at once, as one replica */
	{ 12, "wwp", { 4 } },
	{ 3, "p", { 3 } },
};

static size_t count_rids(const char *list)
{
	size_t n = *list ? 1 : 0;

	for (; *list; list++)
		n += *list == ',';
	return n;
}

Test(status, claims_of_one_flush_are_polled_together)
{
	for (size_t k = 0; k < sizeof claim_group_cases / sizeof claim_group_cases[0]; k++) {
		struct fix x;
		struct got g[16];
		unsigned char verdict[4];
		struct gw_status_claim_result res = { .ok = 1, .wait_ms = 100, .verdict = verdict };
		const char *plan = claim_group_cases[k].claims;
		size_t nclaims = strlen(plan), sent = 0, j;
		char rid[24];

		fix_init_claim(&x, 4);
		for (size_t i = 0; i < claim_group_cases[k].nrids; i++) {
			snprintf(rid, sizeof rid, "q%zu", i);
			want(&x, rid, &g[i]);
		}
		g_claim_refuse = plan[0] == 'r';
		x.now += 5;
		gw_status_tick(x.s);
		g_claim_refuse = 0;
		for (size_t c = 0; c < nclaims; c++) {
			if (plan[c] == 'r')
				continue;
			cr_assert_eq(x.nfetch, 0, "case %zu: a request before the last claim's answer", k);
			memset(verdict, plan[c] == 'w' ? GW_STATUS_CLAIM_WAIT : GW_STATUS_CLAIM_POLL,
			       sizeof verdict);
			gw_status_claim_done(g_claims[sent++].c, plan[c] == 'f' ? NULL : &res);
		}
		cr_assert_eq(g_nclaims, sent, "case %zu", k);
		for (j = 0; claim_group_cases[k].sizes[j]; j++) {
			cr_assert_lt(j, x.nfetch, "case %zu: %zu requests", k, x.nfetch);
			cr_assert_eq(count_rids(x.fetch[j].rids), claim_group_cases[k].sizes[j],
				     "case %zu: request %zu is %s", k, j, x.fetch[j].rids);
		}
		cr_assert_eq(x.nfetch, j, "case %zu: %zu requests", k, x.nfetch);
		fix_fini(&x);
	}
}

Test(status, a_claim_group_in_flight_at_free_polls_nothing)
{
	struct fix x;
	struct got g[8];
	const unsigned char v[] = { GW_STATUS_CLAIM_POLL, GW_STATUS_CLAIM_POLL, GW_STATUS_CLAIM_POLL,
				    GW_STATUS_CLAIM_POLL };
	struct gw_status_claim_result res = { .ok = 1, .verdict = v };
	char rid[24];

	fix_init_claim(&x, 4);
	for (size_t i = 0; i < 8; i++) {
		snprintf(rid, sizeof rid, "q%zu", i);
		want(&x, rid, &g[i]);
	}
	x.now += 5;
	gw_status_tick(x.s);
	cr_assert_eq(g_nclaims, 2);
	gw_status_claim_done(g_claims[0].c, &res);	/* its rids wait for the second claim */
	cr_assert_eq(x.nfetch, 0);
	for (size_t i = 0; i < 8; i++)
		gw_status_unwant(&g[i].w);
	fix_fini(&x);					/* the second claim is cancelled */
	cr_assert_eq(g_claims[1].cancelled, 1);
	cr_assert_eq(x.nfetch, 0);
}

/* The lease holder's extras (TTL 1000): a hot rid read age ms before the claim's answer (here,
 * from another replica) -> polled with the lease, unless read within the last tenth of a TTL (it
 * outlives the lease). */
static const struct {
	int64_t age;		/* >= 5: the flush runs 5 ms after it was applied */
	int polled;
} lease_extra_cases[] = {
	{ 5, 0 }, { 99, 0 }, { 100, 1 }, { 300, 1 }, { 600, 1 }, { 999, 1 },
};

Test(status, the_lease_holder_polls_hot_rids_that_would_expire_during_its_lease)
{
	for (size_t k = 0; k < sizeof lease_extra_cases / sizeof lease_extra_cases[0]; k++) {
		struct fix x;
		struct got g;
		Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT;
		const unsigned char v[] = { GW_STATUS_CLAIM_POLL };
		const char *extra[] = { "h1" };
		struct gw_status_claim_result res = { .ok = 1, .verdict = v, .extra = extra,
						      .nextra = 1 };

		fix_init_claim(&x, 4);
		st.rid = "h1";
		st.state = P;
		cr_assert_geq(gw_status_apply_aged(x.s, 0, &st, lease_extra_cases[k].age - 5, 0), 0);
		want(&x, "q0", &g);
		x.now += 5;
		gw_status_tick(x.s);
		cr_assert_eq(g_nclaims, 1);
		gw_status_claim_done(g_claims[0].c, &res);
		cr_assert_eq(x.nfetch, 1);
		cr_assert_str_eq(x.fetch[0].rids, lease_extra_cases[k].polled ? "q0,h1" : "q0",
				 "age %lld: %s", (long long)lease_extra_cases[k].age, x.fetch[0].rids);
		fix_fini(&x);
	}
}

Test(status, an_older_shared_status_does_not_replace_a_fresher_one)
{
	struct fix x;
	struct got g;
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT, *out = NULL;
	const char *a0[] = { "r0:1:7" };

	fix_init(&x, 10, 0, 1000);
	want(&x, "r0", &g);
	gw_status_tick(x.s);
	answer(&x, 0, a0, 1);		/* read here at t=1000: step 7 */
	x.now += 100;
	st.rid = "r0";
	st.state = P;
	st.step = 5;
	cr_assert_eq(gw_status_apply_aged(x.s, 0, &st, 300, 0), 1);	/* read 300 ms ago */
	cr_assert_eq(gw_cache_get(x.cache, 0, "r0", x.now, &out), 1);
	cr_assert_eq(out->step, 7);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	st.step = 8;
	cr_assert_eq(gw_status_apply_aged(x.s, 0, &st, 50, 0), 1);	/* fresher: replaces */
	cr_assert_eq(gw_cache_get(x.cache, 0, "r0", x.now, &out), 1);
	cr_assert_eq(out->step, 8);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	fix_fini(&x);
}
