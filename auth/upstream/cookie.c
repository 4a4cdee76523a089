/* cookie: Set-Cookie and HTTP-date parsing (RFC 6265 section 5.2, RFC 9110 section 5.6.7). */
#include "auth/upstream/cookie.h"

#include <curl/curl.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static int cookie_ws(char c)
{
	return c == ' ' || c == '\t';
}

static int cookie_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * libcurl's date parser (the one its own cookie engine uses) reads all three HTTP date forms and the
 * variants servers really send; it is thread-safe and never consults the time zone. It is lenient
 * (it skips words it does not know), so a value it cannot place at all is -1 and anything else is
 * its reading of the date.
 */
time_t gw_cookie_http_date(const char *s)
{
	if (!s || !*s || strlen(s) > GW_COOKIE_MAX_DATE)
		return -1;
	return curl_getdate(s, NULL);
}

/* A cookie-octet (RFC 6265 4.1.1): no CTLs, whitespace, DQUOTE, comma, semicolon or backslash. */
static int cookie_octet(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}

/* [b, e) trimmed of spaces and tabs. */
static void cookie_trim(const char **b, const char **e)
{
	while (*b < *e && cookie_ws(**b))
		(*b)++;
	while (*e > *b && cookie_ws((*e)[-1]))
		(*e)--;
}

/* Max-Age value: "-"? DIGIT+; -1 if not that. Large values are clamped. */
static int cookie_max_age(const char *b, const char *e, long *out)
{
	int neg = 0;
	long v = 0;

	if (b < e && *b == '-') {
		neg = 1;
		b++;
	}
	if (b == e)
		return -1;
	for (; b < e; b++) {
		if (!cookie_digit(*b))
			return -1;
		if (v < GW_COOKIE_MAX_AGE)
			v = v * 10 + (*b - '0');
	}
	if (v > GW_COOKIE_MAX_AGE)
		v = GW_COOKIE_MAX_AGE;
	*out = neg ? -v : v;
	return 0;
}

int gw_cookie_parse(const char *set_cookie, const char *name, char *out, size_t outlen, time_t now,
		    time_t *expires)
{
	const char *end, *nv_end, *eq, *nb, *ne, *vb, *ve, *p;
	int have_max_age = 0;
	long max_age = 0;
	time_t exp_date = 0;
	size_t vlen;

	if (!set_cookie || !name || !out || outlen == 0 || !expires)
		return -1;
	end = set_cookie + strnlen(set_cookie, GW_COOKIE_MAX_HEADER + 1);
	if (end - set_cookie > GW_COOKIE_MAX_HEADER)
		return -1;
	nv_end = memchr(set_cookie, ';', (size_t)(end - set_cookie));
	if (!nv_end)
		nv_end = end;
	eq = memchr(set_cookie, '=', (size_t)(nv_end - set_cookie));
	if (!eq)
		return -1;
	nb = set_cookie;
	ne = eq;
	cookie_trim(&nb, &ne);
	if (nb == ne)
		return -1;
	if ((size_t)(ne - nb) != strlen(name) || strncmp(nb, name, (size_t)(ne - nb)) != 0)
		return 0;
	vb = eq + 1;
	ve = nv_end;
	cookie_trim(&vb, &ve);
	if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
		vb++;
		ve--;
	}
	vlen = (size_t)(ve - vb);
	if (vlen + 1 > outlen)
		return -1;
	for (p = vb; p < ve; p++)
		if (!cookie_octet((unsigned char)*p))
			return -1;

	/* Attributes: "; Name[=Value]" each; only Max-Age and Expires matter here. */
	for (p = nv_end; p < end;) {
		const char *ab = p + 1, *ae, *aeq, *kb, *ke, *xb, *xe;

		ae = memchr(ab, ';', (size_t)(end - ab));
		if (!ae)
			ae = end;
		p = ae;
		aeq = memchr(ab, '=', (size_t)(ae - ab));
		kb = ab;
		ke = aeq ? aeq : ae;
		cookie_trim(&kb, &ke);
		if (!aeq)
			continue;
		xb = aeq + 1;
		xe = ae;
		cookie_trim(&xb, &xe);
		if ((size_t)(ke - kb) == 7 && strncasecmp(kb, "max-age", 7) == 0) {
			long v;

			if (cookie_max_age(xb, xe, &v) == 0) {
				have_max_age = 1;
				max_age = v;
			}
		} else if ((size_t)(ke - kb) == 7 && strncasecmp(kb, "expires", 7) == 0) {
			char date[64];
			size_t dl = (size_t)(xe - xb);
			time_t t;

			if (dl >= sizeof(date))
				continue;
			memcpy(date, xb, dl);
			date[dl] = '\0';
			t = gw_cookie_http_date(date);
			if (t >= 0)
				exp_date = t > 0 ? t : 1;	/* 0 would mean "session cookie" */
		}
	}

	memcpy(out, vb, vlen);
	out[vlen] = '\0';
	if (have_max_age)
		*expires = max_age > 0 ? now + max_age : (now > 1 ? now - 1 : 1);
	else
		*expires = exp_date;
	return 1;
}
