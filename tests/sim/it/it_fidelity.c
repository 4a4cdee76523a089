/*
 * Simulator integration tests for issue 19, "Upstream fidelity" (see test_sim_http.c for the
 * setup): the shapes where the simulator once answered what no document describes. Each test
 * names the document section it holds the simulator to; docs/upstream-api.md cites the same.
 */
#define _GNU_SOURCE
#include "it_support.h"

#include <math.h>
#include <stdint.h>
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

/* ================================================================== helpers: files */

#define ZIP_MEMBERS_MAX 32

struct zmember {
	char name[128];
	const unsigned char *data;
	size_t size;
};

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* CRC-32 bit by bit: the test's own, independent of the simulator's table. */
static uint32_t bit_crc32(uint32_t c, const unsigned char *p, size_t n)
{
	c = ~c;
	while (n-- > 0) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

/* Reads a zip through its central directory (stored members only), checking every CRC.
 * The number of members, or -1 (with why) when b is not such an archive. */
static int zip_read(const unsigned char *b, size_t len, struct zmember *m, int max, char *why, size_t wsz)
{
	if (len < 22 || le32(b + len - 22) != 0x06054b50u) {
		snprintf(why, wsz, "no end of central directory (%zu bytes, starts %02x %02x)", len,
			 len ? b[0] : 0, len > 1 ? b[1] : 0);
		return -1;
	}
	int n = (int)le16(b + len - 22 + 10);
	size_t cd = le32(b + len - 22 + 16);
	if (n > max) {
		snprintf(why, wsz, "%d members", n);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (cd + 46 > len || le32(b + cd) != 0x02014b50u) {
			snprintf(why, wsz, "central entry %d", i);
			return -1;
		}
		size_t nl = le16(b + cd + 28), off = le32(b + cd + 42), size = le32(b + cd + 24);
		uint32_t crc = le32(b + cd + 16);
		if (le16(b + cd + 10) != 0 || off + 30 > len || le32(b + off) != 0x04034b50u ||
		    off + 30 + le16(b + off + 26) + le16(b + off + 28) + size > len || nl >= sizeof(m[i].name)) {
			snprintf(why, wsz, "member %d", i);
			return -1;
		}
		memcpy(m[i].name, b + cd + 46, nl);
		m[i].name[nl] = '\0';
		m[i].data = b + off + 30 + le16(b + off + 26) + le16(b + off + 28);
		m[i].size = size;
		if (bit_crc32(0, m[i].data, size) != crc) {
			snprintf(why, wsz, "member %s: bad CRC", m[i].name);
			return -1;
		}
		cd += 46 + nl + le16(b + cd + 30) + le16(b + cd + 32);
	}
	return n;
}

/* A PNG with correct chunk CRCs, IHDR first, IEND last: true and its size. */
static bool png_ok(const unsigned char *b, size_t len, int *w, int *h)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	size_t off = 8;
	bool end = false;
	if (len < 8 || memcmp(b, sig, 8) != 0)
		return false;
	for (int i = 0; off + 12 <= len && !end; i++) {
		uint32_t n = be32(b + off);
		if (off + 12 + n > len || be32(b + off + 8 + n) != bit_crc32(0, b + off + 4, 4 + n))
			return false;
		if (i == 0) {
			if (memcmp(b + off + 4, "IHDR", 4) != 0)
				return false;
			*w = (int)be32(b + off + 8);
			*h = (int)be32(b + off + 12);
		}
		end = memcmp(b + off + 4, "IEND", 4) == 0;
		off += 12 + n;
	}
	return end && off == len;
}

static json_t *link_of(const char *base, const char *ck, const char *rid)
{
	char path[256];
	snprintf(path, sizeof(path), "/download/%s", rid);
	struct it_resp *r = it_api_at(base, "GET", path, ck, NULL);
	json_t *o = it_ok_json(r, "download");
	json_t *l = json_incref(json_array_get(json_object_get(o, "links"), 0));
	it_resp_free(r);
	cr_assert(l != NULL, "no link for %s", rid);
	return l;
}

/* URL of ext in the group called item, or NULL. */
static const char *file_url(json_t *link, const char *item, const char *ext)
{
	json_t *g = it_find_group(json_object_get(link, "urls"), item), *f;
	size_t i;
	json_array_foreach(json_object_get(g, "files"), i, f) {
		if (json_is_string(json_object_get(f, ext)))
			return json_string_value(json_object_get(f, ext));
	}
	return NULL;
}

static void wait_status(const char *base, const char *ck, const char *rid, const char *want)
{
	json_t *e = it_wait_done_at(base, ck, rid, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(e, "status")) ?: "", want, "job %s: %s", rid,
			 json_dumps(e, JSON_COMPACT));
	json_decref(e);
}

static void stock_model(const char *ck, int nth, char *id, size_t sz)
{
	struct it_resp *r = it_api("GET", "/character/listModels?stockModel=all", ck, NULL);
	json_t *list = json_object_get(it_ok_json(r, "listModels"), "list");
	json_t *m = json_array_get(list, (size_t)nth);
	cr_assert(m != NULL, "no stock model %d", nth);
	snprintf(id, sz, "%s", json_string_value(json_object_get(m, "id")) ?:
		 json_string_value(json_object_get(m, "Id")) ?: "");
	it_resp_free(r);
}

/* ================================================================== multi-person: phase 1 */

Test(fidelity, detection_lists_cdsave_and_thumbnails_table, .timeout = 90)
{
	/* v2.0 Phase 1: /download of an mp_detection rid offers characters_detection_result.cdsave
	 * and thumbnail_character_XXX.png per detected person. The official demo reads the cdsave's
	 * detectionResults (frames of persons with an "id") to learn the tracking ids. */
	int ns[] = { 1, 3, 16, 99 };	/* persons-<n>; at most 16 per job */
	enum { N = sizeof(ns) / sizeof(ns[0]) };
	char ck[COOKIE_MAX], rids[N][RID_MAX], zero[RID_MAX];
	it_login(ck, sizeof(ck));
	for (size_t i = 0; i < N; i++) {
		char name[64];
		snprintf(name, sizeof(name), "detect-persons-%d.mp4", ns[i]);
		it_new_job(ck, name, "[\"pipeline=mp_detection\"]", rids[i], sizeof(rids[i]));
	}
	it_new_job(ck, "nobody-persons-0.mp4", "[\"pipeline=mp_detection\"]", zero, sizeof(zero));
	for (size_t i = 0; i < N; i++) {
		int want = ns[i] > 16 ? 16 : ns[i];
		wait_status(it_base(), ck, rids[i], "SUCCESS");
		json_t *l = link_of(it_base(), ck, rids[i]);
		json_t *urls = json_object_get(l, "urls");
		cr_expect_eq(json_array_size(urls), (size_t)want + 1, "persons-%d: %zu groups, want cdsave + %d thumbnails",
			     ns[i], json_array_size(urls), want);
		cr_expect_eq(json_integer_value(json_object_get(l, "mode")), 1, "persons-%d: mode", ns[i]);
		cr_expect(json_is_array(json_object_get(l, "models")) && json_array_size(json_object_get(l, "models")) == 0,
			  "persons-%d: a detection tracks nobody yet: %s", ns[i], json_dumps(json_object_get(l, "models"), 0));
		/* the cdsave: per-frame detectionResults naming exactly the detected persons */
		const char *cu = file_url(l, "characters_detection_result", "cdsave");
		cr_assert(cu != NULL, "persons-%d: no characters_detection_result cdsave", ns[i]);
		struct it_resp *c = it_http("GET", cu, NULL, NULL, 0);
		cr_assert_eq(c->status, 200);
		json_t *frames = json_object_get(c->json, "detectionResults");
		cr_assert(json_is_array(frames) && json_array_size(frames) > 0, "cdsave: %.200s", c->body ?: "");
		cr_expect_eq(json_array_size(frames), (size_t)(FIXTURE_DURATION * FIXTURE_FPS),
			     "one detection per video frame");
		bool seen[17] = { false };
		size_t f, k;
		json_t *fr, *p;
		json_array_foreach(frames, f, fr) {
			json_array_foreach(fr, k, p) {
				json_int_t id = json_integer_value(json_object_get(p, "id"));
				cr_assert(json_is_integer(json_object_get(p, "id")) && id >= 1 && id <= want,
					  "frame %zu: person id %lld outside 1..%d", f, (long long)id, want);
				seen[id] = true;
			}
		}
		for (int k2 = 1; k2 <= want; k2++)
			cr_expect(seen[k2], "persons-%d: id %d never detected", ns[i], k2);
		it_resp_free(c);
		/* a real, deterministic PNG thumbnail per person */
		for (int k2 = 1; k2 <= want; k2++) {
			char item[64];
			snprintf(item, sizeof(item), "thumbnail_character_%03d", k2);
			const char *tu = file_url(l, item, "png");
			cr_assert(tu != NULL, "persons-%d: no %s.png", ns[i], item);
			struct it_resp *a = it_http("GET", tu, NULL, NULL, 0), *b = it_http("GET", tu, NULL, NULL, 0);
			int w = 0, h = 0;
			cr_expect(a->status == 200 && png_ok((unsigned char *)a->body, a->len, &w, &h) && w > 0 && h > 0,
				  "%s is not a valid PNG (HTTP %ld, %zu bytes)", item, a->status, a->len);
			cr_expect(a->len == b->len && memcmp(a->body, b->body, a->len) == 0, "%s not deterministic", item);
			it_resp_free(a);
			it_resp_free(b);
		}
		char item[64];
		snprintf(item, sizeof(item), "thumbnail_character_%03d", want + 1);
		cr_expect(it_find_group(urls, item) == NULL, "persons-%d: a thumbnail too many", ns[i]);
		json_decref(l);
	}
	json_t *e = it_wait_done(ck, zero, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")) ?: "", "FAILURE", "nobody detected");
	cr_expect(strstr(json_string_value(json_object_get(json_object_get(e, "details"), "exc_message")) ?: "", "513"),
		  "nobody detected is error 513");
	json_decref(e);
}

/* ================================================================== multi-person: phase 2 */

/* tmpl with its "%s" marks replaced by a, b, a, b, ... (model ids). */
static void fill_models(char *out, size_t sz, const char *tmpl, const char *a, const char *b)
{
	size_t o = 0;
	int nth = 0;
	for (const char *p = tmpl; *p && o + 1 < sz; p++) {
		if (p[0] == '%' && p[1] == 's') {
			o += (size_t)snprintf(out + o, sz - o, "%s", nth++ % 2 ? b : a);
			p++;
			if (o >= sz)
				o = sz - 1;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

Test(fidelity, rid_mp_detection_models_forms_table, .timeout = 120)
{
	/* v2.0 Phase 2: models is "a json string" of detected person ids; the document shows them
	 * zero-padded and writes the value as a JS literal [{trackingId:'001', modelId:'...'}]. */
	char ck[COOKIE_MAX], rid[RID_MAX], m[RID_MAX], m2[RID_MAX];
	it_login(ck, sizeof(ck));
	stock_model(ck, 0, m, sizeof(m));
	stock_model(ck, 1, m2, sizeof(m2));
	it_new_job(ck, "forms-persons-3.mp4", "[\"pipeline=mp_detection\"]", rid, sizeof(rid));
	wait_status(it_base(), ck, rid, "SUCCESS");
	/* models value -> HTTP status; on success the tracked ids (as "NNN") */
	struct { const char *models; long status; const char *ids[3]; } cases[] = {
		{ "[{\"trackingId\":\"001\",\"modelId\":\"%s\"},{\"trackingId\":\"003\",\"modelId\":\"%s\"}]", 200,
		  { "001", "003" } },
		{ "[{\"trackingId\":2,\"modelId\":\"%s\"},{\"trackingId\":1,\"modelId\":\"%s\"}]", 200, { "002", "001" } },
		{ "[{trackingId:'001', modelId:'%s'}, {trackingId:'002', modelId:'%s'}, {trackingId:'003', modelId:'%s'}]",
		  200, { "001", "002", "003" } },
		{ "[{\"trackingId\":\"004\",\"modelId\":\"%s\"}]", 400, { NULL } },	/* not detected */
		{ "[{\"trackingId\":\"001\",\"modelId\":\"%s\"},{\"trackingId\":1,\"modelId\":\"%s\"}]", 400, { NULL } },
		{ "[{\"trackingId\":\"001\",\"modelId\":\"5Hn9mDRFqHUxd2KqG6QJsa\"}]", 400, { NULL } },
		{ NULL, 400, { NULL } },						/* no models at all */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char models[1024], param[1100];
		json_t *b = json_pack("{s:s, s:s, s:[s]}", "rid_mp_detection", rid, "processor", "video2anim",
				      "params", "formats=bvh,fbx,mp4");
		if (cases[i].models != NULL) {
			fill_models(models, sizeof(models), cases[i].models, m, m2);
			snprintf(param, sizeof(param), "models=%s", models);
			json_array_append_new(json_object_get(b, "params"), json_string(param));
		}
		char *t = json_dumps(b, JSON_COMPACT);
		struct it_resp *r = it_api("POST", "/process", ck, t);
		free(t);
		json_decref(b);
		if (cases[i].status != 200) {
			char what[64];
			snprintf(what, sizeof(what), "models case %zu", i);
			it_expect_error(r, cases[i].status, what);
			cr_expect_str_eq(json_string_value(json_object_get(r->json, "error")) ?: "", "503",
					 "case %zu: not a parameter error: %s", i, r->body ?: "");
			it_resp_free(r);
			continue;
		}
		cr_assert_eq(r->status, 200, "case %zu: HTTP %ld %s", i, r->status, r->body ?: "");
		cr_expect_str_eq(json_string_value(json_object_get(r->json, "rid")) ?: "", rid,
				 "case %zu: \"the returned rid [...] will be the same\"", i);
		it_resp_free(r);
		/* a second phase-2 request while this one runs is refused */
		b = json_pack("{s:s, s:[s]}", "rid_mp_detection", rid, "params", param);
		t = json_dumps(b, JSON_COMPACT);
		r = it_api("POST", "/process", ck, t);
		cr_expect_eq(r->status, 400, "case %zu: phase 2 on a running job: HTTP %ld", i, r->status);
		it_resp_free(r);
		free(t);
		json_decref(b);
		wait_status(it_base(), ck, rid, "SUCCESS");
		json_t *l = link_of(it_base(), ck, rid);
		cr_expect_eq(json_integer_value(json_object_get(l, "mode")), 1, "case %zu: mode", i);
		json_t *ml = json_object_get(l, "models");
		size_t n = 0;
		while (n < 3 && cases[i].ids[n])
			n++;
		cr_assert_eq(json_array_size(ml), n, "case %zu: models %s", i, json_dumps(ml, 0));
		for (size_t k = 0; k < n; k++) {
			json_t *e = json_array_get(ml, k);
			cr_expect(json_is_string(json_object_get(e, "trackingId")), "case %zu: trackingId not a string", i);
			cr_expect_str_eq(json_string_value(json_object_get(e, "trackingId")) ?: "", cases[i].ids[k],
					 "case %zu entry %zu", i, k);
			cr_expect(json_is_string(json_object_get(e, "modelId")), "case %zu: modelId", i);
			cr_expect(json_is_integer(json_object_get(e, "faceDataType")) &&
				  json_is_integer(json_object_get(e, "handDataType")), "case %zu: data types", i);
			/* one _NNN item per tracked person */
			bool found = false;
			size_t g;
			json_t *grp;
			char suffix[8];
			snprintf(suffix, sizeof(suffix), "_%s", cases[i].ids[k]);
			json_array_foreach(json_object_get(l, "urls"), g, grp) {
				const char *nm = json_string_value(json_object_get(grp, "name")) ?: "";
				if (strlen(nm) > 4 && !strcmp(nm + strlen(nm) - 4, suffix) && strncmp(nm, "thumbnail_", 10))
					found = true;
			}
			cr_expect(found, "case %zu: no item suffixed %s", i, suffix);
		}
		/* all_characters: one real zip per format, a member per tracked person */
		const char *exts[] = { "bvh", "fbx" };
		for (size_t x = 0; x < 2; x++) {
			const char *u = file_url(l, "all_characters", exts[x]);
			cr_assert(u != NULL, "case %zu: no all_characters %s", i, exts[x]);
			struct it_resp *z = it_http("GET", u, NULL, NULL, 0);
			struct zmember mem[ZIP_MEMBERS_MAX];
			char why[128] = "";
			int got = zip_read((unsigned char *)z->body, z->len, mem, ZIP_MEMBERS_MAX, why, sizeof(why));
			cr_expect_eq(got, (int)n, "case %zu: all_characters.%s: %d members (%s)", i, exts[x], got, why);
			for (int k = 0; k < got; k++) {
				char suffix[16];
				snprintf(suffix, sizeof(suffix), "_%s.%s", cases[i].ids[k], exts[x]);
				size_t nl = strlen(mem[k].name);
				cr_expect(nl > strlen(suffix) && !strcmp(mem[k].name + nl - strlen(suffix), suffix),
					  "case %zu: member %s, want *%s", i, mem[k].name, suffix);
				if (!strcmp(exts[x], "bvh"))
					cr_expect(mem[k].size > 9 && !memcmp(mem[k].data, "HIERARCHY", 9), "member %s is no BVH",
						  mem[k].name);
			}
			it_resp_free(z);
		}
		cr_expect(file_url(l, "characters_detection_result", "cdsave") != NULL,
			  "case %zu: the detection's cdsave left the rid", i);
		json_decref(l);
	}
	/* the list shows the same mode and models */
	struct it_resp *r = it_api("GET", "/list/SUCCESS", ck, NULL);
	size_t k;
	json_t *e;
	bool seen = false;
	json_array_foreach(json_object_get(it_ok_json(r, "list"), "list"), k, e) {
		if (strcmp(json_string_value(json_object_get(e, "rid")) ?: "", rid) != 0)
			continue;
		seen = true;
		cr_expect_eq(json_integer_value(json_object_get(e, "mode")), 1, "list mode");
		cr_expect_eq(json_array_size(json_object_get(e, "models")), 3, "list models: %s",
			     json_dumps(json_object_get(e, "models"), 0));
	}
	cr_expect(seen, "the multi-person job is not listed as SUCCESS");
	it_resp_free(r);

	/* "Rerun will be the same as before": a rerun of the multi-person job tracks the same persons */
	char body[256], rid2[RID_MAX];
	snprintf(body, sizeof(body), "{\"rid\":\"%s\",\"processor\":\"video2anim\",\"params\":[\"formats=bvh\"]}", rid);
	it_process_at(it_base(), ck, body, rid2, sizeof(rid2));
	cr_expect_str_neq(rid2, rid);
	wait_status(it_base(), ck, rid2, "SUCCESS");
	json_t *l = link_of(it_base(), ck, rid2);
	cr_expect_eq(json_integer_value(json_object_get(l, "mode")), 1, "rerun mode");
	cr_expect_eq(json_array_size(json_object_get(l, "models")), 3, "rerun models");
	json_decref(l);
	/* models on a plain video: nothing was detected, so no person can be named */
	char url[URL_MAX];
	it_upload_fixture_at(it_base(), ck, "plain.mp4", url, sizeof(url));
	json_t *b = json_pack("{s:s, s:[s]}", "url", url, "params", "models=[{trackingId:'001', modelId:'x'}]");
	char *t = json_dumps(b, JSON_COMPACT);
	r = it_api("POST", "/process", ck, t);
	it_expect_error(r, 400, "models without a detection");
	it_resp_free(r);
	free(t);
	json_decref(b);
}

/* ================================================================== single person: v2.0 fields, zips */

Test(fidelity, single_person_mode_models_and_fbx_zip_table, .timeout = 90)
{
	/* v2.0: a successful job's download link and list entry carry "mode" and "models"; a
	 * single-person job is mode 0 with one person "001". FBX downloads are zip archives (the
	 * official demo and the JS SDK save them as .fbx.zip). */
	char ck[COOKIE_MAX], m[RID_MAX];
	it_login(ck, sizeof(ck));
	stock_model(ck, 1, m, sizeof(m));
	char with_model[256];
	snprintf(with_model, sizeof(with_model), "[\"formats=bvh,fbx\",\"model=%s\",\"trackFace=1\",\"trackHand=1\"]", m);
	/* params -> modelId (NULL: JSON null), faceDataType, handDataType */
	struct { const char *params; const char *model; int face, hand; } cases[] = {
		{ "[\"formats=bvh,fbx\"]", NULL, 0, 0 },
		{ with_model, m, 1, 1 },
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	char rids[N][RID_MAX], running[RID_MAX];
	for (size_t i = 0; i < N; i++)
		it_new_job(ck, "single.mp4", cases[i].params, rids[i], sizeof(rids[i]));
	for (size_t i = 0; i < N; i++) {
		wait_status(it_base(), ck, rids[i], "SUCCESS");
		json_t *l = link_of(it_base(), ck, rids[i]);
		cr_expect(json_is_integer(json_object_get(l, "mode")) && json_integer_value(json_object_get(l, "mode")) == 0,
			  "case %zu: mode %s", i, json_dumps(json_object_get(l, "mode"), JSON_ENCODE_ANY));
		json_t *ml = json_object_get(l, "models");
		cr_assert_eq(json_array_size(ml), 1, "case %zu: models %s", i, json_dumps(ml, 0));
		json_t *e = json_array_get(ml, 0);
		cr_expect_str_eq(json_string_value(json_object_get(e, "trackingId")) ?: "", "001", "case %zu", i);
		if (cases[i].model)
			cr_expect_str_eq(json_string_value(json_object_get(e, "modelId")) ?: "", cases[i].model);
		else
			cr_expect(json_is_null(json_object_get(e, "modelId")), "case %zu: no model named: null", i);
		cr_expect_eq(json_integer_value(json_object_get(e, "faceDataType")), cases[i].face, "case %zu", i);
		cr_expect_eq(json_integer_value(json_object_get(e, "handDataType")), cases[i].hand, "case %zu", i);
		/* one item, the character's: no all_characters, no per-person items */
		cr_expect_eq(json_array_size(json_object_get(l, "urls")), 1, "case %zu: groups %s", i,
			     json_dumps(json_object_get(l, "urls"), 0));
		/* the FBX is a zip holding <item>.fbx, the same bytes every time */
		json_t *g0 = json_array_get(json_object_get(l, "urls"), 0);
		const char *item = json_string_value(json_object_get(g0, "name"));
		const char *fu = file_url(l, item, "fbx");
		cr_assert(fu != NULL, "case %zu: no fbx", i);
		struct it_resp *z = it_http("GET", fu, NULL, NULL, 0), *z2 = it_http("GET", fu, NULL, NULL, 0);
		char ct[128] = "", why[128] = "", want[256];
		it_hdr(z, "Content-Type", 0, ct, sizeof(ct));
		cr_expect_str_eq(ct, "application/zip", "case %zu: fbx Content-Type", i);
		struct zmember mem[ZIP_MEMBERS_MAX];
		int got = zip_read((unsigned char *)z->body, z->len, mem, ZIP_MEMBERS_MAX, why, sizeof(why));
		snprintf(want, sizeof(want), "%s.fbx", item);
		cr_expect(got == 1 && !strcmp(mem[0].name, want), "case %zu: fbx zip: %d members (%s)", i, got, why);
		if (got == 1)
			cr_expect(mem[0].size > 20 && !memcmp(mem[0].data, "Kaydara FBX Binary", 18),
				  "case %zu: the member is no FBX", i);
		cr_expect(z->len == z2->len && !memcmp(z->body, z2->body, z->len), "case %zu: fbx zip not deterministic", i);
		it_resp_free(z);
		it_resp_free(z2);
		json_decref(l);
	}
	/* list: SUCCESS entries carry mode and models, others do not */
	it_new_job(ck, "single-fail-513.mp4", NULL, running, sizeof(running));
	struct it_resp *r = it_api("GET", "/list", ck, NULL);
	size_t k;
	json_t *e;
	json_array_foreach(json_object_get(it_ok_json(r, "list"), "list"), k, e) {
		const char *st = json_string_value(json_object_get(e, "status")) ?: "";
		bool ok = !strcmp(st, "SUCCESS");
		cr_expect_eq(json_object_get(e, "mode") != NULL, ok, "%s entry mode: %s", st, json_dumps(e, 0));
		cr_expect_eq(json_object_get(e, "models") != NULL, ok, "%s entry models", st);
	}
	it_resp_free(r);
	json_decref(it_wait_done(ck, running, NULL));
}

/* ================================================================== pesave */

static json_t *pesave(const char *ck, const char *rid, long *status)
{
	char path[256];
	snprintf(path, sizeof(path), "/pesave/getUrls/%s", rid);
	struct it_resp *r = it_api("GET", path, ck, NULL);
	*status = r->status;
	json_t *o = r->status == 200 ? json_incref(r->json) : NULL;
	if (r->status == 200)
		cr_expect(json_is_array(o), "getUrls is not the documented bare array: %s", r->body ?: "");
	it_resp_free(r);
	return o;
}

Test(fidelity, pesave_get_urls_table, .timeout = 120)
{
	/* v2.0 PeSave API 1: [{"trackingId":"001","modifiedVersionReadUrl":null,
	 * "modifiedVersionWriteUrl":"<URL>"}, ...] "for single person or multi person jobs" */
	char ck[COOKIE_MAX], single[RID_MAX], mp[RID_MAX], det[RID_MAX], failed[RID_MAX], m[RID_MAX];
	it_login(ck, sizeof(ck));
	stock_model(ck, 0, m, sizeof(m));
	it_new_job(ck, "pe.mp4", "[\"formats=bvh\"]", single, sizeof(single));
	it_new_job(ck, "pe-persons-2.mp4", "[\"pipeline=mp_detection\"]", mp, sizeof(mp));
	it_new_job(ck, "pe-persons-4.mp4", "[\"pipeline=mp_detection\"]", det, sizeof(det));
	it_new_job(ck, "pe-fail-513.mp4", NULL, failed, sizeof(failed));
	long st;
	json_t *o = pesave(ck, single, &st);
	cr_expect_eq(st, 400, "getUrls of a running job: HTTP %ld", st);
	json_decref(o);
	wait_status(it_base(), ck, mp, "SUCCESS");
	char body[512], rid2[RID_MAX];
	snprintf(body, sizeof(body), "{\"rid_mp_detection\":\"%s\",\"params\":[\"formats=bvh\","
		 "\"models=[{trackingId:'001', modelId:'%s'},{trackingId:'002', modelId:'%s'}]\"]}", mp, m, m);
	it_process_at(it_base(), ck, body, rid2, sizeof(rid2));
	wait_status(it_base(), ck, single, "SUCCESS");
	wait_status(it_base(), ck, mp, "SUCCESS");
	wait_status(it_base(), ck, det, "SUCCESS");
	wait_status(it_base(), ck, failed, "FAILURE");
	/* rid -> HTTP status, tracking ids */
	struct { const char *rid; long status; const char *ids[3]; } cases[] = {
		{ single, 200, { "001" } },
		{ mp, 200, { "001", "002" } },
		{ det, 400, { NULL } },		/* a detection alone estimated no pose yet */
		{ failed, 400, { NULL } },
		{ "5Hn9mDRFqHUxd2KqG6QJsa", 404, { NULL } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		o = pesave(ck, cases[i].rid, &st);
		cr_expect_eq(st, cases[i].status, "case %zu: HTTP %ld", i, st);
		if (st != 200) {
			json_decref(o);
			continue;
		}
		size_t n = 0;
		while (n < 3 && cases[i].ids[n])
			n++;
		cr_assert_eq(json_array_size(o), n, "case %zu: %s", i, json_dumps(o, 0));
		for (size_t k = 0; k < n; k++) {
			json_t *e = json_array_get(o, k);
			cr_expect_eq(json_object_size(e), 3, "case %zu: fields %s", i, json_dumps(e, 0));
			cr_expect_str_eq(json_string_value(json_object_get(e, "trackingId")) ?: "", cases[i].ids[k]);
			cr_expect(json_is_null(json_object_get(e, "modifiedVersionReadUrl")),
				  "case %zu: nothing written yet, read URL must be null", i);
			const char *w = json_string_value(json_object_get(e, "modifiedVersionWriteUrl"));
			cr_assert(w != NULL, "case %zu: no write URL", i);
			it_check_signed_url(w, "modifiedVersionWriteUrl");
		}
		json_decref(o);
	}
	/* write the second person's pesave: its read URL appears, the first stays null */
	o = pesave(ck, mp, &st);
	char w[URL_MAX];
	snprintf(w, sizeof(w), "%s", json_string_value(json_object_get(json_array_get(o, 1), "modifiedVersionWriteUrl")));
	json_decref(o);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	struct it_resp *r = it_http("PUT", w, h, "modified-pose-002", 17);
	cr_expect_eq(r->status, 200, "PUT to the write URL: HTTP %ld", r->status);
	it_resp_free(r);
	o = pesave(ck, mp, &st);
	cr_expect(json_is_null(json_object_get(json_array_get(o, 0), "modifiedVersionReadUrl")), "001 stays null");
	const char *ru = json_string_value(json_object_get(json_array_get(o, 1), "modifiedVersionReadUrl"));
	cr_assert(ru != NULL, "002's read URL is still null after a PUT: %s", json_dumps(o, 0));
	it_check_signed_url(ru, "modifiedVersionReadUrl");
	r = it_http("GET", ru, NULL, NULL, 0);
	cr_expect(r->status == 200 && r->len == 17 && !memcmp(r->body, "modified-pose-002", 17),
		  "GET read URL: HTTP %ld, %zu bytes", r->status, r->len);
	it_resp_free(r);
	/* a tampered write URL is refused like any signed URL */
	char bad[URL_MAX];
	snprintf(bad, sizeof(bad), "%s", json_string_value(json_object_get(json_array_get(o, 0), "modifiedVersionWriteUrl")));
	char *sg = strstr(bad, "X-Goog-Signature=") + strlen("X-Goog-Signature=");
	*sg = *sg == '0' ? '1' : '0';
	r = it_http("PUT", bad, h, "x", 1);
	cr_expect_eq(r->status, 403, "tampered write URL: HTTP %ld", r->status);
	it_resp_free(r);
	json_decref(o);
}
