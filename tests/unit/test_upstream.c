/*
 * Unit tests for gateway/upstream/upstream.c: the one mapping from an upstream outcome to the
 * caller's status (gw_up_failure_of), as a table of response -> code, retry delay, message.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <curl/curl.h>

#include "gateway/upstream/upstream.h"

static const struct {
	const char *name;
	struct gw_up_response res;
	grpc_status_code code;
	long retry_ms;
	const char *msg;	/* exact message */
} failure_cases[] = {
	{ "2xx is no failure", { .http_status = 200, .retry_after_ms = -1 }, GRPC_STATUS_OK, -1, "" },
	{ "204 is no failure", { .http_status = 204, .retry_after_ms = -1 }, GRPC_STATUS_OK, -1, "" },
	{ "queue full, no delay",
	  { .limited = GRPC_STATUS_RESOURCE_EXHAUSTED, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = -1, .error = "account sim: admission queue full" },
	  GRPC_STATUS_RESOURCE_EXHAUSTED, -1, "UploadVideo: account sim: admission queue full" },
	{ "paused by Retry-After keeps its delay",
	  { .limited = GRPC_STATUS_UNAVAILABLE, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = 4200, .error = "account sim paused by upstream Retry-After" },
	  GRPC_STATUS_UNAVAILABLE, 4200, "UploadVideo: account sim paused by upstream Retry-After" },
	{ "limited without a reason",
	  { .limited = GRPC_STATUS_DEADLINE_EXCEEDED, .curl_rc = CURLE_COULDNT_CONNECT,
	    .retry_after_ms = -1 },
	  GRPC_STATUS_DEADLINE_EXCEEDED, -1, "UploadVideo: upstream limit" },
	{ "no session with a reason",
	  { .no_session = 1, .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1,
	    .error = "upstream login failing, retrying in 3 s" },
	  GRPC_STATUS_UNAVAILABLE, -1, "UploadVideo: upstream login failing, retrying in 3 s" },
	{ "no session, default reason",
	  { .no_session = 1, .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1 },
	  GRPC_STATUS_UNAVAILABLE, -1, "UploadVideo: upstream rejected account credentials" },
	{ "timeout",
	  { .curl_rc = CURLE_OPERATION_TIMEDOUT, .retry_after_ms = -1, .error = "timed out" },
	  GRPC_STATUS_DEADLINE_EXCEEDED, -1, NULL },
	{ "connection refused",
	  { .curl_rc = CURLE_COULDNT_CONNECT, .retry_after_ms = -1, .error = "refused" },
	  GRPC_STATUS_UNAVAILABLE, -1, NULL },
	{ "429 with Retry-After keeps it",
	  { .http_status = 429, .retry_after_ms = 5000 }, GRPC_STATUS_RESOURCE_EXHAUSTED, 5000,
	  "UploadVideo: upstream rate limit reached, retry later (HTTP 429)" },
	{ "429 without Retry-After gets the default",
	  { .http_status = 429, .retry_after_ms = -1 }, GRPC_STATUS_RESOURCE_EXHAUSTED,
	  GW_UP_DEFAULT_PUSHBACK_MS, "UploadVideo: upstream rate limit reached, retry later (HTTP 429)" },
	{ "503 with Retry-After keeps it",
	  { .http_status = 503, .retry_after_ms = 2000 }, GRPC_STATUS_UNAVAILABLE, 2000,
	  "UploadVideo: upstream failed, retry later (HTTP 503)" },
	{ "503 without Retry-After has none",
	  { .http_status = 503, .retry_after_ms = -1 }, GRPC_STATUS_UNAVAILABLE, -1,
	  "UploadVideo: upstream failed, retry later (HTTP 503)" },
	{ "404 is NOT_FOUND without delay",
	  { .http_status = 404, .retry_after_ms = 3000 }, GRPC_STATUS_NOT_FOUND, -1,
	  "UploadVideo: not found upstream (HTTP 404)" },
	{ "400 quotes the upstream message",
	  { .http_status = 400, .retry_after_ms = -1, .body = "{\"message\":\"bad trim\"}",
	    .body_len = 22 },
	  GRPC_STATUS_INVALID_ARGUMENT, -1,
	  "UploadVideo: upstream rejected the request (HTTP 400): bad trim" },
};

Test(upstream, failure_table)
{
	for (size_t i = 0; i < sizeof failure_cases / sizeof failure_cases[0]; i++) {
		struct gw_up_failure f;
		grpc_status_code code = gw_up_failure_of(&failure_cases[i].res, "UploadVideo", &f);

		cr_expect_eq(code, failure_cases[i].code, "%s: code %d", failure_cases[i].name, code);
		cr_expect_eq(f.code, code, "%s: out->code", failure_cases[i].name);
		cr_expect_eq(f.retry_ms, failure_cases[i].retry_ms, "%s: retry %ld",
			     failure_cases[i].name, f.retry_ms);
		if (failure_cases[i].msg)
			cr_expect_str_eq(f.msg, failure_cases[i].msg, "%s: \"%s\"", failure_cases[i].name,
					 f.msg);
		else
			cr_expect(strncmp(f.msg, "UploadVideo: ", 13) == 0, "%s: \"%s\"",
				  failure_cases[i].name, f.msg);
	}
}

Test(upstream, failure_without_what)
{
	struct gw_up_response res = { .no_session = 1, .retry_after_ms = -1 };
	struct gw_up_failure f;

	gw_up_failure_of(&res, NULL, &f);
	cr_expect_str_eq(f.msg, "upstream: upstream rejected account credentials");
}
