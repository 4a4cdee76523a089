/*
 * fdlimit: the process's file-descriptor budget (RLIMIT_NOFILE).
 *
 * gRPC core 1.51 stops accepting for good once an accept fails with EMFILE (grpc/grpc#20418), so
 * the gateway must never run out: main() raises the soft limit to the hard one, and the HTTP
 * listener's connection cap is derived from the limit minus process.open_files_reserve (fds kept
 * for upstream connections, the state store, logs and the gRPC self-probe). gRPC connections have
 * no cap in gRPC core 1.51; they live in what is left, and the self-probe (listenprobe.h) turns a
 * listener killed anyway into a failed liveness check.
 */
#ifndef A3D_GATEWAY_FDLIMIT_H
#define A3D_GATEWAY_FDLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define GW_FDLIMIT_AUTO_HTTP_MAX 1024	/* http.max_connections: 0 means at most this many */
#define GW_FDLIMIT_MIN_ROOM 32		/* fds beyond the reserve, or the gateway refuses to start */
#define GW_FDLIMIT_NR_OPEN_FALLBACK (1u << 20)	/* soft limit when the hard one is unlimited */

struct gw_fdlimit {
	uint64_t soft_before;	/* the soft limit found at start */
	uint64_t soft;		/* the soft limit now */
	uint64_t hard;
};

/* Raises the soft RLIMIT_NOFILE to the hard one (to /proc/sys/fs/nr_open, or
 * GW_FDLIMIT_NR_OPEN_FALLBACK, when the hard one is unlimited). 0, or -1 with errno (out is then
 * the limits as they are). */
int gw_fdlimit_raise(struct gw_fdlimit *out);
/* The soft RLIMIT_NOFILE now (0 if unknown). */
uint64_t gw_fdlimit_current(void);

/*
 * The HTTP connection cap for nofile fds with reserve kept back: configured, or when 0,
 * min(GW_FDLIMIT_AUTO_HTTP_MAX, (nofile - reserve) / 2) (half the room: the other half is for gRPC
 * connections). 0 with one line in err when it cannot fit (fewer than GW_FDLIMIT_MIN_ROOM fds
 * beyond the reserve, or configured beyond them). Pure.
 */
size_t gw_fdlimit_http_cap(uint64_t nofile, unsigned reserve, unsigned configured, char *err,
			   size_t errlen);

/* Open descriptors of this process now (entries of /proc/self/fd), -1 if unknown. O(open fds):
 * for /metrics, not for every event. */
long gw_fdlimit_open(void);

/* animate3d_gateway_open_fds and _max_fds gauges (counts /proc/self/fd: at scrape time
 * only); a metrics renderer (arg unused). */
struct gw_metrics_out;
void gw_fdlimit_render_metrics(void *arg, struct gw_metrics_out *o);

#endif
