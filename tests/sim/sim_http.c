/* sim_http: HTTP/1.1 on bufferevents, routing, CORS, limits, stats and faults. */
#include "sim_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "sim.h"
#include "sim_auth.h"
#include "sim_control.h"
#include "sim_jobs.h"
#include "sim_resp.h"
#include "sim_models.h"
#include "sim_reqlog.h"
#include "sim_storage.h"
#include "sim_webhooks.h"

struct sim_route {
	const char *method;
	const char *tmpl;	/* "/status/{rids}": one {param} segment at most */
	const char *name;	/* "GET /status/{rids}" as counted in stats */
	int flags;
	sim_http_handler fn;
};

static const struct sim_route sim_http_routes[] = {
	{ "GET", "/session/auth", "GET /session/auth", 0, sim_auth_h_session },
	{ "GET", "/upload", "GET /upload", SIM_RT_AUTH, sim_storage_h_upload },
	{ "POST", "/process", "POST /process", SIM_RT_AUTH, sim_jobs_h_process },
	{ "GET", "/status/{rids}", "GET /status/{rids}", SIM_RT_AUTH, sim_jobs_h_status },
	{ "GET", "/download/{rids}", "GET /download/{rids}", SIM_RT_AUTH, sim_jobs_h_download },
	{ "GET", "/list", "GET /list", SIM_RT_AUTH, sim_jobs_h_list },
	{ "GET", "/list/{statuses}", "GET /list/{statuses}", SIM_RT_AUTH, sim_jobs_h_list },
	{ "GET", "/account/creditBalance", "GET /account/creditBalance", SIM_RT_AUTH, sim_jobs_h_credits },
	{ "GET", "/account/minutesBalance", "GET /account/minutesBalance", SIM_RT_AUTH, sim_jobs_h_minutes },
	{ "POST", "/videoInfo", "POST /videoInfo", SIM_RT_AUTH, sim_storage_h_videoinfo },
	{ "GET", "/character/getModelUploadUrl", "GET /character/getModelUploadUrl", SIM_RT_AUTH,
	  sim_models_h_upload_url },
	{ "POST", "/character/storeModel", "POST /character/storeModel", SIM_RT_AUTH, sim_models_h_store },
	{ "GET", "/character/listModels", "GET /character/listModels", SIM_RT_AUTH, sim_models_h_list },
	{ "DELETE", "/character/deleteModel/{id}", "DELETE /character/deleteModel/{id}", SIM_RT_AUTH,
	  sim_models_h_delete },
	{ "POST", "/webhook_endpoints", "POST /webhook_endpoints", SIM_RT_AUTH, sim_webhooks_h_create },
	{ "GET", "/webhook_endpoints", "GET /webhook_endpoints", SIM_RT_AUTH, sim_webhooks_h_list },
	{ "GET", "/webhook_endpoints/{id}", "GET /webhook_endpoints/{id}", SIM_RT_AUTH, sim_webhooks_h_get },
	{ "POST", "/webhook_endpoints/{id}", "POST /webhook_endpoints/{id}", SIM_RT_AUTH,
	  sim_webhooks_h_update },
	{ "DELETE", "/webhook_endpoints/{id}", "DELETE /webhook_endpoints/{id}", SIM_RT_AUTH,
	  sim_webhooks_h_delete },
	{ "GET", "/pesave/getUrls/{rid}", "GET /pesave/getUrls/{rid}", SIM_RT_AUTH, sim_jobs_h_pesave },
	{ "PUT", "/storage/", "PUT /storage", SIM_RT_STORAGE | SIM_RT_PREFIX, sim_storage_h_object },
	{ "POST", "/storage/", "POST /storage", SIM_RT_STORAGE | SIM_RT_PREFIX, sim_storage_h_object },
	{ "GET", "/storage/", "GET /storage", SIM_RT_STORAGE | SIM_RT_PREFIX, sim_storage_h_object },
	{ "GET", "/_sim/stats", "GET /_sim/stats", SIM_RT_CONTROL, sim_control_h_stats },
	{ "DELETE", "/_sim/stats", "DELETE /_sim/stats", SIM_RT_CONTROL, sim_control_h_stats_reset },
	{ "GET", "/_sim/faults", "GET /_sim/faults", SIM_RT_CONTROL, sim_control_h_faults_get },
	{ "POST", "/_sim/faults", "POST /_sim/faults", SIM_RT_CONTROL, sim_control_h_faults_add },
	{ "DELETE", "/_sim/faults", "DELETE /_sim/faults", SIM_RT_CONTROL, sim_control_h_faults_clear },
	{ "POST", "/_sim/sessions/revoke", "POST /_sim/sessions/revoke", SIM_RT_CONTROL,
	  sim_control_h_revoke },
	{ "GET", "/_sim/jobs", "GET /_sim/jobs", SIM_RT_CONTROL, sim_control_h_jobs },
	{ "GET", "/_sim/requests", "GET /_sim/requests", SIM_RT_CONTROL, sim_control_h_requests },
	{ "DELETE", "/_sim/requests", "DELETE /_sim/requests", SIM_RT_CONTROL,
	  sim_control_h_requests_clear },
};
#define SIM_HTTP_N_ROUTES ((int)(sizeof(sim_http_routes) / sizeof(sim_http_routes[0])))
_Static_assert(SIM_HTTP_N_ROUTES <= SIM_MAX_ROUTES, "raise SIM_MAX_ROUTES");

static const char *const sim_http_origins[] = { "http://localhost:8080", "http://localhost:8180" };

enum sim_conn_state {
	SIM_CONN_HEADERS, SIM_CONN_BODY, SIM_CONN_CHUNK_SIZE, SIM_CONN_CHUNK_DATA, SIM_CONN_CHUNK_CRLF,
	SIM_CONN_TRAILERS, SIM_CONN_WAIT, SIM_CONN_RESPONDING,
};

struct sim_conn {
	struct sim *s;
	int slot;
	struct bufferevent *bev;
	enum sim_conn_state state;
	size_t header_bytes;
	int64_t chunk_left;
	struct sim_req rq;
	struct sim_resp rs;	/* an early answer (error, fault) prepared at header time */
	struct sim_fault fault;	/* copy of the fault picked for this request */
	int faulted;
	int inflight;		/* counted in s->api_inflight */
	struct event *delay;	/* fault latency */
	int close_after;
};

static void sim_http_read_cb(struct bufferevent *bev, void *arg);

int sim_http_route_count(void) { return SIM_HTTP_N_ROUTES; }
const char *sim_http_route_name(int i) { return sim_http_routes[i].name; }
int sim_http_route_flags(int i) { return sim_http_routes[i].flags; }

int sim_http_route_find(const char *name)
{
	for (int i = 0; i < SIM_HTTP_N_ROUTES; i++)
		if (strcmp(sim_http_routes[i].name, name) == 0)
			return i;
	return -1;
}

/* ---- request helpers ---- */

const char *sim_http_header(const struct sim_req *rq, const char *name)
{
	for (int i = 0; i < rq->n_headers; i++)
		if (strcasecmp(rq->hname[i], name) == 0)
			return rq->hval[i];
	return NULL;
}

int sim_http_decode(const char *src, size_t len, int form, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = src[i];

		if (c == '%') {
			char hex[3] = { 0 };

			if (i + 2 >= len || !isxdigit((unsigned char)src[i + 1]) ||
			    !isxdigit((unsigned char)src[i + 2]))
				return -1;
			hex[0] = src[i + 1];
			hex[1] = src[i + 2];
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

int sim_http_query(const struct sim_req *rq, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = rq->query;

	while (p != NULL && *p != '\0') {
		size_t l = strcspn(p, "&");

		if (l >= nl && strncmp(p, name, nl) == 0 && (l == nl || p[nl] == '=')) {
			const char *v = l == nl ? p + l : p + nl + 1;

			return sim_http_decode(v, (size_t)(p + l - v), 1, out, outlen);
		}
		p += l;
		if (*p == '&')
			p++;
	}
	return -1;
}

json_t *sim_http_json_body(struct sim_req *rq, struct sim_resp *rs)
{
	json_error_t err;
	size_t n = rq->body ? evbuffer_get_length(rq->body) : 0;
	json_t *j = NULL;

	if (n > 0)
		j = json_loadb((const char *)evbuffer_pullup(rq->body, -1), n, 0, &err);
	if (!json_is_object(j)) {
		json_decref(j);
		sim_resp_error(rs, 400, "400", "Malformed JSON body: expected an object");
		return NULL;
	}
	return j;
}

/* ---- connection lifecycle ---- */

static void sim_http_req_reset(struct sim_conn *c)
{
	struct sim_req *rq = &c->rq;

	free(rq->path);
	free(rq->query);
	for (int i = 0; i < rq->n_headers; i++) {
		free(rq->hname[i]);
		free(rq->hval[i]);
	}
	if (rq->body != NULL)
		evbuffer_free(rq->body);
	if (rq->sink_fd >= 0)
		close(rq->sink_fd);
	memset(rq, 0, sizeof(*rq));
	rq->sink_fd = -1;
	rq->content_length = -1;
	rq->route = -1;
	rq->account = -1;
	rq->upload = -1;
	sim_resp_reset(&c->rs);
	if (c->inflight)
		c->s->api_inflight--;
	c->inflight = 0;
	c->faulted = 0;
	c->close_after = 0;
	c->header_bytes = 0;
	c->state = SIM_CONN_HEADERS;
}

static void sim_http_conn_close(struct sim_conn *c, int reset)
{
	if (reset) {
		/* SO_LINGER 0 makes close() send RST: the client sees a reset, not a clean EOF */
		struct linger lg = { 1, 0 };

		setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	sim_http_req_reset(c);
	if (c->delay != NULL)
		event_free(c->delay);
	bufferevent_free(c->bev);
	c->s->conns[c->slot] = NULL;
	free(c);
}

static void sim_http_cors(struct sim_conn *c, struct sim_resp *rs)
{
	const char *origin = sim_http_header(&c->rq, "Origin");

	if (origin == NULL)
		return;
	for (size_t i = 0; i < sizeof(sim_http_origins) / sizeof(sim_http_origins[0]); i++)
		if (strcmp(origin, sim_http_origins[i]) == 0) {
			sim_resp_header(rs, "Access-Control-Allow-Origin: %s", origin);
			sim_resp_header(rs, "Access-Control-Allow-Credentials: true");
			sim_resp_header(rs, "Vary: Origin");
			return;
		}
}

static void sim_http_send(struct sim_conn *c, struct sim_resp *rs)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t blen = rs->file_fd > 0 ? (size_t)rs->file_len : rs->body ? evbuffer_get_length(rs->body) : 0;
	const char *conn_hdr = sim_http_header(&c->rq, "Connection");
	char date[64];

	if (rs->close || c->rq.http10 || (conn_hdr != NULL && strcasecmp(conn_hdr, "close") == 0) ||
	    c->state != SIM_CONN_WAIT)
		c->close_after = 1;
	sim_http_cors(c, rs);
	sim_auth_http_date(sim_now_wall(), date, sizeof(date));
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: animate3d-sim\r\n",
			    rs->status, sim_resp_reason(rs->status), date);
	for (int i = 0; i < rs->n_hdr; i++)
		evbuffer_add_printf(out, "%s\r\n", rs->hdr[i]);
	if (rs->status != 204)
		evbuffer_add_printf(out, "Content-Length: %zu\r\n", blen);
	evbuffer_add_printf(out, "%s\r\n", c->close_after ? "Connection: close\r\n" : "");
	if (blen > 0 && rs->status != 204 && strcmp(c->rq.method, "HEAD") != 0) {
		if (rs->file_fd > 0 && evbuffer_add_file(out, rs->file_fd, 0, rs->file_len) == 0)
			rs->file_fd = -1;	/* the output buffer owns and closes it */
		else if (rs->body != NULL)
			evbuffer_add_buffer(out, rs->body);
	}
	c->state = SIM_CONN_RESPONDING;
	bufferevent_disable(c->bev, EV_READ);
}

/* Keeps the request and its answer (status 0: none) in the request log. The /_sim/ controls
 * are left out, so reading the log does not change it. */
static void sim_http_log(struct sim_conn *c, const struct sim_resp *rs)
{
	const struct sim_req *rq = &c->rq;
	struct sim_reqlog_rec rec = {
		.method = rq->method, .path = rq->path,
		.hname = (const char *const *)rq->hname, .hval = (const char *const *)rq->hval,
		.n_headers = rq->n_headers,
		.resp_hdr = rs != NULL ? (const char *const *)rs->hdr : NULL,
		.n_resp_hdr = rs != NULL ? rs->n_hdr : 0,
		.status = rs != NULL ? rs->status : 0,
		.t_ms = (int64_t)(sim_now_wall() * 1000),
	};

	if (rq->route >= 0 && (sim_http_routes[rq->route].flags & SIM_RT_CONTROL))
		return;
	sim_reqlog_add(c->s->reqlog, &rec);
}

/* Runs the handler (or the early answer / fault) once the whole request is in.
 * Returns 1 when the connection was closed (c is gone), else 0. */
static int sim_http_dispatch(struct sim_conn *c)
{
	struct sim *s = c->s;
	struct sim_req *rq = &c->rq;
	struct sim_resp rs;
	const struct sim_route *rt = rq->route >= 0 ? &sim_http_routes[rq->route] : NULL;

	memset(&rs, 0, sizeof(rs));
	c->state = SIM_CONN_WAIT;
	if (c->faulted && c->fault.mode == SIM_FAULT_RESET) {
		sim_http_log(c, NULL);
		sim_http_conn_close(c, 1);
		return 1;
	}
	if (c->rs.status != 0) {
		rs = c->rs;	/* early answer: moves ownership */
		memset(&c->rs, 0, sizeof(c->rs));
	} else if (c->faulted && c->fault.mode == SIM_FAULT_GARBAGE) {
		rs.status = 200;
		rs.body = evbuffer_new();
		evbuffer_add_printf(rs.body, "<html><body>upstream garbage %d</body></html>", c->fault.hits);
		sim_resp_header(&rs, "Content-Type: text/html");
	} else if (c->faulted && c->fault.status > 0) {
		sim_resp_error(&rs, c->fault.status, "injected", "Injected fault: HTTP %d", c->fault.status);
		if (c->fault.retry_after > 0)
			sim_resp_header(&rs, "Retry-After: %d", c->fault.retry_after);
	} else if (rt != NULL) {
		if (rt->flags & SIM_RT_AUTH) {
			rq->account = sim_auth_request(s, sim_http_header(rq, "Cookie"),
						       sim_http_header(rq, "Authorization"), sim_now_wall());
			if (rq->account < 0) {
				s->rejections[SIM_REJ_AUTH]++;
				sim_resp_error(&rs, 401, "401", "Invalid or expired session: authenticate with GET /session/auth");
			}
		}
		if (rs.status == 0)
			rt->fn(s, rq, &rs);
		if (rq->account >= 0 && !(rt->flags & SIM_RT_CONTROL))
			s->accounts[rq->account].requests[rq->route]++;
	}
	if (rs.status == 0)
		sim_resp_error(&rs, 500, "500", "Internal error: no answer");
	sim_http_log(c, &rs);
	sim_http_send(c, &rs);
	sim_resp_reset(&rs);
	return 0;
}

static void sim_http_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	sim_http_dispatch(arg);
}

/* The request is in: dispatch now or after the fault's latency. 1 when c was closed. */
static int sim_http_complete(struct sim_conn *c)
{
	c->state = SIM_CONN_WAIT;
	if (c->faulted && c->fault.latency_ms > 0) {
		struct timeval tv = { c->fault.latency_ms / 1000, (c->fault.latency_ms % 1000) * 1000 };

		if (c->delay == NULL)
			c->delay = evtimer_new(c->s->base, sim_http_delay_cb, c);
		bufferevent_disable(c->bev, EV_READ);
		if (c->delay != NULL && evtimer_add(c->delay, &tv) == 0)
			return 0;
	}
	return sim_http_dispatch(c);
}

/* Finds the route of method + path; *wrong_method set when only the method differs. */
static int sim_http_route_match(struct sim_req *rq, int *wrong_method)
{
	*wrong_method = 0;
	for (int i = 0; i < SIM_HTTP_N_ROUTES; i++) {
		const struct sim_route *rt = &sim_http_routes[i];
		const char *brace = strchr(rt->tmpl, '{');
		int match;

		if (rt->flags & SIM_RT_PREFIX) {
			match = strncmp(rq->path, rt->tmpl, strlen(rt->tmpl)) == 0;
		} else if (brace == NULL) {
			match = strcmp(rq->path, rt->tmpl) == 0;
		} else {
			size_t pl = (size_t)(brace - rt->tmpl);
			const char *v = rq->path + pl;

			match = strncmp(rq->path, rt->tmpl, pl) == 0 && strlen(rq->path) > pl &&
				strchr(v, '/') == NULL &&
				sim_http_decode(v, strlen(v), 0, rq->arg, sizeof(rq->arg)) == 0;
		}
		if (!match)
			continue;
		if (strcmp(rt->method, rq->method) == 0 ||
		    (strcmp(rq->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0))
			return i;
		*wrong_method = 1;
	}
	return -1;
}

static void sim_http_preflight(struct sim_conn *c)
{
	const char *rh = sim_http_header(&c->rq, "Access-Control-Request-Headers");

	c->rs.status = 204;
	sim_resp_header(&c->rs, "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS");
	sim_resp_header(&c->rs, "Access-Control-Allow-Headers: %s",
			rh != NULL && strlen(rh) < 512 ? rh
			: "Authorization, Content-Type, Cookie, Content-Range, x-goog-resumable");
	sim_resp_header(&c->rs, "Access-Control-Max-Age: 600");
}

/* Headers complete: route, choose the body sink, decide early answers and faults.
 * 1 when c was closed. */
static int sim_http_headers_done(struct sim_conn *c)
{
	struct sim *s = c->s;
	struct sim_req *rq = &c->rq;
	const char *te = sim_http_header(rq, "Transfer-Encoding");
	const char *expect = sim_http_header(rq, "Expect");
	int wrong = 0, flags = 0;

	rq->chunked = te != NULL && strcasestr(te, "chunked") != NULL;
	rq->sink = SIM_SINK_DISCARD;
	rq->sink_limit = SIM_HTTP_DISCARD_MAX;
	rq->t_start = sim_now_mono();
	if (strcmp(rq->method, "OPTIONS") == 0) {
		sim_http_preflight(c);
	} else if ((rq->route = sim_http_route_match(rq, &wrong)) < 0) {
		if (wrong)
			sim_resp_error(&c->rs, 405, "405", "Method %s not allowed on %s", rq->method, rq->path);
		else
			sim_resp_error(&c->rs, 404, "404", "Not found: %s", rq->path);
	} else {
		flags = sim_http_routes[rq->route].flags;
		if (!(flags & (SIM_RT_CONTROL | SIM_RT_STORAGE))) {
			c->inflight = 1;
			if (++s->api_inflight > s->api_inflight_max)
				s->api_inflight_max = s->api_inflight;
		}
		if (!(flags & SIM_RT_CONTROL)) {
			s->requests[rq->route]++;
			c->faulted = sim_control_fault_pick(s, sim_http_routes[rq->route].name, &c->fault);
		}
		if (c->faulted && (c->fault.status > 0 || c->fault.mode != SIM_FAULT_STATUS)) {
			/* the body is read and dropped: the fault answers */
		} else if (flags & SIM_RT_STORAGE) {
			sim_storage_begin(s, rq, &c->rs);	/* may pick the file sink */
		} else if (rq->content_length > SIM_HTTP_API_BODY_MAX) {
			s->rejections[SIM_REJ_BODY_SIZE]++;
			sim_resp_error(&c->rs, 413, "413", "Request body over %d bytes", SIM_HTTP_API_BODY_MAX);
			c->rs.close = 1;
		} else {
			rq->sink = SIM_SINK_MEM;
			rq->sink_limit = SIM_HTTP_API_BODY_MAX;
			rq->body = evbuffer_new();
		}
	}
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
		if (c->rs.status != 0 && (rq->content_length != 0 || rq->chunked)) {
			c->rs.close = 1;	/* the client waits for 100: answer before the body */
			return sim_http_complete(c);
		}
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	}
	if (rq->content_length > 0 && c->rs.status != 0 && rq->content_length > SIM_HTTP_DISCARD_MAX) {
		c->rs.close = 1;	/* too much to drain: answer now and close */
		return sim_http_complete(c);
	}
	if (rq->chunked)
		c->state = SIM_CONN_CHUNK_SIZE;
	else if (rq->content_length > 0)
		c->state = SIM_CONN_BODY;
	else
		return sim_http_complete(c);
	return 0;
}

/* Moves n body bytes from in to the sink. -1 when the sink limit is passed or a write fails. */
static int sim_http_body(struct sim_conn *c, struct evbuffer *in, size_t n)
{
	struct sim_req *rq = &c->rq;
	char buf[SIM_HTTP_IO_CHUNK];

	rq->body_bytes += (int64_t)n;
	if (rq->body_bytes > rq->sink_limit) {
		struct sim *s = c->s;

		evbuffer_drain(in, n);
		if (c->rs.status == 0) {
			s->rejections[rq->sink == SIM_SINK_FILE ? SIM_REJ_UPLOAD_SIZE : SIM_REJ_BODY_SIZE]++;
			sim_resp_error(&c->rs, 413, "413", "Request body too large");
		}
		return -1;
	}
	switch (rq->sink) {
	case SIM_SINK_MEM:
		evbuffer_remove_buffer(in, rq->body, n);
		break;
	case SIM_SINK_DISCARD:
		evbuffer_drain(in, n);
		break;
	case SIM_SINK_FILE:
		while (n > 0) {
			size_t k = n < sizeof(buf) ? n : sizeof(buf);
			int got = evbuffer_remove(in, buf, k);

			if (got <= 0 || pwrite(rq->sink_fd, buf, (size_t)got, rq->sink_off) != got) {
				sim_resp_error(&c->rs, 500, "500", "Storage write failed");
				return -1;
			}
			rq->sink_off += got;
			n -= (size_t)got;
		}
		break;
	}
	return 0;
}

static int sim_http_parse_request_line(struct sim_conn *c, char *line)
{
	struct sim_req *rq = &c->rq;
	char *sp1 = strchr(line, ' '), *sp2, *q;

	if (sp1 == NULL || (size_t)(sp1 - line) >= sizeof(rq->method))
		return -1;
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -1;
	memcpy(rq->method, line, (size_t)(sp1 - line));
	rq->http10 = strcmp(sp2 + 1, "HTTP/1.0") == 0;
	*sp2 = '\0';
	q = strchr(sp1 + 1, '?');
	if (q != NULL)
		*q = '\0';
	rq->path = strdup(sp1 + 1);
	rq->query = strdup(q ? q + 1 : "");
	return rq->path != NULL && rq->query != NULL && rq->path[0] == '/' ? 0 : -1;
}

static int sim_http_parse_header(struct sim_conn *c, char *line)
{
	struct sim_req *rq = &c->rq;
	char *colon = strchr(line, ':'), *v;

	if (colon == NULL || colon == line || rq->n_headers == SIM_HTTP_MAX_HEADERS)
		return -1;
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (size_t n = strlen(v); n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'); n--)
		v[n - 1] = '\0';
	if (strcasecmp(line, "Content-Length") == 0) {
		char *end;
		long long cl = strtoll(v, &end, 10);

		if (*v == '\0' || *end != '\0' || cl < 0)
			return -1;
		rq->content_length = cl;
	}
	rq->hname[rq->n_headers] = strdup(line);
	rq->hval[rq->n_headers] = strdup(v);
	rq->n_headers++;
	return rq->hname[rq->n_headers - 1] && rq->hval[rq->n_headers - 1] ? 0 : -1;
}

/* Answers a request that cannot be parsed and closes after the write. */
static void sim_http_bad(struct sim_conn *c, int status, const char *msg)
{
	struct sim_resp rs;

	memset(&rs, 0, sizeof(rs));
	if (status == 431)
		c->s->rejections[SIM_REJ_HEADER_SIZE]++;
	sim_resp_error(&rs, status, status == 431 ? "431" : "400", "%s", msg);
	c->state = SIM_CONN_HEADERS;	/* forces Connection: close */
	sim_http_send(c, &rs);
	sim_resp_reset(&rs);
}

static void sim_http_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		size_t avail = evbuffer_get_length(in), len;
		char *line;

		switch (c->state) {
		case SIM_CONN_HEADERS:
		case SIM_CONN_TRAILERS:
			line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
			if (line == NULL) {
				if (avail > SIM_HTTP_MAX_HEADER_BYTES)
					sim_http_bad(c, 431, "Request headers too large");
				return;
			}
			c->header_bytes += len + 2;
			if (c->header_bytes > SIM_HTTP_MAX_HEADER_BYTES) {
				free(line);
				sim_http_bad(c, 431, "Request headers too large");
				return;
			}
			if (c->state == SIM_CONN_TRAILERS) {
				int end = len == 0;

				free(line);
				if (end) {
					sim_http_complete(c);
					return;
				}
				continue;
			}
			if (c->rq.path == NULL) {
				int bad = len == 0 ? 0 : sim_http_parse_request_line(c, line);

				free(line);
				if (bad) {
					sim_http_bad(c, 400, "Malformed request line");
					return;
				}
				continue;	/* blank lines before a request are tolerated */
			}
			if (len == 0) {
				free(line);
				if (sim_http_headers_done(c) != 0 || c->state == SIM_CONN_WAIT ||
				    c->state == SIM_CONN_RESPONDING)
					return;
				continue;
			}
			if (sim_http_parse_header(c, line) != 0) {
				free(line);
				sim_http_bad(c, 400, "Malformed header");
				return;
			}
			free(line);
			break;
		case SIM_CONN_BODY:
			if (avail == 0)
				return;
			len = (int64_t)avail < c->rq.content_length - c->rq.body_bytes
				? avail : (size_t)(c->rq.content_length - c->rq.body_bytes);
			if (sim_http_body(c, in, len) != 0) {
				c->rs.close = 1;
				sim_http_complete(c);
				return;
			}
			if (c->rq.body_bytes == c->rq.content_length) {
				sim_http_complete(c);
				return;
			}
			break;
		case SIM_CONN_CHUNK_SIZE: {
			char *end;

			line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
			if (line == NULL) {
				if (avail > 1024)
					sim_http_bad(c, 400, "Malformed chunk size");
				return;
			}
			c->chunk_left = strtoll(line, &end, 16);
			if (end == line || c->chunk_left < 0 || (*end != '\0' && *end != ';')) {
				free(line);
				sim_http_bad(c, 400, "Malformed chunk size");
				return;
			}
			free(line);
			c->state = c->chunk_left == 0 ? SIM_CONN_TRAILERS : SIM_CONN_CHUNK_DATA;
			break;
		}
		case SIM_CONN_CHUNK_DATA:
			if (avail == 0)
				return;
			len = (int64_t)avail < c->chunk_left ? avail : (size_t)c->chunk_left;
			if (sim_http_body(c, in, len) != 0) {
				c->rs.close = 1;
				sim_http_complete(c);
				return;
			}
			c->chunk_left -= (int64_t)len;
			if (c->chunk_left == 0)
				c->state = SIM_CONN_CHUNK_CRLF;
			break;
		case SIM_CONN_CHUNK_CRLF:
			if (avail < 2)
				return;
			evbuffer_drain(in, 2);
			c->state = SIM_CONN_CHUNK_SIZE;
			break;
		case SIM_CONN_WAIT:
		case SIM_CONN_RESPONDING:
			return;	/* pipelined bytes wait until this answer is written */
		}
	}
}

static void sim_http_write_cb(struct bufferevent *bev, void *arg)
{
	struct sim_conn *c = arg;

	if (c->state != SIM_CONN_RESPONDING || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->close_after) {
		sim_http_conn_close(c, 0);
		return;
	}
	sim_http_req_reset(c);
	bufferevent_enable(bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		sim_http_read_cb(bev, c);
}

static void sim_http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sim_conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sim_http_conn_close(c, 0);
}

static void sim_http_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			       int salen, void *arg)
{
	struct sim *s = arg;
	struct sim_conn *c;
	struct timeval idle = { SIM_HTTP_IDLE_SECONDS, 0 };
	int slot = -1;

	for (int i = 0; i < SIM_MAX_CONNS && slot < 0; i++)
		if (s->conns[i] == NULL)
			slot = i;
	if (slot < 0 || (c = calloc(1, sizeof(*c))) == NULL) {
		s->rejections[SIM_REJ_CONNS]++;
		close(fd);
		return;
	}
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->s = s;
	c->slot = slot;
	c->rq.sink_fd = -1;
	sim_http_req_reset(c);
	s->conns[slot] = c;
	bufferevent_setcb(c->bev, sim_http_read_cb, sim_http_write_cb, sim_http_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, SIM_HTTP_READ_HIGHWATER);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int sim_http_start(struct sim *s)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)s->cfg.listen_port);
	if (inet_pton(AF_INET, s->cfg.listen_host, &sin.sin_addr) != 1) {
		fprintf(stderr, "animate3d-sim: --listen host must be an IPv4 address: %s\n",
			s->cfg.listen_host);
		return -1;
	}
	s->listener = evconnlistener_new_bind(s->base, sim_http_accept_cb, s,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
					      (struct sockaddr *)&sin, sizeof(sin));
	if (s->listener == NULL) {
		fprintf(stderr, "animate3d-sim: cannot listen on %s:%d: %s\n", s->cfg.listen_host,
			s->cfg.listen_port, strerror(errno));
		return -1;
	}
	if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&sin, &sl) != 0)
		return -1;
	s->port = ntohs(sin.sin_port);
	snprintf(s->base_url, sizeof(s->base_url), "http://%s:%d", s->cfg.listen_host, s->port);
	return 0;
}

void sim_http_free(struct sim *s)
{
	for (int i = 0; i < SIM_MAX_CONNS; i++)
		if (s->conns[i] != NULL)
			sim_http_conn_close(s->conns[i], 0);
	if (s->listener != NULL)
		evconnlistener_free(s->listener);
	s->listener = NULL;
}
