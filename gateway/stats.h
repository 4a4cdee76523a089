/*
 * stats: the gateway's counters, plain fields in one struct owned by struct gw_server.
 *
 * Only the loop thread writes them (no atomics needed); gateway/http.c renders them as
 * Prometheus text on /metrics. Every limit that rejects something has a counter here.
 *
 * RPC outcomes are counted per method (index into the server's method table, see
 * gateway/rpc.h) and gRPC status code. Upstream answers are counted per documented route
 * (a static string such as "GET /status/{rids}") and HTTP status class, in a small fixed
 * table; routes past GW_STATS_MAX_ROUTES are counted in upstream_routes_dropped.
 */
#ifndef A3D_GATEWAY_STATS_H
#define A3D_GATEWAY_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GW_STATS_MAX_METHODS 48		/* rows of the method table that get their own counters */
#define GW_STATS_GRPC_CODES 17		/* OK (0) .. UNAUTHENTICATED (16) */
#define GW_STATS_MAX_ROUTES 48		/* distinct upstream routes counted */
#define GW_STATS_HTTP_CLASSES 6		/* [0] no HTTP answer (curl error), [1..5] 1xx..5xx */

struct gw_stats_route {
	const char *route;		/* static string, NULL = free slot */
	uint64_t by_class[GW_STATS_HTTP_CLASSES];
};

struct gw_stats {
	/* gRPC side */
	uint64_t rpc[GW_STATS_MAX_METHODS][GW_STATS_GRPC_CODES];
	uint64_t rpc_unknown_method;		/* generic calls answered UNIMPLEMENTED */
	uint64_t rpc_other_method;		/* methods past GW_STATS_MAX_METHODS */
	uint64_t calls_in_flight;		/* gauge: accepted and not yet freed */
	uint64_t calls_total;
	uint64_t auth_rejected;			/* UNAUTHENTICATED: missing/unknown key */
	uint64_t perm_denied;			/* PERMISSION_DENIED */
	uint64_t malformed;			/* undecodable request messages */
	uint64_t cancelled;			/* client cancel or deadline before the reply */
	uint64_t stream_dropped;		/* server-stream messages refused (queue full / gone) */
	uint64_t rejected_draining;		/* calls that arrived while shutting down */
	uint64_t reloads_ok, reloads_failed;	/* SIGHUP */
	/* upstream side (written by gateway/upstream.c and auth/session.c) */
	struct gw_stats_route routes[GW_STATS_MAX_ROUTES];
	uint64_t upstream_routes_dropped;	/* answers for routes past the table */
	uint64_t upstream_in_flight;		/* gauge */
	uint64_t logins_ok, logins_failed;
	/* HTTP side */
	uint64_t http_requests;
	uint64_t http_not_found;
};

/* Count one upstream answer for route (a static string); http_status 0 = no HTTP answer. */
static inline void gw_stats_upstream(struct gw_stats *s, const char *route, long http_status)
{
	size_t cls = (http_status >= 100 && http_status < 600) ? (size_t)(http_status / 100) : 0;

	if (!route)
		route = "other";
	for (size_t i = 0; i < GW_STATS_MAX_ROUTES; i++) {
		struct gw_stats_route *r = &s->routes[i];

		if (!r->route)
			r->route = route;
		else if (r->route != route && strcmp(r->route, route) != 0)
			continue;
		r->by_class[cls]++;
		return;
	}
	s->upstream_routes_dropped++;
}

#endif
