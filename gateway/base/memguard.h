/*
 * memguard: holds the process's resident memory under a ceiling (process.memory_mib).
 *
 * gRPC core 1.51 bounds little of what a raw HTTP/2 client can make it hold: a client that never
 * acknowledges SETTINGS is not held to MAX_CONCURRENT_STREAMS, rapid resets (CVE-2023-44487,
 * fixed in later releases) queue calls faster than they can be served, and its resource quota
 * only shrinks windows and cancels streams, it never refuses a new one. Measured here: 2.9 GB
 * under rapid reset with a 256 MiB quota. So the loop samples RSS every GW_MEMGUARD_TICK_MS:
 *
 *  - at or above 3/4 of the ceiling it sheds: shed(arg) closes the connections feeding the
 *    growth, the heavy senders (gateway/base/connguard.h); when there are none, and no abusive
 *    connection was closed within the last 5 s, every gRPC connection (gateway:
 *    grpc_server_cancel_all_calls), which stops what they were feeding, fails their calls
 *    (callers see UNAVAILABLE and reconnect), and lets the queue behind them drain. Closing every
 *    connection fails the honest callers' calls too (under rapid reset, every few seconds while
 *    the flood went on); it lowered the peak somewhat (docs/operations.md has the figures), but
 *    most of what held the memory were the calls gRPC core had queued for connections already
 *    closed, which drain by themselves. Sheds come at
 *    most every GW_MEMGUARD_SHED_MIN_MS; when RSS did not get back under the mark since the
 *    previous shed, the wait doubles up to GW_MEMGUARD_SHED_MAX_MS: the memory is not held by
 *    connections, or by a flood gRPC core drains slower than it arrives (rapid reset), and
 *    shedding more often would only hurt callers;
 *  - at or above half of it, every tick, relieve(arg) (when set: gateway/base/connguard.h) closes
 *    the single connections feeding the growth, those whose peer sends faster than gRPC core
 *    parses; while that finds any (within GW_MEMGUARD_SHED_MIN_MS), the shed above waits: it
 *    would fail every honest caller's calls too, and under rapid reset it never helped (the
 *    attacker reconnects within milliseconds);
 *  - at or above half of it, at most once a second, it gives freed memory back to the system
 *    (malloc_trim), so RSS tells what is in use rather than what glibc kept.
 *
 * The decision is pure (gw_memguard_decide: RSS, ceiling, time -> action), the rest is the timer.
 * In an ASan or TSan build the guard never acts (their shadow memory and quarantine inflate RSS).
 * Every shed is counted and logged (an error line: at most one per GW_MEMGUARD_SHED_MIN_MS).
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_MEMGUARD_H
#define A3D_GATEWAY_MEMGUARD_H

#include <stddef.h>
#include <stdint.h>

#define GW_MEMGUARD_TICK_MS 50		/* RSS sampling period */
#define GW_MEMGUARD_SHED_MIN_MS 1000	/* sheds at most this often */
#define GW_MEMGUARD_SHED_MAX_MS 30000	/* ...or this rarely while shedding does not help */
#define GW_MEMGUARD_TRIM_MS 1000	/* malloc_trim at most this often */

struct event_base;
struct evbuffer;
struct gw_memguard;

enum gw_memguard_action { GW_MEMGUARD_NONE, GW_MEMGUARD_TRIM, GW_MEMGUARD_SHED };

/* The decision's memory between ticks. Zero it to start. */
struct gw_memguard_state {
	int64_t next_shed_ms;	/* no shed before this */
	int64_t shed_wait_ms;	/* the wait after the last shed */
	int64_t last_trim_ms;
	int trimmed;		/* a trim happened (last_trim_ms is meaningful) */
	int calm;		/* RSS was under the shed mark since the last shed */
	int64_t relieved_ms;	/* when relieve last closed a connection (0: never) */
	uint64_t sheds, trims;
};

/* What to do at now_ms with rss bytes resident under ceiling bytes (0: no ceiling). No shed
 * within GW_MEMGUARD_SHED_MIN_MS of s->relieved_ms. Pure. */
enum gw_memguard_action gw_memguard_decide(struct gw_memguard_state *s, uint64_t rss, uint64_t ceiling,
					   int64_t now_ms);

/* Resident bytes of this process (/proc/self/statm), 0 if unknown. */
uint64_t gw_memguard_rss(void);

/* What a shed did: closed the heavy senders' connections, every connection, or none (abusive
 * connections were closed lately: their queued calls hold the memory, and they drain
 * without help, while closing every connection would only fail the honest callers' calls). */
enum gw_memguard_shed { GW_MEMGUARD_SHED_HEAVY, GW_MEMGUARD_SHED_ALL, GW_MEMGUARD_SHED_NONE };

/* Samples every GW_MEMGUARD_TICK_MS on base and calls shed(arg) when it decides so. ceiling_bytes
 * 0: no guard (NULL returned, nothing to free). quota_bytes is only shown in the metrics. */
struct gw_memguard *gw_memguard_new(struct event_base *base, uint64_t ceiling_bytes,
				    uint64_t quota_bytes, enum gw_memguard_shed (*shed)(void *arg),
				    void *arg);
/* memory_rss_bytes, memory_ceiling_bytes, grpc_memory_quota_bytes, memory_sheds_total,
 * memory_sheds_all_total (the sheds that closed every connection), memory_trims_total. NULL g:
 * only the RSS. */
struct gw_metrics_out;
void gw_memguard_render_metrics(void *g, struct gw_metrics_out *o);
/* Sets the relief: relieve(arg) runs every tick while RSS is at half the ceiling or more and
 * returns how many connections it closed (it counts them). NULL g is fine. */
void gw_memguard_set_relief(struct gw_memguard *g, size_t (*relieve)(void *arg), void *arg);
void gw_memguard_free(struct gw_memguard *g);	/* NULL is fine */

#endif
