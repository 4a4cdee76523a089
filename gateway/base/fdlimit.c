/*
 * fdlimit: RLIMIT_NOFILE raised, and the caps derived from it. See fdlimit.h.
 */
#include "gateway/base/fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <event2/buffer.h>

#include "gateway/base/metrics.h"

static uint64_t fdlimit_nr_open(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	char line[32];
	char *end;
	unsigned long long v = 0;

	if (f) {
		if (fgets(line, sizeof line, f)) {
			errno = 0;
			v = strtoull(line, &end, 10);
			if (errno || end == line)
				v = 0;
		}
		fclose(f);
	}
	return v ? (uint64_t)v : GW_FDLIMIT_NR_OPEN_FALLBACK;
}

int gw_fdlimit_raise(struct gw_fdlimit *out)
{
	struct rlimit rl;
	rlim_t want;

	out->soft_before = out->soft = out->hard = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	out->soft_before = out->soft = (uint64_t)rl.rlim_cur;
	out->hard = (uint64_t)rl.rlim_max;
	/* RLIM_INFINITY is not a valid soft limit for descriptors: the kernel's nr_open is the most. */
	want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)fdlimit_nr_open() : rl.rlim_max;
	if (rl.rlim_cur == want)
		return 0;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	out->soft = (uint64_t)want;
	return 0;
}

uint64_t gw_fdlimit_current(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return rl.rlim_cur == RLIM_INFINITY ? fdlimit_nr_open() : (uint64_t)rl.rlim_cur;
}

size_t gw_fdlimit_http_cap(uint64_t nofile, unsigned reserve, unsigned configured, char *err,
			   size_t errlen)
{
	uint64_t room = nofile > reserve ? nofile - reserve : 0;
	uint64_t cap;

	if (room < GW_FDLIMIT_MIN_ROOM) {
		snprintf(err, errlen, "the open-file limit (%llu) leaves fewer than %d descriptors beyond "
			 "process.open_files_reserve (%u): raise the limit or lower the reserve",
			 (unsigned long long)nofile, GW_FDLIMIT_MIN_ROOM, reserve);
		return 0;
	}
	if (configured > room) {
		snprintf(err, errlen, "http.max_connections (%u) + process.open_files_reserve (%u) exceed the "
			 "open-file limit (%llu)", configured, reserve, (unsigned long long)nofile);
		return 0;
	}
	cap = configured ? configured : room / 2;
	if (!configured && cap > GW_FDLIMIT_AUTO_HTTP_MAX)
		cap = GW_FDLIMIT_AUTO_HTTP_MAX;
	return (size_t)cap;
}

long gw_fdlimit_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

void gw_fdlimit_render_metrics(void *arg, struct gw_metrics_out *o)
{
	long open_fds = gw_fdlimit_open();

	(void)arg;
	gw_metrics_one(o, "open_fds", "gauge", "Open file descriptors of the process.",
		       open_fds > 0 ? (uint64_t)open_fds : 0);
	gw_metrics_one(o, "max_fds", "gauge",
		       "The process's open-file limit (RLIMIT_NOFILE, raised to the hard limit at start).",
		       (uint64_t)gw_fdlimit_current());
}
