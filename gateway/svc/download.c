/*
 * download: Jobs/GetDownloadUrls through the link cache and per-account batches of
 * GET /download/r1,r2,... (see download.h). Moved out of status.c (issue 23), which keeps
 * GetStatus and WatchStatus; the link cache stays in the status service's gw_cache, so a job
 * restarted under the same rid (gw_status_job_restarted) drops its link too.
 *
 * Records: one per (account, rid) queued or in flight, with its waiters (one per call asking);
 * a record lives from the first miss until its fetch ends, so a second caller's miss finds it
 * and joins. Waiter lists are circular with a sentinel in the record.
 */
#include "gateway/svc/download.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "auth/upstream/session.h"
#include "gateway/api/cache.h"
#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/svc/status.h"
#include "gateway/upstream/upstream.h"

#define DL_ROUTE "GET /download/{rids}"	/* the documented route, for metrics */

struct dl_rec;
struct dl_op;
struct dl_fetch;

struct dl_waiter {
	struct dl_waiter *prev, *next;	/* on rec's list (the sentinel's own links when it is one) */
	struct dl_rec *rec;		/* NULL: not waiting */
	struct dl_op *op;
	const char *rid;		/* borrowed from the call's request */
	Animate3d__V1__DownloadLink *link;	/* owned: the answer; NULL = none (not found) */
};

struct dl_rec {
	struct dl_rec *hnext;		/* bucket chain */
	struct dl_rec *qnext;		/* account's pending list (while queued) */
	size_t acct;
	uint32_t hash;
	struct dl_waiter waiters;	/* sentinel */
	char rid[GW_TR_RID_MAX + 1];
};

struct dl_acct {
	struct dl_rec *qhead, *qtail;
	size_t nq;
	int64_t due_ms;			/* when the pending batch leaves; INT64_MAX when empty */
};

struct dl_fetch {
	struct dl_fetch *prev, *next;	/* in flight */
	struct gw_download_ctx *x;
	struct gw_up_call *up;
	uint64_t forgets;		/* gw_cache_forgets at the start */
	long timeout_ms;		/* the request's; 0 = the configured default (no deadline) */
	size_t acct, n;
	struct dl_rec *recs[];
};

struct gw_download_ctx {
	struct gw_env *env;
	struct gw_cache *cache;		/* the status service's (links per account and rid) */
	struct dl_rec *buckets[GW_DOWNLOAD_BUCKETS];
	size_t nrecs;
	struct dl_acct *accts;
	size_t naccts;
	struct dl_fetch flying;		/* sentinel */
	struct event *ev_batch;
	int64_t armed_ms;		/* due time the batch timer is armed for; INT64_MAX none */
	size_t batch_max;
	int64_t window_ms;
	struct gw_download_counters cnt;
};

/* One GetDownloadUrls call: a slot per distinct rid, in request order. */
struct dl_op {
	struct gw_call *c;
	struct gw_download_ctx *x;
	size_t n, left;
	const struct dl_fetch *counted;	/* the last fetch counted in the call's access line */
	int failed;			/* fail holds the first upstream error */
	struct gw_up_failure fail;
	struct dl_waiter slot[];
};

static int64_t dl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- records ---- */

static uint32_t dl_hash(size_t acct, const char *rid)
{
	uint32_t h = 2166136261u ^ (uint32_t)acct;

	for (; *rid; rid++) {
		h ^= (unsigned char)*rid;
		h *= 16777619u;
	}
	return h;
}

static struct dl_rec *dl_rec_find(struct gw_download_ctx *x, size_t acct, const char *rid)
{
	uint32_t h = dl_hash(acct, rid);
	struct dl_rec *r = x->buckets[h % GW_DOWNLOAD_BUCKETS];

	for (; r; r = r->hnext)
		if (r->hash == h && r->acct == acct && strcmp(r->rid, rid) == 0)
			return r;
	return NULL;
}

/* A new record, queued on its account's pending batch; NULL when GW_DOWNLOAD_MAX_RIDS are
 * tracked (counted) or out of memory. rid: valid (the translate row checked it). */
static struct dl_rec *dl_rec_new(struct gw_download_ctx *x, size_t acct, const char *rid)
{
	struct dl_acct *a = &x->accts[acct];
	struct dl_rec *r;

	if (x->nrecs >= GW_DOWNLOAD_MAX_RIDS) {
		x->cnt.rejected++;
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->acct = acct;
	r->hash = dl_hash(acct, rid);
	snprintf(r->rid, sizeof r->rid, "%s", rid);
	r->waiters.prev = r->waiters.next = &r->waiters;
	r->hnext = x->buckets[r->hash % GW_DOWNLOAD_BUCKETS];
	x->buckets[r->hash % GW_DOWNLOAD_BUCKETS] = r;
	x->nrecs++;
	x->cnt.tracked = x->nrecs;
	if (a->qtail)
		a->qtail->qnext = r;
	else
		a->qhead = r;
	a->qtail = r;
	if (++a->nq == 1)
		a->due_ms = dl_now_ms() + x->window_ms;
	if (a->nq >= x->batch_max)
		a->due_ms = 0;		/* full: leaves from the timer at once, never inside a call */
	return r;
}

/* Unhooks r from the table and frees it; its waiters must be gone. */
static void dl_rec_free(struct gw_download_ctx *x, struct dl_rec *r)
{
	struct dl_rec **pp = &x->buckets[r->hash % GW_DOWNLOAD_BUCKETS];

	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	x->nrecs--;
	x->cnt.tracked = x->nrecs;
	free(r);
}

static void dl_wait(struct dl_rec *r, struct dl_waiter *w)
{
	w->rec = r;
	w->prev = r->waiters.prev;
	w->next = &r->waiters;
	r->waiters.prev->next = w;
	r->waiters.prev = w;
}

static void dl_unwait(struct dl_waiter *w)
{
	if (!w->rec)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->rec = NULL;	/* the record goes when its fetch ends (a queued one rides along anyway) */
}

/* ---- calls ---- */

static void dl_op_free(struct dl_op *op)
{
	for (size_t i = 0; i < op->n; i++) {
		dl_unwait(&op->slot[i]);
		if (op->slot[i].link)
			protobuf_c_message_free_unpacked(&op->slot[i].link->base, NULL);
	}
	free(op);
}

static void dl_op_cancel(struct gw_call *c, void *data)
{
	(void)c;
	dl_op_free(data);
}

/* Replies with the slots' links in request order (NOT_FOUND when none has one), or fails with
 * the first upstream error; frees op. */
static void dl_op_finish(struct dl_op *op)
{
	Animate3d__V1__GetDownloadUrlsResponse out = ANIMATE3D__V1__GET_DOWNLOAD_URLS_RESPONSE__INIT;
	Animate3d__V1__DownloadLink *links[GW_TR_MAX_RIDS];
	struct gw_call *c = op->c;

	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	if (op->failed) {
		gw_call_fail_up(c, &op->fail);
	} else {
		for (size_t i = 0; i < op->n && out.n_links < GW_TR_MAX_RIDS; i++)
			if (op->slot[i].link)
				links[out.n_links++] = op->slot[i].link;
		out.links = links;
		if (out.n_links)
			gw_call_reply(c, &out.base);
		else
			gw_rpc_owner_not_found(c);	/* the shape used for foreign ids too */
	}
	dl_op_free(op);
}

/* A deep copy of a borrowed link (pack + unpack), or NULL. */
static Animate3d__V1__DownloadLink *dl_link_copy(const Animate3d__V1__DownloadLink *l)
{
	size_t n = protobuf_c_message_get_packed_size(&l->base);
	uint8_t *buf = malloc(n ? n : 1);
	Animate3d__V1__DownloadLink *m;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(&l->base, buf);
	m = animate3d__v1__download_link__unpack(NULL, n, buf);
	free(buf);
	return m;
}

/* One waiter answered: link (borrowed; NULL = not found) or fail (NULL = none). The call
 * replies once every slot is answered, or at the first error. */
static void dl_answer(struct dl_waiter *w, const Animate3d__V1__DownloadLink *link,
		      const struct gw_up_failure *fail)
{
	struct dl_op *op = w->op;

	op->left--;
	if (fail && !op->failed) {
		op->failed = 1;
		op->fail = *fail;
	} else if (link && !(w->link = dl_link_copy(link)) && !op->failed) {
		op->failed = 1;
		op->fail.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		op->fail.retry_ms = 1000;
		snprintf(op->fail.msg, sizeof op->fail.msg, "GetDownloadUrls: out of memory");
	}
	if (op->left == 0 || op->failed)
		dl_op_finish(op);
}

/* ---- fetches ---- */

static const Animate3d__V1__DownloadLink *dl_find(const Animate3d__V1__GetDownloadUrlsResponse *resp,
						   const char *rid)
{
	for (size_t i = 0; resp && i < resp->n_links; i++)
		if (resp->links[i] && resp->links[i]->rid && strcmp(resp->links[i]->rid, rid) == 0)
			return resp->links[i];
	return NULL;
}

/* Ends fetch f: hands each record's answer to its waiters (resp NULL with fail NULL: none
 * known), frees the records and f. Callbacks may free other waiters of these records. */
static void dl_arm(struct gw_download_ctx *x, int64_t due);

/* 1 when w's call still has time after a fetch ran out of it: it has no deadline, or one later
 * than the fetch's (it joined while the fetch flew). Such waiters go out again. */
static int dl_outlives(const struct dl_waiter *w)
{
	int64_t left = gw_call_time_left_ms(w->op->c);

	return left < 0 || left > GW_DOWNLOAD_DEADLINE_MARGIN_MS;
}

/* A fetch of r timed out: r's waiters whose calls still have time move to a new record of the
 * rid, queued for the next batch (which carries their deadlines); the others get the error.
 * Each round covers a later deadline, so this ends. Frees r. */
static void dl_requeue(struct gw_download_ctx *x, struct dl_rec *r, const struct gw_up_failure *fail)
{
	struct dl_waiter keep, *w;
	struct dl_rec *nr = NULL;
	size_t acct = r->acct;

	keep.prev = keep.next = &keep;
	while ((w = r->waiters.next) != &r->waiters) {
		dl_unwait(w);
		if (!dl_outlives(w)) {
			dl_answer(w, NULL, fail);
			continue;
		}
		w->prev = keep.prev;	/* parked on keep; w->rec stays NULL while parked */
		w->next = &keep;
		keep.prev->next = w;
		keep.prev = w;
	}
	if (keep.next != &keep) {
		char rid[GW_TR_RID_MAX + 1];

		snprintf(rid, sizeof rid, "%s", r->rid);
		dl_rec_free(x, r);
		r = NULL;
		nr = dl_rec_new(x, acct, rid);
	}
	while ((w = keep.next) != &keep) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		w->prev = w->next = NULL;
		if (nr) {
			dl_wait(nr, w);
			x->cnt.requeued++;
		} else {
			dl_answer(w, NULL, fail);
		}
	}
	if (r)
		dl_rec_free(x, r);
	if (nr)
		dl_arm(x, x->accts[acct].due_ms);
}

static void dl_fetch_end(struct dl_fetch *f, const Animate3d__V1__GetDownloadUrlsResponse *resp,
			 const struct gw_up_failure *fail)
{
	struct gw_download_ctx *x = f->x;

	f->prev->next = f->next;
	f->next->prev = f->prev;
	for (size_t i = 0; i < f->n; i++) {
		struct dl_rec *r = f->recs[i];
		const Animate3d__V1__DownloadLink *l = fail ? NULL : dl_find(resp, r->rid);
		struct dl_waiter *w;

		/* Timed out on its waiters' latest deadline: the ones it did not cover go again. A
		 * fetch on the default timeout covered everybody. */
		if (fail && fail->code == GRPC_STATUS_DEADLINE_EXCEEDED && f->timeout_ms > 0) {
			dl_requeue(x, r, fail);
			continue;
		}
		while ((w = r->waiters.next) != &r->waiters) {
			dl_unwait(w);
			dl_answer(w, l, fail);
		}
		dl_rec_free(x, r);
	}
	free(f);
}

static void dl_fetch_done(void *arg, const struct gw_up_response *res)
{
	struct dl_fetch *f = arg;
	struct gw_download_ctx *x = f->x;
	Animate3d__V1__GetDownloadUrlsRequest req = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	Animate3d__V1__GetDownloadUrlsResponse *resp = NULL;
	ProtobufCMessage *reply = NULL;
	char *rids[GW_DOWNLOAD_MAX_BATCH];
	char err[GW_TR_ERR_MAX];
	struct gw_up_failure fail;
	int64_t now_s = (int64_t)time(NULL);

	f->up = NULL;
	/* Every call waiting on the batch counts the one request in its access line, once. */
	for (size_t i = 0; i < f->n; i++)
		for (struct dl_waiter *w = f->recs[i]->waiters.next; w != &f->recs[i]->waiters;
		     w = w->next)
			if (w->op->counted != f) {
				w->op->counted = f;
				gw_call_count_upstream(w->op->c);
			}
	if (gw_up_failure_of(res, "GetDownloadUrls", &fail) == GRPC_STATUS_NOT_FOUND) {
		dl_fetch_end(f, NULL, NULL);	/* none of the rids known upstream */
		return;
	}
	if (fail.code != GRPC_STATUS_OK) {
		x->cnt.fetch_errors++;
		dl_fetch_end(f, NULL, &fail);
		return;
	}
	for (size_t i = 0; i < f->n; i++)
		rids[i] = f->recs[i]->rid;
	req.rids = rids;
	req.n_rids = f->n;
	err[0] = '\0';
	if (gw_tr_parse_get_download_urls(&req.base, res->body, res->body_len, &reply, err,
					  sizeof err) != GW_TR_OK) {
		x->cnt.fetch_errors++;
		fail.code = GRPC_STATUS_UNAVAILABLE;
		fail.retry_ms = -1;
		snprintf(fail.msg, sizeof fail.msg,
			 "GetDownloadUrls: upstream sent an unexpected answer: %s", err);
		dl_fetch_end(f, NULL, &fail);
		return;
	}
	resp = (Animate3d__V1__GetDownloadUrlsResponse *)reply;
	/* Cached before anyone is answered: a caller that asks again from its callback hits. Not
	 * when a rid was restarted meanwhile (StartJob with mp_detection_rid reuses the rid): the
	 * answer may hold the detection run's links, which must not outlive it. */
	for (size_t j = 0; j < resp->n_links && gw_cache_forgets(x->cache) == f->forgets; j++)
		gw_cache_link_put(x->cache, f->acct, resp->links[j], now_s);
	dl_fetch_end(f, resp, NULL);
	protobuf_c_message_free_unpacked(reply, NULL);
}

/* The latest deadline (ms from now) of the calls waiting on recs[0..n), or 0 when one has none:
 * the configured default timeout then applies. */
static long dl_batch_timeout(struct dl_rec **recs, size_t n)
{
	int64_t latest = 0;

	for (size_t i = 0; i < n; i++)
		for (struct dl_waiter *w = recs[i]->waiters.next; w != &recs[i]->waiters; w = w->next) {
			int64_t left = gw_call_time_left_ms(w->op->c);

			if (left < 0)
				return 0;
			if (left > latest)
				latest = left;
		}
	return latest > 0 ? (long)latest : 1;
}

/* The trace the batch recs[0..n) goes upstream under: its first waiting call's (one request
 * answers them all). */
static const struct gw_trace *dl_batch_trace(struct dl_rec **recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (struct dl_waiter *w = recs[i]->waiters.next; w != &recs[i]->waiters; w = w->next)
			if (w->op && w->op->c)
				return gw_call_trace(w->op->c);
	return NULL;
}

/* Starts one GET /download for recs[0..n) (unlinked from the pending list). When it cannot
 * start, their waiters get UNAVAILABLE. */
static void dl_start(struct gw_download_ctx *x, size_t acct, struct dl_rec **recs, size_t n)
{
	Animate3d__V1__GetDownloadUrlsRequest req = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	struct dl_fetch *f = calloc(1, sizeof *f + n * sizeof *recs);
	char *rids[GW_DOWNLOAD_MAX_BATCH];
	struct gw_tr_request tr = { 0 };
	struct gw_up_failure fail;
	struct gw_up_request rq;
	char err[GW_TR_ERR_MAX];

	if (!f)
		goto not_started;
	f->x = x;
	f->forgets = gw_cache_forgets(x->cache);
	f->acct = acct;
	f->n = n;
	memcpy(f->recs, recs, n * sizeof *recs);
	for (size_t i = 0; i < n; i++)
		rids[i] = recs[i]->rid;
	req.rids = rids;
	req.n_rids = n;
	if (gw_tr_build_get_download_urls(&req.base, &tr, err, sizeof err) != GW_TR_OK)
		goto not_started;
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.timeout_ms = f->timeout_ms = dl_batch_timeout(recs, n);
	rq.idempotent = 1;
	rq.route = DL_ROUTE;
	rq.trace = dl_batch_trace(recs, n);
	f->up = gw_up_start(x->env->up, &x->env->accounts[acct].up, &rq, dl_fetch_done, f);
	gw_tr_request_clear(&tr);
	if (!f->up)
		goto not_started;
	x->cnt.fetches++;
	x->cnt.batched += n;
	f->prev = &x->flying;
	f->next = x->flying.next;
	x->flying.next->prev = f;
	x->flying.next = f;
	return;
not_started:
	gw_tr_request_clear(&tr);
	x->cnt.start_failed++;
	memset(&fail, 0, sizeof fail);
	fail.code = GRPC_STATUS_UNAVAILABLE;
	fail.retry_ms = -1;
	snprintf(fail.msg, sizeof fail.msg, "GetDownloadUrls: upstream request could not be started");
	if (f) {
		f->prev = f->next = f;	/* dl_fetch_end unlinks it from itself */
		dl_fetch_end(f, NULL, &fail);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct dl_waiter *w;

		while ((w = recs[i]->waiters.next) != &recs[i]->waiters) {
			dl_unwait(w);
			dl_answer(w, NULL, &fail);
		}
		dl_rec_free(x, recs[i]);
	}
}

/* Sends account acct's pending rids in batch_max-sized requests. Records nobody waits for any
 * more (their calls were cancelled) are dropped instead. */
static void dl_flush(struct gw_download_ctx *x, size_t acct)
{
	struct dl_acct *a = &x->accts[acct];
	struct dl_rec *batch[GW_DOWNLOAD_MAX_BATCH], *r;
	size_t n = 0;

	while ((r = a->qhead) != NULL) {
		a->qhead = r->qnext;
		r->qnext = NULL;
		if (r->waiters.next == &r->waiters) {
			dl_rec_free(x, r);
			continue;
		}
		batch[n++] = r;
		if (n == x->batch_max) {
			dl_start(x, acct, batch, n);
			n = 0;
		}
	}
	a->qtail = NULL;
	a->nq = 0;
	a->due_ms = INT64_MAX;
	if (n)
		dl_start(x, acct, batch, n);
}

static void dl_arm(struct gw_download_ctx *x, int64_t due)
{
	int64_t d = due - dl_now_ms();
	struct timeval tv;

	if (!x->ev_batch || due >= x->armed_ms)
		return;
	if (d < 0)
		d = 0;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	if (event_add(x->ev_batch, &tv) == 0)
		x->armed_ms = due;
}

static void dl_on_batch(evutil_socket_t fd, short what, void *arg)
{
	struct gw_download_ctx *x = arg;
	int64_t now = dl_now_ms(), next = INT64_MAX;

	(void)fd;
	(void)what;
	x->armed_ms = INT64_MAX;
	for (size_t i = 0; i < x->naccts; i++)
		if (x->accts[i].nq && x->accts[i].due_ms <= now)
			dl_flush(x, i);
	for (size_t i = 0; i < x->naccts; i++)
		if (x->accts[i].nq && x->accts[i].due_ms < next)
			next = x->accts[i].due_ms;
	if (next != INT64_MAX)
		dl_arm(x, next);
}

/* ---- the handler ---- */

/* 1 when rids[i] appeared before i. */
static int dl_dup(char **rids, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(rids[j], rids[i]) == 0)
			return 1;
	return 0;
}

static void dl_admitted(struct gw_call *c, const ProtobufCMessage *admitted_req,
			struct gw_rpc_owner_view *admitted)
{
	struct gw_download_ctx *x = gw_call_svc(c);
	const struct gw_tr_rpc *row = &gw_call_method(c)->tr;
	const Animate3d__V1__GetDownloadUrlsRequest *req;
	struct gw_rpc_owner_view view = *admitted;
	struct gw_tr_request tr = { 0 };
	struct dl_op *op = NULL;
	struct gw_up_account *acct;
	char err[GW_TR_ERR_MAX];
	int64_t now_s = (int64_t)time(NULL);
	int rc;

	/* Admitted by ownership (gw_rpc_owner_admit): only the tenant's rids are left, so nothing
	 * below, the cache included, ever looks at a rid this caller may not see. */
	req = (const Animate3d__V1__GetDownloadUrlsRequest *)(const void *)admitted_req;
	*admitted = (struct gw_rpc_owner_view){ 0 };	/* ours now */
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
	if (!acct || acct->idx >= x->naccts) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetDownloadUrls: tenant has no upstream account");
		goto out;
	}
	if (gw_call_time_left_ms(c) == 0) {
		gw_call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED,
			     "GetDownloadUrls: deadline exceeded before the upstream call");
		goto out;
	}
	op = calloc(1, sizeof *op + req->n_rids * sizeof op->slot[0]);
	if (!op) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetDownloadUrls: out of memory");
		goto out;
	}
	op->c = c;
	op->x = x;
	x->cnt.calls++;
	for (size_t i = 0; i < req->n_rids; i++) {
		struct dl_waiter *w;

		if (dl_dup(req->rids, i))
			continue;
		w = &op->slot[op->n++];
		w->op = op;
		w->rid = req->rids[i];
		if (gw_cache_link_get(x->cache, acct->idx, w->rid, now_s, &w->link) != 1)
			op->left++;
	}
	/* The misses wait on the rid's record: a fetch queued or in flight, or a new one queued. */
	for (size_t i = 0; i < op->n && op->left; i++) {
		struct dl_waiter *w = &op->slot[i];
		struct dl_rec *r;

		if (w->link)
			continue;
		x->cnt.wants++;
		r = dl_rec_find(x, acct->idx, w->rid);
		if (r)
			x->cnt.coalesced++;
		else if (!(r = dl_rec_new(x, acct->idx, w->rid))) {
			dl_op_free(op);
			op = NULL;
			gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED, 1000,
					   "GetDownloadUrls: too many download links in flight, retry later");
			goto out;
		}
		dl_wait(r, w);
	}
	if (op->left == 0) {
		dl_op_finish(op);	/* every link from the cache */
		goto out;
	}
	dl_arm(x, x->accts[acct->idx].due_ms);
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, dl_op_cancel);
out:
	gw_rpc_owner_view_clear(&view);	/* the rids are the call's request's, or copied */
}

void gw_download_rpc(struct gw_call *c)
{
	gw_rpc_owner_admit(c, dl_admitted);
}

/* ---- metrics ---- */

static void dl_metrics(void *state, struct gw_metrics_out *o)
{
	static const struct {
		const char *name, *help, *type;
		size_t off;
		int cache;		/* 1: gw_cache_counters, 0: gw_download_counters */
	} rows[] = {
		{ "download_calls_total", "GetDownloadUrls calls that reached the link cache.",
		  "counter", offsetof(struct gw_download_counters, calls), 0 },
		{ "download_cache_hits_total", "Download links served from the link cache.", "counter",
		  offsetof(struct gw_cache_counters, link_hits), 1 },
		{ "download_cache_misses_total",
		  "Download links not in the link cache (absent, or too close to their expiry).",
		  "counter", offsetof(struct gw_cache_counters, link_misses), 1 },
		{ "download_cache_stores_total", "Download links stored in the link cache.", "counter",
		  offsetof(struct gw_cache_counters, link_stores), 1 },
		{ "download_cache_uncacheable_total",
		  "Download links not cached: no readable URL expiry, or expiring within the margin.",
		  "counter", offsetof(struct gw_cache_counters, link_uncacheable), 1 },
		{ "download_cache_refused_total",
		  "Download links not cached: larger than the link cache's byte limit.", "counter",
		  offsetof(struct gw_cache_counters, link_refused), 1 },
		{ "download_cache_evictions_total",
		  "Download links evicted (LRU) for the entry or byte limit.", "counter",
		  offsetof(struct gw_cache_counters, link_evictions), 1 },
		{ "download_cache_entries", "Download links cached.", "gauge",
		  offsetof(struct gw_cache_counters, link_entries), 1 },
		{ "download_cache_bytes", "Bytes held by cached download links.", "gauge",
		  offsetof(struct gw_cache_counters, link_bytes), 1 },
		{ "download_wants_total", "Link cache misses sent to the batcher.", "counter",
		  offsetof(struct gw_download_counters, wants), 0 },
		{ "download_coalesced_total",
		  "Misses that joined a queued or in-flight GET /download of the same rid.", "counter",
		  offsetof(struct gw_download_counters, coalesced), 0 },
		{ "download_fetches_total", "GET /download requests sent upstream.", "counter",
		  offsetof(struct gw_download_counters, fetches), 0 },
		{ "download_batched_rids_total", "Rids carried by those requests.", "counter",
		  offsetof(struct gw_download_counters, batched), 0 },
		{ "download_fetch_errors_total", "GET /download requests that ended with an error.",
		  "counter", offsetof(struct gw_download_counters, fetch_errors), 0 },
		{ "download_start_failed_total", "GET /download requests that could not be started.",
		  "counter", offsetof(struct gw_download_counters, start_failed), 0 },
		{ "download_rejected_total", "Misses refused: too many rids queued or in flight.",
		  "counter", offsetof(struct gw_download_counters, rejected), 0 },
		{ "download_requeued_total",
		  "Calls sent out again after a shorter deadline's GET /download timed out.", "counter",
		  offsetof(struct gw_download_counters, requeued), 0 },
		{ "download_tracked", "Rids queued or in flight for GET /download.", "gauge",
		  offsetof(struct gw_download_counters, tracked), 0 },
	};
	const struct gw_download_ctx *x = state;
	const void *cc = gw_cache_counters(x->cache);

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)(rows[i].cache ? cc : (const void *)&x->cnt) + rows[i].off,
		       sizeof v);
		gw_metrics_one(o, rows[i].name, rows[i].type, rows[i].help, v);
	}
}

/* ---- the service ---- */

static void dl_ctx_free(struct gw_download_ctx *x)
{
	struct dl_fetch *f, *fn;

	if (!x)
		return;
	/* Calls are gone before services are freed: no waiter is left to tell. The fetches in
	 * flight are cancelled (their callbacks never run), then every record goes. */
	for (f = x->flying.next; f && f != &x->flying; f = fn) {
		fn = f->next;
		gw_up_cancel(f->up);
		free(f);
	}
	for (size_t i = 0; i < GW_DOWNLOAD_BUCKETS; i++) {
		struct dl_rec *r = x->buckets[i], *rn;

		for (; r; r = rn) {
			rn = r->hnext;
			while (r->waiters.next != &r->waiters) {
				struct dl_waiter *w = r->waiters.next;

				r->waiters.next = w->next;
				w->prev = w->next = NULL;
				w->rec = NULL;
			}
			free(r);
		}
	}
	if (x->ev_batch)
		event_free(x->ev_batch);
	free(x->accts);
	free(x);
}

static int dl_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	const struct gw_config *cfg = env->cfg;
	struct gw_download_ctx *x = calloc(1, sizeof *x);

	if (!x)
		goto oom;
	x->env = env;
	x->cache = gw_status_ctx_cache(gw_status_ctx_of(env));
	if (!x->cache) {
		snprintf(err, errlen, "needs the status service's cache (registered before it)");
		free(x);
		return -1;
	}
	x->naccts = env->naccounts;
	x->accts = calloc(x->naccts ? x->naccts : 1, sizeof *x->accts);
	if (!x->accts)
		goto oom;
	for (size_t i = 0; i < x->naccts; i++)
		x->accts[i].due_ms = INT64_MAX;
	x->flying.prev = x->flying.next = &x->flying;
	x->armed_ms = INT64_MAX;
	x->batch_max = cfg->cache.batch_max ? cfg->cache.batch_max : GW_DOWNLOAD_MAX_BATCH;
	if (x->batch_max > GW_DOWNLOAD_MAX_BATCH)
		x->batch_max = GW_DOWNLOAD_MAX_BATCH;
	x->window_ms = cfg->cache.batch_window_ms > 0 ? cfg->cache.batch_window_ms : 0;
	x->ev_batch = evtimer_new(env->base, dl_on_batch, x);
	if (!x->ev_batch)
		goto oom;
	*state = x;
	return 0;
oom:
	dl_ctx_free(x);
	snprintf(err, errlen, "cannot start the download batcher (out of memory)");
	return -1;
}

static void dl_free(void *state)
{
	dl_ctx_free(state);
}

const struct gw_svc gw_svc_download = {
	.name = "download",
	.init = dl_init,
	.free = dl_free,
	.metrics = dl_metrics,
};
