/*
 * sim_png: tiny real PNG images (PNG spec, 2nd ed.: signature, IHDR, IDAT, IEND) for thumbnails
 * and png outputs. 8-bit RGB, no interlace; the image data is a zlib stream of stored deflate
 * blocks (RFC 1950/1951), so no compressor is needed and the same pixels give the same bytes.
 */
#ifndef A3D_SIM_PNG_H
#define A3D_SIM_PNG_H

#include <stdint.h>

struct evbuffer;

#define SIM_PNG_MAX_SIDE 256		/* pixels per side */
#define SIM_PNG_THUMB_SIDE 32		/* what sim_png_thumb draws */

/* Appends a PNG of w x h pixels, rgb holding w * h * 3 bytes row by row. 0, or -1 when a side
 * is 0 or over SIM_PNG_MAX_SIDE (nothing appended). */
int sim_png_rgb(struct evbuffer *out, int w, int h, const unsigned char *rgb);

/* Appends a SIM_PNG_THUMB_SIDE square thumbnail drawn from seed: a figure in a colour picked by
 * the seed on a lighter ground. Same seed, same bytes. */
int sim_png_thumb(struct evbuffer *out, uint64_t seed);

#endif
