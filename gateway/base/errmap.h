/*
 * errmap: upstream failures -> gRPC status + a message a developer can act on (the table in
 * ../shared/DESIGN.md, "Error mapping").
 *
 * Pure functions: no I/O, no globals. Messages never carry a URL query string (signed URLs hold
 * their signature there) nor the raw upstream body: only the body's JSON "message", sanitized and
 * truncated to GW_ERRMAP_UPSTREAM_MSG_MAX bytes.
 */
#ifndef A3D_GATEWAY_ERRMAP_H
#define A3D_GATEWAY_ERRMAP_H

#include <stddef.h>
#include <time.h>
#include <grpc/status.h>

#define GW_ERRMAP_UPSTREAM_MSG_MAX 200			/* bytes of upstream "message" quoted */
#define GW_ERRMAP_RETRY_AFTER_MAX_MS (3600L * 1000)	/* Retry-After is clamped to one hour */

/* Upstream HTTP answer (non-2xx) -> gRPC code, with msg (always NUL-terminated when msglen > 0)
 * "<what>: <explanation>[: <upstream message>]":
 * 400 -> INVALID_ARGUMENT, 401 -> UNAVAILABLE ("upstream rejected account credentials"),
 * 403 -> PERMISSION_DENIED, 404 -> NOT_FOUND, 409 -> ALREADY_EXISTS, 413 -> INVALID_ARGUMENT,
 * 429 -> RESOURCE_EXHAUSTED, 5xx and 0 (no answer) -> UNAVAILABLE, anything else -> UNKNOWN.
 * body may be NULL (len 0) or not JSON; what names the operation ("GetStatus") and may be NULL. */
grpc_status_code gw_errmap_http(long http_status, const char *body, size_t len, const char *what,
				char *msg, size_t msglen);

/* Transport failure (curl_rc a CURLcode != CURLE_OK) -> DEADLINE_EXCEEDED for timeouts,
 * UNAVAILABLE otherwise, with curl's reason (curl_error, or curl's text for the code when NULL or
 * empty), sanitized like upstream messages. */
grpc_status_code gw_errmap_curl(int curl_rc, const char *curl_error, const char *what, char *msg,
				size_t msglen);

/* The name of a gRPC status code ("OK", "NOT_FOUND", ...), "UNKNOWN" past UNAUTHENTICATED. */
const char *gw_errmap_code_name(unsigned code);

/* Retry-After (delta seconds or an HTTP-date, relative to now) -> milliseconds, clamped to
 * [0, GW_ERRMAP_RETRY_AFTER_MAX_MS]; -1 when value is NULL, empty or garbage (negative included). */
long gw_errmap_retry_after_ms(const char *value, time_t now);

/* Copies at most len bytes of in to out (outlen > 0; always NUL-terminated, truncated to fit),
 * dropping the query string of any URL ("scheme://...?query" keeps up to '?') and replacing
 * control and non-ASCII bytes by '?'. Returns the length written. For any text that reaches a
 * caller from upstream. */
size_t gw_errmap_sanitize(const char *in, size_t len, char *out, size_t outlen);

#endif
