/*
 * log: structured logs, one JSON object per line on stderr.
 *
 *   gw_log(GW_LOG_INFO, "rpc", GW_LS("tenant", t->name), GW_LN("latency_ms", ms), GW_LEND);
 *   -> {"ts":"2026-11-28T07:20:00.123Z","level":"info","event":"rpc","tenant":"team-a","latency_ms":3}
 *
 * Strings are JSON-escaped (control characters as \uXXXX, invalid UTF-8 as U+FFFD), so a line is
 * always valid JSON whatever the caller passes. A line longer than GW_LOG_LINE_MAX is cut at a field
 * or inside a string value, closed, and marked "truncated":true. Each line is written with a single
 * write(2) so lines from several threads never interleave.
 *
 * Never pass secrets, cookies, Authorization values or signed URLs: log a fingerprint
 * (gw_apikey_fingerprint, gw_secret_fingerprint) or gw_log_redact_url() of the URL instead.
 */
#ifndef A3D_GATEWAY_LOG_H
#define A3D_GATEWAY_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define GW_LOG_LINE_MAX 2048	/* bytes per line, newline included; longer lines are truncated */
#define GW_LOG_MIN_BUF 128	/* gw_log_format() needs at least this much room */
#define GW_LOG_MAX_FIELDS 64	/* fields per line; past it the line ends "truncated":true */

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

enum gw_log_kind { GW_LOG_KIND_END = 0, GW_LOG_KIND_STR = 1, GW_LOG_KIND_NUM = 2 };

struct gw_log_field {
	const char *key;	/* NULL ends the list */
	const char *str;	/* kind 1; NULL is rendered as null */
	long long num;		/* kind 2 */
	int kind;		/* enum gw_log_kind */
};
#define GW_LS(k, v) ((struct gw_log_field){ (k), (v), 0, 1 })			/* string (JSON-escaped) */
#define GW_LN(k, v) ((struct gw_log_field){ (k), NULL, (long long)(v), 2 })	/* integer */
#define GW_LEND ((struct gw_log_field){ NULL, NULL, 0, 0 })

/*
 * The minimum level is the one process-wide mutable setting: logging is called from every thread and
 * every module (including the gRPC poller threads, which hold no gateway state), and threading a
 * logger handle through all of them buys nothing. It is atomic; default GW_LOG_INFO.
 */
void gw_log_set_level(enum gw_log_level lvl);
enum gw_log_level gw_log_get_level(void);
/* "debug", "info", "warn" (or "warning"), "error" -> 0 and *out; -1 for anything else or NULL. */
int gw_log_level_parse(const char *s, enum gw_log_level *out);
const char *gw_log_level_name(enum gw_log_level lvl);	/* "info"...; "?" when out of range */

/* Writes one line to stderr if lvl >= the set level. Arguments: struct gw_log_field..., GW_LEND. */
void gw_log(enum gw_log_level lvl, const char *event, ...);

/*
 * Copies url into out without userinfo, query string and fragment:
 * "https://u:p@h/p?X-Goog-Signature=..#f" -> "https://h/p". Truncated to fit outlen-1; url NULL -> "".
 */
void gw_log_redact_url(const char *url, char *out, size_t outlen);

/*
 * Renders one line (with its trailing newline, NUL-terminated) into buf: what gw_log writes; no I/O,
 * no level filter. ap holds struct gw_log_field... ending with GW_LEND. Returns the length without
 * the NUL; at most min(buflen, GW_LOG_LINE_MAX) - 1. buflen < GW_LOG_MIN_BUF: returns 0, buf "" (if
 * buflen > 0).
 */
size_t gw_log_format(char *buf, size_t buflen, enum gw_log_level lvl, const char *event, va_list ap);

#endif
