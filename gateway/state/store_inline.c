/*
 * store_inline: the asynchronous backend interface over a synchronous in-process backend
 * (SQLite, memory). Every op runs the backend's call and completes at once, before returning,
 * which store.h allows for backends that never block for long.
 */
#include "gateway/state/store.h"

#include <stdlib.h>
#include <string.h>

struct inl {
	void *impl;
	const struct gw_store_sync_ops *s;
	struct gw_store_ops ops;	/* this adapter's table: inl_ops with the backend's name */
};

/* Completes one op with the backend's answer; rc GW_STORE_B_* maps onto the caller's codes. */
static void inl_done(struct inl *b, int brc, gw_store_done_fn done, void *arg,
		     struct gw_store_res *res)
{
	switch (brc) {
	case GW_STORE_B_ERR:
		res->rc = GW_STORE_ERROR;
		res->err = b->s->errmsg(b->impl);
		break;
	case GW_STORE_B_FULL:
		res->rc = GW_STORE_FULL;
		res->err = "store is full";
		break;
	case GW_STORE_B_CONFLICT:
		res->rc = GW_STORE_CONFLICT;
		break;
	default:
		break;
	}
	done(arg, res);
}

static void inl_close(void *impl)
{
	struct inl *b = impl;

	if (!b)
		return;
	b->s->close(b->impl);
	free(b);
}

static const char *inl_unready(void *impl)
{
	(void)impl;
	return NULL;
}

static const struct gw_pg_stats *inl_pg_stats(void *impl)
{
	(void)impl;
	return NULL;
}

static void inl_owner_put(void *impl, int k, const char *id, const char *tenant, int64_t now_ms,
			  gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };

	inl_done(b, b->s->owner_put(b->impl, k, id, tenant, now_ms), done, arg, &res);
}

#define INL_LOOKUP_STACK 8	/* ids answered from stack buffers (GetStatus asks one) */

static void inl_owner_lookup(void *impl, int k, const char *const *ids, size_t n,
			     gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	char stack_who[INL_LOOKUP_STACK][GW_STORE_TENANT_MAX + 1];
	const char *stack_tenants[INL_LOOKUP_STACK];
	char (*who)[GW_STORE_TENANT_MAX + 1] = stack_who;
	const char **tenants = stack_tenants;
	int brc = GW_STORE_B_OK;

	if (n > INL_LOOKUP_STACK) {
		who = malloc(n * sizeof *who);
		tenants = malloc(n * sizeof *tenants);
		if (!who || !tenants) {
			res.rc = GW_STORE_ERROR;
			res.err = "out of memory";
			done(arg, &res);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		brc = b->s->owner_get(b->impl, k, ids[i], who[i], sizeof who[i]);
		if (brc == GW_STORE_B_ERR)
			break;
		tenants[i] = brc == GW_STORE_B_OK ? who[i] : NULL;
	}
	res.tenants = tenants;
	inl_done(b, brc == GW_STORE_B_ERR ? brc : GW_STORE_B_OK, done, arg, &res);
out:
	if (who != stack_who)
		free(who);
	if (tenants != stack_tenants)
		free(tenants);
}

static void inl_owner_del(void *impl, int k, const char *id, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->owner_del(b->impl, k, id);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_OK : brc, done, arg, &res);
}

static void inl_idem_begin(void *impl, const char *tenant, const char *key, const uint8_t fp[32],
			   const char *source, int64_t now_ms, const char *lease, int64_t lease_until_ms,
			   gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	struct gw_idem e = { 0 };
	int brc = b->s->idem_begin(b->impl, tenant, key, fp, source, now_ms, lease, lease_until_ms, &e);

	if (brc == GW_STORE_B_OK) {
		res.rc = GW_STORE_INSERTED;
	} else if (brc == GW_STORE_B_EXISTS) {
		res.idem = &e;
		brc = GW_STORE_B_OK;
	}
	inl_done(b, brc, done, arg, &res);
}

static void inl_idem_take(void *impl, const char *tenant, const char *key, const char *old_lease,
			  int64_t old_until_ms, const char *lease, int64_t lease_until_ms,
			  gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->idem_take(b->impl, tenant, key, old_lease, old_until_ms, lease, lease_until_ms);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_CONFLICT : brc, done, arg, &res);
}

/* renew, count, expire: a count or GW_STORE_B_ERR */
static void inl_count_done(struct inl *b, long n, gw_store_done_fn done, void *arg)
{
	struct gw_store_res res = { 0 };

	res.count = n < 0 ? 0 : n;
	inl_done(b, n < 0 ? GW_STORE_B_ERR : GW_STORE_B_OK, done, arg, &res);
}

static void inl_idem_renew(void *impl, const char *lease, int64_t lease_until_ms,
			   gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;

	inl_count_done(b, b->s->idem_renew(b->impl, lease, lease_until_ms), done, arg);
}

static void inl_idem_finish(void *impl, const char *tenant, const char *key, const char *rid,
			    gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->idem_finish(b->impl, tenant, key, rid);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_CONFLICT : brc, done, arg, &res);
}

static void inl_idem_release(void *impl, const char *tenant, const char *key,
			     gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->idem_release(b->impl, tenant, key);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_OK : brc, done, arg, &res);
}

static void inl_idem_abort(void *impl, const char *tenant, const char *key, gw_store_done_fn done,
			   void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->idem_abort(b->impl, tenant, key);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_OK : brc, done, arg, &res);
}

static void inl_idem_count(void *impl, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;

	inl_count_done(b, b->s->idem_count(b->impl), done, arg);
}

static void inl_idem_expire(void *impl, int64_t older_than_ms, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;

	inl_count_done(b, b->s->idem_expire(b->impl, older_than_ms), done, arg);
}

static void inl_hook(void *impl, const struct gw_hook_req *req, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	struct gw_hook_out out = { 0 };
	int brc = b->s->hook(b->impl, req, &out);

	if (brc == GW_STORE_B_ABSENT) {
		res.rc = GW_STORE_ABSENT;
		brc = GW_STORE_B_OK;
	}
	res.count = out.count;
	res.hooks = out.hooks;
	res.rows = out.rows;
	res.depths = out.depths;
	inl_done(b, brc, done, arg, &res);
	/* the secrets of hooks and rows were copies: wiped before they go back to the heap */
	if (out.hooks)
		explicit_bzero(out.hooks, (size_t)out.count * sizeof *out.hooks);
	if (out.rows)
		explicit_bzero(out.rows, (size_t)out.count * sizeof *out.rows);
	free(out.hooks);
	free(out.rows);
	free(out.depths);
}

static void inl_job_claim(void *impl, const char *lease, int64_t lease_until_ms, int64_t now_ms,
			  size_t max, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	struct gw_store_job *jobs = calloc(max, sizeof *jobs);
	long n;

	if (!jobs) {
		res.rc = GW_STORE_ERROR;
		res.err = "out of memory";
		done(arg, &res);
		return;
	}
	n = b->s->job_claim(b->impl, lease, lease_until_ms, now_ms, jobs, max);
	res.count = n < 0 ? 0 : n;
	res.jobs = jobs;
	inl_done(b, n < 0 ? GW_STORE_B_ERR : GW_STORE_B_OK, done, arg, &res);
	free(jobs);
}

static void inl_job_renew(void *impl, const char *lease, int64_t lease_until_ms,
			  gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;

	inl_count_done(b, b->s->job_renew(b->impl, lease, lease_until_ms), done, arg);
}

static void inl_job_settle(void *impl, const char *rid, int64_t now_ms, gw_store_done_fn done,
			   void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	int brc = b->s->job_settle(b->impl, rid, now_ms);

	inl_done(b, brc == GW_STORE_B_ABSENT ? GW_STORE_B_OK : brc, done, arg, &res);
}

static void inl_sess(void *impl, const struct gw_sess_req *req, gw_store_done_fn done, void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	struct gw_sess out;
	long count = 0;
	int brc;

	memset(&out, 0, sizeof out);
	brc = b->s->sess(b->impl, req, &out, &count);
	if (brc == GW_STORE_B_ABSENT) {
		res.rc = GW_STORE_ABSENT;
		brc = GW_STORE_B_OK;
	} else if (brc == GW_STORE_B_OK && req->op == GW_SESS_GET) {
		res.sess = &out;
	}
	res.count = count;
	inl_done(b, brc, done, arg, &res);
	explicit_bzero(&out, sizeof out);
}

static void inl_usage(void *impl, const struct gw_usage_req *req, gw_store_done_fn done,
		      void *arg)
{
	struct inl *b = impl;
	struct gw_store_res res = { 0 };
	struct gw_usage_out out = { 0 };
	int brc = b->s->usage(b->impl, req, &out);

	if (brc == GW_STORE_B_ABSENT) {
		res.rc = GW_STORE_ABSENT;
		brc = GW_STORE_B_OK;
	}
	if (brc == GW_STORE_B_OK || brc == GW_STORE_B_CONFLICT) {
		res.count = out.count;
		res.usage = out.rows;
		res.usage_sums = out.sums;
	}
	inl_done(b, brc, done, arg, &res);
	free(out.rows);
	free(out.sums);
}

static const struct gw_store_ops inl_ops = {
	.name = NULL,	/* the backend's: set per adapter */
	.shared = 0,
	.close = inl_close,
	.unready = inl_unready,
	.pg_stats = inl_pg_stats,
	.owner_put = inl_owner_put,
	.owner_lookup = inl_owner_lookup,
	.owner_del = inl_owner_del,
	.idem_begin = inl_idem_begin,
	.idem_take = inl_idem_take,
	.idem_renew = inl_idem_renew,
	.idem_finish = inl_idem_finish,
	.idem_release = inl_idem_release,
	.idem_abort = inl_idem_abort,
	.idem_count = inl_idem_count,
	.idem_expire = inl_idem_expire,
	.hook = NULL,	/* inl_hook when the backend has one: set per adapter */
	.job_claim = inl_job_claim,
	.job_renew = inl_job_renew,
	.job_settle = inl_job_settle,
	.sess = NULL,	/* inl_sess when the backend has sessions: set per adapter */
	.usage = NULL,	/* inl_usage when the backend keeps a ledger: set per adapter */
};

void *gw_store_inline_wrap(void *impl, const struct gw_store_sync_ops *sops,
			   const struct gw_store_ops **ops)
{
	struct inl *b = calloc(1, sizeof *b);

	if (!b) {
		sops->close(impl);
		return NULL;
	}
	b->impl = impl;
	b->s = sops;
	b->ops = inl_ops;
	b->ops.name = sops->name;
	if (sops->hook)
		b->ops.hook = inl_hook;
	if (sops->sess)
		b->ops.sess = inl_sess;
	if (sops->usage)
		b->ops.usage = inl_usage;
	*ops = &b->ops;
	return b;
}
