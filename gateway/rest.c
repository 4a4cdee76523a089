/*
 * rest: the REST facade's listener. See rest.h.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include "gateway/rest.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "auth/caller/apikey.h"
#include "auth/caller/clientcert.h"
#include "gateway/api/facade.h"
#include "gateway/base/clock.h"
#include "gateway/base/conncap.h"
#include "gateway/base/fdlimit.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/trace.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/config/config.h"
#include "gateway/http.h"
#include "gateway/rest_sess.h"
#include "gateway/state/store.h"

#define REST_MAX_HOST 256		/* host part of rest_listen */
#define REST_MAX_ROUTES 32		/* facade rows resolved to method rows at start */
#define REST_MAX_BASIC 1024		/* a Basic credential, encoded */
#define REST_SESS_SWEEP_S 10		/* expired sessions removed from the store this often */
#define REST_STORE_RETRY_S "1"		/* Retry-After of a 503 for a session store failure */
#define REST_MSG_SESSION "Invalid or expired session: authenticate with GET /session/auth"
#define REST_MSG_CERT "Client certificate not mapped to a tenant"
#define REST_MSG_CERT_REQUIRED "Client certificate required"
#define REST_GONE_CHECK_MS 200		/* how often running calls' connections are checked for a
					 * client that left (the cancel's delay, at most) */
#define REST_GONE_POLL_BATCH 256	/* connections checked by one poll() */
#define REST_TLS_SESSION_CTX "a3d-rest"	/* session id context: resumption with client certs */

/* Why a request was refused before it became a call (rest_rejected_total{reason}). */
enum rest_reject {
	REST_REJ_NOT_FOUND,		/* no such path */
	REST_REJ_METHOD,		/* path known, verb not */
	REST_REJ_BODY,			/* body over rest.max_body_bytes */
	REST_REJ_BAD_REQUEST,		/* the REST request could not become the method's request */
	REST_REJ_AUTH,			/* no credential the facade takes (Basic, unknown cookie) */
	REST_REJ_LOGIN,			/* GET /session/auth with a wrong tenant or key */
	REST_REJ_SESSIONS_FULL,		/* GET /session/auth: the tenant has too many sessions */
	REST_REJ_SESSION_STORE,		/* the session store failed: 503, as upstream's outage */
	REST_REJ_CERT_UNKNOWN,		/* a verified client certificate whose CN maps to no tenant */
	REST_REJ_CERT_INVALID,		/* a client certificate the CA did not sign: handshake refused */
	REST_REJ_CERT_MISSING,		/* tls.client_cert_required and none was sent: 401 */
	REST_REJ_N
};
static const char *const rest_reject_names[REST_REJ_N] = { "not_found", "method", "body_too_large",
							    "bad_request", "unauthenticated",
							    "login_failed", "sessions_full",
							    "session_store", "cert_unknown",
							    "cert_invalid", "cert_missing" };

/* Methods whose RESOURCE_EXHAUSTED without a retry delay (a full table, not a rate limit) upstream
 * answers with another status than 429 on their path. */
static const struct {
	const char *rpc;
	int status;
} rest_exhausted[] = {
	{ "/animate3d.v1.Webhooks/CreateEndpoint", 503 },	/* "Webhook endpoint table full" */
};

/* Browser origins allowed, as upstream allows them (docs/upstream-api.md, CORS). */
static const char *const rest_origins[] = { "http://localhost:8080", "http://localhost:8180" };

struct rest_req;

struct gw_rest {
	struct gw_env *env;
	struct evhttp *http;
	struct gw_conncap *cap;
	struct gw_rest_sess *sess;	/* dmsess cookies of GET /session/auth */
	struct gw_gen *gen;		/* the generation whose keys sessions were checked against:
					 * a reload revokes the sessions of the keys it removed */
	struct event *ev_sweep;		/* expired sessions out of the store */
	struct event *ev_gone;		/* every REST_GONE_CHECK_MS while calls run: clients left? */
	int gone_armed;
	struct gw_lograte store_log;	/* session store failures, logged at a bounded rate */
	SSL_CTX *tls;			/* HTTPS with tls.cert_file/key_file; NULL: plain HTTP */
	int mtls;			/* tls.client_ca_file: client certificates asked for */
	int cert_required;		/* tls.client_cert_required (at start, as for gRPC) */
	size_t midx[REST_MAX_ROUTES];	/* per facade row: its method row in env->methods */
	struct rest_req *pending;	/* requests whose call runs */
	uint64_t requests;
	uint64_t answered[6];		/* by status class: 0 = other, 2xx .. 5xx */
	uint64_t rejected[REST_REJ_N];
	uint64_t preflights;
	uint64_t cancelled;		/* calls cancelled: their client closed the connection */
	int64_t date_s;			/* the second date[] was written for */
	char date[40];			/* "Sun, 06 Dec 2026 10:00:00 GMT" */
};

/* One request being answered later: its session looked up in the store (then its call), its
 * call running (its end comes to rest_on_end), or a login waiting for the store. */
struct rest_req {
	struct gw_rest *r;
	struct evhttp_request *req;
	const struct gw_facade_route *route;	/* NULL: a login (GET /session/auth) */
	struct gw_call *call;		/* NULL while the session is looked up, and once it ended */
	int starting;			/* inside gw_call_local: its sink leaves q to rest_q_start */
	int ended;			/* the sink ran while starting */
	int gone;			/* its client closed the connection: to cancel */
	struct rest_req *prev, *next;
	uint8_t *packed;		/* the request message, until the call starts */
	size_t plen;
	int64_t expires_ms;		/* a login: the cookie's expiry */
	char tenant[GW_STORE_TENANT_MAX + 1];	/* a login: whose session */
	char token[GW_REST_SESS_TOKEN_LEN + 1];	/* the session it came with ("": a key) */
};

long gw_rest_retry_after_s(long retry_ms)
{
	long s = retry_ms <= 0 ? 1 : (retry_ms + 999) / 1000;

	return s < 1 ? 1 : s;
}

static void rest_cors(struct evhttp_request *req)
{
	const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (!origin)
		return;
	for (size_t i = 0; i < sizeof rest_origins / sizeof rest_origins[0]; i++)
		if (strcmp(origin, rest_origins[i]) == 0) {
			evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
			evhttp_add_header(out, "Access-Control-Allow-Credentials", "true");
			evhttp_add_header(out, "Vary", "Origin");
			/* A browser script may read the ids it can quote to operators. */
			evhttp_add_header(out, "Access-Control-Expose-Headers", "X-Request-Id, traceparent");
			return;
		}
}

/* The Date header, written once a second: evhttp would format it for every answer (gmtime and a
 * printf, 6 % of a cached GET /status's instructions on the loop; bench step 8, callgrind). */
static const char *rest_date(struct gw_rest *r)
{
	int64_t s = gw_clock_wall_ms() / 1000;
	time_t t = (time_t)s;
	struct tm tm;

	if (s != r->date_s || !r->date[0]) {
		gmtime_r(&t, &tm);
		if (strftime(r->date, sizeof r->date, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
			r->date[0] = '\0';
		r->date_s = s;
	}
	return r->date;
}

/* Sends status with json (taken; NULL: a fixed out-of-memory body). */
static void rest_send(struct gw_rest *r, struct evhttp_request *req, int status, char *json)
{
	struct evbuffer *body = evbuffer_new();
	unsigned cls = status >= 200 && status < 600 ? (unsigned)status / 100 : 0;

	r->answered[cls < 6 ? cls : 0]++;
	rest_cors(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	if (rest_date(r)[0])
		evhttp_add_header(evhttp_request_get_output_headers(req), "Date", r->date);
	/* evbuffer_add, not a "%s" printf: on a cached GET /status that printf was 7 % of the
	 * loop's instructions per request (bench step 8, callgrind). */
	if (body) {
		const char *text = json ? json : "{\"message\":\"out of memory\",\"error\":\"500\"}";

		evbuffer_add(body, text, strlen(text));
	}
	free(json);
	evhttp_send_reply(req, status, NULL, body);
	if (body)
		evbuffer_free(body);
}

static void rest_send_error(struct gw_rest *r, struct evhttp_request *req,
			    const struct gw_facade_route *route, int status, const char *msg)
{
	rest_send(r, req, status, gw_facade_error_json(route, status, msg));
}

static void rest_reject(struct gw_rest *r, struct evhttp_request *req, enum rest_reject why,
			int status, const char *msg)
{
	r->rejected[why]++;
	rest_send_error(r, req, NULL, status, msg);
}

static void rest_unlink(struct rest_req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->r->pending = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void rest_link(struct gw_rest *r, struct rest_req *q)
{
	q->next = r->pending;
	if (q->next)
		q->next->prev = q;
	r->pending = q;
}

/* A request to answer later: linked, its connection kept open meanwhile (the call's own deadline,
 * rest.call_timeout_ms, and the store's bound the wait). NULL when out of memory. */
static struct rest_req *rest_q_new(struct gw_rest *r, struct evhttp_request *req,
				   const struct gw_facade_route *route)
{
	struct rest_req *q = calloc(1, sizeof *q);

	if (!q)
		return NULL;
	q->r = r;
	q->req = req;
	q->route = route;
	rest_link(r, q);
	gw_conncap_busy(r->cap, req, 1);
	return q;
}

/* Ends q when no call of it runs: unlinked, its connection released and q freed; returns its
 * request, to be answered next (the reply may free the request: release comes first). */
static struct evhttp_request *rest_q_end(struct rest_req *q)
{
	struct evhttp_request *req = q->req;

	rest_unlink(q);
	gw_conncap_busy(q->r->cap, req, 0);
	free(q->packed);
	OPENSSL_cleanse(q, sizeof *q);
	free(q);
	return req;
}

/* The session store failed (err: why, for the log only: it names the server): 503 with
 * Retry-After, as upstream answers while it is down. */
static void rest_store_failed(struct gw_rest *r, struct evhttp_request *req, const char *err)
{
	uint64_t suppressed = 0;

	if (gw_lograte_allow(&r->store_log, gw_clock_wall_ms(), GW_LOGRATE_DEFAULT_LINES, &suppressed))
		gw_log(GW_LOG_WARN, "rest", GW_LS("msg", "session store failed"),
		       GW_LS("error", err ? err : "-"), GW_LN("suppressed", (long long)suppressed),
		       GW_LEND);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", REST_STORE_RETRY_S);
	rest_reject(r, req, REST_REJ_SESSION_STORE, 503, "Service unavailable, retry later");
}

/* The call's end: the reply rendered as upstream's JSON, or its status as upstream's error. */
static void rest_on_end(void *arg, const struct gw_call_end *end)
{
	struct rest_req *q = arg;
	struct gw_rest *r = q->r;
	int status = gw_facade_http_status((int)end->code);
	char ra[24];

	rest_unlink(q);
	gw_conncap_busy(r->cap, q->req, 0);
	if (end->trace) {
		struct evkeyvalq *out = evhttp_request_get_output_headers(q->req);
		char tp[GW_TRACE_PARENT_LEN + 1];

		gw_trace_format_parent(end->trace, tp, sizeof tp);
		evhttp_add_header(out, "X-Request-Id", end->trace->request_id);
		evhttp_add_header(out, "traceparent", tp);
	}
	/* The key a session was opened with is gone (a reload removed it): so is the session. */
	if (end->code == GRPC_STATUS_UNAUTHENTICATED && q->token[0])
		gw_rest_sess_drop(r->sess, q->token, strlen(q->token));
	if (end->code == GRPC_STATUS_OK) {
		char *json = gw_facade_render(q->route, end->reply, end->reply_len);

		if (json)
			rest_send(r, q->req, 200, json);
		else
			rest_send_error(r, q->req, NULL, 500, "cannot render the reply");
	} else {
		/* A RESOURCE_EXHAUSTED without a retry delay is a full table, not a rate: the status
		 * upstream gives it on this path (a full webhook endpoint table: 503), else 429. */
		if (end->code == GRPC_STATUS_RESOURCE_EXHAUSTED && end->retry_ms < 0)
			for (size_t i = 0; i < sizeof rest_exhausted / sizeof rest_exhausted[0]; i++)
				if (strcmp(q->route->rpc, rest_exhausted[i].rpc) == 0)
					status = rest_exhausted[i].status;
		/* Only a delay the gateway knows: Retry-After: 1 on a full table would make clients
		 * hammer it once a second. */
		if ((status == 429 || status == 503) && end->retry_ms >= 0) {
			snprintf(ra, sizeof ra, "%ld", gw_rest_retry_after_s(end->retry_ms));
			evhttp_add_header(evhttp_request_get_output_headers(q->req), "Retry-After", ra);
		}
		rest_send_error(r, q->req, q->route, status, end->msg);
	}
	q->req = NULL;		/* answered: libevent frees it once sent */
	if (q->starting) {
		q->ended = 1;	/* rest_q_start frees q when gw_call_local returns */
		return;
	}
	free(q->packed);
	OPENSSL_cleanse(q, sizeof *q);
	free(q);
}

/* "Basic base64(user:password)" -> user and password in buf (NUL-terminated, wiped by the
 * caller). 0, or -1 when malformed. */
static int rest_basic(const char *auth, char *buf, size_t cap, const char **user, const char **pass,
		      size_t *passlen)
{
	const char *b64 = auth + 6;
	size_t n;
	int len;
	char *colon;

	if (strncasecmp(auth, "Basic ", 6) != 0)
		return -1;
	while (*b64 == ' ')
		b64++;
	n = strlen(b64);
	if (n == 0 || n > REST_MAX_BASIC || n % 4 || (n / 4) * 3 + 1 > cap)
		return -1;
	len = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)b64, (int)n);
	if (len < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding's zero bytes: take them off. */
	if (n >= 1 && b64[n - 1] == '=')
		len--;
	if (n >= 2 && b64[n - 2] == '=')
		len--;
	buf[len] = '\0';
	if (memchr(buf, '\0', (size_t)len) || !(colon = strchr(buf, ':')))
		return -1;
	*colon = '\0';
	*user = buf;
	*pass = colon + 1;
	*passlen = strlen(colon + 1);
	return 0;
}

/* The store kept the session (or not): the cookie, or why not. */
static void rest_on_opened(void *arg, int rc, const char *token, const char *err)
{
	struct rest_req *q = arg;
	struct gw_rest *r = q->r;
	struct evhttp_request *req;
	char cookie[160], date[64];
	time_t exp = (time_t)(q->expires_ms / 1000);
	struct tm tm;

	if (rc == GW_REST_SESS_FULL) {
		rest_reject(r, rest_q_end(q), REST_REJ_SESSIONS_FULL, 503,
			    "Too many sessions, retry later");
		return;
	}
	if (rc != GW_REST_SESS_OK) {
		rest_store_failed(r, rest_q_end(q), err);
		return;
	}
	gw_log(GW_LOG_INFO, "rest", GW_LS("msg", "session opened"), GW_LS("tenant", q->tenant),
	       GW_LEND);
	req = rest_q_end(q);
	gmtime_r(&exp, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	/* No Domain (clients drop cookies of IP hosts that carry one) and the first Set-Cookie. */
	snprintf(cookie, sizeof cookie, "dmsess=%s; Path=/; Expires=%s; HttpOnly", token, date);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
	OPENSSL_cleanse(cookie, sizeof cookie);
	rest_send(r, req, 200, strdup("{\"message\":\"authenticated\"}"));
}

/* GET /session/auth: Basic with the tenant's name and one of its keys -> a dmsess cookie, once
 * the state store holds the session. */
static void rest_session_auth(struct gw_rest *r, struct evhttp_request *req)
{
	const struct gw_config *cfg = r->env->cfg;
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	char buf[REST_MAX_BASIC];
	const char *user = NULL, *pass = NULL;
	size_t passlen = 0, tidx = 0;
	unsigned perms = 0;
	uint8_t key[32];
	int64_t now = gw_clock_wall_ms();
	struct rest_req *q;

	if (!auth || rest_basic(auth, buf, sizeof buf, &user, &pass, &passlen) != 0 ||
	    passlen == 0 || !SHA256((const unsigned char *)pass, passlen, key) ||
	    gw_apikey_lookup_hash(r->env->gen->keys, key, &tidx, &perms) != 0 ||
	    tidx >= cfg->ntenants || strcmp(cfg->tenants[tidx].name, user) != 0) {
		OPENSSL_cleanse(buf, sizeof buf);
		OPENSSL_cleanse(key, sizeof key);
		rest_reject(r, req, REST_REJ_LOGIN, 401,
			    auth ? "Invalid credentials: Basic <tenant>:<api key>"
				 : "Missing Basic authorization");
		return;
	}
	OPENSSL_cleanse(buf, sizeof buf);
	q = rest_q_new(r, req, NULL);
	if (!q) {
		OPENSSL_cleanse(key, sizeof key);
		rest_send_error(r, req, NULL, 500, "out of memory");
		return;
	}
	snprintf(q->tenant, sizeof q->tenant, "%s", cfg->tenants[tidx].name);
	q->expires_ms = now + cfg->rest.session_ttl_s * 1000;
	/* rest_on_opened may run (and free q) before this returns */
	gw_rest_sess_open(r->sess, cfg->tenants[tidx].name, key, now, cfg->rest.session_ttl_s * 1000,
			  rest_on_opened, q);
	OPENSSL_cleanse(key, sizeof key);
}

static void rest_preflight(struct gw_rest *r, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *rh = evhttp_find_header(in, "Access-Control-Request-Headers");

	r->preflights++;
	rest_cors(req);
	evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
	evhttp_add_header(out, "Access-Control-Allow-Headers",
			  rh && strlen(rh) < 512 ? rh
			  : "Authorization, Content-Type, Cookie, Content-Range, x-goog-resumable, "
			    "Idempotency-Key");
	evhttp_add_header(out, "Access-Control-Max-Age", "600");
	r->answered[2]++;
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static unsigned rest_verb(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		return GW_FACADE_GET;
	case EVHTTP_REQ_POST:
		return GW_FACADE_POST;
	case EVHTTP_REQ_DELETE:
		return GW_FACADE_DELETE;
	default:
		return 0;
	}
}

static void rest_peer(struct evhttp_request *req, char *buf, size_t len)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	buf[0] = '\0';
	if (!evcon)
		return;
	evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr)
		snprintf(buf, len, "%s:%s:%u", strchr(addr, ':') ? "ipv6" : "ipv4", addr,
			 (unsigned)port);
}

/* The request's Authorization when it is a Bearer key the facade takes, else NULL. */
static const char *rest_bearer(struct evhttp_request *req)
{
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	return auth && strlen(auth) <= GW_REST_MAX_AUTH && strncasecmp(auth, "Bearer ", 7) == 0
		       ? auth
		       : NULL;
}

/* The request's TLS session when client certificates are asked for, else NULL. */
static SSL *rest_ssl(const struct gw_rest *r, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = r->mtls && evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* 1 when the request's connection sent a client certificate (verified: one that failed the
 * verification failed the handshake). */
static int rest_has_cert(const struct gw_rest *r, struct evhttp_request *req)
{
	SSL *ssl = rest_ssl(r, req);

	return ssl && SSL_get0_peer_certificate(ssl) && SSL_get_verify_result(ssl) == X509_V_OK;
}

/* The subject CN of the client certificate the request's TLS session verified against
 * tls.client_ca_file, into out: its length, or 0 (plain HTTP, no client CA, no certificate). */
static size_t rest_peer_cn(const struct gw_rest *r, struct evhttp_request *req, char *out,
			   size_t outlen)
{
	SSL *ssl = rest_ssl(r, req);
	X509 *peer;
	size_t n;

	out[0] = '\0';
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	peer = SSL_get1_peer_certificate(ssl);
	n = gw_clientcert_x509_cn(peer, out, outlen);
	X509_free(peer);
	return n;
}

/* ---- clients that leave ----
 *
 * evhttp stops reading a connection once its request is complete, until the answer is sent, so
 * it never sees a client close it meanwhile: the call would run to its deadline for nobody.
 * While calls run, their connections are polled for POLLRDHUP every REST_GONE_CHECK_MS (one
 * poll() per REST_GONE_POLL_BATCH of them): a peer that closed (FIN, with a TLS close_notify
 * before it or not) or reset (RST) shows there even with unread bytes, where an EV_CLOSED
 * event would need libevent 2.2 to report a reset. A client that only half-closes (shutdown
 * of its writing side) while it waits counts as gone too, as nginx counts it.
 */

static int rest_q_fd(struct rest_req *q)
{
	struct evhttp_connection *evcon = q->req ? evhttp_request_get_connection(q->req) : NULL;
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	return bev ? (int)bufferevent_getfd(bev) : -1;
}

/* q's client left: its call is cancelled as gRPC cancels a call whose client reset it (the
 * sink is never called), q freed, and its connection closed, which frees its request. */
static void rest_q_gone(struct rest_req *q)
{
	struct gw_rest *r = q->r;
	struct gw_call *c = q->call;
	struct evhttp_connection *evcon = evhttp_request_get_connection(q->req);

	q->call = NULL;
	r->cancelled++;
	rest_unlink(q);
	gw_call_local_abandon(c);
	free(q->packed);
	OPENSSL_cleanse(q, sizeof *q);
	free(q);
	if (evcon)
		evhttp_connection_free(evcon);	/* conncap's close callback uncounts it */
}

static void rest_gone_arm(struct gw_rest *r)
{
	struct timeval tv = { 0, REST_GONE_CHECK_MS * 1000 };

	if (!r->gone_armed && event_add(r->ev_gone, &tv) == 0)
		r->gone_armed = 1;
}

static void rest_on_gone_check(evutil_socket_t fd, short what, void *arg)
{
	struct gw_rest *r = arg;
	struct pollfd pfd[REST_GONE_POLL_BATCH];
	struct rest_req *batch[REST_GONE_POLL_BATCH], *q = r->pending;
	int running = 0, gone = 0;

	(void)fd;
	(void)what;
	/* First mark, then cancel: a cancel may end other calls, so the list is walked again. */
	while (q) {
		nfds_t n = 0;

		for (; q && n < REST_GONE_POLL_BATCH; q = q->next) {
			int s = q->call ? rest_q_fd(q) : -1;

			running |= q->call != NULL;
			if (s < 0)
				continue;
			pfd[n] = (struct pollfd){ .fd = s, .events = POLLRDHUP };
			batch[n++] = q;
		}
		if (n == 0 || poll(pfd, n, 0) <= 0)
			continue;
		for (nfds_t i = 0; i < n; i++)
			if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
				batch[i]->gone = 1;
				gone = 1;
			}
	}
	while (gone) {
		for (q = r->pending; q && !(q->gone && q->call); q = q->next)
			;
		if (!q)
			break;
		rest_q_gone(q);
	}
	if (!running) {
		event_del(r->ev_gone);
		r->gone_armed = 0;
	}
}

/* Starts q's call: with a session (its key's SHA-256 and tenant), or with the Bearer key. */
static void rest_q_start(struct rest_req *q, const uint8_t *key_sha256, const char *tenant)
{
	struct gw_rest *r = q->r;
	struct evhttp_request *req = q->req;
	struct evkeyvalq *in_hdr = evhttp_request_get_input_headers(req);
	const struct gw_config *cfg = r->env->cfg;
	size_t nroutes;
	const struct gw_facade_route *routes = gw_facade_routes(&nroutes);
	struct gw_call_local_args a = { 0 };
	const char *auth = key_sha256 ? NULL : rest_bearer(req);
	uint8_t *packed = q->packed;
	char peer[GW_REST_MAX_PEER];
	char cn[GW_CLIENTCERT_MAX_CN + 1];
	int rc;

	if (!key_sha256)
		q->token[0] = '\0';
	q->packed = NULL;	/* the call copies it; freed here whatever happens to q */
	rest_peer(req, peer, sizeof peer);
	a.midx = r->midx[q->route - routes];
	a.req = packed;
	a.len = q->plen;
	a.auth = auth;
	a.authlen = auth ? strlen(auth) : 0;
	a.key_sha256 = key_sha256;
	a.tenant = tenant;
	/* Neither a session nor a key: the client certificate (rest_on_request checked it maps). */
	if (!key_sha256 && !auth && rest_peer_cn(r, req, cn, sizeof cn))
		a.cert_cn = cn;
	a.deadline_ms = cfg->rest.call_timeout_ms;
	a.peer = peer;
	a.request_id = evhttp_find_header(in_hdr, "X-Request-Id");
	a.traceparent = evhttp_find_header(in_hdr, "traceparent");
	a.tracestate = evhttp_find_header(in_hdr, "tracestate");
	a.sink = rest_on_end;
	a.arg = q;
	/* The sink may run before gw_call_local returns (a refusal, a cached answer): q is then
	 * answered and left for us to free. */
	q->starting = 1;
	rc = gw_call_local(r->env, &a, &q->call);
	q->starting = 0;
	free(packed);
	if (rc != 0) {
		rest_send_error(r, rest_q_end(q), NULL, 500, "cannot start the call");
	} else if (q->ended) {
		OPENSSL_cleanse(q, sizeof *q);
		free(q);
	} else {
		rest_gone_arm(r);	/* the call runs on: watch its client */
	}
}

/* The session of the request's cookie: its call, or a Bearer key beside it, or 401 / 503. */
static void rest_on_sess(void *arg, const struct gw_rest_sess_found *f)
{
	struct rest_req *q = arg;
	struct gw_rest *r = q->r;

	if (f->rc == GW_REST_SESS_OK) {
		rest_q_start(q, f->key_sha256, f->tenant);
		return;
	}
	if (rest_bearer(q->req)) {	/* a key beside a cookie that does not work: the key */
		rest_q_start(q, NULL, NULL);
		return;
	}
	if (f->rc == GW_REST_SESS_UNKNOWN)
		rest_reject(r, rest_q_end(q), REST_REJ_AUTH, 401, REST_MSG_SESSION);
	else
		rest_store_failed(r, rest_q_end(q), f->err);
}

static void rest_on_request(struct evhttp_request *req, void *arg)
{
	struct gw_rest *r = arg;
	const struct gw_config *cfg = r->env->cfg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri);
	struct evbuffer *in_body = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *in_hdr = evhttp_request_get_input_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct gw_facade_route *route;
	struct gw_facade_in fin = { 0 };
	struct rest_req *q;
	char err[GW_FACADE_ERR_MAX];
	uint8_t *packed = NULL;
	size_t plen = 0, blen = evbuffer_get_length(in_body);
	const char *cookie, *token;
	size_t toklen = 0;
	int wrong = 0;
	char cn[GW_CLIENTCERT_MAX_CN + 1];

	r->requests++;
	gw_conncap_request(r->cap, req);
	/* Refused in HTTP rather than in the handshake: a client sees upstream's 401 JSON, which
	 * says what is missing, where a failed handshake says nothing. */
	if (r->cert_required && !rest_has_cert(r, req)) {
		rest_reject(r, req, REST_REJ_CERT_MISSING, 401, REST_MSG_CERT_REQUIRED);
		return;
	}
	if (cmd == EVHTTP_REQ_OPTIONS) {
		rest_preflight(r, req);
		return;
	}
	if (path && strcmp(path, "/session/auth") == 0) {
		if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
			rest_session_auth(r, req);
		else
			rest_reject(r, req, REST_REJ_METHOD, 405, "Method not allowed on this path");
		return;
	}
	route = gw_facade_match(rest_verb(cmd), path ? path : "/", &fin.arg, &wrong);
	if (!route) {
		if (wrong)
			rest_reject(r, req, REST_REJ_METHOD, 405, "Method not allowed on this path");
		else
			rest_reject(r, req, REST_REJ_NOT_FOUND, 404, "Not found");
		return;
	}
	if (blen > cfg->rest.max_body_bytes) {
		rest_reject(r, req, REST_REJ_BODY, 413, "Request body too large");
		return;
	}
	/* Who is calling: a dmsess cookie of ours, else a Bearer key. Basic (the upstream secret's
	 * scheme) is taken only at /session/auth, as upstream takes it; beside a valid cookie it is
	 * harmless (the official Python demo sends it on every call). */
	cookie = evhttp_find_header(in_hdr, "Cookie");
	token = cookie ? gw_rest_sess_cookie(cookie, &toklen) : NULL;
	if (!token && !rest_bearer(req)) {
		/* Neither: a client certificate, as a gRPC call without a key (rest_q_start). */
		if (!rest_peer_cn(r, req, cn, sizeof cn)) {
			rest_reject(r, req, REST_REJ_AUTH, 401, REST_MSG_SESSION);
			return;
		}
		if (gw_clientcert_tenant(cfg, cn, strlen(cn)) < 0) {
			rest_reject(r, req, REST_REJ_CERT_UNKNOWN, 401, REST_MSG_CERT);
			return;
		}
	}
	fin.query = evhttp_uri_get_query(uri);
	fin.idempotency_key = evhttp_find_header(in_hdr, "Idempotency-Key");
	fin.body = blen ? (const char *)evbuffer_pullup(in_body, -1) : NULL;
	fin.body_len = blen;
	if (gw_facade_build(route, &fin, &packed, &plen, err, sizeof err) != 0) {
		r->rejected[REST_REJ_BAD_REQUEST]++;
		rest_send_error(r, req, route, 400, err);
		free(packed);
		return;
	}
	q = rest_q_new(r, req, route);
	if (!q) {
		free(packed);
		rest_send_error(r, req, NULL, 500, "out of memory");
		return;
	}
	q->packed = packed;
	q->plen = plen;
	if (!token) {
		rest_q_start(q, NULL, NULL);
		return;
	}
	if (toklen == GW_REST_SESS_TOKEN_LEN)
		memcpy(q->token, token, toklen);
	/* rest_on_sess may run (and start the call, which may end) before this returns */
	gw_rest_sess_find(r->sess, token, toklen, gw_clock_wall_ms(), rest_on_sess, q);
}

static void rest_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_rest *r = arg;
	struct gw_conncap_stats s;
	struct gw_rest_sess_stats ss;
	char labels[48];

	gw_conncap_stats(r->cap, &s);
	gw_metrics_one(o, "rest_requests_total", "counter", "Requests on the REST facade.", r->requests);
	gw_metrics_family(o, "rest_responses_total", "counter",
			  "REST facade answers by status class.");
	for (unsigned k = 2; k < 6; k++) {
		snprintf(labels, sizeof labels, "class=\"%uxx\"", k);
		gw_metrics_value(o, "rest_responses_total", labels, r->answered[k]);
	}
	gw_metrics_family(o, "rest_rejected_total", "counter",
			  "REST requests refused before they became a call, by reason.");
	for (unsigned k = 0; k < REST_REJ_N; k++) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", rest_reject_names[k]);
		gw_metrics_value(o, "rest_rejected_total", labels, r->rejected[k]);
	}
	gw_metrics_one(o, "rest_preflights_total", "counter", "CORS preflight requests answered.",
		       r->preflights);
	gw_metrics_one(o, "rest_cancelled_total", "counter",
		       "REST calls cancelled because their client closed the connection before the "
		       "answer (the call ends CANCELLED in rpc_total).", r->cancelled);
	gw_rest_sess_stats(r->sess, &ss);
	gw_metrics_one(o, "rest_sessions", "gauge",
		       "dmsess sessions this replica remembers (the state store holds them all).",
		       ss.cached);
	gw_metrics_one(o, "rest_sessions_max", "gauge",
		       "Sessions this replica remembers at most (its session cache).", ss.cache_max);
	gw_metrics_one(o, "rest_sessions_opened_total", "counter",
		       "Sessions opened by GET /session/auth.", ss.opened);
	gw_metrics_one(o, "rest_sessions_expired_total", "counter",
		       "Expired sessions removed from the state store by this replica's sweeps.",
		       ss.expired);
	gw_metrics_one(o, "rest_sessions_unknown_total", "counter",
		       "dmsess cookies that named no session (expired, revoked, or forged).",
		       ss.unknown);
	gw_metrics_one(o, "rest_sessions_revoked_total", "counter",
		       "Sessions removed from the state store because a reload removed their key.",
		       ss.revoked);
	gw_metrics_one(o, "rest_sessions_full_total", "counter",
		       "Logins refused: the tenant had GW_STORE_SESS_TENANT_MAX sessions.",
		       ss.refused_full);
	gw_metrics_one(o, "rest_sessions_store_errors_total", "counter",
		       "Session operations the state store failed (the request got 503).",
		       ss.store_errors);
	gw_metrics_one(o, "rest_sessions_busy_total", "counter",
		       "Session operations refused: GW_REST_SESS_MAX_OPS were in flight.",
		       ss.refused_busy);
	gw_metrics_family(o, "rest_sessions_cache_total", "counter",
			  "Session lookups answered by this replica's cache, or sent to the store.");
	gw_metrics_value(o, "rest_sessions_cache_total", "result=\"hit\"", ss.cache_hits);
	gw_metrics_value(o, "rest_sessions_cache_total", "result=\"miss\"", ss.cache_misses);
	gw_metrics_one(o, "rest_connections", "gauge", "Open connections on the REST listener.", s.open);
	gw_metrics_one(o, "rest_connections_max", "gauge", "The REST connection cap.", s.max);
	gw_metrics_one(o, "rest_connections_accepted_total", "counter",
		       "REST connections accepted.", s.accepted);
	gw_metrics_family(o, "rest_connections_closed_total", "counter",
			  "REST connections closed by the gateway: to make room at the cap, for "
			  "missing the request deadline (slow clients), or swept.");
	gw_metrics_value(o, "rest_connections_closed_total", "reason=\"cap\"", s.evicted_cap);
	gw_metrics_value(o, "rest_connections_closed_total", "reason=\"deadline\"", s.evicted_deadline);
	gw_metrics_value(o, "rest_connections_closed_total", "reason=\"swept\"", s.missed_close);
	gw_metrics_one(o, "rest_listener_pauses_total", "counter",
		       "Times the REST listener paused at the connection cap.", s.paused_cap);
	gw_metrics_one(o, "rest_accept_errors_total", "counter",
		       "accept() failures on the REST listener.", s.accept_errors);
}

/* Each connection's TLS session; evhttp sets the socket on it and the handshake runs first. */
static struct bufferevent *rest_tls_bev(struct event_base *base, void *arg)
{
	struct gw_rest *r = arg;
	SSL *ssl = SSL_new(r->tls);

	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/* A client certificate failed verification (another CA, expired, ...): the handshake is
 * refused, as the gRPC listener refuses it. Returning 0 stops the verification at the first
 * failure, so each refused handshake counts once. */
static int rest_tls_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct gw_rest *r = ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;

	if (!ok && r)
		r->rejected[REST_REJ_CERT_INVALID]++;
	return ok;
}

/* The gRPC listener's certificate and key (tls:), TLS 1.2 or later. With tls.client_ca_file,
 * client certificates are asked for and verified as the gRPC listener does it (requested, not
 * required: a client without one may use a key or a session; one the CA did not sign fails the
 * handshake); a verified one's CN names the tenant (tenants[].client_cert). */
static int rest_tls_new(struct gw_rest *r, char *err, size_t errlen)
{
	const struct gw_config *cfg = r->env->cfg;
	STACK_OF(X509_NAME) *names;

	if (!cfg->tls.cert_file)
		return 0;
	r->tls = SSL_CTX_new(TLS_server_method());
	if (!r->tls || SSL_CTX_set_min_proto_version(r->tls, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(r->tls, cfg->tls.cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(r->tls, cfg->tls.key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(r->tls) != 1) {
		snprintf(err, errlen, "REST facade: invalid TLS certificate or key (%s, %s)",
			 cfg->tls.cert_file, cfg->tls.key_file);
		return -1;
	}
	if (!cfg->tls.client_ca_file)
		return 0;
	/* The CA's names go in the CertificateRequest, so clients with several certificates
	 * pick the right one. */
	names = SSL_load_client_CA_file(cfg->tls.client_ca_file);
	if (!names || SSL_CTX_load_verify_locations(r->tls, cfg->tls.client_ca_file, NULL) != 1 ||
	    /* Without a session id context, OpenSSL refuses to resume a session whose client
	     * sent a certificate: every reconnect would fail its handshake. */
	    SSL_CTX_set_session_id_context(r->tls, (const unsigned char *)REST_TLS_SESSION_CTX,
					   sizeof REST_TLS_SESSION_CTX - 1) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		snprintf(err, errlen, "REST facade: invalid client CA file %s", cfg->tls.client_ca_file);
		return -1;
	}
	SSL_CTX_set_client_CA_list(r->tls, names);	/* taken */
	SSL_CTX_set_app_data(r->tls, r);
	SSL_CTX_set_verify(r->tls, SSL_VERIFY_PEER, rest_tls_verify);
	r->mtls = 1;
	r->cert_required = cfg->tls.client_cert_required;
	return 0;
}

static int rest_resolve(struct gw_rest *r, char *err, size_t errlen)
{
	size_t n;
	const struct gw_facade_route *routes = gw_facade_routes(&n);

	if (n > REST_MAX_ROUTES) {
		snprintf(err, errlen, "REST facade: more routes than REST_MAX_ROUTES");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < r->env->nmethods && strcmp(r->env->methods[k].path, routes[i].rpc) != 0;
		     k++)
			;
		if (k == r->env->nmethods) {
			snprintf(err, errlen, "REST facade: route %s names no method (%s)",
				 routes[i].prefix, routes[i].rpc);
			return -1;
		}
		r->midx[i] = k;
	}
	return 0;
}

/* A reload swapped the generation: every key of the one before that the new one lacks (or gave
 * to another tenant) has its sessions removed from the store. Calls check the key ring anyway;
 * this removes the rows, so that replicas whose key ring still has the key (not reloaded yet)
 * refuse the session once their cache forgets it (GW_REST_SESS_CACHE_TTL_MS). */
static void rest_on_reload(void *arg, const void *data)
{
	struct gw_rest *r = arg;
	struct gw_gen *old = r->gen, *cur = r->env->gen;
	const struct gw_config *oc = old->cfg;
	long keys = 0;

	(void)data;
	if (old == cur)
		return;
	for (size_t t = 0; t < oc->ntenants; t++)
		for (size_t k = 0; k < oc->tenants[t].nkeys; k++) {
			const uint8_t *h = oc->tenants[t].keys[k].sha256;
			size_t tidx = 0;
			unsigned perms = 0;

			if (gw_apikey_lookup_hash(cur->keys, h, &tidx, &perms) == 0 &&
			    tidx < cur->cfg->ntenants &&
			    strcmp(cur->cfg->tenants[tidx].name, oc->tenants[t].name) == 0)
				continue;
			gw_rest_sess_revoke(r->sess, h);
			keys++;
		}
	r->gen = gw_gen_get(cur);
	gw_gen_put(old);
	if (keys)
		gw_log(GW_LOG_INFO, "rest", GW_LS("msg", "sessions of removed keys revoked"),
		       GW_LN("keys", keys), GW_LEND);
}

static void rest_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct gw_rest *r = arg;

	(void)fd;
	(void)what;
	if (!gw_store_read_only(r->env->store))
		gw_rest_sess_sweep(r->sess, gw_clock_wall_ms());
}

struct gw_rest *gw_rest_new(struct gw_env *env, size_t reserve_conns, char *err, size_t errlen)
{
	struct gw_rest *r = calloc(1, sizeof *r), *ret = NULL;
	const struct gw_config *cfg = env->cfg;
	char host[REST_MAX_HOST];
	unsigned short port;
	struct evhttp_bound_socket *bound;
	size_t max_conns;
	uint64_t reserve = (uint64_t)cfg->process.open_files_reserve + reserve_conns;
	struct timeval sweep_tv = { REST_SESS_SWEEP_S, 0 };

	if (!r) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->env = env;
	if (rest_resolve(r, err, errlen) != 0)
		goto out;
	r->sess = gw_rest_sess_new(env->store, GW_REST_SESS_CACHE, GW_REST_SESS_CACHE_TTL_MS);
	r->ev_sweep = event_new(env->base, -1, EV_PERSIST, rest_on_sweep, r);
	r->ev_gone = event_new(env->base, -1, EV_PERSIST, rest_on_gone_check, r);
	if (!r->sess || !r->ev_sweep || !r->ev_gone || event_add(r->ev_sweep, &sweep_tv) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->gen = gw_gen_get(env->gen);
	if (gw_notify_sub(&env->reload, rest_on_reload, r) != 0) {
		snprintf(err, errlen, "too many reload subscribers");
		goto out;
	}
	if (rest_tls_new(r, err, errlen) != 0)
		goto out;
	if (gw_http_split_hostport(cfg->rest_listen, host, sizeof host, &port)) {
		snprintf(err, errlen, "invalid REST listen address %s (want host:port)", cfg->rest_listen);
		goto out;
	}
	r->http = evhttp_new(env->base);
	if (!r->http) {
		snprintf(err, errlen, "cannot create the REST listener");
		goto out;
	}
	evhttp_set_max_headers_size(r->http, cfg->rest.max_header_bytes);
	/* Twice the limit: bodies up to there reach rest_on_request and are refused counted. */
	evhttp_set_max_body_size(r->http, 2 * (ev_ssize_t)cfg->rest.max_body_bytes);
	evhttp_set_timeout(r->http, (int)cfg->rest.timeout_s);
	evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
					    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT);
	evhttp_set_gencb(r->http, rest_on_request, r);
	/* Out of what the admin listener leaves: both together stay below the descriptor limit. */
	max_conns = gw_fdlimit_http_cap(gw_fdlimit_current(),
					reserve > 0xffffffffu ? 0xffffffffu : (unsigned)reserve,
					cfg->rest.max_connections, err, errlen);
	if (!max_conns)
		goto out;
	bound = evhttp_bind_socket_with_handle(r->http, host, port);
	if (!bound) {
		snprintf(err, errlen, "cannot listen for REST on %s (address in use or invalid)",
			 cfg->rest_listen);
		goto out;
	}
	r->cap = gw_conncap_new(env->base, r->http, evhttp_bound_socket_get_listener(bound), max_conns,
				(int)cfg->rest.timeout_s, err, errlen);
	if (!r->cap)
		goto out;
	if (r->tls)
		gw_conncap_set_bev(r->cap, rest_tls_bev, r);
	if (gw_metrics_register(&env->metrics_reg, rest_render_metrics, r) != 0) {
		snprintf(err, errlen, "too many metrics renderers");
		goto out;
	}
	gw_log(GW_LOG_INFO, "rest", GW_LS("msg", "REST facade listening"),
	       GW_LS("listen", cfg->rest_listen),
	       GW_LS("tls", r->tls ? (r->mtls ? "mtls" : "tls") : "off"),
	       GW_LN("max_connections", (long long)max_conns),
	       GW_LEND);
	ret = r;
	r = NULL;
out:
	gw_rest_free(r);
	return ret;
}

void gw_rest_free(struct gw_rest *r)
{
	if (!r)
		return;
	gw_metrics_unregister(&r->env->metrics_reg, rest_render_metrics, r);
	gw_notify_unsub(&r->env->reload, rest_on_reload, r);
	if (r->ev_sweep)
		event_free(r->ev_sweep);
	if (r->ev_gone)
		event_free(r->ev_gone);
	/* Session lookups and logins waiting for the store: their callbacks never come now. */
	gw_rest_sess_free(r->sess);
	r->sess = NULL;
	/* Calls still running: their sinks must not reach a freed listener. */
	while (r->pending) {
		struct rest_req *q = r->pending;
		struct gw_call *c = q->call;

		q->call = NULL;
		if (c)
			gw_call_local_abandon(c);
		rest_send_error(r, rest_q_end(q), NULL, 503, "server is shutting down");
	}
	gw_conncap_detach(r->cap);
	if (r->http)
		evhttp_free(r->http);
	gw_conncap_free(r->cap);
	gw_gen_put(r->gen);
	SSL_CTX_free(r->tls);
	free(r);
}
