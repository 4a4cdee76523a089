/*
 * translate_int: helpers shared by translate.c and its per-service files (translate_jobs.c,
 * translate_characters.c, translate_webhooks.c, translate_account.c). Not for other modules:
 * they use gateway/api/translate.h.
 */
#ifndef A3D_GATEWAY_TRANSLATE_INT_H
#define A3D_GATEWAY_TRANSLATE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "gateway/api/translate.h"

#define GW_TR_MAX_ITEMS 10000		/* entries of one upstream list (jobs, models, endpoints) */
#define GW_TR_MAX_GROUPS 256		/* download groups in one link */
#define GW_TR_MAX_FILES 64		/* files in one download group */
#define GW_TR_MAX_EVENTS GW_VALIDATE_MAX_EVENTS	/* webhook events in one endpoint */
#define GW_TR_CTX_MAX 64		/* name of one list item in messages: "links[12].urls[3]" */

/* Bounded string builder for paths (GW_TR_PATH_MAX); bad is set on overflow or malloc failure. */
struct gw_tr_buf {
	char *p;
	size_t len;
	size_t cap;
	int bad;
};
void gw_tr_buf_add(struct gw_tr_buf *b, const char *s);
void gw_tr_buf_esc(struct gw_tr_buf *b, const char *s);	/* percent-escapes all but [A-Za-z0-9-._~] */
/* Appends "?key=val" to the first query parameter, "&key=val" after it; val is escaped. */
void gw_tr_buf_query(struct gw_tr_buf *b, const char *key, const char *val);
char *gw_tr_buf_take(struct gw_tr_buf *b);		/* the string (caller frees), or NULL if bad */

/* Writes err and returns rc. */
int gw_tr_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* GW_TR_OK when req is a d message within the field table's limits (gw_validate_message), else
 * GW_TR_INVALID naming the field. */
int gw_tr_check(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d, char *err,
		size_t errlen);
/* A malloc'd, initialised message of type d (free with protobuf_c_message_free_unpacked), or NULL. */
void *gw_tr_msg_new(const ProtobufCMessageDescriptor *d);
/* A malloc'd array of n pointers (NULL-filled), or NULL; n == 0 gives NULL too. */
void *gw_tr_array(size_t n);
int gw_tr_set(const char *s);				/* s is non-NULL and non-empty */

/* Caller-supplied fields are checked with gw_validate_str(kind, field, s, ...) (validate.h):
 * GW_VALIDATE_INVALID is GW_TR_INVALID, with a message that starts with field and a space. */
/* A required file name: "<field> is required" when not set, else GW_VK_FILE_NAME. */
int gw_tr_check_name(const char *field, const char *s, char *err, size_t errlen);

/* Fills out->body with the compact JSON of obj (steals the reference). GW_TR_OK or GW_TR_INVALID
 * (out of memory). */
int gw_tr_body(json_t *obj, struct gw_tr_request *out, char *err, size_t errlen);
/* Path from b into out->path; GW_TR_OK, or GW_TR_INVALID naming "request path" when too long. */
int gw_tr_path(struct gw_tr_buf *b, const char *method, struct gw_tr_request *out, char *err,
	       size_t errlen);
/* A body-less request to a constant path, once req is checked to be a d message. */
int gw_tr_fixed(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d, const char *method,
		const char *path, struct gw_tr_request *out, char *err, size_t errlen);
/* prefix + escaped id, once gw_validate_str(kind, field, id) passes. */
int gw_tr_id_path(const char *prefix, enum gw_validate_kind kind, const char *field, const char *id,
		  const char *method, struct gw_tr_request *out, char *err, size_t errlen);
/* POST to a constant path with the JSON of body, which it steals; a NULL body (it could not be
 * built) gives GW_TR_INVALID "out of memory building the request". */
int gw_tr_post(const char *path, json_t *body, struct gw_tr_request *out, char *err, size_t errlen);

/* Parses a 2xx body; GW_TR_BAD_UPSTREAM "body is not valid JSON (at byte N)" (never quoting it). */
int gw_tr_load(const char *body, size_t len, json_t **root, char *err, size_t errlen);

/* Field readers for upstream JSON. obj may be NULL (everything missing). ctx prefixes the field
 * name in messages ("status[1].details"), may be NULL. A missing or null field is an error only
 * when required (GW_TR_BAD_UPSTREAM); a field of the wrong type always is. *out is set only on
 * success with a present field; strings are malloc'd copies. */
int gw_tr_str(json_t *obj, const char *key, const char *ctx, int required, char **out, char *err,
	      size_t errlen);
int gw_tr_i64(json_t *obj, const char *key, const char *ctx, int required, int64_t *out, char *err,
	      size_t errlen);
int gw_tr_i32(json_t *obj, const char *key, const char *ctx, int required, int32_t *out, char *err,
	      size_t errlen);
int gw_tr_dbl(json_t *obj, const char *key, const char *ctx, int required, double *out, char *err,
	      size_t errlen);
int gw_tr_bool(json_t *obj, const char *key, const char *ctx, int required, int *out, char *err,
	       size_t errlen);
/* The array/object under key (borrowed), or NULL when missing/null and not required. */
int gw_tr_arr(json_t *obj, const char *key, const char *ctx, int required, size_t max,
	      json_t **out, char *err, size_t errlen);
int gw_tr_obj(json_t *obj, const char *key, const char *ctx, int required, json_t **out, char *err,
	      size_t errlen);

/* Fills msg, a new reply message, from the parsed body root; arg is the caller's (gw_tr_reply). */
typedef int (*gw_tr_reply_fn)(void *msg, json_t *root, const void *arg, char *err, size_t errlen);
/* Parses a 2xx body (gw_tr_load) into a new d message filled by fill; *out is set only on
 * GW_TR_OK, and a partly filled message is freed on error. */
int gw_tr_reply(const char *body, size_t len, const ProtobufCMessageDescriptor *d,
		gw_tr_reply_fn fill, const void *arg, ProtobufCMessage **out, char *err,
		size_t errlen);

/* Fills msg, a new list item, from it (always an object); ctx names it ("list[3]"). */
typedef int (*gw_tr_fill_fn)(void *msg, json_t *it, const char *ctx, char *err, size_t errlen);
/* Fills the repeated message field named field of m (still empty) with one item per element of
 * arr, each named name[i] in messages, or when pick is non-NULL with the npick elements whose
 * indexes pick lists, in that order. An element that is not an object is GW_TR_BAD_UPSTREAM.
 * Items already added stay in m on error (freed with it). */
int gw_tr_fill_list(ProtobufCMessage *m, const char *field, json_t *arr, const size_t *pick,
		    size_t npick, gw_tr_fill_fn fill, const char *name, char *err, size_t errlen);

/* JobState from the upstream spelling (unknown -> UNSPECIFIED). */
int gw_tr_job_state(const char *s);

#endif
