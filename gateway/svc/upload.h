/*
 * upload: Jobs/UploadVideo, a client stream relayed to upstream storage as a resumable upload.
 *
 * The first message carries name (1..GW_UPLOAD_NAME_MAX bytes, no '/' or control characters)
 * and optionally size (0 = not given); every message may carry chunk bytes. The gateway asks
 * `GET /upload?name=..&resumable=1` for a signed URL (with the account's session), opens a
 * resumable session (`POST <url>`, `x-goog-resumable: start` -> 201 + Location), and PUTs the
 * file in chunks of upload_chunk_bytes with `Content-Range: bytes a-b/` + `*` (total unknown yet;
 * -> 308 + Range), one PUT in flight at a time. The end of the stream PUTs the rest with
 * `bytes a-b/total` -> 200/201.
 * The bytes go through a ring buffer of gw_upload_buffer_cap(upload_chunk_bytes,
 * uploads.max_message_bytes, max_message_bytes) bytes (two chunks + the largest message, rounded
 * up to GW_UPLOAD_UNIT), whatever the file size, so that the client's next messages are received
 * while a chunk is on its way to storage (neither side waits for the other: issue 21). A chunk
 * goes out when the one before it is persisted and a byte after it has arrived (or the stream
 * ended); a chunk that would cross the ring's end is cut there (a shorter, still whole-unit
 * chunk). The next message is asked for only while the ring has room for the largest one; what
 * the client sends before that waits in gRPC core, bounded per stream by the HTTP/2 flow-control
 * window and in total by the resource quota. A message larger than uploads.max_message_bytes
 * is INVALID_ARGUMENT. Storage may persist less than a PUT carried (308 with a shorter Range):
 * the rest is sent again from the ring (chunks stay whole units when storage persists whole
 * units, as GCS does).
 *
 * Long-lived (issue 13): a client that stops sending holds its slot and buffer, so
 *   - no message for uploads.idle_timeout_ms while the gateway waits for one -> DEADLINE_EXCEEDED
 *     "no message from the client for N ms (uploads.idle_timeout_ms)"; the storage transfer is
 *     aborted and everything freed (the resumable session is abandoned: storage expires it);
 *   - open uploads are capped per tenant (tenants[].limits.uploads, else uploads.max_per_tenant,
 *     else a fair share of uploads.max_concurrent) and in all (uploads.max_concurrent):
 *     RESOURCE_EXHAUSTED naming the tenant and the cap, counted per tenant, logged in a budget.
 *
 * Reply {url: the signed URL from /upload, size: total bytes}. Errors: bad name, empty upload,
 * size mismatch -> INVALID_ARGUMENT; storage failures -> UNAVAILABLE (DEADLINE_EXCEEDED for
 * timeouts); never a signed URL's query in a message or log. Client cancel aborts the transfer.
 */
#ifndef A3D_GATEWAY_UPLOAD_H
#define A3D_GATEWAY_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#define GW_UPLOAD_UNIT (256u << 10)		/* storage wants non-final chunks in multiples of this */
#define GW_UPLOAD_DEFAULT_CHUNK (4u << 20)
#define GW_UPLOAD_MAX_CHUNK (256u << 20)	/* a configured chunk above this is clamped */
#define GW_UPLOAD_NAME_MAX 255
#define GW_UPLOAD_RANGE_MAX 64			/* "bytes a-b/total" fits */
#define GW_UPLOAD_MAX_STALLS 3			/* chunks in a row storage accepts without progress */

struct gw_call;
struct gw_svc;
struct gw_upload_ctx;

/* The service (gateway/call/svc.h): its state is the uploads' shared state (slots per tenant,
 * gauges, counters); its one method row is UploadVideo -> gw_upload_handle. */
extern const struct gw_svc gw_svc_upload;

/* The UploadVideo handler (its method row in gateway/methods.c). */
void gw_upload_handle(struct gw_call *c);

/* ---- pure parts (unit-tested) ---- */

/* 0 when name is acceptable; else -1 with a message naming the problem. */
int gw_upload_name_check(const char *name, char *err, size_t errlen);

/* The chunk size to use for a configured value: 0 -> default; rounded down to a multiple of
 * GW_UPLOAD_UNIT (at least one unit); at most GW_UPLOAD_MAX_CHUNK. */
size_t gw_upload_chunk_size(size_t configured);

/* "bytes first-last/" + "*" (not final: total unknown), "bytes first-last/total" (final), or
 * "bytes " + "*" + "/total" (final with len 0). Returns 0, or -1 when it does not fit or the arguments
 * are inconsistent (final with first + len != total; not final with len 0). */
int gw_upload_content_range(char *out, size_t outlen, uint64_t first, uint64_t len, int final,
			    uint64_t total);

/* Storage's Range header after a 308: NULL or "" -> 0 bytes persisted; "bytes=0-N" -> N + 1.
 * Returns 0 with *persisted set, or -1 when malformed (not starting at 0, N not a number). */
int gw_upload_parse_range(const char *range, uint64_t *persisted);

/* After sending [offset, offset + len), storage reports persisted bytes in total: *consumed =
 * how many bytes of the buffer to drop. -1 when persisted is outside [offset, offset + len]. */
int gw_upload_advance(uint64_t offset, uint64_t len, uint64_t persisted, uint64_t *consumed);

/* Bytes of one upload's ring: 2 x chunk + the largest message accepted, that is upload_msg (0 =
 * not set) capped by grpc_msg (gRPC's receive limit; 0 = 4 MiB), rounded up to GW_UPLOAD_UNIT. */
size_t gw_upload_buffer_cap(size_t chunk, size_t upload_msg, size_t grpc_msg);
/* The largest chunk one message may carry (the second term above). */
size_t gw_upload_message_max(size_t upload_msg, size_t grpc_msg);

/* The next PUT, from the ring's state: storage persisted offset bytes, received arrived, eof = the
 * client half-closed; the ring has cap bytes (a multiple of GW_UPLOAD_UNIT, >= chunk). Returns 1
 * with *len and *final when a PUT may go now: not final, min(chunk, bytes to the ring's end) once
 * more than that is held; final, all that is held, at the end of a non-empty stream. Returns 0
 * when it must wait for more bytes (or the end). The caller sends one PUT at a time. */
int gw_upload_next_put(uint64_t offset, uint64_t received, int eof, size_t chunk, size_t cap,
		       uint64_t *len, int *final);

/* The fast path's test (gateway/call/call.h, gw_call_recv_raw): whether a message of total bytes
 * that starts with the n bytes at p is an UploadVideoRequest carrying only chunk (field 3, length-
 * delimited, its length running to the message's end). Returns 0 with *hdr = the bytes before
 * the chunk's data (tag + length), or -1 (anything else, or the header not within n bytes: the
 * message is then decoded as usual). */
int gw_upload_chunk_header(const unsigned char *p, size_t n, size_t total, size_t *hdr);

/* Percent-encodes s for a query value (RFC 3986 unreserved kept). -1 when it does not fit. */
int gw_upload_escape(const char *s, char *out, size_t outlen);

/* Resolves a Location against the signed URL it answers: absolute http(s) URLs as they are,
 * "/path" onto the signed URL's scheme://host[:port]. Returns a malloc'd URL or NULL. */
char *gw_upload_resolve(const char *signed_url, const char *location);

#endif
