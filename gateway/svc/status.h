/*
 * status: the upstream GET /status machinery shared by GetStatus, WatchStatus and webhooks, on
 * the loop thread: per-account coalescing and batching of fetches, and the watcher registry.
 *
 * Coalescing: a rid has at most one fetch in flight; gw_status_want() for a rid already queued or
 * in flight joins it. Batching: rids wanted for one account within window_ms (or until batch_max
 * are queued) go upstream as ONE GET /status/r1,r2,... When a batch leaves, the other "hot" rids
 * of the account (wanted in the last 2 TTL, or watched; not final; fetched more than TTL/2 ago)
 * ride along in the same requests (up to batch_max rids each), so the rids callers poll stay in
 * step and expire together instead of trickling upstream one small batch at a time. Callers
 * served from the cache keep a rid hot with gw_status_touch().
 * Every answer goes into the cache (gateway/api/cache.h) with the fetch's sequence number.
 *
 * Watchers: gw_status_watch() registers interest in a rid; on every fresh status for it the
 * watcher is notified when (state, step) differs from what it last sent. Watched non-final rids
 * are refetched every TTL through the same batches: 1000 watchers on a rid cost one poll per TTL.
 *
 * Deadlines (issue 5): a waiter may carry a deadline. A batch carries the latest deadline of its
 * waiting callers to the transport (the upstream request's timeout; the configured default when a
 * waiter has none, or nobody but watchers waits). A fetch that ends DEADLINE_EXCEEDED fails only the
 * waiters its deadline covered; those with a later one (or none, joined while it flew) go out again
 * with the next batch. gw_status_check() asks the transport's hold() how long the account would
 * hold a request back (Retry-After pause, admission queue, open circuit) so a caller whose deadline
 * cannot be met is refused at once instead of waiting it out.
 *
 * Transport: a callback pair (start, cancel), and optionally hold. The real one
 * (gw_status_upstream_*) runs gw_up_start() on the account with the GetStatus translate row; tests
 * plug in a fake. start()
 * must not call gw_status_fetch_done() before it returns; after it has returned a handle, the
 * transport calls gw_status_fetch_done() exactly once unless cancel() was called first.
 *
 * Callbacks: waiter and watcher callbacks never run inside gw_status_want/watch/refresh (a
 * batch filled by a want leaves from the next tick, not from inside the call). Inside a callback
 * it is fine to call gw_status_unwant/unwatch on any waiter/watcher, and to want/watch again.
 *
 * Time: opts.now_ms (a fake clock in tests) or the monotonic clock. With opts.base set the module
 * arms its own libevent timers; without it, the owner calls gw_status_tick() (tests do).
 */
#ifndef A3D_GATEWAY_STATUS_H
#define A3D_GATEWAY_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "animate3d/v1/jobs.pb-c.h"

#define GW_STATUS_MAX_BATCH 500		/* rids in one GET /status (config's cache.batch_max cap) */
#define GW_STATUS_DEFAULT_MAX_RIDS 100000	/* rids tracked at once (queued, in flight, hot, watched) */
#define GW_STATUS_TICK_MAX_MS 20	/* the housekeeping timer runs at least this often */
#define GW_STATUS_MSG_MAX 256		/* error text handed to waiters */
#define GW_STATUS_DEADLINE_MARGIN_MS 20	/* an answer later than deadline - this is useless
					 * (= upstream.c's admission margin) */

struct event_base;
struct gw_cache;
struct gw_status;
struct gw_status_fetch;		/* one upstream request in flight */
struct gw_status_rec;		/* one tracked rid (private) */

/* ---- transport ---- */

/* Starts GET /status for rids[0..n) of account acct, with timeout_ms (>= 1: the batch's latest
 * deadline; 0: the transport's default). Returns a handle (non-NULL), or NULL when it cannot start
 * (its waiters then get UNAVAILABLE). rids stay valid until fetch_done/cancel; f's waiters are
 * attached while start runs (gw_status_fetch_trace). */
typedef void *(*gw_status_start_fn)(void *arg, size_t acct, const char *const *rids, size_t n,
				    long timeout_ms, struct gw_status_fetch *f);
typedef void (*gw_status_cancel_fn)(void *arg, void *handle);
/* Optional: how long account acct would hold a request started now before sending it (*wait_ms,
 * 0 = at once). Returns 0 when the request may wait that long, or a gRPC code when it would be
 * refused whatever its deadline (circuit open, queue full). msg (cap bytes, no secrets) says why
 * either way ("upstream account x is paused (Retry-After) for 1834 ms more"). Must not change
 * state or call back. */
typedef int (*gw_status_hold_fn)(void *arg, size_t acct, int64_t *wait_ms, char *msg, size_t cap);

/* What a fetch brought back. code 0 (GRPC_STATUS_OK): resp holds the statuses upstream knows
 * (rids it left out get NOT_FOUND; resp may be NULL for "none known"). Otherwise a gRPC code and
 * msg (no secrets) for every rid of the fetch; retry_after_ms >= 0 with RESOURCE_EXHAUSTED. */
struct gw_status_result {
	int code;
	const char *msg;
	long retry_after_ms;
	const Animate3d__V1__GetStatusResponse *resp;
};
/* The trace of the first waiter of f that has one, else of the first such watcher (for the
 * transport's start), or NULL. */
const struct gw_trace *gw_status_fetch_trace(const struct gw_status_fetch *f);
/* Reports the end of a fetch (borrowed res). Runs waiter and watcher callbacks. */
void gw_status_fetch_done(struct gw_status_fetch *f, const struct gw_status_result *res);

/* ---- cluster coordination of in-progress polling (optional; gateway/svc/status_share.h) ----
 *
 * With a claim callback, the rids a flush would send upstream (except forced refreshes) are first
 * claimed for the cluster, up to claim_max per claim: the callback answers, per rid, POLL (poll it
 * here) or WAIT (another replica polls it this window: its status will be applied with
 * gw_status_apply*), and may hand this replica the cluster's hot rids to poll too (it took the
 * window's lease). The POLL rids and hot rids of all the claims of one flush go upstream together
 * once the last of those claims is answered, in batch_max-sized requests (not claim by claim).
 * A WAIT rid that has not been applied after wait_ms is polled here after all,
 * if anyone still waits for it (counted in cluster_fallback). Every answer of a fetch is handed
 * to on_polled, so the other replicas can serve it.
 */
struct gw_status_claim;		/* one claim in flight (private) */
enum { GW_STATUS_CLAIM_POLL = 0, GW_STATUS_CLAIM_WAIT = 1 };
struct gw_status_claim_result {
	int ok;				/* 0: no answer (Redis failed): every rid is polled here */
	int64_t wait_ms;		/* how long WAIT rids wait for another replica's answer */
	const unsigned char *verdict;	/* per claimed rid, in order: GW_STATUS_CLAIM_* */
	const char *const *extra;	/* the cluster's hot rids this replica polls now (lease) */
	size_t nextra;
};
/* Claims rids[0..n) of account acct (copied). Returns a handle, or NULL when nothing was sent
 * (Redis down): the rids are then polled here at once and done never runs. Otherwise
 * gw_status_claim_done() runs exactly once, later, unless claim_cancel was called first. */
typedef void *(*gw_status_claim_fn)(void *arg, size_t acct, const char *const *rids, size_t n,
				    struct gw_status_claim *c);
typedef void (*gw_status_claim_cancel_fn)(void *arg, void *handle);
/* The claim's answer (borrowed). res NULL: as ok == 0. */
void gw_status_claim_done(struct gw_status_claim *c, const struct gw_status_claim_result *res);

/* ---- the module ---- */

struct gw_status_opts {
	size_t naccounts;		/* accounts are 0..naccounts-1 */
	size_t batch_max;		/* 1..GW_STATUS_MAX_BATCH (0 -> 50) */
	int64_t window_ms;		/* >= 0 */
	int64_t ttl_ms;			/* refresh period of watched rids; normally the cache TTL */
	size_t max_rids;		/* 0 -> GW_STATUS_DEFAULT_MAX_RIDS */
	struct event_base *base;	/* NULL: no timers, call gw_status_tick() */
	int64_t (*now_ms)(void *arg);	/* NULL: monotonic clock */
	void *clock_arg;
	gw_status_start_fn start;
	gw_status_cancel_fn cancel;
	gw_status_hold_fn hold;		/* NULL: nothing is held back (gw_status_check passes) */
	void *transport_arg;
	/* Optional: a fetch brought a final status (SUCCESS/FAILURE) of a rid that was not known
	 * final here (first read, or after a webhook refresh). st is borrowed for the call. Runs
	 * before the rid's waiters and watchers; must not call back into the module (the cluster
	 * layer only shares it: gateway/svc/status_share.h). Statuses given by gw_status_apply()
	 * do not trigger it. */
	void (*on_final)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st);
	void *final_arg;
	/* Optional: cluster coordination (above). claim_max: rids per claim (1..GW_STATUS_MAX_BATCH). */
	gw_status_claim_fn claim;
	gw_status_claim_cancel_fn claim_cancel;
	size_t claim_max;
	/* Optional: the statuses a fetch read (st[0..n), borrowed, non-final ones only: finals go
	 * to on_final). Must not call back into the module. */
	void (*on_polled)(void *arg, size_t acct, const Animate3d__V1__JobStatus *const *st, size_t n);
	void *cluster_arg;		/* for claim, claim_cancel and on_polled */
};

struct gw_status_counters {
	uint64_t wants;			/* gw_status_want calls accepted */
	uint64_t coalesced;		/* wants that joined a queued or in-flight fetch of the rid */
	uint64_t fetches;		/* upstream requests started */
	uint64_t batched;		/* rids sent in those requests */
	uint64_t piggybacked;		/* hot rids that rode along without being asked for */
	uint64_t refreshes;		/* watched rids queued by the refresh loop */
	uint64_t forced;		/* gw_status_refresh calls (webhooks) */
	uint64_t fetch_errors;		/* fetches that ended with an error */
	uint64_t start_failed;		/* transport start() refused */
	uint64_t rejected_full;		/* wants/watches refused: max_rids tracked */
	uint64_t notifications;		/* watcher callbacks run */
	uint64_t watches;		/* watchers registered (total) */
	uint64_t refused;		/* gw_status_check refusals (deadline, circuit, queue) */
	uint64_t requeued;		/* waiters sent out again after a fetch's deadline passed */
	uint64_t tracked;		/* gauge: rids tracked */
	/* Cluster coordination (claim callback set): */
	uint64_t claims;		/* claims sent */
	uint64_t claim_local;		/* rids polled here because no claim could be sent or answer */
	uint64_t cluster_polled;	/* rids polled here for other replicas (this replica's lease) */
	uint64_t cluster_waited;	/* rids left to another replica's poll */
	uint64_t cluster_served;	/* of those, answered by another replica in time */
	uint64_t cluster_fallback;	/* of those, polled here after the wait (someone still waited) */
};

/* cache is borrowed (must outlive the module). NULL on bad opts or out of memory. */
struct gw_status *gw_status_new(const struct gw_status_opts *opts, struct gw_cache *cache);
/* Cancels fetches in flight (transport cancel), drops every waiter and watcher WITHOUT calling
 * them: free the calls that own them first, or accept that they are never told. NULL is fine. */
void gw_status_free(struct gw_status *s);

/* Flushes batches whose window has passed, queues due watcher refreshes, forgets cold rids. */
void gw_status_tick(struct gw_status *s);

const struct gw_status_counters *gw_status_counters(const struct gw_status *s);

/* ---- one-shot waiters (GetStatus) ---- */

struct gw_status_waiter;
/* code 0 with st (borrowed, valid during the call), or a gRPC code with msg (and retry_after_ms
 * >= 0 for RESOURCE_EXHAUSTED). The waiter is already detached when this runs. */
typedef void (*gw_status_done_fn)(struct gw_status_waiter *w, int code,
				  const Animate3d__V1__JobStatus *st, const char *msg,
				  long retry_after_ms);
struct gw_trace;
struct gw_status_waiter {
	gw_status_done_fn done;		/* set by the caller */
	void *arg;			/* the caller's */
	int64_t deadline_ms;		/* set by the caller: on the module's clock; 0 = none */
	const struct gw_trace *trace;	/* set by the caller: its call's trace, or NULL. A fetch
					 * goes upstream as a child span of the first waiter's
					 * trace it finds (one request answers many calls) */
	/* private */
	struct gw_status_waiter *prev, *next;
	struct gw_status_rec *rec;
};

/* Asks for a fresh status of rid (1..GW_TR_RID_MAX chars) on account acct: w->done runs once, later.
 * w is owned by the caller and must stay valid until done runs or gw_status_unwant. Returns 0, or
 * -1 (bad arguments, max_rids reached: counted) and done is never called. */
int gw_status_want(struct gw_status *s, size_t acct, const char *rid, struct gw_status_waiter *w);
/* Before wanting rids of account acct for a caller with deadline_ms (module clock; 0 = none):
 * 0 when the answer can come in time as far as the account's protection knows (or there is no
 * hold() callback), 1 when it cannot -- refuse the caller at once with *code (UNAVAILABLE when the
 * account holds requests back past the deadline, or hold()'s code), *retry_ms (>= 1: when the hold
 * ends) and msg. The batch window still to run counts. Counted in refused. */
int gw_status_check(struct gw_status *s, size_t acct, int64_t deadline_ms, int *code, long *retry_ms,
		    char *msg, size_t cap);
/* Detaches w (its done will not run). A waiter not attached is fine. */
void gw_status_unwant(struct gw_status_waiter *w);
/* A caller was served a non-final rid from the cache: keeps the rid hot (tracked, riding along
 * with batches) so pollers served from the cache never fall out of step. 0, or -1 (bad rid, full). */
int gw_status_touch(struct gw_status *s, size_t acct, const char *rid);

/* ---- watchers (WatchStatus) ---- */

struct gw_status_watch;
/* A fresh status that differs from (last_state, last_step): those are updated before the call.
 * code is 0 with st, or NOT_FOUND (st NULL) when upstream does not know the rid. Transient
 * errors are not reported: the rid is retried on the next refresh. */
typedef void (*gw_status_notify_fn)(struct gw_status_watch *w, int code,
				    const Animate3d__V1__JobStatus *st);
struct gw_status_watch {
	gw_status_notify_fn notify;	/* set by the caller */
	void *arg;
	const struct gw_trace *trace;	/* set by the caller: its call's trace, or NULL; used
					 * when no waiter of the fetch has one */
	int last_state;			/* JobState last sent; 0 = nothing sent yet (set by caller) */
	int64_t last_step;
	/* private */
	struct gw_status_watch *prev, *next;
	struct gw_status_rec *rec;
};

/* Registers w for rid on account acct. When nothing was sent yet (last_state 0) a fetch is queued
 * unless one is already queued or in flight. w stays owned by the caller until gw_status_unwatch.
 * Returns 0 or -1 (bad arguments, max_rids reached). */
int gw_status_watch(struct gw_status *s, size_t acct, const char *rid, struct gw_status_watch *w);
void gw_status_unwatch(struct gw_status_watch *w);	/* not attached is fine */

/* ---- webhooks ---- */

/* 1 when the module tracks rid on account acct (a caller wanted or watches it lately), else 0:
 * webhook deliveries for rids nobody asked about and nobody owns are not worth a refresh. */
int gw_status_tracked(struct gw_status *s, size_t acct, const char *rid);

/* The rid changed upstream (job.completed): drop its non-final cache entry and fetch it through
 * the next batch (after the one in flight, if any). Returns 0, or -1 (bad rid, max_rids). */
int gw_status_refresh(struct gw_status *s, size_t acct, const char *rid);

/* A status of account acct obtained elsewhere (another replica, the shared cache): stored in the
 * cache as the newest answer (a final entry stays final) and delivered to the rid's waiters and
 * watchers at once, like a fetch's answer, when the rid is tracked. Callers must not be inside a
 * waiter or watcher callback of this module. Returns 1 when the rid is tracked here, 0 when it is
 * not (still cached), -1 on bad arguments or when the cache refused it. */
int gw_status_apply(struct gw_status *s, size_t acct, const Animate3d__V1__JobStatus *st);
/* Like gw_status_apply, for a status read age_ms ago (>= 0): it expires from the cache that much
 * earlier. With only_tracked set, a rid not tracked here is not cached either (returns 0). */
int gw_status_apply_aged(struct gw_status *s, size_t acct, const Animate3d__V1__JobStatus *st,
			 int64_t age_ms, int only_tracked);

/* The rid was restarted upstream (StartJob with mp_detection_rid reuses the rid): forget its
 * cached status even if final, and make sure an answer already in flight is not cached (it may
 * predate the restart); watchers get the new states. Returns 0, or -1 (bad rid). */
int gw_status_forget(struct gw_status *s, size_t acct, const char *rid);

/* ---- the real transport: gw_up_start() with GetStatus's translate functions (arg = struct gw_env *) ---- */
void *gw_status_upstream_start(void *arg, size_t acct, const char *const *rids, size_t n,
			       long timeout_ms, struct gw_status_fetch *f);
void gw_status_upstream_cancel(void *arg, void *handle);
int gw_status_upstream_hold(void *arg, size_t acct, int64_t *wait_ms, char *msg, size_t cap);

/* ---- the gateway side: the service, GetStatus / WatchStatus handlers ----
 *
 * The status service (gateway/call/svc.h) owns the cache, the batcher and the WatchStatus streams
 * (struct gw_status_ctx, built by its init from the configuration's cache.* settings); its drain
 * ends the streams. Upstream webhook deliveries reach it through gateway/svc/webhook_in.h.
 */
struct gw_call;
struct gw_env;
struct gw_svc;
struct gw_status_ctx;

#define GW_STATUS_MAX_WATCH_STREAMS 20000	/* open WatchStatus calls when watch.max_streams is 0;
						 * the configured caps (watch.*) decide */

extern const struct gw_svc gw_svc_status;

/* The running service's state, for other services (NULL when it is not registered). */
struct gw_status_ctx *gw_status_ctx_of(const struct gw_env *env);
struct gw_cache *gw_status_ctx_cache(struct gw_status_ctx *x);
struct gw_status *gw_status_ctx_status(struct gw_status_ctx *x);

/* The handlers admit like the generic path (the tenant's bucket in the call layer, then
 * gw_rpc_owner_admit: only the tenant's own rids are looked at; none left -> NOT_FOUND) and
 * validate with the translate functions.
 * GetStatus (through the cache and the batcher) replies in request order, duplicates once; rids
 * upstream does not know are left out, and when none is known the call fails NOT_FOUND.
 * (GetDownloadUrls: gateway/svc/download.h, on this service's cache.) */
void gw_status_rpc_get(struct gw_call *c);
/* Jobs/WatchStatus (server streaming). Sends each rid's current status, then one message per
 * (state, step) change; ends OK when every rid is final, NOT_FOUND when upstream does not know a
 * rid, UNAVAILABLE when the server drains. Cancel frees everything.
 * Open streams are capped per tenant (tenants[].limits.watch_streams, else
 * watch.max_streams_per_tenant, else a fair share of watch.max_streams) and in all
 * (watch.max_streams): past either, RESOURCE_EXHAUSTED naming the tenant and the cap, counted per
 * tenant (watch_streams_tenant_refused_total) and logged within a budget. */
void gw_status_rpc_watch(struct gw_call *c);

/* Who also hears of final statuses (the job follower, gateway/svc/follower.h): fn(arg, acct, st,
 * peer) runs for every final the module reads upstream (peer 0: the on_final hook above) and for
 * every final another replica read and published that is applied here (peer 1). st is borrowed
 * for the call; fn must not call back into the status module (defer the work). One observer;
 * x NULL is a no-op. */
typedef void (*gw_status_final_fn)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st,
				   int peer);
void gw_status_ctx_on_final(struct gw_status_ctx *x, gw_status_final_fn fn, void *arg);

/* For StartJob handlers: call after upstream accepted a job that reuses rid (mp_detection_rid),
 * before replying (gw_status_forget on the service's state). x NULL is a no-op. */
void gw_status_job_restarted(struct gw_status_ctx *x, size_t acct, const char *rid);

#endif
