/* Unit tests for gateway/rest_sess.c: the REST facade's session table and cookie parsing. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/rest_sess.h"

static const uint8_t key_a[32] = { 1, 2, 3 };

Test(rest_sess, open_find_expire)
{
	struct gw_rest_sess *s = gw_rest_sess_new(4);
	struct gw_rest_sess_stats st;
	char tok[GW_REST_SESS_TOKEN_LEN + 1], tok2[GW_REST_SESS_TOKEN_LEN + 1];
	const char *tenant = NULL;
	uint8_t key[32];

	cr_assert_not_null(s);
	cr_assert_eq(gw_rest_sess_open(s, "team-a", key_a, 1000, 500, tok), 0);
	cr_expect_eq(strlen(tok), GW_REST_SESS_TOKEN_LEN);
	cr_expect_eq(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
		     GW_REST_SESS_TOKEN_LEN);
	cr_assert_eq(gw_rest_sess_open(s, "team-a", key_a, 1000, 500, tok2), 0);
	cr_expect_str_neq(tok, tok2);
	cr_assert_eq(gw_rest_sess_find(s, tok, strlen(tok), 1499, &tenant, key), 0);
	cr_expect_str_eq(tenant, "team-a");
	cr_expect_eq(memcmp(key, key_a, 32), 0);
	/* One character off, too short: unknown. */
	tok[0] = tok[0] == 'A' ? 'B' : 'A';
	cr_expect_eq(gw_rest_sess_find(s, tok, strlen(tok), 1499, &tenant, key), -1);
	cr_expect_eq(gw_rest_sess_find(s, tok2, 10, 1499, &tenant, key), -1);
	/* At its expiry it is gone, and dropped. */
	cr_expect_eq(gw_rest_sess_find(s, tok2, strlen(tok2), 1500, &tenant, key), -1);
	gw_rest_sess_stats(s, &st);
	cr_expect_eq(st.live, 1);
	cr_expect_eq(st.expired, 1);
	cr_expect_eq(st.unknown, 2);
	gw_rest_sess_free(s);
}

Test(rest_sess, full_table_drops_expired_then_refuses)
{
	struct gw_rest_sess *s = gw_rest_sess_new(2);
	struct gw_rest_sess_stats st;
	char tok[GW_REST_SESS_TOKEN_LEN + 1];

	cr_assert_eq(gw_rest_sess_open(s, "t", key_a, 0, 10, tok), 0);
	cr_assert_eq(gw_rest_sess_open(s, "t", key_a, 0, 1000, tok), 0);
	cr_expect_eq(gw_rest_sess_open(s, "t", key_a, 5, 1000, tok), -1);	/* both alive */
	cr_expect_eq(gw_rest_sess_open(s, "t", key_a, 20, 1000, tok), 0);	/* one expired */
	gw_rest_sess_stats(s, &st);
	cr_expect_eq(st.refused_full, 1);
	cr_expect_eq(st.live, 2);
	cr_expect_eq(st.opened, 3);
	gw_rest_sess_drop(s, tok, strlen(tok));
	gw_rest_sess_stats(s, &st);
	cr_expect_eq(st.live, 1);
	gw_rest_sess_free(s);
}

Test(rest_sess, tenant_name_too_long)
{
	struct gw_rest_sess *s = gw_rest_sess_new(2);
	char tok[GW_REST_SESS_TOKEN_LEN + 1], name[GW_REST_SESS_MAX_TENANT + 2];

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	cr_expect_eq(gw_rest_sess_open(s, name, key_a, 0, 10, tok), -1);
	gw_rest_sess_free(s);
}

static const struct {
	const char *header;
	const char *value;	/* NULL: none */
} cookie_cases[] = {
	{ "dmsess=abc", "abc" },
	{ "dmsess=abc; Path", "abc" },			/* the JS SDK's */
	{ "a=1; dmsess=abc; b=2", "abc" },
	{ "xdmsess=abc", NULL },
	{ "a=dmsess=abc", NULL },
	{ "dmsess=", NULL },
	{ "", NULL },
	{ "a=1;dmsess=q-_9", "q-_9" },
};

Test(rest_sess, cookie)
{
	for (size_t i = 0; i < sizeof cookie_cases / sizeof cookie_cases[0]; i++) {
		size_t len = 0;
		const char *v = gw_rest_sess_cookie(cookie_cases[i].header, &len);

		if (!cookie_cases[i].value) {
			cr_expect_null(v, "%s", cookie_cases[i].header);
			continue;
		}
		cr_assert_not_null(v, "%s", cookie_cases[i].header);
		cr_expect_eq(len, strlen(cookie_cases[i].value), "%s", cookie_cases[i].header);
		cr_expect_eq(strncmp(v, cookie_cases[i].value, len), 0, "%s", cookie_cases[i].header);
	}
}
