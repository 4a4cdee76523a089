/* Unit tests for gateway/state/owner.c: the isolation matrix, list filtering, request identity, the
 * idempotent StartJob state machine (on the memory store, and on a SQLite file where it matters),
 * its leases, and reconciliation against upstream /list and /download. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grpc/status.h>

#include "gateway/state/owner.h"

#define INST_A "gw-a-1"		/* this process's lease holder name */
#define INST_B "gw-b-1"		/* another replica (or the next process) */

static struct gw_store *mem_store(void)
{
	struct gw_store *s = gw_store_open_mem(0, 0);

	cr_assert_not_null(s);
	return s;
}

static struct gw_owner *owner_new(struct gw_store *s, int64_t ttl_ms, const char *instance)
{
	struct gw_owner *o = gw_owner_new(s, ttl_ms, instance);

	cr_assert_not_null(o);
	cr_assert_str_eq(gw_owner_instance(o), instance);
	return o;
}

/* A SQLite state file in a fresh temporary directory. */
struct tmpdb {
	char dir[64];
	char db[128];
};

static struct gw_store *sqlite_store(struct tmpdb *t)
{
	char err[GW_STORE_ERR_MAX] = "";
	struct gw_store *s;

	snprintf(t->dir, sizeof t->dir, "/tmp/a3d-owner-XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->db, sizeof t->db, "%s/state.db", t->dir);
	s = gw_store_open(t->db, 0, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	return s;
}

static void sqlite_clean(struct tmpdb *t)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char p[160];

	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", t->db, suffix[i]);
		unlink(p);
	}
	rmdir(t->dir);
}

/* ---- synchronous shims: the memory and SQLite stores complete inline, so every step of the
 * owner completes before its call returns; each shim asserts that, then answers as the
 * synchronous API used to ---- */

#define T_INLINE(n) cr_assert_eq((n), 1, "done ran %d times before the call returned", (n))

struct t_sgot {
	int n, rc;
	long count;
	char who[8][GW_STORE_TENANT_MAX + 1];	/* lookups */
	int found[8];
	size_t nids;
};

static void t_store_done(void *arg, const struct gw_store_res *r)
{
	struct t_sgot *g = arg;

	g->n++;
	g->rc = r->rc;
	g->count = r->count;
	for (size_t i = 0; r->rc == 0 && r->tenants && i < g->nids && i < 8; i++) {
		g->found[i] = r->tenants[i] != NULL;
		snprintf(g->who[i], sizeof g->who[i], "%s", r->tenants[i] ? r->tenants[i] : "");
	}
}

static int t_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant)
{
	struct t_sgot g = { 0 };

	gw_store_owner_put(s, k, id, tenant, 1, t_store_done, &g);
	T_INLINE(g.n);
	return g.rc;
}

static int t_del(struct gw_store *s, enum gw_store_kind k, const char *id)
{
	struct t_sgot g = { 0 };

	gw_store_owner_del(s, k, id, t_store_done, &g);
	T_INLINE(g.n);
	return g.rc;
}

/* What gw_owner_check was: the store's answer for id, then gw_owner_may_see. 0 may see, -1 not
 * found, -2 the store refused or failed (UNAVAILABLE, never "not found"). */
static int t_check(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
		   int see_foreign)
{
	struct t_sgot g = { .nids = 1 };

	gw_store_owner_lookup(s, k, (const char *const[]){ id }, 1, t_store_done, &g);
	T_INLINE(g.n);
	if (g.rc != 0)
		return -2;
	return gw_owner_may_see(g.found[0] ? g.who[0] : NULL, tenant, see_foreign) ? 0 : -1;
}

/* The answer of gw_owner_idem_start, copied (out is valid during the callback only). */
static char t_start_err[GW_STORE_ERR_MAX + 64];

struct t_started {
	int n;
	enum gw_idem_verdict v;
	struct gw_owner_start *out;
};

static void t_on_start(void *arg, enum gw_idem_verdict v, const struct gw_owner_start *out)
{
	struct t_started *x = arg;

	x->n++;
	x->v = v;
	*x->out = *out;
	snprintf(t_start_err, sizeof t_start_err, "%s", out->err ? out->err : "");
	x->out->err = NULL;
	if (v == GW_IDEM_ERROR)
		cr_expect_not_null(out->err, "ERROR without a reason");
}

static enum gw_idem_verdict t_start(struct gw_owner *o, const char *tenant, const char *key,
				    const uint8_t fp[32], const char *source, int64_t now_ms,
				    gw_owner_wake_fn wake, void *arg, struct gw_owner_start *st)
{
	struct t_started x = { 0, GW_IDEM_ERROR, st };

	memset(st, 0, sizeof *st);
	t_start_err[0] = '\0';
	gw_owner_idem_start(o, tenant, key, fp, source, now_ms, wake, arg, t_on_start, &x);
	T_INLINE(x.n);
	return x.v;
}

/* What the end of an attempt told its caller. */
struct t_ended {
	int n;
	char rid[GW_STORE_RID_MAX + 1];	/* "" = none */
	int code;
	char msg[GW_OWNER_MSG_MAX];
};

static struct t_ended t_last_end;

static void t_on_end(void *arg, const char *rid, int code, const char *msg)
{
	struct t_ended *x = arg;

	x->n++;
	snprintf(x->rid, sizeof x->rid, "%s", rid ? rid : "");
	x->code = code;
	snprintf(x->msg, sizeof x->msg, "%s", msg ? msg : "");
}

/* done / adopt: 0 when the caller heard its rid, -1 otherwise (t_last_end.code says what). */
static int t_done(struct gw_owner *o, const char *tenant, const char *key, const char *rid, int64_t now_ms)
{
	memset(&t_last_end, 0, sizeof t_last_end);
	gw_owner_idem_done(o, tenant, key, rid, now_ms, t_on_end, &t_last_end);
	T_INLINE(t_last_end.n);
	return strcmp(t_last_end.rid, rid) == 0 && t_last_end.code == GRPC_STATUS_OK ? 0 : -1;
}

static int t_adopt(struct gw_owner *o, const char *tenant, const char *key, const char *rid, int64_t now_ms)
{
	memset(&t_last_end, 0, sizeof t_last_end);
	gw_owner_idem_adopt(o, tenant, key, rid, now_ms, t_on_end, &t_last_end);
	T_INLINE(t_last_end.n);
	return strcmp(t_last_end.rid, rid) == 0 && t_last_end.code == GRPC_STATUS_OK ? 0 : -1;
}

/* failed: everyone hears the attempt's own code and message, whatever the store said. */
static int t_failed(struct gw_owner *o, const char *tenant, const char *key, int forget, int code,
		    const char *msg)
{
	memset(&t_last_end, 0, sizeof t_last_end);
	gw_owner_idem_failed(o, tenant, key, forget, code, msg, t_on_end, &t_last_end);
	T_INLINE(t_last_end.n);
	cr_expect_str_eq(t_last_end.rid, "");
	cr_expect_eq(t_last_end.code, code);
	cr_expect_str_eq(t_last_end.msg, msg);
	return 0;
}

struct t_expired {
	int n;
	long count;
};

static void t_on_expire(void *arg, long n, const char *err)
{
	struct t_expired *x = arg;

	x->n++;
	x->count = n;
	if (n < 0)
		cr_expect_not_null(err);
}

static long t_expire(struct gw_owner *o, int64_t now_ms)
{
	struct t_expired x = { 0, -9 };

	gw_owner_expire(o, now_ms, t_on_expire, &x);
	T_INLINE(x.n);
	return x.count;
}

/* PENDING keys in the store. */
static long t_pending(struct gw_store *s)
{
	struct t_sgot g = { 0 };

	gw_store_idem_count(s, t_store_done, &g);
	T_INLINE(g.n);
	return g.rc == 0 ? g.count : -1;
}

/* ---- isolation ---- */

/* The pure rule: who is the store's answer (NULL = recorded for nobody). */
static const struct {
	const char *who, *tenant;
	int see_foreign;
	int want;
} may_see_cases[] = {
	{ "team-a", "team-a", 0, 1 },
	{ "team-a", "team-a", 1, 1 },
	{ "team-a", "team-b", 0, 0 },		/* another tenant's: never */
	{ "team-a", "team-b", 1, 0 },
	{ NULL, "team-a", 0, 0 },		/* nobody's: only with see_foreign */
	{ NULL, "team-a", 1, 1 },
	{ "team-a", "team-a2", 1, 0 },		/* whole names only */
	{ "team-a2", "team-a", 1, 0 },
	{ "team-a", "", 1, 0 },			/* an empty tenant sees nothing */
	{ NULL, "", 1, 0 },
	{ "team-a", NULL, 1, 0 },
	{ NULL, NULL, 1, 0 },
};

Test(owner, may_see_table)
{
	for (size_t i = 0; i < sizeof may_see_cases / sizeof may_see_cases[0]; i++)
		cr_expect_eq(gw_owner_may_see(may_see_cases[i].who, may_see_cases[i].tenant,
					      may_see_cases[i].see_foreign),
			     may_see_cases[i].want, "case %zu", i);
}

/* The same rule over the store's answers (t_check: a lookup, then gw_owner_may_see). Ids that
 * are empty or malformed never reach the store (the call's row rejects them, and rpc_owner does
 * not ask about them), so the old rows for "" and NULL ids are gone. */
static const struct {
	enum gw_store_kind kind;
	const char *id, *tenant;
	int see_foreign;
	int want;
} check_cases[] = {
	/* owner */
	{ GW_OBJ_JOB, "RA", "team-a", 0, 0 },
	{ GW_OBJ_JOB, "RA", "team-a", 1, 0 },
	/* another tenant: never, whatever see_foreign says */
	{ GW_OBJ_JOB, "RA", "team-b", 0, -1 },
	{ GW_OBJ_JOB, "RA", "team-b", 1, -1 },
	{ GW_OBJ_JOB, "RA", "admin", 1, -1 },
	/* recorded for nobody (created outside the gateway) */
	{ GW_OBJ_JOB, "RX", "team-a", 0, -1 },
	{ GW_OBJ_JOB, "RX", "admin", 1, 0 },
	/* the kind is part of the identity */
	{ GW_OBJ_MODEL, "RA", "team-a", 0, -1 },
	{ GW_OBJ_MODEL, "M1", "team-b", 0, 0 },
	{ GW_OBJ_MODEL, "M1", "team-a", 0, -1 },
	{ GW_OBJ_ENDPOINT, "E1", "team-a", 0, 0 },
	{ GW_OBJ_ENDPOINT, "E1", "team-b", 1, -1 },
	/* an empty tenant sees nothing */
	{ GW_OBJ_JOB, "RA", "", 1, -1 },
	{ GW_OBJ_JOB, "RA", NULL, 1, -1 },
	{ GW_OBJ_JOB, "RX", "", 1, -1 },
};

static void seed(struct gw_store *s)
{
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "RA", "team-a"), 0);
	cr_assert_eq(t_put(s, GW_OBJ_JOB, "RB", "team-b"), 0);
	cr_assert_eq(t_put(s, GW_OBJ_MODEL, "M1", "team-b"), 0);
	cr_assert_eq(t_put(s, GW_OBJ_ENDPOINT, "E1", "team-a"), 0);
}

Test(owner, check_matrix)
{
	struct gw_store *s = mem_store();

	seed(s);
	for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
		int rc = t_check(s, check_cases[i].kind, check_cases[i].id, check_cases[i].tenant,
				 check_cases[i].see_foreign);

		cr_expect_eq(rc, check_cases[i].want, "case %zu: %d", i, rc);
	}
	gw_store_close(s);
}

/* A store refusal is an error (UNAVAILABLE), never "not found": a bad kind, and an over-long id
 * (which is why callers validate ids before asking: rpc_owner leaves malformed ones unasked). */
Test(owner, check_store_error_is_distinct)
{
	struct gw_store *s = mem_store();
	char over[GW_STORE_ID_MAX + 2];

	memset(over, 'x', sizeof over - 1);
	over[sizeof over - 1] = '\0';
	cr_expect_eq(t_check(s, GW_OBJ_JOB, over, "team-a", 1), -2);
	cr_expect_eq(t_check(s, (enum gw_store_kind)42, "RA", "team-a", 1), -2);
	cr_expect_eq(gw_store_stats(s)->rejected_args, 2);
	gw_store_close(s);
}

/* What gw_owner_filter was, as rpc_owner's list filter does it now: the well-formed ids in one
 * lookup, then gw_owner_may_see for each; malformed (NULL, "") ids are not asked and not kept. */
static long t_filter(struct gw_store *s, enum gw_store_kind k, const char *tenant, int see_foreign,
		     const char *const *ids, size_t n, unsigned char *keep)
{
	const char *asked[8];
	size_t map[8], na = 0;
	struct t_sgot g = { 0 };
	long kept = 0;

	cr_assert_leq(n, 8);
	for (size_t i = 0; i < n; i++) {
		keep[i] = 0;
		if (ids[i] && ids[i][0]) {
			map[na] = i;
			asked[na++] = ids[i];
		}
	}
	g.nids = na;
	gw_store_owner_lookup(s, k, asked, na, t_store_done, &g);
	T_INLINE(g.n);
	if (g.rc != 0)
		return -1;
	for (size_t j = 0; j < na; j++) {
		keep[map[j]] = (unsigned char)gw_owner_may_see(g.found[j] ? g.who[j] : NULL, tenant, see_foreign);
		kept += keep[map[j]];
	}
	return kept;
}

static const struct {
	const char *tenant;
	int see_foreign;
	const char *keep;	/* one char per id: '1' kept */
	long n;
} filter_cases[] = {
	{ "team-a", 0, "1000000", 1 },
	{ "team-b", 0, "0100000", 1 },
	{ "admin", 1, "0011001", 3 },	/* M1 is a model: as a job it is nobody's */
	{ "team-a", 1, "1011001", 4 },
	{ "nobody", 0, "0000000", 0 },
};

Test(owner, filter_table)
{
	static const char *const ids[] = { "RA", "RB", "RX", "RY", NULL, "", "M1" };
	struct gw_store *s = mem_store();

	seed(s);
	for (size_t i = 0; i < sizeof filter_cases / sizeof filter_cases[0]; i++) {
		unsigned char keep[7];
		char got[8];
		long n;

		n = t_filter(s, GW_OBJ_JOB, filter_cases[i].tenant, filter_cases[i].see_foreign, ids, 7, keep);
		for (size_t j = 0; j < 7; j++)
			got[j] = keep[j] ? '1' : '0';
		got[7] = '\0';
		cr_expect_eq(n, filter_cases[i].n, "case %zu: %ld", i, n);
		cr_expect_str_eq(got, filter_cases[i].keep, "case %zu", i);
	}
	gw_store_close(s);
}
/* ---- request identity ---- */

static const struct {
	const char *kind, *value;
	int rc;
	const char *want;
} source_cases[] = {
	{ "url", "http://127.0.0.1:8090/storage/u/U1/v.mp4?X-Goog-Signature=deadbeef&X-Goog-Date=1",
	  0, "http://127.0.0.1:8090/storage/u/U1/v.mp4" },
	{ "url", "https://st/o/a.mp4#frag", 0, "https://st/o/a.mp4" },
	{ "url", "https://st/o/a.mp4", 0, "https://st/o/a.mp4" },
	{ "url", "?only-query", -1, "" },
	{ "url", "", -1, "" },
	{ "rerun", "R123", 0, "rerun:R123" },
	{ "mp", "R456", 0, "mp:R456" },
	{ "ftp", "x", -1, "" },
	{ NULL, "x", -1, "" },
};

Test(owner, source_table)
{
	for (size_t i = 0; i < sizeof source_cases / sizeof source_cases[0]; i++) {
		char out[GW_STORE_SOURCE_MAX + 1] = "";
		int rc = gw_owner_source(source_cases[i].kind, source_cases[i].value, out, sizeof out);

		cr_expect_eq(rc, source_cases[i].rc, "case %zu", i);
		if (rc == 0)
			cr_expect_str_eq(out, source_cases[i].want, "case %zu", i);
	}
}

Test(owner, source_too_long)
{
	static char url[GW_STORE_SOURCE_MAX + 64];
	char out[GW_STORE_SOURCE_MAX + 1];

	strcpy(url, "http://h/");
	memset(url + 9, 'p', GW_STORE_SOURCE_MAX - 9);		/* exactly the limit */
	strcpy(url + GW_STORE_SOURCE_MAX, "?sig=1");
	cr_expect_eq(gw_owner_source("url", url, out, sizeof out), 0);
	cr_expect_eq(strlen(out), GW_STORE_SOURCE_MAX);
	url[GW_STORE_SOURCE_MAX] = 'p';				/* one over */
	cr_expect_eq(gw_owner_source("url", url, out, sizeof out), -1);
	cr_expect_eq(gw_owner_source("url", "http://h/x", out, 4), -1);	/* small buffer */
}

/* Every signed URL of one object is one upload id; other objects differ. */
Test(owner, upload_id_table)
{
	static const struct {
		const char *a, *b;
		int same;
	} cases[] = {
		{ "http://s/u/U1/v.mp4?X-Goog-Signature=aa", "http://s/u/U1/v.mp4?X-Goog-Signature=bb", 1 },
		{ "http://s/u/U1/v.mp4", "http://s/u/U1/v.mp4#x", 1 },
		{ "http://s/u/U1/v.mp4", "http://s/u/U2/v.mp4", 0 },
		{ "http://s/u/U1/v.mp4", "http://s/u/U1/v.mp5", 0 },
	};
	char a[GW_OWNER_UPLOAD_ID_LEN + 1], b[GW_OWNER_UPLOAD_ID_LEN + 1];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_assert_eq(gw_owner_upload_id(cases[i].a, a, sizeof a), 0);
		cr_assert_eq(gw_owner_upload_id(cases[i].b, b, sizeof b), 0);
		cr_expect_eq(strlen(a), GW_OWNER_UPLOAD_ID_LEN);
		cr_expect_eq(strcmp(a, b) == 0, cases[i].same, "case %zu", i);
	}
	/* SHA-256("http://s/x") */
	cr_assert_eq(gw_owner_upload_id("http://s/x?sig=1", a, sizeof a), 0);
	cr_expect_str_eq(a, "7fb7606c5be46e120bc0ef60c1c668a9fc01978d96d939c9ab777bb577390213");
	cr_expect_eq(gw_owner_upload_id("?q", a, sizeof a), -1);
	cr_expect_eq(gw_owner_upload_id("http://s/x", a, GW_OWNER_UPLOAD_ID_LEN), -1);
}

Test(owner, fingerprint_known_vector)
{
	/* SHA-256("abc") */
	static const uint8_t want[32] = { 0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
					  0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
					  0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	uint8_t fp[32], fp2[32];

	gw_owner_fingerprint("abc", 3, fp);
	cr_expect_eq(memcmp(fp, want, 32), 0);
	gw_owner_fingerprint("abd", 3, fp2);
	cr_expect_neq(memcmp(fp, fp2, 32), 0);
}

/* ---- the StartJob state machine ---- */

struct wake_log {
	char s[512];
};
struct waiter_ctx {
	struct wake_log *log;
	int id;
};

static void on_wake(void *arg, const char *rid, int code, const char *msg)
{
	struct waiter_ctx *w = arg;
	char one[96];

	if (rid)
		snprintf(one, sizeof one, "%d=%s;", w->id, rid);
	else
		snprintf(one, sizeof one, "%d=!%d;", w->id, code);
	(void)msg;
	strncat(w->log->s, one, sizeof w->log->s - strlen(w->log->s) - 1);
}


/*
 * S_RESTART: the process goes away (its waiters hear UNAVAILABLE, the store stays) and the next
 * one starts with a new instance id (INST_B), as a real restart does. On SQLite the old process's
 * keys carry no lease and reconcile at once; the memory store keeps the old lease, so the steps
 * after the restart run GW_OWNER_LEASE_MS later ("the next process, after the lease ran out"):
 * both backends then agree on every verdict. Only takeovers differ (a lease was taken over on
 * memory; on SQLite there was none to take).
 */
enum step_op { S_START, S_DONE, S_FAILED, S_UNWAIT, S_RESTART, S_CHECK };
static const struct {
	enum step_op op;
	const char *tenant, *key;
	uint8_t fp;		/* START */
	const char *rid;	/* START: REPLAY rid expected; DONE: rid; CHECK: id */
	int arg;		/* START: expected verdict; FAILED: forget; UNWAIT: step index; CHECK: want */
	int code;		/* FAILED: grpc code */
	const char *log;	/* the wake log after this step (cumulative) */
} steps[] = {
	/* 0 */ { S_START, "a", "k1", 1, NULL, GW_IDEM_PROCEED, 0, "" },
	/* 1 */ { S_START, "a", "k1", 1, NULL, GW_IDEM_WAIT, 0, "" },
	/* 2 */ { S_START, "a", "k1", 1, NULL, GW_IDEM_WAIT, 0, "" },
	/* 3 */ { S_START, "a", "k1", 2, NULL, GW_IDEM_MISMATCH, 0, "" },
	/* 4 */ { S_START, "b", "k1", 1, NULL, GW_IDEM_PROCEED, 0, "" },	/* keys are per tenant */
	/* 5 */ { S_UNWAIT, NULL, NULL, 0, NULL, 2, 0, "" },		/* waiter of step 2 cancelled */
	/* 6 */ { S_DONE, "a", "k1", 0, "RIDA1", 0, 0, "1=RIDA1;" },
	/* 7 */ { S_START, "a", "k1", 1, "RIDA1", GW_IDEM_REPLAY, 0, "1=RIDA1;" },
	/* 8 */ { S_START, "a", "k1", 2, NULL, GW_IDEM_MISMATCH, 0, "1=RIDA1;" },
	/* 9 */ { S_CHECK, "a", NULL, 0, "RIDA1", 0, 0, "1=RIDA1;" },
	/* 10 */ { S_CHECK, "b", NULL, 0, "RIDA1", -1, 0, "1=RIDA1;" },
	/* upstream said no: forgotten, a new request may use the key */
	/* 11 */ { S_FAILED, "b", "k1", 0, NULL, 1, GRPC_STATUS_INVALID_ARGUMENT, "1=RIDA1;" },
	/* 12 */ { S_START, "b", "k1", 2, NULL, GW_IDEM_PROCEED, 0, "1=RIDA1;" },
	/* 13 */ { S_START, "b", "k1", 2, NULL, GW_IDEM_WAIT, 0, "1=RIDA1;" },
	/* outcome unknown: waiters get the error, the key stays PENDING (lease released) */
	/* 14 */ { S_FAILED, "b", "k1", 0, NULL, 0, GRPC_STATUS_UNAVAILABLE, "1=RIDA1;13=!14;" },
	/* 15 */ { S_START, "b", "k1", 2, NULL, GW_IDEM_RECONCILE, 0, "1=RIDA1;13=!14;" },
	/* 16 */ { S_START, "b", "k1", 2, NULL, GW_IDEM_WAIT, 0, "1=RIDA1;13=!14;" },
	/* 17 */ { S_START, "b", "k1", 3, NULL, GW_IDEM_MISMATCH, 0, "1=RIDA1;13=!14;" },
	/* 18 */ { S_DONE, "b", "k1", 0, "RIDB1", 0, 0, "1=RIDA1;13=!14;16=RIDB1;" },
	/* 19 */ { S_START, "b", "k1", 2, "RIDB1", GW_IDEM_REPLAY, 0, "1=RIDA1;13=!14;16=RIDB1;" },
	/* 20 */ { S_CHECK, "b", NULL, 0, "RIDB1", 0, 0, "1=RIDA1;13=!14;16=RIDB1;" },
	/* a key in flight when the process dies is reconciled by the next one */
	/* 21 */ { S_START, "a", "k2", 1, NULL, GW_IDEM_PROCEED, 0, "1=RIDA1;13=!14;16=RIDB1;" },
	/* 22 */ { S_START, "a", "k2", 1, NULL, GW_IDEM_WAIT, 0, "1=RIDA1;13=!14;16=RIDB1;" },
	/* 23 */ { S_RESTART, NULL, NULL, 0, NULL, 0, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* 24 */ { S_START, "a", "k1", 1, "RIDA1", GW_IDEM_REPLAY, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* 25 */ { S_START, "a", "k2", 1, NULL, GW_IDEM_RECONCILE, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* ambiguous reconciliation: reported, the key stays PENDING and reconciles again */
	/* 26 */ { S_FAILED, "a", "k2", 0, NULL, 0, GRPC_STATUS_FAILED_PRECONDITION,
		   "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* 27 */ { S_START, "a", "k2", 1, NULL, GW_IDEM_RECONCILE, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* 28 */ { S_DONE, "a", "k2", 0, "RIDA2", 0, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
	/* 29 */ { S_CHECK, "a", NULL, 0, "RIDA2", 0, 0, "1=RIDA1;13=!14;16=RIDB1;22=!14;" },
};

static void run_state_machine(int sqlite)
{
	struct tmpdb t;
	struct gw_store *s = sqlite ? sqlite_store(&t) : mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct waiter_ctx ctx[sizeof steps / sizeof steps[0]];
	struct gw_owner_waiter *w[sizeof steps / sizeof steps[0]] = { 0 };
	struct wake_log log = { "" };
	int64_t later = 0;	/* GW_OWNER_LEASE_MS once restarted */

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct gw_owner_start st;
		uint8_t fp[32];
		int rc;

		ctx[i].log = &log;
		ctx[i].id = (int)i;
		switch (steps[i].op) {
		case S_START:
			memset(fp, steps[i].fp, sizeof fp);
			rc = (int)t_start(o, steps[i].tenant, steps[i].key, fp, "http://s/u/1/v.mp4",
					  1000 + (int64_t)i + later, on_wake, &ctx[i], &st);
			cr_expect_eq(rc, steps[i].arg, "sqlite %d step %zu: verdict %d", sqlite, i, rc);
			if (rc == GW_IDEM_REPLAY)
				cr_expect_str_eq(st.rid, steps[i].rid, "step %zu", i);
			if (rc == GW_IDEM_WAIT)
				cr_expect_not_null(st.waiter, "step %zu", i);
			if (rc == GW_IDEM_RECONCILE) {
				/* the entry reconciliation reads, leased to this instance now */
				cr_expect_eq(st.entry.done, 0, "step %zu", i);
				cr_expect_str_eq(st.entry.source, "http://s/u/1/v.mp4", "step %zu", i);
				cr_expect_str_eq(st.entry.lease, gw_owner_instance(o), "step %zu", i);
				cr_expect_eq(st.entry.lease_until_ms, 1000 + (int64_t)i + later + GW_OWNER_LEASE_MS,
					     "step %zu", i);
			}
			w[i] = st.waiter;
			if (rc == GW_IDEM_PROCEED || rc == GW_IDEM_RECONCILE || rc == GW_IDEM_WAIT)
				cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 1,
					     "step %zu", i);
			break;
		case S_DONE:
			cr_expect_eq(t_done(o, steps[i].tenant, steps[i].key, steps[i].rid, 5000), 0,
				     "step %zu: %d %s", i, t_last_end.code, t_last_end.msg);
			cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 0, "step %zu", i);
			break;
		case S_FAILED:
			cr_expect_eq(t_failed(o, steps[i].tenant, steps[i].key, steps[i].arg, steps[i].code,
					      "upstream said no"), 0, "step %zu", i);
			cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 0, "step %zu", i);
			break;
		case S_UNWAIT:
			gw_owner_idem_unwait(o, w[steps[i].arg]);
			w[steps[i].arg] = NULL;
			break;
		case S_RESTART:
			gw_owner_free(o);
			o = owner_new(s, 0, INST_B);
			later = GW_OWNER_LEASE_MS;
			break;
		case S_CHECK:
			cr_expect_eq(t_check(s, GW_OBJ_JOB, steps[i].rid, steps[i].tenant, 0), steps[i].arg,
				     "step %zu", i);
			break;
		}
		cr_expect_str_eq(log.s, steps[i].log, "sqlite %d step %zu: log '%s'", sqlite, i, log.s);
	}
	cr_expect_eq(gw_owner_stats(o)->inflight, 0);
	cr_expect_eq(gw_owner_stats(o)->waiting, 0);
	cr_expect_eq(gw_owner_stats(o)->takeovers, sqlite ? 0 : 1, "step 25 took over a dead lease");
	cr_expect_eq(gw_owner_stats(o)->elsewhere, 0);
	cr_expect_eq(t_pending(s), 0);
	gw_owner_free(o);
	gw_store_close(s);
	if (sqlite)
		sqlite_clean(&t);
}

Test(owner, idem_state_machine) { run_state_machine(0); }
Test(owner, idem_state_machine_sqlite) { run_state_machine(1); }

/*
 * Leases (memory store: it keeps them, like PostgreSQL). Two owners on one store are two replicas:
 * A = INST_A, B = INST_B. T_RESTART_A frees A and makes it again with the same name: "this
 * process again" (what A's store rows say is its own). T_FREE_A: A dies for good.
 */
enum lease_op { T_START, T_DONE, T_ADOPT, T_FAILED, T_RESTART_A, T_FREE_A, T_NEW_A };
#define L GW_OWNER_LEASE_MS
static const struct {
	enum lease_op op;
	int who;		/* 0 = A, 1 = B */
	const char *key;
	uint8_t fp;		/* START */
	int64_t now;
	int want;		/* START: verdict; DONE, ADOPT: 0 or -1; FAILED: forget */
	long retry_ms;		/* START ELSEWHERE: the retry suggested */
	const char *rid;	/* START REPLAY; DONE, ADOPT */
	uint64_t takeovers;	/* of who, after the step */
	const char *log;	/* the wake log after this step (cumulative) */
} lease_steps[] = {
	/* 0 */ { T_START, 0, "k1", 1, 1000, GW_IDEM_PROCEED, 0, NULL, 0, "" },
	/* a duplicate while the first is in flight waits for it, on its own instance */
	/* 1 */ { T_START, 0, "k1", 1, 1001, GW_IDEM_WAIT, 0, NULL, 0, "" },
	/* another live instance's lease: ELSEWHERE, retry bounded by what is left of it */
	/* 2 */ { T_START, 1, "k1", 1, 2000, GW_IDEM_ELSEWHERE, GW_OWNER_ELSEWHERE_RETRY_MAX_MS, NULL, 0, "" },
	/* 3 */ { T_START, 1, "k1", 1, 1000 + L - 1, GW_IDEM_ELSEWHERE, 1, NULL, 0, "" },
	/* 4 */ { T_START, 1, "k1", 2, 2000, GW_IDEM_MISMATCH, 0, NULL, 0, "" },	/* fp first */
	/* the outcome unknown: the lease is released, another instance reconciles at once */
	/* 5 */ { T_FAILED, 0, "k1", 0, 3000, 0, 0, NULL, 0, "1=!14;" },
	/* 6 */ { T_START, 1, "k1", 1, 3001, GW_IDEM_RECONCILE, 0, NULL, 0, "1=!14;" },	/* no lease */
	/* 7 */ { T_START, 0, "k1", 1, 3002, GW_IDEM_ELSEWHERE, GW_OWNER_ELSEWHERE_RETRY_MAX_MS, NULL, 0,
		  "1=!14;" },							/* now B's */
	/* 8 */ { T_START, 1, "k1", 1, 3003, GW_IDEM_WAIT, 0, NULL, 0, "1=!14;" },
	/* 9 */ { T_ADOPT, 1, "k1", 0, 3004, 0, 0, "J1", 0, "1=!14;8=J1;" },
	/* 10 */ { T_START, 0, "k1", 1, 3005, GW_IDEM_REPLAY, 0, "J1", 0, "1=!14;8=J1;" },
	/* a key this instance leased but carries on with nowhere (this process again): RECONCILE */
	/* 11 */ { T_START, 0, "k2", 1, 10000, GW_IDEM_PROCEED, 0, NULL, 0, "1=!14;8=J1;" },
	/* 12 */ { T_RESTART_A, 0, NULL, 0, 0, 0, 0, NULL, 0, "1=!14;8=J1;" },
	/* 13 */ { T_START, 1, "k2", 1, 10001, GW_IDEM_ELSEWHERE, GW_OWNER_ELSEWHERE_RETRY_MAX_MS, NULL, 0,
		   "1=!14;8=J1;" },
	/* 14 */ { T_START, 0, "k2", 1, 10002, GW_IDEM_RECONCILE, 0, NULL, 0, "1=!14;8=J1;" },	/* own */
	/* 15 */ { T_START, 0, "k2", 1, 10003, GW_IDEM_WAIT, 0, NULL, 0, "1=!14;8=J1;" },
	/* a dead instance's lease: ELSEWHERE until it runs out, then taken over (RECONCILE) */
	/* 16 */ { T_FREE_A, 0, NULL, 0, 0, 0, 0, NULL, 0, "1=!14;8=J1;15=!14;" },
	/* 17 */ { T_START, 1, "k2", 1, 10002 + L - 1, GW_IDEM_ELSEWHERE, 1, NULL, 0, "1=!14;8=J1;15=!14;" },
	/* 18 */ { T_START, 1, "k2", 1, 10002 + L, GW_IDEM_RECONCILE, 0, NULL, 1, "1=!14;8=J1;15=!14;" },
	/* 19 */ { T_START, 1, "k2", 1, 10003 + L, GW_IDEM_WAIT, 0, NULL, 1, "1=!14;8=J1;15=!14;" },
	/* 20 */ { T_DONE, 1, "k2", 0, 10004 + L, 0, 0, "J2", 1, "1=!14;8=J1;15=!14;19=J2;" },
	/* 21 */ { T_NEW_A, 0, NULL, 0, 0, 0, 0, NULL, 0, "1=!14;8=J1;15=!14;19=J2;" },
	/* 22 */ { T_START, 0, "k2", 1, 10005 + L, GW_IDEM_REPLAY, 0, "J2", 0, "1=!14;8=J1;15=!14;19=J2;" },
	/* 23 */ { T_START, 1, "k2", 1, 10006 + L, GW_IDEM_REPLAY, 0, "J2", 1, "1=!14;8=J1;15=!14;19=J2;" },
};

Test(owner, lease_table)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o[2] = { owner_new(s, 0, INST_A), owner_new(s, 0, INST_B) };
	struct waiter_ctx ctx[sizeof lease_steps / sizeof lease_steps[0]];
	struct wake_log log = { "" };
	uint64_t elsewhere[2] = { 0, 0 };

	for (size_t i = 0; i < sizeof lease_steps / sizeof lease_steps[0]; i++) {
		int who = lease_steps[i].who;
		struct gw_owner_start st;
		uint8_t fp[32];
		int rc;

		ctx[i].log = &log;
		ctx[i].id = (int)i;
		switch (lease_steps[i].op) {
		case T_START:
			memset(fp, lease_steps[i].fp, sizeof fp);
			rc = (int)t_start(o[who], "t", lease_steps[i].key, fp, "http://s/u/1/v.mp4",
					  lease_steps[i].now, on_wake, &ctx[i], &st);
			cr_expect_eq(rc, lease_steps[i].want, "step %zu: verdict %d", i, rc);
			if (rc == GW_IDEM_ELSEWHERE) {
				elsewhere[who]++;
				cr_expect(st.retry_ms > 0 && st.retry_ms <= GW_OWNER_ELSEWHERE_RETRY_MAX_MS,
					  "step %zu: retry %ld", i, st.retry_ms);
				cr_expect_eq(st.retry_ms, lease_steps[i].retry_ms, "step %zu", i);
				cr_expect_eq(gw_owner_idem_inflight(o[who], "t", lease_steps[i].key), 0,
					     "step %zu: nothing stays in flight", i);
			}
			if (rc == GW_IDEM_REPLAY)
				cr_expect_str_eq(st.rid, lease_steps[i].rid, "step %zu", i);
			if (rc == GW_IDEM_RECONCILE)
				cr_expect_str_eq(st.entry.lease, gw_owner_instance(o[who]), "step %zu", i);
			break;
		case T_DONE:
			cr_expect_eq(t_done(o[who], "t", lease_steps[i].key, lease_steps[i].rid, lease_steps[i].now),
				     lease_steps[i].want, "step %zu", i);
			break;
		case T_ADOPT:
			cr_expect_eq(t_adopt(o[who], "t", lease_steps[i].key, lease_steps[i].rid,
					     lease_steps[i].now), lease_steps[i].want, "step %zu", i);
			break;
		case T_FAILED:
			t_failed(o[who], "t", lease_steps[i].key, lease_steps[i].want, GRPC_STATUS_UNAVAILABLE,
				 "upstream timed out");
			break;
		case T_RESTART_A:
			gw_owner_free(o[0]);
			o[0] = owner_new(s, 0, INST_A);
			elsewhere[0] = 0;
			break;
		case T_FREE_A:
			gw_owner_free(o[0]);
			o[0] = NULL;
			break;
		case T_NEW_A:
			o[0] = owner_new(s, 0, "gw-a-2");
			elsewhere[0] = 0;
			break;
		}
		if (o[who]) {
			cr_expect_eq(gw_owner_stats(o[who])->takeovers, lease_steps[i].takeovers, "step %zu", i);
			cr_expect_eq(gw_owner_stats(o[who])->elsewhere, elsewhere[who], "step %zu", i);
		}
		cr_expect_str_eq(log.s, lease_steps[i].log, "step %zu: log '%s'", i, log.s);
	}
	cr_expect_eq(gw_owner_stats(o[1])->take_lost, 0);
	cr_expect_eq(t_pending(s), 0);
	gw_owner_free(o[0]);
	gw_owner_free(o[1]);
	gw_store_close(s);
}
#undef L

/* Renewal extends the leases of this instance's keys in flight, and only when there are some:
 * another instance keeps seeing ELSEWHERE past the first expiry. */
Test(owner, renew_keeps_leases)
{
	struct gw_store *s = mem_store();
	struct gw_owner *a = owner_new(s, 0, INST_A), *b = owner_new(s, 0, INST_B);
	struct gw_owner_start st;
	uint8_t fp[32];
	const int64_t t0 = 1000;

	memset(fp, 4, sizeof fp);
	gw_owner_renew(a, t0);		/* nothing in flight: no store call */
	cr_expect_eq(gw_store_stats(s)->ops, 0);
	cr_assert_eq(t_start(a, "t", "k", fp, "http://s/u/1/v.mp4", t0, NULL, NULL, &st), GW_IDEM_PROCEED);
	gw_owner_renew(a, t0 + GW_OWNER_RENEW_MS);
	gw_owner_renew(a, t0 + 2 * GW_OWNER_RENEW_MS);
	cr_expect_eq(gw_owner_stats(a)->renew_failures, 0);
	/* past the first lease, within the renewed one */
	cr_expect_eq(t_start(b, "t", "k", fp, "http://s/u/1/v.mp4", t0 + GW_OWNER_LEASE_MS + 1, NULL, NULL, &st),
		     GW_IDEM_ELSEWHERE);
	cr_expect_eq(t_start(b, "t", "k", fp, "http://s/u/1/v.mp4",
			     t0 + 2 * GW_OWNER_RENEW_MS + GW_OWNER_LEASE_MS, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_expect_eq(gw_owner_stats(b)->takeovers, 1);
	gw_owner_free(a);
	gw_owner_free(b);
	gw_store_close(s);
}

/* An instance name must fit a lease. */
Test(owner, new_instance_name)
{
	struct gw_store *s = mem_store();
	char name[GW_STORE_LEASE_MAX + 2];

	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	cr_expect_null(gw_owner_new(s, 0, name));
	cr_expect_null(gw_owner_new(s, 0, ""));
	cr_expect_null(gw_owner_new(s, 0, NULL));
	cr_expect_null(gw_owner_new(NULL, 0, INST_A));
	name[GW_STORE_LEASE_MAX] = '\0';
	gw_owner_free(owner_new(s, 0, name));
	gw_store_close(s);
}
/* A crash between "key DONE" and "owner recorded": the replay re-records the owner. */
Test(owner, replay_repairs_ownership)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	cr_assert_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(t_done(o, "a", "k", "R1", 2), 0);
	cr_assert_eq(t_del(s, GW_OBJ_JOB, "R1"), 0);
	cr_expect_eq(t_check(s, GW_OBJ_JOB, "R1", "a", 0), -1);
	cr_expect_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 3, NULL, NULL, &st),
		     GW_IDEM_REPLAY);
	cr_expect_str_eq(st.rid, "R1");
	cr_expect_eq(t_check(s, GW_OBJ_JOB, "R1", "a", 0), 0);
	cr_expect_eq(gw_owner_stats(o)->ownership_repaired, 1);
	gw_owner_free(o);
	gw_store_close(s);
}

/* Two keys reconciled at once pick the same unrecorded job: only the first adopts it. */
#define L GW_OWNER_LEASE_MS
Test(owner, adopt_race)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	struct wake_log log = { "" };
	struct waiter_ctx ctx = { &log, 3 };
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	cr_assert_eq(t_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	/* "crash": both keys PENDING, nobody in flight. The next process is another instance
	 * (INST_B) that starts once the dead one's leases have run out (L later). */
	gw_owner_free(o);
	o = owner_new(s, 0, INST_B);
	cr_assert_eq(t_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 2 + L, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_assert_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 2 + L, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_expect_eq(gw_owner_stats(o)->takeovers, 2);
	cr_assert_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 2 + L, on_wake, &ctx, &st),
		     GW_IDEM_WAIT);
	cr_expect_eq(t_adopt(o, "a", "k1", "J1", 3 + L), 0);
	cr_expect_eq(t_adopt(o, "a", "k2", "J1", 3 + L), -1);
	cr_expect_eq(t_last_end.code, GRPC_STATUS_ABORTED);
	cr_expect_str_eq(log.s, "3=!10;");	/* ABORTED */
	cr_expect_eq(gw_owner_stats(o)->adopt_raced, 1);
	/* k1 replays J1; k2 is still PENDING and reconciles again */
	cr_expect_eq(t_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 4 + L, NULL, NULL, &st),
		     GW_IDEM_REPLAY);
	cr_expect_str_eq(st.rid, "J1");
	cr_expect_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 4 + L, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_expect_eq(gw_owner_stats(o)->takeovers, 2, "its own lease: no takeover");
	cr_expect_eq(t_failed(o, "a", "k2", 0, GRPC_STATUS_UNAVAILABLE, "x"), 0);
	gw_owner_free(o);
	gw_store_close(s);
}
#undef L

/* Multi-person: /process with rid_mp_detection returns the detection job's own rid, which the
 * tenant already owns; done accepts it (ownership put is idempotent for the same tenant). */
Test(owner, done_with_already_owned_rid)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };

	cr_assert_eq(t_put(s, GW_OBJ_JOB, "MP1", "a"), 0);
	cr_assert_eq(t_start(o, "a", "k", fp, "mp:MP1", 2, NULL, NULL, &st), GW_IDEM_PROCEED);
	cr_expect_eq(t_done(o, "a", "k", "MP1", 3), 0);
	cr_expect_eq(t_start(o, "a", "k", fp, "mp:MP1", 4, NULL, NULL, &st), GW_IDEM_REPLAY);
	gw_owner_free(o);
	gw_store_close(s);
}

#define WAITERS_TRIED (GW_OWNER_MAX_WAITERS_PER_KEY + 2)

static void count_wake(void *arg, const char *rid, int code, const char *msg)
{
	size_t *n = arg;

	(void)code;
	(void)msg;
	if (rid && strcmp(rid, "R1") == 0)
		(*n)++;
}

/* 50 identical concurrent calls are one upstream job; the waiter list is bounded. */
Test(owner, waiters_bounded_and_all_woken)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	size_t woken = 0, proceeds = 0, waits = 0, busy = 0;
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	for (size_t i = 0; i < WAITERS_TRIED; i++) {
		switch (t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, count_wake, &woken, &st)) {
		case GW_IDEM_PROCEED:
			proceeds++;
			break;
		case GW_IDEM_WAIT:
			waits++;
			break;
		case GW_IDEM_BUSY:
			busy++;
			break;
		default:
			cr_expect_fail("unexpected verdict at %zu", i);
			break;
		}
	}
	cr_expect_eq(proceeds, 1);
	cr_expect_eq(waits, GW_OWNER_MAX_WAITERS_PER_KEY);
	cr_expect_eq(busy, 1);
	cr_expect_eq(gw_owner_stats(o)->busy_waiters, 1);
	cr_expect_eq(t_done(o, "a", "k", "R1", 2), 0);
	cr_expect_eq(woken, GW_OWNER_MAX_WAITERS_PER_KEY);
	/* with no wake callback a duplicate cannot wait */
	cr_expect_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_expect_eq(t_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_BUSY);
	gw_owner_free(o);
	gw_store_close(s);
}

/* Per-tenant caps (issue 13): tenant "a" may hold 2 keys in flight and 1 waiter; "b" has no cap
 * of its own. A tenant at its cap is LIMITED, counted per tenant, and the others are not held up. */
static void any_wake(void *arg, const char *rid, int code, const char *msg)
{
	(void)rid;
	(void)code;
	(void)msg;
	(*(size_t *)arg)++;
}

static void caps_a2_w1(void *arg, const char *tenant, uint64_t *inflight, uint64_t *waiters)
{
	(void)arg;
	*inflight = strcmp(tenant, "a") == 0 ? 2 : 0;
	*waiters = strcmp(tenant, "a") == 0 ? 1 : 0;
}

Test(owner, tenant_caps_table)
{
	static const struct {
		enum step_op op;	/* S_START, S_DONE, S_FAILED */
		const char *tenant, *key;
		int want;		/* START: verdict */
		int limit_waiters;	/* LIMITED: which cap */
		uint64_t held, cap;	/* LIMITED: what out->limit says */
	} cases[] = {
		{ S_START, "a", "k1", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "a", "k2", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "a", "k3", GW_IDEM_LIMITED, 0, 2, 2 },	/* its 2 keys are in flight */
		{ S_START, "b", "k3", GW_IDEM_PROCEED, 0, 0, 0 },	/* another tenant is not held up */
		{ S_START, "b", "k4", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "b", "k5", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "a", "k1", GW_IDEM_WAIT, 0, 0, 0 },	/* a duplicate: a waiter, no key */
		{ S_START, "a", "k2", GW_IDEM_LIMITED, 1, 1, 1 },	/* its one waiter is taken */
		{ S_START, "b", "k3", GW_IDEM_WAIT, 0, 0, 0 },
		{ S_START, "b", "k3", GW_IDEM_WAIT, 0, 0, 0 },
		{ S_DONE, "a", "k1", 0, 0, 0, 0 },			/* a key lands, its waiter wakes */
		{ S_START, "a", "k3", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "a", "k2", GW_IDEM_WAIT, 0, 0, 0 },
		{ S_FAILED, "a", "k2", 0, 0, 0, 0 },			/* forgotten: slot and waiter back */
		{ S_START, "a", "k6", GW_IDEM_PROCEED, 0, 0, 0 },
		{ S_START, "a", "k7", GW_IDEM_LIMITED, 0, 2, 2 },
	};
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	size_t woken = 0;
	uint8_t fp[32];

	cr_assert_not_null(o);
	memset(fp, 7, sizeof fp);
	gw_owner_set_caps(o, caps_a2_w1, NULL);
	cr_expect(gw_owner_has_caps(o));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (cases[i].op == S_DONE) {
			cr_assert_eq(t_done(o, cases[i].tenant, cases[i].key, "RIDX", 2), 0);
			continue;
		}
		if (cases[i].op == S_FAILED) {
			cr_assert_eq(t_failed(o, cases[i].tenant, cases[i].key, 1, GRPC_STATUS_INVALID_ARGUMENT,
					      "no"), 0);
			continue;
		}
		int v = (int)t_start(o, cases[i].tenant, cases[i].key, fp, "http://s/u/1/v.mp4", 1, any_wake,
				     &woken, &st);

		cr_assert_eq(v, cases[i].want, "case %zu: verdict %d", i, v);
		if (v == GW_IDEM_LIMITED) {
			cr_expect_eq(st.limit.waiters, cases[i].limit_waiters, "case %zu", i);
			cr_expect_eq(st.limit.held, cases[i].held, "case %zu", i);
			cr_expect_eq(st.limit.cap, cases[i].cap, "case %zu", i);
		}
	}
	cr_expect_eq(woken, 2, "the waiters of k1 and k2");
	cr_expect_eq(gw_owner_stats(o)->limited_inflight, 2);
	cr_expect_eq(gw_owner_stats(o)->limited_waiters, 1);
	cr_expect_eq(gw_slots_refused(gw_owner_tenant_slots(o, 0), "a"), 2);
	cr_expect_eq(gw_slots_refused(gw_owner_tenant_slots(o, 1), "a"), 1);
	cr_expect_eq(gw_slots_held(gw_owner_tenant_slots(o, 0), "a"), 2);
	cr_expect_eq(gw_slots_held(gw_owner_tenant_slots(o, 0), "b"), 3);
	cr_expect_eq(gw_slots_held(gw_owner_tenant_slots(o, 1), "b"), 2);
	gw_owner_free(o);	/* wakes b's waiters */
	gw_store_close(s);
}

/* The store failing is an ERROR verdict, never a PROCEED (no unrecorded upstream job). */
Test(owner, read_only_store_is_error)
{
	struct gw_store *s = gw_store_open_mem(0, 1);
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };

	cr_assert_not_null(o);
	cr_expect_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_ERROR);
	cr_expect_eq(gw_owner_idem_inflight(o, "a", "k"), 0);
	cr_expect_str_eq(t_start_err, "state store is read-only");
	cr_expect_str_eq(gw_store_errmsg(s), "state store is read-only");
	gw_owner_free(o);
	gw_store_close(s);
}

/* A store failure in done: the caller gets -1 and the waiters hear UNAVAILABLE (never a rid
 * whose ownership was not recorded). Simulated with a memory store that is full. */
Test(owner, done_store_failure)
{
	struct gw_store *s = gw_store_open_mem(1, 0);
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_owner_start st;
	struct wake_log log = { "" };
	struct waiter_ctx ctx = { &log, 7 };
	uint8_t fp[32] = { 0 };

	cr_assert_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, on_wake, &ctx, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, on_wake, &ctx, &st),
		     GW_IDEM_WAIT);
	/* the key row fills the store: DONE works, the owner row does not fit */
	cr_expect_eq(t_done(o, "a", "k", "R1", 2), -1);
	cr_expect_eq(t_last_end.code, GRPC_STATUS_UNAVAILABLE);
	cr_expect_str_eq(t_last_end.msg, "state store is full");
	cr_expect_str_eq(log.s, "7=!14;");
	cr_expect_eq(gw_owner_idem_inflight(o, "a", "k"), 0);
	gw_owner_free(o);
	gw_store_close(s);
}

Test(owner, expire_uses_ttl)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 10, INST_A);	/* raised to the minimum */
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };
	const int64_t t0 = 1700000000000LL;

	cr_assert_eq(t_start(o, "a", "old", fp, "http://s/u/1/v.mp4", t0, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(t_done(o, "a", "old", "R1", t0), 0);
	cr_assert_eq(t_start(o, "a", "new", fp, "http://s/u/1/v.mp4", t0 + 30000, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(t_done(o, "a", "new", "R2", t0), 0);
	cr_expect_eq(t_expire(o, t0 + GW_OWNER_MIN_TTL_MS - 1), 0);
	cr_expect_eq(t_expire(o, t0 + GW_OWNER_MIN_TTL_MS + 1), 1);
	cr_expect_eq(gw_owner_stats(o)->expired, 1);
	/* the expired key starts afresh; the other still replays; ownership is not expired */
	cr_expect_eq(t_start(o, "a", "old", fp, "http://s/u/1/v.mp4", t0 + 70000, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_expect_eq(t_start(o, "a", "new", fp, "http://s/u/1/v.mp4", t0 + 70000, NULL, NULL, &st),
		     GW_IDEM_REPLAY);
	cr_expect_eq(t_check(s, GW_OBJ_JOB, "R1", "a", 0), 0);
	gw_owner_free(o);
	gw_store_close(s);

	s = mem_store();
	o = owner_new(s, 0, INST_A);
	cr_assert_eq(t_start(o, "a", "k", fp, "http://s/u/1/v.mp4", t0, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_expect_eq(t_expire(o, t0 + GW_OWNER_DEFAULT_TTL_MS - 1), 0);	/* default: 24 h */
	cr_expect_eq(t_expire(o, t0 + GW_OWNER_DEFAULT_TTL_MS + 1), 1);
	gw_owner_free(o);
	gw_store_close(s);
}

/* ---- reconciliation ---- */
#define SRC "http://127.0.0.1:8090/storage/u/U1/dance.mp4"
#define T0 1700000000000LL
#define ROW(rid, name, ctime) "{\"rid\":\"" rid "\",\"fileName\":\"" name "\",\"ctime\":" #ctime ",\"status\":\"PROGRESS\"}"
#define IN_OK SRC "?X-Goog-Signature=s3cr3t&X-Goog-Date=1"
#define IN_OTHER "http://127.0.0.1:8090/storage/u/U2/dance.mp4?X-Goog-Signature=s3cr3t"

/*
 * Reconciliation as the handler runs it (gateway/svc/rpc_idem.c): step 0 names the /list rows of
 * the key's file (gw_owner_recon_names), the store says which of them are recorded (one
 * owner_lookup), then gw_owner_reconcile with the recorded ones. More rows than
 * GW_OWNER_RECON_NAMES_MAX is the handler's own refusal; it is not reached here.
 */
static enum gw_recon_verdict t_reconcile(struct gw_owner *o, struct gw_store *s, const struct gw_idem *e,
					 const char *list, const char *dl, struct gw_owner_recon *r)
{
	const char **names = calloc(GW_OWNER_RECON_NAMES_MAX, sizeof *names);
	const char **recorded = calloc(GW_OWNER_RECON_NAMES_MAX, sizeof *recorded);
	char *blob = NULL;
	size_t nrec = 0;
	long n;
	enum gw_recon_verdict v;

	cr_assert(names && recorded);
	n = gw_owner_recon_names(e, list, strlen(list), names, GW_OWNER_RECON_NAMES_MAX, &blob);
	cr_assert_leq(n, GW_OWNER_RECON_NAMES_MAX);
	cr_assert_leq(n, 8, "t_sgot keeps 8 answers");
	if (n > 0) {
		struct t_sgot g = { .nids = (size_t)n };

		gw_store_owner_lookup(s, GW_OBJ_JOB, names, (size_t)n, t_store_done, &g);
		T_INLINE(g.n);
		cr_assert_eq(g.rc, 0);
		for (long i = 0; i < n; i++)
			if (g.found[i])
				recorded[nrec++] = names[i];
	}
	v = gw_owner_reconcile(o, e, list, strlen(list), recorded, nrec, dl, dl ? strlen(dl) : 0, r);
	free(blob);
	free(recorded);
	free(names);
	return v;
}

static const struct {
	const char *source;
	const char *list;
	const char *dl;		/* NULL = step 1 */
	enum gw_recon_verdict want;
	const char *rid;	/* ADOPT */
	const char *cands;	/* LOOKUP / AMBIGUOUS: "R1,R2" */
} recon_cases[] = {
	/* 0 */ { SRC, "{\"list\":[]}", NULL, GW_RECON_RESUBMIT, NULL, "" },
	/* 1 */ { SRC, "{\"list\":[" ROW("R1", "other.mp4", 1700000000100) "]}", NULL, GW_RECON_RESUBMIT, NULL, "" },
	/* 2 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "]}", NULL, GW_RECON_LOOKUP, NULL, "R1" },
	/* 3 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "]}",
		  "{\"count\":1,\"links\":[{\"rid\":\"R1\",\"input\":\"" IN_OK "\"}]}", GW_RECON_ADOPT, "R1", "R1" },
	/* 4: finished from another upload */
	/* 4 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "]}",
		  "{\"count\":1,\"links\":[{\"rid\":\"R1\",\"input\":\"" IN_OTHER "\"}]}", GW_RECON_RESUBMIT, NULL, "" },
	/* 5: not finished: the link is just {rid}: adopted by name and time, the only candidate */
	/* 5 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "]}",
		  "{\"count\":1,\"links\":[{\"rid\":\"R1\"}]}", GW_RECON_ADOPT, "R1", "R1" },
	/* 6 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000200) "]}",
		  NULL, GW_RECON_LOOKUP, NULL, "R1,R2" },
	/* 7 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000200) "]}",
		  "{\"links\":[{\"rid\":\"R1\"},{\"rid\":\"R2\"}]}", GW_RECON_AMBIGUOUS, NULL, "R1,R2" },
	/* 8 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000200) "]}",
		  "{\"links\":[{\"rid\":\"R1\",\"input\":\"" IN_OK "\"},{\"rid\":\"R2\",\"input\":\"" IN_OTHER "\"}]}",
		  GW_RECON_ADOPT, "R1", "R1" },
	/* 9 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000200) "]}",
		  "{\"links\":[{\"rid\":\"R1\",\"input\":\"" IN_OK "\"},{\"rid\":\"R2\",\"input\":\"" IN_OK "\"}]}",
		  GW_RECON_AMBIGUOUS, NULL, "R1,R2" },
	/* 10: a job the gateway recorded belongs to another request */
	/* 10 */ { SRC, "{\"list\":[" ROW("RKNOWN", "dance.mp4", 1700000000100) "]}", NULL, GW_RECON_RESUBMIT, NULL, "" },
	/* 11: older than the key (beyond the clock skew allowance) */
	/* 11 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1699999000000) "]}", NULL, GW_RECON_RESUBMIT, NULL, "" },
	/* 12: within the skew allowance */
	/* 12 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1699999900000) "]}", NULL, GW_RECON_LOOKUP, NULL, "R1" },
	/* 13 */ { SRC, "[1,2]", NULL, GW_RECON_ERROR, NULL, "" },
	/* 14 */ { SRC, "not json", NULL, GW_RECON_ERROR, NULL, "" },
	/* 15 */ { "rerun:R0", "{\"list\":[]}", NULL, GW_RECON_UNSUPPORTED, NULL, "" },
	/* 16: percent-encoded path vs decoded file name */
	/* 16 */ { "http://h/storage/u/U1/my%20clip.mp4", "{\"list\":[" ROW("R1", "my clip.mp4", 1700000000100) "]}",
		   NULL, GW_RECON_LOOKUP, NULL, "R1" },
	/* 17: the download lookup failed ("" body): name and time decide, only if alone */
	/* 17 */ { SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "]}", "", GW_RECON_ADOPT, "R1", "R1" },
	/* 18: rows without rid or fileName are skipped */
	/* 18 */ { SRC, "{\"list\":[{\"fileName\":\"dance.mp4\"},{\"rid\":\"R1\"},7]}", NULL, GW_RECON_RESUBMIT, NULL, "" },
	/* 19 */ { "http://h/storage/u/U1/", "{\"list\":[]}", NULL, GW_RECON_UNSUPPORTED, NULL, "" },
};

static void joined(const struct gw_owner_recon *r, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t i = 0; i < r->ncand; i++) {
		strncat(out, i ? "," : "", cap - strlen(out) - 1);
		strncat(out, r->cand[i], cap - strlen(out) - 1);
	}
}

Test(owner, reconcile_table)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);

	cr_assert_eq(t_put(s, GW_OBJ_JOB, "RKNOWN", "team-b"), 0);
	for (size_t i = 0; i < sizeof recon_cases / sizeof recon_cases[0]; i++) {
		struct gw_idem e = { .created_ms = T0 };
		struct gw_owner_recon r;
		const char *dl = recon_cases[i].dl;
		char got[256];
		enum gw_recon_verdict v;

		snprintf(e.source, sizeof e.source, "%s", recon_cases[i].source);
		v = t_reconcile(o, s, &e, recon_cases[i].list, dl, &r);
		cr_expect_eq(v, recon_cases[i].want, "case %zu: verdict %d (%s)", i, v, r.why);
		cr_expect_eq(r.verdict, v, "case %zu", i);
		if (v == GW_RECON_ADOPT)
			cr_expect_str_eq(r.rid, recon_cases[i].rid, "case %zu", i);
		if (v == GW_RECON_LOOKUP || v == GW_RECON_AMBIGUOUS || v == GW_RECON_ADOPT) {
			joined(&r, got, sizeof got);
			cr_expect_str_eq(got, recon_cases[i].cands, "case %zu: '%s'", i, got);
		}
		cr_expect_neq(r.why[0], '\0', "case %zu: no reason", i);
		cr_expect_null(strstr(r.why, "s3cr3t"), "case %zu: %s", i, r.why);
	}
	cr_expect_eq(gw_owner_stats(o)->recon_adopted, 4);
	gw_owner_free(o);
	gw_store_close(s);
}

Test(owner, reconcile_too_many_candidates)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = owner_new(s, 0, INST_A);
	struct gw_idem e = { .created_ms = T0 };
	struct gw_owner_recon r;
	char list[8192] = "{\"list\":[";
	char row[128];

	snprintf(e.source, sizeof e.source, "%s", SRC);
	for (int i = 0; i <= GW_OWNER_RECON_MAX; i++) {
		snprintf(row, sizeof row, "%s{\"rid\":\"R%d\",\"fileName\":\"dance.mp4\",\"ctime\":%lld}",
			 i ? "," : "", i, (long long)T0 + i);
		strncat(list, row, sizeof list - strlen(list) - 1);
	}
	strncat(list, "]}", sizeof list - strlen(list) - 1);
	cr_expect_eq(gw_owner_reconcile(o, &e, list, strlen(list), NULL, 0, NULL, 0, &r), GW_RECON_AMBIGUOUS,
		     "%s", r.why);
	cr_expect_eq(r.ncand, GW_OWNER_RECON_MAX);
	gw_owner_free(o);
	gw_store_close(s);
}

/* Step 0 alone: the rids of the key's file since the key (and the skew allowance), bounded. */
static const struct {
	const char *source;
	const char *list;
	size_t max;
	long want;		/* -1: not a list, or not an upload source; max + 1: too many */
	const char *rids;	/* "R1,R2" when 0 < want <= max */
} names_cases[] = {
	{ SRC, "{\"list\":[]}", 4, 0, "" },
	{ SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "other.mp4", 1700000000100) ","
	  ROW("R3", "dance.mp4", 1699999000000) "," ROW("R4", "dance.mp4", 1699999900000) "]}", 4, 2, "R1,R4" },
	{ SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R1", "dance.mp4", 1700000000200) "]}",
	  4, 2, "R1,R1" },	/* rows as upstream lists them */
	{ SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000100) ","
	  ROW("R3", "dance.mp4", 1700000000100) "]}", 2, 3, NULL },	/* more than max */
	{ SRC, "{\"list\":[" ROW("R1", "dance.mp4", 1700000000100) "," ROW("R2", "dance.mp4", 1700000000100) "]}",
	  2, 2, "R1,R2" },	/* exactly max */
	{ "http://h/storage/u/U1/my%20clip.mp4", "{\"list\":[" ROW("R1", "my clip.mp4", 1700000000100) "]}", 4, 1,
	  "R1" },
	{ SRC, "[1,2]", 4, -1, NULL },
	{ SRC, "not json", 4, -1, NULL },
	{ "rerun:R0", "{\"list\":[]}", 4, -1, NULL },
	{ "http://h/storage/u/U1/", "{\"list\":[]}", 4, -1, NULL },
};

Test(owner, recon_names_table)
{
	for (size_t i = 0; i < sizeof names_cases / sizeof names_cases[0]; i++) {
		struct gw_idem e = { .created_ms = T0 };
		const char *rids[8];
		char got[256] = "", *blob = (char *)"unset";
		long n;

		snprintf(e.source, sizeof e.source, "%s", names_cases[i].source);
		n = gw_owner_recon_names(&e, names_cases[i].list, strlen(names_cases[i].list), rids,
					 names_cases[i].max, &blob);
		cr_expect_eq(n, names_cases[i].want, "case %zu: %ld", i, n);
		if (n < 0)
			cr_expect_null(blob, "case %zu: nothing to free", i);
		/* over max, the first max rows are filled all the same (owner.h says "nothing
		 * filled"); either way the blob is the caller's to free */
		if (n < 0 || n > (long)names_cases[i].max) {
			free(blob);
			continue;
		}
		for (long k = 0; k < n; k++) {
			strncat(got, k ? "," : "", sizeof got - strlen(got) - 1);
			strncat(got, rids[k], sizeof got - strlen(got) - 1);
		}
		cr_expect_str_eq(got, names_cases[i].rids, "case %zu", i);
		free(blob);
	}
}
