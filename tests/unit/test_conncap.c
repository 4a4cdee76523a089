/* Unit tests for gateway/base/conncap.c on a real evhttp bound to 127.0.0.1: the cap is never
 * passed by more than the connection being accepted, every close is uncounted (the count returns
 * to 0), quiet connections give way at the cap, the deadline closes connections that send no
 * complete request, and a served request restarts a connection's deadline. Every loop run is
 * bounded in passes and time. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "gateway/base/conncap.h"

#define MAX_CLIENTS 32

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	struct gw_conncap *cap;
	unsigned short port;
	int fds[MAX_CLIENTS];
	int nfds;
	size_t worst_open;	/* most connections counted at once, seen between loop passes */
	struct evhttp_request *held;	/* a /hold request, answered later by the test */
};

static void on_request(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	struct evbuffer *b = evbuffer_new();

	gw_conncap_request(f->cap, req);
	if (strcmp(evhttp_request_get_uri(req), "/hold") == 0) {
		/* An asynchronous handler's request: answered by the test, later. */
		gw_conncap_busy(f->cap, req, 1);
		f->held = req;
		evbuffer_free(b);
		return;
	}
	evbuffer_add_printf(b, "ok\n");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void fixture_up(struct fixture *f, size_t max, int deadline_s)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	char err[256];

	memset(f, 0, sizeof *f);
	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	cr_assert(f->base && f->http);
	evhttp_set_gencb(f->http, on_request, f);
	bound = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	cr_assert_not_null(bound);
	cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	f->cap = gw_conncap_new(f->base, f->http, evhttp_bound_socket_get_listener(bound), max, deadline_s,
				err, sizeof err);
	cr_assert_not_null(f->cap, "%s", err);
}

static void fixture_down(struct fixture *f)
{
	for (int i = 0; i < f->nfds; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	gw_conncap_detach(f->cap);
	evhttp_free(f->http);
	gw_conncap_free(f->cap);
	event_base_free(f->base);
}

static int client(struct fixture *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(f->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	connect(fd, (struct sockaddr *)&sin, sizeof sin);	/* EINPROGRESS: the loop accepts it */
	cr_assert_lt(f->nfds, MAX_CLIENTS);
	f->fds[f->nfds++] = fd;
	return fd;
}

static struct gw_conncap_stats stats(struct fixture *f)
{
	struct gw_conncap_stats s;

	gw_conncap_stats(f->cap, &s);
	return s;
}

/* Runs the loop for about ms milliseconds in short passes, tracking the most connections counted. */
static void spin(struct fixture *f, int ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
		if (stats(f).open > f->worst_open)
			f->worst_open = stats(f).open;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			return;
	}
}

Test(conncap, cap_holds_and_every_close_is_uncounted)
{
	struct fixture f;

	fixture_up(&f, 4, 30);
	for (int i = 0; i < 10; i++)
		client(&f);
	spin(&f, 300);
	cr_expect_leq(f.worst_open, 4, "%zu open at once", f.worst_open);
	cr_expect_eq(stats(&f).open, 4);
	cr_expect_eq(stats(&f).paused, 1, "fresh connections: nothing to evict, so the listener waits");
	cr_expect_geq(stats(&f).paused_cap, 1);
	for (int i = 0; i < f.nfds; i++) {
		close(f.fds[i]);
		f.fds[i] = -1;
	}
	spin(&f, 300);
	cr_expect_eq(stats(&f).open, 0, "%zu still counted after every client closed", stats(&f).open);
	cr_expect_eq(stats(&f).paused, 0);
	cr_expect_eq(stats(&f).accepted, stats(&f).closed);
	fixture_down(&f);
}

Test(conncap, quiet_connections_give_way_at_the_cap)
{
	struct fixture f;

	fixture_up(&f, 4, 30);
	for (int i = 0; i < 4; i++)
		client(&f);
	spin(&f, 100);
	cr_assert_eq(stats(&f).open, 4);
	spin(&f, GW_CONNCAP_EVICT_IDLE_MS + 200);	/* now they are quiet enough to evict */
	for (int i = 0; i < 3; i++)
		client(&f);
	spin(&f, 300);
	cr_expect_eq(stats(&f).open, 4);
	cr_expect_eq(stats(&f).evicted_cap, 3, "%llu evicted, %zu open, %llu accepted, paused %d", (unsigned long long)stats(&f).evicted_cap, stats(&f).open, (unsigned long long)stats(&f).accepted, stats(&f).paused);
	cr_expect_leq(f.worst_open, 5);	/* the cap + the newcomer, until the quietest is closed */
	fixture_down(&f);
}

Test(conncap, deadline_closes_silent_connections_and_a_request_restarts_it)
{
	static const char req[] = "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	struct fixture f;
	int silent, talker;
	char buf[512];

	fixture_up(&f, 8, 1);
	silent = client(&f);
	talker = client(&f);
	spin(&f, 100);
	cr_assert_eq(stats(&f).open, 2);
	/* The talker completes a request every 400 ms; the silent one never does. */
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(write(talker, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
		spin(&f, 400);
		while (read(talker, buf, sizeof buf) > 0)
			;
	}
	cr_expect_eq(stats(&f).evicted_deadline, 1, "%llu closed by the deadline",
		     (unsigned long long)stats(&f).evicted_deadline);
	cr_expect_eq(stats(&f).open, 1);
	cr_expect_eq(read(silent, buf, sizeof buf), 0, "the silent client sees the close");
	fixture_down(&f);
}

/* A request answered later (the REST facade's calls): its connection outlives the deadline and
 * the reply still goes out; once answered, the deadline applies again. Without gw_conncap_busy
 * the deadline freed the connection and the held request with it. */
Test(conncap, busy_connection_outlives_the_deadline_until_answered)
{
	static const char req[] = "GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	struct fixture f;
	struct evbuffer *b;
	char buf[512];
	ssize_t n;
	int fd;

	fixture_up(&f, 8, 1);
	fd = client(&f);
	spin(&f, 100);
	cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
	spin(&f, 2500);
	cr_assert_not_null(f.held);
	cr_expect_eq(stats(&f).evicted_deadline, 0);
	cr_expect_eq(stats(&f).open, 1);
	gw_conncap_busy(f.cap, f.held, 0);
	b = evbuffer_new();
	evbuffer_add_printf(b, "late\n");
	evhttp_send_reply(f.held, 200, "OK", b);
	evbuffer_free(b);
	spin(&f, 100);
	n = read(fd, buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_expect(strstr(buf, "200 OK") && strstr(buf, "late"), "%s", buf);
	spin(&f, 2500);		/* idle again: the deadline closes it */
	cr_expect_eq(stats(&f).evicted_deadline, 1);
	fixture_down(&f);
}

/* accept() failing with EMFILE (the process at its descriptor limit): the listener pauses and
 * backs off, the failure is counted on THIS cap, and nothing else is touched. The error callback
 * of an evconnlistener gets the listener's user data, which evhttp owns: before the fix it was
 * taken for the cap and the evhttp struct written over (a stuck loop or a crash after EMFILE). */
Test(conncap, accept_error_pauses_the_listener_and_counts_on_its_cap)
{
	struct fixture f;
	struct rlimit old, tight;
	int probe;

	fixture_up(&f, 8, 30);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	client(&f);
	client(&f);
	/* The lowest free descriptor becomes the limit: every number below it is in use, so the
	 * loop's accept() gets EMFILE (whatever else the process, or a sanitizer, holds open). */
	probe = dup(0);
	cr_assert_geq(probe, 0);
	close(probe);
	tight = old;
	tight.rlim_cur = (rlim_t)probe;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
	spin(&f, 100);
	cr_expect_geq(stats(&f).accept_errors, 1, "the EMFILE was counted on the cap");
	cr_expect_eq(stats(&f).paused, 1, "the listener backs off instead of spinning");
	cr_expect_eq(stats(&f).accepted, 0);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* Descriptors are back: after the pause the listener takes the waiting connections. */
	spin(&f, 1500);
	cr_expect_eq(stats(&f).paused, 0, "the pause ended");
	cr_expect_eq(stats(&f).accepted, 2, "both waiting connections accepted after the pause");
	fixture_down(&f);
}
