/*
 * lograte: at most N log lines per second from one source, and a count of what was held back.
 *
 * For lines whose rate someone else controls (an attacker's connections make libevent and gRPC
 * core complain once per accept or per handshake): past the budget a line is suppressed and
 * counted; the next line let through reports how many were suppressed before it, so the log
 * still says it happened, in one line per second instead of one per event.
 *
 * Pure: time is a parameter (now_ms, monotonic), no I/O, no lock; callers from several threads
 * hold their own lock around it (gateway/base/liblog.c does).
 */
#ifndef A3D_GATEWAY_LOGRATE_H
#define A3D_GATEWAY_LOGRATE_H

#include <stdint.h>

#define GW_LOGRATE_WINDOW_MS 1000	/* the budget renews this often */

struct gw_lograte {
	unsigned per_window;		/* lines let through per window (0: none) */
	int64_t window_start_ms;
	unsigned in_window;		/* lines let through in the current window */
	uint64_t written;		/* lines let through, ever */
	uint64_t suppressed;		/* lines held back, ever */
	uint64_t pending;		/* held back since the last line let through */
};

/* A limiter letting per_window lines through per GW_LOGRATE_WINDOW_MS. */
void gw_lograte_init(struct gw_lograte *r, unsigned per_window);
/*
 * One line at now_ms: 1 = write it, and *held_back (may be NULL) gets the lines suppressed since
 * the previous one written (to report on this line); 0 = suppress it (counted).
 */
int gw_lograte_allow(struct gw_lograte *r, int64_t now_ms, uint64_t *held_back);

#endif
