/* sim_zip: archives parsed back field by field (APPNOTE 4.3), with the test's own bitwise CRC. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_zip.h"

static uint32_t bit_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n-- > 0) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }

struct member { const char *name, *data; };

/* Builds an archive of ms into a flat malloc'd buffer. */
static unsigned char *build(const struct member *ms, int n, size_t *len)
{
	struct evbuffer *out = evbuffer_new(), *d = evbuffer_new();
	struct sim_zip z;
	unsigned char *flat;

	sim_zip_begin(&z, out);
	for (int i = 0; i < n; i++) {
		evbuffer_add(d, ms[i].data, strlen(ms[i].data));
		cr_assert_eq(sim_zip_add(&z, ms[i].name, d), 0, "add %s", ms[i].name);
		cr_assert_eq(evbuffer_get_length(d), 0, "data drained");
	}
	cr_assert_eq(sim_zip_finish(&z), 0);
	*len = evbuffer_get_length(out);
	flat = malloc(*len);
	evbuffer_remove(out, flat, *len);
	evbuffer_free(out);
	evbuffer_free(d);
	return flat;
}

Test(sim_zip, archives_parse_back_table)
{
	static const struct member a[] = { { "dm_character_001.fbx", "Kaydara FBX Binary  " } };
	static const struct member b[] = {
		{ "Andy_001.bvh", "HIERARCHY\nROOT Hips\n" }, { "Mia_002.bvh", "HIERARCHY\n" },
		{ "empty.txt", "" },
	};
	static const struct { const struct member *ms; int n; } cases[] = { { a, 1 }, { b, 3 }, { NULL, 0 } };

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t len, off = 0;
		unsigned char *zip = build(cases[c].ms, cases[c].n, &len);
		const unsigned char *end;

		/* local headers, in order */
		for (int i = 0; i < cases[c].n; i++) {
			const struct member *m = &cases[c].ms[i];
			size_t nl = strlen(m->name), dl = strlen(m->data);

			cr_assert(off + 30 <= len, "case %zu: truncated", c);
			cr_expect_eq(le32(zip + off), 0x04034b50u, "case %zu member %d signature", c, i);
			cr_expect_eq(le16(zip + off + 8), 0, "stored");
			cr_expect_eq(le16(zip + off + 12), 0x0021, "fixed date");
			cr_expect_eq(le32(zip + off + 14), bit_crc32((const unsigned char *)m->data, dl), "crc");
			cr_expect_eq(le32(zip + off + 18), dl);
			cr_expect_eq(le32(zip + off + 22), dl);
			cr_assert_eq(le16(zip + off + 26), nl);
			cr_expect(memcmp(zip + off + 30, m->name, nl) == 0);
			cr_expect(memcmp(zip + off + 30 + nl, m->data, dl) == 0);
			off += 30 + nl + le16(zip + off + 28) + dl;
		}
		/* end of central directory: the last 22 bytes (no comment) */
		cr_assert(len >= 22);
		end = zip + len - 22;
		cr_expect_eq(le32(end), 0x06054b50u, "case %zu: EOCD", c);
		cr_expect_eq(le16(end + 8), (uint32_t)cases[c].n);
		cr_expect_eq(le16(end + 10), (uint32_t)cases[c].n);
		cr_expect_eq(le32(end + 16), off, "central directory right after the members");
		cr_expect_eq(le32(end + 12), len - 22 - off, "central directory size");
		/* central directory entries point back at the local headers */
		size_t cd = off, loc = 0;
		for (int i = 0; i < cases[c].n; i++) {
			const struct member *m = &cases[c].ms[i];

			cr_expect_eq(le32(zip + cd), 0x02014b50u);
			cr_expect_eq(le32(zip + cd + 16), bit_crc32((const unsigned char *)m->data, strlen(m->data)));
			cr_expect_eq(le32(zip + cd + 42), loc, "case %zu member %d offset", c, i);
			cr_expect(memcmp(zip + cd + 46, m->name, strlen(m->name)) == 0);
			loc += 30 + strlen(m->name) + strlen(m->data);
			cd += 46 + le16(zip + cd + 28) + le16(zip + cd + 30) + le16(zip + cd + 32);
		}
		cr_expect_eq(cd, len - 22);
		/* the same members give the same bytes */
		size_t len2;
		unsigned char *again = build(cases[c].ms, cases[c].n, &len2);
		cr_expect(len2 == len && memcmp(again, zip, len) == 0, "case %zu not deterministic", c);
		free(again);
		free(zip);
	}
}

Test(sim_zip, limits_fail_the_archive)
{
	struct evbuffer *out = evbuffer_new(), *d = evbuffer_new();
	struct sim_zip z;
	char name[SIM_ZIP_NAME_MAX + 2];

	/* name -> accepted */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	sim_zip_begin(&z, out);
	cr_expect_eq(sim_zip_add(&z, name, d), -1, "a name over SIM_ZIP_NAME_MAX");
	cr_expect_eq(sim_zip_finish(&z), -1, "a failed add fails the archive");

	sim_zip_begin(&z, out);
	cr_expect_eq(sim_zip_add(&z, "", d), -1, "an empty name");

	sim_zip_begin(&z, out);
	for (int i = 0; i < SIM_ZIP_MAX_ENTRIES; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		cr_assert_eq(sim_zip_add(&z, name, d), 0);
	}
	cr_expect_eq(sim_zip_add(&z, "one-too-many", d), -1);
	cr_expect_eq(sim_zip_finish(&z), -1);
	evbuffer_free(out);
	evbuffer_free(d);
}

Test(sim_zip, appends_after_existing_bytes)
{
	/* offsets are relative to where the archive began, not to the start of out */
	struct evbuffer *out = evbuffer_new(), *d = evbuffer_new();
	struct sim_zip z;
	unsigned char flat[256];
	size_t len;

	evbuffer_add(out, "PREFIX", 6);
	sim_zip_begin(&z, out);
	evbuffer_add(d, "x", 1);
	cr_assert_eq(sim_zip_add(&z, "x", d), 0);
	cr_assert_eq(sim_zip_finish(&z), 0);
	len = evbuffer_get_length(out);
	cr_assert(len < sizeof(flat));
	evbuffer_remove(out, flat, len);
	cr_expect_eq(le32(flat + 6), 0x04034b50u);
	cr_expect_eq(le32(flat + len - 22 + 16), 30 + 1 + 1, "central directory offset from the archive start");
	evbuffer_free(out);
	evbuffer_free(d);
}
