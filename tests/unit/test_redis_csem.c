/*
 * Unit tests for gateway/cluster/csem.c: batch and target sizing (pure, tables), then against a
 * real redis-server (tests/lib/with-redis exports A3D_REDIS_*): the Lua script's grants, releases
 * and expiry of dead holders as a table; two clients on one server (two replicas) whose usable
 * slots never add up to more than the cap, and one of them alone reaching the whole cap once
 * the other is idle; slots admitted while a request to Redis is on its way kept through a
 * fair-share cut; three replicas whose requests take time never over the cap together; the
 * server killed (fallbacks counted, the part shown local) and started again (shared). Every wait
 * is bounded.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/cluster/csem.h"
#include "gateway/cluster/redis.h"

#define T_WAIT_MS 10000		/* bound on any wait in these tests */

/* ---- pure parts ---- */

Test(csem, batch_and_target_tables)
{
	static const struct {
		unsigned cap, replicas, batch;
	} b[] = {
		{ 6, 3, 1 }, { 100, 3, 8 }, { 100, 1, 25 }, { 1, 10, 1 }, { 0, 3, 0 }, { 40, 0, 10 },
	};
	static const struct {
		unsigned cap, demand, batch, target;
	} t[] = {
		{ 6, 0, 1, 0 },		/* idle: give everything back */
		{ 6, 1, 1, 2 },
		{ 6, 5, 1, 6 },		/* capped */
		{ 6, 9, 1, 6 },
		{ 100, 10, 8, 18 },
		{ 4000000000u, 4000000000u, 4000000000u, 4000000000u },	/* no overflow */
	};

	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
		cr_expect_eq(gw_csem_batch(b[i].cap, b[i].replicas), b[i].batch, "batch row %zu: %u", i,
			     gw_csem_batch(b[i].cap, b[i].replicas));
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_eq(gw_csem_target(t[i].cap, t[i].demand, t[i].batch), t[i].target,
			     "target row %zu: %u", i, gw_csem_target(t[i].cap, t[i].demand, t[i].batch));
}

Test(csem, no_client_falls_back)
{
	struct gw_csem *c = gw_csem_new(NULL, NULL, "r1");
	struct gw_csem_entry *e;
	unsigned slots = 7;

	cr_assert_not_null(c);
	cr_expect_null(gw_csem_new(NULL, NULL, ""), "an instance id is needed");
	e = gw_csem_entry(c, "cs:a:x", NULL, NULL, NULL);
	cr_assert_not_null(e);
	cr_expect_eq(gw_csem_entry(c, "cs:a:x", NULL, NULL, NULL), e, "found again by name");
	cr_expect_null(gw_csem_entry(c, "", NULL, NULL, NULL));
	cr_expect_eq(gw_csem_sync(c, e, 6, 1, 0, 3, 0, &slots), GW_CSEM_FALLBACK);
	cr_expect_eq(slots, 0);
	cr_expect_eq(gw_csem_sync(c, NULL, 6, 1, 0, 3, 0, &slots), GW_CSEM_FALLBACK);
	cr_expect_eq(gw_csem_stats(c)->fallback, 2);
	cr_expect_eq(gw_csem_stats(c)->no_entry, 1);
	cr_expect_eq(gw_csem_shared(c), 0);
	gw_csem_free(c);
}

/* ---- against a real server ---- */

static char g_password[128];

static struct gw_redis *client(struct event_base *base)
{
	const char *pwf = getenv("A3D_REDIS_PASSWORD_FILE");
	struct gw_redis_opts o;
	char err[256];
	struct gw_redis *r;
	FILE *f;

	cr_assert_not_null(getenv("A3D_REDIS_PORT"), "run under tests/lib/with-redis");
	f = fopen(pwf, "r");
	cr_assert_not_null(f, "%s", pwf);
	if (!fgets(g_password, sizeof g_password, f))
		g_password[0] = '\0';
	fclose(f);
	g_password[strcspn(g_password, "\r\n")] = '\0';
	memset(&o, 0, sizeof o);
	o.ip = getenv("A3D_REDIS_HOST");
	o.port = (unsigned)strtoul(getenv("A3D_REDIS_PORT"), NULL, 10);
	o.password = g_password;
	o.key_prefix = "tcs:";
	o.connect_timeout_ms = 3000;
	o.command_timeout_ms = 3000;
	o.max_pending = 64;
	o.backoff_max_ms = 400;
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

	while (!gw_redis_connected(r) && gw_clock_now_us() < end)
		run_for(base, 10);
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
	snprintf(buf, cap, "csem:%s:%ld:%lld", what, (long)getpid(),
		 (long long)(gw_clock_now_us() / 1000));
}

struct reply {
	int done;
	long long a, b, c;
	int type;
	char err[256];
};

static void on_reply(void *arg, const redisReply *reply, const char *err)
{
	struct reply *x = arg;

	x->done = 1;
	snprintf(x->err, sizeof x->err, "%s", err ? err : "");
	x->type = reply ? reply->type : -1;
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
		x->a = reply->element[0]->integer;
		x->b = reply->element[1]->integer;
		x->c = reply->element[2]->integer;
	} else if (reply && reply->type == REDIS_REPLY_INTEGER) {
		x->a = reply->integer;
	}
}

static struct reply wait_reply(struct event_base *base, struct reply *x)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;

	while (!x->done && gw_clock_now_us() < end)
		run_for(base, 1);
	cr_assert(x->done);
	cr_assert_str_eq(x->err, "");
	return *x;
}

static struct reply cmd(struct event_base *base, struct gw_redis *r, int argc, const char **argv)
{
	struct reply x;

	memset(&x, 0, sizeof x);
	cr_assert_eq(gw_redis_command(r, on_reply, &x, argc, argv, NULL), GW_REDIS_OK);
	return wait_reply(base, &x);
}

Test(csem, script_grants_releases_and_expiry)
{
	static struct gw_redis_script s = { .lua = GW_CSEM_LUA };
	static const struct {
		const char *inject;	/* HSET this holder's value first (NULL: none) */
		const char *holder, *want, *keep;
		long long granted, others, use;
		long long fields;	/* HLEN after */
	} rows[] = {
		{ NULL, "A", "3", "0", 3, 0, 3, 1 },
		{ NULL, "B", "4", "0", 2, 3, 2, 2 },	/* the cap (5) is taken: short, B starves */
		{ NULL, "A", "1", "0", 1, 2, 1, 2 },	/* A gives 2 back */
		{ NULL, "B", "4", "0", 4, 1, 4, 2 },	/* B takes them */
		{ "C:9:1000:9", "A", "1", "0", 1, 4, 1, 2 },	/* C's lease ended in 1970: dropped */
		{ "D:junk", "A", "1", "0", 1, 4, 1, 2 },	/* unreadable: dropped */
		{ NULL, "B", "0", "0", 0, 1, 0, 1 },	/* B gives everything back: field gone */
		{ NULL, "A", "9", "0", 5, 0, 5, 1 },	/* alone: the whole cap, no more */
		{ NULL, "B", "3", "0", 0, 5, 0, 2 },	/* nothing free: B kept as starved, 0 slots */
		{ NULL, "A", "9", "5", 5, 0, 3, 2 },	/* B starves: A may use ceil(5/2) = 3 but
							 * keeps its 5 in flight */
		{ NULL, "A", "9", "3", 3, 0, 3, 2 },	/* drained to 3: the rest is free */
		{ NULL, "B", "3", "0", 2, 3, 2, 2 },	/* B gets it */
	};
	struct event_base *base = event_base_new();
	struct gw_redis *r = client(base);
	char key[128], k[GW_REDIS_KEY_MAX];

	cr_assert(run_until_connected(base, r));
	if (!s.sha[0])
		gw_redis_script_init(&s);
	key_of(key, sizeof key, "script");
	cr_assert_geq(gw_redis_key(r, key, k, sizeof k), 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const char *argv[6] = { k, "5", rows[i].holder, rows[i].want, "3000", rows[i].keep };
		struct reply x;

		if (rows[i].inject) {
			char field[8];
			const char *colon = strchr(rows[i].inject, ':');
			const char *hset[4] = { "HSET", k, field, colon + 1 };

			snprintf(field, sizeof field, "%.*s", (int)(colon - rows[i].inject), rows[i].inject);
			cmd(base, r, 4, hset);
		}
		memset(&x, 0, sizeof x);
		cr_assert_eq(gw_redis_eval(r, &s, 1, 5, argv, NULL, on_reply, &x), GW_REDIS_OK);
		x = wait_reply(base, &x);
		cr_expect_eq(x.a, rows[i].granted, "row %zu: granted %lld", i, x.a);
		cr_expect_eq(x.b, rows[i].others, "row %zu: others %lld", i, x.b);
		cr_expect_eq(x.c, rows[i].use, "row %zu: use %lld", i, x.c);
		{
			const char *hlen[2] = { "HLEN", k };

			x = cmd(base, r, 2, hlen);
			cr_expect_eq(x.a, rows[i].fields, "row %zu: %lld holders", i, x.a);
		}
	}
	{
		const char *pttl[2] = { "PTTL", k };
		struct reply x = cmd(base, r, 2, pttl);

		cr_expect(x.a > 3000 && x.a <= 4000, "the hash expires after the leases: %lld", x.a);
	}
	gw_redis_free(r);
	event_base_free(base);
}

struct replica {
	struct gw_redis *r;
	struct gw_csem *c;
	struct gw_csem_entry *e;
	unsigned inflight, demand, usable;
	int shared;
	unsigned changes;
};

static void on_change(void *arg)
{
	struct replica *p = arg;

	p->changes++;
}

static void sync_one(struct replica *p, unsigned cap)
{
	p->shared = gw_csem_sync(p->c, p->e, cap, gw_csem_batch(cap, 2), p->inflight, p->demand,
				 gw_clock_now_us() / 1000, &p->usable) == GW_CSEM_SHARED;
}

/*
 * Two replicas, cap 6: both busy (demand 10 each) for a while, their usable slots never add up to
 * more than 6 and both get some (the fair share); then one idle (demand 0): within a few
 * renewals the busy one uses all 6.
 */
Test(csem, two_replicas_share_the_cap_and_idle_slots_come_back)
{
	const unsigned cap = 6;
	struct event_base *base = event_base_new();
	struct replica p[2];
	char key[128];
	unsigned most = 0, least_each[2] = { 0, 0 }, alone = 0, fair_at_end;
	int64_t end;

	key_of(key, sizeof key, "two");
	memset(p, 0, sizeof p);
	for (int i = 0; i < 2; i++) {
		p[i].r = client(base);
		cr_assert(run_until_connected(base, p[i].r));
		p[i].c = gw_csem_new(base, p[i].r, i ? "replica-b" : "replica-a");
		cr_assert_not_null(p[i].c);
		p[i].e = gw_csem_entry(p[i].c, key, on_change, NULL, &p[i]);
		cr_assert_not_null(p[i].e);
		p[i].demand = 10;
	}
	end = gw_clock_now_us() + 1200 * 1000;
	while (gw_clock_now_us() < end) {
		unsigned sum;

		sync_one(&p[0], cap);
		sync_one(&p[1], cap);
		sum = p[0].usable + p[1].usable;
		if (sum > most)
			most = sum;
		for (int i = 0; i < 2; i++)
			if (p[i].usable > least_each[i])
				least_each[i] = p[i].usable;
		cr_expect(p[0].shared && p[1].shared);
		run_for(base, 2);
	}
	fair_at_end = p[0].usable < p[1].usable ? p[0].usable : p[1].usable;
	cr_expect_leq(most, cap, "usable slots together %u", most);
	cr_expect_eq(most, cap, "the cap is used");
	/* Fair: the one that found the cap taken is not starved for long. */
	cr_expect_geq(least_each[0], 1);
	cr_expect_geq(least_each[1], 1);
	cr_expect_geq(fair_at_end, 1, "both hold slots at the end: %u", fair_at_end);

	p[1].demand = 0;	/* idle: its renewals give everything back */
	end = gw_clock_now_us() + 2000 * 1000;
	while (gw_clock_now_us() < end && alone < cap) {
		sync_one(&p[0], cap);
		sync_one(&p[1], cap);
		cr_expect_leq(p[0].usable + p[1].usable, cap);
		if (p[0].usable > alone)
			alone = p[0].usable;
		run_for(base, 5);
	}
	printf("csem two replicas, cap %u: most usable together %u (each up to %u, %u; at the end "
	       "the smaller %u); one busy "
	       "alone reached %u; requests %llu + %llu, short grants %llu + %llu, releases %llu + %llu\n",
	       cap, most, least_each[0], least_each[1], fair_at_end, alone,
	       (unsigned long long)gw_csem_stats(p[0].c)->requests,
	       (unsigned long long)gw_csem_stats(p[1].c)->requests,
	       (unsigned long long)gw_csem_stats(p[0].c)->short_grants,
	       (unsigned long long)gw_csem_stats(p[1].c)->short_grants,
	       (unsigned long long)gw_csem_stats(p[0].c)->releases,
	       (unsigned long long)gw_csem_stats(p[1].c)->releases);
	cr_expect_eq(alone, cap, "one busy replica uses the whole cap");
	cr_expect_eq(gw_csem_stats(p[0].c)->fallback + gw_csem_stats(p[1].c)->fallback, 0);
	cr_expect_gt(p[0].changes, 0, "answers call change_fn");
	for (int i = 0; i < 2; i++) {
		int inflight = 1;
		int64_t stop = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;

		while (inflight && gw_clock_now_us() < stop) {
			gw_csem_held(p[i].e, &inflight);
			run_for(base, 5);
		}
		gw_csem_free(p[i].c);
		gw_redis_free(p[i].r);
	}
	event_base_free(base);
}

/* Runs the loop until p's request to Redis is answered (bounded). */
static void wait_answer(struct event_base *base, struct replica *p)
{
	int inflight = 1;
	int64_t stop = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;

	while (gw_clock_now_us() < stop) {
		gw_csem_held(p->e, &inflight);
		if (!inflight)
			return;
		run_for(base, 1);
	}
	cr_assert_fail("no answer from Redis");
}

/*
 * A replica asks for more while it admits: the slots it may use meanwhile count as kept, so a
 * fair-share cut answered later never leaves it holding fewer slots than it then has in flight
 * (which would let the others take them: 7 in flight under a cap of 6). Cap 6, batch 1:
 *   A (demand 2) gets 3; B (demand 5) gets the other 3 and starves; C (demand 5) gets 0, starves.
 *   A, 2 in flight and a third caller (demand 3 = held), asks for 4 and admits the third while
 *   asking (usable 3). Two starve: A's fair share is 2, but it keeps its 3.
 *   C then finds nothing free.
 */
Test(csem, slots_admitted_while_asking_are_kept)
{
	const unsigned cap = 6;
	struct event_base *base = event_base_new();
	struct replica p[3];
	char key[128];

	key_of(key, sizeof key, "keep");
	memset(p, 0, sizeof p);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof name, "keep-%c", 'a' + i);
		p[i].r = client(base);
		cr_assert(run_until_connected(base, p[i].r));
		p[i].c = gw_csem_new(base, p[i].r, name);
		cr_assert_not_null(p[i].c);
		p[i].e = gw_csem_entry(p[i].c, key, on_change, NULL, &p[i]);
		cr_assert_not_null(p[i].e);
	}
	p[0].demand = 2;
	sync_one(&p[0], cap);
	wait_answer(base, &p[0]);
	sync_one(&p[0], cap);
	cr_assert_eq(p[0].usable, 3, "A alone: demand 2 + batch 1");
	p[0].inflight = 2;
	p[1].demand = p[2].demand = 5;
	sync_one(&p[1], cap);
	wait_answer(base, &p[1]);
	sync_one(&p[2], cap);
	wait_answer(base, &p[2]);
	cr_assert_eq(gw_csem_held(p[1].e, NULL), 3, "B gets what A left");
	cr_assert_eq(gw_csem_held(p[2].e, NULL), 0, "C finds nothing free");

	p[0].demand = 3;	/* a third caller: demand reaches the holding, A asks for 4 */
	sync_one(&p[0], cap);
	cr_assert_eq(p[0].usable, 3, "A may still use its 3 while it asks");
	p[0].inflight = 3;	/* and admits the third before the answer */
	wait_answer(base, &p[0]);
	sync_one(&p[0], cap);
	cr_expect_eq(p[0].usable, 2, "two starve: A's fair share is ceil(6 / 3) = 2");
	cr_expect_geq(gw_csem_held(p[0].e, NULL), p[0].inflight,
		      "A holds %u slots with %u in flight", gw_csem_held(p[0].e, NULL), p[0].inflight);

	/* C asks again once its short-grant hold is over: the cap is still taken. */
	run_for(base, GW_CSEM_SHORT_HOLD_MS + 10);
	sync_one(&p[2], cap);
	wait_answer(base, &p[2]);
	cr_expect_leq(p[0].inflight + gw_csem_held(p[1].e, NULL) + gw_csem_held(p[2].e, NULL), cap,
		      "A's %u in flight, B holds %u, C holds %u", p[0].inflight,
		      gw_csem_held(p[1].e, NULL), gw_csem_held(p[2].e, NULL));
	for (int i = 0; i < 3; i++) {
		gw_csem_free(p[i].c);
		gw_redis_free(p[i].r);
	}
	event_base_free(base);
}

/* ---- three replicas spending their slots on requests that take time ---- */

#define BUSY_REPLICAS 3
#define BUSY_REQS 64		/* requests one replica may have in flight (bound of the model) */
#define BUSY_QUEUE 12		/* callers one replica may have waiting (more are turned away) */
#define BUSY_ARRIVE 6		/* 1-8 callers arrive one tick in 6: demand swings around the cap */

struct busy {
	struct replica p;
	struct busy *all;	/* the BUSY_REPLICAS of the run, to add up what is in flight */
	struct event *tick;
	unsigned cap, queued, seed, served, most;
	int64_t ends_us[BUSY_REQS];	/* in flight until then */
};

static unsigned busy_inflight(void *arg)
{
	return ((struct busy *)arg)->p.inflight;
}

/* As the upstream guard: sync, then admit while in flight < usable; the cluster-wide figure is
 * taken after every admission. */
static void busy_admit(struct busy *b)
{
	for (;;) {
		unsigned sum = 0;

		b->p.demand = b->p.inflight + b->queued;
		b->p.shared = gw_csem_sync(b->p.c, b->p.e, b->cap, gw_csem_batch(b->cap, BUSY_REPLICAS),
					   b->p.inflight, b->p.demand, gw_clock_now_us() / 1000,
					   &b->p.usable) == GW_CSEM_SHARED;
		if (!b->p.shared || b->queued == 0 || b->p.inflight >= b->p.usable ||
		    b->p.inflight >= BUSY_REQS)
			return;
		b->queued--;
		b->ends_us[b->p.inflight++] = gw_clock_now_us() + 3000 + (int64_t)(rand_r(&b->seed) % 25000);
		for (int i = 0; i < BUSY_REPLICAS; i++)
			sum += b->all[i].p.inflight;
		if (sum > b->all[0].most)
			b->all[0].most = sum;
	}
}

static void busy_changed(void *arg)
{
	busy_admit(arg);
}

/* Every millisecond: requests due end (each end syncs, as gw_up_guard_release), a caller may
 * arrive (one tick in three on average), and whoever fits is admitted. */
static void busy_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct busy *b = arg;
	int64_t now = gw_clock_now_us();

	(void)fd;
	(void)what;
	for (unsigned k = 0; k < b->p.inflight;) {
		if (b->ends_us[k] <= now) {
			b->ends_us[k] = b->ends_us[--b->p.inflight];
			b->served++;
			busy_admit(b);
		} else {
			k++;
		}
	}
	if (rand_r(&b->seed) % BUSY_ARRIVE == 0)
		b->queued += 1 + (unsigned)rand_r(&b->seed) % 8;
	if (b->queued > BUSY_QUEUE)
		b->queued = BUSY_QUEUE;
	busy_admit(b);
}

/*
 * Three replicas, cap 6, callers arriving at random (more than the cap can serve, so the
 * replicas compete and the fair shares apply), requests lasting 3-28 ms: admissions happen
 * while a replica's renewal or growth is on its way to Redis, as in the gateway. The requests in
 * flight across the replicas, added up after every admission, never exceed the cap.
 */
Test(csem, requests_in_flight_across_replicas_never_exceed_the_cap)
{
	struct event_base *base = event_base_new();
	struct busy b[BUSY_REPLICAS];
	struct timeval ms = { 0, 1000 };
	char key[128];

	key_of(key, sizeof key, "busy");
	memset(b, 0, sizeof b);
	for (int i = 0; i < BUSY_REPLICAS; i++) {
		char name[32];

		snprintf(name, sizeof name, "busy-%d", i);
		b[i].all = b;
		b[i].cap = 6;
		b[i].seed = 7u + (unsigned)i;
		b[i].p.r = client(base);
		cr_assert(run_until_connected(base, b[i].p.r));
		b[i].p.c = gw_csem_new(base, b[i].p.r, name);
		cr_assert_not_null(b[i].p.c);
		b[i].p.e = gw_csem_entry(b[i].p.c, key, busy_changed, busy_inflight, &b[i]);
		cr_assert_not_null(b[i].p.e);
		b[i].tick = event_new(base, -1, EV_PERSIST, busy_on_tick, &b[i]);
		cr_assert_not_null(b[i].tick);
		cr_assert_eq(event_add(b[i].tick, &ms), 0);
	}
	run_for(base, 3000);
	for (int i = 0; i < BUSY_REPLICAS; i++)
		event_free(b[i].tick);
	printf("csem three busy replicas, cap %u: most in flight together %u; served %u, %u, %u; "
	       "short grants %llu + %llu + %llu, releases %llu + %llu + %llu\n",
	       b[0].cap, b[0].most, b[0].served, b[1].served, b[2].served,
	       (unsigned long long)gw_csem_stats(b[0].p.c)->short_grants,
	       (unsigned long long)gw_csem_stats(b[1].p.c)->short_grants,
	       (unsigned long long)gw_csem_stats(b[2].p.c)->short_grants,
	       (unsigned long long)gw_csem_stats(b[0].p.c)->releases,
	       (unsigned long long)gw_csem_stats(b[1].p.c)->releases,
	       (unsigned long long)gw_csem_stats(b[2].p.c)->releases);
	cr_expect_leq(b[0].most, b[0].cap, "in flight across the replicas: %u", b[0].most);
	cr_expect_eq(b[0].most, b[0].cap, "the cap is used");
	for (int i = 0; i < BUSY_REPLICAS; i++) {
		cr_expect_gt(b[i].served, 0, "replica %d served", i);
		cr_expect_eq(gw_csem_stats(b[i].p.c)->fallback, 0);
	}
	for (int i = 0; i < BUSY_REPLICAS; i++) {
		int inflight = 1;
		int64_t stop = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;

		while (inflight && gw_clock_now_us() < stop) {
			gw_csem_held(b[i].p.e, &inflight);
			run_for(base, 5);
		}
		gw_csem_free(b[i].p.c);
		gw_redis_free(b[i].p.r);
	}
	event_base_free(base);
}

Test(csem, server_killed_falls_back_then_shared_again)
{
	struct event_base *base = event_base_new();
	struct replica p;
	char key[128];
	const struct gw_redis_part_state *part;
	int64_t end;
	uint64_t fb;

	memset(&p, 0, sizeof p);
	key_of(key, sizeof key, "outage");
	p.r = client(base);
	cr_assert(run_until_connected(base, p.r));
	p.c = gw_csem_new(base, p.r, "replica-a");
	p.e = gw_csem_entry(p.c, key, on_change, NULL, &p);
	p.demand = 2;
	end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	do {
		sync_one(&p, 4);
		run_for(base, 5);
	} while (p.usable < 2 && gw_clock_now_us() < end);
	cr_expect_eq(p.usable, 3, "demand 2 + a batch of 1");
	part = gw_redis_part(p.r, GW_REDIS_PART_CONCURRENCY);
	cr_assert_not_null(part);
	cr_expect(part->used && !part->local);

	ctl("kill");
	end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	do {
		sync_one(&p, 4);
		run_for(base, 10);
	} while (p.shared && gw_clock_now_us() < end);
	cr_expect_eq(p.shared, 0);
	fb = gw_csem_stats(p.c)->fallback;
	cr_expect_geq(fb, 1);
	cr_expect(part->local, "the part shows local");
	cr_expect_geq(part->fallbacks, 1);
	for (int i = 0; i < 10; i++) {
		int64_t t = gw_clock_now_us();

		sync_one(&p, 4);
		cr_expect_eq(p.shared, 0);
		cr_expect_lt(gw_clock_now_us() - t, 10000, "a sync never waits");
	}
	cr_expect_eq(gw_csem_stats(p.c)->fallback, fb + 10);

	ctl("start");
	cr_assert(run_until_connected(base, p.r));
	cr_expect(!part->local, "the part shows shared again");
	end = gw_clock_now_us() + (int64_t)T_WAIT_MS * 1000;
	do {
		sync_one(&p, 4);
		run_for(base, 10);
	} while (!(p.shared && p.usable >= 2) && gw_clock_now_us() < end);
	cr_expect(p.shared && p.usable >= 2, "shared slots again: %u", p.usable);
	gw_csem_free(p.c);
	gw_redis_free(p.r);
	event_base_free(base);
}
