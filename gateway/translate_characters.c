/*
 * translate_characters: rows of the Characters service (docs/upstream-api.md, "Characters").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/characters.pb-c.h"
#include "gateway/translate_int.h"

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

	if (rc)
		return rc;
	if (!gw_tr_set(r->name))
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "name is required");
	if (strlen(r->name) > GW_TR_NAME_MAX)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "name is longer than %d bytes",
				  GW_TR_NAME_MAX);
	for (const char *s = r->name; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '/')
			return gw_tr_fail(err, errlen, GW_TR_INVALID,
					  "name must not contain control characters or '/'");
	if (!gw_tr_set(r->model_ext) || !chars_in(r->model_ext, model_exts, 4))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "model_ext must be one of fbx, glb, gltf, vrm");
	if (gw_tr_set(r->thumb_ext) && !chars_in(r->thumb_ext, thumb_exts, 2))
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "thumb_ext must be png, jpg or empty");
	gw_tr_buf_add(&b, "/character/getModelUploadUrl?name=");
	gw_tr_buf_esc(&b, r->name);
	gw_tr_buf_add(&b, "&modelExt=");
	gw_tr_buf_add(&b, r->model_ext);
	if (gw_tr_set(r->thumb_ext)) {
		gw_tr_buf_add(&b, "&thumbExt=");
		gw_tr_buf_add(&b, r->thumb_ext);
	}
	gw_tr_buf_add(&b, r->resumable ? "&resumable=1" : "&resumable=0");
	return gw_tr_path(&b, "GET", out, err, errlen);
}

int gw_tr_parse_get_model_upload_url(const ProtobufCMessage *req, const char *body, size_t len,
				     ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__GetModelUploadUrlResponse *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__get_model_upload_url_response__descriptor)))
		goto out;
	if ((rc = gw_tr_str(root, "modelUrl", NULL, 1, &m->model_url, err, errlen)) ||
	    (rc = gw_tr_str(root, "thumbUrl", NULL, 0, &m->thumb_url, err, errlen)))
		goto out;
	*out = &m->base;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}

/* ---- StoreModel ---- */

int gw_tr_build_store_model(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			    size_t errlen)
{
	const Animate3d__V1__StoreModelRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	json_t *body = NULL;
	int rc = gw_tr_check(req, &animate3d__v1__store_model_request__descriptor, err, errlen);

	if (rc)
		goto out;
	rc = GW_TR_INVALID;
	if (!gw_tr_set(r->model_url) && !gw_tr_set(r->model_id)) {
		gw_tr_fail(err, errlen, rc, "model_url is required (or model_id to update a model)");
		goto out;
	}
	if (gw_tr_set(r->model_url) && !gw_tr_url_ok(r->model_url)) {
		gw_tr_fail(err, errlen, rc, "model_url must be an http(s) URL of at most %d bytes",
			   GW_TR_URL_MAX);
		goto out;
	}
	if (gw_tr_set(r->thumb_url) && !gw_tr_url_ok(r->thumb_url)) {
		gw_tr_fail(err, errlen, rc, "thumb_url must be an http(s) URL of at most %d bytes",
			   GW_TR_URL_MAX);
		goto out;
	}
	if (gw_tr_set(r->model_id) && !gw_tr_id_ok(r->model_id, GW_TR_ID_MAX)) {
		gw_tr_fail(err, errlen, rc, "model_id must be 1..%d characters of A-Z a-z 0-9 _ -",
			   GW_TR_ID_MAX);
		goto out;
	}
	if (gw_tr_set(r->model_name) && strlen(r->model_name) > GW_TR_NAME_MAX) {
		gw_tr_fail(err, errlen, rc, "model_name is longer than %d bytes", GW_TR_NAME_MAX);
		goto out;
	}
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
	gw_tr_buf_add(&b, "/character/storeModel");
	if ((rc = gw_tr_path(&b, "POST", out, err, errlen)))
		goto out;
	rc = gw_tr_body(body, out, err, errlen);
	body = NULL;
	goto out;
oom:
	rc = gw_tr_fail(err, errlen, GW_TR_INVALID, "out of memory building the request");
out:
	json_decref(body);
	return rc;
}

int gw_tr_parse_store_model(const ProtobufCMessage *req, const char *body, size_t len,
			    ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__StoreModelResponse *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__store_model_response__descriptor)))
		goto out;
	if ((rc = gw_tr_str(root, "modelId", NULL, 1, &m->model_id, err, errlen)))
		goto out;
	*out = &m->base;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}

/* ---- ListModels ---- */

int gw_tr_build_list_models(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			    size_t errlen)
{
	const Animate3d__V1__ListModelsRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	char sep = '?';
	char sepstr[2] = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__list_models_request__descriptor, err, errlen);

	if (rc)
		return rc;
	if (gw_tr_set(r->model_id) && !gw_tr_id_ok(r->model_id, GW_TR_ID_MAX))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "model_id must be 1..%d characters of A-Z a-z 0-9 _ -", GW_TR_ID_MAX);
	if (gw_tr_set(r->search_token) && strlen(r->search_token) > GW_TR_NAME_MAX)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "search_token is longer than %d bytes",
				  GW_TR_NAME_MAX);
	gw_tr_buf_add(&b, "/character/listModels");
	if (gw_tr_set(r->model_id)) {
		sepstr[0] = sep;
		gw_tr_buf_add(&b, sepstr);
		gw_tr_buf_add(&b, "modelId=");
		gw_tr_buf_esc(&b, r->model_id);
		sep = '&';
	}
	if (gw_tr_set(r->search_token)) {
		sepstr[0] = sep;
		gw_tr_buf_add(&b, sepstr);
		gw_tr_buf_add(&b, "searchToken=");
		gw_tr_buf_esc(&b, r->search_token);
		sep = '&';
	}
	if (r->include_stock) {
		sepstr[0] = sep;
		gw_tr_buf_add(&b, sepstr);
		gw_tr_buf_add(&b, "stockModel=all");
	}
	return gw_tr_path(&b, "GET", out, err, errlen);
}

static int chars_fill_model(Animate3d__V1__Model *md, json_t *it, const char *ctx, char *err,
			    size_t errlen)
{
	int rc;

	if (!json_is_object(it))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "field %s is not an object",
				  ctx);
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

int gw_tr_parse_list_models(const ProtobufCMessage *req, const char *body, size_t len,
			    ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__ListModelsResponse *m = NULL;
	json_t *root = NULL;
	json_t *arr = NULL;
	json_t *it;
	size_t i;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	if (json_is_array(root)) {
		arr = root;
		if (json_array_size(arr) > GW_TR_MAX_ITEMS) {
			rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
					"more than %d models", GW_TR_MAX_ITEMS);
			goto out;
		}
	} else if ((rc = gw_tr_arr(root, "list", NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen))) {
		goto out;
	}
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__list_models_response__descriptor)))
		goto out;
	if (json_array_size(arr) && !(m->models = gw_tr_array(json_array_size(arr))))
		goto out;
	json_array_foreach(arr, i, it) {
		Animate3d__V1__Model *md;
		char ctx[32];

		rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
		if (!(md = gw_tr_msg_new(&animate3d__v1__model__descriptor)))
			goto out;
		m->models[m->n_models++] = md;
		snprintf(ctx, sizeof(ctx), "list[%zu]", i);
		if ((rc = chars_fill_model(md, it, ctx, err, errlen)))
			goto out;
	}
	*out = &m->base;
	m = NULL;
	rc = GW_TR_OK;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}

/* ---- DeleteModel ---- */

int gw_tr_build_delete_model(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			     size_t errlen)
{
	const Animate3d__V1__DeleteModelRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__delete_model_request__descriptor, err, errlen);

	if (rc)
		return rc;
	if (!gw_tr_id_ok(r->model_id, GW_TR_ID_MAX))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "model_id must be 1..%d characters of A-Z a-z 0-9 _ -", GW_TR_ID_MAX);
	gw_tr_buf_add(&b, "/character/deleteModel/");
	gw_tr_buf_esc(&b, r->model_id);
	return gw_tr_path(&b, "DELETE", out, err, errlen);
}

int gw_tr_parse_delete_model(const ProtobufCMessage *req, const char *body, size_t len,
			     ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__DeleteModelResponse *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__delete_model_response__descriptor)))
		goto out;
	if ((rc = gw_tr_i32(root, "count", NULL, 1, &m->count, err, errlen)))
		goto out;
	*out = &m->base;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}
