/*
 * progress: transfer progress on stderr. On a terminal, one bar redrawn in place (bytes, percent,
 * rate, ETA) at most every A3D_PROGRESS_REDRAW_MS; otherwise plain lines a log can keep: one at
 * each quarter of the transfer and at least every A3D_PROGRESS_LINE_MS, then one when it ends.
 * The formatting functions are pure (tests/unit/test_progress.c).
 */
#ifndef A3D_CLI_PROGRESS_H
#define A3D_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define A3D_PROGRESS_REDRAW_MS 100	/* terminal redraws at most this often */
#define A3D_PROGRESS_LINE_MS 5000	/* a plain line at least this often */
#define A3D_PROGRESS_BAR_WIDTH 24	/* cells of the bar */
#define A3D_PROGRESS_LABEL_MAX 48	/* label bytes kept (longer names are cut) */
#define A3D_PROGRESS_LINE_MAX 192	/* one formatted line */

struct a3d_progress {
	FILE *out;
	char label[A3D_PROGRESS_LABEL_MAX + 1];
	uint64_t total;			/* 0: unknown (no percent, no ETA) */
	uint64_t done;
	int tty;
	int64_t start_ms, last_ms;
	int quarter;			/* plain mode: the last quarter printed */
	int drawn;			/* tty mode: a bar is on the line */
};

void a3d_progress_begin(struct a3d_progress *p, FILE *out, int tty, const char *label, uint64_t total);
/* Learns a total found late (a download's Content-Length). */
void a3d_progress_total(struct a3d_progress *p, uint64_t total);
void a3d_progress_update(struct a3d_progress *p, uint64_t done);
/* Final bar or line; ok = 0 says "failed" instead of the summary. */
void a3d_progress_end(struct a3d_progress *p, int ok);

/* "2.0 KiB", "1.5 MiB", "17 B": binary units, one decimal from KiB up. */
void a3d_fmt_bytes(char *buf, size_t len, uint64_t bytes);
/* "0:05", "12:34", "1:02:03"; "--:--" for a negative (unknown) time. */
void a3d_fmt_eta(char *buf, size_t len, int64_t seconds);
/* One progress line: bar = 1 for the terminal form "label [####....]  42%  ...", 0 for the plain
 * "label: 42% ...". Returns the length written (cut to len - 1). */
size_t a3d_progress_format(char *buf, size_t len, const char *label, uint64_t done, uint64_t total,
			   int64_t elapsed_ms, int bar);

#endif
