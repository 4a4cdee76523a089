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
