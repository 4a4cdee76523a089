/*
 * server: the ONE server struct, the gRPC server on gRPC core, the completion-queue poller and
 * the process lifecycle (start, SIGHUP reload, SIGTERM drain).
 *
 * Threading (see DESIGN.md): one poller thread blocks in grpc_completion_queue_next() and hands
 * each {tag, ok} to the libevent loop through gateway/base/handoff.h (a bounded ring + event_active()).
 * Everything else, every field below except inside the hand-off, is owned by the loop thread.
 *
 * Tags on the completion queue are always a struct gw_tag *: the loop dispatches on its kind.
 *
 * Configuration generations: srv->conf is the current {config, keyring}. A call takes a
 * reference when it authenticates (gw_server_conf_get) and drops it when freed
 * (gw_server_conf_put), so a SIGHUP reload can swap in a new generation while calls still read
 * the old tenant structs. Upstream accounts are built once from the boot configuration; a reload
 * that changes accounts is refused (restart to apply), and the boot generation stays alive
 * until exit because account runtimes may point into it.
 */
#ifndef A3D_GATEWAY_SERVER_H
#define A3D_GATEWAY_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <grpc/grpc.h>

#include "gateway/call/call.h"
#include "gateway/svc/health.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"
#include "gateway/base/stats.h"

#define GW_SERVER_ARMED_PER_METHOD 8	/* requests kept armed per method (gw_call_arm) */
#define GW_SERVER_ANON_LOG_PER_S 20	/* access lines per second of calls without a tenant */
#define GW_SERVER_DEFAULT_GRACE_MS 5000		/* drain period on SIGTERM */
#define GW_SERVER_MAX_GRACE_MS 600000
#define GW_SERVER_MAX_PEM_BYTES (256u << 10)	/* TLS files larger than this are refused */
#define GW_SERVER_HOUSEKEEPING_S 60		/* idempotency key expiry runs this often */
#define GW_SERVER_IDEM_SLOTS 4096		/* buckets of the "last unsettled attempt" table */
#define GW_SERVER_DRAIN_POLL_MS 20		/* how often a drain looks for "nothing left in flight" */

struct event_base;
struct event;
struct gw_config;
struct gw_keyring;
struct gw_account_rt;
struct gw_upstream;
struct gw_http;
struct gw_store;
struct gw_owner;
struct gw_webhook_reg;
struct gw_handoff;
struct gw_config_async;
struct gw_memguard;

/* What a completion-queue tag points at. */
enum gw_tag_kind {
	GW_TAG_CALL_NEW = 1,	/* a requested call arrived (or the request was cancelled) */
	GW_TAG_CALL_CLOSE,	/* RECV_CLOSE_ON_SERVER completed */
	GW_TAG_CALL_SEND,	/* a send batch completed */
	GW_TAG_CALL_RECV,	/* a RECV_MESSAGE batch completed (client streaming) */
	GW_TAG_SHUTDOWN		/* grpc_server_shutdown_and_notify completed */
};
struct gw_tag {
	enum gw_tag_kind kind;
	void *owner;		/* the struct gw_call, or the server */
};

/* One configuration generation; refcounted, see above. */
struct gw_server_conf {
	struct gw_config *cfg;
	struct gw_keyring *keys;
	unsigned refs;
};

struct gw_server {
	struct event_base *base;
	grpc_server *grpc;
	grpc_completion_queue *cq;

	/* Configuration: cfg == conf->cfg, the current generation (read-only). */
	struct gw_config *cfg;
	struct gw_server_conf *conf;
	struct gw_server_conf *boot_conf;	/* accounts were built from this one */
	char *config_path;

	/* Upstream: one runtime per cfg->accounts entry, index-aligned (auth/upstream/session.h). */
	struct gw_account_rt *accounts;
	size_t naccounts;
	struct gw_upstream *up;

	/* Method table (gateway/rpc.h) and the registered-method handles, index-aligned. */
	struct gw_method *methods;
	size_t nmethods;
	void **method_handles;

	struct gw_stats stats;
	struct gw_metrics metrics;		/* latency histograms, upstream route/status (metrics.h) */
	struct gw_health health;
	struct gw_http *http;
	struct gw_webhook_reg *webhook_reg;	/* start-up endpoint registration (webhook_reg.h); NULL = off */

	/* Durable state (gateway/state/store.h) and the ownership / idempotency policy on it
	 * (gateway/state/owner.h). Opened from the boot configuration; a reload may not change state.*. */
	struct gw_store *store;
	struct gw_owner *owner;
	struct event *ev_housekeeping;
	uint64_t detached_ops;		/* idempotent StartJob transfers outliving their call (gauge) */
	/* When a /process attempt may last have been on its way upstream: the process start for
	 * keys left by an earlier process, and per (tenant, key) bucket the last attempt that ended
	 * with an unknown outcome here (buckets shared by several keys keep the latest: a longer
	 * wait, never a shorter one). See gateway/svc/rpc_idem.h (reconcile settle). */
	int64_t started_wall_ms;
	int64_t idem_unsettled_ms[GW_SERVER_IDEM_SLOTS];

	/* Lifecycle. */
	int started;
	int grpc_inited;		/* grpc_init() called: grpc_shutdown() at free */
	int grpc_port;			/* the bound port (useful with ":0") */
	const char *version;		/* static build version for /metrics, set by main */
	int draining;			/* SIGTERM/SIGINT seen: no new calls, health NOT_SERVING */
	int shutdown_notified;		/* grpc_server_shutdown_and_notify issued */
	int cq_shut;			/* the completion queue reported GRPC_QUEUE_SHUTDOWN */
	long grace_ms;
	struct gw_tag shutdown_tag;
	int drain_cut;			/* nothing was left in flight: connections closed early */
	struct event *ev_term, *ev_int, *ev_hup, *ev_grace;
	struct gw_config_async *reload;	/* SIGHUP's loader thread (gateway/config/config_async.h) */
	struct gw_memguard *memguard;	/* RSS ceiling (gateway/base/memguard.h); NULL = none */
	struct gw_lograte anon_rpc_log;	/* access lines of calls without a tenant, rate-limited */
	struct event *ev_drain_poll;	/* while draining: ends the drain once nothing is in flight */
	uint64_t next_call_id;

	/* Poller thread -> loop (the only state shared between threads lives in the hand-off). */
	pthread_t poller;
	int poller_running;
	struct gw_handoff *handoff;
};

/*
 * Creates the server: event base, config generation (takes ownership of cfg), API key ring,
 * state store (SQLite at state.path, or memory) and owner policy, account runtimes, upstream
 * engine, gRPC server with every method registered, listeners bound.
 * On failure returns NULL and writes one clear line to err (never a secret); cfg is freed.
 * A corrupt, unwritable or locked state file is such a failure (main exits 1): ownership is
 * never silently dropped. With state.read_only an existing file is opened read-only.
 */
struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path, long grace_ms,
				char *err, size_t errlen);
/* Runs the loop until a SIGTERM/SIGINT drain completes. Returns 0 on a clean exit. */
int gw_server_run(struct gw_server *srv);
/* Frees everything; safe on a server that never ran. NULL is a no-op. */
void gw_server_free(struct gw_server *srv);

/* Starts the drain (what SIGTERM does); exposed for tests. Calls in flight get up to grace_ms to
 * finish; once none is left (at once when none was), the remaining client connections are closed
 * instead of waiting for their clients to hang up after GOAWAY, and the process can exit. */
void gw_server_drain(struct gw_server *srv, const char *why);
/* Reloads config_path now, on the calling thread: 0 swapped, -1 kept the old one (errors logged).
 * SIGHUP does the same, but reads and parses the file on a worker thread first. */
int gw_server_reload(struct gw_server *srv);

/* Config generations for calls. */
struct gw_server_conf *gw_server_conf_get(struct gw_server *srv);
void gw_server_conf_put(struct gw_server *srv, struct gw_server_conf *conf);

/* Monotonic milliseconds, for latencies and timers. */
int64_t gw_server_now_us(void);
/* Wall-clock milliseconds since the epoch: the state store's timestamps (they outlive restarts). */
int64_t gw_server_wall_ms(void);

#endif
