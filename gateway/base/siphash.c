/* siphash: SipHash-2-4-128. See siphash.h. */
#include "gateway/base/siphash.h"

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t sip_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void sip_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void sip_rounds(uint64_t v[4], int n)
{
	while (n--) {
		v[0] += v[1];
		v[1] = SIP_ROTL(v[1], 13);
		v[1] ^= v[0];
		v[0] = SIP_ROTL(v[0], 32);
		v[2] += v[3];
		v[3] = SIP_ROTL(v[3], 16);
		v[3] ^= v[2];
		v[0] += v[3];
		v[3] = SIP_ROTL(v[3], 21);
		v[3] ^= v[0];
		v[2] += v[1];
		v[1] = SIP_ROTL(v[1], 17);
		v[1] ^= v[2];
		v[2] = SIP_ROTL(v[2], 32);
	}
}

void gw_siphash128(const uint8_t key[GW_SIPHASH_KEY_LEN], const void *in, size_t len,
		   uint8_t out[GW_SIPHASH_OUT_LEN])
{
	const uint8_t *p = in;
	uint64_t k0 = sip_le64(key), k1 = sip_le64(key + 8);
	/* The initial state is "somepseudorandomlygeneratedbytes"; 0xee in v1 selects 128 bits. */
	uint64_t v[4] = { 0x736f6d6570736575ull ^ k0, 0x646f72616e646f6dull ^ k1 ^ 0xee,
			  0x6c7967656e657261ull ^ k0, 0x7465646279746573ull ^ k1 };
	uint64_t m, last = (uint64_t)(len & 0xff) << 56;
	size_t full = len - len % 8;

	for (size_t i = 0; i < full; i += 8) {
		m = sip_le64(p + i);
		v[3] ^= m;
		sip_rounds(v, 2);
		v[0] ^= m;
	}
	for (size_t i = 0; i < len % 8; i++)
		last |= (uint64_t)p[full + i] << (8 * i);
	v[3] ^= last;
	sip_rounds(v, 2);
	v[0] ^= last;
	v[2] ^= 0xee;
	sip_rounds(v, 4);
	sip_put_le64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
	v[1] ^= 0xdd;
	sip_rounds(v, 4);
	sip_put_le64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
}
