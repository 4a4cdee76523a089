/*
 * Unit tests for auth/upstream/session.c: the pure parts (backoff bounds, refresh scheduling, the caller
 * decision, generations) as tables, then the single-flight login on a real loop against a tiny
 * login server on 127.0.0.1 (a free port) that counts GET /session/auth.
 */
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
#include "gateway/config/config.h"
#include "gateway/upstream/upstream.h"

#define T_SECRET "unit-test-secret-do-not-print"
#define T_ENV "A3D_TEST_SESSION_SECRET"
#define T_MAX_LOOP_MS 5000		/* every loop below gives up after this */
#define T_SRV_REQ_MAX 8192

/* ---- pure parts ---- */

Test(session, backoff_bounds)
{
	static const struct {
		unsigned attempt;
		int64_t lo, hi;
	} t[] = {
		{ 0, 1000, 1000 }, { 1, 1000, 1000 }, { 2, 1000, 2000 }, { 3, 1000, 4000 },
		{ 4, 1000, 8000 }, { 6, 1000, 32000 }, { 7, 1000, 60000 }, { 20, 1000, 60000 },
		{ 4000000000u, 1000, 60000 },
	};
	static const uint64_t rnds[] = { 0, 1, 999, 123456789, UINT64_MAX, 0x8000000000000000ull };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int64_t maxseen = 0;

		for (size_t r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
			int64_t d = gw_session_backoff_ms(t[i].attempt, rnds[r]);

			cr_expect(d >= t[i].lo && d <= t[i].hi, "attempt %u rnd %zu: %lld not in [%lld,%lld]",
				  t[i].attempt, r, (long long)d, (long long)t[i].lo, (long long)t[i].hi);
			if (d > maxseen)
				maxseen = d;
		}
		/* rnd = cap - MIN reaches the top: full jitter really spans the range. */
		cr_expect_eq(gw_session_backoff_ms(t[i].attempt, (uint64_t)(t[i].hi - t[i].lo)), t[i].hi,
			     "attempt %u", t[i].attempt);
	}
}

Test(session, refresh_delay)
{
	static const struct {
		int64_t lifetime_ms;
		long refresh_s;
		int64_t lo, hi;
	} t[] = {
		{ 3600000, 0, 2160000, 2520000 },	/* 1 h: between 36 and 42 min */
		{ 5000, 0, 3000, 3500 },		/* --session-ttl 5 */
		{ 3600000, 600, 600000, 600000 },	/* configured */
		{ 3600000, 7200, 1800000, 1800000 },	/* configured past expiry: halfway */
		{ 1500, 0, 750, 750 },			/* too short for the minimum: halfway */
		{ 0, 0, 1000, 1000 },
		{ -5, 0, 1000, 1000 },
	};
	static const uint64_t rnds[] = { 0, 7, 499, 500, 99999, UINT64_MAX };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		for (size_t r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
			int64_t d = gw_session_refresh_delay_ms(t[i].lifetime_ms, t[i].refresh_s, rnds[r]);

			cr_expect(d >= t[i].lo && d <= t[i].hi, "case %zu rnd %zu: %lld", i, r, (long long)d);
			if (t[i].lifetime_ms > 0)
				cr_expect_lt(d, t[i].lifetime_ms, "case %zu refreshes too late", i);
		}
	}
}

Test(session, decide)
{
	const int64_t now = 1000000000;
	static const struct {
		int has_cookie;
		int64_t expires_off_ms;		/* relative to now */
		int in_flight;
		int64_t retry_off_ms;		/* relative to now; 0 = not backing off */
		enum gw_session_decision want;
	} t[] = {
		{ 1, 60000, 0, 0, GW_SD_USE_COOKIE },
		{ 1, 60000, 1, 0, GW_SD_USE_COOKIE },		/* refresh in flight: keep the old one */
		{ 1, 60000, 0, 5000, GW_SD_USE_COOKIE },	/* refresh failing: cookie still good */
		{ 1, 100, 0, 0, GW_SD_START_LOGIN },		/* within the expiry margin */
		{ 1, -1, 1, 0, GW_SD_WAIT },
		{ 0, 0, 0, 0, GW_SD_START_LOGIN },
		{ 0, 0, 1, 0, GW_SD_WAIT },
		{ 0, 0, 0, 5000, GW_SD_FAIL },			/* backing off: fail fast */
		{ 0, 0, 0, -1, GW_SD_START_LOGIN },		/* backoff over: try again */
		{ 0, 0, 1, 5000, GW_SD_WAIT },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct gw_session_facts f = {
			.has_cookie = t[i].has_cookie,
			.expires_us = now + t[i].expires_off_ms * 1000,
			.login_in_flight = t[i].in_flight,
			.retry_at_us = t[i].retry_off_ms ? now + t[i].retry_off_ms * 1000 : 0,
			.now_us = now,
		};

		cr_expect_eq(gw_session_decide(&f), t[i].want, "case %zu", i);
	}
}

Test(session, generation_401)
{
	static const struct {
		uint64_t current, seen;
		int want;
	} t[] = { { 1, 1, 1 }, { 2, 1, 0 }, { 7, 6, 0 }, { 0, 0, 1 }, { 5, 9, 0 } };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_eq(gw_session_401_is_current(t[i].current, t[i].seen), t[i].want, "case %zu", i);
}

/* ---- a tiny login server ---- */

struct tsrv {
	int fd;
	int port;
	int reject;		/* answer 401 */
	int stop;
	int logins;		/* GET /session/auth seen */
	int bad_auth;		/* requests whose Authorization was not the expected one */
	pthread_t th;
};

static void *tsrv_main(void *arg)
{
	struct tsrv *s = arg;
	char req[T_SRV_REQ_MAX];

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { s->fd, POLLIN, 0 };
		int cfd;
		size_t len = 0;

		if (poll(&p, 1, 50) <= 0)
			continue;
		cfd = accept(s->fd, NULL, NULL);
		if (cfd < 0)
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
			/* base64("test-id:" T_SECRET) */
			if (!strstr(req, "Authorization: Basic dGVzdC1pZDp1bml0LXRlc3Qtc2VjcmV0LWRvLW5vdC1wcmludA==\r\n"))
				__atomic_add_fetch(&s->bad_auth, 1, __ATOMIC_ACQ_REL);
			char resp[512];
			int rl;

			if (s->reject)
				rl = snprintf(resp, sizeof resp,
					      "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n"
					      "Connection: close\r\n\r\n{}");
			else
				rl = snprintf(resp, sizeof resp,
					      "HTTP/1.1 200 OK\r\nSet-Cookie: other=1; Path=/\r\n"
					      "Set-Cookie: dmsess=sess%d; Path=/; Max-Age=3600; HttpOnly\r\n"
					      "Set-Cookie: dmsess=second; Path=/\r\n"
					      "Content-Length: 2\r\nConnection: close\r\n\r\n{}", n);
			if (write(cfd, resp, (size_t)rl) < 0)
				perror("write");
		}
		close(cfd);
	}
	return NULL;
}

static void tsrv_start(struct tsrv *s, int reject)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;

	memset(s, 0, sizeof *s);
	s->reject = reject;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->fd, 0);
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

/* A port bound but not listening: connections are refused. */
static int refused_port(int *keep_fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;

	*keep_fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(*keep_fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(getsockname(*keep_fd, (struct sockaddr *)&a, &al), 0);
	return ntohs(a.sin_port);
}

/* ---- a minimal environment and account ---- */

struct fixture {
	struct event_base *base;
	struct gw_upstream *up;
	const struct gw_config *cfgp;	/* what the engine and the sessions read as "current" */
	struct gw_config cfg;
	struct gw_account_cfg acfg;
	char base_url[64];
	struct gw_account_rt *acct;
	size_t n;
};

static void fx_init(struct fixture *fx, int port)
{
	char err[256] = "";

	memset(fx, 0, sizeof *fx);
	snprintf(fx->base_url, sizeof fx->base_url, "http://127.0.0.1:%d", port);
	fx->acfg.name = "acct-a";
	fx->acfg.base_url = fx->base_url;
	fx->acfg.client_id = "test-id";
	fx->acfg.secret_env = T_ENV;
	fx->cfg.accounts = &fx->acfg;
	fx->cfg.naccounts = 1;
	fx->cfg.upstream.connect_timeout_ms = 1000;
	fx->cfg.upstream.default_timeout_ms = 3000;
	fx->cfgp = &fx->cfg;
	setenv(T_ENV, T_SECRET, 1);
	fx->base = event_base_new();
	cr_assert_not_null(fx->base);
	fx->up = gw_up_new(&(struct gw_up_env){ .base = fx->base, .cfg = &fx->cfgp });
	cr_assert_not_null(fx->up);
	fx->acct = gw_session_accounts_new(&(struct gw_session_env){ .base = fx->base, .up = fx->up, .cfg = &fx->cfgp },
					   &fx->cfg, &fx->n, err, sizeof err);
	cr_assert_not_null(fx->acct, "%s", err);
	cr_assert_eq(fx->n, 1);
}

static void fx_fini(struct fixture *fx)
{
	gw_session_accounts_free(fx->acct, fx->n);	/* before gw_up_free, as documented */
	gw_up_free(fx->up);
	event_base_free(fx->base);
}

struct waiter {
	struct gw_up_waiter w;
	int released;
	char cookie[64];
	char err[GW_SESSION_ERR_MAX];
	uint64_t gen;
};

static int g_released;	/* test-local tally, reset per test */

static void on_ready(struct gw_up_waiter *w, const char *cookie, uint64_t gen, const char *err)
{
	struct waiter *x = (struct waiter *)w;

	x->released++;
	x->gen = gen;
	snprintf(x->cookie, sizeof x->cookie, "%s", cookie ? cookie : "");
	snprintf(x->err, sizeof x->err, "%s", err ? err : "");
	g_released++;
}

/* Runs the loop until `want` waiters were released, bounded by T_MAX_LOOP_MS. */
static void run_until(struct fixture *fx, int want)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_MAX_LOOP_MS * 1000;

	while (g_released < want && gw_clock_now_us() < end) {
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

#define NW 300

Test(session, single_flight_login_success)
{
	struct tsrv s;
	struct fixture fx;
	static struct waiter ws[NW];
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;

	tsrv_start(&s, 0);
	fx_init(&fx, s.port);
	g_released = 0;
	memset(ws, 0, sizeof ws);
	cr_expect_str_eq(gw_session_state(fx.acct), "never");
	cr_expect_str_eq(gw_session_name(fx.acct), "acct-a");
	for (int i = 0; i < NW; i++) {
		ws[i].w.fn = on_ready;
		cr_expect_eq(gw_session_acquire(fx.acct, &ws[i].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	}
	cr_expect_str_eq(gw_session_state(fx.acct), "logging_in");
	run_until(&fx, NW);
	cr_expect_eq(g_released, NW);
	for (int i = 0; i < NW; i++) {
		cr_expect_eq(ws[i].released, 1, "waiter %d released %d times", i, ws[i].released);
		cr_expect_str_eq(ws[i].cookie, "sess1", "waiter %d", i);	/* first dmsess wins */
		cr_expect_eq(ws[i].gen, 1);
	}
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 1, "exactly one login");
	cr_expect_eq(s.bad_auth, 0, "Basic header as expected");
	cr_expect_eq(fx.acct->n.logins, 1);
	cr_expect_str_eq(gw_session_state(fx.acct), "ok");

	/* Now the cookie is there: immediate. */
	struct waiter x = { .w.fn = on_ready };
	cr_expect_eq(gw_session_acquire(fx.acct, &x.w, &cookie, &gen, &err), GW_SESSION_READY);
	cr_expect_str_eq(cookie, "sess1");
	cr_expect_eq(gen, 1);

	/* A 401 on an older generation: retry with the current cookie, no login. */
	cr_expect_eq(gw_session_unauthorized(fx.acct, 0, &x.w, &cookie, &gen, &err), GW_SESSION_READY);
	cr_expect_eq(fx.acct->n.reauths, 0);

	/* 200 calls get 401 on the current generation: one re-login, all released with sess2. */
	g_released = 0;
	memset(ws, 0, sizeof ws);
	for (int i = 0; i < 200; i++) {
		ws[i].w.fn = on_ready;
		cr_expect_eq(gw_session_unauthorized(fx.acct, 1, &ws[i].w, &cookie, &gen, &err),
			     GW_SESSION_WAIT, "waiter %d", i);
	}
	cr_expect_eq(fx.acct->n.reauths, 1);
	run_until(&fx, 200);
	cr_expect_eq(g_released, 200);
	for (int i = 0; i < 200; i++) {
		cr_expect_str_eq(ws[i].cookie, "sess2", "waiter %d", i);
		cr_expect_eq(ws[i].gen, 2);
	}
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 2, "exactly one re-login");
	/* A late 401 from generation 1 does not log in again. */
	cr_expect_eq(gw_session_unauthorized(fx.acct, 1, &x.w, &cookie, &gen, &err), GW_SESSION_READY);
	cr_expect_eq(gen, 2);
	cr_expect_eq(fx.acct->n.logins, 2);
	fx_fini(&fx);
	tsrv_stop(&s);
}

Test(session, rejected_credentials_fail_fast)
{
	struct tsrv s;
	struct fixture fx;
	static struct waiter ws[50];
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;
	int64_t t0;

	tsrv_start(&s, 1);
	fx_init(&fx, s.port);
	g_released = 0;
	memset(ws, 0, sizeof ws);
	for (int i = 0; i < 50; i++) {
		ws[i].w.fn = on_ready;
		cr_expect_eq(gw_session_acquire(fx.acct, &ws[i].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	}
	t0 = gw_clock_now_us();
	run_until(&fx, 50);
	cr_expect_eq(g_released, 50);
	cr_expect_lt(gw_clock_now_us() - t0, 2000000, "released promptly");
	for (int i = 0; i < 50; i++) {
		cr_expect_str_eq(ws[i].err, "upstream rejected account credentials", "waiter %d", i);
		cr_expect_str_eq(ws[i].cookie, "");
	}
	cr_expect_str_eq(gw_session_state(fx.acct), "rejected");
	cr_expect_eq(fx.acct->n.failures, 1);
	/* While backing off: immediate failure, no new login. */
	struct waiter x = { .w.fn = on_ready };
	cr_expect_eq(gw_session_acquire(fx.acct, &x.w, &cookie, &gen, &err), GW_SESSION_FAIL);
	cr_expect_str_eq(err, "upstream rejected account credentials");
	cr_expect_null(strstr(err, T_SECRET));
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 1);
	cr_expect_eq(fx.acct->n.logins, 1);

	/* The timer retries by itself after the first backoff (exactly 1 s for attempt 1). */
	int64_t end = gw_clock_now_us() + (int64_t)T_MAX_LOOP_MS * 1000;

	while (fx.acct->n.failures < 2 && gw_clock_now_us() < end) {
		event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_expect_eq(fx.acct->n.failures, 2);
	cr_expect_eq(__atomic_load_n(&s.logins, __ATOMIC_ACQUIRE), 2);
	cr_expect_geq(gw_clock_now_us() - t0, 900000, "not before the backoff");
	cr_expect_str_eq(gw_session_state(fx.acct), "rejected");
	fx_fini(&fx);
	tsrv_stop(&s);
}

Test(session, connection_refused_backoff)
{
	struct fixture fx;
	static struct waiter ws[10];
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;
	int keep, port = refused_port(&keep);

	fx_init(&fx, port);
	g_released = 0;
	memset(ws, 0, sizeof ws);
	for (int i = 0; i < 10; i++) {
		ws[i].w.fn = on_ready;
		cr_expect_eq(gw_session_acquire(fx.acct, &ws[i].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	}
	run_until(&fx, 10);
	cr_expect_eq(g_released, 10);
	cr_expect_str_eq(gw_session_state(fx.acct), "backoff");
	cr_expect(strstr(ws[0].err, "upstream login failed") != NULL, "err '%s'", ws[0].err);
	struct waiter x = { .w.fn = on_ready };
	cr_expect_eq(gw_session_acquire(fx.acct, &x.w, &cookie, &gen, &err), GW_SESSION_FAIL);
	cr_expect(fx.acct->retry_at_us > gw_clock_now_us(), "a retry time is set");
	cr_expect_eq(fx.acct->n.logins, 1);
	fx_fini(&fx);
	close(keep);
}

Test(session, wait_list_is_bounded_and_free_detaches)
{
	struct fixture fx;
	struct waiter *ws = calloc(GW_SESSION_MAX_WAITERS + 1, sizeof *ws);
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;
	int keep, port = refused_port(&keep);

	cr_assert_not_null(ws);
	fx_init(&fx, port);
	g_released = 0;
	for (int i = 0; i < GW_SESSION_MAX_WAITERS; i++) {
		ws[i].w.fn = on_ready;
		cr_expect_eq(gw_session_acquire(fx.acct, &ws[i].w, &cookie, &gen, &err), GW_SESSION_WAIT);
	}
	ws[GW_SESSION_MAX_WAITERS].w.fn = on_ready;
	cr_expect_eq(gw_session_acquire(fx.acct, &ws[GW_SESSION_MAX_WAITERS].w, &cookie, &gen, &err),
		     GW_SESSION_FAIL);
	cr_expect_eq(fx.acct->n.waiters_rejected, 1);
	cr_expect_eq(fx.acct->nwaiters, GW_SESSION_MAX_WAITERS);
	/* Cancelling one waiter takes it off the list. */
	gw_session_cancel_wait(&ws[7].w);
	cr_expect_eq(fx.acct->nwaiters, GW_SESSION_MAX_WAITERS - 1);
	gw_session_cancel_wait(&ws[7].w);	/* twice is harmless */
	cr_expect_eq(fx.acct->nwaiters, GW_SESSION_MAX_WAITERS - 1);
	fx_fini(&fx);				/* detaches without calling back */
	cr_expect_eq(g_released, 0);
	cr_expect_null(ws[0].w.acct);
	free(ws);
	close(keep);
}

Test(session, missing_secret_is_a_clear_error)
{
	struct gw_config cfg;
	struct gw_account_cfg acfg = { .name = "acct-x", .base_url = "http://127.0.0.1:1",
				       .client_id = "id", .secret_env = "A3D_TEST_SESSION_UNSET" };
	const struct gw_config *cfgp = &cfg;
	struct gw_session_env env = { 0 };
	char err[256] = "";
	size_t n = 99;

	memset(&cfg, 0, sizeof cfg);
	unsetenv("A3D_TEST_SESSION_UNSET");
	cfg.accounts = &acfg;
	cfg.naccounts = 1;
	env.cfg = &cfgp;
	env.base = event_base_new();
	cr_expect_null(gw_session_accounts_new(&env, &cfg, &n, err, sizeof err));
	cr_expect_eq(n, 0);
	cr_expect_neq(err[0], '\0', "an error message is given");
	event_base_free(env.base);
}
