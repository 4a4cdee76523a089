/*
 * retry: backoff with full jitter and the retry budget. See retry.h.
 */
#include "gateway/base/retry.h"

#include <stddef.h>

uint64_t gw_retry_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

long gw_backoff_ms(unsigned attempt, long base_ms, long cap_ms, uint64_t *prng)
{
	uint64_t ceil_ms, r;

	if (base_ms <= 0 || cap_ms <= 0)
		return 0;
	/* base * 2^attempt, saturating at cap without ever shifting past the width. */
	if (attempt >= 62 || (uint64_t)base_ms > ((uint64_t)cap_ms >> attempt))
		ceil_ms = (uint64_t)cap_ms;
	else
		ceil_ms = (uint64_t)base_ms << attempt;
	if (ceil_ms > (uint64_t)cap_ms)
		ceil_ms = (uint64_t)cap_ms;
	r = gw_retry_rand(prng);
	/* Modulo bias is at most ceil_ms / 2^64: nothing for millisecond ceilings. */
	return (long)(r % (ceil_ms + 1));
}

long gw_retry_delay_ms(const struct gw_retry_policy *p, unsigned attempt, long time_left_ms,
		       uint64_t *prng)
{
	long d;

	if (!p || attempt == 0 || attempt >= p->max_attempts)
		return -1;
	d = gw_backoff_ms(attempt - 1, p->base_ms, p->cap_ms, prng);
	if (time_left_ms >= 0 && d + (p->min_left_ms > 0 ? p->min_left_ms : 0) > time_left_ms)
		return -1;
	return d;
}

void gw_retry_budget_init(struct gw_retry_budget *b, unsigned percent, unsigned max_tokens)
{
	if (percent > 100)
		percent = 100;
	if (max_tokens == 0)
		max_tokens = 1;	/* a retry needs one whole token in the balance */
	if (max_tokens > GW_RETRY_BUDGET_MAX_TOKENS)
		max_tokens = GW_RETRY_BUDGET_MAX_TOKENS;
	b->percent = percent;
	b->cap = percent ? (int64_t)max_tokens * 100 : 0;
	b->balance = b->cap;
	b->requests = b->retries = b->denied = 0;
}

void gw_retry_budget_request(struct gw_retry_budget *b)
{
	b->requests++;
	b->balance += b->percent;
	if (b->balance > b->cap)
		b->balance = b->cap;
}

int gw_retry_budget_withdraw(struct gw_retry_budget *b)
{
	if (b->balance < 100) {
		b->denied++;
		return 0;
	}
	b->balance -= 100;
	b->retries++;
	return 1;
}
