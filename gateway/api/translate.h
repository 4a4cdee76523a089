/*
 * translate: per upstream-backed RPC, a build function turning a decoded gRPC request into an
 * upstream REST request and a parse function turning a 2xx upstream JSON body into the gRPC
 * reply. The method table (gateway/methods.c) puts them in each method's row.
 *
 * Pure functions: no I/O, no loop, no globals; the engine (gateway/call/call.c, gateway/upstream/upstream.c)
 * does the transport and the handlers only glue a row to it. Everything here is unit-tested from
 * tables in tests/unit/test_translate.c.
 *
 * Replies are built with malloc for every string, array and sub-message, so that
 * protobuf_c_message_free_unpacked(msg, NULL) frees them like decoded messages.
 */
#ifndef A3D_GATEWAY_TRANSLATE_H
#define A3D_GATEWAY_TRANSLATE_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "gateway/api/validate.h"

#define GW_TR_ERR_MAX 256		/* err buffers are at least this long */
#define GW_TR_MAX_RIDS GW_VALIDATE_MAX_RIDS	/* rids in one GetStatus/GetDownloadUrls/WatchStatus */

struct gw_tr_request {
	const char *method;		/* "GET", "POST", "DELETE": static string */
	char *path;			/* malloc'd path + query, escaped, e.g. "/status/a,b" */
	char *body;			/* malloc'd JSON body, or NULL */
};
void gw_tr_request_clear(struct gw_tr_request *r);

enum gw_tr_rc {
	GW_TR_OK = 0,
	GW_TR_INVALID = -1,		/* caller's fault: INVALID_ARGUMENT with err */
	GW_TR_NOT_FOUND = -2,		/* NOT_FOUND with err */
	GW_TR_BAD_UPSTREAM = -3		/* upstream sent something unparseable: UNAVAILABLE with err */
};

/* Validates req (the field table of gateway/api/validate.h, then the row's own rules) and fills
 * out. On error returns GW_TR_INVALID with a message naming the field. */
typedef int (*gw_tr_build_fn)(const ProtobufCMessage *req, struct gw_tr_request *out,
			      char *err, size_t errlen);
/* Parses a 2xx body into a new reply message (*out). req is the original request (filters). */
typedef int (*gw_tr_parse_fn)(const ProtobufCMessage *req, const char *body, size_t len,
			      ProtobufCMessage **out, char *err, size_t errlen);

/* The upstream half of a method row: how to build its request and read the answer. */
struct gw_tr_rpc {
	gw_tr_build_fn build;
	gw_tr_parse_fn parse;
	const ProtobufCMessageDescriptor *resp_desc;
	int idempotent;				/* safe to retry upstream (GETs, read-only POSTs) */
};

/* The functions, gw_tr_build_<method> and gw_tr_parse_<method> (translate_<service>.c). */
#define GW_TR_FNS(name)                                                                           \
	int gw_tr_build_##name(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,  \
			       size_t errlen);                                                     \
	int gw_tr_parse_##name(const ProtobufCMessage *req, const char *body, size_t len,          \
			       ProtobufCMessage **out, char *err, size_t errlen)
GW_TR_FNS(get_upload_url);
GW_TR_FNS(start_job);
GW_TR_FNS(get_status);
GW_TR_FNS(get_download_urls);
GW_TR_FNS(list_jobs);
GW_TR_FNS(get_video_info);
GW_TR_FNS(get_person_urls);
GW_TR_FNS(get_model_upload_url);
GW_TR_FNS(store_model);
GW_TR_FNS(list_models);
GW_TR_FNS(delete_model);
GW_TR_FNS(create_endpoint);
GW_TR_FNS(get_endpoint);
GW_TR_FNS(list_endpoints);
GW_TR_FNS(update_endpoint);
GW_TR_FNS(delete_endpoint);
GW_TR_FNS(get_credit_balance);
GW_TR_FNS(get_minutes_balance);

/* Documented meaning of a job error code (201..1399, 101), or NULL when unknown. */
const char *gw_tr_job_error_text(int code);

/* Additions (used by handlers outside the row table, e.g. WatchStatus, UploadVideo). */

#define GW_TR_PATH_MAX 8192		/* path + query of one upstream request */
#define GW_TR_URL_MAX GW_VALIDATE_URL_MAX	/* caller-supplied URLs (uploads, webhooks, models) */
#define GW_TR_RID_MAX GW_VALIDATE_RID_MAX	/* characters of a rid */
#define GW_TR_ID_MAX GW_VALIDATE_ID_MAX		/* characters of a model id or webhook endpoint id */

/* 1 when rid is a valid rid (gateway/api/validate.h, GW_VK_RID: 1..GW_TR_RID_MAX characters of
 * [A-Za-z0-9_-]), else 0. */
int gw_tr_rid_valid(const char *rid);
/* The rids a GetStatus, WatchStatus or GetDownloadUrls request carries (same shape): 0 with *n and
 * *rids (borrowed from req, not checked), or -1 for any other message or NULL (*n, *rids untouched). */
int gw_tr_rids_of(const ProtobufCMessage *req, size_t *n, char ***rids);
/* Upstream spelling of a JobState ("PROGRESS"...), or NULL for UNSPECIFIED/unknown. */
const char *gw_tr_job_state_name(int state);
/* The build/parse rows for GetStatus and GetDownloadUrls also accept a WatchStatusRequest (same
 * shape: repeated rids), so the watcher can reuse them. */

#endif
