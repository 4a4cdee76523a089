/*
 * breaker: the circuit breaker state machine. See breaker.h.
 */
#include "gateway/base/breaker.h"

#include <string.h>

void gw_breaker_init(struct gw_breaker *b, unsigned failures, int64_t open_ms)
{
	memset(b, 0, sizeof *b);
	b->threshold = failures ? failures : GW_BREAKER_DEFAULT_FAILURES;
	if (open_ms <= 0)
		open_ms = GW_BREAKER_DEFAULT_OPEN_MS;
	if (open_ms > GW_BREAKER_MAX_OPEN_MS)
		open_ms = GW_BREAKER_MAX_OPEN_MS;
	b->open_ms = open_ms;
	b->state = GW_BREAKER_CLOSED;
}

static void breaker_open(struct gw_breaker *b, int64_t now_ms)
{
	b->state = GW_BREAKER_OPEN;
	b->since_ms = now_ms;
	b->fails = 0;
	b->opened++;
}

int gw_breaker_allow(struct gw_breaker *b, int64_t now_ms, int64_t *wait_ms)
{
	int64_t until;

	if (wait_ms)
		*wait_ms = 0;
	switch (b->state) {
	case GW_BREAKER_CLOSED:
		return 1;
	case GW_BREAKER_OPEN:
	case GW_BREAKER_HALF_OPEN:
		/* Open: the probe is due at since + open_ms. Half-open: the probe in flight is
		 * presumed lost at since + open_ms, and a new one may go. */
		until = b->since_ms + b->open_ms;
		if (now_ms >= until) {
			b->state = GW_BREAKER_HALF_OPEN;
			b->since_ms = now_ms;
			b->half_opened++;
			return 1;
		}
		b->rejected++;
		if (wait_ms)
			*wait_ms = until - now_ms;
		return 0;
	}
	return 1;
}

void gw_breaker_result(struct gw_breaker *b, int ok, int64_t now_ms)
{
	switch (b->state) {
	case GW_BREAKER_CLOSED:
		if (ok) {
			b->fails = 0;
		} else if (++b->fails >= b->threshold) {
			breaker_open(b, now_ms);
		}
		break;
	case GW_BREAKER_HALF_OPEN:
		if (ok) {
			b->state = GW_BREAKER_CLOSED;
			b->fails = 0;
			b->closed++;
		} else {
			breaker_open(b, now_ms);
		}
		break;
	case GW_BREAKER_OPEN:
		break;
	}
}

const char *gw_breaker_state_name(enum gw_breaker_state s)
{
	switch (s) {
	case GW_BREAKER_CLOSED:
		return "closed";
	case GW_BREAKER_OPEN:
		return "open";
	case GW_BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}
