/*
 * webhook_token: the secret path segment of the webhook URL (issue 13). The upstream's delivery
 * "signature" is the account's client id, which is not a secret, so anyone who can reach the
 * HTTP listener could post deliveries. With webhooks.path_token_file set, deliveries are POSTed
 * to <path_prefix><token>/<account> and only the upstream, which the gateway registers that URL
 * with (gateway/svc/webhook_reg.h), knows it.
 *
 * The token comes from a file, a Secret shared by every replica (never generated per process:
 * every replica must accept what the one registered URL carries). The file follows the client
 * secret rules (auth/upstream/secret.h: regular file, mode & 077 == 0); after trailing \r and \n
 * are stripped it must be GW_WEBHOOK_TOKEN_MIN..GW_WEBHOOK_TOKEN_MAX bytes of [A-Za-z0-9-._~]
 * (a path segment that needs no escaping), e.g. `openssl rand -hex 32`.
 *
 * Rotation: a SIGHUP that finds another token makes it current and keeps the previous one valid
 * for webhooks.path_token_grace_s (deliveries already on their way, replicas not yet reloaded);
 * the registration then moves the upstream endpoint to the new URL. Tokens are compared in
 * constant time, wiped when dropped, and never logged: logs carry gw_secret_fingerprint().
 *
 * Pure but for the file read; loop thread only.
 */
#ifndef A3D_GATEWAY_WEBHOOK_TOKEN_H
#define A3D_GATEWAY_WEBHOOK_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define GW_WEBHOOK_TOKEN_MIN 32		/* bytes: 32 hex digits are 128 bits */
#define GW_WEBHOOK_TOKEN_MAX 256
#define GW_WEBHOOK_TOKEN_FP 13		/* "s:" + 10 hex digits + NUL */

struct gw_webhook_token {
	int set;				/* a token is configured */
	char cur[GW_WEBHOOK_TOKEN_MAX + 1];
	size_t cur_len;
	char cur_fp[GW_WEBHOOK_TOKEN_FP];
	char prev[GW_WEBHOOK_TOKEN_MAX + 1];	/* the one before a rotation, while prev_until_ms */
	size_t prev_len;
	char prev_fp[GW_WEBHOOK_TOKEN_FP];
	int64_t prev_until_ms;			/* monotonic ms; 0 = no previous token */
};

/* 1 when s[0..len) is a usable token (length and characters as above). */
int gw_webhook_token_ok(const char *s, size_t len);

/* Reads path: 0 with the token in out (NUL-terminated, *len bytes), or -1 with err (the file's
 * problem, never its contents). out must hold GW_WEBHOOK_TOKEN_MAX + 1 bytes. */
int gw_webhook_token_read(const char *path, char *out, size_t *len, char *err, size_t errlen);

/* At start: path NULL = no token (0, t->set 0). -1 with err when the file is unusable: the
 * gateway refuses to start rather than serve a URL nobody registered. */
int gw_webhook_token_init(struct gw_webhook_token *t, const char *path, char *err, size_t errlen);

/* On reload with the new configuration's path (NULL = tokens off): 1 when the current token
 * changed (the old one stays valid until now_ms + grace_ms), 0 when it is the same, -1 when the
 * file is unusable (err set; the tokens in force are kept). */
int gw_webhook_token_reload(struct gw_webhook_token *t, const char *path, int64_t grace_ms,
			    int64_t now_ms, char *err, size_t errlen);

/* Which token the path segment seg[0..len) is: 1 the current one, 2 the previous one within its
 * grace, 0 neither (or no token set). Constant time in the token bytes. */
int gw_webhook_token_match(const struct gw_webhook_token *t, const char *seg, size_t len,
			   int64_t now_ms);

/* The current token (NUL-terminated) or NULL when none is set. */
const char *gw_webhook_token_current(const struct gw_webhook_token *t);

/* Wipes both tokens. */
void gw_webhook_token_clear(struct gw_webhook_token *t);

#endif
