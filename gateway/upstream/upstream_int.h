/*
 * upstream_int: what upstream.c (the transport) and upstream_guard.c (the account protection)
 * share: the engine and request structs and the calls between the two halves. Not for other
 * modules: they use gateway/upstream/upstream.h.
 */
#ifndef A3D_GATEWAY_UPSTREAM_INT_H
#define A3D_GATEWAY_UPSTREAM_INT_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include "gateway/upstream/upstream.h"

struct gw_curlev;

struct gw_upstream {
	struct gw_up_env env;
	struct gw_curlev *cv;		/* curl on the loop (gateway/base/curlev.h) */
	CURLM *multi;			/* gw_curlev_multi(cv) */
	int global_init;
	struct gw_up_call *calls;	/* in-flight list head (gw_up_free cancels them) */
	uint64_t rng;
	struct gw_trace_rng trace_rng;	/* span ids of upstream requests */
	struct gw_up_counters n;
	struct gw_limits *limits;	/* issue 5, see upstream.h */
	int registered;			/* its renderer is in env.metrics_reg */
};

enum up_phase { UP_IDLE, UP_WAIT_SESSION, UP_TRANSFER, UP_WAIT_RETRY, UP_WAIT_ADMISSION };

/* Where a request stands with its account's protection (issue 5). */
enum up_guard { UP_GUARD_NONE, UP_GUARD_PASSED, UP_GUARD_QUEUED, UP_GUARD_REFUSED };

struct gw_up_call {
	struct gw_up_call *prev, *next;
	int linked;
	struct gw_upstream *up;
	struct gw_up_account *acct;

	/* The request, copied. */
	char *method;
	char *url;			/* full URL */
	int api;			/* 1: url built from base_url + path; cookie attached */
	char *body;
	const char *body_ptr;		/* body or the caller's kept body */
	size_t body_len;
	int has_body;
	struct curl_slist *fixed_hdrs;	/* content type + extra headers; the cookie is per attempt */
	const char *route;
	int idempotent;
	int64_t deadline_us;
	int64_t admit_by_us;		/* latest time to be sent (admit_within_ms); 0 = deadline_us */
	gw_up_done_fn done;
	void *arg;

	/* Progress. */
	enum up_phase phase;
	CURL *easy;
	struct curl_slist *hdrs;	/* fixed + cookie, for the current attempt */
	struct gw_up_waiter waiter;
	struct event *retry_ev;
	uint64_t generation;		/* of the cookie sent */
	int reauthed;			/* already retried once after a 401 */
	unsigned retried;		/* retries after 5xx/connection errors so far */
	unsigned attempts;		/* transfers sent */
	/* Issue 5: breaker + admission. */
	struct gw_account_limits *lim;	/* the account's, once guarded; NULL = unprotected */
	enum up_guard guard;
	int admitted;			/* holds an admission slot: gw_adm_leave() once */
	int breaker_counts;		/* its outcome goes to the breaker */
	struct gw_adm_waiter adm;
	int limited;			/* res.limited (a gRPC status) */
	long limited_retry_ms;
	int64_t started_us;
	/* Issue 20: the span of the current attempt (child of the call's), when traced. */
	struct gw_trace span;
	int traced;

	/* Response of the current attempt. */
	char *rbody;
	size_t rlen, rcap, rmax;
	int too_large;
	char *location, *range, *retry_after, *set_cookie;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- upstream.c (transport) ---- */

/* Calls done() once and frees c (err: NULL, or the caller's text, never with a secret). */
void gw_up_finish(struct gw_up_call *c, CURLcode rc, long status, const char *err, int no_session);
/* ms until c's deadline (negative once passed). */
int64_t gw_up_time_left_ms(const struct gw_up_call *c);

/* ---- upstream_guard.c (protection) ---- */

/*
 * Before the first attempt of an API request: the breaker, then admission. Returns 0 to go on
 * now, or -1 when c is queued (it continues from c->retry_ev with c->guard set) or was finished
 * (refused: gw_up_finish has run, c is gone).
 */
int gw_up_guard_enter(struct gw_up_call *c);
/* Gives back what c holds (queue place, slot); lets the next waiter go. Safe to call twice. */
void gw_up_guard_release(struct gw_up_call *c);
/* The answer of a request that passed the breaker: feeds the breaker, pauses on Retry-After. */
void gw_up_guard_outcome(struct gw_up_call *c, CURLcode rc, long status, int no_session);
/* Finishes a queued request that admission refused (paused past its deadline, or deadline came). */
void gw_up_guard_refused_late(struct gw_up_call *c);
/* The delay before a retry of this answer in ms, or -1 for no retry (budget, backoff, deadline). */
long gw_up_guard_retry_delay(struct gw_up_call *c, CURLcode rc, long status);
/* Creates the accounts' limits and subscribes to the reload (gw_up_new). 0, or -1. */
int gw_up_guard_init(struct gw_upstream *up);
/* Frees the limits state (after every call gave its slot back). NULL is fine. */
void gw_up_guard_free(struct gw_limits *l);
/* Unsubscribes from the reload and frees up->limits (gw_up_free). */
void gw_up_guard_fini(struct gw_upstream *up);
/* The breaker families of /metrics (from the engine's renderer). */
struct gw_metrics_out;
void gw_up_guard_render_metrics(const struct gw_upstream *up, struct gw_metrics_out *o);

#endif
