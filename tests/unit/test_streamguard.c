/* Unit tests for gateway/base/streamguard.c: the reset window over gRPC core's running count
 * and the channelz socket reader, as tables. The thread itself runs against a real gateway in
 * tests/integration/test_abuse_net.py (rapid reset). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/base/streamguard.h"

Test(streamguard, count_window)
{
	static const struct {
		int64_t id;
		uint64_t resets;	/* the connection's count so far */
		int fresh;
		int64_t now_ms;
		int want;
		const char *why;
	} steps[] = {		/* limit 10 per GW_STREAMGUARD_WINDOW_MS (1000) */
		{ 7, 500, 0, 100, 0, "first seen, old: what it reset before is not this window's" },
		{ 7, 505, 0, 200, 0, "5 in the window" },
		{ 7, 509, 0, 1099, 0, "9 in the window" },
		{ 7, 512, 0, 1100, 0, "a new window from 512" },
		{ 7, 521, 0, 1500, 0, "9" },
		{ 7, 522, 0, 1600, 1, "10 within one window: close" },
		{ 7, 900, 0, 1700, 0, "closed: never again" },
		{ 8, 10, 1, 1700, 1, "a new connection (fresh): all its resets are this window's" },
		{ 9, 9, 1, 1700, 0, "fresh, under the limit" },
		{ 9, 19, 0, 1720, 1, "then over it" },
		{ 7 + 4096, 50, 0, 1800, 0, "another connection in the slot: starts from its count" },
		{ 7 + 4096, 40, 0, 1900, 0, "a count that went back: not over" },
	};
	struct gw_streamguard_window table[2] = { { 0 } };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct gw_streamguard_window *w = &table[steps[i].id % 4096 == 7 ? 0 : 1];

		cr_expect_eq(gw_streamguard_count(w, steps[i].id, steps[i].resets, steps[i].fresh, 10,
						  steps[i].now_ms),
			     steps[i].want, "step %zu: %s", i, steps[i].why);
	}
	memset(table, 0, sizeof table);
	cr_expect_eq(gw_streamguard_count(&table[0], 3, 1000000, 1, 0, 5), 0, "limit 0: never");
}

Test(streamguard, parse_socket)
{
	static const struct {
		const char *json;
		int rc;
		uint64_t resets;
		const char *peer;
	} cases[] = {
		{ "{\"socket\":{\"data\":{\"streamsStarted\":\"9\",\"streamsFailed\":\"123456789012\"},"
		  "\"ref\":{\"name\":\"chttp2 ipv4:127.0.0.1:39764\",\"socketId\":\"4\"}}}",
		  0, 123456789012ull, "ipv4:127.0.0.1:39764" },
		{ "{\"socket\":{\"data\":{\"streamsStarted\":\"9\",\"streamsSucceeded\":\"9\"},"
		  "\"ref\":{\"name\":\"chttp2 ipv6:[::1]:5\",\"socketId\":\"4\"}}}",
		  0, 0, "ipv6:[::1]:5" },			/* zeros are left out */
		{ "{\"socket\":{\"data\":{\"streamsFailed\":17},\"ref\":{\"name\":\"ipv4:10.0.0.1:80\"}}}",
		  0, 17, "ipv4:10.0.0.1:80" },		/* an integer; a name without a prefix */
		{ "{\"socket\":{\"data\":{}}}", -1, 0, NULL },	/* no name */
		{ "{\"channel\":{}}", -1, 0, NULL },
		{ "not json", -1, 0, NULL },
		{ "", -1, 0, NULL },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t resets = 99;
		char peer[64] = "";
		int rc = gw_streamguard_parse_socket(cases[i].json, &resets, peer, sizeof peer);

		cr_expect_eq(rc, cases[i].rc, "case %zu: %d", i, rc);
		if (rc || cases[i].rc)
			continue;
		cr_expect_eq(resets, cases[i].resets, "case %zu: %llu", i, (unsigned long long)resets);
		cr_expect_str_eq(peer, cases[i].peer, "case %zu", i);
	}
}

Test(streamguard, parse_socket_bounded_peer)
{
	char peer[8];
	uint64_t resets;

	cr_expect_eq(gw_streamguard_parse_socket("{\"socket\":{\"ref\":{\"name\":\"chttp2 ipv4:127.0.0.1:1\"}}}",
						 &resets, peer, sizeof peer),
		     -1, "a peer longer than the buffer is refused, not cut");
}
