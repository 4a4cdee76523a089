/*
 * http: /healthz, /readyz, /metrics on libevent's evhttp. See http.h.
 */
#include "gateway/http.h"
#include "gateway/cluster/redis.h"
#include "gateway/state/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "auth/upstream/session.h"
#include "gateway/base/conncap.h"
#include "gateway/base/fdlimit.h"
#include "gateway/base/listenprobe.h"
#include "gateway/base/log.h"
#include "gateway/base/memguard.h"
#include "gateway/base/metrics.h"
#include "gateway/call/admit.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/webhook_in.h"

#define HTTP_MAX_HOST 256	/* host part of http_listen */

struct gw_http {
	struct gw_env *env;
	struct evhttp *http;
	struct gw_conncap *cap;		/* connection cap, request deadline, accept backoff */
	struct gw_listenprobe *probe;	/* self-probe of the gRPC listener; NULL = off */
};

/* No probe before the gRPC server starts, nor while it drains (its listener is closed then). */
static int http_probe_skip(void *arg)
{
	const struct gw_env *env = arg;

	return !env->started || env->draining;
}

static int http_probe_new(struct gw_http *h, int grpc_port, char *err, size_t errlen)
{
	const struct gw_config *cfg = h->env->cfg;
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned char hello[GW_LISTENPROBE_MAX_HELLO];
	size_t hello_len = 0;

	if (cfg->grpc.probe_interval_ms <= 0)
		return 0;
	if (gw_listenprobe_addr(cfg->grpc_listen, grpc_port, &ss, &len) != 0) {
		snprintf(err, errlen, "cannot derive a probe address from listen.grpc %s", cfg->grpc_listen);
		return -1;
	}
	/* A TLS listener is greeted with a ClientHello: a plaintext preface would make gRPC log a
	 * failed handshake at every probe. */
	if (cfg->tls.cert_file && gw_listenprobe_tls_hello(hello, sizeof hello, &hello_len) != 0) {
		snprintf(err, errlen, "cannot build the TLS greeting of the gRPC listener probe");
		return -1;
	}
	h->probe = gw_listenprobe_new(h->env->base, "grpc", (const struct sockaddr *)&ss, len,
				      hello_len ? hello : NULL, hello_len,
				      cfg->grpc.probe_interval_ms, cfg->grpc.probe_timeout_ms,
				      cfg->grpc.probe_failures, http_probe_skip, h->env);
	if (!h->probe || gw_metrics_register(&h->env->metrics_reg, gw_listenprobe_render_metrics,
					     h->probe) != 0) {
		snprintf(err, errlen, "cannot set up the gRPC listener probe");
		return -1;
	}
	return 0;
}

int gw_http_split_hostport(const char *s, char *host, size_t hostlen, unsigned short *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long p;

	if (!s || !*s)
		return -1;
	colon = strrchr(s, ':');
	if (!colon || colon[1] == '\0')
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {	/* [v6]:port */
		if (hl < 2 || s[hl - 1] != ']')
			return -1;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned short)p;
	return 0;
}

/* What a part does while it is local, for operators reading /readyz. */
static const char *const http_local_means[GW_REDIS_NPARTS] = {
	"rate limits: each tenant's and account's limit / cluster.expected_replicas on this replica",
	"upstream concurrency: each account's max_concurrent / cluster.expected_replicas on this replica",
	"upstream session: this replica logs in on its own; its cookie is not shared",
	"job statuses: this replica polls upstream on its own; what it reads is not shared",
};

/* o[key] = v, taking v's reference; -1 when either is NULL or the set fails (out of memory). */
static int http_set(json_t *o, const char *key, json_t *v)
{
	return o && v ? json_object_set_new(o, key, v) : (json_decref(v), -1);
}

/* "cluster":{...} of /readyz: each used part's mode, since when, fallbacks; NULL when none is used
 * (left out), or on out of memory (the caller fails). *empty tells which. */
static json_t *http_render_shares(const struct gw_ready_parts *parts, int *empty)
{
	json_t *cl = json_object();
	int rc = cl ? 0 : -1;

	*empty = 1;
	for (unsigned p = 0; rc == 0 && p < GW_REDIS_NPARTS; p++) {
		const struct gw_redis_part_state *ps = parts->shares[p];
		time_t t;
		struct tm tm;
		char since[32] = "";
		json_t *o;

		if (!ps || !ps->used)
			continue;
		t = (time_t)(ps->since_ms / 1000);
		if (gmtime_r(&t, &tm))
			strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
		o = json_pack("{s:s,s:s,s:I}", "mode", ps->local ? "local" : "shared", "since", since,
			      "fallbacks", (json_int_t)ps->fallbacks);
		if (o && ps->local)
			rc = http_set(o, "local", json_string(http_local_means[p]));
		if (rc == 0)
			rc = http_set(cl, gw_redis_part_name((enum gw_redis_part)p), o);
		else
			json_decref(o);
		*empty = 0;
	}
	if (rc != 0 || *empty) {
		json_decref(cl);
		return NULL;
	}
	return cl;
}

/* {"backend":...,"reachable":...[,"why":...]} or {"connected":...[,"why":...]}. */
static json_t *http_reach(const char *backend, const char *key, const char *why)
{
	json_t *o = json_object();

	if (backend && http_set(o, "backend", json_string(backend)) != 0)
		goto fail;
	if (http_set(o, key, json_boolean(!why)) != 0)
		goto fail;
	if (why) {
		/* json_string refuses invalid UTF-8 (a driver's message could hold any byte). */
		json_t *w = json_string(why);

		if (http_set(o, "why", w ? w : json_string("(not valid UTF-8)")) != 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

int gw_http_render_ready(int draining, int grpc_alive, const struct gw_account_rt *accounts,
			 size_t naccounts, const struct gw_ready_parts *parts, struct evbuffer *out)
{
	const char *state_backend = parts && parts->state_backend ? parts->state_backend : "none";
	int ready = !draining && grpc_alive;
	json_t *doc = NULL, *accts = NULL, *cl;
	char *text = NULL;
	int rc = -1, empty;

	/* Only "rejected" (this pod's credentials are wrong) makes the pod unready: an unreachable
	 * upstream ("backoff") affects every replica alike, and dropping them all from the Service would
	 * turn clean UNAVAILABLE answers into connection errors. */
	for (size_t i = 0; i < naccounts; i++)
		if (strcmp(gw_session_state(&accounts[i]), "rejected") == 0)
			ready = 0;
	/* jansson writes the document: account names and drivers' messages are escaped as JSON
	 * requires, whatever bytes they hold. Keys keep their insertion order. */
	doc = json_pack("{s:b,s:b,s:s}", "ready", ready, "draining", draining, "grpc_listener",
			grpc_alive ? "accepting" : "dead");
	accts = json_array();
	if (!doc || !accts)
		goto out;
	for (size_t i = 0; i < naccounts; i++) {
		json_t *name = json_string(gw_session_name(&accounts[i]));

		if (json_array_append_new(accts, json_pack("{s:o,s:s}", "name",
							    name ? name : json_string("?"), "state",
							    gw_session_state(&accounts[i]))) != 0)
			goto out;
	}
	rc = http_set(doc, "accounts", accts);
	accts = NULL;
	if (rc == 0)
		rc = http_set(doc, "state", http_reach(state_backend, "reachable",
						       parts ? parts->state_why : NULL));
	if (rc == 0 && parts && parts->redis)
		rc = http_set(doc, "redis", http_reach(NULL, "connected", parts->redis_why));
	if (rc == 0 && parts && parts->limits)
		rc = http_set(doc, "limits", json_string(parts->limits));
	if (rc == 0 && parts) {
		cl = http_render_shares(parts, &empty);
		if (!empty)
			rc = http_set(doc, "cluster", cl);
	}
	if (rc == 0)
		text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		rc = -1;
out:
	if (rc == 0)
		evbuffer_add_printf(out, "%s\n", text);
	else	/* out of memory: still an answer a probe and a person can read */
		evbuffer_add_printf(out, "{\"ready\":%s,\"error\":\"out of memory\"}\n",
				    ready ? "true" : "false");
	free(text);
	json_decref(accts);
	json_decref(doc);
	return ready;
}

static void http_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
		       struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

/* The service route that takes req (method and path), with its state; NULL when none does. */
static const struct gw_http_route *http_route(const struct gw_env *env, int cmd, const char *path,
					      void **state)
{
	for (size_t i = 0; i < env->nsvcs; i++) {
		const struct gw_svc *d = env->svcs[i].desc;

		for (size_t k = 0; k < d->nroutes; k++) {
			const struct gw_http_route *r = &d->routes[k];
			size_t n = strlen(r->prefix);

			if (!(r->methods & cmd) || strncmp(path, r->prefix, n) != 0 ||
			    (r->exact && path[n] != '\0'))
				continue;
			*state = env->svcs[i].state;
			return r;
		}
	}
	return NULL;
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
	struct gw_http *h = arg;
	struct gw_env *env = h->env;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	int cmd = (int)evhttp_request_get_command(req);
	const struct gw_http_route *route;
	struct evbuffer *body;
	void *state = NULL;
	int ready;

	env->stats.http_requests++;
	gw_conncap_request(h->cap, req);
	if (!path)
		path = "/";
	/* The services' routes first (upstream webhook deliveries are webhook_in's). */
	route = http_route(env, cmd, path, &state);
	if (route) {
		route->handle(state, req);	/* answers req */
		return;
	}
	body = evbuffer_new();
	if (!body) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evbuffer_add_printf(body, "method not allowed\n");
		http_reply(req, 405, "Method Not Allowed", "text/plain", body);
	} else if (strcmp(path, "/healthz") == 0) {
		/* A gRPC listener that stopped accepting never comes back (gRPC core 1.51): only a
		 * restart helps, so liveness fails. Not while draining: the listener is closed then. */
		if (env->draining || gw_listenprobe_alive(h->probe)) {
			evbuffer_add_printf(body, "ok\n");
			http_reply(req, 200, "OK", "text/plain", body);
		} else {
			evbuffer_add_printf(body, "gRPC listener not accepting connections\n");
			http_reply(req, 503, "Service Unavailable", "text/plain", body);
		}
	} else if (strcmp(path, "/readyz") == 0) {
		struct gw_ready_parts parts = {
			env->store ? gw_store_backend(env->store) : NULL,
			env->store ? gw_store_unready(env->store) : NULL, env->redis != NULL,
			env->redis && !gw_redis_connected(env->redis) ? gw_redis_last_error(env->redis) : NULL,
			env->redis ? (gw_admit_shared(env->admit) ? "shared" : "local") : NULL, { NULL }
		};

		for (unsigned p = 0; p < GW_REDIS_NPARTS; p++)
			parts.shares[p] = gw_redis_part(env->redis, (enum gw_redis_part)p);

		ready = gw_http_render_ready(env->draining, gw_listenprobe_alive(h->probe), env->accounts,
					     env->naccounts, &parts, body);
		http_reply(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable",
			   "application/json", body);
	} else if (strcmp(path, "/metrics") == 0) {
		/* Every module registered its families (gateway/base/metrics.h). */
		if (gw_metrics_render_all(&env->metrics_reg, body) == 0)
			http_reply(req, 200, "OK", "text/plain; version=0.0.4", body);
		else
			evhttp_send_error(req, 500, "metrics rendering failed");
	} else {
		env->stats.http_not_found++;
		evbuffer_add_printf(body, "not found\n");
		http_reply(req, 404, "Not Found", "text/plain", body);
	}
	evbuffer_free(body);
}

struct gw_http *gw_http_new(struct gw_env *env, int grpc_port, char *err, size_t errlen)
{
	struct gw_http *h = calloc(1, sizeof *h), *ret = NULL;
	char host[HTTP_MAX_HOST];
	unsigned short port;
	const char *addr = env->cfg->http_listen;
	struct evhttp_bound_socket *bound;
	size_t max_conns;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	h->env = env;
	if (gw_http_split_hostport(addr, host, sizeof host, &port)) {
		snprintf(err, errlen, "invalid HTTP listen address %s (want host:port)", addr);
		goto out;
	}
	h->http = evhttp_new(env->base);
	if (!h->http) {
		snprintf(err, errlen, "cannot create the HTTP listener");
		goto out;
	}
	evhttp_set_max_headers_size(h->http, GW_HTTP_MAX_HEADERS_SIZE);
	/* Webhook deliveries take a body: twice their limit here, so most oversized ones reach
	 * gateway/svc/webhook_in.c and are counted there (evhttp refuses the rest, uncounted). */
	evhttp_set_max_body_size(h->http, 2 * GW_WEBHOOK_IN_MAX_BODY);
	evhttp_set_timeout(h->http, GW_HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(h->http, http_on_request, h);
	/* The cap comes from the open-file limit (raised to the hard one by main): an uncapped
	 * listener ran the process out of descriptors, which kills gRPC core's listener for good. */
	max_conns = gw_fdlimit_http_cap(gw_fdlimit_current(), env->cfg->process.open_files_reserve,
					env->cfg->http.max_connections, err, errlen);
	if (!max_conns)
		goto out;
	bound = evhttp_bind_socket_with_handle(h->http, host, port);
	if (!bound) {
		snprintf(err, errlen, "cannot listen for HTTP on %s (address in use or invalid)", addr);
		goto out;
	}
	h->cap = gw_conncap_new(env->base, h->http, evhttp_bound_socket_get_listener(bound), max_conns,
				GW_HTTP_TIMEOUT_S, err, errlen);
	if (!h->cap)
		goto out;
	if (gw_metrics_register(&env->metrics_reg, gw_conncap_render_metrics, h->cap) != 0) {
		snprintf(err, errlen, "too many metrics renderers");
		goto out;
	}
	if (http_probe_new(h, grpc_port, err, errlen) != 0)
		goto out;
	gw_log(GW_LOG_INFO, "http", GW_LS("msg", "HTTP connection cap"), GW_LN("max_connections", max_conns),
	       GW_LN("open_files", (long long)gw_fdlimit_current()),
	       GW_LN("reserve", env->cfg->process.open_files_reserve), GW_LEND);
	ret = h;
	h = NULL;
out:
	gw_http_free(h);
	return ret;
}

size_t gw_http_max_connections(const struct gw_http *h)
{
	struct gw_conncap_stats s;

	if (!h || !h->cap)
		return 0;
	gw_conncap_stats(h->cap, &s);
	return s.max;
}

void gw_http_free(struct gw_http *h)
{
	if (!h)
		return;
	/* Unregistering what was never registered is a no-op. */
	gw_metrics_unregister(&h->env->metrics_reg, gw_listenprobe_render_metrics, h->probe);
	gw_metrics_unregister(&h->env->metrics_reg, gw_conncap_render_metrics, h->cap);
	gw_listenprobe_free(h->probe);
	gw_conncap_detach(h->cap);
	if (h->http)
		evhttp_free(h->http);
	gw_conncap_free(h->cap);
	free(h);
}
