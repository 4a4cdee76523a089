/*
 * streamguard: closes a gRPC connection whose client resets streams faster than
 * grpc.max_resets_per_s (rapid reset, CVE-2023-44487), judged by gRPC core's own per-connection
 * counters, on a thread of its own.
 *
 * connguard (gateway/base/connguard.h) counts the resets of calls that reach the loop; under a
 * flood those arrive seconds late (gRPC core 1.51 queues every reset stream as a call, and the
 * loop takes them in order), by which time the flood has made gRPC core hold gigabytes. gRPC
 * core counts, per connection, the streams that closed without the server's trailers
 * (channelz's streamsFailed: on a server, the streams its client reset) as it parses the frames.
 * This thread reads those counters every GW_STREAMGUARD_TICK_MS (grpc_channelz_get_*, JSON) and
 * shuts a connection down (gw_connguard_shutdown_peer) once it reset max_resets_per_s streams
 * within one window of GW_STREAMGUARD_WINDOW_MS: within a tick or two of the flood's start,
 * whatever the loop is doing.
 *
 * Cost and bounds: a small JSON a tick, the server's call count (a tick every
 * GW_STREAMGUARD_IDLE_TICK_MS while no calls come: an idle gateway measured 0.65 % of a core,
 * 0.40-0.55 % before the guard), and, when calls were made since the last tick, the connections
 * opened meanwhile (gRPC numbers its objects in order; each new one is entered with a count of
 * 0, so its first burst counts whole; at most 64 a tick); the connections' counts are read only
 * while the server started max(max_resets_per_s, GW_STREAMGUARD_BUSY_PER_S) calls or more
 * within the last window (no connection can be over the limit otherwise, and below that rate the
 * loop takes calls as they come, so connguard's count is on time), at most
 * GW_STREAMGUARD_READS_PER_S connections a second (a tick reads its share and the next goes on
 * where it stopped: with many connections each is read less often). Windows are kept for
 * GW_STREAMGUARD_TABLE connections (direct-mapped by gRPC's socket id; a newcomer takes the
 * slot). Every close is counted and logged (at most one line a second, with a suppressed count).
 * The same tick drives the I/O brake (gateway/base/iobrake.h) with the calls made since the last.
 *
 * A reset is a reset here, whatever the call's deadline: connguard leaves calls past their
 * deadline out (a client cancelling at its deadline is no abuse), which a flood of calls sent
 * with grpc-timeout 1n used to slip through. So a connection on which hundreds of calls a second
 * time out in the client is closed too; those calls had failed already.
 */
#ifndef A3D_GATEWAY_STREAMGUARD_H
#define A3D_GATEWAY_STREAMGUARD_H

#include <stddef.h>
#include <stdint.h>

#define GW_STREAMGUARD_TICK_MS 20		/* counters read this often... */
#define GW_STREAMGUARD_IDLE_TICK_MS 100		/* ...or this, after a tick without calls */
#define GW_STREAMGUARD_WINDOW_MS 1000		/* resets counted per window of this length */
#define GW_STREAMGUARD_READS_PER_S 5000		/* connections read a second at most */
#define GW_STREAMGUARD_BUSY_PER_S 1000		/* calls a second in all below which none is read */
#define GW_STREAMGUARD_TABLE 4096		/* connections whose window is kept */
#define GW_STREAMGUARD_LOG_PER_S 1		/* close lines a second (then a suppressed count) */

struct gw_streamguard;
struct gw_metrics_out;

/* One connection's window: its reset count when the window began. Zero it to start. */
struct gw_streamguard_window {
	int64_t id;		/* gRPC's socket id (0: free) */
	int64_t start_ms;	/* when the window began */
	uint64_t base;		/* the connection's resets then */
	int closed;		/* shut down already: never judged again */
};

/* The connection of socket id has reset `resets` streams in all by now_ms. A connection not in
 * w yet takes it, its window starting now from that count (a newly opened one is entered with
 * 0: every reset of its counts). 1 when it must be closed (limit resets within one window),
 * else 0; limit 0: never. Pure. */
int gw_streamguard_count(struct gw_streamguard_window *w, int64_t id, uint64_t resets,
			 uint32_t limit, int64_t now_ms);

/* Reads one channelz socket JSON (grpc_channelz_get_socket): the streams its client reset and
 * its peer as gRPC's peer string ("ipv4:1.2.3.4:5", into peer, bounded by len). 0, or -1 when
 * the text is not a socket. Pure. */
int gw_streamguard_parse_socket(const char *json, uint64_t *resets, char *peer, size_t len);

/* Starts the thread watching the connections of the gRPC listener on port (after
 * grpc_server_start); every close is told to conns (when set), which drops the calls gRPC core
 * had queued for the connection; every tick it also ticks brake (when set) with the calls made
 * since the last. max_resets_per_s 0 and no brake: no thread, NULL returned (nothing to free).
 * NULL on failure too: *failed set. */
struct gw_connguard;
struct gw_iobrake;
struct gw_streamguard *gw_streamguard_start(int port, uint32_t max_resets_per_s,
					    struct gw_connguard *conns, struct gw_iobrake *brake,
					    int *failed);
/* grpc_streamguard_closed_total, grpc_streamguard_scans_total, grpc_streamguard_sockets_read_total,
 * grpc_streamguard_not_found_total (counters the thread writes, read atomically). */
void gw_streamguard_render_metrics(void *g, struct gw_metrics_out *o);
/* Stops and joins the thread (before grpc_server_destroy). NULL is fine. */
void gw_streamguard_stop(struct gw_streamguard *g);

#endif
