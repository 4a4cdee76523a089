/* Unit tests for gateway/svc/follower.c: its pure parts (the polling pace, the retry backoff, the
 * polling token bucket, the tick, the outcome metric's error label, the source names). */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/svc/follower.h"

#define S 1000LL
#define MIN (60 * S)

Test(follower, poll_delay_table)
{
	static const struct {
		int64_t interval, max, quiet;
		int webhooks;
		int64_t age;
		int64_t want;
	} cases[] = {
		/* no webhooks: the first poll one interval after the start */
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 0, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 4 * S, 6 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, -5 * S, 10 * S },	/* clock step: as new */
		/* then age / 8 within [interval, max] */
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 10 * S, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 80 * S, 10 * S },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 16 * MIN, 2 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 40 * MIN, 5 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 0, 6 * 60 * MIN, 5 * MIN },
		/* webhooks configured: nothing before the job has been quiet for quiet_ms */
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 0, 10 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 9 * MIN, 1 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 16 * MIN, 2 * MIN },
		{ 10 * S, 5 * MIN, 10 * MIN, 1, 60 * MIN, 5 * MIN },
		/* interval == max: a fixed period */
		{ 300, 300, 600000, 0, 50 * S, 300 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_follower_pace p = { cases[i].interval, cases[i].max, cases[i].quiet,
					      cases[i].webhooks };

		cr_expect_eq(gw_follower_poll_delay(&p, cases[i].age), cases[i].want, "case %zu: %lld", i,
			     (long long)gw_follower_poll_delay(&p, cases[i].age));
	}
}

Test(follower, retry_delay_doubles_to_its_cap)
{
	static const struct {
		unsigned attempt;
		int64_t want;
	} cases[] = {
		{ 0, GW_FOLLOWER_RETRY_MIN_MS }, { 1, GW_FOLLOWER_RETRY_MIN_MS },
		{ 2, 2 * GW_FOLLOWER_RETRY_MIN_MS }, { 5, 16 * GW_FOLLOWER_RETRY_MIN_MS },
		{ 10, 512 * GW_FOLLOWER_RETRY_MIN_MS }, { 11, GW_FOLLOWER_RETRY_MAX_MS },
		{ 1000, GW_FOLLOWER_RETRY_MAX_MS }, { 4000000000u, GW_FOLLOWER_RETRY_MAX_MS },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_follower_retry_delay(cases[i].attempt), cases[i].want, "case %zu", i);
}

Test(follower, refill_table)
{
	static const struct {
		double tokens, rate;
		int64_t dt;
		double want;
	} cases[] = {
		{ 0, 20, 100, 2 },	/* 20/s for 100 ms */
		{ 0, 20, 5000, 20 },	/* capped at one second's worth */
		{ 19.5, 20, 100, 20 },
		{ 0, 0.5, 1000, 0.5 },	/* slow rates still reach one token: cap is 1 */
		{ 0.5, 0.5, 5000, 1 },
		{ 3, 20, 0, 3 },
		{ 3, 20, -50, 3 },	/* the clock never runs back, but if it did: nothing */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_float_eq(gw_follower_refill(cases[i].tokens, cases[i].rate, cases[i].dt),
				   cases[i].want, 1e-9, "case %zu", i);
}

Test(follower, tick_table)
{
	static const struct {
		int64_t interval, want;
	} cases[] = {
		{ 100, GW_FOLLOWER_TICK_MIN_MS }, { 300, 75 }, { 2000, 500 }, { 10000, GW_FOLLOWER_TICK_MAX_MS },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_follower_tick_ms(cases[i].interval), cases[i].want, "case %zu", i);
}

Test(follower, error_label_and_source_names)
{
	static const struct {
		int state, code;
		const char *want;
	} cases[] = {
		{ ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, "" },
		{ ANIMATE3D__V1__JOB_STATE__SUCCESS, 513, "" },	/* a success has no error */
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 513, "513" },
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 0, "0" },
		{ ANIMATE3D__V1__JOB_STATE__FAILURE, 1399, "1399" },
	};
	char out[16];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_follower_error_label(cases[i].state, cases[i].code, out);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_WEBHOOK), "webhook");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_POLL), "poll");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_PEER), "peer");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_SRC_FOLLOWER), "follower");
	cr_expect_str_eq(gw_follower_source_name(GW_FOLLOWER_NSRC), "unknown");
	cr_expect_str_eq(gw_follower_source_name(-1), "unknown");
}

/* ---- delivery through the real service: memory store, status cache, listeners ---- */

#include <stdlib.h>
#include <event2/event.h>

#include "gateway/api/cache.h"
#include "gateway/base/clock.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/state/store.h"
#include "gateway/svc/status.h"

#define HEX_A "0000000000000000000000000000000000000000000000000000000000000001"
static const char follower_yaml[] =
	"follower:\n"
	"  poll_interval_ms: 100\n"
	"  max_poll_interval_ms: 100\n"
	"  scan_interval_ms: 100\n"
	"accounts:\n"
	"  - name: sim\n"
	"    base_url: http://127.0.0.1:9/\n"
	"    client_id: cid\n"
	"    client_secret_env: A3D_TEST_SECRET\n"
	"tenants:\n"
	"  - name: team-a\n"
	"    account: sim\n"
	"    keys:\n"
	"      - sha256: " HEX_A "\n"
	"        permissions: [read, write]\n";

#define T_PENDING_MAX 8

struct t_listeners {
	int flaky_fails;		/* done(-1) this many times for "j1" first */
	int flaky_calls[2], async_calls[2];	/* per rid j1, j2 */
	int other_rid;			/* an event for a rid we never put */
	int async_bad_state;		/* state or tenant not what the store and cache say */
	gw_jobevent_done_fn pending[T_PENDING_MAX];
	void *pending_arg[T_PENDING_MAX];
	int npending;
};

static int t_rid_idx(const char *rid)
{
	return strcmp(rid, "j1") == 0 ? 0 : strcmp(rid, "j2") == 0 ? 1 : -1;
}

static void t_flaky(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done, void *done_arg)
{
	struct t_listeners *l = arg;
	int i = t_rid_idx(ev->rid);

	if (i < 0) {
		l->other_rid++;
		done(done_arg, 0);
		return;
	}
	l->flaky_calls[i]++;
	done(done_arg, i == 0 && l->flaky_calls[0] <= l->flaky_fails ? -1 : 0);
}

/* Answers later, from the test's loop: the follower must wait for it. */
static void t_async(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done, void *done_arg)
{
	struct t_listeners *l = arg;
	int i = t_rid_idx(ev->rid);

	if (i < 0 || l->npending >= T_PENDING_MAX) {
		l->other_rid++;
		done(done_arg, 0);
		return;
	}
	l->async_calls[i]++;
	if (strcmp(ev->tenant, "team-a") != 0 || ev->final_at_ms <= 0 || !ev->status ||
	    strcmp(ev->status->rid, ev->rid) != 0 ||
	    ev->state != (i == 0 ? ANIMATE3D__V1__JOB_STATE__SUCCESS : ANIMATE3D__V1__JOB_STATE__FAILURE) ||
	    (i == 1 && ev->status->error_code != 513))
		l->async_bad_state++;
	l->pending[l->npending] = done;
	l->pending_arg[l->npending++] = done_arg;
}

static void t_claim_rids(void *arg, const struct gw_store_res *r)
{
	char *out = arg;

	out[0] = '\0';
	for (long i = 0; r->rc == 0 && i < r->count; i++) {
		strcat(out, i ? "," : "");
		strcat(out, r->jobs[i].rid);
	}
}

static void t_run(struct event_base *base, int64_t ms, int (*until)(struct t_listeners *),
		  struct t_listeners *l)
{
	int64_t end = gw_clock_now_us() + ms * 1000;
	struct timeval tv = { 0, 10000 };

	while (gw_clock_now_us() < end && !(until && until(l)))
		event_base_loopexit(base, &tv), event_base_dispatch(base);
}

static int t_flaky_succeeded(struct t_listeners *l)
{
	return l->flaky_calls[0] > l->flaky_fails && l->flaky_calls[1] >= 1 && l->npending >= 2;
}

static void t_put_final(struct gw_cache *c, const char *rid, int state, int code)
{
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT;

	st.rid = (char *)rid;
	st.state = state;
	st.error_code = code;
	cr_assert_eq(gw_cache_put(c, 0, &st, 1, gw_clock_now_us() / 1000), 1);
}

/* A listener that fails is offered the event again (backoff) while the one that succeeded is not
 * called again; the job is settled only once every listener said done(0), asynchronously too. */
Test(follower, delivers_retries_and_settles_after_every_listener)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	struct gw_env env = { 0 };
	struct gw_svc_rt svcs[2] = { { &gw_svc_status, NULL }, { &gw_svc_follower, NULL } };
	struct t_listeners l = { .flaky_fails = 2 };
	struct gw_store_res dummy;
	char err[256], claimed[256];
	int64_t wall = gw_clock_wall_ms();

	(void)dummy;
	setenv("A3D_TEST_SECRET", "s", 1);
	cr_assert_eq(gw_config_parse("f.yaml", follower_yaml, strlen(follower_yaml), &cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	env.base = event_base_new();
	env.cfg = env.boot_cfg = cfg;
	env.naccounts = 1;
	env.store = gw_store_open_mem(0, 0);
	snprintf(env.instance, sizeof env.instance, "test-gw");
	env.svcs = svcs;
	env.nsvcs = 2;
	cr_assert_not_null(env.store);
	gw_store_owner_put(env.store, GW_OBJ_JOB, "j1", "team-a", wall - 5000, t_claim_rids, claimed);
	gw_store_owner_put(env.store, GW_OBJ_JOB, "j2", "team-a", wall - 4000, t_claim_rids, claimed);
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(svcs[i].desc->init(&env, &svcs[i].state, err, sizeof err), 0, "%s", err);
	cr_assert_eq(gw_jobevent_listen(gw_jobevents_of(&env), "flaky", t_flaky, &l), 0);
	cr_assert_eq(gw_jobevent_listen(gw_jobevents_of(&env), "async", t_async, &l), 0);
	/* The finals are in the status cache (as a caller's poll would leave them): the follower's
	 * polls find them there, no upstream request is made. */
	t_put_final(gw_status_ctx_cache(svcs[0].state), "j1", ANIMATE3D__V1__JOB_STATE__SUCCESS, 0);
	t_put_final(gw_status_ctx_cache(svcs[0].state), "j2", ANIMATE3D__V1__JOB_STATE__FAILURE, 513);
	gw_svc_follower.start(svcs[1].state);

	t_run(env.base, 10000, t_flaky_succeeded, &l);
	cr_assert(t_flaky_succeeded(&l), "flaky %d/%d, async pending %d", l.flaky_calls[0],
		  l.flaky_calls[1], l.npending);
	cr_expect_eq(l.flaky_calls[0], 3, "two failures, then the success");
	cr_expect_eq(l.flaky_calls[1], 1);
	cr_expect_eq(l.async_calls[0], 1, "a listener that answered is not called again");
	cr_expect_eq(l.async_calls[1], 1);
	cr_expect_eq(l.async_bad_state, 0);
	/* async has not answered: nothing is settled (another claimer still finds both) */
	gw_store_job_claim(env.store, "probe-1", wall + 60000, wall, 10, t_claim_rids, claimed);
	cr_expect_str_eq(claimed, "j1,j2");
	for (int i = 0; i < l.npending; i++)
		l.pending[i](l.pending_arg[i], 0);
	t_run(env.base, 300, NULL, &l);
	gw_store_job_claim(env.store, "probe-2", wall + 60000, wall, 10, t_claim_rids, claimed);
	cr_expect_str_eq(claimed, "", "settled once every listener answered");
	cr_expect_eq(l.flaky_calls[0], 3);
	cr_expect_eq(l.async_calls[0], 1);
	cr_expect_eq(l.other_rid, 0);

	for (size_t i = 2; i-- > 0;)
		svcs[i].desc->free(svcs[i].state);
	gw_store_close(env.store);
	event_base_free(env.base);
	gw_config_free(cfg);
}

/* Listeners past GW_JOBEVENT_MAX_LISTENERS are refused (the follower's own outcome listener
 * takes one place). */
Test(follower, listener_table_is_bounded)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	struct gw_env env = { 0 };
	struct gw_svc_rt svcs[1] = { { &gw_svc_follower, NULL } };
	struct t_listeners l = { 0 };
	char err[256];
	int ok = 0;

	setenv("A3D_TEST_SECRET", "s", 1);
	cr_assert_eq(gw_config_parse("f.yaml", follower_yaml, strlen(follower_yaml), &cfg, &errs), 0);
	env.cfg = env.boot_cfg = cfg;
	env.svcs = svcs;
	env.nsvcs = 1;
	/* no store, no status service: the follower is off, listeners still register */
	cr_assert_eq(gw_svc_follower.init(&env, &svcs[0].state, err, sizeof err), 0, "%s", err);
	for (int i = 0; i < GW_JOBEVENT_MAX_LISTENERS + 2; i++)
		ok += gw_jobevent_listen(gw_jobevents_of(&env), "x", t_flaky, &l) == 0;
	cr_expect_eq(ok, GW_JOBEVENT_MAX_LISTENERS - 1);
	cr_expect_eq(gw_jobevent_listen(NULL, "x", t_flaky, &l), -1);
	gw_svc_follower.free(svcs[0].state);
	gw_config_free(cfg);
}
