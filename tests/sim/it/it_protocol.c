/* Simulator integration tests: HTTP/1.1 robustness the gateway and clients rely on (see test_sim_http.c). */
#define _GNU_SOURCE
#include "it_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== tests: HTTP protocol */

#define RAW_MAX (256u << 10)   /* raw responses read at most this much */

/* Connects to the simulator's port on 127.0.0.1. */
static int raw_connect(void)
{
	const char *b = it_base();
	const char *colon = strrchr(b, ':');
	cr_assert(colon != NULL);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10)) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
	return fd;
}

/* Reads until the peer closes or timeout_ms passes; returns a malloc'd NUL-terminated buffer. */
static char *raw_read_all(int fd, int timeout_ms, size_t *len)
{
	char *buf = calloc(1, RAW_MAX + 1);
	cr_assert(buf != NULL);
	size_t n = 0;
	double deadline = it_now() + timeout_ms / 1000.0;
	while (n < RAW_MAX && it_now() < deadline) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t k = read(fd, buf + n, RAW_MAX - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Sends req in pieces of `piece` bytes (0: at once) with gap_ms between, reads the answer. */
static char *raw_exchange(const char *req, size_t piece, int gap_ms, int timeout_ms)
{
	int fd = raw_connect();
	size_t len = strlen(req), off = 0;
	if (piece == 0)
		piece = len;
	while (off < len) {
		size_t k = len - off < piece ? len - off : piece;
		cr_assert(write(fd, req + off, k) == (ssize_t)k);
		off += k;
		if (gap_ms)
			it_sleep_ms(gap_ms);
	}
	size_t n;
	char *out = raw_read_all(fd, timeout_ms, &n);
	close(fd);
	return out;
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

Test(protocol, keepalive_one_connection_many_requests)
{
	char ck[COOKIE_MAX], url[URL_MAX], hc[COOKIE_MAX + 32];
	it_login(ck, sizeof(ck));
	snprintf(url, sizeof(url), "%s/account/creditBalance", it_base());
	snprintf(hc, sizeof(hc), "Cookie: dmsess=%s", ck);
	CURL *c = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, hc);
	struct it_resp r = { 0 };
	r.hdr = calloc(1, HTTP_HDR_MAX);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, it_resp_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
	long conns = 0;
	for (int i = 0; i < 20; i++) {
		r.len = 0;
		cr_expect_eq(curl_easy_perform(c), CURLE_OK, "request %d on a kept-alive connection", i);
		long st = 0, nc = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nc);
		cr_expect_eq(st, 200, "request %d: HTTP %ld", i, st);
		conns += nc;
	}
	cr_expect_eq(conns, 1, "20 requests used %ld connections (keep-alive broken)", conns);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(r.body);
	free(r.hdr);
}

Test(protocol, pipelined_fragmented_and_http10)
{
	char ck[COOKIE_MAX], req[4096];
	it_login(ck, sizeof(ck));
	/* three pipelined requests in one write: three answers, in order */
	snprintf(req, sizeof(req),
		 "GET /account/creditBalance HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\n\r\n"
		 "GET /account/minutesBalance HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\n\r\n"
		 "GET /account/creditBalance HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nConnection: close\r\n\r\n",
		 ck, ck, ck);
	char *out = raw_exchange(req, 0, 0, 3000);
	cr_expect_eq(count_str(out, "HTTP/1.1 200"), 3, "pipelined: %d answers: %.300s",
		     count_str(out, "HTTP/1.1 200"), out);
	char *c1 = strstr(out, "\"credits\""), *m1 = strstr(out, "\"minutes\"");
	cr_expect(c1 && m1 && c1 < m1 && strstr(m1, "\"credits\""), "pipelined answers out of order");
	free(out);
	/* a POST whose head and body arrive 5 bytes at a time */
	const char *body = "{\"rid\":\"5Hn9mDRFqHUxd2KqG6QJsa\",\"processor\":\"video2anim\"}";
	snprintf(req, sizeof(req),
		 "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", ck, strlen(body), body);
	out = raw_exchange(req, 5, 2, 5000);
	cr_expect(strncmp(out, "HTTP/1.1 404", 12) == 0, "fragmented POST: %.200s", out);
	cr_expect(strstr(out, "\"message\"") != NULL, "fragmented POST: no JSON message");
	free(out);
	/* HTTP/1.0 without Host: answered, then closed */
	snprintf(req, sizeof(req), "GET /account/creditBalance HTTP/1.0\r\nCookie: dmsess=%s\r\n\r\n", ck);
	out = raw_exchange(req, 0, 0, 3000);
	cr_expect(strncmp(out, "HTTP/1.", 7) == 0 && strstr(out, " 200 ") && strstr(out, "\"credits\""),
		  "HTTP/1.0 request: %.200s", out);
	free(out);
	/* lower-case header names */
	snprintf(req, sizeof(req), "GET /account/creditBalance HTTP/1.1\r\nhost: x\r\ncookie: dmsess=%s\r\n"
		 "connection: close\r\n\r\n", ck);
	out = raw_exchange(req, 0, 0, 3000);
	cr_expect(strncmp(out, "HTTP/1.1 200", 12) == 0, "lower-case headers: %.200s", out);
	free(out);
}

struct membuf { const char *p; size_t len, off; };

static size_t membuf_read(char *dst, size_t sz, size_t n, void *ud)
{
	struct membuf *m = ud;
	size_t k = sz * n < m->len - m->off ? sz * n : m->len - m->off;
	if (k > 700)
		k = 700;     /* several chunks */
	memcpy(dst, m->p + m->off, k);
	m->off += k;
	return k;
}

/* PUT with Transfer-Encoding: chunked (no Content-Length), as streaming clients send. */
static long put_chunked(const char *url, const char *data, size_t len)
{
	struct membuf m = { data, len, 0 };
	CURL *c = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, "Transfer-Encoding: chunked");
	hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, membuf_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &m);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, it_resp_body_cb);
	struct it_resp sink = { 0 };
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	free(sink.body);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return st;
}

Test(protocol, chunked_bodies_and_expect_100_continue)
{
	char ck[COOKIE_MAX], url[URL_MAX];
	it_login(ck, sizeof(ck));
	size_t len;
	char *data = it_read_file(FIXTURE_MP4, &len);
	struct it_resp *r = it_api("GET", "/upload?name=te-chunked.mp4&resumable=0", ck, NULL);
	snprintf(url, sizeof(url), "%s", json_string_value(json_object_get(it_ok_json(r, "upload"), "url")));
	it_resp_free(r);
	cr_expect_eq(put_chunked(url, data, len), 200, "chunked PUT upload");
	struct it_resp *vr;
	json_t *vi = it_video_info(ck, url, &vr);
	cr_expect_eq(json_number_value(json_object_get(vi, "size")), (double)len,
		     "chunked upload stored the wrong size: %s", vr->body);
	it_resp_free(vr);
	free(data);

	/* chunked JSON body on an API route */
	char req[URL_MAX * 2 + 1024], body[URL_MAX + 64];
	snprintf(body, sizeof(body), "{\"url\":\"%s\",\"processor\":\"video2anim\"}", url);
	snprintf(req, sizeof(req), "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\n"
		 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		 "%zx\r\n%.*s\r\n%zx\r\n%s\r\n0\r\n\r\n", ck, (size_t)10, 10, body, strlen(body + 10), body + 10);
	char *out = raw_exchange(req, 0, 0, 3000);
	cr_expect(strncmp(out, "HTTP/1.1 200", 12) == 0 && strstr(out, "\"rid\""), "chunked POST /process: %.300s", out);
	free(out);

	/* libcurl sends Expect: 100-continue on big bodies: the sim must not make it wait 1 s */
	size_t big = 2u << 20;
	char *bb = calloc(1, big);
	cr_assert(bb != NULL);
	r = it_api("GET", "/upload?name=expect.bin&resumable=0", ck, NULL);
	snprintf(url, sizeof(url), "%s", json_string_value(json_object_get(it_ok_json(r, "upload"), "url")));
	it_resp_free(r);
	const char *h[] = { "Expect: 100-continue", "Content-Type: application/octet-stream", NULL };
	r = it_http("PUT", url, h, bb, big);
	cr_expect_eq(r->status, 200, "2 MiB PUT with Expect: HTTP %ld", r->status);
	cr_expect(r->secs < 0.9, "2 MiB PUT with Expect: 100-continue took %.2f s (no 100 Continue?)", r->secs);
	it_resp_free(r);
	free(bb);
}

Test(protocol, malformed_requests_get_400_json)
{
	char ck[COOKIE_MAX], req[4096];
	it_login(ck, sizeof(ck));
	/* raw request (%s = cookie) -> status line prefix */
	struct { const char *fmt; const char *want; } cases[] = {
		{ "HELLO\r\n\r\n", "HTTP/1.1 400" },
		{ "GET /list HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nno-colon-here\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nContent-Length: -5\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", "HTTP/1.1 400" },
		{ "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* every format above has at most one %s */
		const char *f = cases[i].fmt;
		const char *pc = strstr(f, "%s");
		if (pc)
			snprintf(req, sizeof(req), "%.*s%s%s", (int)(pc - f), f, ck, pc + 2);
		else
			snprintf(req, sizeof(req), "%s", f);
		char *out = raw_exchange(req, 0, 0, 3000);
		cr_expect(strncmp(out, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: wanted %s, got %.120s",
			  i, cases[i].want, out);
		const char *bodyp = strstr(out, "\r\n\r\n");
		cr_expect(bodyp && strstr(bodyp, "\"message\""), "case %zu: no JSON message: %.300s", i, out);
		free(out);
	}
	/* 20 KiB of headers */
	char *big = malloc(24000);
	cr_assert(big != NULL);
	int n = snprintf(big, 24000, "GET /list HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\nX-Big: ", ck);
	memset(big + n, 'a', 20000);
	strcpy(big + n + 20000, "\r\n\r\n");
	char *out = raw_exchange(big, 0, 0, 3000);
	cr_expect(strncmp(out, "HTTP/1.1 431", 12) == 0 || strncmp(out, "HTTP/1.1 400", 12) == 0,
		  "20 KiB header: %.120s", out);
	cr_expect(strstr(out, "\"message\"") != NULL, "20 KiB header: no JSON message");
	free(out);
	free(big);
	/* a body cut short, then the connection closes: the server stays up */
	snprintf(req, sizeof(req), "POST /process HTTP/1.1\r\nHost: x\r\nCookie: dmsess=%s\r\n"
		 "Content-Length: 100\r\n\r\n{\"url\":", ck);
	int fd = raw_connect();
	cr_assert(write(fd, req, strlen(req)) > 0);
	close(fd);
	struct it_resp *r = it_api("GET", "/account/creditBalance", ck, NULL);
	cr_expect_eq(r->status, 200, "server unwell after bad requests: HTTP %ld", r->status);
	it_resp_free(r);
}

Test(protocol, connection_flood_then_recovery, .timeout = 60)
{
	enum { FLOOD = 600 };   /* more than a few hundred idle connections */
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	int *fds = calloc(FLOOD, sizeof(int));
	cr_assert(fds != NULL);
	int opened = 0;
	for (; opened < FLOOD; opened++) {
		fds[opened] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[opened] < 0)
			break;
		const char *colon = strrchr(it_base(), ':');
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10)) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fds[opened], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fds[opened]);
			break;
		}
	}
	cr_expect(opened > 100, "only %d connections could be opened", opened);
	/* during the flood: either served, or refused and counted (checked below) */
	struct it_resp *during = it_api("GET", "/account/creditBalance", ck, NULL);
	bool refused = during->status != 200;
	it_resp_free(during);
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	free(fds);
	/* the sim sheds the extra connections and serves again shortly after they go */
	long st = 0;
	for (int i = 0; i < 20 && st != 200; i++) {
		it_sleep_ms(100);
		struct it_resp *r = it_api("GET", "/account/creditBalance", ck, NULL);
		st = r->status;
		it_resp_free(r);
	}
	cr_expect_eq(st, 200, "no recovery 2 s after a connection flood: HTTP %ld", st);
	struct it_resp *r = it_api("GET", "/_sim/stats", NULL, NULL);
	/* a refused connection is a counted rejection */
	json_t *rej = json_object_get(it_ok_json(r, "stats"), "rejections");
	json_t *rc = json_object_get(rej, "connections");
	cr_expect(!refused || (json_is_integer(rc) && json_integer_value(rc) > 0),
		  "a request was refused during the flood but no rejection was counted: %s", r->body);
	it_resp_free(r);
}


Test(protocol, concurrent_clients_all_answered, .timeout = 60)
{
	/* CONC transfers at once on separate connections (curl multi): API GETs and 1 MiB uploads
	 * interleaved. Every one must complete with the right status; nothing is lost. */
	enum { CONC = 96, UP_EVERY = 8 };
	char ck[COOKIE_MAX], hc[COOKIE_MAX + 32];
	it_login(ck, sizeof(ck));
	snprintf(hc, sizeof(hc), "Cookie: dmsess=%s", ck);
	size_t blen = 1u << 20;
	char *blob = calloc(1, blen);
	cr_assert(blob != NULL);
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	CURL *easy[CONC];
	struct it_resp *rs[CONC];
	struct curl_slist *hl = curl_slist_append(NULL, hc);
	struct curl_slist *hp = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	hp = curl_slist_append(hp, "Expect:");
	char urls[CONC / UP_EVERY + 1][URL_MAX];
	for (int i = 0; i < CONC; i++) {
		rs[i] = calloc(1, sizeof(struct it_resp));
		cr_assert(rs[i] != NULL);
		easy[i] = curl_easy_init();
		char url[URL_MAX];
		if (i % UP_EVERY == 0) {
			char name[64];
			snprintf(name, sizeof(name), "conc-%d.bin", i);
			char path[128];
			snprintf(path, sizeof(path), "/upload?name=%s&resumable=0", name);
			struct it_resp *r = it_api("GET", path, ck, NULL);
			snprintf(urls[i / UP_EVERY], URL_MAX, "%s",
				 json_string_value(json_object_get(it_ok_json(r, "upload"), "url")));
			it_resp_free(r);
			curl_easy_setopt(easy[i], CURLOPT_URL, urls[i / UP_EVERY]);
			curl_easy_setopt(easy[i], CURLOPT_CUSTOMREQUEST, "PUT");
			curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, blob);
			curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
			curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hp);
		} else {
			snprintf(url, sizeof(url), "%s%s", it_base(),
				 i % 2 ? "/account/creditBalance" : "/character/listModels?stockModel=all");
			curl_easy_setopt(easy[i], CURLOPT_URL, url);
			curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hl);
		}
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, it_resp_body_cb);
		curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, rs[i]);
		curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
		curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(easy[i], CURLOPT_PRIVATE, rs[i]);
		curl_multi_add_handle(m, easy[i]);
	}
	int running = 1;
	double deadline = it_now() + 30;
	while (running && it_now() < deadline) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	cr_expect_eq(running, 0, "%d transfers still running after 30 s", running);
	int bad = 0;
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		long st = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
		if (msg->data.result != CURLE_OK || st != 200) {
			if (bad++ < 3)
				cr_expect_fail("concurrent transfer: %s, HTTP %ld",
					       curl_easy_strerror(msg->data.result), st);
		}
	}
	cr_expect_eq(bad, 0, "%d of %d concurrent transfers failed", bad, CONC);
	for (int i = 0; i < CONC; i++) {
		curl_multi_remove_handle(m, easy[i]);
		curl_easy_cleanup(easy[i]);
		free(rs[i]->body);
		free(rs[i]);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hl);
	curl_slist_free_all(hp);
	/* the uploads are whole */
	for (int k = 0; k < CONC / UP_EVERY; k++) {
		struct it_resp *g = it_http("GET", urls[k], NULL, NULL, 0);
		cr_expect(g->status == 200 && g->len == blen, "upload %d read back: HTTP %ld, %zu bytes", k,
			  g->status, g->len);
		it_resp_free(g);
	}
	free(blob);
}

/* VmHWM/VmRSS of a process in KiB, -1 if unknown. */
static long proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long v = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = strtol(line + fl + 1, NULL, 10);
	}
	fclose(f);
	return v;
}

/* True if the process maps a sanitizer runtime (libasan, libtsan). */
static bool sim_is_sanitized(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	bool yes = false;
	while (!yes && fgets(line, sizeof(line), f) != NULL)
		yes = strstr(line, "libasan") != NULL || strstr(line, "libtsan") != NULL;
	fclose(f);
	return yes;
}

struct gen_body { size_t left; };

static size_t gen_body_read(char *dst, size_t sz, size_t n, void *ud)
{
	struct gen_body *g = ud;
	size_t k = sz * n < g->left ? sz * n : g->left;
	memset(dst, 'v', k);
	g->left -= k;
	return k;
}

Test(protocol, big_upload_is_streamed_not_buffered, .timeout = 120)
{
	/* The issue: upload bytes go to disk as they arrive, never whole in memory. A 96 MiB PUT
	 * (generated on the fly here too) must not raise the sim's peak RSS by more than 32 MiB. */
	const char *ps = getenv("A3D_SIM_PID");
	long pl = ps ? strtol(ps, NULL, 10) : 0;
	if (pl <= 0)
		cr_skip_test("A3D_SIM_PID not set (run through tests/lib/with-sim)");
	pid_t pid = (pid_t)pl;
	/* ASan keeps freed blocks in a quarantine (256 MiB by default): the peak RSS of a
	 * sanitized sim grows with traffic whether or not it streams. */
	if (sim_is_sanitized(pid) && strstr(getenv("ASAN_OPTIONS") ?: "", "quarantine_size_mb") == NULL)
		cr_skip_test("sanitized simulator: set ASAN_OPTIONS=quarantine_size_mb=1 to measure");
	enum { BIG_MIB = 96, GROWTH_MAX_MIB = 32 };
	char ck[COOKIE_MAX];
	it_login(ck, sizeof(ck));
	long hwm0 = proc_kib(pid, "VmHWM");
	cr_assert(hwm0 > 0, "cannot read /proc/%d/status", (int)pid);
	struct it_resp *r = it_api("GET", "/upload?name=big-stream.bin&resumable=0", ck, NULL);
	char url[URL_MAX];
	snprintf(url, sizeof(url), "%s", json_string_value(json_object_get(it_ok_json(r, "upload"), "url")));
	it_resp_free(r);
	struct gen_body g = { (size_t)BIG_MIB << 20 };
	CURL *c = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	hl = curl_slist_append(hl, "Expect:");
	struct it_resp sink = { 0 };
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)((size_t)BIG_MIB << 20));
	curl_easy_setopt(c, CURLOPT_READFUNCTION, gen_body_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &g);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, it_resp_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	CURLcode cc = curl_easy_perform(c);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(sink.body);
	long hwm1 = proc_kib(pid, "VmHWM");
	if (cc == CURLE_OK && st == 413)
		cr_skip_test("the sim caps uploads below %d MiB (413): nothing to measure", BIG_MIB);
	cr_expect(cc == CURLE_OK && st == 200, "96 MiB PUT: %s, HTTP %ld", curl_easy_strerror(cc), st);
	cr_expect(hwm1 - hwm0 < GROWTH_MAX_MIB * 1024L,
		  "peak RSS grew by %ld KiB during a %d MiB upload (buffered, not streamed?)",
		  hwm1 - hwm0, BIG_MIB);
}
