/*
 * rpc_idem: StartJob with an idempotency_key on the unary path (gateway/svc/unary.c), on top of
 * the gateway/state/owner.h state machine and the state store (env->owner, env->store). Called
 * after gw_rpc_owner_admit() (gateway/svc/rpc_owner.h), instead of the plain upstream call.
 * Limits: GW_OWNER_* and GW_STORE_* (owner.h, store.h); key at most GW_STORE_KEY_MAX bytes.
 */
#ifndef A3D_GATEWAY_RPC_IDEM_H
#define A3D_GATEWAY_RPC_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/call/call.h"

#define GW_RPC_IDEM_SLOTS 4096		/* buckets of the "last unsettled attempt" table */

struct gw_env;
struct gw_up_response;
struct Animate3d__V1__StartJobRequest;

/*
 * What the idempotent StartJob keeps between calls (the unary service's state): transfers that
 * outlived their call, and when a /process attempt may last have been on its way upstream: the
 * process start for keys left by an earlier process, and per (tenant, key) bucket the last attempt
 * that ended with an unknown outcome here (buckets shared by several keys keep the latest: a
 * longer wait, never a shorter one). See the settle rule below.
 */
struct gw_rpc_idem {
	struct gw_env *env;
	uint64_t detached_ops;		/* gauge: transfers outliving their call */
	int64_t unsettled_ms[GW_RPC_IDEM_SLOTS];
};

/* 1 when c is a StartJob carrying an idempotency_key (then gw_rpc_idem_start_job handles it). */
int gw_rpc_idem_applies(struct gw_call *c);

/*
 * StartJob with an idempotency_key (after gw_rpc_owner_admit). Validates, fingerprints the request
 * (packed without the key), then follows gw_owner_idem_start: PROCEED -> POST /process and
 * idem_done / idem_failed; REPLAY -> the recorded rid; WAIT -> the first call's outcome;
 * MISMATCH -> INVALID_ARGUMENT; RECONCILE -> GET /list (+ GET /download/<cands>) and adopt,
 * resubmit, or FAILED_PRECONDITION when ambiguous (reported, never guessed); BUSY/ERROR ->
 * UNAVAILABLE. A cancelled call does NOT cancel its /process: the transfer is detached, gets at
 * least upstream.default_timeout_ms, and its outcome is still recorded and given to waiters.
 * Settle: "no job in /list" is proof only once the previous attempt can no longer be on its way
 * upstream. A RESUBMIT therefore waits until state.reconcile_settle_ms (default 30 s) have passed
 * since that attempt ended with an unknown outcome in this process, or since this process started
 * for keys left by an earlier one; before that the call gets UNAVAILABLE "retry in N ms" (N also
 * as grpc-retry-pushback-ms, for retry policies) and the key stays PENDING (logged as reconcile
 * outcome "deferred").
 * Per tenant (issue 13): keys in flight, detached transfers included, are capped at
 * tenants[].limits.start_jobs_in_flight (default a fair share of GW_OWNER_MAX_INFLIGHT) and
 * waiting duplicates at start_job_waiters (a fair share of GW_OWNER_MAX_WAITERS): past its cap a
 * tenant gets RESOURCE_EXHAUSTED naming it and the cap, so one tenant cannot take every slot.
 */
/* admitted: the request as gw_rpc_owner_admit() let it through (the upstream body is built from
 * it); the fingerprint is taken from the caller's own request. */
void gw_rpc_idem_start_job(struct gw_rpc_idem *st, struct gw_call *c, const ProtobufCMessage *admitted);

/* ---- pure parts (unit-tested) ---- */

/*
 * The request's identity: fp = SHA-256 of the packed request with idempotency_key cleared (the
 * same request under another key has the same fp; any other field changes it), source = what
 * the job starts from for reconciliation (gw_owner_source: "url" without query, "rerun:<rid>",
 * "mp:<rid>"). 0, or -1 when there is no source, it does not fit cap, or memory runs out.
 */
int gw_rpc_idem_identity(const struct Animate3d__V1__StartJobRequest *r, uint8_t fp[32],
			 char *source, size_t cap);

/* 1 when a failed /process certainly did not start a job upstream (the key may be forgotten),
 * 0 when its outcome is unknown (the key stays PENDING and the attempt counts as unsettled). */
int gw_rpc_idem_never_started(const struct gw_up_response *res);

/* The unsettled_ms bucket of (tenant, key): FNV-1a 32 over tenant, a 0xff byte, key; modulo
 * GW_RPC_IDEM_SLOTS. */
size_t gw_rpc_idem_bucket(const char *tenant, const char *key);
/* An attempt of (tenant, key) ended at now_ms (wall) with an unknown outcome: its bucket keeps
 * the latest such time. */
void gw_rpc_idem_unsettled(struct gw_rpc_idem *st, const char *tenant, const char *key,
			   int64_t now_ms);
/* ms until a RESUBMIT of (tenant, key) is safe at now_ms (wall), 0 when it is: settle =
 * st->env->cfg->state.reconcile_settle_ms after the later of the bucket's last unsettled attempt
 * and this process's start (st->env->started_wall_ms). */
int64_t gw_rpc_idem_settle_left(const struct gw_rpc_idem *st, const char *tenant, const char *key,
				int64_t now_ms);

#endif
