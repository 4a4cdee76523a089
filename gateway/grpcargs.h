/*
 * grpcargs: the gRPC server's channel arguments, from the configuration (grpc:, limits:,
 * process:). What bounds a connection's memory and life in gRPC core 1.51:
 *
 *   grpc.resource_quota                    grpc.memory_quota_mib (default: process.memory_mib / 2):
 *                                          above it gRPC core shrinks windows and cancels streams
 *   grpc.max_concurrent_streams            grpc.max_concurrent_streams (only once the client
 *                                          acknowledged our SETTINGS: one that never does is not
 *                                          held to it in 1.51; the memory guard is what bounds it)
 *   grpc.max_receive_message_length        limits.max_message_bytes
 *   grpc.max_metadata_size                 grpc.max_metadata_bytes
 *   grpc.max_connection_idle_ms / _age_ms / _age_grace_ms
 *   grpc.keepalive_time_ms / _timeout_ms   a peer that stops answering pings is closed
 *   grpc.http2.min_ping_interval_without_data_ms, grpc.http2.max_ping_strikes   ping floods
 *   grpc.server_handshake_timeout_ms       TLS handshake and the client's SETTINGS, from accept
 *   grpc.http2.bdp_probe = 0, grpc.http2.lookahead_bytes = GW_GRPCARGS_STREAM_WINDOW
 *                                          what a client may send on one stream before the
 *                                          gateway reads it: with BDP probing and no quota
 *                                          pressure gRPC grows the window to tens of MiB, and a
 *                                          client-streaming upload whose storage is slower than
 *                                          its client parked that much in gRPC core (issue 21:
 *                                          +50..70 MiB peak RSS per 256 MiB upload, 22 with this)
 *
 * A 0 duration leaves gRPC's default (no limit). There is no connection-count argument in 1.51:
 * connections are bounded by the descriptors left to them (gateway/base/fdlimit.h) and their
 * memory by the quota and the guard (gateway/base/memguard.h).
 */
#ifndef A3D_GATEWAY_GRPCARGS_H
#define A3D_GATEWAY_GRPCARGS_H

#include <grpc/grpc.h>

#define GW_GRPCARGS_MAX 16
/* Per-stream receive window (bytes a client may send ahead of our reads). 4 MiB keeps an upload
 * of 1 MiB messages streaming on loopback and is 80 MB/s at 50 ms of round trip. */
#define GW_GRPCARGS_STREAM_WINDOW (4 << 20)

struct gw_config;

struct gw_grpcargs {
	grpc_arg args[GW_GRPCARGS_MAX];
	grpc_channel_args cargs;	/* { n, args }: what grpc_server_create takes */
	grpc_resource_quota *quota;	/* ours until gw_grpcargs_release (the server refs its own) */
	size_t quota_bytes;		/* 0: no quota */
};

/* Fills a from cfg. 0, or -1 when the quota cannot be created. Needs grpc_init() first when a
 * quota is configured. */
int gw_grpcargs_build(struct gw_grpcargs *a, const struct gw_config *cfg);
/* Drops our reference to the quota (after grpc_server_create). */
void gw_grpcargs_release(struct gw_grpcargs *a);
/* The argument named key, or NULL (for tests and the start-up log). */
const grpc_arg *gw_grpcargs_find(const struct gw_grpcargs *a, const char *key);

#endif
