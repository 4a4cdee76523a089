/*
 * store: the gateway's durable state behind one small interface, so that handlers never know
 * which backend holds it: who owns each job / model / webhook endpoint / upload (kind, id) ->
 * tenant, and StartJob idempotency keys (tenant, key) -> {request fingerprint, PENDING|DONE, rid}.
 *
 * Backends (chosen by gw_store_open):
 *   - SQLite, WAL journal (gateway/state/store_sqlite.c): the embedded default, one local file.
 *   - memory (gateway/state/store_mem.c): hash tables, lost at exit; for "state: memory: true" and tests.
 *   - PostgreSQL (gateway/state/store_pg.c, on gateway/state/pg.h): shared by several replicas;
 *     asynchronous, on the loop; its schema is versioned migrations (see store_pg.c).
 *
 * Durability (SQLite): journal_mode=WAL with synchronous=FULL. Every write is its own
 * transaction and the WAL is fsync'ed at each commit, so once a gw_store_* write has returned 0/1:
 *   - a process crash (SIGKILL, abort) loses nothing: the commit is in the WAL file;
 *   - a power loss or kernel crash loses nothing either, on storage that honours fsync.
 * (synchronous=NORMAL would keep the process-crash guarantee but could lose the last commits on a
 * power loss, i.e. a started job whose ownership was never durable; not worth the saved fsync.)
 * The file is held with locking_mode=EXCLUSIVE: a second gateway on the same file is refused
 * at open, because "PENDING and not in flight in this process" must mean "left by a previous
 * process" (see gateway/state/owner.h).
 *
 * PostgreSQL: a write is durable when the server has committed it (synchronous_commit as the
 * server is configured); done() reports success only after the commit.
 *
 * Threading and latency: every call runs on the loop thread and completes through a callback
 * (below). The SQLite file must be on a local disk: a write costs one fsync (typically 0.1-2 ms
 * on SSD, up to ~10 ms on spinning disks), a read is a cached B-tree lookup (microseconds); both
 * complete inline. PostgreSQL costs one network round trip per call, never on the loop's time.
 * Calls slower than GW_STORE_SLOW_US (issue to done) are counted in stats.slow_ops.
 *
 * Strings: every id, tenant, key and source is 1..its limit bytes of UTF-8 (callers pass ASCII:
 * validated ids, URLs, config names), with no NUL inside; longer,
 * empty or NULL arguments are rejected (-1, counted in stats.rejected_args) and never truncated.
 * Timestamps (now_ms, created_ms) are wall-clock milliseconds since the epoch: they must mean
 * the same after a restart.
 *
 * Errors: rc GW_STORE_ERROR in done(), with res->err saying why in one line suitable for an
 * UNAVAILABLE status ("state store is read-only", "state store: disk I/O error"); the last one
 * is also kept for gw_store_errmsg(). Messages name no tenant, key or id, and the store never
 * sees a secret (sources are stored without their query).
 */
#ifndef A3D_GATEWAY_STORE_H
#define A3D_GATEWAY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define GW_STORE_ID_MAX 128		/* bytes of a rid / model id / endpoint id / upload id */
#define GW_STORE_TENANT_MAX 128		/* bytes of a tenant name */
#define GW_STORE_KEY_MAX 128		/* bytes of an idempotency key */
#define GW_STORE_RID_MAX 71		/* bytes of the rid recorded for a key (struct gw_idem.rid) */
#define GW_STORE_SOURCE_MAX 2047	/* bytes of an idempotency source (struct gw_idem.source) */
#define GW_STORE_ERR_MAX 256		/* gw_store_errmsg() text, and err buffers for open */
#define GW_STORE_SLOW_US 20000		/* a call slower than this counts in stats.slow_ops */
#define GW_STORE_MEM_MAX_ENTRIES (1u << 20)	/* memory backend: owner + idem rows, in total */
#define GW_STORE_SCHEMA_VERSION 2	/* SQLite schema this build writes; newer files are refused */
#define GW_STORE_BUSY_TIMEOUT_MS 200	/* SQLite lock wait before a call fails */
#define GW_STORE_OWNER_CACHE 4096	/* SQLite: owner answers remembered (power of two) */

enum gw_store_kind { GW_OBJ_JOB = 1, GW_OBJ_MODEL = 2, GW_OBJ_ENDPOINT = 3, GW_OBJ_UPLOAD = 4 };

struct gw_store;	/* opaque */

struct gw_store_stats {
	uint64_t ops;			/* calls that reached a backend */
	uint64_t errors;		/* backend failures (I/O, corruption, lock busy) */
	uint64_t rejected_args;		/* NULL / empty / over-limit strings, unknown kind */
	uint64_t rejected_read_only;	/* writes refused because the store is read-only */
	uint64_t rejected_full;		/* memory backend at its entry limit */
	uint64_t owner_conflicts;	/* owner_put for an id another tenant owns (never overwritten) */
	uint64_t idem_conflicts;	/* idem_finish with another rid than the recorded one, or no key */
	uint64_t slow_ops;		/* calls over GW_STORE_SLOW_US */
	uint64_t owner_cache_hits;	/* owner_get answered from the owner cache (not in ops) */
	uint64_t max_op_us;		/* slowest call seen */
};

/*
 * Opens the store. path NULL = memory only (GW_STORE_MEM_MAX_ENTRIES rows). Otherwise opens or
 * creates the SQLite file, sets WAL + synchronous=FULL + exclusive locking, runs PRAGMA
 * quick_check, creates or checks the schema version table and proves it can write. A corrupt
 * file, an unwritable file or directory, a file held by another process or a newer schema ->
 * NULL and one line in err, e.g. "state file /var/lib/x.db is corrupt: file is not a database;
 * refusing to start". read_only=1 opens an existing file read-only (no schema changes): reads
 * work, every write returns -1 with "state store is read-only" (callers answer UNAVAILABLE).
 * err may be NULL; errlen should be at least GW_STORE_ERR_MAX.
 */
struct gw_store *gw_store_open(const char *path, int read_only, char *err, size_t errlen);
/*
 * Opens the PostgreSQL backend on base: connects once at start-up (blocking, before the loop
 * serves), applies the migrations under an advisory lock (N replicas starting together migrate
 * once), refuses a schema marked incompatible with this build, then runs a pool of `pool`
 * connections on the loop. NULL with one line in err naming host:port/db, never the password.
 */
struct event_base;
struct gw_pg_opts;
struct gw_store *gw_store_open_pg(struct event_base *base, const struct gw_pg_opts *o, char *err,
				  size_t errlen);
/* Memory backend with an explicit row limit (0 = GW_STORE_MEM_MAX_ENTRIES); for tests. */
struct gw_store *gw_store_open_mem(size_t max_entries, int read_only);
void gw_store_close(struct gw_store *s);	/* NULL is a no-op */

const struct gw_store_stats *gw_store_stats(const struct gw_store *s);
const char *gw_store_errmsg(const struct gw_store *s);	/* last failure; "" when none */
int gw_store_read_only(const struct gw_store *s);
const char *gw_store_backend(const struct gw_store *s);	/* "sqlite" | "memory" | "postgres" */
/* NULL when the store takes calls; else why not, in one line (PostgreSQL: no connection). */
const char *gw_store_unready(const struct gw_store *s);
/* Operations issued and not answered yet (a backend that answers later): the server lets them
 * finish before it closes the store, whose close drops them. */
size_t gw_store_inflight(const struct gw_store *s);
/* The connection pool's counters (PostgreSQL), or NULL. */
const struct gw_pg_stats *gw_store_pg_stats(const struct gw_store *s);

/*
 * Owner cache: every ownership check of a GetStatus is an owner lookup, so the answers of the
 * last GW_STORE_OWNER_CACHE (kind, id) pairs are kept in a direct-mapped table in front of the
 * backend; a cache hit completes inline. SQLite (one writer, this process): found and absent
 * answers are kept, exact because every owner row is written through this store. PostgreSQL
 * (shared with other replicas): found answers only, since ownership is never overwritten while
 * another replica may just have recorded an id this one saw absent. put and del forget the pair,
 * a successful put remembers its tenant. Writes always reach the backend.
 */
/* ---- the caller side: every operation is asynchronous ---- */

/*
 * Every operation ends by calling done(arg, res) exactly once. The in-process backends (SQLite,
 * memory) and the front's own refusals (bad arguments, read-only, cache hits) call it before the
 * operation returns; PostgreSQL calls it later, from the loop. A caller must therefore treat
 * "done already ran" and "done runs later" alike: never touch arg after the call when done may
 * have freed it. res and everything it points to is valid during done only.
 *
 * rc per operation (GW_STORE_ERROR = -1 for every failure, with res->err saying why in one
 * line suitable for an UNAVAILABLE status, e.g. "state store is read-only", "state store:
 * PostgreSQL at 10.0.0.5:5432/a3d is unreachable"; res->retry_ms > 0 when retrying later may
 * help):
 *   owner_put     0 recorded (or already the same tenant's); GW_STORE_CONFLICT another tenant
 *                 owns id (never overwritten; stats.owner_conflicts).
 *   owner_lookup  0; res->tenants[i] is the owner of ids[i], or NULL when unrecorded.
 *                 n is 1..GW_STORE_LOOKUP_MAX.
 *   owner_del     0 (removed or absent).
 *   idem_begin    GW_STORE_INSERTED: {fp, PENDING, source, now_ms} inserted with the lease
 *                 (lease, lease_until_ms); 0: the key exists, res->idem is its entry.
 *   idem_take     0: a PENDING entry whose lease was exactly (old_lease, old_until_ms) now holds
 *                 (lease, lease_until_ms); GW_STORE_CONFLICT: it changed meanwhile (another
 *                 replica took it, or it ended): read it again with idem_begin.
 *   idem_renew    0: every PENDING key leased by `lease` now lasts until lease_until_ms;
 *                 res->count = how many.
 *   idem_finish   0: PENDING -> DONE with rid (or already DONE with the same rid); CONFLICT:
 *                 absent, or DONE with another rid (stats.idem_conflicts).
 *   idem_release  0: a PENDING key stays PENDING with no lease (anyone may reconcile it now);
 *                 DONE or absent: 0, nothing changes.
 *   idem_abort    0: a PENDING key is removed (upstream refused the job); DONE is kept.
 *   idem_count    0: res->count = PENDING keys (start-up log).
 *   idem_expire   0: keys created before older_than_ms removed; res->count = how many.
 *
 * The job follower's set (issue 17, gateway/svc/follower.h): every job row (GW_OBJ_JOB) carries
 * a "settled" marker, set once everything that acts on the job's final state has done so, and a
 * follow lease (holder, until), so that of several replicas one follows each job at a time.
 *   job_claim     0: res->jobs[0..res->count) are unsettled jobs, oldest first, not leased to
 *                 lease, whose lease has run out (shared backends) or that any other holder
 *                 left (in-process backends: this process is the only writer, so another holder
 *                 is a process that is gone); each is now leased to lease until lease_until_ms.
 *                 max is 1..GW_STORE_CLAIM_MAX. Rows written before the marker existed and
 *                 older than GW_STORE_SETTLE_BACKFILL_MS at the upgrade were marked settled by it.
 *   job_renew     0: every unsettled job leased to lease lasts until lease_until_ms (0 releases
 *                 them: anyone may claim them at once); res->count = how many.
 *   job_settle    0: the job is settled at now_ms and its lease dropped (absent or already
 *                 settled: 0 too). A settled job is never claimed again.
 */
#define GW_STORE_ERROR (-1)
#define GW_STORE_INSERTED 1
#define GW_STORE_CONFLICT 3
#define GW_STORE_LOOKUP_MAX 1024	/* ids of one owner_lookup (lists are asked in slices) */
#define GW_STORE_LEASE_MAX 96		/* bytes of a lease holder: the instance id */
#define GW_STORE_CLAIM_MAX 256		/* jobs of one job_claim (the follower loads in batches) */
#define GW_STORE_SETTLE_BACKFILL_MS (24LL * 3600 * 1000)	/* see job_claim */

/* One job of a job_claim answer. */
struct gw_store_job {
	char rid[GW_STORE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
	int64_t created_ms;			/* when the owner row was written (wall clock) */
};

struct gw_idem {
	uint8_t fp[32];			/* request fingerprint (SHA-256) */
	int done;			/* 0 PENDING, 1 DONE */
	char rid[GW_STORE_RID_MAX + 1];	/* DONE: the job; "" while PENDING */
	char source[GW_STORE_SOURCE_MAX + 1];
	int64_t created_ms;
	char lease[GW_STORE_LEASE_MAX + 1];	/* PENDING: the instance working on it; "" = nobody */
	int64_t lease_until_ms;		/* wall clock; the lease is void after it */
};

struct gw_hook;
struct gw_sess;
struct gw_usage_row;
struct gw_usage_sum;
struct gw_outbox_row;
struct gw_outbox_depth;
struct gw_store_res {
	int rc;
	const char *err;		/* rc == GW_STORE_ERROR: why (never NULL then) */
	long retry_ms;			/* rc == GW_STORE_ERROR: > 0 when a retry after it may work */
	const char *const *tenants;	/* owner_lookup */
	const struct gw_idem *idem;	/* idem_begin, rc 0 */
	long count;			/* idem_renew, idem_count, idem_expire; job_claim, job_renew;
					 * hook ops (below) */
	const struct gw_store_job *jobs;	/* job_claim: count of them */
	const struct gw_hook *hooks;	/* GW_HOOK_GET (1), GW_HOOK_LIST (count) */
	const struct gw_outbox_row *rows;	/* GW_OUTBOX_CLAIM (count) */
	const struct gw_outbox_depth *depths;	/* GW_OUTBOX_DEPTH (count) */
	const struct gw_sess *sess;		/* GW_SESS_GET, rc 0 */
	const struct gw_usage_row *usage;	/* GW_USAGE_GET (1), GW_USAGE_LIST (count) */
	const struct gw_usage_sum *usage_sums;	/* GW_USAGE_RESERVE (1), _SUM, _CHARGED (count) */
};
typedef void (*gw_store_done_fn)(void *arg, const struct gw_store_res *res);

void gw_store_owner_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
			int64_t now_ms, gw_store_done_fn done, void *arg);
/* ids are copied: they need not outlive the call. */
void gw_store_owner_lookup(struct gw_store *s, enum gw_store_kind k, const char *const *ids, size_t n,
			   gw_store_done_fn done, void *arg);
void gw_store_owner_del(struct gw_store *s, enum gw_store_kind k, const char *id,
			gw_store_done_fn done, void *arg);
/*
 * The owner of (k, id) when the front can tell at once, without an operation: from the owner
 * cache (what a lookup would answer from it, counted in owner_cache_hits) or from a backend that
 * is a table in this process's memory (counted in ops). 1: *tenant is the owner (valid until the
 * next call into the store) or NULL when unrecorded; 0: it cannot tell now (ask with
 * gw_store_owner_lookup, which fills the cache). The polling case (every GetStatus asks about
 * the same rids) is answered this way without allocating or a callback.
 */
int gw_store_owner_peek(struct gw_store *s, enum gw_store_kind k, const char *id, const char **tenant);
void gw_store_idem_begin(struct gw_store *s, const char *tenant, const char *key, const uint8_t fp[32],
			 const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			 gw_store_done_fn done, void *arg);
void gw_store_idem_take(struct gw_store *s, const char *tenant, const char *key, const char *old_lease,
			int64_t old_until_ms, const char *lease, int64_t lease_until_ms,
			gw_store_done_fn done, void *arg);
void gw_store_idem_renew(struct gw_store *s, const char *lease, int64_t lease_until_ms,
			 gw_store_done_fn done, void *arg);
void gw_store_idem_finish(struct gw_store *s, const char *tenant, const char *key, const char *rid,
			  gw_store_done_fn done, void *arg);
void gw_store_idem_release(struct gw_store *s, const char *tenant, const char *key,
			   gw_store_done_fn done, void *arg);
void gw_store_idem_abort(struct gw_store *s, const char *tenant, const char *key,
			 gw_store_done_fn done, void *arg);
void gw_store_idem_count(struct gw_store *s, gw_store_done_fn done, void *arg);
void gw_store_idem_expire(struct gw_store *s, int64_t older_than_ms, gw_store_done_fn done, void *arg);
void gw_store_job_claim(struct gw_store *s, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			size_t max, gw_store_done_fn done, void *arg);
void gw_store_job_renew(struct gw_store *s, const char *lease, int64_t lease_until_ms,
			gw_store_done_fn done, void *arg);
void gw_store_job_settle(struct gw_store *s, const char *rid, int64_t now_ms, gw_store_done_fn done,
			 void *arg);

/*
 * Tenant webhook subscriptions and their delivery outbox (issue 17). A subscription (hook) is
 * (tenant, id) -> url, description, events, signing secret, enabled or disabled with a reason,
 * and failing_since_ms (0 = its last delivery succeeded, or none was tried yet). An outbox row is
 * one event for one endpoint, keyed (endpoint id, rid): adding the same rid again writes nothing
 * (the job follower offers a final at least once). Rows are pending until delivered or failed,
 * then kept GW_OUTBOX_KEEP_MS for that dedup and removed by GW_OUTBOX_EXPIRE. A replica claims
 * due rows with a lease (holder, until) before delivering them, like the idempotency leases:
 * with several replicas each row is delivered by one of them at a time; a lease that ran out
 * (the replica died) makes the row claimable again.
 *
 * One entry point, gw_store_hook(), takes a request naming the operation:
 *   GW_HOOK_CREATE  hook: 0; CONFLICT the id exists; ERROR "state store is full" when the tenant
 *                   has GW_STORE_HOOKS_MAX already (counted in stats.rejected_full).
 *   GW_HOOK_GET     tenant, id: 0 and res->hooks[0]; GW_STORE_ABSENT (also another tenant's).
 *   GW_HOOK_LIST    tenant: 0, res->hooks[0..count) by created_ms, then id.
 *   GW_HOOK_UPDATE  hook: replaces url, description, events, disabled, reason, updated_ms and
 *                   failing_since_ms, and the secret when hook->secret is not ""; 0 / ABSENT.
 *   GW_HOOK_DELETE  tenant, id: the hook and its outbox rows; 0 / ABSENT.
 *   GW_HOOK_HEALTH  tenant, id, ok, now_ms, disable_after_ms, reason: ok clears failing_since;
 *                   else it is set (if 0) to now_ms, and a hook failing since
 *                   disable_after_ms or longer is disabled with reason; res->count = 1 when
 *                   this call disabled it. 0 / ABSENT.
 *   GW_OUTBOX_ADD   tenant, rid, body, now_ms: one pending row per enabled hook of tenant with
 *                   the event in its events, due now; res->count = rows written (0 again for
 *                   the same rid). 0.
 *   GW_OUTBOX_CLAIM lease, until_ms, now_ms, max (1..GW_OUTBOX_CLAIM_MAX): pending rows due by
 *                   now_ms whose lease is empty or over, oldest due first, now held by lease;
 *                   res->rows[0..count) carry their hook's url and secret. 0.
 *   GW_OUTBOX_SETTLE tenant, id (endpoint), rid, lease, state, attempts, next_ms, now_ms: if lease
 *                   still holds the row, state GW_OUTBOX_PENDING (retry at next_ms), _DELIVERED
 *                   or _FAILED, attempts recorded, lease cleared. 0, or CONFLICT (lost it).
 *   GW_OUTBOX_DEPTH pending rows per tenant: res->depths[0..count), at most GW_OUTBOX_DEPTH_MAX
 *                   tenants. 0.
 *   GW_OUTBOX_EXPIRE older_ms: settled rows created before it removed; res->count. 0.
 *   GW_HOOK_LEGACY  the upstream endpoints tenants created before issue 17 (owner rows of kind
 *                   GW_OBJ_ENDPOINT), at most GW_HOOK_LEGACY_MAX by tenant and id: res->hooks
 *                   with tenant and id only, count. 0.
 * Strings are copied by the store: req need not outlive the call.
 */
#define GW_STORE_ABSENT 2
#define GW_STORE_HOOKS_MAX 32			/* subscriptions per tenant */
#define GW_STORE_HOOK_URL_MAX 2048		/* = GW_WH_DEST_URL_MAX */
#define GW_STORE_HOOK_DESC_MAX 256
#define GW_STORE_HOOK_SECRET_MAX 64		/* "whsec_" + base64 */
#define GW_STORE_HOOK_REASON_MAX 200
#define GW_STORE_HOOK_BODY_MAX 4096		/* bytes of one event body */
#define GW_OUTBOX_CLAIM_MAX 32			/* rows of one claim */
#define GW_OUTBOX_DEPTH_MAX 256			/* tenants in one depth answer */
#define GW_HOOK_LEGACY_MAX 64			/* upstream endpoints named by one legacy answer */
#define GW_OUTBOX_KEEP_MS (7LL * 24 * 3600 * 1000)	/* settled rows kept for dedup */
#define GW_HOOK_EV_JOB_COMPLETED 1u		/* events bit: "job.completed" */

enum gw_hook_op {
	GW_HOOK_CREATE = 1, GW_HOOK_GET, GW_HOOK_LIST, GW_HOOK_UPDATE, GW_HOOK_DELETE,
	GW_HOOK_HEALTH, GW_OUTBOX_ADD, GW_OUTBOX_CLAIM, GW_OUTBOX_SETTLE, GW_OUTBOX_DEPTH,
	GW_OUTBOX_EXPIRE, GW_HOOK_LEGACY
};
enum { GW_OUTBOX_PENDING = 0, GW_OUTBOX_DELIVERED = 1, GW_OUTBOX_FAILED = 2 };

struct gw_hook {
	char tenant[GW_STORE_TENANT_MAX + 1];
	char id[GW_STORE_ID_MAX + 1];
	char url[GW_STORE_HOOK_URL_MAX + 1];
	char description[GW_STORE_HOOK_DESC_MAX + 1];
	char secret[GW_STORE_HOOK_SECRET_MAX + 1];
	unsigned events;			/* GW_HOOK_EV_* bits */
	int disabled;
	char reason[GW_STORE_HOOK_REASON_MAX + 1];	/* why disabled; "" when enabled */
	int64_t created_ms, updated_ms;
	int64_t failing_since_ms;
};

struct gw_outbox_row {
	char tenant[GW_STORE_TENANT_MAX + 1];
	char endpoint[GW_STORE_ID_MAX + 1];
	char rid[GW_STORE_ID_MAX + 1];
	char body[GW_STORE_HOOK_BODY_MAX + 1];
	int attempts;
	int64_t created_ms, next_ms;
	char url[GW_STORE_HOOK_URL_MAX + 1];	/* the hook's, at claim time */
	char secret[GW_STORE_HOOK_SECRET_MAX + 1];
};

struct gw_outbox_depth {
	char tenant[GW_STORE_TENANT_MAX + 1];
	long pending;
};

struct gw_hook_req {
	enum gw_hook_op op;
	const struct gw_hook *hook;		/* CREATE, UPDATE */
	const char *tenant, *id, *rid, *body, *lease, *reason;
	int ok, state, attempts;
	unsigned event;				/* OUTBOX_ADD: GW_HOOK_EV_* of the event */
	int64_t now_ms, until_ms, next_ms, older_ms, disable_after_ms;
	size_t max;
};

void gw_store_hook(struct gw_store *s, const struct gw_hook_req *req, gw_store_done_fn done,
		   void *arg);

/*
 * REST facade sessions (issue 18, gateway/rest_sess.h): the SHA-256 of a `dmsess` token ->
 * tenant, the SHA-256 of the API key it was opened with, created_ms and expires_ms (wall clock).
 * Never the token: neither the store nor a copy of it can open a session. On PostgreSQL every
 * replica sees every session; in the SQLite file they outlive a restart.
 *
 * One entry point, gw_store_sess(), takes a request naming the operation:
 *   GW_SESS_PUT     token, key, tenant, now_ms, expires_ms: 0; CONFLICT the token's hash exists
 *                   (never overwritten); ERROR "state store is full" when the tenant has
 *                   GW_STORE_SESS_TENANT_MAX sessions unexpired at now_ms (stats.rejected_full).
 *   GW_SESS_GET     token, now_ms: 0 and res->sess; GW_STORE_ABSENT when unknown or expired at
 *                   now_ms (an expired row is left to GW_SESS_EXPIRE).
 *   GW_SESS_DEL     token: 0 (removed or absent).
 *   GW_SESS_REVOKE  key: every session opened with that key removed; 0, res->count.
 *   GW_SESS_EXPIRE  now_ms, max (1..GW_STORE_SESS_EXPIRE_MAX): at most max sessions expired at
 *                   now_ms removed; 0, res->count. Bounded work per call: a backlog goes in
 *                   several calls.
 * GET is a read; the others are writes (refused on a read-only store). req need not outlive the
 * call.
 */
#define GW_STORE_SESS_TENANT_MAX 10000		/* unexpired sessions of one tenant */
#define GW_STORE_SESS_EXPIRE_MAX 1000		/* rows one GW_SESS_EXPIRE removes at most */

enum gw_sess_op { GW_SESS_PUT = 1, GW_SESS_GET, GW_SESS_DEL, GW_SESS_REVOKE, GW_SESS_EXPIRE };

struct gw_sess {
	uint8_t key_sha256[32];
	char tenant[GW_STORE_TENANT_MAX + 1];
	int64_t created_ms, expires_ms;
};

struct gw_sess_req {
	enum gw_sess_op op;
	const uint8_t *token_sha256;		/* 32 bytes: PUT, GET, DEL */
	const uint8_t *key_sha256;		/* 32 bytes: PUT, REVOKE */
	const char *tenant;			/* PUT */
	int64_t now_ms, expires_ms;
	size_t max;				/* EXPIRE */
};

void gw_store_sess(struct gw_store *s, const struct gw_sess_req *req, gw_store_done_fn done,
		   void *arg);

/*
 * The usage ledger (issue 22, gateway/svc/budget.h): one row per job the gateway started or
 * tried to start, keyed by a reservation id the caller makes up (GW_USAGE_ID_MAX bytes), with
 * the tenant, the rid once upstream answered, the seconds reserved and then charged, the input's
 * duration (input_ms, -1 unknown), what changes the cost upstream (persons, face, hand: recorded
 * facts), the source ("url", "rerun:<rid>", "mp:<rid>"), state and start / end times (wall ms).
 * "counted" is what the row weighs against its tenant's budget: the seconds while reserved or
 * running, the charge once settled, 0 once released. A reservation whose StartJob never said
 * how it ended (its process died) stops counting GW_USAGE_RESERVE_STALE_MS after it was made.
 * On PostgreSQL every replica shares the ledger; in the SQLite file it outlives a restart.
 *
 * One entry point, gw_store_usage(), takes a request naming the operation:
 *   GW_USAGE_RESERVE  row (id, tenant, seconds, input_ms, persons, face, hand, source,
 *                     started_ms), limit_s (< 0: none), from_ms: in one atomic step, the
 *                     tenant's counted seconds of rows started since from_ms (used) are read and,
 *                     when limit_s < 0 or used + seconds <= limit_s, the row is inserted as
 *                     RESERVED with counted = seconds. 0 inserted; GW_STORE_CONFLICT refused (or
 *                     the id exists). Both answer res->usage_sums[0]: seconds = used before this
 *                     row, oldest_ms = the oldest counted row's start (0 when none). Concurrent
 *                     reservations of one tenant never pass the limit together, across
 *                     replicas too (PostgreSQL: a transaction lock per tenant).
 *   GW_USAGE_START    id, rid: RESERVED -> RUNNING with rid. 0; GW_STORE_ABSENT.
 *   GW_USAGE_RELEASE  id, now_ms: RESERVED -> RELEASED, counted 0, ended now (StartJob failed
 *                     upstream). 0 (absent or not RESERVED: nothing changes).
 *   GW_USAGE_SETTLE   rid, ok, count_failed, now_ms: every RUNNING row of rid -> SUCCEEDED
 *                     (counted = seconds) when ok, else FAILED (counted = seconds with
 *                     count_failed, else 0); ended now. 0, res->count = rows settled (0 again
 *                     for the same rid: idempotent).
 *   GW_USAGE_GET      tenant, rid: the tenant's latest row of rid that is not RELEASED (a rerun's
 *                     or a multi-person run's source). 0 and res->usage[0]; GW_STORE_ABSENT.
 *   GW_USAGE_SUM      tenant (NULL: every tenant), from_ms, to_ms, now_ms: per tenant, rows
 *                     started in [from_ms, to_ms): seconds = counted (stale reservations at
 *                     now_ms left out), jobs[] = rows by state, oldest_ms. 0, res->usage_sums
 *                     [0..count), at most GW_USAGE_SUMS_MAX tenants, by tenant.
 *   GW_USAGE_CHARGED  tenant (NULL: every tenant), from_ms, to_ms: per tenant, the counted
 *                     seconds of rows settled (SUCCEEDED or FAILED) with ended_ms in
 *                     [from_ms, to_ms), and jobs[] by state. Same answer as SUM. (What upstream
 *                     charged through the gateway: the reconciliation's side of the comparison.)
 *   GW_USAGE_REFOLLOW rid: the job's ownership row is unsettled again (lease dropped), so that
 *                     the job follower follows the job's new run to its final: a multi-person
 *                     run reuses its detection job's rid, which was settled at the detection's
 *                     end. 0, res->count = 1 when it was settled (0: absent or still followed).
 *   GW_USAGE_LIST     from_ms, to_ms, after, max (1..GW_USAGE_LIST_MAX): rows with started_ms in
 *                     [from_ms, to_ms) ordered by (started_ms, id), after the row (from_ms,
 *                     after) when after is not "" (a page: pass the last row's started_ms and
 *                     id). 0, res->usage[0..count).
 * RESERVE, START, RELEASE, SETTLE and REFOLLOW are writes (refused on a read-only store). req
 * need not outlive the call.
 */
#define GW_USAGE_ID_MAX 40			/* bytes of a reservation id */
#define GW_USAGE_SOURCE_MAX (8 + GW_STORE_ID_MAX)	/* "rerun:" + rid */
#define GW_USAGE_SUMS_MAX 1024			/* tenants of one SUM / CHARGED answer */
#define GW_USAGE_LIST_MAX 1000			/* rows of one LIST page */
#define GW_USAGE_RESERVE_STALE_MS (15LL * 60 * 1000)	/* an unended reservation's life */

enum gw_usage_op { GW_USAGE_RESERVE = 1, GW_USAGE_START, GW_USAGE_RELEASE, GW_USAGE_SETTLE,
		   GW_USAGE_GET, GW_USAGE_SUM, GW_USAGE_CHARGED, GW_USAGE_LIST, GW_USAGE_REFOLLOW };
enum gw_usage_state { GW_USAGE_RESERVED = 0, GW_USAGE_RUNNING = 1, GW_USAGE_SUCCEEDED = 2,
		      GW_USAGE_FAILED = 3, GW_USAGE_RELEASED = 4, GW_USAGE_NSTATES = 5 };

struct gw_usage_row {
	char id[GW_USAGE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
	char rid[GW_STORE_ID_MAX + 1];		/* "" until upstream answered */
	int state;				/* enum gw_usage_state */
	int64_t seconds;			/* reserved, then charged (whole seconds) */
	int64_t counted;			/* against the budget now */
	int64_t input_ms;			/* the input's duration; -1 unknown */
	int persons, face, hand;		/* persons tracked (0 unknown), face/hand tracking */
	char source[GW_USAGE_SOURCE_MAX + 1];
	int64_t started_ms, ended_ms;		/* ended 0 while reserved or running */
};

struct gw_usage_sum {
	char tenant[GW_STORE_TENANT_MAX + 1];
	int64_t seconds;
	long jobs[GW_USAGE_NSTATES];
	int64_t oldest_ms;			/* the oldest counted row's start; 0 none */
};

struct gw_usage_req {
	enum gw_usage_op op;
	const struct gw_usage_row *row;		/* RESERVE */
	const char *id, *rid, *tenant, *after;
	int ok, count_failed;			/* SETTLE */
	int64_t limit_s, from_ms, to_ms, now_ms;
	size_t max;				/* LIST */
};

void gw_store_usage(struct gw_store *s, const struct gw_usage_req *req, gw_store_done_fn done,
		    void *arg);

/* ---- Backend side: used by store.c and the store_*.c backends only. ---- */

/*
 * Arguments reach a backend already validated (lengths, kind, read-only), and each op ends with
 * done(arg, res) exactly once, inline or later from the loop, with the rc values above; besides,
 * GW_STORE_FULL for a memory backend at its limit. res->err is the backend's own reason (the
 * front prefixes "state store: "). Backends may complete inline only if they never block for
 * long (SQLite on a local disk: one fsync).
 */
#define GW_STORE_FULL 4
struct gw_pg_stats;
struct gw_idem;
struct gw_store_ops {
	const char *name;
	int shared;		/* other processes write too: only positive owner answers are cached */
	void (*close)(void *impl);
	/* NULL when the backend can take calls; else why not, in one line (for /readyz) */
	const char *(*unready)(void *impl);
	const struct gw_pg_stats *(*pg_stats)(void *impl);	/* NULL for in-process backends */
	void (*owner_put)(void *impl, int k, const char *id, const char *tenant, int64_t now_ms,
			  gw_store_done_fn done, void *arg);
	void (*owner_lookup)(void *impl, int k, const char *const *ids, size_t n,
			     gw_store_done_fn done, void *arg);
	void (*owner_del)(void *impl, int k, const char *id, gw_store_done_fn done, void *arg);
	void (*idem_begin)(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			   const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			   gw_store_done_fn done, void *arg);
	void (*idem_take)(void *impl, const char *tenant, const char *key, const char *old_lease,
			  int64_t old_until_ms, const char *lease, int64_t lease_until_ms,
			  gw_store_done_fn done, void *arg);
	void (*idem_renew)(void *impl, const char *lease, int64_t lease_until_ms, gw_store_done_fn done,
			   void *arg);
	void (*idem_finish)(void *impl, const char *tenant, const char *key, const char *rid,
			    gw_store_done_fn done, void *arg);
	void (*idem_release)(void *impl, const char *tenant, const char *key, gw_store_done_fn done,
			     void *arg);
	void (*idem_abort)(void *impl, const char *tenant, const char *key, gw_store_done_fn done,
			   void *arg);
	void (*idem_count)(void *impl, gw_store_done_fn done, void *arg);
	void (*idem_expire)(void *impl, int64_t older_than_ms, gw_store_done_fn done, void *arg);
	void (*hook)(void *impl, const struct gw_hook_req *req, gw_store_done_fn done, void *arg);
	void (*job_claim)(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  size_t max, gw_store_done_fn done, void *arg);
	void (*job_renew)(void *impl, const char *lease, int64_t lease_until_ms, gw_store_done_fn done,
			  void *arg);
	void (*job_settle)(void *impl, const char *rid, int64_t now_ms, gw_store_done_fn done,
			   void *arg);
	/* REST facade sessions; NULL: the backend keeps none (refused, counted) */
	void (*sess)(void *impl, const struct gw_sess_req *req, gw_store_done_fn done, void *arg);
	/* the usage ledger; NULL: the backend keeps none (refused, counted) */
	void (*usage)(void *impl, const struct gw_usage_req *req, gw_store_done_fn done, void *arg);
};

/*
 * In-process backends (SQLite, memory) are written synchronously: each op returns at once with
 * GW_STORE_B_OK / _EXISTS (idem_begin: the key exists, *existing filled) / _ABSENT / _CONFLICT /
 * _FULL / _ERR (reason in errmsg(impl)); renew, count and expire return a count or _ERR.
 * gw_store_inline_wrap() turns one into a struct gw_store_ops that completes inline. Their
 * process is the only writer, so a lease is only kept where it is cheap (memory); SQLite answers
 * PENDING keys with no lease, and take always succeeds.
 */
enum {
	GW_STORE_B_OK = 0,
	GW_STORE_B_EXISTS = 1,
	GW_STORE_B_ABSENT = 2,
	GW_STORE_B_CONFLICT = 3,
	GW_STORE_B_FULL = 4,
	GW_STORE_B_ERR = -1
};
struct gw_hook_out {
	long count;
	struct gw_hook *hooks;
	struct gw_outbox_row *rows;
	struct gw_outbox_depth *depths;
};
struct gw_usage_out {
	long count;
	struct gw_usage_row *rows;
	struct gw_usage_sum *sums;
};
struct gw_store_sync_ops {
	const char *name;
	void (*close)(void *impl);
	const char *(*errmsg)(void *impl);
	int (*owner_put)(void *impl, int k, const char *id, const char *tenant, int64_t now_ms);
	int (*owner_get)(void *impl, int k, const char *id, char *tenant, size_t tenantlen);
	/* Optional (memory): B_OK with *tenant pointing at the row's owner, or B_ABSENT; no copy. */
	int (*owner_peek)(void *impl, int k, const char *id, const char **tenant);
	int (*owner_del)(void *impl, int k, const char *id);
	int (*idem_begin)(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			  const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			  struct gw_idem *existing);
	int (*idem_take)(void *impl, const char *tenant, const char *key, const char *old_lease,
			 int64_t old_until_ms, const char *lease, int64_t lease_until_ms);
	long (*idem_renew)(void *impl, const char *lease, int64_t lease_until_ms);
	int (*idem_finish)(void *impl, const char *tenant, const char *key, const char *rid);
	int (*idem_release)(void *impl, const char *tenant, const char *key);
	int (*idem_abort)(void *impl, const char *tenant, const char *key);
	long (*idem_count)(void *impl);
	long (*idem_expire)(void *impl, int64_t older_than_ms);
	/* GW_STORE_B_OK / _ABSENT / _CONFLICT / _FULL / _ERR; out->count and the arrays, which
	 * the backend mallocs and the adapter frees after done */
	int (*hook)(void *impl, const struct gw_hook_req *req, struct gw_hook_out *out);
	/* job_claim fills out[0..max) and returns how many; job_renew a count; settle B_OK */
	long (*job_claim)(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  struct gw_store_job *out, size_t max);
	long (*job_renew)(void *impl, const char *lease, int64_t lease_until_ms);
	int (*job_settle)(void *impl, const char *rid, int64_t now_ms);
	/* GW_STORE_B_OK (GET: *out filled) / _ABSENT / _CONFLICT / _FULL / _ERR; *count for
	 * REVOKE and EXPIRE. NULL: no sessions. */
	int (*sess)(void *impl, const struct gw_sess_req *req, struct gw_sess *out, long *count);
	/* GW_STORE_B_OK / _ABSENT / _CONFLICT / _FULL / _ERR; out->count and the arrays (malloc'd
	 * by the backend, freed by the adapter after done). RESERVE answers one sum on OK and
	 * CONFLICT alike. NULL: no ledger. */
	int (*usage)(void *impl, const struct gw_usage_req *req, struct gw_usage_out *out);
};
/* Returns the adapter's impl (owning impl: closing it closes impl) and sets *ops; NULL when out
 * of memory (impl is then closed). */
void *gw_store_inline_wrap(void *impl, const struct gw_store_sync_ops *sops,
			   const struct gw_store_ops **ops);

/* Backend constructors: return the impl pointer and set *ops, or NULL with err filled. */
void *gw_store_sqlite_open(const char *path, int read_only, const struct gw_store_sync_ops **ops,
			   char *err, size_t errlen);
void *gw_store_mem_open(size_t max_entries, const struct gw_store_sync_ops **ops);
/*
 * PostgreSQL (gateway/state/store_pg.c): connects (blocking), migrates under an advisory lock,
 * then runs a pool on base; NULL with one line in err naming host:port/db, never the password.
 * Its close frees the pool and drops unanswered operations without done(): close only once the
 * loop has stopped.
 */
void *gw_store_pg_backend_open(struct event_base *base, const struct gw_pg_opts *o,
			       const struct gw_store_ops **ops, char *err, size_t errlen);

#endif
