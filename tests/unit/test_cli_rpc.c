/* cli/rpc.c: the pure parts: gRPC code names, grpc-retry-pushback-ms, the retry delays. */
#include <criterion/criterion.h>
#include <string.h>

#include "cli/rpc.h"

Test(cli_rpc, code_names)
{
	static const struct {
		int code;
		const char *want;
	} rows[] = {
		{ 0, "OK" },	{ 1, "CANCELLED" }, { 3, "INVALID_ARGUMENT" }, { 5, "NOT_FOUND" },
		{ 8, "RESOURCE_EXHAUSTED" }, { 14, "UNAVAILABLE" }, { 16, "UNAUTHENTICATED" },
		{ 17, "UNKNOWN_CODE" }, { -1, "UNKNOWN_CODE" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_str_eq(a3d_rpc_code_name((grpc_status_code)rows[i].code), rows[i].want, "%d",
				 rows[i].code);
}

Test(cli_rpc, pushback_values)
{
	static const struct {
		const char *s;
		long want;
	} rows[] = {
		{ "0", 0 },	{ "1000", 1000 }, { "2147483647", 2147483647L }, { "", -2 },
		{ "-1", -2 },	{ "1.5", -2 },	  { " 10", -2 },	   { "10ms", -2 },
		{ "99999999999", -2 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(a3d_rpc_parse_pushback(rows[i].s, strlen(rows[i].s)), rows[i].want, "'%s'",
			     rows[i].s);
}

Test(cli_rpc, retry_delays)
{
	static const struct {
		grpc_status_code code;
		long pushback;
		int interrupted, attempt;
		long want;
	} rows[] = {
		/* the server's pushback is kept, within the cap */
		{ GRPC_STATUS_RESOURCE_EXHAUSTED, 1000, 0, 1, 1000 },
		{ GRPC_STATUS_UNAVAILABLE, 0, 0, 4, 0 },
		{ GRPC_STATUS_RESOURCE_EXHAUSTED, A3D_RPC_MAX_PUSHBACK_MS, 0, 1, A3D_RPC_MAX_PUSHBACK_MS },
		{ GRPC_STATUS_RESOURCE_EXHAUSTED, A3D_RPC_MAX_PUSHBACK_MS + 1, 0, 1, -1 },
		/* a negative or unreadable pushback: do not retry */
		{ GRPC_STATUS_UNAVAILABLE, -2, 0, 1, -1 },
		/* no pushback: exponential backoff, capped */
		{ GRPC_STATUS_UNAVAILABLE, -1, 0, 1, A3D_RPC_BACKOFF_MS },
		{ GRPC_STATUS_UNAVAILABLE, -1, 0, 2, 2 * A3D_RPC_BACKOFF_MS },
		{ GRPC_STATUS_RESOURCE_EXHAUSTED, -1, 0, 3, 4 * A3D_RPC_BACKOFF_MS },
		/* bounded */
		{ GRPC_STATUS_UNAVAILABLE, -1, 0, A3D_RPC_MAX_RETRIES + 1, -1 },
		{ GRPC_STATUS_UNAVAILABLE, 10, 0, A3D_RPC_MAX_RETRIES + 1, -1 },
		/* other codes and Ctrl-C never */
		{ GRPC_STATUS_NOT_FOUND, 10, 0, 1, -1 },
		{ GRPC_STATUS_INVALID_ARGUMENT, -1, 0, 1, -1 },
		{ GRPC_STATUS_DEADLINE_EXCEEDED, -1, 0, 1, -1 },
		{ GRPC_STATUS_CANCELLED, -1, 0, 1, -1 },
		{ GRPC_STATUS_UNAVAILABLE, 10, 1, 1, -1 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct a3d_status st;

		memset(&st, 0, sizeof st);
		st.code = rows[i].code;
		st.pushback_ms = rows[i].pushback;
		st.interrupted = rows[i].interrupted;
		cr_expect_eq(a3d_rpc_retry_delay(&st, rows[i].attempt), rows[i].want, "row %zu", i);
	}
}
