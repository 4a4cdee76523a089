/*
 * breaker: a circuit breaker per upstream account.
 *
 *   closed --(failures consecutive failures)--> open --(open_ms later, next allow)--> half-open
 *   half-open: one probe request goes; its success closes, its failure re-opens (for open_ms).
 *
 * Pure: time is a parameter (now_ms, monotonic), no globals, no I/O. The caller asks
 * gw_breaker_allow() before each upstream request and reports each answer with
 * gw_breaker_result(): 5xx, connection errors and timeouts are failures; 4xx answers are not
 * (the upstream is alive). A request whose outcome is never known (cancelled) reports nothing: a
 * probe that stays unanswered for open_ms is replaced by a new one, so the breaker cannot stick.
 */
#ifndef A3D_GATEWAY_BREAKER_H
#define A3D_GATEWAY_BREAKER_H

#include <stdint.h>

#define GW_BREAKER_DEFAULT_FAILURES 5		/* consecutive failures that open it */
#define GW_BREAKER_DEFAULT_OPEN_MS 5000		/* open this long before a probe */
#define GW_BREAKER_MAX_OPEN_MS 600000		/* open_ms above this is clamped */

enum gw_breaker_state { GW_BREAKER_CLOSED = 0, GW_BREAKER_OPEN, GW_BREAKER_HALF_OPEN };

struct gw_breaker {
	unsigned threshold;		/* consecutive failures to open */
	int64_t open_ms;
	enum gw_breaker_state state;
	unsigned fails;			/* consecutive failures while closed */
	int64_t since_ms;		/* open: when it opened; half-open: when the probe went */
	/* Counters (transitions and fast refusals), for /metrics. */
	uint64_t opened;		/* -> open (from closed or from a failed probe) */
	uint64_t half_opened;		/* -> half-open (probes sent) */
	uint64_t closed;		/* -> closed (successful probes) */
	uint64_t rejected;		/* allow() answered 0 */
};

/* Closed. failures 0 and open_ms <= 0 take the defaults above. */
void gw_breaker_init(struct gw_breaker *b, unsigned failures, int64_t open_ms);

/*
 * 1: the request may go (in half-open it is the one probe). 0: fail fast; *wait_ms (may be NULL)
 * = milliseconds until a probe may go (>= 1). Moves open -> half-open when open_ms has passed.
 */
int gw_breaker_allow(struct gw_breaker *b, int64_t now_ms, int64_t *wait_ms);

/* The outcome of a request allowed earlier: ok = 1 success (or a 4xx), 0 failure. Results that
 * arrive while open (requests sent before it opened) change nothing. */
void gw_breaker_result(struct gw_breaker *b, int ok, int64_t now_ms);

/* "closed", "open", "half_open" (for logs and metrics labels); "unknown" otherwise. */
const char *gw_breaker_state_name(enum gw_breaker_state s);

#endif
