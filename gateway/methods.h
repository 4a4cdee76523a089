/*
 * methods: the one table of every gRPC method the gateway serves (one row per method, every fact
 * about it: gateway/call/call.h, struct gw_method) and the list of services that register
 * (gateway/call/svc.h). The top builds the server from them; nothing else lists methods.
 */
#ifndef A3D_GATEWAY_METHODS_H
#define A3D_GATEWAY_METHODS_H

#include <stddef.h>

struct gw_method;
struct gw_svc;

#define GW_METHODS_MAX 64		/* rows the table may have (the stats tables size by it) */

/* The method rows; *n receives the count. Static: never freed. */
const struct gw_method *gw_methods(size_t *n);
/* The row of a gRPC path, or NULL. */
const struct gw_method *gw_methods_find(const char *path);
/* The services, in the order they are started (and drained); *n receives the count. */
const struct gw_svc *const *gw_methods_services(size_t *n);

#endif
