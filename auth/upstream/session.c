/* session: upstream logins, the dmsess cookie per account, refresh and backoff (see session.h). */
#include "auth/upstream/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth/upstream/cookie.h"
#include "auth/upstream/secret.h"
#include "gateway/base/clock.h"
#include "gateway/config/config.h"
#include "gateway/base/log.h"
#include "gateway/base/retry.h"
#include "gateway/base/metrics.h"
#include "gateway/base/otlp.h"
#include "gateway/cluster/redis.h"
#include "gateway/upstream/upstream.h"

#define SESSION_AUTH_PATH "/session/auth"
#define SESSION_URL_MAX 2048			/* base_url + path */
#define SESSION_LOGIN_TIMEOUT_MS 10000		/* one login attempt, connect included */
#define GW_SS_LOCK_MS_STR "3000"		/* GW_SS_LOCK_MS as the PX argument */
/* The lock outlives a login attempt by being renewed; one lost renewal still leaves it alive. */
_Static_assert(GW_SS_LOCK_MS == 3000 && GW_SS_LOCK_MS >= 2 * GW_SS_LOCK_RENEW_MS + 500,
	       "the lock survives a late or lost renewal");

static const char *const session_rejected_msg = "upstream rejected account credentials";

/* The accounts of one configuration and what they share. */
struct gw_sessions {
	struct gw_session_env env;	/* env.seal_key is NULL here: the key is copied below */
	size_t n;
	int registered;			/* the renderer is in env.metrics_reg */
	int shared;			/* env.redis and a seal key: logins are shared */
	uint8_t seal_key[GW_SEAL_KEY_LEN];	/* wiped on free */
	struct gw_redis_script ss_publish, ss_release, ss_renew;
	/* Redis commands whose done() still looks at the accounts: the set is freed only once
	 * they have all answered (dead = freed by its owner meanwhile). */
	unsigned ss_inflight;
	int dead;
	int subscribed;			/* to <prefix>session: logins wake the waiters */
	struct gw_trace_rng trace_rng;	/* the logins' trace and span ids (span export only) */
	struct gw_account_rt a[];
};

static void session_login_done(void *arg, const struct gw_up_response *res);
static int session_begin(struct gw_account_rt *a, int refresh);
static void session_ss_unlock(struct gw_account_rt *a);
static void session_ss_logged_in(struct gw_account_rt *a, int64_t lifetime_ms);

/* ---- pure parts ---- */

int64_t gw_session_backoff_ms(unsigned attempt, uint64_t rnd)
{
	int64_t cap = GW_SESSION_BACKOFF_MIN_MS;

	for (unsigned i = 1; i < attempt && cap < GW_SESSION_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > GW_SESSION_BACKOFF_MAX_MS)
		cap = GW_SESSION_BACKOFF_MAX_MS;
	/* Full jitter over [MIN, cap]: spreads many gateways' retries; MIN keeps a wrong secret
	 * from turning every incoming call into a login attempt. */
	return GW_SESSION_BACKOFF_MIN_MS +
	       (int64_t)(rnd % (uint64_t)(cap - GW_SESSION_BACKOFF_MIN_MS + 1));
}

int64_t gw_session_refresh_delay_ms(int64_t lifetime_ms, long refresh_s, uint64_t rnd)
{
	int64_t d;

	if (lifetime_ms <= 0)
		return GW_SESSION_REFRESH_MIN_MS;
	if (refresh_s > 0) {
		d = (int64_t)refresh_s * 1000;
	} else {
		int64_t lo = lifetime_ms * 6 / 10, span = lifetime_ms / 10;

		d = lo + (int64_t)(rnd % (uint64_t)(span + 1));
	}
	if (d >= lifetime_ms)
		d = lifetime_ms / 2;
	if (d < GW_SESSION_REFRESH_MIN_MS)
		d = lifetime_ms > 2 * GW_SESSION_REFRESH_MIN_MS ? GW_SESSION_REFRESH_MIN_MS
								 : lifetime_ms / 2;
	return d;
}

enum gw_session_decision gw_session_decide(const struct gw_session_facts *f)
{
	if (f->has_cookie && f->now_us + (int64_t)GW_SESSION_EXPIRY_MARGIN_MS * 1000 < f->expires_us)
		return GW_SD_USE_COOKIE;
	if (f->login_in_flight)
		return GW_SD_WAIT;
	if (f->retry_at_us > 0 && f->now_us < f->retry_at_us)
		return GW_SD_FAIL;
	return GW_SD_START_LOGIN;
}

int gw_session_401_is_current(uint64_t current, uint64_t seen)
{
	return current == seen;
}

/* ---- helpers ---- */

static int64_t session_now_us(void)
{
	return gw_clock_now_us();
}

static void session_set_error(struct gw_account_rt *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void session_set_error(struct gw_account_rt *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->last_error, sizeof a->last_error, fmt, ap);
	va_end(ap);
}

/* The account behind the transport's view of it (the view is its first member). */
static struct gw_account_rt *session_rt(struct gw_up_account *up)
{
	return (struct gw_account_rt *)(void *)up;
}

static void session_waiter_unlink(struct gw_up_waiter *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	session_rt(w->acct)->nwaiters--;
	w->acct = NULL;
}

/* Releases every queued waiter once. State is final before this runs, so a waiter's callback
 * that asks again gets an immediate answer and never re-queues on this same list. */
static void session_release(struct gw_account_rt *a, const char *cookie, const char *err)
{
	while (a->waiters.next != &a->waiters) {
		struct gw_up_waiter *w = a->waiters.next;

		session_waiter_unlink(w);
		w->fn(w, cookie, a->generation, err);
	}
}

static int session_enqueue(struct gw_account_rt *a, struct gw_up_waiter *w)
{
	if (a->nwaiters >= GW_SESSION_MAX_WAITERS) {
		a->n.waiters_rejected++;
		return -1;
	}
	w->acct = &a->up;
	w->next = &a->waiters;
	w->prev = a->waiters.prev;
	a->waiters.prev->next = w;
	a->waiters.prev = w;
	a->nwaiters++;
	return 0;
}

static void session_arm_timer(struct gw_account_rt *a, int64_t delay_ms)
{
	struct timeval tv;

	if (delay_ms < 0)
		delay_ms = 0;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)((delay_ms % 1000) * 1000);
	evtimer_add(a->timer, &tv);
}

/* Starts the one login for a; returns 0, or -1 with a->last_error set. */
static int session_login(struct gw_account_rt *a, int refresh)
{
	struct gw_up_request rq;
	char url[SESSION_URL_MAX];
	int rc = -1;

	if (a->login)
		return 0;
	if (snprintf(url, sizeof url, "%s%s", a->base_url, SESSION_AUTH_PATH) >= (int)sizeof url) {
		session_set_error(a, "account %s: base_url too long", a->name);
		goto out;
	}
	memset(&rq, 0, sizeof rq);
	rq.method = "GET";
	rq.url = url;
	rq.headers[0] = a->auth_header;
	rq.timeout_ms = SESSION_LOGIN_TIMEOUT_MS;
	rq.route = "GET /session/auth";
	if (a->all->env.otlp) {
		static const struct gw_trace_in none;

		/* A new trace, sampled: exported spans are those of sampled traces (otlp.h). */
		gw_trace_begin(&a->login_trace, &a->all->trace_rng, &none);
		a->login_trace.flags |= GW_TRACE_SAMPLED;
		a->login_start_us = gw_clock_now_us();
		rq.trace = &a->login_trace;
	}
	a->login = gw_up_start(a->all->env.up, NULL, &rq, session_login_done, a);
	if (!a->login) {
		session_set_error(a, "cannot start the upstream login");
		goto out;
	}
	a->n.logins++;
	if (refresh)
		a->n.refreshes++;
	if (!a->cookie[0])
		a->state = GW_SESSION_LOGGING_IN;
	rc = 0;
out:
	return rc;
}

/* Ends the login's span (export on, a login started): its attempts are its children, exported
 * by the engine. */
static void session_login_span(struct gw_account_rt *a, int ok)
{
	struct gw_otlp_span_in s = {
		.trace = &a->login_trace,
		.name = "upstream login",
		.kind = GW_OTLP_INTERNAL,
		.start_us = a->login_start_us,
		.end_us = gw_clock_now_us(),
		.status = ok ? GW_OTLP_OK : GW_OTLP_ERROR,
		.status_msg = ok ? NULL : a->last_error,
		.attrs = { { "upstream.account", a->name, 0 },
			   { "animate3d.session.generation", NULL, (long long)a->generation } },
		.nattrs = 2,
	};

	if (!a->all->env.otlp || !a->login_start_us)
		return;
	gw_otlp_span_end(a->all->env.otlp, &s);
	a->login_start_us = 0;
}

static void session_login_failed(struct gw_account_rt *a, int rejected)
{
	int64_t delay;

	session_login_span(a, 0);
	session_ss_unlock(a);
	a->n.failures++;
	a->fail_streak++;
	delay = gw_session_backoff_ms(a->fail_streak, gw_retry_rand(&a->rng));
	a->retry_at_us = session_now_us() + delay * 1000;
	a->state = rejected ? GW_SESSION_REJECTED : GW_SESSION_BACKOFF;
	gw_log(rejected ? GW_LOG_ERROR : GW_LOG_WARN, "upstream_login_failed",
	       GW_LS("account", a->name), GW_LS("reason", a->last_error),
	       GW_LN("retry_in_ms", delay), GW_LEND);
	/* Retry in the background: a refresh failure heals before the old cookie runs out, and a
	 * recovered upstream shows as "ok" (health, metrics) before the next caller arrives. Callers
	 * that come while backing off without a cookie fail at once instead of waiting. */
	session_arm_timer(a, delay);
	session_release(a, NULL, rejected ? session_rejected_msg : a->last_error);
}

static void session_login_done(void *arg, const struct gw_up_response *res)
{
	struct gw_account_rt *a = arg;
	char value[GW_SESSION_COOKIE_MAX];
	time_t now = time(NULL), expires = 0;
	int64_t lifetime_ms, now_us;

	a->login = NULL;
	if (res->curl_rc != CURLE_OK || res->http_status == 0) {
		session_set_error(a, "upstream login failed: %s",
				  res->error ? res->error : "connection error");
		session_login_failed(a, 0);
		return;
	}
	if (res->http_status == 401 || res->http_status == 403) {
		session_set_error(a, "upstream rejected account credentials (HTTP %ld)",
				  res->http_status);
		session_login_failed(a, 1);
		return;
	}
	if (res->http_status < 200 || res->http_status >= 300) {
		session_set_error(a, "upstream login answered HTTP %ld", res->http_status);
		session_login_failed(a, 0);
		return;
	}
	if (!res->set_cookie ||
	    gw_cookie_parse(res->set_cookie, "dmsess", value, sizeof value, now, &expires) != 1 ||
	    !value[0]) {
		session_set_error(a, "upstream login answered HTTP %ld without a dmsess cookie",
				  res->http_status);
		explicit_bzero(value, sizeof value);
		session_login_failed(a, 0);
		return;
	}
	if (expires != 0 && expires <= now) {
		session_set_error(a, "upstream login answered with an already expired cookie");
		explicit_bzero(value, sizeof value);
		session_login_failed(a, 0);
		return;
	}
	/* No Expires/Max-Age: a session cookie; assume the usual lifetime and let a 401 tell. */
	lifetime_ms = expires ? (int64_t)(expires - now) * 1000
			      : (int64_t)GW_SESSION_DEFAULT_TTL_S * 1000;
	now_us = session_now_us();
	explicit_bzero(a->cookie, sizeof a->cookie);
	memcpy(a->cookie, value, strlen(value) + 1);
	explicit_bzero(value, sizeof value);
	a->generation++;
	a->expires_us = now_us + lifetime_ms * 1000;
	a->state = GW_SESSION_OK;
	a->fail_streak = 0;
	a->retry_at_us = 0;
	a->last_error[0] = '\0';
	session_ss_logged_in(a, lifetime_ms);
	session_arm_timer(a, gw_session_refresh_delay_ms(lifetime_ms,
				*a->all->env.cfg ? (*a->all->env.cfg)->upstream.session_refresh_s : 0,
				gw_retry_rand(&a->rng)));
	gw_log(GW_LOG_INFO, "upstream_login", GW_LS("account", a->name),
	       GW_LN("generation", (long long)a->generation),
	       GW_LN("lifetime_s", lifetime_ms / 1000), GW_LEND);
	session_login_span(a, 1);
	session_release(a, a->cookie, NULL);
}

/* Refresh ahead of expiry (the old cookie keeps serving traffic), or retry after a failure. */
static void session_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_account_rt *a = arg;

	(void)fd;
	(void)what;
	if (a->login || a->ss.phase != GW_SS_IDLE)
		return;
	if (session_begin(a, a->cookie[0] != '\0') != 0)
		session_login_failed(a, 0);
}

static void session_fill_facts(const struct gw_account_rt *a, struct gw_session_facts *f)
{
	f->has_cookie = a->cookie[0] != '\0';
	f->expires_us = a->expires_us;
	f->login_in_flight = a->login != NULL || a->ss.phase != GW_SS_IDLE;
	f->retry_at_us = a->retry_at_us;
	f->now_us = session_now_us();
}

int gw_session_acquire(struct gw_account_rt *a, struct gw_up_waiter *w, const char **cookie,
		       uint64_t *generation, const char **err)
{
	struct gw_session_facts f;

	session_fill_facts(a, &f);
	switch (gw_session_decide(&f)) {
	case GW_SD_USE_COOKIE:
		*cookie = a->cookie;
		*generation = a->generation;
		return GW_SESSION_READY;
	case GW_SD_FAIL:
		*err = a->state == GW_SESSION_REJECTED ? session_rejected_msg
			: a->last_error[0] ? a->last_error : "upstream login is backing off";
		return GW_SESSION_FAIL;
	case GW_SD_START_LOGIN:
		/* An expired cookie is useless; forget it so the state reads right. */
		if (a->cookie[0]) {
			explicit_bzero(a->cookie, sizeof a->cookie);
			a->state = GW_SESSION_LOGGING_IN;
		}
		if (session_begin(a, 0) != 0) {
			*err = a->last_error;
			return GW_SESSION_FAIL;
		}
		break;
	case GW_SD_WAIT:
		break;
	}
	if (session_enqueue(a, w) != 0) {
		*err = "too many calls waiting for the upstream login";
		return GW_SESSION_FAIL;
	}
	return GW_SESSION_WAIT;
}

int gw_session_unauthorized(struct gw_account_rt *a, uint64_t generation,
			    struct gw_up_waiter *w, const char **cookie,
			    uint64_t *generation_out, const char **err)
{
	if (gw_session_401_is_current(a->generation, generation) && a->cookie[0]) {
		/* The session died upstream (revoked, expired early): drop it; the next acquire
		 * starts the one re-login or joins a refresh already in flight. */
		a->n.reauths++;
		/* Remembered by fingerprint so that a shared login never adopts it again. */
		gw_ss_fingerprint(a->cookie, strlen(a->cookie), a->ss.stale_fp);
		a->ss.has_stale = 1;
		explicit_bzero(a->cookie, sizeof a->cookie);
		a->expires_us = 0;
		a->state = GW_SESSION_LOGGING_IN;
		a->retry_at_us = 0;
		if (a->timer)
			evtimer_del(a->timer);
		gw_log(GW_LOG_WARN, "upstream_session_rejected", GW_LS("account", a->name),
		       GW_LN("generation", (long long)generation), GW_LEND);
	}
	return gw_session_acquire(a, w, cookie, generation_out, err);
}

void gw_session_cancel_wait(struct gw_up_waiter *w)
{
	if (w && w->acct)
		session_waiter_unlink(w);
}

void gw_session_start(struct gw_account_rt *a)
{
	if (a && a->state == GW_SESSION_NEVER && !a->login && a->ss.phase == GW_SS_IDLE &&
	    session_begin(a, 0) != 0)
		session_login_failed(a, 0);
}

static const char *session_state_name(enum gw_session_state st)
{
	switch (st) {
	case GW_SESSION_NEVER: return "never";
	case GW_SESSION_LOGGING_IN: return "logging_in";
	case GW_SESSION_OK: return "ok";
	case GW_SESSION_BACKOFF: return "backoff";
	case GW_SESSION_REJECTED: return "rejected";
	}
	return "never";
}

const char *gw_session_state(const struct gw_account_rt *a)
{
	return session_state_name(a->state);
}

const char *gw_session_name(const struct gw_account_rt *a)
{
	return a->name;
}

/* ---- the shared session on Redis (session_shared.h) ---- */

static const char ss_publish_lua[] =
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
	"if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end "
	"redis.call('PUBLISH', ARGV[4], ARGV[5]) "
	"return 1";
static const char ss_release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
	"return 0";
static const char ss_renew_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
	"return 0";

static const char *session_instance(const struct gw_sessions *all)
{
	return all->env.instance && all->env.instance[0] ? all->env.instance : "gateway";
}

/* <prefix>session:<account> (lock 0) or <prefix>session:<account>:lock (lock 1): 0, or -1. */
static int session_ss_key(const struct gw_account_rt *a, int lock, char *buf, size_t cap)
{
	char name[GW_REDIS_KEY_MAX];

	if (snprintf(name, sizeof name, "session:%s%s", a->name, lock ? ":lock" : "") >=
	    (int)sizeof name)
		return -1;
	return gw_redis_key(a->all->env.redis, name, buf, cap) < 0 ? -1 : 0;
}

/* Every done() of a command submitted with an account as arg starts here: 1 = the set is gone
 * (freed now if this was the last command), return at once. */
static int session_ss_enter(struct gw_account_rt *a)
{
	struct gw_sessions *all = a->all;

	all->ss_inflight--;
	if (all->dead) {
		if (!all->ss_inflight)
			free(all);
		return 1;
	}
	return 0;
}

static int session_ss_submit(struct gw_account_rt *a, gw_redis_done_fn done, int argc,
			     const char **argv, const size_t *argvlen)
{
	if (gw_redis_command(a->all->env.redis, done, a, argc, argv, argvlen) != GW_REDIS_OK)
		return -1;
	a->all->ss_inflight++;
	return 0;
}

static int session_ss_eval(struct gw_account_rt *a, const struct gw_redis_script *sc, int nkeys,
			   int nargs, const char **argv, const size_t *argvlen, gw_redis_done_fn done)
{
	if (gw_redis_eval(a->all->env.redis, sc, nkeys, nargs, argv, argvlen, done, a) !=
	    GW_REDIS_OK)
		return -1;
	a->all->ss_inflight++;
	return 0;
}

/* The cycle ends in a login here, without the lock (counted by the caller). */
static void session_ss_local(struct gw_account_rt *a)
{
	a->ss.phase = GW_SS_IDLE;
	session_ss_unlock(a);
	if (session_login(a, a->ss.refresh) != 0)
		session_login_failed(a, 0);
}

static void session_ss_fallback(struct gw_account_rt *a, const char *why)
{
	session_ss_unlock(a);	/* frees the lock if we took it */
	a->ss.n.fallback++;
	gw_redis_part_note(a->all->env.redis, GW_REDIS_PART_SESSION, 1);
	gw_log(GW_LOG_WARN, "upstream_session_shared", GW_LS("account", a->name),
	       GW_LS("msg", "Redis unavailable: logging in locally"), GW_LS("reason", why), GW_LEND);
	session_ss_local(a);
}

/* A cookie another replica logged in for: used as if we had logged in. */
static void session_ss_adopt(struct gw_account_rt *a, const char *cookie, int64_t remaining_ms)
{
	a->ss.phase = GW_SS_IDLE;
	a->ss.has_stale = 0;
	a->ss.n.adopted++;
	gw_redis_part_note(a->all->env.redis, GW_REDIS_PART_SESSION, 0);
	explicit_bzero(a->cookie, sizeof a->cookie);
	memcpy(a->cookie, cookie, strlen(cookie) + 1);
	a->generation++;
	a->expires_us = session_now_us() + remaining_ms * 1000;
	a->state = GW_SESSION_OK;
	a->fail_streak = 0;
	a->retry_at_us = 0;
	a->last_error[0] = '\0';
	session_arm_timer(a, gw_session_refresh_delay_ms(remaining_ms,
				*a->all->env.cfg ? (*a->all->env.cfg)->upstream.session_refresh_s : 0,
				gw_retry_rand(&a->rng)));
	gw_log(GW_LOG_INFO, "upstream_session_adopted", GW_LS("account", a->name),
	       GW_LN("generation", (long long)a->generation), GW_LN("lifetime_s", remaining_ms / 1000),
	       GW_LEND);
	session_release(a, a->cookie, NULL);
}

static int session_ss_get(struct gw_account_rt *a);

static void session_ss_on_lock(void *arg, const redisReply *reply, const char *err)
{
	struct gw_account_rt *a = arg;
	struct gw_ss_facts f = { 0 };

	if (session_ss_enter(a))
		return;
	f.redis_error = err || !reply ||
			(reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_NIL);
	f.lock_won = !f.redis_error && reply->type == REDIS_REPLY_STATUS &&
		     strcmp(reply->str, "OK") == 0;
	f.now_us = session_now_us();
	f.deadline_us = a->ss.deadline_us;
	switch (gw_ss_decide(GW_SS_AFTER_LOCK, &f)) {
	case GW_SS_LOGIN:
		/* Read once more under the lock: the holder before us writes its cookie and frees
		 * the lock in one script, so a GET that missed the cookie followed by a SET NX that
		 * found the lock free must not log in again. */
		a->ss.locked = 1;
		{
			struct timeval tv = { GW_SS_LOCK_RENEW_MS / 1000,
					      (GW_SS_LOCK_RENEW_MS % 1000) * 1000 };

			event_add(a->ss.renew, &tv);	/* failed: the lock just lives GW_SS_LOCK_MS */
		}
		if (session_ss_get(a) != 0)
			session_ss_fallback(a, "GET refused");
		break;
	case GW_SS_WAIT:
		if (!a->ss.lost_counted) {
			a->ss.lost_counted = 1;
			a->ss.n.lock_lost++;
		}
		a->ss.phase = GW_SS_WAITING;
		{
			struct timeval tv = { 0, (suseconds_t)(a->ss.poll_ms * 1000) };

			evtimer_add(a->ss.timer, &tv);
		}
		a->ss.poll_ms = a->ss.poll_ms * 2 > GW_SS_POLL_MAX_MS ? GW_SS_POLL_MAX_MS
								      : a->ss.poll_ms * 2;
		break;
	case GW_SS_TIMEOUT:
		a->ss.n.wait_timeout++;
		gw_redis_part_note(a->all->env.redis, GW_REDIS_PART_SESSION, 1);
		gw_log(GW_LOG_WARN, "upstream_session_shared", GW_LS("account", a->name),
		       GW_LS("msg", "another replica's login took too long: logging in locally"),
		       GW_LEND);
		session_ss_local(a);
		break;
	default:
		session_ss_fallback(a, err ? err : "unexpected reply to SET NX");
		break;
	}
}

static void session_ss_lock(struct gw_account_rt *a)
{
	char key[GW_REDIS_KEY_MAX];
	const char *argv[6];

	if (session_ss_key(a, 1, key, sizeof key) != 0) {
		session_ss_fallback(a, "key name too long");
		return;
	}
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = session_instance(a->all);
	argv[3] = "NX";
	argv[4] = "PX";
	argv[5] = GW_SS_LOCK_MS_STR;
	if (session_ss_submit(a, session_ss_on_lock, 6, argv, NULL) != 0) {
		session_ss_fallback(a, "SET NX refused");
		return;
	}
	a->ss.phase = GW_SS_LOCKING;
}

static void session_ss_on_get(void *arg, const redisReply *reply, const char *err)
{
	struct gw_account_rt *a = arg;
	struct gw_ss_facts f = { 0 };
	char key[GW_REDIS_KEY_MAX], cookie[GW_SESSION_COOKIE_MAX];
	int64_t expires_ms = 0;

	if (session_ss_enter(a))
		return;
	f.redis_error = err || !reply ||
			(reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL) ||
			session_ss_key(a, 0, key, sizeof key) != 0;
	f.found = !f.redis_error && reply->type == REDIS_REPLY_STRING;
	if (f.found) {
		f.opened = gw_ss_open(a->all->seal_key, key, (const uint8_t *)reply->str,
				      (size_t)reply->len, cookie, sizeof cookie, &expires_ms) == 0;
		if (!f.opened)
			a->ss.n.open_failed++;
	}
	if (f.opened) {
		uint8_t fp[GW_SS_FP_LEN];

		gw_ss_fingerprint(cookie, strlen(cookie), fp);
		f.same_as_stale = a->ss.has_stale && CRYPTO_memcmp(fp, a->ss.stale_fp, sizeof fp) == 0;
		f.remaining_ms = expires_ms - gw_clock_wall_ms();
	}
	f.refresh = a->cookie[0] != '\0';
	f.ours_remaining_ms = (a->expires_us - session_now_us()) / 1000;
	f.now_us = session_now_us();
	f.deadline_us = a->ss.deadline_us;
	switch (gw_ss_decide(GW_SS_AFTER_GET, &f)) {
	case GW_SS_ADOPT:
		session_ss_unlock(a);	/* frees the lock if we took it */
		session_ss_adopt(a, cookie, f.remaining_ms);
		break;
	case GW_SS_LOCK:
		if (!a->ss.locked) {
			session_ss_lock(a);
			break;
		}
		a->ss.phase = GW_SS_IDLE;
		a->ss.n.login++;
		gw_redis_part_note(a->all->env.redis, GW_REDIS_PART_SESSION, 0);
		if (session_login(a, a->ss.refresh) != 0)
			session_login_failed(a, 0);	/* frees the lock */
		break;
	default:
		session_ss_fallback(a, err ? err : "unexpected reply to GET");
		break;
	}
	explicit_bzero(cookie, sizeof cookie);
}

static int session_ss_get(struct gw_account_rt *a)
{
	char key[GW_REDIS_KEY_MAX];
	const char *argv[2];

	if (session_ss_key(a, 0, key, sizeof key) != 0)
		return -1;
	argv[0] = "GET";
	argv[1] = key;
	if (session_ss_submit(a, session_ss_on_get, 2, argv, NULL) != 0)
		return -1;
	a->ss.phase = GW_SS_GETTING;
	return 0;
}

/*
 * Another replica logged in and published the account's name on <prefix>session: a replica
 * waiting on that account's lock reads the new cookie now rather than at its next poll. msg NULL
 * (the subscription was (re)established): the polls carry on, as for a lost message.
 */
static void session_ss_on_message(void *arg, const char *channel, const char *msg, size_t len)
{
	struct gw_sessions *all = arg;

	(void)channel;
	if (!msg)
		return;
	for (size_t i = 0; i < all->n; i++) {
		struct gw_account_rt *a = &all->a[i];

		if (a->ss.phase != GW_SS_WAITING || !a->name || strlen(a->name) != len ||
		    memcmp(a->name, msg, len) != 0)
			continue;
		a->ss.n.woken++;
		evtimer_del(a->ss.timer);
		event_active(a->ss.timer, EV_TIMEOUT, 0);
	}
}

static void session_ss_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_account_rt *a = arg;

	(void)fd;
	(void)what;
	if (a->ss.phase != GW_SS_WAITING)
		return;
	if (session_ss_get(a) != 0)
		session_ss_fallback(a, "Redis not connected");
}

/* The one entry point of a login: shared when configured and Redis answers, else local. */
static int session_begin(struct gw_account_rt *a, int refresh)
{
	if (a->login || a->ss.phase != GW_SS_IDLE)
		return 0;
	if (!a->all->shared)
		return session_login(a, refresh);
	a->ss.refresh = refresh && a->cookie[0];
	if (a->cookie[0]) {
		/* A refresh wants a cookie newer than ours, never ours again. */
		gw_ss_fingerprint(a->cookie, strlen(a->cookie), a->ss.stale_fp);
		a->ss.has_stale = 1;
	}
	a->ss.lost_counted = 0;
	a->ss.poll_ms = GW_SS_POLL_MIN_MS;
	a->ss.deadline_us = session_now_us() + (int64_t)GW_SS_WAIT_MAX_MS * 1000;
	/* No check of gw_redis_connected(): while the client's very first connection is being
	 * opened (the first login at start) the GET waits for it; once down it is refused at once. */
	if (session_ss_get(a) == 0) {
		if (!a->cookie[0])
			a->state = GW_SESSION_LOGGING_IN;
		return 0;
	}
	a->ss.n.fallback++;
	gw_redis_part_note(a->all->env.redis, GW_REDIS_PART_SESSION, 1);
	return session_login(a, refresh);
}

static void session_ss_on_published(void *arg, const redisReply *reply, const char *err)
{
	struct gw_account_rt *a = arg;

	if (session_ss_enter(a))
		return;
	if (err || !reply) {
		a->ss.n.publish_failed++;
		gw_log(GW_LOG_WARN, "upstream_session_shared", GW_LS("account", a->name),
		       GW_LS("msg", "cannot share the new session"), GW_LS("reason", err ? err : "-"),
		       GW_LEND);
	}
}

static void session_ss_on_renewed(void *arg, const redisReply *reply, const char *err)
{
	struct gw_account_rt *a = arg;

	if (session_ss_enter(a))
		return;
	/* 0: expired or taken over (our loop or Redis was too slow): the login goes on; another
	 * replica may log in too, and the last cookie stored wins, as before the renewals. */
	if (!err && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
		a->ss.n.lock_expired++;
}

/* Every GW_SS_LOCK_RENEW_MS while our login runs under the lock: keep it ours. */
static void session_ss_on_renew(evutil_socket_t fd, short what, void *arg)
{
	struct gw_account_rt *a = arg;
	char lock[GW_REDIS_KEY_MAX];
	const char *argv[3];

	(void)fd;
	(void)what;
	if (!a->ss.locked) {
		event_del(a->ss.renew);
		return;
	}
	if (session_ss_key(a, 1, lock, sizeof lock) != 0)
		return;
	argv[0] = lock;
	argv[1] = session_instance(a->all);
	argv[2] = GW_SS_LOCK_MS_STR;
	if (session_ss_eval(a, &a->all->ss_renew, 1, 2, argv, NULL, session_ss_on_renewed) == 0)
		a->ss.n.lock_renewed++;
}

static void session_ss_on_released(void *arg, const redisReply *reply, const char *err)
{
	(void)reply;
	(void)err;
	session_ss_enter(arg);
}

/* A login under the lock succeeded (a->cookie is the new one): seal it, store it, free the
 * lock, tell the others. A login without the lock (fallback) is not written: another replica
 * may hold the lock and be about to write a cookie of its own. */
static void session_ss_logged_in(struct gw_account_rt *a, int64_t lifetime_ms)
{
	char key[GW_REDIS_KEY_MAX], lock[GW_REDIS_KEY_MAX], chan[GW_REDIS_KEY_MAX], ttl[24];
	uint8_t sealed[GW_SS_SEALED_MAX];
	const char *argv[7];
	size_t argvlen[7];
	long n;

	a->ss.has_stale = 0;
	if (!a->ss.locked)
		return;
	a->ss.locked = 0;
	event_del(a->ss.renew);
	if (session_ss_key(a, 0, key, sizeof key) != 0 || session_ss_key(a, 1, lock, sizeof lock) ||
	    gw_redis_key(a->all->env.redis, "session", chan, sizeof chan) < 0)
		goto fail;
	n = gw_ss_seal(a->all->seal_key, key, a->cookie, gw_clock_wall_ms() + lifetime_ms, sealed,
		       sizeof sealed);
	if (n < 0)
		goto fail;
	snprintf(ttl, sizeof ttl, "%lld", (long long)lifetime_ms);
	argv[0] = key;
	argv[1] = lock;
	argv[2] = (const char *)sealed;
	argv[3] = ttl;
	argv[4] = session_instance(a->all);
	argv[5] = chan;
	argv[6] = a->name;
	for (int i = 0; i < 7; i++)
		argvlen[i] = i == 2 ? (size_t)n : strlen(argv[i]);
	if (session_ss_eval(a, &a->all->ss_publish, 2, 5, argv, argvlen,
			    session_ss_on_published) != 0) {
		explicit_bzero(sealed, sizeof sealed);
		goto fail;
	}
	explicit_bzero(sealed, sizeof sealed);	/* the client copied it */
	return;
fail:
	a->ss.n.publish_failed++;
}

/* Frees the lock if this replica holds it (a login under it failed, a cookie was adopted after
 * all, Redis failed), so that another replica may go on at once. */
static void session_ss_unlock(struct gw_account_rt *a)
{
	char lock[GW_REDIS_KEY_MAX];
	const char *argv[2];

	if (!a->ss.locked)
		return;
	a->ss.locked = 0;
	event_del(a->ss.renew);
	if (session_ss_key(a, 1, lock, sizeof lock) != 0)
		return;
	argv[0] = lock;
	argv[1] = session_instance(a->all);
	/* Refused: the lock expires by itself (GW_SS_LOCK_MS). */
	(void)session_ss_eval(a, &a->all->ss_release, 1, 1, argv, NULL, session_ss_on_released);
}

/* ---- lifecycle ---- */

static char *session_auth_header(const struct gw_account_cfg *ac, char fingerprint[13], char *err,
				 size_t errlen)
{
	char *secret = NULL, *basic = NULL, *hdr = NULL;
	size_t len = 0, hlen;

	if (gw_secret_load(ac, &secret, &len, err, errlen) != 0)
		goto out;
	if (fingerprint)
		gw_secret_fingerprint(secret, len, fingerprint);
	basic = gw_secret_basic_header(ac->client_id, secret, len);
	if (!basic) {
		snprintf(err, errlen, "account %s: cannot build the login header", ac->name);
		goto out;
	}
	/* Accept both "Basic x" and a full "Authorization: Basic x" from auth/secret. */
	if (strncasecmp(basic, "Authorization:", 14) == 0) {
		hdr = basic;
		basic = NULL;
		goto out;
	}
	hlen = strlen(basic) + sizeof "Authorization: ";
	hdr = malloc(hlen);
	if (!hdr) {
		snprintf(err, errlen, "account %s: out of memory", ac->name);
		goto out;
	}
	snprintf(hdr, hlen, "Authorization: %s", basic);
out:
	if (basic) {
		explicit_bzero(basic, strlen(basic));
		free(basic);
	}
	if (secret)
		gw_secret_free(secret, len);
	return hdr;
}

int gw_session_reload_secret(struct gw_account_rt *a, const struct gw_account_cfg *ac,
			     char fingerprint[13], char *err, size_t errlen)
{
	char *hdr = session_auth_header(ac, fingerprint, err, errlen);
	int changed;

	if (!hdr)
		return -1;
	changed = strcmp(hdr, a->auth_header) != 0;
	/* A login in flight keeps the copy it was started with (gw_up_start copies headers). */
	explicit_bzero(a->auth_header, strlen(a->auth_header));
	free(a->auth_header);
	a->auth_header = hdr;
	if (changed && a->state == GW_SESSION_REJECTED && !a->cookie[0]) {
		/* The old secret was refused: let the next caller log in now, not after the backoff. */
		a->retry_at_us = 0;
		a->fail_streak = 0;
	}
	return changed;
}

static void session_render_metrics(void *arg, struct gw_metrics_out *o);

struct gw_account_rt *gw_session_accounts_new(const struct gw_session_env *env,
					      const struct gw_config *cfg, size_t *n, char *err,
					      size_t errlen)
{
	struct gw_sessions *all = NULL;
	struct gw_account_rt *ret = NULL;
	size_t i;

	*n = 0;
	if (!cfg || cfg->naccounts == 0) {
		snprintf(err, errlen, "no upstream accounts configured");
		goto out;
	}
	all = calloc(1, sizeof *all + cfg->naccounts * sizeof all->a[0]);
	if (!all) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	all->env = *env;
	all->env.seal_key = NULL;
	all->n = cfg->naccounts;
	if (env->redis && env->seal_key) {
		memcpy(all->seal_key, env->seal_key, sizeof all->seal_key);
		all->shared = 1;
		gw_redis_part_use(env->redis, GW_REDIS_PART_SESSION);
		all->ss_publish.lua = ss_publish_lua;
		all->ss_release.lua = ss_release_lua;
		all->ss_renew.lua = ss_renew_lua;
		gw_redis_script_init(&all->ss_publish);
		gw_redis_script_init(&all->ss_release);
		gw_redis_script_init(&all->ss_renew);
	}
	for (i = 0; i < cfg->naccounts; i++) {
		const struct gw_account_cfg *ac = &cfg->accounts[i];
		struct gw_account_rt *a = &all->a[i];

		a->all = all;
		a->waiters.next = a->waiters.prev = &a->waiters;
		a->rng = (uint64_t)session_now_us() ^ ((uint64_t)getpid() << 32) ^
			 ((uint64_t)(uintptr_t)a) ^ 0x9e3779b97f4a7c15ull;
		if (!a->rng)
			a->rng = 1;
		a->name = strdup(ac->name ? ac->name : "");
		a->base_url = strdup(ac->base_url ? ac->base_url : "");
		if (!a->name || !a->base_url) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		a->up.idx = i;
		a->up.name = a->name;
		a->up.base_url = a->base_url;
		a->up.auth = &gw_session_auth_ops;
		a->auth_header = session_auth_header(ac, NULL, err, errlen);
		if (!a->auth_header)
			goto out;
		a->timer = evtimer_new(env->base, session_on_timer, a);
		a->ss.timer = evtimer_new(env->base, session_ss_on_timer, a);
		a->ss.renew = event_new(env->base, -1, EV_PERSIST, session_ss_on_renew, a);
		if (!a->timer || !a->ss.timer || !a->ss.renew) {
			snprintf(err, errlen, "account %s: cannot create its timer", ac->name);
			goto out;
		}
	}
	/* Once the accounts exist (a message may come at any time). Refused: the waiters poll. */
	if (all->shared &&
	    gw_redis_subscribe(env->redis, "session", session_ss_on_message, all) == GW_REDIS_OK)
		all->subscribed = 1;
	if (env->metrics_reg) {
		if (gw_metrics_register(env->metrics_reg, session_render_metrics, all) != 0) {
			snprintf(err, errlen, "too many metrics renderers");
			goto out;
		}
		all->registered = 1;
	}
	*n = cfg->naccounts;
	ret = all->a;
	all = NULL;
out:
	if (all)
		gw_session_accounts_free(all->a, all->n);
	return ret;
}

void gw_session_accounts_free(struct gw_account_rt *v, size_t n)
{
	struct gw_sessions *all;

	if (!v)
		return;
	all = v->all;
	if (all->subscribed)
		gw_redis_unsubscribe(all->env.redis, "session");
	all->subscribed = 0;
	if (all->registered)
		gw_metrics_unregister(all->env.metrics_reg, session_render_metrics, all);
	for (size_t i = 0; i < n && i < all->n; i++) {
		struct gw_account_rt *a = &v[i];

		/* Stopped mid-login: the lock is freed at once rather than left to expire. */
		if (a->ss.locked && all->shared && !all->dead)
			session_ss_unlock(a);
		if (a->login)
			gw_up_cancel(a->login);
		a->login = NULL;
		if (a->waiters.next) {
			while (a->waiters.next != &a->waiters)
				session_waiter_unlink(a->waiters.next);
		}
		if (a->timer)
			event_free(a->timer);
		if (a->ss.timer)
			event_free(a->ss.timer);
		if (a->ss.renew)
			event_free(a->ss.renew);
		a->ss.renew = NULL;
		a->ss.phase = GW_SS_IDLE;
		explicit_bzero(a->ss.stale_fp, sizeof a->ss.stale_fp);
		if (a->auth_header) {
			explicit_bzero(a->auth_header, strlen(a->auth_header));
			free(a->auth_header);
		}
		explicit_bzero(a->cookie, sizeof a->cookie);
		free(a->name);
		free(a->base_url);
		a->name = a->base_url = NULL;
	}
	explicit_bzero(all->seal_key, sizeof all->seal_key);
	if (all->ss_inflight) {
		/* Redis commands still out look at the set when they answer: the last one frees it
		 * (the client drops them without an answer only when it is freed itself). */
		all->dead = 1;
		return;
	}
	free(all);
}

/* ---- the auth provider and metrics ---- */

static int session_op_acquire(struct gw_up_account *up, struct gw_up_waiter *w, const char **cookie,
			      uint64_t *gen, const char **err)
{
	return gw_session_acquire(session_rt(up), w, cookie, gen, err);
}

static int session_op_unauthorized(struct gw_up_account *up, uint64_t gen, struct gw_up_waiter *w,
				   const char **cookie, uint64_t *gen_out, const char **err)
{
	return gw_session_unauthorized(session_rt(up), gen, w, cookie, gen_out, err);
}

const struct gw_up_auth_ops gw_session_auth_ops = {
	session_op_acquire, session_op_unauthorized, gw_session_cancel_wait,
};

static void session_render_metrics(void *arg, struct gw_metrics_out *o)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
		{ "session_logins_total", "Upstream logins started (first, re-login, refresh, retry).",
		  offsetof(struct gw_session_counters, logins) },
		{ "session_refreshes_total", "Of those, refreshes ahead of cookie expiry.",
		  offsetof(struct gw_session_counters, refreshes) },
		{ "session_failures_total", "Upstream logins that yielded no cookie.",
		  offsetof(struct gw_session_counters, failures) },
		{ "session_reauths_total", "401s on the current session that forced a re-login.",
		  offsetof(struct gw_session_counters, reauths) },
		{ "session_waiters_rejected_total", "Calls refused because the login wait list was full.",
		  offsetof(struct gw_session_counters, waiters_rejected) },
	};
	static const enum gw_session_state states[] = {
		GW_SESSION_NEVER, GW_SESSION_LOGGING_IN, GW_SESSION_OK, GW_SESSION_BACKOFF,
		GW_SESSION_REJECTED,
	};
	const struct gw_sessions *all = arg;
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 40];

	for (size_t c = 0; c < sizeof ctr / sizeof ctr[0]; c++) {
		gw_metrics_family(o, ctr[c].name, "counter", ctr[c].help);
		for (size_t i = 0; i < all->n; i++) {
			uint64_t n;

			memcpy(&n, (const char *)&all->a[i].n + ctr[c].off, sizeof n);
			gw_metrics_label(all->a[i].name, l, sizeof l);
			snprintf(labels, sizeof labels, "account=\"%s\"", l);
			gw_metrics_value(o, ctr[c].name, labels, n);
		}
	}
	if (all->shared) {
		static const struct {
			const char *what;
			size_t off;
		} sh[] = {
			{ "adopted", offsetof(struct gw_ss_counters, adopted) },
			{ "login", offsetof(struct gw_ss_counters, login) },
			{ "lock_lost", offsetof(struct gw_ss_counters, lock_lost) },
			{ "fallback", offsetof(struct gw_ss_counters, fallback) },
			{ "open_failed", offsetof(struct gw_ss_counters, open_failed) },
			{ "wait_timeout", offsetof(struct gw_ss_counters, wait_timeout) },
			{ "publish_failed", offsetof(struct gw_ss_counters, publish_failed) },
			{ "woken", offsetof(struct gw_ss_counters, woken) },
			{ "lock_renewed", offsetof(struct gw_ss_counters, lock_renewed) },
			{ "lock_expired", offsetof(struct gw_ss_counters, lock_expired) },
		};

		gw_metrics_family(o, "session_shared_total", "counter",
				  "Shared upstream session (Redis): cookies adopted from another replica, "
				  "logins under the cluster lock, waits on another's lock, local "
				  "fallbacks, stored values that did not open, wait timeouts, failed writes, "
				  "waits ended at once by another replica's login message, renewals of "
				  "our login lock sent and found expired.");
		for (size_t i = 0; i < all->n; i++) {
			gw_metrics_label(all->a[i].name, l, sizeof l);
			for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
				uint64_t v;

				memcpy(&v, (const char *)&all->a[i].ss.n + sh[k].off, sizeof v);
				snprintf(labels, sizeof labels, "account=\"%s\",what=\"%s\"", l,
					 sh[k].what);
				gw_metrics_value(o, "session_shared_total", labels, v);
			}
		}
	}
	gw_metrics_family(o, "session_state", "gauge",
			  "1 for the current upstream session state of each account.");
	for (size_t i = 0; i < all->n; i++) {
		gw_metrics_label(all->a[i].name, l, sizeof l);
		for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
			snprintf(labels, sizeof labels, "account=\"%s\",state=\"%s\"", l,
				 session_state_name(states[k]));
			gw_metrics_value(o, "session_state", labels, all->a[i].state == states[k]);
		}
	}
}
