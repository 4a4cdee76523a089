/*
 * budget: the usage ledger and the tenants' budgets (issue 22), on the state store's ledger
 * (gateway/state/store.h, gw_store_usage).
 *
 * StartJob (gateway/svc/unary.c, both the plain and the idempotent path) reserves before it goes
 * upstream: gw_budget_reserve() measures the job, reserves its seconds in one atomic store
 * operation and hands the reservation to the caller's op (gw_budget_take), which says how the
 * start ended: gw_budget_started() with the rid upstream answered, or gw_budget_release() when no
 * job was started (upstream refused it, the call failed, an idempotent replay). The job follower
 * (gateway/svc/follower.h) tells the final state through a jobevent listener: SUCCESS charges the
 * reserved seconds, FAILURE releases them unless tenants[].budget.count_failed.
 *
 * Measuring (the seconds upstream charges: the simulator charges ceil(processed seconds) on
 * SUCCESS, tests/sim/sim_jobs.c):
 *   upload_url        the input's duration from upstream's POST /videoInfo (one small request
 *                     before /process, as public clients make; every team is measured, so
 *                     the ledger's chargeback figures hold for teams without a budget too)
 *   rerun_rid         the input duration of the original job's ledger row
 *   mp_detection_rid  the input duration of the detection job's ledger row; persons = models
 * then params.trim as upstream applies it: min(to, duration) - from when that is > 0, else the
 * whole input; rounded up to the second. A trim without a known input reserves ceil(to - from).
 * When the duration cannot be told (an unreadable video, /videoInfo failing, a job started
 * before the ledger) a hard budget refuses (FAILED_PRECONDITION; UNAVAILABLE with the upstream's
 * retry delay when /videoInfo failed for a reason a retry may fix); otherwise the row records
 * 0 seconds and an unknown input (usage_ledger_total{what="unmeasured"}).
 *
 * Budgets (tenants[].budget): minutes_per_month over the window (the calendar month in UTC, or
 * rolling_30d: the last 30 days). Hard: over it -> FAILED_PRECONDITION "budget of team T is
 * spent: U of L minutes used this month, this job needs N more; it resets at <RFC 3339 UTC>";
 * soft: allowed, one log line. Both count budget_exceeded_total{tenant,hard}. A store failure
 * while reserving answers UNAVAILABLE (never an unbudgeted start).
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_BUDGET_H
#define A3D_GATEWAY_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/state/store.h"
#include "gateway/svc/rpc_owner.h"

#define GW_BUDGET_TENANTS_MAX 1024	/* tenants with counters and gauges (= GW_CONFIG_MAX_TENANTS) */
#define GW_BUDGET_MSG_MAX 400		/* a refusal's status text */
#define GW_BUDGET_ROLLING_MS (30LL * 86400 * 1000)	/* window: rolling_30d */
#define GW_BUDGET_GAUGE_MS 15000	/* how often the usage gauges are read from the store */

/* ---- pure parts (unit-tested) ---- */

/*
 * The whole seconds a job is charged: input_s the input's duration (< 0 unknown), trim as
 * upstream applies it (has_trim: params.trim given). -1 when it cannot be told (unknown input,
 * no trim).
 */
int64_t gw_budget_charge_s(double input_s, int has_trim, double trim_from, double trim_to);
/*
 * The window of a budget (GW_BUDGET_WINDOW_*) at now_ms (wall): *from_ms its start, *reset_ms
 * when it resets: the next calendar month (UTC), or for rolling_30d when the oldest counted row
 * (oldest_ms, 0 when none) leaves the window (now when none).
 */
void gw_budget_window(int window, int64_t now_ms, int64_t oldest_ms, int64_t *from_ms,
		      int64_t *reset_ms);
/* ms (wall) as RFC 3339 UTC, "2026-12-01T00:00:00Z"; cap >= 21. Returns out. */
const char *gw_budget_rfc3339(int64_t ms, char *out, size_t cap);
/* "YYYY-MM" -> [from_ms, to_ms) of that calendar month in UTC. 0, or -1 when malformed. */
int gw_budget_month(const char *s, int64_t *from_ms, int64_t *to_ms);
/* 1 when a job of need_s seconds on top of used_s goes over limit_min minutes. */
int gw_budget_over(int64_t used_s, int64_t need_s, long long limit_min);
/* The refusal's text (see above); window GW_BUDGET_WINDOW_*. */
void gw_budget_refusal(char *out, size_t cap, const char *tenant, int64_t used_s, int64_t need_s,
		       long long limit_min, int window, int64_t reset_ms);

/* ---- the StartJob side ---- */

struct gw_call;
struct gw_env;

/* A reservation an op holds until it says how its start ended; id "" = none. */
struct gw_budget_hold {
	struct gw_env *env;
	char id[GW_USAGE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
	int refollow;		/* a multi-person run: its rid (the detection's) is followed again */
};

/*
 * Measures and reserves the StartJob c (req: the admitted request; view: owned by this call
 * now, as gw_rpc_owner_admit's next owns it), then runs next(c, req, view) with the reservation
 * ready for gw_budget_take(), perhaps before this returns, perhaps later. When the call is
 * finished here instead (over a hard budget, a store failure, a duration a hard budget needs
 * and cannot get), next never runs. Without a state store ledger (read-only store) next runs at
 * once with no reservation.
 */
void gw_budget_reserve(struct gw_call *c, const ProtobufCMessage *req,
		       struct gw_rpc_owner_view *view, gw_rpc_owner_next_fn next);
/* Moves c's reservation into h (h->id "" when c has none). Call from next() only. */
void gw_budget_take(struct gw_call *c, struct gw_budget_hold *h);
/* The start ended with a job (rid): the row runs. h is emptied. No-op without a reservation. */
void gw_budget_started(struct gw_budget_hold *h, const char *rid);
/* The start ended without a job: the reservation is released. h is emptied. No-op without one. */
void gw_budget_release(struct gw_budget_hold *h);

/* Account.GetUsage (gateway/methods.c): see proto/animate3d/v1/account.proto. The figures come
 * from the store (SUM over the asked range, then over the budget windows); a store failure is
 * UNAVAILABLE with a retry delay. */
void gw_budget_rpc_usage(struct gw_call *c);

/* The service: the settlement listener, the counters and gauges. After the follower in the
 * service list (gateway/methods.c). */
struct gw_svc;
extern const struct gw_svc gw_svc_budget;

#endif
