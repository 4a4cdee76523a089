/* Unit tests for gateway/base/errmap.c: upstream HTTP status / curl failure / Retry-After -> gRPC terms. */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "gateway/base/errmap.h"

static const struct {
	long http;
	const char *body;
	grpc_status_code code;
	const char *msg;	/* exact message */
} http_cases[] = {
	{ 400, "{\"message\":\"Error processing the parameters: trim\",\"error\":\"503\"}",
	  GRPC_STATUS_INVALID_ARGUMENT,
	  "StartJob: upstream rejected the request (HTTP 400): Error processing the parameters: trim" },
	{ 400, NULL, GRPC_STATUS_INVALID_ARGUMENT, "StartJob: upstream rejected the request (HTTP 400)" },
	{ 401, "{\"message\":\"invalid session\"}", GRPC_STATUS_UNAVAILABLE,
	  "StartJob: upstream rejected account credentials (HTTP 401)" },
	{ 403, "{\"message\":\"forbidden\"}", GRPC_STATUS_PERMISSION_DENIED,
	  "StartJob: upstream denied access (HTTP 403): forbidden" },
	{ 404, "{\"message\":\"rid not found\",\"error\":\"not_found\"}", GRPC_STATUS_NOT_FOUND,
	  "StartJob: not found upstream (HTTP 404): rid not found" },
	{ 409, "{}", GRPC_STATUS_ALREADY_EXISTS, "StartJob: upstream reports a conflict (HTTP 409)" },
	{ 413, "too big", GRPC_STATUS_INVALID_ARGUMENT,
	  "StartJob: request too large for upstream (HTTP 413)" },
	{ 429, "{\"message\":\"slow down\"}", GRPC_STATUS_RESOURCE_EXHAUSTED,
	  "StartJob: upstream rate limit reached, retry later (HTTP 429): slow down" },
	{ 500, "<html>oops</html>", GRPC_STATUS_UNAVAILABLE,
	  "StartJob: upstream failed, retry later (HTTP 500)" },
	{ 503, "{\"message\":\"maintenance\"}", GRPC_STATUS_UNAVAILABLE,
	  "StartJob: upstream failed, retry later (HTTP 503): maintenance" },
	{ 599, "", GRPC_STATUS_UNAVAILABLE, "StartJob: upstream failed, retry later (HTTP 599)" },
	{ 0, NULL, GRPC_STATUS_UNAVAILABLE, "StartJob: no answer from upstream (HTTP 0)" },
	{ 302, "{\"message\":\"moved\"}", GRPC_STATUS_UNKNOWN,
	  "StartJob: unexpected upstream answer (HTTP 302): moved" },
	{ 418, "{\"message\":42}", GRPC_STATUS_UNKNOWN, "StartJob: unexpected upstream answer (HTTP 418)" },
	/* A signed URL in the message keeps its path, never its query. */
	{ 400,
	  "{\"message\":\"bad url http://st/o.mp4?X-Goog-Signature=abc123&X-Goog-Date=1 given\"}",
	  GRPC_STATUS_INVALID_ARGUMENT,
	  "StartJob: upstream rejected the request (HTTP 400): bad url http://st/o.mp4 given" },
	/* Control characters do not reach the caller. */
	{ 404, "{\"message\":\"a\\nb\\u0001c\"}", GRPC_STATUS_NOT_FOUND,
	  "StartJob: not found upstream (HTTP 404): a?b?c" },
};

Test(errmap, http_table)
{
	for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
		char msg[512] = "";
		const char *b = http_cases[i].body;
		grpc_status_code c = gw_errmap_http(http_cases[i].http, b, b ? strlen(b) : 0, "StartJob",
						    msg, sizeof(msg));

		cr_expect_eq(c, http_cases[i].code, "case %zu: code %d", i, c);
		cr_expect_str_eq(msg, http_cases[i].msg, "case %zu: got \"%s\"", i, msg);
	}
}

Test(errmap, http_message_truncated)
{
	char body[1200];
	char msg[1024];
	size_t n;

	strcpy(body, "{\"message\":\"");
	n = strlen(body);
	memset(body + n, 'x', 1000);
	strcpy(body + n + 1000, "\"}");
	gw_errmap_http(400, body, strlen(body), "X", msg, sizeof(msg));
	/* "X: upstream rejected the request (HTTP 400): " + at most the limit */
	cr_expect_eq(strlen(msg), strlen("X: upstream rejected the request (HTTP 400): ") +
					  GW_ERRMAP_UPSTREAM_MSG_MAX, "%zu", strlen(msg));
	/* a small buffer is filled and terminated, not overrun */
	gw_errmap_http(400, body, strlen(body), "X", msg, 8);
	cr_expect_str_eq(msg, "X: upst");
}

Test(errmap, curl_table)
{
	static const struct {
		int rc;
		const char *err;
		grpc_status_code code;
		const char *msg;
	} cases[] = {
		{ CURLE_OPERATION_TIMEDOUT, "Operation timed out after 2000 milliseconds",
		  GRPC_STATUS_DEADLINE_EXCEEDED,
		  "GetStatus: upstream did not answer in time: Operation timed out after 2000 milliseconds" },
		{ CURLE_COULDNT_CONNECT, "Failed to connect to 127.0.0.1 port 8090: Connection refused",
		  GRPC_STATUS_UNAVAILABLE,
		  "GetStatus: cannot reach upstream: Failed to connect to 127.0.0.1 port 8090: Connection refused" },
		{ CURLE_COULDNT_RESOLVE_HOST, NULL, GRPC_STATUS_UNAVAILABLE,
		  "GetStatus: cannot reach upstream: Couldn't resolve host name" },
		{ CURLE_RECV_ERROR, "", GRPC_STATUS_UNAVAILABLE,
		  "GetStatus: cannot reach upstream: Failure when receiving data from the peer" },
		{ CURLE_SSL_CONNECT_ERROR, "TLS error for https://h/p?X-Goog-Signature=s", GRPC_STATUS_UNAVAILABLE,
		  "GetStatus: cannot reach upstream: TLS error for https://h/p" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[512] = "";
		grpc_status_code c = gw_errmap_curl(cases[i].rc, cases[i].err, "GetStatus", msg,
						    sizeof(msg));

		cr_expect_eq(c, cases[i].code, "case %zu: code %d", i, c);
		cr_expect_str_eq(msg, cases[i].msg, "case %zu: got \"%s\"", i, msg);
	}
}

Test(errmap, retry_after_table)
{
	/* 2026-11-28 07:00:00 UTC */
	const time_t now = 1795849200;
	static const struct {
		const char *value;
		long ms;
	} cases[] = {
		{ "0", 0 },
		{ "5", 5000 },
		{ " 120 ", 120000 },
		{ "3600", GW_ERRMAP_RETRY_AFTER_MAX_MS },
		{ "3601", GW_ERRMAP_RETRY_AFTER_MAX_MS },
		{ "99999999999999999999999999", GW_ERRMAP_RETRY_AFTER_MAX_MS },
		{ "Sat, 28 Nov 2026 07:00:30 GMT", 30000 },
		{ "Saturday, 28-Nov-26 07:01:00 GMT", 60000 },
		{ "Sat Nov 28 07:00:02 2026", 2000 },
		{ "Sat, 28 Nov 2026 06:00:00 GMT", 0 },		/* in the past: retry now */
		{ "Sun, 29 Nov 2026 07:00:00 GMT", GW_ERRMAP_RETRY_AFTER_MAX_MS },
		{ "-5", -1 },
		{ "5s", -1 },
		{ "1.5", -1 },
		{ "", -1 },
		{ "   ", -1 },
		{ "soon", -1 },
		{ "Sat, 28 Nov 2026 07:00:30", -1 },		/* no GMT */
		{ "Sat, 28 Nov 2026 07:00:30 GMT trailing", -1 },
		{ NULL, -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long ms = gw_errmap_retry_after_ms(cases[i].value, now);

		cr_expect_eq(ms, cases[i].ms, "case %zu \"%s\": got %ld", i,
			     cases[i].value ? cases[i].value : "(null)", ms);
	}
}

Test(errmap, sanitize_table)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{ "plain text", "plain text" },
		{ "what? really?", "what? really?" },
		{ "see https://a/b?sig=1 and http://c/d?x=2, ok", "see https://a/b and http://c/d, ok" },
		{ "\"https://a/b?sig=1\"", "\"https://a/b\"" },
		{ "tab\there", "tab?here" },
		{ "caf\xc3\xa9", "caf??" },
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		size_t n = gw_errmap_sanitize(cases[i].in, strlen(cases[i].in), out, sizeof(out));

		cr_expect_str_eq(out, cases[i].out, "case %zu: got \"%s\"", i, out);
		cr_expect_eq(n, strlen(cases[i].out));
	}
	{
		char small[4];

		cr_expect_eq(gw_errmap_sanitize("abcdef", 6, small, sizeof(small)), 3);
		cr_expect_str_eq(small, "abc");
	}
}

Test(errmap, grpc_code_names)
{
	cr_expect_str_eq(gw_errmap_code_name(0), "OK");
	cr_expect_str_eq(gw_errmap_code_name(5), "NOT_FOUND");
	cr_expect_str_eq(gw_errmap_code_name(8), "RESOURCE_EXHAUSTED");
	cr_expect_str_eq(gw_errmap_code_name(16), "UNAUTHENTICATED");
	cr_expect_str_eq(gw_errmap_code_name(17), "UNKNOWN");
}
