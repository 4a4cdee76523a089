/*
 * jobevent: "a job the gateway started reached a final state" (issue 17). The registration point
 * between the job follower, which learns it (an upstream webhook confirmed by a status re-read, a
 * caller's poll, a final published by another replica, or its own slow polling of unfinished
 * jobs), and what acts on it: tenant webhook delivery, job outcome metrics, budget settlement.
 *
 * Contract
 * - Only confirmed finals: ev->status is what upstream GET /status said (or what another replica
 *   published after reading it), never the body of a webhook alone.
 * - At least once: a listener may see the same (rid, state) again (after a restart, from another
 *   replica, after its own failure). Listeners key their durable writes by rid and are idempotent.
 * - Nothing lost: the follower records a job as settled in the state store only after every
 *   listener has called done(done_arg, 0) for it. A listener that could not store its work calls
 *   done(done_arg, -1); the follower offers the event again later (bounded backoff). Jobs not
 *   settled when the process stops are followed again from the ownership store at the next start.
 * - ev and everything it points to are borrowed for the duration of the listener call; copy what
 *   is kept. done is called exactly once, from the loop thread, now or later.
 * - Listeners run on the loop thread and must not block.
 */
#ifndef A3D_GATEWAY_JOBEVENT_H
#define A3D_GATEWAY_JOBEVENT_H

#include <stdint.h>

#include "animate3d/v1/jobs.pb-c.h"

#define GW_JOBEVENT_MAX_LISTENERS 8

struct gw_jobevents;		/* owned by the job follower */

struct gw_jobevent {
	const char *rid;
	const char *tenant;	/* the job's owner, from the ownership store */
	const char *account;	/* the upstream account the job runs on */
	int state;		/* ANIMATE3D__V1__JOB_STATE__SUCCESS or __FAILURE */
	const Animate3d__V1__JobStatus *status;	/* as GetStatus reports it */
	int64_t final_at_ms;	/* wall clock (ms since the epoch) when first seen final */
};

typedef void (*gw_jobevent_done_fn)(void *done_arg, int rc);
typedef void (*gw_jobevent_fn)(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done,
			       void *done_arg);

/* Registers a listener (at start, before the loop runs). name is a short static string used in
 * logs and metrics ("webhooks", "outcomes"). Returns 0, or -1 when GW_JOBEVENT_MAX_LISTENERS are
 * registered already. */
int gw_jobevent_listen(struct gw_jobevents *je, const char *name, gw_jobevent_fn fn, void *arg);

#endif
