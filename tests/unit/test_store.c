/* Unit tests for gateway/state/store.c, store_sqlite.c and store_mem.c: both backends through the
 * same tables, then what only the SQLite file does (reopen, crash, corrupt, unwritable, read-only). */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>

#include "gateway/state/store.h"

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
	return s;
}

/* owner_each -> "id,id,..." sorted, so both backends compare alike. */
struct ids {
	char v[32][GW_STORE_ID_MAX + 1];
	size_t n;
	size_t stop_after;	/* 0 = never stop */
};

static int collect_id(void *arg, const char *id)
{
	struct ids *x = arg;

	cr_assert_lt(x->n, 32);
	snprintf(x->v[x->n++], sizeof x->v[0], "%s", id);
	return x->stop_after && x->n >= x->stop_after;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void each_joined(struct gw_store *s, enum gw_store_kind k, const char *tenant, char *out,
			size_t cap)
{
	struct ids x = { .n = 0 };

	cr_assert_eq(gw_store_owner_each(s, k, tenant, collect_id, &x), 0);
	qsort(x.v, x.n, sizeof x.v[0], cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < x.n; i++) {
		strncat(out, i ? "," : "", cap - strlen(out) - 1);
		strncat(out, x.v[i], cap - strlen(out) - 1);
	}
}

static char long_id[GW_STORE_ID_MAX + 2];	/* one byte over the limit */

static void fill_long(void)
{
	memset(long_id, 'x', GW_STORE_ID_MAX + 1);
	long_id[GW_STORE_ID_MAX + 1] = '\0';
}

/* ---- ownership table, run on both backends ---- */

enum oop { O_PUT, O_GET, O_DEL, O_EACH };
static const struct {
	enum oop op;
	enum gw_store_kind kind;
	const char *id;		/* "@long" = one byte over GW_STORE_ID_MAX */
	const char *tenant;	/* for PUT/EACH */
	int rc;
	const char *want;	/* GET: tenant; EACH: sorted ids */
} owner_cases[] = {
	{ O_PUT, GW_OBJ_JOB, "r1", "team-a", 0, NULL },
	{ O_PUT, GW_OBJ_JOB, "r1", "team-a", 0, NULL },		/* idempotent */
	{ O_PUT, GW_OBJ_JOB, "r1", "team-b", -1, NULL },	/* never overwritten */
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
	{ O_EACH, GW_OBJ_JOB, NULL, "team-a", 0, "r1,r2" },
	{ O_EACH, GW_OBJ_JOB, NULL, "team-b", 0, "r3" },
	{ O_EACH, GW_OBJ_ENDPOINT, NULL, "team-a", 0, "e1" },
	{ O_EACH, GW_OBJ_MODEL, NULL, "team-a", 0, "" },
	{ O_EACH, GW_OBJ_JOB, NULL, "team-c", 0, "" },
	{ O_DEL, GW_OBJ_JOB, "r1", NULL, 0, NULL },
	{ O_GET, GW_OBJ_JOB, "r1", NULL, 0, NULL },
	{ O_DEL, GW_OBJ_JOB, "r1", NULL, 0, NULL },		/* absent: still 0 */
	{ O_GET, GW_OBJ_MODEL, "r1", NULL, 1, "team-b" },	/* other kind untouched */
	{ O_EACH, GW_OBJ_JOB, NULL, "team-a", 0, "r2" },
};

static void run_owner_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;
	char who[GW_STORE_TENANT_MAX + 1], got[512];

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
			rc = gw_store_owner_put(s, owner_cases[i].kind, id, owner_cases[i].tenant, 1000 + (int64_t)i);
			break;
		case O_GET:
			who[0] = '\0';
			rc = gw_store_owner_get(s, owner_cases[i].kind, id, who, sizeof who);
			if (owner_cases[i].want)
				cr_expect_str_eq(who, owner_cases[i].want, "backend %d case %zu", b, i);
			break;
		case O_DEL:
			rc = gw_store_owner_del(s, owner_cases[i].kind, id);
			break;
		case O_EACH:
			each_joined(s, owner_cases[i].kind, owner_cases[i].tenant, got, sizeof got);
			cr_expect_str_eq(got, owner_cases[i].want, "backend %d case %zu: got '%s'", b, i, got);
			break;
		}
		cr_expect_eq(rc, owner_cases[i].rc, "backend %d case %zu: rc %d (%s)", b, i, rc,
			     gw_store_errmsg(s));
	}
	cr_expect_eq(gw_store_stats(s)->owner_conflicts, 1);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 5);
	cr_expect_eq(gw_store_stats(s)->errors, 0);
	/* a tenant buffer too small is an error, not a truncated name */
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "r2", who, 3), -1);
	/* each stops when the callback says so */
	{
		struct ids x = { .n = 0, .stop_after = 1 };

		cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "r4", "team-a", 1), 0);
		cr_expect_eq(gw_store_owner_each(s, GW_OBJ_JOB, "team-a", collect_id, &x), 0);
		cr_expect_eq(x.n, 1);
	}
	gw_store_close(s);
	tmp_clean(&t);
}

Test(store, owner_table_memory) { run_owner_table(BK_MEM); }
Test(store, owner_table_sqlite) { run_owner_table(BK_SQLITE); }

/* ---- idempotency table, run on both backends ---- */

enum iop { I_BEGIN, I_FINISH, I_ABORT, I_PENDING, I_EXPIRE };
static const struct {
	enum iop op;
	const char *tenant, *key;
	uint8_t fp;		/* BEGIN: every byte of the fingerprint */
	const char *arg;	/* BEGIN: source; FINISH: rid */
	int64_t ms;		/* BEGIN: now; EXPIRE: older than */
	int rc;
	/* BEGIN that found an entry: what it holds */
	int done;
	uint8_t efp;
	const char *erid;
	const char *want;	/* PENDING: "tenant/key,..." oldest first */
} idem_cases[] = {
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 100, 1, 0, 0, NULL, NULL },
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 101, 0, 0, 1, "", NULL },	/* existed, PENDING */
	{ I_BEGIN, "a", "k1", 2, "http://s/u/2/w.mp4", 102, 0, 0, 1, "", NULL },	/* still the first */
	{ I_BEGIN, "b", "k1", 3, "http://s/u/3/x.mp4", 90, 1, 0, 0, NULL, NULL },	/* per tenant */
	{ I_BEGIN, "a", "k2", 4, "rerun:R0", 110, 1, 0, 0, NULL, NULL },
	{ I_PENDING, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, "b/k1,a/k1,a/k2" },
	{ I_FINISH, "a", "k1", 0, "RID1", 0, 0, 0, 0, NULL, NULL },
	{ I_FINISH, "a", "k1", 0, "RID1", 0, 0, 0, 0, NULL, NULL },			/* same rid: fine */
	{ I_FINISH, "a", "k1", 0, "RID2", 0, -1, 0, 0, NULL, NULL },			/* another rid */
	{ I_FINISH, "a", "nokey", 0, "RID3", 0, -1, 0, 0, NULL, NULL },
	{ I_BEGIN, "a", "k1", 1, "http://s/u/1/v.mp4", 120, 0, 1, 1, "RID1", NULL },	/* DONE */
	{ I_PENDING, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, "b/k1,a/k2" },
	{ I_ABORT, "a", "k1", 0, NULL, 0, 0, 0, 0, NULL, NULL },			/* DONE kept */
	{ I_BEGIN, "a", "k1", 9, "http://s/u/9/z.mp4", 130, 0, 1, 1, "RID1", NULL },
	{ I_ABORT, "b", "k1", 0, NULL, 0, 0, 0, 0, NULL, NULL },			/* PENDING gone */
	{ I_ABORT, "b", "k1", 0, NULL, 0, 0, 0, 0, NULL, NULL },			/* absent: 0 */
	{ I_PENDING, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, "a/k2" },
	{ I_BEGIN, "b", "k1", 5, "http://s/u/5/y.mp4", 140, 1, 0, 0, NULL, NULL },	/* fresh again */
	{ I_BEGIN, "a", "", 1, "http://s/u/1/v.mp4", 150, -1, 0, 0, NULL, NULL },
	{ I_BEGIN, "a", "k3", 1, "", 150, -1, 0, 0, NULL, NULL },
	{ I_EXPIRE, NULL, NULL, 0, NULL, 110, 1, 0, 0, NULL, NULL },			/* a/k1 (100) */
	{ I_EXPIRE, NULL, NULL, 0, NULL, 110, 0, 0, 0, NULL, NULL },
	{ I_PENDING, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, "a/k2,b/k1" },
	{ I_EXPIRE, NULL, NULL, 0, NULL, 1000, 2, 0, 0, NULL, NULL },
	{ I_PENDING, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, "" },
};

struct pend {
	char s[512];
	struct gw_idem last;
};

static int collect_pending(void *arg, const char *tenant, const char *key, const struct gw_idem *e)
{
	struct pend *p = arg;

	if (p->s[0])
		strncat(p->s, ",", sizeof p->s - strlen(p->s) - 1);
	strncat(p->s, tenant, sizeof p->s - strlen(p->s) - 1);
	strncat(p->s, "/", sizeof p->s - strlen(p->s) - 1);
	strncat(p->s, key, sizeof p->s - strlen(p->s) - 1);
	p->last = *e;
	return 0;
}

static void run_idem_table(enum backend b)
{
	struct tmpdir t;
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(b, &t);
	for (size_t i = 0; i < sizeof idem_cases / sizeof idem_cases[0]; i++) {
		struct gw_idem e;
		struct pend p = { .s = "" };
		uint8_t fp[32];
		int rc = 0;

		memset(&e, 0x5a, sizeof e);
		switch (idem_cases[i].op) {
		case I_BEGIN:
			memset(fp, idem_cases[i].fp, sizeof fp);
			rc = gw_store_idem_begin(s, idem_cases[i].tenant, idem_cases[i].key, fp,
						 idem_cases[i].arg, idem_cases[i].ms, &e);
			if (rc == 0) {
				cr_expect_eq(e.done, idem_cases[i].done, "backend %d case %zu", b, i);
				cr_expect_eq(e.fp[0], idem_cases[i].efp, "backend %d case %zu", b, i);
				cr_expect_eq(e.fp[31], idem_cases[i].efp, "backend %d case %zu", b, i);
				cr_expect_str_eq(e.rid, idem_cases[i].erid, "backend %d case %zu", b, i);
			}
			break;
		case I_FINISH:
			rc = gw_store_idem_finish(s, idem_cases[i].tenant, idem_cases[i].key, idem_cases[i].arg);
			break;
		case I_ABORT:
			rc = gw_store_idem_abort(s, idem_cases[i].tenant, idem_cases[i].key);
			break;
		case I_PENDING:
			rc = gw_store_idem_pending(s, collect_pending, &p);
			cr_expect_str_eq(p.s, idem_cases[i].want, "backend %d case %zu: got '%s'", b, i, p.s);
			break;
		case I_EXPIRE:
			rc = gw_store_idem_expire(s, idem_cases[i].ms);
			break;
		}
		cr_expect_eq(rc, idem_cases[i].rc, "backend %d case %zu: rc %d (%s)", b, i, rc,
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

/* A pending entry carries everything it was begun with (what reconciliation reads). */
Test(store, idem_pending_entry_fields)
{
	for (int b = BK_MEM; b <= BK_SQLITE; b++) {
		struct tmpdir t;
		struct gw_store *s;
		struct pend p = { .s = "" };
		char src[GW_STORE_SOURCE_MAX + 2];
		uint8_t fp[32];

		tmp_make(&t);
		s = open_backend((enum backend)b, &t);
		for (int i = 0; i < 32; i++)
			fp[i] = (uint8_t)(i * 7);
		memset(src, 's', sizeof src - 1);
		src[sizeof src - 1] = '\0';	/* GW_STORE_SOURCE_MAX + 1 bytes: too long */
		cr_expect_eq(gw_store_idem_begin(s, "a", "k", fp, src, 5, NULL), -1);
		src[GW_STORE_SOURCE_MAX] = '\0';	/* exactly the limit: fine */
		cr_expect_eq(gw_store_idem_begin(s, "a", "k", fp, src, 1234567890123LL, NULL), 1);
		cr_expect_eq(gw_store_idem_pending(s, collect_pending, &p), 0);
		cr_expect_str_eq(p.s, "a/k");
		cr_expect_eq(memcmp(p.last.fp, fp, 32), 0);
		cr_expect_eq(p.last.done, 0);
		cr_expect_eq(p.last.created_ms, 1234567890123LL);
		cr_expect_eq(strlen(p.last.source), GW_STORE_SOURCE_MAX);
		cr_expect_str_eq(p.last.rid, "");
		gw_store_close(s);
		tmp_clean(&t);
	}
}

/* ---- memory backend limits ---- */

Test(store, memory_full_and_read_only)
{
	struct gw_store *s = gw_store_open_mem(3, 0);
	uint8_t fp[32] = { 0 };

	cr_assert_not_null(s);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "a", "t", 1), 0);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "b", "t", 1), 0);
	cr_expect_eq(gw_store_idem_begin(s, "t", "k1", fp, "http://x/y", 1, NULL), 1);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "c", "t", 1), -1);
	cr_expect_eq(gw_store_idem_begin(s, "t", "k2", fp, "http://x/y", 1, NULL), -1);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is full");
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "a", "t", 1), 0);	/* existing: no new row */
	cr_expect_eq(gw_store_stats(s)->rejected_full, 2);
	cr_expect_eq(gw_store_owner_del(s, GW_OBJ_JOB, "a"), 0);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "c", "t", 1), 0);	/* room again */
	gw_store_close(s);

	s = gw_store_open_mem(0, 1);
	cr_assert_not_null(s);
	cr_expect_eq(gw_store_read_only(s), 1);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "a", "t", 1), -1);
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
	char who[64], got[256];
	uint8_t fp[32];

	memset(fp, 7, sizeof fp);
	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_MODEL, "m1", "team-b", 1), 0);
	cr_expect_eq(gw_store_idem_begin(s, "team-a", "k", fp, "http://s/u/1/v.mp4", 5, NULL), 1);
	cr_expect_eq(gw_store_idem_finish(s, "team-a", "k", "r1"), 0);
	gw_store_close(s);

	s = open_backend(BK_SQLITE, &t);
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-a");
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_MODEL, "m1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-b");
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "r1", "team-b", 1), -1);
	cr_expect_eq(gw_store_idem_begin(s, "team-a", "k", fp, "http://s/u/1/v.mp4", 6, &e), 0);
	cr_expect_eq(e.done, 1);
	cr_expect_str_eq(e.rid, "r1");
	cr_expect_eq(e.created_ms, 5);
	each_joined(s, GW_OBJ_JOB, "team-a", got, sizeof got);
	cr_expect_str_eq(got, "r1");
	gw_store_close(s);
	tmp_clean(&t);
}

#define CRASH_ROWS 200	/* rows a child writes before SIGKILL */

/* What a process crash leaves: every write that returned is there after a SIGKILL. */
Test(store, sqlite_survives_sigkill)
{
	struct tmpdir t;
	struct gw_store *s;
	int status = 0;
	pid_t pid;
	char who[64], id[32];

	tmp_make(&t);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char err[GW_STORE_ERR_MAX];
		struct gw_store *c = gw_store_open(t.db, 0, err, sizeof err);
		uint8_t fp[32] = { 1 };

		if (!c)
			_exit(3);
		for (int i = 0; i < CRASH_ROWS; i++) {
			snprintf(id, sizeof id, "rid%03d", i);
			if (gw_store_owner_put(c, GW_OBJ_JOB, id, "team-a", i) != 0)
				_exit(4);
		}
		if (gw_store_idem_begin(c, "team-a", "pending-key", fp, "http://s/u/1/v.mp4", 9, NULL) != 1)
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
		cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "rid199", who, sizeof who), 1);
		gw_store_close(s);
	}
	s = open_backend(BK_SQLITE, &t);
	for (int i = 0; i < CRASH_ROWS; i++) {
		snprintf(id, sizeof id, "rid%03d", i);
		cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, id, who, sizeof who), 1, "%s lost", id);
	}
	{
		struct pend p = { .s = "" };

		cr_expect_eq(gw_store_idem_pending(s, collect_pending, &p), 0);
		cr_expect_str_eq(p.s, "team-a/pending-key");
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
	{ BAD_NEWER_SCHEMA, 0, "schema version 99, newer than this gateway's 1", "refusing to start" },
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
				cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, id, "team-a", j), 0);
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
	char err[GW_STORE_ERR_MAX] = "", who[64];
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
	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	gw_store_close(s);

	s = gw_store_open(t.db, 1, err, sizeof err);
	cr_assert_not_null(s, "read-only open: %s", err);
	cr_expect_eq(gw_store_read_only(s), 1);
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_str_eq(who, "team-a");
	cr_expect_eq(gw_store_owner_put(s, GW_OBJ_JOB, "r2", "team-a", 1), -1);
	cr_expect_eq(gw_store_owner_del(s, GW_OBJ_JOB, "r1"), -1);
	cr_expect_eq(gw_store_idem_begin(s, "team-a", "k", fp, "http://x/y", 1, NULL), -1);
	cr_expect_eq(gw_store_idem_finish(s, "team-a", "k", "r1"), -1);
	cr_expect_eq(gw_store_idem_abort(s, "team-a", "k"), -1);
	cr_expect_eq(gw_store_idem_expire(s, 100), -1);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is read-only");
	cr_expect_eq(gw_store_stats(s)->rejected_read_only, 6);
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "r1", who, sizeof who), 1);	/* untouched */
	gw_store_close(s);
	tmp_clean(&t);
}

/* ---- the owner cache in front of SQLite ---- */

/* Each step on one SQLite store: rc, the tenant a get finds, and whether the get was answered
 * by the owner cache (1) or reached the backend (0). */
static const struct {
	enum oop op;
	enum gw_store_kind kind;
	const char *tenant;	/* PUT */
	int rc;
	const char *want;	/* GET found */
	int cached;		/* GET only */
} oc_cases[] = {
	{ O_GET, GW_OBJ_JOB, NULL, 0, NULL, 0 },
	{ O_GET, GW_OBJ_JOB, NULL, 0, NULL, 1 },		/* "absent" is remembered */
	{ O_PUT, GW_OBJ_JOB, "team-a", 0, NULL, 0 },
	{ O_GET, GW_OBJ_JOB, NULL, 1, "team-a", 1 },		/* the put is remembered */
	{ O_PUT, GW_OBJ_JOB, "team-b", -1, NULL, 0 },		/* conflict: forgotten */
	{ O_GET, GW_OBJ_JOB, NULL, 1, "team-a", 0 },
	{ O_GET, GW_OBJ_JOB, NULL, 1, "team-a", 1 },
	{ O_GET, GW_OBJ_MODEL, NULL, 0, NULL, 0 },		/* kinds are separate keys */
	{ O_DEL, GW_OBJ_JOB, NULL, 0, NULL, 0 },
	{ O_GET, GW_OBJ_JOB, NULL, 0, NULL, 0 },		/* del forgets */
	{ O_GET, GW_OBJ_JOB, NULL, 0, NULL, 1 },
	{ O_PUT, GW_OBJ_JOB, "team-b", 0, NULL, 0 },		/* over a remembered "absent" */
	{ O_GET, GW_OBJ_JOB, NULL, 1, "team-b", 1 },
};

Test(store, sqlite_owner_cache_table)
{
	char who[GW_STORE_TENANT_MAX + 1];
	struct tmpdir t;
	struct gw_store *s;

	tmp_make(&t);
	s = open_backend(BK_SQLITE, &t);
	for (size_t i = 0; i < sizeof oc_cases / sizeof oc_cases[0]; i++) {
		uint64_t ops = gw_store_stats(s)->ops, hits = gw_store_stats(s)->owner_cache_hits;
		int rc = 0;

		who[0] = '\0';
		if (oc_cases[i].op == O_PUT)
			rc = gw_store_owner_put(s, oc_cases[i].kind, "r1", oc_cases[i].tenant, 1);
		else if (oc_cases[i].op == O_DEL)
			rc = gw_store_owner_del(s, oc_cases[i].kind, "r1");
		else
			rc = gw_store_owner_get(s, oc_cases[i].kind, "r1", who, sizeof who);
		cr_expect_eq(rc, oc_cases[i].rc, "case %zu: rc %d", i, rc);
		if (oc_cases[i].want)
			cr_expect_str_eq(who, oc_cases[i].want, "case %zu", i);
		if (oc_cases[i].op == O_GET) {
			cr_expect_eq(gw_store_stats(s)->owner_cache_hits - hits, (uint64_t)oc_cases[i].cached,
				     "case %zu", i);
			cr_expect_eq(gw_store_stats(s)->ops - ops, (uint64_t)!oc_cases[i].cached,
				     "case %zu", i);
		}
	}
	/* A remembered tenant that does not fit the buffer is the backend's error, as without cache. */
	cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, "r1", who, 3), -1);
	gw_store_close(s);
	tmp_clean(&t);
}

/* More ids than slots: answers stay exact when slots are reused; memory stores have no cache. */
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
		cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, id, tenants[i], 1), 0);
	}
	for (size_t i = 0; i < GW_STORE_OWNER_CACHE + 100; i++) {
		snprintf(id, sizeof id, "absent%zu", i);
		cr_assert_eq(gw_store_owner_get(s, GW_OBJ_JOB, id, who, sizeof who), 0);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "own%zu", i);
		cr_expect_eq(gw_store_owner_get(s, GW_OBJ_JOB, id, who, sizeof who), 1);
		cr_expect_str_eq(who, tenants[i]);
	}
	gw_store_close(s);
	tmp_clean(&t);

	m = gw_store_open_mem(0, 0);
	cr_assert_not_null(m);
	cr_assert_eq(gw_store_owner_put(m, GW_OBJ_JOB, "r1", "team-a", 1), 0);
	cr_expect_eq(gw_store_owner_get(m, GW_OBJ_JOB, "r1", who, sizeof who), 1);
	cr_expect_eq(gw_store_owner_get(m, GW_OBJ_JOB, "r1", who, sizeof who), 1);
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
