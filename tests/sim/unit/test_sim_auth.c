/* sim_auth: Basic and Cookie parsing, accounts, sessions. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_auth.h"

Test(sim_auth, basic_table)
{
	static const struct { const char *hdr, *id, *secret; } cases[] = {
		/* base64("demo-client-id:demo-client-secret") */
		{ "Basic ZGVtby1jbGllbnQtaWQ6ZGVtby1jbGllbnQtc2VjcmV0", "demo-client-id", "demo-client-secret" },
		{ "basic ZGVtby1jbGllbnQtaWQ6ZGVtby1jbGllbnQtc2VjcmV0", "demo-client-id", "demo-client-secret" },
		{ "Basic YTpi", "a", "b" },			/* a:b */
		{ "Basic YTo=", "a", "" },			/* a: (empty secret) */
		{ "Basic YTpiOmM=", "a", "b:c" },		/* a:b:c: the first colon splits */
		{ "Basic YWI=", NULL, NULL },			/* ab: no colon */
		{ "Basic OmI=", NULL, NULL },			/* :b: empty id */
		{ "Basic !!!!", NULL, NULL },			/* not base64 */
		{ "Basic YTpi=", NULL, NULL },			/* bad length */
		{ "Basic YT=i", NULL, NULL },			/* '=' inside */
		{ "Basic ", NULL, NULL },
		{ "Bearer YTpi", NULL, NULL },
		{ "garbage", NULL, NULL },
		{ NULL, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[64] = "", secret[64] = "";
		int rc = sim_auth_parse_basic(cases[i].hdr, id, sizeof(id), secret, sizeof(secret));

		if (cases[i].id == NULL) {
			cr_expect_eq(rc, -1, "case %zu (%s) accepted", i, cases[i].hdr);
		} else {
			cr_expect_eq(rc, 0, "case %zu (%s) rejected", i, cases[i].hdr);
			cr_expect_str_eq(id, cases[i].id, "case %zu", i);
			cr_expect_str_eq(secret, cases[i].secret, "case %zu", i);
		}
	}
}

Test(sim_auth, basic_too_long_for_buffer)
{
	char id[2], secret[64];

	cr_expect_eq(sim_auth_parse_basic("Basic YWJjOmQ=", id, sizeof(id), secret, sizeof(secret)), -1,
		     "abc does not fit in 2 bytes");
}

Test(sim_auth, cookie_table)
{
	static const struct { const char *hdr, *want; } cases[] = {
		{ "dmsess=abc", "abc" },
		{ "dmsess=abc; Path", "abc" },			/* the JS SDK's sloppy echo */
		{ "dmsess=abc; Path=/; HttpOnly", "abc" },
		{ "other=1; dmsess=xyz", "xyz" },
		{ "other=1;dmsess=xyz;more=2", "xyz" },
		{ "xdmsess=abc", NULL },
		{ "dmsess=", NULL },
		{ "dmsess", NULL },
		{ "", NULL },
		{ NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char v[64] = "";
		int rc = sim_auth_cookie_value(cases[i].hdr, "dmsess", v, sizeof(v));

		if (cases[i].want == NULL) {
			cr_expect_eq(rc, -1, "case %zu (%s) found '%s'", i, cases[i].hdr, v);
		} else {
			cr_expect_eq(rc, 0, "case %zu (%s)", i, cases[i].hdr);
			cr_expect_str_eq(v, cases[i].want, "case %zu", i);
		}
	}
}

Test(sim_auth, accounts_sessions_and_expiry)
{
	struct sim *s = calloc(1, sizeof(*s));
	char cookie[256], hdr[128], *v, *semi;
	int a;

	s->cfg.session_ttl = 10;
	s->cfg.credits = 5;
	cr_assert_eq(sim_auth_account_add(s, "demo-client-id:demo-client-secret"), 0);
	cr_assert_eq(sim_auth_account_add(s, "team:s3cret"), 0);
	cr_expect_eq(sim_auth_account_add(s, "nocolon"), -1);
	cr_expect_eq(sim_auth_account_add(s, ":x"), -1);
	cr_expect_eq(s->accounts[1].credits, 5);

	cr_expect_eq(sim_auth_check_basic(s, "Basic dGVhbTpzM2NyZXQ="), 1);	/* team:s3cret */
	cr_expect_eq(sim_auth_check_basic(s, "Basic dGVhbTpzM2NyZXU="), -1);	/* team:s3creu */

	a = 1;
	cr_assert_eq(sim_auth_login(s, a, 1000.0, cookie, sizeof(cookie)), 0);
	cr_expect(strncmp(cookie, "dmsess=", 7) == 0, "%s", cookie);
	cr_expect_not_null(strstr(cookie, "; Path=/; Expires="));
	cr_expect_not_null(strstr(cookie, " GMT; HttpOnly"));
	cr_expect_null(strstr(cookie, "Domain"));
	v = cookie + 7;
	semi = strchr(v, ';');
	*semi = '\0';
	cr_expect_eq(strcspn(v, "=;, "), strlen(v), "cookie value is URL-safe");

	snprintf(hdr, sizeof(hdr), "dmsess=%s; Path", v);
	cr_expect_eq(sim_auth_request(s, hdr, NULL, 1005.0), 1, "valid cookie");
	cr_expect_eq(sim_auth_request(s, hdr, NULL, 1010.0), -1, "expired at login + ttl");
	cr_expect_eq(sim_auth_request(s, hdr, "Basic dGVhbTpzM2NyZXQ=", 1010.0), -1,
		     "Basic alone is not a session");
	cr_expect_eq(sim_auth_request(s, "dmsess=unknown", NULL, 1005.0), -1);
	cr_expect_eq(sim_auth_request(s, NULL, NULL, 1005.0), -1);

	sim_auth_revoke_all(s);
	cr_expect_eq(sim_auth_request(s, hdr, NULL, 1001.0), -1, "revoked");
	sim_auth_free(s);
	free(s);
}

Test(sim_auth, basic_only_with_lenient_auth_table)
{
	/* cookie (valid, unknown, none) x Basic (right, wrong, none) x --lenient-auth → account */
	struct sim *s = calloc(1, sizeof(*s));
	char cookie[256], good[128];
	static const char *const basic_ok = "Basic dGVhbTpzM2NyZXQ=";	/* team:s3cret */
	static const char *const basic_bad = "Basic dGVhbTpzM2NyZXU=";	/* team:s3creu */
	struct { int cookie; const char *basic; int lenient, want; } cases[] = {
		{ 1, NULL, 0, 1 },
		{ 1, basic_ok, 0, 1 },		/* the official demo sends Basic beside the cookie */
		{ 1, basic_bad, 0, 1 },		/* a cookie wins over any Basic */
		{ 0, basic_ok, 0, -1 },		/* Basic only at GET /session/auth */
		{ 0, basic_ok, 1, 1 },		/* unless --lenient-auth */
		{ 0, basic_bad, 1, -1 },
		{ 2, basic_ok, 0, -1 },		/* an unknown cookie does not fall back to Basic */
		{ 2, basic_ok, 1, 1 },
		{ 0, NULL, 1, -1 },
		{ 0, NULL, 0, -1 },
	};

	s->cfg.session_ttl = 10;
	cr_assert_eq(sim_auth_account_add(s, "demo-client-id:demo-client-secret"), 0);
	cr_assert_eq(sim_auth_account_add(s, "team:s3cret"), 0);
	cr_assert_eq(sim_auth_login(s, 1, 1000.0, cookie, sizeof(cookie)), 0);
	snprintf(good, sizeof(good), "%.*s", (int)strcspn(cookie, ";"), cookie);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *hdr = cases[i].cookie == 1 ? good : cases[i].cookie == 2 ? "dmsess=unknown" : NULL;

		s->cfg.lenient_auth = cases[i].lenient;
		cr_expect_eq(sim_auth_request(s, hdr, cases[i].basic, 1001.0), cases[i].want, "case %zu", i);
	}
	sim_auth_free(s);
	free(s);
}

Test(sim_auth, http_date)
{
	char d[64];

	sim_auth_http_date(0, d, sizeof(d));
	cr_expect_str_eq(d, "Thu, 01 Jan 1970 00:00:00 GMT");
	sim_auth_http_date(1795850100, d, sizeof(d));
	cr_expect_str_eq(d, "Sat, 28 Nov 2026 07:15:00 GMT");
}
