/*
 * rpc_owner_int: what rpc_owner.c shares with rpc_idem.c (the idempotent StartJob machine): the
 * per-method ownership kind. Not for other modules: they use
 * gateway/svc/rpc_owner.h and gateway/svc/rpc_idem.h.
 */
#ifndef A3D_GATEWAY_RPC_OWNER_INT_H
#define A3D_GATEWAY_RPC_OWNER_INT_H

#include "gateway/call/call.h"
#include "gateway/svc/rpc_owner.h"

/* The kind of c's method (its row's own field); RO_NONE for methods ownership does not concern.
 * c must not be NULL. */
enum ro_kind gw_ro_kind_of(struct gw_call *c);

#endif
