/*
 * rpc_owner: tenant isolation and idempotent StartJob wired into the unary RPC path
 * (gateway/svc/unary.c) and the status handlers, on top of gateway/state/owner.h and
 * gateway/state/store.h (env->owner, env->store).
 *
 * The generic unary path calls, in order:
 *   gw_rpc_owner_admit()    before the upstream call: ownership checks on the ids the request names
 *                           (NOT_FOUND, the same answer and message as for an id that does not
 *                           exist), rids filtered to the tenant's own, mutations refused with
 *                           UNAVAILABLE when the store is read-only;
 *   gw_rpc_idem_applies() / gw_rpc_idem_start_job()  StartJob with an idempotency_key takes
 *                           its own path (gateway/svc/rpc_idem.h: the owner.h state machine,
 *                           reconciliation);
 *   gw_rpc_owner_after()    after a 2xx parsed reply, before gw_call_reply(): records what was
 *                           created (upload URLs of videos, models and thumbnails, job, model,
 *                           endpoint), forgets what was deleted, and
 *                           filters lists. An id that could not be recorded is never replied.
 *
 * Rules (tenant = the call's tenant; "foreign" = recorded for nobody, i.e. created upstream
 * outside the gateway, visible only with the tenant's see_foreign_jobs):
 *   GetStatus, GetDownloadUrls, WatchStatus  rids filtered; none left -> NOT_FOUND
 *   GetVideoInfo                             the upload must be the tenant's
 *   GetPersonUrls                            the rid must be the tenant's job
 *   StartJob                                 upload_url / rerun_rid / mp_detection_rid must be the
 *                                            tenant's; params.model_id, params.models[].model_id
 *                                            NOT_FOUND only when another tenant owns them (stock
 *                                            models are unrecorded and shared)
 *   StoreModel with model_id, DeleteModel    the model must be the tenant's
 *   StoreModel model_url, thumb_url          the uploaded files must be the tenant's: recorded
 *                                            when GetModelUploadUrl answered them (as uploads,
 *                                            GW_OBJ_UPLOAD, like video upload URLs: the same
 *                                            question, "did this tenant get this URL from us")
 *   ListModels with model_id                 NOT_FOUND when another tenant owns it, and when
 *                                            nothing is left to show (as for an unknown id)
 *   Get/Update/DeleteEndpoint                the endpoint must be the tenant's
 *   ListJobs, ListEndpoints, ListModels      replies keep the tenant's own items (ListModels: stock
 *                                            models, platform deepmotion/roblox, are kept)
 * Ids and URLs that are empty or malformed never reach the store: the call's decoder
 * (gateway/api/validate.h) and the translate row reject them with INVALID_ARGUMENT naming the
 * field, so NOT_FOUND always means a well-formed id this tenant does not own.
 */
#ifndef A3D_GATEWAY_RPC_OWNER_H
#define A3D_GATEWAY_RPC_OWNER_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "gateway/api/params.h"
#include "gateway/call/call.h"
#include "gateway/state/owner.h"
#include "gateway/state/store.h"

#define GW_RPC_OWNER_MSG_MAX 512	/* status messages built here */
#define GW_RPC_OWNER_LIST_MAX 100000	/* items one list reply may carry to be filtered */
#define GW_RPC_OWNER_DOWN_RETRY_MS 1000	/* retry delay of writes refused while the store is down */

/* What ownership means for a method: the own field of its row (gateway/methods.c). */
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
	RO_LIST_ENDPOINTS,
	RO_JOB			/* GetPersonUrls: the one rid it names must be the tenant's */
};


/* Allocations a rewritten StartJob holds: its Params copy, the models array, and per masked
 * model a TrackedModel copy and its id (GW_PARAMS_MAX_MODELS of each, plus model_id's own). */
#define GW_RPC_OWNER_VIEW_MAX_OWNED (2 + 2 * 16 + 1)

/* A request rewritten for upstream: only the tenant's rids, or StartJob with another tenant's
 * model ids masked. A shallow copy (other strings borrowed from the call's request, which
 * outlives it). Zero-initialise; clear with gw_rpc_owner_view_clear. */
struct gw_rpc_owner_view {
	ProtobufCMessage *msg;	/* malloc'd copy, or NULL when the request is used as it is */
	char **rids;		/* malloc'd array of borrowed strings */
	void *owned[GW_RPC_OWNER_VIEW_MAX_OWNED];	/* what the copy points to and the view frees */
	size_t nowned;
};
void gw_rpc_owner_view_clear(struct gw_rpc_owner_view *v);

/*
 * Ownership checks before any upstream work. The store answers through a callback, so the
 * handler goes on in next(c, req, view), perhaps before this returns, perhaps later from the
 * loop: req is the request to build the upstream call from (gw_call_request(c), or view->msg
 * with only the tenant's rids or another tenant's model ids masked); next owns view (it keeps a
 * copy of the struct or clears it) and req is valid while view is. When the call is finished
 * here instead (NOT_FOUND, UNAVAILABLE for a store failure -- with a retry delay when the store
 * gives one -- or a mutation on a read-only store), next never runs. No cancel hook is set
 * meanwhile: a cancelled call stays alive until next has finished it.
 */
typedef void (*gw_rpc_owner_next_fn)(struct gw_call *c, const ProtobufCMessage *req,
				     struct gw_rpc_owner_view *view);
void gw_rpc_owner_admit(struct gw_call *c, gw_rpc_owner_next_fn next);

/*
 * After a 2xx reply parsed into reply (taken over: freed here), finishes the call: records
 * created ids for the tenant, removes deleted ones, filters list replies, then replies. The
 * writes complete before the reply goes out (an id that could not be recorded is never replied:
 * UNAVAILABLE, logged). req is read before this returns only.
 */
void gw_rpc_owner_after(struct gw_call *c, const ProtobufCMessage *req, ProtobufCMessage *reply);

/* A 404 / not-found answer for c, in the one shape used for foreign and unknown ids alike:
 * "<Method>: not found". */
void gw_rpc_owner_not_found(struct gw_call *c);

/* 0 when the store takes writes; else the call is finished with UNAVAILABLE (read-only, or a
 * store that cannot take calls now: PostgreSQL down, with a retry delay) and -1 is returned.
 * gw_rpc_owner_admit() runs it for every write method; UploadVideo calls it itself. */
int gw_rpc_owner_writable(struct gw_call *c);
/* Records the signed upload URL as the tenant's upload, then finishes the call with reply
 * (borrowed: packed before this returns), or with UNAVAILABLE when it could not be recorded. */
void gw_rpc_owner_record_upload(struct gw_call *c, const char *url, const ProtobufCMessage *reply);

/* ---- pure parts (unit-tested) ---- */

/*
 * The ids a request names that the store is asked about before anything goes upstream, in the
 * order they are checked, each with its rule. gw_rpc_owner_refs() lists them for a method of
 * ownership kind `kind` (the rules at the top of this file); RO_RIDS requests list none, their
 * rids are filtered instead (gw_rpc_owner_admit). Ids that are empty, longer than
 * GW_STORE_ID_MAX or malformed (rerun/mp rids, upload URLs without an upload id) are not listed:
 * they are left to the translate row, which rejects them. StartJob lists its source, then
 * params.model_id, then params.models[].model_id (the first GW_PARAMS_MAX_MODELS).
 */
enum gw_ro_rule {
	GW_RO_OWN,		/* must be the tenant's (gw_owner_may_see), else NOT_FOUND */
	GW_RO_NOT_OTHERS,	/* NOT_FOUND only when another tenant owns it (stock models are unrecorded) */
	GW_RO_MASK		/* StartJob's model ids: another tenant's is masked, never refused (that would
				 * tell that it exists) */
};
#define GW_RO_REFS_MAX (3 + GW_PARAMS_MAX_MODELS)	/* StartJob: source, model_id, models[];
							 * StoreModel: model_id, model_url, thumb_url */
#define GW_RO_UPLOADS_MAX 2				/* uploads one request may name */
struct gw_ro_ref {
	enum gw_store_kind kind;
	enum gw_ro_rule rule;
	const char *id;		/* borrowed from the request, or the refs' upload_id */
	int model;		/* GW_RO_MASK: -1 for params.model_id, else the index in params.models */
};
struct gw_ro_refs {
	size_t n;
	struct gw_ro_ref r[GW_RO_REFS_MAX];
	char upload_id[GW_RO_UPLOADS_MAX][GW_OWNER_UPLOAD_ID_LEN + 1];	/* the uploads it names */
	size_t nuploads;
};
void gw_rpc_owner_refs(enum ro_kind kind, const ProtobufCMessage *req, struct gw_ro_refs *out);

/*
 * What the store's answers (who[i]: the recorded owner of refs->r[i].id, NULL when unrecorded)
 * mean for tenant (see_foreign: the tenant's see_foreign_jobs), in order until the first
 * refusal: GW_RO_ALLOW, with mask[i] = 1 for each GW_RO_MASK ref another tenant owns (mask holds
 * GW_RO_REFS_MAX entries); GW_RO_DENY (NOT_FOUND).
 */
enum gw_ro_verdict { GW_RO_ALLOW = 0, GW_RO_DENY };
enum gw_ro_verdict gw_rpc_owner_decide(const char *tenant, int see_foreign,
				       const struct gw_ro_refs *refs, const char *const *who,
				       unsigned char *mask);

/*
 * What a 2xx reply of a method of kind `kind` (method: its short name) changes in the store
 * before it is sent (gw_rpc_owner_after):
 *   GW_RO_RECORD      id of kind is recorded as the tenant's: GetUploadUrl's upload (the id of
 *                     its URL), GetModelUploadUrl's model upload and, in id2, its thumbnail's
 *                     (when the answer has one), StartJob's rid, StoreModel's model_id,
 *                     CreateEndpoint's id
 *   GW_RO_BAD_UPLOAD  an upload URL of the answer has no upload id: UNAVAILABLE, never replied
 *   GW_RO_FORGET      id of kind is removed: DeleteModel's model_id, DeleteEndpoint's id
 *   GW_RO_FILTER      the list keeps only what the tenant may see: repeated field `field`, item
 *                     ids in `idname`; keep_stock: stock models stay; not_found_if_empty: nothing
 *                     left is NOT_FOUND (ListModels asked for one model_id)
 *   GW_RO_NOTHING     otherwise, and for an empty id to record or a malformed one to forget
 * Returns out->op.
 */
enum gw_ro_op { GW_RO_NOTHING = 0, GW_RO_RECORD, GW_RO_BAD_UPLOAD, GW_RO_FORGET, GW_RO_FILTER };
struct gw_ro_effect {
	enum gw_ro_op op;
	enum gw_store_kind kind;
	const char *id;			/* RECORD, FORGET: borrowed from req or reply, or upload_id */
	const char *id2;		/* RECORD: a second id of the same kind, or NULL */
	const char *field, *idname;	/* FILTER */
	int keep_stock, not_found_if_empty;	/* FILTER */
	char upload_id[GW_OWNER_UPLOAD_ID_LEN + 1];
	char upload_id2[GW_OWNER_UPLOAD_ID_LEN + 1];
};
enum gw_ro_op gw_rpc_owner_effect(enum ro_kind kind, const char *method,
				  const ProtobufCMessage *req, const ProtobufCMessage *reply,
				  struct gw_ro_effect *out);

/* The store and owner families of /metrics (state_store_total, state_read_only,
 * idempotency_total, idempotency_inflight); detached: idempotent transfers outliving their call. */
struct gw_env;
struct gw_metrics_out;
void gw_rpc_owner_render_metrics(const struct gw_env *env, uint64_t detached,
				 struct gw_metrics_out *o);

#endif
