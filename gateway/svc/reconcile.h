/*
 * reconcile: the usage ledger against the upstream balance (issue 22).
 *
 * Every good balance poll of an account (gateway/svc/balance.h) is compared with what the ledger
 * (gateway/state/store.h, GW_USAGE_CHARGED) says the gateway's jobs cost since a baseline:
 *
 *   upstream = minutes at the baseline - minutes now      (what the account was charged)
 *   ledger   = seconds charged by rows of the account's tenants settled since the baseline / 60
 *   unreconciled = upstream - ledger
 *
 * Near 0 when every job goes through the gateway and the cost model is right. Positive: usage
 * the ledger did not see (a job started directly upstream with the account's secret, teams not
 * measured under usage.measure: budgeted, or jobs that ended upstream and are not settled yet:
 * the follower settles them within its poll interval, so that part comes back to 0). Negative:
 * the ledger charged more than upstream did (a wrong cost model).
 *
 * The baseline is the account's first good poll in this process, and again after a poll that
 * shows more minutes than the one before (a top-up: the difference starts over, counted in
 * usage_reconcile_resets_total). A job that ends within one poll of the baseline can fall on
 * either side of it. Several replicas: each compares on its own, against the shared ledger,
 * from its own baseline; the figures agree once their baselines are behind every job in flight.
 *
 * Metrics (per configured account, samples only after the account's first comparison):
 * usage_reconcile_upstream_minutes, usage_reconcile_ledger_minutes, usage_unreconciled_minutes,
 * usage_reconcile_since_seconds (the baseline, unix time) gauges; usage_reconcile_resets_total,
 * usage_reconcile_skipped_total (a poll came while the previous comparison still ran) and
 * usage_reconcile_failures_total (the store could not answer) counters.
 *
 * Accounts are read from the configuration at start; a reload does not add any. Loop thread only.
 */
#ifndef A3D_GATEWAY_RECONCILE_H
#define A3D_GATEWAY_RECONCILE_H

struct gw_svc;

extern const struct gw_svc gw_svc_reconcile;

#endif
