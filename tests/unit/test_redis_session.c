/*
 * Unit tests for the shared upstream session (auth/upstream/session.c with session_shared.h) on a
 * real redis-server (tests/lib/with-redis): two "replicas" (each its own Redis client, upstream
 * engine and session set, one loop) against a tiny login server that counts GET /session/auth:
 * one login for both, one re-login for a 401 on both, the cookie sealed in Redis, and the local
 * fallback when Redis cannot be reached. Every wait is bounded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "auth/upstream/session.h"
#include "gateway/base/clock.h"
#include "gateway/cluster/redis.h"
#include "gateway/config/config.h"
#include "gateway/upstream/upstream.h"

#define T_SECRET "redis-session-test-secret"
#define T_ENV "A3D_TEST_RSESSION_SECRET"
#define T_MAX_LOOP_MS 8000
#define T_LOGIN_DELAY_MS 150		/* the login server is slow: the other replica must wait */
#define NW 50

static const uint8_t t_key[GW_SEAL_KEY_LEN] = "0123456789abcdef0123456789abcdef";

/* ---- a tiny login server: dmsess=sess<N> ---- */

struct tsrv {
	int fd, port, stop, logins;
	pthread_t th;
};

static void *tsrv_main(void *arg)
{
	struct tsrv *s = arg;
	char req[8192];

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { s->fd, POLLIN, 0 };
		size_t len = 0;
		int cfd;

		if (poll(&p, 1, 50) <= 0 || (cfd = accept(s->fd, NULL, NULL)) < 0)
			continue;
		for (int i = 0; i < 100 && len < sizeof req - 1; i++) {
			struct pollfd q = { cfd, POLLIN, 0 };
			ssize_t n;

			if (poll(&q, 1, 50) <= 0)
				continue;
			n = read(cfd, req + len, sizeof req - 1 - len);
			if (n <= 0)
				break;
			len += (size_t)n;
			req[len] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[len] = '\0';
		if (strncmp(req, "GET /session/auth ", 18) == 0) {
			int n = __atomic_add_fetch(&s->logins, 1, __ATOMIC_ACQ_REL);
			char resp[256];
			int rl = snprintf(resp, sizeof resp,
					  "HTTP/1.1 200 OK\r\nSet-Cookie: dmsess=sess%d-0123456789; Path=/; "
					  "Max-Age=3600\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", n);

			usleep(T_LOGIN_DELAY_MS * 1000);
			if (write(cfd, resp, (size_t)rl) < 0)
				perror("write");
		}
		close(cfd);
	}
	return NULL;
}

static void tsrv_start(struct tsrv *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;

	memset(s, 0, sizeof *s);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(s->fd, 64), 0);
	cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->th, NULL, tsrv_main, s), 0);
}

static void tsrv_stop(struct tsrv *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->th, NULL);
	close(s->fd);
}

/* ---- Redis options from with-redis ---- */

static char g_password[128];

static void opts_of_env(struct gw_redis_opts *o, const char *prefix, unsigned port)
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
	memset(o, 0, sizeof *o);
	o->ip = "127.0.0.1";
	o->port = port ? port : (unsigned)strtoul(getenv("A3D_REDIS_PORT"), NULL, 10);
	o->password = g_password;
	o->key_prefix = prefix;
	o->connect_timeout_ms = 2000;
	o->command_timeout_ms = 2000;
	o->max_pending = 256;
}

/* ---- one replica ---- */

struct replica {
	struct gw_redis *redis;
	struct gw_upstream *up;
	const struct gw_config *cfgp;
	struct gw_config cfg;
	struct gw_account_cfg acfg;
	char base_url[64];
	struct gw_account_rt *acct;
	size_t n;
};

static void replica_init(struct replica *r, struct event_base *base, int login_port,
			 const char *prefix, const char *instance, unsigned redis_port)
{
	struct gw_redis_opts o;
	char err[256] = "";

	memset(r, 0, sizeof *r);
	snprintf(r->base_url, sizeof r->base_url, "http://127.0.0.1:%d", login_port);
	r->acfg.name = "acct-a";
	r->acfg.base_url = r->base_url;
	r->acfg.client_id = "test-id";
	r->acfg.secret_env = T_ENV;
	r->cfg.accounts = &r->acfg;
	r->cfg.naccounts = 1;
	r->cfg.upstream.connect_timeout_ms = 1000;
	r->cfg.upstream.default_timeout_ms = 3000;
	r->cfgp = &r->cfg;
	setenv(T_ENV, T_SECRET, 1);
	opts_of_env(&o, prefix, redis_port);
	r->redis = gw_redis_new(base, &o, err, sizeof err);
	cr_assert_not_null(r->redis, "%s", err);
	r->up = gw_up_new(&(struct gw_up_env){ .base = base, .cfg = &r->cfgp });
	cr_assert_not_null(r->up);
	r->acct = gw_session_accounts_new(&(struct gw_session_env){
		.base = base, .up = r->up, .cfg = &r->cfgp, .redis = r->redis, .seal_key = t_key,
		.instance = instance }, &r->cfg, &r->n, err, sizeof err);
	cr_assert_not_null(r->acct, "%s", err);
}

static void replica_fini(struct replica *r, struct event_base *base)
{
	gw_session_accounts_free(r->acct, r->n);
	gw_up_free(r->up);
	/* Let the Redis commands still out answer (the set is freed by the last of them). */
	for (int i = 0; i < 200 && gw_redis_stats(r->redis)->pending; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	gw_redis_free(r->redis);
}

struct waiter {
	struct gw_up_waiter w;
	int released;
	char cookie[64];
	uint64_t gen;
};

static int g_released;

static void on_ready(struct gw_up_waiter *w, const char *cookie, uint64_t gen, const char *err)
{
	struct waiter *x = (struct waiter *)w;

	(void)err;
	x->released++;
	x->gen = gen;
	snprintf(x->cookie, sizeof x->cookie, "%s", cookie ? cookie : "");
	g_released++;
}

static void run_until(struct event_base *base, int want)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_MAX_LOOP_MS * 1000;

	while (g_released < want && gw_clock_now_us() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(500);
	}
}

static void run_ms(struct event_base *base, int ms)
{
	int64_t end = gw_clock_now_us() + (int64_t)ms * 1000;

	while (gw_clock_now_us() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(500);
	}
}

/* NW waiters on each replica; every one is released with a cookie; returns the first cookie. */
static void acquire_all(struct event_base *base, struct replica *rs, int nr, struct waiter *ws,
			int unauthorized_gen)
{
	const char *cookie, *err;
	uint64_t gen;

	g_released = 0;
	memset(ws, 0, sizeof *ws * NW * (size_t)nr);
	for (int k = 0; k < nr; k++)
		for (int i = 0; i < NW; i++) {
			struct waiter *w = &ws[k * NW + i];
			int rc;

			w->w.fn = on_ready;
			rc = unauthorized_gen
				? gw_session_unauthorized(rs[k].acct, (uint64_t)unauthorized_gen, &w->w,
							  &cookie, &gen, &err)
				: gw_session_acquire(rs[k].acct, &w->w, &cookie, &gen, &err);
			cr_assert_eq(rc, GW_SESSION_WAIT, "replica %d waiter %d", k, i);
		}
	run_until(base, NW * nr);
	cr_assert_eq(g_released, NW * nr);
}

struct got {
	int done, type;
	long long integer;
	char val[512];
	size_t len;
};

static void on_get(void *arg, const redisReply *reply, const char *err)
{
	struct got *g = arg;

	(void)err;
	g->done = 1;
	g->type = reply ? reply->type : 0;
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		g->integer = reply->integer;
	if (reply && reply->type == REDIS_REPLY_STRING && reply->len < sizeof g->val) {
		memcpy(g->val, reply->str, reply->len);
		g->len = reply->len;
	}
}

Test(redis_session, two_replicas_one_login_one_relogin)
{
	struct event_base *base = event_base_new();
	struct tsrv s;
	struct replica rs[2];
	static struct waiter ws[2 * NW];
	struct got g = { 0 };
	const char *argv[2] = { "GET", "t1:session:acct-a" };

	tsrv_start(&s);
	replica_init(&rs[0], base, s.port, "t1:", "replica-a", 0);
	replica_init(&rs[1], base, s.port, "t1:", "replica-b", 0);

	/* Both need a session at once: one login, the other replica adopts it. */
	acquire_all(base, rs, 2, ws, 0);
	for (int i = 0; i < 2 * NW; i++)
		cr_expect_str_eq(ws[i].cookie, "sess1-0123456789", "waiter %d", i);
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 1, "one login for two replicas");
	cr_expect_eq(rs[0].acct->ss.n.login + rs[1].acct->ss.n.login, 1);
	cr_expect_eq(rs[0].acct->ss.n.adopted + rs[1].acct->ss.n.adopted, 1);
	cr_expect_eq(rs[0].acct->ss.n.lock_lost + rs[1].acct->ss.n.lock_lost, 1);
	cr_expect_eq(rs[0].acct->ss.n.fallback + rs[1].acct->ss.n.fallback, 0);
	/* The waiting replica read the cookie when the holder's message came, not at a later poll
	 * (the login takes T_LOGIN_DELAY_MS; the message comes about 25 ms before the poll due
	 * then). */
	cr_expect_eq(rs[0].acct->ss.n.woken + rs[1].acct->ss.n.woken, 1);
	cr_expect_str_eq(gw_session_state(rs[0].acct), "ok");
	cr_expect_str_eq(gw_session_state(rs[1].acct), "ok");

	/* In Redis: sealed only. */
	cr_assert_eq(gw_redis_command(rs[0].redis, on_get, &g, 2, argv, NULL), GW_REDIS_OK);
	for (int i = 0; i < 2000 && !g.done; i++)
		run_ms(base, 1);
	cr_assert_eq(g.type, REDIS_REPLY_STRING);
	cr_expect_eq(g.val[0], GW_SEAL_VERSION);
	cr_expect_null(memmem(g.val, g.len, "sess1", 5), "the cookie in clear in Redis");

	/* Both replicas see 401 on their current generation: one re-login cluster-wide. */
	acquire_all(base, rs, 2, ws, 1);
	for (int i = 0; i < 2 * NW; i++) {
		cr_expect_str_eq(ws[i].cookie, "sess2-0123456789", "waiter %d", i);
		cr_expect_eq(ws[i].gen, 2);
	}
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 2, "one re-login for two replicas");

	/* A third replica starting now adopts without any login. */
	struct replica late;
	replica_init(&late, base, s.port, "t1:", "replica-c", 0);
	acquire_all(base, &late, 1, ws, 0);
	cr_expect_str_eq(ws[0].cookie, "sess2-0123456789");
	cr_expect_eq(late.acct->ss.n.adopted, 1);
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 2);
	printf("redis_session: logins=%d for 3 replicas and one 401 (adopted a=%llu b=%llu c=%llu)\n",
	       s.logins, (unsigned long long)rs[0].acct->ss.n.adopted,
	       (unsigned long long)rs[1].acct->ss.n.adopted, (unsigned long long)late.acct->ss.n.adopted);

	replica_fini(&late, base);
	replica_fini(&rs[1], base);
	replica_fini(&rs[0], base);
	tsrv_stop(&s);
	event_base_free(base);
}

Test(redis_session, another_seal_key_cannot_open_so_logs_in)
{
	/* A value sealed under another key (rotation) is not adopted: counted, then a fresh login
	 * under the lock overwrites it. */
	struct event_base *base = event_base_new();
	struct tsrv s;
	struct replica r;
	static struct waiter ws[NW];
	uint8_t other[GW_SEAL_KEY_LEN], sealed[GW_SS_SEALED_MAX];
	struct got g = { 0 };
	long n;

	memset(other, 0x42, sizeof other);
	n = gw_ss_seal(other, "t2:session:acct-a", "old-cookie", gw_clock_wall_ms() + 600000, sealed,
		       sizeof sealed);
	cr_assert_gt(n, 0);
	tsrv_start(&s);
	replica_init(&r, base, s.port, "t2:", "replica-a", 0);
	{
		const char *argv[3] = { "SET", "t2:session:acct-a", (const char *)sealed };
		size_t len[3] = { 3, strlen(argv[1]), (size_t)n };

		cr_assert_eq(gw_redis_command(r.redis, on_get, &g, 3, argv, len), GW_REDIS_OK);
		for (int i = 0; i < 2000 && !g.done; i++)
			run_ms(base, 1);
	}
	acquire_all(base, &r, 1, ws, 0);
	cr_expect_str_eq(ws[0].cookie, "sess1-0123456789");
	cr_expect_eq(r.acct->ss.n.open_failed, 2, "read before and under the lock");
	cr_expect_eq(r.acct->ss.n.login, 1);
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 1);
	replica_fini(&r, base);
	tsrv_stop(&s);
	event_base_free(base);
}

Test(redis_session, redis_unreachable_falls_back_to_local_login)
{
	struct event_base *base = event_base_new();
	struct tsrv s;
	struct replica r;
	static struct waiter ws[NW];
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;
	int keep = socket(AF_INET, SOCK_STREAM, 0);

	/* A port bound but not listening: Redis connections are refused. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(keep, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(getsockname(keep, (struct sockaddr *)&a, &al), 0);
	tsrv_start(&s);
	replica_init(&r, base, s.port, "t3:", "replica-a", ntohs(a.sin_port));
	acquire_all(base, &r, 1, ws, 0);
	for (int i = 0; i < NW; i++)
		cr_expect_str_eq(ws[i].cookie, "sess1-0123456789", "waiter %d", i);
	cr_expect_eq(r.acct->ss.n.fallback, 1);
	cr_expect_eq(r.acct->ss.n.login, 0);
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 1);
	replica_fini(&r, base);
	tsrv_stop(&s);
	close(keep);
	event_base_free(base);
}

/*
 * The login lock: it lives GW_SS_LOCK_MS at most unless renewed while the login runs, and a
 * replica stopped mid-login frees it at once, so the next replica logs in without waiting for it
 * to expire.
 */
Test(redis_session, stopped_mid_login_frees_the_lock)
{
	struct event_base *base = event_base_new();
	struct tsrv s;
	struct replica a, b;
	static struct waiter w[2];
	const char *cookie, *err;
	uint64_t gen;
	struct got g = { 0 }, t = { 0 };
	const char *get[2] = { "GET", "t9:session:acct-a:lock" };
	const char *pttl[2] = { "PTTL", "t9:session:acct-a:lock" };

	tsrv_start(&s);
	replica_init(&a, base, s.port, "t9:", "replica-a", 0);
	replica_init(&b, base, s.port, "t9:", "replica-b", 0);
	memset(w, 0, sizeof w);
	w[0].w.fn = w[1].w.fn = on_ready;
	g_released = 0;
	cr_assert_eq(gw_session_acquire(a.acct, &w[0].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	for (int i = 0; i < 2000 && !a.acct->ss.locked; i++)
		run_ms(base, 1);
	cr_assert(a.acct->ss.locked, "replica a logs in under the lock");
	cr_assert_eq(gw_redis_command(b.redis, on_get, &g, 2, get, NULL), GW_REDIS_OK);
	for (int i = 0; i < 2000 && !g.done; i++)
		run_ms(base, 1);
	cr_expect_eq(g.type, REDIS_REPLY_STRING);
	cr_expect_str_eq(g.val, "replica-a");
	cr_assert_eq(gw_redis_command(b.redis, on_get, &t, 2, pttl, NULL), GW_REDIS_OK);
	for (int i = 0; i < 2000 && !t.done; i++)
		run_ms(base, 1);
	cr_expect(t.type == REDIS_REPLY_INTEGER && t.integer > 0 && t.integer <= GW_SS_LOCK_MS,
		  "the lock lives %lld ms at most before a renewal", t.integer);

	/* Stopped while its login runs (the login server takes T_LOGIN_DELAY_MS). */
	replica_fini(&a, base);
	memset(&g, 0, sizeof g);
	cr_assert_eq(gw_redis_command(b.redis, on_get, &g, 2, get, NULL), GW_REDIS_OK);
	for (int i = 0; i < 2000 && !g.done; i++)
		run_ms(base, 1);
	cr_expect_eq(g.type, REDIS_REPLY_NIL, "the lock is gone with its holder");

	/* The next replica logs in at once: it never finds the lock taken. */
	cr_assert_eq(gw_session_acquire(b.acct, &w[1].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	run_until(base, 1);
	cr_expect_eq(g_released, 1);
	cr_expect_eq(b.acct->ss.n.lock_lost, 0);
	cr_expect_eq(b.acct->ss.n.login, 1);
	replica_fini(&b, base);
	tsrv_stop(&s);
	event_base_free(base);
}
