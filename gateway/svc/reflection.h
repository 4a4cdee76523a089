/*
 * reflection: gRPC server reflection, grpc.reflection.v1 and v1alpha ServerReflectionInfo (one
 * bidirectional stream each; the two protocols are the same messages under two package names),
 * answered from the descriptor set compiled into the binary (gateway/svc/protoset.h), so that
 * `grpcurl -H 'authorization: Bearer KEY' HOST:PORT list` and `describe` work without .proto files.
 *
 * What it answers, one response per request, in order:
 *   list_services            every service of the method table (gateway/methods.c: the
 *                            animate3d.v1 services, grpc.health.v1.Health, both reflection
 *                            services), each checked at start to be in the descriptor set;
 *   file_by_filename,        the file, then every file it imports (transitively, each once), as
 *   file_containing_symbol,  serialized FileDescriptorProtos, as grpcurl and grpcio's client
 *   file_containing_extension  expect; symbols as protobuf names them (protoset.h);
 *   all_extension_numbers_of_type  the numbers (none in the gateway's protos) of a known message;
 * and an error_response (NOT_FOUND: unknown file, symbol, extension or type; INVALID_ARGUMENT: no
 * request set) for anything else, leaving the stream open, as the protocol says.
 *
 * Access: a valid API key (either permission) is required, like every animate3d method: the
 * contract is not secret, but reflection is a way to probe a server, and every caller who has a
 * use for it has a key (the grpcurl line passes one). The stream takes one token of the
 * tenant's rate limit when it opens.
 *
 * Limits: requests are decoded and checked like every request (gateway/api/validate.h: names are
 * at most 255 bytes of printable ASCII, grpc.max_receive_message_length bounds the message);
 * a malformed or oversized request ends the stream INVALID_ARGUMENT naming the field. Open
 * streams are capped in all (GW_REFL_MAX_STREAMS) and per tenant (a fair share of it: one team
 * cannot take every slot); refusals are RESOURCE_EXHAUSTED naming the cap (gateway/svc/caps.h),
 * counted by tenant and cap. A client that keeps asking without reading its replies has its
 * stream ended RESOURCE_EXHAUSTED once GW_REFL_MAX_UNREAD are queued (counted). Streams end
 * UNAVAILABLE at drain.
 */
#ifndef A3D_GATEWAY_REFLECTION_H
#define A3D_GATEWAY_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "gateway/svc/protoset.h"

#define GW_REFL_MAX_STREAMS 64		/* open ServerReflectionInfo streams, all tenants; each
					 * tenant may hold a fair share (gw_slots_fair_share) */
#define GW_REFL_MAX_UNREAD 8		/* replies queued on one stream (not yet taken by the
					 * client); with the stream cap, at most 64 x 8 answers of
					 * at most the whole set (50 KiB) are held: 25 MiB */
#define GW_REFL_MAX_SERVICES 32		/* services list_services names */
#define GW_REFL_MAX_ERROR 320		/* an error_response's message */

struct gw_call;
struct gw_method;
struct gw_svc;
struct gw_refl;

/* The service (gateway/call/svc.h): its state is a struct gw_refl, built at init from the
 * embedded set and the method table. */
extern const struct gw_svc gw_svc_reflection;

/* The handler of both ServerReflectionInfo rows (gateway/methods.c). */
void gw_refl_handle(struct gw_call *c);

/*
 * The pure part, for tests. gw_refl_new indexes set[0..len) (borrowed; it must outlive the
 * state) and takes the service names of the method rows ("/pkg.Svc/Method" -> "pkg.Svc", each
 * once, in order). NULL with one line in err when the set is bad, a service is not in it or
 * there are more than GW_REFL_MAX_SERVICES.
 */
struct gw_refl *gw_refl_new(const uint8_t *set, size_t len, const struct gw_method *methods,
			    size_t nmethods, char *err, size_t errlen);
void gw_refl_free(struct gw_refl *r);

/* What an answer points into; one per request, kept until the response is packed. */
struct gw_refl_answer {
	Grpc__Reflection__V1__FileDescriptorResponse files;
	Grpc__Reflection__V1__ExtensionNumberResponse numbers;
	Grpc__Reflection__V1__ListServiceResponse services;
	Grpc__Reflection__V1__ErrorResponse error;
	size_t idx[GW_PROTOSET_MAX_FILES];
	ProtobufCBinaryData blobs[GW_PROTOSET_MAX_FILES];
	Grpc__Reflection__V1__ServiceResponse svc[GW_REFL_MAX_SERVICES];
	Grpc__Reflection__V1__ServiceResponse *svc_ptrs[GW_REFL_MAX_SERVICES];
	int32_t ext_numbers[GW_PROTOSET_MAX_EXTENSIONS];
	char msg[GW_REFL_MAX_ERROR];
};

/* Fills resp (initialised here) for rq; its pointers borrow from r, rq and a. Returns the
 * gRPC code of an error_response, or 0 when the answer is not an error. */
int gw_refl_answer(const struct gw_refl *r, const Grpc__Reflection__V1__ServerReflectionRequest *rq,
		   Grpc__Reflection__V1__ServerReflectionResponse *resp, struct gw_refl_answer *a);

#endif
