/*
 * status_share: final statuses shared through Redis (SET + PUBLISH, MGET on a miss). See
 * status_share.h.
 */
#include "gateway/svc/status_share.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api/cache.h"
#include "gateway/api/translate.h"
#include "gateway/base/metrics.h"
#include "gateway/cluster/redis.h"

#define SHARE_INSTANCE_MAX 128
#define SHARE_KEY_PREFIX "st:"

/* What commands in flight point at: outlives the module while any is out (see the header). */
struct share_life {
	struct gw_status_share *sh;	/* NULL once the module is freed */
	unsigned pending;
};

struct gw_status_share_lookup {
	struct share_life *life;
	gw_status_share_found_fn done;	/* NULL: cancelled */
	void *arg;
	size_t acct, n;
	char rids[][GW_TR_RID_MAX + 1];
};

struct gw_status_share {
	struct gw_redis *redis;
	int (*apply)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st);
	int (*forget)(void *arg, size_t acct, const char *rid);
	void *apply_arg;
	struct share_life *life;
	const char *const *accounts;
	size_t naccounts;
	int64_t ttl_ms;
	char instance[SHARE_INSTANCE_MAX];
	struct gw_status_share_counters cnt;
};

/* A command's outcome reached the module: 1 while it is alive, else 0 (and the leftover record
 * is freed with the last command). */
static int share_life_back(struct share_life *life)
{
	life->pending--;
	if (life->sh)
		return 1;
	if (life->pending == 0)
		free(life);
	return 0;
}

static int share_key(const struct gw_status_share *sh, size_t acct, const char *rid, char *buf,
		     size_t cap)
{
	char name[GW_REDIS_KEY_MAX];
	int n = snprintf(name, sizeof name, SHARE_KEY_PREFIX "%s:%s", sh->accounts[acct], rid);

	if (n < 0 || (size_t)n >= sizeof name)
		return -1;
	return gw_redis_key(sh->redis, name, buf, cap);
}

/* ---- publishing a final status ---- */

static void share_on_publish(void *arg, const redisReply *reply, const char *err)
{
	struct share_life *life = arg;

	(void)reply;
	if (!share_life_back(life))
		return;
	if (err) {
		life->sh->cnt.publish_failed++;
		life->sh->cnt.published--;
	}
}

static void share_on_store(void *arg, const redisReply *reply, const char *err)
{
	struct share_life *life = arg;

	(void)reply;
	if (!share_life_back(life))
		return;
	if (err) {
		life->sh->cnt.store_failed++;
		life->sh->cnt.stored--;
	}
}

void gw_status_share_final(void *arg, size_t acct, const Animate3d__V1__JobStatus *st)
{
	struct gw_status_share *sh = arg;
	char key[GW_REDIS_KEY_MAX], ttl[24];
	const char *argv[5];
	size_t argvlen[5], packed, head;
	uint8_t *msg = NULL;
	int klen;

	if (!sh || !st || acct >= sh->naccounts || !st->rid || !gw_cache_state_final((int)st->state))
		return;
	packed = protobuf_c_message_get_packed_size(&st->base);
	head = strlen(sh->instance) + strlen(sh->accounts[acct]) + 4;
	if (packed + head > GW_STATUS_SHARE_MAX_MSG || !(msg = malloc(packed + head + 1))) {
		sh->cnt.publish_failed++;
		sh->cnt.store_failed++;
		return;
	}
	snprintf((char *)msg, head + 1, "1\t%s\t%s\t", sh->instance, sh->accounts[acct]);
	protobuf_c_message_pack(&st->base, msg + head);

	klen = share_key(sh, acct, st->rid, key, sizeof key);
	snprintf(ttl, sizeof ttl, "%lld", (long long)sh->ttl_ms);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = (const char *)msg + head;
	argv[3] = "PX";
	argv[4] = ttl;
	argvlen[0] = 3;
	argvlen[1] = klen > 0 ? (size_t)klen : 0;
	argvlen[2] = packed;
	argvlen[3] = 2;
	argvlen[4] = strlen(ttl);
	if (klen > 0 && gw_redis_command(sh->redis, share_on_store, sh->life, 5, argv, argvlen) == 0) {
		sh->life->pending++;
		sh->cnt.stored++;
	} else {
		sh->cnt.store_failed++;
	}
	if (gw_redis_publish(sh->redis, GW_STATUS_SHARE_CHANNEL, (const char *)msg, packed + head,
			     share_on_publish, sh->life) == 0) {
		sh->life->pending++;
		sh->cnt.published++;
	} else {
		sh->cnt.publish_failed++;
	}
	free(msg);
}

static void share_on_forget(void *arg, const redisReply *reply, const char *err)
{
	(void)reply;
	(void)err;	/* a lost DEL leaves an entry that a later final overwrites */
	share_life_back(arg);
}

void gw_status_share_forget(struct gw_status_share *sh, size_t acct, const char *rid)
{
	char key[GW_REDIS_KEY_MAX], msg[SHARE_INSTANCE_MAX + GW_REDIS_KEY_MAX];
	const char *argv[2];
	size_t argvlen[2];
	int klen, n;

	if (!sh || acct >= sh->naccounts || !rid || !gw_tr_rid_valid(rid))
		return;
	sh->cnt.forgotten++;
	klen = share_key(sh, acct, rid, key, sizeof key);
	n = snprintf(msg, sizeof msg, "2\t%s\t%s\t%s", sh->instance, sh->accounts[acct], rid);
	if (klen <= 0 || n < 0 || (size_t)n >= sizeof msg)
		return;
	argv[0] = "DEL";
	argv[1] = key;
	argvlen[0] = 3;
	argvlen[1] = (size_t)klen;
	if (gw_redis_command(sh->redis, share_on_forget, sh->life, 2, argv, argvlen) == 0)
		sh->life->pending++;
	if (gw_redis_publish(sh->redis, GW_STATUS_SHARE_CHANNEL, msg, (size_t)n, share_on_forget,
			     sh->life) == 0)
		sh->life->pending++;
}

/* ---- receiving ---- */

/* A stored or published status: unpacked, final, with a valid rid; else NULL. */
static Animate3d__V1__JobStatus *share_unpack(const void *p, size_t len)
{
	Animate3d__V1__JobStatus *st = animate3d__v1__job_status__unpack(NULL, len, p);

	if (st && (!st->rid || !gw_tr_rid_valid(st->rid) || !gw_cache_state_final((int)st->state))) {
		protobuf_c_message_free_unpacked(&st->base, NULL);
		st = NULL;
	}
	return st;
}

static void share_on_message(void *arg, const char *channel, const char *msg, size_t len)
{
	struct gw_status_share *sh = arg;
	const char *p = msg, *end = msg + len, *inst, *acct;
	size_t ilen, alen, i;
	Animate3d__V1__JobStatus *st;

	(void)channel;
	if (!msg) {
		/* (Re)subscribed: what was published meanwhile is lost; the watchers' polling
		 * brings it (every TTL), so nothing to re-read here. */
		sh->cnt.resubscribed++;
		return;
	}
	sh->cnt.received++;
	if (len < 2 || (p[0] != '1' && p[0] != '2') || p[1] != '\t')
		goto bad;
	inst = p + 2;
	p = memchr(inst, '\t', (size_t)(end - inst));
	if (!p)
		goto bad;
	ilen = (size_t)(p - inst);
	acct = p + 1;
	p = memchr(acct, '\t', (size_t)(end - acct));
	if (!p)
		goto bad;
	alen = (size_t)(p - acct);
	p++;
	if (ilen == strlen(sh->instance) && memcmp(inst, sh->instance, ilen) == 0) {
		sh->cnt.own++;
		return;
	}
	for (i = 0; i < sh->naccounts; i++)
		if (strlen(sh->accounts[i]) == alen && memcmp(sh->accounts[i], acct, alen) == 0)
			break;
	if (i == sh->naccounts)
		return;		/* an account this replica does not serve */
	if (msg[0] == '2') {
		char rid[GW_TR_RID_MAX + 1];
		size_t rlen = (size_t)(end - p);

		if (rlen == 0 || rlen > GW_TR_RID_MAX)
			goto bad;
		memcpy(rid, p, rlen);
		rid[rlen] = '\0';
		if (!gw_tr_rid_valid(rid))
			goto bad;
		if (sh->forget)
			sh->forget(sh->apply_arg, i, rid);
		sh->cnt.forgotten++;
		return;
	}
	st = share_unpack(p, (size_t)(end - p));
	if (!st)
		goto bad;
	if (sh->apply(sh->apply_arg, i, st) == 1)
		sh->cnt.applied++;
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return;
bad:
	sh->cnt.bad++;
}

/* ---- lookups ---- */

static void share_on_mget(void *arg, const redisReply *reply, const char *err)
{
	struct gw_status_share_lookup *lk = arg;
	struct gw_status_share *sh;
	size_t hits = 0;

	if (!share_life_back(lk->life) || !lk->done) {
		free(lk);
		return;
	}
	sh = lk->life->sh;
	if (err || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != lk->n) {
		sh->cnt.lookup_failed++;
	} else {
		for (size_t i = 0; i < lk->n; i++) {
			const redisReply *e = reply->element[i];
			Animate3d__V1__JobStatus *st;

			if (e->type != REDIS_REPLY_STRING) {
				sh->cnt.lookup_misses++;
				continue;
			}
			st = share_unpack(e->str, e->len);
			if (!st || strcmp(st->rid, lk->rids[i]) != 0) {
				sh->cnt.bad++;
				sh->cnt.lookup_misses++;
			} else if (sh->apply(sh->apply_arg, lk->acct, st) >= 0) {
				sh->cnt.lookup_hits++;
				hits++;
			}
			if (st)
				protobuf_c_message_free_unpacked(&st->base, NULL);
		}
	}
	lk->done(lk->arg, hits);
	free(lk);
}

struct gw_status_share_lookup *gw_status_share_lookup(struct gw_status_share *sh, size_t acct,
						      const char *const *rids, size_t n,
						      gw_status_share_found_fn done, void *arg)
{
	char keys[GW_REDIS_MAX_ARGS][GW_REDIS_KEY_MAX];
	const char *argv[GW_REDIS_MAX_ARGS];
	size_t argvlen[GW_REDIS_MAX_ARGS];
	struct gw_status_share_lookup *lk;
	int klen;

	/* One MGET: the rids past its argument bound are left to upstream. */
	if (n > GW_REDIS_MAX_ARGS - 1)
		n = GW_REDIS_MAX_ARGS - 1;
	if (!sh || !done || acct >= sh->naccounts || n == 0 || n > GW_TR_MAX_RIDS ||
	    !gw_redis_connected(sh->redis)) {
		if (sh)
			sh->cnt.lookup_refused++;
		return NULL;
	}
	lk = calloc(1, sizeof *lk + n * sizeof lk->rids[0]);
	if (!lk)
		goto refused;
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (size_t i = 0; i < n; i++) {
		if (!rids[i] || !gw_tr_rid_valid(rids[i]) ||
		    (klen = share_key(sh, acct, rids[i], keys[i], sizeof keys[i])) <= 0)
			goto refused;
		snprintf(lk->rids[i], sizeof lk->rids[i], "%s", rids[i]);
		argv[i + 1] = keys[i];
		argvlen[i + 1] = (size_t)klen;
	}
	lk->life = sh->life;
	lk->done = done;
	lk->arg = arg;
	lk->acct = acct;
	lk->n = n;
	if (gw_redis_command(sh->redis, share_on_mget, lk, (int)n + 1, argv, argvlen) != 0)
		goto refused;
	sh->life->pending++;
	sh->cnt.lookups++;
	return lk;
refused:
	free(lk);
	sh->cnt.lookup_refused++;
	return NULL;
}

void gw_status_share_lookup_cancel(struct gw_status_share_lookup *lk)
{
	if (lk)
		lk->done = NULL;	/* freed when its reply comes */
}

/* ---- the module ---- */

struct gw_status_share *gw_status_share_new(const struct gw_status_share_opts *o, char *err,
					    size_t errlen)
{
	struct gw_status_share *sh = NULL;
	int rc;

	if (!o || !o->redis || !o->apply || !o->instance || !o->accounts ||
	    strlen(o->instance) >= SHARE_INSTANCE_MAX || strchr(o->instance, '\t')) {
		snprintf(err, errlen, "shared status: invalid options");
		return NULL;
	}
	for (size_t i = 0; i < o->naccounts; i++) {
		if (!o->accounts[i] || !o->accounts[i][0] || strchr(o->accounts[i], '\t')) {
			snprintf(err, errlen, "shared status: account %zu has no usable name", i);
			return NULL;
		}
	}
	sh = calloc(1, sizeof *sh);
	if (!sh || !(sh->life = calloc(1, sizeof *sh->life))) {
		free(sh);
		snprintf(err, errlen, "shared status: out of memory");
		return NULL;
	}
	sh->life->sh = sh;
	sh->redis = o->redis;
	sh->apply = o->apply;
	sh->forget = o->forget;
	sh->apply_arg = o->apply_arg;
	sh->accounts = o->accounts;
	sh->naccounts = o->naccounts;
	sh->ttl_ms = o->final_ttl_ms > 0 ? o->final_ttl_ms : GW_STATUS_SHARE_TTL_MS;
	snprintf(sh->instance, sizeof sh->instance, "%s", o->instance);
	rc = gw_redis_subscribe(sh->redis, GW_STATUS_SHARE_CHANNEL, share_on_message, sh);
	if (rc != GW_REDIS_OK) {
		snprintf(err, errlen, "shared status: cannot subscribe: %s", gw_redis_strerror(rc));
		free(sh->life);
		free(sh);
		return NULL;
	}
	return sh;
}

void gw_status_share_free(struct gw_status_share *sh)
{
	if (!sh)
		return;
	gw_redis_unsubscribe(sh->redis, GW_STATUS_SHARE_CHANNEL);
	if (sh->life->pending == 0)
		free(sh->life);
	else
		sh->life->sh = NULL;
	free(sh);
}

const struct gw_status_share_counters *gw_status_share_counters(const struct gw_status_share *sh)
{
	return sh ? &sh->cnt : NULL;
}

void gw_status_share_metrics(void *arg, struct gw_metrics_out *o)
{
	static const struct {
		const char *what;
		size_t off;
	} rows[] = {
		{ "published", offsetof(struct gw_status_share_counters, published) },
		{ "publish_failed", offsetof(struct gw_status_share_counters, publish_failed) },
		{ "stored", offsetof(struct gw_status_share_counters, stored) },
		{ "store_failed", offsetof(struct gw_status_share_counters, store_failed) },
		{ "received", offsetof(struct gw_status_share_counters, received) },
		{ "own_ignored", offsetof(struct gw_status_share_counters, own) },
		{ "applied", offsetof(struct gw_status_share_counters, applied) },
		{ "bad", offsetof(struct gw_status_share_counters, bad) },
		{ "resubscribed", offsetof(struct gw_status_share_counters, resubscribed) },
		{ "forgotten", offsetof(struct gw_status_share_counters, forgotten) },
		{ "lookups", offsetof(struct gw_status_share_counters, lookups) },
		{ "lookup_local", offsetof(struct gw_status_share_counters, lookup_refused) },
		{ "lookup_failed", offsetof(struct gw_status_share_counters, lookup_failed) },
		{ "lookup_hits", offsetof(struct gw_status_share_counters, lookup_hits) },
		{ "lookup_misses", offsetof(struct gw_status_share_counters, lookup_misses) },
	};
	static const struct gw_status_share_counters zero;
	const struct gw_status_share *sh = arg;
	const struct gw_status_share_counters *c = sh ? &sh->cnt : &zero;
	char labels[64];

	gw_metrics_family(o, "cluster_status_total", "counter",
			  "Statuses shared through Redis, and the fallbacks to local polling (Redis "
			  "down or failing: publish_failed, store_failed, lookup_local, lookup_failed).");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)c + rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "what=\"%s\"", rows[i].what);
		gw_metrics_value(o, "cluster_status_total", labels, v);
	}
}
