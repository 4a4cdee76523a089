/* Unit tests for gateway/svc/webhook_out.c: the jobevent listener called directly (as the job
 * follower will): rows written per subscribed endpoint of the job's tenant only, done(0) once
 * stored, nothing new for the same rid, done(-1) when the store refuses; the status adapter. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/state/store.h"
#include "gateway/svc/webhook_out.h"
#include "gateway/svc/webhook_out_int.h"

static const char yaml[] = "accounts:\n"
			   "  - name: sim\n"
			   "    base_url: http://127.0.0.1:8090\n"
			   "    client_id: cid\n"
			   "    client_secret_env: S\n"
			   "tenants:\n"
			   "  - name: a\n"
			   "    account: sim\n"
			   "  - name: b\n"
			   "    account: sim\n";

struct fx {
	struct gw_env env;
	struct gw_config *cfg;
	struct gw_webhook_out *w;
};

static void fx_open(struct fx *f, int read_only)
{
	struct gw_errors errs = { 0 };
	char err[256];
	void *state = NULL;

	memset(f, 0, sizeof *f);
	cr_assert_eq(gw_config_parse("t.yaml", yaml, strlen(yaml), &f->cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	f->env.cfg = f->env.boot_cfg = f->cfg;
	f->env.base = event_base_new();
	f->env.store = gw_store_open_mem(0, read_only);
	snprintf(f->env.instance, sizeof f->env.instance, "test-1");
	cr_assert(f->env.base && f->env.store);
	cr_assert_eq(gw_svc_webhook_out.init(&f->env, &state, err, sizeof err), 0, "%s", err);
	f->w = state;
}

static void fx_close(struct fx *f)
{
	gw_svc_webhook_out.free(f->w);
	gw_store_close(f->env.store);
	event_base_free(f->env.base);
	gw_config_free(f->cfg);
}

static void on_store(void *arg, const struct gw_store_res *r)
{
	*(int *)arg = r->rc;
}

static void add_hook(struct fx *f, const char *tenant, const char *id, int disabled)
{
	struct gw_hook h;
	struct gw_hook_req r = { .op = GW_HOOK_CREATE, .hook = &h };
	int rc = -9;

	memset(&h, 0, sizeof h);
	snprintf(h.tenant, sizeof h.tenant, "%s", tenant);
	snprintf(h.id, sizeof h.id, "%s", id);
	snprintf(h.url, sizeof h.url, "http://127.0.0.1:9/%s", id);
	snprintf(h.secret, sizeof h.secret, "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
	h.events = GW_HOOK_EV_JOB_COMPLETED;
	h.disabled = disabled;
	gw_store_hook(f->env.store, &r, on_store, &rc);
	cr_assert_eq(rc, 0);
}

/* Pending rows of tenant, as the store's depth answer says. */
static long f_depth_of;
static const char *f_depth_tenant;

static void on_depth(void *arg, const struct gw_store_res *r)
{
	(void)arg;
	f_depth_of = 0;
	for (long i = 0; r->rc == 0 && i < r->count; i++)
		if (strcmp(r->depths[i].tenant, f_depth_tenant) == 0)
			f_depth_of = r->depths[i].pending;
}

static long depth(struct fx *f, const char *tenant)
{
	struct gw_hook_req r = { .op = GW_OUTBOX_DEPTH };

	f_depth_tenant = tenant;
	gw_store_hook(f->env.store, &r, on_depth, NULL);
	return f_depth_of;
}

struct done_got {
	int n, rc;
};

static void on_done(void *arg, int rc)
{
	struct done_got *g = arg;

	g->n++;
	g->rc = rc;
}

static struct done_got offer(struct fx *f, const char *tenant, const char *rid, int state)
{
	Animate3d__V1__JobStatus st = ANIMATE3D__V1__JOB_STATUS__INIT;
	struct gw_jobevent ev = { .rid = rid, .tenant = tenant, .account = "sim", .state = state,
				  .status = &st, .final_at_ms = 0 };
	struct done_got g = { 0 };

	st.rid = (char *)rid;
	st.state = (Animate3d__V1__JobState)state;
	st.error_code = state == ANIMATE3D__V1__JOB_STATE__FAILURE ? 1301 : 0;
	st.error_message = (char *)"no person";
	gw_webhook_out_on_final(f->w, &ev, on_done, &g);
	return g;
}

/* tenant, rid -> done rc, rows of a and of b pending afterwards */
static const struct {
	const char *tenant, *rid;
	int state;
	int rc;
	long a, b;
} offers[] = {
	{ "a", "rid1", ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, 2, 0 },	/* a has 2 enabled hooks */
	{ "a", "rid1", ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, 2, 0 },	/* again: nothing new */
	{ "b", "rid2", ANIMATE3D__V1__JOB_STATE__FAILURE, 0, 2, 1 },
	{ "c", "rid3", ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, 2, 1 },	/* no endpoints */
	{ "a", "rid4", ANIMATE3D__V1__JOB_STATE__PROGRESS, -1, 2, 1 },	/* not a final */
};

Test(webhook_out, listener_writes_rows_for_the_jobs_tenant_only)
{
	struct fx f;

	fx_open(&f, 0);
	add_hook(&f, "a", "ep-a1", 0);
	add_hook(&f, "a", "ep-a2", 0);
	add_hook(&f, "a", "ep-a3", 1);	/* disabled: no rows */
	add_hook(&f, "b", "ep-b1", 0);
	for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
		struct done_got g = offer(&f, offers[i].tenant, offers[i].rid, offers[i].state);

		cr_expect_eq(g.n, 1, "case %zu: done ran %d times", i, g.n);
		cr_expect_eq(g.rc, offers[i].rc, "case %zu: rc %d", i, g.rc);
		long da = depth(&f, "a"), db = depth(&f, "b");

		cr_expect_eq(da, offers[i].a, "case %zu: a %ld", i, da);
		cr_expect_eq(db, offers[i].b, "case %zu: b %ld", i, db);
	}
	cr_expect_eq(f.w->cnt.rows, 3);
	cr_expect_eq(f.w->cnt.events, 5);
	fx_close(&f);
}

Test(webhook_out, listener_reports_a_store_failure)
{
	struct fx f;
	struct done_got g;

	fx_open(&f, 1);		/* read-only: every write refused */
	g = offer(&f, "a", "rid1", ANIMATE3D__V1__JOB_STATE__SUCCESS);
	cr_expect_eq(g.n, 1);
	cr_expect_eq(g.rc, -1);
	cr_expect_eq(f.w->cnt.store_failed, 1);
	fx_close(&f);
}
