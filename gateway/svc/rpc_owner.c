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
		gw_ro_store_failed(c);
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
		gw_ro_store_failed(c);
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

	if (!gw_validate_ok(GW_VK_URL, url) || gw_owner_upload_id(url, id, sizeof id) != 0)
		return 0;	/* empty or malformed: the row says what is wrong */
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
	switch (gw_ro_kind_of(c)) {
	case RO_RIDS:
		return ro_filter_rids(c, view);
	case RO_VIDEO_INFO:
		rc = ro_check_upload(c, ((const Animate3d__V1__GetVideoInfoRequest *)(const void *)req)->upload_url);
		break;
	case RO_START_JOB:
		if (ro_check_start_job(c, (const void *)req))
			return NULL;
		return ro_mask_models(c, (const void *)req, view);
	case RO_STORE_MODEL: {
		const Animate3d__V1__StoreModelRequest *r = (const void *)req;

		/* The model to update, and the uploaded files it is made from: all the tenant's. */
		rc = ro_check(c, GW_OBJ_MODEL, r->model_id) || ro_check_upload(c, r->model_url) ||
		     ro_check_upload(c, r->thumb_url);
		break;
	}
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
	gw_ro_store_failed(c);
out:
	free(ids);
	free(keep);
	return rc;
}

int gw_rpc_owner_after(struct gw_call *c, const ProtobufCMessage *req, ProtobufCMessage *reply)
{
	if (!gw_call_tenant(c) || !reply)
		return 0;
	switch (gw_ro_kind_of(c)) {
	case RO_UPLOAD_URL:
		return gw_rpc_owner_record_upload(c, ((Animate3d__V1__GetUploadUrlResponse *)(void *)reply)->url);
	case RO_MODEL_UPLOAD_URL: {
		const Animate3d__V1__GetModelUploadUrlResponse *r = (const void *)reply;

		/* Both files become the tenant's (StoreModel checks them); the thumbnail URL is
		 * optional in the answer. */
		if (gw_rpc_owner_record_upload(c, r->model_url))
			return -1;
		return r->thumb_url && r->thumb_url[0] ? gw_rpc_owner_record_upload(c, r->thumb_url) : 0;
	}
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
