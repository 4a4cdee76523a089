/*
 * config: YAML -> struct gw_config.
 *
 * libyaml's document loader builds a node tree with a start mark per node, so every error can
 * name its line. The walk is driven by the schema (fixed depth, fixed key tables), never by the
 * tree, so anchors/aliases (even cyclic ones) cannot make it recurse or loop. Every problem is
 * collected in struct gw_errors; the whole file is walked even after the first error.
 */
#include "gateway/config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "auth/perm.h"
#include "gateway/admission.h"

#define CFG_BASE_MAX 48		/* "tenants[1023]", "tenants[1023].keys[63]" */
#define CFG_PATH_MAX 128	/* a base plus ".permissions[9]" and friends */
#define CFG_MSG_MAX 512		/* one formatted error message */
#define CFG_MAP_KEYS_MAX 16	/* known keys in one mapping */
#define CFG_ANCHORS_MAX 64	/* YAML anchors (&name) in one file: see cfg_anchors_ok() */

struct cfg_parse {
	const char *file;
	yaml_document_t *doc;
	struct gw_errors *errs;
	struct gw_config *cfg;
};

/* ---- errors ---- */

void gw_errors_add(struct gw_errors *e, const char *file, int line, const char *fmt, ...)
{
	char msg[CFG_MSG_MAX];
	char *full;
	va_list ap;
	int n;

	if (!e)
		return;
	if (e->n >= GW_CONFIG_MAX_ERRORS) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!file)
		file = "(config)";
	if (line < 0)
		line = 0;
	if (line)
		n = snprintf(NULL, 0, "%s:%d: %s", file, line, msg);
	else
		n = snprintf(NULL, 0, "%s: %s", file, msg);
	full = n < 0 ? NULL : malloc((size_t)n + 1);
	if (!full) {
		e->dropped++;
		return;
	}
	if (line)
		snprintf(full, (size_t)n + 1, "%s:%d: %s", file, line, msg);
	else
		snprintf(full, (size_t)n + 1, "%s: %s", file, msg);
	e->msg[e->n++] = full;
}

void gw_errors_clear(struct gw_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	memset(e, 0, sizeof(*e));
}

#define CFG_ERR(p, node, ...) gw_errors_add((p)->errs, (p)->file, cfg_line(node), __VA_ARGS__)

/* ---- node helpers ---- */

static int cfg_line(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 0;
}

static yaml_node_t *cfg_node(struct cfg_parse *p, int idx)
{
	return yaml_document_get_node(p->doc, idx);
}

/* A plain empty, "~" or "null" scalar: the key is there but says nothing. */
static int cfg_is_null(const yaml_node_t *n)
{
	const char *v;

	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The scalar's text, or NULL with an error. Embedded NULs are refused: C strings cannot hold them. */
static const char *cfg_scalar(struct cfg_parse *p, yaml_node_t *n, const char *path, const char *what)
{
	const char *v;

	if (!n || n->type != YAML_SCALAR_NODE) {
		CFG_ERR(p, n, "%s must be %s", path, what);
		return NULL;
	}
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length) {
		CFG_ERR(p, n, "%s must not contain a NUL byte", path);
		return NULL;
	}
	if (n->data.scalar.length > GW_CONFIG_MAX_STRING) {
		CFG_ERR(p, n, "%s is longer than %d bytes", path, GW_CONFIG_MAX_STRING);
		return NULL;
	}
	return v;
}

/* Non-empty string copied into *out (replacing a previous value). 0 or -1. */
static int cfg_string(struct cfg_parse *p, yaml_node_t *n, const char *path, char **out)
{
	const char *v;
	char *copy;

	if (cfg_is_null(n)) {
		CFG_ERR(p, n, "%s must not be empty", path);
		return -1;
	}
	v = cfg_scalar(p, n, path, "a string");
	if (!v)
		return -1;
	if (!*v) {
		CFG_ERR(p, n, "%s must not be empty", path);
		return -1;
	}
	copy = strdup(v);
	if (!copy) {
		CFG_ERR(p, n, "out of memory");
		return -1;
	}
	free(*out);
	*out = copy;
	return 0;
}

/* Decimal integer in [min, max]. */
static int cfg_long(struct cfg_parse *p, yaml_node_t *n, const char *path, long long min, long long max,
		    long long *out)
{
	const char *v = cfg_scalar(p, n, path, "an integer");
	char *end;
	long long x;

	if (!v)
		return -1;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (!*v || *end || end == v || errno == ERANGE || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) {
		CFG_ERR(p, n, "%s must be an integer", path);
		return -1;
	}
	if (x < min) {
		if (min == 1)
			CFG_ERR(p, n, "%s must be > 0", path);
		else
			CFG_ERR(p, n, "%s must be >= %lld", path, min);
		return -1;
	}
	if (x > max) {
		CFG_ERR(p, n, "%s must be <= %lld", path, max);
		return -1;
	}
	*out = x;
	return 0;
}

/* Finite number; positive (> 0) or non-negative (>= 0). */
static int cfg_double(struct cfg_parse *p, yaml_node_t *n, const char *path, int positive, double *out)
{
	const char *v = cfg_scalar(p, n, path, "a number");
	char *end;
	double x;

	if (!v)
		return -1;
	errno = 0;
	x = strtod(v, &end);
	if (!*v || *end || end == v || errno == ERANGE || !isfinite(x) ||
	    !(v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9'))) {
		CFG_ERR(p, n, "%s must be a number", path);
		return -1;
	}
	if (positive ? !(x > 0) : !(x >= 0)) {
		CFG_ERR(p, n, "%s must be %s 0", path, positive ? ">" : ">=");
		return -1;
	}
	*out = x;
	return 0;
}

static int cfg_bool(struct cfg_parse *p, yaml_node_t *n, const char *path, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	const char *v = cfg_scalar(p, n, path, "true or false");

	if (!v)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	CFG_ERR(p, n, "%s must be true or false", path);
	return -1;
}

/* Copies at most 64 bytes of s for quoting in a message, with control characters as '?', so a
 * hostile file cannot put newlines or terminal escapes into --check-config output. */
#define CFG_QUOTE_MAX 65
static const char *cfg_quote(const char *s, char out[CFG_QUOTE_MAX])
{
	size_t i;

	for (i = 0; i < CFG_QUOTE_MAX - 1 && s[i]; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
	return out;
}

/*
 * Looks up keys[] in mapping n: vals[i] (and knodes[i]) get the value (key) node or NULL. Unknown
 * and repeated keys are errors. A null node counts as an empty mapping. Returns -1 (after an error)
 * if n is not a mapping.
 */
static int cfg_map(struct cfg_parse *p, yaml_node_t *n, const char *path, const char *const *keys,
		   size_t nkeys, yaml_node_t **vals, yaml_node_t **knodes)
{
	yaml_node_t *kn[CFG_MAP_KEYS_MAX];

	for (size_t i = 0; i < nkeys; i++) {
		vals[i] = NULL;
		kn[i] = NULL;
		if (knodes)
			knodes[i] = NULL;
	}
	if (cfg_is_null(n))
		return 0;
	if (!n || n->type != YAML_MAPPING_NODE) {
		CFG_ERR(p, n, "%s must be a mapping", path);
		return -1;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node(p, pr->key);
		yaml_node_t *v = cfg_node(p, pr->value);
		const char *name;
		size_t i;

		if (!k || k->type != YAML_SCALAR_NODE) {
			CFG_ERR(p, k, "%s: keys must be strings", path);
			continue;
		}
		name = (const char *)k->data.scalar.value;
		for (i = 0; i < nkeys; i++)
			if (strcmp(name, keys[i]) == 0)
				break;
		if (i == nkeys || strlen(name) != k->data.scalar.length) {
			char q[CFG_QUOTE_MAX];

			CFG_ERR(p, k, "unknown key \"%s\"", cfg_quote(name, q));
			continue;
		}
		if (vals[i]) {
			CFG_ERR(p, k, "duplicate key \"%s\" (first at line %d)", name, cfg_line(kn[i]));
			continue;
		}
		vals[i] = v;
		kn[i] = k;
		if (knodes)
			knodes[i] = k;
	}
	return 0;
}

/* A sequence node, or NULL (null node = empty) ; -1 after an error. */
static int cfg_seq(struct cfg_parse *p, yaml_node_t *n, const char *path, size_t max, size_t *count)
{
	*count = 0;
	if (!n || cfg_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		CFG_ERR(p, n, "%s must be a list", path);
		return -1;
	}
	*count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (*count > max) {
		CFG_ERR(p, n, "%s has %zu entries; at most %zu are allowed", path, *count, max);
		*count = 0;
		return -1;
	}
	return 0;
}

/* Builds a field path like "tenants[1].rate.per_second" for messages; truncation only shortens the
 * message. (A function, not snprintf inline: paths are bounded by the schema, not by the buffer.) */
static void cfg_pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cfg_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- value checks ---- */

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

/* http(s)://authority[/path], no credentials, query, fragment or whitespace. */
static int cfg_base_url_ok(const char *s)
{
	const char *host;
	size_t hlen;

	if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		return 0;
	hlen = strcspn(host, "/");
	if (hlen == 0 || memchr(host, '@', hlen))
		return 0;
	for (const char *q = s; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '?' || *q == '#')
			return 0;
	return 1;
}

static int cfg_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- sections ---- */

static void cfg_listen(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "grpc", "http" };
	yaml_node_t *v[2];
	char **dst[2] = { &p->cfg->grpc_listen, &p->cfg->http_listen };

	if (cfg_map(p, n, "listen", keys, 2, v, NULL) < 0)
		return;
	for (int i = 0; i < 2; i++) {
		char path[CFG_PATH_MAX];

		if (!v[i])
			continue;
		cfg_pathf(path, sizeof(path), "listen.%s", keys[i]);
		if (cfg_string(p, v[i], path, dst[i]) < 0)
			continue;
		if (!cfg_hostport_ok(*dst[i]))
			CFG_ERR(p, v[i], "%s must be host:port, e.g. 127.0.0.1:%s", path,
				i == 0 ? "50051" : "8080");
	}
}

static void cfg_tls(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "cert_file", "key_file", "client_ca_file" };
	yaml_node_t *v[3];
	char **dst[3] = { &p->cfg->tls.cert_file, &p->cfg->tls.key_file, &p->cfg->tls.client_ca_file };

	if (cfg_map(p, n, "tls", keys, 3, v, NULL) < 0)
		return;
	for (int i = 0; i < 3; i++) {
		char path[CFG_PATH_MAX];

		cfg_pathf(path, sizeof(path), "tls.%s", keys[i]);
		if (v[i])
			cfg_string(p, v[i], path, dst[i]);
	}
}

static void cfg_log(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "level" };
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	yaml_node_t *v[1];
	char *lvl = NULL;

	if (cfg_map(p, n, "log", keys, 1, v, NULL) < 0 || !v[0])
		return;
	if (cfg_string(p, v[0], "log.level", &lvl) < 0)
		return;
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(lvl, levels[i]) == 0) {
			free(p->cfg->log_level);
			p->cfg->log_level = lvl;
			return;
		}
	}
	CFG_ERR(p, v[0], "log.level must be debug, info, warn or error");
	free(lvl);
}

static void cfg_state(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "path", "memory", "read_only", "idempotency_ttl_s",
					    "reconcile_settle_ms" };
	yaml_node_t *v[5];
	int memory = 0;
	long long x;

	if (cfg_map(p, n, "state", keys, 5, v, NULL) < 0)
		return;
	if (v[4] && cfg_long(p, v[4], "state.reconcile_settle_ms", 0, 3600000, &x) == 0)
		p->cfg->state.reconcile_settle_ms = (long)x;
	if (v[1] && cfg_bool(p, v[1], "state.memory", &memory) < 0)
		return;
	if (v[2] && cfg_bool(p, v[2], "state.read_only", &p->cfg->state.read_only) < 0)
		return;
	/* Below one minute the owner module raises it anyway (a key must outlive its call). */
	if (v[3] && cfg_long(p, v[3], "state.idempotency_ttl_s", 60, GW_CONFIG_MAX_IDEM_TTL_S, &x) == 0)
		p->cfg->state.idempotency_ttl_s = x;
	if (v[0]) {
		if (memory) {
			CFG_ERR(p, v[0], "state.path and state.memory: true are exclusive");
			return;
		}
		if (cfg_string(p, v[0], "state.path", &p->cfg->state.path) == 0)
			p->cfg->state.memory_only = 0;
		return;
	}
	if (!memory) {
		CFG_ERR(p, n, "state needs path or memory: true");
		return;
	}
	/* A read-only memory store would be empty forever: certainly a mistake. */
	if (p->cfg->state.read_only) {
		CFG_ERR(p, v[2], "state.read_only needs state.path (a memory store starts empty)");
		return;
	}
	p->cfg->state.memory_only = 1;
}

static void cfg_upstream(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "connect_timeout_ms", "default_timeout_ms", "max_response_bytes",
					    "session_refresh_s" };
	yaml_node_t *v[4];
	long long x;

	if (cfg_map(p, n, "upstream", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && cfg_long(p, v[0], "upstream.connect_timeout_ms", 1, 3600000, &x) == 0)
		p->cfg->upstream.connect_timeout_ms = (long)x;
	if (v[1] && cfg_long(p, v[1], "upstream.default_timeout_ms", 1, 3600000, &x) == 0)
		p->cfg->upstream.default_timeout_ms = (long)x;
	if (v[2] && cfg_long(p, v[2], "upstream.max_response_bytes", 1, 1ll << 32, &x) == 0)
		p->cfg->upstream.max_response_bytes = (size_t)x;
	if (v[3] && cfg_long(p, v[3], "upstream.session_refresh_s", 0, 30ll * 86400, &x) == 0)
		p->cfg->upstream.session_refresh_s = (long)x;
}

static void cfg_cache(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "status_ttl_ms", "max_entries", "batch_window_ms", "batch_max" };
	yaml_node_t *v[4];
	long long x;

	if (cfg_map(p, n, "cache", keys, 4, v, NULL) < 0)
		return;
	if (v[0] && cfg_long(p, v[0], "cache.status_ttl_ms", 0, 3600000, &x) == 0)
		p->cfg->cache.status_ttl_ms = (long)x;
	if (v[1] && cfg_long(p, v[1], "cache.max_entries", 1, 100000000, &x) == 0)
		p->cfg->cache.max_entries = (size_t)x;
	if (v[2] && cfg_long(p, v[2], "cache.batch_window_ms", 0, 10000, &x) == 0)
		p->cfg->cache.batch_window_ms = (long)x;
	if (v[3] && cfg_long(p, v[3], "cache.batch_max", 1, GW_CONFIG_MAX_BATCH, &x) == 0)
		p->cfg->cache.batch_max = (size_t)x;
}

static void cfg_limits(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "max_message_bytes", "upload_chunk_bytes" };
	yaml_node_t *v[2];
	long long x;

	if (cfg_map(p, n, "limits", keys, 2, v, NULL) < 0)
		return;
	if (v[0] && cfg_long(p, v[0], "limits.max_message_bytes", 1, 1ll << 30, &x) == 0)
		p->cfg->max_message_bytes = (size_t)x;
	if (v[1] && cfg_long(p, v[1], "limits.upload_chunk_bytes", 1, 1ll << 30, &x) == 0) {
		if (x % GW_CONFIG_CHUNK_UNIT)
			CFG_ERR(p, v[1], "limits.upload_chunk_bytes must be a multiple of 256 KiB (262144)");
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

static void cfg_webhooks(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "path_prefix", "public_url" };
	yaml_node_t *v[2];
	char *s = NULL;

	if (cfg_map(p, n, "webhooks", keys, 2, v, NULL) < 0)
		return;
	if (v[0] && cfg_string(p, v[0], "webhooks.path_prefix", &s) == 0) {
		if (!cfg_webhook_prefix_ok(s)) {
			CFG_ERR(p, v[0], "webhooks.path_prefix must start and end with '/', use only letters, "
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
	if (v[1] && cfg_string(p, v[1], "webhooks.public_url", &s) == 0) {
		size_t len = strlen(s);

		if (len > GW_CONFIG_MAX_PUBLIC_URL || !cfg_base_url_ok(s)) {
			CFG_ERR(p, v[1], "webhooks.public_url must be an http:// or https:// URL without "
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

enum { ACC_NAME, ACC_URL, ACC_ID, ACC_FILE, ACC_ENV, ACC_INLINE, ACC_RATE, ACC_CONC, ACC_QUEUE,
       ACC_NKEYS };

static void cfg_account(struct cfg_parse *p, yaml_node_t *n, size_t idx, struct gw_account_cfg *a)
{
	static const char *const keys[ACC_NKEYS] = { "name", "base_url", "client_id", "client_secret_file",
						     "client_secret_env", "client_secret", "rate_per_second",
						     "max_concurrent", "max_queue" };
	yaml_node_t *v[ACC_NKEYS], *k[ACC_NKEYS];
	char base[CFG_BASE_MAX], path[CFG_PATH_MAX];
	long long x;

	cfg_pathf(base, sizeof(base), "accounts[%zu]", idx);
	a->line = cfg_line(n);
	if (cfg_map(p, n, base, keys, ACC_NKEYS, v, k) < 0)
		return;
	/* Field by field; missing required ones are named on the entry's line. */
	cfg_pathf(path, sizeof(path), "%s.name", base);
	if (!v[ACC_NAME])
		CFG_ERR(p, n, "%s is required", path);
	else if (cfg_string(p, v[ACC_NAME], path, &a->name) == 0) {
		for (size_t j = 0; j < idx; j++) {
			if (p->cfg->accounts[j].name && strcmp(p->cfg->accounts[j].name, a->name) == 0) {
				CFG_ERR(p, v[ACC_NAME], "duplicate account name \"%s\" (first at line %d)",
					a->name, p->cfg->accounts[j].line);
				break;
			}
		}
	}
	cfg_pathf(path, sizeof(path), "%s.base_url", base);
	if (!v[ACC_URL])
		CFG_ERR(p, n, "%s is required", path);
	else if (cfg_string(p, v[ACC_URL], path, &a->base_url) == 0) {
		if (!cfg_base_url_ok(a->base_url)) {
			CFG_ERR(p, v[ACC_URL], "%s must be an http:// or https:// URL without credentials, "
				"query or fragment", path);
		} else {
			size_t len = strlen(a->base_url);
			while (len > 0 && a->base_url[len - 1] == '/')
				a->base_url[--len] = '\0';
		}
	}
	cfg_pathf(path, sizeof(path), "%s.client_id", base);
	if (!v[ACC_ID])
		CFG_ERR(p, n, "%s is required", path);
	else
		cfg_string(p, v[ACC_ID], path, &a->client_id);
	if (k[ACC_INLINE])
		CFG_ERR(p, k[ACC_INLINE],
			"client_secret must not be inline; use client_secret_file or client_secret_env");
	if (v[ACC_FILE] && v[ACC_ENV])
		CFG_ERR(p, v[ACC_ENV], "%s: set only one of client_secret_file or client_secret_env", base);
	else if (!v[ACC_FILE] && !v[ACC_ENV] && !k[ACC_INLINE])
		CFG_ERR(p, n, "%s needs client_secret_file or client_secret_env", base);
	else if (v[ACC_FILE]) {
		cfg_pathf(path, sizeof(path), "%s.client_secret_file", base);
		cfg_string(p, v[ACC_FILE], path, &a->secret_file);
		a->secret_line = cfg_line(v[ACC_FILE]);
	} else if (v[ACC_ENV]) {
		cfg_pathf(path, sizeof(path), "%s.client_secret_env", base);
		cfg_string(p, v[ACC_ENV], path, &a->secret_env);
	}
	cfg_pathf(path, sizeof(path), "%s.rate_per_second", base);
	if (v[ACC_RATE])
		cfg_double(p, v[ACC_RATE], path, 0, &a->rate_per_second);
	cfg_pathf(path, sizeof(path), "%s.max_concurrent", base);
	if (v[ACC_CONC] && cfg_long(p, v[ACC_CONC], path, 0, 100000, &x) == 0)
		a->max_concurrent = (unsigned)x;
	cfg_pathf(path, sizeof(path), "%s.max_queue", base);
	if (v[ACC_QUEUE] && cfg_long(p, v[ACC_QUEUE], path, 0, GW_ADM_MAX_QUEUE, &x) == 0)
		a->max_queue = (unsigned)x;
}

static void cfg_accounts(struct cfg_parse *p, yaml_node_t *n)
{
	size_t count;

	if (cfg_seq(p, n, "accounts", GW_CONFIG_MAX_ACCOUNTS, &count) < 0 || count == 0)
		return;
	p->cfg->accounts = calloc(count, sizeof(*p->cfg->accounts));
	if (!p->cfg->accounts) {
		CFG_ERR(p, n, "out of memory");
		return;
	}
	p->cfg->naccounts = count;
	for (size_t i = 0; i < count; i++)
		cfg_account(p, cfg_node(p, n->data.sequence.items.start[i]), i, &p->cfg->accounts[i]);
}

static void cfg_perms(struct cfg_parse *p, yaml_node_t *n, const char *base, unsigned *perms)
{
	char path[CFG_PATH_MAX];
	size_t count;

	cfg_pathf(path, sizeof(path), "%s.permissions", base);
	if (cfg_seq(p, n, path, 8, &count) < 0)
		return;
	if (count == 0) {
		CFG_ERR(p, n, "%s must not be empty", path);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = cfg_node(p, n->data.sequence.items.start[i]);
		const char *v;

		cfg_pathf(path, sizeof(path), "%s.permissions[%zu]", base, i);
		v = cfg_scalar(p, item, path, "read or write");
		if (!v)
			continue;
		if (strcmp(v, "read") == 0)
			*perms |= GW_PERM_READ;
		else if (strcmp(v, "write") == 0)
			*perms |= GW_PERM_WRITE;
		else {
			char q[CFG_QUOTE_MAX];

			CFG_ERR(p, item, "%s: unknown permission \"%s\" (read, write)", path, cfg_quote(v, q));
		}
	}
}

static void cfg_key(struct cfg_parse *p, yaml_node_t *n, const char *base, struct gw_key_cfg *key)
{
	static const char *const keys[] = { "sha256", "permissions" };
	yaml_node_t *v[2];
	char path[CFG_PATH_MAX];
	const char *hex;

	key->line = cfg_line(n);
	if (cfg_map(p, n, base, keys, 2, v, NULL) < 0)
		return;
	cfg_pathf(path, sizeof(path), "%s.sha256", base);
	if (!v[0]) {
		CFG_ERR(p, n, "%s is required", path);
	} else if ((hex = cfg_scalar(p, v[0], path, "64 hex digits")) != NULL) {
		size_t i;

		for (i = 0; i < 64 && hex[i] && cfg_hex(hex[i]) >= 0; i++)
			;
		if (i != 64 || hex[64]) {
			CFG_ERR(p, v[0], "%s must be 64 hex digits (printf %%s \"$KEY\" | sha256sum)", path);
		} else {
			for (i = 0; i < 32; i++)
				key->sha256[i] = (uint8_t)(cfg_hex(hex[2 * i]) << 4 | cfg_hex(hex[2 * i + 1]));
			key->line = cfg_line(v[0]);
		}
	}
	if (!v[1])
		CFG_ERR(p, n, "%s.permissions is required", base);
	else
		cfg_perms(p, v[1], base, &key->perms);
}

/* tenants[i].client_cert: {cn: <subject CN>, permissions: [read, write]} (mTLS, see auth/clientcert.h). */
static void cfg_client_cert(struct cfg_parse *p, yaml_node_t *n, const char *base, struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "cn", "permissions" };
	yaml_node_t *v[2];
	char path[CFG_PATH_MAX];

	t->client_cert_line = cfg_line(n);
	if (cfg_map(p, n, base, keys, 2, v, NULL) < 0)
		return;
	cfg_pathf(path, sizeof(path), "%s.cn", base);
	if (!v[0])
		CFG_ERR(p, n, "%s is required", path);
	else if (cfg_string(p, v[0], path, &t->client_cert_cn) == 0) {
		t->client_cert_line = cfg_line(v[0]);
		if (!t->client_cert_cn[0] || strlen(t->client_cert_cn) > GW_CONFIG_MAX_CERT_CN)
			CFG_ERR(p, v[0], "%s must be 1 to %d characters", path, GW_CONFIG_MAX_CERT_CN);
	}
	if (!v[1])
		CFG_ERR(p, n, "%s.permissions is required", base);
	else
		cfg_perms(p, v[1], base, &t->client_cert_perms);
}

/* rate.costs / tenants[i].rate.costs: { <method short name>: <cost 0..GW_RATELIMIT_MAX_COST> }. */
static void cfg_costs(struct cfg_parse *p, yaml_node_t *n, const char *base, struct gw_costs_cfg *out)
{
	int first_line[GW_CONFIG_MAX_COSTS] = { 0 };
	char path[CFG_PATH_MAX];

	if (cfg_is_null(n))
		return;
	if (!n || n->type != YAML_MAPPING_NODE) {
		CFG_ERR(p, n, "%s must be a mapping of method names to costs, e.g. { StartJob: 5 }", base);
		return;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node(p, pr->key);
		const char *name;
		long long x;
		int m;

		if (!k || k->type != YAML_SCALAR_NODE) {
			CFG_ERR(p, k, "%s: keys must be method names", base);
			continue;
		}
		name = (const char *)k->data.scalar.value;
		/* Short names only: the gRPC path would be a second spelling of the same key. */
		m = strchr(name, '/') || strlen(name) != k->data.scalar.length ? -1
									  : gw_ratelimit_method_index(name);
		if (m < 0) {
			char q[CFG_QUOTE_MAX];

			CFG_ERR(p, k, "%s: unknown method \"%s\" (a method of the API, e.g. StartJob, "
				"UploadVideo, GetStatus)", base, cfg_quote(name, q));
			continue;
		}
		if (first_line[m]) {
			CFG_ERR(p, k, "duplicate key \"%s\" (first at line %d)", name, first_line[m]);
			continue;
		}
		first_line[m] = cfg_line(k);
		cfg_pathf(path, sizeof(path), "%s.%s", base, name);
		if (cfg_long(p, cfg_node(p, pr->value), path, 0, GW_RATELIMIT_MAX_COST, &x) == 0) {
			out->cost[m] = (unsigned)x;
			out->set[m] = 1;
		}
	}
}

/* Top-level rate: { costs: {...} }: method costs for every tenant's bucket. */
static void cfg_rate(struct cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "costs" };
	yaml_node_t *v[1];

	if (cfg_map(p, n, "rate", keys, 1, v, NULL) < 0)
		return;
	if (v[0])
		cfg_costs(p, v[0], "rate.costs", &p->cfg->costs);
}

static void cfg_tenant(struct cfg_parse *p, yaml_node_t *n, size_t idx, struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "name", "account", "rate", "see_foreign_jobs", "keys",
					    "client_cert" };
	static const char *const rate_keys[] = { "per_second", "burst", "costs" };
	yaml_node_t *v[6], *rv[3];
	char base[CFG_BASE_MAX], path[CFG_PATH_MAX];
	size_t count;

	cfg_pathf(base, sizeof(base), "tenants[%zu]", idx);
	t->line = cfg_line(n);
	if (cfg_map(p, n, base, keys, 6, v, NULL) < 0)
		return;
	cfg_pathf(path, sizeof(path), "%s.name", base);
	if (!v[0])
		CFG_ERR(p, n, "%s is required", path);
	else if (cfg_string(p, v[0], path, &t->name) == 0) {
		for (size_t j = 0; j < idx; j++) {
			if (p->cfg->tenants[j].name && strcmp(p->cfg->tenants[j].name, t->name) == 0) {
				CFG_ERR(p, v[0], "duplicate tenant name \"%s\" (first at line %d)", t->name,
					p->cfg->tenants[j].line);
				break;
			}
		}
	}
	cfg_pathf(path, sizeof(path), "%s.account", base);
	if (!v[1])
		CFG_ERR(p, n, "%s is required", path);
	else if (cfg_string(p, v[1], path, &t->account) == 0)
		t->account_line = cfg_line(v[1]);
	if (v[2]) {
		cfg_pathf(path, sizeof(path), "%s.rate", base);
		if (cfg_map(p, v[2], path, rate_keys, 3, rv, NULL) == 0) {
			cfg_pathf(path, sizeof(path), "%s.rate.per_second", base);
			if (!rv[0])
				CFG_ERR(p, v[2], "%s is required", path);
			else
				cfg_double(p, rv[0], path, 1, &t->rate_per_second);
			cfg_pathf(path, sizeof(path), "%s.rate.burst", base);
			if (rv[1])
				cfg_double(p, rv[1], path, 1, &t->burst);
			else
				t->burst = t->rate_per_second > 1 ? t->rate_per_second : 1;
			cfg_pathf(path, sizeof(path), "%s.rate.costs", base);
			if (rv[2])
				cfg_costs(p, rv[2], path, &t->costs);
		}
	}
	cfg_pathf(path, sizeof(path), "%s.see_foreign_jobs", base);
	if (v[3])
		cfg_bool(p, v[3], path, &t->see_foreign_jobs);
	cfg_pathf(path, sizeof(path), "%s.keys", base);
	if (v[4] && cfg_seq(p, v[4], path, GW_CONFIG_MAX_KEYS, &count) == 0 && count > 0) {
		t->keys = calloc(count, sizeof(*t->keys));
		if (!t->keys) {
			CFG_ERR(p, v[4], "out of memory");
			return;
		}
		t->nkeys = count;
		for (size_t i = 0; i < count; i++) {
			cfg_pathf(path, sizeof(path), "%s.keys[%zu]", base, i);
			cfg_key(p, cfg_node(p, v[4]->data.sequence.items.start[i]), path, &t->keys[i]);
		}
	}
	if (v[5] && !cfg_is_null(v[5])) {
		cfg_pathf(path, sizeof(path), "%s.client_cert", base);
		cfg_client_cert(p, v[5], path, t);
	}
}

static void cfg_tenants(struct cfg_parse *p, yaml_node_t *n)
{
	size_t count;

	if (cfg_seq(p, n, "tenants", GW_CONFIG_MAX_TENANTS, &count) < 0 || count == 0)
		return;
	p->cfg->tenants = calloc(count, sizeof(*p->cfg->tenants));
	if (!p->cfg->tenants) {
		CFG_ERR(p, n, "out of memory");
		return;
	}
	p->cfg->ntenants = count;
	for (size_t i = 0; i < count; i++)
		cfg_tenant(p, cfg_node(p, n->data.sequence.items.start[i]), i, &p->cfg->tenants[i]);
}

enum { TOP_LISTEN, TOP_TLS, TOP_LOG, TOP_STATE, TOP_UPSTREAM, TOP_CACHE, TOP_LIMITS, TOP_ACCOUNTS,
       TOP_TENANTS, TOP_WEBHOOKS, TOP_RATE, TOP_NKEYS };

/* top[]/topk[]: each section's value and key node. -1 if the root is not a mapping (nothing to check). */
static int cfg_root(struct cfg_parse *p, yaml_node_t *root, yaml_node_t **top, yaml_node_t **topk)
{
	static const char *const keys[TOP_NKEYS] = { "listen", "tls", "log", "state", "upstream",
						     "cache", "limits", "accounts", "tenants",
						     "webhooks", "rate" };

	if (!root || root->type != YAML_MAPPING_NODE) {
		CFG_ERR(p, root, "the configuration must be a mapping (listen:, accounts:, tenants:, ...)");
		return -1;
	}
	cfg_map(p, root, "configuration", keys, TOP_NKEYS, top, topk);
	if (top[TOP_LISTEN])
		cfg_listen(p, top[TOP_LISTEN]);
	if (top[TOP_TLS])
		cfg_tls(p, top[TOP_TLS]);
	if (top[TOP_LOG])
		cfg_log(p, top[TOP_LOG]);
	if (top[TOP_STATE])
		cfg_state(p, top[TOP_STATE]);
	if (top[TOP_UPSTREAM])
		cfg_upstream(p, top[TOP_UPSTREAM]);
	if (top[TOP_CACHE])
		cfg_cache(p, top[TOP_CACHE]);
	if (top[TOP_LIMITS])
		cfg_limits(p, top[TOP_LIMITS]);
	if (top[TOP_ACCOUNTS])
		cfg_accounts(p, top[TOP_ACCOUNTS]);
	if (top[TOP_TENANTS])
		cfg_tenants(p, top[TOP_TENANTS]);
	if (top[TOP_WEBHOOKS])
		cfg_webhooks(p, top[TOP_WEBHOOKS]);
	if (top[TOP_RATE])
		cfg_rate(p, top[TOP_RATE]);
	return 0;
}

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

static void cfg_check_keys(struct cfg_parse *p)
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
	return n && n->type != YAML_SEQUENCE_NODE && !cfg_is_null(n);
}

/* "host:0" (any free port): two listeners may both say it. Checked for length first: a value
 * shorter than 2 bytes (already reported as not host:port) must not be read before its start. */
static int cfg_any_port(const char *s)
{
	size_t n = strlen(s);

	return n >= 2 && strcmp(s + n - 2, ":0") == 0;
}

/* Rules that span fields; errors point at the section's key (topk) where there is one. */
static void cfg_check(struct cfg_parse *p, yaml_node_t **top, yaml_node_t **topk)
{
	struct gw_config *cfg = p->cfg;

	if (cfg->naccounts == 0 && !cfg_bad_list(top[TOP_ACCOUNTS]))
		CFG_ERR(p, topk[TOP_ACCOUNTS], "at least one account is required (accounts:)");
	if (cfg->ntenants == 0 && !cfg_bad_list(top[TOP_TENANTS]))
		CFG_ERR(p, topk[TOP_TENANTS], "at least one tenant is required (tenants:)");
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
		CFG_ERR(p, topk[TOP_LISTEN], "listen.grpc and listen.http must differ");
	if (!cfg->tls.cert_file != !cfg->tls.key_file)
		CFG_ERR(p, topk[TOP_TLS], "tls.cert_file and tls.key_file must be set together");
	if (cfg->tls.client_ca_file && !cfg->tls.cert_file)
		CFG_ERR(p, topk[TOP_TLS], "tls.client_ca_file needs tls.cert_file and tls.key_file");
	if (cfg->webhooks.public_url && !cfg->http_listen)
		CFG_ERR(p, topk[TOP_WEBHOOKS],
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
 * libyaml's document loader keeps anchors in a flat list and scans all of it for every new anchor
 * and every alias, so its time grows with the square of their number (a 64 KiB file of anchors
 * took over half a second under ASan; a 1 MiB one would take minutes at start-up or SIGHUP). A real
 * config needs a handful, so more than CFG_ANCHORS_MAX are refused before the load. The text's '&'
 * bytes bound the anchors from above: only a file with many of them pays for the counting pass.
 * A syntax error ends the count early; the load that follows reports it.
 */
static int cfg_anchors_ok(const char *file, const char *text, size_t len, struct gw_errors *errs)
{
	const char *s = text, *end = text + len;
	size_t amps = 0, anchors = 0;
	yaml_parser_t yp;
	yaml_event_t ev;
	int rc = 0, done = 0;

	while (amps <= CFG_ANCHORS_MAX && (s = memchr(s, '&', (size_t)(end - s))) != NULL) {
		amps++;
		s++;
	}
	if (amps <= CFG_ANCHORS_MAX || !yaml_parser_initialize(&yp))
		return 0;
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	while (!done && yaml_parser_parse(&yp, &ev)) {
		const yaml_char_t *anchor = NULL;

		if (ev.type == YAML_SCALAR_EVENT)
			anchor = ev.data.scalar.anchor;
		else if (ev.type == YAML_SEQUENCE_START_EVENT)
			anchor = ev.data.sequence_start.anchor;
		else if (ev.type == YAML_MAPPING_START_EVENT)
			anchor = ev.data.mapping_start.anchor;
		else if (ev.type == YAML_STREAM_END_EVENT)
			done = 1;
		if (anchor && ++anchors > CFG_ANCHORS_MAX) {
			gw_errors_add(errs, file, (int)ev.start_mark.line + 1,
				      "more than %d YAML anchors (&name) in one file", CFG_ANCHORS_MAX);
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
	yaml_node_t *top[TOP_NKEYS] = { 0 }, *topk[TOP_NKEYS] = { 0 };
	int root_ok;
	struct cfg_parse p;

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
	cfg->cache.status_ttl_ms = GW_CONFIG_DEFAULT_STATUS_TTL_MS;
	cfg->cache.max_entries = GW_CONFIG_DEFAULT_MAX_ENTRIES;
	cfg->cache.batch_window_ms = GW_CONFIG_DEFAULT_BATCH_WINDOW_MS;
	cfg->cache.batch_max = GW_CONFIG_DEFAULT_BATCH_MAX;
	cfg->upstream.connect_timeout_ms = GW_CONFIG_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->upstream.default_timeout_ms = GW_CONFIG_DEFAULT_TIMEOUT_MS;
	cfg->upstream.max_response_bytes = GW_CONFIG_DEFAULT_MAX_RESPONSE;
	cfg->max_message_bytes = GW_CONFIG_DEFAULT_MAX_MESSAGE;
	cfg->upload_chunk_bytes = GW_CONFIG_DEFAULT_UPLOAD_CHUNK;

	if (cfg_anchors_ok(path, text, len, errs) < 0)
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
	p = (struct cfg_parse){ .file = path, .doc = &doc, .errs = errs, .cfg = cfg };
	if (!yaml_document_get_root_node(&doc)) {
		gw_errors_add(errs, path, 0, "the configuration is empty");
		goto out;
	}
	root_ok = cfg_root(&p, yaml_document_get_root_node(&doc), top, topk);
	/* A second document would be silently ignored otherwise. */
	if (!yaml_parser_load(&yp, &extra)) {
		cfg_yaml_error(errs, path, &yp);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);

		if (r2)
			gw_errors_add(errs, path, cfg_line(r2), "only one YAML document is allowed");
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
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->tls.client_ca_file);
	free(cfg->state.path);
	free(cfg->log_level);
	free(cfg->webhooks.path_prefix);
	free(cfg->webhooks.public_url);
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

int gw_config_tenant_index(const struct gw_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (cfg->tenants[i].name && strcmp(cfg->tenants[i].name, name) == 0)
			return (int)i;
	return -1;
}
