/* Unit tests for gateway/base/fdlimit.c: the HTTP connection cap derived from the open-file limit
 * (a table of limit, reserve, configured -> cap or the error), and the limit raised to the hard one. */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/resource.h>

#include "gateway/base/fdlimit.h"

Test(fdlimit, http_cap_from_the_limit)
{
	static const struct {
		uint64_t nofile;
		unsigned reserve, configured;
		size_t cap;		/* 0: refused with err containing want */
		const char *want;
	} cases[] = {
		{ 1048576, 256, 0, GW_FDLIMIT_AUTO_HTTP_MAX, NULL },	/* auto, capped at 1024 */
		{ 1024, 256, 0, 384, NULL },				/* auto: half the room */
		{ 512, 256, 0, 128, NULL },
		{ 256, 64, 0, 96, NULL },
		{ 1024, 256, 768, 768, NULL },				/* all the room, if asked */
		{ 1024, 256, 10, 10, NULL },
		{ 1024, 256, 769, 0, "http.max_connections (769) + process.open_files_reserve (256) exceed "
				     "the open-file limit (1024)" },
		{ 256, 256, 0, 0, "the open-file limit (256) leaves fewer than 32 descriptors beyond "
				  "process.open_files_reserve (256)" },
		{ 287, 256, 0, 0, "leaves fewer than 32" },
		{ 288, 256, 0, 16, NULL },
		{ 100, 256, 0, 0, "the open-file limit (100)" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[256] = "";
		size_t cap = gw_fdlimit_http_cap(cases[i].nofile, cases[i].reserve, cases[i].configured, err,
						 sizeof err);

		cr_expect_eq(cap, cases[i].cap, "case %zu: cap %zu", i, cap);
		if (cases[i].want)
			cr_expect(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
	}
}

Test(fdlimit, raise_reaches_the_hard_limit)
{
	struct rlimit rl;
	struct gw_fdlimit fl;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > 64) {
		rl.rlim_cur = 64;	/* lower the soft one first, so there is something to raise */
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	cr_assert_eq(gw_fdlimit_raise(&fl), 0);
	if (rl.rlim_max != RLIM_INFINITY) {
		cr_expect_eq(fl.soft, (uint64_t)rl.rlim_max);
		cr_expect_eq(fl.hard, (uint64_t)rl.rlim_max);
		if (rl.rlim_max > 64)
			cr_expect_eq(fl.soft_before, 64);
	}
	cr_expect_eq(gw_fdlimit_current(), fl.soft);
	cr_expect_gt(gw_fdlimit_open(), 2);	/* stdin, stdout, stderr at least */
}
