/*
 * owner: tenant isolation and the idempotent StartJob state machine. See owner.h.
 */
#include "gateway/state/owner.h"
#include "gateway/state/owner_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/status.h>
#include <openssl/sha.h>

#define OWNER_BUCKETS 1024u	/* in-flight table; at most GW_OWNER_MAX_INFLIGHT entries */

struct gw_owner_waiter {
	struct gw_owner_waiter *prev, *next;
	struct owner_flight *f;
	gw_owner_wake_fn wake;
	void *arg;
};

/* One (tenant, key) being worked on by this process, and the duplicates queued behind it. While
 * starting, its key's store entry is being read or written (fp is the request's that started it). */
struct owner_flight {
	struct owner_flight *next;
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	struct gw_owner_waiter *head, *tail;
	size_t nwaiters;
	int starting;
	uint8_t fp[32];
};

struct gw_owner {
	struct gw_store *s;
	int64_t ttl_ms;
	char instance[GW_STORE_LEASE_MAX + 1];
	struct owner_flight *table[OWNER_BUCKETS];
	struct gw_owner_stats stats;
	gw_owner_caps_fn caps;			/* per-tenant caps (NULL: none) */
	void *caps_arg;
	struct gw_slots t_inflight, t_waiters;	/* held per tenant */
	struct gw_lograte limit_log;
};

/* ---- isolation ---- */

int gw_owner_may_see(const char *who, const char *tenant, int see_foreign)
{
	if (!tenant || !tenant[0])
		return 0;
	if (!who)
		return see_foreign != 0;
	return strcmp(who, tenant) == 0;
}

/* ---- request identity ---- */

void gw_owner_fingerprint(const void *bytes, size_t len, uint8_t fp[32])
{
	SHA256(bytes ? bytes : (const void *)"", bytes ? len : 0, fp);
}

/* Length of url up to its query or fragment. */
static size_t owner_url_len(const char *url)
{
	return strcspn(url, "?#");
}

int gw_owner_source(const char *kind, const char *value, char *source, size_t cap)
{
	size_t n;
	int len;

	if (!kind || !value || !value[0] || !source || cap == 0)
		return -1;
	if (strcmp(kind, "url") == 0) {
		n = owner_url_len(value);
		if (n == 0 || n > GW_STORE_SOURCE_MAX || n >= cap)
			return -1;
		memcpy(source, value, n);
		source[n] = '\0';
		return 0;
	}
	if (strcmp(kind, "rerun") != 0 && strcmp(kind, "mp") != 0)
		return -1;
	len = snprintf(source, cap, "%s:%s", kind, value);
	if (len < 0 || (size_t)len >= cap || (size_t)len > GW_STORE_SOURCE_MAX) {
		source[0] = '\0';
		return -1;
	}
	return 0;
}

int gw_owner_upload_id(const char *url, char *id, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_LENGTH];
	size_t n;

	if (!url || !id || cap < GW_OWNER_UPLOAD_ID_LEN + 1)
		return -1;
	n = owner_url_len(url);
	if (n == 0)
		return -1;
	SHA256((const unsigned char *)url, n, d);
	for (size_t i = 0; i < sizeof d; i++) {
		id[2 * i] = hex[d[i] >> 4];
		id[2 * i + 1] = hex[d[i] & 15];
	}
	id[GW_OWNER_UPLOAD_ID_LEN] = '\0';
	return 0;
}

/* ---- in-flight table ---- */

static uint32_t owner_slot(const char *tenant, const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
		h = (h ^ *p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;	/* separator: ("ab","c") != ("a","bc") */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % OWNER_BUCKETS;
}

static struct owner_flight **owner_find(const struct gw_owner *o, const char *tenant, const char *key)
{
	struct owner_flight *const *pp = &o->table[owner_slot(tenant, key)];

	while (*pp && (strcmp((*pp)->tenant, tenant) != 0 || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return (struct owner_flight **)pp;
}

static struct owner_flight *owner_flight_add(struct gw_owner *o, const char *tenant, const char *key,
					     const uint8_t fp[32])
{
	struct owner_flight **pp = owner_find(o, tenant, key);
	struct owner_flight *f = *pp;

	if (f)
		return f;
	if (o->stats.inflight >= GW_OWNER_MAX_INFLIGHT) {
		o->stats.busy_inflight++;
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	/* The tenant's cap was checked by the caller (owner_tenant_full); only counted here. */
	if (gw_slots_take(&o->t_inflight, tenant, 0, 0) != GW_SLOTS_OK) {
		free(f);
		return NULL;
	}
	memcpy(f->tenant, tenant, strlen(tenant) + 1);	/* lengths checked by the caller */
	memcpy(f->key, key, strlen(key) + 1);
	memcpy(f->fp, fp, sizeof f->fp);
	*pp = f;
	o->stats.inflight++;
	return f;
}

/* 1 when tenant holds its cap of keys in flight (waiters 0) or of waiters (1): the refusal is
 * counted (stats and per tenant) and out->limit filled. 0 when it may take one more. */
static int owner_tenant_full(struct gw_owner *o, const char *tenant, int waiters,
			     struct gw_owner_start *out)
{
	uint64_t cinf = 0, cwait = 0, cap;
	struct gw_slots *sl = waiters ? &o->t_waiters : &o->t_inflight;

	if (!o->caps)
		return 0;
	o->caps(o->caps_arg, tenant, &cinf, &cwait);
	cap = waiters ? cwait : cinf;
	if (!cap || gw_slots_held(sl, tenant) < cap)
		return 0;
	gw_slots_take(sl, tenant, cap, 0);	/* refused: counts it against the tenant */
	if (waiters)
		o->stats.limited_waiters++;
	else
		o->stats.limited_inflight++;
	out->limit.waiters = waiters;
	out->limit.held = gw_slots_held(sl, tenant);
	out->limit.cap = cap;
	return 1;
}

/* Unlinks the flight and wakes each of its waiters once, in arrival order, then frees it. The
 * flight is out of the table before any wake runs, so a wake may start the key again. */
static void owner_flight_end(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			     int code, const char *msg)
{
	struct owner_flight **pp = owner_find(o, tenant, key);
	struct owner_flight *f = *pp;
	struct gw_owner_waiter *w;

	if (!f)
		return;
	*pp = f->next;
	o->stats.inflight--;
	gw_slots_give(&o->t_inflight, f->tenant);
	while ((w = f->head) != NULL) {
		f->head = w->next;
		if (f->head)
			f->head->prev = NULL;
		f->nwaiters--;
		o->stats.waiting--;
		gw_slots_give(&o->t_waiters, f->tenant);
		w->wake(w->arg, rid, code, msg);
		free(w);
	}
	free(f);
}

static struct gw_owner_waiter *owner_wait(struct gw_owner *o, struct owner_flight *f,
					  gw_owner_wake_fn wake, void *arg)
{
	struct gw_owner_waiter *w;

	if (!wake || f->nwaiters >= GW_OWNER_MAX_WAITERS_PER_KEY ||
	    o->stats.waiting >= GW_OWNER_MAX_WAITERS) {
		o->stats.busy_waiters++;
		return NULL;
	}
	w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	if (gw_slots_take(&o->t_waiters, f->tenant, 0, 0) != GW_SLOTS_OK) {
		free(w);
		return NULL;
	}
	w->f = f;
	w->wake = wake;
	w->arg = arg;
	w->prev = f->tail;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
	f->nwaiters++;
	o->stats.waiting++;
	return w;
}

void gw_owner_idem_unwait(struct gw_owner *o, struct gw_owner_waiter *w)
{
	struct owner_flight *f;

	if (!o || !w)
		return;
	f = w->f;
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	f->nwaiters--;
	o->stats.waiting--;
	gw_slots_give(&o->t_waiters, f->tenant);
	free(w);
}

int gw_owner_idem_inflight(const struct gw_owner *o, const char *tenant, const char *key)
{
	if (!o || !tenant || !key)
		return 0;
	return *owner_find(o, tenant, key) != NULL;
}

/* ---- lifecycle ---- */

struct gw_owner *gw_owner_new(struct gw_store *s, int64_t ttl_ms, const char *instance)
{
	struct gw_owner *o;

	if (!s || !instance || !instance[0] || strlen(instance) > GW_STORE_LEASE_MAX)
		return NULL;
	o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->s = s;
	memcpy(o->instance, instance, strlen(instance) + 1);
	if (ttl_ms <= 0)
		ttl_ms = GW_OWNER_DEFAULT_TTL_MS;
	o->ttl_ms = ttl_ms < GW_OWNER_MIN_TTL_MS ? GW_OWNER_MIN_TTL_MS : ttl_ms;
	if (gw_slots_init(&o->t_inflight, GW_OWNER_MAX_TENANTS, 1) != 0 ||
	    gw_slots_init(&o->t_waiters, GW_OWNER_MAX_TENANTS, 1) != 0) {
		gw_slots_free(&o->t_inflight);
		free(o);
		return NULL;
	}
	return o;
}

void gw_owner_free(struct gw_owner *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < OWNER_BUCKETS; i++)
		while (o->table[i])
			owner_flight_end(o, o->table[i]->tenant, o->table[i]->key, NULL,
					 GRPC_STATUS_UNAVAILABLE, "gateway is shutting down");
	gw_slots_free(&o->t_inflight);
	gw_slots_free(&o->t_waiters);
	free(o);
}

void gw_owner_set_caps(struct gw_owner *o, gw_owner_caps_fn fn, void *arg)
{
	o->caps = fn;
	o->caps_arg = arg;
}

int gw_owner_has_caps(const struct gw_owner *o)
{
	return o && o->caps != NULL;
}

const struct gw_slots *gw_owner_tenant_slots(const struct gw_owner *o, int waiters)
{
	return waiters ? &o->t_waiters : &o->t_inflight;
}

struct gw_lograte *gw_owner_limit_log(struct gw_owner *o)
{
	return &o->limit_log;
}

const struct gw_owner_stats *gw_owner_stats(const struct gw_owner *o)
{
	return &o->stats;
}

struct gw_store *gw_owner_store(const struct gw_owner *o)
{
	return o->s;
}

const char *gw_owner_instance(const struct gw_owner *o)
{
	return o->instance;
}

/* ---- the StartJob state machine ---- */

/* One step of the machine waiting for the store: a start, or the end of an attempt. */
struct owner_op {
	struct gw_owner *o;
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	char rid[GW_STORE_RID_MAX + 1];
	int64_t now_ms;
	gw_owner_start_fn start_done;	/* a start */
	gw_owner_wake_fn end_done;	/* an end: done / adopt / failed */
	void *darg;
	int code;			/* failed: what everyone hears */
	char msg[GW_OWNER_MSG_MAX];
	struct gw_owner_start out;
};

static struct owner_op *owner_op_new(struct gw_owner *o, const char *tenant, const char *key,
				     int64_t now_ms)
{
	struct owner_op *op = calloc(1, sizeof *op);

	if (!op)
		return NULL;
	op->o = o;
	snprintf(op->tenant, sizeof op->tenant, "%s", tenant);
	snprintf(op->key, sizeof op->key, "%s", key);
	op->now_ms = now_ms;
	return op;
}

/* Ends a start: the flight, if this start made it and the verdict does not carry on with it,
 * ends with what its waiters should hear; then the caller's callback. */
static void owner_start_end(struct owner_op *op, enum gw_idem_verdict v, int code, const char *msg)
{
	struct gw_owner *o = op->o;
	struct owner_flight *f = *owner_find(o, op->tenant, op->key);

	if (f && v != GW_IDEM_PROCEED && v != GW_IDEM_RECONCILE)
		owner_flight_end(o, op->tenant, op->key, v == GW_IDEM_REPLAY ? op->out.rid : NULL, code, msg);
	else if (f)
		f->starting = 0;
	op->start_done(op->darg, v, &op->out);
	free(op);
}

static void owner_start_error(struct owner_op *op, const struct gw_store_res *res)
{
	op->out.err = res->err;
	op->out.retry_ms = res->retry_ms;
	owner_start_end(op, GW_IDEM_ERROR, GRPC_STATUS_UNAVAILABLE, res->err);
}

static void owner_replay_put_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;

	if (res->rc != 0) {
		owner_start_error(op, res);
		return;
	}
	op->o->stats.ownership_repaired++;
	op->o->stats.replays++;
	owner_start_end(op, GW_IDEM_REPLAY, GRPC_STATUS_OK, NULL);
}

/* Repair: a crash between "key DONE" and "owner recorded" leaves no owner row. */
static void owner_replay_lookup_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;
	const char *who;

	if (res->rc != 0) {
		owner_start_error(op, res);
		return;
	}
	who = res->tenants[0];
	if (!who) {
		gw_store_owner_put(op->o->s, GW_OBJ_JOB, op->out.rid, op->tenant, op->now_ms,
				   owner_replay_put_done, op);
		return;
	}
	if (strcmp(who, op->tenant) != 0) {	/* cannot happen: a rid has one creator */
		struct gw_store_res bad = { .rc = GW_STORE_ERROR,
					    .err = "state store: a replayed job is recorded for another tenant" };

		owner_start_error(op, &bad);
		return;
	}
	op->o->stats.replays++;
	owner_start_end(op, GW_IDEM_REPLAY, GRPC_STATUS_OK, NULL);
}

static void owner_take_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;
	struct gw_owner *o = op->o;

	if (res->rc == GW_STORE_ERROR) {
		owner_start_error(op, res);
		return;
	}
	if (res->rc == GW_STORE_CONFLICT) {
		o->stats.take_lost++;
		op->out.retry_ms = 1000;
		owner_start_end(op, GW_IDEM_ELSEWHERE, GRPC_STATUS_UNAVAILABLE,
				"another gateway replica took over this idempotency_key meanwhile, or its "
				"attempt ended; retry");
		return;
	}
	if (op->out.entry.lease[0] && strcmp(op->out.entry.lease, o->instance) != 0)
		o->stats.takeovers++;
	snprintf(op->out.entry.lease, sizeof op->out.entry.lease, "%s", o->instance);
	op->out.entry.lease_until_ms = op->now_ms + GW_OWNER_LEASE_MS;
	o->stats.reconciles++;
	owner_start_end(op, GW_IDEM_RECONCILE, GRPC_STATUS_OK, NULL);
}

static void owner_begin_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;
	struct gw_owner *o = op->o;
	struct gw_idem *e = &op->out.entry;
	struct owner_flight *f = *owner_find(o, op->tenant, op->key);

	if (res->rc == GW_STORE_ERROR) {
		owner_start_error(op, res);
		return;
	}
	if (res->rc == GW_STORE_INSERTED) {
		o->stats.proceeds++;
		owner_start_end(op, GW_IDEM_PROCEED, GRPC_STATUS_OK, NULL);
		return;
	}
	*e = *res->idem;
	if (!f || memcmp(e->fp, f->fp, sizeof e->fp) != 0) {
		o->stats.mismatches++;
		owner_start_end(op, GW_IDEM_MISMATCH, GRPC_STATUS_INVALID_ARGUMENT,
				"idempotency_key reused with a different request");
		return;
	}
	if (e->done) {
		snprintf(op->out.rid, sizeof op->out.rid, "%s", e->rid);
		gw_store_owner_lookup(o->s, GW_OBJ_JOB, (const char *const[]){ op->out.rid }, 1,
				      owner_replay_lookup_done, op);
		return;
	}
	/* PENDING and nobody here works on it (this start made the flight). A live lease of
	 * another instance: that replica is on it. Else take it over, compare-and-set. */
	if (e->lease[0] && strcmp(e->lease, o->instance) != 0 && e->lease_until_ms > op->now_ms) {
		int64_t left = e->lease_until_ms - op->now_ms;

		o->stats.elsewhere++;
		op->out.retry_ms = left > GW_OWNER_ELSEWHERE_RETRY_MAX_MS ? GW_OWNER_ELSEWHERE_RETRY_MAX_MS
									 : (long)left;
		owner_start_end(op, GW_IDEM_ELSEWHERE, GRPC_STATUS_UNAVAILABLE,
				"another gateway replica is starting the job of this idempotency_key; retry");
		return;
	}
	gw_store_idem_take(o->s, op->tenant, op->key, e->lease, e->lease_until_ms, o->instance,
			   op->now_ms + GW_OWNER_LEASE_MS, owner_take_done, op);
}

void gw_owner_idem_start(struct gw_owner *o, const char *tenant, const char *key, const uint8_t fp[32],
			 const char *source, int64_t now_ms, gw_owner_wake_fn wake, void *arg,
			 gw_owner_start_fn done, void *darg)
{
	struct gw_owner_start out;
	struct owner_flight *f;
	struct owner_op *op;
	enum gw_idem_verdict v = GW_IDEM_ERROR;

	memset(&out, 0, sizeof out);
	if (!tenant || !tenant[0] || strnlen(tenant, GW_STORE_TENANT_MAX + 1) > GW_STORE_TENANT_MAX ||
	    !key || !key[0] || strnlen(key, GW_STORE_KEY_MAX + 1) > GW_STORE_KEY_MAX) {
		out.err = "state store: tenant or idempotency key missing or too long";
		goto answer;
	}
	f = *owner_find(o, tenant, key);
	if (f) {
		/* Worked on here: the same request waits for its outcome. */
		if (memcmp(f->fp, fp, sizeof f->fp) != 0) {
			if (f->starting) {
				v = GW_IDEM_BUSY;	/* the stored request is not known yet */
				o->stats.busy_inflight++;
			} else {
				v = GW_IDEM_MISMATCH;
				o->stats.mismatches++;
			}
			goto answer;
		}
		if (wake && owner_tenant_full(o, tenant, 1, &out)) {
			v = GW_IDEM_LIMITED;
			goto answer;
		}
		out.waiter = owner_wait(o, f, wake, arg);
		if (!out.waiter) {
			v = GW_IDEM_BUSY;
			goto answer;
		}
		o->stats.waits++;
		v = GW_IDEM_WAIT;
		goto answer;
	}
	if (o->stats.inflight >= GW_OWNER_MAX_INFLIGHT) {
		o->stats.busy_inflight++;
		v = GW_IDEM_BUSY;
		goto answer;
	}
	/* The tenant's own share, before the store is touched (a refusal costs no write). */
	if (owner_tenant_full(o, tenant, 0, &out)) {
		v = GW_IDEM_LIMITED;
		goto answer;
	}
	op = owner_op_new(o, tenant, key, now_ms);
	f = op ? owner_flight_add(o, tenant, key, fp) : NULL;
	if (!f) {
		free(op);
		v = GW_IDEM_BUSY;
		goto answer;
	}
	f->starting = 1;
	op->start_done = done;
	op->darg = darg;
	/* What PROCEED reports; begin overwrites it with the stored entry when the key exists. */
	memcpy(op->out.entry.fp, fp, sizeof op->out.entry.fp);
	snprintf(op->out.entry.source, sizeof op->out.entry.source, "%s", source ? source : "");
	op->out.entry.created_ms = now_ms;
	snprintf(op->out.entry.lease, sizeof op->out.entry.lease, "%s", o->instance);
	op->out.entry.lease_until_ms = now_ms + GW_OWNER_LEASE_MS;
	gw_store_idem_begin(o->s, tenant, key, fp, source, now_ms, o->instance, now_ms + GW_OWNER_LEASE_MS,
			    owner_begin_done, op);
	return;
answer:
	done(darg, v, &out);
}

/* The end of an attempt: everyone hears (rid | code, msg), the attempt's owner first. */
static void owner_end(struct owner_op *op, const char *rid, int code, const char *msg)
{
	char m[GW_OWNER_MSG_MAX];

	snprintf(m, sizeof m, "%s", msg ? msg : "");	/* msg may live in the store's answer */
	if (op->end_done)
		op->end_done(op->darg, rid, code, m);
	owner_flight_end(op->o, op->tenant, op->key, rid, code, m);
	free(op);
}

static void owner_done_put_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;

	if (res->rc != 0)
		owner_end(op, NULL, GRPC_STATUS_UNAVAILABLE, res->err);
	else
		owner_end(op, op->rid, GRPC_STATUS_OK, NULL);
}

/* Key first, owner second: see the ordering note in owner.h. If the key cannot be marked, the
 * rid is left unowned so that reconciliation can still adopt it on retry. */
static void owner_done_finish_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;

	if (res->rc != 0) {
		owner_end(op, NULL, GRPC_STATUS_UNAVAILABLE, res->err);
		return;
	}
	gw_store_owner_put(op->o->s, GW_OBJ_JOB, op->rid, op->tenant, op->now_ms, owner_done_put_done, op);
}

static struct owner_op *owner_end_op(struct gw_owner *o, const char *tenant, const char *key,
				     const char *rid, int64_t now_ms, gw_owner_wake_fn done, void *darg)
{
	struct owner_op *op = owner_op_new(o, tenant, key, now_ms);

	if (!op) {
		if (done)
			done(darg, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		owner_flight_end(o, tenant, key, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	snprintf(op->rid, sizeof op->rid, "%s", rid ? rid : "");
	op->end_done = done;
	op->darg = darg;
	return op;
}

void gw_owner_idem_done(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			int64_t now_ms, gw_owner_wake_fn done, void *darg)
{
	struct owner_op *op = owner_end_op(o, tenant, key, rid, now_ms, done, darg);

	if (op)
		gw_store_idem_finish(o->s, tenant, key, rid, owner_done_finish_done, op);
}

static void owner_adopt_lookup_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;

	if (res->rc != 0) {
		owner_end(op, NULL, GRPC_STATUS_UNAVAILABLE, res->err);
		return;
	}
	if (res->tenants[0]) {
		op->o->stats.adopt_raced++;
		owner_end(op, NULL, GRPC_STATUS_ABORTED,
			  "the upstream job was claimed by another request meanwhile; retry");
		return;
	}
	gw_store_idem_finish(op->o->s, op->tenant, op->key, op->rid, owner_done_finish_done, op);
}

void gw_owner_idem_adopt(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			 int64_t now_ms, gw_owner_wake_fn done, void *darg)
{
	struct owner_op *op = owner_end_op(o, tenant, key, rid, now_ms, done, darg);

	if (op)
		gw_store_owner_lookup(o->s, GW_OBJ_JOB, (const char *const[]){ op->rid }, 1,
				      owner_adopt_lookup_done, op);
}

/* Whatever the store said, everyone hears the attempt's own outcome. */
static void owner_failed_done(void *arg, const struct gw_store_res *res)
{
	struct owner_op *op = arg;

	(void)res;
	owner_end(op, NULL, op->code, op->msg);
}

void gw_owner_idem_failed(struct gw_owner *o, const char *tenant, const char *key, int forget,
			  int code, const char *msg, gw_owner_wake_fn done, void *darg)
{
	struct owner_op *op = owner_end_op(o, tenant, key, NULL, 0, done, darg);

	if (!op)
		return;
	op->code = code;
	snprintf(op->msg, sizeof op->msg, "%s", msg ? msg : "");
	if (forget)
		gw_store_idem_abort(o->s, tenant, key, owner_failed_done, op);
	else
		gw_store_idem_release(o->s, tenant, key, owner_failed_done, op);
}

struct owner_expire {
	struct gw_owner *o;
	void (*done)(void *arg, long n, const char *err);
	void *arg;
};

static void owner_expire_done(void *arg, const struct gw_store_res *res)
{
	struct owner_expire *x = arg;

	if (res->rc == 0 && res->count > 0)
		x->o->stats.expired += (uint64_t)res->count;
	if (x->done)
		x->done(x->arg, res->rc == 0 ? res->count : -1, res->rc == 0 ? NULL : res->err);
	free(x);
}

void gw_owner_expire(struct gw_owner *o, int64_t now_ms, void (*done)(void *arg, long n, const char *err),
		     void *arg)
{
	struct owner_expire *x = calloc(1, sizeof *x);

	if (!x) {
		if (done)
			done(arg, -1, "out of memory");
		return;
	}
	x->o = o;
	x->done = done;
	x->arg = arg;
	gw_store_idem_expire(o->s, now_ms - o->ttl_ms, owner_expire_done, x);
}

static void owner_renew_done(void *arg, const struct gw_store_res *res)
{
	struct gw_owner *o = arg;

	if (res->rc != 0)
		o->stats.renew_failures++;
}

void gw_owner_renew(struct gw_owner *o, int64_t now_ms)
{
	/* The owner outlives every store call: the server frees it after the loop has stopped. */
	if (o->stats.inflight > 0)
		gw_store_idem_renew(o->s, o->instance, now_ms + GW_OWNER_LEASE_MS, owner_renew_done, o);
}

/* ---- reconciliation (the matching itself: owner_recon.c) ---- */

enum gw_recon_verdict gw_owner_reconcile(struct gw_owner *o, const struct gw_idem *e,
					 const char *list_json, size_t list_len,
					 const char *const *recorded, size_t nrecorded,
					 const char *dl_json, size_t dl_len, struct gw_owner_recon *out)
{
	enum gw_recon_verdict v = gw_owner_recon_decide(e, list_json, list_len, recorded, nrecorded,
							dl_json, dl_len, out);

	if (v == GW_RECON_ADOPT)
		o->stats.recon_adopted++;
	else if (v == GW_RECON_RESUBMIT)
		o->stats.recon_resubmit++;
	else if (v == GW_RECON_AMBIGUOUS || v == GW_RECON_UNSUPPORTED)
		o->stats.recon_ambiguous++;
	return v;
}
