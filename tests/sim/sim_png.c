/* sim_png: PNG files with stored (uncompressed) zlib data. */
#include "sim_png.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_crc.h"

#define SIM_PNG_STORED_MAX 65535	/* bytes in one stored deflate block */

static void sim_png_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* One chunk: length, type, data, CRC-32 of type and data. */
static void sim_png_chunk(struct evbuffer *out, const char *type, const unsigned char *data,
			  size_t len)
{
	unsigned char b[4];
	uint32_t crc = sim_crc32(SIM_CRC32_INIT, type, 4);

	crc = sim_crc32(crc, data, len);
	sim_png_be32(b, (uint32_t)len);
	evbuffer_add(out, b, 4);
	evbuffer_add(out, type, 4);
	if (len > 0)
		evbuffer_add(out, data, len);
	sim_png_be32(b, crc);
	evbuffer_add(out, b, 4);
}

int sim_png_rgb(struct evbuffer *out, int w, int h, const unsigned char *rgb)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[13], *raw = NULL, *z = NULL;
	size_t rl = 0, zl = 0, row = (size_t)w * 3, rmax = (size_t)h * (1 + row);
	int rc = -1;

	if (w < 1 || h < 1 || w > SIM_PNG_MAX_SIDE || h > SIM_PNG_MAX_SIDE)
		return -1;
	/* zlib header, 5 bytes per stored block, Adler-32 */
	raw = malloc(rmax);
	z = malloc(2 + rmax + 5 * (rmax / SIM_PNG_STORED_MAX + 1) + 4);
	if (raw == NULL || z == NULL)
		goto out;
	for (int y = 0; y < h; y++) {
		raw[rl++] = 0;			/* filter type None */
		memcpy(raw + rl, rgb + (size_t)y * row, row);
		rl += row;
	}
	z[zl++] = 0x78;				/* CMF: deflate, 32 KiB window */
	z[zl++] = 0x01;				/* FLG: no dictionary, (0x7801 % 31 == 0) */
	for (size_t off = 0; off < rl;) {
		size_t n = rl - off < SIM_PNG_STORED_MAX ? rl - off : SIM_PNG_STORED_MAX;

		z[zl++] = off + n == rl;	/* BFINAL on the last block, BTYPE 00 stored */
		z[zl++] = (unsigned char)(n & 0xff);
		z[zl++] = (unsigned char)(n >> 8);
		z[zl++] = (unsigned char)(~n & 0xff);
		z[zl++] = (unsigned char)((~n >> 8) & 0xff);
		memcpy(z + zl, raw + off, n);
		zl += n;
		off += n;
	}
	sim_png_be32(z + zl, sim_crc_adler32(SIM_CRC_ADLER_INIT, raw, rl));
	zl += 4;
	sim_png_be32(ihdr, (uint32_t)w);
	sim_png_be32(ihdr + 4, (uint32_t)h);
	ihdr[8] = 8;				/* bit depth */
	ihdr[9] = 2;				/* colour type: RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;	/* deflate, adaptive filtering, no interlace */
	evbuffer_add(out, sig, sizeof(sig));
	sim_png_chunk(out, "IHDR", ihdr, sizeof(ihdr));
	sim_png_chunk(out, "IDAT", z, zl);
	sim_png_chunk(out, "IEND", NULL, 0);
	rc = 0;
out:
	free(raw);
	free(z);
	return rc;
}

int sim_png_thumb(struct evbuffer *out, uint64_t seed)
{
	unsigned char px[SIM_PNG_THUMB_SIDE * SIM_PNG_THUMB_SIDE * 3];
	const int n = SIM_PNG_THUMB_SIDE;
	unsigned char fg[3] = { (unsigned char)(seed & 0xbf), (unsigned char)((seed >> 8) & 0xbf),
				(unsigned char)((seed >> 16) & 0xbf) };

	for (int y = 0; y < n; y++)
		for (int x = 0; x < n; x++) {
			/* a head (circle) over a body (rounded block): a person's silhouette */
			int dx = x - n / 2, dy = y - n / 4;
			int head = dx * dx + dy * dy <= (n / 8) * (n / 8);
			int body = y > n / 2 - 2 && y < n - 2 && x > n / 4 && x < n - n / 4;
			unsigned char *p = px + ((size_t)y * n + x) * 3;

			for (int c = 0; c < 3; c++)
				p[c] = head || body ? fg[c] : (unsigned char)(0xc0 + fg[c] / 4);
		}
	return sim_png_rgb(out, n, n, px);
}
