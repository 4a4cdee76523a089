/* clientcert: a verified client certificate's CN -> tenant (see clientcert.h). */
#include "auth/caller/clientcert.h"

#include <string.h>
#include <grpc/grpc_security.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

int gw_clientcert_tenant(const struct gw_config *cfg, const char *cn, size_t cnlen)
{
	if (!cfg || !cn || cnlen == 0 || cnlen > GW_CLIENTCERT_MAX_CN || memchr(cn, '\0', cnlen))
		return -1;
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const char *want = cfg->tenants[i].client_cert_cn;

		if (want && strlen(want) == cnlen && memcmp(want, cn, cnlen) == 0)
			return (int)i;
	}
	return -1;
}

size_t gw_clientcert_peer_cn(grpc_call *call, char *out, size_t outlen)
{
	grpc_auth_context *ctx;
	grpc_auth_property_iterator it;
	const grpc_auth_property *p;
	size_t n = 0;

	if (!out || outlen == 0)
		return 0;
	out[0] = '\0';
	ctx = call ? grpc_call_auth_context(call) : NULL;
	if (!ctx)
		return 0;	/* plaintext listener */
	if (!grpc_auth_context_peer_is_authenticated(ctx))
		goto out;	/* TLS without a client certificate */
	it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
	p = grpc_auth_property_iterator_next(&it);
	if (!p || !p->value || p->value_length == 0 || p->value_length >= outlen)
		goto out;
	memcpy(out, p->value, p->value_length);
	out[p->value_length] = '\0';
	n = p->value_length;
out:
	grpc_auth_context_release(ctx);
	return n;
}

size_t gw_clientcert_x509_cn(X509 *cert, char *out, size_t outlen)
{
	X509_NAME *subject = cert ? X509_get_subject_name(cert) : NULL;
	int idx = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
	X509_NAME_ENTRY *e = idx >= 0 ? X509_NAME_get_entry(subject, idx) : NULL;
	unsigned char *utf8 = NULL;
	int len = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
	size_t n = 0;

	if (!out || outlen == 0)
		goto out;
	out[0] = '\0';
	if (len <= 0 || (size_t)len >= outlen || memchr(utf8, '\0', (size_t)len))
		goto out;
	memcpy(out, utf8, (size_t)len);
	out[len] = '\0';
	n = (size_t)len;
out:
	OPENSSL_free(utf8);
	return n;
}
