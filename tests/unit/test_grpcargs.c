/* Unit tests for gateway/grpcargs.c: configuration -> the gRPC server's channel arguments, as a
 * table of key -> expected integer (or absent), for the defaults and for a file that sets them. */
#include <criterion/criterion.h>

#include <string.h>
#include <grpc/grpc.h>

#include "gateway/config/config.h"
#include "gateway/grpcargs.h"

#define BASE                                       \
	"accounts:\n"                              \
	"  - name: sim\n"                          \
	"    base_url: http://127.0.0.1:8090\n"    \
	"    client_id: cid\n"                     \
	"    client_secret_env: S\n"               \
	"tenants:\n"                               \
	"  - name: t\n"                            \
	"    account: sim\n"

struct want {
	const char *key;
	long long value;	/* -1: absent */
};

static void check(const char *yaml, const struct want *w, size_t n, size_t quota_bytes)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	struct gw_grpcargs ga;

	cr_assert_eq(gw_config_parse("t.yaml", yaml, strlen(yaml), &cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	cr_assert_eq(gw_grpcargs_build(&ga, cfg), 0);
	for (size_t i = 0; i < n; i++) {
		const grpc_arg *a = gw_grpcargs_find(&ga, w[i].key);

		if (w[i].value < 0) {
			cr_expect_null(a, "%s set", w[i].key);
			continue;
		}
		cr_assert_not_null(a, "%s missing", w[i].key);
		cr_expect_eq(a->type, GRPC_ARG_INTEGER, "%s", w[i].key);
		cr_expect_eq(a->value.integer, w[i].value, "%s = %d", w[i].key, a->value.integer);
	}
	cr_expect_eq(ga.quota_bytes, quota_bytes);
	if (quota_bytes) {
		const grpc_arg *q = gw_grpcargs_find(&ga, GRPC_ARG_RESOURCE_QUOTA);

		cr_assert_not_null(q);
		cr_expect_eq(q->type, GRPC_ARG_POINTER);
		cr_expect_eq(q->value.pointer.p, ga.quota);
	} else {
		cr_expect_null(gw_grpcargs_find(&ga, GRPC_ARG_RESOURCE_QUOTA));
	}
	gw_grpcargs_release(&ga);
	cr_expect_null(ga.quota);
	gw_config_free(cfg);
}

Test(grpcargs, defaults)
{
	static const struct want w[] = {
		{ GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 << 20 },
		{ GRPC_ARG_MAX_CONCURRENT_STREAMS, GW_CONFIG_DEFAULT_GRPC_STREAMS },
		{ GRPC_ARG_MAX_METADATA_SIZE, GW_CONFIG_DEFAULT_METADATA_BYTES },
		{ GRPC_ARG_MAX_CONNECTION_IDLE_MS, GW_CONFIG_DEFAULT_GRPC_IDLE_MS },
		{ GRPC_ARG_MAX_CONNECTION_AGE_MS, GW_CONFIG_DEFAULT_GRPC_AGE_MS },
		{ GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, GW_CONFIG_DEFAULT_GRPC_AGE_GRACE_MS },
		{ GRPC_ARG_KEEPALIVE_TIME_MS, GW_CONFIG_DEFAULT_KEEPALIVE_MS },
		{ GRPC_ARG_KEEPALIVE_TIMEOUT_MS, GW_CONFIG_DEFAULT_KEEPALIVE_TIMEOUT_MS },
		{ GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, GW_CONFIG_DEFAULT_MIN_PING_MS },
		{ GRPC_ARG_HTTP2_MAX_PING_STRIKES, GW_CONFIG_DEFAULT_PING_STRIKES },
		{ GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, GW_CONFIG_DEFAULT_HANDSHAKE_MS },
		{ GRPC_ARG_HTTP2_BDP_PROBE, 0 },
		{ GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, GW_GRPCARGS_STREAM_WINDOW },
	};

	grpc_init();
	check(BASE, w, sizeof w / sizeof w[0], (size_t)(GW_CONFIG_DEFAULT_MEMORY_MIB / 2) << 20);
	grpc_shutdown();
}

Test(grpcargs, configured_and_zero_durations_left_out)
{
	static const char yaml[] =
		"limits: {max_message_bytes: 1000}\n"
		"process: {memory_mib: 0}\n"
		"grpc: {max_concurrent_streams: 7, max_connection_idle_ms: 0, max_connection_age_ms: 0,\n"
		"       max_connection_age_grace_ms: 0, keepalive_time_ms: 0, max_ping_strikes: 0,\n"
		"       max_metadata_bytes: 4096, handshake_timeout_ms: 3000}\n" BASE;
	static const struct want w[] = {
		{ GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 1000 },
		{ GRPC_ARG_MAX_CONCURRENT_STREAMS, 7 },
		{ GRPC_ARG_MAX_METADATA_SIZE, 4096 },
		{ GRPC_ARG_MAX_CONNECTION_IDLE_MS, -1 },
		{ GRPC_ARG_MAX_CONNECTION_AGE_MS, -1 },
		{ GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, -1 },
		{ GRPC_ARG_KEEPALIVE_TIME_MS, -1 },
		{ GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0 },
		{ GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 3000 },
	};

	grpc_init();
	check(yaml, w, sizeof w / sizeof w[0], 0);	/* no ceiling, no quota given: no quota */
	grpc_shutdown();
}
