/*
 * sim_outputs: what a finished job produces: the /download link groups and the bytes behind each
 * signed output URL (a valid BVH text; deterministic placeholder bytes with the right magic and
 * content type for fbx, glb, mp4, png, jpg and dmpe).
 */
#ifndef A3D_SIM_OUTPUTS_H
#define A3D_SIM_OUTPUTS_H

#include <jansson.h>

#include "sim.h"

struct evbuffer;

#define SIM_OUTPUTS_BVH_FPS 30
#define SIM_OUTPUTS_MAX_FRAMES 36000		/* BVH frames rendered at most (20 min at 30 fps) */
#define SIM_OUTPUTS_PLACEHOLDER_BYTES 4096

/* Content type of an output extension ("bvh" → "text/plain"). */
const char *sim_outputs_content_type(const char *ext);

/* Appends a valid BVH of duration seconds (at least one frame) to out. */
void sim_outputs_bvh(struct evbuffer *out, double duration);

/* Renders GET /storage/<kind>/<id>/<file> ('o' job outputs, 't' thumbnails) into out, with its
 * content type in *ctype. 0, or -1 when the object does not exist. */
int sim_outputs_render(struct sim *s, char kind, const char *id, const char *file,
		       struct evbuffer *out, const char **ctype);

/* The /download link of job j: {"rid", "name", "size", "duration", "input", "urls": [...]},
 * or just {"rid"} when it has not succeeded. New reference. */
json_t *sim_outputs_link(struct sim *s, const struct sim_job *j);

#endif
