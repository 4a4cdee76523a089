/*
 * sim_zip: a minimal zip archive writer (APPNOTE.TXT 6.3: local file headers, central directory,
 * end of central directory record) for the outputs clients save as .zip: FBX downloads and the
 * multi-person all_characters archives. Members are stored (method 0, no compression) with
 * their CRC-32 and a fixed 1980-01-01 00:00 timestamp, so the same members give the same bytes.
 *
 * Usage: sim_zip_begin(&z, out); sim_zip_add(&z, name, data)...; sim_zip_finish(&z). The writer
 * appends to out and never owns it; sim_zip_add drains data into out. At most SIM_ZIP_MAX_ENTRIES
 * members, names of at most SIM_ZIP_NAME_MAX bytes, SIM_ZIP_MAX_BYTES in all (no zip64).
 */
#ifndef A3D_SIM_ZIP_H
#define A3D_SIM_ZIP_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define SIM_ZIP_MAX_ENTRIES 64
#define SIM_ZIP_NAME_MAX 128
#define SIM_ZIP_MAX_BYTES (1u << 30)	/* far below the 4 GiB of 32-bit zip offsets */

struct sim_zip_entry {
	char name[SIM_ZIP_NAME_MAX + 1];
	uint32_t crc, size, offset;
};

struct sim_zip {
	struct evbuffer *out;		/* borrowed */
	size_t start;			/* length of out when the archive began */
	int n;
	int failed;			/* a limit was passed or a write failed: finish reports -1 */
	struct sim_zip_entry entries[SIM_ZIP_MAX_ENTRIES];
};

void sim_zip_begin(struct sim_zip *z, struct evbuffer *out);
/* Appends member name with the bytes of data (drained). 0, or -1 (and the archive is failed)
 * when a limit is passed. */
int sim_zip_add(struct sim_zip *z, const char *name, struct evbuffer *data);
/* Writes the central directory. 0, or -1 when any add failed. */
int sim_zip_finish(struct sim_zip *z);

#endif
