/*
 * webhook_out_sign: what a tenant webhook delivery carries (issue 17), following Standard
 * Webhooks (https://www.standardwebhooks.com/) so receivers can verify it with existing libraries.
 *
 * - Secret: "whsec_" + base64 of GW_WH_SECRET_BYTES random bytes (OpenSSL RAND_bytes). The HMAC
 *   key is the base64-decoded part after "whsec_", as the spec says.
 * - Headers: webhook-id (stable per event and endpoint: the same on every retry, so receivers
 *   deduplicate by it), webhook-timestamp (seconds since the epoch, of this attempt), and
 *   webhook-signature "v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>".
 * - Body: upstream's webhook shape, so clients written for upstream parse it unchanged, with
 *   fields added: {"eventType":"job.completed","data":{"taskId":rid,"status":"success"|"failure",
 *   "state":"SUCCESS"|"FAILURE","error_code":N,"error_message":"..."}} (error fields on failure).
 * - Retry schedule: gw_wh_backoff_ms().
 *
 * Pure but for RAND_bytes; any thread. Secrets pass through stack buffers that are wiped.
 */
#ifndef A3D_GATEWAY_WEBHOOK_OUT_SIGN_H
#define A3D_GATEWAY_WEBHOOK_OUT_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define GW_WH_SECRET_BYTES 32
#define GW_WH_SECRET_PREFIX "whsec_"
#define GW_WH_SECRET_MAX 64		/* bytes of a "whsec_..." string (50 for 32 bytes) */
#define GW_WH_SECRET_KEY_MAX 48		/* bytes of a decoded key accepted by gw_wh_sign */
#define GW_WH_MSG_ID_MAX 36		/* "msg_" + 32 hex digits */
#define GW_WH_SIG_MAX 64		/* "v1," + 44 base64 characters of a SHA-256 HMAC */
#define GW_WH_BODY_ERR_MAX 512		/* bytes of error_message kept in a body */

/* Backoff: attempt n (0 = the first retry) waits GW_WH_BACKOFF_BASE_MS * 2^n capped at
 * GW_WH_BACKOFF_CAP_MS, with "equal jitter": half of it fixed, half drawn from rnd. The outbox
 * gives a row up once its first attempt is older than webhooks.delivery.give_up_s (a day by
 * default): about 10 doubling steps (85 min in all), then hourly. */
#define GW_WH_BACKOFF_BASE_MS 5000
#define GW_WH_BACKOFF_CAP_MS 3600000

/* Writes a new secret into out (at least GW_WH_SECRET_MAX + 1 bytes); 0, or -1 when the random
 * generator failed (out is then ""). */
int gw_wh_sign_secret_new(char *out, size_t outlen);

/* Writes "v1,<base64>" into out (at least GW_WH_SIG_MAX + 1 bytes). -1 when secret is not
 * "whsec_" + base64 of 1..GW_WH_SECRET_KEY_MAX bytes, or out is too small. */
int gw_wh_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
	       size_t len, char *out, size_t outlen);

/* The webhook-id of the event (endpoint_id, rid): "msg_" + 32 hex digits of SHA-256 over both;
 * 0, or -1 (NULL argument, digest failure) with out "". */
int gw_wh_sign_msg_id(const char *endpoint_id, const char *rid, char out[GW_WH_MSG_ID_MAX + 1]);

/* The body for a final job (state ANIMATE3D__V1__JOB_STATE__SUCCESS or __FAILURE); malloc'ed
 * NUL-terminated JSON, or NULL (out of memory, bad state). error_message may be NULL. */
char *gw_wh_sign_body(const char *rid, int state, int error_code, const char *error_message);

/* Milliseconds to wait before retry number attempt (0-based); rnd is any random 32 bits. */
int64_t gw_wh_backoff_ms(unsigned attempt, uint32_t rnd);

#endif
