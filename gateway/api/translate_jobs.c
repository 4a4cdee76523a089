/*
 * translate_jobs: rows of the Jobs service (docs/upstream-api.md, "Upload" and "Jobs").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/base/errmap.h"
#include "gateway/api/params.h"
#include "gateway/api/translate_int.h"

#define JOBS_EXC_MAX 512		/* bytes of an exc_message quoted when its code is unknown */
#define JOBS_MAX_PERSONS 64		/* models[] of a link or list entry, entries of a /pesave answer
					 * (v2.0 tracks up to 16 persons per job) */
#define JOBS_TRACKING_MAX 999999	/* an integer tracking id from upstream ("%03d" then) */
#define JOBS_TID_BUF 16			/* a zero-padded integer tracking id */
#define JOBS_PERSON_DIGITS 3		/* the _NNN of v2.0's per-person names */

/* ---- rids (GetStatus, WatchStatus, GetDownloadUrls share the shape) ---- */

static int jobs_rids_of(const ProtobufCMessage *req, size_t *n, char ***rids, char *err,
			size_t errlen)
{
	if (gw_tr_rids_of(req, n, rids) != 0)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "request does not carry rids");
	return GW_TR_OK;
}

/* 1 when rids[i] already appeared before i: duplicates are asked for and answered once. */
static int jobs_rid_dup(char **rids, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(rids[j], rids[i]) == 0)
			return 1;
	return 0;
}

static int jobs_build_rids(const ProtobufCMessage *req, const char *prefix,
			   struct gw_tr_request *out, char *err, size_t errlen)
{
	struct gw_tr_buf b = { 0 };
	char **rids = NULL;
	size_t n = 0;
	int first = 1;
	int rc = jobs_rids_of(req, &n, &rids, err, errlen);

	/* The field table caps rids at GW_TR_MAX_RIDS, so the duplicate check below is bounded. */
	if (rc || (rc = gw_validate_message(req, err, errlen)))
		return rc;
	if (n < 1 || n > GW_TR_MAX_RIDS)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "rids must hold 1..%d rids (got %zu)",
				  GW_TR_MAX_RIDS, n);
	for (size_t i = 0; i < n; i++) {
		char field[GW_TR_CTX_MAX];

		snprintf(field, sizeof(field), "rids[%zu]", i);
		if ((rc = gw_validate_str(GW_VK_RID, field, rids[i], err, errlen)))
			return rc;
	}
	gw_tr_buf_add(&b, prefix);
	for (size_t i = 0; i < n; i++) {
		if (jobs_rid_dup(rids, i))
			continue;
		if (!first)
			gw_tr_buf_add(&b, ",");
		gw_tr_buf_esc(&b, rids[i]);
		first = 0;
	}
	return gw_tr_path(&b, "GET", out, err, errlen);
}

/* Checks that every element of arr is an object with a string "rid"; name is the array's. */
static int jobs_check_rid_items(json_t *arr, const char *name, char *err, size_t errlen)
{
	char ctx[GW_TR_CTX_MAX];
	char *rid = NULL;
	size_t i;
	json_t *it;

	json_array_foreach(arr, i, it) {
		int rc;

		snprintf(ctx, sizeof(ctx), "%s[%zu]", name, i);
		if (!json_is_object(it))
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
					  "field %s is not an object", ctx);
		rc = gw_tr_str(it, "rid", ctx, 1, &rid, err, errlen);
		free(rid);
		rid = NULL;
		if (rc)
			return rc;
	}
	return GW_TR_OK;
}

/* The index in arr of the first element whose "rid" is rid, or -1. */
static long jobs_find_rid(json_t *arr, const char *rid)
{
	size_t i;
	json_t *it;

	json_array_foreach(arr, i, it) {
		const char *r = json_string_value(json_object_get(it, "rid"));
		if (r && strcmp(r, rid) == 0)
			return (long)i;
	}
	return -1;
}

/* What a rids reply (GetStatus, GetDownloadUrls) needs beyond the body. */
struct jobs_rids_reply {
	char **rids;			/* the request's, in its order */
	size_t n;
	const char *name;		/* the body's array: "status", "links" */
	const char *field;		/* the reply's list: "statuses", "links" */
	gw_tr_fill_fn fill;
};

/* One item per distinct requested rid that upstream answered, in request order; rids upstream
 * did not answer are left out. */
static int jobs_fill_rids(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	const struct jobs_rids_reply *a = arg;
	json_t *arr = NULL;
	size_t *pick = NULL;
	size_t npick = 0;
	int rc;

	if ((rc = gw_tr_arr(root, a->name, NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen)) ||
	    (rc = jobs_check_rid_items(arr, a->name, err, errlen)))
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (a->n && !(pick = calloc(a->n, sizeof(*pick))))
		goto out;
	for (size_t i = 0; i < a->n; i++) {
		long idx = jobs_rid_dup(a->rids, i) ? -1 : jobs_find_rid(arr, a->rids[i]);

		if (idx >= 0)
			pick[npick++] = (size_t)idx;
	}
	/* A NULL pick would mean every element. */
	rc = npick ? gw_tr_fill_list(msg, a->field, arr, pick, npick, a->fill, a->name, err, errlen)
		   : GW_TR_OK;
out:
	free(pick);
	return rc;
}

static int jobs_parse_rids(const ProtobufCMessage *req, const char *body, size_t len,
			   const ProtobufCMessageDescriptor *d, struct jobs_rids_reply *a,
			   ProtobufCMessage **out, char *err, size_t errlen)
{
	int rc = jobs_rids_of(req, &a->n, &a->rids, err, errlen);

	return rc ? rc : gw_tr_reply(body, len, d, jobs_fill_rids, a, out, err, errlen);
}

/* ---- GetUploadUrl ---- */

int gw_tr_build_get_upload_url(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			       size_t errlen)
{
	const Animate3d__V1__GetUploadUrlRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__get_upload_url_request__descriptor, err, errlen);

	if (rc || (rc = gw_tr_check_name("name", r->name, err, errlen)))
		return rc;
	gw_tr_buf_add(&b, "/upload");
	gw_tr_buf_query(&b, "name", r->name);
	gw_tr_buf_query(&b, "resumable", r->resumable ? "1" : "0");
	return gw_tr_path(&b, "GET", out, err, errlen);
}

static int jobs_fill_upload_url(void *msg, json_t *root, const void *arg, char *err,
				size_t errlen)
{
	Animate3d__V1__GetUploadUrlResponse *m = msg;

	return gw_tr_str(root, "url", NULL, 1, &m->url, err, errlen);
}

int gw_tr_parse_get_upload_url(const ProtobufCMessage *req, const char *body, size_t len,
			       ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__get_upload_url_response__descriptor,
			   jobs_fill_upload_url, NULL, out, err, errlen);
}

/* ---- StartJob ---- */

int gw_tr_build_start_job(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			  size_t errlen)
{
	const Animate3d__V1__StartJobRequest *r = (const void *)req;
	const char *key = NULL;
	const char *src = NULL;
	json_t *body = NULL;
	json_t *params = NULL;
	int rc = gw_tr_check(req, &animate3d__v1__start_job_request__descriptor, err, errlen);

	if (rc)
		goto out;
	rc = GW_TR_INVALID;
	switch (r->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		key = "url";
		src = r->upload_url;
		if (gw_validate_str(GW_VK_URL, "upload_url", src, err, errlen))
			goto out;
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID: {
		int mp = r->source_case == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID;

		key = mp ? "rid_mp_detection" : "rid";
		src = mp ? r->mp_detection_rid : r->rerun_rid;
		if (gw_validate_str(GW_VK_RID, mp ? "mp_detection_rid" : "rerun_rid", src, err,
				    errlen))
			goto out;
		/* The second step of a multi-person job only assigns characters to persons. */
		if (mp && (!r->params || r->params->n_models == 0)) {
			gw_tr_fail(err, errlen, rc,
				   "params.models must name at least one tracked person when mp_detection_rid is set");
			goto out;
		}
		break;
	}
	default:
		gw_tr_fail(err, errlen, rc,
			   "source is required: set one of upload_url, rerun_rid, mp_detection_rid");
		goto out;
	}
	if (gw_params_validate(r->params, err, errlen) < 0 ||
	    gw_params_validate_extra(r->extra_params, r->n_extra_params, err, errlen) < 0)
		goto out;
	params = gw_params_render(r->params, r->extra_params, r->n_extra_params);
	body = json_object();
	if (!params || !body || json_object_set_new(body, key, json_string(src)) < 0 ||
	    json_object_set_new(body, "processor", json_string("video2anim")) < 0 ||
	    json_object_set(body, "params", params) < 0) {
		gw_tr_fail(err, errlen, rc, "out of memory building the request");
		goto out;
	}
	rc = gw_tr_post("/process", body, out, err, errlen);
	body = NULL;
out:
	json_decref(params);
	json_decref(body);
	return rc;
}

static int jobs_fill_started(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__StartJobResponse *m = msg;
	int rc = gw_tr_str(root, "rid", NULL, 1, &m->rid, err, errlen);

	if (rc == GW_TR_OK && !gw_tr_rid_valid(m->rid))
		rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "field rid is not a valid rid");
	return rc;
}

int gw_tr_parse_start_job(const ProtobufCMessage *req, const char *body, size_t len,
			  ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__start_job_response__descriptor,
			   jobs_fill_started, NULL, out, err, errlen);
}

/* ---- GetStatus ---- */

int gw_tr_build_get_status(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			   size_t errlen)
{
	return jobs_build_rids(req, "/status/", out, err, errlen);
}

static int jobs_is_alnum(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* The documented code in an exc_message: a number, a string holding one as a separate word
 * ("513", "Error 513: ...", "['513']"), or a list whose first element is one. 0 when none. */
static int jobs_error_code(json_t *v, int depth)
{
	const char *s;

	if (json_is_integer(v))
		return gw_tr_job_error_text((int)json_integer_value(v)) ? (int)json_integer_value(v) : 0;
	if (json_is_array(v) && depth == 0)
		return jobs_error_code(json_array_get(v, 0), 1);
	if (!json_is_string(v))
		return 0;
	s = json_string_value(v);
	for (size_t i = 0; s[i];) {
		size_t j = i;
		long code = 0;

		if (!(s[i] >= '0' && s[i] <= '9')) {
			i++;
			continue;
		}
		while (s[j] >= '0' && s[j] <= '9') {
			if (code < 100000)
				code = code * 10 + (s[j] - '0');
			j++;
		}
		if ((i == 0 || !jobs_is_alnum(s[i - 1])) && !jobs_is_alnum(s[j]) &&
		    gw_tr_job_error_text((int)code))
			return (int)code;
		i = j;
	}
	return 0;
}

static int jobs_fill_failure(Animate3d__V1__JobStatus *st, json_t *det, const char *ctx, char *err,
			     size_t errlen)
{
	json_t *exc = json_object_get(det, "exc_message");
	int code = jobs_error_code(exc, 0);
	const char *text = gw_tr_job_error_text(code);
	int rc = gw_tr_str(det, "exc_type", ctx, 0, &st->error_type, err, errlen);

	if (rc)
		return rc;
	st->error_code = (Animate3d__V1__JobError)code;
	if (text) {
		st->error_message = strdup(text);
	} else if (json_is_string(exc)) {
		/* Not a documented code: pass upstream's words on, minus any signed URL query. */
		char buf[JOBS_EXC_MAX];
		size_t n = json_string_length(exc);

		gw_errmap_sanitize(json_string_value(exc), n, buf, sizeof(buf));
		st->error_message = strdup(buf);
	} else {
		return GW_TR_OK;
	}
	if (!st->error_message) {
		st->error_message = (char *)protobuf_c_empty_string;
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	}
	return GW_TR_OK;
}

static int jobs_fill_status(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__JobStatus *st = msg;
	char dctx[80];
	char *state = NULL;
	json_t *det = NULL;
	int rc;

	snprintf(dctx, sizeof(dctx), "%s.details", ctx);
	if ((rc = gw_tr_str(it, "rid", ctx, 1, &st->rid, err, errlen)) ||
	    (rc = gw_tr_str(it, "status", ctx, 1, &state, err, errlen)) ||
	    (rc = gw_tr_obj(it, "details", ctx, 0, &det, err, errlen)))
		goto out;
	st->state = (Animate3d__V1__JobState)gw_tr_job_state(state);
	switch (st->state) {
	case ANIMATE3D__V1__JOB_STATE__STARTING:	/* a list status (v1.5.8 API 6): still queued */
	case ANIMATE3D__V1__JOB_STATE__PROGRESS:
		if ((rc = gw_tr_i64(det, "step", dctx, 0, &st->step, err, errlen)) ||
		    (rc = gw_tr_i64(det, "total", dctx, 0, &st->total, err, errlen)) ||
		    (rc = gw_tr_i64(det, "positionInQueue", dctx, 0, &st->position_in_queue, err,
				    errlen)) ||
		    (rc = gw_tr_i64(det, "position_in_queue", dctx, 0, &st->position_in_queue, err,
				    errlen)) ||
		    /* Where public clients read it: beside "details". */
		    (rc = gw_tr_i64(it, "positionInQueue", ctx, 0, &st->position_in_queue, err,
				    errlen)))
			goto out;
		break;
	case ANIMATE3D__V1__JOB_STATE__SUCCESS:
		/* v1.5.8 API 4 writes "in" (what the SDKs read); the v2.0 transcription's "In" is read
		 * too. */
		rc = gw_tr_str(det, json_object_get(det, "in") ? "in" : "In", dctx, 0, &st->input_file,
			       err, errlen);
		if (rc || (rc = gw_tr_str(det, "out", dctx, 0, &st->output_file, err, errlen)))
			goto out;
		break;
	case ANIMATE3D__V1__JOB_STATE__RETRY:
	case ANIMATE3D__V1__JOB_STATE__FAILURE:
		if ((rc = jobs_fill_failure(st, det, dctx, err, errlen)))
			goto out;
		break;
	default:
		break;
	}
	rc = GW_TR_OK;
out:
	free(state);
	return rc;
}

int gw_tr_parse_get_status(const ProtobufCMessage *req, const char *body, size_t len,
			   ProtobufCMessage **out, char *err, size_t errlen)
{
	struct jobs_rids_reply a = { .name = "status", .field = "statuses", .fill = jobs_fill_status };

	return jobs_parse_rids(req, body, len, &animate3d__v1__get_status_response__descriptor, &a,
			       out, err, errlen);
}

/* ---- GetDownloadUrls ---- */

int gw_tr_build_get_download_urls(const ProtobufCMessage *req, struct gw_tr_request *out,
				  char *err, size_t errlen)
{
	return jobs_build_rids(req, "/download/", out, err, errlen);
}

/* One {"name", "files": [{"<ext>": "<url>"}, ...]} into a DownloadGroup. */
static int jobs_fill_group(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__DownloadGroup *g = msg;
	json_t *files = NULL;
	json_t *f;
	size_t i, nfiles = 0;
	int rc;

	if ((rc = gw_tr_str(it, "name", ctx, 0, &g->name, err, errlen)) ||
	    (rc = gw_tr_arr(it, "files", ctx, 0, GW_TR_MAX_FILES, &files, err, errlen)))
		return rc;
	json_array_foreach(files, i, f) {
		if (!json_is_object(f))
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
					  "field %s.files[%zu] is not an object", ctx, i);
		nfiles += json_object_size(f);
	}
	if (nfiles > GW_TR_MAX_FILES)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
				  "field %s.files has more than %d files", ctx,
				  GW_TR_MAX_FILES);
	if (nfiles && !(g->files = gw_tr_array(nfiles)))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	json_array_foreach(files, i, f) {
		const char *ext;
		json_t *url;

		json_object_foreach(f, ext, url) {
			Animate3d__V1__DownloadFile *df;

			if (!json_is_string(url))
				return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
						  "field %s.files[%zu].%s is not a string", ctx,
						  i, ext);
			if (!(df = gw_tr_msg_new(&animate3d__v1__download_file__descriptor)))
				return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
			g->files[g->n_files++] = df;
			df->format = strdup(ext);
			if (!df->format) {
				df->format = (char *)protobuf_c_empty_string;
				return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
			}
			df->url = strdup(json_string_value(url));
			if (!df->url) {
				df->url = (char *)protobuf_c_empty_string;
				return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
			}
		}
	}
	return GW_TR_OK;
}

/* ---- v2.0 persons: tracking ids, models, per-person names ---- */

/* A person's tracking id under key: upstream's string ("001") as it is, an integer (as older
 * answers wrote it) zero-padded to three digits, the form PeSave and models= use. */
static int jobs_tracking_id(json_t *obj, const char *key, const char *ctx, int required,
			    char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	char buf[JOBS_TID_BUF];

	if (!json_is_integer(v))
		return gw_tr_str(obj, key, ctx, required, out, err, errlen);
	if (json_integer_value(v) < 0 || json_integer_value(v) > JOBS_TRACKING_MAX)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "field %s.%s is not a tracking id",
				  ctx, key);
	snprintf(buf, sizeof buf, "%03lld", (long long)json_integer_value(v));
	if (!(*out = strdup(buf)))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	return GW_TR_OK;
}

/* faceDataType / handDataType: v2.0 names them, not their type; numbers and booleans are read. */
static int jobs_data_type(json_t *obj, const char *key, const char *ctx, int32_t *out, char *err,
			  size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? 1 : 0;
		return GW_TR_OK;
	}
	return gw_tr_i32(obj, key, ctx, 0, out, err, errlen);
}

/* One of v2.0's "models":[{trackingId, modelId, faceDataType, handDataType}]. */
static int jobs_fill_model(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__JobModel *m = msg;
	int rc;

	if ((rc = jobs_tracking_id(it, "trackingId", ctx, 1, &m->tracking_id, err, errlen)) ||
	    (rc = gw_tr_str(it, "modelId", ctx, 0, &m->model_id, err, errlen)) ||
	    (rc = jobs_data_type(it, "faceDataType", ctx, &m->face_data_type, err, errlen)) ||
	    (rc = jobs_data_type(it, "handDataType", ctx, &m->hand_data_type, err, errlen)))
		return rc;
	return GW_TR_OK;
}

/* v2.0's "mode" (*has set when upstream sent one) and "models" of a download link or list
 * entry: msg is the DownloadLink or JobSummary, whose list is named "models". */
static int jobs_fill_mode(ProtobufCMessage *msg, json_t *it, const char *ctx, int *has,
			  int32_t *mode, char *err, size_t errlen)
{
	char name[GW_TR_CTX_MAX];
	json_t *models = NULL;
	json_t *v = json_object_get(it, "mode");
	int rc;

	*has = v && !json_is_null(v);
	if ((*has && (rc = gw_tr_i32(it, "mode", ctx, 1, mode, err, errlen))) ||
	    (rc = gw_tr_arr(it, "models", ctx, 0, JOBS_MAX_PERSONS, &models, err, errlen)))
		return rc;
	if (!models)
		return GW_TR_OK;
	snprintf(name, sizeof(name), "%s.models", ctx);
	return gw_tr_fill_list(msg, "models", models, NULL, 0, jobs_fill_model, name, err, errlen);
}

/* The NNN of name when it is "<prefix>_NNN" (prefix NULL: any prefix), else NULL. */
static const char *jobs_person_suffix(const char *name, const char *prefix)
{
	size_t n = strlen(name);
	const char *d = name + n - JOBS_PERSON_DIGITS;

	if (n < JOBS_PERSON_DIGITS + 2 || d[-1] != '_')
		return NULL;
	for (int k = 0; k < JOBS_PERSON_DIGITS; k++)
		if (d[k] < '0' || d[k] > '9')
			return NULL;
	if (prefix && (strlen(prefix) != n - JOBS_PERSON_DIGITS - 1 ||
		       strncmp(name, prefix, n - JOBS_PERSON_DIGITS - 1) != 0))
		return NULL;
	return d;
}

/* 1 when a multi-person link l tracked the person nnn. */
static int jobs_link_tracks(const Animate3d__V1__DownloadLink *l, const char *nnn)
{
	if (l->mode_opt_case != ANIMATE3D__V1__DOWNLOAD_LINK__MODE_OPT_MODE || l->mode != 1)
		return 0;
	for (size_t k = 0; k < l->n_models; k++)
		if (l->models[k]->tracking_id && strcmp(l->models[k]->tracking_id, nnn) == 0)
			return 1;
	return 0;
}

/* What group g of link l holds, from the documented names: v1.5.8 API 5 (landmarks), v2.0
 * Phase 1 (characters_detection_result, thumbnail_character_XXX) and Download (_XXX appended
 * per person, all_characters). */
static int jobs_classify_group(Animate3d__V1__DownloadGroup *g, const Animate3d__V1__DownloadLink *l,
			       char *err, size_t errlen)
{
	const char *name = g->name ? g->name : "";
	const char *nnn = NULL;

	if (strcmp(name, "characters_detection_result") == 0)
		g->kind = ANIMATE3D__V1__DOWNLOAD_GROUP_KIND__DOWNLOAD_GROUP_DETECTION_RESULT;
	else if (strcmp(name, "all_characters") == 0)
		g->kind = ANIMATE3D__V1__DOWNLOAD_GROUP_KIND__DOWNLOAD_GROUP_ALL_CHARACTERS;
	else if (strcmp(name, "landmarks") == 0 || (nnn = jobs_person_suffix(name, "landmarks")))
		g->kind = ANIMATE3D__V1__DOWNLOAD_GROUP_KIND__DOWNLOAD_GROUP_LANDMARKS;
	else if ((nnn = jobs_person_suffix(name, "thumbnail_character")))
		g->kind = ANIMATE3D__V1__DOWNLOAD_GROUP_KIND__DOWNLOAD_GROUP_PERSON_THUMBNAIL;
	else if (!(nnn = jobs_person_suffix(name, NULL)) || !jobs_link_tracks(l, nnn))
		nnn = NULL;	/* a character's files: per person only in a multi-person link */
	if (nnn && !(g->tracking_id = strndup(nnn, JOBS_PERSON_DIGITS)))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	return GW_TR_OK;
}

static int jobs_fill_link(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__DownloadLink *l = msg;
	char name[GW_TR_CTX_MAX];
	json_t *urls = NULL;
	int has_mode = 0;
	int rc;

	if ((rc = gw_tr_str(it, "rid", ctx, 1, &l->rid, err, errlen)) ||
	    (rc = gw_tr_str(it, "name", ctx, 0, &l->name, err, errlen)) ||
	    (rc = gw_tr_i64(it, "size", ctx, 0, &l->size, err, errlen)) ||
	    (rc = gw_tr_dbl(it, "duration", ctx, 0, &l->duration, err, errlen)) ||
	    (rc = gw_tr_str(it, "input", ctx, 0, &l->input, err, errlen)) ||
	    (rc = jobs_fill_mode(msg, it, ctx, &has_mode, &l->mode, err, errlen)) ||
	    (rc = gw_tr_arr(it, "urls", ctx, 0, GW_TR_MAX_GROUPS, &urls, err, errlen)))
		return rc;
	if (has_mode)
		l->mode_opt_case = ANIMATE3D__V1__DOWNLOAD_LINK__MODE_OPT_MODE;
	snprintf(name, sizeof(name), "%s.urls", ctx);
	if ((rc = gw_tr_fill_list(msg, "groups", urls, NULL, 0, jobs_fill_group, name, err, errlen)))
		return rc;
	/* After models: a group's person is one the link tracked. */
	for (size_t k = 0; k < l->n_groups; k++)
		if ((rc = jobs_classify_group(l->groups[k], l, err, errlen)))
			return rc;
	return GW_TR_OK;
}

int gw_tr_parse_get_download_urls(const ProtobufCMessage *req, const char *body, size_t len,
				  ProtobufCMessage **out, char *err, size_t errlen)
{
	struct jobs_rids_reply a = { .name = "links", .field = "links", .fill = jobs_fill_link };

	return jobs_parse_rids(req, body, len, &animate3d__v1__get_download_urls_response__descriptor,
			       &a, out, err, errlen);
}

/* ---- ListJobs ---- */

int gw_tr_build_list_jobs(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			  size_t errlen)
{
	const Animate3d__V1__ListJobsRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__list_jobs_request__descriptor, err, errlen);
	unsigned seen = 0;	/* one bit per JobState asked for: repeats go upstream once */
	int first = 1;

	if (rc)
		return rc;
	for (size_t i = 0; i < r->n_states; i++)
		if (!gw_tr_job_state_name((int)r->states[i]))
			return gw_tr_fail(err, errlen, GW_TR_INVALID,
					  "states[%zu] is not a job state (got %d)", i,
					  (int)r->states[i]);
	gw_tr_buf_add(&b, "/list");
	for (size_t i = 0; i < r->n_states; i++) {
		unsigned bit = 1u << (unsigned)r->states[i];	/* 1..5: gw_tr_job_state_name said so */

		if (seen & bit)
			continue;
		seen |= bit;
		gw_tr_buf_add(&b, first ? "/" : ",");
		gw_tr_buf_add(&b, gw_tr_job_state_name((int)r->states[i]));
		first = 0;
	}
	return gw_tr_path(&b, "GET", out, err, errlen);
}

static int jobs_fill_summary(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__JobSummary *s = msg;
	char *state = NULL;
	int has_mode = 0;
	int rc;

	if ((rc = gw_tr_str(it, "rid", ctx, 1, &s->rid, err, errlen)) ||
	    (rc = gw_tr_str(it, "fileName", ctx, 0, &s->file_name, err, errlen)) ||
	    (rc = gw_tr_i64(it, "fileSize", ctx, 0, &s->file_size, err, errlen)) ||
	    (rc = gw_tr_dbl(it, "fileDuration", ctx, 0, &s->file_duration, err, errlen)) ||
	    (rc = gw_tr_str(it, "status", ctx, 0, &state, err, errlen)) ||
	    (rc = gw_tr_i64(it, "ctime", ctx, 0, &s->ctime_ms, err, errlen)) ||
	    (rc = gw_tr_i64(it, "mtime", ctx, 0, &s->mtime_ms, err, errlen)) ||
	    (rc = jobs_fill_mode(msg, it, ctx, &has_mode, &s->mode, err, errlen)))
		goto out;
	if (has_mode)
		s->mode_opt_case = ANIMATE3D__V1__JOB_SUMMARY__MODE_OPT_MODE;
	/* STARTING (queued) is a state of its own here, not a finished one. */
	s->state = (Animate3d__V1__JobState)gw_tr_job_state(state);
out:
	free(state);
	return rc;
}

static int jobs_fill_list(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	json_t *arr = NULL;
	int rc = gw_tr_arr(root, "list", NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen);

	return rc ? rc : gw_tr_fill_list(msg, "jobs", arr, NULL, 0, jobs_fill_summary, "list", err,
					 errlen);
}

int gw_tr_parse_list_jobs(const ProtobufCMessage *req, const char *body, size_t len,
			  ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__list_jobs_response__descriptor, jobs_fill_list,
			   NULL, out, err, errlen);
}

/* ---- GetVideoInfo ---- */

int gw_tr_build_get_video_info(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			       size_t errlen)
{
	const Animate3d__V1__GetVideoInfoRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__get_video_info_request__descriptor, err, errlen);

	if (rc || (rc = gw_validate_str(GW_VK_URL, "upload_url", r->upload_url, err, errlen)))
		return rc;
	return gw_tr_post("/videoInfo", json_pack("{s:s}", "url", r->upload_url), out, err, errlen);
}

static int jobs_fill_video_info(void *msg, json_t *root, const void *arg, char *err,
				size_t errlen)
{
	Animate3d__V1__VideoInfo *m = msg;
	int rc;

	if ((rc = gw_tr_i32(root, "width", NULL, 1, &m->width, err, errlen)) ||
	    (rc = gw_tr_i32(root, "height", NULL, 1, &m->height, err, errlen)) ||
	    (rc = gw_tr_dbl(root, "fps", NULL, 0, &m->fps, err, errlen)) ||
	    (rc = gw_tr_dbl(root, "duration", NULL, 1, &m->duration, err, errlen)) ||
	    (rc = gw_tr_str(root, "codec", NULL, 0, &m->codec, err, errlen)) ||
	    (rc = gw_tr_i64(root, "size", NULL, 0, &m->size, err, errlen)))
		return rc;
	return GW_TR_OK;
}

int gw_tr_parse_get_video_info(const ProtobufCMessage *req, const char *body, size_t len,
			       ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__video_info__descriptor, jobs_fill_video_info,
			   NULL, out, err, errlen);
}

/* ---- GetPersonUrls (v2.0 PeSave API 1) ---- */

int gw_tr_build_get_person_urls(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__GetPersonUrlsRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__get_person_urls_request__descriptor, err, errlen);

	return rc ? rc : gw_tr_id_path("/pesave/getUrls/", GW_VK_RID, "rid", r->rid, "GET", out, err,
				       errlen);
}

/* One {"trackingId", "modifiedVersionReadUrl": null | url, "modifiedVersionWriteUrl"}. */
static int jobs_fill_person_urls(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__PersonUrls *p = msg;
	int rc;

	if ((rc = jobs_tracking_id(it, "trackingId", ctx, 1, &p->tracking_id, err, errlen)) ||
	    (rc = gw_tr_str(it, "modifiedVersionReadUrl", ctx, 0, &p->modified_version_read_url, err,
			    errlen)) ||
	    (rc = gw_tr_str(it, "modifiedVersionWriteUrl", ctx, 1, &p->modified_version_write_url,
			    err, errlen)))
		return rc;
	return GW_TR_OK;
}

/* The document's answer is a bare array, one entry per tracked person. */
static int jobs_fill_persons(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	if (!json_is_array(root))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "body is not an array");
	if (json_array_size(root) > JOBS_MAX_PERSONS)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "body has more than %d entries",
				  JOBS_MAX_PERSONS);
	return gw_tr_fill_list(msg, "persons", root, NULL, 0, jobs_fill_person_urls, "body", err,
			       errlen);
}

int gw_tr_parse_get_person_urls(const ProtobufCMessage *req, const char *body, size_t len,
				ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__get_person_urls_response__descriptor,
			   jobs_fill_persons, NULL, out, err, errlen);
}
