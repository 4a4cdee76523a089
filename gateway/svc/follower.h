/*
 * follower: the job follower (issue 17). The gateway follows every job it started until a final
 * state, tells the jobevent listeners (gateway/svc/jobevent.h) and then marks the job settled in
 * the state store.
 *
 * The set: the ownership store's unsettled job rows (gateway/state/store.h, job_claim). Every
 * follower.scan_interval_ms the follower claims up to GW_STORE_CLAIM_MAX more (oldest first) while
 * it follows fewer than follower.max_jobs; a full batch is followed by another at the next tick,
 * so a restart reloads a long backlog in bounded batches, never one giant query. A job is in
 * memory from its claim until settled (or abandoned, below).
 *
 * Several replicas (PostgreSQL): a claim leases the jobs to this instance (GW_FOLLOWER_LEASE_MS,
 * renewed every GW_FOLLOWER_RENEW_MS), so each job is slowly polled by one replica at a time;
 * another replica takes over a job once the lease of a replica that is gone runs out. Every
 * replica hears finals anyway (its callers' polls, webhooks, Redis); only the leaseholder
 * delivers them, from whichever source, and listeners are idempotent. With SQLite or memory
 * there is one process: a lease held by anyone else was left by a process that is gone.
 *
 * Learning the final: the status module's final observer (gateway/svc/status.h,
 * gw_status_ctx_on_final) reports every final read upstream and every final published by another
 * replica; an upstream webhook is only a reason to re-read status (webhook_in), so a forged
 * delivery never reaches a listener. The source of each final is counted: webhook (a webhook
 * refresh read it), poll (a caller's poll, or found in the cache), peer (another replica), follower
 * (this module's own poll). Jobs without a final are polled through gw_status_want (coalescing
 * with callers' polls, batched per GET /status) at most follower.polls_per_second: the first poll
 * follower.poll_interval_ms after the job started, then every age / GW_FOLLOWER_AGE_DIVISOR,
 * between poll_interval_ms and max_poll_interval_ms (a job running for an hour is polled every few
 * minutes). With webhooks.public_url set, upstream says when a job ends: a job is polled only once
 * it has been quiet for follower.quiet_ms.
 *
 * Delivering: each listener gets the event; done(0) is remembered per listener (a listener that
 * succeeded is not called again in this process); done(-1) retries that listener after
 * gw_follower_retry_delay(attempt). When all have succeeded the job is settled in the store; a
 * failed settle is retried the same way. Across restarts the delivery is at least once.
 *
 * Abandoned (settled without an event, counted by reason, logged): upstream answered NOT_FOUND
 * GW_FOLLOWER_NOT_FOUND_MAX times in a row, the job is older than GW_FOLLOWER_MAX_AGE_MS, or its
 * tenant is no longer configured (nobody could receive its event).
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_FOLLOWER_H
#define A3D_GATEWAY_FOLLOWER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/svc/jobevent.h"

#define GW_FOLLOWER_LEASE_MS (60LL * 1000)	/* a claim's lease on shared stores */
#define GW_FOLLOWER_RENEW_MS (20LL * 1000)	/* lease renewal period */
#define GW_FOLLOWER_AGE_DIVISOR 8		/* poll period = job age / this, within the bounds */
#define GW_FOLLOWER_NOT_FOUND_MAX 5		/* NOT_FOUND answers in a row before abandoning */
#define GW_FOLLOWER_MAX_AGE_MS (7LL * 86400 * 1000)	/* older unsettled jobs are abandoned */
#define GW_FOLLOWER_RETRY_MIN_MS 1000		/* first retry of a failed listener or settle */
#define GW_FOLLOWER_RETRY_MAX_MS (10LL * 60 * 1000)	/* the retry backoff's cap */
#define GW_FOLLOWER_TICK_MIN_MS 50		/* the polling tick: poll_interval / 4 within these */
#define GW_FOLLOWER_TICK_MAX_MS 1000
#define GW_FOLLOWER_OUTCOMES_MAX 4096		/* (tenant, state, error) rows of the outcome metric */
#define GW_FOLLOWER_RECENT_MAX 1024		/* sources of finals seen for jobs not followed yet */
#define GW_FOLLOWER_ADOPT_MAX 256		/* owner lookups in flight for finals read here of jobs
					 * another replica follows */

/* Where a job's final came from (metrics label, see above). */
enum gw_follower_source {
	GW_FOLLOWER_SRC_WEBHOOK = 0,
	GW_FOLLOWER_SRC_POLL,
	GW_FOLLOWER_SRC_PEER,
	GW_FOLLOWER_SRC_FOLLOWER,
	GW_FOLLOWER_NSRC
};
const char *gw_follower_source_name(int src);	/* "webhook", "poll", "peer", "follower" */

/* ---- the pure parts (unit tested) ---- */

struct gw_follower_pace {
	int64_t interval_ms;		/* follower.poll_interval_ms */
	int64_t max_interval_ms;	/* follower.max_poll_interval_ms */
	int64_t quiet_ms;		/* follower.quiet_ms */
	int webhooks;			/* upstream webhooks are configured */
};
/* How long after now to poll a job that is age_ms old (since it was recorded) and not final. */
int64_t gw_follower_poll_delay(const struct gw_follower_pace *p, int64_t age_ms);
/* The delay before retry number attempt (1, 2, ...) of a failed listener or settle: doubles from
 * GW_FOLLOWER_RETRY_MIN_MS up to GW_FOLLOWER_RETRY_MAX_MS. */
int64_t gw_follower_retry_delay(unsigned attempt);
/* The polling token bucket: tokens after dt_ms at rate per second, capped at one second's worth
 * (at least 1). */
double gw_follower_refill(double tokens, double rate, int64_t dt_ms);
/* The tick period for a poll interval (interval / 4 within GW_FOLLOWER_TICK_*). */
int64_t gw_follower_tick_ms(int64_t interval_ms);
/* The error label of the outcome metric for a final status: "" for SUCCESS, else the job error
 * code as a number ("0" when upstream gave none). out has room for 16 bytes. */
void gw_follower_error_label(int state, int error_code, char out[16]);

/* ---- the service ---- */

struct gw_env;
struct gw_svc;
extern const struct gw_svc gw_svc_follower;

/* The registration point for listeners (gateway/svc/jobevent.h); NULL when the follower is not
 * registered. Listeners register from their service's init, which must come after the
 * follower's in the service list (gateway/methods.c). */
struct gw_jobevents *gw_jobevents_of(const struct gw_env *env);

/* webhook_in accepted an upstream delivery for rid and asked for a refresh: a final read by that
 * refresh counts as source "webhook". Nothing else changes (the refresh's status decides). */
void gw_follower_webhook_seen(const struct gw_env *env, size_t acct, const char *rid);

#endif
