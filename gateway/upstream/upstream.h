/*
 * upstream: HTTP requests to the upstream REST API and its storage, on the loop (libcurl
 * multi-socket driven by libevent, the hiperfifo shape), with the account's session attached.
 *
 * An API request (rq->path set) is sent to the account's base_url with its session cookie, which
 * the account's auth provider hands out (struct gw_up_auth_ops below; auth/upstream/session.c
 * implements it). If the account has no valid session, the request waits for it; a 401 on the
 * current session generation triggers one re-login and one retry. A storage request (rq->url
 * set: a signed URL) goes as-is, without cookie.
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
#include <grpc/status.h>

#include "gateway/base/admission.h"
#include "gateway/base/breaker.h"
#include "gateway/base/retry.h"
#include "gateway/base/trace.h"
#include "gateway/cluster/climit.h"

#define GW_UP_MAX_RESPONSE_DEFAULT (8u << 20)	/* body limit unless the config says otherwise */
#define GW_UP_MAX_HEADERS 8			/* extra request headers per request */
#define GW_UP_COOKIE_MAX 512			/* a session cookie value, NUL included */

struct event;
struct event_base;
struct gw_config;
struct gw_metrics;
struct gw_metrics_reg;
struct gw_notify;
struct gw_otlp;
struct gw_up_call;

/*
 * The auth provider: how the transport gets a session cookie for an account without knowing how
 * logins work. An account as the transport sees it is a struct gw_up_account, embedded in the
 * provider's own account struct. acquire() hands out the current cookie (GW_UP_AUTH_READY), or
 * queues the waiter and calls w->fn later exactly once (GW_UP_AUTH_WAIT), or fails at once with
 * *err (GW_UP_AUTH_FAIL). unauthorized() reports a 401 on generation gen (a re-login on the
 * current one) and answers like acquire(). cancel() removes a queued waiter (fn never runs).
 * cookie/err are valid until control returns to the loop.
 */
struct gw_up_account;
struct gw_up_waiter;
typedef void (*gw_up_auth_ready_fn)(struct gw_up_waiter *w, const char *cookie, uint64_t gen,
				    const char *err);
struct gw_up_waiter {
	struct gw_up_waiter *prev, *next;
	struct gw_up_account *acct;	/* non-NULL while queued */
	gw_up_auth_ready_fn fn;
};
enum { GW_UP_AUTH_READY = 0, GW_UP_AUTH_WAIT = 1, GW_UP_AUTH_FAIL = -1 };
struct gw_up_auth_ops {
	int (*acquire)(struct gw_up_account *a, struct gw_up_waiter *w, const char **cookie,
		       uint64_t *gen, const char **err);
	int (*unauthorized)(struct gw_up_account *a, uint64_t gen, struct gw_up_waiter *w,
			    const char **cookie, uint64_t *gen_out, const char **err);
	void (*cancel)(struct gw_up_waiter *w);
};
struct gw_up_account {
	size_t idx;			/* in the configuration's accounts[] */
	const char *name;
	const char *base_url;
	const struct gw_up_auth_ops *auth;
};

/* What the engine needs from its surroundings (copied by gw_up_new; pointees outlive it). */
struct gw_up_env {
	struct event_base *base;
	const struct gw_config *const *cfg;	/* the current configuration (a reload swaps it) */
	struct gw_metrics *metrics;		/* answers by route (gateway/base/metrics.h) */
	struct gw_metrics_reg *metrics_reg;	/* the engine registers its renderer here */
	struct gw_notify *reload;		/* account caps are re-applied on it */
	struct gw_otlp *otlp;			/* traced attempts end a CLIENT span here (issue 20,
						 * gateway/base/otlp.h); NULL: export off */
};

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
	const char *route;		/* storage requests: a static name for metrics/logs; API requests
					 * are named from method + path (gw_metrics_route) */
	/* Added: body is NOT copied; the caller keeps it valid and unchanged until done() runs or
	 * gw_up_cancel() returns (large upload chunks: no second copy of the bytes). */
	int body_keep;
	/* Added (issue 5): > 0 when the request must be sent within this many ms (the caller's
	 * deadline) although timeout_ms is longer on purpose (a transfer that outlives its call to
	 * record the outcome: idempotent StartJob). Admission refuses it at once when it cannot be
	 * sent in time, as it does any request whose timeout_ms it cannot meet. <= 0: timeout_ms. */
	long admit_within_ms;
	/* Added (issue 20): the trace of the call this request is made for (copied), or NULL (logins,
	 * background work). Each attempt is a child span of it (same trace, request id and sampled
	 * flag; a new span id whose parent is trace's span), sent as `traceparent`, with trace's
	 * tracestate as received, and named in the attempt's log line (request_id, trace_id,
	 * span_id, parent_span_id). */
	const struct gw_trace *trace;
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
	/* Added (issue 5): nonzero when the account's protection refused the request before anything
	 * was sent; it is the gRPC status to answer: UNAVAILABLE (circuit open, or paused by
	 * Retry-After past the deadline), RESOURCE_EXHAUSTED (the account's queue is full),
	 * DEADLINE_EXCEEDED (waited in the queue until the deadline). error says why (account name,
	 * wait), retry_after_ms when to try again (-1 = none). curl_rc is then CURLE_COULDNT_CONNECT,
	 * so callers that ignore this field still answer UNAVAILABLE and know nothing was sent. */
	int limited;
};

typedef void (*gw_up_done_fn)(void *arg, const struct gw_up_response *res);

/* The upstream engine; one per process. NULL when memory or libcurl fails. */
struct gw_upstream;
struct gw_upstream *gw_up_new(const struct gw_up_env *env);
void gw_up_free(struct gw_upstream *up);	/* cancels what is in flight, callbacks not called */

/* acct NULL: no cookie (rq->url, or the login itself with an absolute url). */
struct gw_up_call *gw_up_start(struct gw_upstream *up, struct gw_up_account *acct,
			       const struct gw_up_request *rq, gw_up_done_fn done, void *arg);
void gw_up_cancel(struct gw_up_call *c);	/* done() will not be called */

/* Added: done() never runs inside gw_up_start(): even an immediate failure (no session, deadline
 * already passed) is reported from the loop, after the caller has stored the handle. */

/* The engine's own counters (per-route answers go to env->metrics). */
struct gw_up_counters {
	uint64_t in_flight;		/* gauge: HTTP transfers running */
	uint64_t started;		/* gw_up_start() calls accepted */
	uint64_t attempts;		/* HTTP transfers actually sent (retries included) */
	uint64_t retries;		/* idempotent retries after 5xx/connection errors */
	uint64_t reauth_retries;	/* retries after a 401 with a new cookie */
	uint64_t too_large;		/* responses aborted past max_response_bytes */
	uint64_t no_session;		/* requests failed because no session could be had */
	uint64_t cancelled;		/* gw_up_cancel() on a live request */
	uint64_t limited;		/* refused by the account's protection (res.limited) */
};
const struct gw_up_counters *gw_up_counters(const struct gw_upstream *up);

/*
 * Added (issue 5): limits and upstream protection, owned by the engine and created on first use
 * (gw_up_limits; NULL only when memory runs out, then nothing is limited).
 *
 * Every API request of an account (not logins, not signed storage URLs) passes, before its first
 * attempt: the account's circuit breaker (open: refused at once), then its admission (concurrency
 * and rate caps, a bounded FIFO that refuses at once a full queue or a deadline it cannot meet,
 * and the Retry-After pause). Its outcome feeds the breaker (5xx, connection errors and timeouts
 * are failures; 4xx are not); a 429/503 with Retry-After pauses the account. Idempotent requests
 * are retried with full-jitter backoff within the time left and the account's retry budget
 * (retries <= 20% of requests). A reload (env->reload) re-applies the accounts' caps. Breaker
 * transitions and pauses are logged. (Implemented in upstream_guard.c; the transport in
 * upstream.c.)
 *
 * Shared rate caps (gw_up_cluster, issue 16): an account's rate_per_second is then one bucket for
 * every replica ("rl:a:<account>", gateway/cluster/climit.h, burst = one second of the rate, as
 * the local bucket). A request takes its token there first; while it is decided there, the
 * admission's own rate bucket is off (queue and pause stay per replica; the concurrency cap is
 * shared too with gw_up_cluster_concurrency, below). Refused with a delay that fits
 * its deadline, the request waits on its own timer and asks again; otherwise it is refused
 * (UNAVAILABLE, like a deadline the queue cannot meet). Redis down: the local share decides again
 * (rate / cluster.expected_replicas). gw_up_account_hold does not see the shared rate.
 */
struct gw_csem;
struct gw_csem_entry;
struct gw_redis;
struct gw_account_limits {
	struct gw_upstream *up;
	size_t idx;			/* in the configuration's accounts[] */
	struct gw_breaker breaker;
	struct gw_adm adm;		/* must not move: calloc'd once */
	struct gw_retry_budget budget;
	struct event *timer;		/* gw_adm_run() at gw_adm_next_wake() */
	int64_t timer_at_ms;		/* -1 = not armed */
	uint64_t paused_429, paused_503;	/* Retry-After pauses by upstream status */
	struct gw_climit_entry *cle;	/* the shared bucket (NULL: none, or no rate cap) */
	struct gw_climit_limit clim;
	int shared;			/* the last decision was shared: adm's rate bucket is off */
	uint64_t shared_waits;		/* times a request was held back by the shared rate */
	struct gw_csem_entry *cse;	/* the shared concurrency cap (NULL: none) */
	int cshared;			/* the last sync was shared: adm's cap is the slots held */
};
struct gw_limits {
	struct gw_account_limits *acct;	/* index-aligned with the configuration's accounts */
	size_t nacct;
	struct gw_climit *cl;		/* gw_up_cluster's, not owned; NULL: local caps only */
	struct gw_csem *cs;		/* gw_up_cluster_concurrency's, owned; NULL: local caps */
};
struct gw_limits *gw_up_limits(struct gw_upstream *up);

/*
 * Shares the accounts' rate caps through cl from now on (see above); cl is not owned and must
 * outlive the engine. 0, or -1 when the limits state is missing (no configuration, out of memory).
 */
int gw_up_cluster(struct gw_upstream *up, struct gw_climit *cl);

/*
 * Shares the accounts' concurrency caps (max_concurrent) through Redis r from now on (issue 16):
 * one cluster-wide semaphore per account ("cs:a:<account>", gateway/cluster/csem.h), holder
 * instance. A replica holds slots of it and admits requests within them: across the replicas
 * at most max_concurrent requests of an account are in flight while they decide on Redis (the
 * bound is in csem.h); one busy replica can use the slots idle ones gave back. Redis down: the
 * local share again (max_concurrent / cluster.expected_replicas), counted. r is not owned and
 * must outlive the engine. 0, or -1 (no limits state, out of memory).
 */
int gw_up_cluster_concurrency(struct gw_upstream *up, struct gw_redis *r, const char *instance);

/*
 * Added (issue 5): how the protection of account acct (index in the accounts) would treat an API
 * request started now, without starting one or changing any state: *wait_ms = the least time it
 * would be held back (Retry-After pause, rate owed by the queue; 0 = it goes at once as far as
 * is known). Returns 0 when it would be let wait (refused only if its deadline comes first), or
 * the gRPC code it would be refused with whatever its deadline: UNAVAILABLE (circuit open; *wait_ms
 * = until the probe), RESOURCE_EXHAUSTED (queue full). msg (cap bytes; may be NULL with cap 0) says
 * why, in the words gw_up_start's refusals use, never with a secret. For callers that hold a
 * request back before it reaches gw_up_start (gateway/svc/status.c's batches).
 */
int gw_up_account_hold(struct gw_upstream *up, size_t acct, int64_t *wait_ms, char *msg, size_t cap);

/*
 * The one mapping from an upstream outcome to what the caller is answered (DESIGN.md, "Error
 * mapping"), used by every service so they cannot drift. Pure.
 *   limited     -> its code (UNAVAILABLE / RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED), "<what>: <why>",
 *                  retry_ms = the protection's delay when it gave one
 *   no_session  -> UNAVAILABLE "<what>: <why>" (default: upstream rejected account credentials)
 *   curl error  -> gw_errmap_curl (DEADLINE_EXCEEDED for timeouts, else UNAVAILABLE)
 *   non-2xx     -> gw_errmap_http; RESOURCE_EXHAUSTED always carries a delay (Retry-After, else
 *                  GW_UP_DEFAULT_PUSHBACK_MS), UNAVAILABLE carries Retry-After when upstream sent one
 *   2xx         -> GRPC_STATUS_OK (nothing to report; msg "")
 * what names the operation ("GetStatus") and may be NULL. Returns out->code.
 */
#define GW_UP_FAILURE_MSG_MAX 512
#define GW_UP_DEFAULT_PUSHBACK_MS 1000		/* a 429 without Retry-After */
struct gw_up_failure {
	grpc_status_code code;
	long retry_ms;				/* grpc-retry-pushback-ms + RetryInfo; -1 = none */
	char msg[GW_UP_FAILURE_MSG_MAX];
};
grpc_status_code gw_up_failure_of(const struct gw_up_response *res, const char *what,
				  struct gw_up_failure *out);

/* Added: pure helper. 1 when an answer (curl rc, HTTP status) is worth a retry for an idempotent
 * request; the delay and the budget are gateway/base/retry.h's (issue 5). */
int gw_up_retryable(CURLcode rc, long http_status);

#endif
