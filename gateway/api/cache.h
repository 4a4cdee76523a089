/*
 * cache: job statuses and download links per (account, rid), on the loop thread.
 *
 * Status entries: SUCCESS and FAILURE are final and stay until LRU eviction; PROGRESS and RETRY
 * (and anything else) are served only while younger than the TTL. Entries store the JobStatus
 * packed (protobuf) without its rid, next to the rid itself, so a final entry costs its bytes
 * plus about 60 bytes of bookkeeping.
 *
 * Ordering: every store carries the sequence number of the upstream fetch that produced it (the
 * status batcher numbers fetches in the order they start). An answer from an older fetch never
 * replaces a newer one, and a final state is never replaced by anything (finals are immutable),
 * whatever order the answers arrive in.
 *
 * Download links: the GetDownloadUrls reply item (DownloadLink) per rid, served until
 * GW_CACHE_LINK_MARGIN_S before the earliest expiry of its signed URLs (X-Goog-Date +
 * X-Goog-Expires in each URL's query); a link with no URL or any URL without an expiry is not
 * cached. Wall-clock seconds (the URLs carry UTC times).
 *
 * Both tables are bounded (max_entries each, at least 1) with LRU eviction, counted; the link
 * table also by bytes (GW_CACHE_LINK_MAX_BYTES unless gw_cache_link_limits says otherwise: a
 * link carries a signed URL per file, a few KiB). Nothing here does I/O or reads a clock:
 * callers pass the time.
 */
#ifndef A3D_GATEWAY_CACHE_H
#define A3D_GATEWAY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "animate3d/v1/jobs.pb-c.h"

#define GW_CACHE_MAX_VALUE (64u << 10)	/* a packed entry larger than this is not cached (counted) */
#define GW_CACHE_LINK_MARGIN_S 60	/* links are dropped this long before their URLs expire */
#define GW_CACHE_LINK_MAX_BYTES (32u << 20)	/* default byte limit of the link table */
#define GW_CACHE_MAX_ENTRIES_LIMIT (16u << 20)	/* hard cap on max_entries */

struct gw_cache;

struct gw_cache_counters {
	uint64_t hits, misses;		/* status lookups */
	uint64_t expired;		/* misses because the entry was older than the TTL */
	uint64_t stores;		/* status answers stored */
	uint64_t stale_ignored;		/* answers older than the entry (or non-final over final) */
	uint64_t evictions;		/* LRU evictions (status table) */
	uint64_t too_large;		/* values over GW_CACHE_MAX_VALUE, not cached */
	uint64_t link_hits, link_misses, link_stores, link_evictions;
	uint64_t link_uncacheable;	/* links without a readable expiry, or expiring too soon */
	uint64_t link_refused;		/* links larger than the link table's byte limit */
	uint64_t entries, link_entries, link_bytes;	/* gauges */
};

/* max_entries: per table (0 -> 1; capped at GW_CACHE_MAX_ENTRIES_LIMIT); ttl_ms: lifetime of
 * non-final statuses (<= 0 means they are never served from the cache). NULL on out of memory. */
struct gw_cache *gw_cache_new(size_t max_entries, int64_t ttl_ms);
void gw_cache_free(struct gw_cache *c);		/* NULL is a no-op */

/* 1 for SUCCESS and FAILURE. */
int gw_cache_state_final(int state);

/*
 * Status lookup at now_ms. Returns 1 (hit) and sets *out to a newly allocated JobStatus (free it
 * with protobuf_c_message_free_unpacked(&(*out)->base, NULL)); 0 on a miss (absent, or non-final
 * and older than the TTL); -1 when out of memory (counted as a miss). out may be NULL to only test.
 * A hit makes the entry most recently used.
 */
int gw_cache_get(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
		 Animate3d__V1__JobStatus **out);

/*
 * The same lookup for replies built without decoding (the cached GetStatus path):
 * gw_cache_packed_size() is the length of the hit's JobStatus as protobuf_c_message_pack would
 * write it (rid included), or 0 when gw_cache_get would miss; it counts nothing and does not
 * touch the LRU order. gw_cache_get_packed() writes those bytes into out[0..cap) and returns the
 * length, counting a hit and making the entry most recently used like gw_cache_get; on a miss,
 * NULL out or cap too small it writes nothing, counts a miss and returns 0. *state (may be NULL)
 * receives the JobState of a hit.
 */
/* Writes v as a protobuf varint at p (room for 10 bytes); returns its length. For callers that
 * frame the packed bytes above inside a reply of their own. */
size_t gw_cache_varint_put(uint8_t *p, size_t v);
size_t gw_cache_packed_size(const struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms);
size_t gw_cache_get_packed(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
			   uint8_t *out, size_t cap, int *state);

/* Like gw_cache_get but ignores the TTL and touches no counter or LRU order; *age_ms (may be
 * NULL) receives now_ms minus the entry's fetch time. For the batcher's bookkeeping. */
int gw_cache_peek(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
		  Animate3d__V1__JobStatus **out, int64_t *age_ms);

/*
 * Stores st (its rid is the key; borrowed) as fetched at fetched_ms by fetch number seq.
 * Returns 1 stored, 0 ignored (an entry from a later fetch exists, or the entry is final), -1 on
 * error (no rid, out of memory, packed size over GW_CACHE_MAX_VALUE). May evict the LRU entry.
 */
int gw_cache_put(struct gw_cache *c, size_t acct, const Animate3d__V1__JobStatus *st, uint64_t seq,
		 int64_t fetched_ms);

/* Drops the entry of a non-final status (a webhook said it changed); finals stay. Returns 1 when
 * something was dropped. */
int gw_cache_invalidate(struct gw_cache *c, size_t acct, const char *rid);

/* Drops the entry whatever its state: the rid was restarted upstream (a multi-person job
 * reprocessed under the same rid), so even a final status is history. Its download link goes too.
 * Returns 1 when a status entry was dropped. */
int gw_cache_forget(struct gw_cache *c, size_t acct, const char *rid);
/* How many gw_cache_forget calls there have been. A fetch that started before a forget may carry
 * the restarted rid's old answer: links fetched then are not stored (gateway/svc/download.c
 * compares this count at the start and at the end of its fetch). */
uint64_t gw_cache_forgets(const struct gw_cache *c);

/* ---- download links ---- */

/* Expiry of one signed URL in Unix seconds (X-Goog-Date "YYYYMMDDTHHMMSSZ" + X-Goog-Expires
 * seconds, read from its query), or -1 when either is missing or malformed. */
int64_t gw_cache_url_expiry(const char *url);
/* The earliest URL expiry in link (-1 when it has no URL or one URL has no readable expiry). */
int64_t gw_cache_link_expiry(const Animate3d__V1__DownloadLink *link);

/* 1 and a new DownloadLink in *out (free as above) while now_s is before its expiry minus
 * GW_CACHE_LINK_MARGIN_S; 0 otherwise; -1 when out of memory. */
int gw_cache_link_get(struct gw_cache *c, size_t acct, const char *rid, int64_t now_s,
		      Animate3d__V1__DownloadLink **out);
/* Stores link (borrowed) when it has a readable expiry more than GW_CACHE_LINK_MARGIN_S after
 * now_s: 1 stored, 0 not cacheable or larger than the byte limit (counted), -1 on error.
 * Replaces an existing link; evicts LRU links while the entry or byte limit would be passed. */
int gw_cache_link_put(struct gw_cache *c, size_t acct, const Animate3d__V1__DownloadLink *link,
		      int64_t now_s);

/* The link table's limits: max_entries (0 -> 1; capped at GW_CACHE_MAX_ENTRIES_LIMIT) and
 * max_bytes (0 -> GW_CACHE_LINK_MAX_BYTES). Links over the new limits are evicted (counted). */
void gw_cache_link_limits(struct gw_cache *c, size_t max_entries, size_t max_bytes);

const struct gw_cache_counters *gw_cache_counters(const struct gw_cache *c);
int64_t gw_cache_ttl_ms(const struct gw_cache *c);

#endif
