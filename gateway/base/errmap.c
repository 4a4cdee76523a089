/*
 * errmap: upstream HTTP and transport failures -> gRPC status codes and caller-facing messages.
 */
#define _GNU_SOURCE	/* memmem, strptime, timegm */
#include "gateway/base/errmap.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>

#define ERRMAP_DATE_MAX 64		/* longest HTTP-date we try to parse */

static int errmap_url_end(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '"' || ch == '\'' ||
	       ch == '<' || ch == '>' || ch == ')' || ch == ']' || ch == ',';
}

size_t gw_errmap_sanitize(const char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	size_t tok = 0;		/* where the current whitespace-delimited token starts in out */
	int skipping = 0;	/* inside a URL query: drop until the URL ends */

	if (!outlen)
		return 0;
	for (size_t i = 0; in && i < len && o + 1 < outlen; i++) {
		char ch = in[i];

		if (skipping) {
			if (!errmap_url_end(ch))
				continue;
			skipping = 0;
		}
		if (errmap_url_end(ch))
			tok = o + 1;
		if (ch == '?' && o > tok && memmem(out + tok, o - tok, "://", 3)) {
			skipping = 1;
			continue;
		}
		out[o++] = ((unsigned char)ch < 0x20 || (unsigned char)ch > 0x7e) ? '?' : ch;
	}
	out[o] = '\0';
	return o;
}

/* The JSON "message" of an upstream error body, sanitized into buf; "" when there is none. */
static void errmap_body_message(const char *body, size_t len, char *buf, size_t buflen)
{
	json_t *root = NULL;
	json_t *m;
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (!body || !len)
		return;
	root = json_loadb(body, len, 0, NULL);
	m = json_is_object(root) ? json_object_get(root, "message") : NULL;
	if (json_is_string(m)) {
		s = json_string_value(m);
		n = json_string_length(m);
		if (n > GW_ERRMAP_UPSTREAM_MSG_MAX)
			n = GW_ERRMAP_UPSTREAM_MSG_MAX;
		gw_errmap_sanitize(s, n, buf, buflen);
	}
	json_decref(root);
}

grpc_status_code gw_errmap_http(long http_status, const char *body, size_t len, const char *what,
				char *msg, size_t msglen)
{
	char um[GW_ERRMAP_UPSTREAM_MSG_MAX + 1];
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	const char *expl = NULL;
	int quote = 1;	/* append the upstream message */

	errmap_body_message(body, len, um, sizeof(um));
	switch (http_status) {
	case 400:
		code = GRPC_STATUS_INVALID_ARGUMENT;
		expl = "upstream rejected the request";
		break;
	case 401:
		/* The engine re-logs in once before giving up: this is the account's fault, not the
		 * caller's, and the upstream text would only talk about sessions. */
		code = GRPC_STATUS_UNAVAILABLE;
		expl = "upstream rejected account credentials";
		quote = 0;
		break;
	case 403:
		code = GRPC_STATUS_PERMISSION_DENIED;
		expl = "upstream denied access";
		break;
	case 404:
		code = GRPC_STATUS_NOT_FOUND;
		expl = "not found upstream";
		break;
	case 409:
		code = GRPC_STATUS_ALREADY_EXISTS;
		expl = "upstream reports a conflict";
		break;
	case 413:
		code = GRPC_STATUS_INVALID_ARGUMENT;
		expl = "request too large for upstream";
		break;
	case 429:
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		expl = "upstream rate limit reached, retry later";
		break;
	case 0:
		code = GRPC_STATUS_UNAVAILABLE;
		expl = "no answer from upstream";
		break;
	default:
		if (http_status >= 500 && http_status <= 599) {
			code = GRPC_STATUS_UNAVAILABLE;
			expl = "upstream failed, retry later";
		} else {
			code = GRPC_STATUS_UNKNOWN;
			expl = "unexpected upstream answer";
		}
		break;
	}
	if (msg && msglen) {
		if (quote && um[0])
			snprintf(msg, msglen, "%s: %s (HTTP %ld): %s", what ? what : "upstream", expl,
				 http_status, um);
		else
			snprintf(msg, msglen, "%s: %s (HTTP %ld)", what ? what : "upstream", expl,
				 http_status);
	}
	return code;
}

grpc_status_code gw_errmap_curl(int curl_rc, const char *curl_error, const char *what, char *msg,
				size_t msglen)
{
	char reason[GW_ERRMAP_UPSTREAM_MSG_MAX + 1];
	const char *r = curl_error && curl_error[0] ? curl_error : curl_easy_strerror((CURLcode)curl_rc);
	size_t n = strlen(r);
	grpc_status_code code = curl_rc == CURLE_OPERATION_TIMEDOUT ? GRPC_STATUS_DEADLINE_EXCEEDED
								     : GRPC_STATUS_UNAVAILABLE;

	if (n > GW_ERRMAP_UPSTREAM_MSG_MAX)
		n = GW_ERRMAP_UPSTREAM_MSG_MAX;
	gw_errmap_sanitize(r, n, reason, sizeof(reason));
	if (msg && msglen)
		snprintf(msg, msglen, "%s: %s: %s", what ? what : "upstream",
			 code == GRPC_STATUS_DEADLINE_EXCEEDED ? "upstream did not answer in time"
							       : "cannot reach upstream",
			 reason);
	return code;
}

static long errmap_clamp_ms(double seconds)
{
	if (seconds <= 0)
		return 0;
	if (seconds >= GW_ERRMAP_RETRY_AFTER_MAX_MS / 1000.0)
		return GW_ERRMAP_RETRY_AFTER_MAX_MS;
	return (long)(seconds * 1000);
}

long gw_errmap_retry_after_ms(const char *value, time_t now)
{
	/* RFC 9110: IMF-fixdate, plus the obsolete RFC 850 and asctime forms recipients must accept. */
	static const char *const formats[] = { "%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
					       "%a %b %e %H:%M:%S %Y" };
	char buf[ERRMAP_DATE_MAX];
	size_t n;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
		     value[n - 1] == '\n'))
		n--;
	if (!n || n >= sizeof(buf))
		return -1;
	memcpy(buf, value, n);
	buf[n] = '\0';

	if (isdigit((unsigned char)buf[0])) {
		double secs = 0;
		size_t i;

		for (i = 0; i < n && isdigit((unsigned char)buf[i]); i++)
			if (secs < 1e12)	/* stop growing: anything this big clamps anyway */
				secs = secs * 10 + (buf[i] - '0');
		if (i == n)
			return errmap_clamp_ms(secs);
		/* "1 Jan..." is not a form we accept; fall through to the dates, which will fail. */
	}
	for (size_t f = 0; f < sizeof(formats) / sizeof(formats[0]); f++) {
		struct tm tm;
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(buf, formats[f], &tm);
		if (end && *end == '\0')
			return errmap_clamp_ms(difftime(timegm(&tm), now));
	}
	return -1;
}

static const char *const errmap_code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *gw_errmap_code_name(unsigned code)
{
	return code < sizeof errmap_code_names / sizeof errmap_code_names[0] ? errmap_code_names[code]
									     : "UNKNOWN";
}
