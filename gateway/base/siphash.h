/*
 * siphash: SipHash-2-4 with a 128-bit output (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012), a keyed hash for short strings: without the 16-byte key, its outputs
 * can be neither predicted nor made to collide. The API key check remembers the keys it has
 * verified by this hash under a random per-ring key (auth/caller/apikey.c), so a repeated key costs
 * one SipHash instead of a SHA-256. Pure; the unit test checks it against OpenSSL's SIPHASH MAC.
 */
#ifndef A3D_GATEWAY_SIPHASH_H
#define A3D_GATEWAY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define GW_SIPHASH_KEY_LEN 16
#define GW_SIPHASH_OUT_LEN 16

/* out = SipHash-2-4-128(key, in[0..len)); in may be NULL when len is 0. */
void gw_siphash128(const uint8_t key[GW_SIPHASH_KEY_LEN], const void *in, size_t len,
		   uint8_t out[GW_SIPHASH_OUT_LEN]);

#endif
