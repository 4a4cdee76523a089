/* cli/progress.c: byte and time formats and the progress line, bar and plain, as tables. */
#include <criterion/criterion.h>

#include "cli/progress.h"

Test(cli_progress, bytes)
{
	static const struct {
		uint64_t n;
		const char *want;
	} rows[] = {
		{ 0, "0 B" },			{ 17, "17 B" },
		{ 1023, "1023 B" },		{ 1024, "1.0 KiB" },
		{ 2091, "2.0 KiB" },		{ 1536, "1.5 KiB" },
		{ 3u << 20, "3.0 MiB" },	{ (5ull << 30) / 2, "2.5 GiB" },
		{ 3ull << 40, "3.0 TiB" },	{ 2048ull << 40, "2048.0 TiB" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		a3d_fmt_bytes(buf, sizeof buf, rows[i].n);
		cr_expect_str_eq(buf, rows[i].want, "%llu", (unsigned long long)rows[i].n);
	}
}

Test(cli_progress, eta)
{
	static const struct {
		int64_t s;
		const char *want;
	} rows[] = {
		{ -1, "--:--" }, { 0, "0:00" },	     { 5, "0:05" },	  { 59, "0:59" },
		{ 60, "1:00" },	 { 754, "12:34" },   { 3599, "59:59" },	  { 3600, "1:00:00" },
		{ 3723, "1:02:03" }, { 360000, "100:00:00" },
	};
	char buf[16];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		a3d_fmt_eta(buf, sizeof buf, rows[i].s);
		cr_expect_str_eq(buf, rows[i].want, "%lld", (long long)rows[i].s);
	}
}

Test(cli_progress, lines)
{
	static const struct {
		uint64_t done, total;
		int64_t ms;
		int bar;
		const char *want;
	} rows[] = {
		/* half of 4 MiB in 1 s: 2 MiB/s, 1 s to go */
		{ 2u << 20, 4u << 20, 1000, 1,
		  "f.mp4 [############............]  50%  2.0 MiB / 4.0 MiB  2.0 MiB/s  ETA 0:01" },
		{ 2u << 20, 4u << 20, 1000, 0, "f.mp4: 50% 2.0 MiB / 4.0 MiB, 2.0 MiB/s, ETA 0:01" },
		/* nothing yet: no rate, no ETA */
		{ 0, 1000, 0, 1, "f.mp4 [........................]   0%  0 B / 1000 B  - B/s  ETA --:--" },
		{ 1000, 1000, 500, 1, "f.mp4 [########################] 100%  1000 B / 1000 B  2.0 KiB/s  ETA 0:00" },
		/* unknown total (a download before its Content-Length): bytes and rate only */
		{ 3u << 20, 0, 3000, 1, "f.mp4 [........................]  3.0 MiB  1.0 MiB/s" },
		{ 3u << 20, 0, 3000, 0, "f.mp4: 3.0 MiB, 1.0 MiB/s" },
		/* more than announced: 100 %, no ETA */
		{ 2000, 1000, 1000, 0, "f.mp4: 100% 2.0 KiB / 1000 B, 2.0 KiB/s, ETA --:--" },
	};
	char buf[A3D_PROGRESS_LINE_MAX];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		size_t n = a3d_progress_format(buf, sizeof buf, "f.mp4", rows[i].done, rows[i].total,
					       rows[i].ms, rows[i].bar);

		cr_expect_str_eq(buf, rows[i].want, "row %zu: %s", i, buf);
		cr_expect_eq(n, strlen(rows[i].want), "row %zu", i);
	}
}

Test(cli_progress, line_is_cut_to_the_buffer)
{
	char buf[12];
	size_t n = a3d_progress_format(buf, sizeof buf, "a-long-name.mp4", 1, 2, 1, 1);

	cr_expect_eq(n, sizeof buf - 1);
	cr_expect_str_eq(buf, "a-long-name");
}
