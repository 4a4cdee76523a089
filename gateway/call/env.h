/*
 * env: what calls and services reach, instead of the server struct: the loop, the gRPC server
 * handles, the configuration generation, the upstream engine and its accounts, the state store,
 * the tenants' buckets, the registered services and the counters. The top (gateway/server.c)
 * owns one, embedded in its server struct, fills it and frees what it points to; nothing below
 * the top sees the server struct.
 *
 * Configuration generations: env->gen is the current {config, keyring}. A call takes a reference
 * when it authenticates (gw_gen_get) and drops it when freed (gw_gen_put), so a SIGHUP reload can
 * swap in a new generation while calls still read the old tenant structs. After the swap the top
 * emits env->reload (data: the new const struct gw_config *): modules that keep per-config state
 * (tenant buckets, account caps) subscribe to it. Accounts, listeners and the state store are
 * built once from env->boot_cfg, which stays alive until exit.
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_ENV_H
#define A3D_GATEWAY_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/grpc.h>

#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"
#include "gateway/base/notify.h"
#include "gateway/base/stats.h"
#include "gateway/base/trace.h"

struct event_base;
struct gw_config;
struct gw_keyring;
struct gw_method;
struct gw_svc;
struct gw_upstream;
struct gw_account_rt;
struct gw_store;
struct gw_owner;
struct gw_admit;
struct gw_climit;
struct gw_otlp;

/* One configuration generation; refcounted, see above. Its tenants' RPC series
 * (gateway/base/metrics.h) are mapped when it is made and given back when the last reference
 * that may count into them goes (every reference but those of gw_gen_get_cfg): a call keeps
 * rpc_cells[its tenant index] and counts there at its end, no lookup. */
struct gw_gen {
	struct gw_config *cfg;
	struct gw_keyring *keys;
	struct gw_metrics_rpc *rpc;		/* where the slots below are held; NULL: none */
	uint32_t *rpc_slot;			/* [cfg->ntenants] */
	struct gw_metrics_rpc_cell **rpc_cells;	/* [cfg->ntenants] */
	unsigned refs;				/* every reference */
	unsigned rpc_refs;			/* of which may count into the series */
};

/* A service the top registered, and the state its init made. */
struct gw_svc_rt {
	const struct gw_svc *desc;
	void *state;
};

#define GW_ENV_INSTANCE_MAX 96		/* = GW_STORE_LEASE_MAX: the instance holds leases */

struct gw_env {
	struct event_base *base;

	/* The gRPC server (created by the top); method rows and their registered handles and
	 * service states, index-aligned. */
	grpc_server *grpc;
	grpc_completion_queue *cq;
	const struct gw_method *methods;
	size_t nmethods;
	void **method_handles;
	void **method_state;
	struct gw_svc_rt *svcs;
	size_t nsvcs;

	/* Configuration: cfg == gen->cfg. */
	struct gw_gen *gen;
	const struct gw_config *cfg;
	const struct gw_config *boot_cfg;
	struct gw_notify reload;

	/* What requests reach. */
	struct gw_upstream *up;
	struct gw_account_rt *accounts;		/* index-aligned with boot_cfg->accounts */
	size_t naccounts;
	struct gw_store *store;
	struct gw_owner *owner;
	struct gw_redis *redis;			/* cluster coordination (gateway/cluster/redis.h); NULL
						 * without redis: in the config */
	struct gw_climit *climit;		/* shared rate limits on redis (gateway/cluster/climit.h),
						 * used by admit and the upstream accounts; NULL without redis */
	struct gw_admit *admit;			/* tenants' token buckets (gateway/call/admit.h) */
	struct gw_connguard *connguard;		/* per-connection reset limit (gateway/base/
						 * connguard.h); NULL: none */
	struct gw_otlp *otlp;			/* span export (gateway/base/otlp.h); NULL: off */

	/* Counters and metrics, written on the loop. */
	struct gw_stats stats;
	struct gw_metrics metrics;
	struct gw_metrics_reg metrics_reg;	/* renderers /metrics walks */

	struct gw_lograte anon_rpc_log;		/* access lines of calls without a tenant */
	int started;				/* the gRPC server runs (calls may arrive) */
	int draining;				/* SIGTERM seen: no new calls */
	struct gw_trace_rng trace_rng;		/* random request, trace and span ids of calls */
	int64_t started_wall_ms;		/* process start, for the state store's clocks */
	char instance[GW_ENV_INSTANCE_MAX + 1];	/* this process: host name + random per-boot
						 * nonce (leases, logs, metrics) */
};

/* A new generation owning cfg (and a key ring built from it), one reference, its tenants' RPC
 * series mapped in rpc (NULL: calls of its tenants are counted as none's). NULL when memory, the
 * key ring or the series table (full: gw_metrics_rpc_map) fails; cfg is then still the
 * caller's. rpc must outlive the generation. */
struct gw_gen *gw_gen_new(struct gw_config *cfg, struct gw_metrics_rpc *rpc);
struct gw_gen *gw_gen_get(struct gw_gen *g);
/* Drops a reference; the last one frees the config and the key ring. NULL is a no-op. */
void gw_gen_put(struct gw_gen *g);
/* A reference to the configuration only, that never counts a call (the top's hold on the boot
 * configuration, which lives until exit): it does not keep the tenants' series, so a tenant a
 * reload removes leaves /metrics once its last call has ended. Dropped with gw_gen_put_cfg. */
struct gw_gen *gw_gen_get_cfg(struct gw_gen *g);
void gw_gen_put_cfg(struct gw_gen *g);

/* The state of the registered service desc, or NULL when it is not registered. */
void *gw_env_svc(const struct gw_env *env, const struct gw_svc *desc);

#endif
