/*
 * http: the admin HTTP listener (libevent evhttp on cfg->http_listen, listen.http), on the loop
 * thread: health, readiness, metrics and upstream webhook deliveries. The REST facade, upstream's
 * own paths for clients with a team key, is a listener of its own (gateway/rest.h, listen.rest).
 *
 *   GET /healthz  200 "ok" while the process runs and its gRPC listener accepts (liveness): 503
 *                 once the self-probe (gateway/base/listenprobe.h, grpc.probe_*) found the
 *                 listener dead, which gRPC core 1.51 never recovers from; 200 while draining
 *   GET /readyz   200 when not draining, the gRPC listener accepts and no upstream account rejects
 *                 our credentials, else 503; JSON {"ready":bool,"draining":bool,
 *                 "grpc_listener":"accepting"|"dead","accounts":[{"name":..,"state":..}], then
 *                 the state store, Redis and what falls back while Redis is away: "cluster"}
 *   GET /metrics  Prometheus text: every family a module registered (gateway/base/metrics.h)
 *   the services' routes (gateway/call/svc.h): POST upstream webhook deliveries (webhook_in)
 *
 * Anything else is 404 (counted).
 */
#ifndef A3D_GATEWAY_HTTP_H
#define A3D_GATEWAY_HTTP_H

#include <stddef.h>

#include "gateway/cluster/redis.h"

#define GW_HTTP_MAX_HEADERS_SIZE 8192	/* request line + headers */
#define GW_HTTP_MAX_BODY_SIZE 4096	/* nothing served here takes a body yet */
#define GW_HTTP_TIMEOUT_S 10		/* idle connection timeout */

struct gw_env;
struct gw_http;
struct gw_account_rt;
struct evbuffer;

/* Binds env->cfg->http_listen ("host:port") with its connection cap, and probes the gRPC
 * listener on grpc_port (its bound port). NULL with one clear line in err on failure. */
struct gw_http *gw_http_new(struct gw_env *env, int grpc_port, char *err, size_t errlen);
void gw_http_free(struct gw_http *h);	/* NULL is a no-op */
/* The listener's connection cap (0 for NULL): the REST listener's budget leaves room for it. */
size_t gw_http_max_connections(const struct gw_http *h);

/* ---- pure renderers (unit-tested) ---- */

/* The /readyz JSON body; returns 1 when ready (not draining, gRPC listener accepting, no account
 * "rejected"), else 0. parts->state_backend names the state store ("sqlite", "postgres");
 * state_why is NULL when it takes calls, else why not: shown, but it does not make the pod
 * unready (a shared PostgreSQL that is down is down for every replica; see
 * docs/operations.md); Redis likewise. */
struct gw_ready_parts {
	const char *state_backend;	/* "sqlite", "postgres", "memory"; NULL: none */
	const char *state_why;		/* NULL: the store takes calls; else why not */
	int redis;			/* 1: redis is configured */
	const char *redis_why;		/* redis: NULL connected, else why not (the replica falls back
					 * to local limits and caches: shown, never unready) */
	const char *limits;		/* "shared" (rate limits on Redis) or "local"; NULL: not shown */
	/* What is shared through Redis, each part's mode (gw_redis_part): rendered as
	 * "cluster":{"<part>":{"mode":"shared"|"local","since":"<UTC time>","fallbacks":n[,
	 * "local":"<what this replica does instead>"]}}, unused or NULL parts left out. Never
	 * makes the replica unready. */
	const struct gw_redis_part_state *shares[GW_REDIS_NPARTS];
};
int gw_http_render_ready(int draining, int grpc_alive, const struct gw_account_rt *accounts,
			 size_t naccounts, const struct gw_ready_parts *parts, struct evbuffer *out);

/* Splits "host:port" / "[v6]:port" into host (NUL-terminated) and port. 0, or -1 if malformed. */
int gw_http_split_hostport(const char *s, char *host, size_t hostlen, unsigned short *port);

#endif
