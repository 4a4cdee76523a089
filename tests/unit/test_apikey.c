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

/* Verified keys are remembered by their keyed hash: a repeated key is answered from there, with
 * the same answer; unknown keys are never remembered; a key one character off a remembered one
 * is not found there (it is hashed and refused). Each step: value, rc, tenant, perms, and
 * whether it was a hit of the remembered keys. */
Test(apikey, verified_keys_remembered)
{
	static const struct {
		const char *value;
		int rc;
		size_t tenant;
		unsigned perms;
		int hit;
	} seq[] = {
		{ "Bearer key-a", 0, 0, RW, 0 },
		{ "Bearer key-a", 0, 0, RW, 1 },
		{ "bearer   key-a ", 0, 0, RW, 1 },	/* the key, not the header, is remembered */
		{ "Bearer key-b", 0, 1, RW, 0 },
		{ "Bearer key-ro", 0, 1, GW_PERM_READ, 0 },
		{ "Bearer key-ro", 0, 1, GW_PERM_READ, 1 },
		{ "Bearer key-c", -1, 0, 0, 0 },
		{ "Bearer key-c", -1, 0, 0, 0 },	/* unknown: hashed again, never remembered */
		{ "Bearer key-r", -1, 0, 0, 0 },	/* a prefix of a remembered key */
		{ "Bearer key-ro2", -1, 0, 0, 0 },
		{ "Bearer KEY-A", -1, 0, 0, 0 },
		{ "Bearer key-b", 0, 1, RW, 1 },
		{ "Bearer key-a", 0, 0, RW, 1 },
	};
	struct gw_keyring *r = gw_apikey_ring_new(&cfg);

	cr_assert_not_null(r);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		uint64_t hits = gw_apikey_ring_stats(r)->seen_hits;
		size_t t = 99;
		unsigned p = 99;
		int rc = gw_apikey_lookup(r, seq[i].value, strlen(seq[i].value), &t, &p);

		cr_expect_eq(rc, seq[i].rc, "step %zu: rc %d", i, rc);
		cr_expect_eq(gw_apikey_ring_stats(r)->seen_hits - hits, (uint64_t)seq[i].hit, "step %zu: hit", i);
		if (seq[i].rc == 0) {
			cr_expect_eq(t, seq[i].tenant, "step %zu: tenant %zu", i, t);
			cr_expect_eq(p, seq[i].perms, "step %zu: perms %u", i, p);
		} else {
			cr_expect_eq(t, 99, "step %zu: tenant written on failure", i);
		}
	}
	cr_expect_eq(gw_apikey_ring_stats(r)->seen_misses, 3);
	cr_expect_null(gw_apikey_ring_stats(NULL));
	gw_apikey_ring_free(r);
}

/* More keys than the ring remembers: every answer stays exact while entries are replaced. */
Test(apikey, remembered_keys_bounded_and_exact)
{
	enum { NKEYS = 3 * GW_APIKEY_SEEN_MAX };
	static struct gw_key_cfg many[NKEYS];
	static char names[NKEYS][24];
	struct gw_tenant_cfg ts[2] = {
		{ .name = "even", .keys = many, .nkeys = NKEYS },
		{ .name = "none" },
	};
	struct gw_config c = { .tenants = ts, .ntenants = 2 };
	struct gw_keyring *r;
	char value[48];

	for (size_t i = 0; i < NKEYS; i++) {
		snprintf(names[i], sizeof(names[i]), "many-%zu", i);
		hash(names[i], many[i].sha256);
		many[i].perms = i % 2 ? GW_PERM_READ : RW;
	}
	r = gw_apikey_ring_new(&c);
	cr_assert_not_null(r);
	for (size_t round = 0; round < 3; round++) {
		for (size_t i = 0; i < NKEYS; i++) {
			size_t t = 99;
			unsigned p = 99;

			snprintf(value, sizeof(value), "Bearer %s", names[i]);
			cr_expect_eq(gw_apikey_lookup(r, value, strlen(value), &t, &p), 0, "key %zu", i);
			cr_expect_eq(t, 0);
			cr_expect_eq(p, i % 2 ? GW_PERM_READ : RW, "key %zu", i);
			snprintf(value, sizeof(value), "Bearer %s-x", names[i]);
			cr_expect_eq(gw_apikey_lookup(r, value, strlen(value), &t, &p), -1, "key %zu-x", i);
		}
	}
	cr_expect_gt(gw_apikey_ring_stats(r)->seen_replaced, 0);
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
