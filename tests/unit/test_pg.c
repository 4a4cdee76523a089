/*
 * Unit tests for gateway/state/pg.c against a real PostgreSQL (tests/lib/with-postgres starts a
 * throw-away cluster and exports A3D_PG_*): answers, server errors, deadlines, cancellation, the
 * queue bound, an outage and the reconnect after it, and start-up connection errors.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/state/pg.h"

#define T_LOOP_MS 15000		/* bound on any wait in these tests */

enum { S_ADD, S_DIV, S_SLEEP, S_ECHO };
static const struct gw_pg_stmt stmts[] = {
	{ "t_add", "SELECT ($1::int + 1)::text", 1 },
	{ "t_div", "SELECT (1 / $1::int)::text", 1 },
	{ "t_sleep", "SELECT pg_sleep($1::float8)::text", 1 },
	{ "t_echo", "SELECT $1::text, $2::text", 2 },
};

struct answer {
	int done;			/* times done() ran */
	char value[64];
	char err[GW_PG_ERR_MAX + 128];
};

static int g_done;

static void on_done(void *arg, const PGresult *res, const char *err)
{
	struct answer *a = arg;

	a->done++;
	g_done++;
	if (res && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		snprintf(a->value, sizeof a->value, "%s", PQgetvalue(res, 0, 0));
	else if (res)
		snprintf(a->value, sizeof a->value, "(null)");
	snprintf(a->err, sizeof a->err, "%s", err ? err : "");
}

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

/* Runs the loop until want answers arrived (g_done), bounded. */
static void run_until(struct event_base *base, int want)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;

	while (g_done < want && gw_clock_now_us() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Runs the loop for ms (timers, reconnects). */
static void run_for(struct event_base *base, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;
	struct timeval tv = { 0, 20000 };

	while (gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
}

Test(pg, answers_and_server_errors_table)
{
	static const struct {
		size_t stmt;
		const char *p1, *p2;
		const char *value;	/* expected first column, or NULL */
		const char *err;	/* expected error fragment, or NULL */
	} rows[] = {
		{ S_ADD, "41", NULL, "42", NULL },
		{ S_ADD, "-1", NULL, "0", NULL },
		{ S_DIV, "0", NULL, NULL, "division by zero" },
		{ S_ADD, "not a number", NULL, NULL, "invalid input syntax" },
		{ S_ECHO, "x'; DROP TABLE y; --", "b", "x'; DROP TABLE y; --", NULL },	/* bound, not built */
		{ S_ECHO, NULL, "b", "(null)", NULL },
		{ S_ADD, "1", NULL, "2", NULL },	/* the connection survived the errors */
	};
	struct event_base *base = event_base_new();
	struct gw_pg_opts o;
	struct answer a[sizeof rows / sizeof rows[0]];
	char err[256];
	struct gw_pg *p;

	opts_of_env(&o, 1, 5000);
	p = gw_pg_new(base, &o, stmts, sizeof stmts / sizeof stmts[0], err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	memset(a, 0, sizeof a);
	g_done = 0;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const char *params[2] = { rows[i].p1, rows[i].p2 };

		cr_assert_not_null(gw_pg_query(p, rows[i].stmt, params, stmts[rows[i].stmt].nparams,
					       on_done, &a[i]), "row %zu", i);
	}
	cr_expect_eq(g_done, 0, "done() never runs inside gw_pg_query");
	run_until(base, (int)(sizeof rows / sizeof rows[0]));
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		cr_expect_eq(a[i].done, 1, "row %zu: done %d times", i, a[i].done);
		if (rows[i].value)
			cr_expect_str_eq(a[i].value, rows[i].value, "row %zu (err %s)", i, a[i].err);
		if (rows[i].err)
			cr_expect(strstr(a[i].err, rows[i].err), "row %zu: err \"%s\"", i, a[i].err);
		else
			cr_expect_str_eq(a[i].err, "", "row %zu", i);
		cr_expect_null(strstr(a[i].err, g_password), "row %zu: the password in an error", i);
	}
	cr_expect_eq(gw_pg_stats(p)->connected, 1);
	cr_expect_eq(gw_pg_stats(p)->failed, 2);
	cr_expect_eq(gw_pg_stats(p)->drops, 0);
	gw_pg_free(p);
	event_base_free(base);
}

/* More queries than connections: each answered once, the queue gauge back to 0. */
Test(pg, many_queries_few_connections)
{
	enum { N = 200 };
	struct event_base *base = event_base_new();
	struct gw_pg_opts o;
	static struct answer a[N];
	char err[256], num[16];
	struct gw_pg *p;

	opts_of_env(&o, 3, 5000);
	p = gw_pg_new(base, &o, stmts, sizeof stmts / sizeof stmts[0], err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	memset(a, 0, sizeof a);
	g_done = 0;
	for (int i = 0; i < N; i++) {
		const char *params[1] = { num };

		snprintf(num, sizeof num, "%d", i);
		cr_assert_not_null(gw_pg_query(p, S_ADD, params, 1, on_done, &a[i]));
	}
	run_until(base, N);
	for (int i = 0; i < N; i++) {
		char want[16];

		snprintf(want, sizeof want, "%d", i + 1);
		cr_expect_eq(a[i].done, 1, "query %d", i);
		cr_expect_str_eq(a[i].value, want, "query %d: %s", i, a[i].err);
	}
	cr_expect_eq(gw_pg_stats(p)->queued, 0);
	cr_expect_eq(gw_pg_stats(p)->busy, 0);
	cr_expect_leq(gw_pg_stats(p)->connected, 3);
	gw_pg_free(p);
	event_base_free(base);
}

/* A query past its deadline fails and its connection is replaced; cancelled queries never
 * answer; a wrong statement or parameter count is refused at once. */
Test(pg, deadline_cancel_and_refusals)
{
	struct event_base *base = event_base_new();
	struct gw_pg_opts o;
	struct answer slow = { 0 }, after = { 0 }, gone1 = { 0 }, gone2 = { 0 };
	const char *two[1] = { "2" }, *one[1] = { "1" };
	char err[256];
	struct gw_pg *p;
	struct gw_pg_q *q;

	opts_of_env(&o, 1, 400);
	p = gw_pg_new(base, &o, stmts, sizeof stmts / sizeof stmts[0], err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	g_done = 0;
	cr_assert_not_null(gw_pg_query(p, S_SLEEP, two, 1, on_done, &slow));
	run_until(base, 1);
	cr_expect_eq(slow.done, 1);
	cr_expect(strstr(slow.err, "timed out") || strstr(slow.err, "statement timeout"), "%s",
		  slow.err);
	/* The pool recovers: the next query is answered (a new connection when it was dropped). */
	cr_assert_not_null(gw_pg_query(p, S_ADD, one, 1, on_done, &after));
	run_until(base, 2);
	cr_expect_str_eq(after.value, "2", "%s", after.err);
	/* Cancelled in flight and cancelled while queued (pool of one): neither answers. */
	q = gw_pg_query(p, S_ADD, one, 1, on_done, &gone1);
	cr_assert_not_null(q);
	gw_pg_cancel(q);
	q = gw_pg_query(p, S_ADD, one, 1, on_done, &gone2);
	cr_assert_not_null(q);
	gw_pg_cancel(q);
	run_for(base, 300);
	cr_expect_eq(gone1.done + gone2.done, 0);
	cr_expect_null(gw_pg_query(p, 99, one, 1, on_done, &gone1), "unknown statement");
	cr_expect_null(gw_pg_query(p, S_ADD, one, 2, on_done, &gone1), "wrong parameter count");
	cr_expect_null(gw_pg_query(NULL, S_ADD, one, 1, on_done, &gone1));
	gw_pg_free(p);
	event_base_free(base);
}

/* The server goes away: queries fail (UNAVAILABLE for the store) within their deadline, nothing
 * hangs; it comes back: the pool reconnects by itself. */
Test(pg, outage_and_recovery)
{
	struct event_base *base = event_base_new();
	struct gw_pg_opts o;
	struct answer before = { 0 }, during = { 0 }, recovered = { 0 };
	const char *one[1] = { "1" };
	const char *ctl = getenv("A3D_PG_CTL");
	char err[256], cmd[512];
	struct gw_pg *p;
	int64_t t0, end;

	cr_assert_not_null(ctl);
	opts_of_env(&o, 2, 1000);
	p = gw_pg_new(base, &o, stmts, sizeof stmts / sizeof stmts[0], err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	g_done = 0;
	gw_pg_query(p, S_ADD, one, 1, on_done, &before);
	run_until(base, 1);
	cr_expect_str_eq(before.value, "2", "%s", before.err);
	snprintf(cmd, sizeof cmd, "%s stop", ctl);
	cr_assert_eq(system(cmd), 0);
	t0 = gw_clock_now_us();
	cr_assert_not_null(gw_pg_query(p, S_ADD, one, 1, on_done, &during));
	run_until(base, 2);
	cr_expect_eq(during.done, 1);
	cr_expect_neq(during.err[0], '\0', "failed while the server is down");
	cr_expect_lt(gw_clock_now_us() - t0, 5 * 1000000, "within a bound, not a hang");
	snprintf(cmd, sizeof cmd, "%s start", ctl);
	cr_assert_eq(system(cmd), 0);
	/* Retried by the test until the pool has reconnected (bounded). */
	end = gw_clock_now_us() + (int64_t)T_LOOP_MS * 1000;
	while (strcmp(recovered.value, "2") != 0 && gw_clock_now_us() < end) {
		memset(&recovered, 0, sizeof recovered);
		g_done = 0;
		gw_pg_query(p, S_ADD, one, 1, on_done, &recovered);
		run_until(base, 1);
		if (strcmp(recovered.value, "2") != 0)
			run_for(base, 200);
	}
	cr_expect_str_eq(recovered.value, "2", "reconnected: %s", recovered.err);
	cr_expect_gt(gw_pg_stats(p)->drops + gw_pg_stats(p)->connect_failures, 0);
	gw_pg_free(p);
	event_base_free(base);
}

Test(pg, blocking_connect_errors)
{
	struct gw_pg_opts o;
	char err[512];
	PGconn *c;

	opts_of_env(&o, 1, 3000);
	c = gw_pg_connect_blocking(&o, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	PQfinish(c);
	o.password = "wrong-password-xyz";
	c = gw_pg_connect_blocking(&o, err, sizeof err);
	cr_expect_null(c);
	cr_expect(strstr(err, "cannot connect to PostgreSQL at 127.0.0.1:"), "%s", err);
	cr_expect(strstr(err, "/a3d"), "names the database: %s", err);
	cr_expect_null(strstr(err, "wrong-password-xyz"), "never the password: %s", err);
	o.password = g_password;
	o.port = 1;	/* nothing listens */
	c = gw_pg_connect_blocking(&o, err, sizeof err);
	cr_expect_null(c);
	cr_expect(strstr(err, "127.0.0.1:1/a3d"), "%s", err);
}

Test(pg, invalid_options)
{
	struct event_base *base = event_base_new();
	struct gw_pg_opts o;
	char err[256];

	opts_of_env(&o, 0, 1000);
	cr_expect_null(gw_pg_new(base, &o, stmts, 4, err, sizeof err));
	o.pool = GW_PG_MAX_POOL + 1;
	cr_expect_null(gw_pg_new(base, &o, stmts, 4, err, sizeof err));
	o.pool = 1;
	o.timeout_ms = 0;
	cr_expect_null(gw_pg_new(base, &o, stmts, 4, err, sizeof err));
	o.timeout_ms = 1000;
	o.nextra = GW_PG_MAX_EXTRA + 1;
	cr_expect_null(gw_pg_new(base, &o, stmts, 4, err, sizeof err));
	o.nextra = 1;	/* and no arrays */
	cr_expect_null(gw_pg_new(base, &o, stmts, 4, err, sizeof err));
	event_base_free(base);
}

/* host (a name for the certificate check, never resolved: hostaddr is connected to) and the
 * keywords passed through from state.postgres.dsn reach libpq; what the server then sees says so. */
Test(pg, host_and_extra_keywords)
{
	static const char *const keys[] = { "keepalives_idle", "target_session_attrs" };
	static const char *const values[] = { "30", "read-write" };
	struct gw_pg_opts o;
	char err[512];
	PQconninfoOption *info;
	PGconn *c;

	opts_of_env(&o, 1, 3000);
	o.host = "db.invalid";	/* a name that cannot resolve: connecting proves it is not looked up */
	o.extra_keys = keys;
	o.extra_values = values;
	o.nextra = 2;
	c = gw_pg_connect_blocking(&o, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_expect_str_eq(PQhost(c), "db.invalid");
	cr_expect_str_eq(PQhostaddr(c), "127.0.0.1");
	info = PQconninfo(c);
	cr_assert_not_null(info);
	for (const PQconninfoOption *opt = info; opt->keyword; opt++) {
		if (strcmp(opt->keyword, "keepalives_idle") == 0)
			cr_expect_str_eq(opt->val, "30");
		if (strcmp(opt->keyword, "target_session_attrs") == 0)
			cr_expect_str_eq(opt->val, "read-write");
	}
	PQconninfoFree(info);
	PQfinish(c);
}
