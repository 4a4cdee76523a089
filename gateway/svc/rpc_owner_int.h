/*
 * rpc_owner_int: what rpc_owner.c shares with rpc_idem.c (the idempotent StartJob machine): the
 * per-method ownership kind and the one store-failure answer. Not for other modules: they use
 * gateway/svc/rpc_owner.h and gateway/svc/rpc_idem.h.
 */
#ifndef A3D_GATEWAY_RPC_OWNER_INT_H
#define A3D_GATEWAY_RPC_OWNER_INT_H

#include "gateway/call/call.h"

/* What ownership means for each method (by its short name). */
enum ro_kind {
	RO_NONE = 0,
	RO_RIDS,		/* GetStatus, GetDownloadUrls, WatchStatus: filter the rids */
	RO_VIDEO_INFO,
	RO_UPLOAD_URL,
	RO_MODEL_UPLOAD_URL,	/* GetModelUploadUrl: record model_url and thumb_url */
	RO_START_JOB,
	RO_STORE_MODEL,
	RO_LIST_MODELS,
	RO_DELETE_MODEL,
	RO_CREATE_ENDPOINT,
	RO_ENDPOINT,		/* Get/Update/DeleteEndpoint */
	RO_LIST_JOBS,
	RO_LIST_ENDPOINTS
};

/* The kind of c's method; RO_NONE for methods ownership does not concern. c must not be NULL. */
enum ro_kind gw_ro_kind_of(struct gw_call *c);
/* Finishes c with UNAVAILABLE "<Method>: <the store's error message>". */
void gw_ro_store_failed(struct gw_call *c);

#endif
