/*
 * handoff: the one seam between threads. The poller thread (gateway/server.c) takes events off
 * gRPC core's completion queue and pushes them here; the libevent loop thread is woken with
 * event_active() and delivers them, in push order, to one callback.
 *
 * The queue is a ring of at most GW_HANDOFF_MAX events allocated up front, so a push never
 * allocates and never fails for lack of memory. When the ring is full:
 *   gw_handoff_push() waits until the loop has made room (the poller then simply stops taking
 *     events off the completion queue: back-pressure, never a lost tag); each wait is counted;
 *   gw_handoff_try_push() refuses the event and counts the rejection.
 * A push from the loop thread itself must not wait (nothing would make room): the loop uses
 * try_push only.
 *
 * Threads: push/try_push from any thread; everything else from the loop thread only, except
 * gw_handoff_stats() (any thread). The base must be thread-aware: evthread_use_pthreads() before
 * event_base_new(), as main.c does.
 *
 * Delivery: one wake delivers the events that were queued when it started (at most that many,
 * in batches taken under the lock and delivered without it), so a fast producer cannot keep the
 * loop from its other events; what arrived meanwhile gets another wake. The callback may push
 * (try_push) but must not free the hand-off.
 */
#ifndef A3D_GATEWAY_HANDOFF_H
#define A3D_GATEWAY_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define GW_HANDOFF_MAX 4096	/* events waiting for the loop; the poller waits beyond this */
#define GW_HANDOFF_BATCH 64	/* events taken out per lock while delivering */

struct event_base;

/* One completion-queue event, copied whole: the producer keeps no pointer into the queue. */
struct gw_handoff_ev {
	void *tag;		/* the grpc_event tag (a struct gw_tag *, opaque here) */
	int ok;			/* grpc_event.success */
	int last;		/* GRPC_QUEUE_SHUTDOWN: the poller's final event */
};

/* Called on the loop thread for each event, in push order. */
typedef void (*gw_handoff_fn)(const struct gw_handoff_ev *ev, void *arg);

struct gw_handoff_stats {
	uint64_t pushed;	/* events accepted (push and try_push) */
	uint64_t delivered;	/* events given to the callback */
	uint64_t rejected;	/* try_push refusals: the ring was full */
	uint64_t full_waits;	/* push calls that had to wait for room */
	size_t queued;		/* events waiting now */
	size_t high_water;	/* most events ever waiting at once */
};

struct gw_handoff;

/* A hand-off of capacity cap (1..GW_HANDOFF_MAX) delivering to fn(ev, arg) on base's loop.
 * NULL on a bad argument or out of memory. */
struct gw_handoff *gw_handoff_new(struct event_base *base, size_t cap, gw_handoff_fn fn, void *arg);
/* Queues a copy of *ev and wakes the loop; waits while the ring is full. Never from the loop. */
void gw_handoff_push(struct gw_handoff *h, const struct gw_handoff_ev *ev);
/* Queues a copy of *ev and wakes the loop: 0, or -1 (counted in rejected) when the ring is full. */
int gw_handoff_try_push(struct gw_handoff *h, const struct gw_handoff_ev *ev);
/* Loop thread: delivers what is queued now, as a wake does; returns how many were delivered. */
size_t gw_handoff_drain(struct gw_handoff *h);
/* A consistent snapshot of the counters; any thread. */
void gw_handoff_stats(struct gw_handoff *h, struct gw_handoff_stats *out);
/* Frees h and drops the events still queued (their count is returned through dropped when
 * non-NULL). Only once no thread can push any more (the poller has been joined).
 * NULL is a no-op. */
void gw_handoff_free(struct gw_handoff *h, size_t *dropped);

#endif
