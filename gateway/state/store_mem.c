/*
 * store_mem: the in-memory store backend. Two chained hash tables with a fixed bucket count:
 * owners keyed by (kind, id), idempotency keys by (tenant, key). At most max_entries rows in
 * total; an insert past it fails with GW_STORE_B_FULL (counted by store.c). Nothing survives
 * the process.
 */
#include "gateway/state/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/idhash.h"

#define MEM_BUCKETS 65536u	/* per table; chains stay short up to ~1M rows */

struct mem_owner {
	struct mem_owner *next;
	int kind;
	char id[GW_STORE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
	int64_t created_ms;
	int64_t settled_ms;			/* jobs: 0 until the follower settles it */
	char lease[GW_STORE_LEASE_MAX + 1];	/* jobs: the follower holding it ("" = none) */
	int64_t lease_until_ms;
};

struct mem_idem {
	struct mem_idem *next;
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	struct gw_idem e;
};

/* Webhook subscriptions and outbox rows: plain lists, scanned (the memory backend serves the demo
 * and tests; their sizes are bounded by the hooks per tenant and the rows limit). */
struct mem_hook {
	struct mem_hook *next;
	struct gw_hook h;
};

struct mem_outbox {
	struct mem_outbox *next;
	struct gw_outbox_row r;		/* url and secret unused: taken from the hook at claim */
	int state;
	char lease[GW_STORE_LEASE_MAX + 1];
	int64_t lease_until_ms;
};

/* REST facade sessions, chained by their token hash's first bytes (uniform: a SHA-256). */
#define MEM_SESS_BUCKETS 4096u
struct mem_sess {
	struct mem_sess *next;
	uint8_t token_sha256[32];
	struct gw_sess s;
};

struct mem_store {
	struct mem_sess *sess[MEM_SESS_BUCKETS];
	struct mem_owner **owners;
	struct mem_idem **idems;
	struct mem_hook *hooks;
	struct mem_outbox *outbox;
	struct gw_usage_row *usage;	/* the ledger, in insertion order (started_ms order too) */
	size_t nusage, capusage;
	size_t nrows, max_rows;
	char err[GW_STORE_ERR_MAX];
};

/* FNV-1a over a kind/tenant prefix and a string. */
static uint32_t mem_hash(uint32_t h, const char *str)
{
	for (const unsigned char *p = (const unsigned char *)str; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static uint32_t mem_owner_slot(int kind, const char *id)
{
	return gw_idhash((uint64_t)kind, id, strlen(id)) % MEM_BUCKETS;	/* every polled rid */
}

static uint32_t mem_idem_slot(const char *tenant, const char *key)
{
	/* the 0xff separator keeps ("ab","c") and ("a","bc") apart */
	return mem_hash(mem_hash(2166136261u, tenant) * 16777619u ^ 0xffu, key) % MEM_BUCKETS;
}

static struct mem_owner **mem_owner_find(struct mem_store *m, int kind, const char *id)
{
	struct mem_owner **pp = &m->owners[mem_owner_slot(kind, id)];

	while (*pp && ((*pp)->kind != kind || strcmp((*pp)->id, id) != 0))
		pp = &(*pp)->next;
	return pp;
}

static struct mem_idem **mem_idem_find(struct mem_store *m, const char *tenant, const char *key)
{
	struct mem_idem **pp = &m->idems[mem_idem_slot(tenant, key)];

	while (*pp && (strcmp((*pp)->tenant, tenant) != 0 || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

static const char *mem_errmsg(void *impl)
{
	struct mem_store *m = impl;

	return m->err;
}

static void mem_close(void *impl)
{
	struct mem_store *m = impl;

	if (!m)
		return;
	for (size_t i = 0; m->owners && i < MEM_BUCKETS; i++) {
		for (struct mem_owner *o = m->owners[i], *n; o; o = n) {
			n = o->next;
			free(o);
		}
	}
	for (size_t i = 0; m->idems && i < MEM_BUCKETS; i++) {
		for (struct mem_idem *d = m->idems[i], *n; d; d = n) {
			n = d->next;
			free(d);
		}
	}
	for (struct mem_hook *h = m->hooks, *n; h; h = n) {
		n = h->next;
		explicit_bzero(h, sizeof *h);
		free(h);
	}
	for (struct mem_outbox *o = m->outbox, *n; o; o = n) {
		n = o->next;
		free(o);
	}
	for (size_t i = 0; i < MEM_SESS_BUCKETS; i++) {
		for (struct mem_sess *x = m->sess[i], *n; x; x = n) {
			n = x->next;
			explicit_bzero(x, sizeof *x);
			free(x);
		}
	}
	free(m->usage);
	free(m->owners);
	free(m->idems);
	free(m);
}

static int mem_owner_put(void *impl, int k, const char *id, const char *tenant, int64_t now_ms)
{
	struct mem_store *m = impl;
	struct mem_owner **pp = mem_owner_find(m, k, id);
	struct mem_owner *o;

	if (*pp)
		return strcmp((*pp)->tenant, tenant) == 0 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
	if (m->nrows >= m->max_rows)
		return GW_STORE_B_FULL;
	o = calloc(1, sizeof *o);
	if (!o) {
		snprintf(m->err, sizeof m->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	o->kind = k;
	memcpy(o->id, id, strlen(id) + 1);	/* lengths checked by store.c */
	memcpy(o->tenant, tenant, strlen(tenant) + 1);
	o->created_ms = now_ms;
	*pp = o;
	m->nrows++;
	return GW_STORE_B_OK;
}

static int mem_owner_get(void *impl, int k, const char *id, char *tenant, size_t tenantlen)
{
	struct mem_store *m = impl;
	struct mem_owner *o = *mem_owner_find(m, k, id);
	size_t n;

	if (!o)
		return GW_STORE_B_ABSENT;
	n = strlen(o->tenant);
	if (n >= tenantlen) {
		snprintf(m->err, sizeof m->err, "tenant buffer too small");
		return GW_STORE_B_ERR;
	}
	memcpy(tenant, o->tenant, n + 1);
	return GW_STORE_B_OK;
}

static int mem_owner_peek(void *impl, int k, const char *id, const char **tenant)
{
	const struct mem_owner *o = *mem_owner_find(impl, k, id);

	*tenant = o ? o->tenant : NULL;
	return o ? GW_STORE_B_OK : GW_STORE_B_ABSENT;
}

static int mem_owner_del(void *impl, int k, const char *id)
{
	struct mem_store *m = impl;
	struct mem_owner **pp = mem_owner_find(m, k, id);
	struct mem_owner *o = *pp;

	if (!o)
		return GW_STORE_B_ABSENT;
	*pp = o->next;
	free(o);
	m->nrows--;
	return GW_STORE_B_OK;
}

static int mem_idem_begin(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			  const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			  struct gw_idem *existing)
{
	struct mem_store *m = impl;
	struct mem_idem **pp = mem_idem_find(m, tenant, key);
	struct mem_idem *d;

	if (*pp) {
		*existing = (*pp)->e;
		return GW_STORE_B_EXISTS;
	}
	if (m->nrows >= m->max_rows)
		return GW_STORE_B_FULL;
	d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(m->err, sizeof m->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	memcpy(d->tenant, tenant, strlen(tenant) + 1);
	memcpy(d->key, key, strlen(key) + 1);
	memcpy(d->e.fp, fp, sizeof d->e.fp);
	memcpy(d->e.source, source, strlen(source) + 1);
	d->e.created_ms = now_ms;
	snprintf(d->e.lease, sizeof d->e.lease, "%s", lease);
	d->e.lease_until_ms = lease_until_ms;
	*pp = d;
	m->nrows++;
	return GW_STORE_B_OK;
}

static int mem_idem_finish(void *impl, const char *tenant, const char *key, const char *rid)
{
	struct mem_store *m = impl;
	struct mem_idem *d = *mem_idem_find(m, tenant, key);

	if (!d)
		return GW_STORE_B_ABSENT;
	if (d->e.done)
		return strcmp(d->e.rid, rid) == 0 ? GW_STORE_B_OK : GW_STORE_B_CONFLICT;
	d->e.done = 1;
	memcpy(d->e.rid, rid, strlen(rid) + 1);
	d->e.lease[0] = '\0';
	d->e.lease_until_ms = 0;
	return GW_STORE_B_OK;
}

static int mem_idem_take(void *impl, const char *tenant, const char *key, const char *old_lease,
			 int64_t old_until_ms, const char *lease, int64_t lease_until_ms)
{
	struct mem_store *m = impl;
	struct mem_idem *d = *mem_idem_find(m, tenant, key);

	if (!d || d->e.done || strcmp(d->e.lease, old_lease) != 0 || d->e.lease_until_ms != old_until_ms)
		return GW_STORE_B_CONFLICT;
	snprintf(d->e.lease, sizeof d->e.lease, "%s", lease);
	d->e.lease_until_ms = lease_until_ms;
	return GW_STORE_B_OK;
}

static long mem_idem_renew(void *impl, const char *lease, int64_t lease_until_ms)
{
	struct mem_store *m = impl;
	long n = 0;

	for (size_t i = 0; i < MEM_BUCKETS; i++)
		for (struct mem_idem *d = m->idems[i]; d; d = d->next)
			if (!d->e.done && strcmp(d->e.lease, lease) == 0) {
				d->e.lease_until_ms = lease_until_ms;
				n++;
			}
	return n;
}

static int mem_idem_release(void *impl, const char *tenant, const char *key)
{
	struct mem_store *m = impl;
	struct mem_idem *d = *mem_idem_find(m, tenant, key);

	if (!d)
		return GW_STORE_B_ABSENT;
	if (!d->e.done) {
		d->e.lease[0] = '\0';
		d->e.lease_until_ms = 0;
	}
	return GW_STORE_B_OK;
}

static int mem_idem_abort(void *impl, const char *tenant, const char *key)
{
	struct mem_store *m = impl;
	struct mem_idem **pp = mem_idem_find(m, tenant, key);
	struct mem_idem *d = *pp;

	if (!d)
		return GW_STORE_B_ABSENT;
	if (d->e.done)
		return GW_STORE_B_OK;
	*pp = d->next;
	free(d);
	m->nrows--;
	return GW_STORE_B_OK;
}

static long mem_idem_count(void *impl)
{
	struct mem_store *m = impl;
	long n = 0;

	for (size_t i = 0; i < MEM_BUCKETS; i++)
		for (const struct mem_idem *d = m->idems[i]; d; d = d->next)
			n += !d->e.done;
	return n;
}

static long mem_idem_expire(void *impl, int64_t older_than_ms)
{
	struct mem_store *m = impl;
	long n = 0;

	for (size_t i = 0; i < MEM_BUCKETS; i++) {
		struct mem_idem **pp = &m->idems[i];

		while (*pp) {
			struct mem_idem *d = *pp;

			if (d->e.created_ms < older_than_ms) {
				*pp = d->next;
				free(d);
				m->nrows--;
				n++;
			} else {
				pp = &d->next;
			}
		}
	}
	return n;
}

/* ---- webhook subscriptions and outbox (store.h) ---- */

static struct mem_hook **mem_hook_find(struct mem_store *m, const char *tenant, const char *id)
{
	struct mem_hook **pp = &m->hooks;

	while (*pp && (strcmp((*pp)->h.tenant, tenant) != 0 || strcmp((*pp)->h.id, id) != 0))
		pp = &(*pp)->next;
	return pp;
}

static int mem_oom(struct mem_store *m)
{
	snprintf(m->err, sizeof m->err, "out of memory");
	return GW_STORE_B_ERR;
}

static int mem_hook_create(struct mem_store *m, const struct gw_hook *h)
{
	struct mem_hook *n;
	size_t count = 0;

	if (*mem_hook_find(m, h->tenant, h->id))
		return GW_STORE_B_CONFLICT;
	for (struct mem_hook *x = m->hooks; x; x = x->next)
		count += strcmp(x->h.tenant, h->tenant) == 0;
	if (count >= GW_STORE_HOOKS_MAX || m->nrows >= m->max_rows)
		return GW_STORE_B_FULL;
	if (!(n = calloc(1, sizeof *n)))
		return mem_oom(m);
	n->h = *h;
	n->next = m->hooks;
	m->hooks = n;
	m->nrows++;
	return GW_STORE_B_OK;
}

/* Hooks of tenant in created order (the list is newest first). */
static int mem_hook_list(struct mem_store *m, const char *tenant, struct gw_hook_out *out)
{
	if (!(out->hooks = calloc(GW_STORE_HOOKS_MAX, sizeof *out->hooks)))
		return mem_oom(m);
	for (struct mem_hook *x = m->hooks; x && out->count < GW_STORE_HOOKS_MAX; x = x->next)
		if (strcmp(x->h.tenant, tenant) == 0)
			out->hooks[out->count++] = x->h;
	for (long i = 0; i < out->count / 2; i++) {
		struct gw_hook t = out->hooks[i];

		out->hooks[i] = out->hooks[out->count - 1 - i];
		out->hooks[out->count - 1 - i] = t;
	}
	return GW_STORE_B_OK;
}

static void mem_outbox_drop(struct mem_store *m, const char *tenant, const char *id)
{
	for (struct mem_outbox **pp = &m->outbox; *pp;) {
		struct mem_outbox *o = *pp;

		if (strcmp(o->r.tenant, tenant) == 0 && strcmp(o->r.endpoint, id) == 0) {
			*pp = o->next;
			free(o);
			m->nrows--;
		} else {
			pp = &o->next;
		}
	}
}

static struct mem_outbox *mem_outbox_find(struct mem_store *m, const char *endpoint, const char *rid)
{
	for (struct mem_outbox *o = m->outbox; o; o = o->next)
		if (strcmp(o->r.endpoint, endpoint) == 0 && strcmp(o->r.rid, rid) == 0)
			return o;
	return NULL;
}

static int mem_outbox_add(struct mem_store *m, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	unsigned ev = r->event ? r->event : GW_HOOK_EV_JOB_COMPLETED;

	for (struct mem_hook *x = m->hooks; x; x = x->next) {
		struct mem_outbox *o;

		if (strcmp(x->h.tenant, r->tenant) != 0 || x->h.disabled || !(x->h.events & ev) ||
		    mem_outbox_find(m, x->h.id, r->rid))
			continue;
		if (m->nrows >= m->max_rows)
			return GW_STORE_B_FULL;
		if (!(o = calloc(1, sizeof *o)))
			return mem_oom(m);
		snprintf(o->r.tenant, sizeof o->r.tenant, "%s", r->tenant);
		snprintf(o->r.endpoint, sizeof o->r.endpoint, "%s", x->h.id);
		snprintf(o->r.rid, sizeof o->r.rid, "%s", r->rid);
		snprintf(o->r.body, sizeof o->r.body, "%s", r->body);
		o->r.created_ms = o->r.next_ms = r->now_ms;
		o->next = m->outbox;
		m->outbox = o;
		m->nrows++;
		out->count++;
	}
	return GW_STORE_B_OK;
}

static int mem_outbox_claim(struct mem_store *m, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	/* oldest due first: repeated passes pick the smallest next_ms not taken yet. The rows are
	 * allocated once one is due: the pump asks every second, mostly for nothing, and clearing
	 * GW_OUTBOX_CLAIM_MAX rows of URLs and secrets each time was most of an idle loop's work. */
	while ((size_t)out->count < r->max) {
		struct mem_outbox *best = NULL;
		struct mem_hook *bh = NULL;

		for (struct mem_outbox *o = m->outbox; o; o = o->next) {
			struct mem_hook *h;

			if (o->state != GW_OUTBOX_PENDING || o->r.next_ms > r->now_ms ||
			    (o->lease[0] && o->lease_until_ms >= r->now_ms) ||
			    (strcmp(o->lease, r->lease) == 0 && o->lease_until_ms == r->until_ms))
				continue;
			h = *mem_hook_find(m, o->r.tenant, o->r.endpoint);
			if (!h || h->h.disabled || (best && best->r.next_ms <= o->r.next_ms))
				continue;
			best = o;
			bh = h;
		}
		if (!best)
			break;
		if (!out->rows && !(out->rows = calloc(r->max, sizeof *out->rows)))
			return mem_oom(m);
		snprintf(best->lease, sizeof best->lease, "%s", r->lease);
		best->lease_until_ms = r->until_ms;
		out->rows[out->count] = best->r;
		snprintf(out->rows[out->count].url, sizeof out->rows[0].url, "%s", bh->h.url);
		snprintf(out->rows[out->count].secret, sizeof out->rows[0].secret, "%s", bh->h.secret);
		out->count++;
	}
	return GW_STORE_B_OK;
}

static int mem_hook(void *impl, const struct gw_hook_req *r, struct gw_hook_out *out)
{
	struct mem_store *m = impl;
	struct mem_hook **pp, *h;
	struct mem_outbox *o;

	switch (r->op) {
	case GW_HOOK_CREATE:
		return mem_hook_create(m, r->hook);
	case GW_HOOK_GET:
		if (!(h = *mem_hook_find(m, r->tenant, r->id)))
			return GW_STORE_B_ABSENT;
		if (!(out->hooks = calloc(1, sizeof *out->hooks)))
			return mem_oom(m);
		out->hooks[0] = h->h;
		out->count = 1;
		return GW_STORE_B_OK;
	case GW_HOOK_LIST:
		return mem_hook_list(m, r->tenant, out);
	case GW_HOOK_UPDATE:
		if (!(h = *mem_hook_find(m, r->hook->tenant, r->hook->id)))
			return GW_STORE_B_ABSENT;
		memcpy(h->h.url, r->hook->url, sizeof h->h.url);
		memcpy(h->h.description, r->hook->description, sizeof h->h.description);
		memcpy(h->h.reason, r->hook->reason, sizeof h->h.reason);
		if (r->hook->secret[0])
			memcpy(h->h.secret, r->hook->secret, sizeof h->h.secret);
		h->h.events = r->hook->events;
		h->h.disabled = r->hook->disabled;
		h->h.updated_ms = r->hook->updated_ms;
		h->h.failing_since_ms = r->hook->failing_since_ms;
		return GW_STORE_B_OK;
	case GW_HOOK_DELETE:
		pp = mem_hook_find(m, r->tenant, r->id);
		if (!(h = *pp))
			return GW_STORE_B_ABSENT;
		*pp = h->next;
		explicit_bzero(h, sizeof *h);
		free(h);
		m->nrows--;
		mem_outbox_drop(m, r->tenant, r->id);
		return GW_STORE_B_OK;
	case GW_HOOK_HEALTH:
		if (!(h = *mem_hook_find(m, r->tenant, r->id)))
			return GW_STORE_B_ABSENT;
		if (r->ok) {
			h->h.failing_since_ms = 0;
			return GW_STORE_B_OK;
		}
		if (h->h.failing_since_ms == 0)
			h->h.failing_since_ms = r->now_ms;
		if (!h->h.disabled && r->disable_after_ms > 0 &&
		    r->now_ms - h->h.failing_since_ms >= r->disable_after_ms) {
			h->h.disabled = 1;
			snprintf(h->h.reason, sizeof h->h.reason, "%s", r->reason);
			out->count = 1;
		}
		return GW_STORE_B_OK;
	case GW_OUTBOX_ADD:
		return mem_outbox_add(m, r, out);
	case GW_OUTBOX_CLAIM:
		return mem_outbox_claim(m, r, out);
	case GW_OUTBOX_SETTLE:
		o = mem_outbox_find(m, r->id, r->rid);
		if (!o || o->state != GW_OUTBOX_PENDING || strcmp(o->r.tenant, r->tenant) != 0 ||
		    strcmp(o->lease, r->lease) != 0)
			return GW_STORE_B_CONFLICT;
		o->state = r->state;
		o->r.attempts = r->attempts;
		o->r.next_ms = r->next_ms;
		o->lease[0] = '\0';
		o->lease_until_ms = 0;
		return GW_STORE_B_OK;
	case GW_OUTBOX_DEPTH:
		if (!(out->depths = calloc(GW_OUTBOX_DEPTH_MAX, sizeof *out->depths)))
			return mem_oom(m);
		for (o = m->outbox; o; o = o->next) {
			long i;

			if (o->state != GW_OUTBOX_PENDING)
				continue;
			for (i = 0; i < out->count && strcmp(out->depths[i].tenant, o->r.tenant) != 0; i++)
				;
			if (i == out->count) {
				if (out->count == GW_OUTBOX_DEPTH_MAX)
					continue;
				snprintf(out->depths[i].tenant, sizeof out->depths[i].tenant, "%s",
					 o->r.tenant);
				out->count++;
			}
			out->depths[i].pending++;
		}
		return GW_STORE_B_OK;
	case GW_OUTBOX_EXPIRE:
		for (struct mem_outbox **op = &m->outbox; *op;) {
			o = *op;
			if (o->state != GW_OUTBOX_PENDING && o->r.created_ms < r->older_ms) {
				*op = o->next;
				free(o);
				m->nrows--;
				out->count++;
			} else {
				op = &o->next;
			}
		}
		return GW_STORE_B_OK;
	case GW_HOOK_LEGACY:
		if (!(out->hooks = calloc(GW_HOOK_LEGACY_MAX, sizeof *out->hooks)))
			return mem_oom(m);
		for (size_t i = 0; i < MEM_BUCKETS && out->count < GW_HOOK_LEGACY_MAX; i++)
			for (struct mem_owner *x = m->owners[i]; x && out->count < GW_HOOK_LEGACY_MAX;
			     x = x->next)
				if (x->kind == GW_OBJ_ENDPOINT) {
					memcpy(out->hooks[out->count].tenant, x->tenant, sizeof x->tenant);
					memcpy(out->hooks[out->count].id, x->id, sizeof x->id);
					out->count++;
				}
		return GW_STORE_B_OK;
	}
	snprintf(m->err, sizeof m->err, "unknown hook operation");
	return GW_STORE_B_ERR;
}

/* The oldest unsettled jobs not leased to lease, oldest first (one writer: another holder is a
 * process that is gone). A scan of every row: the memory backend serves tests and small demos. */
static long mem_job_claim(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  struct gw_store_job *out, size_t max)
{
	struct mem_store *m = impl;
	struct mem_owner **pick = calloc(max, sizeof *pick);
	size_t n = 0;

	(void)now_ms;
	if (!pick) {
		snprintf(m->err, sizeof m->err, "out of memory");
		return GW_STORE_B_ERR;
	}
	for (size_t i = 0; i < MEM_BUCKETS; i++) {
		for (struct mem_owner *o = m->owners[i]; o; o = o->next) {
			size_t j;

			if (o->kind != GW_OBJ_JOB || o->settled_ms || strcmp(o->lease, lease) == 0)
				continue;
			/* keep the max oldest: insertion into the sorted pick list */
			if (n == max && o->created_ms >= pick[n - 1]->created_ms)
				continue;
			j = n < max ? n++ : max - 1;
			while (j > 0 && pick[j - 1]->created_ms > o->created_ms) {
				pick[j] = pick[j - 1];
				j--;
			}
			pick[j] = o;
		}
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(pick[i]->lease, sizeof pick[i]->lease, "%s", lease);
		pick[i]->lease_until_ms = lease_until_ms;
		memcpy(out[i].rid, pick[i]->id, sizeof out[i].rid);
		memcpy(out[i].tenant, pick[i]->tenant, sizeof out[i].tenant);
		out[i].created_ms = pick[i]->created_ms;
	}
	free(pick);
	return (long)n;
}

static long mem_job_renew(void *impl, const char *lease, int64_t lease_until_ms)
{
	struct mem_store *m = impl;
	long n = 0;

	for (size_t i = 0; i < MEM_BUCKETS; i++) {
		for (struct mem_owner *o = m->owners[i]; o; o = o->next) {
			if (o->kind != GW_OBJ_JOB || o->settled_ms || strcmp(o->lease, lease) != 0)
				continue;
			o->lease_until_ms = lease_until_ms;
			if (!lease_until_ms)
				o->lease[0] = '\0';
			n++;
		}
	}
	return n;
}

static int mem_job_settle(void *impl, const char *rid, int64_t now_ms)
{
	struct mem_store *m = impl;
	struct mem_owner *o = *mem_owner_find(m, GW_OBJ_JOB, rid);

	if (!o)
		return GW_STORE_B_ABSENT;
	if (!o->settled_ms)
		o->settled_ms = now_ms > 0 ? now_ms : 1;
	o->lease[0] = '\0';
	o->lease_until_ms = 0;
	return GW_STORE_B_OK;
}

/* ---- REST facade sessions (store.h) ---- */

static struct mem_sess **mem_sess_find(struct mem_store *m, const uint8_t token[32])
{
	struct mem_sess **pp = &m->sess[((unsigned)token[0] << 8 | token[1]) % MEM_SESS_BUCKETS];

	while (*pp && memcmp((*pp)->token_sha256, token, 32) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void mem_sess_unlink(struct mem_store *m, struct mem_sess **pp)
{
	struct mem_sess *x = *pp;

	*pp = x->next;
	explicit_bzero(x, sizeof *x);
	free(x);
	m->nrows--;
}

static int mem_sess_put(struct mem_store *m, const struct gw_sess_req *r)
{
	struct mem_sess *x, **pp;
	size_t n = 0;

	if (*mem_sess_find(m, r->token_sha256))
		return GW_STORE_B_CONFLICT;
	/* a scan: the memory backend serves the demo and tests */
	for (size_t b = 0; b < MEM_SESS_BUCKETS; b++)
		for (x = m->sess[b]; x; x = x->next)
			n += x->s.expires_ms > r->now_ms && strcmp(x->s.tenant, r->tenant) == 0;
	if (n >= GW_STORE_SESS_TENANT_MAX || m->nrows >= m->max_rows)
		return GW_STORE_B_FULL;
	x = calloc(1, sizeof *x);
	if (!x)
		return mem_oom(m);
	memcpy(x->token_sha256, r->token_sha256, 32);
	memcpy(x->s.key_sha256, r->key_sha256, 32);
	snprintf(x->s.tenant, sizeof x->s.tenant, "%s", r->tenant);
	x->s.created_ms = r->now_ms;
	x->s.expires_ms = r->expires_ms;
	pp = mem_sess_find(m, r->token_sha256);	/* the end of its chain */
	*pp = x;
	m->nrows++;
	return GW_STORE_B_OK;
}

/* Removes sessions that match (key given: opened with it; else expired at now_ms), at most max. */
static long mem_sess_drop(struct mem_store *m, const uint8_t *key, int64_t now_ms, size_t max)
{
	long n = 0;

	for (size_t b = 0; b < MEM_SESS_BUCKETS && (size_t)n < max; b++) {
		struct mem_sess **pp = &m->sess[b];

		while (*pp && (size_t)n < max) {
			if (key ? memcmp((*pp)->s.key_sha256, key, 32) == 0
				: (*pp)->s.expires_ms <= now_ms) {
				mem_sess_unlink(m, pp);
				n++;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	return n;
}

static int mem_sess(void *impl, const struct gw_sess_req *r, struct gw_sess *out, long *count)
{
	struct mem_store *m = impl;
	struct mem_sess **pp;

	switch (r->op) {
	case GW_SESS_PUT:
		return mem_sess_put(m, r);
	case GW_SESS_GET:
		pp = mem_sess_find(m, r->token_sha256);
		if (!*pp || (*pp)->s.expires_ms <= r->now_ms)
			return GW_STORE_B_ABSENT;
		*out = (*pp)->s;
		return GW_STORE_B_OK;
	case GW_SESS_DEL:
		pp = mem_sess_find(m, r->token_sha256);
		if (*pp)
			mem_sess_unlink(m, pp);
		return GW_STORE_B_OK;
	case GW_SESS_REVOKE:
		*count = mem_sess_drop(m, r->key_sha256, 0, (size_t)-1);
		return GW_STORE_B_OK;
	case GW_SESS_EXPIRE:
		*count = mem_sess_drop(m, NULL, r->now_ms, r->max);
		return GW_STORE_B_OK;
	}
	snprintf(m->err, sizeof m->err, "unknown session operation");
	return GW_STORE_B_ERR;
}

/* ---- the usage ledger (store.h): scans, for the demo and tests ---- */

/* Counts against the budget at stale_ms (reservations made at or before it no longer do). */
static int64_t mem_usage_counted(const struct gw_usage_row *w, int64_t stale_ms)
{
	return w->state == GW_USAGE_RESERVED && w->started_ms <= stale_ms ? 0 : w->counted;
}

static int mem_usage_reserve(struct mem_store *m, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	const struct gw_usage_row *w = r->row;
	int64_t stale = w->started_ms - GW_USAGE_RESERVE_STALE_MS;
	struct gw_usage_sum *sum = calloc(1, sizeof *sum);
	int dup = 0;

	if (!sum)
		return mem_oom(m);
	out->sums = sum;
	out->count = 1;
	snprintf(sum->tenant, sizeof sum->tenant, "%s", w->tenant);
	for (size_t i = 0; i < m->nusage; i++) {
		const struct gw_usage_row *x = &m->usage[i];
		int64_t c = mem_usage_counted(x, stale);

		dup |= strcmp(x->id, w->id) == 0;
		if (c <= 0 || x->started_ms < r->from_ms || strcmp(x->tenant, w->tenant) != 0)
			continue;
		sum->seconds += c;
		if (!sum->oldest_ms || x->started_ms < sum->oldest_ms)
			sum->oldest_ms = x->started_ms;
	}
	if (dup || (r->limit_s >= 0 && sum->seconds + w->seconds > r->limit_s))
		return GW_STORE_B_CONFLICT;
	if (m->nrows >= m->max_rows)
		return GW_STORE_B_FULL;
	if (m->nusage == m->capusage) {
		size_t cap = m->capusage ? 2 * m->capusage : 64;
		struct gw_usage_row *n = realloc(m->usage, cap * sizeof *n);

		if (!n)
			return mem_oom(m);
		m->usage = n;
		m->capusage = cap;
	}
	m->usage[m->nusage] = *w;
	m->usage[m->nusage].rid[0] = '\0';
	m->usage[m->nusage].state = GW_USAGE_RESERVED;
	m->usage[m->nusage].counted = w->seconds;
	m->usage[m->nusage].ended_ms = 0;
	m->nusage++;
	m->nrows++;
	return GW_STORE_B_OK;
}

static int mem_usage_write(struct mem_store *m, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	for (size_t i = 0; i < m->nusage; i++) {
		struct gw_usage_row *x = &m->usage[i];

		if (r->op == GW_USAGE_SETTLE) {
			if (x->state != GW_USAGE_RUNNING || strcmp(x->rid, r->rid) != 0)
				continue;
			x->state = r->ok ? GW_USAGE_SUCCEEDED : GW_USAGE_FAILED;
			x->counted = r->ok || r->count_failed ? x->seconds : 0;
			x->ended_ms = r->now_ms;
			out->count++;
			continue;
		}
		if (x->state != GW_USAGE_RESERVED || strcmp(x->id, r->id) != 0)
			continue;
		if (r->op == GW_USAGE_START) {
			snprintf(x->rid, sizeof x->rid, "%s", r->rid);
			x->state = GW_USAGE_RUNNING;
		} else {
			x->state = GW_USAGE_RELEASED;
			x->counted = 0;
			x->ended_ms = r->now_ms;
		}
		out->count++;
	}
	return r->op == GW_USAGE_START && out->count == 0 ? GW_STORE_B_ABSENT : GW_STORE_B_OK;
}

/* 1 when a is before b in LIST order: (started_ms, id). */
static int mem_usage_before(const struct gw_usage_row *a, const struct gw_usage_row *b)
{
	return a->started_ms != b->started_ms ? a->started_ms < b->started_ms : strcmp(a->id, b->id) < 0;
}

static int mem_usage_list(struct mem_store *m, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	struct gw_usage_row mark = { .started_ms = r->from_ms };
	const struct gw_usage_row *last = &mark;

	if (!(out->rows = calloc(r->max, sizeof *out->rows)))
		return mem_oom(m);
	snprintf(mark.id, sizeof mark.id, "%s", r->after);
	/* repeated passes pick the smallest row after the last one taken */
	while ((size_t)out->count < r->max) {
		const struct gw_usage_row *best = NULL;

		for (size_t i = 0; i < m->nusage; i++) {
			const struct gw_usage_row *x = &m->usage[i];

			if (x->started_ms < r->to_ms && mem_usage_before(last, x) &&
			    (x->started_ms > r->from_ms || strcmp(x->id, r->after) > 0) &&
			    (!best || mem_usage_before(x, best)))
				best = x;
		}
		if (!best)
			break;
		out->rows[out->count++] = *best;
		last = best;
	}
	return GW_STORE_B_OK;
}

static int mem_usage_sums(struct mem_store *m, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	int64_t stale = r->now_ms - GW_USAGE_RESERVE_STALE_MS;

	if (!(out->sums = calloc(GW_USAGE_SUMS_MAX, sizeof *out->sums)))
		return mem_oom(m);
	for (size_t i = 0; i < m->nusage; i++) {
		const struct gw_usage_row *x = &m->usage[i];
		int64_t t = r->op == GW_USAGE_SUM ? x->started_ms : x->ended_ms;
		struct gw_usage_sum *u = NULL;
		long k;

		if (r->op == GW_USAGE_CHARGED && x->state != GW_USAGE_SUCCEEDED && x->state != GW_USAGE_FAILED)
			continue;
		if (t < r->from_ms || t >= r->to_ms || (r->tenant && strcmp(r->tenant, x->tenant) != 0))
			continue;
		for (k = 0; k < out->count; k++)
			if (strcmp(out->sums[k].tenant, x->tenant) == 0)
				break;
		if (k == out->count) {
			if (out->count >= GW_USAGE_SUMS_MAX)
				continue;
			/* sorted by tenant, as the SQL backends answer */
			while (k > 0 && strcmp(out->sums[k - 1].tenant, x->tenant) > 0)
				k--;
			memmove(&out->sums[k + 1], &out->sums[k], (size_t)(out->count - k) * sizeof *u);
			memset(&out->sums[k], 0, sizeof *u);
			snprintf(out->sums[k].tenant, sizeof out->sums[k].tenant, "%s", x->tenant);
			out->count++;
		}
		u = &out->sums[k];
		u->seconds += mem_usage_counted(x, stale);
		u->jobs[x->state]++;
		if (x->counted > 0 && (!u->oldest_ms || x->started_ms < u->oldest_ms))
			u->oldest_ms = x->started_ms;
	}
	return GW_STORE_B_OK;
}

static int mem_usage(void *impl, const struct gw_usage_req *r, struct gw_usage_out *out)
{
	struct mem_store *m = impl;

	switch (r->op) {
	case GW_USAGE_RESERVE:
		return mem_usage_reserve(m, r, out);
	case GW_USAGE_START:
	case GW_USAGE_RELEASE:
	case GW_USAGE_SETTLE:
		return mem_usage_write(m, r, out);
	case GW_USAGE_REFOLLOW: {
		struct mem_owner *o = *mem_owner_find(m, GW_OBJ_JOB, r->rid);

		if (o && o->settled_ms) {
			o->settled_ms = 0;
			o->lease[0] = '\0';
			o->lease_until_ms = 0;
			out->count = 1;
		}
		return GW_STORE_B_OK;
	}
	case GW_USAGE_GET:
		if (!(out->rows = calloc(1, sizeof *out->rows)))
			return mem_oom(m);
		for (size_t i = m->nusage; i-- > 0;) {
			const struct gw_usage_row *x = &m->usage[i];

			if (x->state != GW_USAGE_RELEASED && strcmp(x->rid, r->rid) == 0 &&
			    strcmp(x->tenant, r->tenant) == 0) {
				out->rows[0] = *x;
				out->count = 1;
				return GW_STORE_B_OK;
			}
		}
		return GW_STORE_B_ABSENT;
	case GW_USAGE_LIST:
		return mem_usage_list(m, r, out);
	case GW_USAGE_SUM:
	case GW_USAGE_CHARGED:
		return mem_usage_sums(m, r, out);
	}
	snprintf(m->err, sizeof m->err, "unknown usage operation");
	return GW_STORE_B_ERR;
}

static const struct gw_store_sync_ops mem_ops = {
	.name = "memory",
	.close = mem_close,
	.errmsg = mem_errmsg,
	.owner_put = mem_owner_put,
	.owner_get = mem_owner_get,
	.owner_peek = mem_owner_peek,
	.owner_del = mem_owner_del,
	.idem_begin = mem_idem_begin,
	.idem_take = mem_idem_take,
	.idem_renew = mem_idem_renew,
	.idem_finish = mem_idem_finish,
	.idem_release = mem_idem_release,
	.idem_abort = mem_idem_abort,
	.idem_count = mem_idem_count,
	.idem_expire = mem_idem_expire,
	.hook = mem_hook,
	.job_claim = mem_job_claim,
	.job_renew = mem_job_renew,
	.job_settle = mem_job_settle,
	.sess = mem_sess,
	.usage = mem_usage,
};

void *gw_store_mem_open(size_t max_entries, const struct gw_store_sync_ops **ops)
{
	struct mem_store *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->owners = calloc(MEM_BUCKETS, sizeof *m->owners);
	m->idems = calloc(MEM_BUCKETS, sizeof *m->idems);
	if (!m->owners || !m->idems) {
		mem_close(m);
		return NULL;
	}
	m->max_rows = max_entries;
	*ops = &mem_ops;
	return m;
}
