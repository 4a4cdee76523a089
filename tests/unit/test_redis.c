/*
 * Unit tests for gateway/cluster/redis.c: the URL table (pure), then against a real redis-server
 * (tests/lib/with-redis starts a throw-away one with a password and exports A3D_REDIS_*):
 * binary round trips, server errors, AUTH right and wrong, SELECT isolation, EVALSHA with its
 * NOSCRIPT fallback, the pending bound, a command past its deadline, the server killed and
 * started again, and pub/sub across a reconnect. Every wait is bounded.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/base/metrics.h"
#include "gateway/cluster/redis.h"

#define T_WAIT_MS 10000		/* bound on any wait in these tests */

/* ---- the URL parser: a table ---- */

Test(redis, url_table)
{
	static const struct {
		const char *url;
		int ok;
		const char *ip;
		unsigned port, db;
		int has_password;
		const char *err;	/* fragment of the error when refused */
	} rows[] = {
		{ "redis://127.0.0.1", 1, "127.0.0.1", 6379, 0, 0, NULL },
		{ "redis://127.0.0.1:7000", 1, "127.0.0.1", 7000, 0, 0, NULL },
		{ "redis://10.1.2.3:6380/5", 1, "10.1.2.3", 6380, 5, 0, NULL },
		{ "redis://10.1.2.3/", 1, "10.1.2.3", 6379, 0, 0, NULL },
		{ "REDIS://10.1.2.3/1023", 1, "10.1.2.3", 6379, 1023, 0, NULL },
		{ "redis://:s3cret@10.0.0.1:6379/2", 1, "10.0.0.1", 6379, 2, 1, NULL },
		{ "redis://user:s3cret@10.0.0.1", 1, "10.0.0.1", 6379, 0, 1, NULL },
		{ "redis://:s3/cr?et#@10.0.0.1/1", 1, "10.0.0.1", 6379, 1, 1, NULL },
		{ "redis://@10.0.0.1", 1, "10.0.0.1", 6379, 0, 0, NULL },
		{ "", 0, NULL, 0, 0, 0, "empty" },
		{ "http://10.0.0.1", 0, NULL, 0, 0, 0, "must start with redis://" },
		{ "rediss://10.0.0.1", 0, NULL, 0, 0, 0, "TLS" },
		{ "redis://redis.default.svc:6379", 0, NULL, 0, 0, 0, "not an IPv4 address" },
		{ "redis://localhost", 0, NULL, 0, 0, 0, "names are not resolved" },
		{ "redis://:s3cret@cache.local/0", 0, NULL, 0, 0, 0, "not an IPv4 address" },
		{ "redis://[::1]:6379", 0, NULL, 0, 0, 0, "IPv6" },
		{ "redis://127.1", 0, NULL, 0, 0, 0, "not an IPv4 address" },
		{ "redis://256.0.0.1", 0, NULL, 0, 0, 0, "not an IPv4 address" },
		{ "redis://", 0, NULL, 0, 0, 0, "no host" },
		{ "redis://:6379", 0, NULL, 0, 0, 0, "no host" },
		{ "redis://10.0.0.1:", 0, NULL, 0, 0, 0, "port" },
		{ "redis://10.0.0.1:0", 0, NULL, 0, 0, 0, "port" },
		{ "redis://10.0.0.1:65536", 0, NULL, 0, 0, 0, "port" },
		{ "redis://10.0.0.1:99999999999999999999", 0, NULL, 0, 0, 0, "port" },
		{ "redis://10.0.0.1:63x9", 0, NULL, 0, 0, 0, "port" },
		{ "redis://10.0.0.1/1024", 0, NULL, 0, 0, 0, "database" },
		{ "redis://10.0.0.1/x", 0, NULL, 0, 0, 0, "database" },
		{ "redis://10.0.0.1/1/extra", 0, NULL, 0, 0, 0, "database" },
		{ "redis://10.0.0.1/-1", 0, NULL, 0, 0, 0, "database" },
		{ "redis://10.0.0.1?timeout=1", 0, NULL, 0, 0, 0, "queries" },
		{ "redis://10.0.0.1#x", 0, NULL, 0, 0, 0, "queries" },
		{ "redis:// 10.0.0.1", 0, NULL, 0, 0, 0, "not an IPv4 address" },
	};
	char longurl[GW_REDIS_URL_MAX + 32];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_redis_url u;
		char err[256] = "";
		int rc = gw_redis_parse_url(rows[i].url, &u, err, sizeof err);

		if (rows[i].ok) {
			cr_expect_eq(rc, 0, "%s: refused: %s", rows[i].url, err);
			cr_expect_str_eq(u.ip, rows[i].ip, "%s", rows[i].url);
			cr_expect_eq(u.port, rows[i].port, "%s: port %u", rows[i].url, u.port);
			cr_expect_eq(u.db, rows[i].db, "%s: db %u", rows[i].url, u.db);
			cr_expect_eq(u.has_password, rows[i].has_password, "%s", rows[i].url);
		} else {
			cr_expect_eq(rc, -1, "%s: accepted", rows[i].url);
			cr_expect(strstr(err, rows[i].err), "%s: err \"%s\", want \"%s\"", rows[i].url,
				  err, rows[i].err);
		}
		cr_expect_null(strstr(err, "s3cret"), "%s: the password in \"%s\"", rows[i].url, err);
		cr_expect_null(strstr(err, "s3/cr"), "%s: the password in \"%s\"", rows[i].url, err);
	}
	snprintf(longurl, sizeof longurl, "redis://%0*d", GW_REDIS_URL_MAX, 1);
	{
		struct gw_redis_url u;
		char err[256];

		cr_expect_eq(gw_redis_parse_url(longurl, &u, err, sizeof err), -1);
		cr_expect(strstr(err, "longer than"), "%s", err);
		cr_expect_eq(gw_redis_parse_url(NULL, &u, err, sizeof err), -1);
	}
}

Test(redis, script_sha1)
{
	/* SHA1("return 1"), as `redis-cli SCRIPT LOAD "return 1"` prints it. */
	struct gw_redis_script s = { .lua = "return 1" };

	gw_redis_script_init(&s);
	cr_expect_str_eq(s.sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

/* ---- against the server ---- */

struct answer {
	int done;			/* times done() ran */
	int type;			/* reply type, 0 without a reply */
	long long integer;
	size_t len;
	char str[256];
	size_t elements;
	char err[2 * GW_REDIS_ERR_MAX];
};

static char g_password[128];
static int g_done;

static void check_no_password(const char *s)
{
	if (g_password[0])
		cr_expect_null(strstr(s, g_password), "the password in \"%s\"", s);
}

static void on_done(void *arg, const redisReply *reply, const char *err)
{
	struct answer *a = arg;

	a->done++;
	g_done++;
	a->type = reply ? reply->type : 0;
	if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
		      reply->type == REDIS_REPLY_ERROR)) {
		a->len = reply->len < sizeof a->str ? reply->len : sizeof a->str;
		memcpy(a->str, reply->str, a->len);
	}
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		a->integer = reply->integer;
	if (reply && reply->type == REDIS_REPLY_ARRAY) {
		a->elements = reply->elements;
		if (reply->elements > 0 && reply->element[0]->type == REDIS_REPLY_STRING) {
			a->len = reply->element[0]->len < sizeof a->str ? reply->element[0]->len
									   : sizeof a->str;
			memcpy(a->str, reply->element[0]->str, a->len);
		}
		if (reply->elements > 2 && reply->element[2]->type == REDIS_REPLY_INTEGER)
			a->integer = reply->element[2]->integer;
	}
	snprintf(a->err, sizeof a->err, "%s", err ? err : "");
	if (err)
		check_no_password(err);
}

static void read_password(void)
{
	const char *pwf = getenv("A3D_REDIS_PASSWORD_FILE");
	FILE *f;

	cr_assert_not_null(getenv("A3D_REDIS_PORT"), "run under tests/lib/with-redis");
	f = fopen(pwf, "r");
	cr_assert_not_null(f, "%s", pwf);
	if (!fgets(g_password, sizeof g_password, f))
		g_password[0] = '\0';
	fclose(f);
	g_password[strcspn(g_password, "\r\n")] = '\0';
}

static void opts_of_env(struct gw_redis_opts *o, unsigned db)
{
	read_password();
	memset(o, 0, sizeof *o);
	o->ip = getenv("A3D_REDIS_HOST");
	o->port = (unsigned)strtoul(getenv("A3D_REDIS_PORT"), NULL, 10);
	o->db = db;
	o->password = g_password;
	o->key_prefix = "t:";
	o->connect_timeout_ms = 3000;
	o->command_timeout_ms = 3000;
	o->max_pending = 64;
	o->backoff_max_ms = 400;	/* reconnect quickly after the outage tests */
}

static struct gw_redis *client(struct event_base *base, const struct gw_redis_opts *o)
{
	char err[256];
	struct gw_redis *r = gw_redis_new(base, o, err, sizeof err);

	cr_assert_not_null(r, "%s", err);
	return r;
}

typedef int (*cond_fn)(const void *arg);

/* Runs the loop until cond(arg) holds or ms pass; whether it holds. */
static int run_until(struct event_base *base, cond_fn cond, const void *arg, long ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;
	struct timeval tv = { 0, 10000 };

	while (!cond(arg) && gw_clock_now_us() < end)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	return cond(arg);
}

static int done_reached(const void *arg)
{
	return g_done >= *(const int *)arg;
}

static int is_connected(const void *arg)
{
	return gw_redis_connected(arg);
}

static int is_down(const void *arg)
{
	return !gw_redis_connected(arg);
}

static void wait_done(struct event_base *base, int want)
{
	cr_assert(run_until(base, done_reached, &want, T_WAIT_MS), "%d of %d answers", g_done, want);
}

/* Sends a command of string arguments; asserts it was accepted. */
static void cmd(struct gw_redis *r, struct answer *a, int argc, const char **argv)
{
	int rc = gw_redis_command(r, on_done, a, argc, argv, NULL);

	cr_assert_eq(rc, GW_REDIS_OK, "%s: %s", argv[0], gw_redis_strerror(rc));
}

static void ctl(const char *what)
{
	char line[512];

	cr_assert_not_null(getenv("A3D_REDIS_CTL"));
	snprintf(line, sizeof line, "\"%s\" %s", getenv("A3D_REDIS_CTL"), what);
	cr_assert_eq(system(line), 0, "%s", line);
}

Test(redis, binary_round_trip_and_server_errors)
{
	static const char value[] = "a\0b\r\n\xff$3\r\nend";	/* NUL, CRLF, protocol lookalikes */
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[5];
	char key[64];
	struct gw_redis *r;
	const char *set[] = { "SET", key, value };
	size_t setlen[] = { 3, 0, sizeof value - 1 };
	const char *get[] = { "GET", key };
	const char *del[] = { "DEL", key };
	const char *incr[] = { "INCR", key };

	opts_of_env(&o, 0);
	r = client(base, &o);
	snprintf(key, sizeof key, "127.0.0.1:%u/0", o.port);
	cr_expect_str_eq(gw_redis_where(r), key);
	cr_assert_gt(gw_redis_key(r, "bin", key, sizeof key), 0);
	cr_expect_str_eq(key, "t:bin");
	setlen[1] = strlen(key);
	memset(a, 0, sizeof a);
	g_done = 0;
	/* Before the first connection: they wait for it. */
	cmd(r, &a[0], 2, del);
	cr_assert_eq(gw_redis_command(r, on_done, &a[1], 3, set, setlen), GW_REDIS_OK);
	cmd(r, &a[2], 2, get);
	cr_expect_eq(g_done, 0, "done() never runs inside gw_redis_command");
	wait_done(base, 3);
	cr_expect_str_eq(a[0].err, "");
	cr_expect_str_eq(a[1].err, "");
	cr_expect_eq(a[1].type, REDIS_REPLY_STATUS);
	cr_expect_eq(a[2].type, REDIS_REPLY_STRING);
	cr_expect_eq(a[2].len, sizeof value - 1);
	cr_expect_eq(memcmp(a[2].str, value, sizeof value - 1), 0, "the bytes came back changed");
	/* A server error: reply and err both, the connection stays. */
	cmd(r, &a[3], 2, incr);
	cmd(r, &a[4], 2, get);
	wait_done(base, 5);
	cr_expect_eq(a[3].type, REDIS_REPLY_ERROR);
	cr_expect(strstr(a[3].err, "not an integer"), "%s", a[3].err);
	cr_expect(strstr(a[3].err, "127.0.0.1:"), "the server is named: %s", a[3].err);
	cr_expect_str_eq(a[4].err, "");
	cr_expect_eq(gw_redis_stats(r)->failed, 1);
	cr_expect_eq(gw_redis_stats(r)->commands, 5);
	cr_expect_eq(gw_redis_stats(r)->connects, 1);
	cr_expect_eq(gw_redis_stats(r)->drops, 0);
	cr_expect_eq(gw_redis_stats(r)->pending, 0);
	cr_expect_eq(gw_redis_stats(r)->connected, 1);
	{
		/* The counters as /metrics shows them. */
		struct gw_metrics_reg reg = { .n = 0 };
		struct evbuffer *b = evbuffer_new();
		char text[4096];
		size_t n;

		cr_assert_eq(gw_metrics_register(&reg, gw_redis_metrics, r), 0);
		cr_assert_eq(gw_metrics_render_all(&reg, b), 0);
		n = evbuffer_remove(b, text, sizeof text - 1);
		text[n] = '\0';
		cr_expect(strstr(text, GW_METRICS_PREFIX "redis_total{what=\"commands\"} 5\n"), "%s", text);
		cr_expect(strstr(text, GW_METRICS_PREFIX "redis_total{what=\"failed\"} 1\n"), "%s", text);
		cr_expect(strstr(text, GW_METRICS_PREFIX "redis_connections{what=\"commands\"} 1\n"),
			  "%s", text);
		gw_metrics_unregister(&reg, gw_redis_metrics, r);
		evbuffer_free(b);
	}
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, auth_right_wrong_and_missing)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[3];
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	static const char wrong[] = "not-the-password-42";

	opts_of_env(&o, 0);
	cr_assert(g_password[0], "with-redis sets a password unless A3D_REDIS_NOPASS=1");
	memset(a, 0, sizeof a);
	g_done = 0;
	/* Right: implied by every other test; here with a PING. */
	r = client(base, &o);
	cmd(r, &a[0], 1, ping);
	wait_done(base, 1);
	cr_expect_str_eq(a[0].err, "");
	cr_expect_eq(a[0].len, 4);
	gw_redis_free(r);

	/* Wrong: the command that waited for the first connection fails with the server's reason,
	 * never the password; the connection is not kept; later commands are refused at once. */
	o.password = wrong;
	r = client(base, &o);
	cmd(r, &a[1], 1, ping);
	wait_done(base, 2);
	cr_expect_eq(a[1].type, 0);
	cr_expect(strstr(a[1].err, "AUTH failed"), "%s", a[1].err);
	cr_expect(strstr(a[1].err, "WRONGPASS"), "%s", a[1].err);
	cr_expect_null(strstr(a[1].err, wrong), "%s", a[1].err);
	cr_expect(strstr(gw_redis_last_error(r), "AUTH failed"), "%s", gw_redis_last_error(r));
	cr_expect_null(strstr(gw_redis_last_error(r), wrong));
	cr_expect_eq(gw_redis_connected(r), 0);
	cr_expect_geq(gw_redis_stats(r)->connect_failures, 1);
	cr_expect_eq(gw_redis_command(r, on_done, &a[2], 1, ping, NULL), GW_REDIS_EDOWN);
	cr_expect_eq(gw_redis_stats(r)->refused_down, 1);
	gw_redis_free(r);

	/* Missing: SELECT is refused (NOAUTH). */
	o.password = NULL;
	r = client(base, &o);
	cmd(r, &a[2], 1, ping);
	wait_done(base, 3);
	cr_expect(strstr(a[2].err, "SELECT failed: NOAUTH"), "%s", a[2].err);
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, select_isolates_databases)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[6];
	struct gw_redis *r1, *r2, *r0;
	const char *set1[] = { "SET", "t:iso", "one" };
	const char *set2[] = { "SET", "t:iso", "two" };
	const char *get[] = { "GET", "t:iso" };
	const char *del[] = { "DEL", "t:iso" };

	opts_of_env(&o, 0);
	r0 = client(base, &o);
	o.db = 1;
	r1 = client(base, &o);
	o.db = 2;
	r2 = client(base, &o);
	cr_expect(strstr(gw_redis_where(r2), "/2"), "%s", gw_redis_where(r2));
	memset(a, 0, sizeof a);
	g_done = 0;
	cmd(r0, &a[0], 2, del);
	cmd(r1, &a[1], 3, set1);
	cmd(r2, &a[2], 3, set2);
	wait_done(base, 3);
	cmd(r1, &a[3], 2, get);
	cmd(r2, &a[4], 2, get);
	cmd(r0, &a[5], 2, get);
	wait_done(base, 6);
	cr_expect_eq(a[3].len, 3);
	cr_expect_eq(memcmp(a[3].str, "one", 3), 0);
	cr_expect_eq(a[4].len, 3);
	cr_expect_eq(memcmp(a[4].str, "two", 3), 0);
	cr_expect_eq(a[5].type, REDIS_REPLY_NIL, "db 0 sees nothing: type %d", a[5].type);
	gw_redis_free(r0);
	gw_redis_free(r1);
	gw_redis_free(r2);
	event_base_free(base);
}

Test(redis, evalsha_and_noscript_fallback)
{
	static struct gw_redis_script script = {
		.lua = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}",
	};
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[8];
	struct gw_redis *r;
	const char *del[] = { "DEL", "t:ev" };
	const char *flush[] = { "SCRIPT", "FLUSH" };
	const char *load[] = { "SCRIPT", "LOAD", script.lua };
	const char *kv[] = { "t:ev", "5" };

	gw_redis_script_init(&script);
	opts_of_env(&o, 0);
	r = client(base, &o);
	memset(a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a[0], 2, del);
	cmd(r, &a[1], 2, flush);
	wait_done(base, 2);
	/* Not cached: NOSCRIPT, then EVAL; cached from then on. */
	cr_assert_eq(gw_redis_eval(r, &script, 1, 1, kv, NULL, on_done, &a[2]), GW_REDIS_OK);
	wait_done(base, 3);
	cr_expect_str_eq(a[2].err, "");
	cr_expect_eq(a[2].elements, 3);
	cr_expect_eq(a[2].integer, 5);
	cr_expect_eq(gw_redis_stats(r)->noscript, 1);
	cr_assert_eq(gw_redis_eval(r, &script, 1, 1, kv, NULL, on_done, &a[3]), GW_REDIS_OK);
	wait_done(base, 4);
	cr_expect_eq(a[3].integer, 10);
	cr_expect_eq(gw_redis_stats(r)->noscript, 1, "EVALSHA found it");
	/* The server forgets it (restart, SCRIPT FLUSH): the fallback again. */
	cmd(r, &a[4], 2, flush);
	wait_done(base, 5);
	cr_assert_eq(gw_redis_eval(r, &script, 1, 1, kv, NULL, on_done, &a[5]), GW_REDIS_OK);
	wait_done(base, 6);
	cr_expect_str_eq(a[5].err, "");
	cr_expect_eq(a[5].integer, 15);
	cr_expect_eq(a[5].len, 4);
	cr_expect_eq(memcmp(a[5].str, "t:ev", 4), 0);
	cr_expect_eq(gw_redis_stats(r)->noscript, 2);
	/* Our SHA1 is the server's. */
	cmd(r, &a[6], 3, load);
	wait_done(base, 7);
	cr_expect_eq(a[6].len, 40);
	cr_expect_eq(memcmp(a[6].str, script.sha, 40), 0);
	/* A script error is an error reply, not a fallback loop. */
	{
		static struct gw_redis_script bad = { .lua = "return redis.call('NOSUCHCMD')" };

		gw_redis_script_init(&bad);
		cr_assert_eq(gw_redis_eval(r, &bad, 0, 0, NULL, NULL, on_done, &a[7]), GW_REDIS_OK);
		wait_done(base, 8);
		cr_expect_eq(a[7].type, REDIS_REPLY_ERROR);
		cr_expect_neq(a[7].err[0], '\0');
		cr_expect_eq(gw_redis_stats(r)->noscript, 3);
	}
	cr_expect_eq(gw_redis_eval(r, &script, -1, 0, kv, NULL, on_done, &a[7]), GW_REDIS_EINVAL);
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, pending_bound_and_invalid_arguments)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[8];
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	char err[256];

	opts_of_env(&o, 0);
	o.max_pending = 3;
	r = client(base, &o);
	memset(a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a[0], 1, ping);
	cmd(r, &a[1], 1, ping);
	cmd(r, &a[2], 1, ping);
	cr_expect_eq(gw_redis_stats(r)->pending, 3);
	cr_expect_eq(gw_redis_command(r, on_done, &a[3], 1, ping, NULL), GW_REDIS_EFULL);
	cr_expect_eq(gw_redis_command(r, on_done, &a[3], 1, ping, NULL), GW_REDIS_EFULL);
	cr_expect_eq(gw_redis_stats(r)->refused_full, 2);
	wait_done(base, 3);
	cr_expect_eq(a[3].done, 0, "a refused command never gets done()");
	cr_expect_eq(gw_redis_stats(r)->pending, 0);
	/* Connected: the bound counts sent commands too. */
	cmd(r, &a[4], 1, ping);
	cmd(r, &a[5], 1, ping);
	cmd(r, &a[6], 1, ping);
	cr_expect_eq(gw_redis_command(r, on_done, &a[7], 1, ping, NULL), GW_REDIS_EFULL);
	cr_expect_eq(gw_redis_stats(r)->refused_full, 3);
	wait_done(base, 6);
	cr_expect_eq(gw_redis_stats(r)->commands, 6);
	/* Arguments. */
	cr_expect_eq(gw_redis_command(r, on_done, &a[7], 0, ping, NULL), GW_REDIS_EINVAL);
	cr_expect_eq(gw_redis_command(r, NULL, &a[7], 1, ping, NULL), GW_REDIS_EINVAL);
	cr_expect_eq(gw_redis_command(r, on_done, &a[7], GW_REDIS_MAX_ARGS + 1, ping, NULL),
		     GW_REDIS_EINVAL);
	cr_expect_eq(gw_redis_publish(r, "", NULL, 3, on_done, &a[7]), GW_REDIS_EINVAL);
	cr_expect_eq(a[7].done, 0);
	gw_redis_free(r);

	/* Options: a name, a bad port, no timeouts. */
	opts_of_env(&o, 0);
	o.ip = "localhost";
	cr_expect_null(gw_redis_new(base, &o, err, sizeof err));
	cr_expect(strstr(err, "IPv4"), "%s", err);
	opts_of_env(&o, 0);
	o.port = 70000;
	cr_expect_null(gw_redis_new(base, &o, err, sizeof err));
	opts_of_env(&o, 0);
	o.command_timeout_ms = 0;
	cr_expect_null(gw_redis_new(base, &o, err, sizeof err));
	opts_of_env(&o, GW_REDIS_DB_MAX + 1);
	cr_expect_null(gw_redis_new(base, &o, err, sizeof err));
	event_base_free(base);
}

Test(redis, free_drops_pending_without_done)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[3];
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	const char *blpop[] = { "BLPOP", "t:never", "2" };

	opts_of_env(&o, 0);
	memset(a, 0, sizeof a);
	g_done = 0;
	r = client(base, &o);
	cmd(r, &a[0], 1, ping);	/* waiting for the connection */
	gw_redis_free(r);
	r = client(base, &o);
	cmd(r, &a[1], 1, ping);
	wait_done(base, 1);
	cmd(r, &a[2], 3, blpop);	/* sent, the server holds it */
	{
		int64_t end = gw_clock_now_us() + 200000;
		struct timeval tv = { 0, 10000 };

		while (gw_clock_now_us() < end)
			event_base_loopexit(base, &tv), event_base_dispatch(base);
	}
	gw_redis_free(r);
	{
		int64_t end = gw_clock_now_us() + 200000;
		struct timeval tv = { 0, 10000 };

		while (gw_clock_now_us() < end)
			event_base_loopexit(base, &tv), event_base_dispatch(base);
	}
	cr_expect_eq(a[0].done, 0);
	cr_expect_eq(a[1].done, 1);
	cr_expect_eq(a[2].done, 0);
	event_base_free(base);
}

Test(redis, command_timeout_drops_and_reconnects)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[6];
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	const char *sleep1[] = { "DEBUG", "SLEEP", "1" };
	const char *set[] = { "SET", "t:after", "ok" };
	const char *get[] = { "GET", "t:after" };

	opts_of_env(&o, 0);
	o.command_timeout_ms = 200;
	r = client(base, &o);
	memset(a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a[0], 1, ping);
	wait_done(base, 1);
	cmd(r, &a[1], 3, sleep1);
	cmd(r, &a[2], 1, ping);	/* behind it on the same connection */
	wait_done(base, 3);
	cr_expect(strstr(a[1].err, "timed out after 200 ms"), "%s", a[1].err);
	cr_expect(strstr(a[2].err, "connection lost"), "%s", a[2].err);
	cr_expect_eq(gw_redis_stats(r)->timeouts, 1);
	cr_expect_eq(gw_redis_stats(r)->drops, 1);
	cr_expect_eq(gw_redis_connected(r), 0);
	cr_expect_eq(gw_redis_command(r, on_done, &a[3], 1, ping, NULL), GW_REDIS_EDOWN,
		     "fail fast while down");
	/* The server wakes up after its second; the client is back by itself. */
	cr_assert(run_until(base, is_connected, r, T_WAIT_MS), "not reconnected: %s",
		  gw_redis_last_error(r));
	o.command_timeout_ms = 3000;
	cmd(r, &a[4], 3, set);
	cmd(r, &a[5], 2, get);
	wait_done(base, 5);
	cr_expect_str_eq(a[5].err, "");
	cr_expect_eq(a[5].len, 2);
	cr_expect_eq(gw_redis_stats(r)->connects, 2);
	cr_expect_eq(gw_redis_stats(r)->pending, 0);
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, server_killed_then_back)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[5];
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	const char *blpop[] = { "BLPOP", "t:never", "2" };
	int64_t t0;

	opts_of_env(&o, 0);
	r = client(base, &o);
	memset(a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a[0], 1, ping);
	wait_done(base, 1);
	cmd(r, &a[1], 3, blpop);	/* in flight when the server dies */
	{
		int64_t end = gw_clock_now_us() + 100000;
		struct timeval tv = { 0, 10000 };

		while (gw_clock_now_us() < end)
			event_base_loopexit(base, &tv), event_base_dispatch(base);
	}
	ctl("kill");
	t0 = gw_clock_now_us();
	wait_done(base, 2);
	cr_expect(strstr(a[1].err, "connection lost"), "%s", a[1].err);
	cr_expect_lt(gw_clock_now_us() - t0, 1000000, "the in-flight command failed at once");
	cr_assert(run_until(base, is_down, r, T_WAIT_MS));
	cr_expect_eq(gw_redis_command(r, on_done, &a[2], 1, ping, NULL), GW_REDIS_EDOWN);
	cr_expect_eq(gw_redis_stats(r)->refused_down, 1);
	cr_expect_eq(gw_redis_stats(r)->drops, 1);
	cr_expect_neq(gw_redis_last_error(r)[0], '\0');
	/* Some refused reconnects, then the server is back on the same port. */
	{
		int64_t end = gw_clock_now_us() + 500000;
		struct timeval tv = { 0, 10000 };

		while (gw_clock_now_us() < end)
			event_base_loopexit(base, &tv), event_base_dispatch(base);
	}
	cr_expect_geq(gw_redis_stats(r)->connect_failures, 1, "refused while the server is gone");
	ctl("start");
	cr_assert(run_until(base, is_connected, r, T_WAIT_MS), "not reconnected: %s",
		  gw_redis_last_error(r));
	cr_expect_str_eq(gw_redis_last_error(r), "");
	cmd(r, &a[3], 1, ping);
	wait_done(base, 3);
	cr_expect_str_eq(a[3].err, "");
	cr_expect_eq(gw_redis_stats(r)->connects, 2);
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, unreachable_fails_the_waiting_commands)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a;
	struct gw_redis *r;
	const char *ping[] = { "PING" };

	opts_of_env(&o, 0);
	o.port = 1;	/* nothing listens there */
	r = client(base, &o);
	memset(&a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a, 1, ping);
	wait_done(base, 1);
	cr_expect(strstr(a.err, "unreachable"), "%s", a.err);
	cr_expect(strstr(a.err, "refused"), "%s", a.err);
	cr_expect_eq(gw_redis_stats(r)->connect_failures, 1);
	gw_redis_free(r);
	event_base_free(base);
}

Test(redis, connect_deadline_when_the_server_never_answers)
{
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a;
	struct gw_redis *r;
	const char *ping[] = { "PING" };
	struct sockaddr_in sa;
	socklen_t salen = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A listener that never accepts: the kernel completes the handshake, nobody answers AUTH. */
	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	opts_of_env(&o, 0);
	o.port = ntohs(sa.sin_port);
	o.connect_timeout_ms = 300;
	r = client(base, &o);
	memset(&a, 0, sizeof a);
	g_done = 0;
	cmd(r, &a, 1, ping);
	wait_done(base, 1);
	cr_expect(strstr(a.err, "unreachable: connecting timed out after 300 ms"), "%s", a.err);
	cr_expect_eq(gw_redis_stats(r)->connect_failures, 1);
	cr_expect_eq(gw_redis_stats(r)->timeouts, 0, "the connection's deadline, not the command's");
	cr_expect_eq(gw_redis_connected(r), 0);
	gw_redis_free(r);
	close(fd);
	event_base_free(base);
}

/* ---- pub/sub ---- */

struct inbox {
	int subscribed;			/* times msg == NULL came */
	int n;
	char last[64];
	size_t last_len;
	char channel[64];
};

static void on_message(void *arg, const char *channel, const char *msg, size_t len)
{
	struct inbox *in = arg;

	snprintf(in->channel, sizeof in->channel, "%s", channel);
	if (!msg) {
		in->subscribed++;
		return;
	}
	in->n++;
	in->last_len = len < sizeof in->last ? len : sizeof in->last;
	memcpy(in->last, msg, in->last_len);
}

static int subscribed_twice(const void *arg)
{
	return ((const struct inbox *)arg)->subscribed >= 2;
}

static int subscribed_once(const void *arg)
{
	return ((const struct inbox *)arg)->subscribed >= 1;
}

static int got_two(const void *arg)
{
	return ((const struct inbox *)arg)->n >= 2;
}

static int got_one(const void *arg)
{
	return ((const struct inbox *)arg)->n >= 1;
}

Test(redis, pubsub_across_a_reconnect)
{
	static const char payload[] = "job\0done";
	struct event_base *base = event_base_new();
	struct gw_redis_opts o;
	struct answer a[3];
	struct inbox in;
	struct gw_redis *r;

	opts_of_env(&o, 0);
	r = client(base, &o);
	memset(a, 0, sizeof a);
	memset(&in, 0, sizeof in);
	g_done = 0;
	cr_assert_eq(gw_redis_subscribe(r, "events", on_message, &in), GW_REDIS_OK);
	cr_expect_eq(gw_redis_subscribe(r, "events", on_message, &in), GW_REDIS_EEXIST);
	cr_assert(run_until(base, subscribed_once, &in, T_WAIT_MS), "not subscribed");
	cr_expect_str_eq(in.channel, "events", "without the prefix");
	cr_expect_eq(gw_redis_stats(r)->sub_connected, 1);
	cr_assert_eq(gw_redis_publish(r, "events", payload, sizeof payload - 1, on_done, &a[0]),
		     GW_REDIS_OK);
	wait_done(base, 1);
	cr_expect_eq(a[0].integer, 1, "one receiver: %lld (%s)", a[0].integer, a[0].err);
	cr_assert(run_until(base, got_one, &in, T_WAIT_MS));
	cr_expect_eq(in.last_len, sizeof payload - 1);
	cr_expect_eq(memcmp(in.last, payload, sizeof payload - 1), 0);

	ctl("kill");
	cr_assert(run_until(base, is_down, r, T_WAIT_MS));
	ctl("start");
	cr_assert(run_until(base, subscribed_twice, &in, T_WAIT_MS), "not subscribed again");
	cr_assert(run_until(base, is_connected, r, T_WAIT_MS));
	cr_assert_eq(gw_redis_publish(r, "events", "again", 5, on_done, &a[1]), GW_REDIS_OK);
	wait_done(base, 2);
	cr_expect_eq(a[1].integer, 1, "%s", a[1].err);
	cr_assert(run_until(base, got_two, &in, T_WAIT_MS));
	cr_expect_eq(in.last_len, 5);
	cr_expect_eq(memcmp(in.last, "again", 5), 0);
	cr_expect_eq(gw_redis_stats(r)->messages, 2);
	cr_expect_eq(gw_redis_stats(r)->sub_drops, 1);
	cr_expect_eq(gw_redis_stats(r)->sub_connects, 2);
	/* A second channel on the ready connection; the first one is not disturbed. */
	{
		struct inbox other;

		memset(&other, 0, sizeof other);
		cr_assert_eq(gw_redis_subscribe(r, "other", on_message, &other), GW_REDIS_OK);
		cr_assert(run_until(base, subscribed_once, &other, T_WAIT_MS));
		cr_assert_eq(gw_redis_publish(r, "other", "x", 1, on_done, &a[2]), GW_REDIS_OK);
		cr_assert(run_until(base, got_one, &other, T_WAIT_MS));
		cr_expect_str_eq(other.channel, "other");
		cr_expect_eq(in.n, 2);
		cr_expect_eq(gw_redis_stats(r)->sub_connects, 2);
	}
	gw_redis_free(r);
	event_base_free(base);
}
