/*
 * Simulator integration tests for issue 19, "Upstream fidelity" (see test_sim_http.c for the
 * setup): the shapes where the simulator once answered what no document describes. Each test
 * names the document section it holds the simulator to; docs/upstream-api.md cites the same.
 */
#define _GNU_SOURCE
#include "it_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ================================================================== status details */

Test(fidelity, success_details_key_is_lower_case_in)
{
	/* v1.5.8 API 4: SUCCESS details are {"in", "out"}; the Python and JS SDKs read "in" */
	char ck[COOKIE_MAX], rid[RID_MAX];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "lower-in.mp4", "[\"formats=bvh\"]", rid, sizeof(rid));
	json_t *e = it_wait_done(ck, rid, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(e, "status")) ?: "", "SUCCESS");
	json_t *d = it_field(e, "details", JSON_OBJECT, "SUCCESS entry");
	/* key -> expected presence */
	struct { const char *key; bool present; } keys[] = {
		{ "in", true }, { "out", true }, { "In", false },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_expect_eq(json_object_get(d, keys[i].key) != NULL, keys[i].present,
			     "SUCCESS details key '%s' present=%d: %s", keys[i].key, !keys[i].present,
			     json_dumps(d, JSON_COMPACT));
	cr_expect_str_eq(json_string_value(json_object_get(d, "in")) ?: "", "lower-in.mp4",
			 "details.in is not the input file");
	json_decref(e);
}

/* ================================================================== /list statuses */

static bool listed(const char *base, const char *ck, const char *path, const char *rid,
		   char *status, size_t ssz)
{
	struct it_resp *r = it_api_at(base, "GET", path, ck, NULL);
	json_t *o = it_ok_json(r, path);
	size_t i;
	json_t *e;
	bool found = false;
	json_array_foreach(it_field(o, "list", JSON_ARRAY, path), i, e) {
		if (strcmp(json_string_value(json_object_get(e, "rid")) ?: "", rid) == 0) {
			found = true;
			snprintf(status, ssz, "%s", json_string_value(json_object_get(e, "status")) ?: "");
		}
	}
	it_resp_free(r);
	return found;
}

Test(fidelity, list_accepts_starting_for_queued_jobs, .timeout = 60)
{
	/* v1.5.8 API 6: list statuses are STARTING, PROGRESS, SUCCESS, FAILURE, RETRY. A sim with
	 * 5 s jobs keeps a new job queued (STARTING in /list) for its first second. */
	struct it_sim sp;
	const char *args[] = { "--job-seconds", "5", NULL };
	it_sim_spawn(&sp, args);
	char ck[COOKIE_MAX], rid[RID_MAX], st[32];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	it_new_job_at(sp.base, ck, "starting.mp4", "[\"formats=bvh\"]", rid, sizeof(rid));
	double t0 = it_now();
	/* path -> the new job listed, with this status */
	struct { const char *path; bool has; const char *status; } cases[] = {
		{ "/list/STARTING", true, "STARTING" },
		{ "/list", true, "STARTING" },
		{ "/list/PROGRESS", false, NULL },
		{ "/list/STARTING,PROGRESS", true, "STARTING" },
		{ "/list/SUCCESS,FAILURE,RETRY", false, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st[0] = '\0';
		bool got = listed(sp.base, ck, cases[i].path, rid, st, sizeof(st));
		cr_expect_eq(got, cases[i].has, "%s lists the queued job=%d (status %s)", cases[i].path, got, st);
		if (got && cases[i].status)
			cr_expect_str_eq(st, cases[i].status, "%s", cases[i].path);
	}
	cr_expect(it_now() - t0 < 1.0, "the machine is too slow for this check (%.2f s)", it_now() - t0);
	struct it_resp *r = it_api_at(sp.base, "GET", "/list/STARTED", ck, NULL);
	it_expect_error(r, 400, "an unknown list status");
	it_resp_free(r);
	it_sim_stop(&sp);
}

/* ================================================================== durations */

/* Frames: line of a BVH body, -1 when absent. */
static long bvh_frames(const char *body)
{
	const char *f = body ? strstr(body, "Frames:") : NULL;
	return f ? strtol(f + 7, NULL, 10) : -1;
}

Test(fidelity, durations_report_the_input_video_not_the_trim, .timeout = 60)
{
	/* v1.5.8 API 5 "duration of the video", API 6 fileDuration "Input video duration in
	 * seconds": the input's length (tiny.mp4: 2 s) whatever trim says. What a trim changes is
	 * what is processed: the BVH's length and the credits charged (ceil of processed seconds). */
	struct it_sim sp;
	const char *args[] = { "--job-seconds", "1", "--credits", "100", NULL };
	it_sim_spawn(&sp, args);
	char ck[COOKIE_MAX];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	/* params -> BVH frames (30 fps of processed seconds), credits charged */
	struct { const char *params; long frames; double cost; } cases[] = {
		{ "[\"formats=bvh\"]", 60, 2 },
		{ "[\"formats=bvh\",\"trim=0.5,1\"]", 15, 1 },
		{ "[\"formats=bvh\",\"trim=1,9\"]", 30, 1 },	/* past the end: up to the end */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char rid[RID_MAX], path[256];
		struct it_resp *r = it_api_at(sp.base, "GET", "/account/creditBalance", ck, NULL);
		double before = json_number_value(json_object_get(it_ok_json(r, "credits"), "credits"));
		it_resp_free(r);
		it_new_job_at(sp.base, ck, "dur.mp4", cases[i].params, rid, sizeof(rid));
		json_decref(it_wait_done_at(sp.base, ck, rid, NULL));
		snprintf(path, sizeof(path), "/download/%s", rid);
		r = it_api_at(sp.base, "GET", path, ck, NULL);
		json_t *l = json_array_get(json_object_get(it_ok_json(r, "download"), "links"), 0);
		double d = json_number_value(json_object_get(l, "duration"));
		cr_expect(fabs(d - FIXTURE_DURATION) < 0.01, "case %zu: link duration %g, want the input's %g",
			  i, d, FIXTURE_DURATION);
		json_t *g = json_array_get(json_object_get(l, "urls"), 0);
		const char *bvh = json_string_value(json_object_get(json_array_get(json_object_get(g, "files"), 0), "bvh"));
		cr_assert(bvh != NULL, "case %zu: no bvh: %s", i, r->body);
		struct it_resp *b = it_http("GET", bvh, NULL, NULL, 0);
		cr_expect_eq(bvh_frames(b->body), cases[i].frames, "case %zu: BVH frames %ld", i, bvh_frames(b->body));
		it_resp_free(b);
		it_resp_free(r);
		r = it_api_at(sp.base, "GET", "/list", ck, NULL);
		json_t *e;
		size_t k;
		bool seen = false;
		json_array_foreach(json_object_get(it_ok_json(r, "list"), "list"), k, e) {
			if (strcmp(json_string_value(json_object_get(e, "rid")) ?: "", rid) != 0)
				continue;
			seen = true;
			double fd = json_number_value(json_object_get(e, "fileDuration"));
			cr_expect(fabs(fd - FIXTURE_DURATION) < 0.01, "case %zu: fileDuration %g", i, fd);
		}
		cr_expect(seen, "case %zu: job not listed", i);
		it_resp_free(r);
		r = it_api_at(sp.base, "GET", "/account/creditBalance", ck, NULL);
		double after = json_number_value(json_object_get(it_ok_json(r, "credits"), "credits"));
		it_resp_free(r);
		cr_expect(fabs(before - after - cases[i].cost) < 1e-9, "case %zu: charged %g, want %g", i,
			  before - after, cases[i].cost);
	}
	it_sim_stop(&sp);
}

/* ================================================================== minutesBalance */

Test(fidelity, minutes_balance_prints_two_decimals, .timeout = 60)
{
	/* docs/upstream-api.md: minutes = credits / 60, floored to two decimals, printed as such
	 * (jansson alone would print 15.8 as 15.800000000000001). The body is compared as text. */
	struct { const char *credits, *body; } cases[] = {
		{ "948", "{\"minutes\":15.80}" },
		{ "1000", "{\"minutes\":16.66}" },
		{ "0", "{\"minutes\":0.00}" },
		{ "60.6", "{\"minutes\":1.01}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct it_sim sp;
		const char *args[] = { "--credits", cases[i].credits, NULL };
		it_sim_spawn(&sp, args);
		char ck[COOKIE_MAX];
		it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
		struct it_resp *r = it_api_at(sp.base, "GET", "/account/minutesBalance", ck, NULL);
		it_ok_json(r, "minutesBalance");
		cr_expect_str_eq(r->body ?: "", cases[i].body, "--credits %s", cases[i].credits);
		it_resp_free(r);
		it_sim_stop(&sp);
	}
}

/* ================================================================== auth strictness */

/* Every API route but /session/auth, as one request each (bodies where the route wants one). */
static const struct { const char *method, *path, *body; } api_routes[] = {
	{ "GET", "/upload?name=a.mp4&resumable=0", NULL },
	{ "POST", "/process", "{\"url\":\"http://127.0.0.1:1/x.mp4\",\"processor\":\"video2anim\"}" },
	{ "GET", "/status/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
	{ "GET", "/download/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
	{ "GET", "/list", NULL },
	{ "GET", "/list/SUCCESS", NULL },
	{ "GET", "/account/creditBalance", NULL },
	{ "GET", "/account/minutesBalance", NULL },
	{ "POST", "/videoInfo", "{\"url\":\"http://127.0.0.1:1/x.mp4\"}" },
	{ "GET", "/character/getModelUploadUrl?name=m&modelExt=fbx", NULL },
	{ "POST", "/character/storeModel", "{\"modelId\":\"5Hn9mDRFqHUxd2KqG6QJsa\"}" },
	{ "GET", "/character/listModels", NULL },
	{ "DELETE", "/character/deleteModel/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
	{ "POST", "/webhook_endpoints", "{\"url\":\"http://127.0.0.1:9/h\",\"events\":[\"job.completed\"]}" },
	{ "GET", "/webhook_endpoints", NULL },
	{ "GET", "/webhook_endpoints/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
	{ "POST", "/webhook_endpoints/5Hn9mDRFqHUxd2KqG6QJsa", "{\"url\":\"http://127.0.0.1:9/h\"}" },
	{ "DELETE", "/webhook_endpoints/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
	{ "GET", "/pesave/getUrls/5Hn9mDRFqHUxd2KqG6QJsa", NULL },
};

static struct it_resp *call_with(const char *base, size_t i, const char *h1, const char *h2)
{
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s%s", base, api_routes[i].path);
	const char *h[] = { "Content-Type: application/json", h1, h2, NULL };
	if (h1 == NULL)
		h[1] = h2, h[2] = NULL;
	return it_http(api_routes[i].method, url, h, api_routes[i].body,
		       api_routes[i].body ? strlen(api_routes[i].body) : 0);
}

Test(fidelity, basic_only_at_session_auth_unless_lenient, .timeout = 60)
{
	/* API 1: Basic gets the session cookie at /session/auth; "This cookie needs to be sent in
	 * all subsequent REST API calls". Basic alone elsewhere is 401, unless --lenient-auth. */
	char basic[512], ck[COOKIE_MAX], hc[COOKIE_MAX + 16];
	it_basic_header("demo-client-id:demo-client-secret", basic, sizeof(basic));
	struct it_sim lenient;
	const char *args[] = { "--lenient-auth", NULL };
	it_sim_spawn(&lenient, args);
	/* sim -> headers sent -> 401 expected */
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		struct it_resp *r = call_with(it_base(), i, basic, NULL);
		char what[256];
		snprintf(what, sizeof(what), "Basic only: %s %s", api_routes[i].method, api_routes[i].path);
		it_expect_error(r, 401, what);
		const char *m = json_string_value(json_object_get(r->json, "message"));
		cr_expect(m && strcasestr(m, "session"), "%s: message does not mention the session: %s", what,
			  m ?: "(none)");
		it_resp_free(r);
		r = call_with(lenient.base, i, basic, NULL);
		cr_expect(r->cc == CURLE_OK && r->status != 401, "--lenient-auth, Basic only: %s %s: HTTP %ld",
			  api_routes[i].method, api_routes[i].path, r->status);
		it_resp_free(r);
	}
	/* the cookie works, with or without Basic beside it (the official demo sends both) */
	it_login(ck, sizeof(ck));
	snprintf(hc, sizeof(hc), "Cookie: dmsess=%s", ck);
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		for (int with_basic = 0; with_basic < 2; with_basic++) {
			struct it_resp *r = call_with(it_base(), i, hc, with_basic ? basic : NULL);
			cr_expect(r->cc == CURLE_OK && r->status != 401, "cookie%s: %s %s: HTTP %ld",
				  with_basic ? " + Basic" : "", api_routes[i].method, api_routes[i].path, r->status);
			it_resp_free(r);
		}
	}
	/* outside the API nothing changed: /_sim/ needs nothing, /session/auth takes Basic */
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s/_sim/stats", it_base());
	struct it_resp *r = it_http("GET", url, NULL, NULL, 0);
	cr_expect_eq(r->status, 200, "/_sim/stats without auth: HTTP %ld", r->status);
	it_resp_free(r);
	snprintf(url, sizeof(url), "%s/session/auth", it_base());
	const char *h[] = { basic, NULL };
	r = it_http("GET", url, h, NULL, 0);
	cr_expect_eq(r->status, 200, "/session/auth with Basic: HTTP %ld", r->status);
	it_resp_free(r);
	it_sim_stop(&lenient);
}

/* ================================================================== /_sim/requests */

static json_t *header_named(json_t *arr, const char *name)
{
	size_t i;
	json_t *h;
	json_array_foreach(arr, i, h) {
		if (strcasecmp(json_string_value(json_object_get(h, "name")) ?: "", name) == 0)
			return h;
	}
	return NULL;
}

Test(simctl, requests_log_last_n_redacted, .timeout = 60)
{
	struct it_sim sp;
	it_sim_spawn(&sp, NULL);
	char ck[COOKIE_MAX], url[URL_MAX], hc[COOKIE_MAX + 16];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	snprintf(hc, sizeof(hc), "Cookie: dmsess=%s", ck);
	snprintf(url, sizeof(url), "%s/account/creditBalance", sp.base);
	const char *h[] = { hc, "X-Probe: 42", NULL };
	it_resp_free(it_http("GET", url, h, NULL, 0));
	snprintf(url, sizeof(url), "%s/no/such/route?q=1", sp.base);
	it_resp_free(it_http("GET", url, NULL, NULL, 0));
	snprintf(url, sizeof(url), "%s/_sim/stats", sp.base);	/* a control: not logged */
	it_resp_free(it_http("GET", url, NULL, NULL, 0));

	snprintf(url, sizeof(url), "%s/_sim/requests?limit=3", sp.base);
	struct it_resp *r = it_http("GET", url, NULL, NULL, 0);
	json_t *o = it_ok_json(r, "/_sim/requests");
	cr_expect(r->body && strstr(r->body, ck) == NULL, "the log shows the session cookie: %s", r->body);
	cr_expect(r->body && strstr(r->body, "ZGVtby1jbGllbnQtaWQ6") == NULL, "the log shows Basic credentials");
	json_t *reqs = it_field(o, "requests", JSON_ARRAY, "/_sim/requests");
	cr_assert_eq(json_array_size(reqs), 3, "%s", r->body);
	/* index -> method, path, status (oldest first) */
	struct { const char *method, *path; long status; } want[] = {
		{ "GET", "/session/auth", 200 }, { "GET", "/account/creditBalance", 200 },
		{ "GET", "/no/such/route", 404 },
	};
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(reqs, i);
		cr_expect_str_eq(json_string_value(json_object_get(e, "method")) ?: "", want[i].method, "entry %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(e, "path")) ?: "", want[i].path, "entry %zu", i);
		cr_expect_eq(json_integer_value(json_object_get(e, "status")), want[i].status, "entry %zu", i);
		it_field(e, "headers", JSON_ARRAY, "entry");
		it_field(e, "response_headers", JSON_ARRAY, "entry");
	}
	json_t *auth = header_named(json_object_get(json_array_get(reqs, 0), "headers"), "Authorization");
	cr_expect(auth && !strcmp(json_string_value(json_object_get(auth, "value")) ?: "", "[redacted]"),
		  "Authorization not redacted: %s", r->body);
	json_t *sc = header_named(json_object_get(json_array_get(reqs, 0), "response_headers"), "Set-Cookie");
	cr_expect(sc && !strcmp(json_string_value(json_object_get(sc, "value")) ?: "", "[redacted]"),
		  "Set-Cookie not redacted: %s", r->body);
	json_t *cookie = header_named(json_object_get(json_array_get(reqs, 1), "headers"), "Cookie");
	cr_expect(cookie && !strcmp(json_string_value(json_object_get(cookie, "value")) ?: "", "[redacted]"),
		  "Cookie not redacted: %s", r->body);
	json_t *probe = header_named(json_object_get(json_array_get(reqs, 1), "headers"), "X-Probe");
	cr_expect(probe && !strcmp(json_string_value(json_object_get(probe, "value")) ?: "", "42"),
		  "other headers are kept as sent: %s", r->body);
	it_resp_free(r);

	/* limit -> status */
	struct { const char *q; long status; } lim[] = {
		{ "", 200 }, { "?limit=1", 200 }, { "?limit=256", 200 }, { "?limit=0", 400 },
		{ "?limit=257", 400 }, { "?limit=abc", 400 }, { "?limit=", 400 },
	};
	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		snprintf(url, sizeof(url), "%s/_sim/requests%s", sp.base, lim[i].q);
		r = it_http("GET", url, NULL, NULL, 0);
		cr_expect_eq(r->status, lim[i].status, "/_sim/requests%s: HTTP %ld", lim[i].q, r->status);
		it_resp_free(r);
	}
	snprintf(url, sizeof(url), "%s/_sim/requests", sp.base);
	r = it_http("DELETE", url, NULL, NULL, 0);
	cr_expect_eq(r->status, 200);
	it_resp_free(r);
	r = it_http("GET", url, NULL, NULL, 0);
	cr_expect_eq(json_array_size(json_object_get(r->json, "requests")), 0, "DELETE did not clear: %s", r->body);
	it_resp_free(r);
	it_sim_stop(&sp);
}
