/*
 * connguard: closes single gRPC connections that abuse HTTP/2 (rapid reset, CVE-2023-44487),
 * instead of every connection (gateway/base/memguard.h's shed) or none.
 *
 * gRPC core 1.51 turns every stream a client opens and resets into a call queued for the
 * application, and under a flood the thread that reads the sockets (our completion-queue poller,
 * inside grpc_completion_queue_next) stays in that connection's read loop as long as bytes keep
 * arriving: no call reaches the loop while the flood lasts, the queued calls hold about 13 KB
 * each, and measured here RSS grew 200-500 MB/s. Its C API cannot close one connection. So this
 * module finds the connection's socket itself (a descriptor of /proc/self/fd whose local port is
 * the gRPC port and whose peer is the connection's peer, re-checked right before acting) and
 * shuts it down (SHUT_RDWR), reading away (up to GW_CONNGUARD_DISCARD_MAX) what the peer had
 * sent and gRPC core not parsed yet: gRPC core reads end of file, tears the transport down and
 * cancels its streams. Two ways a connection gets there:
 *
 *  - resets: a call that the client cancelled before it finished is counted against its
 *    connection (gRPC's peer string, "ipv4:a.b.c.d:port" / "ipv6:[..]:port"); max_resets_per_s
 *    of them within GW_CONNGUARD_WINDOW_MS close it. Works whenever calls reach the loop (a
 *    flood slower than the gateway, or what is left of one after the shutdown);
 *  - backlog: while the memory guard reports pressure (RSS at half the ceiling or more), every
 *    gRPC connection whose kernel receive queue holds backlog_bytes or more unread is closed:
 *    its peer sends faster than gRPC core parses, which is where a flood's memory comes from, and
 *    it needs no call to reach the loop. A caller sending small requests never has a backlog.
 *
 * And when the memory guard sheds (RSS at 3/4 of the ceiling), gw_connguard_shed closes the
 * heavy senders only: the connections receiving GW_CONNGUARD_SHED_RATE bytes a second or more
 * since their last sample (every scan above samples each connection's received-byte count, from
 * TCP_INFO, at most every GW_CONNGUARD_SAMPLE_MS), or, first seen in this scan, holding
 * GW_CONNGUARD_SHED_NEW received bytes already. An honest caller of unary calls receives a few
 * KB a second; a flood, hundreds of KB. Only when none is found does the guard close every
 * connection (grpc_server_cancel_all_calls): the memory is then not where bytes come in. An
 * honest upload running at the time of a shed is closed with the flood (its caller retries).
 *
 * The calls gRPC core had already queued for a closed connection still reach the loop; for
 * GW_CONNGUARD_CLOSED_KEEP_MS they are dropped at once (no reply batch, no completion-queue
 * round trip: a third of the work of an ordinary refusal), so the queue drains faster than it
 * filled.
 *
 * Bounded: GW_CONNGUARD_MAX_PEERS connections tracked (a direct-mapped table: a newcomer takes
 * a slot whose window has passed, else it is not tracked and counted), as many intake samples
 * (direct-mapped too: a newcomer replaces the slot's holder, counted; the holder, sampled anew,
 * is judged by its total until then), at most
 * GW_CONNGUARD_SCANS_PER_S descriptor scans a second (a scan refused is counted), each reading at
 * most GW_CONNGUARD_MAX_FDS descriptors. Every close is counted by reason and logged (one line a
 * second at most, with a suppressed count). A descriptor could in principle be closed and reused
 * between the check and the shutdown by gRPC core's threads; the check right before shutdown()
 * keeps that window to two system calls, and what it could hit is another connection to the same
 * port from the same peer address and port, which TCP does not allow at the same time.
 * Loop thread only, but for gw_connguard_shutdown_peer and gw_connguard_note_closed (the stream
 * guard's thread closes connections too: gateway/base/streamguard.h).
 */
#ifndef A3D_GATEWAY_CONNGUARD_H
#define A3D_GATEWAY_CONNGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_CONNGUARD_MAX_PEERS 1024	/* connections whose resets are counted at once */
#define GW_CONNGUARD_WINDOW_MS 1000	/* resets are counted per window of this length */
#define GW_CONNGUARD_SCANS_PER_S 50	/* /proc/self/fd scans at most this often */
#define GW_CONNGUARD_MAX_FDS 65536	/* descriptors one scan looks at, at most */
#define GW_CONNGUARD_MAX_PEER 96	/* a peer string longer than this is not tracked */
#define GW_CONNGUARD_LOG_PER_S 1	/* close lines a second (then a suppressed count) */
#define GW_CONNGUARD_CLOSED_RING 64	/* connections closed lately, remembered... */
#define GW_CONNGUARD_CLOSED_KEEP_MS 1000	/* ...this long: their queued calls are dropped */
#define GW_CONNGUARD_DISCARD_MAX (16u << 20)	/* unread bytes of a closed connection dropped */
#define GW_CONNGUARD_DISCARD_CHUNK (16u << 10)	/* ...this many per recv() */
#define GW_CONNGUARD_ABUSE_QUIET_MS 5000	/* a close this recent: the memory is its calls' */
#define GW_CONNGUARD_SAMPLE_MS 250	/* a connection's intake is sampled at most this often */
#define GW_CONNGUARD_SHED_RATE (256u << 10)	/* a shed closes a connection receiving this many
						 * bytes a second... */
#define GW_CONNGUARD_SHED_NEW (64u << 10)	/* ...or first seen with this many received */

struct gw_connguard;
struct gw_metrics_out;

/* One tracked connection's window. Zero it to start. */
struct gw_connguard_window {
	int64_t start_ms;	/* when the current window began */
	uint32_t resets;	/* resets in it */
	int64_t closed_ms;	/* when it was closed (0: not), not again for CLOSED_KEEP_MS */
};

/* Counts one reset at now_ms; 1 when the connection must be closed (limit resets within a window),
 * else 0. After a close, 0 for GW_CONNGUARD_CLOSED_KEEP_MS (its queued calls are still
 * arriving), then counting starts again: the client may reuse the port for a new connection.
 * limit 0: never. Pure. */
int gw_connguard_count(struct gw_connguard_window *w, uint32_t limit, int64_t now_ms);

/* A connection's received-byte count at two moments (the older at least GW_CONNGUARD_SAMPLE_MS
 * before the newer once two exist). Zero it to start. */
struct gw_connguard_intake {
	uint64_t old_bytes, new_bytes;
	int64_t old_ms, new_ms;		/* new_ms 0: never sampled */
};

/* Records bytes received by now_ms (kept only when the newer sample is SAMPLE_MS old). Pure. */
void gw_connguard_intake_note(struct gw_connguard_intake *s, uint64_t bytes, int64_t now_ms);
/* 1 when a connection that has received bytes by now_ms is a heavy sender: SHED_RATE bytes a
 * second or more since a sample at least SAMPLE_MS/2 old (else the older one), or, with no
 * sample to compare with (none, the same instant, or a count that went back: another connection
 * on a reused port), bytes >= SHED_NEW. Pure. */
int gw_connguard_intake_heavy(const struct gw_connguard_intake *s, uint64_t bytes, int64_t now_ms);

/* gRPC's peer string ("ipv4:1.2.3.4:80", "ipv6:[::1]:80", brackets and colons possibly
 * percent-encoded) -> *ss (IPv4-mapped IPv6 addresses become IPv4). 0, or -1 when it is not an
 * IP peer. Pure. */
int gw_connguard_parse_peer(const char *peer, struct sockaddr_storage *ss);

/* Shuts down the connection accepted on port whose peer is *peer (IPv4-mapped addresses as
 * IPv4) and reads away what it had sent, found in /proc/self/fd (at most GW_CONNGUARD_MAX_FDS
 * descriptors). 1 when shut, 0 when not found. No state: any thread. */
int gw_connguard_shutdown_peer(int port, const struct sockaddr_storage *peer);

/* Watches the gRPC listener's connections on port. max_resets_per_s 0: resets never close;
 * backlog_bytes 0: pressure never closes. NULL when out of memory. */
struct gw_connguard *gw_connguard_new(int port, uint32_t max_resets_per_s, uint32_t backlog_bytes);
/* A call from peer ended; reset: the client cancelled it before it finished. May close the
 * connection. */
void gw_connguard_call_ended(struct gw_connguard *g, const char *peer, int reset);
/* 1 when peer's connection was closed here within GW_CONNGUARD_CLOSED_KEEP_MS: the call is one
 * gRPC core had queued before the close, and is dropped without a reply (counted). */
int gw_connguard_closed_peer(struct gw_connguard *g, const char *peer);
/* Remembers that peer's connection was closed now (by the stream guard's thread, or here): its
 * queued calls are dropped for GW_CONNGUARD_CLOSED_KEEP_MS. Any thread. */
void gw_connguard_note_closed(struct gw_connguard *g, const struct sockaddr_storage *peer);
/* 1 when any connection was closed within GW_CONNGUARD_CLOSED_KEEP_MS: the cheap test before
 * asking gRPC core for a call's peer (NULL g: 0). */
int gw_connguard_closed_lately(const struct gw_connguard *g);
/* 1 when a connection was closed for abuse within GW_CONNGUARD_ABUSE_QUIET_MS: what holds the
 * memory then is most likely the calls gRPC core queued for it, which drain by themselves
 * (measured: after a rapid reset, RSS stayed over the shed mark for seconds with no connection
 * feeding it). NULL g: 0. */
int gw_connguard_abuse_lately(const struct gw_connguard *g);
/* Memory pressure (called by the memory guard's tick): samples every connection's intake and
 * closes those with a backlog. Returns how many it closed. */
size_t gw_connguard_relieve(struct gw_connguard *g);
/* The memory guard's shed: closes the heavy senders (gw_connguard_intake_heavy). Returns how
 * many it closed; 0 tells the caller to close every connection. Not held to the scan budget
 * (the guard sheds at most once a second). */
size_t gw_connguard_shed(struct gw_connguard *g);
/* grpc_connections_closed_total{reason}, grpc_connguard_intake_evicted_total, grpc_connguard_untracked_total,
 * grpc_connguard_scans_skipped_total, grpc_connguard_not_found_total,
 * grpc_connguard_calls_dropped_total */
void gw_connguard_render_metrics(void *g, struct gw_metrics_out *o);
void gw_connguard_free(struct gw_connguard *g);	/* NULL is fine */

#endif
