/*
 * admission: per upstream account, a cap on concurrent upstream requests and on requests per
 * second, with a bounded FIFO wait queue that knows deadlines, and the Retry-After pause.
 *
 * Pure: time is a parameter (now_ms, monotonic), no globals, no I/O, no timers. The caller owns
 * one timer per account: after any gw_adm_* call it re-arms it for gw_adm_next_wake() and calls
 * gw_adm_run() when it fires.
 *
 * struct gw_adm holds list heads that point into itself: do not copy or move it after init.
 *
 * A caller fills a struct gw_adm_waiter (deadline, fn, arg) it owns and calls gw_adm_enter():
 *   GW_ADM_ADMIT            a slot is taken now; call gw_adm_leave() once when the request ends.
 *   GW_ADM_QUEUED           w is queued; fn runs later, exactly once, with GW_ADM_ADMIT (then
 *                           gw_adm_leave() once as above) or a refusal; unless gw_adm_cancel(w)
 *                           or gw_adm_detach_all() comes first (then fn never runs).
 *   GW_ADM_REFUSE_FULL      the queue holds GW_ADM_MAX_QUEUE waiters already (refused at once).
 *   GW_ADM_REFUSE_DEADLINE  even the earliest possible admission (after the pause and the rate
 *                           owed by the waiters ahead) is later than the deadline (at once).
 * fn is never called from inside gw_adm_enter(). It may be called from gw_adm_leave(),
 * gw_adm_pause() and gw_adm_run(); it may call any gw_adm_* function on the same account
 * (re-entrant calls only update state; the outer call carries on dispatching). w must stay valid
 * while queued; after fn returns the module no longer touches it.
 *
 * A waiter's deadline is the latest time it may be ADMITTED (the caller subtracts what the
 * upstream request itself needs). Queued waiters whose deadline passes are refused
 * (GW_ADM_REFUSE_DEADLINE); a pause refuses at once every waiter whose deadline falls before the
 * pause ends, and releases the others when it ends.
 */
#ifndef A3D_GATEWAY_ADMISSION_H
#define A3D_GATEWAY_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/base/ratelimit.h"

#define GW_ADM_MAX_QUEUE 1024		/* waiters per account */
#define GW_ADM_MAX_ROUNDS 64		/* dispatch rounds per call (each hands out >= 1 verdict) */
#define GW_ADM_MAX_PAUSE_MS (3600L * 1000)	/* = GW_ERRMAP_RETRY_AFTER_MAX_MS */

enum gw_adm_verdict {
	GW_ADM_ADMIT = 0,
	GW_ADM_QUEUED,
	GW_ADM_REFUSE_FULL,
	GW_ADM_REFUSE_DEADLINE,
};

struct gw_adm_waiter;
typedef void (*gw_adm_fn)(struct gw_adm_waiter *w, enum gw_adm_verdict v, void *arg);

struct gw_adm_waiter {
	/* Set by the caller before gw_adm_enter(). */
	int64_t deadline_ms;		/* latest admission time; < 0 = none */
	gw_adm_fn fn;
	void *arg;
	/* Owned by the module. */
	struct gw_adm_waiter *prev, *next;
	int where;			/* 0 nowhere, 1 queued, 2 verdict pending */
	enum gw_adm_verdict verdict;	/* while pending */
	int64_t queued_ms;
};

struct gw_adm_counters {
	uint64_t admitted;		/* at once, in gw_adm_enter() */
	uint64_t admitted_queued;	/* after waiting in the queue */
	uint64_t queued;
	uint64_t refused_full;		/* queue full */
	uint64_t refused_deadline;	/* deadline impossible at gw_adm_enter() */
	uint64_t refused_pause;		/* queued, deadline before the end of a pause */
	uint64_t expired;		/* queued, deadline passed while waiting */
	uint64_t cancelled;		/* gw_adm_cancel() on a queued or pending waiter */
	uint64_t pauses;		/* gw_adm_pause() calls that extended the pause */
	uint64_t unbalanced_leave;	/* gw_adm_leave() with nothing in flight */
	uint64_t wait_ms_total;		/* queue time of admitted_queued waiters */
};

struct gw_adm {
	unsigned max_concurrent;	/* 0 = no cap */
	int slots_on;			/* an outer cap is in force (gw_adm_set_slots) ... */
	unsigned slots;			/* ... of this many in flight, 0 included */
	struct gw_bucket rate;		/* requests/s; unlimited when the account sets none */
	size_t max_queue;
	unsigned inflight;
	int64_t pause_until_ms;		/* no admission before this */
	struct gw_adm_waiter queue;	/* FIFO, sentinel */
	size_t nqueued;
	struct gw_adm_waiter pending;	/* verdicts decided, callbacks not yet run; sentinel */
	int dispatching;
	struct gw_adm_counters n;
};

/* max_concurrent 0 = no cap; rate_per_s <= 0 = no cap (burst: one second's worth, at least 1);
 * max_queue 0 or above GW_ADM_MAX_QUEUE = GW_ADM_MAX_QUEUE. */
void gw_adm_init(struct gw_adm *a, unsigned max_concurrent, double rate_per_s, size_t max_queue,
		 int64_t now_ms);

/* New caps (a reload), same meaning as in gw_adm_init; the queue, the pause, the requests in
 * flight and the rate bucket's level are kept. A smaller max_queue refuses no one already queued.
 * Admits at once whoever the new caps let go. */
void gw_adm_configure(struct gw_adm *a, unsigned max_concurrent, double rate_per_s, size_t max_queue,
		      int64_t now_ms);

/* An outer cap on requests in flight, on top of max_concurrent (the slots this replica holds of
 * a cluster-wide cap, gateway/cluster/csem.h): on 1 = at most slots in flight, 0 meaning none;
 * on 0 = no outer cap. Requests already in flight are kept. Admits at once whoever it lets go;
 * a waiter it holds back waits for a leave or a larger call (gw_adm_next_wake does not count it). */
void gw_adm_set_slots(struct gw_adm *a, int on, unsigned slots, int64_t now_ms);

/* See the top of this file. *est_wait_ms (may be NULL) = the earliest possible wait for this
 * waiter, in ms (0 when admitted), also on refusals: a retry hint for the caller. */
enum gw_adm_verdict gw_adm_enter(struct gw_adm *a, struct gw_adm_waiter *w, int64_t now_ms,
				 int64_t *est_wait_ms);

/* What gw_adm_enter() would give as *est_wait_ms for a newcomer now, without entering: a lower
 * bound of its wait (the pause, and the rate owed by the waiters ahead and by it; the concurrency
 * cap adds an unknown wait). 0 when it could go at once. Takes no token, counts nothing. */
int64_t gw_adm_estimate(struct gw_adm *a, int64_t now_ms);

/* The admitted request ended (answer, error or cancel): frees its slot, admits who can go. */
void gw_adm_leave(struct gw_adm *a, int64_t now_ms);

/* The caller gave up on a queued waiter: fn will not run. No-op for a waiter not queued/pending.
 * A waiter whose ADMIT verdict was pending gives its slot back. */
void gw_adm_cancel(struct gw_adm *a, struct gw_adm_waiter *w);

/* Retry-After: no admission before until_ms (an earlier until_ms than the current pause changes
 * nothing; clamped to now + GW_ADM_MAX_PAUSE_MS). Refuses queued waiters that cannot outlast it. */
void gw_adm_pause(struct gw_adm *a, int64_t now_ms, int64_t until_ms);

/* Timer: refuses expired waiters, admits who can go. */
void gw_adm_run(struct gw_adm *a, int64_t now_ms);

/* When gw_adm_run() has something to do next (absolute ms), or -1: nothing queued, or only
 * waiters blocked by the concurrency cap (gw_adm_leave() wakes those). */
int64_t gw_adm_next_wake(struct gw_adm *a, int64_t now_ms);

/* Empties the queue without calling any fn (shutdown). */
void gw_adm_detach_all(struct gw_adm *a);

/* "admit", "queued", "queue_full", "deadline". */
const char *gw_adm_verdict_name(enum gw_adm_verdict v);

#endif
