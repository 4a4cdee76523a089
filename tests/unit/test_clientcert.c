/* Unit tests for auth/caller/clientcert.c: certificate CN in, tenant index (or none) out. */
#include <criterion/criterion.h>
#include <string.h>
#include <openssl/x509.h>

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

/* A certificate whose subject has the given CN entries (bytes, len each; none: no CN). */
static X509 *cert_with(const char *const *cns, const int *lens, size_t n)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"test", -1, -1,
				   0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
							(const unsigned char *)cns[i], lens[i], -1, 0),
			     1);
	return x;
}

Test(clientcert, x509_cn_table)
{
	static const struct {
		const char *cn[2];
		int len[2];
		size_t n;		/* CN entries */
		size_t outlen;
		size_t want;		/* 0: none */
		const char *out;
	} cases[] = {
		{ { "team-a" }, { 6 }, 1, 64, 6, "team-a" },
		{ { "svc.team-b.example" }, { 18 }, 1, 64, 18, "svc.team-b.example" },
		{ { "team-a", "team-b" }, { 6, 6 }, 2, 64, 6, "team-a" },	/* the first, as gRPC */
		{ { 0 }, { 0 }, 0, 64, 0, "" },					/* no CN */
		{ { "team-a\0evil" }, { 11 }, 1, 64, 0, "" },			/* embedded NUL */
		{ { "team-a" }, { 6 }, 1, 7, 6, "team-a" },			/* just fits */
		{ { "team-a" }, { 6 }, 1, 6, 0, "" },				/* never truncated */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		X509 *x = cert_with(cases[i].cn, cases[i].len, cases[i].n);
		char out[64] = "junk";

		cr_expect_eq(gw_clientcert_x509_cn(x, out, cases[i].outlen), cases[i].want, "#%zu", i);
		cr_expect_str_eq(out, cases[i].out, "#%zu", i);
		X509_free(x);
	}
}

Test(clientcert, x509_cn_null)
{
	char out[8] = "junk";

	cr_expect_eq(gw_clientcert_x509_cn(NULL, out, sizeof out), 0);
	cr_expect_str_eq(out, "");
	cr_expect_eq(gw_clientcert_x509_cn(NULL, NULL, 0), 0);
}
