/*
 * slots: per-name and global caps on a long-lived resource. See slots.h.
 */
#include "gateway/base/slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/base/metrics.h"

#define SLOTS_DEFAULT_NAMES 1024

struct gw_slots_entry {
	struct gw_slots_entry *next;
	uint64_t held;
	uint64_t refused_name, refused_global;
	char name[];
};

static uint32_t slots_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

int gw_slots_init(struct gw_slots *s, size_t max_names, int keep_refused)
{
	size_t nb = 16;

	memset(s, 0, sizeof *s);
	if (max_names == 0)
		max_names = SLOTS_DEFAULT_NAMES;
	if (max_names > GW_SLOTS_MAX_NAMES)
		max_names = GW_SLOTS_MAX_NAMES;
	/* About one entry per bucket when full; chains stay short, the table stays small. */
	while (nb < max_names)
		nb <<= 1;
	s->buckets = calloc(nb, sizeof *s->buckets);
	if (!s->buckets)
		return -1;
	s->nbuckets = nb;
	s->max_names = max_names;
	s->keep_refused = keep_refused;
	return 0;
}

void gw_slots_free(struct gw_slots *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nbuckets; i++)
		while (s->buckets[i]) {
			struct gw_slots_entry *e = s->buckets[i];

			s->buckets[i] = e->next;
			free(e);
		}
	free(s->buckets);
	memset(s, 0, sizeof *s);
}

static int slots_name_ok(const char *name)
{
	return name && name[0] && strnlen(name, GW_SLOTS_NAME_MAX + 1) <= GW_SLOTS_NAME_MAX;
}

static struct gw_slots_entry **slots_find(const struct gw_slots *s, const char *name)
{
	struct gw_slots_entry *const *pp = &s->buckets[slots_hash(name) & (s->nbuckets - 1)];

	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return (struct gw_slots_entry **)pp;
}

static void slots_unlink(struct gw_slots *s, struct gw_slots_entry **pp)
{
	struct gw_slots_entry *e = *pp;

	*pp = e->next;
	s->nnames--;
	free(e);
}

/* The table is full: drops one entry that holds nothing (its refusals move to the totals of
 * dropped ones). 0 when one was dropped, -1 when every entry holds slots. Linear, but only
 * reached with the table full of names, which the caps make rare. */
static int slots_drop_idle(struct gw_slots *s)
{
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct gw_slots_entry **pp = &s->buckets[i]; *pp; pp = &(*pp)->next)
			if ((*pp)->held == 0) {
				s->refused_dropped += (*pp)->refused_name + (*pp)->refused_global;
				slots_unlink(s, pp);
				return 0;
			}
	return -1;
}

static struct gw_slots_entry *slots_add(struct gw_slots *s, const char *name)
{
	struct gw_slots_entry **pp;
	struct gw_slots_entry *e;
	size_t len = strlen(name);

	if (s->nnames >= s->max_names && slots_drop_idle(s) != 0)
		return NULL;
	e = calloc(1, sizeof *e + len + 1);
	if (!e)
		return NULL;
	memcpy(e->name, name, len + 1);
	pp = &s->buckets[slots_hash(name) & (s->nbuckets - 1)];
	e->next = *pp;
	*pp = e;
	s->nnames++;
	return e;
}

enum gw_slots_verdict gw_slots_take(struct gw_slots *s, const char *name, uint64_t name_cap,
				    uint64_t global_cap)
{
	struct gw_slots_entry *e;
	enum gw_slots_verdict v = GW_SLOTS_OK;

	if (!s || !s->buckets || !slots_name_ok(name))
		return GW_SLOTS_BAD;
	e = *slots_find(s, name);
	if (e && name_cap && e->held >= name_cap)
		v = GW_SLOTS_NAME_FULL;
	else if (global_cap && s->used >= global_cap)
		v = GW_SLOTS_GLOBAL_FULL;
	if (v == GW_SLOTS_OK && !e) {
		e = slots_add(s, name);
		if (!e && s->nnames >= s->max_names) {
			s->refused_table++;
			return GW_SLOTS_TABLE_FULL;
		}
		if (!e)
			return GW_SLOTS_BAD;	/* out of memory */
	}
	if (v != GW_SLOTS_OK) {
		/* Counted against the name: a tenant refused by the global cap is told in its own
		 * metrics too. Peers (keep_refused 0) get no entry for a refusal. */
		if (!e && s->keep_refused)
			e = slots_add(s, name);
		if (v == GW_SLOTS_NAME_FULL) {
			s->refused_name++;
			e->refused_name++;
		} else {
			s->refused_global++;
			if (e)
				e->refused_global++;
		}
		return v;
	}
	e->held++;
	s->used++;
	if (s->used > s->peak)
		s->peak = s->used;
	return GW_SLOTS_OK;
}

void gw_slots_give(struct gw_slots *s, const char *name)
{
	struct gw_slots_entry **pp;

	if (!s || !s->buckets || !slots_name_ok(name))
		return;
	pp = slots_find(s, name);
	if (!*pp || (*pp)->held == 0)
		return;
	(*pp)->held--;
	s->used--;
	if ((*pp)->held == 0 && (!s->keep_refused || ((*pp)->refused_name + (*pp)->refused_global) == 0))
		slots_unlink(s, pp);
}

uint64_t gw_slots_held(const struct gw_slots *s, const char *name)
{
	const struct gw_slots_entry *e;

	if (!s || !s->buckets || !slots_name_ok(name))
		return 0;
	e = *slots_find(s, name);
	return e ? e->held : 0;
}

uint64_t gw_slots_refused(const struct gw_slots *s, const char *name)
{
	const struct gw_slots_entry *e;

	if (!s || !s->buckets || !slots_name_ok(name))
		return 0;
	e = *slots_find(s, name);
	return e ? e->refused_name + e->refused_global : 0;
}

uint64_t gw_slots_fair_share(uint64_t global, size_t names)
{
	if (global == 0)
		return 0;
	if (names == 0)
		names = 1;
	return global / names + (global % names != 0);
}

const char *gw_slots_reason(enum gw_slots_verdict v, const char *name_word)
{
	switch (v) {
	case GW_SLOTS_NAME_FULL: return name_word ? name_word : "name";
	case GW_SLOTS_GLOBAL_FULL: return "global";
	case GW_SLOTS_TABLE_FULL: return "table";
	case GW_SLOTS_OK: return "ok";
	default: return "error";
	}
}

void gw_slots_render(const struct gw_slots *s, const char *family, const char *help_held,
		     const char *name_label, const char *name_word, int per_name,
		     struct gw_metrics_out *o)
{
	char lab[GW_METRICS_MAX_LABEL], name[GW_METRICS_MAX_LABEL], labels[2 * GW_METRICS_MAX_LABEL];
	char help[160];

	if (!s || !family || !o)
		return;
	if (!name_label)
		name_label = "name";
	if (!name_word)
		name_word = "name";
	snprintf(name, sizeof name, "%s_held", family);
	gw_metrics_family(o, name, "gauge", help_held ? help_held : "");
	if (!per_name)
		gw_metrics_value(o, name, NULL, s->used);
	for (size_t i = 0; per_name && i < s->nbuckets; i++)
		for (const struct gw_slots_entry *e = s->buckets[i]; e; e = e->next) {
			gw_metrics_label(e->name, lab, sizeof lab);
			snprintf(labels, sizeof labels, "%s=\"%s\"", name_label, lab);
			gw_metrics_value(o, name, labels, e->held);
		}
	snprintf(name, sizeof name, "%s_refused_total", family);
	snprintf(help, sizeof help, "Refused: the %s's cap, the global cap, or too many distinct %ss.",
		 name_word, name_word);
	gw_metrics_family(o, name, "counter", help);
	if (!per_name) {
		snprintf(labels, sizeof labels, "cap=\"%s\"", name_word);
		gw_metrics_value(o, name, labels, s->refused_name);
		gw_metrics_value(o, name, "cap=\"global\"", s->refused_global);
	}
	for (size_t i = 0; per_name && i < s->nbuckets; i++)
		for (const struct gw_slots_entry *e = s->buckets[i]; e; e = e->next) {
			if (!e->refused_name && !e->refused_global)
				continue;
			gw_metrics_label(e->name, lab, sizeof lab);
			snprintf(labels, sizeof labels, "%s=\"%s\",cap=\"%s\"", name_label, lab,
				 name_word);
			gw_metrics_value(o, name, labels, e->refused_name);
			snprintf(labels, sizeof labels, "%s=\"%s\",cap=\"global\"", name_label, lab);
			gw_metrics_value(o, name, labels, e->refused_global);
		}
	gw_metrics_value(o, name, "cap=\"table\"", s->refused_table);
}
