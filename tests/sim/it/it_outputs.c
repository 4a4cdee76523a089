/* Simulator integration tests: /download, /list, /account, /character (see test_sim_http.c). */
#define _GNU_SOURCE
#include "it_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== tests: download */

/* Returns the url of ext in any group (first match), or NULL. */
static const char *find_file(json_t *urls, const char *ext)
{
	size_t i, k;
	json_t *g, *f;
	json_array_foreach(urls, i, g) {
		json_array_foreach(json_object_get(g, "files"), k, f) {
			json_t *u = json_object_get(f, ext);
			if (json_is_string(u))
				return json_string_value(u);
		}
	}
	return NULL;
}

Test(download, groups_files_and_a_real_bvh)
{
	char ck[COOKIE_MAX], rid[RID_MAX], path[256];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "dl.mp4", "[\"formats=bvh,fbx,glb,mp4,png,jpg,dmpe\"]", rid, sizeof(rid));
	json_decref(it_wait_done(ck, rid, NULL));
	snprintf(path, sizeof(path), "/download/%s", rid);
	struct it_resp *r = it_api("GET", path, ck, NULL);
	json_t *o = it_ok_json(r, "download");
	cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, "download")), 1);
	json_t *links = it_field(o, "links", JSON_ARRAY, "download");
	cr_assert_eq(json_array_size(links), 1);
	json_t *l = json_array_get(links, 0);
	cr_expect_str_eq(json_string_value(it_field(l, "rid", JSON_STRING, "link")), rid);
	cr_expect_str_eq(json_string_value(it_field(l, "name", JSON_STRING, "link")), "dl.mp4", "link name");
	cr_expect_eq(json_number_value(it_field(l, "size", IT_NUM, "link")), FIXTURE_SIZE, "link size");
	double ldur = json_number_value(it_field(l, "duration", IT_NUM, "link"));
	cr_expect(ldur > FIXTURE_DURATION - 0.01 && ldur < FIXTURE_DURATION + 0.01, "link duration %g", ldur);
	const char *lin = json_string_value(it_field(l, "input", JSON_STRING, "link"));
	cr_expect(strstr(lin, "dl.mp4") != NULL, "link input is not the uploaded video: %s", lin);
	json_t *urls = it_field(l, "urls", JSON_ARRAY, "link");
	cr_assert(json_array_size(urls) > 0, "no url groups");
	size_t i, k;
	json_t *g, *f;
	json_array_foreach(urls, i, g) {
		it_field(g, "name", JSON_STRING, "url group");
		json_t *files = it_field(g, "files", JSON_ARRAY, "url group");
		json_array_foreach(files, k, f) {
			cr_expect(json_is_object(f) && json_object_size(f) == 1,
				  "file entry is not a one-key {ext: url} object: %s", r->body);
			const char *key = json_object_iter_key(json_object_iter(f));
			cr_expect(json_is_string(json_object_iter_value(json_object_iter(f))),
				  "file %s url not a string", key);
		}
	}
	cr_expect(it_find_group(urls, "landmarks") != NULL, "dmpe requested but no 'landmarks' item: %s",
		  r->body);
	const char *exts[] = { "bvh", "fbx", "glb", "mp4" };
	for (i = 0; i < 4; i++)
		cr_expect(find_file(urls, exts[i]) != NULL, "no %s file in %s", exts[i], r->body);

	/* the BVH is a BVH */
	const char *bvh = find_file(urls, "bvh");
	cr_assert(bvh != NULL);
	struct it_resp *b = it_http("GET", bvh, NULL, NULL, 0);
	cr_assert_eq(b->status, 200, "GET bvh: HTTP %ld", b->status);
	cr_expect(b->len > 9 && strncmp(b->body, "HIERARCHY", 9) == 0, "bvh does not start with HIERARCHY");
	cr_expect(b->body && strstr(b->body, "ROOT") && strstr(b->body, "MOTION") &&
		  strstr(b->body, "Frames:") && strstr(b->body, "Frame Time:"),
		  "bvh lacks ROOT/MOTION/Frames/Frame Time");
	it_resp_free(b);
	/* placeholders: deterministic bytes, non-empty, a content type */
	const char *fbx = find_file(urls, "fbx");
	struct it_resp *f1 = it_http("GET", fbx, NULL, NULL, 0), *f2 = it_http("GET", fbx, NULL, NULL, 0);
	cr_expect_eq(f1->status, 200, "GET fbx: HTTP %ld", f1->status);
	cr_expect(f1->len > 0 && f1->len == f2->len && memcmp(f1->body, f2->body, f1->len) == 0,
		  "fbx bytes not deterministic");
	char ct[128];
	cr_expect(it_hdr(f1, "Content-Type", 0, ct, sizeof(ct)), "fbx has no Content-Type");
	it_resp_free(f1);
	it_resp_free(f2);

	/* output content types: ext -> accepted Content-Type prefixes */
	struct { const char *ext, *ct1, *ct2; } types[] = {
		{ "mp4", "video/mp4", NULL },
		{ "glb", "model/gltf-binary", "application/octet-stream" },
		{ "fbx", "application/zip", NULL },	/* an archive: clients save .fbx.zip */
		{ "bvh", "text/", "application/octet-stream" },
		{ "png", "image/png", NULL },
		{ "jpg", "image/jpeg", NULL },
	};
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const char *u = find_file(urls, types[i].ext);
		if (u == NULL)
			continue;
		struct it_resp *x = it_http("GET", u, NULL, NULL, 0);
		char got[128] = "";
		it_hdr(x, "Content-Type", 0, got, sizeof(got));
		cr_expect(x->status == 200 && x->len > 0, "GET %s: HTTP %ld, %zu bytes", types[i].ext,
			  x->status, x->len);
		cr_expect(strncasecmp(got, types[i].ct1, strlen(types[i].ct1)) == 0 ||
			  (types[i].ct2 && strncasecmp(got, types[i].ct2, strlen(types[i].ct2)) == 0),
			  "%s served as '%s'", types[i].ext, got);
		it_resp_free(x);
	}
	/* a tampered download signature is refused */
	char bad[URL_MAX];
	snprintf(bad, sizeof(bad), "%s", bvh);
	char *sg = strstr(bad, "X-Goog-Signature=");
	cr_assert(sg != NULL, "download url is not signed: %s", bvh);
	sg += strlen("X-Goog-Signature=");
	*sg = *sg == '0' ? '1' : '0';
	b = it_http("GET", bad, NULL, NULL, 0);
	cr_expect_eq(b->status, 403, "tampered download url: HTTP %ld", b->status);
	it_resp_free(b);
	it_resp_free(r);
}

Test(download, unfinished_failed_multi_and_unknown)
{
	char ck[COOKIE_MAX], ok[RID_MAX], bad[RID_MAX], run[RID_MAX], path[512];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "d1.mp4", NULL, ok, sizeof(ok));
	it_new_job(ck, "d2-fail-513.mp4", NULL, bad, sizeof(bad));
	json_decref(it_wait_done(ck, ok, NULL));
	json_decref(it_wait_done(ck, bad, NULL));
	it_new_job(ck, "d3.mp4", NULL, run, sizeof(run));
	snprintf(path, sizeof(path), "/download/%s,%s,%s", ok, bad, run);
	struct it_resp *r = it_api("GET", path, ck, NULL);
	json_t *o = it_ok_json(r, "download multi");
	cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, "download")), 3, "%s", r->body);
	size_t i;
	json_t *l;
	json_array_foreach(it_field(o, "links", JSON_ARRAY, "download"), i, l) {
		const char *lr = json_string_value(it_field(l, "rid", JSON_STRING, "link"));
		if (strcmp(lr, ok) == 0)
			it_field(l, "urls", JSON_ARRAY, "finished link");
		else
			cr_expect_eq(json_object_size(l), 1, "unfinished/failed link is not just {rid}: %s",
				     json_dumps(l, JSON_COMPACT));
	}
	it_resp_free(r);
	r = it_api("GET", "/download/5Hn9mDRFqHUxd2KqG6QJsa", ck, NULL);
	it_expect_error(r, 404, "download unknown rid");
	it_resp_free(r);
	json_decref(it_wait_done(ck, run, NULL));
}

/* ================================================================== tests: list and account */

Test(list, all_and_by_status)
{
	char ck[COOKIE_MAX], ok[RID_MAX], bad[RID_MAX];
	it_login(ck, sizeof(ck));
	it_new_job(ck, "l1.mp4", NULL, ok, sizeof(ok));
	it_new_job(ck, "l2-fail-513.mp4", NULL, bad, sizeof(bad));
	json_decref(it_wait_done(ck, ok, NULL));
	json_decref(it_wait_done(ck, bad, NULL));
	/* path -> must contain ok, must contain bad, allowed statuses */
	struct { const char *path; bool has_ok, has_bad; const char *allowed; } cases[] = {
		{ "/list", true, true, NULL },
		{ "/list/SUCCESS", true, false, "SUCCESS" },
		{ "/list/FAILURE", false, true, "FAILURE" },
		{ "/list/SUCCESS,FAILURE", true, true, "SUCCESS,FAILURE" },
		{ "/list/PROGRESS", false, false, "PROGRESS" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct it_resp *r = it_api("GET", cases[c].path, ck, NULL);
		json_t *o = it_ok_json(r, cases[c].path);
		json_t *list = it_field(o, "list", JSON_ARRAY, cases[c].path);
		cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, cases[c].path)),
			     (json_int_t)json_array_size(list), "%s: count != list size", cases[c].path);
		bool seen_ok = false, seen_bad = false;
		size_t i;
		json_t *e;
		json_array_foreach(list, i, e) {
			const char *rr = json_string_value(it_field(e, "rid", JSON_STRING, "list entry"));
			it_field(e, "fileName", JSON_STRING, "list entry");
			it_field(e, "fileSize", IT_NUM, "list entry");
			it_field(e, "fileDuration", IT_NUM, "list entry");
			const char *st = json_string_value(it_field(e, "status", JSON_STRING, "list entry"));
			double ct = json_number_value(it_field(e, "ctime", IT_NUM, "list entry"));
			double mt = json_number_value(it_field(e, "mtime", IT_NUM, "list entry"));
			cr_expect(ct > 1.6e12 && mt >= ct, "ctime/mtime not ms since epoch: %g %g", ct, mt);
			if (cases[c].allowed)
				cr_expect(strstr(cases[c].allowed, st) != NULL, "%s lists a %s job", cases[c].path, st);
			if (strcmp(rr, ok) == 0) {
				seen_ok = true;
				cr_expect_str_eq(json_string_value(json_object_get(e, "fileName")), "l1.mp4");
				cr_expect_eq(json_number_value(json_object_get(e, "fileSize")), FIXTURE_SIZE);
				double fd = json_number_value(json_object_get(e, "fileDuration"));
				cr_expect(fd > FIXTURE_DURATION - 0.01 && fd < FIXTURE_DURATION + 0.01,
					  "fileDuration %g", fd);
				cr_expect_str_eq(st, "SUCCESS");
			}
			if (strcmp(rr, bad) == 0)
				seen_bad = true;
		}
		cr_expect_eq(seen_ok, cases[c].has_ok, "%s: success job listed=%d", cases[c].path, seen_ok);
		cr_expect_eq(seen_bad, cases[c].has_bad, "%s: failed job listed=%d", cases[c].path, seen_bad);
		it_resp_free(r);
	}
}

static double credits_at(const char *base, const char *ck)
{
	struct it_resp *r = it_api_at(base, "GET", "/account/creditBalance", ck, NULL);
	json_t *o = it_ok_json(r, "creditBalance");
	double c = json_number_value(it_field(o, "credits", IT_NUM, "creditBalance"));
	it_resp_free(r);
	return c;
}

Test(account, credits_decrease_and_minutes)
{
	char ck[COOKIE_MAX], rid[RID_MAX];
	it_login(ck, sizeof(ck));
	double before = credits_at(it_base(), ck);
	it_new_job(ck, "credit.mp4", NULL, rid, sizeof(rid));
	json_decref(it_wait_done(ck, rid, NULL));
	double after = credits_at(it_base(), ck);
	cr_expect(after < before, "credits did not go down after a job: %g -> %g", before, after);
	struct it_resp *r = it_api("GET", "/account/minutesBalance", ck, NULL);
	json_t *o = it_ok_json(r, "minutesBalance");
	double min = json_number_value(it_field(o, "minutes", IT_NUM, "minutesBalance"));
	/* docs: minutes = credits / 60, floored to two decimals */
	double want = floor(after / 60.0 * 100.0) / 100.0;
	cr_expect(min > want - 0.001 && min < want + 0.001, "minutes %g for %g credits, want %g", min, after, want);
	it_resp_free(r);
}

Test(account, not_enough_credits_fails_with_101, .timeout = 60)
{
	/* --credits 3, a 2 s video costs 2: the first job succeeds, the second fails with 101 and
	 * costs nothing */
	struct it_sim sp;
	const char *args[] = { "--credits", "3", "--job-seconds", "1", NULL };
	it_sim_spawn(&sp, args);
	char ck[COOKIE_MAX], a[RID_MAX], b[RID_MAX];
	it_login_at(sp.base, "demo-client-id", "demo-client-secret", ck, sizeof(ck));
	cr_expect_eq(credits_at(sp.base, ck), 3);
	it_new_job_at(sp.base, ck, "c1.mp4", NULL, a, sizeof(a));
	json_t *e = it_wait_done_at(sp.base, ck, a, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")) ?: "", "SUCCESS");
	json_decref(e);
	double left = credits_at(sp.base, ck);
	cr_expect(left < 3 && left >= 0, "credits after one job: %g", left);
	it_new_job_at(sp.base, ck, "c2.mp4", NULL, b, sizeof(b));
	e = it_wait_done_at(sp.base, ck, b, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(e, "status")) ?: "", "FAILURE",
			 "a job without enough credits");
	const char *m = json_string_value(json_object_get(json_object_get(e, "details"), "exc_message")) ?: "";
	cr_expect(strstr(m, "101") != NULL, "no-credit failure without code 101: %s", m);
	json_decref(e);
	cr_expect_eq(credits_at(sp.base, ck), left, "a failed job was charged");
	it_sim_stop(&sp);
}

Test(account, credits_flag_accounts_are_isolated_and_sign_webhooks, .timeout = 60)
{
	struct it_sim sp;
	const char *args[] = { "--credits", "500", "--account", "team-a:sa", "--account", "team-b:sb",
			       "--job-seconds", "1", NULL };
	it_sim_spawn(&sp, args);
	char ca[COOKIE_MAX], cb[COOKIE_MAX], rid[RID_MAX], path[256], hid[128], hurl[128];
	it_login_at(sp.base, "team-a", "sa", ca, sizeof(ca));
	it_login_at(sp.base, "team-b", "sb", cb, sizeof(cb));
	cr_expect_eq(credits_at(sp.base, ca), 500, "--credits 500 not applied to team-a");
	cr_expect_eq(credits_at(sp.base, cb), 500, "--credits 500 not applied to team-b");
	/* cross secret rejected */
	char auth[256], url[URL_MAX];
	it_basic_header("team-a:sb", auth, sizeof(auth));
	snprintf(url, sizeof(url), "%s/session/auth", sp.base);
	const char *h[] = { auth, NULL };
	struct it_resp *r = it_http("GET", url, h, NULL, 0);
	it_expect_error(r, 401, "team-a with team-b's secret");
	it_resp_free(r);

	struct it_hook_rx rx;
	it_hook_start(&rx, 0);
	snprintf(hurl, sizeof(hurl), "http://127.0.0.1:%d/hook-a", rx.port);
	it_hook_register_at(sp.base, ca, hurl, hid, sizeof(hid));
	it_new_job_at(sp.base, ca, "a.mp4", NULL, rid, sizeof(rid));
	json_decref(it_wait_done_at(sp.base, ca, rid, NULL));
	/* team-b cannot see team-a's job */
	snprintf(path, sizeof(path), "/status/%s", rid);
	r = it_api_at(sp.base, "GET", path, cb, NULL);
	it_expect_error(r, 404, "team-b reading team-a's job");
	it_resp_free(r);
	snprintf(path, sizeof(path), "/download/%s", rid);
	r = it_api_at(sp.base, "GET", path, cb, NULL);
	cr_expect_eq(r->status, 404, "team-b downloading team-a's job: HTTP %ld", r->status);
	it_resp_free(r);
	r = it_api_at(sp.base, "GET", "/list", cb, NULL);
	cr_expect(r->body && strstr(r->body, rid) == NULL, "team-b's /list shows team-a's job");
	it_resp_free(r);
	r = it_api_at(sp.base, "GET", "/webhook_endpoints", cb, NULL);
	cr_expect(r->body && strstr(r->body, hid) == NULL, "team-b's webhooks show team-a's endpoint");
	it_resp_free(r);
	/* team-b cannot read, change or delete team-a's webhook endpoint */
	char hpath[256];
	snprintf(hpath, sizeof(hpath), "/webhook_endpoints/%s", hid);
	struct { const char *method, *body; } hw[] = {
		{ "GET", NULL }, { "POST", "{\"url\":\"http://127.0.0.1:9/stolen\"}" }, { "DELETE", NULL },
	};
	for (size_t i = 0; i < 3; i++) {
		r = it_api_at(sp.base, hw[i].method, hpath, cb, hw[i].body);
		cr_expect_eq(r->status, 404, "team-b %s team-a's endpoint: HTTP %ld", hw[i].method, r->status);
		it_resp_free(r);
	}
	r = it_api_at(sp.base, "GET", hpath, ca, NULL);
	cr_expect(r->status == 200 && r->json &&
		  !strcmp(json_string_value(json_object_get(r->json, "url")) ?: "", hurl),
		  "team-a's endpoint changed by team-b: %s", r->body ?: "");
	it_resp_free(r);
	/* team-b cannot delete team-a's model */
	char mu[URL_MAX], mid[RID_MAX], mbody[URL_MAX + 64];
	r = it_api_at(sp.base, "GET", "/character/getModelUploadUrl?name=am&modelExt=fbx&resumable=0", ca, NULL);
	snprintf(mu, sizeof(mu), "%s", json_string_value(json_object_get(it_ok_json(r, "model url"), "modelUrl")) ?: "");
	it_resp_free(r);
	const char *hp[] = { "Content-Type: application/octet-stream", NULL };
	it_resp_free(it_http("PUT", mu, hp, "fbx", 3));
	snprintf(mbody, sizeof(mbody), "{\"modelUrl\":\"%s\",\"modelName\":\"am\"}", mu);
	r = it_api_at(sp.base, "POST", "/character/storeModel", ca, mbody);
	snprintf(mid, sizeof(mid), "%s", json_string_value(json_object_get(it_ok_json(r, "store"), "modelId")) ?: "");
	it_resp_free(r);
	snprintf(hpath, sizeof(hpath), "/character/deleteModel/%s", mid);
	r = it_api_at(sp.base, "DELETE", hpath, cb, NULL);
	cr_expect(r->status == 404 || json_integer_value(json_object_get(r->json, "count")) == 0,
		  "team-b deleted team-a's model: %s", r->body ?: "");
	it_resp_free(r);
	r = it_api_at(sp.base, "GET", "/character/listModels", cb, NULL);
	cr_expect(r->body && strstr(r->body, mid) == NULL, "team-b lists team-a's model");
	it_resp_free(r);
	r = it_api_at(sp.base, "GET", "/character/listModels", ca, NULL);
	cr_expect(r->body && strstr(r->body, mid) != NULL, "team-a's model gone after team-b's delete");
	it_resp_free(r);
	cr_expect(credits_at(sp.base, ca) < 500, "team-a's credits did not go down");
	cr_expect_eq(credits_at(sp.base, cb), 500, "team-b's credits moved with team-a's job");
	struct it_hook_delivery d;
	cr_expect(it_hook_wait_for(&rx, rid, 200, 1, HOOK_WAIT_S, &d, NULL) == 1,
		  "team-a's webhook never arrived");
	cr_expect_str_eq(d.sig, "team-a", "X-DeepMotion-Signature is not the client id");
	it_hook_stop(&rx);
	it_sim_stop(&sp);
}

/* ================================================================== tests: characters */

static json_t *model_in_list(json_t *body, const char *id)
{
	json_t *list = json_is_array(body) ? body : json_object_get(body, "list");
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m) {
		const char *mid = json_string_value(json_object_get(m, "id")) ?:
				  json_string_value(json_object_get(m, "Id"));
		if (mid && strcmp(mid, id) == 0)
			return m;
	}
	return NULL;
}

static void model_upload_urls(const char *ck, const char *query, char *murl, char *turl)
{
	char path[512];
	snprintf(path, sizeof(path), "/character/getModelUploadUrl?%s", query);
	struct it_resp *r = it_api("GET", path, ck, NULL);
	json_t *o = it_ok_json(r, "getModelUploadUrl");
	snprintf(murl, URL_MAX, "%s", json_string_value(it_field(o, "modelUrl", JSON_STRING, "getModelUploadUrl")));
	snprintf(turl, URL_MAX, "%s", json_string_value(it_field(o, "thumbUrl", JSON_STRING, "getModelUploadUrl")));
	it_check_signed_url(murl, "modelUrl");
	it_check_signed_url(turl, "thumbUrl");
	it_resp_free(r);
}

Test(characters, upload_store_list_update_delete)
{
	char ck[COOKIE_MAX], murl[URL_MAX], turl[URL_MAX], id[RID_MAX], body[URL_MAX * 3];
	it_login(ck, sizeof(ck));
	model_upload_urls(ck, "name=hero&modelExt=fbx&thumbExt=png&resumable=0", murl, turl);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	struct it_resp *r = it_http("PUT", murl, h, "Kaydara FBX Binary  \0fake", 25);
	cr_expect_eq(r->status, 200, "PUT model: HTTP %ld", r->status);
	it_resp_free(r);
	r = it_http("PUT", turl, h, "\x89PNG\r\n\x1a\n", 8);
	cr_expect_eq(r->status, 200, "PUT thumb: HTTP %ld", r->status);
	it_resp_free(r);
	json_t *b = json_pack("{s:s, s:s, s:s}", "modelUrl", murl, "modelName", "hero", "thumbUrl", turl);
	char *t = json_dumps(b, JSON_COMPACT);
	snprintf(body, sizeof(body), "%s", t);
	free(t);
	json_decref(b);
	r = it_api("POST", "/character/storeModel", ck, body);
	json_t *o = it_ok_json(r, "storeModel");
	snprintf(id, sizeof(id), "%s", json_string_value(it_field(o, "modelId", JSON_STRING, "storeModel")));
	cr_expect(it_is_id(id), "modelId '%s' not 22-char base58", id);
	it_resp_free(r);

	/* custom list: ours, no stock */
	r = it_api("GET", "/character/listModels", ck, NULL);
	cr_assert_eq(r->status, 200);
	json_t *m = model_in_list(r->json, id);
	cr_expect(m != NULL, "stored model missing from listModels: %s", r->body);
	if (m) {
		cr_expect_str_eq(json_string_value(json_object_get(m, "name")) ?: "", "hero");
		cr_expect(json_is_string(json_object_get(m, "thumb")), "model has no thumb: %s", r->body);
		cr_expect(json_object_get(m, "ctime") && json_object_get(m, "mtime"), "no ctime/mtime");
		cr_expect(json_object_get(m, "rigId") != NULL, "no rigId");
		cr_expect_str_eq(json_string_value(json_object_get(m, "platform")) ?: "(none)", "custom",
				 "custom model platform (docs: \"custom\")");
	}
	json_t *list = json_is_array(r->json) ? r->json : json_object_get(r->json, "list");
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
		cr_expect(json_object_get(e, "platform") == NULL ||
			  !strcmp(json_string_value(json_object_get(e, "platform")) ?: "", "custom") ||
			  model_in_list(r->json, id) == e,
			  "listModels without stockModel lists a stock model: %s", json_dumps(e, 0));
	size_t custom_n = json_array_size(list);
	it_resp_free(r);

	/* stockModel=all: ours plus deepmotion and roblox stock models */
	r = it_api("GET", "/character/listModels?stockModel=all", ck, NULL);
	cr_assert_eq(r->status, 200);
	list = json_is_array(r->json) ? r->json : json_object_get(r->json, "list");
	cr_expect(json_array_size(list) > custom_n, "stockModel=all adds nothing");
	cr_expect(model_in_list(r->json, id) != NULL, "stockModel=all lost the custom model");
	bool dm = false, rb = false;
	json_array_foreach(list, i, e) {
		const char *p = json_string_value(json_object_get(e, "platform"));
		if (p && !strcmp(p, "deepmotion")) dm = true;
		if (p && !strcmp(p, "roblox")) rb = true;
	}
	cr_expect(dm && rb, "stock platforms deepmotion=%d roblox=%d", dm, rb);
	/* stock models cannot be deleted: count 0 and still listed */
	json_t *stock = NULL;
	json_array_foreach(list, i, e) {
		if (json_object_get(e, "platform") && model_in_list(r->json, id) != e)
			stock = e;
	}
	cr_assert(stock != NULL);
	char sid[RID_MAX], spath[256];
	snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(stock, "id")) ?:
		 json_string_value(json_object_get(stock, "Id")) ?: "");
	size_t all_n = json_array_size(list);
	it_resp_free(r);
	snprintf(spath, sizeof(spath), "/character/deleteModel/%s", sid);
	r = it_api("DELETE", spath, ck, NULL);
	cr_expect_eq(json_integer_value(json_object_get(r->json, "count")), 0,
		     "deleting stock model %s: %s", sid, r->body ?: "");
	it_resp_free(r);
	r = it_api("GET", "/character/listModels?stockModel=all", ck, NULL);
	list = json_is_array(r->json) ? r->json : json_object_get(r->json, "list");
	cr_expect_eq(json_array_size(list), all_n, "a stock model delete changed the list");
	it_resp_free(r);

	/* modelId and searchToken filters */
	char path[512];
	snprintf(path, sizeof(path), "/character/listModels?modelId=%s", id);
	r = it_api("GET", path, ck, NULL);
	list = json_is_array(r->json) ? r->json : json_object_get(r->json, "list");
	cr_expect(json_array_size(list) == 1 && model_in_list(r->json, id), "modelId filter: %s", r->body);
	it_resp_free(r);
	r = it_api("GET", "/character/listModels?searchToken=her", ck, NULL);
	cr_expect(model_in_list(r->json, id) != NULL, "searchToken=her misses 'hero': %s", r->body);
	it_resp_free(r);
	r = it_api("GET", "/character/listModels?searchToken=zzzz-nothing", ck, NULL);
	cr_expect(model_in_list(r->json, id) == NULL, "searchToken=zzzz-nothing finds 'hero'");
	it_resp_free(r);

	/* update by modelId: same id, new name */
	snprintf(body, sizeof(body), "{\"modelId\":\"%s\",\"modelName\":\"villain\"}", id);
	r = it_api("POST", "/character/storeModel", ck, body);
	o = it_ok_json(r, "storeModel update");
	cr_expect_str_eq(json_string_value(json_object_get(o, "modelId")) ?: "", id);
	it_resp_free(r);
	r = it_api("GET", path, ck, NULL);
	m = model_in_list(r->json, id);
	cr_expect(m && !strcmp(json_string_value(json_object_get(m, "name")) ?: "", "villain"),
		  "rename not applied: %s", r->body);
	it_resp_free(r);

	/* delete: count 1, then 0, then gone */
	snprintf(path, sizeof(path), "/character/deleteModel/%s", id);
	int want[] = { 1, 0 };
	for (int k = 0; k < 2; k++) {
		r = it_api("DELETE", path, ck, NULL);
		o = it_ok_json(r, "deleteModel");
		cr_expect_eq(json_integer_value(it_field(o, "count", JSON_INTEGER, "deleteModel")), want[k],
			     "delete #%d: %s", k + 1, r->body);
		it_resp_free(r);
	}
	r = it_api("GET", "/character/listModels", ck, NULL);
	cr_expect(model_in_list(r->json, id) == NULL, "deleted model still listed");
	it_resp_free(r);
}

Test(characters, resumable_upload_and_create_thumb)
{
	char ck[COOKIE_MAX], murl[URL_MAX], turl[URL_MAX], loc[URL_MAX], id[RID_MAX], body[URL_MAX + 256];
	it_login(ck, sizeof(ck));
	model_upload_urls(ck, "name=robot&modelExt=glb&resumable=1", murl, turl);
	const char *hs[] = { "x-goog-resumable: start", NULL };
	struct it_resp *r = it_http("POST", murl, hs, "", 0);
	cr_assert_eq(r->status, 201, "model resumable start: HTTP %ld", r->status);
	cr_assert(it_hdr(r, "Location", 0, loc, sizeof(loc)));
	it_resp_free(r);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", loc, h, "glTF-fake-bytes", 15);
	cr_expect(r->status == 200 || r->status == 201, "model PUT: HTTP %ld", r->status);
	it_resp_free(r);
	json_t *b = json_pack("{s:s, s:s, s:i}", "modelUrl", murl, "modelName", "robot", "createThumb", 1);
	char *t = json_dumps(b, JSON_COMPACT);
	snprintf(body, sizeof(body), "%s", t);
	free(t);
	json_decref(b);
	r = it_api("POST", "/character/storeModel", ck, body);
	json_t *o = it_ok_json(r, "storeModel createThumb");
	snprintf(id, sizeof(id), "%s", json_string_value(it_field(o, "modelId", JSON_STRING, "storeModel")));
	it_resp_free(r);
	char path[256];
	snprintf(path, sizeof(path), "/character/listModels?modelId=%s", id);
	r = it_api("GET", path, ck, NULL);
	json_t *m = model_in_list(r->json, id);
	cr_expect(m != NULL, "model not listed: %s", r->body);
	const char *th = m ? json_string_value(json_object_get(m, "thumb")) : NULL;
	cr_expect(th && *th, "createThumb=1 gave no thumb: %s", r->body);
	it_resp_free(r);
	/* the store of a never-uploaded URL fails */
	r = it_api("POST", "/character/storeModel", ck,
		"{\"modelUrl\":\"http://127.0.0.1:1/none.fbx\",\"modelName\":\"x\"}");
	cr_expect(r->status == 400 || r->status == 404, "storeModel of a bogus url: HTTP %ld", r->status);
	it_resp_free(r);
	snprintf(path, sizeof(path), "/character/deleteModel/%s", id);
	it_resp_free(it_api("DELETE", path, ck, NULL));
}

