/*
 * iobrake: holds gRPC core's I/O thread still for a moment while a flood of new calls outruns
 * the loop and memory is high.
 *
 * gRPC core 1.51 turns every stream a client opens into a call queued for the application, and
 * has no limit on that queue (CVE-2023-44487, rapid reset). The thread that parses the sockets
 * (server.c's I/O thread, the only one polling) makes those calls; the loop takes them. When the
 * first outruns the second, the queue grows by tens of thousands of calls a second, gigabytes
 * within seconds. A thread's nice value (grpc.io_thread_nice) tilts that race only when both
 * threads share a core. So the stream guard's thread (gateway/base/streamguard.h), every tick,
 * asks gw_iobrake_decide; while RSS is at half of process.memory_mib or more and calls are being
 * made at GW_IOBRAKE_CALLS_PER_S or more, it stops the I/O thread for the next tick: a signal
 * whose handler, on that thread, sleeps until the brake's end (wherever gRPC core was: the
 * thread parses no frame meanwhile, and the loop, which needs no I/O to take or drop queued
 * calls, drains them). The brake never outlasts GW_IOBRAKE_MAX_MS, and the next tick sees no
 * calls made while it held, so the thread runs at least every other tick: honest calls wait
 * that long at most, memory permitting. A lock the thread held when stopped is held for the
 * brake (gRPC core's locks are short, and the wait ends by the clock, never by another thread).
 *
 * The handler touches only its own atomic deadline (the one static of the module: a handler can
 * reach nothing else). Counted: brakes and braked milliseconds.
 */
#ifndef A3D_GATEWAY_IOBRAKE_H
#define A3D_GATEWAY_IOBRAKE_H

#include <pthread.h>
#include <stdint.h>

#define GW_IOBRAKE_CALLS_PER_S 1000	/* calls made a second below which nothing is braked */
#define GW_IOBRAKE_MAX_MS 50		/* one brake at most */

struct gw_iobrake;
struct gw_metrics_out;

/* How long to stop the I/O thread (ms, 0: not) after `calls` calls were made within the last
 * `span_ms`, with rss bytes resident under ceiling bytes (0: no ceiling: never), for a tick of
 * tick_ms. Pure. */
int64_t gw_iobrake_decide(uint64_t rss, uint64_t ceiling, uint64_t calls, int64_t span_ms,
			  int64_t tick_ms);

/* Installs the brake's signal handler for thread (the I/O thread). ceiling 0, or a sanitizer
 * build (RSS means nothing there): no brake, NULL (nothing to free). NULL on failure too: *failed
 * set. */
struct gw_iobrake *gw_iobrake_new(pthread_t thread, uint64_t ceiling, int *failed);
/* One tick of the controller (any one thread): decides and, if so, stops the thread. */
void gw_iobrake_tick(struct gw_iobrake *b, uint64_t calls, int64_t span_ms, int64_t tick_ms);
/* grpc_io_brakes_total, grpc_io_braked_milliseconds_total. NULL b: nothing. */
void gw_iobrake_render_metrics(void *b, struct gw_metrics_out *o);
/* After the ticking thread stopped; the handler stays installed (harmless). NULL is fine. */
void gw_iobrake_free(struct gw_iobrake *b);

#endif
