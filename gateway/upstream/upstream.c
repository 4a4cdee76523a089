/*
 * upstream: libcurl transfers on the libevent loop (gateway/base/curlev.h), sessions attached
 * (upstream.h): easy handles, request building, response collection, a log line per attempt.
 * The account protection each API request passes (breaker, admission, retry budget and backoff)
 * is in upstream_guard.c; the two share gateway/upstream/upstream_int.h.
 */
#include "gateway/upstream/upstream.h"
#include "gateway/base/clock.h"
#include "gateway/base/curlev.h"
#include "gateway/upstream/upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/config/config.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/notify.h"
#include "gateway/base/otlp.h"

#define UP_URL_MAX 8192			/* base_url + path, or a signed URL */
#define UP_HEADER_MAX 8192		/* one captured response header value */
#define UP_COOKIE_HDR_MAX (GW_UP_COOKIE_MAX + 16)
#define UP_TRACEPARENT_HDR_MAX (GW_TRACE_PARENT_LEN + 16)
#define UP_TRACESTATE_HDR_MAX (GW_TRACE_STATE_MAX + 16)
#define UP_ERR_MAX 256
#define UP_BODY_INITIAL 4096
#define UP_MAX_HOST_CONNECTIONS 64	/* per upstream host; keep-alive reuse within it */

static void up_attempt(struct gw_up_call *c, const char *cookie, uint64_t generation);

/* ---- small helpers ---- */

static void up_unlink(struct gw_up_call *c)
{
	if (!c->linked)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->up->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->linked = 0;
}

static void up_reset_response(struct gw_up_call *c)
{
	free(c->rbody);
	free(c->location);
	free(c->range);
	free(c->retry_after);
	if (c->set_cookie) {
		explicit_bzero(c->set_cookie, strlen(c->set_cookie));
		free(c->set_cookie);
	}
	c->rbody = c->location = c->range = c->retry_after = c->set_cookie = NULL;
	c->rlen = c->rcap = 0;
	c->too_large = 0;
	c->errbuf[0] = '\0';
}

static void up_drop_easy(struct gw_up_call *c)
{
	if (c->easy) {
		curl_multi_remove_handle(c->up->multi, c->easy);
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
		if (c->up->n.in_flight > 0)
			c->up->n.in_flight--;
	}
	if (c->hdrs) {
		/* The list holds the cookie header: wipe before freeing. */
		for (struct curl_slist *h = c->hdrs; h; h = h->next)
			if (strncasecmp(h->data, "Cookie:", 7) == 0)
				explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(c->hdrs);
		c->hdrs = NULL;
	}
}

static void up_call_free(struct gw_up_call *c)
{
	gw_up_guard_release(c);
	up_drop_easy(c);
	if (c->acct && c->waiter.acct)
		c->acct->auth->cancel(&c->waiter);
	if (c->retry_ev)
		event_free(c->retry_ev);
	up_unlink(c);
	up_reset_response(c);
	curl_slist_free_all(c->fixed_hdrs);
	free(c->method);
	if (c->url) {
		/* Signed URLs carry their signature in the query. */
		explicit_bzero(c->url, strlen(c->url));
		free(c->url);
	}
	free(c->body);
	free(c);
}

int64_t gw_up_time_left_ms(const struct gw_up_call *c)
{
	return (c->deadline_us - gw_clock_now_us()) / 1000;
}

static char *up_dup_trim(const char *v, size_t len)
{
	char *c;

	while (len && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		       v[len - 1] == '\t'))
		len--;
	/* v is curl's header buffer, not a string: copy exactly len bytes */
	c = malloc(len + 1);
	if (c) {
		memcpy(c, v, len);
		c[len] = '\0';
	}
	return c;
}

/* Captures the headers the callers need; resets them at each new status line (100-continue). */
static size_t up_header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct gw_up_call *c = ud;
	size_t len = size * nmemb;
	char **slot = NULL;
	size_t nlen;
	const char *colon;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(c->location);
		free(c->range);
		free(c->retry_after);
		c->location = c->range = c->retry_after = NULL;
		return len;
	}
	if (len > UP_HEADER_MAX)
		return len;		/* oversized header: not one we can use */
	colon = memchr(p, ':', len);
	if (!colon)
		return len;
	nlen = (size_t)(colon - p);
	if (nlen == 8 && strncasecmp(p, "Location", 8) == 0)
		slot = &c->location;
	else if (nlen == 5 && strncasecmp(p, "Range", 5) == 0)
		slot = &c->range;
	else if (nlen == 11 && strncasecmp(p, "Retry-After", 11) == 0)
		slot = &c->retry_after;
	else if (nlen == 10 && strncasecmp(p, "Set-Cookie", 10) == 0 && !c->set_cookie) {
		/* The first dmsess cookie wins; other cookies are not ours. */
		const char *v = colon + 1, *end = p + len;

		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		if ((size_t)(end - v) > 7 && strncmp(v, "dmsess=", 7) == 0)
			slot = &c->set_cookie;
	}
	if (slot && !*slot)
		*slot = up_dup_trim(colon + 1, len - nlen - 1);
	return len;
}

static size_t up_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct gw_up_call *c = ud;
	size_t len = size * nmemb;

	if (len > c->rmax - c->rlen) {
		c->too_large = 1;
		return 0;	/* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (c->rlen + len + 1 > c->rcap) {
		size_t cap = c->rcap ? c->rcap : UP_BODY_INITIAL;
		char *nb;

		while (cap < c->rlen + len + 1)
			cap *= 2;
		if (cap > c->rmax + 1)
			cap = c->rmax + 1;
		nb = realloc(c->rbody, cap);
		if (!nb)
			return 0;
		c->rbody = nb;
		c->rcap = cap;
	}
	memcpy(c->rbody + c->rlen, p, len);
	c->rlen += len;
	c->rbody[c->rlen] = '\0';
	return len;
}



/* ---- completion, retry, session ---- */

static void up_session_ready(struct gw_up_waiter *w, const char *cookie, uint64_t generation,
			     const char *err)
{
	struct gw_up_call *c = (struct gw_up_call *)((char *)w - offsetof(struct gw_up_call, waiter));

	if (!cookie) {
		c->up->n.no_session++;
		gw_up_finish(c, CURLE_OK, c->reauthed ? 401 : 0, err, 1);
		return;
	}
	up_attempt(c, cookie, generation);
}

static void up_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct gw_up_call *c = arg;
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;

	(void)fd;
	(void)what;
	c->phase = UP_IDLE;
	if (c->guard == UP_GUARD_NONE && gw_up_guard_enter(c) != 0)
		return;		/* queued, or refused (c is gone) */
	if (c->guard == UP_GUARD_REFUSED) {
		gw_up_guard_refused_late(c);
		return;
	}
	if (!c->api) {
		up_attempt(c, NULL, 0);
		return;
	}
	switch (c->acct->auth->acquire(c->acct, &c->waiter, &cookie, &gen, &err)) {
	case GW_UP_AUTH_READY:
		up_attempt(c, cookie, gen);
		break;
	case GW_UP_AUTH_WAIT:
		c->phase = UP_WAIT_SESSION;
		break;
	default:
		c->up->n.no_session++;
		gw_up_finish(c, CURLE_OK, c->reauthed ? 401 : 0, err, 1);
		break;
	}
}

/* An attempt made for a call (or a login) is a CLIENT span, a child of the call's: named by its
 * route template, never by its URL (rids, signed queries). */
static void up_otlp_span(struct gw_up_call *c, CURLcode rc, long status, int64_t end_us)
{
	const char *route = c->route ? c->route : "other";
	const char *tmpl = strchr(route, ' ');
	struct gw_otlp_span_in s = {
		.trace = &c->span,
		.name = route,
		.kind = GW_OTLP_CLIENT,
		.start_us = c->started_us,
		.end_us = end_us,
		.status = rc != CURLE_OK || status >= 400 ? GW_OTLP_ERROR : GW_OTLP_UNSET,
		.status_msg = rc != CURLE_OK ? curl_easy_strerror(rc) : NULL,
		.attrs = { { "http.request.method", c->method, 0 } },
		.nattrs = 1,
	};

	if (tmpl && tmpl[1] == '/')
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "url.template", tmpl + 1, 0 };
	if (rc == CURLE_OK)
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "http.response.status_code", NULL, status };
	if (c->attempts > 1)
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "http.request.resend_count", NULL,
							     (long long)c->attempts - 1 };
	if (c->acct)
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "upstream.account", c->acct->name, 0 };
	gw_otlp_span_end(c->up->env.otlp, &s);
}

static void up_transfer_done(struct gw_up_call *c, CURLcode rc)
{
	struct gw_upstream *up = c->up;
	long status = 0, delay;
	const char *cookie = NULL, *err = NULL;
	uint64_t gen = 0;
	int64_t latency_us;

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	up_drop_easy(c);
	c->phase = UP_IDLE;
	latency_us = gw_clock_now_us() - c->started_us;
	if (up->env.metrics)
		gw_metrics_upstream(up->env.metrics, c->route, rc == CURLE_OK ? status : 0,
				    latency_us);
	if (c->traced && up->env.otlp)
		up_otlp_span(c, rc, rc == CURLE_OK ? status : 0, c->started_us + latency_us);
	/* One line per attempt. The route is the documented template: never the URL (rids,
	 * signed queries). Logins carry no account here; their route says what they are. An
	 * attempt made for a call names the call's request id and trace, and its own span. */
	if (c->traced)
		gw_log(rc == CURLE_OK && status < 500 ? GW_LOG_INFO : GW_LOG_WARN, "upstream",
		       GW_LTRACE(&c->span), GW_LS("parent_span_id", c->span.parent_id),
		       GW_LS("route", c->route ? c->route : "other"),
		       GW_LS("account", c->acct ? c->acct->name : "-"),
		       GW_LN("status", rc == CURLE_OK ? status : 0), GW_LN("curl", (long)rc),
		       GW_LN("latency_ms", latency_us / 1000), GW_LEND);
	else
		gw_log(rc == CURLE_OK && status < 500 ? GW_LOG_INFO : GW_LOG_WARN, "upstream",
		       GW_LS("route", c->route ? c->route : "other"),
		       GW_LS("account", c->acct ? c->acct->name : "-"),
		       GW_LN("status", rc == CURLE_OK ? status : 0), GW_LN("curl", (long)rc),
		       GW_LN("latency_ms", latency_us / 1000), GW_LEND);

	if (c->too_large) {
		up->n.too_large++;
		gw_up_finish(c, CURLE_WRITE_ERROR, 0, "upstream response too large", 0);
		return;
	}
	if (rc == CURLE_OK && status == 401 && c->api && !c->reauthed) {
		c->reauthed = 1;
		up->n.reauth_retries++;
		switch (c->acct->auth->unauthorized(c->acct, c->generation, &c->waiter, &cookie,
						    &gen, &err)) {
		case GW_UP_AUTH_READY:
			up_attempt(c, cookie, gen);
			return;
		case GW_UP_AUTH_WAIT:
			c->phase = UP_WAIT_SESSION;
			return;
		default:
			up->n.no_session++;
			gw_up_finish(c, CURLE_OK, 401, err, 1);
			return;
		}
	}
	delay = gw_up_guard_retry_delay(c, rc, status);
	if (delay >= 0) {
		struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };

		c->retried++;
		up->n.retries++;
		if (evtimer_add(c->retry_ev, &tv) == 0) {
			c->phase = UP_WAIT_RETRY;
			up_reset_response(c);
			return;
		}
	}
	if (rc == CURLE_OK && status == 401 && c->api) {
		up->n.no_session++;
		gw_up_finish(c, rc, status, "upstream rejected the session even after a fresh login", 1);
		return;
	}
	gw_up_finish(c, rc, status, NULL, 0);
}

static void up_check_done(struct gw_upstream *up)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(up->multi, &left))) {
		struct gw_up_call *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (c)
			up_transfer_done(c, m->data.result);
	}
}

/* gw_curlev's check (gateway/base/curlev.h): the transfers that ended. */
static void up_on_curl(void *arg)
{
	up_check_done(arg);
}

/* Calls done() once and frees c. */
void gw_up_finish(struct gw_up_call *c, CURLcode rc, long status, const char *err,
		  int no_session)
{
	struct gw_up_response res;
	char ebuf[UP_ERR_MAX];

	memset(&res, 0, sizeof res);
	res.curl_rc = rc;
	res.http_status = status;
	res.body = c->rbody ? c->rbody : "";
	res.body_len = c->rlen;
	res.location = c->location;
	res.range = c->range;
	res.set_cookie = c->set_cookie;
	res.retry_after_ms = c->retry_after ? gw_errmap_retry_after_ms(c->retry_after, time(NULL))
					    : -1;
	res.no_session = no_session;
	res.limited = c->limited;
	if (c->limited)
		res.retry_after_ms = c->limited_retry_ms;
	gw_up_guard_outcome(c, rc, status, no_session);
	if (err) {
		res.error = err;
	} else if (rc != CURLE_OK) {
		/* curl's text can name the URL; drop any query (signatures) on the way out. */
		const char *src = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);

		gw_errmap_sanitize(src, strlen(src), ebuf, sizeof ebuf);
		res.error = ebuf;
	}
	up_unlink(c);
	c->done(c->arg, &res);
	up_call_free(c);
}

/* One HTTP transfer for c with cookie (API requests) attached. */
static void up_attempt(struct gw_up_call *c, const char *cookie, uint64_t generation)
{
	struct gw_upstream *up = c->up;
	const struct gw_config *cfg = *up->env.cfg;
	int64_t left = gw_up_time_left_ms(c);
	CURL *e = NULL;
	char cookie_hdr[UP_COOKIE_HDR_MAX];

	up_reset_response(c);
	if (left <= 0) {
		gw_up_finish(c, CURLE_OPERATION_TIMEDOUT, 0, "deadline passed before the upstream request",
			  0);
		return;
	}
	for (struct curl_slist *h = c->fixed_hdrs; h; h = h->next) {
		struct curl_slist *n = curl_slist_append(c->hdrs, h->data);

		if (!n)
			goto fail;
		c->hdrs = n;
	}
	if (c->api) {
		struct curl_slist *n;

		if (snprintf(cookie_hdr, sizeof cookie_hdr, "Cookie: dmsess=%s", cookie) >=
		    (int)sizeof cookie_hdr)
			goto fail;
		n = curl_slist_append(c->hdrs, cookie_hdr);
		explicit_bzero(cookie_hdr, sizeof cookie_hdr);
		if (!n)
			goto fail;
		c->hdrs = n;
		c->generation = generation;
	}
	if (c->traced) {
		char tp[UP_TRACEPARENT_HDR_MAX];
		struct curl_slist *n;

		/* Every attempt is a span of its own: a retry is another request upstream. */
		if (c->attempts)
			gw_trace_new_span(&c->span, &up->trace_rng);
		snprintf(tp, sizeof tp, "traceparent: ");
		gw_trace_format_parent(&c->span, tp + 13, sizeof tp - 13);
		n = curl_slist_append(c->hdrs, tp);
		if (!n)
			goto fail;
		c->hdrs = n;
	}
	e = curl_easy_init();
	if (!e)
		goto fail;
	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 cfg && cfg->upstream.connect_timeout_ms > 0 ? cfg->upstream.connect_timeout_ms
								     : 2000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, up_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, up_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	if (strcmp(c->method, "GET") == 0 && !c->has_body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(c->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
		if (c->has_body || strcmp(c->method, "POST") == 0 || strcmp(c->method, "PUT") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body_ptr ? c->body_ptr : "");
		}
	}
	if (curl_multi_add_handle(up->multi, e) != CURLM_OK)
		goto fail;
	c->easy = e;
	c->phase = UP_TRANSFER;
	c->started_us = gw_clock_now_us();
	c->attempts++;
	up->n.attempts++;
	up->n.in_flight++;
	return;
fail:
	if (e)
		curl_easy_cleanup(e);
	if (c->hdrs) {
		curl_slist_free_all(c->hdrs);
		c->hdrs = NULL;
	}
	gw_up_finish(c, CURLE_OUT_OF_MEMORY, 0, "cannot start the upstream request", 0);
}

/* ---- metrics ---- */

static void up_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_upstream *up = arg;
	const struct gw_metrics *m = up->env.metrics;
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 32];

	gw_metrics_family(o, "upstream_requests_total", "counter",
			  "Upstream HTTP attempts by route template and HTTP status (none: no answer).");
	for (size_t i = 0; m && i < GW_METRICS_MAX_ROUTES && m->routes[i].route; i++) {
		const struct gw_metrics_route *r = &m->routes[i];

		gw_metrics_label(r->route, l, sizeof l);
		for (size_t k = 0; k < GW_METRICS_ROUTE_CODES && r->n[k]; k++) {
			if (r->code[k])
				snprintf(labels, sizeof labels, "route=\"%s\",status=\"%u\"", l,
					 (unsigned)r->code[k]);
			else
				snprintf(labels, sizeof labels, "route=\"%s\",status=\"none\"", l);
			gw_metrics_value(o, "upstream_requests_total", labels, r->n[k]);
		}
		if (r->other) {
			snprintf(labels, sizeof labels, "route=\"%s\",status=\"other\"", l);
			gw_metrics_value(o, "upstream_requests_total", labels, r->other);
		}
	}
	gw_metrics_family(o, "upstream_duration_seconds", "histogram",
			  "Upstream HTTP attempt latency by route template.");
	for (size_t i = 0; m && i < GW_METRICS_MAX_ROUTES && m->routes[i].route; i++) {
		gw_metrics_label(m->routes[i].route, l, sizeof l);
		snprintf(labels, sizeof labels, "route=\"%s\"", l);
		gw_metrics_hist(o, "upstream_duration_seconds", labels, &m->routes[i].latency);
	}
	if (m)
		gw_metrics_one(o, "upstream_routes_dropped_total", "counter",
			       "Upstream answers for routes past the metrics table.", m->routes_dropped);
	gw_metrics_one(o, "upstream_in_flight", "gauge", "Upstream HTTP transfers in flight.",
		       up->n.in_flight);
	gw_metrics_one(o, "upstream_started_total", "counter",
		       "Upstream requests started (retries not included).", up->n.started);
	gw_metrics_one(o, "upstream_retries_total", "counter",
		       "Idempotent retries after a 5xx or a connection error.", up->n.retries);
	gw_metrics_one(o, "upstream_reauth_retries_total", "counter",
		       "Retries after a 401 with a fresh session cookie.", up->n.reauth_retries);
	gw_metrics_one(o, "upstream_too_large_total", "counter",
		       "Responses aborted past upstream.max_response_bytes.", up->n.too_large);
	gw_metrics_one(o, "upstream_no_session_total", "counter",
		       "Requests failed because no upstream session could be had.", up->n.no_session);
	gw_metrics_one(o, "upstream_cancelled_total", "counter",
		       "Upstream requests abandoned because their call went away.", up->n.cancelled);
	gw_up_guard_render_metrics(up, o);
}

/* ---- public API ---- */

const struct gw_up_counters *gw_up_counters(const struct gw_upstream *up)
{
	return &up->n;
}

struct gw_upstream *gw_up_new(const struct gw_up_env *env)
{
	struct gw_upstream *up = calloc(1, sizeof *up), *ret = NULL;

	if (!up)
		goto out;
	up->env = *env;
	/* Before the poller thread exists (gw_server_new runs single-threaded); refcounted. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(up);
		up = NULL;
		goto out;
	}
	up->global_init = 1;
	up->rng = (uint64_t)gw_clock_now_us() ^ ((uint64_t)getpid() << 29) ^ 0x2545f4914f6cdd1dull;
	if (!up->rng)
		up->rng = 1;
	up->cv = gw_curlev_new(env->base, up_on_curl, up);
	if (!up->cv)
		goto out;
	up->multi = gw_curlev_multi(up->cv);
	curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)UP_MAX_HOST_CONNECTIONS);
	if (gw_up_guard_init(up) != 0)
		goto out;
	if (env->metrics_reg && gw_metrics_register(env->metrics_reg, up_render_metrics, up) != 0)
		goto out;
	up->registered = env->metrics_reg != NULL;
	ret = up;
	up = NULL;
out:
	if (up)
		gw_up_free(up);
	return ret;
}

void gw_up_free(struct gw_upstream *up)
{
	if (!up)
		return;
	if (up->registered)
		gw_metrics_unregister(up->env.metrics_reg, up_render_metrics, up);
	while (up->calls)
		up_call_free(up->calls);
	gw_up_guard_fini(up);	/* after the calls: they give their slots back */
	gw_curlev_free(up->cv);
	if (up->global_init)
		curl_global_cleanup();
	free(up);
}

static int up_build_url(struct gw_up_call *c, struct gw_up_account *acct,
			const struct gw_up_request *rq)
{
	size_t n;

	if (rq->url) {
		c->url = strdup(rq->url);
		return c->url ? 0 : -1;
	}
	if (!acct || !rq->path || rq->path[0] != '/')
		return -1;
	n = strlen(acct->base_url) + strlen(rq->path) + 1;
	if (n > UP_URL_MAX)
		return -1;
	c->url = malloc(n);
	if (!c->url)
		return -1;
	snprintf(c->url, n, "%s%s", acct->base_url, rq->path);
	c->api = 1;
	return 0;
}

struct gw_up_call *gw_up_start(struct gw_upstream *up, struct gw_up_account *acct,
			       const struct gw_up_request *rq, gw_up_done_fn done, void *arg)
{
	const struct gw_config *cfg = *up->env.cfg;
	struct gw_up_call *c = calloc(1, sizeof *c), *ret = NULL;
	long timeout;

	if (!c || !rq->method || (!rq->url == !rq->path) || strlen(rq->url ? rq->url : "") > UP_URL_MAX)
		goto out;
	c->up = up;
	c->acct = acct;
	c->done = done;
	c->arg = arg;
	/* API requests are named by their documented template, whatever the caller passed: metric
	 * labels and log fields then never carry an id or a query (gateway/base/metrics.h). */
	c->route = rq->path ? gw_metrics_route(rq->method, rq->path) : rq->route;
	c->idempotent = rq->idempotent;
	c->waiter.fn = up_session_ready;
	c->rmax = cfg && cfg->upstream.max_response_bytes ? cfg->upstream.max_response_bytes
							  : GW_UP_MAX_RESPONSE_DEFAULT;
	timeout = rq->timeout_ms > 0 ? rq->timeout_ms
		: cfg && cfg->upstream.default_timeout_ms > 0 ? cfg->upstream.default_timeout_ms
							      : 30000L;
	c->deadline_us = gw_clock_now_us() + (int64_t)timeout * 1000;
	if (rq->admit_within_ms > 0 && rq->admit_within_ms < timeout)
		c->admit_by_us = gw_clock_now_us() + (int64_t)rq->admit_within_ms * 1000;
	c->method = strdup(rq->method);
	if (!c->method || up_build_url(c, acct, rq) != 0)
		goto out;
	if (rq->body) {
		c->has_body = 1;
		c->body_len = rq->body_len;
		if (rq->body_keep) {
			c->body_ptr = rq->body;
		} else {
			c->body = malloc(rq->body_len + 1);
			if (!c->body)
				goto out;
			memcpy(c->body, rq->body, rq->body_len);
			c->body[rq->body_len] = '\0';
			c->body_ptr = c->body;
		}
	}
	if (rq->body || rq->content_type) {
		char ct[256];
		struct curl_slist *n;

		snprintf(ct, sizeof ct, "Content-Type: %s",
			 rq->content_type ? rq->content_type : "application/json");
		n = curl_slist_append(c->fixed_hdrs, ct);
		if (!n)
			goto out;
		c->fixed_hdrs = n;
	}
	/* No "Expect: 100-continue" round trip on large bodies. */
	{
		struct curl_slist *n = curl_slist_append(c->fixed_hdrs, "Expect:");

		if (!n)
			goto out;
		c->fixed_hdrs = n;
	}
	for (size_t i = 0; i < GW_UP_MAX_HEADERS && rq->headers[i]; i++) {
		struct curl_slist *n = curl_slist_append(c->fixed_hdrs, rq->headers[i]);

		if (!n)
			goto out;
		c->fixed_hdrs = n;
	}
	if (rq->trace) {
		/* The spans are made per attempt (up_attempt); tracestate goes on unchanged. */
		gw_trace_child(&c->span, rq->trace, &up->trace_rng);
		c->span.state = NULL;
		c->traced = 1;
		if (rq->trace->state && rq->trace->state_len <= GW_TRACE_STATE_MAX) {
			char ts[UP_TRACESTATE_HDR_MAX];
			struct curl_slist *n;

			snprintf(ts, sizeof ts, "tracestate: %.*s", (int)rq->trace->state_len,
				 rq->trace->state);
			n = curl_slist_append(c->fixed_hdrs, ts);
			if (!n)
				goto out;
			c->fixed_hdrs = n;
		}
	}
	/* The first step runs from the loop, never inside gw_up_start(): done() must not run
	 * before the caller has stored the handle. */
	c->retry_ev = evtimer_new(up->env.base, up_on_retry, c);
	if (!c->retry_ev)
		goto out;
	c->next = up->calls;
	if (up->calls)
		up->calls->prev = c;
	up->calls = c;
	c->linked = 1;
	up->n.started++;
	c->phase = UP_WAIT_RETRY;
	event_active(c->retry_ev, EV_TIMEOUT, 0);
	ret = c;
	c = NULL;
out:
	if (c)
		up_call_free(c);
	return ret;
}

void gw_up_cancel(struct gw_up_call *c)
{
	if (!c)
		return;
	c->up->n.cancelled++;
	up_call_free(c);
}

grpc_status_code gw_up_failure_of(const struct gw_up_response *res, const char *what,
				  struct gw_up_failure *out)
{
	const char *w = what ? what : "upstream";

	out->code = GRPC_STATUS_OK;
	out->retry_ms = -1;
	out->msg[0] = '\0';
	if (res->limited) {
		/* Refused by the account's protection before anything was sent. */
		out->code = (grpc_status_code)res->limited;
		out->retry_ms = res->retry_after_ms >= 0 ? res->retry_after_ms : -1;
		snprintf(out->msg, sizeof out->msg, "%s: %s", w, res->error ? res->error : "upstream limit");
	} else if (res->no_session) {
		out->code = GRPC_STATUS_UNAVAILABLE;
		snprintf(out->msg, sizeof out->msg, "%s: %s", w,
			 res->error ? res->error : "upstream rejected account credentials");
	} else if (res->curl_rc != CURLE_OK) {
		out->code = gw_errmap_curl((int)res->curl_rc, res->error, w, out->msg, sizeof out->msg);
	} else if (res->http_status < 200 || res->http_status > 299) {
		out->code = gw_errmap_http(res->http_status, res->body, res->body_len, w, out->msg,
					   sizeof out->msg);
		if (out->code == GRPC_STATUS_RESOURCE_EXHAUSTED)
			out->retry_ms = res->retry_after_ms >= 0 ? res->retry_after_ms
								 : GW_UP_DEFAULT_PUSHBACK_MS;
		else if (out->code == GRPC_STATUS_UNAVAILABLE && res->retry_after_ms >= 0)
			out->retry_ms = res->retry_after_ms;	/* 503 + Retry-After */
	}
	return out->code;
}
