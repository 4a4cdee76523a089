/* Unit tests for gateway/rest.c's pure part (the listener itself: tests/integration/test_rest.py). */
#include <criterion/criterion.h>

#include "gateway/rest.h"

static const struct {
	long retry_ms;
	long seconds;
} retry_cases[] = {
	{ -1, 1 }, { 0, 1 }, { 1, 1 }, { 999, 1 }, { 1000, 1 }, { 1001, 2 }, { 2500, 3 },
	{ 3600000, 3600 },
};

Test(rest, retry_after_rounds_up_to_whole_seconds)
{
	for (size_t i = 0; i < sizeof retry_cases / sizeof retry_cases[0]; i++)
		cr_expect_eq(gw_rest_retry_after_s(retry_cases[i].retry_ms), retry_cases[i].seconds,
			     "%ld ms", retry_cases[i].retry_ms);
}
