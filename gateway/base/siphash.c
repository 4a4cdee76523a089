/* siphash: SipHash-2-4-128. See siphash.h. */
#include "gateway/base/siphash.h"

#include <endian.h>
#include <string.h>

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t sip_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);	/* one load; the bytes are little-endian whatever the host */
	return le64toh(v);
}

static void sip_put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof v);
}

/* One SipRound on the four state words (locals of the caller: inlined, they stay in registers). */
static inline void sip_round(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3)
{
	*v0 += *v1;
	*v1 = SIP_ROTL(*v1, 13);
	*v1 ^= *v0;
	*v0 = SIP_ROTL(*v0, 32);
	*v2 += *v3;
	*v3 = SIP_ROTL(*v3, 16);
	*v3 ^= *v2;
	*v0 += *v3;
	*v3 = SIP_ROTL(*v3, 21);
	*v3 ^= *v0;
	*v2 += *v1;
	*v1 = SIP_ROTL(*v1, 17);
	*v1 ^= *v2;
	*v2 = SIP_ROTL(*v2, 32);
}

void gw_siphash128(const uint8_t key[GW_SIPHASH_KEY_LEN], const void *in, size_t len,
		   uint8_t out[GW_SIPHASH_OUT_LEN])
{
	const uint8_t *p = in;
	uint64_t k0 = sip_le64(key), k1 = sip_le64(key + 8);
	/* The initial state is "somepseudorandomlygeneratedbytes"; 0xee in v1 selects 128 bits. */
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1 ^ 0xee;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t m, last = (uint64_t)(len & 0xff) << 56;
	size_t full = len - len % 8;

	for (size_t i = 0; i < full; i += 8) {
		m = sip_le64(p + i);
		v3 ^= m;
		sip_round(&v0, &v1, &v2, &v3);
		sip_round(&v0, &v1, &v2, &v3);
		v0 ^= m;
	}
	for (size_t i = 0; i < len % 8; i++)
		last |= (uint64_t)p[full + i] << (8 * i);
	v3 ^= last;
	sip_round(&v0, &v1, &v2, &v3);
	sip_round(&v0, &v1, &v2, &v3);
	v0 ^= last;
	v2 ^= 0xee;
	for (int r = 0; r < 4; r++)
		sip_round(&v0, &v1, &v2, &v3);
	sip_put_le64(out, v0 ^ v1 ^ v2 ^ v3);
	v1 ^= 0xdd;
	for (int r = 0; r < 4; r++)
		sip_round(&v0, &v1, &v2, &v3);
	sip_put_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}
