/*
 * pg: a small pool of PostgreSQL connections driven by the libevent loop (libpq's asynchronous
 * API), for the state store's PostgreSQL backend. Nothing here blocks the loop once the pool runs.
 *
 * - Connections are opened with PQconnectStartParams and polled on their socket. The server is
 *   named by IP literal (hostaddr): libpq resolves host names synchronously.
 * - Every connection prepares the pool's statements (a table given at creation, indexed by the
 *   caller's statement number) before it takes queries; parameters are always bound (text).
 * - One query at a time per connection; queries wait in a bounded FIFO (GW_PG_MAX_QUEUE, more
 *   refused at once, counted) for a ready connection.
 * - Each query has a deadline (timeout_ms, also set as the server's statement_timeout). Past it,
 *   or when the server stops answering, the connection is dropped (not PQcancel, which blocks
 *   before libpq 17) and reopened with a capped backoff; its query fails with an error text.
 * - A query's done() runs exactly once from the loop (never inside gw_pg_query), unless
 *   gw_pg_cancel() was called first; then its answer, if any, is read and thrown away.
 *
 * Errors never carry the password; messages name the server as host:port/dbname.
 */
#ifndef A3D_GATEWAY_PG_H
#define A3D_GATEWAY_PG_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#define GW_PG_MAX_POOL 32		/* connections of one pool */
#define GW_PG_MAX_QUEUE 4096		/* queries waiting for a connection */
#define GW_PG_MAX_PARAMS 12		/* parameters of one statement */
#define GW_PG_MAX_STATEMENTS 48		/* prepared statements of one pool */
#define GW_PG_MAX_EXTRA 16		/* further libpq keywords (= GW_CONFIG_PG_MAX_EXTRA) */
#define GW_PG_ERR_MAX 256
#define GW_PG_BACKOFF_MIN_MS 100	/* reconnect delay after a failure, doubling */
#define GW_PG_BACKOFF_MAX_MS 5000

struct event_base;
struct gw_pg;
struct gw_pg_q;

/* Where and how to connect. Strings are copied. */
struct gw_pg_opts {
	const char *hostaddr;		/* IP literal */
	unsigned port;
	const char *dbname;
	const char *user;
	const char *password;		/* may be NULL; wiped from memory at free */
	const char *sslmode;		/* NULL: libpq's default ("prefer") */
	unsigned pool;			/* connections, 1..GW_PG_MAX_POOL */
	long timeout_ms;		/* per query and per connect; > 0 */
	const char *application_name;	/* shown in pg_stat_activity */
	const char *host;		/* NULL, or the server's name for the certificate check
					 * (sslmode verify-full) only: libpq connects to hostaddr */
	/* Further libpq keywords (sslrootcert, keepalives, ...: the configuration's checked list),
	 * nextra <= GW_PG_MAX_EXTRA of them; never password or a keyword set above. */
	const char *const *extra_keys;
	const char *const *extra_values;
	size_t nextra;
};

struct gw_pg_stmt {
	const char *name;		/* static */
	const char *sql;		/* static; $1..$n */
	int nparams;
};

/* The outcome of a query: res is the last result (PGRES_TUPLES_OK / PGRES_COMMAND_OK) or NULL
 * with err set. res is valid during done() only. */
typedef void (*gw_pg_done_fn)(void *arg, const PGresult *res, const char *err);

struct gw_pg_stats {
	uint64_t queries;		/* started */
	uint64_t failed;		/* done() with err */
	uint64_t timeouts;		/* of which: past their deadline */
	uint64_t queue_full;		/* refused: the FIFO was full */
	uint64_t connects;		/* connections opened (first and reconnects) */
	uint64_t connect_failures;
	uint64_t drops;			/* connections dropped (timeout, error, server gone) */
	unsigned connected;		/* gauge: ready connections */
	unsigned queued;		/* gauge: waiting queries */
	unsigned busy;			/* gauge: queries in flight */
};

/*
 * A pool on base that connects in the background. stmts (nstmts <= GW_PG_MAX_STATEMENTS) must
 * outlive the pool. NULL with err set when the options are invalid or memory runs out. No
 * connection is tried before the first loop iteration.
 */
struct gw_pg *gw_pg_new(struct event_base *base, const struct gw_pg_opts *o,
			const struct gw_pg_stmt *stmts, size_t nstmts, char *err, size_t errlen);
/* Closes every connection; queued and in-flight queries are dropped WITHOUT done(). */
void gw_pg_free(struct gw_pg *p);

/* Runs statement stmt with n text parameters (NULL = SQL NULL), copied. Returns a handle, or
 * NULL when it is refused at once (queue full, bad statement): then done() never runs. */
struct gw_pg_q *gw_pg_query(struct gw_pg *p, size_t stmt, const char *const *params, int n,
			    gw_pg_done_fn done, void *arg);
void gw_pg_cancel(struct gw_pg_q *q);

const struct gw_pg_stats *gw_pg_stats(const struct gw_pg *p);
/* 1 while the pool is down: a connection attempt failed and no connection is ready (queries
 * then fail at once). 0 while starting, connected, or reconnecting after a lost connection. */
int gw_pg_down(const struct gw_pg *p);
/* The last connection error ("" when none), and "host:port/db" of the server. */
const char *gw_pg_last_error(const struct gw_pg *p);
const char *gw_pg_where(const struct gw_pg *p);

/*
 * Blocking helpers for start-up only (before the loop serves): a connection with the same
 * options, or NULL with err ("cannot connect to PostgreSQL at host:port/db: <libpq's reason>",
 * never the password). The caller PQfinish()es it.
 */
PGconn *gw_pg_connect_blocking(const struct gw_pg_opts *o, char *err, size_t errlen);

#endif
