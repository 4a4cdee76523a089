/* Unit tests for auth/caller/clientcert.c: certificate CN in, tenant index (or none) out. */
#include <criterion/criterion.h>
#include <string.h>

#include "auth/caller/clientcert.h"

static struct gw_tenant_cfg tenants[3];
static struct gw_config cfg;
static char long_cn[GW_CLIENTCERT_MAX_CN + 2];

static void setup(void)
{
	memset(long_cn, 'x', GW_CLIENTCERT_MAX_CN + 1);
	tenants[0] = (struct gw_tenant_cfg){ .name = "team-a", .client_cert_cn = "team-a" };
	tenants[1] = (struct gw_tenant_cfg){ .name = "viewer" };	/* keys only */
	tenants[2] = (struct gw_tenant_cfg){ .name = "team-b", .client_cert_cn = "svc.team-b.example" };
	cfg = (struct gw_config){ .tenants = tenants, .ntenants = 3 };
}

TestSuite(clientcert, .init = setup);

Test(clientcert, tenant_table)
{
	static const struct {
		const char *cn;
		size_t len;	/* 0: strlen(cn) */
		int want;
	} cases[] = {
		{ "team-a", 0, 0 },
		{ "svc.team-b.example", 0, 2 },
		{ "Team-A", 0, -1 },			/* case-sensitive */
		{ "team-a ", 0, -1 },			/* exact, no trimming */
		{ "team", 0, -1 },			/* no prefix match */
		{ "team-a-extra", 0, -1 },
		{ "viewer", 0, -1 },			/* a tenant without client_cert */
		{ "team-a\0evil", 11, -1 },		/* embedded NUL */
		{ "", 0, -1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].cn);

		cr_expect_eq(gw_clientcert_tenant(&cfg, cases[i].cn, len), cases[i].want, "cn #%zu %s",
			     i, cases[i].cn);
	}
}

Test(clientcert, limits_and_null)
{
	tenants[0].client_cert_cn = long_cn;
	cr_expect_eq(gw_clientcert_tenant(&cfg, long_cn, strlen(long_cn)), -1);	/* over the limit */
	long_cn[GW_CLIENTCERT_MAX_CN] = '\0';
	cr_expect_eq(gw_clientcert_tenant(&cfg, long_cn, strlen(long_cn)), 0);	/* at the limit */
	cr_expect_eq(gw_clientcert_tenant(NULL, "team-a", 6), -1);
	cr_expect_eq(gw_clientcert_tenant(&cfg, NULL, 6), -1);
}

Test(clientcert, peer_cn_without_call)
{
	char out[8] = "junk";

	cr_expect_eq(gw_clientcert_peer_cn(NULL, out, sizeof out), 0);
	cr_expect_str_eq(out, "");
	cr_expect_eq(gw_clientcert_peer_cn(NULL, NULL, 0), 0);
}
