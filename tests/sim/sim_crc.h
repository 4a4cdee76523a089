/*
 * sim_crc: the two checksums the simulator's file formats need: CRC-32 (ISO 3309 / ITU-T V.42,
 * the polynomial zip archives and PNG chunks use) and Adler-32 (RFC 1950, the zlib stream
 * trailer inside a PNG). Both are incremental: start from SIM_CRC32_INIT / SIM_CRC_ADLER_INIT
 * and feed the previous result back in.
 */
#ifndef A3D_SIM_CRC_H
#define A3D_SIM_CRC_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define SIM_CRC32_INIT 0u
#define SIM_CRC_ADLER_INIT 1u

uint32_t sim_crc32(uint32_t crc, const void *buf, size_t len);
/* CRC-32 of every byte in b (left in place). */
uint32_t sim_crc32_evbuffer(uint32_t crc, struct evbuffer *b);
uint32_t sim_crc_adler32(uint32_t adler, const void *buf, size_t len);

#endif
