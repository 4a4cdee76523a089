/*
 * notify: subscribe and emit. See notify.h.
 */
#include "gateway/base/notify.h"

#include <string.h>

int gw_notify_sub(struct gw_notify *ev, gw_notify_fn fn, void *arg)
{
	if (!fn || ev->n >= GW_NOTIFY_MAX_SUBS)
		return -1;
	ev->sub[ev->n].fn = fn;
	ev->sub[ev->n].arg = arg;
	ev->n++;
	return 0;
}

void gw_notify_unsub(struct gw_notify *ev, gw_notify_fn fn, void *arg)
{
	for (size_t i = 0; i < ev->n; i++) {
		if (ev->sub[i].fn != fn || ev->sub[i].arg != arg)
			continue;
		memmove(&ev->sub[i], &ev->sub[i + 1], (ev->n - i - 1) * sizeof ev->sub[0]);
		ev->n--;
		return;
	}
}

void gw_notify_emit(struct gw_notify *ev, const void *data)
{
	ev->emitted++;
	for (size_t i = 0; i < ev->n; i++)
		ev->sub[i].fn(ev->sub[i].arg, data);
}
