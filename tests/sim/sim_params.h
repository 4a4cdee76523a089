/*
 * sim_params: validation of the /process "params" list (["key=value", ...]) exactly as
 * docs/upstream-api.md lists the names, ranges and combinations.
 *
 * models=[...] takes the document's forms: JSON with string ("001") or integer tracking ids, and
 * the relaxed JavaScript literal the v2.0 text shows (see sim_params_relaxed_json). Ids must be
 * distinct; whether they name detected persons is for sim_jobs to check.
 *
 * sim_params_parse() never keeps a pointer into the JSON; *out is plain data. On a bad list it
 * returns -1 and writes the offending parameter name (or "params" when the list itself is not an
 * array of strings) into bad, truncated to badlen. Unknown names are rejected.
 */
#ifndef A3D_SIM_PARAMS_H
#define A3D_SIM_PARAMS_H

#include <stddef.h>
#include <jansson.h>

#define SIM_PARAMS_MAX 64		/* entries in one params list */
#define SIM_PARAMS_ITEM_MAX 2048	/* bytes in one "key=value" */
#define SIM_PARAMS_MAX_MODELS 16	/* models=[...] entries: v2.0 "up to 16" persons */
#define SIM_PARAMS_MODEL_ID_MAX 64
#define SIM_PARAMS_TRACKING_ID_MAX 999	/* tracking ids are three zero-padded digits ("001") */

enum sim_format {
	SIM_FMT_BVH = 1 << 0, SIM_FMT_FBX = 1 << 1, SIM_FMT_GLB = 1 << 2, SIM_FMT_MP4 = 1 << 3,
	SIM_FMT_PNG = 1 << 4, SIM_FMT_JPG = 1 << 5, SIM_FMT_DMPE = 1 << 6,
};
#define SIM_FMT_COUNT 7
#define SIM_FMT_DEFAULT (SIM_FMT_BVH | SIM_FMT_FBX | SIM_FMT_MP4)

struct sim_params_model {
	int tracking_id;		/* 1..SIM_PARAMS_TRACKING_ID_MAX, however it was written */
	char model_id[SIM_PARAMS_MODEL_ID_MAX];
};

struct sim_params {
	unsigned formats;		/* SIM_FMT_* bits; SIM_FMT_DEFAULT when not given */
	char model[SIM_PARAMS_MODEL_ID_MAX];	/* "" when not given */
	int n_models;
	struct sim_params_model models[SIM_PARAMS_MAX_MODELS];
	int mp_detection;		/* pipeline=mp_detection */
	int track_face, track_hand, sim;
	int has_trim;
	double trim_from, trim_to;
};

int sim_params_parse(const json_t *list, struct sim_params *out, char *bad, size_t badlen);

/* The v2.0 document writes models as a JavaScript literal, [{trackingId:'001', modelId:'x'}]:
 * unquoted keys and single-quoted strings. This rewrites such text as JSON (keys followed by ':'
 * get double quotes, '...' becomes "...", \' inside becomes '); JSON text comes out unchanged.
 * 0, or -1 when out (outlen bytes) is too small or a string is not closed. */
int sim_params_relaxed_json(const char *in, char *out, size_t outlen);

/* Extension of one SIM_FMT_* bit ("bvh"), NULL for anything else. */
const char *sim_params_format_ext(unsigned bit);

#endif
