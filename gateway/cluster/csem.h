/*
 * csem: cluster-wide counting semaphores in Redis (issue 16): an upstream account's cap on
 * requests in flight (max_concurrent), shared by the replicas.
 *
 * One semaphore per key (an account: "cs:a:<name>") is a Redis hash: one field per holder (a
 * replica's instance id) whose value is "<slots>:<expiry, server microseconds>:<slots asked>".
 * One Lua script (GW_CSEM_LUA) sets a holder's slots to what it asks for, as far as the cap
 * allows: it reads the server's clock (TIME), drops the holders whose lease expired (a dead
 * replica's slots come back GW_CSEM_TTL_MS after its last renewal), and grants at most cap - the
 * others' slots. So the holders' slots never add up to more than the cap. Fairness: while other
 * holders got less than they asked for (starved), a grant is at most cap / (starved + 1) (rounded
 * up): the caller then uses at most that share, but keeps holding what it may have in flight by
 * the answer (those slots are taken, including any it admits while the request is on its way),
 * so a busy replica drains to its share and hands the rest over at its next renewal.
 *
 * A replica spends its slots locally: the hot path is no round trip. gw_csem_sync tells the
 * entry the replica's demand (requests in flight + queued) and gets the slots it may use:
 * - When the demand reaches the slots held, it asks (in the background) for demand + batch (a
 *   small headroom, gw_csem_batch), capped to the cap. A request the slots do not cover waits in
 *   the caller's queue; the answer calls the entry's change_fn, which re-syncs. After an answer
 *   short of the ask (the other replicas hold the rest), it asks again no sooner than
 *   GW_CSEM_SHORT_HOLD_MS later: a starved replica polls Redis at most 20 times a second.
 * - Every GW_CSEM_RENEW_MS a timer renews each holding at demand (+ batch while busy), so idle
 *   slots go back to the cluster and a busy replica can use what idle ones gave back: one busy
 *   replica may reach the whole cap.
 * - While a smaller holding (a release) is being asked for, the slots usable are the smaller
 *   figure at once: nothing is admitted on slots about to be given back.
 * - A holding is used locally only until GW_CSEM_TTL_MS after the request that granted it was
 *   SENT (before the server's own expiry, which counts from later): never on slots Redis may
 *   already have handed to another replica.
 * Bound: while every replica decides on Redis, requests in flight across the replicas <= cap
 * exactly (each admits only within its slots; the slots add up to at most the cap). A replica that
 * falls back admits ceil(cap / expected_replicas) on its own (see below): the worst case, every
 * replica in fallback or Redis lost (its holders forgotten), is cap + the fallback replicas'
 * shares, at most cap + expected_replicas - 1 when they all are; requests admitted before a switch
 * keep running until they end, and a replica back on Redis admits nothing new until its grant
 * covers what it still has in flight.
 *
 * Fallback: no client, not connected, a command failed within GW_CSEM_FAIL_HOLD_MS, or the
 * holding's local validity lapsed: gw_csem_sync answers GW_CSEM_FALLBACK (counted) and the caller
 * applies its local share (max_concurrent / cluster.expected_replicas). Shared again at the next
 * sync once the client is connected, with no action from anyone. Nothing waits for Redis.
 *
 * Keys: an entry per name, made by gw_csem_entry, kept until gw_csem_free (at most
 * GW_CSEM_MAX_KEYS). Threading: the loop that owns the Redis client; nothing blocks.
 */
#ifndef A3D_GATEWAY_CSEM_H
#define A3D_GATEWAY_CSEM_H

#include <stddef.h>
#include <stdint.h>

#define GW_CSEM_MAX_KEYS 4096		/* entries (accounts) per csem */
#define GW_CSEM_NAME_MAX 200		/* bytes of a key name before the prefix */
#define GW_CSEM_INSTANCE_MAX 128	/* bytes of the holder id */
#define GW_CSEM_TTL_MS 3000		/* a holding lives this long after its last grant */
#define GW_CSEM_RENEW_MS 250		/* renew holdings (and give idle slots back) this often */
#define GW_CSEM_FAIL_HOLD_MS 1000	/* after a failed command: fall back this long */
#define GW_CSEM_SHORT_HOLD_MS 50	/* after a grant short of the ask: grow again no sooner */
#define GW_CSEM_BATCH_SHARE 4		/* a batch is at most cap / (4 * replicas) slots */
#define GW_CSEM_MAX_CAP 1000000		/* caps above this are clamped */

/* The script: KEYS[1] the hash; ARGV cap, holder id, want (slots), ttl (ms), keep (slots the caller
 * may have in flight when the answer comes: in flight now or usable meanwhile; <= want; absent:
 * 0). Returns {granted, others, use}: the holder's slots now (its field is deleted when it has
 * none and asks for none), the other live holders' total, and how many of its slots it may use
 * (its fair share while others starve; <= granted). */
extern const char GW_CSEM_LUA[];

struct event_base;
struct gw_redis;
struct gw_metrics_out;
struct gw_csem;
struct gw_csem_entry;

enum gw_csem_rc {
	GW_CSEM_FALLBACK = 0,		/* decide locally (counted) */
	GW_CSEM_SHARED = 1,		/* *slots: how many may be in flight here now */
};

struct gw_csem_stats {
	uint64_t shared;		/* syncs answered from the shared holding */
	uint64_t fallback;		/* syncs left to the local share */
	uint64_t requests;		/* script calls sent */
	uint64_t grows;			/* of which asked for more than held */
	uint64_t releases;		/* of which asked for less than held (slots given back) */
	uint64_t short_grants;		/* answers granting less than asked (the cap was taken) */
	uint64_t grow_held;		/* syncs that wanted more slots but held off (after a short grant) */
	uint64_t failed;		/* answers that failed (timeout, connection lost, error) */
	uint64_t not_sent;		/* script calls the client refused (down, queue full) */
	uint64_t lapsed;		/* holdings not renewed in time: fell back */
	uint64_t no_entry;		/* names past GW_CSEM_MAX_KEYS or out of memory */
	unsigned shared_mode;		/* gauge: 1 when the last sync was shared */
};

/* Pure: the headroom slots a replica asks for beyond its demand: cap / (4 * replicas), at least
 * 1; 0 when cap is 0 (no cap). */
unsigned gw_csem_batch(unsigned cap, unsigned replicas);

/* Pure: what a replica asks to hold: min(cap, demand + batch when demand > 0, else 0). */
unsigned gw_csem_target(unsigned cap, unsigned demand, unsigned batch);

/*
 * A csem on r (may be NULL: every sync is a fallback) for holder instance (copied; "" or longer
 * than GW_CSEM_INSTANCE_MAX: NULL), with its renew timer on base. NULL when memory runs out.
 */
struct gw_csem *gw_csem_new(struct event_base *base, struct gw_redis *r, const char *instance);
/* Frees the entries; answers still in flight are dropped when they come (as gw_climit_free).
 * Holdings are not released: they expire. NULL is a no-op. */
void gw_csem_free(struct gw_csem *c);

/*
 * The entry of name (found or made); change_fn(arg) runs from the loop when its usable slots or
 * its mode may have changed (an answer came, a renewal failed): the caller syncs again.
 * inflight_fn(arg) (may be NULL: the figure of the last sync) says how many requests the caller
 * has in flight now; it is asked each time a request is sent, so that the slots kept for them are
 * never stale (a grant below them would let another replica exceed the cap). Neither may call
 * gw_csem_free. NULL when the table is full, the name empty or too long, or memory runs out.
 */
typedef void (*gw_csem_change_fn)(void *arg);
typedef unsigned (*gw_csem_inflight_fn)(void *arg);
struct gw_csem_entry *gw_csem_entry(struct gw_csem *c, const char *name, gw_csem_change_fn change_fn,
				    gw_csem_inflight_fn inflight_fn, void *arg);

/*
 * e's cap (> 0: the caller does not sync uncapped keys), headroom batch, the replica's requests
 * in flight and its demand (in flight + queued) now. GW_CSEM_SHARED with *slots, or
 * GW_CSEM_FALLBACK. May send a request; never waits, never calls change_fn itself.
 */
int gw_csem_sync(struct gw_csem *c, struct gw_csem_entry *e, unsigned cap, unsigned batch,
		 unsigned inflight, unsigned demand, int64_t now_ms, unsigned *slots);

/* Whether shared decisions are possible now: a client, and it is connected. */
int gw_csem_shared(const struct gw_csem *c);
/* Slots e holds (as Redis last granted) and whether a request is in flight; for tests. */
unsigned gw_csem_held(const struct gw_csem_entry *e, int *inflight);
const struct gw_csem_stats *gw_csem_stats(const struct gw_csem *c);

/* A renderer for the metrics registry: cluster_concurrency_total{what=...},
 * cluster_concurrency_shared. */
void gw_csem_metrics(void *c, struct gw_metrics_out *o);

#endif
