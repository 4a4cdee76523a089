/*
 * facade: the REST facade's translation, the other way round from translate.h. A request in the
 * upstream's own REST shape (docs/upstream-api.md: path, query, JSON body) becomes the gRPC
 * request of the method that serves it, and that method's reply becomes the upstream's JSON
 * again. The listener (gateway/rest.h) runs the gRPC method in between through the call engine
 * (gateway/call/call.h, local calls), so an operation has one code path whichever door it came
 * in by: permission, rate limit, ownership, idempotency, cache and the upstream request are the
 * method's own.
 *
 * One row per REST route: HTTP method, path, the gRPC method path, and the two functions. The
 * rows name gRPC methods by path (the method table lives above this layer).
 *
 * Pure functions: no I/O, no loop, no globals; unit-tested from tables in tests/unit/test_facade.c.
 */
#ifndef A3D_GATEWAY_FACADE_H
#define A3D_GATEWAY_FACADE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "animate3d/v1/jobs.pb-c.h"

#define GW_FACADE_ERR_MAX 256		/* err buffers are at least this long */
#define GW_FACADE_MAX_QUERY_VALUE 1024	/* one decoded query parameter value */

enum gw_facade_verb { GW_FACADE_GET = 1, GW_FACADE_POST = 2, GW_FACADE_DELETE = 4 };

/* A REST request, as the listener parsed it (borrowed strings). */
struct gw_facade_in {
	const char *arg;		/* the path after the route's prefix ("" for exact routes),
					 * still percent-encoded */
	const char *query;		/* raw query string without '?', or NULL */
	const char *body;		/* request body (not NUL-terminated), or NULL */
	size_t body_len;
	const char *idempotency_key;	/* the Idempotency-Key header (POST /process), or NULL */
};

/* Builds the gRPC request (a malloc'd message: protobuf_c_message_free_unpacked) or refuses with
 * err: the caller answers 400 like upstream does for a malformed request. */
typedef int (*gw_facade_build_fn)(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				  size_t errlen);
/* The upstream's JSON for a reply message; a malloc'd string, or NULL when out of memory. */
typedef char *(*gw_facade_render_fn)(const ProtobufCMessage *resp);

struct gw_facade_route {
	unsigned verbs;			/* enum gw_facade_verb bits */
	const char *prefix;		/* "/status/": with_arg, else the whole path ("/list") */
	int with_arg;			/* the rest of the path is the argument (non-empty) */
	const char *rpc;		/* "/animate3d.v1.Jobs/GetStatus" */
	const ProtobufCMessageDescriptor *resp_desc;
	gw_facade_build_fn build;
	gw_facade_render_fn render;
	const char *bad_request_error;	/* "error" of a 400 (POST /process: "503", upstream's job
					 * error "Error processing the parameters"); NULL: "400" */
};

/* The route of verb + path, or NULL; *arg points into path (the argument, or "" for exact
 * routes). When the path is known but not with this verb, *wrong_verb is set (405). */
const struct gw_facade_route *gw_facade_match(unsigned verb, const char *path, const char **arg,
					      int *wrong_verb);
/* Every row (for the listener to resolve rpc paths at start); *n receives the count. */
const struct gw_facade_route *gw_facade_routes(size_t *n);

/* Builds the row's request and packs it into a malloc'd buffer. 0, or -1 with err. */
int gw_facade_build(const struct gw_facade_route *r, const struct gw_facade_in *in, uint8_t **out,
		    size_t *len, char *err, size_t errlen);
/* Unpacks reply[0..len) as the row's response and renders it; malloc'd, or NULL (malformed or
 * out of memory: the listener answers 500). */
char *gw_facade_render(const struct gw_facade_route *r, const uint8_t *reply, size_t len);

/* POST /process's "params" array (["key=value", ...]; NULL or null: none) into r->params (every
 * documented key, aliases included, as its typed field) and r->extra_params (any other key, left
 * for upstream to judge). 0, or -1 with err in upstream's words ("Error processing the
 * parameters: <key>") when a documented key's value cannot be read. Checks nothing more: the
 * call validates the fields as it validates a gRPC caller's. (facade_params.c) */
int gw_facade_params(json_t *params, Animate3d__V1__StartJobRequest *r, char *err, size_t errlen);

/* The HTTP status upstream would answer for a gRPC code: OK 200, INVALID_ARGUMENT and
 * FAILED_PRECONDITION 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
 * ALREADY_EXISTS 409, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501, UNAVAILABLE 503,
 * DEADLINE_EXCEEDED 504, anything else 500. */
int gw_facade_http_status(int grpc_code);
/* Upstream's error body {"message": msg, "error": "<http status>"}: malloc'd, or NULL. A 400 of
 * route r (NULL: none) carries r->bad_request_error instead when set. */
char *gw_facade_error_json(const struct gw_facade_route *r, int http_status, const char *msg);

/* The value of key in a raw query string, percent- and '+'-decoded into buf. 1 found, 0 absent,
 * -1 when it does not fit cap or decodes to a NUL byte. */
int gw_facade_query(const char *query, const char *key, char *buf, size_t cap);

#endif
