/*
 * methods: the method table and the services. See methods.h.
 *
 * A row: path, name, request type, kind, permission, rate cost, ownership rule, flags, the
 * upstream half (translate functions, reply type, whether a retry upstream is safe), handler and
 * service. Costs: what a call costs the upstream weighs more (a job, a video's bytes, a signed
 * URL); rate.costs in the configuration overrides them by name.
 */
#include "gateway/methods.h"

#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "auth/caller/perm.h"
#include "gateway/api/translate.h"
#include "gateway/call/call.h"
#include "gateway/call/svc.h"
#include "gateway/svc/balance.h"
#include "gateway/svc/budget.h"
#include "gateway/svc/download.h"
#include "gateway/svc/follower.h"
#include "gateway/svc/health.h"
#include "gateway/svc/reflection.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/svc/status.h"
#include "gateway/svc/unary.h"
#include "gateway/svc/upload.h"
#include "gateway/svc/webhook_in.h"
#include "gateway/svc/webhook_out.h"
#include "gateway/svc/webhook_reg.h"

#define R GW_PERM_READ
#define W GW_PERM_WRITE
#define A GW_PERM_ADMIN
#define IDEM GW_METHOD_IDEMPOTENCY_KEY

/* A unary row of service svc ("Jobs"), method m ("GetStatus"), translate functions fn
 * (get_status), reply type resp; retry: a retry upstream is safe. */
#define ROW(svcname, m, fn, resp, perm, cost, own, flags, retry, handler, svc)                     \
	{ "/animate3d.v1." svcname "/" m, m, &animate3d__v1__##fn##_request__descriptor, GW_UNARY,  \
	  perm, cost, own, flags,                                                                   \
	  { gw_tr_build_##fn, gw_tr_parse_##fn, &animate3d__v1__##resp##__descriptor, retry },      \
	  handler, &(svc) }
#define UNARY(svcname, m, fn, perm, cost, own, flags, retry)                                      \
	ROW(svcname, m, fn, fn##_response, perm, cost, own, flags, retry, gw_unary_handle,         \
	    gw_svc_unary)

static const struct gw_method methods_table[] = {
	UNARY("Jobs", "GetUploadUrl", get_upload_url, W, 2, RO_UPLOAD_URL, 0, 1),
	UNARY("Jobs", "StartJob", start_job, W, 5, RO_START_JOB, IDEM, 0),
	ROW("Jobs", "GetStatus", get_status, get_status_response, R, 1, RO_RIDS, 0, 1,
	    gw_status_rpc_get, gw_svc_status),
	ROW("Jobs", "GetDownloadUrls", get_download_urls, get_download_urls_response, R, 1, RO_RIDS,
	    0, 1, gw_download_rpc, gw_svc_download),
	UNARY("Jobs", "ListJobs", list_jobs, R, 1, RO_LIST_JOBS, 0, 1),
	/* A POST, but it only reads the uploaded file's metadata: safe to retry. */
	ROW("Jobs", "GetVideoInfo", get_video_info, video_info, R, 1, RO_VIDEO_INFO, 0, 1,
	    gw_unary_handle, gw_svc_unary),
	/* Write: it hands out the job's pose-edit write URLs (signed URLs weigh like uploads). */
	UNARY("Jobs", "GetPersonUrls", get_person_urls, W, 2, RO_JOB, 0, 1),
	{ "/animate3d.v1.Jobs/UploadVideo", "UploadVideo", NULL, GW_CLIENT_STREAM, W, 5, 0, 0,
	  { 0 }, gw_upload_handle, &gw_svc_upload },
	{ "/animate3d.v1.Jobs/WatchStatus", "WatchStatus",
	  &animate3d__v1__watch_status_request__descriptor, GW_SERVER_STREAM, R, 1, RO_RIDS, 0,
	  { 0 }, gw_status_rpc_watch, &gw_svc_status },
	UNARY("Characters", "GetModelUploadUrl", get_model_upload_url, W, 2, RO_MODEL_UPLOAD_URL, 0, 1),
	UNARY("Characters", "StoreModel", store_model, W, 1, RO_STORE_MODEL, 0, 0),
	UNARY("Characters", "ListModels", list_models, R, 1, RO_LIST_MODELS, 0, 1),
	UNARY("Characters", "DeleteModel", delete_model, W, 1, RO_DELETE_MODEL, 0, 0),
	/* Tenant webhooks (issue 17): gateway-side subscriptions (gateway/svc/webhook_out.h). The
	 * upstream half and the ownership rule stay for webhooks.upstream_passthrough, where the
	 * handlers hand the call to gw_unary_handle. */
	ROW("Webhooks", "CreateEndpoint", create_endpoint, endpoint, W, 1, RO_CREATE_ENDPOINT, 0, 0,
	    gw_webhook_out_rpc_create, gw_svc_webhook_out),
	ROW("Webhooks", "GetEndpoint", get_endpoint, endpoint, R, 1, RO_ENDPOINT, 0, 1,
	    gw_webhook_out_rpc_get, gw_svc_webhook_out),
	ROW("Webhooks", "ListEndpoints", list_endpoints, list_endpoints_response, R, 1,
	    RO_LIST_ENDPOINTS, 0, 1, gw_webhook_out_rpc_list, gw_svc_webhook_out),
	ROW("Webhooks", "UpdateEndpoint", update_endpoint, endpoint, W, 1, RO_ENDPOINT, 0, 0,
	    gw_webhook_out_rpc_update, gw_svc_webhook_out),
	ROW("Webhooks", "DeleteEndpoint", delete_endpoint, delete_endpoint_response, W, 1, RO_ENDPOINT,
	    0, 0, gw_webhook_out_rpc_delete, gw_svc_webhook_out),
	{ "/animate3d.v1.Webhooks/RotateSecret", "RotateSecret",
	  &animate3d__v1__rotate_secret_request__descriptor, GW_UNARY, W, 1, 0, 0, { 0 },
	  gw_webhook_out_rpc_rotate, &gw_svc_webhook_out },
	UNARY("Account", "GetCreditBalance", get_credit_balance, R, 1, 0, 0, 1),
	UNARY("Account", "GetMinutesBalance", get_minutes_balance, R, 1, 0, 0, 1),
	/* The gateway's usage ledger (issue 22, gateway/svc/budget.h): any key reads its own team's,
	 * an admin key any team's. Nothing goes upstream. */
	{ "/animate3d.v1.Account/GetUsage", "GetUsage", &animate3d__v1__get_usage_request__descriptor,
	  GW_UNARY, R | W | A, 1, 0, 0, { 0 }, gw_budget_rpc_usage, &gw_svc_budget },
	{ "/grpc.health.v1.Health/Check", "Check", &grpc__health__v1__health_check_request__descriptor,
	  GW_UNARY, 0, 0, 0, 0, { 0 }, gw_health_check, &gw_svc_health },
	{ "/grpc.health.v1.Health/Watch", "Watch", &grpc__health__v1__health_check_request__descriptor,
	  GW_SERVER_STREAM, 0, 0, 0, 0, { 0 }, gw_health_watch, &gw_svc_health },
	/* Server reflection (issue 21), both protocol versions: any valid key, either permission
	 * (gateway/svc/reflection.h says why a key at all); one token when the stream opens. */
	{ "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "ServerReflectionInfo", NULL,
	  GW_BIDI_STREAM, R | W, 1, 0, 0, { 0 }, gw_refl_handle, &gw_svc_reflection },
	{ "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "ServerReflectionInfo",
	  NULL, GW_BIDI_STREAM, R | W, 1, 0, 0, { 0 }, gw_refl_handle, &gw_svc_reflection },
};

_Static_assert(sizeof methods_table / sizeof methods_table[0] <= GW_METHODS_MAX,
	       "GW_METHODS_MAX is too small");

/* Started in this order (status and webhook_in before webhook_reg: registration brings
 * deliveries, and webhook_in has the path token first on a reload; status before download,
 * whose links live in status's cache; the follower after status, whose finals it hears, and
 * before every jobevent listener's service: webhook_out), drained in this order, freed in
 * reverse. The balance poller first: services that observe it register from their init. */
static const struct gw_svc *const methods_services[] = {
	&gw_svc_balance,
	&gw_svc_health, &gw_svc_status, &gw_svc_download, &gw_svc_follower, &gw_svc_budget,
	&gw_svc_webhook_in,
	&gw_svc_unary, &gw_svc_upload, &gw_svc_webhook_reg, &gw_svc_webhook_out,
	&gw_svc_reflection,
};

const struct gw_method *gw_methods(size_t *n)
{
	*n = sizeof methods_table / sizeof methods_table[0];
	return methods_table;
}

const struct gw_method *gw_methods_find(const char *path)
{
	for (size_t i = 0; path && i < sizeof methods_table / sizeof methods_table[0]; i++)
		if (strcmp(methods_table[i].path, path) == 0)
			return &methods_table[i];
	return NULL;
}

const struct gw_svc *const *gw_methods_services(size_t *n)
{
	*n = sizeof methods_services / sizeof methods_services[0];
	return methods_services;
}
