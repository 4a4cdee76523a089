/*
 * store: the gateway's durable state behind one small interface, so that handlers never know
 * which backend holds it: who owns each job / model / webhook endpoint / upload (kind, id) ->
 * tenant, and StartJob idempotency keys (tenant, key) -> {request fingerprint, PENDING|DONE, rid}.
 *
 * Backends (chosen by gw_store_open):
 *   - SQLite, WAL journal (gateway/state/store_sqlite.c): the embedded default, one local file.
 *   - memory (gateway/state/store_mem.c): hash tables, lost at exit; for "state: memory: true" and tests.
 *   - Redis, for several replicas, plugs in later as one more struct gw_store_ops.
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
 * Threading and latency: every call is synchronous and runs on the loop thread. The SQLite file
 * must be on a local disk: a write costs one fsync (typically 0.1-2 ms on SSD, up to ~10 ms on
 * spinning disks), a read is a cached B-tree lookup (microseconds). There is no network
 * round trip here; a network backend (Redis) must be asynchronous and gets its own interface.
 * Calls slower than GW_STORE_SLOW_US are counted in stats.slow_ops.
 *
 * Strings: every id, tenant, key and source is 1..its limit bytes, with no NUL inside; longer,
 * empty or NULL arguments are rejected (-1, counted in stats.rejected_args) and never truncated.
 * Timestamps (now_ms, created_ms) are wall-clock milliseconds since the epoch: they must mean
 * the same after a restart.
 *
 * Errors: -1 from any call; gw_store_errmsg() then says why in one line suitable for an
 * UNAVAILABLE status ("state store is read-only", "state store: disk I/O error"). Messages name
 * no tenant, key or id, and the store never sees a secret (sources are stored without their query).
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
#define GW_STORE_SCHEMA_VERSION 1	/* SQLite schema this build writes; newer files are refused */
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
/* Memory backend with an explicit row limit (0 = GW_STORE_MEM_MAX_ENTRIES); for tests. */
struct gw_store *gw_store_open_mem(size_t max_entries, int read_only);
void gw_store_close(struct gw_store *s);	/* NULL is a no-op */

const struct gw_store_stats *gw_store_stats(const struct gw_store *s);
const char *gw_store_errmsg(const struct gw_store *s);	/* last failure; "" when none */
int gw_store_read_only(const struct gw_store *s);
const char *gw_store_backend(const struct gw_store *s);	/* "sqlite" | "memory" */

/*
 * Owner cache (SQLite, writable stores only): every ownership check of a GetStatus is an
 * owner_get, so the answers (found or absent) of the last GW_STORE_OWNER_CACHE (kind, id) pairs
 * are kept in a direct-mapped table in front of the backend. It stays exact because every owner
 * row is written through this store and the file is held exclusively (no other writer): put and
 * del forget the pair, a successful put remembers its tenant. Reads only; writes always reach
 * the backend. Bounded: one small allocation per slot.
 *
 * Ownership: (kind, id) -> tenant.
 * put: 0 recorded (or already recorded for the same tenant: idempotent); -1 when another tenant
 *      owns id (ownership is never overwritten; stats.owner_conflicts) or on error.
 * get: 1 found (tenant copied, NUL-terminated; -1 if tenantlen is too small), 0 absent, -1 error.
 * del: 0 (removed or absent), -1 error.
 * each: calls cb(arg, id) for every id of kind owned by tenant, in id order (SQLite) or no
 *      particular order (memory); cb returns non-zero to stop. Returns 0, or -1 on error (cb may
 *      have run for some ids). cb must not call the store. The id is valid during cb only.
 */
int gw_store_owner_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
		       int64_t now_ms);
int gw_store_owner_get(struct gw_store *s, enum gw_store_kind k, const char *id, char *tenant,
		       size_t tenantlen);
int gw_store_owner_del(struct gw_store *s, enum gw_store_kind k, const char *id);
int gw_store_owner_each(struct gw_store *s, enum gw_store_kind k, const char *tenant,
			int (*cb)(void *arg, const char *id), void *arg);

/*
 * Idempotency keys: (tenant, key) -> entry. source is what the job was started from (an upload
 * URL without its query, "rerun:<rid>", "mp:<rid>"; see gateway/state/owner.h), 1..GW_STORE_SOURCE_MAX.
 * begin:   inserts {fp, PENDING, source, now_ms} if absent: 1 inserted, 0 existed (*existing
 *          filled when existing is not NULL), -1 error.
 * finish:  PENDING -> DONE with rid: 0; already DONE with the same rid: 0; absent or DONE with
 *          another rid: -1 (stats.idem_conflicts).
 * abort:   removes the key if it is PENDING (upstream refused the job): 0, also when absent;
 *          a DONE key is kept (0). -1 on error.
 * pending: cb for every PENDING entry, oldest first (restart reconciliation); cb returns non-zero
 *          to stop and must not call the store. 0, or -1 on error.
 * expire:  removes every key (PENDING or DONE) created before older_than_ms; returns how many, or -1.
 */
struct gw_idem {
	uint8_t fp[32];			/* request fingerprint (SHA-256) */
	int done;			/* 0 PENDING, 1 DONE */
	char rid[GW_STORE_RID_MAX + 1];	/* DONE: the job; "" while PENDING */
	char source[GW_STORE_SOURCE_MAX + 1];
	int64_t created_ms;
};
int gw_store_idem_begin(struct gw_store *s, const char *tenant, const char *key, const uint8_t fp[32],
			const char *source, int64_t now_ms, struct gw_idem *existing);
int gw_store_idem_finish(struct gw_store *s, const char *tenant, const char *key, const char *rid);
int gw_store_idem_abort(struct gw_store *s, const char *tenant, const char *key);
int gw_store_idem_pending(struct gw_store *s,
			  int (*cb)(void *arg, const char *tenant, const char *key,
				    const struct gw_idem *e),
			  void *arg);
int gw_store_idem_expire(struct gw_store *s, int64_t older_than_ms);

/* ---- Backend side: used by store.c, store_sqlite.c and store_mem.c only. ---- */

/*
 * Arguments reach a backend already validated (lengths, kind, read-only). Return codes:
 * GW_STORE_B_OK / GW_STORE_B_ABSENT / GW_STORE_B_EXISTS as documented per op, GW_STORE_B_CONFLICT
 * (owner of another tenant, idem finish mismatch), GW_STORE_B_FULL (memory limit), GW_STORE_B_ERR
 * (with the reason in errmsg(impl)). expire returns the count (>= 0) or GW_STORE_B_ERR.
 */
enum {
	GW_STORE_B_OK = 0,
	GW_STORE_B_EXISTS = 1,
	GW_STORE_B_ABSENT = 2,
	GW_STORE_B_CONFLICT = 3,
	GW_STORE_B_FULL = 4,
	GW_STORE_B_ERR = -1
};
struct gw_store_ops {
	const char *name;
	void (*close)(void *impl);
	const char *(*errmsg)(void *impl);
	int (*owner_put)(void *impl, int k, const char *id, const char *tenant, int64_t now_ms);
	int (*owner_get)(void *impl, int k, const char *id, char *tenant, size_t tenantlen);
	int (*owner_del)(void *impl, int k, const char *id);
	int (*owner_each)(void *impl, int k, const char *tenant,
			  int (*cb)(void *arg, const char *id), void *arg);
	int (*idem_begin)(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			  const char *source, int64_t now_ms, struct gw_idem *existing);
	int (*idem_finish)(void *impl, const char *tenant, const char *key, const char *rid);
	int (*idem_abort)(void *impl, const char *tenant, const char *key);
	int (*idem_pending)(void *impl,
			    int (*cb)(void *arg, const char *tenant, const char *key,
				      const struct gw_idem *e),
			    void *arg);
	long (*idem_expire)(void *impl, int64_t older_than_ms);
};

/* Backend constructors: return the impl pointer and set *ops, or NULL with err filled. */
void *gw_store_sqlite_open(const char *path, int read_only, const struct gw_store_ops **ops,
			   char *err, size_t errlen);
void *gw_store_mem_open(size_t max_entries, const struct gw_store_ops **ops);

#endif
