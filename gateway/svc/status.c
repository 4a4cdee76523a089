/*
 * status: the gateway side of the status module (see status.h): the server's context (cache,
 * batcher, WatchStatus streams) and its lifecycle, the GetStatus / WatchStatus handlers with the
 * cached fast path, and the metrics. The batcher is in status_batch.c, the watchers in
 * status_watch.c; their shared internals in status_int.h. GetDownloadUrls is download.c's.
 */
#include "gateway/svc/status_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <grpc/status.h>

#include "gateway/api/cache.h"
#include "gateway/api/translate.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/caps.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/svc/status_share.h"
#include "gateway/upstream/upstream.h"
#include "auth/upstream/session.h"

/* ---- the gateway side ---- */

struct status_watch_op;

struct gw_status_ctx {
	struct gw_env *env;
	struct gw_cache *cache;
	struct gw_status *status;
	struct status_watch_op *streams;	/* open WatchStatus calls (for the drain) */
	size_t nstreams;
	uint64_t streams_refused;
	/* Open streams per tenant, with the per-tenant and global caps (watch.*, issue 13): one
	 * tenant cannot take every slot. Keeps refusal counts per tenant for /metrics. */
	struct gw_slots slots;
	struct gw_lograte refusals_log;
	/* Shared with the other replicas through Redis (NULL without redis:). */
	struct gw_status_share *share;
	const char **account_names;	/* by account index, for the shared keys */
	/* Who else hears of finals (the job follower): gw_status_ctx_on_final. */
	gw_status_final_fn final_fn;
	void *final_fn_arg;
};

/* What a WatchStatus refusal names (gateway/svc/caps.h). */
static const struct gw_caps_what status_watch_caps = {
	"WatchStatus", "watch_streams", "streams", "tenant",
	"tenants[].limits.watch_streams or watch.max_streams_per_tenant", "watch.max_streams"
};

static void status_ctx_free(struct gw_status_ctx *x)
{
	if (!x)
		return;
	/* The top frees services before the upstream engine: fetches in flight are cancelled
	 * through the transport (gw_status_upstream_cancel), their callbacks never run. */
	gw_status_share_free(x->share);
	gw_status_free(x->status);
	gw_cache_free(x->cache);
	gw_slots_free(&x->slots);
	free(x->account_names);
	free(x);
}

/* The status module's on_final hook: shared when Redis is configured. */
static void status_on_final(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	struct gw_status_ctx *x = arg;

	if (x->share)
		gw_status_share_final(x->share, acct, st);
	if (x->final_fn)
		x->final_fn(x->final_fn_arg, acct, st, 0);
}

void gw_status_ctx_on_final(struct gw_status_ctx *x, gw_status_final_fn fn, void *arg)
{
	if (!x)
		return;
	x->final_fn = fn;
	x->final_fn_arg = arg;
}

/* A final another replica read upstream and published (the share applies only those). */
static int status_apply(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	struct gw_status_ctx *x = arg;
	int rc = gw_status_apply(x->status, acct, st);

	if (rc >= 0 && x->final_fn && gw_cache_state_final((int)st->state))
		x->final_fn(x->final_fn_arg, acct, st, 1);
	return rc;
}

static int status_forget(void *arg, size_t acct, const char *rid)
{
	struct gw_status_ctx *x = arg;

	return gw_status_forget(x->status, acct, rid);
}

static int status_apply_aged(void *arg, size_t acct, const Animate3d__V1__JobStatus *st,
			     int64_t age_ms, int only_tracked)
{
	struct gw_status_ctx *x = arg;

	return gw_status_apply_aged(x->status, acct, st, age_ms, only_tracked);
}

/* The batcher's cluster hooks (set only with Redis): forwarded to the share once it exists. */
static void *status_claim(void *arg, size_t acct, const char *const *rids, size_t n,
			  struct gw_status_claim *c)
{
	struct gw_status_ctx *x = arg;

	return x->share ? gw_status_share_claim(x->share, acct, rids, n, c) : NULL;
}

_Static_assert(GW_STATUS_SHARE_WAIT == GW_STATUS_CLAIM_WAIT, "claim verdicts differ");

static void status_claim_done(struct gw_status_claim *c, int ok, int64_t wait_ms,
			      const unsigned char *verdict, const char *const *extra, size_t nextra)
{
	struct gw_status_claim_result res = { .ok = ok, .wait_ms = wait_ms, .verdict = verdict,
					      .extra = extra, .nextra = nextra };

	gw_status_claim_done(c, &res);
}

static void status_claim_cancel(void *arg, void *handle)
{
	(void)arg;
	gw_status_share_claim_cancel(NULL, handle);
}

static void status_polled(void *arg, size_t acct, const Animate3d__V1__JobStatus *const *st, size_t n)
{
	struct gw_status_ctx *x = arg;

	if (x->share)
		gw_status_share_polled(x->share, acct, st, n);
}

/* The shared statuses (Redis configured): 0, or -1 (logged). Without Redis: 0, nothing. */
static int status_ctx_share(struct gw_status_ctx *x, struct gw_env *env)
{
	struct gw_status_share_opts so = { 0 };
	char err[256];

	if (!env->redis)
		return 0;
	x->account_names = calloc(env->naccounts ? env->naccounts : 1, sizeof *x->account_names);
	if (!x->account_names)
		return -1;
	for (size_t i = 0; i < env->naccounts; i++)
		x->account_names[i] = gw_session_name(&env->accounts[i]);
	so.redis = env->redis;
	so.apply = status_apply;
	so.forget = status_forget;
	so.apply_aged = status_apply_aged;
	so.claim_done = status_claim_done;
	so.ttl_ms = env->cfg->cache.status_ttl_ms;
	so.apply_arg = x;
	so.instance = env->instance;
	so.accounts = x->account_names;
	so.naccounts = env->naccounts;
	x->share = gw_status_share_new(&so, err, sizeof err);
	if (!x->share) {
		gw_log(GW_LOG_ERROR, "status", GW_LS("msg", err), GW_LEND);
		return -1;
	}
	return 0;
}

static int status_ctx_start(struct gw_status_ctx *x, struct gw_env *env)
{
	const struct gw_config *cfg = env->cfg;
	struct gw_status_opts o = { 0 };

	x->env = env;
	x->cache = gw_cache_new(cfg->cache.max_entries, cfg->cache.status_ttl_ms);
	if (!x->cache)
		goto fail;
	o.naccounts = env->naccounts;
	o.batch_max = cfg->cache.batch_max > GW_STATUS_MAX_BATCH ? GW_STATUS_MAX_BATCH
								 : cfg->cache.batch_max;
	o.window_ms = cfg->cache.batch_window_ms > 0 ? cfg->cache.batch_window_ms : 0;
	o.ttl_ms = cfg->cache.status_ttl_ms;
	o.base = env->base;
	o.start = gw_status_upstream_start;
	o.cancel = gw_status_upstream_cancel;
	o.hold = gw_status_upstream_hold;
	o.transport_arg = env;
	o.on_final = status_on_final;
	o.final_arg = x;
	if (env->redis) {
		o.claim = status_claim;
		o.claim_cancel = status_claim_cancel;
		o.claim_max = GW_STATUS_SHARE_CLAIM_MAX;
		o.on_polled = status_polled;
		o.cluster_arg = x;
	}
	x->status = gw_status_new(&o, x->cache);
	if (!x->status || status_ctx_share(x, env) != 0)
		goto fail;
	/* Tenants persist across reloads by name; twice the configurable maximum leaves room for
	 * renamed ones still holding streams. */
	if (gw_slots_init(&x->slots, 2 * GW_CONFIG_MAX_TENANTS, 1) != 0)
		goto fail;
	return 0;
fail:
	gw_status_share_free(x->share);
	x->share = NULL;
	free(x->account_names);
	x->account_names = NULL;
	gw_status_free(x->status);
	x->status = NULL;
	gw_cache_free(x->cache);
	x->cache = NULL;
	return -1;
}

struct gw_status_ctx *gw_status_ctx_of(const struct gw_env *env)
{
	return gw_env_svc(env, &gw_svc_status);
}

struct gw_cache *gw_status_ctx_cache(struct gw_status_ctx *x)
{
	return x ? x->cache : NULL;
}

struct gw_status *gw_status_ctx_status(struct gw_status_ctx *x)
{
	return x ? x->status : NULL;
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
	struct gw_tr_request tr = { 0 };
	char err[GW_TR_ERR_MAX];
	size_t n = 0, i = 0;
	char **rids = NULL;
	int rc;

	/* The common case without building a path: a valid request carrying rids (translate knows
	 * which messages do). Anything else goes through the row for its exact message. */
	(void)gw_tr_rids_of(req, &n, &rids);	/* another message leaves n at 0 */
	while (i < n && n <= GW_TR_MAX_RIDS && gw_tr_rid_valid(rids[i]))
		i++;
	if (n >= 1 && n <= GW_TR_MAX_RIDS && i == n)
		return 0;
	err[0] = '\0';
	rc = gw_tr_build_get_status(req, &tr, err, sizeof err);
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
	struct gw_status_ctx *x;
	size_t acct;
	int64_t deadline;
	struct gw_status_share_lookup *lookup;	/* the misses asked of Redis first, or NULL */
	size_t n, left;
	int code;			/* first error other than NOT_FOUND */
	long retry_ms;
	char msg[GW_STATUS_MSG_MAX];
	struct status_get_slot slot[];
};

static void status_get_free(struct status_get_op *op)
{
	gw_status_share_lookup_cancel(op->lookup);
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
	struct gw_cache_hit *hit[GW_TR_MAX_RIDS];
	size_t total = 0, off = 0;
	int64_t now = gw_status_now(x->status);
	uint8_t vb[10];
	uint8_t *buf;
	grpc_slice reply;
	int state = 0;

	if (req->n_rids == 0 || req->n_rids > GW_TR_MAX_RIDS)
		return -1;
	for (size_t i = 0; i < req->n_rids; i++) {
		len[i] = 0;
		hit[i] = NULL;
		if (status_dup(req->rids, i))
			continue;
		hit[i] = gw_cache_find_packed(x->cache, acct, req->rids[i], now, &len[i]);
		if (!hit[i])
			return -1;
		total += 1 + gw_cache_varint_put(vb, len[i]) + len[i];
	}
	/* Written in place in the slice the reply is sent from: no copy. */
	reply = grpc_slice_malloc(total);
	buf = GRPC_SLICE_START_PTR(reply);
	for (size_t i = 0; i < req->n_rids; i++) {
		if (!len[i])
			continue;
		buf[off++] = 0x0a;
		off += gw_cache_varint_put(buf + off, len[i]);
		/* Nothing changed the cache since the hits were found (touches are not the cache's). */
		off += gw_cache_take_packed(x->cache, hit[i], buf + off, &state);
		if (!gw_cache_state_final(state))
			gw_status_touch(x->status, acct, req->rids[i]);
	}
	gw_call_reply_slice(c, reply);	/* off == total: the sizes above were exact */
	return 0;
}

/* The misses of op (slots with rid set) go upstream through the batcher: refused at once when
 * the account would hold them back past the deadline (Retry-After pause, full queue, open
 * circuit), as the other RPCs are. Replies when nothing is left to wait for. */
static void status_get_misses(struct status_get_op *op)
{
	struct gw_status_ctx *x = op->x;
	struct gw_call *c = op->c;
	long retry_ms;
	int code;

	if (op->left && gw_status_check(x->status, op->acct, op->deadline, &code, &retry_ms, op->msg,
					sizeof op->msg)) {
		gw_call_on_cancel(c, NULL);
		gw_call_set_data(c, NULL);
		gw_call_fail_retry(c, (grpc_status_code)code, retry_ms, op->msg);
		status_get_free(op);
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct status_get_slot *sl = &op->slot[i];

		if (!sl->rid)
			continue;
		sl->w.done = status_get_done;
		sl->w.deadline_ms = op->deadline;
		sl->w.trace = gw_call_trace(c);
		if (gw_status_want(x->status, op->acct, sl->rid, &sl->w) != 0) {
			gw_call_on_cancel(c, NULL);
			gw_call_set_data(c, NULL);
			status_get_free(op);
			gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED, 1000,
					   "GetStatus: too many job statuses in flight, retry later");
			return;
		}
		sl->waiting = 1;
	}
	if (op->left == 0)
		status_get_finish(op);
}

/* The shared cache answered (hits are in the local cache now): serve them, the rest upstream.
 * Every miss is looked up in the local cache again, hits or not: while the MGET was out, the
 * poll of this window (ours, or another replica's, applied from its message) may have
 * refreshed it, and wanting it now would poll upstream a second time in the same window. */
static void status_get_found(void *arg, size_t hits)
{
	struct status_get_op *op = arg;
	int64_t now = gw_status_now(op->x->status);

	(void)hits;
	op->lookup = NULL;
	for (size_t i = 0; i < op->n; i++) {
		struct status_get_slot *sl = &op->slot[i];

		if (!sl->rid || gw_cache_get(op->x->cache, op->acct, sl->rid, now, &sl->st) != 1)
			continue;
		sl->rid = NULL;
		op->left--;
	}
	status_get_misses(op);
}

static void status_get_admitted(struct gw_call *c, const ProtobufCMessage *admitted_req,
			       struct gw_rpc_owner_view *admitted)
{
	struct gw_status_ctx *x = gw_call_svc(c);
	const Animate3d__V1__GetStatusRequest *req;
	struct status_get_op *op = NULL;
	struct gw_up_account *acct;
	int64_t now, left, deadline = 0;

	/* Admitted by ownership (gw_rpc_owner_admit): only the tenant's rids are left. */
	req = (const Animate3d__V1__GetStatusRequest *)(const void *)admitted_req;
	if (!req)
		goto out;
	/* All cached: replied from the cache's bytes. Only rids fetched before are cached, and the
	 * call's decoder let them through then, so the row's checks below are for the rest, before
	 * anything goes upstream (their answers unchanged: a rid the row refuses is never cached). */
	acct = gw_call_account(c);
	if (acct && status_get_cached(x, c, acct->idx, req) == 0)
		goto out;
	if (status_validate(c, &req->base) != 0)
		goto out;
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "GetStatus: tenant has no upstream account");
		goto out;
	}
	op = calloc(1, sizeof *op + req->n_rids * sizeof op->slot[0]);
	if (!op) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetStatus: out of memory");
		goto out;
	}
	op->c = c;
	op->retry_ms = -1;
	now = gw_status_now(x->status);
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
	op->x = x;
	op->acct = acct->idx;
	op->deadline = deadline;
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, status_get_cancel);
	/* Several replicas: the misses are looked up in the shared cache first (the finals
	 * another replica read); whatever is not there, or Redis down, goes upstream. */
	if (op->left && x->share) {
		const char *miss[GW_TR_MAX_RIDS];
		size_t nmiss = 0;

		for (size_t i = 0; i < op->n; i++)
			if (op->slot[i].rid)
				miss[nmiss++] = op->slot[i].rid;
		op->lookup = gw_status_share_lookup(x->share, op->acct, miss, nmiss, status_get_found, op);
		if (op->lookup)
			goto out;	/* the rids were copied by the lookup; the slots keep theirs */
	}
	status_get_misses(op);
out:
	/* Ours to clear (it lives until we return): the rids were copied where they are still
	 * needed. Not copied first: a view is a few hundred bytes, and polling leaves it empty. */
	gw_rpc_owner_view_clear(admitted);
}

void gw_status_rpc_get(struct gw_call *c)
{
	gw_rpc_owner_admit(c, status_get_admitted);
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
	char tenant[GW_SLOTS_NAME_MAX + 1];	/* holds one of x->slots */
	struct status_watch_rid r[];
};

static void status_watch_free(struct status_watch_op *op)
{
	struct gw_status_ctx *x = op->x;

	gw_slots_give(&x->slots, op->tenant);

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

/* Takes one of the tenant's stream slots: the tenant's own cap (tenants[].limits.watch_streams,
 * else watch.max_streams_per_tenant, else a fair share of watch.max_streams) and the global
 * one, from the current configuration. 0, or -1 with c finished RESOURCE_EXHAUSTED. */
static int status_watch_admit(struct gw_status_ctx *x, struct gw_call *c)
{
	const struct gw_config *cfg = x->env->cfg;
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	unsigned global = cfg->watch.max_streams ? cfg->watch.max_streams : GW_STATUS_MAX_WATCH_STREAMS;
	unsigned cap = gw_config_tenant_cap(cfg, t->limits.watch_streams, cfg->watch.max_streams_per_tenant,
					    global);
	enum gw_slots_verdict v = gw_slots_take(&x->slots, t->name, cap, global);

	if (v == GW_SLOTS_OK)
		return 0;
	x->streams_refused++;
	gw_caps_refuse(c, &x->refusals_log, gw_status_now(x->status), &status_watch_caps, t->name, v,
		       v == GW_SLOTS_NAME_FULL ? gw_slots_held(&x->slots, t->name) : x->slots.used,
		       v == GW_SLOTS_NAME_FULL ? cap : global);
	return -1;
}

static void status_watch_admitted(struct gw_call *c, const ProtobufCMessage *admitted_req,
			       struct gw_rpc_owner_view *admitted)
{
	struct gw_status_ctx *x = gw_call_svc(c);
	const Animate3d__V1__WatchStatusRequest *req;
	struct gw_rpc_owner_view view = *admitted;
	struct status_watch_op *op = NULL;
	struct gw_up_account *acct;
	int64_t now;

	/* Admitted by ownership (gw_rpc_owner_admit): only the tenant's rids are left. */
	req = (const Animate3d__V1__WatchStatusRequest *)(const void *)admitted_req;
	*admitted = (struct gw_rpc_owner_view){ 0 };	/* ours now */
	if (!req || status_validate(c, &req->base) != 0)
		goto out;
	acct = gw_call_account(c);
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "WatchStatus: tenant has no upstream account");
		goto out;
	}
	if (x->env->draining) {
		x->streams_refused++;
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "WatchStatus: server is shutting down");
		goto out;
	}
	if (status_watch_admit(x, c) != 0)
		goto out;
	op = calloc(1, sizeof *op + req->n_rids * sizeof op->r[0]);
	if (!op) {
		gw_slots_give(&x->slots, gw_call_tenant(c)->name);
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "WatchStatus: out of memory");
		goto out;
	}
	snprintf(op->tenant, sizeof op->tenant, "%s", gw_call_tenant(c)->name);
	op->c = c;
	op->x = x;
	op->next = x->streams;
	if (x->streams)
		x->streams->prev = op;
	x->streams = op;
	x->nstreams++;
	now = gw_status_now(x->status);
	for (size_t i = 0; i < req->n_rids; i++) {
		struct status_watch_rid *r;
		Animate3d__V1__JobStatus *st = NULL;
		int final = 0;

		if (status_dup(req->rids, i))
			continue;
		r = &op->r[op->n++];
		r->op = op;
		r->w.notify = status_watch_notify;
		r->w.trace = gw_call_trace(c);
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

void gw_status_rpc_watch(struct gw_call *c)
{
	gw_rpc_owner_admit(c, status_watch_admitted);
}

void gw_status_job_restarted(struct gw_status_ctx *x, size_t acct, const char *rid)
{
	if (!x)
		return;
	gw_status_forget(x->status, acct, rid);
	gw_status_share_forget(x->share, acct, rid);	/* NULL without Redis: nothing */
}

/* ---- metrics ---- */

static void status_metrics(void *state, struct gw_metrics_out *o)
{
	static const struct {
		const char *name, *help, *type;
		size_t off;
		int cache;		/* 1: gw_cache_counters, 0: gw_status_counters */
	} rows[] = {
		{ "cache_hits_total", "Status cache hits.", "counter",
		  offsetof(struct gw_cache_counters, hits), 1 },
		{ "cache_misses_total", "Status cache misses (absent or expired).", "counter",
		  offsetof(struct gw_cache_counters, misses), 1 },
		{ "cache_expired_total", "Misses because the entry passed its TTL.", "counter",
		  offsetof(struct gw_cache_counters, expired), 1 },
		{ "cache_evictions_total", "Status entries evicted (LRU).", "counter",
		  offsetof(struct gw_cache_counters, evictions), 1 },
		{ "cache_stale_ignored_total", "Upstream answers older than the cached one, ignored.",
		  "counter", offsetof(struct gw_cache_counters, stale_ignored), 1 },
		{ "cache_entries", "Status entries cached.", "gauge",
		  offsetof(struct gw_cache_counters, entries), 1 },
		{ "status_wants_total", "Status misses sent to the batcher.", "counter",
		  offsetof(struct gw_status_counters, wants), 0 },
		{ "status_coalesced_total",
		  "Misses that joined a queued or in-flight fetch of the same rid.", "counter",
		  offsetof(struct gw_status_counters, coalesced), 0 },
		{ "status_fetches_total", "GET /status requests sent upstream.", "counter",
		  offsetof(struct gw_status_counters, fetches), 0 },
		{ "status_batched_rids_total", "Rids carried by those requests.", "counter",
		  offsetof(struct gw_status_counters, batched), 0 },
		{ "status_piggybacked_total", "Hot rids refreshed along with a batch.", "counter",
		  offsetof(struct gw_status_counters, piggybacked), 0 },
		{ "status_refreshes_total", "Watched rids queued by the refresh loop.", "counter",
		  offsetof(struct gw_status_counters, refreshes), 0 },
		{ "status_refused_total",
		  "Status misses refused at once: the account would hold them back past their "
		  "deadline, or its circuit is open or its queue full.", "counter",
		  offsetof(struct gw_status_counters, refused), 0 },
		{ "status_requeued_total",
		  "Status waiters sent out again after a shorter deadline's fetch timed out.",
		  "counter", offsetof(struct gw_status_counters, requeued), 0 },
		{ "status_rejected_total", "Status requests refused: too many rids tracked.", "counter",
		  offsetof(struct gw_status_counters, rejected_full), 0 },
		{ "watch_notifications_total", "WatchStatus changes delivered.", "counter",
		  offsetof(struct gw_status_counters, notifications), 0 },
	};
	const struct gw_status_ctx *x = state;
	const void *cc = gw_cache_counters(x->cache), *sc = gw_status_counters(x->status);

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)(rows[i].cache ? cc : sc) + rows[i].off, sizeof v);
		gw_metrics_one(o, rows[i].name, rows[i].type, rows[i].help, v);
	}
	gw_metrics_one(o, "watch_streams", "gauge", "Open WatchStatus streams.", x->nstreams);
	gw_metrics_one(o, "watch_streams_refused_total", "counter",
		       "WatchStatus calls refused: a cap, or the server draining.", x->streams_refused);
	gw_slots_render(&x->slots, "watch_streams_tenant", "Open WatchStatus streams by tenant.",
			"tenant", "tenant", 1, o);
	if (x->share) {
		const struct gw_status_counters *c = gw_status_counters(x->status);

		gw_status_share_metrics(x->share, o);
		/* The batcher's side of the coordinated polling, in the same family. */
		gw_metrics_value(o, "cluster_status_total", "what=\"polled_for_cluster\"",
				 c->cluster_polled);
		gw_metrics_value(o, "cluster_status_total", "what=\"waited\"", c->cluster_waited);
		gw_metrics_value(o, "cluster_status_total", "what=\"served_from_cluster\"",
				 c->cluster_served);
		gw_metrics_value(o, "cluster_status_total", "what=\"fallback\"",
				 c->cluster_fallback + c->claim_local);
	}
}

/* ---- the service ---- */

static int status_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_status_ctx *x = calloc(1, sizeof *x);

	if (!x || status_ctx_start(x, env) != 0) {
		free(x);
		snprintf(err, errlen, "cannot start the status cache (out of memory)");
		return -1;
	}
	*state = x;
	return 0;
}

/* Streams end when the server drains, like health watches, so the drain does not wait for them. */
static void status_drain(void *state)
{
	struct gw_status_ctx *x = state;

	while (x->streams)
		status_watch_end(x->streams, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
}

static void status_free(void *state)
{
	if (state)
		status_ctx_free(state);
}

const struct gw_svc gw_svc_status = {
	.name = "status",
	.init = status_init,
	.drain = status_drain,
	.free = status_free,
	.metrics = status_metrics,
};
