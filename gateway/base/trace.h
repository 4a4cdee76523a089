/*
 * trace: request ids and W3C Trace Context (https://www.w3.org/TR/trace-context/, level 1) for
 * one call and the upstream requests made for it.
 *
 * A call arrives with, perhaps, `x-request-id`, `traceparent` and `tracestate`. gw_trace_begin()
 * keeps what is valid and makes up the rest: a request id the caller sent is kept when it is 1 to
 * GW_TRACE_REQUEST_ID_MAX printable ASCII bytes (else a random one replaces it); a valid
 * traceparent gives the trace id, the caller's span (the parent) and the sampled flag (else a new
 * trace starts: random trace id, no parent, not sampled); tracestate is kept as received when the
 * traceparent was valid and it is at most GW_TRACE_STATE_MAX printable bytes (else dropped, as the
 * specification says a vendor that cannot parse traceparent must). The call's own span id is
 * always new. Upstream requests are children (gw_trace_child): same trace, request id, flags and
 * tracestate; the call's span as parent; a new span id each.
 *
 * Random ids come from getrandom(2) through a pool (struct gw_trace_rng): one system call per
 * GW_TRACE_RNG_POOL bytes rather than one per call. Ids are 128 (trace, request) or 64 (span)
 * random bits, so they do not collide across replicas and restarts the way a counter did. Ids
 * are not secrets; the pool is not wiped.
 *
 * Pure but for the pool's getrandom(2). A struct gw_trace_rng belongs to one thread.
 */
#ifndef A3D_GATEWAY_TRACE_H
#define A3D_GATEWAY_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define GW_TRACE_REQUEST_ID_MAX 128	/* bytes of a caller's x-request-id; longer is replaced */
#define GW_TRACE_STATE_MAX 512		/* bytes of tracestate passed on (the specification asks
					 * vendors to propagate at least 512); longer is dropped */
#define GW_TRACE_ID_HEX 32		/* trace id: 16 bytes in lower-case hex */
#define GW_TRACE_SPAN_HEX 16		/* span id: 8 bytes in lower-case hex */
#define GW_TRACE_GEN_REQUEST_ID 32	/* a generated request id: 16 random bytes in hex */
#define GW_TRACE_PARENT_LEN 55		/* "00-" trace "-" span "-" flags */
#define GW_TRACE_RNG_POOL 4096		/* random bytes fetched by one getrandom(2) */
#define GW_TRACE_SAMPLED 0x01		/* trace-flags: the only flag version 00 defines */

struct gw_trace {
	char request_id[GW_TRACE_REQUEST_ID_MAX + 1];
	char trace_id[GW_TRACE_ID_HEX + 1];	/* never all zero */
	char span_id[GW_TRACE_SPAN_HEX + 1];	/* this span; never all zero */
	char parent_id[GW_TRACE_SPAN_HEX + 1];	/* the span that caused this one, "" for a root */
	uint8_t flags;				/* GW_TRACE_SAMPLED or 0 */
	const char *state;			/* tracestate as received (borrowed: the owner of the
						 * struct keeps it alive), or NULL */
	size_t state_len;
};

/* Log fields of a trace: GW_LTRACE(t) in a gw_log() argument list (gateway/base/log.h). */
#define GW_LTRACE(t)                                                                     \
	GW_LS("request_id", (t)->request_id), GW_LS("trace_id", (t)->trace_id),            \
		GW_LS("span_id", (t)->span_id)

struct gw_trace_rng {
	uint8_t pool[GW_TRACE_RNG_POOL];
	size_t left;			/* unused bytes at the end of pool */
	uint64_t refills;		/* getrandom(2) calls that filled the pool */
	uint64_t failures;		/* getrandom(2) failures: ids from the fallback below */
	uint64_t fallback;		/* state of the fallback generator */
};

/* Fills out[0..n) with random bytes from the pool (refilled when empty). Should getrandom(2)
 * fail, the bytes come from a generator seeded by the clock and the process id, counted in
 * failures: ids then still differ within the process. */
void gw_trace_random(struct gw_trace_rng *r, void *out, size_t n);

/* What a call brought (borrowed, not NUL-terminated; NULL when absent). n_parent counts the
 * traceparent values: more than one makes it invalid. */
struct gw_trace_in {
	const char *request_id;
	size_t request_id_len;
	const char *parent;
	size_t parent_len;
	unsigned n_parent;
	const char *state;
	size_t state_len;
};

/* What gw_trace_begin replaced or dropped (bits). */
#define GW_TRACE_BAD_REQUEST_ID 1u	/* x-request-id invalid: a generated one replaces it */
#define GW_TRACE_BAD_PARENT 2u		/* traceparent invalid: a new trace starts */
#define GW_TRACE_BAD_STATE 4u		/* tracestate dropped (too long, not printable, or sent
					 * with an invalid or without a traceparent) */

/* Sets *t for a call from in (see the top). t->state borrows in->state. Returns the
 * GW_TRACE_BAD_* bits of what was refused; 0 when everything sent (or nothing) was kept. */
unsigned gw_trace_begin(struct gw_trace *t, struct gw_trace_rng *r, const struct gw_trace_in *in);

/* *child = a new span of parent's trace, whose parent is parent's span (upstream requests). */
void gw_trace_child(struct gw_trace *child, const struct gw_trace *parent, struct gw_trace_rng *r);
/* A new span id for t, its parent unchanged (the next attempt of an upstream request). */
void gw_trace_new_span(struct gw_trace *t, struct gw_trace_rng *r);

/* 1 when s[0..len) is a request id kept as sent: 1..GW_TRACE_REQUEST_ID_MAX bytes of 0x21-0x7e. */
int gw_trace_request_id_ok(const char *s, size_t len);

/* Parses a traceparent value (version 00, or a later version read as 00 where the specification
 * says to). 0 with trace_id (33 bytes), parent_id (17 bytes) and *flags set, or -1 when it must
 * be ignored: wrong length or separators, upper-case or non-hex digits, version ff, an all-zero
 * trace or parent id. */
int gw_trace_parse_parent(const char *s, size_t len, char *trace_id, char *parent_id,
			  uint8_t *flags);

/* 1 when s[0..len) is a tracestate passed on as received: 1..GW_TRACE_STATE_MAX bytes of
 * 0x20-0x7e (list members are not checked one by one: the gateway forwards, it does not read it). */
int gw_trace_state_ok(const char *s, size_t len);

/* Writes "00-<trace_id>-<span_id>-<flags>" into buf (at least GW_TRACE_PARENT_LEN + 1 bytes).
 * Returns GW_TRACE_PARENT_LEN, or 0 when cap is too small (buf then "" if cap > 0). */
size_t gw_trace_format_parent(const struct gw_trace *t, char *buf, size_t cap);

#endif
