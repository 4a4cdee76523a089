/*
 * store_pg: the state store's PostgreSQL backend (see store.h), on the connection pool of pg.h.
 *
 * Start-up (gw_store_pg_backend_open, blocking, before the loop serves): one blocking connection
 * takes a session advisory lock (PGS_MIGRATE_LOCK), applies the migrations this build knows and
 * the database lacks, unlocks and closes; then the pool starts on the loop. Replicas starting
 * together queue on the lock, so exactly one applies each migration and the others find it done.
 *
 * Schema versions are expand/contract: every migration is one transaction that also records
 * (version, applied_ms, min_compatible) in a3d_schema. min_compatible is the oldest gateway
 * schema version that still runs correctly on the schema once this migration is in. An older
 * build (a helm rollback) therefore starts on a newer schema unless the newest migration says it
 * cannot; expand steps keep min_compatible, only a contract step raises it.
 *
 * Every query is a prepared statement of pgs_stmts, parameters bound as text; the byte strings
 * (fingerprints) travel as hex. Each operation holds one small context (struct pgs_op) from the
 * call until its answer; the pool's queue bound (GW_PG_MAX_QUEUE) bounds how many exist.
 */
#include "gateway/state/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/state/pg.h"

/* The advisory lock key of the migrations ("a3dschm1"): any fixed value, the same in every build. */
#define PGS_MIGRATE_LOCK INT64_C(0x6133647363686d31)
/* How long a replica waits for another replica's migration (or a table lock) before giving up. */
#define PGS_MIGRATE_LOCK_TIMEOUT_MS 60000
/* owner_put / idem_begin run again when their row was committed by another replica after this
 * statement's snapshot (see pgs_answer_owner_put); more than this means the row keeps changing. */
#define PGS_MAX_TRIES 3
/* retry_ms of a failure: the pool's reconnect backoff bounds when a retry can succeed. */
#define PGS_RETRY_MS 1000
#define PGS_RETRY_DOWN_MS GW_PG_BACKOFF_MAX_MS
#define PGS_WHERE_MAX 160

/*
 * The migrations, in order. Never edit a released entry: add one. An expand step (new table,
 * column with a default, index) keeps min_compatible; a contract step (drop, rename, new
 * constraint old builds would break) raises it to the first version that no longer needs
 * what it removes.
 */
static const struct pgs_migration {
	int version;
	int min_compatible;
	const char *sql;	/* one or more statements, run in the migration's transaction */
} pgs_migrations[] = {
	{ 1, 1,
	  "CREATE TABLE a3d_owner ("
	  " kind smallint NOT NULL, id text NOT NULL, tenant text NOT NULL,"
	  " created_ms bigint NOT NULL, PRIMARY KEY (kind, id));"
	  "CREATE INDEX a3d_owner_tenant ON a3d_owner (kind, tenant, id);"
	  "CREATE TABLE a3d_idem ("
	  " tenant text NOT NULL, key text NOT NULL, fp bytea NOT NULL, done boolean NOT NULL,"
	  " rid text NOT NULL, source text NOT NULL, created_ms bigint NOT NULL,"
	  " lease text NOT NULL DEFAULT '', lease_until_ms bigint NOT NULL DEFAULT 0,"
	  " PRIMARY KEY (tenant, key));"
	  "CREATE INDEX a3d_idem_created ON a3d_idem (done, created_ms);"
	  "CREATE INDEX a3d_idem_lease ON a3d_idem (lease) WHERE NOT done AND lease <> '';" },
	/* issue 17: tenant webhook subscriptions and their outbox (an expand step) */
	{ 2, 1,
	  "CREATE TABLE a3d_hook ("
	  " tenant text NOT NULL, id text NOT NULL, url text NOT NULL, description text NOT NULL,"
	  " secret text NOT NULL, events integer NOT NULL, disabled boolean NOT NULL,"
	  " reason text NOT NULL, created_ms bigint NOT NULL, updated_ms bigint NOT NULL,"
	  " failing_since_ms bigint NOT NULL, PRIMARY KEY (tenant, id));"
	  "CREATE TABLE a3d_outbox ("
	  " endpoint text NOT NULL, rid text NOT NULL, tenant text NOT NULL, body text NOT NULL,"
	  " state smallint NOT NULL, attempts integer NOT NULL, created_ms bigint NOT NULL,"
	  " next_ms bigint NOT NULL, lease text NOT NULL DEFAULT '',"
	  " lease_until_ms bigint NOT NULL DEFAULT 0, PRIMARY KEY (endpoint, rid));"
	  "CREATE INDEX a3d_outbox_due ON a3d_outbox (next_ms) WHERE state = 0;"
	  "CREATE INDEX a3d_outbox_tenant ON a3d_outbox (tenant, endpoint);"
	  "CREATE INDEX a3d_outbox_settled ON a3d_outbox (created_ms) WHERE state <> 0;" },
	/* The job follower (issue 17): settled marker and follow lease. Expand only: an older
	 * build inserts rows unsettled (the default), which the follower then follows. Jobs older
	 * than GW_STORE_SETTLE_BACKFILL_MS (one day) at the upgrade count as settled. */
	{ 3, 1,
	  "ALTER TABLE a3d_owner ADD COLUMN settled_ms bigint NOT NULL DEFAULT 0,"
	  " ADD COLUMN follow_lease text NOT NULL DEFAULT '',"
	  " ADD COLUMN follow_until_ms bigint NOT NULL DEFAULT 0;"
	  "UPDATE a3d_owner SET settled_ms = greatest(created_ms, 1) WHERE kind = 1"
	  " AND created_ms < (extract(epoch FROM now()) * 1000)::bigint - 86400000;"
	  "CREATE INDEX a3d_owner_unsettled ON a3d_owner (created_ms) WHERE kind = 1 AND settled_ms = 0;"
	  "CREATE INDEX a3d_owner_follow ON a3d_owner (follow_lease) WHERE kind = 1 AND settled_ms = 0;" },
	/* The REST facade's sessions (issue 18): token and key by their SHA-256 only. Expand only:
	 * an older build never reads the table (its sessions live in its process). */
	{ 4, 1,
	  "CREATE TABLE a3d_rest_sess ("
	  " token_hash bytea PRIMARY KEY, tenant text NOT NULL, key_hash bytea NOT NULL,"
	  " created_ms bigint NOT NULL, expires_ms bigint NOT NULL);"
	  "CREATE INDEX a3d_rest_sess_key ON a3d_rest_sess (key_hash);"
	  "CREATE INDEX a3d_rest_sess_expiry ON a3d_rest_sess (expires_ms);"
	  "CREATE INDEX a3d_rest_sess_tenant ON a3d_rest_sess (tenant, expires_ms);" },
	/* The usage ledger (issue 22), an expand step. The reservation is a function so that one
	 * statement takes the tenant's transaction lock and then reads the rows other replicas
	 * committed meanwhile: in a function each statement gets its own snapshot (READ
	 * COMMITTED), which one plain statement's CTEs would not. */
	{ 5, 1,
	  "CREATE TABLE a3d_usage ("
	  " id text PRIMARY KEY, tenant text NOT NULL, rid text NOT NULL, state smallint NOT NULL,"
	  " seconds bigint NOT NULL, counted bigint NOT NULL, input_ms bigint NOT NULL,"
	  " persons integer NOT NULL, face integer NOT NULL, hand integer NOT NULL,"
	  " source text NOT NULL, started_ms bigint NOT NULL, ended_ms bigint NOT NULL);"
	  "CREATE INDEX a3d_usage_tenant ON a3d_usage (tenant, started_ms);"
	  "CREATE INDEX a3d_usage_rid ON a3d_usage (rid) WHERE state = 1;"
	  "CREATE INDEX a3d_usage_start ON a3d_usage (started_ms, id);"
	  "CREATE INDEX a3d_usage_end ON a3d_usage (ended_ms) WHERE state IN (2, 3);"
	  "CREATE FUNCTION a3d_usage_reserve(p_id text, p_tenant text, p_seconds bigint,"
	  " p_input_ms bigint, p_persons integer, p_face integer, p_hand integer, p_source text,"
	  " p_started bigint, p_limit bigint, p_from bigint, p_stale bigint)"
	  " RETURNS TABLE (inserted integer, used bigint, oldest bigint) LANGUAGE plpgsql AS $f$"
	  " DECLARE u bigint; o bigint; n integer;"
	  " BEGIN"
	  "  PERFORM pg_advisory_xact_lock(1630889061, hashtext(p_tenant));"
	  "  SELECT coalesce(sum(a.counted), 0), coalesce(min(a.started_ms), 0) INTO u, o"
	  "   FROM a3d_usage a WHERE a.tenant = p_tenant AND a.started_ms >= p_from"
	  "   AND a.counted > 0 AND NOT (a.state = 0 AND a.started_ms <= p_started - p_stale);"
	  "  IF p_limit >= 0 AND u + p_seconds > p_limit THEN"
	  "   RETURN QUERY SELECT 0, u, o; RETURN;"
	  "  END IF;"
	  "  INSERT INTO a3d_usage (id, tenant, rid, state, seconds, counted, input_ms, persons,"
	  "   face, hand, source, started_ms, ended_ms) VALUES (p_id, p_tenant, '', 0, p_seconds,"
	  "   p_seconds, p_input_ms, p_persons, p_face, p_hand, p_source, p_started, 0)"
	  "   ON CONFLICT DO NOTHING;"
	  "  GET DIAGNOSTICS n = ROW_COUNT;"
	  "  RETURN QUERY SELECT n, u, o;"
	  " END $f$;" },
};
_Static_assert(GW_STORE_SETTLE_BACKFILL_MS == 86400000, "migration 3 backfills one day");
#define PGS_NMIGRATIONS (sizeof pgs_migrations / sizeof pgs_migrations[0])

/* The schema version this build knows up to: its newest migration. */
static int pgs_known_version(void)
{
	return pgs_migrations[PGS_NMIGRATIONS - 1].version;
}

enum pgs_stmt {
	PGS_OWNER_PUT,
	PGS_OWNER_LOOKUP,
	PGS_OWNER_DEL,
	PGS_IDEM_BEGIN,
	PGS_IDEM_TAKE,
	PGS_IDEM_RENEW,
	PGS_IDEM_FINISH,
	PGS_IDEM_RELEASE,
	PGS_IDEM_ABORT,
	PGS_IDEM_COUNT,
	PGS_IDEM_EXPIRE,
	PGS_HOOK_CREATE,
	PGS_HOOK_GET,
	PGS_HOOK_LIST,
	PGS_HOOK_UPDATE,
	PGS_HOOK_DELETE,
	PGS_HOOK_HEALTH,
	PGS_OUTBOX_ADD,
	PGS_OUTBOX_CLAIM,
	PGS_OUTBOX_SETTLE,
	PGS_OUTBOX_DEPTH,
	PGS_OUTBOX_EXPIRE,
	PGS_HOOK_LEGACY,
	PGS_JOB_CLAIM,
	PGS_JOB_RENEW,
	PGS_JOB_SETTLE,
	PGS_SESS_PUT,
	PGS_SESS_GET,
	PGS_SESS_DEL,
	PGS_SESS_REVOKE,
	PGS_SESS_EXPIRE,
	PGS_USAGE_RESERVE,
	PGS_USAGE_START,
	PGS_USAGE_RELEASE,
	PGS_USAGE_SETTLE,
	PGS_USAGE_GET,
	PGS_USAGE_SUM,
	PGS_USAGE_CHARGED,
	PGS_USAGE_LIST,
	PGS_USAGE_REFOLLOW,
	PGS_NSTMTS
};

#define PGS_USAGE_COLS "id, tenant, rid, state, seconds, counted, input_ms, persons, face, hand," \
		       " source, started_ms, ended_ms"
/* Per tenant: counted seconds ($4: stale reservations were made at or before it), rows by
 * state, the oldest counted row's start. */
#define PGS_USAGE_AGG "SELECT tenant, sum(CASE WHEN state = 0 AND started_ms <= $4::bigint THEN 0" \
		      " ELSE counted END), count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE" \
		      " state = 1), count(*) FILTER (WHERE state = 2), count(*) FILTER (WHERE state = 3)," \
		      " count(*) FILTER (WHERE state = 4), coalesce(min(started_ms) FILTER (WHERE" \
		      " counted > 0), 0) FROM a3d_usage"
_Static_assert(GW_USAGE_SUMS_MAX == 1024 && GW_USAGE_NSTATES == 5, "a3d_usage_sum writes 1024, 5 states");
_Static_assert(GW_USAGE_RESERVE_STALE_MS == 900000, "a3d_usage_reserve's caller passes it");

#define PGS_HOOK_COLS "tenant, id, url, description, secret, events, disabled, reason, created_ms," \
		      " updated_ms, failing_since_ms"
_Static_assert(GW_STORE_HOOKS_MAX == 32, "a3d_hook_create and a3d_hook_list write 32");
_Static_assert(GW_OUTBOX_DEPTH_MAX == 256, "a3d_outbox_depth writes 256");
_Static_assert(GW_HOOK_LEGACY_MAX == 64 && GW_OBJ_ENDPOINT == 3, "a3d_hook_legacy writes 64, 3");
_Static_assert(GW_STORE_SESS_TENANT_MAX == 10000, "a3d_sess_put writes 10000");

static const struct gw_pg_stmt pgs_stmts[PGS_NSTMTS] = {
	/* The inserted row comes from ins; an existing one from the table (the statement's snapshot
	 * does not see its own insert, so exactly one branch has a row, but see the answer). */
	[PGS_OWNER_PUT] = { "a3d_owner_put",
			    "WITH ins AS (INSERT INTO a3d_owner (kind, id, tenant, created_ms)"
			    " VALUES ($1::smallint, $2, $3, $4::bigint) ON CONFLICT DO NOTHING RETURNING tenant)"
			    " SELECT tenant FROM ins UNION ALL"
			    " SELECT tenant FROM a3d_owner WHERE kind = $1::smallint AND id = $2 LIMIT 1", 4 },
	/* $2 is an array literal; ordinality gives each answer the index of the id it belongs to. */
	[PGS_OWNER_LOOKUP] = { "a3d_owner_lookup",
			       "SELECT u.i, o.tenant FROM unnest($2::text[]) WITH ORDINALITY AS u (id, i)"
			       " JOIN a3d_owner o ON o.kind = $1::smallint AND o.id = u.id", 2 },
	[PGS_OWNER_DEL] = { "a3d_owner_del",
			    "DELETE FROM a3d_owner WHERE kind = $1::smallint AND id = $2", 2 },
	/* Column 0: true when this call inserted; else the existing entry follows. */
	[PGS_IDEM_BEGIN] = { "a3d_idem_begin",
			     "WITH ins AS (INSERT INTO a3d_idem (tenant, key, fp, done, rid, source, created_ms,"
			     " lease, lease_until_ms) VALUES ($1, $2, decode($3, 'hex'), false, '', $4,"
			     " $5::bigint, $6, $7::bigint) ON CONFLICT DO NOTHING RETURNING 1)"
			     " SELECT true, NULL::text, NULL::boolean, NULL::text, NULL::text, NULL::bigint,"
			     " NULL::text, NULL::bigint FROM ins UNION ALL"
			     " SELECT false, encode(fp, 'hex'), done, rid, source, created_ms, lease,"
			     " lease_until_ms FROM a3d_idem WHERE tenant = $1 AND key = $2 LIMIT 1", 7 },
	[PGS_IDEM_TAKE] = { "a3d_idem_take",
			    "UPDATE a3d_idem SET lease = $5, lease_until_ms = $6::bigint"
			    " WHERE tenant = $1 AND key = $2 AND NOT done AND lease = $3"
			    " AND lease_until_ms = $4::bigint", 6 },
	/* lease <> '' also matches the partial index. */
	[PGS_IDEM_RENEW] = { "a3d_idem_renew",
			     "UPDATE a3d_idem SET lease_until_ms = $2::bigint"
			     " WHERE lease = $1 AND NOT done AND lease <> ''", 2 },
	/* One UPDATE covers "already DONE with this rid" too: a finish racing another finish waits
	 * for its row lock and re-checks the committed row, which a separate read could not. */
	[PGS_IDEM_FINISH] = { "a3d_idem_finish",
			      "UPDATE a3d_idem SET done = true, rid = $3, lease = '', lease_until_ms = 0"
			      " WHERE tenant = $1 AND key = $2 AND (NOT done OR rid = $3)", 3 },
	[PGS_IDEM_RELEASE] = { "a3d_idem_release",
			       "UPDATE a3d_idem SET lease = '', lease_until_ms = 0"
			       " WHERE tenant = $1 AND key = $2 AND NOT done", 2 },
	[PGS_IDEM_ABORT] = { "a3d_idem_abort",
			     "DELETE FROM a3d_idem WHERE tenant = $1 AND key = $2 AND NOT done", 2 },
	[PGS_IDEM_COUNT] = { "a3d_idem_count", "SELECT count(*) FROM a3d_idem WHERE NOT done", 0 },
	/* done = ANY(both) lets the (done, created_ms) index serve a range on created_ms alone. */
	[PGS_IDEM_EXPIRE] = { "a3d_idem_expire",
			      "DELETE FROM a3d_idem WHERE done = ANY (ARRAY[false, true])"
			      " AND created_ms < $1::bigint", 1 },
	/* Columns: inserted (0/1), the tenant's count before: full or a conflict when not inserted. */
	[PGS_HOOK_CREATE] = { "a3d_hook_create",
			      "WITH n AS (SELECT count(*) AS c FROM a3d_hook WHERE tenant = $1),"
			      " ins AS (INSERT INTO a3d_hook (" PGS_HOOK_COLS ") SELECT $1, $2, $3, $4, $5,"
			      " $6::integer, $7::boolean, $8, $9::bigint, $10::bigint, $11::bigint FROM n"
			      " WHERE n.c < 32 ON CONFLICT DO NOTHING RETURNING 1)"
			      " SELECT (SELECT count(*) FROM ins), (SELECT c FROM n)", 11 },
	[PGS_HOOK_GET] = { "a3d_hook_get",
			   "SELECT " PGS_HOOK_COLS " FROM a3d_hook WHERE tenant = $1 AND id = $2", 2 },
	[PGS_HOOK_LIST] = { "a3d_hook_list",
			    "SELECT " PGS_HOOK_COLS " FROM a3d_hook WHERE tenant = $1"
			    " ORDER BY created_ms, id LIMIT 32", 1 },
	[PGS_HOOK_UPDATE] = { "a3d_hook_update",
			      "UPDATE a3d_hook SET url = $3, description = $4, events = $5::integer,"
			      " disabled = $6::boolean, reason = $7, updated_ms = $8::bigint,"
			      " failing_since_ms = $9::bigint,"
			      " secret = CASE WHEN $10 <> '' THEN $10 ELSE secret END"
			      " WHERE tenant = $1 AND id = $2", 10 },
	[PGS_HOOK_DELETE] = { "a3d_hook_delete",
			      "WITH d AS (DELETE FROM a3d_hook WHERE tenant = $1 AND id = $2 RETURNING 1),"
			      " o AS (DELETE FROM a3d_outbox WHERE tenant = $1 AND endpoint = $2)"
			      " SELECT count(*) FROM d", 2 },
	/* $6 ok; o is the row before this update (a self-join), h the row written: the answer is
	 * whether this statement disabled it. */
	[PGS_HOOK_HEALTH] = { "a3d_hook_health",
			      "UPDATE a3d_hook h SET failing_since_ms = CASE WHEN $6::boolean THEN 0"
			      " WHEN o.failing_since_ms = 0 THEN $3::bigint ELSE o.failing_since_ms END,"
			      " disabled = o.disabled OR (NOT $6::boolean AND $4::bigint > 0 AND $3::bigint -"
			      " CASE WHEN o.failing_since_ms = 0 THEN $3::bigint ELSE o.failing_since_ms END"
			      " >= $4::bigint),"
			      " reason = CASE WHEN NOT o.disabled AND NOT $6::boolean AND $4::bigint > 0 AND"
			      " $3::bigint - CASE WHEN o.failing_since_ms = 0 THEN $3::bigint"
			      " ELSE o.failing_since_ms END >= $4::bigint THEN $5 ELSE o.reason END"
			      " FROM a3d_hook o WHERE o.tenant = $1 AND o.id = $2 AND h.tenant = o.tenant"
			      " AND h.id = o.id RETURNING h.disabled AND NOT o.disabled", 6 },
	[PGS_OUTBOX_ADD] = { "a3d_outbox_add",
			     "INSERT INTO a3d_outbox (endpoint, rid, tenant, body, state, attempts,"
			     " created_ms, next_ms, lease, lease_until_ms)"
			     " SELECT id, $2, tenant, $3, 0, 0, $4::bigint, $4::bigint, '', 0 FROM a3d_hook"
			     " WHERE tenant = $1 AND NOT disabled AND (events & $5::integer) <> 0"
			     " ON CONFLICT DO NOTHING", 5 },
	/* SKIP LOCKED: replicas claiming at the same moment take different rows. */
	[PGS_OUTBOX_CLAIM] = { "a3d_outbox_claim",
			       "WITH due AS (SELECT o.endpoint, o.rid FROM a3d_outbox o JOIN a3d_hook h"
			       " ON h.tenant = o.tenant AND h.id = o.endpoint WHERE o.state = 0"
			       " AND o.next_ms <= $1::bigint AND (o.lease = '' OR o.lease_until_ms < $1::bigint)"
			       " AND NOT h.disabled ORDER BY o.next_ms LIMIT $2::integer"
			       " FOR UPDATE OF o SKIP LOCKED)"
			       " UPDATE a3d_outbox o SET lease = $3, lease_until_ms = $4::bigint"
			       " FROM due, a3d_hook h WHERE o.endpoint = due.endpoint AND o.rid = due.rid"
			       " AND h.tenant = o.tenant AND h.id = o.endpoint"
			       " RETURNING o.tenant, o.endpoint, o.rid, o.body, o.attempts, o.created_ms,"
			       " o.next_ms, h.url, h.secret", 4 },
	[PGS_OUTBOX_SETTLE] = { "a3d_outbox_settle",
				"UPDATE a3d_outbox SET state = $5::smallint, attempts = $6::integer,"
				" next_ms = $7::bigint, lease = '', lease_until_ms = 0"
				" WHERE tenant = $1 AND endpoint = $2 AND rid = $3 AND lease = $4"
				" AND state = 0", 7 },
	[PGS_OUTBOX_DEPTH] = { "a3d_outbox_depth",
			       "SELECT tenant, count(*) FROM a3d_outbox WHERE state = 0 GROUP BY tenant"
			       " ORDER BY tenant LIMIT 256", 0 },
	[PGS_OUTBOX_EXPIRE] = { "a3d_outbox_expire",
				"WITH a AS (DELETE FROM a3d_outbox WHERE state <> 0"
				" AND created_ms < $1::bigint RETURNING 1),"
				" b AS (DELETE FROM a3d_outbox o WHERE NOT EXISTS (SELECT 1 FROM a3d_hook h"
				" WHERE h.tenant = o.tenant AND h.id = o.endpoint) RETURNING 1)"
				" SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)", 1 },
	[PGS_HOOK_LEGACY] = { "a3d_hook_legacy",
			      "SELECT tenant, id FROM a3d_owner WHERE kind = 3 ORDER BY tenant, id"
			      " LIMIT 64", 0 },
	/* SKIP LOCKED: replicas claiming at once take disjoint jobs instead of queueing on rows. */
	[PGS_JOB_CLAIM] = { "a3d_job_claim",
			    "UPDATE a3d_owner o SET follow_lease = $1, follow_until_ms = $2::bigint"
			    " FROM (SELECT kind, id FROM a3d_owner WHERE kind = 1 AND settled_ms = 0"
			    " AND follow_lease <> $1 AND follow_until_ms < $3::bigint"
			    " ORDER BY created_ms LIMIT $4::int FOR UPDATE SKIP LOCKED) c"
			    " WHERE o.kind = c.kind AND o.id = c.id RETURNING o.id, o.tenant, o.created_ms", 4 },
	[PGS_JOB_RENEW] = { "a3d_job_renew",
			    "UPDATE a3d_owner SET follow_until_ms = $2::bigint,"
			    " follow_lease = CASE WHEN $2::bigint = 0 THEN '' ELSE follow_lease END"
			    " WHERE kind = 1 AND settled_ms = 0 AND follow_lease = $1", 2 },
	[PGS_JOB_SETTLE] = { "a3d_job_settle",
			     "UPDATE a3d_owner SET settled_ms = $2::bigint, follow_lease = '', follow_until_ms = 0"
			     " WHERE kind = 1 AND id = $1 AND settled_ms = 0", 2 },
	/* Columns: inserted (0/1), the tenant's unexpired sessions before: full or a conflict when
	 * not inserted (as a3d_hook_create). */
	[PGS_SESS_PUT] = { "a3d_sess_put",
			   "WITH n AS (SELECT count(*) AS c FROM a3d_rest_sess WHERE tenant = $2"
			   " AND expires_ms > $4::bigint),"
			   " ins AS (INSERT INTO a3d_rest_sess (token_hash, tenant, key_hash, created_ms,"
			   " expires_ms) SELECT decode($1, 'hex'), $2, decode($3, 'hex'), $4::bigint,"
			   " $5::bigint FROM n WHERE n.c < 10000 ON CONFLICT DO NOTHING RETURNING 1)"
			   " SELECT (SELECT count(*) FROM ins), (SELECT c FROM n)", 5 },
	[PGS_SESS_GET] = { "a3d_sess_get",
			   "SELECT tenant, encode(key_hash, 'hex'), created_ms, expires_ms"
			   " FROM a3d_rest_sess WHERE token_hash = decode($1, 'hex')"
			   " AND expires_ms > $2::bigint", 2 },
	[PGS_SESS_DEL] = { "a3d_sess_del",
			   "DELETE FROM a3d_rest_sess WHERE token_hash = decode($1, 'hex')", 1 },
	[PGS_SESS_REVOKE] = { "a3d_sess_revoke",
			      "DELETE FROM a3d_rest_sess WHERE key_hash = decode($1, 'hex')", 1 },
	/* SKIP LOCKED: replicas sweeping at once remove disjoint rows instead of queueing. */
	[PGS_SESS_EXPIRE] = { "a3d_sess_expire",
			      "DELETE FROM a3d_rest_sess WHERE token_hash IN (SELECT token_hash"
			      " FROM a3d_rest_sess WHERE expires_ms <= $1::bigint ORDER BY expires_ms"
			      " LIMIT $2::int FOR UPDATE SKIP LOCKED)", 2 },
	[PGS_USAGE_RESERVE] = { "a3d_usage_reserve",
				"SELECT inserted, used, oldest FROM a3d_usage_reserve($1, $2, $3::bigint,"
				" $4::bigint, $5::integer, $6::integer, $7::integer, $8, $9::bigint,"
				" $10::bigint, $11::bigint, 900000)", 11 },
	[PGS_USAGE_START] = { "a3d_usage_start",
			      "UPDATE a3d_usage SET rid = $2, state = 1 WHERE id = $1 AND state = 0", 2 },
	[PGS_USAGE_RELEASE] = { "a3d_usage_release",
				"UPDATE a3d_usage SET state = 4, counted = 0, ended_ms = $2::bigint"
				" WHERE id = $1 AND state = 0", 2 },
	[PGS_USAGE_SETTLE] = { "a3d_usage_settle",
			       "UPDATE a3d_usage SET state = CASE WHEN $2::boolean THEN 2 ELSE 3 END,"
			       " counted = CASE WHEN $2::boolean OR $3::boolean THEN seconds ELSE 0 END,"
			       " ended_ms = $4::bigint WHERE rid = $1 AND state = 1", 4 },
	[PGS_USAGE_GET] = { "a3d_usage_get",
			    "SELECT " PGS_USAGE_COLS " FROM a3d_usage WHERE tenant = $1 AND rid = $2"
			    " AND state <> 4 ORDER BY started_ms DESC LIMIT 1", 2 },
	[PGS_USAGE_SUM] = { "a3d_usage_sum",
			    PGS_USAGE_AGG " WHERE ($1::text IS NULL OR tenant = $1) AND started_ms >="
			    " $2::bigint AND started_ms < $3::bigint GROUP BY tenant ORDER BY tenant"
			    " LIMIT 1024", 4 },
	[PGS_USAGE_CHARGED] = { "a3d_usage_charged",
				PGS_USAGE_AGG " WHERE ($1::text IS NULL OR tenant = $1) AND state IN (2, 3)"
				" AND ended_ms >= $2::bigint AND ended_ms < $3::bigint GROUP BY tenant"
				" ORDER BY tenant LIMIT 1024", 4 },
	[PGS_USAGE_LIST] = { "a3d_usage_list",
			     "SELECT " PGS_USAGE_COLS " FROM a3d_usage WHERE started_ms < $3::bigint"
			     " AND (started_ms > $1::bigint OR (started_ms = $1::bigint AND id > $2))"
			     " ORDER BY started_ms, id LIMIT $4::int", 4 },
	[PGS_USAGE_REFOLLOW] = { "a3d_usage_refollow",
				 "UPDATE a3d_owner SET settled_ms = 0, follow_lease = '', follow_until_ms = 0"
				 " WHERE kind = 1 AND id = $1 AND settled_ms <> 0", 1 },
};

struct pgs_store {
	struct gw_pg *pool;
	char where[PGS_WHERE_MAX];	/* host:port/db */
	char unready[GW_STORE_ERR_MAX];
	struct pgs_op *ops;		/* every op waiting for the pool: freed at close */
};

struct pgs_op;
/* Reads the answer of op's statement and ends op (pgs_end), or sends it again (pgs_resend). */
typedef void (*pgs_answer_fn)(struct pgs_op *op, const PGresult *res);

struct pgs_op {
	struct pgs_store *s;
	struct pgs_op *prev, *next;
	gw_store_done_fn done;
	void *arg;
	pgs_answer_fn answer;
	size_t stmt;
	int tries;
	size_t nids;			/* owner_lookup: ids asked */
	int np;				/* > 0: params kept (in buf) for a resend */
	const char *params[GW_PG_MAX_PARAMS];
	char buf[];
};

/* ---- ending an operation ---- */

static void pgs_unlink(struct pgs_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		op->s->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

/* Calls done(arg, res) and frees op: every operation ends here exactly once. */
static void pgs_end(struct pgs_op *op, const struct gw_store_res *res)
{
	pgs_unlink(op);
	op->done(op->arg, res);
	free(op);
}

static void pgs_end_rc(struct pgs_op *op, int rc)
{
	struct gw_store_res r = { .rc = rc };

	pgs_end(op, &r);
}

static long pgs_retry_ms(const struct pgs_store *s)
{
	return gw_pg_stats(s->pool)->connected ? PGS_RETRY_MS : PGS_RETRY_DOWN_MS;
}

/*
 * Ends op with GW_STORE_ERROR. why is the pool's message ("PostgreSQL at W: reason",
 * "PostgreSQL at W unreachable (...)" or, while it is down, "PostgreSQL at W is unreachable:
 * reason") or our own reason; the answer names the server once and
 * says "is unreachable" when no connection is up, so an UNAVAILABLE status reads the same
 * whichever path noticed the outage.
 */
static void pgs_end_error(struct pgs_op *op, const char *why)
{
	struct pgs_store *s = op->s;
	struct gw_store_res r = { .rc = GW_STORE_ERROR };
	char msg[GW_STORE_ERR_MAX];
	size_t wl = strlen(s->where);
	const char *reason = why;
	int down = !gw_pg_stats(s->pool)->connected;

	if (strncmp(why, "PostgreSQL at ", 14) == 0 && strncmp(why + 14, s->where, wl) == 0) {
		reason = why + 14 + wl;
		reason += strspn(reason, ": ");
	}
	if (strncmp(reason, "unreachable ", 12) == 0) {	/* the pool's "unreachable (no connection..." */
		reason += 12;
		down = 1;
	} else if (strncmp(reason, "is unreachable", 14) == 0) {	/* the pool is down */
		reason += 14;
		reason += strspn(reason, ": ");
		down = 1;
	}
	if (down)
		snprintf(msg, sizeof msg, "PostgreSQL at %s is unreachable%s%s", s->where,
			 !reason[0] ? "" : reason[0] == '(' ? " " : ": ", reason);
	else
		snprintf(msg, sizeof msg, "PostgreSQL at %s: %s", s->where, reason);
	r.err = msg;
	r.retry_ms = pgs_retry_ms(s);
	pgs_end(op, &r);
}

/* ---- sending ---- */

static void pgs_on_answer(void *arg, const PGresult *res, const char *err)
{
	struct pgs_op *op = arg;

	if (err) {
		pgs_end_error(op, err);
		return;
	}
	op->answer(op, res);
}

/* Hands op to the pool; when the pool refuses it at once, op ends here with an error. */
static void pgs_submit(struct pgs_op *op, const char *const *params)
{
	struct pgs_store *s = op->s;
	const struct gw_pg_stats *st = gw_pg_stats(s->pool);

	op->tries++;
	if (gw_pg_query(s->pool, op->stmt, params, pgs_stmts[op->stmt].nparams, pgs_on_answer, op))
		return;
	pgs_end_error(op, st->queued >= GW_PG_MAX_QUEUE ? "query queue full"
							  : "cannot queue a query (out of memory)");
}

/*
 * Starts one operation of statement stmt. keep: the parameters are copied into the context, for
 * an answer that needs the statement sent again. done runs exactly once, from the loop, or
 * inline when the operation cannot even be queued.
 */
static void pgs_start(struct pgs_store *s, enum pgs_stmt stmt, const char *const *params, int keep,
		      size_t nids, pgs_answer_fn answer, gw_store_done_fn done, void *arg)
{
	int np = pgs_stmts[stmt].nparams;
	size_t extra = 0, o = 0;
	struct pgs_op *op;
	struct gw_store_res r = { .rc = GW_STORE_ERROR };

	for (int i = 0; keep && i < np; i++)
		extra += strlen(params[i]) + 1;
	op = calloc(1, sizeof *op + extra);
	if (!op) {
		r.err = "out of memory";
		r.retry_ms = PGS_RETRY_MS;
		done(arg, &r);
		return;
	}
	op->s = s;
	op->done = done;
	op->arg = arg;
	op->answer = answer;
	op->stmt = stmt;
	op->nids = nids;
	for (int i = 0; keep && i < np; i++) {
		size_t l = strlen(params[i]) + 1;

		memcpy(op->buf + o, params[i], l);
		op->params[i] = op->buf + o;
		o += l;
		op->np = np;
	}
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
	pgs_submit(op, params);
}

/* Sends op's statement again with its kept parameters (called from its answer). */
static void pgs_resend(struct pgs_op *op, const char *why)
{
	if (op->tries >= PGS_MAX_TRIES || op->np == 0) {
		pgs_end_error(op, why);
		return;
	}
	pgs_submit(op, op->params);
}

/* ---- answers ---- */

static int pgs_shape(const PGresult *res, int fields)
{
	return PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == fields;
}

static long pgs_affected(const PGresult *res)
{
	return strtol(PQcmdTuples((PGresult *)res), NULL, 10);
}

static void pgs_answer_command(struct pgs_op *op, const PGresult *res)
{
	pgs_end_rc(op, 0);
}

static void pgs_answer_owner_put(struct pgs_op *op, const PGresult *res)
{
	if (!pgs_shape(res, 1)) {
		pgs_end_error(op, "unexpected answer to owner_put");
		return;
	}
	/*
	 * No row: another replica inserted the id after this statement's snapshot was taken (ON
	 * CONFLICT waited for its commit, the read could not see it). A new statement sees it.
	 */
	if (PQntuples(res) == 0) {
		pgs_resend(op, "the owner row kept changing");
		return;
	}
	pgs_end_rc(op, strcmp(PQgetvalue(res, 0, 0), op->params[2]) == 0 ? 0 : GW_STORE_CONFLICT);
}

static void pgs_answer_owner_lookup(struct pgs_op *op, const PGresult *res)
{
	size_t n = op->nids;
	const char *tenants[GW_STORE_LOOKUP_MAX];
	struct gw_store_res r = { .rc = 0, .tenants = tenants };

	if (!pgs_shape(res, 2)) {
		pgs_end_error(op, "unexpected answer to owner_lookup");
		return;
	}
	for (size_t i = 0; i < n; i++)
		tenants[i] = NULL;
	for (int row = 0; row < PQntuples(res); row++) {
		long i = strtol(PQgetvalue(res, row, 0), NULL, 10);

		if (i >= 1 && (size_t)i <= n)
			tenants[i - 1] = PQgetvalue(res, row, 1);
	}
	pgs_end(op, &r);
}

static int pgs_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;	/* encode(..., 'hex') writes lower case only */
}

static int pgs_unhex(uint8_t *dst, size_t n, const char *hex)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = pgs_nibble(hex[2 * i]), lo = pgs_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void pgs_answer_idem_begin(struct pgs_op *op, const PGresult *res)
{
	struct gw_idem e;
	struct gw_store_res r = { .rc = 0, .idem = &e };

	if (!pgs_shape(res, 8)) {
		pgs_end_error(op, "unexpected answer to idem_begin");
		return;
	}
	if (PQntuples(res) == 0) {	/* as in owner_put: a concurrent insert, read it afresh */
		pgs_resend(op, "the idempotency row kept changing");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		pgs_end_rc(op, GW_STORE_INSERTED);
		return;
	}
	memset(&e, 0, sizeof e);
	if (pgs_unhex(e.fp, sizeof e.fp, PQgetvalue(res, 0, 1)) != 0) {
		pgs_end_error(op, "unexpected fingerprint in a3d_idem");
		return;
	}
	e.done = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	snprintf(e.rid, sizeof e.rid, "%s", PQgetvalue(res, 0, 3));
	snprintf(e.source, sizeof e.source, "%s", PQgetvalue(res, 0, 4));
	e.created_ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	snprintf(e.lease, sizeof e.lease, "%s", PQgetvalue(res, 0, 6));
	e.lease_until_ms = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
	pgs_end(op, &r);
}

/* One row changed: 0; none: the entry is not in the state the caller expected. */
static void pgs_answer_one_row(struct pgs_op *op, const PGresult *res)
{
	pgs_end_rc(op, pgs_affected(res) == 1 ? 0 : GW_STORE_CONFLICT);
}

static void pgs_answer_rows(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0, .count = pgs_affected(res) };

	pgs_end(op, &r);
}

static void pgs_answer_count(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };

	if (!pgs_shape(res, 1) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to idem_count");
		return;
	}
	r.count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	pgs_end(op, &r);
}

/* job_claim: rows (id, tenant, created_ms), oldest first (RETURNING keeps no order: sorted here). */
static int pgs_job_cmp(const void *a, const void *b)
{
	const struct gw_store_job *x = a, *y = b;

	return x->created_ms < y->created_ms ? -1 : x->created_ms > y->created_ms;
}

static void pgs_answer_job_claim(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_store_job *jobs = NULL;
	int n;

	if (!pgs_shape(res, 3)) {
		pgs_end_error(op, "unexpected answer to job_claim");
		return;
	}
	n = PQntuples(res);
	if (n > 0) {
		jobs = calloc((size_t)n, sizeof *jobs);
		if (!jobs) {
			/* the rows stay leased to us until the lease runs out: claimed again then */
			pgs_end_error(op, "out of memory");
			return;
		}
	}
	for (int i = 0; i < n; i++) {
		snprintf(jobs[i].rid, sizeof jobs[i].rid, "%s", PQgetvalue(res, i, 0));
		snprintf(jobs[i].tenant, sizeof jobs[i].tenant, "%s", PQgetvalue(res, i, 1));
		jobs[i].created_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10);
	}
	if (n > 1)
		qsort(jobs, (size_t)n, sizeof *jobs, pgs_job_cmp);
	r.jobs = jobs;
	r.count = n;
	pgs_end(op, &r);
	free(jobs);
}

/* ---- the operations ---- */

static void pgs_owner_put(void *impl, int k, const char *id, const char *tenant, int64_t now_ms,
			  gw_store_done_fn done, void *arg)
{
	char kind[16], now[24];
	const char *p[4] = { kind, id, tenant, now };

	snprintf(kind, sizeof kind, "%d", k);
	snprintf(now, sizeof now, "%" PRId64, now_ms);
	pgs_start(impl, PGS_OWNER_PUT, p, 1, 0, pgs_answer_owner_put, done, arg);
}

/*
 * The ids as one PostgreSQL array literal: each element double-quoted with '"' and '\' escaped,
 * so no id can end an element or the array early. NULL when out of memory.
 */
static char *pgs_array_literal(const char *const *ids, size_t n)
{
	size_t cap = 3, o = 0;
	char *lit;

	for (size_t i = 0; i < n; i++)
		cap += 2 * strlen(ids[i]) + 3;
	lit = malloc(cap);
	if (!lit)
		return NULL;
	lit[o++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			lit[o++] = ',';
		lit[o++] = '"';
		for (const char *c = ids[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				lit[o++] = '\\';
			lit[o++] = *c;
		}
		lit[o++] = '"';
	}
	lit[o++] = '}';
	lit[o] = '\0';
	return lit;
}

/* The lookup's context keeps no ids: the answer maps rows by ordinality (see the statement). */
static void pgs_owner_lookup(void *impl, int k, const char *const *ids, size_t n,
			     gw_store_done_fn done, void *arg)
{
	struct gw_store_res r = { .rc = GW_STORE_ERROR, .err = "out of memory", .retry_ms = PGS_RETRY_MS };
	char kind[16];
	const char *p[2] = { kind, NULL };
	char *lit;

	if (n == 0 || n > GW_STORE_LOOKUP_MAX) {
		r.err = "owner_lookup: bad id count";
		r.retry_ms = 0;
		done(arg, &r);
		return;
	}
	lit = pgs_array_literal(ids, n);
	if (!lit) {
		done(arg, &r);
		return;
	}
	snprintf(kind, sizeof kind, "%d", k);
	p[1] = lit;
	pgs_start(impl, PGS_OWNER_LOOKUP, p, 0, n, pgs_answer_owner_lookup, done, arg);
	free(lit);	/* the pool copied it */
}

static void pgs_owner_del(void *impl, int k, const char *id, gw_store_done_fn done, void *arg)
{
	char kind[16];
	const char *p[2] = { kind, id };

	snprintf(kind, sizeof kind, "%d", k);
	pgs_start(impl, PGS_OWNER_DEL, p, 0, 0, pgs_answer_command, done, arg);
}

static void pgs_idem_begin(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			   const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			   gw_store_done_fn done, void *arg)
{
	static const char hexd[] = "0123456789abcdef";
	char hex[65], now[24], until[24];
	const char *p[7] = { tenant, key, hex, source, now, lease, until };

	for (int i = 0; i < 32; i++) {
		hex[2 * i] = hexd[fp[i] >> 4];
		hex[2 * i + 1] = hexd[fp[i] & 15];
	}
	hex[64] = '\0';
	snprintf(now, sizeof now, "%" PRId64, now_ms);
	snprintf(until, sizeof until, "%" PRId64, lease_until_ms);
	pgs_start(impl, PGS_IDEM_BEGIN, p, 1, 0, pgs_answer_idem_begin, done, arg);
}

static void pgs_idem_take(void *impl, const char *tenant, const char *key, const char *old_lease,
			  int64_t old_until_ms, const char *lease, int64_t lease_until_ms,
			  gw_store_done_fn done, void *arg)
{
	char old_until[24], until[24];
	const char *p[6] = { tenant, key, old_lease, old_until, lease, until };

	snprintf(old_until, sizeof old_until, "%" PRId64, old_until_ms);
	snprintf(until, sizeof until, "%" PRId64, lease_until_ms);
	pgs_start(impl, PGS_IDEM_TAKE, p, 0, 0, pgs_answer_one_row, done, arg);
}

static void pgs_idem_renew(void *impl, const char *lease, int64_t lease_until_ms,
			   gw_store_done_fn done, void *arg)
{
	char until[24];
	const char *p[2] = { lease, until };

	snprintf(until, sizeof until, "%" PRId64, lease_until_ms);
	pgs_start(impl, PGS_IDEM_RENEW, p, 0, 0, pgs_answer_rows, done, arg);
}

static void pgs_idem_finish(void *impl, const char *tenant, const char *key, const char *rid,
			    gw_store_done_fn done, void *arg)
{
	const char *p[3] = { tenant, key, rid };

	pgs_start(impl, PGS_IDEM_FINISH, p, 0, 0, pgs_answer_one_row, done, arg);
}

static void pgs_idem_release(void *impl, const char *tenant, const char *key, gw_store_done_fn done,
			     void *arg)
{
	const char *p[2] = { tenant, key };

	pgs_start(impl, PGS_IDEM_RELEASE, p, 0, 0, pgs_answer_command, done, arg);
}

static void pgs_idem_abort(void *impl, const char *tenant, const char *key, gw_store_done_fn done,
			   void *arg)
{
	const char *p[2] = { tenant, key };

	pgs_start(impl, PGS_IDEM_ABORT, p, 0, 0, pgs_answer_command, done, arg);
}

static void pgs_idem_count(void *impl, gw_store_done_fn done, void *arg)
{
	pgs_start(impl, PGS_IDEM_COUNT, NULL, 0, 0, pgs_answer_count, done, arg);
}

static void pgs_idem_expire(void *impl, int64_t older_than_ms, gw_store_done_fn done, void *arg)
{
	char older[24];
	const char *p[1] = { older };

	snprintf(older, sizeof older, "%" PRId64, older_than_ms);
	pgs_start(impl, PGS_IDEM_EXPIRE, p, 0, 0, pgs_answer_rows, done, arg);
}

static void pgs_job_claim(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  size_t max, gw_store_done_fn done, void *arg)
{
	char until[24], now[24], lim[24];
	const char *p[4] = { lease, until, now, lim };

	snprintf(until, sizeof until, "%" PRId64, lease_until_ms);
	snprintf(now, sizeof now, "%" PRId64, now_ms);
	snprintf(lim, sizeof lim, "%zu", max);
	pgs_start(impl, PGS_JOB_CLAIM, p, 0, 0, pgs_answer_job_claim, done, arg);
}

static void pgs_job_renew(void *impl, const char *lease, int64_t lease_until_ms,
			  gw_store_done_fn done, void *arg)
{
	char until[24];
	const char *p[2] = { lease, until };

	snprintf(until, sizeof until, "%" PRId64, lease_until_ms);
	pgs_start(impl, PGS_JOB_RENEW, p, 0, 0, pgs_answer_rows, done, arg);
}

static void pgs_job_settle(void *impl, const char *rid, int64_t now_ms, gw_store_done_fn done,
			   void *arg)
{
	char now[24];
	const char *p[2] = { rid, now };

	snprintf(now, sizeof now, "%" PRId64, now_ms > 0 ? now_ms : 1);
	pgs_start(impl, PGS_JOB_SETTLE, p, 0, 0, pgs_answer_command, done, arg);
}

/* ---- the store ---- */

/*
 * Frees the pool, and with it every query still queued or in flight, WITHOUT their done():
 * the front must close only once the loop has stopped and nothing waits for an answer.
 */
static void pgs_close(void *impl)
{
	struct pgs_store *s = impl;

	if (!s)
		return;
	gw_pg_free(s->pool);
	while (s->ops) {
		struct pgs_op *op = s->ops;

		pgs_unlink(op);
		free(op);
	}
	free(s);
}

static const char *pgs_unready(void *impl)
{
	struct pgs_store *s = impl;
	const char *last = gw_pg_last_error(s->pool);

	/* Starting (the blocking connect at open just worked) or reconnecting after one lost
	 * connection: calls wait for a connection. Down only once an attempt failed. */
	if (gw_pg_stats(s->pool)->connected || !gw_pg_down(s->pool))
		return NULL;
	snprintf(s->unready, sizeof s->unready, "PostgreSQL at %s is unreachable%s%s", s->where,
		 last[0] ? ": " : "", last);
	return s->unready;
}

static const struct gw_pg_stats *pgs_pg_stats(void *impl)
{
	struct pgs_store *s = impl;

	return gw_pg_stats(s->pool);
}

/* ---- webhook subscriptions and outbox (store.h) ---- */

static void pgs_copy(char *dst, size_t cap, const PGresult *res, int row, int col)
{
	snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

static void pgs_answer_hooks(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_hook *hooks;
	int n;

	if (!pgs_shape(res, 11)) {
		pgs_end_error(op, "unexpected answer to a hook read");
		return;
	}
	n = PQntuples(res);
	if (op->stmt == PGS_HOOK_GET && n == 0) {
		pgs_end_rc(op, GW_STORE_ABSENT);
		return;
	}
	if (n > GW_STORE_HOOKS_MAX)
		n = GW_STORE_HOOKS_MAX;
	hooks = calloc(n ? (size_t)n : 1, sizeof *hooks);
	if (!hooks) {
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		struct gw_hook *h = &hooks[i];

		pgs_copy(h->tenant, sizeof h->tenant, res, i, 0);
		pgs_copy(h->id, sizeof h->id, res, i, 1);
		pgs_copy(h->url, sizeof h->url, res, i, 2);
		pgs_copy(h->description, sizeof h->description, res, i, 3);
		pgs_copy(h->secret, sizeof h->secret, res, i, 4);
		h->events = (unsigned)strtoul(PQgetvalue(res, i, 5), NULL, 10);
		h->disabled = strcmp(PQgetvalue(res, i, 6), "t") == 0;
		pgs_copy(h->reason, sizeof h->reason, res, i, 7);
		h->created_ms = strtoll(PQgetvalue(res, i, 8), NULL, 10);
		h->updated_ms = strtoll(PQgetvalue(res, i, 9), NULL, 10);
		h->failing_since_ms = strtoll(PQgetvalue(res, i, 10), NULL, 10);
	}
	r.hooks = hooks;
	r.count = n;
	pgs_end(op, &r);
	explicit_bzero(hooks, (n ? (size_t)n : 1) * sizeof *hooks);
	free(hooks);
}

static void pgs_answer_hook_create(struct pgs_op *op, const PGresult *res)
{
	if (!pgs_shape(res, 2) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to hook_create");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "1") == 0)
		pgs_end_rc(op, 0);
	else
		pgs_end_rc(op, strtol(PQgetvalue(res, 0, 1), NULL, 10) >= GW_STORE_HOOKS_MAX
				       ? GW_STORE_FULL
				       : GW_STORE_CONFLICT);
}

/* UPDATE of one row: 0, or ABSENT when none matched. */
static void pgs_answer_absent(struct pgs_op *op, const PGresult *res)
{
	pgs_end_rc(op, pgs_affected(res) == 1 ? 0 : GW_STORE_ABSENT);
}

/* A one-number answer: 0 -> ABSENT (DELETE), else 0 with no count. */
static void pgs_answer_deleted(struct pgs_op *op, const PGresult *res)
{
	if (!pgs_shape(res, 1) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to hook_delete");
		return;
	}
	pgs_end_rc(op, strcmp(PQgetvalue(res, 0, 0), "0") == 0 ? GW_STORE_ABSENT : 0);
}

static void pgs_answer_health(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };

	if (!pgs_shape(res, 1)) {
		pgs_end_error(op, "unexpected answer to hook_health");
		return;
	}
	if (PQntuples(res) == 0) {
		pgs_end_rc(op, GW_STORE_ABSENT);
		return;
	}
	r.count = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	pgs_end(op, &r);
}

static void pgs_answer_number(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };

	if (!pgs_shape(res, 1) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to outbox_expire");
		return;
	}
	r.count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	pgs_end(op, &r);
}

static void pgs_answer_claim(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_outbox_row *rows;
	int n;

	if (!pgs_shape(res, 9)) {
		pgs_end_error(op, "unexpected answer to outbox_claim");
		return;
	}
	n = PQntuples(res);
	if (n > GW_OUTBOX_CLAIM_MAX)
		n = GW_OUTBOX_CLAIM_MAX;	/* LIMIT $2 <= GW_OUTBOX_CLAIM_MAX: never */
	rows = calloc(n ? (size_t)n : 1, sizeof *rows);
	if (!rows) {
		/* the rows stay leased until their lease runs out, then another claim takes them */
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		struct gw_outbox_row *o = &rows[i];

		pgs_copy(o->tenant, sizeof o->tenant, res, i, 0);
		pgs_copy(o->endpoint, sizeof o->endpoint, res, i, 1);
		pgs_copy(o->rid, sizeof o->rid, res, i, 2);
		pgs_copy(o->body, sizeof o->body, res, i, 3);
		o->attempts = (int)strtol(PQgetvalue(res, i, 4), NULL, 10);
		o->created_ms = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		o->next_ms = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		pgs_copy(o->url, sizeof o->url, res, i, 7);
		pgs_copy(o->secret, sizeof o->secret, res, i, 8);
	}
	r.rows = rows;
	r.count = n;
	pgs_end(op, &r);
	explicit_bzero(rows, (n ? (size_t)n : 1) * sizeof *rows);
	free(rows);
}

static void pgs_answer_depth(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_outbox_depth *d;
	int n;

	if (!pgs_shape(res, 2)) {
		pgs_end_error(op, "unexpected answer to outbox_depth");
		return;
	}
	n = PQntuples(res);
	if (n > GW_OUTBOX_DEPTH_MAX)
		n = GW_OUTBOX_DEPTH_MAX;
	d = calloc(n ? (size_t)n : 1, sizeof *d);
	if (!d) {
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		pgs_copy(d[i].tenant, sizeof d[i].tenant, res, i, 0);
		d[i].pending = strtol(PQgetvalue(res, i, 1), NULL, 10);
	}
	r.depths = d;
	r.count = n;
	pgs_end(op, &r);
	free(d);
}

static void pgs_answer_legacy(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_hook *hooks;
	int n;

	if (!pgs_shape(res, 2)) {
		pgs_end_error(op, "unexpected answer to hook_legacy");
		return;
	}
	n = PQntuples(res);
	if (n > GW_HOOK_LEGACY_MAX)
		n = GW_HOOK_LEGACY_MAX;
	hooks = calloc(n ? (size_t)n : 1, sizeof *hooks);
	if (!hooks) {
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		pgs_copy(hooks[i].tenant, sizeof hooks[i].tenant, res, i, 0);
		pgs_copy(hooks[i].id, sizeof hooks[i].id, res, i, 1);
	}
	r.hooks = hooks;
	r.count = n;
	pgs_end(op, &r);
	free(hooks);
}

static void pgs_hook(void *impl, const struct gw_hook_req *q, gw_store_done_fn done, void *arg)
{
	const struct gw_hook *h = q->hook;
	char n1[24], n2[24], n3[24], n4[24], ev[16];
	const char *p[GW_PG_MAX_PARAMS] = { 0 };

	switch (q->op) {
	case GW_HOOK_CREATE:
		snprintf(ev, sizeof ev, "%u", h->events);
		snprintf(n1, sizeof n1, "%" PRId64, h->created_ms);
		snprintf(n2, sizeof n2, "%" PRId64, h->updated_ms);
		snprintf(n3, sizeof n3, "%" PRId64, h->failing_since_ms);
		p[0] = h->tenant, p[1] = h->id, p[2] = h->url, p[3] = h->description;
		p[4] = h->secret, p[5] = ev, p[6] = h->disabled ? "t" : "f", p[7] = h->reason;
		p[8] = n1, p[9] = n2, p[10] = n3;
		pgs_start(impl, PGS_HOOK_CREATE, p, 0, 0, pgs_answer_hook_create, done, arg);
		return;
	case GW_HOOK_GET:
		p[0] = q->tenant, p[1] = q->id;
		pgs_start(impl, PGS_HOOK_GET, p, 0, 0, pgs_answer_hooks, done, arg);
		return;
	case GW_HOOK_LIST:
		p[0] = q->tenant;
		pgs_start(impl, PGS_HOOK_LIST, p, 0, 0, pgs_answer_hooks, done, arg);
		return;
	case GW_HOOK_UPDATE:
		snprintf(ev, sizeof ev, "%u", h->events);
		snprintf(n1, sizeof n1, "%" PRId64, h->updated_ms);
		snprintf(n2, sizeof n2, "%" PRId64, h->failing_since_ms);
		p[0] = h->tenant, p[1] = h->id, p[2] = h->url, p[3] = h->description, p[4] = ev;
		p[5] = h->disabled ? "t" : "f", p[6] = h->reason, p[7] = n1, p[8] = n2;
		p[9] = h->secret;
		pgs_start(impl, PGS_HOOK_UPDATE, p, 0, 0, pgs_answer_absent, done, arg);
		return;
	case GW_HOOK_DELETE:
		p[0] = q->tenant, p[1] = q->id;
		pgs_start(impl, PGS_HOOK_DELETE, p, 0, 0, pgs_answer_deleted, done, arg);
		return;
	case GW_HOOK_HEALTH:
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		snprintf(n2, sizeof n2, "%" PRId64, q->disable_after_ms);
		p[0] = q->tenant, p[1] = q->id, p[2] = n1, p[3] = n2;
		p[4] = q->reason ? q->reason : "", p[5] = q->ok ? "t" : "f";
		pgs_start(impl, PGS_HOOK_HEALTH, p, 0, 0, pgs_answer_health, done, arg);
		return;
	case GW_OUTBOX_ADD:
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		snprintf(ev, sizeof ev, "%u", q->event ? q->event : GW_HOOK_EV_JOB_COMPLETED);
		p[0] = q->tenant, p[1] = q->rid, p[2] = q->body, p[3] = n1, p[4] = ev;
		pgs_start(impl, PGS_OUTBOX_ADD, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	case GW_OUTBOX_CLAIM:
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		snprintf(n2, sizeof n2, "%zu", q->max);
		snprintf(n3, sizeof n3, "%" PRId64, q->until_ms);
		p[0] = n1, p[1] = n2, p[2] = q->lease, p[3] = n3;
		pgs_start(impl, PGS_OUTBOX_CLAIM, p, 0, 0, pgs_answer_claim, done, arg);
		return;
	case GW_OUTBOX_SETTLE:
		snprintf(n1, sizeof n1, "%d", q->state);
		snprintf(n2, sizeof n2, "%d", q->attempts);
		snprintf(n3, sizeof n3, "%" PRId64, q->next_ms);
		p[0] = q->tenant, p[1] = q->id, p[2] = q->rid, p[3] = q->lease;
		p[4] = n1, p[5] = n2, p[6] = n3;
		pgs_start(impl, PGS_OUTBOX_SETTLE, p, 0, 0, pgs_answer_one_row, done, arg);
		return;
	case GW_OUTBOX_DEPTH:
		pgs_start(impl, PGS_OUTBOX_DEPTH, NULL, 0, 0, pgs_answer_depth, done, arg);
		return;
	case GW_OUTBOX_EXPIRE:
		snprintf(n4, sizeof n4, "%" PRId64, q->older_ms);
		p[0] = n4;
		pgs_start(impl, PGS_OUTBOX_EXPIRE, p, 0, 0, pgs_answer_number, done, arg);
		return;
	case GW_HOOK_LEGACY:
		pgs_start(impl, PGS_HOOK_LEGACY, NULL, 0, 0, pgs_answer_legacy, done, arg);
		return;
	}
	{
		struct gw_store_res r = { .rc = GW_STORE_ERROR, .err = "unknown hook operation" };

		done(arg, &r);
	}
}

/* ---- REST facade sessions (store.h) ---- */

static void pgs_hex32(const uint8_t in[32], char out[65])
{
	static const char hexd[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hexd[in[i] >> 4];
		out[2 * i + 1] = hexd[in[i] & 15];
	}
	out[64] = '\0';
}

static void pgs_answer_sess_put(struct pgs_op *op, const PGresult *res)
{
	if (!pgs_shape(res, 2) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to sess_put");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "1") == 0)
		pgs_end_rc(op, 0);
	else
		pgs_end_rc(op, strtol(PQgetvalue(res, 0, 1), NULL, 10) >= GW_STORE_SESS_TENANT_MAX
				       ? GW_STORE_FULL
				       : GW_STORE_CONFLICT);
}

static void pgs_answer_sess_get(struct pgs_op *op, const PGresult *res)
{
	struct gw_sess e;
	struct gw_store_res r = { .rc = 0, .sess = &e };

	if (!pgs_shape(res, 4)) {
		pgs_end_error(op, "unexpected answer to sess_get");
		return;
	}
	memset(&e, 0, sizeof e);
	/* a key hash that is not 32 bytes is no row this code wrote: no session */
	if (PQntuples(res) != 1 || pgs_unhex(e.key_sha256, 32, PQgetvalue(res, 0, 1)) != 0) {
		pgs_end_rc(op, GW_STORE_ABSENT);
		return;
	}
	pgs_copy(e.tenant, sizeof e.tenant, res, 0, 0);
	e.created_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	e.expires_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	pgs_end(op, &r);
	explicit_bzero(&e, sizeof e);
}

static void pgs_sess(void *impl, const struct gw_sess_req *q, gw_store_done_fn done, void *arg)
{
	char tok[65], key[65], n1[24], n2[24];
	const char *p[GW_PG_MAX_PARAMS] = { 0 };

	switch (q->op) {
	case GW_SESS_PUT:
		pgs_hex32(q->token_sha256, tok);
		pgs_hex32(q->key_sha256, key);
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		snprintf(n2, sizeof n2, "%" PRId64, q->expires_ms);
		p[0] = tok, p[1] = q->tenant, p[2] = key, p[3] = n1, p[4] = n2;
		pgs_start(impl, PGS_SESS_PUT, p, 0, 0, pgs_answer_sess_put, done, arg);
		return;
	case GW_SESS_GET:
		pgs_hex32(q->token_sha256, tok);
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		p[0] = tok, p[1] = n1;
		pgs_start(impl, PGS_SESS_GET, p, 0, 0, pgs_answer_sess_get, done, arg);
		return;
	case GW_SESS_DEL:
		pgs_hex32(q->token_sha256, tok);
		p[0] = tok;
		pgs_start(impl, PGS_SESS_DEL, p, 0, 0, pgs_answer_command, done, arg);
		return;
	case GW_SESS_REVOKE:
		pgs_hex32(q->key_sha256, key);
		p[0] = key;
		pgs_start(impl, PGS_SESS_REVOKE, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	case GW_SESS_EXPIRE:
		snprintf(n1, sizeof n1, "%" PRId64, q->now_ms);
		snprintf(n2, sizeof n2, "%zu", q->max);
		p[0] = n1, p[1] = n2;
		pgs_start(impl, PGS_SESS_EXPIRE, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	}
	{
		struct gw_store_res r = { .rc = GW_STORE_ERROR, .err = "unknown session operation" };

		done(arg, &r);
	}
}

/* ---- the usage ledger (store.h) ---- */

static void pgs_answer_usage_reserve(struct pgs_op *op, const PGresult *res)
{
	struct gw_usage_sum sum;
	struct gw_store_res r = { .rc = 0, .usage_sums = &sum, .count = 1 };

	if (!pgs_shape(res, 3) || PQntuples(res) != 1) {
		pgs_end_error(op, "unexpected answer to usage_reserve");
		return;
	}
	memset(&sum, 0, sizeof sum);
	sum.seconds = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	sum.oldest_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	r.rc = strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? 0 : GW_STORE_CONFLICT;
	pgs_end(op, &r);
}

static void pgs_answer_usage_start(struct pgs_op *op, const PGresult *res)
{
	pgs_end_rc(op, pgs_affected(res) == 1 ? 0 : GW_STORE_ABSENT);
}

static void pgs_usage_row(const PGresult *res, int i, struct gw_usage_row *w)
{
	pgs_copy(w->id, sizeof w->id, res, i, 0);
	pgs_copy(w->tenant, sizeof w->tenant, res, i, 1);
	pgs_copy(w->rid, sizeof w->rid, res, i, 2);
	w->state = (int)strtol(PQgetvalue(res, i, 3), NULL, 10);
	w->seconds = strtoll(PQgetvalue(res, i, 4), NULL, 10);
	w->counted = strtoll(PQgetvalue(res, i, 5), NULL, 10);
	w->input_ms = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	w->persons = (int)strtol(PQgetvalue(res, i, 7), NULL, 10);
	w->face = (int)strtol(PQgetvalue(res, i, 8), NULL, 10);
	w->hand = (int)strtol(PQgetvalue(res, i, 9), NULL, 10);
	pgs_copy(w->source, sizeof w->source, res, i, 10);
	w->started_ms = strtoll(PQgetvalue(res, i, 11), NULL, 10);
	w->ended_ms = strtoll(PQgetvalue(res, i, 12), NULL, 10);
}

/* GET (absent when no row) and LIST. */
static void pgs_answer_usage_rows(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_usage_row *rows;
	int n;

	if (!pgs_shape(res, 13) || (n = PQntuples(res)) > GW_USAGE_LIST_MAX) {
		pgs_end_error(op, "unexpected answer to a usage read");
		return;
	}
	if (op->stmt == PGS_USAGE_GET && n == 0) {
		pgs_end_rc(op, GW_STORE_ABSENT);
		return;
	}
	rows = calloc(n ? (size_t)n : 1, sizeof *rows);
	if (!rows) {
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++)
		pgs_usage_row(res, i, &rows[i]);
	r.usage = rows;
	r.count = n;
	pgs_end(op, &r);
	free(rows);
}

static void pgs_answer_usage_sums(struct pgs_op *op, const PGresult *res)
{
	struct gw_store_res r = { .rc = 0 };
	struct gw_usage_sum *sums;
	int n;

	if (!pgs_shape(res, 3 + GW_USAGE_NSTATES) || (n = PQntuples(res)) > GW_USAGE_SUMS_MAX) {
		pgs_end_error(op, "unexpected answer to a usage sum");
		return;
	}
	sums = calloc(n ? (size_t)n : 1, sizeof *sums);
	if (!sums) {
		pgs_end_error(op, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		pgs_copy(sums[i].tenant, sizeof sums[i].tenant, res, i, 0);
		sums[i].seconds = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		for (int k = 0; k < GW_USAGE_NSTATES; k++)
			sums[i].jobs[k] = strtol(PQgetvalue(res, i, 2 + k), NULL, 10);
		sums[i].oldest_ms = strtoll(PQgetvalue(res, i, 2 + GW_USAGE_NSTATES), NULL, 10);
	}
	r.usage_sums = sums;
	r.count = n;
	pgs_end(op, &r);
	free(sums);
}

static void pgs_usage(void *impl, const struct gw_usage_req *q, gw_store_done_fn done, void *arg)
{
	char n[6][24];
	const char *p[GW_PG_MAX_PARAMS] = { 0 };
	const struct gw_usage_row *w = q->row;

	switch (q->op) {
	case GW_USAGE_RESERVE:
		snprintf(n[0], sizeof n[0], "%" PRId64, w->seconds);
		snprintf(n[1], sizeof n[1], "%" PRId64, w->input_ms);
		snprintf(n[2], sizeof n[2], "%d", w->persons);
		snprintf(n[3], sizeof n[3], "%" PRId64, w->started_ms);
		snprintf(n[4], sizeof n[4], "%" PRId64, q->limit_s);
		snprintf(n[5], sizeof n[5], "%" PRId64, q->from_ms);
		p[0] = w->id, p[1] = w->tenant, p[2] = n[0], p[3] = n[1], p[4] = n[2];
		p[5] = w->face ? "1" : "0", p[6] = w->hand ? "1" : "0", p[7] = w->source;
		p[8] = n[3], p[9] = n[4], p[10] = n[5];
		pgs_start(impl, PGS_USAGE_RESERVE, p, 0, 0, pgs_answer_usage_reserve, done, arg);
		return;
	case GW_USAGE_START:
		p[0] = q->id, p[1] = q->rid;
		pgs_start(impl, PGS_USAGE_START, p, 0, 0, pgs_answer_usage_start, done, arg);
		return;
	case GW_USAGE_RELEASE:
		snprintf(n[0], sizeof n[0], "%" PRId64, q->now_ms);
		p[0] = q->id, p[1] = n[0];
		pgs_start(impl, PGS_USAGE_RELEASE, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	case GW_USAGE_SETTLE:
		snprintf(n[0], sizeof n[0], "%" PRId64, q->now_ms);
		p[0] = q->rid, p[1] = q->ok ? "true" : "false", p[2] = q->count_failed ? "true" : "false";
		p[3] = n[0];
		pgs_start(impl, PGS_USAGE_SETTLE, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	case GW_USAGE_REFOLLOW:
		p[0] = q->rid;
		pgs_start(impl, PGS_USAGE_REFOLLOW, p, 0, 0, pgs_answer_rows, done, arg);
		return;
	case GW_USAGE_GET:
		p[0] = q->tenant, p[1] = q->rid;
		pgs_start(impl, PGS_USAGE_GET, p, 0, 0, pgs_answer_usage_rows, done, arg);
		return;
	case GW_USAGE_SUM:
	case GW_USAGE_CHARGED:
		snprintf(n[0], sizeof n[0], "%" PRId64, q->from_ms);
		snprintf(n[1], sizeof n[1], "%" PRId64, q->to_ms);
		snprintf(n[2], sizeof n[2], "%" PRId64, (int64_t)(q->now_ms - GW_USAGE_RESERVE_STALE_MS));
		p[0] = q->tenant, p[1] = n[0], p[2] = n[1], p[3] = n[2];	/* p[0] NULL: all */
		pgs_start(impl, q->op == GW_USAGE_SUM ? PGS_USAGE_SUM : PGS_USAGE_CHARGED, p, 0, 0,
			  pgs_answer_usage_sums, done, arg);
		return;
	case GW_USAGE_LIST:
		snprintf(n[0], sizeof n[0], "%" PRId64, q->from_ms);
		snprintf(n[1], sizeof n[1], "%" PRId64, q->to_ms);
		snprintf(n[2], sizeof n[2], "%zu", q->max);
		p[0] = n[0], p[1] = q->after, p[2] = n[1], p[3] = n[2];
		pgs_start(impl, PGS_USAGE_LIST, p, 0, 0, pgs_answer_usage_rows, done, arg);
		return;
	}
	{
		struct gw_store_res r = { .rc = GW_STORE_ERROR, .err = "unknown usage operation" };

		done(arg, &r);
	}
}

static const struct gw_store_ops pgs_ops = {
	.name = "postgres",
	.shared = 1,
	.close = pgs_close,
	.unready = pgs_unready,
	.pg_stats = pgs_pg_stats,
	.owner_put = pgs_owner_put,
	.owner_lookup = pgs_owner_lookup,
	.owner_del = pgs_owner_del,
	.idem_begin = pgs_idem_begin,
	.idem_take = pgs_idem_take,
	.idem_renew = pgs_idem_renew,
	.idem_finish = pgs_idem_finish,
	.idem_release = pgs_idem_release,
	.idem_abort = pgs_idem_abort,
	.idem_count = pgs_idem_count,
	.idem_expire = pgs_idem_expire,
	.hook = pgs_hook,
	.job_claim = pgs_job_claim,
	.job_renew = pgs_job_renew,
	.job_settle = pgs_job_settle,
	.sess = pgs_sess,
	.usage = pgs_usage,
};

/* ---- start-up: the migrations (blocking, one connection) ---- */

/* Runs sql (no parameters, or the n given); 0, or -1 with why (libpq's reason, one line). */
static int pgs_exec(PGconn *c, const char *sql, int n, const char *const *params, PGresult **out,
		    char *why, size_t cap)
{
	PGresult *res = n ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
	size_t o = 0;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return 0;
	}
	for (; *m && o + 1 < cap; m++)
		why[o++] = (*m == '\n' || *m == '\r' || *m == '\t') ? ' ' : *m;
	while (o > 0 && why[o - 1] == ' ')
		o--;
	why[o] = '\0';
	PQclear(res);
	return -1;
}

/* Applies one migration with its a3d_schema row, in one transaction. */
static int pgs_apply(PGconn *c, const struct pgs_migration *m, char *why, size_t cap)
{
	char v[16], mc[16], now[24];
	const char *p[3] = { v, now, mc };

	snprintf(v, sizeof v, "%d", m->version);
	snprintf(mc, sizeof mc, "%d", m->min_compatible);
	snprintf(now, sizeof now, "%" PRId64, gw_clock_wall_ms());
	if (pgs_exec(c, "BEGIN", 0, NULL, NULL, why, cap) != 0)
		return -1;
	if (pgs_exec(c, m->sql, 0, NULL, NULL, why, cap) != 0 ||
	    pgs_exec(c, "INSERT INTO a3d_schema (version, applied_ms, min_compatible)"
			" VALUES ($1::int, $2::bigint, $3::int)", 3, p, NULL, why, cap) != 0 ||
	    pgs_exec(c, "COMMIT", 0, NULL, NULL, why, cap) != 0) {
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	return 0;
}

/*
 * Under the advisory lock: creates a3d_schema if needed, refuses an incompatible newer schema,
 * applies what this build has and the database lacks. 0, or -1 with err (the full line).
 */
static int pgs_migrate_locked(PGconn *c, const char *where, char *err, size_t errlen)
{
	char why[GW_PG_ERR_MAX];
	PGresult *res = NULL;
	int have = 0, have_min = 0, known = pgs_known_version(), rc = -1;

	if (pgs_exec(c, "CREATE TABLE IF NOT EXISTS a3d_schema (version int PRIMARY KEY,"
			" applied_ms bigint NOT NULL, min_compatible int NOT NULL)",
		     0, NULL, NULL, why, sizeof why) != 0 ||
	    pgs_exec(c, "SELECT version, min_compatible FROM a3d_schema ORDER BY version DESC LIMIT 1",
		     0, NULL, &res, why, sizeof why) != 0) {
		snprintf(err, errlen, "PostgreSQL at %s: cannot read the schema version: %s", where, why);
		goto out;
	}
	if (PQntuples(res) == 1) {
		have = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
		have_min = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
	}
	if (have > known && have_min > known) {
		snprintf(err, errlen,
			 "PostgreSQL at %s has schema version %d, incompatible with this gateway (knows up"
			 " to %d); refusing to start", where, have, known);
		goto out;
	}
	for (size_t i = 0; i < PGS_NMIGRATIONS; i++) {
		const struct pgs_migration *m = &pgs_migrations[i];

		if (m->version <= have)
			continue;
		if (pgs_apply(c, m, why, sizeof why) != 0) {
			snprintf(err, errlen, "PostgreSQL at %s: schema migration %d failed: %s", where,
				 m->version, why);
			goto out;
		}
		gw_log(GW_LOG_INFO, "store_pg_migrated", GW_LS("server", where),
		       GW_LN("version", m->version), GW_LEND);
	}
	if (have > known)
		gw_log(GW_LOG_INFO, "store_pg_newer_schema", GW_LS("server", where),
		       GW_LN("version", have), GW_LN("known", known), GW_LN("min_compatible", have_min),
		       GW_LEND);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static int pgs_migrate(const struct gw_pg_opts *o, const char *where, char *err, size_t errlen)
{
	char why[GW_PG_ERR_MAX], key[24], lock_timeout[64];
	const char *p[1] = { key };
	PGconn *c;
	int rc = -1;

	c = gw_pg_connect_blocking(o, err, errlen);
	if (!c)
		return -1;
	snprintf(key, sizeof key, "%" PRId64, PGS_MIGRATE_LOCK);
	snprintf(lock_timeout, sizeof lock_timeout, "SET lock_timeout = %d", PGS_MIGRATE_LOCK_TIMEOUT_MS);
	/* Quiet: libpq would print "already exists, skipping" notices on stderr at every start. */
	if (pgs_exec(c, "SET client_min_messages = warning", 0, NULL, NULL, why, sizeof why) != 0 ||
	    pgs_exec(c, lock_timeout, 0, NULL, NULL, why, sizeof why) != 0 ||
	    pgs_exec(c, "SELECT pg_advisory_lock($1::bigint)", 1, p, NULL, why, sizeof why) != 0) {
		snprintf(err, errlen, "PostgreSQL at %s: cannot take the migration lock: %s", where, why);
		goto out;
	}
	rc = pgs_migrate_locked(c, where, err, errlen);
	/* PQfinish would release the lock too; unlocking says so to the next replica at once. */
	if (pgs_exec(c, "SELECT pg_advisory_unlock($1::bigint)", 1, p, NULL, why, sizeof why) != 0 &&
	    rc == 0) {
		snprintf(err, errlen, "PostgreSQL at %s: cannot release the migration lock: %s", where,
			 why);
		rc = -1;
	}
out:
	PQfinish(c);
	return rc;
}

void *gw_store_pg_backend_open(struct event_base *base, const struct gw_pg_opts *o,
			       const struct gw_store_ops **ops, char *err, size_t errlen)
{
	struct pgs_store *s = NULL, *ret = NULL;
	char why[GW_PG_ERR_MAX];

	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(s->where, sizeof s->where, "%s:%u/%s", o->hostaddr ? o->hostaddr : "?", o->port,
		 o->dbname ? o->dbname : "?");
	if (!o->hostaddr || !o->dbname || !o->user) {
		snprintf(err, errlen, "PostgreSQL at %s: host address, database and user are required",
			 s->where);
		goto out;
	}
	if (pgs_migrate(o, s->where, err, errlen) != 0)
		goto out;
	s->pool = gw_pg_new(base, o, pgs_stmts, PGS_NSTMTS, why, sizeof why);
	if (!s->pool) {
		snprintf(err, errlen, "PostgreSQL at %s: %s", s->where, why);
		goto out;
	}
	*ops = &pgs_ops;
	ret = s;
	s = NULL;
out:
	pgs_close(s);
	return ret;
}
