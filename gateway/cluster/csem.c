/*
 * csem: cluster-wide counting semaphores in Redis, spent locally. See csem.h.
 */
#include "gateway/cluster/csem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/base/metrics.h"
#include "gateway/cluster/redis.h"

/*
 * A holder's value is "<slots>:<expiry in server microseconds>:<slots it asked for>" (written in
 * full: tostring() keeps 14 digits). Expired or unreadable holders are deleted on every call, so a
 * dead replica's slots come back once its lease ends. A holder that asked for more than it got is
 * starved (kept with 0 slots too): while there are starved others, a grant is at most a fair share
 * (cap / (starved + 1), rounded up), but never below what the caller may have in flight when the
 * answer reaches it (keep: those slots are its own already, so the total stays within the cap).
 * The busy holder thus gives slots back as its requests end, and the starved ones get them. The
 * hash itself expires a second after the last call's leases would: an idle account leaves
 * nothing behind.
 */
const char GW_CSEM_LUA[] =
	"local cap = tonumber(ARGV[1])\n"
	"local me = ARGV[2]\n"
	"local want = tonumber(ARGV[3])\n"
	"local ttl = tonumber(ARGV[4])\n"
	"local keep = tonumber(ARGV[5]) or 0\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local h = redis.call('HGETALL', KEYS[1])\n"
	"local others = 0\n"
	"local starved = 0\n"
	"for i = 1, #h, 2 do\n"
	"  local n, exp, w = string.match(h[i + 1], '^(%d+):(%d+):(%d+)$')\n"
	"  n = tonumber(n)\n"
	"  exp = tonumber(exp)\n"
	"  w = tonumber(w)\n"
	"  if n == nil or exp == nil or w == nil or exp <= now then\n"
	"    redis.call('HDEL', KEYS[1], h[i])\n"
	"  elseif h[i] ~= me then\n"
	"    others = others + n\n"
	"    if w > n then starved = starved + 1 end\n"
	"  end\n"
	"end\n"
	"local free = cap - others\n"
	"if free < 0 then free = 0 end\n"
	"local grant = want\n"
	"if starved > 0 then\n"
	"  local fair = math.ceil(cap / (starved + 1))\n"
	"  if grant > fair then grant = fair end\n"
	"end\n"
	"if grant > free then grant = free end\n"
	"local use = grant\n"
	"if grant < keep then grant = keep end\n"
	"if grant > free then grant = free end\n"
	"if grant > 0 or want > 0 then\n"
	"  redis.call('HSET', KEYS[1], me, string.format('%d:%.0f:%d', grant, now + ttl * 1000, want))\n"
	"else\n"
	"  redis.call('HDEL', KEYS[1], me)\n"
	"end\n"
	"redis.call('PEXPIRE', KEYS[1], ttl + 1000)\n"
	"return {grant, others, use}\n";

/* A request in flight: its own allocation, so that a csem freed first can detach it. */
struct csem_req {
	struct gw_csem *c;		/* NULL: detached, drop the answer */
	struct gw_csem_entry *e;
};

struct gw_csem_entry {
	char *name;
	char *key;			/* prefixed Redis key */
	unsigned cap, batch, demand;	/* of the last sync */
	unsigned inflight;		/* of the last sync: the slots it must keep */
	unsigned held;			/* slots Redis granted us last */
	unsigned use;			/* of which we may use (less while others starve) */
	unsigned asked;			/* what the request in flight asks for */
	int64_t sent_ms;		/* when that request was sent */
	int64_t valid_until_ms;		/* the holding may be used until then */
	int64_t fail_until_ms;		/* a command failed: fall back until then */
	int64_t short_until_ms;		/* a grant came short: do not grow before then */
	struct csem_req *req;		/* the request in flight, or NULL */
	gw_csem_change_fn change_fn;
	gw_csem_inflight_fn inflight_fn;
	void *arg;
};

struct gw_csem {
	struct gw_redis *r;
	struct event *timer;		/* renewals */
	struct gw_redis_script script;
	char instance[GW_CSEM_INSTANCE_MAX + 1];
	struct gw_csem_entry **e;
	size_t n, cap;
	struct gw_csem_stats st;
};

unsigned gw_csem_batch(unsigned cap, unsigned replicas)
{
	unsigned b;

	if (cap == 0)
		return 0;
	if (replicas < 1)
		replicas = 1;
	b = cap / (GW_CSEM_BATCH_SHARE * replicas);
	return b < 1 ? 1 : b;
}

unsigned gw_csem_target(unsigned cap, unsigned demand, unsigned batch)
{
	uint64_t t = demand ? (uint64_t)demand + batch : 0;

	return t > cap ? cap : (unsigned)t;
}

static void csem_on_timer(evutil_socket_t fd, short what, void *arg);

struct gw_csem *gw_csem_new(struct event_base *base, struct gw_redis *r, const char *instance)
{
	struct gw_csem *c;
	size_t len = instance ? strlen(instance) : 0;
	struct timeval tv = { GW_CSEM_RENEW_MS / 1000, (GW_CSEM_RENEW_MS % 1000) * 1000 };

	if (len == 0 || len > GW_CSEM_INSTANCE_MAX)
		return NULL;
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->r = r;
	gw_redis_part_use(r, GW_REDIS_PART_CONCURRENCY);
	memcpy(c->instance, instance, len + 1);
	c->script.lua = GW_CSEM_LUA;
	gw_redis_script_init(&c->script);
	if (base && r) {
		c->timer = event_new(base, -1, EV_PERSIST, csem_on_timer, c);
		if (!c->timer || event_add(c->timer, &tv) != 0) {
			gw_csem_free(c);
			return NULL;
		}
	}
	return c;
}

void gw_csem_free(struct gw_csem *c)
{
	if (!c)
		return;
	if (c->timer)
		event_free(c->timer);
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i]->req)
			c->e[i]->req->c = NULL;
		free(c->e[i]->name);
		free(c->e[i]->key);
		free(c->e[i]);
	}
	free(c->e);
	free(c);
}

struct gw_csem_entry *gw_csem_entry(struct gw_csem *c, const char *name, gw_csem_change_fn change_fn,
				    gw_csem_inflight_fn inflight_fn, void *arg)
{
	struct gw_csem_entry *e;
	char key[GW_REDIS_KEY_MAX];
	size_t len = name ? strlen(name) : 0;

	if (!c || len == 0 || len > GW_CSEM_NAME_MAX)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i]->name, name) == 0)
			return c->e[i];
	if (c->n >= GW_CSEM_MAX_KEYS)
		return NULL;
	if (c->r) {
		if (gw_redis_key(c->r, name, key, sizeof key) < 0)
			return NULL;
	} else {
		memcpy(key, name, len + 1);
	}
	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 16;
		struct gw_csem_entry **ne = realloc(c->e, ncap * sizeof *ne);

		if (!ne)
			return NULL;
		c->e = ne;
		c->cap = ncap;
	}
	e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->name = strdup(name);
	e->key = strdup(key);
	if (!e->name || !e->key) {
		free(e->name);
		free(e->key);
		free(e);
		return NULL;
	}
	e->change_fn = change_fn;
	e->inflight_fn = inflight_fn;
	e->arg = arg;
	c->e[c->n++] = e;
	return e;
}

int gw_csem_shared(const struct gw_csem *c)
{
	return c && c->r && gw_redis_connected(c->r);
}

unsigned gw_csem_held(const struct gw_csem_entry *e, int *inflight)
{
	if (inflight)
		*inflight = e && e->req;
	return e ? e->held : 0;
}

const struct gw_csem_stats *gw_csem_stats(const struct gw_csem *c)
{
	return &c->st;
}

static void csem_notify(struct gw_csem_entry *e)
{
	if (e->change_fn)
		e->change_fn(e->arg);
}

static void csem_done(void *arg, const redisReply *reply, const char *err)
{
	struct csem_req *req = arg;
	struct gw_csem *c = req->c;
	struct gw_csem_entry *e = req->e;
	int64_t now = gw_clock_now_us() / 1000;

	free(req);
	if (!c)
		return;
	e->req = NULL;
	if (err || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[0]->integer < 0 ||
	    reply->element[2]->type != REDIS_REPLY_INTEGER || reply->element[2]->integer < 0) {
		/* Unknown outcome: what Redis holds for us is unknown too; the local share decides
		 * for a while and the holding expires by itself if it was granted. */
		c->st.failed++;
		e->held = 0;
		e->use = 0;
		e->valid_until_ms = 0;
		e->fail_until_ms = now + GW_CSEM_FAIL_HOLD_MS;
		csem_notify(e);
		return;
	}
	if ((uint64_t)reply->element[0]->integer < e->asked) {
		c->st.short_grants++;
		e->short_until_ms = now + GW_CSEM_SHORT_HOLD_MS;
	}
	e->held = (unsigned)reply->element[0]->integer;
	e->use = (unsigned)reply->element[2]->integer;
	if (e->use > e->held)
		e->use = e->held;
	/* From the send: the server's lease counts from later, so ours ends first. */
	e->valid_until_ms = e->sent_ms + GW_CSEM_TTL_MS;
	csem_notify(e);
}

/* Asks Redis to hold want slots for e. 0 sent, -1 refused by the client (counted, falls back). */
static int csem_send(struct gw_csem *c, struct gw_csem_entry *e, unsigned want, int64_t now)
{
	struct csem_req *req;
	char scap[16], swant[16], sttl[16], skeep[16];
	const char *argv[6];
	unsigned keep;

	if (e->inflight_fn)
		e->inflight = e->inflight_fn(e->arg);
	/* What must stay held is what may be in flight when the answer comes: the requests in
	 * flight now and those gw_csem_sync admits meanwhile (up to min(use, want)). Keeping only
	 * the first let a fair-share cut grant fewer slots than were in flight by then. */
	keep = e->inflight > e->use ? e->inflight : e->use;
	if (keep > want)
		keep = want;
	req = malloc(sizeof *req);
	if (!req)
		goto refused;
	req->c = c;
	req->e = e;
	snprintf(scap, sizeof scap, "%u", e->cap);
	snprintf(swant, sizeof swant, "%u", want);
	snprintf(sttl, sizeof sttl, "%d", GW_CSEM_TTL_MS);
	snprintf(skeep, sizeof skeep, "%u", keep);
	argv[0] = e->key;
	argv[1] = scap;
	argv[2] = c->instance;
	argv[3] = swant;
	argv[4] = sttl;
	argv[5] = skeep;
	if (gw_redis_eval(c->r, &c->script, 1, 5, argv, NULL, csem_done, req) != GW_REDIS_OK) {
		free(req);
		goto refused;
	}
	e->req = req;
	e->asked = want;
	e->sent_ms = now;
	c->st.requests++;
	if (want > e->held)
		c->st.grows++;
	else if (want < e->held)
		c->st.releases++;
	return 0;
refused:
	c->st.not_sent++;
	e->fail_until_ms = now + GW_CSEM_FAIL_HOLD_MS;
	return -1;
}

/* Renewals: every holding (or demand) is asked for again at demand + headroom; an idle holding
 * is thus given back within GW_CSEM_RENEW_MS. */
static void csem_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_csem *c = arg;
	int64_t now = gw_clock_now_us() / 1000;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < c->n; i++) {
		struct gw_csem_entry *e = c->e[i];

		if (e->req || (e->held == 0 && e->demand == 0) || e->cap == 0)
			continue;
		if (!gw_redis_connected(c->r) || now < e->fail_until_ms)
			continue;
		if (e->inflight_fn) {
			e->inflight = e->inflight_fn(e->arg);
			if (e->demand < e->inflight)
				e->demand = e->inflight;
		}
		if (csem_send(c, e, gw_csem_target(e->cap, e->demand, e->batch), now) != 0) {
			e->held = 0;
			e->use = 0;
			csem_notify(e);
		}
	}
}

static int csem_fallback(struct gw_csem *c, struct gw_csem_entry *e)
{
	c->st.fallback++;
	c->st.shared_mode = 0;
	gw_redis_part_note(c->r, GW_REDIS_PART_CONCURRENCY, 1);
	if (e) {
		e->held = 0;
		e->use = 0;
	}
	return GW_CSEM_FALLBACK;
}

int gw_csem_sync(struct gw_csem *c, struct gw_csem_entry *e, unsigned cap, unsigned batch,
		 unsigned inflight, unsigned demand, int64_t now_ms, unsigned *slots)
{
	unsigned usable;

	*slots = 0;
	if (!c)
		return GW_CSEM_FALLBACK;
	if (!e) {
		c->st.no_entry++;
		return csem_fallback(c, NULL);
	}
	e->cap = cap > GW_CSEM_MAX_CAP ? GW_CSEM_MAX_CAP : cap;
	e->batch = batch ? batch : 1;
	e->demand = demand > inflight ? demand : inflight;
	e->inflight = inflight;
	if (!c->r || !gw_redis_connected(c->r) || now_ms < e->fail_until_ms)
		return csem_fallback(c, e);
	if (e->held > 0 && now_ms >= e->valid_until_ms) {
		/* Not renewed in time: Redis may have handed these slots to someone else. */
		c->st.lapsed++;
		e->fail_until_ms = now_ms + GW_CSEM_FAIL_HOLD_MS;
		return csem_fallback(c, e);
	}
	/* Demand has reached the holding: ask for more before the next request needs it (not
	 * while the others were just found holding the rest). */
	if (!e->req && e->demand >= e->held && e->held < e->cap) {
		if (now_ms < e->short_until_ms)
			c->st.grow_held++;
		else if (csem_send(c, e, gw_csem_target(e->cap, e->demand, e->batch), now_ms) != 0)
			return csem_fallback(c, e);
	}
	usable = e->use;
	if (e->req && e->asked < usable)
		usable = e->asked;	/* being given back: not to be used meanwhile */
	c->st.shared++;
	c->st.shared_mode = 1;
	gw_redis_part_note(c->r, GW_REDIS_PART_CONCURRENCY, 0);
	*slots = usable;
	return GW_CSEM_SHARED;
}

void gw_csem_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_csem *c = arg;
	static const char *const what[] = { "shared", "fallback", "request", "grow", "release",
					    "short_grant", "failed", "not_sent", "lapsed",
					    "no_entry", "grow_held" };
	uint64_t v[11];
	char labels[64];

	v[0] = c->st.shared;
	v[1] = c->st.fallback;
	v[2] = c->st.requests;
	v[3] = c->st.grows;
	v[4] = c->st.releases;
	v[5] = c->st.short_grants;
	v[6] = c->st.failed;
	v[7] = c->st.not_sent;
	v[8] = c->st.lapsed;
	v[9] = c->st.no_entry;
	v[10] = c->st.grow_held;
	gw_metrics_family(o, "cluster_concurrency_total", "counter",
			  "Upstream concurrency caps shared through Redis (slots held per replica): "
			  "shared and fallback (local share) decisions, slot requests (growing, giving "
			  "back), grants short of the ask, failed and unsent requests, holdings not "
			  "renewed in time, accounts without an entry, growths held off after a short "
			  "grant.");
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		snprintf(labels, sizeof labels, "what=\"%s\"", what[i]);
		gw_metrics_value(o, "cluster_concurrency_total", labels, v[i]);
	}
	gw_metrics_one(o, "cluster_concurrency_shared", "gauge",
		       "1 when upstream concurrency caps are decided on Redis (connected), 0 local.",
		       gw_csem_shared(c));
}
