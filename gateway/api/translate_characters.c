/*
 * translate_characters: rows of the Characters service (docs/upstream-api.md, "Characters").
 */
#include <string.h>

#include "animate3d/v1/characters.pb-c.h"
#include "gateway/api/translate_int.h"

static int chars_in(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

/* ---- GetModelUploadUrl ---- */

int gw_tr_build_get_model_upload_url(const ProtobufCMessage *req, struct gw_tr_request *out,
				     char *err, size_t errlen)
{
	static const char *const model_exts[] = { "fbx", "glb", "gltf", "vrm" };
	static const char *const thumb_exts[] = { "png", "jpg" };
	const Animate3d__V1__GetModelUploadUrlRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__get_model_upload_url_request__descriptor, err,
			     errlen);

	if (rc || (rc = gw_tr_check_name("name", r->name, err, errlen)))
		return rc;
	if (!gw_tr_set(r->model_ext) || !chars_in(r->model_ext, model_exts, 4))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "model_ext must be one of fbx, glb, gltf, vrm");
	if (gw_tr_set(r->thumb_ext) && !chars_in(r->thumb_ext, thumb_exts, 2))
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "thumb_ext must be png, jpg or empty");
	gw_tr_buf_add(&b, "/character/getModelUploadUrl");
	gw_tr_buf_query(&b, "name", r->name);
	gw_tr_buf_query(&b, "modelExt", r->model_ext);
	if (gw_tr_set(r->thumb_ext))
		gw_tr_buf_query(&b, "thumbExt", r->thumb_ext);
	gw_tr_buf_query(&b, "resumable", r->resumable ? "1" : "0");
	return gw_tr_path(&b, "GET", out, err, errlen);
}

static int chars_fill_upload_url(void *msg, json_t *root, const void *arg, char *err,
				 size_t errlen)
{
	Animate3d__V1__GetModelUploadUrlResponse *m = msg;
	int rc;

	if ((rc = gw_tr_str(root, "modelUrl", NULL, 1, &m->model_url, err, errlen)) ||
	    (rc = gw_tr_str(root, "thumbUrl", NULL, 0, &m->thumb_url, err, errlen)))
		return rc;
	return GW_TR_OK;
}

int gw_tr_parse_get_model_upload_url(const ProtobufCMessage *req, const char *body, size_t len,
				     ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__get_model_upload_url_response__descriptor,
			   chars_fill_upload_url, NULL, out, err, errlen);
}

/* ---- StoreModel ---- */

int gw_tr_build_store_model(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			    size_t errlen)
{
	const Animate3d__V1__StoreModelRequest *r = (const void *)req;
	json_t *body = NULL;
	int rc = gw_tr_check(req, &animate3d__v1__store_model_request__descriptor, err, errlen);

	if (rc)
		goto out;
	rc = GW_TR_INVALID;
	if (!gw_tr_set(r->model_url) && !gw_tr_set(r->model_id)) {
		gw_tr_fail(err, errlen, rc, "model_url is required (or model_id to update a model)");
		goto out;
	}
	if ((gw_tr_set(r->model_url) &&
	     gw_validate_str(GW_VK_URL, "model_url", r->model_url, err, errlen)) ||
	    (gw_tr_set(r->thumb_url) &&
	     gw_validate_str(GW_VK_URL, "thumb_url", r->thumb_url, err, errlen)) ||
	    (gw_tr_set(r->model_id) &&
	     gw_validate_str(GW_VK_MODEL_ID, "model_id", r->model_id, err, errlen)) ||
	    gw_validate_str(GW_VK_TEXT, "model_name", r->model_name, err, errlen))
		goto out;
	if (!(body = json_object()))
		goto oom;
	if (gw_tr_set(r->model_url) &&
	    json_object_set_new(body, "modelUrl", json_string(r->model_url)) < 0)
		goto oom;
	/* json_string() refuses invalid UTF-8: say so rather than "out of memory". */
	if (gw_tr_set(r->model_name) &&
	    json_object_set_new(body, "modelName", json_string(r->model_name)) < 0) {
		gw_tr_fail(err, errlen, rc, "model_name must be valid UTF-8");
		goto out;
	}
	if (gw_tr_set(r->thumb_url) &&
	    json_object_set_new(body, "thumbUrl", json_string(r->thumb_url)) < 0)
		goto oom;
	if (gw_tr_set(r->model_id) && json_object_set_new(body, "modelId", json_string(r->model_id)) < 0)
		goto oom;
	if (json_object_set_new(body, "createThumb", json_boolean(r->create_thumb)) < 0)
		goto oom;
	rc = gw_tr_post("/character/storeModel", body, out, err, errlen);
	body = NULL;
	goto out;
oom:
	rc = gw_tr_fail(err, errlen, GW_TR_INVALID, "out of memory building the request");
out:
	json_decref(body);
	return rc;
}

static int chars_fill_stored(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__StoreModelResponse *m = msg;

	return gw_tr_str(root, "modelId", NULL, 1, &m->model_id, err, errlen);
}

int gw_tr_parse_store_model(const ProtobufCMessage *req, const char *body, size_t len,
			    ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__store_model_response__descriptor,
			   chars_fill_stored, NULL, out, err, errlen);
}

/* ---- ListModels ---- */

int gw_tr_build_list_models(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			    size_t errlen)
{
	const Animate3d__V1__ListModelsRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__list_models_request__descriptor, err, errlen);

	if (rc ||
	    (gw_tr_set(r->model_id) &&
	     (rc = gw_validate_str(GW_VK_MODEL_ID, "model_id", r->model_id, err, errlen))) ||
	    (rc = gw_validate_str(GW_VK_TEXT, "search_token", r->search_token, err, errlen)))
		return rc;
	gw_tr_buf_add(&b, "/character/listModels");
	if (gw_tr_set(r->model_id))
		gw_tr_buf_query(&b, "modelId", r->model_id);
	if (gw_tr_set(r->search_token))
		gw_tr_buf_query(&b, "searchToken", r->search_token);
	if (r->include_stock)
		gw_tr_buf_query(&b, "stockModel", "all");
	return gw_tr_path(&b, "GET", out, err, errlen);
}

static int chars_fill_model(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__Model *md = msg;
	int rc;

	/* The document spells the id "Id", the official demo "id". */
	if ((rc = gw_tr_str(it, json_object_get(it, "Id") ? "Id" : "id", ctx, 1, &md->id, err,
			    errlen)) ||
	    (rc = gw_tr_str(it, "name", ctx, 0, &md->name, err, errlen)) ||
	    (rc = gw_tr_str(it, "thumb", ctx, 0, &md->thumb, err, errlen)) ||
	    (rc = gw_tr_str(it, "rigId", ctx, 0, &md->rig_id, err, errlen)) ||
	    (rc = gw_tr_i64(it, "ctime", ctx, 0, &md->ctime_ms, err, errlen)) ||
	    (rc = gw_tr_i64(it, "mtime", ctx, 0, &md->mtime_ms, err, errlen)) ||
	    (rc = gw_tr_str(it, "platform", ctx, 0, &md->platform, err, errlen)))
		return rc;
	return GW_TR_OK;
}

/* The document answers a bare array, the official demo {"list": [...]}. */
static int chars_fill_models(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	json_t *arr = root;
	int rc;

	if (!json_is_array(root)) {
		if ((rc = gw_tr_arr(root, "list", NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen)))
			return rc;
	} else if (json_array_size(arr) > GW_TR_MAX_ITEMS) {
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "more than %d models",
				  GW_TR_MAX_ITEMS);
	}
	return gw_tr_fill_list(msg, "models", arr, NULL, 0, chars_fill_model, "list", err, errlen);
}

int gw_tr_parse_list_models(const ProtobufCMessage *req, const char *body, size_t len,
			    ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__list_models_response__descriptor,
			   chars_fill_models, NULL, out, err, errlen);
}

/* ---- DeleteModel ---- */

int gw_tr_build_delete_model(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			     size_t errlen)
{
	const Animate3d__V1__DeleteModelRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__delete_model_request__descriptor, err, errlen);

	return rc ? rc : gw_tr_id_path("/character/deleteModel/", GW_VK_MODEL_ID, "model_id",
				       r->model_id, "DELETE", out, err, errlen);
}

static int chars_fill_deleted(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__DeleteModelResponse *m = msg;

	return gw_tr_i32(root, "count", NULL, 1, &m->count, err, errlen);
}

int gw_tr_parse_delete_model(const ProtobufCMessage *req, const char *body, size_t len,
			     ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__delete_model_response__descriptor,
			   chars_fill_deleted, NULL, out, err, errlen);
}
