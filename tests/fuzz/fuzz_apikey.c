/*
 * Fuzz target: the caller's "authorization" metadata value against the demo keyring (the
 * examples/demo.yaml tenants), as every call does before anything else.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "gateway/config/config.h"
#include "auth/caller/apikey.h"

#ifndef A3D_SOURCE_DIR
#define A3D_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gw_keyring *ring;	/* built once: fuzzers call this millions of times */
	size_t tenant;
	unsigned perms;

	if (!ring) {
		struct gw_config *cfg = NULL;
		struct gw_errors errs = { 0 };
		if (gw_config_load(A3D_SOURCE_DIR "/examples/demo.yaml", &cfg, &errs) != 0)
			abort();
		ring = gw_apikey_ring_new(cfg);
		gw_config_free(cfg);
		if (!ring)
			abort();
	}
	gw_apikey_lookup(ring, (const char *)data, size, &tenant, &perms);
	return 0;
}
