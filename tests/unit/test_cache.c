/* Unit tests for gateway/api/cache.c: TTL, finals, out-of-order answers, LRU eviction, links. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/api/cache.h"

#define P ANIMATE3D__V1__JOB_STATE__PROGRESS
#define S ANIMATE3D__V1__JOB_STATE__SUCCESS
#define R ANIMATE3D__V1__JOB_STATE__RETRY
#define F ANIMATE3D__V1__JOB_STATE__FAILURE

static void st_init(Animate3d__V1__JobStatus *st, const char *rid, int state, int64_t step)
{
	animate3d__v1__job_status__init(st);
	st->rid = (char *)rid;
	st->state = (Animate3d__V1__JobState)state;
	st->step = step;
	st->total = 100;
	if (state == S) {
		st->input_file = (char *)"clip.mp4";
		st->output_file = (char *)"clip.bvh";
	}
}

/* Stores (state, step) for rid "r1" as fetch seq at fetched_ms; returns gw_cache_put's rc. */
static int put(struct gw_cache *c, const char *rid, int state, int64_t step, uint64_t seq,
	       int64_t fetched_ms)
{
	Animate3d__V1__JobStatus st;

	st_init(&st, rid, state, step);
	return gw_cache_put(c, 0, &st, seq, fetched_ms);
}

/* Looks rid up at now: -1 on a miss, else state * 1000 + step. */
static long get(struct gw_cache *c, const char *rid, int64_t now)
{
	Animate3d__V1__JobStatus *st = NULL;
	long v;

	if (gw_cache_get(c, 0, rid, now, &st) != 1)
		return -1;
	cr_assert_str_eq(st->rid, rid);
	v = (long)st->state * 1000 + (long)st->step;
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return v;
}

/* TTL: a non-final entry stored at t=1000 with TTL 100 is served strictly before t=1100. */
static const struct {
	int state;
	int64_t now;
	long want;
} ttl_cases[] = {
	{ P, 1000, P * 1000 + 7 }, { P, 1099, P * 1000 + 7 }, { P, 1100, -1 }, { P, 5000, -1 },
	{ R, 1050, R * 1000 + 7 }, { R, 1100, -1 },
	{ S, 1099, S * 1000 + 7 }, { S, 1100, S * 1000 + 7 }, { S, 10000000, S * 1000 + 7 },
	{ F, 1100, F * 1000 + 7 }, { F, 999999, F * 1000 + 7 },
};

Test(cache, ttl_table)
{
	for (size_t i = 0; i < sizeof ttl_cases / sizeof ttl_cases[0]; i++) {
		struct gw_cache *c = gw_cache_new(10, 100);

		cr_assert(c);
		cr_assert_eq(put(c, "r1", ttl_cases[i].state, 7, 1, 1000), 1);
		cr_expect_eq(get(c, "r1", ttl_cases[i].now), ttl_cases[i].want,
			     "case %zu: got %ld want %ld", i, get(c, "r1", ttl_cases[i].now),
			     ttl_cases[i].want);
		gw_cache_free(c);
	}
}

/* Ordering: a first answer (state1, seq1) then a second (state2, seq2): what is served after,
 * and what the second put returns. Time stays inside the TTL. */
static const struct {
	int s1; uint64_t q1; int s2; uint64_t q2;
	int put_rc;
	int served;		/* state served afterwards */
	int64_t step;		/* step served afterwards */
} order_cases[] = {
	{ P, 1, P, 2, 1, P, 2 },	/* newer progress replaces older */
	{ P, 2, P, 1, 0, P, 1 },	/* older answer arriving late is ignored */
	{ P, 1, S, 2, 1, S, 2 },	/* final replaces progress */
	{ P, 2, S, 1, 0, P, 1 },	/* ... but not when it is from an older fetch */
	{ S, 1, P, 2, 0, S, 1 },	/* final never replaced by non-final, even newer */
	{ S, 2, P, 1, 0, S, 1 },
	{ S, 1, F, 2, 0, S, 1 },	/* finals are immutable */
	{ F, 1, P, 2, 0, F, 1 },
	{ R, 1, P, 2, 1, P, 2 },	/* RETRY is not final */
	{ P, 3, P, 3, 1, P, 2 },	/* same fetch stored twice: the later write wins */
};

Test(cache, out_of_order_table)
{
	for (size_t i = 0; i < sizeof order_cases / sizeof order_cases[0]; i++) {
		struct gw_cache *c = gw_cache_new(10, 1000);
		long got;

		cr_assert_eq(put(c, "r1", order_cases[i].s1, 1, order_cases[i].q1, 0), 1);
		cr_expect_eq(put(c, "r1", order_cases[i].s2, 2, order_cases[i].q2, 0),
			     order_cases[i].put_rc, "case %zu", i);
		got = get(c, "r1", 10);
		cr_expect_eq(got, order_cases[i].served * 1000 + order_cases[i].step,
			     "case %zu: got %ld", i, got);
		cr_expect_eq(gw_cache_counters(c)->stale_ignored, order_cases[i].put_rc ? 0u : 1u,
			     "case %zu", i);
		gw_cache_free(c);
	}
}

Test(cache, lru_eviction_tiny_limit)
{
	struct gw_cache *c = gw_cache_new(3, 1000);

	cr_assert_eq(put(c, "a", S, 1, 1, 0), 1);
	cr_assert_eq(put(c, "b", S, 2, 2, 0), 1);
	cr_assert_eq(put(c, "c", S, 3, 3, 0), 1);
	cr_expect_eq(get(c, "a", 0), S * 1000 + 1);	/* a is now most recent; b is LRU */
	cr_assert_eq(put(c, "d", S, 4, 4, 0), 1);
	cr_expect_eq(get(c, "b", 0), -1);
	cr_expect_eq(get(c, "a", 0), S * 1000 + 1);
	cr_expect_eq(get(c, "c", 0), S * 1000 + 3);
	cr_expect_eq(get(c, "d", 0), S * 1000 + 4);
	cr_expect_eq(gw_cache_counters(c)->evictions, 1);
	cr_expect_eq(gw_cache_counters(c)->entries, 3);
	/* Replacing an entry in place evicts nothing. */
	cr_assert_eq(put(c, "x", P, 1, 5, 0), 1);	/* evicts a: the gets above left d, c, a */
	cr_expect_eq(gw_cache_counters(c)->evictions, 2);
	cr_assert_eq(put(c, "x", P, 2, 6, 0), 1);
	cr_expect_eq(gw_cache_counters(c)->evictions, 2);
	cr_expect_eq(gw_cache_counters(c)->entries, 3);
	gw_cache_free(c);
}

Test(cache, many_entries_grow_and_stay_bounded)
{
	struct gw_cache *c = gw_cache_new(5000, 1000);
	char rid[32];
	size_t found = 0;

	for (int i = 0; i < 20000; i++) {
		snprintf(rid, sizeof rid, "rid%05d", i);
		cr_assert_eq(put(c, rid, S, i % 100, (uint64_t)i + 1, 0), 1);
	}
	cr_expect_eq(gw_cache_counters(c)->entries, 5000);
	cr_expect_eq(gw_cache_counters(c)->evictions, 15000);
	for (int i = 0; i < 20000; i++) {
		snprintf(rid, sizeof rid, "rid%05d", i);
		if (get(c, rid, 0) >= 0) {
			found++;
			cr_expect_geq(i, 15000, "rid %d should have been evicted", i);
		}
	}
	cr_expect_eq(found, 5000);
	gw_cache_free(c);
}

Test(cache, accounts_are_separate_keys)
{
	struct gw_cache *c = gw_cache_new(10, 1000);
	Animate3d__V1__JobStatus st;

	st_init(&st, "r1", S, 5);
	cr_assert_eq(gw_cache_put(c, 1, &st, 1, 0), 1);
	cr_expect_eq(gw_cache_get(c, 0, "r1", 0, NULL), 0);
	cr_expect_eq(gw_cache_get(c, 1, "r1", 0, NULL), 1);
	gw_cache_free(c);
}

Test(cache, counters_hits_misses_expired)
{
	struct gw_cache *c = gw_cache_new(10, 100);

	put(c, "p", P, 1, 1, 0);
	get(c, "p", 50);	/* hit */
	get(c, "p", 150);	/* expired miss */
	get(c, "zz", 0);	/* absent miss */
	cr_expect_eq(gw_cache_counters(c)->hits, 1);
	cr_expect_eq(gw_cache_counters(c)->misses, 2);
	cr_expect_eq(gw_cache_counters(c)->expired, 1);
	gw_cache_free(c);
}

Test(cache, invalidate_drops_only_non_final)
{
	struct gw_cache *c = gw_cache_new(10, 1000);

	put(c, "p", P, 1, 1, 0);
	put(c, "s", S, 1, 2, 0);
	cr_expect_eq(gw_cache_invalidate(c, 0, "p"), 1);
	cr_expect_eq(gw_cache_invalidate(c, 0, "s"), 0);
	cr_expect_eq(gw_cache_invalidate(c, 0, "none"), 0);
	cr_expect_eq(get(c, "p", 1), -1);
	cr_expect_eq(get(c, "s", 1), S * 1000 + 1);
	gw_cache_free(c);
}

Test(cache, bad_keys_rejected)
{
	struct gw_cache *c = gw_cache_new(10, 1000);
	char longrid[100];

	memset(longrid, 'a', sizeof longrid - 1);
	longrid[sizeof longrid - 1] = '\0';
	cr_expect_eq(put(c, "", S, 1, 1, 0), -1);
	cr_expect_eq(put(c, longrid, S, 1, 1, 0), -1);
	cr_expect_eq(gw_cache_get(c, 0, NULL, 0, NULL), 0);
	gw_cache_free(c);
}

Test(cache, peek_ignores_ttl_and_counters)
{
	struct gw_cache *c = gw_cache_new(10, 100);
	Animate3d__V1__JobStatus *st = NULL;
	int64_t age = 0;

	put(c, "p", P, 4, 1, 1000);
	cr_assert_eq(gw_cache_peek(c, 0, "p", 5000, &st, &age), 1);
	cr_expect_eq(age, 4000);
	cr_expect_eq(st->step, 4);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	cr_expect_eq(gw_cache_counters(c)->hits + gw_cache_counters(c)->misses, 0);
	gw_cache_free(c);
}

/* ---- packed statuses (the cached GetStatus reply) ---- */

/* What gw_cache_get's decoded status packs to: the bytes gw_cache_get_packed must write. */
static size_t packed_via_get(struct gw_cache *c, const char *rid, int64_t now, uint8_t *out)
{
	Animate3d__V1__JobStatus *st = NULL;
	size_t n;

	if (gw_cache_get(c, 0, rid, now, &st) != 1)
		return 0;
	n = protobuf_c_message_pack(&st->base, out);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return n;
}

/* Entry (state, step) stored at t=1000 with TTL 100, asked for at now with a buffer of cap bytes
 * (0 = exactly the size gw_cache_packed_size gave): hit or miss, and the miss counters. */
static const struct {
	const char *rid;	/* "r1" is stored; anything else is absent */
	int state;
	int64_t step;
	int64_t now;
	size_t cap;
	int sized;		/* gw_cache_packed_size() != 0 */
	int hit;
	uint64_t expired;	/* expired misses counted by the packed lookup */
} packed_cases[] = {
	{ "r1", S, 7, 5000, 0, 1, 1, 0 },		/* final: served whatever its age */
	{ "r1", F, 0, 1100, 0, 1, 1, 0 },
	{ "r1", P, 3, 1099, 0, 1, 1, 0 },		/* non-final, inside the TTL */
	{ "r1", R, 300, 1050, 0, 1, 1, 0 },		/* a step with a two-byte varint */
	{ "r1", P, 3, 1100, 0, 0, 0, 1 },		/* non-final, TTL over */
	{ "zz", S, 7, 1000, 0, 0, 0, 0 },		/* absent */
	{ "r1", S, 7, 1000, 5, 1, 0, 0 },		/* buffer too small: nothing written */
	{ "r1", S, 7, 1000, 4096, 1, 1, 0 },		/* bigger buffer: same bytes */
};

Test(cache, packed_matches_decoded_status_table)
{
	for (size_t i = 0; i < sizeof packed_cases / sizeof packed_cases[0]; i++) {
		struct gw_cache *c = gw_cache_new(10, 100);
		uint8_t got[4096], want[4096];
		size_t size, cap, n, wn;
		int state = -1;

		cr_assert(c);
		cr_assert_eq(put(c, "r1", packed_cases[i].state, packed_cases[i].step, 1, 1000), 1);
		size = gw_cache_packed_size(c, 0, packed_cases[i].rid, packed_cases[i].now);
		cr_expect_eq(size != 0, packed_cases[i].sized, "case %zu", i);
		cr_expect_eq(gw_cache_counters(c)->hits + gw_cache_counters(c)->misses, 0,
			     "case %zu: the size query counts nothing", i);
		cap = packed_cases[i].cap ? packed_cases[i].cap : size;
		memset(got, 0xee, sizeof got);
		n = gw_cache_get_packed(c, 0, packed_cases[i].rid, packed_cases[i].now, got, cap, &state);
		cr_expect_eq(gw_cache_counters(c)->hits, (uint64_t)packed_cases[i].hit, "case %zu", i);
		cr_expect_eq(gw_cache_counters(c)->misses, (uint64_t)!packed_cases[i].hit, "case %zu", i);
		cr_expect_eq(gw_cache_counters(c)->expired, packed_cases[i].expired, "case %zu", i);
		if (!packed_cases[i].hit) {
			cr_expect_eq(n, 0, "case %zu", i);
			cr_expect_eq(got[0], 0xee, "case %zu: nothing written", i);
			gw_cache_free(c);
			continue;
		}
		cr_expect_eq(n, size, "case %zu", i);
		cr_expect_eq(state, packed_cases[i].state, "case %zu", i);
		wn = packed_via_get(c, packed_cases[i].rid, packed_cases[i].now, want);
		cr_expect_eq(n, wn, "case %zu: %zu bytes, protobuf-c packs %zu", i, n, wn);
		cr_expect(memcmp(got, want, wn) == 0, "case %zu: bytes differ from protobuf-c's", i);
		gw_cache_free(c);
	}
}

Test(cache, packed_hit_refreshes_lru)
{
	struct gw_cache *c = gw_cache_new(2, 1000);
	uint8_t buf[256];

	put(c, "a", S, 1, 1, 0);
	put(c, "b", S, 2, 2, 0);
	cr_assert_gt(gw_cache_get_packed(c, 0, "a", 0, buf, sizeof buf, NULL), 0);	/* a is newest */
	put(c, "c", S, 3, 3, 0);		/* evicts b, the least recently used */
	cr_expect_gt(gw_cache_packed_size(c, 0, "a", 0), 0);
	cr_expect_eq(gw_cache_packed_size(c, 0, "b", 0), 0);
	cr_expect_gt(gw_cache_packed_size(c, 0, "c", 0), 0);
	gw_cache_free(c);
}

/* ---- download links ---- */

#define URL_AT(date, exp) "http://127.0.0.1:8090/storage/o/a.bvh?X-Goog-Algorithm=GOOG4-RSA-SHA256" \
	"&X-Goog-Date=" date "&X-Goog-Expires=" exp "&X-Goog-Signature=ab12"

static const struct {
	const char *url;
	int64_t want;
} expiry_cases[] = {
	{ URL_AT("20261128T071500Z", "3600"), 1795850100 + 3600 },
	{ URL_AT("19700101T000000Z", "0"), 0 },
	{ URL_AT("20261128T071500Z", "-5"), -1 },
	{ URL_AT("20261128T071500Z", "12x"), -1 },
	{ URL_AT("2026-11-28T07:15:00Z", "3600"), -1 },
	{ URL_AT("20261328T071500Z", "3600"), -1 },
	{ "http://h/o?X-Goog-Date=20261128T071500Z", -1 },
	{ "http://h/o?X-Goog-Expires=60", -1 },
	{ "http://h/o", -1 },
	{ "http://h/o?XX-Goog-Date=20261128T071500Z&X-Goog-Expires=60", -1 },
	{ "http://h/o?X-Goog-Expires=60&X-Goog-Date=20261128T071500Z#frag", 1795850100 + 60 },
	/* The simulator's shape (issue 23: --url-ttl sets X-Goog-Expires). */
	{ "http://127.0.0.1:1/storage/o/x/a.bvh?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential="
	  "animate3d-sim%2F20261128%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20261128T071500Z"
	  "&X-Goog-Expires=5&X-Goog-SignedHeaders=host&X-Goog-Signature=00ff", 1795850100 + 5 },
	{ URL_AT("20261128T071500Z", ""), -1 },
	{ URL_AT("", "60"), -1 },
	{ URL_AT("20261128T071500", "60"), -1 },		/* no Z: not UTC as written */
	{ URL_AT("20261128T246000Z", "60"), -1 },
	{ URL_AT("20261128T071500Z", "999999999999"), -1 },	/* more than ten years */
	{ "http://h/o?x-goog-date=20261128T071500Z&x-goog-expires=60", -1 },	/* names as signed */
	{ "http://h/o?X-Goog-Date=20261128T071500Z&X-Goog-Expires=60&X-Goog-Expires=1", -1 },
	{ "http://h/o?X-Goog-Date=20261128T071500Z&X-Goog-Date=20261128T071500Z&X-Goog-Expires=6",
	  -1 },							/* twice: no guess */
};

Test(cache, url_expiry_table)
{
	for (size_t i = 0; i < sizeof expiry_cases / sizeof expiry_cases[0]; i++)
		cr_expect_eq(gw_cache_url_expiry(expiry_cases[i].url), expiry_cases[i].want,
			     "case %zu: got %lld", i,
			     (long long)gw_cache_url_expiry(expiry_cases[i].url));
}

/* A link with two files; their URLs given. */
struct link2 {
	Animate3d__V1__DownloadLink l;
	Animate3d__V1__DownloadGroup g, *gp[1];
	Animate3d__V1__DownloadFile f[2], *fp[2];
};

static void link2_init(struct link2 *x, const char *rid, const char *u1, const char *u2)
{
	animate3d__v1__download_link__init(&x->l);
	animate3d__v1__download_group__init(&x->g);
	for (int i = 0; i < 2; i++) {
		animate3d__v1__download_file__init(&x->f[i]);
		x->fp[i] = &x->f[i];
	}
	x->f[0].format = (char *)"bvh";
	x->f[0].url = (char *)u1;
	x->f[1].format = (char *)"fbx";
	x->f[1].url = (char *)u2;
	x->g.name = (char *)"dm_character_001";
	x->g.files = x->fp;
	x->g.n_files = 2;
	x->gp[0] = &x->g;
	x->l.rid = (char *)rid;
	x->l.name = (char *)"clip";
	x->l.groups = x->gp;
	x->l.n_groups = 1;
}

Test(cache, link_valid_until_margin_before_earliest_expiry)
{
	struct gw_cache *c = gw_cache_new(10, 1000);
	struct link2 x;
	Animate3d__V1__DownloadLink *got = NULL;
	const int64_t t0 = 1795850100;	/* 20261128T071500Z */

	link2_init(&x, "r1", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "600"));
	cr_expect_eq(gw_cache_link_expiry(&x.l), t0 + 600);
	cr_assert_eq(gw_cache_link_put(c, 0, &x.l, t0), 1);
	cr_assert_eq(gw_cache_link_get(c, 0, "r1", t0 + 10, &got), 1);
	cr_expect_str_eq(got->rid, "r1");
	cr_expect_eq(got->n_groups, 1);
	cr_expect_str_eq(got->groups[0]->files[1]->url, x.f[1].url);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	cr_expect_eq(gw_cache_link_get(c, 0, "r1", t0 + 600 - GW_CACHE_LINK_MARGIN_S - 1, NULL), 1);
	cr_expect_eq(gw_cache_link_get(c, 0, "r1", t0 + 600 - GW_CACHE_LINK_MARGIN_S, NULL), 0);
	cr_expect_eq(gw_cache_link_get(c, 0, "r1", t0, NULL), 0);	/* gone once expired */
	gw_cache_free(c);
}

Test(cache, link_uncacheable_cases)
{
	struct gw_cache *c = gw_cache_new(10, 1000);
	struct link2 x;
	Animate3d__V1__DownloadLink empty;
	const int64_t t0 = 1795850100;

	/* One URL without an expiry: not cached. */
	link2_init(&x, "r1", URL_AT("20261128T071500Z", "3600"), "http://h/o.fbx");
	cr_expect_eq(gw_cache_link_put(c, 0, &x.l, t0), 0);
	/* Expiring within the margin: not cached. */
	link2_init(&x, "r2", URL_AT("20261128T071500Z", "30"), URL_AT("20261128T071500Z", "3600"));
	cr_expect_eq(gw_cache_link_put(c, 0, &x.l, t0), 0);
	/* No URL at all (unfinished job): not cached. */
	animate3d__v1__download_link__init(&empty);
	empty.rid = (char *)"r3";
	cr_expect_eq(gw_cache_link_put(c, 0, &empty, t0), 0);
	cr_expect_eq(gw_cache_counters(c)->link_uncacheable, 3);
	cr_expect_eq(gw_cache_link_get(c, 0, "r1", t0, NULL), 0);
	cr_expect_eq(gw_cache_link_get(c, 0, "r2", t0, NULL), 0);
	cr_expect_eq(gw_cache_link_get(c, 0, "r3", t0, NULL), 0);
	gw_cache_free(c);
}

Test(cache, forget_drops_even_finals_and_links)
{
	struct gw_cache *c = gw_cache_new(10, 1000);

	put(c, "s", S, 1, 1, 0);
	cr_expect_eq(gw_cache_forgets(c), 0);
	cr_expect_eq(gw_cache_forget(c, 0, "s"), 1);
	cr_expect_eq(gw_cache_forgets(c), 1);
	cr_expect_eq(get(c, "s", 1), -1);
	cr_expect_eq(gw_cache_forget(c, 0, "s"), 0);
	/* After a forget, an answer from any fetch is stored again. */
	cr_expect_eq(put(c, "s", P, 2, 1, 0), 1);
	cr_expect_eq(get(c, "s", 1), P * 1000 + 2);
	gw_cache_free(c);
}

Test(cache, links_are_bounded_and_replaced)
{
	struct gw_cache *c = gw_cache_new(2, 1000);
	struct link2 a, b, d;
	const int64_t t0 = 1795850100;
	Animate3d__V1__DownloadLink *got = NULL;

	link2_init(&a, "a", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	link2_init(&b, "b", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	link2_init(&d, "d", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	cr_assert_eq(gw_cache_link_put(c, 0, &a.l, t0), 1);
	cr_assert_eq(gw_cache_link_put(c, 0, &b.l, t0), 1);
	cr_assert_eq(gw_cache_link_put(c, 0, &d.l, t0), 1);	/* evicts a */
	cr_expect_eq(gw_cache_counters(c)->link_evictions, 1);
	cr_expect_eq(gw_cache_link_get(c, 0, "a", t0, NULL), 0);
	cr_expect_eq(gw_cache_link_get(c, 0, "b", t0, NULL), 1);
	/* A newer link for b replaces the old one (in place: nothing evicted). */
	b.l.name = (char *)"renamed";
	cr_assert_eq(gw_cache_link_put(c, 0, &b.l, t0), 1);
	cr_expect_eq(gw_cache_counters(c)->link_evictions, 1);
	cr_assert_eq(gw_cache_link_get(c, 0, "b", t0, &got), 1);
	cr_expect_str_eq(got->name, "renamed");
	protobuf_c_message_free_unpacked(&got->base, NULL);
	/* The status table is separate: links never evict statuses. */
	cr_expect_eq(put(c, "s", S, 1, 1, 0), 1);
	cr_expect_eq(gw_cache_counters(c)->evictions, 0);
	gw_cache_free(c);
}

/* The link table's own limits (issue 23): entries and bytes, each eviction and refusal counted. */
Test(cache, links_bounded_by_bytes)
{
	struct gw_cache *c = gw_cache_new(100, 1000);
	struct link2 a, b, d;
	const int64_t t0 = 1795850100;
	Animate3d__V1__DownloadLink *got = NULL;
	uint64_t one;

	link2_init(&a, "a", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	link2_init(&b, "b", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	link2_init(&d, "d", URL_AT("20261128T071500Z", "3600"), URL_AT("20261128T071500Z", "3600"));
	cr_assert_eq(gw_cache_link_put(c, 0, &a.l, t0), 1);
	one = gw_cache_counters(c)->link_bytes;
	cr_assert_gt(one, 0);
	/* Room for two links of this size: the third evicts the least recently used. */
	gw_cache_link_limits(c, 100, (size_t)(2 * one + one / 2));
	cr_assert_eq(gw_cache_link_put(c, 0, &b.l, t0), 1);
	cr_expect_eq(gw_cache_counters(c)->link_bytes, 2 * one);
	cr_assert_eq(gw_cache_link_get(c, 0, "a", t0, &got), 1);	/* a is newest now */
	protobuf_c_message_free_unpacked(&got->base, NULL);
	cr_assert_eq(gw_cache_link_put(c, 0, &d.l, t0), 1);
	cr_expect_eq(gw_cache_counters(c)->link_evictions, 1);
	cr_expect_eq(gw_cache_counters(c)->link_entries, 2);
	cr_expect_eq(gw_cache_counters(c)->link_bytes, 2 * one);
	cr_expect_eq(gw_cache_link_get(c, 0, "b", t0, NULL), 0);
	cr_expect_eq(gw_cache_link_get(c, 0, "a", t0, NULL), 1);
	/* Shrinking the limits evicts at once; a link larger than the byte limit is refused. */
	gw_cache_link_limits(c, 100, (size_t)(one + one / 2));
	cr_expect_eq(gw_cache_counters(c)->link_entries, 1);
	cr_expect_eq(gw_cache_counters(c)->link_evictions, 2);
	gw_cache_link_limits(c, 100, (size_t)(one / 2));
	cr_expect_eq(gw_cache_counters(c)->link_entries, 0);
	cr_expect_eq(gw_cache_counters(c)->link_bytes, 0);
	cr_expect_eq(gw_cache_link_put(c, 0, &a.l, t0), 0);
	cr_expect_eq(gw_cache_counters(c)->link_refused, 1);
	/* And the entry limit on its own. */
	gw_cache_link_limits(c, 1, 0);
	cr_assert_eq(gw_cache_link_put(c, 0, &a.l, t0), 1);
	cr_assert_eq(gw_cache_link_put(c, 0, &b.l, t0), 1);
	cr_expect_eq(gw_cache_counters(c)->link_entries, 1);
	cr_expect_eq(gw_cache_link_get(c, 0, "a", t0, NULL), 0);
	gw_cache_free(c);
}

/* A link per row: its two URLs' (date, expires), the time it is offered, then whether a lookup
 * at each of three times hits. Never served at or after expiry minus the margin. */
static const struct {
	const char *d1, *e1, *d2, *e2;
	int64_t put_at;			/* seconds after 20261128T071500Z */
	int put;			/* gw_cache_link_put's answer */
	int64_t at[3];
	int hit[3];
} link_cases[] = {
	/* Served until 60 s before the earliest expiry (600 s). */
	{ "20261128T071500Z", "3600", "20261128T071500Z", "600", 0, 1,
	  { 0, 539, 540 }, { 1, 1, 0 } },
	/* The earliest URL decides even when its date is later. */
	{ "20261128T071500Z", "3600", "20261128T072000Z", "300", 0, 1,
	  { 100, 539, 540 }, { 1, 1, 0 } },
	/* A short --url-ttl: expiring within the margin is never cached. */
	{ "20261128T071500Z", "61", "20261128T071500Z", "61", 0, 1, { 0, 1, 2 }, { 1, 0, 0 } },
	{ "20261128T071500Z", "60", "20261128T071500Z", "60", 0, 0, { 0, 1, 2 }, { 0, 0, 0 } },
	{ "20261128T071500Z", "5", "20261128T071500Z", "5", 0, 0, { 0, 1, 2 }, { 0, 0, 0 } },
	/* Offered late (a slow answer): what is left of the lifetime counts. */
	{ "20261128T071500Z", "600", "20261128T071500Z", "600", 539, 1,
	  { 539, 540, 600 }, { 1, 0, 0 } },
	{ "20261128T071500Z", "600", "20261128T071500Z", "600", 540, 0,
	  { 540, 541, 600 }, { 0, 0, 0 } },
	/* One URL without an expiry: never cached. */
	{ "20261128T071500Z", "3600", "", "", 0, 0, { 0, 1, 2 }, { 0, 0, 0 } },
};

Test(cache, link_lifetime_table)
{
	const int64_t t0 = 1795850100;	/* 20261128T071500Z */

	for (size_t i = 0; i < sizeof link_cases / sizeof link_cases[0]; i++) {
		struct gw_cache *c = gw_cache_new(10, 1000);
		char u1[256], u2[256];
		struct link2 x;

		snprintf(u1, sizeof u1, URL_AT("%s", "%s"), link_cases[i].d1, link_cases[i].e1);
		if (link_cases[i].d2[0])
			snprintf(u2, sizeof u2, URL_AT("%s", "%s"), link_cases[i].d2, link_cases[i].e2);
		else
			snprintf(u2, sizeof u2, "http://h/o.fbx");
		link2_init(&x, "r", u1, u2);
		cr_expect_eq(gw_cache_link_put(c, 0, &x.l, t0 + link_cases[i].put_at), link_cases[i].put,
			     "case %zu: put", i);
		for (int k = 0; k < 3; k++)
			cr_expect_eq(gw_cache_link_get(c, 0, "r", t0 + link_cases[i].at[k], NULL),
				     link_cases[i].hit[k], "case %zu: lookup at +%lld", i,
				     (long long)link_cases[i].at[k]);
		gw_cache_free(c);
	}
}
