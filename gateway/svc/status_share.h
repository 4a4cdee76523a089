/*
 * status_share: the job statuses the replicas share through Redis (issue 16), on the loop thread.
 *
 * - Final statuses: when this replica reads a final status (SUCCESS/FAILURE) from upstream (the
 *   status module's on_final hook), it SETs it under <prefix>st:<account>:<rid> (value: the
 *   packed JobStatus, rid included; PX final_ttl_ms) and PUBLISHes it on the channel "status"
 *   as "1\t<instance>\t<account>\t<packed JobStatus>". Every other replica's subscriber applies
 *   it (gw_status_apply): it enters the local cache (bounded, LRU) and, when the rid is tracked
 *   there, its waiters and WatchStatus streams see the final state at once, without a GET
 *   /status of their own. A webhook delivered to any replica leads
 *   there: its refresh reads the final status, which is then published. Messages hold a job's
 *   status, never a cookie, token or signed URL. Own messages are ignored.
 * - Lookups: a replica missing rids locally asks Redis (one MGET) before polling upstream;
 *   the finals found are applied to the local cache (memory stays the first level).
 * - Redis unreachable: nothing is shared (each replica polls upstream as alone), every such
 *   fallback counted; when the client reconnects, sharing resumes by itself. Messages published
 *   while the pub/sub connection was down are lost (pub/sub is at most once): the watchers'
 *   polling every TTL still brings those final states.
 *
 * - In-progress polling (claims): per account and TTL window, one replica holds a short lease
 *   (<prefix>poll:<account>, its instance id, PX lease_ms ~ 0.9 TTL) and polls the cluster's hot
 *   rids: the sorted set <prefix>hot:<account> (rid -> last time a replica wanted it, on Redis's
 *   clock; members older than 2 TTL are dropped, at most GW_STATUS_SHARE_HOT_MAX members, finals
 *   removed). One script per claim (gw_status_share_claim) adds the claimed rids to the set and
 *   takes the lease when it is free (this replica then polls the whole set), or says who polls
 *   what: rids new to the set, or past its cap, are polled here; the others were polled (or are
 *   being polled) by the holder: their stored entry (<prefix>sp:<account>:<rid>, PX TTL) is
 *   applied at once, or they wait for its message (WAIT, at most wait_ms) when the lease is
 *   younger than that. Every replica that polls upstream shares the in-progress statuses it read
 *   (gw_status_share_polled: stored, and published as "3\t<instance>\t<account>\t<packed
 *   GetStatusResponse>"); the others apply them to their cache, as if fetched, when they track
 *   the rid. Redis down or a script failing: the rids are polled here, as with one replica.
 *
 * Commands in flight when the module is freed complete into a small leftover record (freed with
 * the last one), never into freed state.
 */
#ifndef A3D_GATEWAY_STATUS_SHARE_H
#define A3D_GATEWAY_STATUS_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "animate3d/v1/jobs.pb-c.h"

#define GW_STATUS_SHARE_CHANNEL "status"
#define GW_STATUS_SHARE_TTL_MS (24LL * 3600 * 1000)	/* default lifetime of a shared final */
#define GW_STATUS_SHARE_MAX_MSG (64u << 10)		/* bytes of one message (= cache value cap) */
#define GW_STATUS_SHARE_HOT_MAX 2000	/* rids in an account's cluster-wide hot set */
#define GW_STATUS_SHARE_CLAIM_MAX 48	/* rids per claim (one script call's arguments) */
#define GW_STATUS_SHARE_PUBLISH_MAX 25	/* statuses per stored-and-published chunk */

struct gw_redis;
struct gw_status_share;
struct gw_status_claim;
struct gw_metrics_out;

#define GW_STATUS_SHARE_WAIT 1		/* a claim's verdict: another replica polls the rid */

struct gw_status_share_opts {
	struct gw_redis *redis;		/* borrowed; freed after the module */
	/* gw_status_apply() of the status module (arg: the module): the status module's header is
	 * not included here, it includes this one. */
	int (*apply)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st);
	/* gw_status_forget() of the status module (same arg): another replica restarted rid. */
	int (*forget)(void *arg, size_t acct, const char *rid);
	/* gw_status_apply_aged() of the status module (same arg): an in-progress status read
	 * age_ms ago by another replica. NULL: in-progress polling is not coordinated. */
	int (*apply_aged)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st, int64_t age_ms,
			  int only_tracked);
	int64_t ttl_ms;			/* the status cache's TTL (cache.status_ttl_ms), > 0 with apply_aged */
	/* gw_status_claim_done() of the status module, for a claim (c: what the claim hook got):
	 * ok 0 = no answer; verdict[i] 0 = poll here, GW_STATUS_SHARE_WAIT = wait; extra: the
	 * cluster's hot rids this replica polls (it took the lease). Required with apply_aged. */
	void (*claim_done)(struct gw_status_claim *c, int ok, int64_t wait_ms,
			   const unsigned char *verdict, const char *const *extra, size_t nextra);
	void *apply_arg;
	const char *instance;		/* this replica's id (copied) */
	const char *const *accounts;	/* account names by index (borrowed, outlive the module) */
	size_t naccounts;
	int64_t final_ttl_ms;		/* 0: GW_STATUS_SHARE_TTL_MS */
};

struct gw_status_share_counters {
	uint64_t published, publish_failed;	/* final statuses published / not (Redis down, error) */
	uint64_t stored, store_failed;		/* SETs of final statuses */
	uint64_t received, own, applied;	/* messages; of which ours; of which applied here */
	uint64_t bad;				/* messages or values that could not be read */
	uint64_t resubscribed;			/* the subscription (re)established */
	uint64_t forgotten;			/* restarted rids forgotten here (theirs and ours) */
	uint64_t lookups, lookup_refused;	/* MGETs sent / not sent (Redis down: upstream) */
	uint64_t lookup_failed;			/* MGETs that failed (error, timeout: upstream) */
	uint64_t lookup_hits, lookup_misses;	/* rids found / not found */
	uint64_t lease_taken, lease_held;	/* claims that took this window's lease / found it ours */
	uint64_t lease_lost;			/* claims that found another replica's lease */
	uint64_t claim_local, claim_failed;	/* claims not sent (Redis down) / failed: polled here */
	uint64_t claim_new, claim_full;		/* rids new to the hot set / past its cap: polled here */
	uint64_t claim_stored;			/* rids served from another replica's stored entry */
	uint64_t progress_published, progress_publish_failed;	/* in-progress chunks shared */
	uint64_t progress_received, progress_applied;	/* in-progress statuses received / applied */
};

/* Subscribes to the channel. NULL with err when the options are invalid or memory runs out. */
struct gw_status_share *gw_status_share_new(const struct gw_status_share_opts *o, char *err,
					    size_t errlen);
/* Mutes the subscription, detaches commands and lookups in flight (their callbacks never run).
 * NULL: nothing. */
void gw_status_share_free(struct gw_status_share *sh);

/* The status module's on_final hook: stores and publishes st (arg = the module). */
void gw_status_share_final(void *sh, size_t acct, const Animate3d__V1__JobStatus *st);
/* rid was restarted upstream (a multi-person job reprocessed under the same rid): its shared
 * final is deleted and the other replicas forget theirs ("2\t<instance>\t<account>\t<rid>"). */
void gw_status_share_forget(struct gw_status_share *sh, size_t acct, const char *rid);

/*
 * Lookup of rids[0..n) (1..GW_TR_MAX_RIDS, copied; past GW_REDIS_MAX_ARGS - 1 only the first
 * ones are looked up: the others stay misses) of account acct in Redis. The finals found
 * are applied (gw_status_apply: the local cache has them) before done(arg, hits) runs, once, from
 * the loop, within the client's command timeout; a failure is done(arg, 0). Returns a handle, or
 * NULL when nothing was sent (Redis not connected: counted) and done never runs.
 */
struct gw_status_share_lookup;
typedef void (*gw_status_share_found_fn)(void *arg, size_t hits);
struct gw_status_share_lookup *gw_status_share_lookup(struct gw_status_share *sh, size_t acct,
						      const char *const *rids, size_t n,
						      gw_status_share_found_fn done, void *arg);
/* done will not run. Only before it ran. */
void gw_status_share_lookup_cancel(struct gw_status_share_lookup *lk);

/* The status module's claim hooks (gateway/svc/status.h, gw_status_claim_fn and friends; sh is
 * the module): claims rids[0..n) (1..GW_STATUS_SHARE_CLAIM_MAX) for the cluster. NULL when not
 * sent (Redis down, no apply_aged: counted); otherwise opts.claim_done runs once, later. */
void *gw_status_share_claim(void *sh, size_t acct, const char *const *rids, size_t n,
			    struct gw_status_claim *c);
/* gw_status_claim_done will not run for handle. Does not use the module (it may be freed). */
void gw_status_share_claim_cancel(void *sh, void *handle);
/* In-progress statuses st[0..n) this replica read upstream: stored and published in chunks. */
void gw_status_share_polled(void *sh, size_t acct, const Animate3d__V1__JobStatus *const *st,
			    size_t n);

const struct gw_status_share_counters *gw_status_share_counters(const struct gw_status_share *sh);
/* cluster_status_total{what=...} (registry renderer; arg = the module, NULL renders zeros). */
void gw_status_share_metrics(void *sh, struct gw_metrics_out *o);

#endif
