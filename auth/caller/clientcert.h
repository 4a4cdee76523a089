/*
 * clientcert: mTLS caller authentication. A call that carries no API key but came over a TLS
 * connection with a client certificate verified against tls.client_ca_file acts as the tenant
 * whose client_cert.cn equals the certificate's subject common name (config: tenants[].client_cert).
 *
 * The certificate was verified by the TLS handshake (the server requests client certificates and
 * verifies every one it gets; a certificate from another CA fails the handshake), so only the CN
 * is compared here. An API key, when present, always wins: this is consulted only without one.
 */
#ifndef A3D_AUTH_CLIENTCERT_H
#define A3D_AUTH_CLIENTCERT_H

#include <stddef.h>
#include <grpc/grpc.h>

#include "gateway/config/config.h"

#define GW_CLIENTCERT_MAX_CN GW_CONFIG_MAX_CERT_CN	/* longest CN looked at (X.509 allows 64) */

/*
 * Index of the tenant whose client_cert.cn is exactly cn (cnlen bytes, case-sensitive), or -1:
 * no such tenant, NULL arguments, an empty cn, a cn longer than GW_CLIENTCERT_MAX_CN or one
 * containing a NUL byte. Config validation guarantees at most one tenant per CN.
 */
int gw_clientcert_tenant(const struct gw_config *cfg, const char *cn, size_t cnlen);

/*
 * Copies the authenticated TLS peer's subject CN of call into out (NUL-terminated). Returns its
 * length, or 0 when there is none: plaintext connection, no client certificate, no CN, or a CN
 * that does not fit outlen (never truncated: a cut CN could match another tenant).
 */
size_t gw_clientcert_peer_cn(grpc_call *call, char *out, size_t outlen);

/*
 * The same for a certificate a TLS session of our own verified (the REST facade's listener,
 * OpenSSL under libevent): the subject's first CN, as gRPC takes it, as UTF-8 into out
 * (NUL-terminated). Its length, or 0: NULL cert, no CN, a CN with a NUL byte, or one that does
 * not fit outlen (never truncated). The caller checked the verification.
 */
struct x509_st;	/* OpenSSL's X509 */
size_t gw_clientcert_x509_cn(struct x509_st *cert, char *out, size_t outlen);

#endif
