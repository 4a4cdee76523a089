/*
 * stats: the gateway's counters, plain fields in one struct owned by struct gw_server.
 *
 * Only the loop thread writes them (no atomics needed); gateway/base/metrics.c renders them as
 * Prometheus text on /metrics. Every limit that rejects something has a counter here.
 *
 * RPC outcomes by tenant, method (index into the server's method table) and gRPC status code,
 * and upstream answers by route template, each with their latency, are in
 * gateway/base/metrics.h.
 */
#ifndef A3D_GATEWAY_STATS_H
#define A3D_GATEWAY_STATS_H

#include <stddef.h>
#include <stdint.h>

#define GW_STATS_MAX_METHODS 48		/* rows of the method table that get their own counters */
#define GW_STATS_GRPC_CODES 17		/* OK (0) .. UNAUTHENTICATED (16) */

struct gw_stats {
	/* gRPC side */
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
	uint64_t trace_bad_request_id;		/* x-request-id refused: a generated one replaced it */
	uint64_t trace_bad_parent;		/* traceparent refused: the call started a new trace */
	uint64_t trace_bad_state;		/* tracestate dropped */
	uint64_t reloads_ok, reloads_failed;	/* SIGHUP */
	/* HTTP side */
	uint64_t http_requests;
	uint64_t http_not_found;
};

#endif
