/*
 * Integration test of animate3d-sim over HTTP, against docs/upstream-api.md: sessions, uploads,
 * /process, /status (this file); downloads, lists, accounts, characters (it_outputs.c);
 * webhooks, bad input, CORS, /_sim/ controls (it_control.c); HTTP protocol robustness
 * (it_protocol.c); the issue 19 fidelity points: multi-person, pesave, v2.0 fields, zips,
 * auth strictness, /_sim/requests (it_fidelity.c). All are linked into one test_sim_http binary.
 *
 * Runs against the simulator named by A3D_SIM_URL (tests/lib/with-sim starts one with
 * --job-seconds 1). Tests that need other simulator flags (short session or URL lifetimes,
 * several accounts, credits, a storage dir) start their own instance from
 * A3D_BUILD_DIR/animate3d-sim on 127.0.0.1:0. Every wait is bounded in count and time.
 */
#define _GNU_SOURCE
#include "it_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== tests: session */

Test(session, auth_sets_first_cookie_with_path_expires_httponly_no_domain)
{
	char auth[512], url[URL_MAX];
	it_basic_header("demo-client-id:demo-client-secret", auth, sizeof(auth));
	snprintf(url, sizeof(url), "%s/session/auth", it_base());
	const char *h[] = { auth, NULL };
	struct it_resp *r = it_http("GET", url, h, NULL, 0);
	it_ok_json(r, "GET /session/auth");
	it_expect_json_ct(r, "GET /session/auth");
	cr_expect_str_eq(json_string_value(json_object_get(r->json, "message")) ?: "(none)", "authenticated",
			 "GET /session/auth body: %s", r->body);
	char sc[1024];
	cr_assert(it_hdr(r, "Set-Cookie", 0, sc, sizeof(sc)), "no Set-Cookie");
	cr_expect(strncmp(sc, "dmsess=", 7) == 0, "first Set-Cookie is not dmsess: %s", sc);
	size_t vl = strcspn(sc + 7, ";");
	cr_expect(vl > 0, "empty cookie value");
	for (size_t i = 0; i < vl; i++)
		cr_expect(strchr("=;, ", sc[7 + i]) == NULL, "cookie value has a forbidden char: %s", sc);
	/* attributes, case-insensitively, split on ';' */
	bool has_path = false, has_exp = false, has_http = false, has_domain = false;
	char attrs[1024];
	snprintf(attrs, sizeof(attrs), "%s", sc + 7 + vl);
	char *save = NULL;
	for (char *a = strtok_r(attrs, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
		while (*a == ' ')
			a++;
		if (strcasecmp(a, "Path=/") == 0)
			has_path = true;
		else if (strncasecmp(a, "Expires=", 8) == 0) {
			has_exp = true;
			time_t t = curl_getdate(a + 8, NULL);
			cr_expect(t > time(NULL), "Expires '%s' is not a future HTTP date", a + 8);
		} else if (strcasecmp(a, "HttpOnly") == 0)
			has_http = true;
		else if (strncasecmp(a, "Domain", 6) == 0)
			has_domain = true;
	}
	cr_expect(has_path, "Set-Cookie lacks Path=/: %s", sc);
	cr_expect(has_exp, "Set-Cookie lacks Expires: %s", sc);
	cr_expect(has_http, "Set-Cookie lacks HttpOnly: %s", sc);
	cr_expect(!has_domain, "Set-Cookie has a Domain: %s", sc);
	it_resp_free(r);
}

Test(session, cookie_forms_accepted_table)
{
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	char auth[512];
	it_basic_header("demo-client-id:demo-client-secret", auth, sizeof(auth));
	/* Cookie header = prefix + value + suffix, all accepted */
	struct { const char *prefix, *suffix; bool with_basic; } cases[] = {
		{ "Cookie: dmsess=", "", false },
		{ "Cookie: dmsess=", "; Path", false },          /* the JS SDK's split('=') */
		{ "Cookie: dmsess=", "; Path; Expires", false },
		{ "Cookie: other=1; dmsess=", "", false },
		{ "Cookie: dmsess=", "", true },                 /* Basic sent on every call */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char hc[COOKIE_MAX + 64], url[URL_MAX];
		snprintf(hc, sizeof(hc), "%s%s%s", cases[i].prefix, ck, cases[i].suffix);
		snprintf(url, sizeof(url), "%s/account/creditBalance", it_base());
		const char *h[] = { hc, cases[i].with_basic ? auth : NULL, NULL };
		struct it_resp *r = it_http("GET", url, h, NULL, 0);
		cr_expect_eq(r->status, 200, "case %zu '%s...%s'%s: HTTP %ld", i, cases[i].prefix, cases[i].suffix,
			     cases[i].with_basic ? " +Basic" : "", r->status);
		it_resp_free(r);
	}
}

Test(session, missing_or_garbage_cookie_is_401_json)
{
	const char *cases[] = {
		NULL,                                   /* no Cookie header */
		"Cookie: dmsess=",                      /* empty value */
		"Cookie: dmsess=notarealsession",
		"Cookie: dmsess=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"Cookie: other=1",
		"Cookie: ;;;==",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char url[URL_MAX], what[128];
		snprintf(url, sizeof(url), "%s/status/5Hn9mDRFqHUxd2KqG6QJsa", it_base());
		const char *h[] = { cases[i], NULL };
		struct it_resp *r = it_http("GET", url, cases[i] ? h : NULL, NULL, 0);
		snprintf(what, sizeof(what), "cookie case %zu (%s)", i, cases[i] ? cases[i] : "none");
		it_expect_error(r, 401, what);
		const char *m = json_string_value(json_object_get(r->json, "message"));
		cr_expect(m && strcasestr(m, "session"), "%s: message does not mention the session: %s",
			  what, m ? m : "(none)");
		it_resp_free(r);
	}
}

Test(session, bad_basic_variants_are_401_json)
{
	char wrong_secret[512], unknown_id[512], no_colon[512], empty_secret[512];
	it_basic_header("demo-client-id:wrong", wrong_secret, sizeof(wrong_secret));
	it_basic_header("nobody:demo-client-secret", unknown_id, sizeof(unknown_id));
	it_basic_header("demo-client-iddemo-client-secret", no_colon, sizeof(no_colon));
	it_basic_header("demo-client-id:", empty_secret, sizeof(empty_secret));
	const char *cases[] = {
		NULL,                              /* no Authorization */
		wrong_secret, unknown_id, no_colon, empty_secret,
		"Authorization: Basic",
		"Authorization: Basic !!!not-base64!!!",
		"Authorization: Bearer ZGVtby1jbGllbnQtaWQ6ZGVtby1jbGllbnQtc2VjcmV0",
		"Authorization: ZGVtby1jbGllbnQtaWQ6ZGVtby1jbGllbnQtc2VjcmV0",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char url[URL_MAX], what[160];
		snprintf(url, sizeof(url), "%s/session/auth", it_base());
		const char *h[] = { cases[i], NULL };
		struct it_resp *r = it_http("GET", url, cases[i] ? h : NULL, NULL, 0);
		snprintf(what, sizeof(what), "basic case %zu", i);
		it_expect_error(r, 401, what);
		char sc[256];
		cr_expect(!it_hdr(r, "Set-Cookie", 0, sc, sizeof(sc)) || strstr(sc, "dmsess=") == NULL ||
			  strncmp(sc, "dmsess=;", 8) == 0, "%s: a session cookie was issued: %s", what, sc);
		it_resp_free(r);
	}
}

Test(session, ttl_expiry_gives_401, .timeout = 30)
{
	struct it_sim sp;
	const char *args[] = { "--session-ttl", "1", NULL };
	it_sim_spawn(&sp, args);
	/* Expires says when the session ends: now + 1 s, give or take the clock's second */
	char auth[512], url[URL_MAX], sc[1024] = "";
	it_basic_header("demo-client-id:demo-client-secret", auth, sizeof(auth));
	snprintf(url, sizeof(url), "%s/session/auth", sp.base);
	const char *ha[] = { auth, NULL };
	struct it_resp *ar = it_http("GET", url, ha, NULL, 0);
	it_hdr(ar, "Set-Cookie", 0, sc, sizeof(sc));
	const char *ex = strcasestr(sc, "Expires=");
	char exv[64] = "";
	if (ex)
		snprintf(exv, sizeof(exv), "%.*s", (int)strcspn(ex + 8, ";"), ex + 8);
	time_t et = curl_getdate(exv, NULL), nowt = time(NULL);
	cr_expect(et >= nowt - 1 && et <= nowt + 3, "Expires '%s' is not about now + 1 s", exv);
	it_resp_free(ar);
	char ck[COOKIE_MAX];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	struct it_resp *r = it_api_at(sp.base, "GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "fresh session: HTTP %ld", r->status);
	it_resp_free(r);
	it_sleep_ms(2500);
	r = it_api_at(sp.base, "GET", "/account/creditBalance", ck, NULL);
	it_expect_error(r, 401, "session after --session-ttl 1 and 2.5 s");
	it_resp_free(r);
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	r = it_api_at(sp.base, "GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "re-login after expiry: HTTP %ld", r->status);
	it_resp_free(r);
	it_sim_stop(&sp);
}

/* ================================================================== tests: upload */

Test(upload, single_put_and_videoinfo_exact)
{
	char ck[COOKIE_MAX], url[URL_MAX];
	it_login(ck, sizeof(ck));
	it_upload_fixture_at(it_base(), ck, "tiny.mp4", url, sizeof(url));
	it_check_signed_url(url, "resumable=0 url");
	struct it_resp *r;
	json_t *o = it_video_info(ck, url, &r);
	it_expect_json_ct(r, "videoInfo");
	cr_expect_eq(json_number_value(it_field(o, "width", IT_NUM, "videoInfo")), FIXTURE_WIDTH,
		     "width: %s", r->body);
	cr_expect_eq(json_number_value(it_field(o, "height", IT_NUM, "videoInfo")), FIXTURE_HEIGHT,
		     "height: %s", r->body);
	double fps = json_number_value(it_field(o, "fps", IT_NUM, "videoInfo"));
	cr_expect(fps > FIXTURE_FPS - 0.01 && fps < FIXTURE_FPS + 0.01, "fps %g != %g", fps,
		  FIXTURE_FPS);
	double dur = json_number_value(it_field(o, "duration", IT_NUM, "videoInfo"));
	cr_expect(dur > FIXTURE_DURATION - 0.01 && dur < FIXTURE_DURATION + 0.01, "duration %g != %g",
		  dur, FIXTURE_DURATION);
	const char *codec = json_string_value(it_field(o, "codec", JSON_STRING, "videoInfo"));
	cr_expect(strcasecmp(codec, "h264") == 0 || strcasecmp(codec, "avc1") == 0,
		  "codec '%s' is neither h264 nor avc1", codec);
	cr_expect_eq(json_number_value(it_field(o, "size", IT_NUM, "videoInfo")), FIXTURE_SIZE,
		     "size: %s", r->body);
	it_resp_free(r);
}

Test(upload, filesize_param_tolerated_and_resumable_default_is_1)
{
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	struct it_resp *r = it_api("GET", "/upload?name=a.mp4&resumable=0&fileSize=2091", ck, NULL);
	json_t *o = it_ok_json(r, "upload with fileSize");
	it_check_signed_url(json_string_value(it_field(o, "url", JSON_STRING, "upload")), "fileSize url");
	it_resp_free(r);
	/* default resumable=1: a plain PUT fails like GCS, the start POST works */
	r = it_api("GET", "/upload?name=b.mp4", ck, NULL);
	o = it_ok_json(r, "upload default");
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s", json_string_value(it_field(o, "url", JSON_STRING, "upload")));
	it_resp_free(r);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", url, h, "abc", 3);
	cr_expect_eq(r->status, 400, "plain PUT to a default (resumable) url: HTTP %ld", r->status);
	it_resp_free(r);
	const char *hs[] = { "x-goog-resumable: start", NULL };
	r = it_http("POST", url, hs, "", 0);
	cr_expect_eq(r->status, 201, "resumable start on default url: HTTP %ld", r->status);
	it_resp_free(r);
	/* missing name */
	r = it_api("GET", "/upload?resumable=0", ck, NULL);
	cr_expect(r->status == 400, "upload without name: HTTP %ld", r->status);
	it_resp_free(r);
}

Test(upload, resumable_chunked_308_then_200)
{
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	size_t len;
	char *data = it_read_file(FIXTURE_MP4, &len);
	struct it_resp *r = it_api("GET", "/upload?name=chunked.mp4&resumable=1", ck, NULL);
	json_t *o = it_ok_json(r, "upload resumable=1");
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s", json_string_value(it_field(o, "url", JSON_STRING, "upload")));
	it_check_signed_url(url, "resumable=1 url");
	it_resp_free(r);

	/* plain PUT to the resumable URL: 400, as on GCS */
	const char *hp[] = { "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", url, hp, data, len);
	cr_expect_eq(r->status, 400, "plain PUT to resumable url: HTTP %ld", r->status);
	it_resp_free(r);

	const char *hs[] = { "x-goog-resumable: start", NULL };
	r = it_http("POST", url, hs, "", 0);
	cr_assert_eq(r->status, 201, "resumable start: HTTP %ld (%.200s)", r->status, r->body ?: "");
	char loc[URL_MAX];
	cr_assert(it_hdr(r, "Location", 0, loc, sizeof(loc)), "resumable start: no Location");
	it_resp_free(r);

	/* GCS status query before any byte: 308, no Range yet */
	char q[64];
	snprintf(q, sizeof(q), "Content-Range: bytes */%zu", len);
	const char *hq[] = { q, NULL };
	r = it_http("PUT", loc, hq, "", 0);
	cr_expect_eq(r->status, 308, "status query on a fresh session: HTTP %ld", r->status);
	it_resp_free(r);

	/* three chunks: two with an unknown total, the last with the total */
	size_t cuts[] = { 0, 700, 1400, len };
	for (size_t i = 0; i < 3; i++) {
		char cr_h[128];
		size_t a = cuts[i], b = cuts[i + 1] - 1;
		if (i < 2)
			snprintf(cr_h, sizeof(cr_h), "Content-Range: bytes %zu-%zu/*", a, b);
		else
			snprintf(cr_h, sizeof(cr_h), "Content-Range: bytes %zu-%zu/%zu", a, b, len);
		const char *h[] = { cr_h, "Content-Type: application/octet-stream", NULL };
		r = it_http("PUT", loc, h, data + a, b - a + 1);
		if (i == 0) {
			/* status query mid-way: 308 with what the server has */
			struct it_resp *sq = it_http("PUT", loc, hq, "", 0);
			char rg[128] = "", wq[128];
			snprintf(wq, sizeof(wq), "bytes=0-%zu", b);
			it_hdr(sq, "Range", 0, rg, sizeof(rg));
			cr_expect(sq->status == 308 && strcmp(rg, wq) == 0, "status query after chunk 0: HTTP %ld Range '%s'",
				  sq->status, rg);
			it_resp_free(sq);
		}
		if (i < 2) {
			cr_expect_eq(r->status, 308, "chunk %zu: HTTP %ld, expected 308", i, r->status);
			char range[128], want[128];
			snprintf(want, sizeof(want), "bytes=0-%zu", b);
			cr_expect(it_hdr(r, "Range", 0, range, sizeof(range)), "chunk %zu: 308 without Range", i);
			cr_expect(strcmp(range, want) == 0, "chunk %zu: Range '%s', expected '%s'", i, range, want);
		} else {
			cr_expect(r->status == 200 || r->status == 201, "last chunk: HTTP %ld", r->status);
		}
		it_resp_free(r);
	}
	/* the assembled object is the fixture: videoInfo reads its exact size and geometry */
	json_t *vi = it_video_info(ck, url, &r);
	cr_expect_eq(json_number_value(json_object_get(vi, "size")), (double)len, "assembled size: %s",
		     r->body);
	cr_expect_eq(json_number_value(json_object_get(vi, "width")), FIXTURE_WIDTH, "assembled width");
	it_resp_free(r);

	/* and a whole-body PUT to a fresh session works too */
	r = it_http("POST", url, hs, "", 0);
	cr_assert_eq(r->status, 201);
	cr_assert(it_hdr(r, "Location", 0, loc, sizeof(loc)));
	it_resp_free(r);
	r = it_http("PUT", loc, hp, data, len);
	cr_expect(r->status == 200 || r->status == 201, "whole PUT to session: HTTP %ld", r->status);
	it_resp_free(r);

	/* every byte sent with an unknown total, then an empty "bytes *\/<total>" finalizes (GCS) */
	r = it_http("POST", url, hs, "", 0);
	cr_assert_eq(r->status, 201);
	cr_assert(it_hdr(r, "Location", 0, loc, sizeof(loc)));
	it_resp_free(r);
	size_t half = len / 2;
	char c1[96], c2[96];
	snprintf(c1, sizeof(c1), "Content-Range: bytes 0-%zu/*", half - 1);
	snprintf(c2, sizeof(c2), "Content-Range: bytes %zu-%zu/*", half, len - 1);
	const char *h1[] = { c1, NULL }, *h2[] = { c2, NULL };
	r = it_http("PUT", loc, h1, data, half);
	cr_expect_eq(r->status, 308, "first half: HTTP %ld", r->status);
	it_resp_free(r);
	r = it_http("PUT", loc, h2, data + half, len - half);
	cr_expect_eq(r->status, 308, "second half with unknown total: HTTP %ld", r->status);
	it_resp_free(r);
	r = it_http("PUT", loc, hq, "", 0);
	cr_expect(r->status == 200 || r->status == 201, "finalizing status query: HTTP %ld", r->status);
	it_resp_free(r);
	vi = it_video_info(ck, url, &r);
	cr_expect_eq(json_number_value(json_object_get(vi, "size")), (double)len, "finalized size: %s", r->body);
	it_resp_free(r);
	free(data);
}

Test(upload, tampered_signature_is_403)
{
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	struct it_resp *r = it_api("GET", "/upload?name=t.mp4&resumable=0", ck, NULL);
	json_t *o = it_ok_json(r, "upload");
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s", json_string_value(it_field(o, "url", JSON_STRING, "upload")));
	it_resp_free(r);
	/* each variant -> 403 */
	char v[4][URL_MAX];
	for (int i = 0; i < 4; i++)
		snprintf(v[i], URL_MAX, "%s", url);
	char *s = strstr(v[0], "X-Goog-Signature=");                 /* flip one signature hex digit */
	cr_assert(s != NULL);
	s += strlen("X-Goog-Signature=");
	*s = *s == '0' ? '1' : '0';
	char *d = strstr(v[1], "X-Goog-Date=");                      /* move the date back a year */
	cr_assert(d != NULL);
	d += strlen("X-Goog-Date=") + 3;
	*d = *d == '0' ? '9' : (char)(*d - 1);
	char *e = strstr(v[2], "X-Goog-Expires=");                   /* stretch the lifetime */
	cr_assert(e != NULL);
	e += strlen("X-Goog-Expires=");
	*e = *e == '9' ? '8' : (char)(*e + 1);
	char *q = strchr(v[3], '?');                                 /* another object, same query */
	cr_assert(q != NULL && q > v[3] + 1);
	q[-1] = q[-1] == 'x' ? 'y' : 'x';
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	const char *names[] = { "signature flipped", "date changed", "expires changed", "object changed" };
	for (int i = 0; i < 4; i++) {
		r = it_http("PUT", v[i], h, "abc", 3);
		cr_expect_eq(r->status, 403, "%s: HTTP %ld", names[i], r->status);
		it_resp_free(r);
	}
	/* the untouched URL still works */
	r = it_http("PUT", url, h, "abc", 3);
	cr_expect_eq(r->status, 200, "untouched url: HTTP %ld", r->status);
	it_resp_free(r);
}

Test(upload, expired_url_is_403_and_storage_dir_holds_bytes, .timeout = 30)
{
	char dir[] = "/tmp/a3d-it-store.XXXXXX";
	cr_assert(mkdtemp(dir) != NULL);
	struct it_sim sp;
	const char *args[] = { "--url-ttl", "1", "--storage-dir", dir, NULL };
	it_sim_spawn(&sp, args);
	char ck[COOKIE_MAX], url[URL_MAX];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	it_upload_fixture_at(sp.base, ck, "stored.mp4", url, sizeof(url));
	/* the bytes are on disk under --storage-dir: some regular file there has the fixture's size */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "find %s -type f -size %dc | grep -q .", dir, FIXTURE_SIZE);
	cr_expect_eq(system(cmd), 0, "no file of %d bytes under --storage-dir %s", FIXTURE_SIZE, dir);
	struct it_resp *r = it_api_at(sp.base, "GET", "/upload?name=late.mp4&resumable=0", ck, NULL);
	json_t *o = it_ok_json(r, "upload");
	char late[URL_MAX];
	snprintf(late, sizeof(late), "%s", json_string_value(it_field(o, "url", JSON_STRING, "upload")));
	it_resp_free(r);
	cr_expect(strstr(late, "X-Goog-Expires=1&") || (strstr(late, "X-Goog-Expires=1") &&
		  strstr(late, "X-Goog-Expires=1")[16] == '\0'), "--url-ttl 1 not in X-Goog-Expires: %s", late);
	it_sleep_ms(2500);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", late, h, "abc", 3);
	cr_expect_eq(r->status, 403, "PUT after --url-ttl 1 and 2.5 s: HTTP %ld", r->status);
	it_resp_free(r);
	it_sim_stop(&sp);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

/* ================================================================== tests: process */

Test(process, url_job_rerun_and_not_found)
{
	char ck[COOKIE_MAX], rid[RID_MAX], rid2[RID_MAX], body[256];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "walk.mp4", "[\"formats=bvh\"]", rid, sizeof(rid));
	json_t *e = it_wait_done(ck, rid, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")), "SUCCESS");
	json_decref(e);
	snprintf(body, sizeof(body), "{\"rid\":\"%s\",\"processor\":\"video2anim\",\"params\":[\"formats=fbx\"]}", rid);
	it_process_at(it_base(), ck, body, rid2, sizeof(rid2));
	cr_expect_str_neq(rid, rid2, "rerun returned the same rid");
	e = it_wait_done(ck, rid2, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")), "SUCCESS");
	json_decref(e);
	/* v2.0 PeSave: a single-person job has one pesave, person "001" (it_fidelity.c has more) */
	char gpath[128];
	snprintf(gpath, sizeof(gpath), "/pesave/getUrls/%s", rid);
	struct it_resp *g = it_api("GET", gpath, ck, NULL);
	cr_expect(g->status == 200 && json_is_array(g->json) && json_array_size(g->json) == 1 &&
		  !strcmp(json_string_value(json_object_get(json_array_get(g->json, 0), "trackingId")) ?: "", "001"),
		  "getUrls of a single-person job: HTTP %ld %.300s", g->status, g->body ?: "");
	it_resp_free(g);

	/* not found: unknown rid, unknown url, no source at all */
	struct { const char *body; long status; } cases[] = {
		{ "{\"rid\":\"5Hn9mDRFqHUxd2KqG6QJsa\",\"processor\":\"video2anim\"}", 404 },
		{ "{\"url\":\"http://127.0.0.1:1/nothing.mp4\",\"processor\":\"video2anim\"}", 404 },
		{ "{\"rid_mp_detection\":\"5Hn9mDRFqHUxd2KqG6QJsa\",\"processor\":\"video2anim\"}", 404 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct it_resp *r = it_api("POST", "/process", ck, cases[i].body);
		char what[64];
		snprintf(what, sizeof(what), "process not-found case %zu", i);
		it_expect_error(r, cases[i].status, what);
		it_resp_free(r);
	}
	struct it_resp *r = it_api("POST", "/process", ck, "{\"processor\":\"video2anim\"}");
	cr_expect(r->status == 400 || r->status == 404, "process without url/rid: HTTP %ld", r->status);
	it_resp_free(r);
}

Test(process, invalid_params_table_400_error_503)
{
	char ck[COOKIE_MAX], url[URL_MAX];
	it_login(ck, sizeof(ck));
	it_upload_fixture_at(it_base(), ck, "params.mp4", url, sizeof(url));
	const char *bad[] = {
		"formats=xyz", "formats=bvh,avi", "formats=", "sim=2", "sim=yes",
		"render.camera=wide", "trackFace=2", "trackFace=yes", "trackHand=3",
		"footLockingMode=sometimes", "poseEstimation.footLockingMode=bad",
		"videoSpeedMultiplier=0.5", "videoSpeedMultiplier=8.5", "videoSpeedMultiplier=fast",
		"poseEstimation.videoSpeedMultiplier=9",
		"poseFilteringStrength=1.5", "poseFilteringStrength=-0.1",
		"poseEstimation.poseFilteringStrength=2",
		"rootAtOrigin=maybe", "upperBodyOnly=perhaps",
		"trim=5,2", "trim=-1,2", "trim=abc", "trim=3,3", "trim=1",
		"crop=0.5,0,0.4,1", "crop=0,0,1.5,1", "crop=0,0.5,1,0.5", "crop=0,0,1", "crop=-0.1,0,1,1",
		"render.sbs=2", "render.bgColor=256,0,0,0", "render.bgColor=1,2,3", "render.bgColor=-1,0,0,0",
		"render.backdrop=beach", "render.shadow=5", "render.includeAudio=2",
		"render.CamMode=3", "render.CamMode=-1", "pipeline=bogus", "models=notjson",
		/* docs/upstream-api.md, "What the simulator picks": unknown names and model ids */
		"unknownParam=1", "model=5Hn9mDRFqHUxd2KqG6QJsa",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = json_pack("{s:s, s:s, s:[s]}", "url", url, "processor", "video2anim",
				      "params", bad[i]);
		char *t = json_dumps(b, JSON_COMPACT);
		struct it_resp *r = it_api("POST", "/process", ck, t);
		char what[128];
		snprintf(what, sizeof(what), "param '%s'", bad[i]);
		it_expect_error(r, 400, what);
		cr_expect_str_eq(json_string_value(json_object_get(r->json, "error")) ?: "(none)", "503",
				 "%s: error is not \"503\": %.200s", what, r->body ?: "");
		const char *m = json_string_value(json_object_get(r->json, "message"));
		cr_expect(m && strstr(m, "Error processing the parameters"),
			  "%s: message lacks 'Error processing the parameters': %s", what, m ?: "(none)");
		it_resp_free(r);
		free(t);
		json_decref(b);
	}
}

Test(process, valid_params_accepted)
{
	char ck[COOKIE_MAX], url[URL_MAX];
	it_login(ck, sizeof(ck));
	it_upload_fixture_at(it_base(), ck, "okparams.mp4", url, sizeof(url));
	/* two jobs cover every documented name and boundary value; more would queue behind others */
	const char *sets[] = {
		"[\"config=configDefault\",\"formats=bvh,fbx,glb,mp4,png,jpg,dmpe\",\"sim=1\","
		"\"render.camera=closeup\",\"trackFace=1\",\"trackHand=0\",\"footLockingMode=grounding\","
		"\"videoSpeedMultiplier=1.0\",\"poseFilteringStrength=0.0\",\"rootAtOrigin=true\","
		"\"upperBodyOnly=false\",\"trim=0,1.5\",\"crop=0,0,1,1\",\"render.sbs=1\","
		"\"render.bgColor=0,177,64,0\",\"render.backdrop=studio\",\"render.shadow=1\","
		"\"render.includeAudio=0\",\"render.CamMode=2\"]",
		"[\"formats=bvh\",\"sim=0\",\"render.camera=fixed\",\"poseEstimation.footLockingMode=never\","
		"\"poseEstimation.videoSpeedMultiplier=8.0\",\"poseEstimation.poseFilteringStrength=1.0\","
		"\"rootAtOrigin=0\",\"upperBodyOnly=true\",\"crop=0.1,0.2,0.9,0.8\",\"trim=0.5,1\","
		"\"render.bgColor=255,255,255,255\",\"render.CamMode=0\"]",
	};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		json_t *b = json_pack("{s:s, s:s}", "url", url, "processor", "video2anim");
		json_object_set_new(b, "params", json_loads(sets[i], 0, NULL));
		char *t = json_dumps(b, JSON_COMPACT);
		struct it_resp *r = it_api("POST", "/process", ck, t);
		cr_expect_eq(r->status, 200, "valid set %zu rejected: HTTP %ld %.300s", i, r->status,
			     r->body ?: "");
		it_resp_free(r);
		free(t);
		json_decref(b);
	}
}

/* ================================================================== tests: status */

Test(status, progress_then_success_shapes)
{
	char ck[COOKIE_MAX], rid[RID_MAX];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "shape.mp4", "[\"formats=bvh\"]", rid, sizeof(rid));
	struct it_seen sn = { 0 };
	json_t *e = it_wait_done(ck, rid, &sn);
	cr_expect(sn.progress > 0, "never saw PROGRESS");
	cr_expect_eq(sn.step_back, 0, "PROGRESS step went down %d times between polls", sn.step_back);
	if (sn.first_progress) {
		it_field(sn.first_progress, "step", IT_NUM, "PROGRESS details");
		it_field(sn.first_progress, "total", IT_NUM, "PROGRESS details");
	}
	cr_assert_str_eq(json_string_value(it_field(e, "status", JSON_STRING, "entry")), "SUCCESS");
	cr_expect_str_eq(json_string_value(it_field(e, "rid", JSON_STRING, "entry")), rid);
	json_t *d = it_field(e, "details", JSON_OBJECT, "SUCCESS entry");
	it_field(d, "in", JSON_STRING, "SUCCESS details");
	it_field(d, "out", JSON_STRING, "SUCCESS details");
	json_decref(e);
	it_seen_free(&sn);
}

Test(status, queued_jobs_report_position_in_queue, .timeout = 90)
{
	char ck[COOKIE_MAX], rids[4][RID_MAX];
	it_login(ck, sizeof(ck));
	for (int i = 0; i < 4; i++)
		it_new_job(ck, "queue.mp4", "[\"formats=bvh\"]", rids[i], sizeof(rids[i]));
	char path[512];
	snprintf(path, sizeof(path), "/status/%s,%s,%s,%s", rids[0], rids[1], rids[2], rids[3]);
	struct it_resp *r = it_api("GET", path, ck, NULL);
	json_t *o = it_ok_json(r, "status of 4 fresh jobs");
	cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, "status")), 4);
	int queued = 0;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(o, "status"), i, e) {
		const char *st = json_string_value(json_object_get(e, "status"));
		if (st && strcmp(st, "PROGRESS") == 0) {
			json_t *d = it_field(e, "details", JSON_OBJECT, "PROGRESS");
			it_field(d, "step", IT_NUM, "PROGRESS details");
			it_field(d, "total", IT_NUM, "PROGRESS details");
			json_t *q = json_object_get(e, "positionInQueue");	/* beside details */
			if (q != NULL) {
				cr_expect(json_is_integer(q) && json_integer_value(q) >= 0,
					  "positionInQueue not a non-negative integer: %s", r->body);
				queued++;
			}
		}
	}
	cr_expect(queued > 0, "none of 4 jobs started back to back shows positionInQueue: %s", r->body);
	it_resp_free(r);
	for (int k = 0; k < 4; k++)
		json_decref(it_wait_done(ck, rids[k], NULL));
}

Test(status, multi_unknown_and_404)
{
	char ck[COOKIE_MAX], a[RID_MAX], b[RID_MAX], path[512];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "m1.mp4", NULL, a, sizeof(a));
	it_new_job(ck, "m2.mp4", NULL, b, sizeof(b));
	const char *unknown = "5Hn9mDRFqHUxd2KqG6QJsa";
	/* rids asked (A, B ours, U unknown) -> expected count */
	struct { const char *rids; int count; } cases[] = {
		{ "A,B", 2 },
		{ "A,B,U", 2 },
		{ "U,A", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t pl = (size_t)snprintf(path, sizeof(path), "/status/");
		for (const char *t = cases[i].rids; *t && pl < sizeof(path) - RID_MAX; t++) {
			const char *v = *t == 'A' ? a : *t == 'B' ? b : *t == 'U' ? unknown : ",";
			pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "%s", v);
		}
		struct it_resp *r = it_api("GET", path, ck, NULL);
		json_t *o = it_ok_json(r, path);
		cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, path)), cases[i].count,
			     "%s: %s", path, r->body);
		json_t *arr = it_field(o, "status", JSON_ARRAY, path);
		cr_expect_eq(json_array_size(arr), (size_t)cases[i].count, "%s: array size", path);
		size_t k;
		json_t *e;
		json_array_foreach(arr, k, e) {
			const char *rr = json_string_value(it_field(e, "rid", JSON_STRING, path));
			cr_expect(strcmp(rr, unknown) != 0, "%s: unknown rid listed", path);
			it_field(e, "status", JSON_STRING, path);
			it_field(e, "details", JSON_OBJECT, path);
		}
		it_resp_free(r);
	}
	struct it_resp *r = it_api("GET", "/status/5Hn9mDRFqHUxd2KqG6QJsa", ck, NULL);
	it_expect_error(r, 404, "status of only unknown rids");
	it_resp_free(r);
	r = it_api("GET", "/status/5Hn9mDRFqHUxd2KqG6QJsa,6Hn9mDRFqHUxd2KqG6QJsb", ck, NULL);
	it_expect_error(r, 404, "status of two unknown rids");
	it_resp_free(r);
	json_decref(it_wait_done(ck, a, NULL));
	json_decref(it_wait_done(ck, b, NULL));
}

Test(status, failure_hook_513_and_retry_hook)
{
	char ck[COOKIE_MAX], rid[RID_MAX], rid2[RID_MAX];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "clip-fail-513.mp4", NULL, rid, sizeof(rid));
	json_t *e = it_wait_done(ck, rid, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")), "FAILURE");
	json_t *d = it_field(e, "details", JSON_OBJECT, "FAILURE");
	const char *msg = json_string_value(it_field(d, "exc_message", JSON_STRING, "FAILURE details"));
	it_field(d, "exc_type", JSON_STRING, "FAILURE details");
	cr_expect(strstr(msg, "513") != NULL, "exc_message lacks 513: %s", msg);
	json_decref(e);

	it_new_job(ck, "clip-retry-508.mp4", NULL, rid2, sizeof(rid2));
	struct it_seen sn = { 0 };
	e = it_wait_done(ck, rid2, &sn);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")), "SUCCESS",
			 "retry-508 should end in SUCCESS");
	cr_expect(sn.retry > 0, "retry-508 never showed RETRY (polled every %d ms)", POLL_INTERVAL_MS);
	if (sn.first_retry) {
		const char *m = json_string_value(it_field(sn.first_retry, "exc_message", JSON_STRING, "RETRY"));
		it_field(sn.first_retry, "exc_type", JSON_STRING, "RETRY");
		cr_expect(strstr(m, "508") != NULL, "RETRY exc_message lacks 508: %s", m);
	}
	json_decref(e);
	it_seen_free(&sn);
}

Test(status, failure_codes_table, .timeout = 60)
{
	/* hook code -> words of its documented meaning that exc_message must carry */
	struct { int code; const char *meaning; } cases[] = {
		{ 101, "Not enough credits" },
		{ 201, "Error downloading the video" },
		{ 503, "Error processing the parameters" },
		{ 508, "requirements" },
		{ 513, "Failed to detect character" },
		{ 599, "Body tracking timeout" },
		{ 906, "blendshapes" },
		{ 1399, "Hand tracking timeout" },
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	char ck[COOKIE_MAX], rids[N][RID_MAX];
	it_login(ck, sizeof(ck));
	for (size_t i = 0; i < N; i++) {
		char name[64];
		snprintf(name, sizeof(name), "t-fail-%d.mp4", cases[i].code);
		it_new_job(ck, name, NULL, rids[i], sizeof(rids[i]));
	}
	for (size_t i = 0; i < N; i++) {
		json_t *e = it_wait_done(ck, rids[i], NULL);
		char code[16];
		snprintf(code, sizeof(code), "%d", cases[i].code);
		cr_expect_str_eq(json_string_value(json_object_get(e, "status")) ?: "", "FAILURE", "fail-%s", code);
		json_t *d = json_object_get(e, "details");
		const char *m = json_string_value(json_object_get(d, "exc_message")) ?: "";
		cr_expect(strstr(m, code) != NULL, "fail-%s: exc_message '%s' lacks the code", code, m);
		cr_expect(strcasestr(m, cases[i].meaning) != NULL, "fail-%s: exc_message '%s' lacks '%s'",
			  code, m, cases[i].meaning);
		/* docs: exc_type is ProcessingError, CreditError for 101 */
		cr_expect_str_eq(json_string_value(json_object_get(d, "exc_type")) ?: "(none)",
				 cases[i].code == 101 ? "CreditError" : "ProcessingError", "fail-%s: exc_type", code);
		json_decref(e);
	}
}
