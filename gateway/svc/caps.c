/*
 * caps: refusals for holding too much of a long-lived resource. See caps.h.
 */
#include "gateway/svc/caps.h"

#include <stdio.h>
#include <string.h>
#include <grpc/status.h>

#include "gateway/base/log.h"
#include "gateway/call/call.h"

void gw_caps_message(char *out, size_t outlen, const struct gw_caps_what *w, const char *name,
		     enum gw_slots_verdict v, uint64_t held, uint64_t cap)
{
	switch (v) {
	case GW_SLOTS_NAME_FULL:
		snprintf(out, outlen, "%s: %s %s holds %llu %s; its cap is %llu (%s); close one or retry later",
			 w->method, w->who, name ? name : "?", (unsigned long long)held, w->noun,
			 (unsigned long long)cap, w->name_keys);
		break;
	case GW_SLOTS_GLOBAL_FULL:
		snprintf(out, outlen, "%s: the gateway holds %llu %s; its cap is %llu (%s); retry later",
			 w->method, (unsigned long long)held, w->noun, (unsigned long long)cap,
			 w->global_key);
		break;
	case GW_SLOTS_TABLE_FULL:
		snprintf(out, outlen, "%s: too many %ss hold %s; retry later", w->method, w->who, w->noun);
		break;
	default:
		snprintf(out, outlen, "%s: cannot account for the %s (out of memory); retry later",
			 w->method, w->noun);
		break;
	}
}

void gw_caps_refuse(struct gw_call *c, struct gw_lograte *lr, int64_t now_ms,
		    const struct gw_caps_what *w, const char *name, enum gw_slots_verdict v,
		    uint64_t held, uint64_t cap)
{
	char msg[GW_CAPS_MSG_MAX];
	uint64_t suppressed = 0;

	gw_caps_message(msg, sizeof msg, w, name, v, held, cap);
	if (gw_lograte_allow(lr, now_ms, 0, &suppressed))
		gw_log(GW_LOG_WARN, "limit", GW_LTRACE(gw_call_trace(c)), GW_LS("method", w->method),
		       GW_LS("resource", w->resource), GW_LS(w->who, name),
		       GW_LS("cap", gw_slots_reason(v, w->who)), GW_LN("held", held), GW_LN("limit", cap),
		       GW_LN("suppressed", suppressed), GW_LEND);
	gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", msg);
}

int gw_caps_peer_host(const char *peer, char *out, size_t outlen)
{
	const char *h, *end;
	size_t n;

	if (!out || outlen == 0)
		return -1;
	snprintf(out, outlen, "unknown");
	if (!peer || !peer[0])
		return -1;
	if (strncmp(peer, "ipv4:", 5) == 0 || strncmp(peer, "ipv6:", 5) == 0) {
		h = peer + 5;
		/* The port follows the last ':' (after the ']' of an IPv6 literal). */
		end = strrchr(h, ':');
		if (!end || end == h || (h[0] == '[' && end[-1] != ']'))
			return -1;
	} else {
		h = peer;	/* unix sockets and anything else: the whole string names the peer */
		end = peer + strlen(peer);
	}
	n = (size_t)(end - h);
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, h, n);
	out[n] = '\0';
	return 0;
}
