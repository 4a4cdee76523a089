/*
 * gateway/base/procmetrics.c: parsing /proc/<pid>/stat and /proc/stat's btime, and the
 * process_* families read from this process.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>

#include "gateway/base/metrics.h"
#include "gateway/base/procmetrics.h"

/* Fields 1..24 of a stat line with name as the command; utime 250, stime 150, starttime 4200,
 * vsize 123456789, rss 1000 pages. */
#define STAT_TAIL " S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 4200 123456789 1000 18446744073709551615 1 2"

Test(procmetrics, parse_stat_table)
{
	static const struct {
		const char *text;
		int rc;
		double cpu, start;
		uint64_t vsize, rss;
	} cases[] = {
		{ "42 (animate3d-gatew)" STAT_TAIL "\n", 0, 4.0, 42.0, 123456789, 4096000 },
		/* a command name with spaces and parentheses: the last ')' ends it */
		{ "42 (a) b (c))" STAT_TAIL, 0, 4.0, 42.0, 123456789, 4096000 },
		/* negative priority and nice are skipped, not misread */
		{ "7 (x) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0 -2 -5 1 0 100 10 1", 0, 1.0, 1.0, 10, 4096 },
		{ "7 (x) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0 20 0 1 0 100 10", -1, 0, 0, 0, 0 },	/* no rss */
		{ "7 (x) R 1 2 3 4 5 6 7 8 9 10 x 0 0 0 20 0 1 0 100 10 1", -1, 0, 0, 0, 0 },
		{ "7 (x R 1 2 3", -1, 0, 0, 0, 0 },					/* no ')' */
		{ "7 (x)", -1, 0, 0, 0, 0 },
		{ "", -1, 0, 0, 0, 0 },
		{ NULL, -1, 0, 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_procmetrics_stat st = { -1, -1, 7, 7 };
		int rc = gw_procmetrics_parse_stat(cases[i].text, 100, 4096, &st);

		cr_expect_eq(rc, cases[i].rc, "case %zu: rc %d", i, rc);
		if (rc != 0) {
			cr_expect_eq(st.vsize_bytes, 7, "case %zu: out touched on failure", i);
			continue;
		}
		cr_expect_float_eq(st.cpu_seconds, cases[i].cpu, 1e-9, "case %zu: cpu %g", i, st.cpu_seconds);
		cr_expect_float_eq(st.start_since_boot_s, cases[i].start, 1e-9, "case %zu", i);
		cr_expect_eq(st.vsize_bytes, cases[i].vsize, "case %zu", i);
		cr_expect_eq(st.rss_bytes, cases[i].rss, "case %zu: rss %llu", i,
			     (unsigned long long)st.rss_bytes);
	}
	cr_expect_eq(gw_procmetrics_parse_stat("1 (x)" STAT_TAIL, 0, 4096, &(struct gw_procmetrics_stat){ 0 }), -1);
}

Test(procmetrics, parse_btime_table)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t btime;
	} cases[] = {
		{ "cpu  1 2 3\nintr 5 6 7\nctxt 9\nbtime 1764000000\nprocesses 3\n", 0, 1764000000 },
		{ "btime 12\n", 0, 12 },
		{ "btime 12", 0, 12 },
		{ "cpu 1\nxbtime 5\n", -1, 0 },
		{ "cpu 1\nbtime x\n", -1, 0 },
		{ "", -1, 0 },
		{ NULL, -1, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t b = 0;

		cr_expect_eq(gw_procmetrics_parse_btime(cases[i].text, &b), cases[i].rc, "case %zu", i);
		cr_expect_eq(b, cases[i].btime, "case %zu", i);
	}
}

/* The value of the unlabelled sample name in text, or -1. */
static double sample(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; (p = strstr(p, name)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void render_proc(void *arg, struct gw_metrics_out *o)
{
	gw_procmetrics_render(arg, o);
}

/* This process's own figures: present, unprefixed, typed, and plausible. */
Test(procmetrics, render_this_process)
{
	static const char *const families[][2] = {
		{ "process_cpu_seconds_total", "counter" }, { "process_resident_memory_bytes", "gauge" },
		{ "process_virtual_memory_bytes", "gauge" }, { "process_open_fds", "gauge" },
		{ "process_max_fds", "gauge" }, { "process_start_time_seconds", "gauge" },
	};
	struct gw_metrics_reg reg = { 0 };
	struct evbuffer *b = evbuffer_new();
	char *text, line[128];
	size_t n;
	double now = (double)time(NULL);

	cr_assert_not_null(b);
	cr_assert_eq(gw_metrics_register(&reg, render_proc, NULL), 0);
	cr_assert_eq(gw_metrics_render_all(&reg, b), 0);
	n = evbuffer_get_length(b);
	text = calloc(1, n + 1);
	cr_assert_not_null(text);
	evbuffer_remove(b, text, n);
	evbuffer_free(b);
	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
		snprintf(line, sizeof line, "\n# TYPE %s %s\n", families[i][0], families[i][1]);
		cr_expect_not_null(strstr(text, line), "missing %s\n%s", line, text);
		cr_expect(sample(text, families[i][0]) >= 0, "no sample of %s\n%s", families[i][0], text);
	}
	cr_expect_null(strstr(text, GW_METRICS_PREFIX), "%s", text);
	cr_expect_gt(sample(text, "process_resident_memory_bytes"), 1e5);
	cr_expect_geq(sample(text, "process_virtual_memory_bytes"),
		      sample(text, "process_resident_memory_bytes"));
	cr_expect_geq(sample(text, "process_open_fds"), 3);	/* stdin, stdout, stderr at least */
	cr_expect_geq(sample(text, "process_max_fds"), sample(text, "process_open_fds"));
	/* Started within the last hour and not in the future (clock ticks round down: 1 s slack). */
	cr_expect_gt(sample(text, "process_start_time_seconds"), now - 3600, "%s", text);
	cr_expect_leq(sample(text, "process_start_time_seconds"), now + 1, "%s", text);
	free(text);
}
