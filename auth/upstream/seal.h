/*
 * seal: AES-256-GCM sealing of a small secret (the shared upstream cookie) under a 32-byte key,
 * bound to a context (AAD) so that a sealed value cannot be moved to another place (another
 * account's key) and still open.
 *
 * Sealed format: version byte GW_SEAL_VERSION, a random 12-byte nonce (fresh per seal, from the
 * OpenSSL CSPRNG), the ciphertext (as long as the plaintext), the 16-byte GCM tag.
 *
 * Pure apart from the nonce: no I/O, no logging, no state. Every temporary that held plaintext is
 * wiped; on failure the output buffers are wiped too. Thread-safe.
 */
#ifndef A3D_AUTH_SEAL_H
#define A3D_AUTH_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define GW_SEAL_KEY_LEN 32
#define GW_SEAL_NONCE_LEN 12
#define GW_SEAL_TAG_LEN 16
#define GW_SEAL_VERSION 1
#define GW_SEAL_OVERHEAD (1 + GW_SEAL_NONCE_LEN + GW_SEAL_TAG_LEN)
#define GW_SEAL_PLAIN_MAX 8192		/* bytes of plaintext accepted */
#define GW_SEAL_AAD_MAX 1024		/* bytes of context accepted */

/*
 * Seals plain[0..plen) bound to aad[0..aadlen) into out (cap >= plen + GW_SEAL_OVERHEAD).
 * Returns the sealed length, or -1 (sizes out of bounds, no randomness, OpenSSL failure).
 */
long gw_seal(const uint8_t key[GW_SEAL_KEY_LEN], const void *aad, size_t aadlen,
	     const void *plain, size_t plen, uint8_t *out, size_t cap);

/* The same with a given nonce: for known-answer tests only (a nonce must never repeat). */
long gw_seal_with_nonce(const uint8_t key[GW_SEAL_KEY_LEN], const uint8_t nonce[GW_SEAL_NONCE_LEN],
			const void *aad, size_t aadlen, const void *plain, size_t plen,
			uint8_t *out, size_t cap);

/*
 * Opens in[0..inlen) sealed by gw_seal under key with the same aad into plain (cap >=
 * inlen - GW_SEAL_OVERHEAD). Returns the plaintext length, or -1 when anything is wrong: another
 * key or aad, a changed or missing byte, an unknown version, a too short input. The reason is not
 * told apart (a caller can do nothing different), and plain is wiped on failure.
 */
long gw_seal_open(const uint8_t key[GW_SEAL_KEY_LEN], const void *aad, size_t aadlen,
		  const uint8_t *in, size_t inlen, uint8_t *plain, size_t cap);

#endif
