/* sim_params: the /process params list, validated like the upstream document lists it. */
#include "sim_params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sim_params_exts[SIM_FMT_COUNT] = {
	"bvh", "fbx", "glb", "mp4", "png", "jpg", "dmpe",
};

const char *sim_params_format_ext(unsigned bit)
{
	for (int i = 0; i < SIM_FMT_COUNT; i++)
		if (bit == (1u << i))
			return sim_params_exts[i];
	return NULL;
}

/* Strict number parse: the whole string, finite. */
static int sim_params_num(const char *s, double *out)
{
	char *end = NULL;

	if (*s == '\0')
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(*out))
		return -1;
	return 0;
}

static int sim_params_flag01(const char *v, int *out)
{
	if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
		*out = v[0] == '1';
		return 0;
	}
	return -1;
}

static int sim_params_bool(const char *v, int *out, int allow_01)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		*out = v[0] == 't';
		return 0;
	}
	return allow_01 ? sim_params_flag01(v, out) : -1;
}

/* Splits a comma list of exactly n numbers. */
static int sim_params_numlist(const char *v, double *out, int n)
{
	char buf[256];
	char *save = NULL, *tok;
	int i = 0;

	if (v[0] == '\0' || strlen(v) >= sizeof(buf) || v[0] == ',' || strstr(v, ",,") != NULL ||
	    v[strlen(v) - 1] == ',')
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (i == n || sim_params_num(tok, &out[i]) != 0)
			return -1;
		i++;
	}
	return i == n ? 0 : -1;
}

static int sim_params_formats(const char *v, unsigned *out)
{
	char buf[256];
	char *save = NULL, *tok;
	unsigned f = 0;

	if (v[0] == '\0' || strlen(v) >= sizeof(buf) || v[strlen(v) - 1] == ',' || v[0] == ',' ||
	    strstr(v, ",,") != NULL)
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < SIM_FMT_COUNT; i++)
			if (strcmp(tok, sim_params_exts[i]) == 0)
				break;
		if (i == SIM_FMT_COUNT)
			return -1;
		f |= 1u << i;
	}
	*out = f;
	return 0;
}

/* Model ids: the sim issues 22-char base58 ids; stock ids follow the same alphabet. */
static int sim_params_id(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= SIM_PARAMS_MODEL_ID_MAX)
		return -1;
	return strspn(v, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") == n ? 0 : -1;
}

static int sim_params_put(char *out, size_t outlen, size_t *o, char c)
{
	if (*o + 1 >= outlen)
		return -1;
	out[(*o)++] = c;
	return 0;
}

static int sim_params_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int sim_params_ident_char(char c)
{
	return sim_params_ident_start(c) || (c >= '0' && c <= '9');
}

int sim_params_relaxed_json(const char *in, char *out, size_t outlen)
{
	const char *p = in;
	size_t o = 0;

	while (*p != '\0') {
		if (*p == '"' || *p == '\'') {
			char q = *p++;

			if (sim_params_put(out, outlen, &o, '"') != 0)
				return -1;
			while (*p != '\0' && *p != q) {
				if (*p == '\\' && p[1] == '\0')
					return -1;
				if (*p == '\\' && q == '\'' && p[1] == '\'') {
					/* \' means ' in JavaScript; JSON has no such escape */
					if (sim_params_put(out, outlen, &o, '\'') != 0)
						return -1;
					p += 2;
				} else if (*p == '\\') {
					if (sim_params_put(out, outlen, &o, *p++) != 0 ||
					    sim_params_put(out, outlen, &o, *p++) != 0)
						return -1;
				} else if (*p == '"') {
					/* only inside '...': a bare " must be escaped in JSON */
					if (sim_params_put(out, outlen, &o, '\\') != 0 ||
					    sim_params_put(out, outlen, &o, *p++) != 0)
						return -1;
				} else if (sim_params_put(out, outlen, &o, *p++) != 0) {
					return -1;
				}
			}
			if (*p != q || sim_params_put(out, outlen, &o, '"') != 0)
				return -1;
			p++;
		} else if (sim_params_ident_start(*p)) {
			const char *s = p, *t;
			int key;

			while (sim_params_ident_char(*p))
				p++;
			for (t = p; *t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'; t++)
				;
			key = *t == ':';	/* true, false and null are values, never keys */
			if (key && sim_params_put(out, outlen, &o, '"') != 0)
				return -1;
			while (s < p)
				if (sim_params_put(out, outlen, &o, *s++) != 0)
					return -1;
			if (key && sim_params_put(out, outlen, &o, '"') != 0)
				return -1;
		} else if (sim_params_put(out, outlen, &o, *p++) != 0) {
			return -1;
		}
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* A tracking id: an integer, or a string of one to three digits ("001", the document's form);
 * 1..SIM_PARAMS_TRACKING_ID_MAX. -1 for anything else. */
static int sim_params_tracking_id(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) >= 1 && json_integer_value(v) <= SIM_PARAMS_TRACKING_ID_MAX
		       ? (int)json_integer_value(v) : -1;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strlen(s);
		int id;

		if (n == 0 || n > 3 || strspn(s, "0123456789") != n)
			return -1;
		id = (int)strtol(s, NULL, 10);	/* one to three digits, checked above */
		return id >= 1 ? id : -1;
	}
	return -1;
}

static int sim_params_models(const char *v, struct sim_params *out)
{
	char relaxed[SIM_PARAMS_ITEM_MAX * 2];	/* escaping can double a quote-heavy item */
	json_error_t err;
	json_t *arr = json_loads(v, 0, &err);
	size_t i;
	json_t *it;
	int rc = -1;

	if (arr == NULL && sim_params_relaxed_json(v, relaxed, sizeof(relaxed)) == 0)
		arr = json_loads(relaxed, 0, &err);
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > SIM_PARAMS_MAX_MODELS)
		goto out;
	json_array_foreach(arr, i, it) {
		int tid = sim_params_tracking_id(json_object_get(it, "trackingId"));
		json_t *mid = json_object_get(it, "modelId");

		if (tid < 0 || !json_is_string(mid) || sim_params_id(json_string_value(mid)) != 0)
			goto out;
		for (size_t k = 0; k < i; k++)
			if (out->models[k].tracking_id == tid)
				goto out;	/* one model per person */
		out->models[i].tracking_id = tid;
		snprintf(out->models[i].model_id, sizeof(out->models[i].model_id), "%s",
			 json_string_value(mid));
	}
	out->n_models = (int)json_array_size(arr);
	rc = 0;
out:
	json_decref(arr);
	return rc;
}

/* One "key=value"; returns 0 when valid. */
static int sim_params_one(const char *k, const char *v, struct sim_params *out)
{
	double d, l[4];
	int b;

	if (strcmp(k, "config") == 0)
		return v[0] != '\0' && sim_params_id(v) == 0 ? 0 : -1;
	if (strcmp(k, "formats") == 0)
		return sim_params_formats(v, &out->formats);
	if (strcmp(k, "model") == 0) {
		if (sim_params_id(v) != 0)
			return -1;
		snprintf(out->model, sizeof(out->model), "%s", v);
		return 0;
	}
	if (strcmp(k, "models") == 0)
		return sim_params_models(v, out);
	if (strcmp(k, "sim") == 0)
		return sim_params_flag01(v, &out->sim);
	if (strcmp(k, "trackFace") == 0)
		return sim_params_flag01(v, &out->track_face);
	if (strcmp(k, "trackHand") == 0)
		return sim_params_flag01(v, &out->track_hand);
	if (strcmp(k, "render.camera") == 0)
		return strcmp(v, "closeup") == 0 || strcmp(v, "fixed") == 0 ? 0 : -1;
	if (strcmp(k, "footLockingMode") == 0 || strcmp(k, "poseEstimation.footLockingMode") == 0)
		return strcmp(v, "auto") == 0 || strcmp(v, "always") == 0 || strcmp(v, "never") == 0 ||
		       strcmp(v, "grounding") == 0 ? 0 : -1;
	if (strcmp(k, "videoSpeedMultiplier") == 0 ||
	    strcmp(k, "poseEstimation.videoSpeedMultiplier") == 0)
		return sim_params_num(v, &d) == 0 && d >= 1.0 && d <= 8.0 ? 0 : -1;
	if (strcmp(k, "poseFilteringStrength") == 0 ||
	    strcmp(k, "poseEstimation.poseFilteringStrength") == 0)
		return sim_params_num(v, &d) == 0 && d >= 0.0 && d <= 1.0 ? 0 : -1;
	if (strcmp(k, "rootAtOrigin") == 0)
		return sim_params_bool(v, &b, 1);
	if (strcmp(k, "upperBodyOnly") == 0)
		return sim_params_bool(v, &b, 0);
	if (strcmp(k, "trim") == 0) {
		if (sim_params_numlist(v, l, 2) != 0 || l[0] < 0 || l[0] >= l[1])
			return -1;
		out->has_trim = 1;
		out->trim_from = l[0];
		out->trim_to = l[1];
		return 0;
	}
	if (strcmp(k, "crop") == 0)
		return sim_params_numlist(v, l, 4) == 0 && l[0] >= 0 && l[1] >= 0 && l[2] <= 1 &&
		       l[3] <= 1 && l[0] < l[2] && l[1] < l[3] ? 0 : -1;
	if (strcmp(k, "render.sbs") == 0 || strcmp(k, "render.shadow") == 0 ||
	    strcmp(k, "render.includeAudio") == 0)
		return sim_params_flag01(v, &b);
	if (strcmp(k, "render.bgColor") == 0) {
		if (sim_params_numlist(v, l, 4) != 0)
			return -1;
		for (int i = 0; i < 4; i++)
			if (l[i] < 0 || l[i] > 255 || l[i] != floor(l[i]))
				return -1;
		return 0;
	}
	if (strcmp(k, "render.backdrop") == 0)
		return strcmp(v, "studio") == 0 ? 0 : -1;
	if (strcmp(k, "render.CamMode") == 0)
		return strcmp(v, "0") == 0 || strcmp(v, "1") == 0 || strcmp(v, "2") == 0 ? 0 : -1;
	if (strcmp(k, "pipeline") == 0) {
		if (strcmp(v, "mp_detection") != 0)
			return -1;
		out->mp_detection = 1;
		return 0;
	}
	return -1;	/* unknown name */
}

int sim_params_parse(const json_t *list, struct sim_params *out, char *bad, size_t badlen)
{
	size_t i;
	json_t *it;

	memset(out, 0, sizeof(*out));
	out->formats = SIM_FMT_DEFAULT;
	if (list == NULL)
		return 0;	/* params is optional */
	if (!json_is_array(list) || json_array_size(list) > SIM_PARAMS_MAX) {
		snprintf(bad, badlen, "params");
		return -1;
	}
	json_array_foreach(list, i, it) {
		char item[SIM_PARAMS_ITEM_MAX];
		const char *s = json_string_value(it);
		char *eq;

		if (s == NULL || strlen(s) >= sizeof(item)) {
			snprintf(bad, badlen, "params");
			return -1;
		}
		memcpy(item, s, strlen(s) + 1);
		eq = strchr(item, '=');
		if (eq == NULL || eq == item) {
			snprintf(bad, badlen, "%s", item);
			return -1;
		}
		*eq = '\0';
		if (sim_params_one(item, eq + 1, out) != 0) {
			snprintf(bad, badlen, "%s", item);
			return -1;
		}
	}
	if (out->mp_detection && out->n_models > 0) {
		/* models go with rid_mp_detection, not with the detection run itself */
		snprintf(bad, badlen, "models");
		return -1;
	}
	return 0;
}
