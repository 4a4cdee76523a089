/*
 * lograte: a budget of log lines for events an attacker can trigger at will (refused streams,
 * forged webhooks): at most per_window lines per GW_LOGRATE_WINDOW_MS, the rest counted and
 * reported as "suppressed" on the next line written. The metrics count every event; the log
 * shows what happened without letting a flood fill the disk.
 *
 * Pure: time is a parameter (monotonic ms); one struct per kind of event; loop thread only.
 */
#ifndef A3D_GATEWAY_LOGRATE_H
#define A3D_GATEWAY_LOGRATE_H

#include <stdint.h>

#define GW_LOGRATE_WINDOW_MS 1000
#define GW_LOGRATE_DEFAULT_LINES 10	/* lines per window for one kind of event */

struct gw_lograte {
	int64_t window_ms;		/* start of the current window */
	unsigned lines;			/* lines written in it */
	uint64_t suppressed;		/* lines not written since the last one that was */
	uint64_t suppressed_total;	/* for tests and metrics */
};

/*
 * 1 when a line may be written at now_ms: *suppressed (may be NULL) gets the number of lines
 * dropped since the last written one, to be logged with it, and the count restarts. 0 when the
 * window's budget (per_window, 0 -> GW_LOGRATE_DEFAULT_LINES) is spent: the line is counted.
 * A zeroed struct is ready to use.
 */
int gw_lograte_allow(struct gw_lograte *r, int64_t now_ms, unsigned per_window, uint64_t *suppressed);

#endif
