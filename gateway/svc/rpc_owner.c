/*
 * rpc_owner: ownership checks, recording and list filtering on the unary path, and the state
 * metrics. See rpc_owner.h for the rules. The idempotent StartJob machine (keys, PENDING records,
 * reconciliation) is in rpc_idem.c: it is a transfer state machine, not a per-call check.
 */
#include "gateway/svc/rpc_owner.h"
#include "gateway/base/clock.h"
#include "gateway/svc/rpc_owner_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "auth/caller/perm.h"
#include "gateway/config/config.h"
#include "gateway/base/log.h"
#include "gateway/state/owner.h"
#include "gateway/api/params.h"
#include "gateway/api/validate.h"
#include "gateway/base/metrics.h"
#include "gateway/call/env.h"
#include "gateway/state/store.h"
#include "gateway/api/translate.h"

enum ro_kind gw_ro_kind_of(struct gw_call *c)
{
	return (enum ro_kind)gw_call_method(c)->own;
}

static const char *ro_what(struct gw_call *c)
{
	return gw_call_method(c)->name;
}

static struct gw_store *ro_store(struct gw_call *c)
{
	return gw_call_env(c)->store;
}

void gw_rpc_owner_not_found(struct gw_call *c)
{
	gw_call_fail(c, GRPC_STATUS_NOT_FOUND, "%s: not found", ro_what(c));
}

void gw_ro_store_failed(struct gw_call *c)
{
	gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: %s", ro_what(c),
		     gw_store_errmsg(ro_store(c))[0] ? gw_store_errmsg(ro_store(c)) : "state store failed");
}

/* An id worth asking the store about: well formed (every store id -- rid, model and endpoint
 * id, hex upload id -- is 1..128 of A-Z a-z 0-9 _ -). A malformed one is INVALID_ARGUMENT (the
 * call's decoder and the translate row say so), never a store lookup that would say NOT_FOUND. */
static int ro_id_ok(const char *id)
{
	return gw_validate_ok(GW_VK_MODEL_ID, id);
}

/* ---- pure parts: what a request names, what a reply changes ---- */

static void ro_ref(struct gw_ro_refs *out, enum gw_store_kind k, enum gw_ro_rule rule,
		   const char *id, int model)
{
	if (!ro_id_ok(id) || out->n >= GW_RO_REFS_MAX)
		return;		/* left to the translate row, which rejects it */
	out->r[out->n++] = (struct gw_ro_ref){ k, rule, id, model };
}

/* An upload URL names the upload its id (without query) is; empty or malformed: the row says
 * what is wrong. */
static void ro_ref_upload(struct gw_ro_refs *out, const char *url)
{
	char *id;

	if (out->nuploads >= GW_RO_UPLOADS_MAX || !gw_validate_ok(GW_VK_URL, url))
		return;
	id = out->upload_id[out->nuploads];
	if (gw_owner_upload_id(url, id, sizeof out->upload_id[0]) != 0)
		return;
	out->nuploads++;
	ro_ref(out, GW_OBJ_UPLOAD, GW_RO_OWN, id, -1);
}

static void ro_refs_start_job(const Animate3d__V1__StartJobRequest *r, struct gw_ro_refs *out)
{
	const Animate3d__V1__Params *p = r->params;

	switch (r->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		ro_ref_upload(out, r->upload_url);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
		if (gw_tr_rid_valid(r->rerun_rid))
			ro_ref(out, GW_OBJ_JOB, GW_RO_OWN, r->rerun_rid, -1);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID:
		if (gw_tr_rid_valid(r->mp_detection_rid))
			ro_ref(out, GW_OBJ_JOB, GW_RO_OWN, r->mp_detection_rid, -1);
		break;
	default:
		break;
	}
	if (!p)
		return;
	ro_ref(out, GW_OBJ_MODEL, GW_RO_MASK, p->model_id, -1);
	for (size_t i = 0; i < p->n_models && i < GW_PARAMS_MAX_MODELS; i++)
		if (p->models[i])
			ro_ref(out, GW_OBJ_MODEL, GW_RO_MASK, p->models[i]->model_id, (int)i);
}

void gw_rpc_owner_refs(enum ro_kind kind, const ProtobufCMessage *req, struct gw_ro_refs *out)
{
	out->n = 0;
	out->nuploads = 0;
	switch (kind) {
	case RO_VIDEO_INFO:
		ro_ref_upload(out, ((const Animate3d__V1__GetVideoInfoRequest *)(const void *)req)->upload_url);
		break;
	case RO_START_JOB:
		ro_refs_start_job((const void *)req, out);
		break;
	case RO_STORE_MODEL: {
		const Animate3d__V1__StoreModelRequest *r = (const void *)req;

		/* The model to update, and the uploaded files it is made from: all the tenant's. */
		ro_ref(out, GW_OBJ_MODEL, GW_RO_OWN, r->model_id, -1);
		ro_ref_upload(out, r->model_url);
		ro_ref_upload(out, r->thumb_url);
		break;
	}
	case RO_LIST_MODELS:
		ro_ref(out, GW_OBJ_MODEL, GW_RO_NOT_OTHERS,
		       ((const Animate3d__V1__ListModelsRequest *)(const void *)req)->model_id, -1);
		break;
	case RO_DELETE_MODEL:
		ro_ref(out, GW_OBJ_MODEL, GW_RO_OWN,
		       ((const Animate3d__V1__DeleteModelRequest *)(const void *)req)->model_id, -1);
		break;
	case RO_ENDPOINT:
		/* Get/Update/Delete requests all start with "string id = 1". */
		ro_ref(out, GW_OBJ_ENDPOINT, GW_RO_OWN,
		       ((const Animate3d__V1__GetEndpointRequest *)(const void *)req)->id, -1);
		break;
	case RO_JOB: {
		const char *rid = ((const Animate3d__V1__GetPersonUrlsRequest *)(const void *)req)->rid;

		if (gw_tr_rid_valid(rid))
			ro_ref(out, GW_OBJ_JOB, GW_RO_OWN, rid, -1);
		break;
	}
	default:
		break;
	}
}

enum gw_ro_verdict gw_rpc_owner_decide(struct gw_store *s, const char *tenant, int see_foreign,
				       const struct gw_ro_refs *refs, unsigned char *mask)
{
	char who[GW_STORE_TENANT_MAX + 1];

	for (size_t i = 0; i < refs->n; i++) {
		const struct gw_ro_ref *r = &refs->r[i];
		int rc, others;

		mask[i] = 0;
		if (r->rule == GW_RO_OWN) {
			rc = gw_owner_check(s, r->kind, r->id, tenant, see_foreign);
			if (rc == -1)
				return GW_RO_DENY;
			if (rc < 0)
				return GW_RO_ERROR;
			continue;
		}
		/* Models: stock models are unrecorded and shared; only another tenant's is hidden. */
		rc = gw_store_owner_get(s, r->kind, r->id, who, sizeof who);
		if (rc < 0)
			return GW_RO_ERROR;
		others = rc == 1 && strcmp(who, tenant) != 0;
		if (others && r->rule == GW_RO_NOT_OTHERS)
			return GW_RO_DENY;
		mask[i] = (unsigned char)others;
	}
	return GW_RO_ALLOW;
}

enum gw_ro_op gw_rpc_owner_effect(enum ro_kind kind, const char *method,
				  const ProtobufCMessage *req, const ProtobufCMessage *reply,
				  struct gw_ro_effect *out)
{
	const char *id = NULL;

	memset(out, 0, sizeof *out);
	switch (kind) {
	case RO_UPLOAD_URL:
		/* Every signed URL of one object is one upload; a URL without one is never replied. */
		out->kind = GW_OBJ_UPLOAD;
		id = ((const Animate3d__V1__GetUploadUrlResponse *)(const void *)reply)->url;
		if (!id || gw_owner_upload_id(id, out->upload_id, sizeof out->upload_id) != 0)
			return out->op = GW_RO_BAD_UPLOAD;
		out->id = out->upload_id;
		return out->op = GW_RO_RECORD;
	case RO_MODEL_UPLOAD_URL: {
		const Animate3d__V1__GetModelUploadUrlResponse *r = (const void *)reply;

		/* Both files become the tenant's (StoreModel checks them); the thumbnail URL is
		 * optional in the answer. */
		out->kind = GW_OBJ_UPLOAD;
		if (!r->model_url ||
		    gw_owner_upload_id(r->model_url, out->upload_id, sizeof out->upload_id) != 0)
			return out->op = GW_RO_BAD_UPLOAD;
		out->id = out->upload_id;
		if (r->thumb_url && r->thumb_url[0]) {
			if (gw_owner_upload_id(r->thumb_url, out->upload_id2, sizeof out->upload_id2) != 0)
				return out->op = GW_RO_BAD_UPLOAD;
			out->id2 = out->upload_id2;
		}
		return out->op = GW_RO_RECORD;
	}
	case RO_START_JOB:
		out->kind = GW_OBJ_JOB;
		id = ((const Animate3d__V1__StartJobResponse *)(const void *)reply)->rid;
		break;
	case RO_STORE_MODEL:
		out->kind = GW_OBJ_MODEL;
		id = ((const Animate3d__V1__StoreModelResponse *)(const void *)reply)->model_id;
		break;
	case RO_CREATE_ENDPOINT:
		out->kind = GW_OBJ_ENDPOINT;
		id = ((const Animate3d__V1__Endpoint *)(const void *)reply)->id;
		break;
	case RO_DELETE_MODEL:
		id = ((const Animate3d__V1__DeleteModelRequest *)(const void *)req)->model_id;
		if (!ro_id_ok(id))
			return out->op = GW_RO_NOTHING;
		out->kind = GW_OBJ_MODEL;
		out->id = id;
		return out->op = GW_RO_FORGET;
	case RO_ENDPOINT:
		id = ((const Animate3d__V1__DeleteEndpointRequest *)(const void *)req)->id;
		if (!method || strcmp(method, "DeleteEndpoint") != 0 || !ro_id_ok(id))
			return out->op = GW_RO_NOTHING;
		out->kind = GW_OBJ_ENDPOINT;
		out->id = id;
		return out->op = GW_RO_FORGET;
	case RO_LIST_JOBS:
		*out = (struct gw_ro_effect){ .op = GW_RO_FILTER, .kind = GW_OBJ_JOB, .field = "jobs",
					      .idname = "rid" };
		return out->op;
	case RO_LIST_ENDPOINTS:
		*out = (struct gw_ro_effect){ .op = GW_RO_FILTER, .kind = GW_OBJ_ENDPOINT,
					      .field = "endpoints", .idname = "id" };
		return out->op;
	case RO_LIST_MODELS:
		id = ((const Animate3d__V1__ListModelsRequest *)(const void *)req)->model_id;
		/* Asked by id and nothing (left) to show: the one not-found answer, whether the id
		 * does not exist or is another tenant's. */
		*out = (struct gw_ro_effect){ .op = GW_RO_FILTER, .kind = GW_OBJ_MODEL, .field = "models",
					      .idname = "id", .keep_stock = 1,
					      .not_found_if_empty = id && id[0] };
		return out->op;
	default:
		return out->op = GW_RO_NOTHING;
	}
	/* Created: recorded for the tenant before the reply is sent; nothing to record when empty. */
	if (!id || !id[0])
		return out->op = GW_RO_NOTHING;
	out->id = id;
	return out->op = GW_RO_RECORD;
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
 * Which ids: the GW_RO_MASK refs gw_rpc_owner_decide marked. Returns the request to send (r
 * itself when nothing is masked), or NULL after failing the call.
 */
static const ProtobufCMessage *ro_mask_models(struct gw_call *c, const Animate3d__V1__StartJobRequest *r,
					      struct gw_rpc_owner_view *v, const struct gw_ro_refs *refs,
					      const unsigned char *mask)
{
	const Animate3d__V1__Params *p = r->params;
	Animate3d__V1__StartJobRequest *rq = NULL;
	Animate3d__V1__Params *pc = NULL;
	unsigned char mask_id = 0, mask_models[GW_PARAMS_MAX_MODELS] = { 0 };
	int masked = 0;

	for (size_t i = 0; i < refs->n; i++) {
		if (refs->r[i].rule != GW_RO_MASK || !mask[i])
			continue;
		masked = 1;
		if (refs->r[i].model < 0)
			mask_id = 1;
		else
			mask_models[refs->r[i].model] = 1;
	}
	if (!p || !masked)
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
	if (mask_id && !(pc->model_id = ro_view_own(v, ro_mask_id())))
		goto oom;
	if (p->n_models) {
		Animate3d__V1__TrackedModel **ms = ro_view_own(v, calloc(p->n_models, sizeof *ms));

		if (!ms)
			goto oom;
		for (size_t i = 0; i < p->n_models; i++) {
			Animate3d__V1__TrackedModel *tm;

			ms[i] = p->models[i];
			if (!p->models[i] || !mask_models[i])
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
		gw_ro_store_failed(c);
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
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	struct gw_ro_refs refs;
	unsigned char mask[GW_RO_REFS_MAX];

	view->msg = NULL;
	view->rids = NULL;
	view->nowned = 0;
	if (!t)
		return req;
	if ((gw_call_method(c)->perm & GW_PERM_WRITE) && gw_rpc_owner_writable(c))
		return NULL;
	if (gw_ro_kind_of(c) == RO_RIDS)
		return ro_filter_rids(c, view);
	gw_rpc_owner_refs(gw_ro_kind_of(c), req, &refs);
	switch (gw_rpc_owner_decide(ro_store(c), t->name, t->see_foreign_jobs, &refs, mask)) {
	case GW_RO_ALLOW:
		break;
	case GW_RO_DENY:
		gw_rpc_owner_not_found(c);
		return NULL;
	default:
		gw_ro_store_failed(c);
		return NULL;
	}
	if (gw_ro_kind_of(c) == RO_START_JOB)
		return ro_mask_models(c, (const void *)req, view, &refs, mask);
	return req;
}

/* ---- after a 2xx reply ---- */

static int ro_put(struct gw_call *c, enum gw_store_kind k, const char *id)
{
	if (!id || !id[0])
		return 0;
	if (gw_store_owner_put(ro_store(c), k, id, gw_call_tenant(c)->name, gw_clock_wall_ms()) == 0)
		return 0;
	/* Loud: upstream created something the gateway cannot attribute; it is not replied. */
	gw_log(GW_LOG_ERROR, "state", GW_LS("msg", "created object could not be recorded; answering UNAVAILABLE"),
	       GW_LS("request_id", gw_call_id(c)), GW_LS("tenant", gw_call_tenant(c)->name),
	       GW_LS("method", ro_what(c)), GW_LN("kind", k), GW_LS("id", k == GW_OBJ_UPLOAD ? "-" : id),
	       GW_LS("error", gw_store_errmsg(ro_store(c))), GW_LEND);
	gw_ro_store_failed(c);
	return -1;
}

/* Upstream answered an upload URL the gateway cannot attribute: never replied. Returns -1. */
static int ro_bad_upload(struct gw_call *c)
{
	gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream sent an unusable upload url", ro_what(c));
	return -1;
}

int gw_rpc_owner_record_upload(struct gw_call *c, const char *url)
{
	char id[GW_OWNER_UPLOAD_ID_LEN + 1];

	if (!url || gw_owner_upload_id(url, id, sizeof id) != 0)
		return ro_bad_upload(c);
	return ro_put(c, GW_OBJ_UPLOAD, id);
}

static int ro_model_stock(const char *platform)
{
	return platform && (strcmp(platform, "deepmotion") == 0 || strcmp(platform, "roblox") == 0);
}

/*
 * Filters a repeated sub-message field of reply in place: keeps items whose id (field idname) the
 * tenant may see; removed items are freed. keep_stock: ListModels keeps stock models unrecorded.
 * Returns how many items are left, or -1 when the call was finished (UNAVAILABLE).
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
	rc = (int)kept;		/* <= GW_RPC_OWNER_LIST_MAX */
	goto out;
fail:
	gw_ro_store_failed(c);
out:
	free(ids);
	free(keep);
	return rc;
}

int gw_rpc_owner_after(struct gw_call *c, const ProtobufCMessage *req, ProtobufCMessage *reply)
{
	struct gw_ro_effect e;
	int kept;

	if (!gw_call_tenant(c) || !reply)
		return 0;
	switch (gw_rpc_owner_effect(gw_ro_kind_of(c), ro_what(c), req, reply, &e)) {
	case GW_RO_RECORD:
		if (ro_put(c, e.kind, e.id) != 0)
			return -1;
		return e.id2 ? ro_put(c, e.kind, e.id2) : 0;
	case GW_RO_BAD_UPLOAD:
		return ro_bad_upload(c);
	case GW_RO_FORGET:
		/* Upstream deleted it already: a row left behind hides nothing, so only a warning. */
		if (gw_store_owner_del(ro_store(c), e.kind, e.id) != 0)
			gw_log(GW_LOG_WARN, "state",
			       GW_LS("msg", e.kind == GW_OBJ_MODEL ? "deleted model's owner row not removed"
								   : "deleted endpoint's owner row not removed"),
			       GW_LS("error", gw_store_errmsg(ro_store(c))), GW_LEND);
		return 0;
	case GW_RO_FILTER:
		kept = ro_filter_reply(c, reply, e.field, e.idname, e.kind, e.keep_stock);
		if (kept < 0)
			return -1;
		if (e.not_found_if_empty && kept == 0) {
			gw_rpc_owner_not_found(c);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

/* ---- metrics ---- */

void gw_rpc_owner_render_metrics(const struct gw_env *env, uint64_t detached,
				 struct gw_metrics_out *o)
{
	static const struct {
		const char *what;
		size_t off;
	} store_rows[] = {
		{ "ops", offsetof(struct gw_store_stats, ops) },
		{ "errors", offsetof(struct gw_store_stats, errors) },
		{ "rejected_args", offsetof(struct gw_store_stats, rejected_args) },
		{ "rejected_read_only", offsetof(struct gw_store_stats, rejected_read_only) },
		{ "rejected_full", offsetof(struct gw_store_stats, rejected_full) },
		{ "owner_conflicts", offsetof(struct gw_store_stats, owner_conflicts) },
		{ "idem_conflicts", offsetof(struct gw_store_stats, idem_conflicts) },
		{ "slow_ops", offsetof(struct gw_store_stats, slow_ops) },
		{ "owner_cache_hits", offsetof(struct gw_store_stats, owner_cache_hits) },
	}, idem_rows[] = {
		{ "proceed", offsetof(struct gw_owner_stats, proceeds) },
		{ "replay", offsetof(struct gw_owner_stats, replays) },
		{ "wait", offsetof(struct gw_owner_stats, waits) },
		{ "mismatch", offsetof(struct gw_owner_stats, mismatches) },
		{ "reconcile", offsetof(struct gw_owner_stats, reconciles) },
		{ "busy_inflight", offsetof(struct gw_owner_stats, busy_inflight) },
		{ "busy_waiters", offsetof(struct gw_owner_stats, busy_waiters) },
		{ "ownership_repaired", offsetof(struct gw_owner_stats, ownership_repaired) },
		{ "recon_adopted", offsetof(struct gw_owner_stats, recon_adopted) },
		{ "recon_resubmit", offsetof(struct gw_owner_stats, recon_resubmit) },
		{ "adopt_raced", offsetof(struct gw_owner_stats, adopt_raced) },
		{ "recon_ambiguous", offsetof(struct gw_owner_stats, recon_ambiguous) },
		{ "expired", offsetof(struct gw_owner_stats, expired) },
		{ "limited_inflight", offsetof(struct gw_owner_stats, limited_inflight) },
		{ "limited_waiters", offsetof(struct gw_owner_stats, limited_waiters) },
	};
	const struct gw_store_stats *s;
	const struct gw_owner_stats *ow;
	char labels[64];
	uint64_t v;

	if (!env->store || !env->owner)
		return;
	s = gw_store_stats(env->store);
	ow = gw_owner_stats(env->owner);
	gw_metrics_family(o, "state_store_total", "counter", "State store operations and rejections.");
	for (size_t i = 0; i < sizeof store_rows / sizeof store_rows[0]; i++) {
		memcpy(&v, (const char *)s + store_rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "what=\"%s\"", store_rows[i].what);
		gw_metrics_value(o, "state_store_total", labels, v);
	}
	gw_metrics_one(o, "state_read_only", "gauge", "1 when the state store refuses writes.",
		       (uint64_t)gw_store_read_only(env->store));
	gw_metrics_family(o, "idempotency_total", "counter", "Idempotent StartJob outcomes.");
	for (size_t i = 0; i < sizeof idem_rows / sizeof idem_rows[0]; i++) {
		memcpy(&v, (const char *)ow + idem_rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "outcome=\"%s\"", idem_rows[i].what);
		gw_metrics_value(o, "idempotency_total", labels, v);
	}
	gw_metrics_family(o, "idempotency_inflight", "gauge",
			  "Keys in flight, waiters, detached transfers.");
	gw_metrics_value(o, "idempotency_inflight", "what=\"keys\"", ow->inflight);
	gw_metrics_value(o, "idempotency_inflight", "what=\"waiters\"", ow->waiting);
	gw_metrics_value(o, "idempotency_inflight", "what=\"detached\"", detached);
	/* Per tenant: keys in flight (detached transfers included) and waiting duplicates. */
	gw_slots_render(gw_owner_tenant_slots(env->owner, 0), "idempotency_keys_tenant",
			"Idempotent StartJob keys in flight by tenant.", "tenant", "tenant", 1, o);
	gw_slots_render(gw_owner_tenant_slots(env->owner, 1), "idempotency_waiters_tenant",
			"Duplicate keyed StartJob calls waiting, by tenant.", "tenant", "tenant", 1, o);
}
