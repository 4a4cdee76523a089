/*
 * config_net: the sections that bound what callers can take from the process (issue 13):
 *
 *   process: { open_files_reserve, memory_mib }
 *   http:    { max_connections }
 *   rest:    { max_connections, max_body_bytes, max_header_bytes, timeout_s, call_timeout_ms,
 *              session_ttl_s }
 *   grpc:    { max_concurrent_streams, memory_quota_mib, max_connection_idle_ms,
 *              max_connection_age_ms, max_connection_age_grace_ms, keepalive_time_ms,
 *              keepalive_timeout_ms, min_recv_ping_interval_ms, max_ping_strikes,
 *              max_metadata_bytes, handshake_timeout_ms, probe_interval_ms, probe_timeout_ms,
 *              probe_failures, max_resets_per_s, shed_backlog_kib, io_thread_nice }
 *
 * Every key is an integer in a fixed range, so each section is one table of {key, range, field}.
 * What they mean is in config.h (struct gw_process_cfg, gw_http_cfg, gw_grpc_cfg); the checks
 * against the running process (RLIMIT_NOFILE) happen at start-up, where the limit is known.
 */
#include "gateway/config/config_int.h"


#define NET_MAX_MIB (1u << 20)		/* 1 TiB: a ceiling beyond any machine we run on */
#define NET_MAX_MS (30ll * 86400 * 1000)	/* 30 days, for every duration */
#define NET_MIN_MEMORY_MIB 64		/* below this the gateway cannot even start its caches */

/* One integer key: its name, range, and where it goes (exactly one of l, u is set). */
struct net_key {
	const char *name;
	long long min, max;
	long *l;
	unsigned *u;
};

static void net_section(struct gw_cfg_parse *p, yaml_node_t *n, const char *section,
			const struct net_key *keys, size_t nkeys)
{
	const char *names[GW_CFG_MAP_KEYS_MAX];
	yaml_node_t *v[GW_CFG_MAP_KEYS_MAX];
	char path[GW_CFG_PATH_MAX];
	long long x;

	for (size_t i = 0; i < nkeys; i++)
		names[i] = keys[i].name;
	if (gw_cfg_map(p, n, section, names, nkeys, v, NULL) < 0)
		return;
	for (size_t i = 0; i < nkeys; i++) {
		if (!v[i])
			continue;
		gw_cfg_pathf(path, sizeof(path), "%s.%s", section, keys[i].name);
		if (gw_cfg_long(p, v[i], path, keys[i].min, keys[i].max, &x) < 0)
			continue;
		if (keys[i].l)
			*keys[i].l = (long)x;
		else
			*keys[i].u = (unsigned)x;
	}
}

void gw_cfg_net_defaults(struct gw_config *cfg)
{
	cfg->process.open_files_reserve = GW_CONFIG_DEFAULT_FD_RESERVE;
	cfg->process.memory_mib = GW_CONFIG_DEFAULT_MEMORY_MIB;
	cfg->http.max_connections = 0;
	cfg->rest = (struct gw_rest_cfg){
		.max_connections = 0,
		.max_body_bytes = GW_CONFIG_DEFAULT_REST_BODY,
		.max_header_bytes = GW_CONFIG_DEFAULT_REST_HEADERS,
		.timeout_s = GW_CONFIG_DEFAULT_REST_TIMEOUT_S,
		.call_timeout_ms = GW_CONFIG_DEFAULT_REST_CALL_MS,
		.session_ttl_s = GW_CONFIG_DEFAULT_REST_SESSION_S,
	};
	cfg->grpc = (struct gw_grpc_cfg){
		.max_concurrent_streams = GW_CONFIG_DEFAULT_GRPC_STREAMS,
		.memory_quota_mib = 0,
		.max_connection_idle_ms = GW_CONFIG_DEFAULT_GRPC_IDLE_MS,
		.max_connection_age_ms = GW_CONFIG_DEFAULT_GRPC_AGE_MS,
		.max_connection_age_grace_ms = GW_CONFIG_DEFAULT_GRPC_AGE_GRACE_MS,
		.keepalive_time_ms = GW_CONFIG_DEFAULT_KEEPALIVE_MS,
		.keepalive_timeout_ms = GW_CONFIG_DEFAULT_KEEPALIVE_TIMEOUT_MS,
		.min_recv_ping_interval_ms = GW_CONFIG_DEFAULT_MIN_PING_MS,
		.max_ping_strikes = GW_CONFIG_DEFAULT_PING_STRIKES,
		.max_metadata_bytes = GW_CONFIG_DEFAULT_METADATA_BYTES,
		.handshake_timeout_ms = GW_CONFIG_DEFAULT_HANDSHAKE_MS,
		.probe_interval_ms = GW_CONFIG_DEFAULT_PROBE_INTERVAL_MS,
		.probe_timeout_ms = GW_CONFIG_DEFAULT_PROBE_TIMEOUT_MS,
		.probe_failures = GW_CONFIG_DEFAULT_PROBE_FAILURES,
		.max_resets_per_s = GW_CONFIG_DEFAULT_MAX_RESETS_PER_S,
		.shed_backlog_kib = GW_CONFIG_DEFAULT_SHED_BACKLOG_KIB,
		.io_thread_nice = GW_CONFIG_DEFAULT_IO_THREAD_NICE,
	};
}

void gw_cfg_process(struct gw_cfg_parse *p, yaml_node_t *n)
{
	struct gw_process_cfg *c = &p->cfg->process;
	const struct net_key keys[] = {
		{ "open_files_reserve", 16, 1 << 20, NULL, &c->open_files_reserve },
		{ "memory_mib", 0, NET_MAX_MIB, NULL, &c->memory_mib },
	};

	net_section(p, n, "process", keys, sizeof(keys) / sizeof(keys[0]));
}

void gw_cfg_http(struct gw_cfg_parse *p, yaml_node_t *n)
{
	const struct net_key keys[] = {
		{ "max_connections", 0, 1 << 20, NULL, &p->cfg->http.max_connections },
	};

	net_section(p, n, "http", keys, sizeof(keys) / sizeof(keys[0]));
}

void gw_cfg_rest(struct gw_cfg_parse *p, yaml_node_t *n)
{
	struct gw_rest_cfg *c = &p->cfg->rest;
	const struct net_key keys[] = {
		{ "max_connections", 0, 1 << 20, NULL, &c->max_connections },
		{ "max_body_bytes", 1024, 64 << 20, NULL, &c->max_body_bytes },
		{ "max_header_bytes", 1024, 1 << 20, NULL, &c->max_header_bytes },
		{ "timeout_s", 1, 3600, NULL, &c->timeout_s },
		{ "call_timeout_ms", 100, 3600000, &c->call_timeout_ms, NULL },
		{ "session_ttl_s", 60, 30 * 86400, &c->session_ttl_s, NULL },
	};

	net_section(p, n, "rest", keys, sizeof(keys) / sizeof(keys[0]));
}

void gw_cfg_grpc(struct gw_cfg_parse *p, yaml_node_t *n)
{
	struct gw_grpc_cfg *c = &p->cfg->grpc;
	const struct net_key keys[] = {
		{ "max_concurrent_streams", 1, 100000, NULL, &c->max_concurrent_streams },
		{ "memory_quota_mib", 0, NET_MAX_MIB, NULL, &c->memory_quota_mib },
		{ "max_connection_idle_ms", 0, NET_MAX_MS, &c->max_connection_idle_ms, NULL },
		{ "max_connection_age_ms", 0, NET_MAX_MS, &c->max_connection_age_ms, NULL },
		{ "max_connection_age_grace_ms", 0, NET_MAX_MS, &c->max_connection_age_grace_ms, NULL },
		{ "keepalive_time_ms", 0, NET_MAX_MS, &c->keepalive_time_ms, NULL },
		{ "keepalive_timeout_ms", 1, NET_MAX_MS, &c->keepalive_timeout_ms, NULL },
		{ "min_recv_ping_interval_ms", 0, NET_MAX_MS, &c->min_recv_ping_interval_ms, NULL },
		{ "max_ping_strikes", 0, 1000, NULL, &c->max_ping_strikes },
		{ "max_metadata_bytes", 1024, 1 << 20, NULL, &c->max_metadata_bytes },
		{ "handshake_timeout_ms", 100, NET_MAX_MS, &c->handshake_timeout_ms, NULL },
		{ "probe_interval_ms", 0, 3600000, &c->probe_interval_ms, NULL },
		{ "probe_timeout_ms", 10, 3600000, &c->probe_timeout_ms, NULL },
		{ "probe_failures", 1, 100, NULL, &c->probe_failures },
		{ "max_resets_per_s", 0, 1000000, NULL, &c->max_resets_per_s },
		{ "shed_backlog_kib", 0, 1 << 20, NULL, &c->shed_backlog_kib },
		{ "io_thread_nice", 0, 19, NULL, &c->io_thread_nice },
	};

	net_section(p, n, "grpc", keys, sizeof(keys) / sizeof(keys[0]));
}

void gw_cfg_net_check(struct gw_cfg_parse *p, yaml_node_t *process_key, yaml_node_t *grpc_key)
{
	const struct gw_config *cfg = p->cfg;

	if (cfg->process.memory_mib && cfg->process.memory_mib < NET_MIN_MEMORY_MIB)
		GW_CFG_ERR(p, process_key, "process.memory_mib must be 0 (no ceiling) or >= %u",
			   NET_MIN_MEMORY_MIB);
	if (cfg->process.memory_mib && cfg->grpc.memory_quota_mib > cfg->process.memory_mib)
		GW_CFG_ERR(p, grpc_key, "grpc.memory_quota_mib (%u) must not exceed process.memory_mib (%u)",
			   cfg->grpc.memory_quota_mib, cfg->process.memory_mib);
	if (cfg->grpc.probe_interval_ms && cfg->grpc.probe_timeout_ms >= cfg->grpc.probe_interval_ms)
		GW_CFG_ERR(p, grpc_key, "grpc.probe_timeout_ms must be shorter than grpc.probe_interval_ms");
}

/* Field by field: the structs have padding, which memcmp would compare too. */
int gw_config_net_same(const struct gw_config *a, const struct gw_config *b)
{
	const struct gw_grpc_cfg *x = &a->grpc, *y = &b->grpc;

	return a->process.open_files_reserve == b->process.open_files_reserve &&
	       a->process.memory_mib == b->process.memory_mib &&
	       a->http.max_connections == b->http.max_connections &&
	       a->rest.max_connections == b->rest.max_connections &&
	       a->rest.max_body_bytes == b->rest.max_body_bytes &&
	       a->rest.max_header_bytes == b->rest.max_header_bytes &&
	       a->rest.timeout_s == b->rest.timeout_s &&
	       x->max_concurrent_streams == y->max_concurrent_streams &&
	       x->memory_quota_mib == y->memory_quota_mib &&
	       x->max_connection_idle_ms == y->max_connection_idle_ms &&
	       x->max_connection_age_ms == y->max_connection_age_ms &&
	       x->max_connection_age_grace_ms == y->max_connection_age_grace_ms &&
	       x->keepalive_time_ms == y->keepalive_time_ms &&
	       x->keepalive_timeout_ms == y->keepalive_timeout_ms &&
	       x->min_recv_ping_interval_ms == y->min_recv_ping_interval_ms &&
	       x->max_ping_strikes == y->max_ping_strikes &&
	       x->max_metadata_bytes == y->max_metadata_bytes &&
	       x->handshake_timeout_ms == y->handshake_timeout_ms &&
	       x->probe_interval_ms == y->probe_interval_ms &&
	       x->probe_timeout_ms == y->probe_timeout_ms && x->probe_failures == y->probe_failures &&
	       x->max_resets_per_s == y->max_resets_per_s &&
	       x->shed_backlog_kib == y->shed_backlog_kib && x->io_thread_nice == y->io_thread_nice;
}

unsigned gw_config_grpc_quota_mib(const struct gw_config *cfg)
{
	return cfg->grpc.memory_quota_mib ? cfg->grpc.memory_quota_mib : cfg->process.memory_mib / 2;
}
