/*
 * webhook_out_sign: Standard Webhooks secrets, signatures, ids and bodies. See webhook_out_sign.h.
 */
#include "gateway/svc/webhook_out_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "animate3d/v1/jobs.pb-c.h"

int gw_wh_sign_secret_new(char *out, size_t outlen)
{
	uint8_t raw[GW_WH_SECRET_BYTES];
	const size_t pre = sizeof GW_WH_SECRET_PREFIX - 1;
	int rc = -1;

	if (!out || outlen < GW_WH_SECRET_MAX + 1)
		return -1;
	out[0] = '\0';
	if (RAND_bytes(raw, sizeof raw) != 1)
		goto out;
	memcpy(out, GW_WH_SECRET_PREFIX, pre);
	/* EVP_EncodeBlock writes 4 * ceil(n / 3) characters, no newline, and a NUL. */
	EVP_EncodeBlock((unsigned char *)out + pre, raw, (int)sizeof raw);
	rc = 0;
out:
	OPENSSL_cleanse(raw, sizeof raw);
	return rc;
}

/* Decodes the base64 after "whsec_" into key; its length, or -1. */
static int sign_key(const char *secret, uint8_t key[GW_WH_SECRET_KEY_MAX + 3])
{
	const size_t pre = sizeof GW_WH_SECRET_PREFIX - 1;
	const char *b64;
	size_t n, pad = 0;
	int len;

	if (!secret || strncmp(secret, GW_WH_SECRET_PREFIX, pre) != 0)
		return -1;
	b64 = secret + pre;
	n = strlen(b64);
	if (n == 0 || n % 4 || n > 4 * ((GW_WH_SECRET_KEY_MAX + 2) / 3))
		return -1;
	pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
	/* EVP_DecodeBlock counts padding as zero bytes: take them off. */
	len = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)n);
	if (len < 0 || (size_t)len < pad || (size_t)len - pad == 0 ||
	    (size_t)len - pad > GW_WH_SECRET_KEY_MAX)
		return -1;
	return len - (int)pad;
}

int gw_wh_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
	       size_t len, char *out, size_t outlen)
{
	uint8_t key[GW_WH_SECRET_KEY_MAX + 3];
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	char ts[24];
	char digest[] = "SHA256";
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
				OSSL_PARAM_construct_end() };
	EVP_MAC *m = NULL;
	EVP_MAC_CTX *h = NULL;
	int klen = sign_key(secret, key);
	int rc = -1;

	if (klen < 0 || !msg_id || (!body && len) || !out || outlen < GW_WH_SIG_MAX + 1)
		goto out;
	snprintf(ts, sizeof ts, "%lld", (long long)timestamp_s);
	m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	h = m ? EVP_MAC_CTX_new(m) : NULL;
	if (!h || EVP_MAC_init(h, key, (size_t)klen, params) != 1 ||
	    EVP_MAC_update(h, (const unsigned char *)msg_id, strlen(msg_id)) != 1 ||
	    EVP_MAC_update(h, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(h, (const unsigned char *)ts, strlen(ts)) != 1 ||
	    EVP_MAC_update(h, (const unsigned char *)".", 1) != 1 ||
	    (len && EVP_MAC_update(h, (const unsigned char *)body, len) != 1) ||
	    EVP_MAC_final(h, mac, &maclen, sizeof mac) != 1 || maclen != 32)
		goto out;
	out[0] = 'v';
	out[1] = '1';
	out[2] = ',';
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	rc = 0;
out:
	EVP_MAC_CTX_free(h);
	EVP_MAC_free(m);
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(mac, sizeof mac);
	return rc;
}

int gw_wh_sign_msg_id(const char *endpoint_id, const char *rid, char out[GW_WH_MSG_ID_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[EVP_MAX_MD_SIZE] = { 0 };
	unsigned mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int rc = -1;

	out[0] = '\0';
	/* The NUL separates the two: ("ab", "c") and ("a", "bc") differ. */
	if (!endpoint_id || !rid || !c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(c, endpoint_id, strlen(endpoint_id) + 1) != 1 ||
	    EVP_DigestUpdate(c, rid, strlen(rid)) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1 ||
	    mdlen < 16)
		goto out;
	memcpy(out, "msg_", 4);
	for (size_t i = 0; i < 16; i++) {
		out[4 + 2 * i] = hex[md[i] >> 4];
		out[5 + 2 * i] = hex[md[i] & 15];
	}
	out[GW_WH_MSG_ID_MAX] = '\0';
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	return rc;
}

char *gw_wh_sign_body(const char *rid, int state, int error_code, const char *error_message)
{
	int ok = state == ANIMATE3D__V1__JOB_STATE__SUCCESS;
	json_t *root = NULL, *data = NULL;
	char *s = NULL;
	char msg[GW_WH_BODY_ERR_MAX + 1];

	if (!rid || (!ok && state != ANIMATE3D__V1__JOB_STATE__FAILURE))
		return NULL;
	data = json_pack("{s:s, s:s, s:s}", "taskId", rid, "status", ok ? "success" : "failure",
			 "state", ok ? "SUCCESS" : "FAILURE");
	if (!data)
		goto out;
	if (!ok) {
		snprintf(msg, sizeof msg, "%s", error_message ? error_message : "");
		if (json_object_set_new(data, "error_code", json_integer(error_code)) < 0 ||
		    json_object_set_new(data, "error_message", json_string(msg)) < 0)
			goto out;
	}
	root = json_pack("{s:s, s:O}", "eventType", "job.completed", "data", data);
	if (root)
		s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(data);
	json_decref(root);
	return s;
}

int64_t gw_wh_backoff_ms(unsigned attempt, uint32_t rnd)
{
	int64_t d = GW_WH_BACKOFF_BASE_MS;

	for (unsigned i = 0; i < attempt && d < GW_WH_BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > GW_WH_BACKOFF_CAP_MS)
		d = GW_WH_BACKOFF_CAP_MS;
	return d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
}
