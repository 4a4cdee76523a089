/*
 * call: one gRPC call from arrival to its single close path. See call.h for the contract.
 *
 * Every send goes through one pump: queued messages leave one SEND_MESSAGE at a time, initial
 * metadata rides with the first batch and the status with the last message (or alone). A unary
 * reply is "queue one message + end OK", so unary, server streaming and client streaming share
 * the path.
 *
 * A call is freed when RECV_CLOSE has completed, no batch is pending, nothing on our stack is
 * using it (busy), and either the handler finished it or its cancel hook ran. A cancelled call
 * without a hook is kept until the handler finishes it: the handler still holds it, and a
 * finishing function on a cancelled call sends nothing.
 */
#include "gateway/call/call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "auth/caller/apikey.h"
#include "auth/caller/clientcert.h"
#include "auth/upstream/session.h"
#include "gateway/base/clock.h"
#include "gateway/base/connguard.h"
#include "gateway/base/errmap.h"
#include "gateway/base/log.h"
#include "gateway/api/validate.h"
#include "gateway/base/lograte.h"
#include "gateway/base/otlp.h"
#include "gateway/base/trace.h"
#include "gateway/call/admit.h"
#include "gateway/call/env.h"
#include "gateway/config/config.h"
#include "gateway/upstream/upstream.h"
#include "google/rpc/status.pb-c.h"

#define CALL_MAX_METHOD_NAME 128	/* unknown method names are clipped to this in messages */

/* What only a local call has (gw_call_local). */
struct call_local {
	const struct gw_call_local_args *args;	/* while gw_call_local runs, else NULL */
	char *auth;			/* wiped and freed with the call */
	size_t auth_len;
	uint8_t key[32];		/* the session's key hash (has_key) */
	int has_key;
	char *tenant;			/* the tenant the credential must belong to, or NULL */
	char cert_cn[GW_CONFIG_MAX_CERT_CN + 1];	/* a verified client certificate's CN, or "" */
	char peer[GW_CALL_MAX_PEER];
	gw_call_sink_fn sink;
	void *sink_arg;
	struct gw_call **handle;	/* the caller's pointer to this call, NULL once the sink ran */
};

struct gw_call {
	struct gw_env *env;
	size_t midx;			/* index into env->methods, or GW_CALL_GENERIC */
	const struct gw_method *m;	/* NULL for generic calls */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_call_details details;	/* generic calls only */
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	struct gw_tag t_new, t_close, t_send, t_recv;
	struct gw_trace trace;		/* request id, trace and span (gateway/base/trace.h); its
					 * tracestate points into md or state_buf */
	char *state_buf;		/* several tracestate values joined, or NULL */
	const char *method_name;	/* the row's path, or name_buf (call_set_name) */
	char name_buf[CALL_MAX_METHOD_NAME];	/* an unknown method's name, made printable */

	int arrived;			/* the request completed with a call */
	int pending;			/* batches started and not completed */
	int busy;			/* handler/callback frames on the stack */
	int close_done;
	int close_cancelled;		/* written by core through RECV_CLOSE */
	int finished;			/* the handler called a finishing function */
	int hook_ran;
	int dead;			/* a send failed or the call was cancelled: send nothing */
	int64_t start_us;

	struct gw_gen *conf;		/* reference taken at authentication */
	const struct gw_tenant_cfg *tenant;
	size_t tenant_idx;
	struct gw_metrics_rpc_cell *rpc_cells;	/* the tenant's RPC series (conf holds them); NULL:
						 * none authenticated */
	unsigned perms;			/* what the caller's key grants (enum gw_perm) */
	const char *auth_by;		/* "key", "cert", "session" (a REST facade cookie), or NULL */
	ProtobufCMessage *req;
	void *data;
	void (*on_cancel)(struct gw_call *c, void *data);
	unsigned upstream_calls;
	struct gw_admit_wait *parked;	/* waiting for its tenant's lease (call_admit), or NULL */
	unsigned admit_cost;

	/* Send pump. */
	int initial_md_sent;
	int send_in_flight;
	grpc_byte_buffer *sending;	/* the message of the batch in flight */
	grpc_byte_buffer *queue[GW_CALL_MAX_STREAM_QUEUE];
	size_t qhead, qlen;
	int end_pending;		/* status waiting behind the queue */
	int end_sent;
	grpc_status_code status;	/* final status, for the access log */
	char status_msg[GW_CALL_MAX_STATUS_MSG];
	long pushback_ms;		/* -1: no retry trailers */

	/* Client streaming receive. */
	grpc_byte_buffer *in;
	const ProtobufCMessageDescriptor *recv_desc;
	gw_recv_fn recv_cb;
	gw_recv_raw_fn recv_raw;	/* sees a message's bytes before they are decoded, or NULL */
	int recv_in_flight;
	char *recv_err;			/* why the last received message was refused: GW_VALIDATE_ERR_MAX
					 * bytes allocated by the first receive, which only client
					 * streaming calls make (the struct stays under 2 KiB) */

	/* A local call (no grpc_call; the REST facade): its credential, peer and sink, allocated
	 * apart so that a gRPC call's struct stays under 2 KiB (see the arena). NULL otherwise. */
	struct call_local *local;

	/* The decoded request's memory: the first GW_CALL_REQ_ARENA bytes here (one allocation
	 * fewer per field for the small requests of polling), the rest from malloc. Small: the
	 * whole struct stays under 2 KiB, which glibc's calloc clears with vector stores (from
	 * 2 KiB on it uses rep stosb, about ten times the instructions). */
	ProtobufCAllocator req_alloc;
	size_t arena_used;
	int arena_spilled;		/* a block of the request came from malloc */
	_Alignas(16) unsigned char arena[GW_CALL_REQ_ARENA];
};

static void call_maybe_free(struct gw_call *c);
static void call_pump(struct gw_call *c);
static void call_local_deliver(struct gw_call *c);

/* ---- accessors ---- */

struct gw_env *gw_call_env(struct gw_call *c) { return c->env; }
size_t gw_call_method_index(struct gw_call *c) { return c->midx; }

void *gw_call_svc(struct gw_call *c)
{
	return c->m && c->env->method_state ? c->env->method_state[c->midx] : NULL;
}
const struct gw_method *gw_call_method(struct gw_call *c) { return c->m; }
const ProtobufCMessage *gw_call_request(struct gw_call *c) { return c->req; }
const struct gw_tenant_cfg *gw_call_tenant(struct gw_call *c) { return c->tenant; }
size_t gw_call_tenant_index(struct gw_call *c) { return c->tenant_idx; }
unsigned gw_call_perms(struct gw_call *c) { return c->perms; }
const char *gw_call_id(struct gw_call *c) { return c->trace.request_id; }
const struct gw_trace *gw_call_trace(struct gw_call *c) { return &c->trace; }

void gw_call_peer(struct gw_call *c, char *buf, size_t len)
{
	char *p = c->call ? grpc_call_get_peer(c->call) : NULL;

	if (c->local) {
		if (len)
			snprintf(buf, len, "%s", c->local->peer);
		return;
	}
	if (len)
		snprintf(buf, len, "%s", p ? p : "");
	gpr_free(p);
}
void gw_call_count_upstream(struct gw_call *c) { c->upstream_calls++; }
void gw_call_set_data(struct gw_call *c, void *data) { c->data = data; }
void *gw_call_data(struct gw_call *c) { return c->data; }
int gw_call_cancelled(struct gw_call *c) { return c->hook_ran || (c->close_done && !c->finished); }
const char *gw_call_recv_error(struct gw_call *c)
{
	return c->recv_err ? c->recv_err : "malformed message in the stream";
}

void gw_call_on_cancel(struct gw_call *c, void (*fn)(struct gw_call *c, void *data))
{
	c->on_cancel = fn;
}

struct gw_up_account *gw_call_account(struct gw_call *c)
{
	if (!c->tenant || c->tenant->account_idx >= c->env->naccounts)
		return NULL;
	return &c->env->accounts[c->tenant->account_idx].up;
}

int64_t gw_call_time_left_ms(struct gw_call *c)
{
	gpr_timespec d, left;

	/* No deadline (most callers send none) told without two calls into gRPC core: the
	 * infinite future is the largest tv_sec, in every clock. */
	if (c->deadline.tv_sec == INT64_MAX)
		return -1;
	d = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
	left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
	if (gpr_time_cmp(left, gpr_time_0(GPR_TIMESPAN)) < 0)
		return 0;
	return gpr_time_to_millis(left);
}

/* ---- byte buffers <-> protobuf-c ---- */

static void *call_arena_alloc(void *data, size_t size)
{
	struct gw_call *c = data;
	size_t need = (size + 15) & ~(size_t)15;	/* what protobuf-c stores: 16-byte aligned */

	if (need >= size && need <= sizeof c->arena - c->arena_used) {
		void *p = c->arena + c->arena_used;

		c->arena_used += need;
		return p;
	}
	c->arena_spilled = 1;
	return malloc(size);
}

/* Arena blocks are the call's (freed with it); the rest came from malloc. */
static void call_arena_free(void *data, void *p)
{
	struct gw_call *c = data;
	uintptr_t a = (uintptr_t)c->arena, q = (uintptr_t)p;

	if (q < a || q >= a + sizeof c->arena)
		free(p);
}

/* Decodes and checks a request message against the contract's field limits (validate.h), with
 * memory from alloc (NULL: malloc). NULL when refused: err says why, *malformed says whether the
 * bytes were not the message at all. */
static ProtobufCMessage *call_unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
				     grpc_byte_buffer *bb, char *err, size_t errlen, int *malformed)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	ProtobufCMessage *msg;

	*malformed = 1;
	if (bb && bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
	    bb->data.raw.slice_buffer.count <= 1) {
		/* The common case, a request in at most one uncompressed slice: read where it
		 * lies. readall would allocate a copy (a GetStatus request is past a slice's inline
		 * bytes), and the error text is written only when there is one. */
		static const uint8_t none[1];

		if (errlen)
			err[0] = '\0';	/* a caller may copy it whatever the outcome */
		if (!bb->data.raw.slice_buffer.count)
			return gw_validate_unpack_with(desc, alloc, none, 0, err, errlen, malformed);
		s = bb->data.raw.slice_buffer.slices[0];
		return gw_validate_unpack_with(desc, alloc, GRPC_SLICE_START_PTR(s),
					       GRPC_SLICE_LENGTH(s), err, errlen, malformed);
	}
	snprintf(err, errlen, "malformed request message");
	if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	s = grpc_byte_buffer_reader_readall(&r);
	msg = gw_validate_unpack_with(desc, alloc, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), err,
				      errlen, malformed);
	grpc_slice_unref(s);
	grpc_byte_buffer_reader_destroy(&r);
	return msg;
}

static grpc_byte_buffer *call_pack(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(len);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* ---- google.rpc.Status with RetryInfo (proto/third_party/google/rpc/status.proto) ---- */

size_t gw_call_encode_retry_status(int code, const char *msg, long retry_ms, uint8_t *buf,
				   size_t cap)
{
	static const char type_url[] = "type.googleapis.com/google.rpc.RetryInfo";
	char text[GW_CALL_MAX_STATUS_MSG + 1];
	uint8_t info_buf[32];	/* a RetryInfo holding one Duration: at most 2 + 11 + 6 bytes */
	Google__Protobuf__Duration delay = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Rpc__RetryInfo info = GOOGLE__RPC__RETRY_INFO__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Google__Protobuf__Any *details[1] = { &any };
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	size_t mlen = msg ? strnlen(msg, GW_CALL_MAX_STATUS_MSG) : 0;

	if (retry_ms < 0)
		retry_ms = 0;
	delay.seconds = retry_ms / 1000;
	delay.nanos = (int32_t)(retry_ms % 1000) * 1000000;
	info.retry_delay = &delay;
	if (google__rpc__retry_info__get_packed_size(&info) > sizeof info_buf)
		return 0;
	any.type_url = (char *)type_url;	/* protobuf-c only reads it */
	any.value.data = info_buf;
	any.value.len = google__rpc__retry_info__pack(&info, info_buf);
	/* The message is what may not fit: clip it, keeping room for code and detail. */
	memcpy(text, msg ? msg : "", mlen);
	text[mlen] = '\0';
	st.code = code;
	st.message = text;
	st.n_details = 1;
	st.details = details;
	if (!buf || google__rpc__status__get_packed_size(&st) > cap)
		return 0;
	return google__rpc__status__pack(&st, buf);
}

/* ---- the send pump ---- */

static void call_start_batch(struct gw_call *c, grpc_op *ops, size_t n, struct gw_tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);

	if (e != GRPC_CALL_OK) {
		/* A programming error (two sends in flight, ...): never hang the call. */
		gw_log(GW_LOG_ERROR, "call", GW_LTRACE(&c->trace), GW_LS("method", c->method_name),
		       GW_LN("start_batch_error", (long long)e), GW_LEND);
		c->dead = 1;
		grpc_call_cancel(c->call, NULL);
		return;
	}
	c->pending++;
}

static void call_drop_queue(struct gw_call *c)
{
	while (c->qlen) {
		grpc_byte_buffer_destroy(c->queue[c->qhead]);
		c->qhead = (c->qhead + 1) % GW_CALL_MAX_STREAM_QUEUE;
		c->qlen--;
	}
}

/*
 * The metadata every call answers with: its x-request-id and its traceparent (the gateway's
 * span, for the caller to link to); initial metadata, or trailers for an end without a message. Both values share one slice allocation; md[0..2)
 * hold a reference each, dropped by the caller after start_batch.
 */
static void call_initial_md(struct gw_call *c, grpc_metadata *md)
{
	size_t rlen = strlen(c->trace.request_id);
	grpc_slice all = grpc_slice_malloc(GW_TRACE_PARENT_LEN + 1 + rlen);
	char *p = (char *)GRPC_SLICE_START_PTR(all);

	gw_trace_format_parent(&c->trace, p, GW_TRACE_PARENT_LEN + 1);
	memcpy(p + GW_TRACE_PARENT_LEN + 1, c->trace.request_id, rlen);
	md[0].key = grpc_slice_from_static_string("x-request-id");
	md[0].value = grpc_slice_sub(all, GW_TRACE_PARENT_LEN + 1, GW_TRACE_PARENT_LEN + 1 + rlen);
	md[1].key = grpc_slice_from_static_string("traceparent");
	md[1].value = grpc_slice_sub(all, 0, GW_TRACE_PARENT_LEN);
	grpc_slice_unref(all);
}

static void call_pump(struct gw_call *c)
{
	grpc_op ops[3];
	size_t n = 0;
	grpc_metadata trailers[4], initial[2];
	size_t ntrailers = 0, ninitial = 0;
	int ids_in_trailers;
	char pushback[24];
	uint8_t details[GW_CALL_MAX_DETAILS_BIN];
	grpc_slice det;
	int with_status;

	if (c->send_in_flight || c->end_sent)
		return;
	if (c->dead || c->close_done) {
		call_drop_queue(c);
		return;
	}
	if (!c->qlen && !c->end_pending)
		return;
	if (c->local) {
		if (c->end_pending)	/* a unary reply leaves with its end, in one piece */
			call_local_deliver(c);
		return;
	}
	memset(ops, 0, sizeof ops);
	memset(trailers, 0, sizeof trailers);
	memset(initial, 0, sizeof initial);
	/* An end without any message (a refusal, an error) must leave as a Trailers-Only response:
	 * gRPC core sends one only when the initial metadata is empty, and a client's retry policy
	 * may retry a call only then (gRFC A6: response headers commit the call). So its ids go
	 * with the trailers; a call that answers anything carries them in its initial metadata. */
	ids_in_trailers = !c->initial_md_sent && !c->qlen && c->end_pending;
	if (!c->initial_md_sent) {
		if (ids_in_trailers) {
			call_initial_md(c, trailers);
			ntrailers = 2;
		} else {
			call_initial_md(c, initial);
			ninitial = 2;
		}
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[n].data.send_initial_metadata.count = ninitial;
		ops[n++].data.send_initial_metadata.metadata = initial;
		c->initial_md_sent = 1;
	}
	if (c->qlen) {
		c->sending = c->queue[c->qhead];
		c->qhead = (c->qhead + 1) % GW_CALL_MAX_STREAM_QUEUE;
		c->qlen--;
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->sending;
	}
	with_status = c->end_pending && c->qlen == 0;
	det = grpc_slice_from_copied_string(c->status_msg);
	if (with_status) {
		if (c->pushback_ms >= 0) {
			size_t dlen = gw_call_encode_retry_status((int)c->status, c->status_msg,
								  c->pushback_ms, details, sizeof details);

			snprintf(pushback, sizeof pushback, "%ld", c->pushback_ms);
			trailers[ntrailers].key = grpc_slice_from_static_string("grpc-retry-pushback-ms");
			/* Copied slices: core may keep a static slice's pointer past start_batch. */
			trailers[ntrailers++].value = grpc_slice_from_copied_string(pushback);
			if (dlen) {
				trailers[ntrailers].key =
					grpc_slice_from_static_string("grpc-status-details-bin");
				trailers[ntrailers++].value =
					grpc_slice_from_copied_buffer((const char *)details, dlen);
			}
		}
		ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[n].data.send_status_from_server.status = c->status;
		ops[n].data.send_status_from_server.status_details = &det;
		ops[n].data.send_status_from_server.trailing_metadata_count = ntrailers;
		ops[n++].data.send_status_from_server.trailing_metadata = trailers;
		c->end_pending = 0;
		c->end_sent = 1;
	}
	c->send_in_flight = 1;
	call_start_batch(c, ops, n, &c->t_send);
	if (c->dead)
		c->send_in_flight = 0;
	/* Core took its own references before start_batch returned. */
	grpc_slice_unref(det);
	for (size_t i = 0; i < ntrailers; i++)
		grpc_slice_unref(trailers[i].value);
	for (size_t i = 0; i < ninitial; i++)
		grpc_slice_unref(initial[i].value);
}

/* A local call's end: the first queued message (the unary reply) and the status go to the sink,
 * and the call counts as closed, as a gRPC call does once its status is sent. */
static void call_local_deliver(struct gw_call *c)
{
	struct gw_call_end end = { c->status, c->status_msg, c->pushback_ms, NULL, 0, &c->trace };
	grpc_byte_buffer_reader r;
	grpc_slice s = grpc_empty_slice();
	int have = 0;

	if (c->qlen && grpc_byte_buffer_reader_init(&r, c->queue[c->qhead])) {
		s = grpc_byte_buffer_reader_readall(&r);
		grpc_byte_buffer_reader_destroy(&r);
		have = 1;
	}
	if (have && c->status == GRPC_STATUS_OK) {
		end.reply = GRPC_SLICE_START_PTR(s);
		end.reply_len = GRPC_SLICE_LENGTH(s);
	}
	c->end_pending = 0;
	c->end_sent = 1;
	c->close_done = 1;
	if (c->local->handle)
		*c->local->handle = NULL;
	c->local->handle = NULL;
	c->local->sink(c->local->sink_arg, &end);
	grpc_slice_unref(s);
	call_drop_queue(c);
}

/* msg (NULL: "") into buf, cut to GW_CALL_MAX_STATUS_MSG - 1 bytes: what snprintf("%s") did,
 * without its formatting machinery (about 500 instructions, on every call that ends OK). */
static void call_copy_msg(char buf[GW_CALL_MAX_STATUS_MSG], const char *msg)
{
	size_t n = msg ? strnlen(msg, GW_CALL_MAX_STATUS_MSG - 1) : 0;

	if (n)
		memcpy(buf, msg, n);
	buf[n] = '\0';
}

static void call_end(struct gw_call *c, grpc_status_code code, const char *msg)
{
	if (c->finished)
		return;		/* a second finish is a handler bug; the first one wins */
	c->finished = 1;
	c->status = code;
	call_copy_msg(c->status_msg, msg);
	if (c->hook_ran || c->close_done) {
		call_maybe_free(c);	/* the client is gone: nothing to send */
		return;
	}
	c->end_pending = 1;
	call_pump(c);
	call_maybe_free(c);
}

/* ---- finishing functions ---- */

void gw_call_reply(struct gw_call *c, const ProtobufCMessage *msg)
{
	if (c->finished)
		return;
	if (msg && !c->hook_ran && !c->close_done && c->qlen < GW_CALL_MAX_STREAM_QUEUE) {
		c->queue[(c->qhead + c->qlen) % GW_CALL_MAX_STREAM_QUEUE] = call_pack(msg);
		c->qlen++;
	}
	call_end(c, GRPC_STATUS_OK, NULL);
}

void gw_call_reply_packed(struct gw_call *c, const void *bytes, size_t len)
{
	if (c->finished)
		return;
	gw_call_reply_slice(c, grpc_slice_from_copied_buffer((const char *)bytes, len));
}

void gw_call_reply_slice(struct gw_call *c, grpc_slice s)
{
	if (c->finished) {
		grpc_slice_unref(s);
		return;
	}
	if (!c->hook_ran && !c->close_done && c->qlen < GW_CALL_MAX_STREAM_QUEUE) {
		c->queue[(c->qhead + c->qlen) % GW_CALL_MAX_STREAM_QUEUE] = grpc_raw_byte_buffer_create(&s, 1);
		c->qlen++;
	}
	grpc_slice_unref(s);	/* the byte buffer holds its own reference */
	call_end(c, GRPC_STATUS_OK, NULL);
}

void gw_call_fail(struct gw_call *c, grpc_status_code code, const char *fmt, ...)
{
	char msg[GW_CALL_MAX_STATUS_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	call_end(c, code, msg);
}

void gw_call_fail_retry(struct gw_call *c, grpc_status_code code, long retry_ms, const char *msg)
{
	if (c->finished)
		return;
	c->pushback_ms = retry_ms < 0 ? 0 : retry_ms;
	call_end(c, code, msg);
}

void gw_call_fail_up(struct gw_call *c, const struct gw_up_failure *f)
{
	if (f->retry_ms >= 0)
		gw_call_fail_retry(c, f->code, f->retry_ms, f->msg);
	else
		gw_call_fail(c, f->code, "%s", f->msg);
}

int gw_call_stream_send(struct gw_call *c, const ProtobufCMessage *msg)
{
	if (c->finished || c->dead || c->hook_ran || c->close_done ||
	    c->qlen >= GW_CALL_MAX_STREAM_QUEUE) {
		c->env->stats.stream_dropped++;
		return -1;
	}
	c->queue[(c->qhead + c->qlen) % GW_CALL_MAX_STREAM_QUEUE] = call_pack(msg);
	c->qlen++;
	call_pump(c);
	return 0;
}

void gw_call_stream_end(struct gw_call *c, grpc_status_code code, const char *msg)
{
	call_end(c, code, msg);
}

size_t gw_call_stream_pending(struct gw_call *c)
{
	return c->qlen + (c->sending ? 1 : 0);
}

void gw_call_recv(struct gw_call *c, const ProtobufCMessageDescriptor *desc, gw_recv_fn cb)
{
	gw_call_recv_raw(c, desc, cb, NULL);
}

void gw_call_recv_raw(struct gw_call *c, const ProtobufCMessageDescriptor *desc, gw_recv_fn cb,
		      gw_recv_raw_fn raw)
{
	grpc_op op;

	if (c->recv_in_flight || c->finished || c->hook_ran || c->close_done || c->dead)
		return;	/* a cancelled call gets no more messages: its hook handles it */
	c->recv_raw = raw;
	if (!c->recv_err)
		c->recv_err = calloc(1, GW_VALIDATE_ERR_MAX);	/* NULL: a generic reason is given */
	c->recv_desc = desc;
	c->recv_cb = cb;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->in;
	c->recv_in_flight = 1;
	call_start_batch(c, &op, 1, &c->t_recv);
	if (c->dead)
		c->recv_in_flight = 0;
}

/* ---- lifecycle ---- */

int gw_call_arm(struct gw_env *env, size_t midx)
{
	struct gw_call *c = calloc(1, sizeof *c);
	grpc_call_error e;
	int rc = -1;

	if (!c)
		goto out;
	c->env = env;
	c->midx = midx;
	c->m = midx == GW_CALL_GENERIC ? NULL : &env->methods[midx];
	/* The table lives longer than any call; a generic call's name is filled in on arrival. */
	c->method_name = c->m ? c->m->path : c->name_buf;
	c->pushback_ms = -1;
	c->t_new = (struct gw_tag){ GW_TAG_CALL_NEW, c };
	c->t_close = (struct gw_tag){ GW_TAG_CALL_CLOSE, c };
	c->t_send = (struct gw_tag){ GW_TAG_CALL_SEND, c };
	c->t_recv = (struct gw_tag){ GW_TAG_CALL_RECV, c };
	grpc_metadata_array_init(&c->md);
	if (!c->m) {
		grpc_call_details_init(&c->details);
		e = grpc_server_request_call(env->grpc, &c->call, &c->details, &c->md, env->cq,
					     env->cq, &c->t_new);
	} else {
		e = grpc_server_request_registered_call(env->grpc, env->method_handles[midx],
							&c->call, &c->deadline, &c->md,
							GW_METHOD_STREAMS_IN(c->m) ? NULL : &c->payload,
							env->cq, env->cq, &c->t_new);
	}
	if (e != GRPC_CALL_OK) {
		gw_log(GW_LOG_ERROR, "server", GW_LS("msg", "request_call failed"),
		       GW_LN("error", (long long)e), GW_LEND);
		goto out;
	}
	c = NULL;	/* the completion queue owns it now */
	rc = 0;
out:
	if (c) {
		grpc_metadata_array_destroy(&c->md);
		if (midx == GW_CALL_GENERIC)
			grpc_call_details_destroy(&c->details);
		free(c);
	}
	return rc;
}

/* The call as a SERVER span (span export on), named by its method path; a call to an unknown
 * method is "unknown method" (the caller's path is not a bounded name). Errors are the codes
 * OpenTelemetry's gRPC conventions count as the server's fault. */
static void call_otlp_span(struct gw_call *c, int64_t end_us)
{
	const char *path = c->m ? c->m->path : NULL;
	const char *slash = path ? strrchr(path, '/') : NULL;
	char svc[GW_OTLP_STR_MAX + 1] = "";
	int server_fault = c->status == GRPC_STATUS_UNKNOWN ||
			   c->status == GRPC_STATUS_DEADLINE_EXCEEDED ||
			   c->status == GRPC_STATUS_UNIMPLEMENTED || c->status == GRPC_STATUS_INTERNAL ||
			   c->status == GRPC_STATUS_UNAVAILABLE || c->status == GRPC_STATUS_DATA_LOSS;
	struct gw_otlp_span_in s = {
		.trace = &c->trace,
		.name = path ? path + 1 : "unknown method",
		.kind = GW_OTLP_SERVER,
		.start_us = c->start_us,
		.end_us = end_us,
		.status = server_fault ? GW_OTLP_ERROR : GW_OTLP_UNSET,
		.status_msg = server_fault ? c->status_msg : NULL,
		.attrs = { { "rpc.system", "grpc", 0 },
			   { "rpc.grpc.status_code", NULL, (long long)c->status } },
		.nattrs = 2,
	};

	if (path && slash && slash > path) {
		snprintf(svc, sizeof svc, "%.*s", (int)(slash - path - 1), path + 1);
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "rpc.service", svc, 0 };
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "rpc.method", slash + 1, 0 };
	}
	if (c->tenant)
		s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "tenant", c->tenant->name, 0 };
	s.attrs[s.nattrs++] = (struct gw_otlp_attr){ "animate3d.request_id", c->trace.request_id, 0 };
	gw_otlp_span_end(c->env->otlp, &s);
}

static void call_log_access(struct gw_call *c)
{
	int64_t latency = gw_clock_now_us() - c->start_us;
	struct gw_stats *st = &c->env->stats;
	unsigned code = (unsigned)c->status < GW_STATS_GRPC_CODES ? (unsigned)c->status : 2;
	uint64_t held = 0;

	if (!c->m)
		st->rpc_unknown_method++;
	else if (c->midx < GW_STATS_MAX_METHODS)
		gw_metrics_rpc(c->rpc_cells ? c->rpc_cells : c->env->metrics.rpc.none, c->midx, code,
			       latency);
	else
		st->rpc_other_method++;
	if (c->env->otlp)
		call_otlp_span(c, c->start_us + latency);
	/* Calls without a tenant (no or a wrong key, unknown method) come at whatever rate anyone
	 * sends them: a rapid-reset flood made one line each, and writing them kept the loop from
	 * draining the flood. Counted above all the same; the next line written says how many
	 * were held back. */
	if (!c->tenant && !gw_lograte_allow(&c->env->anon_rpc_log, gw_clock_now_us() / 1000,
					    GW_CALL_ANON_LOG_PER_S, &held))
		return;
	/* Below the level (warn and up in the benchmarks): not even the fields are gathered. */
	if ((c->status == GRPC_STATUS_OK ? GW_LOG_INFO : GW_LOG_WARN) < gw_log_get_level())
		return;
	gw_log(c->status == GRPC_STATUS_OK ? GW_LOG_INFO : GW_LOG_WARN, "rpc",
	       GW_LTRACE(&c->trace), GW_LS("tenant", c->tenant ? c->tenant->name : "-"),
	       GW_LS("auth", c->auth_by ? c->auth_by : "-"),
	       GW_LS("method", c->method_name), GW_LN("grpc_status", (long long)c->status),
	       GW_LS("message", c->status == GRPC_STATUS_OK ? "" : c->status_msg),
	       GW_LN("latency_us", (long long)latency),
	       GW_LN("upstream_calls", (long long)c->upstream_calls),
	       GW_LN("suppressed", (long long)held), GW_LEND);
}

static void call_free(struct gw_call *c)
{
	if (c->arrived) {
		call_log_access(c);
		c->env->stats.calls_in_flight--;
	}
	call_drop_queue(c);
	if (c->sending)
		grpc_byte_buffer_destroy(c->sending);
	if (c->in)
		grpc_byte_buffer_destroy(c->in);
	free(c->recv_err);
	free(c->state_buf);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	/* All in the arena (the polling case): nothing to walk the message for. */
	if (c->req && c->arena_spilled)
		protobuf_c_message_free_unpacked(c->req, &c->req_alloc);
	if (c->conf)
		gw_gen_put(c->conf);
	if (c->local) {
		if (c->local->auth) {
			explicit_bzero(c->local->auth, c->local->auth_len);
			free(c->local->auth);
		}
		explicit_bzero(c->local->key, sizeof c->local->key);
		free(c->local->tenant);
		free(c->local);
	}
	if (c->call)
		grpc_call_unref(c->call);
	if (!c->m)
		grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	free(c);
}

static void call_maybe_free(struct gw_call *c)
{
	if (c->busy || c->pending || !c->close_done)
		return;
	if (!c->finished && !c->hook_ran)
		return;	/* a cancelled call without a hook: its handler still holds it */
	call_free(c);
}

/*
 * Who is calling: the API key's tenant when the call carries an authorization value (a wrong key
 * is never rescued by a certificate), else the tenant mapped to the verified client certificate's
 * CN (mTLS). Returns 0 with *tidx and *perms set, or -1.
 */
static const grpc_slice *call_authorization(struct gw_call *c);
static int call_authenticate(struct gw_call *c, size_t *tidx, unsigned *perms)
{
	const struct gw_config *cfg = c->conf->cfg;
	const grpc_slice *auth = c->local ? NULL : call_authorization(c);
	const char *val = auth ? (const char *)GRPC_SLICE_START_PTR(*auth) : NULL;
	size_t len = auth ? GRPC_SLICE_LENGTH(*auth) : 0;
	char cn[GW_CLIENTCERT_MAX_CN + 1];
	size_t cnlen;
	int t;

	if (c->local) {
		val = c->local->auth;
		len = c->local->auth_len;
	}
	if (c->local && c->local->has_key) {
		if (gw_apikey_lookup_hash(c->conf->keys, c->local->key, tidx, perms) != 0 ||
		    *tidx >= cfg->ntenants ||
		    (c->local->tenant && strcmp(cfg->tenants[*tidx].name, c->local->tenant) != 0))
			return -1;
		c->auth_by = "session";
		return 0;
	}
	if (val) {
		if (len > GW_APIKEY_MAX_VALUE ||
		    gw_apikey_lookup(c->conf->keys, val, len, tidx, perms) != 0 ||
		    *tidx >= cfg->ntenants ||
		    (c->local && c->local->tenant && strcmp(cfg->tenants[*tidx].name, c->local->tenant) != 0))
			return -1;
		c->auth_by = "key";
		return 0;
	}
	/* A local call's certificate is the one its own transport verified (the REST facade). */
	if (!cfg->tls.client_ca_file)
		return -1;
	cnlen = c->local ? (size_t)snprintf(cn, sizeof cn, "%s", c->local->cert_cn)
			 : gw_clientcert_peer_cn(c->call, cn, sizeof cn);
	t = cnlen ? gw_clientcert_tenant(cfg, cn, cnlen) : -1;
	if (t < 0)
		return -1;
	*tidx = (size_t)t;
	*perms = cfg->tenants[t].client_cert_perms;
	c->auth_by = "cert";
	return 0;
}

/* The raw authorization metadata value (auth/caller/apikey.c parses "Bearer <key>"), or NULL. */
static const grpc_slice *call_authorization(struct gw_call *c)
{
	/* Length first, as call_md_kind: no call into gRPC core (and strlen) per key. */
	for (size_t i = 0; i < c->md.count; i++) {
		const grpc_slice *k = &c->md.metadata[i].key;

		if (GRPC_SLICE_LENGTH(*k) == 13 && memcmp(GRPC_SLICE_START_PTR(*k), "authorization", 13) == 0)
			return &c->md.metadata[i].value;
	}
	return NULL;
}

static void call_set_name(struct gw_call *c)
{
	const char *src;
	size_t n, i;

	if (c->m)
		return;		/* method_name is the row's path from the start */
	/* A client-chosen name: keep it printable and short before it reaches a log or message. */
	src = (const char *)GRPC_SLICE_START_PTR(c->details.method);
	n = GRPC_SLICE_LENGTH(c->details.method);
	for (i = 0; i < n && i + 1 < sizeof c->name_buf; i++)
		c->name_buf[i] = (src[i] > 32 && src[i] < 127 && src[i] != '"') ? src[i] : '?';
	c->name_buf[i] = '\0';
	c->method_name = c->name_buf;
}

enum call_md_kind { CALL_MD_OTHER, CALL_MD_REQUEST_ID, CALL_MD_PARENT, CALL_MD_STATE };

/* Which of the trace's keys md is (keys arrive in lower case). The length picks the candidate:
 * every call's metadata is scanned, most of it authorization and user-agent. */
static enum call_md_kind call_md_kind(const grpc_metadata *md)
{
	const void *k = GRPC_SLICE_START_PTR(md->key);

	switch (GRPC_SLICE_LENGTH(md->key)) {
	case 12:
		return memcmp(k, "x-request-id", 12) == 0 ? CALL_MD_REQUEST_ID : CALL_MD_OTHER;
	case 11:
		return memcmp(k, "traceparent", 11) == 0 ? CALL_MD_PARENT : CALL_MD_OTHER;
	case 10:
		return memcmp(k, "tracestate", 10) == 0 ? CALL_MD_STATE : CALL_MD_OTHER;
	default:
		return CALL_MD_OTHER;
	}
}

static void call_trace_count(struct gw_stats *st, unsigned bad)
{
	if (bad & GW_TRACE_BAD_REQUEST_ID)
		st->trace_bad_request_id++;
	if (bad & GW_TRACE_BAD_PARENT)
		st->trace_bad_parent++;
	if (bad & GW_TRACE_BAD_STATE)
		st->trace_bad_state++;
}

/* With span export on, a trace the gateway starts is sampled (its spans are exported, and the
 * traceparent it answers and sends upstream says so); a caller's own decision stands. */
static void call_trace_sample(struct gw_call *c)
{
	if (c->env->otlp && !c->trace.parent_id[0])
		c->trace.flags |= GW_TRACE_SAMPLED;
}

/* A local call's trace, from the header values its caller passed (gw_call_local_args). Its
 * tracestate is copied: upstream requests of the call may start after the caller's request. */
static void call_trace_begin_local(struct gw_call *c)
{
	const struct gw_call_local_args *a = c->local->args;
	struct gw_trace_in in = { 0 };
	unsigned bad;

	if (a && a->request_id) {
		in.request_id = a->request_id;
		in.request_id_len = strlen(a->request_id);
	}
	if (a && a->traceparent) {
		in.parent = a->traceparent;
		in.parent_len = strlen(a->traceparent);
		in.n_parent = 1;
	}
	if (a && a->tracestate) {
		in.state_len = strnlen(a->tracestate, GW_TRACE_STATE_MAX + 1);
		in.state = a->tracestate;
		if (in.state_len <= GW_TRACE_STATE_MAX && (c->state_buf = malloc(in.state_len + 1))) {
			memcpy(c->state_buf, a->tracestate, in.state_len);
			c->state_buf[in.state_len] = '\0';
			in.state = c->state_buf;
		}
	}
	bad = gw_trace_begin(&c->trace, &c->env->trace_rng, &in);
	if (c->trace.state && c->trace.state != c->state_buf)
		c->trace.state = NULL;	/* not copied (out of memory): not passed on */
	call_trace_count(&c->env->stats, bad);
	call_trace_sample(c);
}

/*
 * The call's request id and trace (gateway/base/trace.h) from its x-request-id, traceparent and
 * tracestate metadata; what is missing or invalid is made up, and what was refused is counted.
 * Several tracestate values are one list (W3C: joined with commas, in order) kept in state_buf;
 * one value is read where gRPC core keeps it (md lives as long as the call).
 */
static void call_trace_begin(struct gw_call *c)
{
	struct gw_stats *st = &c->env->stats;
	struct gw_trace_in in = { 0 };
	size_t nstate = 0, total = 0, len;
	const char *v;
	unsigned bad;

	if (c->local) {
		call_trace_begin_local(c);
		return;
	}
	for (size_t i = 0; i < c->md.count; i++) {
		const grpc_metadata *md = &c->md.metadata[i];
		enum call_md_kind kind = call_md_kind(md);

		if (kind == CALL_MD_OTHER)
			continue;
		v = (const char *)GRPC_SLICE_START_PTR(md->value);
		len = GRPC_SLICE_LENGTH(md->value);
		if (kind == CALL_MD_REQUEST_ID && !in.request_id) {
			in.request_id = v;
			in.request_id_len = len;
		} else if (kind == CALL_MD_PARENT) {
			in.parent = v;
			in.parent_len = len;
			in.n_parent++;
		} else if (kind == CALL_MD_STATE) {
			in.state = v;
			in.state_len = len;
			total += len + 1;
			nstate++;
		}
	}
	if (nstate > 1) {
		/* Rare: a proxy that split the list. Longer than the limit: dropped by begin. */
		char *p = total <= GW_TRACE_STATE_MAX + 1 ? malloc(total) : NULL;
		size_t off = 0;

		for (size_t i = 0; p && i < c->md.count; i++) {
			const grpc_metadata *md = &c->md.metadata[i];

			if (call_md_kind(md) != CALL_MD_STATE)
				continue;
			if (off)
				p[off++] = ',';
			memcpy(p + off, GRPC_SLICE_START_PTR(md->value), GRPC_SLICE_LENGTH(md->value));
			off += GRPC_SLICE_LENGTH(md->value);
		}
		in.state = p ? p : in.state;
		in.state_len = p ? off : GW_TRACE_STATE_MAX + 1;
		c->state_buf = p;
	}
	bad = gw_trace_begin(&c->trace, &c->env->trace_rng, &in);
	call_trace_count(st, bad);
	call_trace_sample(c);
}

/* Finishes c RESOURCE_EXHAUSTED: a retry delay of wait ms, or (-1) its cost above the burst. */
static void call_refuse(struct gw_call *c, int64_t wait, unsigned cost)
{
	char msg[GW_CALL_MAX_STATUS_MSG];

	if (wait < 0) {
		gw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			     "rate limit of tenant %s: %s costs %u, more than its burst of %g",
			     c->tenant->name, c->m->name, cost, c->tenant->burst);
		return;
	}
	snprintf(msg, sizeof msg, "rate limit of tenant %s: retry in %lld ms", c->tenant->name,
		 (long long)wait);
	gw_call_fail_retry(c, GRPC_STATUS_RESOURCE_EXHAUSTED, (long)wait, msg);
}

/* The lease a parked call waited for came (or its wait ended): the rest of call_start. */
static void call_admitted(void *arg, int ok, int64_t wait)
{
	struct gw_call *c = arg;

	c->parked = NULL;
	c->busy++;
	if (ok)
		c->m->handler(c);
	else
		call_refuse(c, wait, c->admit_cost);
	c->busy--;
	call_maybe_free(c);
}

/*
 * The tenant's rate limit before any work (gateway/call/admit.h). 0 to run the handler, 1 parked
 * until its tenant's lease arrives (call_admitted continues; a cancel unparks it in
 * call_on_close), or -1: finished RESOURCE_EXHAUSTED.
 */
static int call_admit(struct gw_call *c)
{
	int64_t wait = 0;
	int rc;

	rc = gw_admit_take_wait(c->env->admit, c->tenant->name, c->tenant_idx, c->midx,
				gw_call_time_left_ms(c), &wait, &c->admit_cost, call_admitted, c,
				&c->parked);
	if (rc == GW_ADMIT_PENDING)
		return 1;
	if (rc)
		return 0;
	call_refuse(c, wait, c->admit_cost);
	return -1;
}

static void call_start(struct gw_call *c)
{
	struct gw_env *env = c->env;
	grpc_op op;
	size_t tidx = 0;
	unsigned perms = 0;

	c->arrived = 1;
	c->start_us = gw_clock_now_us();
	call_trace_begin(c);
	env->stats.calls_in_flight++;
	env->stats.calls_total++;
	if (!c->m)
		c->deadline = c->details.deadline;
	call_set_name(c);

	/* RECV_CLOSE first: its completion is how cancel and deadline reach us. A local call
	 * learns it from gw_call_local_abandon() instead. */
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	if (!c->local)
		call_start_batch(c, &op, 1, &c->t_close);
	if (c->dead) {
		c->close_done = 1;	/* no close will come: free on finish */
		c->finished = 1;
		c->status = GRPC_STATUS_INTERNAL;
		return;
	}

	if (!c->m) {
		gw_call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", c->method_name);
		return;
	}
	if (c->m->perm) {
		c->conf = gw_gen_get(env->gen);
		if (call_authenticate(c, &tidx, &perms) != 0) {
			env->stats.auth_rejected++;
			gw_call_fail(c, GRPC_STATUS_UNAUTHENTICATED, "missing or invalid API key");
			return;
		}
		c->tenant_idx = tidx;
		c->tenant = &c->conf->cfg->tenants[tidx];
		c->rpc_cells = c->conf->rpc_cells[tidx];
		c->perms = perms;
		if (!(perms & c->m->perm)) {
			env->stats.perm_denied++;
			gw_call_fail(c, GRPC_STATUS_PERMISSION_DENIED, "key of tenant %s may not call %s",
				     c->tenant->name, c->m->path);
			return;
		}
	}
	if (!GW_METHOD_STREAMS_IN(c->m) && c->m->req_desc) {
		char err[GW_VALIDATE_ERR_MAX];
		int malformed;

		/* No message because the stream broke first (the client reset it, its deadline
		 * passed): a cancellation, with nobody left to answer. */
		if (!c->payload && c->call && grpc_call_failed_before_recv_message(c->call)) {
			int expired = gw_call_time_left_ms(c) == 0;

			env->stats.cancelled++;
			c->dead = 1;
			gw_call_fail(c, expired ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED,
				     "%s before the request message arrived",
				     expired ? "deadline exceeded" : "cancelled by the client");
			return;
		}
		c->req_alloc = (ProtobufCAllocator){ call_arena_alloc, call_arena_free, c };
		c->req = call_unpack(c->m->req_desc, &c->req_alloc, c->payload, err, sizeof err,
				     &malformed);
		if (!c->req) {
			if (malformed)
				env->stats.malformed++;
			gw_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
			return;
		}
	}
	if (c->payload) {
		grpc_byte_buffer_destroy(c->payload);
		c->payload = NULL;
	}
	if (c->tenant && call_admit(c) != 0)
		return;
	c->m->handler(c);
}

/* A call gRPC core had queued for a connection the gateway has just closed for abuse (rapid
 * reset leaves thousands): nobody is there to answer, and the cheapest way out drains the queue
 * fastest. */
static int call_from_closed_conn(struct gw_call *c)
{
	char peer[GW_CONNGUARD_MAX_PEER];

	if (!gw_connguard_closed_lately(c->env->connguard))
		return 0;	/* the common case: no peer string asked for */
	gw_call_peer(c, peer, sizeof peer);
	return gw_connguard_closed_peer(c->env->connguard, peer);
}

static void call_on_new(struct gw_call *c, int ok)
{
	struct gw_env *env = c->env;

	if (!ok) {
		/* The server is shutting down: this request will never carry a call. */
		call_free(c);
		return;
	}
	if (!env->draining)
		gw_call_arm(env, c->midx);	/* one taken, one armed: as many stay armed */
	if (call_from_closed_conn(c)) {
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
					     "connection closed: abusive", NULL);
		call_free(c);
		return;
	}
	if (env->draining) {
		env->stats.rejected_draining++;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
					     "server is shutting down", NULL);
		call_free(c);
		return;
	}
	c->busy++;
	call_start(c);
	c->busy--;
	call_maybe_free(c);
}

/* A call the client reset counts against its connection (gateway/base/connguard.h): rapid
 * reset (CVE-2023-44487) is many of them on one connection, faster than anyone honest cancels. */
static void call_count_reset(struct gw_call *c)
{
	char peer[GW_CONNGUARD_MAX_PEER];

	/* A local call's client left an HTTP/1.1 connection (which closes with it), not a stream. */
	if (!c->env->connguard || c->env->draining || c->local || gw_call_time_left_ms(c) == 0)
		return;
	gw_call_peer(c, peer, sizeof peer);
	gw_connguard_call_ended(c->env->connguard, peer, 1);
}

static void call_on_close(struct gw_call *c)
{
	c->close_done = 1;
	if (c->finished && c->end_sent && !c->close_cancelled)
		return;
	/* Cancelled by the client, the deadline or the server's drain. */
	c->dead = 1;
	call_drop_queue(c);
	if (c->close_cancelled)
		call_count_reset(c);
	if (c->finished)
		return;	/* the status was queued or sent when the client left */
	c->env->stats.cancelled++;
	if (gw_call_time_left_ms(c) == 0) {
		c->status = GRPC_STATUS_DEADLINE_EXCEEDED;
		snprintf(c->status_msg, sizeof c->status_msg, "deadline exceeded");
	} else if (c->env->draining) {
		c->status = GRPC_STATUS_UNAVAILABLE;	/* what grpc_server_cancel_all_calls sends */
		snprintf(c->status_msg, sizeof c->status_msg, "cancelled: server shutting down");
	} else {
		c->status = GRPC_STATUS_CANCELLED;
		snprintf(c->status_msg, sizeof c->status_msg, "cancelled by the client");
	}
	if (c->parked) {
		/* Still waiting for its lease: no handler holds it, so it ends here. */
		gw_admit_cancel(c->parked);
		c->parked = NULL;
		c->finished = 1;
		return;
	}
	if (c->on_cancel && !c->hook_ran) {
		c->hook_ran = 1;
		c->on_cancel(c, c->data);
	}
}

int gw_call_local(struct gw_env *env, const struct gw_call_local_args *a, struct gw_call **handle)
{
	struct gw_call *c = NULL;
	size_t midx = a->midx;
	grpc_slice s;
	int rc = -1;

	*handle = NULL;
	if (midx >= env->nmethods || env->methods[midx].kind != GW_UNARY)
		goto out;
	c = calloc(1, sizeof *c);
	if (!c)
		goto out;
	c->env = env;
	c->midx = midx;
	c->m = &env->methods[midx];
	c->method_name = c->m->path;
	c->local = calloc(1, sizeof *c->local);
	if (!c->local)
		goto out;
	c->pushback_ms = -1;
	c->local->sink = a->sink;
	c->local->sink_arg = a->arg;
	grpc_metadata_array_init(&c->md);
	snprintf(c->local->peer, sizeof c->local->peer, "%s", a->peer ? a->peer : "");
	c->deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
	if (a->deadline_ms >= 0)
		c->deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					   gpr_time_from_millis(a->deadline_ms, GPR_TIMESPAN));
	if (a->auth) {
		c->local->auth = malloc(a->authlen + 1);
		if (!c->local->auth)
			goto out;
		memcpy(c->local->auth, a->auth, a->authlen);
		c->local->auth[a->authlen] = '\0';
		c->local->auth_len = a->authlen;
	}
	if (a->key_sha256) {
		memcpy(c->local->key, a->key_sha256, sizeof c->local->key);
		c->local->has_key = 1;
	}
	if (a->tenant && !(c->local->tenant = strdup(a->tenant)))
		goto out;
	if (!a->auth && !a->key_sha256 && a->cert_cn &&
	    strlen(a->cert_cn) < sizeof c->local->cert_cn)
		memcpy(c->local->cert_cn, a->cert_cn, strlen(a->cert_cn) + 1);
	s = grpc_slice_from_copied_buffer((const char *)a->req, a->len);
	c->payload = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	if (!c->payload)
		goto out;
	c->local->handle = handle;
	c->local->args = a;
	*handle = c;
	c->busy++;
	if (env->draining) {
		/* As call_on_new refuses a call that arrives during the drain, counted alike. */
		env->stats.rejected_draining++;
		c->arrived = 1;
		c->start_us = gw_clock_now_us();
		call_trace_begin(c);
		env->stats.calls_in_flight++;
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
	} else {
		call_start(c);
	}
	c->busy--;
	c->local->args = NULL;	/* borrowed until now: the trace took what it keeps */
	call_maybe_free(c);	/* when it already ended (a refusal); else its close path frees it */
	c = NULL;
	rc = 0;
out:
	if (c) {
		/* Nothing ran: the sink is not called and the caller's handle stays NULL. */
		*handle = NULL;
		call_free(c);
	}
	return rc;
}

void gw_call_local_abandon(struct gw_call *c)
{
	if (!c || !c->local || c->close_done)
		return;
	c->local->handle = NULL;
	c->close_cancelled = 1;
	c->busy++;
	call_on_close(c);
	c->busy--;
	call_maybe_free(c);
}

static void call_on_send(struct gw_call *c, int ok)
{
	c->send_in_flight = 0;
	if (c->sending) {
		grpc_byte_buffer_destroy(c->sending);
		c->sending = NULL;
	}
	if (!ok) {
		c->dead = 1;
		call_drop_queue(c);
		return;
	}
	call_pump(c);
}

static void call_on_recv(struct gw_call *c, int ok)
{
	grpc_byte_buffer *bb = c->in;
	ProtobufCMessage *msg = NULL;
	gw_recv_fn cb = c->recv_cb;

	c->in = NULL;
	c->recv_in_flight = 0;
	if (c->hook_ran || c->finished || !cb) {
		if (bb)
			grpc_byte_buffer_destroy(bb);
		return;
	}
	if (!ok) {
		if (c->recv_err)
			snprintf(c->recv_err, GW_VALIDATE_ERR_MAX, "malformed message in the stream");
		cb(c, NULL, 1);
	} else if (!bb && grpc_call_failed_before_recv_message(c->call) && c->on_cancel) {
		/* Not the end of the stream: it broke (client reset, deadline). RECV_CLOSE reports
		 * that as a cancellation and runs the handler's hook. */
	} else if (!bb) {
		cb(c, NULL, 0);		/* the client half-closed: end of stream */
	} else if (c->recv_raw && c->recv_raw(c, bb)) {
		grpc_byte_buffer_destroy(bb);
	} else {
		int malformed = 0;
		char err[GW_VALIDATE_ERR_MAX];

		msg = call_unpack(c->recv_desc, NULL, bb, err, sizeof err, &malformed);
		if (c->recv_err)
			snprintf(c->recv_err, GW_VALIDATE_ERR_MAX, "%s", err);
		grpc_byte_buffer_destroy(bb);
		if (!msg && malformed)
			c->env->stats.malformed++;
		cb(c, msg, msg == NULL);
		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
	}
}

void gw_call_event(struct gw_tag *tag, int ok)
{
	struct gw_call *c = tag->owner;

	if (tag->kind == GW_TAG_CALL_NEW) {
		call_on_new(c, ok);	/* may free c */
		return;
	}
	c->pending--;
	c->busy++;
	switch (tag->kind) {
	case GW_TAG_CALL_CLOSE:
		call_on_close(c);
		break;
	case GW_TAG_CALL_SEND:
		call_on_send(c, ok);
		break;
	case GW_TAG_CALL_RECV:
		call_on_recv(c, ok);
		break;
	default:
		break;
	}
	c->busy--;
	call_maybe_free(c);
}

/* ---- metrics ---- */

static const char *call_method_path(const void *arg, size_t i)
{
	return ((const struct gw_env *)arg)->methods[i].path;
}

void gw_call_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_env *env = arg;
	const struct gw_stats *st = &env->stats;

	gw_metrics_rpc_render(&env->metrics.rpc, env->nmethods, call_method_path, env, o);
	gw_metrics_one(o, "rpc_in_flight", "gauge", "Calls accepted and not finished yet.",
		       st->calls_in_flight);
	gw_metrics_one(o, "rpc_accepted_total", "counter", "Calls accepted (every method).",
		       st->calls_total);
	gw_metrics_one(o, "rpc_unknown_method_total", "counter",
		       "Calls to methods this server does not serve (UNIMPLEMENTED).",
		       st->rpc_unknown_method);
	gw_metrics_one(o, "rpc_unauthenticated_total", "counter",
		       "Calls refused for a missing or unknown API key or client certificate.",
		       st->auth_rejected);
	gw_metrics_one(o, "rpc_permission_denied_total", "counter",
		       "Calls whose key lacks the method's permission.", st->perm_denied);
	gw_metrics_one(o, "rpc_malformed_total", "counter", "Undecodable request messages.",
		       st->malformed);
	gw_metrics_one(o, "rpc_cancelled_total", "counter",
		       "Calls cancelled by the client, their deadline or the drain.", st->cancelled);
	gw_metrics_one(o, "rpc_stream_dropped_total", "counter",
		       "Server-stream messages refused (queue full or call gone).", st->stream_dropped);
	gw_metrics_one(o, "rpc_rejected_draining_total", "counter",
		       "Calls refused because the server was shutting down.", st->rejected_draining);
	gw_metrics_one(o, "rpc_request_id_replaced_total", "counter",
		       "Calls whose x-request-id was refused (empty, too long, not printable ASCII) "
		       "and replaced by a generated one.", st->trace_bad_request_id);
	gw_metrics_one(o, "rpc_traceparent_invalid_total", "counter",
		       "Calls whose traceparent was refused (W3C Trace Context): a new trace started.",
		       st->trace_bad_parent);
	gw_metrics_one(o, "rpc_tracestate_dropped_total", "counter",
		       "Calls whose tracestate was dropped (too long, not printable, or without a valid "
		       "traceparent).", st->trace_bad_state);
}
