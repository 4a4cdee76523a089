/* Unit tests for gateway/svc/caps.c: the refusal message for each verdict, and the peer host
 * that per-peer caps count by. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/svc/caps.h"

static const struct gw_caps_what watch = {
	"WatchStatus", "watch_streams", "streams", "tenant",
	"tenants[].limits.watch_streams or watch.max_streams_per_tenant", "watch.max_streams"
};

Test(caps, message_table)
{
	static const struct {
		enum gw_slots_verdict v;
		const char *name;
		uint64_t held, cap;
		const char *want;
	} cases[] = {
		{ GW_SLOTS_NAME_FULL, "team-a", 4, 4,
		  "WatchStatus: tenant team-a holds 4 streams; its cap is 4 (tenants[].limits.watch_streams "
		  "or watch.max_streams_per_tenant); close one or retry later" },
		{ GW_SLOTS_GLOBAL_FULL, "team-b", 20000, 20000,
		  "WatchStatus: the gateway holds 20000 streams; its cap is 20000 (watch.max_streams); "
		  "retry later" },
		{ GW_SLOTS_TABLE_FULL, "x", 0, 0, "WatchStatus: too many tenants hold streams; retry later" },
		{ GW_SLOTS_BAD, "x", 0, 0,
		  "WatchStatus: cannot account for the streams (out of memory); retry later" },
		{ GW_SLOTS_NAME_FULL, NULL, 1, 1,
		  "WatchStatus: tenant ? holds 1 streams; its cap is 1 (tenants[].limits.watch_streams or "
		  "watch.max_streams_per_tenant); close one or retry later" },
	};
	char out[GW_CAPS_MSG_MAX];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_caps_message(out, sizeof out, &watch, cases[i].name, cases[i].v, cases[i].held, cases[i].cap);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
	gw_caps_message(out, 16, &watch, "team-a", GW_SLOTS_NAME_FULL, 1, 1);
	cr_expect_eq(strlen(out), 15, "cut to fit");
}

Test(caps, peer_host_table)
{
	static const struct {
		const char *peer;
		int rc;
		const char *want;
	} cases[] = {
		{ "ipv4:127.0.0.1:54321", 0, "127.0.0.1" },
		{ "ipv4:10.1.2.3:1", 0, "10.1.2.3" },
		{ "ipv6:[::1]:80", 0, "[::1]" },
		{ "ipv6:[fe80::1%eth0]:443", 0, "[fe80::1%eth0]" },
		{ "unix:/run/gw.sock", 0, "unix:/run/gw.sock" },
		{ "ipv4:", -1, "unknown" },
		{ "ipv4::5", -1, "unknown" },
		{ "ipv6:[::1:80", -1, "unknown" },
		{ "", -1, "unknown" },
		{ NULL, -1, "unknown" },
		{ "ipv4:" "0123456789012345678901234567890123456789012345678901234567890123456789:1", -1,
		  "unknown" },	/* longer than GW_CAPS_PEER_MAX */
	};
	char out[GW_CAPS_PEER_MAX];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_expect_eq(gw_caps_peer_host(cases[i].peer, out, sizeof out), cases[i].rc, "case %zu", i);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
}
