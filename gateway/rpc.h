/*
 * rpc: the method table (every gRPC method the gateway serves) and the generic unary handler
 * that runs one translate row (gateway/api/translate.h) against the upstream.
 *
 * The generic unary path for a row:
 *   call authenticated + decoded (gateway/call/call.c)
 *   -> gw_rpc_admit()            the tenant's token bucket (RESOURCE_EXHAUSTED + retry delay)
 *   -> gw_rpc_owner_admit()      ownership (gateway/svc/rpc_owner.h): NOT_FOUND for ids of other
 *                                tenants, rids filtered, mutations refused on a read-only store;
 *                                StartJob with idempotency_key -> gw_rpc_idem_start_job() (rpc_idem.h)
 *   -> row->build()              GW_TR_INVALID -> INVALID_ARGUMENT with the row's message
 *   -> gw_up_start()             on the tenant's account, the call's time left as timeout;
 *                                a cancelled call cancels the transfer; the account's breaker
 *                                and admission (upstream.h) may refuse it: res.limited
 *   -> done: curl error -> gw_errmap_curl, non-2xx -> gw_errmap_http (429 with a retry delay),
 *      no session -> UNAVAILABLE, 2xx -> row->parse() -> gw_rpc_owner_after() (record created
 *      ids, filter lists) -> reply. Upstream 404s answer "<Method>: not found", the shape used
 *      for other tenants' ids.
 */
#ifndef A3D_GATEWAY_RPC_H
#define A3D_GATEWAY_RPC_H

#include <stddef.h>

#include "gateway/call/call.h"

#define GW_RPC_MAX_METHODS 64		/* size limit of the method table */

/*
 * Builds the method table: one GW_UNARY entry per translate row, then UploadVideo,
 * WatchStatus and grpc.health.v1.Health Check/Watch. Returns 0 and a malloc'd array (free with
 * gw_rpc_methods_free), or -1.
 */
int gw_rpc_methods_new(struct gw_method **out, size_t *n);
void gw_rpc_methods_free(struct gw_method *m);

/* The generic unary handler; c's method row must be a struct gw_tr_rpc. */
void gw_rpc_unary(struct gw_call *c);

/*
 * Admission before any upstream work: the tenant's token bucket at the method's cost
 * (gw_ratelimit_cost; buckets in gw_up_limits()). Returns 0 to proceed, or finishes the call
 * itself (RESOURCE_EXHAUSTED "rate limit of tenant T: retry in N ms" with grpc-retry-pushback-ms
 * and RetryInfo) and returns -1. Ownership is gw_rpc_owner_admit(), called after it.
 */
int gw_rpc_admit(struct gw_call *c);

/* The method name after the last '/' ("GetStatus"), for messages. */
const char *gw_rpc_short_name(const char *path);

#endif
