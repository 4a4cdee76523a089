/*
 * translate_webhooks: rows of the Webhooks service (docs/upstream-api.md, "Webhooks").
 */
#include <stdio.h>
#include <string.h>

#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/api/translate_int.h"

#define HOOKS_PATH "/webhook_endpoints/"	/* + id: one endpoint */

/* Events upstream documents; anything else would be accepted upstream and never fire. */
static const char *const hooks_known_events[] = { "job.completed" };

static int hooks_check_events(char **events, size_t n, int required, char *err, size_t errlen)
{
	if (required && n == 0)
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "events must name at least one event (job.completed)");
	if (n > GW_TR_MAX_EVENTS)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "events has %zu entries (at most %d)",
				  n, GW_TR_MAX_EVENTS);
	for (size_t i = 0; i < n; i++) {
		int known = 0;

		for (size_t k = 0; k < sizeof(hooks_known_events) / sizeof(hooks_known_events[0]); k++)
			known |= events[i] && strcmp(events[i], hooks_known_events[k]) == 0;
		if (!known)
			return gw_tr_fail(err, errlen, GW_TR_INVALID,
					  "events[%zu] is not a known event (job.completed)", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(events[j], events[i]) == 0)
				return gw_tr_fail(err, errlen, GW_TR_INVALID, "events[%zu] repeats %s",
						  i, events[i]);
	}
	return GW_TR_OK;
}

/* {"url"?, "events"?} for create/update; NULL on allocation failure. */
static json_t *hooks_body(const char *url, char **events, size_t n)
{
	json_t *o = json_object();
	json_t *arr = n ? json_array() : NULL;

	if (!o || (n && !arr))
		goto fail;
	if (gw_tr_set(url) && json_object_set_new(o, "url", json_string(url)) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, json_string(events[i])) < 0)
			goto fail;
	if (arr && json_object_set_new(o, "events", arr) < 0) {
		arr = NULL;	/* set_new consumed it even on failure */
		goto fail;
	}
	return o;
fail:
	json_decref(arr);
	json_decref(o);
	return NULL;
}

/* One endpoint object; it is an object (the list or hooks_fill_one checked). */
static int hooks_fill_endpoint(void *msg, json_t *it, const char *ctx, char *err, size_t errlen)
{
	Animate3d__V1__Endpoint *e = msg;
	char ectx[48];
	json_t *events = NULL;
	json_t *v;
	size_t i;
	int rc;

	if ((rc = gw_tr_str(it, "id", ctx, 1, &e->id, err, errlen)) ||
	    (rc = gw_tr_str(it, "url", ctx, 0, &e->url, err, errlen)) ||
	    (rc = gw_tr_arr(it, "events", ctx, 0, GW_TR_MAX_EVENTS, &events, err, errlen)))
		return rc;
	if (json_array_size(events) && !(e->events = gw_tr_array(json_array_size(events))))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	json_array_foreach(events, i, v) {
		if (!json_is_string(v)) {
			snprintf(ectx, sizeof(ectx), "%s%sevents[%zu]", ctx ? ctx : "",
				 ctx && ctx[0] ? "." : "", i);
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
					  "field %s is not a string", ectx);
		}
		if (!(e->events[e->n_events] = strdup(json_string_value(v))))
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
		e->n_events++;
	}
	return GW_TR_OK;
}

/* Create, Get and Update all answer one endpoint object. */
static int hooks_fill_one(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	if (!json_is_object(root))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "body is not an object");
	return hooks_fill_endpoint(msg, root, NULL, err, errlen);
}

static int hooks_parse_one(const char *body, size_t len, ProtobufCMessage **out, char *err,
			   size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__endpoint__descriptor, hooks_fill_one, NULL,
			   out, err, errlen);
}

/* ---- CreateEndpoint ---- */

int gw_tr_build_create_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__CreateEndpointRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__create_endpoint_request__descriptor, err, errlen);

	if (rc || (rc = gw_validate_str(GW_VK_URL, "url", r->url, err, errlen)) ||
	    (rc = hooks_check_events(r->events, r->n_events, 1, err, errlen)))
		return rc;
	return gw_tr_post("/webhook_endpoints", hooks_body(r->url, r->events, r->n_events), out,
			  err, errlen);
}

int gw_tr_parse_create_endpoint(const ProtobufCMessage *req, const char *body, size_t len,
				ProtobufCMessage **out, char *err, size_t errlen)
{
	return hooks_parse_one(body, len, out, err, errlen);
}

/* ---- GetEndpoint ---- */

int gw_tr_build_get_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			     size_t errlen)
{
	const Animate3d__V1__GetEndpointRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__get_endpoint_request__descriptor, err, errlen);

	return rc ? rc : gw_tr_id_path(HOOKS_PATH, GW_VK_ENDPOINT_ID, "id", r->id, "GET", out, err,
				       errlen);
}

int gw_tr_parse_get_endpoint(const ProtobufCMessage *req, const char *body, size_t len,
			     ProtobufCMessage **out, char *err, size_t errlen)
{
	return hooks_parse_one(body, len, out, err, errlen);
}

/* ---- ListEndpoints ---- */

int gw_tr_build_list_endpoints(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
			       size_t errlen)
{
	return gw_tr_fixed(req, &animate3d__v1__list_endpoints_request__descriptor, "GET",
			   "/webhook_endpoints", out, err, errlen);
}

static int hooks_fill_list(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	json_t *arr = NULL;
	int rc = gw_tr_arr(root, "endpoints", NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen);

	return rc ? rc : gw_tr_fill_list(msg, "endpoints", arr, NULL, 0, hooks_fill_endpoint,
					 "endpoints", err, errlen);
}

int gw_tr_parse_list_endpoints(const ProtobufCMessage *req, const char *body, size_t len,
			       ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__list_endpoints_response__descriptor,
			   hooks_fill_list, NULL, out, err, errlen);
}

/* ---- UpdateEndpoint ---- */

int gw_tr_build_update_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__UpdateEndpointRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__update_endpoint_request__descriptor, err, errlen);

	if (rc)
		return rc;
	if (!gw_tr_set(r->url) && r->n_events == 0)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "url or events is required");
	if ((gw_tr_set(r->url) && (rc = gw_validate_str(GW_VK_URL, "url", r->url, err, errlen))) ||
	    (rc = hooks_check_events(r->events, r->n_events, 0, err, errlen)) ||
	    (rc = gw_tr_id_path(HOOKS_PATH, GW_VK_ENDPOINT_ID, "id", r->id, "POST", out, err,
				errlen)))
		return rc;
	return gw_tr_body(hooks_body(r->url, r->events, r->n_events), out, err, errlen);
}

int gw_tr_parse_update_endpoint(const ProtobufCMessage *req, const char *body, size_t len,
				ProtobufCMessage **out, char *err, size_t errlen)
{
	return hooks_parse_one(body, len, out, err, errlen);
}

/* ---- DeleteEndpoint ---- */

int gw_tr_build_delete_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__DeleteEndpointRequest *r = (const void *)req;
	int rc = gw_tr_check(req, &animate3d__v1__delete_endpoint_request__descriptor, err, errlen);

	return rc ? rc : gw_tr_id_path(HOOKS_PATH, GW_VK_ENDPOINT_ID, "id", r->id, "DELETE", out, err,
				       errlen);
}

static int hooks_fill_deleted(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__DeleteEndpointResponse *m = msg;
	int deleted = 0;
	int rc;

	if ((rc = gw_tr_str(root, "id", NULL, 1, &m->id, err, errlen)) ||
	    (rc = gw_tr_bool(root, "deleted", NULL, 1, &deleted, err, errlen)))
		return rc;
	m->deleted = deleted;
	return GW_TR_OK;
}

int gw_tr_parse_delete_endpoint(const ProtobufCMessage *req, const char *body, size_t len,
				ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__delete_endpoint_response__descriptor,
			   hooks_fill_deleted, NULL, out, err, errlen);
}
