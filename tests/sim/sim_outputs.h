/*
 * sim_outputs: what a finished job produces: the /download link groups and the bytes behind each
 * signed output URL.
 *
 * Groups (docs/upstream-api.md, /download):
 *   single person   <character> (bvh, fbx, glb, mp4, png, jpg as asked), landmarks (dmpe)
 *   detection run   characters_detection_result (cdsave), thumbnail_character_NNN (png) per person
 *   multi person    <character of the first person> (mp4, png, jpg: the rendered scene),
 *                   all_characters (fbx, bvh, glb, dmpe: one zip per format), <character>_NNN and
 *                   landmarks_NNN per tracked person, then the detection's outputs
 * Bytes: BVH is a valid BVH text; every FBX and every all_characters file is a real zip archive
 * (clients save them as .zip); png outputs and thumbnails are real PNGs; the cdsave is JSON with
 * per-frame detectionResults; mp4, glb, jpg and dmpe are deterministic placeholder bytes with the
 * right magic and content type.
 */
#ifndef A3D_SIM_OUTPUTS_H
#define A3D_SIM_OUTPUTS_H

#include <jansson.h>

#include "sim.h"

struct evbuffer;

#define SIM_OUTPUTS_BVH_FPS 30
#define SIM_OUTPUTS_MAX_FRAMES 36000		/* BVH frames rendered at most (20 min at 30 fps) */
#define SIM_OUTPUTS_CDSAVE_MAX_FRAMES 3000	/* detection frames in one cdsave at most */
#define SIM_OUTPUTS_PLACEHOLDER_BYTES 4096
#define SIM_OUTPUTS_DETECTION "characters_detection_result"
#define SIM_OUTPUTS_ALL "all_characters"

/* Content type of an output extension ("bvh" → "text/plain"); NULL for an unknown one. */
const char *sim_outputs_content_type(const char *ext);

/* Appends a valid BVH of duration seconds (at least one frame) to out. */
void sim_outputs_bvh(struct evbuffer *out, double duration);

/* Appends the cdsave of job j: {"fps", "detectionResults": [[{"id", "bbox"}, ...] per frame]}
 * with every detected person (ids 1..j->detected) in every frame. */
void sim_outputs_cdsave(struct evbuffer *out, const struct sim_job *j);

/* Renders GET /storage/<kind>/<id>/<file> ('o' job outputs, 't' thumbnails) into out, with its
 * content type in *ctype. 0, or -1 when the object does not exist. */
int sim_outputs_render(struct sim *s, char kind, const char *id, const char *file,
		       struct evbuffer *out, const char **ctype);

/* The /download link of job j: {"rid", "name", "size", "duration", "input", "mode", "models",
 * "urls": [...]}, or just {"rid"} when it has not succeeded. New reference. */
json_t *sim_outputs_link(struct sim *s, const struct sim_job *j);

#endif
