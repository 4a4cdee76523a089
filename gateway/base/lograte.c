/*
 * lograte: log lines per window for attacker-driven events. See lograte.h.
 */
#include "gateway/base/lograte.h"

int gw_lograte_allow(struct gw_lograte *r, int64_t now_ms, unsigned per_window, uint64_t *suppressed)
{
	if (per_window == 0)
		per_window = GW_LOGRATE_DEFAULT_LINES;
	/* A new window (or a clock that went back: start over rather than stay silent). */
	if (now_ms - r->window_ms >= GW_LOGRATE_WINDOW_MS || now_ms < r->window_ms) {
		r->window_ms = now_ms;
		r->lines = 0;
	}
	if (r->lines >= per_window) {
		r->suppressed++;
		r->suppressed_total++;
		return 0;
	}
	r->lines++;
	if (suppressed)
		*suppressed = r->suppressed;
	r->suppressed = 0;
	return 1;
}
