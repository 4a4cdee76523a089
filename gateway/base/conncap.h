/*
 * conncap: a connection cap, a request deadline and accept backoff for a libevent evhttp listener.
 *
 * libevent 2.1's evhttp accepts without limit, keeps a connection as long as it trickles a byte
 * before each idle timeout (slowloris), and when accept() fails (EMFILE) its evconnlistener
 * retries at once, forever: 100% CPU and, unrouted, one "[warn] Error from accept() call" line
 * per try. This module sits on the evhttp (its per-connection bufferevent callback) and on the
 * bound socket's evconnlistener:
 *
 *  - count: each new connection is counted when evhttp creates it and uncounted by its close
 *    callback; at most max are open (max + 1 for the moment a newcomer waits for the quietest to
 *    be closed). At the cap the connection whose last request is oldest is evicted (closed) to make
 *    room when it has been quiet for GW_CONNCAP_EVICT_IDLE_MS; when none has, the listener is
 *    paused (evconnlistener_disable: new connections wait in the kernel's backlog) until one
 *    closes.
 *  - deadline: a connection must complete a request (evhttp hands it to us) within deadline_s of
 *    its accept or of its previous request, or it is closed: a byte every few seconds no longer
 *    keeps a slot forever.
 *  - backoff: an accept error pauses the listener for GW_CONNCAP_BACKOFF_MIN_MS, doubling up to
 *    GW_CONNCAP_BACKOFF_MAX_MS while errors go on, back to the minimum after an accept succeeds.
 *
 * Every eviction, pause and accept error is counted (gw_conncap_render_metrics) and logged at most
 * once per second with the number of events since the previous line. Loop thread only.
 *
 * How a connection is found without an evhttp "new connection" hook (2.1 has none): the
 * bufferevent callback (evhttp_set_bevcb) creates each connection's bufferevent and keeps a
 * reference to it; once evhttp has set it up (an event activated from that callback, on the same
 * loop pass) its callback argument is the evhttp_connection, on which we set the close callback.
 * The reference is dropped when the connection closes; a connection evhttp frees without calling
 * the close callback (bufferevent callbacks cleared, close callback never called) is found by the
 * once-a-second sweep and uncounted then.
 */
#ifndef A3D_GATEWAY_CONNCAP_H
#define A3D_GATEWAY_CONNCAP_H

#include <stddef.h>
#include <stdint.h>

#define GW_CONNCAP_MAX_LISTENERS 4	/* HTTP listeners with a cap in one process */
#define GW_CONNCAP_EVICT_IDLE_MS 1000	/* at the cap, only a connection this quiet is evicted */
#define GW_CONNCAP_BACKOFF_MIN_MS 10	/* first pause after an accept error */
#define GW_CONNCAP_BACKOFF_MAX_MS 1000	/* longest pause while accept errors go on */
#define GW_CONNCAP_SWEEP_MS 1000	/* how often deadlines are checked */

struct event_base;
struct evhttp;
struct evhttp_request;
struct evconnlistener;
struct evbuffer;
struct gw_conncap;

struct gw_conncap_stats {
	uint64_t accepted;		/* connections counted */
	uint64_t closed;		/* connections uncounted (every reason) */
	uint64_t evicted_cap;		/* closed to make room at the cap */
	uint64_t evicted_deadline;	/* closed: no complete request within the deadline */
	uint64_t missed_close;		/* freed by evhttp without its close callback (swept) */
	uint64_t paused_cap;		/* times the listener paused at the cap */
	uint64_t accept_errors;		/* accept() failures (EMFILE, ENFILE, ENOBUFS, ...) */
	size_t open;			/* connections counted now */
	size_t max;			/* the cap */
	size_t high_water;		/* most connections open at once */
	int paused;			/* listener paused now (cap or backoff) */
};

/*
 * Caps http (bound on lev, which must be evhttp's listener for it) at max connections, closing
 * those without a complete request for deadline_s. Sets http's bufferevent callback and lev's
 * error callback. NULL with one line in err on failure.
 */
struct gw_conncap *gw_conncap_new(struct event_base *base, struct evhttp *http,
				  struct evconnlistener *lev, size_t max, int deadline_s, char *err,
				  size_t errlen);
/* How each new connection's bufferevent is made (e.g. bufferevent_openssl_socket_new with fd -1
 * and BUFFEREVENT_SSL_ACCEPTING, for TLS: evhttp sets the fd on it); the cap takes evhttp's
 * bufferevent callback, so a listener that needs its own asks here. NULL on failure: evhttp then
 * makes a plain one. Default: a plain socket bufferevent. */
struct bufferevent;
typedef struct bufferevent *(*gw_conncap_bev_fn)(struct event_base *base, void *arg);
void gw_conncap_set_bev(struct gw_conncap *c, gw_conncap_bev_fn make, void *arg);
/* A request was handed to us on its connection: its deadline starts again. */
void gw_conncap_request(struct gw_conncap *c, struct evhttp_request *req);
/* busy = 1: req will be answered later (an asynchronous handler): until gw_conncap_busy(c, req,
 * 0), which must come before the reply is sent, its connection is neither closed for the
 * deadline nor evicted at the cap (evhttp would free the request under the handler). The handler
 * bounds the request's time itself. The deadline starts again at each call. */
void gw_conncap_busy(struct gw_conncap *c, struct evhttp_request *req, int busy);
void gw_conncap_stats(const struct gw_conncap *c, struct gw_conncap_stats *out);
/* animate3d_gateway_http_connections* families: a metrics renderer (arg: the struct gw_conncap). */
struct gw_metrics_out;
void gw_conncap_render_metrics(void *c, struct gw_metrics_out *o);
/* Before evhttp_free(), which frees the listener first and then the connections (whose close
 * callbacks still count here): c stops touching the listener and its timers. NULL is fine. */
void gw_conncap_detach(struct gw_conncap *c);
/* Frees; call after evhttp_free(). NULL is fine. */
void gw_conncap_free(struct gw_conncap *c);

#endif
