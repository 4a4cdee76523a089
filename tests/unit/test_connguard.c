/* Unit tests for gateway/base/connguard.c: the reset window and the peer parser as tables, then
 * real loopback sockets: a connection over the reset limit and one with an unread backlog are
 * shut down (their client reads end of file), the others are left alone. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/base/connguard.h"

Test(connguard, count_window)
{
	static const struct {
		int64_t now_ms;
		int want;
	} steps[] = {		/* limit 3 per GW_CONNGUARD_WINDOW_MS (1000), CLOSED_KEEP_MS 1000 */
		{ 100, 0 }, { 200, 0 },
		{ 1100, 0 },		/* a new window: the count starts again */
		{ 1200, 0 },
		{ 1300, 1 },		/* the third in one window: close */
		{ 1400, 0 },		/* closed: its queued calls still arrive for CLOSED_KEEP_MS */
		{ 2299, 0 },
		{ 2300, 0 },		/* then counting starts again (a new connection, same port) */
		{ 2301, 0 },
		{ 2302, 1 },
	};
	struct gw_connguard_window w = { 0 };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		cr_expect_eq(gw_connguard_count(&w, 3, steps[i].now_ms), steps[i].want, "step %zu", i);
	memset(&w, 0, sizeof w);
	for (int i = 0; i < 10; i++)
		cr_expect_eq(gw_connguard_count(&w, 0, 5), 0, "limit 0: never");
}

Test(connguard, parse_peer)
{
	static const struct {
		const char *peer;
		int rc, family;
		const char *addr;
		int port;
	} cases[] = {
		{ "ipv4:127.0.0.1:50051", 0, AF_INET, "127.0.0.1", 50051 },
		{ "ipv6:[::1]:443", 0, AF_INET6, "::1", 443 },
		{ "ipv6:[::ffff:127.0.0.1]:40000", 0, AF_INET, "127.0.0.1", 40000 },	/* dual stack */
		{ "ipv6:%5B::ffff:10.1.2.3%5D:8080", 0, AF_INET, "10.1.2.3", 8080 },	/* escaped */
		{ "ipv6:%5B%3A%3A1%5D:7", 0, AF_INET6, "::1", 7 },
		{ "unix:/tmp/sock", -1, 0, NULL, 0 },
		{ "ipv4:127.0.0.1", -1, 0, NULL, 0 },
		{ "ipv4:127.0.0.1:0", -1, 0, NULL, 0 },
		{ "ipv4:127.0.0.1:65536", -1, 0, NULL, 0 },
		{ "ipv4:1.2.3:80", -1, 0, NULL, 0 },
		{ "ipv6:[::1:80", -1, 0, NULL, 0 },
		{ "ipv6:[fe80::1%25eth0]:80", -1, 0, NULL, 0 },	/* scoped: not ours */
		{ "ipv4:127.0.0.1:8%", -1, 0, NULL, 0 },
		{ "", -1, 0, NULL, 0 },
		{ NULL, -1, 0, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		char text[INET6_ADDRSTRLEN] = "";
		int port = 0;
		int rc = gw_connguard_parse_peer(cases[i].peer, &ss);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s): %d", i, cases[i].peer ? cases[i].peer : "NULL", rc);
		if (rc || cases[i].rc)
			continue;
		cr_expect_eq(ss.ss_family, cases[i].family, "case %zu", i);
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof text);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		cr_expect_str_eq(text, cases[i].addr, "case %zu", i);
		cr_expect_eq(port, cases[i].port, "case %zu", i);
	}
}

/* A listening socket on 127.0.0.1 (a free port), like gRPC core's. */
static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A client connected to port; *server gets the accepted end, peer the gRPC-style peer string. */
static int connect_pair(int lfd, int port, int *server, char *peer, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof a;
	int c = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(c, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	*server = accept(lfd, NULL, NULL);
	cr_assert_geq(*server, 0);
	cr_assert_eq(getsockname(c, (struct sockaddr *)&a, &alen), 0);
	snprintf(peer, len, "ipv4:127.0.0.1:%d", ntohs(a.sin_port));
	return c;
}

/* 1 when the client sees end of file (its server end was shut down), 0 when nothing came. */
static int client_sees_eof(int c)
{
	struct pollfd p = { .fd = c, .events = POLLIN };
	char b[16];

	if (poll(&p, 1, 200) <= 0)
		return 0;
	return recv(c, b, sizeof b, MSG_DONTWAIT) == 0;
}

Test(connguard, resets_close_only_that_connection)
{
	int port, lfd = listener(&port), s1, s2;
	char p1[64], p2[64];
	int c1 = connect_pair(lfd, port, &s1, p1, sizeof p1);
	int c2 = connect_pair(lfd, port, &s2, p2, sizeof p2);
	struct gw_connguard *g = gw_connguard_new(port, 5, 0);

	cr_assert_not_null(g);
	cr_expect_eq(gw_connguard_closed_lately(g), 0, "nothing closed yet");
	for (int i = 0; i < 4; i++) {
		gw_connguard_call_ended(g, p1, 1);
		gw_connguard_call_ended(g, p2, 0);	/* ended normally: not counted */
	}
	cr_expect_eq(client_sees_eof(c1), 0, "four resets: under the limit");
	gw_connguard_call_ended(g, p1, 1);
	cr_expect_eq(client_sees_eof(c1), 1, "the fifth reset closes the connection");
	cr_expect_eq(client_sees_eof(c2), 0, "the other connection stays");
	/* the calls still queued for the closed connection are dropped, the other's are not */
	cr_expect_eq(gw_connguard_closed_lately(g), 1);
	cr_expect_eq(gw_connguard_closed_peer(g, p1), 1);
	cr_expect_eq(gw_connguard_closed_peer(g, p2), 0);
	cr_expect_eq(gw_connguard_relieve(g), 0, "backlog 0: relief closes nothing");
	gw_connguard_free(g);
	close(c1);
	close(c2);
	close(s1);
	close(s2);
	close(lfd);
}

Test(connguard, relieve_closes_backlogged_connections)
{
	int port, lfd = listener(&port), s1, s2;
	char p1[64], p2[64], buf[64 << 10];
	int c1 = connect_pair(lfd, port, &s1, p1, sizeof p1);
	int c2 = connect_pair(lfd, port, &s2, p2, sizeof p2);
	struct gw_connguard *g = gw_connguard_new(port, 0, 32 << 10);
	struct pollfd p = { .fd = s1, .events = POLLIN };

	cr_assert_not_null(g);
	memset(buf, 'x', sizeof buf);
	cr_assert_eq(send(c1, buf, sizeof buf, 0), (ssize_t)sizeof buf);	/* never read */
	cr_assert_eq(send(c2, buf, 100, 0), 100);				/* a small request */
	cr_assert_eq(poll(&p, 1, 1000), 1);
	cr_expect_eq(gw_connguard_relieve(g), 1);
	cr_expect_eq(client_sees_eof(c1), 1, "64 KiB unread: closed");
	cr_expect_eq(client_sees_eof(c2), 0, "100 bytes unread: left alone");
	gw_connguard_call_ended(g, p2, 1);	/* max_resets 0: resets never close */
	cr_expect_eq(client_sees_eof(c2), 0);
	gw_connguard_free(g);
	close(c1);
	close(c2);
	close(s1);
	close(s2);
	close(lfd);
}

/* The heavy-sender decision: SAMPLE_MS 250, SHED_RATE 256 KiB/s, SHED_NEW 64 KiB. Each step notes
 * a sample (note_bytes at note_ms, when note_ms is set) and then asks about bytes at now_ms. */
Test(connguard, intake_heavy)
{
	static const struct {
		int64_t note_ms;
		uint64_t note_bytes;
		int64_t now_ms;
		uint64_t bytes;
		int want;
	} steps[] = {
		{ 0, 0, 1000, 1000, 0 },		/* never sampled, 1000 bytes in all: light */
		{ 0, 0, 1000, 64 << 10, 1 },		/* never sampled, 64 KiB in: heavy */
		{ 1000, 5000, 1000, 5000, 0 },		/* sampled this instant, small total */
		{ 0, 0, 1000, 100 << 10, 1 },		/* same instant, no rate: 100 KiB total */
		{ 0, 0, 1100, 10000, 0 },		/* 5000 B in 100 ms: 50 KB/s */
		{ 0, 0, 1100, 5000 + (30 << 10), 1 },	/* 30 KiB in 100 ms: 300 KiB/s */
		{ 1100, 6000, 1100, 6000, 0 },		/* under SAMPLE_MS: the sample is not kept */
		{ 1250, 9000, 1300, 9100, 0 },		/* kept (250 ms); 50 ms on: the older one (4100 B/300 ms) */
		{ 0, 0, 1400, 9000 + (40 << 10), 1 },	/* 40 KiB since 1250 (150 ms: the newer one) */
		{ 0, 0, 1400, 9000 + (20 << 10), 0 },	/* 20 KiB in 150 ms: 133 KiB/s */
		{ 0, 0, 1400, 100, 0 },			/* fewer than sampled (another connection on the
							 * port): its 100 B in all are light */
	};
	struct gw_connguard_intake s = { 0 };

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		if (steps[i].note_ms)
			gw_connguard_intake_note(&s, steps[i].note_bytes, steps[i].note_ms);
		cr_expect_eq(gw_connguard_intake_heavy(&s, steps[i].bytes, steps[i].now_ms),
			     steps[i].want, "step %zu", i);
	}
}

Test(connguard, shed_closes_only_heavy_senders)
{
	int port, lfd = listener(&port), s1, s2;
	char p1[64], p2[64], buf[64 << 10];
	int c1 = connect_pair(lfd, port, &s1, p1, sizeof p1);
	int c2 = connect_pair(lfd, port, &s2, p2, sizeof p2);
	struct gw_connguard *g = gw_connguard_new(port, 0, 0);
	struct pollfd p = { .fd = s1, .events = POLLIN };

	cr_assert_not_null(g);
	cr_expect_eq(gw_connguard_relieve(g), 0, "backlog 0: the relief only samples");
	cr_expect_eq(gw_connguard_shed(g), 0, "nobody sent anything: no heavy sender");
	memset(buf, 'x', sizeof buf);
	cr_assert_eq(send(c1, buf, sizeof buf, 0), (ssize_t)sizeof buf);	/* 64 KiB at once */
	cr_assert_eq(send(c2, buf, 100, 0), 100);				/* a small request */
	cr_assert_eq(poll(&p, 1, 1000), 1);
	cr_expect_eq(gw_connguard_shed(g), 1);
	cr_expect_eq(client_sees_eof(c1), 1, "64 KiB since the sample: closed");
	cr_expect_eq(client_sees_eof(c2), 0, "100 bytes: left alone");
	cr_expect_eq(gw_connguard_closed_peer(g, p1), 1, "its queued calls are dropped");
	cr_expect_eq(gw_connguard_closed_peer(g, p2), 0);
	gw_connguard_free(g);
	close(c1);
	close(c2);
	close(s1);
	close(s2);
	close(lfd);
}

/* The stream guard's thread closes connections through these two: found by peer among the
 * process's descriptors, and remembered so the loop drops their queued calls. */
Test(connguard, shutdown_peer_and_note)
{
	int port, lfd = listener(&port), s1, s2;
	char p1[64], p2[64];
	int c1 = connect_pair(lfd, port, &s1, p1, sizeof p1);
	int c2 = connect_pair(lfd, port, &s2, p2, sizeof p2);
	struct gw_connguard *g = gw_connguard_new(port, 5, 0);
	struct sockaddr_storage ss;

	cr_assert_not_null(g);
	cr_assert_eq(gw_connguard_parse_peer(p1, &ss), 0);
	cr_expect_eq(gw_connguard_shutdown_peer(port + 1 == 65536 ? 1 : port + 1, &ss), 0,
		     "another port: not found");
	cr_expect_eq(client_sees_eof(c1), 0);
	cr_expect_eq(gw_connguard_shutdown_peer(port, &ss), 1);
	cr_expect_eq(client_sees_eof(c1), 1, "shut down");
	cr_expect_eq(client_sees_eof(c2), 0, "the other connection stays");
	cr_expect_eq(gw_connguard_closed_lately(g), 0, "not told yet");
	gw_connguard_note_closed(g, &ss);
	cr_expect_eq(gw_connguard_closed_lately(g), 1);
	cr_expect_eq(gw_connguard_closed_peer(g, p1), 1);
	cr_expect_eq(gw_connguard_closed_peer(g, p2), 0);
	gw_connguard_free(g);
	close(c1);
	close(c2);
	close(s1);
	close(s2);
	close(lfd);
}
