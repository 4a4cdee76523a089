/*
 * config_sections: the top-level sections (listen, tls, log, state, upstream, cache, limits,
 * webhooks, rate, uploads, watch) and the root mapping that dispatches to them. Accounts and
 * tenants, the lists with per-entry rules, are in config_tenants.c; process, http and grpc in
 * config_net.c; state.postgres and cluster in config_pg.c; redis in config_redis.c.
 */
#include "gateway/config/config_int.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/base/ratelimit.h"

/* "host:port", "[v6]:port"; port 0..65535 (0 = any free port, useful in tests). */
static int cfg_hostport_ok(const char *s)
{
	const char *colon, *q;
	size_t digits = 0;
	long port = 0;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb == s + 1 || rb[1] != ':')
			return 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s || memchr(s, ':', (size_t)(colon - s)))
			return 0;
	}
	for (q = s; q < colon; q++)
		if ((unsigned char)*q <= ' ' || *q == '/' || *q == '@')
			return 0;
	for (q = colon + 1; *q; q++) {
		if (*q < '0' || *q > '9' || ++digits > 5)
			return 0;
		port = port * 10 + (*q - '0');
	}
	return digits > 0 && port <= 65535;
}

static void cfg_listen(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "grpc", "http", "rest" };
	static const char *const eg[] = { "50051", "8080", "8081" };
	yaml_node_t *v[3];
	char **dst[3] = { &p->cfg->grpc_listen, &p->cfg->http_listen, &p->cfg->rest_listen };

	if (gw_cfg_map(p, n, "listen", keys, 3, v, NULL) < 0)
		return;
	for (int i = 0; i < 3; i++) {
		char path[GW_CFG_PATH_MAX];

		if (!v[i])
			continue;
		gw_cfg_pathf(path, sizeof(path), "listen.%s", keys[i]);
		if (gw_cfg_string(p, v[i], path, dst[i]) < 0)
			continue;
		if (!cfg_hostport_ok(*dst[i]))
			GW_CFG_ERR(p, v[i], "%s must be host:port, e.g. 127.0.0.1:%s", path, eg[i]);
	}
}

static void cfg_tls(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "cert_file", "key_file", "client_ca_file",
					     "client_cert_required" };
	yaml_node_t *v[4];
	char **dst[3] = { &p->cfg->tls.cert_file, &p->cfg->tls.key_file, &p->cfg->tls.client_ca_file };

	if (gw_cfg_map(p, n, "tls", keys, 4, v, NULL) < 0)
		return;
	for (int i = 0; i < 3; i++) {
		char path[GW_CFG_PATH_MAX];

		gw_cfg_pathf(path, sizeof(path), "tls.%s", keys[i]);
		if (v[i])
			gw_cfg_string(p, v[i], path, dst[i]);
	}
	if (v[3])
		gw_cfg_bool(p, v[3], "tls.client_cert_required", &p->cfg->tls.client_cert_required);
}

static void cfg_log(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "level" };
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	yaml_node_t *v[1];
	char *lvl = NULL;

	if (gw_cfg_map(p, n, "log", keys, 1, v, NULL) < 0 || !v[0])
		return;
	if (gw_cfg_string(p, v[0], "log.level", &lvl) < 0)
		return;
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(lvl, levels[i]) == 0) {
			free(p->cfg->log_level);
			p->cfg->log_level = lvl;
			return;
		}
	}
	GW_CFG_ERR(p, v[0], "log.level must be debug, info, warn or error");
	free(lvl);
}

static void cfg_state(struct gw_cfg_parse *p, yaml_node_t *n)
{
	enum { K_PATH, K_MEMORY, K_RO, K_TTL, K_SETTLE, K_PG, K_N };
	static const char *const keys[K_N] = { "path", "memory", "read_only", "idempotency_ttl_s",
					       "reconcile_settle_ms", "postgres" };
	yaml_node_t *v[K_N], *k[K_N];
	int memory = 0;
	long long x;

	if (gw_cfg_map(p, n, "state", keys, K_N, v, k) < 0)
		return;
	if (v[K_SETTLE] && gw_cfg_long(p, v[K_SETTLE], "state.reconcile_settle_ms", 0, 3600000, &x) == 0)
		p->cfg->state.reconcile_settle_ms = (long)x;
	if (v[K_MEMORY] && gw_cfg_bool(p, v[K_MEMORY], "state.memory", &memory) < 0)
		return;
	if (v[K_RO] && gw_cfg_bool(p, v[K_RO], "state.read_only", &p->cfg->state.read_only) < 0)
		return;
	/* Below one minute the owner module raises it anyway (a key must outlive its call). */
	if (v[K_TTL] && gw_cfg_long(p, v[K_TTL], "state.idempotency_ttl_s", 60, GW_CONFIG_MAX_IDEM_TTL_S, &x) == 0)
		p->cfg->state.idempotency_ttl_s = x;
	if (v[K_PG]) {
		/* memory: false and read_only: false say nothing; the others pick a second backend (or
		 * a read-only mode the shared store does not have: one replica cannot make the others
		 * stop writing). */
		if (v[K_PATH])
			GW_CFG_ERR(p, k[K_PG], "state.postgres and state.path are exclusive (one state backend)");
		if (memory)
			GW_CFG_ERR(p, k[K_PG], "state.postgres and state.memory: true are exclusive (one state backend)");
		if (p->cfg->state.read_only)
			GW_CFG_ERR(p, k[K_PG], "state.postgres and state.read_only are exclusive (read_only is "
				   "for a SQLite file)");
		gw_cfg_postgres(p, v[K_PG]);
		p->cfg->state.memory_only = 0;
		return;
	}
	if (v[K_PATH]) {
		if (memory) {
			GW_CFG_ERR(p, v[K_PATH], "state.path and state.memory: true are exclusive");
			return;
		}
		if (gw_cfg_string(p, v[K_PATH], "state.path", &p->cfg->state.path) == 0)
			p->cfg->state.memory_only = 0;
		return;
	}
	if (!memory) {
		GW_CFG_ERR(p, n, "state needs path, memory: true or postgres");
		return;
	}
	/* A read-only memory store would be empty forever: certainly a mistake. */
	if (p->cfg->state.read_only) {
		GW_CFG_ERR(p, v[K_RO], "state.read_only needs state.path (a memory store starts empty)");
		return;
	}
	p->cfg->state.memory_only = 1;
}

static void cfg_upstream(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "connect_timeout_ms", "default_timeout_ms", "max_response_bytes",
					    "session_refresh_s" };
	yaml_node_t *v[4];
	long long x;

	if (gw_cfg_map(p, n, "upstream", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "upstream.connect_timeout_ms", 1, 3600000, &x) == 0)
		p->cfg->upstream.connect_timeout_ms = (long)x;
	if (v[1] && gw_cfg_long(p, v[1], "upstream.default_timeout_ms", 1, 3600000, &x) == 0)
		p->cfg->upstream.default_timeout_ms = (long)x;
	if (v[2] && gw_cfg_long(p, v[2], "upstream.max_response_bytes", 1, 1ll << 32, &x) == 0)
		p->cfg->upstream.max_response_bytes = (size_t)x;
	if (v[3] && gw_cfg_long(p, v[3], "upstream.session_refresh_s", 0, 30ll * 86400, &x) == 0)
		p->cfg->upstream.session_refresh_s = (long)x;
}

static void cfg_cache(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "status_ttl_ms", "max_entries", "batch_window_ms", "batch_max" };
	yaml_node_t *v[4];
	long long x;

	if (gw_cfg_map(p, n, "cache", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "cache.status_ttl_ms", 0, 3600000, &x) == 0)
		p->cfg->cache.status_ttl_ms = (long)x;
	if (v[1] && gw_cfg_long(p, v[1], "cache.max_entries", 1, 100000000, &x) == 0)
		p->cfg->cache.max_entries = (size_t)x;
	if (v[2] && gw_cfg_long(p, v[2], "cache.batch_window_ms", 0, 10000, &x) == 0)
		p->cfg->cache.batch_window_ms = (long)x;
	if (v[3] && gw_cfg_long(p, v[3], "cache.batch_max", 1, GW_CONFIG_MAX_BATCH, &x) == 0)
		p->cfg->cache.batch_max = (size_t)x;
}

static void cfg_limits(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "max_message_bytes", "upload_chunk_bytes" };
	yaml_node_t *v[2];
	long long x;

	if (gw_cfg_map(p, n, "limits", keys, 2, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "limits.max_message_bytes", 1, 1ll << 30, &x) == 0)
		p->cfg->max_message_bytes = (size_t)x;
	if (v[1] && gw_cfg_long(p, v[1], "limits.upload_chunk_bytes", 1, 1ll << 30, &x) == 0) {
		if (x % GW_CONFIG_CHUNK_UNIT)
			GW_CFG_ERR(p, v[1], "limits.upload_chunk_bytes must be a multiple of 256 KiB (262144)");
		else
			p->cfg->upload_chunk_bytes = (size_t)x;
	}
}

/* webhooks.path_prefix: '/' ... '/', only unreserved URL characters and '/', so it needs no
 * escaping in a URL and cannot carry a query ('?') or an encoded byte ('%'). */
static int cfg_webhook_prefix_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > GW_CONFIG_MAX_WEBHOOK_PREFIX || s[0] != '/' || s[n - 1] != '/')
		return 0;
	for (const char *q = s; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      *q == '-' || *q == '.' || *q == '_' || *q == '~' || *q == '/'))
			return 0;
	return 1;
}

/* webhooks.delivery: { max_per_endpoint, timeout_ms, give_up_s, disable_after_s }. */
static void cfg_webhook_delivery(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "max_per_endpoint", "timeout_ms", "give_up_s",
					    "disable_after_s" };
	yaml_node_t *v[4];
	long long x;

	if (gw_cfg_map(p, n, "webhooks.delivery", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "webhooks.delivery.max_per_endpoint", 1,
				GW_CONFIG_MAX_WH_PER_ENDPOINT, &x) == 0)
		p->cfg->webhooks.delivery.max_per_endpoint = (unsigned)x;
	if (v[1] && gw_cfg_long(p, v[1], "webhooks.delivery.timeout_ms", 100,
				GW_CONFIG_MAX_WH_TIMEOUT_MS, &x) == 0)
		p->cfg->webhooks.delivery.timeout_ms = (long)x;
	if (v[2] && gw_cfg_long(p, v[2], "webhooks.delivery.give_up_s", 1, GW_CONFIG_MAX_WH_S, &x) == 0)
		p->cfg->webhooks.delivery.give_up_s = (long)x;
	if (v[3] && gw_cfg_long(p, v[3], "webhooks.delivery.disable_after_s", 1, GW_CONFIG_MAX_WH_S,
				&x) == 0)
		p->cfg->webhooks.delivery.disable_after_s = (long)x;
}

static void cfg_webhooks(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "path_prefix", "public_url", "path_token_file",
					    "path_token_grace_s", "refresh_per_second", "refresh_burst",
					    "allow_private_destinations", "upstream_passthrough",
					    "delivery" };
	yaml_node_t *v[9];
	char *s = NULL;
	long long x;
	double d;

	if (gw_cfg_map(p, n, "webhooks", keys, 9, v, NULL) < 0)
		return;
	if (v[6])
		gw_cfg_bool(p, v[6], "webhooks.allow_private_destinations",
			    &p->cfg->webhooks.allow_private_destinations);
	if (v[7])
		gw_cfg_bool(p, v[7], "webhooks.upstream_passthrough",
			    &p->cfg->webhooks.upstream_passthrough);
	if (v[8])
		cfg_webhook_delivery(p, v[8]);
	/* The token itself is read (and its file's mode checked) by gateway/svc/webhook_token.c at
	 * start and on SIGHUP: the file is a Secret, never part of the configuration. */
	if (v[2] && gw_cfg_string(p, v[2], "webhooks.path_token_file", &p->cfg->webhooks.path_token_file) == 0)
		p->cfg->webhooks.path_token_line = gw_cfg_line(v[2]);
	if (v[3] && gw_cfg_long(p, v[3], "webhooks.path_token_grace_s", 0, GW_CONFIG_MAX_TOKEN_GRACE_S,
				&x) == 0)
		p->cfg->webhooks.path_token_grace_s = (long)x;
	if (v[4])
		gw_cfg_double(p, v[4], "webhooks.refresh_per_second", 1, &p->cfg->webhooks.refresh_per_second);
	if (v[5] && gw_cfg_double(p, v[5], "webhooks.refresh_burst", 1, &d) == 0) {
		if (d < 1)	/* a bucket smaller than one token would refuse every refresh */
			GW_CFG_ERR(p, v[5], "webhooks.refresh_burst must be >= 1");
		else
			p->cfg->webhooks.refresh_burst = d;
	}
	if (v[0] && gw_cfg_string(p, v[0], "webhooks.path_prefix", &s) == 0) {
		if (!cfg_webhook_prefix_ok(s)) {
			GW_CFG_ERR(p, v[0], "webhooks.path_prefix must start and end with '/', use only letters, "
				"digits, '-', '.', '_', '~' and '/', and be at most %d bytes",
				GW_CONFIG_MAX_WEBHOOK_PREFIX);
		} else {
			free(p->cfg->webhooks.path_prefix);
			p->cfg->webhooks.path_prefix = s;
			s = NULL;
		}
	}
	free(s);
	s = NULL;
	if (v[1] && gw_cfg_string(p, v[1], "webhooks.public_url", &s) == 0) {
		size_t len = strlen(s);

		if (len > GW_CONFIG_MAX_PUBLIC_URL || !gw_cfg_base_url_ok(s)) {
			GW_CFG_ERR(p, v[1], "webhooks.public_url must be an http:// or https:// URL without "
				"credentials, query or fragment, at most %d bytes", GW_CONFIG_MAX_PUBLIC_URL);
		} else {
			while (len > 0 && s[len - 1] == '/')
				s[--len] = '\0';
			free(p->cfg->webhooks.public_url);
			p->cfg->webhooks.public_url = s;
			s = NULL;
		}
	}
	free(s);
}

/* uploads: { max_concurrent, max_per_tenant, idle_timeout_ms, max_message_bytes }. */
static void cfg_uploads(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "max_concurrent", "max_per_tenant", "idle_timeout_ms",
					    "max_message_bytes" };
	yaml_node_t *v[4];
	long long x;

	if (gw_cfg_map(p, n, "uploads", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "uploads.max_concurrent", 1, GW_CONFIG_MAX_SLOTS, &x) == 0)
		p->cfg->uploads.max_concurrent = (unsigned)x;
	if (v[1] && gw_cfg_long(p, v[1], "uploads.max_per_tenant", 1, GW_CONFIG_MAX_SLOTS, &x) == 0)
		p->cfg->uploads.max_per_tenant = (unsigned)x;
	if (v[2] && gw_cfg_long(p, v[2], "uploads.idle_timeout_ms", 1, 3600000, &x) == 0)
		p->cfg->uploads.idle_timeout_ms = (long)x;
	if (v[3] && gw_cfg_long(p, v[3], "uploads.max_message_bytes", 1, 1ll << 30, &x) == 0)
		p->cfg->uploads.max_message_bytes = (size_t)x;
}

/* watch: { max_streams, max_streams_per_tenant, health_max_streams, health_max_streams_per_peer }. */
static void cfg_watch(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "max_streams", "max_streams_per_tenant", "health_max_streams",
					    "health_max_streams_per_peer" };
	yaml_node_t *v[4];
	long long x;

	if (gw_cfg_map(p, n, "watch", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "watch.max_streams", 1, GW_CONFIG_MAX_SLOTS, &x) == 0)
		p->cfg->watch.max_streams = (unsigned)x;
	if (v[1] && gw_cfg_long(p, v[1], "watch.max_streams_per_tenant", 1, GW_CONFIG_MAX_SLOTS, &x) == 0)
		p->cfg->watch.max_streams_per_tenant = (unsigned)x;
	if (v[2] && gw_cfg_long(p, v[2], "watch.health_max_streams", 1, GW_CONFIG_MAX_HEALTH_WATCH, &x) == 0)
		p->cfg->watch.health_max_streams = (unsigned)x;
	if (v[3] && gw_cfg_long(p, v[3], "watch.health_max_streams_per_peer", 1, GW_CONFIG_MAX_HEALTH_WATCH,
				&x) == 0)
		p->cfg->watch.health_max_streams_per_peer = (unsigned)x;
}

/* rate.costs / tenants[i].rate.costs: { <method short name>: <cost 0..GW_RATELIMIT_MAX_COST> }. */
void gw_cfg_costs(struct gw_cfg_parse *p, yaml_node_t *n, const char *base, struct gw_costs_cfg *out)
{
	int first_line[GW_CONFIG_MAX_COSTS] = { 0 };
	char path[GW_CFG_PATH_MAX];

	if (gw_cfg_is_null(n))
		return;
	if (!n || n->type != YAML_MAPPING_NODE) {
		GW_CFG_ERR(p, n, "%s must be a mapping of method names to costs, e.g. { StartJob: 5 }", base);
		return;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = gw_cfg_node(p, pr->key);
		const char *name;
		long long x;
		size_t m;

		if (!k || k->type != YAML_SCALAR_NODE) {
			GW_CFG_ERR(p, k, "%s: keys must be method names", base);
			continue;
		}
		name = (const char *)k->data.scalar.value;
		/* Short names only: the gRPC path would be a second spelling of the same key. */
		if (strchr(name, '/') || strlen(name) != k->data.scalar.length ||
		    strlen(name) >= GW_CONFIG_METHOD_NAME_MAX || !gw_config_method_known(name)) {
			char q[GW_CFG_QUOTE_MAX];

			GW_CFG_ERR(p, k, "%s: unknown method \"%s\" (a method of the API, e.g. StartJob, "
				"UploadVideo, GetStatus)", base, gw_cfg_quote(name, q));
			continue;
		}
		for (m = 0; m < out->n && strcmp(out->e[m].method, name) != 0; m++)
			;
		if (m < out->n) {
			GW_CFG_ERR(p, k, "duplicate key \"%s\" (first at line %d)", name, first_line[m]);
			continue;
		}
		if (out->n >= GW_CONFIG_MAX_COSTS) {
			GW_CFG_ERR(p, k, "%s: more than %d methods", base, GW_CONFIG_MAX_COSTS);
			continue;
		}
		gw_cfg_pathf(path, sizeof(path), "%s.%s", base, name);
		if (gw_cfg_long(p, gw_cfg_node(p, pr->value), path, 0, GW_RATELIMIT_MAX_COST, &x) == 0) {
			first_line[out->n] = gw_cfg_line(k);
			snprintf(out->e[out->n].method, sizeof out->e[out->n].method, "%s", name);
			out->e[out->n].cost = (unsigned)x;
			out->n++;
		}
	}
}

/* Top-level rate: { costs: {...} }: method costs for every tenant's bucket. */
static void cfg_rate(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "costs" };
	yaml_node_t *v[1];

	if (gw_cfg_map(p, n, "rate", keys, 1, v, NULL) < 0)
		return;
	if (v[0])
		gw_cfg_costs(p, v[0], "rate.costs", &p->cfg->costs);
}

/* follower: the job follower's pace (gateway/svc/follower.h). */
static void cfg_follower(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "enabled", "polls_per_second", "poll_interval_ms",
					    "max_poll_interval_ms", "quiet_ms", "scan_interval_ms",
					    "max_jobs" };
	yaml_node_t *v[7];
	long long x;
	double d;

	p->cfg->follower.line = gw_cfg_line(n);
	if (gw_cfg_map(p, n, "follower", keys, 7, v, NULL) < 0)
		return;
	if (v[0])
		gw_cfg_bool(p, v[0], "follower.enabled", &p->cfg->follower.enabled);
	if (v[1] && gw_cfg_double(p, v[1], "follower.polls_per_second", 1, &d) == 0) {
		if (d > 10000)
			GW_CFG_ERR(p, v[1], "follower.polls_per_second must be at most 10000");
		else
			p->cfg->follower.polls_per_second = d;
	}
	if (v[2] && gw_cfg_long(p, v[2], "follower.poll_interval_ms", 100, 86400000, &x) == 0)
		p->cfg->follower.poll_interval_ms = (long)x;
	if (v[3] && gw_cfg_long(p, v[3], "follower.max_poll_interval_ms", 100, 86400000, &x) == 0)
		p->cfg->follower.max_poll_interval_ms = (long)x;
	if (v[4] && gw_cfg_long(p, v[4], "follower.quiet_ms", 100, 7 * 86400000LL, &x) == 0)
		p->cfg->follower.quiet_ms = (long)x;
	if (v[5] && gw_cfg_long(p, v[5], "follower.scan_interval_ms", 100, 3600000, &x) == 0)
		p->cfg->follower.scan_interval_ms = (long)x;
	if (v[6] && gw_cfg_long(p, v[6], "follower.max_jobs", 1, GW_CONFIG_MAX_FOLLOW_JOBS, &x) == 0)
		p->cfg->follower.max_jobs = (size_t)x;
}

/* balance: the upstream balance poller's period (gateway/svc/balance.h). */
static void cfg_balance(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "poll_s" };
	yaml_node_t *v[1];
	long long x;

	if (gw_cfg_map(p, n, "balance", keys, 1, v, NULL) < 0)
		return;
	if (v[0] && gw_cfg_long(p, v[0], "balance.poll_s", 0, GW_CONFIG_MAX_BALANCE_POLL_S, &x) == 0)
		p->cfg->balance.poll_s = (long)x;
}

/* top[]/topk[]: each section's value and key node. -1 if the root is not a mapping (nothing to check). */
int gw_cfg_root(struct gw_cfg_parse *p, yaml_node_t *root, yaml_node_t **top, yaml_node_t **topk)
{
	static const char *const keys[GW_CFG_TOP_NKEYS] = { "listen", "tls", "log", "state", "upstream",
						     "cache", "limits", "accounts", "tenants",
						     "webhooks", "rate", "uploads", "watch", "process",
						     "http", "grpc", "cluster", "redis", "rest", "follower",
						     "balance" };

	if (!root || root->type != YAML_MAPPING_NODE) {
		GW_CFG_ERR(p, root, "the configuration must be a mapping (listen:, accounts:, tenants:, ...)");
		return -1;
	}
	gw_cfg_map(p, root, "configuration", keys, GW_CFG_TOP_NKEYS, top, topk);
	if (top[GW_CFG_TOP_LISTEN])
		cfg_listen(p, top[GW_CFG_TOP_LISTEN]);
	if (top[GW_CFG_TOP_TLS])
		cfg_tls(p, top[GW_CFG_TOP_TLS]);
	if (top[GW_CFG_TOP_LOG])
		cfg_log(p, top[GW_CFG_TOP_LOG]);
	if (top[GW_CFG_TOP_STATE])
		cfg_state(p, top[GW_CFG_TOP_STATE]);
	if (top[GW_CFG_TOP_UPSTREAM])
		cfg_upstream(p, top[GW_CFG_TOP_UPSTREAM]);
	if (top[GW_CFG_TOP_CACHE])
		cfg_cache(p, top[GW_CFG_TOP_CACHE]);
	if (top[GW_CFG_TOP_LIMITS])
		cfg_limits(p, top[GW_CFG_TOP_LIMITS]);
	if (top[GW_CFG_TOP_ACCOUNTS])
		gw_cfg_accounts(p, top[GW_CFG_TOP_ACCOUNTS]);
	if (top[GW_CFG_TOP_TENANTS])
		gw_cfg_tenants(p, top[GW_CFG_TOP_TENANTS]);
	if (top[GW_CFG_TOP_WEBHOOKS])
		cfg_webhooks(p, top[GW_CFG_TOP_WEBHOOKS]);
	if (top[GW_CFG_TOP_RATE])
		cfg_rate(p, top[GW_CFG_TOP_RATE]);
	if (top[GW_CFG_TOP_UPLOADS])
		cfg_uploads(p, top[GW_CFG_TOP_UPLOADS]);
	if (top[GW_CFG_TOP_WATCH])
		cfg_watch(p, top[GW_CFG_TOP_WATCH]);
	if (top[GW_CFG_TOP_PROCESS])
		gw_cfg_process(p, top[GW_CFG_TOP_PROCESS]);
	if (top[GW_CFG_TOP_HTTP])
		gw_cfg_http(p, top[GW_CFG_TOP_HTTP]);
	if (top[GW_CFG_TOP_GRPC])
		gw_cfg_grpc(p, top[GW_CFG_TOP_GRPC]);
	if (top[GW_CFG_TOP_CLUSTER])
		gw_cfg_cluster(p, top[GW_CFG_TOP_CLUSTER]);
	if (top[GW_CFG_TOP_REDIS])
		gw_cfg_redis(p, top[GW_CFG_TOP_REDIS]);
	if (top[GW_CFG_TOP_REST])
		gw_cfg_rest(p, top[GW_CFG_TOP_REST]);
	if (top[GW_CFG_TOP_FOLLOWER])
		cfg_follower(p, top[GW_CFG_TOP_FOLLOWER]);
	if (top[GW_CFG_TOP_BALANCE])
		cfg_balance(p, top[GW_CFG_TOP_BALANCE]);
	return 0;
}
