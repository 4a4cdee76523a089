/* otlp: spans to an OpenTelemetry collector over OTLP/HTTP JSON, on the loop (see otlp.h). */
#include "gateway/base/otlp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "gateway/base/clock.h"
#include "gateway/base/curlev.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"

#define OTLP_SCOPE "animate3d-gateway"

struct gw_otlp {
	struct event_base *base;
	char *endpoint;
	char *service;
	char *instance;
	size_t batch_max;
	long flush_ms, timeout_ms;

	/* The ring: cap spans allocated once; head is the oldest. */
	struct gw_otlp_span *ring;
	size_t cap, head, count;
	int64_t wall_offset_us;		/* wall - monotonic, refreshed on every flush tick */

	/* The one batch in flight (or kept for its retry). */
	struct gw_curlev *cv;		/* curl on the loop */
	CURLM *multi;			/* gw_curlev_multi(cv) */
	CURL *easy;
	struct curl_slist *hdrs;	/* content type + headers_file, wiped when freed */
	char *body;
	size_t body_len;
	size_t body_spans;
	int retried;			/* this body was sent once already */
	size_t rlen;

	struct event *flush_timer;	/* every flush_ms */
	struct event *kick;		/* batch_max spans wait: flush from the loop */
	int live;			/* gw_otlp_new completed: free flushes and reports */
	struct gw_otlp_counters n;
};

/* ---- pure: copying and encoding ---- */

/* Copies at most cap - 1 bytes, each outside printable ASCII as '?': cut at any byte, the copy
 * is still valid UTF-8, and nothing in a span needs more (ids, routes, method paths, names). */
static void otlp_copy(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;

	for (size_t i = 0; i < n; i++)
		dst[i] = (unsigned char)src[i] >= 0x20 && (unsigned char)src[i] < 0x7f ? src[i] : '?';
	dst[n] = '\0';
}

void gw_otlp_span_fill(struct gw_otlp_span *out, const struct gw_otlp_span_in *in,
		       int64_t wall_offset_us)
{
	size_t na = in->nattrs < GW_OTLP_ATTRS_MAX ? in->nattrs : GW_OTLP_ATTRS_MAX;

	otlp_copy(out->trace_id, sizeof out->trace_id, in->trace->trace_id);
	otlp_copy(out->span_id, sizeof out->span_id, in->trace->span_id);
	otlp_copy(out->parent_id, sizeof out->parent_id, in->trace->parent_id);
	otlp_copy(out->name, sizeof out->name, in->name);
	otlp_copy(out->msg, sizeof out->msg, in->status_msg);
	out->kind = (uint8_t)in->kind;
	out->status = (uint8_t)in->status;
	out->start_ns = (in->start_us + wall_offset_us) * 1000;
	out->end_ns = (in->end_us + wall_offset_us) * 1000;
	out->nattrs = (uint8_t)na;
	for (size_t i = 0; i < na; i++) {
		out->attrs[i].key = in->attrs[i].key;
		out->attrs[i].is_str = in->attrs[i].str != NULL;
		out->attrs[i].num = in->attrs[i].num;
		otlp_copy(out->attrs[i].str, sizeof out->attrs[i].str, in->attrs[i].str);
	}
}

/* OTLP/JSON writes 64-bit integers as strings (the protobuf JSON mapping). */
static json_t *otlp_int64(long long v)
{
	char b[24];

	snprintf(b, sizeof b, "%lld", v);
	return json_string(b);
}

static json_t *otlp_kv(const char *key, json_t *value, const char *type)
{
	json_t *v = value ? json_pack("{so}", type, value) : NULL;

	return v ? json_pack("{ssso}", "key", key, "value", v) : NULL;
}

json_t *gw_otlp_span_json(const struct gw_otlp_span *s)
{
	json_t *j = json_object(), *attrs = json_array(), *st = json_object();
	json_t *ret = NULL;
	int bad = 0;

	if (!j || !attrs || !st)
		goto out;
	bad |= json_object_set_new(j, "traceId", json_string(s->trace_id));
	bad |= json_object_set_new(j, "spanId", json_string(s->span_id));
	if (s->parent_id[0])
		bad |= json_object_set_new(j, "parentSpanId", json_string(s->parent_id));
	bad |= json_object_set_new(j, "name", json_string(s->name));
	bad |= json_object_set_new(j, "kind", json_integer(s->kind));
	bad |= json_object_set_new(j, "startTimeUnixNano", otlp_int64(s->start_ns));
	bad |= json_object_set_new(j, "endTimeUnixNano", otlp_int64(s->end_ns));
	for (size_t i = 0; i < s->nattrs; i++) {
		json_t *kv = s->attrs[i].is_str
				     ? otlp_kv(s->attrs[i].key, json_string(s->attrs[i].str),
					       "stringValue")
				     : otlp_kv(s->attrs[i].key, otlp_int64(s->attrs[i].num),
					       "intValue");

		bad |= json_array_append_new(attrs, kv);
	}
	bad |= json_object_set_new(j, "attributes", attrs);
	attrs = NULL;
	bad |= json_object_set_new(st, "code", json_integer(s->status));
	if (s->msg[0])
		bad |= json_object_set_new(st, "message", json_string(s->msg));
	bad |= json_object_set_new(j, "status", st);
	st = NULL;
	if (bad)
		goto out;
	ret = j;
	j = NULL;
out:
	json_decref(j);
	json_decref(attrs);
	json_decref(st);
	return ret;
}

json_t *gw_otlp_request_new(const char *service, const char *instance, json_t **spans)
{
	json_t *rattrs = json_array(), *arr = json_array(), *root = NULL;

	if (!rattrs || !arr)
		goto out;
	if (json_array_append_new(rattrs, otlp_kv("service.name", json_string(service),
						  "stringValue")) ||
	    (instance && json_array_append_new(rattrs, otlp_kv("service.instance.id",
								 json_string(instance),
								 "stringValue"))))
		goto out;
	/* "o" steals both arrays, also when json_pack fails. */
	root = json_pack("{s[{s{so}s[{s{ss}so}]}]}", "resourceSpans", "resource", "attributes",
			 rattrs, "scopeSpans", "scope", "name", OTLP_SCOPE, "spans", arr);
	rattrs = NULL;
	if (root)
		*spans = arr;
	arr = NULL;
out:
	json_decref(rattrs);
	json_decref(arr);
	return root;
}

/* ---- the direct encoder (see otlp.h: the same bytes as the jansson builders) ---- */

#define OTLP_BODY_START 16384		/* first size of a POST body; doubled as needed */

struct otlp_buf {
	char *p;
	size_t len, cap;
	int bad;			/* out of memory: the rest is not written */
};

/* Room for n more bytes and a NUL; 0, or -1 (out of memory: b->bad). */
static int ob_grow(struct otlp_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : OTLP_BODY_START;
	char *p;

	if (b->bad)
		return -1;
	while (n + 1 > cap - b->len)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->bad = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Inline: a span is some sixty small pieces, and a call per piece showed under callgrind. */
static inline void ob_put(struct otlp_buf *b, const char *s, size_t n)
{
	if (n + 1 > b->cap - b->len && ob_grow(b, n) != 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

#define OB_LIT(b, lit) ob_put((b), (lit), sizeof(lit) - 1)

/* A JSON string of printable ASCII: only '"' and '\' are escaped (as jansson writes them). */
static void ob_str(struct otlp_buf *b, const char *s)
{
	OB_LIT(b, "\"");
	while (*s) {
		size_t n = strcspn(s, "\"\\");

		ob_put(b, s, n);
		s += n;
		if (*s) {
			char esc[2] = { '\\', *s++ };

			ob_put(b, esc, 2);
		}
	}
	OB_LIT(b, "\"");
}

/* Decimal by hand: snprintf was a third of the encoder's instructions (five numbers a span). */
static void ob_int(struct otlp_buf *b, long long v, int quoted)
{
	char num[24];
	char *end = num + sizeof num, *p = end;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	if (quoted)
		*--p = '"';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	if (quoted)
		*--p = '"';
	ob_put(b, p, (size_t)(end - p));
}

static void ob_kv(struct otlp_buf *b, const char *key, const char *str, long long num)
{
	OB_LIT(b, "{\"key\":");
	ob_str(b, key);
	if (str) {
		OB_LIT(b, ",\"value\":{\"stringValue\":");
		ob_str(b, str);
	} else {
		OB_LIT(b, ",\"value\":{\"intValue\":");
		ob_int(b, num, 1);
	}
	OB_LIT(b, "}}");
}

static void ob_span(struct otlp_buf *b, const struct gw_otlp_span *s)
{
	OB_LIT(b, "{\"traceId\":");
	ob_str(b, s->trace_id);
	OB_LIT(b, ",\"spanId\":");
	ob_str(b, s->span_id);
	if (s->parent_id[0]) {
		OB_LIT(b, ",\"parentSpanId\":");
		ob_str(b, s->parent_id);
	}
	OB_LIT(b, ",\"name\":");
	ob_str(b, s->name);
	OB_LIT(b, ",\"kind\":");
	ob_int(b, s->kind, 0);
	OB_LIT(b, ",\"startTimeUnixNano\":");
	ob_int(b, s->start_ns, 1);
	OB_LIT(b, ",\"endTimeUnixNano\":");
	ob_int(b, s->end_ns, 1);
	OB_LIT(b, ",\"attributes\":[");
	for (size_t i = 0; i < s->nattrs; i++) {
		if (i)
			OB_LIT(b, ",");
		ob_kv(b, s->attrs[i].key, s->attrs[i].is_str ? s->attrs[i].str : NULL,
		      s->attrs[i].num);
	}
	OB_LIT(b, "],\"status\":{\"code\":");
	ob_int(b, s->status, 0);
	if (s->msg[0]) {
		OB_LIT(b, ",\"message\":");
		ob_str(b, s->msg);
	}
	OB_LIT(b, "}}");
}

char *gw_otlp_encode(const char *service, const char *instance, const struct gw_otlp_span *a,
		     size_t na, const struct gw_otlp_span *b, size_t nb, size_t *len)
{
	struct otlp_buf o = { 0 };

	OB_LIT(&o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	ob_kv(&o, "service.name", service, 0);
	if (instance) {
		OB_LIT(&o, ",");
		ob_kv(&o, "service.instance.id", instance, 0);
	}
	OB_LIT(&o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"" OTLP_SCOPE "\"},\"spans\":[");
	for (size_t i = 0; i < na + nb; i++) {
		if (i)
			OB_LIT(&o, ",");
		ob_span(&o, i < na ? &a[i] : &b[i - na]);
	}
	OB_LIT(&o, "]}]}]}");
	if (o.bad) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}

/* ---- the ring ---- */

static int64_t otlp_wall_offset_us(void)
{
	return gw_clock_wall_ms() * 1000 - gw_clock_now_us();
}

void gw_otlp_span_end(struct gw_otlp *o, const struct gw_otlp_span_in *in)
{
	if (!o || !in->trace)
		return;
	if (!(in->trace->flags & GW_TRACE_SAMPLED)) {
		o->n.unsampled++;
		return;
	}
	if (o->count == o->cap) {
		o->n.dropped[GW_OTLP_DROP_QUEUE_FULL]++;
		return;
	}
	gw_otlp_span_fill(&o->ring[(o->head + o->count) % o->cap], in, o->wall_offset_us);
	o->count++;
	o->n.queued = o->count;
	/* A full batch goes at once, from the loop (never inside the caller's frame). */
	if (o->count >= o->batch_max && !o->easy && o->kick)
		event_active(o->kick, EV_TIMEOUT, 0);
}

const struct gw_otlp_counters *gw_otlp_counters(const struct gw_otlp *o) { return &o->n; }

/* ---- the POST ---- */

static size_t otlp_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct gw_otlp *o = ud;
	size_t len = size * nmemb;

	(void)p;
	if (len > GW_OTLP_RESP_MAX - o->rlen)
		return 0;	/* the answer is not read: a huge one is cut */
	o->rlen += len;
	return len;
}

static int otlp_start_post(struct gw_otlp *o)
{
	CURL *e = curl_easy_init();

	if (!e)
		return -1;
	curl_easy_setopt(e, CURLOPT_URL, o->endpoint);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, otlp_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
	o->rlen = 0;
	if (curl_multi_add_handle(o->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -1;
	}
	o->easy = e;
	return 0;
}

static void otlp_drop_body(struct gw_otlp *o, enum gw_otlp_drop why)
{
	o->n.dropped[why] += o->body_spans;
	free(o->body);
	o->body = NULL;
	o->body_spans = 0;
	o->retried = 0;
}

/* Takes up to batch_max spans off the ring into o->body. 0, or -1 (out of memory: dropped). */
static int otlp_encode(struct gw_otlp *o)
{
	size_t n = o->count < o->batch_max ? o->count : o->batch_max;
	size_t first = o->cap - o->head < n ? o->cap - o->head : n;	/* up to the ring's end */
	size_t len = 0;
	int rc = -1;

	o->body = gw_otlp_encode(o->service, o->instance, &o->ring[o->head], first, o->ring,
				 n - first, &len);
	if (o->body) {
		o->body_len = len;
		rc = 0;
	}
	o->head = (o->head + n) % o->cap;
	o->count -= n;
	o->n.queued = o->count;
	o->body_spans = n;
	if (rc)
		otlp_drop_body(o, GW_OTLP_DROP_ENCODE);
	return rc;
}

static void otlp_flush(struct gw_otlp *o)
{
	if (o->easy)
		return;
	if (!o->body && (o->count == 0 || otlp_encode(o) != 0))
		return;
	if (otlp_start_post(o) != 0) {
		o->n.posts_failed++;
		otlp_drop_body(o, GW_OTLP_DROP_EXPORT_FAILED);
	}
}

/* Worth the one retry: the collector may be back by the next flush. */
static int otlp_retryable(CURLcode rc, long http)
{
	if (rc != CURLE_OK)
		return rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
		       rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
	return http == 429 || http == 502 || http == 503 || http == 504;
}

/* A full batch waiting goes next at once: under load the export keeps pace with the calls
 * (one POST's round trip per batch_max spans), not with flush_ms. A retry waits for the tick. */
static void otlp_next(struct gw_otlp *o)
{
	if (o->count >= o->batch_max && o->kick)
		event_active(o->kick, EV_TIMEOUT, 0);
}

static void otlp_post_done(struct gw_otlp *o, CURLcode rc)
{
	long http = 0;

	curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &http);
	curl_multi_remove_handle(o->multi, o->easy);
	curl_easy_cleanup(o->easy);
	o->easy = NULL;
	if (rc == CURLE_OK && http >= 200 && http <= 299) {
		o->n.posts_ok++;
		o->n.exported += o->body_spans;
		free(o->body);
		o->body = NULL;
		o->body_spans = 0;
		o->retried = 0;
		otlp_next(o);
		return;
	}
	gw_log(GW_LOG_WARN, "otlp", GW_LS("msg", "span export failed"),
	       GW_LS("error", rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP status"),
	       GW_LN("http", http), GW_LN("spans", (long long)o->body_spans),
	       GW_LS("next", !o->retried && otlp_retryable(rc, http) ? "retry" : "drop"), GW_LEND);
	if (!o->retried && otlp_retryable(rc, http)) {
		o->retried = 1;	/* kept: the next flush tick sends it again */
		o->n.posts_retried++;
		return;
	}
	o->n.posts_failed++;
	otlp_drop_body(o, GW_OTLP_DROP_EXPORT_FAILED);
	otlp_next(o);
}

/* ---- curl on the loop (gateway/base/curlev.h) ---- */

static void otlp_check_done(struct gw_otlp *o)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(o->multi, &left)))
		if (m->msg == CURLMSG_DONE && m->easy_handle == o->easy)
			otlp_post_done(o, m->data.result);
}

/* gw_curlev's check: the POST that ended. */
static void otlp_on_curl(void *arg)
{
	otlp_check_done(arg);
}

static void otlp_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct gw_otlp *o = arg;

	(void)fd;
	(void)what;
	o->wall_offset_us = otlp_wall_offset_us();
	otlp_flush(o);
}

/* ---- headers_file ---- */

/* 1 when s[0..n) is an HTTP header name (RFC 9110 token characters, the common subset). */
static int otlp_header_name_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

/* Reads "Name: value" lines (blank lines and # comments skipped) into o->hdrs. The content may
 * be a token: messages name the line, never what is on it, and every copy is wiped. */
static int otlp_read_headers(struct gw_otlp *o, const char *path, char *err, size_t errlen)
{
	char buf[GW_OTLP_HEADERS_FILE_MAX + 1];
	ssize_t got = 0, r;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1, line = 0;
	size_t nh = 0;
	char *p, *nl;

	if (fd < 0) {
		snprintf(err, errlen, "otlp.headers_file %s: %s", path, strerror(errno));
		return -1;
	}
	while (got < (ssize_t)sizeof buf && (r = read(fd, buf + got, sizeof buf - (size_t)got)) > 0)
		got += r;
	close(fd);
	if (got > GW_OTLP_HEADERS_FILE_MAX) {
		snprintf(err, errlen, "otlp.headers_file %s: larger than %d bytes", path,
			 GW_OTLP_HEADERS_FILE_MAX);
		goto out;
	}
	buf[got] = '\0';
	for (p = buf; p && *p; p = nl) {
		struct curl_slist *l;
		char *colon, *end;

		line++;
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		end = p + strlen(p);
		while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*p || *p == '#')
			continue;
		colon = strchr(p, ':');
		if (!colon || !otlp_header_name_ok(p, (size_t)(colon - p))) {
			snprintf(err, errlen, "otlp.headers_file %s:%d: expected \"Name: value\"", path,
				 line);
			goto out;
		}
		for (const char *c = colon + 1; *c; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t') {
				snprintf(err, errlen, "otlp.headers_file %s:%d: control character in the value",
					 path, line);
				goto out;
			}
		if (++nh > GW_OTLP_HEADERS_MAX) {
			snprintf(err, errlen, "otlp.headers_file %s:%d: more than %d headers", path, line,
				 GW_OTLP_HEADERS_MAX);
			goto out;
		}
		l = curl_slist_append(o->hdrs, p);
		if (!l) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		o->hdrs = l;
	}
	rc = 0;
out:
	explicit_bzero(buf, sizeof buf);
	return rc;
}

static void otlp_free_headers(struct gw_otlp *o)
{
	for (struct curl_slist *l = o->hdrs; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(o->hdrs);
	o->hdrs = NULL;
}

int gw_otlp_check_headers(const char *path, char *err, size_t errlen)
{
	struct gw_otlp o;
	int rc;

	memset(&o, 0, sizeof o);
	rc = otlp_read_headers(&o, path, err, errlen);
	otlp_free_headers(&o);
	return rc;
}

/* ---- life ---- */

/* A copy with every byte outside printable ASCII as '?' (what the direct encoder needs). */
static char *otlp_clean_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p && *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return d;
}

struct gw_otlp *gw_otlp_new(struct event_base *base, const struct gw_otlp_opts *opts, char *err,
			    size_t errlen)
{
	struct gw_otlp *o = NULL, *ret = NULL;
	struct timeval tv;
	struct curl_slist *l;

	snprintf(err, errlen, "out of memory");
	if (!opts->endpoint || opts->batch_max < 1 || opts->batch_max > GW_OTLP_MAX_BATCH ||
	    opts->queue_max < opts->batch_max || opts->queue_max > GW_OTLP_MAX_QUEUE ||
	    opts->flush_ms <= 0 || opts->timeout_ms <= 0) {
		snprintf(err, errlen, "otlp: endpoint, batch_max, queue_max, flush_ms or timeout_ms "
			 "out of range");
		return NULL;
	}
	o = calloc(1, sizeof *o);
	if (!o)
		goto out;
	o->base = base;
	o->batch_max = opts->batch_max;
	o->cap = opts->queue_max;
	o->flush_ms = opts->flush_ms;
	o->timeout_ms = opts->timeout_ms;
	o->endpoint = strdup(opts->endpoint);
	o->service = otlp_clean_dup(opts->service_name ? opts->service_name : "animate3d-gateway");
	o->instance = opts->instance ? otlp_clean_dup(opts->instance) : NULL;
	o->ring = calloc(o->cap, sizeof *o->ring);
	if (!o->endpoint || !o->service || (opts->instance && !o->instance) || !o->ring)
		goto out;
	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (!l)
		goto out;
	o->hdrs = l;
	if (opts->headers_file && otlp_read_headers(o, opts->headers_file, err, errlen) != 0)
		goto out;
	snprintf(err, errlen, "cannot start the OTLP exporter");
	o->cv = gw_curlev_new(base, otlp_on_curl, o);
	o->multi = o->cv ? gw_curlev_multi(o->cv) : NULL;
	o->flush_timer = event_new(base, -1, EV_PERSIST, otlp_on_flush, o);
	o->kick = event_new(base, -1, 0, otlp_on_flush, o);
	if (!o->cv || !o->flush_timer || !o->kick)
		goto out;
	o->wall_offset_us = otlp_wall_offset_us();
	tv.tv_sec = o->flush_ms / 1000;
	tv.tv_usec = (o->flush_ms % 1000) * 1000;
	if (event_add(o->flush_timer, &tv) != 0)
		goto out;
	o->live = 1;
	ret = o;
	o = NULL;
	err[0] = '\0';
out:
	gw_otlp_free(o);
	return ret;
}

void gw_otlp_free(struct gw_otlp *o)
{
	int64_t until;
	struct timeval tick = { 0, 20000 };

	if (!o)
		return;
	/* The last spans (the calls that drained) get one short chance; a collector that is down
	 * does not hold the exit up for longer than the bound. */
	until = gw_clock_now_us() + GW_OTLP_SHUTDOWN_MS * 1000LL;
	while (o->live && (o->easy || o->body || o->count) &&
	       gw_clock_now_us() < until) {
		if (!o->easy) {
			o->retried = 1;	/* at exit there is no later flush to retry on */
			otlp_flush(o);	/* sends the next batch, or drops it (counted) */
			if (!o->easy)
				continue;
		}
		event_base_loopexit(o->base, &tick);
		event_base_loop(o->base, EVLOOP_ONCE);
	}
	if (o->easy) {
		curl_multi_remove_handle(o->multi, o->easy);
		curl_easy_cleanup(o->easy);
		o->easy = NULL;
	}
	if (o->body)
		otlp_drop_body(o, GW_OTLP_DROP_SHUTDOWN);
	o->n.dropped[GW_OTLP_DROP_SHUTDOWN] += o->count;
	o->count = 0;
	if (o->live)
		gw_log(GW_LOG_INFO, "otlp", GW_LS("msg", "exporter stopped"),
		       GW_LN("exported", (long long)o->n.exported),
		       GW_LN("dropped_at_exit", (long long)o->n.dropped[GW_OTLP_DROP_SHUTDOWN]),
		       GW_LN("dropped_failed", (long long)o->n.dropped[GW_OTLP_DROP_EXPORT_FAILED]),
		       GW_LN("dropped_full", (long long)o->n.dropped[GW_OTLP_DROP_QUEUE_FULL]),
		       GW_LEND);
	gw_curlev_free(o->cv);
	if (o->flush_timer)
		event_free(o->flush_timer);
	if (o->kick)
		event_free(o->kick);
	otlp_free_headers(o);
	free(o->ring);
	free(o->endpoint);
	free(o->service);
	free(o->instance);
	free(o);
}

/* ---- metrics ---- */

void gw_otlp_render_metrics(void *arg, struct gw_metrics_out *out)
{
	static const char *const reasons[GW_OTLP_DROP_N] = { "queue_full", "export_failed",
							     "encode", "shutdown" };
	const struct gw_otlp_counters *n = gw_otlp_counters(arg);
	char labels[48];

	gw_metrics_one(out, "otlp_spans_exported_total", "counter",
		       "Spans the OTLP collector accepted.", n->exported);
	gw_metrics_family(out, "otlp_spans_dropped_total", "counter",
			  "Spans not exported, by reason: the queue was full, their batch failed "
			  "(after one retry), out of memory encoding, still queued at exit.");
	for (size_t i = 0; i < GW_OTLP_DROP_N; i++) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", reasons[i]);
		gw_metrics_value(out, "otlp_spans_dropped_total", labels, n->dropped[i]);
	}
	gw_metrics_one(out, "otlp_spans_unsampled_total", "counter",
		       "Spans of traces the caller marked not sampled: not exported.", n->unsampled);
	gw_metrics_one(out, "otlp_spans_queued", "gauge", "Spans waiting for export.", n->queued);
	gw_metrics_family(out, "otlp_exports_total", "counter",
			  "OTLP POSTs by outcome: ok (2xx), retried (sent again on the next flush), "
			  "failed (its spans dropped).");
	gw_metrics_value(out, "otlp_exports_total", "result=\"ok\"", n->posts_ok);
	gw_metrics_value(out, "otlp_exports_total", "result=\"retried\"", n->posts_retried);
	gw_metrics_value(out, "otlp_exports_total", "result=\"failed\"", n->posts_failed);
}
