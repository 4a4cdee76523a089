/*
 * translate_account: rows of the Account service (docs/upstream-api.md, "Account").
 */
#include "animate3d/v1/account.pb-c.h"
#include "gateway/api/translate_int.h"

/* ---- GetCreditBalance ---- */

int gw_tr_build_get_credit_balance(const ProtobufCMessage *req, struct gw_tr_request *out,
				   char *err, size_t errlen)
{
	return gw_tr_fixed(req, &animate3d__v1__get_credit_balance_request__descriptor, "GET",
			   "/account/creditBalance", out, err, errlen);
}

static int acct_fill_credits(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__GetCreditBalanceResponse *m = msg;

	return gw_tr_dbl(root, "credits", NULL, 1, &m->credits, err, errlen);
}

int gw_tr_parse_get_credit_balance(const ProtobufCMessage *req, const char *body, size_t len,
				   ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__get_credit_balance_response__descriptor,
			   acct_fill_credits, NULL, out, err, errlen);
}

/* ---- GetMinutesBalance ---- */

int gw_tr_build_get_minutes_balance(const ProtobufCMessage *req, struct gw_tr_request *out,
				    char *err, size_t errlen)
{
	return gw_tr_fixed(req, &animate3d__v1__get_minutes_balance_request__descriptor, "GET",
			   "/account/minutesBalance", out, err, errlen);
}

static int acct_fill_minutes(void *msg, json_t *root, const void *arg, char *err, size_t errlen)
{
	Animate3d__V1__GetMinutesBalanceResponse *m = msg;

	return gw_tr_dbl(root, "minutes", NULL, 1, &m->minutes, err, errlen);
}

int gw_tr_parse_get_minutes_balance(const ProtobufCMessage *req, const char *body, size_t len,
				    ProtobufCMessage **out, char *err, size_t errlen)
{
	return gw_tr_reply(body, len, &animate3d__v1__get_minutes_balance_response__descriptor,
			   acct_fill_minutes, NULL, out, err, errlen);
}
