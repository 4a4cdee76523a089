/*
 * unary: the generic path of a unary method: one upstream request built and read by the row's
 * translate functions (gateway/api/translate.h), with ownership around it.
 *
 *   call authenticated, decoded, admitted (gateway/call/: the tenant's bucket)
 *   -> gw_rpc_owner_admit()      ownership (gateway/svc/rpc_owner.h): NOT_FOUND for ids of other
 *                                tenants, rids filtered, mutations refused on a read-only store;
 *                                StartJob with idempotency_key -> gw_rpc_idem_start_job()
 *   -> row->tr.build()           GW_TR_INVALID -> INVALID_ARGUMENT with the row's message
 *   -> gw_up_start()             on the tenant's account, the call's time left as timeout; a
 *                                cancelled call cancels the transfer
 *   -> done: gw_up_failure_of() for every failure (upstream 404 -> "<Method>: not found", the
 *      shape used for other tenants' ids), 2xx -> row->tr.parse() -> gw_rpc_owner_after()
 *      (record created ids, filter lists) -> reply.
 *
 * The service's state is the idempotent StartJob's (struct gw_rpc_idem); it is idle when no
 * transfer outlives its call, and renders the state store and idempotency families.
 */
#ifndef A3D_GATEWAY_UNARY_H
#define A3D_GATEWAY_UNARY_H

struct gw_call;
struct gw_svc;

extern const struct gw_svc gw_svc_unary;

/* The handler of every plain unary row. */
void gw_unary_handle(struct gw_call *c);

#endif
