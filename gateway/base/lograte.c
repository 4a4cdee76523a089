/*
 * lograte: a fixed-window line budget. See lograte.h.
 */
#include "gateway/base/lograte.h"

#include <string.h>

void gw_lograte_init(struct gw_lograte *r, unsigned per_window)
{
	memset(r, 0, sizeof *r);
	r->per_window = per_window;
	r->window_start_ms = INT64_MIN;
}

int gw_lograte_allow(struct gw_lograte *r, int64_t now_ms, uint64_t *held_back)
{
	if (r->window_start_ms == INT64_MIN || now_ms - r->window_start_ms >= GW_LOGRATE_WINDOW_MS ||
	    now_ms < r->window_start_ms) {	/* a clock that went back starts a window too */
		r->window_start_ms = now_ms;
		r->in_window = 0;
	}
	if (r->in_window >= r->per_window) {
		r->suppressed++;
		r->pending++;
		return 0;
	}
	r->in_window++;
	r->written++;
	if (held_back)
		*held_back = r->pending;
	r->pending = 0;
	return 1;
}
