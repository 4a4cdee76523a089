/*
 * webhook_out: the tenant webhook outbox and its delivery. See webhook_out.h; the handlers of
 * the Webhooks service are in webhook_out_rpc.c.
 */
#include "gateway/svc/webhook_out.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gateway/base/clock.h"
#include "gateway/base/curlev.h"
#include "gateway/base/log.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/webhook_out_dest.h"
#include "gateway/svc/webhook_out_int.h"
#include "gateway/svc/webhook_out_sign.h"

#define WH_UA "animate3d-gateway-webhooks/1"

/* One claimed row: a delivery attempt (or a deferral), then its settle and health writes. */
struct wh_send {
	struct gw_webhook_out *w;
	struct wh_send *prev, *next;
	CURL *e;
	struct curl_slist *hdrs;
	struct gw_outbox_row row;
	char msg_id[GW_WH_MSG_ID_MAX + 1];
	int deferred;			/* no attempt: back to the queue */
	int ok;				/* the attempt was answered 2xx */
	int settle_state;
	int refused_addr;		/* the resolved address was not public */
	int too_large;
	long http;
	size_t rlen;
	char why[192];			/* the failure, for the log and a disable reason */
};

static int64_t wh_now_ms(void)
{
	return gw_clock_wall_ms();
}

static const struct gw_config *wh_cfg(const struct gw_webhook_out *w)
{
	return w->env->cfg;
}

struct wh_tenant *gw_wh_out_tenant(struct gw_webhook_out *w, const char *tenant)
{
	struct wh_tenant *t;

	for (size_t i = 0; i < w->ntenants; i++)
		if (strcmp(w->tenants[i].name, tenant) == 0)
			return &w->tenants[i];
	if (w->ntenants >= GW_WH_OUT_MAX_TENANTS)
		return &w->tenants[GW_WH_OUT_MAX_TENANTS];	/* "other" */
	t = &w->tenants[w->ntenants++];
	snprintf(t->name, sizeof t->name, "%s", tenant);
	return t;
}

/* ---- the end of a claimed row: settle, health, free ---- */

static void wh_send_free(struct wh_send *s)
{
	struct gw_webhook_out *w = s->w;

	if (s->prev)
		s->prev->next = s->next;
	else
		w->sends = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsends--;
	if (s->e) {
		curl_multi_remove_handle(w->multi, s->e);
		curl_easy_cleanup(s->e);
	}
	curl_slist_free_all(s->hdrs);
	OPENSSL_cleanse(s->row.secret, sizeof s->row.secret);
	free(s);
}

static void wh_health_done(void *arg, const struct gw_store_res *res)
{
	struct wh_send *s = arg;
	struct gw_webhook_out *w = s->w;

	w->store_ops--;
	if (res->rc == 0 && res->count == 1) {
		w->cnt.disabled++;
		gw_log(GW_LOG_WARN, "webhook_endpoint_disabled", GW_LS("tenant", s->row.tenant),
		       GW_LS("endpoint", s->row.endpoint), GW_LS("reason", s->why), GW_LEND);
	}
	wh_send_free(s);
}

static void wh_settle_done(void *arg, const struct gw_store_res *res)
{
	struct wh_send *s = arg;
	struct gw_webhook_out *w = s->w;
	const struct gw_config *cfg = wh_cfg(w);
	char reason[GW_STORE_HOOK_REASON_MAX + 1];
	struct gw_hook_req r = { .op = GW_HOOK_HEALTH, .tenant = s->row.tenant, .id = s->row.endpoint,
				 .now_ms = wh_now_ms(), .reason = reason };

	w->store_ops--;
	if (res->rc == GW_STORE_CONFLICT)
		w->cnt.settle_lost++;
	else if (res->rc != 0)
		w->cnt.settle_failed++;	/* the lease runs out: the row is attempted again */
	if (s->deferred) {
		wh_send_free(s);
		return;
	}
	r.ok = s->ok;
	r.disable_after_ms = cfg->webhooks.delivery.disable_after_s * 1000;
	snprintf(reason, sizeof reason, "deliveries failing for %lds or more (last: %.140s)",
		 cfg->webhooks.delivery.disable_after_s, s->why);
	w->store_ops++;
	gw_store_hook(w->env->store, &r, wh_health_done, s);
}

static void wh_settle(struct wh_send *s, int state, int attempts, int64_t next_ms)
{
	struct gw_webhook_out *w = s->w;
	struct gw_hook_req r = { .op = GW_OUTBOX_SETTLE, .tenant = s->row.tenant,
				 .id = s->row.endpoint, .rid = s->row.rid, .lease = w->env->instance,
				 .state = state, .attempts = attempts, .next_ms = next_ms,
				 .now_ms = wh_now_ms() };

	s->settle_state = state;
	w->store_ops++;
	gw_store_hook(w->env->store, &r, wh_settle_done, s);
}

static uint32_t wh_rand32(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = (uint32_t)gw_clock_now_us();	/* jitter only: any value spreads retries */
	return r;
}

/* An attempt ended (s->ok, s->http, s->why): the outcome, its figures and one log line. */
static void wh_attempt_done(struct wh_send *s)
{
	struct gw_webhook_out *w = s->w;
	struct wh_tenant *t = gw_wh_out_tenant(w, s->row.tenant);
	int64_t now = wh_now_ms();
	int attempts = s->row.attempts + 1;
	int64_t give_up_ms = wh_cfg(w)->webhooks.delivery.give_up_s * 1000;
	int64_t next = 0;
	int state;
	const char *outcome;

	if (s->ok) {
		state = GW_OUTBOX_DELIVERED;
		outcome = "delivered";
		t->delivered++;
		gw_metrics_observe(&t->latency, (now - s->row.created_ms) * 1000);
	} else if (now - s->row.created_ms >= give_up_ms) {
		state = GW_OUTBOX_FAILED;
		outcome = "failed";
		t->failed++;
	} else {
		state = GW_OUTBOX_PENDING;
		outcome = "retry";
		next = now + gw_wh_backoff_ms((unsigned)(attempts - 1), wh_rand32());
		t->retried++;
	}
	gw_log(s->ok ? GW_LOG_INFO : GW_LOG_WARN, "webhook_delivery", GW_LS("tenant", s->row.tenant),
	       GW_LS("endpoint", s->row.endpoint), GW_LS("rid", s->row.rid),
	       GW_LS("webhook_id", s->msg_id), GW_LS("outcome", outcome), GW_LN("http", s->http),
	       GW_LN("attempt", attempts), GW_LS("error", s->ok ? "" : s->why),
	       GW_LN("retry_in_ms", next ? next - now : 0), GW_LEND);
	wh_settle(s, state, attempts, next);
}

/* ---- curl on the loop (the hiperfifo pattern, as gateway/upstream/upstream.c) ---- */

static void wh_check_done(struct gw_webhook_out *w)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(w->multi, &left))) {
		struct wh_send *s = NULL;
		long code = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		s->http = code;
		if (m->data.result == CURLE_OK ||
		    (m->data.result == CURLE_WRITE_ERROR && s->too_large))
			s->ok = code >= 200 && code <= 299;
		if (s->too_large)
			w->refused.response_too_large++;
		if (s->ok)
			s->why[0] = '\0';
		else if (s->refused_addr)
			snprintf(s->why, sizeof s->why, "the host resolved to a non-public address");
		else if (m->data.result != CURLE_OK && !s->too_large)
			snprintf(s->why, sizeof s->why, "%s", curl_easy_strerror(m->data.result));
		else
			snprintf(s->why, sizeof s->why, "HTTP %ld", code);
		curl_multi_remove_handle(w->multi, s->e);
		curl_easy_cleanup(s->e);
		s->e = NULL;
		wh_attempt_done(s);
	}
}

/* gw_curlev's check: transfers that ended. */
static void wh_on_curl(void *arg)
{
	wh_check_done(arg);
}

/* The answer is ignored: read up to GW_WH_OUT_RESP_MAX bytes, then the transfer is cut. */
static size_t wh_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct wh_send *s = ud;
	size_t len = size * nmemb;

	(void)p;
	if (len > GW_WH_OUT_RESP_MAX - s->rlen) {
		s->too_large = 1;
		return 0;
	}
	s->rlen += len;
	return len;
}

/* Every address curl connects to, after resolution: refused unless public (or allowed). */
static curl_socket_t wh_open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct wh_send *s = clientp;

	(void)purpose;
	if (!wh_cfg(s->w)->webhooks.allow_private_destinations &&
	    gw_wh_dest_addr_class(&a->addr) != NULL) {
		s->refused_addr = 1;
		s->w->refused.resolved_private++;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Adds one header line "name: value"; 0 or -1. */
static int wh_header(struct wh_send *s, const char *name, const char *value)
{
	char line[160];
	struct curl_slist *l;

	snprintf(line, sizeof line, "%s: %s", name, value);
	l = curl_slist_append(s->hdrs, line);
	if (!l)
		return -1;
	s->hdrs = l;
	return 0;
}

/* Starts the POST of s; on failure the attempt ends at once (s->why). */
static void wh_start(struct wh_send *s)
{
	struct gw_webhook_out *w = s->w;
	const struct gw_config *cfg = wh_cfg(w);
	char sig[GW_WH_SIG_MAX + 1], ts[24], err[160];
	int64_t now_s = wh_now_ms() / 1000;
	size_t blen = strlen(s->row.body);
	long tmo = cfg->webhooks.delivery.timeout_ms;
	int rc;

	/* The URL again: the rules or allow_private_destinations may have changed since. */
	rc = gw_wh_dest_check_url(s->row.url, cfg->webhooks.allow_private_destinations, NULL, err,
				  sizeof err);
	if (rc != GW_WH_DEST_OK) {
		w->refused.private_dest += rc == GW_WH_DEST_PRIVATE;
		snprintf(s->why, sizeof s->why, "destination refused: %s", err);
		goto fail;
	}
	snprintf(ts, sizeof ts, "%lld", (long long)now_s);
	if (gw_wh_sign(s->row.secret, s->msg_id, now_s, s->row.body, blen, sig, sizeof sig) != 0 ||
	    wh_header(s, "Content-Type", "application/json") || wh_header(s, "User-Agent", WH_UA) ||
	    wh_header(s, "Expect", "") || wh_header(s, "webhook-id", s->msg_id) ||
	    wh_header(s, "webhook-timestamp", ts) || wh_header(s, "webhook-signature", sig)) {
		snprintf(s->why, sizeof s->why, "cannot sign the request");
		goto fail;
	}
	OPENSSL_cleanse(s->row.secret, sizeof s->row.secret);	/* not needed any more */
	s->e = curl_easy_init();
	if (!s->e) {
		snprintf(s->why, sizeof s->why, "out of memory");
		goto fail;
	}
	curl_easy_setopt(s->e, CURLOPT_URL, s->row.url);
	curl_easy_setopt(s->e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s->e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(s->e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->e, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(s->e, CURLOPT_CONNECTTIMEOUT_MS, tmo);
	curl_easy_setopt(s->e, CURLOPT_POST, 1L);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->row.body);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)blen);
	curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, wh_write_cb);
	curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->e, CURLOPT_OPENSOCKETFUNCTION, wh_open_cb);
	curl_easy_setopt(s->e, CURLOPT_OPENSOCKETDATA, s);
	curl_easy_setopt(s->e, CURLOPT_PRIVATE, (char *)s);
	if (curl_multi_add_handle(w->multi, s->e) != CURLM_OK) {
		curl_easy_cleanup(s->e);
		s->e = NULL;
		snprintf(s->why, sizeof s->why, "cannot start the transfer");
		goto fail;
	}
	return;
fail:
	wh_attempt_done(s);
}

/* ---- the pump: claim due rows, start them ---- */

static unsigned wh_endpoint_busy(const struct gw_webhook_out *w, const char *endpoint)
{
	unsigned n = 0;

	for (const struct wh_send *s = w->sends; s; s = s->next)
		n += !s->deferred && strcmp(s->row.endpoint, endpoint) == 0;
	return n;
}

static void wh_pump(struct gw_webhook_out *w);

static void wh_claim_done(void *arg, const struct gw_store_res *res)
{
	struct gw_webhook_out *w = arg;
	unsigned per = wh_cfg(w)->webhooks.delivery.max_per_endpoint;

	w->store_ops--;
	w->claiming = 0;
	if (res->rc != 0) {
		w->cnt.claim_failed++;
		return;		/* the next pump tick tries again */
	}
	for (long i = 0; i < res->count; i++) {
		struct wh_send *s = calloc(1, sizeof *s);

		if (!s) {
			w->cnt.claim_failed++;	/* its lease runs out; claimed again later */
			continue;
		}
		s->w = w;
		s->row = res->rows[i];
		s->next = w->sends;
		if (w->sends)
			w->sends->prev = s;
		w->sends = s;
		w->nsends++;
		if (gw_wh_sign_msg_id(s->row.endpoint, s->row.rid, s->msg_id) != 0 ||
		    wh_endpoint_busy(w, s->row.endpoint) > per) {
			s->deferred = 1;
			w->refused.no_room++;
			gw_wh_out_tenant(w, s->row.tenant)->deferred++;
			wh_settle(s, GW_OUTBOX_PENDING, s->row.attempts, wh_now_ms() + GW_WH_OUT_DEFER_MS);
			continue;
		}
		wh_start(s);
	}
	if (res->count > 0 || w->again) {
		w->again = 0;
		wh_pump(w);	/* a full claim may have left more due rows */
	}
}

static void wh_pump(struct gw_webhook_out *w)
{
	struct gw_hook_req r = { .op = GW_OUTBOX_CLAIM };
	int64_t now = wh_now_ms();
	unsigned room;

	if (w->claiming) {
		w->again = 1;
		return;
	}
	if (w->draining || !w->env->store || w->nsends >= GW_WH_OUT_MAX_INFLIGHT)
		return;
	room = GW_WH_OUT_MAX_INFLIGHT - w->nsends;
	r.max = room < GW_OUTBOX_CLAIM_MAX ? room : GW_OUTBOX_CLAIM_MAX;
	r.lease = w->env->instance;
	r.now_ms = now;
	r.until_ms = now + wh_cfg(w)->webhooks.delivery.timeout_ms + GW_WH_OUT_LEASE_MS;
	w->claiming = 1;
	w->store_ops++;
	gw_store_hook(w->env->store, &r, wh_claim_done, w);
}

void gw_wh_out_kick(struct gw_webhook_out *w)
{
	wh_pump(w);
}

static void wh_depth_done(void *arg, const struct gw_store_res *res)
{
	struct gw_webhook_out *w = arg;

	w->store_ops--;
	if (res->rc != 0)
		return;
	for (size_t i = 0; i <= GW_WH_OUT_MAX_TENANTS; i++)
		w->tenants[i].depth = 0;
	for (long i = 0; i < res->count; i++)
		gw_wh_out_tenant(w, res->depths[i].tenant)->depth += res->depths[i].pending;
}

static void wh_expire_done(void *arg, const struct gw_store_res *res)
{
	struct gw_webhook_out *w = arg;

	w->store_ops--;
	if (res->rc == 0 && res->count > 0)
		gw_log(GW_LOG_INFO, "webhook_outbox_expired", GW_LN("rows", res->count), GW_LEND);
}

static void wh_on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct gw_webhook_out *w = arg;
	int64_t now = wh_now_ms();

	(void)fd;
	(void)what;
	if (!w->env->store)
		return;
	wh_pump(w);
	if (now >= w->next_depth_ms) {
		struct gw_hook_req r = { .op = GW_OUTBOX_DEPTH };

		w->next_depth_ms = now + GW_WH_OUT_DEPTH_MS;
		w->store_ops++;
		gw_store_hook(w->env->store, &r, wh_depth_done, w);
	}
	if (now >= w->next_expire_ms && !gw_store_read_only(w->env->store)) {
		struct gw_hook_req r = { .op = GW_OUTBOX_EXPIRE, .older_ms = now - GW_OUTBOX_KEEP_MS };

		w->next_expire_ms = now + GW_WH_OUT_EXPIRE_MS;
		w->store_ops++;
		gw_store_hook(w->env->store, &r, wh_expire_done, w);
	}
}

/* ---- the jobevent listener ---- */

struct wh_add {
	struct gw_webhook_out *w;
	gw_jobevent_done_fn done;
	void *done_arg;
};

static void wh_add_done(void *arg, const struct gw_store_res *res)
{
	struct wh_add *a = arg;
	struct gw_webhook_out *w = a->w;

	w->store_ops--;
	if (res->rc == 0) {
		w->cnt.rows += (uint64_t)res->count;
		a->done(a->done_arg, 0);
		if (res->count > 0)
			wh_pump(w);
	} else {
		w->cnt.store_failed++;
		a->done(a->done_arg, -1);
	}
	free(a);
}

void gw_webhook_out_on_final(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done,
			     void *done_arg)
{
	struct gw_webhook_out *w = arg;
	const Animate3d__V1__JobStatus *st = ev->status;
	char *body = NULL;
	struct wh_add *a = NULL;
	struct gw_hook_req r = { .op = GW_OUTBOX_ADD, .event = GW_HOOK_EV_JOB_COMPLETED };

	w->cnt.events++;
	body = gw_wh_sign_body(ev->rid, ev->state, st ? (int)st->error_code : 0,
			       st ? st->error_message : NULL);
	a = malloc(sizeof *a);
	if (!body || !a || !w->env->store) {
		w->cnt.store_failed++;
		free(a);
		done(done_arg, -1);
		goto out;
	}
	a->w = w;
	a->done = done;
	a->done_arg = done_arg;
	r.tenant = ev->tenant;
	r.rid = ev->rid;
	r.body = body;
	r.now_ms = ev->final_at_ms > 0 ? ev->final_at_ms : wh_now_ms();
	w->store_ops++;
	gw_store_hook(w->env->store, &r, wh_add_done, a);	/* copies body */
out:
	free(body);
}

/* ---- the service ---- */

struct gw_webhook_out *gw_webhook_out_of(const struct gw_env *env)
{
	return gw_env_svc(env, &gw_svc_webhook_out);
}

static void wh_free(void *state)
{
	struct gw_webhook_out *w = state;

	if (!w)
		return;
	while (w->sends)
		wh_send_free(w->sends);	/* their leases run out: another start delivers them */
	gw_curlev_free(w->cv);
	if (w->pump_timer)
		event_free(w->pump_timer);
	free(w->tenants);
	free(w);
}

static int wh_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_webhook_out *w = calloc(1, sizeof *w);

	if (!w)
		goto fail;
	w->env = env;
	w->base = env->base;
	w->tenants = calloc(GW_WH_OUT_MAX_TENANTS + 1, sizeof *w->tenants);
	w->cv = gw_curlev_new(env->base, wh_on_curl, w);
	w->multi = w->cv ? gw_curlev_multi(w->cv) : NULL;
	w->pump_timer = event_new(env->base, -1, EV_PERSIST, wh_on_pump, w);
	if (!w->tenants || !w->cv || !w->pump_timer)
		goto fail;
	snprintf(w->tenants[GW_WH_OUT_MAX_TENANTS].name, sizeof w->tenants[0].name, "other");
	*state = w;
	return 0;
fail:
	wh_free(w);
	snprintf(err, errlen, "webhook_out: out of memory");
	return -1;
}

/* One warning line naming the upstream endpoints tenants made before issue 17: they still get
 * every job of the account from upstream (docs/webhooks.md says how to remove them). */
static void wh_legacy_done(void *arg, const struct gw_store_res *res)
{
	struct gw_webhook_out *w = arg;
	char list[GW_HOOK_LEGACY_MAX * 48];
	size_t o = 0;

	w->store_ops--;
	if (res->rc != 0 || res->count == 0)
		return;
	list[0] = '\0';
	for (long i = 0; i < res->count && o < sizeof list; i++) {
		int n = snprintf(list + o, sizeof list - o, "%s%.20s:%.24s", i ? " " : "",
				 res->hooks[i].tenant, res->hooks[i].id);

		if (n < 0)
			break;
		o += (size_t)n;
	}
	gw_log(GW_LOG_WARN, "webhook_legacy_endpoints", GW_LN("count", res->count),
	       GW_LS("endpoints", list),
	       GW_LS("msg", "upstream webhook endpoints created through Webhooks.CreateEndpoint before "
			    "tenant subscriptions receive every job of their account: remove them "
			    "(docs/webhooks.md, \"Endpoints made before\")"),
	       GW_LEND);
}

static void wh_start_svc(void *state)
{
	struct gw_webhook_out *w = state;
	struct timeval tv = { GW_WH_OUT_PUMP_MS / 1000, (GW_WH_OUT_PUMP_MS % 1000) * 1000 };

	if (w->env->cfg->webhooks.upstream_passthrough)
		return;		/* no subscriptions: the Webhooks methods reach upstream */
	event_add(w->pump_timer, &tv);
	event_active(w->pump_timer, 0, 0);	/* rows left by a previous run: at once */
	if (w->env->store) {
		struct gw_hook_req r = { .op = GW_HOOK_LEGACY };

		w->store_ops++;
		gw_store_hook(w->env->store, &r, wh_legacy_done, w);
	}
}

static void wh_drain(void *state)
{
	struct gw_webhook_out *w = state;

	w->draining = 1;	/* attempts in flight finish and settle */
}

static int wh_idle(void *state)
{
	const struct gw_webhook_out *w = state;

	return w->nsends == 0 && w->store_ops == 0;
}

static void wh_metrics(void *state, struct gw_metrics_out *o)
{
	static const struct {
		const char *result;
		size_t off;
	} results[] = {
		{ "delivered", offsetof(struct wh_tenant, delivered) },
		{ "retried", offsetof(struct wh_tenant, retried) },
		{ "failed", offsetof(struct wh_tenant, failed) },
		{ "deferred", offsetof(struct wh_tenant, deferred) },
	};
	static const char *const refusals[] = {
		"bad_url",	     "scheme",	   "credentials", "private_destination",
		"resolved_private", "bad_events", "too_many_endpoints", "bad_field",
		"response_too_large", "no_room",
	};
	const struct gw_webhook_out *w = state;
	const struct wh_refusals *rf = &w->refused;
	const uint64_t rv[sizeof refusals / sizeof refusals[0]] = { rf->bad_url, rf->scheme, rf->credentials, rf->private_dest,
				rf->resolved_private, rf->bad_events, rf->too_many, rf->bad_field,
				rf->response_too_large, rf->no_room };
	char name[GW_STORE_TENANT_MAX * 2 + 1], labels[GW_STORE_TENANT_MAX * 2 + 64];

	gw_metrics_family(o, "webhook_deliveries_total", "counter",
			  "Tenant webhook delivery attempts by outcome: delivered, retried later, "
			  "failed (given up), deferred (the endpoint or replica was at its limit).");
	for (size_t i = 0; i <= GW_WH_OUT_MAX_TENANTS; i++) {
		const struct wh_tenant *t = &w->tenants[i];

		if (i >= w->ntenants && i != GW_WH_OUT_MAX_TENANTS)
			continue;
		gw_metrics_label(t->name, name, sizeof name);
		for (size_t k = 0; k < sizeof results / sizeof results[0]; k++) {
			uint64_t v;

			memcpy(&v, (const char *)t + results[k].off, sizeof v);
			snprintf(labels, sizeof labels, "tenant=\"%s\",result=\"%s\"", name,
				 results[k].result);
			gw_metrics_value(o, "webhook_deliveries_total", labels, v);
		}
	}
	gw_metrics_family(o, "webhook_queue_depth", "gauge",
			  "Tenant webhook events waiting for delivery (every replica's), per tenant.");
	for (size_t i = 0; i <= GW_WH_OUT_MAX_TENANTS; i++) {
		if (i >= w->ntenants && i != GW_WH_OUT_MAX_TENANTS)
			continue;
		gw_metrics_label(w->tenants[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", name);
		gw_metrics_value(o, "webhook_queue_depth", labels,
				 (uint64_t)(w->tenants[i].depth > 0 ? w->tenants[i].depth : 0));
	}
	gw_metrics_family(o, "webhook_delivery_latency_seconds", "histogram",
			  "From a job's final state seen to its webhook delivered, per tenant.");
	for (size_t i = 0; i <= GW_WH_OUT_MAX_TENANTS; i++) {
		if (i >= w->ntenants && i != GW_WH_OUT_MAX_TENANTS)
			continue;
		gw_metrics_label(w->tenants[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", name);
		gw_metrics_hist(o, "webhook_delivery_latency_seconds", labels, &w->tenants[i].latency);
	}
	gw_metrics_family(o, "webhook_refusals_total", "counter",
			  "Tenant webhook requests and deliveries refused, by reason.");
	for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", refusals[i]);
		gw_metrics_value(o, "webhook_refusals_total", labels, rv[i]);
	}
	gw_metrics_family(o, "webhook_outbox_total", "counter",
			  "Tenant webhook outbox work: finals offered, rows written, store failures, "
			  "lost leases, endpoints disabled, finals of rids nobody here owns.");
	{
		const struct {
			const char *what;
			uint64_t v;
		} rows[] = {
			{ "events", w->cnt.events },	     { "rows", w->cnt.rows },
			{ "store_failed", w->cnt.store_failed }, { "claim_failed", w->cnt.claim_failed },
			{ "settle_lost", w->cnt.settle_lost },   { "settle_failed", w->cnt.settle_failed },
			{ "disabled", w->cnt.disabled },	     
		};

		for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
			snprintf(labels, sizeof labels, "what=\"%s\"", rows[i].what);
			gw_metrics_value(o, "webhook_outbox_total", labels, rows[i].v);
		}
	}
	gw_metrics_one(o, "webhook_deliveries_in_flight", "gauge",
		       "Tenant webhook deliveries in flight in this replica.", w->nsends);
}

const struct gw_svc gw_svc_webhook_out = {
	.name = "webhook_out",
	.init = wh_init,
	.start = wh_start_svc,
	.drain = wh_drain,
	.idle = wh_idle,
	.free = wh_free,
	.metrics = wh_metrics,
};
