/* Unit tests for the webhook subscriptions and outbox of gateway/state/store.c, store_inline.c,
 * store_sqlite.c and store_mem.c (issue 17): both in-process backends through one table of
 * operation -> expected rc and count; then what only the SQLite file does (rows survive a reopen). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/state/store.h"
#include "store_hook_steps.h"

struct got {
	int n, rc;
	long count;
	struct gw_hook hook;		/* first hook of GET / LIST */
	char rows[8][2][GW_STORE_ID_MAX + 1];	/* CLAIM: (endpoint, rid) */
	char row_url[GW_STORE_HOOK_URL_MAX + 1];
	long depth_a;			/* DEPTH: pending rows of tenant "a" */
};

static void t_done(void *arg, const struct gw_store_res *r)
{
	struct got *g = arg;

	g->n++;
	g->rc = r->rc;
	g->count = r->count;
	if (r->rc == 0 && r->hooks && r->count > 0)
		g->hook = r->hooks[0];
	for (long i = 0; r->rc == 0 && r->rows && i < r->count && i < 8; i++) {
		snprintf(g->rows[i][0], sizeof g->rows[i][0], "%s", r->rows[i].endpoint);
		snprintf(g->rows[i][1], sizeof g->rows[i][1], "%s", r->rows[i].rid);
		snprintf(g->row_url, sizeof g->row_url, "%s", r->rows[i].url);
	}
	for (long i = 0; r->rc == 0 && r->depths && i < r->count; i++)
		if (strcmp(r->depths[i].tenant, "a") == 0)
			g->depth_a = r->depths[i].pending;
}

static struct got t_run(struct gw_store *s, const struct gw_hook_req *req)
{
	struct got g;

	memset(&g, 0, sizeof g);
	gw_store_hook(s, req, t_done, &g);
	cr_assert_eq(g.n, 1, "done ran %d times before the call returned", g.n);
	return g;
}

static struct gw_hook t_hook(const char *tenant, const char *id, const char *url)
{
	struct gw_hook h;

	memset(&h, 0, sizeof h);
	snprintf(h.tenant, sizeof h.tenant, "%s", tenant);
	snprintf(h.id, sizeof h.id, "%s", id);
	snprintf(h.url, sizeof h.url, "%s", url);
	snprintf(h.secret, sizeof h.secret, "whsec_%s", id);
	h.events = GW_HOOK_EV_JOB_COMPLETED;
	h.created_ms = h.updated_ms = 1000;
	return h;
}

static void t_steps(struct gw_store *s)
{
	for (size_t i = 0; i < sizeof hook_steps / sizeof hook_steps[0]; i++) {
		const struct hook_step *st = &hook_steps[i];
		struct gw_hook h;
		struct gw_hook_req r = hook_step_req(st, &h);
		struct got g = t_run(s, &r);

		cr_expect_eq(g.rc, st->rc, "step %zu: rc %d, want %d", i, g.rc, st->rc);
		cr_expect_eq(g.count, st->count, "step %zu: count %ld, want %ld", i, g.count, st->count);
		if (st->op == GW_HOOK_GET && g.rc == 0) {
			cr_expect_str_eq(g.hook.url, "http://127.0.0.1:9/h");
			cr_expect_str_eq(g.hook.secret, "whsec_ep1");
		}
		if (st->op == GW_OUTBOX_CLAIM && g.count > 0)
			cr_expect_str_eq(g.row_url, "http://127.0.0.1:9/h", "step %zu: the hook's url", i);
		if (st->op == GW_OUTBOX_DEPTH && i == 12)
			cr_expect_eq(g.depth_a, 2, "step %zu", i);
	}
}

static void t_update_and_limits(struct gw_store *s)
{
	struct gw_hook h = t_hook("u", "x1", "https://8.8.8.8/a");
	struct gw_hook_req r = { .op = GW_HOOK_CREATE, .hook = &h };
	struct gw_hook_req get = { .op = GW_HOOK_GET, .tenant = "u", .id = "x1" };
	struct got g;
	char id[16];

	cr_assert_eq(t_run(s, &r).rc, 0);
	/* update without a secret keeps it; with one replaces it */
	snprintf(h.url, sizeof h.url, "https://8.8.4.4/b");
	h.secret[0] = '\0';
	h.disabled = 1;
	snprintf(h.reason, sizeof h.reason, "disabled by the tenant");
	r.op = GW_HOOK_UPDATE;
	cr_assert_eq(t_run(s, &r).rc, 0);
	g = t_run(s, &get);
	cr_expect_str_eq(g.hook.url, "https://8.8.4.4/b");
	cr_expect_str_eq(g.hook.secret, "whsec_x1");
	cr_expect_eq(g.hook.disabled, 1);
	cr_expect_str_eq(g.hook.reason, "disabled by the tenant");
	snprintf(h.secret, sizeof h.secret, "whsec_new");
	cr_assert_eq(t_run(s, &r).rc, 0);
	cr_expect_str_eq(t_run(s, &get).hook.secret, "whsec_new");
	snprintf(h.id, sizeof h.id, "nope");
	cr_expect_eq(t_run(s, &r).rc, GW_STORE_ABSENT);
	/* GW_STORE_HOOKS_MAX per tenant */
	r.op = GW_HOOK_CREATE;
	for (int i = 1; i < GW_STORE_HOOKS_MAX; i++) {
		snprintf(id, sizeof id, "x%d", i + 1);
		h = t_hook("u", id, "https://8.8.8.8/a");
		cr_assert_eq(t_run(s, &r).rc, 0, "hook %d", i);
	}
	h = t_hook("u", "one-more", "https://8.8.8.8/a");
	cr_expect_eq(t_run(s, &r).rc, GW_STORE_ERROR);
	cr_expect_eq(gw_store_stats(s)->rejected_full, 1);
	/* refused arguments: counted, never reach the backend */
	h = t_hook("u", "", "https://8.8.8.8/a");
	cr_expect_eq(t_run(s, &r).rc, GW_STORE_ERROR);
	h = t_hook("u", "y", "https://8.8.8.8/a");
	h.secret[0] = '\0';
	cr_expect_eq(t_run(s, &r).rc, GW_STORE_ERROR);
	r = (struct gw_hook_req){ .op = GW_OUTBOX_CLAIM, .lease = "r", .max = GW_OUTBOX_CLAIM_MAX + 1 };
	cr_expect_eq(t_run(s, &r).rc, GW_STORE_ERROR);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 3);
}

Test(store_hooks, memory_steps)
{
	struct gw_store *s = gw_store_open_mem(0, 0);

	cr_assert_not_null(s);
	t_steps(s);
	gw_store_close(s);
}

Test(store_hooks, memory_update_and_limits)
{
	struct gw_store *s = gw_store_open_mem(0, 0);

	t_update_and_limits(s);
	gw_store_close(s);
}

static char t_dir[64];

static const char *t_db(void)
{
	static char path[96];

	snprintf(t_dir, sizeof t_dir, "/tmp/a3d-hooks-XXXXXX");
	cr_assert_not_null(mkdtemp(t_dir));
	snprintf(path, sizeof path, "%s/state.db", t_dir);
	return path;
}

static void t_rm(const char *db)
{
	char p[128];

	unlink(db);
	snprintf(p, sizeof p, "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", db);
	unlink(p);
	rmdir(t_dir);
}

Test(store_hooks, sqlite_steps)
{
	const char *db = t_db();
	char err[GW_STORE_ERR_MAX];
	struct gw_store *s = gw_store_open(db, 0, err, sizeof err);

	cr_assert_not_null(s, "%s", err);
	t_steps(s);
	gw_store_close(s);
	t_rm(db);
}

Test(store_hooks, sqlite_update_and_limits)
{
	const char *db = t_db();
	char err[GW_STORE_ERR_MAX];
	struct gw_store *s = gw_store_open(db, 0, err, sizeof err);

	cr_assert_not_null(s, "%s", err);
	t_update_and_limits(s);
	gw_store_close(s);
	t_rm(db);
}

/* Pending rows and subscriptions survive a reopen (a restart after SIGKILL finds them). */
Test(store_hooks, sqlite_reopen_keeps_rows)
{
	const char *db = t_db();
	char err[GW_STORE_ERR_MAX];
	struct gw_store *s = gw_store_open(db, 0, err, sizeof err);
	struct gw_hook h = t_hook("a", "ep1", "http://127.0.0.1:9/h");
	struct gw_hook_req r = { .op = GW_HOOK_CREATE, .hook = &h };

	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(t_run(s, &r).rc, 0);
	r = (struct gw_hook_req){ .op = GW_OUTBOX_ADD, .tenant = "a", .rid = "rid1", .body = "{}",
				  .now_ms = 5 };
	cr_assert_eq(t_run(s, &r).count, 1);
	r = (struct gw_hook_req){ .op = GW_OUTBOX_CLAIM, .lease = "gone", .max = 4, .now_ms = 5,
				  .until_ms = 100 };
	cr_assert_eq(t_run(s, &r).count, 1);
	gw_store_close(s);
	s = gw_store_open(db, 0, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	r.lease = "again";
	r.now_ms = 101;
	r.until_ms = 2000;
	cr_expect_eq(t_run(s, &r).count, 1, "the dead holder's lease ran out");
	gw_store_close(s);
	t_rm(db);
}

static void on_put(void *arg, const struct gw_store_res *r)
{
	*(int *)arg = r->rc;
}

/* The upstream endpoints tenants made before issue 17: owner rows of kind GW_OBJ_ENDPOINT. */
static void t_legacy(struct gw_store *s)
{
	struct gw_hook_req r = { .op = GW_HOOK_LEGACY };
	int rc = -9;
	struct got g;

	g = t_run(s, &r);
	cr_expect_eq(g.rc, 0);
	cr_expect_eq(g.count, 0);
	gw_store_owner_put(s, GW_OBJ_ENDPOINT, "up-2", "b", 1, on_put, &rc);
	cr_assert_eq(rc, 0);
	gw_store_owner_put(s, GW_OBJ_ENDPOINT, "up-1", "a", 1, on_put, &rc);
	cr_assert_eq(rc, 0);
	gw_store_owner_put(s, GW_OBJ_JOB, "rid-1", "a", 1, on_put, &rc);
	cr_assert_eq(rc, 0);
	g = t_run(s, &r);
	cr_expect_eq(g.count, 2);
	cr_expect_str_eq(g.hook.tenant, "a", "by tenant, then id (memory: any order)");
	cr_expect(strcmp(g.hook.id, "up-1") == 0 || strcmp(g.hook.id, "up-2") == 0);
}

Test(store_hooks, memory_legacy)
{
	struct gw_store *s = gw_store_open_mem(0, 0);
	struct gw_hook_req r = { .op = GW_HOOK_LEGACY };
	int rc = -9;

	gw_store_owner_put(s, GW_OBJ_ENDPOINT, "up-1", "a", 1, on_put, &rc);
	cr_assert_eq(rc, 0);
	cr_expect_eq(t_run(s, &r).count, 1);
	gw_store_close(s);
}

Test(store_hooks, sqlite_legacy)
{
	const char *db = t_db();
	char err[GW_STORE_ERR_MAX];
	struct gw_store *s = gw_store_open(db, 0, err, sizeof err);

	cr_assert_not_null(s, "%s", err);
	t_legacy(s);
	gw_store_close(s);
	t_rm(db);
}
