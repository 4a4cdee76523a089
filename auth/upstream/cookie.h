/*
 * cookie: the upstream session cookie (dmsess) from a Set-Cookie header, and HTTP dates.
 * Pure functions: no I/O, no allocation, no global state (not even the time zone); dates are read
 * by libcurl's curl_getdate().
 */
#ifndef A3D_AUTH_COOKIE_H
#define A3D_AUTH_COOKIE_H

#include <stddef.h>
#include <time.h>

#define GW_COOKIE_MAX_HEADER 8192	/* longer Set-Cookie values are malformed */
#define GW_COOKIE_MAX_DATE 64	/* longer Expires/HTTP-date values are not dates */
#define GW_COOKIE_MAX_AGE (10L * 365 * 86400)	/* larger Max-Age values are clamped to this */

/*
 * Parses one Set-Cookie header value (without "Set-Cookie:"). If the cookie's name is `name`, copies
 * its value (up to the first ';', trimmed, surrounding DQUOTEs removed; it must fit outlen-1 bytes and
 * contain no control character, space, '"', ';', ',' or '\') into out, sets *expires and returns 1.
 * *expires: now + Max-Age if a valid Max-Age is present (Max-Age <= 0: a time already past, never 0),
 * else the Expires date (IMF-fixdate, RFC 850 or asctime), else 0 (session cookie).
 * Returns 0 for another cookie (out and *expires untouched), -1 for malformed input (no '=', empty
 * name, bad value, value too long, header longer than GW_COOKIE_MAX_HEADER, NULL arguments).
 * Unknown attributes and unparseable Max-Age/Expires are ignored, as RFC 6265 says.
 */
int gw_cookie_parse(const char *set_cookie, const char *name, char *out, size_t outlen, time_t now,
		    time_t *expires);

/*
 * An HTTP date (RFC 9110 5.6.7) as libcurl's curl_getdate() reads it: "Sun, 06 Nov 1994 08:49:37 GMT"
 * (IMF-fixdate), "Sunday, 06-Nov-94 08:49:37 GMT" (RFC 850), "Sun Nov  6 08:49:37 1994" (asctime),
 * and the looser forms real servers send. Returns the time (UTC), or -1 for NULL, "", a value longer
 * than GW_COOKIE_MAX_DATE, or one curl cannot read as a date. Usable for Retry-After.
 */
time_t gw_cookie_http_date(const char *s);

#endif
