/*
 * conncap: counted evhttp connections, evictions, pauses and accept backoff. See conncap.h.
 *
 * The connections form one list ordered by their mark (accept time, then the time of their last
 * request): the head is the one quiet the longest, what the cap evicts and the deadline closes
 * first.
 */
#include "gateway/base/conncap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "gateway/base/log.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"

struct conncap_conn {
	struct gw_conncap *cc;
	struct bufferevent *bev;		/* our reference, dropped when the connection closes */
	struct evhttp_connection *evcon;	/* NULL until evhttp has set the connection up */
	int64_t mark_ms;			/* accept, then each request handed to us */
	int busy;				/* a request is being answered later (gw_conncap_busy) */
	struct conncap_conn *prev, *next;
};

struct gw_conncap {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lev;
	struct event *ev_resolve;		/* new connections to resolve (activated per accept) */
	struct event *ev_sweep;			/* every GW_CONNCAP_SWEEP_MS: deadlines, lost closes */
	struct event *ev_backoff;		/* the end of a pause after an accept error */
	struct event *ev_pause;			/* the pause itself, just after the error callback */
	struct event *ev_quiet;			/* paused at the cap: when the head becomes evictable */
	struct conncap_conn *head, *tail;	/* oldest mark first */
	int64_t deadline_ms;
	int64_t backoff_ms;			/* the current pause after accept errors; 0 = none */
	int paused_cap, paused_err;		/* why the listener should be paused */
	struct gw_lograte log_evict, log_pause, log_err;
	struct gw_conncap_stats st;
	gw_conncap_bev_fn make_bev;		/* NULL: a plain socket bufferevent */
	void *make_bev_arg;
};

static int64_t conncap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the list ---- */

static void conncap_unlink(struct gw_conncap *c, struct conncap_conn *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		c->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		c->tail = k->prev;
	k->prev = k->next = NULL;
}

static void conncap_append(struct gw_conncap *c, struct conncap_conn *k)
{
	k->prev = c->tail;
	k->next = NULL;
	if (c->tail)
		c->tail->next = k;
	else
		c->head = k;
	c->tail = k;
}

/* ---- the listener ---- */

static void conncap_listen_update(struct gw_conncap *c)
{
	int want = c->paused_cap || c->paused_err;

	if (!c->lev)
		return;	/* detached: evhttp is freeing its listener */
	if (want && !c->st.paused) {
		evconnlistener_disable(c->lev);
		c->st.paused = 1;
	} else if (!want && c->st.paused) {
		evconnlistener_enable(c->lev);
		c->st.paused = 0;
	}
}

/* A connection still owned by evhttp: its bufferevent's callback argument is still its evcon
 * (evhttp clears the callbacks when it frees the bufferevent, before freeing the evcon). */
static int conncap_alive(const struct conncap_conn *k)
{
	void *arg = NULL;

	if (!k->evcon)
		return 0;
	bufferevent_getcb(k->bev, NULL, NULL, NULL, &arg);
	return arg == k->evcon;
}

/* Uncounts k and frees it; the listener may resume. */
static void conncap_forget(struct gw_conncap *c, struct conncap_conn *k)
{
	conncap_unlink(c, k);
	c->st.open--;
	c->st.closed++;
	bufferevent_decref(k->bev);
	free(k);
	if (c->paused_cap && c->st.open < c->st.max) {
		c->paused_cap = 0;
		conncap_listen_update(c);
	}
}

static void conncap_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct conncap_conn *k = arg;

	(void)evcon;
	conncap_forget(k->cc, k);
}

static void conncap_log_evict(struct gw_conncap *c, const char *reason)
{
	uint64_t held = 0;

	if (gw_lograte_allow(&c->log_evict, conncap_now_ms(), 1, &held))
		gw_log(GW_LOG_WARN, "http_conn", GW_LS("msg", "connection closed"), GW_LS("reason", reason),
		       GW_LN("open", (long long)c->st.open), GW_LN("max", (long long)c->st.max),
		       GW_LN("suppressed", (long long)held), GW_LEND);
}

/* Closes k (evhttp calls conncap_on_close, which frees it). */
static void conncap_evict(struct gw_conncap *c, struct conncap_conn *k, int deadline)
{
	if (deadline)
		c->st.evicted_deadline++;
	else
		c->st.evicted_cap++;
	conncap_log_evict(c, deadline ? "no complete request within the deadline"
				      : "connection cap reached: the quietest connection makes room");
	evhttp_connection_free(k->evcon);
}

/* The head when it may be evicted to make room: set up, alive, quiet long enough. */
static struct conncap_conn *conncap_evictable(struct gw_conncap *c, int64_t now)
{
	struct conncap_conn *k = c->head;

	/* Being set up this very pass, or a request is being answered: not quiet. */
	while (k && (!k->evcon || k->busy))
		k = k->next;
	if (k && conncap_alive(k) && now - k->mark_ms >= GW_CONNCAP_EVICT_IDLE_MS)
		return k;
	return NULL;
}

static void conncap_enforce(struct gw_conncap *c)
{
	int64_t now = conncap_now_ms();
	struct conncap_conn *k;
	uint64_t held = 0;

	while (c->st.open > c->st.max && (k = conncap_evictable(c, now)) != NULL)
		conncap_evict(c, k, 0);
	if (c->st.open < c->st.max || conncap_evictable(c, now)) {
		/* Room, or a quiet connection to give up for the next one. */
		if (c->paused_cap) {
			c->paused_cap = 0;
			conncap_listen_update(c);
		}
		return;
	}
	/* Look again when the quietest connection has been quiet long enough to give way. */
	for (k = c->head; k && (!k->evcon || k->busy); k = k->next)
		;
	if (k && c->lev) {
		int64_t ms = k->mark_ms + GW_CONNCAP_EVICT_IDLE_MS - now;
		struct timeval tv = { 0, 0 };

		if (ms > 0) {
			tv.tv_sec = ms / 1000;
			tv.tv_usec = (ms % 1000) * 1000;
		}
		evtimer_add(c->ev_quiet, &tv);
	}
	if (!c->paused_cap) {
		c->paused_cap = 1;
		c->st.paused_cap++;
		conncap_listen_update(c);
		if (gw_lograte_allow(&c->log_pause, now, 1, &held))
			gw_log(GW_LOG_WARN, "http_conn",
			       GW_LS("msg", "connection cap reached, accepting paused until one closes"),
			       GW_LN("open", (long long)c->st.open), GW_LN("max", (long long)c->st.max),
			       GW_LN("suppressed", (long long)held), GW_LEND);
	}
}

/* ---- callbacks ---- */

/* evhttp asks for a new connection's bufferevent: count the connection. */
static struct bufferevent *conncap_bevcb(struct event_base *base, void *arg)
{
	struct gw_conncap *c = arg;
	struct conncap_conn *k = calloc(1, sizeof *k);
	struct bufferevent *bev = c->make_bev ? c->make_bev(base, c->make_bev_arg)
					      : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (!k || !bev) {
		/* evhttp makes its own: one connection uncounted, only when memory is gone */
		free(k);
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	bufferevent_incref(bev);
	k->cc = c;
	k->bev = bev;
	k->mark_ms = conncap_now_ms();
	conncap_append(c, k);
	c->st.accepted++;
	if (++c->st.open > c->st.high_water)
		c->st.high_water = c->st.open;
	c->backoff_ms = 0;	/* accept works again */
	if (!c->paused_cap && (c->st.open > c->st.max ||
			       (c->st.open == c->st.max && !conncap_evictable(c, k->mark_ms)))) {
		/* Stop the listener's accept loop now (over the cap, or at it with nothing to give
		 * way for the next one); resolving decides what gives way. */
		c->paused_cap = 1;
		c->st.paused_cap++;
		conncap_listen_update(c);
	}
	event_active(c->ev_resolve, 0, 0);
	return bev;
}

/* New connections, set up by evhttp during the same loop pass: hook their close callbacks. */
static void conncap_on_resolve(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conncap *c = arg;
	struct conncap_conn *k, *next;

	(void)fd;
	(void)what;
	for (k = c->head; k; k = next) {
		void *cbarg = NULL;

		next = k->next;
		if (k->evcon)
			continue;
		bufferevent_getcb(k->bev, NULL, NULL, NULL, &cbarg);
		if (!cbarg) {
			conncap_forget(c, k);	/* evhttp gave up on it already */
			continue;
		}
		k->evcon = cbarg;
		evhttp_connection_set_closecb(k->evcon, conncap_on_close, k);
	}
	conncap_enforce(c);
}

static void conncap_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conncap *c = arg;
	int64_t now = conncap_now_ms();
	struct conncap_conn *k, *next;

	(void)fd;
	(void)what;
	for (k = c->head; k; k = next) {
		next = k->next;
		if (!k->evcon)
			continue;
		if (!conncap_alive(k)) {
			c->st.missed_close++;
			conncap_forget(c, k);
		} else if (!k->busy && now - k->mark_ms > c->deadline_ms) {
			/* A busy connection's request is bounded by its handler's own deadline. */
			conncap_evict(c, k, 1);
		}
	}
	conncap_enforce(c);
}

static void conncap_on_quiet(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conncap_enforce(arg);
}

static void conncap_on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conncap *c = arg;

	(void)fd;
	(void)what;
	c->paused_err = 0;
	conncap_listen_update(c);
	if (c->paused_cap)
		conncap_enforce(c);
}

/*
 * The accept-error callback of an evconnlistener gets the listener's user data, and evhttp set
 * that to its struct evhttp (it owns the accept callback): the callback cannot carry the cap.
 * So the caps are found by their evhttp here -- the one mutable file-level table besides
 * liblog's, for the same reason (a library callback without a user pointer of ours). Loop
 * thread only; a process has one HTTP listener, GW_CONNCAP_MAX_LISTENERS bounds it.
 */
static struct {
	const struct evhttp *http;
	struct gw_conncap *c;
} conncap_by_http[GW_CONNCAP_MAX_LISTENERS];

static struct gw_conncap *conncap_of_http(const void *http)
{
	for (size_t i = 0; i < GW_CONNCAP_MAX_LISTENERS; i++)
		if (conncap_by_http[i].http && conncap_by_http[i].http == http)
			return conncap_by_http[i].c;
	return NULL;
}

static int conncap_register(struct gw_conncap *c)
{
	for (size_t i = 0; i < GW_CONNCAP_MAX_LISTENERS; i++)
		if (!conncap_by_http[i].http) {
			conncap_by_http[i].http = c->http;
			conncap_by_http[i].c = c;
			return 0;
		}
	return -1;
}

static void conncap_unregister(struct gw_conncap *c)
{
	for (size_t i = 0; i < GW_CONNCAP_MAX_LISTENERS; i++)
		if (conncap_by_http[i].c == c)
			conncap_by_http[i].http = NULL, conncap_by_http[i].c = NULL;
}

static void conncap_on_pause(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conncap_listen_update(arg);
}

/* accept() failed with something that is not "try again" (EMFILE, ENFILE, ENOBUFS, ENOMEM): stop
 * the listener's immediate retry, which spins, and try again after a growing pause. */
static void conncap_on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct gw_conncap *c = conncap_of_http(arg);
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv;
	uint64_t held = 0;

	(void)lev;
	if (!c)
		return;
	c->st.accept_errors++;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : GW_CONNCAP_BACKOFF_MIN_MS;
	if (c->backoff_ms > GW_CONNCAP_BACKOFF_MAX_MS)
		c->backoff_ms = GW_CONNCAP_BACKOFF_MAX_MS;
	c->paused_err = 1;
	/* Not from inside the listener's own callback: evconnlistener_disable there can block on the
	 * listener's lock (seen: the loop stuck in it after EMFILE). Paused on the next loop turn. */
	event_active(c->ev_pause, EV_TIMEOUT, 0);
	tv.tv_sec = c->backoff_ms / 1000;
	tv.tv_usec = (c->backoff_ms % 1000) * 1000;
	evtimer_add(c->ev_backoff, &tv);
	if (gw_lograte_allow(&c->log_err, conncap_now_ms(), 1, &held))
		gw_log(GW_LOG_WARN, "http_conn", GW_LS("msg", "accept failed, listener paused"),
		       GW_LS("error", evutil_socket_error_to_string(e)),
		       GW_LN("pause_ms", (long long)c->backoff_ms), GW_LN("open", (long long)c->st.open),
		       GW_LN("suppressed", (long long)held), GW_LEND);
}

/* ---- API ---- */

struct gw_conncap *gw_conncap_new(struct event_base *base, struct evhttp *http,
				  struct evconnlistener *lev, size_t max, int deadline_s, char *err,
				  size_t errlen)
{
	struct gw_conncap *c = calloc(1, sizeof *c);
	struct timeval tv = { GW_CONNCAP_SWEEP_MS / 1000, (GW_CONNCAP_SWEEP_MS % 1000) * 1000 };

	if (!c || !lev || max == 0 || deadline_s <= 0) {
		snprintf(err, errlen, "cannot set up the HTTP connection cap");
		free(c);
		return NULL;
	}
	c->base = base;
	c->http = http;
	c->lev = lev;
	c->st.max = max;
	c->deadline_ms = (int64_t)deadline_s * 1000;
	c->ev_resolve = event_new(base, -1, 0, conncap_on_resolve, c);
	c->ev_sweep = event_new(base, -1, EV_PERSIST, conncap_on_sweep, c);
	c->ev_backoff = evtimer_new(base, conncap_on_backoff, c);
	c->ev_pause = evtimer_new(base, conncap_on_pause, c);
	c->ev_quiet = evtimer_new(base, conncap_on_quiet, c);
	if (!c->ev_resolve || !c->ev_sweep || !c->ev_backoff || !c->ev_pause || !c->ev_quiet ||
	    event_add(c->ev_sweep, &tv)) {
		snprintf(err, errlen, "cannot set up the HTTP connection cap");
		gw_conncap_free(c);
		return NULL;
	}
	if (conncap_register(c) != 0) {
		snprintf(err, errlen, "more than %d HTTP listeners with a connection cap",
			 GW_CONNCAP_MAX_LISTENERS);
		gw_conncap_free(c);
		return NULL;
	}
	evhttp_set_bevcb(http, conncap_bevcb, c);
	evconnlistener_set_error_cb(lev, conncap_on_accept_error);
	return c;
}

void gw_conncap_request(struct gw_conncap *c, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;

	if (!c || !evcon)
		return;
	/* At most max entries, most recently active at the tail. */
	for (struct conncap_conn *k = c->tail; k; k = k->prev) {
		if (k->evcon != evcon)
			continue;
		k->mark_ms = conncap_now_ms();
		conncap_unlink(c, k);
		conncap_append(c, k);
		return;
	}
}

void gw_conncap_set_bev(struct gw_conncap *c, gw_conncap_bev_fn make, void *arg)
{
	c->make_bev = make;
	c->make_bev_arg = arg;
}

void gw_conncap_busy(struct gw_conncap *c, struct evhttp_request *req, int busy)
{
	struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;

	if (!c || !evcon)
		return;	/* the client left: its connection is gone already */
	for (struct conncap_conn *k = c->tail; k; k = k->prev) {
		if (k->evcon != evcon)
			continue;
		k->busy = busy != 0;
		k->mark_ms = conncap_now_ms();
		conncap_unlink(c, k);
		conncap_append(c, k);
		return;
	}
}

void gw_conncap_stats(const struct gw_conncap *c, struct gw_conncap_stats *out)
{
	*out = c->st;
}

void gw_conncap_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_conncap *c = arg;
	const struct gw_conncap_stats *s = &c->st;

	gw_metrics_one(o, "http_connections", "gauge", "Open connections on the HTTP listener.", s->open);
	gw_metrics_one(o, "http_connections_max", "gauge",
		       "The HTTP connection cap (http.max_connections).", s->max);
	gw_metrics_one(o, "http_connections_high_water", "gauge",
		       "Most HTTP connections open at once.", s->high_water);
	gw_metrics_one(o, "http_connections_accepted_total", "counter", "HTTP connections accepted.",
		       s->accepted);
	gw_metrics_family(o, "http_connections_closed_total", "counter",
			  "HTTP connections closed by the gateway: to make room at the cap, for missing "
			  "the request deadline, or found freed without a close callback (swept).");
	gw_metrics_value(o, "http_connections_closed_total", "reason=\"cap\"", s->evicted_cap);
	gw_metrics_value(o, "http_connections_closed_total", "reason=\"deadline\"", s->evicted_deadline);
	gw_metrics_value(o, "http_connections_closed_total", "reason=\"swept\"", s->missed_close);
	gw_metrics_one(o, "http_listener_paused", "gauge",
		       "1 while the HTTP listener accepts nothing (at the cap, or backing off after "
		       "accept errors).", s->paused ? 1 : 0);
	gw_metrics_one(o, "http_listener_pauses_total", "counter",
		       "Times the HTTP listener paused at the connection cap.", s->paused_cap);
	gw_metrics_one(o, "http_accept_errors_total", "counter",
		       "accept() failures on the HTTP listener (EMFILE, ENFILE, ...), each followed by a "
		       "pause.", s->accept_errors);
}

void gw_conncap_detach(struct gw_conncap *c)
{
	if (!c)
		return;
	conncap_unregister(c);	/* evhttp is freeing its listener: no more accept errors */
	c->lev = NULL;
	if (c->ev_backoff)
		evtimer_del(c->ev_backoff);
	if (c->ev_pause)
		event_del(c->ev_pause);
	if (c->ev_sweep)
		event_del(c->ev_sweep);
	if (c->ev_quiet)
		evtimer_del(c->ev_quiet);
}

void gw_conncap_free(struct gw_conncap *c)
{
	struct conncap_conn *k, *next;

	if (!c)
		return;
	conncap_unregister(c);
	/* After evhttp_free: what is left was never resolved, or evhttp freed it silently. */
	for (k = c->head; k; k = next) {
		next = k->next;
		bufferevent_decref(k->bev);
		free(k);
	}
	if (c->ev_resolve)
		event_free(c->ev_resolve);
	if (c->ev_sweep)
		event_free(c->ev_sweep);
	if (c->ev_backoff)
		event_free(c->ev_backoff);
	if (c->ev_pause)
		event_free(c->ev_pause);
	if (c->ev_quiet)
		event_free(c->ev_quiet);
	free(c);
}
