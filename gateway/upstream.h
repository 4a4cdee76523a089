/*
 * upstream: HTTP requests to the upstream REST API and its storage, on the loop (libcurl
 * multi-socket driven by libevent, the hiperfifo shape), with the account's session attached.
 *
 * An API request (rq->path set) is sent to the account's base_url with its dmsess cookie. If the
 * account has no valid session, the request waits for the one login in flight (auth/session.c);
 * a 401 on the current session generation triggers one re-login and one retry. A storage request
 * (rq->url set: a signed URL) goes as-is, without cookie.
 *
 * Ownership: everything in *rq is borrowed until gw_up_start() returns (it copies what it needs).
 * done() runs exactly once, on the loop, unless gw_up_cancel() was called first; if gw_up_start()
 * returns NULL, done() is never called. The response and its body are valid only during done().
 */
#ifndef A3D_GATEWAY_UPSTREAM_H
#define A3D_GATEWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#define GW_UP_MAX_RESPONSE_DEFAULT (8u << 20)	/* body limit unless the config says otherwise */
#define GW_UP_MAX_HEADERS 8			/* extra request headers per request */

struct gw_server;
struct gw_account_rt;	/* auth/session.h */
struct gw_up_call;

struct gw_up_request {
	const char *method;		/* "GET" "POST" "PUT" "DELETE" */
	const char *path;		/* API path + query, e.g. "/status/a,b"; or NULL when url is set */
	const char *url;		/* absolute signed storage URL; no cookie is sent */
	const char *body;		/* may be NULL */
	size_t body_len;
	const char *content_type;	/* default "application/json" when body != NULL */
	const char *headers[GW_UP_MAX_HEADERS + 1];	/* extra "Name: value", NULL-terminated */
	long timeout_ms;		/* caller's time left; <= 0 means the configured default */
	int idempotent;			/* GETs: may be retried on 5xx/connection errors */
	const char *route;		/* documented route for metrics/logs, e.g. "GET /status/{rids}" */
	/* Added: body is NOT copied; the caller keeps it valid and unchanged until done() runs or
	 * gw_up_cancel() returns (large upload chunks: no second copy of the bytes). */
	int body_keep;
};

struct gw_up_response {
	CURLcode curl_rc;		/* CURLE_OK when an HTTP answer arrived */
	long http_status;		/* 0 when none */
	const char *body;		/* NUL-terminated, body_len bytes */
	size_t body_len;
	const char *location;		/* Location header, or NULL */
	const char *range;		/* Range header (resumable uploads), or NULL */
	long retry_after_ms;		/* from Retry-After, or -1 */
	const char *error;		/* human text when curl_rc != CURLE_OK or no session, else NULL */
	int no_session;			/* login failed: credentials rejected or login backing off */
	/* Added: the first Set-Cookie header naming dmsess (the login), or NULL. */
	const char *set_cookie;
};

typedef void (*gw_up_done_fn)(void *arg, const struct gw_up_response *res);

/* The upstream engine owned by the server; one per process. */
struct gw_upstream;
struct gw_upstream *gw_up_new(struct gw_server *srv);
void gw_up_free(struct gw_upstream *up);	/* cancels what is in flight, callbacks not called */

struct gw_up_call *gw_up_start(struct gw_upstream *up, struct gw_account_rt *acct,
			       const struct gw_up_request *rq, gw_up_done_fn done, void *arg);
void gw_up_cancel(struct gw_up_call *c);	/* done() will not be called */

/* Added: done() never runs inside gw_up_start(): even an immediate failure (no session, deadline
 * already passed) is reported from the loop, after the caller has stored the handle. */

/* Added: the engine's own counters (per-route answers go to srv->stats). */
struct gw_up_counters {
	uint64_t started;		/* gw_up_start() calls accepted */
	uint64_t attempts;		/* HTTP transfers actually sent (retries included) */
	uint64_t retries;		/* idempotent retries after 5xx/connection errors */
	uint64_t reauth_retries;	/* retries after a 401 with a new cookie */
	uint64_t too_large;		/* responses aborted past max_response_bytes */
	uint64_t no_session;		/* requests failed because no session could be had */
	uint64_t cancelled;		/* gw_up_cancel() on a live request */
};
const struct gw_up_counters *gw_up_counters(const struct gw_upstream *up);

/* Added: pure helpers (the retry seam issue 5 will budget). The delay before the one idempotent retry:
 * GW_UP_RETRY_MIN_MS + jitter; returns -1 when time_left_ms leaves no room for it. */
#define GW_UP_RETRY_MIN_MS 50
#define GW_UP_RETRY_JITTER_MS 100
#define GW_UP_RETRY_MIN_LEFT_MS 200	/* never retry with less than this left after the delay */
long gw_up_retry_delay_ms(long time_left_ms, uint64_t rnd);
/* 1 when an answer (curl rc, HTTP status) is worth one retry for an idempotent request. */
int gw_up_retryable(CURLcode rc, long http_status);

#endif
