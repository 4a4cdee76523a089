/*
 * Unit tests for gateway/state/store_pg.c against a real PostgreSQL (tests/lib/with-postgres),
 * through the backend's ops table (no front): owner and idempotency operations as tables of
 * steps -> expected answers, the migrations (repeat, race, newer schemas), an outage and the
 * recovery after it, the queue bound and start-up errors. The tests share one database: run
 * them one at a time (--jobs 1, as tests/CMakeLists.txt does).
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/state/pg.h"
#include "gateway/state/store.h"
#include "store_hook_steps.h"

#define T_LOOP_MS 15000		/* bound on any wait in these tests */
#define T_MAX_IDS GW_STORE_LOOKUP_MAX

struct got {
	int n;				/* times done() ran */
	int rc;
	char err[GW_STORE_ERR_MAX + 64];
	long retry_ms;
	long count;
	size_t nids;			/* owner_lookup: ids asked (set before the call) */
	char (*tenants)[GW_STORE_TENANT_MAX + 1];	/* owner_lookup: "" = NULL */
	int has_idem;
	struct gw_idem idem;
	char claimed[256];		/* job_claim: "rid,rid,..." */
};

static void on_done(void *arg, const struct gw_store_res *r)
{
	struct got *g = arg;

	g->n++;
	g->rc = r->rc;
	snprintf(g->err, sizeof g->err, "%s", r->err ? r->err : "");
	g->retry_ms = r->retry_ms;
	g->count = r->count;
	if (r->rc == 0 && g->tenants && r->tenants) {
		for (size_t i = 0; i < g->nids; i++)
			snprintf(g->tenants[i], sizeof g->tenants[i], "%s",
				 r->tenants[i] ? r->tenants[i] : "");
	}
	g->has_idem = r->idem != NULL;
	if (r->idem)
		g->idem = *r->idem;
	for (long i = 0; r->rc == 0 && r->jobs && i < r->count; i++) {
		strncat(g->claimed, i ? "," : "", sizeof g->claimed - strlen(g->claimed) - 1);
		strncat(g->claimed, r->jobs[i].rid, sizeof g->claimed - strlen(g->claimed) - 1);
	}
}

struct fx {
	struct event_base *base;
	void *impl;
	const struct gw_store_ops *ops;
};

static char g_password[128];

static void opts_of_env(struct gw_pg_opts *o, unsigned pool, long timeout_ms)
{
	const char *pwf = getenv("A3D_PG_PASSWORD_FILE");
	FILE *f;

	cr_assert_not_null(getenv("A3D_PG_PORT"), "run under tests/lib/with-postgres");
	f = fopen(pwf, "r");
	cr_assert_not_null(f, "%s", pwf);
	cr_assert_not_null(fgets(g_password, sizeof g_password, f));
	fclose(f);
	g_password[strcspn(g_password, "\r\n")] = '\0';
	memset(o, 0, sizeof *o);
	o->hostaddr = getenv("A3D_PG_HOST");
	o->port = (unsigned)atoi(getenv("A3D_PG_PORT"));
	o->dbname = getenv("A3D_PG_DB");
	o->user = getenv("A3D_PG_USER");
	o->password = g_password;
	o->sslmode = "disable";
	o->pool = pool;
	o->timeout_ms = timeout_ms;
}

static void fx_open(struct fx *f, unsigned pool, long timeout_ms)
{
	struct gw_pg_opts o;
	char err[GW_STORE_ERR_MAX];

	opts_of_env(&o, pool, timeout_ms);
	f->base = event_base_new();
	cr_assert_not_null(f->base);
	f->impl = gw_store_pg_backend_open(f->base, &o, &f->ops, err, sizeof err);
	cr_assert_not_null(f->impl, "%s", err);
	cr_assert_str_eq(f->ops->name, "postgres");
	cr_assert_eq(f->ops->shared, 1);
}

static void fx_close(struct fx *f)
{
	f->ops->close(f->impl);
	event_base_free(f->base);
}

/* Runs the loop until g has its answer (bounded); done() must run exactly once. */
static void fx_wait(struct fx *f, struct got *g)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;

	while (g->n < 1 && gw_clock_now_us() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
	cr_assert_eq(g->n, 1, "done() ran %d times", g->n);
}

static void run_for(struct event_base *base, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;
	struct timeval tv = { 0, 20000 };

	while (gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
}

/* A blocking side connection for set-up and checks. */
static PGconn *side_conn(void)
{
	struct gw_pg_opts o;
	char err[GW_STORE_ERR_MAX];
	PGconn *c;

	opts_of_env(&o, 1, 5000);
	c = gw_pg_connect_blocking(&o, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	return c;
}

static void side_exec(const char *sql)
{
	PGconn *c = side_conn();
	PGresult *r = PQexec(c, sql);

	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

/* The first column of the first row of sql, as text ("" for none). */
static void side_value(const char *sql, char *out, size_t cap)
{
	PGconn *c = side_conn();
	PGresult *r = PQexec(c, sql);

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	snprintf(out, cap, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
}

/* ---- owner ---- */

enum { PUT, LOOK, DEL };

Test(pg_store, owner_put_lookup_del_table)
{
	static const struct {
		int op, kind;
		const char *id, *tenant;
		int rc;
		const char *owner;	/* LOOK: expected tenant, "" = unrecorded */
	} rows[] = {
		{ PUT, GW_OBJ_JOB, "j1", "tA", 0, NULL },
		{ PUT, GW_OBJ_JOB, "j1", "tA", 0, NULL },			/* idempotent re-put */
		{ PUT, GW_OBJ_JOB, "j1", "tB", GW_STORE_CONFLICT, NULL },	/* never overwritten */
		{ LOOK, GW_OBJ_JOB, "j1", NULL, 0, "tA" },
		{ LOOK, GW_OBJ_MODEL, "j1", NULL, 0, "" },			/* kinds are apart */
		{ PUT, GW_OBJ_MODEL, "j1", "tB", 0, NULL },
		{ LOOK, GW_OBJ_MODEL, "j1", NULL, 0, "tB" },
		{ LOOK, GW_OBJ_JOB, "j1", NULL, 0, "tA" },
		{ DEL, GW_OBJ_JOB, "j1", NULL, 0, NULL },
		{ LOOK, GW_OBJ_JOB, "j1", NULL, 0, "" },
		{ DEL, GW_OBJ_JOB, "j1", NULL, 0, NULL },			/* absent: still 0 */
		{ PUT, GW_OBJ_JOB, "j1", "tB", 0, NULL },			/* free again */
		{ LOOK, GW_OBJ_JOB, "j1", NULL, 0, "tB" },
		{ PUT, GW_OBJ_ENDPOINT, "x'); DROP TABLE a3d_owner; --", "t'A", 0, NULL },
		{ LOOK, GW_OBJ_ENDPOINT, "x'); DROP TABLE a3d_owner; --", NULL, 0, "t'A" },
		{ PUT, GW_OBJ_UPLOAD, "u\"1\\", "t\\\"", 0, NULL },
		{ PUT, GW_OBJ_UPLOAD, "u\"1\\", "t\\\"", 0, NULL },
		{ LOOK, GW_OBJ_UPLOAD, "u\"1\\", NULL, 0, "t\\\"" },
		{ LOOK, GW_OBJ_JOB, "j1", NULL, 0, "tB" },			/* the table survived */
	};
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("TRUNCATE a3d_owner");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char tenants[1][GW_STORE_TENANT_MAX + 1];
		struct got g = { .nids = 1, .tenants = tenants };
		const char *ids[1] = { rows[i].id };

		if (rows[i].op == PUT)
			f.ops->owner_put(f.impl, rows[i].kind, rows[i].id, rows[i].tenant, 1000 + (int64_t)i,
					 on_done, &g);
		else if (rows[i].op == LOOK)
			f.ops->owner_lookup(f.impl, rows[i].kind, ids, 1, on_done, &g);
		else
			f.ops->owner_del(f.impl, rows[i].kind, rows[i].id, on_done, &g);
		cr_expect_eq(g.n, 0, "row %zu: done() never runs inside the call", i);
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, rows[i].rc, "row %zu: rc %d (%s)", i, g.rc, g.err);
		if (rows[i].owner)
			cr_expect_str_eq(tenants[0], rows[i].owner, "row %zu", i);
	}
	fx_close(&f);
}

/* The job follower's set: leases keep replicas apart until they run out; settled jobs are never
 * claimed again. */
Test(pg_store, job_claim_lease_settle_table)
{
	enum { J_PUT, J_CLAIM, J_RENEW, J_SETTLE };
	static const struct {
		int op;
		const char *arg;	/* PUT, SETTLE: rid; CLAIM, RENEW: lease */
		int64_t now, until;	/* CLAIM: now and lease end; RENEW: lease end */
		long max;
		const char *want;	/* CLAIM: rids; RENEW: count */
	} rows[] = {
		{ J_PUT, "jc", 0, 0, 0, NULL },
		{ J_PUT, "ja", 0, 0, 0, NULL },
		{ J_PUT, "jb", 0, 0, 0, NULL },
		{ J_CLAIM, "gw-1", 100, 1000, 2, "jc,ja" },	/* oldest first */
		{ J_CLAIM, "gw-2", 100, 1000, 5, "jb" },	/* gw-1's are leased */
		{ J_CLAIM, "gw-2", 900, 1900, 5, "" },		/* ... until 1000 */
		{ J_RENEW, "gw-1", 0, 2000, 0, "2" },
		{ J_CLAIM, "gw-2", 1500, 2500, 5, "" },	/* renewed to 2000 */
		{ J_SETTLE, "ja", 0, 0, 0, NULL },
		{ J_RENEW, "gw-1", 0, 2000, 0, "1" },
		{ J_CLAIM, "gw-2", 2100, 3100, 5, "jc" },	/* gw-1 is gone: taken over */
		{ J_CLAIM, "gw-1", 4000, 5000, 5, "jc,jb" },	/* every lease ran out */
		{ J_RENEW, "gw-1", 0, 0, 0, "2" },		/* released */
		{ J_CLAIM, "gw-3", 4001, 5001, 5, "jc,jb" },	/* at once */
		{ J_SETTLE, "jb", 0, 0, 0, NULL },
		{ J_SETTLE, "jc", 0, 0, 0, NULL },
		{ J_SETTLE, "jc", 0, 0, 0, NULL },		/* again: fine */
		{ J_CLAIM, "gw-4", 9000, 9999, 5, "" },
	};
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("TRUNCATE a3d_owner");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct got g = { 0 };
		char count[24];

		switch (rows[i].op) {
		case J_PUT:
			f.ops->owner_put(f.impl, GW_OBJ_JOB, rows[i].arg, "tA", 1000 + (int64_t)i, on_done, &g);
			break;
		case J_CLAIM:
			f.ops->job_claim(f.impl, rows[i].arg, rows[i].until, rows[i].now, (size_t)rows[i].max,
					 on_done, &g);
			break;
		case J_RENEW:
			f.ops->job_renew(f.impl, rows[i].arg, rows[i].until, on_done, &g);
			break;
		default:
			f.ops->job_settle(f.impl, rows[i].arg, 5000, on_done, &g);
			break;
		}
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, 0, "row %zu: rc %d (%s)", i, g.rc, g.err);
		if (rows[i].op == J_CLAIM)
			cr_expect_str_eq(g.claimed, rows[i].want, "row %zu", i);
		if (rows[i].op == J_RENEW) {
			snprintf(count, sizeof count, "%ld", g.count);
			cr_expect_str_eq(count, rows[i].want, "row %zu", i);
		}
	}
	fx_close(&f);
}

/* One lookup of GW_STORE_LOOKUP_MAX ids, with the characters an array literal must escape. */
Test(pg_store, owner_lookup_many_with_quotes)
{
	static const char *odd[] = {
		"a\"b", "a\\b", "\\", "\"", "\\\"", "a,b", "{x}", "NULL", "null", " spaced ", "",
		"\xc3\xa9t\xc3\xa9", "x'y", "a\"},{\"b",
	};
	enum { NODD = sizeof odd / sizeof odd[0] };
	static char idbuf[T_MAX_IDS][GW_STORE_ID_MAX + 1];
	static char want[T_MAX_IDS][GW_STORE_TENANT_MAX + 1];
	static char tenants[T_MAX_IDS][GW_STORE_TENANT_MAX + 1];
	const char *ids[T_MAX_IDS];
	struct fx f;
	struct got g = { .nids = T_MAX_IDS, .tenants = tenants };
	int puts = 0;

	fx_open(&f, 4, 5000);
	side_exec("TRUNCATE a3d_owner");
	for (int i = 0; i < T_MAX_IDS; i++) {
		if (i < NODD && odd[i][0])
			snprintf(idbuf[i], sizeof idbuf[i], "%s", odd[i]);
		else if (i == NODD)
			snprintf(idbuf[i], sizeof idbuf[i], "%s", odd[0]);	/* asked twice */
		else
			snprintf(idbuf[i], sizeof idbuf[i], "id-%d-\"\\", i);
		ids[i] = idbuf[i];
		/* the odd ones and every third other id are recorded */
		if ((i < NODD && odd[i][0]) || i % 3 == 0) {
			struct got p = { 0 };

			snprintf(want[i], sizeof want[i], "t%d", i % 5);
			f.ops->owner_put(f.impl, GW_OBJ_MODEL, ids[i], want[i], 1, on_done, &p);
			fx_wait(&f, &p);
			cr_assert_eq(p.rc, 0, "put %d: %s", i, p.err);
			puts++;
		} else if (i == NODD) {
			snprintf(want[i], sizeof want[i], "%s", want[0]);
		} else {
			want[i][0] = '\0';
		}
	}
	f.ops->owner_lookup(f.impl, GW_OBJ_MODEL, ids, T_MAX_IDS, on_done, &g);
	cr_expect_eq(g.n, 0);
	fx_wait(&f, &g);
	cr_assert_eq(g.rc, 0, "%s", g.err);
	for (int i = 0; i < T_MAX_IDS; i++)
		cr_expect_str_eq(tenants[i], want[i], "id %d \"%s\"", i, ids[i]);
	cr_expect_gt(puts, T_MAX_IDS / 3);
	fx_close(&f);
}

/* ---- idempotency ---- */

enum { BEGIN, TAKE, RENEW, FINISH, RELEASE, ABORT, COUNT, EXPIRE };

/* The entry idem_begin answers (rc 0), field by field; NULL fields are not checked. */
struct want_idem {
	int fp;				/* the fingerprint's fill byte */
	int done;
	const char *rid, *source;
	int64_t created_ms;
	const char *lease;
	int64_t lease_until_ms;
};

Test(pg_store, idem_table)
{
	static const char long_source[] = "https://example.test/a?b=c&d=%22e%22\\f'g\"h";
	/* automatic: the expected entries are compound literals */
	const struct {
		int op;
		const char *tenant, *key;
		int fp;				/* BEGIN: fill byte of the fingerprint */
		const char *source;
		int64_t now;			/* BEGIN: now_ms; EXPIRE: older_than_ms */
		const char *old_lease;
		int64_t old_until;
		const char *lease;		/* BEGIN, TAKE, RENEW */
		int64_t until;
		const char *rid;
		int rc;
		long count;			/* RENEW, COUNT, EXPIRE */
		const struct want_idem *want;	/* BEGIN rc 0 */
	} rows[] = {
		/* k1: inserted with its lease; again (another fingerprint): the stored entry */
		{ BEGIN, "tA", "k1", 0xa5, long_source, 1000, NULL, 0, "i1", 5000, NULL, GW_STORE_INSERTED, 0, NULL },
		{ BEGIN, "tA", "k1", 0x11, "other", 2000, NULL, 0, "i9", 9000, NULL, 0, 0,
		  &(struct want_idem){ 0xa5, 0, "", long_source, 1000, "i1", 5000 } },
		{ BEGIN, "tB", "k1", 0x00, "s", 1100, NULL, 0, "i2", 5100, NULL, GW_STORE_INSERTED, 0, NULL },
		{ BEGIN, "tB", "k1", 0x22, "s2", 2100, NULL, 0, "i3", 9100, NULL, 0, 0,
		  &(struct want_idem){ 0x00, 0, "", "s", 1100, "i2", 5100 } },
		/* take: once with the lease read, then the stale lease conflicts */
		{ TAKE, "tA", "k1", 0, NULL, 0, "i1", 5000, "i2", 7000, NULL, 0, 0, NULL },
		{ TAKE, "tA", "k1", 0, NULL, 0, "i1", 5000, "i3", 7000, NULL, GW_STORE_CONFLICT, 0, NULL },
		{ TAKE, "tA", "k1", 0, NULL, 0, "i2", 6999, "i3", 7000, NULL, GW_STORE_CONFLICT, 0, NULL },
		{ TAKE, "tA", "nope", 0, NULL, 0, "i1", 5000, "i3", 7000, NULL, GW_STORE_CONFLICT, 0, NULL },
		{ BEGIN, "tA", "k1", 0x33, "x", 3000, NULL, 0, "i5", 1, NULL, 0, 0,
		  &(struct want_idem){ 0xa5, 0, "", long_source, 1000, "i2", 7000 } },
		/* renew: every PENDING key of the lease holder */
		{ BEGIN, "tA", "k2", 0x02, "s", 1200, NULL, 0, "i2", 5200, NULL, GW_STORE_INSERTED, 0, NULL },
		{ RENEW, NULL, NULL, 0, NULL, 0, NULL, 0, "i2", 8000, NULL, 0, 3, NULL },
		{ BEGIN, "tA", "k2", 0x02, "s", 1, NULL, 0, "i9", 1, NULL, 0, 0,
		  &(struct want_idem){ 0x02, 0, "", "s", 1200, "i2", 8000 } },
		{ RENEW, NULL, NULL, 0, NULL, 0, NULL, 0, "nobody", 8000, NULL, 0, 0, NULL },
		/* finish: PENDING -> DONE; the same rid again is fine, another rid or no key is not */
		{ FINISH, "tA", "k1", 0, NULL, 0, NULL, 0, NULL, 0, "rid-1", 0, 0, NULL },
		{ FINISH, "tA", "k1", 0, NULL, 0, NULL, 0, NULL, 0, "rid-1", 0, 0, NULL },
		{ FINISH, "tA", "k1", 0, NULL, 0, NULL, 0, NULL, 0, "rid-2", GW_STORE_CONFLICT, 0, NULL },
		{ FINISH, "tA", "nope", 0, NULL, 0, NULL, 0, NULL, 0, "rid-1", GW_STORE_CONFLICT, 0, NULL },
		{ BEGIN, "tA", "k1", 0x44, "y", 4000, NULL, 0, "i7", 1, NULL, 0, 0,
		  &(struct want_idem){ 0xa5, 1, "rid-1", long_source, 1000, NULL, 0 } },
		{ TAKE, "tA", "k1", 0, NULL, 0, "", 0, "i3", 7000, NULL, GW_STORE_CONFLICT, 0, NULL },
		{ RENEW, NULL, NULL, 0, NULL, 0, NULL, 0, "i2", 9000, NULL, 0, 2, NULL },	/* not k1 */
		/* release: PENDING keeps PENDING with no lease; DONE and absent: nothing changes */
		{ RELEASE, "tA", "k2", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ BEGIN, "tA", "k2", 0x09, "z", 1, NULL, 0, "i9", 1, NULL, 0, 0,
		  &(struct want_idem){ 0x02, 0, "", "s", 1200, "", 0 } },
		{ TAKE, "tA", "k2", 0, NULL, 0, "", 0, "i4", 9500, NULL, 0, 0, NULL },	/* anyone now */
		{ RELEASE, "tA", "k1", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ RELEASE, "tA", "nope", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ BEGIN, "tA", "k1", 0x44, "y", 4000, NULL, 0, "i7", 1, NULL, 0, 0,
		  &(struct want_idem){ 0xa5, 1, "rid-1", long_source, 1000, NULL, 0 } },
		/* count: PENDING keys (tA/k2, tB/k1) */
		{ COUNT, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 2, NULL },
		/* abort: PENDING removed, DONE kept */
		{ ABORT, "tB", "k1", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ ABORT, "tA", "k1", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ ABORT, "tA", "nope", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ COUNT, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 1, NULL },
		{ BEGIN, "tA", "k1", 0x44, "y", 4000, NULL, 0, "i7", 1, NULL, 0, 0,
		  &(struct want_idem){ 0xa5, 1, "rid-1", long_source, 1000, NULL, 0 } },
		{ BEGIN, "tB", "k1", 0x55, "new", 1150, NULL, 0, "i8", 1, NULL, GW_STORE_INSERTED, 0, NULL },
		/* expire: created before the bound, DONE or not (k1: 1000, tB/k1: 1150, k2: 1200) */
		{ EXPIRE, NULL, NULL, 0, NULL, 1000, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
		{ EXPIRE, NULL, NULL, 0, NULL, 1151, NULL, 0, NULL, 0, NULL, 0, 2, NULL },
		{ COUNT, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 1, NULL },
		{ EXPIRE, NULL, NULL, 0, NULL, INT64_MAX, NULL, 0, NULL, 0, NULL, 0, 1, NULL },
		{ COUNT, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL },
	};
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("TRUNCATE a3d_idem");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct got g = { 0 };
		uint8_t fp[32];

		memset(fp, rows[i].fp, sizeof fp);
		switch (rows[i].op) {
		case BEGIN:
			f.ops->idem_begin(f.impl, rows[i].tenant, rows[i].key, fp, rows[i].source,
					  rows[i].now, rows[i].lease, rows[i].until, on_done, &g);
			break;
		case TAKE:
			f.ops->idem_take(f.impl, rows[i].tenant, rows[i].key, rows[i].old_lease,
					 rows[i].old_until, rows[i].lease, rows[i].until, on_done, &g);
			break;
		case RENEW:
			f.ops->idem_renew(f.impl, rows[i].lease, rows[i].until, on_done, &g);
			break;
		case FINISH:
			f.ops->idem_finish(f.impl, rows[i].tenant, rows[i].key, rows[i].rid, on_done, &g);
			break;
		case RELEASE:
			f.ops->idem_release(f.impl, rows[i].tenant, rows[i].key, on_done, &g);
			break;
		case ABORT:
			f.ops->idem_abort(f.impl, rows[i].tenant, rows[i].key, on_done, &g);
			break;
		case COUNT:
			f.ops->idem_count(f.impl, on_done, &g);
			break;
		case EXPIRE:
			f.ops->idem_expire(f.impl, rows[i].now, on_done, &g);
			break;
		}
		cr_expect_eq(g.n, 0, "row %zu: done() never runs inside the call", i);
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, rows[i].rc, "row %zu: rc %d (%s)", i, g.rc, g.err);
		if (rows[i].op == RENEW || rows[i].op == COUNT || rows[i].op == EXPIRE)
			cr_expect_eq(g.count, rows[i].count, "row %zu: count %ld", i, g.count);
		if (rows[i].op == BEGIN)
			cr_expect_eq(g.has_idem, g.rc == 0, "row %zu: an entry exactly with rc 0", i);
		if (rows[i].want && g.has_idem) {
			const struct want_idem *w = rows[i].want;
			uint8_t wfp[32];

			memset(wfp, w->fp, sizeof wfp);
			cr_expect_eq(memcmp(g.idem.fp, wfp, sizeof wfp), 0, "row %zu: fp", i);
			cr_expect_eq(g.idem.done, w->done, "row %zu: done", i);
			cr_expect_str_eq(g.idem.rid, w->rid, "row %zu: rid", i);
			cr_expect_str_eq(g.idem.source, w->source, "row %zu: source", i);
			cr_expect_eq(g.idem.created_ms, w->created_ms, "row %zu: created_ms", i);
			if (w->lease) {
				cr_expect_str_eq(g.idem.lease, w->lease, "row %zu: lease", i);
				cr_expect_eq(g.idem.lease_until_ms, w->lease_until_ms,
					     "row %zu: lease_until_ms %" PRId64, i, g.idem.lease_until_ms);
			}
		}
	}
	fx_close(&f);
}

/* Every byte value of a fingerprint, a source of the longest length, the widest timestamps. */
Test(pg_store, idem_round_trip_limits)
{
	static char source[GW_STORE_SOURCE_MAX + 1], lease[GW_STORE_LEASE_MAX + 1];
	struct fx f;
	struct got g = { 0 }, e = { 0 };
	uint8_t fp[32];

	for (int i = 0; i < 32; i++)
		fp[i] = (uint8_t)(i * 8 + (i & 7));	/* 0x00 .. 0xff, both nibbles vary */
	fp[31] = 0xff;
	memset(source, 's', GW_STORE_SOURCE_MAX);
	source[0] = '\\';
	memset(lease, 'l', GW_STORE_LEASE_MAX);
	fx_open(&f, 1, 5000);
	f.ops->idem_begin(f.impl, "tL", "kL", fp, source, INT64_MAX, lease, INT64_MIN, on_done, &g);
	fx_wait(&f, &g);
	cr_assert_eq(g.rc, GW_STORE_INSERTED, "%s", g.err);
	f.ops->idem_begin(f.impl, "tL", "kL", fp, "x", 0, "y", 0, on_done, &e);
	fx_wait(&f, &e);
	cr_assert_eq(e.rc, 0, "%s", e.err);
	cr_expect_eq(memcmp(e.idem.fp, fp, 32), 0);
	cr_expect_str_eq(e.idem.source, source);
	cr_expect_str_eq(e.idem.lease, lease);
	cr_expect_eq(e.idem.created_ms, INT64_MAX);
	cr_expect_eq(e.idem.lease_until_ms, INT64_MIN);
	side_exec("DELETE FROM a3d_idem WHERE tenant = 'tL'");
	fx_close(&f);
}

/* ---- migrations ---- */

static void open_expect(const char *want_err_fragment)
{
	struct gw_pg_opts o;
	struct event_base *base = event_base_new();
	const struct gw_store_ops *ops = NULL;
	char err[GW_STORE_ERR_MAX] = "";
	void *impl;

	opts_of_env(&o, 1, 5000);
	impl = gw_store_pg_backend_open(base, &o, &ops, err, sizeof err);
	if (want_err_fragment) {
		cr_expect_null(impl);
		cr_expect(strstr(err, want_err_fragment), "err \"%s\", wanted \"%s\"", err,
			  want_err_fragment);
		cr_expect_null(strstr(err, g_password), "never the password: %s", err);
		cr_expect_null(strchr(err, '\n'), "one line: %s", err);
	} else {
		cr_expect_not_null(impl, "%s", err);
	}
	if (impl)
		ops->close(impl);
	event_base_free(base);
}

Test(pg_store, migrations_apply_once)
{
	char first[64], again[64], rows[16];

	open_expect(NULL);
	side_value("SELECT applied_ms FROM a3d_schema WHERE version = 1", first, sizeof first);
	cr_assert_neq(first[0], '\0');
	open_expect(NULL);
	side_value("SELECT applied_ms FROM a3d_schema WHERE version = 1", again, sizeof again);
	side_value("SELECT count(*) FROM a3d_schema", rows, sizeof rows);
	cr_expect_str_eq(again, first, "the second open applied nothing");
	cr_expect_str_eq(rows, "5", "one row per migration");
}

/* Replicas starting together on an empty database: one migrates, every one starts. */
Test(pg_store, migrations_race)
{
	enum { N = 6 };
	pid_t kids[N];
	int go[2];
	char rows[16], tables[16];

	side_exec("DROP TABLE IF EXISTS a3d_owner, a3d_idem, a3d_hook, a3d_outbox, a3d_rest_sess,"
		  " a3d_usage, a3d_schema");
	side_exec("DROP FUNCTION IF EXISTS a3d_usage_reserve");
	cr_assert_eq(pipe(go), 0);
	for (int i = 0; i < N; i++) {
		kids[i] = fork();
		cr_assert_geq(kids[i], 0);
		if (kids[i] == 0) {
			struct gw_pg_opts o;
			struct event_base *base;
			const struct gw_store_ops *ops;
			char err[GW_STORE_ERR_MAX], c;
			void *impl;

			close(go[1]);
			(void)!read(go[0], &c, 1);	/* all start when the parent closes the pipe */
			opts_of_env(&o, 1, 5000);
			base = event_base_new();
			impl = gw_store_pg_backend_open(base, &o, &ops, err, sizeof err);
			if (!impl)
				fprintf(stderr, "child %d: %s\n", i, err);
			else
				ops->close(impl);
			event_base_free(base);
			_exit(impl ? 0 : 1);
		}
	}
	close(go[0]);
	usleep(50000);
	close(go[1]);
	for (int i = 0; i < N; i++) {
		int st = 0;

		cr_assert_eq(waitpid(kids[i], &st, 0), kids[i]);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "replica %d failed to start", i);
	}
	side_value("SELECT count(*) FROM a3d_schema", rows, sizeof rows);
	cr_expect_str_eq(rows, "5", "migrated once (all five migrations)");
	side_value("SELECT count(*) FROM pg_tables WHERE tablename IN ('a3d_owner', 'a3d_idem')",
		   tables, sizeof tables);
	cr_expect_str_eq(tables, "2");
}

Test(pg_store, migrations_newer_schema)
{
	char want[GW_STORE_ERR_MAX];

	open_expect(NULL);
	side_exec("INSERT INTO a3d_schema VALUES (999, 1, 999)");
	snprintf(want, sizeof want,
		 "PostgreSQL at %s:%s/%s has schema version 999, incompatible with this gateway (knows"
		 " up to 5); refusing to start", getenv("A3D_PG_HOST"), getenv("A3D_PG_PORT"),
		 getenv("A3D_PG_DB"));
	open_expect(want);
	/* A newer schema that says this build still runs on it (helm rollback): starts. */
	side_exec("UPDATE a3d_schema SET min_compatible = 1 WHERE version = 999");
	open_expect(NULL);
	side_exec("UPDATE a3d_schema SET min_compatible = 6 WHERE version = 999");
	open_expect("incompatible");
	side_exec("DELETE FROM a3d_schema WHERE version = 999");
	open_expect(NULL);
}

Test(pg_store, open_errors)
{
	struct gw_pg_opts o;
	struct event_base *base = event_base_new();
	const struct gw_store_ops *ops;
	char err[GW_STORE_ERR_MAX], where[96];
	void *impl;

	opts_of_env(&o, 1, 3000);
	snprintf(where, sizeof where, "%s:%u/%s", o.hostaddr, o.port, o.dbname);
	o.password = "wrong-password-xyz";
	impl = gw_store_pg_backend_open(base, &o, &ops, err, sizeof err);
	cr_expect_null(impl);
	cr_expect(strstr(err, where), "names host:port/db: %s", err);
	cr_expect_null(strstr(err, "wrong-password-xyz"), "never the password: %s", err);
	o.password = g_password;
	o.port = 1;
	impl = gw_store_pg_backend_open(base, &o, &ops, err, sizeof err);
	cr_expect_null(impl);
	cr_expect(strstr(err, "127.0.0.1:1/"), "%s", err);
	o.port = (unsigned)atoi(getenv("A3D_PG_PORT"));
	o.pool = 0;
	impl = gw_store_pg_backend_open(base, &o, &ops, err, sizeof err);
	cr_expect_null(impl, "the pool's options are checked too");
	cr_expect(strstr(err, where), "%s", err);
	event_base_free(base);
}

/* ---- failures ---- */

Test(pg_store, outage_and_recovery)
{
	const char *ctl = getenv("A3D_PG_CTL");
	char cmd[512];
	const char *why;
	struct fx f;
	struct got g = { 0 };
	int64_t end;

	cr_assert_not_null(ctl);
	fx_open(&f, 2, 1000);
	/* Starting: no connection before the loop ran, but none has failed either (the blocking
	 * connect at open just worked): calls wait for a connection, the store is not "down". */
	cr_expect_null(f.ops->unready(f.impl), "starting is not down");
	f.ops->owner_put(f.impl, GW_OBJ_JOB, "o1", "tA", 1, on_done, &g);
	fx_wait(&f, &g);
	cr_assert_eq(g.rc, 0, "%s", g.err);
	cr_expect_null(f.ops->unready(f.impl));
	cr_expect_gt(f.ops->pg_stats(f.impl)->queries, 0);

	snprintf(cmd, sizeof cmd, "%s stop", ctl);
	cr_assert_eq(system(cmd), 0);
	memset(&g, 0, sizeof g);
	f.ops->idem_count(f.impl, on_done, &g);
	fx_wait(&f, &g);
	cr_expect_eq(g.rc, GW_STORE_ERROR);
	cr_expect(strstr(g.err, "PostgreSQL at 127.0.0.1:"), "names the server: %s", g.err);
	cr_expect_null(strchr(g.err, '\n'));
	cr_expect_gt(g.retry_ms, 0);
	/* Every connection notices (bounded): then the store says why it is not ready. */
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	while (!f.ops->unready(f.impl) && gw_clock_now_us() < end)
		run_for(f.base, 50);
	why = f.ops->unready(f.impl);
	cr_expect_not_null(why);
	if (why)
		cr_expect(strstr(why, "unreachable"), "%s", why);
	memset(&g, 0, sizeof g);
	f.ops->owner_put(f.impl, GW_OBJ_JOB, "o2", "tA", 1, on_done, &g);
	fx_wait(&f, &g);
	cr_expect_eq(g.rc, GW_STORE_ERROR);
	cr_expect(strstr(g.err, "is unreachable"), "%s", g.err);
	cr_expect_geq(g.retry_ms, 1000);

	snprintf(cmd, sizeof cmd, "%s start", ctl);
	cr_assert_eq(system(cmd), 0);
	/* The same store recovers by itself: retried until the pool has reconnected (bounded). */
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	do {
		memset(&g, 0, sizeof g);
		f.ops->owner_put(f.impl, GW_OBJ_JOB, "o2", "tA", 1, on_done, &g);
		fx_wait(&f, &g);
		if (g.rc != 0)
			run_for(f.base, 200);
	} while (g.rc != 0 && gw_clock_now_us() < end);
	cr_expect_eq(g.rc, 0, "recovered: %s", g.err);
	cr_expect_null(f.ops->unready(f.impl));
	fx_close(&f);
}

/* More operations than the pool's queue takes: the refused ones answer inline, once, with why;
 * then every accepted one answers. Closing with operations in flight frees them (ASan). */
Test(pg_store, queue_full_and_close_in_flight)
{
	enum { N = GW_PG_MAX_QUEUE + 64 };
	static struct got g[N];
	struct fx f;
	int inline_errors = 0, answered = 0;
	int64_t end;

	fx_open(&f, 1, 10000);
	memset(g, 0, sizeof g);
	for (int i = 0; i < N; i++) {
		f.ops->idem_count(f.impl, on_done, &g[i]);
		if (g[i].n) {
			inline_errors++;
			cr_expect_eq(g[i].rc, GW_STORE_ERROR);
			cr_expect(strstr(g[i].err, "queue full"), "%s", g[i].err);
			cr_expect_gt(g[i].retry_ms, 0);
		}
	}
	cr_expect_eq(inline_errors, N - GW_PG_MAX_QUEUE, "the bound, exactly");
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	do {
		event_base_loop(f.base, EVLOOP_ONCE);
		answered = 0;
		for (int i = 0; i < N; i++)
			answered += g[i].n;
	} while (answered < N && gw_clock_now_us() < end);
	for (int i = 0; i < N; i++)
		cr_assert_eq(g[i].n, 1, "op %d answered %d times", i, g[i].n);
	for (int i = 0; i < 10; i++)
		f.ops->idem_count(f.impl, on_done, &g[i]);
	fx_close(&f);	/* dropped without done(), contexts freed */
	for (int i = 0; i < 10; i++)
		cr_expect_eq(g[i].n, 1);
}

/*
 * Many writers on the same rows at once (two stores standing for two replicas, several
 * connections each): per id exactly one tenant wins and every other put answers CONFLICT; per
 * key exactly one begin inserts and every other one reads the entry. No answer is an error,
 * including a put whose read ran on a snapshot older than the winner's commit.
 */
Test(pg_store, concurrent_writers)
{
	enum { IDS = 40, PER = 12, OPS = IDS * PER };
	static struct got put[OPS], beg[OPS];
	static char tenant_of[OPS][8];
	struct fx a, b;
	int64_t end;
	int answered;

	fx_open(&a, 8, 10000);
	fx_open(&b, 8, 10000);
	side_exec("TRUNCATE a3d_owner, a3d_idem");
	memset(put, 0, sizeof put);
	memset(beg, 0, sizeof beg);
	for (int i = 0; i < OPS; i++) {
		struct fx *f = (i & 1) ? &a : &b;
		char id[32];
		uint8_t fp[32];

		snprintf(id, sizeof id, "c%d", i / PER);
		snprintf(tenant_of[i], sizeof tenant_of[i], "t%d", i % 3);
		memset(fp, i % PER, sizeof fp);
		f->ops->owner_put(f->impl, GW_OBJ_JOB, id, tenant_of[i], 1, on_done, &put[i]);
		f->ops->idem_begin(f->impl, "tC", id, fp, tenant_of[i], 1, "i", 2, on_done, &beg[i]);
	}
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	do {
		event_base_loop(a.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		event_base_loop(b.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		answered = 0;
		for (int i = 0; i < OPS; i++)
			answered += put[i].n + beg[i].n;
	} while (answered < 2 * OPS && gw_clock_now_us() < end);
	for (int id = 0; id < IDS; id++) {
		const char *winner = NULL;
		int inserted = 0;
		uint8_t first_fp = 0;

		for (int j = 0; j < PER; j++) {
			int i = id * PER + j;

			cr_assert_eq(put[i].n, 1);
			cr_assert_eq(beg[i].n, 1);
			cr_expect(put[i].rc == 0 || put[i].rc == GW_STORE_CONFLICT, "put %d: %d %s", i,
				  put[i].rc, put[i].err);
			if (put[i].rc == 0) {
				if (!winner)
					winner = tenant_of[i];
				cr_expect_str_eq(tenant_of[i], winner, "id %d: two tenants own it", id);
			}
			cr_expect(beg[i].rc == GW_STORE_INSERTED || beg[i].rc == 0, "begin %d: %d %s", i,
				  beg[i].rc, beg[i].err);
			if (beg[i].rc == GW_STORE_INSERTED) {
				inserted++;
				first_fp = (uint8_t)(i % PER);
			}
		}
		cr_expect_not_null(winner, "id %d: nobody won", id);
		cr_expect_eq(inserted, 1, "id %d: %d inserts", id, inserted);
		for (int j = 0; j < PER; j++) {
			int i = id * PER + j;

			if (beg[i].rc == 0)
				cr_expect_eq(beg[i].idem.fp[0], first_fp, "begin %d read another entry", i);
		}
	}
	fx_close(&a);
	fx_close(&b);
}

/* Webhook subscriptions and outbox (issue 17): the steps every backend answers alike. */
static void on_hook_done(void *arg, const struct gw_store_res *r)
{
	struct got *g = arg;

	on_done(arg, r);
	if (r->rc == 0 && r->hooks && r->count > 0)
		g->has_idem = (int)strlen(r->hooks[0].secret);	/* GET: the secret came back */
}

Test(pg_store, hook_steps)
{
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("DELETE FROM a3d_outbox; DELETE FROM a3d_hook");
	for (size_t i = 0; i < sizeof hook_steps / sizeof hook_steps[0]; i++) {
		const struct hook_step *st = &hook_steps[i];
		struct gw_hook h;
		struct gw_hook_req r = hook_step_req(st, &h);
		struct got g = { 0 };

		f.ops->hook(f.impl, &r, on_hook_done, &g);
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, st->rc, "step %zu: rc %d, want %d (%s)", i, g.rc, st->rc, g.err);
		cr_expect_eq(g.count, st->count, "step %zu: count %ld, want %ld", i, g.count,
			     st->count);
		if (st->op == GW_HOOK_GET && g.rc == 0)
			cr_expect_eq(g.has_idem, (int)strlen("whsec_ep1"), "step %zu", i);
	}
	fx_close(&f);
}

Test(pg_store, hook_legacy_lists_upstream_endpoints)
{
	struct fx f;
	struct gw_hook_req r = { .op = GW_HOOK_LEGACY };
	struct got g = { 0 };

	fx_open(&f, 1, 5000);
	side_exec("DELETE FROM a3d_owner");
	side_exec("INSERT INTO a3d_owner VALUES (3, 'up-1', 'team-a', 1), (3, 'up-2', 'team-b', 1),"
		  " (1, 'rid-1', 'team-a', 1)");
	f.ops->hook(f.impl, &r, on_done, &g);
	fx_wait(&f, &g);
	cr_expect_eq(g.rc, 0, "%s", g.err);
	cr_expect_eq(g.count, 2);
	fx_close(&f);
}

/* ---- REST facade sessions (store.h): the backend's answers, as the in-process ones give them
 * (tests/unit/test_store.c), plus the tenant limit counted by the statement itself ---- */

static struct gw_sess pg_sess_seen;

static void on_sess_done(void *arg, const struct gw_store_res *r)
{
	struct got *g = arg;

	on_done(arg, r);
	g->has_idem = r->sess != NULL;	/* reused: "a session came back" */
	if (r->sess)
		pg_sess_seen = *r->sess;
}

Test(pg_store, sess_table)
{
	static const uint8_t tok[3][32] = { { 1 }, { 2 }, { 3 } }, key[2][32] = { { 0xa }, { 0xb } };
	static const struct {
		int op, tok, key;
		const char *tenant;
		int64_t now, expires;
		size_t max;
		int rc;
		long count;
		const char *found;
	} steps[] = {
		{ GW_SESS_PUT, 0, 0, "team-a", 1000, 2000, 0, 0, 0, NULL },
		{ GW_SESS_PUT, 0, 1, "team-b", 1000, 2000, 0, GW_STORE_CONFLICT, 0, NULL },
		{ GW_SESS_PUT, 1, 0, "team-a", 1000, 1500, 0, 0, 0, NULL },
		{ GW_SESS_PUT, 2, 1, "team-b", 1000, 9000, 0, 0, 0, NULL },
		{ GW_SESS_GET, 0, -1, NULL, 1999, 0, 0, 0, 0, "team-a" },
		{ GW_SESS_GET, 0, -1, NULL, 2000, 0, 0, GW_STORE_ABSENT, 0, NULL },
		{ GW_SESS_EXPIRE, -1, -1, NULL, 2500, 0, 1, 0, 1, NULL },
		{ GW_SESS_EXPIRE, -1, -1, NULL, 2500, 0, 1000, 0, 1, NULL },
		{ GW_SESS_EXPIRE, -1, -1, NULL, 2500, 0, 1000, 0, 0, NULL },
		{ GW_SESS_GET, 2, -1, NULL, 2500, 0, 0, 0, 0, "team-b" },
		{ GW_SESS_REVOKE, -1, 0, NULL, 0, 0, 0, 0, 0, NULL },
		{ GW_SESS_REVOKE, -1, 1, NULL, 0, 0, 0, 0, 1, NULL },
		{ GW_SESS_GET, 2, -1, NULL, 2500, 0, 0, GW_STORE_ABSENT, 0, NULL },
		{ GW_SESS_PUT, 0, 0, "team-a", 3000, 4000, 0, 0, 0, NULL },
		{ GW_SESS_DEL, 0, -1, NULL, 0, 0, 0, 0, 0, NULL },
		{ GW_SESS_DEL, 0, -1, NULL, 0, 0, 0, 0, 0, NULL },
		{ GW_SESS_GET, 0, -1, NULL, 3000, 0, 0, GW_STORE_ABSENT, 0, NULL },
		/* "full" has GW_STORE_SESS_TENANT_MAX unexpired rows (below): no more */
		{ GW_SESS_PUT, 1, 0, "full", 3000, 9000, 0, GW_STORE_FULL, 0, NULL },
		{ GW_SESS_PUT, 1, 0, "full", 6000, 9000, 0, 0, 0, NULL },	/* they expired at 5000 */
	};
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("DELETE FROM a3d_rest_sess");
	side_exec("INSERT INTO a3d_rest_sess SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), 'full',"
		  " decode(repeat('00', 32), 'hex'), 0, 5000 FROM generate_series(1, 10000) AS i");
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct gw_sess_req q = { .op = (enum gw_sess_op)steps[i].op };
		struct got g = { 0 };

		q.token_sha256 = steps[i].tok >= 0 ? tok[steps[i].tok] : NULL;
		q.key_sha256 = steps[i].key >= 0 ? key[steps[i].key] : NULL;
		q.tenant = steps[i].tenant;
		q.now_ms = steps[i].now;
		q.expires_ms = steps[i].expires;
		q.max = steps[i].max;
		memset(&pg_sess_seen, 0, sizeof pg_sess_seen);
		f.ops->sess(f.impl, &q, on_sess_done, &g);
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, steps[i].rc, "step %zu: rc %d (%s)", i, g.rc, g.err);
		if (steps[i].op == GW_SESS_REVOKE || steps[i].op == GW_SESS_EXPIRE)
			cr_expect_eq(g.count, steps[i].count, "step %zu: count %ld", i, g.count);
		cr_expect_eq(g.has_idem, steps[i].found != NULL, "step %zu", i);
		if (steps[i].found && g.has_idem) {
			cr_expect_str_eq(pg_sess_seen.tenant, steps[i].found, "step %zu", i);
			cr_expect_eq(memcmp(pg_sess_seen.key_sha256,
					    key[strcmp(steps[i].found, "team-a") == 0 ? 0 : 1], 32), 0,
				     "step %zu", i);
		}
	}
	side_exec("DELETE FROM a3d_rest_sess");
	fx_close(&f);
}

/* ---- the usage ledger (store.h): the backend's answers, as the in-process ones give them
 * (tests/unit/test_store.c), and the reservation's atomicity across two pools ---- */

static int64_t pg_usage_first;

static void on_usage_done(void *arg, const struct gw_store_res *r)
{
	on_done(arg, r);
	pg_usage_first = r->usage_sums && r->count > 0 ? r->usage_sums[0].seconds
			 : r->usage && r->count > 0	  ? r->usage[0].state
							  : -1;
}

Test(pg_store, usage_table)
{
	static const struct {
		int op;
		const char *id, *tenant, *rid;
		int64_t secs, limit, now;
		int ok, cf, rc;
		long count;
		int64_t first;
	} steps[] = {
		{ GW_USAGE_RESERVE, "u1", "team-a", NULL, 30, 60, 1000, 0, 0, 0, 1, 0 },
		{ GW_USAGE_RESERVE, "u2", "team-a", NULL, 30, 60, 1001, 0, 0, 0, 1, 30 },
		{ GW_USAGE_RESERVE, "u3", "team-a", NULL, 1, 60, 1002, 0, 0, GW_STORE_CONFLICT, 1, 60 },
		{ GW_USAGE_RESERVE, "u3", "team-b", NULL, 1, 60, 1002, 0, 0, 0, 1, 0 },
		{ GW_USAGE_RESERVE, "u1", "team-a", NULL, 0, -1, 1003, 0, 0, GW_STORE_CONFLICT, 1, 60 },
		{ GW_USAGE_START, "u1", NULL, "R1", 0, 0, 0, 0, 0, 0, 0, -1 },
		{ GW_USAGE_START, "u1", NULL, "R1", 0, 0, 0, 0, 0, GW_STORE_ABSENT, 0, -1 },
		{ GW_USAGE_RELEASE, "u2", NULL, NULL, 0, 0, 1005, 0, 0, 0, 1, -1 },
		{ GW_USAGE_RESERVE, "u4", "team-a", NULL, 30, 60, 1006, 0, 0, 0, 1, 30 },
		{ GW_USAGE_START, "u4", NULL, "R4", 0, 0, 0, 0, 0, 0, 0, -1 },
		{ GW_USAGE_SETTLE, NULL, NULL, "R1", 0, 0, 1007, 1, 0, 0, 1, -1 },
		{ GW_USAGE_SETTLE, NULL, NULL, "R1", 0, 0, 1008, 1, 0, 0, 0, -1 },
		{ GW_USAGE_SETTLE, NULL, NULL, "R4", 0, 0, 1009, 0, 0, 0, 1, -1 },
		{ GW_USAGE_SUM, NULL, "team-a", NULL, 0, 0, 1010, 0, 0, 0, 1, 30 },
		{ GW_USAGE_SUM, NULL, NULL, NULL, 0, 0, 1010, 0, 0, 0, 2, 30 },
		{ GW_USAGE_GET, NULL, "team-a", "R4", 0, 0, 0, 0, 0, 0, 1, GW_USAGE_FAILED },
		{ GW_USAGE_GET, NULL, "team-b", "R1", 0, 0, 0, 0, 0, GW_STORE_ABSENT, 0, -1 },
		{ GW_USAGE_CHARGED, NULL, NULL, NULL, 0, 0, 1010, 0, 0, 0, 1, 30 },
		{ GW_USAGE_RESERVE, "u6", "team-b", NULL, 60, 60, 1000 + 900000 + 2, 0, 0, 0, 1, 0 },
		{ GW_USAGE_LIST, "", NULL, NULL, 0, 0, 0, 0, 0, 0, 3, GW_USAGE_SUCCEEDED },
	};
	struct fx f;

	fx_open(&f, 2, 5000);
	side_exec("DELETE FROM a3d_usage");
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct gw_usage_row row = { .input_ms = -1, .persons = 1, .source = "url" };
		struct gw_usage_req q = { .op = (enum gw_usage_op)steps[i].op };
		struct got g = { 0 };

		snprintf(row.id, sizeof row.id, "%s", steps[i].id ? steps[i].id : "");
		snprintf(row.tenant, sizeof row.tenant, "%s", steps[i].tenant ? steps[i].tenant : "");
		row.seconds = steps[i].secs;
		row.started_ms = steps[i].now;
		q.row = &row;
		q.id = steps[i].id;
		q.rid = steps[i].rid;
		q.tenant = steps[i].tenant;
		q.ok = steps[i].ok;
		q.count_failed = steps[i].cf;
		q.limit_s = steps[i].limit;
		q.now_ms = steps[i].now;
		q.to_ms = INT64_C(1) << 50;
		q.after = steps[i].id;
		q.max = 3;
		f.ops->usage(f.impl, &q, on_usage_done, &g);
		fx_wait(&f, &g);
		cr_expect_eq(g.rc, steps[i].rc, "step %zu: rc %d (%s)", i, g.rc, g.err);
		if (steps[i].op != GW_USAGE_START)
			cr_expect_eq(g.count, steps[i].count, "step %zu: count %ld", i, g.count);
		cr_expect_eq(pg_usage_first, steps[i].first, "step %zu: first %lld", i,
			     (long long)pg_usage_first);
	}
	side_exec("DELETE FROM a3d_usage");
	fx_close(&f);
}

/* 20 reservations of 10 s at once against a 60 s budget, through two pools (two replicas):
 * exactly 6 pass, whatever the interleaving. */
Test(pg_store, usage_reserve_never_overspends)
{
	enum { N = 20 };
	struct fx f[2];
	struct got g[N];
	struct gw_usage_row row[N];
	int64_t end;
	int answered = 0, inserted = 0;
	char used[32];

	fx_open(&f[0], 4, 5000);
	fx_open(&f[1], 4, 5000);
	side_exec("DELETE FROM a3d_usage");
	memset(g, 0, sizeof g);
	for (int i = 0; i < N; i++) {
		struct gw_usage_req q = { .op = GW_USAGE_RESERVE, .row = &row[i], .limit_s = 60 };

		memset(&row[i], 0, sizeof row[i]);
		snprintf(row[i].id, sizeof row[i].id, "race-%d", i);
		snprintf(row[i].tenant, sizeof row[i].tenant, "team-b");
		snprintf(row[i].source, sizeof row[i].source, "url");
		row[i].seconds = 10;
		row[i].input_ms = 10000;
		row[i].started_ms = 5000 + i;
		f[i % 2].ops->usage(f[i % 2].impl, &q, on_done, &g[i]);
	}
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	while (answered < N && gw_clock_now_us() < end) {
		event_base_loop(f[0].base, EVLOOP_NONBLOCK);
		event_base_loop(f[1].base, EVLOOP_NONBLOCK);
		answered = 0;
		for (int i = 0; i < N; i++)
			answered += g[i].n;
		usleep(1000);
	}
	cr_assert_eq(answered, N);
	for (int i = 0; i < N; i++) {
		cr_expect(g[i].rc == 0 || g[i].rc == GW_STORE_CONFLICT, "%d: %d %s", i, g[i].rc, g[i].err);
		inserted += g[i].rc == 0;
	}
	cr_expect_eq(inserted, 6);
	side_value("SELECT sum(counted) FROM a3d_usage WHERE tenant = 'team-b'", used, sizeof used);
	cr_expect_str_eq(used, "60");
	side_exec("DELETE FROM a3d_usage");
	fx_close(&f[0]);
	fx_close(&f[1]);
}

/* GW_USAGE_REFOLLOW unsettles a settled job row (a multi-person run reuses its detection's rid). */
Test(pg_store, usage_refollow)
{
	struct fx f;
	struct gw_usage_req q = { .op = GW_USAGE_REFOLLOW, .rid = "mp-rid" };
	struct got g = { 0 };
	char settled[32];

	fx_open(&f, 1, 5000);
	side_exec("DELETE FROM a3d_owner WHERE id = 'mp-rid'");
	side_exec("INSERT INTO a3d_owner (kind, id, tenant, created_ms, settled_ms) VALUES"
		  " (1, 'mp-rid', 'team-a', 1, 2)");
	f.ops->usage(f.impl, &q, on_done, &g);
	fx_wait(&f, &g);
	cr_expect_eq(g.rc, 0, "%s", g.err);
	cr_expect_eq(g.count, 1);
	side_value("SELECT settled_ms FROM a3d_owner WHERE id = 'mp-rid'", settled, sizeof settled);
	cr_expect_str_eq(settled, "0");
	memset(&g, 0, sizeof g);
	f.ops->usage(f.impl, &q, on_done, &g);
	fx_wait(&f, &g);
	cr_expect_eq(g.count, 0);
	side_exec("DELETE FROM a3d_owner WHERE id = 'mp-rid'");
	fx_close(&f);
}
