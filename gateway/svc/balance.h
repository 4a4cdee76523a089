/*
 * balance: the upstream balance poller (issues 20 and 22). One for the whole process.
 *
 * Every balance.poll_s seconds (config; default GW_CONFIG_DEFAULT_BALANCE_POLL_S, 0 = off), and
 * once as soon as the loop runs, each upstream account (config accounts[]) is asked
 * `GET /account/creditBalance` and `GET /account/minutesBalance`, both at once, through the
 * upstream engine (gateway/upstream/upstream.h) exactly as the Account.GetCreditBalance RPC
 * is: the account's session, breaker, admission, retries; counted in the upstream metrics by
 * route like any other request. Each poll is a trace of its own (a new trace id and request id,
 * not sampled), so its requests carry a `traceparent` and its log lines name it.
 *
 * A poll is good when both answers arrived and parsed (gw_balance_parse); only then are the
 * account's credits, minutes and time (unix ms) replaced together, and the observers told. A poll
 * that fails in any way (refused by the account's protection, no session, an HTTP error, an
 * answer that does not parse) keeps the last values and counts one failure for the account
 * (balance_poll_failures_total{account}), with one log line naming the reason and the trace. An
 * account whose previous poll is still in flight when its next is due is skipped, counted
 * (balance_polls_skipped_total{account}); polls never pile up.
 *
 * Nothing blocks the loop: the requests are the engine's asynchronous transfers. SIGTERM (drain)
 * cancels the polls in flight and stops the timer. The period is read from the configuration at
 * start; a reload does not change it.
 *
 * Metrics (names without GW_METRICS_PREFIX): upstream_credit_balance{account},
 * upstream_minutes_balance{account} and upstream_balance_updated_seconds{account} (unix time of
 * the last good poll) are gauges with a sample only once the account had a good poll (a family
 * without samples before: no fake zero balance for an alert to fire on); balance_polls_total
 * {account}, balance_poll_failures_total{account}, balance_polls_skipped_total{account} are
 * counters; balance_poll_seconds is the configured period.
 *
 * Several replicas: each polls on its own (two cheap GETs per account and period each); the
 * values are the upstream's, so every replica shows the same balance.
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_BALANCE_H
#define A3D_GATEWAY_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#define GW_BALANCE_OBSERVERS_MAX 8	/* gw_balance_on_update registrations; more are refused,
					 * counted */
#define GW_BALANCE_ERR_MAX 256		/* a parse or poll failure's text */

/* ---- the pure part (unit tested) ---- */

/* Which answer a body is. */
enum gw_balance_kind {
	GW_BALANCE_CREDITS = 0,		/* GET /account/creditBalance -> {"credits": <number>} */
	GW_BALANCE_MINUTES = 1,		/* GET /account/minutesBalance -> {"minutes": <number>} */
};

/*
 * Reads the number out of a 2xx body of kind k, with the same translation the Account RPCs use
 * (gateway/api/translate.h: the field must be present and a finite JSON number; other fields
 * are ignored). 0 and *out set, or -1 with err (errlen bytes, GW_BALANCE_ERR_MAX is enough)
 * saying why and *out untouched. body need not be NUL-terminated.
 */
int gw_balance_parse(enum gw_balance_kind k, const char *body, size_t len, double *out, char *err,
		     size_t errlen);

/* ---- the poller ---- */

struct gw_env;
struct gw_svc;
struct gw_balance;

extern const struct gw_svc gw_svc_balance;

/* The poller of env, or NULL when the service is not registered (gateway/methods.c). */
struct gw_balance *gw_balance_of(const struct gw_env *env);

/*
 * The last good poll of account (a configured account name): 0 with *credits, *minutes and
 * *at_ms (unix ms of that poll) set; 1 when the account has had no good poll yet (the outputs
 * are untouched); -1 when b is NULL or there is no such account. Any output pointer may be NULL.
 */
int gw_balance_get(const struct gw_balance *b, const char *account, double *credits,
		   double *minutes, int64_t *at_ms);

/* One good poll's values. */
struct gw_balance_sample {
	double credits;
	double minutes;
	int64_t at_ms;			/* unix ms when the poll ended */
};

/*
 * Called on the loop after every good poll of an account: cur is the new sample, prev the one
 * it replaced, or NULL on the account's first good poll in this process. account, cur and prev
 * are valid during the call only. The callback must not call gw_balance_on_update.
 * (Issue 22's reconciliation compares the deltas of these with the usage it recorded.)
 */
typedef void (*gw_balance_update_fn)(void *arg, const char *account,
				     const struct gw_balance_sample *cur,
				     const struct gw_balance_sample *prev);

/*
 * Registers fn(arg, ...) for every later good poll; observers run in registration order.
 * 0, or -1 when b is NULL, fn is NULL or GW_BALANCE_OBSERVERS_MAX are registered (counted).
 * Register from a service's init or start; registrations last until the poller is freed.
 */
int gw_balance_on_update(struct gw_balance *b, gw_balance_update_fn fn, void *arg);

#endif
