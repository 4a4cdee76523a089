/* Unit tests for gateway/api/facade.c: REST request -> gRPC request, gRPC reply -> upstream JSON. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/api/facade.h"
#include "gateway/api/params.h"

/* ---- routes ---- */

static const struct {
	unsigned verb;
	const char *path;
	const char *rpc;	/* NULL: no route */
	const char *arg;
	int wrong_verb;
} match_cases[] = {
	{ GW_FACADE_GET, "/status/a,b", "/animate3d.v1.Jobs/GetStatus", "a,b", 0 },
	{ GW_FACADE_GET, "/status/", NULL, "", 0 },		/* no rids: not the route */
	{ GW_FACADE_GET, "/status", NULL, "", 0 },
	{ GW_FACADE_POST, "/status/a", NULL, "", 1 },
	{ GW_FACADE_GET, "/download/r1", "/animate3d.v1.Jobs/GetDownloadUrls", "r1", 0 },
	{ GW_FACADE_GET, "/list", "/animate3d.v1.Jobs/ListJobs", "", 0 },
	{ GW_FACADE_GET, "/list/SUCCESS", "/animate3d.v1.Jobs/ListJobs", "SUCCESS", 0 },
	{ GW_FACADE_GET, "/listing", NULL, "", 0 },
	{ GW_FACADE_GET, "/upload", "/animate3d.v1.Jobs/GetUploadUrl", "", 0 },
	{ GW_FACADE_POST, "/videoInfo", "/animate3d.v1.Jobs/GetVideoInfo", "", 0 },
	{ GW_FACADE_GET, "/videoInfo", NULL, "", 1 },
	{ GW_FACADE_GET, "/pesave/getUrls/r1", "/animate3d.v1.Jobs/GetPersonUrls", "r1", 0 },
	{ GW_FACADE_GET, "/account/creditBalance", "/animate3d.v1.Account/GetCreditBalance", "", 0 },
	{ GW_FACADE_GET, "/account/minutesBalance", "/animate3d.v1.Account/GetMinutesBalance", "", 0 },
	{ GW_FACADE_DELETE, "/character/deleteModel/m1", "/animate3d.v1.Characters/DeleteModel", "m1", 0 },
	{ GW_FACADE_GET, "/character/deleteModel/m1", NULL, "", 1 },
	{ GW_FACADE_GET, "/", NULL, "", 0 },
};

Test(facade, match)
{
	for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
		const char *arg = NULL;
		int wrong = -1;
		const struct gw_facade_route *r =
			gw_facade_match(match_cases[i].verb, match_cases[i].path, &arg, &wrong);

		if (!match_cases[i].rpc) {
			cr_expect_null(r, "%s: matched %s", match_cases[i].path, r ? r->rpc : "");
		} else {
			cr_assert_not_null(r, "%s: no route", match_cases[i].path);
			cr_expect_str_eq(r->rpc, match_cases[i].rpc, "%s", match_cases[i].path);
			cr_expect_str_eq(arg, match_cases[i].arg, "%s", match_cases[i].path);
		}
		cr_expect_eq(wrong, match_cases[i].wrong_verb, "%s: wrong_verb %d", match_cases[i].path,
			     wrong);
	}
}

/* ---- query parameters ---- */

static const struct {
	const char *query;
	const char *key;
	int rc;
	const char *value;
} query_cases[] = {
	{ "name=a.mp4&resumable=0", "name", 1, "a.mp4" },
	{ "name=a.mp4&resumable=0", "resumable", 1, "0" },
	{ "name=my%20clip+1.mp4", "name", 1, "my clip 1.mp4" },
	{ "names=x&name=y", "name", 1, "y" },		/* a longer key is not the key */
	{ "flag&name=y", "flag", 1, "" },
	{ "name=y", "other", 0, NULL },
	{ NULL, "name", 0, NULL },
	{ "name=%2", "name", -1, NULL },			/* broken escape */
	{ "name=%zz", "name", -1, NULL },
	{ "name=a%00b", "name", -1, NULL },			/* NUL byte */
};

Test(facade, query)
{
	for (size_t i = 0; i < sizeof query_cases / sizeof query_cases[0]; i++) {
		char buf[64];
		int rc = gw_facade_query(query_cases[i].query, query_cases[i].key, buf, sizeof buf);

		cr_expect_eq(rc, query_cases[i].rc, "case %zu: rc %d", i, rc);
		if (rc == 1)
			cr_expect_str_eq(buf, query_cases[i].value, "case %zu", i);
	}
	{
		char tiny[4];

		cr_expect_eq(gw_facade_query("name=abcdef", "name", tiny, sizeof tiny), -1);
	}
}

/* ---- building requests ---- */

static ProtobufCMessage *build(unsigned verb, const char *path, const char *query, const char *body,
			       const ProtobufCMessageDescriptor *d, char *err)
{
	const char *arg;
	int wrong;
	const struct gw_facade_route *r = gw_facade_match(verb, path, &arg, &wrong);
	struct gw_facade_in in = { arg, query, body, body ? strlen(body) : 0, "idem-1" };
	uint8_t *packed = NULL;
	size_t len = 0;
	ProtobufCMessage *m;

	cr_assert_not_null(r, "%s", path);
	if (gw_facade_build(r, &in, &packed, &len, err, GW_FACADE_ERR_MAX) != 0)
		return NULL;
	m = protobuf_c_message_unpack(d, NULL, len, packed);
	free(packed);
	cr_assert_not_null(m);
	return m;
}

Test(facade, build_rids)
{
	char err[GW_FACADE_ERR_MAX];
	Animate3d__V1__GetStatusRequest *s = (void *)build(
		GW_FACADE_GET, "/status/a1,b%2D2", NULL, NULL,
		&animate3d__v1__get_status_request__descriptor, err);

	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(s->n_rids, 2);
	cr_expect_str_eq(s->rids[0], "a1");
	cr_expect_str_eq(s->rids[1], "b-2");
	protobuf_c_message_free_unpacked(&s->base, NULL);
	cr_expect_null(build(GW_FACADE_GET, "/status/,,", NULL, NULL,
			     &animate3d__v1__get_status_request__descriptor, err));
	cr_expect_str_eq(err, "rids are malformed");
}

Test(facade, build_list_states)
{
	char err[GW_FACADE_ERR_MAX];
	Animate3d__V1__ListJobsRequest *l = (void *)build(
		GW_FACADE_GET, "/list/SUCCESS,FAILURE,SUCCESS", NULL, NULL,
		&animate3d__v1__list_jobs_request__descriptor, err);

	cr_assert_not_null(l, "%s", err);
	cr_assert_eq(l->n_states, 2);	/* repeats asked for once */
	cr_expect_eq(l->states[0], ANIMATE3D__V1__JOB_STATE__SUCCESS);
	cr_expect_eq(l->states[1], ANIMATE3D__V1__JOB_STATE__FAILURE);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	cr_expect_null(build(GW_FACADE_GET, "/list/DONE", NULL, NULL,
			     &animate3d__v1__list_jobs_request__descriptor, err));
	cr_expect_str_eq(err, "Unknown status: DONE");
}

Test(facade, build_upload_resumable_default)
{
	static const struct {
		const char *query;
		int resumable;
	} cases[] = { { "name=a.mp4", 1 }, { "name=a.mp4&resumable=0", 0 },
		      { "name=a.mp4&resumable=1", 1 }, { "name=a.mp4&resumable=false", 0 } };
	char err[GW_FACADE_ERR_MAX];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Animate3d__V1__GetUploadUrlRequest *u = (void *)build(
			GW_FACADE_GET, "/upload", cases[i].query, NULL,
			&animate3d__v1__get_upload_url_request__descriptor, err);

		cr_assert_not_null(u, "%s", err);
		cr_expect_str_eq(u->name, "a.mp4");
		cr_expect_eq(u->resumable, cases[i].resumable, "%s", cases[i].query);
		protobuf_c_message_free_unpacked(&u->base, NULL);
	}
}

Test(facade, build_body)
{
	static const struct {
		const char *body;
		const char *err;	/* NULL: builds */
	} cases[] = {
		{ "{\"url\":\"http://s/u\"}", NULL },
		{ "{\"url\":5}", "url must be a string" },
		{ "[1]", "request body must be a JSON object" },
		{ "{\"url\":", "request body must be a JSON object" },
		{ NULL, "request body must be a JSON object" },
	};
	char err[GW_FACADE_ERR_MAX];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ProtobufCMessage *m = build(GW_FACADE_POST, "/videoInfo", NULL, cases[i].body,
					    &animate3d__v1__get_video_info_request__descriptor, err);

		if (cases[i].err) {
			cr_expect_null(m, "case %zu", i);
			cr_expect_str_eq(err, cases[i].err, "case %zu", i);
		} else {
			cr_assert_not_null(m, "case %zu: %s", i, err);
			cr_expect_str_eq(((Animate3d__V1__GetVideoInfoRequest *)m)->upload_url,
					 "http://s/u");
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
}

/* POST /process: the source, the params as typed fields (rendered upstream again by params.c,
 * compared here as that rendering), the rest as extras, the Idempotency-Key header. */
static const struct {
	const char *body;
	const char *rendered;	/* gw_params_render of the result; NULL: refused */
	const char *err;
} process_cases[] = {
	{ "{\"url\":\"http://s/u\",\"processor\":\"video2anim\",\"params\":[\"config=configDefault\","
	  "\"formats=bvh,fbx\",\"model=m1\",\"trackFace=1\",\"footLockingMode=never\","
	  "\"poseEstimation.videoSpeedMultiplier=2\",\"trim=1,2.5\",\"render.bgColor=0,0,0,255\","
	  "\"render.CamMode=1\",\"upperBodyOnly=true\",\"custom.flag=7\"]}",
	  "[\"config=configDefault\",\"formats=bvh,fbx\",\"model=m1\",\"trackFace=1\","
	  "\"footLockingMode=never\",\"videoSpeedMultiplier=2\",\"upperBodyOnly=true\",\"trim=1,2.5\","
	  "\"render.bgColor=0,0,0,255\",\"render.CamMode=1\",\"custom.flag=7\"]", NULL },
	/* The document's JavaScript-literal models and the official demo's JSON ones. */
	{ "{\"rid_mp_detection\":\"r1\",\"params\":[\"models=[{trackingId:'001', modelId:'m1'}]\"]}",
	  "[\"config=configDefault\",\"models=[{\\\"trackingId\\\":\\\"001\\\",\\\"modelId\\\":\\\"m1\\\"}]\"]",
	  NULL },
	{ "{\"rid\":\"r1\",\"params\":[\"models=[{\\\"trackingId\\\":2,\\\"modelId\\\":\\\"m\\\"}]\"]}",
	  "[\"config=configDefault\",\"models=[{\\\"trackingId\\\":\\\"002\\\",\\\"modelId\\\":\\\"m\\\"}]\"]",
	  NULL },
	{ "{\"url\":\"http://s/u\",\"params\":[\"render.camera=fixed\"]}",
	  "[\"config=configDefault\",\"render.CamMode=1\"]", NULL },
	{ "{\"url\":\"u\",\"params\":[\"trackFace=maybe\"]}", NULL,
	  "Error processing the parameters: trackFace" },
	{ "{\"url\":\"u\",\"params\":[\"trim=1\"]}", NULL, "Error processing the parameters: trim" },
	{ "{\"url\":\"u\",\"params\":[\"render.bgColor=0,0,0,256\"]}", NULL,
	  "Error processing the parameters: render.bgColor" },
	{ "{\"url\":\"u\",\"params\":[\"noequals\"]}", NULL,
	  "Error processing the parameters: noequals" },
	{ "{\"url\":\"u\",\"params\":\"formats=bvh\"}", NULL,
	  "Error processing the parameters: params must be an array of \"key=value\" strings" },
	{ "{\"url\":\"u\",\"rid\":\"r\"}", NULL, "give one of url, rid and rid_mp_detection" },
	{ "{\"processor\":\"video2anim\"}", NULL, "url, rid or rid_mp_detection is required" },
};

Test(facade, build_process)
{
	for (size_t i = 0; i < sizeof process_cases / sizeof process_cases[0]; i++) {
		char err[GW_FACADE_ERR_MAX];
		Animate3d__V1__StartJobRequest *r = (void *)build(
			GW_FACADE_POST, "/process", NULL, process_cases[i].body,
			&animate3d__v1__start_job_request__descriptor, err);
		json_t *arr;
		char *s;

		if (!process_cases[i].rendered) {
			cr_expect_null(r, "case %zu", i);
			cr_expect_str_eq(err, process_cases[i].err, "case %zu", i);
			continue;
		}
		cr_assert_not_null(r, "case %zu: %s", i, err);
		cr_expect_str_eq(r->idempotency_key, "idem-1");
		cr_expect_neq(r->source_case, ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET);
		arr = gw_params_render(r->params, r->extra_params, r->n_extra_params);
		s = json_dumps(arr, JSON_COMPACT);
		cr_expect_str_eq(s, process_cases[i].rendered, "case %zu", i);
		free(s);
		json_decref(arr);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
}

/* ---- rendering replies ---- */

static char *render(const char *path, const ProtobufCMessage *m)
{
	const char *arg;
	int wrong;
	const struct gw_facade_route *r = gw_facade_match(GW_FACADE_GET, path, &arg, &wrong);
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	char *s;

	cr_assert_not_null(r);
	protobuf_c_message_pack(m, buf);
	s = gw_facade_render(r, buf, len);
	free(buf);
	return s;
}

Test(facade, render_status)
{
	Animate3d__V1__JobStatus a = ANIMATE3D__V1__JOB_STATUS__INIT, b = ANIMATE3D__V1__JOB_STATUS__INIT,
				 c = ANIMATE3D__V1__JOB_STATUS__INIT;
	Animate3d__V1__JobStatus *all[] = { &a, &b, &c };
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	char *s;

	a.rid = "r1";
	a.state = ANIMATE3D__V1__JOB_STATE__PROGRESS;
	a.step = 3;
	a.total = 100;
	a.position_in_queue = 2;
	b.rid = "r2";
	b.state = ANIMATE3D__V1__JOB_STATE__SUCCESS;
	b.input_file = "v.mp4";
	b.output_file = "r2.bvh";
	c.rid = "r3";
	c.state = ANIMATE3D__V1__JOB_STATE__FAILURE;
	c.error_code = 513;
	c.error_message = "Failed to detect character in the video";
	c.error_type = "ProcessingError";
	resp.n_statuses = 3;
	resp.statuses = all;
	s = render("/status/r1", &resp.base);
	cr_assert_not_null(s);
	cr_expect_str_eq(s,
		"{\"count\":3,\"status\":["
		"{\"rid\":\"r1\",\"status\":\"PROGRESS\",\"details\":{\"step\":3,\"total\":100},"
		"\"positionInQueue\":2},"
		"{\"rid\":\"r2\",\"status\":\"SUCCESS\",\"details\":{\"in\":\"v.mp4\",\"out\":\"r2.bvh\"}},"
		"{\"rid\":\"r3\",\"status\":\"FAILURE\",\"details\":{\"exc_message\":"
		"\"Error 513: Failed to detect character in the video\",\"exc_type\":\"ProcessingError\"}}]}");
	free(s);
}

Test(facade, render_minutes_two_decimals)
{
	Animate3d__V1__GetMinutesBalanceResponse m = ANIMATE3D__V1__GET_MINUTES_BALANCE_RESPONSE__INIT;
	char *s;

	m.minutes = 15.8;
	s = render("/account/minutesBalance", &m.base);
	cr_expect_str_eq(s, "{\"minutes\":15.80}");
	free(s);
}

Test(facade, render_unfinished_link_is_its_rid)
{
	Animate3d__V1__DownloadLink l = ANIMATE3D__V1__DOWNLOAD_LINK__INIT;
	Animate3d__V1__DownloadLink *links[] = { &l };
	Animate3d__V1__GetDownloadUrlsResponse resp = ANIMATE3D__V1__GET_DOWNLOAD_URLS_RESPONSE__INIT;
	char *s;

	l.rid = "r1";
	resp.n_links = 1;
	resp.links = links;
	s = render("/download/r1", &resp.base);
	cr_expect_str_eq(s, "{\"count\":1,\"links\":[{\"rid\":\"r1\"}]}");
	free(s);
}

Test(facade, render_refuses_garbage)
{
	const char *arg;
	int wrong;
	const struct gw_facade_route *r = gw_facade_match(GW_FACADE_GET, "/status/x", &arg, &wrong);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff };

	cr_expect_null(gw_facade_render(r, junk, sizeof junk));
}

/* ---- errors ---- */

static const struct {
	int grpc;
	int http;
} status_cases[] = {
	{ 0, 200 }, { 3, 400 }, { 4, 504 }, { 5, 404 }, { 6, 409 }, { 7, 403 }, { 8, 429 }, { 9, 400 },
	{ 12, 501 }, { 13, 500 }, { 14, 503 }, { 16, 401 }, { 17, 500 }, { -1, 500 },
};

Test(facade, http_status)
{
	for (size_t i = 0; i < sizeof status_cases / sizeof status_cases[0]; i++)
		cr_expect_eq(gw_facade_http_status(status_cases[i].grpc), status_cases[i].http,
			     "grpc %d", status_cases[i].grpc);
}

Test(facade, error_json)
{
	const char *arg;
	int wrong;
	const struct gw_facade_route *process = gw_facade_match(GW_FACADE_POST, "/process", &arg, &wrong);
	char *s = gw_facade_error_json(NULL, 404, "No \"job\"");

	cr_expect_str_eq(s, "{\"message\":\"No \\\"job\\\"\",\"error\":\"404\"}");
	free(s);
	/* /process's parameter errors as upstream writes them; its other answers keep their status. */
	s = gw_facade_error_json(process, 400, "Error processing the parameters: trim");
	cr_expect_str_eq(s, "{\"message\":\"Error processing the parameters: trim\",\"error\":\"503\"}");
	free(s);
	s = gw_facade_error_json(process, 404, "gone");
	cr_expect_str_eq(s, "{\"message\":\"gone\",\"error\":\"404\"}");
	free(s);
}
