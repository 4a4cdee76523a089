/*
 * curlev: libcurl's multi_socket API on a libevent loop. See curlev.h.
 */
#include "gateway/base/curlev.h"

#include <stdlib.h>
#include <event2/event.h>

struct gw_curlev {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	gw_curlev_check_fn check;
	void *arg;
	int running;
};

static void curlev_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct gw_curlev *cv = arg;
	int act = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(cv->multi, fd, act, &cv->running);
	cv->check(cv->arg);
}

static void curlev_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_curlev *cv = arg;

	(void)fd;
	(void)what;
	curl_multi_socket_action(cv->multi, CURL_SOCKET_TIMEOUT, 0, &cv->running);
	cv->check(cv->arg);
}

/* CURLMOPT_SOCKETFUNCTION: each socket's event lives in curl's per-socket pointer. */
static int curlev_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct gw_curlev *cv = userp;
	struct event *ev = sockp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ev)
			event_free(ev);
		curl_multi_assign(cv->multi, s, NULL);
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	       ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (ev) {
		event_del(ev);
		event_assign(ev, cv->base, s, kind, curlev_on_socket, cv);
	} else {
		ev = event_new(cv->base, s, kind, curlev_on_socket, cv);
		if (!ev)
			return -1;
		curl_multi_assign(cv->multi, s, ev);
	}
	event_add(ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: ms == 0 fires from the loop soon; -1 disarms. */
static int curlev_timer_cb(CURLM *m, long ms, void *userp)
{
	struct gw_curlev *cv = userp;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)m;
	if (ms < 0)
		evtimer_del(cv->timer);
	else
		evtimer_add(cv->timer, &tv);
	return 0;
}

struct gw_curlev *gw_curlev_new(struct event_base *base, gw_curlev_check_fn check, void *arg)
{
	struct gw_curlev *cv = calloc(1, sizeof *cv);

	if (!cv)
		return NULL;
	cv->base = base;
	cv->check = check;
	cv->arg = arg;
	cv->multi = curl_multi_init();
	cv->timer = evtimer_new(base, curlev_on_timer, cv);
	if (!cv->multi || !cv->timer) {
		gw_curlev_free(cv);
		return NULL;
	}
	curl_multi_setopt(cv->multi, CURLMOPT_SOCKETFUNCTION, curlev_socket_cb);
	curl_multi_setopt(cv->multi, CURLMOPT_SOCKETDATA, cv);
	curl_multi_setopt(cv->multi, CURLMOPT_TIMERFUNCTION, curlev_timer_cb);
	curl_multi_setopt(cv->multi, CURLMOPT_TIMERDATA, cv);
	return cv;
}

CURLM *gw_curlev_multi(const struct gw_curlev *cv)
{
	return cv->multi;
}

void gw_curlev_free(struct gw_curlev *cv)
{
	if (!cv)
		return;
	if (cv->multi)
		curl_multi_cleanup(cv->multi);
	if (cv->timer)
		event_free(cv->timer);
	free(cv);
}
