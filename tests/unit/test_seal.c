/*
 * Unit tests for auth/upstream/seal.c: round trips, then a table of what must be refused (another
 * key, another context, every single byte changed, every truncation, an appended byte, another
 * version), and fresh nonces per seal.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>

#include "auth/upstream/seal.h"

static const uint8_t k1[GW_SEAL_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const uint8_t k2[GW_SEAL_KEY_LEN] = "0123456789abcdef0123456789abcdeF";
#define AAD "a3d:session:sim"
#define PLAIN "1767225600000:dmsess-value-not-a-real-one"

Test(seal, round_trip_table)
{
	static const struct {
		const char *aad, *plain;
	} t[] = {
		{ AAD, PLAIN }, { "", PLAIN }, { AAD, "" }, { AAD, "x" },
		{ "a3d:session:acct-with-a-long-name", "1:" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint8_t sealed[256], back[256];
		size_t plen = strlen(t[i].plain);
		long n = gw_seal(k1, t[i].aad, strlen(t[i].aad), t[i].plain, plen, sealed, sizeof sealed);
		long m;

		cr_assert_eq(n, (long)(plen + GW_SEAL_OVERHEAD), "case %zu", i);
		cr_expect_eq(sealed[0], GW_SEAL_VERSION);
		if (plen >= 8)
			cr_expect_null(memmem(sealed, (size_t)n, t[i].plain, 8), "case %zu: plaintext visible", i);
		m = gw_seal_open(k1, t[i].aad, strlen(t[i].aad), sealed, (size_t)n, back, sizeof back);
		cr_assert_eq(m, (long)plen, "case %zu", i);
		cr_expect_eq(memcmp(back, t[i].plain, plen), 0, "case %zu", i);
	}
}

Test(seal, refusals_table)
{
	uint8_t sealed[256], back[256], bad[260];
	size_t plen = strlen(PLAIN);
	long n = gw_seal(k1, AAD, strlen(AAD), PLAIN, plen, sealed, sizeof sealed);
	static const struct {
		const char *what;
		int key2;
		const char *aad;
	} t[] = {
		{ "wrong key", 1, AAD },
		{ "another account (AAD)", 0, "a3d:session:other" },
		{ "another prefix (AAD)", 0, "b3d:session:sim" },
		{ "empty AAD", 0, "" },
		{ "AAD with a trailing byte", 0, AAD "x" },
	};

	cr_assert_gt(n, 0);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		memset(back, 0x55, sizeof back);
		cr_expect_eq(gw_seal_open(t[i].key2 ? k2 : k1, t[i].aad, strlen(t[i].aad), sealed,
					  (size_t)n, back, sizeof back), -1, "%s", t[i].what);
		cr_expect_null(memmem(back, sizeof back, "dmsess", 6), "%s: plaintext left", t[i].what);
	}
	/* Every byte flipped (version, nonce, ciphertext, tag): refused. */
	for (long i = 0; i < n; i++) {
		memcpy(bad, sealed, (size_t)n);
		bad[i] ^= 0x01;
		cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), bad, (size_t)n, back, sizeof back), -1,
			     "byte %ld flipped", i);
	}
	/* Every truncation, and one byte more: refused. */
	for (long len = 0; len < n; len++)
		cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), sealed, (size_t)len, back, sizeof back),
			     -1, "truncated to %ld", len);
	memcpy(bad, sealed, (size_t)n);
	bad[n] = 0;
	cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), bad, (size_t)n + 1, back, sizeof back), -1);
	/* Too small an output buffer: refused, nothing written past it. */
	cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), sealed, (size_t)n, back, plen - 1), -1);
	cr_expect_eq(gw_seal(k1, AAD, strlen(AAD), PLAIN, plen, bad, plen + GW_SEAL_OVERHEAD - 1), -1);
	/* Oversized inputs. */
	static uint8_t big[GW_SEAL_PLAIN_MAX + 1], bigout[GW_SEAL_PLAIN_MAX + 64];
	cr_expect_eq(gw_seal(k1, AAD, strlen(AAD), big, sizeof big, bigout, sizeof bigout), -1);
	cr_expect_eq(gw_seal(k1, big, GW_SEAL_AAD_MAX + 1, "x", 1, bigout, sizeof bigout), -1);
	/* Still opens with the right key and AAD. */
	cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), sealed, (size_t)n, back, sizeof back), (long)plen);
}

Test(seal, fresh_nonce_and_fixed_nonce)
{
	uint8_t a[128], b[128], c[128], d[128];
	static const uint8_t nonce[GW_SEAL_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	size_t plen = strlen(PLAIN);
	long na = gw_seal(k1, AAD, strlen(AAD), PLAIN, plen, a, sizeof a);
	long nb = gw_seal(k1, AAD, strlen(AAD), PLAIN, plen, b, sizeof b);

	cr_assert(na > 0 && na == nb);
	cr_expect_neq(memcmp(a + 1, b + 1, GW_SEAL_NONCE_LEN), 0, "a nonce repeated");
	cr_expect_neq(memcmp(a, b, (size_t)na), 0);
	/* A given nonce is deterministic (and what it seals opens like any other). */
	cr_assert_eq(gw_seal_with_nonce(k1, nonce, AAD, strlen(AAD), PLAIN, plen, c, sizeof c), na);
	cr_assert_eq(gw_seal_with_nonce(k1, nonce, AAD, strlen(AAD), PLAIN, plen, d, sizeof d), na);
	cr_expect_eq(memcmp(c, d, (size_t)na), 0);
	cr_expect_eq(memcmp(c + 1, nonce, sizeof nonce), 0);
	cr_expect_eq(gw_seal_open(k1, AAD, strlen(AAD), c, (size_t)na, d, sizeof d), (long)plen);
}
