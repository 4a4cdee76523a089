/* Unit tests for auth/upstream/cookie.c: Set-Cookie values and HTTP dates in, values and times out. */
#include <criterion/criterion.h>

#include <string.h>

#include "auth/upstream/cookie.h"

#define RFC_DATE 784111777	/* Sun, 06 Nov 1994 08:49:37 GMT (date -u -d ... +%s) */
#define NOW 1000000000

struct cookie_case {
	const char *header;
	size_t outlen;
	int rc;
	const char *value;
	time_t expires;
};

Test(cookie, parse_table)
{
	static char huge[GW_COOKIE_MAX_HEADER + 32];
	const struct cookie_case cases[] = {
		{ "dmsess=abc123; Path=/; Expires=Sun, 06 Nov 1994 08:49:37 GMT; HttpOnly", 64, 1, "abc123", RFC_DATE },
		{ "dmsess=abc; Max-Age=3600", 64, 1, "abc", NOW + 3600 },
		{ "dmsess=abc; Max-Age=60; Expires=Sun, 06 Nov 1994 08:49:37 GMT", 64, 1, "abc", NOW + 60 },
		{ "dmsess=abc; Expires=Sun, 06 Nov 1994 08:49:37 GMT; max-age=60", 64, 1, "abc", NOW + 60 },
		{ "dmsess=abc; Max-Age=0", 64, 1, "abc", NOW - 1 },
		{ "dmsess=abc; Max-Age=-5", 64, 1, "abc", NOW - 1 },
		{ "dmsess=abc; Max-Age=99999999999999999999", 64, 1, "abc", NOW + GW_COOKIE_MAX_AGE },
		{ "dmsess=abc; Max-Age=soon", 64, 1, "abc", 0 },
		{ "dmsess=abc; Expires=garbage", 64, 1, "abc", 0 },
		{ "dmsess=abc; expires=Sunday, 06-Nov-94 08:49:37 GMT", 64, 1, "abc", RFC_DATE },
		{ "dmsess=abc; Expires=Sun, 06-Nov-1994 08:49:37 GMT", 64, 1, "abc", RFC_DATE },
		{ "dmsess=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT", 64, 1, "abc", 1 },	/* past, not "session" */
		{ "dmsess=abc", 64, 1, "abc", 0 },
		{ "  dmsess = abc ; path=/", 64, 1, "abc", 0 },
		{ "dmsess=\"abc\"; Path=/", 64, 1, "abc", 0 },
		{ "dmsess=; Path=/", 64, 1, "", 0 },
		{ "dmsess=a=b", 64, 1, "a=b", 0 },
		{ "dmsess=1234567", 8, 1, "1234567", 0 },
		{ "dmsess=12345678", 8, -1, NULL, 0 },
		{ "other=x; Path=/", 64, 0, NULL, 0 },
		{ "dmsessx=abc", 64, 0, NULL, 0 },
		{ "DMSESS=abc", 64, 0, NULL, 0 },
		{ "=abc", 64, -1, NULL, 0 },
		{ "dmsess", 64, -1, NULL, 0 },
		{ "dmsess; Path==/", 64, -1, NULL, 0 },
		{ "dmsess=a b", 64, -1, NULL, 0 },
		{ "dmsess=a,b", 64, -1, NULL, 0 },
		{ "dmsess=a\x01" "b", 64, -1, NULL, 0 },
		{ "dmsess=a\\b", 64, -1, NULL, 0 },
		{ "", 64, -1, NULL, 0 },
		{ huge, 64, -1, NULL, 0 },
	};

	memcpy(huge, "dmsess=abc; Path=", 17);
	memset(huge + 17, 'p', sizeof(huge) - 18);
	huge[sizeof(huge) - 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		time_t exp = 12345;
		int rc;

		memset(out, '#', sizeof(out));
		out[sizeof(out) - 1] = '\0';
		rc = gw_cookie_parse(cases[i].header, "dmsess", out, cases[i].outlen, NOW, &exp);
		cr_expect_eq(rc, cases[i].rc, "case %zu (%.40s): rc %d", i, cases[i].header, rc);
		if (cases[i].rc == 1) {
			cr_expect_str_eq(out, cases[i].value, "case %zu: value %s", i, out);
			cr_expect_eq(exp, cases[i].expires, "case %zu: expires %lld", i, (long long)exp);
		} else {
			cr_expect_eq(exp, 12345, "case %zu: expires written", i);
		}
	}
}

Test(cookie, null_arguments_are_malformed)
{
	char out[16];
	time_t exp;

	cr_expect_eq(gw_cookie_parse(NULL, "dmsess", out, sizeof(out), NOW, &exp), -1);
	cr_expect_eq(gw_cookie_parse("dmsess=a", NULL, out, sizeof(out), NOW, &exp), -1);
	cr_expect_eq(gw_cookie_parse("dmsess=a", "dmsess", NULL, sizeof(out), NOW, &exp), -1);
	cr_expect_eq(gw_cookie_parse("dmsess=a", "dmsess", out, 0, NOW, &exp), -1);
	cr_expect_eq(gw_cookie_parse("dmsess=a", "dmsess", out, sizeof(out), NOW, NULL), -1);
}

Test(cookie, http_date_table)
{
	static const struct {
		const char *s;
		time_t want;
	} cases[] = {
		{ "Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE },
		{ "Sun Nov  6 08:49:37 1994", RFC_DATE },
		{ "Sun Nov 16 08:49:37 1994", 784975777 },
		{ "  Sun, 06 Nov 1994 08:49:37 GMT  ", RFC_DATE },
		{ "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
		{ "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL },
		{ "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000 },
		{ "Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 },
		{ "Wednesday, 21-Oct-15 07:28:00 GMT", 1445412480 },	/* 2-digit year < 70 -> 20xx */
		/* curl_getdate is lenient the way browsers' cookie parsers are: seconds 60 roll over,
		 * an impossible day rolls into the next month, case, day width, separators, the zone
		 * name and trailing words do not matter, numeric offsets are applied. */
		{ "Wed, 21 Oct 2015 07:28:60 GMT", 1445412480 + 60 },
		{ "Wed, 29 Feb 2023 12:00:00 GMT", 1677672000 },	/* = 1 Mar 2023 */
		{ "sun, 06 nov 1994 08:49:37 GMT", RFC_DATE },
		{ "Sun, 6 Nov 1994 08:49:37 GMT", RFC_DATE },
		{ "Sun, 06-Nov-1994 08:49:37 GMT", RFC_DATE },
		{ "Sun,06 Nov 1994 08:49:37 GMT", RFC_DATE },
		{ "Sun, 06 Nov 1994 08:49:37 UTC", RFC_DATE },
		{ "Sun, 06 Nov 1994 08:49:37 GMT junk", RFC_DATE },
		{ "Sun, 06 Nov 1994 08:49:37 +0100", RFC_DATE - 3600 },
		/* what no reading makes a date of */
		{ "Sun, 06 Nov 1994 24:00:00 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:60:00 GMT", -1 },
		{ "Mon, 32 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Foo 1994 08:49:37 GMT", -1 },
		{ "Sun Nov  6 08:49:37", -1 },
		{ "not a date", -1 },
		{ "120", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT                                                   ", -1 },	/* > GW_COOKIE_MAX_DATE */
		{ "", -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t got = gw_cookie_http_date(cases[i].s);

		cr_expect_eq(got, cases[i].want, "case %zu (%s): got %lld", i, cases[i].s, (long long)got);
	}
	cr_expect_eq(gw_cookie_http_date(NULL), -1);
}
