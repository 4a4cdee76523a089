/* Fuzz target: an upstream Set-Cookie header value and the HTTP-date parser behind it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/upstream/cookie.h"

#define FUZZ_COOKIE_OUT 256	/* the session layer's cookie buffer is of this order */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);
	char out[FUZZ_COOKIE_OUT];
	time_t exp;

	if (!v)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	gw_cookie_parse(v, "dmsess", out, sizeof out, 1795000000, &exp);
	gw_cookie_http_date(v);
	free(v);
	return 0;
}
