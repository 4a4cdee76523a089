/*
 * rest: the REST facade (issue 18). On its own listener (cfg->rest_listen, listen.rest) the gateway
 * answers the upstream Animate 3D REST API's own paths and JSON (docs/upstream-api.md), so clients
 * written against upstream (the official SDKs, curl scripts) work with a team's API key instead of
 * the upstream client secret. The admin listener (gateway/http.h, listen.http) stays separate.
 *
 * A request goes through the same pipeline as a gRPC call, not a copy of it:
 *
 *   evhttp request -> route row (gateway/api/facade.h: path -> gRPC method, REST -> protobuf)
 *     -> packed request -> gw_call_local() (gateway/call/call.h): the method row's permission,
 *        the tenant's rate limit, ownership, idempotency, status cache and batching, the upstream
 *        request, the access log and rpc_* counters, exactly as for gRPC
 *     -> the call's end in a sink -> reply message -> upstream's JSON (facade render), or the
 *        gRPC status -> upstream's HTTP status and {"message","error"} body; 429 carries
 *        Retry-After from the rate limit's retry delay.
 *
 * Who is calling, the way clients log in upstream: GET /session/auth with HTTP Basic (the
 * tenant's name, one of its API keys) gives a `dmsess` cookie of the gateway's own
 * (gateway/rest_sess.h: kept in the state store, so any replica sharing it, or the same one
 * after a restart, takes it) that later requests carry; or `Authorization: Bearer <api key>` on every
 * request (the gRPC metadata value, handed to the call as it is). Either way the call itself
 * checks the key against the current key ring. Anything else is 401 in upstream's shape.
 *
 * Why evhttp (libevent 2.1.12) and not the bufferevent parser of tests/sim or libmicrohttpd:
 * every answer here is a small JSON document and every body a small JSON request (rest.max_body_
 * bytes, 64 KiB by default), so evhttp's whole-body buffering costs at most max_connections x
 * max_body_bytes; the connection cap, the per-request deadline against slow clients and the
 * accept backoff come from gateway/base/conncap.h, as on the admin listener. The optional
 * streaming /upload (bytes through the gateway to storage) is what would need streamed bodies;
 * it is not offered, so evhttp suffices and no second HTTP stack enters the process.
 *
 * TLS: with tls.cert_file/key_file the listener serves HTTPS with the gRPC listener's certificate
 * (bufferevent_openssl under evhttp, made through conncap's bufferevent hook). With
 * tls.client_ca_file it asks for client certificates as the gRPC listener does (requested and
 * verified, not required; one the CA did not sign fails the handshake: cert_invalid): a request
 * with neither a session nor a key whose certificate's CN maps to a tenant
 * (tenants[].client_cert, auth/caller/clientcert.h) calls as that tenant with its
 * client_cert.permissions; a CN mapped to nobody is 401 (cert_unknown). A key or a session
 * always wins over the certificate. With tls.client_cert_required, a request whose connection
 * sent no certificate is 401 (cert_missing), a key or not (gRPC refuses the handshake instead).
 *
 * A client that closes its connection (or resets it) while its call runs cancels the call, as a
 * gRPC client's reset does (gw_call_local_abandon: CANCELLED in rpc_total, rest_cancelled_total):
 * evhttp stops reading a connection while its request is answered, so running calls'
 * connections are polled for it every REST_GONE_CHECK_MS. The connection is then closed, which
 * frees its request; nothing touches either afterwards.
 *
 * Limits, each refusal counted (rest_rejected_total{reason}): request line + headers
 * (rest.max_header_bytes; evhttp answers 400/431 itself: not counted), body (rest.max_body_bytes:
 * 413; evhttp buffers up to twice that and refuses beyond, uncounted, like the admin listener),
 * a connection must complete each request within rest.timeout_s (slowloris), open connections
 * (rest.max_connections, out of what the admin listener leaves), a request's deadline in the
 * pipeline (rest.call_timeout_ms, as a gRPC deadline).
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_REST_H
#define A3D_GATEWAY_REST_H

#include <stddef.h>

#define GW_REST_MAX_PEER 64		/* "ipv4:127.0.0.1:5555" */
#define GW_REST_MAX_AUTH 1024		/* an Authorization value looked at (= GW_APIKEY_MAX_VALUE) */

struct gw_env;
struct gw_rest;

/* Binds env->cfg->rest_listen with its connection cap; reserve_conns are the admin listener's
 * (they come out of the same descriptor budget). NULL with one clear line in err on failure. */
struct gw_rest *gw_rest_new(struct gw_env *env, size_t reserve_conns, char *err, size_t errlen);
/* Requests still running are answered 503 and their calls abandoned. NULL is a no-op. */
void gw_rest_free(struct gw_rest *r);

/* Retry-After seconds for a retry delay in ms: rounded up, at least 1. Pure. */
long gw_rest_retry_after_s(long retry_ms);

#endif
