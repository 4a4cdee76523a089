/*
 * config_async: the configuration file loaded off the loop. See config_async.h.
 *
 * Threads: the worker writes cfg/errs and then wakes the loop with event_active() (libevent's
 * lock orders the two for the loop thread); the loop reads them only in its callback, after
 * pthread_join(), and no field is written by both. So no lock of our own.
 */
#include "gateway/config/config_async.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

struct gw_config_async {
	struct event_base *base;
	struct event *ev_done;		/* activated by the worker when its load is over */
	char *path;
	gw_config_async_fn done;
	void *arg;
	pthread_t worker;
	int running;			/* a worker exists (started, not yet joined) */
	int again;			/* a start arrived while one ran: run once more after */
	/* The worker's result, read by the loop after the join. */
	struct gw_config *cfg;
	struct gw_errors errs;
};

static void *config_async_work(void *arg)
{
	struct gw_config_async *a = arg;

	if (gw_config_load(a->path, &a->cfg, &a->errs) != 0)
		a->cfg = NULL;
	event_active(a->ev_done, EV_READ, 0);
	return NULL;
}

static int config_async_spawn(struct gw_config_async *a)
{
	a->cfg = NULL;
	memset(&a->errs, 0, sizeof a->errs);
	if (pthread_create(&a->worker, NULL, config_async_work, a) != 0)
		return -1;
	a->running = 1;
	return 0;
}

static void config_async_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct gw_config_async *a = arg;
	struct gw_config *cfg;

	(void)fd;
	(void)what;
	pthread_join(a->worker, NULL);
	a->running = 0;
	cfg = a->cfg;
	a->cfg = NULL;
	a->done(cfg, &a->errs, a->arg);	/* owns cfg now */
	gw_errors_clear(&a->errs);
	if (a->again) {
		a->again = 0;
		if (config_async_spawn(a) != 0) {
			struct gw_errors e = { 0 };

			gw_errors_add(&e, a->path, 0, "cannot start the configuration loader thread");
			a->done(NULL, &e, a->arg);
			gw_errors_clear(&e);
		}
	}
}

struct gw_config_async *gw_config_async_new(struct event_base *base, const char *path,
					    gw_config_async_fn done, void *arg)
{
	struct gw_config_async *a = calloc(1, sizeof *a);

	if (!a)
		return NULL;
	a->base = base;
	a->done = done;
	a->arg = arg;
	a->path = strdup(path ? path : "");
	a->ev_done = event_new(base, -1, 0, config_async_on_done, a);
	if (!a->path || !a->ev_done) {
		gw_config_async_free(a);
		return NULL;
	}
	return a;
}

int gw_config_async_start(struct gw_config_async *a)
{
	if (a->running) {
		a->again = 1;
		return 1;
	}
	return config_async_spawn(a);
}

int gw_config_async_busy(const struct gw_config_async *a)
{
	return a && a->running;
}

void gw_config_async_free(struct gw_config_async *a)
{
	if (!a)
		return;
	if (a->running) {
		pthread_join(a->worker, NULL);
		gw_config_free(a->cfg);
		gw_errors_clear(&a->errs);
	}
	if (a->ev_done)
		event_free(a->ev_done);
	free(a->path);
	free(a);
}
