/*
 * rpc: gRPC core calls for the a3d client (see rpc.h). Every operation is a batch waited for on
 * the pluck queue in short slices, so that Ctrl-C can cancel the call between two slices.
 */
#include "cli/rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "cli/a3d.h"

#define RPC_BACKOFF_CAP_MS 8000		/* the backoff without a pushback stops doubling here */

/* Defined here, where every wait reads it; main.c's signal handler sets it. */
volatile sig_atomic_t a3d_interrupted;

static const char *const rpc_code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *a3d_rpc_code_name(grpc_status_code code)
{
	if ((int)code < 0 || (size_t)code >= sizeof rpc_code_names / sizeof rpc_code_names[0])
		return "UNKNOWN_CODE";
	return rpc_code_names[code];
}

long a3d_rpc_parse_pushback(const char *s, size_t len)
{
	long v = 0;
	size_t i;

	/* gRPC's retry design: a non-negative decimal integer of milliseconds; anything else (a
	 * negative number included) tells the client not to retry. */
	if (len == 0 || len > 10)
		return -2;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -2;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

long a3d_rpc_retry_delay(const struct a3d_status *st, int attempt)
{
	long d;

	if (st->interrupted || attempt < 1 || attempt > A3D_RPC_MAX_RETRIES)
		return -1;
	if (st->code != GRPC_STATUS_RESOURCE_EXHAUSTED && st->code != GRPC_STATUS_UNAVAILABLE)
		return -1;
	if (st->pushback_ms == -2)
		return -1;
	if (st->pushback_ms >= 0)
		return st->pushback_ms > A3D_RPC_MAX_PUSHBACK_MS ? -1 : st->pushback_ms;
	d = (long)A3D_RPC_BACKOFF_MS << (attempt - 1);
	return d > RPC_BACKOFF_CAP_MS ? RPC_BACKOFF_CAP_MS : d;
}

/* Sleeps ms in A3D_RPC_TICK_MS slices; 0 when interrupted. */
static int rpc_sleep(long ms)
{
	while (ms > 0 && !a3d_interrupted) {
		long step = ms < A3D_RPC_TICK_MS ? ms : A3D_RPC_TICK_MS;
		struct timespec ts = { step / 1000, (step % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
	return !a3d_interrupted;
}

int a3d_rpc_retry_wait(struct a3d_rpc *r, struct a3d_status *st, int attempt)
{
	long d = a3d_rpc_retry_delay(st, attempt);

	if (d < 0)
		return 0;
	/* Without a pushback the backoff gets jitter (half to all of it), so scripts started
	 * together do not come back together; a pushback is the server's word and is kept. */
	if (st->pushback_ms < 0 && d > 1)
		d = d / 2 + rand() % (d / 2 + 1);	/* NOLINT(cert-msc30-c): jitter, not security */
	fprintf(stderr, "a3d: %s (%s), retry %d of %d in %ld ms\n", a3d_rpc_code_name(st->code),
		st->details, attempt, A3D_RPC_MAX_RETRIES, d);
	r->retries++;
	if (!rpc_sleep(d)) {
		st->interrupted = 1;
		st->code = GRPC_STATUS_CANCELLED;
		return 0;
	}
	return 1;
}

/* Reads a whole PEM file (at most A3D_RPC_MAX_PEM_BYTES) into a new NUL-terminated string. */
static char *rpc_read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rbe");
	char *buf = NULL;
	size_t n = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(A3D_RPC_MAX_PEM_BYTES + 1);
	if (buf)
		n = fread(buf, 1, A3D_RPC_MAX_PEM_BYTES + 1, f);
	if (!buf || ferror(f) || n == 0 || n > A3D_RPC_MAX_PEM_BYTES) {
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : ferror(f) ? strerror(errno) :
			 n == 0 ? "empty" : "larger than 1 MiB");
		if (buf)
			explicit_bzero(buf, n < A3D_RPC_MAX_PEM_BYTES + 1 ? n : A3D_RPC_MAX_PEM_BYTES + 1);
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

static void rpc_free_pem(char *pem)
{
	if (pem) {
		explicit_bzero(pem, strlen(pem));
		free(pem);
	}
}

/* Channel credentials for tls (plaintext when off). -> creds, or NULL with err set. */
static grpc_channel_credentials *rpc_creds(const struct a3d_tls *tls, char *err, size_t errlen)
{
	grpc_channel_credentials *creds = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	char *ca = NULL, *cert = NULL, *key = NULL;

	if (!tls || !tls->on)
		return grpc_insecure_credentials_create();
	if (tls->ca_file && !(ca = rpc_read_pem(tls->ca_file, err, errlen)))
		goto out;
	if (tls->cert_file && tls->key_file) {
		if (!(cert = rpc_read_pem(tls->cert_file, err, errlen)) ||
		    !(key = rpc_read_pem(tls->key_file, err, errlen)))
			goto out;
		pair.cert_chain = cert;
		pair.private_key = key;
	}
	/* gRPC copies what it is given: the private key is wiped here once it has. */
	creds = grpc_ssl_credentials_create(ca, key ? &pair : NULL, NULL, NULL);
	if (!creds)
		snprintf(err, errlen, "cannot make TLS credentials");
out:
	rpc_free_pem(ca);
	rpc_free_pem(cert);
	rpc_free_pem(key);
	return creds;
}

int a3d_rpc_open(struct a3d_rpc *r, const char *addr, const char *key, const struct a3d_tls *tls,
		 char *err, size_t errlen)
{
	grpc_channel_credentials *creds;
	grpc_arg args[4];
	grpc_channel_args ca;
	size_t klen = strlen(key);

	memset(r, 0, sizeof *r);
	if (klen > A3D_RPC_MAX_KEY_BYTES) {
		snprintf(err, errlen, "the API key is longer than %d bytes", A3D_RPC_MAX_KEY_BYTES);
		return -1;
	}
	if (klen > 0) {
		memcpy(r->auth, "Bearer ", 7);
		memcpy(r->auth + 7, key, klen + 1);
	}
	memset(args, 0, sizeof args);
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = A3D_RPC_MAX_RECV_BYTES;
	args[1].type = GRPC_ARG_STRING;
	args[1].key = GRPC_ARG_PRIMARY_USER_AGENT_STRING;
	args[1].value.string = "a3d/" A3D_VERSION;
	/* The CLI retries by itself (honouring the gateway's pushback); core's own retries would
	 * multiply the attempts. */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = GRPC_ARG_ENABLE_RETRIES;
	args[2].value.integer = 0;
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[3].value.integer = 200;
	ca.num_args = sizeof args / sizeof args[0];
	ca.args = args;
	creds = rpc_creds(tls, err, errlen);
	if (!creds) {
		explicit_bzero(r->auth, sizeof r->auth);
		return -1;
	}
	r->ch = grpc_channel_create(addr, creds, &ca);
	grpc_channel_credentials_release(creds);
	r->cq = grpc_completion_queue_create_for_pluck(NULL);
	if (!r->ch || !r->cq) {
		snprintf(err, errlen, "cannot make a channel to %s", addr);
		a3d_rpc_close(r);
		return -1;
	}
	return 0;
}

void a3d_rpc_close(struct a3d_rpc *r)
{
	explicit_bzero(r->auth, sizeof r->auth);
	if (r->ch)
		grpc_channel_destroy(r->ch);
	r->ch = NULL;
	if (r->cq) {
		grpc_completion_queue_shutdown(r->cq);
		while (grpc_completion_queue_pluck(r->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
						   NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(r->cq);
	}
	r->cq = NULL;
}

/* Waits for the batch of tag; cancels the call once Ctrl-C was pressed. -> the batch's success. */
static int rpc_wait(struct a3d_call *c, void *tag)
{
	for (;;) {
		gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						  gpr_time_from_millis(A3D_RPC_TICK_MS, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_pluck(c->rpc->cq, tag, until, NULL);

		if (ev.type == GRPC_OP_COMPLETE)
			return ev.success;
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return 0;
		if (a3d_interrupted && !c->cancelled) {
			c->cancelled = 1;
			c->interrupted = 1;
			grpc_call_cancel(c->call, NULL);
		}
	}
}

/* Runs one batch and waits for it. -> 0, or -1 when the call has ended. */
static int rpc_batch(struct a3d_call *c, grpc_op *ops, size_t n)
{
	if (!c->call || c->cancelled)
		return -1;
	if (grpc_call_start_batch(c->call, ops, n, &c->call, NULL) != GRPC_CALL_OK) {
		/* A misuse of the API (two sends at once): ours to fix, never the user's. */
		c->cancelled = 1;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "a3d: bad batch", NULL);
		return -1;
	}
	return rpc_wait(c, &c->call) ? 0 : -1;
}

int a3d_call_start(struct a3d_rpc *r, struct a3d_call *c, const char *method, int64_t deadline_ms)
{
	grpc_metadata md;
	grpc_op ops[1], st[1];
	gpr_timespec deadline = deadline_ms > 0 ?
		gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN)) :
		gpr_inf_future(GPR_CLOCK_REALTIME);
	grpc_slice path = grpc_slice_from_static_string(method);
	int rc = -1;

	memset(c, 0, sizeof *c);
	c->rpc = r;
	c->code = GRPC_STATUS_UNKNOWN;
	c->details = grpc_empty_slice();
	grpc_metadata_array_init(&c->initial_md);
	grpc_metadata_array_init(&c->trailing_md);
	c->call = grpc_channel_create_call(r->ch, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq, path, NULL,
					   deadline, NULL);
	if (!c->call)
		goto out;
	memset(st, 0, sizeof st);
	st[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	st[0].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
	st[0].data.recv_status_on_client.status = &c->code;
	st[0].data.recv_status_on_client.status_details = &c->details;
	if (grpc_call_start_batch(c->call, st, 1, &c->status_armed, NULL) != GRPC_CALL_OK)
		goto out;
	c->status_armed = 1;
	memset(&md, 0, sizeof md);
	md.key = grpc_slice_from_static_string("authorization");
	/* Not a static string: the key is wiped when the rpc closes, and core copies it here. */
	md.value = grpc_slice_from_copied_string(r->auth);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = r->auth[0] ? 1 : 0;
	ops[0].data.send_initial_metadata.metadata = &md;
	rc = rpc_batch(c, ops, 1);
	grpc_slice_unref(md.value);
out:
	return rc;
}

int a3d_call_send(struct a3d_call *c, const ProtobufCMessage *m, int close)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(len);
	grpc_byte_buffer *bb;
	grpc_op ops[2];
	int rc;

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_MESSAGE;
	ops[0].data.send_message.send_message = bb;
	ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	rc = rpc_batch(c, ops, close ? 2 : 1);
	grpc_byte_buffer_destroy(bb);
	return rc;
}

int a3d_call_send_slice(struct a3d_call *c, grpc_slice s)
{
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_op op;
	int rc;

	grpc_slice_unref(s);
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = bb;
	rc = rpc_batch(c, &op, 1);
	grpc_byte_buffer_destroy(bb);
	return rc;
}

int a3d_call_close_send(struct a3d_call *c)
{
	grpc_op ops[1];

	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	return rpc_batch(c, ops, 1);
}

int a3d_call_recv(struct a3d_call *c, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	grpc_byte_buffer *bb = NULL;
	grpc_byte_buffer_reader rd;
	grpc_slice all;
	grpc_op ops[2];
	size_t n = 0;

	*out = NULL;
	memset(ops, 0, sizeof ops);
	if (!c->got_initial) {
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
		n++;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &bb;
	n++;
	if (rpc_batch(c, ops, n) < 0) {
		if (bb)
			grpc_byte_buffer_destroy(bb);
		return 0;
	}
	c->got_initial = 1;
	if (!bb)
		return 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb)) {
		grpc_byte_buffer_destroy(bb);
		return -1;
	}
	all = grpc_byte_buffer_reader_readall(&rd);
	*out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	grpc_byte_buffer_reader_destroy(&rd);
	grpc_byte_buffer_destroy(bb);
	if (!*out) {
		c->cancelled = 1;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL,
					     "a3d: the reply does not decode", NULL);
		return -1;
	}
	return 1;
}

void a3d_call_cancel(struct a3d_call *c, const char *why)
{
	if (c->call && !c->cancelled) {
		c->cancelled = 1;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_CANCELLED, why, NULL);
	}
}

/* Copies a status message, control characters shown as '?' (it is printed on a terminal). */
static void rpc_copy_details(char *dst, size_t dstlen, grpc_slice s)
{
	size_t n = GRPC_SLICE_LENGTH(s), i;
	const unsigned char *p = GRPC_SLICE_START_PTR(s);

	if (n >= dstlen)
		n = dstlen - 1;
	for (i = 0; i < n; i++)
		dst[i] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
	dst[n] = '\0';
}

void a3d_call_finish(struct a3d_call *c, struct a3d_status *st)
{
	size_t i;

	memset(st, 0, sizeof *st);
	st->pushback_ms = -1;
	if (c->status_armed) {
		/* Also after a failed send or receive: the status is what says why. */
		rpc_wait(c, &c->status_armed);
		st->code = c->code;
		rpc_copy_details(st->details, sizeof st->details, c->details);
		for (i = 0; i < c->trailing_md.count; i++) {
			const grpc_metadata *m = &c->trailing_md.metadata[i];

			if (grpc_slice_str_cmp(m->key, "grpc-retry-pushback-ms") == 0)
				st->pushback_ms = a3d_rpc_parse_pushback(
					(const char *)GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value));
		}
	} else {
		st->code = GRPC_STATUS_INTERNAL;
		snprintf(st->details, sizeof st->details, "a3d: the call could not be started");
	}
	st->interrupted = c->interrupted || (a3d_interrupted && st->code == GRPC_STATUS_CANCELLED);
	if (c->call)
		grpc_call_unref(c->call);
	c->call = NULL;
	grpc_slice_unref(c->details);
	grpc_metadata_array_destroy(&c->initial_md);
	grpc_metadata_array_destroy(&c->trailing_md);
}

void a3d_rpc_unary(struct a3d_rpc *r, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, struct a3d_status *st)
{
	int attempt = 0;

	*out = NULL;
	for (;;) {
		struct a3d_call c;
		ProtobufCMessage *m = NULL;
		int got = 0;

		if (a3d_call_start(r, &c, method, r->timeout_ms) == 0 && a3d_call_send(&c, req, 1) == 0)
			got = a3d_call_recv(&c, desc, &m);
		a3d_call_finish(&c, st);
		if (st->code == GRPC_STATUS_OK && got == 1) {
			*out = m;
			return;
		}
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		if (st->code == GRPC_STATUS_OK) {
			/* OK without a message: the server broke the unary contract. */
			st->code = GRPC_STATUS_INTERNAL;
			snprintf(st->details, sizeof st->details, "%s: OK without a reply", method);
			return;
		}
		if (!a3d_rpc_retry_wait(r, st, ++attempt))
			return;
	}
}
