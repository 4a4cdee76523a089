/*
 * Fuzz target: a gRPC request as it arrives from a caller. The first byte picks the RPC row; the
 * rest is the message bytes, decoded as the gateway decodes them (gw_validate_unpack: the wire
 * scan for NULs and floods, protobuf-c, the field table), then validated and rendered into an
 * upstream request by the row's build function (for StartJob that runs params validation,
 * extra_params checks, rendering and the idempotency fingerprint). Bytes the table refuses are
 * also unpacked by protobuf-c alone and given to the row, which must refuse them itself.
 */
#include <stdint.h>
#include <string.h>
#include "gateway/api/translate.h"
#include "gateway/call/call.h"
#include "gateway/methods.h"
#include "gateway/api/params.h"
#include "gateway/api/validate.h"


/* The rows with an upstream half, in table order: the first input byte picks one (the seed
 * corpora keep this order, tests/fuzz/make_seeds.py). */
static const struct gw_method *fuzz_row(uint8_t pick)
{
	size_t n, k = 0, nrows = 0;
	const struct gw_method *m = gw_methods(&n);

	for (size_t i = 0; i < n; i++)
		nrows += m[i].tr.build != NULL;
	for (size_t i = 0; nrows && i < n; i++)
		if (m[i].tr.build && k++ == pick % nrows)
			return &m[i];
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct gw_method *row;
	ProtobufCMessage *req;
	struct gw_tr_request out;
	char err[GW_TR_ERR_MAX];
	int malformed = 0, over_table;

	if (size < 1 || !(row = fuzz_row(data[0])))
		return 0;
	req = gw_validate_unpack(row->req_desc, data + 1, size - 1, err, sizeof err, &malformed);
	if (!req)
		req = protobuf_c_message_unpack(row->req_desc, NULL, size - 1, data + 1);
	if (!req)
		return 0;
	memset(&out, 0, sizeof out);
	/* A decoded message beyond the field table (caps, kinds) must be refused by the row too:
	 * the rows check the same table, whoever decoded the request. */
	over_table = gw_validate_message(req, err, sizeof err) != GW_VALIDATE_OK;
	if (row->tr.build(req, &out, err, sizeof err) == GW_TR_OK && over_table)
		__builtin_trap();
	gw_tr_request_clear(&out);
	if (req->descriptor == &animate3d__v1__start_job_request__descriptor) {
		unsigned char fp[32];
		gw_params_fingerprint((const Animate3d__V1__StartJobRequest *)req, fp);
	}
	protobuf_c_message_free_unpacked(req, NULL);
	return 0;
}
