/*
 * session: the gateway's login to each upstream account and the dmsess cookie it gets back.
 *
 * Per account: {cookie, expires_at, generation, state}. Everything runs on the loop thread.
 *
 * - Login is `GET {base_url}/session/auth` with `Authorization: Basic ...`; the first dmsess
 *   Set-Cookie wins; its lifetime comes from Expires/Max-Age (missing: GW_SESSION_DEFAULT_TTL_S).
 * - Exactly one login is in flight per account. Callers that need a cookie while there is none
 *   queue a waiter (at most GW_SESSION_MAX_WAITERS; past that they fail at once, counted) and are
 *   each released once, with the cookie or with an error.
 * - The cookie is refreshed ahead of expiry (about 2/3 of its lifetime, jittered, or
 *   upstream.session_refresh_s) by a libevent timer; traffic keeps using the old cookie meanwhile.
 * - A 401 on the current generation drops the cookie and triggers the (single) re-login; a 401 on
 *   an older generation just retries with the current cookie.
 * - Login failures back off exponentially with full jitter (GW_SESSION_BACKOFF_MIN_MS ..
 *   GW_SESSION_BACKOFF_MAX_MS); the retry runs from the timer (or from the first caller after
 *   it is due). While backing off without a valid cookie callers fail at once (no hang):
 *   401 -> state "rejected", "upstream rejected account credentials"; anything else -> "backoff".
 *
 * - With a Redis client and a seal key in struct gw_session_env, logins are shared by the
 *   replicas: see session_shared.h (one login per account cluster-wide, local fallback).
 *
 * Secrets: only the precomputed Basic header is kept (the secret itself is wiped right after
 * it is read); it is wiped on free. No error text produced here ever contains a secret or cookie.
 */
#ifndef A3D_AUTH_SESSION_H
#define A3D_AUTH_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "auth/upstream/session_shared.h"
#include "gateway/upstream/upstream.h"

#define GW_SESSION_MAX_WAITERS 4096		/* callers queued behind one login, per account */
#define GW_SESSION_COOKIE_MAX GW_UP_COOKIE_MAX	/* dmsess value bytes incl. NUL; longer is a failed login */
#define GW_SESSION_ERR_MAX 160			/* last login error text */
#define GW_SESSION_DEFAULT_TTL_S 3600		/* cookie without Expires/Max-Age */
#define GW_SESSION_BACKOFF_MIN_MS 1000
#define GW_SESSION_BACKOFF_MAX_MS 60000
#define GW_SESSION_REFRESH_MIN_MS 1000		/* never refresh more often than this */
#define GW_SESSION_EXPIRY_MARGIN_MS 500		/* a cookie this close to expiry counts as expired */

struct gw_up_call;
struct gw_account_cfg;
struct gw_config;
struct gw_metrics_reg;
struct gw_sessions;
struct gw_redis;
struct event;
struct event_base;

enum gw_session_state {
	GW_SESSION_NEVER = 0,		/* no login tried yet */
	GW_SESSION_LOGGING_IN,		/* first login or a re-login without a usable cookie */
	GW_SESSION_OK,			/* cookie valid (a refresh may be in flight) */
	GW_SESSION_BACKOFF,		/* last login failed (connection/5xx); waiting to retry */
	GW_SESSION_REJECTED		/* last login got 401: wrong client id/secret */
};

/*
 * A caller waiting for a session is a struct gw_up_waiter (gateway/upstream/upstream.h), embedded
 * in the caller's own struct (no allocation); it is queued by gw_session_acquire() /
 * gw_session_unauthorized() returning GW_SESSION_WAIT and then released exactly once through fn
 * (cookie set and err NULL, or cookie NULL and err set), unless gw_session_cancel_wait() is
 * called first. cookie/err are valid only during fn.
 */

/* What the sessions need from their surroundings (copied; the pointees outlive the accounts). */
struct gw_session_env {
	struct event_base *base;
	struct gw_upstream *up;			/* logins go through the engine */
	const struct gw_config *const *cfg;	/* the current configuration (refresh interval) */
	struct gw_metrics_reg *metrics_reg;	/* the session families register here (may be NULL) */
	/* Shared mode (session_shared.h): both set, or the sessions stay local as without Redis. */
	struct gw_redis *redis;			/* the cluster client (may be NULL) */
	const uint8_t *seal_key;		/* GW_SEAL_KEY_LEN bytes, copied (the caller wipes its
						 * own); NULL = no sharing */
	const char *instance;			/* this replica's id: the lock's value (NULL: "gateway") */
	struct gw_otlp *otlp;			/* each login is a span here, the root of its own trace,
						 * its attempts its children (issue 20); NULL: off */
};

struct gw_session_counters {
	uint64_t logins;		/* logins started (first, re-login, refresh, retry) */
	uint64_t refreshes;		/* of which: refreshes ahead of expiry */
	uint64_t failures;		/* logins that did not yield a cookie */
	uint64_t reauths;		/* 401s on the current generation that forced a re-login */
	uint64_t waiters_rejected;	/* callers refused because the wait list was full */
};

struct gw_account_rt {
	struct gw_up_account up;	/* what the transport sees (idx, name, base_url, auth ops);
					 * first, so the provider's callbacks can convert back */
	struct gw_sessions *all;	/* the set this account belongs to */
	char *name;
	char *base_url;
	char *auth_header;		/* "Authorization: Basic ..."; wiped on free */

	enum gw_session_state state;
	char cookie[GW_SESSION_COOKIE_MAX];	/* "" when none */
	uint64_t generation;		/* bumped by every successful login */
	int64_t expires_us;		/* monotonic (gw_clock_now_us) */
	struct gw_up_call *login;	/* the login in flight, or NULL */
	struct event *timer;		/* refresh or retry */

	struct gw_up_waiter waiters;	/* list head (sentinel) */
	size_t nwaiters;

	unsigned fail_streak;		/* consecutive failed logins, drives the backoff */
	int64_t retry_at_us;		/* no new login before this while failing */
	char last_error[GW_SESSION_ERR_MAX];
	uint64_t rng;			/* jitter; xorshift64 state */
	struct gw_session_counters n;
	struct gw_ss_acct ss;		/* the shared session's state (shared mode only) */
	/* Issue 20, with span export on: the login in flight as a span (a root of its own: it
	 * serves every caller waiting, none of them caused it) and when it started. */
	struct gw_trace login_trace;
	int64_t login_start_us;
};

/*
 * Builds one runtime per boot->accounts entry, index-aligned, reading each secret through
 * auth/upstream/secret, and registers the session families of /metrics. On failure returns NULL
 * with a clear message in err naming the account (never the secret). No login is started here
 * (see gw_session_start).
 */
struct gw_account_rt *gw_session_accounts_new(const struct gw_session_env *env,
					      const struct gw_config *boot, size_t *n, char *err,
					      size_t errlen);
/*
 * Cancels logins in flight, detaches queued waiters (their fn is NOT called), stops timers,
 * wipes the Basic headers and cookies. Call it BEFORE gw_up_free(). NULL is a no-op.
 */
void gw_session_accounts_free(struct gw_account_rt *a, size_t n);

/*
 * Re-reads the account's client secret (SIGHUP) through auth/secret and swaps in the new Basic
 * header at once; the next login uses it (the current cookie is kept: no outage). A failure
 * (unreadable, group/world-accessible, empty, too long) keeps the old secret. An account whose
 * last login was rejected gets to try again at once with a changed secret. fingerprint receives
 * gw_secret_fingerprint() of the secret read (may be NULL). Returns 1 changed, 0 unchanged, or -1
 * with a message in err (never the secret).
 */
int gw_session_reload_secret(struct gw_account_rt *a, const struct gw_account_cfg *ac,
			     char fingerprint[13], char *err, size_t errlen);

/* Starts the first login now instead of on the first call (optional). */
void gw_session_start(struct gw_account_rt *a);

/* "ok", "logging_in", "backoff", "rejected", "never"; and the account's name. */
const char *gw_session_state(const struct gw_account_rt *a);
const char *gw_session_name(const struct gw_account_rt *a);

enum gw_session_rc {
	GW_SESSION_READY = GW_UP_AUTH_READY,	/* *cookie and *generation set; valid until control
						 * returns to the loop */
	GW_SESSION_WAIT = GW_UP_AUTH_WAIT,	/* w queued; w->fn will run later */
	GW_SESSION_FAIL = GW_UP_AUTH_FAIL	/* *err set (static or account-owned text), w not queued */
};

/* The auth provider the accounts' struct gw_up_account carries (the three functions below). */
extern const struct gw_up_auth_ops gw_session_auth_ops;

/* A cookie for a request, now or later. w->fn must be set. */
int gw_session_acquire(struct gw_account_rt *a, struct gw_up_waiter *w, const char **cookie,
		       uint64_t *generation, const char **err);
/*
 * The request sent with generation got 401. If that is still the current generation the cookie
 * is dropped and a re-login starts (or is joined); otherwise the current cookie is returned.
 * Same results as gw_session_acquire.
 */
int gw_session_unauthorized(struct gw_account_rt *a, uint64_t generation,
			    struct gw_up_waiter *w, const char **cookie,
			    uint64_t *generation_out, const char **err);
/* Removes a queued waiter; no-op when not queued. */
void gw_session_cancel_wait(struct gw_up_waiter *w);

/* ---- pure parts (unit-tested) ---- */

/* Delay before login retry number attempt (1 = after the first failure): full jitter in
 * [GW_SESSION_BACKOFF_MIN_MS, min(GW_SESSION_BACKOFF_MAX_MS, MIN << (attempt-1))], from rnd. */
int64_t gw_session_backoff_ms(unsigned attempt, uint64_t rnd);

/* When to refresh a cookie that lives lifetime_ms: refresh_s * 1000 when refresh_s > 0, else a
 * point in [0.6, 0.7] of the lifetime chosen by rnd; never under GW_SESSION_REFRESH_MIN_MS and
 * never at or past the lifetime when that allows (tiny lifetimes refresh at half). */
int64_t gw_session_refresh_delay_ms(int64_t lifetime_ms, long refresh_s, uint64_t rnd);

/* What a caller asking for a cookie should do, from the account's current facts. */
enum gw_session_decision {
	GW_SD_USE_COOKIE,		/* a valid cookie is there */
	GW_SD_WAIT,			/* a login is in flight: queue */
	GW_SD_START_LOGIN,		/* no cookie, no login, not backing off: log in and queue */
	GW_SD_FAIL			/* backing off (or rejected) without a cookie: fail at once */
};
struct gw_session_facts {
	int has_cookie;
	int64_t expires_us;
	int login_in_flight;
	int64_t retry_at_us;		/* 0 = not backing off */
	int64_t now_us;
};
enum gw_session_decision gw_session_decide(const struct gw_session_facts *f);

/* 1 when a 401 seen on generation seen should trigger a re-login (it is the current one). */
int gw_session_401_is_current(uint64_t current, uint64_t seen);

#endif
