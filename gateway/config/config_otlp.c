/* config_otlp: the otlp: section (span export, gateway/base/otlp.h). See config_int.h. */
#include <stdlib.h>

#include "gateway/base/otlp.h"
#include "gateway/config/config_int.h"

void gw_cfg_otlp(struct gw_cfg_parse *p, yaml_node_t *n)
{
	enum { K_END, K_HDR, K_SVC, K_BATCH, K_QUEUE, K_FLUSH, K_TMO, K_N };
	static const char *const keys[K_N] = { "endpoint",  "headers_file", "service_name",
					       "batch_max", "queue_max",    "flush_ms",
					       "timeout_ms" };
	yaml_node_t *v[K_N], *kn[K_N];
	long long x;
	char *endpoint = NULL;
	size_t nerr = p->errs->n + p->errs->dropped;

	p->cfg->otlp.batch_max = GW_OTLP_DEFAULT_BATCH;
	p->cfg->otlp.queue_max = GW_OTLP_DEFAULT_QUEUE;
	p->cfg->otlp.flush_ms = GW_OTLP_DEFAULT_FLUSH_MS;
	p->cfg->otlp.timeout_ms = GW_OTLP_DEFAULT_TIMEOUT_MS;
	if (gw_cfg_map(p, n, "otlp", keys, K_N, v, kn) < 0)
		return;
	p->cfg->otlp.line = gw_cfg_line(n);
	if (!v[K_END]) {
		GW_CFG_ERR(p, n, "otlp.endpoint is required, e.g. http://127.0.0.1:4318/v1/traces");
		return;
	}
	if (gw_cfg_string(p, v[K_END], "otlp.endpoint", &endpoint) == 0 &&
	    !gw_cfg_base_url_ok(endpoint))
		GW_CFG_ERR(p, v[K_END], "otlp.endpoint must be an http:// or https:// URL without "
			   "credentials, query or fragment, e.g. http://127.0.0.1:4318/v1/traces");
	if (v[K_HDR])
		gw_cfg_string(p, v[K_HDR], "otlp.headers_file", &p->cfg->otlp.headers_file);
	if (v[K_SVC])
		gw_cfg_string(p, v[K_SVC], "otlp.service_name", &p->cfg->otlp.service_name);
	if (v[K_BATCH] && gw_cfg_long(p, v[K_BATCH], "otlp.batch_max", 1, GW_OTLP_MAX_BATCH, &x) == 0)
		p->cfg->otlp.batch_max = (unsigned)x;
	if (v[K_QUEUE] && gw_cfg_long(p, v[K_QUEUE], "otlp.queue_max", 1, GW_OTLP_MAX_QUEUE, &x) == 0)
		p->cfg->otlp.queue_max = (unsigned)x;
	if (v[K_FLUSH] && gw_cfg_long(p, v[K_FLUSH], "otlp.flush_ms", 10, 3600000, &x) == 0)
		p->cfg->otlp.flush_ms = (long)x;
	if (v[K_TMO] && gw_cfg_long(p, v[K_TMO], "otlp.timeout_ms", 10, 60000, &x) == 0)
		p->cfg->otlp.timeout_ms = (long)x;
	if (p->cfg->otlp.queue_max < p->cfg->otlp.batch_max)
		GW_CFG_ERR(p, v[K_QUEUE] ? v[K_QUEUE] : kn[K_BATCH],
			   "otlp.queue_max must be >= otlp.batch_max (%u)", p->cfg->otlp.batch_max);
	if (p->errs->n + p->errs->dropped != nerr) {
		free(endpoint);
		return;
	}
	p->cfg->otlp.endpoint = endpoint;
}
