/*
 * grpcargs: config -> grpc_channel_args. See grpcargs.h.
 */
#include "gateway/grpcargs.h"

#include <limits.h>
#include <string.h>

#include "gateway/config/config.h"

static void grpcargs_int(struct gw_grpcargs *a, const char *key, long long v)
{
	grpc_arg *g = &a->args[a->cargs.num_args++];

	g->type = GRPC_ARG_INTEGER;
	g->key = (char *)key;
	g->value.integer = v > INT_MAX ? INT_MAX : (int)v;
}

/* A duration: 0 leaves gRPC's default. */
static void grpcargs_ms(struct gw_grpcargs *a, const char *key, long ms)
{
	if (ms > 0)
		grpcargs_int(a, key, ms);
}

int gw_grpcargs_build(struct gw_grpcargs *a, const struct gw_config *cfg)
{
	const struct gw_grpc_cfg *g = &cfg->grpc;
	size_t maxmsg = cfg->max_message_bytes ? cfg->max_message_bytes : GW_CONFIG_DEFAULT_MAX_MESSAGE;
	unsigned quota_mib = gw_config_grpc_quota_mib(cfg);

	memset(a, 0, sizeof *a);
	a->cargs.args = a->args;
	grpcargs_int(a, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (long long)maxmsg);
	grpcargs_int(a, GRPC_ARG_MAX_CONCURRENT_STREAMS, g->max_concurrent_streams);
	grpcargs_int(a, GRPC_ARG_MAX_METADATA_SIZE, g->max_metadata_bytes);
	grpcargs_ms(a, GRPC_ARG_MAX_CONNECTION_IDLE_MS, g->max_connection_idle_ms);
	grpcargs_ms(a, GRPC_ARG_MAX_CONNECTION_AGE_MS, g->max_connection_age_ms);
	grpcargs_ms(a, GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, g->max_connection_age_grace_ms);
	grpcargs_ms(a, GRPC_ARG_KEEPALIVE_TIME_MS, g->keepalive_time_ms);
	grpcargs_ms(a, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, g->keepalive_timeout_ms);
	grpcargs_ms(a, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, g->min_recv_ping_interval_ms);
	grpcargs_int(a, GRPC_ARG_HTTP2_MAX_PING_STRIKES, g->max_ping_strikes);
	grpcargs_ms(a, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, g->handshake_timeout_ms);
	/* A fixed window instead of BDP probing: see GW_GRPCARGS_STREAM_WINDOW. */
	grpcargs_int(a, GRPC_ARG_HTTP2_BDP_PROBE, 0);
	grpcargs_int(a, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, GW_GRPCARGS_STREAM_WINDOW);
	if (quota_mib) {
		grpc_arg *q = &a->args[a->cargs.num_args++];

		a->quota = grpc_resource_quota_create("animate3d-gateway");
		if (!a->quota)
			return -1;
		a->quota_bytes = (size_t)quota_mib << 20;
		grpc_resource_quota_resize(a->quota, a->quota_bytes);
		q->type = GRPC_ARG_POINTER;
		q->key = (char *)GRPC_ARG_RESOURCE_QUOTA;
		q->value.pointer.p = a->quota;
		q->value.pointer.vtable = grpc_resource_quota_arg_vtable();
	}
	return 0;
}

void gw_grpcargs_release(struct gw_grpcargs *a)
{
	if (a->quota)
		grpc_resource_quota_unref(a->quota);
	a->quota = NULL;
}

const grpc_arg *gw_grpcargs_find(const struct gw_grpcargs *a, const char *key)
{
	for (size_t i = 0; i < a->cargs.num_args; i++)
		if (strcmp(a->args[i].key, key) == 0)
			return &a->args[i];
	return NULL;
}
