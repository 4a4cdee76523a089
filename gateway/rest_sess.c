/*
 * rest_sess: the facade's sessions, hashed tokens in a bounded chained hash table. See
 * rest_sess.h.
 */
#include "gateway/rest_sess.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

struct sess_entry {
	uint8_t token_sha256[32];
	uint8_t key_sha256[32];
	char tenant[GW_REST_SESS_MAX_TENANT + 1];
	int64_t expires_ms;
	struct sess_entry *next;
};

struct gw_rest_sess {
	struct sess_entry *buckets[GW_REST_SESS_BUCKETS];
	struct gw_rest_sess_stats st;
};

struct gw_rest_sess *gw_rest_sess_new(size_t max)
{
	struct gw_rest_sess *s = calloc(1, sizeof *s);

	if (s)
		s->st.max = max;
	return s;
}

static void sess_wipe_free(struct sess_entry *e)
{
	OPENSSL_cleanse(e, sizeof *e);
	free(e);
}

void gw_rest_sess_free(struct gw_rest_sess *s)
{
	if (!s)
		return;
	for (size_t b = 0; b < GW_REST_SESS_BUCKETS; b++)
		while (s->buckets[b]) {
			struct sess_entry *e = s->buckets[b];

			s->buckets[b] = e->next;
			sess_wipe_free(e);
		}
	free(s);
}

/* The bucket of a token hash: its first bytes (SHA-256 output is uniform). */
static size_t sess_bucket(const uint8_t h[32])
{
	return ((size_t)h[0] << 8 | h[1]) % GW_REST_SESS_BUCKETS;
}

static void sess_hash(const char *token, size_t len, uint8_t out[32])
{
	SHA256((const unsigned char *)token, len, out);
}

/* Drops every expired session (O(table)): only when the table is full. */
static void sess_sweep(struct gw_rest_sess *s, int64_t now_ms)
{
	for (size_t b = 0; b < GW_REST_SESS_BUCKETS; b++) {
		struct sess_entry **pp = &s->buckets[b];

		while (*pp) {
			struct sess_entry *e = *pp;

			if (e->expires_ms > now_ms) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			sess_wipe_free(e);
			s->st.live--;
			s->st.expired++;
		}
	}
}

static void sess_b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t j = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
		out[j++] = a[v >> 6 & 63];
		out[j++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
		out[j++] = a[v >> 6 & 63];
	}
	out[j] = '\0';
}

int gw_rest_sess_open(struct gw_rest_sess *s, const char *tenant, const uint8_t key_sha256[32],
		      int64_t now_ms, int64_t ttl_ms, char out[GW_REST_SESS_TOKEN_LEN + 1])
{
	uint8_t raw[GW_REST_SESS_TOKEN_BYTES];
	struct sess_entry *e = NULL;
	size_t b;
	int rc = -1;

	out[0] = '\0';
	if (strlen(tenant) > GW_REST_SESS_MAX_TENANT)
		goto out;
	if (s->st.live >= s->st.max)
		sess_sweep(s, now_ms);
	if (s->st.live >= s->st.max) {
		s->st.refused_full++;
		goto out;
	}
	if (RAND_bytes(raw, sizeof raw) != 1 || !(e = calloc(1, sizeof *e)))
		goto out;
	sess_b64url(raw, sizeof raw, out);
	sess_hash(out, GW_REST_SESS_TOKEN_LEN, e->token_sha256);
	memcpy(e->key_sha256, key_sha256, 32);
	strcpy(e->tenant, tenant);	/* length checked above */
	e->expires_ms = now_ms + ttl_ms;
	b = sess_bucket(e->token_sha256);
	e->next = s->buckets[b];
	s->buckets[b] = e;
	e = NULL;
	s->st.live++;
	s->st.opened++;
	rc = 0;
out:
	OPENSSL_cleanse(raw, sizeof raw);
	free(e);
	return rc;
}

/* The link that points at token's entry, or NULL. */
static struct sess_entry **sess_link(struct gw_rest_sess *s, const char *token, size_t len)
{
	uint8_t h[32];
	struct sess_entry **pp;

	if (len != GW_REST_SESS_TOKEN_LEN)
		return NULL;
	sess_hash(token, len, h);
	for (pp = &s->buckets[sess_bucket(h)]; *pp; pp = &(*pp)->next)
		if (CRYPTO_memcmp((*pp)->token_sha256, h, 32) == 0)
			return pp;
	return NULL;
}

int gw_rest_sess_find(struct gw_rest_sess *s, const char *token, size_t len, int64_t now_ms,
		      const char **tenant, uint8_t key_sha256[32])
{
	struct sess_entry **pp = sess_link(s, token, len), *e;

	if (!pp) {
		s->st.unknown++;
		return -1;
	}
	e = *pp;
	if (e->expires_ms <= now_ms) {
		*pp = e->next;
		sess_wipe_free(e);
		s->st.live--;
		s->st.expired++;
		return -1;
	}
	*tenant = e->tenant;
	memcpy(key_sha256, e->key_sha256, 32);
	return 0;
}

void gw_rest_sess_drop(struct gw_rest_sess *s, const char *token, size_t len)
{
	struct sess_entry **pp = sess_link(s, token, len), *e;

	if (!pp)
		return;
	e = *pp;
	*pp = e->next;
	sess_wipe_free(e);
	s->st.live--;
}

void gw_rest_sess_stats(const struct gw_rest_sess *s, struct gw_rest_sess_stats *out)
{
	*out = s->st;
}

const char *gw_rest_sess_cookie(const char *header, size_t *len)
{
	static const char name[] = "dmsess=";
	const char *p = header;

	while (p && *p) {
		const char *v;
		size_t n = 0;

		while (*p == ' ' || *p == ';' || *p == ',')
			p++;
		if (strncmp(p, name, sizeof name - 1) != 0) {
			p = strchr(p, ';');
			continue;
		}
		v = p + sizeof name - 1;
		while (v[n] && v[n] != ';' && v[n] != ',' && v[n] != ' ')
			n++;
		*len = n;
		return n ? v : NULL;
	}
	return NULL;
}
