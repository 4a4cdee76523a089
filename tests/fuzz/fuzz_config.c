/*
 * Fuzz target: the YAML config loader on a whole file's text; a config that loads is also turned
 * into a keyring, the next thing start-up does with it.
 */
#include <stdint.h>
#include "gateway/config/config.h"
#include "auth/caller/apikey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_config *cfg = NULL;
	struct gw_errors errs = { 0 };

	if (gw_config_parse("fuzz.yaml", (const char *)data, size, &cfg, &errs) == 0) {
		gw_apikey_ring_free(gw_apikey_ring_new(cfg));
		gw_config_free(cfg);
	}
	gw_errors_clear(&errs);
	return 0;
}
