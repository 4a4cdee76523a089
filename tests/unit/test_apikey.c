/* Unit tests for auth/caller/apikey.c: "authorization" values in, (tenant, perms) or refusal out. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "auth/caller/apikey.h"
#include "auth/caller/perm.h"

#define RW (GW_PERM_READ | GW_PERM_WRITE)

static char long_key[GW_APIKEY_MAX_LEN + 2];	/* GW_APIKEY_MAX_LEN + 1 'x' */
static char max_key[GW_APIKEY_MAX_LEN + 1];	/* GW_APIKEY_MAX_LEN 'y' */

static struct gw_key_cfg keys_a[1], keys_b[3];
static struct gw_tenant_cfg tenants[2];
static struct gw_config cfg;

static void hash(const char *key, uint8_t out[32])
{
	SHA256((const unsigned char *)key, strlen(key), out);
}

/* Two tenants, four keys, built in memory: the keyring never looks at anything but the hashes. */
static void setup(void)
{
	memset(long_key, 'x', GW_APIKEY_MAX_LEN + 1);
	memset(max_key, 'y', GW_APIKEY_MAX_LEN);
	hash("key-a", keys_a[0].sha256);
	keys_a[0].perms = RW;
	hash("key-b", keys_b[0].sha256);
	keys_b[0].perms = RW;
	hash("key-ro", keys_b[1].sha256);
	keys_b[1].perms = GW_PERM_READ;
	hash(long_key, keys_b[2].sha256);	/* known, but too long to be accepted */
	keys_b[2].perms = RW;
	tenants[0] = (struct gw_tenant_cfg){ .name = "team-a", .keys = keys_a, .nkeys = 1 };
	tenants[1] = (struct gw_tenant_cfg){ .name = "team-b", .keys = keys_b, .nkeys = 3 };
	cfg = (struct gw_config){ .tenants = tenants, .ntenants = 2 };
}

TestSuite(apikey, .init = setup);

struct lookup_case {
	const char *value;
	int rc;
	size_t tenant;
	unsigned perms;
};

Test(apikey, lookup_table)
{
	static char with_max[GW_APIKEY_MAX_LEN + 16], with_long[GW_APIKEY_MAX_LEN + 16];
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);

	cr_assert_not_null(r);
	cr_expect_eq(gw_apikey_ring_size(r), 4);
	snprintf(with_long, sizeof(with_long), "Bearer %s", long_key);
	/* max_key is not in the ring: a key of the maximum length is looked up, and unknown. */
	snprintf(with_max, sizeof(with_max), "Bearer %s", max_key);
	const struct lookup_case cases[] = {
		{ "Bearer key-a", 0, 0, RW },
		{ "bearer key-a", 0, 0, RW },
		{ "BEARER   key-b  ", 0, 1, RW },
		{ "Bearer\tkey-ro", 0, 1, GW_PERM_READ },
		{ "  Bearer key-ro", 0, 1, GW_PERM_READ },
		{ "Bearer key-c", -1, 0, 0 },
		{ "Bearer KEY-A", -1, 0, 0 },	/* keys are case-sensitive */
		{ "key-a", -1, 0, 0 },
		{ "Bearer ", -1, 0, 0 },
		{ "Bearer", -1, 0, 0 },
		{ "Basic key-a", -1, 0, 0 },
		{ "Bearerkey-a", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ with_long, -1, 0, 0 },
		{ with_max, -1, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t t = 99;
		unsigned p = 99;
		int rc = gw_apikey_lookup(r, cases[i].value, strlen(cases[i].value), &t, &p);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%.20s): rc %d", i, cases[i].value, rc);
		if (cases[i].rc == 0) {
			cr_expect_eq(t, cases[i].tenant, "case %zu: tenant %zu", i, t);
			cr_expect_eq(p, cases[i].perms, "case %zu: perms %u", i, p);
		} else {
			cr_expect_eq(t, 99, "case %zu: tenant written on failure", i);
			cr_expect_eq(p, 99, "case %zu: perms written on failure", i);
		}
	}
	gw_apikey_ring_free(r);
}

Test(apikey, length_argument_is_honoured)
{
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);
	const char v[] = "Bearer key-abc";
	size_t t;
	unsigned p;

	cr_assert_not_null(r);
	cr_expect_eq(gw_apikey_lookup(r, v, strlen("Bearer key-a"), &t, &p), 0);	/* not NUL-terminated there */
	cr_expect_eq(t, 0);
	cr_expect_eq(gw_apikey_lookup(r, v, strlen(v), &t, &p), -1);
	cr_expect_eq(gw_apikey_lookup(r, v, 0, &t, &p), -1);
	cr_expect_eq(gw_apikey_lookup(r, NULL, 5, &t, &p), -1);
	cr_expect_eq(gw_apikey_lookup(NULL, v, strlen(v), &t, &p), -1);
	gw_apikey_ring_free(r);
}

Test(apikey, empty_ring_refuses_everything)
{
	struct gw_config empty = { 0 };
	struct gw_keyring *r = gw_apikey_ring_new(&empty);
	size_t t;
	unsigned p;

	cr_assert_not_null(r);
	cr_expect_eq(gw_apikey_ring_size(r), 0);
	cr_expect_eq(gw_apikey_lookup(r, "Bearer key-a", 12, &t, &p), -1);
	gw_apikey_ring_free(r);
	cr_expect_null(gw_apikey_ring_new(NULL));
	gw_apikey_ring_free(NULL);
}

Test(apikey, ring_is_independent_of_the_config)
{
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);
	size_t t;
	unsigned p;

	cr_assert_not_null(r);
	memset(keys_a, 0, sizeof(keys_a));	/* a reload frees the old config; the ring must not care */
	cr_expect_eq(gw_apikey_lookup(r, "Bearer key-a", 12, &t, &p), 0);
	gw_apikey_ring_free(r);
}

Test(apikey, fingerprint_is_a_short_hash_prefix)
{
	static const char *const keys[] = { "demo-key-a", "demo-key-b", "" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint8_t d[32];
		char want[13], got[13];

		SHA256((const unsigned char *)keys[i], strlen(keys[i]), d);
		snprintf(want, sizeof(want), "k:%02x%02x%02x%02x%02x", d[0], d[1], d[2], d[3], d[4]);
		memset(got, '#', sizeof(got));
		gw_apikey_fingerprint(keys[i], strlen(keys[i]), got);
		cr_expect_str_eq(got, want, "key %zu", i);
		if (*keys[i])
			cr_expect_null(strstr(got, keys[i]));
	}
}

/* The ring's digest context is reused by every lookup: answers must not depend on what the
 * previous lookup was (a hit, an unknown key, a key refused before hashing). */
Test(apikey, lookups_on_one_ring_are_independent)
{
	static const struct lookup_case seq[] = {
		{ "Bearer key-a", 0, 0, RW },
		{ "Bearer key-c", -1, 0, 0 },
		{ "Bearer key-ro", 0, 1, GW_PERM_READ },
		{ "Bearer ", -1, 0, 0 },
		{ "Bearer key-b", 0, 1, RW },
		{ "Bearer key-", -1, 0, 0 },
	};
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);

	cr_assert_not_null(r);
	for (size_t round = 0; round < 50; round++) {
		for (size_t j = 0; j < sizeof(seq) / sizeof(seq[0]); j++) {
			/* Odd rounds walk the sequence backwards: every case follows every other. */
			size_t i = round % 2 ? sizeof(seq) / sizeof(seq[0]) - 1 - j : j;
			size_t t = 99;
			unsigned p = 99;
			int rc = gw_apikey_lookup(r, seq[i].value, strlen(seq[i].value), &t, &p);

			cr_expect_eq(rc, seq[i].rc, "round %zu case %zu: rc %d", round, i, rc);
			if (seq[i].rc == 0) {
				cr_expect_eq(t, seq[i].tenant, "round %zu case %zu", round, i);
				cr_expect_eq(p, seq[i].perms, "round %zu case %zu", round, i);
			}
		}
	}
	gw_apikey_ring_free(r);
}

/* By hash (a REST facade session's key): the same answers as by value, nothing for other hashes. */
Test(apikey, lookup_by_hash)
{
	static const struct {
		const char *key;
		int rc;
		size_t tenant;
		unsigned perms;
	} cases[] = {
		{ "key-a", 0, 0, RW }, { "key-ro", 0, 1, GW_PERM_READ }, { "key-c", -1, 0, 0 },
	};
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);

	cr_assert_not_null(r);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t h[32];
		size_t t = 99;
		unsigned p = 99;

		hash(cases[i].key, h);
		cr_expect_eq(gw_apikey_lookup_hash(r, h, &t, &p), cases[i].rc, "%s", cases[i].key);
		if (cases[i].rc == 0) {
			cr_expect_eq(t, cases[i].tenant, "%s", cases[i].key);
			cr_expect_eq(p, cases[i].perms, "%s", cases[i].key);
		}
	}
	{
		static const uint8_t zero[32];

		cr_expect_eq(gw_apikey_lookup_hash(NULL, zero, &(size_t){ 0 }, &(unsigned){ 0 }), -1);
	}
	gw_apikey_ring_free(r);
}
