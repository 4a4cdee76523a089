/*
 * progress: bars on a terminal, plain lines elsewhere (see progress.h).
 */
#include "cli/progress.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static int64_t progress_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void a3d_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return;
	}
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

void a3d_fmt_eta(char *buf, size_t len, int64_t s)
{
	if (s < 0)
		snprintf(buf, len, "--:--");
	else if (s >= 3600)
		snprintf(buf, len, "%" PRId64 ":%02d:%02d", s / 3600, (int)(s / 60 % 60), (int)(s % 60));
	else
		snprintf(buf, len, "%d:%02d", (int)(s / 60), (int)(s % 60));
}

size_t a3d_progress_format(char *buf, size_t len, const char *label, uint64_t done, uint64_t total,
			   int64_t elapsed_ms, int bar)
{
	char d[32], t[32], rate[32], eta[16], cells[A3D_PROGRESS_BAR_WIDTH + 1];
	double bps = elapsed_ms > 0 ? (double)done * 1000.0 / (double)elapsed_ms : 0.0;
	int pct = -1, n;

	if (len == 0)
		return 0;
	if (total > 0)
		pct = done >= total ? 100 : (int)((double)done * 100.0 / (double)total);
	a3d_fmt_bytes(d, sizeof d, done);
	a3d_fmt_bytes(t, sizeof t, total);
	if (bps > 0) {
		a3d_fmt_bytes(rate, sizeof rate, (uint64_t)bps);
		strncat(rate, "/s", sizeof rate - strlen(rate) - 1);
	} else {
		snprintf(rate, sizeof rate, "- B/s");
	}
	if (total > 0 && bps > 0 && done <= total)
		a3d_fmt_eta(eta, sizeof eta, (int64_t)((double)(total - done) / bps + 0.5));
	else
		a3d_fmt_eta(eta, sizeof eta, -1);
	if (bar) {
		int fill = pct < 0 ? 0 : pct * A3D_PROGRESS_BAR_WIDTH / 100, i;

		for (i = 0; i < A3D_PROGRESS_BAR_WIDTH; i++)
			cells[i] = i < fill ? '#' : '.';
		cells[A3D_PROGRESS_BAR_WIDTH] = '\0';
		if (pct >= 0)
			n = snprintf(buf, len, "%s [%s] %3d%%  %s / %s  %s  ETA %s", label, cells, pct, d,
				     t, rate, eta);
		else
			n = snprintf(buf, len, "%s [%s]  %s  %s", label, cells, d, rate);
	} else if (pct >= 0) {
		n = snprintf(buf, len, "%s: %d%% %s / %s, %s, ETA %s", label, pct, d, t, rate, eta);
	} else {
		n = snprintf(buf, len, "%s: %s, %s", label, d, rate);
	}
	if (n < 0)
		n = 0;
	return (size_t)n >= len ? len - 1 : (size_t)n;
}

void a3d_progress_begin(struct a3d_progress *p, FILE *out, int tty, const char *label, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->out = out;
	p->tty = tty;
	p->total = total;
	snprintf(p->label, sizeof p->label, "%s", label);
	p->start_ms = progress_now_ms();
	p->last_ms = p->start_ms;
}

void a3d_progress_total(struct a3d_progress *p, uint64_t total)
{
	p->total = total;
}

static void progress_draw(struct a3d_progress *p, int64_t now)
{
	char line[A3D_PROGRESS_LINE_MAX];

	a3d_progress_format(line, sizeof line, p->label, p->done, p->total, now - p->start_ms, 1);
	/* \r and erase-to-end: the bar may get shorter (the ETA loses a digit). */
	fprintf(p->out, "\r%s\033[K", line);
	fflush(p->out);
	p->drawn = 1;
	p->last_ms = now;
}

void a3d_progress_update(struct a3d_progress *p, uint64_t done)
{
	int64_t now = progress_now_ms();
	char line[A3D_PROGRESS_LINE_MAX];
	int q;

	p->done = done;
	if (p->tty) {
		if (!p->drawn || now - p->last_ms >= A3D_PROGRESS_REDRAW_MS)
			progress_draw(p, now);
		return;
	}
	/* Quarters 1..3 and the time rule; the end has its own line. */
	q = p->total > 0 && done < p->total ? (int)((double)done * 4.0 / (double)p->total) : 0;
	if (q > p->quarter || now - p->last_ms >= A3D_PROGRESS_LINE_MS) {
		if (q > p->quarter)
			p->quarter = q;
		a3d_progress_format(line, sizeof line, p->label, done, p->total, now - p->start_ms, 0);
		fprintf(p->out, "%s\n", line);
		fflush(p->out);
		p->last_ms = now;
	}
}

void a3d_progress_end(struct a3d_progress *p, int ok)
{
	int64_t now = progress_now_ms(), ms = now - p->start_ms;
	char d[32], rate[32];

	if (p->tty) {
		if (ok || p->drawn)
			progress_draw(p, now);
		fprintf(p->out, ok ? "\n" : "  failed\n");
		fflush(p->out);
		return;
	}
	a3d_fmt_bytes(d, sizeof d, p->done);
	if (!ok) {
		fprintf(p->out, "%s: failed after %s\n", p->label, d);
	} else if (ms <= 0) {
		fprintf(p->out, "%s: 100%% %s in 0.0 s\n", p->label, d);
	} else {
		a3d_fmt_bytes(rate, sizeof rate, (uint64_t)((double)p->done * 1000.0 / (double)ms));
		fprintf(p->out, "%s: 100%% %s in %.1f s, %s/s\n", p->label, d, (double)ms / 1000.0, rate);
	}
	fflush(p->out);
}
