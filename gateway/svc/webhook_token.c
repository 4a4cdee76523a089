/*
 * webhook_token: the secret segment of the webhook path, its file and its rotation. See
 * webhook_token.h.
 */
#include "gateway/svc/webhook_token.h"

#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

#include "auth/upstream/secret.h"

/* One more byte than the longest token, and room for "\r\n": a longer file is refused. */
#define WEBHOOK_TOKEN_READ_MAX (GW_WEBHOOK_TOKEN_MAX + 3)

int gw_webhook_token_ok(const char *s, size_t len)
{
	if (!s || len < GW_WEBHOOK_TOKEN_MIN || len > GW_WEBHOOK_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '~'))
			return 0;
	}
	return 1;
}

int gw_webhook_token_read(const char *path, char *out, size_t *len, char *err, size_t errlen)
{
	char buf[WEBHOOK_TOKEN_READ_MAX];
	size_t n = 0;
	int rc = -1;

	*len = 0;
	out[0] = '\0';
	if (!path) {
		snprintf(err, errlen, "no token file");
		return -1;
	}
	if (gw_secret_read_file(path, buf, sizeof buf, &n, err, errlen) != 0)
		goto out;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (!gw_webhook_token_ok(buf, n)) {
		snprintf(err, errlen, "token file %s must hold %d to %d characters of A-Z a-z 0-9 - . _ ~ "
			 "(e.g. openssl rand -hex 32)", path, GW_WEBHOOK_TOKEN_MIN, GW_WEBHOOK_TOKEN_MAX);
		goto out;
	}
	memcpy(out, buf, n);
	out[n] = '\0';
	*len = n;
	rc = 0;
out:
	explicit_bzero(buf, sizeof buf);
	return rc;
}

int gw_webhook_token_init(struct gw_webhook_token *t, const char *path, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	if (!path)
		return 0;
	if (gw_webhook_token_read(path, t->cur, &t->cur_len, err, errlen) != 0)
		return -1;
	gw_secret_fingerprint(t->cur, t->cur_len, t->cur_fp);
	t->set = 1;
	return 0;
}

int gw_webhook_token_reload(struct gw_webhook_token *t, const char *path, int64_t grace_ms,
			    int64_t now_ms, char *err, size_t errlen)
{
	char next[GW_WEBHOOK_TOKEN_MAX + 1];
	size_t len = 0;
	int rc = -1;

	if (path && gw_webhook_token_read(path, next, &len, err, errlen) != 0)
		goto out;
	if (t->set == !!path && (!path || (len == t->cur_len && CRYPTO_memcmp(next, t->cur, len) == 0))) {
		rc = 0;	/* the same token (or still none) */
		goto out;
	}
	/* The current one becomes the previous one for the grace period; one before is dropped. */
	explicit_bzero(t->prev, sizeof t->prev);
	t->prev_len = 0;
	t->prev_fp[0] = '\0';
	t->prev_until_ms = 0;
	if (t->set && grace_ms > 0) {
		memcpy(t->prev, t->cur, t->cur_len + 1);
		t->prev_len = t->cur_len;
		memcpy(t->prev_fp, t->cur_fp, sizeof t->prev_fp);
		t->prev_until_ms = now_ms + grace_ms;
	}
	explicit_bzero(t->cur, sizeof t->cur);
	t->cur_len = 0;
	t->cur_fp[0] = '\0';
	t->set = path != NULL;
	if (path) {
		memcpy(t->cur, next, len + 1);
		t->cur_len = len;
		gw_secret_fingerprint(t->cur, t->cur_len, t->cur_fp);
	}
	rc = 1;
out:
	explicit_bzero(next, sizeof next);
	return rc;
}

/* Equal lengths compared with CRYPTO_memcmp: the time does not depend on where they differ. */
static int webhook_token_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen && alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

int gw_webhook_token_match(const struct gw_webhook_token *t, const char *seg, size_t len,
			   int64_t now_ms)
{
	if (!t || !seg)
		return 0;
	if (t->set && webhook_token_eq(seg, len, t->cur, t->cur_len))
		return 1;
	if (t->prev_until_ms && now_ms < t->prev_until_ms &&
	    webhook_token_eq(seg, len, t->prev, t->prev_len))
		return 2;
	return 0;
}

const char *gw_webhook_token_current(const struct gw_webhook_token *t)
{
	return t && t->set ? t->cur : NULL;
}

void gw_webhook_token_clear(struct gw_webhook_token *t)
{
	if (t)
		explicit_bzero(t, sizeof *t);
}
