/*
 * otlp: export of spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/, ExportTraceServiceRequest), on the loop.
 *
 * Which spans: one per RPC (SERVER, named by its gRPC method path "animate3d.v1.Jobs/GetStatus"),
 * one per upstream request attempt (CLIENT, named by its route template "GET /status/{rids}", a
 * child of its call's span), one per upstream login ("upstream login", the root of its own
 * trace, with its GET /session/auth attempts as children). Only spans of sampled traces are
 * kept (W3C trace-flags; with export on, a trace the gateway starts itself is sampled, a
 * caller's "not sampled" is respected), counted apart.
 *
 * How: gw_otlp_span_end() copies the span into a ring of queue_max spans allocated at start
 * (the memory never grows: queue_max x sizeof(struct gw_otlp_span)); a full ring drops the new
 * span, counted. Every flush_ms, or as soon as batch_max spans wait, up to batch_max spans are
 * encoded (gw_otlp_encode, below) and POSTed to the endpoint with libcurl multi on the loop; one batch is in
 * flight at a time. A batch that fails with a connection error, a timeout, 429 or 502/503/504
 * is sent once more on the next flush; any other failure, or a second one, drops it, counted.
 * Nothing here ever blocks the loop, and an exporter that is down costs the calls nothing but
 * the copy into the ring.
 *
 * Strings copied into a span are cut to the named limits below. Nothing secret goes into a span:
 * callers pass ids, names from the config, route templates, codes; the collector's headers
 * (headers_file, which may hold a token) are read once at start, never logged, and wiped when
 * freed.
 *
 * Loop thread only, except gw_otlp_span_fill and the encoders (pure).
 */
#ifndef A3D_GATEWAY_OTLP_H
#define A3D_GATEWAY_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/base/trace.h"

#define GW_OTLP_NAME_MAX 64		/* bytes of a span name (route templates, method paths) */
#define GW_OTLP_ATTRS_MAX 6		/* attributes of one span */
#define GW_OTLP_STR_MAX 64		/* bytes of a string attribute value */
#define GW_OTLP_MSG_MAX 128		/* bytes of a status message */
#define GW_OTLP_HEADERS_MAX 8		/* lines of headers_file */
#define GW_OTLP_HEADERS_FILE_MAX 4096	/* bytes of headers_file */
#define GW_OTLP_RESP_MAX 65536		/* bytes of a collector's answer read; more cuts it */
#define GW_OTLP_SHUTDOWN_MS 2000	/* at exit, the last batches get at most this long */

/* Defaults and bounds of the otlp: section (gateway/config/config.h checks them). */
#define GW_OTLP_DEFAULT_BATCH 512
#define GW_OTLP_DEFAULT_QUEUE 4096
#define GW_OTLP_DEFAULT_FLUSH_MS 2000
#define GW_OTLP_DEFAULT_TIMEOUT_MS 5000
#define GW_OTLP_MAX_BATCH 8192
#define GW_OTLP_MAX_QUEUE 1000000

/* Span kinds and status codes as OTLP numbers them. */
enum gw_otlp_kind { GW_OTLP_INTERNAL = 1, GW_OTLP_SERVER = 2, GW_OTLP_CLIENT = 3 };
enum gw_otlp_status { GW_OTLP_UNSET = 0, GW_OTLP_OK = 1, GW_OTLP_ERROR = 2 };

/* An attribute: key is a static string; str NULL means the integer num. */
struct gw_otlp_attr {
	const char *key;
	const char *str;
	long long num;
};

/* A span as its owner ends it (everything borrowed for the duration of the call). */
struct gw_otlp_span_in {
	const struct gw_trace *trace;	/* trace_id, span_id, parent_id ("" = root), flags */
	const char *name;
	enum gw_otlp_kind kind;
	int64_t start_us, end_us;	/* monotonic (gw_clock_now_us) */
	enum gw_otlp_status status;
	const char *status_msg;		/* NULL or "": none */
	struct gw_otlp_attr attrs[GW_OTLP_ATTRS_MAX];
	size_t nattrs;
};

/* A span as it waits in the ring: copied, times in Unix nanoseconds. */
struct gw_otlp_span {
	char trace_id[GW_TRACE_ID_HEX + 1];
	char span_id[GW_TRACE_SPAN_HEX + 1];
	char parent_id[GW_TRACE_SPAN_HEX + 1];
	char name[GW_OTLP_NAME_MAX + 1];
	uint8_t kind, status;
	uint8_t nattrs;
	int64_t start_ns, end_ns;
	char msg[GW_OTLP_MSG_MAX + 1];
	struct {
		const char *key;
		int is_str;
		long long num;
		char str[GW_OTLP_STR_MAX + 1];
	} attrs[GW_OTLP_ATTRS_MAX];
};

/* Copies in into *out; wall_offset_us is added to the monotonic times (wall - monotonic). Pure. */
void gw_otlp_span_fill(struct gw_otlp_span *out, const struct gw_otlp_span_in *in,
		       int64_t wall_offset_us);

/*
 * The encoding, twice. gw_otlp_encode writes the POST body straight into one buffer: measured
 * under callgrind (tests/bench/otlp_cost.py), building, dumping and freeing the same document
 * with jansson cost 72 000 to 101 000 instructions per call on the loop (every call a span),
 * twice to three times a whole cached GetStatus. It can, because every string of a span is printable ASCII (gw_otlp_span_fill makes
 * it so; service and instance are cleaned the same way), so only '"' and '\' need escaping. The
 * jansson builders below are the reference: the tests check that both give the same bytes.
 */
/* The ExportTraceServiceRequest of spans a[0..na) then b[0..nb) (the ring's two halves), one
 * resource (service.name, service.instance.id when not NULL), one scope; malloc'd, NUL-terminated,
 * *len bytes. NULL when out of memory. Pure. */
char *gw_otlp_encode(const char *service, const char *instance, const struct gw_otlp_span *a,
		     size_t na, const struct gw_otlp_span *b, size_t nb, size_t *len);
/* The OTLP/JSON object of one span (new reference), or NULL when memory runs out. Pure. */
struct json_t;
struct json_t *gw_otlp_span_json(const struct gw_otlp_span *s);
/* A new ExportTraceServiceRequest with one resource (service.name, service.instance.id when not
 * NULL) and one scope; *spans is its (borrowed) spans array to append to. NULL when out of
 * memory. Pure. */
struct json_t *gw_otlp_request_new(const char *service, const char *instance,
				   struct json_t **spans);

/* Why spans were dropped (the reason label of otlp_spans_dropped_total). */
enum gw_otlp_drop {
	GW_OTLP_DROP_QUEUE_FULL,	/* the ring was full */
	GW_OTLP_DROP_EXPORT_FAILED,	/* their batch failed (after the one retry) */
	GW_OTLP_DROP_ENCODE,		/* out of memory while encoding */
	GW_OTLP_DROP_SHUTDOWN,		/* still waiting when the process stopped */
	GW_OTLP_DROP_N
};
struct gw_otlp_counters {
	uint64_t queued;		/* gauge: spans in the ring */
	uint64_t unsampled;		/* spans of traces not sampled: not kept */
	uint64_t exported;		/* spans the collector accepted (2xx) */
	uint64_t dropped[GW_OTLP_DROP_N];
	uint64_t posts_ok, posts_failed, posts_retried;	/* POSTs by outcome */
};

struct event_base;
struct gw_metrics_out;
struct gw_otlp_opts {
	const char *endpoint;		/* http(s) URL of the collector's traces path */
	const char *headers_file;	/* NULL, or a file of "Name: value" lines sent with each POST */
	const char *service_name;	/* resource service.name */
	const char *instance;		/* resource service.instance.id, may be NULL */
	size_t batch_max, queue_max;	/* 1..GW_OTLP_MAX_BATCH, batch_max..GW_OTLP_MAX_QUEUE */
	long flush_ms, timeout_ms;	/* > 0 */
};

/* The exporter; NULL with err set (never quoting the headers file's content) when the headers
 * file is unreadable or malformed, an option is out of range, or memory or libcurl fails. */
struct gw_otlp;
struct gw_otlp *gw_otlp_new(struct event_base *base, const struct gw_otlp_opts *opts, char *err,
			    size_t errlen);
/* Reads and checks a headers file as gw_otlp_new does (--check-config). 0, or -1 with err set
 * (naming the line, never quoting it). The content is wiped. */
int gw_otlp_check_headers(const char *path, char *err, size_t errlen);
/* Flushes what waits, runs the loop until it is sent or GW_OTLP_SHUTDOWN_MS passed, counts the
 * rest as dropped (shutdown) in a log line, then frees. The loop must not be running. NULL is
 * fine. */
void gw_otlp_free(struct gw_otlp *o);

/* Ends a span: copied into the ring (or counted as dropped or unsampled). Never blocks, never
 * calls back. Callers skip building *in when their struct gw_otlp pointer is NULL (export off). */
void gw_otlp_span_end(struct gw_otlp *o, const struct gw_otlp_span_in *in);

const struct gw_otlp_counters *gw_otlp_counters(const struct gw_otlp *o);
/* The otlp_* families of /metrics (a gw_metrics_render_fn; arg is the struct gw_otlp). */
void gw_otlp_render_metrics(void *arg, struct gw_metrics_out *o);

#endif
