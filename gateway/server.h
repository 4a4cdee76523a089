/*
 * server: the ONE server struct, the gRPC server on gRPC core, the completion-queue poller and
 * the process lifecycle (start, SIGHUP reload, SIGTERM drain). The top of the layers: it builds
 * everything below from the configuration, the method table and the services
 * (gateway/methods.h), and hands lower layers only the environment (gateway/call/env.h).
 *
 * Threading (see DESIGN.md): one poller thread blocks in grpc_completion_queue_next() and hands
 * each {tag, ok} to the libevent loop through gateway/base/handoff.h (a bounded ring +
 * event_active()). That queue does no I/O (GRPC_CQ_NON_POLLING): the sockets are polled by a
 * second thread on a queue of their own that never carries a tag (io_cq). gRPC core's read of a
 * connection runs for as long as bytes keep arriving on it, and under a rapid-reset flood a
 * poller that also read sockets delivered at most about 1000 calls a second to the loop while it
 * created tens of thousands, which piled up in memory. The I/O thread runs niced
 * (grpc.io_thread_nice), and a third thread, the stream guard's (gateway/base/streamguard.h),
 * reads gRPC core's per-connection counters, shuts down connections that reset too many
 * streams, and stops the I/O thread for a tick (gateway/base/iobrake.h) while calls pour in
 * faster than the loop takes them and memory is high; it shares with the loop only the connection
 * guard's list of closed connections (under its mutex). Everything else, every field below except
 * inside the hand-off, is owned by the loop thread. Tags on the completion queue are always a
 * struct gw_tag * (call.h).
 *
 * Configuration generations: env.gen is the current {config, keyring}; a SIGHUP reload parses the
 * file, swaps in a new generation when it is valid and emits env.reload. Upstream accounts,
 * listeners and the state store are built once from the boot generation; a reload that changes
 * accounts or state is refused (restart to apply), and the boot generation stays alive until exit.
 */
#ifndef A3D_GATEWAY_SERVER_H
#define A3D_GATEWAY_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <grpc/grpc.h>

#include "gateway/call/call.h"
#include "gateway/call/env.h"

#define GW_SERVER_ARMED_PER_METHOD 8	/* requests kept armed per method (gw_call_arm) */
#define GW_SERVER_DEFAULT_GRACE_MS 5000		/* drain period on SIGTERM */
#define GW_SERVER_MAX_GRACE_MS 600000
#define GW_SERVER_MAX_PEM_BYTES (256u << 10)	/* TLS files larger than this are refused */
#define GW_SERVER_HOUSEKEEPING_S 60		/* idempotency key expiry runs this often */
#define GW_SERVER_STORE_SETTLE_MS 2000		/* at exit: store operations still out get this long */
#define GW_SERVER_REDIS_SETTLE_MS 300		/* at exit: Redis commands still out (a login lock
						 * freed by a replica stopped mid-login) */
#define GW_SERVER_REDIS_MAX_PENDING 4096	/* Redis commands waiting for their reply */
#define GW_SERVER_DRAIN_POLL_MS 20		/* how often a drain looks for "nothing left in flight" */

struct event;
struct gw_config;
struct gw_http;
struct gw_rest;
struct gw_handoff;
struct gw_config_async;
struct gw_memguard;

struct gw_server {
	struct gw_env env;		/* what calls and services reach (gateway/call/env.h) */
	struct gw_gen *boot_gen;	/* accounts, listeners and state were built from this */
	char *config_path;
	struct gw_http *http;
	struct gw_rest *rest;		/* the REST facade (gateway/rest.h); NULL without listen.rest */
	struct event *ev_housekeeping;
	int64_t last_expiry_ms;		/* wall clock of the last idempotency key expiry */
	const char **method_names;	/* per method row: name and cost, for the admission */
	unsigned *method_costs;

	/* Lifecycle. */
	int started;
	int grpc_inited;		/* grpc_init() called: grpc_shutdown() at free */
	int grpc_port;			/* the bound port (useful with ":0") */
	const char *version;		/* static build version for /metrics, set by main */
	int shutdown_notified;		/* grpc_server_shutdown_and_notify issued */
	int cq_shut;			/* the completion queue reported GRPC_QUEUE_SHUTDOWN */
	long grace_ms;
	struct gw_tag shutdown_tag;
	int drain_cut;			/* nothing was left in flight: connections closed early */
	struct event *ev_term, *ev_int, *ev_hup, *ev_grace;
	struct gw_config_async *reload;	/* SIGHUP's loader thread (gateway/config/config_async.h) */
	struct gw_memguard *memguard;	/* RSS ceiling (gateway/base/memguard.h); NULL = none */
	struct gw_iobrake *iobrake;	/* stops the I/O thread under a call flood (gateway/base/
					 * iobrake.h), ticked by the stream guard; NULL = none */
	struct gw_streamguard *streamguard;	/* reset rate from gRPC core's counters (gateway/
						 * base/streamguard.h); NULL = none */
	struct event *ev_drain_poll;	/* while draining: ends the drain once nothing is in flight */

	/* Poller thread -> loop (the only state shared between threads lives in the hand-off). */
	pthread_t poller;
	int poller_running;
	grpc_completion_queue *io_cq;	/* polled for I/O only, by io_thread */
	pthread_t io_thread;
	int io_running;
	struct gw_handoff *handoff;
};

/*
 * Creates the server: event base, config generation (takes ownership of cfg), state store (SQLite
 * at state.path, or memory) and owner policy, upstream engine, account runtimes, tenant buckets,
 * the services of gateway/methods.h, the gRPC server with every method registered, listeners
 * bound. On failure returns NULL and writes one clear line to err (never a secret); cfg is freed.
 * A corrupt, unwritable or locked state file is such a failure (main exits 1): ownership is never
 * silently dropped. With state.read_only an existing file is opened read-only.
 */
struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path, long grace_ms,
				char *err, size_t errlen);
/* Runs the loop until a SIGTERM/SIGINT drain completes. Returns 0 on a clean exit. */
int gw_server_run(struct gw_server *srv);
/* Frees everything; safe on a server that never ran. NULL is a no-op. */
void gw_server_free(struct gw_server *srv);

/*
 * The PostgreSQL state store of a state.postgres section (its password loaded from its file or
 * environment and wiped after the connect): connected and migrated, with pool connections named
 * appname in pg_stat_activity. NULL with err. The server opens its store with it; so does the
 * usage export (gateway/usage_csv.h).
 */
struct event_base;
struct gw_pg_cfg;
struct gw_store *gw_server_open_pg(struct event_base *base, const struct gw_pg_cfg *pc,
				   const char *appname, unsigned pool, char *err, size_t errlen);

/* Starts the drain (what SIGTERM does); exposed for tests. Calls in flight get up to grace_ms to
 * finish; once none is left (at once when none was), the remaining client connections are closed
 * instead of waiting for their clients to hang up after GOAWAY, and the process can exit. */
void gw_server_drain(struct gw_server *srv, const char *why);
/* Reloads config_path now, on the calling thread: 0 swapped, -1 kept the old one (errors logged).
 * SIGHUP does the same, but reads and parses the file on a worker thread first. */
int gw_server_reload(struct gw_server *srv);

#endif
