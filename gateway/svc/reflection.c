/*
 * reflection: grpc.reflection.v1 / v1alpha ServerReflectionInfo. See reflection.h.
 *
 * A stream is a loop of receive -> answer -> send -> receive: one request outstanding, its
 * response queued before the next is asked for, so a stream holds at most the call's send queue.
 * The answers are built on the stack and packed by gw_call_stream_send; the files they carry are
 * slices of the embedded set, never copied before that.
 */
#include "gateway/svc/reflection.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/clock.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"
#include "gateway/base/slots.h"
#include "gateway/call/call.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/config/config.h"
#include "gateway/svc/caps.h"

static const struct gw_caps_what refl_caps = {
	"ServerReflectionInfo", "reflection_streams", "streams", "tenant",
	"a fair share of the gateway's 64 among its tenants, fixed", "fixed"
};
_Static_assert(GW_REFL_MAX_STREAMS == 64, "refl_caps names the cap");

struct gw_refl {
	struct gw_protoset *ps;
	char *services[GW_REFL_MAX_SERVICES];
	size_t nservices;

	struct gw_call *streams[GW_REFL_MAX_STREAMS];	/* each holds a slot of its tenant */
	size_t nstreams;
	struct gw_slots tenants;	/* open streams by tenant name (caps: the header) */
	int ended;			/* drained: no new streams */

	uint64_t requests;		/* requests answered (errors included) */
	uint64_t not_found;		/* of them, error_responses */
	uint64_t unread;		/* streams ended for replies left unread */
	struct gw_lograte refusals_log;
};

/* ---- the pure part ---- */

static int refl_add_service(struct gw_refl *r, const char *path, char *err, size_t errlen)
{
	const char *start = path[0] == '/' ? path + 1 : path;
	const char *slash = strchr(start, '/');
	size_t n = slash ? (size_t)(slash - start) : 0;
	enum gw_protoset_kind kind;
	char name[GW_PROTOSET_MAX_NAME + 1];

	if (n == 0 || n > GW_PROTOSET_MAX_NAME) {
		snprintf(err, errlen, "reflection: method path %s names no service", path);
		return -1;
	}
	memcpy(name, start, n);
	name[n] = '\0';
	for (size_t i = 0; i < r->nservices; i++)
		if (strcmp(r->services[i], name) == 0)
			return 0;
	if (gw_protoset_file_of_symbol(r->ps, name, &kind) < 0 || kind != GW_PS_SERVICE) {
		snprintf(err, errlen, "reflection: service %s is not in the embedded descriptor set",
			 name);
		return -1;
	}
	if (r->nservices >= GW_REFL_MAX_SERVICES) {
		snprintf(err, errlen, "reflection: more than %d services", GW_REFL_MAX_SERVICES);
		return -1;
	}
	r->services[r->nservices] = strdup(name);
	if (!r->services[r->nservices]) {
		snprintf(err, errlen, "reflection: out of memory");
		return -1;
	}
	r->nservices++;
	return 0;
}

struct gw_refl *gw_refl_new(const uint8_t *set, size_t len, const struct gw_method *methods,
			    size_t nmethods, char *err, size_t errlen)
{
	struct gw_refl *r = calloc(1, sizeof *r);
	struct gw_refl *ok = NULL;

	if (!r) {
		snprintf(err, errlen, "reflection: out of memory");
		goto out;
	}
	if (gw_protoset_open(set, len, &r->ps, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < nmethods; i++)
		if (refl_add_service(r, methods[i].path, err, errlen) != 0)
			goto out;
	ok = r;
	r = NULL;
out:
	gw_refl_free(r);
	return ok;
}

void gw_refl_free(struct gw_refl *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nservices; i++)
		free(r->services[i]);
	gw_protoset_free(r->ps);
	gw_slots_free(&r->tenants);
	free(r);
}

/* resp carries file i and the files it imports. */
static void refl_files(const struct gw_refl *r, size_t i,
		       Grpc__Reflection__V1__ServerReflectionResponse *resp, struct gw_refl_answer *a)
{
	size_t n = gw_protoset_closure(r->ps, i, a->idx, GW_PROTOSET_MAX_FILES);

	for (size_t k = 0; k < n; k++) {
		const uint8_t *p;
		size_t len;

		gw_protoset_file_bytes(r->ps, a->idx[k], &p, &len);
		/* protobuf-c's type has no const; the bytes are only read when packed. */
		a->blobs[k].data = (uint8_t *)p;
		a->blobs[k].len = len;
	}
	a->files.n_file_descriptor_proto = n;
	a->files.file_descriptor_proto = a->blobs;
	resp->message_response_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
	resp->file_descriptor_response = &a->files;
}

static int refl_error(Grpc__Reflection__V1__ServerReflectionResponse *resp,
		      struct gw_refl_answer *a, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* An error_response; names in it were checked on the way in (printable ASCII, at most 255
 * bytes). Returns code. */
static int refl_error(Grpc__Reflection__V1__ServerReflectionResponse *resp,
		      struct gw_refl_answer *a, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->msg, sizeof a->msg, fmt, ap);
	va_end(ap);
	a->error.error_code = code;
	a->error.error_message = a->msg;
	resp->message_response_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
	resp->error_response = &a->error;
	return code;
}

static void refl_list(const struct gw_refl *r, Grpc__Reflection__V1__ServerReflectionResponse *resp,
		      struct gw_refl_answer *a)
{
	for (size_t i = 0; i < r->nservices; i++) {
		grpc__reflection__v1__service_response__init(&a->svc[i]);
		a->svc[i].name = r->services[i];
		a->svc_ptrs[i] = &a->svc[i];
	}
	a->services.n_service = r->nservices;
	a->services.service = a->svc_ptrs;
	resp->message_response_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
	resp->list_services_response = &a->services;
}

int gw_refl_answer(const struct gw_refl *r, const Grpc__Reflection__V1__ServerReflectionRequest *rq,
		   Grpc__Reflection__V1__ServerReflectionResponse *resp, struct gw_refl_answer *a)
{
	const Grpc__Reflection__V1__ExtensionRequest *ext;
	enum gw_protoset_kind kind;
	int f;

	grpc__reflection__v1__server_reflection_response__init(resp);
	grpc__reflection__v1__file_descriptor_response__init(&a->files);
	grpc__reflection__v1__extension_number_response__init(&a->numbers);
	grpc__reflection__v1__list_service_response__init(&a->services);
	grpc__reflection__v1__error_response__init(&a->error);
	resp->valid_host = rq->host ? rq->host : "";
	/* The request is echoed as it came: its strings are the caller's, borrowed until packed. */
	resp->original_request = (Grpc__Reflection__V1__ServerReflectionRequest *)rq;
	switch (rq->message_request_case) {
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
		refl_list(r, resp, a);
		return 0;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
		f = gw_protoset_file_by_name(r->ps, rq->file_by_filename);
		if (f < 0)
			return refl_error(resp, a, GRPC_STATUS_NOT_FOUND, "file not found: %s",
					  rq->file_by_filename);
		refl_files(r, (size_t)f, resp, a);
		return 0;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
		f = gw_protoset_file_of_symbol(r->ps, rq->file_containing_symbol, NULL);
		if (f < 0)
			return refl_error(resp, a, GRPC_STATUS_NOT_FOUND, "symbol not found: %s",
					  rq->file_containing_symbol);
		refl_files(r, (size_t)f, resp, a);
		return 0;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
		ext = rq->file_containing_extension;
		f = ext ? gw_protoset_file_of_extension(r->ps, ext->containing_type,
							ext->extension_number)
			: -1;
		if (f < 0)
			return refl_error(resp, a, GRPC_STATUS_NOT_FOUND,
					  "extension %d of %s not found",
					  ext ? (int)ext->extension_number : 0,
					  ext && ext->containing_type ? ext->containing_type : "");
		refl_files(r, (size_t)f, resp, a);
		return 0;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
		if (gw_protoset_file_of_symbol(r->ps, rq->all_extension_numbers_of_type, &kind) < 0 ||
		    kind != GW_PS_MESSAGE)
			return refl_error(resp, a, GRPC_STATUS_NOT_FOUND, "message type not found: %s",
					  rq->all_extension_numbers_of_type);
		a->numbers.base_type_name = rq->all_extension_numbers_of_type;
		a->numbers.n_extension_number = gw_protoset_extension_numbers(
			r->ps, rq->all_extension_numbers_of_type, a->ext_numbers,
			GW_PROTOSET_MAX_EXTENSIONS);
		/* The index holds at most GW_PROTOSET_MAX_EXTENSIONS in all. */
		a->numbers.extension_number = a->ext_numbers;
		resp->message_response_case =
			GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
		resp->all_extension_numbers_response = &a->numbers;
		return 0;
	default:
		return refl_error(resp, a, GRPC_STATUS_INVALID_ARGUMENT,
				  "the request sets none of file_by_filename, file_containing_symbol, "
				  "file_containing_extension, all_extension_numbers_of_type, "
				  "list_services");
	}
}

/* ---- the streams ---- */

/* Drops c from the table and gives its tenant's slot back (the call's data is the name). */
static void refl_forget(struct gw_refl *r, struct gw_call *c)
{
	char *tenant = gw_call_data(c);

	gw_call_set_data(c, NULL);
	gw_slots_give(&r->tenants, tenant);
	free(tenant);
	for (size_t i = 0; i < r->nstreams; i++) {
		if (r->streams[i] != c)
			continue;
		r->streams[i] = r->streams[--r->nstreams];
		r->streams[r->nstreams] = NULL;
		return;
	}
}

/* Ends c's stream (it leaves the table first: nothing may reach it afterwards). */
static void refl_end(struct gw_refl *r, struct gw_call *c, grpc_status_code code, const char *msg)
{
	refl_forget(r, c);
	gw_call_on_cancel(c, NULL);
	gw_call_stream_end(c, code, msg);
}

static void refl_cancelled(struct gw_call *c, void *data)
{
	(void)data;
	refl_forget(gw_call_svc(c), c);
}

static void refl_on_request(struct gw_call *c, const ProtobufCMessage *msg, int bad)
{
	struct gw_refl *r = gw_call_svc(c);
	Grpc__Reflection__V1__ServerReflectionResponse resp;
	struct gw_refl_answer a;

	if (bad) {
		refl_end(r, c, GRPC_STATUS_INVALID_ARGUMENT, gw_call_recv_error(c));
		return;
	}
	if (!msg) {
		refl_end(r, c, GRPC_STATUS_OK, NULL);	/* the client is done asking */
		return;
	}
	r->requests++;
	if (gw_refl_answer(r, (const Grpc__Reflection__V1__ServerReflectionRequest *)msg, &resp, &a))
		r->not_found++;
	if (gw_call_stream_send(c, &resp.base) != 0) {
		/* Only a call that is gone refuses (a send failed): nobody reads this status. */
		refl_end(r, c, GRPC_STATUS_CANCELLED, "reflection: the stream broke");
		return;
	}
	/* A client that asks without reading would make the call queue every answer (a file is
	 * tens of KiB); a client that reads before asking again never has more than one. */
	if (gw_call_stream_pending(c) > GW_REFL_MAX_UNREAD) {
		r->unread++;
		refl_end(r, c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			 "reflection: too many replies left unread; read each before asking again");
		return;
	}
	gw_call_recv(c, &grpc__reflection__v1__server_reflection_request__descriptor, refl_on_request);
}

/* A slot for c's tenant: 0 with *name_out its copy, or -1 with c finished RESOURCE_EXHAUSTED
 * (counted by the slots table, logged within budget). */
static int refl_admit(struct gw_refl *r, struct gw_call *c, char **name_out)
{
	const struct gw_tenant_cfg *t = gw_call_tenant(c);
	const char *name = t ? t->name : "";
	uint64_t share = gw_slots_fair_share(GW_REFL_MAX_STREAMS, gw_call_env(c)->cfg->ntenants);
	enum gw_slots_verdict v = gw_slots_take(&r->tenants, name, share, GW_REFL_MAX_STREAMS);

	if (v == GW_SLOTS_OK && r->nstreams < GW_REFL_MAX_STREAMS) {
		*name_out = strdup(name);
		if (*name_out)
			return 0;
	}
	if (v == GW_SLOTS_OK) {
		gw_slots_give(&r->tenants, name);
		v = GW_SLOTS_BAD;
	}
	gw_caps_refuse(c, &r->refusals_log, gw_clock_now_us() / 1000, &refl_caps, name, v,
		       v == GW_SLOTS_NAME_FULL ? gw_slots_held(&r->tenants, name) : r->tenants.used,
		       v == GW_SLOTS_NAME_FULL ? share : GW_REFL_MAX_STREAMS);
	return -1;
}

void gw_refl_handle(struct gw_call *c)
{
	struct gw_refl *r = gw_call_svc(c);
	char *tenant = NULL;

	if (!r || r->ended) {
		gw_call_fail(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
		return;
	}
	if (refl_admit(r, c, &tenant) != 0)
		return;
	r->streams[r->nstreams++] = c;
	gw_call_set_data(c, tenant);
	gw_call_on_cancel(c, refl_cancelled);
	gw_call_recv(c, &grpc__reflection__v1__server_reflection_request__descriptor, refl_on_request);
}

/* ---- the service ---- */

static int refl_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	struct gw_refl *r = gw_refl_new(gw_protoset_embedded, gw_protoset_embedded_len, env->methods,
					env->nmethods, err, errlen);

	if (!r)
		return -1;
	/* Tenants by name across reloads, as WatchStatus counts them (status.c). */
	if (gw_slots_init(&r->tenants, 2 * GW_CONFIG_MAX_TENANTS, 1) != 0) {
		snprintf(err, errlen, "reflection: out of memory");
		gw_refl_free(r);
		return -1;
	}
	*state = r;
	return 0;
}

static void refl_drain(void *state)
{
	struct gw_refl *r = state;

	r->ended = 1;
	while (r->nstreams)
		refl_end(r, r->streams[r->nstreams - 1], GRPC_STATUS_UNAVAILABLE,
			 "server is shutting down");
}

static void refl_free(void *state)
{
	gw_refl_free(state);
}

static void refl_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_refl *r = state;

	gw_metrics_one(o, "reflection_streams", "gauge", "Open server reflection streams.",
		       r->nstreams);
	gw_metrics_one(o, "reflection_requests_total", "counter",
		       "Server reflection requests answered (error responses included).",
		       r->requests);
	gw_metrics_one(o, "reflection_errors_total", "counter",
		       "Server reflection requests answered with an error response (unknown "
		       "file, symbol, extension or type).",
		       r->not_found);
	gw_slots_render(&r->tenants, "reflection_streams_tenant",
			"Open server reflection streams by tenant.", "tenant", "tenant", 1, o);
	gw_metrics_one(o, "reflection_unread_ended_total", "counter",
		       "Server reflection streams ended for leaving too many replies unread.",
		       r->unread);
}

const struct gw_svc gw_svc_reflection = {
	.name = "reflection",
	.init = refl_init,
	.drain = refl_drain,
	.free = refl_free,
	.metrics = refl_metrics,
};
