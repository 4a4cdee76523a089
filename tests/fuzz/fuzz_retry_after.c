/* Fuzz target: a Retry-After header value (delta-seconds or any HTTP-date form). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/base/errmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);
	char out[256];

	if (!v)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	gw_errmap_retry_after_ms(v, 1795000000);
	gw_errmap_sanitize(v, size, out, sizeof out);
	free(v);
	return 0;
}
