/* Unit tests for gateway/api/facade.c: REST request -> gRPC request, gRPC reply -> upstream JSON. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
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
	{ GW_FACADE_POST, "/webhook_endpoints", "/animate3d.v1.Webhooks/CreateEndpoint", "", 0 },
	{ GW_FACADE_GET, "/webhook_endpoints", "/animate3d.v1.Webhooks/ListEndpoints", "", 0 },
	{ GW_FACADE_DELETE, "/webhook_endpoints", NULL, "", 1 },
	{ GW_FACADE_GET, "/webhook_endpoints/ep_1", "/animate3d.v1.Webhooks/GetEndpoint", "ep_1", 0 },
	{ GW_FACADE_POST, "/webhook_endpoints/ep_1", "/animate3d.v1.Webhooks/UpdateEndpoint", "ep_1", 0 },
	{ GW_FACADE_DELETE, "/webhook_endpoints/ep_1", "/animate3d.v1.Webhooks/DeleteEndpoint", "ep_1",
	  0 },
	{ GW_FACADE_GET, "/webhook_endpoints/", NULL, "", 0 },	/* no id: not the route */
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

/* /webhook_endpoints*: upstream's body onto Create/UpdateEndpoint; the id from the path. */
#define REFUSED(path, body, err) { path, body, err, NULL, NULL, NULL, 0, 0 }
#define EVENTS_ERR "events must be an array of 1..8 event names, e.g. [\"job.completed\"]"
static const struct {
	const char *path;	/* POST to it */
	const char *body;
	const char *err;	/* NULL: builds */
	const char *id, *url, *desc;
	size_t n_events;
	int toggle;
} hook_cases[] = {
	{ "/webhook_endpoints", "{\"url\":\"https://r.example/h\",\"events\":[\"job.completed\"]}",
	  NULL, NULL, "https://r.example/h", "", 1, 0 },
	{ "/webhook_endpoints", "{\"url\":\"https://r/h\",\"events\":[\"job.completed\"],"
	  "\"description\":\"ci\"}", NULL, NULL, "https://r/h", "ci", 1, 0 },
	/* What is missing is the method's to refuse, as for a gRPC caller. */
	{ "/webhook_endpoints", "{}", NULL, NULL, "", "", 0, 0 },
	REFUSED("/webhook_endpoints", "{\"url\":7}", "url must be a string"),
	REFUSED("/webhook_endpoints", "{\"url\":\"https://r/h\",\"events\":\"job.completed\"}",
		EVENTS_ERR),
	REFUSED("/webhook_endpoints", "{\"url\":\"https://r/h\",\"events\":[]}", EVENTS_ERR),
	REFUSED("/webhook_endpoints",
		"{\"events\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}", EVENTS_ERR),
	REFUSED("/webhook_endpoints", "{\"events\":[1]}", "events must be an array of strings"),
	REFUSED("/webhook_endpoints", "not json", "request body must be a JSON object"),
	REFUSED("/webhook_endpoints", NULL, "request body must be a JSON object"),
	{ "/webhook_endpoints/ep_1", "{\"url\":\"https://r/2\"}", NULL, "ep_1", "https://r/2", "", 0,
	  0 },
	{ "/webhook_endpoints/ep%5F1", "{\"disabled\":true}", NULL, "ep_1", "", "", 0,
	  ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_DISABLE },
	{ "/webhook_endpoints/ep_1", "{\"disabled\":false,\"events\":[\"job.completed\"]}", NULL,
	  "ep_1", "", "", 1, ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_ENABLE },
	REFUSED("/webhook_endpoints/ep_1", "{\"disabled\":\"yes\"}", "disabled must be true or false"),
	REFUSED("/webhook_endpoints/ep_1", "{\"url\":\"\"}",
		"url and description cannot be set to empty"),
	REFUSED("/webhook_endpoints/ep_1", "{\"events\":[]}", EVENTS_ERR),
	REFUSED("/webhook_endpoints/%zz", "{}", "endpoint id is malformed"),
	REFUSED("/webhook_endpoints/ep_1", "[]", "request body must be a JSON object"),
};

Test(facade, build_webhook_endpoints)
{
	for (size_t i = 0; i < sizeof hook_cases / sizeof hook_cases[0]; i++) {
		char err[GW_FACADE_ERR_MAX];
		int update = hook_cases[i].id != NULL ||
			     strcmp(hook_cases[i].path, "/webhook_endpoints") != 0;
		ProtobufCMessage *m = build(GW_FACADE_POST, hook_cases[i].path, NULL,
					    hook_cases[i].body,
					    update ? &animate3d__v1__update_endpoint_request__descriptor
						   : &animate3d__v1__create_endpoint_request__descriptor,
					    err);

		if (hook_cases[i].err) {
			cr_expect_null(m, "case %zu", i);
			cr_expect_str_eq(err, hook_cases[i].err, "case %zu", i);
			continue;
		}
		cr_assert_not_null(m, "case %zu: %s", i, err);
		if (update) {
			Animate3d__V1__UpdateEndpointRequest *u = (void *)m;

			cr_expect_str_eq(u->id, hook_cases[i].id, "case %zu", i);
			cr_expect_str_eq(u->url, hook_cases[i].url, "case %zu", i);
			cr_expect_eq(u->n_events, hook_cases[i].n_events, "case %zu", i);
			cr_expect_eq((int)u->toggle, hook_cases[i].toggle, "case %zu", i);
		} else {
			Animate3d__V1__CreateEndpointRequest *c = (void *)m;

			cr_expect_str_eq(c->url, hook_cases[i].url, "case %zu", i);
			cr_expect_str_eq(c->description, hook_cases[i].desc, "case %zu", i);
			cr_expect_eq(c->n_events, hook_cases[i].n_events, "case %zu", i);
			if (c->n_events)
				cr_expect_str_eq(c->events[0], "job.completed", "case %zu", i);
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

Test(facade, build_webhook_endpoint_ids)
{
	static const struct {
		unsigned verb;
		const ProtobufCMessageDescriptor *d;
	} cases[] = { { GW_FACADE_GET, &animate3d__v1__get_endpoint_request__descriptor },
		      { GW_FACADE_DELETE, &animate3d__v1__delete_endpoint_request__descriptor } };
	char err[GW_FACADE_ERR_MAX], long_path[300];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* GetEndpointRequest and DeleteEndpointRequest: id is the first field of both. */
		Animate3d__V1__GetEndpointRequest *g = (void *)build(
			cases[i].verb, "/webhook_endpoints/ep_%41b", NULL, NULL, cases[i].d, err);

		cr_assert_not_null(g, "case %zu: %s", i, err);
		cr_expect_str_eq(g->id, "ep_Ab", "case %zu", i);
		protobuf_c_message_free_unpacked(&g->base, NULL);
	}
	/* Longer than any id the method takes: refused before it is copied. */
	snprintf(long_path, sizeof long_path, "/webhook_endpoints/%0200d", 1);
	cr_expect_null(build(GW_FACADE_GET, long_path, NULL, NULL,
			     &animate3d__v1__get_endpoint_request__descriptor, err));
	cr_expect_str_eq(err, "endpoint id is malformed");
}

/* ---- rendering replies ---- */

static char *render_verb(unsigned verb, const char *path, const ProtobufCMessage *m)
{
	const char *arg;
	int wrong;
	const struct gw_facade_route *r = gw_facade_match(verb, path, &arg, &wrong);
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	char *s;

	cr_assert_not_null(r);
	protobuf_c_message_pack(m, buf);
	s = gw_facade_render(r, buf, len);
	free(buf);
	return s;
}

static char *render(const char *path, const ProtobufCMessage *m)
{
	return render_verb(GW_FACADE_GET, path, m);
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

/* GET /status is written directly when its strings need no escaping, else by jansson: both give
 * the same bytes. Each input file name -> the SUCCESS answer's "in" as written (NULL: no answer,
 * the listener's 500, as for any string jansson refuses). */
static const struct {
	const char *in;
	const char *written;
} status_string_cases[] = {
	{ "v.mp4", "\"v.mp4\"" },				/* direct */
	{ "", "\"\"" },
	{ " ~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "\" ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"" },
	{ "a\"b.mp4", "\"a\\\"b.mp4\"" },			/* jansson: escaped */
	{ "a\\b.mp4", "\"a\\\\b.mp4\"" },
	{ "tab\there\n", "\"tab\\there\\n\"" },
	{ "\x01", "\"\\u0001\"" },
	{ "caf\xc3\xa9.mp4", "\"caf\xc3\xa9.mp4\"" },		/* UTF-8 as it is */
	{ "del\x7f", "\"del\x7f\"" },
};

Test(facade, render_status_strings)
{
	for (size_t i = 0; i < sizeof status_string_cases / sizeof status_string_cases[0]; i++) {
		Animate3d__V1__JobStatus a = ANIMATE3D__V1__JOB_STATUS__INIT;
		Animate3d__V1__JobStatus *all[] = { &a };
		Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
		char want[256];
		char *s;

		a.rid = "r1";
		a.state = ANIMATE3D__V1__JOB_STATE__SUCCESS;
		a.input_file = (char *)status_string_cases[i].in;
		a.output_file = "r1.bvh";
		resp.n_statuses = 1;
		resp.statuses = all;
		s = render("/status/r1", &resp.base);
		snprintf(want, sizeof want, "{\"count\":1,\"status\":[{\"rid\":\"r1\",\"status\":"
			 "\"SUCCESS\",\"details\":{\"in\":%s,\"out\":\"r1.bvh\"}}]}",
			 status_string_cases[i].written);
		cr_expect_str_eq(s ? s : "(null)", want, "case %zu", i);
		free(s);
	}
}

/* The largest answers: 100 rids of 64 characters, each FAILURE with a long message and type, and
 * the integers at their extremes, fit the buffer written directly and parse back. */
Test(facade, render_status_largest)
{
	enum { N = 100 };
	static Animate3d__V1__JobStatus st[N];
	Animate3d__V1__JobStatus *all[N];
	Animate3d__V1__GetStatusResponse resp = ANIMATE3D__V1__GET_STATUS_RESPONSE__INIT;
	char rid[65], msg[1001], type[201];
	json_t *doc, *one;
	char *s;

	memset(rid, 'R', 64);
	rid[64] = '\0';
	memset(msg, 'm', 1000);
	msg[1000] = '\0';
	memset(type, 't', 200);
	type[200] = '\0';
	for (size_t i = 0; i < N; i++) {
		Animate3d__V1__JobStatus init = ANIMATE3D__V1__JOB_STATUS__INIT;

		st[i] = init;
		st[i].rid = rid;
		st[i].state = i % 2 ? ANIMATE3D__V1__JOB_STATE__FAILURE : ANIMATE3D__V1__JOB_STATE__PROGRESS;
		st[i].error_code = 1399;
		st[i].error_message = msg;
		st[i].error_type = type;
		st[i].step = INT64_MIN;
		st[i].total = INT64_MAX;
		st[i].position_in_queue = INT64_MAX;
		all[i] = &st[i];
	}
	resp.n_statuses = N;
	resp.statuses = all;
	s = render("/status/r1", &resp.base);
	cr_assert_not_null(s);
	doc = json_loads(s, 0, NULL);
	cr_assert_not_null(doc, "not JSON: %.200s", s);
	cr_expect_eq(json_integer_value(json_object_get(doc, "count")), N);
	cr_assert_eq(json_array_size(json_object_get(doc, "status")), N);
	one = json_object_get(json_array_get(json_object_get(doc, "status"), 0), "details");
	cr_expect_eq(json_integer_value(json_object_get(one, "step")), INT64_MIN);
	cr_expect_eq(json_integer_value(json_object_get(one, "total")), INT64_MAX);
	one = json_object_get(json_array_get(json_object_get(doc, "status"), 1), "details");
	/* "Error 1399: " and the message cut where upstream's words are cut (FACADE_EXC_MAX). */
	cr_expect_eq(strlen(json_string_value(json_object_get(one, "exc_message"))), 319);
	cr_expect_str_eq(json_string_value(json_object_get(one, "exc_type")), type);
	json_decref(doc);
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

/* Upstream's endpoint object; the gateway's additions only when they have something to say. */

Test(facade, render_webhook_endpoints)
{
	Animate3d__V1__Endpoint a = ANIMATE3D__V1__ENDPOINT__INIT, b = ANIMATE3D__V1__ENDPOINT__INIT;
	Animate3d__V1__Endpoint *all[] = { &a, &b };
	Animate3d__V1__ListEndpointsResponse list = ANIMATE3D__V1__LIST_ENDPOINTS_RESPONSE__INIT;
	Animate3d__V1__DeleteEndpointResponse del = ANIMATE3D__V1__DELETE_ENDPOINT_RESPONSE__INIT;
	char *events[] = { "job.completed" };
	char *s;

	a.id = "ep_1";
	a.url = "https://r/h";
	a.n_events = 1;
	a.events = events;
	a.secret = "whsec_AAAA";
	a.created_ms = 5;
	s = render_verb(GW_FACADE_POST, "/webhook_endpoints", &a.base);
	cr_expect_str_eq(s, "{\"id\":\"ep_1\",\"object\":\"webhook_endpoint\",\"url\":"
			    "\"https://r/h\",\"events\":[\"job.completed\"],\"secret\":\"whsec_AAAA\"}");
	free(s);
	a.secret = "";
	s = render_verb(GW_FACADE_GET, "/webhook_endpoints/ep_1", &a.base);
	cr_expect_str_eq(s, "{\"id\":\"ep_1\",\"object\":\"webhook_endpoint\",\"url\":"
			    "\"https://r/h\",\"events\":[\"job.completed\"]}");
	free(s);
	b.id = "ep_2";
	b.url = "https://r/2";
	b.description = "ci";
	b.disabled = 1;
	b.disabled_reason = "disabled by the tenant";
	list.n_endpoints = 2;
	list.endpoints = all;
	s = render_verb(GW_FACADE_GET, "/webhook_endpoints", &list.base);
	cr_expect_str_eq(s, "{\"count\":2,\"endpoints\":["
			    "{\"id\":\"ep_1\",\"object\":\"webhook_endpoint\",\"url\":\"https://r/h\","
			    "\"events\":[\"job.completed\"]},"
			    "{\"id\":\"ep_2\",\"object\":\"webhook_endpoint\",\"url\":\"https://r/2\","
			    "\"events\":[],\"description\":\"ci\",\"disabled\":true,"
			    "\"disabled_reason\":\"disabled by the tenant\"}]}");
	free(s);
	list.n_endpoints = 0;
	s = render_verb(GW_FACADE_GET, "/webhook_endpoints", &list.base);
	cr_expect_str_eq(s, "{\"count\":0,\"endpoints\":[]}");
	free(s);
	del.id = "ep_1";
	del.deleted = 1;
	s = render_verb(GW_FACADE_DELETE, "/webhook_endpoints/ep_1", &del.base);
	cr_expect_str_eq(s, "{\"id\":\"ep_1\",\"object\":\"webhook_endpoint\",\"deleted\":true}");
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
