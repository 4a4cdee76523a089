/*
 * config_int: what the config module's files share (config.c, config_node.c, config_sections.c,
 * config_tenants.c): the parse state, the typed node readers and the section entry points. Not for
 * other modules: they use gateway/config/config.h. Prefix gw_cfg_ (gw_config_ is the public API).
 */
#ifndef A3D_GATEWAY_CONFIG_INT_H
#define A3D_GATEWAY_CONFIG_INT_H

#include <stddef.h>
#include <yaml.h>

#include "gateway/config/config.h"

#define GW_CFG_PATH_MAX 128	/* a field path: a base plus ".permissions[9]" and friends */
#define GW_CFG_MAP_KEYS_MAX 24	/* known keys in one mapping (gw_cfg_map's nkeys) */
#define GW_CFG_QUOTE_MAX 65	/* gw_cfg_quote's buffer: 64 bytes of the value and a NUL */

/* One parse: the file's name for messages, the libyaml document, where errors go, the result. */
struct gw_cfg_parse {
	const char *file;
	yaml_document_t *doc;
	struct gw_errors *errs;
	struct gw_config *cfg;
};

/* Adds an error at node's line (the file's name alone when node is NULL). */
#define GW_CFG_ERR(p, node, ...) gw_errors_add((p)->errs, (p)->file, gw_cfg_line(node), __VA_ARGS__)

/* The top-level sections, in gw_cfg_root's key table order. */
enum { GW_CFG_TOP_LISTEN, GW_CFG_TOP_TLS, GW_CFG_TOP_LOG, GW_CFG_TOP_STATE, GW_CFG_TOP_UPSTREAM,
       GW_CFG_TOP_CACHE, GW_CFG_TOP_LIMITS, GW_CFG_TOP_ACCOUNTS, GW_CFG_TOP_TENANTS,
       GW_CFG_TOP_WEBHOOKS, GW_CFG_TOP_RATE, GW_CFG_TOP_UPLOADS, GW_CFG_TOP_WATCH,
       GW_CFG_TOP_PROCESS, GW_CFG_TOP_HTTP, GW_CFG_TOP_GRPC, GW_CFG_TOP_CLUSTER,
       GW_CFG_TOP_REDIS, GW_CFG_TOP_REST, GW_CFG_TOP_FOLLOWER, GW_CFG_TOP_BALANCE,
       GW_CFG_TOP_NKEYS };

/* ---- config_node.c: node readers. path names the field in messages ("tenants[1].name"). A reader
 * that fails has added an error and returns -1 (NULL); it returns 0 and sets *out otherwise. ---- */

int gw_cfg_line(const yaml_node_t *n);			/* 1-based line of n; 0 for NULL */
yaml_node_t *gw_cfg_node(struct gw_cfg_parse *p, int idx);	/* document node idx, or NULL */
int gw_cfg_is_null(const yaml_node_t *n);	/* plain empty, "~" or "null": the key says nothing */
/* The scalar's text (borrowed from the document), or NULL: not a scalar (what says what it must
 * be), a NUL byte, or longer than GW_CONFIG_MAX_STRING. */
const char *gw_cfg_scalar(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, const char *what);
/* Non-empty string copied into *out (caller frees), replacing and freeing a previous value. */
int gw_cfg_string(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, char **out);
/* Decimal integer in [min, max]. */
int gw_cfg_long(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, long long min, long long max,
		long long *out);
/* Finite number; > 0 when positive, else >= 0. */
int gw_cfg_double(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, int positive, double *out);
int gw_cfg_bool(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, int *out);	/* YAML 1.1 words */
/* s (never NULL) cut to 64 bytes with control characters as '?', in out; returns out. */
const char *gw_cfg_quote(const char *s, char out[GW_CFG_QUOTE_MAX]);
/* Looks up keys[] (nkeys <= GW_CFG_MAP_KEYS_MAX) in mapping n: vals[i] and knodes[i] (knodes may
 * be NULL) get the value and key node, or NULL. Unknown and repeated keys are errors; a null node
 * is an empty mapping. -1 if n is not a mapping. */
int gw_cfg_map(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, const char *const *keys,
	       size_t nkeys, yaml_node_t **vals, yaml_node_t **knodes);
/* *count = entries of list n (0 for NULL or null); -1 if not a list or more than max (count 0). */
int gw_cfg_seq(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, size_t max, size_t *count);
/* snprintf into buf (NULL with len 0: nothing); truncation only shortens a message. */
void gw_cfg_pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* http(s)://authority[/path], no credentials, query, fragment or whitespace. */
int gw_cfg_base_url_ok(const char *s);

/* ---- config_sections.c ---- */

/* Reads the root mapping and every section in it; top[]/topk[] (GW_CFG_TOP_NKEYS each) get each
 * section's value and key node. -1 if the root is not a mapping (nothing to check). */
int gw_cfg_root(struct gw_cfg_parse *p, yaml_node_t *root, yaml_node_t **top, yaml_node_t **topk);
/* A costs table { StartJob: 5, ... } at n into out; base names it ("rate.costs"). */
void gw_cfg_costs(struct gw_cfg_parse *p, yaml_node_t *n, const char *base, struct gw_costs_cfg *out);

/* ---- config_net.c: process:, http:, rest:, grpc: ---- */

void gw_cfg_net_defaults(struct gw_config *cfg);	/* what the file leaves out */
void gw_cfg_process(struct gw_cfg_parse *p, yaml_node_t *n);
void gw_cfg_http(struct gw_cfg_parse *p, yaml_node_t *n);
void gw_cfg_rest(struct gw_cfg_parse *p, yaml_node_t *n);
void gw_cfg_grpc(struct gw_cfg_parse *p, yaml_node_t *n);
/* Rules between their keys; key nodes (may be NULL) name the lines. */
void gw_cfg_net_check(struct gw_cfg_parse *p, yaml_node_t *process_key, yaml_node_t *grpc_key);

/* ---- config_pg.c: state.postgres and cluster ---- */

/* state.postgres at n (a mapping: dsn, password_file | password_env, pool, timeout_ms) into
 * p->cfg->state.postgres; enabled only when it has no error. */
void gw_cfg_postgres(struct gw_cfg_parse *p, yaml_node_t *n);
void gw_cfg_cluster(struct gw_cfg_parse *p, yaml_node_t *n);	/* cluster: */
/* cluster.expected_replicas > 1 needs state.postgres; ckey names the line when that is absent. */
void gw_cfg_cluster_check(struct gw_cfg_parse *p, yaml_node_t *ckey);
/* 1 when s is an environment variable's name, [A-Za-z_][A-Za-z0-9_]* (password_env). */
int gw_cfg_env_name_ok(const char *s);

/* ---- config_redis.c: redis ---- */

/* redis: at n (url, password_file | password_env, key_prefix, seal_key_file, timeouts, fallback)
 * into p->cfg->redis; enabled only when it has no error. */
void gw_cfg_redis(struct gw_cfg_parse *p, yaml_node_t *n);
/* redis needs state.postgres; rkey (the redis: key) names the line. */
void gw_cfg_redis_check(struct gw_cfg_parse *p, yaml_node_t *rkey);

/* ---- config_tenants.c: the lists, allocated into p->cfg (freed by gw_config_free) ---- */

void gw_cfg_accounts(struct gw_cfg_parse *p, yaml_node_t *n);	/* accounts: */
void gw_cfg_tenants(struct gw_cfg_parse *p, yaml_node_t *n);	/* tenants: */

#endif
