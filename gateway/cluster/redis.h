/*
 * redis: an asynchronous Redis client on the libevent loop (hiredis 0.14 and its libevent
 * adapter), for what the replicas share. Nothing here blocks the loop.
 *
 * - The server is named by IPv4 literal. hiredis 0.14 resolves names with a blocking
 *   getaddrinfo() inside redisAsyncConnect (and tries an IPv6 literal as an IPv4 name first), so
 *   this module refuses both; resolving a configured name (evdns) is not done yet. hiredis 0.14
 *   has no TLS either: reach a TLS Redis through a sidecar or the mesh.
 * - Two connections at most: one for commands, opened at creation, and one for pub/sub, opened by
 *   the first gw_redis_subscribe() (a subscribed connection cannot run other commands).
 * - A connection is ready once AUTH (when a password is set) and SELECT db (commands) or PING
 *   (pub/sub) have been answered; until then nothing else is sent on it. Connecting has a
 *   deadline (connect_timeout_ms). A failed or lost connection is reopened after a capped,
 *   doubling backoff (GW_REDIS_BACKOFF_MIN_MS .. backoff_max_ms).
 * - TCP keepalive is on (hiredis: probes after 15 s idle), so a silent network partition ends
 *   even an idle connection, and the reconnect starts.
 * - Commands: at most max_pending at once (waiting + sent). While the very first connection is
 *   being opened they wait for it; once that first attempt has ended, a command while the
 *   command connection is not ready is refused at once (fail fast, never queued while down).
 * - Every command has a deadline (command_timeout_ms, from its submission). Past it the command
 *   fails; if it had been sent, the connection is dropped (its state is unknown: a reply may still
 *   come), every other command sent on it fails, and it is reopened with the backoff.
 * - Errors never carry the password and never a command's arguments; they name the server as
 *   "ip:port/db". Nothing is logged but connection changes.
 *
 * Threading: one loop owns a client; every function is called from that loop's thread.
 */
#ifndef A3D_GATEWAY_REDIS_H
#define A3D_GATEWAY_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#define GW_REDIS_URL_MAX 512		/* characters of a redis:// URL */
#define GW_REDIS_DB_MAX 1023		/* highest database number accepted */
#define GW_REDIS_PASSWORD_MAX 512
#define GW_REDIS_PREFIX_MAX 64		/* bytes of key_prefix */
#define GW_REDIS_KEY_MAX 512		/* bytes of a key built by gw_redis_key() */
#define GW_REDIS_CHANNEL_MAX 256	/* bytes of a channel name, prefix included */
#define GW_REDIS_MAX_ARGS 64		/* arguments of one command (command name included) */
#define GW_REDIS_MAX_CMD_BYTES (1 << 20)	/* bytes of one command's arguments */
#define GW_REDIS_MAX_PENDING 65536	/* upper bound of max_pending */
#define GW_REDIS_MAX_SUBS 64		/* channels subscribed to */
#define GW_REDIS_ERR_MAX 256
#define GW_REDIS_BACKOFF_MIN_MS 100	/* reconnect delay after a failure, doubling */
#define GW_REDIS_BACKOFF_MAX_MS 5000	/* default cap of that delay */

/* What gw_redis_command() and friends return when they refuse: then done() never runs. */
enum gw_redis_rc {
	GW_REDIS_OK = 0,
	GW_REDIS_EINVAL = -1,		/* bad arguments (count, sizes, NULL done) */
	GW_REDIS_ENOMEM = -2,
	GW_REDIS_EFULL = -3,		/* max_pending commands already pending (stats.refused_full) */
	GW_REDIS_EDOWN = -4,		/* the connection is not ready (stats.refused_down) */
	GW_REDIS_EEXIST = -5,		/* already subscribed to that channel */
};

struct event_base;
struct gw_redis;

/* A parsed redis://[[user]:password@]ip[:port][/db] URL. */
struct gw_redis_url {
	char ip[16];			/* IPv4 literal, dotted quad */
	unsigned port;			/* default 6379 */
	unsigned db;			/* default 0 */
	int has_password;		/* userinfo was present: the caller's config must refuse it
					 * (the password belongs in a file or the environment); its
					 * text is neither kept nor echoed */
};

/*
 * Parses url into out. 0, or -1 with err ("redis URL: ..."; never the userinfo) for: another
 * scheme (rediss:// included: no TLS), a host name or IPv6 literal, a bad port (0, > 65535, not
 * digits), a db past GW_REDIS_DB_MAX, a query, fragment or any other trailing text. Pure.
 */
int gw_redis_parse_url(const char *url, struct gw_redis_url *out, char *err, size_t errlen);

/* Where and how to connect. Strings are copied; the password is wiped from memory at free. */
struct gw_redis_opts {
	const char *ip;			/* IPv4 literal */
	unsigned port;			/* 1..65535 */
	unsigned db;			/* 0..GW_REDIS_DB_MAX */
	const char *password;		/* NULL or "": no AUTH */
	const char *key_prefix;		/* NULL = "": prepended by gw_redis_key() and to channels */
	long connect_timeout_ms;	/* > 0: TCP connect + AUTH + SELECT */
	long command_timeout_ms;	/* > 0: from submission to reply */
	unsigned max_pending;		/* 1..GW_REDIS_MAX_PENDING */
	long backoff_max_ms;		/* 0: GW_REDIS_BACKOFF_MAX_MS; else >= GW_REDIS_BACKOFF_MIN_MS */
};

/*
 * The outcome of a command, exactly once, from the loop (never inside the call that submitted
 * it). err is NULL on success; otherwise it says why, and reply is either NULL (no answer:
 * refused while connecting, timed out, connection lost) or the server's error reply
 * (REDIS_REPLY_ERROR). reply is valid during done() only. done() may submit further commands;
 * it must not call gw_redis_free().
 */
typedef void (*gw_redis_done_fn)(void *arg, const redisReply *reply, const char *err);

/*
 * A message on a subscribed channel: channel is the name given to gw_redis_subscribe() (without
 * the prefix), msg/len the payload (binary, NUL-terminated for convenience). msg NULL means the
 * subscription has just been (re)established: messages published before, or while the pub/sub
 * connection was down, were not and will not be seen (pub/sub is at most once), so re-read what
 * matters. From the loop; must not call gw_redis_free().
 */
typedef void (*gw_redis_msg_fn)(void *arg, const char *channel, const char *msg, size_t len);

struct gw_redis_stats {
	uint64_t commands;		/* accepted */
	uint64_t failed;		/* done() with err (server error replies included) */
	uint64_t timeouts;		/* of which: past their deadline */
	uint64_t refused_full;		/* refused: max_pending reached */
	uint64_t refused_down;		/* refused: not connected */
	uint64_t noscript;		/* EVALSHA answered NOSCRIPT, sent again as EVAL */
	uint64_t connects;		/* command connection ready (first and reconnects) */
	uint64_t connect_failures;	/* attempts that never got ready (refused, AUTH, timeout) */
	uint64_t drops;			/* ready command connections lost or dropped */
	uint64_t sub_connects;		/* the same three for the pub/sub connection */
	uint64_t sub_connect_failures;
	uint64_t sub_drops;
	uint64_t messages;		/* pub/sub messages delivered */
	unsigned connected;		/* gauge: 1 when the command connection is ready */
	unsigned sub_connected;		/* gauge: 1 when the pub/sub connection is ready */
	unsigned pending;		/* gauge: commands waiting or sent */
};

/*
 * A client on base; the command connection is opened from the loop's next iteration. NULL with
 * err set when the options are invalid or memory runs out.
 */
struct gw_redis *gw_redis_new(struct event_base *base, const struct gw_redis_opts *o, char *err,
			      size_t errlen);
/* Closes both connections; pending commands are dropped WITHOUT done(), no message is delivered
 * after. Never from inside a done() or a gw_redis_msg_fn of this client (hiredis would free the
 * connection after the callback returns): that is a bug, logged, and the process aborts.
 * NULL: nothing. */
void gw_redis_free(struct gw_redis *r);

/*
 * Sends the command argv[0..argc-1] (binary-safe: argvlen[i] bytes each; argvlen NULL: strlen),
 * copied. GW_REDIS_OK, or a negative enum gw_redis_rc and done() never runs.
 */
int gw_redis_command(struct gw_redis *r, gw_redis_done_fn done, void *arg, int argc,
		     const char **argv, const size_t *argvlen);

/*
 * A Lua script, run by SHA1 (EVALSHA). Fill lua and call gw_redis_script_init() once, which
 * computes sha; the struct must outlive every command that runs it (a static one is typical).
 */
struct gw_redis_script {
	const char *lua;
	char sha[41];			/* hex SHA1 of lua */
};
void gw_redis_script_init(struct gw_redis_script *s);

/*
 * Runs script with keys argv[0..nkeys-1] and arguments argv[nkeys..nkeys+nargs-1] (argvlen as
 * for gw_redis_command). EVALSHA first; when the server does not have the script (NOSCRIPT:
 * restarted, SCRIPT FLUSH) it is sent once more as EVAL, which also caches it, within the same
 * deadline. Return and done() as for gw_redis_command.
 */
int gw_redis_eval(struct gw_redis *r, const struct gw_redis_script *script, int nkeys, int nargs,
		  const char **argv, const size_t *argvlen, gw_redis_done_fn done, void *arg);

/*
 * PUBLISH key_prefix+channel msg/len on the command connection; done() gets the integer reply
 * (receivers, on this server). Channels ignore SELECT (one namespace per server), hence the prefix.
 */
int gw_redis_publish(struct gw_redis *r, const char *channel, const char *msg, size_t len,
		     gw_redis_done_fn done, void *arg);

/*
 * Subscribes to key_prefix+channel on the pub/sub connection (opened now if it is the first
 * subscription), for the client's life, and again after every reconnect; on_message as described
 * above. GW_REDIS_OK, or GW_REDIS_EINVAL (name empty or too long, GW_REDIS_MAX_SUBS reached),
 * GW_REDIS_EEXIST, GW_REDIS_ENOMEM.
 */
int gw_redis_subscribe(struct gw_redis *r, const char *channel, gw_redis_msg_fn on_message,
		       void *arg);

/*
 * Stops delivering channel's messages: its on_message is never called again, so its arg may be
 * freed after this returns. The server-side subscription stays until the client is freed (and the
 * channel cannot be subscribed to again). GW_REDIS_OK, or GW_REDIS_EINVAL (not subscribed).
 */
int gw_redis_unsubscribe(struct gw_redis *r, const char *channel);

/* key_prefix + name into buf: its length, or -1 when it does not fit cap (or GW_REDIS_KEY_MAX). */
int gw_redis_key(const struct gw_redis *r, const char *name, char *buf, size_t cap);

int gw_redis_connected(const struct gw_redis *r);
const struct gw_redis_stats *gw_redis_stats(const struct gw_redis *r);
/* The last connection error ("" once connected again), and "ip:port/db" of the server. */
const char *gw_redis_last_error(const struct gw_redis *r);
const char *gw_redis_where(const struct gw_redis *r);
/*
 * A renderer for the metrics registry (gw_metrics_register(reg, gw_redis_metrics, r); unregister
 * before gw_redis_free): redis_total{what=...} counters, redis_connections{what=...} gauges.
 */
struct gw_metrics_out;
void gw_redis_metrics(void *r, struct gw_metrics_out *o);

/*
 * What the replicas share through this client, each with its own local fallback, for /readyz
 * (issue 16). A module marks its part used once (gw_redis_part_use), then notes each decision:
 * local (a fallback) or shared. The client itself turns every used part local when its command
 * connection is lost and shared again when it is back (each part resumes sharing by itself).
 * since_ms is the wall clock of the last change; fallbacks counts changes to local.
 */
enum gw_redis_part {
	GW_REDIS_PART_LIMITS = 0,	/* rate limits (climit) */
	GW_REDIS_PART_CONCURRENCY,	/* upstream concurrency caps (csem) */
	GW_REDIS_PART_SESSION,		/* the upstream session (auth/upstream/session_shared.h) */
	GW_REDIS_PART_STATUS,		/* job statuses (gateway/svc/status_share.h) */
	GW_REDIS_NPARTS
};
struct gw_redis_part_state {
	int used;
	int local;			/* 1: this replica decides locally now */
	int64_t since_ms;		/* wall-clock ms of the last change of mode */
	uint64_t fallbacks;		/* changes from shared to local */
};
/* NULL r: nothing. */
void gw_redis_part_use(struct gw_redis *r, enum gw_redis_part p);
void gw_redis_part_note(struct gw_redis *r, enum gw_redis_part p, int local);
/* NULL when r is NULL or p out of range. */
const struct gw_redis_part_state *gw_redis_part(const struct gw_redis *r, enum gw_redis_part p);
/* "limits", "concurrency", "session", "status". */
const char *gw_redis_part_name(enum gw_redis_part p);

/* "invalid arguments", "queue full", ... for an enum gw_redis_rc. */
const char *gw_redis_strerror(int rc);

#endif
