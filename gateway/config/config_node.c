/*
 * config_node: the typed readers every section uses (string, integer, number, bool, mapping with
 * its key table, list), the value checks more than one section needs, and the error list. Separate
 * from the sections so a reader's rules (NUL bytes, lengths, duplicate keys) live in one place.
 */
#include "gateway/config/config_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_MSG_MAX 512		/* one formatted error message */

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

/* ---- node helpers ---- */

int gw_cfg_line(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 0;
}

yaml_node_t *gw_cfg_node(struct gw_cfg_parse *p, int idx)
{
	return yaml_document_get_node(p->doc, idx);
}

/* A plain empty, "~" or "null" scalar: the key is there but says nothing. */
int gw_cfg_is_null(const yaml_node_t *n)
{
	const char *v;

	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The scalar's text, or NULL with an error. Embedded NULs are refused: C strings cannot hold them. */
const char *gw_cfg_scalar(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, const char *what)
{
	const char *v;

	if (!n || n->type != YAML_SCALAR_NODE) {
		GW_CFG_ERR(p, n, "%s must be %s", path, what);
		return NULL;
	}
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length) {
		GW_CFG_ERR(p, n, "%s must not contain a NUL byte", path);
		return NULL;
	}
	if (n->data.scalar.length > GW_CONFIG_MAX_STRING) {
		GW_CFG_ERR(p, n, "%s is longer than %d bytes", path, GW_CONFIG_MAX_STRING);
		return NULL;
	}
	return v;
}

/* Non-empty string copied into *out (replacing a previous value). 0 or -1. */
int gw_cfg_string(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, char **out)
{
	const char *v;
	char *copy;

	if (gw_cfg_is_null(n)) {
		GW_CFG_ERR(p, n, "%s must not be empty", path);
		return -1;
	}
	v = gw_cfg_scalar(p, n, path, "a string");
	if (!v)
		return -1;
	if (!*v) {
		GW_CFG_ERR(p, n, "%s must not be empty", path);
		return -1;
	}
	copy = strdup(v);
	if (!copy) {
		GW_CFG_ERR(p, n, "out of memory");
		return -1;
	}
	free(*out);
	*out = copy;
	return 0;
}

/* Decimal integer in [min, max]. */
int gw_cfg_long(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, long long min, long long max,
		long long *out)
{
	const char *v = gw_cfg_scalar(p, n, path, "an integer");
	char *end;
	long long x;

	if (!v)
		return -1;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (!*v || *end || end == v || errno == ERANGE || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) {
		GW_CFG_ERR(p, n, "%s must be an integer", path);
		return -1;
	}
	if (x < min) {
		if (min == 1)
			GW_CFG_ERR(p, n, "%s must be > 0", path);
		else
			GW_CFG_ERR(p, n, "%s must be >= %lld", path, min);
		return -1;
	}
	if (x > max) {
		GW_CFG_ERR(p, n, "%s must be <= %lld", path, max);
		return -1;
	}
	*out = x;
	return 0;
}

/* Finite number; positive (> 0) or non-negative (>= 0). */
int gw_cfg_double(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, int positive, double *out)
{
	const char *v = gw_cfg_scalar(p, n, path, "a number");
	char *end;
	double x;

	if (!v)
		return -1;
	errno = 0;
	x = strtod(v, &end);
	if (!*v || *end || end == v || errno == ERANGE || !isfinite(x) ||
	    !(v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9'))) {
		GW_CFG_ERR(p, n, "%s must be a number", path);
		return -1;
	}
	if (positive ? !(x > 0) : !(x >= 0)) {
		GW_CFG_ERR(p, n, "%s must be %s 0", path, positive ? ">" : ">=");
		return -1;
	}
	*out = x;
	return 0;
}

int gw_cfg_bool(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	const char *v = gw_cfg_scalar(p, n, path, "true or false");

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
	GW_CFG_ERR(p, n, "%s must be true or false", path);
	return -1;
}

/* Copies at most 64 bytes of s for quoting in a message, with control characters as '?', so a
 * hostile file cannot put newlines or terminal escapes into --check-config output. */
const char *gw_cfg_quote(const char *s, char out[GW_CFG_QUOTE_MAX])
{
	size_t i;

	for (i = 0; i < GW_CFG_QUOTE_MAX - 1 && s[i]; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
	return out;
}

/*
 * Looks up keys[] in mapping n: vals[i] (and knodes[i]) get the value (key) node or NULL. Unknown
 * and repeated keys are errors. A null node counts as an empty mapping. Returns -1 (after an error)
 * if n is not a mapping.
 */
int gw_cfg_map(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, const char *const *keys,
	       size_t nkeys, yaml_node_t **vals, yaml_node_t **knodes)
{
	yaml_node_t *kn[GW_CFG_MAP_KEYS_MAX];

	for (size_t i = 0; i < nkeys; i++) {
		vals[i] = NULL;
		kn[i] = NULL;
		if (knodes)
			knodes[i] = NULL;
	}
	if (gw_cfg_is_null(n))
		return 0;
	if (!n || n->type != YAML_MAPPING_NODE) {
		GW_CFG_ERR(p, n, "%s must be a mapping", path);
		return -1;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = gw_cfg_node(p, pr->key);
		yaml_node_t *v = gw_cfg_node(p, pr->value);
		const char *name;
		size_t i;

		if (!k || k->type != YAML_SCALAR_NODE) {
			GW_CFG_ERR(p, k, "%s: keys must be strings", path);
			continue;
		}
		name = (const char *)k->data.scalar.value;
		for (i = 0; i < nkeys; i++)
			if (strcmp(name, keys[i]) == 0)
				break;
		if (i == nkeys || strlen(name) != k->data.scalar.length) {
			char q[GW_CFG_QUOTE_MAX];

			GW_CFG_ERR(p, k, "unknown key \"%s\"", gw_cfg_quote(name, q));
			continue;
		}
		if (vals[i]) {
			GW_CFG_ERR(p, k, "duplicate key \"%s\" (first at line %d)", name, gw_cfg_line(kn[i]));
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
int gw_cfg_seq(struct gw_cfg_parse *p, yaml_node_t *n, const char *path, size_t max, size_t *count)
{
	*count = 0;
	if (!n || gw_cfg_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		GW_CFG_ERR(p, n, "%s must be a list", path);
		return -1;
	}
	*count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (*count > max) {
		GW_CFG_ERR(p, n, "%s has %zu entries; at most %zu are allowed", path, *count, max);
		*count = 0;
		return -1;
	}
	return 0;
}

/* Builds a field path like "tenants[1].rate.per_second" for messages; truncation only shortens the
 * message. (A function, not snprintf inline: paths are bounded by the schema, not by the buffer.) */
void gw_cfg_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- value checks ---- */

/* http(s)://authority[/path], no credentials, query, fragment or whitespace. */
int gw_cfg_base_url_ok(const char *s)
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
