/*
 * config_redis: the redis: section, the coordination layer the replicas share (issue 16): the url
 * split and checked, where the password and the seal key live, the timeouts and the fallback.
 *
 * The url is split here, not by a library: hiredis 0.14 has no URL parser, and every refusal must
 * say exactly what is wrong without ever quoting what may be a password. A host name is quoted,
 * nothing before it.
 */
#include "gateway/config/config_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_SCHEME "redis://"
#define REDIS_HOST_MAX 253	/* a DNS name; longer is not a host at all */
#define REDIS_EXAMPLE "redis://10.0.0.7:6379/0"
#define REDIS_PASSWORD_MSG "redis.url must not hold credentials (user:password@): use password_file or password_env"

/* Frees the url's fields only (what gw_config_redis_url fills). */
static void redis_free_conn(struct gw_redis_cfg *c)
{
	free(c->hostaddr);
	c->hostaddr = NULL;
	c->port = 0;
	c->db = 0;
}

/* A DNS name's characters: what the refusal may quote as a host name. */
static int redis_is_name(const char *s, size_t n)
{
	if (n == 0 || n > REDIS_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return 1;
}

/* Decimal s[0..n) in [min, max] into *out; -1 when empty, not digits or out of range. */
static int redis_num(const char *s, size_t n, unsigned long min, unsigned long max, unsigned *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* redis://host[:port][/db], host an IPv4 address or [IPv6]. */
static int redis_parse(const char *url, struct gw_redis_cfg *out, char *err, size_t errlen)
{
	char q[GW_CFG_QUOTE_MAX], host[INET6_ADDRSTRLEN + 1];
	const char *a, *end, *h, *hend, *rest;
	unsigned char bin[16];
	size_t hlen;
	int v6 = 0;

	if (strncmp(url, "rediss://", 9) == 0) {
		gw_cfg_pathf(err, errlen, "redis.url: rediss:// (TLS) is not supported: hiredis 0.14 has no TLS; "
			  "connect with redis:// to a TLS sidecar on the pod, or let the service mesh encrypt "
			  "the connection (docs/operations.md, \"Several replicas: Redis\")");
		return -1;
	}
	if (strncmp(url, REDIS_SCHEME, strlen(REDIS_SCHEME)) != 0) {
		gw_cfg_pathf(err, errlen, "redis.url must be redis://IP[:port][/db], e.g. " REDIS_EXAMPLE);
		return -1;
	}
	a = url + strlen(REDIS_SCHEME);
	end = a + strcspn(a, "/?#");
	/* Checked before anything else: whatever follows must not be quoted if it is a password. */
	if (memchr(a, '@', (size_t)(end - a))) {
		gw_cfg_pathf(err, errlen, REDIS_PASSWORD_MSG);
		return -1;
	}
	if (strpbrk(a, "?#")) {
		gw_cfg_pathf(err, errlen, "redis.url must not have a query or a fragment (?, #): the other settings "
			  "are keys of the redis section");
		return -1;
	}
	h = a;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb || (rb + 1 < end && rb[1] != ':')) {
			gw_cfg_pathf(err, errlen, "redis.url: an IPv6 address must be in [ ] (redis://[::1]:6379/0)");
			return -1;
		}
		h++;
		hlen = (size_t)(rb - h);
		hend = rb + 1;
		v6 = 1;
	} else {
		hend = memchr(h, ':', (size_t)(end - h));
		if (!hend)
			hend = end;
		else if (memchr(hend + 1, ':', (size_t)(end - hend - 1))) {
			gw_cfg_pathf(err, errlen, "redis.url: an IPv6 address must be in [ ] (redis://[::1]:6379/0)");
			return -1;
		}
		hlen = (size_t)(hend - h);
	}
	if (hlen == 0) {
		gw_cfg_pathf(err, errlen, "redis.url needs the server's IP address, e.g. " REDIS_EXAMPLE);
		return -1;
	}
	if (hlen < sizeof host) {
		memcpy(host, h, hlen);
		host[hlen] = '\0';
	}
	if (hlen >= sizeof host || inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1) {
		if (!v6 && redis_is_name(h, hlen)) {
			char name[REDIS_HOST_MAX + 1];

			memcpy(name, h, hlen);
			name[hlen] = '\0';
			gw_cfg_pathf(err, errlen, "redis.url: host \"%s\" is a name: hiredis resolves names with a "
				  "blocking getaddrinfo, which would stall the event loop; give the server's IP "
				  "address (IPv6 in [ ])", gw_cfg_quote(name, q));
		} else {
			gw_cfg_pathf(err, errlen, "redis.url: the host must be an IPv4 address or an IPv6 address in [ ]");
		}
		return -1;
	}
	out->port = GW_CONFIG_REDIS_DEFAULT_PORT;
	if (hend < end && redis_num(hend + 1, (size_t)(end - hend - 1), 1, 65535, &out->port) < 0) {
		gw_cfg_pathf(err, errlen, "redis.url: port must be 1..65535");
		return -1;
	}
	out->db = 0;
	rest = end;
	if (*rest == '/' && rest[1] != '\0' &&
	    redis_num(rest + 1, strlen(rest + 1), 0, GW_CONFIG_REDIS_MAX_DB, &out->db) < 0) {
		gw_cfg_pathf(err, errlen, "redis.url: the database must be 0..%d (redis://IP:port/0)",
			  GW_CONFIG_REDIS_MAX_DB);
		return -1;
	}
	out->hostaddr = strdup(host);
	if (!out->hostaddr) {
		gw_cfg_pathf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int gw_config_redis_url(const char *url, struct gw_redis_cfg *out, char *err, size_t errlen)
{
	int rc;

	if (err && errlen)
		err[0] = '\0';
	redis_free_conn(out);
	rc = redis_parse(url, out, err, errlen);
	if (rc != 0)
		redis_free_conn(out);
	return rc;
}

void gw_config_redis_free(struct gw_redis_cfg *c)
{
	if (!c)
		return;
	redis_free_conn(c);
	free(c->password_file);
	free(c->password_env);
	free(c->key_prefix);
	free(c->seal_key_file);
	memset(c, 0, sizeof *c);
}

/* 1..GW_CONFIG_REDIS_PREFIX_MAX bytes of [A-Za-z0-9:_.-]: no space, quote or glob character, so a
 * key is always one argument and a SCAN pattern built on it matches only ours. */
static int redis_prefix_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > GW_CONFIG_REDIS_PREFIX_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == ':' || *s == '_' || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

void gw_cfg_redis(struct gw_cfg_parse *p, yaml_node_t *n)
{
	enum { K_URL, K_FILE, K_ENV, K_PREFIX, K_SEAL, K_CONNECT, K_COMMAND, K_FALLBACK, K_PASSWORD, K_N };
	static const char *const keys[K_N] = { "url", "password_file", "password_env", "key_prefix",
					       "seal_key_file", "connect_timeout_ms", "command_timeout_ms",
					       "fallback", "password" };
	struct gw_redis_cfg *c = &p->cfg->redis;
	size_t nerr = p->errs->n + p->errs->dropped;
	yaml_node_t *v[K_N];
	long long x;

	c->line = gw_cfg_line(n) ? gw_cfg_line(n) : 1;
	c->connect_timeout_ms = GW_CONFIG_REDIS_DEFAULT_CONNECT_MS;
	c->command_timeout_ms = GW_CONFIG_REDIS_DEFAULT_COMMAND_MS;
	c->fallback = GW_REDIS_FALLBACK_LOCAL;
	if (gw_cfg_is_null(n)) {
		GW_CFG_ERR(p, n, "redis needs url and seal_key_file");
		return;
	}
	if (gw_cfg_map(p, n, "redis", keys, K_N, v, NULL) < 0)
		return;
	if (v[K_PASSWORD])
		GW_CFG_ERR(p, v[K_PASSWORD], "redis.password must not be inline; use password_file or password_env");
	if (v[K_FILE] && v[K_ENV]) {
		GW_CFG_ERR(p, v[K_ENV], "redis: set only one of password_file or password_env");
	} else if (v[K_FILE]) {
		if (gw_cfg_string(p, v[K_FILE], "redis.password_file", &c->password_file) == 0)
			c->password_line = gw_cfg_line(v[K_FILE]);
	} else if (v[K_ENV]) {
		if (gw_cfg_string(p, v[K_ENV], "redis.password_env", &c->password_env) == 0) {
			c->password_line = gw_cfg_line(v[K_ENV]);
			if (!gw_cfg_env_name_ok(c->password_env))
				GW_CFG_ERR(p, v[K_ENV], "redis.password_env must be an environment variable's name "
					   "([A-Za-z_][A-Za-z0-9_]*)");
		}
	}
	if (v[K_PREFIX]) {
		if (gw_cfg_string(p, v[K_PREFIX], "redis.key_prefix", &c->key_prefix) == 0 &&
		    !redis_prefix_ok(c->key_prefix))
			GW_CFG_ERR(p, v[K_PREFIX], "redis.key_prefix must be 1..%d bytes of letters, digits, ':', "
				   "'_', '.' and '-'", GW_CONFIG_REDIS_PREFIX_MAX);
	} else if (!(c->key_prefix = strdup(GW_CONFIG_REDIS_DEFAULT_PREFIX))) {
		GW_CFG_ERR(p, n, "out of memory");
	}
	if (v[K_SEAL]) {
		if (gw_cfg_string(p, v[K_SEAL], "redis.seal_key_file", &c->seal_key_file) == 0)
			c->seal_key_line = gw_cfg_line(v[K_SEAL]);
	} else {
		GW_CFG_ERR(p, n, "redis needs seal_key_file: a file holding the 32-byte key, the same on every "
			   "replica, that seals the upstream session before it is stored in Redis");
	}
	if (v[K_CONNECT] && gw_cfg_long(p, v[K_CONNECT], "redis.connect_timeout_ms", 100, 60000, &x) == 0)
		c->connect_timeout_ms = (long)x;
	if (v[K_COMMAND] && gw_cfg_long(p, v[K_COMMAND], "redis.command_timeout_ms", 10, 10000, &x) == 0)
		c->command_timeout_ms = (long)x;
	if (v[K_FALLBACK]) {
		const char *f = gw_cfg_scalar(p, v[K_FALLBACK], "redis.fallback", "a string");

		if (f && strcmp(f, "local") != 0)
			GW_CFG_ERR(p, v[K_FALLBACK], "redis.fallback must be local (while Redis is unreachable, "
				   "limits fall back to limit / cluster.expected_replicas)");
	}
	if (!v[K_URL]) {
		GW_CFG_ERR(p, n, "redis needs url (e.g. " REDIS_EXAMPLE ")");
	} else {
		/* Read without gw_cfg_string: the text may hold a password, so no copy outlives this. */
		const char *url = gw_cfg_scalar(p, v[K_URL], "redis.url", "a string");
		char msg[512];

		if (url && url[0] == '\0')
			GW_CFG_ERR(p, v[K_URL], "redis.url must not be empty");
		else if (url && gw_config_redis_url(url, c, msg, sizeof msg) < 0)
			GW_CFG_ERR(p, v[K_URL], "%s", msg);
	}
	c->enabled = p->errs->n + p->errs->dropped == nerr;
}

void gw_cfg_redis_check(struct gw_cfg_parse *p, yaml_node_t *rkey)
{
	const struct gw_config *cfg = p->cfg;

	/* A state.postgres with errors was reported already. */
	if (!cfg->redis.line || cfg->state.postgres.line)
		return;
	GW_CFG_ERR(p, rkey, "redis needs state.postgres: the replicas that share limits and the upstream "
		   "session through Redis must share their jobs, ownership and idempotency keys too");
}
