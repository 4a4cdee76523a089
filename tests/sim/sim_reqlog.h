/*
 * sim_reqlog: the last requests the simulator answered, for GET /_sim/requests (tests and, later,
 * observability checks read what a client really sent).
 *
 * A ring of SIM_REQLOG_MAX entries: the newest overwrites the oldest (counted in `dropped`). Each
 * entry keeps the method, the path (as sent, without the query: signed storage URLs carry their
 * signature there), the answer's status and up to SIM_REQLOG_HEADERS request and response headers;
 * paths and values longer than SIM_REQLOG_VALUE_MAX bytes are cut (counted in `truncated`). The
 * values of credential headers (Cookie, Set-Cookie, Authorization, Proxy-Authorization) are
 * replaced by SIM_REQLOG_REDACTED before they are stored: the log never holds a secret.
 *
 * The log owns copies of everything it keeps; callers keep ownership of what they pass in.
 */
#ifndef A3D_SIM_REQLOG_H
#define A3D_SIM_REQLOG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SIM_REQLOG_MAX 256		/* requests kept */
#define SIM_REQLOG_HEADERS 32		/* headers kept per request, and per answer */
#define SIM_REQLOG_VALUE_MAX 512	/* bytes kept of a path, header name or value */
#define SIM_REQLOG_REDACTED "[redacted]"

struct sim_reqlog;

/* One request as sim_http saw it. hname/hval: request headers; resp_hdr: "Name: value" lines
 * of the answer (sim_resp's form). */
struct sim_reqlog_rec {
	const char *method, *path;
	const char *const *hname, *const *hval;
	int n_headers;
	const char *const *resp_hdr;
	int n_resp_hdr;
	int status;		/* 0: no answer (the connection was reset) */
	int64_t t_ms;		/* wall clock, ms since the epoch */
};

/* NULL when out of memory. */
struct sim_reqlog *sim_reqlog_new(void);
void sim_reqlog_free(struct sim_reqlog *log);	/* NULL is fine */

/* Copies rec into the ring (redacting credentials). 0, or -1 when out of memory (nothing kept). */
int sim_reqlog_add(struct sim_reqlog *log, const struct sim_reqlog_rec *rec);
void sim_reqlog_clear(struct sim_reqlog *log);

/* 1 when name is a header whose value the log never keeps (case-insensitive). */
int sim_reqlog_is_secret(const char *name);

/* {"count", "total", "dropped", "truncated", "requests": [{"seq", "time_ms", "method", "path",
 * "status", "headers": [{"name", "value"}], "response_headers": [...]}]}: the last `limit`
 * requests (at most SIM_REQLOG_MAX), oldest first. New reference, NULL when out of memory. */
json_t *sim_reqlog_json(const struct sim_reqlog *log, int limit);

#endif
