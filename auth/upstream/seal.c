/* seal: AES-256-GCM seal/open of small secrets bound to a context (see seal.h). */
#include "auth/upstream/seal.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

long gw_seal_with_nonce(const uint8_t key[GW_SEAL_KEY_LEN], const uint8_t nonce[GW_SEAL_NONCE_LEN],
			const void *aad, size_t aadlen, const void *plain, size_t plen,
			uint8_t *out, size_t cap)
{
	EVP_CIPHER_CTX *ctx = NULL;
	long rc = -1;
	int n = 0, fin = 0;

	if (!key || !nonce || !out || (!plain && plen) || (!aad && aadlen) ||
	    plen > GW_SEAL_PLAIN_MAX || aadlen > GW_SEAL_AAD_MAX || cap < plen + GW_SEAL_OVERHEAD)
		return -1;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto out;
	out[0] = GW_SEAL_VERSION;
	memcpy(out + 1, nonce, GW_SEAL_NONCE_LEN);
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GW_SEAL_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	/* The version byte is authenticated too: a downgrade to another format cannot pass. */
	if (EVP_EncryptUpdate(ctx, NULL, &n, out, 1) != 1 ||
	    (aadlen && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1))
		goto out;
	n = 0;
	if (plen && EVP_EncryptUpdate(ctx, out + 1 + GW_SEAL_NONCE_LEN, &n, plain, (int)plen) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, out + 1 + GW_SEAL_NONCE_LEN + n, &fin) != 1 ||
	    (size_t)n + (size_t)fin != plen)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GW_SEAL_TAG_LEN,
				out + 1 + GW_SEAL_NONCE_LEN + plen) != 1)
		goto out;
	rc = (long)(plen + GW_SEAL_OVERHEAD);
out:
	EVP_CIPHER_CTX_free(ctx);	/* cleanses the key schedule */
	if (rc < 0)
		OPENSSL_cleanse(out, cap < plen + GW_SEAL_OVERHEAD ? cap : plen + GW_SEAL_OVERHEAD);
	return rc;
}

long gw_seal(const uint8_t key[GW_SEAL_KEY_LEN], const void *aad, size_t aadlen,
	     const void *plain, size_t plen, uint8_t *out, size_t cap)
{
	uint8_t nonce[GW_SEAL_NONCE_LEN];
	long rc;

	/* Random 96-bit nonces: with one seal per login, a collision under one key is out of
	 * reach (NIST SP 800-38D allows 2^32 random-nonce seals per key). */
	if (RAND_bytes(nonce, sizeof nonce) != 1)
		return -1;
	rc = gw_seal_with_nonce(key, nonce, aad, aadlen, plain, plen, out, cap);
	OPENSSL_cleanse(nonce, sizeof nonce);
	return rc;
}

long gw_seal_open(const uint8_t key[GW_SEAL_KEY_LEN], const void *aad, size_t aadlen,
		  const uint8_t *in, size_t inlen, uint8_t *plain, size_t cap)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tag[GW_SEAL_TAG_LEN];
	size_t clen;
	long rc = -1;
	int n = 0, fin = 0;

	if (!key || !in || !plain || (!aad && aadlen) || aadlen > GW_SEAL_AAD_MAX ||
	    inlen < GW_SEAL_OVERHEAD || in[0] != GW_SEAL_VERSION)
		return -1;
	clen = inlen - GW_SEAL_OVERHEAD;
	if (clen > GW_SEAL_PLAIN_MAX || cap < clen)
		return -1;
	memcpy(tag, in + 1 + GW_SEAL_NONCE_LEN + clen, sizeof tag);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GW_SEAL_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, in + 1) != 1)
		goto out;
	if (EVP_DecryptUpdate(ctx, NULL, &n, in, 1) != 1 ||
	    (aadlen && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1))
		goto out;
	n = 0;
	if (clen && EVP_DecryptUpdate(ctx, plain, &n, in + 1 + GW_SEAL_NONCE_LEN, (int)clen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GW_SEAL_TAG_LEN, tag) != 1)
		goto out;
	/* The tag is checked here, in constant time; nothing decrypted counts before it passes. */
	if (EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1 || (size_t)n + (size_t)fin != clen)
		goto out;
	rc = (long)clen;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (rc < 0)
		OPENSSL_cleanse(plain, cap < clen ? cap : clen);
	return rc;
}
