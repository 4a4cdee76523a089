/*
 * params: validation and rendering of the StartJob parameters (see params.h and the param list in
 * docs/upstream-api.md).
 */
#include "gateway/api/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#define PARAMS_ITEM_MAX 4096		/* one rendered "key=value" (models= is the longest) */
#define PARAMS_NUM_MAX 32		/* one rendered double */

static const char *const params_formats[] = { "bvh", "fbx", "glb", "mp4", "png", "jpg", "dmpe" };

/* Every key a typed field renders, with the documented aliases: an extra may not set them. */
static const char *const params_typed_keys[] = {
	"config", "formats", "model", "models", "sim", "render.camera", "trackFace", "trackHand",
	"footLockingMode", "poseEstimation.footLockingMode", "videoSpeedMultiplier",
	"poseEstimation.videoSpeedMultiplier", "poseFilteringStrength",
	"poseEstimation.poseFilteringStrength", "rootAtOrigin", "upperBodyOnly", "trim", "crop",
	"render.sbs", "render.bgColor", "render.backdrop", "render.shadow", "render.includeAudio",
	"render.CamMode", "pipeline",
};

static const char *const params_foot_locking[] = { NULL, "auto", "always", "never", "grounding" };

/* The deprecated Params.camera (the earlier public guide's render.camera) and the documented
 * render.CamMode it is sent as (v1.5.8 API 3: 0 cinematic "the character is kept in the center
 * of the frame", 1 fixed "camera will stay fixed relative to the background"). */
static const struct {
	const char *camera;
	int cam_mode;
} params_cameras[] = {
	{ "closeup", ANIMATE3D__V1__CAM_MODE__CAM_MODE_CINEMATIC },
	{ "fixed", ANIMATE3D__V1__CAM_MODE__CAM_MODE_FIXED },
};

#define PARAMS_N(a) (sizeof(a) / sizeof((a)[0]))

static int params_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int params_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int params_is_set(const char *s)
{
	return s && s[0];
}

/* Fields the contract deprecates (TrackedModel.tracking_id, Params.camera): protoc-c marks them
 * deprecated, and reading them here is how older callers are still served. The only reads. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int32_t params_legacy_tracking_id(const Animate3d__V1__TrackedModel *m)
{
	return m->tracking_id;
}

static const char *params_legacy_camera(const Animate3d__V1__Params *p)
{
	return p->camera;
}
#pragma GCC diagnostic pop

/* 1..GW_PARAMS_MAX_ID chars of [A-Za-z0-9_-]: ids and config names, safe in a path and in JSON
 * (the model id kind of gateway/api/validate.h; config names follow the same rule). */
static int params_id_ok(const char *s)
{
	return gw_validate_ok(GW_VK_MODEL_ID, s);
}

/* Shortest plain decimal that reads back as the same double: "2", "1.5", "0.25", "10" (never
 * "1e+01": upstream parses these with its own number parser). Huge or tiny values fall back to %g. */
static void params_fmt_double(char *buf, size_t n, double v)
{
	if (fabs(v) < 1e15) {
		for (int prec = 0; prec <= 17; prec++) {
			int len = snprintf(buf, n, "%.*f", prec, v);
			if (len > 0 && (size_t)len < n && strtod(buf, NULL) == v)
				return;
		}
	}
	snprintf(buf, n, "%.17g", v);
}

static int params_range(double v, double lo, double hi, const char *field, char *err, size_t errlen)
{
	if (!isfinite(v))
		return params_fail(err, errlen, "%s must be a finite number", field);
	if (v < lo || v > hi)
		return params_fail(err, errlen, "%s must be between %.1f and %.1f (got %g)", field, lo,
				   hi, v);
	return 0;
}

static int params_validate_formats(const Animate3d__V1__Params *p, char *err, size_t errlen)
{
	if (p->n_formats > GW_PARAMS_MAX_FORMATS)
		return params_fail(err, errlen, "params.formats has %zu entries (at most %d)",
				   p->n_formats, GW_PARAMS_MAX_FORMATS);
	for (size_t i = 0; i < p->n_formats; i++) {
		const char *f = p->formats[i];
		int known = 0;

		for (size_t k = 0; k < PARAMS_N(params_formats); k++)
			if (f && strcmp(f, params_formats[k]) == 0)
				known = 1;
		if (!known)
			return params_fail(err, errlen,
					   "params.formats[%zu] must be one of bvh, fbx, glb, mp4, png, jpg, dmpe",
					   i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->formats[j], f) == 0)
				return params_fail(err, errlen, "params.formats[%zu] repeats \"%s\"", i,
						   f);
	}
	return 0;
}

static int params_validate_render(const Animate3d__V1__Render *r, char *err, size_t errlen)
{
	if (r->bg_color) {
		const Animate3d__V1__Color *c = r->bg_color;
		const uint32_t v[4] = { c->r, c->g, c->b, c->a };
		const char *name = "rgba";

		for (int i = 0; i < 4; i++)
			if (v[i] > 255)
				return params_fail(err, errlen,
						   "params.render.bg_color.%c must be between 0 and 255 (got %u)",
						   name[i], (unsigned)v[i]);
	}
	if (params_is_set(r->backdrop) && strcmp(r->backdrop, "studio") != 0)
		return params_fail(err, errlen, "params.render.backdrop must be \"studio\" or empty");
	if (r->cam_mode_opt_case == ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE &&
	    ((int)r->cam_mode < 0 || (int)r->cam_mode > 2))
		return params_fail(err, errlen, "params.render.cam_mode must be between 0 and 2 (got %d)",
				   (int)r->cam_mode);
	return 0;
}

int gw_params_tracking_ref(const Animate3d__V1__TrackedModel *m, size_t i,
			   char out[GW_PARAMS_TRACKING_REF_LEN + 1], char *err, size_t errlen)
{
	int32_t legacy = params_legacy_tracking_id(m);
	long id;

	if (params_is_set(m->tracking_ref)) {
		if (!gw_validate_ok(GW_VK_TRACKING_REF, m->tracking_ref))
			return params_fail(err, errlen, "params.models[%zu].tracking_ref must be %s", i,
					   gw_validate_kind_rule(GW_VK_TRACKING_REF));
		id = strtol(m->tracking_ref, NULL, 10);
		/* Detection numbers persons from 1 (the cdsave's ids, thumbnail_character_001). */
		if (id == 0)
			return params_fail(err, errlen,
					   "params.models[%zu].tracking_ref must name a detected person: tracking ids start at \"001\" (got \"%s\")",
					   i, m->tracking_ref);
		if (legacy != 0 && legacy != id)
			return params_fail(err, errlen,
					   "params.models[%zu].tracking_ref \"%s\" and the deprecated tracking_id %d name different persons",
					   i, m->tracking_ref, (int)legacy);
	} else if (legacy == 0) {
		return params_fail(err, errlen,
				   "params.models[%zu].tracking_ref is required: the person's tracking id, e.g. \"001\"",
				   i);
	} else if (legacy < 1 || legacy > GW_PARAMS_TRACKING_MAX) {
		return params_fail(err, errlen,
				   "params.models[%zu].tracking_id must be between 1 and %d (got %d); tracking_ref \"001\" is the documented form",
				   i, GW_PARAMS_TRACKING_MAX, (int)legacy);
	} else {
		id = legacy;
	}
	snprintf(out, GW_PARAMS_TRACKING_REF_LEN + 1, "%03ld", id);
	return 0;
}

static int params_validate_models(const Animate3d__V1__Params *p, char *err, size_t errlen)
{
	char refs[GW_PARAMS_MAX_MODELS][GW_PARAMS_TRACKING_REF_LEN + 1];

	if (p->n_models > GW_PARAMS_MAX_MODELS)
		return params_fail(err, errlen, "params.models has %zu entries (at most %d)",
				   p->n_models, GW_PARAMS_MAX_MODELS);
	for (size_t i = 0; i < p->n_models; i++) {
		const Animate3d__V1__TrackedModel *m = p->models[i];

		if (gw_params_tracking_ref(m, i, refs[i], err, errlen) < 0)
			return -1;
		if (!params_id_ok(m->model_id))
			return params_fail(err, errlen,
					   "params.models[%zu].model_id must be 1..%d characters of A-Z a-z 0-9 _ -",
					   i, GW_PARAMS_MAX_ID);
		/* "1", "01" and "001" are one person: compared in the form sent upstream. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(refs[j], refs[i]) == 0)
				return params_fail(err, errlen, "params.models[%zu].%s repeats person \"%s\"",
						   i, params_is_set(m->tracking_ref) ? "tracking_ref" : "tracking_id",
						   refs[i]);
	}
	return 0;
}

/* The render.CamMode to send: render.cam_mode, else the deprecated camera mapped, else -1. */
static int params_cam_mode(const Animate3d__V1__Params *p)
{
	const char *camera = params_legacy_camera(p);

	if (p->render && p->render->cam_mode_opt_case == ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE)
		return (int)p->render->cam_mode;
	for (size_t i = 0; params_is_set(camera) && i < PARAMS_N(params_cameras); i++)
		if (strcmp(camera, params_cameras[i].camera) == 0)
			return params_cameras[i].cam_mode;
	return -1;
}

static int params_validate_camera(const Animate3d__V1__Params *p, char *err, size_t errlen)
{
	const char *camera = params_legacy_camera(p);
	int mapped = -1;

	if (!params_is_set(camera))
		return 0;
	for (size_t i = 0; i < PARAMS_N(params_cameras); i++)
		if (strcmp(camera, params_cameras[i].camera) == 0)
			mapped = params_cameras[i].cam_mode;
	if (mapped < 0)
		return params_fail(err, errlen,
				   "params.camera must be \"closeup\", \"fixed\" or empty (deprecated: use params.render.cam_mode)");
	if (params_cam_mode(p) != mapped)
		return params_fail(err, errlen,
				   "params.camera \"%s\" (render.CamMode %d) disagrees with params.render.cam_mode %d",
				   camera, mapped, params_cam_mode(p));
	return 0;
}

int gw_params_validate(const Animate3d__V1__Params *p, char *err, size_t errlen)
{
	if (!p)
		return 0;
	if (params_validate_formats(p, err, errlen) < 0)
		return -1;
	if (params_is_set(p->model_id) && !params_id_ok(p->model_id))
		return params_fail(err, errlen, "params.model_id must be 1..%d characters of A-Z a-z 0-9 _ -",
				   GW_PARAMS_MAX_ID);
	if (params_is_set(p->config) && !params_id_ok(p->config))
		return params_fail(err, errlen, "params.config must be 1..%d characters of A-Z a-z 0-9 _ -",
				   GW_PARAMS_MAX_ID);
	if ((int)p->foot_locking_mode < 0 || (int)p->foot_locking_mode >= (int)PARAMS_N(params_foot_locking))
		return params_fail(err, errlen, "params.foot_locking_mode is not a known mode (got %d)",
				   (int)p->foot_locking_mode);
	if (p->video_speed_multiplier_opt_case ==
		    ANIMATE3D__V1__PARAMS__VIDEO_SPEED_MULTIPLIER_OPT_VIDEO_SPEED_MULTIPLIER &&
	    params_range(p->video_speed_multiplier, 1.0, 8.0, "params.video_speed_multiplier", err,
			 errlen) < 0)
		return -1;
	if (p->pose_filtering_strength_opt_case ==
		    ANIMATE3D__V1__PARAMS__POSE_FILTERING_STRENGTH_OPT_POSE_FILTERING_STRENGTH &&
	    params_range(p->pose_filtering_strength, 0.0, 1.0, "params.pose_filtering_strength", err,
			 errlen) < 0)
		return -1;
	if (p->trim) {
		if (!isfinite(p->trim->from_s) || !isfinite(p->trim->to_s))
			return params_fail(err, errlen, "params.trim must be finite numbers");
		if (p->trim->from_s < 0)
			return params_fail(err, errlen, "params.trim.from_s must be >= 0 (got %g)",
					   p->trim->from_s);
		if (p->trim->to_s <= p->trim->from_s)
			return params_fail(err, errlen,
					   "params.trim.to_s must be greater than from_s (got %g <= %g)",
					   p->trim->to_s, p->trim->from_s);
	}
	if (p->crop) {
		const Animate3d__V1__Crop *c = p->crop;
		const double v[4] = { c->left, c->top, c->right, c->bottom };
		static const char *const names[4] = { "params.crop.left", "params.crop.top",
						      "params.crop.right", "params.crop.bottom" };

		for (int i = 0; i < 4; i++)
			if (params_range(v[i], 0.0, 1.0, names[i], err, errlen) < 0)
				return -1;
		if (c->left >= c->right)
			return params_fail(err, errlen, "params.crop.left must be less than right (got %g >= %g)",
					   c->left, c->right);
		if (c->top >= c->bottom)
			return params_fail(err, errlen, "params.crop.top must be less than bottom (got %g >= %g)",
					   c->top, c->bottom);
	}
	if (p->render && params_validate_render(p->render, err, errlen) < 0)
		return -1;
	if (params_validate_camera(p, err, errlen) < 0)
		return -1;
	if (params_is_set(p->pipeline) && strcmp(p->pipeline, "mp_detection") != 0)
		return params_fail(err, errlen, "params.pipeline must be \"mp_detection\" or empty");
	/* Multi-person is two steps: detection first, then models with mp_detection_rid. */
	if (params_is_set(p->pipeline) && p->n_models)
		return params_fail(err, errlen,
				   "params.models must be empty with params.pipeline mp_detection (send them with mp_detection_rid)");
	return params_validate_models(p, err, errlen);
}

int gw_params_validate_extra(char **extra, size_t n, char *err, size_t errlen)
{
	if (n > GW_PARAMS_MAX_EXTRA)
		return params_fail(err, errlen, "extra_params has %zu entries (at most %d)", n,
				   GW_PARAMS_MAX_EXTRA);
	for (size_t i = 0; i < n; i++) {
		const char *s = extra[i];
		const char *eq = s ? strchr(s, '=') : NULL;
		size_t klen;

		if (!s || strlen(s) > GW_PARAMS_MAX_EXTRA_LEN)
			return params_fail(err, errlen, "extra_params[%zu] is longer than %d bytes", i,
					   GW_PARAMS_MAX_EXTRA_LEN);
		if (!eq || eq == s)
			return params_fail(err, errlen, "extra_params[%zu] must be \"key=value\"", i);
		klen = (size_t)(eq - s);
		for (size_t k = 0; k < klen; k++) {
			char ch = s[k];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_'))
				return params_fail(err, errlen,
						   "extra_params[%zu] key must be characters of A-Z a-z 0-9 . _",
						   i);
		}
		for (const char *v = eq + 1; *v; v++)
			if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
				return params_fail(err, errlen,
						   "extra_params[%zu] value must be printable ASCII", i);
		for (size_t k = 0; k < PARAMS_N(params_typed_keys); k++)
			if (strlen(params_typed_keys[k]) == klen &&
			    strncasecmp(s, params_typed_keys[k], klen) == 0)
				return params_fail(err, errlen,
						   "extra_params[%zu] sets \"%s\", which has a typed field in params",
						   i, params_typed_keys[k]);
		for (size_t j = 0; j < i; j++)
			if (strncasecmp(extra[j], s, klen + 1) == 0)
				return params_fail(err, errlen, "extra_params[%zu] repeats key \"%.*s\"",
						   i, (int)klen, s);
	}
	return 0;
}

/* Appends "key=value" to arr; -1 when jansson cannot allocate. */
static int params_add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int params_add(json_t *arr, const char *fmt, ...)
{
	char buf[PARAMS_ITEM_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return json_array_append_new(arr, json_string(buf));
}

static int params_add_double(json_t *arr, const char *key, double v)
{
	char num[PARAMS_NUM_MAX];

	params_fmt_double(num, sizeof(num), v);
	return params_add(arr, "%s=%s", key, num);
}

static int params_render_models(json_t *arr, const Animate3d__V1__Params *p)
{
	char buf[PARAMS_ITEM_MAX];
	size_t off;
	int n;

	off = (size_t)snprintf(buf, sizeof(buf), "models=[");
	for (size_t i = 0; i < p->n_models; i++) {
		/* model ids are validated to [A-Za-z0-9_-], so no JSON escaping is needed. */
		char ref[GW_PARAMS_TRACKING_REF_LEN + 1];

		/* The document's string form ("001"); validated, so this cannot fail here. */
		if (gw_params_tracking_ref(p->models[i], i, ref, NULL, 0) < 0)
			return -1;
		n = snprintf(buf + off, sizeof(buf) - off, "%s{\"trackingId\":\"%s\",\"modelId\":\"%s\"}",
			     i ? "," : "", ref, p->models[i]->model_id);
		if (n < 0 || (size_t)n >= sizeof(buf) - off)
			return -1;
		off += (size_t)n;
	}
	if (off + 2 > sizeof(buf))
		return -1;
	buf[off++] = ']';
	buf[off] = '\0';
	return json_array_append_new(arr, json_string(buf));
}

static int params_render_render(json_t *arr, const Animate3d__V1__Render *r)
{
	int rc = 0;

	if (r->sbs_opt_case == ANIMATE3D__V1__RENDER__SBS_OPT_SBS)
		rc |= params_add(arr, "render.sbs=%d", r->sbs ? 1 : 0);
	if (r->bg_color)
		rc |= params_add(arr, "render.bgColor=%u,%u,%u,%u", (unsigned)r->bg_color->r,
				 (unsigned)r->bg_color->g, (unsigned)r->bg_color->b,
				 (unsigned)r->bg_color->a);
	if (params_is_set(r->backdrop))
		rc |= params_add(arr, "render.backdrop=%s", r->backdrop);
	if (r->shadow_opt_case == ANIMATE3D__V1__RENDER__SHADOW_OPT_SHADOW)
		rc |= params_add(arr, "render.shadow=%d", r->shadow ? 1 : 0);
	if (r->include_audio_opt_case == ANIMATE3D__V1__RENDER__INCLUDE_AUDIO_OPT_INCLUDE_AUDIO)
		rc |= params_add(arr, "render.includeAudio=%d", r->include_audio ? 1 : 0);
	return rc ? -1 : 0;
}

static int params_render_typed(json_t *arr, const Animate3d__V1__Params *p)
{
	char num[2][PARAMS_NUM_MAX];
	int rc = 0;

	if (p->n_formats) {
		char buf[PARAMS_ITEM_MAX] = "";
		size_t off = 0;

		for (size_t i = 0; i < p->n_formats && off < sizeof(buf); i++)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? "," : "",
						p->formats[i]);
		rc |= params_add(arr, "formats=%s", buf);
	}
	if (params_is_set(p->model_id))
		rc |= params_add(arr, "model=%s", p->model_id);
	if (p->n_models)
		rc |= params_render_models(arr, p);
	if (p->sim_opt_case == ANIMATE3D__V1__PARAMS__SIM_OPT_SIM)
		rc |= params_add(arr, "sim=%d", p->sim ? 1 : 0);
	if (p->track_face_opt_case == ANIMATE3D__V1__PARAMS__TRACK_FACE_OPT_TRACK_FACE)
		rc |= params_add(arr, "trackFace=%d", p->track_face ? 1 : 0);
	if (p->track_hand_opt_case == ANIMATE3D__V1__PARAMS__TRACK_HAND_OPT_TRACK_HAND)
		rc |= params_add(arr, "trackHand=%d", p->track_hand ? 1 : 0);
	if ((int)p->foot_locking_mode > 0 && (int)p->foot_locking_mode < (int)PARAMS_N(params_foot_locking))
		rc |= params_add(arr, "footLockingMode=%s", params_foot_locking[p->foot_locking_mode]);
	if (p->video_speed_multiplier_opt_case ==
	    ANIMATE3D__V1__PARAMS__VIDEO_SPEED_MULTIPLIER_OPT_VIDEO_SPEED_MULTIPLIER)
		rc |= params_add_double(arr, "videoSpeedMultiplier", p->video_speed_multiplier);
	if (p->pose_filtering_strength_opt_case ==
	    ANIMATE3D__V1__PARAMS__POSE_FILTERING_STRENGTH_OPT_POSE_FILTERING_STRENGTH)
		rc |= params_add_double(arr, "poseFilteringStrength", p->pose_filtering_strength);
	if (p->root_at_origin_opt_case == ANIMATE3D__V1__PARAMS__ROOT_AT_ORIGIN_OPT_ROOT_AT_ORIGIN)
		rc |= params_add(arr, "rootAtOrigin=%d", p->root_at_origin ? 1 : 0);
	/* The document gives upperBodyOnly as true/false (not 0/1), so it renders that way. */
	if (p->upper_body_only_opt_case == ANIMATE3D__V1__PARAMS__UPPER_BODY_ONLY_OPT_UPPER_BODY_ONLY)
		rc |= params_add(arr, "upperBodyOnly=%s", p->upper_body_only ? "true" : "false");
	if (p->trim) {
		params_fmt_double(num[0], sizeof(num[0]), p->trim->from_s);
		params_fmt_double(num[1], sizeof(num[1]), p->trim->to_s);
		rc |= params_add(arr, "trim=%s,%s", num[0], num[1]);
	}
	if (p->crop) {
		char c[4][PARAMS_NUM_MAX];

		params_fmt_double(c[0], sizeof(c[0]), p->crop->left);
		params_fmt_double(c[1], sizeof(c[1]), p->crop->top);
		params_fmt_double(c[2], sizeof(c[2]), p->crop->right);
		params_fmt_double(c[3], sizeof(c[3]), p->crop->bottom);
		rc |= params_add(arr, "crop=%s,%s,%s,%s", c[0], c[1], c[2], c[3]);
	}
	if (p->render)
		rc |= params_render_render(arr, p->render);
	/* render.cam_mode or the deprecated camera, once, where render.CamMode always was. */
	if (params_cam_mode(p) >= 0)
		rc |= params_add(arr, "render.CamMode=%d", params_cam_mode(p));
	if (params_is_set(p->pipeline))
		rc |= params_add(arr, "pipeline=%s", p->pipeline);
	return rc ? -1 : 0;
}

json_t *gw_params_render(const Animate3d__V1__Params *p, char **extra, size_t nextra)
{
	json_t *arr = json_array();
	json_t *ret = NULL;

	if (!arr)
		goto out;
	if (params_add(arr, "config=%s",
		       p && params_is_set(p->config) ? p->config : GW_PARAMS_DEFAULT_CONFIG) < 0)
		goto out;
	if (p && params_render_typed(arr, p) < 0)
		goto out;
	for (size_t i = 0; i < nextra; i++)
		if (json_array_append_new(arr, json_string(extra[i])) < 0)
			goto out;
	ret = arr;
	arr = NULL;
out:
	json_decref(arr);
	return ret;
}

int gw_params_fingerprint(const Animate3d__V1__StartJobRequest *r, unsigned char out[32])
{
	static const char *const kinds[] = { "none", "url", "rid", "rid_mp_detection" };
	const char *src = "";
	json_t *params = NULL;
	char *text = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned int mdlen = 0;
	unsigned kind;
	int rc = -1;

	if (!r)
		goto out;
	kind = (unsigned)r->source_case;
	if (kind >= PARAMS_N(kinds))
		goto out;
	if (kind == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL)
		src = r->upload_url;
	else if (kind == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID)
		src = r->rerun_rid;
	else if (kind == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID)
		src = r->mp_detection_rid;
	params = gw_params_render(r->params, r->extra_params, r->n_extra_params);
	if (!params)
		goto out;
	text = json_dumps(params, JSON_COMPACT);
	md = EVP_MD_CTX_new();
	if (!text || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	/* The source kind and a NUL separate the parts, so no two requests share a rendering. */
	if (EVP_DigestUpdate(md, kinds[kind], strlen(kinds[kind]) + 1) != 1 ||
	    EVP_DigestUpdate(md, src ? src : "", strlen(src ? src : "") + 1) != 1 ||
	    EVP_DigestUpdate(md, text, strlen(text)) != 1 || EVP_DigestFinal_ex(md, out, &mdlen) != 1 ||
	    mdlen != 32)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	free(text);
	json_decref(params);
	return rc;
}
