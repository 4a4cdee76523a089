/*
 * follower: the job follower and the jobevent registration point (see follower.h, jobevent.h),
 * and the first listener: job outcomes by tenant, state and error code (issue 20).
 */
#include "gateway/svc/follower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <grpc/status.h>

#include "gateway/api/cache.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/cluster/redis.h"
#include "gateway/config/config.h"
#include "gateway/state/store.h"
#include "gateway/svc/status.h"
#include "auth/upstream/session.h"

/* ---- the pure parts ---- */

const char *gw_follower_source_name(int src)
{
	static const char *const names[GW_FOLLOWER_NSRC] = { "webhook", "poll", "peer", "follower" };

	return src >= 0 && src < GW_FOLLOWER_NSRC ? names[src] : "unknown";
}

int64_t gw_follower_poll_delay(const struct gw_follower_pace *p, int64_t age_ms)
{
	int64_t d;

	if (age_ms < 0)
		age_ms = 0;
	/* Upstream says when a job ends: poll only what stayed quiet for long. */
	if (p->webhooks && age_ms < p->quiet_ms)
		return p->quiet_ms - age_ms;
	/* Not polled yet in its first interval: the first poll is one interval after the start. */
	if (age_ms < p->interval_ms)
		return p->interval_ms - age_ms;
	d = age_ms / GW_FOLLOWER_AGE_DIVISOR;
	if (d < p->interval_ms)
		d = p->interval_ms;
	if (d > p->max_interval_ms)
		d = p->max_interval_ms;
	return d;
}

int64_t gw_follower_retry_delay(unsigned attempt)
{
	int64_t d = GW_FOLLOWER_RETRY_MIN_MS;

	for (unsigned i = 1; i < attempt && d < GW_FOLLOWER_RETRY_MAX_MS; i++)
		d *= 2;
	return d < GW_FOLLOWER_RETRY_MAX_MS ? d : GW_FOLLOWER_RETRY_MAX_MS;
}

double gw_follower_refill(double tokens, double rate, int64_t dt_ms)
{
	double cap = rate > 1.0 ? rate : 1.0;

	if (dt_ms > 0)
		tokens += rate * (double)dt_ms / 1000.0;
	return tokens > cap ? cap : tokens;
}

int64_t gw_follower_tick_ms(int64_t interval_ms)
{
	int64_t t = interval_ms / 4;

	if (t < GW_FOLLOWER_TICK_MIN_MS)
		t = GW_FOLLOWER_TICK_MIN_MS;
	return t > GW_FOLLOWER_TICK_MAX_MS ? GW_FOLLOWER_TICK_MAX_MS : t;
}

void gw_follower_error_label(int state, int error_code, char out[16])
{
	if (state == ANIMATE3D__V1__JOB_STATE__SUCCESS)
		out[0] = '\0';
	else
		snprintf(out, 16, "%d", error_code);
}

/* ---- the registration point ---- */

struct gw_jobevents {
	struct {
		const char *name;
		gw_jobevent_fn fn;
		void *arg;
		uint64_t failures;	/* done(-1) answers */
		uint64_t calls;
	} l[GW_JOBEVENT_MAX_LISTENERS];
	size_t n;
	uint64_t refused;		/* registrations past GW_JOBEVENT_MAX_LISTENERS */
};

int gw_jobevent_listen(struct gw_jobevents *je, const char *name, gw_jobevent_fn fn, void *arg)
{
	if (!je || !name || !fn)
		return -1;
	if (je->n >= GW_JOBEVENT_MAX_LISTENERS) {
		je->refused++;
		return -1;
	}
	je->l[je->n].name = name;
	je->l[je->n].fn = fn;
	je->l[je->n].arg = arg;
	je->n++;
	return 0;
}

/* ---- the follower ---- */

enum { FL_ABANDON_NOT_FOUND, FL_ABANDON_AGE, FL_ABANDON_TENANT, FL_NABANDON };
static const char *const fl_abandon_names[FL_NABANDON] = { "not_found", "too_old", "no_tenant" };

struct follower;

/* One followed job. */
struct fl_job {
	char rid[GW_STORE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
	size_t acct;
	uint64_t gen;			/* distinguishes this record from a later one of the rid */
	int64_t created_ms;		/* wall clock, from the store */
	int64_t next_poll_ms;		/* monotonic */
	struct gw_status_waiter w;	/* attached while polling */
	int polling;
	int webhook_seen;		/* a webhook refresh is on its way */
	unsigned not_found;		/* NOT_FOUND answers in a row */
	/* once final: */
	uint8_t *final;			/* the packed JobStatus */
	size_t final_len;
	int state;
	int64_t final_at_ms;		/* wall */
	int64_t final_mono_ms;
	unsigned done_mask;		/* listeners that answered done(0) */
	unsigned busy_mask;		/* listeners called, done not yet run */
	unsigned attempts[GW_JOBEVENT_MAX_LISTENERS];
	int64_t retry_at_ms[GW_JOBEVENT_MAX_LISTENERS];	/* monotonic */
	int settling;			/* a settle write in flight */
	unsigned settle_attempts;
	int64_t settle_at_ms;		/* monotonic: next settle attempt */
	int abandon;			/* settle without events, reason FL_ABANDON_* + 1 */
	struct fl_job *hnext;		/* hash chain */
	size_t idx;			/* in f->jobs */
};

/* A store operation or listener call whose answer may come after the follower is gone. */
struct fl_op {
	struct follower *f;		/* NULL once the follower is freed: the answer is ignored */
	struct fl_op *prev, *next;
	uint64_t gen;
	unsigned li;
	char rid[GW_STORE_ID_MAX + 1];
};

struct fl_recent {
	char rid[GW_STORE_ID_MAX + 1];
	int src;
};

struct fl_outcome {
	char tenant[GW_STORE_TENANT_MAX + 1];
	int state;
	char error[16];
	uint64_t n;
};

struct fl_counters {
	uint64_t claimed, claim_failed, claims_at_max;
	uint64_t finals[GW_FOLLOWER_NSRC];
	uint64_t polls, poll_errors, poll_refused;
	uint64_t settled, settle_failed;
	uint64_t abandoned[FL_NABANDON];
	uint64_t renew_failed;
	uint64_t outcomes_dropped;	/* outcome rows past GW_FOLLOWER_OUTCOMES_MAX */
	uint64_t adopted;		/* finals read here of jobs followed elsewhere, delivered here */
	uint64_t adopt_dropped;		/* ... not adopted: GW_FOLLOWER_ADOPT_MAX lookups in flight */
};

struct follower {
	struct gw_env *env;
	struct gw_status_ctx *sx;
	struct gw_jobevents je;
	struct fl_job **jobs;
	size_t n, max;
	struct fl_job **hash;
	size_t nbuckets;		/* power of two */
	uint64_t next_gen;
	struct fl_op *ops;		/* answers still to come */
	struct event *tick, *work;
	int64_t tick_ms;
	int64_t last_refill_ms, next_scan_ms, next_renew_ms;
	double tokens;
	size_t cursor;			/* where the next polling pass starts */
	int claiming;
	int claim_failing;		/* the last claim failed (logged once per outage) */
	int draining;
	struct fl_recent recent[GW_FOLLOWER_RECENT_MAX];
	size_t recent_next;
	struct fl_outcome *outcomes;
	size_t noutcomes;
	size_t adopting;		/* owner lookups in flight (fl_adopt) */
	struct gw_metrics_hist settle_lag;
	struct fl_counters cnt;
};

static int64_t fl_mono_ms(void)
{
	return gw_clock_now_us() / 1000;
}

static uint32_t fl_hash(const char *rid)
{
	uint32_t h = 2166136261u;

	for (; *rid; rid++)
		h = (h ^ (unsigned char)*rid) * 16777619u;
	return h;
}

static struct fl_job *fl_find(const struct follower *f, const char *rid)
{
	struct fl_job *j = f->hash[fl_hash(rid) & (f->nbuckets - 1)];

	while (j && strcmp(j->rid, rid) != 0)
		j = j->hnext;
	return j;
}

static struct fl_op *fl_op_new(struct follower *f, const char *rid, uint64_t gen, unsigned li)
{
	struct fl_op *op = calloc(1, sizeof *op);

	if (!op)
		return NULL;
	op->f = f;
	op->gen = gen;
	op->li = li;
	if (rid)
		snprintf(op->rid, sizeof op->rid, "%s", rid);
	op->next = f->ops;
	if (f->ops)
		f->ops->prev = op;
	f->ops = op;
	return op;
}

/* Unlinks op and frees it; returns its follower (NULL when it was freed meanwhile). */
static struct follower *fl_op_end(struct fl_op *op)
{
	struct follower *f = op->f;

	if (f) {
		if (op->prev)
			op->prev->next = op->next;
		else
			f->ops = op->next;
		if (op->next)
			op->next->prev = op->prev;
	}
	return f;
}

static void fl_kick(struct follower *f)
{
	if (f->work)
		event_active(f->work, 0, 0);
}

static void fl_job_remove(struct follower *f, struct fl_job *j)
{
	struct fl_job **pp = &f->hash[fl_hash(j->rid) & (f->nbuckets - 1)];

	while (*pp && *pp != j)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = j->hnext;
	gw_status_unwant(&j->w);
	f->jobs[j->idx] = f->jobs[--f->n];
	f->jobs[j->idx]->idx = j->idx;
	if (f->cursor >= f->n)
		f->cursor = 0;
	free(j->final);
	free(j);
}

/* The source a final for rid had before the job was followed here, or -1 when none was seen. */
static int fl_recent_find(const struct follower *f, const char *rid)
{
	for (size_t i = 0; i < GW_FOLLOWER_RECENT_MAX; i++)
		if (f->recent[i].rid[0] && strcmp(f->recent[i].rid, rid) == 0)
			return f->recent[i].src;
	return -1;
}

/* As fl_recent_find; none seen: the cache had it from a caller's poll. */
static int fl_recent_source(const struct follower *f, const char *rid)
{
	int src = fl_recent_find(f, rid);

	return src >= 0 ? src : GW_FOLLOWER_SRC_POLL;
}

/* Records the final st of job j (first one only) and schedules its delivery. */
static void fl_final(struct follower *f, struct fl_job *j, const Animate3d__V1__JobStatus *st, int src)
{
	size_t len;

	if (j->final || !gw_cache_state_final((int)st->state))
		return;
	len = protobuf_c_message_get_packed_size(&st->base);
	j->final = malloc(len ? len : 1);
	if (!j->final)
		return;		/* out of memory: the next poll brings it again */
	j->final_len = protobuf_c_message_pack(&st->base, j->final);
	j->state = (int)st->state;
	j->final_at_ms = gw_clock_wall_ms();
	j->final_mono_ms = fl_mono_ms();
	f->cnt.finals[src]++;
	/* A poll in flight stays attached: this may run inside the status module's on_final hook,
	 * which must not call back into it; the poll's answer finds the job final and stops. */
	fl_kick(f);
}

static int fl_add(struct follower *f, const struct gw_store_job *sj, int64_t now);

/*
 * A final read upstream here (a caller's poll, a webhook's re-read) of a job this replica does
 * not follow: another replica may hold its follow lease, or the next claim would bring it.
 * Listeners are idempotent (jobevent.h), so rather than leave the event to the leaseholder's
 * next slow poll, this replica looks the owner up and follows the job itself from this final:
 * delivered and settled here at once; the leaseholder's own delivery later repeats nothing.
 * Finals published by other replicas (peer) are not adopted: the replica that read it does.
 * Only without a connected Redis (several replicas on one PostgreSQL and no Redis, or Redis
 * away): with it the leaseholder hears the final at once, and two deliveries would count the
 * job's outcome twice.
 */
struct fl_adoption {
	struct fl_op *op;
	size_t acct;
	int src;
	size_t len;
	uint8_t packed[];
};

static void fl_adopt_owner(void *arg, const struct gw_store_res *res)
{
	struct fl_adoption *a = arg;
	struct follower *f = fl_op_end(a->op);
	Animate3d__V1__JobStatus *st = NULL;
	struct gw_store_job sj;
	struct fl_job *j;

	if (!f)
		goto out;
	f->adopting--;
	if (res->rc != 0 || !res->tenants || !res->tenants[0] || f->draining)
		goto out;	/* not a job started here (or the store failed: the leaseholder has it) */
	j = fl_find(f, a->op->rid);
	if (!j) {
		memset(&sj, 0, sizeof sj);
		snprintf(sj.rid, sizeof sj.rid, "%s", a->op->rid);
		snprintf(sj.tenant, sizeof sj.tenant, "%s", res->tenants[0]);
		sj.created_ms = gw_clock_wall_ms();	/* unknown here; only the age checks read it */
		if (fl_add(f, &sj, fl_mono_ms()) != 0 || !(j = fl_find(f, a->op->rid)))
			goto out;
	}
	if (j->final || j->acct != a->acct)
		goto out;
	st = animate3d__v1__job_status__unpack(NULL, a->len, a->packed);
	if (!st)
		goto out;
	f->cnt.adopted++;
	fl_final(f, j, st, a->src);
out:
	if (st)
		protobuf_c_message_free_unpacked(&st->base, NULL);
	free(a->op);
	free(a);
}

static void fl_adopt(struct follower *f, size_t acct, const Animate3d__V1__JobStatus *st, int src)
{
	size_t len = protobuf_c_message_get_packed_size(&st->base);
	struct fl_adoption *a;
	const char *ids[1];

	if (f->draining || !f->env->store)
		return;
	if (f->adopting >= GW_FOLLOWER_ADOPT_MAX) {
		f->cnt.adopt_dropped++;
		return;
	}
	a = calloc(1, sizeof *a + (len ? len : 1));
	if (!a)
		return;
	a->op = fl_op_new(f, st->rid, 0, 0);
	if (!a->op) {
		free(a);
		return;
	}
	a->acct = acct;
	a->src = src;
	a->len = protobuf_c_message_pack(&st->base, a->packed);
	f->adopting++;
	ids[0] = a->op->rid;
	gw_store_owner_lookup(f->env->store, GW_OBJ_JOB, ids, 1, fl_adopt_owner, a);
}

/* The status module's final observer: must not call back into it (fl_final does not). */
static void fl_on_final(void *arg, size_t acct, const Animate3d__V1__JobStatus *st, int peer)
{
	struct follower *f = arg;
	struct fl_job *j;
	int src;

	if (!st->rid || !st->rid[0] || strlen(st->rid) > GW_STORE_ID_MAX)
		return;
	j = fl_find(f, st->rid);
	src = peer ? GW_FOLLOWER_SRC_PEER
		   : j && j->polling ? GW_FOLLOWER_SRC_FOLLOWER
		   : j && j->webhook_seen ? GW_FOLLOWER_SRC_WEBHOOK : GW_FOLLOWER_SRC_POLL;
	if (!j || j->acct != acct) {
		/* Not followed here (yet): remember where it came from for the claim to come. */
		struct fl_recent *r = &f->recent[f->recent_next++ % GW_FOLLOWER_RECENT_MAX];

		snprintf(r->rid, sizeof r->rid, "%s", st->rid);
		r->src = src;
		/* With Redis connected the final is published and reaches the leaseholder at once
		 * (status_share): adopting it too would only count its outcome twice. */
		if (!j && !peer && !gw_redis_connected(f->env->redis))
			fl_adopt(f, acct, st, src);
		return;
	}
	fl_final(f, j, st, src);
}

/* ---- settling ---- */

static void fl_settled(void *arg, const struct gw_store_res *res)
{
	struct fl_op *op = arg;
	struct follower *f = fl_op_end(op);
	struct fl_job *j = f ? fl_find(f, op->rid) : NULL;

	if (!j || j->gen != op->gen) {
		free(op);
		return;
	}
	free(op);
	j->settling = 0;
	if (res->rc != 0) {
		f->cnt.settle_failed++;
		j->settle_at_ms = fl_mono_ms() + gw_follower_retry_delay(++j->settle_attempts);
		gw_log(GW_LOG_WARN, "follower_settle_failed", GW_LS("rid", j->rid),
		       GW_LS("error", res->err ? res->err : "?"), GW_LEND);
		return;
	}
	if (j->abandon) {
		f->cnt.abandoned[j->abandon - 1]++;
		gw_log(GW_LOG_WARN, "follower_abandoned", GW_LS("rid", j->rid), GW_LS("tenant", j->tenant),
		       GW_LS("why", fl_abandon_names[j->abandon - 1]), GW_LEND);
	} else {
		f->cnt.settled++;
		gw_metrics_observe(&f->settle_lag, (fl_mono_ms() - j->final_mono_ms) * 1000);
	}
	fl_job_remove(f, j);
}

static void fl_settle(struct follower *f, struct fl_job *j, int64_t now)
{
	struct fl_op *op;

	if (j->settling || now < j->settle_at_ms)
		return;
	op = fl_op_new(f, j->rid, j->gen, 0);
	if (!op)
		return;
	j->settling = 1;
	gw_store_job_settle(f->env->store, j->rid, gw_clock_wall_ms(), fl_settled, op);
}

static void fl_abandon(struct follower *f, struct fl_job *j, int why, int64_t now)
{
	j->abandon = why + 1;
	gw_status_unwant(&j->w);
	j->polling = 0;
	fl_settle(f, j, now);
}

/* ---- delivering ---- */

static void fl_listener_done(void *done_arg, int rc)
{
	struct fl_op *op = done_arg;
	struct follower *f = fl_op_end(op);
	struct fl_job *j = f ? fl_find(f, op->rid) : NULL;
	unsigned bit = 1u << op->li;

	if (j && j->gen == op->gen && (j->busy_mask & bit)) {
		j->busy_mask &= ~bit;
		if (rc == 0) {
			j->done_mask |= bit;
		} else {
			f->je.l[op->li].failures++;
			j->retry_at_ms[op->li] =
				fl_mono_ms() + gw_follower_retry_delay(++j->attempts[op->li]);
		}
		fl_kick(f);
	}
	free(op);
}

/* Calls every listener that has not succeeded and is due; settles when all have succeeded. */
static void fl_deliver(struct follower *f, struct fl_job *j, int64_t now)
{
	unsigned all = f->je.n ? (1u << f->je.n) - 1 : 0;
	Animate3d__V1__JobStatus *st = NULL;
	struct gw_jobevent ev = { 0 };

	if ((j->done_mask & all) == all) {
		fl_settle(f, j, now);
		return;
	}
	for (unsigned i = 0; i < f->je.n; i++) {
		unsigned bit = 1u << i;
		struct fl_op *op;

		if ((j->done_mask | j->busy_mask) & bit || now < j->retry_at_ms[i])
			continue;
		if (!st) {
			st = animate3d__v1__job_status__unpack(NULL, j->final_len, j->final);
			if (!st)
				return;	/* out of memory: the next pass tries again */
			ev.rid = j->rid;
			ev.tenant = j->tenant;
			ev.account = f->env->accounts && j->acct < f->env->naccounts
					     ? gw_session_name(&f->env->accounts[j->acct]) : "";
			ev.state = j->state;
			ev.status = st;
			ev.final_at_ms = j->final_at_ms;
		}
		op = fl_op_new(f, j->rid, j->gen, i);
		if (!op)
			break;
		j->busy_mask |= bit;
		f->je.l[i].calls++;
		/* done may run inside: it only marks bits and kicks the work event */
		f->je.l[i].fn(f->je.l[i].arg, &ev, fl_listener_done, op);
	}
	if (st)
		protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* ---- polling ---- */

static struct fl_job *fl_job_of_waiter(struct gw_status_waiter *w)
{
	return (struct fl_job *)(void *)((char *)w - offsetof(struct fl_job, w));
}

static struct gw_follower_pace fl_pace(const struct follower *f)
{
	const struct gw_config *cfg = f->env->cfg;
	struct gw_follower_pace p = {
		.interval_ms = cfg->follower.poll_interval_ms,
		.max_interval_ms = cfg->follower.max_poll_interval_ms,
		.quiet_ms = cfg->follower.quiet_ms,
		.webhooks = cfg->webhooks.public_url != NULL,
	};

	return p;
}

static void fl_schedule(struct follower *f, struct fl_job *j, int64_t now)
{
	struct gw_follower_pace p = fl_pace(f);

	j->next_poll_ms = now + gw_follower_poll_delay(&p, gw_clock_wall_ms() - j->created_ms);
}

static void fl_poll_done(struct gw_status_waiter *w, int code, const Animate3d__V1__JobStatus *st,
			 const char *msg, long retry_after_ms)
{
	struct follower *f = w->arg;
	struct fl_job *j = fl_job_of_waiter(w);
	int64_t now = fl_mono_ms();

	(void)msg;
	j->polling = 0;
	if (code == GRPC_STATUS_OK && st) {
		j->not_found = 0;
		if (gw_cache_state_final((int)st->state)) {
			fl_final(f, j, st, GW_FOLLOWER_SRC_FOLLOWER);	/* no-op if on_final had it */
			return;
		}
	} else if (code == GRPC_STATUS_NOT_FOUND) {
		if (++j->not_found >= GW_FOLLOWER_NOT_FOUND_MAX) {
			fl_abandon(f, j, FL_ABANDON_NOT_FOUND, now);
			return;
		}
	} else {
		f->cnt.poll_errors++;
	}
	fl_schedule(f, j, now);
	if (code == GRPC_STATUS_RESOURCE_EXHAUSTED && retry_after_ms > 0 &&
	    j->next_poll_ms < now + retry_after_ms)
		j->next_poll_ms = now + retry_after_ms;
}

/* One poll of j: the cache first (a caller's poll may have brought the final), else a want. */
static void fl_poll(struct follower *f, struct fl_job *j, int64_t now)
{
	struct gw_status *s = gw_status_ctx_status(f->sx);
	Animate3d__V1__JobStatus *st = NULL;

	struct gw_follower_pace p = fl_pace(f);
	int64_t age = -1;

	/* A final in the cache ends it. An in-progress entry read within the follower's own poll
	 * period means callers poll this job (here, or cluster-wide through the shared status):
	 * their reads bring its final through the on_final hook, and a poll of the follower's
	 * own would only add an upstream request outside their batches. */
	if (gw_cache_peek(gw_status_ctx_cache(f->sx), j->acct, j->rid, now, &st, &age) == 1 && st) {
		int final = gw_cache_state_final((int)st->state);

		if (final)
			fl_final(f, j, st, fl_recent_source(f, j->rid));
		protobuf_c_message_free_unpacked(&st->base, NULL);
		if (final)
			return;
		if (age >= 0 && age < gw_follower_poll_delay(&p, gw_clock_wall_ms() - j->created_ms)) {
			fl_schedule(f, j, now);
			return;
		}
		st = NULL;
	}
	j->w.done = fl_poll_done;
	j->w.arg = f;
	j->w.deadline_ms = 0;
	if (gw_status_want(s, j->acct, j->rid, &j->w) != 0) {
		f->cnt.poll_refused++;
		fl_schedule(f, j, now);
		return;
	}
	f->cnt.polls++;
	j->polling = 1;
}

/* ---- the set: claims, renewals ---- */

static int fl_add(struct follower *f, const struct gw_store_job *sj, int64_t now)
{
	const struct gw_config *cfg = f->env->cfg;
	int t = gw_config_tenant_index(cfg, sj->tenant);
	struct fl_job *j;
	size_t b;

	if (fl_find(f, sj->rid) || f->n >= f->max)
		return 0;
	j = calloc(1, sizeof *j);
	if (!j)
		return -1;
	memcpy(j->rid, sj->rid, sizeof j->rid);
	memcpy(j->tenant, sj->tenant, sizeof j->tenant);
	j->created_ms = sj->created_ms;
	j->gen = ++f->next_gen;
	j->acct = t >= 0 ? cfg->tenants[t].account_idx : 0;
	j->idx = f->n;
	f->jobs[f->n++] = j;
	b = fl_hash(j->rid) & (f->nbuckets - 1);
	j->hnext = f->hash[b];
	f->hash[b] = j;
	if (t < 0)
		fl_abandon(f, j, FL_ABANDON_TENANT, now);
	else if (gw_clock_wall_ms() - j->created_ms > GW_FOLLOWER_MAX_AGE_MS)
		fl_abandon(f, j, FL_ABANDON_AGE, now);
	else if (fl_recent_find(f, j->rid) >= 0)
		j->next_poll_ms = now;	/* its final was seen already: look it up in the cache now */
	else
		fl_schedule(f, j, now);
	return 0;
}

static void fl_claimed(void *arg, const struct gw_store_res *res)
{
	struct fl_op *op = arg;
	struct follower *f = fl_op_end(op);
	int64_t now = fl_mono_ms();

	free(op);
	if (!f)
		return;
	f->claiming = 0;
	if (res->rc != 0) {
		/* one line when claims start failing (a store outage retries every scan), counted */
		if (!f->cnt.claim_failed++ || !f->claim_failing)
			gw_log(GW_LOG_WARN, "follower_claim_failed",
			       GW_LS("error", res->err ? res->err : "?"), GW_LEND);
		f->claim_failing = 1;
		return;
	}
	if (f->claim_failing)
		gw_log(GW_LOG_INFO, "follower_claim_recovered", GW_LEND);
	f->claim_failing = 0;
	for (long i = 0; i < res->count; i++)
		if (fl_add(f, &res->jobs[i], now) != 0)
			break;
	f->cnt.claimed += (uint64_t)res->count;
	/* A full batch: more are waiting, load the next one at the next tick. */
	if ((size_t)res->count == GW_STORE_CLAIM_MAX)
		f->next_scan_ms = now;
	if (res->count > 0)
		gw_log(GW_LOG_INFO, "follower_claimed", GW_LN("jobs", res->count),
		       GW_LN("followed", (long long)f->n), GW_LEND);
}

static void fl_claim(struct follower *f, int64_t now)
{
	size_t room = f->max - f->n;
	struct fl_op *op;

	if (f->claiming || now < f->next_scan_ms)
		return;
	f->next_scan_ms = now + f->env->cfg->follower.scan_interval_ms;
	if (room == 0) {
		f->cnt.claims_at_max++;
		return;
	}
	op = fl_op_new(f, NULL, 0, 0);
	if (!op)
		return;
	f->claiming = 1;
	gw_store_job_claim(f->env->store, f->env->instance, gw_clock_wall_ms() + GW_FOLLOWER_LEASE_MS,
			   gw_clock_wall_ms(), room < GW_STORE_CLAIM_MAX ? room : GW_STORE_CLAIM_MAX,
			   fl_claimed, op);
}

static void fl_renewed(void *arg, const struct gw_store_res *res)
{
	struct fl_op *op = arg;
	struct follower *f = fl_op_end(op);

	free(op);
	if (f && res->rc != 0)
		f->cnt.renew_failed++;
}

static void fl_renew(struct follower *f, int64_t now)
{
	struct fl_op *op;

	if (now < f->next_renew_ms || f->n == 0)
		return;
	f->next_renew_ms = now + GW_FOLLOWER_RENEW_MS;
	op = fl_op_new(f, NULL, 0, 0);
	if (op)
		gw_store_job_renew(f->env->store, f->env->instance,
				   gw_clock_wall_ms() + GW_FOLLOWER_LEASE_MS, fl_renewed, op);
}

/* ---- the passes ---- */

/* Delivers and settles what is final (work event and tick). */
static void fl_pass_finals(struct follower *f, int64_t now)
{
	/* fl_settled may remove jobs (swap with the last): walk from the end */
	for (size_t i = f->n; i-- > 0;) {
		struct fl_job *j = f->jobs[i];

		if (j->abandon)
			fl_settle(f, j, now);
		else if (j->final)
			fl_deliver(f, j, now);
		if (i > f->n)
			i = f->n;
	}
}

static void fl_work_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	fl_pass_finals(arg, fl_mono_ms());
}

static void fl_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct follower *f = arg;
	int64_t now = fl_mono_ms();
	size_t n;

	(void)fd, (void)what;
	if (f->draining)
		return;
	fl_claim(f, now);
	fl_renew(f, now);
	fl_pass_finals(f, now);
	f->tokens = gw_follower_refill(f->tokens, f->env->cfg->follower.polls_per_second,
				       now - f->last_refill_ms);
	f->last_refill_ms = now;
	/* One pass from a rotating start, so that with few tokens every job gets its turn. */
	n = f->n;
	for (size_t k = 0; k < n && f->tokens >= 1.0 && f->n; k++) {
		struct fl_job *j;

		if (f->cursor >= f->n)
			f->cursor = 0;
		j = f->jobs[f->cursor++];
		if (j->final || j->polling || j->abandon || now < j->next_poll_ms)
			continue;
		f->tokens -= 1.0;
		fl_poll(f, j, now);
	}
}

/* ---- the outcome listener (issue 20: job outcomes by tenant and state/error code) ---- */

static void fl_outcome_event(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done,
			     void *done_arg)
{
	struct follower *f = arg;
	char err[16];
	size_t i;

	gw_follower_error_label(ev->state, ev->status ? (int)ev->status->error_code : 0, err);
	for (i = 0; i < f->noutcomes; i++) {
		struct fl_outcome *o = &f->outcomes[i];

		if (o->state == ev->state && strcmp(o->error, err) == 0 && strcmp(o->tenant, ev->tenant) == 0)
			break;
	}
	if (i == f->noutcomes) {
		if (f->noutcomes >= GW_FOLLOWER_OUTCOMES_MAX) {
			f->cnt.outcomes_dropped++;
			done(done_arg, 0);	/* a metric: nothing to retry */
			return;
		}
		snprintf(f->outcomes[i].tenant, sizeof f->outcomes[i].tenant, "%s", ev->tenant);
		f->outcomes[i].state = ev->state;
		memcpy(f->outcomes[i].error, err, sizeof err);
		f->noutcomes++;
	}
	f->outcomes[i].n++;
	done(done_arg, 0);
}

/* ---- metrics ---- */

static void fl_metrics(void *state, struct gw_metrics_out *o)
{
	struct follower *f = state;
	char labels[64 + 4 * GW_STORE_TENANT_MAX];
	char tenant[2 * GW_STORE_TENANT_MAX + 1];

	gw_metrics_one(o, "follower_jobs", "gauge",
		       "Jobs followed to their final state now (limit follower.max_jobs).", f->n);
	gw_metrics_one(o, "follower_jobs_max", "gauge", "follower.max_jobs.", f->max);
	gw_metrics_one(o, "follower_claimed_total", "counter",
		       "Unsettled jobs loaded from the state store.", f->cnt.claimed);
	gw_metrics_one(o, "follower_claims_at_max_total", "counter",
		       "Scans skipped because follower.max_jobs jobs are followed.", f->cnt.claims_at_max);
	gw_metrics_one(o, "follower_store_errors_total", "counter",
		       "Claims, lease renewals and settles the state store failed.",
		       f->cnt.claim_failed + f->cnt.renew_failed + f->cnt.settle_failed);
	gw_metrics_family(o, "follower_finals_total", "counter",
			  "Final states learnt, by where they came from.");
	for (int s = 0; s < GW_FOLLOWER_NSRC; s++) {
		snprintf(labels, sizeof labels, "source=\"%s\"", gw_follower_source_name(s));
		gw_metrics_value(o, "follower_finals_total", labels, f->cnt.finals[s]);
	}
	gw_metrics_one(o, "follower_adopted_total", "counter",
		       "Finals read here of jobs another replica follows, delivered here (no Redis).",
		       f->cnt.adopted);
	gw_metrics_one(o, "follower_adopt_dropped_total", "counter",
		       "Such finals left to the leaseholder: GW_FOLLOWER_ADOPT_MAX lookups in flight.",
		       f->cnt.adopt_dropped);
	gw_metrics_one(o, "follower_polls_total", "counter",
		       "Status polls of the follower's own (bounded by follower.polls_per_second).",
		       f->cnt.polls);
	gw_metrics_one(o, "follower_poll_errors_total", "counter",
		       "Follower polls that failed, or were refused by the status module.",
		       f->cnt.poll_errors + f->cnt.poll_refused);
	gw_metrics_one(o, "follower_settled_total", "counter",
		       "Jobs settled after every listener succeeded.", f->cnt.settled);
	gw_metrics_family(o, "follower_abandoned_total", "counter",
			  "Jobs settled without an event, by reason.");
	for (int a = 0; a < FL_NABANDON; a++) {
		snprintf(labels, sizeof labels, "why=\"%s\"", fl_abandon_names[a]);
		gw_metrics_value(o, "follower_abandoned_total", labels, f->cnt.abandoned[a]);
	}
	gw_metrics_family(o, "follower_listener_failures_total", "counter",
			  "Job events a listener could not take (retried with backoff).");
	for (size_t i = 0; i < f->je.n; i++) {
		snprintf(labels, sizeof labels, "listener=\"%s\"", f->je.l[i].name);
		gw_metrics_value(o, "follower_listener_failures_total", labels, f->je.l[i].failures);
	}
	gw_metrics_family(o, "follower_settle_lag_seconds", "histogram",
			  "From a job's final seen here to settled.");
	gw_metrics_hist(o, "follower_settle_lag_seconds", "what=\"settle\"", &f->settle_lag);
	gw_metrics_family(o, "job_outcomes_total", "counter",
			  "Jobs ended, by tenant, state and job error code (at least once across restarts).");
	for (size_t i = 0; i < f->noutcomes; i++) {
		const struct fl_outcome *r = &f->outcomes[i];

		gw_metrics_label(r->tenant, tenant, sizeof tenant);
		snprintf(labels, sizeof labels, "tenant=\"%s\",state=\"%s\",error=\"%s\"", tenant,
			 r->state == ANIMATE3D__V1__JOB_STATE__SUCCESS ? "SUCCESS" : "FAILURE", r->error);
		gw_metrics_value(o, "job_outcomes_total", labels, r->n);
	}
	gw_metrics_one(o, "job_outcomes_dropped_total", "counter",
		       "Job outcomes not counted: the metric's rows are full.", f->cnt.outcomes_dropped);
}

/* ---- the service ---- */

struct gw_jobevents *gw_jobevents_of(const struct gw_env *env)
{
	struct follower *f = gw_env_svc(env, &gw_svc_follower);

	return f ? &f->je : NULL;
}

void gw_follower_webhook_seen(const struct gw_env *env, size_t acct, const char *rid)
{
	struct follower *f = gw_env_svc(env, &gw_svc_follower);
	struct fl_job *j = f && f->hash && rid ? fl_find(f, rid) : NULL;

	if (j && j->acct == acct)
		j->webhook_seen = 1;
}

static void fl_free(void *state)
{
	struct follower *f = state;

	if (!f)
		return;
	gw_status_ctx_on_final(f->sx, NULL, NULL);
	for (struct fl_op *op = f->ops; op; op = op->next)
		op->f = NULL;	/* their answers find no follower and only free themselves */
	while (f->n)
		fl_job_remove(f, f->jobs[f->n - 1]);
	if (f->tick)
		event_free(f->tick);
	if (f->work)
		event_free(f->work);
	free(f->jobs);
	free(f->hash);
	free(f->outcomes);
	free(f);
}

static int fl_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	const struct gw_config *cfg = env->cfg;
	struct follower *f = NULL;
	int rc = -1;

	*state = NULL;
	f = calloc(1, sizeof *f);
	if (!f)
		goto oom;
	f->env = env;
	f->outcomes = calloc(GW_FOLLOWER_OUTCOMES_MAX, sizeof *f->outcomes);
	if (!f->outcomes || gw_jobevent_listen(&f->je, "outcomes", fl_outcome_event, f) != 0)
		goto oom;
	f->sx = gw_status_ctx_of(env);
	/* Without a writable store nothing can be settled: listeners may register, nothing is
	 * followed (a read-only replica, or the status service absent in a test build). */
	if (!cfg->follower.enabled || !env->store || gw_store_read_only(env->store) || !f->sx) {
		gw_log(GW_LOG_INFO, "follower_off",
		       GW_LS("why", !cfg->follower.enabled ? "follower.enabled is false"
				    : !f->sx ? "no status service" : "the state store is not writable"),
		       GW_LEND);
		goto done;
	}
	f->max = cfg->follower.max_jobs;
	f->nbuckets = 64;
	while (f->nbuckets < f->max)
		f->nbuckets <<= 1;
	f->jobs = calloc(f->max, sizeof *f->jobs);
	f->hash = calloc(f->nbuckets, sizeof *f->hash);
	f->tick_ms = gw_follower_tick_ms(cfg->follower.poll_interval_ms);
	if (!f->jobs || !f->hash)
		goto oom;
	if (env->base) {
		f->tick = event_new(env->base, -1, EV_PERSIST, fl_tick_cb, f);
		f->work = event_new(env->base, -1, 0, fl_work_cb, f);
		if (!f->tick || !f->work)
			goto oom;
	}
	gw_status_ctx_on_final(f->sx, fl_on_final, f);
done:
	*state = f;
	f = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "cannot start the job follower (out of memory)");
out:
	fl_free(f);
	return rc;
}

static void fl_start(void *state)
{
	struct follower *f = state;
	struct timeval tv;

	if (!f || !f->tick)
		return;
	f->last_refill_ms = fl_mono_ms();
	tv.tv_sec = f->tick_ms / 1000;
	tv.tv_usec = (f->tick_ms % 1000) * 1000;
	event_add(f->tick, &tv);
	event_active(f->tick, 0, 0);	/* the first claim now: nothing waits a scan interval */
}

/* SIGTERM: no new polls or claims; deliveries under way finish or are redone at the next start. */
static void fl_drain(void *state)
{
	struct follower *f = state;

	if (!f)
		return;
	f->draining = 1;
	for (size_t i = 0; i < f->n; i++) {
		gw_status_unwant(&f->jobs[i]->w);
		f->jobs[i]->polling = 0;
	}
}

const struct gw_svc gw_svc_follower = {
	.name = "follower",
	.init = fl_init,
	.start = fl_start,
	.drain = fl_drain,
	.free = fl_free,
	.metrics = fl_metrics,
};
