/*
 * webhook_out_dest: the SSRF rules for tenant webhook URLs. See webhook_out_dest.h.
 */
#include "gateway/svc/webhook_out_dest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int dest_fail(char *err, size_t errlen, int rc, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	return rc;
}

static const char *dest_v4_class(uint32_t a)
{
	static const struct {
		uint32_t net, mask;
		const char *cls;
	} ranges[] = {
		{ 0x00000000u, 0xff000000u, "unspecified" },	/* 0/8 "this network" */
		{ 0x7f000000u, 0xff000000u, "loopback" },	/* 127/8 */
		{ 0x0a000000u, 0xff000000u, "private" },	/* 10/8 */
		{ 0xac100000u, 0xfff00000u, "private" },	/* 172.16/12 */
		{ 0xc0a80000u, 0xffff0000u, "private" },	/* 192.168/16 */
		{ 0x64400000u, 0xffc00000u, "shared" },	/* 100.64/10, carrier NAT */
		{ 0xa9fe0000u, 0xffff0000u, "link-local" },	/* 169.254/16, cloud metadata */
		{ 0xc0000000u, 0xffffff00u, "reserved" },	/* 192.0.0/24 protocol assignments */
		{ 0xc6120000u, 0xfffe0000u, "reserved" },	/* 198.18/15 benchmarking */
		{ 0xe0000000u, 0xf0000000u, "multicast" },	/* 224/4 */
		{ 0xf0000000u, 0xf0000000u, "reserved" },	/* 240/4 and the broadcast address */
	};

	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if ((a & ranges[i].mask) == ranges[i].net)
			return ranges[i].cls;
	return NULL;
}

static const char *dest_v6_class(const uint8_t b[16])
{
	static const uint8_t zero[16];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(b, zero, 15) == 0)
		return b[15] == 1 ? "loopback" : b[15] == 0 ? "unspecified" : "reserved";
	/* A mapped or compatible IPv4 address reaches the IPv4 host: refused outright rather than
	 * trusted to the kernel's handling of v4-in-v6. */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0)
		return "mapped";
	if ((b[0] & 0xfe) == 0xfc)
		return "private";		/* fc00::/7 unique local */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local";		/* fe80::/10 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return "private";		/* fec0::/10, the old site-local */
	if (b[0] == 0xff)
		return "multicast";
	if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
		return "mapped";		/* 64:ff9b::/96 NAT64 reaches an IPv4 host too */
	return NULL;
}

const char *gw_wh_dest_addr_class(const struct sockaddr *sa)
{
	if (!sa)
		return "family";
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in;

		memcpy(&in, sa, sizeof in);
		return dest_v4_class(ntohl(in.sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;

		memcpy(&in6, sa, sizeof in6);
		return dest_v6_class(in6.sin6_addr.s6_addr);
	}
	return "family";
}

/* Only digits, dots and x/X-prefixed hex: a resolver may read it as an IPv4 number. */
static int dest_numeric_looking(const char *h)
{
	int digits = 0;

	if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X'))
		return 1;
	for (const char *p = h; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits = 1;
		else if (*p != '.')
			return 0;
	}
	return digits;
}

static int dest_hostname_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || h[0] == '.' || h[0] == '-' || h[n - 1] == '-')
		return 0;
	for (const char *p = h; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return 0;
	return strstr(h, "..") == NULL;
}

/* "localhost" and anything under it resolves to loopback by convention (RFC 6761). */
static int dest_localhost(const char *h)
{
	size_t n = strlen(h);
	static const char lh[] = "localhost";
	size_t k = sizeof lh - 1;

	if (n && h[n - 1] == '.')
		n--;
	if (n < k || strncasecmp(h + n - k, lh, k) != 0)
		return 0;
	return n == k || h[n - k - 1] == '.';
}

/* Parses "[v6]" or "host" and an optional ":port" out of the authority [a, a + alen). */
static int dest_authority(const char *a, size_t alen, struct gw_wh_dest *d, char *err,
			  size_t errlen)
{
	const char *port = NULL;
	size_t hlen;

	if (alen && a[0] == '[') {
		const char *close = memchr(a, ']', alen);

		if (!close)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has an unclosed '['");
		hlen = (size_t)(close - a) - 1;
		if (close + 1 < a + alen) {
			if (close[1] != ':')
				return dest_fail(err, errlen, GW_WH_DEST_BAD_URL,
						 "url has text after its IPv6 address");
			port = close + 2;
		}
		if (hlen == 0 || hlen > GW_WH_DEST_HOST_MAX)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has a bad IPv6 address");
		memcpy(d->host, a + 1, hlen);
		d->host[hlen] = '\0';
		d->is_ip = 6;
	} else {
		const char *colon = memchr(a, ':', alen);

		hlen = colon ? (size_t)(colon - a) : alen;
		if (colon)
			port = colon + 1;
		if (hlen == 0)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has no host");
		if (hlen > GW_WH_DEST_HOST_MAX)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url host is too long");
		memcpy(d->host, a, hlen);
		d->host[hlen] = '\0';
	}
	if (port) {
		unsigned long v = 0;
		const char *end = a + alen;

		if (port >= end || end - port > 5)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has a bad port");
		for (const char *p = port; p < end; p++) {
			if (*p < '0' || *p > '9')
				return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has a bad port");
			v = v * 10 + (unsigned long)(*p - '0');
		}
		if (v == 0 || v > 65535)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url port must be 1..65535");
		d->port = (unsigned)v;
	}
	return GW_WH_DEST_OK;
}

int gw_wh_dest_check_url(const char *url, int allow_private, struct gw_wh_dest *out, char *err,
			 size_t errlen)
{
	struct gw_wh_dest d;
	const char *a;
	size_t n, alen;
	const char *cls = NULL;
	int rc;

	memset(&d, 0, sizeof d);
	if (!url || !url[0])
		return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url is required");
	n = strlen(url);
	if (n > GW_WH_DEST_URL_MAX)
		return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url is too long");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL,
					 "url must be printable ASCII without spaces");
	if (strncasecmp(url, "https://", 8) == 0) {
		d.https = 1;
		a = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		a = url + 7;
	} else {
		return dest_fail(err, errlen, GW_WH_DEST_SCHEME, "url must be http:// or https://");
	}
	alen = strcspn(a, "/?#");
	if (memchr(a, '@', alen))
		return dest_fail(err, errlen, GW_WH_DEST_CREDENTIALS, "url must not carry credentials");
	if (memchr(a, '\\', alen) || memchr(a, '%', alen))
		return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url host has escapes");
	d.port = d.https ? 443 : 80;
	if ((rc = dest_authority(a, alen, &d, err, errlen)) != GW_WH_DEST_OK)
		return rc;
	if (d.is_ip == 6) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };

		if (inet_pton(AF_INET6, d.host, &s6.sin6_addr) != 1)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has a bad IPv6 address");
		cls = gw_wh_dest_addr_class((const struct sockaddr *)&s6);
	} else if (dest_numeric_looking(d.host)) {
		struct sockaddr_in s4 = { .sin_family = AF_INET };

		/* inet_pton takes exactly four decimal parts: the one form every resolver reads alike */
		if (inet_pton(AF_INET, d.host, &s4.sin_addr) != 1)
			return dest_fail(err, errlen, GW_WH_DEST_BAD_URL,
					 "url host must be a dotted-quad IPv4 address or a name");
		d.is_ip = 4;
		cls = gw_wh_dest_addr_class((const struct sockaddr *)&s4);
	} else if (!dest_hostname_ok(d.host)) {
		return dest_fail(err, errlen, GW_WH_DEST_BAD_URL, "url has a bad host name");
	} else if (dest_localhost(d.host)) {
		cls = "loopback";
	}
	if (cls && !allow_private) {
		if (err && errlen)
			snprintf(err, errlen,
				 "url must name a public destination (%s address refused; "
				 "webhooks.allow_private_destinations)", cls);
		return GW_WH_DEST_PRIVATE;
	}
	if (out)
		*out = d;
	return GW_WH_DEST_OK;
}
