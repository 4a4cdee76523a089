/* Unit tests for gateway/translate*.c: gRPC request -> upstream method/path/body, upstream JSON ->
 * reply message (rendered as text by a small descriptor-driven dumper), and the rejections. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/api/translate.h"
#include "gateway/call/call.h"
#include "gateway/methods.h"

#define DUMP_MAX 4096

/* ---- a text rendering of a message: non-default fields only, in field order ---- */

struct dump {
	char buf[DUMP_MAX];
	size_t len;
};


/* The upstream half of the row of a gRPC path (gateway/methods.c); fails the test when none. */
static const struct gw_tr_rpc *tr_row(const char *path)
{
	const struct gw_method *m = gw_methods_find(path);

	cr_assert(m && m->tr.build, "no translating row %s", path ? path : "(null)");
	return &m->tr;
}

static void dump_put(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dump_put(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sizeof(d->buf) - d->len, "dump overflow");
	d->len += (size_t)n;
}

static void dump_msg(struct dump *d, const ProtobufCMessage *m);

/* One value at p; returns 0 when it is the default (and so not printed). */
static int dump_value(struct dump *d, const ProtobufCFieldDescriptor *f, const void *p, int force)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_ENUM:
		if (!force && *(const int32_t *)p == 0)
			return 0;
		dump_put(d, "%s=%d ", f->name, *(const int32_t *)p);
		return 1;
	case PROTOBUF_C_TYPE_INT64:
		if (!force && *(const int64_t *)p == 0)
			return 0;
		dump_put(d, "%s=%lld ", f->name, (long long)*(const int64_t *)p);
		return 1;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!force && *(const double *)p == 0)
			return 0;
		dump_put(d, "%s=%g ", f->name, *(const double *)p);
		return 1;
	case PROTOBUF_C_TYPE_BOOL:
		if (!force && !*(const protobuf_c_boolean *)p)
			return 0;
		dump_put(d, "%s=%s ", f->name, *(const protobuf_c_boolean *)p ? "true" : "false");
		return 1;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (!force && (!s || !s[0]))
			return 0;
		dump_put(d, "%s=\"%s\" ", f->name, s ? s : "");
		return 1;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sm = *(ProtobufCMessage *const *)p;
		if (!sm)
			return 0;
		dump_put(d, "%s{", f->name);
		dump_msg(d, sm);
		if (d->buf[d->len - 1] == ' ')
			d->len--;
		dump_put(d, "} ");
		return 1;
	}
	default:
		cr_assert_fail("dump: unhandled type %d", (int)f->type);
		return 0;
	}
}

static size_t dump_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static void dump_msg(struct dump *d, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;

	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		const char *base = (const char *)m;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++)
				dump_value(d, f, arr + k * dump_size(f), 1);
		} else {
			/* A set oneof member is shown even at its default (presence: mode 0). */
			int set = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
				  *(const uint32_t *)(const void *)(base + f->quantifier_offset) == f->id;

			dump_value(d, f, base + f->offset, set);
		}
	}
}

/* The dump of m, and a check that m packs and unpacks to the same dump (so it is well formed). */
static char *dump_of(const ProtobufCMessage *m)
{
	struct dump d = { .len = 0 };
	struct dump d2 = { .len = 0 };
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	ProtobufCMessage *back;

	cr_assert_not_null(buf);
	cr_assert_eq(protobuf_c_message_pack(m, buf), n);
	back = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
	cr_assert_not_null(back);
	d.buf[0] = d2.buf[0] = '\0';
	dump_msg(&d, m);
	dump_msg(&d2, back);
	cr_assert_str_eq(d.buf, d2.buf);
	protobuf_c_message_free_unpacked(back, NULL);
	free(buf);
	if (d.len && d.buf[d.len - 1] == ' ')
		d.buf[--d.len] = '\0';
	return strdup(d.buf);
}

/* ---- requests ---- */

union anyreq {
	ProtobufCMessage base;
	Animate3d__V1__GetUploadUrlRequest upload;
	Animate3d__V1__StartJobRequest start;
	Animate3d__V1__GetStatusRequest status;
	Animate3d__V1__WatchStatusRequest watch;
	Animate3d__V1__GetDownloadUrlsRequest download;
	Animate3d__V1__ListJobsRequest list;
	Animate3d__V1__GetVideoInfoRequest vinfo;
	Animate3d__V1__GetPersonUrlsRequest persons;
	Animate3d__V1__GetModelUploadUrlRequest mupload;
	Animate3d__V1__StoreModelRequest store;
	Animate3d__V1__ListModelsRequest lmodels;
	Animate3d__V1__DeleteModelRequest dmodel;
	Animate3d__V1__CreateEndpointRequest cep;
	Animate3d__V1__GetEndpointRequest gep;
	Animate3d__V1__ListEndpointsRequest lep;
	Animate3d__V1__UpdateEndpointRequest uep;
	Animate3d__V1__DeleteEndpointRequest dep;
	Animate3d__V1__GetCreditBalanceRequest credits;
	Animate3d__V1__GetMinutesBalanceRequest minutes;
};

/* Storage a request may point into. */
struct rfix {
	union anyreq u;
	Animate3d__V1__Params params;
	Animate3d__V1__TrackedModel model;
	Animate3d__V1__TrackedModel *models[1];
	char *strs[GW_TR_MAX_RIDS + 2];
	char rid_text[GW_TR_MAX_RIDS + 2][8];
	Animate3d__V1__JobState states[GW_VALIDATE_MAX_STATES + 1];
};

#define STRS(fx, ...)                                                   \
	do {                                                            \
		const char *const v_[] = { __VA_ARGS__ };               \
		for (size_t i_ = 0; i_ < sizeof(v_) / sizeof(v_[0]); i_++) \
			(fx)->strs[i_] = (char *)v_[i_];                \
	} while (0)

static void r_upload(struct rfix *x)
{
	Animate3d__V1__GetUploadUrlRequest r = ANIMATE3D__V1__GET_UPLOAD_URL_REQUEST__INIT;
	r.name = "dance clip.mp4";
	x->u.upload = r;
}
static void r_upload_esc(struct rfix *x)
{
	r_upload(x);
	x->u.upload.name = "v&x=1\xc3\xa9.mp4";
	x->u.upload.resumable = 1;
}
static void r_upload_empty(struct rfix *x)
{
	r_upload(x);
	x->u.upload.name = "";
}
static void r_upload_slash(struct rfix *x)
{
	r_upload(x);
	x->u.upload.name = "a/b.mp4";
}

static void r_start_url(struct rfix *x)
{
	Animate3d__V1__StartJobRequest r = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	r.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL;
	r.upload_url = "http://127.0.0.1:8090/storage/v.mp4";
	x->u.start = r;
}
static void r_start_rerun(struct rfix *x)
{
	Animate3d__V1__Params p = ANIMATE3D__V1__PARAMS__INIT;

	r_start_url(x);
	x->u.start.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID;
	x->u.start.rerun_rid = "Abc123";
	x->params = p;
	STRS(x, "bvh", "fbx");
	x->params.formats = x->strs;
	x->params.n_formats = 2;
	x->u.start.params = &x->params;
}
static void r_start_mp(struct rfix *x)
{
	Animate3d__V1__Params p = ANIMATE3D__V1__PARAMS__INIT;
	Animate3d__V1__TrackedModel m = ANIMATE3D__V1__TRACKED_MODEL__INIT;

	r_start_url(x);
	x->u.start.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID;
	x->u.start.mp_detection_rid = "Mp1";
	x->params = p;
	x->model = m;
	x->model.tracking_ref = "001";
	x->model.model_id = "m1";
	x->models[0] = &x->model;
	x->params.models = x->models;
	x->params.n_models = 1;
	x->u.start.params = &x->params;
}
/* The deprecated int id is still served, and goes upstream in the documented string form. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void r_start_mp_legacy(struct rfix *x)
{
	r_start_mp(x);
	x->model.tracking_ref = "";
	x->model.tracking_id = 2;
}
#pragma GCC diagnostic pop
static void r_start_mp_badref(struct rfix *x)
{
	r_start_mp(x);
	x->model.tracking_ref = "1a";
}
static void r_start_mp_zero(struct rfix *x)
{
	r_start_mp(x);
	x->model.tracking_ref = "0";
}
static void r_start_mp_nomodels(struct rfix *x)
{
	r_start_mp(x);
	x->params.n_models = 0;
}
static void r_start_none(struct rfix *x)
{
	r_start_url(x);
	x->u.start.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET;
}
static void r_start_ftp(struct rfix *x)
{
	r_start_url(x);
	x->u.start.upload_url = "ftp://h/v.mp4";
}
static void r_start_badrid(struct rfix *x)
{
	r_start_rerun(x);
	x->u.start.rerun_rid = "a b";
}
static void r_start_badparams(struct rfix *x)
{
	r_start_rerun(x);
	x->params.video_speed_multiplier_opt_case =
		ANIMATE3D__V1__PARAMS__VIDEO_SPEED_MULTIPLIER_OPT_VIDEO_SPEED_MULTIPLIER;
	x->params.video_speed_multiplier = 0.5;
}
static void r_start_badextra(struct rfix *x)
{
	r_start_url(x);
	x->strs[0] = "trim=1,2";
	x->u.start.extra_params = x->strs;
	x->u.start.n_extra_params = 1;
}
static void r_start_extra(struct rfix *x)
{
	r_start_url(x);
	x->strs[0] = "newOpt=1";
	x->u.start.extra_params = x->strs;
	x->u.start.n_extra_params = 1;
}

static void r_status(struct rfix *x)
{
	Animate3d__V1__GetStatusRequest r = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	STRS(x, "r1", "r2", "r1");
	r.rids = x->strs;
	r.n_rids = 3;
	x->u.status = r;
}
static void r_status_none(struct rfix *x)
{
	r_status(x);
	x->u.status.n_rids = 0;
}
static void r_status_many(struct rfix *x)
{
	r_status(x);
	for (size_t i = 0; i < GW_TR_MAX_RIDS + 1; i++) {
		snprintf(x->rid_text[i], sizeof(x->rid_text[i]), "r%zu", i);
		x->strs[i] = x->rid_text[i];
	}
	x->u.status.n_rids = GW_TR_MAX_RIDS + 1;
}
static void r_status_bad(struct rfix *x)
{
	r_status(x);
	x->strs[1] = "r/2";
}
static void r_status_long(struct rfix *x)
{
	static const char rid65[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

	r_status(x);
	x->strs[0] = (char *)rid65;
}
static void r_watch(struct rfix *x)
{
	Animate3d__V1__WatchStatusRequest r = ANIMATE3D__V1__WATCH_STATUS_REQUEST__INIT;
	STRS(x, "w1");
	r.rids = x->strs;
	r.n_rids = 1;
	x->u.watch = r;
}
static void r_download(struct rfix *x)
{
	Animate3d__V1__GetDownloadUrlsRequest r = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	STRS(x, "r1", "r2");
	r.rids = x->strs;
	r.n_rids = 2;
	x->u.download = r;
}
static void r_list(struct rfix *x)
{
	Animate3d__V1__ListJobsRequest r = ANIMATE3D__V1__LIST_JOBS_REQUEST__INIT;
	x->u.list = r;
}
static void r_list_states(struct rfix *x)
{
	r_list(x);
	x->states[0] = ANIMATE3D__V1__JOB_STATE__SUCCESS;
	x->states[1] = ANIMATE3D__V1__JOB_STATE__PROGRESS;
	x->states[2] = ANIMATE3D__V1__JOB_STATE__SUCCESS;
	x->u.list.states = x->states;
	x->u.list.n_states = 3;
}
static void r_list_bad(struct rfix *x)
{
	r_list_states(x);
	x->states[1] = ANIMATE3D__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
}
static void r_vinfo(struct rfix *x)
{
	Animate3d__V1__GetVideoInfoRequest r = ANIMATE3D__V1__GET_VIDEO_INFO_REQUEST__INIT;
	r.upload_url = "https://st/v.mp4?X-Goog-Signature=s";
	x->u.vinfo = r;
}
static void r_vinfo_empty(struct rfix *x)
{
	r_vinfo(x);
	x->u.vinfo.upload_url = "";
}
static void r_persons(struct rfix *x)
{
	Animate3d__V1__GetPersonUrlsRequest r = ANIMATE3D__V1__GET_PERSON_URLS_REQUEST__INIT;
	r.rid = "4Zx9bQ2mKpTr7VwYcHnE3a";
	x->u.persons = r;
}
static void r_persons_empty(struct rfix *x)
{
	r_persons(x);
	x->u.persons.rid = "";
}
static void r_persons_bad(struct rfix *x)
{
	r_persons(x);
	x->u.persons.rid = "../x";
}
static void r_list_starting(struct rfix *x)
{
	r_list(x);
	x->states[0] = ANIMATE3D__V1__JOB_STATE__STARTING;
	x->u.list.states = x->states;
	x->u.list.n_states = 1;
}
static void r_mupload(struct rfix *x)
{
	Animate3d__V1__GetModelUploadUrlRequest r = ANIMATE3D__V1__GET_MODEL_UPLOAD_URL_REQUEST__INIT;
	r.name = "hero one";
	r.model_ext = "fbx";
	r.thumb_ext = "png";
	r.resumable = 1;
	x->u.mupload = r;
}
static void r_mupload_nothumb(struct rfix *x)
{
	r_mupload(x);
	x->u.mupload.thumb_ext = "";
	x->u.mupload.resumable = 0;
}
static void r_mupload_badext(struct rfix *x)
{
	r_mupload(x);
	x->u.mupload.model_ext = "obj";
}
static void r_mupload_badthumb(struct rfix *x)
{
	r_mupload(x);
	x->u.mupload.thumb_ext = "gif";
}
static void r_store(struct rfix *x)
{
	Animate3d__V1__StoreModelRequest r = ANIMATE3D__V1__STORE_MODEL_REQUEST__INIT;
	r.model_url = "https://st/hero.fbx";
	r.model_name = "Hero";
	r.create_thumb = 1;
	x->u.store = r;
}
static void r_store_update(struct rfix *x)
{
	Animate3d__V1__StoreModelRequest r = ANIMATE3D__V1__STORE_MODEL_REQUEST__INIT;
	r.model_id = "m1";
	r.model_name = "New name";
	x->u.store = r;
}
static void r_store_none(struct rfix *x)
{
	Animate3d__V1__StoreModelRequest r = ANIMATE3D__V1__STORE_MODEL_REQUEST__INIT;
	r.model_name = "x";
	x->u.store = r;
}
static void r_store_badurl(struct rfix *x)
{
	r_store(x);
	x->u.store.model_url = "hero.fbx";
}
static void r_lmodels(struct rfix *x)
{
	Animate3d__V1__ListModelsRequest r = ANIMATE3D__V1__LIST_MODELS_REQUEST__INIT;
	x->u.lmodels = r;
}
static void r_lmodels_all(struct rfix *x)
{
	r_lmodels(x);
	x->u.lmodels.model_id = "m1";
	x->u.lmodels.search_token = "a b&c";
	x->u.lmodels.include_stock = 1;
}
static void r_lmodels_stock(struct rfix *x)
{
	r_lmodels(x);
	x->u.lmodels.include_stock = 1;
}
static void r_dmodel(struct rfix *x)
{
	Animate3d__V1__DeleteModelRequest r = ANIMATE3D__V1__DELETE_MODEL_REQUEST__INIT;
	r.model_id = "m_1-x";
	x->u.dmodel = r;
}
static void r_dmodel_bad(struct rfix *x)
{
	r_dmodel(x);
	x->u.dmodel.model_id = "../x";
}
static void r_dmodel_empty(struct rfix *x)
{
	r_dmodel(x);
	x->u.dmodel.model_id = "";
}
static void r_cep(struct rfix *x)
{
	Animate3d__V1__CreateEndpointRequest r = ANIMATE3D__V1__CREATE_ENDPOINT_REQUEST__INIT;
	r.url = "https://hooks.example/a3d";
	STRS(x, "job.completed");
	r.events = x->strs;
	r.n_events = 1;
	x->u.cep = r;
}
static void r_cep_noevents(struct rfix *x)
{
	r_cep(x);
	x->u.cep.n_events = 0;
}
static void r_cep_badevent(struct rfix *x)
{
	r_cep(x);
	STRS(x, "job.completed", "job.started");
	x->u.cep.n_events = 2;
}
static void r_cep_dupevent(struct rfix *x)
{
	r_cep(x);
	STRS(x, "job.completed", "job.completed");
	x->u.cep.n_events = 2;
}
static void r_cep_badurl(struct rfix *x)
{
	r_cep(x);
	x->u.cep.url = "hooks.example/a3d";
}
static void r_gep(struct rfix *x)
{
	Animate3d__V1__GetEndpointRequest r = ANIMATE3D__V1__GET_ENDPOINT_REQUEST__INIT;
	r.id = "we_1";
	x->u.gep = r;
}
static void r_gep_empty(struct rfix *x)
{
	r_gep(x);
	x->u.gep.id = "";
}
static void r_lep(struct rfix *x)
{
	Animate3d__V1__ListEndpointsRequest r = ANIMATE3D__V1__LIST_ENDPOINTS_REQUEST__INIT;
	x->u.lep = r;
}
static void r_uep(struct rfix *x)
{
	Animate3d__V1__UpdateEndpointRequest r = ANIMATE3D__V1__UPDATE_ENDPOINT_REQUEST__INIT;
	r.id = "we_1";
	r.url = "http://h2/x";
	x->u.uep = r;
}
static void r_uep_events(struct rfix *x)
{
	r_uep(x);
	x->u.uep.url = "";
	STRS(x, "job.completed");
	x->u.uep.events = x->strs;
	x->u.uep.n_events = 1;
}
static void r_uep_nothing(struct rfix *x)
{
	r_uep(x);
	x->u.uep.url = "";
}
static void r_uep_badid(struct rfix *x)
{
	r_uep(x);
	x->u.uep.id = "we 1";
}
static void r_dep(struct rfix *x)
{
	Animate3d__V1__DeleteEndpointRequest r = ANIMATE3D__V1__DELETE_ENDPOINT_REQUEST__INIT;
	r.id = "we_1";
	x->u.dep = r;
}
static void r_credits(struct rfix *x)
{
	Animate3d__V1__GetCreditBalanceRequest r = ANIMATE3D__V1__GET_CREDIT_BALANCE_REQUEST__INIT;
	x->u.credits = r;
}
static void r_minutes(struct rfix *x)
{
	Animate3d__V1__GetMinutesBalanceRequest r = ANIMATE3D__V1__GET_MINUTES_BALANCE_REQUEST__INIT;
	x->u.minutes = r;
}

/* Issue 13: the states cap (repeats within it are asked for once) and the ids, names and URLs
 * that used to reach the store or upstream. */
static void r_list_cap(struct rfix *x)
{
	r_list(x);
	for (size_t i = 0; i < GW_VALIDATE_MAX_STATES; i++)
		x->states[i] = i % 2 ? ANIMATE3D__V1__JOB_STATE__PROGRESS : ANIMATE3D__V1__JOB_STATE__SUCCESS;
	x->u.list.states = x->states;
	x->u.list.n_states = GW_VALIDATE_MAX_STATES;
}
static void r_list_over(struct rfix *x)
{
	r_list_cap(x);
	x->states[GW_VALIDATE_MAX_STATES] = ANIMATE3D__V1__JOB_STATE__RETRY;
	x->u.list.n_states = GW_VALIDATE_MAX_STATES + 1;
}
static void r_dmodel_comma(struct rfix *x)
{
	r_dmodel(x);
	x->u.dmodel.model_id = "a,b";
}
static void r_dmodel_eacute(struct rfix *x)
{
	r_dmodel(x);
	x->u.dmodel.model_id = "\xc3\xa9";
}
static void r_upload_dotdot(struct rfix *x)
{
	r_upload(x);
	x->u.upload.name = "..";
}
static void r_upload_dot(struct rfix *x)
{
	r_upload(x);
	x->u.upload.name = ".";
}
static char url5000[5001];
static void r_start_longurl(struct rfix *x)
{
	r_start_url(x);
	memcpy(url5000, "http://h/", 9);
	memset(url5000 + 9, 'a', sizeof url5000 - 10);
	x->u.start.upload_url = url5000;
}
static void r_start_dotdot(struct rfix *x)
{
	r_start_url(x);
	x->u.start.upload_url = "../x";
}
static void r_start_extra_over(struct rfix *x)
{
	static char kv[GW_VALIDATE_MAX_EXTRA + 1][8];

	r_start_url(x);
	for (size_t i = 0; i <= GW_VALIDATE_MAX_EXTRA; i++) {
		snprintf(kv[i], sizeof kv[i], "k%zu=1", i);
		x->strs[i] = kv[i];
	}
	x->u.start.extra_params = x->strs;
	x->u.start.n_extra_params = GW_VALIDATE_MAX_EXTRA + 1;
}
static void r_start_idem_ctl(struct rfix *x)
{
	r_start_url(x);
	x->u.start.idempotency_key = "k\n1";
}

#define J "/animate3d.v1.Jobs/"
#define C "/animate3d.v1.Characters/"
#define W "/animate3d.v1.Webhooks/"
#define A "/animate3d.v1.Account/"

static const struct {
	const char *rpc;
	void (*mk)(struct rfix *x);
	int rc;
	const char *method;	/* GW_TR_OK: expected request */
	const char *path;
	const char *body;	/* NULL: no body */
	const char *field;	/* GW_TR_INVALID: err starts with this, then a space */
} build_cases[] = {
	{ J "GetUploadUrl", r_upload, GW_TR_OK, "GET", "/upload?name=dance%20clip.mp4&resumable=0", NULL, NULL },
	{ J "GetUploadUrl", r_upload_esc, GW_TR_OK, "GET", "/upload?name=v%26x%3D1%C3%A9.mp4&resumable=1", NULL, NULL },
	{ J "GetUploadUrl", r_upload_empty, GW_TR_INVALID, NULL, NULL, NULL, "name" },
	{ J "GetUploadUrl", r_upload_slash, GW_TR_INVALID, NULL, NULL, NULL, "name" },
	{ J "StartJob", r_start_url, GW_TR_OK, "POST", "/process",
	  "{\"url\":\"http://127.0.0.1:8090/storage/v.mp4\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\"]}", NULL },
	{ J "StartJob", r_start_rerun, GW_TR_OK, "POST", "/process",
	  "{\"rid\":\"Abc123\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\",\"formats=bvh,fbx\"]}", NULL },
	{ J "StartJob", r_start_mp, GW_TR_OK, "POST", "/process",
	  "{\"rid_mp_detection\":\"Mp1\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\","
	  "\"models=[{\\\"trackingId\\\":\\\"001\\\",\\\"modelId\\\":\\\"m1\\\"}]\"]}", NULL },
	{ J "StartJob", r_start_mp_legacy, GW_TR_OK, "POST", "/process",
	  "{\"rid_mp_detection\":\"Mp1\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\","
	  "\"models=[{\\\"trackingId\\\":\\\"002\\\",\\\"modelId\\\":\\\"m1\\\"}]\"]}", NULL },
	{ J "StartJob", r_start_mp_badref, GW_TR_INVALID, NULL, NULL, NULL, "params.models[0].tracking_ref" },
	{ J "StartJob", r_start_mp_zero, GW_TR_INVALID, NULL, NULL, NULL, "params.models[0].tracking_ref" },
	{ J "StartJob", r_start_extra, GW_TR_OK, "POST", "/process",
	  "{\"url\":\"http://127.0.0.1:8090/storage/v.mp4\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\",\"newOpt=1\"]}", NULL },
	{ J "StartJob", r_start_mp_nomodels, GW_TR_INVALID, NULL, NULL, NULL, "params.models" },
	{ J "StartJob", r_start_none, GW_TR_INVALID, NULL, NULL, NULL, "source" },
	{ J "StartJob", r_start_ftp, GW_TR_INVALID, NULL, NULL, NULL, "upload_url" },
	{ J "StartJob", r_start_badrid, GW_TR_INVALID, NULL, NULL, NULL, "rerun_rid" },
	{ J "StartJob", r_start_badparams, GW_TR_INVALID, NULL, NULL, NULL, "params.video_speed_multiplier" },
	{ J "StartJob", r_start_badextra, GW_TR_INVALID, NULL, NULL, NULL, "extra_params[0]" },
	{ J "GetStatus", r_status, GW_TR_OK, "GET", "/status/r1,r2", NULL, NULL },
	{ J "GetStatus", r_watch, GW_TR_OK, "GET", "/status/w1", NULL, NULL },
	{ J "GetStatus", r_status_none, GW_TR_INVALID, NULL, NULL, NULL, "rids" },
	{ J "GetStatus", r_status_many, GW_TR_INVALID, NULL, NULL, NULL, "rids" },
	{ J "GetStatus", r_status_bad, GW_TR_INVALID, NULL, NULL, NULL, "rids[1]" },
	{ J "GetStatus", r_status_long, GW_TR_INVALID, NULL, NULL, NULL, "rids[0]" },
	{ J "GetStatus", r_list, GW_TR_INVALID, NULL, NULL, NULL, "request" },
	{ J "GetDownloadUrls", r_download, GW_TR_OK, "GET", "/download/r1,r2", NULL, NULL },
	{ J "GetDownloadUrls", r_status_bad, GW_TR_INVALID, NULL, NULL, NULL, "rids[1]" },
	{ J "ListJobs", r_list, GW_TR_OK, "GET", "/list", NULL, NULL },
	{ J "ListJobs", r_list_states, GW_TR_OK, "GET", "/list/SUCCESS,PROGRESS", NULL, NULL },
	{ J "ListJobs", r_list_bad, GW_TR_INVALID, NULL, NULL, NULL, "states[1]" },
	{ J "ListJobs", r_list_cap, GW_TR_OK, "GET", "/list/SUCCESS,PROGRESS", NULL, NULL },
	{ J "ListJobs", r_list_over, GW_TR_INVALID, NULL, NULL, NULL, "states" },
	{ J "GetUploadUrl", r_upload_dotdot, GW_TR_INVALID, NULL, NULL, NULL, "name" },
	{ J "GetUploadUrl", r_upload_dot, GW_TR_INVALID, NULL, NULL, NULL, "name" },
	{ J "StartJob", r_start_longurl, GW_TR_INVALID, NULL, NULL, NULL, "upload_url" },
	{ J "StartJob", r_start_dotdot, GW_TR_INVALID, NULL, NULL, NULL, "upload_url" },
	{ J "StartJob", r_start_extra_over, GW_TR_INVALID, NULL, NULL, NULL, "extra_params" },
	{ J "StartJob", r_start_idem_ctl, GW_TR_INVALID, NULL, NULL, NULL, "idempotency_key" },
	{ C "DeleteModel", r_dmodel_comma, GW_TR_INVALID, NULL, NULL, NULL, "model_id" },
	{ C "DeleteModel", r_dmodel_eacute, GW_TR_INVALID, NULL, NULL, NULL, "model_id" },
	{ J "GetVideoInfo", r_vinfo, GW_TR_OK, "POST", "/videoInfo",
	  "{\"url\":\"https://st/v.mp4?X-Goog-Signature=s\"}", NULL },
	{ J "GetVideoInfo", r_vinfo_empty, GW_TR_INVALID, NULL, NULL, NULL, "upload_url" },
	{ J "GetPersonUrls", r_persons, GW_TR_OK, "GET", "/pesave/getUrls/4Zx9bQ2mKpTr7VwYcHnE3a", NULL, NULL },
	{ J "GetPersonUrls", r_persons_empty, GW_TR_INVALID, NULL, NULL, NULL, "rid" },
	{ J "GetPersonUrls", r_persons_bad, GW_TR_INVALID, NULL, NULL, NULL, "rid" },
	{ J "GetPersonUrls", r_vinfo, GW_TR_INVALID, NULL, NULL, NULL, "request" },
	{ J "ListJobs", r_list_starting, GW_TR_OK, "GET", "/list/STARTING", NULL, NULL },
	{ C "GetModelUploadUrl", r_mupload, GW_TR_OK, "GET",
	  "/character/getModelUploadUrl?name=hero%20one&modelExt=fbx&thumbExt=png&resumable=1", NULL, NULL },
	{ C "GetModelUploadUrl", r_mupload_nothumb, GW_TR_OK, "GET",
	  "/character/getModelUploadUrl?name=hero%20one&modelExt=fbx&resumable=0", NULL, NULL },
	{ C "GetModelUploadUrl", r_mupload_badext, GW_TR_INVALID, NULL, NULL, NULL, "model_ext" },
	{ C "GetModelUploadUrl", r_mupload_badthumb, GW_TR_INVALID, NULL, NULL, NULL, "thumb_ext" },
	{ C "StoreModel", r_store, GW_TR_OK, "POST", "/character/storeModel",
	  "{\"modelUrl\":\"https://st/hero.fbx\",\"modelName\":\"Hero\",\"createThumb\":true}", NULL },
	{ C "StoreModel", r_store_update, GW_TR_OK, "POST", "/character/storeModel",
	  "{\"modelName\":\"New name\",\"modelId\":\"m1\",\"createThumb\":false}", NULL },
	{ C "StoreModel", r_store_none, GW_TR_INVALID, NULL, NULL, NULL, "model_url" },
	{ C "StoreModel", r_store_badurl, GW_TR_INVALID, NULL, NULL, NULL, "model_url" },
	{ C "ListModels", r_lmodels, GW_TR_OK, "GET", "/character/listModels", NULL, NULL },
	{ C "ListModels", r_lmodels_all, GW_TR_OK, "GET",
	  "/character/listModels?modelId=m1&searchToken=a%20b%26c&stockModel=all", NULL, NULL },
	{ C "ListModels", r_lmodels_stock, GW_TR_OK, "GET", "/character/listModels?stockModel=all", NULL, NULL },
	{ C "DeleteModel", r_dmodel, GW_TR_OK, "DELETE", "/character/deleteModel/m_1-x", NULL, NULL },
	{ C "DeleteModel", r_dmodel_bad, GW_TR_INVALID, NULL, NULL, NULL, "model_id" },
	{ C "DeleteModel", r_dmodel_empty, GW_TR_INVALID, NULL, NULL, NULL, "model_id" },
	{ W "CreateEndpoint", r_cep, GW_TR_OK, "POST", "/webhook_endpoints",
	  "{\"url\":\"https://hooks.example/a3d\",\"events\":[\"job.completed\"]}", NULL },
	{ W "CreateEndpoint", r_cep_noevents, GW_TR_INVALID, NULL, NULL, NULL, "events" },
	{ W "CreateEndpoint", r_cep_badevent, GW_TR_INVALID, NULL, NULL, NULL, "events[1]" },
	{ W "CreateEndpoint", r_cep_dupevent, GW_TR_INVALID, NULL, NULL, NULL, "events[1]" },
	{ W "CreateEndpoint", r_cep_badurl, GW_TR_INVALID, NULL, NULL, NULL, "url" },
	{ W "GetEndpoint", r_gep, GW_TR_OK, "GET", "/webhook_endpoints/we_1", NULL, NULL },
	{ W "GetEndpoint", r_gep_empty, GW_TR_INVALID, NULL, NULL, NULL, "id" },
	{ W "ListEndpoints", r_lep, GW_TR_OK, "GET", "/webhook_endpoints", NULL, NULL },
	{ W "UpdateEndpoint", r_uep, GW_TR_OK, "POST", "/webhook_endpoints/we_1", "{\"url\":\"http://h2/x\"}", NULL },
	{ W "UpdateEndpoint", r_uep_events, GW_TR_OK, "POST", "/webhook_endpoints/we_1",
	  "{\"events\":[\"job.completed\"]}", NULL },
	{ W "UpdateEndpoint", r_uep_nothing, GW_TR_INVALID, NULL, NULL, NULL, "url" },
	{ W "UpdateEndpoint", r_uep_badid, GW_TR_INVALID, NULL, NULL, NULL, "id" },
	{ W "DeleteEndpoint", r_dep, GW_TR_OK, "DELETE", "/webhook_endpoints/we_1", NULL, NULL },
	{ A "GetCreditBalance", r_credits, GW_TR_OK, "GET", "/account/creditBalance", NULL, NULL },
	{ A "GetMinutesBalance", r_minutes, GW_TR_OK, "GET", "/account/minutesBalance", NULL, NULL },
	{ A "GetMinutesBalance", r_credits, GW_TR_INVALID, NULL, NULL, NULL, "request" },
};

Test(translate, build_table)
{
	for (size_t i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
		const struct gw_tr_rpc *row = tr_row(build_cases[i].rpc);
		struct gw_tr_request rq = { 0 };
		struct rfix x;
		char err[GW_TR_ERR_MAX] = "";
		int rc;

		cr_assert_not_null(row, "case %zu: no row %s", i, build_cases[i].rpc);
		memset(&x, 0, sizeof(x));
		build_cases[i].mk(&x);
		rc = row->build(&x.u.base, &rq, err, sizeof(err));
		cr_expect_eq(rc, build_cases[i].rc, "case %zu %s: rc %d err \"%s\"", i,
			     build_cases[i].rpc, rc, err);
		if (rc == GW_TR_OK && build_cases[i].rc == GW_TR_OK) {
			cr_expect_str_eq(rq.method, build_cases[i].method, "case %zu", i);
			cr_expect_str_eq(rq.path, build_cases[i].path, "case %zu: got %s", i, rq.path);
			if (build_cases[i].body)
				cr_expect(rq.body && strcmp(rq.body, build_cases[i].body) == 0,
					  "case %zu: body %s", i, rq.body ? rq.body : "(null)");
			else
				cr_expect_null(rq.body, "case %zu: body %s", i, rq.body);
		} else if (build_cases[i].field) {
			size_t n = strlen(build_cases[i].field);

			cr_expect(strncmp(err, build_cases[i].field, n) == 0 && err[n] == ' ',
				  "case %zu: err \"%s\" does not name %s", i, err, build_cases[i].field);
		}
		gw_tr_request_clear(&rq);
	}
}

/* ---- rows ---- */

/* The upstream half of each translating row (gateway/methods.c): a retry upstream is safe for
 * GETs and read-only POSTs only. */
Test(translate, rows_table)
{
	static const struct {
		const char *rpc;
		int idempotent;
	} cases[] = {
		{ J "GetUploadUrl", 1 },	{ J "StartJob", 0 },
		{ J "GetStatus", 1 },		{ J "GetDownloadUrls", 1 },
		{ J "ListJobs", 1 },		{ J "GetVideoInfo", 1 },
		{ J "GetPersonUrls", 1 },
		{ C "GetModelUploadUrl", 1 },	{ C "StoreModel", 0 },
		{ C "ListModels", 1 },		{ C "DeleteModel", 0 },
		{ W "CreateEndpoint", 0 },	{ W "GetEndpoint", 1 },
		{ W "ListEndpoints", 1 },	{ W "UpdateEndpoint", 0 },
		{ W "DeleteEndpoint", 0 },	{ A "GetCreditBalance", 1 },
		{ A "GetMinutesBalance", 1 },
	};
	size_t n = 0, nrows = 0;
	const struct gw_method *m = gw_methods(&n);

	/* In table order: the fuzz seeds' first byte picks a row by it (tests/fuzz/make_seeds.py). */
	for (size_t i = 0; i < n; i++)
		if (m[i].tr.build && nrows < sizeof(cases) / sizeof(cases[0]))
			cr_expect_str_eq(m[i].path, cases[nrows++].rpc, "translating row %zu", nrows);
		else if (m[i].tr.build)
			nrows++;
	cr_assert_eq(nrows, sizeof(cases) / sizeof(cases[0]));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gw_tr_rpc *r = tr_row(cases[i].rpc);

		cr_expect_eq(r->idempotent, cases[i].idempotent, "%s", cases[i].rpc);
		cr_expect(r->build && r->parse && r->resp_desc, "%s", cases[i].rpc);
	}
	cr_expect_null(gw_methods_find(J "UploadVideo")->tr.build);
	cr_expect_null(gw_methods_find(J "WatchStatus")->tr.build);
	cr_expect_null(gw_methods_find("/grpc.health.v1.Health/Check")->tr.build);
}

/* ---- parse: upstream JSON -> reply ---- */

static const struct {
	const char *rpc;
	void (*mk)(struct rfix *x);	/* the request (filters), or NULL for an empty one */
	const char *body;
	int rc;
	const char *expect;	/* GW_TR_OK: the dump; GW_TR_BAD_UPSTREAM: a substring of err */
} parse_cases[] = {
	{ J "GetUploadUrl", r_upload, "{\"url\":\"https://st/o?X-Goog-Signature=s\"}", GW_TR_OK,
	  "url=\"https://st/o?X-Goog-Signature=s\"" },
	{ J "GetUploadUrl", r_upload, "{}", GW_TR_BAD_UPSTREAM, "url is missing" },
	{ J "GetUploadUrl", r_upload, "{\"url\":null}", GW_TR_BAD_UPSTREAM, "url is missing" },
	{ J "GetUploadUrl", r_upload, "{\"url\":5}", GW_TR_BAD_UPSTREAM, "url is not a string" },
	{ J "GetUploadUrl", r_upload, "[\"url\"]", GW_TR_BAD_UPSTREAM, "url is missing" },
	{ J "GetUploadUrl", r_upload, "<html>502</html>", GW_TR_BAD_UPSTREAM, "not valid JSON" },
	{ J "GetUploadUrl", r_upload, "", GW_TR_BAD_UPSTREAM, "not valid JSON" },
	{ J "StartJob", r_start_url, "{\"rid\":\"7gHk2mQ\"}", GW_TR_OK, "rid=\"7gHk2mQ\"" },
	{ J "StartJob", r_start_url, "{\"rid\":\"7g Hk\"}", GW_TR_BAD_UPSTREAM, "rid is not a valid rid" },
	{ J "StartJob", r_start_url, "{\"id\":\"x\"}", GW_TR_BAD_UPSTREAM, "rid is missing" },

	/* GetStatus: request order, duplicates once, unknown rids left out, every state's details */
	{ J "GetStatus", r_status,
	  "{\"count\":2,\"status\":[{\"rid\":\"r2\",\"status\":\"SUCCESS\",\"details\":{\"In\":\"in.mp4\",\"out\":\"out.zip\"}},"
	  "{\"rid\":\"r1\",\"status\":\"PROGRESS\",\"details\":{\"step\":12,\"total\":10,\"positionInQueue\":3}},"
	  "{\"rid\":\"zz\",\"status\":\"PROGRESS\"}]}",
	  GW_TR_OK,
	  "statuses{rid=\"r1\" state=1 step=12 total=10 position_in_queue=3} "
	  "statuses{rid=\"r2\" state=2 input_file=\"in.mp4\" output_file=\"out.zip\"}" },
	{ J "GetStatus", r_status,
	  "{\"status\":[{\"rid\":\"r1\",\"status\":\"PROGRESS\",\"details\":{\"step\":1.0,\"total\":5,\"position_in_queue\":7}},"
	  "{\"rid\":\"r2\",\"status\":\"SUCCESS\",\"details\":{\"in\":\"a\"}}]}",
	  GW_TR_OK,
	  "statuses{rid=\"r1\" state=1 step=1 total=5 position_in_queue=7} statuses{rid=\"r2\" state=2 input_file=\"a\"}" },
	{ J "GetStatus", r_status, "{\"count\":0,\"status\":[]}", GW_TR_OK, "" },
	/* Issue 19: "in" (v1.5.8, what the SDKs read) wins over the v2.0 transcription's "In";
	 * STARTING (a list status) is read like PROGRESS, not as finished. */
	{ J "GetStatus", r_status,
	  "{\"status\":[{\"rid\":\"r1\",\"status\":\"SUCCESS\",\"details\":{\"In\":\"x\",\"in\":\"clip.mp4\",\"out\":\"r1.bvh\"}},"
	  "{\"rid\":\"r2\",\"status\":\"STARTING\",\"positionInQueue\":3}]}",
	  GW_TR_OK,
	  "statuses{rid=\"r1\" state=2 input_file=\"clip.mp4\" output_file=\"r1.bvh\"} "
	  "statuses{rid=\"r2\" state=5 position_in_queue=3}" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\",\"status\":\"WEIRD\"}]}", GW_TR_OK,
	  "statuses{rid=\"r1\"}" },
	{ J "GetStatus", r_watch, "{\"status\":[{\"rid\":\"w1\",\"status\":\"RETRY\",\"details\":{}}]}", GW_TR_OK,
	  "statuses{rid=\"w1\" state=3}" },
	{ J "GetStatus", r_status, "{\"count\":1}", GW_TR_BAD_UPSTREAM, "status is missing" },
	{ J "GetStatus", r_status, "{\"status\":{}}", GW_TR_BAD_UPSTREAM, "status is not an array" },
	{ J "GetStatus", r_status, "{\"status\":[7]}", GW_TR_BAD_UPSTREAM, "status[0] is not an object" },
	{ J "GetStatus", r_status, "{\"status\":[{\"status\":\"SUCCESS\"}]}", GW_TR_BAD_UPSTREAM, "status[0].rid is missing" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\"}]}", GW_TR_BAD_UPSTREAM, "status[0].status is missing" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\",\"status\":1}]}", GW_TR_BAD_UPSTREAM,
	  "status[0].status is not a string" },
	{ J "GetStatus", r_status,
	  "{\"status\":[{\"rid\":\"zz\",\"status\":\"SUCCESS\"},{\"rid\":\"r1\",\"status\":\"PROGRESS\",\"details\":{\"step\":\"3\"}}]}",
	  GW_TR_BAD_UPSTREAM, "status[1].details.step is not a number" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\",\"status\":\"PROGRESS\",\"details\":[1]}]}",
	  GW_TR_BAD_UPSTREAM, "status[0].details is not an object" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\",\"status\":\"SUCCESS\",\"details\":{\"out\":false}}]}",
	  GW_TR_BAD_UPSTREAM, "status[0].details.out is not a string" },
	{ J "GetStatus", r_status, "{\"status\":[{\"rid\":\"r1\",\"status\":\"FAILURE\",\"details\":{\"exc_type\":[]}}]}",
	  GW_TR_BAD_UPSTREAM, "status[0].details.exc_type is not a string" },

	{ J "GetDownloadUrls", r_download,
	  "{\"count\":2,\"links\":[{\"rid\":\"r2\"},{\"rid\":\"r1\",\"name\":\"v.mp4\",\"size\":1234,\"duration\":3.5,\"input\":\"in\","
	  "\"urls\":[{\"name\":\"dm_character_001\",\"files\":[{\"bvh\":\"https://s/a.bvh?sig=1\"},"
	  "{\"fbx\":\"https://s/a.fbx\",\"glb\":\"https://s/a.glb\"}]},{\"name\":\"landmarks\",\"files\":[{\"dmpe\":\"https://s/l.dmpe\"}]}]}]}",
	  GW_TR_OK,
	  "links{rid=\"r1\" name=\"v.mp4\" size=1234 duration=3.5 input=\"in\" "
	  "groups{name=\"dm_character_001\" files{format=\"bvh\" url=\"https://s/a.bvh?sig=1\"} "
	  "files{format=\"fbx\" url=\"https://s/a.fbx\"} files{format=\"glb\" url=\"https://s/a.glb\"}} "
	  "groups{name=\"landmarks\" files{format=\"dmpe\" url=\"https://s/l.dmpe\"} kind=3}} links{rid=\"r2\"}" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"urls\":[{\"name\":\"x\",\"files\":[{\"bvh\":1}]}]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].urls[0].files[0].bvh is not a string" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"urls\":[{\"name\":\"x\",\"files\":{}}]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].urls[0].files is not an array" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"urls\":[\"x\"]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].urls[0] is not an object" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"size\":\"big\"}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].size is not a number" },
	{ J "GetDownloadUrls", r_download, "{\"count\":0}", GW_TR_BAD_UPSTREAM, "links is missing" },

	/* Issue 19, v2.0 multi-person. A detection run (Phase 1: "characters_detection_result.cdsave
	 * and person thumbnails (thumbnail_character_XXX.png)"): first-class kinds, the person of
	 * each thumbnail; mode 1 with no models. */
	{ J "GetDownloadUrls", r_download,
	  "{\"count\":1,\"links\":[{\"rid\":\"r1\",\"name\":\"v.mp4\",\"mode\":1,\"models\":[],\"urls\":["
	  "{\"name\":\"characters_detection_result\",\"files\":[{\"cdsave\":\"https://s/c.cdsave\"}]},"
	  "{\"name\":\"thumbnail_character_001\",\"files\":[{\"png\":\"https://s/t1.png\"}]},"
	  "{\"name\":\"thumbnail_character_002\",\"files\":[{\"png\":\"https://s/t2.png\"}]}]}]}",
	  GW_TR_OK,
	  "links{rid=\"r1\" name=\"v.mp4\" "
	  "groups{name=\"characters_detection_result\" files{format=\"cdsave\" url=\"https://s/c.cdsave\"} kind=1} "
	  "groups{name=\"thumbnail_character_001\" files{format=\"png\" url=\"https://s/t1.png\"} kind=2 tracking_id=\"001\"} "
	  "groups{name=\"thumbnail_character_002\" files{format=\"png\" url=\"https://s/t2.png\"} kind=2 tracking_id=\"002\"} "
	  "mode=1}" },
	/* Phase 2 (Download: "_XXX will be appended for every relevant file name", all_characters):
	 * per-person groups carry their person; the unsuffixed scene and names of untracked persons
	 * do not; models with string ids, null modelId, integer and boolean data types. */
	{ J "GetDownloadUrls", r_download,
	  "{\"links\":[{\"rid\":\"r1\",\"mode\":1,\"models\":["
	  "{\"trackingId\":\"001\",\"modelId\":\"m1\",\"faceDataType\":1,\"handDataType\":0},"
	  "{\"trackingId\":2,\"modelId\":null,\"faceDataType\":false,\"handDataType\":true}],\"urls\":["
	  "{\"name\":\"Hero_001\",\"files\":[{\"bvh\":\"https://s/1.bvh\"}]},"
	  "{\"name\":\"Hero_002\",\"files\":[{\"bvh\":\"https://s/2.bvh\"}]},"
	  "{\"name\":\"Hero_003\",\"files\":[]},"
	  "{\"name\":\"landmarks_002\",\"files\":[{\"dmpe\":\"https://s/l2.dmpe\"}]},"
	  "{\"name\":\"all_characters\",\"files\":[{\"bvh\":\"https://s/all.zip\"}]},"
	  "{\"name\":\"Hero\",\"files\":[{\"mp4\":\"https://s/scene.mp4\"}]}]}]}",
	  GW_TR_OK,
	  "links{rid=\"r1\" "
	  "groups{name=\"Hero_001\" files{format=\"bvh\" url=\"https://s/1.bvh\"} tracking_id=\"001\"} "
	  "groups{name=\"Hero_002\" files{format=\"bvh\" url=\"https://s/2.bvh\"} tracking_id=\"002\"} "
	  "groups{name=\"Hero_003\"} "
	  "groups{name=\"landmarks_002\" files{format=\"dmpe\" url=\"https://s/l2.dmpe\"} kind=3 tracking_id=\"002\"} "
	  "groups{name=\"all_characters\" files{format=\"bvh\" url=\"https://s/all.zip\"} kind=4} "
	  "groups{name=\"Hero\" files{format=\"mp4\" url=\"https://s/scene.mp4\"}} "
	  "mode=1 models{tracking_id=\"001\" model_id=\"m1\" face_data_type=1} "
	  "models{tracking_id=\"002\" hand_data_type=1}}" },
	/* A single-person job (mode 0): dm_character_001 is the character's name, not person 001. */
	{ J "GetDownloadUrls", r_download,
	  "{\"links\":[{\"rid\":\"r1\",\"mode\":0,\"models\":[{\"trackingId\":\"001\",\"modelId\":null,"
	  "\"faceDataType\":0,\"handDataType\":0}],\"urls\":["
	  "{\"name\":\"dm_character_001\",\"files\":[{\"bvh\":\"https://s/a.bvh\"}]},"
	  "{\"name\":\"landmarks\",\"files\":[{\"dmpe\":\"https://s/l.dmpe\"}]}]}]}",
	  GW_TR_OK,
	  "links{rid=\"r1\" groups{name=\"dm_character_001\" files{format=\"bvh\" url=\"https://s/a.bvh\"}} "
	  "groups{name=\"landmarks\" files{format=\"dmpe\" url=\"https://s/l.dmpe\"} kind=3} mode=0 "
	  "models{tracking_id=\"001\"}}" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"models\":{}}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].models is not an array" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"models\":[{\"modelId\":\"m\"}]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].models[0].trackingId is missing" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"models\":[{\"trackingId\":-1}]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].models[0].trackingId is not a tracking id" },
	{ J "GetDownloadUrls", r_download, "{\"links\":[{\"rid\":\"r1\",\"mode\":\"1\"}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].mode is not a number" },
	{ J "GetDownloadUrls", r_download,
	  "{\"links\":[{\"rid\":\"r1\",\"models\":[{\"trackingId\":\"001\",\"faceDataType\":\"x\"}]}]}",
	  GW_TR_BAD_UPSTREAM, "links[0].models[0].faceDataType is not a number" },

	{ J "ListJobs", r_list,
	  "{\"count\":2,\"list\":[{\"rid\":\"a\",\"fileName\":\"v.mp4\",\"fileSize\":100,\"fileDuration\":2.5,\"status\":\"SUCCESS\","
	  "\"ctime\":1700000000000,\"mtime\":1.7000000005e12},{\"rid\":\"b\",\"status\":\"STARTING\"}]}",
	  GW_TR_OK,
	  "jobs{rid=\"a\" file_name=\"v.mp4\" file_size=100 file_duration=2.5 state=2 ctime_ms=1700000000000 mtime_ms=1700000000500} "
	  "jobs{rid=\"b\" state=5}" },
	{ J "ListJobs", r_list, "{\"list\":[]}", GW_TR_OK, "" },
	/* Issue 19: v2.0's mode and models on SUCCESS entries; STARTING (queued) has neither. */
	{ J "ListJobs", r_list_starting,
	  "{\"count\":2,\"list\":[{\"rid\":\"a\",\"status\":\"SUCCESS\",\"mode\":1,\"models\":["
	  "{\"trackingId\":\"001\",\"modelId\":\"m1\",\"faceDataType\":0,\"handDataType\":1}]},"
	  "{\"rid\":\"b\",\"status\":\"STARTING\",\"fileDuration\":2}]}",
	  GW_TR_OK,
	  "jobs{rid=\"a\" state=2 mode=1 models{tracking_id=\"001\" model_id=\"m1\" hand_data_type=1}} "
	  "jobs{rid=\"b\" file_duration=2 state=5}" },
	{ J "ListJobs", r_list, "{\"list\":[{\"rid\":\"a\",\"models\":[{\"trackingId\":[]}]}]}", GW_TR_BAD_UPSTREAM,
	  "list[0].models[0].trackingId is not a string" },
	{ J "ListJobs", r_list, "{\"list\":[{\"rid\":1}]}", GW_TR_BAD_UPSTREAM, "list[0].rid is not a string" },
	{ J "ListJobs", r_list, "{\"list\":[{\"rid\":\"a\",\"ctime\":\"yesterday\"}]}", GW_TR_BAD_UPSTREAM,
	  "list[0].ctime is not a number" },
	{ J "ListJobs", r_list, "{\"list\":[{\"rid\":\"a\",\"fileSize\":1e300}]}", GW_TR_BAD_UPSTREAM,
	  "list[0].fileSize is not a number in range" },
	{ J "ListJobs", r_list, "{\"jobs\":[]}", GW_TR_BAD_UPSTREAM, "list is missing" },

	{ J "GetVideoInfo", r_vinfo,
	  "{\"width\":1920,\"height\":1080,\"fps\":29.97,\"duration\":12.5,\"codec\":\"h264\",\"size\":1048576}", GW_TR_OK,
	  "width=1920 height=1080 fps=29.97 duration=12.5 codec=\"h264\" size=1048576" },
	{ J "GetVideoInfo", r_vinfo, "{\"width\":1920,\"duration\":1}", GW_TR_BAD_UPSTREAM, "height is missing" },
	{ J "GetVideoInfo", r_vinfo, "{\"width\":1e10,\"height\":1,\"duration\":1}", GW_TR_BAD_UPSTREAM,
	  "width is not a number in range" },

	/* GetPersonUrls: v2.0 PeSave API 1's example, verbatim (a bare array), then a saved
	 * version (read URL set), the integer ids older answers used, and what is refused. */
	{ J "GetPersonUrls", r_persons,
	  "[\n    {\n        \"trackingId\": \"001\",\n        \"modifiedVersionReadUrl\": null,\n"
	  "        \"modifiedVersionWriteUrl\": \"<URL>\"\n    },\n    {\n        \"trackingId\": \"002\",\n"
	  "        \"modifiedVersionReadUrl\": null,\n        \"modifiedVersionWriteUrl\": \"<URL>\"\n    }\n]",
	  GW_TR_OK,
	  "persons{tracking_id=\"001\" modified_version_write_url=\"<URL>\"} "
	  "persons{tracking_id=\"002\" modified_version_write_url=\"<URL>\"}" },
	{ J "GetPersonUrls", r_persons,
	  "[{\"trackingId\":\"001\",\"modifiedVersionReadUrl\":\"https://s/p?sig=1\",\"modifiedVersionWriteUrl\":\"https://s/p?sig=1\"}]",
	  GW_TR_OK,
	  "persons{tracking_id=\"001\" modified_version_read_url=\"https://s/p?sig=1\" modified_version_write_url=\"https://s/p?sig=1\"}" },
	{ J "GetPersonUrls", r_persons, "[{\"trackingId\":3,\"modifiedVersionWriteUrl\":\"https://s/w\"}]", GW_TR_OK,
	  "persons{tracking_id=\"003\" modified_version_write_url=\"https://s/w\"}" },
	{ J "GetPersonUrls", r_persons, "[]", GW_TR_OK, "" },
	{ J "GetPersonUrls", r_persons, "{\"rid\":\"r1\",\"persons\":[{\"trackingId\":1}]}", GW_TR_BAD_UPSTREAM,
	  "body is not an array" },
	{ J "GetPersonUrls", r_persons, "[{\"trackingId\":\"001\",\"modifiedVersionReadUrl\":null}]", GW_TR_BAD_UPSTREAM,
	  "body[0].modifiedVersionWriteUrl is missing" },
	{ J "GetPersonUrls", r_persons, "[{\"modifiedVersionWriteUrl\":\"https://s/w\"}]", GW_TR_BAD_UPSTREAM,
	  "body[0].trackingId is missing" },
	{ J "GetPersonUrls", r_persons, "[{\"trackingId\":\"001\",\"modifiedVersionReadUrl\":false,"
	  "\"modifiedVersionWriteUrl\":\"https://s/w\"}]", GW_TR_BAD_UPSTREAM,
	  "body[0].modifiedVersionReadUrl is not a string" },
	{ J "GetPersonUrls", r_persons, "[\"001\"]", GW_TR_BAD_UPSTREAM, "body[0] is not an object" },

	{ C "GetModelUploadUrl", r_mupload, "{\"modelUrl\":\"https://st/m\",\"thumbUrl\":\"https://st/t\"}", GW_TR_OK,
	  "model_url=\"https://st/m\" thumb_url=\"https://st/t\"" },
	{ C "GetModelUploadUrl", r_mupload, "{\"thumbUrl\":\"https://st/t\"}", GW_TR_BAD_UPSTREAM, "modelUrl is missing" },
	{ C "StoreModel", r_store, "{\"modelId\":\"m9\"}", GW_TR_OK, "model_id=\"m9\"" },
	{ C "StoreModel", r_store, "{\"modelId\":9}", GW_TR_BAD_UPSTREAM, "modelId is not a string" },

	/* ListModels: the document's bare array with "Id", and the demo's {"list": [{"id"}]} */
	{ C "ListModels", r_lmodels,
	  "[{\"Id\":\"m1\",\"name\":\"Hero\",\"thumb\":\"https://st/t.png\",\"rigId\":\"rig\",\"ctime\":1,\"mtime\":2}]", GW_TR_OK,
	  "models{id=\"m1\" name=\"Hero\" thumb=\"https://st/t.png\" rig_id=\"rig\" ctime_ms=1 mtime_ms=2}" },
	{ C "ListModels", r_lmodels_stock,
	  "{\"list\":[{\"id\":\"m2\",\"name\":\"Stock\",\"platform\":\"deepmotion\"},{\"id\":\"m3\",\"platform\":\"roblox\"}]}",
	  GW_TR_OK,
	  "models{id=\"m2\" name=\"Stock\" platform=\"deepmotion\"} models{id=\"m3\" platform=\"roblox\"}" },
	{ C "ListModels", r_lmodels, "[]", GW_TR_OK, "" },
	{ C "ListModels", r_lmodels, "{\"list\":[]}", GW_TR_OK, "" },
	{ C "ListModels", r_lmodels, "{\"list\":{}}", GW_TR_BAD_UPSTREAM, "list is not an array" },
	{ C "ListModels", r_lmodels, "{\"models\":[]}", GW_TR_BAD_UPSTREAM, "list is missing" },
	{ C "ListModels", r_lmodels, "[{\"name\":\"x\"}]", GW_TR_BAD_UPSTREAM, "list[0].id is missing" },
	{ C "ListModels", r_lmodels, "[5]", GW_TR_BAD_UPSTREAM, "list[0] is not an object" },
	{ C "ListModels", r_lmodels, "\"m1\"", GW_TR_BAD_UPSTREAM, "not valid JSON" },
	{ C "ListModels", r_lmodels, "{\"list\":[{\"Id\":7}]}", GW_TR_BAD_UPSTREAM, "list[0].Id is not a string" },
	{ C "DeleteModel", r_dmodel, "{\"count\":1}", GW_TR_OK, "count=1" },
	{ C "DeleteModel", r_dmodel, "{\"count\":0}", GW_TR_OK, "" },
	{ C "DeleteModel", r_dmodel, "{\"count\":\"1\"}", GW_TR_BAD_UPSTREAM, "count is not a number" },

	{ W "CreateEndpoint", r_cep,
	  "{\"id\":\"we_1\",\"object\":\"webhook_endpoint\",\"url\":\"https://hooks.example/a3d\",\"events\":[\"job.completed\"]}",
	  GW_TR_OK, "id=\"we_1\" url=\"https://hooks.example/a3d\" events=\"job.completed\"" },
	{ W "CreateEndpoint", r_cep, "{\"id\":\"we_1\",\"events\":[1]}", GW_TR_BAD_UPSTREAM, "events[0] is not a string" },
	{ W "GetEndpoint", r_gep, "{\"url\":\"https://h\"}", GW_TR_BAD_UPSTREAM, "id is missing" },
	{ W "GetEndpoint", r_gep, "[{\"id\":\"a\"}]", GW_TR_BAD_UPSTREAM, "body is not an object" },
	{ W "UpdateEndpoint", r_uep, "{\"id\":\"we_1\",\"url\":\"http://h2/x\"}", GW_TR_OK, "id=\"we_1\" url=\"http://h2/x\"" },
	{ W "ListEndpoints", r_lep,
	  "{\"count\":2,\"endpoints\":[{\"id\":\"a\",\"url\":\"http://x\",\"events\":[\"job.completed\"]},{\"id\":\"b\"}]}",
	  GW_TR_OK, "endpoints{id=\"a\" url=\"http://x\" events=\"job.completed\"} endpoints{id=\"b\"}" },
	{ W "ListEndpoints", r_lep, "{\"count\":0}", GW_TR_BAD_UPSTREAM, "endpoints is missing" },
	{ W "ListEndpoints", r_lep, "{\"endpoints\":[{\"id\":\"a\"},{\"url\":\"u\"}]}", GW_TR_BAD_UPSTREAM,
	  "endpoints[1].id is missing" },
	{ W "DeleteEndpoint", r_dep, "{\"id\":\"we_1\",\"object\":\"webhook_endpoint\",\"deleted\":true}", GW_TR_OK,
	  "id=\"we_1\" deleted=true" },
	{ W "DeleteEndpoint", r_dep, "{\"id\":\"we_1\",\"deleted\":\"yes\"}", GW_TR_BAD_UPSTREAM, "deleted is not a boolean" },

	{ A "GetCreditBalance", r_credits, "{\"credits\":12.5}", GW_TR_OK, "credits=12.5" },
	{ A "GetCreditBalance", r_credits, "{\"credits\":\"12\"}", GW_TR_BAD_UPSTREAM, "credits is not a number" },
	{ A "GetCreditBalance", r_credits, "{}", GW_TR_BAD_UPSTREAM, "credits is missing" },
	{ A "GetMinutesBalance", r_minutes, "{\"minutes\":3}", GW_TR_OK, "minutes=3" },
};

/* Runs one parse; returns the dump (caller frees) or NULL, with rc and err. */
static char *parse_one(const char *rpc, void (*mk)(struct rfix *x), const char *body, int *rc,
		       char *err, size_t errlen)
{
	const struct gw_tr_rpc *row = tr_row(rpc);
	ProtobufCMessage *out = NULL;
	struct rfix x;
	char *s = NULL;

	cr_assert_not_null(row, "no row %s", rpc);
	memset(&x, 0, sizeof(x));
	mk(&x);
	*rc = row->parse(&x.u.base, body, strlen(body), &out, err, errlen);
	if (*rc == GW_TR_OK) {
		cr_assert_not_null(out);
		cr_assert_eq(out->descriptor, row->resp_desc);
		s = dump_of(out);
		protobuf_c_message_free_unpacked(out, NULL);
	} else {
		cr_expect_null(out, "%s: reply set on error", rpc);
	}
	return s;
}

Test(translate, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		char err[GW_TR_ERR_MAX] = "";
		int rc;
		char *s = parse_one(parse_cases[i].rpc, parse_cases[i].mk, parse_cases[i].body, &rc, err,
				    sizeof(err));

		cr_expect_eq(rc, parse_cases[i].rc, "case %zu %s: rc %d err \"%s\"", i,
			     parse_cases[i].rpc, rc, err);
		if (rc == GW_TR_OK && s)
			cr_expect_str_eq(s, parse_cases[i].expect, "case %zu: got \"%s\"", i, s);
		else if (rc != GW_TR_OK)
			cr_expect(strstr(err, parse_cases[i].expect) != NULL,
				  "case %zu: err \"%s\" lacks \"%s\"", i, err, parse_cases[i].expect);
		free(s);
	}
}

/* RETRY/FAILURE: the code in exc_message, in every shape seen, -> error_code + documented text. */
Test(translate, job_error_extraction)
{
	static const struct {
		const char *exc;	/* JSON value of exc_message, or NULL for none */
		const char *expect;	/* dump of the one status */
	} cases[] = {
		{ "\"513\"", "error_code=513 error_message=\"Failed to detect character in the video\"" },
		{ "513", "error_code=513 error_message=\"Failed to detect character in the video\"" },
		{ "\"Error 513: Failed to detect character in the video\"",
		  "error_code=513 error_message=\"Failed to detect character in the video\"" },
		{ "\"['1307']\"", "error_code=1307 error_message=\"Error processing hand tracking\"" },
		{ "[\"201\"]", "error_code=201 error_message=\"Error downloading the video or DM asset\"" },
		{ "[101]", "error_code=101 error_message=\"Not enough credits\"" },
		{ "\"task 42 failed: 908\"", "error_code=908 error_message=\"Error loading facial tracking data\"" },
		{ "\"Error 12345\"", "error_message=\"Error 12345\"" },
		{ "\"abc513\"", "error_message=\"abc513\"" },
		{ "\"boom at https://st/x.mp4?X-Goog-Signature=zz now\"", "error_message=\"boom at https://st/x.mp4 now\"" },
		{ "\"\"", "" },
		{ "null", "" },
		{ "{}", "" },
		{ NULL, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[512];
		char want[512];
		char err[GW_TR_ERR_MAX] = "";
		int rc;
		char *s;

		if (cases[i].exc)
			snprintf(body, sizeof(body),
				 "{\"status\":[{\"rid\":\"r1\",\"status\":\"FAILURE\",\"details\":"
				 "{\"exc_message\":%s,\"exc_type\":\"DMError\"}}]}",
				 cases[i].exc);
		else
			snprintf(body, sizeof(body),
				 "{\"status\":[{\"rid\":\"r1\",\"status\":\"FAILURE\",\"details\":"
				 "{\"exc_type\":\"DMError\"}}]}");
		snprintf(want, sizeof(want), "statuses{rid=\"r1\" state=4%s%s error_type=\"DMError\"}",
			 cases[i].expect[0] ? " " : "", cases[i].expect);
		s = parse_one(J "GetStatus", r_status, body, &rc, err, sizeof(err));
		cr_expect_eq(rc, GW_TR_OK, "case %zu: %s", i, err);
		cr_expect(s && strcmp(s, want) == 0, "case %zu: got \"%s\" want \"%s\"", i,
			  s ? s : "(null)", want);
		free(s);
	}
}

Test(translate, job_error_texts)
{
	static const int codes[] = { 101, 201, 202, 503, 504, 505, 506, 507, 508, 509, 510, 511, 513,
				     599, 701, 799, 901, 902, 903, 904, 905, 906, 907, 908, 909, 999,
				     1301, 1302, 1303, 1304, 1305, 1306, 1307, 1308, 1399 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *t = gw_tr_job_error_text(codes[i]);
		cr_expect(t && t[0], "code %d has no text", codes[i]);
	}
	cr_expect_str_eq(gw_tr_job_error_text(505), "Physics Filter is incompatible with the custom characters");
	cr_expect_str_eq(gw_tr_job_error_text(1399), "Hand tracking timeout");
	cr_expect_null(gw_tr_job_error_text(0));
	cr_expect_null(gw_tr_job_error_text(512));
	cr_expect_null(gw_tr_job_error_text(-513));
}

/* An unparseable body is never quoted back: it may hold signed URLs. */
Test(translate, bad_body_not_echoed)
{
	static const char *const bodies[] = {
		"{\"url\":\"https://st/o?X-Goog-Signature=SECRETSIG\"",
		"https://st/o?X-Goog-Signature=SECRETSIG",
		"{\"url\":[\"https://st/o?X-Goog-Signature=SECRETSIG\"]}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char err[GW_TR_ERR_MAX] = "";
		int rc;
		char *s = parse_one(J "GetUploadUrl", r_upload, bodies[i], &rc, err, sizeof(err));

		cr_expect_eq(rc, GW_TR_BAD_UPSTREAM, "case %zu", i);
		cr_expect_null(strstr(err, "SECRETSIG"), "case %zu: err \"%s\"", i, err);
		cr_expect(err[0], "case %zu: empty err", i);
		free(s);
	}
}

Test(translate, rid_and_state_helpers)
{
	static const struct {
		const char *rid;
		int ok;
	} rids[] = {
		{ "a", 1 }, { "7gHk2mQxYz_-09", 1 }, { "", 0 }, { "a b", 0 }, { "a,b", 0 }, { "a/b", 0 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1 },	/* 64 */
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },	/* 65 */
		{ NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(rids) / sizeof(rids[0]); i++)
		cr_expect_eq(gw_tr_rid_valid(rids[i].rid), rids[i].ok, "rid case %zu", i);
	cr_expect_str_eq(gw_tr_job_state_name(ANIMATE3D__V1__JOB_STATE__PROGRESS), "PROGRESS");
	cr_expect_str_eq(gw_tr_job_state_name(ANIMATE3D__V1__JOB_STATE__FAILURE), "FAILURE");
	cr_expect_null(gw_tr_job_state_name(0));
	cr_expect_null(gw_tr_job_state_name(6));
	cr_expect_null(gw_tr_job_state_name(-1));
}
