/* sim_crc: CRC-32 (table driven, reflected polynomial 0xEDB88320) and Adler-32. */
#include "sim_crc.h"

#include <pthread.h>

#include <event2/buffer.h>

#define SIM_CRC_ADLER_MOD 65521u
#define SIM_CRC_ADLER_NMAX 5552	/* bytes before the sums must be reduced (zlib's bound) */
#define SIM_CRC_PEEK_MAX 64		/* evbuffer chunks looked at per round */

static uint32_t sim_crc_table[256];
static pthread_once_t sim_crc_once = PTHREAD_ONCE_INIT;

static void sim_crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		sim_crc_table[n] = c;
	}
}

uint32_t sim_crc32(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&sim_crc_once, sim_crc_init);
	crc = ~crc;
	while (len-- > 0)
		crc = sim_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t sim_crc32_evbuffer(uint32_t crc, struct evbuffer *b)
{
	struct evbuffer_iovec v[SIM_CRC_PEEK_MAX];
	struct evbuffer_ptr pos;
	size_t left = evbuffer_get_length(b);

	if (evbuffer_ptr_set(b, &pos, 0, EVBUFFER_PTR_SET) != 0)
		return crc;
	while (left > 0) {
		int n = evbuffer_peek(b, (ev_ssize_t)left, &pos, v, SIM_CRC_PEEK_MAX);
		size_t done = 0;

		if (n <= 0)
			break;
		for (int i = 0; i < n && i < SIM_CRC_PEEK_MAX; i++) {
			size_t l = v[i].iov_len < left - done ? v[i].iov_len : left - done;

			crc = sim_crc32(crc, v[i].iov_base, l);
			done += l;
		}
		left -= done;
		if (left > 0 && evbuffer_ptr_set(b, &pos, done, EVBUFFER_PTR_ADD) != 0)
			break;
	}
	return crc;
}

uint32_t sim_crc_adler32(uint32_t adler, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t a = adler & 0xffff, b = adler >> 16;

	while (len > 0) {
		size_t n = len < SIM_CRC_ADLER_NMAX ? len : SIM_CRC_ADLER_NMAX;

		len -= n;
		while (n-- > 0) {
			a += *p++;
			b += a;
		}
		a %= SIM_CRC_ADLER_MOD;
		b %= SIM_CRC_ADLER_MOD;
	}
	return (b << 16) | a;
}
