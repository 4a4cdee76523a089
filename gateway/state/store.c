/*
 * store: argument checks, read-only policy, counters and timing in front of a backend. See store.h.
 */
#include "gateway/state/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/base/idhash.h"

/* One remembered owner answer: kind and id -> tenant, or known absent. */
struct store_oc_ent {
	char *id;		/* malloc'd "id\0tenant\0"; NULL = empty slot */
	const char *tenant;	/* inside id's allocation; NULL = absent */
	uint32_t hash;
	int kind;
};

struct gw_store {
	const struct gw_store_ops *ops;
	void *impl;
	int read_only;
	struct gw_store_stats stats;
	char err[GW_STORE_ERR_MAX];
	struct store_oc_ent *oc;	/* GW_STORE_OWNER_CACHE slots, or NULL: no owner cache */
	size_t inflight;		/* operations issued to the backend, not yet answered */
	uint64_t del_epoch;		/* bumped by every owner_del: a lookup answered across one
					 * is not remembered (it may predate the delete) */
	/* An in-process backend that can answer an owner question at once (memory): its peek and
	 * its impl (owned by the inline adapter), or NULL. */
	int (*peek)(void *impl, int k, const char *id, const char **tenant);
	void *peek_impl;
};

#define STORE_LOOKUP_STACK 8	/* lookups answered without allocating the answer array */

/* One operation on its way through a backend. ids/tenants (owner_lookup) and the strings the
 * completion needs are copied into buf: the caller's may be gone when a backend answers later. */
enum store_op { OP_PUT, OP_LOOKUP, OP_DEL, OP_BEGIN, OP_TAKE, OP_RENEW, OP_FINISH, OP_RELEASE,
		OP_ABORT, OP_COUNT, OP_EXPIRE, OP_HOOK, OP_CLAIM, OP_JOB_RENEW, OP_SETTLE, OP_SESS,
		OP_USAGE };
struct store_call {
	struct gw_store *s;
	gw_store_done_fn done;
	void *arg;
	enum store_op op;
	int64_t t0;
	int kind;
	const char *id, *tenant;	/* OP_PUT, OP_DEL: in buf */
	/* OP_LOOKUP: n ids; ask[j] = index of the j-th id sent to the backend; known[i] = a cache
	 * answer (tenant, or "" for a remembered absence), NULL when asked */
	size_t n, nask;
	uint64_t epoch;			/* s->del_epoch when the lookup was issued */
	const char **ids;
	size_t *ask;
	const char **known;
	char buf[];
};

/* ---- owner cache (see store.h) ---- */

static uint32_t store_oc_hash(int kind, const char *id)
{
	return gw_idhash((uint64_t)kind, id, strlen(id));	/* every polled rid's owner */
}

static struct store_oc_ent *store_oc_slot(struct gw_store *s, int kind, const char *id, uint32_t *hash)
{
	*hash = store_oc_hash(kind, id);
	return &s->oc[*hash & (GW_STORE_OWNER_CACHE - 1)];
}

static void store_oc_clear(struct store_oc_ent *e)
{
	free(e->id);
	memset(e, 0, sizeof *e);
}

/* The slot remembering (kind, id), or NULL. */
static struct store_oc_ent *store_oc_find(struct gw_store *s, int kind, const char *id)
{
	uint32_t h;
	struct store_oc_ent *e;

	if (!s->oc)
		return NULL;
	e = store_oc_slot(s, kind, id, &h);
	return e->id && e->hash == h && e->kind == kind && strcmp(e->id, id) == 0 ? e : NULL;
}

/* Remembers (kind, id) -> tenant (NULL: absent), replacing the slot's previous pair. */
static void store_oc_set(struct gw_store *s, int kind, const char *id, const char *tenant)
{
	size_t il, tl;
	uint32_t h;
	struct store_oc_ent *e;

	if (!s->oc)
		return;
	e = store_oc_slot(s, kind, id, &h);
	store_oc_clear(e);
	il = strlen(id);
	tl = tenant ? strlen(tenant) : 0;
	e->id = malloc(il + 1 + tl + 1);
	if (!e->id)
		return;		/* not remembered: the next get asks the backend */
	memcpy(e->id, id, il + 1);
	if (tenant) {
		memcpy(e->id + il + 1, tenant, tl + 1);
		e->tenant = e->id + il + 1;
	}
	e->hash = h;
	e->kind = kind;
}

static void store_oc_forget(struct gw_store *s, int kind, const char *id)
{
	struct store_oc_ent *e = store_oc_find(s, kind, id);

	if (e)
		store_oc_clear(e);
}

/* ---- one operation: refuse, or issue and complete ---- */

static int64_t store_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void store_fail(struct gw_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_fail(struct gw_store *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
}

/* Completes an operation refused before any backend work; s->err says why. */
static void store_refuse(struct gw_store *s, gw_store_done_fn done, void *arg)
{
	struct gw_store_res res = { .rc = GW_STORE_ERROR, .err = s->err };

	done(arg, &res);
}

/* 1 when str is 1..max bytes. */
static int store_str_ok(const char *str, size_t max)
{
	return str && str[0] && strnlen(str, max + 1) <= max;
}

static int store_kind_ok(enum gw_store_kind k)
{
	return k >= GW_OBJ_JOB && k <= GW_OBJ_UPLOAD;
}

/* 0 when every string is acceptable, else -1 with the refusal counted and s->err set. */
static int store_args(struct gw_store *s, const char *what, const char *str, size_t max)
{
	if (store_str_ok(str, max))
		return 0;
	s->stats.rejected_args++;
	store_fail(s, "state store: %s missing or too long", what);
	return -1;
}

/* Writes are refused up front in read-only mode, before any backend work. */
static int store_writable(struct gw_store *s)
{
	if (!s->read_only)
		return 1;
	s->stats.rejected_read_only++;
	store_fail(s, "state store is read-only");
	return 0;
}

/* One refused argument: counted, and s->err says which. Returns -1. */
static int store_reject(struct gw_store *s, const char *what)
{
	s->stats.rejected_args++;
	store_fail(s, "state store: %s", what);
	return -1;
}

static int store_kind_arg(struct gw_store *s, enum gw_store_kind k)
{
	return store_kind_ok(k) ? 0 : store_reject(s, "unknown kind");
}

/* A lease holder: NULL only when null_ok, else at most GW_STORE_LEASE_MAX bytes ("" is no one). */
static int store_lease_arg(struct gw_store *s, const char *lease, int null_ok, const char *what)
{
	if (lease ? strlen(lease) <= GW_STORE_LEASE_MAX : null_ok)
		return 0;
	return store_reject(s, what);
}

/* A call context with room for extra bytes of copies; NULL (refused, counted) when out of memory. */
static struct store_call *store_call_new(struct gw_store *s, enum store_op op, size_t extra,
					 gw_store_done_fn done, void *arg)
{
	struct store_call *c = malloc(sizeof *c + extra);	/* buf is written before it is read */

	if (!c) {
		s->stats.errors++;
		store_fail(s, "state store: out of memory");
		store_refuse(s, done, arg);
		return NULL;
	}
	memset(c, 0, sizeof *c);
	c->s = s;
	c->done = done;
	c->arg = arg;
	c->op = op;
	c->t0 = store_mono_us();
	s->inflight++;
	return c;
}

/* The context of a write whose arguments passed (args_ok), once the store takes writes; NULL when
 * refused or out of memory (done has then run, s->err saying why). */
static struct store_call *store_write_call(struct gw_store *s, enum store_op op, int args_ok,
					   size_t extra, gw_store_done_fn done, void *arg)
{
	if (!args_ok || !store_writable(s)) {
		store_refuse(s, done, arg);
		return NULL;
	}
	return store_call_new(s, op, extra, done, arg);
}

/* The backend's answer to c: counters, the owner cache, the error line; then the caller's done. */
static void store_complete(void *arg, const struct gw_store_res *bres)
{
	struct store_call *c = arg;
	struct gw_store *s = c->s;
	struct gw_store_res res = *bres;
	const char *stack_tenants[STORE_LOOKUP_STACK];
	const char **tenants = NULL;
	uint64_t us = (uint64_t)(store_mono_us() - c->t0);

	s->inflight--;
	s->stats.ops++;
	if (us > s->stats.max_op_us)
		s->stats.max_op_us = us;
	if (us > GW_STORE_SLOW_US)
		s->stats.slow_ops++;
	switch (res.rc) {
	case GW_STORE_ERROR:
		s->stats.errors++;
		store_fail(s, "state store: %s", bres->err ? bres->err : "failed");
		res.err = s->err;
		break;
	case GW_STORE_FULL:
		s->stats.rejected_full++;
		store_fail(s, "state store is full");
		res.rc = GW_STORE_ERROR;
		res.err = s->err;
		break;
	case GW_STORE_CONFLICT:
		if (c->op == OP_PUT) {
			s->stats.owner_conflicts++;
			res.err = "state store: id already owned by another tenant";
		} else if (c->op == OP_HOOK) {
			res.err = "state store: the webhook row exists or changed meanwhile";
		} else if (c->op == OP_SESS) {
			res.err = "state store: the session exists";
		} else if (c->op == OP_USAGE) {
			res.err = "state store: over the budget, or the reservation exists";
		} else if (c->op == OP_FINISH) {
			s->stats.idem_conflicts++;
			res.err = "state store: idempotency key is not pending or has another job";
		} else {
			res.err = "state store: the idempotency key changed meanwhile";
		}
		break;
	default:
		break;
	}
	if (c->op == OP_PUT || c->op == OP_DEL) {
		if (c->op == OP_PUT && res.rc == 0)
			store_oc_set(s, c->kind, c->id, c->tenant);
		else
			store_oc_forget(s, c->kind, c->id);
	}
	if (c->op == OP_LOOKUP && res.rc == 0) {
		/* merge the cache's answers with the backend's, remembering the new ones */
		tenants = c->n <= STORE_LOOKUP_STACK ? stack_tenants : malloc(c->n * sizeof *tenants);
		if (!tenants) {
			s->stats.errors++;
			store_fail(s, "state store: out of memory");
			res.rc = GW_STORE_ERROR;
			res.err = s->err;
		} else {
			for (size_t i = 0; i < c->n; i++)
				tenants[i] = c->known[i] && c->known[i][0] ? c->known[i] : NULL;
			for (size_t j = 0; j < c->nask; j++) {
				const char *t = bres->tenants ? bres->tenants[j] : NULL;

				tenants[c->ask[j]] = t;
				if ((t || !s->ops->shared) && c->epoch == s->del_epoch)
					store_oc_set(s, c->kind, c->ids[c->ask[j]], t);
			}
			res.tenants = tenants;
		}
	}
	if (res.rc != GW_STORE_ERROR)
		res.retry_ms = 0;
	c->done(c->arg, &res);
	if (tenants != stack_tenants)
		free(tenants);
	free(c);
}

/* Copies str into c->buf at *off; returns the copy. */
static const char *store_copy(struct store_call *c, size_t *off, const char *str)
{
	size_t n = strlen(str) + 1;
	char *dst = c->buf + *off;

	memcpy(dst, str, n);
	*off += n;
	return dst;
}

void gw_store_owner_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
			int64_t now_ms, gw_store_done_fn done, void *arg)
{
	int ok = store_kind_arg(s, k) == 0 && store_args(s, "id", id, GW_STORE_ID_MAX) == 0 &&
		 store_args(s, "tenant", tenant, GW_STORE_TENANT_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_PUT, ok, ok ? strlen(id) + strlen(tenant) + 2 : 0,
						done, arg);
	size_t off = 0;

	if (!c)
		return;
	c->kind = (int)k;
	c->id = store_copy(c, &off, id);
	c->tenant = store_copy(c, &off, tenant);
	s->ops->owner_put(s->impl, (int)k, id, tenant, now_ms, store_complete, c);
}

void gw_store_owner_lookup(struct gw_store *s, enum gw_store_kind k, const char *const *ids, size_t n,
			   gw_store_done_fn done, void *arg)
{
	struct store_call *c;
	size_t extra, off;
	const char **asked = NULL;

	if (!store_kind_ok(k) || !ids || n == 0 || n > GW_STORE_LOOKUP_MAX) {
		s->stats.rejected_args++;
		store_fail(s, "state store: lookup of 1..%d ids of a known kind", GW_STORE_LOOKUP_MAX);
		store_refuse(s, done, arg);
		return;
	}
	extra = n * (sizeof(char *) * 2 + sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (store_args(s, "id", ids[i], GW_STORE_ID_MAX) != 0) {
			store_refuse(s, done, arg);
			return;
		}
		extra += 2 * (GW_STORE_ID_MAX + 1);	/* the id, and a cached tenant */
	}
	c = store_call_new(s, OP_LOOKUP, extra, done, arg);
	if (!c)
		return;
	c->kind = (int)k;
	c->n = n;
	c->epoch = s->del_epoch;
	c->ids = (const char **)(void *)c->buf;
	c->known = c->ids + n;
	c->ask = (size_t *)(void *)(c->known + n);
	off = n * (sizeof(char *) * 2 + sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		const struct store_oc_ent *e = store_oc_find(s, (int)k, ids[i]);

		c->ids[i] = store_copy(c, &off, ids[i]);
		if (e && (e->tenant || !s->ops->shared)) {
			s->stats.owner_cache_hits++;
			c->known[i] = store_copy(c, &off, e->tenant ? e->tenant : "");
		} else {
			c->known[i] = NULL;
			c->ask[c->nask++] = i;
		}
	}
	if (c->nask == 0) {	/* all from the cache: complete here, not counted as an op */
		struct gw_store_res res = { 0 };
		const char **tenants = calloc(n, sizeof *tenants);

		if (!tenants) {
			free(c);
			s->inflight--;
			s->stats.errors++;
			store_fail(s, "state store: out of memory");
			store_refuse(s, done, arg);
			return;
		}
		for (size_t i = 0; i < n; i++)
			tenants[i] = c->known[i][0] ? c->known[i] : NULL;
		res.tenants = tenants;
		s->inflight--;
		done(arg, &res);
		free(tenants);
		free(c);
		return;
	}
	asked = malloc(c->nask * sizeof *asked);
	if (!asked) {
		free(c);
		s->inflight--;
		s->stats.errors++;
		store_fail(s, "state store: out of memory");
		store_refuse(s, done, arg);
		return;
	}
	for (size_t j = 0; j < c->nask; j++)
		asked[j] = c->ids[c->ask[j]];
	/* backends copy what they keep: asked may go once the call returns */
	s->ops->owner_lookup(s->impl, (int)k, asked, c->nask, store_complete, c);
	free(asked);
}

int gw_store_owner_peek(struct gw_store *s, enum gw_store_kind k, const char *id, const char **tenant)
{
	const struct store_oc_ent *e;
	int brc;

	*tenant = NULL;
	if (!store_kind_ok(k) || !store_str_ok(id, GW_STORE_ID_MAX))
		return 0;	/* gw_store_owner_lookup refuses it, saying why */
	e = store_oc_find(s, (int)k, id);
	if (e && (e->tenant || !s->ops->shared)) {
		s->stats.owner_cache_hits++;
		*tenant = e->tenant;
		return 1;
	}
	if (!s->peek)
		return 0;
	brc = s->peek(s->peek_impl, (int)k, id, tenant);
	if (brc != GW_STORE_B_OK && brc != GW_STORE_B_ABSENT) {
		*tenant = NULL;
		return 0;
	}
	s->stats.ops++;
	if (brc == GW_STORE_B_ABSENT)
		*tenant = NULL;
	return 1;
}

void gw_store_owner_del(struct gw_store *s, enum gw_store_kind k, const char *id,
			gw_store_done_fn done, void *arg)
{
	int ok = store_kind_arg(s, k) == 0 && store_args(s, "id", id, GW_STORE_ID_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_DEL, ok, ok ? strlen(id) + 1 : 0, done, arg);
	size_t off = 0;

	if (!c)
		return;
	s->del_epoch++;
	c->kind = (int)k;
	c->id = store_copy(c, &off, id);
	s->ops->owner_del(s->impl, (int)k, id, store_complete, c);
}

/* tenant and key of every idem op */
static int store_idem_args(struct gw_store *s, const char *tenant, const char *key)
{
	return store_args(s, "tenant", tenant, GW_STORE_TENANT_MAX) != 0 ||
		       store_args(s, "idempotency key", key, GW_STORE_KEY_MAX) != 0
		       ? -1
		       : 0;
}

void gw_store_idem_begin(struct gw_store *s, const char *tenant, const char *key, const uint8_t fp[32],
			 const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			 gw_store_done_fn done, void *arg)
{
	int ok = store_idem_args(s, tenant, key) == 0 &&
		 store_args(s, "source", fp ? source : NULL, GW_STORE_SOURCE_MAX) == 0 &&
		 store_lease_arg(s, lease, 1, "lease too long") == 0;
	struct store_call *c = store_write_call(s, OP_BEGIN, ok, 0, done, arg);

	if (c)
		s->ops->idem_begin(s->impl, tenant, key, fp, source, now_ms, lease ? lease : "",
				   lease_until_ms, store_complete, c);
}

void gw_store_idem_take(struct gw_store *s, const char *tenant, const char *key, const char *old_lease,
			int64_t old_until_ms, const char *lease, int64_t lease_until_ms,
			gw_store_done_fn done, void *arg)
{
	int ok = store_idem_args(s, tenant, key) == 0 &&
		 store_lease_arg(s, old_lease, 0, "old lease missing or too long") == 0 &&
		 store_args(s, "lease", lease, GW_STORE_LEASE_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_TAKE, ok, 0, done, arg);

	if (c)
		s->ops->idem_take(s->impl, tenant, key, old_lease, old_until_ms, lease, lease_until_ms,
				  store_complete, c);
}

void gw_store_idem_renew(struct gw_store *s, const char *lease, int64_t lease_until_ms,
			 gw_store_done_fn done, void *arg)
{
	int ok = store_args(s, "lease", lease, GW_STORE_LEASE_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_RENEW, ok, 0, done, arg);

	if (c)
		s->ops->idem_renew(s->impl, lease, lease_until_ms, store_complete, c);
}

void gw_store_idem_finish(struct gw_store *s, const char *tenant, const char *key, const char *rid,
			  gw_store_done_fn done, void *arg)
{
	int ok = store_idem_args(s, tenant, key) == 0 && store_args(s, "rid", rid, GW_STORE_RID_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_FINISH, ok, 0, done, arg);

	if (c)
		s->ops->idem_finish(s->impl, tenant, key, rid, store_complete, c);
}

void gw_store_idem_release(struct gw_store *s, const char *tenant, const char *key,
			   gw_store_done_fn done, void *arg)
{
	struct store_call *c = store_write_call(s, OP_RELEASE, store_idem_args(s, tenant, key) == 0, 0,
						done, arg);

	if (c)
		s->ops->idem_release(s->impl, tenant, key, store_complete, c);
}

void gw_store_idem_abort(struct gw_store *s, const char *tenant, const char *key,
			 gw_store_done_fn done, void *arg)
{
	struct store_call *c = store_write_call(s, OP_ABORT, store_idem_args(s, tenant, key) == 0, 0,
						done, arg);

	if (c)
		s->ops->idem_abort(s->impl, tenant, key, store_complete, c);
}

void gw_store_idem_count(struct gw_store *s, gw_store_done_fn done, void *arg)
{
	struct store_call *c = store_call_new(s, OP_COUNT, 0, done, arg);

	if (c)
		s->ops->idem_count(s->impl, store_complete, c);
}

void gw_store_idem_expire(struct gw_store *s, int64_t older_than_ms, gw_store_done_fn done, void *arg)
{
	struct store_call *c = store_write_call(s, OP_EXPIRE, 1, 0, done, arg);

	if (c)
		s->ops->idem_expire(s->impl, older_than_ms, store_complete, c);
}

/* 1 when str is NULL-free and at most max bytes (empty allowed). */
static int store_str_fits(const char *str, size_t max)
{
	return str && strnlen(str, max + 1) <= max;
}

/* The arguments of one hook operation (store.h); 0, or -1 refused and counted. */
static int store_hook_args(struct gw_store *s, const struct gw_hook_req *r)
{
	const struct gw_hook *h = r->hook;

	switch (r->op) {
	case GW_HOOK_CREATE:
	case GW_HOOK_UPDATE:
		if (!h)
			return store_reject(s, "hook missing");
		if (store_args(s, "tenant", h->tenant, GW_STORE_TENANT_MAX) ||
		    store_args(s, "id", h->id, GW_STORE_ID_MAX) ||
		    store_args(s, "url", h->url, GW_STORE_HOOK_URL_MAX))
			return -1;
		if (!store_str_fits(h->description, GW_STORE_HOOK_DESC_MAX) ||
		    !store_str_fits(h->reason, GW_STORE_HOOK_REASON_MAX) ||
		    !store_str_fits(h->secret, GW_STORE_HOOK_SECRET_MAX))
			return store_reject(s, "hook field too long");
		if (r->op == GW_HOOK_CREATE && !h->secret[0])
			return store_reject(s, "hook secret missing");
		return 0;
	case GW_HOOK_GET:
	case GW_HOOK_DELETE:
		return store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) ||
				       store_args(s, "id", r->id, GW_STORE_ID_MAX)
			       ? -1
			       : 0;
	case GW_HOOK_LIST:
		return store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX);
	case GW_HOOK_HEALTH:
		if (store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) ||
		    store_args(s, "id", r->id, GW_STORE_ID_MAX))
			return -1;
		return r->ok || (r->reason && store_str_fits(r->reason, GW_STORE_HOOK_REASON_MAX))
			       ? 0
			       : store_reject(s, "hook reason missing or too long");
	case GW_OUTBOX_ADD:
		return store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) ||
				       store_args(s, "rid", r->rid, GW_STORE_ID_MAX) ||
				       store_args(s, "event body", r->body, GW_STORE_HOOK_BODY_MAX)
			       ? -1
			       : 0;
	case GW_OUTBOX_CLAIM:
		if (store_args(s, "lease", r->lease, GW_STORE_LEASE_MAX))
			return -1;
		return r->max >= 1 && r->max <= GW_OUTBOX_CLAIM_MAX ? 0
								    : store_reject(s, "bad claim size");
	case GW_OUTBOX_SETTLE:
		if (store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) ||
		    store_args(s, "id", r->id, GW_STORE_ID_MAX) ||
		    store_args(s, "rid", r->rid, GW_STORE_ID_MAX) ||
		    store_args(s, "lease", r->lease, GW_STORE_LEASE_MAX))
			return -1;
		return r->state >= GW_OUTBOX_PENDING && r->state <= GW_OUTBOX_FAILED
			       ? 0
			       : store_reject(s, "bad outbox state");
	case GW_OUTBOX_DEPTH:
	case GW_OUTBOX_EXPIRE:
	case GW_HOOK_LEGACY:
		return 0;
	}
	return store_reject(s, "unknown hook operation");
}

void gw_store_hook(struct gw_store *s, const struct gw_hook_req *req, gw_store_done_fn done,
		   void *arg)
{
	int ok = req ? store_hook_args(s, req) == 0 : store_reject(s, "hook request missing") == 0;
	int read;
	struct store_call *c;

	if (ok && !s->ops->hook) {
		ok = 0;
		s->stats.rejected_args++;
		store_fail(s, "state store: the %s backend keeps no webhooks", s->ops->name);
	}
	/* reads (refused arguments go the write path, which refuses them) */
	read = ok && (req->op == GW_HOOK_GET || req->op == GW_HOOK_LIST ||
		      req->op == GW_OUTBOX_DEPTH || req->op == GW_HOOK_LEGACY);
	c = read ? store_call_new(s, OP_HOOK, 0, done, arg)
		 : store_write_call(s, OP_HOOK, ok, 0, done, arg);
	if (c)
		s->ops->hook(s->impl, req, store_complete, c);
}

/* ---- REST facade sessions ---- */

/* The arguments of one session operation (store.h); 0, or -1 refused and counted. */
static int store_sess_args(struct gw_store *s, const struct gw_sess_req *r)
{
	switch (r->op) {
	case GW_SESS_PUT:
		if (!r->token_sha256 || !r->key_sha256)
			return store_reject(s, "session token or key hash missing");
		if (r->expires_ms <= r->now_ms)
			return store_reject(s, "session expires before it is opened");
		return store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX);
	case GW_SESS_GET:
	case GW_SESS_DEL:
		return r->token_sha256 ? 0 : store_reject(s, "session token hash missing");
	case GW_SESS_REVOKE:
		return r->key_sha256 ? 0 : store_reject(s, "session key hash missing");
	case GW_SESS_EXPIRE:
		return r->max >= 1 && r->max <= GW_STORE_SESS_EXPIRE_MAX
			       ? 0
			       : store_reject(s, "an expiry is of 1..GW_STORE_SESS_EXPIRE_MAX sessions");
	}
	return store_reject(s, "unknown session operation");
}

void gw_store_sess(struct gw_store *s, const struct gw_sess_req *req, gw_store_done_fn done,
		   void *arg)
{
	int ok = req ? store_sess_args(s, req) == 0 : store_reject(s, "session request missing") == 0;
	struct store_call *c;

	if (ok && !s->ops->sess) {
		ok = 0;
		s->stats.rejected_args++;
		store_fail(s, "state store: the %s backend keeps no sessions", s->ops->name);
	}
	c = ok && req->op == GW_SESS_GET ? store_call_new(s, OP_SESS, 0, done, arg)
					 : store_write_call(s, OP_SESS, ok, 0, done, arg);
	if (c)
		s->ops->sess(s->impl, req, store_complete, c);
}

/* ---- the usage ledger ---- */

/* The arguments of one ledger operation (store.h); 0, or -1 refused and counted. */
static int store_usage_args(struct gw_store *s, const struct gw_usage_req *r)
{
	const struct gw_usage_row *w = r->row;

	switch (r->op) {
	case GW_USAGE_RESERVE:
		if (!w)
			return store_reject(s, "usage row missing");
		if (w->seconds < 0 || w->persons < 0 || strlen(w->source) > GW_USAGE_SOURCE_MAX)
			return store_reject(s, "usage row out of range");
		if (store_args(s, "reservation id", w->id, GW_USAGE_ID_MAX) != 0)
			return -1;
		return store_args(s, "tenant", w->tenant, GW_STORE_TENANT_MAX);
	case GW_USAGE_START:
		if (store_args(s, "reservation id", r->id, GW_USAGE_ID_MAX) != 0)
			return -1;
		return store_args(s, "rid", r->rid, GW_STORE_ID_MAX);
	case GW_USAGE_RELEASE:
		return store_args(s, "reservation id", r->id, GW_USAGE_ID_MAX);
	case GW_USAGE_SETTLE:
	case GW_USAGE_REFOLLOW:
		return store_args(s, "rid", r->rid, GW_STORE_ID_MAX);
	case GW_USAGE_GET:
		if (store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) != 0)
			return -1;
		return store_args(s, "rid", r->rid, GW_STORE_ID_MAX);
	case GW_USAGE_SUM:
	case GW_USAGE_CHARGED:
		if (r->tenant && store_args(s, "tenant", r->tenant, GW_STORE_TENANT_MAX) != 0)
			return -1;
		return r->from_ms <= r->to_ms ? 0 : store_reject(s, "usage window ends before it starts");
	case GW_USAGE_LIST:
		if (!r->after || strlen(r->after) > GW_USAGE_ID_MAX)
			return store_reject(s, "usage page mark missing or too long");
		return r->max >= 1 && r->max <= GW_USAGE_LIST_MAX
			       ? 0
			       : store_reject(s, "a usage page is of 1..GW_USAGE_LIST_MAX rows");
	}
	return store_reject(s, "unknown usage operation");
}

void gw_store_usage(struct gw_store *s, const struct gw_usage_req *req, gw_store_done_fn done,
		    void *arg)
{
	int ok = req ? store_usage_args(s, req) == 0 : store_reject(s, "usage request missing") == 0;
	int read = ok && (req->op == GW_USAGE_GET || req->op == GW_USAGE_SUM ||
			  req->op == GW_USAGE_CHARGED || req->op == GW_USAGE_LIST);
	struct store_call *c;

	if (ok && !s->ops->usage) {
		ok = 0;
		read = 0;
		s->stats.rejected_args++;
		store_fail(s, "state store: the %s backend keeps no usage ledger", s->ops->name);
	}
	c = read ? store_call_new(s, OP_USAGE, 0, done, arg)
		 : store_write_call(s, OP_USAGE, ok, 0, done, arg);
	if (c)
		s->ops->usage(s->impl, req, store_complete, c);
}

/* ---- the job follower's set ---- */

void gw_store_job_claim(struct gw_store *s, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			size_t max, gw_store_done_fn done, void *arg)
{
	int ok = store_args(s, "lease", lease, GW_STORE_LEASE_MAX) == 0;
	struct store_call *c;

	if (ok && (max < 1 || max > GW_STORE_CLAIM_MAX))
		ok = store_reject(s, "a claim is of 1..GW_STORE_CLAIM_MAX jobs") == 0;
	c = store_write_call(s, OP_CLAIM, ok, 0, done, arg);
	if (c)
		s->ops->job_claim(s->impl, lease, lease_until_ms, now_ms, max, store_complete, c);
}

void gw_store_job_renew(struct gw_store *s, const char *lease, int64_t lease_until_ms,
			gw_store_done_fn done, void *arg)
{
	int ok = store_args(s, "lease", lease, GW_STORE_LEASE_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_JOB_RENEW, ok, 0, done, arg);

	if (c)
		s->ops->job_renew(s->impl, lease, lease_until_ms, store_complete, c);
}

void gw_store_job_settle(struct gw_store *s, const char *rid, int64_t now_ms, gw_store_done_fn done,
			 void *arg)
{
	int ok = store_args(s, "rid", rid, GW_STORE_ID_MAX) == 0;
	struct store_call *c = store_write_call(s, OP_SETTLE, ok, 0, done, arg);

	if (c)
		s->ops->job_settle(s->impl, rid, now_ms, store_complete, c);
}

/* ---- opening ---- */

/* The front around a backend; with owner_cache, the owner cache on a writable store (not for
 * memory: it is a hash table already). Closes impl on failure. */
static struct gw_store *store_wrap(void *impl, const struct gw_store_ops *ops, int read_only,
				   int owner_cache)
{
	struct gw_store *s = calloc(1, sizeof *s);

	if (s && owner_cache && !read_only) {
		s->oc = calloc(GW_STORE_OWNER_CACHE, sizeof *s->oc);
		if (!s->oc) {
			free(s);
			s = NULL;
		}
	}
	if (!s) {
		ops->close(impl);
		return NULL;
	}
	s->ops = ops;
	s->impl = impl;
	s->read_only = read_only;
	return s;
}

/* An in-process backend behind the inline adapter and the front. */
static struct gw_store *store_wrap_sync(void *impl, const struct gw_store_sync_ops *sops, int read_only,
					 int owner_cache)
{
	const struct gw_store_ops *ops = NULL;
	void *inl = gw_store_inline_wrap(impl, sops, &ops);
	struct gw_store *s = inl ? store_wrap(inl, ops, read_only, owner_cache) : NULL;

	if (s && sops->owner_peek) {
		s->peek = sops->owner_peek;
		s->peek_impl = impl;
	}
	return s;
}

struct gw_store *gw_store_open(const char *path, int read_only, char *err, size_t errlen)
{
	const struct gw_store_sync_ops *sops = NULL;
	char buf[GW_STORE_ERR_MAX] = "";
	struct gw_store *s = NULL;
	void *impl;

	if (!path) {
		s = gw_store_open_mem(0, read_only);
		if (!s)
			snprintf(buf, sizeof buf, "state store: out of memory");
		goto out;
	}
	impl = gw_store_sqlite_open(path, read_only, &sops, buf, sizeof buf);
	if (!impl)
		goto out;
	s = store_wrap_sync(impl, sops, read_only, 1);
	if (!s)
		snprintf(buf, sizeof buf, "state store: out of memory");
out:
	if (!s && err && errlen)
		snprintf(err, errlen, "%s", buf);
	return s;
}

struct gw_store *gw_store_open_mem(size_t max_entries, int read_only)
{
	const struct gw_store_sync_ops *sops = NULL;
	void *impl = gw_store_mem_open(max_entries ? max_entries : GW_STORE_MEM_MAX_ENTRIES, &sops);

	return impl ? store_wrap_sync(impl, sops, read_only, 0) : NULL;
}

struct gw_store *gw_store_open_pg(struct event_base *base, const struct gw_pg_opts *o, char *err,
				  size_t errlen)
{
	const struct gw_store_ops *ops = NULL;
	char buf[GW_STORE_ERR_MAX] = "";
	struct gw_store *s = NULL;
	void *impl = gw_store_pg_backend_open(base, o, &ops, buf, sizeof buf);

	if (impl) {
		s = store_wrap(impl, ops, 0, 1);
		if (!s)
			snprintf(buf, sizeof buf, "state store: out of memory");
	}
	if (!s && err && errlen)
		snprintf(err, errlen, "%s", buf);
	return s;
}

void gw_store_close(struct gw_store *s)
{
	if (!s)
		return;
	s->ops->close(s->impl);
	for (size_t i = 0; s->oc && i < GW_STORE_OWNER_CACHE; i++)
		store_oc_clear(&s->oc[i]);
	free(s->oc);
	free(s);
}

const struct gw_store_stats *gw_store_stats(const struct gw_store *s)
{
	return &s->stats;
}

const char *gw_store_errmsg(const struct gw_store *s)
{
	return s->err;
}

int gw_store_read_only(const struct gw_store *s)
{
	return s->read_only;
}

const char *gw_store_backend(const struct gw_store *s)
{
	return s->ops->name;
}

const char *gw_store_unready(const struct gw_store *s)
{
	return s->ops->unready(s->impl);
}

size_t gw_store_inflight(const struct gw_store *s)
{
	return s ? s->inflight : 0;
}

const struct gw_pg_stats *gw_store_pg_stats(const struct gw_store *s)
{
	return s->ops->pg_stats(s->impl);
}
