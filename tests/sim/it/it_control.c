/* Simulator integration tests: webhooks, bad input, CORS, /_sim/ controls (see test_sim_http.c). */
#define _GNU_SOURCE
#include "it_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== tests: webhooks */

Test(webhooks, crud_shapes)
{
	char ck[COOKIE_MAX], id[128], path[256];
	it_login(ck, sizeof(ck));
	struct it_resp *r = it_api("POST", "/webhook_endpoints", ck,
			     "{\"url\":\"http://127.0.0.1:9/a\",\"events\":[\"job.completed\"]}");
	json_t *o = it_ok_json(r, "create webhook");
	snprintf(id, sizeof(id), "%s", json_string_value(it_field(o, "id", JSON_STRING, "create")));
	cr_expect_str_eq(json_string_value(it_field(o, "object", JSON_STRING, "create")), "webhook_endpoint");
	cr_expect_str_eq(json_string_value(it_field(o, "url", JSON_STRING, "create")), "http://127.0.0.1:9/a");
	json_t *ev = it_field(o, "events", JSON_ARRAY, "create");
	cr_expect(json_array_size(ev) == 1 &&
		  !strcmp(json_string_value(json_array_get(ev, 0)) ?: "", "job.completed"));
	it_resp_free(r);

	snprintf(path, sizeof(path), "/webhook_endpoints/%s", id);
	r = it_api("GET", path, ck, NULL);
	o = it_ok_json(r, "get webhook");
	cr_expect_str_eq(json_string_value(it_field(o, "id", JSON_STRING, "get")), id);
	cr_expect_str_eq(json_string_value(it_field(o, "object", JSON_STRING, "get")), "webhook_endpoint");
	cr_expect_str_eq(json_string_value(it_field(o, "url", JSON_STRING, "get")), "http://127.0.0.1:9/a");
	it_field(o, "events", JSON_ARRAY, "get");
	it_resp_free(r);

	r = it_api("GET", "/webhook_endpoints", ck, NULL);
	o = it_ok_json(r, "list webhooks");
	json_t *eps = it_field(o, "endpoints", JSON_ARRAY, "list");
	cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, "list")),
		     (json_int_t)json_array_size(eps));
	cr_expect(strstr(r->body, id) != NULL, "list lacks the endpoint");
	it_resp_free(r);

	r = it_api("POST", path, ck, "{\"url\":\"http://127.0.0.1:9/b\"}");
	it_ok_json(r, "update webhook");
	it_resp_free(r);
	r = it_api("GET", path, ck, NULL);
	o = it_ok_json(r, "get after update");
	cr_expect_str_eq(json_string_value(json_object_get(o, "url")) ?: "", "http://127.0.0.1:9/b");
	it_resp_free(r);

	r = it_api("DELETE", path, ck, NULL);
	o = it_ok_json(r, "delete webhook");
	cr_expect_str_eq(json_string_value(it_field(o, "id", JSON_STRING, "delete")), id);
	cr_expect_str_eq(json_string_value(it_field(o, "object", JSON_STRING, "delete")), "webhook_endpoint");
	cr_expect(json_is_true(it_field(o, "deleted", JSON_TRUE, "delete")), "deleted is not true");
	it_resp_free(r);
	r = it_api("GET", path, ck, NULL);
	it_expect_error(r, 404, "get deleted webhook");
	it_resp_free(r);
	r = it_api("POST", "/webhook_endpoints", ck, "{\"events\":[\"job.completed\"]}");
	cr_expect_eq(r->status, 400, "create without url: HTTP %ld", r->status);
	it_resp_free(r);
}

static void check_delivery(const struct it_hook_delivery *d, const char *rid, const char *status)
{
	json_t *b = json_loads(d->body, 0, NULL);
	cr_expect(b != NULL, "webhook body is not JSON: %s", d->body);
	cr_expect(d->post, "webhook was not a POST");
	cr_expect_str_eq(d->sig, "demo-client-id", "X-DeepMotion-Signature");
	cr_expect_str_eq(json_string_value(json_object_get(b, "eventType")) ?: "", "job.completed",
			 "eventType in %s", d->body);
	json_t *data = json_object_get(b, "data");
	cr_expect_str_eq(json_string_value(json_object_get(data, "taskId")) ?: "", rid, "taskId in %s",
			 d->body);
	cr_expect_str_eq(json_string_value(json_object_get(data, "status")) ?: "", status,
			 "status in %s", d->body);
	json_decref(b);
}

Test(webhooks, delivery_success_and_failure, .timeout = 90)
{
	char ck[COOKIE_MAX], hid[128], hurl[128], ok[RID_MAX], bad[RID_MAX];
	it_login(ck, sizeof(ck));
	struct it_hook_rx rx;
	it_hook_start(&rx, 0);
	snprintf(hurl, sizeof(hurl), "http://127.0.0.1:%d/hook", rx.port);
	/* a dead endpoint registered first must not hold up the live one */
	char dead_id[128];
	it_hook_register_at(it_base(), ck, "http://127.0.0.1:1/dead", dead_id, sizeof(dead_id));
	it_hook_register_at(it_base(), ck, hurl, hid, sizeof(hid));
	it_new_job(ck, "hook.mp4", NULL, ok, sizeof(ok));
	it_new_job(ck, "hook-fail-513.mp4", NULL, bad, sizeof(bad));
	json_decref(it_wait_done(ck, ok, NULL));
	json_decref(it_wait_done(ck, bad, NULL));
	double t_done = it_now();
	/* jobs of earlier tests may deliver here too: match ours by rid */
	struct it_hook_delivery d;
	int n = it_hook_wait_for(&rx, ok, 200, 1, HOOK_WAIT_S, &d, NULL);
	cr_expect_eq(n, 1, "%d webhooks for %s within %.0f s (want exactly 1)", n, ok, HOOK_WAIT_S);
	if (n >= 1) {
		check_delivery(&d, ok, "success");
		cr_expect(d.at - t_done < 5.0, "success webhook came %.1f s after the job ended", d.at - t_done);
	}
	n = it_hook_wait_for(&rx, bad, 200, 1, HOOK_WAIT_S, &d, NULL);
	cr_expect_eq(n, 1, "%d webhooks for failed %s (want exactly 1)", n, bad);
	if (n >= 1)
		check_delivery(&d, bad, "failure");
	it_hook_delete_at(it_base(), ck, hid);
	it_hook_delete_at(it_base(), ck, dead_id);
	it_hook_stop(&rx);
}

Test(webhooks, failed_delivery_is_retried, .timeout = 90)
{
	char ck[COOKIE_MAX], hid[128], hurl[128], rid[RID_MAX];
	it_login(ck, sizeof(ck));
	struct it_hook_rx rx;
	it_hook_start(&rx, 1);             /* the first request gets a 500 */
	snprintf(hurl, sizeof(hurl), "http://127.0.0.1:%d/flaky", rx.port);
	it_hook_register_at(it_base(), ck, hurl, hid, sizeof(hid));
	it_new_job(ck, "retryhook.mp4", NULL, rid, sizeof(rid));
	json_decref(it_wait_done(ck, rid, NULL));
	struct it_hook_delivery d;
	int all = 0;
	int n = it_hook_wait_for(&rx, rid, 200, 1, HOOK_WAIT_S, &d, &all);
	cr_expect(all >= 2, "the receiver saw %d deliveries of %s: the failed one was not retried", all, rid);
	cr_expect_eq(n, 1, "%d successful deliveries of %s (want exactly 1)", n, rid);
	if (n >= 1)
		check_delivery(&d, rid, "success");
	it_hook_delete_at(it_base(), ck, hid);
	it_hook_stop(&rx);
}

/* ================================================================== tests: bad input */

Test(bad_input, malformed_oversized_wrong_method_unknown_path)
{
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	struct { const char *method, *path, *body; long status; } cases[] = {
		{ "POST", "/process", "{\"url\": ", 400 },                 /* malformed JSON */
		{ "POST", "/process", "[1,2,3]", 400 },                    /* not an object */
		{ "POST", "/process", "{\"url\": 42, \"processor\":\"video2anim\"}", 400 },
		{ "POST", "/process", "{\"rid\":\"x\",\"params\":\"formats=bvh\"}", 400 },  /* params not array */
		{ "POST", "/videoInfo", "not json", 400 },
		{ "POST", "/character/storeModel", "{", 400 },
		{ "POST", "/webhook_endpoints", "{\"url\":", 400 },
		{ "DELETE", "/process", NULL, 405 },                       /* wrong methods */
		{ "POST", "/status/5Hn9mDRFqHUxd2KqG6QJsa", "{}", 405 },
		{ "PUT", "/account/creditBalance", "{}", 405 },
		{ "GET", "/character/deleteModel/5Hn9mDRFqHUxd2KqG6QJsa", NULL, 405 },
		{ "GET", "/no/such/path", NULL, 404 },                     /* unknown paths */
		{ "GET", "/v2/process", NULL, 404 },
		{ "GET", "/character/nothing", NULL, 404 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct it_resp *r = it_api(cases[i].method, cases[i].path, ck, cases[i].body);
		char what[160];
		snprintf(what, sizeof(what), "%s %s body=%s", cases[i].method, cases[i].path,
			 cases[i].body ?: "none");
		it_expect_error(r, cases[i].status, what);
		it_resp_free(r);
	}
	/* oversized body: more than 1 MiB of valid-looking JSON */
	size_t big = (1u << 20) + 4096;
	char *b = malloc(big + 64);
	cr_assert(b != NULL);
	int n = snprintf(b, big + 64, "{\"url\":\"");
	memset(b + n, 'a', big);
	strcpy(b + n + big, "\"}");
	struct it_resp *r = it_api("POST", "/process", ck, b);
	if (r->cc == CURLE_OK)
		it_expect_error(r, 413, "POST /process with a body over 1 MiB");
	else
		cr_expect_fail("oversized body: connection failed (%s) instead of 413 JSON",
			       curl_easy_strerror(r->cc));
	it_resp_free(r);
	free(b);
	/* videoInfo of bytes that are not an MP4; /process and videoInfo of a URL never uploaded to */
	char url[URL_MAX], body[URL_MAX + 64];
	it_upload_at(it_base(), ck, "garbage.mp4", "this is not an mp4 file at all", 30, url, sizeof(url));
	snprintf(body, sizeof(body), "{\"url\":\"%s\"}", url);
	r = it_api("POST", "/videoInfo", ck, body);
	cr_expect(r->status >= 400 && r->status < 500, "videoInfo of a non-MP4: HTTP %ld", r->status);
	cr_expect(json_is_string(json_object_get(r->json, "message")), "videoInfo of a non-MP4: no message");
	it_resp_free(r);
	r = it_api("GET", "/upload?name=never.mp4&resumable=0", ck, NULL);
	snprintf(url, sizeof(url), "%s", json_string_value(json_object_get(it_ok_json(r, "upload"), "url")));
	it_resp_free(r);
	snprintf(body, sizeof(body), "{\"url\":\"%s\"}", url);
	r = it_api("POST", "/videoInfo", ck, body);
	cr_expect(r->status == 400 || r->status == 404, "videoInfo of a never-uploaded url: HTTP %ld", r->status);
	it_resp_free(r);
	snprintf(body, sizeof(body), "{\"url\":\"%s\",\"processor\":\"video2anim\"}", url);
	r = it_api("POST", "/process", ck, body);
	cr_expect(r->status == 400 || r->status == 404, "process of a never-uploaded url: HTTP %ld", r->status);
	it_resp_free(r);
	/* and the server is still fine */
	r = it_api("GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "sim unhealthy after bad input: HTTP %ld", r->status);
	it_resp_free(r);
}

/* ================================================================== tests: CORS */

Test(cors, preflight_and_simple_request)
{
	char url[URL_MAX], v[512] = "";
	snprintf(url, sizeof(url), "%s/status/5Hn9mDRFqHUxd2KqG6QJsa", it_base());
	const char *origins[] = { "http://localhost:8080", "http://localhost:8180" };
	for (int i = 0; i < 2; i++) {
		char oh[128];
		snprintf(oh, sizeof(oh), "Origin: %s", origins[i]);
		const char *h[] = { oh, "Access-Control-Request-Method: GET",
				    "Access-Control-Request-Headers: content-type", NULL };
		struct it_resp *r = it_http("OPTIONS", url, h, NULL, 0);
		cr_expect(r->status == 200 || r->status == 204, "preflight %s: HTTP %ld", origins[i], r->status);
		cr_expect(it_hdr(r, "Access-Control-Allow-Origin", 0, v, sizeof(v)) && !strcmp(v, origins[i]),
			  "preflight %s: Allow-Origin '%s'", origins[i], v);
		cr_expect(it_hdr(r, "Access-Control-Allow-Credentials", 0, v, sizeof(v)) &&
			  !strcasecmp(v, "true"), "preflight %s: no Allow-Credentials: true", origins[i]);
		cr_expect(it_hdr(r, "Access-Control-Allow-Methods", 0, v, sizeof(v)) && strstr(v, "GET"),
			  "preflight %s: Allow-Methods lacks GET", origins[i]);
		it_resp_free(r);
	}
	const char *h[] = { "Origin: http://evil.example", "Access-Control-Request-Method: GET", NULL };
	struct it_resp *r = it_http("OPTIONS", url, h, NULL, 0);
	cr_expect(!it_hdr(r, "Access-Control-Allow-Origin", 0, v, sizeof(v)) ||
		  (strcmp(v, "*") != 0 && strcmp(v, "http://evil.example") != 0),
		  "foreign origin allowed: '%s'", v);
	it_resp_free(r);
	/* a simple GET from an allowed origin carries the header too (even on 401) */
	const char *hg[] = { "Origin: http://localhost:8080", NULL };
	r = it_http("GET", url, hg, NULL, 0);
	cr_expect(it_hdr(r, "Access-Control-Allow-Origin", 0, v, sizeof(v)) &&
		  !strcmp(v, "http://localhost:8080"), "simple GET: no Allow-Origin");
	it_resp_free(r);
}

/* ================================================================== tests: /_sim/ controls */

static double route_count(const char *route)
{
	struct it_resp *r = it_api("GET", "/_sim/stats", NULL, NULL);
	json_t *o = it_ok_json(r, "GET /_sim/stats");
	json_t *req = it_field(o, "requests", JSON_OBJECT, "stats");
	json_t *v = json_object_get(req, route);
	double n = v ? json_number_value(v) : 0;
	it_resp_free(r);
	return n;
}

Test(simctl, stats_count_routes_and_reset)
{
	char ck[COOKIE_MAX];
	struct it_resp *r = it_api("DELETE", "/_sim/stats", NULL, NULL);
	cr_expect(r->status == 200 || r->status == 204, "DELETE /_sim/stats: HTTP %ld", r->status);
	it_resp_free(r);
	cr_expect_eq(route_count("GET /status/{rids}"), 0, "status count not reset");
	it_login(ck, sizeof(ck));
	for (int i = 0; i < 3; i++)
		it_resp_free(it_api("GET", "/status/5Hn9mDRFqHUxd2KqG6QJsa", ck, NULL));
	it_resp_free(it_api("GET", "/download/5Hn9mDRFqHUxd2KqG6QJsa", ck, NULL));
	it_resp_free(it_api("POST", "/process", ck, "{}"));
	/* route -> count since the reset */
	struct { const char *route; double n; } cases[] = {
		{ "GET /session/auth", 1 },
		{ "GET /status/{rids}", 3 },
		{ "GET /download/{rids}", 1 },
		{ "POST /process", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(route_count(cases[i].route), cases[i].n, "stats[%s] != %g", cases[i].route,
			     cases[i].n);
	r = it_api("GET", "/_sim/stats", NULL, NULL);
	json_t *o = it_ok_json(r, "stats");
	cr_expect(json_is_object(json_object_get(o, "accounts")), "stats has no accounts object: %s", r->body);
	cr_expect(json_is_number(json_object_get(o, "jobs")), "stats has no numeric jobs: %s", r->body);
	it_resp_free(r);
	r = it_api("GET", "/_sim/jobs", NULL, NULL);
	cr_expect_eq(r->status, 200, "GET /_sim/jobs: HTTP %ld", r->status);
	cr_expect(r->json != NULL, "GET /_sim/jobs is not JSON");
	it_resp_free(r);
}

Test(simctl, faults_status_retry_after_count_latency_reset, .timeout = 60)
{
	char ck[COOKIE_MAX], v[64];
	it_login(ck, sizeof(ck));
	it_resp_free(it_api("DELETE", "/_sim/faults", NULL, NULL));

	/* status + count: exactly two 503s, then 200 */
	struct it_resp *r = it_api("POST", "/_sim/faults", NULL,
			     "{\"route\":\"GET /account/creditBalance\",\"status\":503,\"count\":2}");
	cr_assert(r->status == 200 || r->status == 201 || r->status == 204, "POST faults: HTTP %ld", r->status);
	it_resp_free(r);
	long want[] = { 503, 503, 200 };
	for (int i = 0; i < 3; i++) {
		r = it_api("GET", "/account/creditBalance", ck, NULL);
		cr_expect_eq(r->status, want[i], "call %d after a count=2 503 fault: HTTP %ld", i, r->status);
		if (want[i] != 200)
			it_expect_error(r, 503, "injected 503");
		it_resp_free(r);
	}
	/* other routes untouched */
	r = it_api("GET", "/account/minutesBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "fault leaked onto another route");
	it_resp_free(r);

	/* 429 with Retry-After */
	it_resp_free(it_api("POST", "/_sim/faults", NULL,
		      "{\"route\":\"GET /status/{rids}\",\"status\":429,\"retry_after\":2,\"count\":1}"));
	r = it_api("GET", "/status/5Hn9mDRFqHUxd2KqG6QJsa", ck, NULL);
	cr_expect_eq(r->status, 429, "429 fault: HTTP %ld", r->status);
	cr_expect(it_hdr(r, "Retry-After", 0, v, sizeof(v)) && !strcmp(v, "2"), "Retry-After '%s'", v);
	it_resp_free(r);

	/* latency only (status 0) */
	it_resp_free(it_api("POST", "/_sim/faults", NULL,
		      "{\"route\":\"GET /account/minutesBalance\",\"status\":0,\"latency_ms\":400,\"count\":1}"));
	r = it_api("GET", "/account/minutesBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "latency fault changed the status: %ld", r->status);
	cr_expect(r->secs >= 0.38, "latency fault: answered in %.3f s, expected >= 0.4", r->secs);
	it_resp_free(r);
	r = it_api("GET", "/account/minutesBalance", ck, NULL);
	cr_expect(r->secs < 0.38, "latency persisted past count=1: %.3f s", r->secs);
	it_resp_free(r);

	/* rate 0.5 over 40 calls: between 5 and 35 fail (p of a false alarm < 1e-6) */
	it_resp_free(it_api("POST", "/_sim/faults", NULL,
		      "{\"route\":\"GET /account/creditBalance\",\"status\":500,\"rate\":0.5}"));
	int fails = 0;
	for (int i = 0; i < 40; i++) {
		r = it_api("GET", "/account/creditBalance", ck, NULL);
		fails += r->status == 500;
		it_resp_free(r);
	}
	cr_expect(fails >= 5 && fails <= 35, "rate 0.5 gave %d/40 failures", fails);

	/* DELETE clears */
	r = it_api("DELETE", "/_sim/faults", NULL, NULL);
	cr_expect(r->status == 200 || r->status == 204, "DELETE faults: HTTP %ld", r->status);
	it_resp_free(r);
	for (int i = 0; i < 5; i++) {
		r = it_api("GET", "/account/creditBalance", ck, NULL);
		cr_expect_eq(r->status, 200, "fault survived DELETE /_sim/faults");
		it_resp_free(r);
	}

	/* reset-connection mode */
	it_resp_free(it_api("POST", "/_sim/faults", NULL,
		      "{\"route\":\"GET /account/creditBalance\",\"mode\":\"reset\",\"count\":1}"));
	r = it_api("GET", "/account/creditBalance", ck, NULL);
	cr_expect(r->cc != CURLE_OK, "reset mode: got HTTP %ld instead of a broken connection", r->status);
	it_resp_free(r);
	r = it_api("GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "after one reset: HTTP %ld", r->status);
	it_resp_free(r);
	it_resp_free(it_api("DELETE", "/_sim/faults", NULL, NULL));
}

Test(simctl, spent_one_shot_faults_free_their_slot)
{
	/* Gateway tests inject many one-shot faults into one simulator run: a fault whose count is
	 * used up must not keep holding a slot. 40 rounds of: inject count=1, see it once. */
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	it_resp_free(it_api("DELETE", "/_sim/faults", NULL, NULL));
	int refused = 0, missed = 0;
	for (int i = 0; i < 40; i++) {
		struct it_resp *r = it_api("POST", "/_sim/faults", NULL,
				     "{\"route\":\"GET /list\",\"status\":503,\"count\":1}");
		if (r->status < 200 || r->status > 299) {
			if (refused++ == 0)
				cr_expect_fail("round %d: POST /_sim/faults refused with HTTP %ld (%s) although "
					       "every earlier fault was used up", i, r->status, r->body ?: "");
		}
		it_resp_free(r);
		r = it_api("GET", "/list", ck, NULL);
		missed += r->status != 503;
		it_resp_free(r);
	}
	cr_expect_eq(refused, 0, "%d of 40 one-shot faults refused", refused);
	cr_expect_eq(missed, refused, "%d rounds without the injected 503", missed);
	it_resp_free(it_api("DELETE", "/_sim/faults", NULL, NULL));
}

Test(simctl, revoke_sessions_then_reauth)
{
	char ck[COOKIE_MAX], ck2[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	struct it_resp *r = it_api("GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200);
	it_resp_free(r);
	r = it_api("POST", "/_sim/sessions/revoke", NULL, NULL);
	cr_expect(r->status == 200 || r->status == 204, "revoke: HTTP %ld", r->status);
	it_resp_free(r);
	r = it_api("GET", "/account/creditBalance", ck, NULL);
	it_expect_error(r, 401, "call after revoke");
	it_resp_free(r);
	it_login(ck2, sizeof(ck2));
	cr_expect_str_neq(ck, ck2, "re-auth returned the revoked cookie");
	r = it_api("GET", "/account/creditBalance", ck2, NULL);
	cr_expect_eq(r->status, 200, "re-auth after revoke: HTTP %ld", r->status);
	it_resp_free(r);
}

