/*
 * Unit tests for gateway/upstream/upstream.c: the one mapping from an upstream outcome to the
 * caller's status (gw_up_failure_of), as a table of response -> code, retry delay, message; then
 * the transport on a real loop against a scripted HTTP server on 127.0.0.1 (a free port) and a
 * fake auth provider: a table of request + scripted answers -> what done() got, what the server
 * received and what the engine counted, and the steps a table cannot show (a session that comes
 * later, cancel, free).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/config/config.h"
#include "gateway/upstream/upstream.h"

static const struct {
	const char *name;
	struct gw_up_response res;
	grpc_status_code code;
	long retry_ms;
	const char *msg;	/* exact message */
} failure_cases[] = {
	{ "2xx is no failure", { .http_status = 200, .retry_after_ms = -1 }, GRPC_STATUS_OK, -1, "" },
	{ "204 is no failure", { .http_status = 204, .retry_after_ms = -1 }, GRPC_STATUS_OK, -1, "" },
	{ "queue full, no delay",
	  { .limited = GRPC_STATUS_RESOURCE_EXHAUSTED, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = -1, .error = "account sim: admission queue full" },
	  GRPC_STATUS_RESOURCE_EXHAUSTED, -1, "UploadVideo: account sim: admission queue full" },
	{ "paused by Retry-After keeps its delay",
	  { .limited = GRPC_STATUS_UNAVAILABLE, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = 4200, .error = "account sim paused by upstream Retry-After" },
	  GRPC_STATUS_UNAVAILABLE, 4200, "UploadVideo: account sim paused by upstream Retry-After" },
	{ "limited without a reason",
	  { .limited = GRPC_STATUS_DEADLINE_EXCEEDED, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = -1 },
	  GRPC_STATUS_DEADLINE_EXCEEDED, -1, "UploadVideo: upstream limit" },
	{ "no session with a reason",
	  { .no_session = 1, .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1,
	    .error = "upstream login failing, retrying in 3 s" },
	  GRPC_STATUS_UNAVAILABLE, -1, "UploadVideo: upstream login failing, retrying in 3 s" },
	{ "no session, default reason",
	  { .no_session = 1, .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1 },
	  GRPC_STATUS_UNAVAILABLE, -1, "UploadVideo: upstream rejected account credentials" },
	{ "timeout",
	  { .curl_rc = CURLE_OPERATION_TIMEDOUT, .retry_after_ms = -1, .error = "timed out" },
	  GRPC_STATUS_DEADLINE_EXCEEDED, -1, NULL },
	{ "connection refused",
	  { .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1, .error = "refused" },
	  GRPC_STATUS_UNAVAILABLE, -1, NULL },
	{ "429 with Retry-After keeps it",
	  { .http_status = 429, .retry_after_ms = 5000 }, GRPC_STATUS_RESOURCE_EXHAUSTED, 5000,
	  "UploadVideo: upstream rate limit reached, retry later (HTTP 429)" },
	{ "429 without Retry-After gets the default",
	  { .http_status = 429, .retry_after_ms = -1 }, GRPC_STATUS_RESOURCE_EXHAUSTED,
	  GW_UP_DEFAULT_PUSHBACK_MS, "UploadVideo: upstream rate limit reached, retry later (HTTP 429)" },
	{ "503 with Retry-After keeps it",
	  { .http_status = 503, .retry_after_ms = 2000 }, GRPC_STATUS_UNAVAILABLE, 2000,
	  "UploadVideo: upstream failed, retry later (HTTP 503)" },
	{ "503 without Retry-After has none",
	  { .http_status = 503, .retry_after_ms = -1 }, GRPC_STATUS_UNAVAILABLE, -1,
	  "UploadVideo: upstream failed, retry later (HTTP 503)" },
	{ "404 is NOT_FOUND without delay",
	  { .http_status = 404, .retry_after_ms = 3000 }, GRPC_STATUS_NOT_FOUND, -1,
	  "UploadVideo: not found upstream (HTTP 404)" },
	{ "400 quotes the upstream message",
	  { .http_status = 400, .retry_after_ms = -1, .body = "{\"message\":\"bad trim\"}",
	    .body_len = 22 },
	  GRPC_STATUS_INVALID_ARGUMENT, -1,
	  "UploadVideo: upstream rejected the request (HTTP 400): bad trim" },
};

Test(upstream, failure_table)
{
	for (size_t i = 0; i < sizeof failure_cases / sizeof failure_cases[0]; i++) {
		struct gw_up_failure f;
		grpc_status_code code = gw_up_failure_of(&failure_cases[i].res, "UploadVideo", &f);

		cr_expect_eq(code, failure_cases[i].code, "%s: code %d", failure_cases[i].name, code);
		cr_expect_eq(f.code, code, "%s: out->code", failure_cases[i].name);
		cr_expect_eq(f.retry_ms, failure_cases[i].retry_ms, "%s: retry %ld",
			     failure_cases[i].name, f.retry_ms);
		if (failure_cases[i].msg)
			cr_expect_str_eq(f.msg, failure_cases[i].msg, "%s: \"%s\"", failure_cases[i].name,
					 f.msg);
		else
			cr_expect(strncmp(f.msg, "UploadVideo: ", 13) == 0, "%s: \"%s\"",
				  failure_cases[i].name, f.msg);
	}
}

Test(upstream, failure_without_what)
{
	struct gw_up_response res = { .no_session = 1, .retry_after_ms = -1 };
	struct gw_up_failure f;

	gw_up_failure_of(&res, NULL, &f);
	cr_expect_str_eq(f.msg, "upstream: upstream rejected account credentials");
}

/* ---- a scripted HTTP server ---- */

#define T_MAX_LOOP_MS 5000		/* every loop below gives up after this */
#define FS_ANSWERS_MAX 4		/* scripted answers, and requests remembered */
#define FS_REQ_MAX 16384		/* one request, head and body */
#define FS_POLL_MS 20
#define FS_READ_ROUNDS 100		/* x FS_POLL_MS: a request that takes longer is dropped */
#define FS_FILL_MAX 65536		/* bytes of filler one answer may carry */

/* One answer, given to the next accepted connection. The server always closes afterwards, so
 * every attempt of the engine is one connection and one entry of the script. */
struct fs_answer {
	int close;		/* close without answering */
	int delay_ms;		/* wait this long first (ends early when the client hangs up) */
	const char *status;	/* "200 OK"; NULL with close */
	const char *headers;	/* extra header lines, each ending in \r\n; may be NULL */
	const char *body;	/* may be NULL */
	size_t fill;		/* then this many bytes of 'x' */
};

/* What the server received on one connection. */
struct fs_seen {
	char method[16];
	char path[256];
	char cookie[128];	/* the Cookie header's value, "" when none was sent */
	char ctype[64];		/* Content-Type, "" when none */
	char body[256];
	char traceparent[64];	/* "" when none was sent */
	char tracestate[128];
};

struct fsrv {
	int fd, port;
	int stop;		/* atomic: set by the test */
	int received;		/* atomic: requests read so far */
	int closed;		/* atomic: connections the server is done with */
	struct fs_answer script[FS_ANSWERS_MAX];
	struct fs_seen seen[FS_ANSWERS_MAX];	/* read only after fs_stop (the join orders it) */
	char req[FS_REQ_MAX];			/* the server thread's */
	pthread_t th;
};

/* The value of header name in the request head req (NUL-terminated), copied into out. */
static void fs_header(const char *req, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	const char *p = strstr(req, "\r\n");

	out[0] = '\0';
	while (p && p[2] != '\r') {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (!end)
			return;
		if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;

			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(end - v), v);
			return;
		}
		p = end;
	}
}

/* Reads one request (head, then Content-Length bytes of body) into req; returns its length. */
static size_t fs_read_request(int cfd, char *req, size_t cap)
{
	size_t len = 0, want = 0;
	char cl[32];

	for (int i = 0; i < FS_READ_ROUNDS && len < cap - 1; i++) {
		struct pollfd q = { cfd, POLLIN, 0 };
		const char *eoh;
		ssize_t n;

		if (poll(&q, 1, FS_POLL_MS) <= 0)
			continue;
		n = read(cfd, req + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		req[len] = '\0';
		eoh = strstr(req, "\r\n\r\n");
		if (!eoh)
			continue;
		if (!want) {
			fs_header(req, "Content-Length", cl, sizeof cl);
			want = (size_t)(eoh + 4 - req) + (size_t)strtoul(cl, NULL, 10);
		}
		if (len >= want)
			break;
	}
	req[len] = '\0';
	return len;
}

static void fs_record(struct fs_seen *s, const char *req)
{
	const char *eoh = strstr(req, "\r\n\r\n");

	sscanf(req, "%15s %255s", s->method, s->path);
	fs_header(req, "Cookie", s->cookie, sizeof s->cookie);
	fs_header(req, "Content-Type", s->ctype, sizeof s->ctype);
	fs_header(req, "traceparent", s->traceparent, sizeof s->traceparent);
	fs_header(req, "tracestate", s->tracestate, sizeof s->tracestate);
	snprintf(s->body, sizeof s->body, "%s", eoh ? eoh + 4 : "");
}

/* Waits up to ms, ending early when the client hangs up (EOF) or the test stops the server. */
static void fs_delay(struct fsrv *s, int cfd, int ms)
{
	char b[256];

	for (int waited = 0; waited < ms && !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
	     waited += FS_POLL_MS) {
		struct pollfd q = { cfd, POLLIN, 0 };

		if (poll(&q, 1, FS_POLL_MS) > 0 && read(cfd, b, sizeof b) <= 0)
			return;
	}
}

static void fs_answer(int cfd, const struct fs_answer *a)
{
	static char fill[FS_FILL_MAX];
	size_t blen = a->body ? strlen(a->body) : 0, fl = a->fill < sizeof fill ? a->fill : sizeof fill;
	char head[1024];
	int hl;

	memset(fill, 'x', fl);
	hl = snprintf(head, sizeof head,
		      "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n", a->status,
		      a->headers ? a->headers : "", blen + fl);
	/* MSG_NOSIGNAL: a client that already left must not kill the test with SIGPIPE. */
	if (send(cfd, head, (size_t)hl, MSG_NOSIGNAL) < 0 ||
	    (blen && send(cfd, a->body, blen, MSG_NOSIGNAL) < 0) ||
	    (fl && send(cfd, fill, fl, MSG_NOSIGNAL) < 0))
		return;
}

static void *fs_main(void *arg)
{
	static const struct fs_answer unscripted = { .status = "599 Unscripted" };
	struct fsrv *s = arg;
	int n = 0;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { s->fd, POLLIN, 0 };
		const struct fs_answer *a;
		int cfd;

		if (poll(&p, 1, FS_POLL_MS) <= 0)
			continue;
		cfd = accept(s->fd, NULL, NULL);
		if (cfd < 0)
			continue;
		fs_read_request(cfd, s->req, sizeof s->req);
		if (n < FS_ANSWERS_MAX)
			fs_record(&s->seen[n], s->req);
		a = n < FS_ANSWERS_MAX && (s->script[n].status || s->script[n].close) ? &s->script[n]
										       : &unscripted;
		n++;
		__atomic_add_fetch(&s->received, 1, __ATOMIC_ACQ_REL);
		if (a->delay_ms)
			fs_delay(s, cfd, a->delay_ms);
		if (!a->close)
			fs_answer(cfd, a);
		close(cfd);
		__atomic_add_fetch(&s->closed, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void fs_start(struct fsrv *s, const struct fs_answer *script, size_t n)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;

	memset(s, 0, sizeof *s);
	cr_assert_leq(n, FS_ANSWERS_MAX);
	for (size_t i = 0; i < n; i++)
		s->script[i] = script[i];
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->fd, 0);
	cr_assert_eq(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
	cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(s->fd, 16), 0);
	cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->th, NULL, fs_main, s), 0);
}

static void fs_stop(struct fsrv *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->th, NULL);
	close(s->fd);
}

/* ---- a fake auth provider ---- */

/* Cookie "c<generation>"; unauthorized() moves to the next generation, like a re-login. */
struct fauth {
	struct gw_up_account acct;	/* first: the engine hands &acct back */
	int fail;			/* acquire() fails at once */
	int wait;			/* acquire() queues the waiter until fauth_release() */
	uint64_t gen;
	char cookie[16];
	int acquires, unauthorized, cancels;
	uint64_t unauth_gen;		/* the generation the last 401 was reported on */
	struct gw_up_waiter *queued;
};

static int fauth_answer(struct fauth *f, struct gw_up_waiter *w, const char **cookie,
			uint64_t *gen, const char **err)
{
	if (f->fail) {
		*err = "fake: login failing";
		return GW_UP_AUTH_FAIL;
	}
	if (f->wait) {
		w->acct = &f->acct;
		f->queued = w;
		return GW_UP_AUTH_WAIT;
	}
	*cookie = f->cookie;
	*gen = f->gen;
	return GW_UP_AUTH_READY;
}

static int fauth_acquire(struct gw_up_account *a, struct gw_up_waiter *w, const char **cookie,
			 uint64_t *gen, const char **err)
{
	struct fauth *f = (struct fauth *)a;

	f->acquires++;
	return fauth_answer(f, w, cookie, gen, err);
}

static int fauth_unauthorized(struct gw_up_account *a, uint64_t gen, struct gw_up_waiter *w,
			      const char **cookie, uint64_t *gen_out, const char **err)
{
	struct fauth *f = (struct fauth *)a;

	f->unauthorized++;
	f->unauth_gen = gen;
	if (gen == f->gen)
		snprintf(f->cookie, sizeof f->cookie, "c%llu", (unsigned long long)++f->gen);
	return fauth_answer(f, w, cookie, gen_out, err);
}

static void fauth_cancel(struct gw_up_waiter *w)
{
	struct fauth *f = (struct fauth *)w->acct;

	f->cancels++;
	f->queued = NULL;
	w->acct = NULL;
}

static const struct gw_up_auth_ops fauth_ops = { fauth_acquire, fauth_unauthorized, fauth_cancel };

/* The login that was pending has finished: hand the queued waiter the cookie. */
static void fauth_release(struct fauth *f)
{
	struct gw_up_waiter *w = f->queued;

	cr_assert_not_null(w);
	f->queued = NULL;
	f->wait = 0;
	w->acct = NULL;
	w->fn(w, f->cookie, f->gen, NULL);
}

/* ---- the engine on a loop ---- */

struct up_fx {
	struct event_base *base;
	struct gw_config cfg;
	struct gw_account_cfg acfg;	/* one account, so the account's protection is in play */
	const struct gw_config *cfgp;
	struct gw_upstream *up;
	struct fauth auth;
	char base_url[64];
};

static void fx_init(struct up_fx *fx, int port, size_t max_response)
{
	memset(fx, 0, sizeof *fx);
	snprintf(fx->base_url, sizeof fx->base_url, "http://127.0.0.1:%d", port);
	fx->acfg.name = "acct-a";
	fx->acfg.base_url = fx->base_url;
	fx->cfg.accounts = &fx->acfg;
	fx->cfg.naccounts = 1;
	fx->cfg.upstream.connect_timeout_ms = 1000;
	fx->cfg.upstream.default_timeout_ms = 3000;
	fx->cfg.upstream.max_response_bytes = max_response;
	fx->cfgp = &fx->cfg;
	fx->base = event_base_new();
	cr_assert_not_null(fx->base);
	fx->up = gw_up_new(&(struct gw_up_env){ .base = fx->base, .cfg = &fx->cfgp });
	cr_assert_not_null(fx->up);
	fx->auth.acct = (struct gw_up_account){ 0, "acct-a", fx->base_url, &fauth_ops };
	fx->auth.gen = 1;
	snprintf(fx->auth.cookie, sizeof fx->auth.cookie, "c1");
}

static void fx_fini(struct up_fx *fx)
{
	gw_up_free(fx->up);
	event_base_free(fx->base);
}

/* What done() was given (copied: the response is valid only during done()). */
struct done_rec {
	int calls;
	int inside_start;	/* done() ran inside gw_up_start(): never allowed */
	CURLcode rc;
	long status, retry_after_ms;
	int no_session;
	char body[128];
	size_t body_len;
	char location[128];
	char error[256];
};

static int t_in_start;	/* set around gw_up_start() */

static void on_done(void *arg, const struct gw_up_response *res)
{
	struct done_rec *d = arg;

	d->calls++;
	d->inside_start |= t_in_start;
	d->rc = res->curl_rc;
	d->status = res->http_status;
	d->retry_after_ms = res->retry_after_ms;
	d->no_session = res->no_session;
	d->body_len = res->body_len;
	snprintf(d->body, sizeof d->body, "%s", res->body ? res->body : "");
	snprintf(d->location, sizeof d->location, "%s", res->location ? res->location : "");
	snprintf(d->error, sizeof d->error, "%s", res->error ? res->error : "");
}

static struct gw_up_call *fx_start(struct up_fx *fx, const struct gw_up_request *rq,
				   struct done_rec *d)
{
	struct gw_up_call *c;

	t_in_start = 1;
	c = gw_up_start(fx->up, &fx->auth.acct, rq, on_done, d);
	t_in_start = 0;
	return c;
}

/* Runs the loop until *flag >= want (read atomically: the server thread may write it), bounded. */
static void fx_run_until(struct up_fx *fx, const int *flag, int want)
{
	int64_t end = gw_clock_now_us() + (int64_t)T_MAX_LOOP_MS * 1000;

	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < want && gw_clock_now_us() < end) {
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* ---- the transport table ---- */

#define OK200(b) { .status = "200 OK", .headers = "Content-Type: application/json\r\n", .body = b }
#define ANSWER(st) { .status = st, .body = "{}" }
#define HANGUP { .close = 1 }

static const struct up_case {
	const char *name;
	/* the request */
	const char *method, *path;	/* path: API request on the account's base_url */
	const char *storage;		/* else a signed storage URL path on the same server */
	const char *body;
	int idempotent;
	long timeout_ms;
	size_t max_response;		/* upstream.max_response_bytes; 0 = default */
	int auth_fail;
	struct fs_answer script[FS_ANSWERS_MAX];
	/* what done() gets */
	CURLcode rc;
	long status, retry_after_ms;
	int no_session;
	const char *body_want;		/* exact; NULL = not checked */
	const char *error_has;		/* substring of res->error ("" = any); NULL = none expected */
	const char *location;
	/* what the server received: the Cookie header per request ("" = none) */
	int requests;
	const char *cookies[FS_ANSWERS_MAX];
	/* counters */
	int acquires, unauthorized;
	uint64_t retries, reauth_retries, too_large, no_session_n;
} up_cases[] = {
	{ "200 with a body: status, body and the session cookie",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 0, 0, { OK200("{\"status\":[]}") },
	  CURLE_OK, 200, -1, 0, "{\"status\":[]}", NULL, "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "201 with Location is passed on",
	  "POST", "/upload", NULL, "{}", 0, 0, 0, 0,
	  { { .status = "201 Created", .headers = "Location: http://127.0.0.1:1/resume\r\n" } },
	  CURLE_OK, 201, -1, 0, "", NULL, "http://127.0.0.1:1/resume",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "401 then 200: one re-login on the generation sent, one retry with the new cookie",
	  "GET", "/character/listModels", NULL, NULL, 1, 0, 0, 0,
	  { ANSWER("401 Unauthorized"), OK200("[]") },
	  CURLE_OK, 200, -1, 0, "[]", NULL, "",
	  2, { "dmsess=c1", "dmsess=c2" }, 1, 1, 0, 1, 0, 0 },
	{ "401 twice: no second re-login, no session",
	  "POST", "/process", NULL, "{}", 0, 0, 0, 0,
	  { ANSWER("401 Unauthorized"), ANSWER("401 Unauthorized") },
	  CURLE_OK, 401, -1, 1, NULL, "even after a fresh login", "",
	  2, { "dmsess=c1", "dmsess=c2" }, 1, 1, 0, 1, 0, 1 },
	{ "503, 503, 200 on an idempotent GET: retried twice",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 0, 0,
	  { ANSWER("503 Service Unavailable"), ANSWER("503 Service Unavailable"), OK200("{}") },
	  CURLE_OK, 200, -1, 0, "{}", NULL, "",
	  3, { "dmsess=c1", "dmsess=c1", "dmsess=c1" }, 3, 0, 2, 0, 0, 0 },
	{ "503 on a POST: not retried",
	  "POST", "/process", NULL, "{}", 0, 0, 0, 0,
	  { ANSWER("503 Service Unavailable"), OK200("{}") },
	  CURLE_OK, 503, -1, 0, NULL, NULL, "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "hang-up without answer on a GET: retried",
	  "GET", "/list", NULL, NULL, 1, 0, 0, 0, { HANGUP, OK200("{}") },
	  CURLE_OK, 200, -1, 0, "{}", NULL, "",
	  2, { "dmsess=c1", "dmsess=c1" }, 2, 0, 1, 0, 0, 0 },
	{ "hang-up without answer on a POST: not retried",
	  "POST", "/process", NULL, "{}", 0, 0, 0, 0, { HANGUP, OK200("{}") },
	  CURLE_GOT_NOTHING, 0, -1, 0, NULL, "", "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "429 with Retry-After: its delay, no retry",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 0, 0,
	  { { .status = "429 Too Many Requests", .headers = "Retry-After: 3\r\n" }, OK200("{}") },
	  CURLE_OK, 429, 3000, 0, NULL, NULL, "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "503 with Retry-After on a GET: its delay, no retry",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 0, 0,
	  { { .status = "503 Service Unavailable", .headers = "Retry-After: 2\r\n" }, OK200("{}") },
	  CURLE_OK, 503, 2000, 0, NULL, NULL, "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "body over max_response_bytes: write error, counted",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 1024, 0, { { .status = "200 OK", .fill = 4096 } },
	  CURLE_WRITE_ERROR, 0, -1, 0, NULL, "too large", "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 1, 0 },
	{ "body at max_response_bytes: accepted",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 1024, 0, { { .status = "200 OK", .fill = 1024 } },
	  CURLE_OK, 200, -1, 0, NULL, NULL, "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "no answer before timeout_ms: timed out, not retried",
	  "GET", "/status/r1", NULL, NULL, 1, 500, 0, 0, { { .delay_ms = 4000, .status = "200 OK" } },
	  CURLE_OPERATION_TIMEDOUT, 0, -1, 0, NULL, "", "",
	  1, { "dmsess=c1" }, 1, 0, 0, 0, 0, 0 },
	{ "storage request: the signed URL as it is, no cookie, no session asked",
	  "PUT", NULL, "/bucket/v.mp4?sig=s1", "bytes", 0, 0, 0, 0, { ANSWER("200 OK") },
	  CURLE_OK, 200, -1, 0, "{}", NULL, "",
	  1, { "" }, 0, 0, 0, 0, 0, 0 },
	{ "auth provider fails: no session, nothing sent",
	  "GET", "/status/r1", NULL, NULL, 1, 0, 0, 1, { OK200("{}") },
	  CURLE_OK, 0, -1, 1, NULL, "fake: login failing", "",
	  0, { NULL }, 1, 0, 0, 0, 0, 1 },
};

Test(upstream, transport_table)
{
	for (size_t i = 0; i < sizeof up_cases / sizeof up_cases[0]; i++) {
		const struct up_case *t = &up_cases[i];
		struct gw_up_request rq = { .method = t->method, .path = t->path, .idempotent = t->idempotent,
					    .timeout_ms = t->timeout_ms };
		const struct gw_up_counters *n;
		struct done_rec d = { 0 };
		struct up_fx fx;
		struct fsrv s;
		char url[256];

		fs_start(&s, t->script, FS_ANSWERS_MAX);
		fx_init(&fx, s.port, t->max_response);
		fx.auth.fail = t->auth_fail;
		if (t->storage) {
			snprintf(url, sizeof url, "%s%s", fx.base_url, t->storage);
			rq.url = url;
			rq.route = "PUT storage";
			rq.content_type = "application/octet-stream";
		}
		if (t->body) {
			rq.body = t->body;
			rq.body_len = strlen(t->body);
		}
		cr_assert_not_null(fx_start(&fx, &rq, &d), "%s", t->name);
		cr_expect_eq(d.calls, 0, "%s: done() inside gw_up_start", t->name);
		fx_run_until(&fx, &d.calls, 1);
		n = gw_up_counters(fx.up);

		cr_expect_eq(d.calls, 1, "%s: done() ran %d times", t->name, d.calls);
		cr_expect_eq(d.inside_start, 0, "%s", t->name);
		cr_expect_eq(d.rc, t->rc, "%s: curl %d", t->name, d.rc);
		cr_expect_eq(d.status, t->status, "%s: status %ld", t->name, d.status);
		cr_expect_eq(d.retry_after_ms, t->retry_after_ms, "%s: retry_after %ld", t->name,
			     d.retry_after_ms);
		cr_expect_eq(d.no_session, t->no_session, "%s: no_session", t->name);
		if (t->body_want)
			cr_expect_str_eq(d.body, t->body_want, "%s: body \"%s\"", t->name, d.body);
		if (t->error_has)
			cr_expect_not_null(strstr(d.error, t->error_has), "%s: error \"%s\"", t->name,
					   d.error);
		else
			cr_expect_str_eq(d.error, "", "%s: error \"%s\"", t->name, d.error);
		cr_expect_str_eq(d.location, t->location, "%s: location", t->name);
		if (t->max_response && t->rc == CURLE_OK)
			cr_expect_eq(d.body_len, t->max_response, "%s: body length", t->name);
		cr_expect_eq(fx.auth.acquires, t->acquires, "%s: acquires %d", t->name, fx.auth.acquires);
		cr_expect_eq(fx.auth.unauthorized, t->unauthorized, "%s: unauthorized", t->name);
		if (t->unauthorized)
			cr_expect_eq(fx.auth.unauth_gen, 1, "%s: 401 reported on the generation sent", t->name);
		cr_expect_eq(n->started, 1, "%s", t->name);
		cr_expect_eq(n->attempts, (uint64_t)t->requests, "%s: attempts", t->name);
		cr_expect_eq(n->retries, t->retries, "%s: retries %llu", t->name,
			     (unsigned long long)n->retries);
		cr_expect_eq(n->reauth_retries, t->reauth_retries, "%s: reauth_retries", t->name);
		cr_expect_eq(n->too_large, t->too_large, "%s: too_large", t->name);
		cr_expect_eq(n->no_session, t->no_session_n, "%s: no_session counter", t->name);
		cr_expect_eq(n->in_flight, 0, "%s: in_flight", t->name);
		fx_fini(&fx);
		fs_stop(&s);

		cr_expect_eq(s.received, t->requests, "%s: server got %d requests", t->name, s.received);
		for (int k = 0; k < t->requests && k < FS_ANSWERS_MAX; k++) {
			cr_expect_str_eq(s.seen[k].method, t->method, "%s: request %d method", t->name, k);
			cr_expect_str_eq(s.seen[k].path, t->storage ? t->storage : t->path,
					 "%s: request %d path", t->name, k);
			cr_expect_str_eq(s.seen[k].cookie, t->cookies[k], "%s: request %d cookie \"%s\"",
					 t->name, k, s.seen[k].cookie);
			if (t->body) {
				cr_expect_str_eq(s.seen[k].body, t->body, "%s: request %d body", t->name, k);
				cr_expect_str_eq(s.seen[k].ctype,
						 t->storage ? "application/octet-stream" : "application/json",
						 "%s: request %d content type", t->name, k);
			}
		}
	}
}

/* ---- trace context on upstream requests (issue 20) ---- */

/* A request made for a call: each attempt carries traceparent with the call's trace id, a span
 * of its own and the sampled flag, and tracestate as the caller sent it; a request made for no
 * call carries neither. */
Test(upstream, traceparent_per_attempt)
{
	static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	struct fs_answer script[FS_ANSWERS_MAX] = { ANSWER("503 Service Unavailable"), OK200("{}") };
	struct gw_trace_rng rng = { .left = 0 };
	struct gw_trace_in in = { .request_id = "r1", .request_id_len = 2, .parent = tp,
				  .parent_len = sizeof tp - 1, .n_parent = 1, .state = "k=v,l=w",
				  .state_len = 7 };
	struct gw_trace call;
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d = { 0 }, d2 = { 0 };
	struct up_fx fx;
	struct fsrv s;

	cr_assert_eq(gw_trace_begin(&call, &rng, &in), 0);
	rq.trace = &call;
	fs_start(&s, script, FS_ANSWERS_MAX);
	fx_init(&fx, s.port, 0);
	cr_assert_not_null(fx_start(&fx, &rq, &d));
	fx_run_until(&fx, &d.calls, 1);
	cr_expect_eq(d.status, 200);
	rq.trace = NULL;
	script[0] = (struct fs_answer)OK200("{}");
	fx_fini(&fx);
	fs_stop(&s);

	cr_assert_eq(s.received, 2);
	for (int k = 0; k < 2; k++) {
		char t[GW_TRACE_ID_HEX + 1], parent[GW_TRACE_SPAN_HEX + 1];
		uint8_t flags;

		cr_assert_eq(gw_trace_parse_parent(s.seen[k].traceparent, strlen(s.seen[k].traceparent),
						   t, parent, &flags), 0, "attempt %d: \"%s\"", k,
			     s.seen[k].traceparent);
		cr_expect_str_eq(t, call.trace_id, "attempt %d", k);
		cr_expect_str_neq(parent, call.span_id, "attempt %d: a span of its own", k);
		cr_expect_eq(flags, GW_TRACE_SAMPLED, "attempt %d", k);
		cr_expect_str_eq(s.seen[k].tracestate, "k=v,l=w", "attempt %d", k);
	}
	cr_expect_str_neq(s.seen[0].traceparent, s.seen[1].traceparent, "a retry is a new span");

	/* Without a trace: neither header. */
	fs_start(&s, script, 1);
	fx_init(&fx, s.port, 0);
	cr_assert_not_null(fx_start(&fx, &rq, &d2));
	fx_run_until(&fx, &d2.calls, 1);
	fx_fini(&fx);
	fs_stop(&s);
	cr_assert_eq(s.received, 1);
	cr_expect_str_eq(s.seen[0].traceparent, "");
	cr_expect_str_eq(s.seen[0].tracestate, "");
}

/* ---- what a table cannot show: steps in between ---- */

/* No session yet: nothing is sent until the provider releases the waiter, then it goes with the
 * cookie it was handed. */
Test(upstream, waits_for_the_session)
{
	static const struct fs_answer script[] = { OK200("{}") };
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d = { 0 };
	struct up_fx fx;
	struct fsrv s;

	fs_start(&s, script, 1);
	fx_init(&fx, s.port, 0);
	fx.auth.wait = 1;
	cr_assert_not_null(fx_start(&fx, &rq, &d));
	fx_run_until(&fx, &fx.auth.acquires, 1);
	cr_assert_not_null(fx.auth.queued, "the request waits for the session");
	for (int i = 0; i < 20; i++)	/* give a wrong implementation the chance to send */
		event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_expect_eq(d.calls, 0);
	cr_expect_eq(__atomic_load_n(&s.received, __ATOMIC_ACQUIRE), 0, "nothing sent without a session");
	snprintf(fx.auth.cookie, sizeof fx.auth.cookie, "late");
	fauth_release(&fx.auth);
	fx_run_until(&fx, &d.calls, 1);
	cr_expect_eq(d.calls, 1);
	cr_expect_eq(d.status, 200);
	cr_expect_eq(fx.auth.cancels, 0);
	fx_fini(&fx);
	fs_stop(&s);
	cr_expect_eq(s.received, 1);
	cr_expect_str_eq(s.seen[0].cookie, "dmsess=late");
}

/* Cancel while the server holds the answer back: done() never runs, the transfer is dropped. */
Test(upstream, cancel_in_transfer)
{
	static const struct fs_answer script[] = { { .delay_ms = 4000, .status = "200 OK" } };
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d = { 0 };
	struct gw_up_call *c;
	struct up_fx fx;
	struct fsrv s;

	fs_start(&s, script, 1);
	fx_init(&fx, s.port, 0);
	c = fx_start(&fx, &rq, &d);
	cr_assert_not_null(c);
	fx_run_until(&fx, &s.received, 1);
	cr_assert_eq(__atomic_load_n(&s.received, __ATOMIC_ACQUIRE), 1);
	gw_up_cancel(c);
	cr_expect_eq(gw_up_counters(fx.up)->cancelled, 1);
	cr_expect_eq(gw_up_counters(fx.up)->in_flight, 0);
	/* The server sees the hang-up and closes; the loop keeps running meanwhile. */
	fx_run_until(&fx, &s.closed, 1);
	cr_expect_eq(__atomic_load_n(&s.closed, __ATOMIC_ACQUIRE), 1, "the connection was dropped");
	cr_expect_eq(d.calls, 0, "done() after gw_up_cancel");
	fx_fini(&fx);
	fs_stop(&s);
}

/* Cancel while waiting for the session: the waiter is taken back from the provider. */
Test(upstream, cancel_waiting_for_session)
{
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d = { 0 };
	struct gw_up_call *c;
	struct up_fx fx;

	fx_init(&fx, 1, 0);	/* nothing may be sent: port 1 is never reached */
	fx.auth.wait = 1;
	c = fx_start(&fx, &rq, &d);
	cr_assert_not_null(c);
	fx_run_until(&fx, &fx.auth.acquires, 1);
	cr_assert_not_null(fx.auth.queued);
	gw_up_cancel(c);
	cr_expect_eq(fx.auth.cancels, 1);
	cr_expect_null(fx.auth.queued);
	for (int i = 0; i < 20; i++)
		event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_expect_eq(d.calls, 0);
	cr_expect_eq(gw_up_counters(fx.up)->attempts, 0);
	fx_fini(&fx);
}

/* Cancel before the loop ran at all (the first step is queued on it): done() never runs. */
Test(upstream, cancel_before_first_step)
{
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d = { 0 };
	struct gw_up_call *c;
	struct up_fx fx;

	fx_init(&fx, 1, 0);
	c = fx_start(&fx, &rq, &d);
	cr_assert_not_null(c);
	gw_up_cancel(c);
	for (int i = 0; i < 20; i++)
		event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_expect_eq(d.calls, 0);
	cr_expect_eq(fx.auth.acquires, 0);
	fx_fini(&fx);
}

/* gw_up_free with requests in every phase: none of them calls back. */
Test(upstream, free_with_requests_in_flight)
{
	static const struct fs_answer script[] = { { .delay_ms = 4000, .status = "200 OK" } };
	struct gw_up_request rq = { .method = "GET", .path = "/status/r1", .idempotent = 1 };
	struct done_rec d[3] = { { 0 } };
	struct up_fx fx;
	struct fsrv s;

	fs_start(&s, script, 1);
	fx_init(&fx, s.port, 0);
	cr_assert_not_null(fx_start(&fx, &rq, &d[0]));		/* in transfer */
	fx_run_until(&fx, &s.received, 1);
	fx.auth.wait = 1;
	cr_assert_not_null(fx_start(&fx, &rq, &d[1]));		/* waiting for the session */
	fx_run_until(&fx, &fx.auth.acquires, 2);
	cr_assert_not_null(fx.auth.queued);
	cr_assert_not_null(fx_start(&fx, &rq, &d[2]));		/* not even started */
	fx_fini(&fx);
	fs_stop(&s);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(d[i].calls, 0, "request %d called back", i);
	cr_expect_eq(fx.auth.cancels, 1, "the queued waiter was taken back");
}

/* Refused before anything is built: NULL, and done() never runs. */
Test(upstream, start_refuses_bad_requests)
{
	static const struct {
		const char *name;
		struct gw_up_request rq;
	} t[] = {
		{ "no method", { .path = "/status/r1" } },
		{ "neither path nor url", { .method = "GET" } },
		{ "both path and url", { .method = "GET", .path = "/a", .url = "http://127.0.0.1:1/b" } },
		{ "relative path", { .method = "GET", .path = "status" } },
	};
	struct done_rec d = { 0 };
	struct up_fx fx;

	fx_init(&fx, 1, 0);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_null(fx_start(&fx, &t[i].rq, &d), "%s", t[i].name);
	for (int i = 0; i < 20; i++)
		event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_expect_eq(d.calls, 0);
	cr_expect_eq(gw_up_counters(fx.up)->started, 0);
	fx_fini(&fx);
}
