/*
 * retry: full-jitter exponential backoff and a retry budget.
 *
 * Pure: randomness comes from a caller-owned PRNG state (xorshift64*), time from the caller; no
 * globals, no I/O.
 *
 * The budget keeps retries to a fraction of requests (default 20%) so that a dead upstream sees at
 * most 1.2x the offered load: every first attempt deposits `percent` hundredths of a token, every
 * retry withdraws one whole token, and the balance is capped at max_tokens (the burst of retries
 * allowed after a quiet period). Integer arithmetic: the ratio holds exactly over any window.
 */
#ifndef A3D_GATEWAY_RETRY_H
#define A3D_GATEWAY_RETRY_H

#include <stdint.h>

#define GW_RETRY_DEFAULT_BASE_MS 50		/* first backoff ceiling */
#define GW_RETRY_DEFAULT_CAP_MS 2000		/* no backoff ceiling above this */
#define GW_RETRY_DEFAULT_MAX_ATTEMPTS 3		/* first try + 2 retries */
#define GW_RETRY_DEFAULT_MIN_LEFT_MS 200	/* never retry with less than this left after the delay */
#define GW_RETRY_BUDGET_DEFAULT_PERCENT 20	/* retries <= 20% of requests */
#define GW_RETRY_BUDGET_DEFAULT_MAX 10		/* retries in a burst after a quiet period */
#define GW_RETRY_BUDGET_MAX_TOKENS 1000000u	/* max_tokens above this is clamped */

/* Next value of a xorshift64* generator; *state must be non-zero (0 is replaced by a constant). */
uint64_t gw_retry_rand(uint64_t *state);

/*
 * Full jitter: a uniform delay in [0, min(cap_ms, base_ms * 2^attempt)] (attempt 0 = before the
 * first retry). base_ms <= 0 gives 0; cap_ms < 0 counts as 0; no overflow for any attempt.
 */
long gw_backoff_ms(unsigned attempt, long base_ms, long cap_ms, uint64_t *prng);

struct gw_retry_policy {
	long base_ms, cap_ms;
	unsigned max_attempts;		/* including the first; 1 = never retry */
	long min_left_ms;
};
#define GW_RETRY_POLICY_DEFAULT \
	{ GW_RETRY_DEFAULT_BASE_MS, GW_RETRY_DEFAULT_CAP_MS, GW_RETRY_DEFAULT_MAX_ATTEMPTS, \
	  GW_RETRY_DEFAULT_MIN_LEFT_MS }

/*
 * The delay before retry number `attempt` (1 = the first retry, after the first try failed), or -1
 * when no retry fits: attempt >= max_attempts, or the delay plus min_left_ms does not fit in
 * time_left_ms (time_left_ms < 0 = no deadline: only max_attempts bounds it).
 * attempt 0 is not a retry and returns -1. The backoff ceiling for retry n is base_ms * 2^(n-1).
 */
long gw_retry_delay_ms(const struct gw_retry_policy *p, unsigned attempt, long time_left_ms,
		       uint64_t *prng);

struct gw_retry_budget {
	int64_t balance;	/* hundredths of a token, 0..cap */
	int64_t cap;		/* max_tokens * 100 */
	unsigned percent;	/* deposited per request, hundredths */
	uint64_t requests;	/* first attempts seen */
	uint64_t retries;	/* retries granted */
	uint64_t denied;	/* retries refused for lack of budget */
};

/* A full budget (max_tokens retries ready; 0 counts as 1, the least that allows any retry).
 * percent 0 = no retries at all; > 100 is clamped. */
void gw_retry_budget_init(struct gw_retry_budget *b, unsigned percent, unsigned max_tokens);
/* One first attempt went out: deposit. */
void gw_retry_budget_request(struct gw_retry_budget *b);
/* May one retry go out? 1 = yes (a token was withdrawn), 0 = no (counted in denied). */
int gw_retry_budget_withdraw(struct gw_retry_budget *b);

#endif
