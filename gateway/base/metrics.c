/*
 * metrics: histograms, upstream answers by route/status, and the /metrics text. See metrics.h.
 */
#include "gateway/base/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "gateway/base/errmap.h"


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

/* ---- RPC series by tenant ---- */

/* The live slot named name (1..), or 0. Linear: run once per tenant per configuration load. */
static uint32_t metrics_rpc_find(const struct gw_metrics_rpc *r, const char *name)
{
	for (size_t s = 1; s < r->nslots; s++)
		if (r->slot[s].name && strcmp(r->slot[s].name, name) == 0)
			return (uint32_t)s;
	return 0;
}

/* A free slot for name with zeroed cells (1..), or 0 when out of memory or past the cap. */
static uint32_t metrics_rpc_take(struct gw_metrics_rpc *r, const char *name)
{
	struct gw_metrics_rpc_slot *x;
	size_t s = 1;

	while (s < r->nslots && r->slot[s].name)
		s++;
	if (s >= GW_METRICS_MAX_TENANT_SLOTS)
		return 0;
	if (s >= r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct gw_metrics_rpc_slot *n;

		if (cap > GW_METRICS_MAX_TENANT_SLOTS)
			cap = GW_METRICS_MAX_TENANT_SLOTS;
		n = realloc(r->slot, cap * sizeof *n);
		if (!n)
			return 0;
		memset(n + r->cap, 0, (cap - r->cap) * sizeof *n);
		r->slot = n;
		r->cap = cap;
	}
	x = &r->slot[s];
	x->name = strdup(name);
	x->cells = calloc(GW_STATS_MAX_METHODS, sizeof *x->cells);
	if (!x->name || !x->cells) {
		free(x->name);
		free(x->cells);
		x->name = NULL;
		x->cells = NULL;
		return 0;
	}
	x->refs = 0;
	if (s >= r->nslots)
		r->nslots = s + 1;
	return (uint32_t)s;
}

int gw_metrics_rpc_map(struct gw_metrics_rpc *r, const char *const *names, size_t n,
		       uint32_t *slots)
{
	size_t i;
	int rc = -1;

	for (i = 0; i < n; i++) {
		uint32_t s;

		if (!names[i] || strcmp(names[i], GW_METRICS_NO_TENANT) == 0) {
			slots[i] = 0;
			continue;
		}
		s = metrics_rpc_find(r, names[i]);
		if (!s)
			s = metrics_rpc_take(r, names[i]);
		if (!s) {
			r->refused++;
			goto out;
		}
		r->slot[s].refs++;
		slots[i] = s;
	}
	rc = 0;
out:
	if (rc)
		gw_metrics_rpc_unmap(r, slots, i);	/* the names mapped before the failure */
	return rc;
}

void gw_metrics_rpc_unmap(struct gw_metrics_rpc *r, const uint32_t *slots, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct gw_metrics_rpc_slot *x;

		if (!slots[i] || slots[i] >= r->nslots)
			continue;
		x = &r->slot[slots[i]];
		if (!x->name || !x->refs || --x->refs)
			continue;
		free(x->name);
		free(x->cells);
		x->name = NULL;
		x->cells = NULL;
	}
	while (r->nslots > 1 && !r->slot[r->nslots - 1].name)
		r->nslots--;
}

struct gw_metrics_rpc_cell *gw_metrics_rpc_cells(struct gw_metrics_rpc *r, uint32_t s)
{
	if (s && s < r->nslots && r->slot[s].cells)
		return r->slot[s].cells;
	return r->none;
}

void gw_metrics_rpc_free(struct gw_metrics_rpc *r)
{
	for (size_t s = 1; s < r->nslots; s++) {
		free(r->slot[s].name);
		free(r->slot[s].cells);
	}
	free(r->slot);
	memset(r, 0, sizeof *r);
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

void gw_metrics_family_ext(struct gw_metrics_out *o, const char *name, const char *type,
			   const char *help)
{
	metrics_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void gw_metrics_gauge_ext(struct gw_metrics_out *o, const char *name, double v)
{
	/* %.15g: a start time in seconds since 1970 keeps its fraction, a small value no noise. */
	metrics_printf(o, "%s %.15g\n", name, v);
}

/* The tenant label of slot s, escaped, into buf. */
static void metrics_rpc_tenant(const struct gw_metrics_rpc *r, size_t s, char *buf, size_t len)
{
	gw_metrics_label(s ? r->slot[s].name : GW_METRICS_NO_TENANT, buf, len);
}

void gw_metrics_rpc_render(const struct gw_metrics_rpc *r, size_t n,
			   const char *(*method_path)(const void *arg, size_t i), const void *arg,
			   struct gw_metrics_out *o)
{
	char t[GW_METRICS_MAX_LABEL], l[GW_METRICS_MAX_LABEL];
	char labels[2 * GW_METRICS_MAX_LABEL + 48];
	size_t nslots = r->nslots ? r->nslots : 1;

	if (n > GW_STATS_MAX_METHODS)
		n = GW_STATS_MAX_METHODS;
	gw_metrics_family(o, "rpc_total", "counter",
			  "Finished gRPC calls by tenant (\"" GW_METRICS_NO_TENANT "\": none "
			  "authenticated), method and status code.");
	for (size_t s = 0; s < nslots; s++) {
		const struct gw_metrics_rpc_cell *cells = s ? r->slot[s].cells : r->none;

		if (!cells)
			continue;
		metrics_rpc_tenant(r, s, t, sizeof t);
		for (size_t i = 0; i < n; i++) {
			if (!cells[i].latency.count)
				continue;	/* every finished call is timed: nothing counted */
			gw_metrics_label(method_path(arg, i), l, sizeof l);
			for (size_t k = 0; k < GW_STATS_GRPC_CODES; k++) {
				if (!cells[i].code[k])
					continue;
				snprintf(labels, sizeof labels, "tenant=\"%s\",method=\"%s\",code=\"%s\"",
					 t, l, gw_errmap_code_name((unsigned)k));
				gw_metrics_value(o, "rpc_total", labels, cells[i].code[k]);
			}
		}
	}
	gw_metrics_family(o, "rpc_duration_seconds", "histogram",
			  "Time from a call's arrival to its end, by tenant and method.");
	for (size_t s = 0; s < nslots; s++) {
		const struct gw_metrics_rpc_cell *cells = s ? r->slot[s].cells : r->none;

		if (!cells)
			continue;
		metrics_rpc_tenant(r, s, t, sizeof t);
		for (size_t i = 0; i < n; i++) {
			if (!cells[i].latency.count)
				continue;
			gw_metrics_label(method_path(arg, i), l, sizeof l);
			snprintf(labels, sizeof labels, "tenant=\"%s\",method=\"%s\"", t, l);
			gw_metrics_hist(o, "rpc_duration_seconds", labels, &cells[i].latency);
		}
	}
	gw_metrics_one(o, "rpc_tenant_slots_refused_total", "counter",
		       "Configuration loads refused because their tenants' series would not fit.",
		       r->refused);
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
