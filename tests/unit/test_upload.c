/* Unit tests for the pure parts of gateway/svc/upload.c: names, chunk sizes, Content-Range, Range. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "gateway/svc/upload.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

Test(upload, name_check)
{
	static const struct {
		const char *name;
		int ok;
		const char *err_has;
	} t[] = {
		{ "clip.mp4", 1, NULL },
		{ "a", 1, NULL },
		{ "My Holiday (2).MOV", 1, NULL },
		{ "vidéo.mp4", 1, NULL },
		{ "", 0, "required" },
		{ NULL, 0, "required" },
		{ "dir/clip.mp4", 0, "'/'" },
		{ "/clip.mp4", 0, "'/'" },
		{ "clip\n.mp4", 0, "control" },
		{ "clip\x7f.mp4", 0, "control" },
		{ "tab\there", 0, "control" },
	};
	char err[128];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		err[0] = '\0';
		int rc = gw_upload_name_check(t[i].name, err, sizeof err);

		cr_expect_eq(rc, t[i].ok ? 0 : -1, "case %zu", i);
		if (t[i].err_has)
			cr_expect(strstr(err, t[i].err_has) != NULL, "case %zu: err '%s'", i, err);
	}
}

Test(upload, name_length_limit)
{
	char name[GW_UPLOAD_NAME_MAX + 2], err[128];

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';			/* 256 bytes */
	cr_expect_eq(gw_upload_name_check(name, err, sizeof err), -1);
	cr_expect(strstr(err, "255") != NULL, "err '%s'", err);
	name[GW_UPLOAD_NAME_MAX] = '\0';		/* 255 bytes */
	cr_expect_eq(gw_upload_name_check(name, err, sizeof err), 0);
}

Test(upload, chunk_size)
{
	static const struct {
		size_t in, out;
	} t[] = {
		{ 0, 4 * MiB },
		{ 8 * MiB, 8 * MiB },
		{ 256 * KiB, 256 * KiB },
		{ 256 * KiB + 1, 256 * KiB },
		{ 1 * MiB - 1, 768 * KiB },
		{ 1, 256 * KiB },
		{ 100, 256 * KiB },
		{ 1024u * MiB, 256 * MiB },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t got = gw_upload_chunk_size(t[i].in);

		cr_expect_eq(got, t[i].out, "case %zu: %zu -> %zu, want %zu", i, t[i].in, got,
			     t[i].out);
		cr_expect_eq(got % GW_UPLOAD_UNIT, 0, "case %zu not a multiple of 256 KiB", i);
	}
}

Test(upload, content_range)
{
	static const struct {
		uint64_t first, len;
		int final;
		uint64_t total;
		int rc;
		const char *want;
	} t[] = {
		{ 0, 8388608, 0, 0, 0, "bytes 0-8388607/*" },
		{ 8388608, 8388608, 0, 0, 0, "bytes 8388608-16777215/*" },
		{ 16777216, 4194304, 1, 20971520, 0, "bytes 16777216-20971519/20971520" },
		{ 0, 5, 1, 5, 0, "bytes 0-4/5" },
		{ 0, 1, 1, 1, 0, "bytes 0-0/1" },
		{ 8388608, 0, 1, 8388608, 0, "bytes */8388608" },
		{ 0, 0, 0, 0, -1, NULL },		/* a non-final chunk cannot be empty */
		{ 0, 5, 1, 6, -1, NULL },		/* final must end at total */
		{ 10, 5, 1, 10, -1, NULL },
		{ 0, 0, 1, 0, 0, "bytes */0" },
		{ 18446744073709551000ull, 100, 0, 0, 0,
		  "bytes 18446744073709551000-18446744073709551099/*" },
	};
	char out[GW_UPLOAD_RANGE_MAX];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		out[0] = '\0';
		int rc = gw_upload_content_range(out, sizeof out, t[i].first, t[i].len, t[i].final,
						 t[i].total);

		cr_expect_eq(rc, t[i].rc, "case %zu rc %d", i, rc);
		if (t[i].want)
			cr_expect_str_eq(out, t[i].want, "case %zu", i);
	}
}

Test(upload, content_range_too_small_buffer)
{
	char out[8];

	cr_expect_eq(gw_upload_content_range(out, sizeof out, 0, 8388608, 0, 0), -1);
}

Test(upload, parse_range)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t want;
	} t[] = {
		{ NULL, 0, 0 },
		{ "", 0, 0 },
		{ "bytes=0-0", 0, 1 },
		{ "bytes=0-8388607", 0, 8388608 },
		{ "bytes=0-16777215 ", 0, 16777216 },
		{ "bytes=0-", -1, 0 },
		{ "bytes=1-100", -1, 0 },
		{ "bytes=0-12x", -1, 0 },
		{ "0-100", -1, 0 },
		{ "bytes=0-99999999999999999999999", -1, 0 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t got = 12345;
		int rc = gw_upload_parse_range(t[i].in, &got);

		cr_expect_eq(rc, t[i].rc, "case %zu rc %d", i, rc);
		if (t[i].rc == 0)
			cr_expect_eq(got, t[i].want, "case %zu: %llu", i, (unsigned long long)got);
	}
}

Test(upload, advance)
{
	static const struct {
		uint64_t offset, len, persisted;
		int rc;
		uint64_t consumed;
	} t[] = {
		{ 0, 8388608, 8388608, 0, 8388608 },	/* all taken */
		{ 0, 8388608, 4194304, 0, 4194304 },	/* half taken: resend the rest */
		{ 0, 8388608, 0, 0, 0 },		/* nothing taken */
		{ 8388608, 8388608, 16777216, 0, 8388608 },
		{ 8388608, 8388608, 8388607, -1, 0 },	/* went backwards */
		{ 8388608, 8388608, 16777217, -1, 0 },	/* more than sent */
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t got = 999;
		int rc = gw_upload_advance(t[i].offset, t[i].len, t[i].persisted, &got);

		cr_expect_eq(rc, t[i].rc, "case %zu", i);
		if (rc == 0)
			cr_expect_eq(got, t[i].consumed, "case %zu", i);
	}
}

/* The arithmetic of a whole 20 MiB upload in 8 MiB chunks, as the handler strings it together. */
Test(upload, whole_upload_sequence)
{
	const uint64_t total = 20 * MiB;
	const size_t chunk = gw_upload_chunk_size(8 * MiB);
	static const char *const want[] = {
		"bytes 0-8388607/*", "bytes 8388608-16777215/*", "bytes 16777216-20971519/20971520",
	};
	uint64_t offset = 0;
	size_t n = 0;
	char cr[GW_UPLOAD_RANGE_MAX], range[64];

	while (offset < total && n < 10) {
		uint64_t left = total - offset, len = left > chunk ? chunk : left, persisted, consumed;
		int final = left <= chunk;

		cr_assert_eq(gw_upload_content_range(cr, sizeof cr, offset, len, final, total), 0);
		cr_assert_lt(n, sizeof want / sizeof want[0]);
		cr_expect_str_eq(cr, want[n]);
		snprintf(range, sizeof range, "bytes=0-%llu", (unsigned long long)(offset + len - 1));
		cr_assert_eq(gw_upload_parse_range(range, &persisted), 0);
		cr_assert_eq(gw_upload_advance(offset, len, persisted, &consumed), 0);
		cr_expect_eq(consumed, len);
		offset = persisted;
		n++;
	}
	cr_expect_eq(n, 3);
	cr_expect_eq(offset, total);
}

Test(upload, escape)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "clip.mp4", "clip.mp4" },
		{ "my clip.mp4", "my%20clip.mp4" },
		{ "a&b=c?d#e", "a%26b%3Dc%3Fd%23e" },
		{ "vidéo", "vid%C3%A9o" },
		{ "~_-.", "~_-." },
		{ "%", "%25" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_assert_eq(gw_upload_escape(t[i].in, out, sizeof out), 0, "case %zu", i);
		cr_expect_str_eq(out, t[i].want, "case %zu", i);
	}
	cr_expect_eq(gw_upload_escape("abc", out, 3), -1);
	cr_expect_eq(gw_upload_escape(" ", out, 3), -1);
	cr_expect_eq(gw_upload_escape(" ", out, 4), 0);
}

Test(upload, resolve_location)
{
	static const struct {
		const char *base, *loc, *want;
	} t[] = {
		{ "http://127.0.0.1:8090/storage/u1?X-Goog-Signature=ab", "/storage/u1?upload_id=9",
		  "http://127.0.0.1:8090/storage/u1?upload_id=9" },
		{ "https://h.example/o?sig", "https://other.example/up?id=1",
		  "https://other.example/up?id=1" },
		{ "http://h:1", "/x", "http://h:1/x" },
		{ "http://h/o", "relative/x", NULL },
		{ "http://h/o", "//evil/x", NULL },
		{ "http://h/o", "", NULL },
		{ "http://h/o", NULL, NULL },
		{ "http://h/o", "ftp://h/x", NULL },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char *got = gw_upload_resolve(t[i].base, t[i].loc);

		if (t[i].want)
			cr_expect(got && strcmp(got, t[i].want) == 0, "case %zu: %s", i,
				  got ? got : "(null)");
		else
			cr_expect_null(got, "case %zu: %s", i, got ? got : "(null)");
		free(got);
	}
}

/* The explicit bound on one upload's memory (issues 13, 21): two chunks (one on its way to storage,
 * the next one filling) + the largest message taken, in whole storage units. */
Test(upload, buffer_bound_table)
{
	static const struct {
		size_t chunk, upload_msg, grpc_msg;
		size_t want_msg, want_cap;
	} cases[] = {
		{ 4u << 20, 0, 4u << 20, 4u << 20, 12u << 20 },		/* defaults: 12 MiB */
		{ 8u << 20, 0, 4u << 20, 4u << 20, 20u << 20 },
		{ 8u << 20, 0, 0, 4u << 20, 20u << 20 },			/* gRPC limit unset: 4 MiB */
		{ 256u << 10, 64u << 10, 4u << 20, 64u << 10, 768u << 10 },	/* uploads.max_message_bytes,
										 * rounded up to a unit */
		{ 256u << 10, 8u << 20, 4u << 20, 4u << 20, (512u << 10) + (4u << 20) },	/* capped by gRPC */
		{ 256u << 10, 1, 1, 1, 768u << 10 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_expect_eq(gw_upload_message_max(cases[i].upload_msg, cases[i].grpc_msg), cases[i].want_msg,
			     "case %zu", i);
		cr_expect_eq(gw_upload_buffer_cap(cases[i].chunk, cases[i].upload_msg, cases[i].grpc_msg),
			     cases[i].want_cap, "case %zu", i);
	}
}

/* What goes to storage next, from the ring's state (chunk 4 MiB; ring 12 MiB, or 10 MiB where a
 * chunk must be cut at the ring's end). */
Test(upload, next_put_table)
{
	static const struct {
		uint64_t offset, received;
		int eof;
		size_t chunk, cap;
		int rc;
		uint64_t len;
		int final;
	} t[] = {
		{ 0, 4 * MiB, 0, 4 * MiB, 12 * MiB, 0, 0, 0 },		/* a chunk, but is it the last? */
		{ 0, 4 * MiB + 1, 0, 4 * MiB, 12 * MiB, 1, 4 * MiB, 0 },	/* a byte after it: not */
		{ 0, 4 * MiB, 1, 4 * MiB, 12 * MiB, 1, 4 * MiB, 1 },	/* the end: it is */
		{ 0, 100, 1, 4 * MiB, 12 * MiB, 1, 100, 1 },		/* a small file */
		{ 0, 0, 1, 4 * MiB, 12 * MiB, 0, 0, 0 },			/* empty: the handler refuses it */
		{ 0, 3 * MiB, 0, 4 * MiB, 12 * MiB, 0, 0, 0 },		/* not a chunk yet */
		{ 8 * MiB, 13 * MiB, 0, 4 * MiB, 12 * MiB, 1, 4 * MiB, 0 },
		{ 8 * MiB, 11 * MiB, 0, 4 * MiB, 10 * MiB, 1, 2 * MiB, 0 },	/* cut at the ring's end */
		{ 8 * MiB, 10 * MiB, 1, 4 * MiB, 10 * MiB, 1, 2 * MiB, 1 },	/* ends at the ring's end */
		{ 8 * MiB, 10 * MiB + 1, 1, 4 * MiB, 10 * MiB, 1, 2 * MiB, 0 },	/* one byte wraps */
		{ 10 * MiB, 10 * MiB + 1, 1, 4 * MiB, 10 * MiB, 1, 1, 1 },	/* ... and ends the file */
		{ 12 * MiB, 16 * MiB + 1, 0, 4 * MiB, 10 * MiB, 1, 4 * MiB, 0 },	/* second lap */
		{ 5 * MiB, 9 * MiB + 1, 0, 4 * MiB, 12 * MiB, 1, 4 * MiB, 0 },	/* after a short persist */
		{ 4 * MiB, 4 * MiB, 1, 4 * MiB, 12 * MiB, 1, 0, 1 },	/* all persisted, total unsaid */
		{ 4 * MiB, 4 * MiB, 0, 4 * MiB, 12 * MiB, 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t len = 99;
		int final = 99;
		int rc = gw_upload_next_put(t[i].offset, t[i].received, t[i].eof, t[i].chunk, t[i].cap,
					    &len, &final);

		cr_expect_eq(rc, t[i].rc, "case %zu", i);
		if (rc == 1) {
			cr_expect_eq(len, t[i].len, "case %zu: len %llu", i, (unsigned long long)len);
			cr_expect_eq(final, t[i].final, "case %zu", i);
		}
	}
}

/* Whole uploads through the ring as the handler drives it (messages taken while the largest one
 * fits, one PUT at a time, storage persisting all or, on every third PUT, one unit less): every
 * byte goes up once in order, no PUT crosses the ring's end or overwrites held bytes, non-final
 * PUTs are whole units, exactly one final PUT carries the total, and the ring never holds more
 * than its size. */
Test(upload, ring_walk)
{
	static const struct {
		size_t chunk, msg, step;
		uint64_t size;
	} t[] = {
		{ 4 * MiB, 4 * MiB, 1 * MiB, 20 * MiB },
		{ 4 * MiB, 4 * MiB, 1 * MiB, 20 * MiB + 12345 },
		{ 8 * MiB, 4 * MiB, 4 * MiB, 64 * MiB },
		{ 256 * KiB, 128 * KiB, 100 * KiB, 3 * MiB + 7 },
		{ 256 * KiB, 4 * MiB, 1 * MiB, 9 * MiB },
		{ 4 * MiB, 4 * MiB, 700, 5 * MiB },
		{ 4 * MiB, 4 * MiB, 1 * MiB, 1 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t cap = gw_upload_buffer_cap(t[i].chunk, t[i].msg, t[i].msg);
		uint64_t offset = 0, received = 0, sent_to = 0, len;
		int final = 0, done = 0, eof = 0;
		unsigned puts = 0, finals = 0;

		cr_assert_eq(cap % GW_UPLOAD_UNIT, 0, "case %zu", i);
		while (!done && puts < 100000) {
			/* The client: one message while the ring has room for the largest. */
			while (!eof && cap - (received - offset) >= t[i].msg) {
				uint64_t n = t[i].size - received < t[i].step ? t[i].size - received : t[i].step;

				received += n;
				eof = received == t[i].size;
			}
			cr_assert_leq(received - offset, cap, "case %zu", i);
			if (!gw_upload_next_put(offset, received, eof, t[i].chunk, cap, &len, &final)) {
				cr_assert(!eof || received == 0, "case %zu: stuck at %llu", i,
					  (unsigned long long)offset);
				break;
			}
			puts++;
			cr_expect_eq(offset, sent_to, "case %zu: PUT not where storage is", i);
			cr_expect_leq(offset % cap + len, cap, "case %zu: PUT crosses the ring's end", i);
			cr_expect_leq(offset + len, received, "case %zu: PUT of bytes not held", i);
			if (!final) {
				cr_expect_eq(len % GW_UPLOAD_UNIT, 0, "case %zu: len %llu", i,
					     (unsigned long long)len);
				cr_expect_gt(received, offset + len, "case %zu: not proven non-final", i);
			} else {
				finals++;
				cr_expect_eq(offset + len, t[i].size, "case %zu", i);
				done = 1;
			}
			/* Storage persists the PUT, or one unit less of a long non-final one. */
			if (!final && puts % 3 == 0 && len > GW_UPLOAD_UNIT)
				len -= GW_UPLOAD_UNIT;
			offset += len;
			sent_to = offset;
		}
		cr_expect(done, "case %zu: never finished", i);
		cr_expect_eq(finals, 1, "case %zu", i);
		cr_expect_eq(offset, t[i].size, "case %zu", i);
	}
}

/* The receive fast path's test: only a message that is exactly one chunk field takes it. */
Test(upload, chunk_header_table)
{
	static const struct {
		const char *bytes;
		size_t n, total;
		int rc;
		size_t hdr;
	} t[] = {
		{ "\x1a\x03" "abc", 5, 5, 0, 2 },		/* chunk "abc" */
		{ "\x1a\x00", 2, 2, 0, 2 },			/* empty chunk */
		{ "\x1a\x80\x80\x40", 4, 4 + (1u << 20), 0, 4 },	/* 1 MiB: a 3-byte length */
		{ "\x1a\x80\x80\x40", 3, 4 + (1u << 20), -1, 0 },	/* length cut by the slice */
		{ "\x1a\x03" "abc", 5, 9, -1, 0 },		/* more fields follow */
		{ "\x1a\x05" "abc", 5, 5, -1, 0 },		/* too few bytes */
		{ "\x0a\x01" "x", 3, 3, -1, 0 },		/* name: decoded as usual */
		{ "\x10\x05", 2, 2, -1, 0 },			/* size */
		{ "\x1a", 1, 1, -1, 0 },
		{ "", 0, 0, -1, 0 },
		{ "\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11, 11, -1, 0 },	/* 2^64 - 1 */
		{ "\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, 11, -1, 0 },	/* no end */
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t hdr = 99;
		int rc = gw_upload_chunk_header((const unsigned char *)t[i].bytes, t[i].n, t[i].total,
						&hdr);

		cr_expect_eq(rc, t[i].rc, "case %zu", i);
		if (rc == 0)
			cr_expect_eq(hdr, t[i].hdr, "case %zu: hdr %zu", i, hdr);
	}
}
