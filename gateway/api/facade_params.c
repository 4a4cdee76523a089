/*
 * facade_params: POST /process's body into a StartJobRequest, the inverse of params.c's rendering.
 * Every documented key (docs/upstream-api.md, Jobs) becomes its typed field, so the call validates
 * it as it validates a gRPC caller's and renders it upstream again the same way; any other
 * "key=value" goes to extra_params (upstream then judges it, as it would have). See facade.h.
 */
#include "gateway/api/facade.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/api/params.h"

#define FP_MODELS_MAX 4096	/* bytes of one models= value (16 persons with their model ids) */

static int fp_fail(char *err, size_t errlen, const char *key)
{
	/* Upstream's own words for a parameter it cannot read. */
	snprintf(err, errlen, "Error processing the parameters: %s", key);
	return -1;
}

static void *fp_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);

	if (m)
		d->message_init(m);
	return m;
}

/* 0/1 and true/false, as the document writes them. */
static int fp_bool(const char *v, protobuf_c_boolean *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int fp_double(const char *v, double *out)
{
	char *end;

	if (!*v)
		return -1;
	*out = strtod(v, &end);
	return *end ? -1 : 0;
}

/* n comma-separated numbers. */
static int fp_doubles(const char *v, double *out, size_t n)
{
	char buf[256], *save = NULL, *p;
	size_t k = 0;

	if (strlen(v) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", v);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (k == n || fp_double(p, &out[k]))
			return -1;
		k++;
	}
	return k == n ? 0 : -1;
}

static int fp_strdup(char **dst, const char *v)
{
	*dst = strdup(v);
	return *dst ? 0 : -1;
}

static Animate3d__V1__Render *fp_render(Animate3d__V1__Params *p)
{
	if (!p->render)
		p->render = fp_new(&animate3d__v1__render__descriptor);
	return p->render;
}

/* The document's JavaScript-literal spelling ([{trackingId:'001', modelId:'x'}]) as JSON: single
 * quotes become double ones and bare keys are quoted. Ids and model ids hold no quotes. */
static int fp_js_to_json(const char *v, char *out, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; v[i]; i++) {
		char ch = v[i] == '\'' ? '"' : v[i];

		if ((ch == '{' || ch == ',') && j + 1 < cap) {
			size_t k = i + 1, s;

			out[j++] = ch;
			while (v[k] == ' ')
				k++;
			s = k;
			while (isalnum((unsigned char)v[k]) || v[k] == '_')
				k++;
			if (k > s && v[k] == ':') {
				if (j + (k - s) + 3 >= cap)
					return -1;
				out[j++] = '"';
				memcpy(out + j, v + s, k - s);
				j += k - s;
				out[j++] = '"';
				i = k - 1;
			}
			continue;
		}
		if (j + 1 >= cap)
			return -1;
		out[j++] = ch;
	}
	out[j] = '\0';
	return 0;
}

/* models=[{"trackingId": "001" | 1, "modelId": "..."}, ...]. */
static int fp_models(Animate3d__V1__Params *p, const char *v)
{
	char conv[FP_MODELS_MAX];
	json_t *arr = json_loads(v, 0, NULL), *it;
	size_t i;
	int rc = -1;

	if (!arr && fp_js_to_json(v, conv, sizeof conv) == 0)
		arr = json_loads(conv, 0, NULL);
	if (!json_is_array(arr) || json_array_size(arr) > GW_PARAMS_MAX_MODELS)
		goto out;
	p->models = calloc(json_array_size(arr) + 1, sizeof *p->models);
	if (!p->models)
		goto out;
	json_array_foreach(arr, i, it) {
		Animate3d__V1__TrackedModel *m;
		json_t *tid = json_object_get(it, "trackingId"), *mid = json_object_get(it, "modelId");
		char num[24];

		if (!(m = fp_new(&animate3d__v1__tracked_model__descriptor)))
			goto out;
		p->models[p->n_models++] = m;
		if (json_is_string(tid)) {
			if (fp_strdup(&m->tracking_ref, json_string_value(tid)))
				goto out;
		} else if (json_is_integer(tid)) {
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(tid));
			if (fp_strdup(&m->tracking_ref, num))
				goto out;
		} else {
			goto out;
		}
		if (json_is_string(mid) && fp_strdup(&m->model_id, json_string_value(mid)))
			goto out;
	}
	rc = 0;
out:
	json_decref(arr);
	return rc;
}

static int fp_formats(Animate3d__V1__Params *p, const char *v)
{
	char buf[256], *save = NULL, *t;
	size_t n = 1;

	if (strlen(v) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", v);
	for (const char *c = v; *c; c++)
		n += *c == ',';
	p->formats = calloc(n, sizeof *p->formats);
	if (!p->formats)
		return -1;
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (fp_strdup(&p->formats[p->n_formats++], t))
			return -1;
	return 0;
}

static const char *const fp_foot[] = { NULL, "auto", "always", "never", "grounding" };

/* One "key=value" into p; 1 when the key is not a typed one (an extra), 0 done, -1 unreadable. */
static int fp_one(Animate3d__V1__Params *p, const char *key, const char *v)
{
	protobuf_c_boolean b;
	double d[4];

	if (strcmp(key, "config") == 0)
		return fp_strdup(&p->config, v);
	if (strcmp(key, "formats") == 0)
		return fp_formats(p, v);
	if (strcmp(key, "model") == 0)
		return fp_strdup(&p->model_id, v);
	if (strcmp(key, "models") == 0)
		return fp_models(p, v);
	if (strcmp(key, "pipeline") == 0)
		return fp_strdup(&p->pipeline, v);
	if (strcmp(key, "render.camera") == 0) {
		/* The earlier guide's spelling: sent upstream as render.CamMode, as gRPC's deprecated
		 * Params.camera is (closeup = cinematic, fixed = fixed). */
		if (!fp_render(p) || (strcmp(v, "closeup") != 0 && strcmp(v, "fixed") != 0))
			return -1;
		p->render->cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
		p->render->cam_mode = strcmp(v, "fixed") == 0 ? ANIMATE3D__V1__CAM_MODE__CAM_MODE_FIXED
							      : ANIMATE3D__V1__CAM_MODE__CAM_MODE_CINEMATIC;
		return 0;
	}
	if (strcmp(key, "footLockingMode") == 0 || strcmp(key, "poseEstimation.footLockingMode") == 0) {
		for (int k = 1; k < (int)(sizeof fp_foot / sizeof fp_foot[0]); k++)
			if (strcmp(v, fp_foot[k]) == 0) {
				p->foot_locking_mode = (Animate3d__V1__FootLockingMode)k;
				return 0;
			}
		return -1;
	}
	if (strcmp(key, "videoSpeedMultiplier") == 0 ||
	    strcmp(key, "poseEstimation.videoSpeedMultiplier") == 0) {
		p->video_speed_multiplier_opt_case =
			ANIMATE3D__V1__PARAMS__VIDEO_SPEED_MULTIPLIER_OPT_VIDEO_SPEED_MULTIPLIER;
		return fp_double(v, &p->video_speed_multiplier);
	}
	if (strcmp(key, "poseFilteringStrength") == 0 ||
	    strcmp(key, "poseEstimation.poseFilteringStrength") == 0) {
		p->pose_filtering_strength_opt_case =
			ANIMATE3D__V1__PARAMS__POSE_FILTERING_STRENGTH_OPT_POSE_FILTERING_STRENGTH;
		return fp_double(v, &p->pose_filtering_strength);
	}
	if (strcmp(key, "trim") == 0) {
		if (fp_doubles(v, d, 2) || !(p->trim = fp_new(&animate3d__v1__trim__descriptor)))
			return -1;
		p->trim->from_s = d[0];
		p->trim->to_s = d[1];
		return 0;
	}
	if (strcmp(key, "crop") == 0) {
		if (fp_doubles(v, d, 4) || !(p->crop = fp_new(&animate3d__v1__crop__descriptor)))
			return -1;
		p->crop->left = d[0];
		p->crop->top = d[1];
		p->crop->right = d[2];
		p->crop->bottom = d[3];
		return 0;
	}
	if (strcmp(key, "render.bgColor") == 0) {
		Animate3d__V1__Render *r = fp_render(p);

		if (!r || fp_doubles(v, d, 4))
			return -1;
		for (int k = 0; k < 4; k++)
			if (d[k] < 0 || d[k] > 255 || d[k] != (double)(unsigned)d[k])
				return -1;
		if (!(r->bg_color = fp_new(&animate3d__v1__color__descriptor)))
			return -1;
		r->bg_color->r = (uint32_t)d[0];
		r->bg_color->g = (uint32_t)d[1];
		r->bg_color->b = (uint32_t)d[2];
		r->bg_color->a = (uint32_t)d[3];
		return 0;
	}
	if (strcmp(key, "render.backdrop") == 0)
		return fp_render(p) ? fp_strdup(&p->render->backdrop, v) : -1;
	if (strcmp(key, "render.CamMode") == 0) {
		if (!fp_render(p) || strlen(v) != 1 || v[0] < '0' || v[0] > '2')
			return -1;
		p->render->cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
		p->render->cam_mode = (Animate3d__V1__CamMode)(v[0] - '0');
		return 0;
	}
	/* The booleans. */
	if (fp_bool(v, &b) != 0)
		b = 2;
	if (strcmp(key, "sim") == 0) {
		p->sim_opt_case = ANIMATE3D__V1__PARAMS__SIM_OPT_SIM;
		p->sim = b;
	} else if (strcmp(key, "trackFace") == 0) {
		p->track_face_opt_case = ANIMATE3D__V1__PARAMS__TRACK_FACE_OPT_TRACK_FACE;
		p->track_face = b;
	} else if (strcmp(key, "trackHand") == 0) {
		p->track_hand_opt_case = ANIMATE3D__V1__PARAMS__TRACK_HAND_OPT_TRACK_HAND;
		p->track_hand = b;
	} else if (strcmp(key, "rootAtOrigin") == 0) {
		p->root_at_origin_opt_case = ANIMATE3D__V1__PARAMS__ROOT_AT_ORIGIN_OPT_ROOT_AT_ORIGIN;
		p->root_at_origin = b;
	} else if (strcmp(key, "upperBodyOnly") == 0) {
		p->upper_body_only_opt_case = ANIMATE3D__V1__PARAMS__UPPER_BODY_ONLY_OPT_UPPER_BODY_ONLY;
		p->upper_body_only = b;
	} else if (strncmp(key, "render.", 7) == 0 && fp_render(p)) {
		Animate3d__V1__Render *r = p->render;

		if (strcmp(key, "render.sbs") == 0) {
			r->sbs_opt_case = ANIMATE3D__V1__RENDER__SBS_OPT_SBS;
			r->sbs = b;
		} else if (strcmp(key, "render.shadow") == 0) {
			r->shadow_opt_case = ANIMATE3D__V1__RENDER__SHADOW_OPT_SHADOW;
			r->shadow = b;
		} else if (strcmp(key, "render.includeAudio") == 0) {
			r->include_audio_opt_case = ANIMATE3D__V1__RENDER__INCLUDE_AUDIO_OPT_INCLUDE_AUDIO;
			r->include_audio = b;
		} else {
			return 1;
		}
	} else {
		return 1;
	}
	return b == 2 ? -1 : 0;
}

int gw_facade_params(json_t *params, Animate3d__V1__StartJobRequest *r, char *err, size_t errlen)
{
	json_t *it;
	size_t i, n;

	if (!params || json_is_null(params))
		return 0;
	if (!json_is_array(params))
		return fp_fail(err, errlen, "params must be an array of \"key=value\" strings");
	n = json_array_size(params);
	if (!(r->params = fp_new(&animate3d__v1__params__descriptor)) ||
	    !(r->extra_params = calloc(n + 1, sizeof *r->extra_params))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(params, i, it) {
		const char *s = json_string_value(it), *eq = s ? strchr(s, '=') : NULL;
		char key[128];
		int rc;

		if (!eq || eq == s || (size_t)(eq - s) >= sizeof key)
			return fp_fail(err, errlen, s ? s : "params");
		memcpy(key, s, (size_t)(eq - s));
		key[eq - s] = '\0';
		rc = fp_one(r->params, key, eq + 1);
		if (rc < 0)
			return fp_fail(err, errlen, key);
		if (rc == 1 && fp_strdup(&r->extra_params[r->n_extra_params++], s)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}
