/*
 * gateway/call/call.c pure parts: the grpc-status-details-bin encoding (google.rpc.Status carrying a
 * google.rpc.RetryInfo). Expected bytes were produced by Python's protobuf 4.21 runtime from
 * google/rpc/status.proto + error_details.proto (Status{code,message,details:[Any.Pack(
 * RetryInfo{retry_delay})]}), i.e. an independent encoder.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/call/call.h"

struct retry_case {
	int code;
	const char *msg;
	long retry_ms;
	size_t len;
	const char *bytes;
};

#define TYPE_URL "\x0a\x28type.googleapis.com/google.rpc.RetryInfo"

static const struct retry_case retry_cases[] = {
	/* 1.5 s: seconds=1, nanos=500000000 */
	{ 8, "slow down", 1500, 69,
	  "\x08\x08\x12\x09slow down\x1a\x36" TYPE_URL "\x12\x0a\x0a\x08\x08\x01\x10\x80\xca\xb5\xee\x01" },
	/* no message, zero delay: empty Duration still present */
	{ 8, "", 0, 50, "\x08\x08\x1a\x2e" TYPE_URL "\x12\x02\x0a\x00" },
	/* NULL message is the same as empty */
	{ 8, NULL, 0, 50, "\x08\x08\x1a\x2e" TYPE_URL "\x12\x02\x0a\x00" },
	/* sub-second: nanos only */
	{ 14, "x", 250, 58, "\x08\x0e\x12\x01x\x1a\x33" TYPE_URL "\x12\x07\x0a\x05\x10\x80\xe5\x9a\x77" },
	/* whole seconds only */
	{ 8, "rate limit of tenant team-a exceeded", 60000, 90,
	  "\x08\x08\x12\x24rate limit of tenant team-a exceeded\x1a\x30" TYPE_URL "\x12\x04\x0a\x02\x08\x3c" },
	/* a negative delay is clamped to zero */
	{ 8, "", -5, 50, "\x08\x08\x1a\x2e" TYPE_URL "\x12\x02\x0a\x00" },
};

Test(call, retry_status_table)
{
	for (size_t i = 0; i < sizeof retry_cases / sizeof retry_cases[0]; i++) {
		const struct retry_case *t = &retry_cases[i];
		uint8_t buf[GW_CALL_MAX_DETAILS_BIN];
		size_t n = gw_call_encode_retry_status(t->code, t->msg, t->retry_ms, buf, sizeof buf);

		cr_assert_eq(n, t->len, "case %zu: length %zu, want %zu", i, n, t->len);
		cr_assert(memcmp(buf, t->bytes, n) == 0, "case %zu: bytes differ", i);
	}
}

/* A 200-byte message needs a two-byte length varint (0xc8 0x01). */
Test(call, retry_status_long_message)
{
	static const uint8_t head[] = { 0x08, 0x08, 0x12, 0xc8, 0x01, 'a' };
	static const uint8_t tail[] = "\x1a\x30" TYPE_URL "\x12\x04\x0a\x02\x08\x01";
	char msg[201];
	uint8_t buf[GW_CALL_MAX_DETAILS_BIN];
	size_t n;

	memset(msg, 'a', 200);
	msg[200] = '\0';
	n = gw_call_encode_retry_status(8, msg, 1000, buf, sizeof buf);
	cr_assert_eq(n, 255);
	cr_assert(memcmp(buf, head, sizeof head) == 0);
	cr_assert(memcmp(buf + 205, tail, sizeof tail - 1) == 0);
}

/* Too small a buffer: 0, never a partial encoding; exactly enough: the full one. */
Test(call, retry_status_capacity)
{
	uint8_t buf[GW_CALL_MAX_DETAILS_BIN];

	cr_assert_eq(gw_call_encode_retry_status(8, "slow down", 1500, buf, 68), 0);
	cr_assert_eq(gw_call_encode_retry_status(8, "slow down", 1500, buf, 69), 69);
	cr_assert_eq(gw_call_encode_retry_status(8, "slow down", 1500, buf, 0), 0);
}

/* Messages past GW_CALL_MAX_STATUS_MSG are clipped so the trailer stays bounded. */
Test(call, retry_status_clips_message)
{
	static char msg[GW_CALL_MAX_STATUS_MSG + 100];
	uint8_t buf[GW_CALL_MAX_DETAILS_BIN];
	size_t n;

	memset(msg, 'm', sizeof msg - 1);
	n = gw_call_encode_retry_status(8, msg, 1000, buf, sizeof buf);
	/* code (2) + tag + 2-byte length + 512 message bytes + Any (2 + 48) */
	cr_assert_eq(n, 2 + 1 + 2 + GW_CALL_MAX_STATUS_MSG + 2 + 48);
	cr_assert_eq(buf[3], (GW_CALL_MAX_STATUS_MSG & 0x7f) | 0x80);
	cr_assert_eq(buf[4], GW_CALL_MAX_STATUS_MSG >> 7);
}
