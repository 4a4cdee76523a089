/*
 * unary: the generic unary path and its service. See unary.h.
 */
#include "gateway/svc/unary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/api/translate.h"
#include "gateway/base/metrics.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/svc/budget.h"
#include "gateway/svc/rpc_idem.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/svc/status.h"
#include "gateway/upstream/upstream.h"

/* The handler's state while its upstream request is in flight. */
struct unary_op {
	struct gw_call *c;
	const struct gw_method *m;
	struct gw_up_call *up;
	struct gw_rpc_owner_view view;	/* the request with only the tenant's rids, if rewritten */
	const ProtobufCMessage *req;	/* what build/parse see: the call's request or view.msg */
	struct gw_budget_hold hold;	/* StartJob: its reservation (gateway/svc/budget.h) */
};

static void unary_op_free(struct unary_op *op)
{
	if (op) {
		gw_rpc_owner_view_clear(&op->view);
		gw_budget_release(&op->hold);	/* no job was started (a no-op once started) */
	}
	free(op);
}

static void unary_on_cancel(struct gw_call *c, void *data)
{
	struct unary_op *op = data;

	(void)c;
	if (op->up)
		gw_up_cancel(op->up);	/* done() will not run */
	unary_op_free(op);
}

/* StartJob with mp_detection_rid reprocesses the same rid: its cached final status is history. */
static void unary_note_restart(struct gw_call *c, const ProtobufCMessage *req)
{
	const Animate3d__V1__StartJobRequest *sj = (const Animate3d__V1__StartJobRequest *)req;
	struct gw_up_account *acct = gw_call_account(c);

	if (acct && req && req->descriptor == &animate3d__v1__start_job_request__descriptor &&
	    sj->source_case == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID)
		gw_status_job_restarted(gw_status_ctx_of(gw_call_env(c)), acct->idx,
					sj->mp_detection_rid);
}

static void unary_done(void *arg, const struct gw_up_response *res)
{
	struct unary_op *op = arg;
	struct gw_call *c = op->c;
	const char *what = op->m->name;
	struct gw_up_failure fail;
	char err[GW_TR_ERR_MAX];
	ProtobufCMessage *reply = NULL;
	int rc;

	op->up = NULL;
	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	gw_call_count_upstream(c);

	if (gw_up_failure_of(res, what, &fail) != GRPC_STATUS_OK) {
		if (fail.code == GRPC_STATUS_NOT_FOUND)
			gw_rpc_owner_not_found(c);	/* same shape as another tenant's id */
		else
			gw_call_fail_up(c, &fail);
		goto out;
	}
	err[0] = '\0';
	rc = op->m->tr.parse(op->req, res->body, res->body_len, &reply, err, sizeof err);
	switch (rc) {
	case GW_TR_OK:
		if (reply->descriptor == &animate3d__v1__start_job_response__descriptor)
			gw_budget_started(&op->hold,
					  ((const Animate3d__V1__StartJobResponse *)(void *)reply)->rid);
		/* Ownership: record what was created, filter lists; never reply an unrecorded id. */
		unary_note_restart(c, op->req);
		gw_rpc_owner_after(c, op->req, reply);	/* takes reply, finishes the call */
		reply = NULL;
		break;
	case GW_TR_INVALID:
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s", what, err);
		break;
	case GW_TR_NOT_FOUND:
		gw_rpc_owner_not_found(c);
		break;
	default:
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream sent an unexpected answer: %s",
			     what, err);
		break;
	}
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
out:
	unary_op_free(op);
}

/* The request as ownership admitted it (gateway/svc/rpc_owner.h), and a StartJob's minutes
 * reserved (gateway/svc/budget.h): the upstream call. */
static void unary_go(struct gw_call *c, const ProtobufCMessage *req,
		     struct gw_rpc_owner_view *admitted)
{
	const struct gw_method *m = gw_call_method(c);
	const char *what = m->name;
	struct gw_tr_request tr = { 0 };
	struct gw_rpc_owner_view view = *admitted;
	struct gw_up_request rq;
	struct unary_op *op = NULL;
	struct gw_up_account *acct;
	char err[GW_TR_ERR_MAX];
	int64_t left;
	int rc;

	*admitted = (struct gw_rpc_owner_view){ 0 };	/* ours now */
	if ((m->flags & GW_METHOD_IDEMPOTENCY_KEY) && gw_rpc_idem_applies(c)) {
		gw_rpc_idem_start_job(gw_call_svc(c), c, req);
		goto out;
	}
	err[0] = '\0';
	rc = m->tr.build(req, &tr, err, sizeof err);
	if (rc == GW_TR_INVALID) {
		gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
		goto out;
	}
	if (rc == GW_TR_NOT_FOUND) {
		gw_call_fail(c, GRPC_STATUS_NOT_FOUND, "%s", err);
		goto out;
	}
	if (rc != GW_TR_OK) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "%s: request could not be built", what);
		goto out;
	}
	left = gw_call_time_left_ms(c);
	if (left == 0) {
		gw_call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "%s: deadline exceeded before the upstream call",
			     what);
		goto out;
	}
	acct = gw_call_account(c);
	if (!acct) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "%s: tenant has no upstream account", what);
		goto out;
	}
	op = calloc(1, sizeof *op);
	if (!op) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", what);
		goto out;
	}
	op->c = c;
	op->m = m;
	op->view = view;
	op->req = req;
	gw_budget_take(c, &op->hold);
	view = (struct gw_rpc_owner_view){ 0 };	/* owned by op now */
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.body = tr.body;
	rq.body_len = tr.body ? strlen(tr.body) : 0;
	rq.timeout_ms = left > 0 ? (long)left : 0;
	rq.idempotent = m->tr.idempotent;
	rq.trace = gw_call_trace(c);
	op->up = gw_up_start(gw_call_env(c)->up, acct, &rq, unary_done, op);
	if (!op->up) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream request could not be started",
			     what);
		goto out;
	}
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, unary_on_cancel);
	op = NULL;	/* owned by the call's cancel hook / unary_done now */
out:
	unary_op_free(op);
	gw_rpc_owner_view_clear(&view);
	gw_tr_request_clear(&tr);
}

static void unary_admitted(struct gw_call *c, const ProtobufCMessage *req,
			   struct gw_rpc_owner_view *admitted)
{
	if (gw_call_method(c)->own == RO_START_JOB)
		gw_budget_reserve(c, req, admitted, unary_go);
	else
		unary_go(c, req, admitted);
}

void gw_unary_handle(struct gw_call *c)
{
	gw_rpc_owner_admit(c, unary_admitted);
}

/* ---- the service ---- */

static int unary_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_rpc_idem *st = calloc(1, sizeof *st);

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->env = env;
	*state = st;
	return 0;
}

/* Idle once no idempotent StartJob transfer outlives its call: its outcome must be recorded. */
static int unary_idle(void *state)
{
	return ((struct gw_rpc_idem *)state)->detached_ops == 0;
}

static void unary_free(void *state)
{
	free(state);
}

static void unary_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_rpc_idem *st = state;

	gw_rpc_owner_render_metrics(st->env, st->detached_ops, o);
}

const struct gw_svc gw_svc_unary = {
	.name = "unary",
	.init = unary_init,
	.idle = unary_idle,
	.free = unary_free,
	.metrics = unary_metrics,
};
