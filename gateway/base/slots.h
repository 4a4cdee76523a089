/*
 * slots: who holds how much of a long-lived resource (open streams, uploads in flight, keys in
 * flight), counted per name (a tenant, a peer address), with a cap per name and a global cap.
 *
 * A resource that one caller can hold for as long as it likes (a WatchStatus stream, a stalled
 * upload) needs two bounds: a global one that protects the process, and one per holder so that a
 * single holder cannot take every slot of the global one (issue 13). gw_slots_take() checks both
 * and counts the refusal against the name either way; gw_slots_give() hands one back.
 *
 * Names are copied (a name stays valid across config reloads, which free tenant structs). Entries
 * live in a hash table bounded by max_names: an entry holding nothing is removed at once unless
 * keep_refused is set (tenants: their refusal counts stay for /metrics), in which case such idle
 * entries are reused only when the table is full (their counts move to refused_dropped). A new
 * name that finds the table full of holders is refused (GW_SLOTS_TABLE_FULL, counted).
 *
 * Pure: no clock, no I/O besides the renderer; loop thread only.
 */
#ifndef A3D_GATEWAY_SLOTS_H
#define A3D_GATEWAY_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define GW_SLOTS_NAME_MAX 128		/* bytes of a name (= GW_STORE_TENANT_MAX); longer is refused */
#define GW_SLOTS_MAX_NAMES 65536	/* max_names above this is clamped */

enum gw_slots_verdict {
	GW_SLOTS_OK = 0,
	GW_SLOTS_NAME_FULL,	/* the name holds name_cap slots already */
	GW_SLOTS_GLOBAL_FULL,	/* every name together holds global_cap slots */
	GW_SLOTS_TABLE_FULL,	/* a new name, and max_names names hold slots */
	GW_SLOTS_BAD		/* NULL, empty or over-long name, or out of memory */
};

struct gw_slots_entry;

struct gw_slots {
	struct gw_slots_entry **buckets;
	size_t nbuckets;		/* power of two */
	size_t nnames, max_names;
	int keep_refused;
	uint64_t used;			/* gauge: slots held by every name */
	uint64_t peak;			/* the most ever held at once */
	uint64_t refused_name, refused_global, refused_table;	/* totals by reason */
	uint64_t refused_dropped;	/* refusals of idle entries reused for another name */
};

/* 0, or -1 when out of memory. max_names 0 -> 1024. keep_refused: see above. */
int gw_slots_init(struct gw_slots *s, size_t max_names, int keep_refused);
void gw_slots_free(struct gw_slots *s);	/* zeroed afterwards; NULL or zeroed is fine */

/*
 * Takes one slot for name when it holds fewer than name_cap and all names fewer than global_cap
 * (0 = no such cap). On a refusal nothing is taken and the refusal is counted (per name when the
 * name has or gets an entry, and in the totals).
 */
enum gw_slots_verdict gw_slots_take(struct gw_slots *s, const char *name, uint64_t name_cap,
				    uint64_t global_cap);
/* Gives one slot of name back (a name holding none is ignored). */
void gw_slots_give(struct gw_slots *s, const char *name);
/* Slots name holds now (0 for an unknown name). */
uint64_t gw_slots_held(const struct gw_slots *s, const char *name);
/* Refusals counted against name (0 for an unknown name). */
uint64_t gw_slots_refused(const struct gw_slots *s, const char *name);

/* The default per-name cap: a fair share of the global cap, ceil(global / names), at least 1;
 * 0 (no cap) when global is 0. names 0 counts as 1. */
uint64_t gw_slots_fair_share(uint64_t global, size_t names);

/* "tenant" / "global" / "table" / "peer"-style word for a refusal in messages and labels; name_word
 * names GW_SLOTS_NAME_FULL ("tenant", "peer"). */
const char *gw_slots_reason(enum gw_slots_verdict v, const char *name_word);

struct gw_metrics_out;
/*
 * Prints two Prometheus families: <prefix><family>_held (gauge) and <prefix><family>_refused_total
 * (counter, label cap = <name_word> | global | table). With per_name (label name_label), one
 * sample per entry: held by name, refused by name and cap; without, the totals only (for
 * unbounded names such as peer addresses). help_held names what a slot is.
 */
void gw_slots_render(const struct gw_slots *s, const char *family, const char *help_held,
		     const char *name_label, const char *name_word, int per_name,
		     struct gw_metrics_out *o);

#endif
