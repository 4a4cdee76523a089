/*
 * webhook_in: parse and verify job.completed deliveries, and the HTTP route. See webhook_in.h.
 */
#include "gateway/svc/webhook_in.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "gateway/config/config.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/notify.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/state/store.h"
#include "gateway/svc/follower.h"
#include "gateway/svc/status.h"

#define WEBHOOK_IN_MAX_DEPTH 8		/* JSON nesting accepted in a delivery */

int gw_webhook_in_match(const char *prefix, const char *path)
{
	if (!prefix)
		prefix = GW_WEBHOOK_IN_PREFIX;
	return path && strncmp(path, prefix, strlen(prefix)) == 0;
}

int gw_webhook_in_verify(const char *sig, const char *client_id)
{
	size_t a, b;

	if (!sig || !client_id)
		return 0;
	a = strnlen(sig, GW_WEBHOOK_IN_MAX_SIG + 1);
	b = strlen(client_id);
	/* The length is not secret-dependent in a useful way; the bytes are compared in constant time. */
	if (a != b || a == 0 || a > GW_WEBHOOK_IN_MAX_SIG)
		return 0;
	return CRYPTO_memcmp(sig, client_id, a) == 0;
}

static int webhook_in_depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *it;
	size_t i;

	if (depth > WEBHOOK_IN_MAX_DEPTH)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, k, it)
			if (!webhook_in_depth_ok(it, depth + 1))
				return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, it)
			if (!webhook_in_depth_ok(it, depth + 1))
				return 0;
	}
	return 1;
}

int gw_webhook_in_parse(const char *body, size_t len, struct gw_webhook_in_event *ev)
{
	json_t *root = NULL, *data, *v;
	const char *type, *rid, *status;
	int rc = -1;

	memset(ev, 0, sizeof *ev);
	if (!body || len == 0 || len > GW_WEBHOOK_IN_MAX_BODY)
		goto out;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root) || !webhook_in_depth_ok(root, 0))
		goto out;
	v = json_object_get(root, "eventType");
	if (!json_is_string(v))
		goto out;
	type = json_string_value(v);
	if (strcmp(type, "job.completed") != 0) {
		rc = 0;		/* another event: authentic but nothing to do */
		goto out;
	}
	data = json_object_get(root, "data");
	if (!json_is_object(data))
		goto out;
	v = json_object_get(data, "taskId");
	rid = json_is_string(v) ? json_string_value(v) : NULL;
	v = json_object_get(data, "status");
	status = json_is_string(v) ? json_string_value(v) : NULL;
	if (!rid || !gw_tr_rid_valid(rid) || !status)
		goto out;
	if (strcmp(status, "success") != 0 && strcmp(status, "failure") != 0)
		goto out;
	strcpy(ev->rid, rid);	/* gw_tr_rid_valid bounds it to GW_TR_RID_MAX */
	ev->success = strcmp(status, "success") == 0;
	ev->completed = 1;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int gw_webhook_in_check_at(const struct gw_config *cfg, const char *prefix,
			   const struct gw_webhook_token *tok, int64_t now_ms, const char *path,
			   const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			   struct gw_webhook_in_counters *cnt)
{
	const char *name, *slash;
	int acct, which = 0;

	if (!prefix)
		prefix = GW_WEBHOOK_IN_PREFIX;
	memset(ev, 0, sizeof *ev);
	if (!cfg || !gw_webhook_in_match(prefix, path)) {
		cnt->rej_path++;
		return 404;
	}
	name = path + strlen(prefix);
	/* <token>/<account>: the token first, so that nothing about accounts can be probed without
	 * it. A previous token in its grace is accepted even when tokens were turned off since. */
	slash = strchr(name, '/');
	if (slash) {
		which = gw_webhook_token_match(tok, name, (size_t)(slash - name), now_ms);
		if (!which) {
			if (tok && tok->set)
				cnt->rej_token++;
			else
				cnt->rej_path++;
			return 404;
		}
		name = slash + 1;
	} else if (tok && tok->set) {
		cnt->rej_token++;
		return 404;
	}
	acct = strchr(name, '/') ? -1 : gw_config_account_index(cfg, name);
	if (acct < 0) {
		cnt->rej_path++;
		return 404;
	}
	if (len > GW_WEBHOOK_IN_MAX_BODY) {
		cnt->rej_size++;
		return 413;
	}
	if (!gw_webhook_in_verify(sig, cfg->accounts[acct].client_id)) {
		cnt->rej_signature++;
		return 401;
	}
	if (gw_webhook_in_parse(body, len, ev) != 0) {
		cnt->rej_malformed++;
		return 400;
	}
	ev->account = (size_t)acct;
	ev->old_token = which == 2;
	cnt->old_token += which == 2;
	if (ev->completed)
		cnt->accepted++;
	else
		cnt->ignored++;
	return 200;
}

int gw_webhook_in_check(const struct gw_config *cfg, const char *prefix, const char *path,
			const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			struct gw_webhook_in_counters *cnt)
{
	return gw_webhook_in_check_at(cfg, prefix, NULL, 0, path, sig, body, len, ev, cnt);
}

/* ---- the runtime ---- */

struct gw_webhook_in *gw_webhook_in_new(const struct gw_config *cfg, size_t naccounts, int64_t now_ms,
					char *err, size_t errlen)
{
	struct gw_webhook_in *w = calloc(1, sizeof *w);
	char why[256];

	if (!w || !(w->refresh = calloc(naccounts ? naccounts : 1, sizeof *w->refresh))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	w->naccounts = naccounts;
	for (size_t i = 0; i < naccounts; i++)
		gw_bucket_init(&w->refresh[i], cfg->webhooks.refresh_per_second, cfg->webhooks.refresh_burst,
			       now_ms);
	if (gw_webhook_token_init(&w->token, cfg->webhooks.path_token_file, why, sizeof why) != 0) {
		snprintf(err, errlen, "%s:%d: webhooks.path_token_file: %s", cfg->path ? cfg->path : "?",
			 cfg->webhooks.path_token_line, why);
		goto fail;
	}
	if (w->token.set)
		gw_log(GW_LOG_INFO, "webhook_in", GW_LS("msg", "webhook path token loaded"),
		       GW_LS("fingerprint", w->token.cur_fp), GW_LEND);
	else if (cfg->webhooks.public_url)
		gw_log(GW_LOG_WARN, "webhook_in",
		       GW_LS("msg", "webhooks.public_url is set without webhooks.path_token_file: anyone who "
				    "can reach the HTTP listener can post deliveries (their signature is the "
				    "client id, not a secret); set a path token"), GW_LEND);
	return w;
fail:
	gw_webhook_in_free(w);
	return NULL;
}

void gw_webhook_in_free(struct gw_webhook_in *w)
{
	if (!w)
		return;
	gw_webhook_token_clear(&w->token);
	free(w->refresh);
	free(w);
}

int gw_webhook_in_reload(struct gw_webhook_in *w, const struct gw_config *cfg, int64_t now_ms)
{
	char why[256], prev_fp[GW_WEBHOOK_TOKEN_FP];
	int r;

	if (!w || !cfg)
		return 0;
	for (size_t i = 0; i < w->naccounts; i++)
		gw_bucket_set(&w->refresh[i], cfg->webhooks.refresh_per_second, cfg->webhooks.refresh_burst,
			      now_ms);
	snprintf(prev_fp, sizeof prev_fp, "%s", w->token.set ? w->token.cur_fp : "-");
	r = gw_webhook_token_reload(&w->token, cfg->webhooks.path_token_file,
				    (int64_t)cfg->webhooks.path_token_grace_s * 1000, now_ms, why, sizeof why);
	if (r < 0)
		gw_log(GW_LOG_ERROR, "webhook_in",
		       GW_LS("msg", "cannot reload the webhook path token, keeping the one in force"),
		       GW_LS("error", why), GW_LEND);
	else if (r == 1)
		gw_log(GW_LOG_INFO, "webhook_in", GW_LS("msg", "webhook path token rotated"),
		       GW_LS("fingerprint", w->token.set ? w->token.cur_fp : "-"),
		       GW_LS("previous", prev_fp), GW_LN("grace_s", cfg->webhooks.path_token_grace_s),
		       GW_LEND);
	return r == 1;
}

const char *gw_webhook_in_token(const struct gw_webhook_in *w)
{
	return w ? gw_webhook_token_current(&w->token) : NULL;
}

static void webhook_in_metrics(void *state, struct gw_metrics_out *o)
{
	static const struct {
		const char *family, *result;
		size_t off;
	} rows[] = {
		{ "webhooks_in_total", "accepted", offsetof(struct gw_webhook_in_counters, accepted) },
		{ "webhooks_in_total", "ignored", offsetof(struct gw_webhook_in_counters, ignored) },
		{ "webhooks_in_total", "bad_path", offsetof(struct gw_webhook_in_counters, rej_path) },
		{ "webhooks_in_total", "bad_token", offsetof(struct gw_webhook_in_counters, rej_token) },
		{ "webhooks_in_total", "bad_signature",
		  offsetof(struct gw_webhook_in_counters, rej_signature) },
		{ "webhooks_in_total", "too_large", offsetof(struct gw_webhook_in_counters, rej_size) },
		{ "webhooks_in_total", "malformed",
		  offsetof(struct gw_webhook_in_counters, rej_malformed) },
		{ "webhook_refreshes_total", "refreshed",
		  offsetof(struct gw_webhook_in_counters, refreshed) },
		{ "webhook_refreshes_total", "unknown_rid",
		  offsetof(struct gw_webhook_in_counters, unknown_rid) },
		{ "webhook_refreshes_total", "rate_limited",
		  offsetof(struct gw_webhook_in_counters, rate_limited) },
		{ "webhook_refreshes_total", "failed",
		  offsetof(struct gw_webhook_in_counters, refresh_failed) },
	};
	const struct gw_webhook_in *w = state;
	char labels[48];

	gw_metrics_family(o, "webhooks_in_total", "counter", "Upstream webhook deliveries by outcome.");
	gw_metrics_family(o, "webhook_refreshes_total", "counter",
			  "What accepted deliveries did: refreshed the rid, or were dropped (a rid "
			  "that is nobody's here, the account's refresh budget spent), or failed.");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)&w->cnt + rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "result=\"%s\"", rows[i].result);
		gw_metrics_value(o, rows[i].family, labels, v);
	}
	gw_metrics_one(o, "webhooks_in_old_token_total", "counter",
		       "Authentic deliveries with the previous path token, within its grace.",
		       w->cnt.old_token);
	gw_metrics_one(o, "webhook_path_token", "gauge", "1 when deliveries need the path token.",
		       w->token.set ? 1 : 0);
}

/* The service's state: the runtime and the environment its route reads. */
struct webhook_in_svc {
	struct gw_env *env;
	struct gw_webhook_in *w;
	uint64_t token_gen;		/* bumped by every rotation, for the registration */
};

/* ---- the HTTP route ---- */

/* The refresh of one accepted job.completed, once its owner is known. */
struct webhook_in_job {
	struct webhook_in_svc *x;
	struct gw_webhook_in_event ev;
	int64_t now_ms;
	int answered;		/* the store answered before the delivery was replied to */
	int http;
	const char *why;
};

/* Refreshes the rid if the account's budget allows: the HTTP status (200, or 503 when upstream
 * should deliver again), *why for the log ("" when refreshed). */
static int webhook_in_refresh(struct webhook_in_svc *x, const struct gw_webhook_in_event *ev,
			      int64_t now_ms, const char **why)
{
	struct gw_webhook_in *w = x->w;
	struct gw_status *st = gw_status_ctx_status(gw_status_ctx_of(x->env));
	struct gw_bucket *budget = ev->account < w->naccounts ? &w->refresh[ev->account] : NULL;

	if (budget && !gw_bucket_take(budget, 1, now_ms, NULL)) {
		w->cnt.rate_limited++;
		*why = "refresh budget of the account spent: dropped";
		return 200;
	}
	if (!st || gw_status_refresh(st, ev->account, ev->rid) != 0) {
		w->cnt.refresh_failed++;
		*why = "nothing refreshed";
		return st ? 503 : 200;	/* 503: let upstream deliver again */
	}
	w->cnt.refreshed++;
	gw_follower_webhook_seen(x->env, ev->account, ev->rid);
	return 200;
}

/* The owner of a rid the batcher does not track: one of this account's tenants, or dropped. */
static void webhook_in_owner(void *arg, const struct gw_store_res *res)
{
	struct webhook_in_job *j = arg;
	struct gw_webhook_in *w = j->x->w;
	const struct gw_config *cfg = j->x->env->cfg;
	int t;

	if (res->rc != 0) {
		w->cnt.refresh_failed++;
		j->why = "state store error";
		j->http = 503;
	} else {
		t = res->tenants[0] ? gw_config_tenant_index(cfg, res->tenants[0]) : -1;
		if (t < 0 || cfg->tenants[t].account_idx != j->ev.account) {
			w->cnt.unknown_rid++;
			j->why = "unknown rid: dropped";
			j->http = 200;
		} else {
			j->http = webhook_in_refresh(j->x, &j->ev, j->now_ms, &j->why);
		}
	}
	if (j->answered)	/* the delivery was answered already (a store that answers later) */
		free(j);
	else
		j->answered = 1;
}

/*
 * An accepted job.completed: refresh the rid if it is the gateway's. Ours: tracked by the
 * batcher (wanted or watched lately: see_foreign_jobs callers' rids too), else recorded for a
 * tenant of this very account. Returns the HTTP status and sets *why for the log ("" when
 * refreshed). When the store answers later (PostgreSQL), the delivery is answered 200 at once
 * and the refresh happens when it does: nothing is lost, watchers poll anyway.
 */
static int webhook_in_job(struct webhook_in_svc *x, const struct gw_webhook_in_event *ev,
			  int64_t now_ms, const char **why)
{
	struct gw_status *st = gw_status_ctx_status(gw_status_ctx_of(x->env));
	struct webhook_in_job *j;
	int http;

	*why = "";
	if (gw_status_tracked(st, ev->account, ev->rid))
		return webhook_in_refresh(x, ev, now_ms, why);
	if (!x->env->store) {
		x->w->cnt.unknown_rid++;
		*why = "unknown rid: dropped";
		return 200;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		x->w->cnt.refresh_failed++;
		*why = "out of memory";
		return 503;
	}
	j->x = x;
	j->ev = *ev;
	j->now_ms = now_ms;
	j->why = "";
	gw_store_owner_lookup(x->env->store, GW_OBJ_JOB, (const char *const[]){ j->ev.rid }, 1,
			      webhook_in_owner, j);
	if (!j->answered) {
		j->answered = 1;	/* webhook_in_owner frees it */
		*why = "";	/* not dropped: refreshed when the store answers */
		return 200;
	}
	http = j->http;
	*why = j->why;		/* a static string */
	free(j);
	return http;
}

/* Every POST is a delivery: one outside the configured prefix is answered (and counted) 404, so
 * probing for the path shows in the counters. */
static void webhook_in_http(void *state, struct evhttp_request *req)
{
	struct webhook_in_svc *x = state;
	struct gw_webhook_in *w = x->w;
	struct gw_env *env = x->env;
	const char *prefix = gw_webhook_in_prefix(env->boot_cfg);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req),
					     GW_WEBHOOK_IN_HEADER);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t len = in ? evbuffer_get_length(in) : 0;
	const char *body = NULL;
	struct gw_webhook_in_event ev;
	int64_t now_ms = gw_clock_now_us() / 1000;
	const char *reason, *why = "";
	uint64_t suppressed = 0;
	int http;

	/* Only a body within the limit is made contiguous; a larger one is judged by its length. */
	if (len && len <= GW_WEBHOOK_IN_MAX_BODY)
		body = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	http = gw_webhook_in_check_at(env->cfg, prefix, &w->token, now_ms, path, sig, body ? body : "",
				      len, &ev, &w->cnt);
	if (http == 200 && ev.completed)
		http = webhook_in_job(x, &ev, now_ms, &why);
	switch (http) {
	case 200: reason = "OK"; break;
	case 400: reason = "Bad Request"; break;
	case 401: reason = "Unauthorized"; break;
	case 404: reason = "Not Found"; break;
	case 413: reason = "Payload Too Large"; break;
	default: reason = "Service Unavailable"; break;
	}
	/* Whoever can reach the listener sets the rate of these lines: a budget per second. */
	if ((http != 200 || why[0]) && gw_lograte_allow(&w->log, now_ms, 0, &suppressed))
		gw_log(http == 401 ? GW_LOG_WARN : GW_LOG_INFO, "webhook_in",
		       GW_LS("msg", http == 200 ? "webhook delivery dropped" : "webhook delivery rejected"),
		       GW_LN("http", http), GW_LS("reason", why[0] ? why : reason),
		       GW_LN("suppressed", suppressed), GW_LEND);
	if (out) {
		evbuffer_add_printf(out, "%s\n", reason);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	}
	evhttp_send_reply(req, http, reason, out);
	if (out)
		evbuffer_free(out);
}

const char *gw_webhook_in_prefix(const struct gw_config *cfg)
{
	return cfg && cfg->webhooks.path_prefix ? cfg->webhooks.path_prefix : GW_WEBHOOK_IN_PREFIX;
}

/* ---- the service ---- */

static void webhook_in_on_reload(void *arg, const void *data)
{
	struct webhook_in_svc *x = arg;

	if (gw_webhook_in_reload(x->w, data, gw_clock_now_us() / 1000))
		x->token_gen++;
}

static int webhook_in_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct webhook_in_svc *x = calloc(1, sizeof *x);

	if (!x) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->env = env;
	/* The webhook path token is a Secret: an unusable file stops the start, like client
	 * secrets do. */
	x->w = gw_webhook_in_new(env->boot_cfg, env->naccounts, gw_clock_now_us() / 1000, err, errlen);
	if (!x->w || gw_notify_sub(&env->reload, webhook_in_on_reload, x) != 0) {
		if (x->w)
			snprintf(err, errlen, "too many reload subscribers");
		gw_webhook_in_free(x->w);
		free(x);
		return -1;
	}
	*state = x;
	return 0;
}

static void webhook_in_svc_free(void *state)
{
	struct webhook_in_svc *x = state;

	if (!x)
		return;
	gw_notify_unsub(&x->env->reload, webhook_in_on_reload, x);
	gw_webhook_in_free(x->w);
	free(x);
}

static void webhook_in_svc_metrics(void *state, struct gw_metrics_out *o)
{
	webhook_in_metrics(((struct webhook_in_svc *)state)->w, o);
}

static const struct gw_http_route webhook_in_routes[] = {
	{ EVHTTP_REQ_POST, "/", 0, webhook_in_http },
};

const struct gw_svc gw_svc_webhook_in = {
	.name = "webhook_in",
	.init = webhook_in_init,
	.free = webhook_in_svc_free,
	.metrics = webhook_in_svc_metrics,
	.routes = webhook_in_routes,
	.nroutes = sizeof webhook_in_routes / sizeof webhook_in_routes[0],
};

const char *gw_webhook_in_service_token(const struct gw_env *env, uint64_t *gen)
{
	const struct webhook_in_svc *x = gw_env_svc(env, &gw_svc_webhook_in);

	if (gen)
		*gen = x ? x->token_gen : 0;
	return x ? gw_webhook_in_token(x->w) : NULL;
}
