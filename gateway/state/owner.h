/*
 * owner: tenant isolation and idempotent StartJob, as policy on top of gateway/state/store.h.
 * No I/O besides the store, no clock (callers pass now_ms, wall-clock ms), loop thread only.
 * The store answers through callbacks (gateway/state/store.h), so every step that touches it
 * completes through a callback too, inline for the in-process backends, later for PostgreSQL.
 *
 * Isolation: every id created through the gateway is recorded with its tenant before the reply
 * is sent. gw_owner_may_see() answers "may this tenant see this id": its own, yes; another
 * tenant's, never (NOT_FOUND, the same answer as for what does not exist); an id recorded for
 * nobody (created upstream outside the gateway) only with the tenant's see_foreign_jobs.
 *
 * Idempotent StartJob, driven by the handler (one struct gw_owner per server):
 *
 *   gw_owner_idem_start(tenant, key, fp, source) -> done(verdict, out)
 *     PROCEED    key recorded PENDING (durably), leased to this instance and marked in flight
 *                here: call upstream /process, then gw_owner_idem_done(rid) or
 *                gw_owner_idem_failed(...). Exactly one of them.
 *     REPLAY     same key, same request, DONE: answer out->rid, no upstream call.
 *     WAIT       same key, same request, in flight in THIS process: the caller's wake callback
 *                runs once when the first finishes (with its rid or its error); a cancelled
 *                caller removes itself with gw_owner_idem_unwait().
 *     MISMATCH   same key, different request: INVALID_ARGUMENT
 *                "idempotency_key reused with a different request".
 *     ELSEWHERE  PENDING, same request, leased by another live instance (a replica sharing the
 *                store) whose lease has not run out: UNAVAILABLE, retry after out->retry_ms.
 *     RECONCILE  PENDING, same request, but nobody is working on it: no lease, an expired one, or
 *                this instance's own that nothing here carries on (a previous process, a replica
 *                that died, or an attempt that ended with the upstream outcome unknown). The
 *                lease is taken over (compare-and-set: of two replicas, one wins; the other gets
 *                ELSEWHERE) and the key marked in flight here (duplicates WAIT); the handler
 *                fetches GET /list, runs
 *                gw_owner_reconcile(), and ends with idem_adopt(rid), or a normal upstream
 *                /process then idem_done/idem_failed (nothing matched), or idem_failed(forget=0)
 *                when it is ambiguous (reported, never guessed).
 *     BUSY       the waiter or in-flight bounds are reached (counted): UNAVAILABLE, retry later.
 *     ERROR      store failure: UNAVAILABLE with gw_store_errmsg().
 *
 * Order of writes in gw_owner_idem_done: key DONE first, then ownership. A crash between the two
 * leaves a DONE key whose rid has no owner row; the next REPLAY re-records the owner (repair), so
 * a replayed rid is always visible to its tenant. It also means a PENDING key's job is never in
 * the owner table, which reconciliation relies on.
 */
#ifndef A3D_GATEWAY_OWNER_H
#define A3D_GATEWAY_OWNER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/base/lograte.h"
#include "gateway/base/slots.h"
#include "gateway/state/store.h"

#define GW_OWNER_DEFAULT_TTL_MS (24LL * 3600 * 1000)	/* idempotency keys live this long */
#define GW_OWNER_MIN_TTL_MS (60LL * 1000)	/* shorter TTLs are raised: a key must outlive its call */
#define GW_OWNER_MAX_INFLIGHT 4096		/* (tenant, key) pairs in flight at once */
#define GW_OWNER_MAX_WAITERS_PER_KEY 256	/* duplicates queued behind one key */
#define GW_OWNER_MAX_WAITERS 8192		/* duplicates queued in total */
#define GW_OWNER_MSG_MAX 256			/* wake messages, reconcile reasons */
#define GW_OWNER_RECON_MAX 16			/* candidates examined; more is reported as ambiguous */
#define GW_OWNER_RECON_SKEW_MS (5LL * 60 * 1000)	/* upstream ctime may precede our PENDING by this */
#define GW_OWNER_LEASE_MS (30LL * 1000)	/* a PENDING key's lease; renewed while in flight */
#define GW_OWNER_RENEW_MS (10LL * 1000)	/* renewal period (gw_owner_renew) */
#define GW_OWNER_ELSEWHERE_RETRY_MAX_MS 5000	/* ELSEWHERE: longest retry delay suggested */
#define GW_OWNER_RECON_NAMES_MAX 1024	/* /list rows of one file name looked up in the store */
#define GW_OWNER_MAX_TENANTS 2048		/* tenants counted per cap (2 x GW_CONFIG_MAX_TENANTS:
						 * renamed ones may still hold keys after a reload) */

/* ---- isolation ---- */

/*
 * May tenant see an id whose recorded owner is who (the store's answer; NULL = recorded for
 * nobody)? Its own, yes; another tenant's, never (NOT_FOUND); nobody's only with see_foreign.
 * 1 yes, 0 no. An empty tenant sees nothing.
 */
int gw_owner_may_see(const char *who, const char *tenant, int see_foreign);

/* ---- idempotent StartJob ---- */

/*
 * The request's identity for idempotency. fp = SHA-256 of the request bytes the caller gives
 * (the packed StartJobRequest with idempotency_key cleared: same request, same bytes).
 * source = what the job is started from, stored with the key and used by reconciliation:
 * kind "url" -> the URL without query or fragment (signed URL signatures never reach the store),
 * kind "rerun" / "mp" -> "rerun:<rid>" / "mp:<rid>". Returns 0, or -1 when value is empty or the
 * source would not fit GW_STORE_SOURCE_MAX.
 */
void gw_owner_fingerprint(const void *bytes, size_t len, uint8_t fp[32]);
int gw_owner_source(const char *kind, const char *value, char *source, size_t cap);

/*
 * The store id of an upload (GW_OBJ_UPLOAD): hex SHA-256 of the upload URL without its query or
 * fragment, so that every signed URL of one object maps to one id and ids stay within
 * GW_STORE_ID_MAX. cap must be at least GW_OWNER_UPLOAD_ID_LEN + 1. Returns 0, or -1 for an
 * empty URL or a short buffer.
 */
#define GW_OWNER_UPLOAD_ID_LEN 64
int gw_owner_upload_id(const char *url, char *id, size_t cap);

enum gw_idem_verdict {
	GW_IDEM_PROCEED = 0,
	GW_IDEM_REPLAY,
	GW_IDEM_WAIT,
	GW_IDEM_MISMATCH,
	GW_IDEM_RECONCILE,
	GW_IDEM_BUSY,
	GW_IDEM_ERROR,
	GW_IDEM_LIMITED,	/* the tenant's own cap (keys in flight, or waiters): out->limit */
	GW_IDEM_ELSEWHERE	/* another instance holds the key's lease: out->retry_ms */
};

/*
 * Wake callback of a waiter: rid non-NULL = the job the first call created (reply with it);
 * rid NULL = the first call failed: code is a grpc_status_code and msg says why (reply with them).
 * Runs exactly once per waiter, from gw_owner_idem_done/failed or gw_owner_free, unless the
 * waiter was removed with gw_owner_idem_unwait first. It may call gw_owner_* again.
 */
typedef void (*gw_owner_wake_fn)(void *arg, const char *rid, int code, const char *msg);

struct gw_owner;
struct gw_owner_waiter;

struct gw_owner_stats {
	uint64_t proceeds, replays, waits, mismatches, reconciles;
	uint64_t busy_inflight;		/* GW_OWNER_MAX_INFLIGHT reached */
	uint64_t busy_waiters;		/* a waiter bound reached */
	uint64_t ownership_repaired;	/* REPLAY found the rid without its owner row */
	uint64_t recon_adopted, recon_resubmit;
	uint64_t adopt_raced;		/* gw_owner_idem_adopt found the job recorded meanwhile */
	uint64_t recon_ambiguous;	/* AMBIGUOUS or UNSUPPORTED: reported to caller and log */
	uint64_t expired;		/* keys removed by gw_owner_expire */
	uint64_t limited_inflight;	/* a tenant at its cap of keys in flight (LIMITED) */
	uint64_t limited_waiters;	/* a tenant at its cap of waiters (LIMITED) */
	uint64_t elsewhere;		/* leased by another live instance (ELSEWHERE) */
	uint64_t takeovers;		/* RECONCILE of a key another instance had leased */
	uint64_t take_lost;		/* a takeover lost to another instance (ELSEWHERE) */
	uint64_t renew_failures;	/* lease renewals the store refused */
	uint64_t inflight;		/* gauge */
	uint64_t waiting;		/* gauge */
};

struct gw_owner_start {
	char rid[GW_STORE_RID_MAX + 1];		/* REPLAY */
	struct gw_idem entry;			/* REPLAY, WAIT, MISMATCH, RECONCILE: the stored entry */
	struct gw_owner_waiter *waiter;		/* WAIT: handle for gw_owner_idem_unwait */
	struct {				/* LIMITED: which cap, what the tenant holds */
		int waiters;			/* 0: keys in flight, 1: waiters */
		uint64_t held, cap;
	} limit;
	long retry_ms;				/* ELSEWHERE, ERROR: when a retry may work (0: none said) */
	const char *err;			/* ERROR: why (valid during the callback) */
};
/* The answer of gw_owner_idem_start; out is valid during the callback only. */
typedef void (*gw_owner_start_fn)(void *arg, enum gw_idem_verdict v, const struct gw_owner_start *out);

/*
 * Per-tenant caps (issue 13): what one tenant may hold in this process, so that it cannot take
 * every in-flight or waiter slot of the global bounds. Keys in flight are PROCEED and RECONCILE
 * keys until done/failed, which includes transfers that outlive a cancelled call (rpc_idem.h);
 * waiters are duplicates queued behind them. fn fills the caps of tenant (0 = none) and is asked
 * at every gw_owner_idem_start that would take a slot; NULL fn = the global bounds only.
 * A tenant at its in-flight cap gets LIMITED for a new key (before the store is touched, so a
 * DONE key is not replayed to it either until one of its keys lands); at its waiter cap, LIMITED
 * instead of WAIT. Each is counted (stats, and per tenant in gw_owner_tenant_slots).
 */
typedef void (*gw_owner_caps_fn)(void *arg, const char *tenant, uint64_t *inflight, uint64_t *waiters);
void gw_owner_set_caps(struct gw_owner *o, gw_owner_caps_fn fn, void *arg);
int gw_owner_has_caps(const struct gw_owner *o);
/* The per-tenant counts: keys in flight (waiters 0) or waiters (1), for /metrics. */
const struct gw_slots *gw_owner_tenant_slots(const struct gw_owner *o, int waiters);
/* The log budget of the caller's LIMITED refusal lines (one owner per server: one budget). */
struct gw_lograte *gw_owner_limit_log(struct gw_owner *o);

/* s is borrowed and must outlive o. ttl_ms <= 0 -> GW_OWNER_DEFAULT_TTL_MS; below the minimum
 * it is raised to GW_OWNER_MIN_TTL_MS. instance: this process's lease holder name, 1..
 * GW_STORE_LEASE_MAX bytes, unique per boot (host name + random nonce). NULL when out of memory
 * or instance is unusable. */
struct gw_owner *gw_owner_new(struct gw_store *s, int64_t ttl_ms, const char *instance);
const char *gw_owner_instance(const struct gw_owner *o);
/* Wakes every waiter with UNAVAILABLE "gateway is shutting down" (those wakes must not call
 * gw_owner_* again), then frees. Call it after the last call using o has finished: a PROCEED or
 * RECONCILE left open is simply forgotten (its key stays PENDING in the store, reconciled by the
 * next process). NULL is a no-op. */
void gw_owner_free(struct gw_owner *o);
const struct gw_owner_stats *gw_owner_stats(const struct gw_owner *o);
struct gw_store *gw_owner_store(const struct gw_owner *o);

/*
 * See the table at the top. tenant, key: 1..GW_STORE_TENANT_MAX / GW_STORE_KEY_MAX bytes (else
 * ERROR). wake/arg are used only for WAIT (wake must be non-NULL then; with NULL a would-be WAIT
 * is BUSY). done(darg, verdict, out) runs exactly once, perhaps before this returns; out is
 * filled as far as the verdict says. From the moment this is called until done, a duplicate
 * with the same request WAITs behind this one; with another request it is MISMATCH when the
 * stored request is known, else BUSY.
 */
void gw_owner_idem_start(struct gw_owner *o, const char *tenant, const char *key, const uint8_t fp[32],
			 const char *source, int64_t now_ms, gw_owner_wake_fn wake, void *arg,
			 gw_owner_start_fn done, void *darg);
/*
 * The end of an attempt is also written before anyone hears of it: done(darg, rid, code, msg)
 * runs once the store has answered (perhaps before the call returns), with the outcome the
 * waiters get too, just before they get it. done may be NULL.
 *
 * idem_done: the upstream accepted the job (or reconciliation adopted rid): the key becomes DONE
 * with rid, rid is recorded as tenant's job, waiters are woken with rid. When the store fails,
 * everyone hears UNAVAILABLE and the store's reason; the key stays PENDING and will be
 * reconciled on retry. Call only after PROCEED / RECONCILE for this (tenant, key).
 */
void gw_owner_idem_done(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			int64_t now_ms, gw_owner_wake_fn done, void *darg);
/*
 * Reconciliation chose rid (GW_RECON_ADOPT): like gw_owner_idem_done, but only if rid is still
 * unrecorded. Two keys reconciled at once may both pick the same unrecorded job; the second to
 * adopt finds it recorded: it and its waiters hear ABORTED; its key stays PENDING and the
 * next retry reconciles again without that job (the handler answers ABORTED, retryable).
 */
void gw_owner_idem_adopt(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			 int64_t now_ms, gw_owner_wake_fn done, void *darg);
/*
 * The attempt ended without a rid. forget=1 when upstream definitely did not start a job (an HTTP
 * 4xx answer, a request never sent): the key is removed and a retry proceeds afresh. forget=0
 * when the outcome is unknown (timeout, connection lost, 5xx, ambiguous reconciliation): the key
 * stays PENDING with its lease released, so a retry on any instance reconciles. Everyone hears
 * code/msg (also when the store write failed: the key then waits for its lease to run out).
 */
void gw_owner_idem_failed(struct gw_owner *o, const char *tenant, const char *key, int forget,
			  int code, const char *msg, gw_owner_wake_fn done, void *darg);
/* Removes a waiter before it was woken (its call was cancelled); its wake never runs. */
void gw_owner_idem_unwait(struct gw_owner *o, struct gw_owner_waiter *w);
/* 1 when (tenant, key) is in flight in this process. */
int gw_owner_idem_inflight(const struct gw_owner *o, const char *tenant, const char *key);
/* Housekeeping timer: removes keys (PENDING or DONE) created more than the TTL before now_ms.
 * Keys in flight are minutes old at most (calls have deadlines; the TTL is at least
 * GW_OWNER_MIN_TTL_MS), so they are not touched in practice. done(arg, count or -1, err). */
void gw_owner_expire(struct gw_owner *o, int64_t now_ms, void (*done)(void *arg, long n, const char *err),
		     void *arg);
/* Every GW_OWNER_RENEW_MS: extends the lease of every key this instance holds to
 * now_ms + GW_OWNER_LEASE_MS (nothing to do when nothing is in flight). Failures are counted.
 * A key whose release failed is renewed with the rest while anything is in flight here, so it
 * waits for its lease to run out only once this instance is idle. The end of an attempt does not
 * check the lease: if a replica stalled past its lease and another took the key over, the first
 * to finish records its rid and the other hears UNAVAILABLE (its retry replays that rid). */
void gw_owner_renew(struct gw_owner *o, int64_t now_ms);

/* ---- reconciliation (pure matching; the handler does the HTTP) ---- */

enum gw_recon_verdict {
	GW_RECON_ADOPT = 0,	/* out->rid is the job: gw_owner_idem_done(rid) */
	GW_RECON_RESUBMIT,	/* no upstream job matches: safe to call /process again */
	GW_RECON_LOOKUP,	/* fetch GET /download/<out->cand joined by ','> and call again */
	GW_RECON_AMBIGUOUS,	/* several may match (out->cand): report, never guess */
	GW_RECON_UNSUPPORTED,	/* the source cannot be matched (rerun / mp): report */
	GW_RECON_ERROR		/* unparseable upstream JSON or store error: out->why */
};

struct gw_owner_recon {
	enum gw_recon_verdict verdict;
	char rid[GW_STORE_RID_MAX + 1];			/* ADOPT */
	size_t ncand;
	char cand[GW_OWNER_RECON_MAX][GW_STORE_RID_MAX + 1];	/* LOOKUP / AMBIGUOUS */
	char why[GW_OWNER_MSG_MAX];			/* one line for logs and the caller */
};

/*
 * Step 0: the rids of the /list rows ({"list":[{"rid","fileName","ctime"}]}) whose fileName is
 * the source URL's last path segment (raw or percent-decoded) and whose ctime is not older than
 * e->created_ms - GW_OWNER_RECON_SKEW_MS, at most max of them into rids (pointers into a copy the
 * caller frees with free(*blob)). Returns how many (more than max -> max + 1, the first max filled:
 * AMBIGUOUS), or -1 when the body is not a list or the source is not an upload URL (call
 * gw_owner_reconcile anyway: it says why). The handler asks the store which of them are
 * recorded (gw_store_owner_lookup) and passes the recorded ones to gw_owner_reconcile.
 */
long gw_owner_recon_names(const struct gw_idem *e, const char *list_json, size_t list_len,
			  const char **rids, size_t max, char **blob);

/*
 * Decides what became of a PENDING entry e (source = an upload URL without query).
 * recorded[0..nrecorded): the rids of step 0 the store owns for someone.
 * Step 1 (dl_json NULL): candidates are the step-0 rows whose rid is not recorded (a recorded
 *   job belongs to another request). None -> RESUBMIT; more than
 *   GW_OWNER_RECON_MAX -> AMBIGUOUS; else LOOKUP with out->cand.
 * Step 2 (dl_json = the GET /download/<cands> body; "" when that lookup failed): a candidate whose
 *   link has an "input" URL matches when it equals the source (query ignored) and is dropped
 *   otherwise; a link without input (job not finished) matches by name only. Exactly one match
 *   -> ADOPT; none -> RESUBMIT; several -> AMBIGUOUS.
 * why never contains a URL query. Returns out->verdict.
 */
enum gw_recon_verdict gw_owner_reconcile(struct gw_owner *o, const struct gw_idem *e,
					 const char *list_json, size_t list_len,
					 const char *const *recorded, size_t nrecorded,
					 const char *dl_json, size_t dl_len, struct gw_owner_recon *out);

#endif
