/*
 * status_watch: the watchers of the status module (see status.h): the WatchStatus registry on
 * the tracked records, their refresh every TTL through the batches, the fan-out of a fresh status
 * to the watchers whose last sent (state, step) differs, and the webhook refresh/forget. Separate
 * from the batcher (status_batch.c), which calls in here from its tick and its deliveries.
 */
#include "gateway/svc/status_int.h"

#include "gateway/api/cache.h"

/* ---- fan-out ---- */

void gw_status_watchers_notify(struct gw_status *s, struct gw_status_rec *r, int code,
			       const Animate3d__V1__JobStatus *st)
{
	struct gw_status_watch pending, *x;

	/* Move the watchers to a local list and put each back before its callback, so a callback
	 * may unwatch anyone (itself included) and new watchers are not notified twice. */
	if (r->watchers.next == &r->watchers)
		return;
	pending.next = r->watchers.next;
	pending.prev = r->watchers.prev;
	pending.next->prev = &pending;
	pending.prev->next = &pending;
	r->watchers.next = r->watchers.prev = &r->watchers;
	while ((x = pending.next) != &pending) {
		x->prev->next = x->next;
		x->next->prev = x->prev;
		x->prev = r->watchers.prev;
		x->next = &r->watchers;
		r->watchers.prev->next = x;
		r->watchers.prev = x;
		if (code == 0 && st && x->last_state == (int)st->state && x->last_step == st->step)
			continue;
		if (code == 0 && st) {
			x->last_state = (int)st->state;
			x->last_step = st->step;
		}
		s->cnt.notifications++;
		x->notify(x, code, code == 0 ? st : NULL);
	}
}

/* ---- refresh every TTL ---- */

void gw_status_watchers_due(struct gw_status *s, int64_t now)
{
	int64_t ttl = gw_status_ttl(s);
	int64_t refresh_at = ttl - s->o.window_ms > ttl / 2 ? ttl - s->o.window_ms : ttl / 2;
	struct gw_status_rec *r;

	/* Watched rids due for a refresh join the pending batches; queued one window early so
	 * the request leaves one TTL after the last one, not TTL + window. */
	for (r = s->all.next; r != &s->all; r = r->next)
		if (r->nwatchers && r->phase == ST_IDLE && !r->final &&
		    (r->last_fetch_ms == INT64_MIN ||
		     now - r->last_fetch_ms >= refresh_at)) {
			gw_status_enqueue(s, r, now);
			s->cnt.refreshes++;
		}
}

/* ---- watchers, refresh ---- */

int gw_status_watch(struct gw_status *s, size_t acct, const char *rid, struct gw_status_watch *w)
{
	struct gw_status_rec *r;
	int64_t now;

	if (!s || !w || !w->notify || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return -1;
	r = gw_status_rec_get(s, acct, rid);
	if (!r)
		return -1;
	now = gw_status_now(s);
	w->rec = r;
	w->prev = r->watchers.prev;
	w->next = &r->watchers;
	r->watchers.prev->next = w;
	r->watchers.prev = w;
	r->nwatchers++;
	s->cnt.watches++;
	if (w->last_state == 0 && r->phase == ST_IDLE)
		gw_status_enqueue(s, r, now);
	return 0;
}

void gw_status_unwatch(struct gw_status_watch *w)
{
	if (!w || !w->rec)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->rec->nwatchers--;
	w->rec = NULL;
}

int gw_status_refresh(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r;
	int64_t now;

	if (!s || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return -1;
	gw_cache_invalidate(s->cache, acct, rid);
	r = gw_status_rec_get(s, acct, rid);
	if (!r)
		return -1;
	now = gw_status_now(s);
	s->cnt.forced++;
	r->final = 0;
	r->last_want_ms = now;
	r->local = 1;	/* a webhook said it changed: polled here, not left to the cluster */
	if (r->phase == ST_WAITING) {
		r->phase = ST_IDLE;
		s->nwaiting--;
	}
	if (r->phase == ST_IDLE)
		gw_status_enqueue(s, r, now);
	else if (r->phase == ST_FLYING || r->phase == ST_CLAIMING)
		r->refetch = 1;
	return 0;
}

int gw_status_tracked(struct gw_status *s, size_t acct, const char *rid)
{
	if (!s || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return 0;
	return gw_status_rec_find(s, acct, rid) != NULL;
}

int gw_status_forget(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r;

	if (!s || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return -1;
	gw_cache_forget(s->cache, acct, rid);
	r = gw_status_rec_find(s, acct, rid);
	if (!r)
		return 0;
	r->final = 0;
	if (r->phase == ST_FLYING) {
		r->barrier_seq = s->seq;
		r->refetch = 1;
	} else if (r->phase == ST_CLAIMING || r->phase == ST_WAITING) {
		r->refetch = 1;		/* polled here once the claim or the wait ends */
		r->local = 1;
	}
	return 0;
}
