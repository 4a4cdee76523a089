/*
 * Fuzz target: server reflection's two inputs. The first byte picks one:
 *   0  a descriptor set (gateway/svc/protoset.c: the walker must refuse what is not one, and a
 *      set it accepts must answer every lookup and closure without reading outside it);
 *   1  a ServerReflectionRequest as a caller streams it, decoded as the gateway decodes it
 *      (gw_validate_unpack with the field table) and answered from the embedded set, the answer
 *      packed as gw_call_stream_send packs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api/validate.h"
#include "gateway/call/call.h"
#include "gateway/methods.h"
#include "gateway/svc/protoset.h"
#include "gateway/svc/reflection.h"

static void fuzz_set(const uint8_t *data, size_t size)
{
	struct gw_protoset *ps;
	char err[GW_PROTOSET_ERR_MAX];
	size_t idx[GW_PROTOSET_MAX_FILES];
	int32_t nums[4];

	if (gw_protoset_open(data, size, &ps, err, sizeof err) != 0)
		return;
	for (size_t i = 0; i < gw_protoset_nfiles(ps); i++) {
		const uint8_t *p;
		size_t len, n = gw_protoset_closure(ps, i, idx, GW_PROTOSET_MAX_FILES);

		if (n < 1 || idx[0] != i)
			__builtin_trap();
		gw_protoset_file_bytes(ps, i, &p, &len);
		if (p < data || p + len > data + size)
			__builtin_trap();
		if (gw_protoset_file_by_name(ps, gw_protoset_file_name(ps, i)) != (int)i)
			__builtin_trap();
	}
	gw_protoset_file_of_symbol(ps, "p.M", NULL);
	gw_protoset_file_of_extension(ps, "p.M", 100);
	gw_protoset_extension_numbers(ps, "p.M", nums, 4);
	gw_protoset_free(ps);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	static struct gw_refl *r;
	ProtobufCMessage *rq;
	Grpc__Reflection__V1__ServerReflectionResponse resp;
	struct gw_refl_answer *a;
	char err[GW_VALIDATE_ERR_MAX];
	uint8_t *buf;
	size_t n;

	if (!r) {
		const struct gw_method *m = gw_methods(&n);

		r = gw_refl_new(gw_protoset_embedded, gw_protoset_embedded_len, m, n, err, sizeof err);
		if (!r)
			__builtin_trap();
	}
	rq = gw_validate_unpack(&grpc__reflection__v1__server_reflection_request__descriptor, data,
				size, err, sizeof err, NULL);
	if (!rq)
		return;
	a = malloc(sizeof *a);
	if (a) {
		gw_refl_answer(r, (const Grpc__Reflection__V1__ServerReflectionRequest *)rq, &resp, a);
		n = protobuf_c_message_get_packed_size(&resp.base);
		buf = malloc(n ? n : 1);
		if (buf)
			protobuf_c_message_pack(&resp.base, buf);
		free(buf);
		free(a);
	}
	protobuf_c_message_free_unpacked(rq, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] == 0)
		fuzz_set(data + 1, size - 1);
	else if (data[0] == 1)
		fuzz_request(data + 1, size - 1);
	return 0;
}
