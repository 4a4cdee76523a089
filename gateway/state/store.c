/*
 * store: argument checks, read-only policy, counters and timing in front of a backend. See store.h.
 */
#include "gateway/state/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
};

/* ---- owner cache (see store.h) ---- */

static uint32_t store_oc_hash(int kind, const char *id)
{
	uint32_t h = 2166136261u ^ (uint32_t)kind;

	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 16777619u;
	}
	return h ^ (h >> 15);
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

/* One timed backend call: started by store_op_begin, closed by store_op_end. */
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

static void store_op_end(struct gw_store *s, int64_t t0, int brc)
{
	uint64_t us = (uint64_t)(store_mono_us() - t0);

	s->stats.ops++;
	if (us > s->stats.max_op_us)
		s->stats.max_op_us = us;
	if (us > GW_STORE_SLOW_US)
		s->stats.slow_ops++;
	switch (brc) {
	case GW_STORE_B_ERR:
		s->stats.errors++;
		store_fail(s, "state store: %s", s->ops->errmsg(s->impl));
		break;
	case GW_STORE_B_FULL:
		s->stats.rejected_full++;
		store_fail(s, "state store is full");
		break;
	default:
		break;
	}
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

static int store_reject(struct gw_store *s, const char *what)
{
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

/* owner_cache: put the owner cache in front (only where the process is the only writer). */
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

struct gw_store *gw_store_open(const char *path, int read_only, char *err, size_t errlen)
{
	const struct gw_store_ops *ops = NULL;
	char buf[GW_STORE_ERR_MAX] = "";
	struct gw_store *s = NULL;
	void *impl;

	if (!path) {
		s = gw_store_open_mem(0, read_only);
		if (!s)
			snprintf(buf, sizeof buf, "state store: out of memory");
		goto out;
	}
	impl = gw_store_sqlite_open(path, read_only, &ops, buf, sizeof buf);
	if (!impl)
		goto out;
	s = store_wrap(impl, ops, read_only, 1);
	if (!s)
		snprintf(buf, sizeof buf, "state store: out of memory");
out:
	if (!s && err && errlen)
		snprintf(err, errlen, "%s", buf);
	return s;
}

struct gw_store *gw_store_open_mem(size_t max_entries, int read_only)
{
	const struct gw_store_ops *ops = NULL;
	void *impl = gw_store_mem_open(max_entries ? max_entries : GW_STORE_MEM_MAX_ENTRIES, &ops);

	return impl ? store_wrap(impl, ops, read_only, 0) : NULL;
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

int gw_store_owner_put(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
		       int64_t now_ms)
{
	int64_t t0;
	int brc;

	if (!store_kind_ok(k) || !store_str_ok(id, GW_STORE_ID_MAX))
		return store_reject(s, "id");
	if (!store_str_ok(tenant, GW_STORE_TENANT_MAX))
		return store_reject(s, "tenant");
	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	brc = s->ops->owner_put(s->impl, (int)k, id, tenant, now_ms);
	store_op_end(s, t0, brc);
	if (brc == GW_STORE_B_OK)
		store_oc_set(s, (int)k, id, tenant);
	else
		store_oc_forget(s, (int)k, id);
	if (brc == GW_STORE_B_CONFLICT) {
		s->stats.owner_conflicts++;
		store_fail(s, "state store: id already owned by another tenant");
	}
	return brc == GW_STORE_B_OK ? 0 : -1;
}

int gw_store_owner_get(struct gw_store *s, enum gw_store_kind k, const char *id, char *tenant,
		       size_t tenantlen)
{
	const struct store_oc_ent *e;
	int64_t t0;
	int brc;

	if (!store_kind_ok(k) || !store_str_ok(id, GW_STORE_ID_MAX))
		return store_reject(s, "id");
	if (!tenant || !tenantlen)
		return store_reject(s, "tenant buffer");
	e = store_oc_find(s, (int)k, id);
	if (e && (!e->tenant || strlen(e->tenant) < tenantlen)) {
		s->stats.owner_cache_hits++;
		if (!e->tenant)
			return 0;
		memcpy(tenant, e->tenant, strlen(e->tenant) + 1);
		return 1;
	}
	t0 = store_mono_us();
	brc = s->ops->owner_get(s->impl, (int)k, id, tenant, tenantlen);
	store_op_end(s, t0, brc);
	if (brc == GW_STORE_B_OK || brc == GW_STORE_B_ABSENT)
		store_oc_set(s, (int)k, id, brc == GW_STORE_B_OK ? tenant : NULL);
	if (brc == GW_STORE_B_OK)
		return 1;
	return brc == GW_STORE_B_ABSENT ? 0 : -1;
}

int gw_store_owner_del(struct gw_store *s, enum gw_store_kind k, const char *id)
{
	int64_t t0;
	int brc;

	if (!store_kind_ok(k) || !store_str_ok(id, GW_STORE_ID_MAX))
		return store_reject(s, "id");
	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	brc = s->ops->owner_del(s->impl, (int)k, id);
	store_op_end(s, t0, brc);
	store_oc_forget(s, (int)k, id);
	return brc == GW_STORE_B_ERR ? -1 : 0;
}

int gw_store_owner_each(struct gw_store *s, enum gw_store_kind k, const char *tenant,
			int (*cb)(void *arg, const char *id), void *arg)
{
	int64_t t0;
	int brc;

	if (!store_kind_ok(k) || !cb)
		return store_reject(s, "kind or callback");
	if (!store_str_ok(tenant, GW_STORE_TENANT_MAX))
		return store_reject(s, "tenant");
	t0 = store_mono_us();
	brc = s->ops->owner_each(s->impl, (int)k, tenant, cb, arg);
	store_op_end(s, t0, brc);
	return brc == GW_STORE_B_ERR ? -1 : 0;
}

int gw_store_idem_begin(struct gw_store *s, const char *tenant, const char *key, const uint8_t fp[32],
			const char *source, int64_t now_ms, struct gw_idem *existing)
{
	struct gw_idem tmp;
	int64_t t0;
	int brc;

	if (!store_str_ok(tenant, GW_STORE_TENANT_MAX))
		return store_reject(s, "tenant");
	if (!store_str_ok(key, GW_STORE_KEY_MAX))
		return store_reject(s, "idempotency key");
	if (!store_str_ok(source, GW_STORE_SOURCE_MAX) || !fp)
		return store_reject(s, "source");
	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	brc = s->ops->idem_begin(s->impl, tenant, key, fp, source, now_ms, existing ? existing : &tmp);
	store_op_end(s, t0, brc);
	if (brc == GW_STORE_B_OK)
		return 1;
	return brc == GW_STORE_B_EXISTS ? 0 : -1;
}

int gw_store_idem_finish(struct gw_store *s, const char *tenant, const char *key, const char *rid)
{
	int64_t t0;
	int brc;

	if (!store_str_ok(tenant, GW_STORE_TENANT_MAX))
		return store_reject(s, "tenant");
	if (!store_str_ok(key, GW_STORE_KEY_MAX))
		return store_reject(s, "idempotency key");
	if (!store_str_ok(rid, GW_STORE_RID_MAX))
		return store_reject(s, "rid");
	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	brc = s->ops->idem_finish(s->impl, tenant, key, rid);
	store_op_end(s, t0, brc);
	if (brc == GW_STORE_B_CONFLICT || brc == GW_STORE_B_ABSENT) {
		s->stats.idem_conflicts++;
		store_fail(s, "state store: idempotency key %s",
			   brc == GW_STORE_B_ABSENT ? "is not pending" : "already has another job");
	}
	return brc == GW_STORE_B_OK ? 0 : -1;
}

int gw_store_idem_abort(struct gw_store *s, const char *tenant, const char *key)
{
	int64_t t0;
	int brc;

	if (!store_str_ok(tenant, GW_STORE_TENANT_MAX))
		return store_reject(s, "tenant");
	if (!store_str_ok(key, GW_STORE_KEY_MAX))
		return store_reject(s, "idempotency key");
	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	brc = s->ops->idem_abort(s->impl, tenant, key);
	store_op_end(s, t0, brc);
	return brc == GW_STORE_B_ERR ? -1 : 0;
}

int gw_store_idem_pending(struct gw_store *s,
			  int (*cb)(void *arg, const char *tenant, const char *key,
				    const struct gw_idem *e),
			  void *arg)
{
	int64_t t0;
	int brc;

	if (!cb)
		return store_reject(s, "callback");
	t0 = store_mono_us();
	brc = s->ops->idem_pending(s->impl, cb, arg);
	store_op_end(s, t0, brc);
	return brc == GW_STORE_B_ERR ? -1 : 0;
}

int gw_store_idem_expire(struct gw_store *s, int64_t older_than_ms)
{
	int64_t t0;
	long n;

	if (!store_writable(s))
		return -1;
	t0 = store_mono_us();
	n = s->ops->idem_expire(s->impl, older_than_ms);
	store_op_end(s, t0, n < 0 ? GW_STORE_B_ERR : GW_STORE_B_OK);
	return n < 0 ? -1 : (int)n;
}
