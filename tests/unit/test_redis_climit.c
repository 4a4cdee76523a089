/*
 * Unit tests for gateway/cluster/climit.c: lease sizing and pushback (pure, tables), then against
 * a real redis-server (tests/lib/with-redis exports A3D_REDIS_*): the Lua script's refill, burst
 * cap and refusal with its retry time; two clients on one server (two replicas) never admitting
 * more than the limit plus one lease each; the server killed (fallback decisions counted) and
 * started again (shared decisions again). Every wait is bounded.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/cluster/climit.h"
#include "gateway/cluster/redis.h"

#define T_WAIT_MS 10000		/* bound on any wait in these tests */

/* ---- pure parts ---- */

Test(climit, lease_size_table)
{
	static const struct {
		double rate, burst;
		unsigned replicas, max_cost, lease;
	} rows[] = {
		{ 20, 40, 3, 1, 2 },		/* min(40/12 = 3.3, 20 * 0.1 = 2) */
		{ 20, 40, 1, 1, 2 },		/* min(10, 2) */
		{ 1000, 2000, 3, 1, 100 },	/* min(166, 100) */
		{ 1000, 200, 3, 1, 16 },	/* min(16.6, 100) */
		{ 20, 40, 3, 5, 5 },		/* never below the dearest call */
		{ 1, 1, 10, 1, 1 },		/* at least one token */
		{ 5, 2, 1, 1, 0 + 1 },		/* min(0.5, 0.5) -> 0 -> 1 */
		{ 100, 3, 1, 10, 10 },		/* cost above burst: max(burst, cost) */
		{ 0, 40, 3, 1, 0 },		/* unlimited: no lease */
		{ -1, 40, 3, 1, 0 },
		{ 20, 40, 0, 0, 2 },		/* replicas and cost 0 count as 1 */
		{ 1e9, 1e9, 1, 1, 1000000 },	/* capped */
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_climit_lease_size(rows[i].rate, rows[i].burst, rows[i].replicas,
						  rows[i].max_cost),
			     rows[i].lease, "row %zu: %u", i,
			     gw_climit_lease_size(rows[i].rate, rows[i].burst, rows[i].replicas,
						  rows[i].max_cost));
}

Test(climit, pushback_table)
{
	static const struct {
		double tokens, need, rate, burst;
		int64_t ms;
	} rows[] = {
		{ 5, 1, 10, 10, 0 },		/* there */
		{ 0, 1, 10, 10, 100 },
		{ 0.5, 1, 10, 10, 50 },
		{ 0.9999, 1, 10, 10, 1 },	/* at least 1 ms */
		{ -3, 1, 20, 40, 200 },		/* a debt is paid first */
		{ 0, 11, 10, 10, -1 },		/* more than the burst: never */
		{ 0, 1, 0, 10, -1 },		/* no refill */
		{ 0, 1000, 0.001, 1000, GW_CLIMIT_MAX_WAIT_MS },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_climit_pushback(rows[i].tokens, rows[i].need, rows[i].rate,
						rows[i].burst),
			     rows[i].ms, "row %zu: %lld", i,
			     (long long)gw_climit_pushback(rows[i].tokens, rows[i].need, rows[i].rate,
							   rows[i].burst));
}

Test(climit, no_client_falls_back)
{
	struct gw_climit *c = gw_climit_new(NULL);
	struct gw_climit_entry *e = gw_climit_entry(c, "rl:t:x");
	struct gw_climit_limit lim = { 10, 10, 1 }, unl = { 0, 0, 0 };
	int64_t wait;

	cr_assert_not_null(e);
	cr_expect_eq(gw_climit_entry(c, "rl:t:x"), e, "found again by name");
	cr_expect_null(gw_climit_entry(c, ""));
	cr_expect_eq(gw_climit_take(c, e, &lim, 1, 0, &wait), GW_CLIMIT_FALLBACK);
	cr_expect_eq(gw_climit_take(c, NULL, &lim, 1, 0, &wait), GW_CLIMIT_FALLBACK);
	cr_expect_eq(gw_climit_take(c, e, &unl, 1, 0, &wait), GW_CLIMIT_ALLOW, "unlimited");
	cr_expect_eq(gw_climit_stats(c)->fallback, 2);
	cr_expect_eq(gw_climit_stats(c)->no_entry, 1);
	cr_expect_eq(gw_climit_shared(c), 0);
	gw_climit_free(c);
}

/* ---- against a real server ---- */

static char g_password[128];

static void opts_of_env(struct gw_redis_opts *o)
{
	const char *pwf = getenv("A3D_REDIS_PASSWORD_FILE");
	FILE *f;

	cr_assert_not_null(getenv("A3D_REDIS_PORT"), "run under tests/lib/with-redis");
	f = fopen(pwf, "r");
	cr_assert_not_null(f, "%s", pwf);
	if (!fgets(g_password, sizeof g_password, f))
		g_password[0] = '\0';
	fclose(f);
	g_password[strcspn(g_password, "\r\n")] = '\0';
	memset(o, 0, sizeof *o);
	o->ip = getenv("A3D_REDIS_HOST");
	o->port = (unsigned)strtoul(getenv("A3D_REDIS_PORT"), NULL, 10);
	o->password = g_password;
	o->key_prefix = "tc:";
	o->connect_timeout_ms = 3000;
	o->command_timeout_ms = 3000;
	o->max_pending = 64;
	o->backoff_max_ms = 400;
}

static struct gw_redis *client(struct event_base *base)
{
	struct gw_redis_opts o;
	char err[256];
	struct gw_redis *r;

	opts_of_env(&o);
	r = gw_redis_new(base, &o, err, sizeof err);
	cr_assert_not_null(r, "%s", err);
	return r;
}

static void run_for(struct event_base *base, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;
	struct timeval tv = { 0, 1000 };

	while (gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
}

static int run_until_connected(struct event_base *base, struct gw_redis *r)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	struct timeval tv = { 0, 10000 };

	while (!gw_redis_connected(r) && gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	return gw_redis_connected(r);
}

static void ctl(const char *what)
{
	char line[512];

	cr_assert_not_null(getenv("A3D_REDIS_CTL"));
	snprintf(line, sizeof line, "\"%s\" %s", getenv("A3D_REDIS_CTL"), what);
	cr_assert_eq(system(line), 0, "%s", line);
}

/* A unique key per test and run: the server outlives the test processes. */
static void key_of(char *buf, size_t cap, const char *what)
{
	snprintf(buf, cap, "climit:%s:%ld:%lld", what, (long)getpid(),
		 (long long)(gw_clock_now_us() / 1000));
}

struct reply {
	int done;
	long long granted, wait, level;
	char err[256];
};

static void on_reply(void *arg, const redisReply *reply, const char *err)
{
	struct reply *a = arg;

	a->done = 1;
	snprintf(a->err, sizeof a->err, "%s", err ? err : "");
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
		a->granted = reply->element[0]->integer;
		a->wait = reply->element[1]->integer;
		a->level = reply->element[2]->integer;
	}
}

/* Runs the script once; asserts it answered. */
static struct reply script(struct event_base *base, struct gw_redis *r, const char *key, const char *rate,
			   const char *burst, const char *want, const char *need)
{
	static struct gw_redis_script s = { .lua = GW_CLIMIT_LUA };
	struct reply a;
	char k[GW_REDIS_KEY_MAX];
	const char *argv[5] = { k, rate, burst, want, need };
	int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	struct timeval tv = { 0, 1000 };

	memset(&a, 0, sizeof a);
	if (!s.sha[0])
		gw_redis_script_init(&s);
	cr_assert_geq(gw_redis_key(r, key, k, sizeof k), 0);
	cr_assert_eq(gw_redis_eval(r, &s, 1, 4, argv, NULL, on_reply, &a), GW_REDIS_OK);
	while (!a.done && gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	cr_assert(a.done);
	cr_assert_str_eq(a.err, "");
	return a;
}

Test(climit, script_refill_burst_cap_and_refusal)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	char key[128], k[GW_REDIS_KEY_MAX];
	struct reply a;
	int64_t t0;

	cr_assert(run_until_connected(base, r));
	key_of(key, sizeof key, "script");
	/* A new key is a full bucket: 5 tokens at 10/s. */
	a = script(base, r, key, "10", "5", "3", "1");
	cr_expect_eq(a.granted, 3);
	cr_expect_eq(a.wait, 0);
	/* 2 left (and a little refill): need 3 is refused with the time 1 more token takes. */
	a = script(base, r, key, "10", "5", "5", "3");
	cr_expect_eq(a.granted, 0);
	cr_expect(a.wait >= 1 && a.wait <= 100, "wait %lld", a.wait);
	t0 = gw_clock_now_us();
	run_for(base, a.wait + 20);
	/* Now it is there; want 5, whole tokens only (3 and a bit). */
	a = script(base, r, key, "10", "5", "5", "3");
	cr_expect_eq(a.granted, 3, "granted %lld after %lld ms", a.granted,
		     (long long)(gw_clock_now_us() - t0) / 1000);
	/* Need more than the burst: never. */
	a = script(base, r, key, "10", "5", "6", "6");
	cr_expect_eq(a.granted, 0);
	cr_expect_eq(a.wait, -1);
	/* A long idle time refills up to the burst, no more. */
	{
		struct reply h;
		const char *hset[] = { "HSET", k, "t", "0", "ts", "1000000" };	/* 1970 */

		memset(&h, 0, sizeof h);
		cr_assert_geq(gw_redis_key(r, key, k, sizeof k), 0);
		cr_assert_eq(gw_redis_command(r, on_reply, &h, 6, hset, NULL), GW_REDIS_OK);
		run_for(base, 50);
		cr_assert(h.done);
	}
	a = script(base, r, key, "10", "5", "100", "1");
	cr_expect_eq(a.granted, 5);
	cr_expect_eq(a.level, 0);
	/* The key expires once it would be full again (an absent key is a full bucket). */
	{
		struct reply t;
		const char *pttl[] = { "PTTL", k };

		memset(&t, 0, sizeof t);
		cr_assert_eq(gw_redis_command(r, on_reply, &t, 2, pttl, NULL), GW_REDIS_OK);
		run_for(base, 50);
		cr_assert(t.done);
	}
	gw_redis_free(r);
	event_base_free(base);
}

/*
 * Two replicas (two clients on one server) hammer one tenant for a window: together they never
 * admit more than rate * window + burst + one lease each, and not much less either.
 */
Test(climit, two_replicas_stay_within_limit_plus_one_lease_each)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r[2] = { client(base), client(base) };
	struct gw_climit *c[2];
	struct gw_climit_entry *e[2];
	struct gw_climit_limit lim = { 50, 20, 0 };
	char key[128];
	uint64_t allowed[2] = { 0, 0 }, refused = 0, fallback = 0;
	int64_t t0, t1, wait;
	const long window_ms = 1500;

	lim.lease = gw_climit_lease_size(lim.rate, lim.burst, 2, 1);
	cr_expect_eq(lim.lease, 2, "min(20/8, 5)");
	key_of(key, sizeof key, "two");
	for (int i = 0; i < 2; i++) {
		cr_assert(run_until_connected(base, r[i]));
		c[i] = gw_climit_new(r[i]);
		e[i] = gw_climit_entry(c[i], key);
		cr_assert_not_null(e[i]);
	}
	t0 = gw_clock_now_us();
	while ((t1 = gw_clock_now_us()) - t0 < window_ms * 1000) {
		struct timeval tv = { 0, 200 };

		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 4; k++) {
				int rc = gw_climit_take(c[i], e[i], &lim, 1, t1 / 1000, &wait);

				if (rc == GW_CLIMIT_ALLOW)
					allowed[i]++;
				else if (rc == GW_CLIMIT_REFUSE) {
					refused++;
					cr_expect(wait >= 1, "wait %lld", (long long)wait);
				} else
					fallback++;
			}
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	{
		double secs = (double)(t1 - t0) / 1e6;
		double bound = lim.rate * secs + lim.burst + 2 * lim.lease;
		uint64_t total = allowed[0] + allowed[1];

		printf("climit two replicas: %.2f s, admitted %llu + %llu = %llu (bound %.1f), "
		       "refused %llu, refills %llu + %llu, overdraft %llu + %llu\n", secs,
		       (unsigned long long)allowed[0], (unsigned long long)allowed[1],
		       (unsigned long long)total, bound, (unsigned long long)refused,
		       (unsigned long long)gw_climit_stats(c[0])->refills,
		       (unsigned long long)gw_climit_stats(c[1])->refills,
		       (unsigned long long)gw_climit_stats(c[0])->overdraft,
		       (unsigned long long)gw_climit_stats(c[1])->overdraft);
		cr_expect_eq(fallback, 0);
		cr_expect_leq((double)total, bound);
		cr_expect_geq((double)total, 0.8 * (lim.rate * secs + lim.burst) - 2 * lim.lease,
			      "admitted %llu", (unsigned long long)total);
		cr_expect_gt(allowed[0], 0);
		cr_expect_gt(allowed[1], 0);
		cr_expect_gt(refused, 0);
		cr_expect_eq(gw_climit_stats(c[0])->fallback + gw_climit_stats(c[1])->fallback, 0);
		cr_expect_eq(gw_climit_shared(c[0]), 1);
	}
	for (int i = 0; i < 2; i++) {
		int inflight = 1;
		int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;

		while (inflight && gw_clock_now_us() < end) {
			gw_climit_local(e[i], &inflight);
			run_for(base, 5);
		}
		gw_climit_free(c[i]);
		gw_redis_free(r[i]);
	}
	event_base_free(base);
}

static int take_until(struct event_base *base, struct gw_climit *c, struct gw_climit_entry *e,
		      const struct gw_climit_limit *lim, int want)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000, wait;
	int rc = -1;

	while (gw_clock_now_us() < end) {
		rc = gw_climit_take(c, e, lim, 1, gw_clock_now_us() / 1000, &wait);
		if (rc == want)
			break;
		run_for(base, 20);
	}
	return rc;
}

Test(climit, server_killed_falls_back_then_shared_again)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	struct gw_climit *c;
	struct gw_climit_entry *e;
	struct gw_climit_limit lim = { 100, 100, 10 };
	char key[128];
	uint64_t fb;

	cr_assert(run_until_connected(base, r));
	key_of(key, sizeof key, "outage");
	c = gw_climit_new(r);
	e = gw_climit_entry(c, key);
	cr_assert_eq(take_until(base, c, e, &lim, GW_CLIMIT_ALLOW), GW_CLIMIT_ALLOW);
	run_for(base, 50);
	cr_expect_geq(gw_climit_stats(c)->refills, 1);
	cr_expect_eq(gw_climit_shared(c), 1);
	cr_expect_eq(gw_climit_stats(c)->fallback, 0);

	ctl("kill");
	cr_assert_eq(take_until(base, c, e, &lim, GW_CLIMIT_FALLBACK), GW_CLIMIT_FALLBACK);
	fb = gw_climit_stats(c)->fallback;
	cr_expect_geq(fb, 1);
	cr_expect_eq(gw_climit_shared(c), 0);
	/* Every decision while it is down is a counted fallback, none waits. */
	for (int i = 0; i < 10; i++) {
		int64_t wait, t = gw_clock_now_us();

		cr_expect_eq(gw_climit_take(c, e, &lim, 1, t / 1000, &wait), GW_CLIMIT_FALLBACK);
		cr_expect_lt(gw_clock_now_us() - t, 10000, "a decision never waits");
	}
	cr_expect_eq(gw_climit_stats(c)->fallback, fb + 10);

	ctl("start");
	cr_assert(run_until_connected(base, r));
	cr_assert_eq(take_until(base, c, e, &lim, GW_CLIMIT_ALLOW), GW_CLIMIT_ALLOW,
		     "shared decisions resume");
	cr_expect_eq(gw_climit_shared(c), 1);
	run_for(base, 100);
	cr_expect_eq(gw_climit_stats(c)->shared_mode, 1);
	gw_climit_free(c);
	gw_redis_free(r);
	event_base_free(base);
}

/* A call dearer than the lease is admitted on a credit of its own cost, once; the next waits. */
Test(climit, dear_call_takes_a_lease_of_its_cost)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	struct gw_climit *c;
	struct gw_climit_entry *e;
	struct gw_climit_limit lim = { 10, 10, 1 };
	char key[128];
	int64_t wait, now;
	int inflight = 1;

	cr_assert(run_until_connected(base, r));
	key_of(key, sizeof key, "dear");
	c = gw_climit_new(r);
	e = gw_climit_entry(c, key);
	now = gw_clock_now_us() / 1000;
	cr_expect_eq(gw_climit_take(c, e, &lim, 5, now, &wait), GW_CLIMIT_ALLOW, "on credit");
	cr_expect_eq(gw_climit_local(e, &inflight), -5);
	cr_expect_eq(inflight, 1);
	cr_expect_eq(gw_climit_take(c, e, &lim, 5, now, &wait), GW_CLIMIT_REFUSE, "credit spent");
	cr_expect_eq(wait, 500, "5 tokens at 10/s");
	cr_expect_eq(gw_climit_stats(c)->busy_refused, 1);
	cr_expect_eq(gw_climit_take(c, e, &lim, 11, now, &wait), GW_CLIMIT_REFUSE);
	cr_expect_eq(wait, -1, "more than the burst: never");
	/* The lease asked for before the credit (5) pays the debt; then a prefetch of one lease. */
	for (int i = 0; i < 500 && inflight; i++) {
		run_for(base, 5);
		gw_climit_local(e, &inflight);
	}
	cr_expect_eq(gw_climit_local(e, NULL), 1);
	cr_expect_eq(gw_climit_stats(c)->refill_granted, 6);
	cr_expect_eq(gw_climit_stats(c)->refills, 2);
	now = gw_clock_now_us() / 1000;
	cr_expect_eq(gw_climit_take(c, e, &lim, 5, now, &wait), GW_CLIMIT_ALLOW, "1 held + 4 on credit");
	cr_expect_eq(gw_climit_local(e, NULL), -4);
	/* Empty now: the next lease request is refused with the script's delay. */
	for (int i = 0; i < 500; i++) {
		run_for(base, 5);
		gw_climit_local(e, &inflight);
		if (!inflight)
			break;
	}
	now = gw_clock_now_us() / 1000;
	if (gw_climit_take(c, e, &lim, 5, now, &wait) == GW_CLIMIT_ALLOW)
		cr_expect_fail("admitted with an empty bucket and credit %lld", (long long)gw_climit_local(e, NULL));
	cr_expect(wait >= 1 && wait <= 500, "wait %lld", (long long)wait);
	for (int i = 0; i < 500 && inflight; i++) {
		run_for(base, 5);
		gw_climit_local(e, &inflight);
	}
	gw_climit_free(c);
	gw_redis_free(r);
	event_base_free(base);
}

/* ---- parked calls (gw_climit_take_wait) ---- */

#define T_BURST 200		/* calls of one burst on one entry, more than lease + overdraft */

struct waiter {
	struct gw_climit_wait w;
	int done, rc;
	int64_t wait;
};

static void on_resumed(struct gw_climit_wait *w, int rc, int64_t wait_ms)
{
	struct waiter *x = w->arg;

	x->done++;
	x->rc = rc;
	x->wait = wait_ms;
}

/* Sends T_BURST takes of cost 1 at once; the ones answered now are done already. */
static void burst(struct gw_climit *c, struct gw_climit_entry *e, const struct gw_climit_limit *lim,
		  struct waiter *x, int64_t max_wait_ms)
{
	int64_t now = gw_clock_now_us() / 1000;

	for (int i = 0; i < T_BURST; i++) {
		x[i].w.fn = on_resumed;
		x[i].w.arg = &x[i];
		x[i].rc = gw_climit_take_wait(c, e, lim, 1, now, max_wait_ms, &x[i].wait, &x[i].w);
		if (x[i].rc != GW_CLIMIT_PENDING)
			x[i].done = 1;
	}
}

/* Runs the loop until every call of the burst is answered (bounded); counts them by outcome. */
static void settle(struct event_base *base, struct waiter *x, int count[4])
{
	int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	int left = 1;

	while (left && gw_clock_now_us() < end) {
		run_for(base, 5);
		left = 0;
		for (int i = 0; i < T_BURST; i++)
			left += !x[i].done;
	}
	memset(count, 0, 4 * sizeof count[0]);
	for (int i = 0; i < T_BURST; i++) {
		cr_expect_eq(x[i].done, 1, "call %d answered %d times", i, x[i].done);
		if (x[i].rc >= 0 && x[i].rc < 4)
			count[x[i].rc]++;
	}
}

static void drain(struct event_base *base, struct gw_climit_entry *e)
{
	int inflight = 1;

	for (int i = 0; i < 1000 && inflight; i++) {
		run_for(base, 5);
		gw_climit_local(e, &inflight);
	}
}

/*
 * A burst larger than lease + overdraft while the first refill is in flight: with tokens enough
 * in the shared bucket every call is admitted (the ones past the overdraft wait for the lease);
 * none is refused "busy". With a short bucket the bound holds: tokens + one lease, the rest
 * refused with the script's delay.
 */
Test(climit, burst_waits_for_the_lease)
{
	static const struct {
		double rate, burst;
		int min_allowed, max_allowed;	/* max: burst + one lease + what the rate adds */
	} rows[] = {
		{ 100, 1000, T_BURST, T_BURST },
		{ 1, 50, 50, 50 + 5 + 10 },
	};
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);

	cr_assert(run_until_connected(base, r));
	for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
		struct gw_climit_limit lim = { rows[k].rate, rows[k].burst, 5 };
		struct gw_climit *c = gw_climit_new(r);
		struct gw_climit_entry *e;
		struct waiter *x = calloc(T_BURST, sizeof *x);
		int count[4];
		char key[128], what[32];

		snprintf(what, sizeof what, "burst%zu", k);
		key_of(key, sizeof key, what);
		e = gw_climit_entry(c, key);
		burst(c, e, &lim, x, -1);
		cr_expect_eq(gw_climit_stats(c)->overdraft, 5, "row %zu: one lease on credit", k);
		cr_expect_eq(gw_climit_stats(c)->parked, T_BURST - 5, "row %zu", k);
		settle(base, x, count);
		cr_expect_geq(count[GW_CLIMIT_ALLOW], rows[k].min_allowed, "row %zu: %d", k,
			      count[GW_CLIMIT_ALLOW]);
		cr_expect_leq(count[GW_CLIMIT_ALLOW], rows[k].max_allowed, "row %zu: %d", k,
			      count[GW_CLIMIT_ALLOW]);
		cr_expect_eq(count[GW_CLIMIT_ALLOW] + count[GW_CLIMIT_REFUSE], T_BURST, "row %zu", k);
		cr_expect_eq(gw_climit_stats(c)->busy_refused, 0, "row %zu", k);
		cr_expect_eq(gw_climit_stats(c)->fallback, 0, "row %zu", k);
		cr_expect_eq(gw_climit_stats(c)->resumed, T_BURST - 5, "row %zu", k);
		for (int i = 0; i < T_BURST; i++)
			if (x[i].rc == GW_CLIMIT_REFUSE)
				cr_expect(x[i].wait > 1 && x[i].wait <= GW_CLIMIT_MAX_WAIT_MS,
					  "row %zu call %d: the script's delay, not 'retry in 1 ms': %lld",
					  k, i, (long long)x[i].wait);
		printf("climit burst row %zu: %d allowed, %d refused, refills %llu\n", k,
		       count[GW_CLIMIT_ALLOW], count[GW_CLIMIT_REFUSE],
		       (unsigned long long)gw_climit_stats(c)->refills);
		drain(base, e);
		gw_climit_free(c);
		free(x);
	}
	gw_redis_free(r);
	event_base_free(base);
}

/* A full FIFO refuses as before (counted); a cancelled call leaves it and is never answered. */
Test(climit, parked_overflow_and_cancel)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	struct gw_climit_limit lim = { 100, 100000, 1 };
	struct gw_climit *c;
	struct gw_climit_entry *e;
	struct waiter *x = calloc(GW_CLIMIT_MAX_PARKED + 3, sizeof *x);
	int64_t now, wait;
	char key[128];
	int n = GW_CLIMIT_MAX_PARKED + 2;

	cr_assert(run_until_connected(base, r));
	key_of(key, sizeof key, "overflow");
	c = gw_climit_new(r);
	e = gw_climit_entry(c, key);
	now = gw_clock_now_us() / 1000;
	for (int i = 0; i < n; i++) {
		x[i].w.fn = on_resumed;
		x[i].w.arg = &x[i];
		x[i].rc = gw_climit_take_wait(c, e, &lim, 1, now, -1, &wait, &x[i].w);
	}
	cr_expect_eq(x[0].rc, GW_CLIMIT_ALLOW, "on credit");
	cr_expect_eq(x[1].rc, GW_CLIMIT_PENDING);
	cr_expect_eq(x[n - 1].rc, GW_CLIMIT_REFUSE, "the FIFO is full");
	cr_expect_eq(gw_climit_stats(c)->park_overflow, 1);
	cr_expect_eq(gw_climit_stats(c)->busy_refused, 1);
	gw_climit_cancel(&x[1].w);
	gw_climit_cancel(&x[1].w);	/* twice: a no-op */
	cr_expect_eq(gw_climit_stats(c)->park_cancelled, 1);
	for (int i = 0; i < 1000 && !x[n - 2].done; i++)
		run_for(base, 5);
	cr_expect_eq(x[1].done, 0, "a cancelled call is not answered");
	for (int i = 2; i < n - 1; i++)
		cr_expect_eq(x[i].done, 1, "call %d", i);
	cr_expect_eq(gw_climit_stats(c)->resumed, (uint64_t)(n - 3));
	drain(base, e);
	gw_climit_free(c);
	free(x);
	gw_redis_free(r);
	event_base_free(base);
}

/*
 * Redis stops answering (SIGSTOP) with calls parked: nothing waits in the loop, the calls stay
 * parked; once it answers again, the ones past their wait limit fall back (counted), none is
 * refused "busy".
 */
Test(climit, parked_calls_time_out_into_fallback)
{
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	struct gw_climit_limit lim = { 100, 1000, 5 };
	struct gw_climit *c;
	struct gw_climit_entry *e;
	struct waiter *x = calloc(T_BURST, sizeof *x);
	int count[4];
	char key[128], line[512];
	FILE *p;
	long pid = 0;
	int64_t t;

	cr_assert(run_until_connected(base, r));
	snprintf(line, sizeof line, "\"%s\" pid", getenv("A3D_REDIS_CTL"));
	p = popen(line, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%ld", &pid), 1);
	pclose(p);
	cr_assert_gt(pid, 1);
	key_of(key, sizeof key, "paused");
	c = gw_climit_new(r);
	gw_climit_wait_limit(c, 100);
	e = gw_climit_entry(c, key);
	cr_assert_eq(kill((pid_t)pid, SIGSTOP), 0);
	t = gw_clock_now_us();
	burst(c, e, &lim, x, -1);
	cr_expect_lt(gw_clock_now_us() - t, 100000, "parking never waits");
	run_for(base, 300);
	for (int i = 5; i < T_BURST; i++)
		cr_expect_eq(x[i].done, 0, "call %d still parked", i);
	cr_assert_eq(kill((pid_t)pid, SIGCONT), 0);
	settle(base, x, count);
	cr_expect_eq(count[GW_CLIMIT_ALLOW], 5, "the overdraft");
	cr_expect_eq(count[GW_CLIMIT_FALLBACK], T_BURST - 5);
	cr_expect_eq(gw_climit_stats(c)->park_timeout, T_BURST - 5);
	cr_expect_eq(gw_climit_stats(c)->busy_refused, 0);
	drain(base, e);
	gw_climit_free(c);
	free(x);
	gw_redis_free(r);
	event_base_free(base);
}
