/* The webhook store scenario shared by tests/unit/test_store_hooks.c (SQLite, memory) and
 * tests/unit/test_pg_store.c (PostgreSQL): every backend answers the same steps alike. */
#ifndef A3D_TEST_STORE_HOOK_STEPS_H
#define A3D_TEST_STORE_HOOK_STEPS_H

#include "gateway/state/store.h"

/* One scenario, step by step: op on (tenant, id, rid) -> rc, count. */
struct hook_step {
	enum gw_hook_op op;
	const char *tenant, *id, *rid, *lease;
	int64_t now;
	int arg;	/* SETTLE: state; HEALTH: ok; CLAIM: max */
	int rc;
	long count;
};
static const struct hook_step hook_steps[] = {
	{ GW_HOOK_CREATE, "a", "ep1", NULL, NULL, 1000, 0, 0, 0 },
	{ GW_HOOK_CREATE, "a", "ep1", NULL, NULL, 1000, 0, GW_STORE_CONFLICT, 0 },
	{ GW_HOOK_CREATE, "a", "ep2", NULL, NULL, 1001, 0, 0, 0 },
	{ GW_HOOK_CREATE, "b", "ep3", NULL, NULL, 1002, 0, 0, 0 },
	{ GW_HOOK_GET, "a", "ep1", NULL, NULL, 0, 0, 0, 1 },
	{ GW_HOOK_GET, "b", "ep1", NULL, NULL, 0, 0, GW_STORE_ABSENT, 0 },	/* another tenant's */
	{ GW_HOOK_LIST, "a", NULL, NULL, NULL, 0, 0, 0, 2 },
	{ GW_HOOK_LIST, "c", NULL, NULL, NULL, 0, 0, 0, 0 },
	/* a final of tenant a: one row per endpoint of a; again: nothing new */
	{ GW_OUTBOX_ADD, "a", NULL, "rid1", NULL, 2000, 0, 0, 2 },
	{ GW_OUTBOX_ADD, "a", NULL, "rid1", NULL, 2001, 0, 0, 0 },
	{ GW_OUTBOX_ADD, "b", NULL, "rid2", NULL, 2002, 0, 0, 1 },
	{ GW_OUTBOX_ADD, "c", NULL, "rid3", NULL, 2003, 0, 0, 0 },	/* no endpoints */
	{ GW_OUTBOX_DEPTH, NULL, NULL, NULL, NULL, 0, 0, 0, 2 },
	/* not due yet, then claimed by r1; r2 finds nothing while the lease holds */
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r1", 1999, 8, 0, 0 },
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r1", 2000, 1, 0, 1 },
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r2", 2500, 8, 0, 2 },
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r2", 2600, 8, 0, 0 },
	/* r1's lease (until now + 1000) ran out: claimable again */
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r3", 3001, 8, 0, 1 },
	/* settle: only the lease holder */
	{ GW_OUTBOX_SETTLE, "a", "ep1", "rid1", "r1", 3002, GW_OUTBOX_DELIVERED, GW_STORE_CONFLICT, 0 },
	{ GW_OUTBOX_SETTLE, "a", "ep1", "rid1", "r3", 3002, GW_OUTBOX_DELIVERED, 0, 0 },
	{ GW_OUTBOX_SETTLE, "a", "ep1", "rid1", "r3", 3002, GW_OUTBOX_DELIVERED, GW_STORE_CONFLICT, 0 },
	{ GW_OUTBOX_SETTLE, "a", "ep2", "rid1", "r2", 3003, GW_OUTBOX_PENDING, 0, 0 },	/* retry at 9000 */
	{ GW_OUTBOX_DEPTH, NULL, NULL, NULL, NULL, 0, 0, 0, 2 },
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r4", 8999, 8, 0, 1 },	/* b's row, its r2 lease over */
	{ GW_OUTBOX_CLAIM, NULL, NULL, NULL, "r4", 9000, 8, 0, 1 },	/* ep2's retry */
	/* a delivered row keeps its rid: the same final later writes nothing */
	{ GW_OUTBOX_ADD, "a", NULL, "rid1", NULL, 9100, 0, 0, 0 },
	/* health: failing from 10000; disabled once failing 5000 ms (disable_after) */
	{ GW_HOOK_HEALTH, "a", "ep2", NULL, NULL, 10000, 0, 0, 0 },
	{ GW_HOOK_HEALTH, "a", "ep2", NULL, NULL, 14999, 0, 0, 0 },
	{ GW_HOOK_HEALTH, "a", "ep2", NULL, NULL, 15000, 0, 0, 1 },
	{ GW_HOOK_HEALTH, "a", "ep2", NULL, NULL, 16000, 0, 0, 0 },	/* disabled already */
	{ GW_HOOK_HEALTH, "b", "ep2", NULL, NULL, 16000, 0, GW_STORE_ABSENT, 0 },
	/* a disabled endpoint gets no new rows */
	{ GW_OUTBOX_ADD, "a", NULL, "rid4", NULL, 17000, 0, 0, 1 },
	/* delete: its rows go too; another tenant cannot */
	{ GW_HOOK_DELETE, "b", "ep1", NULL, NULL, 0, 0, GW_STORE_ABSENT, 0 },
	{ GW_HOOK_DELETE, "a", "ep2", NULL, NULL, 0, 0, 0, 0 },
	{ GW_HOOK_DELETE, "a", "ep2", NULL, NULL, 0, 0, GW_STORE_ABSENT, 0 },
	{ GW_HOOK_LIST, "a", NULL, NULL, NULL, 0, 0, 0, 1 },
	/* settled rows created before: ep1/rid1 (created at 2000) */
	{ GW_OUTBOX_EXPIRE, NULL, NULL, NULL, NULL, 2000, 0, 0, 0 },
	{ GW_OUTBOX_EXPIRE, NULL, NULL, NULL, NULL, 3000, 0, 0, 1 },
	{ GW_OUTBOX_ADD, "a", NULL, "rid1", NULL, 20000, 0, 0, 1 },
};


/* The request of step st (hook: a scratch hook the request points at). */
static inline struct gw_hook_req hook_step_req(const struct hook_step *st, struct gw_hook *h)
{
	struct gw_hook_req r = { .op = st->op, .hook = h, .tenant = st->tenant, .id = st->id,
				 .rid = st->rid, .lease = st->lease, .now_ms = st->now,
				 .body = "{\"eventType\":\"job.completed\"}",
				 .reason = "failing for too long", .disable_after_ms = 5000 };

	memset(h, 0, sizeof *h);
	snprintf(h->tenant, sizeof h->tenant, "%s", st->tenant ? st->tenant : "");
	snprintf(h->id, sizeof h->id, "%s", st->id ? st->id : "");
	snprintf(h->url, sizeof h->url, "http://127.0.0.1:9/h");
	snprintf(h->secret, sizeof h->secret, "whsec_%s", st->id ? st->id : "");
	h->events = GW_HOOK_EV_JOB_COMPLETED;
	h->created_ms = h->updated_ms = st->now;
	if (st->op == GW_OUTBOX_CLAIM) {
		r.max = (size_t)st->arg;
		r.until_ms = st->now + 1000;
	} else if (st->op == GW_OUTBOX_SETTLE) {
		r.state = st->arg;
		r.attempts = 1;
		r.next_ms = 9000;
	} else if (st->op == GW_HOOK_HEALTH) {
		r.ok = st->arg;
	} else if (st->op == GW_OUTBOX_EXPIRE) {
		r.older_ms = st->now;
	}
	return r;
}

#endif
