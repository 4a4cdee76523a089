/* sim_models: stock and custom character models. */
#include "sim_models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sim_http.h"
#include "sim_ids.h"
#include "sim_storage.h"

static const struct { const char *name, *platform, *rig; } sim_models_stock[SIM_MODELS_STOCK] = {
	{ "Andy", "deepmotion", "dm_humanoid" },
	{ "Mia", "deepmotion", "dm_humanoid" },
	{ "Roblox R15", "roblox", "roblox_r15" },
};

static const char *const sim_models_exts[] = { "fbx", "glb", "gltf", "vrm", "zip" };
static const char *const sim_models_thumb_exts[] = { "png", "jpg", "jpeg" };

int sim_models_init(struct sim *s)
{
	uint64_t st = SIM_MODELS_STOCK_SEED;

	for (int i = 0; i < SIM_MODELS_STOCK; i++) {
		struct sim_model *m = calloc(1, sizeof(*m));

		if (m == NULL)
			return -1;
		sim_ids_new(&st, m->id, SIM_ID_LEN);
		snprintf(m->name, sizeof(m->name), "%s", sim_models_stock[i].name);
		snprintf(m->platform, sizeof(m->platform), "%s", sim_models_stock[i].platform);
		snprintf(m->rig_id, sizeof(m->rig_id), "%s", sim_models_stock[i].rig);
		m->account = -1;
		m->has_thumb = 1;
		m->upload = m->thumb_upload = -1;
		m->ctime_ms = m->mtime_ms = 1700000000000ll;
		s->models[i] = m;
	}
	return 0;
}

void sim_models_free(struct sim *s)
{
	for (int i = 0; i < SIM_MAX_MODELS; i++) {
		free(s->models[i]);
		s->models[i] = NULL;
	}
}

struct sim_model *sim_models_find(struct sim *s, const char *id, int account)
{
	for (int i = 0; i < SIM_MAX_MODELS; i++) {
		struct sim_model *m = s->models[i];

		if (m != NULL && strcmp(m->id, id) == 0 &&
		    (m->account < 0 || account < 0 || m->account == account))
			return m;
	}
	return NULL;
}

static int sim_models_ext_ok(const char *ext, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(ext, list[i]) == 0)
			return 1;
	return 0;
}

void sim_models_h_upload_url(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	char name[SIM_NAME_MAX - 8] = "model", ext[16] = "fbx", text[16] = "png", res[8] = "1";
	char file[SIM_NAME_MAX], murl[SIM_URL_MAX], turl[SIM_URL_MAX];
	int resumable;

	sim_http_query(rq, "name", name, sizeof(name));
	sim_http_query(rq, "modelExt", ext, sizeof(ext));
	sim_http_query(rq, "thumbExt", text, sizeof(text));
	sim_http_query(rq, "resumable", res, sizeof(res));
	if (name[0] == '\0' || !sim_models_ext_ok(ext, sim_models_exts, 5)) {
		sim_resp_error(rs, 400, "400", "Bad name or modelExt (fbx, glb, gltf, vrm, zip)");
		return;
	}
	if (!sim_models_ext_ok(text, sim_models_thumb_exts, 3) ||
	    (strcmp(res, "0") != 0 && strcmp(res, "1") != 0)) {
		sim_resp_error(rs, 400, "400", "Bad thumbExt (png, jpg) or resumable (0, 1)");
		return;
	}
	resumable = res[0] == '1';
	snprintf(file, sizeof(file), "%s.%s", name, ext);
	if (sim_storage_new_upload(s, rq->account, SIM_UP_MODEL, file, resumable, murl, sizeof(murl)) < 0)
		goto full;
	snprintf(file, sizeof(file), "%s.%s", name, text);
	if (sim_storage_new_upload(s, rq->account, SIM_UP_THUMB, file, resumable, turl, sizeof(turl)) < 0)
		goto full;
	sim_resp_json(rs, 200, json_pack("{s:s, s:s}", "modelUrl", murl, "thumbUrl", turl));
	return;
full:
	sim_resp_error(rs, 503, "503", "Upload table full");
}

static int sim_models_truthy(const json_t *v)
{
	if (json_is_true(v))
		return 1;
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v))
		return strcmp(json_string_value(v), "1") == 0 || strcmp(json_string_value(v), "true") == 0;
	return 0;
}

void sim_models_h_store(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *body = sim_http_json_body(rq, rs);
	const char *murl, *name, *turl, *mid;
	struct sim_model *m = NULL;
	int up = -1, tup = -1, slot = -1;

	if (body == NULL)
		return;
	murl = json_string_value(json_object_get(body, "modelUrl"));
	name = json_string_value(json_object_get(body, "modelName"));
	turl = json_string_value(json_object_get(body, "thumbUrl"));
	mid = json_string_value(json_object_get(body, "modelId"));
	if (turl != NULL && turl[0] != '\0' &&
	    ((tup = sim_storage_find_url(s, turl, rq->account)) < 0 || !s->uploads[tup]->complete)) {
		sim_resp_error(rs, 400, "400", "thumbUrl is not an uploaded file of this account");
		goto out;
	}
	if (mid != NULL && mid[0] != '\0') {
		m = sim_models_find(s, mid, rq->account);
		if (m == NULL || m->account != rq->account) {
			sim_resp_error(rs, 404, "404", "Unknown modelId: %s", mid);
			goto out;
		}
	} else {
		if (murl == NULL || (up = sim_storage_find_url(s, murl, rq->account)) < 0 ||
		    s->uploads[up]->kind != SIM_UP_MODEL || !s->uploads[up]->complete) {
			sim_resp_error(rs, 400, "400", "modelUrl is not an uploaded model of this account");
			goto out;
		}
		for (int i = 0; i < SIM_MAX_MODELS && slot < 0; i++)
			if (s->models[i] == NULL)
				slot = i;
		if (slot < 0 || (m = calloc(1, sizeof(*m))) == NULL) {
			s->rejections[SIM_REJ_MODELS]++;
			sim_resp_error(rs, 503, "503", "Model table full");
			goto out;
		}
		sim_ids_new(&s->id_rng, m->id, SIM_ID_LEN);
		m->account = rq->account;
		m->upload = up;
		m->thumb_upload = -1;
		snprintf(m->platform, sizeof(m->platform), "custom");
		snprintf(m->rig_id, sizeof(m->rig_id), "custom");
		snprintf(m->name, sizeof(m->name), "%s", s->uploads[up]->name);
		m->ctime_ms = (int64_t)(sim_now_wall() * 1000);
		s->models[slot] = m;
	}
	if (name != NULL && name[0] != '\0')
		snprintf(m->name, sizeof(m->name), "%s", name);
	if (tup >= 0) {
		m->thumb_upload = tup;
		m->has_thumb = 1;
	}
	if (sim_models_truthy(json_object_get(body, "createThumb")))
		m->has_thumb = 1;
	m->mtime_ms = (int64_t)(sim_now_wall() * 1000);
	sim_resp_json(rs, 200, json_pack("{s:s}", "modelId", m->id));
out:
	json_decref(body);
}

static json_t *sim_models_json(struct sim *s, const struct sim_model *m)
{
	char path[SIM_URL_MAX], url[SIM_URL_MAX] = "";

	if (m->has_thumb) {
		snprintf(path, sizeof(path), "/storage/t/%s/thumb.png", m->id);
		if (sim_storage_signed_url(s, path, url, sizeof(url)) != 0)
			url[0] = '\0';
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", m->id, "name", m->name, "thumb",
			 url, "rigId", m->rig_id, "ctime", (json_int_t)m->ctime_ms, "mtime",
			 (json_int_t)m->mtime_ms, "platform", m->platform);
}

void sim_models_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	char id[64], token[SIM_NAME_MAX], stock[16];
	int has_id = sim_http_query(rq, "modelId", id, sizeof(id)) == 0 && id[0] != '\0';
	int has_tok = sim_http_query(rq, "searchToken", token, sizeof(token)) == 0 && token[0] != '\0';
	int all = sim_http_query(rq, "stockModel", stock, sizeof(stock)) == 0 && strcmp(stock, "all") == 0;
	json_t *list = json_array();

	for (int i = 0; i < SIM_MAX_MODELS; i++) {
		const struct sim_model *m = s->models[i];

		if (m == NULL || (m->account >= 0 && m->account != rq->account) ||
		    (m->account < 0 && !all) || (has_id && strcmp(m->id, id) != 0) ||
		    (has_tok && strcasestr(m->name, token) == NULL))
			continue;
		json_array_append_new(list, sim_models_json(s, m));
	}
	sim_resp_json(rs, 200, json_pack("{s:o}", "list", list));
}

void sim_models_h_delete(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int count = 0;

	for (int i = 0; i < SIM_MAX_MODELS; i++) {
		struct sim_model *m = s->models[i];

		if (m != NULL && m->account == rq->account && strcmp(m->id, rq->arg) == 0) {
			free(m);
			s->models[i] = NULL;
			count++;
		}
	}
	sim_resp_json(rs, 200, json_pack("{s:i}", "count", count));
}
