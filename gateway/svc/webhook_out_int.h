/*
 * webhook_out_int: the state shared by webhook_out.c (outbox, delivery, metrics) and
 * webhook_out_rpc.c (the Webhooks service's handlers). Not for other modules.
 */
#ifndef A3D_GATEWAY_WEBHOOK_OUT_INT_H
#define A3D_GATEWAY_WEBHOOK_OUT_INT_H

#include <stdint.h>

#include "gateway/base/metrics.h"
#include "gateway/state/store.h"
#include "gateway/svc/webhook_out.h"

struct gw_curlev;

struct wh_send;

/* Per-tenant figures (the tenant's name is its key; past GW_WH_OUT_MAX_TENANTS: "other"). */
struct wh_tenant {
	char name[GW_STORE_TENANT_MAX + 1];
	uint64_t delivered, retried, failed, deferred;
	long depth;				/* pending rows, as last read from the store */
	struct gw_metrics_hist latency;		/* final state seen -> delivered */
};

/* Refusals, by reason (every one is counted). */
struct wh_refusals {
	uint64_t bad_url;		/* CreateEndpoint/UpdateEndpoint: malformed URL */
	uint64_t scheme;		/* not http(s) */
	uint64_t credentials;		/* user:password@ in the URL */
	uint64_t private_dest;		/* a private/loopback/link-local address literal or name */
	uint64_t resolved_private;	/* delivery: a name resolved to such an address */
	uint64_t bad_events;		/* unknown or repeated events */
	uint64_t too_many;		/* GW_STORE_HOOKS_MAX endpoints already */
	uint64_t bad_field;		/* description too long or not printable */
	uint64_t response_too_large;	/* answer bodies cut at GW_WH_OUT_RESP_MAX */
	uint64_t no_room;		/* rows deferred: endpoint or replica at its delivery limit */
};

struct gw_webhook_out {
	struct gw_env *env;
	struct event_base *base;
	struct gw_curlev *cv;		/* curl on the loop */
	void *multi;			/* CURLM: gw_curlev_multi(cv) */
	struct event *pump_timer;
	struct wh_send *sends;		/* claimed rows, from claim to their last store answer */
	unsigned nsends;
	unsigned store_ops;		/* store operations not answered (adds, claims, reads) */
	int claiming, again;		/* a claim in flight; claim again when it answers */
	int draining;
	int64_t next_depth_ms, next_expire_ms;
	struct wh_tenant *tenants;	/* GW_WH_OUT_MAX_TENANTS + 1 ("other" last) */
	size_t ntenants;
	struct wh_refusals refused;
	struct {
		uint64_t events;	/* finals offered by the listener */
		uint64_t rows;		/* outbox rows written */
		uint64_t store_failed;	/* outbox writes that failed (offered again by the follower) */
		uint64_t claim_failed;
		uint64_t settle_lost;	/* settles whose lease another replica had taken */
		uint64_t settle_failed;
		uint64_t disabled;	/* endpoints disabled for failing */
	} cnt;
};

/* The tenant's figures (never NULL: "other" past the table). */
struct wh_tenant *gw_wh_out_tenant(struct gw_webhook_out *w, const char *tenant);
/* Starts a claim now (a new row may be due). */
void gw_wh_out_kick(struct gw_webhook_out *w);

#endif
