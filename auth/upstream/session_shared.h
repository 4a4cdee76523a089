/*
 * session_shared: one upstream session per account across replicas, on Redis (issue 16).
 *
 * With a Redis client and a seal key (struct gw_session_env), an account's login becomes:
 *
 *   GET <prefix>session:<account>          a sealed {expiry, cookie} another replica wrote
 *     usable and newer than ours  -> adopt it: no login ("adopted")
 *     else SET <prefix>session:<account>:lock <instance> NX PX GW_SS_LOCK_MS
 *       won   -> log in upstream, the lock renewed (PEXPIRE if still ours) every
 *                GW_SS_LOCK_RENEW_MS while the login runs, so that a holder that died or was
 *                stopped mid-login holds the others back GW_SS_LOCK_MS at most (a stopped one
 *                frees it at once); then one script writes the sealed cookie (PX its lifetime),
 *                deletes the lock if still ours and PUBLISHes the account name on
 *                <prefix>session ("login")
 *       lost  -> poll: the same GET / SET NX again after GW_SS_POLL_MIN_MS, doubling to
 *                GW_SS_POLL_MAX_MS, until a newer cookie shows (adopted) or the lock is free
 *                (the holder failed or died: we log in) ("lock_lost", once per login); the
 *                holder's PUBLISH of the account name (the replicas subscribe to
 *                <prefix>session) wakes a waiting replica at once ("woken"): polling stays for
 *                what pub/sub loses (at most once)
 *
 * "Newer" means: not the cookie this replica last used (a 401 on it, or the one being refreshed,
 * compared by SHA-256 fingerprint) and, for a refresh, living longer than ours. A 401 thus
 * triggers one re-login cluster-wide: the replicas that see it find either the stale cookie
 * (then one of them takes the lock) or the new one (adopted).
 *
 * Redis unreachable, or any command failing: the login goes on locally exactly as without Redis
 * ("fallback"); the next login tries Redis again, so sharing resumes by itself. A wait longer than
 * GW_SS_WAIT_MAX_MS also ends in a local login ("wait_timeout"). Nothing blocks the loop: every
 * step is an asynchronous command with the client's own deadline.
 *
 * Secrets: the cookie is stored sealed only (auth/upstream/seal.h, AAD = the full key name), so
 * Redis access alone never grants upstream access, and a value moved to another account's key
 * does not open. A value that does not open (another seal key: rotation; tampering) counts as
 * "open_failed" and is replaced by a fresh login. Cookie, key and plaintext buffers are wiped;
 * nothing here logs them or puts them in a key name.
 */
#ifndef A3D_AUTH_SESSION_SHARED_H
#define A3D_AUTH_SESSION_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "auth/upstream/seal.h"

#define GW_SS_LOCK_MS 3000		/* login lock lifetime, renewed while the login runs ... */
#define GW_SS_LOCK_RENEW_MS 1000	/* ... this often: a holder that died mid-login delays the
					 * others GW_SS_LOCK_MS at most */
#define GW_SS_WAIT_MAX_MS 30000		/* waiting for another replica's login, then log in here */
#define GW_SS_POLL_MIN_MS 25
#define GW_SS_POLL_MAX_MS 250
#define GW_SS_ADOPT_MIN_MS 2000		/* never adopt a cookie this close to its expiry */
#define GW_SS_FP_LEN 32			/* SHA-256 fingerprint of a cookie */
#define GW_SS_PLAIN_MAX (24 + 512)	/* "expiry_ms:" + a cookie (GW_UP_COOKIE_MAX) */
#define GW_SS_SEALED_MAX (GW_SS_PLAIN_MAX + GW_SEAL_OVERHEAD)

/* Counters per account (session_shared_total{what=...}). */
struct gw_ss_counters {
	uint64_t adopted;		/* a cookie another replica logged in for was taken */
	uint64_t login;			/* logins done here under the cluster lock, then shared */
	uint64_t lock_lost;		/* logins another replica held the lock for (we waited) */
	uint64_t fallback;		/* logins done locally: Redis unreachable or a command failed */
	uint64_t open_failed;		/* a stored value did not open (seal key rotated, tampered) */
	uint64_t wait_timeout;		/* waited GW_SS_WAIT_MAX_MS, then logged in locally */
	uint64_t publish_failed;	/* the sealed cookie could not be written */
	uint64_t woken;			/* waits ended at once by another replica's login message */
	uint64_t lock_renewed;		/* renewals of our lock sent while logging in */
	uint64_t lock_expired;		/* renewals that found the lock no longer ours */
};

/* The shared part of one account (inside struct gw_account_rt). */
enum gw_ss_phase {
	GW_SS_IDLE = 0,
	GW_SS_GETTING,			/* GET in flight */
	GW_SS_LOCKING,			/* SET NX in flight */
	GW_SS_WAITING			/* another replica holds the lock: poll timer armed */
};
struct gw_ss_acct {
	enum gw_ss_phase phase;
	int refresh;			/* this cycle refreshes a cookie still valid */
	int locked;			/* the login in flight holds the cluster lock */
	int lost_counted;		/* lock_lost counted for this cycle */
	int has_stale;
	uint8_t stale_fp[GW_SS_FP_LEN];	/* the cookie not to adopt again */
	int64_t deadline_us;		/* of this cycle's waiting */
	int64_t poll_ms;		/* next poll delay */
	struct event *timer;		/* poll timer */
	struct event *renew;		/* lock renewal while locked (persistent) */
	struct gw_ss_counters n;
};

/* ---- pure parts (unit-tested) ---- */

/* SHA-256 of s[0..len) into fp. */
void gw_ss_fingerprint(const char *s, size_t len, uint8_t fp[GW_SS_FP_LEN]);

/*
 * Seals "expires_wall_ms:cookie" bound to keyname (the full Redis key) into out (cap >=
 * GW_SS_SEALED_MAX). Returns the length, or -1. The plaintext is wiped.
 */
long gw_ss_seal(const uint8_t key[GW_SEAL_KEY_LEN], const char *keyname, const char *cookie,
		int64_t expires_wall_ms, uint8_t *out, size_t cap);
/*
 * Opens what gw_ss_seal made: cookie (cap bytes incl. NUL) and its expiry. 0, or -1 (does not
 * open, bad format, empty or too long cookie) with cookie wiped.
 */
int gw_ss_open(const uint8_t key[GW_SEAL_KEY_LEN], const char *keyname, const uint8_t *in,
	       size_t inlen, char *cookie, size_t cap, int64_t *expires_wall_ms);

/* What to do at each step of a shared login. */
enum gw_ss_step {
	GW_SS_AFTER_GET,		/* the GET answered */
	GW_SS_AFTER_LOCK		/* the SET NX answered */
};
enum gw_ss_action {
	GW_SS_ADOPT,			/* take the stored cookie */
	GW_SS_LOCK,			/* try to take the lock */
	GW_SS_LOGIN,			/* the lock is ours: log in and share */
	GW_SS_WAIT,			/* another replica logs in: poll again later */
	GW_SS_FALLBACK,			/* Redis failed: log in locally */
	GW_SS_TIMEOUT			/* waited too long: log in locally */
};
struct gw_ss_facts {
	int redis_error;		/* the command failed (no reply, error reply, bad reply) */
	int found;			/* GET: a value is stored */
	int opened;			/* GET: and it opened with our key and this account's AAD */
	int same_as_stale;		/* GET: it is the cookie we last used */
	int64_t remaining_ms;		/* GET: its remaining lifetime */
	int refresh;			/* we still hold a valid cookie */
	int64_t ours_remaining_ms;	/* its remaining lifetime */
	int lock_won;			/* SET NX: OK */
	int64_t now_us, deadline_us;	/* the cycle's waiting bound */
};
enum gw_ss_action gw_ss_decide(enum gw_ss_step step, const struct gw_ss_facts *f);
const char *gw_ss_action_name(enum gw_ss_action a);

#endif
