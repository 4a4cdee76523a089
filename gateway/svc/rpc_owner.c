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
#include "gateway/state/pg.h"
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

enum gw_ro_verdict gw_rpc_owner_decide(const char *tenant, int see_foreign,
				       const struct gw_ro_refs *refs, const char *const *who,
				       unsigned char *mask)
{
	for (size_t i = 0; i < refs->n; i++) {
		const struct gw_ro_ref *r = &refs->r[i];
		int others;

		mask[i] = 0;
		if (r->rule == GW_RO_OWN) {
			if (!gw_owner_may_see(who[i], tenant, see_foreign))
				return GW_RO_DENY;
			continue;
		}
		/* Models: stock models are unrecorded and shared; only another tenant's is hidden. */
		others = who[i] && strcmp(who[i], tenant) != 0;
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

/* ---- asking the store about many ids ---- */

/*
 * One batch of ownership questions for a call: ids[i] of kind kinds[i] (or `kind` for all), asked
 * in slices of at most GW_STORE_LOOKUP_MAX ids of one kind; who[i] = the recorded owner (a copy)
 * or NULL; unasked ids (asked[i] == 0: malformed) stay NULL. Then done(l, err, retry_ms) with
 * err NULL on success. ids are borrowed: from the call's request or a reply the caller keeps.
 */
struct ro_look {
	struct gw_call *c;
	size_t n;
	const char *const *ids;
	const enum gw_store_kind *kinds;	/* NULL: every id is of kind */
	enum gw_store_kind kind;
	unsigned char *asked;			/* 1: ask; 2: asked (answer in who) */
	char **who;
	size_t *slice;				/* indexes of the slice in flight */
	size_t nslice;
	void (*done)(struct ro_look *l, const char *err, long retry_ms);
	void *arg;
};

static void ro_look_free(struct ro_look *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->who[i]);
	free(l);	/* asked, who and slice live in the same allocation */
}

static enum gw_store_kind ro_look_kind(const struct ro_look *l, size_t i)
{
	return l->kinds ? l->kinds[i] : l->kind;
}

static void ro_look_next(struct ro_look *l);

static void ro_look_answer(void *arg, const struct gw_store_res *res)
{
	struct ro_look *l = arg;

	if (res->rc != 0) {
		l->done(l, res->err, res->retry_ms);
		return;
	}
	for (size_t j = 0; j < l->nslice; j++) {
		size_t i = l->slice[j];

		l->asked[i] = 2;
		if (res->tenants[j] && !(l->who[i] = strdup(res->tenants[j]))) {
			l->done(l, "out of memory", 0);
			return;
		}
	}
	ro_look_next(l);
}

/* Asks the next slice: up to GW_STORE_LOOKUP_MAX unasked ids of the first unasked id's kind. */
static void ro_look_next(struct ro_look *l)
{
	const char *ids[GW_STORE_LOOKUP_MAX];
	enum gw_store_kind k = 0;

	l->nslice = 0;
	for (size_t i = 0; i < l->n && l->nslice < GW_STORE_LOOKUP_MAX; i++) {
		if (l->asked[i] != 1)
			continue;
		if (!l->nslice)
			k = ro_look_kind(l, i);
		else if (ro_look_kind(l, i) != k)
			continue;
		ids[l->nslice] = l->ids[i];
		l->slice[l->nslice++] = i;
	}
	if (!l->nslice) {
		l->done(l, NULL, 0);
		return;
	}
	gw_store_owner_lookup(ro_store(l->c), k, ids, l->nslice, ro_look_answer, l);
}

/* Starts the questions; ask[i] says which ids to ask (NULL: all). done runs exactly once, maybe
 * before this returns; it owns l (ro_look_free). NULL when out of memory (done never runs). */
static struct ro_look *ro_look_new(struct gw_call *c, const char *const *ids, size_t n,
				   const enum gw_store_kind *kinds, enum gw_store_kind kind,
				   void (*done)(struct ro_look *l, const char *err, long retry_ms), void *arg)
{
	size_t nslice = n < GW_STORE_LOOKUP_MAX ? n : GW_STORE_LOOKUP_MAX;
	/* one allocation on the hot path (every GetStatus): l, who[n], slice[nslice], asked[n] */
	struct ro_look *l = malloc(sizeof *l + n * sizeof(char *) + nslice * sizeof(size_t) + n);

	if (!l)
		return NULL;
	memset(l, 0, sizeof *l);
	l->who = (char **)(void *)(l + 1);
	l->slice = (size_t *)(void *)(l->who + n);
	l->asked = (unsigned char *)(l->slice + nslice);
	memset(l->who, 0, n * sizeof(char *));
	l->c = c;
	l->n = n;
	l->ids = ids;
	l->kinds = kinds;
	l->kind = kind;
	l->done = done;
	l->arg = arg;
	for (size_t i = 0; i < n; i++)
		l->asked[i] = ids[i] && ids[i][0] && strnlen(ids[i], GW_STORE_ID_MAX + 1) <= GW_STORE_ID_MAX;
	return l;
}

/* Finishes c with UNAVAILABLE "<Method>: <why>", with a retry delay when the store gave one. */
static void ro_store_failed_why(struct gw_call *c, const char *why, long retry_ms)
{
	char msg[GW_RPC_OWNER_MSG_MAX];

	snprintf(msg, sizeof msg, "%s: %s", ro_what(c), why && why[0] ? why : "state store failed");
	if (retry_ms > 0)
		gw_call_fail_retry(c, GRPC_STATUS_UNAVAILABLE, retry_ms, msg);
	else
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s", msg);
}

/* Requests with "repeated string rids": the field, or NULL when the request has none. */
static const ProtobufCFieldDescriptor *ro_rids_field(const ProtobufCMessage *req, size_t *n, char ***rids)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "rids");

	if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_STRING)
		return NULL;
	*n = *(const size_t *)((const char *)req + f->quantifier_offset);
	*rids = *(char **const *)((const char *)req + f->offset);
	return f;
}

/* One admission in progress: the store's answers arrive in l. */
struct ro_admit {
	gw_rpc_owner_next_fn next;
	struct gw_ro_refs refs;
	enum gw_store_kind kinds[GW_RO_REFS_MAX];
	const char *ids[GW_RO_REFS_MAX];
};

/* RO_RIDS: keep only the tenant's rids (malformed ones stay for the row to reject). */
static void ro_rids_answered(struct ro_look *l, const char *err, long retry_ms)
{
	struct gw_call *c = l->c;
	struct ro_admit *a = l->arg;
	const ProtobufCMessage *req = gw_call_request(c);
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	struct gw_rpc_owner_view v = { 0 };
	const ProtobufCFieldDescriptor *f;
	size_t n = 0, kept = 0;
	char **rids = NULL;

	if (err) {
		ro_store_failed_why(c, err, retry_ms);
		goto out;
	}
	if (gw_call_cancelled(c)) {	/* left while the store answered: nothing goes upstream */
		gw_call_fail(c, GRPC_STATUS_CANCELLED, "%s: cancelled", ro_what(c));
		goto out;
	}
	f = ro_rids_field(req, &n, &rids);
	for (size_t i = 0; i < n; i++)
		kept += !l->asked[i] || gw_owner_may_see(l->who[i], t->name, t->see_foreign_jobs);
	if (kept == 0) {
		gw_rpc_owner_not_found(c);	/* upstream too 404s when it knows none */
		goto out;
	}
	if (kept == n) {
		a->next(c, req, &v);	/* nothing to hide: the request as it is (the polling case) */
		goto out;
	}
	v.rids = calloc(n, sizeof *v.rids);
	v.msg = malloc(req->descriptor->sizeof_message);
	if (!v.rids || !v.msg) {
		gw_rpc_owner_view_clear(&v);
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
		goto out;
	}
	kept = 0;
	for (size_t i = 0; i < n; i++)
		if (!l->asked[i] || gw_owner_may_see(l->who[i], t->name, t->see_foreign_jobs))
			v.rids[kept++] = rids[i];
	memcpy(v.msg, req, req->descriptor->sizeof_message);
	*(size_t *)((char *)v.msg + f->quantifier_offset) = kept;
	*(char ***)((char *)v.msg + f->offset) = v.rids;
	a->next(c, v.msg, &v);
out:
	free(a);
	ro_look_free(l);
}

static void ro_refs_answered(struct ro_look *l, const char *err, long retry_ms)
{
	struct gw_call *c = l->c;
	struct ro_admit *a = l->arg;
	const ProtobufCMessage *req = gw_call_request(c);
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	struct gw_rpc_owner_view v = { 0 };
	unsigned char mask[GW_RO_REFS_MAX];

	if (err) {
		ro_store_failed_why(c, err, retry_ms);
		goto out;
	}
	if (gw_call_cancelled(c)) {	/* left while the store answered: nothing goes upstream */
		gw_call_fail(c, GRPC_STATUS_CANCELLED, "%s: cancelled", ro_what(c));
		goto out;
	}
	if (gw_rpc_owner_decide(t->name, t->see_foreign_jobs, &a->refs, (const char *const *)l->who,
				mask) != GW_RO_ALLOW) {
		gw_rpc_owner_not_found(c);
		goto out;
	}
	if (gw_ro_kind_of(c) == RO_START_JOB)
		req = ro_mask_models(c, (const void *)req, &v, &a->refs, mask);
	if (req)
		a->next(c, req, &v);
out:
	free(a);
	ro_look_free(l);
}

int gw_rpc_owner_writable(struct gw_call *c)
{
	const char *down;

	if (gw_store_read_only(ro_store(c))) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE,
			     "%s: the gateway's state store is read-only (state.read_only): changes are refused",
			     ro_what(c));
		return -1;
	}
	/* A store that cannot take writes now (PostgreSQL down): refused before anything goes
	 * upstream, which would create what could not be recorded (and a retry a second one). */
	down = gw_store_unready(ro_store(c));
	if (!down)
		return 0;
	ro_store_failed_why(c, down, GW_RPC_OWNER_DOWN_RETRY_MS);
	return -1;
}

/*
 * RO_RIDS when the store's front can answer at once (gw_store_owner_peek: its owner cache, the
 * memory backend) and every rid is the tenant's to see: the polling case, admitted with the
 * request as it is and the empty view v, without an allocation or a round through the store's
 * callback. 1 when next ran; 0 when the store must be asked (a rid it cannot answer now, or one the tenant may not
 * see: ro_rids_answered filters or refuses those).
 */
static int ro_rids_peek(struct gw_call *c, char **rids, size_t n, gw_rpc_owner_next_fn next,
			struct gw_rpc_owner_view *v)
{
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	const char *who;

	for (size_t i = 0; i < n; i++)
		if (gw_store_owner_peek(ro_store(c), GW_OBJ_JOB, rids[i], &who) != 1 ||
		    !gw_owner_may_see(who, t->name, t->see_foreign_jobs))
			return 0;
	next(c, gw_call_request(c), v);
	return 1;
}

void gw_rpc_owner_admit(struct gw_call *c, gw_rpc_owner_next_fn next)
{
	const ProtobufCMessage *req = gw_call_request(c);
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	struct gw_rpc_owner_view v = { 0 };
	struct ro_admit *a = NULL;
	struct ro_look *l = NULL;
	size_t n = 0;
	char **rids = NULL;

	if (!t) {
		next(c, req, &v);
		return;
	}
	if ((gw_call_method(c)->perm & GW_PERM_WRITE) && gw_rpc_owner_writable(c))
		return;
	if (gw_ro_kind_of(c) == RO_RIDS) {
		if (gw_tr_rids_of(req, &n, &rids) != 0 || n == 0 || n > GW_TR_MAX_RIDS) {
			next(c, req, &v);	/* the row rejects what is wrong with it */
			return;
		}
		if (ro_rids_peek(c, rids, n, next, &v))
			return;
	}
	a = calloc(1, sizeof *a);
	if (!a)
		goto oom;
	a->next = next;
	if (gw_ro_kind_of(c) == RO_RIDS) {
		l = ro_look_new(c, (const char *const *)rids, n, NULL, GW_OBJ_JOB, ro_rids_answered, a);
		if (!l)
			goto oom;
		for (size_t i = 0; i < n; i++)	/* malformed rids are the row's to reject */
			if (!gw_tr_rid_valid(rids[i]))
				l->asked[i] = 0;
	} else {
		gw_rpc_owner_refs(gw_ro_kind_of(c), req, &a->refs);
		if (a->refs.n == 0) {
			free(a);
			next(c, req, &v);
			return;
		}
		for (size_t i = 0; i < a->refs.n; i++) {
			a->ids[i] = a->refs.r[i].id;
			a->kinds[i] = a->refs.r[i].kind;
		}
		l = ro_look_new(c, a->ids, a->refs.n, a->kinds, 0, ro_refs_answered, a);
		if (!l)
			goto oom;
	}
	ro_look_next(l);
	return;
oom:
	free(a);
	gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
}

/* ---- after a 2xx reply ---- */

/* What is left to do after a reply: the writes, in order, then the reply (packed). */
struct ro_after {
	struct gw_call *c;
	enum gw_ro_op op;
	enum gw_store_kind kind;
	char id[GW_STORE_ID_MAX + 1], id2[GW_STORE_ID_MAX + 1];	/* RECORD / FORGET; "" = none */
	int step;
	ProtobufCMessage *reply;	/* FILTER: filtered once the store has answered */
	int keep_stock, not_found_if_empty;
	const ProtobufCFieldDescriptor *field;
	const char *idname;
	const char **ids;		/* FILTER: the items' ids (borrowed from reply) */
	uint8_t *packed;		/* RECORD, FORGET: the reply, packed before any write */
	size_t packed_len;
};

static void ro_after_free(struct ro_after *a)
{
	if (!a)
		return;
	if (a->reply)
		protobuf_c_message_free_unpacked(a->reply, NULL);
	free(a->ids);
	free(a->packed);
	free(a);
}

/* Loud: upstream created something the gateway cannot attribute; it is not replied. */
static void ro_put_failed(struct ro_after *a, const char *id, const char *why, long retry_ms)
{
	struct gw_call *c = a->c;

	gw_log(GW_LOG_ERROR, "state", GW_LS("msg", "created object could not be recorded; answering UNAVAILABLE"),
	       GW_LTRACE(gw_call_trace(c)), GW_LS("tenant", gw_call_tenant(c)->name),
	       GW_LS("method", ro_what(c)), GW_LN("kind", a->kind),
	       GW_LS("id", a->kind == GW_OBJ_UPLOAD ? "-" : id), GW_LS("error", why ? why : "-"), GW_LEND);
	ro_store_failed_why(c, why, retry_ms);
}

static void ro_after_step(struct ro_after *a);

static void ro_after_written(void *arg, const struct gw_store_res *res)
{
	struct ro_after *a = arg;

	if (res->rc != 0 && a->op == GW_RO_RECORD) {
		ro_put_failed(a, a->step == 1 ? a->id : a->id2, res->err, res->retry_ms);
		ro_after_free(a);
		return;
	}
	if (res->rc != 0)	/* FORGET: upstream deleted it already; a row left behind hides nothing */
		gw_log(GW_LOG_WARN, "state",
		       GW_LS("msg", a->kind == GW_OBJ_MODEL ? "deleted model's owner row not removed"
							    : "deleted endpoint's owner row not removed"),
		       GW_LS("error", res->err), GW_LEND);
	ro_after_step(a);
}

/* The next write, or the reply once there is none left. */
static void ro_after_step(struct ro_after *a)
{
	const char *id = a->step == 0 ? a->id : a->step == 1 ? a->id2 : "";

	a->step++;
	if (!id[0]) {
		gw_call_reply_packed(a->c, a->packed, a->packed_len);
		ro_after_free(a);
		return;
	}
	if (a->op == GW_RO_RECORD)
		gw_store_owner_put(ro_store(a->c), a->kind, id, gw_call_tenant(a->c)->name,
				   gw_clock_wall_ms(), ro_after_written, a);
	else
		gw_store_owner_del(ro_store(a->c), a->kind, id, ro_after_written, a);
}

static int ro_model_stock(const char *platform)
{
	return platform && (strcmp(platform, "deepmotion") == 0 || strcmp(platform, "roblox") == 0);
}

/* FILTER: keeps the items the tenant may see (stock models too, with keep_stock); removed items
 * are freed; then replies (NOT_FOUND when nothing is left and not_found_if_empty). */
static void ro_filter_answered(struct ro_look *l, const char *err, long retry_ms)
{
	struct ro_after *a = l->arg;
	struct gw_call *c = a->c;
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	ProtobufCMessage **items = *(ProtobufCMessage ***)((char *)a->reply + a->field->offset);
	size_t n = l->n, kept = 0;

	if (err) {
		ro_store_failed_why(c, err, retry_ms);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int keep = l->asked[i] && gw_owner_may_see(l->who[i], t->name, t->see_foreign_jobs);
		int stock = 0;

		if (a->keep_stock && !keep) {
			const Animate3d__V1__Model *m = (const void *)items[i];

			stock = !l->who[i] && ro_model_stock(m->platform);
		}
		if (keep || stock)
			items[kept++] = items[i];
		else
			protobuf_c_message_free_unpacked(items[i], NULL);
	}
	*(size_t *)((char *)a->reply + a->field->quantifier_offset) = kept;
	if (a->not_found_if_empty && kept == 0)
		gw_rpc_owner_not_found(c);
	else
		gw_call_reply(c, a->reply);
out:
	ro_look_free(l);
	ro_after_free(a);
}

static int ro_after_filter(struct ro_after *a, const char *field, const char *idname)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(a->reply->descriptor, field);
	ProtobufCMessage **items;
	struct ro_look *l;
	size_t n;

	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		return -1;
	n = *(size_t *)((char *)a->reply + f->quantifier_offset);
	items = *(ProtobufCMessage ***)((char *)a->reply + f->offset);
	a->field = f;
	if (n == 0 || n > GW_RPC_OWNER_LIST_MAX) {
		if (n)
			return -1;
		if (a->not_found_if_empty)
			gw_rpc_owner_not_found(a->c);
		else
			gw_call_reply(a->c, a->reply);
		ro_after_free(a);
		return 0;
	}
	a->ids = calloc(n, sizeof *a->ids);
	if (!a->ids)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *idf =
			protobuf_c_message_descriptor_get_field_by_name(items[i]->descriptor, idname);

		a->ids[i] = idf ? *(const char *const *)((const char *)items[i] + idf->offset) : NULL;
	}
	l = ro_look_new(a->c, a->ids, n, NULL, a->kind, ro_filter_answered, a);
	if (!l)
		return -1;
	ro_look_next(l);
	return 0;
}

/* Packs reply into a (RECORD and FORGET reply what upstream said once the writes are done). */
static int ro_after_pack(struct ro_after *a, const ProtobufCMessage *reply)
{
	a->packed_len = protobuf_c_message_get_packed_size(reply);
	a->packed = malloc(a->packed_len ? a->packed_len : 1);
	if (!a->packed)
		return -1;
	protobuf_c_message_pack(reply, a->packed);
	return 0;
}

void gw_rpc_owner_after(struct gw_call *c, const ProtobufCMessage *req, ProtobufCMessage *reply)
{
	struct gw_ro_effect e;
	struct ro_after *a = NULL;

	if (!gw_call_tenant(c)) {
		gw_call_reply(c, reply);
		goto done;
	}
	switch (gw_rpc_owner_effect(gw_ro_kind_of(c), ro_what(c), req, reply, &e)) {
	case GW_RO_BAD_UPLOAD:
		/* Upstream answered an upload URL the gateway cannot attribute: never replied. */
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream sent an unusable upload url", ro_what(c));
		goto done;
	case GW_RO_RECORD:
	case GW_RO_FORGET:
	case GW_RO_FILTER:
		break;
	default:
		gw_call_reply(c, reply);
		goto done;
	}
	a = calloc(1, sizeof *a);
	if (!a)
		goto oom;
	a->c = c;
	a->op = e.op;
	a->kind = e.kind;
	if (e.op == GW_RO_FILTER) {
		a->reply = reply;	/* a owns it now */
		reply = NULL;
		a->keep_stock = e.keep_stock;
		a->not_found_if_empty = e.not_found_if_empty;
		if (ro_after_filter(a, e.field, e.idname) != 0) {
			ro_after_free(a);
			ro_store_failed_why(c, "out of memory or an unexpected list", 0);
		}
		goto done;
	}
	snprintf(a->id, sizeof a->id, "%s", e.id ? e.id : "");
	snprintf(a->id2, sizeof a->id2, "%s", e.id2 && e.op == GW_RO_RECORD ? e.id2 : "");
	if (ro_after_pack(a, reply) != 0)
		goto oom;
	ro_after_step(a);
	goto done;
oom:
	ro_after_free(a);
	gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
done:
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
}

void gw_rpc_owner_record_upload(struct gw_call *c, const char *url, const ProtobufCMessage *reply)
{
	struct ro_after *a = calloc(1, sizeof *a);

	if (!a || ro_after_pack(a, reply) != 0) {
		ro_after_free(a);
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", ro_what(c));
		return;
	}
	a->c = c;
	a->op = GW_RO_RECORD;
	a->kind = GW_OBJ_UPLOAD;
	if (!url || gw_owner_upload_id(url, a->id, sizeof a->id) != 0) {
		ro_after_free(a);
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream sent an unusable upload url", ro_what(c));
		return;
	}
	ro_after_step(a);
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
		{ "elsewhere", offsetof(struct gw_owner_stats, elsewhere) },
		{ "takeover", offsetof(struct gw_owner_stats, takeovers) },
		{ "take_lost", offsetof(struct gw_owner_stats, take_lost) },
		{ "renew_failed", offsetof(struct gw_owner_stats, renew_failures) },
	}, pg_rows[] = {
		{ "queries", offsetof(struct gw_pg_stats, queries) },
		{ "failed", offsetof(struct gw_pg_stats, failed) },
		{ "timeouts", offsetof(struct gw_pg_stats, timeouts) },
		{ "queue_full", offsetof(struct gw_pg_stats, queue_full) },
		{ "connects", offsetof(struct gw_pg_stats, connects) },
		{ "connect_failures", offsetof(struct gw_pg_stats, connect_failures) },
		{ "drops", offsetof(struct gw_pg_stats, drops) },
	};
	const struct gw_pg_stats *pg;
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
	gw_metrics_one(o, "state_reachable", "gauge",
		       "1 when the state store takes calls (PostgreSQL: a connection is ready).",
		       (uint64_t)(gw_store_unready(env->store) == NULL));
	pg = gw_store_pg_stats(env->store);
	if (pg) {
		gw_metrics_family(o, "postgres_total", "counter",
				  "PostgreSQL pool: queries, failures, connections.");
		for (size_t i = 0; i < sizeof pg_rows / sizeof pg_rows[0]; i++) {
			memcpy(&v, (const char *)pg + pg_rows[i].off, sizeof v);
			snprintf(labels, sizeof labels, "what=\"%s\"", pg_rows[i].what);
			gw_metrics_value(o, "postgres_total", labels, v);
		}
		gw_metrics_family(o, "postgres_connections", "gauge",
				  "PostgreSQL pool: ready connections, queries waiting and in flight.");
		gw_metrics_value(o, "postgres_connections", "what=\"ready\"", pg->connected);
		gw_metrics_value(o, "postgres_connections", "what=\"queued\"", pg->queued);
		gw_metrics_value(o, "postgres_connections", "what=\"busy\"", pg->busy);
	}
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
