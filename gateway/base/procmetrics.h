/*
 * procmetrics: the process_* families of the Prometheus client conventions, with their standard
 * names and no GW_METRICS_PREFIX, so dashboards made for any exporter work unchanged:
 *
 *   process_cpu_seconds_total        user + system CPU time (/proc/self/stat utime + stime)
 *   process_resident_memory_bytes    resident set size (/proc/self/stat rss x page size)
 *   process_virtual_memory_bytes     virtual memory size (/proc/self/stat vsize)
 *   process_open_fds                 entries of /proc/self/fd
 *   process_max_fds                  the soft RLIMIT_NOFILE
 *   process_start_time_seconds       since 1970 (/proc/stat btime + /proc/self/stat starttime)
 *
 * Read at scrape time on the loop: two small reads and one directory listing, O(open fds). A value that cannot be read leaves its sample out (its family stays).
 * Linux only (/proc).
 */
#ifndef A3D_GATEWAY_PROCMETRICS_H
#define A3D_GATEWAY_PROCMETRICS_H

#include <stddef.h>
#include <stdint.h>

#define GW_PROCMETRICS_STAT_MAX 2048	/* bytes of /proc/self/stat read (about 350 used) */

/* What /proc/self/stat says, in units. */
struct gw_procmetrics_stat {
	double cpu_seconds;		/* utime + stime */
	double start_since_boot_s;	/* starttime */
	uint64_t vsize_bytes;
	uint64_t rss_bytes;
};

/*
 * Parses the text of /proc/<pid>/stat (proc(5)): the fields after the command name's last ')'
 * (the name may hold spaces and parentheses). ticks_per_s: sysconf(_SC_CLK_TCK); page: the page
 * size. 0, or -1 when a field is missing or not a number (out untouched). Pure.
 */
int gw_procmetrics_parse_stat(const char *text, long ticks_per_s, long page,
			      struct gw_procmetrics_stat *out);
/* The "btime <seconds>" line of /proc/stat's text: 0 with *btime set, or -1. Pure. */
int gw_procmetrics_parse_btime(const char *text, uint64_t *btime);

/* A metrics renderer (arg unused) printing the families above. */
struct gw_metrics_out;
void gw_procmetrics_render(void *arg, struct gw_metrics_out *o);

#endif
