/*
 * webhook_in: the upstream's job.completed deliveries, POSTed to the gateway's HTTP listener at
 * <prefix><account> (webhooks.path_prefix in the configuration; default GW_WEBHOOK_IN_PREFIX:
 * /webhooks/animate3d/{account}). A POST outside the prefix is answered 404 and counted (rej_path).
 *
 * A delivery is accepted only when: the path names a configured account; the body is at most
 * GW_WEBHOOK_IN_MAX_BODY bytes; X-DeepMotion-Signature equals that account's client id (compared
 * with CRYPTO_memcmp after a length check, so timing does not leak the id); the body is
 *   {"eventType":"job.completed","data":{"taskId":<rid>,"status":"success"|"failure"}}
 * with a valid rid. Other event types are acknowledged (200) and ignored. Every rejection is
 * counted by reason. The caller then refreshes the rid (gw_status_refresh).
 *
 * The checks are pure (no I/O, no clock; nothing quotes the signature or the client id); the
 * HTTP route at the end glues them to evhttp and the status batcher.
 */
#ifndef A3D_GATEWAY_WEBHOOK_IN_H
#define A3D_GATEWAY_WEBHOOK_IN_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/api/translate.h"

#define GW_WEBHOOK_IN_PREFIX "/webhooks/animate3d/"
#define GW_WEBHOOK_IN_MAX_BODY (64u << 10)	/* bytes of one delivery */
#define GW_WEBHOOK_IN_MAX_SIG 512		/* a longer signature header is rejected unread */
#define GW_WEBHOOK_IN_HEADER "X-DeepMotion-Signature"

struct gw_config;

struct gw_webhook_in_counters {
	uint64_t accepted;		/* job.completed for a valid rid: refreshed */
	uint64_t ignored;		/* authentic, other event types */
	uint64_t rej_path;		/* no such account (404) */
	uint64_t rej_signature;		/* missing or wrong signature (401) */
	uint64_t rej_size;		/* body over GW_WEBHOOK_IN_MAX_BODY (413) */
	uint64_t rej_malformed;		/* not the documented JSON, bad rid (400) */
};

struct gw_webhook_in_event {
	size_t account;			/* index in cfg->accounts */
	char rid[GW_TR_RID_MAX + 1];
	int success;			/* data.status == "success" */
	int completed;			/* eventType == job.completed (else ignored) */
};

/* 1 when path starts with prefix (NULL -> GW_WEBHOOK_IN_PREFIX): the request is a webhook. */
int gw_webhook_in_match(const char *prefix, const char *path);

/* 1 when sig (may be NULL) equals client_id, compared in constant time for equal lengths. */
int gw_webhook_in_verify(const char *sig, const char *client_id);

/* Parses a body: 0 and ev->rid/success/completed filled, or -1 (malformed). */
int gw_webhook_in_parse(const char *body, size_t len, struct gw_webhook_in_event *ev);

/*
 * The whole check, in this order: account from the path (404), size (413), signature (401),
 * body (400). Returns the HTTP status to answer (200 when accepted or ignored) and counts the
 * outcome in cnt; ev is filled on 200.
 */
int gw_webhook_in_check(const struct gw_config *cfg, const char *prefix, const char *path,
			const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			struct gw_webhook_in_counters *cnt);

#endif

/* The prefix the listener serves: webhooks.path_prefix of the boot configuration cfg (the one
 * the endpoints were registered with at start-up, gateway/svc/webhook_reg.h; a reload that
 * changes it takes effect at the next restart), or GW_WEBHOOK_IN_PREFIX. Never NULL. */
const char *gw_webhook_in_prefix(const struct gw_config *cfg);
