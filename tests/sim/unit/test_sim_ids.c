/* sim_ids: base58 ids and the seeded PRNG. */
#include <criterion/criterion.h>
#include <string.h>

#include "sim_ids.h"

Test(sim_ids, new_ids_are_valid_and_distinct)
{
	uint64_t st = 42;
	char a[SIM_IDS_LEN + 1], b[SIM_IDS_LEN + 1];

	for (int i = 0; i < 1000; i++) {
		sim_ids_new(&st, a, SIM_IDS_LEN);
		sim_ids_new(&st, b, SIM_IDS_LEN);
		cr_assert(sim_ids_valid(a), "%s", a);
		cr_assert_str_neq(a, b);
		cr_assert_eq(strcspn(a, "0OIl"), SIM_IDS_LEN, "no ambiguous base58 characters in %s", a);
	}
}

Test(sim_ids, same_seed_same_sequence)
{
	uint64_t s1 = 7, s2 = 7, s3 = 8;
	char a[SIM_IDS_LEN + 1], b[SIM_IDS_LEN + 1], c[SIM_IDS_LEN + 1];

	sim_ids_new(&s1, a, SIM_IDS_LEN);
	sim_ids_new(&s2, b, SIM_IDS_LEN);
	sim_ids_new(&s3, c, SIM_IDS_LEN);
	cr_expect_str_eq(a, b);
	cr_expect_str_neq(a, c);
}

Test(sim_ids, valid_table)
{
	static const struct { const char *s; int ok; } cases[] = {
		{ "123456789ABCDEFGHJKLMN", 1 },
		{ "123456789ABCDEFGHJKLM", 0 },		/* 21 */
		{ "123456789ABCDEFGHJKLMNP", 0 },	/* 23 */
		{ "0123456789ABCDEFGHJKLM", 0 },	/* '0' */
		{ "I23456789ABCDEFGHJKLMN", 0 },	/* 'I' */
		{ "l23456789ABCDEFGHJKLMN", 0 },	/* 'l' */
		{ "", 0 },
		{ NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sim_ids_valid(cases[i].s), cases[i].ok, "case %zu", i);
}

Test(sim_ids, rand01_in_range_and_spread)
{
	uint64_t st = 1;
	int below = 0;

	for (int i = 0; i < 10000; i++) {
		double d = sim_ids_rand01(&st);

		cr_assert(d >= 0.0 && d < 1.0);
		below += d < 0.5;
	}
	cr_expect(below > 4500 && below < 5500, "rate 0.5 hits %d of 10000", below);
}
