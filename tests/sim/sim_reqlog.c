/* sim_reqlog: a bounded ring of the last requests, credentials redacted. */
#include "sim_reqlog.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sim_reqlog_hdr {
	char *name, *value;
};

struct sim_reqlog_entry {
	uint64_t seq;
	int64_t t_ms;
	char *method, *path;
	int status;
	struct sim_reqlog_hdr req[SIM_REQLOG_HEADERS], resp[SIM_REQLOG_HEADERS];
	int n_req, n_resp;
};

struct sim_reqlog {
	struct sim_reqlog_entry ring[SIM_REQLOG_MAX];
	uint64_t total;		/* entries ever added (since the last clear); the next seq */
	uint64_t truncated;	/* strings cut at SIM_REQLOG_VALUE_MAX */
};

static const char *const sim_reqlog_secrets[] = {
	"Cookie", "Set-Cookie", "Authorization", "Proxy-Authorization",
};

int sim_reqlog_is_secret(const char *name)
{
	for (size_t i = 0; i < sizeof(sim_reqlog_secrets) / sizeof(sim_reqlog_secrets[0]); i++)
		if (name != NULL && strcasecmp(name, sim_reqlog_secrets[i]) == 0)
			return 1;
	return 0;
}

struct sim_reqlog *sim_reqlog_new(void)
{
	return calloc(1, sizeof(struct sim_reqlog));
}

static void sim_reqlog_entry_free(struct sim_reqlog_entry *e)
{
	free(e->method);
	free(e->path);
	for (int i = 0; i < e->n_req; i++) {
		free(e->req[i].name);
		free(e->req[i].value);
	}
	for (int i = 0; i < e->n_resp; i++) {
		free(e->resp[i].name);
		free(e->resp[i].value);
	}
	memset(e, 0, sizeof(*e));
}

void sim_reqlog_clear(struct sim_reqlog *log)
{
	for (int i = 0; i < SIM_REQLOG_MAX; i++)
		sim_reqlog_entry_free(&log->ring[i]);
	log->total = 0;
	log->truncated = 0;
}

void sim_reqlog_free(struct sim_reqlog *log)
{
	if (log == NULL)
		return;
	sim_reqlog_clear(log);
	free(log);
}

/* A copy of the first len bytes of s (all of it for SIZE_MAX; NULL counts as ""), cut at
 * SIM_REQLOG_VALUE_MAX bytes, which bumps the truncated counter. */
static char *sim_reqlog_dup(struct sim_reqlog *log, const char *s, size_t len)
{
	size_t n, cap = SIM_REQLOG_VALUE_MAX + 1;	/* enough to see that s is too long */

	if (s == NULL)
		s = "";
	n = strnlen(s, len < cap ? len : cap);
	if (n > SIM_REQLOG_VALUE_MAX) {
		n = SIM_REQLOG_VALUE_MAX;
		log->truncated++;
	}
	return strndup(s, n);
}

/* Copies one header into h; the value of a credential header is never read. */
static int sim_reqlog_hdr_set(struct sim_reqlog *log, struct sim_reqlog_hdr *h, const char *name,
			      size_t nlen, const char *value)
{
	h->name = sim_reqlog_dup(log, name, nlen);
	if (h->name == NULL)
		return -1;
	h->value = sim_reqlog_is_secret(h->name) ? strdup(SIM_REQLOG_REDACTED)
		   : sim_reqlog_dup(log, value, SIZE_MAX);
	return h->value != NULL ? 0 : -1;
}

int sim_reqlog_add(struct sim_reqlog *log, const struct sim_reqlog_rec *rec)
{
	struct sim_reqlog_entry e;
	int rc = -1;

	memset(&e, 0, sizeof(e));
	e.seq = log->total;
	e.t_ms = rec->t_ms;
	e.status = rec->status;
	if ((e.method = sim_reqlog_dup(log, rec->method, SIZE_MAX)) == NULL ||
	    (e.path = sim_reqlog_dup(log, rec->path, SIZE_MAX)) == NULL)
		goto out;
	for (int i = 0; i < rec->n_headers && e.n_req < SIM_REQLOG_HEADERS; i++) {
		if (sim_reqlog_hdr_set(log, &e.req[e.n_req], rec->hname[i], SIZE_MAX,
				       rec->hval[i]) != 0)
			goto out;
		e.n_req++;
	}
	for (int i = 0; i < rec->n_resp_hdr && e.n_resp < SIM_REQLOG_HEADERS; i++) {
		const char *line = rec->resp_hdr[i], *colon = strchr(line, ':'), *v;

		if (colon == NULL)
			continue;
		for (v = colon + 1; *v == ' '; v++)
			;
		if (sim_reqlog_hdr_set(log, &e.resp[e.n_resp], line, (size_t)(colon - line), v) != 0)
			goto out;
		e.n_resp++;
	}
	sim_reqlog_entry_free(&log->ring[log->total % SIM_REQLOG_MAX]);
	log->ring[log->total % SIM_REQLOG_MAX] = e;	/* the ring owns the strings now */
	memset(&e, 0, sizeof(e));
	log->total++;
	rc = 0;
out:
	sim_reqlog_entry_free(&e);
	return rc;
}

static json_t *sim_reqlog_hdrs_json(const struct sim_reqlog_hdr *h, int n)
{
	json_t *arr = json_array();

	for (int i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", h[i].name, "value", h[i].value));
	return arr;
}

json_t *sim_reqlog_json(const struct sim_reqlog *log, int limit)
{
	uint64_t kept = log->total < SIM_REQLOG_MAX ? log->total : SIM_REQLOG_MAX;
	uint64_t n = limit < 0 ? 0 : (uint64_t)limit;
	json_t *arr = json_array();

	if (n > kept)
		n = kept;
	for (uint64_t seq = log->total - n; arr != NULL && seq < log->total; seq++) {
		const struct sim_reqlog_entry *e = &log->ring[seq % SIM_REQLOG_MAX];

		json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:i, s:o, s:o}",
			"seq", (json_int_t)e->seq, "time_ms", (json_int_t)e->t_ms, "method", e->method,
			"path", e->path, "status", e->status, "headers", sim_reqlog_hdrs_json(e->req, e->n_req),
			"response_headers", sim_reqlog_hdrs_json(e->resp, e->n_resp)));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:o}", "count", (json_int_t)n, "total",
			 (json_int_t)log->total, "dropped", (json_int_t)(log->total - kept), "truncated",
			 (json_int_t)log->truncated, "requests", arr);
}
