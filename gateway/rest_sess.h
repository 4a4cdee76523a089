/*
 * rest_sess: the REST facade's own sessions, what GET /session/auth hands out as the `dmsess`
 * cookie (issue 18). A client logs in the way it logs in upstream, HTTP Basic with the tenant's
 * name as the user and one of its API keys as the password, and gets a gateway cookie; the
 * upstream cookie and secret never leave the gateway.
 *
 * A token is 32 random bytes sent as URL-safe base64 without '=' (43 characters: the JS SDK
 * splits Set-Cookie on '='). The sessions live in the state store (gateway/state/store.h,
 * "REST facade sessions"): only the token's SHA-256 is written, with the tenant's name, the
 * SHA-256 of the key it was opened with and its expiry. SHA-256 and not a keyed hash: every
 * replica must find the row of a token another replica issued, and 32 random bytes need no key
 * to stay unguessable. So a session opened through one replica works through every replica
 * sharing the PostgreSQL store, and, with the SQLite file, after a restart.
 *
 * Every call made with a session looks its key up in the current key ring (gateway/call/call.h,
 * local calls), so a key removed by a reload stops working on a replica as soon as that replica
 * has reloaded; the replica that reloads also removes the key's sessions from the store
 * (gw_rest_sess_revoke).
 *
 * The cache: polling clients present the same cookie on every call, and a PostgreSQL lookup is a
 * network round trip, so the answers of the last GW_REST_SESS_CACHE tokens (by their hash, a
 * direct-mapped table) are believed for GW_REST_SESS_CACHE_TTL_MS. That is the bound on how long
 * a session removed from the store by another replica (revoked there, or logged out) still works
 * here when this replica's key ring still has its key: at most GW_REST_SESS_CACHE_TTL_MS. A
 * session never outlives its expiry, cached or not. Only found sessions are cached: an unknown
 * cookie asks the store every time (a forged one would otherwise take a slot).
 *
 * Callbacks: open and find end by calling cb exactly once, possibly before they return (a cache
 * hit, an in-process store). After gw_rest_sess_free no callback runs; operations the store
 * still holds complete into nothing.
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_REST_SESS_H
#define A3D_GATEWAY_REST_SESS_H

#include <stddef.h>
#include <stdint.h>

#define GW_REST_SESS_TOKEN_BYTES 32
#define GW_REST_SESS_TOKEN_LEN 43	/* base64url of 32 bytes, no padding */
#define GW_REST_SESS_CACHE 4096		/* sessions remembered in the process (a power of two) */
#define GW_REST_SESS_CACHE_TTL_MS 2000	/* how long a remembered session is believed */
#define GW_REST_SESS_MAX_OPS 4096	/* store operations in flight; more are refused (counted) */

struct gw_store;
struct gw_rest_sess;

struct gw_rest_sess_stats {
	uint64_t opened;
	uint64_t refused_full;		/* the tenant has GW_STORE_SESS_TENANT_MAX sessions */
	uint64_t unknown;		/* cookies that name no session (or an expired one) */
	uint64_t store_errors;		/* store operations that failed (the call answers 503) */
	uint64_t refused_busy;		/* GW_REST_SESS_MAX_OPS in flight: refused before the store */
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t revoked;		/* sessions removed because their key was removed */
	uint64_t expired;		/* rows removed by sweeps */
	size_t cached;
	size_t cache_max;
};

enum {
	GW_REST_SESS_OK = 0,
	GW_REST_SESS_UNKNOWN = 1,	/* find: no such session, or expired */
	GW_REST_SESS_FULL = 2,		/* open: the tenant has too many sessions */
	GW_REST_SESS_ERROR = -1		/* the store failed: err says why (for the log, not clients) */
};

struct gw_rest_sess_found {
	int rc;				/* GW_REST_SESS_OK, _UNKNOWN or _ERROR */
	const char *tenant;		/* OK: valid during the callback */
	const uint8_t *key_sha256;	/* OK: 32 bytes, valid during the callback */
	const char *err;		/* ERROR */
};
typedef void (*gw_rest_sess_find_fn)(void *arg, const struct gw_rest_sess_found *f);
/* rc GW_REST_SESS_OK with token (NUL-terminated, valid during the callback; the caller wipes
 * what it copies), _FULL or _ERROR with err. */
typedef void (*gw_rest_sess_open_fn)(void *arg, int rc, const char *token, const char *err);

/* Sessions in store (borrowed: it must outlive the result). cache_slots: 0 = GW_REST_SESS_CACHE,
 * else a power of two; cache_ttl_ms < 0 = GW_REST_SESS_CACHE_TTL_MS. NULL when out of memory. */
struct gw_rest_sess *gw_rest_sess_new(struct gw_store *store, size_t cache_slots, long cache_ttl_ms);
void gw_rest_sess_free(struct gw_rest_sess *s);		/* NULL is fine */

/* Opens a session for tenant with the key's SHA-256, living ttl_ms from now_ms. */
void gw_rest_sess_open(struct gw_rest_sess *s, const char *tenant, const uint8_t key_sha256[32],
		       int64_t now_ms, int64_t ttl_ms, gw_rest_sess_open_fn cb, void *arg);
/* The session of token[0..len) at now_ms. */
void gw_rest_sess_find(struct gw_rest_sess *s, const char *token, size_t len, int64_t now_ms,
		       gw_rest_sess_find_fn cb, void *arg);
/* Ends the session of token here and in the store (its key no longer works). */
void gw_rest_sess_drop(struct gw_rest_sess *s, const char *token, size_t len);
/* Ends every session opened with the key (a reload removed it), here and in the store. */
void gw_rest_sess_revoke(struct gw_rest_sess *s, const uint8_t key_sha256[32]);
/* Removes at most GW_STORE_SESS_EXPIRE_MAX sessions expired at now_ms from the store. */
void gw_rest_sess_sweep(struct gw_rest_sess *s, int64_t now_ms);
void gw_rest_sess_stats(const struct gw_rest_sess *s, struct gw_rest_sess_stats *out);

/* The dmsess value in a Cookie header (borrowed from header: *len bytes at the returned
 * pointer), or NULL. The value ends at ';', ',' or a space: clients send "dmsess=<v>; Path". */
const char *gw_rest_sess_cookie(const char *header, size_t *len);

#endif
