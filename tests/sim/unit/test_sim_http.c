/* sim_http: percent-decoding and query lookup (the parts of the HTTP layer that are pure). */
#include <criterion/criterion.h>
#include <string.h>

#include "sim_http.h"

Test(sim_http, decode_table)
{
	static const struct { const char *in; int form; const char *out; } cases[] = {
		{ "clip.mp4", 0, "clip.mp4" },
		{ "my%20clip.mp4", 0, "my clip.mp4" },
		{ "a+b", 0, "a+b" },
		{ "a+b", 1, "a b" },
		{ "%41%42%43", 0, "ABC" },
		{ "%4", 0, NULL },		/* truncated escape */
		{ "%", 0, NULL },
		{ "%zz", 0, NULL },
		{ "abc%", 0, NULL },
		{ "", 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64] = "?";
		int rc = sim_http_decode(cases[i].in, strlen(cases[i].in), cases[i].form, out, sizeof(out));

		if (cases[i].out == NULL) {
			cr_expect_eq(rc, -1, "case %zu '%s' → '%s'", i, cases[i].in, out);
		} else {
			cr_expect_eq(rc, 0, "case %zu '%s'", i, cases[i].in);
			cr_expect_str_eq(out, cases[i].out, "case %zu", i);
		}
	}
}

Test(sim_http, decode_respects_the_buffer)
{
	char out[4];

	cr_expect_eq(sim_http_decode("abc", 3, 0, out, sizeof(out)), 0);
	cr_expect_eq(sim_http_decode("abcd", 4, 0, out, sizeof(out)), -1, "4 chars + NUL do not fit in 4");
}

Test(sim_http, query_table)
{
	static const struct { const char *query, *name, *want; } cases[] = {
		{ "name=clip.mp4&resumable=0", "name", "clip.mp4" },
		{ "name=clip.mp4&resumable=0", "resumable", "0" },
		{ "name=my+clip%21.mp4", "name", "my clip!.mp4" },
		{ "filename=x&name=y", "name", "y" },	/* no prefix match */
		{ "name=&x=1", "name", "" },
		{ "name", "name", "" },
		{ "resumable=1", "name", NULL },
		{ "", "name", NULL },
		{ "name=a&name=b", "name", "a" },	/* the first value */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_req rq;
		char out[64] = "?";
		int rc;

		memset(&rq, 0, sizeof(rq));
		rq.query = (char *)cases[i].query;
		rc = sim_http_query(&rq, cases[i].name, out, sizeof(out));
		if (cases[i].want == NULL) {
			cr_expect_eq(rc, -1, "case %zu", i);
		} else {
			cr_expect_eq(rc, 0, "case %zu", i);
			cr_expect_str_eq(out, cases[i].want, "case %zu", i);
		}
	}
}
