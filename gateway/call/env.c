/*
 * env: configuration generations and service lookup. See env.h.
 */
#include "gateway/call/env.h"

#include <stdlib.h>

#include "auth/caller/apikey.h"
#include "gateway/config/config.h"

/* Maps cfg's tenants in rpc: 0, or -1 (nothing held). */
static int gen_map_rpc(struct gw_gen *g, const struct gw_config *cfg, struct gw_metrics_rpc *rpc)
{
	size_t n = cfg->ntenants;
	const char **names = NULL;
	int rc = -1;

	g->rpc_slot = calloc(n ? n : 1, sizeof *g->rpc_slot);
	g->rpc_cells = calloc(n ? n : 1, sizeof *g->rpc_cells);
	names = calloc(n ? n : 1, sizeof *names);
	if (!g->rpc_slot || !g->rpc_cells || !names)
		goto out;
	for (size_t i = 0; i < n; i++)
		names[i] = cfg->tenants[i].name;
	if (rpc && gw_metrics_rpc_map(rpc, names, n, g->rpc_slot) != 0)
		goto out;
	g->rpc = rpc;
	for (size_t i = 0; i < n; i++)
		g->rpc_cells[i] = rpc ? gw_metrics_rpc_cells(rpc, g->rpc_slot[i]) : NULL;
	rc = 0;
out:
	free(names);
	return rc;
}

struct gw_gen *gw_gen_new(struct gw_config *cfg, struct gw_metrics_rpc *rpc)
{
	struct gw_gen *g = calloc(1, sizeof *g);
	struct gw_gen *ret = NULL;

	if (!g)
		return NULL;
	if (gen_map_rpc(g, cfg, rpc) != 0)
		goto out;
	g->keys = gw_apikey_ring_new(cfg);
	if (!g->keys)
		goto out;
	g->cfg = cfg;
	g->refs = 1;
	g->rpc_refs = 1;
	ret = g;
	g = NULL;
out:
	if (g) {
		if (g->rpc)
			gw_metrics_rpc_unmap(g->rpc, g->rpc_slot, cfg->ntenants);
		free(g->rpc_slot);
		free(g->rpc_cells);
		free(g);
	}
	return ret;
}

struct gw_gen *gw_gen_get(struct gw_gen *g)
{
	g->refs++;
	g->rpc_refs++;
	return g;
}

struct gw_gen *gw_gen_get_cfg(struct gw_gen *g)
{
	g->refs++;
	return g;
}

/* The last reference that may count is gone: the tenants' series go back (see env.h). */
static void gen_unmap_rpc(struct gw_gen *g)
{
	if (g->rpc)
		gw_metrics_rpc_unmap(g->rpc, g->rpc_slot, g->cfg->ntenants);
	g->rpc = NULL;
	for (size_t i = 0; i < g->cfg->ntenants; i++)
		g->rpc_cells[i] = NULL;
}

static void gen_free(struct gw_gen *g)
{
	gen_unmap_rpc(g);	/* done already unless the references were unbalanced */
	free(g->rpc_slot);
	free(g->rpc_cells);
	gw_apikey_ring_free(g->keys);
	gw_config_free(g->cfg);
	free(g);
}

void gw_gen_put(struct gw_gen *g)
{
	if (!g)
		return;
	if (g->rpc_refs && !--g->rpc_refs)
		gen_unmap_rpc(g);
	if (!--g->refs)
		gen_free(g);
}

void gw_gen_put_cfg(struct gw_gen *g)
{
	if (g && !--g->refs)
		gen_free(g);
}

void *gw_env_svc(const struct gw_env *env, const struct gw_svc *desc)
{
	for (size_t i = 0; i < env->nsvcs; i++)
		if (env->svcs[i].desc == desc)
			return env->svcs[i].state;
	return NULL;
}
