/*
 * rpc: the method table and the generic unary handler. See rpc.h.
 */
#include "gateway/rpc.h"

#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "auth/caller/perm.h"
#include "auth/upstream/session.h"
#include "gateway/config/config.h"
#include "gateway/base/errmap.h"
#include "gateway/svc/health.h"
#include "gateway/base/ratelimit.h"
#include "gateway/svc/rpc_idem.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/server.h"
#include "gateway/svc/status.h"
#include "gateway/api/translate.h"
#include "gateway/svc/upload.h"
#include "gateway/upstream/upstream.h"

#define RPC_MSG_MAX 512		/* status messages built here */

/* The handler's state while its upstream request is in flight. */
struct rpc_op {
	struct gw_call *c;
	const struct gw_tr_rpc *row;
	struct gw_up_call *up;
	struct gw_rpc_owner_view view;	/* the request with only the tenant's rids, if rewritten */
	const ProtobufCMessage *req;	/* what build/parse see: the call's request or view.msg */
};

const char *gw_rpc_short_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : (path ? path : "");
}

/* The tenant's token bucket at the method's cost (issue 5); 0 = go on, -1 = call finished. */
static int rpc_limit_tenant(struct gw_call *c)
{
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	const char *path = gw_call_method(c)->path;
	unsigned cost;
	struct gw_limits *l;
	int64_t wait = 0;
	char msg[RPC_MSG_MAX];

	if (!t)
		return 0;
	l = gw_up_limits(gw_call_server(c)->up);
	cost = l ? gw_ratelimit_tenant_cost(l->tenants, gw_call_tenant_index(c), t->name, path)
		 : gw_ratelimit_cost(path);
	if (!l || gw_ratelimit_take(l->tenants, gw_call_tenant_index(c), t->name, cost,
				    gw_server_now_us() / 1000, &wait))
		return 0;
	if (wait < 0) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			     "rate limit of tenant %s: %s costs %u, more than its burst of %g", t->name,
			     gw_rpc_short_name(path), cost, t->burst);
		return -1;
	}
	snprintf(msg, sizeof msg, "rate limit of tenant %s: retry in %lld ms", t->name, (long long)wait);
	gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED, (long)wait, msg);
	return -1;
}

int gw_rpc_admit(struct gw_call *c)
{
	return rpc_limit_tenant(c);	/* ownership is gw_rpc_owner_admit(), after this */
}

static void rpc_op_free(struct rpc_op *op)
{
	if (op)
		gw_rpc_owner_view_clear(&op->view);
	free(op);
}

static void rpc_on_cancel(struct gw_call *c, void *data)
{
	struct rpc_op *op = data;

	(void)c;
	if (op->up)
		gw_up_cancel(op->up);	/* done() will not run */
	rpc_op_free(op);
}

/* StartJob with mp_detection_rid reprocesses the same rid: its cached final status is history. */
static void rpc_note_restart(struct gw_call *c, const ProtobufCMessage *req)
{
	const Animate3d__V1__StartJobRequest *sj = (const Animate3d__V1__StartJobRequest *)req;
	struct gw_account_rt *acct = gw_call_account(c);

	if (acct && req && req->descriptor == &animate3d__v1__start_job_request__descriptor &&
	    sj->source_case == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID)
		gw_status_job_restarted(gw_call_server(c), acct->idx, sj->mp_detection_rid);
}

static void rpc_done(void *arg, const struct gw_up_response *res)
{
	struct rpc_op *op = arg;
	struct gw_call *c = op->c;
	const struct gw_tr_rpc *row = op->row;
	const char *what = gw_rpc_short_name(row->grpc_path);
	char msg[RPC_MSG_MAX];
	char err[GW_TR_ERR_MAX];
	ProtobufCMessage *reply = NULL;
	grpc_status_code code;
	int rc;

	op->up = NULL;
	gw_call_on_cancel(c, NULL);
	gw_call_set_data(c, NULL);
	gw_call_count_upstream(c);

	if (res->limited) {
		/* Refused by the account's protection before anything was sent (upstream.h). */
		snprintf(msg, sizeof msg, "%s: %s", what, res->error ? res->error : "upstream limit");
		if (res->retry_after_ms >= 0)
			gw_call_fail_retry(c, (grpc_status_code)res->limited, res->retry_after_ms, msg);
		else
			gw_call_fail(c, (grpc_status_code)res->limited, "%s", msg);
		goto out;
	}
	if (res->no_session) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: %s", what,
			     res->error ? res->error : "upstream rejected account credentials");
		goto out;
	}
	if (res->curl_rc != CURLE_OK) {
		code = gw_errmap_curl((int)res->curl_rc, res->error, what, msg, sizeof msg);
		gw_call_fail(c, code, "%s", msg);
		goto out;
	}
	if (res->http_status < 200 || res->http_status > 299) {
		code = gw_errmap_http(res->http_status, res->body, res->body_len, what, msg, sizeof msg);
		if (code == GRPC_STATUS_RESOURCE_EXHAUSTED)
			gw_call_fail_retry(c, code, res->retry_after_ms >= 0 ? res->retry_after_ms : 1000,
					   msg);
		else if (code == GRPC_STATUS_UNAVAILABLE && res->retry_after_ms >= 0)
			gw_call_fail_retry(c, code, res->retry_after_ms, msg);	/* 503 + Retry-After */
		else if (code == GRPC_STATUS_NOT_FOUND)
			gw_rpc_owner_not_found(c);	/* same shape as another tenant's id */
		else
			gw_call_fail(c, code, "%s", msg);
		goto out;
	}
	err[0] = '\0';
	rc = row->parse(op->req, res->body, res->body_len, &reply, err, sizeof err);
	switch (rc) {
	case GW_TR_OK:
		/* Ownership: record what was created, filter lists; never reply an unrecorded id. */
		rpc_note_restart(c, op->req);
		if (gw_rpc_owner_after(c, op->req, reply) == 0)
			gw_call_reply(c, reply);
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
	rpc_op_free(op);
}

void gw_rpc_unary(struct gw_call *c)
{
	const struct gw_tr_rpc *row = gw_call_method(c)->row;
	const char *what = gw_rpc_short_name(row->grpc_path);
	struct gw_tr_request tr = { 0 };
	struct gw_rpc_owner_view view = { 0 };
	const ProtobufCMessage *req;
	struct gw_up_request rq;
	struct rpc_op *op = NULL;
	struct gw_account_rt *acct;
	char err[GW_TR_ERR_MAX];
	int64_t left;
	int rc;

	/* GetStatus and GetDownloadUrls go through the status and link caches (gateway/svc/status.h). */
	if (gw_status_rpc_unary(c) == 0)
		return;
	if (gw_rpc_admit(c) != 0)
		return;
	req = gw_rpc_owner_admit(c, &view);	/* ownership (gateway/svc/rpc_owner.h) */
	if (!req)
		return;
	if (gw_rpc_idem_applies(c)) {
		gw_rpc_idem_start_job(c);
		goto out;
	}
	err[0] = '\0';
	rc = row->build(req, &tr, err, sizeof err);
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
	op->row = row;
	op->view = view;
	op->req = req;
	view = (struct gw_rpc_owner_view){ 0 };	/* owned by op now */
	memset(&rq, 0, sizeof rq);
	rq.method = tr.method;
	rq.path = tr.path;
	rq.body = tr.body;
	rq.body_len = tr.body ? strlen(tr.body) : 0;
	rq.timeout_ms = left > 0 ? (long)left : 0;
	rq.idempotent = row->idempotent;
	rq.route = row->grpc_path;
	op->up = gw_up_start(gw_call_server(c)->up, acct, &rq, rpc_done, op);
	if (!op->up) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "%s: upstream request could not be started",
			     what);
		goto out;
	}
	gw_call_set_data(c, op);
	gw_call_on_cancel(c, rpc_on_cancel);
	op = NULL;	/* owned by the call's cancel hook / rpc_done now */
out:
	rpc_op_free(op);
	gw_rpc_owner_view_clear(&view);
	gw_tr_request_clear(&tr);
}

/* UploadVideo: the tenant's rate limit (at UploadVideo's cost) first, then the streaming handler. */
static void rpc_upload(struct gw_call *c)
{
	if (gw_rpc_admit(c) != 0)
		return;
	gw_upload_handle(c);
}

int gw_rpc_methods_new(struct gw_method **out, size_t *n)
{
	const struct gw_tr_rpc *rows;
	struct gw_method *m = NULL;
	size_t nrows = 0, k = 0;
	int rc = -1;

	rows = gw_tr_rows(&nrows);
	if (nrows + 4 > GW_RPC_MAX_METHODS)
		goto out;
	m = calloc(nrows + 5, sizeof *m);	/* + a zeroed end row (gw_rpc_methods_free walks to it) */
	if (!m)
		goto out;
	for (size_t i = 0; i < nrows; i++)
		m[k++] = (struct gw_method){ rows[i].grpc_path, rows[i].req_desc, GW_UNARY,
					     rows[i].perm, gw_rpc_unary, &rows[i] };
	/* The UploadVideo row carries the uploads' context (slots, gauges), freed with the table. */
	m[k] = (struct gw_method){ "/animate3d.v1.Jobs/UploadVideo", NULL, GW_CLIENT_STREAM,
				   GW_PERM_WRITE, rpc_upload, gw_upload_ctx_new() };
	if (!m[k++].row)
		goto out;
	/* The WatchStatus row carries the status context (cache, batcher), freed with the table. */
	m[k] = (struct gw_method){ GW_STATUS_WATCH_METHOD,
				   &animate3d__v1__watch_status_request__descriptor,
				   GW_SERVER_STREAM, GW_PERM_READ, gw_status_rpc_watch,
				   gw_status_ctx_new() };
	if (!m[k++].row)
		goto out;
	m[k++] = (struct gw_method){ "/grpc.health.v1.Health/Check",
				     &grpc__health__v1__health_check_request__descriptor, GW_UNARY,
				     0, gw_health_check, NULL };
	m[k++] = (struct gw_method){ "/grpc.health.v1.Health/Watch",
				     &grpc__health__v1__health_check_request__descriptor,
				     GW_SERVER_STREAM, 0, gw_health_watch, NULL };
	*out = m;
	*n = k;
	m = NULL;
	rc = 0;
out:
	free(m);
	return rc;
}

void gw_rpc_methods_free(struct gw_method *m)
{
	for (size_t i = 0; m && i < GW_RPC_MAX_METHODS && m[i].path; i++)
		if (m[i].handler == gw_status_rpc_watch)
			gw_status_ctx_free((struct gw_status_ctx *)m[i].row);
		else if (m[i].handler == rpc_upload)
			gw_upload_ctx_free((struct gw_upload_ctx *)m[i].row);
	free(m);
}
