/*
 * translate_account: rows of the Account service (docs/upstream-api.md, "Account").
 */
#include <stddef.h>

#include "animate3d/v1/account.pb-c.h"
#include "gateway/translate_int.h"

static int acct_build(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d,
		      const char *path, struct gw_tr_request *out, char *err, size_t errlen)
{
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, d, err, errlen);

	if (rc)
		return rc;
	gw_tr_buf_add(&b, path);
	return gw_tr_path(&b, "GET", out, err, errlen);
}

/* Both answers are one number; off is where the double lives in the reply struct. */
static int acct_parse(const ProtobufCMessageDescriptor *d, const char *key,
		      size_t off, const char *body, size_t len, ProtobufCMessage **out, char *err,
		      size_t errlen)
{
	ProtobufCMessage *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(d)))
		goto out;
	if ((rc = gw_tr_dbl(root, key, NULL, 1, (double *)((char *)m + off), err, errlen)))
		goto out;
	*out = m;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	json_decref(root);
	return rc;
}

int gw_tr_build_get_credit_balance(const ProtobufCMessage *req, struct gw_tr_request *out,
				   char *err, size_t errlen)
{
	return acct_build(req, &animate3d__v1__get_credit_balance_request__descriptor,
			  "/account/creditBalance", out, err, errlen);
}

int gw_tr_parse_get_credit_balance(const ProtobufCMessage *req, const char *body, size_t len,
				   ProtobufCMessage **out, char *err, size_t errlen)
{
	return acct_parse(&animate3d__v1__get_credit_balance_response__descriptor,
			  "credits", offsetof(Animate3d__V1__GetCreditBalanceResponse, credits), body,
			  len, out, err, errlen);
}

int gw_tr_build_get_minutes_balance(const ProtobufCMessage *req, struct gw_tr_request *out,
				    char *err, size_t errlen)
{
	return acct_build(req, &animate3d__v1__get_minutes_balance_request__descriptor,
			  "/account/minutesBalance", out, err, errlen);
}

int gw_tr_parse_get_minutes_balance(const ProtobufCMessage *req, const char *body, size_t len,
				    ProtobufCMessage **out, char *err, size_t errlen)
{
	return acct_parse(&animate3d__v1__get_minutes_balance_response__descriptor,
			  "minutes", offsetof(Animate3d__V1__GetMinutesBalanceResponse, minutes), body,
			  len, out, err, errlen);
}
