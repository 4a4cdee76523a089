/*
 * config: the gateway's YAML configuration, parsed whole into one struct.
 *
 * gw_config_load() parses the file, reports every error it finds as "file:line: message"
 * (never stopping at the first), then checks cross-field rules (a tenant's account exists,
 * listeners differ, ...). On success *out owns everything; free it with gw_config_free().
 * Secrets are never in this struct: an account names where its secret lives (file or env),
 * and auth/upstream/secret.c reads it. Reload (SIGHUP) loads a new struct and swaps it in only if valid.
 */
#ifndef A3D_GATEWAY_CONFIG_H
#define A3D_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_CONFIG_MAX_ERRORS 64
#define GW_CONFIG_MAX_BYTES (1u << 20)	/* a config file larger than this is refused */
#define GW_CONFIG_MAX_ANCHORS 64		/* YAML anchors (&name) in one file; more are refused
					 * before libyaml loads it (its anchor lookup is quadratic) */
#define GW_CONFIG_MAX_ACCOUNTS 64		/* entries in accounts[] */
#define GW_CONFIG_MAX_TENANTS 1024		/* entries in tenants[] */
#define GW_CONFIG_MAX_KEYS 64			/* keys[] per tenant */
#define GW_CONFIG_MAX_STRING 4096		/* any one string value, in bytes */
#define GW_CONFIG_MAX_CERT_CN 256		/* tenants[].client_cert.cn, in bytes */
#define GW_CONFIG_MAX_BATCH 500			/* cache.batch_max: rids in one GET /status URL */
#define GW_CONFIG_MAX_COSTS 64			/* entries of one rate.costs table */
#define GW_CONFIG_METHOD_NAME_MAX 64		/* a method's short name, NUL included */
#define GW_CONFIG_CHUNK_UNIT (256u << 10)	/* upload_chunk_bytes must be a multiple of this */
#define GW_CONFIG_MAX_IDEM_TTL_S (30ll * 86400)	/* state.idempotency_ttl_s upper bound */
#define GW_CONFIG_DEFAULT_SETTLE_MS 30000	/* state.reconcile_settle_ms */
#define GW_CONFIG_MAX_WEBHOOK_PREFIX 128	/* webhooks.path_prefix, in bytes */
#define GW_CONFIG_MAX_PUBLIC_URL 512		/* webhooks.public_url, in bytes */
#define GW_CONFIG_DEFAULT_WEBHOOK_PREFIX "/webhooks/animate3d/"
#define GW_CONFIG_MAX_SLOTS 1000000		/* any count cap (uploads, streams, keys in flight) */
#define GW_CONFIG_MAX_BUDGET_MIN 100000000LL	/* tenants[].budget.minutes_per_month */
#define GW_CONFIG_MAX_HEALTH_WATCH 4096		/* watch.health_max_streams (= GW_HEALTH_MAX_WATCHERS) */
#define GW_CONFIG_PG_MAX_EXTRA 16		/* state.postgres.dsn keywords passed through to libpq */
#define GW_CONFIG_PG_MAX_POOL 32		/* state.postgres.pool (= GW_PG_MAX_POOL, gateway/state/pg.h) */
#define GW_CONFIG_PG_DEFAULT_POOL 4
#define GW_CONFIG_PG_DEFAULT_PORT 5432
#define GW_CONFIG_PG_DEFAULT_TIMEOUT_MS 5000	/* state.postgres.timeout_ms, 100..60000 */
#define GW_CONFIG_MAX_REPLICAS 1000		/* cluster.expected_replicas */
#define GW_CONFIG_REDIS_DEFAULT_PORT 6379
#define GW_CONFIG_REDIS_MAX_DB 15		/* redis.url's /db, 0..15 (Redis's default 16 databases) */
#define GW_CONFIG_REDIS_PREFIX_MAX 32		/* redis.key_prefix, in bytes */
#define GW_CONFIG_REDIS_DEFAULT_PREFIX "a3d:"
#define GW_CONFIG_REDIS_DEFAULT_CONNECT_MS 2000	/* redis.connect_timeout_ms, 100..60000 */
#define GW_CONFIG_REDIS_DEFAULT_COMMAND_MS 500	/* redis.command_timeout_ms, 10..10000 */
#define GW_CONFIG_MAX_DEPTH 32			/* nested mappings/lists; deeper files are refused
						 * before libyaml loads them (its scanner is
						 * quadratic in flow nesting) */

/* Defaults for what the file leaves out. */
#define GW_CONFIG_DEFAULT_GRPC_LISTEN "127.0.0.1:50051"
#define GW_CONFIG_DEFAULT_LOG_LEVEL "info"
#define GW_CONFIG_DEFAULT_STATUS_TTL_MS 1000
#define GW_CONFIG_DEFAULT_MAX_ENTRIES 200000
#define GW_CONFIG_DEFAULT_BATCH_WINDOW_MS 5
#define GW_CONFIG_DEFAULT_BATCH_MAX 50
#define GW_CONFIG_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define GW_CONFIG_DEFAULT_TIMEOUT_MS 30000
#define GW_CONFIG_DEFAULT_MAX_RESPONSE (8u << 20)
#define GW_CONFIG_DEFAULT_MAX_MESSAGE (4u << 20)
#define GW_CONFIG_DEFAULT_UPLOAD_CHUNK (4u << 20)
/* Long-lived resources (issue 13): defaults of the uploads, watch and webhooks sections. */
#define GW_CONFIG_DEFAULT_UPLOADS_MAX 32	/* x (chunk + message) = 384 MiB of buffers at most */
#define GW_CONFIG_DEFAULT_UPLOAD_IDLE_MS 30000
#define GW_CONFIG_DEFAULT_WATCH_MAX 20000
#define GW_CONFIG_DEFAULT_HEALTH_WATCH_MAX 256
#define GW_CONFIG_DEFAULT_HEALTH_WATCH_PEER 32
/* Tenant webhook delivery (issue 17): defaults of webhooks.delivery. */
#define GW_CONFIG_DEFAULT_WH_PER_ENDPOINT 4		/* deliveries in flight per endpoint */
#define GW_CONFIG_DEFAULT_WH_TIMEOUT_MS 10000		/* one delivery attempt, connect included */
#define GW_CONFIG_DEFAULT_WH_GIVE_UP_S 86400		/* an event retried this long is failed */
#define GW_CONFIG_DEFAULT_WH_DISABLE_AFTER_S 86400	/* an endpoint failing this long is disabled */
#define GW_CONFIG_MAX_WH_PER_ENDPOINT 64
#define GW_CONFIG_MAX_WH_TIMEOUT_MS 60000
#define GW_CONFIG_MAX_WH_S (30L * 86400)
#define GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_RATE 50.0	/* webhook-triggered refreshes/s per account */
#define GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_BURST 200.0
#define GW_CONFIG_DEFAULT_TOKEN_GRACE_S 600	/* the previous path token works this long */
#define GW_CONFIG_MAX_TOKEN_GRACE_S 86400
/* follower: the job follower (issue 17, gateway/svc/follower.h). */
#define GW_CONFIG_DEFAULT_FOLLOW_RATE 20.0		/* its own status polls per second, all accounts */
#define GW_CONFIG_DEFAULT_FOLLOW_INTERVAL_MS 10000	/* first poll of a job, and shortest period */
#define GW_CONFIG_DEFAULT_FOLLOW_MAX_INTERVAL_MS 300000	/* the backoff's longest period */
#define GW_CONFIG_DEFAULT_FOLLOW_QUIET_MS 600000	/* with upstream webhooks: poll after this */
#define GW_CONFIG_DEFAULT_FOLLOW_SCAN_MS 5000		/* new unsettled jobs are loaded this often */
#define GW_CONFIG_DEFAULT_FOLLOW_MAX_JOBS 100000	/* jobs followed at once */
#define GW_CONFIG_MAX_FOLLOW_JOBS 1000000
/* balance: the upstream balance poller (issues 20 and 22, gateway/svc/balance.h). */
#define GW_CONFIG_DEFAULT_BALANCE_POLL_S 60		/* seconds between polls of each account */
#define GW_CONFIG_MAX_BALANCE_POLL_S 86400
/* process:, http:, grpc: (config_net.c) */
#define GW_CONFIG_DEFAULT_FD_RESERVE 256
#define GW_CONFIG_DEFAULT_MEMORY_MIB 512
#define GW_CONFIG_DEFAULT_GRPC_STREAMS 256
#define GW_CONFIG_DEFAULT_GRPC_IDLE_MS 300000
#define GW_CONFIG_DEFAULT_GRPC_AGE_MS 3600000
#define GW_CONFIG_DEFAULT_GRPC_AGE_GRACE_MS 300000
#define GW_CONFIG_DEFAULT_KEEPALIVE_MS 60000
#define GW_CONFIG_DEFAULT_KEEPALIVE_TIMEOUT_MS 20000
#define GW_CONFIG_DEFAULT_MIN_PING_MS 300000
#define GW_CONFIG_DEFAULT_PING_STRIKES 2
#define GW_CONFIG_DEFAULT_METADATA_BYTES 8192
#define GW_CONFIG_DEFAULT_HANDSHAKE_MS 10000
#define GW_CONFIG_DEFAULT_PROBE_INTERVAL_MS 5000
#define GW_CONFIG_DEFAULT_PROBE_TIMEOUT_MS 2000
#define GW_CONFIG_DEFAULT_PROBE_FAILURES 3
#define GW_CONFIG_DEFAULT_REST_BODY (64u << 10)	/* JSON bodies of /process etc. are small */
#define GW_CONFIG_DEFAULT_REST_HEADERS 8192
#define GW_CONFIG_DEFAULT_REST_TIMEOUT_S 10
#define GW_CONFIG_DEFAULT_REST_CALL_MS 30000
#define GW_CONFIG_DEFAULT_REST_SESSION_S 3600	/* as upstream's dmsess lifetime */
#define GW_CONFIG_DEFAULT_MAX_RESETS_PER_S 100
#define GW_CONFIG_DEFAULT_SHED_BACKLOG_KIB 32
#define GW_CONFIG_DEFAULT_IO_THREAD_NICE 10

struct gw_errors {
	size_t n;
	char *msg[GW_CONFIG_MAX_ERRORS];	/* "file:line: message", malloc'd */
	size_t dropped;				/* errors past the limit, counted */
};
/* Appends "file:line: message" ("file: message" when line <= 0). Past GW_CONFIG_MAX_ERRORS, or
 * when memory runs out, the error is only counted in dropped. */
void gw_errors_add(struct gw_errors *e, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void gw_errors_clear(struct gw_errors *e);	/* frees every message; e is reusable (zeroed) */

/* rate.costs / tenants[].rate.costs: { StartJob: 5, GetStatus: 1, ... }, the short names of
 * methods of the API (gw_config_method_known), each cost 0..GW_RATELIMIT_MAX_COST (0: the method
 * never takes a token), each method at most once. */
struct gw_costs_cfg {
	struct {
		char method[GW_CONFIG_METHOD_NAME_MAX];
		unsigned cost;
	} e[GW_CONFIG_MAX_COSTS];
	size_t n;
};
/* The cost c gives method (a short name, "StartJob"), or -1 when c does not name it. */
long gw_config_cost(const struct gw_costs_cfg *c, const char *method);
/* 1 when name is the short name of a method of the API's services (proto/animate3d/v1), read
 * from the compiled service descriptors, so a new method is known without a table here. */
int gw_config_method_known(const char *name);

struct gw_account_cfg {
	char *name;
	char *base_url;			/* e.g. http://127.0.0.1:8090, no trailing slash */
	char *client_id;
	char *secret_file;		/* exactly one of secret_file / secret_env is set */
	char *secret_env;
	int secret_line;		/* line of client_secret_file, for --check-config's messages */
	double rate_per_second;		/* upstream requests/s cap for this account (0 = none) */
	unsigned max_concurrent;	/* in-flight upstream requests cap (0 = none) */
	unsigned max_queue;		/* calls waiting for a slot (0 = the most, GW_ADM_MAX_QUEUE) */
	int line;
};

struct gw_key_cfg {
	uint8_t sha256[32];		/* SHA-256 of the API key; the key itself is never stored */
	unsigned perms;			/* enum gw_perm bits */
	int line;
};

/* tenants[].budget.window: the calendar month in UTC, or the last 30 days. */
enum { GW_BUDGET_WINDOW_MONTH = 0, GW_BUDGET_WINDOW_ROLLING_30D = 1 };

struct gw_tenant_cfg {
	char *name;
	char *account;			/* name of an entry in accounts */
	size_t account_idx;		/* resolved by the cross-field check */
	int account_line;		/* line of the account: key, for error messages */
	struct gw_key_cfg *keys;	/* may be empty: a tenant reached only through mTLS, say */
	size_t nkeys;
	double rate_per_second;		/* token bucket refill; 0 = unlimited (no rate: in the file) */
	double burst;			/* bucket size; defaults to max(per_second, 1) */
	struct gw_costs_cfg costs;	/* rate.costs: this tenant's method costs over the global ones */
	int see_foreign_jobs;		/* may read jobs created outside the gateway */
	/* tenants[].limits: this tenant's share of the long-lived resources, over the defaults (0 =
	 * not set: the section's *_per_tenant value, else a fair share of the global cap, see
	 * gw_config_tenant_cap). */
	struct {
		unsigned uploads;		/* UploadVideo streams open at once */
		unsigned watch_streams;		/* WatchStatus streams open at once */
		unsigned start_jobs_in_flight;	/* idempotent StartJob keys in flight (detached too) */
		unsigned start_job_waiters;	/* duplicate keyed StartJobs waiting for the first */
	} limits;
	/* tenants[].budget (issue 22, gateway/svc/budget.h): minutes of processed video per
	 * window, enforced at StartJob (hard) or only logged and counted (soft). */
	struct {
		int enabled;			/* budget: is present */
		long long minutes;		/* minutes_per_month, 0..GW_CONFIG_MAX_BUDGET_MIN */
		int hard;			/* default true: over it StartJob is refused */
		int count_failed;		/* default false: failed jobs release their minutes */
		int window;			/* GW_BUDGET_WINDOW_*: month (default) or rolling_30d */
		int line;
	} budget;
	/* mTLS: a call without API key whose verified client certificate has this subject CN acts
	 * as this tenant with client_cert_perms (client_cert: {cn, permissions}); NULL = none. */
	char *client_cert_cn;
	unsigned client_cert_perms;
	int client_cert_line;
	int line;
};

/*
 * process:, http:, grpc: — how much of the machine one gateway may take, and how the gRPC transport
 * treats connections (config_net.c; docs/operations.md, "Abuse limits"). Read at start-up only: a
 * reload that changes them warns and keeps the running values. 0 in a *_ms duration means "no
 * limit" (the gRPC default) unless said otherwise.
 */
struct gw_process_cfg {
	unsigned open_files_reserve;	/* fds no listener's connections may take: upstream, state,
					 * logs, the probe (checked against RLIMIT_NOFILE at start) */
	unsigned memory_mib;		/* RSS ceiling the memory guard holds; 0 = no guard */
};
struct gw_http_cfg {
	unsigned max_connections;	/* open HTTP connections; 0 = min(1024, (fds - reserve) / 2) */
};
/* rest: the REST facade's listener (gateway/rest.h). Its connections come out of what the admin
 * listener leaves: its automatic cap is min(1024, (fds - reserve - admin cap) / 2). */
struct gw_rest_cfg {
	unsigned max_connections;	/* open REST connections; 0 = automatic, as above */
	unsigned max_body_bytes;	/* a request body past this is 413 */
	unsigned max_header_bytes;	/* request line + headers past this is refused (431/400) */
	unsigned timeout_s;		/* a connection must complete each request within this */
	long call_timeout_ms;		/* a request's deadline in the pipeline (as a gRPC deadline) */
	long session_ttl_s;		/* dmsess cookies from GET /session/auth live this long */
};
struct gw_grpc_cfg {
	unsigned max_concurrent_streams;	/* per HTTP/2 connection (SETTINGS) */
	unsigned memory_quota_mib;	/* gRPC resource quota; 0 = process.memory_mib / 2 */
	long max_connection_idle_ms;	/* GOAWAY a connection without calls for this long */
	long max_connection_age_ms;	/* GOAWAY a connection this old (gRPC adds +-10% jitter) */
	long max_connection_age_grace_ms;	/* then close it this long after, calls or not */
	long keepalive_time_ms;		/* ping an idle connection this often */
	long keepalive_timeout_ms;	/* close it when the ping is not answered within this */
	long min_recv_ping_interval_ms;	/* client pings closer than this are strikes... */
	unsigned max_ping_strikes;	/* ...and this many strikes close the connection (0 = never) */
	unsigned max_metadata_bytes;	/* request headers, in bytes (HPACK-decoded) */
	long handshake_timeout_ms;	/* TLS handshake + the client's HTTP/2 SETTINGS, from accept */
	long probe_interval_ms;		/* self-probe of the gRPC listener; 0 = off */
	long probe_timeout_ms;		/* one probe's answer time, < probe_interval_ms */
	unsigned probe_failures;	/* failed probes in a row that make the listener dead */
	unsigned max_resets_per_s;	/* calls one connection's client cancels within a second
					 * before the connection is closed (rapid reset); 0 = never */
	unsigned shed_backlog_kib;	/* above half of process.memory_mib, connections with this
					 * much unread are closed; 0 = never */
	unsigned io_thread_nice;	/* nice value of the thread that runs gRPC core's I/O, so
					 * it cannot read calls faster than the loop takes them
					 * (rapid reset); 0 = the process's */
};

/*
 * state.postgres: where the PostgreSQL state lives (gateway/state/pg.h's struct gw_pg_opts is built
 * from it). The dsn (libpq conninfo "k=v ..." or a postgresql:// URI) is split here and checked:
 * one server named by IP literal (hostaddr, or a host= that is one; libpq resolves names
 * synchronously), no password or passfile in it, dbname and user set, only the keywords of
 * gw_config_pg_dsn()'s list. Like the accounts' secrets, the password itself is not in this struct:
 * password_file / password_env name where it lives (auth/upstream/secret.h, gw_secret_load_src()
 * reads it at start and in --check-config).
 */
struct gw_pg_cfg {
	int enabled;			/* state.postgres is set (the other fields are valid) */
	char *hostaddr;			/* IPv4 or IPv6 literal: the address connected to; never NULL */
	char *host;			/* host= when it is a name: only checked against the server
					 * certificate (sslmode verify-full), never resolved; NULL = none */
	unsigned port;			/* 1..65535, default 5432 */
	char *dbname;			/* never NULL */
	char *user;			/* never NULL */
	char *sslmode;			/* disable .. verify-full; NULL = libpq's default (prefer) */
	char *application_name;		/* NULL = the pool's default */
	/* The other keywords of the dsn, in its order (sslrootcert, sslcert, sslkey, keepalives...),
	 * for libpq as they are. */
	char *extra_keys[GW_CONFIG_PG_MAX_EXTRA];
	char *extra_values[GW_CONFIG_PG_MAX_EXTRA];
	size_t nextra;
	char *password_file;		/* at most one of these; neither = no password (trust, */
	char *password_env;		/* peer or certificate authentication) */
	int password_line;		/* line of password_file / password_env, for messages */
	unsigned pool;			/* connections, 1..GW_CONFIG_PG_MAX_POOL, default 4 */
	long timeout_ms;		/* per query and per connect, 100..60000, default 5000 */
	int line;			/* line of state.postgres */
};

/* Splits and checks a libpq dsn (conninfo or postgresql:// / postgres:// URI) into out's
 * connection fields (host .. extra_*; port defaults to 5432). Returns 0, or -1 with one message
 * in err ("state.postgres.dsn ...", never quoting a value that may be a password) and out's
 * connection fields freed. out's other fields are left alone. */
int gw_config_pg_dsn(const char *dsn, struct gw_pg_cfg *out, char *err, size_t errlen);
/* Frees the strings of c and zeroes it (NULL is fine). */
void gw_config_pg_free(struct gw_pg_cfg *c);

/* redis.fallback: what a replica does while Redis cannot be reached. */
enum gw_redis_fallback {
	GW_REDIS_FALLBACK_LOCAL = 0,	/* local buckets of limit / cluster.expected_replicas, local
					 * session and cache (the default and, for now, the only mode) */
};

/*
 * redis: the coordination layer the replicas share (issue 16). The url (redis://ip[:port][/db])
 * is split here: the server is named by IP literal only (IPv6 in [ ]), because hiredis 0.14 resolves
 * names with a blocking getaddrinfo inside redisAsyncConnect; rediss:// is refused (hiredis 0.14 has
 * no TLS: a sidecar or the mesh carries it); credentials in the url (user:password@) are refused,
 * without quoting them. AUTH is sent as the default user. Like the other
 * secrets, neither the password nor the seal key is in this struct: password_file / password_env and
 * seal_key_file name where they live (auth/upstream/secret.h: gw_secret_load_redis,
 * gw_secret_load_seal_key read them at start and in --check-config). Needs state.postgres.
 */
struct gw_redis_cfg {
	int enabled;			/* redis: is set and valid (the other fields are valid) */
	char *hostaddr;			/* IPv4 or IPv6 literal, without brackets; never NULL */
	unsigned port;			/* 1..65535, default 6379 */
	unsigned db;			/* 0..GW_CONFIG_REDIS_MAX_DB, default 0 (SELECT when not 0) */
	char *password_file;		/* at most one of these; neither = no AUTH */
	char *password_env;
	int password_line;		/* line of password_file / password_env, for messages */
	char *key_prefix;		/* 1..32 bytes of [A-Za-z0-9:_.-], default "a3d:"; never NULL */
	char *seal_key_file;		/* the 32-byte AES-256-GCM key sealing the shared upstream
					 * cookie (the same on every replica); never NULL */
	int seal_key_line;		/* line of seal_key_file */
	long connect_timeout_ms;	/* 100..60000, default 2000 */
	long command_timeout_ms;	/* 10..10000, default 500 */
	enum gw_redis_fallback fallback;	/* default GW_REDIS_FALLBACK_LOCAL */
	int line;			/* line of redis: (0 when absent) */
};

/* Splits and checks redis.url into out's hostaddr, port and db. Returns 0, or -1 with one
 * message in err ("redis.url ...", never quoting what may be a password) and those fields freed
 * and zeroed. out's other fields are left alone. */
int gw_config_redis_url(const char *url, struct gw_redis_cfg *out, char *err, size_t errlen);
/* Frees the strings of c and zeroes it (NULL is fine). */
void gw_config_redis_free(struct gw_redis_cfg *c);

/* cluster.expected_replicas: where replicas do not share a limit (no Redis, Redis down, the
 * per-account caps), each of n replicas admits 1/n of every cluster-wide limit. A cap (concurrency: max_concurrent) for one replica:
 * ceil(cap / n), at least 1; 0 (no cap) stays 0. A rate: rate / n; 0 (none) stays 0. */
unsigned gw_config_replica_cap(unsigned cap, unsigned replicas);
double gw_config_replica_rate(double rate, unsigned replicas);
/* A token bucket's size for one replica: burst / n, but never below what the dearest call costs
 * (max_cost, at least 1; a smaller bucket would refuse that call for ever), nor above burst. The
 * replicas together may then admit more than burst at once: a floor, not a share. */
double gw_config_replica_burst(double burst, unsigned replicas, unsigned max_cost);

struct gw_config {
	char *path;
	char *grpc_listen;		/* "127.0.0.1:50051" */
	char *http_listen;		/* "127.0.0.1:8080"; NULL = no HTTP listener (the admin one:
					 * health, readiness, metrics, upstream webhooks) */
	char *rest_listen;		/* "127.0.0.1:8081"; NULL = no REST facade (gateway/rest.h) */
	struct {
		char *cert_file, *key_file;	/* both or neither */
		char *client_ca_file;		/* mTLS when set */
		int client_cert_required;	/* tls.client_cert_required (needs client_ca_file):
						 * a client without a certificate is refused, on
						 * gRPC in the handshake, on REST with 401 */
	} tls;
	struct gw_account_cfg *accounts;
	size_t naccounts;
	struct gw_tenant_cfg *tenants;
	size_t ntenants;
	struct gw_costs_cfg costs;	/* top-level rate.costs: every tenant's, over the built-in ones */
	struct {
		char *path;		/* SQLite file; NULL with memory_only */
		int memory_only;	/* 1 with "memory: true" or when state: is absent */
		int read_only;		/* state.read_only: reads work, mutations get UNAVAILABLE */
		long long idempotency_ttl_s;	/* state.idempotency_ttl_s; 0 = 24 h (gateway/state/owner.h) */
		long reconcile_settle_ms;	/* state.reconcile_settle_ms, default 30000: see rpc_idem.h */
		/* state.postgres (enabled): the state is in PostgreSQL; path NULL, memory_only 0,
		 * read_only 0 then. */
		struct gw_pg_cfg postgres;
	} state;
	/* cluster: the replicas this one shares its limits with. */
	struct {
		unsigned expected_replicas;	/* 1..GW_CONFIG_MAX_REPLICAS, default 1; > 1 needs
						 * state.postgres */
		int line;			/* of expected_replicas, 0 when absent */
	} cluster;
	struct gw_redis_cfg redis;	/* redis: (enabled 0 when absent); needs state.postgres */
	struct {
		long status_ttl_ms;	/* PROGRESS/RETRY lifetime, default 1000 */
		size_t max_entries;	/* default 200000 */
		long batch_window_ms;	/* default 5 */
		size_t batch_max;	/* rids per GET /status, default 50 */
	} cache;
	struct {
		long connect_timeout_ms;	/* default 2000 */
		long default_timeout_ms;	/* when the caller sets no deadline, default 30000 */
		size_t max_response_bytes;	/* default 8 MiB */
		long session_refresh_s;		/* refresh the cookie this long after login; 0 = 2/3 of its lifetime */
	} upstream;
	size_t max_message_bytes;	/* gRPC max receive size, default 4 MiB */
	size_t upload_chunk_bytes;	/* UploadVideo chunk to storage, default 4 MiB (multiple of 256 KiB) */
	/* uploads: UploadVideo streams. Memory per upload is at most 2 x upload_chunk_bytes + the
	 * largest message (max_message_bytes here, else limits.max_message_bytes): upload.h. */
	struct {
		unsigned max_concurrent;	/* open at once, all tenants; default 32 */
		unsigned max_per_tenant;	/* 0 = fair share of max_concurrent */
		long idle_timeout_ms;		/* no message from the client this long: fail; default 30000 */
		size_t max_message_bytes;	/* chunk bytes in one message; 0 = limits.max_message_bytes */
	} uploads;
	/* watch: server-streaming calls that stay open. */
	struct {
		unsigned max_streams;		/* WatchStatus open at once, all tenants; default 20000 */
		unsigned max_streams_per_tenant;	/* 0 = fair share of max_streams */
		unsigned health_max_streams;	/* grpc.health.v1.Health/Watch, default 256 */
		unsigned health_max_streams_per_peer;	/* per client address, default 32 */
	} watch;
	char *log_level;		/* debug | info | warn | error */
	/* webhooks: {path_prefix, public_url}. Deliveries are POSTed to <path_prefix><account>;
	 * path_prefix starts and ends with '/' and holds only [A-Za-z0-9-._~/] (never NULL after a
	 * load: GW_CONFIG_DEFAULT_WEBHOOK_PREFIX). public_url (http(s), no credentials, query or
	 * fragment, trailing '/' removed; needs listen.http) makes the gateway register
	 * <public_url><path_prefix><account> upstream at start-up (gateway/svc/webhook_reg.h); NULL = no. */
	struct {
		char *path_prefix;
		char *public_url;
		/* path_token_file: a file (owner-only mode) holding the token that becomes a path
		 * segment, <path_prefix><token>/<account>, so only upstream knows the URL; NULL = no
		 * token (the path is <path_prefix><account>). Read by gateway/svc/webhook_token.h. */
		char *path_token_file;
		int path_token_line;
		long path_token_grace_s;	/* the previous token still works this long after a
						 * reload rotated it; default 600 */
		double refresh_per_second;	/* webhook-triggered refreshes per account; default 50 */
		double refresh_burst;		/* default 200 */
		/* Tenant webhook subscriptions (issue 17, gateway/svc/webhook_out.h). */
		int allow_private_destinations;	/* accept loopback/private/link-local endpoint
						 * addresses (demo, tests); default 0 */
		int upstream_passthrough;	/* the Webhooks service manages raw upstream
						 * endpoints (single-tenant only); default 0 */
		struct {
			unsigned max_per_endpoint;	/* in flight per endpoint */
			long timeout_ms;		/* one attempt */
			long give_up_s;			/* an event retried this long: failed */
			long disable_after_s;		/* an endpoint failing this long: disabled */
		} delivery;
	} webhooks;
	/* follower: how the gateway follows the jobs it started to their final state (issue 17). */
	struct {
		int enabled;			/* default 1 (needs a writable state store) */
		double polls_per_second;	/* its own status polls, all accounts together */
		long poll_interval_ms;		/* first poll after start, shortest period */
		long max_poll_interval_ms;	/* longest period (jobs in progress for long) */
		long quiet_ms;			/* webhooks.public_url set: a job is polled only after
						 * this long without a final */
		long scan_interval_ms;		/* unsettled jobs are loaded from the store this often */
		size_t max_jobs;		/* followed at once; more wait in the store */
		int line;			/* of the follower: key, 0 when absent */
	} follower;
	/* balance: the upstream balance poller (issues 20 and 22, gateway/svc/balance.h). */
	struct {
		long poll_s;			/* seconds between polls of each account; 0 = off */
	} balance;
	/* usage: the ledger's measuring (issue 22, gateway/svc/budget.h). measure "all" (default):
	 * every StartJob from an upload asks upstream's /videoInfo first, so every team's minutes
	 * are known (chargeback); "budgeted": only teams with a budget are measured, the others'
	 * jobs are recorded with unknown minutes and cost no extra upstream request. */
	struct {
		int measure_all;
	} usage;
	/* otlp: span export to an OpenTelemetry collector (gateway/base/otlp.h); endpoint NULL =
	 * off. Read at start: a reload keeps the exporter that runs (restart to change it). */
	struct {
		char *endpoint;			/* http(s) URL, no credentials, query or fragment */
		char *headers_file;		/* "Name: value" lines sent with each POST, or NULL */
		char *service_name;		/* resource service.name; NULL = "animate3d-gateway" */
		unsigned batch_max;		/* spans per POST, 1..8192, default 512 */
		unsigned queue_max;		/* spans waiting, batch_max..1000000, default 4096 */
		long flush_ms;			/* a batch at least this often, default 2000 */
		long timeout_ms;		/* one POST, connect included, default 5000 */
		int line;			/* of the otlp: key, 0 when absent */
	} otlp;
	struct gw_process_cfg process;
	struct gw_http_cfg http;
	struct gw_rest_cfg rest;
	struct gw_grpc_cfg grpc;
};

/* Returns 0 and sets *out, or -1 with errs filled (errors are appended; clear errs first to reuse it)
 * and *out NULL. Never stops at the first error; files over GW_CONFIG_MAX_BYTES are refused unread,
 * files with more than GW_CONFIG_MAX_ANCHORS anchors or nested deeper than GW_CONFIG_MAX_DEPTH
 * before they are loaded. Thread-safe (no shared state): a reload runs it on a worker thread.
 * Error messages may quote names and paths from the file, never secret material (the file holds none). */
int gw_config_load(const char *path, struct gw_config **out, struct gw_errors *errs);
/* The same on text already in memory; path only names it in messages (and becomes cfg->path). */
int gw_config_parse(const char *path, const char *text, size_t len, struct gw_config **out,
		    struct gw_errors *errs);
void gw_config_free(struct gw_config *cfg);	/* NULL is fine */
/* Index of the tenant/account with that name, or -1 (also for NULL cfg or name). */
int gw_config_account_index(const struct gw_config *cfg, const char *name);
/* A tenant's cap on a long-lived resource: its own limit (tenants[].limits.*) when set, else the
 * section's per-tenant value when set, else a fair share of the global cap, ceil(global /
 * tenants), at least 1. 0 (no per-tenant cap) only when global is 0 and nothing is set. */
unsigned gw_config_tenant_cap(const struct gw_config *cfg, unsigned own, unsigned per_tenant,
			      unsigned global);
int gw_config_tenant_index(const struct gw_config *cfg, const char *name);
/* 1 when a and b have the same process:, http: and grpc: sections (what a reload cannot change). */
int gw_config_net_same(const struct gw_config *a, const struct gw_config *b);
/* The gRPC resource quota in MiB: grpc.memory_quota_mib, else half of process.memory_mib; 0 = none. */
unsigned gw_config_grpc_quota_mib(const struct gw_config *cfg);

#endif
