/*
 * call: one gRPC call from arrival to its single close path, on the loop thread.
 *
 * The top (gateway/server.c) hands every completion-queue event here. A call is decoded,
 * authenticated (authorization: Bearer <key> -> tenant), checked against the method's permission,
 * then given to the method's handler with the decoded request. What a call reaches beyond itself
 * is the environment (gateway/call/env.h) and its service's state (gw_call_svc). A handler finishes the call exactly
 * once with gw_call_reply() (unary), gw_call_fail(), or gw_call_stream_end() (server streaming).
 *
 * Lifetime: a call is freed only when its RECV_CLOSE batch has completed, no batch is pending and
 * the handler has finished it; handlers that start async work register an on_cancel hook that the
 * call runs when the client cancels or the deadline passes (abort the upstream transfer there; do
 * not finish the call from it). After gw_call_* finishing functions, the handler must not touch c.
 */
#ifndef A3D_GATEWAY_CALL_H
#define A3D_GATEWAY_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "gateway/api/translate.h"
#include "gateway/base/trace.h"

#define GW_CALL_MAX_STREAM_QUEUE 64	/* server-streaming messages queued behind one SEND */
#define GW_CALL_ANON_LOG_PER_S 20	/* access lines per second of calls without a tenant */

struct gw_call;
struct gw_env;
struct gw_svc;
struct gw_tenant_cfg;
struct gw_up_account;

/* GW_BIDI_STREAM: the client streams (gw_call_recv) and the server streams (gw_call_stream_send)
 * at once, as server reflection does; like client streaming, no request is decoded up front. */
enum gw_method_kind { GW_UNARY, GW_CLIENT_STREAM, GW_SERVER_STREAM, GW_BIDI_STREAM };

/* 1 when the method's requests arrive as a stream (no request message at the call's start). */
#define GW_METHOD_STREAMS_IN(m) ((m)->kind == GW_CLIENT_STREAM || (m)->kind == GW_BIDI_STREAM)

typedef void (*gw_handler_fn)(struct gw_call *c);

/*
 * One method row carries every fact about a method (the table is gateway/methods.c; Redis's
 * command table is the model): adding a method is one row plus its translate functions.
 */
struct gw_method {
	const char *path;				/* "/animate3d.v1.Jobs/GetStatus" */
	const char *name;				/* "GetStatus": messages, rate.costs keys */
	const ProtobufCMessageDescriptor *req_desc;	/* NULL for client and bidi streaming */
	enum gw_method_kind kind;
	unsigned perm;					/* enum gw_perm; 0 = no key needed (health) */
	unsigned cost;					/* tokens a call takes from its tenant's
							 * bucket (rate.costs may override) */
	unsigned own;					/* ownership rule: enum gw_ro_kind
							 * (gateway/svc/rpc_owner.h); 0 = none */
	unsigned flags;					/* GW_METHOD_* */
	struct gw_tr_rpc tr;				/* the upstream request and its answer
							 * (gateway/api/translate.h); zero when the
							 * handler does not use them */
	gw_handler_fn handler;
	const struct gw_svc *svc;			/* whose state gw_call_svc() gives */
};
#define GW_METHOD_IDEMPOTENCY_KEY 1u	/* honours an idempotency_key field (StartJob) */

/* Accessors, valid while the call is alive. */
struct gw_env *gw_call_env(struct gw_call *c);
void *gw_call_svc(struct gw_call *c);				/* the state of the method's service */
const struct gw_method *gw_call_method(struct gw_call *c);
size_t gw_call_method_index(struct gw_call *c);			/* row in env->methods */
const ProtobufCMessage *gw_call_request(struct gw_call *c);	/* decoded request, owned by call */
const struct gw_tenant_cfg *gw_call_tenant(struct gw_call *c);	/* NULL for unauthenticated methods */
size_t gw_call_tenant_index(struct gw_call *c);
unsigned gw_call_perms(struct gw_call *c);			/* the key's enum gw_perm bits; 0 without */
struct gw_up_account *gw_call_account(struct gw_call *c);	/* the tenant's upstream account */
int64_t gw_call_time_left_ms(struct gw_call *c);		/* -1 = no deadline */
const char *gw_call_id(struct gw_call *c);			/* request id for logs */
/* The call's request id, trace and span (gateway/base/trace.h): its x-request-id and traceparent
 * when valid, else generated ones; the span is the gateway's. Log lines of the call carry
 * GW_LTRACE(gw_call_trace(c)); upstream requests made for it carry it as their parent
 * (gw_up_request.trace). */
const struct gw_trace *gw_call_trace(struct gw_call *c);
void gw_call_count_upstream(struct gw_call *c);			/* +1 upstream request, for the access log */
/* The client's address as gRPC core names it ("ipv4:10.0.0.1:5555"), cut to fit buf; "" if unknown. */
void gw_call_peer(struct gw_call *c, char *buf, size_t len);

/* Handler-owned state and the cancel hook (runs on the loop, at most once). */
void gw_call_set_data(struct gw_call *c, void *data);
void *gw_call_data(struct gw_call *c);
void gw_call_on_cancel(struct gw_call *c, void (*fn)(struct gw_call *c, void *data));
int gw_call_cancelled(struct gw_call *c);

/* Finishing (exactly one, exactly once). msg is borrowed; it is packed before return. */
void gw_call_reply(struct gw_call *c, const ProtobufCMessage *msg);
/* gw_call_reply with the response already packed: bytes[0..len) (borrowed, copied before return)
 * must be the protobuf encoding of the method's response message. */
void gw_call_reply_packed(struct gw_call *c, const void *bytes, size_t len);
/* gw_call_reply_packed with the bytes in a slice the call takes over (its reference is the
 * call's, also when nothing is sent): a reply written in place is sent without a copy. */
void gw_call_reply_slice(struct gw_call *c, grpc_slice s);
void gw_call_fail(struct gw_call *c, grpc_status_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* RESOURCE_EXHAUSTED with grpc-retry-pushback-ms and a google.rpc.RetryInfo detail. */
void gw_call_fail_retry(struct gw_call *c, grpc_status_code code, long retry_ms, const char *msg);
/* Answers an upstream failure as gw_up_failure_of() mapped it (gateway/upstream/upstream.h): with
 * grpc-retry-pushback-ms and RetryInfo when it carries a delay. */
struct gw_up_failure;
void gw_call_fail_up(struct gw_call *c, const struct gw_up_failure *f);

/* Server streaming: messages go out one SEND at a time, up to GW_CALL_MAX_STREAM_QUEUE queued.
 * Returns 0, or -1 when the queue is full or the call is gone (the message is dropped, counted). */
int gw_call_stream_send(struct gw_call *c, const ProtobufCMessage *msg);
void gw_call_stream_end(struct gw_call *c, grpc_status_code code, const char *msg);
/* Server-stream messages of c queued or being sent: a client that does not read its replies
 * (HTTP/2 flow control holds them) makes it grow, which a handler can bound below the queue. */
size_t gw_call_stream_pending(struct gw_call *c);

/* Client streaming: ask for the next message; cb gets it (decoded with desc and checked against
 * the field limits of gateway/api/validate.h) or NULL at the end of the stream (or on error: then
 * bad is set, gw_call_recv_error() says why, naming the field when a limit was broken, and the
 * call should fail INVALID_ARGUMENT). A stream that breaks (client reset, deadline) is not an end:
 * with a cancel hook set, cb is not called and the hook runs. One receive outstanding at a time;
 * the caller drives flow control by when it asks. The message passed to cb is freed by the call
 * after cb returns. */
typedef void (*gw_recv_fn)(struct gw_call *c, const ProtobufCMessage *msg, int bad);
void gw_call_recv(struct gw_call *c, const ProtobufCMessageDescriptor *desc, gw_recv_fn cb);
/* The same with a fast path for bulk bytes (UploadVideo): a message that arrives is first shown
 * to raw, undecoded (bb borrowed, freed by the call); raw returns 1 when it took the message in
 * cb's place (it then did all cb would have done), or 0 to have it decoded and passed to cb. Not
 * called for the end of the stream or errors. Saves the whole-message copy and the decoder's. */
typedef int (*gw_recv_raw_fn)(struct gw_call *c, grpc_byte_buffer *bb);
void gw_call_recv_raw(struct gw_call *c, const ProtobufCMessageDescriptor *desc, gw_recv_fn cb,
		      gw_recv_raw_fn raw);
/* Why the last receive was bad: "malformed message in the stream", "malformed request message"
 * or the broken limit ("name must be a file name: ..."). Valid while the call is alive. */
const char *gw_call_recv_error(struct gw_call *c);

/*
 * Notes on the engine's side of the contract (gateway/call/call.c):
 * - A finishing function on a call the client already left sends nothing and is fine to call.
 * - A cancelled call WITHOUT a cancel hook stays alive until its handler finishes it (the handler
 *   may still hold it); a call WITH a hook is freed once the hook has run, so the hook must make
 *   sure nothing touches the call afterwards. gw_call_on_cancel(c, NULL) removes the hook (do it
 *   when the async work completes normally, before finishing).
 * - Every finished call writes one access-log line ("rpc": request_id, trace_id, span_id, tenant,
 *   method, grpc_status, message, latency_us, upstream_calls) and counts itself in its tenant's
 *   RPC series (gateway/base/metrics.h: by tenant, method and code, with latency).
 * - Every call that sends anything sends initial metadata x-request-id and traceparent
 *   ("00-<trace id>-<the gateway's span id>-<flags>"); invalid x-request-id, traceparent and
 *   tracestate values are replaced or dropped, never echoed, and counted.
 */

/* ---- Engine side: used by gateway/server.c, not by handlers. ---- */

#define GW_CALL_MAX_STATUS_MSG 512	/* status details text; longer is truncated */
#define GW_CALL_MAX_DETAILS_BIN 1024	/* encoded google.rpc.Status with RetryInfo */
#define GW_CALL_MAX_PEER 64		/* a local call's peer name */
#define GW_CALL_REQ_ARENA 128		/* bytes of a decoded request kept in the call itself (a
					 * GetStatus of one rid takes 96); the rest of a larger
					 * one is malloc'd */
#define GW_CALL_GENERIC ((size_t)-1)	/* method index of the generic (unknown method) request */

/* What a completion-queue tag points at: the loop dispatches on its kind. */
enum gw_tag_kind {
	GW_TAG_CALL_NEW = 1,	/* a requested call arrived (or the request was cancelled) */
	GW_TAG_CALL_CLOSE,	/* RECV_CLOSE_ON_SERVER completed */
	GW_TAG_CALL_SEND,	/* a send batch completed */
	GW_TAG_CALL_RECV,	/* a RECV_MESSAGE batch completed (client streaming) */
	GW_TAG_SHUTDOWN		/* grpc_server_shutdown_and_notify completed (the top's) */
};
struct gw_tag {
	enum gw_tag_kind kind;
	void *owner;		/* the struct gw_call, or the top's server */
};

/* Arms one request for method index midx of env->methods (or GW_CALL_GENERIC) on the server's
 * completion queue. Returns 0, or -1 (nothing armed). */
int gw_call_arm(struct gw_env *env, size_t midx);
/* Handles one completion-queue event whose tag belongs to a call. */
void gw_call_event(struct gw_tag *tag, int ok);

/*
 * Local calls: a request that arrives by another door than gRPC (the REST facade, gateway/rest.h).
 * From authentication on it is the same call: the key's tenant and permission, the request's
 * decoding and field limits (gateway/api/validate.h), the rate limit, the method's handler, the
 * access log and the counters. Only the transport differs: the request message comes packed from
 * the caller, the credential is the value a gRPC client sends as `authorization` metadata
 * ("Bearer <key>"), and the end goes to a sink instead of a SEND_STATUS batch. Unary methods only.
 */
struct gw_call_end {
	grpc_status_code code;
	const char *msg;		/* status text ("" for OK); valid during the sink only */
	long retry_ms;			/* the retry delay of a RESOURCE_EXHAUSTED/UNAVAILABLE, or -1 */
	const uint8_t *reply;		/* the packed response message (OK only; NULL: none) */
	size_t reply_len;
	const struct gw_trace *trace;	/* the call's request id and trace, for the answer's
					 * X-Request-Id and traceparent headers */
};
typedef void (*gw_call_sink_fn)(void *arg, const struct gw_call_end *end);

/* What a local call is started with. The credential is either the authorization value auth
 * (copied and wiped at the end) or, for a session opened earlier with a key, that key's SHA-256
 * (key_sha256, looked up in the current key ring at every call: a key removed by a reload no
 * longer works); with tenant set, the credential must belong to that tenant. */
struct gw_call_local_args {
	size_t midx;			/* the method row (unary) */
	const void *req;		/* the packed request message */
	size_t len;
	const char *auth;		/* "Bearer <key>", or NULL */
	size_t authlen;
	const uint8_t *key_sha256;	/* 32 bytes, or NULL */
	const char *tenant;		/* NULL: any */
	/* Without auth and key_sha256: the subject CN of the client certificate the caller's TLS
	 * session verified against tls.client_ca_file (NUL-terminated, at most
	 * GW_CONFIG_MAX_CERT_CN bytes; copied), which maps to a tenant as a gRPC peer's does
	 * (tenants[].client_cert); NULL: none. Ignored when a key is given: the key wins. */
	const char *cert_cn;
	int64_t deadline_ms;		/* from now; < 0: none (handlers bound upstream transfers by it) */
	const char *peer;		/* as gw_call_peer() gives it ("ipv4:127.0.0.1:5555", cut to
					 * GW_CALL_MAX_PEER); NULL: unknown */
	/* The request's X-Request-Id, traceparent and tracestate header values (NUL-terminated,
	 * borrowed; copied what is kept), or NULL: taken as a gRPC call's metadata is. */
	const char *request_id, *traceparent, *tracestate;
	gw_call_sink_fn sink;
	void *arg;
};

/*
 * Starts a local call. *handle is the call while it runs: the engine sets it to NULL just before
 * it calls a->sink, exactly once, on the loop, possibly before this function returns (an
 * immediate refusal). Returns 0, or -1 when the row is not a unary method or memory failed: then
 * the sink is never called and *handle stays NULL.
 */
int gw_call_local(struct gw_env *env, const struct gw_call_local_args *a, struct gw_call **handle);
/* The client of a running local call (*handle non-NULL) left: the call is cancelled as a gRPC call
 * whose client reset it (its cancel hook runs; it ends CANCELLED in the access log and rpc_total,
 * but is not counted against a gRPC connection as a reset) and the sink is never called. */
void gw_call_local_abandon(struct gw_call *c);

/* The rpc_* families of /metrics (calls by method and code, latency, refusals), from the counters
 * in env (arg is the struct gw_env; the top registers it). */
struct gw_metrics_out;
void gw_call_render_metrics(void *env, struct gw_metrics_out *o);

/* Encodes a google.rpc.Status {code, message, details: [Any(google.rpc.RetryInfo{retry_ms})]}
 * into buf (the grpc-status-details-bin trailer). Returns the length, or 0 when cap is too
 * small. msg may be NULL; it is truncated so the whole fits GW_CALL_MAX_DETAILS_BIN. */
size_t gw_call_encode_retry_status(int code, const char *msg, long retry_ms, uint8_t *buf,
				   size_t cap);

#endif
