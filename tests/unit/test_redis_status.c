/*
 * Unit tests for gateway/svc/status_share.c against a real redis-server (tests/lib/with-redis):
 * "replicas" made of a Redis client, a status cache, a status module on a fake transport and the
 * share module, on one event loop. A final read by one replica reaches another's watcher through
 * pub/sub (own messages ignored), a replica that missed the message finds it in Redis (lookup),
 * and with Redis killed everything stays local (counted) until it is back.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/api/cache.h"
#include "gateway/base/clock.h"
#include "gateway/cluster/redis.h"
#include "gateway/svc/status.h"
#include "gateway/svc/status_share.h"

#define T_WAIT_MS 10000
#define P ANIMATE3D__V1__JOB_STATE__PROGRESS
#define S ANIMATE3D__V1__JOB_STATE__SUCCESS
#define RID1 "AAAAAAAAAAAAAAAAAAAAA1"
#define RID2 "AAAAAAAAAAAAAAAAAAAAA2"
#define RID3 "AAAAAAAAAAAAAAAAAAAAA3"

static const char *const g_accounts[] = { "main" };

struct rep {
	struct gw_redis *redis;
	struct gw_cache *cache;
	struct gw_status *status;
	struct gw_status_share *share;
	struct gw_status_fetch *fetch[8];	/* fake transport: started fetches */
	size_t nfetch;
};

static void *fake_start(void *arg, size_t acct, const char *const *rids, size_t n, long timeout_ms,
			struct gw_status_fetch *f)
{
	struct rep *x = arg;

	(void)acct;
	(void)rids;
	(void)n;
	(void)timeout_ms;
	if (x->nfetch >= 8)
		return NULL;
	x->fetch[x->nfetch++] = f;
	return f;
}

static void fake_cancel(void *arg, void *handle)
{
	(void)arg;
	(void)handle;
}

static int apply(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	return gw_status_apply(arg, acct, st);
}

static int forget(void *arg, size_t acct, const char *rid)
{
	return gw_status_forget(arg, acct, rid);
}

static void on_final(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	struct rep *x = arg;

	gw_status_share_final(x->share, acct, st);
}

static struct gw_redis *redis_client(struct event_base *base, const char *prefix)
{
	static char pw[128];
	const char *pwf = getenv("A3D_REDIS_PASSWORD_FILE");
	struct gw_redis_opts o = { 0 };
	char err[256];
	struct gw_redis *r;
	FILE *f;

	cr_assert_not_null(getenv("A3D_REDIS_PORT"), "run under tests/lib/with-redis");
	pw[0] = '\0';
	if (pwf && (f = fopen(pwf, "r")) != NULL) {
		if (!fgets(pw, sizeof pw, f))
			pw[0] = '\0';
		fclose(f);
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	o.ip = getenv("A3D_REDIS_HOST");
	o.port = (unsigned)strtoul(getenv("A3D_REDIS_PORT"), NULL, 10);
	o.password = pw;
	o.key_prefix = prefix;
	o.connect_timeout_ms = 3000;
	o.command_timeout_ms = 3000;
	o.max_pending = 64;
	o.backoff_max_ms = 300;
	r = gw_redis_new(base, &o, err, sizeof err);
	cr_assert_not_null(r, "%s", err);
	return r;
}

static void *claim(void *arg, size_t acct, const char *const *rids, size_t n, struct gw_status_claim *c)
{
	struct rep *x = arg;

	return gw_status_share_claim(x->share, acct, rids, n, c);
}

static void claim_cancel(void *arg, void *handle)
{
	(void)arg;
	gw_status_share_claim_cancel(NULL, handle);
}

static void polled(void *arg, size_t acct, const Animate3d__V1__JobStatus *const *st, size_t n)
{
	struct rep *x = arg;

	gw_status_share_polled(x->share, acct, st, n);
}

static int apply_aged(void *arg, size_t acct, const Animate3d__V1__JobStatus *st, int64_t age_ms,
		      int only_tracked)
{
	return gw_status_apply_aged(arg, acct, st, age_ms, only_tracked);
}

static void claim_done(struct gw_status_claim *c, int ok, int64_t wait_ms,
		       const unsigned char *verdict, const char *const *extra, size_t nextra)
{
	struct gw_status_claim_result res = { .ok = ok, .wait_ms = wait_ms, .verdict = verdict,
					      .extra = extra, .nextra = nextra };

	gw_status_claim_done(c, &res);
}

static int g_coord;	/* rep_init: with coordinated in-progress polling */

static void rep_init(struct rep *x, struct event_base *base, const char *prefix, const char *instance)
{
	struct gw_status_opts o = { 0 };
	struct gw_status_share_opts so = { 0 };
	char err[256];

	memset(x, 0, sizeof *x);
	x->redis = redis_client(base, prefix);
	x->cache = gw_cache_new(100, 1000);
	o.naccounts = 1;
	o.batch_max = 10;
	o.ttl_ms = 1000;
	o.start = fake_start;
	o.cancel = fake_cancel;
	o.transport_arg = x;
	o.on_final = on_final;
	o.final_arg = x;
	if (g_coord) {
		o.claim = claim;
		o.claim_cancel = claim_cancel;
		o.claim_max = GW_STATUS_SHARE_CLAIM_MAX;
		o.on_polled = polled;
		o.cluster_arg = x;
	}
	x->status = gw_status_new(&o, x->cache);
	cr_assert(x->cache && x->status);
	so.redis = x->redis;
	so.apply = apply;
	so.forget = forget;
	so.apply_arg = x->status;
	so.instance = instance;
	so.accounts = g_accounts;
	so.naccounts = 1;
	so.final_ttl_ms = 60000;
	if (g_coord) {
		so.apply_aged = apply_aged;
		so.claim_done = claim_done;
		so.ttl_ms = 1000;
	}
	x->share = gw_status_share_new(&so, err, sizeof err);
	cr_assert_not_null(x->share, "%s", err);
}

static void rep_fini(struct rep *x)
{
	gw_status_share_free(x->share);
	gw_status_free(x->status);
	gw_cache_free(x->cache);
	gw_redis_free(x->redis);
}

static const struct gw_status_share_counters *cnt(const struct rep *x)
{
	return gw_status_share_counters(x->share);
}

typedef int (*cond_fn)(const void *arg);

static int run_until(struct event_base *base, cond_fn cond, const void *arg, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;
	struct timeval tv = { 0, 5000 };

	while (!cond(arg) && gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	return cond(arg);
}

static int is_connected(const void *arg)
{
	return gw_redis_connected(arg);
}

static int is_down(const void *arg)
{
	return !gw_redis_connected(arg);
}

static void ctl(const char *what)
{
	char cmd[1024];

	cr_assert_not_null(getenv("A3D_REDIS_CTL"));
	snprintf(cmd, sizeof cmd, "%s %s >/dev/null", getenv("A3D_REDIS_CTL"), what);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static int subscribed(const void *arg)
{
	return cnt(arg)->resubscribed >= 1;
}

/* Answers the replica's last fetch with one status of rid. */
static void answer(struct rep *x, const char *rid, int state)
{
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT, *stp = &st;
	struct gw_status_result res = { .code = 0, .retry_after_ms = -1, .resp = &resp };

	cr_assert(x->nfetch > 0);
	st.rid = (char *)rid;
	st.state = (Animate3d__V1__JobState)state;
	st.step = 3;
	resp.statuses = &stp;
	resp.n_statuses = 1;
	gw_status_fetch_done(x->fetch[--x->nfetch], &res);
}

struct seen {
	struct gw_status_watch w;
	int calls, state;
};

static void seen_notify(struct gw_status_watch *w, int code, const Animate3d__V1__JobStatus *st)
{
	struct seen *s = (struct seen *)w;

	s->calls++;
	s->state = code == 0 && st ? (int)st->state : -1;
}

static int seen_final(const void *arg)
{
	return ((const struct seen *)arg)->state == S;
}

struct got {
	struct gw_status_waiter w;
	int calls, state;
};

static void got_done(struct gw_status_waiter *w, int code, const Animate3d__V1__JobStatus *st,
		     const char *msg, long retry)
{
	struct got *g = (struct got *)w;

	(void)msg;
	(void)retry;
	g->calls++;
	g->state = code == 0 && st ? (int)st->state : -1;
}

/* Replica x reads rid final from (fake) upstream: want, tick, answer SUCCESS. */
static void read_final(struct rep *x, const char *rid)
{
	struct got g = { 0 };

	g.w.done = got_done;
	cr_assert_eq(gw_status_want(x->status, 0, rid, &g.w), 0);
	gw_status_tick(x->status);
	answer(x, rid, S);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.state, S);
}

struct stored {
	const struct rep *x;
	uint64_t n;
};

static int stored_and_published(const void *arg)
{
	const struct stored *s = arg;

	return cnt(s->x)->stored >= s->n && cnt(s->x)->own >= s->n;
}

struct lk {
	int calls;
	size_t hits;
};

static void lk_done(void *arg, size_t hits)
{
	struct lk *l = arg;

	l->calls++;
	l->hits = hits;
}

static int lk_called(const void *arg)
{
	return ((const struct lk *)arg)->calls > 0;
}

static int b_forgot(const void *arg)
{
	return cnt(arg)->forgotten >= 1;
}

Test(redis_status, final_reaches_the_other_replicas_watcher)
{
	struct event_base *base = event_base_new();
	struct rep a, b;
	struct seen w = { 0 };
	struct stored st;

	rep_init(&a, base, "t16a:", "replica-a");
	rep_init(&b, base, "t16a:", "replica-b");
	cr_assert(run_until(base, subscribed, &a, T_WAIT_MS) && run_until(base, subscribed, &b, T_WAIT_MS));

	/* B watches rid; its first fetch says PROGRESS. */
	w.w.notify = seen_notify;
	cr_assert_eq(gw_status_watch(b.status, 0, RID1, &w.w), 0);
	gw_status_tick(b.status);
	answer(&b, RID1, P);
	cr_assert_eq(w.state, P);

	/* A reads the final status: B's watcher gets it through Redis, without a fetch of B. */
	read_final(&a, RID1);
	cr_assert(run_until(base, seen_final, &w, T_WAIT_MS), "B's watcher never saw SUCCESS");
	cr_assert_eq(b.nfetch, 0);
	cr_assert_eq(cnt(&b)->applied, 1);
	cr_assert_eq(cnt(&a)->published, 1);
	st.x = &a;
	st.n = 1;
	cr_assert(run_until(base, stored_and_published, &st, T_WAIT_MS), "A's own message not seen");
	cr_assert_eq(cnt(&a)->applied, 0);	/* its own message is ignored */
	cr_assert_eq(cnt(&b)->own, 0);
	cr_assert_eq(cnt(&b)->bad, 0);
	/* B's cache has it: a later GetStatus there is a hit. */
	cr_assert_eq(gw_cache_get(b.cache, 0, RID1, 0, NULL), 1);

	/* A restarts the rid (multi-person reprocessing): B forgets it, Redis too. */
	gw_status_share_forget(a.share, 0, RID1);
	cr_assert(run_until(base, b_forgot, &b, T_WAIT_MS), "B did not forget the restarted rid");
	cr_assert_eq(gw_cache_get(b.cache, 0, RID1, 0, NULL), 0);
	{
		struct lk l = { 0 };
		const char *rids[] = { RID1 };

		cr_assert_not_null(gw_status_share_lookup(b.share, 0, rids, 1, lk_done, &l));
		cr_assert(run_until(base, lk_called, &l, T_WAIT_MS));
		cr_assert_eq(l.hits, 0);
	}

	gw_status_unwatch(&w.w);
	rep_fini(&a);
	rep_fini(&b);
	event_base_free(base);
}

Test(redis_status, a_replica_that_missed_the_message_finds_the_final_in_redis)
{
	struct event_base *base = event_base_new();
	struct rep a, c;
	struct stored st = { &a, 1 };
	struct lk l = { 0 };
	const char *rids[] = { RID2, RID3 };
	Animate3d__V1__JobStatus *got = NULL;

	rep_init(&a, base, "t16b:", "replica-a");
	cr_assert(run_until(base, subscribed, &a, T_WAIT_MS));
	read_final(&a, RID2);
	cr_assert(run_until(base, stored_and_published, &st, T_WAIT_MS));

	/* C starts after: RID2 is in Redis, RID3 nowhere. */
	rep_init(&c, base, "t16b:", "replica-c");
	cr_assert(run_until(base, is_connected, c.redis, T_WAIT_MS));
	cr_assert_not_null(gw_status_share_lookup(c.share, 0, rids, 2, lk_done, &l));
	cr_assert_eq(l.calls, 0);	/* never inside the call */
	cr_assert(run_until(base, lk_called, &l, T_WAIT_MS));
	cr_assert_eq(l.hits, 1);
	cr_assert_eq(cnt(&c)->lookup_hits, 1);
	cr_assert_eq(cnt(&c)->lookup_misses, 1);
	cr_assert_eq(gw_cache_get(c.cache, 0, RID2, 0, &got), 1);
	cr_assert_eq(got->state, S);
	cr_assert_str_eq(got->rid, RID2);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	cr_assert_eq(gw_cache_get(c.cache, 0, RID3, 0, NULL), 0);

	/* A cancelled lookup never calls back; freeing with one in flight is safe. */
	l.calls = 0;
	gw_status_share_lookup_cancel(gw_status_share_lookup(c.share, 0, rids, 2, lk_done, &l));
	cr_assert_not_null(gw_status_share_lookup(c.share, 0, rids, 1, lk_done, &l));
	gw_status_share_free(c.share);
	c.share = NULL;
	run_until(base, lk_called, &l, 300);
	cr_assert_eq(l.calls, 0);

	rep_fini(&a);
	rep_fini(&c);
	event_base_free(base);
}

static int resubscribed_twice(const void *arg)
{
	return cnt(arg)->resubscribed >= 2;
}

Test(redis_status, redis_down_stays_local_then_shares_again)
{
	struct event_base *base = event_base_new();
	struct rep a, b;
	struct seen w = { 0 };
	struct lk l = { 0 };
	const char *rids[] = { RID3 };

	rep_init(&a, base, "t16c:", "replica-a");
	rep_init(&b, base, "t16c:", "replica-b");
	cr_assert(run_until(base, subscribed, &a, T_WAIT_MS) && run_until(base, subscribed, &b, T_WAIT_MS));

	ctl("kill");
	cr_assert(run_until(base, is_down, a.redis, T_WAIT_MS));
	cr_assert(run_until(base, is_down, b.redis, T_WAIT_MS));
	/* Down: a lookup is not sent (the caller polls upstream), a final is not shared. */
	cr_assert_null(gw_status_share_lookup(b.share, 0, rids, 1, lk_done, &l));
	cr_assert_eq(cnt(&b)->lookup_refused, 1);
	read_final(&a, RID1);
	cr_assert_eq(cnt(&a)->publish_failed, 1);
	cr_assert_eq(cnt(&a)->store_failed, 1);

	/* Back: both subscribe again and share again. */
	ctl("start");
	cr_assert(run_until(base, resubscribed_twice, &a, T_WAIT_MS));
	cr_assert(run_until(base, resubscribed_twice, &b, T_WAIT_MS));
	cr_assert(run_until(base, is_connected, a.redis, T_WAIT_MS));
	w.w.notify = seen_notify;
	cr_assert_eq(gw_status_watch(b.status, 0, RID2, &w.w), 0);
	gw_status_tick(b.status);
	answer(&b, RID2, P);
	read_final(&a, RID2);
	cr_assert(run_until(base, seen_final, &w, T_WAIT_MS), "no fan-out after Redis came back");
	cr_assert_eq(cnt(&b)->applied, 1);

	gw_status_unwatch(&w.w);
	rep_fini(&a);
	rep_fini(&b);
	event_base_free(base);
}

/* ---- coordinated in-progress polling ---- */

static int has_fetch(const void *arg)
{
	return ((const struct rep *)arg)->nfetch > 0;
}

static int got_called(const void *arg)
{
	return ((const struct got *)arg)->calls > 0;
}

static int waited(const void *arg)
{
	return gw_status_counters(((const struct rep *)arg)->status)->cluster_waited >= 1;
}

/* Ticks x (no timers in these tests) until it starts a fetch. */
static int tick_until_fetch(struct event_base *base, struct rep *x, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;

	while (!x->nfetch && gw_clock_now_us() < end) {
		gw_status_tick(x->status);
		run_until(base, has_fetch, x, 10);
	}
	return x->nfetch > 0;
}

Test(redis_status, in_progress_polled_by_the_lease_holder_served_to_the_other)
{
	struct event_base *base = event_base_new();
	struct rep a, b;
	struct got ga = { 0 }, gb = { 0 }, gb2 = { 0 }, gb3 = { 0 }, ga3 = { 0 };
	const struct gw_status_counters *bc;
	char rida[32], ridb[32], ridc[32];

	/* Rids of their own per run: the hot set outlives a quick rerun. */
	snprintf(rida, sizeof rida, "BBBBBBBBBBBBBBB%06ld", (long)(gw_clock_now_us() / 1000 % 1000000));
	snprintf(ridb, sizeof ridb, "CCCCCCCCCCCCCCC%s", rida + 15);
	snprintf(ridc, sizeof ridc, "DDDDDDDDDDDDDDD%s", rida + 15);
	g_coord = 1;
	rep_init(&a, base, "t16p:", "replica-a");
	rep_init(&b, base, "t16p:", "replica-b");
	g_coord = 0;
	cr_assert(run_until(base, subscribed, &a, T_WAIT_MS) && run_until(base, subscribed, &b, T_WAIT_MS));
	bc = gw_status_counters(b.status);

	/* A wants rida first: its claim takes the window's lease, it polls. */
	ga.w.done = got_done;
	cr_assert_eq(gw_status_want(a.status, 0, rida, &ga.w), 0);
	gw_status_tick(a.status);
	cr_assert(run_until(base, has_fetch, &a, T_WAIT_MS), "A never polled");
	cr_assert_eq(cnt(&a)->lease_taken, 1);

	/* B wants it too: A holds the lease and polls it, so B waits for A's answer. */
	gb.w.done = got_done;
	cr_assert_eq(gw_status_want(b.status, 0, rida, &gb.w), 0);
	gw_status_tick(b.status);
	cr_assert(run_until(base, waited, &b, T_WAIT_MS), "B did not wait for the lease holder");
	cr_assert_eq(cnt(&b)->lease_lost, 1);
	cr_assert_eq(b.nfetch, 0);

	/* A's answer (in progress) reaches B's waiter through Redis: no fetch of B. */
	answer(&a, rida, P);
	cr_assert_eq(ga.state, P);
	cr_assert(run_until(base, got_called, &gb, T_WAIT_MS), "B's waiter never answered");
	cr_assert_eq(gb.state, P);
	cr_assert_eq(b.nfetch, 0);
	cr_assert_eq(bc->cluster_served, 1);
	cr_assert_eq(cnt(&a)->progress_published, 1);

	/* A rid new to the cluster's hot set is polled by whoever wants it. */
	gb2.w.done = got_done;
	cr_assert_eq(gw_status_want(b.status, 0, ridb, &gb2.w), 0);
	gw_status_tick(b.status);
	cr_assert(run_until(base, has_fetch, &b, T_WAIT_MS), "B did not poll a new rid");
	cr_assert_eq(cnt(&b)->claim_new, 1);
	answer(&b, ridb, P);
	cr_assert_eq(gb2.state, P);

	/* The holder never answers: B polls itself after the wait (TTL/4), nothing waits forever. */
	ga3.w.done = got_done;
	cr_assert_eq(gw_status_want(a.status, 0, ridc, &ga3.w), 0);
	gw_status_tick(a.status);
	cr_assert(run_until(base, has_fetch, &a, T_WAIT_MS), "A never polled ridc");
	gb3.w.done = got_done;
	cr_assert_eq(gw_status_want(b.status, 0, ridc, &gb3.w), 0);
	gw_status_tick(b.status);
	cr_assert(run_until(base, waited, &b, T_WAIT_MS));
	cr_assert(tick_until_fetch(base, &b, T_WAIT_MS), "B never fell back to its own poll");
	cr_assert_eq(bc->cluster_fallback, 1);
	answer(&b, ridc, P);
	cr_assert_eq(gb3.state, P);

	gw_status_unwant(&ga3.w);
	rep_fini(&a);
	rep_fini(&b);
	event_base_free(base);
}

Test(redis_status, claims_fall_back_to_local_polling_when_redis_is_down)
{
	struct event_base *base = event_base_new();
	struct rep a;
	struct got g = { 0 };

	g_coord = 1;
	rep_init(&a, base, "t16q:", "replica-a");
	g_coord = 0;
	cr_assert(run_until(base, is_connected, a.redis, T_WAIT_MS));
	ctl("kill");
	cr_assert(run_until(base, is_down, a.redis, T_WAIT_MS));
	g.w.done = got_done;
	cr_assert_eq(gw_status_want(a.status, 0, RID3, &g.w), 0);
	gw_status_tick(a.status);
	cr_assert_eq(a.nfetch, 1, "polled at once, as one replica");
	cr_assert_eq(cnt(&a)->claim_local, 1);
	answer(&a, RID3, P);
	cr_assert_eq(g.state, P);
	cr_assert_eq(cnt(&a)->progress_publish_failed, 1);
	ctl("start");
	cr_assert(run_until(base, is_connected, a.redis, T_WAIT_MS));
	rep_fini(&a);
	event_base_free(base);
}
