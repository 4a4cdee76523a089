/*
 * rpc_idem: StartJob with an idempotency_key on the unary path (gateway/svc/unary.c), on top of
 * the gateway/state/owner.h state machine and the state store (env->owner, env->store). Called
 * after gw_rpc_owner_admit() (gateway/svc/rpc_owner.h), instead of the plain upstream call.
 * Limits: GW_OWNER_* and GW_STORE_* (owner.h, store.h); key at most GW_STORE_KEY_MAX bytes.
 */
#ifndef A3D_GATEWAY_RPC_IDEM_H
#define A3D_GATEWAY_RPC_IDEM_H

#include <stdint.h>

#include "gateway/call/call.h"

#define GW_RPC_IDEM_SLOTS 4096		/* buckets of the "last unsettled attempt" table */

struct gw_env;

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
 * for keys left by an earlier one; before that the call gets UNAVAILABLE "retry in N ms" and the
 * key stays PENDING (logged as reconcile outcome "deferred").
 * Per tenant (issue 13): keys in flight, detached transfers included, are capped at
 * tenants[].limits.start_jobs_in_flight (default a fair share of GW_OWNER_MAX_INFLIGHT) and
 * waiting duplicates at start_job_waiters (a fair share of GW_OWNER_MAX_WAITERS): past its cap a
 * tenant gets RESOURCE_EXHAUSTED naming it and the cap, so one tenant cannot take every slot.
 */
void gw_rpc_idem_start_job(struct gw_rpc_idem *st, struct gw_call *c);

#endif
