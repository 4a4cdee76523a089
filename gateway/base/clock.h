/*
 * clock: the gateway's two clocks, for every layer.
 *
 * Monotonic microseconds measure latencies and drive timers (immune to wall-clock steps); wall
 * milliseconds since the epoch stamp what outlives the process (state store rows, leases).
 */
#ifndef A3D_GATEWAY_CLOCK_H
#define A3D_GATEWAY_CLOCK_H

#include <stdint.h>

/* Monotonic microseconds (CLOCK_MONOTONIC): latencies, deadlines, timers. */
int64_t gw_clock_now_us(void);
/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME): timestamps that outlive restarts. */
int64_t gw_clock_wall_ms(void);

#endif
