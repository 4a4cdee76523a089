/*
 * webhook_out_rpc: the Webhooks service as gateway-side subscriptions (issue 17). Every method
 * reads and writes the tenant's own rows of the state store (GW_HOOK_*); another tenant's
 * endpoint is NOT_FOUND, as an absent one. The signing secret is in the answers of
 * CreateEndpoint and RotateSecret only. With webhooks.upstream_passthrough the rows go to the
 * generic upstream path instead (raw upstream endpoints, single-tenant deployments).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/api/validate.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/config/config.h"
#include "gateway/svc/unary.h"
#include "gateway/svc/webhook_out_dest.h"
#include "gateway/svc/webhook_out_int.h"
#include "gateway/svc/webhook_out_sign.h"

#define WH_RPC_MAX_EVENTS 8		/* events of one request (as the upstream rows allowed) */
#define WH_ID_CHARS 22			/* random base58 characters of an endpoint id */
#define WH_DISABLED_BY_TENANT "disabled by the tenant"

enum wh_rpc_op { WH_CREATE, WH_GET, WH_LIST, WH_UPDATE, WH_DELETE, WH_ROTATE };

/* One call in flight: the call stays alive until it is finished (gateway/call/call.h). */
struct wh_rpc {
	struct gw_call *c;
	struct gw_webhook_out *w;
	enum wh_rpc_op op;
	struct gw_hook h;		/* the row written (create, update, rotate) */
	/* UpdateEndpoint: what changes */
	int set_url, set_desc, set_events, toggle;
	unsigned events;
	char url[GW_STORE_HOOK_URL_MAX + 1];
	char desc[GW_STORE_HOOK_DESC_MAX + 1];
};

static void wh_rpc_free(struct wh_rpc *x)
{
	if (!x)
		return;
	OPENSSL_cleanse(x->h.secret, sizeof x->h.secret);
	free(x);
}

static const char *wh_tenant_name(struct gw_call *c)
{
	const struct gw_tenant_cfg *t = gw_call_tenant(c);

	return t ? t->name : NULL;
}

static int wh_allow_private(struct gw_call *c)
{
	return gw_call_env(c)->cfg->webhooks.allow_private_destinations;
}

/* The URL rules (gateway/svc/webhook_out_dest.h); 0, or the call failed and counted. */
static int wh_check_url(struct gw_call *c, struct gw_webhook_out *w, const char *url)
{
	char err[160];
	int rc = gw_wh_dest_check_url(url, wh_allow_private(c), NULL, err, sizeof err);

	switch (rc) {
	case GW_WH_DEST_OK:
		return 0;
	case GW_WH_DEST_SCHEME:
		w->refused.scheme++;
		break;
	case GW_WH_DEST_CREDENTIALS:
		w->refused.credentials++;
		break;
	case GW_WH_DEST_PRIVATE:
		w->refused.private_dest++;
		break;
	default:
		w->refused.bad_url++;
		break;
	}
	gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	return -1;
}

/* events[] -> GW_HOOK_EV_* bits; 0, or the call failed and counted. */
static int wh_check_events(struct gw_call *c, struct gw_webhook_out *w, char **events, size_t n,
			   int required, unsigned *bits)
{
	*bits = 0;
	if ((required && n == 0) || n > WH_RPC_MAX_EVENTS) {
		w->refused.bad_events++;
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
			     "events must name 1..%d events (job.completed)", WH_RPC_MAX_EVENTS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!events[i] || strcmp(events[i], "job.completed") != 0) {
			w->refused.bad_events++;
			gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
				     "events[%zu] is not a known event (job.completed)", i);
			return -1;
		}
		if (*bits & GW_HOOK_EV_JOB_COMPLETED) {
			w->refused.bad_events++;
			gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "events[%zu] repeats %s", i,
				     events[i]);
			return -1;
		}
		*bits |= GW_HOOK_EV_JOB_COMPLETED;
	}
	return 0;
}

/* A description: at most GW_STORE_HOOK_DESC_MAX bytes, no control characters. */
static int wh_check_desc(struct gw_call *c, struct gw_webhook_out *w, const char *d)
{
	size_t n = d ? strnlen(d, GW_STORE_HOOK_DESC_MAX + 1) : 0;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f) {
			n = GW_STORE_HOOK_DESC_MAX + 1;
			break;
		}
	}
	if (n <= GW_STORE_HOOK_DESC_MAX)
		return 0;
	w->refused.bad_field++;
	gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
		     "description must be at most %d bytes without control characters",
		     GW_STORE_HOOK_DESC_MAX);
	return -1;
}

static int wh_check_id(struct gw_call *c, const char *id)
{
	char err[GW_TR_ERR_MAX];

	if (gw_validate_str(GW_VK_ENDPOINT_ID, "id", id, err, sizeof err) == 0)
		return 0;
	gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	return -1;
}

/* "ep_" + WH_ID_CHARS base58 characters; 0 or -1. */
static int wh_new_id(char *out, size_t outlen)
{
	static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
	unsigned char r[WH_ID_CHARS];

	if (outlen < WH_ID_CHARS + 4 || RAND_bytes(r, sizeof r) != 1)
		return -1;
	memcpy(out, "ep_", 3);
	for (size_t i = 0; i < WH_ID_CHARS; i++)
		out[3 + i] = b58[r[i] % 58];	/* the small bias does not matter for an id */
	out[3 + WH_ID_CHARS] = '\0';
	return 0;
}

/* Store failures as the caller sees them; ABSENT is NOT_FOUND (never "someone else's"). */
static void wh_fail_store(struct wh_rpc *x, const struct gw_store_res *res)
{
	if (res->rc == GW_STORE_ABSENT)
		gw_call_fail(x->c, GRPC_STATUS_NOT_FOUND, "endpoint not found");
	else if (res->rc == GW_STORE_CONFLICT)
		gw_call_fail(x->c, GRPC_STATUS_UNAVAILABLE, "endpoint changed meanwhile; try again");
	else if (x->op == WH_CREATE && res->err && strcmp(res->err, "state store is full") == 0) {
		x->w->refused.too_many++;
		gw_call_fail(x->c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			     "a tenant has at most %d webhook endpoints", GW_STORE_HOOKS_MAX);
	} else {
		char msg[GW_STORE_ERR_MAX + 64];

		/* "<Method>: <why>", with a retry delay when the store gave one (as rpc_owner does) */
		snprintf(msg, sizeof msg, "%s: %s", gw_call_method(x->c)->name,
			 res->err ? res->err : "state store failed");
		if (res->retry_ms > 0)
			gw_call_fail_retry(x->c, GRPC_STATUS_UNAVAILABLE, res->retry_ms, msg);
		else
			gw_call_fail(x->c, GRPC_STATUS_UNAVAILABLE, "%s", msg);
	}
}

static char wh_event_name[] = "job.completed";

/* Fills e from h (pointers into h, which must outlive the reply); with_secret: the secret too. */
static void wh_fill(Animate3d__V1__Endpoint *e, struct gw_hook *h, char **events, int with_secret)
{
	e->id = h->id;
	e->url = h->url;
	e->description = h->description;
	e->disabled = h->disabled;
	e->disabled_reason = h->reason;
	e->created_ms = h->created_ms;
	e->updated_ms = h->updated_ms;
	e->n_events = 0;
	e->events = events;
	if (h->events & GW_HOOK_EV_JOB_COMPLETED)
		events[e->n_events++] = wh_event_name;
	if (with_secret)
		e->secret = h->secret;
}

static void wh_reply_hook(struct wh_rpc *x, struct gw_hook *h, int with_secret)
{
	Animate3d__V1__Endpoint e = ANIMATE3D__V1__ENDPOINT__INIT;
	char *events[1];

	wh_fill(&e, h, events, with_secret);
	gw_call_reply(x->c, &e.base);
}

static void wh_log(struct wh_rpc *x, const char *what, const struct gw_hook *h)
{
	gw_log(GW_LOG_INFO, "webhook_endpoint", GW_LS("tenant", h->tenant), GW_LS("endpoint", h->id),
	       GW_LS("change", what), GW_LTRACE(gw_call_trace(x->c)), GW_LEND);
}

/* ---- answers ---- */

static void wh_written(void *arg, const struct gw_store_res *res)
{
	struct wh_rpc *x = arg;

	if (res->rc != 0) {
		wh_fail_store(x, res);
	} else {
		wh_log(x, x->op == WH_CREATE ? "created" : x->op == WH_ROTATE ? "secret rotated"
									      : "updated",
		       &x->h);
		wh_reply_hook(x, &x->h, x->op != WH_UPDATE);
		if (x->op == WH_UPDATE && x->toggle == ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_ENABLE)
			gw_wh_out_kick(x->w);	/* its queued events are due */
	}
	wh_rpc_free(x);
}

/* Update and rotate read the row first, then write it whole. */
static void wh_read_for_write(void *arg, const struct gw_store_res *res)
{
	struct wh_rpc *x = arg;
	struct gw_hook_req r = { .op = GW_HOOK_UPDATE, .hook = &x->h };

	if (res->rc != 0 || res->count != 1) {
		wh_fail_store(x, res);
		wh_rpc_free(x);
		return;
	}
	x->h = res->hooks[0];
	x->h.updated_ms = gw_clock_wall_ms();
	if (x->op == WH_ROTATE) {
		if (gw_wh_sign_secret_new(x->h.secret, sizeof x->h.secret) != 0) {
			gw_call_fail(x->c, GRPC_STATUS_UNAVAILABLE, "no random secret could be made");
			wh_rpc_free(x);
			return;
		}
	} else {
		OPENSSL_cleanse(x->h.secret, sizeof x->h.secret);	/* "" keeps the stored one */
		if (x->set_url)
			memcpy(x->h.url, x->url, sizeof x->h.url);
		if (x->set_desc)
			memcpy(x->h.description, x->desc, sizeof x->h.description);
		if (x->set_events)
			x->h.events = x->events;
		if (x->toggle == ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_ENABLE) {
			x->h.disabled = 0;
			x->h.reason[0] = '\0';
			x->h.failing_since_ms = 0;
		} else if (x->toggle == ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_DISABLE &&
			   !x->h.disabled) {
			x->h.disabled = 1;
			snprintf(x->h.reason, sizeof x->h.reason, "%s", WH_DISABLED_BY_TENANT);
		}
	}
	gw_store_hook(gw_call_env(x->c)->store, &r, wh_written, x);
}

static void wh_got(void *arg, const struct gw_store_res *res)
{
	struct wh_rpc *x = arg;

	if (res->rc != 0 || res->count != 1)
		wh_fail_store(x, res);
	else
		wh_reply_hook(x, (struct gw_hook *)&res->hooks[0], 0);
	wh_rpc_free(x);
}

static void wh_listed(void *arg, const struct gw_store_res *res)
{
	struct wh_rpc *x = arg;
	Animate3d__V1__ListEndpointsResponse out = ANIMATE3D__V1__LIST_ENDPOINTS_RESPONSE__INIT;
	Animate3d__V1__Endpoint eps[GW_STORE_HOOKS_MAX];
	Animate3d__V1__Endpoint *ptrs[GW_STORE_HOOKS_MAX];
	char *events[GW_STORE_HOOKS_MAX][1];
	struct gw_hook *hooks = (struct gw_hook *)res->hooks;

	if (res->rc != 0) {
		wh_fail_store(x, res);
		wh_rpc_free(x);
		return;
	}
	for (long i = 0; i < res->count && i < GW_STORE_HOOKS_MAX; i++) {
		animate3d__v1__endpoint__init(&eps[i]);
		wh_fill(&eps[i], &hooks[i], events[i], 0);
		ptrs[i] = &eps[i];
	}
	out.n_endpoints = (size_t)(res->count < GW_STORE_HOOKS_MAX ? res->count : GW_STORE_HOOKS_MAX);
	out.endpoints = ptrs;
	gw_call_reply(x->c, &out.base);
	wh_rpc_free(x);
}

static void wh_deleted(void *arg, const struct gw_store_res *res)
{
	struct wh_rpc *x = arg;
	Animate3d__V1__DeleteEndpointResponse out = ANIMATE3D__V1__DELETE_ENDPOINT_RESPONSE__INIT;

	if (res->rc != 0) {
		wh_fail_store(x, res);
	} else {
		wh_log(x, "deleted", &x->h);
		out.id = x->h.id;
		out.deleted = 1;
		gw_call_reply(x->c, &out.base);
	}
	wh_rpc_free(x);
}

/* ---- handlers ---- */

/* The call's context, or NULL (the call is then finished): passthrough goes upstream. */
static struct wh_rpc *wh_begin(struct gw_call *c, enum wh_rpc_op op)
{
	struct wh_rpc *x;
	const char *tenant = wh_tenant_name(c);

	if (gw_call_env(c)->cfg->webhooks.upstream_passthrough) {
		if (op == WH_ROTATE)
			gw_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION,
				     "RotateSecret needs gateway-side webhooks "
				     "(webhooks.upstream_passthrough is set)");
		else
			gw_unary_handle(c);
		return NULL;
	}
	if (!tenant || !gw_call_env(c)->store) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "webhooks need the state store");
		return NULL;
	}
	x = calloc(1, sizeof *x);
	if (!x) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	x->c = c;
	x->w = gw_call_svc(c);
	x->op = op;
	snprintf(x->h.tenant, sizeof x->h.tenant, "%s", tenant);
	return x;
}

void gw_webhook_out_rpc_create(struct gw_call *c)
{
	const Animate3d__V1__CreateEndpointRequest *r = (const void *)gw_call_request(c);
	struct wh_rpc *x = wh_begin(c, WH_CREATE);
	struct gw_hook_req q = { .op = GW_HOOK_CREATE };

	if (!x)
		return;
	if (wh_check_url(c, x->w, r->url) || wh_check_events(c, x->w, r->events, r->n_events, 1,
							     &x->h.events) ||
	    wh_check_desc(c, x->w, r->description))
		goto out;
	if (wh_new_id(x->h.id, sizeof x->h.id) != 0 ||
	    gw_wh_sign_secret_new(x->h.secret, sizeof x->h.secret) != 0) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "no random id or secret could be made");
		goto out;
	}
	snprintf(x->h.url, sizeof x->h.url, "%s", r->url);
	snprintf(x->h.description, sizeof x->h.description, "%s",
		 r->description ? r->description : "");
	x->h.created_ms = x->h.updated_ms = gw_clock_wall_ms();
	q.hook = &x->h;
	gw_store_hook(gw_call_env(c)->store, &q, wh_written, x);
	return;
out:
	wh_rpc_free(x);
}

static void wh_by_id(struct gw_call *c, enum wh_rpc_op op, const char *id, enum gw_hook_op hop,
		     gw_store_done_fn done)
{
	struct wh_rpc *x = wh_begin(c, op);
	struct gw_hook_req q = { .op = hop };

	if (!x)
		return;
	if (wh_check_id(c, id) != 0) {
		wh_rpc_free(x);
		return;
	}
	snprintf(x->h.id, sizeof x->h.id, "%s", id);
	q.tenant = x->h.tenant;
	q.id = x->h.id;
	gw_store_hook(gw_call_env(c)->store, &q, done, x);
}

void gw_webhook_out_rpc_get(struct gw_call *c)
{
	const Animate3d__V1__GetEndpointRequest *r = (const void *)gw_call_request(c);

	wh_by_id(c, WH_GET, r->id, GW_HOOK_GET, wh_got);
}

void gw_webhook_out_rpc_delete(struct gw_call *c)
{
	const Animate3d__V1__DeleteEndpointRequest *r = (const void *)gw_call_request(c);

	wh_by_id(c, WH_DELETE, r->id, GW_HOOK_DELETE, wh_deleted);
}

void gw_webhook_out_rpc_rotate(struct gw_call *c)
{
	const Animate3d__V1__RotateSecretRequest *r = (const void *)gw_call_request(c);

	wh_by_id(c, WH_ROTATE, r->id, GW_HOOK_GET, wh_read_for_write);
}

void gw_webhook_out_rpc_list(struct gw_call *c)
{
	struct wh_rpc *x = wh_begin(c, WH_LIST);
	struct gw_hook_req q = { .op = GW_HOOK_LIST };

	if (!x)
		return;
	q.tenant = x->h.tenant;
	gw_store_hook(gw_call_env(c)->store, &q, wh_listed, x);
}

void gw_webhook_out_rpc_update(struct gw_call *c)
{
	const Animate3d__V1__UpdateEndpointRequest *r = (const void *)gw_call_request(c);
	struct wh_rpc *x;
	struct gw_hook_req q = { .op = GW_HOOK_GET };

	if (gw_call_env(c)->cfg->webhooks.upstream_passthrough) {
		gw_unary_handle(c);
		return;
	}
	if (!(x = wh_begin(c, WH_UPDATE)))
		return;
	x->set_url = r->url && r->url[0];
	x->set_desc = r->description && r->description[0];
	x->set_events = r->n_events > 0;
	x->toggle = r->toggle;
	if (!x->set_url && !x->set_desc && !x->set_events &&
	    x->toggle == ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_SWITCH_UNCHANGED) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
			     "url, events, description or toggle is required");
		goto out;
	}
	if (wh_check_id(c, r->id) || (x->set_url && wh_check_url(c, x->w, r->url)) ||
	    wh_check_events(c, x->w, r->events, r->n_events, 0, &x->events) ||
	    (x->set_desc && wh_check_desc(c, x->w, r->description)))
		goto out;
	if (x->toggle < 0 || x->toggle > ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_DISABLE) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "toggle is not a known value");
		goto out;
	}
	if (x->set_url)
		snprintf(x->url, sizeof x->url, "%s", r->url);
	if (x->set_desc)
		snprintf(x->desc, sizeof x->desc, "%s", r->description);
	snprintf(x->h.id, sizeof x->h.id, "%s", r->id);
	q.tenant = x->h.tenant;
	q.id = x->h.id;
	gw_store_hook(gw_call_env(c)->store, &q, wh_read_for_write, x);
	return;
out:
	wh_rpc_free(x);
}
