/*
 * rpc: the a3d client's side of gRPC core. One channel to the gateway, one pluck completion queue,
 * calls made one at a time on the main thread (the CLI never has two calls in flight).
 *
 * A call is the generic shape every method fits: start (initial metadata with the caller's key),
 * zero or more sends, an optional half-close, zero or more receives, finish (the status). Unary,
 * client-streaming (UploadVideo) and server-streaming (WatchStatus) methods are sequences of these.
 *
 * Interruption: every wait plucks in A3D_RPC_TICK_MS slices and looks at a3d_interrupted (set by
 * the SIGINT handler, see a3d.h); once it is set the call in flight is cancelled with
 * grpc_call_cancel, the pending operation completes as failed, and the call's status reads
 * CANCELLED with a3d_call.interrupted set. Nothing is ever cancelled from inside the signal handler.
 *
 * Retries: a3d_rpc_unary retries RESOURCE_EXHAUSTED and UNAVAILABLE up to A3D_RPC_MAX_RETRIES times,
 * waiting what the server's `grpc-retry-pushback-ms` trailer asks (a negative or unreadable one
 * means "do not retry", as in gRPC's retry design), else an exponential backoff from
 * A3D_RPC_BACKOFF_MS; waits longer than A3D_RPC_MAX_PUSHBACK_MS are not waited (the error is
 * returned). Streaming callers retry whole calls themselves with a3d_rpc_retry_wait.
 *
 * Ownership: the rpc holds a copy of the key in its authorization value and wipes it on close.
 * Messages passed in are borrowed; messages handed out are unpacked with protobuf-c's default
 * allocator and freed by the caller with protobuf_c_message_free_unpacked.
 */
#ifndef A3D_CLI_RPC_H
#define A3D_CLI_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#define A3D_RPC_TICK_MS 100			/* how often a wait looks at a3d_interrupted */
#define A3D_RPC_MAX_RETRIES 4			/* retries of one unary call after the first try */
#define A3D_RPC_BACKOFF_MS 250			/* first backoff without a pushback; doubles */
#define A3D_RPC_MAX_PUSHBACK_MS 30000		/* a longer pushback is not waited */
#define A3D_RPC_MAX_RECV_BYTES (64 << 20)	/* largest reply accepted (ListJobs of many jobs) */
#define A3D_RPC_MAX_KEY_BYTES 1024		/* API key length accepted */
#define A3D_RPC_DETAILS_MAX 1024		/* status message bytes kept */
#define A3D_RPC_MAX_PEM_BYTES (1 << 20)		/* a CA bundle, certificate or key file read */

/* Transport security: plaintext unless on; then the server is checked against ca_file (else
 * gRPC's default roots), and cert_file + key_file, when both are set, are the client's
 * certificate (the gateway may map it to a tenant: tls.client_ca_file, tenants[].client_cert). */
struct a3d_tls {
	int on;
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
};

/* One connection to the gateway. */
struct a3d_rpc {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	char auth[sizeof "Bearer " + A3D_RPC_MAX_KEY_BYTES];	/* "Bearer <key>", wiped on close */
	int64_t timeout_ms;		/* deadline of a unary call; 0 = none */
	uint64_t retries;		/* calls retried, for --verbose */
};

/* How a call ended. code is GRPC_STATUS_OK or an error; pushback_ms is the server's
 * grpc-retry-pushback-ms (-1 none, -2 present but negative or unreadable). */
struct a3d_status {
	grpc_status_code code;
	long pushback_ms;
	int interrupted;		/* the user pressed Ctrl-C */
	char details[A3D_RPC_DETAILS_MAX];
};

/* One call in flight. */
struct a3d_call {
	struct a3d_rpc *rpc;
	grpc_call *call;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code code;
	grpc_slice details;
	int got_initial;		/* RECV_INITIAL_METADATA was asked with the first receive */
	int status_armed;		/* RECV_STATUS_ON_CLIENT is pending on tag &status_armed */
	int interrupted;
	int cancelled;
};

/* Opens a channel to addr ("host:port"; TLS as tls says, NULL = plaintext) and keeps "Bearer key"
 * (an empty key sends no authorization: a client certificate alone). Returns 0, or -1 with a
 * message in err (key too long, a PEM file unreadable). The channel connects on the first call. */
int a3d_rpc_open(struct a3d_rpc *r, const char *addr, const char *key, const struct a3d_tls *tls,
		 char *err, size_t errlen);
void a3d_rpc_close(struct a3d_rpc *r);

/* Starts a call of method ("/animate3d.v1.Jobs/GetStatus") with deadline_ms from now (0 = none):
 * sends the initial metadata and arms the status. Returns 0, or -1 (the call is still to be
 * finished with a3d_call_finish, which then reports why). */
int a3d_call_start(struct a3d_rpc *r, struct a3d_call *c, const char *method, int64_t deadline_ms);
/* Sends one message; close = also half-close. Returns 0, or -1 when the call has ended (finish). */
int a3d_call_send(struct a3d_call *c, const ProtobufCMessage *m, int close);
/* Sends one message already encoded in s (its reference is the call's). Returns as above. */
int a3d_call_send_slice(struct a3d_call *c, grpc_slice s);
/* Half-closes without a message. */
int a3d_call_close_send(struct a3d_call *c);
/* Receives one message of type desc into *out. Returns 1 (a message), 0 (end of stream or call
 * ended: finish tells which) or -1 (a reply that does not decode; the call is cancelled). */
int a3d_call_recv(struct a3d_call *c, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/* Ends the call from our side (a local failure mid-stream); its status is then CANCELLED: why. */
void a3d_call_cancel(struct a3d_call *c, const char *why);
/* Waits for the status, fills st and frees the call. Always safe after a3d_call_start. */
void a3d_call_finish(struct a3d_call *c, struct a3d_status *st);

/* One unary call with the retries described above. On GRPC_STATUS_OK *out holds the reply. */
void a3d_rpc_unary(struct a3d_rpc *r, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, struct a3d_status *st);

/* Whether st may be retried as attempt number `attempt` (1 = the first retry); if so, waits for
 * it (interruptibly) and returns 1. Returns 0 when it must not be retried or the wait was
 * interrupted (st->interrupted is then set). */
int a3d_rpc_retry_wait(struct a3d_rpc *r, struct a3d_status *st, int attempt);

/* The delay before retry number attempt (1..) of st, in ms, or -1 for "do not retry". Pure. */
long a3d_rpc_retry_delay(const struct a3d_status *st, int attempt);

/* "RESOURCE_EXHAUSTED" for GRPC_STATUS_RESOURCE_EXHAUSTED; "UNKNOWN_CODE" past the table. */
const char *a3d_rpc_code_name(grpc_status_code code);

/* Parses a grpc-retry-pushback-ms value: >= 0 ms, -2 for negative or unreadable. Pure. */
long a3d_rpc_parse_pushback(const char *s, size_t len);

#endif
