/* sim_webhooks: endpoints and deliveries with retries. */
#include "sim_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "sim_http.h"
#include "sim_ids.h"

static const char *const sim_webhooks_events[] = { "job.completed" };

enum sim_delivery_next { SIM_DLV_SEND, SIM_DLV_RETRY, SIM_DLV_DONE };

struct sim_delivery {
	struct sim *s;
	int slot;
	char url[SIM_URL_MAX];
	char client_id[SIM_CLIENT_ID_MAX];
	char body[256];
	int attempt;
	enum sim_delivery_next next;	/* what the timer does when it fires */
	struct event *timer;
	struct evhttp_connection *conn;
};

/* ---- deliveries ---- */

static void sim_webhooks_arm(struct sim_delivery *d, enum sim_delivery_next next, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	d->next = next;
	evtimer_add(d->timer, &tv);
}

static void sim_webhooks_dlv_free(struct sim_delivery *d)
{
	if (d->conn != NULL)
		evhttp_connection_free(d->conn);
	event_free(d->timer);
	d->s->deliveries[d->slot] = NULL;
	free(d);
}

static void sim_webhooks_done_cb(struct evhttp_request *req, void *arg)
{
	struct sim_delivery *d = arg;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

	/* The connection cannot be freed inside its own callback: the timer does it. */
	if (code >= 200 && code < 300) {
		d->s->deliveries_ok++;
		sim_webhooks_arm(d, SIM_DLV_DONE, 0);
	} else if (d->attempt >= SIM_WEBHOOKS_TRIES) {
		d->s->deliveries_failed++;
		sim_webhooks_arm(d, SIM_DLV_DONE, 0);
	} else {
		sim_webhooks_arm(d, SIM_DLV_RETRY, 0);
	}
}

static int sim_webhooks_send(struct sim_delivery *d)
{
	struct evhttp_uri *uri = evhttp_uri_parse(d->url);
	struct evhttp_request *req = NULL;
	const char *host, *scheme;
	char target[SIM_URL_MAX], len[32];
	int port, rc = -1;

	d->attempt++;
	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    strcasecmp(scheme, "http") != 0 || (host = evhttp_uri_get_host(uri)) == NULL)
		goto out;
	port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
	snprintf(target, sizeof(target), "%s%s%s",
		 evhttp_uri_get_path(uri) && *evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/",
		 evhttp_uri_get_query(uri) ? "?" : "",
		 evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "");
	d->conn = evhttp_connection_base_new(d->s->base, NULL, host, (unsigned short)port);
	if (d->conn == NULL || (req = evhttp_request_new(sim_webhooks_done_cb, d)) == NULL)
		goto out;
	evhttp_connection_set_timeout(d->conn, SIM_WEBHOOKS_TIMEOUT_S);
	snprintf(len, sizeof(len), "%zu", strlen(d->body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-DeepMotion-Signature", d->client_id);
	evbuffer_add(evhttp_request_get_output_buffer(req), d->body, strlen(d->body));
	rc = evhttp_make_request(d->conn, req, EVHTTP_REQ_POST, target);	/* owns req, even on error */
	req = NULL;
out:
	if (req != NULL)
		evhttp_request_free(req);
	if (uri != NULL)
		evhttp_uri_free(uri);
	return rc;
}

static void sim_webhooks_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_delivery *d = arg;

	if (d->conn != NULL) {
		evhttp_connection_free(d->conn);
		d->conn = NULL;
	}
	switch (d->next) {
	case SIM_DLV_DONE:
		sim_webhooks_dlv_free(d);
		return;
	case SIM_DLV_RETRY:
		sim_webhooks_arm(d, SIM_DLV_SEND, SIM_WEBHOOKS_BACKOFF_MS << (d->attempt - 1));
		return;
	case SIM_DLV_SEND:
		if (sim_webhooks_send(d) != 0) {
			if (d->attempt >= SIM_WEBHOOKS_TRIES) {
				d->s->deliveries_failed++;
				sim_webhooks_arm(d, SIM_DLV_DONE, 0);
			} else {
				sim_webhooks_arm(d, SIM_DLV_RETRY, 0);
			}
		}
		return;
	}
}

void sim_webhooks_job_done(struct sim *s, const struct sim_job *j)
{
	for (int i = 0; i < SIM_MAX_ENDPOINTS; i++) {
		const struct sim_endpoint *e = s->endpoints[i];
		struct sim_delivery *d;
		int slot = -1;

		if (e == NULL || e->account != j->account || !e->job_completed)
			continue;
		for (int k = 0; k < SIM_MAX_DELIVERIES && slot < 0; k++)
			if (s->deliveries[k] == NULL)
				slot = k;
		if (slot < 0 || (d = calloc(1, sizeof(*d))) == NULL) {
			s->rejections[SIM_REJ_DELIVERIES]++;
			s->deliveries_failed++;
			continue;
		}
		d->s = s;
		d->slot = slot;
		d->timer = evtimer_new(s->base, sim_webhooks_timer_cb, d);
		if (d->timer == NULL) {
			free(d);
			continue;
		}
		snprintf(d->url, sizeof(d->url), "%s", e->url);
		snprintf(d->client_id, sizeof(d->client_id), "%s", s->accounts[j->account].id);
		snprintf(d->body, sizeof(d->body),
			 "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"%s\",\"status\":\"%s\"}}",
			 j->rid, j->final == SIM_JOB_SUCCEEDED ? "success" : "failure");
		s->deliveries[slot] = d;
		sim_webhooks_arm(d, SIM_DLV_SEND, 0);
	}
}

void sim_webhooks_free(struct sim *s)
{
	for (int i = 0; i < SIM_MAX_DELIVERIES; i++)
		if (s->deliveries[i] != NULL)
			sim_webhooks_dlv_free(s->deliveries[i]);
	for (int i = 0; i < SIM_MAX_ENDPOINTS; i++) {
		free(s->endpoints[i]);
		s->endpoints[i] = NULL;
	}
}

/* ---- endpoints ---- */

static json_t *sim_webhooks_json(const struct sim_endpoint *e)
{
	json_t *ev = json_array();

	for (int i = 0; i < e->n_events; i++)
		json_array_append_new(ev, json_string(e->events[i]));
	return json_pack("{s:s, s:s, s:s, s:o}", "id", e->id, "object", "webhook_endpoint", "url",
			 e->url, "events", ev);
}

/* Applies url/events of body to e; on error answers 400 and returns -1. */
static int sim_webhooks_apply(json_t *body, struct sim_endpoint *e, int need_all, struct sim_resp *rs)
{
	json_t *url = json_object_get(body, "url"), *events = json_object_get(body, "events"), *it;
	size_t i;

	if (url != NULL || need_all) {
		const char *u = json_string_value(url);

		if (u == NULL || strlen(u) >= sizeof(e->url) ||
		    (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)) {
			sim_resp_error(rs, 400, "400", "url must be an http(s) URL");
			return -1;
		}
		snprintf(e->url, sizeof(e->url), "%s", u);
	}
	if (events != NULL || need_all) {
		if (!json_is_array(events) || json_array_size(events) == 0 ||
		    json_array_size(events) > SIM_WEBHOOKS_MAX_EVENTS) {
			sim_resp_error(rs, 400, "400", "events must be a non-empty array, e.g. [\"job.completed\"]");
			return -1;
		}
		json_array_foreach(events, i, it) {
			const char *v = json_string_value(it);

			if (v == NULL || strcmp(v, sim_webhooks_events[0]) != 0) {
				sim_resp_error(rs, 400, "400", "Unknown event: %s", v ? v : "(not a string)");
				return -1;
			}
		}
		e->n_events = 0;
		json_array_foreach(events, i, it)
			snprintf(e->events[e->n_events++], sizeof(e->events[0]), "%s", json_string_value(it));
		e->job_completed = 1;
	}
	return 0;
}

void sim_webhooks_h_create(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *body = sim_http_json_body(rq, rs);
	struct sim_endpoint tmp, *e;
	int slot = -1;

	if (body == NULL)
		return;
	memset(&tmp, 0, sizeof(tmp));
	if (sim_webhooks_apply(body, &tmp, 1, rs) != 0)
		goto out;
	for (int i = 0; i < SIM_MAX_ENDPOINTS && slot < 0; i++)
		if (s->endpoints[i] == NULL)
			slot = i;
	if (slot < 0 || (e = malloc(sizeof(*e))) == NULL) {
		s->rejections[SIM_REJ_ENDPOINTS]++;
		sim_resp_error(rs, 503, "503", "Webhook endpoint table full");
		goto out;
	}
	*e = tmp;
	sim_ids_new(&s->id_rng, e->id, SIM_ID_LEN);
	e->account = rq->account;
	s->endpoints[slot] = e;
	sim_resp_json(rs, 200, sim_webhooks_json(e));
out:
	json_decref(body);
}

static int sim_webhooks_find(struct sim *s, const char *id, int account)
{
	for (int i = 0; i < SIM_MAX_ENDPOINTS; i++)
		if (s->endpoints[i] != NULL && s->endpoints[i]->account == account &&
		    strcmp(s->endpoints[i]->id, id) == 0)
			return i;
	return -1;
}

void sim_webhooks_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *arr = json_array();

	for (int i = 0; i < SIM_MAX_ENDPOINTS; i++)
		if (s->endpoints[i] != NULL && s->endpoints[i]->account == rq->account)
			json_array_append_new(arr, sim_webhooks_json(s->endpoints[i]));
	sim_resp_json(rs, 200, json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(arr),
					 "endpoints", arr));
}

void sim_webhooks_h_get(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int i = sim_webhooks_find(s, rq->arg, rq->account);

	if (i < 0)
		sim_resp_error(rs, 404, "404", "Unknown webhook endpoint: %s", rq->arg);
	else
		sim_resp_json(rs, 200, sim_webhooks_json(s->endpoints[i]));
}

void sim_webhooks_h_update(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int i = sim_webhooks_find(s, rq->arg, rq->account);
	struct sim_endpoint tmp;
	json_t *body;

	if (i < 0) {
		sim_resp_error(rs, 404, "404", "Unknown webhook endpoint: %s", rq->arg);
		return;
	}
	if ((body = sim_http_json_body(rq, rs)) == NULL)
		return;
	tmp = *s->endpoints[i];
	if (sim_webhooks_apply(body, &tmp, 0, rs) == 0) {
		*s->endpoints[i] = tmp;
		sim_resp_json(rs, 200, sim_webhooks_json(&tmp));
	}
	json_decref(body);
}

void sim_webhooks_h_delete(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int i = sim_webhooks_find(s, rq->arg, rq->account);

	if (i < 0) {
		sim_resp_error(rs, 404, "404", "Unknown webhook endpoint: %s", rq->arg);
		return;
	}
	sim_resp_json(rs, 200, json_pack("{s:s, s:s, s:b}", "id", s->endpoints[i]->id, "object",
					 "webhook_endpoint", "deleted", 1));
	free(s->endpoints[i]);
	s->endpoints[i] = NULL;
}
