/*
 * webhook_out_dest: where a tenant's webhook may be delivered (issue 17, SSRF rules).
 *
 * A tenant endpoint URL is accepted when it is http:// or https://, carries no credentials
 * (no '@' in the authority), names a host of letters, digits, '.', '-' or an IP literal (IPv4
 * dotted quad, or [IPv6] without a zone), an optional port 1..65535, and at most
 * GW_WH_DEST_URL_MAX bytes of printable ASCII. Numeric host forms that resolvers read as IPv4
 * but are not a dotted quad ("2130706433", "0x7f.1", "127.1") are refused: they would dodge the
 * address check below.
 *
 * Unless allow_private is set (webhooks.allow_private_destinations), an IP literal must be a
 * public address: loopback, private (RFC 1918, IPv6 ULA), shared (100.64/10), link-local (which
 * holds cloud metadata, 169.254.169.254), unspecified, multicast, broadcast and reserved ranges
 * are refused, as are IPv4 addresses mapped into IPv6. Host names ("localhost" aside, refused
 * like 127.0.0.1) are resolved at delivery time and each resolved address is checked with
 * gw_wh_dest_addr_class() before connecting (the outbox's open-socket hook), so a name that
 * resolves to a private address later is refused then.
 *
 * Pure; any thread.
 */
#ifndef A3D_GATEWAY_WEBHOOK_OUT_DEST_H
#define A3D_GATEWAY_WEBHOOK_OUT_DEST_H

#include <stddef.h>

struct sockaddr;

#define GW_WH_DEST_URL_MAX 2048		/* bytes of an endpoint URL */
#define GW_WH_DEST_HOST_MAX 253		/* bytes of its host (a DNS name's limit) */

enum gw_wh_dest_rc {
	GW_WH_DEST_OK = 0,
	GW_WH_DEST_BAD_URL = 1,		/* not a URL this accepts */
	GW_WH_DEST_SCHEME = 2,		/* not http(s) (file:, gopher:, ...) */
	GW_WH_DEST_CREDENTIALS = 3,	/* user[:password]@ in the authority */
	GW_WH_DEST_PRIVATE = 4,		/* a non-public address and allow_private is off */
};

struct gw_wh_dest {
	int https;
	int is_ip;				/* the host is an IP literal */
	unsigned port;				/* 80 / 443 when absent */
	char host[GW_WH_DEST_HOST_MAX + 1];	/* without the brackets of an IPv6 literal */
};

/*
 * Checks url; returns GW_WH_DEST_OK and fills *out (may be NULL), or another rc with one line in
 * err (never quoting the URL: it may carry a token) naming what is wrong, e.g. "url must not
 * carry credentials".
 */
int gw_wh_dest_check_url(const char *url, int allow_private, struct gw_wh_dest *out, char *err,
			 size_t errlen);

/* NULL when sa is a public IPv4/IPv6 address; else its class ("loopback", "private",
 * "link-local", "unspecified", "multicast", "reserved", "shared", "mapped", "family"). */
const char *gw_wh_dest_addr_class(const struct sockaddr *sa);

#endif
