/*
 * pg: PostgreSQL connections on the loop. See pg.h.
 *
 * A connection goes DOWN -> CONNECTING (PQconnectPoll on its socket) -> PREPARING (one
 * PQsendPrepare per statement, in order) -> READY <-> BUSY (one query) and back to DOWN on any
 * failure, from where a backoff timer reopens it. Every state change that can free work goes
 * through pg_dispatch(), which hands queued queries to READY connections in FIFO order.
 */
#include "gateway/state/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/base/log.h"

enum pgc_state { PGC_DOWN, PGC_CONNECTING, PGC_PREPARING, PGC_READY, PGC_BUSY };

struct pgc {
	struct gw_pg *p;
	PGconn *conn;
	enum pgc_state st;
	struct event *ev;		/* the socket, for what ev_what says */
	evutil_socket_t ev_fd;
	short ev_what;
	struct event *timer;		/* connect deadline, or the reconnect backoff */
	size_t prep_next;		/* next statement to prepare */
	struct gw_pg_q *q;		/* the query in flight (BUSY) */
	PGresult *last;			/* last result read for the prepare or query in flight */
	unsigned fails;			/* consecutive failures: the backoff */
};

struct gw_pg_q {
	struct gw_pg *p;
	struct gw_pg_q *prev, *next;	/* the FIFO while queued */
	int queued;
	struct pgc *c;			/* the connection while running */
	size_t stmt;
	int n;
	char *params[GW_PG_MAX_PARAMS];
	gw_pg_done_fn done;
	void *arg;
	int cancelled;
	int fast;			/* its deadline was cut to now: the pool was down */
	struct event *timer;		/* the deadline */
};

struct gw_pg {
	struct event_base *base;
	const struct gw_pg_stmt *stmts;
	size_t nstmts;
	const char *kw[10 + GW_PG_MAX_EXTRA];
	char *val[10 + GW_PG_MAX_EXTRA];
	long timeout_ms;
	char where[160];
	char last_error[GW_PG_ERR_MAX];
	struct pgc c[GW_PG_MAX_POOL];
	unsigned n;
	struct gw_pg_q head;		/* FIFO sentinel */
	struct gw_pg_stats st;
	int down;			/* a connection attempt failed and none is ready: queries
					 * fail at once instead of waiting for their deadline */
};

static void pg_dispatch(struct gw_pg *p);
static void pg_fail_queued(struct gw_pg *p);
static void pgc_on_socket(evutil_socket_t fd, short what, void *arg);
static void pgc_start(struct pgc *c);

/* libpq's messages end in newlines and may span lines: one line for logs and statuses. */
static void pg_one_line(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; src && *src && o + 1 < cap; src++)
		dst[o++] = (*src == '\n' || *src == '\r' || *src == '\t') ? ' ' : *src;
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/* ---- queries ---- */

static void pg_q_free(struct gw_pg_q *q)
{
	for (int i = 0; i < q->n; i++)
		free(q->params[i]);
	if (q->timer)
		event_free(q->timer);
	free(q);
}

static void pg_q_unqueue(struct gw_pg_q *q)
{
	if (!q->queued)
		return;
	q->prev->next = q->next;
	q->next->prev = q->prev;
	q->queued = 0;
	q->p->st.queued--;
}

/* Ends q: done() with res or err (unless cancelled), then frees it. */
static void pg_q_finish(struct gw_pg_q *q, const PGresult *res, const char *err)
{
	if (!q->cancelled) {
		if (err)
			q->p->st.failed++;
		q->done(q->arg, err ? NULL : res, err);
	}
	pg_q_free(q);
}

/* ---- connections ---- */

static void pgc_watch(struct pgc *c, short what)
{
	evutil_socket_t fd = c->conn ? PQsocket(c->conn) : -1;

	if (c->ev && c->ev_fd == fd && c->ev_what == what)
		return;
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
	}
	c->ev_fd = fd;
	c->ev_what = what;
	if (fd < 0 || !what)
		return;
	c->ev = event_new(c->p->base, fd, what | EV_PERSIST, pgc_on_socket, c);
	if (c->ev)
		event_add(c->ev, NULL);
}

static void pgc_arm(struct pgc *c, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

/* Back to DOWN: closes the connection, fails its query with why, schedules the reconnect. */
static void pgc_drop(struct pgc *c, const char *why)
{
	struct gw_pg *p = c->p;
	struct gw_pg_q *q = c->q;
	long backoff = GW_PG_BACKOFF_MIN_MS;
	char msg[GW_PG_ERR_MAX + 64];
	/* a connection attempt failed (not a live connection lost, e.g. to a slow query's deadline) */
	int attempt_failed = c->st != PGC_READY && c->st != PGC_BUSY;

	if (c->st == PGC_READY || c->st == PGC_BUSY)
		p->st.connected--;
	if (c->st != PGC_DOWN)
		p->st.drops++;
	snprintf(p->last_error, sizeof p->last_error, "%s", why);
	pgc_watch(c, 0);
	evtimer_del(c->timer);
	if (c->last) {
		PQclear(c->last);
		c->last = NULL;
	}
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	c->st = PGC_DOWN;
	c->q = NULL;
	for (unsigned i = 0; i < c->fails && backoff < GW_PG_BACKOFF_MAX_MS; i++)
		backoff *= 2;
	if (backoff > GW_PG_BACKOFF_MAX_MS)
		backoff = GW_PG_BACKOFF_MAX_MS;
	c->fails++;
	pgc_arm(c, backoff);
	if (attempt_failed && p->st.connected == 0 && !p->down) {
		p->down = 1;
		pg_fail_queued(p);
	}
	if (q) {
		p->st.busy--;
		snprintf(msg, sizeof msg, "PostgreSQL at %s: %s", p->where, why);
		q->c = NULL;
		pg_q_finish(q, NULL, msg);
	}
}

/* A connection-level failure with libpq's reason. */
static void pgc_fail(struct pgc *c, const char *what)
{
	char reason[GW_PG_ERR_MAX], why[GW_PG_ERR_MAX];

	pg_one_line(reason, sizeof reason, c->conn ? PQerrorMessage(c->conn) : "");
	/* Cut to fit: what is short, libpq's reason is bounded by reason[]. */
	snprintf(why, sizeof why, "%.64s%s%.180s", what, reason[0] ? ": " : "", reason);
	gw_log(GW_LOG_WARN, "postgres", GW_LS("server", c->p->where), GW_LS("msg", why), GW_LEND);
	pgc_drop(c, why);
}

/* After a PQsend*: flush what libpq buffered, then wait for the answer. 0, or -1 (dropped). */
static int pgc_flush(struct pgc *c)
{
	int r = PQflush(c->conn);

	if (r < 0) {
		pgc_fail(c, "send failed");
		return -1;
	}
	pgc_watch(c, r ? (EV_READ | EV_WRITE) : EV_READ);
	return 0;
}

static void pgc_prepare_next(struct pgc *c)
{
	struct gw_pg *p = c->p;
	const struct gw_pg_stmt *s;

	if (c->prep_next >= p->nstmts) {
		c->st = PGC_READY;
		c->fails = 0;
		evtimer_del(c->timer);
		p->st.connected++;
		p->down = 0;
		p->last_error[0] = '\0';
		pgc_watch(c, EV_READ);	/* a closed connection shows as readable */
		pg_dispatch(p);
		return;
	}
	s = &p->stmts[c->prep_next];
	if (!PQsendPrepare(c->conn, s->name, s->sql, s->nparams, NULL)) {
		pgc_fail(c, "cannot prepare a statement");
		return;
	}
	pgc_flush(c);
}

/* Sends q on the READY connection c. 0, or -1 (c dropped, q left untouched for a requeue). */
static int pgc_send(struct pgc *c, struct gw_pg_q *q)
{
	const struct gw_pg_stmt *s = &c->p->stmts[q->stmt];

	if (!PQsendQueryPrepared(c->conn, s->name, q->n, (const char *const *)q->params, NULL, NULL,
				 0)) {
		pgc_fail(c, "cannot send a query");
		return -1;
	}
	c->st = PGC_BUSY;
	c->q = q;
	q->c = c;
	c->p->st.busy++;
	/* A failed flush drops c and fails q with it: q is consumed either way. */
	pgc_flush(c);
	return 0;
}

/* The whole answer to the prepare or query in flight has arrived (c->last: its last result). */
static void pgc_complete(struct pgc *c)
{
	struct gw_pg *p = c->p;
	PGresult *res = c->last;
	ExecStatusType rs = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int ok = rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK;
	char err[GW_PG_ERR_MAX], msg[2 * GW_PG_ERR_MAX];

	c->last = NULL;
	if (c->st == PGC_PREPARING) {
		if (!ok) {
			pg_one_line(err, sizeof err, res ? PQresultErrorMessage(res) : "no answer");
			PQclear(res);
			snprintf(msg, sizeof msg, "preparing %s failed: %s", p->stmts[c->prep_next].name,
				 err);
			gw_log(GW_LOG_ERROR, "postgres", GW_LS("server", p->where), GW_LS("msg", msg),
			       GW_LEND);
			pgc_drop(c, msg);
			return;
		}
		PQclear(res);
		c->prep_next++;
		pgc_prepare_next(c);
		return;
	}
	if (c->st == PGC_BUSY && c->q) {
		struct gw_pg_q *q = c->q;

		c->q = NULL;
		q->c = NULL;
		c->st = PGC_READY;
		p->st.busy--;
		pgc_watch(c, EV_READ);
		if (ok) {
			pg_q_finish(q, res, NULL);
		} else {
			/* A server-side error (constraint, statement_timeout): the connection stays. */
			pg_one_line(err, sizeof err, res ? PQresultErrorMessage(res) : "no answer");
			snprintf(msg, sizeof msg, "PostgreSQL at %.120s: %.200s", p->where, err);
			pg_q_finish(q, NULL, msg);
		}
		PQclear(res);
		pg_dispatch(p);
		return;
	}
	PQclear(res);
}

/* Reads what arrived; completes the prepare or query in flight once its answer is whole. */
static void pgc_read(struct pgc *c)
{
	PGresult *r;

	if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD) {
		pgc_fail(c, "connection lost");
		return;
	}
	if (c->st != PGC_PREPARING && c->st != PGC_BUSY)
		return;		/* READY: notices only */
	while (!PQisBusy(c->conn)) {
		r = PQgetResult(c->conn);
		if (!r) {
			pgc_complete(c);
			return;
		}
		if (c->last)
			PQclear(c->last);
		c->last = r;
	}
}

static void pgc_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct pgc *c = arg;

	(void)fd;
	if (c->st == PGC_CONNECTING) {
		switch (PQconnectPoll(c->conn)) {
		case PGRES_POLLING_READING:
			pgc_watch(c, EV_READ);
			return;
		case PGRES_POLLING_WRITING:
			pgc_watch(c, EV_WRITE);
			return;
		case PGRES_POLLING_OK:
			if (PQsetnonblocking(c->conn, 1) != 0) {
				pgc_fail(c, "cannot set the connection non-blocking");
				return;
			}
			c->st = PGC_PREPARING;
			c->prep_next = 0;
			c->p->st.connects++;
			pgc_prepare_next(c);
			return;
		default:
			c->p->st.connect_failures++;
			pgc_fail(c, "cannot connect");
			return;
		}
	}
	if ((what & EV_WRITE) && (c->st == PGC_PREPARING || c->st == PGC_BUSY)) {
		if (pgc_flush(c) != 0)
			return;
	}
	if (what & EV_READ)
		pgc_read(c);
}

static void pgc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pgc *c = arg;

	(void)fd;
	(void)what;
	if (c->st == PGC_DOWN) {
		pgc_start(c);
		return;
	}
	if (c->st == PGC_CONNECTING || c->st == PGC_PREPARING) {
		c->p->st.connect_failures++;
		pgc_drop(c, "connecting timed out");
	}
}

static void pgc_start(struct pgc *c)
{
	struct gw_pg *p = c->p;

	c->conn = PQconnectStartParams(p->kw, (const char *const *)p->val, 0);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		p->st.connect_failures++;
		pgc_fail(c, "cannot start a connection");
		return;
	}
	c->st = PGC_CONNECTING;
	pgc_arm(c, p->timeout_ms);
	pgc_watch(c, EV_WRITE);	/* libpq: poll as if PGRES_POLLING_WRITING first */
}

/* ---- the pool ---- */

static void pg_dispatch(struct gw_pg *p)
{
	for (unsigned i = 0; i < p->n && p->head.next != &p->head; i++) {
		struct pgc *c = &p->c[i];
		struct gw_pg_q *q;

		if (c->st != PGC_READY)
			continue;
		q = p->head.next;
		pg_q_unqueue(q);
		if (q->fast) {
			/* A connection came back before the cut deadline fired: the full one (set
			 * before sending: a failed send may consume q). */
			struct timeval tv = { p->timeout_ms / 1000, (p->timeout_ms % 1000) * 1000 };

			q->fast = 0;
			evtimer_add(q->timer, &tv);
		}
		if (pgc_send(c, q) != 0) {
			/* Nothing was sent: back to the front, for another connection. */
			q->next = p->head.next;
			q->prev = &p->head;
			p->head.next->prev = q;
			p->head.next = q;
			q->queued = 1;
			p->st.queued++;
		}
	}
}

static void pg_q_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_pg_q *q = arg;
	struct gw_pg *p = q->p;
	char msg[2 * GW_PG_ERR_MAX];

	(void)fd;
	(void)what;
	p->st.timeouts++;
	if (q->c) {
		/* The server took too long: the connection's state is unknown, drop it. */
		pgc_drop(q->c, "query timed out");
		return;
	}
	pg_q_unqueue(q);
	if (p->down)
		snprintf(msg, sizeof msg, "PostgreSQL at %.120s is unreachable%s%.180s", p->where,
			 p->last_error[0] ? ": " : "", p->last_error);
	else
		snprintf(msg, sizeof msg, "PostgreSQL at %.120s unreachable (no connection within %ld ms)%s%.180s",
			 p->where, p->timeout_ms, p->last_error[0] ? ": " : "", p->last_error);
	pg_q_finish(q, NULL, msg);
}

/* The pool is down: every waiting query fails on the next loop turn, not at its deadline. */
static void pg_fail_queued(struct gw_pg *p)
{
	static const struct timeval now = { 0, 0 };

	for (struct gw_pg_q *q = p->head.next; q != &p->head; q = q->next) {
		q->fast = 1;
		evtimer_add(q->timer, &now);
	}
}

struct gw_pg_q *gw_pg_query(struct gw_pg *p, size_t stmt, const char *const *params, int n,
			    gw_pg_done_fn done, void *arg)
{
	struct gw_pg_q *q;
	struct timeval tv;

	if (!p || !done || stmt >= p->nstmts || n != p->stmts[stmt].nparams || n > GW_PG_MAX_PARAMS)
		return NULL;
	if (p->st.queued >= GW_PG_MAX_QUEUE) {
		p->st.queue_full++;
		return NULL;
	}
	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->p = p;
	q->stmt = stmt;
	q->done = done;
	q->arg = arg;
	for (int i = 0; i < n; i++) {
		if (params[i] && !(q->params[q->n] = strdup(params[i])))
			goto fail;
		q->n++;
	}
	q->timer = evtimer_new(p->base, pg_q_on_deadline, q);
	if (!q->timer)
		goto fail;
	q->fast = p->down;	/* down: fail on the next loop turn */
	tv.tv_sec = p->down ? 0 : p->timeout_ms / 1000;
	tv.tv_usec = p->down ? 0 : (p->timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	q->prev = p->head.prev;
	q->next = &p->head;
	p->head.prev->next = q;
	p->head.prev = q;
	q->queued = 1;
	p->st.queued++;
	p->st.queries++;
	/* A ready connection takes it now; its answer comes from the loop, never from here. */
	pg_dispatch(p);
	return q;
fail:
	pg_q_free(q);
	return NULL;
}

void gw_pg_cancel(struct gw_pg_q *q)
{
	if (!q)
		return;
	if (q->queued) {
		pg_q_unqueue(q);
		pg_q_free(q);
		return;
	}
	q->cancelled = 1;	/* in flight: freed when its answer (or the drop) comes */
}

struct gw_pg *gw_pg_new(struct event_base *base, const struct gw_pg_opts *o,
			const struct gw_pg_stmt *stmts, size_t nstmts, char *err, size_t errlen)
{
	struct gw_pg *p = NULL, *ret = NULL;
	char port[16], opts[64];
	size_t k = 0;

	if (!o->hostaddr || !o->dbname || !o->user || o->pool < 1 || o->pool > GW_PG_MAX_POOL ||
	    o->timeout_ms <= 0 || nstmts > GW_PG_MAX_STATEMENTS || o->nextra > GW_PG_MAX_EXTRA ||
	    (o->nextra && (!o->extra_keys || !o->extra_values))) {
		snprintf(err, errlen, "invalid PostgreSQL pool options");
		goto out;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	p->base = base;
	p->stmts = stmts;
	p->nstmts = nstmts;
	p->timeout_ms = o->timeout_ms;
	p->head.next = p->head.prev = &p->head;
	snprintf(p->where, sizeof p->where, "%s:%u/%s", o->hostaddr, o->port, o->dbname);
	snprintf(port, sizeof port, "%u", o->port);
	/* The server ends a statement past the client's deadline too, so a dropped connection
	 * does not leave work running there. */
	snprintf(opts, sizeof opts, "-c statement_timeout=%ld", o->timeout_ms);
#define PG_KV(k_, v_)                                          \
	do {                                                   \
		p->kw[k] = (k_);                               \
		if (!(p->val[k] = strdup(v_)))                 \
			goto oom;                              \
		k++;                                           \
	} while (0)
	PG_KV("hostaddr", o->hostaddr);
	PG_KV("port", port);
	PG_KV("dbname", o->dbname);
	PG_KV("user", o->user);
	PG_KV("options", opts);
	PG_KV("application_name", o->application_name ? o->application_name : "animate3d-gateway");
	if (o->password)
		PG_KV("password", o->password);
	if (o->sslmode)
		PG_KV("sslmode", o->sslmode);
	if (o->host)
		PG_KV("host", o->host);
	for (size_t i = 0; i < o->nextra; i++)
		PG_KV(o->extra_keys[i], o->extra_values[i]);
#undef PG_KV
	p->kw[k] = NULL;
	p->n = o->pool;
	for (unsigned i = 0; i < p->n; i++) {
		struct pgc *c = &p->c[i];

		c->p = p;
		c->ev_fd = -1;
		c->timer = evtimer_new(base, pgc_on_timer, c);
		if (!c->timer)
			goto oom;
		pgc_arm(c, 0);	/* DOWN + timer: connects from the loop */
	}
	ret = p;
	p = NULL;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	gw_pg_free(p);
	return ret;
}

void gw_pg_free(struct gw_pg *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++) {
		struct pgc *c = &p->c[i];

		if (c->q)
			pg_q_free(c->q);
		if (c->ev)
			event_free(c->ev);
		if (c->timer)
			event_free(c->timer);
		if (c->last)
			PQclear(c->last);
		if (c->conn)
			PQfinish(c->conn);
	}
	while (p->head.next && p->head.next != &p->head) {
		struct gw_pg_q *q = p->head.next;

		pg_q_unqueue(q);
		pg_q_free(q);
	}
	for (size_t i = 0; i < sizeof p->val / sizeof p->val[0]; i++) {
		if (p->val[i]) {
			explicit_bzero(p->val[i], strlen(p->val[i]));
			free(p->val[i]);
		}
	}
	free(p);
}

int gw_pg_down(const struct gw_pg *p)
{
	return p->down;
}

const struct gw_pg_stats *gw_pg_stats(const struct gw_pg *p)
{
	return &p->st;
}

const char *gw_pg_last_error(const struct gw_pg *p)
{
	return p->last_error;
}

const char *gw_pg_where(const struct gw_pg *p)
{
	return p->where;
}

PGconn *gw_pg_connect_blocking(const struct gw_pg_opts *o, char *err, size_t errlen)
{
	const char *kw[10 + GW_PG_MAX_EXTRA], *val[10 + GW_PG_MAX_EXTRA];
	char port[16], ctimeout[24], reason[GW_PG_ERR_MAX];
	size_t k = 0;
	PGconn *conn;
	long secs = (o->timeout_ms + 999) / 1000;

	snprintf(port, sizeof port, "%u", o->port);
	/* libpq takes whole seconds and treats 1 as 2. */
	snprintf(ctimeout, sizeof ctimeout, "%ld", secs < 2 ? 2 : secs);
	kw[k] = "hostaddr", val[k++] = o->hostaddr;
	kw[k] = "port", val[k++] = port;
	kw[k] = "dbname", val[k++] = o->dbname;
	kw[k] = "user", val[k++] = o->user;
	kw[k] = "connect_timeout", val[k++] = ctimeout;
	kw[k] = "application_name", val[k++] = o->application_name ? o->application_name
								 : "animate3d-gateway";
	if (o->password)
		kw[k] = "password", val[k++] = o->password;
	if (o->sslmode)
		kw[k] = "sslmode", val[k++] = o->sslmode;
	if (o->host)
		kw[k] = "host", val[k++] = o->host;
	for (size_t i = 0; i < o->nextra && i < GW_PG_MAX_EXTRA; i++)
		kw[k] = o->extra_keys[i], val[k++] = o->extra_values[i];
	kw[k] = NULL;
	val[k] = NULL;
	conn = PQconnectdbParams(kw, val, 0);
	if (conn && PQstatus(conn) == CONNECTION_OK)
		return conn;
	pg_one_line(reason, sizeof reason, conn ? PQerrorMessage(conn) : "out of memory");
	snprintf(err, errlen, "cannot connect to PostgreSQL at %s:%u/%s: %s", o->hostaddr, o->port,
		 o->dbname, reason);
	if (conn)
		PQfinish(conn);
	return NULL;
}
