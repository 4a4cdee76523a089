/* sim_png: images parsed back chunk by chunk, with the test's own CRC-32 and stored-block reader. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_png.h"

static uint32_t bit_crc32(uint32_t c, const unsigned char *p, size_t n)
{
	c = ~c;
	while (n-- > 0) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct png { int w, h; unsigned char *raw; size_t raw_len; int chunks; };

/* Parses png (asserting its structure); the inflated (stored) IDAT data in p->raw. */
static void parse(const unsigned char *b, size_t len, struct png *p)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	size_t off = 8;
	unsigned char *idat = NULL;
	size_t il = 0;
	int seen_end = 0;

	memset(p, 0, sizeof(*p));
	cr_assert(len > 8 && memcmp(b, sig, 8) == 0, "PNG signature");
	while (off + 12 <= len && !seen_end) {
		uint32_t n = be32(b + off);
		const unsigned char *type = b + off + 4, *data = b + off + 8;

		cr_assert(off + 12 + n <= len, "chunk %d overruns", p->chunks);
		cr_expect_eq(be32(data + n), bit_crc32(0, type, 4 + n), "chunk %.4s CRC", type);
		if (p->chunks == 0) {
			cr_assert(memcmp(type, "IHDR", 4) == 0 && n == 13, "IHDR first");
			p->w = (int)be32(data);
			p->h = (int)be32(data + 4);
			cr_expect(data[8] == 8 && data[9] == 2 && data[12] == 0, "8-bit RGB, no interlace");
		} else if (memcmp(type, "IDAT", 4) == 0) {
			idat = realloc(idat, il + n);
			memcpy(idat + il, data, n);
			il += n;
		} else if (memcmp(type, "IEND", 4) == 0) {
			seen_end = 1;
		}
		p->chunks++;
		off += 12 + n;
	}
	cr_expect(seen_end && off == len, "IEND last");
	/* zlib: header, stored blocks, Adler-32 */
	cr_assert(il >= 2 + 5 + 4 && (idat[0] * 256 + idat[1]) % 31 == 0 && (idat[0] & 15) == 8, "zlib header");
	size_t z = 2;
	p->raw = malloc(il);
	for (int final = 0; !final;) {
		cr_assert(z + 5 <= il);
		final = idat[z] & 1;
		cr_assert_eq((idat[z] >> 1) & 3, 0, "stored block");
		uint32_t bl = idat[z + 1] | idat[z + 2] << 8, nbl = idat[z + 3] | idat[z + 4] << 8;
		cr_assert_eq(bl ^ 0xffff, nbl, "LEN/NLEN");
		cr_assert(z + 5 + bl <= il);
		memcpy(p->raw + p->raw_len, idat + z + 5, bl);
		p->raw_len += bl;
		z += 5 + bl;
	}
	uint32_t a = 1, s2 = 0;
	for (size_t i = 0; i < p->raw_len; i++) {
		a = (a + p->raw[i]) % 65521u;
		s2 = (s2 + a) % 65521u;
	}
	cr_assert(z + 4 == il, "Adler-32 ends the stream");
	cr_expect_eq(be32(idat + z), s2 << 16 | a, "Adler-32");
	free(idat);
}

Test(sim_png, sizes_table)
{
	/* w, h -> accepted */
	static const struct { int w, h, ok; } cases[] = {
		{ 1, 1, 1 }, { 3, 2, 1 }, { 32, 32, 1 }, { SIM_PNG_MAX_SIDE, SIM_PNG_MAX_SIDE, 1 },
		{ 0, 5, 0 }, { 5, 0, 0 }, { SIM_PNG_MAX_SIDE + 1, 1, 0 }, { -1, 4, 0 },
	};
	static unsigned char px[SIM_PNG_MAX_SIDE * SIM_PNG_MAX_SIDE * 3];

	for (size_t i = 0; i < sizeof(px); i++)
		px[i] = (unsigned char)(i * 31);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evbuffer *out = evbuffer_new();
		int rc = sim_png_rgb(out, cases[i].w, cases[i].h, px);

		if (!cases[i].ok) {
			cr_expect_eq(rc, -1, "case %zu", i);
			cr_expect_eq(evbuffer_get_length(out), 0, "case %zu: nothing appended", i);
			evbuffer_free(out);
			continue;
		}
		cr_assert_eq(rc, 0, "case %zu", i);
		size_t len = evbuffer_get_length(out);
		unsigned char *b = evbuffer_pullup(out, -1);
		struct png p;

		parse(b, len, &p);
		cr_expect(p.w == cases[i].w && p.h == cases[i].h, "case %zu: %dx%d", i, p.w, p.h);
		size_t row = (size_t)cases[i].w * 3;
		cr_assert_eq(p.raw_len, (size_t)cases[i].h * (1 + row), "case %zu: filtered bytes", i);
		for (int y = 0; y < cases[i].h; y++) {
			cr_expect_eq(p.raw[(size_t)y * (1 + row)], 0, "filter None");
			cr_expect(memcmp(p.raw + (size_t)y * (1 + row) + 1, px + (size_t)y * row, row) == 0,
				  "case %zu row %d", i, y);
		}
		free(p.raw);
		evbuffer_free(out);
	}
}

Test(sim_png, thumbnails_are_deterministic_per_seed)
{
	struct evbuffer *a = evbuffer_new(), *b = evbuffer_new(), *c = evbuffer_new();
	struct png p;

	cr_assert_eq(sim_png_thumb(a, 42), 0);
	cr_assert_eq(sim_png_thumb(b, 42), 0);
	cr_assert_eq(sim_png_thumb(c, 43), 0);
	size_t la = evbuffer_get_length(a), lb = evbuffer_get_length(b), lc = evbuffer_get_length(c);
	cr_expect(la == lb && memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), la) == 0, "same seed");
	cr_expect(la != lc || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(c, -1), la) != 0, "other seed");
	parse(evbuffer_pullup(a, -1), la, &p);
	cr_expect(p.w == SIM_PNG_THUMB_SIDE && p.h == SIM_PNG_THUMB_SIDE);
	free(p.raw);
	evbuffer_free(a);
	evbuffer_free(b);
	evbuffer_free(c);
}
