/*
 * climit: cluster-wide token buckets in Redis, spent locally through leases.
 *
 * One bucket per key (a tenant: "rl:t:<name>") lives in Redis as a hash {t: tokens, ts: time of
 * the last refill in microseconds}, updated atomically by one Lua script (GW_CLIMIT_LUA) that
 * reads the server's clock (redis.call('TIME')), so the replicas' clocks do not matter. A key
 * that is absent is a full bucket; the script lets a bucket expire once it would be full again.
 *
 * Leases keep the hot path off Redis. A replica takes a small batch of tokens (the lease, see
 * gw_climit_lease_size) from the shared bucket and spends them locally, without a round trip.
 * - When its local tokens fall below half a lease after a call, it asks for the next lease in
 *   the background (prefetch), so a steady flow of calls seldom finds the lease empty.
 * - A call that finds the lease short while a refill is in flight is admitted on credit as long
 *   as the replica's debt stays within one lease (the overdraft); the next refill pays the debt
 *   back first. Beyond that, a caller that passes a gw_climit_wait (gw_climit_take_wait) is
 *   parked on the entry (a FIFO of at most GW_CLIMIT_MAX_PARKED, asynchronously: the loop never
 *   waits for Redis) and resumed in order when the refill answers, taking tokens then as any
 *   call does (allowed, refused with the script's delay, or a fallback); calls still short then
 *   stay parked for the next refill, which asks for their tokens too. A parked call whose wait
 *   limit (gw_climit_wait_limit: the Redis command timeout, or the call's own deadline if
 *   sooner) has passed when a refill answers falls back instead (counted); every refill answers
 *   within the command timeout. Without a gw_climit_wait, or with the FIFO full, the call is
 *   refused with a short retry delay (the time the tenant's rate takes to earn its cost).
 * - When the script refuses (the shared bucket is empty), its answer says when enough tokens
 *   will be there; until then the replica refuses locally with that delay, without asking.
 * Accuracy: tokens a replica holds were taken from the shared bucket (paid for), so the only
 * admissions not covered by the shared bucket are the overdraft: a tenant is never admitted
 * more than its limit plus one lease per replica (a lease being max(lim.lease, the dearest call
 * admitted on credit)), over any window since its bucket was full.
 *
 * Fallback: with no client, the client not connected, or a refill that failed within the last
 * GW_CLIMIT_FAIL_HOLD_MS, gw_climit_take answers GW_CLIMIT_FALLBACK and the caller decides
 * against its own local bucket (gateway/call/admit.c: limit / cluster.expected_replicas); each
 * such decision is counted. Once the client is connected again the shared buckets are used
 * again, with no action from anyone. Local leases and debts are forgotten on a fallback (a
 * restarted Redis has forgotten its buckets too).
 *
 * Keys: an entry per key name, created by gw_climit_entry and kept until gw_climit_free (at most
 * GW_CLIMIT_MAX_KEYS; a reload that renames tenants adds entries, bounded by that). Key names
 * are prefixed by the client's key_prefix.
 *
 * Threading: the loop that owns the Redis client; nothing blocks.
 */
#ifndef A3D_GATEWAY_CLIMIT_H
#define A3D_GATEWAY_CLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define GW_CLIMIT_MAX_KEYS 4096		/* entries (tenants, accounts) per climit */
#define GW_CLIMIT_NAME_MAX 200		/* bytes of a key name before the prefix */
#define GW_CLIMIT_LEASE_SHARE 4		/* a lease is at most burst / (4 * replicas) ... */
#define GW_CLIMIT_LEASE_SECONDS 0.1	/* ... and at most 100 ms of the rate */
#define GW_CLIMIT_FAIL_HOLD_MS 1000	/* after a failed refill: the key falls back this long */
#define GW_CLIMIT_MAX_WAIT_MS 60000	/* a retry delay is capped to this */
#define GW_CLIMIT_MAX_PARKED 1024	/* calls parked on one entry for its refill */
#define GW_CLIMIT_DEFAULT_PARK_MS 500	/* a parked call's wait limit until gw_climit_wait_limit */

/* The Lua script, for tests and docs: KEYS[1] the bucket; ARGV rate (tokens/s, > 0), burst
 * (tokens), want, need (tokens, need <= want). Grants min(want, whole tokens) when at least need
 * tokens are there, else nothing. Returns {granted, wait_ms, level}: wait_ms 0 when granted, the
 * milliseconds until need tokens will be there when not, -1 when need > burst (never). */
extern const char GW_CLIMIT_LUA[];

struct gw_redis;
struct gw_metrics_out;
struct gw_climit;
struct gw_climit_entry;

/* One key's limit, as the caller's configuration says (the cluster-wide figures). */
struct gw_climit_limit {
	double rate;		/* tokens per second; <= 0: unlimited (always allowed, no Redis) */
	double burst;		/* tokens */
	unsigned lease;		/* tokens per lease (gw_climit_lease_size), >= 1; a call dearer
				 * than that takes a lease of its own cost */
};

enum gw_climit_rc {
	GW_CLIMIT_REFUSE = 0,	/* refused: *wait_ms until it may pass, -1 never (cost > burst) */
	GW_CLIMIT_ALLOW = 1,
	GW_CLIMIT_FALLBACK = 2,	/* no shared decision possible: decide locally (counted) */
	GW_CLIMIT_PENDING = 3,	/* parked: the gw_climit_wait's fn will tell (gw_climit_take_wait) */
};

/*
 * A call parked for a refill, owned by the caller (kept alive until fn ran or gw_climit_cancel).
 * The caller sets fn and arg; the rest is climit's.
 */
struct gw_climit_wait {
	/* Runs once, from the refill's answer: rc GW_CLIMIT_ALLOW, GW_CLIMIT_REFUSE with wait_ms
	 * (as gw_climit_take), or GW_CLIMIT_FALLBACK (decide locally). w may be reused or freed. */
	void (*fn)(struct gw_climit_wait *w, int rc, int64_t wait_ms);
	void *arg;
	struct gw_climit *c;
	struct gw_climit_entry *e;	/* parked on; NULL when not parked */
	struct gw_climit_wait *prev, *next;
	unsigned cost;
	int64_t until_ms;		/* past this when a refill answers: a fallback */
};

struct gw_climit_stats {
	uint64_t shared;	/* decisions made on the shared bucket (allowed or refused) */
	uint64_t fallback;	/* decisions left to the local bucket */
	uint64_t refills;	/* lease requests sent (EVALSHA) */
	uint64_t refill_granted;	/* tokens granted by them */
	uint64_t refill_refused;	/* requests answered "empty" */
	uint64_t refill_failed;	/* requests that failed (timeout, connection lost, server error) */
	uint64_t overdraft;	/* calls admitted on credit while a refill was in flight */
	uint64_t busy_refused;	/* calls refused because the lease and the overdraft were spent */
	uint64_t no_entry;	/* keys past GW_CLIMIT_MAX_KEYS or out of memory (fallback) */
	uint64_t parked;	/* calls parked for a refill instead of busy_refused */
	uint64_t resumed;	/* parked calls decided when a refill answered */
	uint64_t park_timeout;	/* parked calls past their wait limit: fell back */
	uint64_t park_overflow;	/* calls not parked, the FIFO full (also busy_refused) */
	uint64_t park_cancelled;	/* parked calls that left before an answer */
	unsigned shared_mode;	/* gauge: 1 when the last decision was a shared one */
};

/*
 * Pure: the tokens of one lease for a limit of rate/s and burst shared by `replicas`, a call
 * costing at most max_cost: max(max_cost, min(burst / (4 * replicas), rate * 0.1)), rounded
 * down, at least 1 and at most max(burst, max_cost). 0 when rate <= 0 (unlimited).
 */
unsigned gw_climit_lease_size(double rate, double burst, unsigned replicas, unsigned max_cost);

/*
 * Pure: milliseconds until `need` tokens are there in a bucket holding `tokens` and refilling at
 * rate/s: 0 when they are, -1 when need > burst or rate <= 0 with too few, else
 * ceil((need - tokens) * 1000 / rate), capped to GW_CLIMIT_MAX_WAIT_MS. The script computes the
 * same.
 */
int64_t gw_climit_pushback(double tokens, double need, double rate, double burst);

/* A climit on r (may be NULL: every decision is a fallback). NULL when memory runs out. */
struct gw_climit *gw_climit_new(struct gw_redis *r);
/*
 * Frees the entries; calls still parked are taken out unanswered (their fn never runs). Refills
 * still in flight are detached: their answers are dropped when they
 * come (the client must therefore outlive them or be freed itself, which drops them; a detached
 * record of a dropped command is then lost, a few bytes at exit). NULL is a no-op.
 */
void gw_climit_free(struct gw_climit *c);

/* The entry of key name (found or made); NULL when the table is full, the name too long or
 * empty, or memory runs out. Valid until gw_climit_free. */
struct gw_climit_entry *gw_climit_entry(struct gw_climit *c, const char *name);

/*
 * Takes cost tokens for e (NULL e: a counted fallback) under lim, now_ms being the caller's
 * monotonic clock. GW_CLIMIT_ALLOW, GW_CLIMIT_REFUSE with *wait_ms, or GW_CLIMIT_FALLBACK; see
 * the top of this file. May send a refill; never waits.
 */
int gw_climit_take(struct gw_climit *c, struct gw_climit_entry *e, const struct gw_climit_limit *lim,
		   unsigned cost, int64_t now_ms, int64_t *wait_ms);

/*
 * As gw_climit_take, but a call that would be refused because the lease and the overdraft are
 * spent while a refill is in flight is parked instead (GW_CLIMIT_PENDING): w->fn tells the
 * decision when the refill answers. max_wait_ms >= 0: the call's own deadline, if sooner than the
 * wait limit. w must stay valid until then or until gw_climit_cancel(w).
 */
int gw_climit_take_wait(struct gw_climit *c, struct gw_climit_entry *e,
			const struct gw_climit_limit *lim, unsigned cost, int64_t now_ms,
			int64_t max_wait_ms, int64_t *wait_ms, struct gw_climit_wait *w);
/* Takes w out of its FIFO (the call went away); its fn will not run. Not parked: a no-op. */
void gw_climit_cancel(struct gw_climit_wait *w);
/* How long a call may stay parked (ms, >= 1): the Redis command timeout. */
void gw_climit_wait_limit(struct gw_climit *c, long ms);

/* Whether shared decisions are possible now: a client, and it is connected. */
int gw_climit_shared(const struct gw_climit *c);
/* Tokens held locally by e (negative: its debt), whether a refill is in flight; for tests. */
int64_t gw_climit_local(const struct gw_climit_entry *e, int *inflight);
const struct gw_climit_stats *gw_climit_stats(const struct gw_climit *c);

/* A renderer for the metrics registry: cluster_limit_total{what=...}, cluster_limit_shared. */
void gw_climit_metrics(void *c, struct gw_metrics_out *o);

#endif
