/* it_support: shared helpers of the simulator integration tests (see it_support.h). */
#define _GNU_SOURCE
#include "it_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ small utilities */

double it_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void it_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

const char *it_base(void)
{
	const char *u = getenv("A3D_SIM_URL");
	cr_assert(u != NULL && *u, "A3D_SIM_URL is not set: run through tests/lib/with-sim");
	return u;
}

char *it_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f != NULL, "cannot open %s: %s", path, strerror(errno));
	cr_assert(fseek(f, 0, SEEK_END) == 0);
	long n = ftell(f);
	cr_assert(n >= 0);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	cr_assert(buf != NULL);
	cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

bool it_is_id(const char *s)
{
	static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
	if (s == NULL || strlen(s) != 22)
		return false;
	for (const char *p = s; *p; p++)
		if (strchr(b58, *p) == NULL)
			return false;
	return true;
}

/* ------------------------------------------------------------------ HTTP client (curl easy) */


size_t it_resp_body_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct it_resp *r = ud;
	size_t k = sz * n;
	if (r->len + k > HTTP_BODY_MAX)
		return 0;
	char *nb = realloc(r->body, r->len + k + 1);
	if (nb == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

static size_t resp_hdr_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct it_resp *r = ud;
	size_t k = sz * n;
	if (k >= 5 && strncmp(p, "HTTP/", 5) == 0)
		r->hlen = 0;    /* a new response starts (after 100 Continue) */
	if (r->hlen + k + 1 > HTTP_HDR_MAX)
		return 0;
	memcpy(r->hdr + r->hlen, p, k);
	r->hlen += k;
	r->hdr[r->hlen] = '\0';
	return k;
}

void it_resp_free(struct it_resp *r)
{
	if (r == NULL)
		return;
	json_decref(r->json);
	free(r->body);
	free(r->hdr);
	free(r);
}

/*
 * One request. hdrs is NULL-terminated (may be NULL). body NULL sends none; otherwise blen bytes
 * (0 allowed). Never asserts on the transfer: callers check r->cc and r->status.
 */
struct it_resp *it_http(const char *method, const char *url, const char *const *hdrs,
			 const void *body, size_t blen)
{
	struct it_resp *r = calloc(1, sizeof(*r));
	cr_assert(r != NULL);
	r->hdr = calloc(1, HTTP_HDR_MAX);
	cr_assert(r->hdr != NULL);
	CURL *c = curl_easy_init();
	cr_assert(c != NULL);
	struct curl_slist *hl = NULL;
	hl = curl_slist_append(hl, "Expect:");
	for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
		hl = curl_slist_append(hl, hdrs[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, it_resp_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, blen ? body : "");
	}
	double t0 = it_now();
	r->cc = curl_easy_perform(c);
	r->secs = it_now() - t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	if (r->body != NULL && r->len > 0)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	return r;
}

/* Copies the value of the nth (0-based) header called name into out; false if absent. */
bool it_hdr(const struct it_resp *r, const char *name, int nth, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	const char *p = r->hdr;
	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);
		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			if (nth-- == 0) {
				const char *v = p + nl + 1;
				while (*v == ' ' || *v == '\t')
					v++;
				size_t vl = ll - (size_t)(v - p);
				if (vl >= outsz)
					vl = outsz - 1;
				memcpy(out, v, vl);
				out[vl] = '\0';
				return true;
			}
		}
		p = eol ? eol + 2 : NULL;
	}
	return false;
}

/* Request against a simulator base URL with an optional session cookie value and JSON body. */
struct it_resp *it_api_at(const char *base, const char *method, const char *path,
			   const char *cookie, const char *json_body)
{
	char url[URL_MAX], ck[COOKIE_MAX + 16];
	snprintf(url, sizeof(url), "%s%s", base, path);
	const char *h[4] = { NULL };
	int n = 0;
	if (cookie != NULL) {
		snprintf(ck, sizeof(ck), "Cookie: dmsess=%s", cookie);
		h[n++] = ck;
	}
	if (json_body != NULL)
		h[n++] = "Content-Type: application/json";
	return it_http(method, url, h, json_body, json_body ? strlen(json_body) : 0);
}

struct it_resp *it_api(const char *method, const char *path, const char *cookie, const char *body)
{
	return it_api_at(it_base(), method, path, cookie, body);
}

/* Asserts an error response: the status and a JSON object body with a string "message". */
void it_expect_error(const struct it_resp *r, long status, const char *what)
{
	cr_expect_eq(r->cc, CURLE_OK, "%s: transfer failed: %s", what, curl_easy_strerror(r->cc));
	cr_expect_eq(r->status, status, "%s: expected HTTP %ld, got %ld (body: %.200s)", what, status,
		     r->status, r->body ? r->body : "");
	cr_expect(json_is_object(r->json), "%s: error body is not a JSON object: %.200s", what,
		  r->body ? r->body : "(empty)");
	json_t *m = json_object_get(r->json, "message");
	cr_expect(json_is_string(m), "%s: error body has no string \"message\": %.200s", what,
		  r->body ? r->body : "(empty)");
	/* docs/upstream-api.md: errors are {"message": "...", "error": "<short code>"} */
	cr_expect(json_is_string(json_object_get(r->json, "error")),
		  "%s: error body has no string \"error\": %.200s", what, r->body ? r->body : "(empty)");
	char ct[256] = "";
	cr_expect(it_hdr(r, "Content-Type", 0, ct, sizeof(ct)) && strncasecmp(ct, "application/json", 16) == 0,
		  "%s: error Content-Type is '%s'", what, ct);
}

void it_expect_json_ct(const struct it_resp *r, const char *what)
{
	char ct[256];
	cr_expect(it_hdr(r, "Content-Type", 0, ct, sizeof(ct)), "%s: no Content-Type", what);
	cr_expect(strncasecmp(ct, "application/json", 16) == 0,
		  "%s: Content-Type is '%s', expected application/json", what, ct);
}

/* Asserts r is 200 + JSON object and returns the object (owned by r). */
json_t *it_ok_json(const struct it_resp *r, const char *what)
{
	cr_assert_eq(r->cc, CURLE_OK, "%s: transfer failed: %s", what, curl_easy_strerror(r->cc));
	cr_assert_eq(r->status, 200, "%s: expected 200, got %ld (body: %.300s)", what, r->status,
		     r->body ? r->body : "");
	cr_assert(json_is_object(r->json), "%s: body is not a JSON object: %.300s", what,
		  r->body ? r->body : "");
	char ct[256] = "";
	cr_expect(it_hdr(r, "Content-Type", 0, ct, sizeof(ct)) && strncasecmp(ct, "application/json", 16) == 0,
		  "%s: Content-Type is '%s', expected application/json", what, ct);
	return r->json;
}

/* Field presence + type. */
json_t *it_field(json_t *o, const char *key, json_type t, const char *what)
{
	json_t *v = json_object_get(o, key);
	cr_assert(v != NULL, "%s: field \"%s\" missing in %s", what, key,
		  json_dumps(o, JSON_COMPACT) ?: "?");
	bool ok = t == JSON_REAL ? json_is_number(v) : json_typeof(v) == t ||
		  (t == JSON_TRUE && json_is_boolean(v));
	cr_assert(ok, "%s: field \"%s\" has the wrong JSON type in %s", what, key,
		  json_dumps(o, JSON_COMPACT) ?: "?");
	return v;
}

/* ------------------------------------------------------------------ session */

/* Builds "Authorization: Basic base64(creds)" by hand: the test must not share code with the sim. */
void it_basic_header(const char *creds, char *out, size_t sz)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(creds), o = snprintf(out, sz, "Authorization: Basic ");
	for (size_t i = 0; i < n && o + 5 < sz; i += 3) {
		unsigned v = (unsigned char)creds[i] << 16;
		if (i + 1 < n) v |= (unsigned char)creds[i + 1] << 8;
		if (i + 2 < n) v |= (unsigned char)creds[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

/* Logs in with Basic id:secret; copies the dmsess value into cookie. */
void it_login_at(const char *base, const char *id, const char *secret, char *cookie, size_t sz)
{
	char creds[256], auth[600], url[URL_MAX];
	snprintf(creds, sizeof(creds), "%s:%s", id, secret);
	it_basic_header(creds, auth, sizeof(auth));
	snprintf(url, sizeof(url), "%s/session/auth", base);
	const char *h[] = { auth, NULL };
	struct it_resp *r = it_http("GET", url, h, NULL, 0);
	cr_assert_eq(r->status, 200, "login %s: HTTP %ld", id, r->status);
	char sc[1024];
	cr_assert(it_hdr(r, "Set-Cookie", 0, sc, sizeof(sc)), "login: no Set-Cookie");
	cr_assert(strncmp(sc, "dmsess=", 7) == 0, "login: first Set-Cookie is not dmsess: %s", sc);
	size_t vl = strcspn(sc + 7, ";");
	cr_assert(vl > 0 && vl < sz);
	memcpy(cookie, sc + 7, vl);
	cookie[vl] = '\0';
	it_resp_free(r);
}

void it_login(char *cookie, size_t sz)
{
	it_login_at(it_base(), "demo-client-id", "demo-client-secret", cookie, sz);
}

/* ------------------------------------------------------------------ upload and jobs */

void it_urlencode(const char *in, char *out, size_t sz)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < sz; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-_.~", *p))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, sz - o, "%%%02X", *p);
	}
	out[o] = '\0';
}

/* GET /upload?name=&resumable=0 and one PUT of data. Returns the signed URL in url. */
void it_upload_at(const char *base, const char *cookie, const char *name, const void *data,
		      size_t len, char *url, size_t usz)
{
	char path[URL_MAX], en[512];
	it_urlencode(name, en, sizeof(en));
	snprintf(path, sizeof(path), "/upload?name=%s&resumable=0", en);
	struct it_resp *r = it_api_at(base, "GET", path, cookie, NULL);
	json_t *o = it_ok_json(r, "GET /upload");
	const char *u = json_string_value(it_field(o, "url", JSON_STRING, "GET /upload"));
	cr_assert(strlen(u) < usz);
	strcpy(url, u);
	it_resp_free(r);
	const char *h[] = { "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", url, h, data, len);
	cr_assert_eq(r->cc, CURLE_OK, "PUT upload: %s", curl_easy_strerror(r->cc));
	cr_assert(r->status == 200 || r->status == 201, "PUT upload: HTTP %ld (%.200s)", r->status,
		  r->body ? r->body : "");
	it_resp_free(r);
}

void it_upload_fixture_at(const char *base, const char *cookie, const char *name, char *url,
			      size_t usz)
{
	size_t len;
	char *data = it_read_file(FIXTURE_MP4, &len);
	it_upload_at(base, cookie, name, data, len, url, usz);
	free(data);
}

/* POST /process with a raw JSON body; asserts 200 and returns the rid. */
void it_process_at(const char *base, const char *cookie, const char *body, char *rid,
			   size_t rsz)
{
	struct it_resp *r = it_api_at(base, "POST", "/process", cookie, body);
	json_t *o = it_ok_json(r, "POST /process");
	const char *v = json_string_value(it_field(o, "rid", JSON_STRING, "POST /process"));
	cr_assert(it_is_id(v), "rid '%s' is not a 22-char base58 id", v);
	cr_assert(strlen(v) < rsz);
	strcpy(rid, v);
	it_resp_free(r);
}

/* Uploads the fixture as name and starts a job with params (a JSON array text, or NULL). */
void it_new_job_at(const char *base, const char *cookie, const char *name, const char *params,
		       char *rid, size_t rsz)
{
	char url[URL_MAX], body[URL_MAX + 1024];
	it_upload_fixture_at(base, cookie, name, url, sizeof(url));
	json_t *b = json_pack("{s:s, s:s}", "url", url, "processor", "video2anim");
	if (params != NULL)
		json_object_set_new(b, "params", json_loads(params, 0, NULL));
	char *txt = json_dumps(b, JSON_COMPACT);
	snprintf(body, sizeof(body), "%s", txt);
	free(txt);
	json_decref(b);
	it_process_at(base, cookie, body, rid, rsz);
}

void it_new_job(const char *cookie, const char *name, const char *params, char *rid, size_t rsz)
{
	it_new_job_at(it_base(), cookie, name, params, rid, rsz);
}

/* GET /status/<rid>; returns the entry for rid (new reference) or NULL if left out. */
json_t *it_status_at(const char *base, const char *cookie, const char *rid)
{
	char path[256];
	snprintf(path, sizeof(path), "/status/%s", rid);
	struct it_resp *r = it_api_at(base, "GET", path, cookie, NULL);
	json_t *o = it_ok_json(r, "GET /status");
	json_t *arr = it_field(o, "status", JSON_ARRAY, "GET /status");
	json_t *found = NULL;
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "rid")) ?: "", rid) == 0)
			found = json_incref(e);
	}
	it_resp_free(r);
	return found;
}


/* Polls until SUCCESS or FAILURE (bounded by JOB_WAIT_S). Returns the final entry (owned). */
json_t *it_wait_done_at(const char *base, const char *cookie, const char *rid, struct it_seen *sn)
{
	double deadline = it_now() + JOB_WAIT_S;
	while (it_now() < deadline) {
		json_t *e = it_status_at(base, cookie, rid);
		cr_assert(e != NULL, "rid %s left out of its own /status", rid);
		const char *st = json_string_value(json_object_get(e, "status"));
		cr_assert(st != NULL, "status entry without string status");
		json_t *d = json_object_get(e, "details");
		if (sn != NULL && strcmp(st, "PROGRESS") == 0) {
			double stp = json_number_value(json_object_get(d, "step"));
			if (sn->progress > 0 && stp < sn->last_step)
				sn->step_back++;
			sn->last_step = stp;
			sn->progress++;
			if (json_object_get(e, "positionInQueue") != NULL)
				sn->queued++;
			if (sn->first_progress == NULL && d != NULL)
				sn->first_progress = json_incref(d);
		}
		if (sn != NULL && strcmp(st, "RETRY") == 0) {
			sn->retry++;
			if (sn->first_retry == NULL && d != NULL)
				sn->first_retry = json_incref(d);
		}
		if (strcmp(st, "SUCCESS") == 0 || strcmp(st, "FAILURE") == 0)
			return e;
		cr_assert(strcmp(st, "PROGRESS") == 0 || strcmp(st, "RETRY") == 0,
			  "status '%s' is not one of PROGRESS|SUCCESS|RETRY|FAILURE", st);
		json_decref(e);
		it_sleep_ms(POLL_INTERVAL_MS);
	}
	cr_assert_fail("job %s did not finish within %.0f s", rid, JOB_WAIT_S);
	return NULL;
}

json_t *it_wait_done(const char *cookie, const char *rid, struct it_seen *sn)
{
	return it_wait_done_at(it_base(), cookie, rid, sn);
}

void it_seen_free(struct it_seen *sn)
{
	json_decref(sn->first_progress);
	json_decref(sn->first_retry);
}

/* ------------------------------------------------------------------ extra simulator instances */


/* Starts BUILD/animate3d-sim --listen 127.0.0.1:0 extra...; waits for "listening on". */
void it_sim_spawn(struct it_sim *sp, const char *const *extra)
{
	const char *bd = getenv("A3D_BUILD_DIR");
	char bin[1024];
	snprintf(bin, sizeof(bin), "%s/animate3d-sim", bd && *bd ? bd : "build");
	cr_assert(access(bin, X_OK) == 0, "simulator binary %s not found (set A3D_BUILD_DIR)", bin);
	const char *argv[SIM_ARGS_MAX + 4] = { bin, "--listen", "127.0.0.1:0" };
	int argc = 3;
	for (size_t i = 0; extra && extra[i] && argc < SIM_ARGS_MAX + 3; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	int pfd[2];
	cr_assert(pipe(pfd) == 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* If the test process dies on a failed assertion, the sim goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0 && getenv("A3D_IT_VERBOSE") == NULL)
			dup2(dn, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	sp->pid = pid;
	sp->out_fd = pfd[0];
	char buf[512];
	size_t len = 0;
	double deadline = it_now() + SIM_START_S;
	sp->base[0] = '\0';
	while (it_now() < deadline && len + 1 < sizeof(buf)) {
		struct pollfd p = { pfd[0], POLLIN, 0 };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t k = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		cr_assert(k > 0, "simulator %s exited before it was ready", bin);
		len += (size_t)k;
		buf[len] = '\0';
		char *m = strstr(buf, "listening on ");
		char *nl = m ? strchr(m, '\n') : NULL;
		if (m && nl) {
			*nl = '\0';
			snprintf(sp->base, sizeof(sp->base), "%s", m + strlen("listening on "));
			break;
		}
	}
	cr_assert(sp->base[0] != '\0', "simulator did not say 'listening on' within %d s", SIM_START_S);
}

void it_sim_stop(struct it_sim *sp)
{
	if (sp->pid <= 0)
		return;
	kill(sp->pid, SIGTERM);
	int st = 0;
	double deadline = it_now() + SIM_STOP_S;
	pid_t w = 0;
	while ((w = waitpid(sp->pid, &st, WNOHANG)) == 0 && it_now() < deadline)
		it_sleep_ms(50);
	if (w == 0) {
		kill(sp->pid, SIGKILL);
		waitpid(sp->pid, &st, 0);
	}
	close(sp->out_fd);
	sp->pid = 0;
	cr_expect(w != 0, "simulator ignored SIGTERM for %d s", SIM_STOP_S);
	cr_expect(!WIFSIGNALED(st) || WTERMSIG(st) == SIGTERM, "simulator died by signal %d on stop",
		  WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	/* a sanitizer report or a failed clean-up shows as a non-zero exit */
	cr_expect(!WIFEXITED(st) || WEXITSTATUS(st) == 0, "simulator exited with status %d on SIGTERM",
		  WIFEXITED(st) ? WEXITSTATUS(st) : 0);
}

/* ------------------------------------------------------------------ webhook receiver (evhttp) */



static void it_hook_cb(struct evhttp_request *req, void *arg)
{
	struct it_hook_rx *rx = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req),
					     "X-DeepMotion-Signature");
	pthread_mutex_lock(&rx->mu);
	rx->hits++;
	bool fail = rx->hits <= rx->fail_first;
	if (rx->kept < HOOK_KEEP_MAX && n < HOOK_BODY_MAX) {
		struct it_hook_delivery *d = &rx->got[rx->kept++];
		evbuffer_copyout(in, d->body, n);
		d->body[n] = '\0';
		snprintf(d->sig, sizeof(d->sig), "%s", sig ? sig : "");
		d->post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
		d->status = fail ? 500 : 200;
		d->at = it_now();
	} else {
		rx->dropped++;
	}
	pthread_cond_broadcast(&rx->cv);
	pthread_mutex_unlock(&rx->mu);
	evhttp_send_reply(req, fail ? 500 : 200, fail ? "Internal Server Error" : "OK", NULL);
}

static void *it_hook_main(void *arg)
{
	struct it_hook_rx *rx = arg;
	event_base_dispatch(rx->base);
	return NULL;
}

void it_hook_start(struct it_hook_rx *rx, int fail_first)
{
	memset(rx, 0, sizeof(*rx));
	evthread_use_pthreads();
	pthread_mutex_init(&rx->mu, NULL);
	pthread_cond_init(&rx->cv, NULL);
	rx->fail_first = fail_first;
	rx->base = event_base_new();
	cr_assert(rx->base != NULL);
	rx->http = evhttp_new(rx->base);
	cr_assert(rx->http != NULL);
	evhttp_set_gencb(rx->http, it_hook_cb, rx);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(rx->http, "127.0.0.1", 0);
	cr_assert(bs != NULL);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	socklen_t sl = sizeof(sin);
	cr_assert(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl) == 0);
	rx->port = ntohs(sin.sin_port);
	cr_assert(pthread_create(&rx->th, NULL, it_hook_main, rx) == 0);
}

/*
 * Waits (bounded) until `want` deliveries whose body contains needle were answered with
 * `status` (0: any). Copies the last such delivery into *out if given. Returns how many there
 * were; *all_hits gets every delivery of needle, whatever the answer.
 */
int it_hook_wait_for(struct it_hook_rx *rx, const char *needle, int status, int want,
			    double secs, struct it_hook_delivery *out, int *all_hits)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)secs;
	int n = 0, all = 0;
	pthread_mutex_lock(&rx->mu);
	for (;;) {
		n = all = 0;
		for (int i = 0; i < rx->kept; i++) {
			if (strstr(rx->got[i].body, needle) == NULL)
				continue;
			all++;
			if (status == 0 || rx->got[i].status == status) {
				n++;
				if (out)
					*out = rx->got[i];
			}
		}
		if (n >= want || pthread_cond_timedwait(&rx->cv, &rx->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&rx->mu);
	if (all_hits)
		*all_hits = all;
	return n;
}

void it_hook_stop(struct it_hook_rx *rx)
{
	event_base_loopexit(rx->base, NULL);
	pthread_join(rx->th, NULL);
	evhttp_free(rx->http);
	event_base_free(rx->base);
	pthread_cond_destroy(&rx->cv);
	pthread_mutex_destroy(&rx->mu);
}

/* Registers url for job.completed; returns the endpoint id. */
void it_hook_register_at(const char *base, const char *cookie, const char *url, char *id,
			     size_t isz)
{
	char body[1024];
	snprintf(body, sizeof(body), "{\"url\":\"%s\",\"events\":[\"job.completed\"]}", url);
	struct it_resp *r = it_api_at(base, "POST", "/webhook_endpoints", cookie, body);
	json_t *o = it_ok_json(r, "POST /webhook_endpoints");
	snprintf(id, isz, "%s", json_string_value(it_field(o, "id", JSON_STRING, "create webhook")));
	it_resp_free(r);
}

void it_hook_delete_at(const char *base, const char *cookie, const char *id)
{
	char path[256];
	snprintf(path, sizeof(path), "/webhook_endpoints/%s", id);
	it_resp_free(it_api_at(base, "DELETE", path, cookie, NULL));
}

/* ------------------------------------------------------------------ shared checks */

void it_check_signed_url(const char *u, const char *what)
{
	cr_expect(strncmp(u, "http://127.0.0.1:", 17) == 0, "%s: url not on 127.0.0.1: %s", what, u);
	const char *q[] = { "X-Goog-Algorithm=GOOG4-RSA-SHA256", "X-Goog-Date=", "X-Goog-Expires=",
			    "X-Goog-Signature=" };
	for (size_t i = 0; i < 4; i++)
		cr_expect(strstr(u, q[i]) != NULL, "%s: url lacks %s", what, q[i]);
	const char *d = strstr(u, "X-Goog-Date=");
	if (d) {
		d += strlen("X-Goog-Date=");
		cr_expect(strspn(d, "0123456789") == 8 && d[8] == 'T' && strspn(d + 9, "0123456789") == 6 &&
			  d[15] == 'Z', "%s: X-Goog-Date not YYYYMMDDTHHMMSSZ: %.20s", what, d);
		struct tm tm = { 0 };
		if (strptime(d, "%Y%m%dT%H%M%SZ", &tm) != NULL) {
			time_t t = timegm(&tm);
			cr_expect(t > time(NULL) - 120 && t < time(NULL) + 120,
				  "%s: X-Goog-Date %.16s is not the current UTC time", what, d);
		}
	}
}

/* POST /videoInfo {url}; returns the object (owned by *out). */
json_t *it_video_info(const char *cookie, const char *url, struct it_resp **out)
{
	char body[URL_MAX + 32];
	json_t *b = json_pack("{s:s}", "url", url);
	char *t = json_dumps(b, JSON_COMPACT);
	snprintf(body, sizeof(body), "%s", t);
	free(t);
	json_decref(b);
	*out = it_api("POST", "/videoInfo", cookie, body);
	return it_ok_json(*out, "POST /videoInfo");
}


/* The url group called name, or NULL. */
json_t *it_find_group(json_t *urls, const char *name)
{
	size_t i;
	json_t *g;
	json_array_foreach(urls, i, g) {
		if (strcmp(json_string_value(json_object_get(g, "name")) ?: "", name) == 0)
			return g;
	}
	return NULL;
}

