/*
 * webhook_out: tenant webhooks (issue 17). Tenants subscribe endpoints (Webhooks.CreateEndpoint
 * and friends, gateway-side subscriptions in the state store, never upstream endpoints); when a
 * job reaches a confirmed final state, one outbox row per subscribed endpoint of the job's
 * tenant is written to the state store, then delivered by libcurl on the loop, signed as
 * Standard Webhooks says (gateway/svc/webhook_out_sign.h), at least once, with a stable
 * webhook-id. docs/webhooks.md is the tenant-facing description.
 *
 * Flow
 *   job follower (gateway/svc/jobevent.h) --listener--> gw_webhook_out_on_final()
 *     -> store GW_OUTBOX_ADD (tenant, rid, body): one row per enabled endpoint subscribed to
 *        job.completed, idempotent by (endpoint, rid) -> done(done_arg, 0 | -1)
 *   pump (timer, and a kick after each add): GW_OUTBOX_CLAIM with this instance's lease
 *     -> per row: an endpoint at webhooks.delivery.max_per_endpoint in flight, or past
 *        GW_WH_OUT_MAX_INFLIGHT in all, goes back (settled pending, due in GW_WH_OUT_DEFER_MS);
 *        else one POST (no redirects, webhooks.delivery.timeout_ms, response body read up to
 *        GW_WH_OUT_RESP_MAX bytes, the resolved address checked unless private destinations
 *        are allowed)
 *     -> 2xx: settled delivered; else settled pending at now + gw_wh_backoff_ms(attempts), or
 *        failed once the event is older than webhooks.delivery.give_up_s; the endpoint's
 *        failure streak is recorded (GW_HOOK_HEALTH) and an endpoint failing for
 *        webhooks.delivery.disable_after_s is disabled with a reason GetEndpoint shows.
 *   Several replicas: a row is delivered by the replica whose lease holds it; a replica that
 *   dies leaves its leases to expire (GW_WH_OUT_LEASE_MS past the attempt's timeout) and another
 *   claims the rows. A restart finds the pending rows in the store.
 *
 * Events come from the job follower (gateway/svc/follower.h): server.c registers
 * gw_webhook_out_on_final() as its "webhooks" jobevent listener, so only upstream-confirmed
 * finals of jobs the gateway started reach the outbox, polled or not.
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_WEBHOOK_OUT_H
#define A3D_GATEWAY_WEBHOOK_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/svc/jobevent.h"

#define GW_WH_OUT_MAX_INFLIGHT 64	/* deliveries in flight in this replica */
#define GW_WH_OUT_PUMP_MS 1000		/* the pump looks for due rows this often */
#define GW_WH_OUT_DEFER_MS 1000		/* a row its endpoint had no room for is due again then */
#define GW_WH_OUT_LEASE_MS 30000	/* a claim's lease outlasts the attempt's timeout by this */
#define GW_WH_OUT_RESP_MAX 4096		/* bytes of a receiver's answer read; the rest aborts it */
#define GW_WH_OUT_DEPTH_MS 10000	/* queue depths are read from the store this often */
#define GW_WH_OUT_EXPIRE_MS 3600000	/* settled rows past GW_OUTBOX_KEEP_MS are removed this often */
#define GW_WH_OUT_MAX_TENANTS 512	/* tenants with metrics kept; more are counted as "other" */

struct gw_call;
struct gw_svc;
struct gw_env;
struct gw_webhook_out;

extern const struct gw_svc gw_svc_webhook_out;

/* The Webhooks service's handlers (gateway/methods.c rows). */
void gw_webhook_out_rpc_create(struct gw_call *c);
void gw_webhook_out_rpc_get(struct gw_call *c);
void gw_webhook_out_rpc_list(struct gw_call *c);
void gw_webhook_out_rpc_update(struct gw_call *c);
void gw_webhook_out_rpc_delete(struct gw_call *c);
void gw_webhook_out_rpc_rotate(struct gw_call *c);

/* The jobevent listener (arg: the service's state, gw_webhook_out_of()). Writes the outbox rows
 * of ev and calls done(done_arg, 0) once they are stored, -1 when the store failed. */
void gw_webhook_out_on_final(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done,
			     void *done_arg);

/* The registered state, or NULL when the service is not registered. */
struct gw_webhook_out *gw_webhook_out_of(const struct gw_env *env);


#endif
