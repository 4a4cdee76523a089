/*
 * config_pg: state.postgres (the dsn split and checked, where the password lives, the pool) and
 * cluster (expected_replicas), with the per-replica share of limits.
 *
 * The dsn is split here rather than by libpq's PQconninfoParse so that the config module stays
 * pure (no libpq) and every refusal can say exactly what is wrong, without ever quoting a value
 * that might be a password: keyword names and a host name are quoted, nothing else.
 */
#include "gateway/config/config_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/hex.h"

#define PG_MAX_KV 32		/* keywords in one dsn */
#define PG_MAX_HOST 253		/* a DNS name */
#define PG_PASSWORD_MSG "state.postgres.dsn must not hold a password: use password_file or password_env"

struct pg_kv {
	char *k, *v;
};
struct pg_dsn {
	struct pg_kv kv[PG_MAX_KV];
	size_t n;
};

/*
 * Keywords that are passed to libpq as they are (extra_keys): TLS files and checks, TCP
 * keepalives, authentication requirements. None of them resolves a name, reads a password or
 * blocks. Left out on purpose: options (the pool sets statement_timeout through it),
 * connect_timeout (timeout_ms), service/servicefile (pg_service.conf may name a host or a
 * password), passfile/sslpassword (secrets), gssencmode/krbsrvname/gsslib (Kerberos looks
 * names up), load_balance_hosts (one server only), client_encoding (the gateway speaks UTF-8).
 */
static const char *const pg_pass_through[] = {
	"sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "sslsni",
	"ssl_min_protocol_version", "ssl_max_protocol_version", "channel_binding", "require_auth",
	"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	"target_session_attrs",
};
#define PG_NPASS (sizeof pg_pass_through / sizeof pg_pass_through[0])

/* Values may be the password the check is about to refuse: wiped before they are freed. */
static void pg_dsn_clear(struct pg_dsn *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->kv[i].k);
		if (d->kv[i].v) {
			explicit_bzero(d->kv[i].v, strlen(d->kv[i].v));
			free(d->kv[i].v);
		}
	}
	d->n = 0;
}

static char *pg_copy(const char *p, size_t len)
{
	char *c = malloc(len + 1);

	if (c) {
		memcpy(c, p, len);
		c[len] = '\0';
	}
	return c;
}

/* Appends k=v (len bytes each, copied); -1 with err when the dsn has too many keywords. */
static int pg_dsn_add(struct pg_dsn *d, const char *k, size_t klen, const char *v, size_t vlen, char *err,
		      size_t errlen)
{
	struct pg_kv *e;

	if (d->n >= PG_MAX_KV) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn has more than %d keywords", PG_MAX_KV);
		return -1;
	}
	e = &d->kv[d->n];
	/* copies of exactly len bytes: k and v are slices, not strings (strndup would read on) */
	e->k = pg_copy(k, klen);
	e->v = pg_copy(v, vlen);
	if (!e->k || !e->v) {
		free(e->k);
		free(e->v);
		gw_cfg_pathf(err, errlen, "out of memory");
		return -1;
	}
	d->n++;
	return 0;
}

static int pg_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * libpq's conninfo form: "key = value" pairs separated by white space; a value is either bare (up
 * to white space) or in single quotes, and in both a backslash takes the next byte as it is (\'
 * and \\). Positions in messages are byte offsets: the text around them may be a password.
 */
static int pg_parse_conninfo(const char *s, struct pg_dsn *d, char *err, size_t errlen)
{
	size_t len = strlen(s), i = 0;
	char *val = malloc(len + 1);
	int rc = -1;

	if (!val) {
		gw_cfg_pathf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		size_t k0, klen, vlen = 0;

		while (i < len && pg_space(s[i]))
			i++;
		if (i == len)
			break;
		k0 = i;
		while (i < len && s[i] != '=' && !pg_space(s[i]))
			i++;
		klen = i - k0;
		while (i < len && pg_space(s[i]))
			i++;
		if (klen == 0 || i == len || s[i] != '=') {
			gw_cfg_pathf(err, errlen, "state.postgres.dsn: expected keyword=value at byte %zu", k0 + 1);
			goto out;
		}
		i++;
		while (i < len && pg_space(s[i]))
			i++;
		if (i < len && s[i] == '\'') {
			size_t q0 = i++;

			for (;;) {
				if (i == len) {
					gw_cfg_pathf(err, errlen,
					       "state.postgres.dsn: the quote at byte %zu is not closed", q0 + 1);
					goto out;
				}
				if (s[i] == '\'') {
					i++;
					break;
				}
				if (s[i] == '\\' && i + 1 < len)
					i++;
				val[vlen++] = s[i++];
			}
		} else {
			while (i < len && !pg_space(s[i])) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				val[vlen++] = s[i++];
			}
		}
		if (pg_dsn_add(d, s + k0, klen, val, vlen, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	explicit_bzero(val, len + 1);
	free(val);
	return rc;
}

/* Percent-decodes s[0..n) into out (n + 1 bytes); -1 on a bad escape or an encoded NUL. */
static int pg_pct(const char *s, size_t n, char *out, size_t *outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi, lo;

		if (i + 2 >= n)
			return -1;
		hi = gw_hex_digit(s[i + 1]);
		lo = gw_hex_digit(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

/* Adds k with the percent-decoded s[0..n) as its value. */
static int pg_add_pct(struct pg_dsn *d, const char *k, size_t klen, const char *s, size_t n, char *err,
		      size_t errlen, const char *what)
{
	char *buf = malloc(n + 1);
	size_t len;
	int rc = -1;

	if (!buf) {
		gw_cfg_pathf(err, errlen, "out of memory");
		return -1;
	}
	if (pg_pct(s, n, buf, &len) < 0)
		gw_cfg_pathf(err, errlen, "state.postgres.dsn: bad percent-encoding in the %s", what);
	else
		rc = pg_dsn_add(d, k, klen, buf, len, err, errlen);
	explicit_bzero(buf, n + 1);
	free(buf);
	return rc;
}

/*
 * postgresql://[user[:password]@][host][:port][/dbname][?key=value&...] (postgres:// too), host a
 * name, an IPv4 address or [IPv6]; every part percent-decoded.
 */
static int pg_parse_uri(const char *s, size_t skip, struct pg_dsn *d, char *err, size_t errlen)
{
	const char *a = s + skip, *end = a + strcspn(a, "/?"), *at = NULL, *h, *hend, *port = NULL;

	for (const char *q = a; q < end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		if (memchr(a, ':', (size_t)(at - a))) {
			gw_cfg_pathf(err, errlen, PG_PASSWORD_MSG);
			return -1;
		}
		if (at > a && pg_add_pct(d, "user", 4, a, (size_t)(at - a), err, errlen, "user") < 0)
			return -1;
		h = at + 1;
	} else {
		h = a;
	}
	if (memchr(h, ',', (size_t)(end - h))) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn names several servers; give one");
		return -1;
	}
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb || (rb + 1 < end && rb[1] != ':')) {
			gw_cfg_pathf(err, errlen, "state.postgres.dsn: an IPv6 address must be in [ ] (postgresql://[::1]:5432/db)");
			return -1;
		}
		if (pg_add_pct(d, "host", 4, h + 1, (size_t)(rb - h - 1), err, errlen, "host") < 0)
			return -1;
		hend = rb + 1;
	} else {
		hend = memchr(h, ':', (size_t)(end - h));
		if (!hend)
			hend = end;
		if (hend > h && pg_add_pct(d, "host", 4, h, (size_t)(hend - h), err, errlen, "host") < 0)
			return -1;
	}
	if (hend < end) {	/* ':' port */
		port = hend + 1;
		if (pg_add_pct(d, "port", 4, port, (size_t)(end - port), err, errlen, "port") < 0)
			return -1;
	}
	if (*end == '/') {
		const char *db = end + 1;
		size_t n = strcspn(db, "?");

		if (n && pg_add_pct(d, "dbname", 6, db, n, err, errlen, "database name") < 0)
			return -1;
		end = db + n;
	}
	if (*end == '?') {
		const char *q = end + 1;

		while (*q) {
			size_t n = strcspn(q, "&"), klen;
			const char *eq = memchr(q, '=', n);
			char *key;
			int rc;

			if (!eq || eq == q) {
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: expected key=value in the query, at byte %zu",
				       (size_t)(q - s) + 1);
				return -1;
			}
			key = malloc((size_t)(eq - q) + 1);
			if (!key) {
				gw_cfg_pathf(err, errlen, "out of memory");
				return -1;
			}
			if (pg_pct(q, (size_t)(eq - q), key, &klen) < 0) {
				free(key);
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: bad percent-encoding in a query key");
				return -1;
			}
			rc = pg_add_pct(d, key, klen, eq + 1, n - (size_t)(eq + 1 - q), err, errlen, "query");
			free(key);
			if (rc < 0)
				return -1;
			q += n;
			if (*q == '&')
				q++;
		}
	}
	return 0;
}

static int pg_is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A DNS name: letters, digits, '-', '.', '_', at most PG_MAX_HOST bytes. */
static int pg_is_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PG_MAX_HOST)
		return 0;
	for (const char *q = s; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      *q == '-' || *q == '.' || *q == '_'))
			return 0;
	return 1;
}

/* Takes d's value i into *dst (d no longer owns it). */
static void pg_take(struct pg_dsn *d, size_t i, char **dst)
{
	free(*dst);
	*dst = d->kv[i].v;
	d->kv[i].v = NULL;
}

static int pg_dsn_check(struct pg_dsn *d, struct gw_pg_cfg *out, char *err, size_t errlen)
{
	static const char *const modes[] = { "disable", "allow", "prefer", "require", "verify-ca",
					     "verify-full" };
	static const char *const refused[][2] = {
		{ "options", "the gateway sets it (statement_timeout from state.postgres.timeout_ms)" },
		{ "connect_timeout", "use state.postgres.timeout_ms" },
		{ "service", "pg_service.conf may name a host to resolve or hold a password" },
		{ "servicefile", "pg_service.conf may name a host to resolve or hold a password" },
		{ "gssencmode", "GSSAPI (Kerberos) looks names up synchronously" },
		{ "load_balance_hosts", "the gateway connects to one server" },
	};
	char q[GW_CFG_QUOTE_MAX];
	char *port = NULL;
	int rc = -1;

	for (size_t i = 0; i < d->n; i++) {
		const char *k = d->kv[i].k;

		if (strcmp(k, "password") == 0 || strcmp(k, "passfile") == 0 || strcmp(k, "sslpassword") == 0) {
			gw_cfg_pathf(err, errlen, PG_PASSWORD_MSG);
			goto out;
		}
	}
	for (size_t i = 0; i < d->n; i++) {
		const char *k = d->kv[i].k, *v = d->kv[i].v;

		for (size_t j = 0; j < i; j++)
			if (strcmp(d->kv[j].k, k) == 0) {
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: keyword \"%s\" is given twice",
				       gw_cfg_quote(k, q));
				goto out;
			}
		if (v[0] == '\0') {
			gw_cfg_pathf(err, errlen, "state.postgres.dsn: keyword \"%s\" has an empty value", gw_cfg_quote(k, q));
			goto out;
		}
	}
	for (size_t i = 0; i < d->n; i++) {
		const char *k = d->kv[i].k;
		size_t j;

		if (strcmp(k, "host") == 0) {
			pg_take(d, i, &out->host);
		} else if (strcmp(k, "hostaddr") == 0) {
			pg_take(d, i, &out->hostaddr);
		} else if (strcmp(k, "port") == 0) {
			pg_take(d, i, &port);
		} else if (strcmp(k, "dbname") == 0) {
			pg_take(d, i, &out->dbname);
		} else if (strcmp(k, "user") == 0) {
			pg_take(d, i, &out->user);
		} else if (strcmp(k, "sslmode") == 0) {
			for (j = 0; j < sizeof modes / sizeof modes[0] && strcmp(d->kv[i].v, modes[j]) != 0; j++)
				;
			if (j == sizeof modes / sizeof modes[0]) {
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: sslmode must be disable, allow, prefer, "
				       "require, verify-ca or verify-full");
				goto out;
			}
			pg_take(d, i, &out->sslmode);
		} else if (strcmp(k, "application_name") == 0) {
			pg_take(d, i, &out->application_name);
		} else {
			for (j = 0; j < PG_NPASS && strcmp(k, pg_pass_through[j]) != 0; j++)
				;
			if (j < PG_NPASS) {
				if (out->nextra >= GW_CONFIG_PG_MAX_EXTRA) {
					gw_cfg_pathf(err, errlen, "state.postgres.dsn has more than %d keywords besides "
					       "host, hostaddr, port, dbname, user, sslmode and application_name",
					       GW_CONFIG_PG_MAX_EXTRA);
					goto out;
				}
				out->extra_keys[out->nextra] = d->kv[i].k;
				out->extra_values[out->nextra++] = d->kv[i].v;
				d->kv[i].k = d->kv[i].v = NULL;
				continue;
			}
			for (j = 0; j < sizeof refused / sizeof refused[0] && strcmp(k, refused[j][0]) != 0; j++)
				;
			if (j < sizeof refused / sizeof refused[0])
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: keyword \"%s\" is not allowed: %s", k,
				       refused[j][1]);
			else
				gw_cfg_pathf(err, errlen, "state.postgres.dsn: unknown or unsupported keyword \"%s\" "
				       "(allowed: host, hostaddr, port, dbname, user, sslmode, application_name, "
				       "sslrootcert, sslcert, sslkey, sslcrl, sslcrldir, sslsni, "
				       "ssl_min_protocol_version, ssl_max_protocol_version, channel_binding, "
				       "require_auth, keepalives*, tcp_user_timeout, target_session_attrs)",
				       gw_cfg_quote(k, q));
			goto out;
		}
	}
	/* One server, named by address: libpq resolves host= names synchronously (getaddrinfo inside
	 * PQconnectPoll), which would stall the loop; hostaddr is connected to as it is. */
	if ((out->host && strchr(out->host, ',')) || (out->hostaddr && strchr(out->hostaddr, ',')) ||
	    (port && strchr(port, ','))) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn names several servers; give one");
		goto out;
	}
	if (out->hostaddr && !pg_is_ip(out->hostaddr)) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn: hostaddr must be an IPv4 or IPv6 address");
		goto out;
	}
	if (out->host && pg_is_ip(out->host)) {
		if (!out->hostaddr) {	/* the address itself: nothing to resolve */
			out->hostaddr = out->host;
			out->host = NULL;
		}
	} else if (out->host && !pg_is_name(out->host)) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn: host must be an IP address or a DNS name (a Unix "
		       "socket directory is not supported: give hostaddr)");
		goto out;
	} else if (out->host && !out->hostaddr) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn: host \"%s\" is a name and there is no hostaddr: libpq "
		       "resolves names synchronously, which would block the event loop; set hostaddr to the "
		       "server's IP address (host may stay, for sslmode verify-full)", gw_cfg_quote(out->host, q));
		goto out;
	}
	if (!out->hostaddr) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn needs hostaddr (or host), the server's IPv4 or IPv6 "
		       "address");
		goto out;
	}
	out->port = GW_CONFIG_PG_DEFAULT_PORT;
	if (port) {
		char *e;
		long n = strtol(port, &e, 10);

		if (port[0] < '0' || port[0] > '9' || *e || n < 1 || n > 65535) {
			gw_cfg_pathf(err, errlen, "state.postgres.dsn: port must be 1..65535");
			goto out;
		}
		out->port = (unsigned)n;
	}
	if (!out->dbname || !out->user) {
		gw_cfg_pathf(err, errlen, "state.postgres.dsn needs %s", !out->dbname ? "dbname" : "user");
		goto out;
	}
	rc = 0;
out:
	free(port);
	return rc;
}

/* Frees the connection fields only (what gw_config_pg_dsn fills). */
static void pg_free_conn(struct gw_pg_cfg *c)
{
	free(c->hostaddr);
	free(c->host);
	free(c->dbname);
	free(c->user);
	free(c->sslmode);
	free(c->application_name);
	for (size_t i = 0; i < c->nextra; i++) {
		free(c->extra_keys[i]);
		free(c->extra_values[i]);
		c->extra_keys[i] = c->extra_values[i] = NULL;
	}
	c->hostaddr = c->host = c->dbname = c->user = c->sslmode = c->application_name = NULL;
	c->nextra = 0;
	c->port = 0;
}

int gw_config_pg_dsn(const char *dsn, struct gw_pg_cfg *out, char *err, size_t errlen)
{
	struct pg_dsn d = { .n = 0 };
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	pg_free_conn(out);
	if (strncmp(dsn, "postgresql://", 13) == 0)
		rc = pg_parse_uri(dsn, 13, &d, err, errlen);
	else if (strncmp(dsn, "postgres://", 11) == 0)
		rc = pg_parse_uri(dsn, 11, &d, err, errlen);
	else
		rc = pg_parse_conninfo(dsn, &d, err, errlen);
	if (rc == 0)
		rc = pg_dsn_check(&d, out, err, errlen);
	if (rc != 0)
		pg_free_conn(out);
	pg_dsn_clear(&d);
	return rc;
}

void gw_config_pg_free(struct gw_pg_cfg *c)
{
	if (!c)
		return;
	pg_free_conn(c);
	free(c->password_file);
	free(c->password_env);
	memset(c, 0, sizeof *c);
}

int gw_cfg_env_name_ok(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_'))
			return 0;
	return 1;
}

void gw_cfg_postgres(struct gw_cfg_parse *p, yaml_node_t *n)
{
	enum { K_DSN, K_FILE, K_ENV, K_POOL, K_TIMEOUT, K_PASSWORD, K_N };
	static const char *const keys[K_N] = { "dsn", "password_file", "password_env", "pool", "timeout_ms",
					       "password" };
	struct gw_pg_cfg *c = &p->cfg->state.postgres;
	size_t nerr = p->errs->n + p->errs->dropped;
	yaml_node_t *v[K_N];
	long long x;

	c->line = gw_cfg_line(n) ? gw_cfg_line(n) : 1;
	c->pool = GW_CONFIG_PG_DEFAULT_POOL;
	c->timeout_ms = GW_CONFIG_PG_DEFAULT_TIMEOUT_MS;
	if (gw_cfg_is_null(n)) {
		GW_CFG_ERR(p, n, "state.postgres needs dsn");
		return;
	}
	if (gw_cfg_map(p, n, "state.postgres", keys, K_N, v, NULL) < 0)
		return;
	if (v[K_PASSWORD])
		GW_CFG_ERR(p, v[K_PASSWORD], "state.postgres.password must not be inline; use password_file or "
			   "password_env");
	if (v[K_POOL] && gw_cfg_long(p, v[K_POOL], "state.postgres.pool", 1, GW_CONFIG_PG_MAX_POOL, &x) == 0)
		c->pool = (unsigned)x;
	if (v[K_TIMEOUT] && gw_cfg_long(p, v[K_TIMEOUT], "state.postgres.timeout_ms", 100, 60000, &x) == 0)
		c->timeout_ms = (long)x;
	if (v[K_FILE] && v[K_ENV]) {
		GW_CFG_ERR(p, v[K_ENV], "state.postgres: set only one of password_file or password_env");
	} else if (v[K_FILE]) {
		if (gw_cfg_string(p, v[K_FILE], "state.postgres.password_file", &c->password_file) == 0)
			c->password_line = gw_cfg_line(v[K_FILE]);
	} else if (v[K_ENV]) {
		if (gw_cfg_string(p, v[K_ENV], "state.postgres.password_env", &c->password_env) == 0) {
			c->password_line = gw_cfg_line(v[K_ENV]);
			if (!gw_cfg_env_name_ok(c->password_env))
				GW_CFG_ERR(p, v[K_ENV], "state.postgres.password_env must be an environment "
					   "variable's name ([A-Za-z_][A-Za-z0-9_]*)");
		}
	}
	if (!v[K_DSN]) {
		GW_CFG_ERR(p, n, "state.postgres needs dsn");
	} else {
		/* Read without gw_cfg_string: the text may hold a password, so no copy outlives this. */
		const char *dsn = gw_cfg_scalar(p, v[K_DSN], "state.postgres.dsn", "a string");
		char msg[1024];

		if (dsn && dsn[0] == '\0')
			GW_CFG_ERR(p, v[K_DSN], "state.postgres.dsn must not be empty");
		else if (dsn && gw_config_pg_dsn(dsn, c, msg, sizeof msg) < 0)
			GW_CFG_ERR(p, v[K_DSN], "%s", msg);
	}
	c->enabled = p->errs->n + p->errs->dropped == nerr;
}

void gw_cfg_cluster(struct gw_cfg_parse *p, yaml_node_t *n)
{
	static const char *const keys[] = { "expected_replicas" };
	yaml_node_t *v[1];
	long long x;

	if (gw_cfg_map(p, n, "cluster", keys, 1, v, NULL) < 0 || !v[0])
		return;
	if (gw_cfg_long(p, v[0], "cluster.expected_replicas", 1, GW_CONFIG_MAX_REPLICAS, &x) == 0) {
		p->cfg->cluster.expected_replicas = (unsigned)x;
		p->cfg->cluster.line = gw_cfg_line(v[0]);
	}
}

void gw_cfg_cluster_check(struct gw_cfg_parse *p, yaml_node_t *ckey)
{
	const struct gw_config *cfg = p->cfg;

	/* A state.postgres with errors was reported already: the replicas are not the problem. */
	if (cfg->cluster.expected_replicas <= 1 || cfg->state.postgres.line)
		return;
	gw_errors_add(p->errs, p->file, cfg->cluster.line ? cfg->cluster.line : gw_cfg_line(ckey),
		      "cluster.expected_replicas > 1 needs state.postgres: without it each replica keeps its "
		      "own job, model and webhook ownership and idempotency keys, so what one creates is "
		      "NOT_FOUND through the others");
}

unsigned gw_config_replica_cap(unsigned cap, unsigned replicas)
{
	if (cap == 0 || replicas <= 1)
		return cap;
	/* Rounded up: a cap of 1 stays 1 (0 would mean "no cap"). */
	return cap / replicas + (cap % replicas != 0);
}

double gw_config_replica_rate(double rate, unsigned replicas)
{
	if (!(rate > 0) || replicas <= 1)
		return rate;
	return rate / replicas;
}

double gw_config_replica_burst(double burst, unsigned replicas, unsigned max_cost)
{
	double share, floor = max_cost > 1 ? (double)max_cost : 1.0;

	if (replicas <= 1 || !(burst > 0))
		return burst;
	share = burst / replicas;
	if (floor > burst)
		floor = burst;
	return share < floor ? floor : share;
}
