/* Unit tests for gateway/base/listenprobe.c: the probe address of a listen string (a table), and
 * the verdict against real loopback listeners: one that accepts and answers, one that accepts and
 * closes, one that is bound but never accepts (what gRPC core 1.51 becomes after EMFILE), and a
 * closed port. Loop runs are bounded in time. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "gateway/base/listenprobe.h"

#define INTERVAL_MS 100
#define TIMEOUT_MS 50

Test(listenprobe, address_of_a_listen_string)
{
	static const struct {
		const char *listen;
		int port;
		int rc;
		const char *want;	/* the address as text */
	} cases[] = {
		{ "0.0.0.0:50051", 50051, 0, "127.0.0.1" },
		{ "127.0.0.1:0", 4242, 0, "127.0.0.1" },	/* ":0": the bound port is what counts */
		{ "10.1.2.3:5", 5, 0, "10.1.2.3" },
		{ "localhost:5", 5, 0, "127.0.0.1" },		/* a name: loopback, no DNS */
		{ "[::]:7", 7, 0, "::1" },
		{ "[::1]:7", 7, 0, "::1" },
		{ "[fe80::1]:7", 7, 0, "fe80::1" },
		{ "nohost", 7, -1, NULL },
		{ "[::1:7", 7, -1, NULL },
		{ "127.0.0.1:1", 0, -1, NULL },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char text[INET6_ADDRSTRLEN] = "";
		int rc = gw_listenprobe_addr(cases[i].listen, cases[i].port, &ss, &len);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].listen);
		if (rc)
			continue;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
			cr_expect_eq(ntohs(a->sin_port), cases[i].port, "case %zu", i);
			cr_expect_eq(len, sizeof *a);
		} else {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
			cr_expect_eq(ntohs(a->sin6_port), cases[i].port, "case %zu", i);
			cr_expect_eq(len, sizeof *a);
		}
		cr_expect_str_eq(text, cases[i].want, "case %zu", i);
	}
}

enum server_kind { ANSWERS, CLOSES, NEVER_ACCEPTS, CLOSED_PORT };

struct server {
	enum server_kind kind;
	struct evconnlistener *lev;
	int fd;			/* NEVER_ACCEPTS: a bound, listening socket nobody accepts on */
	unsigned short port;
};

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct server *s = arg;

	(void)lev;
	(void)sa;
	(void)len;
	if (s->kind == ANSWERS)
		(void)!write(fd, "\0\0\0\4\0\0\0\0\0", 9);	/* the server's SETTINGS */
	close(fd);
}

static unsigned short bound_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void server_up(struct event_base *base, struct server *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = -1;
	if (s->kind == ANSWERS || s->kind == CLOSES) {
		s->lev = evconnlistener_new_bind(base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
						 16, (struct sockaddr *)&sin, sizeof sin);
		cr_assert_not_null(s->lev);
		s->port = bound_port(evconnlistener_get_fd(s->lev));
		return;
	}
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->fd, 0);
	cr_assert_eq(bind(s->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	s->port = bound_port(s->fd);
	if (s->kind == NEVER_ACCEPTS)
		cr_assert_eq(listen(s->fd, 64), 0);
	else {
		close(s->fd);	/* CLOSED_PORT: nobody there */
		s->fd = -1;
	}
}

static void server_down(struct server *s)
{
	if (s->lev)
		evconnlistener_free(s->lev);
	if (s->fd >= 0)
		close(s->fd);
}

static void run_ms(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

Test(listenprobe, verdict_against_real_listeners)
{
	static const struct {
		enum server_kind kind;
		int alive;				/* after 6 intervals, 2 failures make it dead */
		enum gw_probe_result seen;		/* the outcome counted */
	} cases[] = {
		{ ANSWERS, 1, GW_PROBE_OK },
		{ CLOSES, 1, GW_PROBE_OK },		/* an orderly close: it was accepted */
		{ NEVER_ACCEPTS, 0, GW_PROBE_TIMEOUT },
		{ CLOSED_PORT, 0, GW_PROBE_REFUSED },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct event_base *base = event_base_new();
		struct server s = { .kind = cases[i].kind };
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct gw_listenprobe *p;
		struct gw_listenprobe_stats st;

		cr_assert_not_null(base);
		server_up(base, &s);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(s.port);
		p = gw_listenprobe_new(base, "test", (struct sockaddr *)&sin, sizeof sin, NULL, 0,
				       INTERVAL_MS, TIMEOUT_MS, 2, NULL, NULL);
		cr_assert_not_null(p);
		cr_expect_eq(gw_listenprobe_alive(p), 1, "case %zu: alive before any probe", i);
		run_ms(base, 6 * INTERVAL_MS + TIMEOUT_MS);
		gw_listenprobe_stats(p, &st);
		cr_expect_eq(gw_listenprobe_alive(p), cases[i].alive, "case %zu", i);
		cr_expect_geq(st.results[cases[i].seen], 2, "case %zu: %llu", i,
			      (unsigned long long)st.results[cases[i].seen]);
		gw_listenprobe_free(p);
		server_down(&s);
		event_base_free(base);
	}
}

static int skip_always(void *arg)
{
	++*(int *)arg;
	return 1;
}

Test(listenprobe, skipped_while_asked_and_bad_arguments)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct gw_listenprobe *p;
	struct gw_listenprobe_stats st;
	int asked = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_expect_null(gw_listenprobe_new(base, "t", (struct sockaddr *)&sin, sizeof sin, NULL, 0, 100, 100,
					  1, NULL, NULL));
	cr_expect_null(gw_listenprobe_new(base, "t", (struct sockaddr *)&sin, sizeof sin, NULL, 0, 100, 50,
					  0, NULL, NULL));
	p = gw_listenprobe_new(base, "t", (struct sockaddr *)&sin, sizeof sin, NULL, 0, INTERVAL_MS,
			       TIMEOUT_MS, 1, skip_always, &asked);
	cr_assert_not_null(p);
	run_ms(base, 3 * INTERVAL_MS + TIMEOUT_MS);
	gw_listenprobe_stats(p, &st);
	cr_expect_geq(asked, 2);
	for (int r = 0; r < GW_PROBE_NRESULTS; r++)
		cr_expect_eq(st.results[r], 0, "result %d counted while skipped", r);
	cr_expect_eq(gw_listenprobe_alive(p), 1);
	cr_expect_eq(gw_listenprobe_alive(NULL), 1);
	gw_listenprobe_free(p);
	event_base_free(base);
}

/* The TLS greeting is one TLS handshake record (0x16, version 3.x) holding a ClientHello (type 1). */
Test(listenprobe, tls_hello_is_a_client_hello_record)
{
	unsigned char b[GW_LISTENPROBE_MAX_HELLO];
	size_t n = 0;

	cr_assert_eq(gw_listenprobe_tls_hello(b, sizeof b, &n), 0);
	cr_assert_gt(n, 5 + 4);
	cr_expect_eq(b[0], 0x16);
	cr_expect_eq(b[1], 3);
	cr_expect_eq((size_t)((b[3] << 8) | b[4]) + 5, n, "the record is the whole greeting");
	cr_expect_eq(b[5], 1);
	cr_expect_eq(gw_listenprobe_tls_hello(b, 8, &n), -1, "too small a buffer is refused");
}
