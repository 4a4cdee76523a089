/*
 * config_async: loads the configuration file on a worker thread and hands the result to the loop.
 *
 * A reload (SIGHUP) must not parse on the loop: every call waits while it does (a hostile 100 KB
 * file took 24 s before the nesting cap, and even a legitimate 1 MiB file takes a while). So
 * gw_config_async_start() starts one thread that runs gw_config_load() (pure, no shared state)
 * and wakes the loop with event_active(); on the loop, done(cfg, errs, arg) gets the outcome.
 *
 * One load at a time: a start while one runs is remembered (once, however many arrive) and runs
 * when the current one has been handed over, so the file read last is never older than the last
 * request. done() runs on the loop thread only; it owns cfg (NULL on failure) and may read errs
 * (cleared after it returns). The base must be thread-aware (evthread_use_pthreads()).
 */
#ifndef A3D_GATEWAY_CONFIG_ASYNC_H
#define A3D_GATEWAY_CONFIG_ASYNC_H

#include "gateway/config/config.h"

struct event_base;
struct gw_config_async;

typedef void (*gw_config_async_fn)(struct gw_config *cfg, const struct gw_errors *errs, void *arg);

/* A loader of path (copied) delivering to done on base's loop; NULL when out of memory. */
struct gw_config_async *gw_config_async_new(struct event_base *base, const char *path,
					    gw_config_async_fn done, void *arg);
/*
 * Requests a load: 0 started now, 1 queued behind the running one (at most one is queued; more
 * requests meanwhile fold into it), -1 the thread could not be started (nothing queued, done()
 * is not called).
 */
int gw_config_async_start(struct gw_config_async *a);
/* 1 while a load runs or waits to be handed over. */
int gw_config_async_busy(const struct gw_config_async *a);
/* Waits for a running load (bounded by the loader's own limits), drops its result without calling
 * done(), frees. NULL is fine. Loop thread only. */
void gw_config_async_free(struct gw_config_async *a);

#endif
