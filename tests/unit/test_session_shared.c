/*
 * Unit tests for auth/upstream/session_shared.c (pure parts): the single-flight decision as a
 * table, and the sealed {expiry, cookie} payload (round trip, bound to the account's key name,
 * refusals).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>

#include "auth/upstream/session_shared.h"

Test(session_shared, decide_table)
{
	const int64_t now = 5000000000;
	static const struct {
		enum gw_ss_step step;
		int err, found, opened, stale;
		int64_t remaining_ms;
		int refresh;
		int64_t ours_ms;
		int won;
		int64_t deadline_off_ms;
		enum gw_ss_action want;
	} t[] = {
		/* after GET */
		{ GW_SS_AFTER_GET, 1, 0, 0, 0, 0, 0, 0, 0, 1000, GW_SS_FALLBACK },	/* Redis failed */
		{ GW_SS_AFTER_GET, 0, 0, 0, 0, 0, 0, 0, 0, 1000, GW_SS_LOCK },	/* nothing stored */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, 600000, 0, 0, 0, 1000, GW_SS_ADOPT },
		{ GW_SS_AFTER_GET, 0, 1, 0, 0, 600000, 0, 0, 0, 1000, GW_SS_LOCK },	/* does not open */
		{ GW_SS_AFTER_GET, 0, 1, 1, 1, 600000, 0, 0, 0, 1000, GW_SS_LOCK },	/* the one that got 401 */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, 1500, 0, 0, 0, 1000, GW_SS_LOCK },	/* about to expire */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, -5, 0, 0, 0, 1000, GW_SS_LOCK },	/* expired */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, 600000, 1, 300000, 0, 1000, GW_SS_ADOPT },	/* newer */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, 200000, 1, 300000, 0, 1000, GW_SS_LOCK },	/* older */
		{ GW_SS_AFTER_GET, 0, 1, 1, 1, 300000, 1, 300000, 0, 1000, GW_SS_LOCK },	/* ours */
		{ GW_SS_AFTER_GET, 0, 1, 1, 0, 600000, 0, 0, 0, -1, GW_SS_ADOPT },	/* late: still adopt */
		/* after SET NX */
		{ GW_SS_AFTER_LOCK, 1, 0, 0, 0, 0, 0, 0, 1, 1000, GW_SS_FALLBACK },
		{ GW_SS_AFTER_LOCK, 0, 0, 0, 0, 0, 0, 0, 1, 1000, GW_SS_LOGIN },
		{ GW_SS_AFTER_LOCK, 0, 0, 0, 0, 0, 0, 0, 1, -1, GW_SS_LOGIN },	/* won, even late */
		{ GW_SS_AFTER_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 1000, GW_SS_WAIT },
		{ GW_SS_AFTER_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0, GW_SS_TIMEOUT },
		{ GW_SS_AFTER_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, -1, GW_SS_TIMEOUT },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct gw_ss_facts f = {
			.redis_error = t[i].err, .found = t[i].found, .opened = t[i].opened,
			.same_as_stale = t[i].stale, .remaining_ms = t[i].remaining_ms,
			.refresh = t[i].refresh, .ours_remaining_ms = t[i].ours_ms,
			.lock_won = t[i].won, .now_us = now,
			.deadline_us = now + t[i].deadline_off_ms * 1000,
		};
		enum gw_ss_action got = gw_ss_decide(t[i].step, &f);

		cr_expect_eq(got, t[i].want, "case %zu: %s, want %s", i, gw_ss_action_name(got),
			     gw_ss_action_name(t[i].want));
	}
}

static const uint8_t key[GW_SEAL_KEY_LEN] = "k-for-the-shared-session-tests!!";
static const uint8_t key2[GW_SEAL_KEY_LEN] = "k-for-the-shared-session-tests!?";

Test(session_shared, payload)
{
	uint8_t sealed[GW_SS_SEALED_MAX];
	char cookie[512];
	int64_t exp = 0;
	long n = gw_ss_seal(key, "a3d:session:sim", "Abc123cookie", 1767225600123, sealed,
			    sizeof sealed);

	cr_assert_gt(n, 0);
	cr_expect_null(memmem(sealed, (size_t)n, "Abc123cookie", 12));
	cr_assert_eq(gw_ss_open(key, "a3d:session:sim", sealed, (size_t)n, cookie, sizeof cookie,
				&exp), 0);
	cr_expect_str_eq(cookie, "Abc123cookie");
	cr_expect_eq(exp, 1767225600123);
	/* Refused: another account, another prefix, another key, truncated, a cookie too long for
	 * the caller's buffer. */
	cr_expect_eq(gw_ss_open(key, "a3d:session:other", sealed, (size_t)n, cookie, sizeof cookie,
				&exp), -1);
	cr_expect_eq(gw_ss_open(key, "b3d:session:sim", sealed, (size_t)n, cookie, sizeof cookie,
				&exp), -1);
	cr_expect_eq(gw_ss_open(key2, "a3d:session:sim", sealed, (size_t)n, cookie, sizeof cookie,
				&exp), -1);
	cr_expect_eq(gw_ss_open(key, "a3d:session:sim", sealed, (size_t)n - 1, cookie,
				sizeof cookie, &exp), -1);
	cr_expect_eq(gw_ss_open(key, "a3d:session:sim", sealed, (size_t)n, cookie, 12, &exp), -1);
	cr_expect_eq(cookie[0], '\0', "wiped on failure");
	/* Refused to seal: empty cookie, no expiry, a cookie past the size. */
	static char big[GW_SS_PLAIN_MAX];
	memset(big, 'x', sizeof big - 1);
	cr_expect_eq(gw_ss_seal(key, "k", "", 1, sealed, sizeof sealed), -1);
	cr_expect_eq(gw_ss_seal(key, "k", "c", 0, sealed, sizeof sealed), -1);
	cr_expect_eq(gw_ss_seal(key, "k", big, 1, sealed, sizeof sealed), -1);
}

Test(session_shared, payload_format_checked)
{
	/* Well sealed but not our format: no colon, no digits, empty cookie. */
	static const char *bad[] = { "no-colon", ":cookie", "12:", "x1:cookie", "0:cookie" };
	uint8_t sealed[256];
	char cookie[64];
	int64_t exp;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long n = gw_seal(key, "a3d:session:sim", strlen("a3d:session:sim"), bad[i],
				 strlen(bad[i]), sealed, sizeof sealed);

		cr_assert_gt(n, 0);
		cr_expect_eq(gw_ss_open(key, "a3d:session:sim", sealed, (size_t)n, cookie,
					sizeof cookie, &exp), -1, "%s", bad[i]);
	}
}
