/*
 * handoff: a bounded ring between the poller thread and the libevent loop. See handoff.h.
 */
#include "gateway/base/handoff.h"

#include <pthread.h>
#include <stdlib.h>
#include <event2/event.h>

struct gw_handoff {
	pthread_mutex_t mu;		/* guards ring, head, n and the counters */
	pthread_cond_t room;		/* signalled when the loop takes events out */
	struct gw_handoff_ev *ring;
	size_t cap, head, n;		/* events at ring[(head + i) % cap], i < n */
	struct gw_handoff_stats st;	/* queued is n, filled in by gw_handoff_stats() */
	struct event *ev_wake;		/* event_active() from any thread wakes the loop */
	gw_handoff_fn fn;
	void *arg;
};

/* Appends under h->mu; the caller has checked there is room. */
static void handoff_put(struct gw_handoff *h, const struct gw_handoff_ev *ev)
{
	h->ring[(h->head + h->n) % h->cap] = *ev;
	h->n++;
	h->st.pushed++;
	if (h->n > h->st.high_water)
		h->st.high_water = h->n;
}

void gw_handoff_push(struct gw_handoff *h, const struct gw_handoff_ev *ev)
{
	pthread_mutex_lock(&h->mu);
	if (h->n == h->cap) {
		h->st.full_waits++;
		while (h->n == h->cap)
			pthread_cond_wait(&h->room, &h->mu);
	}
	handoff_put(h, ev);
	pthread_mutex_unlock(&h->mu);
	/* Outside the lock: libevent takes its own. Activations coalesce; a wake that finds the
	 * ring empty (an earlier one delivered this event) is harmless. */
	event_active(h->ev_wake, EV_READ, 0);
}

int gw_handoff_try_push(struct gw_handoff *h, const struct gw_handoff_ev *ev)
{
	int rc = -1;

	pthread_mutex_lock(&h->mu);
	if (h->n == h->cap) {
		h->st.rejected++;
	} else {
		handoff_put(h, ev);
		rc = 0;
	}
	pthread_mutex_unlock(&h->mu);
	if (rc == 0)
		event_active(h->ev_wake, EV_READ, 0);
	return rc;
}

size_t gw_handoff_drain(struct gw_handoff *h)
{
	struct gw_handoff_ev batch[GW_HANDOFF_BATCH];
	size_t budget, done = 0, more;

	pthread_mutex_lock(&h->mu);
	budget = h->n;	/* only what is here now: see "Delivery" in handoff.h */
	pthread_mutex_unlock(&h->mu);
	while (done < budget) {
		size_t k = 0;

		pthread_mutex_lock(&h->mu);
		while (k < GW_HANDOFF_BATCH && done + k < budget && h->n > 0) {
			batch[k++] = h->ring[h->head];
			h->head = (h->head + 1) % h->cap;
			h->n--;
		}
		h->st.delivered += k;
		pthread_mutex_unlock(&h->mu);
		if (k == 0)
			break;
		pthread_cond_broadcast(&h->room);
		/* Without the lock: the callback may take as long as it likes, and may push. */
		for (size_t i = 0; i < k; i++)
			h->fn(&batch[i], h->arg);
		done += k;
	}
	pthread_mutex_lock(&h->mu);
	more = h->n;
	pthread_mutex_unlock(&h->mu);
	if (more)
		event_active(h->ev_wake, EV_READ, 0);
	return done;
}

static void handoff_on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_handoff_drain(arg);
}

struct gw_handoff *gw_handoff_new(struct event_base *base, size_t cap, gw_handoff_fn fn, void *arg)
{
	struct gw_handoff *h = NULL, *ret = NULL;

	if (!base || !fn || cap == 0 || cap > GW_HANDOFF_MAX)
		return NULL;
	h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->room, NULL);
	h->cap = cap;
	h->fn = fn;
	h->arg = arg;
	h->ring = calloc(cap, sizeof *h->ring);
	h->ev_wake = event_new(base, -1, 0, handoff_on_wake, h);
	if (!h->ring || !h->ev_wake)
		goto out;
	ret = h;
	h = NULL;
out:
	gw_handoff_free(h, NULL);
	return ret;
}

void gw_handoff_stats(struct gw_handoff *h, struct gw_handoff_stats *out)
{
	pthread_mutex_lock(&h->mu);
	*out = h->st;
	out->queued = h->n;
	pthread_mutex_unlock(&h->mu);
}

void gw_handoff_free(struct gw_handoff *h, size_t *dropped)
{
	if (dropped)
		*dropped = h ? h->n : 0;
	if (!h)
		return;
	if (h->ev_wake)
		event_free(h->ev_wake);
	free(h->ring);
	pthread_cond_destroy(&h->room);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
