/*
 * apikey: caller authentication. A keyring maps the SHA-256 of every configured API key to its
 * tenant and permissions; the keys themselves are never stored.
 */
#ifndef A3D_AUTH_APIKEY_H
#define A3D_AUTH_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config/config.h"

#define GW_APIKEY_MAX_LEN 256	/* longest key accepted in "Bearer <key>" */
#define GW_APIKEY_MAX_VALUE 1024	/* longest authorization value looked at */

/* Every key hash of a config -> (tenant index, perms). Owns a copy: the config may be freed. */
struct gw_keyring;

/* NULL on ENOMEM, NULL cfg or no SHA-256 in libcrypto. An empty ring (no keys) is valid: every
 * lookup fails. A ring holds a reusable digest context: lookups on one ring must not run
 * concurrently (the gateway uses it from the loop thread only). */
struct gw_keyring *gw_apikey_ring_new(const struct gw_config *cfg);
void gw_apikey_ring_free(struct gw_keyring *r);	/* NULL is fine */
size_t gw_apikey_ring_size(const struct gw_keyring *r);

/*
 * value: the raw "authorization" metadata value ("Bearer <key>", scheme case-insensitive, spaces or
 * tabs around the key ignored); len bytes, need not be NUL-terminated. Returns 0 and sets *tenant_idx,
 * *perms when the key is known; -1 otherwise (NULL, missing scheme, empty key, key longer than
 * GW_APIKEY_MAX_LEN, unknown). The time taken does not depend on which entry matches: the presented
 * key is hashed and compared with CRYPTO_memcmp against EVERY entry, without early exit.
 */
int gw_apikey_lookup(const struct gw_keyring *r, const char *value, size_t len, size_t *tenant_idx,
		     unsigned *perms);

/* As gw_apikey_lookup, for a key known by its SHA-256 only (a REST facade session remembers the
 * key it was opened with that way): the same constant-time walk over every entry. */
int gw_apikey_lookup_hash(const struct gw_keyring *r, const uint8_t sha256[32], size_t *tenant_idx,
			  unsigned *perms);

/* "k:" + the first 10 hex digits of SHA-256(key), NUL-terminated: names a key in logs. */
void gw_apikey_fingerprint(const char *key, size_t len, char out[13]);

#endif
