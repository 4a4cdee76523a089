/* session_shared: the pure parts of the shared session (see session_shared.h); the flow on
 * Redis lives in session.c, which owns the accounts it drives. */
#include "auth/upstream/session_shared.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

void gw_ss_fingerprint(const char *s, size_t len, uint8_t fp[GW_SS_FP_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(s, len, fp, &n, EVP_sha256(), NULL) != 1 || n != GW_SS_FP_LEN)
		memset(fp, 0, GW_SS_FP_LEN);
}

long gw_ss_seal(const uint8_t key[GW_SEAL_KEY_LEN], const char *keyname, const char *cookie,
		int64_t expires_wall_ms, uint8_t *out, size_t cap)
{
	char plain[GW_SS_PLAIN_MAX];
	int n;
	long rc = -1;

	if (!cookie || !cookie[0] || expires_wall_ms <= 0)
		return -1;
	n = snprintf(plain, sizeof plain, "%" PRId64 ":%s", expires_wall_ms, cookie);
	if (n > 0 && (size_t)n < sizeof plain)
		rc = gw_seal(key, keyname, strlen(keyname), plain, (size_t)n, out, cap);
	OPENSSL_cleanse(plain, sizeof plain);
	return rc;
}

int gw_ss_open(const uint8_t key[GW_SEAL_KEY_LEN], const char *keyname, const uint8_t *in,
	       size_t inlen, char *cookie, size_t cap, int64_t *expires_wall_ms)
{
	char plain[GW_SS_PLAIN_MAX + 1];
	long n = gw_seal_open(key, keyname, strlen(keyname), in, inlen, (uint8_t *)plain,
			      sizeof plain - 1);
	int64_t exp = 0;
	char *p;
	size_t clen;
	int rc = -1;

	if (n < 0)
		goto out;
	plain[n] = '\0';
	/* Our own format, but still checked: a value written under a future format must not be
	 * half-read. Digits, a colon, a non-empty cookie without NUL. */
	for (p = plain; *p >= '0' && *p <= '9' && p - plain < 19; p++)
		exp = exp * 10 + (*p - '0');
	if (p == plain || *p != ':' || exp <= 0)
		goto out;
	p++;
	clen = (size_t)(plain + n - p);
	if (clen == 0 || clen >= cap || memchr(p, '\0', clen))
		goto out;
	memcpy(cookie, p, clen);
	cookie[clen] = '\0';
	*expires_wall_ms = exp;
	rc = 0;
out:
	OPENSSL_cleanse(plain, sizeof plain);
	if (rc != 0 && cookie && cap)
		OPENSSL_cleanse(cookie, cap);
	return rc;
}

enum gw_ss_action gw_ss_decide(enum gw_ss_step step, const struct gw_ss_facts *f)
{
	if (f->redis_error)
		return GW_SS_FALLBACK;
	if (step == GW_SS_AFTER_GET) {
		if (f->found && f->opened && !f->same_as_stale &&
		    f->remaining_ms > GW_SS_ADOPT_MIN_MS &&
		    (!f->refresh || f->remaining_ms > f->ours_remaining_ms))
			return GW_SS_ADOPT;
		return GW_SS_LOCK;
	}
	if (f->lock_won)
		return GW_SS_LOGIN;
	if (f->now_us >= f->deadline_us)
		return GW_SS_TIMEOUT;
	return GW_SS_WAIT;
}

const char *gw_ss_action_name(enum gw_ss_action a)
{
	switch (a) {
	case GW_SS_ADOPT: return "adopt";
	case GW_SS_LOCK: return "lock";
	case GW_SS_LOGIN: return "login";
	case GW_SS_WAIT: return "wait";
	case GW_SS_FALLBACK: return "fallback";
	case GW_SS_TIMEOUT: return "timeout";
	}
	return "?";
}
