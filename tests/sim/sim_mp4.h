/*
 * sim_mp4: just enough ISO-BMFF parsing for /videoInfo: width, height, fps, duration, codec and
 * size of the first video track (ftyp/moov/mvhd/trak/tkhd/mdia/mdhd/hdlr/minf/stbl/stsd/stts).
 *
 * Top-level boxes are walked with reads at offsets; only moov is read into memory, bounded by
 * SIM_MP4_MOOV_MAX. Returns 0 on success, -1 for anything that is not an MP4 with a video track
 * (garbage, truncated boxes, moov too large).
 */
#ifndef A3D_SIM_MP4_H
#define A3D_SIM_MP4_H

#include <stddef.h>
#include <stdint.h>

#define SIM_MP4_MOOV_MAX (8 << 20)
#define SIM_MP4_MAX_DEPTH 8
#define SIM_MP4_MAX_TOP_BOXES 1024

struct sim_mp4_info {
	int width, height;
	double fps;		/* samples per second of the video track */
	double duration;	/* seconds */
	char codec[16];		/* "h264", "hevc" or the sample entry fourcc */
	int64_t size;		/* file bytes */
};

int sim_mp4_parse_fd(int fd, struct sim_mp4_info *out);
int sim_mp4_parse_buf(const uint8_t *buf, size_t len, struct sim_mp4_info *out);

#endif
