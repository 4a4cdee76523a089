/*
 * config: YAML -> struct gw_config: the entry points (load, parse, free, lookups), the file read
 * and the anchor and nesting limits before libyaml loads the document, and the cross-field checks
 * once every section is read.
 *
 * libyaml's document loader builds a node tree with a start mark per node, so every error can
 * name its line. The walk is driven by the schema (fixed depth, fixed key tables), never by the
 * tree, so anchors/aliases (even cyclic ones) cannot make it recurse or loop. Every problem is
 * collected in struct gw_errors; the whole file is walked even after the first error. The walk
 * itself is in config_sections.c and config_tenants.c, its readers in config_node.c.
 */
#include "gateway/config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "gateway/config/config_int.h"

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"

/* ---- cross-field checks ---- */

struct cfg_keyref {
	const uint8_t *sha256;
	size_t tenant;
	int line;
};

static int cfg_keyref_cmp(const void *a, const void *b)
{
	const struct cfg_keyref *x = a, *y = b;
	int c = memcmp(x->sha256, y->sha256, 32);

	if (c)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

static void cfg_check_keys(struct gw_cfg_parse *p)
{
	struct gw_config *cfg = p->cfg;
	struct cfg_keyref *refs;
	size_t n = 0;

	for (size_t i = 0; i < cfg->ntenants; i++)
		n += cfg->tenants[i].nkeys;
	if (n < 2)
		return;
	refs = calloc(n, sizeof(*refs));
	if (!refs) {
		gw_errors_add(p->errs, p->file, 0, "out of memory");
		return;
	}
	n = 0;
	for (size_t i = 0; i < cfg->ntenants; i++) {
		for (size_t j = 0; j < cfg->tenants[i].nkeys; j++) {
			refs[n].sha256 = cfg->tenants[i].keys[j].sha256;
			refs[n].tenant = i;
			refs[n].line = cfg->tenants[i].keys[j].line;
			n++;
		}
	}
	/* Sorted, duplicates are neighbours: O(n log n) however many keys the file holds. */
	qsort(refs, n, sizeof(*refs), cfg_keyref_cmp);
	for (size_t i = 1; i < n; i++) {
		static const uint8_t zero[32];

		if (memcmp(refs[i].sha256, refs[i - 1].sha256, 32) != 0 ||
		    memcmp(refs[i].sha256, zero, 32) == 0)	/* zero = a key that failed to parse */
			continue;
		const char *owner = cfg->tenants[refs[i - 1].tenant].name;
		gw_errors_add(p->errs, p->file, refs[i].line,
			      "duplicate API key hash (also at line %d, tenant \"%s\")", refs[i - 1].line,
			      owner ? owner : "?");
	}
	free(refs);
}

/* A section that is there but is not a list was already reported: do not also call it missing. */
static int cfg_bad_list(const yaml_node_t *n)
{
	return n && n->type != YAML_SEQUENCE_NODE && !gw_cfg_is_null(n);
}

/* "host:0" (any free port): two listeners may both say it. Checked for length first: a value
 * shorter than 2 bytes (already reported as not host:port) must not be read before its start. */
static int cfg_any_port(const char *s)
{
	size_t n = strlen(s);

	return n >= 2 && strcmp(s + n - 2, ":0") == 0;
}

/* Rules that span fields; errors point at the section's key (topk) where there is one. */
static void cfg_check(struct gw_cfg_parse *p, yaml_node_t **top, yaml_node_t **topk)
{
	struct gw_config *cfg = p->cfg;

	if (cfg->naccounts == 0 && !cfg_bad_list(top[GW_CFG_TOP_ACCOUNTS]))
		GW_CFG_ERR(p, topk[GW_CFG_TOP_ACCOUNTS], "at least one account is required (accounts:)");
	if (cfg->ntenants == 0 && !cfg_bad_list(top[GW_CFG_TOP_TENANTS]))
		GW_CFG_ERR(p, topk[GW_CFG_TOP_TENANTS], "at least one tenant is required (tenants:)");
	for (size_t i = 0; i < cfg->ntenants; i++) {
		struct gw_tenant_cfg *t = &cfg->tenants[i];
		int idx;

		if (!t->account)
			continue;
		idx = gw_config_account_index(cfg, t->account);
		if (idx < 0)
			gw_errors_add(p->errs, p->file, t->account_line,
				      "tenants[%zu].account \"%s\" is not a defined account", i, t->account);
		else
			t->account_idx = (size_t)idx;
	}
	if (cfg->grpc_listen && cfg->http_listen && strcmp(cfg->grpc_listen, cfg->http_listen) == 0 &&
	    !cfg_any_port(cfg->grpc_listen))
		GW_CFG_ERR(p, topk[GW_CFG_TOP_LISTEN], "listen.grpc and listen.http must differ");
	if (cfg->rest_listen && !cfg_any_port(cfg->rest_listen) &&
	    ((cfg->grpc_listen && strcmp(cfg->grpc_listen, cfg->rest_listen) == 0) ||
	     (cfg->http_listen && strcmp(cfg->http_listen, cfg->rest_listen) == 0)))
		GW_CFG_ERR(p, topk[GW_CFG_TOP_LISTEN],
			   "listen.rest must differ from listen.grpc and listen.http");
	if (!cfg->tls.cert_file != !cfg->tls.key_file)
		GW_CFG_ERR(p, topk[GW_CFG_TOP_TLS], "tls.cert_file and tls.key_file must be set together");
	if (cfg->tls.client_ca_file && !cfg->tls.cert_file)
		GW_CFG_ERR(p, topk[GW_CFG_TOP_TLS], "tls.client_ca_file needs tls.cert_file and tls.key_file");
	if (cfg->tls.client_cert_required && !cfg->tls.client_ca_file)
		GW_CFG_ERR(p, topk[GW_CFG_TOP_TLS],
			   "tls.client_cert_required needs tls.client_ca_file (the CA that signs them)");
	if (cfg->webhooks.public_url && !cfg->http_listen)
		GW_CFG_ERR(p, topk[GW_CFG_TOP_WEBHOOKS],
			"webhooks.public_url needs listen.http (deliveries arrive on the HTTP listener)");
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct gw_tenant_cfg *t = &cfg->tenants[i];

		if (!t->client_cert_cn)
			continue;
		if (!cfg->tls.client_ca_file)
			gw_errors_add(p->errs, p->file, t->client_cert_line,
				      "tenants[%zu].client_cert needs tls.client_ca_file (client certificates "
				      "are only verified with mTLS)", i);
		for (size_t j = 0; j < i; j++)
			if (cfg->tenants[j].client_cert_cn &&
			    strcmp(cfg->tenants[j].client_cert_cn, t->client_cert_cn) == 0) {
				gw_errors_add(p->errs, p->file, t->client_cert_line,
					      "tenants[%zu].client_cert.cn \"%s\" is already tenant \"%s\"'s "
					      "(line %d)", i, t->client_cert_cn,
					      cfg->tenants[j].name ? cfg->tenants[j].name : "?",
					      cfg->tenants[j].client_cert_line);
				break;
			}
	}
	if (cfg->follower.max_poll_interval_ms < cfg->follower.poll_interval_ms)
		GW_CFG_ERR(p, topk[GW_CFG_TOP_FOLLOWER],
			   "follower.max_poll_interval_ms must be >= follower.poll_interval_ms");
	gw_cfg_net_check(p, topk[GW_CFG_TOP_PROCESS], topk[GW_CFG_TOP_GRPC]);
	gw_cfg_cluster_check(p, topk[GW_CFG_TOP_CLUSTER]);
	gw_cfg_redis_check(p, topk[GW_CFG_TOP_REDIS]);
	cfg_check_keys(p);
}

/* ---- load / free ---- */

static int cfg_read(const char *path, char **out, size_t *outlen, struct gw_errors *errs)
{
	int rc = -1, fd;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		gw_errors_add(errs, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		gw_errors_add(errs, path, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > (off_t)GW_CONFIG_MAX_BYTES) {
		gw_errors_add(errs, path, 0, "larger than %u bytes; refused", GW_CONFIG_MAX_BYTES);
		goto out;
	}
	buf = malloc(GW_CONFIG_MAX_BYTES + 1);
	if (!buf) {
		gw_errors_add(errs, path, 0, "out of memory");
		goto out;
	}
	/* Read to EOF, not to st_size: the file may grow between fstat and read. */
	for (;;) {
		ssize_t r = read(fd, buf + len, GW_CONFIG_MAX_BYTES + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			gw_errors_add(errs, path, 0, "read: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > GW_CONFIG_MAX_BYTES) {
			gw_errors_add(errs, path, 0, "larger than %u bytes; refused", GW_CONFIG_MAX_BYTES);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/*
 * One pass over libyaml's events before its document loader runs, for two shapes that make the
 * loader (or its scanner) take time quadratic in the file:
 *  - anchors: the loader keeps them in a flat list and scans all of it for every new anchor and
 *    every alias (a 64 KiB file of anchors took over half a second under ASan; a 1 MiB one would
 *    take minutes at start-up or SIGHUP). A real config needs a handful, so more than
 *    GW_CONFIG_MAX_ANCHORS are refused.
 *  - nesting: the scanner walks its stack of possible simple keys, one per open flow collection,
 *    for every token, so 100 000 nested '[' (a 100 KB file) took 24 to 54 s. A real config nests
 *    six deep, so more than GW_CONFIG_MAX_DEPTH open mappings/lists are refused at the line of the
 *    first one too many. Stopping there keeps this pass itself short: the scanner never gets deep.
 * A syntax error ends the pass early; the load that follows reports it.
 */
static int cfg_prescan(const char *file, const char *text, size_t len, struct gw_errors *errs)
{
	size_t anchors = 0;
	unsigned depth = 0;
	yaml_parser_t yp;
	yaml_event_t ev;
	int rc = 0, done = 0;

	if (!yaml_parser_initialize(&yp))
		return 0;	/* out of memory: the load reports it */
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	while (!done && yaml_parser_parse(&yp, &ev)) {
		const yaml_char_t *anchor = NULL;

		switch (ev.type) {
		case YAML_SCALAR_EVENT:
			anchor = ev.data.scalar.anchor;
			break;
		case YAML_SEQUENCE_START_EVENT:
			anchor = ev.data.sequence_start.anchor;
			depth++;
			break;
		case YAML_MAPPING_START_EVENT:
			anchor = ev.data.mapping_start.anchor;
			depth++;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		if (depth > GW_CONFIG_MAX_DEPTH) {
			gw_errors_add(errs, file, (int)ev.start_mark.line + 1,
				      "nested deeper than %d mappings/lists; refused", GW_CONFIG_MAX_DEPTH);
			rc = -1;
			done = 1;
		} else if (anchor && ++anchors > GW_CONFIG_MAX_ANCHORS) {
			gw_errors_add(errs, file, (int)ev.start_mark.line + 1,
				      "more than %d YAML anchors (&name) in one file", GW_CONFIG_MAX_ANCHORS);
			rc = -1;
			done = 1;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&yp);
	return rc;
}

static void cfg_yaml_error(struct gw_errors *errs, const char *file, const yaml_parser_t *yp)
{
	int line = (int)yp->problem_mark.line + 1;

	if (yp->error == YAML_READER_ERROR || yp->error == YAML_MEMORY_ERROR)
		line = 0;
	gw_errors_add(errs, file, line, "YAML syntax error: %s%s%s", yp->problem ? yp->problem : "unknown",
		      yp->context ? " " : "", yp->context ? yp->context : "");
}

int gw_config_load(const char *path, struct gw_config **out, struct gw_errors *errs)
{
	int rc = -1;
	char *text = NULL;
	size_t len = 0;

	if (out)
		*out = NULL;
	if (!path || !out || !errs)
		return -1;
	if (cfg_read(path, &text, &len, errs) == 0)
		rc = gw_config_parse(path, text, len, out, errs);
	free(text);
	return rc;
}

int gw_config_parse(const char *path, const char *text, size_t len, struct gw_config **out,
		    struct gw_errors *errs)
{
	int rc = -1;
	size_t nerr_before;
	yaml_parser_t yp;
	yaml_document_t doc, extra;
	int yp_ok = 0, doc_ok = 0;
	struct gw_config *cfg = NULL;
	yaml_node_t *top[GW_CFG_TOP_NKEYS] = { 0 }, *topk[GW_CFG_TOP_NKEYS] = { 0 };
	int root_ok;
	struct gw_cfg_parse p;

	if (out)
		*out = NULL;
	if (!path || !out || !errs)
		return -1;
	nerr_before = errs->n + errs->dropped;
	if (!text || len > GW_CONFIG_MAX_BYTES) {
		gw_errors_add(errs, path, 0, "configuration is missing or larger than %u bytes",
			      GW_CONFIG_MAX_BYTES);
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(path)) ||
	    !(cfg->grpc_listen = strdup(GW_CONFIG_DEFAULT_GRPC_LISTEN)) ||
	    !(cfg->log_level = strdup(GW_CONFIG_DEFAULT_LOG_LEVEL)) ||
	    !(cfg->webhooks.path_prefix = strdup(GW_CONFIG_DEFAULT_WEBHOOK_PREFIX))) {
		gw_errors_add(errs, path, 0, "out of memory");
		goto out;
	}
	cfg->state.memory_only = 1;
	cfg->state.reconcile_settle_ms = GW_CONFIG_DEFAULT_SETTLE_MS;
	cfg->cluster.expected_replicas = 1;
	cfg->cache.status_ttl_ms = GW_CONFIG_DEFAULT_STATUS_TTL_MS;
	cfg->cache.max_entries = GW_CONFIG_DEFAULT_MAX_ENTRIES;
	cfg->cache.batch_window_ms = GW_CONFIG_DEFAULT_BATCH_WINDOW_MS;
	cfg->cache.batch_max = GW_CONFIG_DEFAULT_BATCH_MAX;
	cfg->upstream.connect_timeout_ms = GW_CONFIG_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->upstream.default_timeout_ms = GW_CONFIG_DEFAULT_TIMEOUT_MS;
	cfg->upstream.max_response_bytes = GW_CONFIG_DEFAULT_MAX_RESPONSE;
	cfg->max_message_bytes = GW_CONFIG_DEFAULT_MAX_MESSAGE;
	cfg->upload_chunk_bytes = GW_CONFIG_DEFAULT_UPLOAD_CHUNK;
	cfg->uploads.max_concurrent = GW_CONFIG_DEFAULT_UPLOADS_MAX;
	cfg->uploads.idle_timeout_ms = GW_CONFIG_DEFAULT_UPLOAD_IDLE_MS;
	cfg->watch.max_streams = GW_CONFIG_DEFAULT_WATCH_MAX;
	cfg->watch.health_max_streams = GW_CONFIG_DEFAULT_HEALTH_WATCH_MAX;
	cfg->watch.health_max_streams_per_peer = GW_CONFIG_DEFAULT_HEALTH_WATCH_PEER;
	cfg->webhooks.path_token_grace_s = GW_CONFIG_DEFAULT_TOKEN_GRACE_S;
	cfg->webhooks.refresh_per_second = GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_RATE;
	cfg->webhooks.refresh_burst = GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_BURST;
	cfg->webhooks.delivery.max_per_endpoint = GW_CONFIG_DEFAULT_WH_PER_ENDPOINT;
	cfg->webhooks.delivery.timeout_ms = GW_CONFIG_DEFAULT_WH_TIMEOUT_MS;
	cfg->webhooks.delivery.give_up_s = GW_CONFIG_DEFAULT_WH_GIVE_UP_S;
	cfg->webhooks.delivery.disable_after_s = GW_CONFIG_DEFAULT_WH_DISABLE_AFTER_S;
	cfg->follower.enabled = 1;
	cfg->follower.polls_per_second = GW_CONFIG_DEFAULT_FOLLOW_RATE;
	cfg->follower.poll_interval_ms = GW_CONFIG_DEFAULT_FOLLOW_INTERVAL_MS;
	cfg->follower.max_poll_interval_ms = GW_CONFIG_DEFAULT_FOLLOW_MAX_INTERVAL_MS;
	cfg->follower.quiet_ms = GW_CONFIG_DEFAULT_FOLLOW_QUIET_MS;
	cfg->follower.scan_interval_ms = GW_CONFIG_DEFAULT_FOLLOW_SCAN_MS;
	cfg->follower.max_jobs = GW_CONFIG_DEFAULT_FOLLOW_MAX_JOBS;
	cfg->balance.poll_s = GW_CONFIG_DEFAULT_BALANCE_POLL_S;
	gw_cfg_net_defaults(cfg);

	if (cfg_prescan(path, text, len, errs) < 0)
		goto out;
	if (!yaml_parser_initialize(&yp)) {
		gw_errors_add(errs, path, 0, "out of memory");
		goto out;
	}
	yp_ok = 1;
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	if (!yaml_parser_load(&yp, &doc)) {
		cfg_yaml_error(errs, path, &yp);
		goto out;
	}
	doc_ok = 1;
	p = (struct gw_cfg_parse){ .file = path, .doc = &doc, .errs = errs, .cfg = cfg };
	if (!yaml_document_get_root_node(&doc)) {
		gw_errors_add(errs, path, 0, "the configuration is empty");
		goto out;
	}
	root_ok = gw_cfg_root(&p, yaml_document_get_root_node(&doc), top, topk);
	/* A second document would be silently ignored otherwise. */
	if (!yaml_parser_load(&yp, &extra)) {
		cfg_yaml_error(errs, path, &yp);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);

		if (r2)
			gw_errors_add(errs, path, gw_cfg_line(r2), "only one YAML document is allowed");
		yaml_document_delete(&extra);
	}
	if (root_ok == 0)
		cfg_check(&p, top, topk);
	if (errs->n + errs->dropped != nerr_before)
		goto out;
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	if (doc_ok)
		yaml_document_delete(&doc);
	if (yp_ok)
		yaml_parser_delete(&yp);
	gw_config_free(cfg);
	return rc;
}

void gw_config_free(struct gw_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		struct gw_account_cfg *a = &cfg->accounts[i];

		free(a->name);
		free(a->base_url);
		free(a->client_id);
		free(a->secret_file);
		free(a->secret_env);
	}
	free(cfg->accounts);
	for (size_t i = 0; i < cfg->ntenants; i++) {
		free(cfg->tenants[i].name);
		free(cfg->tenants[i].account);
		free(cfg->tenants[i].keys);
		free(cfg->tenants[i].client_cert_cn);
	}
	free(cfg->tenants);
	free(cfg->path);
	free(cfg->grpc_listen);
	free(cfg->http_listen);
	free(cfg->rest_listen);
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->tls.client_ca_file);
	free(cfg->state.path);
	gw_config_pg_free(&cfg->state.postgres);
	gw_config_redis_free(&cfg->redis);
	free(cfg->log_level);
	free(cfg->webhooks.path_prefix);
	free(cfg->webhooks.public_url);
	free(cfg->webhooks.path_token_file);
	free(cfg);
}

int gw_config_account_index(const struct gw_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (cfg->accounts[i].name && strcmp(cfg->accounts[i].name, name) == 0)
			return (int)i;
	return -1;
}

unsigned gw_config_tenant_cap(const struct gw_config *cfg, unsigned own, unsigned per_tenant,
			      unsigned global)
{
	size_t n = cfg && cfg->ntenants ? cfg->ntenants : 1;

	if (own)
		return own;
	if (per_tenant)
		return per_tenant;
	if (global == 0)
		return 0;
	/* Rounded up: the shares add up to at least the global cap, which still binds. */
	return (unsigned)(global / n + (global % n != 0));
}

int gw_config_tenant_index(const struct gw_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (cfg->tenants[i].name && strcmp(cfg->tenants[i].name, name) == 0)
			return (int)i;
	return -1;
}

long gw_config_cost(const struct gw_costs_cfg *c, const char *method)
{
	for (size_t i = 0; c && method && i < c->n; i++)
		if (strcmp(c->e[i].method, method) == 0)
			return (long)c->e[i].cost;
	return -1;
}

int gw_config_method_known(const char *name)
{
	static const ProtobufCServiceDescriptor *const services[] = {
		&animate3d__v1__jobs__descriptor, &animate3d__v1__characters__descriptor,
		&animate3d__v1__webhooks__descriptor, &animate3d__v1__account__descriptor,
	};

	for (size_t s = 0; name && s < sizeof services / sizeof services[0]; s++)
		for (unsigned m = 0; m < services[s]->n_methods; m++)
			if (strcmp(services[s]->methods[m].name, name) == 0)
				return 1;
	return 0;
}
