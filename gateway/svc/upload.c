/* upload: Jobs/UploadVideo relayed as a resumable storage upload through a ring buffer: the
 * client's next messages are received while the previous chunk is on its way to storage (upload.h). */
#include "gateway/svc/upload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <jansson.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/api/validate.h"
#include "gateway/call/call.h"
#include "gateway/config/config.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/base/clock.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"
#include "gateway/base/slots.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/svc/caps.h"
#include "gateway/svc/rpc_owner.h"
#include "gateway/upstream/upstream.h"

#define UPLOAD_PATH_MAX (GW_UPLOAD_NAME_MAX * 3 + 64)	/* "/upload?name=<escaped>&resumable=1" */
#define UPLOAD_MSG_MAX 256
#define UPLOAD_URL_MAX 8192				/* signed URL from /upload */
#define UPLOAD_WHAT "UploadVideo"
#define UPLOAD_PATH "/animate3d.v1.Jobs/UploadVideo"
#define UPLOAD_DEFAULT_GRPC_MSG (4u << 20)	/* gRPC's receive limit when none is configured */
#define UPLOAD_CHUNK_TAG 0x1a			/* UploadVideoRequest.chunk: field 3, length-delimited */

/* The uploads of one server (the UploadVideo method row). */
struct gw_upload_ctx {
	struct gw_slots slots;		/* open uploads per tenant */
	struct gw_lograte log;		/* refusals and idle timeouts: the client sets their rate */
	uint64_t idle_timeouts;
	uint64_t too_large;		/* messages over uploads.max_message_bytes */
	uint64_t buffered;		/* gauge: bytes held in rings */
	uint64_t reserved;		/* gauge: bytes of buffers allocated */
};

static const struct gw_caps_what upload_caps = {
	UPLOAD_WHAT, "uploads", "uploads open", "tenant",
	"tenants[].limits.uploads or uploads.max_per_tenant", "uploads.max_concurrent"
};

enum upload_phase {
	UPLOAD_FIRST,		/* waiting for the first message */
	UPLOAD_GET_URL,		/* GET /upload */
	UPLOAD_START,		/* POST x-goog-resumable: start */
	UPLOAD_STREAM,		/* the session is open: chunks go to storage as they fill */
	UPLOAD_FINAL		/* the last PUT is in flight */
};

struct upload {
	struct gw_call *c;
	struct gw_upload_ctx *x;
	char tenant[GW_SLOTS_NAME_MAX + 1];	/* holds one of x->slots */
	struct event *idle;		/* armed while waiting for the client's next message */
	long idle_ms;
	size_t max_msg;			/* chunk bytes one message may carry */
	struct gw_up_account *acct;
	struct gw_up_call *up;
	enum upload_phase phase;
	char name[GW_UPLOAD_NAME_MAX + 1];
	uint64_t declared;		/* 0 = size not given */
	char *signed_url;		/* from /upload: the reply's url */
	char *session_url;		/* Location of the resumable session */
	/* The ring holds bytes [offset, received) of the file, byte b at ring[b % cap]: those not
	 * yet persisted by storage, the PUT in flight (its first put_len) included. */
	unsigned char *ring;
	size_t cap, chunk;
	uint64_t offset;		/* bytes storage persisted */
	uint64_t received;		/* bytes received from the client */
	uint64_t put_len;		/* bytes in the PUT in flight */
	int eof;
	int recv_pending;		/* a receive is asked for and not answered yet */
	unsigned stalls;
	char range[GW_UPLOAD_RANGE_MAX];
};

static void upload_pump(struct upload *u);
static void upload_on_data(struct gw_call *c, const ProtobufCMessage *msg, int bad);
static int upload_on_raw(struct gw_call *c, grpc_byte_buffer *bb);

/* ---- pure parts ---- */

int gw_upload_name_check(const char *name, char *err, size_t errlen)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0) {
		snprintf(err, errlen, "name is required in the first message");
		return -1;
	}
	/* The file name kind of every RPC (validate.h): no '/', no control characters, not "."
	 * or "..", at most GW_UPLOAD_NAME_MAX bytes of UTF-8. */
	return gw_validate_str(GW_VK_FILE_NAME, "name", name, err, errlen) ? -1 : 0;
}

size_t gw_upload_message_max(size_t upload_msg, size_t grpc_msg)
{
	if (grpc_msg == 0)
		grpc_msg = UPLOAD_DEFAULT_GRPC_MSG;
	return upload_msg && upload_msg < grpc_msg ? upload_msg : grpc_msg;
}

size_t gw_upload_buffer_cap(size_t chunk, size_t upload_msg, size_t grpc_msg)
{
	size_t n = 2 * chunk + gw_upload_message_max(upload_msg, grpc_msg);

	return (n + GW_UPLOAD_UNIT - 1) / GW_UPLOAD_UNIT * GW_UPLOAD_UNIT;
}

int gw_upload_next_put(uint64_t offset, uint64_t received, int eof, size_t chunk, size_t cap,
		       uint64_t *len, int *final)
{
	uint64_t held = received - offset, to_end = cap - offset % cap;
	uint64_t n = chunk < to_end ? chunk : to_end;

	/* Strictly more than the chunk: the bytes after it prove it is not the last one, so the
	 * final PUT carries the total (and, but for the case below, data). */
	if (held > n) {
		*len = n;
		*final = 0;
		return 1;
	}
	/* At the end, the rest goes in one piece: it fits before the ring's end (held <= n). An
	 * empty final PUT ("bytes * /N") only when storage persisted everything but never saw the
	 * total, which the rule above prevents; it finalizes rather than hangs. */
	if (eof && received > 0) {
		*len = held;
		*final = 1;
		return 1;
	}
	return 0;
}

size_t gw_upload_chunk_size(size_t configured)
{
	size_t n = configured ? configured : GW_UPLOAD_DEFAULT_CHUNK;

	if (n > GW_UPLOAD_MAX_CHUNK)
		n = GW_UPLOAD_MAX_CHUNK;
	n -= n % GW_UPLOAD_UNIT;
	return n ? n : GW_UPLOAD_UNIT;
}

int gw_upload_content_range(char *out, size_t outlen, uint64_t first, uint64_t len, int final,
			    uint64_t total)
{
	int n;

	if (final && first + len != total)
		return -1;
	if (!final && len == 0)
		return -1;
	if (len == 0)
		n = snprintf(out, outlen, "bytes */%" PRIu64, total);
	else if (final)
		n = snprintf(out, outlen, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
			     first + len - 1, total);
	else
		n = snprintf(out, outlen, "bytes %" PRIu64 "-%" PRIu64 "/*", first, first + len - 1);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int gw_upload_parse_range(const char *range, uint64_t *persisted)
{
	const char *p;
	uint64_t last = 0;
	int digits = 0;

	if (!range || !*range) {
		*persisted = 0;
		return 0;
	}
	if (strncmp(range, "bytes=0-", 8) != 0)
		return -1;
	for (p = range + 8; *p >= '0' && *p <= '9'; p++, digits++) {
		if (last > (UINT64_MAX - 9) / 10)
			return -1;
		last = last * 10 + (uint64_t)(*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (!digits || *p)
		return -1;
	*persisted = last + 1;
	return 0;
}

int gw_upload_advance(uint64_t offset, uint64_t len, uint64_t persisted, uint64_t *consumed)
{
	if (persisted < offset || persisted - offset > len)
		return -1;
	*consumed = persisted - offset;
	return 0;
}

int gw_upload_chunk_header(const unsigned char *p, size_t n, size_t total, size_t *hdr)
{
	uint64_t len = 0;
	size_t i;

	if (n < 2 || p[0] != UPLOAD_CHUNK_TAG)
		return -1;
	for (i = 1; i < n && i <= 10; i++) {
		len |= (uint64_t)(p[i] & 0x7f) << (7 * (i - 1));
		if (!(p[i] & 0x80)) {
			if (len > total || i + 1 + len != total)	/* more fields, or too few bytes */
				return -1;
			*hdr = i + 1;
			return 0;
		}
	}
	return -1;
}

int gw_upload_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			   (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';

		if (o + (keep ? 1 : 3) >= outlen)
			return -1;
		if (keep) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

char *gw_upload_resolve(const char *signed_url, const char *location)
{
	const char *hs, *he;

	if (!location || !*location)
		return NULL;
	if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
		return strdup(location);
	if (location[0] != '/' || location[1] == '/' || !signed_url)
		return NULL;
	hs = strstr(signed_url, "://");
	if (!hs)
		return NULL;
	he = strpbrk(hs + 3, "/?#");
	if (!he)
		he = hs + strlen(hs);
	{
		size_t blen = (size_t)(he - signed_url), llen = strlen(location);
		char *r = malloc(blen + llen + 1);

		if (!r)
			return NULL;
		memcpy(r, signed_url, blen);
		memcpy(r + blen, location, llen + 1);
		return r;
	}
}

/* ---- the handler ---- */

static struct gw_upload_ctx *upload_ctx_new(void)
{
	struct gw_upload_ctx *x = calloc(1, sizeof *x);

	/* Tenants persist across reloads by name: room for renamed ones still uploading. */
	if (x && gw_slots_init(&x->slots, 2 * GW_CONFIG_MAX_TENANTS, 1) != 0) {
		free(x);
		x = NULL;
	}
	return x;
}

static void upload_ctx_free(struct gw_upload_ctx *x)
{
	if (!x)
		return;
	gw_slots_free(&x->slots);
	free(x);
}

static void upload_free(struct upload *u)
{
	if (!u)
		return;
	if (u->x) {
		gw_slots_give(&u->x->slots, u->tenant);
		u->x->buffered -= u->received - u->offset;
		u->x->reserved -= u->ring ? u->cap : 0;
	}
	if (u->idle)
		event_free(u->idle);
	if (u->up)
		gw_up_cancel(u->up);
	if (u->signed_url) {
		explicit_bzero(u->signed_url, strlen(u->signed_url));
		free(u->signed_url);
	}
	if (u->session_url) {
		explicit_bzero(u->session_url, strlen(u->session_url));
		free(u->session_url);
	}
	if (u->ring)
		munmap(u->ring, u->cap);
	free(u);
}

static void upload_on_cancel(struct gw_call *c, void *data)
{
	(void)c;
	upload_free(data);	/* aborts the storage transfer; the call ends by itself */
}

/* Detaches u from the call and frees it; the caller then finishes the call. */
static void upload_release(struct upload *u)
{
	gw_call_on_cancel(u->c, NULL);
	gw_call_set_data(u->c, NULL);
	upload_free(u);
}

/* Ends the call with "UploadVideo: msg", and a retry delay when retry_ms >= 0. */
static void upload_fail_retry(struct upload *u, grpc_status_code code, long retry_ms,
			      const char *msg)
{
	struct gw_call *c = u->c;
	char copy[UPLOAD_MSG_MAX];

	/* Messages mapped for the whole call (what == UPLOAD_WHAT) already carry the prefix. */
	if (strncmp(msg, UPLOAD_WHAT ": ", sizeof UPLOAD_WHAT + 1) == 0)
		snprintf(copy, sizeof copy, "%s", msg);
	else
		snprintf(copy, sizeof copy, "%s: %s", UPLOAD_WHAT, msg);
	upload_release(u);
	if (retry_ms >= 0)
		gw_call_fail_retry(c, code, retry_ms, copy);
	else
		gw_call_fail(c, code, "%s", copy);
}

static void upload_fail(struct upload *u, grpc_status_code code, const char *msg)
{
	upload_fail_retry(u, code, -1, msg);
}

/* Maps a failed upstream/storage answer; what names the step for the message. */
static void upload_fail_upstream(struct upload *u, const struct gw_up_response *res,
				 const char *what)
{
	char msg[UPLOAD_MSG_MAX];
	struct gw_up_failure fail;

	gw_up_failure_of(res, what, &fail);
	if (u->phase != UPLOAD_GET_URL && !res->limited && !res->no_session &&
	    res->curl_rc == CURLE_OK) {
		/* Storage answered: its body may echo the signed URL; say only what failed and where. */
		snprintf(msg, sizeof msg, "storage answered HTTP %ld to %s", res->http_status, what);
		upload_fail(u, GRPC_STATUS_UNAVAILABLE, msg);
		return;
	}
	upload_fail_retry(u, fail.code, fail.retry_ms, fail.msg);
}

static long upload_timeout(struct upload *u)
{
	int64_t left = gw_call_time_left_ms(u->c);

	return left > 0 ? (long)left : 0;
}

/* Starts rq; 0, or -1 after failing the call (u is freed then). */
static int upload_start(struct upload *u, struct gw_up_request *rq, gw_up_done_fn done)
{
	rq->timeout_ms = upload_timeout(u);
	rq->trace = gw_call_trace(u->c);
	gw_call_count_upstream(u->c);
	u->up = gw_up_start(gw_call_env(u->c)->up, u->acct, rq, done, u);
	if (!u->up) {
		upload_fail(u, GRPC_STATUS_UNAVAILABLE, "upstream request could not be started");
		return -1;
	}
	return 0;
}

static void upload_on_put(void *arg, const struct gw_up_response *res)
{
	struct upload *u = arg;
	uint64_t persisted = 0, consumed = 0;
	char what[96];

	u->up = NULL;
	if (res->curl_rc == CURLE_OK && (res->http_status == 200 || res->http_status == 201) &&
	    u->phase == UPLOAD_FINAL) {
		Animate3d__V1__UploadVideoResponse r = ANIMATE3D__V1__UPLOAD_VIDEO_RESPONSE__INIT;
		struct gw_call *c = u->c;

		r.url = u->signed_url;
		r.size = u->received;
		gw_call_on_cancel(c, NULL);
		gw_call_set_data(c, NULL);
		/* The upload is the tenant's from now on (StartJob / GetVideoInfo check it); the
		 * reply goes out once that is written (r is packed before this returns). */
		gw_rpc_owner_record_upload(c, u->signed_url, &r.base);
		upload_free(u);
		return;
	}
	snprintf(what, sizeof what, "the chunk at offset %" PRIu64, u->offset);
	if (res->curl_rc != CURLE_OK || res->http_status != 308) {
		upload_fail_upstream(u, res, what);
		return;
	}
	if (gw_upload_parse_range(res->range, &persisted) != 0 ||
	    gw_upload_advance(u->offset, u->put_len, persisted, &consumed) != 0) {
		upload_fail(u, GRPC_STATUS_UNAVAILABLE, "storage reported an inconsistent Range");
		return;
	}
	/* Storage may persist less than it was sent: keep the rest and send it again. */
	if (consumed == 0 && ++u->stalls >= GW_UPLOAD_MAX_STALLS) {
		upload_fail(u, GRPC_STATUS_UNAVAILABLE, "storage stopped accepting bytes");
		return;
	}
	if (consumed)
		u->stalls = 0;
	u->x->buffered -= consumed;
	u->offset = persisted;	/* the ring's bytes before it are free again */
	u->phase = UPLOAD_STREAM;
	upload_pump(u);
}

/* PUTs the ring's next len bytes (contiguous: gw_upload_next_put); 0, or -1 after failing. */
static int upload_put(struct upload *u, uint64_t len, int final)
{
	struct gw_up_request rq;
	char cr[GW_UPLOAD_RANGE_MAX + 16];

	if (gw_upload_content_range(u->range, sizeof u->range, u->offset, len, final,
				    u->received) != 0) {
		upload_fail(u, GRPC_STATUS_INTERNAL, "cannot express the Content-Range");
		return -1;
	}
	snprintf(cr, sizeof cr, "Content-Range: %s", u->range);
	memset(&rq, 0, sizeof rq);
	rq.method = "PUT";
	rq.url = u->session_url;
	rq.body = (const char *)u->ring + u->offset % u->cap;
	rq.body_len = (size_t)len;
	rq.body_keep = 1;	/* held bytes are not overwritten before storage persisted them */
	rq.content_type = "application/octet-stream";
	rq.headers[0] = cr;
	rq.route = final ? "PUT storage (final chunk)" : "PUT storage (chunk)";
	u->put_len = len;
	u->phase = final ? UPLOAD_FINAL : UPLOAD_STREAM;
	return upload_start(u, &rq, upload_on_put);
}

/* The client sent nothing for idle_ms while we waited: it holds a slot and a buffer for
 * nothing. Fails the call (the transfer is aborted and everything freed by upload_fail). */
static void upload_on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct upload *u = arg;
	char msg[UPLOAD_MSG_MAX];
	uint64_t suppressed = 0;

	(void)fd;
	(void)what;
	u->x->idle_timeouts++;
	if (gw_lograte_allow(&u->x->log, gw_clock_now_us() / 1000, 0, &suppressed))
		gw_log(GW_LOG_WARN, "limit", GW_LTRACE(gw_call_trace(u->c)),
		       GW_LS("method", UPLOAD_WHAT), GW_LS("resource", "uploads"),
		       GW_LS("tenant", u->tenant), GW_LS("cap", "idle_timeout"),
		       GW_LN("idle_ms", u->idle_ms), GW_LN("received", (long long)u->received),
		       GW_LN("suppressed", suppressed), GW_LEND);
	snprintf(msg, sizeof msg,
		 "no message from the client for %ld ms (uploads.idle_timeout_ms); upload aborted",
		 u->idle_ms);
	upload_fail(u, GRPC_STATUS_DEADLINE_EXCEEDED, msg);
}

/* Asks for the client's next message, with the idle timer running until it comes. */
static void upload_recv(struct upload *u, gw_recv_fn cb)
{
	struct timeval tv = { u->idle_ms / 1000, (suseconds_t)(u->idle_ms % 1000) * 1000 };

	if (u->idle && u->idle_ms > 0)
		evtimer_add(u->idle, &tv);
	u->recv_pending = 1;
	gw_call_recv_raw(u->c, &animate3d__v1__upload_video_request__descriptor, cb,
			 cb == upload_on_data ? upload_on_raw : NULL);
}

/* A message (or the end, or an error) came: the client is not idle. */
static void upload_got_message(struct upload *u)
{
	u->recv_pending = 0;
	if (u->idle)
		evtimer_del(u->idle);
}

/* Does what can be done now, both at once: the next chunk goes to storage when none is in
 * flight (and the session is open), and the next message is asked for while the ring has room
 * for the largest one. Receiving overlaps sending: without that, storage sat idle while the
 * client's next chunk came in, and the client waited while storage took the last one. */
static void upload_pump(struct upload *u)
{
	uint64_t len;
	int final;

	if (u->session_url && !u->up &&
	    gw_upload_next_put(u->offset, u->received, u->eof, u->chunk, u->cap, &len, &final) &&
	    upload_put(u, len, final) != 0)
		return;
	if (!u->eof && !u->recv_pending && u->cap - (u->received - u->offset) >= u->max_msg)
		upload_recv(u, upload_on_data);
}

/* The client half-closed: 0, or -1 after failing the call (nothing came, or not what it said). */
static int upload_end(struct upload *u)
{
	char msg[UPLOAD_MSG_MAX];

	u->eof = 1;
	if (u->received == 0) {
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, "the upload is empty");
		return -1;
	}
	if (u->declared && u->declared != u->received) {
		snprintf(msg, sizeof msg, "size says %" PRIu64 " bytes but %" PRIu64 " arrived",
			 u->declared, u->received);
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, msg);
		return -1;
	}
	return 0;
}

/* Whether a message of len chunk bytes may be taken: 0, or -1 after failing the call. */
static int upload_admit_bytes(struct upload *u, size_t len)
{
	char msg[UPLOAD_MSG_MAX];
	size_t held = (size_t)(u->received - u->offset);

	if (len > u->max_msg) {
		u->x->too_large++;
		snprintf(msg, sizeof msg, "a message carried %zu bytes; the limit is %zu "
			 "(uploads.max_message_bytes)", len, u->max_msg);
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, msg);
		return -1;
	}
	if (len > u->cap - held) {	/* not asked for without room: a broken invariant */
		snprintf(msg, sizeof msg, "a message carried %zu bytes; at most %zu fit", len,
			 u->cap - held);
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, msg);
		return -1;
	}
	if (u->declared && u->received + len > u->declared) {
		snprintf(msg, sizeof msg, "size says %" PRIu64 " bytes but more arrived", u->declared);
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, msg);
		return -1;
	}
	return 0;
}

/* Appends n admitted bytes at the ring's end of data, wrapping at its end. */
static void upload_copy_in(struct upload *u, const unsigned char *p, size_t n)
{
	size_t at = (size_t)(u->received % u->cap);
	size_t first = u->cap - at < n ? u->cap - at : n;

	memcpy(u->ring + at, p, first);
	memcpy(u->ring, p + first, n - first);
	u->x->buffered += n;
	u->received += n;
}

/* Appends a message's bytes; 0, or -1 after failing the call. */
static int upload_take(struct upload *u, const Animate3d__V1__UploadVideoRequest *m)
{
	if (m->chunk.len == 0)
		return 0;
	if (upload_admit_bytes(u, m->chunk.len) != 0)
		return -1;
	upload_copy_in(u, m->chunk.data, m->chunk.len);
	return 0;
}

/* gw_call_recv_raw's fast path for the common message, chunk bytes only: they go from gRPC's
 * slices straight into the ring. Decoding made a contiguous copy of the message and protobuf-c a
 * second one of the bytes, each in a fresh allocation of the message's size: most of the
 * gateway's CPU in an upload went to those copies and their page faults. */
static int upload_on_raw(struct gw_call *c, grpc_byte_buffer *bb)
{
	struct upload *u = gw_call_data(c);
	grpc_byte_buffer_reader r;
	grpc_slice *s;
	size_t total, hdr, skip;

	if (!u || bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE)
		return 0;
	total = grpc_byte_buffer_length(bb);
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return 0;
	if (!grpc_byte_buffer_reader_peek(&r, &s) ||
	    gw_upload_chunk_header(GRPC_SLICE_START_PTR(*s), GRPC_SLICE_LENGTH(*s), total, &hdr) != 0) {
		grpc_byte_buffer_reader_destroy(&r);
		return 0;
	}
	upload_got_message(u);
	if (upload_admit_bytes(u, total - hdr) != 0) {
		grpc_byte_buffer_reader_destroy(&r);
		return 1;
	}
	for (skip = hdr; s; skip = 0) {
		upload_copy_in(u, GRPC_SLICE_START_PTR(*s) + skip, GRPC_SLICE_LENGTH(*s) - skip);
		if (!grpc_byte_buffer_reader_peek(&r, &s))
			s = NULL;
	}
	grpc_byte_buffer_reader_destroy(&r);
	upload_pump(u);
	return 1;
}

static void upload_on_data(struct gw_call *c, const ProtobufCMessage *msg, int bad)
{
	struct upload *u = gw_call_data(c);

	upload_got_message(u);
	if (bad) {
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, gw_call_recv_error(c));
		return;
	}
	if (!msg ? upload_end(u) != 0
		 : upload_take(u, (const Animate3d__V1__UploadVideoRequest *)msg) != 0)
		return;
	upload_pump(u);
}

static void upload_on_started(void *arg, const struct gw_up_response *res)
{
	struct upload *u = arg;

	u->up = NULL;
	if (res->curl_rc != CURLE_OK || (res->http_status != 201 && res->http_status != 200)) {
		upload_fail_upstream(u, res, "opening the resumable upload");
		return;
	}
	u->session_url = gw_upload_resolve(u->signed_url, res->location);
	if (!u->session_url) {
		upload_fail(u, GRPC_STATUS_UNAVAILABLE,
			    "storage opened the resumable upload without a usable Location");
		return;
	}
	u->phase = UPLOAD_STREAM;
	upload_pump(u);
}

static void upload_on_url(void *arg, const struct gw_up_response *res)
{
	struct upload *u = arg;
	struct gw_up_request rq;
	json_t *root = NULL;
	const char *url;

	u->up = NULL;
	if (res->no_session || res->curl_rc != CURLE_OK || res->http_status < 200 ||
	    res->http_status > 299) {
		upload_fail_upstream(u, res, UPLOAD_WHAT);
		return;
	}
	root = json_loadb(res->body, res->body_len, 0, NULL);
	url = json_string_value(json_object_get(root, "url"));
	if (!url || strlen(url) > UPLOAD_URL_MAX ||
	    (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
		json_decref(root);
		upload_fail(u, GRPC_STATUS_UNAVAILABLE, "upstream /upload answer has no usable url");
		return;
	}
	u->signed_url = strdup(url);
	json_decref(root);
	if (!u->signed_url) {
		upload_fail(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.url = u->signed_url;
	rq.body = "";
	rq.body_len = 0;
	rq.content_type = "application/octet-stream";
	rq.headers[0] = "x-goog-resumable: start";
	rq.route = "POST storage (resumable start)";
	u->phase = UPLOAD_START;
	upload_start(u, &rq, upload_on_started);
}

static void upload_on_first(struct gw_call *c, const ProtobufCMessage *msg, int bad)
{
	struct upload *u = gw_call_data(c);
	const Animate3d__V1__UploadVideoRequest *m = (const void *)msg;
	const struct gw_config *cfg = gw_call_env(c)->cfg;
	char err[UPLOAD_MSG_MAX], esc[GW_UPLOAD_NAME_MAX * 3 + 1], path[UPLOAD_PATH_MAX];
	struct gw_up_request rq;

	upload_got_message(u);
	if (bad || !m) {
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT,
			    bad ? gw_call_recv_error(c)
				: "the stream ended before the first message (name)");
		return;
	}
	if (gw_upload_name_check(m->name, err, sizeof err) != 0) {
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, err);
		return;
	}
	snprintf(u->name, sizeof u->name, "%s", m->name);
	u->declared = m->size;
	u->chunk = gw_upload_chunk_size(cfg ? cfg->upload_chunk_bytes : 0);
	/* The bound on this upload's memory: a chunk on its way to storage, the next one filling,
	 * and one message. */
	u->max_msg = gw_upload_message_max(cfg ? cfg->uploads.max_message_bytes : 0,
					   cfg ? cfg->max_message_bytes : 0);
	u->cap = gw_upload_buffer_cap(u->chunk, u->max_msg, u->max_msg);
	/* A mapping of its own, unmapped at the end: from malloc's heap, the next upload's ring
	 * could land above a freed one (smaller allocations in its hole), and RSS grew by a ring
	 * (+12 MiB at the fifth of five uploads, step 9 of tests/bench). */
	u->ring = mmap(NULL, u->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->ring == MAP_FAILED) {
		u->ring = NULL;
		upload_fail(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the upload buffer");
		return;
	}
	u->x->reserved += u->cap;
	if (upload_take(u, m) != 0)
		return;
	if (gw_upload_escape(u->name, esc, sizeof esc) != 0 ||
	    snprintf(path, sizeof path, "/upload?name=%s&resumable=1", esc) >= (int)sizeof path) {
		upload_fail(u, GRPC_STATUS_INVALID_ARGUMENT, "name too long once escaped");
		return;
	}
	memset(&rq, 0, sizeof rq);
	rq.method = "GET";
	rq.path = path;
	rq.idempotent = 1;
	rq.route = "GET /upload";
	u->phase = UPLOAD_GET_URL;
	if (upload_start(u, &rq, upload_on_url) == 0)
		upload_pump(u);	/* the client's next messages come in while the session opens */
}

/* Takes one of the tenant's upload slots (current configuration): 0, or -1 with c finished. */
static int upload_admit(struct gw_upload_ctx *x, struct gw_call *c)
{
	const struct gw_config *cfg = gw_call_env(c)->cfg;
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	unsigned global = cfg->uploads.max_concurrent ? cfg->uploads.max_concurrent
						      : GW_CONFIG_DEFAULT_UPLOADS_MAX;
	unsigned cap = gw_config_tenant_cap(cfg, t->limits.uploads, cfg->uploads.max_per_tenant, global);
	enum gw_slots_verdict v = gw_slots_take(&x->slots, t->name, cap, global);

	if (v == GW_SLOTS_OK)
		return 0;
	gw_caps_refuse(c, &x->log, gw_clock_now_us() / 1000, &upload_caps, t->name, v,
		       v == GW_SLOTS_NAME_FULL ? gw_slots_held(&x->slots, t->name) : x->slots.used,
		       v == GW_SLOTS_NAME_FULL ? cap : global);
	return -1;
}

void gw_upload_handle(struct gw_call *c)
{
	struct gw_upload_ctx *x = gw_call_svc(c);
	const struct gw_config *cfg = gw_call_env(c)->cfg;
	struct upload *u;

	if (!gw_call_account(c) || !x || !gw_call_tenant(c)) {
		gw_call_fail(c, GRPC_STATUS_INTERNAL, "%s: tenant has no upstream account",
			     UPLOAD_WHAT);
		return;
	}
	if (gw_rpc_owner_writable(c) != 0)	/* read-only state store: nothing to record it in */
		return;
	if (upload_admit(x, c) != 0)
		return;
	u = calloc(1, sizeof *u);
	if (u)
		u->idle = evtimer_new(gw_call_env(c)->base, upload_on_idle, u);
	if (!u || !u->idle) {
		free(u);
		gw_slots_give(&x->slots, gw_call_tenant(c)->name);
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", UPLOAD_WHAT);
		return;
	}
	u->c = c;
	u->x = x;
	snprintf(u->tenant, sizeof u->tenant, "%s", gw_call_tenant(c)->name);
	u->idle_ms = cfg->uploads.idle_timeout_ms > 0 ? cfg->uploads.idle_timeout_ms
						      : GW_CONFIG_DEFAULT_UPLOAD_IDLE_MS;
	u->acct = gw_call_account(c);
	u->phase = UPLOAD_FIRST;
	gw_call_set_data(c, u);
	gw_call_on_cancel(c, upload_on_cancel);
	upload_recv(u, upload_on_first);
}

/* ---- the service ---- */

static int upload_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	(void)env;
	*state = upload_ctx_new();
	if (!*state) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void upload_svc_free(void *state)
{
	upload_ctx_free(state);
}

static void upload_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_upload_ctx *x = state;

	gw_slots_render(&x->slots, "uploads_tenant", "Open UploadVideo streams by tenant.", "tenant",
			"tenant", 1, o);
	gw_metrics_one(o, "uploads_idle_timeouts_total", "counter",
		       "Uploads failed: no message from the client for uploads.idle_timeout_ms.",
		       x->idle_timeouts);
	gw_metrics_one(o, "uploads_too_large_total", "counter",
		       "Upload messages over uploads.max_message_bytes.", x->too_large);
	gw_metrics_one(o, "uploads_buffered_bytes", "gauge", "Bytes of uploads held in buffers.",
		       x->buffered);
	gw_metrics_one(o, "uploads_buffer_reserved_bytes", "gauge",
		       "Bytes of upload buffers allocated (two chunks + one message each).", x->reserved);
}

const struct gw_svc gw_svc_upload = {
	.name = "upload",
	.init = upload_init,
	.free = upload_svc_free,
	.metrics = upload_metrics,
};
