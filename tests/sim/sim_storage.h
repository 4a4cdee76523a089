/*
 * sim_storage: a GCS-like object store served by the simulator itself.
 *
 * URLs (all under the sim's own base URL):
 *   /storage/u/<upload id>/<name>   uploaded objects (videos, models, thumbs): PUT / POST / GET
 *   /storage/o/<rid>/<item>.<ext>   job outputs, rendered on GET (sim_outputs)
 *   /storage/t/<id>/<item>.png      thumbnails (models, mp_detection persons)
 * Every URL the sim hands out is signed GCS V4 style: X-Goog-Algorithm, X-Goog-Credential,
 * X-Goog-Date (YYYYMMDDTHHMMSSZ), X-Goog-Expires (seconds), X-Goog-SignedHeaders and
 * X-Goog-Signature = hex HMAC-SHA256(per-process key, path "\n" date "\n" expires). A resumable
 * session URL (the Location of POST x-goog-resumable: start) carries upload_id instead.
 *
 * Bytes go to files under the storage dir as they arrive (sim_http streams PUT bodies into the
 * descriptor sim_storage_begin opens) and downloads of uploads are streamed from those files.
 */
#ifndef A3D_SIM_STORAGE_H
#define A3D_SIM_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sim.h"

struct sim_req;
struct sim_resp;

#define SIM_STORAGE_SIG_HEX 64
#define SIM_STORAGE_BAD_SIG (-1)
#define SIM_STORAGE_EXPIRED (-2)

/* Storage dir (mkdtemp unless --storage-dir) and its cleanup. 0 or -1. */
int sim_storage_init(struct sim *s);
void sim_storage_free(struct sim *s);

/* Hex signature of path/date/expires into out (SIM_STORAGE_SIG_HEX + 1 bytes). */
void sim_storage_sign(const unsigned char *key, size_t keylen, const char *path, const char *date,
		      long expires, char *out);
/* 0 when query carries a valid, unexpired signature of path at wall time now; else
 * SIM_STORAGE_BAD_SIG (missing/tampered) or SIM_STORAGE_EXPIRED. */
int sim_storage_verify(const unsigned char *key, size_t keylen, const char *path, const char *query,
		       double now);
/* Full signed URL of path (already percent-encoded) into out. 0 or -1 when it does not fit. */
int sim_storage_signed_url(struct sim *s, const char *path, char *out, size_t outlen);

/* "bytes A-B/TOTAL" or "bytes A-B/" followed by a star → 0 (total -1 for the star);
 * "bytes " star "/TOTAL" (a status query) → 1 with first = last = -1; anything else → -1. */
int sim_storage_parse_content_range(const char *v, int64_t *first, int64_t *last, int64_t *total);

/* Issues an upload URL for account; index into s->uploads or -1 (table full). */
int sim_storage_new_upload(struct sim *s, int account, enum sim_upload_kind kind, const char *name,
			   int resumable, char *url, size_t urllen);
/* A freshly signed URL of upload i (the same object, a new X-Goog-Date). 0 or -1. */
int sim_storage_upload_url(struct sim *s, int i, char *url, size_t urllen);
/* Upload an URL names (/storage/u/<id>/...), if it belongs to account; -1 otherwise. */
int sim_storage_find_url(struct sim *s, const char *url, int account);

/* sim_http hooks: begin runs when a storage request's headers are in (it may answer early in
 * *rs or open the file sink); the handler runs when the body is in. */
void sim_storage_begin(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_storage_h_object(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

/* API routes: GET /upload and POST /videoInfo. */
void sim_storage_h_upload(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_storage_h_videoinfo(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

#endif
