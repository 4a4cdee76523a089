/*
 * webhook_in: the upstream's job.completed deliveries, POSTed to the gateway's HTTP listener at
 * <prefix><account> (webhooks.path_prefix in the configuration; default GW_WEBHOOK_IN_PREFIX:
 * /webhooks/animate3d/{account}), or at <prefix><token>/<account> with webhooks.path_token_file
 * (gateway/svc/webhook_token.h): then a path without the current token (or the previous one
 * within its grace) is answered 404 and counted (rej_token) before the account is looked at.
 * A POST outside the prefix is answered 404 and counted (rej_path).
 *
 * A delivery is accepted only when: the path names a configured account; the body is at most
 * GW_WEBHOOK_IN_MAX_BODY bytes; X-DeepMotion-Signature equals that account's client id (compared
 * with CRYPTO_memcmp after a length check, so timing does not leak the id); the body is
 *   {"eventType":"job.completed","data":{"taskId":<rid>,"status":"success"|"failure"}}
 * with a valid rid. Other event types are acknowledged (200) and ignored. Every rejection is
 * counted by reason. The HTTP route then refreshes the rid (gw_status_refresh), but only
 * (issue 13: forged deliveries with random rids multiplied upstream GET /status):
 *   - a rid the gateway owns for a tenant of that account, or one its status module tracks (a
 *     caller asked for it lately); any other is counted (unknown_rid) and dropped with 200, so
 *     the upstream does not deliver it again;
 *   - within the account's budget of webhook-triggered refreshes (a token bucket:
 *     webhooks.refresh_per_second, webhooks.refresh_burst); past it the refresh is counted
 *     (rate_limited) and dropped with 200: watched rids are polled every TTL anyway.
 *
 * The checks are pure (no I/O; the clock is a parameter; nothing quotes the signature, the token
 * or the client id); the HTTP route at the end glues them to evhttp, the ownership store and the
 * status batcher.
 */
#ifndef A3D_GATEWAY_WEBHOOK_IN_H
#define A3D_GATEWAY_WEBHOOK_IN_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/api/translate.h"
#include "gateway/base/lograte.h"
#include "gateway/base/ratelimit.h"
#include "gateway/svc/webhook_token.h"

#define GW_WEBHOOK_IN_PREFIX "/webhooks/animate3d/"
#define GW_WEBHOOK_IN_MAX_BODY (64u << 10)	/* bytes of one delivery */
#define GW_WEBHOOK_IN_MAX_SIG 512		/* a longer signature header is rejected unread */
#define GW_WEBHOOK_IN_HEADER "X-DeepMotion-Signature"

struct gw_config;

struct gw_webhook_in_counters {
	uint64_t accepted;		/* authentic job.completed for a valid rid */
	uint64_t ignored;		/* authentic, other event types */
	uint64_t rej_path;		/* no such account (404) */
	uint64_t rej_token;		/* path token missing or wrong (404) */
	uint64_t rej_signature;		/* missing or wrong signature (401) */
	uint64_t rej_size;		/* body over GW_WEBHOOK_IN_MAX_BODY (413) */
	uint64_t rej_malformed;		/* not the documented JSON, bad rid (400) */
	uint64_t old_token;		/* authentic, with the previous token in its grace */
	/* What became of accepted deliveries (the HTTP route): */
	uint64_t refreshed;		/* rid refreshed */
	uint64_t unknown_rid;		/* nobody's rid here: dropped (200) */
	uint64_t rate_limited;		/* over the account's refresh budget: dropped (200) */
	uint64_t refresh_failed;	/* the batcher refused (503, upstream delivers again) */
};

struct gw_webhook_in_event {
	size_t account;			/* index in cfg->accounts */
	char rid[GW_TR_RID_MAX + 1];
	int success;			/* data.status == "success" */
	int completed;			/* eventType == job.completed (else ignored) */
	int old_token;			/* the path carried the previous token (grace) */
};

/* 1 when path starts with prefix (NULL -> GW_WEBHOOK_IN_PREFIX): the request is a webhook. */
int gw_webhook_in_match(const char *prefix, const char *path);

/* 1 when sig (may be NULL) equals client_id, compared in constant time for equal lengths. */
int gw_webhook_in_verify(const char *sig, const char *client_id);

/* Parses a body: 0 and ev->rid/success/completed filled, or -1 (malformed). */
int gw_webhook_in_parse(const char *body, size_t len, struct gw_webhook_in_event *ev);

/*
 * The whole check, in this order: token from the path when tok has one set (404), account from
 * the path (404), size (413), signature (401), body (400). Returns the HTTP status to answer (200
 * when accepted or ignored) and counts the outcome in cnt; ev is filled on 200. tok NULL (or
 * without a token) = the path is <prefix><account>; now_ms is the clock of the token's grace.
 */
int gw_webhook_in_check_at(const struct gw_config *cfg, const char *prefix,
			   const struct gw_webhook_token *tok, int64_t now_ms, const char *path,
			   const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			   struct gw_webhook_in_counters *cnt);
/* The same without a path token. */
int gw_webhook_in_check(const struct gw_config *cfg, const char *prefix, const char *path,
			const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			struct gw_webhook_in_counters *cnt);

/* ---- the runtime: token, refresh budgets, counters (one per server, loop thread) ---- */

struct gw_webhook_in {
	struct gw_webhook_token token;
	struct gw_bucket *refresh;	/* per account: webhook-triggered refreshes */
	size_t naccounts;
	struct gw_webhook_in_counters cnt;
	struct gw_lograte log;		/* rejection lines: whoever posts sets their rate */
};

/*
 * Built at start from the boot configuration: reads webhooks.path_token_file (refuses an unusable
 * one: NULL with err naming the file:line and the problem), one refresh bucket per account. Logs a
 * warning when webhooks.public_url is set without a token (anyone reaching the listener can post
 * deliveries). NULL with err also when out of memory.
 */
struct gw_webhook_in *gw_webhook_in_new(const struct gw_config *cfg, size_t naccounts, int64_t now_ms,
					char *err, size_t errlen);
void gw_webhook_in_free(struct gw_webhook_in *w);	/* wipes the token; NULL is fine */
/* A reload with the new configuration: re-reads the token file (logged by fingerprint; an
 * unusable file keeps the tokens in force, logged) and sets the buckets' rate. 1 when the token
 * changed (the registration moves the endpoint: gateway/svc/webhook_reg.h), else 0. The service
 * calls it on the reload event. */
int gw_webhook_in_reload(struct gw_webhook_in *w, const struct gw_config *cfg, int64_t now_ms);
/* The current token, for the URL the registration puts upstream; NULL when none. */
const char *gw_webhook_in_token(const struct gw_webhook_in *w);

/*
 * The service (gateway/call/svc.h): its state is a struct gw_webhook_in built from the boot
 * configuration (an unusable token file stops the start); it follows the reload event (token
 * rotation, bucket rates); its HTTP route takes every POST on the admin listener as an upstream
 * webhook delivery: answers req (status + a short text body), counts, and on an accepted
 * job.completed for a rid that is the gateway's, within the account's budget, refreshes it in
 * the status service so watchers learn at once. Rejections are logged with their reason only
 * (never the signature, token, path or body), within a budget of lines per second.
 */
struct gw_svc;
struct gw_env;
extern const struct gw_svc gw_svc_webhook_in;
/* The running service's current token (NULL when none, or no service), for the registration;
 * *gen (may be NULL) receives its generation, bumped by every rotation. */
const char *gw_webhook_in_service_token(const struct gw_env *env, uint64_t *gen);

/* The prefix the listener serves: webhooks.path_prefix of the boot configuration cfg (the one
 * the endpoints were registered with at start-up, gateway/svc/webhook_reg.h; a reload that
 * changes it takes effect at the next restart), or GW_WEBHOOK_IN_PREFIX. Never NULL. */
const char *gw_webhook_in_prefix(const struct gw_config *cfg);

#endif
