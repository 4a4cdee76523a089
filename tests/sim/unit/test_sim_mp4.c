/* sim_mp4: the committed fixture, and truncated or garbage input. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_mp4.h"

#define FIXTURE A3DSIM_FIXTURES "/tiny.mp4"

static uint8_t *load(size_t *len)
{
	FILE *f = fopen(FIXTURE, "rb");
	uint8_t *buf = malloc(1 << 20);

	cr_assert_not_null(f, "%s", FIXTURE);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	cr_assert(*len > 0 && *len < (1 << 20));
	return buf;
}

/* ffmpeg -f lavfi -i color=c=blue:size=64x48:rate=10 -t 2 -c:v libx264 -movflags +faststart */
Test(sim_mp4, fixture_from_fd)
{
	struct sim_mp4_info info;
	int fd = open(FIXTURE, O_RDONLY);

	cr_assert(fd >= 0);
	cr_assert_eq(sim_mp4_parse_fd(fd, &info), 0);
	close(fd);
	cr_expect_eq(info.width, 64);
	cr_expect_eq(info.height, 48);
	cr_expect_float_eq(info.fps, 10.0, 1e-6);
	cr_expect_float_eq(info.duration, 2.0, 1e-3);
	cr_expect_str_eq(info.codec, "h264");
	cr_expect_eq(info.size, 2091);
}

Test(sim_mp4, fixture_from_buffer_matches)
{
	size_t len;
	uint8_t *buf = load(&len);
	struct sim_mp4_info info;

	cr_assert_eq(sim_mp4_parse_buf(buf, len, &info), 0);
	cr_expect_eq(info.width, 64);
	cr_expect_eq(info.size, (int64_t)len);
	free(buf);
}

/* End offset of the top-level moov box, walked here independently of the parser. */
static size_t moov_end(const uint8_t *b, size_t len)
{
	size_t off = 0;

	while (off + 8 <= len) {
		size_t sz = (size_t)b[off] << 24 | (size_t)b[off + 1] << 16 | (size_t)b[off + 2] << 8 | b[off + 3];

		cr_assert(sz >= 8, "fixture uses only 32-bit box sizes");
		if (memcmp(b + off + 4, "moov", 4) == 0)
			return off + sz;
		off += sz;
	}
	cr_assert_fail("no moov in fixture");
	return 0;
}

Test(sim_mp4, truncations)
{
	size_t len;
	uint8_t *buf = load(&len);
	size_t end = moov_end(buf, len);

	/* Cut inside ftyp/moov: rejected. Cut after moov (inside mdat, faststart layout): the
	 * metadata is whole, so it parses and reports the bytes present. */
	cr_assert(end > 100 && end < len, "moov ends at %zu of %zu", end, len);
	for (size_t cut = 0; cut < len; cut++) {
		struct sim_mp4_info info;
		int rc = sim_mp4_parse_buf(buf, cut, &info);

		if (cut < end)
			cr_assert_eq(rc, -1, "cut at %zu (moov ends at %zu) accepted", cut, end);
		else
			cr_assert(rc == 0 && info.width == 64 && info.size == (int64_t)cut, "cut at %zu", cut);
	}
	free(buf);
}

Test(sim_mp4, garbage_table)
{
	static const struct { const char *name; const char *bytes; size_t len; } cases[] = {
		{ "empty", "", 0 },
		{ "text", "hello, this is not a video at all", 33 },
		{ "size zero ftyp only", "\0\0\0\0ftyp", 8 },
		{ "ftyp too small", "\0\0\0\x04" "ftyp", 8 },
		{ "no moov", "\0\0\0\x10" "ftypisom\0\0\0\0", 16 },
		{ "moov first, no ftyp", "\0\0\0\x08" "moov", 8 },
		{ "huge box", "\0\0\0\x10" "ftypisom\0\0\0\0\xff\xff\xff\xff" "moov", 24 },
		{ "empty moov", "\0\0\0\x10" "ftypisom\0\0\0\0\0\0\0\x08" "moov", 24 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_mp4_info info;

		cr_expect_eq(sim_mp4_parse_buf((const uint8_t *)cases[i].bytes, cases[i].len, &info), -1,
			     "%s accepted", cases[i].name);
	}
}

Test(sim_mp4, flipped_bytes_never_crash)
{
	size_t len;
	uint8_t *buf = load(&len);
	uint64_t st = 12345;

	/* bounded: 2000 mutations, each parse bounded by the box walk limits */
	for (int i = 0; i < 2000; i++) {
		uint8_t *m = malloc(len);
		struct sim_mp4_info info;

		memcpy(m, buf, len);
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		m[(st >> 33) % len] ^= (uint8_t)(1u << ((st >> 20) & 7));
		(void)sim_mp4_parse_buf(m, len, &info);
		free(m);
	}
	free(buf);
}
