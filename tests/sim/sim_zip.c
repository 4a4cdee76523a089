/* sim_zip: stored zip archives, byte for byte reproducible. */
#include "sim_zip.h"

#include <string.h>

#include <event2/buffer.h>

#include "sim_crc.h"

#define SIM_ZIP_LOCAL_SIG 0x04034b50u
#define SIM_ZIP_CENTRAL_SIG 0x02014b50u
#define SIM_ZIP_END_SIG 0x06054b50u
#define SIM_ZIP_VERSION 10		/* 1.0: stored members need nothing newer */
#define SIM_ZIP_DOS_DATE 0x0021		/* 1980-01-01: the earliest DOS date, fixed for determinism */
#define SIM_ZIP_DOS_TIME 0

static void sim_zip_u16(struct evbuffer *out, unsigned v)
{
	unsigned char b[2] = { (unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff) };

	evbuffer_add(out, b, sizeof(b));
}

static void sim_zip_u32(struct evbuffer *out, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff),
			       (unsigned char)((v >> 16) & 0xff), (unsigned char)(v >> 24) };

	evbuffer_add(out, b, sizeof(b));
}

void sim_zip_begin(struct sim_zip *z, struct evbuffer *out)
{
	memset(z, 0, sizeof(*z));
	z->out = out;
	z->start = evbuffer_get_length(out);
}

static size_t sim_zip_written(const struct sim_zip *z)
{
	return evbuffer_get_length(z->out) - z->start;
}

int sim_zip_add(struct sim_zip *z, const char *name, struct evbuffer *data)
{
	struct sim_zip_entry *e;
	size_t nl = strlen(name), len = evbuffer_get_length(data);

	if (z->failed || z->n == SIM_ZIP_MAX_ENTRIES || nl == 0 || nl > SIM_ZIP_NAME_MAX ||
	    len > SIM_ZIP_MAX_BYTES || sim_zip_written(z) + 30 + nl + len > SIM_ZIP_MAX_BYTES) {
		z->failed = 1;
		return -1;
	}
	e = &z->entries[z->n++];
	memcpy(e->name, name, nl + 1);
	e->crc = sim_crc32_evbuffer(SIM_CRC32_INIT, data);
	e->size = (uint32_t)len;
	e->offset = (uint32_t)sim_zip_written(z);
	sim_zip_u32(z->out, SIM_ZIP_LOCAL_SIG);
	sim_zip_u16(z->out, SIM_ZIP_VERSION);
	sim_zip_u16(z->out, 0);			/* flags */
	sim_zip_u16(z->out, 0);			/* method: stored */
	sim_zip_u16(z->out, SIM_ZIP_DOS_TIME);
	sim_zip_u16(z->out, SIM_ZIP_DOS_DATE);
	sim_zip_u32(z->out, e->crc);
	sim_zip_u32(z->out, e->size);		/* compressed size */
	sim_zip_u32(z->out, e->size);		/* uncompressed size */
	sim_zip_u16(z->out, (unsigned)nl);
	sim_zip_u16(z->out, 0);			/* extra field length */
	evbuffer_add(z->out, name, nl);
	if (evbuffer_add_buffer(z->out, data) != 0) {
		z->failed = 1;
		return -1;
	}
	return 0;
}

int sim_zip_finish(struct sim_zip *z)
{
	uint32_t cd_start = (uint32_t)sim_zip_written(z), cd_size;

	if (z->failed)
		return -1;
	for (int i = 0; i < z->n; i++) {
		const struct sim_zip_entry *e = &z->entries[i];

		sim_zip_u32(z->out, SIM_ZIP_CENTRAL_SIG);
		sim_zip_u16(z->out, SIM_ZIP_VERSION);	/* made by: MS-DOS, 1.0 */
		sim_zip_u16(z->out, SIM_ZIP_VERSION);	/* needed to extract */
		sim_zip_u16(z->out, 0);
		sim_zip_u16(z->out, 0);
		sim_zip_u16(z->out, SIM_ZIP_DOS_TIME);
		sim_zip_u16(z->out, SIM_ZIP_DOS_DATE);
		sim_zip_u32(z->out, e->crc);
		sim_zip_u32(z->out, e->size);
		sim_zip_u32(z->out, e->size);
		sim_zip_u16(z->out, (unsigned)strlen(e->name));
		sim_zip_u16(z->out, 0);			/* extra field length */
		sim_zip_u16(z->out, 0);			/* comment length */
		sim_zip_u16(z->out, 0);			/* disk number */
		sim_zip_u16(z->out, 0);			/* internal attributes */
		sim_zip_u32(z->out, 0);			/* external attributes */
		sim_zip_u32(z->out, e->offset);
		evbuffer_add(z->out, e->name, strlen(e->name));
	}
	cd_size = (uint32_t)sim_zip_written(z) - cd_start;
	sim_zip_u32(z->out, SIM_ZIP_END_SIG);
	sim_zip_u16(z->out, 0);				/* this disk */
	sim_zip_u16(z->out, 0);				/* disk of the central directory */
	sim_zip_u16(z->out, (unsigned)z->n);
	sim_zip_u16(z->out, (unsigned)z->n);
	sim_zip_u32(z->out, cd_size);
	sim_zip_u32(z->out, cd_start);
	sim_zip_u16(z->out, 0);				/* comment length */
	return 0;
}
