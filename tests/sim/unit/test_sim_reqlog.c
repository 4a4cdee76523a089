/* sim_reqlog: the ring of last requests: order, overwrite, limits, redaction, truncation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sim_reqlog.h"

static void add(struct sim_reqlog *log, const char *path, const char *const *hn, const char *const *hv,
		int n, const char *const *resp, int nr)
{
	struct sim_reqlog_rec rec = {
		.method = "GET", .path = path, .hname = hn, .hval = hv, .n_headers = n,
		.resp_hdr = resp, .n_resp_hdr = nr, .status = 200, .t_ms = 1700000000000ll,
	};

	cr_assert_eq(sim_reqlog_add(log, &rec), 0);
}

Test(sim_reqlog, secret_names_table)
{
	static const struct { const char *name; int secret; } cases[] = {
		{ "Cookie", 1 }, { "cookie", 1 }, { "SET-COOKIE", 1 }, { "Authorization", 1 },
		{ "proxy-authorization", 1 }, { "Content-Type", 0 }, { "Cookies", 0 }, { "X-Cookie", 0 },
		{ "", 0 }, { NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sim_reqlog_is_secret(cases[i].name), cases[i].secret, "case %zu (%s)", i,
			     cases[i].name ?: "NULL");
}

Test(sim_reqlog, redacts_request_and_response_credentials)
{
	struct sim_reqlog *log = sim_reqlog_new();
	const char *hn[] = { "Cookie", "Authorization", "Content-Type", "cookie" };
	const char *hv[] = { "dmsess=s3cr3t", "Basic ZGVtbzpzZWNyZXQ=", "application/json", "dmsess=x" };
	const char *resp[] = { "Content-Type: application/json", "Set-Cookie: dmsess=abc; Path=/",
			       "Location: http://127.0.0.1/x", "no colon here" };
	json_t *o, *r;
	char *txt;

	add(log, "/session/auth", hn, hv, 4, resp, 4);
	o = sim_reqlog_json(log, 10);
	txt = json_dumps(o, JSON_COMPACT);
	cr_expect_null(strstr(txt, "s3cr3t"), "%s", txt);
	cr_expect_null(strstr(txt, "ZGVtbzpzZWNyZXQ="), "%s", txt);
	cr_expect_null(strstr(txt, "dmsess=abc"), "%s", txt);
	cr_expect_null(strstr(txt, "dmsess=x"), "%s", txt);
	r = json_array_get(json_object_get(o, "requests"), 0);
	/* header index → name, value as logged */
	static const struct { int i; const char *name, *value; } want[] = {
		{ 0, "Cookie", SIM_REQLOG_REDACTED }, { 1, "Authorization", SIM_REQLOG_REDACTED },
		{ 2, "Content-Type", "application/json" }, { 3, "cookie", SIM_REQLOG_REDACTED },
	};
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		json_t *h = json_array_get(json_object_get(r, "headers"), (size_t)want[k].i);

		cr_expect_str_eq(json_string_value(json_object_get(h, "name")), want[k].name);
		cr_expect_str_eq(json_string_value(json_object_get(h, "value")), want[k].value);
	}
	json_t *rh = json_object_get(r, "response_headers");
	cr_expect_eq(json_array_size(rh), 3, "a line without a colon is skipped");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rh, 1), "name")), "Set-Cookie");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rh, 1), "value")), SIM_REQLOG_REDACTED);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rh, 2), "value")),
			 "http://127.0.0.1/x");
	free(txt);
	json_decref(o);
	sim_reqlog_free(log);
}

Test(sim_reqlog, ring_order_overwrite_and_limit_table)
{
	struct sim_reqlog *log = sim_reqlog_new();
	char path[32];
	int n = SIM_REQLOG_MAX + 10;

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/r/%d", i);
		add(log, path, NULL, NULL, 0, NULL, 0);
	}
	/* limit → count, first path (oldest first), last path */
	static const struct { int limit, count; int first, last; } cases[] = {
		{ 1, 1, SIM_REQLOG_MAX + 9, SIM_REQLOG_MAX + 9 },
		{ 3, 3, SIM_REQLOG_MAX + 7, SIM_REQLOG_MAX + 9 },
		{ SIM_REQLOG_MAX, SIM_REQLOG_MAX, 10, SIM_REQLOG_MAX + 9 },
		{ SIM_REQLOG_MAX + 50, SIM_REQLOG_MAX, 10, SIM_REQLOG_MAX + 9 },
		{ 0, 0, -1, -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o = sim_reqlog_json(log, cases[i].limit), *arr = json_object_get(o, "requests");
		char want[32];

		cr_expect_eq(json_integer_value(json_object_get(o, "count")), cases[i].count, "case %zu", i);
		cr_expect_eq(json_array_size(arr), (size_t)cases[i].count, "case %zu", i);
		cr_expect_eq(json_integer_value(json_object_get(o, "total")), n);
		cr_expect_eq(json_integer_value(json_object_get(o, "dropped")), 10);
		if (cases[i].count > 0) {
			snprintf(want, sizeof(want), "/r/%d", cases[i].first);
			cr_expect_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "path")), want,
					 "case %zu", i);
			snprintf(want, sizeof(want), "/r/%d", cases[i].last);
			cr_expect_str_eq(json_string_value(json_object_get(json_array_get(arr, json_array_size(arr) - 1),
								       "path")), want, "case %zu", i);
			cr_expect_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "seq")),
				     cases[i].first, "case %zu: seq", i);
		}
		json_decref(o);
	}
	sim_reqlog_clear(log);
	json_t *o = sim_reqlog_json(log, 5);
	cr_expect_eq(json_integer_value(json_object_get(o, "total")), 0, "cleared");
	cr_expect_eq(json_array_size(json_object_get(o, "requests")), 0);
	json_decref(o);
	sim_reqlog_free(log);
}

Test(sim_reqlog, long_values_and_many_headers_are_bounded)
{
	struct sim_reqlog *log = sim_reqlog_new();
	static char big[SIM_REQLOG_VALUE_MAX * 3];
	const char *hn[SIM_REQLOG_HEADERS + 5], *hv[SIM_REQLOG_HEADERS + 5];
	json_t *o, *r;

	memset(big, 'a', sizeof(big) - 1);
	for (int i = 0; i < SIM_REQLOG_HEADERS + 5; i++) {
		hn[i] = "X-Big";
		hv[i] = big;
	}
	add(log, big, hn, hv, SIM_REQLOG_HEADERS + 5, NULL, 0);
	o = sim_reqlog_json(log, 1);
	r = json_array_get(json_object_get(o, "requests"), 0);
	cr_expect_eq(strlen(json_string_value(json_object_get(r, "path"))), SIM_REQLOG_VALUE_MAX);
	cr_expect_eq(json_array_size(json_object_get(r, "headers")), SIM_REQLOG_HEADERS);
	cr_expect_eq(strlen(json_string_value(json_object_get(json_array_get(json_object_get(r, "headers"), 0),
							      "value"))), SIM_REQLOG_VALUE_MAX);
	cr_expect_eq(json_integer_value(json_object_get(o, "truncated")), 1 + SIM_REQLOG_HEADERS);
	json_decref(o);
	sim_reqlog_free(log);
}
