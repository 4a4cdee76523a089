/*
 * metrics: histograms, upstream answers by route/status, and the /metrics text. See metrics.h.
 */
#include "gateway/base/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>


#define P GW_METRICS_PREFIX

/* Bucket bounds: from a cache hit (about a millisecond) to a slow upload chunk. */
static const int64_t metrics_bound_us[GW_METRICS_NBUCKETS] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 30000000,
};
static const char *const metrics_bound_le[GW_METRICS_NBUCKETS] = {
	"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
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

/* ---- printers ---- */

static void metrics_printf(struct gw_metrics_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void metrics_printf(struct gw_metrics_out *o, const char *fmt, ...)
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

void gw_metrics_family(struct gw_metrics_out *o, const char *name, const char *type,
		       const char *help)
{
	metrics_printf(o, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

void gw_metrics_value(struct gw_metrics_out *o, const char *name, const char *labels, uint64_t v)
{
	if (labels)
		metrics_printf(o, P "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		metrics_printf(o, P "%s %llu\n", name, (unsigned long long)v);
}

void gw_metrics_gauge_f(struct gw_metrics_out *o, const char *name, const char *labels, double v)
{
	if (labels)
		metrics_printf(o, P "%s{%s} %.6g\n", name, labels, v);
	else
		metrics_printf(o, P "%s %.6g\n", name, v);
}

void gw_metrics_gauge_exact(struct gw_metrics_out *o, const char *name, const char *labels,
			    double v)
{
	if (labels)
		metrics_printf(o, P "%s{%s} %.15g\n", name, labels, v);
	else
		metrics_printf(o, P "%s %.15g\n", name, v);
}

void gw_metrics_one(struct gw_metrics_out *o, const char *name, const char *type, const char *help,
		    uint64_t v)
{
	gw_metrics_family(o, name, type, help);
	gw_metrics_value(o, name, NULL, v);
}

void gw_metrics_hist(struct gw_metrics_out *o, const char *name, const char *labels,
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

/* ---- the registry ---- */

int gw_metrics_register(struct gw_metrics_reg *reg, gw_metrics_render_fn fn, void *arg)
{
	if (!fn || reg->n >= GW_METRICS_MAX_RENDERERS) {
		reg->refused++;
		return -1;
	}
	reg->r[reg->n].fn = fn;
	reg->r[reg->n].arg = arg;
	reg->n++;
	return 0;
}

void gw_metrics_unregister(struct gw_metrics_reg *reg, gw_metrics_render_fn fn, void *arg)
{
	for (size_t i = 0; i < reg->n; i++) {
		if (reg->r[i].fn != fn || reg->r[i].arg != arg)
			continue;
		memmove(&reg->r[i], &reg->r[i + 1], (reg->n - i - 1) * sizeof reg->r[0]);
		reg->n--;
		return;
	}
}

int gw_metrics_render_all(const struct gw_metrics_reg *reg, struct evbuffer *out)
{
	struct gw_metrics_out o = { out, 0 };

	if (!reg || !out)
		return -1;
	for (size_t i = 0; i < reg->n; i++)
		reg->r[i].fn(reg->r[i].arg, &o);
	return o.bad ? -1 : 0;
}
