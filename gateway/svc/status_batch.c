/*
 * status_batch: the batcher of the status module (see status.h): tracked records, per-account
 * coalescing and batching of wanted rids into one GET /status/r1,r2,..., fetch sequencing,
 * deadlines and requeue, the housekeeping timers and the real transport (gw_up_start). Separate
 * from the watchers (status_watch.c) and the RPC handlers (status.c) that feed it.
 */
#include "gateway/svc/status_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "auth/upstream/session.h"
#include "gateway/api/cache.h"
#include "gateway/base/errmap.h"
#include "gateway/call/env.h"
#include "gateway/upstream/upstream.h"

static void status_arm_batch(struct gw_status *s, int64_t due);

struct gw_status_fetch *gw_status_fetch_of(struct status_flink *l)
{
	return (struct gw_status_fetch *)(void *)((char *)l - offsetof(struct gw_status_fetch, link));
}

/* ---- time ---- */

int64_t gw_status_now(struct gw_status *s)
{
	struct timespec ts;

	if (s->o.now_ms)
		return s->o.now_ms(s->o.clock_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw_status_ttl(const struct gw_status *s)
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

int gw_status_rid_ok(const char *rid)
{
	return rid && gw_tr_rid_valid(rid);
}

struct gw_status_rec *gw_status_rec_find(struct gw_status *s, size_t acct, const char *rid)
{
	uint32_t h = status_hash(acct, rid);
	struct gw_status_rec *r = s->buckets[h % STATUS_BUCKETS];

	for (; r; r = r->hnext)
		if (r->hash == h && r->acct == acct && strcmp(r->rid, rid) == 0)
			return r;
	return NULL;
}

struct gw_status_rec *gw_status_rec_get(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r = gw_status_rec_find(s, acct, rid);
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
	strcpy(r->rid, rid);	/* length checked by gw_status_rid_ok */
	r->last_fetch_ms = INT64_MIN;
	/* A cached answer counts as the last fetch, so a new record does not refetch it early. */
	if (gw_cache_peek(s->cache, acct, rid, gw_status_now(s), NULL, &age) == 1)
		r->last_fetch_ms = gw_status_now(s) - age;
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
	return r->nwatchers > 0 || now - r->last_want_ms < STATUS_HOT_TTLS * gw_status_ttl(s);
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

void gw_status_enqueue(struct gw_status *s, struct gw_status_rec *r, int64_t now)
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

const struct gw_trace *gw_status_fetch_trace(const struct gw_status_fetch *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct gw_status_waiter *head = &f->recs[i]->waiters;

		for (const struct gw_status_waiter *w = head->next; w && w != head; w = w->next)
			if (w->trace)
				return w->trace;
	}
	/* Only watchers: a WatchStatus stream's first read or its refresh. */
	for (size_t i = 0; i < f->n; i++) {
		const struct gw_status_watch *head = &f->recs[i]->watchers;

		for (const struct gw_status_watch *w = head->next; w && w != head; w = w->next)
			if (w->trace)
				return w->trace;
	}
	return NULL;
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

/* Starts fetches for recs[0..n) (any n), in batch_max-sized requests. */
static void status_start_chunks(struct gw_status *s, size_t acct, struct gw_status_rec **recs,
				size_t n, int64_t now)
{
	while (n) {
		size_t k = n < s->o.batch_max ? n : s->o.batch_max;

		status_start(s, acct, recs, k, now);
		recs += k;
		n -= k;
	}
}

/* Starts fetches for recs[0..n) (QUEUED, any n) now. A record nothing else refers to (a hot rid
 * of the cluster this replica does not track) is freed after its fetch, or now when it could not
 * start. */
static void status_poll_now(struct gw_status *s, size_t acct, struct gw_status_rec **recs, size_t n,
			    int64_t now)
{
	for (size_t i = 0; i < n; i++)
		recs[i]->busy++;
	status_start_chunks(s, acct, recs, n, now);
	for (size_t i = 0; i < n; i++)
		recs[i]->busy--;
	for (size_t i = 0; i < n; i++)
		status_rec_maybe_free(s, recs[i], now);
}

/* ---- claim groups (status_int.h) ---- */

/* A group for account acct's flush, its reference held by the flush; NULL when out of memory
 * (its claims' rids are then polled claim by claim). */
static struct status_cgroup *status_group_new(size_t acct)
{
	struct status_cgroup *g = calloc(1, sizeof *g);

	if (g) {
		g->refs = 1;
		g->acct = acct;
	}
	return g;
}

/* recs[0..n) (QUEUED) are polled with group g; without g, or when its list cannot grow, now.
 * A record is listed once (it stays QUEUED until polled), so a group holds at most max_rids. */
static void status_group_add(struct gw_status *s, struct status_cgroup *g, size_t acct,
			     struct gw_status_rec **recs, size_t n, int64_t now)
{
	if (g && g->n + n > g->cap) {
		size_t cap = g->cap ? g->cap : s->o.batch_max;
		struct gw_status_rec **grown;

		while (cap < g->n + n)
			cap *= 2;
		grown = realloc(g->recs, cap * sizeof *grown);
		if (grown) {
			g->recs = grown;
			g->cap = cap;
		} else {
			g = NULL;
		}
	}
	if (!g) {
		status_poll_now(s, acct, recs, n, now);
		return;
	}
	memcpy(g->recs + g->n, recs, n * sizeof *recs);
	g->n += n;
}

/* Drops a reference of g (NULL: nothing); the last one polls what the group holds. */
static void status_group_put(struct gw_status *s, struct status_cgroup *g, int64_t now)
{
	if (!g || --g->refs)
		return;
	if (g->n)
		status_poll_now(s, g->acct, g->recs, g->n, now);
	free(g->recs);
	free(g);
}

static struct gw_status_claim *status_claim_of(struct status_flink *l)
{
	return (struct gw_status_claim *)(void *)((char *)l - offsetof(struct gw_status_claim, link));
}

/* Claims recs[0..n) (1..claim_max, unlinked from the pending list) for the cluster, as part of
 * group g (may be NULL); when no claim can be sent they are polled here, with the group. */
static void status_claim(struct gw_status *s, size_t acct, struct gw_status_rec **recs, size_t n,
			 struct status_cgroup *g, int64_t now)
{
	struct gw_status_claim *c = calloc(1, sizeof *c + n * sizeof *recs);
	const char *rids[GW_STATUS_MAX_BATCH];

	for (size_t i = 0; i < n; i++) {
		rids[i] = recs[i]->rid;
		recs[i]->phase = ST_CLAIMING;
	}
	if (c) {
		c->s = s;
		c->acct = acct;
		c->started_ms = now;
		c->n = n;
		memcpy(c->recs, recs, n * sizeof *recs);
		c->handle = s->o.claim(s->o.cluster_arg, acct, rids, n, c);
	}
	if (!c || !c->handle) {
		free(c);
		s->cnt.claim_local += n;
		for (size_t i = 0; i < n; i++)
			recs[i]->phase = ST_QUEUED;
		status_group_add(s, g, acct, recs, n, now);
		return;
	}
	c->g = g;
	if (g)
		g->refs++;
	s->cnt.claims++;
	c->link.prev = &s->claiming;
	c->link.next = s->claiming.next;
	s->claiming.next->prev = &c->link;
	s->claiming.next = &c->link;
}

static void status_out_add(struct gw_status *s, size_t acct, struct status_out *o,
			   struct gw_status_rec *r, int64_t now)
{
	if (s->o.claim && !r->local) {
		o->claim[o->nclaim++] = r;
		if (o->nclaim == s->o.claim_max) {
			status_claim(s, acct, o->claim, o->nclaim, o->g, now);
			o->nclaim = 0;
		}
		return;
	}
	r->local = 0;
	o->poll[o->npoll++] = r;
	if (o->npoll == s->o.batch_max) {
		status_start(s, acct, o->poll, o->npoll, now);
		o->npoll = 0;
	}
}

/* Sends account a's pending rids, plus hot rids that ride along, in batch_max-sized requests
 * (claimed for the cluster first when it coordinates polling). */
static void status_flush(struct gw_status *s, size_t acct, int64_t now)
{
	struct status_acct *a = &s->accts[acct];
	struct status_out *o = &s->out;	/* flushes never nest: they run from the tick only */
	struct gw_status_rec *r;
	int64_t half = gw_status_ttl(s) / 2;

	o->npoll = o->nclaim = 0;
	o->g = s->o.claim ? status_group_new(acct) : NULL;
	while (a->qhead) {
		r = a->qhead;
		a->qhead = r->qnext;
		r->qnext = NULL;
		status_out_add(s, acct, o, r, now);
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
		r->phase = ST_QUEUED;	/* so it is added once */
		s->cnt.piggybacked++;
		status_out_add(s, acct, o, r, now);
	}
	if (o->nclaim)
		status_claim(s, acct, o->claim, o->nclaim, o->g, now);
	if (o->npoll)
		status_start(s, acct, o->poll, o->npoll, now);
	status_group_put(s, o->g, now);	/* polls now when no claim is out (Redis down) */
	o->g = NULL;
}

static void status_flush_due(struct gw_status *s, int64_t now)
{
	for (size_t i = 0; i < s->o.naccounts; i++)
		if (s->accts[i].nq && s->accts[i].due_ms <= now)
			status_flush(s, i, now);
}

/* ---- delivery ---- */

/* Unlinks and returns r's first waiter (NULL when none): its done() may free it. */
static struct gw_status_waiter *status_pop_waiter(struct gw_status_rec *r)
{
	struct gw_status_waiter *w = r->waiters.next;

	if (w == &r->waiters)
		return NULL;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->rec = NULL;
	return w;
}

static void status_deliver_error(struct gw_status *s, struct gw_status_rec *r, int code,
				 const char *msg, long retry_ms)
{
	struct gw_status_waiter *w;

	while ((w = status_pop_waiter(r)) != NULL) {
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
	struct gw_status_waiter *w;

	while ((w = status_pop_waiter(r)) != NULL) {
		w->done(w, code, st, code ? "GetStatus: rid not found upstream" : NULL, -1);
	}
	gw_status_watchers_notify(s, r, code, st);
}

static const Animate3d__V1__JobStatus *status_find_in(const Animate3d__V1__GetStatusResponse *resp,
						       const char *rid)
{
	for (size_t i = 0; resp && i < resp->n_statuses; i++)
		if (resp->statuses[i] && resp->statuses[i]->rid && strcmp(resp->statuses[i]->rid, rid) == 0)
			return resp->statuses[i];
	return NULL;
}

/* Hands the non-final statuses of a fetch's answer to on_polled (the cluster shares them). */
static void status_polled(struct gw_status *s, size_t acct, const Animate3d__V1__GetStatusResponse *resp)
{
	const Animate3d__V1__JobStatus *sts[GW_STATUS_MAX_BATCH];
	size_t n = 0;

	for (size_t i = 0; i < resp->n_statuses && n < GW_STATUS_MAX_BATCH; i++)
		if (resp->statuses[i] && resp->statuses[i]->rid &&
		    !gw_cache_state_final((int)resp->statuses[i]->state))
			sts[n++] = resp->statuses[i];
	if (n)
		s->o.on_polled(s->o.cluster_arg, acct, sts, n);
}

void gw_status_fetch_done(struct gw_status_fetch *f, const struct gw_status_result *res)
{
	struct gw_status *s = f->s;
	int64_t now = gw_status_now(s);

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
		if (!cur && !r->final && gw_cache_state_final((int)st->state) && s->o.on_final)
			s->o.on_final(s->o.final_arg, f->acct, st);
		r->final = gw_cache_state_final((int)st->state);
		status_deliver(s, r, 0, st);
		if (cur)
			protobuf_c_message_free_unpacked(&cur->base, NULL);
	}
	if (res->code == 0 && res->resp && s->o.on_polled)
		status_polled(s, f->acct, res->resp);
	for (size_t i = 0; i < f->n; i++) {
		struct gw_status_rec *r = f->recs[i];

		r->busy--;
		if (r->refetch && r->phase == ST_IDLE) {
			r->refetch = 0;
			gw_status_enqueue(s, r, now);
		}
		status_rec_maybe_free(s, r, now);
	}
	free(f);
}

/* r left WAITING (answered, or polled after all). */
static void status_unwait(struct gw_status *s, struct gw_status_rec *r)
{
	if (r->phase != ST_WAITING)
		return;
	r->phase = ST_IDLE;
	s->nwaiting--;
}

int gw_status_apply_aged(struct gw_status *s, size_t acct, const Animate3d__V1__JobStatus *st,
			 int64_t age_ms, int only_tracked)
{
	Animate3d__V1__JobStatus *cur = NULL;
	struct gw_status_rec *r;
	int64_t now, cur_age = 0;

	if (!s || !st || acct >= s->o.naccounts || !gw_status_rid_ok(st->rid) || age_ms < 0)
		return -1;
	now = gw_status_now(s);
	r = gw_status_rec_find(s, acct, st->rid);
	if (!r && only_tracked)
		return 0;
	/* An in-progress status older than the one cached here (another replica's stored entry
	 * against this replica's later poll) does not replace it: time never runs backwards. */
	if (age_ms > 0 && !gw_cache_state_final((int)st->state) &&
	    gw_cache_peek(s->cache, acct, st->rid, now, NULL, &cur_age) == 1 && cur_age <= age_ms) {
		/* Kept: what the cache holds is delivered below. */
	} else if (gw_cache_put(s->cache, acct, st, ++s->seq, now - age_ms) < 0) {
		/* A sequence number of its own: newer than every fetch started so far, so an
		 * answer in flight (older by definition) cannot replace it. */
		return -1;
	}
	if (!r)
		return 0;
	if (gw_cache_peek(s->cache, acct, r->rid, now, &cur, NULL) == 1)
		st = cur;	/* what the cache holds now (a final stays final) */
	r->busy++;
	r->final = gw_cache_state_final((int)st->state);
	/* As if fetched here: the watchers' refresh and the ride-alongs count from it. */
	r->applied_ms = now;
	if (r->last_fetch_ms == INT64_MIN || r->last_fetch_ms < now - age_ms)
		r->last_fetch_ms = now - age_ms;
	if (r->phase == ST_WAITING) {
		status_unwait(s, r);
		s->cnt.cluster_served++;
	}
	status_deliver(s, r, 0, st);
	r->busy--;
	if (cur)
		protobuf_c_message_free_unpacked(&cur->base, NULL);
	status_rec_maybe_free(s, r, now);
	return 1;
}

int gw_status_apply(struct gw_status *s, size_t acct, const Animate3d__V1__JobStatus *st)
{
	return gw_status_apply_aged(s, acct, st, 0, 0);
}

/* ---- claims ---- */

/* Whether r's cached status is fresh enough not to poll it for the cluster now: read (here or
 * elsewhere) within the last STATUS_CLUSTER_FRESH_DIV-th of a TTL. */
static int status_cluster_skip(struct gw_status *s, struct gw_status_rec *r, int64_t now)
{
	int64_t age = 0, fresh = gw_status_ttl(s) / STATUS_CLUSTER_FRESH_DIV;
	Animate3d__V1__JobStatus *cur = NULL;
	int skip = 0;

	if (r->phase != ST_IDLE || r->final)
		return 1;
	if (r->last_fetch_ms != INT64_MIN && now - r->last_fetch_ms < fresh)
		return 1;
	if (gw_cache_peek(s->cache, r->acct, r->rid, now, &cur, &age) == 1) {
		skip = gw_cache_state_final((int)cur->state) || age < fresh;
		protobuf_c_message_free_unpacked(&cur->base, NULL);
	}
	return skip;
}

/* Waiters that joined r while it was claimed get the status applied meanwhile. */
static void status_deliver_cached(struct gw_status *s, struct gw_status_rec *r, int64_t now)
{
	Animate3d__V1__JobStatus *cur = NULL;

	if (r->waiters.next == &r->waiters)
		return;
	if (gw_cache_peek(s->cache, r->acct, r->rid, now, &cur, NULL) != 1)
		return;
	status_deliver(s, r, 0, cur);
	protobuf_c_message_free_unpacked(&cur->base, NULL);
}

void gw_status_claim_done(struct gw_status_claim *c, const struct gw_status_claim_result *res)
{
	struct gw_status *s = c->s;
	int64_t now = gw_status_now(s);
	struct gw_status_rec **poll = NULL, *r;
	struct status_cgroup *g;
	size_t npoll = 0, nclaimed, cap;
	int ok = res && res->ok;

	c->link.prev->next = c->link.next;
	c->link.next->prev = c->link.prev;
	cap = c->n + (ok ? res->nextra : 0);
	poll = malloc((cap ? cap : 1) * sizeof *poll);
	for (size_t i = 0; i < c->n; i++) {
		c->recs[i]->phase = ST_IDLE;
		c->recs[i]->busy++;
	}
	for (size_t i = 0; i < c->n; i++) {
		r = c->recs[i];
		if (r->applied_ms >= c->started_ms && !r->refetch) {
			/* Another replica's answer arrived while claiming. */
			status_deliver_cached(s, r, now);
			continue;
		}
		if (ok && !r->refetch && res->verdict && res->verdict[i] == GW_STATUS_CLAIM_WAIT) {
			r->phase = ST_WAITING;
			r->wait_until_ms = now + (res->wait_ms > 0 ? res->wait_ms : 0);
			s->nwaiting++;
			s->cnt.cluster_waited++;
			continue;
		}
		if (!ok)
			s->cnt.claim_local++;
		r->refetch = 0;
		r->local = 0;
		if (poll) {
			r->phase = ST_QUEUED;	/* listed once */
			poll[npoll++] = r;
		} else {
			gw_status_enqueue(s, r, now);
		}
	}
	/* This replica holds the window's lease: the cluster's hot rids it does not have fresh. */
	nclaimed = npoll;
	for (size_t i = 0; ok && poll && i < res->nextra; i++) {
		int created = 0;

		if (!gw_status_rid_ok(res->extra[i]))
			continue;
		r = gw_status_rec_find(s, c->acct, res->extra[i]);
		if (!r) {
			/* Not tracked here: a cold record, freed after its fetch. */
			r = gw_status_rec_get(s, c->acct, res->extra[i]);
			if (!r)
				continue;
			r->last_want_ms = now - STATUS_HOT_TTLS * gw_status_ttl(s);
			created = 1;
		}
		if (status_cluster_skip(s, r, now)) {
			if (created)
				status_rec_maybe_free(s, r, now);
			continue;
		}
		r->phase = ST_QUEUED;
		r->busy++;
		poll[npoll++] = r;
		s->cnt.cluster_polled++;
	}
	/* With the rest of the flush's claims: they are polled together once the last one is
	 * answered (QUEUED until then, so nothing below frees them). */
	if (npoll)
		status_group_add(s, c->g, c->acct, poll, npoll, now);
	for (size_t i = 0; i < c->n; i++)
		c->recs[i]->busy--;
	for (size_t i = nclaimed; i < npoll; i++)
		poll[i]->busy--;
	for (size_t i = nclaimed; i < npoll; i++)
		status_rec_maybe_free(s, poll[i], now);
	for (size_t i = 0; i < c->n; i++)
		status_rec_maybe_free(s, c->recs[i], now);
	free(poll);
	g = c->g;
	free(c);
	status_group_put(s, g, now);
}

/* From the tick: WAITING records whose wait is over are polled here when someone still waits
 * for them (waiters, or watchers due), else left idle. */
static void status_waiting_due(struct gw_status *s, int64_t now)
{
	struct gw_status_rec *r;

	if (!s->nwaiting)
		return;
	for (r = s->all.next; r != &s->all && s->nwaiting; r = r->next) {
		if (r->phase != ST_WAITING || r->wait_until_ms > now)
			continue;
		status_unwait(s, r);
		if (r->waiters.next != &r->waiters || r->nwatchers || r->refetch) {
			r->refetch = 0;
			r->local = 1;
			s->cnt.cluster_fallback++;
			gw_status_enqueue(s, r, now);
		}
	}
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
	now = gw_status_now(s);
	d = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	if (event_add(s->ev_batch, &tv) == 0)
		s->batch_armed_ms = due;
}

void gw_status_tick(struct gw_status *s)
{
	int64_t now = gw_status_now(s);
	int64_t ttl = gw_status_ttl(s), next = INT64_MAX;
	struct gw_status_rec *r, *nx;

	s->in_tick = 1;
	status_waiting_due(s, now);
	gw_status_watchers_due(s, now);
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
	    opts->batch_max > GW_STATUS_MAX_BATCH || opts->claim_max > GW_STATUS_MAX_BATCH ||
	    (opts->claim && (!opts->claim_max || !opts->claim_cancel)))
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
	s->claiming.prev = s->claiming.next = &s->claiming;
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
		period = gw_status_ttl(s) / 4;
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
		struct gw_status_fetch *f = gw_status_fetch_of(l);

		ln = l->next;
		if (s->o.cancel)
			s->o.cancel(s->o.transport_arg, f->handle);
		free(f);
	}
	for (l = s->claiming.next; l && l != &s->claiming; l = ln) {
		struct gw_status_claim *c = status_claim_of(l);

		ln = l->next;
		s->o.claim_cancel(s->o.cluster_arg, c->handle);
		if (c->g && --c->g->refs == 0) {
			free(c->g->recs);
			free(c->g);
		}
		free(c);
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

/* ---- waiters ---- */

int gw_status_want(struct gw_status *s, size_t acct, const char *rid, struct gw_status_waiter *w)
{
	int64_t now;
	struct gw_status_rec *r;

	if (!s || !w || !w->done || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return -1;
	r = gw_status_rec_get(s, acct, rid);
	if (!r)
		return -1;
	now = gw_status_now(s);
	r->last_want_ms = now;
	w->rec = r;
	w->prev = r->waiters.prev;
	w->next = &r->waiters;
	r->waiters.prev->next = w;
	r->waiters.prev = w;
	s->cnt.wants++;
	if (r->phase == ST_IDLE)
		gw_status_enqueue(s, r, now);
	else
		s->cnt.coalesced++;
	return 0;
}

int gw_status_touch(struct gw_status *s, size_t acct, const char *rid)
{
	struct gw_status_rec *r;

	if (!s || acct >= s->o.naccounts || !gw_status_rid_ok(rid))
		return -1;
	r = gw_status_rec_get(s, acct, rid);
	if (!r)
		return -1;
	r->last_want_ms = gw_status_now(s);
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
	now = gw_status_now(s);
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

/* ---- the real transport ---- */

struct status_up {
	struct gw_env *env;
	struct gw_status_fetch *f;
	struct gw_up_call *call;
};

static void status_up_done(void *arg, const struct gw_up_response *res)
{
	struct status_up *u = arg;
	struct gw_status_fetch *f = u->f;
	struct gw_status_result out = { .code = GRPC_STATUS_OK, .retry_after_ms = -1 };
	Animate3d__V1__GetStatusRequest req = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	char *rids[GW_STATUS_MAX_BATCH];
	char msg[GW_STATUS_MSG_MAX], err[GW_TR_ERR_MAX];
	struct gw_up_failure fail;
	int rc;

	free(u);
	if (gw_up_failure_of(res, "GetStatus", &fail) == GRPC_STATUS_NOT_FOUND) {
		out.resp = NULL;	/* none of the rids is known: each gets NOT_FOUND */
	} else if (fail.code != GRPC_STATUS_OK) {
		out.code = fail.code;
		out.msg = fail.msg;
		out.retry_after_ms = fail.retry_ms;
	} else {
		for (size_t i = 0; i < f->n; i++)
			rids[i] = f->recs[i]->rid;
		req.rids = rids;
		req.n_rids = f->n;
		err[0] = '\0';
		rc = gw_tr_parse_get_status(&req.base, res->body, res->body_len, &reply, err,
					    sizeof err);
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
	struct gw_env *env = arg;
	Animate3d__V1__GetStatusRequest req = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	struct gw_tr_request tr = { 0 };
	struct gw_up_request rq;
	struct status_up *u = NULL, *ret = NULL;
	char err[GW_TR_ERR_MAX];

	if (!env || acct >= env->naccounts || n > GW_STATUS_MAX_BATCH)
		goto out;
	req.rids = (char **)rids;
	req.n_rids = n;
	if (gw_tr_build_get_status(&req.base, &tr, err, sizeof err) != GW_TR_OK)
		goto out;
	u = calloc(1, sizeof *u);
	if (!u)
		goto out;
	u->env = env;
	u->f = f;
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.timeout_ms = timeout_ms;	/* the batch's latest deadline, or 0: the configured default */
	rq.idempotent = 1;
	rq.route = "GET /status/{rids}";
	rq.trace = gw_status_fetch_trace(f);
	u->call = gw_up_start(env->up, &env->accounts[acct].up, &rq, status_up_done, u);
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
	struct gw_env *env = arg;

	*wait_ms = 0;
	if (!env || !env->up || acct >= env->naccounts)
		return 0;
	return gw_up_account_hold(env->up, acct, wait_ms, msg, cap);
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
