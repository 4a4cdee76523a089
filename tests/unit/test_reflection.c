/*
 * Unit tests for gateway/svc/reflection.c, the pure part: the services named from the method
 * table (each in the embedded set, or init fails naming it), and a table of requests -> the
 * response each gets, packed and unpacked again as a client would read it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/call/call.h"
#include "gateway/methods.h"
#include "gateway/svc/reflection.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;

#define RC(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

static struct gw_refl *new_refl(void)
{
	size_t n;
	const struct gw_method *m = gw_methods(&n);
	char err[256] = "";
	struct gw_refl *r = gw_refl_new(gw_protoset_embedded, gw_protoset_embedded_len, m, n, err,
					sizeof err);

	cr_assert_not_null(r, "%s", err);
	return r;
}

/* Answers rq, packs the answer and unpacks it as a client would. Free with
 * grpc__reflection__v1__server_reflection_response__free_unpacked(x, NULL). */
static Resp *ask(const struct gw_refl *r, const Req *rq, int *code)
{
	Resp resp;
	struct gw_refl_answer *a = calloc(1, sizeof *a);
	uint8_t *buf;
	size_t len;
	Resp *out;

	cr_assert_not_null(a);
	*code = gw_refl_answer(r, rq, &resp, a);
	len = grpc__reflection__v1__server_reflection_response__get_packed_size(&resp);
	buf = malloc(len ? len : 1);
	cr_assert_not_null(buf);
	grpc__reflection__v1__server_reflection_response__pack(&resp, buf);
	out = grpc__reflection__v1__server_reflection_response__unpack(NULL, len, buf);
	cr_assert_not_null(out);
	free(buf);
	free(a);
	return out;
}

Test(reflection, list_services_from_the_method_table)
{
	static const char *const want[] = {
		"animate3d.v1.Jobs", "animate3d.v1.Characters", "animate3d.v1.Webhooks",
		"animate3d.v1.Account", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection",
	};
	struct gw_refl *r = new_refl();
	Req rq = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
	Resp *out;
	int code;

	rq.host = "h:1";
	rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
	rq.list_services = "*";
	out = ask(r, &rq, &code);
	cr_expect_eq(code, 0);
	cr_expect_str_eq(out->valid_host, "h:1");
	cr_assert_not_null(out->original_request);
	cr_expect_str_eq(out->original_request->list_services, "*");
	cr_assert_eq(out->message_response_case, RC(LIST_SERVICES_RESPONSE));
	cr_assert_eq(out->list_services_response->n_service, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect_str_eq(out->list_services_response->service[i]->name, want[i]);
	grpc__reflection__v1__server_reflection_response__free_unpacked(out, NULL);
	gw_refl_free(r);
}

Test(reflection, a_service_missing_from_the_set_fails_init)
{
	static const struct gw_method rows[] = {
		{ .path = "/animate3d.v1.Jobs/GetStatus" },
		{ .path = "/animate3d.v2.Jobs/GetStatus" },
	};
	static const struct gw_method nameless[] = { { .path = "/GetStatus" } };
	char err[256] = "";

	cr_expect_null(gw_refl_new(gw_protoset_embedded, gw_protoset_embedded_len, rows, 2, err,
				   sizeof err));
	cr_expect_str_eq(err, "reflection: service animate3d.v2.Jobs is not in the embedded "
			      "descriptor set");
	cr_expect_null(gw_refl_new(gw_protoset_embedded, gw_protoset_embedded_len, nameless, 1, err,
				   sizeof err));
	cr_expect(strstr(err, "names no service") != NULL, "%s", err);
	cr_expect_null(gw_refl_new((const uint8_t *)"\x0a", 1, rows, 1, err, sizeof err));
	cr_expect(strstr(err, "malformed") != NULL, "%s", err);
}

enum which { BY_FILE, BY_SYMBOL, BY_EXT, EXT_NUMBERS, NOTHING };

Test(reflection, requests_table)
{
	static const struct {
		enum which which;
		const char *name;
		int32_t number;
		int code;		/* of an error_response, 0 if none */
		const char *first;	/* first file sent, or the error message */
	} t[] = {
		{ BY_FILE, "animate3d/v1/jobs.proto", 0, 0, "animate3d/v1/jobs.proto" },
		{ BY_FILE, "grpc/reflection/v1alpha/reflection.proto", 0, 0,
		  "grpc/reflection/v1alpha/reflection.proto" },
		{ BY_FILE, "jobs.proto", 0, GRPC_STATUS_NOT_FOUND, "file not found: jobs.proto" },
		{ BY_FILE, "", 0, GRPC_STATUS_NOT_FOUND, "file not found: " },
		{ BY_SYMBOL, "animate3d.v1.Jobs", 0, 0, "animate3d/v1/jobs.proto" },
		{ BY_SYMBOL, "animate3d.v1.Jobs.WatchStatus", 0, 0, "animate3d/v1/jobs.proto" },
		{ BY_SYMBOL, "animate3d.v1.Model", 0, 0, "animate3d/v1/characters.proto" },
		{ BY_SYMBOL, "animate3d.v1.GetMinutesBalanceResponse", 0, 0,
		  "animate3d/v1/account.proto" },
		{ BY_SYMBOL, "grpc.health.v1.HealthCheckResponse.ServingStatus", 0, 0,
		  "grpc/health/v1/health.proto" },
		{ BY_SYMBOL, "animate3d.v1.Nope", 0, GRPC_STATUS_NOT_FOUND,
		  "symbol not found: animate3d.v1.Nope" },
		{ BY_EXT, "animate3d.v1.GetStatusRequest", 100, GRPC_STATUS_NOT_FOUND,
		  "extension 100 of animate3d.v1.GetStatusRequest not found" },
		{ EXT_NUMBERS, "animate3d.v1.GetStatusRequest", 0, 0, NULL },
		{ EXT_NUMBERS, "animate3d.v1.JobState", 0, GRPC_STATUS_NOT_FOUND,
		  "message type not found: animate3d.v1.JobState" },
		{ NOTHING, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, "the request sets none of" },
	};
	struct gw_refl *r = new_refl();

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		Req rq = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
		Grpc__Reflection__V1__ExtensionRequest ext = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
		const char *label = t[i].name ? t[i].name : "(none)";
		Resp *out;
		int code;

		switch (t[i].which) {
		case BY_FILE:
			rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
			rq.file_by_filename = (char *)t[i].name;
			break;
		case BY_SYMBOL:
			rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
			rq.file_containing_symbol = (char *)t[i].name;
			break;
		case BY_EXT:
			ext.containing_type = (char *)t[i].name;
			ext.extension_number = t[i].number;
			rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
			rq.file_containing_extension = &ext;
			break;
		case EXT_NUMBERS:
			rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
			rq.all_extension_numbers_of_type = (char *)t[i].name;
			break;
		case NOTHING:
			break;
		}
		out = ask(r, &rq, &code);
		cr_expect_eq(code, t[i].code, "%s: code %d", label, code);
		if (t[i].code) {
			cr_assert_eq(out->message_response_case, RC(ERROR_RESPONSE), "%s", label);
			cr_expect_eq(out->error_response->error_code, t[i].code, "%s", label);
			cr_expect(strncmp(out->error_response->error_message, t[i].first,
					  strlen(t[i].first)) == 0, "%s: \"%s\"", label,
				  out->error_response->error_message);
		} else if (t[i].which == EXT_NUMBERS) {
			cr_assert_eq(out->message_response_case, RC(ALL_EXTENSION_NUMBERS_RESPONSE));
			cr_expect_str_eq(out->all_extension_numbers_response->base_type_name, t[i].name);
			cr_expect_eq(out->all_extension_numbers_response->n_extension_number, 0);
		} else {
			const ProtobufCBinaryData *f;

			cr_assert_eq(out->message_response_case, RC(FILE_DESCRIPTOR_RESPONSE), "%s",
				     label);
			/* None of the gateway's files imports another: the file alone. */
			cr_assert_eq(out->file_descriptor_response->n_file_descriptor_proto, 1, "%s",
				     label);
			f = &out->file_descriptor_response->file_descriptor_proto[0];
			/* FileDescriptorProto.name is its first record: 0x0a, length, name. */
			cr_assert_gt(f->len, 2 + strlen(t[i].first));
			cr_expect_eq(f->data[0], 0x0a, "%s", label);
			cr_expect_eq(f->data[1], strlen(t[i].first), "%s", label);
			cr_expect_eq(memcmp(f->data + 2, t[i].first, strlen(t[i].first)), 0, "%s", label);
		}
		grpc__reflection__v1__server_reflection_response__free_unpacked(out, NULL);
	}
	gw_refl_free(r);
}
