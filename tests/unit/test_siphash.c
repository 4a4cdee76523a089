/* Unit tests for gateway/base/siphash.c: SipHash-2-4-128 against OpenSSL's SIPHASH MAC (the
 * reference vectors' layout: key 00..0f, message 00 01 02 ... of every length 0..64), and on
 * other keys. */
#include <criterion/criterion.h>

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "gateway/base/siphash.h"

static void openssl_siphash(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t out[16])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t size = 16, outl = 0;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
				OSSL_PARAM_construct_end() };

	cr_assert_not_null(ctx, "OpenSSL has no SIPHASH");
	cr_assert_eq(EVP_MAC_init(ctx, key, 16, params), 1);
	cr_assert_eq(EVP_MAC_update(ctx, in, len), 1);
	cr_assert_eq(EVP_MAC_final(ctx, out, &outl, 16), 1);
	cr_assert_eq(outl, 16);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
}

Test(siphash, reference_layout_matches_openssl)
{
	uint8_t key[16], msg[64], got[16], want[16];

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	for (size_t len = 0; len <= sizeof msg; len++) {
		gw_siphash128(key, msg, len, got);
		openssl_siphash(key, msg, len, want);
		cr_expect_eq(memcmp(got, want, 16), 0, "length %zu", len);
	}
}

/* Keys and messages as the API key cache uses them: the output depends on every key byte. */
static const struct {
	const char *key;	/* 16 bytes */
	const char *msg;
} cases[] = {
	{ "0123456789abcdef", "" },
	{ "0123456789abcdef", "demo-key-a" },
	{ "0123456789abcdeF", "demo-key-a" },
	{ "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0", "demo-key-viewer" },
	{ "kkkkkkkkkkkkkkkk", "a key of exactly thirty-two bytes" },
};

Test(siphash, other_keys_match_openssl)
{
	uint8_t got[16], want[16], other[16];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const uint8_t *k = (const uint8_t *)cases[i].key;
		size_t n = strlen(cases[i].msg);

		gw_siphash128(k, cases[i].msg, n, got);
		openssl_siphash(k, (const uint8_t *)cases[i].msg, n, want);
		cr_expect_eq(memcmp(got, want, 16), 0, "case %zu", i);
	}
	/* one key bit apart: unrelated outputs */
	gw_siphash128((const uint8_t *)cases[1].key, "demo-key-a", 10, got);
	gw_siphash128((const uint8_t *)cases[2].key, "demo-key-a", 10, other);
	cr_expect_neq(memcmp(got, other, 16), 0);
}
