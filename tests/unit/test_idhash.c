/* Unit tests for gateway/base/idhash.c: equal input, equal hash; a byte, the length or the seed
 * changed, another hash (tables of inputs); and how evenly rid-like ids spread over buckets. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/base/idhash.h"

/* Pairs that must hash apart (same seed). */
static const struct {
	const char *a, *b;
	size_t alen, blen;	/* 0: strlen */
} idhash_apart[] = {
	{ "", "a", 0, 0 },
	{ "a", "b", 0, 0 },
	{ "a", "a\0", 1, 2 },			/* the length counts, NULs included */
	{ "abcdefg", "abcdefh", 0, 0 },		/* 7 bytes: the byte loop */
	{ "abcdefgh", "abcdefgi", 0, 0 },	/* 8: one step */
	{ "abcdefghi", "abcdefghj", 0, 0 },	/* 9: a step and an overlapping tail */
	{ "abcdefghi", "bbcdefghi", 0, 0 },	/* the first byte of a long one */
	{ "4bHxLEa3m8jZL9uPXqoq1v", "4bHxLEa3m8jZL9uPXqoq1w", 0, 0 },	/* a rid's last byte */
	{ "4bHxLEa3m8jZL9uPXqoq1v", "4bHxLEa3m8jZL9uPXqop1v", 0, 0 },	/* inside the overlap */
	{ "4bHxLEa3m8jZL9uPXqoq1v", "5bHxLEa3m8jZL9uPXqoq1v", 0, 0 },
	{ "4bHxLEa3m8jZL9uPXqoq1v", "4bHxLEa3m8jZL9uPXqoq1", 0, 0 },	/* one byte shorter */
};

Test(idhash, same_input_same_hash)
{
	const char *ids[] = { "", "x", "0123456", "01234567", "4bHxLEa3m8jZL9uPXqoq1v",
			      "a-much-longer-identifier-of-forty-bytes!" };

	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		char copy[64];

		snprintf(copy, sizeof copy, "%s", ids[i]);
		cr_expect_eq(gw_idhash(7, ids[i], strlen(ids[i])), gw_idhash(7, copy, strlen(copy)),
			     "%s", ids[i]);
	}
	cr_expect_eq(gw_idhash(0, NULL, 0), gw_idhash(0, "", 0));
}

Test(idhash, a_changed_byte_or_length_hashes_apart)
{
	for (size_t i = 0; i < sizeof idhash_apart / sizeof idhash_apart[0]; i++) {
		size_t al = idhash_apart[i].alen ? idhash_apart[i].alen : strlen(idhash_apart[i].a);
		size_t bl = idhash_apart[i].blen ? idhash_apart[i].blen : strlen(idhash_apart[i].b);

		cr_expect_neq(gw_idhash(1, idhash_apart[i].a, al), gw_idhash(1, idhash_apart[i].b, bl),
			      "row %zu", i);
	}
}

Test(idhash, the_seed_separates_tables)
{
	const char *rid = "4bHxLEa3m8jZL9uPXqoq1v";

	for (uint64_t s = 0; s < 8; s++)
		cr_expect_neq(gw_idhash(s, rid, strlen(rid)), gw_idhash(s + 1, rid, strlen(rid)),
			      "seed %llu", (unsigned long long)s);
}

/* 65536 rid-like ids (a fixed prefix, a counter in base 58 at the end, as sequential ids would
 * come) over 4096 buckets: no bucket far above the mean of 16. */
Test(idhash, sequential_ids_spread_over_buckets)
{
	static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
	static unsigned count[4096];
	unsigned most = 0;
	char id[23];

	memset(count, 0, sizeof count);
	for (unsigned n = 0; n < 65536; n++) {
		unsigned v = n;

		memcpy(id, "4bHxLEa3m8jZL9uPXqoq1v", sizeof id);
		for (int k = 21; k >= 18; k--, v /= 58)
			id[k] = b58[v % 58];
		count[gw_idhash(3, id, 22) & 4095]++;
	}
	for (size_t b = 0; b < 4096; b++)
		most = count[b] > most ? count[b] : most;
	cr_expect_leq(most, 48, "fullest bucket %u (mean 16)", most);
}
