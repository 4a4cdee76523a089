/* Unit tests for gateway/state/owner.c: the isolation matrix, list filtering, request identity, the
 * idempotent StartJob state machine and reconciliation against upstream /list and /download. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <grpc/status.h>

#include "gateway/state/owner.h"

static struct gw_store *mem_store(void)
{
	struct gw_store *s = gw_store_open_mem(0, 0);

	cr_assert_not_null(s);
	return s;
}

/* ---- isolation ---- */

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
	/* nonsense is nobody's */
	{ GW_OBJ_JOB, "", "team-a", 1, -1 },
	{ GW_OBJ_JOB, NULL, "team-a", 1, -1 },
	{ GW_OBJ_JOB, "RA", "", 1, -1 },
	{ GW_OBJ_JOB, "RA", NULL, 1, -1 },
};

static void seed(struct gw_store *s)
{
	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, "RA", "team-a", 1), 0);
	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, "RB", "team-b", 1), 0);
	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_MODEL, "M1", "team-b", 1), 0);
	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_ENDPOINT, "E1", "team-a", 1), 0);
}

Test(owner, check_matrix)
{
	struct gw_store *s = mem_store();

	seed(s);
	for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
		int rc = gw_owner_check(s, check_cases[i].kind, check_cases[i].id, check_cases[i].tenant,
					check_cases[i].see_foreign);

		cr_expect_eq(rc, check_cases[i].want, "case %zu: %d", i, rc);
	}
	gw_store_close(s);
}

Test(owner, check_store_error_is_distinct)
{
	struct gw_store *s = mem_store();
	char over[GW_STORE_ID_MAX + 2];

	/* An over-long id is nobody's (-1) without asking the store. */
	memset(over, 'x', sizeof over - 1);
	over[sizeof over - 1] = '\0';
	cr_expect_eq(gw_owner_check(s, GW_OBJ_JOB, over, "team-a", 1), -1);
	/* A bad kind reaches the store, which refuses: that is an error, not "not found". */
	cr_expect_eq(gw_owner_check(s, (enum gw_store_kind)42, "RA", "team-a", 1), -2);
	gw_store_close(s);
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
		long n = gw_owner_filter(s, GW_OBJ_JOB, filter_cases[i].tenant, filter_cases[i].see_foreign,
					 ids, 7, keep);

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
	/* outcome unknown: waiters get the error, the key stays PENDING */
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

Test(owner, idem_state_machine)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = gw_owner_new(s, 0);
	struct waiter_ctx ctx[sizeof steps / sizeof steps[0]];
	struct gw_owner_waiter *w[sizeof steps / sizeof steps[0]] = { 0 };
	struct wake_log log = { "" };

	cr_assert_not_null(o);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct gw_owner_start st;
		uint8_t fp[32];
		int rc;

		ctx[i].log = &log;
		ctx[i].id = (int)i;
		switch (steps[i].op) {
		case S_START:
			memset(fp, steps[i].fp, sizeof fp);
			rc = gw_owner_idem_start(o, steps[i].tenant, steps[i].key, fp, "http://s/u/1/v.mp4",
						 1000 + (int64_t)i, on_wake, &ctx[i], &st);
			cr_expect_eq(rc, steps[i].arg, "step %zu: verdict %d", i, rc);
			if (rc == GW_IDEM_REPLAY)
				cr_expect_str_eq(st.rid, steps[i].rid, "step %zu", i);
			if (rc == GW_IDEM_WAIT)
				cr_expect_not_null(st.waiter, "step %zu", i);
			w[i] = st.waiter;
			if (rc == GW_IDEM_PROCEED || rc == GW_IDEM_RECONCILE || rc == GW_IDEM_WAIT)
				cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 1,
					     "step %zu", i);
			break;
		case S_DONE:
			cr_expect_eq(gw_owner_idem_done(o, steps[i].tenant, steps[i].key, steps[i].rid, 5000), 0,
				     "step %zu", i);
			cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 0, "step %zu", i);
			break;
		case S_FAILED:
			cr_expect_eq(gw_owner_idem_failed(o, steps[i].tenant, steps[i].key, steps[i].arg,
							  steps[i].code, "upstream said no"), 0, "step %zu", i);
			cr_expect_eq(gw_owner_idem_inflight(o, steps[i].tenant, steps[i].key), 0, "step %zu", i);
			break;
		case S_UNWAIT:
			gw_owner_idem_unwait(o, w[steps[i].arg]);
			w[steps[i].arg] = NULL;
			break;
		case S_RESTART:
			/* the old process goes away: its waiters hear UNAVAILABLE, the store stays */
			gw_owner_free(o);
			o = gw_owner_new(s, 0);
			cr_assert_not_null(o);
			break;
		case S_CHECK:
			cr_expect_eq(gw_owner_check(s, GW_OBJ_JOB, steps[i].rid, steps[i].tenant, 0), steps[i].arg,
				     "step %zu", i);
			break;
		}
		cr_expect_str_eq(log.s, steps[i].log, "step %zu: log '%s'", i, log.s);
	}
	cr_expect_eq(gw_owner_stats(o)->inflight, 0);
	cr_expect_eq(gw_owner_stats(o)->waiting, 0);
	gw_owner_free(o);
	gw_store_close(s);
}

/* A crash between "key DONE" and "owner recorded": the replay re-records the owner. */
Test(owner, replay_repairs_ownership)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(gw_owner_idem_done(o, "a", "k", "R1", 2), 0);
	cr_assert_eq(gw_store_owner_del(s, GW_OBJ_JOB, "R1"), 0);
	cr_expect_eq(gw_owner_check(s, GW_OBJ_JOB, "R1", "a", 0), -1);
	cr_expect_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 3, NULL, NULL, &st),
		     GW_IDEM_REPLAY);
	cr_expect_str_eq(st.rid, "R1");
	cr_expect_eq(gw_owner_check(s, GW_OBJ_JOB, "R1", "a", 0), 0);
	cr_expect_eq(gw_owner_stats(o)->ownership_repaired, 1);
	gw_owner_free(o);
	gw_store_close(s);
}

/* Two keys reconciled at once pick the same unrecorded job: only the first adopts it. */
Test(owner, adopt_race)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	struct wake_log log = { "" };
	struct waiter_ctx ctx = { &log, 3 };
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	gw_owner_free(o);	/* "crash": both keys PENDING, nobody in flight */
	o = gw_owner_new(s, 0);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 2, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 2, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 2, on_wake, &ctx, &st),
		     GW_IDEM_WAIT);
	cr_expect_eq(gw_owner_idem_adopt(o, "a", "k1", "J1", 3), 0);
	cr_expect_eq(gw_owner_idem_adopt(o, "a", "k2", "J1", 3), -1);
	cr_expect_str_eq(log.s, "3=!10;");	/* ABORTED */
	cr_expect_eq(gw_owner_stats(o)->adopt_raced, 1);
	/* k1 replays J1; k2 is still PENDING and reconciles again */
	cr_expect_eq(gw_owner_idem_start(o, "a", "k1", fp, "http://s/u/1/v.mp4", 4, NULL, NULL, &st),
		     GW_IDEM_REPLAY);
	cr_expect_str_eq(st.rid, "J1");
	cr_expect_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 4, NULL, NULL, &st),
		     GW_IDEM_RECONCILE);
	cr_expect_eq(gw_owner_idem_failed(o, "a", "k2", 0, GRPC_STATUS_UNAVAILABLE, "x"), 0);
	gw_owner_free(o);
	gw_store_close(s);
}

/* Multi-person: /process with rid_mp_detection returns the detection job's own rid, which the
 * tenant already owns; done accepts it (ownership put is idempotent for the same tenant). */
Test(owner, done_with_already_owned_rid)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };

	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, "MP1", "a", 1), 0);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k", fp, "mp:MP1", 2, NULL, NULL, &st), GW_IDEM_PROCEED);
	cr_expect_eq(gw_owner_idem_done(o, "a", "k", "MP1", 3), 0);
	cr_expect_eq(gw_owner_idem_start(o, "a", "k", fp, "mp:MP1", 4, NULL, NULL, &st), GW_IDEM_REPLAY);
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
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	size_t woken = 0, proceeds = 0, waits = 0, busy = 0;
	uint8_t fp[32];

	memset(fp, 1, sizeof fp);
	for (size_t i = 0; i < WAITERS_TRIED; i++) {
		switch (gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, count_wake, &woken, &st)) {
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
	cr_expect_eq(gw_owner_idem_done(o, "a", "k", "R1", 2), 0);
	cr_expect_eq(woken, GW_OWNER_MAX_WAITERS_PER_KEY);
	/* with no wake callback a duplicate cannot wait */
	cr_expect_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_expect_eq(gw_owner_idem_start(o, "a", "k2", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
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
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	size_t woken = 0;
	uint8_t fp[32];

	cr_assert_not_null(o);
	memset(fp, 7, sizeof fp);
	gw_owner_set_caps(o, caps_a2_w1, NULL);
	cr_expect(gw_owner_has_caps(o));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (cases[i].op == S_DONE) {
			cr_assert_eq(gw_owner_idem_done(o, cases[i].tenant, cases[i].key, "RIDX", 2), 0);
			continue;
		}
		if (cases[i].op == S_FAILED) {
			cr_assert_eq(gw_owner_idem_failed(o, cases[i].tenant, cases[i].key, 1,
							  GRPC_STATUS_INVALID_ARGUMENT, "no"), 0);
			continue;
		}
		int v = gw_owner_idem_start(o, cases[i].tenant, cases[i].key, fp, "http://s/u/1/v.mp4", 1,
					    any_wake, &woken, &st);

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
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };

	cr_assert_not_null(o);
	cr_expect_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, NULL, NULL, &st),
		     GW_IDEM_ERROR);
	cr_expect_eq(gw_owner_idem_inflight(o, "a", "k"), 0);
	cr_expect_str_eq(gw_store_errmsg(s), "state store is read-only");
	gw_owner_free(o);
	gw_store_close(s);
}

/* A store failure in done: the caller gets -1 and the waiters hear UNAVAILABLE (never a rid
 * whose ownership was not recorded). Simulated with a memory store that is full. */
Test(owner, done_store_failure)
{
	struct gw_store *s = gw_store_open_mem(1, 0);
	struct gw_owner *o = gw_owner_new(s, 0);
	struct gw_owner_start st;
	struct wake_log log = { "" };
	struct waiter_ctx ctx = { &log, 7 };
	uint8_t fp[32] = { 0 };

	cr_assert_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, on_wake, &ctx, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", 1, on_wake, &ctx, &st),
		     GW_IDEM_WAIT);
	/* the key row fills the store: DONE works, the owner row does not fit */
	cr_expect_eq(gw_owner_idem_done(o, "a", "k", "R1", 2), -1);
	cr_expect_str_eq(log.s, "7=!14;");
	cr_expect_eq(gw_owner_idem_inflight(o, "a", "k"), 0);
	gw_owner_free(o);
	gw_store_close(s);
}

Test(owner, expire_uses_ttl)
{
	struct gw_store *s = mem_store();
	struct gw_owner *o = gw_owner_new(s, 10);	/* raised to the minimum */
	struct gw_owner_start st;
	uint8_t fp[32] = { 0 };
	const int64_t t0 = 1700000000000LL;

	cr_assert_eq(gw_owner_idem_start(o, "a", "old", fp, "http://s/u/1/v.mp4", t0, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_assert_eq(gw_owner_idem_done(o, "a", "old", "R1", t0), 0);
	cr_assert_eq(gw_owner_idem_start(o, "a", "new", fp, "http://s/u/1/v.mp4", t0 + 30000, NULL, NULL,
					 &st), GW_IDEM_PROCEED);
	cr_assert_eq(gw_owner_idem_done(o, "a", "new", "R2", t0), 0);
	cr_expect_eq(gw_owner_expire(o, t0 + GW_OWNER_MIN_TTL_MS - 1), 0);
	cr_expect_eq(gw_owner_expire(o, t0 + GW_OWNER_MIN_TTL_MS + 1), 1);
	cr_expect_eq(gw_owner_stats(o)->expired, 1);
	/* the expired key starts afresh; the other still replays; ownership is not expired */
	cr_expect_eq(gw_owner_idem_start(o, "a", "old", fp, "http://s/u/1/v.mp4", t0 + 70000, NULL, NULL,
					 &st), GW_IDEM_PROCEED);
	cr_expect_eq(gw_owner_idem_start(o, "a", "new", fp, "http://s/u/1/v.mp4", t0 + 70000, NULL, NULL,
					 &st), GW_IDEM_REPLAY);
	cr_expect_eq(gw_owner_check(s, GW_OBJ_JOB, "R1", "a", 0), 0);
	gw_owner_free(o);
	gw_store_close(s);

	s = mem_store();
	o = gw_owner_new(s, 0);
	cr_assert_eq(gw_owner_idem_start(o, "a", "k", fp, "http://s/u/1/v.mp4", t0, NULL, NULL, &st),
		     GW_IDEM_PROCEED);
	cr_expect_eq(gw_owner_expire(o, t0 + GW_OWNER_DEFAULT_TTL_MS - 1), 0);	/* default: 24 h */
	cr_expect_eq(gw_owner_expire(o, t0 + GW_OWNER_DEFAULT_TTL_MS + 1), 1);
	gw_owner_free(o);
	gw_store_close(s);
}

/* ---- reconciliation ---- */

#define SRC "http://127.0.0.1:8090/storage/u/U1/dance.mp4"
#define T0 1700000000000LL
#define ROW(rid, name, ctime) "{\"rid\":\"" rid "\",\"fileName\":\"" name "\",\"ctime\":" #ctime ",\"status\":\"PROGRESS\"}"
#define IN_OK SRC "?X-Goog-Signature=s3cr3t&X-Goog-Date=1"
#define IN_OTHER "http://127.0.0.1:8090/storage/u/U2/dance.mp4?X-Goog-Signature=s3cr3t"

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
	struct gw_owner *o = gw_owner_new(s, 0);

	cr_assert_eq(gw_store_owner_put(s, GW_OBJ_JOB, "RKNOWN", "team-b", 1), 0);
	for (size_t i = 0; i < sizeof recon_cases / sizeof recon_cases[0]; i++) {
		struct gw_idem e = { .created_ms = T0 };
		struct gw_owner_recon r;
		const char *dl = recon_cases[i].dl;
		char got[256];
		enum gw_recon_verdict v;

		snprintf(e.source, sizeof e.source, "%s", recon_cases[i].source);
		v = gw_owner_reconcile(o, &e, recon_cases[i].list, strlen(recon_cases[i].list), dl,
				       dl ? strlen(dl) : 0, &r);
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
	struct gw_owner *o = gw_owner_new(s, 0);
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
	cr_expect_eq(gw_owner_reconcile(o, &e, list, strlen(list), NULL, 0, &r), GW_RECON_AMBIGUOUS,
		     "%s", r.why);
	cr_expect_eq(r.ncand, GW_OWNER_RECON_MAX);
	gw_owner_free(o);
	gw_store_close(s);
}
