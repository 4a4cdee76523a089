/*
 * procmetrics: process_* metrics from /proc at scrape time. See procmetrics.h.
 */
#include "gateway/base/procmetrics.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/base/fdlimit.h"
#include "gateway/base/metrics.h"

/* Fields of /proc/<pid>/stat (proc(5), numbered from 1). */
#define STAT_UTIME 14
#define STAT_STIME 15
#define STAT_STARTTIME 22
#define STAT_VSIZE 23
#define STAT_RSS 24

/* The unsigned decimal at *p, advancing p past it: 0, or -1 when there is none. */
static int proc_number(const char **p, unsigned long long *v)
{
	char *end;

	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	*v = strtoull(*p, &end, 10);
	if (errno)
		return -1;
	*p = end;
	return 0;
}

int gw_procmetrics_parse_stat(const char *text, long ticks_per_s, long page,
			      struct gw_procmetrics_stat *out)
{
	unsigned long long f[STAT_RSS + 1] = { 0 };
	const char *p = text ? strrchr(text, ')') : NULL;

	if (!p || ticks_per_s <= 0 || page <= 0)
		return -1;
	p++;
	/* Field 3 (the state letter) on, one space between fields. */
	for (int k = 3; k <= STAT_RSS; k++) {
		if (*p != ' ')
			return -1;
		p++;
		if (k == 3) {
			if (!*p || *p == ' ')
				return -1;
			p++;
			continue;
		}
		if (*p == '-')	/* signed fields (priority, nice) may be negative; not ours */
			p++;
		if (proc_number(&p, &f[k]) != 0)
			return -1;
	}
	out->cpu_seconds = (double)(f[STAT_UTIME] + f[STAT_STIME]) / (double)ticks_per_s;
	out->start_since_boot_s = (double)f[STAT_STARTTIME] / (double)ticks_per_s;
	out->vsize_bytes = f[STAT_VSIZE];
	out->rss_bytes = f[STAT_RSS] * (unsigned long long)page;
	return 0;
}

int gw_procmetrics_parse_btime(const char *text, uint64_t *btime)
{
	const char *p = text;
	unsigned long long v;

	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "btime ", 6) != 0)
			continue;
		p += 6;
		if (proc_number(&p, &v) != 0)
			return -1;
		*btime = v;
		return 0;
	}
	return -1;
}

/* Reads up to len - 1 bytes of path into buf, NUL-terminated: 0, or -1. */
static int proc_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* The boot time from /proc/stat, read a line at a time (its interrupt line can be long). Read at
 * every scrape rather than kept: a few lines, and no state to own. */
static int proc_btime(uint64_t *btime)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = -1;
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return -1;
	while (rc != 0 && getline(&line, &cap, f) > 0)
		rc = gw_procmetrics_parse_btime(line, btime);
	free(line);
	fclose(f);
	return rc;
}

void gw_procmetrics_render(void *arg, struct gw_metrics_out *o)
{
	char buf[GW_PROCMETRICS_STAT_MAX];
	struct gw_procmetrics_stat st;
	int have = proc_read("/proc/self/stat", buf, sizeof buf) == 0 &&
		   gw_procmetrics_parse_stat(buf, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE),
					     &st) == 0;
	long fds = gw_fdlimit_open();
	uint64_t max = gw_fdlimit_current();
	uint64_t btime;

	(void)arg;
	gw_metrics_family_ext(o, "process_cpu_seconds_total", "counter",
			      "Total user and system CPU time spent in seconds.");
	if (have)
		gw_metrics_gauge_ext(o, "process_cpu_seconds_total", st.cpu_seconds);
	gw_metrics_family_ext(o, "process_resident_memory_bytes", "gauge",
			      "Resident memory size in bytes.");
	if (have)
		gw_metrics_gauge_ext(o, "process_resident_memory_bytes", (double)st.rss_bytes);
	gw_metrics_family_ext(o, "process_virtual_memory_bytes", "gauge",
			      "Virtual memory size in bytes.");
	if (have)
		gw_metrics_gauge_ext(o, "process_virtual_memory_bytes", (double)st.vsize_bytes);
	gw_metrics_family_ext(o, "process_open_fds", "gauge", "Number of open file descriptors.");
	if (fds >= 0)
		gw_metrics_gauge_ext(o, "process_open_fds", (double)fds);
	gw_metrics_family_ext(o, "process_max_fds", "gauge",
			      "Maximum number of open file descriptors.");
	if (max)
		gw_metrics_gauge_ext(o, "process_max_fds", (double)max);
	gw_metrics_family_ext(o, "process_start_time_seconds", "gauge",
			      "Start time of the process since unix epoch in seconds.");
	if (have && proc_btime(&btime) == 0)
		gw_metrics_gauge_ext(o, "process_start_time_seconds",
				     (double)btime + st.start_since_boot_s);
}
