/*
 * svc: what a service registers. Each service (gateway/svc/) exports one descriptor; the top lists
 * them once (gateway/methods.c) and drives them: init at start, start once the loop runs, drain on
 * SIGTERM, free at exit; /metrics walks their renderers and the admin HTTP listener their routes.
 * The way haproxy's stats modules and Redis's module hooks register, so nothing below the top
 * includes what sits above it.
 *
 * Every hook may be NULL. A service's method rows (gateway/methods.c) name the descriptor, and
 * their handlers get the state init made through gw_call_svc().
 */
#ifndef A3D_GATEWAY_SVC_H
#define A3D_GATEWAY_SVC_H

#include <stddef.h>

struct gw_env;
struct gw_metrics_out;
struct evhttp_request;

/* An HTTP route on the admin listener: method (EVHTTP_REQ_* bits) and a path prefix (exact when
 * exact is set). The handler answers the request. */
struct gw_http_route {
	int methods;
	const char *prefix;
	int exact;
	void (*handle)(void *state, struct evhttp_request *req);
};

struct gw_svc {
	const char *name;
	/* Builds the state (*state may stay NULL). 0, or -1 with one clear line in err. */
	int (*init)(struct gw_env *env, void **state, char *err, size_t errlen);
	void (*start)(void *state);		/* the loop runs: background work may begin */
	void (*drain)(void *state);		/* SIGTERM: end long-lived streams, stop new work */
	int (*idle)(void *state);		/* 1 when nothing it started is still running */
	void (*free)(void *state);		/* after the loop stopped */
	void (*metrics)(void *state, struct gw_metrics_out *o);
	const struct gw_http_route *routes;
	size_t nroutes;
};

#endif
