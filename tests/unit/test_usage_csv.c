/* Unit tests for gateway/usage_csv.c: ledger rows as CSV lines (table), the header, quoting. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/state/store.h"
#include "gateway/usage_csv.h"

static char *csv_of(const struct gw_usage_row *w)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	if (w)
		gw_usage_csv_row(f, w);
	else
		gw_usage_csv_header(f);
	fclose(f);
	return buf;
}

/* 1796083200000 is 2026-12-01T00:00:00Z */
static const struct {
	struct gw_usage_row row;
	const char *want;
} csv_cases[] = {
	{ { .tenant = "team-b", .id = "r1", .rid = "RID1", .state = GW_USAGE_SUCCEEDED, .seconds = 15,
	    .counted = 15, .input_ms = 15000, .persons = 1, .source = "url",
	    .started_ms = 1796083200000, .ended_ms = 1796083260500 },
	  "team-b,r1,RID1,succeeded,15,15,15.000,1,0,0,url,2026-12-01T00:00:00Z,2026-12-01T00:01:00Z\n" },
	{ { .tenant = "team-b", .id = "r2", .rid = "", .state = GW_USAGE_RESERVED, .seconds = 3,
	    .counted = 3, .input_ms = -1, .persons = 2, .face = 1, .hand = 7, .source = "mp:RID1",
	    .started_ms = 1796083200001 },
	  "team-b,r2,,reserved,3,3,,2,1,1,mp:RID1,2026-12-01T00:00:00Z,\n" },
	{ { .tenant = "a,\"b\"", .id = "r3", .rid = "R", .state = GW_USAGE_FAILED, .seconds = 4,
	    .counted = 0, .input_ms = 3210, .persons = 1, .source = "rerun:R0",
	    .started_ms = 1796083200000, .ended_ms = 1796083200000 },
	  "\"a,\"\"b\"\"\",r3,R,failed,4,0,3.210,1,0,0,rerun:R0,2026-12-01T00:00:00Z,2026-12-01T00:00:00Z\n" },
	{ { .tenant = "t", .id = "r4", .state = GW_USAGE_RELEASED, .input_ms = 7, .source = "url",
	    .started_ms = 0, .ended_ms = 1 },
	  "t,r4,,released,0,0,0.007,0,0,0,url,1970-01-01T00:00:00Z,1970-01-01T00:00:00Z\n" },
};

Test(usage_csv, row_table)
{
	for (size_t i = 0; i < sizeof csv_cases / sizeof csv_cases[0]; i++) {
		char *got = csv_of(&csv_cases[i].row);

		cr_expect_str_eq(got, csv_cases[i].want, "case %zu", i);
		free(got);
	}
}

Test(usage_csv, header)
{
	char *got = csv_of(NULL);

	cr_expect_str_eq(got, "tenant,reservation,rid,state,seconds,counted_seconds,input_seconds,"
			      "persons,face,hand,source,started_at,ended_at\n");
	free(got);
}
