/*
 * sim_auth: accounts (client id + secret), HTTP Basic parsing, dmsess sessions and cookies.
 *
 * Secrets are compared in constant time and never logged. A session belongs to one account and
 * expires --session-ttl seconds after login (or at POST /_sim/sessions/revoke). The table holds
 * SIM_MAX_SESSIONS; a login into a full table first drops expired sessions, then the oldest.
 */
#ifndef A3D_SIM_AUTH_H
#define A3D_SIM_AUTH_H

#include <stddef.h>

struct sim;
struct sim_req;
struct sim_resp;

#define SIM_AUTH_COOKIE "dmsess"
#define SIM_AUTH_HEADER_MAX 1024	/* Authorization header bytes considered */

/* "Basic base64(id:secret)" → id, secret. 0 on success, -1 on garbage, bad base64, no colon,
 * empty id or a value that does not fit. */
int sim_auth_parse_basic(const char *hdr, char *id, size_t idlen, char *secret, size_t secretlen);

/* Value of cookie name in a Cookie header ("a=b; dmsess=v; Path"); the value ends at ';', ',' or
 * space. 0 when found non-empty and it fits, else -1. */
int sim_auth_cookie_value(const char *hdr, const char *name, char *out, size_t outlen);

/* "ID:SECRET" → a new account (or the secret of an existing id replaced). 0 or -1. */
int sim_auth_account_add(struct sim *s, const char *spec);

/* Account index for these credentials, -1 when unknown or wrong. */
int sim_auth_check_basic(struct sim *s, const char *authz_hdr);

/* Creates a session for account; writes the whole Set-Cookie value into out. 0 or -1. */
int sim_auth_login(struct sim *s, int account, double now, char *out, size_t outlen);

/* Account of an API request: a valid, unexpired dmsess cookie; -1 otherwise. The document
 * (API 1) takes Basic only at GET /session/auth and the cookie on every other call, so Basic is
 * ignored here unless s->cfg.lenient_auth (--lenient-auth) asks for the old leniency. */
int sim_auth_request(struct sim *s, const char *cookie_hdr, const char *authz_hdr, double now);

void sim_auth_revoke_all(struct sim *s);
void sim_auth_expire(struct sim *s, double now);	/* frees expired sessions */
void sim_auth_free(struct sim *s);

/* GET /session/auth: Basic → 200 + Set-Cookie, else 401. */
void sim_auth_h_session(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

/* RFC 7231 date ("Sat, 28 Nov 2026 07:15:00 GMT") of wall time t. */
void sim_auth_http_date(double t, char *out, size_t outlen);

#endif
