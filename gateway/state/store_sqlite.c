/*
 * store_sqlite: the SQLite (WAL) store backend, one local file. See store.h for the durability
 * and latency contract.
 *
 * Schema (version GW_STORE_SCHEMA_VERSION):
 *   schema_version(version, opened_ms)       one row; opened_ms is rewritten at every open,
 *                                            which proves the file and its directory are writable
 *   owner(kind, id, tenant, created_ms, settled_ms, follow_lease, follow_until_ms)
 *                                            PRIMARY KEY (kind, id); index (kind, tenant, id);
 *                                            index (kind, settled_ms, created_ms): the job
 *                                            follower's unsettled jobs (version 2)
 *   idem(tenant, key, fp, done, rid, source, created_ms)
 *                                            PRIMARY KEY (tenant, key); index (done, created_ms)
 *   hook, outbox                             tenant webhooks (issue 17), see sql_schema_hooks
 *   sess(token_hash, tenant, key_hash, created_ms, expires_ms)
 *                                            REST facade sessions (issue 18): PRIMARY KEY
 *                                            token_hash; indexes (key_hash), (expires_ms),
 *                                            (tenant, expires_ms); see sql_schema_sess
 *   usage(id, tenant, rid, state, seconds, counted, input_ms, persons, face, hand, source,
 *         started_ms, ended_ms)               the usage ledger (issue 22): PRIMARY KEY id;
 *                                            see sql_schema_usage
 * Statements are prepared once per store (SQLITE_PREPARE_PERSISTENT) and reset after each use.
 */
#include "gateway/state/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

enum sql_stmt {
	SQL_OWNER_INSERT,
	SQL_OWNER_GET,
	SQL_OWNER_DEL,
	SQL_IDEM_INSERT,
	SQL_IDEM_GET,
	SQL_IDEM_FINISH,
	SQL_IDEM_ABORT,
	SQL_IDEM_COUNT,
	SQL_IDEM_EXPIRE,
	SQL_HOOK_INSERT,
	SQL_HOOK_COUNT,
	SQL_HOOK_GET,
	SQL_HOOK_LIST,
	SQL_HOOK_UPDATE,
	SQL_HOOK_DELETE,
	SQL_HOOK_DELETE_ROWS,
	SQL_HOOK_HEALTH,
	SQL_OUTBOX_ADD,
	SQL_OUTBOX_DUE,
	SQL_OUTBOX_LEASE,
	SQL_OUTBOX_SETTLE,
	SQL_OUTBOX_DEPTH,
	SQL_OUTBOX_EXPIRE,
	SQL_OUTBOX_ORPHANS,
	SQL_HOOK_LEGACY,
	SQL_JOB_UNSETTLED,
	SQL_JOB_LEASE,
	SQL_JOB_SETTLE,
	SQL_SESS_INSERT,
	SQL_SESS_COUNT,
	SQL_SESS_GET,
	SQL_SESS_DEL,
	SQL_SESS_REVOKE,
	SQL_SESS_EXPIRE,
	SQL_USAGE_USED,
	SQL_USAGE_INSERT,
	SQL_USAGE_START,
	SQL_USAGE_RELEASE,
	SQL_USAGE_SETTLE,
	SQL_USAGE_GET,
	SQL_USAGE_SUM,
	SQL_USAGE_CHARGED,
	SQL_USAGE_LIST,
	SQL_USAGE_REFOLLOW,
	SQL_NSTMT
};

#define SQL_USAGE_COLS "id, tenant, rid, state, seconds, counted, input_ms, persons, face, hand," \
		       " source, started_ms, ended_ms"
/* Per tenant: counted seconds (?4: stale reservations end at or before it), rows by state, the
 * oldest counted row's start. */
#define SQL_USAGE_AGG "SELECT tenant, sum(CASE WHEN state = 0 AND started_ms <= ?4 THEN 0 ELSE counted END)," \
		      " sum(state = 0), sum(state = 1), sum(state = 2), sum(state = 3), sum(state = 4)," \
		      " coalesce(min(CASE WHEN counted > 0 THEN started_ms END), 0) FROM usage"
_Static_assert(GW_USAGE_SUMS_MAX == 1024 && GW_USAGE_NSTATES == 5, "SQL_USAGE_SUM writes 1024, 5 states");

#define SQL_HOOK_COLS "tenant, id, url, description, secret, events, disabled, reason, created_ms," \
		      " updated_ms, failing_since_ms"

static const char *const sql_text[SQL_NSTMT] = {
	[SQL_OWNER_INSERT] = "INSERT OR IGNORE INTO owner(kind, id, tenant, created_ms) VALUES (?1, ?2, ?3, ?4)",
	[SQL_OWNER_GET] = "SELECT tenant FROM owner WHERE kind = ?1 AND id = ?2",
	[SQL_OWNER_DEL] = "DELETE FROM owner WHERE kind = ?1 AND id = ?2",
	[SQL_IDEM_INSERT] = "INSERT OR IGNORE INTO idem(tenant, key, fp, done, rid, source, created_ms) "
			    "VALUES (?1, ?2, ?3, 0, '', ?4, ?5)",
	[SQL_IDEM_GET] = "SELECT fp, done, rid, source, created_ms FROM idem WHERE tenant = ?1 AND key = ?2",
	[SQL_IDEM_FINISH] = "UPDATE idem SET done = 1, rid = ?3 WHERE tenant = ?1 AND key = ?2 AND done = 0",
	[SQL_IDEM_ABORT] = "DELETE FROM idem WHERE tenant = ?1 AND key = ?2 AND done = 0",
	[SQL_IDEM_COUNT] = "SELECT count(*) FROM idem WHERE done = 0",
	[SQL_IDEM_EXPIRE] = "DELETE FROM idem WHERE created_ms < ?1",
	[SQL_HOOK_INSERT] = "INSERT OR IGNORE INTO hook (" SQL_HOOK_COLS ") VALUES"
			    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[SQL_HOOK_COUNT] = "SELECT count(*) FROM hook WHERE tenant = ?1",
	[SQL_HOOK_GET] = "SELECT " SQL_HOOK_COLS " FROM hook WHERE tenant = ?1 AND id = ?2",
	[SQL_HOOK_LIST] = "SELECT " SQL_HOOK_COLS " FROM hook WHERE tenant = ?1 ORDER BY created_ms, id",
	[SQL_HOOK_UPDATE] = "UPDATE hook SET url = ?3, description = ?4, events = ?5, disabled = ?6,"
			    " reason = ?7, updated_ms = ?8, failing_since_ms = ?9,"
			    " secret = CASE WHEN ?10 <> '' THEN ?10 ELSE secret END"
			    " WHERE tenant = ?1 AND id = ?2",
	[SQL_HOOK_DELETE] = "DELETE FROM hook WHERE tenant = ?1 AND id = ?2",
	[SQL_HOOK_DELETE_ROWS] = "DELETE FROM outbox WHERE tenant = ?1 AND endpoint = ?2",
	[SQL_HOOK_HEALTH] = "UPDATE hook SET failing_since_ms = ?3, disabled = ?4, reason = ?5"
			    " WHERE tenant = ?1 AND id = ?2",
	[SQL_OUTBOX_ADD] = "INSERT OR IGNORE INTO outbox (endpoint, rid, tenant, body, state, attempts,"
			   " created_ms, next_ms, lease, lease_until_ms)"
			   " SELECT id, ?2, tenant, ?3, 0, 0, ?4, ?4, '', 0 FROM hook"
			   " WHERE tenant = ?1 AND disabled = 0 AND (events & ?5) <> 0",
	[SQL_OUTBOX_DUE] = "SELECT o.tenant, o.endpoint, o.rid, o.body, o.attempts, o.created_ms,"
			   " o.next_ms, h.url, h.secret FROM outbox o JOIN hook h"
			   " ON h.tenant = o.tenant AND h.id = o.endpoint"
			   " WHERE o.state = 0 AND o.next_ms <= ?1 AND (o.lease = '' OR o.lease_until_ms < ?1)"
			   " AND h.disabled = 0 ORDER BY o.next_ms LIMIT ?2",
	[SQL_OUTBOX_LEASE] = "UPDATE outbox SET lease = ?3, lease_until_ms = ?4"
			     " WHERE endpoint = ?1 AND rid = ?2",
	[SQL_OUTBOX_SETTLE] = "UPDATE outbox SET state = ?5, attempts = ?6, next_ms = ?7, lease = '',"
			      " lease_until_ms = 0 WHERE tenant = ?1 AND endpoint = ?2 AND rid = ?3"
			      " AND lease = ?4 AND state = 0",
	[SQL_OUTBOX_DEPTH] = "SELECT tenant, count(*) FROM outbox WHERE state = 0 GROUP BY tenant"
			     " ORDER BY tenant LIMIT ?1",
	[SQL_OUTBOX_EXPIRE] = "DELETE FROM outbox WHERE state <> 0 AND created_ms < ?1",
	/* rows whose hook is gone (a crash between the two deletes of DELETE) */
	[SQL_OUTBOX_ORPHANS] = "DELETE FROM outbox WHERE NOT EXISTS (SELECT 1 FROM hook h"
			       " WHERE h.tenant = outbox.tenant AND h.id = outbox.endpoint)",
	[SQL_HOOK_LEGACY] = "SELECT tenant, id FROM owner WHERE kind = 3 ORDER BY tenant, id LIMIT ?1",
	[SQL_JOB_UNSETTLED] = "SELECT id, tenant, created_ms FROM owner WHERE kind = 1 AND settled_ms = 0"
			      " AND follow_lease <> ?1 ORDER BY created_ms, id LIMIT ?2",
	[SQL_JOB_LEASE] = "UPDATE owner SET follow_lease = ?1, follow_until_ms = ?2 WHERE kind = 1 AND id = ?3",
	[SQL_JOB_SETTLE] = "UPDATE owner SET settled_ms = ?2, follow_lease = '', follow_until_ms = 0"
			   " WHERE kind = 1 AND id = ?1 AND settled_ms = 0",
	[SQL_SESS_INSERT] = "INSERT OR IGNORE INTO sess (token_hash, tenant, key_hash, created_ms,"
			    " expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	[SQL_SESS_COUNT] = "SELECT count(*) FROM sess WHERE tenant = ?1 AND expires_ms > ?2",
	[SQL_SESS_GET] = "SELECT tenant, key_hash, created_ms, expires_ms FROM sess"
			 " WHERE token_hash = ?1 AND expires_ms > ?2",
	[SQL_SESS_DEL] = "DELETE FROM sess WHERE token_hash = ?1",
	[SQL_SESS_REVOKE] = "DELETE FROM sess WHERE key_hash = ?1",
	[SQL_USAGE_USED] = "SELECT coalesce(sum(counted), 0), coalesce(min(started_ms), 0) FROM usage"
			   " WHERE tenant = ?1 AND started_ms >= ?2 AND counted > 0"
			   " AND NOT (state = 0 AND started_ms <= ?3)",
	[SQL_USAGE_INSERT] = "INSERT OR IGNORE INTO usage (" SQL_USAGE_COLS ") VALUES (?1, ?2, '', 0,"
			     " ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
	[SQL_USAGE_START] = "UPDATE usage SET rid = ?2, state = 1 WHERE id = ?1 AND state = 0",
	[SQL_USAGE_RELEASE] = "UPDATE usage SET state = 4, counted = 0, ended_ms = ?2"
			      " WHERE id = ?1 AND state = 0",
	[SQL_USAGE_SETTLE] = "UPDATE usage SET state = CASE WHEN ?2 THEN 2 ELSE 3 END,"
			     " counted = CASE WHEN ?2 OR ?3 THEN seconds ELSE 0 END, ended_ms = ?4"
			     " WHERE rid = ?1 AND state = 1",
	[SQL_USAGE_GET] = "SELECT " SQL_USAGE_COLS " FROM usage WHERE tenant = ?1 AND rid = ?2"
			  " AND state <> 4 ORDER BY started_ms DESC LIMIT 1",
	[SQL_USAGE_SUM] = SQL_USAGE_AGG " WHERE (?1 IS NULL OR tenant = ?1) AND started_ms >= ?2"
			  " AND started_ms < ?3 GROUP BY tenant ORDER BY tenant LIMIT 1024",
	[SQL_USAGE_CHARGED] = SQL_USAGE_AGG " WHERE (?1 IS NULL OR tenant = ?1) AND state IN (2, 3)"
			      " AND ended_ms >= ?2 AND ended_ms < ?3 GROUP BY tenant ORDER BY tenant"
			      " LIMIT 1024",
	[SQL_USAGE_LIST] = "SELECT " SQL_USAGE_COLS " FROM usage WHERE started_ms < ?3"
			   " AND (started_ms > ?1 OR (started_ms = ?1 AND id > ?2))"
			   " ORDER BY started_ms, id LIMIT ?4",
	[SQL_USAGE_REFOLLOW] = "UPDATE owner SET settled_ms = 0, follow_lease = '', follow_until_ms = 0"
			       " WHERE kind = 1 AND id = ?1 AND settled_ms <> 0",
	[SQL_SESS_EXPIRE] = "DELETE FROM sess WHERE token_hash IN (SELECT token_hash FROM sess"
			    " WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2)",
};

/* Webhook tables (issue 17): an expand step inside schema version 1, created by every writable
 * open when missing, which builds that do not know them ignore. */
static const char sql_schema_hooks[] =
	"CREATE TABLE IF NOT EXISTS hook (tenant TEXT NOT NULL, id TEXT NOT NULL, url TEXT NOT NULL,"
	"  description TEXT NOT NULL, secret TEXT NOT NULL, events INTEGER NOT NULL,"
	"  disabled INTEGER NOT NULL, reason TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL, failing_since_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (tenant, id)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS outbox (endpoint TEXT NOT NULL, rid TEXT NOT NULL,"
	"  tenant TEXT NOT NULL, body TEXT NOT NULL, state INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL, created_ms INTEGER NOT NULL, next_ms INTEGER NOT NULL,"
	"  lease TEXT NOT NULL, lease_until_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (endpoint, rid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_ms);"
	"CREATE INDEX IF NOT EXISTS outbox_by_tenant ON outbox (tenant, endpoint);";

/* REST facade sessions (issue 18): the same kind of expand step. A build that does not know the
 * table ignores it; its rows are hashes that open nothing without the tokens the clients hold. */
static const char sql_schema_sess[] =
	"CREATE TABLE IF NOT EXISTS sess (token_hash BLOB NOT NULL PRIMARY KEY, tenant TEXT NOT NULL,"
	"  key_hash BLOB NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL)"
	"  WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS sess_by_key ON sess (key_hash);"
	"CREATE INDEX IF NOT EXISTS sess_by_expiry ON sess (expires_ms);"
	"CREATE INDEX IF NOT EXISTS sess_by_tenant ON sess (tenant, expires_ms);";

/* The usage ledger (issue 22): the same kind of expand step; an older build ignores it. */
static const char sql_schema_usage[] =
	"CREATE TABLE IF NOT EXISTS usage (id TEXT NOT NULL PRIMARY KEY, tenant TEXT NOT NULL,"
	"  rid TEXT NOT NULL, state INTEGER NOT NULL, seconds INTEGER NOT NULL,"
	"  counted INTEGER NOT NULL, input_ms INTEGER NOT NULL, persons INTEGER NOT NULL,"
	"  face INTEGER NOT NULL, hand INTEGER NOT NULL, source TEXT NOT NULL,"
	"  started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, started_ms);"
	"CREATE INDEX IF NOT EXISTS usage_by_rid ON usage (rid);"
	"CREATE INDEX IF NOT EXISTS usage_by_start ON usage (started_ms, id);"
	"CREATE INDEX IF NOT EXISTS usage_by_end ON usage (ended_ms);";

static const char sql_schema[] =
	"CREATE TABLE schema_version (version INTEGER NOT NULL, opened_ms INTEGER NOT NULL);"
	"CREATE TABLE owner (kind INTEGER NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL, settled_ms INTEGER NOT NULL DEFAULT 0,"
	"  follow_lease TEXT NOT NULL DEFAULT '', follow_until_ms INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (kind, id)) WITHOUT ROWID;"
	"CREATE INDEX owner_by_tenant ON owner (kind, tenant, id);"
	"CREATE INDEX owner_unsettled ON owner (kind, settled_ms, created_ms);"
	"CREATE TABLE idem (tenant TEXT NOT NULL, key TEXT NOT NULL, fp BLOB NOT NULL,"
	"  done INTEGER NOT NULL, rid TEXT NOT NULL, source TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL, PRIMARY KEY (tenant, key)) WITHOUT ROWID;"
	"CREATE INDEX idem_by_age ON idem (done, created_ms);";

struct sql_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[SQL_NSTMT];
	char err[GW_STORE_ERR_MAX];
};

static const char *sql_errmsg(void *impl)
{
	struct sql_store *q = impl;

	return q->err;
}

/* Records the connection's current error as the backend's reason; returns GW_STORE_B_ERR. */
static int sql_fail(struct sql_store *q)
{
	snprintf(q->err, sizeof q->err, "%s", sqlite3_errmsg(q->db));
	return GW_STORE_B_ERR;
}

static int sql_oom(struct sql_store *q)
{
	snprintf(q->err, sizeof q->err, "out of memory");
	return GW_STORE_B_ERR;
}

/* The cached statement, reset and unbound, or NULL (reason in q->err). */
static sqlite3_stmt *sql_stmt(struct sql_store *q, enum sql_stmt which)
{
	sqlite3_stmt *st = q->stmt[which];

	if (st)
		return st;
	if (sqlite3_prepare_v3(q->db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
	    SQLITE_OK) {
		sql_fail(q);
		sqlite3_finalize(st);
		return NULL;
	}
	q->stmt[which] = st;
	return st;
}

static void sql_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a write statement to completion: GW_STORE_B_OK or GW_STORE_B_ERR. */
static int sql_exec(struct sql_store *q, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? GW_STORE_B_OK : sql_fail(q);

	sql_done(st);
	return rc;
}

static void sql_copy(char *dst, size_t cap, const unsigned char *src)
{
	snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

/* Fills e from the current row, whose columns start at col: fp, done, rid, source, created_ms. */
static void sql_row_idem(sqlite3_stmt *st, int col, struct gw_idem *e)
{
	const void *fp = sqlite3_column_blob(st, col);
	int fplen = sqlite3_column_bytes(st, col);

	memset(e, 0, sizeof *e);
	if (fp && fplen == (int)sizeof e->fp)
		memcpy(e->fp, fp, sizeof e->fp);
	e->done = sqlite3_column_int(st, col + 1) != 0;
	sql_copy(e->rid, sizeof e->rid, sqlite3_column_text(st, col + 2));
	sql_copy(e->source, sizeof e->source, sqlite3_column_text(st, col + 3));
	e->created_ms = sqlite3_column_int64(st, col + 4);
}

static int sql_owner_put(void *impl, int k, const char *id, const char *tenant, int64_t now_ms)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_OWNER_INSERT);
	char cur[GW_STORE_TENANT_MAX + 1];
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int(st, 1, k);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	rc = sql_exec(q, st);
	if (rc != GW_STORE_B_OK || sqlite3_changes(q->db) == 1)
		return rc;
	/* Already there: same tenant is fine, another is a conflict (never overwritten). */
	st = sql_stmt(q, SQL_OWNER_GET);
	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int(st, 1, k);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sql_copy(cur, sizeof cur, sqlite3_column_text(st, 0));
		rc = strcmp(cur, tenant) == 0 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
	} else {
		rc = sql_fail(q);	/* ignored yet absent: cannot happen without an error */
	}
	sql_done(st);
	return rc;
}

static int sql_owner_get(void *impl, int k, const char *id, char *tenant, size_t tenantlen)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_OWNER_GET);
	const unsigned char *t;
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int(st, 1, k);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = GW_STORE_B_ABSENT;
	} else if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		if (!t || (size_t)sqlite3_column_bytes(st, 0) >= tenantlen) {
			snprintf(q->err, sizeof q->err, "tenant buffer too small");
			rc = GW_STORE_B_ERR;
		} else {
			memcpy(tenant, t, (size_t)sqlite3_column_bytes(st, 0) + 1);
			rc = GW_STORE_B_OK;
		}
	} else {
		rc = sql_fail(q);
	}
	sql_done(st);
	return rc;
}

static int sql_owner_del(void *impl, int k, const char *id)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_OWNER_DEL);

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int(st, 1, k);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return sql_exec(q, st);
}

static int sql_idem_get(struct sql_store *q, const char *tenant, const char *key, struct gw_idem *e)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_GET);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sql_row_idem(st, 0, e);
		rc = GW_STORE_B_OK;
	} else if (rc == SQLITE_DONE) {
		rc = GW_STORE_B_ABSENT;
	} else {
		rc = sql_fail(q);
	}
	sql_done(st);
	return rc;
}

/* Leases are not stored: this process is the file's only writer (exclusive lock), so a PENDING
 * key not in flight here was left by a process that is gone (see store.h). */
static int sql_idem_begin(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			  const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			  struct gw_idem *existing)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_INSERT);
	int rc;

	(void)lease;
	(void)lease_until_ms;
	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, fp, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	rc = sql_exec(q, st);
	if (rc != GW_STORE_B_OK)
		return rc;
	if (sqlite3_changes(q->db) == 1)
		return GW_STORE_B_OK;
	/* One connection, one thread: the row that blocked the insert is still there. */
	rc = sql_idem_get(q, tenant, key, existing);
	if (rc == GW_STORE_B_ABSENT) {
		snprintf(q->err, sizeof q->err, "idempotency key vanished during insert");
		return GW_STORE_B_ERR;
	}
	return rc == GW_STORE_B_OK ? GW_STORE_B_EXISTS : rc;
}

static int sql_idem_finish(void *impl, const char *tenant, const char *key, const char *rid)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_FINISH);
	struct gw_idem e;
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rid, -1, SQLITE_STATIC);
	rc = sql_exec(q, st);
	if (rc != GW_STORE_B_OK || sqlite3_changes(q->db) == 1)
		return rc;
	/* Not PENDING: absent, or DONE already (fine only with the same rid). */
	rc = sql_idem_get(q, tenant, key, &e);
	if (rc == GW_STORE_B_OK)
		rc = strcmp(e.rid, rid) == 0 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
	return rc;
}

static int sql_idem_abort(void *impl, const char *tenant, const char *key)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_ABORT);

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	return sql_exec(q, st);
}

static int sql_idem_take(void *impl, const char *tenant, const char *key, const char *old_lease,
			 int64_t old_until_ms, const char *lease, int64_t lease_until_ms)
{
	(void)impl, (void)tenant, (void)key, (void)old_lease, (void)old_until_ms, (void)lease;
	(void)lease_until_ms;
	return GW_STORE_B_OK;
}

static long sql_idem_renew(void *impl, const char *lease, int64_t lease_until_ms)
{
	(void)impl, (void)lease, (void)lease_until_ms;
	return 0;
}

static int sql_idem_release(void *impl, const char *tenant, const char *key)
{
	(void)impl, (void)tenant, (void)key;
	return GW_STORE_B_OK;
}

static long sql_idem_count(void *impl)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_COUNT);
	long n;

	if (!st)
		return GW_STORE_B_ERR;
	n = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : sql_fail(q);
	sql_done(st);
	return n;
}

static long sql_idem_expire(void *impl, int64_t older_than_ms)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_IDEM_EXPIRE);

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int64(st, 1, older_than_ms);
	if (sql_exec(q, st) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	return (long)sqlite3_changes(q->db);
}

/* ---- webhook subscriptions and outbox (store.h, "Tenant webhook subscriptions") ---- */

static void sql_row_hook(sqlite3_stmt *st, struct gw_hook *h)
{
	memset(h, 0, sizeof *h);
	sql_copy(h->tenant, sizeof h->tenant, sqlite3_column_text(st, 0));
	sql_copy(h->id, sizeof h->id, sqlite3_column_text(st, 1));
	sql_copy(h->url, sizeof h->url, sqlite3_column_text(st, 2));
	sql_copy(h->description, sizeof h->description, sqlite3_column_text(st, 3));
	sql_copy(h->secret, sizeof h->secret, sqlite3_column_text(st, 4));
	h->events = (unsigned)sqlite3_column_int(st, 5);
	h->disabled = sqlite3_column_int(st, 6) != 0;
	sql_copy(h->reason, sizeof h->reason, sqlite3_column_text(st, 7));
	h->created_ms = sqlite3_column_int64(st, 8);
	h->updated_ms = sqlite3_column_int64(st, 9);
	h->failing_since_ms = sqlite3_column_int64(st, 10);
}

static void sql_bind_tid(sqlite3_stmt *st, const char *tenant, const char *id)
{
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
}

/* Runs a SELECT of hook rows into a new array of at most max; count in out. */
static int sql_hook_rows(struct sql_store *q, sqlite3_stmt *st, size_t max, struct gw_hook_out *out)
{
	int rc = GW_STORE_B_OK, step;

	out->hooks = calloc(max, sizeof *out->hooks);
	if (!out->hooks) {
		sql_done(st);
		snprintf(q->err, sizeof q->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW && (size_t)out->count < max)
		sql_row_hook(st, &out->hooks[out->count++]);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = sql_fail(q);
	sql_done(st);
	return rc;
}

static int sql_hook_get(struct sql_store *q, const char *tenant, const char *id,
			struct gw_hook_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_HOOK_GET);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sql_bind_tid(st, tenant, id);
	rc = sql_hook_rows(q, st, 1, out);
	return rc == GW_STORE_B_OK && out->count == 0 ? GW_STORE_B_ABSENT : rc;
}

static int sql_hook_create(struct sql_store *q, const struct gw_hook *h)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_HOOK_COUNT);
	long n;
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, h->tenant, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = sql_fail(q);
		sql_done(st);
		return rc;
	}
	n = (long)sqlite3_column_int64(st, 0);
	sql_done(st);
	if (n >= GW_STORE_HOOKS_MAX)
		return GW_STORE_B_FULL;
	if (!(st = sql_stmt(q, SQL_HOOK_INSERT)))
		return GW_STORE_B_ERR;
	sql_bind_tid(st, h->tenant, h->id);
	sqlite3_bind_text(st, 3, h->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, h->description, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, h->secret, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, (int)h->events);
	sqlite3_bind_int(st, 7, h->disabled != 0);
	sqlite3_bind_text(st, 8, h->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, h->created_ms);
	sqlite3_bind_int64(st, 10, h->updated_ms);
	sqlite3_bind_int64(st, 11, h->failing_since_ms);
	rc = sql_exec(q, st);
	if (rc == GW_STORE_B_OK && sqlite3_changes(q->db) != 1)
		rc = GW_STORE_B_CONFLICT;
	return rc;
}

static int sql_hook_update(struct sql_store *q, const struct gw_hook *h)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_HOOK_UPDATE);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sql_bind_tid(st, h->tenant, h->id);
	sqlite3_bind_text(st, 3, h->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, h->description, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, (int)h->events);
	sqlite3_bind_int(st, 6, h->disabled != 0);
	sqlite3_bind_text(st, 7, h->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, h->updated_ms);
	sqlite3_bind_int64(st, 9, h->failing_since_ms);
	sqlite3_bind_text(st, 10, h->secret, -1, SQLITE_STATIC);
	rc = sql_exec(q, st);
	return rc == GW_STORE_B_OK && sqlite3_changes(q->db) != 1 ? GW_STORE_B_ABSENT : rc;
}

/* Runs a write statement bound to (tenant, id): B_OK, or B_ABSENT when it changed no row. */
static int sql_tid_exec(struct sql_store *q, enum sql_stmt which, const char *tenant, const char *id)
{
	sqlite3_stmt *st = sql_stmt(q, which);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sql_bind_tid(st, tenant, id);
	rc = sql_exec(q, st);
	return rc == GW_STORE_B_OK && sqlite3_changes(q->db) == 0 ? GW_STORE_B_ABSENT : rc;
}

/* Several statements as one transaction: one fsync, and all or nothing. */
static int sql_begin(struct sql_store *q)
{
	return sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? GW_STORE_B_OK
										      : sql_fail(q);
}

static int sql_end(struct sql_store *q, int rc)
{
	if (rc == GW_STORE_B_ERR || rc == GW_STORE_B_FULL) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? rc : sql_fail(q);
}

static int sql_hook_delete(struct sql_store *q, const char *tenant, const char *id)
{
	int rc = sql_begin(q);

	if (rc != GW_STORE_B_OK)
		return rc;
	rc = sql_tid_exec(q, SQL_HOOK_DELETE, tenant, id);
	if (rc == GW_STORE_B_OK && sql_tid_exec(q, SQL_HOOK_DELETE_ROWS, tenant, id) == GW_STORE_B_ERR)
		rc = GW_STORE_B_ERR;
	return sql_end(q, rc);
}

static int sql_hook_health(struct sql_store *q, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	struct gw_hook_out cur = { 0 };
	sqlite3_stmt *st;
	struct gw_hook *h;
	int rc = sql_hook_get(q, r->tenant, r->id, &cur);

	if (rc != GW_STORE_B_OK)
		goto out;
	h = &cur.hooks[0];
	if (r->ok) {
		h->failing_since_ms = 0;
	} else {
		if (h->failing_since_ms == 0)
			h->failing_since_ms = r->now_ms;
		if (!h->disabled && r->disable_after_ms > 0 &&
		    r->now_ms - h->failing_since_ms >= r->disable_after_ms) {
			h->disabled = 1;
			snprintf(h->reason, sizeof h->reason, "%s", r->reason);
			out->count = 1;
		}
	}
	if (!(st = sql_stmt(q, SQL_HOOK_HEALTH))) {
		rc = GW_STORE_B_ERR;
		goto out;
	}
	sql_bind_tid(st, r->tenant, r->id);
	sqlite3_bind_int64(st, 3, h->failing_since_ms);
	sqlite3_bind_int(st, 4, h->disabled);
	sqlite3_bind_text(st, 5, h->reason, -1, SQLITE_STATIC);
	rc = sql_exec(q, st);
out:
	if (cur.hooks)
		explicit_bzero(cur.hooks, sizeof *cur.hooks);
	free(cur.hooks);
	return rc;
}

static int sql_outbox_add(struct sql_store *q, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_OUTBOX_ADD);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->rid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->now_ms);
	sqlite3_bind_int(st, 5, (int)(r->event ? r->event : GW_HOOK_EV_JOB_COMPLETED));
	rc = sql_exec(q, st);
	if (rc == GW_STORE_B_OK)
		out->count = sqlite3_changes(q->db);
	return rc;
}

static int sql_outbox_claim(struct sql_store *q, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	sqlite3_stmt *st;
	int rc = GW_STORE_B_OK, step;

	out->rows = calloc(r->max, sizeof *out->rows);
	if (!out->rows) {
		snprintf(q->err, sizeof q->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	if ((rc = sql_begin(q)) != GW_STORE_B_OK)
		return rc;
	if (!(st = sql_stmt(q, SQL_OUTBOX_DUE)))
		return sql_end(q, GW_STORE_B_ERR);
	sqlite3_bind_int64(st, 1, r->now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)r->max);
	while ((step = sqlite3_step(st)) == SQLITE_ROW && (size_t)out->count < r->max) {
		struct gw_outbox_row *o = &out->rows[out->count++];

		sql_copy(o->tenant, sizeof o->tenant, sqlite3_column_text(st, 0));
		sql_copy(o->endpoint, sizeof o->endpoint, sqlite3_column_text(st, 1));
		sql_copy(o->rid, sizeof o->rid, sqlite3_column_text(st, 2));
		sql_copy(o->body, sizeof o->body, sqlite3_column_text(st, 3));
		o->attempts = sqlite3_column_int(st, 4);
		o->created_ms = sqlite3_column_int64(st, 5);
		o->next_ms = sqlite3_column_int64(st, 6);
		sql_copy(o->url, sizeof o->url, sqlite3_column_text(st, 7));
		sql_copy(o->secret, sizeof o->secret, sqlite3_column_text(st, 8));
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = sql_fail(q);
	sql_done(st);
	for (long i = 0; rc == GW_STORE_B_OK && i < out->count; i++) {
		if (!(st = sql_stmt(q, SQL_OUTBOX_LEASE))) {
			rc = GW_STORE_B_ERR;
			break;
		}
		sqlite3_bind_text(st, 1, out->rows[i].endpoint, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, out->rows[i].rid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->lease, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, r->until_ms);
		rc = sql_exec(q, st);
	}
	if (rc != GW_STORE_B_OK)
		out->count = 0;
	return sql_end(q, rc);
}

static int sql_outbox_settle(struct sql_store *q, const struct gw_hook_req *r)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_OUTBOX_SETTLE);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sql_bind_tid(st, r->tenant, r->id);
	sqlite3_bind_text(st, 3, r->rid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->lease, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, r->state);
	sqlite3_bind_int(st, 6, r->attempts);
	sqlite3_bind_int64(st, 7, r->next_ms);
	rc = sql_exec(q, st);
	return rc == GW_STORE_B_OK && sqlite3_changes(q->db) != 1 ? GW_STORE_B_CONFLICT : rc;
}

static int sql_outbox_depth(struct sql_store *q, struct gw_hook_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_OUTBOX_DEPTH);
	int rc = GW_STORE_B_OK, step;

	if (!st)
		return GW_STORE_B_ERR;
	out->depths = calloc(GW_OUTBOX_DEPTH_MAX, sizeof *out->depths);
	if (!out->depths) {
		sql_done(st);
		snprintf(q->err, sizeof q->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	sqlite3_bind_int(st, 1, GW_OUTBOX_DEPTH_MAX);
	while ((step = sqlite3_step(st)) == SQLITE_ROW && out->count < GW_OUTBOX_DEPTH_MAX) {
		struct gw_outbox_depth *d = &out->depths[out->count++];

		sql_copy(d->tenant, sizeof d->tenant, sqlite3_column_text(st, 0));
		d->pending = (long)sqlite3_column_int64(st, 1);
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = sql_fail(q);
	sql_done(st);
	return rc;
}

static int sql_outbox_expire(struct sql_store *q, int64_t older_ms, struct gw_hook_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_OUTBOX_EXPIRE);
	int rc;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_int64(st, 1, older_ms);
	if ((rc = sql_exec(q, st)) != GW_STORE_B_OK)
		return rc;
	out->count = sqlite3_changes(q->db);
	if (!(st = sql_stmt(q, SQL_OUTBOX_ORPHANS)) || (rc = sql_exec(q, st)) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	out->count += sqlite3_changes(q->db);
	return rc;
}

_Static_assert(GW_OBJ_ENDPOINT == 3, "SQL_HOOK_LEGACY names kind 3");

static int sql_hook_legacy(struct sql_store *q, struct gw_hook_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_HOOK_LEGACY);
	int rc = GW_STORE_B_OK, step;

	if (!st)
		return GW_STORE_B_ERR;
	out->hooks = calloc(GW_HOOK_LEGACY_MAX, sizeof *out->hooks);
	if (!out->hooks) {
		sql_done(st);
		snprintf(q->err, sizeof q->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	sqlite3_bind_int(st, 1, GW_HOOK_LEGACY_MAX);
	while ((step = sqlite3_step(st)) == SQLITE_ROW && out->count < GW_HOOK_LEGACY_MAX) {
		sql_copy(out->hooks[out->count].tenant, sizeof out->hooks[0].tenant,
			 sqlite3_column_text(st, 0));
		sql_copy(out->hooks[out->count].id, sizeof out->hooks[0].id, sqlite3_column_text(st, 1));
		out->count++;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = sql_fail(q);
	sql_done(st);
	return rc;
}

static int sql_hook(void *impl, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st;

	switch (r->op) {
	case GW_HOOK_CREATE:
		return sql_hook_create(q, r->hook);
	case GW_HOOK_GET:
		return sql_hook_get(q, r->tenant, r->id, out);
	case GW_HOOK_LIST:
		if (!(st = sql_stmt(q, SQL_HOOK_LIST)))
			return GW_STORE_B_ERR;
		sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
		return sql_hook_rows(q, st, GW_STORE_HOOKS_MAX, out);
	case GW_HOOK_UPDATE:
		return sql_hook_update(q, r->hook);
	case GW_HOOK_DELETE:
		return sql_hook_delete(q, r->tenant, r->id);
	case GW_HOOK_HEALTH:
		return sql_hook_health(q, r, out);
	case GW_OUTBOX_ADD:
		return sql_outbox_add(q, r, out);
	case GW_OUTBOX_CLAIM:
		return sql_outbox_claim(q, r, out);
	case GW_OUTBOX_SETTLE:
		return sql_outbox_settle(q, r);
	case GW_OUTBOX_DEPTH:
		return sql_outbox_depth(q, out);
	case GW_OUTBOX_EXPIRE:
		return sql_outbox_expire(q, r->older_ms, out);
	case GW_HOOK_LEGACY:
		return sql_hook_legacy(q, out);
	}
	snprintf(q->err, sizeof q->err, "unknown hook operation");
	return GW_STORE_B_ERR;
}

/*
 * The follower's claim: the oldest unsettled jobs not leased to lease, leased to it in one
 * transaction (one fsync). This process is the file's only writer, so a job leased to any other
 * holder was left by a process that is gone: it is taken at once, whatever its lease time.
 */
static long sql_job_claim(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  struct gw_store_job *out, size_t max)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_JOB_UNSETTLED);
	long n = 0;
	int rc = SQLITE_DONE;

	(void)now_ms;
	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		sql_copy(out[n].rid, sizeof out[n].rid, sqlite3_column_text(st, 0));
		sql_copy(out[n].tenant, sizeof out[n].tenant, sqlite3_column_text(st, 1));
		out[n].created_ms = sqlite3_column_int64(st, 2);
		n++;
	}
	if ((size_t)n < max && rc != SQLITE_DONE) {
		n = sql_fail(q);
		sql_done(st);
		return n;
	}
	sql_done(st);
	if (n == 0)
		return 0;
	st = sql_stmt(q, SQL_JOB_LEASE);
	if (!st || sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return st ? sql_fail(q) : GW_STORE_B_ERR;
	for (long i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, lease_until_ms);
		sqlite3_bind_text(st, 3, out[i].rid, -1, SQLITE_STATIC);
		if (sql_exec(q, st) != GW_STORE_B_OK) {
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return GW_STORE_B_ERR;
		}
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		n = sql_fail(q);
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return n;
}

/* Like idem leases: nobody else writes the file, so the lease time is never read; no write. */
static long sql_job_renew(void *impl, const char *lease, int64_t lease_until_ms)
{
	(void)impl, (void)lease, (void)lease_until_ms;
	return 0;
}

static int sql_job_settle(void *impl, const char *rid, int64_t now_ms)
{
	struct sql_store *q = impl;
	sqlite3_stmt *st = sql_stmt(q, SQL_JOB_SETTLE);

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms > 0 ? now_ms : 1);
	return sql_exec(q, st);
}

/* ---- REST facade sessions (store.h) ---- */

static int sql_sess_put(struct sql_store *q, const struct gw_sess_req *r)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_SESS_COUNT);
	sqlite3_int64 n;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->now_ms);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sql_fail(q);
		sql_done(st);
		return GW_STORE_B_ERR;
	}
	n = sqlite3_column_int64(st, 0);
	sql_done(st);
	if (n >= GW_STORE_SESS_TENANT_MAX)
		return GW_STORE_B_FULL;
	if (!(st = sql_stmt(q, SQL_SESS_INSERT)))
		return GW_STORE_B_ERR;
	sqlite3_bind_blob(st, 1, r->token_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, r->key_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->now_ms);
	sqlite3_bind_int64(st, 5, r->expires_ms);
	if (sql_exec(q, st) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	return sqlite3_changes(q->db) == 1 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
}

static int sql_sess_get(struct sql_store *q, const struct gw_sess_req *r, struct gw_sess *out)
{
	sqlite3_stmt *st = sql_stmt(q, SQL_SESS_GET);
	int rc, step;

	if (!st)
		return GW_STORE_B_ERR;
	sqlite3_bind_blob(st, 1, r->token_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->now_ms);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const void *key = sqlite3_column_blob(st, 1);

		rc = GW_STORE_B_OK;
		sql_copy(out->tenant, sizeof out->tenant, sqlite3_column_text(st, 0));
		if (key && sqlite3_column_bytes(st, 1) == 32)
			memcpy(out->key_sha256, key, 32);
		else	/* not a row this code wrote: no session rather than a wrong key */
			rc = GW_STORE_B_ABSENT;
		out->created_ms = sqlite3_column_int64(st, 2);
		out->expires_ms = sqlite3_column_int64(st, 3);
	} else {
		rc = step == SQLITE_DONE ? GW_STORE_B_ABSENT : sql_fail(q);
	}
	sql_done(st);
	return rc;
}

/* DEL, REVOKE, EXPIRE: one DELETE; *count = rows removed (REVOKE, EXPIRE). */
static int sql_sess_delete(struct sql_store *q, const struct gw_sess_req *r, long *count)
{
	enum sql_stmt which = r->op == GW_SESS_DEL ? SQL_SESS_DEL
			      : r->op == GW_SESS_REVOKE ? SQL_SESS_REVOKE : SQL_SESS_EXPIRE;
	sqlite3_stmt *st = sql_stmt(q, which);

	if (!st)
		return GW_STORE_B_ERR;
	if (which == SQL_SESS_EXPIRE) {
		sqlite3_bind_int64(st, 1, r->now_ms);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)r->max);
	} else {
		sqlite3_bind_blob(st, 1, which == SQL_SESS_DEL ? r->token_sha256 : r->key_sha256, 32,
				  SQLITE_STATIC);
	}
	if (sql_exec(q, st) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	if (which != SQL_SESS_DEL)	/* DEL answers no count (store.h) */
		*count = sqlite3_changes(q->db);
	return GW_STORE_B_OK;
}

static int sql_sess(void *impl, const struct gw_sess_req *r, struct gw_sess *out, long *count)
{
	struct sql_store *q = impl;

	switch (r->op) {
	case GW_SESS_PUT:
		return sql_sess_put(q, r);
	case GW_SESS_GET:
		return sql_sess_get(q, r, out);
	case GW_SESS_DEL:
	case GW_SESS_REVOKE:
	case GW_SESS_EXPIRE:
		return sql_sess_delete(q, r, count);
	}
	snprintf(q->err, sizeof q->err, "unknown session operation");
	return GW_STORE_B_ERR;
}

/* ---- the usage ledger (store.h) ---- */

static void sql_usage_row(sqlite3_stmt *st, struct gw_usage_row *w)
{
	sql_copy(w->id, sizeof w->id, sqlite3_column_text(st, 0));
	sql_copy(w->tenant, sizeof w->tenant, sqlite3_column_text(st, 1));
	sql_copy(w->rid, sizeof w->rid, sqlite3_column_text(st, 2));
	w->state = sqlite3_column_int(st, 3);
	w->seconds = sqlite3_column_int64(st, 4);
	w->counted = sqlite3_column_int64(st, 5);
	w->input_ms = sqlite3_column_int64(st, 6);
	w->persons = sqlite3_column_int(st, 7);
	w->face = sqlite3_column_int(st, 8);
	w->hand = sqlite3_column_int(st, 9);
	sql_copy(w->source, sizeof w->source, sqlite3_column_text(st, 10));
	w->started_ms = sqlite3_column_int64(st, 11);
	w->ended_ms = sqlite3_column_int64(st, 12);
}

/* One atomic check-and-insert: this process is the file's only writer and runs on one thread. */
static int sql_usage_reserve(struct sql_store *q, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	const struct gw_usage_row *w = r->row;
	sqlite3_stmt *st = sql_stmt(q, SQL_USAGE_USED);
	struct gw_usage_sum *sum;

	if (!st)
		return GW_STORE_B_ERR;
	if (!(sum = calloc(1, sizeof *sum)))
		return sql_oom(q);
	out->sums = sum;
	out->count = 1;
	snprintf(sum->tenant, sizeof sum->tenant, "%s", w->tenant);
	sqlite3_bind_text(st, 1, w->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->from_ms);
	sqlite3_bind_int64(st, 3, w->started_ms - GW_USAGE_RESERVE_STALE_MS);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sql_fail(q);
		sql_done(st);
		return GW_STORE_B_ERR;
	}
	sum->seconds = sqlite3_column_int64(st, 0);
	sum->oldest_ms = sqlite3_column_int64(st, 1);
	sql_done(st);
	if (r->limit_s >= 0 && sum->seconds + w->seconds > r->limit_s)
		return GW_STORE_B_CONFLICT;
	if (!(st = sql_stmt(q, SQL_USAGE_INSERT)))
		return GW_STORE_B_ERR;
	sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, w->seconds);
	sqlite3_bind_int64(st, 4, w->input_ms);
	sqlite3_bind_int(st, 5, w->persons);
	sqlite3_bind_int(st, 6, w->face);
	sqlite3_bind_int(st, 7, w->hand);
	sqlite3_bind_text(st, 8, w->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, w->started_ms);
	if (sql_exec(q, st) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	return sqlite3_changes(q->db) == 1 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
}

/* START, RELEASE, SETTLE, REFOLLOW: one UPDATE; out->count = rows changed. */
static int sql_usage_write(struct sql_store *q, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	enum sql_stmt which = r->op == GW_USAGE_START	    ? SQL_USAGE_START
			      : r->op == GW_USAGE_RELEASE   ? SQL_USAGE_RELEASE
			      : r->op == GW_USAGE_REFOLLOW ? SQL_USAGE_REFOLLOW
							    : SQL_USAGE_SETTLE;
	sqlite3_stmt *st = sql_stmt(q, which);

	if (!st)
		return GW_STORE_B_ERR;
	if (which == SQL_USAGE_REFOLLOW) {
		sqlite3_bind_text(st, 1, r->rid, -1, SQLITE_STATIC);
	} else if (which == SQL_USAGE_SETTLE) {
		sqlite3_bind_text(st, 1, r->rid, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, r->ok != 0);
		sqlite3_bind_int(st, 3, r->count_failed != 0);
		sqlite3_bind_int64(st, 4, r->now_ms);
	} else {
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		if (which == SQL_USAGE_START)
			sqlite3_bind_text(st, 2, r->rid, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, 2, r->now_ms);
	}
	if (sql_exec(q, st) != GW_STORE_B_OK)
		return GW_STORE_B_ERR;
	out->count = sqlite3_changes(q->db);
	return which == SQL_USAGE_START && out->count == 0 ? GW_STORE_B_ABSENT : GW_STORE_B_OK;
}

/* GET, LIST: rows into out->rows. */
static int sql_usage_rows(struct sql_store *q, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	enum sql_stmt which = r->op == GW_USAGE_GET ? SQL_USAGE_GET : SQL_USAGE_LIST;
	size_t max = which == SQL_USAGE_GET ? 1 : r->max;
	sqlite3_stmt *st = sql_stmt(q, which);
	int step = SQLITE_DONE;

	if (!st)
		return GW_STORE_B_ERR;
	if (!(out->rows = calloc(max, sizeof *out->rows)))
		return sql_oom(q);
	if (which == SQL_USAGE_GET) {
		sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->rid, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int64(st, 1, r->from_ms);
		sqlite3_bind_text(st, 2, r->after, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, r->to_ms);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)max);
	}
	while ((size_t)out->count < max && (step = sqlite3_step(st)) == SQLITE_ROW)
		sql_usage_row(st, &out->rows[out->count++]);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		sql_fail(q);
		sql_done(st);
		return GW_STORE_B_ERR;
	}
	sql_done(st);
	return which == SQL_USAGE_GET && out->count == 0 ? GW_STORE_B_ABSENT : GW_STORE_B_OK;
}

/* SUM, CHARGED: per tenant into out->sums. */
static int sql_usage_sums(struct sql_store *q, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	sqlite3_stmt *st = sql_stmt(q, r->op == GW_USAGE_SUM ? SQL_USAGE_SUM : SQL_USAGE_CHARGED);
	int step = SQLITE_DONE;

	if (!st)
		return GW_STORE_B_ERR;
	if (!(out->sums = calloc(GW_USAGE_SUMS_MAX, sizeof *out->sums)))
		return sql_oom(q);
	if (r->tenant)
		sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->from_ms);
	sqlite3_bind_int64(st, 3, r->to_ms);
	sqlite3_bind_int64(st, 4, r->now_ms - GW_USAGE_RESERVE_STALE_MS);
	while (out->count < GW_USAGE_SUMS_MAX && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct gw_usage_sum *u = &out->sums[out->count++];

		sql_copy(u->tenant, sizeof u->tenant, sqlite3_column_text(st, 0));
		u->seconds = sqlite3_column_int64(st, 1);
		for (int i = 0; i < GW_USAGE_NSTATES; i++)
			u->jobs[i] = (long)sqlite3_column_int64(st, 2 + i);
		u->oldest_ms = sqlite3_column_int64(st, 2 + GW_USAGE_NSTATES);
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		sql_fail(q);
		sql_done(st);
		return GW_STORE_B_ERR;
	}
	sql_done(st);
	return GW_STORE_B_OK;
}

static int sql_usage(void *impl, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	struct sql_store *q = impl;

	switch (r->op) {
	case GW_USAGE_RESERVE:
		return sql_usage_reserve(q, r, out);
	case GW_USAGE_START:
	case GW_USAGE_RELEASE:
	case GW_USAGE_SETTLE:
	case GW_USAGE_REFOLLOW:
		return sql_usage_write(q, r, out);
	case GW_USAGE_GET:
	case GW_USAGE_LIST:
		return sql_usage_rows(q, r, out);
	case GW_USAGE_SUM:
	case GW_USAGE_CHARGED:
		return sql_usage_sums(q, r, out);
	}
	snprintf(q->err, sizeof q->err, "unknown usage operation");
	return GW_STORE_B_ERR;
}

static void sql_close(void *impl)
{
	struct sql_store *q = impl;

	if (!q)
		return;
	for (size_t i = 0; i < SQL_NSTMT; i++)
		sqlite3_finalize(q->stmt[i]);
	sqlite3_close(q->db);
	free(q);
}

static const struct gw_store_sync_ops sql_ops = {
	.name = "sqlite",
	.close = sql_close,
	.errmsg = sql_errmsg,
	.owner_put = sql_owner_put,
	.owner_get = sql_owner_get,
	.owner_del = sql_owner_del,
	.idem_begin = sql_idem_begin,
	.idem_take = sql_idem_take,
	.idem_renew = sql_idem_renew,
	.idem_finish = sql_idem_finish,
	.idem_release = sql_idem_release,
	.idem_abort = sql_idem_abort,
	.idem_count = sql_idem_count,
	.idem_expire = sql_idem_expire,
	.hook = sql_hook,
	.job_claim = sql_job_claim,
	.job_renew = sql_job_renew,
	.job_settle = sql_job_settle,
	.sess = sql_sess,
	.usage = sql_usage,
};

/* ---- opening ---- */

/*
 * One open-time failure as the single line the operator sees. Corruption is named as such:
 * the gateway must refuse to start rather than run with ownership it cannot read.
 */
static void sql_open_err(sqlite3 *db, int rc, const char *path, const char *what, char *err,
			 size_t errlen)
{
	int prim = rc & 0xff;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
		snprintf(err, errlen, "state file %s is corrupt: %s; refusing to start", path, msg);
	else if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
		snprintf(err, errlen, "state file %s is in use by another process (%s); refusing to start",
			 path, msg);
	else
		snprintf(err, errlen, "state file %s %s: %s; refusing to start", path, what, msg);
}

/* Runs a PRAGMA or statement that may return one text row; copies it into out when given. */
static int sql_one(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (out)
			sql_copy(out, outlen, sqlite3_column_text(st, 0));
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		if (out && outlen)
			out[0] = '\0';
		rc = SQLITE_OK;
	}
out:
	sqlite3_finalize(st);
	return rc;
}

static int64_t sql_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Version 1 -> 2: the job follower's settled marker and follow lease on owner rows. Jobs older
 * than GW_STORE_SETTLE_BACKFILL_MS at the upgrade are marked settled (a gateway upgraded with a
 * long history would otherwise poll every job it ever started); younger ones are followed.
 * A read-only open of a version 1 file stays version 1: its reads do not need the columns.
 */
static int sql_migrate_2(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char sql[512];
	int rc;

	snprintf(sql, sizeof sql,
		 "ALTER TABLE owner ADD COLUMN settled_ms INTEGER NOT NULL DEFAULT 0;"
		 "ALTER TABLE owner ADD COLUMN follow_lease TEXT NOT NULL DEFAULT '';"
		 "ALTER TABLE owner ADD COLUMN follow_until_ms INTEGER NOT NULL DEFAULT 0;"
		 "UPDATE owner SET settled_ms = max(created_ms, 1) WHERE kind = 1 AND created_ms < %lld;"
		 "CREATE INDEX owner_unsettled ON owner (kind, settled_ms, created_ms);"
		 "UPDATE schema_version SET version = 2;",
		 (long long)(sql_wall_ms() - GW_STORE_SETTLE_BACKFILL_MS));
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sql_open_err(db, rc, path, "cannot be migrated to schema version 2", err, errlen);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Creates or checks the schema. Returns 0, or -1 with err filled. */
static int sql_schema_check(sqlite3 *db, const char *path, int read_only, char *err, size_t errlen)
{
	char buf[64], sql[128];
	long version;
	int rc;

	rc = sql_one(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
		     buf, sizeof buf);
	if (rc != SQLITE_OK) {
		sql_open_err(db, rc, path, "cannot be read", err, errlen);
		return -1;
	}
	if (strcmp(buf, "0") == 0) {
		rc = sql_one(db, "SELECT count(*) FROM sqlite_master", buf, sizeof buf);
		if (rc != SQLITE_OK) {
			sql_open_err(db, rc, path, "cannot be read", err, errlen);
			return -1;
		}
		if (strcmp(buf, "0") != 0) {
			/* Tables but no version: not ours; never write into someone else's file. */
			snprintf(err, errlen,
				 "state file %s is not a gateway state file (no schema_version table); refusing to start",
				 path);
			return -1;
		}
		if (read_only) {
			snprintf(err, errlen, "state file %s has no schema yet and is opened read-only; "
					      "refusing to start", path);
			return -1;
		}
		rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, sql_schema, NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, 0)",
				 GW_STORE_SCHEMA_VERSION);
			rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		}
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			sql_open_err(db, rc, path, "cannot be initialised", err, errlen);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	rc = sql_one(db, "SELECT version FROM schema_version", buf, sizeof buf);
	if (rc != SQLITE_OK) {
		sql_open_err(db, rc, path, "cannot be read", err, errlen);
		return -1;
	}
	version = strtol(buf, NULL, 10);
	if (version > GW_STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "state file %s has schema version %ld, newer than this gateway's %d; "
				      "refusing to start", path, version, GW_STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < 1) {
		snprintf(err, errlen, "state file %s has an invalid schema version '%s'; refusing to start",
			 path, buf);
		return -1;
	}
	/* Version 1 is the only one so far: migrations from older versions go here. */
	if (!read_only && sqlite3_exec(db, sql_schema_hooks, NULL, NULL, NULL) != SQLITE_OK) {
		sql_open_err(db, sqlite3_errcode(db), path, "cannot take the webhook tables", err,
			     errlen);
		return -1;
	}
	if (!read_only && sqlite3_exec(db, sql_schema_sess, NULL, NULL, NULL) != SQLITE_OK) {
		sql_open_err(db, sqlite3_errcode(db), path, "cannot take the session table", err,
			     errlen);
		return -1;
	}
	if (!read_only && sqlite3_exec(db, sql_schema_usage, NULL, NULL, NULL) != SQLITE_OK) {
		sql_open_err(db, sqlite3_errcode(db), path, "cannot take the usage table", err,
			     errlen);
		return -1;
	}
	if (version < 2 && !read_only && sql_migrate_2(db, path, err, errlen) != 0)
		return -1;
	return 0;
}

void *gw_store_sqlite_open(const char *path, int read_only, const struct gw_store_sync_ops **ops,
			   char *err, size_t errlen)
{
	struct sql_store *q = NULL;
	char buf[64], sql[128];
	int flags, rc;
	void *ret = NULL;

	q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "state store: out of memory");
		goto out;
	}
	/* One thread uses the connection: no SQLite mutexes. No URI parsing of the path. */
	flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(path, &q->db, flags, NULL);
	if (rc != SQLITE_OK) {
		sql_open_err(q->db, rc, path, "cannot be opened", err, errlen);
		goto out;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_timeout(q->db, GW_STORE_BUSY_TIMEOUT_MS);
	if (!read_only) {
		/* Exclusive before WAL: no shared-memory index, and one process per file. */
		rc = sql_one(q->db, "PRAGMA locking_mode = EXCLUSIVE", NULL, 0);
		if (rc == SQLITE_OK)
			rc = sql_one(q->db, "PRAGMA journal_mode = WAL", buf, sizeof buf);
		if (rc != SQLITE_OK) {
			sql_open_err(q->db, rc, path, "cannot be used", err, errlen);
			goto out;
		}
		if (strcmp(buf, "wal") != 0) {
			snprintf(err, errlen, "state file %s cannot use WAL (journal mode '%s'); refusing to start",
				 path, buf);
			goto out;
		}
		rc = sql_one(q->db, "PRAGMA synchronous = FULL", NULL, 0);
		if (rc != SQLITE_OK) {
			sql_open_err(q->db, rc, path, "cannot be used", err, errlen);
			goto out;
		}
	}
	rc = sql_one(q->db, "PRAGMA quick_check", buf, sizeof buf);
	if (rc != SQLITE_OK) {
		sql_open_err(q->db, rc, path, "cannot be checked", err, errlen);
		goto out;
	}
	if (strcmp(buf, "ok") != 0) {
		snprintf(err, errlen, "state file %s is corrupt: %s; refusing to start", path, buf);
		goto out;
	}
	if (sql_schema_check(q->db, path, read_only, err, errlen) != 0)
		goto out;
	if (!read_only) {
		/* A real write now, so an unwritable file or directory fails here, not at the first job. */
		snprintf(sql, sizeof sql, "UPDATE schema_version SET opened_ms = %lld",
			 (long long)sql_wall_ms());
		rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			sql_open_err(q->db, rc, path, "is not writable", err, errlen);
			goto out;
		}
	}
	*ops = &sql_ops;
	ret = q;
	q = NULL;
out:
	sql_close(q);
	return ret;
}
