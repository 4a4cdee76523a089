/*
 * rest_sess: the REST facade's own sessions, what GET /session/auth hands out as the `dmsess`
 * cookie (issue 18). A client logs in the way it logs in upstream, HTTP Basic with the tenant's
 * name as the user and one of its API keys as the password, and gets a gateway cookie; the
 * upstream cookie and secret never leave the gateway.
 *
 * A token is 32 random bytes sent as URL-safe base64 without '=' (43 characters: the JS SDK
 * splits Set-Cookie on '='). Only its SHA-256 is kept, with the tenant's name, the SHA-256 of the
 * key it was opened with and its expiry. Every call made with it looks that key up in the current
 * key ring (gateway/call/call.h, local calls), so a key removed by a reload ends its sessions at
 * once; they are dropped from the table when next seen.
 *
 * This table lives in the process: sessions do not survive a restart and do not work through
 * another replica yet. The state store (gateway/state/store.h) is where they belong for several
 * replicas; docs/operations.md ("REST facade") says so.
 *
 * Bounded: at most max sessions; when full, expired ones are dropped first, else the open is
 * refused (counted). Loop thread only.
 */
#ifndef A3D_GATEWAY_REST_SESS_H
#define A3D_GATEWAY_REST_SESS_H

#include <stddef.h>
#include <stdint.h>

#define GW_REST_SESS_TOKEN_BYTES 32
#define GW_REST_SESS_TOKEN_LEN 43	/* base64url of 32 bytes, no padding */
#define GW_REST_SESS_MAX_TENANT 128	/* a tenant name kept with a session */
#define GW_REST_SESS_BUCKETS 4096

struct gw_rest_sess;

struct gw_rest_sess_stats {
	uint64_t opened;
	uint64_t refused_full;		/* the table was full of live sessions */
	uint64_t expired;		/* dropped at or after their expiry */
	uint64_t unknown;		/* cookies that name no session */
	size_t live;
	size_t max;
};

struct gw_rest_sess *gw_rest_sess_new(size_t max);
void gw_rest_sess_free(struct gw_rest_sess *s);		/* NULL is fine */

/* Opens a session for tenant with the key's SHA-256, living ttl_ms from now_ms; the token is
 * written to out (GW_REST_SESS_TOKEN_LEN + 1 bytes, NUL-terminated). 0, or -1 (full, no random
 * bytes, tenant name too long). */
int gw_rest_sess_open(struct gw_rest_sess *s, const char *tenant, const uint8_t key_sha256[32],
		      int64_t now_ms, int64_t ttl_ms, char out[GW_REST_SESS_TOKEN_LEN + 1]);
/* The session of token[0..len): 0 with *tenant (valid until the next call on s) and key_sha256
 * filled, or -1 (unknown or expired: an expired one is dropped). */
int gw_rest_sess_find(struct gw_rest_sess *s, const char *token, size_t len, int64_t now_ms,
		      const char **tenant, uint8_t key_sha256[32]);
/* Ends the session of token (its key no longer works). */
void gw_rest_sess_drop(struct gw_rest_sess *s, const char *token, size_t len);
void gw_rest_sess_stats(const struct gw_rest_sess *s, struct gw_rest_sess_stats *out);

/* The dmsess value in a Cookie header (borrowed from header: *len bytes at the returned
 * pointer), or NULL. The value ends at ';', ',' or a space: clients send "dmsess=<v>; Path". */
const char *gw_rest_sess_cookie(const char *header, size_t *len);

#endif
