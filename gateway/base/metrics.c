/*
 * metrics: histograms, upstream answers by route/status, and the /metrics text. See metrics.h.
 */
#include "gateway/base/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "auth/upstream/session.h"
#include "gateway/base/breaker.h"
#include "gateway/call/call.h"
#include "gateway/http.h"
#include "gateway/base/ratelimit.h"
#include "gateway/server.h"
#include "gateway/upstream/upstream.h"

#define P GW_METRICS_PREFIX

/* Bucket bounds: from a cache hit (about a millisecond) to a slow upload chunk. */
static const int64_t metrics_bound_us[GW_METRICS_NBUCKETS] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 30000000,
};
static const char *const metrics_bound_le[GW_METRICS_NBUCKETS] = {
	"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
};

static const enum gw_session_state metrics_session_states[] = {
	GW_SESSION_NEVER, GW_SESSION_LOGGING_IN, GW_SESSION_OK, GW_SESSION_BACKOFF,
	GW_SESSION_REJECTED,
};
static const char *const metrics_session_state_names[] = {
	"never", "logging_in", "ok", "backoff", "rejected",
};

/* Upstream routes (docs/upstream-api.md). prefix + rest: rest "" = the path is exactly the
 * prefix, "/" = an id segment follows, "?" = anything may follow (a query). */
static const struct {
	const char *method, *prefix, *rest, *route;
} metrics_routes[] = {
	{ "GET", "/session/auth", "", "GET /session/auth" },
	{ "GET", "/upload", "?", "GET /upload" },
	{ "POST", "/process", "", "POST /process" },
	{ "GET", "/status/", "/", "GET /status/{rids}" },
	{ "GET", "/download/", "/", "GET /download/{rids}" },
	{ "GET", "/list", "", "GET /list" },
	{ "GET", "/list/", "/", "GET /list/{statuses}" },
	{ "POST", "/videoInfo", "", "POST /videoInfo" },
	{ "GET", "/pesave/getUrls/", "/", "GET /pesave/getUrls/{rid}" },
	{ "GET", "/account/creditBalance", "", "GET /account/creditBalance" },
	{ "GET", "/account/minutesBalance", "", "GET /account/minutesBalance" },
	{ "GET", "/character/getModelUploadUrl", "?", "GET /character/getModelUploadUrl" },
	{ "POST", "/character/storeModel", "", "POST /character/storeModel" },
	{ "GET", "/character/listModels", "?", "GET /character/listModels" },
	{ "DELETE", "/character/deleteModel/", "/", "DELETE /character/deleteModel/{id}" },
	{ "POST", "/webhook_endpoints", "", "POST /webhook_endpoints" },
	{ "GET", "/webhook_endpoints", "", "GET /webhook_endpoints" },
	{ "GET", "/webhook_endpoints/", "/", "GET /webhook_endpoints/{id}" },
	{ "POST", "/webhook_endpoints/", "/", "POST /webhook_endpoints/{id}" },
	{ "DELETE", "/webhook_endpoints/", "/", "DELETE /webhook_endpoints/{id}" },
};

const char *gw_metrics_route(const char *method, const char *path)
{
	size_t plen;

	if (!method || !path)
		return "other";
	plen = strcspn(path, "?#");	/* the query never decides, except "?" rows below */
	for (size_t i = 0; i < sizeof metrics_routes / sizeof metrics_routes[0]; i++) {
		size_t n = strlen(metrics_routes[i].prefix);
		const char *rest = metrics_routes[i].rest;

		if (strcmp(method, metrics_routes[i].method) != 0 ||
		    strncmp(path, metrics_routes[i].prefix, n) != 0)
			continue;
		if ((rest[0] == '\0' && plen == n) ||
		    (rest[0] == '?' && plen == n) ||
		    (rest[0] == '/' && plen > n && !memchr(path + n, '/', plen - n)))
			return metrics_routes[i].route;
	}
	if (strcmp(method, "GET") == 0)
		return "GET other";
	if (strcmp(method, "POST") == 0)
		return "POST other";
	if (strcmp(method, "PUT") == 0)
		return "PUT other";
	if (strcmp(method, "DELETE") == 0)
		return "DELETE other";
	return "other";
}

/* ---- writers ---- */

const char *gw_metrics_bucket_le(size_t i)
{
	return i < GW_METRICS_NBUCKETS ? metrics_bound_le[i] : "+Inf";
}

void gw_metrics_observe(struct gw_metrics_hist *h, int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < GW_METRICS_NBUCKETS && us > metrics_bound_us[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_us += (uint64_t)us;
}

void gw_metrics_rpc(struct gw_metrics *m, size_t midx, int64_t latency_us)
{
	if (midx < GW_STATS_MAX_METHODS)
		gw_metrics_observe(&m->rpc_latency[midx], latency_us);
}

void gw_metrics_upstream(struct gw_metrics *m, const char *route, long http_status,
			 int64_t latency_us)
{
	struct gw_metrics_route *r = NULL;
	uint16_t code = (http_status >= 100 && http_status <= 599) ? (uint16_t)http_status : 0;

	if (!route)
		route = "other";
	for (size_t i = 0; i < GW_METRICS_MAX_ROUTES; i++) {
		struct gw_metrics_route *x = &m->routes[i];

		if (!x->route) {
			x->route = route;
			r = x;
			break;
		}
		if (x->route == route || strcmp(x->route, route) == 0) {
			r = x;
			break;
		}
	}
	if (!r) {
		m->routes_dropped++;
		return;
	}
	gw_metrics_observe(&r->latency, latency_us);
	for (size_t k = 0; k < GW_METRICS_ROUTE_CODES; k++) {
		if (r->n[k] && r->code[k] == code) {
			r->n[k]++;
			return;
		}
		if (!r->n[k]) {
			r->code[k] = code;
			r->n[k] = 1;
			return;
		}
	}
	r->other++;
}

/* ---- rendering ---- */

struct metrics_out {
	struct evbuffer *b;
	int bad;
};

static void metrics_printf(struct metrics_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(o->b, fmt, ap) < 0)
		o->bad = 1;
	va_end(ap);
}

void gw_metrics_label(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; in && *in && o + 3 < outlen; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

static void metrics_family(struct metrics_out *o, const char *name, const char *type,
			   const char *help)
{
	metrics_printf(o, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample. */
static void metrics_one(struct metrics_out *o, const char *name, const char *type,
			const char *help, uint64_t v)
{
	metrics_family(o, name, type, help);
	metrics_printf(o, P "%s %llu\n", name, (unsigned long long)v);
}

/* The series of one histogram; labels is "k=\"v\"" (already escaped), never empty here. */
static void metrics_hist(struct metrics_out *o, const char *name, const char *labels,
			 const struct gw_metrics_hist *h)
{
	uint64_t cum = 0;

	for (size_t i = 0; i <= GW_METRICS_NBUCKETS; i++) {
		cum += h->bucket[i];
		metrics_printf(o, P "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels,
			       gw_metrics_bucket_le(i), (unsigned long long)cum);
	}
	metrics_printf(o, P "%s_sum{%s} %llu.%06llu\n", name, labels,
		       (unsigned long long)(h->sum_us / 1000000), (unsigned long long)(h->sum_us % 1000000));
	metrics_printf(o, P "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void metrics_rpc(struct metrics_out *o, const struct gw_metrics_view *v)
{
	const struct gw_stats *st = v->stats;
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 16];
	size_t n = v->nmethods < GW_STATS_MAX_METHODS ? v->nmethods : GW_STATS_MAX_METHODS;

	metrics_family(o, "rpc_total", "counter", "Finished gRPC calls by method and status code.");
	for (size_t i = 0; st && i < n; i++) {
		gw_metrics_label(v->methods[i].path, l, sizeof l);
		for (unsigned k = 0; k < GW_STATS_GRPC_CODES; k++)
			if (st->rpc[i][k])
				metrics_printf(o, P "rpc_total{method=\"%s\",code=\"%s\"} %llu\n", l,
					       gw_http_grpc_code_name(k),
					       (unsigned long long)st->rpc[i][k]);
	}
	metrics_family(o, "rpc_duration_seconds", "histogram",
		       "Time from a call's arrival to its end, by method.");
	for (size_t i = 0; v->m && i < n; i++) {
		if (!v->m->rpc_latency[i].count)
			continue;
		gw_metrics_label(v->methods[i].path, l, sizeof l);
		snprintf(labels, sizeof labels, "method=\"%s\"", l);
		metrics_hist(o, "rpc_duration_seconds", labels, &v->m->rpc_latency[i]);
	}
	if (!st)
		return;
	metrics_one(o, "rpc_in_flight", "gauge", "Calls accepted and not finished yet.",
		    st->calls_in_flight);
	metrics_one(o, "rpc_accepted_total", "counter", "Calls accepted (every method).",
		    st->calls_total);
	metrics_one(o, "rpc_unknown_method_total", "counter",
		    "Calls to methods this server does not serve (UNIMPLEMENTED).",
		    st->rpc_unknown_method);
	metrics_one(o, "rpc_unauthenticated_total", "counter",
		    "Calls refused for a missing or unknown API key or client certificate.",
		    st->auth_rejected);
	metrics_one(o, "rpc_permission_denied_total", "counter",
		    "Calls whose key lacks the method's permission.", st->perm_denied);
	metrics_one(o, "rpc_malformed_total", "counter", "Undecodable request messages.",
		    st->malformed);
	metrics_one(o, "rpc_cancelled_total", "counter",
		    "Calls cancelled by the client, their deadline or the drain.", st->cancelled);
	metrics_one(o, "rpc_stream_dropped_total", "counter",
		    "Server-stream messages refused (queue full or call gone).", st->stream_dropped);
	metrics_one(o, "rpc_rejected_draining_total", "counter",
		    "Calls refused because the server was shutting down.", st->rejected_draining);
}

static void metrics_upstream(struct metrics_out *o, const struct gw_metrics_view *v)
{
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 16], code[8];

	metrics_family(o, "upstream_requests_total", "counter",
		       "Upstream HTTP attempts by route template and HTTP status (none: no answer).");
	for (size_t i = 0; v->m && i < GW_METRICS_MAX_ROUTES && v->m->routes[i].route; i++) {
		const struct gw_metrics_route *r = &v->m->routes[i];

		gw_metrics_label(r->route, l, sizeof l);
		for (size_t k = 0; k < GW_METRICS_ROUTE_CODES && r->n[k]; k++) {
			if (r->code[k])
				snprintf(code, sizeof code, "%u", (unsigned)r->code[k]);
			else
				snprintf(code, sizeof code, "none");
			metrics_printf(o, P "upstream_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
				       l, code, (unsigned long long)r->n[k]);
		}
		if (r->other)
			metrics_printf(o, P "upstream_requests_total{route=\"%s\",status=\"other\"} %llu\n",
				       l, (unsigned long long)r->other);
	}
	metrics_family(o, "upstream_duration_seconds", "histogram",
		       "Upstream HTTP attempt latency by route template.");
	for (size_t i = 0; v->m && i < GW_METRICS_MAX_ROUTES && v->m->routes[i].route; i++) {
		gw_metrics_label(v->m->routes[i].route, l, sizeof l);
		snprintf(labels, sizeof labels, "route=\"%s\"", l);
		metrics_hist(o, "upstream_duration_seconds", labels, &v->m->routes[i].latency);
	}
	if (v->m)
		metrics_one(o, "upstream_routes_dropped_total", "counter",
			    "Upstream answers for routes past the metrics table.", v->m->routes_dropped);
	if (v->stats)
		metrics_one(o, "upstream_in_flight", "gauge", "Upstream HTTP transfers in flight.",
			    v->stats->upstream_in_flight);
	if (v->up) {
		metrics_one(o, "upstream_started_total", "counter",
			    "Upstream requests started (retries not included).", v->up->started);
		metrics_one(o, "upstream_retries_total", "counter",
			    "Idempotent retries after a 5xx or a connection error.", v->up->retries);
		metrics_one(o, "upstream_reauth_retries_total", "counter",
			    "Retries after a 401 with a fresh session cookie.", v->up->reauth_retries);
		metrics_one(o, "upstream_too_large_total", "counter",
			    "Responses aborted past upstream.max_response_bytes.", v->up->too_large);
		metrics_one(o, "upstream_no_session_total", "counter",
			    "Requests failed because no upstream session could be had.",
			    v->up->no_session);
		metrics_one(o, "upstream_cancelled_total", "counter",
			    "Upstream requests abandoned because their call went away.",
			    v->up->cancelled);
	}
}

static void metrics_sessions(struct metrics_out *o, const struct gw_metrics_view *v)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
		{ "session_logins_total", "Upstream logins started (first, re-login, refresh, retry).",
		  offsetof(struct gw_session_counters, logins) },
		{ "session_refreshes_total", "Of those, refreshes ahead of cookie expiry.",
		  offsetof(struct gw_session_counters, refreshes) },
		{ "session_failures_total", "Upstream logins that yielded no cookie.",
		  offsetof(struct gw_session_counters, failures) },
		{ "session_reauths_total", "401s on the current session that forced a re-login.",
		  offsetof(struct gw_session_counters, reauths) },
		{ "session_waiters_rejected_total", "Calls refused because the login wait list was full.",
		  offsetof(struct gw_session_counters, waiters_rejected) },
	};
	char l[GW_METRICS_MAX_LABEL];

	if (!v->accounts)
		return;
	for (size_t c = 0; c < sizeof ctr / sizeof ctr[0]; c++) {
		metrics_family(o, ctr[c].name, "counter", ctr[c].help);
		for (size_t i = 0; i < v->naccounts; i++) {
			const struct gw_account_rt *a = &v->accounts[i];
			uint64_t n;

			memcpy(&n, (const char *)&a->n + ctr[c].off, sizeof n);
			gw_metrics_label(gw_session_name(a), l, sizeof l);
			metrics_printf(o, P "%s{account=\"%s\"} %llu\n", ctr[c].name, l,
				       (unsigned long long)n);
		}
	}
	metrics_family(o, "session_state", "gauge",
		       "1 for the current upstream session state of each account.");
	for (size_t i = 0; i < v->naccounts; i++) {
		const struct gw_account_rt *a = &v->accounts[i];

		gw_metrics_label(gw_session_name(a), l, sizeof l);
		for (size_t s = 0; s < sizeof metrics_session_states / sizeof metrics_session_states[0];
		     s++)
			metrics_printf(o, P "session_state{account=\"%s\",state=\"%s\"} %d\n", l,
				       metrics_session_state_names[s],
				       a->state == metrics_session_states[s] ? 1 : 0);
	}
}

static void metrics_limits(struct metrics_out *o, const struct gw_metrics_view *v)
{
	char l[GW_METRICS_MAX_LABEL];
	int any = 0;

	if (v->rl) {
		metrics_family(o, "ratelimited_total", "counter",
			       "Calls answered RESOURCE_EXHAUSTED by the tenant's rate limit.");
		for (size_t i = 0; i < v->rl->n; i++) {
			gw_metrics_label(v->rl->t[i].name, l, sizeof l);
			metrics_printf(o, P "ratelimited_total{tenant=\"%s\"} %llu\n", l,
				       (unsigned long long)v->rl->t[i].limited);
		}
	}
	for (size_t i = 0; i < v->naccounts && i < GW_CONFIG_MAX_ACCOUNTS; i++)
		any |= v->breaker[i] != NULL;
	if (!any || !v->accounts)
		return;
	metrics_family(o, "breaker_state", "gauge",
		       "1 for the current circuit breaker state of each upstream account.");
	for (size_t i = 0; i < v->naccounts && i < GW_CONFIG_MAX_ACCOUNTS; i++) {
		static const enum gw_breaker_state states[] = { GW_BREAKER_CLOSED, GW_BREAKER_OPEN,
								GW_BREAKER_HALF_OPEN };

		if (!v->breaker[i])
			continue;
		gw_metrics_label(gw_session_name(&v->accounts[i]), l, sizeof l);
		for (size_t s = 0; s < 3; s++)
			metrics_printf(o, P "breaker_state{account=\"%s\",state=\"%s\"} %d\n", l,
				       gw_breaker_state_name(states[s]),
				       v->breaker[i]->state == states[s] ? 1 : 0);
	}
	metrics_family(o, "breaker_rejected_total", "counter",
		       "Upstream requests failed fast by an open circuit breaker.");
	for (size_t i = 0; i < v->naccounts && i < GW_CONFIG_MAX_ACCOUNTS; i++) {
		if (!v->breaker[i])
			continue;
		gw_metrics_label(gw_session_name(&v->accounts[i]), l, sizeof l);
		metrics_printf(o, P "breaker_rejected_total{account=\"%s\"} %llu\n", l,
			       (unsigned long long)v->breaker[i]->rejected);
	}
}

int gw_metrics_render(const struct gw_metrics_view *v, struct evbuffer *out)
{
	struct metrics_out o = { out, 0 };
	char l[GW_METRICS_MAX_LABEL];

	if (!v || !out)
		return -1;
	gw_metrics_label(v->version ? v->version : "dev", l, sizeof l);
	metrics_family(&o, "build_info", "gauge", "Build information; the value is always 1.");
	metrics_printf(&o, P "build_info{version=\"%s\"} 1\n", l);
	metrics_one(&o, "draining", "gauge", "1 while the server drains for shutdown.",
		    v->draining ? 1 : 0);
	metrics_rpc(&o, v);
	metrics_upstream(&o, v);
	metrics_sessions(&o, v);
	metrics_limits(&o, v);
	if (v->stats) {
		metrics_family(&o, "reloads_total", "counter", "Configuration reloads (SIGHUP) by result.");
		metrics_printf(&o, P "reloads_total{result=\"ok\"} %llu\n"
				   P "reloads_total{result=\"failed\"} %llu\n",
			       (unsigned long long)v->stats->reloads_ok,
			       (unsigned long long)v->stats->reloads_failed);
		metrics_one(&o, "http_requests_total", "counter",
			    "Requests on the operator HTTP listener.", v->stats->http_requests);
		metrics_one(&o, "http_not_found_total", "counter",
			    "Requests on the operator HTTP listener for unknown paths.",
			    v->stats->http_not_found);
	}
	metrics_one(&o, "health_watchers", "gauge", "Open grpc.health.v1 Watch streams.",
		    v->health_watchers);
	metrics_one(&o, "health_watchers_refused_total", "counter",
		    "Health Watch streams refused past the limit.", v->health_watchers_refused);
	if (v->has_handoff) {
		metrics_one(&o, "handoff_events_total", "counter",
			    "Completion-queue events handed from the poller thread to the loop.",
			    v->handoff.delivered);
		metrics_one(&o, "handoff_full_waits_total", "counter",
			    "Times the poller waited for room in the full hand-off queue.",
			    v->handoff.full_waits);
		metrics_one(&o, "handoff_high_water", "gauge",
			    "Most events ever waiting in the hand-off queue at once.",
			    v->handoff.high_water);
	}
	return o.bad ? -1 : 0;
}

void gw_metrics_view_of(struct gw_server *srv, struct gw_metrics_view *v)
{
	struct gw_limits *lim;

	memset(v, 0, sizeof *v);
	v->version = srv->version;
	v->draining = srv->draining;
	v->stats = &srv->stats;
	v->m = &srv->metrics;
	v->methods = srv->methods;
	v->nmethods = srv->nmethods;
	v->accounts = srv->accounts;
	v->naccounts = srv->naccounts;
	v->up = srv->up ? gw_up_counters(srv->up) : NULL;
	lim = srv->up ? gw_up_limits(srv->up) : NULL;	/* tenant buckets and account breakers */
	if (lim) {
		v->rl = lim->tenants;
		for (size_t i = 0; i < lim->nacct && i < GW_CONFIG_MAX_ACCOUNTS; i++)
			v->breaker[i] = &lim->acct[i].breaker;
	}
	v->health_watchers = srv->health.nwatchers;
	v->health_watchers_refused = srv->health.watchers_refused;
	if (srv->handoff) {
		gw_handoff_stats(srv->handoff, &v->handoff);
		v->has_handoff = 1;
	}
}
