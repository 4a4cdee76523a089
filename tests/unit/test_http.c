/*
 * gateway/http.c pure parts: /readyz body, listen address parsing, gRPC code names.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "auth/upstream/session.h"
#include "gateway/call/call.h"
#include "gateway/http.h"
#include "gateway/base/stats.h"

/* The buffer's contents as a malloc'd C string. */
static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

struct ready_case {
	int draining;
	enum gw_session_state states[2];
	size_t n;
	int ready;
	const char *body;
	int grpc_dead;		/* the self-probe found the gRPC listener not accepting */
};

Test(http, readyz_table)
{
	static const struct ready_case cases[] = {
		{ 0, { GW_SESSION_OK, GW_SESSION_OK }, 2, 1,
		  "{\"ready\":true,\"draining\":false,\"grpc_listener\":\"accepting\",\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"},"
		  "{\"name\":\"a1\",\"state\":\"ok\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		{ 0, { GW_SESSION_OK, GW_SESSION_REJECTED }, 2, 0,
		  "{\"ready\":false,\"draining\":false,\"grpc_listener\":\"accepting\",\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"},"
		  "{\"name\":\"a1\",\"state\":\"rejected\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		{ 1, { GW_SESSION_OK, GW_SESSION_OK }, 1, 0,
		  "{\"ready\":false,\"draining\":true,\"grpc_listener\":\"accepting\",\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		/* not logged in yet, or upstream unreachable: every replica alike, stay in the Service */
		{ 0, { GW_SESSION_LOGGING_IN, GW_SESSION_OK }, 1, 1,
		  "{\"ready\":true,\"draining\":false,\"grpc_listener\":\"accepting\",\"accounts\":[{\"name\":\"a0\",\"state\":\"logging_in\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		{ 0, { GW_SESSION_OK, GW_SESSION_BACKOFF }, 2, 1,
		  "{\"ready\":true,\"draining\":false,\"grpc_listener\":\"accepting\",\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"},"
		  "{\"name\":\"a1\",\"state\":\"backoff\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		{ 0, { GW_SESSION_OK, GW_SESSION_OK }, 0, 1,
		  "{\"ready\":true,\"draining\":false,\"grpc_listener\":\"accepting\",\"accounts\":[],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n", 0 },
		/* gRPC core 1.51 never accepts again after EMFILE: not ready (and /healthz fails) */
		{ 0, { GW_SESSION_OK, GW_SESSION_OK }, 1, 0,
		  "{\"ready\":false,\"draining\":false,\"grpc_listener\":\"dead\",\"accounts\":[{\"name\":\"a0\",\"state\":\"ok\"}],\"state\":{\"backend\":\"sqlite\",\"reachable\":true}}\n",
		  1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_account_rt acct[2];
		struct evbuffer *b = evbuffer_new();
		char *out;
		int ready;

		memset(acct, 0, sizeof acct);
		acct[0].name = "a0";
		acct[1].name = "a1";
		acct[0].state = cases[i].states[0];
		acct[1].state = cases[i].states[1];
		struct gw_ready_parts parts = { "sqlite", NULL, 0, NULL, NULL, { NULL } };

		ready = gw_http_render_ready(cases[i].draining, !cases[i].grpc_dead, acct, cases[i].n,
					     &parts, b);
		out = drain(b);
		cr_expect_eq(ready, cases[i].ready, "case %zu", i);
		cr_expect_str_eq(out, cases[i].body, "case %zu", i);
		free(out);
		evbuffer_free(b);
	}
}

struct hp_case {
	const char *in;
	int rc;
	const char *host;
	unsigned short port;
};

Test(http, split_hostport_table)
{
	static const struct hp_case cases[] = {
		{ "127.0.0.1:8080", 0, "127.0.0.1", 8080 },
		{ "0.0.0.0:0", 0, "0.0.0.0", 0 },
		{ "[::1]:9090", 0, "::1", 9090 },
		{ "localhost:65535", 0, "localhost", 65535 },
		{ "localhost:65536", -1, NULL, 0 },
		{ "127.0.0.1", -1, NULL, 0 },
		{ "127.0.0.1:", -1, NULL, 0 },
		{ ":8080", -1, NULL, 0 },
		{ "host:80x", -1, NULL, 0 },
		{ "[::1:80", -1, NULL, 0 },
		{ "", -1, NULL, 0 },
		{ NULL, -1, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char host[64] = "";
		unsigned short port = 1;
		int rc = gw_http_split_hostport(cases[i].in, host, sizeof host, &port);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].in ? cases[i].in : "NULL");
		if (rc == 0 && cases[i].rc == 0) {
			cr_expect_str_eq(host, cases[i].host, "case %zu", i);
			cr_expect_eq(port, cases[i].port, "case %zu", i);
		}
	}
}

/* An unreachable state store or Redis is shown with its reason (escaped) but leaves the pod
 * ready. */
Test(http, ready_state_store)
{
	static const struct {
		struct gw_ready_parts parts;
		const char *tail;
	} cases[] = {
		{ { "postgres", NULL, 0, NULL, NULL, { NULL } }, "\"state\":{\"backend\":\"postgres\",\"reachable\":true}}\n" },
		{ { "postgres", "PostgreSQL at 127.0.0.1:5432/a3d is unreachable: \"refused\"\n", 0, NULL, NULL, { NULL } },
		  "\"state\":{\"backend\":\"postgres\",\"reachable\":false,\"why\":\"PostgreSQL at "
		  "127.0.0.1:5432/a3d is unreachable: \\\"refused\\\"\\n\"}}\n" },
		/* a driver's message with bytes that are not UTF-8 */
		{ { "postgres", "bad \xff byte", 0, NULL, NULL, { NULL } },
		  "\"reachable\":false,\"why\":\"(not valid UTF-8)\"}}\n" },
		{ { NULL, NULL, 0, NULL, NULL, { NULL } }, "\"state\":{\"backend\":\"none\",\"reachable\":true}}\n" },
		{ { "postgres", NULL, 1, NULL, NULL, { NULL } },
		  "\"reachable\":true},\"redis\":{\"connected\":true}}\n" },
		{ { "postgres", NULL, 1, "connection refused", NULL, { NULL } },
		  "\"reachable\":true},\"redis\":{\"connected\":false,\"why\":\"connection refused\"}}\n" },
		/* The rate limits' mode: shared on Redis, or the local fallback. */
		{ { "postgres", NULL, 1, NULL, "shared", { NULL } },
		  "\"redis\":{\"connected\":true},\"limits\":\"shared\"}\n" },
		{ { "postgres", NULL, 1, "connection refused", "local", { NULL } },
		  "\"why\":\"connection refused\"},\"limits\":\"local\"}\n" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct evbuffer *b = evbuffer_new();
		char *out;
		size_t n = strlen(cases[i].tail);

		cr_expect_eq(gw_http_render_ready(0, 1, NULL, 0, &cases[i].parts, b), 1, "case %zu: ready", i);
		out = drain(b);
		cr_expect(strlen(out) >= n && strcmp(out + strlen(out) - n, cases[i].tail) == 0,
			  "case %zu: %s", i, out);
		free(out);
		evbuffer_free(b);
	}
}

/* What falls back while Redis is away: each used part with its mode, since when (UTC), its
 * fallbacks and, when local, what that means; unused parts left out; still ready. */
Test(http, ready_cluster_parts)
{
	static const struct gw_redis_part_state local = { 1, 1, 1796601600000LL, 2 };
	static const struct gw_redis_part_state shared = { 1, 0, 1796601601999LL, 0 };
	static const struct gw_redis_part_state unused = { 0, 0, 0, 0 };
	static const struct {
		const struct gw_redis_part_state *shares[GW_REDIS_NPARTS];
		const char *tail;
	} cases[] = {
		{ { NULL, NULL, NULL, NULL }, "\"limits\":\"shared\"}\n" },
		{ { &unused, &unused, &unused, &unused }, "\"limits\":\"shared\"}\n" },
		{ { &shared, NULL, &unused, &shared },
		  "\"cluster\":{\"limits\":{\"mode\":\"shared\",\"since\":\"2026-12-07T00:00:01Z\","
		  "\"fallbacks\":0},\"status\":{\"mode\":\"shared\",\"since\":\"2026-12-07T00:00:01Z\","
		  "\"fallbacks\":0}}}\n" },
		{ { NULL, &local, NULL, NULL },
		  "\"cluster\":{\"concurrency\":{\"mode\":\"local\",\"since\":\"2026-12-07T00:00:00Z\","
		  "\"fallbacks\":2,\"local\":\"upstream concurrency: each account's max_concurrent / "
		  "cluster.expected_replicas on this replica\"}}}\n" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_ready_parts parts = { "postgres", NULL, 1, NULL, "shared", { NULL } };
		struct evbuffer *b = evbuffer_new();
		char *out;
		size_t n = strlen(cases[i].tail);

		for (size_t p = 0; p < GW_REDIS_NPARTS; p++)
			parts.shares[p] = cases[i].shares[p];
		cr_expect_eq(gw_http_render_ready(0, 1, NULL, 0, &parts, b), 1, "case %zu: ready", i);
		out = drain(b);
		cr_expect(strlen(out) >= n && strcmp(out + strlen(out) - n, cases[i].tail) == 0,
			  "case %zu: %s", i, out);
		free(out);
		evbuffer_free(b);
	}
}

/* Account names are the operator's, any bytes YAML allows: a tab, a quote, a backslash stay valid
 * JSON (they once made /readyz unparseable). */
Test(http, readyz_escapes_account_names)
{
	static const struct {
		const char *name;
		const char *want;
	} cases[] = {
		{ "a\tb", "\"accounts\":[{\"name\":\"a\\tb\",\"state\":\"ok\"}]" },
		{ "say \"hi\"", "\"accounts\":[{\"name\":\"say \\\"hi\\\"\",\"state\":\"ok\"}]" },
		{ "back\\slash", "\"accounts\":[{\"name\":\"back\\\\slash\",\"state\":\"ok\"}]" },
		{ "caf\xc3\xa9", "\"accounts\":[{\"name\":\"caf\xc3\xa9\",\"state\":\"ok\"}]" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_account_rt acct;
		struct gw_ready_parts parts = { "sqlite", NULL, 0, NULL, NULL, { NULL } };
		struct evbuffer *b = evbuffer_new();
		char *out;

		memset(&acct, 0, sizeof acct);
		acct.name = (char *)cases[i].name;	/* the struct owns config strings */
		acct.state = GW_SESSION_OK;
		cr_expect_eq(gw_http_render_ready(0, 1, &acct, 1, &parts, b), 1, "case %zu", i);
		out = drain(b);
		cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: %s", i, out);
		free(out);
		evbuffer_free(b);
	}
}
