/*
 * caps: the one way a service refuses a caller for holding too much of a long-lived resource
 * (gateway/base/slots.h): RESOURCE_EXHAUSTED with a message naming who (the tenant or peer) and
 * which cap (its config key and value), and one JSON log line per refusal within a budget
 * (gateway/base/lograte.h: the caller controls the rate). The refusal itself is counted by the
 * slots table it came from.
 *
 *   WatchStatus: tenant team-a holds 4 streams; its cap is 4
 *     (tenants[].limits.watch_streams or watch.max_streams_per_tenant); close one or retry later
 *   WatchStatus: the gateway holds 20000 streams; its cap is 20000 (watch.max_streams); retry later
 */
#ifndef A3D_GATEWAY_CAPS_H
#define A3D_GATEWAY_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/base/lograte.h"
#include "gateway/base/slots.h"

#define GW_CAPS_MSG_MAX 384	/* the status message built here */
#define GW_CAPS_PEER_MAX 64	/* a peer host as gw_caps_peer_host writes it */

struct gw_call;

/* What was refused: names for messages, logs and config keys. */
struct gw_caps_what {
	const char *method;	/* "WatchStatus" */
	const char *resource;	/* "watch_streams": the log's resource field */
	const char *noun;	/* "streams": what the holder holds, in messages */
	const char *who;	/* "tenant" | "peer" */
	const char *name_keys;	/* the config keys of the per-name cap, for the message */
	const char *global_key;	/* the config key of the global cap */
};

/*
 * Writes the refusal message for verdict v (not GW_SLOTS_OK) into out: held/cap are the name's
 * holding and cap for GW_SLOTS_NAME_FULL, the gateway's for GW_SLOTS_GLOBAL_FULL. Pure.
 */
void gw_caps_message(char *out, size_t outlen, const struct gw_caps_what *w, const char *name,
		     enum gw_slots_verdict v, uint64_t held, uint64_t cap);

/* Finishes c with RESOURCE_EXHAUSTED and that message, and logs it within lr's budget (now_ms on
 * any monotonic clock). */
void gw_caps_refuse(struct gw_call *c, struct gw_lograte *lr, int64_t now_ms,
		    const struct gw_caps_what *w, const char *name, enum gw_slots_verdict v,
		    uint64_t held, uint64_t cap);

/* The host part of a gRPC peer string ("ipv4:10.1.2.3:5555" -> "10.1.2.3", "ipv6:[::1]:80" ->
 * "[::1]", "unix:/run/s" -> "unix:/run/s"), what per-peer caps count by. Returns 0, or -1 (out
 * is then "unknown") when peer is NULL, empty or does not fit. Pure. */
int gw_caps_peer_host(const char *peer, char *out, size_t outlen);

#endif
