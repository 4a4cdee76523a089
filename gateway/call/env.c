/*
 * env: configuration generations and service lookup. See env.h.
 */
#include "gateway/call/env.h"

#include <stdlib.h>

#include "auth/caller/apikey.h"
#include "gateway/config/config.h"

struct gw_gen *gw_gen_new(struct gw_config *cfg)
{
	struct gw_gen *g = calloc(1, sizeof *g);

	if (!g)
		return NULL;
	g->keys = gw_apikey_ring_new(cfg);
	if (!g->keys) {
		free(g);
		return NULL;
	}
	g->cfg = cfg;
	g->refs = 1;
	return g;
}

struct gw_gen *gw_gen_get(struct gw_gen *g)
{
	g->refs++;
	return g;
}

void gw_gen_put(struct gw_gen *g)
{
	if (!g || --g->refs)
		return;
	gw_apikey_ring_free(g->keys);
	gw_config_free(g->cfg);
	free(g);
}

void *gw_env_svc(const struct gw_env *env, const struct gw_svc *desc)
{
	for (size_t i = 0; i < env->nsvcs; i++)
		if (env->svcs[i].desc == desc)
			return env->svcs[i].state;
	return NULL;
}
