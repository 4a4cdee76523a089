/*
 * status_int: what the three files of the status module share (status_batch.c: records, batches,
 * fetches, timers; status_watch.c: watchers and their refresh; status.c: the gateway side, whose
 * context frees the module's fetches). Not for other modules: they use gateway/svc/status.h.
 *
 * Every rid the module tracks has a record (struct gw_status_rec) in a hash table; a record is
 * IDLE, QUEUED (in its account's pending list, or in a claim group: polled once its flush's
 * claims are answered) or FLYING (in one fetch). Records are freed when
 * nothing refers to them and they are final or cold (not wanted for 2 TTL and not watched).
 * Waiter and watcher lists are circular with a sentinel in the record, so a callback may detach
 * any waiter or watcher without knowing which list holds it.
 */
#ifndef A3D_GATEWAY_STATUS_INT_H
#define A3D_GATEWAY_STATUS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/svc/status.h"
#include "gateway/api/translate.h"

struct event;

#define STATUS_BUCKETS 4096		/* hash buckets for tracked rids (chains grow past that) */
#define STATUS_HOT_TTLS 2		/* a polled rid stays hot this many TTLs after its last want */
#define STATUS_DEFAULT_BATCH 50
/* The replica that takes the window's lease polls every hot rid of the cluster except those read
 * within the last TTL / STATUS_CLUSTER_FRESH_DIV. The lease lasts 0.9 TTL (status_share.c): a rid
 * read earlier than that would expire while the lease is held, and the other replicas, finding
 * the lease too old to wait for, would each poll it on their own. With TTL/2 (the ride-along
 * rule), a lease taken just after a burst of polls (a cold start) polled nearly nothing, and
 * every replica polled the hot set itself when it expired a few hundred ms later. */
#define STATUS_CLUSTER_FRESH_DIV 10

/* CLAIMING: in a claim in flight (cluster); WAITING: left to another replica's poll until
 * wait_until_ms. Both behave like FLYING for wants (they join) and watchers. */
enum status_phase { ST_IDLE, ST_QUEUED, ST_FLYING, ST_CLAIMING, ST_WAITING };

struct gw_status_rec {
	struct gw_status_rec *hnext;		/* bucket chain */
	struct gw_status_rec *prev, *next;	/* all records (housekeeping scan) */
	struct gw_status_rec *qnext;		/* account pending list */
	size_t acct;
	uint32_t hash;
	enum status_phase phase;
	int refetch;			/* a forced refresh arrived while FLYING */
	int final;			/* the last status seen is final */
	int busy;			/* callbacks of this record are running: do not free */
	int local;			/* poll it here, without a claim (forced refresh) */
	int64_t applied_ms;		/* when a status from elsewhere was last applied, or 0 */
	int64_t wait_until_ms;		/* WAITING: when it is polled here after all */
	uint64_t barrier_seq;		/* answers of fetches up to this one are not cached */
	int64_t last_fetch_ms;		/* start of the last fetch, or INT64_MIN */
	int64_t last_want_ms;
	struct gw_status_waiter waiters;	/* sentinels */
	struct gw_status_watch watchers;
	size_t nwatchers;
	char rid[GW_TR_RID_MAX + 1];
};

struct status_acct {
	struct gw_status_rec *qhead, *qtail;
	size_t nq;
	int64_t due_ms;			/* when the pending batch leaves; INT64_MAX when empty */
};

/* The in-flight list's links. A separate struct: struct gw_status_fetch ends in a flexible array,
 * so it cannot itself be the list head inside struct gw_status (clang warns, and rightly). */
struct status_flink {
	struct status_flink *prev, *next;
};

struct gw_status_fetch {
	struct status_flink link;	/* in flight; first member, see status_fetch_of */
	struct gw_status *s;
	void *handle;
	size_t acct;
	uint64_t seq;
	int64_t started_ms;
	int64_t deadline_ms;		/* the latest deadline of its waiters; 0 = none (default timeout) */
	size_t n;
	struct gw_status_rec *recs[];	/* n records, FLYING in this fetch */
};

/*
 * The claims of one flush. A flush claims its rids in claim_max-sized claims; the rids they
 * leave to this replica (and the cluster's hot rids, when one took the lease) are polled together
 * once the last of them is answered, in batch_max-sized requests, as one replica alone sends
 * them. Polled per claim, 200 rids went out as 48+48+48+48+8 instead of 4 x 50. The replies of
 * one connection come in order, so the group waits only for the round trip of its last claim.
 */
struct status_cgroup {
	unsigned refs;			/* claims in flight, plus the flush while it runs */
	size_t acct;
	size_t n, cap;
	struct gw_status_rec **recs;	/* n records, QUEUED (polled when refs drops to 0) */
};

struct gw_status_claim {
	struct status_flink link;	/* in flight; first member */
	struct gw_status *s;
	void *handle;
	struct status_cgroup *g;	/* its flush's group, or NULL: polled on its own */
	size_t acct;
	int64_t started_ms;
	size_t n;
	struct gw_status_rec *recs[];	/* n records, CLAIMING in this claim */
};

/* What a flush sends: rids polled here, and rids claimed for the cluster first. */
struct status_out {
	struct gw_status_rec *poll[GW_STATUS_MAX_BATCH], *claim[GW_STATUS_MAX_BATCH];
	size_t npoll, nclaim;
	struct status_cgroup *g;	/* the flush's claim group, or NULL */
};

struct gw_status {
	struct gw_status_opts o;
	struct gw_cache *cache;
	struct gw_status_rec *buckets[STATUS_BUCKETS];
	struct gw_status_rec all;	/* sentinel of all records */
	size_t nrecs;
	struct status_acct *accts;
	struct status_flink flying;	/* sentinel of fetches in flight */
	struct status_flink claiming;	/* sentinel of claims in flight */
	size_t nwaiting;		/* records WAITING */
	struct status_out out;		/* status_flush's lists */
	uint64_t seq;
	struct event *ev_batch, *ev_tick;
	int64_t batch_armed_ms;		/* due time the batch timer is armed for; INT64_MAX none */
	int in_tick;
	int64_t last_gc_ms;		/* cold records are swept every TTL/2, not every tick */
	struct gw_status_counters cnt;
};

/* ---- records and batches (status_batch.c) ---- */

/* The module's clock: opts.now_ms, or the monotonic clock. */
int64_t gw_status_now(struct gw_status *s);
/* The TTL, at least 1 ms. */
int64_t gw_status_ttl(const struct gw_status *s);
/* 1 when rid is non-NULL and a valid rid (gw_tr_rid_valid). */
int gw_status_rid_ok(const char *rid);
/* The record of (acct, rid), or NULL. rid: checked by gw_status_rid_ok. */
struct gw_status_rec *gw_status_rec_find(struct gw_status *s, size_t acct, const char *rid);
/* The record of (acct, rid), created when absent; NULL when max_rids are tracked (counted in
 * rejected_full) or out of memory. rid: checked by gw_status_rid_ok. */
struct gw_status_rec *gw_status_rec_get(struct gw_status *s, size_t acct, const char *rid);
/* Queues an IDLE record on its account's pending batch (arms the batch timer, never flushes). */
void gw_status_enqueue(struct gw_status *s, struct gw_status_rec *r, int64_t now);
/* The fetch whose in-flight link is l. */
struct gw_status_fetch *gw_status_fetch_of(struct status_flink *l);

/* ---- watchers (status_watch.c) ---- */

/* Fan-out of one answer to r's watchers whose last sent (state, step) differs; runs their
 * callbacks (counted in notifications). */
void gw_status_watchers_notify(struct gw_status *s, struct gw_status_rec *r, int code,
			       const Animate3d__V1__JobStatus *st);
/* From the tick: queues the watched non-final rids due for their refresh (counted in refreshes). */
void gw_status_watchers_due(struct gw_status *s, int64_t now);

#endif
