/*
 * status: coalescing + batching of GET /status, watchers, webhook refresh. See status.h.
 *
 * Every rid the module tracks has a record (struct gw_status_rec) in a hash table; a record is
 * IDLE, QUEUED (in its account's pending list) or FLYING (in one fetch). Records are freed when
 * nothing refers to them and they are final or cold (not wanted for 2 TTL and not watched).
 * Waiter and watcher lists are circular with a sentinel in the record, so a callback may detach
 * any waiter or watcher without knowing which list holds it.
 */
#include "gateway/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "auth/session.h"
#include "gateway/cache.h"
#include "gateway/call.h"
#include "gateway/config.h"
#include "gateway/errmap.h"
#include "gateway/metrics.h"
#include "gateway/rpc.h"
#include "gateway/rpc_owner.h"
#include "gateway/server.h"
#include "gateway/translate.h"
#include "gateway/upstream.h"
#include "gateway/webhook_in.h"

#define STATUS_BUCKETS 4096		/* hash buckets for tracked rids (chains grow past that) */
#define STATUS_HOT_TTLS 2		/* a polled rid stays hot this many TTLs after its last want */
#define STATUS_DEFAULT_BATCH 50

enum status_phase { ST_IDLE, ST_QUEUED, ST_FLYING };

struct gw_status_rec {
	struct gw_status_rec *hnext;		/* bucket chain */
	struct gw_status_rec *prev, *next;	/* all records (housekeeping scan) */
	struct gw_status_rec *qnext;		/* account pending list */
	size_t acct;
	uint32_t hash;
	enum status_phase phase;
	int refetch;			/* a forced refresh arrived while FLYING */
	int final;			/* the last status seen is final */
	int busy;			/* callbacks of this record are running: do not free */
	uint64_t barrier_seq;		/* answers of fetches up to this one are not cached */
	int64_t last_fetch_ms;		/* start of the last fetch, or INT64_MIN */
	int64_t last_want_ms;
	struct gw_status_waiter waiters;	/* sentinels */
	struct gw_status_watch watchers;
	size_t nwatchers;
	char rid[GW_TR_RID_MAX + 1];
};

struct status_acct {
	struct gw_status_rec *qhead, *qtail;
	size_t nq;
	int64_t due_ms;			/* when the pending batch leaves; INT64_MAX when empty */
};

/* The in-flight list's links. A separate struct: struct gw_status_fetch ends in a flexible array,
 * so it cannot itself be the list head inside struct gw_status (clang warns, and rightly). */
struct status_flink {
	struct status_flink *prev, *next;
};

struct gw_status_fetch {
	struct status_flink link;	/* in flight; first member, see status_fetch_of */
	struct gw_status *s;
	void *handle;
	size_t acct;
	uint64_t seq;
	int64_t started_ms;
	int64_t deadline_ms;		/* the latest deadline of its waiters; 0 = none (default timeout) */
	size_t n;
	struct gw_status_rec *recs[];	/* n records, FLYING in this fetch */
};

struct gw_status {
	struct gw_status_opts o;
	struct gw_cache *cache;
	struct gw_status_rec *buckets[STATUS_BUCKETS];
	struct gw_status_rec all;	/* sentinel of all records */
	size_t nrecs;
	struct status_acct *accts;
	struct status_flink flying;	/* sentinel of fetches in flight */
	uint64_t seq;
	struct event *ev_batch, *ev_tick;
	int64_t batch_armed_ms;		/* due time the batch timer is armed for; INT64_MAX none */
	int in_tick;
	int64_t last_gc_ms;		/* cold records are swept every TTL/2, not every tick */
	struct gw_status_counters cnt;
};

static void status_arm_batch(struct gw_status *s, int64_t due);

static struct gw_status_fetch *status_fetch_of(struct status_flink *l)
{
	return (struct gw_status_fetch *)(void *)((char *)l - offsetof(struct gw_status_fetch, link));
}

/* ---- time ---- */

static int64_t status_now(struct gw_status *s)
{
	struct timespec ts;

	if (s->o.now_ms)
		return s->o.now_ms(s->o.clock_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t status_ttl(const struct gw_status *s)
{
	return s->o.ttl_ms > 0 ? s->o.ttl_ms : 1;
}

/* ---- records ---- */

static uint32_t status_hash(size_t acct, const char *rid)
{
	uint32_t h = 2166136261u ^ (uint32_t)acct;

	for (; *rid; rid++) {
		h ^= (unsigned char)*rid;
		h *= 16777619u;
	}
	return h;
}

static int status_rid_ok(const char *rid)
{
	return rid && gw_tr_rid_valid(rid);
}

static struct gw_status_rec *status_find(struct gw_status *s, size_t acct, const char *rid)
{
	uint32_t h = status_hash(acct, rid);
	struct gw_status_rec *r = s->buckets[h % STATUS_BUCKETS];

	for (; r; r = r->hnext)
		if (r->hash == h && r->acct == acct && strcmp(r->rid, rid) == 0)
			return r;
	return NULL;
}

static struct gw_status_rec *status_get(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r = status_find(s, acct, rid);
	int64_t age = 0;

	if (r)
		return r;
	if (s->nrecs >= s->o.max_rids) {
		s->cnt.rejected_full++;
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->acct = acct;
	r->hash = status_hash(acct, rid);
	strcpy(r->rid, rid);	/* length checked by status_rid_ok */
	r->last_fetch_ms = INT64_MIN;
	/* A cached answer counts as the last fetch, so a new record does not refetch it early. */
	if (gw_cache_peek(s->cache, acct, rid, status_now(s), NULL, &age) == 1)
		r->last_fetch_ms = status_now(s) - age;
	r->waiters.prev = r->waiters.next = &r->waiters;
	r->watchers.prev = r->watchers.next = &r->watchers;
	r->hnext = s->buckets[r->hash % STATUS_BUCKETS];
	s->buckets[r->hash % STATUS_BUCKETS] = r;
	r->prev = &s->all;
	r->next = s->all.next;
	s->all.next->prev = r;
	s->all.next = r;
	s->nrecs++;
	s->cnt.tracked = s->nrecs;
	return r;
}

static int status_rec_hot(const struct gw_status *s, const struct gw_status_rec *r, int64_t now)
{
	return r->nwatchers > 0 || now - r->last_want_ms < STATUS_HOT_TTLS * status_ttl(s);
}

static void status_rec_free(struct gw_status *s, struct gw_status_rec *r)
{
	struct gw_status_rec **pp = &s->buckets[r->hash % STATUS_BUCKETS];

	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	r->prev->next = r->next;
	r->next->prev = r->prev;
	s->nrecs--;
	s->cnt.tracked = s->nrecs;
	free(r);
}

/* Frees r when nothing refers to it and it is not worth keeping hot. */
static void status_rec_maybe_free(struct gw_status *s, struct gw_status_rec *r, int64_t now)
{
	if (r->busy || r->phase != ST_IDLE || r->nwatchers || r->waiters.next != &r->waiters)
		return;
	if (!r->final && status_rec_hot(s, r, now))
		return;
	status_rec_free(s, r);
}

/* ---- batches ---- */

static void status_enqueue(struct gw_status *s, struct gw_status_rec *r, int64_t now)
{
	struct status_acct *a = &s->accts[r->acct];

	r->phase = ST_QUEUED;
	r->qnext = NULL;
	if (a->qtail)
		a->qtail->qnext = r;
	else
		a->qhead = r;
	a->qtail = r;
	a->nq++;
	if (a->nq == 1)
		a->due_ms = now + s->o.window_ms;
	if (a->nq >= s->o.batch_max)
		a->due_ms = now;	/* full: leaves at the next tick, never inside a want */
	status_arm_batch(s, a->due_ms);
}

static void status_deliver_error(struct gw_status *s, struct gw_status_rec *r, int code,
				 const char *msg, long retry_ms);

/* The latest deadline of the waiters of recs[0..n), or 0 when one of them has none or nobody
 * waits (watchers, ride-alongs): then the transport's default timeout applies. */
static int64_t status_batch_deadline(struct gw_status_rec **recs, size_t n)
{
	int64_t latest = 0;
	int any = 0;

	for (size_t i = 0; i < n; i++)
		for (struct gw_status_waiter *w = recs[i]->waiters.next; w != &recs[i]->waiters;
		     w = w->next) {
			if (w->deadline_ms <= 0)
				return 0;
			if (w->deadline_ms > latest)
				latest = w->deadline_ms;
			any = 1;
		}
	return any ? latest : 0;
}

/* Starts one fetch for recs[0..n) (already unlinked from the pending list). */
static void status_start(struct gw_status *s, size_t acct, struct gw_status_rec **recs, size_t n,
			 int64_t now)
{
	struct gw_status_fetch *f = calloc(1, sizeof *f + n * sizeof *recs);
	const char *rids[GW_STATUS_MAX_BATCH];
	int64_t deadline = status_batch_deadline(recs, n);
	long timeout = 0;

	for (size_t i = 0; i < n; i++) {
		rids[i] = recs[i]->rid;
		recs[i]->phase = ST_FLYING;
		recs[i]->last_fetch_ms = now;
	}
	/* A deadline already past still gets 1 ms: the transport answers DEADLINE_EXCEEDED. */
	if (deadline > 0)
		timeout = deadline - now > 0 ? (long)(deadline - now) : 1;
	if (f) {
		f->s = s;
		f->acct = acct;
		f->seq = ++s->seq;
		f->started_ms = now;
		f->deadline_ms = deadline;
		f->n = n;
		memcpy(f->recs, recs, n * sizeof *recs);
		f->handle = s->o.start(s->o.transport_arg, acct, rids, n, timeout, f);
	}
	if (!f || !f->handle) {
		s->cnt.start_failed++;
		free(f);
		for (size_t i = 0; i < n; i++) {
			recs[i]->phase = ST_IDLE;
			recs[i]->busy++;
		}
		for (size_t i = 0; i < n; i++)
			status_deliver_error(s, recs[i], GRPC_STATUS_UNAVAILABLE,
					     "GetStatus: upstream request could not be started", -1);
		for (size_t i = 0; i < n; i++) {
			recs[i]->busy--;
			status_rec_maybe_free(s, recs[i], now);
		}
		return;
	}
	s->cnt.fetches++;
	s->cnt.batched += n;
	f->link.prev = &s->flying;
	f->link.next = s->flying.next;
	s->flying.next->prev = &f->link;
	s->flying.next = &f->link;
}

/* Sends account a's pending rids, plus hot rids that ride along, in batch_max-sized requests. */
static void status_flush(struct gw_status *s, size_t acct, int64_t now)
{
	struct status_acct *a = &s->accts[acct];
	struct gw_status_rec *batch[GW_STATUS_MAX_BATCH];
	struct gw_status_rec *r;
	int64_t half = status_ttl(s) / 2;
	size_t n = 0;

	while (a->qhead) {
		r = a->qhead;
		a->qhead = r->qnext;
		r->qnext = NULL;
		batch[n++] = r;
		if (n == s->o.batch_max) {
			status_start(s, acct, batch, n, now);
			n = 0;
		}
	}
	a->qtail = NULL;
	a->nq = 0;
	a->due_ms = INT64_MAX;
	/* Ride-alongs: only when a request leaves anyway, so they never cost a request of their own
	 * unless the pending part filled the last one. */
	for (r = s->all.next; r != &s->all; r = r->next) {
		if (r->acct != acct || r->phase != ST_IDLE || r->final || !status_rec_hot(s, r, now) ||
		    (r->last_fetch_ms != INT64_MIN && now - r->last_fetch_ms < half))
			continue;
		batch[n++] = r;
		r->phase = ST_QUEUED;	/* so status_start sees it once */
		s->cnt.piggybacked++;
		if (n == s->o.batch_max) {
			status_start(s, acct, batch, n, now);
			n = 0;
		}
	}
	if (n)
		status_start(s, acct, batch, n, now);
}

static void status_flush_due(struct gw_status *s, int64_t now)
{
	for (size_t i = 0; i < s->o.naccounts; i++)
		if (s->accts[i].nq && s->accts[i].due_ms <= now)
			status_flush(s, i, now);
}

/* ---- delivery ---- */

static void status_deliver_error(struct gw_status *s, struct gw_status_rec *r, int code,
				 const char *msg, long retry_ms)
{
	struct gw_status_waiter *w;

	while ((w = r->waiters.next) != &r->waiters) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		w->prev = w->next = NULL;
		w->rec = NULL;
		w->done(w, code, NULL, msg, retry_ms);
	}
	(void)s;
}

/*
 * A fetch ran out of time (DEADLINE_EXCEEDED): it failed only the waiters whose deadline it
 * covered. Those with a later deadline, or none while the fetch had one (they joined it in
 * flight), stay on r and are requeued by the caller. Each round covers a later deadline, and a
 * fetch without one covers everybody, so this ends. Returns the number of waiters kept.
 */
static size_t status_deliver_timeout(struct gw_status *s, struct gw_status_rec *r,
				     const struct gw_status_fetch *f, const char *msg)
{
	struct gw_status_waiter keep, *w;
	size_t kept = 0;

	keep.prev = keep.next = &keep;
	while ((w = r->waiters.next) != &r->waiters) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		if (f->deadline_ms > 0 && (w->deadline_ms <= 0 || w->deadline_ms > f->deadline_ms)) {
			w->prev = keep.prev;
			w->next = &keep;
			keep.prev->next = w;
			keep.prev = w;
			kept++;
			continue;
		}
		w->prev = w->next = NULL;
		w->rec = NULL;
		w->done(w, GRPC_STATUS_DEADLINE_EXCEEDED, NULL, msg, -1);
	}
	/* Back on r, in their order (callbacks above may have added new waiters: they stay first). */
	while ((w = keep.next) != &keep) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		w->prev = r->waiters.prev;
		w->next = &r->waiters;
		r->waiters.prev->next = w;
		r->waiters.prev = w;
	}
	s->cnt.requeued += kept;
	return kept;
}

/* Runs waiters (all) and watchers (those whose last sent state differs) for one answer. */
static void status_deliver(struct gw_status *s, struct gw_status_rec *r, int code,
			   const Animate3d__V1__JobStatus *st)
{
	struct gw_status_watch pending, *x;
	struct gw_status_waiter *w;

	while ((w = r->waiters.next) != &r->waiters) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		w->prev = w->next = NULL;
		w->rec = NULL;
		w->done(w, code, st, code ? "GetStatus: rid not found upstream" : NULL, -1);
	}
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

static const Animate3d__V1__JobStatus *status_find_in(const Animate3d__V1__GetStatusResponse *resp,
						       const char *rid)
{
	for (size_t i = 0; resp && i < resp->n_statuses; i++)
		if (resp->statuses[i] && resp->statuses[i]->rid && strcmp(resp->statuses[i]->rid, rid) == 0)
			return resp->statuses[i];
	return NULL;
}

void gw_status_fetch_done(struct gw_status_fetch *f, const struct gw_status_result *res)
{
	struct gw_status *s = f->s;
	int64_t now = status_now(s);

	f->link.prev->next = f->link.next;
	f->link.next->prev = f->link.prev;
	if (res->code != 0)
		s->cnt.fetch_errors++;
	for (size_t i = 0; i < f->n; i++) {
		f->recs[i]->phase = ST_IDLE;
		f->recs[i]->busy++;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct gw_status_rec *r = f->recs[i];
		const Animate3d__V1__JobStatus *st;
		Animate3d__V1__JobStatus *cur = NULL;

		if (res->code == GRPC_STATUS_DEADLINE_EXCEEDED) {
			if (status_deliver_timeout(s, r, f, res->msg ? res->msg : "GetStatus timed out"))
				r->refetch = 1;		/* requeued below, once the record is idle */
			continue;
		}
		if (res->code != 0) {
			status_deliver_error(s, r, res->code, res->msg ? res->msg : "GetStatus failed",
					     res->retry_after_ms);
			if (res->code == GRPC_STATUS_NOT_FOUND)
				status_deliver(s, r, GRPC_STATUS_NOT_FOUND, NULL);
			continue;
		}
		st = status_find_in(res->resp, r->rid);
		if (!st) {
			status_deliver(s, r, GRPC_STATUS_NOT_FOUND, NULL);
			continue;
		}
		/* Started before the rid was restarted: history. Waiters and watchers stay for the
		 * refetch queued below. */
		if (f->seq <= r->barrier_seq)
			continue;
		/* An older answer than what the cache holds (or non-final over final): deliver
		 * the cached one, so nobody sees time run backwards. */
		if (gw_cache_put(s->cache, f->acct, st, f->seq, f->started_ms) == 0 &&
		    gw_cache_peek(s->cache, f->acct, r->rid, now, &cur, NULL) == 1)
			st = cur;
		r->final = gw_cache_state_final((int)st->state);
		status_deliver(s, r, 0, st);
		if (cur)
			protobuf_c_message_free_unpacked(&cur->base, NULL);
	}
	for (size_t i = 0; i < f->n; i++) {
		struct gw_status_rec *r = f->recs[i];

		r->busy--;
		if (r->refetch && r->phase == ST_IDLE) {
			r->refetch = 0;
			status_enqueue(s, r, now);
		}
		status_rec_maybe_free(s, r, now);
	}
	free(f);
}

/* ---- timers ---- */

static void status_on_batch(evutil_socket_t fd, short what, void *arg)
{
	struct gw_status *s = arg;

	(void)fd;
	(void)what;
	s->batch_armed_ms = INT64_MAX;
	gw_status_tick(s);
}

static void status_on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_status_tick(arg);
}

static void status_arm_batch(struct gw_status *s, int64_t due)
{
	int64_t now, d;
	struct timeval tv;

	if (!s->ev_batch || s->in_tick || due >= s->batch_armed_ms)
		return;
	now = status_now(s);
	d = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	if (event_add(s->ev_batch, &tv) == 0)
		s->batch_armed_ms = due;
}

void gw_status_tick(struct gw_status *s)
{
	int64_t now = status_now(s);
	int64_t ttl = status_ttl(s), next = INT64_MAX;
	int64_t refresh_at = ttl - s->o.window_ms > ttl / 2 ? ttl - s->o.window_ms : ttl / 2;
	struct gw_status_rec *r, *nx;

	s->in_tick = 1;
	/* Watched rids due for a refresh join the pending batches; queued one window early so
	 * the request leaves one TTL after the last one, not TTL + window. */
	for (r = s->all.next; r != &s->all; r = r->next)
		if (r->nwatchers && r->phase == ST_IDLE && !r->final &&
		    (r->last_fetch_ms == INT64_MIN ||
		     now - r->last_fetch_ms >= refresh_at)) {
			status_enqueue(s, r, now);
			s->cnt.refreshes++;
		}
	status_flush_due(s, now);
	if (now - s->last_gc_ms >= ttl / 2) {
		s->last_gc_ms = now;
		for (r = s->all.next; r != &s->all; r = nx) {
			nx = r->next;
			status_rec_maybe_free(s, r, now);
		}
	}
	s->in_tick = 0;
	for (size_t i = 0; i < s->o.naccounts; i++)
		if (s->accts[i].nq && s->accts[i].due_ms < next)
			next = s->accts[i].due_ms;
	if (next != INT64_MAX)
		status_arm_batch(s, next);
}

/* ---- lifecycle ---- */

struct gw_status *gw_status_new(const struct gw_status_opts *opts, struct gw_cache *cache)
{
	struct gw_status *s = NULL;
	int64_t period;
	struct timeval tv;

	if (!opts || !cache || !opts->start || !opts->naccounts || opts->window_ms < 0 ||
	    opts->batch_max > GW_STATUS_MAX_BATCH)
		return NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->o = *opts;
	if (!s->o.batch_max)
		s->o.batch_max = STATUS_DEFAULT_BATCH;
	if (!s->o.max_rids)
		s->o.max_rids = GW_STATUS_DEFAULT_MAX_RIDS;
	s->cache = cache;
	s->all.prev = s->all.next = &s->all;
	s->flying.prev = s->flying.next = &s->flying;
	s->batch_armed_ms = INT64_MAX;
	s->accts = calloc(s->o.naccounts, sizeof *s->accts);
	if (!s->accts)
		goto fail;
	for (size_t i = 0; i < s->o.naccounts; i++)
		s->accts[i].due_ms = INT64_MAX;
	if (s->o.base) {
		s->ev_batch = evtimer_new(s->o.base, status_on_batch, s);
		s->ev_tick = event_new(s->o.base, -1, EV_PERSIST, status_on_tick, s);
		if (!s->ev_batch || !s->ev_tick)
			goto fail;
		/* Housekeeping often enough that a watched rid is refetched within a tick of its TTL. */
		period = status_ttl(s) / 4;
		if (period > GW_STATUS_TICK_MAX_MS)
			period = GW_STATUS_TICK_MAX_MS;
		if (period < 1)
			period = 1;
		tv.tv_sec = (time_t)(period / 1000);
		tv.tv_usec = (suseconds_t)(period % 1000) * 1000;
		if (event_add(s->ev_tick, &tv) != 0)
			goto fail;
	}
	return s;
fail:
	gw_status_free(s);
	return NULL;
}

void gw_status_free(struct gw_status *s)
{
	struct status_flink *l, *ln;
	struct gw_status_rec *r;

	if (!s)
		return;
	for (l = s->flying.next; l && l != &s->flying; l = ln) {
		struct gw_status_fetch *f = status_fetch_of(l);

		ln = l->next;
		if (s->o.cancel)
			s->o.cancel(s->o.transport_arg, f->handle);
		free(f);
	}
	while (s->all.next && (r = s->all.next) != &s->all) {
		/* Detach whoever still points here, so a late unwant/unwatch is harmless. */
		while (r->waiters.next != &r->waiters) {
			struct gw_status_waiter *w = r->waiters.next;

			r->waiters.next = w->next;
			w->prev = w->next = NULL;
			w->rec = NULL;
		}
		while (r->watchers.next != &r->watchers) {
			struct gw_status_watch *w = r->watchers.next;

			r->watchers.next = w->next;
			w->prev = w->next = NULL;
			w->rec = NULL;
		}
		status_rec_free(s, r);
	}
	if (s->ev_batch)
		event_free(s->ev_batch);
	if (s->ev_tick)
		event_free(s->ev_tick);
	free(s->accts);
	free(s);
}

const struct gw_status_counters *gw_status_counters(const struct gw_status *s)
{
	return &s->cnt;
}

/* ---- waiters, watchers, refresh ---- */

int gw_status_want(struct gw_status *s, size_t acct, const char *rid, struct gw_status_waiter *w)
{
	int64_t now;
	struct gw_status_rec *r;

	if (!s || !w || !w->done || acct >= s->o.naccounts || !status_rid_ok(rid))
		return -1;
	r = status_get(s, acct, rid);
	if (!r)
		return -1;
	now = status_now(s);
	r->last_want_ms = now;
	w->rec = r;
	w->prev = r->waiters.prev;
	w->next = &r->waiters;
	r->waiters.prev->next = w;
	r->waiters.prev = w;
	s->cnt.wants++;
	if (r->phase == ST_IDLE)
		status_enqueue(s, r, now);
	else
		s->cnt.coalesced++;
	return 0;
}

int gw_status_touch(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r;

	if (!s || acct >= s->o.naccounts || !status_rid_ok(rid))
		return -1;
	r = status_get(s, acct, rid);
	if (!r)
		return -1;
	r->last_want_ms = status_now(s);
	return 0;
}

int gw_status_check(struct gw_status *s, size_t acct, int64_t deadline_ms, int *code, long *retry_ms,
		    char *msg, size_t cap)
{
	char why[GW_STATUS_MSG_MAX];
	int64_t now, wait = 0, leaves;
	int hard;

	*code = 0;
	*retry_ms = -1;
	if (cap)
		msg[0] = '\0';
	if (!s || acct >= s->o.naccounts || !s->o.hold)
		return 0;
	now = status_now(s);
	why[0] = '\0';
	hard = s->o.hold(s->o.transport_arg, acct, &wait, why, sizeof why);
	if (wait < 0)
		wait = 0;
	if (hard) {
		*code = hard;
		*retry_ms = wait > 0 ? (long)wait : 1;
		snprintf(msg, cap, "GetStatus: %s", why[0] ? why : "upstream limit");
		s->cnt.refused++;
		return 1;
	}
	if (deadline_ms <= 0 || wait == 0)
		return 0;
	/* The batch leaves when its window ends; the hold runs from now in parallel. */
	leaves = s->accts[acct].nq ? s->accts[acct].due_ms : now + s->o.window_ms;
	if (now + wait > leaves)
		leaves = now + wait;
	if (leaves <= deadline_ms - GW_STATUS_DEADLINE_MARGIN_MS)
		return 0;
	*code = GRPC_STATUS_UNAVAILABLE;
	*retry_ms = (long)wait;
	snprintf(msg, cap, "GetStatus: %s, past the request's deadline", why[0] ? why : "upstream busy");
	s->cnt.refused++;
	return 1;
}

void gw_status_unwant(struct gw_status_waiter *w)
{
	if (!w || !w->rec)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->rec = NULL;	/* the record stays: it is hot, or in flight, and housekeeping frees it */
}

int gw_status_watch(struct gw_status *s, size_t acct, const char *rid, struct gw_status_watch *w)
{
	struct gw_status_rec *r;
	int64_t now;

	if (!s || !w || !w->notify || acct >= s->o.naccounts || !status_rid_ok(rid))
		return -1;
	r = status_get(s, acct, rid);
	if (!r)
		return -1;
	now = status_now(s);
	w->rec = r;
	w->prev = r->watchers.prev;
	w->next = &r->watchers;
	r->watchers.prev->next = w;
	r->watchers.prev = w;
	r->nwatchers++;
	s->cnt.watches++;
	if (w->last_state == 0 && r->phase == ST_IDLE)
		status_enqueue(s, r, now);
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

	if (!s || acct >= s->o.naccounts || !status_rid_ok(rid))
		return -1;
	gw_cache_invalidate(s->cache, acct, rid);
	r = status_get(s, acct, rid);
	if (!r)
		return -1;
	now = status_now(s);
	s->cnt.forced++;
	r->final = 0;
	r->last_want_ms = now;
	if (r->phase == ST_IDLE)
		status_enqueue(s, r, now);
	else if (r->phase == ST_FLYING)
		r->refetch = 1;
	return 0;
}

int gw_status_forget(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r;

	if (!s || acct >= s->o.naccounts || !status_rid_ok(rid))
		return -1;
	gw_cache_forget(s->cache, acct, rid);
	r = status_find(s, acct, rid);
	if (!r)
		return 0;
	r->final = 0;
	if (r->phase == ST_FLYING) {
		r->barrier_seq = s->seq;
		r->refetch = 1;
	}
	return 0;
}

/* ---- the real transport ---- */

struct status_up {
	struct gw_server *srv;
	struct gw_status_fetch *f;
	struct gw_up_call *call;
};

static void status_up_done(void *arg, const struct gw_up_response *res)
{
	struct status_up *u = arg;
	struct gw_status_fetch *f = u->f;
	const struct gw_tr_rpc *row = gw_tr_lookup("/animate3d.v1.Jobs/GetStatus");
	struct gw_status_result out = { .code = GRPC_STATUS_OK, .retry_after_ms = -1 };
	Animate3d__V1__GetStatusRequest req = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	char *rids[GW_STATUS_MAX_BATCH];
	char msg[GW_STATUS_MSG_MAX], err[GW_TR_ERR_MAX];
	int rc;

	free(u);
	if (res->limited) {
		/* The account's protection refused it before sending: its code and delay. */
		out.code = res->limited;
		snprintf(msg, sizeof msg, "GetStatus: %s", res->error ? res->error : "upstream limit");
		out.msg = msg;
		out.retry_after_ms = res->retry_after_ms;
	} else if (res->no_session) {
		out.code = GRPC_STATUS_UNAVAILABLE;
		out.msg = "GetStatus: upstream rejected account credentials";
	} else if (res->curl_rc != CURLE_OK) {
		out.code = gw_errmap_curl((int)res->curl_rc, res->error, "GetStatus", msg, sizeof msg);
		out.msg = msg;
	} else if (res->http_status == 404) {
		out.resp = NULL;	/* none of the rids is known: each gets NOT_FOUND */
	} else if (res->http_status < 200 || res->http_status > 299) {
		out.code = gw_errmap_http(res->http_status, res->body, res->body_len, "GetStatus", msg,
					  sizeof msg);
		out.msg = msg;
		out.retry_after_ms = res->retry_after_ms;
	} else {
		for (size_t i = 0; i < f->n; i++)
			rids[i] = f->recs[i]->rid;
		req.rids = rids;
		req.n_rids = f->n;
		err[0] = '\0';
		rc = row ? row->parse(&req.base, res->body, res->body_len, &reply, err, sizeof err)
			 : GW_TR_BAD_UPSTREAM;
		if (rc == GW_TR_OK) {
			out.resp = (const Animate3d__V1__GetStatusResponse *)reply;
		} else {
			out.code = GRPC_STATUS_UNAVAILABLE;
			snprintf(msg, sizeof msg, "GetStatus: upstream sent an unexpected answer: %s", err);
			out.msg = msg;
		}
	}
	gw_status_fetch_done(f, &out);
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
}

void *gw_status_upstream_start(void *arg, size_t acct, const char *const *rids, size_t n,
			       long timeout_ms, struct gw_status_fetch *f)
{
	struct gw_server *srv = arg;
	const struct gw_tr_rpc *row = gw_tr_lookup("/animate3d.v1.Jobs/GetStatus");
	Animate3d__V1__GetStatusRequest req = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	struct gw_tr_request tr = { 0 };
	struct gw_up_request rq;
	struct status_up *u = NULL, *ret = NULL;
	char err[GW_TR_ERR_MAX];

	if (!srv || !row || acct >= srv->naccounts || n > GW_STATUS_MAX_BATCH)
		goto out;
	req.rids = (char **)rids;
	req.n_rids = n;
	if (row->build(&req.base, &tr, err, sizeof err) != GW_TR_OK)
		goto out;
	u = calloc(1, sizeof *u);
	if (!u)
		goto out;
	u->srv = srv;
	u->f = f;
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.timeout_ms = timeout_ms;	/* the batch's latest deadline, or 0: the configured default */
	rq.idempotent = 1;
	rq.route = "GET /status/{rids}";
	u->call = gw_up_start(srv->up, &srv->accounts[acct], &rq, status_up_done, u);
	if (!u->call)
		goto out;
	ret = u;
	u = NULL;
out:
	free(u);
	gw_tr_request_clear(&tr);
	return ret;
}

int gw_status_upstream_hold(void *arg, size_t acct, int64_t *wait_ms, char *msg, size_t cap)
{
	struct gw_server *srv = arg;

	*wait_ms = 0;
	if (!srv || !srv->up || acct >= srv->naccounts)
		return 0;
	return gw_up_account_hold(srv->up, acct, wait_ms, msg, cap);
}

void gw_status_upstream_cancel(void *arg, void *handle)
{
	struct status_up *u = handle;

	(void)arg;
	if (!u)
		return;
	gw_up_cancel(u->call);
	free(u);
}

/* ---- the gateway side ---- */

struct status_watch_op;

struct gw_status_ctx {
	struct gw_server *srv;
	struct gw_cache *cache;
	struct gw_status *status;
	struct gw_webhook_in_counters webhooks;
	int start_failed;		/* tried once and failed: stay on the uncached path */
	struct status_watch_op *streams;	/* open WatchStatus calls (for the drain) */
	size_t nstreams;
	struct event *ev_drain;		/* polls srv->draining to end the streams */
	uint64_t streams_refused;
};

struct gw_status_ctx *gw_status_ctx_new(void)
{
	return calloc(1, sizeof(struct gw_status_ctx));
}

void gw_status_ctx_free(struct gw_status_ctx *x)
{
	if (!x)
		return;
	/* The loop has stopped and the upstream engine dropped its requests without callbacks:
	 * the fetches only need their memory back, never gw_up_cancel on a freed engine. */
	if (x->status)
		x->status->o.cancel = NULL;
	for (struct status_flink *l = x->status ? x->status->flying.next : NULL;
	     l && l != &x->status->flying; l = l->next)
		free(status_fetch_of(l)->handle);
	gw_status_free(x->status);
	gw_cache_free(x->cache);
	if (x->ev_drain)
		event_free(x->ev_drain);
	free(x);
}

static void status_ctx_on_drain_check(evutil_socket_t fd, short what, void *arg);

static int status_ctx_start(struct gw_status_ctx *x, struct gw_server *srv)
{
	const struct gw_config *cfg = srv->cfg;
	struct gw_status_opts o = { 0 };
	struct timeval tv = { 0, GW_STATUS_TICK_MAX_MS * 1000 };

	x->srv = srv;
	x->cache = gw_cache_new(cfg->cache.max_entries, cfg->cache.status_ttl_ms);
	if (!x->cache)
		goto fail;
	o.naccounts = srv->naccounts;
	o.batch_max = cfg->cache.batch_max > GW_STATUS_MAX_BATCH ? GW_STATUS_MAX_BATCH
								 : cfg->cache.batch_max;
	o.window_ms = cfg->cache.batch_window_ms > 0 ? cfg->cache.batch_window_ms : 0;
	o.ttl_ms = cfg->cache.status_ttl_ms;
	o.base = srv->base;
	o.start = gw_status_upstream_start;
	o.cancel = gw_status_upstream_cancel;
	o.hold = gw_status_upstream_hold;
	o.transport_arg = srv;
	x->status = gw_status_new(&o, x->cache);
	if (!x->status)
		goto fail;
	x->ev_drain = event_new(srv->base, -1, EV_PERSIST, status_ctx_on_drain_check, x);
	if (!x->ev_drain || event_add(x->ev_drain, &tv) != 0)
		goto fail;
	return 0;
fail:
	gw_status_free(x->status);
	x->status = NULL;
	gw_cache_free(x->cache);
	x->cache = NULL;
	if (x->ev_drain)
		event_free(x->ev_drain);
	x->ev_drain = NULL;
	x->start_failed = 1;
	return -1;
}

struct gw_status_ctx *gw_status_ctx_of(struct gw_server *srv)
{
	struct gw_status_ctx *x = NULL;

	for (size_t i = 0; srv && i < srv->nmethods; i++)
		if (srv->methods[i].handler == gw_status_rpc_watch) {
			x = (struct gw_status_ctx *)srv->methods[i].row;
			break;
		}
	if (!x || x->start_failed)
		return NULL;
	if (!x->status && status_ctx_start(x, srv) != 0)
		return NULL;
	return x;
}

struct gw_cache *gw_status_ctx_cache(struct gw_status_ctx *x)
{
	return x ? x->cache : NULL;
}

struct gw_status *gw_status_ctx_status(struct gw_status_ctx *x)
{
	return x ? x->status : NULL;
}

struct gw_webhook_in_counters *gw_status_ctx_webhooks(struct gw_status_ctx *x)
{
	return x ? &x->webhooks : NULL;
}

/* A deep copy of a borrowed message (pack + unpack), or NULL. */
static Animate3d__V1__JobStatus *status_copy(const Animate3d__V1__JobStatus *st)
{
	size_t n = protobuf_c_message_get_packed_size(&st->base);
	uint8_t *buf = malloc(n ? n : 1);
	Animate3d__V1__JobStatus *m = NULL;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(&st->base, buf);
	m = animate3d__v1__job_status__unpack(NULL, n, buf);
	free(buf);
	return m;
}

/* 1 when rids[i] appeared before i. */
static int status_dup(char **rids, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(rids[j], rids[i]) == 0)
			return 1;
	return 0;
}

/* Validates a GetStatus/WatchStatus request (req: the call's, or the ownership view of it) with
 * the translate row, for the same messages as the uncached path. 0, or the call has been failed. */
static int status_validate(struct gw_call *c, const ProtobufCMessage *req)
{
	const struct gw_tr_rpc *row;
	struct gw_tr_request tr = { 0 };
	char err[GW_TR_ERR_MAX];
	size_t n = 0, i = 0;
	char **rids = NULL;
	int rc;

	/* The common case without building a path: a valid request of either shape. Anything else
	 * goes through the row for its exact message. */
	if (req && req->descriptor == &animate3d__v1__get_status_request__descriptor) {
		n = ((const Animate3d__V1__GetStatusRequest *)req)->n_rids;
		rids = ((const Animate3d__V1__GetStatusRequest *)req)->rids;
	} else if (req && req->descriptor == &animate3d__v1__watch_status_request__descriptor) {
		n = ((const Animate3d__V1__WatchStatusRequest *)req)->n_rids;
		rids = ((const Animate3d__V1__WatchStatusRequest *)req)->rids;
	}
	while (i < n && n <= GW_TR_MAX_RIDS && gw_tr_rid_valid(rids[i]))
		i++;
	if (n >= 1 && n <= GW_TR_MAX_RIDS && i == n)
		return 0;
	row = gw_tr_lookup("/animate3d.v1.Jobs/GetStatus");
	err[0] = '\0';
	rc = row ? row->build(req, &tr, err, sizeof err) : GW_TR_BAD_UPSTREAM;
	gw_tr_request_clear(&tr);
	if (rc == GW_TR_OK)
		return 0;
	if (rc == GW_TR_INVALID)
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	else if (rc == GW_TR_NOT_FOUND)
		gw_call_fail(c, GRPC_STATUS_NOT_FOUND, "%s", err);
	else
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "request could not be checked");
	return -1;
}

/* ---- GetStatus ---- */

struct status_get_op;

struct status_get_slot {
	struct gw_status_waiter w;
	struct status_get_op *op;
	const char *rid;		/* a miss: borrowed from the request until wanted */
	Animate3d__V1__JobStatus *st;	/* owned; NULL = not found (or not yet) */
	int waiting;
};

struct status_get_op {
	struct gw_call *c;
	size_t n, left;
	int code;			/* first error other than NOT_FOUND */
	long retry_ms;
	char msg[GW_STATUS_MSG_MAX];
	struct status_get_slot slot[];
};

static void status_get_free(struct status_get_op *op)
{
	for (size_t i = 0; i < op->n; i++) {
		if (op->slot[i].waiting)
			gw_status_unwant(&op->slot[i].w);
		if (op->slot[i].st)
			protobuf_c_message_free_unpacked(&op->slot[i].st->base, NULL);
	}
	free(op);
}

static void status_get_cancel(struct gw_call *c, void *data)
{
	(void)c;
	status_get_free(data);
}

/* Every slot answered, or an error: reply or fail, then free op. */
static void status_get_finish(struct status_get_op *op)
{
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	Animate3d__V1__JobStatus *sts[GW_TR_MAX_RIDS];
	struct gw_call *c = op->c;

	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	if (op->code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
		gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   op->retry_ms >= 0 ? op->retry_ms : 1000, op->msg);
	} else if (op->code && op->retry_ms >= 0) {
		gw_call_fail_retry(c, (grpc_status_code)op->code, op->retry_ms, op->msg);	/* 503 + Retry-After */
	} else if (op->code) {
		gw_call_fail(c, (grpc_status_code)op->code, "%s", op->msg);
	} else {
		for (size_t i = 0; i < op->n && resp.n_statuses < GW_TR_MAX_RIDS; i++)
			if (op->slot[i].st)
				sts[resp.n_statuses++] = op->slot[i].st;
		resp.statuses = sts;
		if (resp.n_statuses)
			gw_call_reply(c, &resp.base);
		else
			gw_rpc_owner_not_found(c);	/* the shape used for foreign ids too */
	}
	status_get_free(op);
}

static void status_get_done(struct gw_status_waiter *w, int code, const Animate3d__V1__JobStatus *st,
			    const char *msg, long retry_ms)
{
	struct status_get_slot *sl = (struct status_get_slot *)w;
	struct status_get_op *op = sl->op;

	sl->waiting = 0;
	op->left--;
	if (code == 0 && st) {
		sl->st = status_copy(st);
		if (!sl->st && !op->code) {
			op->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			op->retry_ms = 1000;
			snprintf(op->msg, sizeof op->msg, "GetStatus: out of memory");
		}
	} else if (code != GRPC_STATUS_NOT_FOUND && !op->code) {
		op->code = code ? code : GRPC_STATUS_INTERNAL;
		op->retry_ms = retry_ms;
		snprintf(op->msg, sizeof op->msg, "%s", msg ? msg : "GetStatus failed");
	}
	/* An error decides the reply: no need to wait for the other rids. */
	if (op->left == 0 || op->code)
		status_get_finish(op);
}

/* A protobuf varint of v at p; returns its length (at most 10 bytes). */
static size_t status_varint_put(uint8_t *p, size_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * GetStatus when every distinct rid is cached (the polling case): the reply is built from the
 * cache's packed statuses, each behind GetStatusResponse.statuses' tag (field 1, 0x0a) and its
 * length, in request order: the same bytes, counters and touches as the general path, without
 * decoding and re-encoding each status. Returns 0 when it replied; -1 when a rid is not cached
 * (or out of memory), having changed nothing: the general path then runs.
 */
static int status_get_cached(struct gw_status_ctx *x, struct gw_call *c, size_t acct,
			     const Animate3d__V1__GetStatusRequest *req)
{
	size_t len[GW_TR_MAX_RIDS];	/* 0 for a repeated rid */
	size_t total = 0, off = 0, n;
	int64_t now = status_now(x->status);
	uint8_t vb[10];
	uint8_t *buf;
	int state = 0;

	if (req->n_rids == 0 || req->n_rids > GW_TR_MAX_RIDS)
		return -1;
	for (size_t i = 0; i < req->n_rids; i++) {
		len[i] = 0;
		if (status_dup(req->rids, i))
			continue;
		len[i] = gw_cache_packed_size(x->cache, acct, req->rids[i], now);
		if (!len[i])
			return -1;
		total += 1 + status_varint_put(vb, len[i]) + len[i];
	}
	buf = malloc(total);
	if (!buf)
		return -1;
	for (size_t i = 0; i < req->n_rids; i++) {
		if (!len[i])
			continue;
		buf[off++] = 0x0a;
		off += status_varint_put(buf + off, len[i]);
		/* Nothing changed the cache since the sizes were taken: this is a hit of len[i]. */
		n = gw_cache_get_packed(x->cache, acct, req->rids[i], now, buf + off, len[i], &state);
		if (n != len[i]) {
			free(buf);
			gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetStatus: status cache changed while replying");
			return 0;
		}
		off += n;
		if (!gw_cache_state_final(state))
			gw_status_touch(x->status, acct, req->rids[i]);
	}
	gw_call_reply_packed(c, buf, off);
	free(buf);
	return 0;
}

static void status_rpc_get(struct gw_status_ctx *x, struct gw_call *c)
{
	const Animate3d__V1__GetStatusRequest *req;
	struct gw_rpc_owner_view view = { 0 };
	struct status_get_op *op = NULL;
	struct gw_account_rt *acct;
	int64_t now, left, deadline = 0;
	long retry_ms;
	int code;

	if (gw_rpc_admit(c) != 0)
		return;
	/* Ownership: only the tenant's rids (none left: the call is finished NOT_FOUND). */
	req = (const Animate3d__V1__GetStatusRequest *)gw_rpc_owner_admit(c, &view);
	if (!req || status_validate(c, &req->base) != 0)
		goto out;
	acct = gw_call_account(c);
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetStatus: tenant has no upstream account");
		goto out;
	}
	if (status_get_cached(x, c, acct->idx, req) == 0)
		goto out;	/* all cached: replied from the cache's bytes */
	op = calloc(1, sizeof *op + req->n_rids * sizeof op->slot[0]);
	if (!op) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetStatus: out of memory");
		goto out;
	}
	op->c = c;
	op->retry_ms = -1;
	now = status_now(x->status);
	left = gw_call_time_left_ms(c);
	if (left >= 0)
		deadline = now + left > 0 ? now + left : 1;
	/* Cache first; sl->rid marks the misses. */
	for (size_t i = 0; i < req->n_rids; i++) {
		struct status_get_slot *sl;

		if (status_dup(req->rids, i))
			continue;
		sl = &op->slot[op->n++];
		sl->op = op;
		if (gw_cache_get(x->cache, acct->idx, req->rids[i], now, &sl->st) == 1) {
			if (!gw_cache_state_final((int)sl->st->state))
				gw_status_touch(x->status, acct->idx, req->rids[i]);
			continue;
		}
		sl->st = NULL;
		sl->rid = req->rids[i];
		op->left++;
	}
	/* Misses go upstream: refused at once when the account would hold them back past the
	 * deadline (Retry-After pause, full queue, open circuit), as the other RPCs are. */
	if (op->left && gw_status_check(x->status, acct->idx, deadline, &code, &retry_ms, op->msg,
					sizeof op->msg)) {
		gw_call_fail_retry(c, (grpc_status_code)code, retry_ms, op->msg);
		status_get_free(op);
		goto out;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct status_get_slot *sl = &op->slot[i];

		if (!sl->rid)
			continue;
		sl->w.done = status_get_done;
		sl->w.deadline_ms = deadline;
		if (gw_status_want(x->status, acct->idx, sl->rid, &sl->w) != 0) {
			status_get_free(op);
			gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED, 1000,
					   "GetStatus: too many job statuses in flight, retry later");
			goto out;
		}
		sl->waiting = 1;
	}
	if (op->left == 0) {
		status_get_finish(op);
		goto out;
	}
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, status_get_cancel);
out:
	gw_rpc_owner_view_clear(&view);	/* the rids were copied where they are still needed */
}

/* ---- GetDownloadUrls ---- */

struct status_dl_op {
	struct gw_call *c;
	struct gw_status_ctx *x;
	size_t acct;
	struct gw_up_call *up;
	size_t n;				/* distinct rids */
	char **rids;				/* borrowed from the call's request */
	Animate3d__V1__DownloadLink **links;	/* n, owned: cache hits; NULL = ask upstream */
};

static void status_dl_free(struct status_dl_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		if (op->links[i])
			protobuf_c_message_free_unpacked(&op->links[i]->base, NULL);
	free(op->links);
	free(op->rids);
	free(op);
}

static void status_dl_cancel(struct gw_call *c, void *data)
{
	struct status_dl_op *op = data;

	(void)c;
	if (op->up)
		gw_up_cancel(op->up);
	status_dl_free(op);
}

/* Replies with the cached links and those of resp (may be NULL), in request order. */
static void status_dl_reply(struct status_dl_op *op, const Animate3d__V1__GetDownloadUrlsResponse *resp)
{
	Animate3d__V1__GetDownloadUrlsResponse out = ANIMATE3D__V1__GET_DOWNLOAD_URLS_RESPONSE__INIT;
	Animate3d__V1__DownloadLink *links[GW_TR_MAX_RIDS];

	for (size_t i = 0; i < op->n && out.n_links < GW_TR_MAX_RIDS; i++) {
		Animate3d__V1__DownloadLink *l = op->links[i];

		for (size_t j = 0; !l && resp && j < resp->n_links; j++)
			if (resp->links[j]->rid && strcmp(resp->links[j]->rid, op->rids[i]) == 0)
				l = resp->links[j];
		if (l)
			links[out.n_links++] = l;
	}
	out.links = links;
	if (out.n_links)
		gw_call_reply(op->c, &out.base);
	else
		gw_rpc_owner_not_found(op->c);	/* the shape used for foreign ids too */
}

static void status_dl_done(void *arg, const struct gw_up_response *res)
{
	struct status_dl_op *op = arg;
	struct gw_call *c = op->c;
	const struct gw_tr_rpc *row = gw_call_method(c)->row;
	Animate3d__V1__GetDownloadUrlsRequest req = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	Animate3d__V1__GetDownloadUrlsResponse *resp = NULL;
	ProtobufCMessage *reply = NULL;
	char *missing[GW_TR_MAX_RIDS];
	char msg[GW_STATUS_MSG_MAX], err[GW_TR_ERR_MAX];
	grpc_status_code code;
	int64_t now_s = (int64_t)time(NULL);

	op->up = NULL;
	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	gw_call_count_upstream(c);
	if (res->limited) {
		/* Refused by the account's protection before anything was sent (upstream.h). */
		snprintf(msg, sizeof msg, "GetDownloadUrls: %s", res->error ? res->error : "upstream limit");
		if (res->retry_after_ms >= 0)
			gw_call_fail_retry(c, (grpc_status_code)res->limited, res->retry_after_ms, msg);
		else
			gw_call_fail(c, (grpc_status_code)res->limited, "%s", msg);
		goto out;
	}
	if (res->no_session) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "GetDownloadUrls: %s",
			     res->error ? res->error : "upstream rejected account credentials");
		goto out;
	}
	if (res->curl_rc != CURLE_OK) {
		code = gw_errmap_curl((int)res->curl_rc, res->error, "GetDownloadUrls", msg, sizeof msg);
		gw_call_fail(c, code, "%s", msg);
		goto out;
	}
	if (res->http_status == 404) {
		status_dl_reply(op, NULL);	/* none of the missing rids known: the hits, if any */
		goto out;
	}
	if (res->http_status < 200 || res->http_status > 299) {
		code = gw_errmap_http(res->http_status, res->body, res->body_len, "GetDownloadUrls", msg,
				      sizeof msg);
		if (code == GRPC_STATUS_RESOURCE_EXHAUSTED)
			gw_call_fail_retry(c, code, res->retry_after_ms >= 0 ? res->retry_after_ms : 1000,
					   msg);
		else
			gw_call_fail(c, code, "%s", msg);
		goto out;
	}
	for (size_t i = 0; i < op->n; i++)
		if (!op->links[i])
			missing[req.n_rids++] = op->rids[i];
	req.rids = missing;
	err[0] = '\0';
	if (row->parse(&req.base, res->body, res->body_len, &reply, err, sizeof err) != GW_TR_OK) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE,
			     "GetDownloadUrls: upstream sent an unexpected answer: %s", err);
		goto out;
	}
	resp = (Animate3d__V1__GetDownloadUrlsResponse *)reply;
	for (size_t j = 0; j < resp->n_links; j++)
		gw_cache_link_put(op->x->cache, op->acct, resp->links[j], now_s);
	status_dl_reply(op, resp);
out:
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
	status_dl_free(op);
}

static void status_rpc_download(struct gw_status_ctx *x, struct gw_call *c)
{
	const struct gw_tr_rpc *row = gw_call_method(c)->row;
	const Animate3d__V1__GetDownloadUrlsRequest *req;
	Animate3d__V1__GetDownloadUrlsRequest up_req = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	struct gw_rpc_owner_view view = { 0 };
	char *missing[GW_TR_MAX_RIDS];
	struct gw_tr_request tr = { 0 };
	struct status_dl_op *op = NULL;
	struct gw_account_rt *acct;
	struct gw_up_request rq;
	char err[GW_TR_ERR_MAX];
	int64_t now_s = (int64_t)time(NULL), left;
	int rc;

	if (gw_rpc_admit(c) != 0)
		return;
	/* Ownership: only the tenant's rids (none left: the call is finished NOT_FOUND). */
	req = (const Animate3d__V1__GetDownloadUrlsRequest *)gw_rpc_owner_admit(c, &view);
	if (!req)
		return;
	err[0] = '\0';
	rc = row->build(&req->base, &tr, err, sizeof err);
	gw_tr_request_clear(&tr);
	if (rc != GW_TR_OK) {
		gw_call_fail(c, rc == GW_TR_INVALID ? GRPC_STATUS_INVALID_ARGUMENT
			     : rc == GW_TR_NOT_FOUND ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_INTERNAL,
			     "%s", err[0] ? err : "GetDownloadUrls: request could not be built");
		goto out;
	}
	acct = gw_call_account(c);
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetDownloadUrls: tenant has no upstream account");
		goto out;
	}
	op = calloc(1, sizeof *op);
	if (!op || !(op->links = calloc(req->n_rids, sizeof *op->links)) ||
	    !(op->rids = calloc(req->n_rids, sizeof *op->rids)))
		goto oom;
	op->c = c;
	op->x = x;
	op->acct = acct->idx;
	for (size_t i = 0; i < req->n_rids; i++) {
		if (status_dup(req->rids, i))
			continue;
		op->rids[op->n] = req->rids[i];
		if (gw_cache_link_get(x->cache, acct->idx, req->rids[i], now_s, &op->links[op->n]) != 1)
			missing[up_req.n_rids++] = req->rids[i];
		op->n++;
	}
	if (up_req.n_rids == 0) {
		status_dl_reply(op, NULL);
		goto out;
	}
	up_req.rids = missing;
	if (row->build(&up_req.base, &tr, err, sizeof err) != GW_TR_OK) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetDownloadUrls: request could not be built");
		goto out;
	}
	left = gw_call_time_left_ms(c);
	if (left == 0) {
		gw_call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED,
			     "GetDownloadUrls: deadline exceeded before the upstream call");
		goto out;
	}
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.timeout_ms = left > 0 ? (long)left : 0;
	rq.idempotent = row->idempotent;
	rq.route = "GET /download/{rids}";	/* the documented route, for metrics */
	op->up = gw_up_start(gw_call_server(c)->up, acct, &rq, status_dl_done, op);
	if (!op->up) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE,
			     "GetDownloadUrls: upstream request could not be started");
		goto out;
	}
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, status_dl_cancel);
	op = NULL;
	goto out;
oom:
	gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetDownloadUrls: out of memory");
out:
	gw_tr_request_clear(&tr);
	if (op)
		status_dl_free(op);
	gw_rpc_owner_view_clear(&view);
}

int gw_status_rpc_unary(struct gw_call *c)
{
	const struct gw_tr_rpc *row = gw_call_method(c)->row;
	struct gw_status_ctx *x;
	int get;

	if (!row || !row->grpc_path)
		return -1;
	get = strcmp(row->grpc_path, "/animate3d.v1.Jobs/GetStatus") == 0;
	if (!get && strcmp(row->grpc_path, "/animate3d.v1.Jobs/GetDownloadUrls") != 0)
		return -1;
	x = gw_status_ctx_of(gw_call_server(c));
	if (!x)
		return -1;	/* the caches could not start: the plain path still works */
	if (get)
		status_rpc_get(x, c);
	else
		status_rpc_download(x, c);
	return 0;
}

/* ---- WatchStatus ---- */

struct status_watch_rid {
	struct gw_status_watch w;
	struct status_watch_op *op;
	int open;			/* registered, not final yet */
};

struct status_watch_op {
	struct gw_call *c;
	struct gw_status_ctx *x;
	struct status_watch_op *prev, *next;	/* x->streams */
	size_t n, open;
	struct status_watch_rid r[];
};

static void status_watch_free(struct status_watch_op *op)
{
	struct gw_status_ctx *x = op->x;

	for (size_t i = 0; i < op->n; i++)
		if (op->r[i].open)
			gw_status_unwatch(&op->r[i].w);
	if (op->prev)
		op->prev->next = op->next;
	else if (x->streams == op)
		x->streams = op->next;
	if (op->next)
		op->next->prev = op->prev;
	x->nstreams--;
	free(op);
}

static void status_watch_cancel(struct gw_call *c, void *data)
{
	(void)c;
	status_watch_free(data);
}

static void status_watch_end(struct status_watch_op *op, grpc_status_code code, const char *msg)
{
	struct gw_call *c = op->c;

	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	status_watch_free(op);
	gw_call_stream_end(c, code, msg);
}

static void status_watch_notify(struct gw_status_watch *w, int code, const Animate3d__V1__JobStatus *st)
{
	struct status_watch_rid *r = (struct status_watch_rid *)w;
	struct status_watch_op *op = r->op;

	if (code != 0 || !st) {
		status_watch_end(op, GRPC_STATUS_NOT_FOUND, "WatchStatus: not found");
		return;
	}
	if (gw_call_stream_send(op->c, &st->base) != 0 && gw_cache_state_final((int)st->state)) {
		/* The final state could not be queued (client not reading): say so, not OK. */
		status_watch_end(op, GRPC_STATUS_RESOURCE_EXHAUSTED,
				 "WatchStatus: client too slow, final state dropped");
		return;
	}
	if (!gw_cache_state_final((int)st->state))
		return;
	gw_status_unwatch(w);
	r->open = 0;
	if (--op->open == 0)
		status_watch_end(op, GRPC_STATUS_OK, NULL);
}

void gw_status_rpc_watch(struct gw_call *c)
{
	struct gw_status_ctx *x = gw_status_ctx_of(gw_call_server(c));
	const Animate3d__V1__WatchStatusRequest *req;
	struct gw_rpc_owner_view view = { 0 };
	struct status_watch_op *op = NULL;
	struct gw_account_rt *acct;
	int64_t now;

	if (!x) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "WatchStatus: status cache unavailable");
		return;
	}
	if (gw_rpc_admit(c) != 0)
		return;
	/* Ownership: only the tenant's rids (none left: the call is finished NOT_FOUND). */
	req = (const Animate3d__V1__WatchStatusRequest *)gw_rpc_owner_admit(c, &view);
	if (!req || status_validate(c, &req->base) != 0)
		goto out;
	acct = gw_call_account(c);
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "WatchStatus: tenant has no upstream account");
		goto out;
	}
	if (x->nstreams >= GW_STATUS_MAX_WATCH_STREAMS || x->srv->draining) {
		x->streams_refused++;
		gw_call_fail(c, x->srv->draining ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED,
			     "WatchStatus: %s", x->srv->draining ? "server is shutting down"
								  : "too many open streams");
		goto out;
	}
	op = calloc(1, sizeof *op + req->n_rids * sizeof op->r[0]);
	if (!op) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "WatchStatus: out of memory");
		goto out;
	}
	op->c = c;
	op->x = x;
	op->next = x->streams;
	if (x->streams)
		x->streams->prev = op;
	x->streams = op;
	x->nstreams++;
	now = status_now(x->status);
	for (size_t i = 0; i < req->n_rids; i++) {
		struct status_watch_rid *r;
		Animate3d__V1__JobStatus *st = NULL;
		int final = 0;

		if (status_dup(req->rids, i))
			continue;
		r = &op->r[op->n++];
		r->op = op;
		r->w.notify = status_watch_notify;
		/* The current status at once when the cache has a fresh one. */
		if (gw_cache_get(x->cache, acct->idx, req->rids[i], now, &st) == 1) {
			gw_call_stream_send(c, &st->base);
			r->w.last_state = (int)st->state;
			r->w.last_step = st->step;
			final = gw_cache_state_final((int)st->state);
			protobuf_c_message_free_unpacked(&st->base, NULL);
		}
		if (final)
			continue;
		if (gw_status_watch(x->status, acct->idx, req->rids[i], &r->w) != 0) {
			status_watch_end(op, GRPC_STATUS_RESOURCE_EXHAUSTED,
					 "WatchStatus: too many job statuses tracked, retry later");
			goto out;
		}
		r->open = 1;
		op->open++;
	}
	if (op->open == 0) {
		status_watch_end(op, GRPC_STATUS_OK, NULL);
		goto out;
	}
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, status_watch_cancel);
out:
	gw_rpc_owner_view_clear(&view);	/* the rids live on in the status records */
}

/* Streams end when the server drains, like health watches, so the drain does not wait for them. */
static void status_ctx_on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct gw_status_ctx *x = arg;

	(void)fd;
	(void)what;
	if (!x->srv->draining)
		return;
	while (x->streams)
		status_watch_end(x->streams, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
	event_del(x->ev_drain);
}

void gw_status_job_restarted(struct gw_server *srv, size_t acct, const char *rid)
{
	struct gw_status_ctx *x = gw_status_ctx_of(srv);

	if (x)
		gw_status_forget(x->status, acct, rid);
}

/* ---- metrics ---- */

/* One family with one sample; name without GW_METRICS_PREFIX. */
static int status_metric(struct evbuffer *out, const char *name, const char *help, const char *type,
			 uint64_t v)
{
	return evbuffer_add_printf(out, "# HELP " GW_METRICS_PREFIX "%s %s\n# TYPE " GW_METRICS_PREFIX
				   "%s %s\n" GW_METRICS_PREFIX "%s %llu\n", name, help, name, type, name,
				   (unsigned long long)v) < 0;
}

int gw_status_render_metrics(struct gw_status_ctx *x, struct evbuffer *out)
{
	const struct gw_cache_counters *cc;
	const struct gw_status_counters *sc;
	const struct gw_webhook_in_counters *w;
	int bad = 0;

	if (!x || !x->cache || !x->status)
		return 0;	/* not started: nothing counted yet */
	cc = gw_cache_counters(x->cache);
	sc = gw_status_counters(x->status);
	w = &x->webhooks;
	bad |= status_metric(out, "cache_hits_total", "Status cache hits.", "counter", cc->hits);
	bad |= status_metric(out, "cache_misses_total", "Status cache misses (absent or expired).",
			     "counter", cc->misses);
	bad |= status_metric(out, "cache_expired_total", "Misses because the entry passed its TTL.",
			     "counter", cc->expired);
	bad |= status_metric(out, "cache_evictions_total", "Status entries evicted (LRU).",
			     "counter", cc->evictions);
	bad |= status_metric(out, "cache_stale_ignored_total",
			     "Upstream answers older than the cached one, ignored.", "counter",
			     cc->stale_ignored);
	bad |= status_metric(out, "cache_entries", "Status entries cached.", "gauge", cc->entries);
	bad |= status_metric(out, "status_wants_total", "Status misses sent to the batcher.",
			     "counter", sc->wants);
	bad |= status_metric(out, "status_coalesced_total",
			     "Misses that joined a queued or in-flight fetch of the same rid.", "counter",
			     sc->coalesced);
	bad |= status_metric(out, "status_fetches_total", "GET /status requests sent upstream.",
			     "counter", sc->fetches);
	bad |= status_metric(out, "status_batched_rids_total",
			     "Rids carried by those requests.", "counter", sc->batched);
	bad |= status_metric(out, "status_piggybacked_total",
			     "Hot rids refreshed along with a batch.", "counter", sc->piggybacked);
	bad |= status_metric(out, "status_refreshes_total",
			     "Watched rids queued by the refresh loop.", "counter", sc->refreshes);
	bad |= status_metric(out, "status_refused_total",
			     "Status misses refused at once: the account would hold them back past "
			     "their deadline, or its circuit is open or its queue full.", "counter",
			     sc->refused);
	bad |= status_metric(out, "status_requeued_total",
			     "Status waiters sent out again after a shorter deadline's fetch timed out.",
			     "counter", sc->requeued);
	bad |= status_metric(out, "status_rejected_total",
			     "Status requests refused: too many rids tracked.", "counter",
			     sc->rejected_full);
	bad |= status_metric(out, "watch_streams", "Open WatchStatus streams.", "gauge",
			     x->nstreams);
	bad |= status_metric(out, "watch_notifications_total", "WatchStatus changes delivered.",
			     "counter", sc->notifications);
	bad |= evbuffer_add_printf(out,
		"# HELP " GW_METRICS_PREFIX "webhooks_in_total Upstream webhook deliveries by outcome.\n"
		"# TYPE " GW_METRICS_PREFIX "webhooks_in_total counter\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"accepted\"} %llu\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"ignored\"} %llu\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"bad_path\"} %llu\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"bad_signature\"} %llu\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"too_large\"} %llu\n"
		GW_METRICS_PREFIX "webhooks_in_total{result=\"malformed\"} %llu\n",
		(unsigned long long)w->accepted, (unsigned long long)w->ignored,
		(unsigned long long)w->rej_path, (unsigned long long)w->rej_signature,
		(unsigned long long)w->rej_size, (unsigned long long)w->rej_malformed) < 0;
	return bad ? -1 : 0;
}
