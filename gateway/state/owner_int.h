/*
 * owner_int: what owner.c shares with owner_recon.c. Not for other modules (gateway/state/owner.h).
 */
#ifndef A3D_GATEWAY_OWNER_INT_H
#define A3D_GATEWAY_OWNER_INT_H

#include <stddef.h>

#include "gateway/state/owner.h"

/* gw_owner_reconcile without the owner's counters (same arguments and result). */
enum gw_recon_verdict gw_owner_recon_decide(const struct gw_idem *e, const char *list_json,
					    size_t list_len, const char *const *recorded,
					    size_t nrecorded, const char *dl_json, size_t dl_len,
					    struct gw_owner_recon *out);

#endif
