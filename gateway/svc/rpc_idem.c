/*
 * rpc_idem: StartJob with an idempotency_key on the unary path: keys, fingerprints, PENDING
 * records, reconciliation against /list, the settle delay, replay to duplicates. Separate from
 * rpc_owner.c because it is a state machine over upstream transfers that may outlive the call,
 * not a check on one call. See rpc_idem.h and gateway/state/owner.h for the state machine.
 */
#include "gateway/svc/rpc_idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "auth/upstream/session.h"
#include "gateway/base/clock.h"
#include "gateway/config/config.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/state/owner.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/svc/rpc_owner_int.h"
#include "gateway/call/env.h"
#include "gateway/svc/budget.h"
#include "gateway/svc/caps.h"
#include "gateway/svc/status.h"
#include "gateway/state/store.h"
#include "gateway/api/translate.h"
#include "gateway/upstream/upstream.h"

#define RPC_IDEM_PATH_MAX (10 + GW_OWNER_RECON_MAX * (GW_STORE_RID_MAX + 1))	/* /download/a,b */

enum idem_phase { IDEM_PROCESS, IDEM_LIST, IDEM_LOOKUP };

/* One idempotent attempt; outlives its call when the client leaves (detached, c == NULL). */
struct idem_op {
	struct gw_rpc_idem *st;
	struct gw_env *env;
	struct gw_call *c;
	struct gw_up_account *acct;
	struct gw_up_call *up;
	enum idem_phase phase;
	long retry_ms;			/* RESOURCE_EXHAUSTED, UNAVAILABLE: the retry delay to pass on */
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	struct gw_idem entry;
	struct gw_tr_request process;	/* POST /process, kept for a RESUBMIT */
	struct gw_owner_recon recon;
	char *list;			/* GET /list body, kept for the second reconcile step */
	size_t list_len;
	long timeout_ms;
	int64_t admit_by_us;		/* the caller's deadline (gw_clock_now_us); 0 = none */
	struct idem_wait *w;		/* until the start's verdict: the call as a would-be waiter */
	const char **names;		/* reconciliation: /list rows of the file, and their copy */
	char *names_blob;
	size_t nnames;
	struct gw_budget_hold hold;	/* the call's reservation (gateway/svc/budget.h) */
};

/* A duplicate waiting for the first call with its key. */
struct idem_wait {
	struct gw_env *env;
	struct gw_call *c;
	struct gw_owner_waiter *w;
};

static void idem_op_free(struct idem_op *op)
{
	if (!op)
		return;
	if (!op->c && op->st->detached_ops)
		op->st->detached_ops--;
	gw_budget_release(&op->hold);	/* no job of ours: a replay, a wait, a refusal */
	gw_tr_request_clear(&op->process);
	free(op->list);
	free(op->names);
	free(op->names_blob);
	free(op->w);
	free(op);
}

static void idem_reply_rid(struct gw_call *c, const char *rid)
{
	Animate3d__V1__StartJobResponse r = ANIMATE3D__V1__START_JOB_RESPONSE__INIT;

	r.rid = (char *)rid;
	gw_call_reply(c, &r.base);
}

/* Ends the op: replies (if the call is still here) with rid or code/msg, frees op. */
static void idem_finish(struct idem_op *op, const char *rid, grpc_status_code code, const char *msg)
{
	struct gw_call *c = op->c;

	if (c) {
		gw_call_on_cancel(c, NULL);
		gw_call_set_data(c, NULL);
		if (rid) {
			idem_reply_rid(c, rid);
		} else if (code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
			char m[GW_RPC_OWNER_MSG_MAX];

			snprintf(m, sizeof m, "StartJob: %s", msg);
			gw_call_fail_retry(c, code, op->retry_ms > 0 ? op->retry_ms : 1000, m);
		} else if (code == GRPC_STATUS_UNAVAILABLE && op->retry_ms > 0) {
			char m[GW_RPC_OWNER_MSG_MAX];

			/* Circuit open, paused by Retry-After, 503 + Retry-After: when to come back. */
			snprintf(m, sizeof m, "StartJob: %s", msg);
			gw_call_fail_retry(c, code, op->retry_ms, m);
		} else {
			gw_call_fail(c, code, "StartJob: %s", msg);
		}
	}
	idem_op_free(op);
}

/* The owner's word on the end of an attempt (written to the store first): the op ends with it. */
static void idem_end(void *arg, const char *rid, int code, const char *msg)
{
	idem_finish(arg, rid, (grpc_status_code)code, msg && msg[0] ? msg : "failed");
}

static void idem_on_cancel(struct gw_call *c, void *data)
{
	struct idem_op *op = data;

	(void)c;
	/* Keep the transfer: its outcome must still be recorded (and given to waiters). */
	op->c = NULL;
	op->st->detached_ops++;
}

static void idem_wake(void *arg, const char *rid, int code, const char *msg)
{
	struct idem_wait *w = arg;

	gw_call_on_cancel(w->c, NULL);
	gw_call_set_data(w->c, NULL);
	if (rid)
		idem_reply_rid(w->c, rid);
	else
		gw_call_fail(w->c, (grpc_status_code)code, "StartJob: %s", msg && msg[0] ? msg : "failed");
	free(w);
}

static void idem_wait_cancel(struct gw_call *c, void *data)
{
	struct idem_wait *w = data;

	(void)c;
	gw_owner_idem_unwait(w->env->owner, w->w);
	free(w);
}

static void idem_up_done(void *arg, const struct gw_up_response *res);

size_t gw_rpc_idem_bucket(const char *tenant, const char *key)
{
	uint32_t h = 2166136261u;

	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;	/* separator: ("ab","c") != ("a","bc") */
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % GW_RPC_IDEM_SLOTS;
}

void gw_rpc_idem_unsettled(struct gw_rpc_idem *st, const char *tenant, const char *key,
			   int64_t now_ms)
{
	int64_t *last = &st->unsettled_ms[gw_rpc_idem_bucket(tenant, key)];

	*last = now_ms > *last ? now_ms : *last;
}

/* A /process of the previous attempt may still be on its way upstream (sent, not yet processed)
 * and would start a second job after a /list that did not show it yet. */
int64_t gw_rpc_idem_settle_left(const struct gw_rpc_idem *st, const char *tenant, const char *key,
				int64_t now_ms)
{
	int64_t last = st->unsettled_ms[gw_rpc_idem_bucket(tenant, key)];
	int64_t since = last > st->env->started_wall_ms ? last : st->env->started_wall_ms;
	int64_t left = since + st->env->cfg->state.reconcile_settle_ms - now_ms;

	return left > 0 ? left : 0;
}

static int idem_up_start(struct idem_op *op, const char *method, const char *path, const char *body,
			 int idempotent, const char *route)
{
	struct gw_up_request rq;

	memset(&rq, 0, sizeof rq);
	rq.method = method;
	rq.path = path;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = op->timeout_ms;
	/* Sent within the caller's deadline or refused at once (nothing sent: the key stays free),
	 * even though the transfer itself may outlive the call. */
	if (op->c && op->admit_by_us) {
		int64_t within = (op->admit_by_us - gw_clock_now_us()) / 1000;

		rq.admit_within_ms = within > 0 ? (long)within : 1;
	}
	rq.idempotent = idempotent;
	rq.route = route;
	rq.trace = op->c ? gw_call_trace(op->c) : NULL;	/* a reconcile after the call: none */
	op->up = gw_up_start(op->env->up, op->acct, &rq, idem_up_done, op);
	if (op->c && op->up)
		gw_call_count_upstream(op->c);
	return op->up ? 0 : -1;
}

static void idem_process(struct idem_op *op)
{
	op->phase = IDEM_PROCESS;
	if (idem_up_start(op, op->process.method, op->process.path, op->process.body, 0,
			  "POST /process") == 0)
		return;
	/* Never sent: upstream certainly started nothing. */
	gw_owner_idem_failed(op->env->owner, op->tenant, op->key, 1, GRPC_STATUS_UNAVAILABLE,
			     "upstream request could not be started", idem_end, op);
}

static void idem_log_recon(const struct idem_op *op, const char *outcome)
{
	char cands[GW_OWNER_RECON_MAX * (GW_STORE_RID_MAX + 1) + 1];
	size_t off = 0;

	cands[0] = '\0';
	for (size_t i = 0; i < op->recon.ncand && off + GW_STORE_RID_MAX + 2 < sizeof cands; i++)
		off += (size_t)snprintf(cands + off, sizeof cands - off, "%s%s", i ? "," : "",
					op->recon.cand[i]);
	gw_log(strcmp(outcome, "ambiguous") == 0 || strcmp(outcome, "error") == 0 ? GW_LOG_WARN
										   : GW_LOG_INFO,
	       "reconcile", GW_LS("msg", "pending idempotency key reconciled"), GW_LS("outcome", outcome),
	       GW_LS("tenant", op->tenant), GW_LS("key", op->key),
	       GW_LS("rid", op->recon.verdict == GW_RECON_ADOPT ? op->recon.rid : "-"),
	       GW_LS("candidates", cands), GW_LS("why", op->recon.why), GW_LEND);
}

/* Runs one reconciliation step: op->list, and dl (the /download body) for the second step. */
static void idem_reconcile(struct idem_op *op, const char *dl, size_t dl_len)
{
	struct gw_owner *o = op->env->owner;
	char path[RPC_IDEM_PATH_MAX];
	size_t off;

	switch (gw_owner_reconcile(o, &op->entry, op->list, op->list_len, op->names, op->nnames, dl,
				   dl_len, &op->recon)) {
	case GW_RECON_ADOPT:
		idem_log_recon(op, "adopt");
		gw_budget_started(&op->hold, op->recon.rid);
		op->retry_ms = 1000;	/* a store failure: worth a retry soon */
		gw_owner_idem_adopt(o, op->tenant, op->key, op->recon.rid, gw_clock_wall_ms(), idem_end, op);
		return;
	case GW_RECON_RESUBMIT: {
		int64_t wait = gw_rpc_idem_settle_left(op->st, op->tenant, op->key, gw_clock_wall_ms());
		char msg[GW_RPC_OWNER_MSG_MAX];

		if (wait > 0) {
			idem_log_recon(op, "deferred");
			/* Also as grpc-retry-pushback-ms: a client's retry policy then comes back when
			 * the key can be resubmitted instead of spending its attempts before. */
			op->retry_ms = (long)wait;
			snprintf(msg, sizeof msg,
				 "the previous attempt with this idempotency_key may still reach upstream; retry in %lld ms",
				 (long long)wait);
			gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, msg,
					     idem_end, op);
			return;
		}
		idem_log_recon(op, "resubmit");
		idem_process(op);
		return;
	}
	case GW_RECON_LOOKUP:
		off = (size_t)snprintf(path, sizeof path, "/download/");
		for (size_t i = 0; i < op->recon.ncand && off < sizeof path; i++)
			off += (size_t)snprintf(path + off, sizeof path - off, "%s%s", i ? "," : "",
						op->recon.cand[i]);
		op->phase = IDEM_LOOKUP;
		if (off < sizeof path &&
		    idem_up_start(op, "GET", path, NULL, 1, "GET /download/{rids}") == 0)
			return;
		idem_reconcile(op, "", 0);	/* lookup impossible: decide by name */
		return;
	case GW_RECON_AMBIGUOUS:
	case GW_RECON_UNSUPPORTED:
		idem_log_recon(op, "ambiguous");
		gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_FAILED_PRECONDITION, op->recon.why,
				     idem_end, op);
		return;
	default:
		idem_log_recon(op, "error");
		gw_owner_idem_failed(o, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, op->recon.why,
				     idem_end, op);
		return;
	}
}

/* The store's answer on which of the file's /list rows are recorded (another request's jobs). */
static void idem_recorded_done(void *arg, const struct gw_store_res *res)
{
	struct idem_op *op = arg;
	size_t k = 0;

	if (res->rc != 0) {
		op->retry_ms = res->retry_ms;
		gw_owner_idem_failed(op->env->owner, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE,
				     res->err, idem_end, op);
		return;
	}
	/* keep the recorded ones, in place */
	for (size_t i = 0; i < op->nnames; i++)
		if (res->tenants[i])
			op->names[k++] = op->names[i];
	op->nnames = k;
	idem_reconcile(op, NULL, 0);
}

/* Reconciliation step 0: the /list rows of the key's file, then which of them are recorded. */
static void idem_recorded(struct idem_op *op)
{
	long n;

	op->names = calloc(GW_OWNER_RECON_NAMES_MAX, sizeof *op->names);
	if (!op->names) {
		gw_owner_idem_failed(op->env->owner, op->tenant, op->key, 0, GRPC_STATUS_RESOURCE_EXHAUSTED,
				     "out of memory", idem_end, op);
		return;
	}
	n = gw_owner_recon_names(&op->entry, op->list, op->list_len, op->names, GW_OWNER_RECON_NAMES_MAX,
				 &op->names_blob);
	if (n > GW_OWNER_RECON_NAMES_MAX) {
		gw_owner_idem_failed(op->env->owner, op->tenant, op->key, 0, GRPC_STATUS_FAILED_PRECONDITION,
				     "too many upstream jobs of this file to reconcile; not guessing", idem_end, op);
		return;
	}
	if (n <= 0) {	/* nothing to ask the store; reconcile says what it makes of it */
		op->nnames = 0;
		idem_reconcile(op, NULL, 0);
		return;
	}
	op->nnames = (size_t)n;
	gw_store_owner_lookup(op->env->store, GW_OBJ_JOB, op->names, op->nnames, idem_recorded_done, op);
}

/* The account's protection refused it before sending (res->limited: breaker open, queue full,
 * deadline or pause), no session, no connection, or a 4xx. */
int gw_rpc_idem_never_started(const struct gw_up_response *res)
{
	if (res->limited || res->no_session)
		return 1;
	if (res->curl_rc != CURLE_OK)
		return res->curl_rc == CURLE_COULDNT_CONNECT || res->curl_rc == CURLE_COULDNT_RESOLVE_HOST;
	return res->http_status >= 400 && res->http_status <= 499;
}

static void idem_process_done(struct idem_op *op, const struct gw_up_response *res)
{
	struct gw_owner *o = op->env->owner;
	char msg[GW_RPC_OWNER_MSG_MAX];
	char err[GW_TR_ERR_MAX];
	ProtobufCMessage *reply = NULL;
	struct gw_up_failure fail;
	grpc_status_code code;

	if (gw_up_failure_of(res, "StartJob", &fail) != GRPC_STATUS_OK) {
		code = fail.code;
		snprintf(msg, sizeof msg, "%s", fail.msg);
	} else {
		err[0] = '\0';
		/* StartJob's parse does not read the request (the call may be gone). */
		if (gw_tr_parse_start_job(NULL, res->body, res->body_len, &reply, err, sizeof err) ==
		    GW_TR_OK) {
			const char *rid = ((Animate3d__V1__StartJobResponse *)(void *)reply)->rid;

			/* A multi-person run reuses its detection rid: any cached final status is history. */
			if (op->acct)
				gw_status_job_restarted(gw_status_ctx_of(op->env), op->acct->idx, rid);
			gw_budget_started(&op->hold, rid);
			op->retry_ms = 1000;	/* a store failure: worth a retry soon */
			gw_owner_idem_done(o, op->tenant, op->key, rid, gw_clock_wall_ms(), idem_end, op);
			protobuf_c_message_free_unpacked(reply, NULL);
			return;
		}
		code = GRPC_STATUS_UNAVAILABLE;
		snprintf(msg, sizeof msg, "StartJob: upstream sent an unexpected answer: %s", err);
	}
	/* msg already starts with "StartJob: "; the finish prefix would repeat it. */
	if (!gw_rpc_idem_never_started(res))
		gw_rpc_idem_unsettled(op->st, op->tenant, op->key, gw_clock_wall_ms());
	op->retry_ms = fail.retry_ms;
	gw_owner_idem_failed(o, op->tenant, op->key, gw_rpc_idem_never_started(res), code,
			     strncmp(msg, "StartJob: ", 10) == 0 ? msg + 10 : msg, idem_end, op);
}

static void idem_up_done(void *arg, const struct gw_up_response *res)
{
	struct idem_op *op = arg;
	int ok = !res->no_session && res->curl_rc == CURLE_OK && res->http_status >= 200 &&
		 res->http_status <= 299;
	char msg[GW_RPC_OWNER_MSG_MAX];

	op->up = NULL;
	switch (op->phase) {
	case IDEM_PROCESS:
		idem_process_done(op, res);
		return;
	case IDEM_LIST:
		if (ok && (op->list = malloc(res->body_len + 1))) {
			memcpy(op->list, res->body, res->body_len);
			op->list[res->body_len] = '\0';
			op->list_len = res->body_len;
			idem_recorded(op);
			return;
		}
		snprintf(msg, sizeof msg, "cannot reconcile a pending idempotency key: upstream /list failed; retry");
		gw_owner_idem_failed(op->env->owner, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE, msg,
				     idem_end, op);
		return;
	case IDEM_LOOKUP:
		/* "" = the lookup failed: reconciliation then decides by name only. */
		idem_reconcile(op, ok ? res->body : "", ok ? res->body_len : 0);
		return;
	}
}


int gw_rpc_idem_applies(struct gw_call *c)
{
	const Animate3d__V1__StartJobRequest *r = (const void *)gw_call_request(c);

	return gw_call_tenant(c) && gw_ro_kind_of(c) == RO_START_JOB && r->idempotency_key &&
	       r->idempotency_key[0];
}

int gw_rpc_idem_identity(const Animate3d__V1__StartJobRequest *r, uint8_t fp[32], char *source,
			 size_t cap)
{
	Animate3d__V1__StartJobRequest copy = *r;
	uint8_t *buf;
	size_t len;
	int rc = -1;

	copy.idempotency_key = (char *)"";
	len = protobuf_c_message_get_packed_size(&copy.base);
	buf = malloc(len ? len : 1);
	if (!buf)
		return -1;
	protobuf_c_message_pack(&copy.base, buf);
	gw_owner_fingerprint(buf, len, fp);
	free(buf);
	switch (r->source_case) {
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL:
		rc = gw_owner_source("url", r->upload_url, source, cap);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID:
		rc = gw_owner_source("rerun", r->rerun_rid, source, cap);
		break;
	case ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID:
		rc = gw_owner_source("mp", r->mp_detection_rid, source, cap);
		break;
	default:
		break;
	}
	return rc;
}

/* A tenant's share of the owner's global bounds: tenants[].limits.start_jobs_in_flight /
 * start_job_waiters, else a fair share of GW_OWNER_MAX_INFLIGHT / GW_OWNER_MAX_WAITERS, from the
 * current configuration (a tenant a reload removed still has keys in flight: a fair share). */
static void idem_caps(void *arg, const char *tenant, uint64_t *inflight, uint64_t *waiters)
{
	const struct gw_config *cfg = ((struct gw_env *)arg)->cfg;
	int t = gw_config_tenant_index(cfg, tenant);
	const struct gw_tenant_cfg *tc = t >= 0 ? &cfg->tenants[t] : NULL;

	*inflight = gw_config_tenant_cap(cfg, tc ? tc->limits.start_jobs_in_flight : 0, 0,
					 GW_OWNER_MAX_INFLIGHT);
	*waiters = gw_config_tenant_cap(cfg, tc ? tc->limits.start_job_waiters : 0, 0, GW_OWNER_MAX_WAITERS);
}

static void idem_limited(struct gw_call *c, const char *tenant, const struct gw_owner_start *st)
{
	static const struct gw_caps_what keys = {
		"StartJob", "start_jobs_in_flight", "idempotent StartJob keys in flight", "tenant",
		"tenants[].limits.start_jobs_in_flight, default a fair share of 4096", "-"
	};
	static const struct gw_caps_what waiters = {
		"StartJob", "start_job_waiters", "duplicate StartJob calls waiting", "tenant",
		"tenants[].limits.start_job_waiters, default a fair share of 8192", "-"
	};
	struct gw_owner *o = gw_call_env(c)->owner;

	gw_caps_refuse(c, gw_owner_limit_log(o), gw_clock_now_us() / 1000,
		       st->limit.waiters ? &waiters : &keys, tenant, GW_SLOTS_NAME_FULL, st->limit.held,
		       st->limit.cap);
}

/* A refusal of the start: the call (if still here) hears it, the op ends. */
static void idem_refuse(struct idem_op *op, grpc_status_code code, long retry_ms, const char *msg)
{
	struct gw_call *c = op->c;

	if (c) {
		gw_call_on_cancel(c, NULL);
		gw_call_set_data(c, NULL);
		if (retry_ms > 0)
			gw_call_fail_retry(c, code, retry_ms, msg);
		else
			gw_call_fail(c, code, "%s", msg);
	}
	idem_op_free(op);
}

/* The owner's verdict on the key (see owner.h). */
static void idem_started(void *arg, enum gw_idem_verdict v, const struct gw_owner_start *st)
{
	struct idem_op *op = arg;
	struct gw_env *env = op->env;
	char msg[GW_RPC_OWNER_MSG_MAX];

	switch (v) {
	case GW_IDEM_PROCEED:
		op->entry = st->entry;
		idem_process(op);
		return;
	case GW_IDEM_RECONCILE:
		op->entry = st->entry;
		op->phase = IDEM_LIST;
		if (idem_up_start(op, "GET", "/list", NULL, 1, "GET /list") != 0)
			gw_owner_idem_failed(env->owner, op->tenant, op->key, 0, GRPC_STATUS_UNAVAILABLE,
					     "upstream request could not be started", idem_end, op);
		return;
	case GW_IDEM_REPLAY:
		idem_finish(op, st->rid, GRPC_STATUS_OK, NULL);
		return;
	case GW_IDEM_WAIT:
		if (!op->c) {	/* left while the key was being read: nobody to wake */
			gw_owner_idem_unwait(env->owner, st->waiter);
			idem_op_free(op);
			return;
		}
		op->w->w = st->waiter;
		gw_call_set_data(op->c, op->w);
		gw_call_on_cancel(op->c, idem_wait_cancel);
		op->w = NULL;
		idem_op_free(op);
		return;
	case GW_IDEM_MISMATCH:
		idem_refuse(op, GRPC_STATUS_INVALID_ARGUMENT, 0, "idempotency_key reused with a different request");
		return;
	case GW_IDEM_BUSY:
		idem_refuse(op, GRPC_STATUS_UNAVAILABLE, 0,
			    "StartJob: too many requests in flight for idempotency keys; retry later");
		return;
	case GW_IDEM_LIMITED:
		if (op->c) {
			gw_call_on_cancel(op->c, NULL);
			gw_call_set_data(op->c, NULL);
			idem_limited(op->c, op->tenant, st);
		}
		idem_op_free(op);
		return;
	case GW_IDEM_ELSEWHERE:
		idem_refuse(op, GRPC_STATUS_UNAVAILABLE, st->retry_ms > 0 ? st->retry_ms : 1000,
			    "StartJob: another gateway replica is starting the job of this idempotency_key; retry");
		return;
	default:
		snprintf(msg, sizeof msg, "StartJob: %s", st->err && st->err[0] ? st->err : "state store failed");
		idem_refuse(op, GRPC_STATUS_UNAVAILABLE, st->retry_ms, msg);
		return;
	}
}

void gw_rpc_idem_start_job(struct gw_rpc_idem *idem, struct gw_call *c, const ProtobufCMessage *admitted)
{
	const Animate3d__V1__StartJobRequest *r = (const void *)gw_call_request(c);
	struct gw_env *env = idem->env;
	struct idem_op *op = NULL;
	struct idem_wait *w = NULL;
	char source[GW_STORE_SOURCE_MAX + 1];
	char err[GW_TR_ERR_MAX];
	uint8_t fp[32];
	int64_t left = gw_call_time_left_ms(c);
	long floor_ms = env->cfg->upstream.default_timeout_ms;
	int rc;

	op = calloc(1, sizeof *op);
	w = calloc(1, sizeof *w);
	if (!op || !w) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "StartJob: out of memory");
		goto out;
	}
	op->st = idem;
	op->env = env;
	op->c = c;
	gw_budget_take(c, &op->hold);
	err[0] = '\0';
	/* Built from the admitted request (another tenant's model ids masked); the fingerprint
	 * below is the caller's own request. */
	rc = gw_tr_build_start_job(admitted, &op->process, err, sizeof err);
	if (rc != GW_TR_OK) {
		gw_call_fail(c, rc == GW_TR_INVALID ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_INTERNAL,
			     "%s", err[0] ? err : "StartJob: request could not be built");
		goto out;
	}
	if (strnlen(r->idempotency_key, GW_STORE_KEY_MAX + 1) > GW_STORE_KEY_MAX) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "idempotency_key must be at most %d bytes",
			     GW_STORE_KEY_MAX);
		goto out;
	}
	if (gw_rpc_idem_identity(r, fp, source, sizeof source) != 0) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "StartJob: source is too long for an idempotent request");
		goto out;
	}
	op->acct = gw_call_account(c);
	if (!op->acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "StartJob: tenant has no upstream account");
		goto out;
	}
	snprintf(op->tenant, sizeof op->tenant, "%s", gw_call_tenant(c)->name);
	snprintf(op->key, sizeof op->key, "%s", r->idempotency_key);
	/* The transfer may outlive the call: never less than the configured default. */
	if (floor_ms <= 0)
		floor_ms = GW_CONFIG_DEFAULT_TIMEOUT_MS;
	op->timeout_ms = left > floor_ms ? (long)left : floor_ms;
	op->admit_by_us = left > 0 ? gw_clock_now_us() + left * 1000 : 0;
	w->env = env;
	w->c = c;
	op->w = w;
	w = NULL;
	if (!gw_owner_has_caps(env->owner))
		gw_owner_set_caps(env->owner, idem_caps, env);
	/* Until the verdict, a cancelled call detaches the op (a PROCEED must still be carried out). */
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, idem_on_cancel);
	gw_owner_idem_start(env->owner, op->tenant, op->key, fp, source, gw_clock_wall_ms(), idem_wake,
			    op->w, idem_started, op);
	op = NULL;
out:
	if (op)
		idem_op_free(op);
	free(w);
}
