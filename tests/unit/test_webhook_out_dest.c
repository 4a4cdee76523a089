/* Unit tests for gateway/svc/webhook_out_dest.c: URL -> accepted or refused (SSRF rules), with
 * and without webhooks.allow_private_destinations; resolved addresses -> class. IP literals
 * only: nothing here resolves or connects. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/svc/webhook_out_dest.h"

#define OK GW_WH_DEST_OK
#define BAD GW_WH_DEST_BAD_URL
#define SCH GW_WH_DEST_SCHEME
#define CRED GW_WH_DEST_CREDENTIALS
#define PRIV GW_WH_DEST_PRIVATE

static const struct {
	const char *url;
	int strict;	/* allow_private off */
	int relaxed;	/* allow_private on */
	const char *host;	/* when accepted */
	unsigned port;
} url_cases[] = {
	{ "https://hooks.example.com/a3d", OK, OK, "hooks.example.com", 443 },
	{ "http://hooks.example.com:8081/x?y=1", OK, OK, "hooks.example.com", 8081 },
	{ "HTTPS://8.8.8.8/", OK, OK, "8.8.8.8", 443 },
	{ "http://[2001:db8::1]:9000/h", OK, OK, "2001:db8::1", 9000 },
	/* loopback, private, link-local (cloud metadata), unspecified, multicast, broadcast */
	{ "http://127.0.0.1:9/h", PRIV, OK, "127.0.0.1", 9 },
	{ "http://127.255.0.1/", PRIV, OK, "127.255.0.1", 80 },
	{ "http://169.254.169.254/latest/meta-data", PRIV, OK, "169.254.169.254", 80 },
	{ "http://10.1.2.3/", PRIV, OK, "10.1.2.3", 80 },
	{ "http://172.16.0.1/", PRIV, OK, "172.16.0.1", 80 },
	{ "http://172.32.0.1/", OK, OK, "172.32.0.1", 80 },
	{ "http://192.168.1.1/", PRIV, OK, "192.168.1.1", 80 },
	{ "http://100.64.0.1/", PRIV, OK, "100.64.0.1", 80 },
	{ "http://0.0.0.0/", PRIV, OK, "0.0.0.0", 80 },
	{ "http://224.0.0.1/", PRIV, OK, "224.0.0.1", 80 },
	{ "http://255.255.255.255/", PRIV, OK, "255.255.255.255", 80 },
	{ "http://[::1]/", PRIV, OK, "::1", 80 },
	{ "http://[::]/", PRIV, OK, "::", 80 },
	{ "http://[fe80::1]/", PRIV, OK, "fe80::1", 80 },
	{ "http://[fd00::1]/", PRIV, OK, "fd00::1", 80 },
	{ "http://[ff02::1]/", PRIV, OK, "ff02::1", 80 },
	{ "http://[::ffff:127.0.0.1]/", PRIV, OK, "::ffff:127.0.0.1", 80 },
	{ "http://[::ffff:8.8.8.8]/", PRIV, OK, "::ffff:8.8.8.8", 80 },
	{ "http://localhost:8080/", PRIV, OK, "localhost", 8080 },
	{ "http://a.localhost./", PRIV, OK, "a.localhost.", 80 },
	/* numeric forms resolvers read as 127.0.0.1: never a name, never a literal we checked */
	{ "http://2130706433/", BAD, BAD, NULL, 0 },
	{ "http://0x7f.1/", BAD, BAD, NULL, 0 },
	{ "http://127.1/", BAD, BAD, NULL, 0 },
	{ "http://0177.0.0.1/", BAD, BAD, NULL, 0 },
	/* schemes */
	{ "file:///etc/passwd", SCH, SCH, NULL, 0 },
	{ "gopher://8.8.8.8/", SCH, SCH, NULL, 0 },
	{ "ftp://hooks.example.com/", SCH, SCH, NULL, 0 },
	{ "//hooks.example.com/", SCH, SCH, NULL, 0 },
	/* credentials */
	{ "https://user:pw@hooks.example.com/", CRED, CRED, NULL, 0 },
	{ "https://user@8.8.8.8/", CRED, CRED, NULL, 0 },
	{ "http://8.8.8.8@127.0.0.1/", CRED, CRED, NULL, 0 },
	/* malformed */
	{ "", BAD, BAD, NULL, 0 },
	{ "http://", BAD, BAD, NULL, 0 },
	{ "http:///x", BAD, BAD, NULL, 0 },
	{ "http://h.example.com:0/", BAD, BAD, NULL, 0 },
	{ "http://h.example.com:65536/", BAD, BAD, NULL, 0 },
	{ "http://h.example.com:8x/", BAD, BAD, NULL, 0 },
	{ "http://h.example.com:/", BAD, BAD, NULL, 0 },
	{ "http://[::1/", BAD, BAD, NULL, 0 },
	{ "http://[fe80::1%25eth0]/", BAD, BAD, NULL, 0 },
	{ "http://[zz::1]/", BAD, BAD, NULL, 0 },
	{ "http://h_x.example.com/", BAD, BAD, NULL, 0 },
	{ "http://h.example.com /", BAD, BAD, NULL, 0 },
	{ "http://h\\.example.com/", BAD, BAD, NULL, 0 },
};

Test(webhook_out_dest, url_table)
{
	for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
		for (int allow = 0; allow <= 1; allow++) {
			struct gw_wh_dest d;
			char err[160] = "";
			int want = allow ? url_cases[i].relaxed : url_cases[i].strict;
			int rc = gw_wh_dest_check_url(url_cases[i].url, allow, &d, err, sizeof err);

			cr_expect_eq(rc, want, "%s (allow %d): rc %d, want %d (%s)", url_cases[i].url,
				     allow, rc, want, err);
			if (rc == OK && url_cases[i].host) {
				cr_expect_str_eq(d.host, url_cases[i].host, "%s", url_cases[i].url);
				cr_expect_eq(d.port, url_cases[i].port, "%s", url_cases[i].url);
			}
			if (rc != OK)
				cr_expect_neq(err[0], '\0', "%s: a reason", url_cases[i].url);
			if (rc != OK)
				cr_expect_null(strstr(err, "pw"), "the URL is never quoted");
		}
	}
}

Test(webhook_out_dest, too_long)
{
	static char url[GW_WH_DEST_URL_MAX + 16];
	char err[160];

	memset(url, 'a', sizeof url - 1);
	memcpy(url, "https://h.example.com/", 22);
	cr_expect_eq(gw_wh_dest_check_url(url, 1, NULL, err, sizeof err), BAD);
}

static const struct {
	int family;
	const char *addr;
	const char *cls;	/* NULL: public */
} addr_cases[] = {
	{ AF_INET, "8.8.8.8", NULL },
	{ AF_INET, "127.0.0.1", "loopback" },
	{ AF_INET, "169.254.169.254", "link-local" },
	{ AF_INET, "10.0.0.1", "private" },
	{ AF_INET, "192.0.0.8", "reserved" },
	{ AF_INET, "198.18.0.1", "reserved" },
	{ AF_INET, "239.1.1.1", "multicast" },
	{ AF_INET6, "2606:4700::1111", NULL },
	{ AF_INET6, "::1", "loopback" },
	{ AF_INET6, "::ffff:10.0.0.1", "mapped" },
	{ AF_INET6, "64:ff9b::a00:1", "mapped" },
	{ AF_INET6, "fec0::1", "private" },
};

Test(webhook_out_dest, addr_class)
{
	for (size_t i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
		struct sockaddr_storage ss = { 0 };
		const char *cls;

		if (addr_cases[i].family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			s4->sin_family = AF_INET;
			cr_assert_eq(inet_pton(AF_INET, addr_cases[i].addr, &s4->sin_addr), 1);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;
			cr_assert_eq(inet_pton(AF_INET6, addr_cases[i].addr, &s6->sin6_addr), 1);
		}
		cls = gw_wh_dest_addr_class((struct sockaddr *)&ss);
		if (addr_cases[i].cls)
			cr_expect_str_eq(cls ? cls : "(public)", addr_cases[i].cls, "%s",
					 addr_cases[i].addr);
		else
			cr_expect_null(cls, "%s is public", addr_cases[i].addr);
	}
	cr_expect_str_eq(gw_wh_dest_addr_class(NULL), "family");
}
