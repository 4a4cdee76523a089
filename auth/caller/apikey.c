/* apikey: constant-time API key lookup over the configured key hashes. */
#include "auth/caller/apikey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

struct gw_key_entry {
	uint8_t sha256[32];
	size_t tenant_idx;
	unsigned perms;
};

struct gw_keyring {
	struct gw_key_entry *keys;
	size_t n;
	/* SHA-256 fetched once and a digest context reused by every lookup: the one-shot SHA256()
	 * fetches the algorithm and allocates a context per call, which cost more than the hash. */
	EVP_MD *sha256;
	EVP_MD_CTX *ctx;
};

struct gw_keyring *gw_apikey_ring_new(const struct gw_config *cfg)
{
	struct gw_keyring *r = NULL;
	size_t n = 0, k = 0;

	if (!cfg)
		return NULL;
	for (size_t t = 0; t < cfg->ntenants; t++)
		n += cfg->tenants[t].nkeys;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	r->ctx = EVP_MD_CTX_new();
	if (n)
		r->keys = calloc(n, sizeof(*r->keys));
	if (!r->sha256 || !r->ctx || (n && !r->keys)) {
		gw_apikey_ring_free(r);
		return NULL;
	}
	for (size_t t = 0; t < cfg->ntenants; t++) {
		for (size_t j = 0; j < cfg->tenants[t].nkeys; j++, k++) {
			memcpy(r->keys[k].sha256, cfg->tenants[t].keys[j].sha256, 32);
			r->keys[k].tenant_idx = t;
			r->keys[k].perms = cfg->tenants[t].keys[j].perms;
		}
	}
	r->n = n;
	return r;
}

void gw_apikey_ring_free(struct gw_keyring *r)
{
	if (!r)
		return;
	EVP_MD_CTX_free(r->ctx);
	EVP_MD_free(r->sha256);
	free(r->keys);
	free(r);
}

size_t gw_apikey_ring_size(const struct gw_keyring *r)
{
	return r ? r->n : 0;
}

static int apikey_space(char c)
{
	return c == ' ' || c == '\t';
}

int gw_apikey_lookup(const struct gw_keyring *r, const char *value, size_t len, size_t *tenant_idx,
		     unsigned *perms)
{
	static const char scheme[] = "bearer";
	uint8_t digest[32];
	size_t i = 0, end = len;
	int rc;

	if (!r || !value || !tenant_idx || !perms || len > GW_APIKEY_MAX_VALUE)
		return -1;
	while (i < end && apikey_space(value[i]))
		i++;
	if (end - i < sizeof(scheme) || strncasecmp(value + i, scheme, sizeof(scheme) - 1) != 0 ||
	    !apikey_space(value[i + sizeof(scheme) - 1]))
		return -1;
	i += sizeof(scheme) - 1;
	while (i < end && apikey_space(value[i]))
		i++;
	while (end > i && apikey_space(value[end - 1]))
		end--;
	if (end == i || end - i > GW_APIKEY_MAX_LEN)
		return -1;
	if (EVP_DigestInit_ex2(r->ctx, r->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(r->ctx, value + i, end - i) != 1 ||
	    EVP_DigestFinal_ex(r->ctx, digest, NULL) != 1) {
		OPENSSL_cleanse(digest, sizeof(digest));
		return -1;
	}
	rc = gw_apikey_lookup_hash(r, digest, tenant_idx, perms);
	OPENSSL_cleanse(digest, sizeof(digest));
	return rc;
}

int gw_apikey_lookup_hash(const struct gw_keyring *r, const uint8_t sha256[32], size_t *tenant_idx,
			  unsigned *perms)
{
	size_t found_tenant = 0;
	unsigned found_perms = 0, found = 0;

	if (!r || !sha256 || !tenant_idx || !perms)
		return -1;
	/* Visit every entry and select with masks, so timing says nothing about which one matched. */
	for (size_t k = 0; k < r->n; k++) {
		unsigned eq = (unsigned)(CRYPTO_memcmp(sha256, r->keys[k].sha256, 32) == 0);
		size_t mask = (size_t)0 - (size_t)eq;

		found_tenant = (found_tenant & ~mask) | (r->keys[k].tenant_idx & mask);
		found_perms = (found_perms & ~(unsigned)mask) | (r->keys[k].perms & (unsigned)mask);
		found |= eq;
	}
	if (!found)
		return -1;
	*tenant_idx = found_tenant;
	*perms = found_perms;
	return 0;
}

void gw_apikey_fingerprint(const char *key, size_t len, char out[13])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[32];

	SHA256((const unsigned char *)(key ? key : ""), key ? len : 0, digest);
	out[0] = 'k';
	out[1] = ':';
	for (int i = 0; i < 5; i++) {
		out[2 + 2 * i] = hex[digest[i] >> 4];
		out[3 + 2 * i] = hex[digest[i] & 15];
	}
	out[12] = '\0';
}
