/*
 * budget: the usage ledger's StartJob side, settlement and metrics. See budget.h.
 */
#include "gateway/svc/budget.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <event2/event.h>
#include <jansson.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "auth/caller/perm.h"
#include "gateway/api/translate.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/follower.h"
#include "gateway/upstream/upstream.h"

/* One tenant's counters and gauges (by name: a reload may reorder tenants). */
struct bt_tenant {
	char name[GW_STORE_TENANT_MAX + 1];
	uint64_t exceeded[2];		/* [hard] */
	int gauged;			/* the last gauge read saw it */
	double used_min;		/* usage_minutes: counted minutes in its window */
};

struct budget {
	struct gw_env *env;
	/* the reservation being handed to next() (gw_budget_take) */
	struct gw_call *handoff_call;
	struct gw_budget_hold handoff;
	struct bt_tenant *tenants;	/* GW_BUDGET_TENANTS_MAX */
	size_t ntenants;
	uint64_t tenants_dropped;	/* tenants past GW_BUDGET_TENANTS_MAX: not counted */
	struct {
		uint64_t reserved, refused, released, started, unmeasured, store_failed;
		uint64_t settled, settle_failed, start_failed, release_failed;
	} cnt;
	struct event *gauge_timer;
	int gauge_inflight;
	uint64_t gauge_failed;
};

/* ---- pure parts ---- */

int64_t gw_budget_charge_s(double input_s, int has_trim, double trim_from, double trim_to)
{
	double processed = input_s;

	if (has_trim) {
		double to = input_s >= 0 && trim_to > input_s ? input_s : trim_to;

		if (to - trim_from > 0)
			processed = to - trim_from;
	}
	if (processed < 0 || !isfinite(processed))
		return -1;
	return (int64_t)ceil(processed);
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), and back. */
static int64_t bt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int64_t bt_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void bt_civil(int64_t ms, int64_t *y, unsigned *m, unsigned *d, int64_t *sod)
{
	int64_t days = bt_floor_div(ms, 86400000), z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
	*sod = (ms - days * 86400000) / 1000;
}

void gw_budget_window(int window, int64_t now_ms, int64_t oldest_ms, int64_t *from_ms,
		      int64_t *reset_ms)
{
	int64_t y, sod;
	unsigned m, d;

	if (window == GW_BUDGET_WINDOW_ROLLING_30D) {
		*from_ms = now_ms - GW_BUDGET_ROLLING_MS;
		*reset_ms = oldest_ms > *from_ms ? oldest_ms + GW_BUDGET_ROLLING_MS : now_ms;
		return;
	}
	bt_civil(now_ms, &y, &m, &d, &sod);
	*from_ms = bt_days_from_civil(y, m, 1) * 86400000;
	*reset_ms = (m == 12 ? bt_days_from_civil(y + 1, 1, 1) : bt_days_from_civil(y, m + 1, 1)) *
		    86400000;
}

const char *gw_budget_rfc3339(int64_t ms, char *out, size_t cap)
{
	int64_t y, sod;
	unsigned m, d;

	bt_civil(ms, &y, &m, &d, &sod);
	snprintf(out, cap, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02uZ", y, m, d, (unsigned)(sod / 3600),
		 (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
	return out;
}

int gw_budget_month(const char *s, int64_t *from_ms, int64_t *to_ms)
{
	unsigned y = 0, m = 0;

	if (!s || strlen(s) != 7 || s[4] != '-')
		return -1;
	for (int i = 0; i < 7; i++) {
		if (i == 4)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (i < 4)
			y = y * 10 + (unsigned)(s[i] - '0');
		else
			m = m * 10 + (unsigned)(s[i] - '0');
	}
	if (y < 1970 || m < 1 || m > 12)
		return -1;
	*from_ms = bt_days_from_civil(y, m, 1) * 86400000;
	*to_ms = (m == 12 ? bt_days_from_civil(y + 1, 1, 1) : bt_days_from_civil(y, m + 1, 1)) * 86400000;
	return 0;
}

int gw_budget_over(int64_t used_s, int64_t need_s, long long limit_min)
{
	return used_s + need_s > limit_min * 60;
}

void gw_budget_refusal(char *out, size_t cap, const char *tenant, int64_t used_s, int64_t need_s,
		       long long limit_min, int window, int64_t reset_ms)
{
	char at[32];

	snprintf(out, cap,
		 "budget of team %s is spent: %.2f of %lld minutes used %s, this job needs %.2f more;"
		 " it resets at %s",
		 tenant, (double)used_s / 60.0, limit_min,
		 window == GW_BUDGET_WINDOW_ROLLING_30D ? "in the last 30 days" : "this month",
		 (double)need_s / 60.0, gw_budget_rfc3339(reset_ms, at, sizeof at));
}

/* ---- counters ---- */

static struct budget *bt_of(const struct gw_env *env)
{
	return env ? gw_env_svc(env, &gw_svc_budget) : NULL;
}

static struct bt_tenant *bt_tenant(struct budget *b, const char *name)
{
	for (size_t i = 0; i < b->ntenants; i++)
		if (strcmp(b->tenants[i].name, name) == 0)
			return &b->tenants[i];
	if (b->ntenants >= GW_BUDGET_TENANTS_MAX) {
		b->tenants_dropped++;
		return NULL;
	}
	snprintf(b->tenants[b->ntenants].name, sizeof b->tenants[0].name, "%s", name);
	return &b->tenants[b->ntenants++];
}

static void bt_exceeded(struct budget *b, const char *tenant, int hard)
{
	struct bt_tenant *t = bt_tenant(b, tenant);

	if (t)
		t->exceeded[hard ? 1 : 0]++;
}

/* ---- reserving ---- */

struct bop {
	struct budget *b;
	struct gw_call *c;
	const ProtobufCMessage *req;
	struct gw_rpc_owner_view view;
	gw_rpc_owner_next_fn next;
	struct gw_usage_row row;
	int has_trim;
	double trim_from, trim_to;
	int budgeted, hard, window;
	long long limit_min;
	int64_t from_ms;
};

static void bop_free(struct bop *op)
{
	if (!op)
		return;
	gw_rpc_owner_view_clear(&op->view);
	free(op);
}

/* Ends op with the call failed (code, message already formatted). */
static void bop_fail(struct bop *op, grpc_status_code code, long retry_ms, const char *msg)
{
	if (retry_ms > 0)
		gw_call_fail_retry(op->c, code, retry_ms, msg);
	else
		gw_call_fail(op->c, code, "%s", msg);
	bop_free(op);
}

/* Hands the reservation (or none) to next(); one not taken there is released. */
static void bop_next(struct bop *op)
{
	struct budget *b = op->b;
	struct gw_rpc_owner_view view = op->view;

	op->view = (struct gw_rpc_owner_view){ 0 };
	b->handoff_call = op->c;
	b->handoff.env = b->env;
	snprintf(b->handoff.id, sizeof b->handoff.id, "%s", op->row.id);
	snprintf(b->handoff.tenant, sizeof b->handoff.tenant, "%s", op->row.tenant);
	b->handoff.refollow = strncmp(op->row.source, "mp:", 3) == 0;
	op->next(op->c, op->req, &view);
	b->handoff_call = NULL;
	gw_budget_release(&b->handoff);	/* not taken: next finished the call itself */
	bop_free(op);
}

static void bop_reserved(void *arg, const struct gw_store_res *res)
{
	struct bop *op = arg;
	struct budget *b = op->b;
	const struct gw_usage_sum *u = res->usage_sums && res->count > 0 ? res->usage_sums : NULL;
	int64_t used = u ? u->seconds : 0, reset = 0, from = 0;
	char msg[GW_BUDGET_MSG_MAX], at[32];

	if (op->budgeted)
		gw_budget_window(op->window, op->row.started_ms, u ? u->oldest_ms : 0, &from, &reset);
	if (res->rc == GW_STORE_CONFLICT && u) {
		b->cnt.refused++;
		bt_exceeded(b, op->row.tenant, 1);
		gw_budget_refusal(msg, sizeof msg, op->row.tenant, used, op->row.seconds, op->limit_min,
				  op->window, reset);
		gw_log(GW_LOG_INFO, "budget_exceeded", GW_LS("tenant", op->row.tenant),
		       GW_LS("hard", "true"), GW_LN("used_s", used), GW_LN("need_s", op->row.seconds),
		       GW_LN("limit_min", op->limit_min),
		       GW_LS("reset_at", gw_budget_rfc3339(reset, at, sizeof at)), GW_LEND);
		gw_call_fail(op->c, GRPC_STATUS_FAILED_PRECONDITION, "StartJob: %s", msg);
		bop_free(op);
		return;
	}
	if (res->rc != 0) {
		b->cnt.store_failed++;
		snprintf(msg, sizeof msg, "StartJob: cannot reserve the job's minutes: %s",
			 res->err ? res->err : "state store failed");
		bop_fail(op, GRPC_STATUS_UNAVAILABLE, res->retry_ms, msg);
		return;
	}
	b->cnt.reserved++;
	if (op->budgeted && !op->hard && gw_budget_over(used, op->row.seconds, op->limit_min)) {
		bt_exceeded(b, op->row.tenant, 0);
		gw_log(GW_LOG_WARN, "budget_exceeded", GW_LS("tenant", op->row.tenant),
		       GW_LS("hard", "false"), GW_LN("used_s", used), GW_LN("need_s", op->row.seconds),
		       GW_LN("limit_min", op->limit_min),
		       GW_LS("reset_at", gw_budget_rfc3339(reset, at, sizeof at)), GW_LEND);
	}
	bop_next(op);
}

/* The input's duration is known (input_ms, -1 unknown; why: what said so, for a refusal). */
static void bop_measured(struct bop *op, int64_t input_ms, const char *why)
{
	struct gw_usage_req q = { .op = GW_USAGE_RESERVE, .row = &op->row, .limit_s = -1 };
	int64_t secs = gw_budget_charge_s(input_ms >= 0 ? (double)input_ms / 1000.0 : -1.0,
					  op->has_trim, op->trim_from, op->trim_to);
	int64_t reset;
	char msg[GW_BUDGET_MSG_MAX];

	if (secs < 0) {
		if (op->budgeted && op->hard) {
			snprintf(msg, sizeof msg,
				 "StartJob: team %s has a hard budget and the job's duration cannot be told"
				 " (%s)", op->row.tenant, why);
			bop_fail(op, GRPC_STATUS_FAILED_PRECONDITION, 0, msg);
			return;
		}
		op->b->cnt.unmeasured++;
		secs = 0;
	}
	op->row.seconds = secs;
	op->row.input_ms = input_ms;
	if (op->budgeted) {
		gw_budget_window(op->window, op->row.started_ms, 0, &op->from_ms, &reset);
		if (op->hard)
			q.limit_s = op->limit_min * 60;
	}
	q.from_ms = op->from_ms;
	gw_store_usage(gw_call_env(op->c)->store, &q, bop_reserved, op);
}

/* The source job's ledger row (a rerun, a multi-person run). */
static void bop_source_row(void *arg, const struct gw_store_res *res)
{
	struct bop *op = arg;

	if (res->rc == GW_STORE_ERROR) {
		char msg[GW_BUDGET_MSG_MAX];

		op->b->cnt.store_failed++;
		snprintf(msg, sizeof msg, "StartJob: cannot read the source job's usage: %s", res->err);
		bop_fail(op, GRPC_STATUS_UNAVAILABLE, res->retry_ms, msg);
		return;
	}
	bop_measured(op, res->rc == 0 && res->usage ? res->usage[0].input_ms : -1,
		     "the source job has no usage record");
}

static void bop_video_info(void *arg, const struct gw_up_response *res)
{
	struct bop *op = arg;
	struct gw_up_failure fail;
	ProtobufCMessage *reply = NULL;
	char err[GW_TR_ERR_MAX], msg[GW_BUDGET_MSG_MAX];
	double d;

	gw_call_count_upstream(op->c);
	if (gw_up_failure_of(res, "StartJob: /videoInfo", &fail) != GRPC_STATUS_OK) {
		/* 4xx: upstream cannot read the video (and will not run it); else it may again. A
		 * team without a hard budget starts its job anyway, unmeasured. */
		if (fail.code != GRPC_STATUS_INVALID_ARGUMENT && fail.code != GRPC_STATUS_NOT_FOUND &&
		    op->budgeted && op->hard) {
			snprintf(msg, sizeof msg, "StartJob: cannot measure the video for the budget: %.300s",
				 fail.msg);
			bop_fail(op, fail.code, fail.retry_ms, msg);
			return;
		}
		bop_measured(op, -1, "upstream /videoInfo cannot read the video");
		return;
	}
	err[0] = '\0';
	if (gw_tr_parse_get_video_info(NULL, res->body, res->body_len, &reply, err, sizeof err) !=
	    GW_TR_OK) {
		bop_measured(op, -1, "upstream /videoInfo sent an unexpected answer");
		return;
	}
	d = ((Animate3d__V1__VideoInfo *)(void *)reply)->duration;
	protobuf_c_message_free_unpacked(reply, NULL);
	/* ms, rounded up: ceil over ms then seconds equals ceil over the seconds */
	bop_measured(op, d >= 0 && isfinite(d) ? (int64_t)ceil(d * 1000.0) : -1,
		     "upstream /videoInfo gave no duration");
}

static void bop_ask_video_info(struct bop *op, const char *url)
{
	struct gw_up_account *acct = gw_call_account(op->c);
	struct gw_up_request rq;
	char *body = NULL;
	json_t *j = json_pack("{s:s}", "url", url);
	int64_t left = gw_call_time_left_ms(op->c);

	if (j)
		body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.path = "/videoInfo";
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = left > 0 ? (long)left : 0;
	rq.idempotent = 1;	/* it only reads the file's metadata */
	rq.trace = gw_call_trace(op->c);
	if (!body || !acct || !gw_up_start(gw_call_env(op->c)->up, acct, &rq, bop_video_info, op)) {
		free(body);
		bop_fail(op, GRPC_STATUS_UNAVAILABLE, 0,
			 "StartJob: cannot measure the video for the budget: upstream request could not be started");
		return;
	}
	free(body);
}

static void bop_id(char *out, size_t cap)
{
	static const char hexd[] = "0123456789abcdef";
	uint8_t r[16];
	size_t i;

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		/* no entropy: wall clock and a counter still make it unique in this process */
		static uint64_t n;
		uint64_t t = (uint64_t)gw_clock_wall_ms();

		memcpy(r, &t, 8);
		n++;
		memcpy(r + 8, &n, 8);
	}
	for (i = 0; i < sizeof r && 2 * i + 2 < cap; i++) {
		out[2 * i] = hexd[r[i] >> 4];
		out[2 * i + 1] = hexd[r[i] & 15];
	}
	out[2 * i] = '\0';
}

void gw_budget_reserve(struct gw_call *c, const ProtobufCMessage *req,
		       struct gw_rpc_owner_view *view, gw_rpc_owner_next_fn next)
{
	struct gw_env *env = gw_call_env(c);
	struct budget *b = bt_of(env);
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	const Animate3d__V1__StartJobRequest *sj = (const void *)req;
	const Animate3d__V1__Params *p = sj->params;
	struct bop *op = NULL;

	if (!b || !t || !env->store || gw_store_read_only(env->store)) {
		/* no ledger here (a read-only replica, a test without the service): unrecorded */
		next(c, req, view);
		return;
	}
	op = calloc(1, sizeof *op);
	if (!op) {
		gw_rpc_owner_view_clear(view);
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "StartJob: out of memory");
		return;
	}
	op->b = b;
	op->c = c;
	op->req = req;
	op->view = *view;
	*view = (struct gw_rpc_owner_view){ 0 };
	op->next = next;
	op->budgeted = t->budget.enabled;
	op->hard = t->budget.hard;
	op->window = t->budget.window;
	op->limit_min = t->budget.minutes;
	bop_id(op->row.id, sizeof op->row.id);
	snprintf(op->row.tenant, sizeof op->row.tenant, "%s", t->name);
	op->row.started_ms = gw_clock_wall_ms();
	op->row.input_ms = -1;
	op->row.persons = 1;
	if (p) {
		op->row.face = p->track_face_opt_case && p->track_face;
		op->row.hand = p->track_hand_opt_case && p->track_hand;
		if (p->n_models > 0)
			op->row.persons = (int)p->n_models;
		if (p->trim) {
			op->has_trim = 1;
			op->trim_from = p->trim->from_s;
			op->trim_to = p->trim->to_s;
		}
	}
	switch (sj->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		snprintf(op->row.source, sizeof op->row.source, "url");
		bop_ask_video_info(op, sj->upload_url);
		return;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID: {
		int rerun = sj->source_case == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID;
		const char *src = rerun ? sj->rerun_rid : sj->mp_detection_rid;
		struct gw_usage_req q = { .op = GW_USAGE_GET, .tenant = op->row.tenant, .rid = src };

		snprintf(op->row.source, sizeof op->row.source, "%s:%s", rerun ? "rerun" : "mp", src);
		gw_store_usage(env->store, &q, bop_source_row, op);
		return;
	}
	default:
		/* the translate row refuses a StartJob without a source */
		bop_measured(op, -1, "no source");
		return;
	}
}

void gw_budget_take(struct gw_call *c, struct gw_budget_hold *h)
{
	struct budget *b = bt_of(gw_call_env(c));

	memset(h, 0, sizeof *h);
	if (!b || b->handoff_call != c)
		return;
	*h = b->handoff;
	memset(&b->handoff, 0, sizeof b->handoff);
}

/* ---- how the start ended ---- */

struct bend {
	struct budget *b;
	int release, refollow;
	char id[GW_USAGE_ID_MAX + 1];
	char rid[GW_STORE_ID_MAX + 1];
	char tenant[GW_STORE_TENANT_MAX + 1];
};

static void bend_refollowed(void *arg, const struct gw_store_res *res)
{
	struct bend *e = arg;

	if (res->rc != 0) {
		e->b->cnt.start_failed++;
		gw_log(GW_LOG_WARN, "usage_write_failed", GW_LS("tenant", e->tenant),
		       GW_LS("what", "refollow"), GW_LS("rid", e->rid),
		       GW_LS("error", res->err ? res->err : "-"), GW_LEND);
	}
	free(e);
}

static void bend_done(void *arg, const struct gw_store_res *res)
{
	struct bend *e = arg;

	if (res->rc != 0) {
		/* The row stays reserved and stops counting after GW_USAGE_RESERVE_STALE_MS; a job
		 * that runs meanwhile is not charged in the ledger. Logged: the figures are off. */
		if (e->release)
			e->b->cnt.release_failed++;
		else
			e->b->cnt.start_failed++;
		gw_log(GW_LOG_WARN, "usage_write_failed", GW_LS("tenant", e->tenant),
		       GW_LS("what", e->release ? "release" : "start"), GW_LS("rid", e->rid),
		       GW_LS("reservation", e->id), GW_LS("error", res->err ? res->err : "-"), GW_LEND);
	} else if (e->release) {
		e->b->cnt.released++;
	} else {
		e->b->cnt.started++;
		if (e->refollow) {
			/* The detection's rid was settled at its end: the follower must hear this
			 * run's final too, or its row would never settle. */
			struct gw_usage_req q = { .op = GW_USAGE_REFOLLOW, .rid = e->rid };

			e->refollow = 0;
			e->release = 0;
			gw_store_usage(e->b->env->store, &q, bend_refollowed, e);
			return;
		}
	}
	free(e);
}

static void bt_end(struct gw_budget_hold *h, const char *rid)
{
	struct budget *b = h->env ? bt_of(h->env) : NULL;
	struct gw_usage_req q = { .now_ms = gw_clock_wall_ms() };
	struct bend *e;

	if (!b || !h->id[0] || !(e = calloc(1, sizeof *e))) {
		memset(h, 0, sizeof *h);
		return;
	}
	e->b = b;
	e->release = rid == NULL;
	e->refollow = rid && h->refollow;
	snprintf(e->id, sizeof e->id, "%s", h->id);
	snprintf(e->rid, sizeof e->rid, "%s", rid ? rid : "-");
	snprintf(e->tenant, sizeof e->tenant, "%s", h->tenant);
	q.op = rid ? GW_USAGE_START : GW_USAGE_RELEASE;
	q.id = e->id;
	q.rid = rid;
	memset(h, 0, sizeof *h);
	gw_store_usage(b->env->store, &q, bend_done, e);
}

void gw_budget_started(struct gw_budget_hold *h, const char *rid)
{
	if (rid && rid[0])
		bt_end(h, rid);
	else
		bt_end(h, NULL);
}

void gw_budget_release(struct gw_budget_hold *h)
{
	bt_end(h, NULL);
}

/* ---- settlement: the follower's final of each job ---- */

struct bsettle {
	struct budget *b;
	gw_jobevent_done_fn done;
	void *done_arg;
};

static void bt_settled(void *arg, const struct gw_store_res *res)
{
	struct bsettle *s = arg;

	if (res->rc == 0)
		s->b->cnt.settled += (uint64_t)(res->count > 0 ? res->count : 0);
	else
		s->b->cnt.settle_failed++;
	s->done(s->done_arg, res->rc == 0 ? 0 : -1);	/* -1: the follower offers it again */
	free(s);
}

static void bt_event(void *arg, const struct gw_jobevent *ev, gw_jobevent_done_fn done,
		     void *done_arg)
{
	struct budget *b = arg;
	const struct gw_config *cfg = b->env->cfg;
	int t = gw_config_tenant_index(cfg, ev->tenant);
	struct gw_usage_req q = { .op = GW_USAGE_SETTLE, .rid = ev->rid, .now_ms = ev->final_at_ms };
	struct bsettle *s = calloc(1, sizeof *s);

	if (!s) {
		done(done_arg, -1);
		return;
	}
	s->b = b;
	s->done = done;
	s->done_arg = done_arg;
	q.ok = ev->state == ANIMATE3D__V1__JOB_STATE__SUCCESS;
	q.count_failed = t >= 0 && cfg->tenants[t].budget.count_failed;
	if (q.now_ms <= 0)
		q.now_ms = gw_clock_wall_ms();
	gw_store_usage(b->env->store, &q, bt_settled, s);
}

/* ---- the gauges: every tenant's usage in its window, read on a slow timer ---- */

static void bt_gauges_read(void *arg, const struct gw_store_res *res)
{
	struct budget *b = arg;

	b->gauge_inflight = 0;
	if (res->rc != 0) {
		b->gauge_failed++;
		return;
	}
	for (size_t i = 0; i < b->ntenants; i++)
		b->tenants[i].gauged = 0;
	for (long i = 0; i < res->count; i++) {
		struct bt_tenant *t = bt_tenant(b, res->usage_sums[i].tenant);

		if (t) {
			t->gauged = 1;
			t->used_min = (double)res->usage_sums[i].seconds / 60.0;
		}
	}
}

/* Month windows read in one SUM since the month's start; a rolling tenant's figure is the
 * same query since 30 days ago, so the earlier start is asked and rows are kept per tenant. */
static void bt_gauge_cb(evutil_socket_t fd, short what, void *arg)
{
	struct budget *b = arg;
	int64_t now = gw_clock_wall_ms(), from, reset, roll = now - GW_BUDGET_ROLLING_MS;
	struct gw_usage_req q = { .op = GW_USAGE_SUM, .to_ms = now + 1, .now_ms = now };
	const struct gw_config *cfg = b->env->cfg;
	int rolling = 0;

	(void)fd;
	(void)what;
	if (b->gauge_inflight || !b->env->store)
		return;
	for (size_t i = 0; i < cfg->ntenants; i++)
		rolling |= cfg->tenants[i].budget.enabled &&
			   cfg->tenants[i].budget.window == GW_BUDGET_WINDOW_ROLLING_30D;
	gw_budget_window(GW_BUDGET_WINDOW_MONTH, now, 0, &from, &reset);
	/* One window for all: the month's, or the last 30 days when a tenant counts those (then a
	 * month tenant's gauge can include the end of last month; the refusal's figure is exact). */
	q.from_ms = rolling && roll < from ? roll : from;
	b->gauge_inflight = 1;
	gw_store_usage(b->env->store, &q, bt_gauges_read, b);
}

/* ---- Account.GetUsage ---- */

/* One GetUsage: the sums over the asked range, then over the budget windows (the month's, and
 * the last 30 days' when a tenant asked about counts those), then the reply. */
struct busage {
	struct gw_call *c;
	int all;				/* tenant "*" */
	char tenant[GW_STORE_TENANT_MAX + 1];	/* the one asked about (not all) */
	int64_t from, to, now;
	int step;				/* 0 range, 1 month, 2 rolling */
	struct gw_usage_sum *sums[3];
	long n[3];
};

static void busage_free(struct busage *u)
{
	for (int i = 0; i < 3; i++)
		free(u->sums[i]);
	free(u);
}

static const struct gw_usage_sum *busage_find(const struct busage *u, int step, const char *tenant)
{
	for (long i = 0; i < u->n[step]; i++)
		if (strcmp(u->sums[step][i].tenant, tenant) == 0)
			return &u->sums[step][i];
	return NULL;
}

/* 1 when the reply names tenant: every tenant for "*", else the one asked about. */
static int busage_names(const struct busage *u, const char *tenant)
{
	return u->all || strcmp(u->tenant, tenant) == 0;
}

static void busage_fill(const struct busage *u, const char *name, const struct gw_config *cfg,
			Animate3d__V1__TenantUsage *t, Animate3d__V1__JobsByState *j, char *reset_at,
			size_t cap)
{
	const struct gw_usage_sum *r = busage_find(u, 0, name);
	int ti = gw_config_tenant_index(cfg, name);
	const struct gw_tenant_cfg *tc = ti >= 0 ? &cfg->tenants[ti] : NULL;

	t->tenant = (char *)name;
	t->jobs_by_state = j;
	if (r) {
		t->minutes_used = (double)r->seconds / 60.0;
		j->reserved = r->jobs[GW_USAGE_RESERVED];
		j->running = r->jobs[GW_USAGE_RUNNING];
		j->succeeded = r->jobs[GW_USAGE_SUCCEEDED];
		j->failed = r->jobs[GW_USAGE_FAILED];
		j->released = r->jobs[GW_USAGE_RELEASED];
	}
	t->reset_at = (char *)"";
	if (tc && tc->budget.enabled) {
		int roll = tc->budget.window == GW_BUDGET_WINDOW_ROLLING_30D;
		const struct gw_usage_sum *w = busage_find(u, roll ? 2 : 1, name);
		int64_t from, reset;

		gw_budget_window(tc->budget.window, u->now, w ? w->oldest_ms : 0, &from, &reset);
		t->has_budget = 1;
		t->hard = tc->budget.hard;
		t->budget_minutes = (double)tc->budget.minutes;
		t->remaining_minutes = t->budget_minutes - (w ? (double)w->seconds / 60.0 : 0);
		t->reset_at = (char *)gw_budget_rfc3339(reset, reset_at, cap);
	}
}

static void busage_reply(struct busage *u)
{
	const struct gw_config *cfg = gw_call_env(u->c)->cfg;
	Animate3d__V1__GetUsageResponse r = ANIMATE3D__V1__GET_USAGE_RESPONSE__INIT;
	size_t cap = cfg->ntenants + (size_t)u->n[0] + 1, n = 0;
	const char **names = calloc(cap, sizeof *names);
	Animate3d__V1__TenantUsage *t = calloc(cap, sizeof *t);
	Animate3d__V1__TenantUsage **tp = calloc(cap, sizeof *tp);
	Animate3d__V1__JobsByState *j = calloc(cap, sizeof *j);
	char (*at)[32] = calloc(cap, sizeof *at);

	if (!names || !t || !tp || !j || !at) {
		gw_call_fail(u->c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetUsage: out of memory");
		goto out;
	}
	/* the configured teams in their order, then teams only the ledger knows (removed since) */
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (busage_names(u, cfg->tenants[i].name))
			names[n++] = cfg->tenants[i].name;
	for (long i = 0; i < u->n[0]; i++)
		if (busage_names(u, u->sums[0][i].tenant) &&
		    gw_config_tenant_index(cfg, u->sums[0][i].tenant) < 0)
			names[n++] = u->sums[0][i].tenant;
	if (n == 0) {	/* an admin naming a team nobody knows */
		gw_call_fail(u->c, GRPC_STATUS_NOT_FOUND, "GetUsage: no team named %s", u->tenant);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		animate3d__v1__tenant_usage__init(&t[i]);
		animate3d__v1__jobs_by_state__init(&j[i]);
		busage_fill(u, names[i], cfg, &t[i], &j[i], at[i], sizeof at[i]);
		tp[i] = &t[i];
	}
	r.n_usage = n;
	r.usage = tp;
	gw_call_reply(u->c, &r.base);
out:
	free(names);
	free(t);
	free(tp);
	free(j);
	free(at);
	busage_free(u);
}

static void busage_next(struct busage *u);

static void busage_read(void *arg, const struct gw_store_res *res)
{
	struct busage *u = arg;

	if (res->rc != 0) {
		gw_call_fail_retry(u->c, GRPC_STATUS_UNAVAILABLE, res->retry_ms > 0 ? res->retry_ms : 1000,
				   "GetUsage: cannot read the usage ledger");
		busage_free(u);
		return;
	}
	if (res->count > 0) {
		u->sums[u->step] = malloc((size_t)res->count * sizeof *u->sums[0]);
		if (!u->sums[u->step]) {
			gw_call_fail(u->c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetUsage: out of memory");
			busage_free(u);
			return;
		}
		memcpy(u->sums[u->step], res->usage_sums, (size_t)res->count * sizeof *u->sums[0]);
		u->n[u->step] = res->count;
	}
	u->step++;
	busage_next(u);
}

/* Issues the sum of u->step, or replies when none is left. */
static void busage_next(struct busage *u)
{
	struct gw_env *env = gw_call_env(u->c);
	const struct gw_config *cfg = env->cfg;
	struct gw_usage_req q = { .op = GW_USAGE_SUM, .tenant = u->all ? NULL : u->tenant,
				  .now_ms = u->now, .to_ms = u->now + 1 };
	int64_t reset;

	if (u->step == 2) {
		int roll = 0;

		for (size_t i = 0; i < cfg->ntenants; i++)
			roll |= busage_names(u, cfg->tenants[i].name) && cfg->tenants[i].budget.enabled &&
				cfg->tenants[i].budget.window == GW_BUDGET_WINDOW_ROLLING_30D;
		if (!roll)
			u->step = 3;
	}
	switch (u->step) {
	case 0:
		q.from_ms = u->from;
		q.to_ms = u->to;
		break;
	case 1:
	case 2:
		gw_budget_window(u->step == 1 ? GW_BUDGET_WINDOW_MONTH : GW_BUDGET_WINDOW_ROLLING_30D,
				 u->now, 0, &q.from_ms, &reset);
		break;
	default:
		busage_reply(u);
		return;
	}
	gw_store_usage(env->store, &q, busage_read, u);
}

void gw_budget_rpc_usage(struct gw_call *c)
{
	const Animate3d__V1__GetUsageRequest *r = (const void *)gw_call_request(c);
	const struct gw_tenant_cfg *own = gw_call_tenant(c);
	struct busage *u;
	int64_t reset;

	if (!own) {
		gw_call_fail(c, GRPC_STATUS_UNAUTHENTICATED, "GetUsage: no tenant");
		return;
	}
	if (r->tenant[0] && strcmp(r->tenant, own->name) != 0 && !(gw_call_perms(c) & GW_PERM_ADMIN)) {
		gw_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
			     "GetUsage: key of tenant %s may read its own team's usage only (another"
			     " team's needs the admin permission)", own->name);
		return;
	}
	if (r->from_ms < 0 || r->to_ms < 0 || (r->to_ms && r->from_ms > r->to_ms)) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
			     "GetUsage: from_ms and to_ms must be >= 0 and from_ms <= to_ms");
		return;
	}
	if (strlen(r->tenant) > GW_STORE_TENANT_MAX) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "GetUsage: tenant is at most %d bytes",
			     GW_STORE_TENANT_MAX);
		return;
	}
	u = calloc(1, sizeof *u);
	if (!u) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "GetUsage: out of memory");
		return;
	}
	u->c = c;
	u->all = strcmp(r->tenant, "*") == 0;
	snprintf(u->tenant, sizeof u->tenant, "%s", r->tenant[0] ? r->tenant : own->name);
	u->now = gw_clock_wall_ms();
	u->from = r->from_ms;
	u->to = r->to_ms ? r->to_ms : u->now + 1;
	if (!r->from_ms && !r->to_ms) {
		/* the team's current budget window; the calendar month for "*" or without a budget */
		int ti = gw_config_tenant_index(gw_call_env(c)->cfg, u->tenant);
		const struct gw_tenant_cfg *tc = ti >= 0 && !u->all ? &gw_call_env(c)->cfg->tenants[ti] : NULL;

		gw_budget_window(tc && tc->budget.enabled ? tc->budget.window : GW_BUDGET_WINDOW_MONTH,
				 u->now, 0, &u->from, &reset);
	}
	busage_next(u);
}

/* ---- the service ---- */

static void bt_metrics(void *state, struct gw_metrics_out *o)
{
	struct budget *b = state;
	const struct gw_config *cfg = b->env->cfg;
	char labels[64 + 2 * GW_STORE_TENANT_MAX], name[2 * GW_STORE_TENANT_MAX + 1];

	gw_metrics_family(o, "budget_exceeded_total", "counter",
			  "StartJobs over their tenant's budget: refused (hard) or allowed and logged (soft).");
	for (size_t i = 0; i < b->ntenants; i++) {
		gw_metrics_label(b->tenants[i].name, name, sizeof name);
		for (int h = 0; h < 2; h++) {
			if (!b->tenants[i].exceeded[h])
				continue;
			snprintf(labels, sizeof labels, "tenant=\"%s\",hard=\"%s\"", name, h ? "true" : "false");
			gw_metrics_value(o, "budget_exceeded_total", labels, b->tenants[i].exceeded[h]);
		}
	}
	gw_metrics_family(o, "usage_minutes", "gauge",
			  "Minutes counted against each tenant in its budget window (reserved, charged), "
			  "read from the state store every 15 s.");
	for (size_t i = 0; i < b->ntenants; i++) {
		if (!b->tenants[i].gauged)
			continue;
		gw_metrics_label(b->tenants[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", name);
		gw_metrics_gauge_f(o, "usage_minutes", labels, b->tenants[i].used_min);
	}
	gw_metrics_family(o, "budget_minutes", "gauge", "tenants[].budget.minutes_per_month.");
	for (size_t i = 0; i < cfg->ntenants; i++) {
		if (!cfg->tenants[i].budget.enabled)
			continue;
		gw_metrics_label(cfg->tenants[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", name);
		gw_metrics_gauge_f(o, "budget_minutes", labels, (double)cfg->tenants[i].budget.minutes);
	}
	gw_metrics_family(o, "budget_remaining_minutes", "gauge",
			  "Budget minutes left in the window (negative past a soft budget).");
	for (size_t i = 0; i < cfg->ntenants; i++) {
		double used = 0;

		if (!cfg->tenants[i].budget.enabled)
			continue;
		for (size_t k = 0; k < b->ntenants; k++)
			if (b->tenants[k].gauged && strcmp(b->tenants[k].name, cfg->tenants[i].name) == 0)
				used = b->tenants[k].used_min;
		gw_metrics_label(cfg->tenants[i].name, name, sizeof name);
		snprintf(labels, sizeof labels, "tenant=\"%s\"", name);
		gw_metrics_gauge_f(o, "budget_remaining_minutes", labels,
				   (double)cfg->tenants[i].budget.minutes - used);
	}
	gw_metrics_family(o, "usage_ledger_total", "counter",
			  "Usage ledger operations of StartJob and the follower, by what happened.");
	{
		static const char *const what[] = { "reserved", "refused", "released", "started",
						    "settled", "unmeasured", "store_failed",
						    "settle_failed", "start_failed", "release_failed",
						    "gauge_failed", "tenants_dropped" };
		uint64_t v[] = { b->cnt.reserved, b->cnt.refused, b->cnt.released, b->cnt.started,
				 b->cnt.settled, b->cnt.unmeasured, b->cnt.store_failed,
				 b->cnt.settle_failed, b->cnt.start_failed, b->cnt.release_failed,
				 b->gauge_failed, b->tenants_dropped };

		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
			snprintf(labels, sizeof labels, "what=\"%s\"", what[i]);
			gw_metrics_value(o, "usage_ledger_total", labels, v[i]);
		}
	}
}

static void bt_free(void *state)
{
	struct budget *b = state;

	if (!b)
		return;
	if (b->gauge_timer)
		event_free(b->gauge_timer);
	free(b->tenants);
	free(b);
}

static int bt_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct budget *b = calloc(1, sizeof *b);
	struct gw_jobevents *je = gw_jobevents_of(env);

	*state = NULL;
	if (!b || !(b->tenants = calloc(GW_BUDGET_TENANTS_MAX, sizeof *b->tenants)))
		goto oom;
	b->env = env;
	if (je && gw_jobevent_listen(je, "usage", bt_event, b) != 0) {
		snprintf(err, errlen, "cannot listen to job finals: too many listeners");
		bt_free(b);
		return -1;
	}
	if (env->base && env->store) {
		b->gauge_timer = event_new(env->base, -1, EV_PERSIST, bt_gauge_cb, b);
		if (!b->gauge_timer)
			goto oom;
	}
	*state = b;
	return 0;
oom:
	snprintf(err, errlen, "cannot start the usage ledger (out of memory)");
	bt_free(b);
	return -1;
}

static void bt_start(void *state)
{
	struct budget *b = state;
	struct timeval tv = { GW_BUDGET_GAUGE_MS / 1000, (GW_BUDGET_GAUGE_MS % 1000) * 1000 };

	if (!b->gauge_timer)
		return;
	event_add(b->gauge_timer, &tv);
	bt_gauge_cb(-1, 0, b);	/* the first figures at once */
}

const struct gw_svc gw_svc_budget = {
	.name = "budget",
	.init = bt_init,
	.start = bt_start,
	.free = bt_free,
	.metrics = bt_metrics,
};
