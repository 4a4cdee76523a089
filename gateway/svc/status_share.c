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
#define SHARE_PROGRESS_PREFIX "sp:"	/* in-progress statuses, PX TTL */
#define SHARE_LEASE_PREFIX "poll:"	/* the polling lease of an account */
#define SHARE_HOT_PREFIX "hot:"		/* the cluster's hot rids of an account */
#define SHARE_CLAIM_ARGS 7		/* the claim script's arguments before the rids */

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
	int (*apply_aged)(void *arg, size_t acct, const Animate3d__V1__JobStatus *st, int64_t age_ms,
			  int only_tracked);
	void (*claim_done)(struct gw_status_claim *c, int ok, int64_t wait_ms,
			   const unsigned char *verdict, const char *const *extra, size_t nextra);
	void *apply_arg;
	int64_t progress_ttl_ms, lease_ms, wait_ms;
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

static int share_acct_key(const struct gw_status_share *sh, const char *what, size_t acct,
			  char *buf, size_t cap)
{
	char name[GW_REDIS_KEY_MAX];
	int n = snprintf(name, sizeof name, "%s%s", what, sh->accounts[acct]);

	if (n < 0 || (size_t)n >= sizeof name)
		return -1;
	return gw_redis_key(sh->redis, name, buf, cap);
}

static void share_on_unhot(void *arg, const redisReply *reply, const char *err)
{
	(void)reply;
	(void)err;	/* a final left in the hot set is polled once more, then dropped after 2 TTL */
	share_life_back(arg);
}

/* A final rid leaves the cluster's hot set: nobody needs to poll it any more. */
static void share_unhot(struct gw_status_share *sh, size_t acct, const char *rid)
{
	char key[GW_REDIS_KEY_MAX];
	const char *argv[3];
	size_t argvlen[3];
	int klen;

	if (!sh->apply_aged || (klen = share_acct_key(sh, SHARE_HOT_PREFIX, acct, key, sizeof key)) <= 0)
		return;
	argv[0] = "ZREM";
	argv[1] = key;
	argv[2] = rid;
	argvlen[0] = 4;
	argvlen[1] = (size_t)klen;
	argvlen[2] = strlen(rid);
	if (gw_redis_command(sh->redis, share_on_unhot, sh->life, 3, argv, argvlen) == 0)
		sh->life->pending++;
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
	share_unhot(sh, acct, st->rid);
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

/* Another replica's in-progress statuses (a packed GetStatusResponse): applied, as if fetched
 * here, to the rids this replica tracks. */
static void share_on_progress(struct gw_status_share *sh, size_t acct, const char *p, size_t len)
{
	Animate3d__V1__GetStatusResponse *resp;

	if (!sh->apply_aged)
		return;
	resp = animate3d__v1__get_status_response__unpack(NULL, len, (const uint8_t *)p);
	if (!resp) {
		sh->cnt.bad++;
		return;
	}
	for (size_t i = 0; i < resp->n_statuses; i++) {
		const Animate3d__V1__JobStatus *st = resp->statuses[i];

		if (!st || !st->rid || !gw_tr_rid_valid(st->rid) || gw_cache_state_final((int)st->state)) {
			sh->cnt.bad++;
			continue;
		}
		sh->cnt.progress_received++;
		if (sh->apply_aged(sh->apply_arg, acct, st, 0, 1) == 1)
			sh->cnt.progress_applied++;
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
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
	if (len < 2 || (p[0] != '1' && p[0] != '2' && p[0] != '3') || p[1] != '\t')
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
	if (msg[0] == '3') {
		share_on_progress(sh, i, p, (size_t)(end - p));
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
		gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, 1);
	} else {
		gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, 0);
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
		if (sh) {
			sh->cnt.lookup_refused++;
			gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, 1);
		}
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
	gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, 1);
	return NULL;
}

void gw_status_share_lookup_cancel(struct gw_status_share_lookup *lk)
{
	if (lk)
		lk->done = NULL;	/* freed when its reply comes */
}

/* ---- in-progress polling: claims and the shared answers ---- */

/*
 * The claim. ARGV: lease key, hot key, progress key prefix, instance, lease_ms, hot_ttl_ms, cap,
 * rid... Adds the rids to the hot set (score: Redis's clock; stale members dropped first; past
 * the cap a rid is not added). Flags per rid: 'w' already hot, 'n' new, 'f' set full.
 * Returns {1, lease_ms, flags, member...} when it took the lease (this replica polls the hot
 * set), {2, pttl, flags} when the lease is already this replica's, {0, pttl, flags, value, pttl,
 * ...} when another replica holds it: per rid its stored in-progress entry ("" when none or not
 * hot) and that entry's PTTL. Keys are built from the prefix: the gateway talks to one Redis
 * server, not a cluster.
 */
static struct gw_redis_script share_claim_script = {
	.lua =
	"local lease, hot, sp, me = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
	"local hot_ttl, cap = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"redis.call('ZREMRANGEBYSCORE', hot, '-inf', now - hot_ttl)\n"
	"local size = redis.call('ZCARD', hot)\n"
	"local flags = {}\n"
	"for i = 8, #ARGV do\n"
	"  if redis.call('ZSCORE', hot, ARGV[i]) then\n"
	"    redis.call('ZADD', hot, now, ARGV[i]); flags[#flags + 1] = 'w'\n"
	"  elseif size < cap then\n"
	"    redis.call('ZADD', hot, now, ARGV[i]); size = size + 1; flags[#flags + 1] = 'n'\n"
	"  else flags[#flags + 1] = 'f' end\n"
	"end\n"
	"if size > 0 then redis.call('PEXPIRE', hot, hot_ttl) end\n"
	"local f = table.concat(flags)\n"
	"local cur = redis.call('GET', lease)\n"
	"if not cur then\n"
	"  redis.call('SET', lease, me, 'PX', ARGV[5])\n"
	"  local out = {1, tonumber(ARGV[5]), f}\n"
	"  local m = redis.call('ZRANGE', hot, 0, cap - 1)\n"
	"  for i = 1, #m do out[#out + 1] = m[i] end\n"
	"  return out\n"
	"end\n"
	"if cur == me then return {2, redis.call('PTTL', lease), f} end\n"
	"local out = {0, redis.call('PTTL', lease), f}\n"
	"for i = 8, #ARGV do\n"
	"  local v = false\n"
	"  if flags[i - 7] == 'w' then v = redis.call('GET', sp .. ARGV[i]) end\n"
	"  if v then\n"
	"    out[#out + 1] = v; out[#out + 1] = redis.call('PTTL', sp .. ARGV[i])\n"
	"  else out[#out + 1] = ''; out[#out + 1] = -2 end\n"
	"end\n"
	"return out\n",
};

/* ARGV: progress key prefix, ttl_ms, channel, message, then rid, value pairs: stores each value
 * under prefix..rid (PX ttl) and publishes the message once. */
static struct gw_redis_script share_progress_script = {
	.lua =
	"for i = 5, #ARGV, 2 do\n"
	"  redis.call('SET', ARGV[1] .. ARGV[i], ARGV[i + 1], 'PX', ARGV[2])\n"
	"end\n"
	"return redis.call('PUBLISH', ARGV[3], ARGV[4])\n",
};

struct share_claim {
	struct share_life *life;
	struct gw_status_claim *c;	/* NULL: cancelled */
	size_t acct, n;
	char rids[][GW_TR_RID_MAX + 1];
};

static int64_t share_int(const redisReply *e)
{
	if (e->type == REDIS_REPLY_INTEGER)
		return (int64_t)e->integer;
	if (e->type == REDIS_REPLY_STRING)
		return strtoll(e->str, NULL, 10);
	return -1;
}

static void share_on_claim(void *arg, const redisReply *reply, const char *err)
{
	struct share_claim *sc = arg;
	struct gw_status_share *sh;
	unsigned char verdict[GW_STATUS_SHARE_CLAIM_MAX];
	const char **extra = NULL;
	size_t nextra = 0;
	int ok = 0;
	const char *flags;
	int64_t kind, pttl;

	if (!share_life_back(sc->life) || !sc->c) {
		free(sc);
		return;
	}
	sh = sc->life->sh;
	if (err || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[2]->type != REDIS_REPLY_STRING || reply->element[2]->len != sc->n) {
		sh->cnt.claim_failed++;
		goto done;
	}
	kind = share_int(reply->element[0]);
	pttl = share_int(reply->element[1]);
	flags = reply->element[2]->str;
	memset(verdict, 0, sizeof verdict);
	ok = 1;
	if (kind == 1) {
		sh->cnt.lease_taken++;
		nextra = reply->elements - 3;
		extra = calloc(nextra ? nextra : 1, sizeof *extra);
		if (!extra)
			nextra = 0;
		for (size_t i = 0; i < nextra; i++) {
			const redisReply *e = reply->element[3 + i];

			extra[i] = e->type == REDIS_REPLY_STRING ? e->str : "";
		}
	} else if (kind == 2) {
		sh->cnt.lease_held++;
	} else if (kind == 0 && reply->elements == 3 + 2 * sc->n) {
		sh->cnt.lease_lost++;
		for (size_t i = 0; i < sc->n; i++) {
			const redisReply *v = reply->element[3 + 2 * i];
			int64_t vttl = share_int(reply->element[4 + 2 * i]);
			Animate3d__V1__JobStatus *st = NULL;

			if (flags[i] == 'n') {
				sh->cnt.claim_new++;
				continue;
			}
			if (flags[i] != 'w') {
				sh->cnt.claim_full++;
				continue;
			}
			if (v->type == REDIS_REPLY_STRING && v->len > 0 && vttl > 0)
				st = animate3d__v1__job_status__unpack(NULL, v->len, (const uint8_t *)v->str);
			if (st && st->rid && strcmp(st->rid, sc->rids[i]) == 0 &&
			    !gw_cache_state_final((int)st->state) && vttl <= sh->progress_ttl_ms &&
			    sh->apply_aged(sh->apply_arg, sc->acct, st, sh->progress_ttl_ms - vttl, 0) >= 0) {
				/* Applied: the record is fresh, the claim's end serves its waiters. */
				sh->cnt.claim_stored++;
				verdict[i] = GW_STATUS_SHARE_WAIT;
			} else if (pttl >= 0 && sh->lease_ms - pttl < sh->wait_ms) {
				/* The holder took the lease lately: its answer is on its way. */
				verdict[i] = GW_STATUS_SHARE_WAIT;
			}
			if (st)
				protobuf_c_message_free_unpacked(&st->base, NULL);
		}
	} else {
		sh->cnt.claim_failed++;
		ok = 0;
	}
done:
	gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, !ok);
	sh->claim_done(sc->c, ok, sh->wait_ms, verdict, extra, nextra);
	free(extra);
	free(sc);
}

void *gw_status_share_claim(void *arg, size_t acct, const char *const *rids, size_t n,
			    struct gw_status_claim *c)
{
	struct gw_status_share *sh = arg;
	char lease[GW_REDIS_KEY_MAX], hot[GW_REDIS_KEY_MAX], sp[GW_REDIS_KEY_MAX];
	char lease_ms[24], hot_ttl[24], cap[24];
	const char *argv[GW_REDIS_MAX_ARGS];
	size_t argvlen[GW_REDIS_MAX_ARGS];
	struct share_claim *sc = NULL;
	int kl, hl, pl;

	if (!sh || !sh->apply_aged || acct >= sh->naccounts || n == 0 ||
	    n > GW_STATUS_SHARE_CLAIM_MAX || !gw_redis_connected(sh->redis))
		goto refused;
	kl = share_acct_key(sh, SHARE_LEASE_PREFIX, acct, lease, sizeof lease);
	hl = share_acct_key(sh, SHARE_HOT_PREFIX, acct, hot, sizeof hot);
	pl = share_acct_key(sh, SHARE_PROGRESS_PREFIX, acct, sp, sizeof sp);
	if (kl <= 0 || hl <= 0 || pl <= 0 || (size_t)pl + 2 >= sizeof sp)
		goto refused;
	sp[pl++] = ':';	/* <prefix>sp:<account>:<rid> */
	sp[pl] = '\0';
	sc = calloc(1, sizeof *sc + n * sizeof sc->rids[0]);
	if (!sc)
		goto refused;
	snprintf(lease_ms, sizeof lease_ms, "%lld", (long long)sh->lease_ms);
	snprintf(hot_ttl, sizeof hot_ttl, "%lld", 2LL * sh->progress_ttl_ms);
	snprintf(cap, sizeof cap, "%d", GW_STATUS_SHARE_HOT_MAX);
	argv[0] = lease;
	argv[1] = hot;
	argv[2] = sp;
	argv[3] = sh->instance;
	argv[4] = lease_ms;
	argv[5] = hot_ttl;
	argv[6] = cap;
	for (int i = 0; i < SHARE_CLAIM_ARGS; i++)
		argvlen[i] = strlen(argv[i]);
	for (size_t i = 0; i < n; i++) {
		if (!rids[i] || !gw_tr_rid_valid(rids[i]))
			goto refused;
		snprintf(sc->rids[i], sizeof sc->rids[i], "%s", rids[i]);
		argv[SHARE_CLAIM_ARGS + i] = sc->rids[i];
		argvlen[SHARE_CLAIM_ARGS + i] = strlen(sc->rids[i]);
	}
	sc->life = sh->life;
	sc->c = c;
	sc->acct = acct;
	sc->n = n;
	if (gw_redis_eval(sh->redis, &share_claim_script, 0, SHARE_CLAIM_ARGS + (int)n, argv, argvlen,
			  share_on_claim, sc) != 0)
		goto refused;
	sh->life->pending++;
	return sc;
refused:
	free(sc);
	if (sh) {
		sh->cnt.claim_local++;
		gw_redis_part_note(sh->redis, GW_REDIS_PART_STATUS, 1);
	}
	return NULL;
}

void gw_status_share_claim_cancel(void *arg, void *handle)
{
	struct share_claim *sc = handle;

	(void)arg;
	if (sc)
		sc->c = NULL;	/* freed when its reply comes */
}

static void share_on_progress_sent(void *arg, const redisReply *reply, const char *err)
{
	struct share_life *life = arg;

	(void)reply;
	if (!share_life_back(life))
		return;
	if (err) {
		life->sh->cnt.progress_publish_failed++;
		life->sh->cnt.progress_published--;
	}
}

/* Stores and publishes st[0..n) (1..GW_STATUS_SHARE_PUBLISH_MAX) in one script call. */
static void share_progress_chunk(struct gw_status_share *sh, size_t acct,
				 const Animate3d__V1__JobStatus *const *st, size_t n)
{
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	char sp[GW_REDIS_KEY_MAX], ttl[24], channel[GW_REDIS_CHANNEL_MAX + 1];
	const char *argv[GW_REDIS_MAX_ARGS];
	size_t argvlen[GW_REDIS_MAX_ARGS], packed, head, off;
	uint8_t *buf = NULL;
	int pl, cl, argc = 4;

	pl = share_acct_key(sh, SHARE_PROGRESS_PREFIX, acct, sp, sizeof sp);
	cl = gw_redis_key(sh->redis, GW_STATUS_SHARE_CHANNEL, channel, sizeof channel);
	if (pl <= 0 || (size_t)pl + 2 >= sizeof sp || cl <= 0)
		goto failed;
	sp[pl++] = ':';
	sp[pl] = '\0';
	resp.statuses = (Animate3d__V1__JobStatus **)st;
	resp.n_statuses = n;
	packed = protobuf_c_message_get_packed_size(&resp.base);
	head = strlen(sh->instance) + strlen(sh->accounts[acct]) + 4;
	/* The message, then each status's packed bytes for its key. */
	if (2 * packed + head > GW_STATUS_SHARE_MAX_MSG || !(buf = malloc(2 * packed + head + 1)))
		goto failed;
	snprintf((char *)buf, head + 1, "3\t%s\t%s\t", sh->instance, sh->accounts[acct]);
	protobuf_c_message_pack(&resp.base, buf + head);
	snprintf(ttl, sizeof ttl, "%lld", (long long)sh->progress_ttl_ms);
	argv[0] = sp;
	argv[1] = ttl;
	argv[2] = channel;
	argv[3] = (const char *)buf;
	argvlen[0] = (size_t)pl;
	argvlen[1] = strlen(ttl);
	argvlen[2] = (size_t)cl;
	argvlen[3] = head + packed;
	off = head + packed;
	for (size_t i = 0; i < n; i++) {
		size_t len = protobuf_c_message_pack(&st[i]->base, buf + off);

		argv[argc] = st[i]->rid;
		argvlen[argc++] = strlen(st[i]->rid);
		argv[argc] = (const char *)buf + off;
		argvlen[argc++] = len;
		off += len;
	}
	if (gw_redis_eval(sh->redis, &share_progress_script, 0, argc, argv, argvlen,
			  share_on_progress_sent, sh->life) != 0)
		goto failed;
	sh->life->pending++;
	sh->cnt.progress_published++;
	free(buf);
	return;
failed:
	free(buf);
	sh->cnt.progress_publish_failed++;
}

void gw_status_share_polled(void *arg, size_t acct, const Animate3d__V1__JobStatus *const *st,
			    size_t n)
{
	struct gw_status_share *sh = arg;
	const Animate3d__V1__JobStatus *chunk[GW_STATUS_SHARE_PUBLISH_MAX];
	size_t k = 0;

	if (!sh || !sh->apply_aged || acct >= sh->naccounts)
		return;
	if (!gw_redis_connected(sh->redis)) {
		sh->cnt.progress_publish_failed++;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!st[i] || !st[i]->rid || !gw_tr_rid_valid(st[i]->rid))
			continue;
		chunk[k++] = st[i];
		if (k == GW_STATUS_SHARE_PUBLISH_MAX) {
			share_progress_chunk(sh, acct, chunk, k);
			k = 0;
		}
	}
	if (k)
		share_progress_chunk(sh, acct, chunk, k);
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
	if (!share_claim_script.sha[0]) {
		gw_redis_script_init(&share_claim_script);
		gw_redis_script_init(&share_progress_script);
	}
	sh->life->sh = sh;
	sh->redis = o->redis;
	gw_redis_part_use(sh->redis, GW_REDIS_PART_STATUS);
	sh->apply = o->apply;
	sh->forget = o->forget;
	if (o->apply_aged && o->claim_done && o->ttl_ms > 0) {
		sh->apply_aged = o->apply_aged;
		sh->claim_done = o->claim_done;
		sh->progress_ttl_ms = o->ttl_ms;
		/* Shorter than the TTL: the holder's own entries expire at the TTL, and by then the
		 * lease is free again for whoever polls first, so one poll covers each window. */
		sh->lease_ms = o->ttl_ms - o->ttl_ms / 10;
		if (sh->lease_ms < 1)
			sh->lease_ms = 1;
		sh->wait_ms = o->ttl_ms / 4 > 50 ? o->ttl_ms / 4 : 50;
	}
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
		{ "lease_taken", offsetof(struct gw_status_share_counters, lease_taken) },
		{ "lease_held", offsetof(struct gw_status_share_counters, lease_held) },
		{ "lease_lost", offsetof(struct gw_status_share_counters, lease_lost) },
		{ "claim_local", offsetof(struct gw_status_share_counters, claim_local) },
		{ "claim_failed", offsetof(struct gw_status_share_counters, claim_failed) },
		{ "claim_new", offsetof(struct gw_status_share_counters, claim_new) },
		{ "claim_full", offsetof(struct gw_status_share_counters, claim_full) },
		{ "claim_stored", offsetof(struct gw_status_share_counters, claim_stored) },
		{ "progress_published", offsetof(struct gw_status_share_counters, progress_published) },
		{ "progress_publish_failed",
		  offsetof(struct gw_status_share_counters, progress_publish_failed) },
		{ "progress_received", offsetof(struct gw_status_share_counters, progress_received) },
		{ "progress_applied", offsetof(struct gw_status_share_counters, progress_applied) },
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
