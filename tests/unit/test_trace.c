/* gateway/base/trace.c: x-request-id, traceparent and tracestate validation as tables, and the
 * ids it makes up. */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/base/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

Test(trace, parse_parent_table)
{
	static const struct {
		const char *in;
		int rc;			/* 0 kept, -1 ignored */
		const char *trace, *parent;
		uint8_t flags;
	} rows[] = {
		{ "00-" TID "-" PID "-01", 0, TID, PID, 1 },
		{ "00-" TID "-" PID "-00", 0, TID, PID, 0 },
		/* Flags other than sampled are not passed on. */
		{ "00-" TID "-" PID "-ff", 0, TID, PID, 1 },
		{ "00-" TID "-" PID "-02", 0, TID, PID, 0 },
		/* A later version: read as 00, may go on after a dash. */
		{ "01-" TID "-" PID "-01", 0, TID, PID, 1 },
		{ "cc-" TID "-" PID "-01-what-the-future-holds", 0, TID, PID, 1 },
		{ "cc-" TID "-" PID "-01x", -1, NULL, NULL, 0 },
		/* Version 00 is exactly 55 bytes. */
		{ "00-" TID "-" PID "-01-", -1, NULL, NULL, 0 },
		{ "00-" TID "-" PID "-01 ", -1, NULL, NULL, 0 },
		{ "00-" TID "-" PID "-1", -1, NULL, NULL, 0 },
		/* Version ff is invalid; versions are lower-case hex. */
		{ "ff-" TID "-" PID "-01", -1, NULL, NULL, 0 },
		{ "0g-" TID "-" PID "-01", -1, NULL, NULL, 0 },
		{ "AA-" TID "-" PID "-01", -1, NULL, NULL, 0 },
		/* All-zero ids. */
		{ "00-00000000000000000000000000000000-" PID "-01", -1, NULL, NULL, 0 },
		{ "00-" TID "-0000000000000000-01", -1, NULL, NULL, 0 },
		/* Upper case, non-hex, wrong separators, wrong field lengths. */
		{ "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", -1, NULL, NULL, 0 },
		{ "00-" TID "-00F067AA0BA902B7-01", -1, NULL, NULL, 0 },
		{ "00-" TID "-" PID "-0A", -1, NULL, NULL, 0 },
		{ "00-4bf92f3577b34da6a3ce929d0e0e473z-" PID "-01", -1, NULL, NULL, 0 },
		{ "00_" TID "-" PID "-01", -1, NULL, NULL, 0 },
		{ "00-" TID "_" PID "-01", -1, NULL, NULL, 0 },
		{ "00-" TID "-" PID "_01", -1, NULL, NULL, 0 },
		{ "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01", -1, NULL, NULL, 0 },
		{ "00-" TID "-" PID "01", -1, NULL, NULL, 0 },
		{ "", -1, NULL, NULL, 0 },
		{ " 00-" TID "-" PID "-01", -1, NULL, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char trace[GW_TRACE_ID_HEX + 1] = "", parent[GW_TRACE_SPAN_HEX + 1] = "";
		uint8_t flags = 0x55;
		int rc = gw_trace_parse_parent(rows[i].in, strlen(rows[i].in), trace, parent, &flags);

		cr_expect_eq(rc, rows[i].rc, "row %zu (%s): rc %d", i, rows[i].in, rc);
		if (rc == 0 && rows[i].rc == 0) {
			cr_expect_str_eq(trace, rows[i].trace, "row %zu", i);
			cr_expect_str_eq(parent, rows[i].parent, "row %zu", i);
			cr_expect_eq(flags, rows[i].flags, "row %zu", i);
		}
	}
}

Test(trace, request_id_table)
{
	char max[GW_TRACE_REQUEST_ID_MAX + 2];
	static const struct {
		const char *in;
		int ok;
	} rows[] = {
		{ "abc", 1 },
		{ "f47ac10b-58cc-4372-a567-0e02b2c3d479", 1 },
		{ "req/1:2;x=y~!", 1 },
		{ "", 0 },
		{ "a b", 0 },		/* space: not kept (it would not survive every header path) */
		{ "a\tb", 0 },
		{ "a\nb", 0 },
		{ "caf\xc3\xa9", 0 },	/* not ASCII */
		{ "a\x7f", 0 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_trace_request_id_ok(rows[i].in, strlen(rows[i].in)), rows[i].ok,
			     "row %zu", i);
	memset(max, 'x', sizeof max);
	cr_expect_eq(gw_trace_request_id_ok(max, GW_TRACE_REQUEST_ID_MAX), 1);
	cr_expect_eq(gw_trace_request_id_ok(max, GW_TRACE_REQUEST_ID_MAX + 1), 0);
	cr_expect_eq(gw_trace_request_id_ok(NULL, 3), 0);
}

Test(trace, state_table)
{
	char big[GW_TRACE_STATE_MAX + 2];
	static const struct {
		const char *in;
		int ok;
	} rows[] = {
		{ "congo=t61rcWkgMzE", 1 },
		{ "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 1 },
		{ "a=1, b=2", 1 },
		{ "", 0 },
		{ "a=1\n", 0 },
		{ "a=\x01", 0 },
		{ "a=\xff", 0 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_trace_state_ok(rows[i].in, strlen(rows[i].in)), rows[i].ok, "row %zu", i);
	memset(big, 'a', sizeof big);
	cr_expect_eq(gw_trace_state_ok(big, GW_TRACE_STATE_MAX), 1);
	cr_expect_eq(gw_trace_state_ok(big, GW_TRACE_STATE_MAX + 1), 0);
}

static int is_lchex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* What a call ends up with, for every mix of what it sent. */
Test(trace, begin_table)
{
	static const char tp[] = "00-" TID "-" PID "-01";
	static const struct {
		const char *rid, *parent, *state;
		unsigned n_parent;
		unsigned bad;
		int keep_rid, keep_trace, keep_state;
	} rows[] = {
		{ NULL, NULL, NULL, 0, 0, 0, 0, 0 },
		{ "my-request-1", tp, "k=v", 1, 0, 1, 1, 1 },
		{ "my-request-1", NULL, NULL, 0, 0, 1, 0, 0 },
		{ NULL, tp, NULL, 1, 0, 0, 1, 0 },
		{ "bad id", tp, NULL, 1, GW_TRACE_BAD_REQUEST_ID, 0, 1, 0 },
		{ "", tp, NULL, 1, GW_TRACE_BAD_REQUEST_ID, 0, 1, 0 },
		{ "ok", "00-" TID "-" PID "-0", "k=v", 1, GW_TRACE_BAD_PARENT | GW_TRACE_BAD_STATE, 1, 0, 0 },
		/* Two traceparent values: neither is believed. */
		{ "ok", tp, NULL, 2, GW_TRACE_BAD_PARENT, 1, 0, 0 },
		/* tracestate without traceparent, or unprintable: dropped. */
		{ "ok", NULL, "k=v", 0, GW_TRACE_BAD_STATE, 1, 0, 0 },
		{ "ok", tp, "k=\x01", 1, GW_TRACE_BAD_STATE, 1, 1, 0 },
	};
	struct gw_trace_rng rng = { .left = 0 };

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_trace_in in = { 0 };
		struct gw_trace t;
		unsigned bad;

		memset(&t, 0x5a, sizeof t);
		if (rows[i].rid) {
			in.request_id = rows[i].rid;
			in.request_id_len = strlen(rows[i].rid);
		}
		if (rows[i].parent) {
			in.parent = rows[i].parent;
			in.parent_len = strlen(rows[i].parent);
		}
		in.n_parent = rows[i].n_parent;
		if (rows[i].state) {
			in.state = rows[i].state;
			in.state_len = strlen(rows[i].state);
		}
		bad = gw_trace_begin(&t, &rng, &in);
		cr_expect_eq(bad, rows[i].bad, "row %zu: bad %u", i, bad);
		if (rows[i].keep_rid)
			cr_expect_str_eq(t.request_id, rows[i].rid, "row %zu", i);
		else
			cr_expect(is_lchex(t.request_id, GW_TRACE_GEN_REQUEST_ID), "row %zu: %s", i,
				  t.request_id);
		if (rows[i].keep_trace) {
			cr_expect_str_eq(t.trace_id, TID, "row %zu", i);
			cr_expect_str_eq(t.parent_id, PID, "row %zu", i);
			cr_expect_eq(t.flags, GW_TRACE_SAMPLED, "row %zu", i);
		} else {
			cr_expect(is_lchex(t.trace_id, GW_TRACE_ID_HEX), "row %zu", i);
			cr_expect_str_neq(t.trace_id, TID, "row %zu", i);
			cr_expect_str_eq(t.parent_id, "", "row %zu", i);
			cr_expect_eq(t.flags, 0, "row %zu", i);
		}
		cr_expect(is_lchex(t.span_id, GW_TRACE_SPAN_HEX), "row %zu", i);
		cr_expect_str_neq(t.span_id, PID, "row %zu: the call's span is its own", i);
		if (rows[i].keep_state) {
			cr_expect_eq(t.state, in.state, "row %zu", i);
			cr_expect_eq(t.state_len, in.state_len, "row %zu", i);
		} else {
			cr_expect_null(t.state, "row %zu", i);
		}
	}
}

Test(trace, generated_ids_differ)
{
	struct gw_trace_rng rng = { .left = 0 };
	struct gw_trace_in in = { 0 };
	struct gw_trace a, b;

	/* More calls than one pool holds: the refill keeps them apart too. */
	for (int i = 0; i < 300; i++) {
		gw_trace_begin(&a, &rng, &in);
		gw_trace_begin(&b, &rng, &in);
		cr_assert_str_neq(a.trace_id, b.trace_id);
		cr_assert_str_neq(a.request_id, b.request_id);
		cr_assert_str_neq(a.span_id, b.span_id);
		cr_assert_str_neq(a.request_id, a.trace_id);
	}
	cr_expect_geq(rng.refills, 2);
	cr_expect_eq(rng.failures, 0);
}

Test(trace, child_and_format)
{
	struct gw_trace_rng rng = { .left = 0 };
	static const char tp[] = "00-" TID "-" PID "-01";
	struct gw_trace_in in = { .request_id = "r1", .request_id_len = 2, .parent = tp,
				  .parent_len = sizeof tp - 1, .n_parent = 1, .state = "k=v",
				  .state_len = 3 };
	struct gw_trace call, up1, up2;
	char buf[GW_TRACE_PARENT_LEN + 1], small[GW_TRACE_PARENT_LEN];

	cr_assert_eq(gw_trace_begin(&call, &rng, &in), 0);
	gw_trace_child(&up1, &call, &rng);
	gw_trace_child(&up2, &call, &rng);
	cr_expect_str_eq(up1.trace_id, TID);
	cr_expect_str_eq(up1.parent_id, call.span_id);
	cr_expect_str_eq(up2.parent_id, call.span_id);
	cr_expect_str_neq(up1.span_id, up2.span_id);
	cr_expect_str_neq(up1.span_id, call.span_id);
	cr_expect_str_eq(up1.request_id, "r1");
	cr_expect_eq(up1.state, call.state);
	cr_expect_eq(up1.flags, GW_TRACE_SAMPLED);
	/* A retry: a span of its own, the same parent. */
	{
		char before[GW_TRACE_SPAN_HEX + 1];

		memcpy(before, up2.span_id, sizeof before);
		gw_trace_new_span(&up2, &rng);
		cr_expect_str_neq(up2.span_id, before);
		cr_expect_str_eq(up2.parent_id, call.span_id);
	}

	cr_expect_eq(gw_trace_format_parent(&up1, buf, sizeof buf), GW_TRACE_PARENT_LEN);
	cr_expect_eq(strncmp(buf, "00-" TID "-", 36), 0, "%s", buf);
	cr_expect_eq(strncmp(buf + 36, up1.span_id, GW_TRACE_SPAN_HEX), 0, "%s", buf);
	cr_expect_str_eq(buf + 52, "-01");
	/* What the gateway sends parses back to itself. */
	{
		char t2[GW_TRACE_ID_HEX + 1], p2[GW_TRACE_SPAN_HEX + 1];
		uint8_t f2;

		cr_expect_eq(gw_trace_parse_parent(buf, strlen(buf), t2, p2, &f2), 0);
		cr_expect_str_eq(p2, up1.span_id);
	}
	call.flags = 0;
	gw_trace_format_parent(&call, buf, sizeof buf);
	cr_expect_str_eq(buf + 52, "-00");
	cr_expect_eq(gw_trace_format_parent(&call, small, sizeof small), 0);
	cr_expect_str_eq(small, "");
}

/* The ids are the pool's bytes in hex, in order: span, then request id, then trace id; an
 * all-zero id is made ...01. */
Test(trace, generated_ids_are_the_pool_in_hex)
{
	static const uint8_t tail[40] = {
		0, 0, 0, 0, 0, 0, 0, 0,
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
		0x9a, 0xa9, 0x0f, 0xf0, 0x00, 0xff, 0x10, 0x01, 0x5a, 0xa5, 0x99, 0xaa, 0x0a, 0xa0, 0x7f, 0x80,
	};
	static struct gw_trace_rng rng;
	struct gw_trace_in in = { 0 };
	struct gw_trace t;

	memcpy(rng.pool + sizeof rng.pool - sizeof tail, tail, sizeof tail);
	rng.left = sizeof tail;
	cr_assert_eq(gw_trace_begin(&t, &rng, &in), 0);
	cr_expect_str_eq(t.span_id, "0000000000000001");
	cr_expect_str_eq(t.request_id, "0123456789abcdeffedcba9876543210");
	cr_expect_str_eq(t.trace_id, "9aa90ff000ff10015aa599aa0aa07f80");
	cr_expect_eq(rng.left, 0);
	cr_expect_eq(rng.refills, 0);
}
