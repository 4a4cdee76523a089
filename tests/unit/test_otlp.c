/* gateway/base/otlp.c: the OTLP/JSON encoding of spans as a table, the request envelope, the
 * ring's bounds and drop counters, a failed POST's retry, the headers file. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "gateway/base/otlp.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define PID "b7ad6b7169203331"

static struct gw_trace trace_of(const char *parent, uint8_t flags)
{
	struct gw_trace t;

	memset(&t, 0, sizeof t);
	strcpy(t.trace_id, TID);
	strcpy(t.span_id, SID);
	strcpy(t.parent_id, parent);
	t.flags = flags;
	return t;
}

/* The value of attribute key in a span's attributes as "s:<string>" or "i:<int>", or NULL. */
static const char *attr_of(json_t *span, const char *key, char *buf, size_t cap)
{
	size_t i;
	json_t *kv;

	json_array_foreach(json_object_get(span, "attributes"), i, kv) {
		json_t *v = json_object_get(kv, "value");

		if (strcmp(json_string_value(json_object_get(kv, "key")), key) != 0)
			continue;
		if (json_object_get(v, "stringValue"))
			snprintf(buf, cap, "s:%s", json_string_value(json_object_get(v, "stringValue")));
		else
			snprintf(buf, cap, "i:%s", json_string_value(json_object_get(v, "intValue")));
		return buf;
	}
	return NULL;
}

Test(otlp, span_json_table)
{
	static const struct {
		const char *parent;
		const char *name;
		enum gw_otlp_kind kind;
		int64_t start_us, end_us, offset_us;
		enum gw_otlp_status status;
		const char *msg;
		struct gw_otlp_attr attrs[3];
		size_t nattrs;
		/* expected */
		const char *e_name, *e_start, *e_end, *e_msg;
		const char *e_attr_key, *e_attr;
	} rows[] = {
		/* An RPC span with its caller's parent: times in Unix ns as strings. */
		{ PID, "animate3d.v1.Jobs/GetStatus", GW_OTLP_SERVER, 1000, 1500, 1700000000000000LL,
		  GW_OTLP_UNSET, NULL, { { "rpc.grpc.status_code", NULL, 0 } }, 1,
		  "animate3d.v1.Jobs/GetStatus", "1700000000001000000", "1700000000001500000", NULL,
		  "rpc.grpc.status_code", "i:0" },
		/* A root (no parentSpanId), an error with its message. */
		{ "", "upstream login", GW_OTLP_INTERNAL, 5, 9, 0, GW_OTLP_ERROR,
		  "upstream login answered HTTP 500", { { "upstream.account", "main", 0 } }, 1,
		  "upstream login", "5000", "9000", "upstream login answered HTTP 500",
		  "upstream.account", "s:main" },
		/* An upstream attempt: route template as name, string and integer attributes. */
		{ PID, "GET /status/{rids}", GW_OTLP_CLIENT, 0, 1, 10, GW_OTLP_UNSET, "",
		  { { "http.request.method", "GET", 0 }, { "url.template", "/status/{rids}", 0 },
		    { "http.response.status_code", NULL, 200 } }, 3,
		  "GET /status/{rids}", "10000", "11000", NULL, "http.response.status_code", "i:200" },
		/* Control and non-ASCII bytes become '?'; the JSON stays valid. */
		{ PID, "bad\tname\xc3\xa9", GW_OTLP_CLIENT, 0, 0, 0, GW_OTLP_ERROR, "line\nbreak",
		  { { "tenant", "t\"q", 0 } }, 1, "bad?name??", "0", "0", "line?break", "tenant",
		  "s:t\"q" },
		/* Names longer than the limit are cut. */
		{ PID, "0123456789012345678901234567890123456789012345678901234567890123456789",
		  GW_OTLP_SERVER, 0, 0, 0, GW_OTLP_UNSET, NULL, { { "k", NULL, -5 } }, 1,
		  "0123456789012345678901234567890123456789012345678901234567890123", "0", "0", NULL,
		  "k", "i:-5" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_trace t = trace_of(rows[i].parent, GW_TRACE_SAMPLED);
		struct gw_otlp_span_in in = { .trace = &t, .name = rows[i].name, .kind = rows[i].kind,
					      .start_us = rows[i].start_us, .end_us = rows[i].end_us,
					      .status = rows[i].status, .status_msg = rows[i].msg,
					      .nattrs = rows[i].nattrs };
		struct gw_otlp_span s;
		json_t *j, *st, *back;
		char *text, buf[128];
		const char *a;

		memcpy(in.attrs, rows[i].attrs, sizeof rows[i].attrs);
		gw_otlp_span_fill(&s, &in, rows[i].offset_us);
		j = gw_otlp_span_json(&s);
		cr_assert_not_null(j, "row %zu", i);
		/* What is sent is what a collector parses back. */
		text = json_dumps(j, JSON_COMPACT);
		back = json_loads(text, 0, NULL);
		cr_assert_not_null(back, "row %zu: %s", i, text);
		cr_expect_str_eq(json_string_value(json_object_get(back, "traceId")), TID, "row %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(back, "spanId")), SID, "row %zu", i);
		if (rows[i].parent[0])
			cr_expect_str_eq(json_string_value(json_object_get(back, "parentSpanId")),
					 rows[i].parent, "row %zu", i);
		else
			cr_expect_null(json_object_get(back, "parentSpanId"), "row %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(back, "name")), rows[i].e_name,
				 "row %zu", i);
		cr_expect_eq(json_integer_value(json_object_get(back, "kind")), rows[i].kind,
			     "row %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(back, "startTimeUnixNano")),
				 rows[i].e_start, "row %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(back, "endTimeUnixNano")),
				 rows[i].e_end, "row %zu", i);
		st = json_object_get(back, "status");
		cr_expect_eq(json_integer_value(json_object_get(st, "code")), rows[i].status,
			     "row %zu", i);
		if (rows[i].e_msg)
			cr_expect_str_eq(json_string_value(json_object_get(st, "message")),
					 rows[i].e_msg, "row %zu", i);
		else
			cr_expect_null(json_object_get(st, "message"), "row %zu", i);
		cr_expect_eq(json_array_size(json_object_get(back, "attributes")), rows[i].nattrs,
			     "row %zu", i);
		a = attr_of(back, rows[i].e_attr_key, buf, sizeof buf);
		cr_expect(a && strcmp(a, rows[i].e_attr) == 0, "row %zu: %s = %s", i,
			  rows[i].e_attr_key, a ? a : "(none)");
		json_decref(back);
		free(text);
		json_decref(j);
	}
}

Test(otlp, request_envelope)
{
	json_t *spans = NULL, *root = gw_otlp_request_new("svc-a", "host-1/abc", &spans);
	json_t *rs, *res_attrs, *ss;
	char buf[64];

	cr_assert_not_null(root);
	cr_assert_not_null(spans);
	cr_assert_eq(json_array_size(json_object_get(root, "resourceSpans")), 1);
	rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
	res_attrs = json_object_get(json_object_get(rs, "resource"), "attributes");
	/* attr_of reads any object with an "attributes" array. */
	cr_expect_str_eq(attr_of(json_object_get(rs, "resource"), "service.name", buf, sizeof buf),
			 "s:svc-a");
	cr_expect_str_eq(attr_of(json_object_get(rs, "resource"), "service.instance.id", buf,
				 sizeof buf), "s:host-1/abc");
	cr_expect_eq(json_array_size(res_attrs), 2);
	ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(ss, "scope"), "name")),
			 "animate3d-gateway");
	cr_expect_eq(json_object_get(ss, "spans"), spans);
	json_decref(root);

	root = gw_otlp_request_new("svc-b", NULL, &spans);
	rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
	cr_expect_eq(json_array_size(json_object_get(json_object_get(rs, "resource"), "attributes")),
		     1);
	json_decref(root);
}

/* A port that refuses connections while fd stays open: bound, never listening. */
static int refusing_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(*fd >= 0);
	cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void end_spans(struct gw_otlp *o, const struct gw_trace *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct gw_otlp_span_in in = { .trace = t, .name = "x", .kind = GW_OTLP_SERVER };

		gw_otlp_span_end(o, &in);
	}
}

Test(otlp, queue_bounds_and_failed_post)
{
	static const struct {
		size_t queue_max, batch_max, sampled, unsampled;
		uint64_t e_queued, e_full, e_unsampled;
	} rows[] = {
		{ 8, 4, 20, 3, 8, 12, 3 },
		{ 8, 8, 8, 0, 8, 0, 0 },
		{ 16, 4, 3, 5, 3, 0, 5 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct event_base *base = event_base_new();
		struct gw_trace yes = trace_of(PID, GW_TRACE_SAMPLED), no = trace_of(PID, 0);
		char url[64], err[256];
		int fd, port = refusing_port(&fd);
		struct gw_otlp_opts opts = { .endpoint = url, .service_name = "t",
					     .batch_max = rows[i].batch_max,
					     .queue_max = rows[i].queue_max, .flush_ms = 600000,
					     .timeout_ms = 2000 };
		struct gw_otlp *o;
		const struct gw_otlp_counters *n;
		struct timeval tv = { 2, 0 };

		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", port);
		o = gw_otlp_new(base, &opts, err, sizeof err);
		cr_assert_not_null(o, "row %zu: %s", i, err);
		end_spans(o, &yes, rows[i].sampled);
		end_spans(o, &no, rows[i].unsampled);
		n = gw_otlp_counters(o);
		cr_expect_eq(n->queued, rows[i].e_queued, "row %zu: queued %lu", i,
			     (unsigned long)n->queued);
		cr_expect_eq(n->dropped[GW_OTLP_DROP_QUEUE_FULL], rows[i].e_full, "row %zu", i);
		cr_expect_eq(n->unsampled, rows[i].e_unsampled, "row %zu", i);
		/* A full batch went to a collector that refuses: kept for one retry, never blocking
		 * the caller (the POST runs on the loop, not in span_end). */
		cr_expect_eq(n->posts_retried + n->posts_failed + n->posts_ok, 0, "row %zu", i);
		if (rows[i].sampled >= rows[i].batch_max) {
			for (int k = 0; k < 200 && n->posts_retried == 0; k++) {
				event_base_loopexit(base, &tv);
				event_base_loop(base, EVLOOP_ONCE);
			}
			cr_expect_eq(n->posts_retried, 1, "row %zu", i);
			cr_expect_eq(n->queued, rows[i].e_queued - rows[i].batch_max, "row %zu", i);
			cr_expect_eq(n->exported, 0, "row %zu", i);
		}
		gw_otlp_free(o);
		close(fd);
		event_base_free(base);
	}
}

Test(otlp, options_refused)
{
	static const struct {
		size_t batch_max, queue_max;
		long flush_ms;
	} rows[] = {
		{ 0, 10, 100 }, { 10, 5, 100 }, { GW_OTLP_MAX_BATCH + 1, GW_OTLP_MAX_QUEUE, 100 },
		{ 1, 1, 0 },
	};
	struct event_base *base = event_base_new();
	char err[256];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_otlp_opts opts = { .endpoint = "http://127.0.0.1:1/v1/traces",
					     .batch_max = rows[i].batch_max,
					     .queue_max = rows[i].queue_max,
					     .flush_ms = rows[i].flush_ms, .timeout_ms = 100 };

		cr_expect_null(gw_otlp_new(base, &opts, err, sizeof err), "row %zu", i);
		cr_expect(strstr(err, "otlp") != NULL, "row %zu: %s", i, err);
	}
	event_base_free(base);
}

Test(otlp, headers_file_table)
{
	static const struct {
		const char *text;
		int ok;
		const char *e_err;	/* part of the message; the content is never quoted */
	} rows[] = {
		{ "Authorization: Bearer s3cret\n", 1, NULL },
		{ "# the collector's token\n\nAuthorization: Bearer s3cret\r\nX-Scope-OrgID: t1\n", 1,
		  NULL },
		{ "", 1, NULL },
		{ "Authorization Bearer s3cret\n", 0, ":1: expected \"Name: value\"" },
		{ "ok: 1\nBad Name: s3cret\n", 0, ":2: expected" },
		{ "A: s3cret\x01\n", 0, ":1: control character" },
		{ "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: s3cret\n", 0, ":9: more than 8" },
	};
	struct event_base *base = event_base_new();

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char path[] = "/tmp/test_otlp_hdrXXXXXX", err[256] = "";
		int fd = mkstemp(path);
		struct gw_otlp_opts opts = { .endpoint = "http://127.0.0.1:1/v1/traces",
					     .headers_file = path, .batch_max = 1, .queue_max = 1,
					     .flush_ms = 100000, .timeout_ms = 100 };
		struct gw_otlp *o;

		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, rows[i].text, strlen(rows[i].text)),
			     (ssize_t)strlen(rows[i].text));
		close(fd);
		o = gw_otlp_new(base, &opts, err, sizeof err);
		unlink(path);
		if (rows[i].ok) {
			cr_expect_not_null(o, "row %zu: %s", i, err);
		} else {
			cr_expect_null(o, "row %zu", i);
			cr_expect(strstr(err, rows[i].e_err) != NULL, "row %zu: %s", i, err);
			cr_expect(strstr(err, "s3cret") == NULL, "row %zu: %s", i, err);
		}
		gw_otlp_free(o);
	}
	event_base_free(base);
}

/* The direct encoder writes the same bytes as jansson's compact dump of the reference builders,
 * for a batch in one piece and split in two (the ring's wrap), escapes included. */
Test(otlp, direct_encoding_equals_jansson)
{
	static const struct {
		const char *parent, *name, *msg, *sattr;
		enum gw_otlp_status status;
		int64_t start_us;
		size_t nattrs;
	} rows[] = {
		{ PID, "animate3d.v1.Jobs/GetStatus", NULL, "team-a", GW_OTLP_UNSET, 5, 3 },
		{ "", "upstream login", "upstream rejected \"x\" \\ creds", "main", GW_OTLP_ERROR, 7, 1 },
		{ PID, "GET /status/{rids}", "", "q\"uo\\te", GW_OTLP_OK, -3, 2 },
		{ PID, "n\x01\xff", "m\n", "\t", GW_OTLP_ERROR, 0, 0 },
		{ PID, "x", NULL, "", GW_OTLP_UNSET, 1700000000000000LL, 6 },
	};
	struct gw_otlp_span s[sizeof rows / sizeof rows[0]];
	const size_t n = sizeof rows / sizeof rows[0];

	for (size_t i = 0; i < n; i++) {
		struct gw_trace t = trace_of(rows[i].parent, GW_TRACE_SAMPLED);
		struct gw_otlp_span_in in = {
			.trace = &t, .name = rows[i].name, .kind = (enum gw_otlp_kind)(1 + i % 3),
			.start_us = rows[i].start_us, .end_us = rows[i].start_us + 9,
			.status = rows[i].status, .status_msg = rows[i].msg,
			.attrs = { { "tenant", rows[i].sattr, 0 }, { "n", NULL, -42 },
				   { "http.method", "GET", 0 }, { "c", NULL, 0 },
				   { "k\"ey", "v", 0 }, { "big", NULL, 9223372036854775807LL } },
			.nattrs = rows[i].nattrs,
		};

		gw_otlp_span_fill(&s[i], &in, 1000);
	}
	for (size_t split = 0; split <= n; split++) {
		for (int inst = 0; inst < 2; inst++) {
			const char *instance = inst ? "vm-1/\"a\\b" : NULL;
			json_t *spans = NULL, *root = gw_otlp_request_new("svc \"q\"", instance, &spans);
			char *want, *got;
			size_t len = 0;

			cr_assert_not_null(root);
			for (size_t i = 0; i < n; i++)
				cr_assert_eq(json_array_append_new(spans, gw_otlp_span_json(&s[i])), 0);
			want = json_dumps(root, JSON_COMPACT);
			got = gw_otlp_encode("svc \"q\"", instance, s, split, s + split, n - split,
					     &len);
			cr_assert_not_null(got);
			cr_expect_str_eq(got, want, "split %zu, instance %d", split, inst);
			cr_expect_eq(len, strlen(got));
			free(got);
			free(want);
			json_decref(root);
		}
	}
	/* No spans: a valid request all the same. */
	{
		size_t len = 0;
		char *got = gw_otlp_encode("s", NULL, NULL, 0, NULL, 0, &len);
		json_t *back = json_loads(got, 0, NULL);

		cr_expect_not_null(back, "%s", got);
		json_decref(back);
		free(got);
	}
}

/* A collector on the test's own loop (evhttp on 127.0.0.1): answers 200, counts the spans. */
static void collector_cb(struct evhttp_request *req, void *arg)
{
	size_t *spans = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	json_t *j, *arr;

	cr_assert_not_null(body);
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	j = json_loads(body, 0, NULL);
	cr_assert_not_null(j, "%s", body);
	arr = json_object_get(json_array_get(json_object_get(json_array_get(
		json_object_get(j, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
	*spans += json_array_size(arr);
	json_decref(j);
	free(body);
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* More than a batch waiting: the next POST follows the last one at once, not at the next
 * flush tick (which never comes here): every span is exported. */
Test(otlp, batches_follow_each_other)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *sock;
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	size_t received = 0;
	struct gw_trace yes = trace_of(PID, GW_TRACE_SAMPLED);
	char url[64], err[256];
	struct gw_otlp_opts opts = { .endpoint = url, .service_name = "t", .batch_max = 4,
				     .queue_max = 32, .flush_ms = 600000, .timeout_ms = 2000 };
	struct gw_otlp *o;
	const struct gw_otlp_counters *n;
	struct timeval tv = { 1, 0 };

	evhttp_set_gencb(http, collector_cb, &received);
	sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	cr_assert_not_null(sock);
	cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&a, &alen), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", ntohs(a.sin_port));
	o = gw_otlp_new(base, &opts, err, sizeof err);
	cr_assert_not_null(o, "%s", err);
	end_spans(o, &yes, 22);
	n = gw_otlp_counters(o);
	for (int k = 0; k < 400 && n->exported < 20; k++) {
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	cr_expect_eq(n->exported, 20, "exported %lu", (unsigned long)n->exported);
	cr_expect_eq(n->posts_ok, 5);
	cr_expect_eq(n->queued, 2, "less than a batch waits for the tick");
	cr_expect_eq(received, 20);
	cr_expect_eq(n->dropped[GW_OTLP_DROP_QUEUE_FULL], 0);
	gw_otlp_free(o);	/* flushes the last 2 */
	cr_expect_eq(received, 22);
	evhttp_free(http);
	event_base_free(base);
}
