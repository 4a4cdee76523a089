/* sim_auth: accounts, Basic, sessions and cookies. */
#include "sim_auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sim.h"
#include "sim_http.h"
#include "sim_ids.h"

int sim_auth_parse_basic(const char *hdr, char *id, size_t idlen, char *secret, size_t secretlen)
{
	unsigned char dec[SIM_AUTH_HEADER_MAX];
	const char *b64;
	size_t n, pad = 0;
	int len, rc = -1;
	char *colon;

	if (hdr == NULL || strncasecmp(hdr, "Basic ", 6) != 0)
		return -1;
	b64 = hdr + 6;
	while (*b64 == ' ')
		b64++;
	n = strlen(b64);
	while (n > 0 && b64[n - 1] == ' ')
		n--;
	if (n == 0 || n % 4 != 0 || n >= sizeof(dec))
		return -1;
	if (strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") < n)
		return -1;
	for (size_t i = 0; i < n; i++)	/* '=' only as the last one or two characters */
		if (i < n - 2 && b64[i] == '=')
			return -1;
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=') {
		if (pad == 0)
			return -1;
		pad++;
	}
	len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
	if (len < 0 || (size_t)len < pad)
		goto out;
	len -= (int)pad;
	dec[len] = '\0';
	if (memchr(dec, '\0', (size_t)len) != NULL)
		goto out;
	colon = strchr((char *)dec, ':');
	if (colon == NULL || colon == (char *)dec)
		goto out;
	*colon = '\0';
	if (strlen((char *)dec) >= idlen || strlen(colon + 1) >= secretlen)
		goto out;
	memcpy(id, dec, strlen((char *)dec) + 1);
	memcpy(secret, colon + 1, strlen(colon + 1) + 1);
	rc = 0;
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	return rc;
}

int sim_auth_cookie_value(const char *hdr, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = hdr;

	if (hdr == NULL)
		return -1;
	while (*p != '\0') {
		size_t vl;

		while (*p == ' ' || *p == ';' || *p == ',')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			p += nl + 1;
			vl = strcspn(p, "; ,");
			if (vl == 0 || vl >= outlen)
				return -1;
			memcpy(out, p, vl);
			out[vl] = '\0';
			return 0;
		}
		p += strcspn(p, ";");
	}
	return -1;
}

int sim_auth_account_add(struct sim *s, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t il;
	int i;

	if (colon == NULL || colon == spec || colon[1] == '\0')
		return -1;
	il = (size_t)(colon - spec);
	if (il >= SIM_CLIENT_ID_MAX || strlen(colon + 1) >= SIM_SECRET_MAX)
		return -1;
	for (i = 0; i < s->n_accounts; i++)
		if (strlen(s->accounts[i].id) == il && strncmp(s->accounts[i].id, spec, il) == 0)
			break;
	if (i == s->n_accounts) {
		if (s->n_accounts == SIM_MAX_ACCOUNTS)
			return -1;
		memset(&s->accounts[i], 0, sizeof(s->accounts[i]));
		memcpy(s->accounts[i].id, spec, il);
		s->accounts[i].credits = s->cfg.credits;
		s->n_accounts++;
	}
	snprintf(s->accounts[i].secret, sizeof(s->accounts[i].secret), "%s", colon + 1);
	return 0;
}

int sim_auth_check_basic(struct sim *s, const char *authz_hdr)
{
	char id[SIM_CLIENT_ID_MAX], secret[SIM_SECRET_MAX];
	int found = -1;

	if (sim_auth_parse_basic(authz_hdr, id, sizeof(id), secret, sizeof(secret)) != 0)
		return -1;
	for (int i = 0; i < s->n_accounts; i++) {
		const struct sim_account *a = &s->accounts[i];

		if (strcmp(a->id, id) == 0 && strlen(a->secret) == strlen(secret) &&
		    CRYPTO_memcmp(a->secret, secret, strlen(secret)) == 0)
			found = i;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return found;
}

void sim_auth_http_date(double t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int sim_auth_login(struct sim *s, int account, double now, char *out, size_t outlen)
{
	struct sim_session *ss;
	char date[64];
	int slot = -1, oldest = -1;

	sim_auth_expire(s, now);
	for (int i = 0; i < SIM_MAX_SESSIONS && slot < 0; i++)
		if (s->sessions[i] == NULL)
			slot = i;
	if (slot < 0) {
		s->rejections[SIM_REJ_SESSIONS]++;	/* full of live sessions: drop the oldest */
		for (int i = 0; i < SIM_MAX_SESSIONS; i++)
			if (oldest < 0 || s->sessions[i]->expires < s->sessions[oldest]->expires)
				oldest = i;
		free(s->sessions[oldest]);
		s->sessions[oldest] = NULL;
		slot = oldest;
	}
	ss = calloc(1, sizeof(*ss));
	if (ss == NULL)
		return -1;
	sim_ids_new(&s->id_rng, ss->value, sizeof(ss->value) - 1);
	ss->account = account;
	ss->expires = now + s->cfg.session_ttl;
	s->sessions[slot] = ss;
	sim_auth_http_date(ss->expires, date, sizeof(date));
	snprintf(out, outlen, "%s=%s; Path=/; Expires=%s; HttpOnly", SIM_AUTH_COOKIE, ss->value, date);
	return 0;
}

int sim_auth_request(struct sim *s, const char *cookie_hdr, const char *authz_hdr, double now)
{
	char v[SIM_ID_LEN * 2 + 1];

	if (sim_auth_cookie_value(cookie_hdr, SIM_AUTH_COOKIE, v, sizeof(v)) == 0) {
		for (int i = 0; i < SIM_MAX_SESSIONS; i++) {
			struct sim_session *ss = s->sessions[i];

			if (ss != NULL && strcmp(ss->value, v) == 0 && ss->expires > now)
				return ss->account;
		}
	}
	if (authz_hdr != NULL && s->cfg.lenient_auth)
		return sim_auth_check_basic(s, authz_hdr);
	return -1;
}

void sim_auth_revoke_all(struct sim *s)
{
	for (int i = 0; i < SIM_MAX_SESSIONS; i++)
		if (s->sessions[i] != NULL)
			s->sessions[i]->expires = 0;
}

void sim_auth_expire(struct sim *s, double now)
{
	for (int i = 0; i < SIM_MAX_SESSIONS; i++)
		if (s->sessions[i] != NULL && s->sessions[i]->expires <= now) {
			free(s->sessions[i]);
			s->sessions[i] = NULL;
		}
}

void sim_auth_free(struct sim *s)
{
	for (int i = 0; i < SIM_MAX_SESSIONS; i++) {
		free(s->sessions[i]);
		s->sessions[i] = NULL;
	}
	for (int i = 0; i < s->n_accounts; i++)
		OPENSSL_cleanse(s->accounts[i].secret, sizeof(s->accounts[i].secret));
}

void sim_auth_h_session(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	const char *authz = sim_http_header(rq, "Authorization");
	char cookie[256];
	int a = sim_auth_check_basic(s, authz);

	if (a < 0) {
		s->rejections[SIM_REJ_AUTH]++;
		sim_resp_error(rs, 401, "401", "%s", authz == NULL ? "Missing Basic authorization"
								   : "Invalid client credentials");
		return;
	}
	rq->account = a;
	if (sim_auth_login(s, a, sim_now_wall(), cookie, sizeof(cookie)) != 0) {
		sim_resp_error(rs, 500, "500", "Cannot create a session");
		return;
	}
	sim_resp_json(rs, 200, json_pack("{s:s}", "message", "authenticated"));
	sim_resp_header(rs, "Set-Cookie: %s", cookie);	/* the first and only Set-Cookie */
}
