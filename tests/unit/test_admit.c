/*
 * Unit tests for gateway/call/admit.c: method costs resolved from the method rows and the
 * configuration (tenant's own > rate.costs > the row's), as a table of (tenant, method) -> cost,
 * and their re-resolution on the reload event with bucket levels carried over.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/base/clock.h"
#include "gateway/base/notify.h"
#include "gateway/base/ratelimit.h"
#include "gateway/call/admit.h"
#include "gateway/call/call.h"
#include "gateway/config/config.h"
#include "gateway/methods.h"

static void set_cost(struct gw_costs_cfg *c, const char *method, unsigned cost)
{
	cr_assert_lt(c->n, GW_CONFIG_MAX_COSTS);
	snprintf(c->e[c->n].method, sizeof c->e[c->n].method, "%s", method);
	c->e[c->n].cost = cost;
	c->n++;
}

/* The admission over the real method table, as the top builds it. */
static const char *names[GW_METHODS_MAX];
static unsigned costs[GW_METHODS_MAX];

static struct gw_admit *admit_new(const struct gw_config *cfg, struct gw_notify *reload)
{
	size_t n;
	const struct gw_method *m = gw_methods(&n);

	for (size_t i = 0; i < n; i++) {
		names[i] = m[i].name;
		costs[i] = m[i].cost;
	}
	return gw_admit_new(names, costs, n, cfg, reload, NULL);
}

static size_t midx(const char *path)
{
	size_t n;
	const struct gw_method *m = gw_methods(&n), *row = gw_methods_find(path);

	cr_assert_not_null(row, "%s", path);
	return (size_t)(row - m);
}

/* Two tenants (burst 20), team-a with its own costs, global costs for StartJob and GetStatus. */
static void fill(struct gw_config *cfg, struct gw_tenant_cfg t[2])
{
	memset(cfg, 0, sizeof *cfg);
	memset(t, 0, 2 * sizeof *t);
	t[0].name = (char *)"team-a";
	t[1].name = (char *)"team-b";
	for (size_t i = 0; i < 2; i++) {
		t[i].rate_per_second = 10;
		t[i].burst = 20;
	}
	cfg->tenants = t;
	cfg->ntenants = 2;
	set_cost(&cfg->costs, "StartJob", 8);
	set_cost(&cfg->costs, "GetStatus", 0);
	set_cost(&t[0].costs, "StartJob", 3);
	set_cost(&t[0].costs, "ListJobs", 1000);
}

Test(admit, costs_table)
{
	static const struct {
		size_t tidx;		/* 2: not a tenant of the configuration (global costs) */
		const char *path;
		unsigned cost;
	} rows[] = {
		{ 0, "/animate3d.v1.Jobs/StartJob", 3 },		/* team-a's own */
		{ 0, "/animate3d.v1.Jobs/GetStatus", 0 },		/* global */
		{ 0, "/animate3d.v1.Jobs/UploadVideo", 5 },		/* the row's */
		{ 0, "/animate3d.v1.Jobs/ListJobs", 1000 },		/* the most a cost may be */
		{ 1, "/animate3d.v1.Jobs/StartJob", 8 },		/* global */
		{ 1, "/animate3d.v1.Jobs/GetUploadUrl", 2 },		/* the row's */
		{ 1, "/animate3d.v1.Characters/GetModelUploadUrl", 2 },
		{ 1, "/animate3d.v1.Account/GetCreditBalance", 1 },
		{ 2, "/animate3d.v1.Jobs/StartJob", 8 },		/* unknown tenant: global */
		{ 2, "/animate3d.v1.Jobs/GetUploadUrl", 2 },
		{ 9, "/animate3d.v1.Jobs/GetUploadUrl", 2 },		/* out of range: global */
	};
	struct gw_config cfg;
	struct gw_tenant_cfg t[2];
	size_t n;
	struct gw_admit *a;

	gw_methods(&n);
	fill(&cfg, t);
	a = admit_new(&cfg, NULL);
	cr_assert_not_null(a);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		unsigned c = gw_admit_cost(a, rows[i].tidx, midx(rows[i].path));

		cr_expect_eq(c, rows[i].cost, "row %zu (%s): %u", i, rows[i].path, c);
	}
	cr_expect_eq(gw_admit_cost(a, 0, n), 1, "a row past the table costs 1");
	cr_expect_eq(gw_admit_cost(NULL, 0, 0), 1);
	gw_admit_free(a);
	gw_admit_free(NULL);
}

/* Every method row's own cost, with no configuration: what the documentation promises. */
Test(admit, row_costs_without_configuration)
{
	static const struct {
		const char *name;
		unsigned cost;
	} rows[] = {
		{ "StartJob", 5 }, { "UploadVideo", 5 }, { "GetUploadUrl", 2 },
		{ "GetModelUploadUrl", 2 }, { "GetStatus", 1 }, { "WatchStatus", 1 },
		{ "ListJobs", 1 }, { "GetCreditBalance", 1 }, { "DeleteEndpoint", 1 },
	};
	size_t n;
	const struct gw_method *m = gw_methods(&n);
	struct gw_admit *a = admit_new(NULL, NULL);

	cr_assert_not_null(a);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		size_t k;

		for (k = 0; k < n && strcmp(m[k].name, rows[i].name) != 0; k++)
			;
		cr_assert_lt(k, n, "%s", rows[i].name);
		cr_expect_eq(gw_admit_cost(a, 0, k), rows[i].cost, "%s", rows[i].name);
		/* Every rate-limited row's name is one the configuration accepts in rate.costs. */
		cr_expect(gw_config_method_known(rows[i].name), "%s", rows[i].name);
	}
	gw_admit_free(a);
}

/* cluster.expected_replicas: each replica's bucket holds its share of the tenant's rate and
 * burst, the burst never below the tenant's dearest call (nor above the configured burst). */
Test(admit, buckets_are_shared_by_expected_replicas)
{
	static const struct {
		unsigned replicas;
		int64_t rate_a, burst_a;	/* micro-tokens per ms, micro-tokens */
		int64_t rate_b, burst_b;
	} rows[] = {
		{ 0, 10000, 20000000, 10000, 20000000 },	/* a hand-built configuration: one replica */
		{ 1, 10000, 20000000, 10000, 20000000 },
		/* team-a's ListJobs costs 1000 > its burst: the floor is the burst itself.
		 * team-b's dearest call is StartJob (8 by rate.costs): 20 / 4 = 5 is raised to 8. */
		{ 4, 2500, 20000000, 2500, 8000000 },
		{ 2, 5000, 20000000, 5000, 10000000 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_config cfg;
		struct gw_tenant_cfg t[2];
		const struct gw_ratelimit *rl;
		struct gw_admit *a;

		fill(&cfg, t);
		cfg.cluster.expected_replicas = rows[i].replicas;
		a = admit_new(&cfg, NULL);
		cr_assert_not_null(a);
		rl = gw_admit_buckets(a);
		cr_assert_eq(rl->n, 2);
		cr_expect_eq(rl->t[0].b.rate, rows[i].rate_a, "row %zu: %lld", i, (long long)rl->t[0].b.rate);
		cr_expect_eq(rl->t[0].b.burst, rows[i].burst_a, "row %zu: %lld", i, (long long)rl->t[0].b.burst);
		cr_expect_eq(rl->t[1].b.rate, rows[i].rate_b, "row %zu: %lld", i, (long long)rl->t[1].b.rate);
		cr_expect_eq(rl->t[1].b.burst, rows[i].burst_b, "row %zu: %lld", i, (long long)rl->t[1].b.burst);
		gw_admit_free(a);
	}
}

/* The reload event re-resolves costs and rebuilds buckets; persisting tenants keep their level. */
Test(admit, reload_event)
{
	struct gw_config c1, c2;
	struct gw_tenant_cfg t1[2], t2[2];
	struct gw_notify reload = { 0 };
	struct gw_admit *a;
	const struct gw_ratelimit *rl;
	int64_t wait;

	fill(&c1, t1);
	fill(&c2, t2);
	c2.costs.n = 0;		/* the global StartJob cost is gone */
	t2[0].name = (char *)"team-b";	/* team-b moves to index 0 */
	t2[1].name = (char *)"team-c";
	t2[0].costs.n = 0;
	a = admit_new(&c1, &reload);
	cr_assert_not_null(a);
	cr_expect_eq(gw_admit_cost(a, 1, midx("/animate3d.v1.Jobs/StartJob")), 8);
	rl = gw_admit_buckets(a);
	cr_assert_not_null(rl);
	/* Empty team-b's bucket (burst 20): StartJob costs it 8 (global), then 8, then 4 left. */
	{
		unsigned cost;

		cr_expect_eq(gw_admit_take(a, "team-b", 1, midx("/animate3d.v1.Jobs/StartJob"), &wait,
					   &cost), 1);
		cr_expect_eq(cost, 8);
		cr_expect_eq(gw_admit_take(a, "team-b", 1, midx("/animate3d.v1.Jobs/StartJob"), &wait,
					   &cost), 1);
		cr_expect_eq(gw_admit_take(a, "team-b", 1, midx("/animate3d.v1.Jobs/StartJob"), &wait,
					   &cost), 0, "4 tokens left: refused");
		cr_expect_gt(wait, 0);
		cr_expect(gw_ratelimit_take((struct gw_ratelimit *)rl, 1, "team-b", 4, gw_clock_now_us() / 1000, &wait));
	}
	gw_notify_emit(&reload, &c2);
	cr_expect_eq(gw_admit_cost(a, 0, midx("/animate3d.v1.Jobs/StartJob")), 5, "the row's again");
	rl = gw_admit_buckets(a);
	cr_expect_str_eq(rl->t[0].name, "team-b");
	cr_expect_lt(rl->t[0].b.tokens, GW_BUCKET_SCALE, "team-b's level carried over");
	{
		unsigned cost;

		/* team-b by name, with the index it had in the old generation (1): still empty. */
		cr_expect_eq(gw_admit_take(a, "team-b", 1, midx("/animate3d.v1.Jobs/GetStatus"), &wait,
					   &cost), 0);
		cr_expect_gt(wait, 0);
		cr_expect_eq(cost, 1);
		/* A tenant gone from the configuration is let through (limits never refuse because
		 * of a reload). */
		cr_expect_eq(gw_admit_take(a, "team-a", 0, midx("/animate3d.v1.Jobs/StartJob"), &wait,
					   &cost), 1);
		cr_expect_eq(gw_admit_take(NULL, "x", 0, 0, &wait, &cost), 1);
	}
	cr_expect_str_eq(rl->t[1].name, "team-c");
	gw_admit_free(a);
	cr_expect_eq(reload.n, 0, "freeing unsubscribes");
}
