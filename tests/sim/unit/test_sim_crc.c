/* sim_crc: CRC-32 and Adler-32 against published check values. */
#include <criterion/criterion.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_crc.h"

Test(sim_crc, crc32_table)
{
	static const struct { const char *in; uint32_t crc; } cases[] = {
		{ "", 0x00000000u },
		{ "123456789", 0xCBF43926u },		/* the CRC-32 check value */
		{ "a", 0xE8B7BE43u },
		{ "The quick brown fox jumps over the lazy dog", 0x414FA339u },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sim_crc32(SIM_CRC32_INIT, cases[i].in, strlen(cases[i].in)), cases[i].crc,
			     "case %zu: %08x", i, sim_crc32(SIM_CRC32_INIT, cases[i].in, strlen(cases[i].in)));
	/* incremental = at once */
	cr_expect_eq(sim_crc32(sim_crc32(SIM_CRC32_INIT, "1234", 4), "56789", 5), 0xCBF43926u);
}

Test(sim_crc, adler32_table)
{
	static const struct { const char *in; uint32_t adler; } cases[] = {
		{ "", 0x00000001u },
		{ "a", 0x00620062u },
		{ "Wikipedia", 0x11E60398u },
		{ "123456789", 0x091E01DEu },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sim_crc_adler32(SIM_CRC_ADLER_INIT, cases[i].in, strlen(cases[i].in)),
			     cases[i].adler, "case %zu", i);
}

Test(sim_crc, adler32_long_input_reduces)
{
	static unsigned char buf[100000];
	uint32_t a = 1, b = 0;

	memset(buf, 0xff, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++) {	/* the definition, reduced every byte */
		a = (a + buf[i]) % 65521u;
		b = (b + a) % 65521u;
	}
	cr_expect_eq(sim_crc_adler32(SIM_CRC_ADLER_INIT, buf, sizeof(buf)), (b << 16) | a);
}

Test(sim_crc, crc32_of_a_chained_evbuffer)
{
	struct evbuffer *b = evbuffer_new();
	static char big[200000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	/* many small chains, then one large one */
	for (size_t off = 0; off < 1000; off += 10)
		evbuffer_add(b, big + off, 10);
	evbuffer_add(b, big + 1000, sizeof(big) - 1000);
	cr_expect_eq(sim_crc32_evbuffer(SIM_CRC32_INIT, b), sim_crc32(SIM_CRC32_INIT, big, sizeof(big)));
	cr_expect_eq(evbuffer_get_length(b), sizeof(big), "the bytes stay");
	evbuffer_free(b);
}
