/*
 * health: grpc.health.v1.Health. See health.h.
 */
#include "gateway/svc/health.h"

#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include <stdio.h>
#include <stdlib.h>

#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/base/clock.h"
#include "gateway/base/metrics.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/caps.h"

_Static_assert(GW_CONFIG_MAX_HEALTH_WATCH <= GW_HEALTH_MAX_WATCHERS,
	       "watch.health_max_streams must fit the watchers table");

static const struct gw_caps_what health_watch_caps = {
	"Health/Watch", "health_watch_streams", "streams", "peer",
	"watch.health_max_streams_per_peer", "watch.health_max_streams"
};

/* The services this server reports on: the whole server ("") and each of its services. */
static const char *const health_services[] = {
	"",
	"animate3d.v1.Jobs",
	"animate3d.v1.Characters",
	"animate3d.v1.Webhooks",
	"animate3d.v1.Account",
	"grpc.health.v1.Health",
};

int gw_health_service_known(const char *service)
{
	for (size_t i = 0; i < sizeof health_services / sizeof health_services[0]; i++)
		if (strcmp(service, health_services[i]) == 0)
			return 1;
	return 0;
}

static Grpc__Health__V1__HealthCheckResponse__ServingStatus health_status(const struct gw_health *h,
									   const char *service)
{
	if (!gw_health_service_known(service))
		return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
	return h->serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
				   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static const char *health_service_of(struct gw_call *c)
{
	const Grpc__Health__V1__HealthCheckRequest *rq =
		(const Grpc__Health__V1__HealthCheckRequest *)gw_call_request(c);

	return rq && rq->service ? rq->service : "";
}

void gw_health_check(struct gw_call *c)
{
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	const char *service = health_service_of(c);

	if (strlen(service) > GW_HEALTH_MAX_SERVICE) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "service name too long");
		return;
	}
	if (!gw_health_service_known(service)) {
		gw_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown service %s", service);
		return;
	}
	r.status = health_status(gw_call_svc(c), service);
	gw_call_reply(c, &r.base);
}

static void health_send(struct gw_call *c)
{
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

	r.status = health_status(gw_call_svc(c), health_service_of(c));
	gw_call_stream_send(c, &r.base);
}

/* Drops c from the table and gives its peer's slot back (the call's data is its peer host). */
static void health_forget(struct gw_health *h, struct gw_call *c)
{
	char *peer = gw_call_data(c);

	gw_call_set_data(c, NULL);
	gw_slots_give(&h->peers, peer);
	free(peer);
	for (size_t i = 0; i < h->nwatchers; i++) {
		if (h->watchers[i] != c)
			continue;
		h->watchers[i] = h->watchers[--h->nwatchers];
		h->watchers[h->nwatchers] = NULL;
		return;
	}
}

static void health_watch_cancelled(struct gw_call *c, void *data)
{
	(void)data;
	health_forget(gw_call_svc(c), c);
}

/* Takes a slot for c's peer: 0, or -1 with c finished (RESOURCE_EXHAUSTED, counted, logged). */
static int health_watch_admit(struct gw_health *h, struct gw_call *c, char **peer_out)
{
	const struct gw_config *cfg = gw_call_env(c)->cfg;
	unsigned global = cfg->watch.health_max_streams ? cfg->watch.health_max_streams
							: GW_CONFIG_DEFAULT_HEALTH_WATCH_MAX;
	unsigned per_peer = cfg->watch.health_max_streams_per_peer;
	char raw[256], host[GW_CAPS_PEER_MAX];
	enum gw_slots_verdict v;

	if (global > GW_HEALTH_MAX_WATCHERS)
		global = GW_HEALTH_MAX_WATCHERS;
	if (!h->peers.buckets && gw_slots_init(&h->peers, GW_HEALTH_MAX_PEERS, 0) != 0) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "Health/Watch: out of memory");
		return -1;
	}
	gw_call_peer(c, raw, sizeof raw);
	gw_caps_peer_host(raw, host, sizeof host);	/* "unknown" when it cannot say */
	v = gw_slots_take(&h->peers, host, per_peer, global);
	if (v == GW_SLOTS_OK) {
		*peer_out = strdup(host);
		if (*peer_out)
			return 0;
		gw_slots_give(&h->peers, host);
		v = GW_SLOTS_BAD;
	}
	h->watchers_refused++;
	gw_caps_refuse(c, &h->refusals_log, gw_clock_now_us() / 1000, &health_watch_caps, host, v,
		       v == GW_SLOTS_NAME_FULL ? gw_slots_held(&h->peers, host) : h->peers.used,
		       v == GW_SLOTS_NAME_FULL ? per_peer : global);
	return -1;
}

void gw_health_watch(struct gw_call *c)
{
	struct gw_health *h = gw_call_svc(c);
	char *peer = NULL;

	if (strlen(health_service_of(c)) > GW_HEALTH_MAX_SERVICE) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "service name too long");
		return;
	}
	if (h->ended) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
		return;
	}
	if (health_watch_admit(h, c, &peer) != 0)
		return;
	h->watchers[h->nwatchers++] = c;	/* the global cap is at most the table's size */
	gw_call_set_data(c, peer);
	gw_call_on_cancel(c, health_watch_cancelled);
	health_send(c);
}

void gw_health_set(struct gw_health *h, int serving)
{
	serving = serving ? 1 : 0;
	if (h->serving == serving)
		return;
	h->serving = serving;
	for (size_t i = 0; i < h->nwatchers; i++)
		health_send(h->watchers[i]);
}

void gw_health_end_watches(struct gw_health *h)
{
	gw_health_set(h, 0);
	h->ended = 1;
	while (h->nwatchers) {
		struct gw_call *c = h->watchers[h->nwatchers - 1];

		health_forget(h, c);
		gw_call_on_cancel(c, NULL);
		gw_call_stream_end(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
	}
}

/* ---- the service ---- */

static int health_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_health *h = calloc(1, sizeof *h);

	(void)env;
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->serving = 1;
	*state = h;
	return 0;
}

static void health_drain(void *state)
{
	gw_health_end_watches(state);
}

static void health_free(void *state)
{
	struct gw_health *h = state;

	if (h)
		gw_slots_free(&h->peers);
	free(h);
}

static void health_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_health *h = state;

	gw_metrics_one(o, "health_watchers", "gauge", "Open grpc.health.v1 Watch streams.",
		       h->nwatchers);
	gw_metrics_one(o, "health_watchers_refused_total", "counter",
		       "Health Watch streams refused past the limit.", h->watchers_refused);
	if (h->peers.buckets)	/* no Watch yet: nothing counted */
		gw_slots_render(&h->peers, "health_watch_peer",
				"Open health Watch streams (all peers).", "peer", "peer", 0, o);
}

const struct gw_svc gw_svc_health = {
	.name = "health",
	.init = health_init,
	.drain = health_drain,
	.free = health_free,
	.metrics = health_metrics,
};
