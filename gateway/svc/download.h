/*
 * download: Jobs/GetDownloadUrls (issue 23), on the loop thread: the link cache in front, then
 * per-account coalescing and batching of the misses into one upstream GET /download/r1,r2,...
 *
 * A call is admitted as before (the tenant's bucket in the call layer, then gw_rpc_owner_admit:
 * only the tenant's own rids are looked at, none left -> NOT_FOUND), so the cache and the batches
 * below only ever see rids the caller may see. Then, per distinct rid:
 *   - the link cache (gateway/api/cache.h, the status service's cache, keyed per account and rid)
 *     answers while the job's signed URLs have more than GW_CACHE_LINK_MARGIN_S to run (the
 *     earliest X-Goog-Date + X-Goog-Expires of its URLs); a link whose URLs carry no readable
 *     expiry is never cached, so it is never served stale;
 *   - a miss joins the rid's fetch already queued or in flight (coalesced), or is queued on its
 *     account's pending batch, which leaves after cache.batch_window_ms or when it holds
 *     GW_DOWNLOAD_MAX_BATCH rids (cache.batch_max caps it lower), as ONE GET /download/a,b,c.
 * Every link an answer brings is offered to the cache, then handed to the rid's waiters; rids
 * upstream does not know get NOT_FOUND. The reply keeps request order, duplicates once; when no
 * rid has a link the call fails NOT_FOUND (the shape used for foreign rids too).
 *
 * A batch's upstream timeout is the latest deadline of its waiting calls (the configured default
 * when one has none); a call whose own deadline passes is cancelled by gRPC and leaves its
 * batch. A batch that times out fails only the calls its deadline covered: those that joined it
 * in flight with a later deadline, or none, go out again with the next batch (counted in
 * requeued). Any other upstream failure fails every call waiting on that batch with the one
 * mapping (gw_up_failure_of). A fetch that began before a job was restarted under its rid
 * (gw_cache_forgets moved) stores nothing in the cache.
 *
 * Limits: GW_DOWNLOAD_MAX_RIDS rids queued or in flight at once (a call past it gets
 * RESOURCE_EXHAUSTED, counted in rejected); the link cache's entries and bytes
 * (gw_cache_link_limits, counted evictions and refusals).
 */
#ifndef A3D_GATEWAY_DOWNLOAD_H
#define A3D_GATEWAY_DOWNLOAD_H

#include <stdint.h>

#include "gateway/api/translate.h"

#define GW_DOWNLOAD_MAX_BATCH GW_TR_MAX_RIDS	/* rids in one GET /download (the request's own cap) */
#define GW_DOWNLOAD_MAX_RIDS 20000		/* rids queued or in flight at once */
#define GW_DOWNLOAD_BUCKETS 1024		/* hash buckets of those rids */
#define GW_DOWNLOAD_DEADLINE_MARGIN_MS 20	/* a call with less time left is not sent out again */

struct gw_call;
struct gw_svc;

struct gw_download_counters {
	uint64_t calls;			/* calls that reached the cache (admitted, valid) */
	uint64_t wants;			/* misses sent to the batcher */
	uint64_t coalesced;		/* of those, joined a fetch of the rid queued or in flight */
	uint64_t fetches;		/* GET /download requests started */
	uint64_t batched;		/* rids carried by them */
	uint64_t fetch_errors;		/* fetches that ended with an error */
	uint64_t start_failed;		/* fetches that could not be started */
	uint64_t rejected;		/* misses refused: GW_DOWNLOAD_MAX_RIDS tracked */
	uint64_t requeued;		/* waiters sent out again after a shorter deadline's fetch */
	uint64_t tracked;		/* gauge: rids queued or in flight */
};

/* The service: its state holds the batcher; the link cache is the status service's
 * (gw_svc_status must be registered before it). Metrics: download_* (calls, cache hits and
 * misses, coalesced, fetches, batched rids, errors, refusals, cache entries/bytes/evictions). */
extern const struct gw_svc gw_svc_download;

/* The Jobs/GetDownloadUrls handler (method row of gateway/methods.c). */
void gw_download_rpc(struct gw_call *c);

#endif
