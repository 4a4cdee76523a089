/*
 * notify: a named event that modules subscribe to, so that whoever causes it (the top) need not
 * know who cares. The configuration reload is one (data: the new const struct gw_config *):
 * tenant buckets are rebuilt and account caps re-applied on it.
 *
 * Loop thread only. Subscribers run in the order they subscribed, synchronously inside
 * gw_notify_emit(); one may not subscribe or unsubscribe from inside its own callback.
 */
#ifndef A3D_GATEWAY_NOTIFY_H
#define A3D_GATEWAY_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define GW_NOTIFY_MAX_SUBS 16		/* subscribers of one event */

typedef void (*gw_notify_fn)(void *arg, const void *data);

struct gw_notify {
	struct {
		gw_notify_fn fn;
		void *arg;
	} sub[GW_NOTIFY_MAX_SUBS];
	size_t n;
	uint64_t emitted;		/* times the event happened */
};

/* Adds fn(arg, data) to the event. 0, or -1 when GW_NOTIFY_MAX_SUBS are already there. */
int gw_notify_sub(struct gw_notify *ev, gw_notify_fn fn, void *arg);
/* Removes the subscription of exactly (fn, arg); no-op when absent. */
void gw_notify_unsub(struct gw_notify *ev, gw_notify_fn fn, void *arg);
/* Runs every subscriber with data. */
void gw_notify_emit(struct gw_notify *ev, const void *data);

#endif
