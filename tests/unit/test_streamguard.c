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
		int64_t now_ms;
		int want;
		const char *why;
	} steps[] = {		/* limit 10 per GW_STREAMGUARD_WINDOW_MS (1000) */
		{ 7, 500, 100, 0, "first seen at 500: what it reset before is not this window's" },
		{ 7, 505, 200, 0, "5 in the window" },
		{ 7, 509, 1099, 0, "9 in the window" },
		{ 7, 512, 1100, 0, "a new window from 512" },
		{ 7, 521, 1500, 0, "9" },
		{ 7, 522, 1600, 1, "10 within one window: close" },
		{ 7, 900, 1700, 0, "closed: never again" },
		{ 8, 0, 1700, 0, "a new connection, entered with 0 when listed" },
		{ 8, 10, 1710, 1, "all its resets count: its first burst closes it" },
		{ 9, 0, 1700, 0, "another, entered at 0" },
		{ 9, 9, 2699, 0, "9 within the window" },
		{ 9, 19, 2700, 0, "a window later: counting from 19" },
		{ 7 + 4096, 50, 2800, 0, "another connection in the slot: starts from its count" },
		{ 7 + 4096, 40, 2900, 0, "a count that went back: not over" },
	};
	struct gw_streamguard_window table[3] = { { 0 } };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int64_t id = steps[i].id;
		struct gw_streamguard_window *w = &table[id % 4096 == 7 ? 0 : id == 8 ? 1 : 2];

		cr_expect_eq(gw_streamguard_count(w, id, steps[i].resets, 10, steps[i].now_ms),
			     steps[i].want, "step %zu: %s", i, steps[i].why);
	}
	memset(table, 0, sizeof table);
	cr_expect_eq(gw_streamguard_count(&table[0], 3, 0, 0, 5), 0);
	cr_expect_eq(gw_streamguard_count(&table[0], 3, 1000000, 0, 6), 0, "limit 0: never");
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
