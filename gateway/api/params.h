/*
 * params: the typed StartJob Params <-> the upstream "params" array of "key=value" strings.
 *
 * Pure functions: no I/O, no globals. Validation is done at the gateway so that a caller gets
 * INVALID_ARGUMENT naming the field instead of a job that fails later with error 503.
 * Rendering order is fixed (see params.c), so equal requests render to equal arrays: the
 * idempotency fingerprint depends on it.
 */
#ifndef A3D_GATEWAY_PARAMS_H
#define A3D_GATEWAY_PARAMS_H

#include <stddef.h>
#include <jansson.h>
#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/api/validate.h"

/* The caps and lengths are the field table's (gateway/api/validate.h). */
#define GW_PARAMS_MAX_FORMATS GW_VALIDATE_MAX_FORMATS	/* bvh fbx glb mp4 png jpg dmpe, each once */
#define GW_PARAMS_MAX_ID GW_VALIDATE_ID_MAX		/* model_id, config, models[].model_id */
#define GW_PARAMS_MAX_MODELS GW_VALIDATE_MAX_MODELS	/* tracked persons in one multi-person job */
#define GW_PARAMS_MAX_EXTRA GW_VALIDATE_MAX_EXTRA	/* extra_params entries */
#define GW_PARAMS_MAX_EXTRA_LEN GW_VALIDATE_EXTRA_MAX	/* bytes of one "key=value" extra entry */
#define GW_PARAMS_DEFAULT_CONFIG "configDefault"
#define GW_PARAMS_TRACKING_REF_LEN GW_VALIDATE_TRACKING_REF_MAX	/* "001": upstream's zero-padded form */
#define GW_PARAMS_TRACKING_MAX 999	/* the largest tracking id three digits hold */

/* Validates a StartJob Params (p may be NULL: nothing to check). Returns 0, or -1 with err naming
 * the field and the rule, e.g.
 * "params.video_speed_multiplier must be between 1.0 and 8.0 (got 9.5)". NaN/Inf are rejected. */
int gw_params_validate(const Animate3d__V1__Params *p, char *err, size_t errlen);

/* The documented form of the person params.models[i] (m) names, zero-padded to three digits
 * ("001", what upstream's models= takes): tracking_ref ("1", "01" and "001" are one person),
 * else the deprecated int tracking_id. Returns 0 with out filled, or -1 with err naming
 * "params.models[i].tracking_ref" (or ".tracking_id" when only that is set) when neither names
 * a person 1..999, tracking_ref is not 1..3 digits, or the two are set and disagree. */
int gw_params_tracking_ref(const Animate3d__V1__TrackedModel *m, size_t i,
			   char out[GW_PARAMS_TRACKING_REF_LEN + 1], char *err, size_t errlen);

/* Validates extra_params: each "key=value" with key [A-Za-z0-9._]+, not a key a typed field renders
 * (compared case-insensitively, aliases included), keys unique, value printable ASCII, each entry
 * at most GW_PARAMS_MAX_EXTRA_LEN bytes, at most GW_PARAMS_MAX_EXTRA entries. extra may be NULL
 * when n == 0. Returns 0, or -1 with err naming "extra_params[i]". */
int gw_params_validate_extra(char **extra, size_t n, char *err, size_t errlen);

/* Renders the upstream "params" array (a new jansson reference, NULL on allocation failure) from
 * p (NULL renders just ["config=configDefault"]) plus the extras, in a stable order: typed fields
 * first (config always first), extras last in the caller's order. Does not validate: call the
 * validators first. */
json_t *gw_params_render(const Animate3d__V1__Params *p, char **extra, size_t nextra);

/* SHA-256 of a canonical rendering of r's source + params + extras (not the idempotency key), so
 * that a reused idempotency key with a different request can be told apart. 0, or -1 on failure. */
int gw_params_fingerprint(const Animate3d__V1__StartJobRequest *r, unsigned char out[32]);

#endif
