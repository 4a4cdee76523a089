/* Unit tests for gateway/rest_sess.c: the REST facade's sessions on a real state store (memory,
 * SQLite), its cache, and cookie parsing. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/rest_sess.h"
#include "gateway/state/store.h"

static const uint8_t key_a[32] = { 1, 2, 3 };
static const uint8_t key_b[32] = { 4, 5, 6 };

/* What the callbacks saw. */
struct seen {
	int calls;
	int rc;
	char tenant[GW_STORE_TENANT_MAX + 1];
	uint8_t key[32];
	char token[GW_REST_SESS_TOKEN_LEN + 1];
};

static void on_open(void *arg, int rc, const char *token, const char *err)
{
	struct seen *x = arg;

	(void)err;
	x->calls++;
	x->rc = rc;
	snprintf(x->token, sizeof x->token, "%s", token ? token : "");
}

static void on_find(void *arg, const struct gw_rest_sess_found *f)
{
	struct seen *x = arg;

	x->calls++;
	x->rc = f->rc;
	x->tenant[0] = '\0';
	if (f->rc == GW_REST_SESS_OK) {
		snprintf(x->tenant, sizeof x->tenant, "%s", f->tenant);
		memcpy(x->key, f->key_sha256, 32);
	}
}

/* Opens a session and returns its token (the stores here answer inline). */
static void open_ok(struct gw_rest_sess *s, const char *tenant, const uint8_t *key, int64_t now,
		    int64_t ttl, char tok[GW_REST_SESS_TOKEN_LEN + 1])
{
	struct seen x = { 0 };

	gw_rest_sess_open(s, tenant, key, now, ttl, on_open, &x);
	cr_assert_eq(x.calls, 1);
	cr_assert_eq(x.rc, GW_REST_SESS_OK);
	memcpy(tok, x.token, GW_REST_SESS_TOKEN_LEN + 1);
}

static int find_rc(struct gw_rest_sess *s, const char *tok, size_t len, int64_t now, struct seen *x)
{
	memset(x, 0, sizeof *x);
	gw_rest_sess_find(s, tok, len, now, on_find, x);
	cr_assert_eq(x->calls, 1);
	return x->rc;
}

Test(rest_sess, open_find_expire)
{
	struct gw_store *st = gw_store_open_mem(0, 0);
	struct gw_rest_sess *s = gw_rest_sess_new(st, 16, 100);
	struct gw_rest_sess_stats ss;
	struct seen x;
	char tok[GW_REST_SESS_TOKEN_LEN + 1], tok2[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert(st && s);
	open_ok(s, "team-a", key_a, 1000, 500, tok);
	cr_expect_eq(strlen(tok), GW_REST_SESS_TOKEN_LEN);
	cr_expect_eq(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
		     GW_REST_SESS_TOKEN_LEN);
	open_ok(s, "team-a", key_a, 1000, 500, tok2);
	cr_expect_neq(strcmp(tok, tok2), 0);
	/* table: when -> answer (the first from the store, the next from the cache) */
	static const struct {
		int64_t now;
		int rc;
	} cases[] = { { 1001, GW_REST_SESS_OK }, { 1050, GW_REST_SESS_OK }, { 1499, GW_REST_SESS_OK },
		      { 1500, GW_REST_SESS_UNKNOWN }, { 2000, GW_REST_SESS_UNKNOWN } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_expect_eq(find_rc(s, tok, strlen(tok), cases[i].now, &x), cases[i].rc, "at %lld",
			     (long long)cases[i].now);
		if (cases[i].rc == GW_REST_SESS_OK) {
			cr_expect_str_eq(x.tenant, "team-a");
			cr_expect_eq(memcmp(x.key, key_a, 32), 0);
		}
	}
	cr_expect_eq(find_rc(s, tok2, 10, 1100, &x), GW_REST_SESS_UNKNOWN);	/* not a token */
	tok2[0] = tok2[0] == 'A' ? 'B' : 'A';
	cr_expect_eq(find_rc(s, tok2, strlen(tok2), 1100, &x), GW_REST_SESS_UNKNOWN);
	gw_rest_sess_stats(s, &ss);
	cr_expect_eq(ss.opened, 2);
	cr_expect_geq(ss.cache_hits, 1);
	cr_expect_eq(ss.store_errors, 0);
	/* the sweep removes the expired rows from the store, at most its bound per call */
	gw_rest_sess_sweep(s, 5000);
	gw_rest_sess_stats(s, &ss);
	cr_expect_eq(ss.expired, 2);
	gw_rest_sess_free(s);
	gw_store_close(st);
}

/* Two replicas on one store: a session opened on one works on the other; revoked on one, it ends
 * there at once and on the other within the cache TTL. */
Test(rest_sess, replicas_share_the_store)
{
	struct gw_store *st = gw_store_open_mem(0, 0);
	struct gw_rest_sess *a = gw_rest_sess_new(st, 16, 100), *b = gw_rest_sess_new(st, 16, 100);
	struct gw_rest_sess_stats ss;
	struct seen x;
	char tok[GW_REST_SESS_TOKEN_LEN + 1], other[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert(st && a && b);
	open_ok(a, "team-a", key_a, 0, 60000, tok);
	open_ok(a, "team-b", key_b, 0, 60000, other);
	cr_expect_eq(find_rc(b, tok, strlen(tok), 10, &x), GW_REST_SESS_OK);
	cr_expect_str_eq(x.tenant, "team-a");
	gw_rest_sess_revoke(a, key_a);
	cr_expect_eq(find_rc(a, tok, strlen(tok), 20, &x), GW_REST_SESS_UNKNOWN);
	cr_expect_eq(find_rc(b, tok, strlen(tok), 50, &x), GW_REST_SESS_OK);	/* b's cache */
	cr_expect_eq(find_rc(b, tok, strlen(tok), 111, &x), GW_REST_SESS_UNKNOWN);	/* after its TTL */
	cr_expect_eq(find_rc(b, other, strlen(other), 111, &x), GW_REST_SESS_OK);	/* another key's */
	gw_rest_sess_stats(a, &ss);
	cr_expect_eq(ss.revoked, 1);
	gw_rest_sess_drop(b, other, strlen(other));
	cr_expect_eq(find_rc(a, other, strlen(other), 200, &x), GW_REST_SESS_UNKNOWN);
	gw_rest_sess_stats(b, &ss);
	cr_expect_eq(ss.cached, 0);
	gw_rest_sess_free(a);
	gw_rest_sess_free(b);
	gw_store_close(st);
}

Test(rest_sess, sqlite_sessions_survive_a_restart)
{
	char dir[] = "/tmp/a3d-rest-sess-XXXXXX", path[64], side[80];
	struct gw_store *st;
	struct gw_rest_sess *s;
	struct seen x;
	char tok[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/state.db", dir);
	st = gw_store_open(path, 0, NULL, 0);
	s = gw_rest_sess_new(st, 0, -1);
	cr_assert(st && s);
	open_ok(s, "team-a", key_a, 1000, 60000, tok);
	gw_rest_sess_free(s);
	gw_store_close(st);
	st = gw_store_open(path, 0, NULL, 0);
	s = gw_rest_sess_new(st, 0, -1);
	cr_assert(st && s);
	cr_expect_eq(find_rc(s, tok, strlen(tok), 2000, &x), GW_REST_SESS_OK);
	cr_expect_str_eq(x.tenant, "team-a");
	cr_expect_eq(memcmp(x.key, key_a, 32), 0);
	cr_expect_eq(find_rc(s, tok, strlen(tok), 61000, &x), GW_REST_SESS_UNKNOWN);
	gw_rest_sess_free(s);
	gw_store_close(st);
	unlink(path);
	for (const char *suf = "-wal"; suf; suf = suf[1] == 'w' ? "-shm" : NULL) {
		snprintf(side, sizeof side, "%s%s", path, suf);
		unlink(side);
	}
	rmdir(dir);
}

/* The store refuses (read-only): the open says so, a lookup of an unknown token is no error. */
Test(rest_sess, store_refusals)
{
	struct gw_store *ro = gw_store_open_mem(0, 1);
	struct gw_rest_sess *s = gw_rest_sess_new(ro, 16, 100);
	struct gw_rest_sess_stats ss;
	struct seen x = { 0 };
	char tok[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert(ro && s);
	gw_rest_sess_open(s, "team-a", key_a, 0, 1000, on_open, &x);
	cr_expect_eq(x.calls, 1);
	cr_expect_eq(x.rc, GW_REST_SESS_ERROR);
	memset(tok, 'A', GW_REST_SESS_TOKEN_LEN);
	tok[GW_REST_SESS_TOKEN_LEN] = '\0';
	cr_expect_eq(find_rc(s, tok, strlen(tok), 0, &x), GW_REST_SESS_UNKNOWN);
	gw_rest_sess_stats(s, &ss);
	cr_expect_eq(ss.store_errors, 1);
	cr_expect_eq(ss.opened, 0);
	gw_rest_sess_free(s);
	gw_store_close(ro);
}

/* A tenant at GW_STORE_SESS_TENANT_MAX unexpired sessions gets no more; expired ones do not count. */
Test(rest_sess, tenant_limit)
{
	struct gw_store *st = gw_store_open_mem(0, 0);
	struct gw_rest_sess *s = gw_rest_sess_new(st, 16, 100);
	struct gw_rest_sess_stats ss;
	struct seen x = { 0 };
	char tok[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert(st && s);
	open_ok(s, "t", key_a, 0, 10, tok);	/* expires at 10 */
	for (int i = 1; i < GW_STORE_SESS_TENANT_MAX; i++)
		open_ok(s, "t", key_a, 0, 100000, tok);
	gw_rest_sess_open(s, "t", key_a, 5, 100000, on_open, &x);
	cr_expect_eq(x.rc, GW_REST_SESS_FULL);
	open_ok(s, "u", key_b, 5, 100000, tok);	/* another tenant's room */
	open_ok(s, "t", key_a, 20, 100000, tok);	/* the first one expired */
	gw_rest_sess_stats(s, &ss);
	cr_expect_eq(ss.refused_full, 1);
	gw_rest_sess_free(s);
	gw_store_close(st);
}

static const struct {
	const char *header;
	const char *value;	/* NULL: none */
} cookie_cases[] = {
	{ "dmsess=abc", "abc" },
	{ "dmsess=abc; Path", "abc" },			/* the JS SDK's */
	{ "a=1; dmsess=abc; b=2", "abc" },
	{ "xdmsess=abc", NULL },
	{ "a=dmsess=abc", NULL },
	{ "dmsess=", NULL },
	{ "", NULL },
	{ "a=1;dmsess=q-_9", "q-_9" },
};

Test(rest_sess, cookie)
{
	for (size_t i = 0; i < sizeof cookie_cases / sizeof cookie_cases[0]; i++) {
		size_t len = 0;
		const char *v = gw_rest_sess_cookie(cookie_cases[i].header, &len);

		if (!cookie_cases[i].value) {
			cr_expect_null(v, "%s", cookie_cases[i].header);
			continue;
		}
		cr_assert_not_null(v, "%s", cookie_cases[i].header);
		cr_expect_eq(len, strlen(cookie_cases[i].value), "%s", cookie_cases[i].header);
		cr_expect_eq(strncmp(v, cookie_cases[i].value, len), 0, "%s", cookie_cases[i].header);
	}
}
