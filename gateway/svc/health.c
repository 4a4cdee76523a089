/*
 * health: grpc.health.v1.Health. See health.h.
 */
#include "gateway/svc/health.h"

#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include <stdio.h>
#include <stdlib.h>

#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/call/svc.h"

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

static void health_forget(struct gw_health *h, struct gw_call *c)
{
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

void gw_health_watch(struct gw_call *c)
{
	struct gw_health *h = gw_call_svc(c);

	if (strlen(health_service_of(c)) > GW_HEALTH_MAX_SERVICE) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "service name too long");
		return;
	}
	if (h->ended) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
		return;
	}
	if (h->nwatchers >= GW_HEALTH_MAX_WATCHERS) {
		h->watchers_refused++;
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many health watchers");
		return;
	}
	h->watchers[h->nwatchers++] = c;
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
		struct gw_call *c = h->watchers[--h->nwatchers];

		h->watchers[h->nwatchers] = NULL;
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
	free(state);
}

static void health_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_health *h = state;

	gw_metrics_one(o, "health_watchers", "gauge", "Open grpc.health.v1 Watch streams.",
		       h->nwatchers);
	gw_metrics_one(o, "health_watchers_refused_total", "counter",
		       "Health Watch streams refused past the limit.", h->watchers_refused);
}

const struct gw_svc gw_svc_health = {
	.name = "health",
	.init = health_init,
	.drain = health_drain,
	.free = health_free,
	.metrics = health_metrics,
};
