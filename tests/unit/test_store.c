/* Unit tests for gateway/state/store.c, store_inline.c, store_sqlite.c and store_mem.c: both
 * in-process backends through the same tables, then what only the SQLite file does (reopen, crash,
 * corrupt, unwritable, read-only), the owner cache, and the leases only the memory backend keeps. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "gateway/state/store.h"

/* ---- synchronous shims: the in-process backends complete inline (store.h), so every shim
 * asserts that done ran exactly once before the call returned, then answers with its rc ---- */

#define T_IDS 16	/* answers of one lookup kept for the tables */

struct got {
	int n;				/* times done() ran */
	int rc;
	char err[GW_STORE_ERR_MAX + 64];
	long retry_ms;
	long count;
	size_t nids;			/* owner_lookup: ids asked (set before the call) */
	size_t nfound;			/* owner_lookup: answers naming a tenant */
	char who[T_IDS][GW_STORE_TENANT_MAX + 1];	/* owner_lookup: "" = NULL */
	int has_idem;
	struct gw_idem idem;
};

static void t_done(void *arg, const struct gw_store_res *r)
{
	struct got *g = arg;

	g->n++;
	g->rc = r->rc;
	if (r->rc == GW_STORE_ERROR)
		cr_expect_not_null(r->err, "an error without a reason");
	snprintf(g->err, sizeof g->err, "%s", r->err ? r->err : "");
	g->retry_ms = r->retry_ms;
	g->count = r->count;
	if (r->rc == 0 && r->tenants) {
		for (size_t i = 0; i < g->nids; i++) {
			g->nfound += r->tenants[i] != NULL;
			if (i < T_IDS)
				snprintf(g->who[i], sizeof g->who[i], "%s", r->tenants[i] ? r->tenants[i] : "");
		}
	}
	g->has_idem = r->idem != NULL;
	if (r->idem)
		g->idem = *r->idem;
}

#define T_INLINE(g) cr_assert_eq((g).n, 1, "done ran %d times before the call returned", (g).n)

static int t_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant, int64_t now)
{
	struct got g = { 0 };

	gw_store_owner_put(s, k, id, tenant, now, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

static int t_lookup(struct gw_store *s, enum gw_store_kind k, const char *const *ids, size_t n, struct got *g)
{
	memset(g, 0, sizeof *g);
	g->nids = n;
	gw_store_owner_lookup(s, k, ids, n, t_done, g);
	T_INLINE(*g);
	return g->rc;
}

/* The old owner_get over a lookup of one id: 1 found (tenant copied), 0 absent, -1 error. */
static int t_get(struct gw_store *s, enum gw_store_kind k, const char *id, char *who, size_t cap)
{
	struct got g;

	if (t_lookup(s, k, (const char *const[]){ id }, 1, &g) != 0)
		return -1;
	snprintf(who, cap, "%s", g.who[0]);
	return g.who[0][0] ? 1 : 0;
}

/* A lookup of "id,id,..." answered as "tenant,-,..." ('-' = unrecorded); returns rc. */
static int t_lookup_joined(struct gw_store *s, enum gw_store_kind k, const char *list, char *out, size_t cap)
{
	char buf[512], *save = NULL;
	const char *ids[T_IDS];
	size_t n = 0;
	struct got g;
	int rc;

	snprintf(buf, sizeof buf, "%s", list);
	for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		cr_assert_lt(n, T_IDS);
		ids[n++] = p;
	}
	rc = t_lookup(s, k, ids, n, &g);
	out[0] = '\0';
	for (size_t i = 0; rc == 0 && i < n; i++) {
		strncat(out, i ? "," : "", cap - strlen(out) - 1);
		strncat(out, g.who[i][0] ? g.who[i] : "-", cap - strlen(out) - 1);
	}
	return rc;
}

static int t_del(struct gw_store *s, enum gw_store_kind k, const char *id)
{
	struct got g = { 0 };

	gw_store_owner_del(s, k, id, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

/* GW_STORE_INSERTED, 0 with *e the existing entry (when e is not NULL), or -1. */
static int t_begin(struct gw_store *s, const char *tenant, const char *key, const uint8_t fp[32],
		   const char *source, int64_t now, const char *lease, int64_t until, struct gw_idem *e)
{
	struct got g = { 0 };

	gw_store_idem_begin(s, tenant, key, fp, source, now, lease, until, t_done, &g);
	T_INLINE(g);
	cr_expect_eq(g.has_idem, g.rc == 0, "begin: the entry comes with rc 0 only (rc %d)", g.rc);
	if (g.rc == 0 && e)
		*e = g.idem;
	return g.rc;
}

static int t_take(struct gw_store *s, const char *tenant, const char *key, const char *old_lease,
		  int64_t old_until, const char *lease, int64_t until)
{
	struct got g = { 0 };

	gw_store_idem_take(s, tenant, key, old_lease, old_until, lease, until, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

/* The count, or -1. */
static long t_renew(struct gw_store *s, const char *lease, int64_t until)
{
	struct got g = { 0 };

	gw_store_idem_renew(s, lease, until, t_done, &g);
	T_INLINE(g);
	return g.rc == 0 ? g.count : -1;
}

static int t_finish(struct gw_store *s, const char *tenant, const char *key, const char *rid)
{
	struct got g = { 0 };

	gw_store_idem_finish(s, tenant, key, rid, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

static int t_release(struct gw_store *s, const char *tenant, const char *key)
{
	struct got g = { 0 };

	gw_store_idem_release(s, tenant, key, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

static int t_abort(struct gw_store *s, const char *tenant, const char *key)
{
	struct got g = { 0 };

	gw_store_idem_abort(s, tenant, key, t_done, &g);
	T_INLINE(g);
	return g.rc;
}

/* PENDING keys, or -1. */
static long t_count(struct gw_store *s)
{
	struct got g = { 0 };

	gw_store_idem_count(s, t_done, &g);
	T_INLINE(g);
	return g.rc == 0 ? g.count : -1;
}

/* Keys removed, or -1. */
static long t_expire(struct gw_store *s, int64_t older_than)
{
	struct got g = { 0 };

	gw_store_idem_expire(s, older_than, t_done, &g);
	T_INLINE(g);
	return g.rc == 0 ? g.count : -1;
}

/* ---- helpers ---- */

struct tmpdir {
	char dir[64];
	char db[128];
};

static void tmp_make(struct tmpdir *t)
{
	snprintf(t->dir, sizeof t->dir, "/tmp/a3d-store-XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->db, sizeof t->db, "%s/state.db", t->dir);
}

static void tmp_clean(struct tmpdir *t)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char p[160];

	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", t->db, suffix[i]);
		unlink(p);
	}
	rmdir(t->dir);
}

enum backend { BK_MEM, BK_SQLITE };

static struct gw_store *open_backend(enum backend b, struct tmpdir *t)
{
	char err[GW_STORE_ERR_MAX] = "";
	struct gw_store *s = gw_store_open(b == BK_MEM ? NULL : t->db, 0, err, sizeof err);

	cr_assert_not_null(s, "open failed: %s", err);
	cr_assert_str_eq(gw_store_backend(s), b == BK_MEM ? "memory" : "sqlite");
	cr_assert_null(gw_store_unready(s), "in-process backends are always ready");
	cr_assert_null(gw_store_pg_stats(s));
	return s;
}

static char long_id[GW_STORE_ID_MAX + 2];	/* one byte over the limit */

static void fill_long(void)
{
	memset(long_id, 'x', GW_STORE_ID_MAX + 1);
	long_id[GW_STORE_ID_MAX + 1] = '\0';
}

/* ---- ownership table, run on both backends ---- */

/* O_LOOKUP replaces the old owner_each listing (gone with the asynchronous store): several ids in
 * one call, duplicates and unrecorded ones included, answered in the order asked. */
enum oop { O_PUT, O_GET, O_DEL, O_LOOKUP };
static const struct {
	enum oop op;
	enum gw_store_kind kind;
	const char *id;		/* "@long" = one byte over GW_STORE_ID_MAX; LOOKUP: "id,id,..." */
	const char *tenant;	/* for PUT */
	int rc;
	const char *want;	/* GET: tenant; LOOKUP: "tenant,-,..." ('-' = unrecorded) */
} owner_cases[] = {
	{ O_PUT, GW_OBJ_JOB, "r1", "team-a", 0, NULL },
	{ O_PUT, GW_OBJ_JOB, "r1", "team-a", 0, NULL },		/* idempotent */
	{ O_PUT, GW_OBJ_JOB, "r1", "team-b", GW_STORE_CONFLICT, NULL },	/* never overwritten */
	{ O_GET, GW_OBJ_JOB, "r1", NULL, 1, "team-a" },
	{ O_GET, GW_OBJ_MODEL, "r1", NULL, 0, NULL },		/* kinds are separate */
	{ O_PUT, GW_OBJ_MODEL, "r1", "team-b", 0, NULL },
	{ O_GET, GW_OBJ_MODEL, "r1", NULL, 1, "team-b" },
	{ O_GET, GW_OBJ_JOB, "r1", NULL, 1, "team-a" },
	{ O_GET, GW_OBJ_JOB, "nope", NULL, 0, NULL },
	{ O_PUT, GW_OBJ_JOB, "", "team-a", -1, NULL },
	{ O_PUT, GW_OBJ_JOB, "@long", "team-a", -1, NULL },
	{ O_PUT, GW_OBJ_JOB, "r9", "", -1, NULL },
	{ O_PUT, (enum gw_store_kind)9, "r9", "team-a", -1, NULL },
	{ O_GET, GW_OBJ_JOB, "@long", NULL, -1, NULL },
	{ O_PUT, GW_OBJ_JOB, "r2", "team-a", 0, NULL },
	{ O_PUT, GW_OBJ_JOB, "r3", "team-b", 0, NULL },
	{ O_PUT, GW_OBJ_ENDPOINT, "e1", "team-a", 0, NULL },
	{ O_PUT, GW_OBJ_UPLOAD, "u1", "team-a", 0, NULL },
	{ O_LOOKUP, GW_OBJ_JOB, "r1,r2,r3", NULL, 0, "team-a,team-a,team-b" },
	{ O_LOOKUP, GW_OBJ_JOB, "r3,nope,r1,r3,r3", NULL, 0, "team-b,-,team-a,team-b,team-b" },
	{ O_LOOKUP, GW_OBJ_ENDPOINT, "e1,r1,u1", NULL, 0, "team-a,-,-" },	/* one kind per call */
	{ O_LOOKUP, GW_OBJ_MODEL, "r1,r2", NULL, 0, "team-b,-" },
	{ O_LOOKUP, GW_OBJ_UPLOAD, "nope,nope", NULL, 0, "-,-" },
	{ O_DEL, GW_OBJ_JOB, "r1", NULL, 0, NULL },
	{ O_GET, GW_OBJ_JOB, "r1", NULL, 0, NULL },
	{ O_DEL, GW_OBJ_JOB, "r1", NULL, 0, NULL },		/* absent: still 0 */
	{ O_GET, GW_OBJ_MODEL, "r1", NULL, 1, "team-b" },	/* other kind untouched */
	{ O_LOOKUP, GW_OBJ_JOB, "r1,r2,r3", NULL, 0, "-,team-a,team-b" },
	{ O_LOOKUP, GW_OBJ_JOB, "r2,@long", NULL, -1, NULL },	/* one bad id refuses the call */
};

static void run_owner_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	char who[GW_STORE_TENANT_MAX + 1], got[512], ids[512];

	fill_long();
	tmp_make(&t);
	s = open_backend(b, &t);
	for (size_t i = 0; i < sizeof owner_cases / sizeof owner_cases[0]; i++) {
		const char *id = owner_cases[i].id;
		int rc = 0;

		if (id && strcmp(id, "@long") == 0)
			id = long_id;
		switch (owner_cases[i].op) {
		case O_PUT:
			rc = t_put(s, owner_cases[i].kind, id, owner_cases[i].tenant, 1000 + (int64_t)i);
			break;
		case O_GET:
			who[0] = '\0';
			rc = t_get(s, owner_cases[i].kind, id, who, sizeof who);
			if (owner_cases[i].want)
				cr_expect_str_eq(who, owner_cases[i].want, "backend %d case %zu", b, i);
			break;
		case O_DEL:
			rc = t_del(s, owner_cases[i].kind, id);
			break;
		case O_LOOKUP: {
			const char *at = strstr(id, "@long");

			/* "@long" inside the list: spliced in */
			snprintf(ids, sizeof ids, "%.*s%s", at ? (int)(at - id) : (int)strlen(id), id,
				 at ? long_id : "");
			rc = t_lookup_joined(s, owner_cases[i].kind, ids, got, sizeof got);
			if (owner_cases[i].want)
				cr_expect_str_eq(got, owner_cases[i].want, "backend %d case %zu: got '%s'", b, i,
						 got);
			break;
		}
		}
		cr_expect_eq(rc, owner_cases[i].rc, "backend %d case %zu: rc %d (%s)", b, i, rc,
			     gw_store_errmsg(s));
	}
	cr_expect_eq(gw_store_stats(s)->owner_conflicts, 1);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 6);
	cr_expect_eq(gw_store_stats(s)->errors, 0);
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, owner_table_memory) { run_owner_table(BK_MEM); }
Test(store, owner_table_sqlite) { run_owner_table(BK_SQLITE); }

/* The bounds of one lookup: 1..GW_STORE_LOOKUP_MAX ids of a known kind, all or nothing. */
static void run_lookup_limits(enum backend b)
{
	static const char *ids[GW_STORE_LOOKUP_MAX + 1];
	static char names[GW_STORE_LOOKUP_MAX + 1][16];
	static const struct {
		size_t n;
		enum gw_store_kind kind;
		int null_ids;
		int rc;
		size_t found;
	} cases[] = {
		{ 0, GW_OBJ_JOB, 0, -1, 0 },
		{ 1, GW_OBJ_JOB, 0, 0, 1 },
		{ GW_STORE_LOOKUP_MAX, GW_OBJ_JOB, 0, 0, 3 },
		{ GW_STORE_LOOKUP_MAX + 1, GW_OBJ_JOB, 0, -1, 0 },
		{ 2, GW_OBJ_JOB, 1, -1, 0 },			/* ids NULL */
		{ 2, (enum gw_store_kind)0, 0, -1, 0 },		/* unknown kind */
	};
	struct tmpdir t;
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(b, &t);
	for (size_t i = 0; i <= GW_STORE_LOOKUP_MAX; i++) {
		snprintf(names[i], sizeof names[i], "id%zu", i);
		ids[i] = names[i];
	}
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "id0", "team-a", 1), 0);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "id500", "team-b", 1), 0);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "id1023", "team-a", 1), 0);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "id1024", "team-a", 1), 0);	/* only in the refused call */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t rej = gw_store_stats(s)->rejected_args;
		struct got g;
		int rc = t_lookup(s, cases[i].kind, cases[i].null_ids ? NULL : ids, cases[i].n, &g);

		cr_expect_eq(rc, cases[i].rc, "backend %d case %zu: rc %d", b, i, rc);
		cr_expect_eq(g.nfound, cases[i].found, "backend %d case %zu: %zu found", b, i, g.nfound);
		cr_expect_eq(gw_store_stats(s)->rejected_args - rej, (uint64_t)(rc != 0),
			     "backend %d case %zu: refusals are counted", b, i);
		if (rc != 0)
			cr_expect_neq(g.err[0], '\0', "backend %d case %zu: no reason", b, i);
	}
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, lookup_limits_memory) { run_lookup_limits(BK_MEM); }
Test(store, lookup_limits_sqlite) { run_lookup_limits(BK_SQLITE); }

/* ---- idempotency table, run on both backends ---- */

/* I_COUNT replaces the old pending listing (gone: the start-up log only counts PENDING keys, and
 * reconciliation reads a key when it is retried). */
enum iop { I_BEGIN, I_FINISH, I_ABORT, I_COUNT, I_EXPIRE };
static const struct {
	enum iop op;
	const char *tenant, *key;
	uint8_t fp;		/* BEGIN: every byte of the fingerprint */
	const char *arg;	/* BEGIN: source; FINISH: rid */
	int64_t ms;		/* BEGIN: now; EXPIRE: older than */
	int rc;			/* COUNT, EXPIRE: the count */
	/* BEGIN that found an entry: what it holds */
	int done;
	uint8_t efp;
	const char *erid;
} idem_cases[] = {
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 100, GW_STORE_INSERTED, 0, 0, NULL },
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 101, 0, 0, 1, "" },	/* existed, PENDING */
	{ I_BEGIN, "a", "k1", 2, "http://s/u/2/w.mp4", 102, 0, 0, 1, "" },	/* still the first */
	{ I_BEGIN, "b", "k1", 3, "http://s/u/3/x.mp4", 90, GW_STORE_INSERTED, 0, 0, NULL },	/* per tenant */
	{ I_BEGIN, "a", "k2", 4, "rerun:R0", 110, GW_STORE_INSERTED, 0, 0, NULL },
	{ I_COUNT, NULL, NULL, 0, NULL, 0, 3, 0, 0, NULL },
	{ I_FINISH, "a", "k1", 0, "RID1", 0, 0, 0, 0, NULL },
	{ I_FINISH, "a", "k1", 0, "RID1", 0, 0, 0, 0, NULL },			/* same rid: fine */
	{ I_FINISH, "a", "k1", 0, "RID2", 0, GW_STORE_CONFLICT, 0, 0, NULL },	/* another rid */
	{ I_FINISH, "a", "nokey", 0, "RID3", 0, GW_STORE_CONFLICT, 0, 0, NULL },
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 120, 0, 1, 1, "RID1" },	/* DONE */
	{ I_COUNT, NULL, NULL, 0, NULL, 0, 2, 0, 0, NULL },
	{ I_ABORT, "a", "k1", 0, NULL, 0, 0, 0, 0, NULL },			/* DONE kept */
	{ I_BEGIN, "a", "k1", 9, "http://s/u/9/z.mp4", 130, 0, 1, 1, "RID1" },
	{ I_ABORT, "b", "k1", 0, NULL, 0, 0, 0, 0, NULL },			/* PENDING gone */
	{ I_ABORT, "b", "k1", 0, NULL, 0, 0, 0, 0, NULL },			/* absent: 0 */
	{ I_COUNT, NULL, NULL, 0, NULL, 0, 1, 0, 0, NULL },
	{ I_BEGIN, "b", "k1", 5, "http://s/u/5/y.mp4", 140, GW_STORE_INSERTED, 0, 0, NULL },	/* fresh again */
	{ I_BEGIN, "a", "", 1, "http://s/u/1/v.mp4", 150, -1, 0, 0, NULL },
	{ I_BEGIN, "a", "k3", 1, "", 150, -1, 0, 0, NULL },
	{ I_EXPIRE, NULL, NULL, 0, NULL, 110, 1, 0, 0, NULL },			/* a/k1 (100) */
	{ I_EXPIRE, NULL, NULL, 0, NULL, 110, 0, 0, 0, NULL },
	{ I_COUNT, NULL, NULL, 0, NULL, 0, 2, 0, 0, NULL },			/* a/k2, b/k1 */
	{ I_EXPIRE, NULL, NULL, 0, NULL, 1000, 2, 0, 0, NULL },
	{ I_COUNT, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL },
};

static void run_idem_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(b, &t);
	for (size_t i = 0; i < sizeof idem_cases / sizeof idem_cases[0]; i++) {
		struct gw_idem e;
		uint8_t fp[32];
		long rc = 0;

		memset(&e, 0x5a, sizeof e);
		switch (idem_cases[i].op) {
		case I_BEGIN:
			memset(fp, idem_cases[i].fp, sizeof fp);
			rc = t_begin(s, idem_cases[i].tenant, idem_cases[i].key, fp, idem_cases[i].arg,
				     idem_cases[i].ms, "gw-1", idem_cases[i].ms + 30000, &e);
			if (rc == 0) {
				cr_expect_eq(e.done, idem_cases[i].done, "backend %d case %zu", b, i);
				cr_expect_eq(e.fp[0], idem_cases[i].efp, "backend %d case %zu", b, i);
				cr_expect_eq(e.fp[31], idem_cases[i].efp, "backend %d case %zu", b, i);
				cr_expect_str_eq(e.rid, idem_cases[i].erid, "backend %d case %zu", b, i);
			}
			break;
		case I_FINISH:
			rc = t_finish(s, idem_cases[i].tenant, idem_cases[i].key, idem_cases[i].arg);
			break;
		case I_ABORT:
			rc = t_abort(s, idem_cases[i].tenant, idem_cases[i].key);
			break;
		case I_COUNT:
			rc = t_count(s);
			break;
		case I_EXPIRE:
			rc = t_expire(s, idem_cases[i].ms);
			break;
		}
		cr_expect_eq(rc, idem_cases[i].rc, "backend %d case %zu: rc %ld (%s)", b, i, rc,
			     gw_store_errmsg(s));
	}
	cr_expect_eq(gw_store_stats(s)->idem_conflicts, 2);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 2);
	cr_expect_eq(gw_store_stats(s)->errors, 0);
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, idem_table_memory) { run_idem_table(BK_MEM); }
Test(store, idem_table_sqlite) { run_idem_table(BK_SQLITE); }

/* A pending entry carries everything it was begun with (what reconciliation reads, from the
 * entry idem_begin answers when the key is retried). The memory backend keeps the lease too;
 * SQLite answers PENDING keys with no lease (store.h: one writer, leases are not stored). */
Test(store, idem_pending_entry_fields)
{
	for (int b = BK_MEM; b <= BK_SQLITE; b++) {
		struct tmpdir t;
		struct gw_store *s;
		struct gw_idem e;
		char src[GW_STORE_SOURCE_MAX + 2], lease[GW_STORE_LEASE_MAX + 2];
		uint8_t fp[32];

		tmp_make(&t);
		s = open_backend((enum backend)b, &t);
		for (int i = 0; i < 32; i++)
			fp[i] = (uint8_t)(i * 7);
		memset(src, 's', sizeof src - 1);
		src[sizeof src - 1] = '\0';	/* GW_STORE_SOURCE_MAX + 1 bytes: too long */
		cr_expect_eq(t_begin(s, "a", "k", fp, src, 5, "gw-1", 6, NULL), -1);
		src[GW_STORE_SOURCE_MAX] = '\0';	/* exactly the limit: fine */
		memset(lease, 'l', sizeof lease - 1);
		lease[sizeof lease - 1] = '\0';		/* GW_STORE_LEASE_MAX + 1 bytes: too long */
		cr_expect_eq(t_begin(s, "a", "k", fp, src, 5, lease, 6, NULL), -1);
		lease[GW_STORE_LEASE_MAX] = '\0';
		cr_expect_eq(t_begin(s, "a", "k", fp, src, 1234567890123LL, lease, 1234567920123LL, NULL),
			     GW_STORE_INSERTED);
		cr_expect_eq(t_count(s), 1);
		memset(&e, 0x5a, sizeof e);
		cr_expect_eq(t_begin(s, "a", "k", fp, "http://other/", 1234567899999LL, "gw-2", 1, &e), 0);
		cr_expect_eq(memcmp(e.fp, fp, 32), 0);
		cr_expect_eq(e.done, 0);
		cr_expect_eq(e.created_ms, 1234567890123LL);
		cr_expect_eq(strlen(e.source), GW_STORE_SOURCE_MAX);
		cr_expect_str_eq(e.rid, "");
		if (b == BK_MEM) {
			cr_expect_str_eq(e.lease, lease);
			cr_expect_eq(e.lease_until_ms, 1234567920123LL);
		} else {
			cr_expect_str_eq(e.lease, "");
			cr_expect_eq(e.lease_until_ms, 0);
		}
		cr_expect_eq(gw_store_stats(s)->rejected_args, 2);
		gw_store_close(s);
		tmp_clean(&t);
	}
}

/* ---- leases (memory backend: it stores them; store.h idem_take / renew / release) ---- */

enum lop { L_BEGIN, L_TAKE, L_RENEW, L_RELEASE, L_FINISH, L_ABORT, L_READ };
static const struct {
	enum lop op;
	const char *key;
	const char *old_lease;	/* TAKE */
	int64_t old_until;	/* TAKE */
	const char *lease;	/* BEGIN, TAKE, RENEW */
	int64_t until;		/* BEGIN, TAKE, RENEW */
	long rc;		/* RENEW: the count */
	const char *want_lease;	/* READ: the entry's lease afterwards ("" = nobody) */
	int64_t want_until;	/* READ */
} lease_cases[] = {
	/* 0 */ { L_BEGIN, "k1", NULL, 0, "gw-1", 1000, GW_STORE_INSERTED, NULL, 0 },
	/* 1 */ { L_BEGIN, "k2", NULL, 0, "gw-1", 1000, GW_STORE_INSERTED, NULL, 0 },
	/* 2 */ { L_BEGIN, "k3", NULL, 0, "gw-2", 1500, GW_STORE_INSERTED, NULL, 0 },
	/* 3 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-1", 1000 },
	/* 4: a begin of an existing key changes nothing */
	/* 4 */ { L_BEGIN, "k1", NULL, 0, "gw-9", 9000, 0, NULL, 0 },
	/* 5 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-1", 1000 },
	/* 6: compare-and-set: the right (lease, until) wins */
	/* 6 */ { L_TAKE, "k1", "gw-1", 1000, "gw-2", 2000, 0, NULL, 0 },
	/* 7 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-2", 2000 },
	/* 8: the lease it was read with is stale now */
	/* 8 */ { L_TAKE, "k1", "gw-1", 1000, "gw-3", 3000, GW_STORE_CONFLICT, NULL, 0 },
	/* 9: the right holder but another expiry is stale too (renewed meanwhile) */
	/* 9 */ { L_TAKE, "k1", "gw-2", 1999, "gw-3", 3000, GW_STORE_CONFLICT, NULL, 0 },
	/* 10 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-2", 2000 },
	/* 11: renew: gw-1 now holds k2 only; gw-2 holds k1 and k3 */
	/* 11 */ { L_RENEW, NULL, NULL, 0, "gw-1", 5000, 1, NULL, 0 },
	/* 12 */ { L_READ, "k2", NULL, 0, NULL, 0, 0, "gw-1", 5000 },
	/* 13 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-2", 2000 },
	/* 14 */ { L_RENEW, NULL, NULL, 0, "gw-2", 6000, 2, NULL, 0 },
	/* 15 */ { L_RENEW, NULL, NULL, 0, "gw-none", 6000, 0, NULL, 0 },
	/* 16: a DONE key is nobody's and is not renewed */
	/* 16 */ { L_FINISH, "k3", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 17 */ { L_READ, "k3", NULL, 0, NULL, 0, 0, "", 0 },
	/* 18 */ { L_RENEW, NULL, NULL, 0, "gw-2", 7000, 1, NULL, 0 },
	/* 19 */ { L_TAKE, "k3", "", 0, "gw-1", 8000, GW_STORE_CONFLICT, NULL, 0 },	/* ended */
	/* 20: release: PENDING with no lease; anyone may take it from ("", 0) */
	/* 20 */ { L_RELEASE, "k1", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 21 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "", 0 },
	/* 22 */ { L_RENEW, NULL, NULL, 0, "gw-2", 8000, 0, NULL, 0 },
	/* 23 */ { L_TAKE, "k1", "gw-2", 7000, "gw-1", 9000, GW_STORE_CONFLICT, NULL, 0 },
	/* 24 */ { L_TAKE, "k1", "", 0, "gw-1", 9000, 0, NULL, 0 },
	/* 25 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "gw-1", 9000 },
	/* 26 */ { L_RENEW, NULL, NULL, 0, "gw-1", 9500, 2, NULL, 0 },		/* k1, k2 */
	/* 27: release of a DONE or absent key: 0, nothing changes */
	/* 27 */ { L_RELEASE, "k3", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 28 */ { L_RELEASE, "nokey", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 29 */ { L_TAKE, "nokey", "", 0, "gw-1", 9000, GW_STORE_CONFLICT, NULL, 0 },	/* absent */
	/* 30: finish clears the lease; an aborted key is gone */
	/* 30 */ { L_FINISH, "k1", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 31 */ { L_READ, "k1", NULL, 0, NULL, 0, 0, "", 0 },
	/* 32 */ { L_ABORT, "k2", NULL, 0, NULL, 0, 0, NULL, 0 },
	/* 33 */ { L_RENEW, NULL, NULL, 0, "gw-1", 9900, 0, NULL, 0 },
};

Test(store, lease_table_memory)
{
	struct gw_store *s = gw_store_open_mem(0, 0);
	uint8_t fp[32];

	cr_assert_not_null(s);
	memset(fp, 3, sizeof fp);
	for (size_t i = 0; i < sizeof lease_cases / sizeof lease_cases[0]; i++) {
		struct gw_idem e;
		long rc = 0;

		switch (lease_cases[i].op) {
		case L_BEGIN:
			rc = t_begin(s, "t", lease_cases[i].key, fp, "http://s/u/1/v.mp4", 100,
				     lease_cases[i].lease, lease_cases[i].until, NULL);
			break;
		case L_TAKE:
			rc = t_take(s, "t", lease_cases[i].key, lease_cases[i].old_lease, lease_cases[i].old_until,
				    lease_cases[i].lease, lease_cases[i].until);
			break;
		case L_RENEW:
			rc = t_renew(s, lease_cases[i].lease, lease_cases[i].until);
			break;
		case L_RELEASE:
			rc = t_release(s, "t", lease_cases[i].key);
			break;
		case L_FINISH:
			rc = t_finish(s, "t", lease_cases[i].key, "RID");
			break;
		case L_ABORT:
			rc = t_abort(s, "t", lease_cases[i].key);
			break;
		case L_READ:
			/* a begin of an existing key reads it without changing it */
			rc = t_begin(s, "t", lease_cases[i].key, fp, "http://s/u/1/v.mp4", 100, "reader", 1, &e);
			if (rc == 0) {
				cr_expect_str_eq(e.lease, lease_cases[i].want_lease, "case %zu", i);
				cr_expect_eq(e.lease_until_ms, lease_cases[i].want_until, "case %zu: until %lld", i,
					     (long long)e.lease_until_ms);
			}
			break;
		}
		cr_expect_eq(rc, lease_cases[i].rc, "case %zu: rc %ld (%s)", i, rc, gw_store_errmsg(s));
	}
	cr_expect_eq(gw_store_stats(s)->errors, 0);
	cr_expect_eq(gw_store_stats(s)->idem_conflicts, 0, "take conflicts are not finish conflicts");
	gw_store_close(s);
}

/* SQLite keeps no lease (one writer): take always succeeds, renew renews nothing, release is a
 * no-op; the keys themselves behave as on the memory backend. Arguments are checked alike. */
Test(store, lease_sqlite_not_stored)
{
	struct tmpdir t;
	struct gw_store *s;
	struct gw_idem e;
	char lease[GW_STORE_LEASE_MAX + 2];
	uint8_t fp[32] = { 0 };

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	cr_expect_eq(t_begin(s, "t", "k", fp, "http://s/u/1/v.mp4", 1, "gw-1", 1000, NULL), GW_STORE_INSERTED);
	cr_expect_eq(t_take(s, "t", "k", "gw-9", 42, "gw-2", 2000), 0);
	cr_expect_eq(t_renew(s, "gw-2", 3000), 0);
	cr_expect_eq(t_release(s, "t", "k"), 0);
	cr_expect_eq(t_begin(s, "t", "k", fp, "http://s/u/1/v.mp4", 2, "gw-3", 4000, &e), 0);
	cr_expect_str_eq(e.lease, "");
	cr_expect_eq(e.lease_until_ms, 0);
	cr_expect_eq(t_count(s), 1);
	/* arguments: the front refuses them before the backend, on every backend */
	memset(lease, 'l', sizeof lease - 1);
	lease[sizeof lease - 1] = '\0';
	cr_expect_eq(t_take(s, "t", "k", NULL, 0, "gw-2", 1), -1);
	cr_expect_eq(t_take(s, "t", "k", lease, 0, "gw-2", 1), -1);
	cr_expect_eq(t_take(s, "t", "k", "", 0, "", 1), -1);
	cr_expect_eq(t_take(s, "t", "k", "", 0, lease, 1), -1);
	cr_expect_eq(t_renew(s, "", 1), -1);
	cr_expect_eq(t_renew(s, lease, 1), -1);
	cr_expect_eq(t_release(s, "t", ""), -1);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 7);
	gw_store_close(s);
	tmp_clean(&t);
}

/* ---- memory backend limits ---- */

Test(store, memory_full_and_read_only)
{
	struct gw_store *s = gw_store_open_mem(3, 0);
	uint8_t fp[32] = { 0 };

	cr_assert_not_null(s);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "a", "t", 1), 0);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "b", "t", 1), 0);
	cr_expect_eq(t_begin(s, "t", "k1", fp, "http://x/y", 1, "gw-1", 2, NULL), GW_STORE_INSERTED);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "c", "t", 1), -1);
	cr_expect_eq(t_begin(s, "t", "k2", fp, "http://x/y", 1, "gw-1", 2, NULL), -1);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is full");
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "a", "t", 1), 0);	/* existing: no new row */
	cr_expect_eq(gw_store_stats(s)->rejected_full, 2);
	cr_expect_eq(t_del(s, GW_OBJ_JOB, "a"), 0);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "c", "t", 1), 0);	/* room again */
	gw_store_close(s);

	s = gw_store_open_mem(0, 1);
	cr_assert_not_null(s);
	cr_expect_eq(gw_store_read_only(s), 1);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "a", "t", 1), -1);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is read-only");
	cr_expect_eq(gw_store_stats(s)->rejected_read_only, 1);
	gw_store_close(s);
}

/* ---- SQLite file: durability and refusal ---- */

Test(store, sqlite_reopen_keeps_data)
{
	struct tmpdir t;
	struct gw_store *s;
	struct gw_idem e;
	char who[GW_STORE_TENANT_MAX + 1], got[256];
	uint8_t fp[32];

	memset(fp, 7, sizeof fp);
	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	cr_expect_eq(t_put(s, GW_OBJ_MODEL, "m1", "team-b", 1), 0);
	cr_expect_eq(t_begin(s, "team-a", "k", fp, "http://s/u/1/v.mp4", 5, "gw-1", 6, NULL), GW_STORE_INSERTED);
	cr_expect_eq(t_finish(s, "team-a", "k", "r1"), 0);
	cr_expect_eq(t_begin(s, "team-a", "k2", fp, "http://s/u/1/v.mp4", 7, "gw-1", 8, NULL),
		     GW_STORE_INSERTED);
	gw_store_close(s);

	s = open_backend(BK_SQLITE, &t);
	cr_expect_eq(t_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-a");
	cr_expect_eq(t_get(s, GW_OBJ_MODEL, "m1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-b");
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "r1", "team-b", 1), GW_STORE_CONFLICT);
	cr_expect_eq(t_begin(s, "team-a", "k", fp, "http://s/u/1/v.mp4", 6, "gw-2", 7, &e), 0);
	cr_expect_eq(e.done, 1);
	cr_expect_str_eq(e.rid, "r1");
	cr_expect_eq(e.created_ms, 5);
	cr_expect_eq(t_lookup_joined(s, GW_OBJ_JOB, "r1,m1,r1", got, sizeof got), 0);
	cr_expect_str_eq(got, "team-a,-,team-a");
	cr_expect_eq(t_count(s), 1);	/* k2 */
	gw_store_close(s);
	tmp_clean(&t);
}

#define CRASH_ROWS 200	/* rows a child writes before SIGKILL */

/* In the child: no Criterion assertions, only an exit code. */
static void c_rc(void *arg, const struct gw_store_res *r)
{
	*(int *)arg = r->rc;
}

/* What a process crash leaves: every write that returned is there after a SIGKILL. */
Test(store, sqlite_survives_sigkill)
{
	struct tmpdir t;
	struct gw_store *s;
	int status = 0;
	pid_t pid;
	char who[GW_STORE_TENANT_MAX + 1], id[32];

	tmp_make(&t);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char err[GW_STORE_ERR_MAX];
		struct gw_store *c = gw_store_open(t.db, 0, err, sizeof err);
		uint8_t fp[32] = { 1 };
		int rc;

		if (!c)
			_exit(3);
		for (int i = 0; i < CRASH_ROWS; i++) {
			snprintf(id, sizeof id, "rid%03d", i);
			rc = 99;	/* stays if done did not run inline */
			gw_store_owner_put(c, GW_OBJ_JOB, id, "team-a", i, c_rc, &rc);
			if (rc != 0)
				_exit(4);
		}
		rc = 99;
		gw_store_idem_begin(c, "team-a", "pending-key", fp, "http://s/u/1/v.mp4", 9, "gw-1", 10, c_rc, &rc);
		if (rc != GW_STORE_INSERTED)
			_exit(5);
		kill(getpid(), SIGKILL);	/* no close, no checkpoint */
		_exit(6);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

	/* read-only first: it must read the committed rows left in the WAL by the dead process */
	{
		char err[GW_STORE_ERR_MAX] = "";

		s = gw_store_open(t.db, 1, err, sizeof err);
		cr_assert_not_null(s, "read-only after crash: %s", err);
		cr_expect_eq(t_get(s, GW_OBJ_JOB, "rid199", who, sizeof who), 1);
		cr_expect_eq(t_count(s), 1);
		gw_store_close(s);
	}
	s = open_backend(BK_SQLITE, &t);
	for (int i = 0; i < CRASH_ROWS; i++) {
		snprintf(id, sizeof id, "rid%03d", i);
		cr_expect_eq(t_get(s, GW_OBJ_JOB, id, who, sizeof who), 1, "%s lost", id);
	}
	{
		struct gw_idem e;
		uint8_t fp[32] = { 1 };

		cr_expect_eq(t_count(s), 1);
		cr_expect_eq(t_begin(s, "team-a", "pending-key", fp, "http://s/u/1/v.mp4", 11, "gw-2", 12, &e), 0);
		cr_expect_eq(e.done, 0);
		cr_expect_eq(e.created_ms, 9);
	}
	gw_store_close(s);
	tmp_clean(&t);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}
/* Files the gateway must refuse: table of how to make them -> the message. */
enum bad_kind { BAD_GARBAGE, BAD_TRUNCATED_PAGES, BAD_NEWER_SCHEMA, BAD_FOREIGN, BAD_NO_DIR, BAD_DIR_IS_FILE };
static const struct {
	enum bad_kind how;
	int read_only;
	const char *want1, *want2;	/* both must appear in err */
} bad_cases[] = {
	{ BAD_GARBAGE, 0, "is corrupt: file is not a database", "refusing to start" },
	{ BAD_GARBAGE, 1, "is corrupt", "refusing to start" },
	{ BAD_TRUNCATED_PAGES, 0, "is corrupt", "refusing to start" },
	{ BAD_NEWER_SCHEMA, 0, "schema version 99, newer than this gateway's 2", "refusing to start" },
	{ BAD_NEWER_SCHEMA, 1, "schema version 99", "refusing to start" },
	{ BAD_FOREIGN, 0, "is not a gateway state file", "refusing to start" },
	{ BAD_NO_DIR, 0, "cannot be opened", "refusing to start" },
	{ BAD_NO_DIR, 1, "cannot be opened", "refusing to start" },
	{ BAD_DIR_IS_FILE, 0, "cannot be opened", "refusing to start" },
};

static void make_sqlite(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

Test(store, sqlite_refuses_bad_files)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		char err[GW_STORE_ERR_MAX] = "", path[192], buf[8192];
		struct tmpdir t;
		struct gw_store *s;

		tmp_make(&t);
		snprintf(path, sizeof path, "%s", t.db);
		switch (bad_cases[i].how) {
		case BAD_GARBAGE:
			for (size_t j = 0; j < sizeof buf; j++)
				buf[j] = (char)(j * 31 + 7);
			write_file(t.db, buf, sizeof buf);
			break;
		case BAD_TRUNCATED_PAGES: {
			/* A real state file, then its pages overwritten past the header. */
			FILE *f;

			s = open_backend(BK_SQLITE, &t);
			for (int j = 0; j < 300; j++) {
				char id[64];

				snprintf(id, sizeof id, "rid-%04d-padding-padding-padding", j);
				cr_assert_eq(t_put(s, GW_OBJ_JOB, id, "team-a", j), 0);
			}
			gw_store_close(s);
			f = fopen(t.db, "r+b");
			cr_assert_not_null(f);
			memset(buf, 0xee, sizeof buf);
			fseek(f, 4096, SEEK_SET);	/* page 2 onwards */
			fwrite(buf, 1, sizeof buf, f);
			fclose(f);
			break;
		}
		case BAD_NEWER_SCHEMA:
			make_sqlite(t.db, "CREATE TABLE schema_version (version INTEGER NOT NULL, opened_ms INTEGER NOT NULL);"
					  "INSERT INTO schema_version VALUES (99, 0);");
			break;
		case BAD_FOREIGN:
			make_sqlite(t.db, "CREATE TABLE something_else (x);");
			break;
		case BAD_NO_DIR:
			snprintf(path, sizeof path, "%s/missing-dir/state.db", t.dir);
			break;
		case BAD_DIR_IS_FILE:
			write_file(t.db, "x", 1);
			snprintf(path, sizeof path, "%s/state.db", t.db);	/* parent is a regular file */
			break;
		}
		s = gw_store_open(path, bad_cases[i].read_only, err, sizeof err);
		cr_expect_null(s, "case %zu opened", i);
		gw_store_close(s);
		cr_expect(strstr(err, bad_cases[i].want1) != NULL, "case %zu: err '%s'", i, err);
		cr_expect(strstr(err, bad_cases[i].want2) != NULL, "case %zu: err '%s'", i, err);
		cr_expect(strstr(err, path) != NULL, "case %zu: err names no file: '%s'", i, err);
		tmp_clean(&t);
	}
}

/* A directory the process may not write into: refused at open, not at the first job. */
Test(store, sqlite_refuses_unwritable_dir)
{
	char err[GW_STORE_ERR_MAX] = "";
	struct tmpdir t;
	struct gw_store *s;

	if (geteuid() == 0) {
		/* root ignores mode bits; /proc refuses file creation to everyone */
		s = gw_store_open("/proc/a3d-store-test.db", 0, err, sizeof err);
		cr_expect_null(s);
		gw_store_close(s);
		cr_expect(strstr(err, "state file /proc/a3d-store-test.db") != NULL, "err '%s'", err);
		cr_expect(strstr(err, "refusing to start") != NULL, "err '%s'", err);
		return;
	}
	tmp_make(&t);
	cr_assert_eq(chmod(t.dir, 0555), 0);
	s = gw_store_open(t.db, 0, err, sizeof err);
	cr_expect_null(s);
	gw_store_close(s);
	cr_expect(strstr(err, "refusing to start") != NULL, "err '%s'", err);
	chmod(t.dir, 0755);
	tmp_clean(&t);
}

Test(store, sqlite_read_only_rejects_writes)
{
	char err[GW_STORE_ERR_MAX] = "", who[GW_STORE_TENANT_MAX + 1];
	struct tmpdir t;
	struct gw_store *s;
	uint8_t fp[32] = { 0 };

	tmp_make(&t);
	/* read-only needs an existing state file */
	s = gw_store_open(t.db, 1, err, sizeof err);
	cr_expect_null(s);
	gw_store_close(s);
	cr_expect(strstr(err, "refusing to start") != NULL, "err '%s'", err);

	s = open_backend(BK_SQLITE, &t);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	cr_assert_eq(t_begin(s, "team-a", "k0", fp, "http://x/y", 1, "gw-1", 2, NULL), GW_STORE_INSERTED);
	gw_store_close(s);

	s = gw_store_open(t.db, 1, err, sizeof err);
	cr_assert_not_null(s, "read-only open: %s", err);
	cr_expect_eq(gw_store_read_only(s), 1);
	cr_expect_eq(t_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-a");
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "r2", "team-a", 1), -1);
	cr_expect_eq(t_del(s, GW_OBJ_JOB, "r1"), -1);
	cr_expect_eq(t_begin(s, "team-a", "k", fp, "http://x/y", 1, "gw-1", 2, NULL), -1);
	cr_expect_eq(t_take(s, "team-a", "k0", "", 0, "gw-1", 2), -1);
	cr_expect_eq(t_renew(s, "gw-1", 2), -1);
	cr_expect_eq(t_finish(s, "team-a", "k", "r1"), -1);
	cr_expect_eq(t_release(s, "team-a", "k0"), -1);
	cr_expect_eq(t_abort(s, "team-a", "k"), -1);
	cr_expect_eq(t_expire(s, 100), -1);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is read-only");
	cr_expect_eq(gw_store_stats(s)->rejected_read_only, 9);
	/* reads still answer */
	cr_expect_eq(t_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);	/* untouched */
	cr_expect_eq(t_count(s), 1);
	cr_expect_eq(gw_store_stats(s)->owner_cache_hits, 0, "read-only stores have no owner cache");
	gw_store_close(s);
	tmp_clean(&t);
}

/* ---- the owner cache in front of SQLite ---- */

/* Each step on one SQLite store: rc, what a lookup finds, and how many of its ids the owner cache
 * answered (owner_cache_hits) and whether the backend was asked at all (ops: one per call that
 * reaches it, none when the cache answered every id). */
static const struct {
	enum oop op;		/* PUT, DEL (on "r1"), LOOKUP */
	enum gw_store_kind kind;
	const char *arg;	/* PUT: tenant; LOOKUP: "id,id,..." */
	int rc;
	const char *want;	/* LOOKUP: "tenant,-,..." */
	uint64_t hits, ops;	/* LOOKUP: deltas */
} oc_cases[] = {
	/* 0 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "-", 0, 1 },
	/* 1 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "-", 1, 0 },		/* "absent" is remembered */
	/* 2 */ { O_PUT, GW_OBJ_JOB, "team-a", 0, NULL, 0, 0 },
	/* 3 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "team-a", 1, 0 },	/* the put is remembered */
	/* 4 */ { O_PUT, GW_OBJ_JOB, "team-b", GW_STORE_CONFLICT, NULL, 0, 0 },	/* forgotten */
	/* 5 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "team-a", 0, 1 },
	/* 6 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "team-a", 1, 0 },	/* found is remembered */
	/* 7 */ { O_LOOKUP, GW_OBJ_MODEL, "r1", 0, "-", 0, 1 },		/* kinds are separate keys */
	/* 8 */ { O_DEL, GW_OBJ_JOB, NULL, 0, NULL, 0, 0 },
	/* 9 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "-", 0, 1 },		/* del forgets */
	/* 10 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "-", 1, 0 },
	/* 11 */ { O_PUT, GW_OBJ_JOB, "team-b", 0, NULL, 0, 0 },		/* over a remembered "absent" */
	/* 12 */ { O_LOOKUP, GW_OBJ_JOB, "r1", 0, "team-b", 1, 0 },
	/* batches: cached ids are answered here, the rest in one backend call, answers merged in
	 * the order asked; a duplicate not yet cached is asked twice in that call */
	/* 13 */ { O_LOOKUP, GW_OBJ_JOB, "r2,r1,r3,r2", 0, "-,team-b,-,-", 1, 1 },
	/* 14 */ { O_LOOKUP, GW_OBJ_JOB, "r3,r2,r1,r1", 0, "-,-,team-b,team-b", 4, 0 },
	/* 15 */ { O_LOOKUP, GW_OBJ_MODEL, "r1,r9", 0, "-,-", 1, 1 },
	/* 16 */ { O_LOOKUP, GW_OBJ_MODEL, "r9,r1", 0, "-,-", 2, 0 },
	/* a refused lookup asks nothing and remembers nothing */
	/* 17 */ { O_LOOKUP, GW_OBJ_JOB, "r1,", -1, NULL, 0, 0 },
};

Test(store, sqlite_owner_cache_table)
{
	struct tmpdir t;
	struct gw_store *s;
	char got[256];

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	for (size_t i = 0; i < sizeof oc_cases / sizeof oc_cases[0]; i++) {
		uint64_t ops = gw_store_stats(s)->ops, hits = gw_store_stats(s)->owner_cache_hits;
		int rc = 0;

		if (oc_cases[i].op == O_PUT) {
			rc = t_put(s, oc_cases[i].kind, "r1", oc_cases[i].arg, 1);
		} else if (oc_cases[i].op == O_DEL) {
			rc = t_del(s, oc_cases[i].kind, "r1");
		} else if (strchr(oc_cases[i].arg, ',') && oc_cases[i].arg[strlen(oc_cases[i].arg) - 1] == ',') {
			/* a trailing ',' stands for an empty id */
			struct got g;

			rc = t_lookup(s, oc_cases[i].kind, (const char *const[]){ "r1", "" }, 2, &g);
		} else {
			rc = t_lookup_joined(s, oc_cases[i].kind, oc_cases[i].arg, got, sizeof got);
			cr_expect_str_eq(got, oc_cases[i].want, "case %zu: '%s'", i, got);
		}
		cr_expect_eq(rc, oc_cases[i].rc, "case %zu: rc %d", i, rc);
		if (oc_cases[i].op == O_LOOKUP) {
			cr_expect_eq(gw_store_stats(s)->owner_cache_hits - hits, oc_cases[i].hits, "case %zu: hits",
				     i);
			cr_expect_eq(gw_store_stats(s)->ops - ops, oc_cases[i].ops, "case %zu: ops", i);
		}
	}
	gw_store_close(s);
	tmp_clean(&t);
}

/* gw_store_owner_peek, step by step on one store of each in-process backend: what it can tell at
 * once (1: known, owner or "-" for unrecorded; 0: ask with a lookup). SQLite tells only what its
 * owner cache holds; memory is a table and always tells. */
enum pop { P_PUT, P_DEL, P_LOOKUP, P_PEEK };
static const struct {
	enum pop op;		/* PUT (tenant arg), DEL, LOOKUP (fills the cache), or PEEK */
	enum gw_store_kind kind;
	const char *id;
	const char *arg;	/* PUT: tenant */
	int sqlite_rc, mem_rc;	/* PEEK */
	const char *want;	/* PEEK when 1: owner, "-" unrecorded */
} peek_cases[] = {
	/* 0 */ { P_PEEK, GW_OBJ_JOB, "r1", NULL, 0, 1, "-" },		/* nothing cached yet */
	/* 1 */ { P_LOOKUP, GW_OBJ_JOB, "r1", NULL, 0, 0, NULL },
	/* 2 */ { P_PEEK, GW_OBJ_JOB, "r1", NULL, 1, 1, "-" },		/* the remembered absence */
	/* 3 */ { P_PUT, GW_OBJ_JOB, "r1", "team-a", 0, 0, NULL },
	/* 4 */ { P_PEEK, GW_OBJ_JOB, "r1", NULL, 1, 1, "team-a" },
	/* 5 */ { P_PEEK, GW_OBJ_MODEL, "r1", NULL, 0, 1, "-" },		/* kinds are separate */
	/* 6 */ { P_DEL, GW_OBJ_JOB, "r1", NULL, 0, 0, NULL },
	/* 7 */ { P_PEEK, GW_OBJ_JOB, "r1", NULL, 0, 1, "-" },		/* del forgets */
	/* 8 */ { P_PEEK, GW_OBJ_JOB, "", NULL, 0, 0, NULL },		/* never for bad ids */
	/* 9 */ { P_PEEK, GW_OBJ_JOB, long_id, NULL, 0, 0, NULL },
	/* 10 */ { P_PEEK, (enum gw_store_kind)0, "r1", NULL, 0, 0, NULL },
};

static void run_peek_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	char who[GW_STORE_TENANT_MAX + 1];

	fill_long();
	tmp_make(&t);
	s = open_backend(b, &t);
	for (size_t i = 0; i < sizeof peek_cases / sizeof peek_cases[0]; i++) {
		const char *owner = "unset";
		int want = b == BK_MEM ? peek_cases[i].mem_rc : peek_cases[i].sqlite_rc, rc;

		switch (peek_cases[i].op) {
		case P_PUT:
			cr_expect_eq(t_put(s, peek_cases[i].kind, peek_cases[i].id, peek_cases[i].arg, 1), 0);
			break;
		case P_DEL:
			cr_expect_eq(t_del(s, peek_cases[i].kind, peek_cases[i].id), 0);
			break;
		case P_LOOKUP:
			(void)t_get(s, peek_cases[i].kind, peek_cases[i].id, who, sizeof who);
			break;
		default:
			rc = gw_store_owner_peek(s, peek_cases[i].kind, peek_cases[i].id, &owner);
			cr_expect_eq(rc, want, "case %zu: rc %d", i, rc);
			if (rc == 1)
				cr_expect_str_eq(owner ? owner : "-", peek_cases[i].want, "case %zu", i);
			else
				cr_expect_null(owner, "case %zu: no owner when it cannot tell", i);
			break;
		}
	}
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, owner_peek_table_memory) { run_peek_table(BK_MEM); }
Test(store, owner_peek_table_sqlite) { run_peek_table(BK_SQLITE); }

/* More ids than slots: answers stay exact when slots are reused. */
Test(store, owner_cache_bounded_and_exact)
{
	char who[GW_STORE_TENANT_MAX + 1], id[32];
	struct tmpdir t;
	struct gw_store *s, *m;
	static const char *const tenants[] = { "team-a", "team-b", "team-c" };

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	for (size_t i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "own%zu", i);
		cr_assert_eq(t_put(s, GW_OBJ_JOB, id, tenants[i], 1), 0);
	}
	for (size_t i = 0; i < GW_STORE_OWNER_CACHE + 100; i++) {
		snprintf(id, sizeof id, "absent%zu", i);
		cr_assert_eq(t_get(s, GW_OBJ_JOB, id, who, sizeof who), 0);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "own%zu", i);
		cr_expect_eq(t_get(s, GW_OBJ_JOB, id, who, sizeof who), 1);
		cr_expect_str_eq(who, tenants[i]);
	}
	gw_store_close(s);
	tmp_clean(&t);

	/* The memory backend: answers exact, and no owner cache in front (it is a hash table). */
	m = gw_store_open_mem(0, 0);
	cr_assert_not_null(m);
	cr_assert_eq(t_put(m, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	cr_expect_eq(t_get(m, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_eq(t_get(m, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-a");
	cr_expect_eq(gw_store_stats(m)->owner_cache_hits, 0);
	gw_store_close(m);
}
/* One gateway per state file: a second opener is refused while the first holds it. */
Test(store, sqlite_second_process_refused)
{
	char err[GW_STORE_ERR_MAX] = "";
	struct tmpdir t;
	struct gw_store *s, *s2;
	int status = 0;
	pid_t pid;

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct gw_store *c = gw_store_open(t.db, 0, err, sizeof err);

		_exit(c == NULL && strstr(err, "in use by another process") != NULL ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "second process was not refused");
	gw_store_close(s);
	/* once closed, the file opens again */
	s2 = open_backend(BK_SQLITE, &t);
	gw_store_close(s2);
	tmp_clean(&t);
}

/* ---- the job follower's set (claim, renew, settle), run on both backends ---- */

struct claim_got {
	struct got g;
	char *out;
	size_t cap;
};

static void t_claim_done(void *arg, const struct gw_store_res *r)
{
	struct claim_got *cg = arg;

	t_done(&cg->g, r);
	for (long i = 0; r->rc == 0 && i < r->count; i++) {
		strncat(cg->out, i ? "," : "", cg->cap - strlen(cg->out) - 1);
		strncat(cg->out, r->jobs[i].rid, cg->cap - strlen(cg->out) - 1);
	}
}

/* A claim answered as "rid,rid,..." (oldest first); returns rc. */
static int t_claim(struct gw_store *s, const char *lease, size_t max, char *out, size_t cap)
{
	struct claim_got cg = { .out = out, .cap = cap };

	out[0] = '\0';
	gw_store_job_claim(s, lease, 5000, 1000, max, t_claim_done, &cg);
	cr_assert_eq(cg.g.n, 1, "claim did not complete inline");
	return cg.g.rc;
}

enum jop { J_PUT, J_CLAIM, J_SETTLE, J_RENEW };
static const struct {
	enum jop op;
	const char *arg;	/* PUT: rid (created_ms = row index), SETTLE: rid; CLAIM, RENEW: lease */
	size_t max;		/* CLAIM */
	int rc;
	const char *want;	/* CLAIM: the rids claimed; RENEW: count as text */
} job_table[] = {
	{ J_PUT, "job-c", 0, 0, NULL },
	{ J_PUT, "job-a", 0, 0, NULL },
	{ J_PUT, "job-b", 0, 0, NULL },
	{ J_CLAIM, "gw-1", 2, 0, "job-c,job-a" },		/* oldest first, bounded batch */
	{ J_CLAIM, "gw-1", 2, 0, "job-b" },			/* not the ones it holds already */
	{ J_CLAIM, "gw-1", 2, 0, "" },
	{ J_RENEW, "gw-1", 0, 0, "3" },
	{ J_SETTLE, "job-a", 0, 0, NULL },
	{ J_SETTLE, "job-a", 0, 0, NULL },			/* again: fine */
	{ J_SETTLE, "job-none", 0, 0, NULL },			/* absent: fine */
	{ J_RENEW, "gw-1", 0, 0, "2" },
	/* a new process (another lease): what the old one left unsettled, never a settled job */
	{ J_CLAIM, "gw-2", 10, 0, "job-c,job-b" },
	{ J_PUT, "job-d", 0, 0, NULL },
	{ J_CLAIM, "gw-2", 10, 0, "job-d" },
	{ J_CLAIM, "gw-2", 0, GW_STORE_ERROR, "" },		/* max out of range */
	{ J_CLAIM, "gw-2", GW_STORE_CLAIM_MAX + 1, GW_STORE_ERROR, "" },
	{ J_SETTLE, "job-b", 0, 0, NULL },
	{ J_SETTLE, "job-c", 0, 0, NULL },
	{ J_SETTLE, "job-d", 0, 0, NULL },
	{ J_CLAIM, "gw-3", 10, 0, "" },
};

static void run_job_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(b, &t);
	/* a model with a job's id is no job */
	cr_assert_eq(t_put(s, GW_OBJ_MODEL, "job-m", "team-a", 0), 0);
	for (size_t i = 0; i < sizeof job_table / sizeof job_table[0]; i++) {
		char got[256];
		struct got g = { 0 };

		switch (job_table[i].op) {
		case J_PUT:
			cr_expect_eq(t_put(s, GW_OBJ_JOB, job_table[i].arg, "team-a", (int64_t)i + 1), 0,
				     "row %zu", i);
			break;
		case J_CLAIM:
			cr_expect_eq(t_claim(s, job_table[i].arg, job_table[i].max, got, sizeof got),
				     job_table[i].rc, "row %zu", i);
			cr_expect_str_eq(got, job_table[i].want, "row %zu", i);
			break;
		case J_SETTLE:
			gw_store_job_settle(s, job_table[i].arg, 2000, t_done, &g);
			T_INLINE(g);
			cr_expect_eq(g.rc, job_table[i].rc, "row %zu: %s", i, g.err);
			break;
		case J_RENEW:
			gw_store_job_renew(s, job_table[i].arg, 9000, t_done, &g);
			T_INLINE(g);
			cr_expect_eq(g.rc, 0, "row %zu", i);
			/* SQLite keeps no lease times (one writer): its renew writes nothing */
			if (b == BK_MEM) {
				snprintf(got, sizeof got, "%ld", g.count);
				cr_expect_str_eq(got, job_table[i].want, "row %zu", i);
			}
			break;
		}
	}
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, job_table_mem) { run_job_table(BK_MEM); }
Test(store, job_table_sqlite) { run_job_table(BK_SQLITE); }

/* A version 1 file: migrated at open; jobs older than a day count as settled, younger ones are
 * followed; a read-only open leaves it at version 1. */
Test(store, sqlite_migrates_to_follower_schema)
{
	char err[GW_STORE_ERR_MAX] = "", got[256], sql[1024];
	struct tmpdir t;
	struct gw_store *s;
	long long now = (long long)time(NULL) * 1000;

	tmp_make(&t);
	snprintf(sql, sizeof sql,
		 "CREATE TABLE schema_version (version INTEGER NOT NULL, opened_ms INTEGER NOT NULL);"
		 "CREATE TABLE owner (kind INTEGER NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL,"
		 "  created_ms INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;"
		 "CREATE INDEX owner_by_tenant ON owner (kind, tenant, id);"
		 "CREATE TABLE idem (tenant TEXT NOT NULL, key TEXT NOT NULL, fp BLOB NOT NULL,"
		 "  done INTEGER NOT NULL, rid TEXT NOT NULL, source TEXT NOT NULL,"
		 "  created_ms INTEGER NOT NULL, PRIMARY KEY (tenant, key)) WITHOUT ROWID;"
		 "INSERT INTO schema_version VALUES (1, 0);"
		 "INSERT INTO owner VALUES (1, 'old-job', 'team-a', %lld);"
		 "INSERT INTO owner VALUES (1, 'new-job', 'team-a', %lld);"
		 "INSERT INTO owner VALUES (2, 'a-model', 'team-a', %lld);",
		 now - GW_STORE_SETTLE_BACKFILL_MS - 60000, now - 60000, now);
	make_sqlite(t.db, sql);
	s = gw_store_open(t.db, 1, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	gw_store_close(s);
	s = gw_store_open(t.db, 0, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_expect_eq(t_claim(s, "gw-1", 10, got, sizeof got), 0);
	cr_expect_str_eq(got, "new-job");
	cr_expect_eq(t_put(s, GW_OBJ_JOB, "next-job", "team-b", now), 0);
	gw_store_close(s);
	s = gw_store_open(t.db, 0, err, sizeof err);	/* version 2 now: opens as is */
	cr_assert_not_null(s, "%s", err);
	cr_expect_eq(t_claim(s, "gw-2", 10, got, sizeof got), 0);
	cr_expect_str_eq(got, "new-job,next-job");
	gw_store_close(s);
	tmp_clean(&t);
}

/* ---- REST facade sessions (store.h): both in-process backends through one table ---- */

struct got_sess {
	int n, rc;
	long count;
	int has;
	struct gw_sess sess;
};

static void t_sess_done(void *arg, const struct gw_store_res *r)
{
	struct got_sess *g = arg;

	g->n++;
	g->rc = r->rc;
	g->count = r->count;
	g->has = r->sess != NULL;
	if (r->sess)
		g->sess = *r->sess;
}

static const uint8_t sess_tok[3][32] = { { 1 }, { 2 }, { 3 } };
static const uint8_t sess_key[2][32] = { { 0xa }, { 0xb } };

enum { S_PUT = GW_SESS_PUT, S_GET = GW_SESS_GET, S_DEL = GW_SESS_DEL, S_REVOKE = GW_SESS_REVOKE,
       S_EXPIRE = GW_SESS_EXPIRE, S_BAD = 99 };

/* op, token index (-1: none), key index (-1: none), tenant, now, expires, max -> rc, count, tenant
 * found (GET) */
static const struct {
	int op, tok, key;
	const char *tenant;
	int64_t now, expires;
	size_t max;
	int rc;
	long count;
	const char *found;
} sess_cases[] = {
	{ S_PUT, 0, 0, "team-a", 1000, 2000, 0, 0, 0, NULL },
	{ S_PUT, 0, 1, "team-b", 1000, 2000, 0, GW_STORE_CONFLICT, 0, NULL },	/* never overwritten */
	{ S_PUT, 1, 0, "team-a", 1000, 1500, 0, 0, 0, NULL },
	{ S_PUT, 2, 1, "team-b", 1000, 9000, 0, 0, 0, NULL },
	{ S_GET, 0, -1, NULL, 1999, 0, 0, 0, 0, "team-a" },
	{ S_GET, 0, -1, NULL, 2000, 0, 0, GW_STORE_ABSENT, 0, NULL },	/* expired at its expiry */
	{ S_EXPIRE, -1, -1, NULL, 2500, 0, 1, 0, 1, NULL },		/* two expired, one per call */
	{ S_EXPIRE, -1, -1, NULL, 2500, 0, 1000, 0, 1, NULL },
	{ S_EXPIRE, -1, -1, NULL, 2500, 0, 1000, 0, 0, NULL },
	{ S_GET, 2, -1, NULL, 2500, 0, 0, 0, 0, "team-b" },
	{ S_REVOKE, -1, 0, NULL, 0, 0, 0, 0, 0, NULL },			/* key a has none left */
	{ S_REVOKE, -1, 1, NULL, 0, 0, 0, 0, 1, NULL },
	{ S_GET, 2, -1, NULL, 2500, 0, 0, GW_STORE_ABSENT, 0, NULL },
	{ S_PUT, 0, 0, "team-a", 3000, 4000, 0, 0, 0, NULL },
	{ S_DEL, 0, -1, NULL, 0, 0, 0, 0, 0, NULL },
	{ S_DEL, 0, -1, NULL, 0, 0, 0, 0, 0, NULL },			/* absent: still 0 */
	{ S_GET, 0, -1, NULL, 3000, 0, 0, GW_STORE_ABSENT, 0, NULL },
	/* refused up front, counted in rejected_args */
	{ S_PUT, 0, -1, "team-a", 0, 10, 0, GW_STORE_ERROR, 0, NULL },	/* no key hash */
	{ S_PUT, 0, 0, "", 0, 10, 0, GW_STORE_ERROR, 0, NULL },
	{ S_PUT, 0, 0, "team-a", 10, 10, 0, GW_STORE_ERROR, 0, NULL },	/* expires when opened */
	{ S_GET, -1, -1, NULL, 0, 0, 0, GW_STORE_ERROR, 0, NULL },
	{ S_REVOKE, -1, -1, NULL, 0, 0, 0, GW_STORE_ERROR, 0, NULL },
	{ S_EXPIRE, -1, -1, NULL, 0, 0, 0, GW_STORE_ERROR, 0, NULL },
	{ S_EXPIRE, -1, -1, NULL, 0, 0, GW_STORE_SESS_EXPIRE_MAX + 1, GW_STORE_ERROR, 0, NULL },
	{ S_BAD, -1, -1, NULL, 0, 0, 0, GW_STORE_ERROR, 0, NULL },
};

static void run_sess_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	uint64_t rejected;
	int refused = 0;

	if (b == BK_SQLITE)
		tmp_make(&t);
	s = open_backend(b, &t);
	rejected = gw_store_stats(s)->rejected_args;

	for (size_t i = 0; i < sizeof sess_cases / sizeof sess_cases[0]; i++) {
		struct gw_sess_req q = { .op = (enum gw_sess_op)sess_cases[i].op };
		struct got_sess g = { 0 };

		q.token_sha256 = sess_cases[i].tok >= 0 ? sess_tok[sess_cases[i].tok] : NULL;
		q.key_sha256 = sess_cases[i].key >= 0 ? sess_key[sess_cases[i].key] : NULL;
		q.tenant = sess_cases[i].tenant;
		q.now_ms = sess_cases[i].now;
		q.expires_ms = sess_cases[i].expires;
		q.max = sess_cases[i].max;
		gw_store_sess(s, &q, t_sess_done, &g);
		T_INLINE(g);
		cr_expect_eq(g.rc, sess_cases[i].rc, "case %zu: rc %d", i, g.rc);
		cr_expect_eq(g.count, sess_cases[i].count, "case %zu: count %ld", i, g.count);
		cr_expect_eq(g.has, sess_cases[i].found != NULL, "case %zu", i);
		if (sess_cases[i].found && g.has) {
			cr_expect_str_eq(g.sess.tenant, sess_cases[i].found, "case %zu", i);
			cr_expect_eq(memcmp(g.sess.key_sha256,
					    sess_key[strcmp(sess_cases[i].found, "team-a") == 0 ? 0 : 1], 32),
				     0, "case %zu", i);
		}
		refused += sess_cases[i].rc == GW_STORE_ERROR;
	}
	cr_expect_eq(gw_store_stats(s)->rejected_args - rejected, (uint64_t)refused);
	gw_store_close(s);
	if (b == BK_SQLITE)
		tmp_clean(&t);
}

Test(store, sess_table_memory) { run_sess_table(BK_MEM); }
Test(store, sess_table_sqlite) { run_sess_table(BK_SQLITE); }

/* Writes are refused on a read-only store; reads answer. */
Test(store, sess_read_only)
{
	struct gw_store *s = gw_store_open_mem(0, 1);
	struct gw_sess_req put = { .op = GW_SESS_PUT, .token_sha256 = sess_tok[0],
				   .key_sha256 = sess_key[0], .tenant = "t", .now_ms = 0,
				   .expires_ms = 10 };
	struct gw_sess_req get = { .op = GW_SESS_GET, .token_sha256 = sess_tok[0] };
	struct got_sess g = { 0 };

	cr_assert_not_null(s);
	gw_store_sess(s, &put, t_sess_done, &g);
	T_INLINE(g);
	cr_expect_eq(g.rc, GW_STORE_ERROR);
	cr_expect_eq(gw_store_stats(s)->rejected_read_only, 1);
	memset(&g, 0, sizeof g);
	gw_store_sess(s, &get, t_sess_done, &g);
	T_INLINE(g);
	cr_expect_eq(g.rc, GW_STORE_ABSENT);
	gw_store_close(s);
}

/* ---- the usage ledger (issue 22) ---- */

struct got_usage {
	int n, rc;
	long count;
	int64_t first;		/* sums[0].seconds, or rows[0].state; -1 when none */
	long jobs_succeeded;	/* sums[0].jobs[SUCCEEDED] */
	char ids[256];		/* LIST: the ids, comma-separated */
};

static void t_usage_done(void *arg, const struct gw_store_res *r)
{
	struct got_usage *g = arg;

	g->n++;
	g->rc = r->rc;
	g->count = r->count;
	g->first = -1;
	if (r->usage_sums && r->count > 0) {
		g->first = r->usage_sums[0].seconds;
		g->jobs_succeeded = r->usage_sums[0].jobs[GW_USAGE_SUCCEEDED];
	} else if (r->usage && r->count > 0) {
		g->first = r->usage[0].state;
	}
	for (long i = 0; r->usage && i < r->count; i++) {
		size_t l = strlen(g->ids);

		snprintf(g->ids + l, sizeof g->ids - l, "%s%s", l ? "," : "", r->usage[i].id);
	}
}

enum { U_RES = GW_USAGE_RESERVE, U_START = GW_USAGE_START, U_REL = GW_USAGE_RELEASE,
       U_SETTLE = GW_USAGE_SETTLE, U_GET = GW_USAGE_GET, U_SUM = GW_USAGE_SUM,
       U_CHG = GW_USAGE_CHARGED, U_LIST = GW_USAGE_LIST, U_BAD = 99 };
#define U_T0 1000000		/* the table's clock */
#define U_STALE (U_T0 + GW_USAGE_RESERVE_STALE_MS)

/* op, id, tenant, rid, seconds, limit, now, ok, count_failed -> rc, count, first (RESERVE: used
 * before; SUM/CHARGED: the first tenant's seconds; GET, LIST: the first row's state; -1 none),
 * ids (LIST) */
static const struct {
	int op;
	const char *id, *tenant, *rid;
	int64_t secs, limit, now;
	int ok, cf;
	int rc;
	long count;
	int64_t first;
	const char *ids;
} usage_cases[] = {
	{ U_RES, "u1", "team-a", NULL, 30, 60, U_T0, 0, 0, 0, 1, 0, NULL },
	{ U_RES, "u2", "team-a", NULL, 30, 60, U_T0 + 1, 0, 0, 0, 1, 30, NULL },
	{ U_RES, "u3", "team-a", NULL, 1, 60, U_T0 + 2, 0, 0, GW_STORE_CONFLICT, 1, 60, NULL },	/* over */
	{ U_RES, "u3", "team-b", NULL, 1, 60, U_T0 + 2, 0, 0, 0, 1, 0, NULL },	/* its own budget */
	{ U_RES, "u1", "team-a", NULL, 0, -1, U_T0 + 3, 0, 0, GW_STORE_CONFLICT, 1, 60, NULL },	/* id taken */
	{ U_RES, "u9", "team-a", NULL, 5, -1, U_T0 + 3, 0, 0, 0, 1, 60, NULL },	/* no limit: soft */
	{ U_REL, "u9", NULL, NULL, 0, 0, U_T0 + 4, 0, 0, 0, 1, -1, NULL },
	{ U_START, "u1", NULL, "R1", 0, 0, 0, 0, 0, 0, 1, -1, NULL },
	{ U_START, "u1", NULL, "R1", 0, 0, 0, 0, 0, GW_STORE_ABSENT, 0, -1, NULL },	/* not reserved */
	{ U_REL, "u2", NULL, NULL, 0, 0, U_T0 + 5, 0, 0, 0, 1, -1, NULL },	/* upstream refused it */
	{ U_REL, "u2", NULL, NULL, 0, 0, U_T0 + 5, 0, 0, 0, 0, -1, NULL },
	{ U_RES, "u4", "team-a", NULL, 30, 60, U_T0 + 6, 0, 0, 0, 1, 30, NULL },	/* u2's seconds free */
	{ U_START, "u4", NULL, "R4", 0, 0, 0, 0, 0, 0, 1, -1, NULL },
	{ U_SETTLE, NULL, NULL, "R1", 0, 0, U_T0 + 7, 1, 0, 0, 1, -1, NULL },
	{ U_SETTLE, NULL, NULL, "R1", 0, 0, U_T0 + 8, 1, 0, 0, 0, -1, NULL },	/* idempotent */
	{ U_SETTLE, NULL, NULL, "R4", 0, 0, U_T0 + 9, 0, 0, 0, 1, -1, NULL },	/* failed: released */
	{ U_SUM, NULL, "team-a", NULL, 0, 0, U_T0 + 10, 0, 0, 0, 1, 30, NULL },
	{ U_SUM, NULL, NULL, NULL, 0, 0, U_T0 + 10, 0, 0, 0, 2, 30, NULL },	/* team-a, team-b */
	{ U_GET, NULL, "team-a", "R1", 0, 0, 0, 0, 0, 0, 1, GW_USAGE_SUCCEEDED, NULL },
	{ U_GET, NULL, "team-a", "R4", 0, 0, 0, 0, 0, 0, 1, GW_USAGE_FAILED, NULL },
	{ U_GET, NULL, "team-b", "R1", 0, 0, 0, 0, 0, GW_STORE_ABSENT, 0, -1, NULL },
	{ U_CHG, NULL, NULL, NULL, 0, 0, U_T0 + 10, 0, 0, 0, 1, 30, NULL },	/* team-a's R1 and R4 */
	{ U_CHG, NULL, "team-b", NULL, 0, 0, U_T0 + 10, 0, 0, 0, 0, -1, NULL },
	/* count_failed: a failure is charged */
	{ U_RES, "u5", "team-a", NULL, 20, 60, U_T0 + 11, 0, 0, 0, 1, 30, NULL },
	{ U_START, "u5", NULL, "R5", 0, 0, 0, 0, 0, 0, 1, -1, NULL },
	{ U_SETTLE, NULL, NULL, "R5", 0, 0, U_T0 + 12, 0, 1, 0, 1, -1, NULL },
	{ U_SUM, NULL, "team-a", NULL, 0, 0, U_T0 + 13, 0, 0, 0, 1, 50, NULL },
	/* team-b's u3 never ended: it stops counting once stale */
	{ U_RES, "u6", "team-b", NULL, 60, 60, U_T0 + 14, 0, 0, GW_STORE_CONFLICT, 1, 1, NULL },
	{ U_RES, "u6", "team-b", NULL, 60, 60, U_STALE + 2, 0, 0, 0, 1, 0, NULL },
	{ U_LIST, "", NULL, NULL, 0, 0, 0, 0, 0, 0, 3, GW_USAGE_SUCCEEDED, "u1,u2,u3" },
	{ U_LIST, "u3", NULL, NULL, 0, 0, U_T0 + 2, 0, 0, 0, 3, GW_USAGE_RELEASED, "u9,u4,u5" },	/* the next page */
	{ U_LIST, "u5", NULL, NULL, 0, 0, U_T0 + 11, 0, 0, 0, 1, GW_USAGE_RESERVED, "u6" },
	/* refused up front, counted in rejected_args */
	{ U_RES, "", "team-a", NULL, 1, 60, U_T0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_RES, "u7", "", NULL, 1, 60, U_T0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_RES, "u7", "team-a", NULL, -1, 60, U_T0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_START, "u7", NULL, NULL, 0, 0, 0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_SETTLE, NULL, NULL, NULL, 0, 0, 0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_GET, NULL, NULL, "R1", 0, 0, 0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
	{ U_BAD, NULL, NULL, NULL, 0, 0, 0, 0, 0, GW_STORE_ERROR, 0, -1, NULL },
};

static void run_usage_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	uint64_t rejected;
	int refused = 0;

	if (b == BK_SQLITE)
		tmp_make(&t);
	s = open_backend(b, &t);
	rejected = gw_store_stats(s)->rejected_args;
	for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
		struct gw_usage_row row = { .input_ms = -1, .persons = 1 };
		struct gw_usage_req q = { .op = (enum gw_usage_op)usage_cases[i].op };
		struct got_usage g = { 0 };

		snprintf(row.id, sizeof row.id, "%s", usage_cases[i].id ? usage_cases[i].id : "");
		snprintf(row.tenant, sizeof row.tenant, "%s",
			 usage_cases[i].tenant ? usage_cases[i].tenant : "");
		snprintf(row.source, sizeof row.source, "url");
		row.seconds = usage_cases[i].secs;
		row.started_ms = usage_cases[i].now;
		q.row = &row;
		q.id = usage_cases[i].id;
		q.rid = usage_cases[i].rid;
		q.tenant = usage_cases[i].tenant;
		q.ok = usage_cases[i].ok;
		q.count_failed = usage_cases[i].cf;
		q.limit_s = usage_cases[i].limit;
		q.now_ms = usage_cases[i].now;
		q.from_ms = usage_cases[i].op == U_LIST ? usage_cases[i].now : 0;
		q.to_ms = INT64_C(1) << 50;
		q.after = usage_cases[i].id;
		q.max = 3;
		gw_store_usage(s, &q, t_usage_done, &g);
		T_INLINE(g);
		cr_expect_eq(g.rc, usage_cases[i].rc, "case %zu: rc %d", i, g.rc);
		cr_expect_eq(g.count, usage_cases[i].count, "case %zu: count %ld", i, g.count);
		cr_expect_eq(g.first, usage_cases[i].first, "case %zu: first %lld", i, (long long)g.first);
		if (usage_cases[i].ids)
			cr_expect_str_eq(g.ids, usage_cases[i].ids, "case %zu", i);
		refused += usage_cases[i].rc == GW_STORE_ERROR;
	}
	cr_expect_eq(gw_store_stats(s)->rejected_args - rejected, (uint64_t)refused);
	gw_store_close(s);
	if (b == BK_SQLITE)
		tmp_clean(&t);
}

Test(store, usage_table_memory) { run_usage_table(BK_MEM); }
Test(store, usage_table_sqlite) { run_usage_table(BK_SQLITE); }

/* The ledger outlives a restart of the SQLite file; writes are refused read-only. */
Test(store, usage_sqlite_reopen_and_read_only)
{
	struct tmpdir t;
	struct gw_usage_row row = { .id = "u1", .tenant = "team-a", .seconds = 7, .input_ms = 6500,
				    .persons = 1, .source = "url", .started_ms = U_T0 };
	struct gw_usage_req res = { .op = GW_USAGE_RESERVE, .row = &row, .limit_s = -1 };
	struct gw_usage_req sum = { .op = GW_USAGE_SUM, .from_ms = 0, .to_ms = U_T0 + 1,
				    .now_ms = U_T0 };
	struct got_usage g = { 0 };
	char err[GW_STORE_ERR_MAX] = "";
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	gw_store_usage(s, &res, t_usage_done, &g);
	cr_expect_eq(g.rc, 0);
	gw_store_close(s);
	s = gw_store_open(t.db, 1, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	memset(&g, 0, sizeof g);
	gw_store_usage(s, &sum, t_usage_done, &g);
	T_INLINE(g);
	cr_expect_eq(g.rc, 0);
	cr_expect_eq(g.count, 1);
	cr_expect_eq(g.first, 7);
	memset(&g, 0, sizeof g);
	row.id[1] = '2';
	gw_store_usage(s, &res, t_usage_done, &g);
	cr_expect_eq(g.rc, GW_STORE_ERROR);
	cr_expect_eq(gw_store_stats(s)->rejected_read_only, 1);
	gw_store_close(s);
	tmp_clean(&t);
}

/* A multi-person run reuses its detection's rid: REFOLLOW unsettles the job row so the
 * follower claims it again; once, and nothing for an unknown rid. */
static void run_refollow(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	struct gw_usage_req q = { .op = GW_USAGE_REFOLLOW, .rid = "J1" };
	struct got_usage g = { 0 };
	struct got gs = { 0 };
	char claimed[64];

	if (b == BK_SQLITE)
		tmp_make(&t);
	s = open_backend(b, &t);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "J1", "team-a", U_T0), 0);
	gw_store_job_settle(s, "J1", U_T0 + 1, t_done, &gs);
	cr_assert_eq(gs.rc, 0);
	cr_expect_eq(t_claim(s, "me", 8, claimed, sizeof claimed), 0);
	cr_expect_str_eq(claimed, "", "settled: not claimed");
	gw_store_usage(s, &q, t_usage_done, &g);
	T_INLINE(g);
	cr_expect_eq(g.rc, 0);
	cr_expect_eq(g.count, 1);
	cr_expect_eq(t_claim(s, "me", 8, claimed, sizeof claimed), 0);
	cr_expect_str_eq(claimed, "J1");
	memset(&g, 0, sizeof g);
	gw_store_usage(s, &q, t_usage_done, &g);
	cr_expect_eq(g.count, 0, "not settled now: nothing to do");
	memset(&g, 0, sizeof g);
	q.rid = "nope";
	gw_store_usage(s, &q, t_usage_done, &g);
	cr_expect_eq(g.rc, 0);
	cr_expect_eq(g.count, 0);
	gw_store_close(s);
	if (b == BK_SQLITE)
		tmp_clean(&t);
}

Test(store, usage_refollow_memory) { run_refollow(BK_MEM); }
Test(store, usage_refollow_sqlite) { run_refollow(BK_SQLITE); }
