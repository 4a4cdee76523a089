/*
 * sim_http: the simulator's HTTP/1.1 server on libevent bufferevents: parsing, routing, CORS,
 * JSON errors, body limits, request stats and injected faults.
 *
 * Why not evhttp: evhttp (2.1) buffers a whole request body before calling back and answers an
 * oversized body itself with an HTML 413. The simulator must stream storage uploads to disk as
 * they arrive and answer every error with a JSON body, so it parses HTTP itself (keep-alive,
 * Content-Length and chunked bodies, Expect: 100-continue). API and storage share one listener.
 *
 * A request body goes to one sink, chosen when the headers are complete: memory for API routes
 * (at most SIM_HTTP_API_BODY_MAX, else 413), a file descriptor for storage uploads (the storage
 * module's, at most --max-upload-bytes) or the bit bucket (an early error or a fault; bounded by
 * SIM_HTTP_DISCARD_MAX, after which the connection is closed). Handlers run when the request is
 * complete, synchronously, and fill in a struct sim_resp that sim_http then writes.
 */
#ifndef A3D_SIM_HTTP_H
#define A3D_SIM_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sim_resp.h"

struct sim;
struct evbuffer;

#define SIM_HTTP_MAX_HEADER_BYTES 16384	/* request line + headers */
#define SIM_HTTP_MAX_HEADERS 64
#define SIM_HTTP_ARG_MAX 4096		/* a route's {param}: up to ~150 comma-separated rids */
#define SIM_HTTP_API_BODY_MAX (1 << 20)	/* API request bodies */
#define SIM_HTTP_DISCARD_MAX (16 << 20)	/* body bytes read and dropped before an early answer */
#define SIM_HTTP_IDLE_SECONDS 60
#define SIM_HTTP_IO_CHUNK 65536		/* bytes moved from the socket buffer to a file at once */
#define SIM_HTTP_READ_HIGHWATER (256 * 1024)

enum sim_route_flags {
	SIM_RT_AUTH = 1,	/* needs a session cookie (Basic too with --lenient-auth) */
	SIM_RT_STORAGE = 2,	/* signed-URL storage: body may stream to a file */
	SIM_RT_CONTROL = 4,	/* /_sim/ test controls: no auth, no faults, not counted */
	SIM_RT_PREFIX = 8,	/* template is a path prefix */
};

enum sim_sink { SIM_SINK_MEM, SIM_SINK_FILE, SIM_SINK_DISCARD };

struct sim_req {
	char method[16];
	char *path;		/* as sent (percent-encoded), without the query */
	char *query;		/* raw query without '?', "" when none */
	char *hname[SIM_HTTP_MAX_HEADERS];
	char *hval[SIM_HTTP_MAX_HEADERS];
	int n_headers;
	int http10;
	int64_t content_length;	/* -1 when absent */
	int chunked;
	int route;		/* index into the route table, -1 for none */
	char arg[SIM_HTTP_ARG_MAX];	/* the {param} of the route template, percent-decoded */
	int account;		/* set by sim_http for SIM_RT_AUTH routes, else -1 */
	double t_start;		/* monotonic */

	enum sim_sink sink;
	struct evbuffer *body;	/* SIM_SINK_MEM */
	int sink_fd;		/* SIM_SINK_FILE: opened by sim_storage, closed by sim_http */
	int64_t sink_off;	/* next file offset to write */
	int64_t sink_limit;	/* bytes accepted into the sink */
	int64_t body_bytes;	/* body bytes seen so far */
	int upload;		/* storage: index of the upload being written, -1 */
	int64_t range_first, range_last, range_total;	/* storage: parsed Content-Range */
};


typedef void (*sim_http_handler)(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

/* Binds the listener on s->cfg.listen_host:listen_port, sets s->port and s->base_url. 0 or -1. */
int sim_http_start(struct sim *s);
void sim_http_free(struct sim *s);	/* closes the listener and every connection */

/* The route table, for stats: number of routes and "METHOD /template" of route i. */
int sim_http_route_count(void);
const char *sim_http_route_name(int i);
int sim_http_route_flags(int i);
int sim_http_route_find(const char *name);	/* index of "METHOD /template", -1 */

/* Request accessors. The header lookup is case-insensitive; NULL when absent. sim_http_query
 * percent-decodes the first value of name into out; -1 when absent or too long. */
const char *sim_http_header(const struct sim_req *rq, const char *name);
int sim_http_query(const struct sim_req *rq, const char *name, char *out, size_t outlen);
/* Percent-decodes src into out (also '+' → ' ' when form is set). -1 when too long or bad. */
int sim_http_decode(const char *src, size_t len, int form, char *out, size_t outlen);
/* Parses the request body as a JSON object; NULL (and *rs answered 400) when it is not one. */
json_t *sim_http_json_body(struct sim_req *rq, struct sim_resp *rs);

#endif
