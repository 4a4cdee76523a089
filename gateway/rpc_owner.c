/*
 * rpc_owner: ownership checks, recording and idempotent StartJob on the unary path.
 * See rpc_owner.h for the rules and gateway/owner.h for the state machine.
 */
#include "gateway/rpc_owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <openssl/rand.h>

#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "auth/perm.h"
#include "auth/session.h"
#include "gateway/config.h"
#include "gateway/errmap.h"
#include "gateway/log.h"
#include "gateway/owner.h"
#include "gateway/params.h"
#include "gateway/rpc.h"
#include "gateway/server.h"
#include "gateway/status.h"
#include "gateway/store.h"
#include "gateway/translate.h"
#include "gateway/upstream.h"

#define RPC_OWNER_PATH_MAX (10 + GW_OWNER_RECON_MAX * (GW_STORE_RID_MAX + 1))	/* /download/a,b */

/* What ownership means for each method (by its short name). */
enum ro_kind {
	RO_NONE = 0,
	RO_RIDS,		/* GetStatus, GetDownloadUrls, WatchStatus: filter the rids */
	RO_VIDEO_INFO,
	RO_UPLOAD_URL,
	RO_START_JOB,
	RO_STORE_MODEL,
	RO_LIST_MODELS,
	RO_DELETE_MODEL,
	RO_CREATE_ENDPOINT,
	RO_ENDPOINT,		/* Get/Update/DeleteEndpoint */
	RO_LIST_JOBS,
	RO_LIST_ENDPOINTS
};

static const struct {
	const char *name;
	enum ro_kind kind;
} ro_table[] = {
	{ "GetStatus", RO_RIDS },		{ "GetDownloadUrls", RO_RIDS },
	{ "WatchStatus", RO_RIDS },		{ "GetVideoInfo", RO_VIDEO_INFO },
	{ "GetUploadUrl", RO_UPLOAD_URL },	{ "StartJob", RO_START_JOB },
	{ "StoreModel", RO_STORE_MODEL },	{ "ListModels", RO_LIST_MODELS },
	{ "DeleteModel", RO_DELETE_MODEL },	{ "CreateEndpoint", RO_CREATE_ENDPOINT },
	{ "GetEndpoint", RO_ENDPOINT },		{ "UpdateEndpoint", RO_ENDPOINT },
	{ "DeleteEndpoint", RO_ENDPOINT },	{ "ListJobs", RO_LIST_JOBS },
	{ "ListEndpoints", RO_LIST_ENDPOINTS },
};

static enum ro_kind ro_kind_of(struct gw_call *c)
{
	const char *name = gw_rpc_short_name(gw_call_method(c)->path);

	for (size_t i = 0; i < sizeof ro_table / sizeof ro_table[0]; i++)
		if (strcmp(ro_table[i].name, name) == 0)
			return ro_table[i].kind;
	return RO_NONE;
}

static const char *ro_what(struct gw_call *c)
{
	return gw_rpc_short_name(gw_call_method(c)->path);
}

static struct gw_store *ro_store(struct gw_call *c)
{
	return gw_call_server(c)->store;
}

void gw_rpc_owner_not_found(struct gw_call *c)
{
	gw_call_fail(c, GRPC_STATUS_NOT_FOUND, "%s: not found", ro_what(c));
}

static void ro_store_failed(struct gw_call *c)
{
	gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: %s", ro_what(c),
		     gw_store_errmsg(ro_store(c))[0] ? gw_store_errmsg(ro_store(c)) : "state store failed");
}

/* An id worth asking the store about; others are left to the translate row to reject. */
static int ro_id_ok(const char *id)
{
	return id && id[0] && strnlen(id, GW_STORE_ID_MAX + 1) <= GW_STORE_ID_MAX;
}

/* gw_owner_check for one id: 0 allowed (or left to the row), else the call is finished. */
static int ro_check(struct gw_call *c, enum gw_store_kind k, const char *id)
{
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	int rc;

	if (!ro_id_ok(id))
		return 0;
	rc = gw_owner_check(ro_store(c), k, id, t->name, t->see_foreign_jobs);
	if (rc == -1)
		gw_rpc_owner_not_found(c);
	else if (rc < 0)
		ro_store_failed(c);
	return rc ? -1 : 0;
}

/* 1 when id is a model another tenant owns, 0 when not (stock models are unrecorded and
 * shared), -1 after failing the call on a store error. */
static int ro_model_of_others(struct gw_call *c, const char *id)
{
	char who[GW_STORE_TENANT_MAX + 1];
	int rc;

	if (!ro_id_ok(id))
		return 0;
	rc = gw_store_owner_get(ro_store(c), GW_OBJ_MODEL, id, who, sizeof who);
	if (rc < 0) {
		ro_store_failed(c);
		return -1;
	}
	return rc == 1 && strcmp(who, gw_call_tenant(c)->name) != 0;
}

/* Models: only another tenant's model is refused, the same way as an unknown one. */
static int ro_check_not_others(struct gw_call *c, enum gw_store_kind k, const char *id)
{
	int rc = ro_model_of_others(c, id);

	(void)k;
	if (rc == 1)
		gw_rpc_owner_not_found(c);
	return rc ? -1 : 0;
}

static void *ro_view_own(struct gw_rpc_owner_view *v, void *p);

/* A fresh 22-character base58 id that names no model: what upstream says of it is exactly what
 * it says of any model id that does not exist. malloc'd, NULL on failure. */
static char *ro_mask_id(void)
{
	static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
	unsigned char rnd[22];
	char *id = malloc(sizeof rnd + 1);

	if (!id || RAND_bytes(rnd, sizeof rnd) != 1) {
		free(id);
		return NULL;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		id[i] = b58[rnd[i] % (sizeof b58 - 1)];
	id[sizeof rnd] = '\0';
	return id;
}

/*
 * StartJob naming another tenant's custom model must not tell that the model exists, and must
 * not animate with it. NOT_FOUND would tell (an unknown model id is a parameter error upstream),
 * so such ids are replaced by ids that exist nowhere and upstream answers as for any unknown id.
 * Returns the request to send (r itself when nothing is masked), or NULL after failing the call.
 */
static const ProtobufCMessage *ro_mask_models(struct gw_call *c, const Animate3d__V1__StartJobRequest *r,
					      struct gw_rpc_owner_view *v)
{
	const Animate3d__V1__Params *p = r->params;
	Animate3d__V1__StartJobRequest *rq = NULL;
	Animate3d__V1__Params *pc = NULL;
	int rc, masked = 0;

	if (!p)
		return &r->base;
	if ((rc = ro_model_of_others(c, p->model_id)) < 0)
		return NULL;
	masked |= rc;
	for (size_t i = 0; i < p->n_models && i < GW_PARAMS_MAX_MODELS; i++) {
		if (p->models[i] && (rc = ro_model_of_others(c, p->models[i]->model_id)) < 0)
			return NULL;
		masked |= rc;
	}
	if (!masked)
		return &r->base;
	if (p->n_models > GW_PARAMS_MAX_MODELS)
		return &r->base;	/* the row rejects the request before anything is sent */
	rq = malloc(sizeof *rq);
	pc = ro_view_own(v, malloc(sizeof *pc));
	if (!rq || !pc)
		goto oom;
	*rq = *r;
	*pc = *p;
	rq->params = pc;
	v->msg = &rq->base;
	rq = NULL;
	if (ro_model_of_others(c, p->model_id) == 1 && !(pc->model_id = ro_view_own(v, ro_mask_id())))
		goto oom;
	if (p->n_models) {
		Animate3d__V1__TrackedModel **ms = ro_view_own(v, calloc(p->n_models, sizeof *ms));

		if (!ms)
			goto oom;
		for (size_t i = 0; i < p->n_models; i++) {
			Animate3d__V1__TrackedModel *tm;

			ms[i] = p->models[i];
			if (!p->models[i] || ro_model_of_others(c, p->models[i]->model_id) != 1)
				continue;
			if (!(tm = ro_view_own(v, malloc(sizeof *tm))))
				goto oom;
			*tm = *p->models[i];
			if (!(tm->model_id = ro_view_own(v, ro_mask_id())))
				goto oom;
			ms[i] = tm;
		}
		pc->models = ms;
	}
	return v->msg;
oom:
	free(rq);
	gw_rpc_owner_view_clear(v);
	gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
	return NULL;
}

static int ro_check_upload(struct gw_call *c, const char *url)
{
	char id[GW_OWNER_UPLOAD_ID_LEN + 1];

	if (!url || !url[0] || gw_owner_upload_id(url, id, sizeof id) != 0)
		return 0;	/* empty: the row says what is missing */
	return ro_check(c, GW_OBJ_UPLOAD, id);
}

void gw_rpc_owner_view_clear(struct gw_rpc_owner_view *v)
{
	free(v->msg);
	free(v->rids);
	for (size_t i = 0; i < v->nowned; i++)
		free(v->owned[i]);
	v->msg = NULL;
	v->rids = NULL;
	v->nowned = 0;
}

/* Keeps p for the view to free; NULL (and p freed) when it is full or p is NULL. */
static void *ro_view_own(struct gw_rpc_owner_view *v, void *p)
{
	if (p && v->nowned < GW_RPC_OWNER_VIEW_MAX_OWNED) {
		v->owned[v->nowned++] = p;
		return p;
	}
	free(p);
	return NULL;
}

/* Requests with "repeated string rids": keep only the tenant's (malformed ones stay for the row
 * to reject; over-long lists too). */
static const ProtobufCMessage *ro_filter_rids(struct gw_call *c, struct gw_rpc_owner_view *v)
{
	const ProtobufCMessage *req = gw_call_request(c);
	const ProtobufCMessageDescriptor *d = req->descriptor;
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, "rids");
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	size_t n, kept = 0;
	char **rids;
	unsigned char keep[GW_TR_MAX_RIDS];
	const char *ask[GW_TR_MAX_RIDS];
	const ProtobufCMessage *ret = NULL;
	long k;

	if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_STRING)
		return req;
	n = *(const size_t *)((const char *)req + f->quantifier_offset);
	rids = *(char **const *)((const char *)req + f->offset);
	if (n == 0 || n > GW_TR_MAX_RIDS)
		return req;
	for (size_t i = 0; i < n; i++)
		ask[i] = gw_tr_rid_valid(rids[i]) ? rids[i] : NULL;
	k = gw_owner_filter(ro_store(c), GW_OBJ_JOB, t->name, t->see_foreign_jobs, ask, n, keep);
	if (k < 0) {
		ro_store_failed(c);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		kept += keep[i] || !ask[i];
	if (kept == 0) {
		gw_rpc_owner_not_found(c);	/* upstream too 404s when it knows none */
		return NULL;
	}
	if (kept == n)
		return req;	/* nothing to hide: the request as it is, no copy (the polling case) */
	v->rids = calloc(n, sizeof *v->rids);
	v->msg = malloc(d->sizeof_message);
	if (!v->rids || !v->msg) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
		goto out;
	}
	kept = 0;
	for (size_t i = 0; i < n; i++)
		if (keep[i] || !ask[i])
			v->rids[kept++] = rids[i];
	memcpy(v->msg, req, d->sizeof_message);
	*(size_t *)((char *)v->msg + f->quantifier_offset) = kept;
	*(char ***)((char *)v->msg + f->offset) = v->rids;
	ret = v->msg;
out:
	if (!ret)
		gw_rpc_owner_view_clear(v);
	return ret;
}

static int ro_check_start_job(struct gw_call *c, const Animate3d__V1__StartJobRequest *r)
{
	switch (r->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		if (ro_check_upload(c, r->upload_url))
			return -1;
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
		if (gw_tr_rid_valid(r->rerun_rid) && ro_check(c, GW_OBJ_JOB, r->rerun_rid))
			return -1;
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID:
		if (gw_tr_rid_valid(r->mp_detection_rid) && ro_check(c, GW_OBJ_JOB, r->mp_detection_rid))
			return -1;
		break;
	default:
		break;
	}
	return 0;
}

int gw_rpc_owner_writable(struct gw_call *c)
{
	if (!gw_store_read_only(ro_store(c)))
		return 0;
	gw_call_fail(c, GRPC_STATUS_UNAVAILABLE,
		     "%s: the gateway's state store is read-only (state.read_only): changes are refused",
		     ro_what(c));
	return -1;
}

const ProtobufCMessage *gw_rpc_owner_admit(struct gw_call *c, struct gw_rpc_owner_view *view)
{
	const ProtobufCMessage *req = gw_call_request(c);
	int rc = 0;

	view->msg = NULL;
	view->rids = NULL;
	view->nowned = 0;
	if (!gw_call_tenant(c))
		return req;
	if ((gw_call_method(c)->perm & GW_PERM_WRITE) && gw_rpc_owner_writable(c))
		return NULL;
	switch (ro_kind_of(c)) {
	case RO_RIDS:
		return ro_filter_rids(c, view);
	case RO_VIDEO_INFO:
		rc = ro_check_upload(c, ((const Animate3d__V1__GetVideoInfoRequest *)(const void *)req)->upload_url);
		break;
	case RO_START_JOB:
		if (ro_check_start_job(c, (const void *)req))
			return NULL;
		return ro_mask_models(c, (const void *)req, view);
	case RO_STORE_MODEL:
		rc = ro_check(c, GW_OBJ_MODEL, ((const Animate3d__V1__StoreModelRequest *)(const void *)req)->model_id);
		break;
	case RO_LIST_MODELS:
		rc = ro_check_not_others(c, GW_OBJ_MODEL,
					 ((const Animate3d__V1__ListModelsRequest *)(const void *)req)->model_id);
		break;
	case RO_DELETE_MODEL:
		rc = ro_check(c, GW_OBJ_MODEL, ((const Animate3d__V1__DeleteModelRequest *)(const void *)req)->model_id);
		break;
	case RO_ENDPOINT:
		/* Get/Update/Delete requests all start with "string id = 1". */
		rc = ro_check(c, GW_OBJ_ENDPOINT, ((const Animate3d__V1__GetEndpointRequest *)(const void *)req)->id);
		break;
	default:
		break;
	}
	return rc ? NULL : req;
}

/* ---- after a 2xx reply ---- */

static int ro_put(struct gw_call *c, enum gw_store_kind k, const char *id)
{
	if (!id || !id[0])
		return 0;
	if (gw_store_owner_put(ro_store(c), k, id, gw_call_tenant(c)->name, gw_server_wall_ms()) == 0)
		return 0;
	/* Loud: upstream created something the gateway cannot attribute; it is not replied. */
	gw_log(GW_LOG_ERROR, "state", GW_LS("msg", "created object could not be recorded; answering UNAVAILABLE"),
	       GW_LS("request_id", gw_call_id(c)), GW_LS("tenant", gw_call_tenant(c)->name),
	       GW_LS("method", ro_what(c)), GW_LN("kind", k), GW_LS("id", k == GW_OBJ_UPLOAD ? "-" : id),
	       GW_LS("error", gw_store_errmsg(ro_store(c))), GW_LEND);
	ro_store_failed(c);
	return -1;
}

int gw_rpc_owner_record_upload(struct gw_call *c, const char *url)
{
	char id[GW_OWNER_UPLOAD_ID_LEN + 1];

	if (!url || gw_owner_upload_id(url, id, sizeof id) != 0) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream sent an unusable upload url",
			     ro_what(c));
		return -1;
	}
	return ro_put(c, GW_OBJ_UPLOAD, id);
}

static int ro_model_stock(const char *platform)
{
	return platform && (strcmp(platform, "deepmotion") == 0 || strcmp(platform, "roblox") == 0);
}

/*
 * Filters a repeated sub-message field of reply in place: keeps items whose id (field idname) the
 * tenant may see; removed items are freed. keep_stock: ListModels keeps stock models unrecorded.
 */
static int ro_filter_reply(struct gw_call *c, ProtobufCMessage *reply, const char *field,
			   const char *idname, enum gw_store_kind k, int keep_stock)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(reply->descriptor, field);
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	ProtobufCMessage **items;
	const char **ids = NULL;
	unsigned char *keep = NULL;
	size_t n, kept = 0;
	int rc = -1;

	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		goto fail;
	n = *(size_t *)((char *)reply + f->quantifier_offset);
	items = *(ProtobufCMessage ***)((char *)reply + f->offset);
	if (n == 0)
		return 0;
	if (n > GW_RPC_OWNER_LIST_MAX)
		goto fail;
	ids = calloc(n, sizeof *ids);
	keep = calloc(n, 1);
	if (!ids || !keep)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *idf =
			protobuf_c_message_descriptor_get_field_by_name(items[i]->descriptor, idname);

		ids[i] = idf ? *(const char *const *)((const char *)items[i] + idf->offset) : NULL;
	}
	if (gw_owner_filter(ro_store(c), k, t->name, t->see_foreign_jobs, ids, n, keep) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		int stock = 0;

		if (keep_stock && !keep[i]) {
			const Animate3d__V1__Model *m = (const void *)items[i];
			char who[GW_STORE_TENANT_MAX + 1];
			int g = ro_id_ok(m->id) ? gw_store_owner_get(ro_store(c), k, m->id, who, sizeof who) : 0;

			if (g < 0)
				goto fail;
			stock = g == 0 && ro_model_stock(m->platform);
		}
		if (keep[i] || stock)
			items[kept++] = items[i];
		else
			protobuf_c_message_free_unpacked(items[i], NULL);
	}
	*(size_t *)((char *)reply + f->quantifier_offset) = kept;
	rc = 0;
	goto out;
fail:
	ro_store_failed(c);
out:
	free(ids);
	free(keep);
	return rc;
}

int gw_rpc_owner_after(struct gw_call *c, const ProtobufCMessage *req, ProtobufCMessage *reply)
{
	if (!gw_call_tenant(c) || !reply)
		return 0;
	switch (ro_kind_of(c)) {
	case RO_UPLOAD_URL:
		return gw_rpc_owner_record_upload(c, ((Animate3d__V1__GetUploadUrlResponse *)(void *)reply)->url);
	case RO_START_JOB:
		return ro_put(c, GW_OBJ_JOB, ((Animate3d__V1__StartJobResponse *)(void *)reply)->rid);
	case RO_STORE_MODEL:
		return ro_put(c, GW_OBJ_MODEL, ((Animate3d__V1__StoreModelResponse *)(void *)reply)->model_id);
	case RO_CREATE_ENDPOINT:
		return ro_put(c, GW_OBJ_ENDPOINT, ((Animate3d__V1__Endpoint *)(void *)reply)->id);
	case RO_DELETE_MODEL: {
		const char *id = ((const Animate3d__V1__DeleteModelRequest *)(const void *)req)->model_id;

		if (ro_id_ok(id) && gw_store_owner_del(ro_store(c), GW_OBJ_MODEL, id) != 0)
			gw_log(GW_LOG_WARN, "state", GW_LS("msg", "deleted model's owner row not removed"),
			       GW_LS("error", gw_store_errmsg(ro_store(c))), GW_LEND);
		return 0;
	}
	case RO_ENDPOINT:
		if (strcmp(ro_what(c), "DeleteEndpoint") == 0) {
			const char *id = ((const Animate3d__V1__DeleteEndpointRequest *)(const void *)req)->id;

			if (ro_id_ok(id) && gw_store_owner_del(ro_store(c), GW_OBJ_ENDPOINT, id) != 0)
				gw_log(GW_LOG_WARN, "state", GW_LS("msg", "deleted endpoint's owner row not removed"),
				       GW_LS("error", gw_store_errmsg(ro_store(c))), GW_LEND);
		}
		return 0;
	case RO_LIST_JOBS:
		return ro_filter_reply(c, reply, "jobs", "rid", GW_OBJ_JOB, 0);
	case RO_LIST_ENDPOINTS:
		return ro_filter_reply(c, reply, "endpoints", "id", GW_OBJ_ENDPOINT, 0);
	case RO_LIST_MODELS: {
		const Animate3d__V1__ListModelsRequest *r = (const void *)req;

		if (ro_filter_reply(c, reply, "models", "id", GW_OBJ_MODEL, 1))
			return -1;
		/* Asked by id and nothing (left) to show: the one not-found answer, whether the id
		 * does not exist or is another tenant's. */
		if (r->model_id && r->model_id[0] &&
		    ((Animate3d__V1__ListModelsResponse *)(void *)reply)->n_models == 0) {
			gw_rpc_owner_not_found(c);
			return -1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- idempotent StartJob ---- */

enum idem_phase { IDEM_PROCESS, IDEM_LIST, IDEM_LOOKUP };

/* One idempotent attempt; outlives its call when the client leaves (detached, c == NULL). */
struct idem_op {
	struct gw_server *srv;
	struct gw_call *c;
	struct gw_account_rt *acct;
	struct gw_up_call *up;
	const struct gw_tr_rpc *row;	/* StartJob's translate row (static) */
	enum idem_phase phase;
	long retry_ms;			/* RESOURCE_EXHAUSTED, UNAVAILABLE: the retry delay to pass on */
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	struct gw_idem entry;
	struct gw_tr_request process;	/* POST /process, kept for a RESUBMIT */
	struct gw_owner_recon recon;
	char *list;			/* GET /list body, kept for the second reconcile step */
	size_t list_len;
	long timeout_ms;
	int64_t admit_by_us;		/* the caller's deadline (gw_server_now_us); 0 = none */
};

/* A duplicate waiting for the first call with its key. */
struct idem_wait {
	struct gw_server *srv;
	struct gw_call *c;
	struct gw_owner_waiter *w;
};

static void idem_op_free(struct idem_op *op)
{
	if (!op)
		return;
	if (!op->c && op->srv->detached_ops)
		op->srv->detached_ops--;
	gw_tr_request_clear(&op->process);
	free(op->list);
	free(op);
}

static void idem_reply_rid(struct gw_call *c, const char *rid)
{
	Animate3d__V1__StartJobResponse r = ANIMATE3D__V1__START_JOB_RESPONSE__INIT;

	r.rid = (char *)rid;
	gw_call_reply(c, &r.base);
}

/* Ends the op: replies (if the call is still here) with rid or code/msg, frees op. */
static void idem_finish(struct idem_op *op, const char *rid, grpc_status_code code, const char *msg)
{
	struct gw_call *c = op->c;

	if (c) {
		gw_call_on_cancel(c, NULL);
		gw_call_set_data(c, NULL);
		if (rid) {
			idem_reply_rid(c, rid);
		} else if (code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
			char m[GW_RPC_OWNER_MSG_MAX];

			snprintf(m, sizeof m, "StartJob: %s", msg);
			gw_call_fail_retry(c, code, op->retry_ms > 0 ? op->retry_ms : 1000, m);
		} else if (code == GRPC_STATUS_UNAVAILABLE && op->retry_ms > 0) {
			char m[GW_RPC_OWNER_MSG_MAX];

			/* Circuit open, paused by Retry-After, 503 + Retry-After: when to come back. */
			snprintf(m, sizeof m, "StartJob: %s", msg);
			gw_call_fail_retry(c, code, op->retry_ms, m);
		} else {
			gw_call_fail(c, code, "StartJob: %s", msg);
		}
	}
	idem_op_free(op);
}

static void idem_on_cancel(struct gw_call *c, void *data)
{
	struct idem_op *op = data;

	(void)c;
	/* Keep the transfer: its outcome must still be recorded (and given to waiters). */
	op->c = NULL;
	op->srv->detached_ops++;
}

static void idem_wake(void *arg, const char *rid, int code, const char *msg)
{
	struct idem_wait *w = arg;

	gw_call_on_cancel(w->c, NULL);
	gw_call_set_data(w->c, NULL);
	if (rid)
		idem_reply_rid(w->c, rid);
	else
		gw_call_fail(w->c, (grpc_status_code)code, "StartJob: %s", msg && msg[0] ? msg : "failed");
	free(w);
}

static void idem_wait_cancel(struct gw_call *c, void *data)
{
	struct idem_wait *w = data;

	(void)c;
	gw_owner_idem_unwait(w->srv->owner, w->w);
	free(w);
}

static void idem_up_done(void *arg, const struct gw_up_response *res);

/* The "last unsettled attempt" bucket of (tenant, key): FNV-1a over both. */
static int64_t *idem_unsettled(struct gw_server *srv, const char *tenant, const char *key)
{
	uint32_t h = 2166136261u;

	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;	/* separator: ("ab","c") != ("a","bc") */
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &srv->idem_unsettled_ms[h % GW_SERVER_IDEM_SLOTS];
}

/* ms until a RESUBMIT of (tenant, key) is safe, 0 when it is: a /process of the previous attempt
 * may still be on its way upstream (sent, not yet processed) and would start a second job after
 * a /list that did not show it yet. */
static int64_t idem_settle_left(struct gw_server *srv, const char *tenant, const char *key)
{
	int64_t last = *idem_unsettled(srv, tenant, key);
	int64_t since = last > srv->started_wall_ms ? last : srv->started_wall_ms;
	int64_t left = since + srv->cfg->state.reconcile_settle_ms - gw_server_wall_ms();

	return left > 0 ? left : 0;
}

static int idem_up_start(struct idem_op *op, const char *method, const char *path, const char *body,
			 int idempotent, const char *route)
{
	struct gw_up_request rq;

	memset(&rq, 0, sizeof rq);
	rq.method = method;
	rq.path = path;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = op->timeout_ms;
	/* Sent within the caller's deadline or refused at once (nothing sent: the key stays free),
	 * even though the transfer itself may outlive the call. */
	if (op->c && op->admit_by_us) {
		int64_t within = (op->admit_by_us - gw_server_now_us()) / 1000;

		rq.admit_within_ms = within > 0 ? (long)within : 1;
	}
	rq.idempotent = idempotent;
	rq.route = route;
	op->up = gw_up_start(op->srv->up, op->acct, &rq, idem_up_done, op);
	if (op->c && op->up)
		gw_call_count_upstream(op->c);
	return op->up ? 0 : -1;
}

static void idem_process(struct idem_op *op)
{
	op->phase = IDEM_PROCESS;
	if (idem_up_start(op, op->process.method, op->process.path, op->process.body, 0,
			  "POST /process") == 0)
		return;
	/* Never sent: upstream certainly started nothing. */
	gw_owner_idem_failed(op->srv->owner, op->tenant, op->key, 1, GRPC_STATUS_UNAVAILABLE,
			     "upstream request could not be started");
	idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, "upstream request could not be started");
}

static void idem_log_recon(const struct idem_op *op, const char *outcome)
{
	char cands[GW_OWNER_RECON_MAX * (GW_STORE_RID_MAX + 1) + 1];
	size_t off = 0;

	cands[0] = '\0';
	for (size_t i = 0; i < op->recon.ncand && off + GW_STORE_RID_MAX + 2 < sizeof cands; i++)
		off += (size_t)snprintf(cands + off, sizeof cands - off, "%s%s", i ? "," : "",
					op->recon.cand[i]);
	gw_log(strcmp(outcome, "ambiguous") == 0 || strcmp(outcome, "error") == 0 ? GW_LOG_WARN
										   : GW_LOG_INFO,
	       "reconcile", GW_LS("msg", "pending idempotency key reconciled"), GW_LS("outcome", outcome),
	       GW_LS("tenant", op->tenant), GW_LS("key", op->key),
	       GW_LS("rid", op->recon.verdict == GW_RECON_ADOPT ? op->recon.rid : "-"),
	       GW_LS("candidates", cands), GW_LS("why", op->recon.why), GW_LEND);
}

/* Runs one reconciliation step: op->list, and dl (the /download body) for the second step. */
static void idem_reconcile(struct idem_op *op, const char *dl, size_t dl_len)
{
	struct gw_owner *o = op->srv->owner;
	char path[RPC_OWNER_PATH_MAX];
	size_t off;

	switch (gw_owner_reconcile(o, &op->entry, op->list, op->list_len, dl, dl_len, &op->recon)) {
	case GW_RECON_ADOPT:
		idem_log_recon(op, "adopt");
		if (gw_owner_idem_adopt(o, op->tenant, op->key, op->recon.rid, gw_server_wall_ms()) == 0) {
			idem_finish(op, op->recon.rid, GRPC_STATUS_OK, NULL);
			return;
		}
		idem_finish(op, NULL, GRPC_STATUS_ABORTED,
			    "the upstream job could not be adopted (claimed meanwhile or state store failure); retry");
		return;
	case GW_RECON_RESUBMIT: {
		int64_t wait = idem_settle_left(op->srv, op->tenant, op->key);
		char msg[GW_RPC_OWNER_MSG_MAX];

		if (wait > 0) {
			idem_log_recon(op, "deferred");
			snprintf(msg, sizeof msg,
				 "the previous attempt with this idempotency_key may still reach upstream; retry in %lld ms",
				 (long long)wait);
			gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, msg);
			idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, msg);
			return;
		}
		idem_log_recon(op, "resubmit");
		idem_process(op);
		return;
	}
	case GW_RECON_LOOKUP:
		off = (size_t)snprintf(path, sizeof path, "/download/");
		for (size_t i = 0; i < op->recon.ncand && off < sizeof path; i++)
			off += (size_t)snprintf(path + off, sizeof path - off, "%s%s", i ? "," : "",
						op->recon.cand[i]);
		op->phase = IDEM_LOOKUP;
		if (off < sizeof path &&
		    idem_up_start(op, "GET", path, NULL, 1, "GET /download/{rids}") == 0)
			return;
		idem_reconcile(op, "", 0);	/* lookup impossible: decide by name */
		return;
	case GW_RECON_AMBIGUOUS:
	case GW_RECON_UNSUPPORTED:
		idem_log_recon(op, "ambiguous");
		gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_FAILED_PRECONDITION, op->recon.why);
		idem_finish(op, NULL, GRPC_STATUS_FAILED_PRECONDITION, op->recon.why);
		return;
	default:
		idem_log_recon(op, "error");
		gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, op->recon.why);
		idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, op->recon.why);
		return;
	}
}

/* 1 when a failed /process certainly did not start a job upstream: the account's protection
 * refused it before sending (res->limited: breaker open, queue full, deadline or pause), no
 * session, no connection, or a 4xx. */
static int idem_never_started(const struct gw_up_response *res)
{
	if (res->limited || res->no_session)
		return 1;
	if (res->curl_rc != CURLE_OK)
		return res->curl_rc == CURLE_COULDNT_CONNECT || res->curl_rc == CURLE_COULDNT_RESOLVE_HOST;
	return res->http_status >= 400 && res->http_status <= 499;
}

static void idem_process_done(struct idem_op *op, const struct gw_up_response *res)
{
	struct gw_owner *o = op->srv->owner;
	char msg[GW_RPC_OWNER_MSG_MAX];
	char err[GW_TR_ERR_MAX];
	ProtobufCMessage *reply = NULL;
	grpc_status_code code;

	if (res->limited) {
		/* Refused by the account's protection before anything was sent (upstream.h): its code,
		 * its reason and its retry delay, as on the plain path. */
		code = (grpc_status_code)res->limited;
		snprintf(msg, sizeof msg, "StartJob: %s", res->error ? res->error : "upstream limit");
	} else if (res->no_session) {
		code = GRPC_STATUS_UNAVAILABLE;
		snprintf(msg, sizeof msg, "%s", res->error ? res->error : "upstream rejected account credentials");
	} else if (res->curl_rc != CURLE_OK) {
		code = gw_errmap_curl((int)res->curl_rc, res->error, "StartJob", msg, sizeof msg);
	} else if (res->http_status < 200 || res->http_status > 299) {
		code = gw_errmap_http(res->http_status, res->body, res->body_len, "StartJob", msg, sizeof msg);
	} else {
		err[0] = '\0';
		/* StartJob's parse does not read the request (the call may be gone). */
		if (op->row->parse(NULL, res->body, res->body_len, &reply, err, sizeof err) == GW_TR_OK) {
			const char *rid = ((Animate3d__V1__StartJobResponse *)(void *)reply)->rid;

			/* A multi-person run reuses its detection rid: any cached final status is history. */
			if (op->acct)
				gw_status_job_restarted(op->srv, op->acct->idx, rid);
			if (gw_owner_idem_done(o, op->tenant, op->key, rid, gw_server_wall_ms()) == 0)
				idem_finish(op, rid, GRPC_STATUS_OK, NULL);
			else
				idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, gw_store_errmsg(op->srv->store));
			protobuf_c_message_free_unpacked(reply, NULL);
			return;
		}
		code = GRPC_STATUS_UNAVAILABLE;
		snprintf(msg, sizeof msg, "StartJob: upstream sent an unexpected answer: %s", err);
	}
	/* msg already starts with "StartJob: "; the finish prefix would repeat it. */
	if (!idem_never_started(res)) {
		int64_t *last = idem_unsettled(op->srv, op->tenant, op->key);
		int64_t now = gw_server_wall_ms();

		*last = now > *last ? now : *last;
	}
	gw_owner_idem_failed(o, op->tenant, op->key, idem_never_started(res), code,
			     strncmp(msg, "StartJob: ", 10) == 0 ? msg + 10 : msg);
	op->retry_ms = res->retry_after_ms;
	idem_finish(op, NULL, code, strncmp(msg, "StartJob: ", 10) == 0 ? msg + 10 : msg);
}

static void idem_up_done(void *arg, const struct gw_up_response *res)
{
	struct idem_op *op = arg;
	int ok = !res->no_session && res->curl_rc == CURLE_OK && res->http_status >= 200 &&
		 res->http_status <= 299;
	char msg[GW_RPC_OWNER_MSG_MAX];

	op->up = NULL;
	switch (op->phase) {
	case IDEM_PROCESS:
		idem_process_done(op, res);
		return;
	case IDEM_LIST:
		if (ok && (op->list = malloc(res->body_len + 1))) {
			memcpy(op->list, res->body, res->body_len);
			op->list[res->body_len] = '\0';
			op->list_len = res->body_len;
			idem_reconcile(op, NULL, 0);
			return;
		}
		snprintf(msg, sizeof msg, "cannot reconcile a pending idempotency key: upstream /list failed; retry");
		gw_owner_idem_failed(op->srv->owner, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, msg);
		idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, msg);
		return;
	case IDEM_LOOKUP:
		/* "" = the lookup failed: reconciliation then decides by name only. */
		idem_reconcile(op, ok ? res->body : "", ok ? res->body_len : 0);
		return;
	}
}

int gw_rpc_owner_idempotent(struct gw_call *c)
{
	const Animate3d__V1__StartJobRequest *r = (const void *)gw_call_request(c);

	return gw_call_tenant(c) && ro_kind_of(c) == RO_START_JOB && r->idempotency_key &&
	       r->idempotency_key[0];
}

/* fp over the packed request without its key; source for reconciliation. 0, or -1. */
static int idem_identity(const Animate3d__V1__StartJobRequest *r, uint8_t fp[32], char *source,
			 size_t cap)
{
	Animate3d__V1__StartJobRequest copy = *r;
	uint8_t *buf;
	size_t len;
	int rc = -1;

	copy.idempotency_key = (char *)"";
	len = protobuf_c_message_get_packed_size(&copy.base);
	buf = malloc(len ? len : 1);
	if (!buf)
		return -1;
	protobuf_c_message_pack(&copy.base, buf);
	gw_owner_fingerprint(buf, len, fp);
	free(buf);
	switch (r->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		rc = gw_owner_source("url", r->upload_url, source, cap);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
		rc = gw_owner_source("rerun", r->rerun_rid, source, cap);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID:
		rc = gw_owner_source("mp", r->mp_detection_rid, source, cap);
		break;
	default:
		break;
	}
	return rc;
}

void gw_rpc_owner_start_job(struct gw_call *c)
{
	const Animate3d__V1__StartJobRequest *r = (const void *)gw_call_request(c);
	const struct gw_tr_rpc *row = gw_call_method(c)->row;
	struct gw_server *srv = gw_call_server(c);
	struct gw_owner_start st;
	struct idem_op *op = NULL;
	struct idem_wait *w = NULL;
	char source[GW_STORE_SOURCE_MAX + 1];
	char err[GW_TR_ERR_MAX];
	uint8_t fp[32];
	int64_t left = gw_call_time_left_ms(c);
	long floor_ms = srv->cfg->upstream.default_timeout_ms;
	int rc;

	op = calloc(1, sizeof *op);
	w = calloc(1, sizeof *w);
	if (!op || !w) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "StartJob: out of memory");
		goto out;
	}
	op->srv = srv;
	op->c = c;
	op->row = row;
	err[0] = '\0';
	rc = row->build(&r->base, &op->process, err, sizeof err);
	if (rc != GW_TR_OK) {
		gw_call_fail(c, rc == GW_TR_INVALID ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_INTERNAL,
			     "%s", err[0] ? err : "StartJob: request could not be built");
		goto out;
	}
	if (strnlen(r->idempotency_key, GW_STORE_KEY_MAX + 1) > GW_STORE_KEY_MAX) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "idempotency_key must be at most %d bytes",
			     GW_STORE_KEY_MAX);
		goto out;
	}
	if (idem_identity(r, fp, source, sizeof source) != 0) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "StartJob: source is too long for an idempotent request");
		goto out;
	}
	op->acct = gw_call_account(c);
	if (!op->acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "StartJob: tenant has no upstream account");
		goto out;
	}
	snprintf(op->tenant, sizeof op->tenant, "%s", gw_call_tenant(c)->name);
	snprintf(op->key, sizeof op->key, "%s", r->idempotency_key);
	/* The transfer may outlive the call: never less than the configured default. */
	if (floor_ms <= 0)
		floor_ms = GW_CONFIG_DEFAULT_TIMEOUT_MS;
	op->timeout_ms = left > floor_ms ? (long)left : floor_ms;
	op->admit_by_us = left > 0 ? gw_server_now_us() + left * 1000 : 0;
	w->srv = srv;
	w->c = c;
	switch (gw_owner_idem_start(srv->owner, op->tenant, op->key, fp, source, gw_server_wall_ms(),
				    idem_wake, w, &st)) {
	case GW_IDEM_PROCEED:
		op->entry = st.entry;
		gw_call_set_data(c, op);
		gw_call_on_cancel(c, idem_on_cancel);
		idem_process(op);
		op = NULL;
		break;
	case GW_IDEM_RECONCILE:
		op->entry = st.entry;
		op->phase = IDEM_LIST;
		gw_call_set_data(c, op);
		gw_call_on_cancel(c, idem_on_cancel);
		if (idem_up_start(op, "GET", "/list", NULL, 1, "GET /list") != 0) {
			gw_owner_idem_failed(srv->owner, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE,
					     "upstream request could not be started");
			idem_finish(op, NULL, GRPC_STATUS_UNAVAILABLE, "upstream request could not be started");
		}
		op = NULL;
		break;
	case GW_IDEM_REPLAY:
		idem_reply_rid(c, st.rid);
		break;
	case GW_IDEM_WAIT:
		w->w = st.waiter;
		gw_call_set_data(c, w);
		gw_call_on_cancel(c, idem_wait_cancel);
		w = NULL;
		break;
	case GW_IDEM_MISMATCH:
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
			     "idempotency_key reused with a different request");
		break;
	case GW_IDEM_BUSY:
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE,
			     "StartJob: too many requests in flight for idempotency keys; retry later");
		break;
	default:
		ro_store_failed(c);
		break;
	}
out:
	if (op)
		idem_op_free(op);
	free(w);
}

/* ---- metrics ---- */

int gw_rpc_owner_render_metrics(const struct gw_server *srv, struct evbuffer *out)
{
	const struct gw_store_stats *s;
	const struct gw_owner_stats *o;
	int bad = 0;

	if (!srv->store || !srv->owner)
		return 0;
	s = gw_store_stats(srv->store);
	o = gw_owner_stats(srv->owner);
#define RO_P "animate3d_gateway_"	/* the metrics prefix of gateway/http.c */
	bad |= evbuffer_add_printf(out, "# HELP " RO_P "state_store_total State store operations and rejections.\n"
				   "# TYPE " RO_P "state_store_total counter\n") < 0;
#define RO_M(name, v) bad |= evbuffer_add_printf(out, RO_P "state_store_total{what=\"%s\"} %llu\n", name, \
						  (unsigned long long)(v)) < 0
	RO_M("ops", s->ops);
	RO_M("errors", s->errors);
	RO_M("rejected_args", s->rejected_args);
	RO_M("rejected_read_only", s->rejected_read_only);
	RO_M("rejected_full", s->rejected_full);
	RO_M("owner_conflicts", s->owner_conflicts);
	RO_M("idem_conflicts", s->idem_conflicts);
	RO_M("slow_ops", s->slow_ops);
	RO_M("owner_cache_hits", s->owner_cache_hits);
#undef RO_M
	bad |= evbuffer_add_printf(out, "# HELP " RO_P "state_read_only 1 when the state store refuses writes.\n"
				   "# TYPE " RO_P "state_read_only gauge\n" RO_P "state_read_only %d\n",
				   gw_store_read_only(srv->store)) < 0;
	bad |= evbuffer_add_printf(out, "# HELP " RO_P "idempotency_total Idempotent StartJob outcomes.\n"
				   "# TYPE " RO_P "idempotency_total counter\n") < 0;
#define RO_M(name, v) bad |= evbuffer_add_printf(out, RO_P "idempotency_total{outcome=\"%s\"} %llu\n", \
						  name, (unsigned long long)(v)) < 0
	RO_M("proceed", o->proceeds);
	RO_M("replay", o->replays);
	RO_M("wait", o->waits);
	RO_M("mismatch", o->mismatches);
	RO_M("reconcile", o->reconciles);
	RO_M("busy_inflight", o->busy_inflight);
	RO_M("busy_waiters", o->busy_waiters);
	RO_M("ownership_repaired", o->ownership_repaired);
	RO_M("recon_adopted", o->recon_adopted);
	RO_M("recon_resubmit", o->recon_resubmit);
	RO_M("adopt_raced", o->adopt_raced);
	RO_M("recon_ambiguous", o->recon_ambiguous);
	RO_M("expired", o->expired);
#undef RO_M
	bad |= evbuffer_add_printf(out, "# HELP " RO_P "idempotency_inflight "
				   "Keys in flight, waiters, detached transfers.\n"
				   "# TYPE " RO_P "idempotency_inflight gauge\n"
				   RO_P "idempotency_inflight{what=\"keys\"} %llu\n"
				   RO_P "idempotency_inflight{what=\"waiters\"} %llu\n"
				   RO_P "idempotency_inflight{what=\"detached\"} %llu\n",
				   (unsigned long long)o->inflight, (unsigned long long)o->waiting,
				   (unsigned long long)srv->detached_ops) < 0;
#undef RO_P
	return bad ? -1 : 0;
}
