/*
 * Fuzz target: an upstream 2xx body. The first byte picks the RPC row; the rest is the body handed
 * to the row's parse function, exactly as the engine does. The reply, when one is built, is packed
 * (catches malformed messages) and freed like a decoded one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/api/translate.h"
#include "gateway/call/call.h"
#include "gateway/methods.h"

#define FUZZ_REQ_BUF 512	/* room for any request message struct of the contract */


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
	_Alignas(max_align_t) unsigned char reqbuf[FUZZ_REQ_BUF];
	ProtobufCMessage *reply = NULL;
	char err[GW_TR_ERR_MAX];
	char *body;

	if (size < 1 || !(row = fuzz_row(data[0])))
		return 0;
	if (row->req_desc->sizeof_message > sizeof reqbuf)
		abort();
	protobuf_c_message_init(row->req_desc, reqbuf);
	/* Bodies are NUL-terminated by the upstream layer; keep that contract here. */
	body = malloc(size);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	if (row->tr.parse((ProtobufCMessage *)reqbuf, body, size - 1, &reply, err, sizeof err) == GW_TR_OK &&
	    reply) {
		size_t len = protobuf_c_message_get_packed_size(reply);
		uint8_t *buf = malloc(len ? len : 1);
		if (buf)
			protobuf_c_message_pack(reply, buf);
		free(buf);
		protobuf_c_message_free_unpacked(reply, NULL);
	}
	free(body);
	return 0;
}
