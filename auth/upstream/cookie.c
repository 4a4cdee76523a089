/* cookie: Set-Cookie and HTTP-date parsing (RFC 6265 section 5.2, RFC 9110 section 5.6.7). */
#include "auth/upstream/cookie.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char *const cookie_months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const cookie_wdays[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const cookie_wdays_long[7] = { "Monday", "Tuesday", "Wednesday", "Thursday",
						  "Friday", "Saturday", "Sunday" };

static int cookie_ws(char c)
{
	return c == ' ' || c == '\t';
}

static int cookie_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads exactly n digits at *p. */
static int cookie_num(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!cookie_digit((*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int cookie_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

/* One of names[count] (exact case, as RFC 9110 requires); index or -1. */
static int cookie_word(const char **p, const char *const *names, int count)
{
	for (int i = 0; i < count; i++) {
		size_t n = strlen(names[i]);

		if (strncmp(*p, names[i], n) == 0 && !((*p)[n] >= 'a' && (*p)[n] <= 'z')) {
			*p += n;
			return i;
		}
	}
	return -1;
}

/* "HH:MM:SS" */
static int cookie_hms(const char **p, int *h, int *m, int *s)
{
	if (cookie_num(p, 2, h) < 0 || cookie_lit(p, ":") < 0 || cookie_num(p, 2, m) < 0 ||
	    cookie_lit(p, ":") < 0 || cookie_num(p, 2, s) < 0)
		return -1;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t cookie_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static time_t cookie_mktime(int y, int mon, int d, int h, int mi, int s)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (y < 1601 || y > 9999 || mon < 0 || mon > 11 || d < 1 || d > mdays[mon] ||
	    (mon == 1 && d == 29 && !leap) || h > 23 || mi > 59 || s > 60)
		return -1;
	if (s == 60)	/* a leap second: the same instant as :59 for our purposes */
		s = 59;
	if (y < 1970)	/* before the epoch: an expired date, not an error */
		return 0;
	return (time_t)(cookie_days(y, mon + 1, d) * 86400 + h * 3600 + mi * 60 + s);
}

time_t gw_cookie_http_date(const char *s)
{
	const char *p = s;
	int wd, d, mon, y, h, mi, sec;
	time_t t;

	if (!s)
		return -1;
	while (cookie_ws(*p))
		p++;
	if ((wd = cookie_word(&p, cookie_wdays_long, 7)) >= 0) {
		/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (4-digit year tolerated) */
		if (cookie_lit(&p, ", ") < 0 || cookie_num(&p, 2, &d) < 0 || cookie_lit(&p, "-") < 0 ||
		    (mon = cookie_word(&p, cookie_months, 12)) < 0 || cookie_lit(&p, "-") < 0)
			return -1;
		if (cookie_digit(p[0]) && cookie_digit(p[1]) && cookie_digit(p[2])) {
			if (cookie_num(&p, 4, &y) < 0)
				return -1;
		} else {
			if (cookie_num(&p, 2, &y) < 0)
				return -1;
			y += y < 70 ? 2000 : 1900;	/* RFC 6265 5.1.1 */
		}
		if (cookie_lit(&p, " ") < 0 || cookie_hms(&p, &h, &mi, &sec) < 0 || cookie_lit(&p, " GMT") < 0)
			return -1;
	} else if ((wd = cookie_word(&p, cookie_wdays, 7)) >= 0) {
		if (*p == ',') {
			/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", or the Netscape cookie form
			 * "Sun, 06-Nov-1994 08:49:37 GMT" */
			char sep;

			if (cookie_lit(&p, ", ") < 0 || cookie_num(&p, 2, &d) < 0)
				return -1;
			sep = *p;
			if (sep != ' ' && sep != '-')
				return -1;
			p++;
			if ((mon = cookie_word(&p, cookie_months, 12)) < 0 || *p != sep)
				return -1;
			p++;
			if (cookie_num(&p, 4, &y) < 0 || cookie_lit(&p, " ") < 0 ||
			    cookie_hms(&p, &h, &mi, &sec) < 0 || cookie_lit(&p, " GMT") < 0)
				return -1;
		} else {
			/* asctime "Sun Nov  6 08:49:37 1994" */
			if (cookie_lit(&p, " ") < 0 || (mon = cookie_word(&p, cookie_months, 12)) < 0 ||
			    cookie_lit(&p, " ") < 0)
				return -1;
			if (*p == ' ') {
				p++;
				if (cookie_num(&p, 1, &d) < 0)
					return -1;
			} else if (cookie_num(&p, 2, &d) < 0) {
				return -1;
			}
			if (cookie_lit(&p, " ") < 0 || cookie_hms(&p, &h, &mi, &sec) < 0 ||
			    cookie_lit(&p, " ") < 0 || cookie_num(&p, 4, &y) < 0)
				return -1;
		}
	} else {
		return -1;
	}
	while (cookie_ws(*p))
		p++;
	if (*p)
		return -1;
	t = cookie_mktime(y, mon, d, h, mi, sec);
	(void)wd;	/* the weekday is not checked against the date: clients do not either */
	return t;
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
