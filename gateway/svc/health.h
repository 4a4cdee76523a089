/*
 * health: grpc.health.v1.Health Check and Watch (no API key needed).
 *
 * Services "" (the whole server) and each animate3d.v1 service are SERVING while the server
 * runs and NOT_SERVING once it drains. Check on an unknown service is NOT_FOUND; Watch on an
 * unknown service streams SERVICE_UNKNOWN and stays open, as the health protocol says.
 * Watch streams the current state, then every change; at drain it sends NOT_SERVING and ends
 * the stream with UNAVAILABLE so the server can finish shutting down.
 */
#ifndef A3D_GATEWAY_HEALTH_H
#define A3D_GATEWAY_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define GW_HEALTH_MAX_WATCHERS 4096	/* Watch streams the table holds; watch.health_max_streams
					 * (default 256, at most this) is the cap in force */
#define GW_HEALTH_MAX_SERVICE 128	/* service name length; longer is INVALID_ARGUMENT */
#define GW_HEALTH_MAX_PEERS 4096	/* distinct client addresses holding Watch streams */

#include "gateway/base/lograte.h"
#include "gateway/base/slots.h"

struct gw_call;
struct gw_svc;

/* Watch needs no API key, so its fair share is per client address (the peer's host, without
 * the port): watch.health_max_streams_per_peer each, watch.health_max_streams in all. */
struct gw_health {
	int serving;				/* 1 SERVING, 0 NOT_SERVING */
	int ended;				/* watches ended for shutdown */
	struct gw_call *watchers[GW_HEALTH_MAX_WATCHERS];
	size_t nwatchers;
	uint64_t watchers_refused;		/* Watch calls past a cap */
	struct gw_slots peers;			/* streams per peer host; set up on first Watch */
	struct gw_lograte refusals_log;
};

/* The service (gateway/call/svc.h): its state is a struct gw_health; drain sends NOT_SERVING to
 * every watcher and ends their streams. */
extern const struct gw_svc gw_svc_health;

/* Method handlers (rows in gateway/methods.c). */
void gw_health_check(struct gw_call *c);
void gw_health_watch(struct gw_call *c);

/* 1 when the service name is one this server answers for. */
int gw_health_service_known(const char *service);

/* Changes the serving state and tells every watcher. */
void gw_health_set(struct gw_health *h, int serving);
/* Drain: NOT_SERVING to every watcher, then end their streams. Idempotent. */
void gw_health_end_watches(struct gw_health *h);

#endif
