/*
 * gateway/base/curlev.c: libcurl transfers driven by a libevent loop. A one-shot HTTP server on
 * 127.0.0.1 (an evconnlistener on the same loop) answers; the owner's check callback collects
 * how each transfer ended.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "gateway/base/curlev.h"

#define ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

struct run {
	struct event_base *base;
	struct gw_curlev *cv;
	int ended;
	CURLcode rc;
	long status;
	int checks;
};

static void srv_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev);	/* the answer is out: close */
}

static void srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		       void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
							 BEV_OPT_CLOSE_ON_FREE);

	(void)sa;
	(void)len;
	(void)arg;
	bufferevent_setcb(bev, NULL, srv_written, NULL, NULL);
	bufferevent_write(bev, ANSWER, strlen(ANSWER));
	bufferevent_enable(bev, EV_WRITE);
}

static void check(void *arg)
{
	struct run *r = arg;
	CURLMsg *m;
	int left;

	r->checks++;
	while ((m = curl_multi_info_read(gw_curlev_multi(r->cv), &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		r->ended++;
		r->rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
		event_base_loopbreak(r->base);
	}
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* A port nothing listens on: bind one, read its number, close it. */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

Test(curlev, transfers_end_through_the_check)
{
	static const struct {
		int listening;
		CURLcode rc;
		long status;
	} cases[] = {
		{ 1, CURLE_OK, 200 },
		{ 0, CURLE_COULDNT_CONNECT, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct run r = { 0 };
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t len = sizeof a;
		struct evconnlistener *l = NULL;
		struct timeval bound = { 10, 0 };
		char url[64];
		CURL *e;
		int port;

		r.base = event_base_new();
		cr_assert_not_null(r.base);
		r.cv = gw_curlev_new(r.base, check, &r);
		cr_assert_not_null(r.cv);
		if (cases[i].listening) {
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			l = evconnlistener_new_bind(r.base, srv_accept, NULL,
						    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
						    (struct sockaddr *)&a, sizeof a);
			cr_assert_not_null(l);
			cr_assert(getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&a, &len) == 0);
			port = ntohs(a.sin_port);
		} else {
			port = closed_port();
		}
		snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
		e = curl_easy_init();
		cr_assert_not_null(e);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
		cr_assert_eq(curl_multi_add_handle(gw_curlev_multi(r.cv), e), CURLM_OK);
		event_base_loopexit(r.base, &bound);	/* bounded if the check never breaks */
		event_base_dispatch(r.base);
		cr_expect_eq(r.ended, 1, "case %zu: transfers ended %d", i, r.ended);
		cr_expect_eq(r.rc, cases[i].rc, "case %zu: curl %d", i, (int)r.rc);
		cr_expect_eq(r.status, cases[i].status, "case %zu: HTTP %ld", i, r.status);
		cr_expect_gt(r.checks, 0, "case %zu", i);
		curl_multi_remove_handle(gw_curlev_multi(r.cv), e);
		curl_easy_cleanup(e);
		gw_curlev_free(r.cv);
		if (l)
			evconnlistener_free(l);
		event_base_free(r.base);
	}
}
