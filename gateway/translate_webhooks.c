/*
 * translate_webhooks: rows of the Webhooks service (docs/upstream-api.md, "Webhooks").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/translate_int.h"

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

static int hooks_id_path(const char *id, const char *method, struct gw_tr_request *out, char *err,
			 size_t errlen)
{
	struct gw_tr_buf b = { 0 };

	if (!gw_tr_id_ok(id, GW_TR_ID_MAX))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "id must be 1..%d characters of A-Z a-z 0-9 _ -", GW_TR_ID_MAX);
	gw_tr_buf_add(&b, "/webhook_endpoints/");
	gw_tr_buf_esc(&b, id);
	return gw_tr_path(&b, method, out, err, errlen);
}

static int hooks_fill_endpoint(Animate3d__V1__Endpoint *e, json_t *it, const char *ctx, char *err,
			       size_t errlen)
{
	char ectx[48];
	json_t *events = NULL;
	json_t *v;
	size_t i;
	int rc;

	if (!json_is_object(it) && !ctx)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "body is not an object");
	if (!json_is_object(it))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "field %s is not an object", ctx);
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
static int hooks_parse_one(const char *body, size_t len, ProtobufCMessage **out, char *err,
			   size_t errlen)
{
	Animate3d__V1__Endpoint *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__endpoint__descriptor)))
		goto out;
	if ((rc = hooks_fill_endpoint(m, root, NULL, err, errlen)))
		goto out;
	*out = &m->base;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}

/* ---- CreateEndpoint ---- */

int gw_tr_build_create_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__CreateEndpointRequest *r = (const void *)req;
	struct gw_tr_buf b = { 0 };
	json_t *body;
	int rc = gw_tr_check(req, &animate3d__v1__create_endpoint_request__descriptor, err, errlen);

	if (rc)
		return rc;
	if (!gw_tr_url_ok(r->url))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "url must be an http(s) URL of at most %d bytes", GW_TR_URL_MAX);
	if ((rc = hooks_check_events(r->events, r->n_events, 1, err, errlen)))
		return rc;
	body = hooks_body(r->url, r->events, r->n_events);
	gw_tr_buf_add(&b, "/webhook_endpoints");
	if ((rc = gw_tr_path(&b, "POST", out, err, errlen))) {
		json_decref(body);
		return rc;
	}
	return gw_tr_body(body, out, err, errlen);
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

	return rc ? rc : hooks_id_path(r->id, "GET", out, err, errlen);
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
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, &animate3d__v1__list_endpoints_request__descriptor, err, errlen);

	if (rc)
		return rc;
	gw_tr_buf_add(&b, "/webhook_endpoints");
	return gw_tr_path(&b, "GET", out, err, errlen);
}

int gw_tr_parse_list_endpoints(const ProtobufCMessage *req, const char *body, size_t len,
			       ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__ListEndpointsResponse *m = NULL;
	json_t *root = NULL;
	json_t *arr = NULL;
	json_t *it;
	size_t i;
	int rc;

	if ((rc = gw_tr_load(body, len, &root, err, errlen)) ||
	    (rc = gw_tr_arr(root, "endpoints", NULL, 1, GW_TR_MAX_ITEMS, &arr, err, errlen)))
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__list_endpoints_response__descriptor)))
		goto out;
	if (json_array_size(arr) && !(m->endpoints = gw_tr_array(json_array_size(arr))))
		goto out;
	json_array_foreach(arr, i, it) {
		Animate3d__V1__Endpoint *e;
		char ctx[32];

		rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
		if (!(e = gw_tr_msg_new(&animate3d__v1__endpoint__descriptor)))
			goto out;
		m->endpoints[m->n_endpoints++] = e;
		snprintf(ctx, sizeof(ctx), "endpoints[%zu]", i);
		if ((rc = hooks_fill_endpoint(e, it, ctx, err, errlen)))
			goto out;
	}
	*out = &m->base;
	m = NULL;
	rc = GW_TR_OK;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}

/* ---- UpdateEndpoint ---- */

int gw_tr_build_update_endpoint(const ProtobufCMessage *req, struct gw_tr_request *out, char *err,
				size_t errlen)
{
	const Animate3d__V1__UpdateEndpointRequest *r = (const void *)req;
	json_t *body;
	int rc = gw_tr_check(req, &animate3d__v1__update_endpoint_request__descriptor, err, errlen);

	if (rc)
		return rc;
	if (!gw_tr_set(r->url) && r->n_events == 0)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "url or events is required");
	if (gw_tr_set(r->url) && !gw_tr_url_ok(r->url))
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "url must be an http(s) URL of at most %d bytes", GW_TR_URL_MAX);
	if ((rc = hooks_check_events(r->events, r->n_events, 0, err, errlen)) ||
	    (rc = hooks_id_path(r->id, "POST", out, err, errlen)))
		return rc;
	body = hooks_body(r->url, r->events, r->n_events);
	return gw_tr_body(body, out, err, errlen);
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

	return rc ? rc : hooks_id_path(r->id, "DELETE", out, err, errlen);
}

int gw_tr_parse_delete_endpoint(const ProtobufCMessage *req, const char *body, size_t len,
				ProtobufCMessage **out, char *err, size_t errlen)
{
	Animate3d__V1__DeleteEndpointResponse *m = NULL;
	json_t *root = NULL;
	int deleted = 0;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(&animate3d__v1__delete_endpoint_response__descriptor)))
		goto out;
	if ((rc = gw_tr_str(root, "id", NULL, 1, &m->id, err, errlen)) ||
	    (rc = gw_tr_bool(root, "deleted", NULL, 1, &deleted, err, errlen)))
		goto out;
	m->deleted = deleted;
	*out = &m->base;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	json_decref(root);
	return rc;
}
