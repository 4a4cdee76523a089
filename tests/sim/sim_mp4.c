/* sim_mp4: MP4 box parsing for /videoInfo. */
#include "sim_mp4.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sim_mp4_src {
	int fd;			/* -1 when buf is used */
	const uint8_t *buf;
	int64_t size;
};

struct sim_mp4_track {
	int is_video;
	int width, height;
	uint32_t timescale;
	uint64_t duration;
	uint64_t samples, sample_ticks;
	char fourcc[5];
};

struct sim_mp4_state {
	uint32_t mv_timescale;
	uint64_t mv_duration;
	struct sim_mp4_track cur;
	struct sim_mp4_track video;	/* the first video track found */
	int have_video;
};

static uint32_t sim_mp4_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t sim_mp4_u64(const uint8_t *p)
{
	return (uint64_t)sim_mp4_u32(p) << 32 | sim_mp4_u32(p + 4);
}

static int sim_mp4_read(const struct sim_mp4_src *src, int64_t off, void *dst, size_t n)
{
	if (off < 0 || off + (int64_t)n > src->size)
		return -1;
	if (src->fd < 0) {
		memcpy(dst, src->buf + off, n);
		return 0;
	}
	return pread(src->fd, dst, n, off) == (ssize_t)n ? 0 : -1;
}

/* mvhd / mdhd share the layout of their first fields. */
static int sim_mp4_hd(const uint8_t *p, size_t n, uint32_t *ts, uint64_t *dur)
{
	if (n < 4)
		return -1;
	if (p[0] == 1) {
		if (n < 4 + 8 + 8 + 4 + 8)
			return -1;
		*ts = sim_mp4_u32(p + 20);
		*dur = sim_mp4_u64(p + 24);
	} else {
		if (n < 4 + 4 + 4 + 4 + 4)
			return -1;
		*ts = sim_mp4_u32(p + 12);
		*dur = sim_mp4_u32(p + 16);
	}
	return 0;
}

static int sim_mp4_leaf(struct sim_mp4_state *st, const char *type, const uint8_t *p, size_t n)
{
	if (strcmp(type, "mvhd") == 0)
		return sim_mp4_hd(p, n, &st->mv_timescale, &st->mv_duration);
	if (strcmp(type, "mdhd") == 0)
		return sim_mp4_hd(p, n, &st->cur.timescale, &st->cur.duration);
	if (strcmp(type, "tkhd") == 0) {
		if (n < 84)
			return -1;
		/* the box ends with 16.16 fixed-point width and height */
		st->cur.width = (int)(sim_mp4_u32(p + n - 8) >> 16);
		st->cur.height = (int)(sim_mp4_u32(p + n - 4) >> 16);
		return 0;
	}
	if (strcmp(type, "hdlr") == 0) {
		if (n < 12)
			return -1;
		st->cur.is_video = memcmp(p + 8, "vide", 4) == 0;
		return 0;
	}
	if (strcmp(type, "stsd") == 0) {
		if (n < 16 || sim_mp4_u32(p + 4) == 0)
			return -1;
		memcpy(st->cur.fourcc, p + 12, 4);
		st->cur.fourcc[4] = '\0';
		return 0;
	}
	if (strcmp(type, "stts") == 0) {
		uint32_t cnt;

		if (n < 8)
			return -1;
		cnt = sim_mp4_u32(p + 4);
		if ((uint64_t)cnt * 8 > n - 8)
			return -1;
		for (uint32_t i = 0; i < cnt; i++) {
			uint64_t c = sim_mp4_u32(p + 8 + 8 * (size_t)i);

			st->cur.samples += c;
			st->cur.sample_ticks += c * sim_mp4_u32(p + 12 + 8 * (size_t)i);
		}
		return 0;
	}
	return 0;	/* other boxes are skipped */
}

static int sim_mp4_walk(struct sim_mp4_state *st, const uint8_t *p, size_t n, int depth)
{
	size_t off = 0;

	if (depth > SIM_MP4_MAX_DEPTH)
		return -1;
	while (off < n) {
		uint64_t size;
		size_t hdr = 8;
		char type[5];

		if (n - off < 8)
			return -1;
		size = sim_mp4_u32(p + off);
		memcpy(type, p + off + 4, 4);
		type[4] = '\0';
		if (size == 1) {
			if (n - off < 16)
				return -1;
			size = sim_mp4_u64(p + off + 8);
			hdr = 16;
		} else if (size == 0) {
			size = n - off;
		}
		if (size < hdr || size > n - off)
			return -1;
		if (strcmp(type, "trak") == 0) {
			memset(&st->cur, 0, sizeof(st->cur));
			if (sim_mp4_walk(st, p + off + hdr, (size_t)size - hdr, depth + 1) != 0)
				return -1;
			if (st->cur.is_video && !st->have_video) {
				st->video = st->cur;
				st->have_video = 1;
			}
		} else if (strcmp(type, "mdia") == 0 || strcmp(type, "minf") == 0 ||
			   strcmp(type, "stbl") == 0) {
			if (sim_mp4_walk(st, p + off + hdr, (size_t)size - hdr, depth + 1) != 0)
				return -1;
		} else if (sim_mp4_leaf(st, type, p + off + hdr, (size_t)size - hdr) != 0) {
			return -1;
		}
		off += (size_t)size;
	}
	return 0;
}

static void sim_mp4_codec(const char *fourcc, char *out, size_t outlen)
{
	if (strcmp(fourcc, "avc1") == 0 || strcmp(fourcc, "avc3") == 0)
		snprintf(out, outlen, "h264");
	else if (strcmp(fourcc, "hvc1") == 0 || strcmp(fourcc, "hev1") == 0)
		snprintf(out, outlen, "hevc");
	else
		snprintf(out, outlen, "%s", fourcc);
}

static int sim_mp4_parse(const struct sim_mp4_src *src, struct sim_mp4_info *out)
{
	struct sim_mp4_state st;
	uint8_t *moov = NULL;
	int64_t off = 0;
	int boxes = 0, have_ftyp = 0, rc = -1;

	memset(&st, 0, sizeof(st));
	memset(out, 0, sizeof(*out));
	while (off < src->size && moov == NULL) {
		uint8_t h[16];
		uint64_t size;
		int64_t hdr = 8;

		if (++boxes > SIM_MP4_MAX_TOP_BOXES || sim_mp4_read(src, off, h, 8) != 0)
			goto out;
		size = sim_mp4_u32(h);
		if (boxes == 1 && memcmp(h + 4, "ftyp", 4) != 0)
			goto out;	/* not an MP4 */
		have_ftyp = 1;
		if (size == 1) {
			if (sim_mp4_read(src, off + 8, h + 8, 8) != 0)
				goto out;
			size = sim_mp4_u64(h + 8);
			hdr = 16;
		} else if (size == 0) {
			size = (uint64_t)(src->size - off);
		}
		if (size < (uint64_t)hdr || size > (uint64_t)(src->size - off))
			goto out;
		if (memcmp(h + 4, "moov", 4) == 0) {
			size_t n = (size_t)(size - (uint64_t)hdr);

			if (n > SIM_MP4_MOOV_MAX || (moov = malloc(n ? n : 1)) == NULL)
				goto out;
			if (sim_mp4_read(src, off + hdr, moov, n) != 0 ||
			    sim_mp4_walk(&st, moov, n, 0) != 0)
				goto out;
		}
		off += (int64_t)size;
	}
	if (!have_ftyp || moov == NULL || !st.have_video || st.video.timescale == 0)
		goto out;
	out->width = st.video.width;
	out->height = st.video.height;
	out->duration = st.mv_timescale ? (double)st.mv_duration / st.mv_timescale
					 : (double)st.video.duration / st.video.timescale;
	{
		double tdur = st.video.duration ? (double)st.video.duration / st.video.timescale
						: (double)st.video.sample_ticks / st.video.timescale;

		out->fps = tdur > 0 ? round((double)st.video.samples / tdur * 1000.0) / 1000.0 : 0;
	}
	sim_mp4_codec(st.video.fourcc, out->codec, sizeof(out->codec));
	out->size = src->size;
	rc = 0;
out:
	free(moov);
	return rc;
}

int sim_mp4_parse_fd(int fd, struct sim_mp4_info *out)
{
	struct stat sb;
	struct sim_mp4_src src = { .fd = fd };

	if (fstat(fd, &sb) != 0)
		return -1;
	src.size = sb.st_size;
	return sim_mp4_parse(&src, out);
}

int sim_mp4_parse_buf(const uint8_t *buf, size_t len, struct sim_mp4_info *out)
{
	struct sim_mp4_src src = { .fd = -1, .buf = buf, .size = (int64_t)len };

	return sim_mp4_parse(&src, out);
}
