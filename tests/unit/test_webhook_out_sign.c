/* Unit tests for gateway/svc/webhook_out_sign.c: signatures against vectors computed outside
 * this code (the Standard Webhooks spec's own example, and Python's hmac/hashlib), secrets,
 * message ids, bodies, the backoff schedule. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/svc/webhook_out_sign.h"

/* Expected values from the spec's example and from /usr/bin/python3:
 *   base64(hmac.new(base64.b64decode(key), id + b"." + ts + b"." + body, sha256).digest()) */
static const struct {
	const char *secret, *id, *body;
	int64_t ts;
	const char *sig;	/* NULL: refused */
} sign_cases[] = {
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
	  "{\"test\": 2432232314}", 1614265330, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" },
	{ "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "msg_x",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"r1\",\"status\":\"success\","
	  "\"state\":\"SUCCESS\"}}",
	  1700000000, "v1,icbqGrP3794b9Bmjf4kgLO+cR4MneWhRZhbaWd+tGzY=" },
	{ "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", "{}", 1, NULL },	/* no prefix */
	{ "whsec_", "m", "{}", 1, NULL },				/* no key */
	{ "whsec_abc", "m", "{}", 1, NULL },				/* not base64 length */
	{ "whsec_!!!!", "m", "{}", 1, NULL },				/* not base64 */
	{ NULL, "m", "{}", 1, NULL },
};

Test(webhook_out_sign, vectors)
{
	for (size_t i = 0; i < sizeof sign_cases / sizeof sign_cases[0]; i++) {
		char out[GW_WH_SIG_MAX + 1] = "";
		int rc = gw_wh_sign(sign_cases[i].secret, sign_cases[i].id, sign_cases[i].ts,
				    sign_cases[i].body, strlen(sign_cases[i].body), out, sizeof out);

		if (sign_cases[i].sig) {
			cr_expect_eq(rc, 0, "case %zu", i);
			cr_expect_str_eq(out, sign_cases[i].sig, "case %zu", i);
		} else {
			cr_expect_eq(rc, -1, "case %zu", i);
		}
	}
}

Test(webhook_out_sign, small_buffer_refused)
{
	char out[8];

	cr_expect_eq(gw_wh_sign(sign_cases[0].secret, "m", 1, "{}", 2, out, sizeof out), -1);
}

Test(webhook_out_sign, secret_shape_and_use)
{
	char a[GW_WH_SECRET_MAX + 1], b[GW_WH_SECRET_MAX + 1], sig[GW_WH_SIG_MAX + 1];

	cr_assert_eq(gw_wh_sign_secret_new(a, sizeof a), 0);
	cr_assert_eq(gw_wh_sign_secret_new(b, sizeof b), 0);
	cr_expect_eq(strncmp(a, "whsec_", 6), 0);
	cr_expect_eq(strlen(a), 6 + 44, "32 bytes are 44 base64 characters");
	cr_expect_str_neq(a, b);
	cr_expect_eq(gw_wh_sign(a, "msg_1", 1, "{}", 2, sig, sizeof sig), 0);
	cr_expect_eq(gw_wh_sign_secret_new(a, 10), -1, "a short buffer is refused");
}

Test(webhook_out_sign, msg_id)
{
	char id[GW_WH_MSG_ID_MAX + 1], again[GW_WH_MSG_ID_MAX + 1], other[GW_WH_MSG_ID_MAX + 1];

	/* hashlib.sha256(b"ep1\0rid1").hexdigest()[:32] */
	cr_assert_eq(gw_wh_sign_msg_id("ep1", "rid1", id), 0);
	cr_expect_str_eq(id, "msg_bf81b78e34aebe90c439c06b16691c7f");
	cr_assert_eq(gw_wh_sign_msg_id("ep1", "rid1", again), 0);
	cr_expect_str_eq(id, again, "stable across retries");
	cr_assert_eq(gw_wh_sign_msg_id("ep1r", "id1", other), 0);
	cr_expect_str_neq(id, other, "the separator keeps the pair unambiguous");
	cr_expect_eq(gw_wh_sign_msg_id(NULL, "rid1", other), -1);
}

static const struct {
	const char *rid;
	int state, code;
	const char *msg;
	const char *json;	/* NULL: refused */
} body_cases[] = {
	{ "Ab12", ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, NULL,
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"Ab12\",\"status\":\"success\","
	  "\"state\":\"SUCCESS\"}}" },
	{ "Ab12", ANIMATE3D__V1__JOB_STATE__FAILURE, 1301, "no person found",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"Ab12\",\"status\":\"failure\","
	  "\"state\":\"FAILURE\",\"error_code\":1301,\"error_message\":\"no person found\"}}" },
	{ "q\"x", ANIMATE3D__V1__JOB_STATE__FAILURE, 0, NULL,
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"q\\\"x\",\"status\":\"failure\","
	  "\"state\":\"FAILURE\",\"error_code\":0,\"error_message\":\"\"}}" },
	{ "Ab12", ANIMATE3D__V1__JOB_STATE__PROGRESS, 0, NULL, NULL },
	{ NULL, ANIMATE3D__V1__JOB_STATE__SUCCESS, 0, NULL, NULL },
};

Test(webhook_out_sign, body)
{
	for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
		char *s = gw_wh_sign_body(body_cases[i].rid, body_cases[i].state, body_cases[i].code,
					  body_cases[i].msg);

		if (body_cases[i].json)
			cr_expect_str_eq(s ? s : "(null)", body_cases[i].json, "case %zu", i);
		else
			cr_expect_null(s, "case %zu", i);
		free(s);
	}
}

/* attempt -> [min, max] of the wait, for rnd 0 and rnd all ones. */
static const struct {
	unsigned attempt;
	int64_t lo, hi;
} backoff_cases[] = {
	{ 0, 2500, 5000 },	{ 1, 5000, 10000 },	 { 2, 10000, 20000 },
	{ 9, 1280000, 2560000 }, { 10, 1800000, 3600000 }, { 11, 1800000, 3600000 },
	{ 1000, 1800000, 3600000 },
};

Test(webhook_out_sign, backoff_schedule)
{
	int64_t total = 0;
	unsigned n = 0;

	for (size_t i = 0; i < sizeof backoff_cases / sizeof backoff_cases[0]; i++) {
		cr_expect_eq(gw_wh_backoff_ms(backoff_cases[i].attempt, 0), backoff_cases[i].lo,
			     "attempt %u", backoff_cases[i].attempt);
		cr_expect_leq(gw_wh_backoff_ms(backoff_cases[i].attempt, 0xffffffffu),
			      backoff_cases[i].hi, "attempt %u", backoff_cases[i].attempt);
		cr_expect_geq(gw_wh_backoff_ms(backoff_cases[i].attempt, 12345),
			      backoff_cases[i].lo, "attempt %u", backoff_cases[i].attempt);
	}
	/* With the shortest waits, a day holds a bounded number of attempts (about 50). */
	while (total < 24LL * 3600 * 1000)
		total += gw_wh_backoff_ms(n++, 0);
	cr_expect_leq(n, 60);
	cr_expect_geq(n, 20);
}
