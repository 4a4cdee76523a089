/* trace: request ids and W3C traceparent/tracestate; see trace.h. */
#include "gateway/base/trace.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

static const char trace_hexdig[] = "0123456789abcdef";

/* splitmix64: only for the case getrandom(2) fails, so that ids still differ. */
static uint64_t trace_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void trace_refill(struct gw_trace_rng *r)
{
	size_t got = 0;

	while (got < sizeof r->pool) {
		ssize_t n = getrandom(r->pool + got, sizeof r->pool - got, 0);

		if (n > 0) {
			got += (size_t)n;
		} else if (n < 0 && errno != EINTR) {
			break;
		}
	}
	if (got < sizeof r->pool) {
		struct timespec ts;

		r->failures++;
		if (!r->fallback) {
			clock_gettime(CLOCK_REALTIME, &ts);
			r->fallback = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
			r->fallback ^= (uint64_t)getpid() << 32;
		}
		for (size_t i = got; i < sizeof r->pool; i += 8) {
			uint64_t v = trace_mix(&r->fallback);
			size_t k = sizeof r->pool - i < 8 ? sizeof r->pool - i : 8;

			memcpy(r->pool + i, &v, k);
		}
	} else {
		r->refills++;
	}
	r->left = sizeof r->pool;
}

void gw_trace_random(struct gw_trace_rng *r, void *out, size_t n)
{
	uint8_t *o = out;

	while (n) {
		size_t k;

		if (!r->left)
			trace_refill(r);
		k = n < r->left ? n : r->left;
		memcpy(o, r->pool + sizeof r->pool - r->left, k);
		r->left -= k;
		o += k;
		n -= k;
	}
}

/*
 * b[0..n) (n a multiple of 4, > 0) as 2n lower-case hex digits in out (2n + 1 bytes); all-zero
 * bytes come out ...01 (all zero means "invalid" to every reader of an id). Four bytes at a time
 * in a 64-bit word, stored without a loop: every call makes up to 40 bytes of ids, and a digit at
 * a time was most of what tracing cost a cached GetStatus (callgrind).
 */
static void trace_hex(const uint8_t *b, size_t n, char *out)
{
	uint64_t any = 0;

	for (size_t i = 0; i < n; i += 4, out += 8) {
		/* Byte k of z is digit k: each input byte in a 16-bit lane, its high nibble in the
		 * lane's low byte; then nibble v -> '0' + v, plus 39 more from 10 on ('a' - '0' - 10). */
		uint64_t x = (uint64_t)b[i] | (uint64_t)b[i + 1] << 16 | (uint64_t)b[i + 2] << 32 |
			     (uint64_t)b[i + 3] << 48;
		uint64_t y = ((x >> 4) & 0x000f000f000f000full) | ((x & 0x000f000f000f000full) << 8);
		uint64_t ten = ((y + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
		uint64_t z = y + 0x3030303030303030ull + ten * 39;

		any |= x;
		out[0] = (char)z;
		out[1] = (char)(z >> 8);
		out[2] = (char)(z >> 16);
		out[3] = (char)(z >> 24);
		out[4] = (char)(z >> 32);
		out[5] = (char)(z >> 40);
		out[6] = (char)(z >> 48);
		out[7] = (char)(z >> 56);
	}
	if (!any)
		out[-1] = '1';
	*out = '\0';
}

/* n (<= 16) random bytes as 2n hex digits in out, never all zero. */
static void trace_random_hex(struct gw_trace_rng *r, char *out, size_t n)
{
	uint8_t b[16];

	gw_trace_random(r, b, n);
	trace_hex(b, n, out);
}

static int trace_lchex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* 1 when s[0..n) is lower-case hex and not all zeros. */
static int trace_id_ok(const char *s, size_t n)
{
	int nonzero = 0;

	for (size_t i = 0; i < n; i++) {
		int v = trace_lchex(s[i]);

		if (v < 0)
			return 0;
		nonzero |= v;
	}
	return nonzero != 0;
}

int gw_trace_request_id_ok(const char *s, size_t len)
{
	if (!s || len == 0 || len > GW_TRACE_REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

int gw_trace_state_ok(const char *s, size_t len)
{
	if (!s || len == 0 || len > GW_TRACE_STATE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/*
 * "vv-<32 hex>-<16 hex>-ff": offsets 0 (version), 2 '-', 3 (trace id), 35 '-', 36 (parent id),
 * 52 '-', 53 (flags). Version 00 is exactly 55 bytes; a later version may go on after a '-' at
 * 55, and is read as 00 (the specification's rule for versions a vendor does not know).
 */
int gw_trace_parse_parent(const char *s, size_t len, char *trace_id, char *parent_id,
			  uint8_t *flags)
{
	int v0, v1, f0, f1;

	if (!s || len < GW_TRACE_PARENT_LEN)
		return -1;
	v0 = trace_lchex(s[0]);
	v1 = trace_lchex(s[1]);
	if (v0 < 0 || v1 < 0 || (v0 == 15 && v1 == 15))
		return -1;
	if (v0 == 0 && v1 == 0 ? len != GW_TRACE_PARENT_LEN
			       : len > GW_TRACE_PARENT_LEN && s[GW_TRACE_PARENT_LEN] != '-')
		return -1;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -1;
	if (!trace_id_ok(s + 3, GW_TRACE_ID_HEX) || !trace_id_ok(s + 36, GW_TRACE_SPAN_HEX))
		return -1;
	f0 = trace_lchex(s[53]);
	f1 = trace_lchex(s[54]);
	if (f0 < 0 || f1 < 0)
		return -1;
	memcpy(trace_id, s + 3, GW_TRACE_ID_HEX);
	trace_id[GW_TRACE_ID_HEX] = '\0';
	memcpy(parent_id, s + 36, GW_TRACE_SPAN_HEX);
	parent_id[GW_TRACE_SPAN_HEX] = '\0';
	/* Only the sampled flag means anything in version 00; the others are not passed on. */
	*flags = (uint8_t)((f0 << 4 | f1) & GW_TRACE_SAMPLED);
	return 0;
}

unsigned gw_trace_begin(struct gw_trace *t, struct gw_trace_rng *r, const struct gw_trace_in *in)
{
	/* Random bytes for the span, then the trace and the request id when they are made up:
	 * taken from the pool at once. */
	uint8_t rnd[GW_TRACE_SPAN_HEX / 2 + GW_TRACE_ID_HEX / 2 + GW_TRACE_GEN_REQUEST_ID / 2];
	size_t used = GW_TRACE_SPAN_HEX / 2;
	unsigned bad = 0;
	int keep_rid, have_parent;

	keep_rid = in->request_id && gw_trace_request_id_ok(in->request_id, in->request_id_len);
	have_parent = in->n_parent == 1 && in->parent &&
		      gw_trace_parse_parent(in->parent, in->parent_len, t->trace_id, t->parent_id,
					    &t->flags) == 0;
	gw_trace_random(r, rnd, used + (have_parent ? 0 : GW_TRACE_ID_HEX / 2) +
				     (keep_rid ? 0 : GW_TRACE_GEN_REQUEST_ID / 2));
	trace_hex(rnd, GW_TRACE_SPAN_HEX / 2, t->span_id);
	if (keep_rid) {
		memcpy(t->request_id, in->request_id, in->request_id_len);
		t->request_id[in->request_id_len] = '\0';
	} else {
		if (in->request_id)
			bad |= GW_TRACE_BAD_REQUEST_ID;
		trace_hex(rnd + used, GW_TRACE_GEN_REQUEST_ID / 2, t->request_id);
		used += GW_TRACE_GEN_REQUEST_ID / 2;
	}
	if (!have_parent) {
		if (in->n_parent)
			bad |= GW_TRACE_BAD_PARENT;
		trace_hex(rnd + used, GW_TRACE_ID_HEX / 2, t->trace_id);
		t->parent_id[0] = '\0';
		t->flags = 0;
	}
	t->state = NULL;
	t->state_len = 0;
	if (in->state) {
		if (have_parent && gw_trace_state_ok(in->state, in->state_len)) {
			t->state = in->state;
			t->state_len = in->state_len;
		} else {
			bad |= GW_TRACE_BAD_STATE;
		}
	}
	return bad;
}

void gw_trace_child(struct gw_trace *child, const struct gw_trace *parent, struct gw_trace_rng *r)
{
	if (child != parent)
		*child = *parent;
	memcpy(child->parent_id, parent->span_id, sizeof child->parent_id);
	trace_random_hex(r, child->span_id, GW_TRACE_SPAN_HEX / 2);
}

void gw_trace_new_span(struct gw_trace *t, struct gw_trace_rng *r)
{
	trace_random_hex(r, t->span_id, GW_TRACE_SPAN_HEX / 2);
}

size_t gw_trace_format_parent(const struct gw_trace *t, char *buf, size_t cap)
{
	char *p = buf;

	if (cap < GW_TRACE_PARENT_LEN + 1) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	memcpy(p, "00-", 3);
	p += 3;
	memcpy(p, t->trace_id, GW_TRACE_ID_HEX);
	p += GW_TRACE_ID_HEX;
	*p++ = '-';
	memcpy(p, t->span_id, GW_TRACE_SPAN_HEX);
	p += GW_TRACE_SPAN_HEX;
	*p++ = '-';
	*p++ = trace_hexdig[t->flags >> 4];
	*p++ = trace_hexdig[t->flags & 15];
	*p = '\0';
	return GW_TRACE_PARENT_LEN;
}
