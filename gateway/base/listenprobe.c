/*
 * listenprobe: a non-blocking loopback connect + HTTP/2 preface, judged by the answer. See
 * listenprobe.h.
 */
#include "gateway/base/listenprobe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "gateway/base/log.h"
#include "gateway/base/metrics.h"

#define PROBE_NAME_MAX 16

/* The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 3.4). */
static const char probe_hello[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				  "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
#define PROBE_HELLO_LEN (sizeof probe_hello - 1)

static const char *const probe_result_names[GW_PROBE_NRESULTS] = {
	"ok", "socket", "refused", "connect", "reset", "timeout"
};

struct gw_listenprobe {
	struct event_base *base;
	char name[PROBE_NAME_MAX];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	long interval_ms, timeout_ms;
	unsigned failures;
	int (*skip)(void *);
	void *skip_arg;
	struct event *ev_tick;		/* every interval_ms */
	struct event *ev_io;		/* the probe in flight: connect, then the answer */
	int fd;				/* -1 when no probe is in flight */
	unsigned char hello[GW_LISTENPROBE_MAX_HELLO];	/* what each probe sends */
	size_t hello_len;
	int sent;			/* the preface is written: waiting for the answer */
	struct gw_listenprobe_stats st;
};

static void probe_close(struct gw_listenprobe *p)
{
	if (p->ev_io) {
		event_free(p->ev_io);
		p->ev_io = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	p->sent = 0;
}

static void probe_done(struct gw_listenprobe *p, enum gw_probe_result r, int err)
{
	probe_close(p);
	p->st.results[r]++;
	if (r == GW_PROBE_OK) {
		if (!p->st.alive)
			gw_log(GW_LOG_WARN, "listener_probe", GW_LS("listener", p->name),
			       GW_LS("msg", "listener accepts again"), GW_LEND);
		p->st.failing = 0;
		p->st.alive = 1;
		return;
	}
	p->st.failing++;
	if (p->st.alive && p->st.failing >= p->failures) {
		p->st.alive = 0;
		/* Once per transition: it does not come back in gRPC core 1.51, and the pod is about
		 * to be restarted by its liveness probe. */
		gw_log(GW_LOG_ERROR, "listener_probe", GW_LS("listener", p->name),
		       GW_LS("msg", "listener stopped accepting connections: /healthz now fails"),
		       GW_LS("last_failure", probe_result_names[r]),
		       GW_LS("error", err ? strerror(err) : "-"), GW_LN("failures", p->st.failing), GW_LEND);
	}
}

static void probe_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct gw_listenprobe *p = arg;
	char buf[64];
	ssize_t n;
	int err = 0;
	socklen_t len = sizeof err;
	struct timeval tv;

	tv.tv_sec = p->timeout_ms / 1000;
	tv.tv_usec = (p->timeout_ms % 1000) * 1000;
	if (!p->sent) {
		if (!(what & EV_WRITE)) {
			probe_done(p, GW_PROBE_TIMEOUT, 0);
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			probe_done(p, err == ECONNREFUSED ? GW_PROBE_REFUSED : GW_PROBE_CONNECT, err);
			return;
		}
		/* At most 2 KiB into an empty socket buffer: never short. */
		if (send(fd, p->hello, p->hello_len, MSG_NOSIGNAL) != (ssize_t)p->hello_len) {
			err = errno;
			probe_done(p, err == ECONNRESET ? GW_PROBE_RESET : GW_PROBE_CONNECT, err);
			return;
		}
		p->sent = 1;
		event_free(p->ev_io);
		p->ev_io = event_new(p->base, fd, EV_READ, probe_on_io, p);
		if (!p->ev_io || event_add(p->ev_io, &tv) != 0)
			probe_done(p, GW_PROBE_SOCKET, ENOMEM);
		return;
	}
	/* Read even on a timeout: a loop that was busy may see both at once, and bytes that did
	 * arrive are an answer. */
	n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n > 0 || n == 0) {
		probe_done(p, GW_PROBE_OK, 0);	/* bytes, or an orderly close: the server took it */
	} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		if (what & EV_TIMEOUT)
			probe_done(p, GW_PROBE_TIMEOUT, 0);
		else if (event_add(p->ev_io, &tv) != 0)	/* spurious wake: keep waiting */
			probe_done(p, GW_PROBE_SOCKET, ENOMEM);
	} else {
		err = errno;
		/* A reset without any byte: the kernel dropped it from a closed listener's backlog. */
		probe_done(p, err == ECONNRESET ? GW_PROBE_RESET : GW_PROBE_CONNECT, err);
	}
}

static void probe_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_listenprobe *p = arg;
	struct timeval tv;
	int s, err;

	(void)fd;
	(void)what;
	if (p->fd >= 0)
		return;		/* the previous one still runs (timeout < interval: only if the loop lagged) */
	if (p->skip && p->skip(p->skip_arg))
		return;
	s = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		probe_done(p, GW_PROBE_SOCKET, errno);
		return;
	}
	p->fd = s;
	if (connect(s, (const struct sockaddr *)&p->addr, p->addrlen) != 0 && errno != EINPROGRESS) {
		err = errno;
		probe_done(p, err == ECONNREFUSED ? GW_PROBE_REFUSED : GW_PROBE_CONNECT, err);
		return;
	}
	/* Connected at once or in progress: writable tells either way. */
	p->ev_io = event_new(p->base, s, EV_WRITE, probe_on_io, p);
	tv.tv_sec = p->timeout_ms / 1000;
	tv.tv_usec = (p->timeout_ms % 1000) * 1000;
	if (!p->ev_io || event_add(p->ev_io, &tv) != 0)
		probe_done(p, GW_PROBE_SOCKET, ENOMEM);
}

struct gw_listenprobe *gw_listenprobe_new(struct event_base *base, const char *name,
					  const struct sockaddr *addr, socklen_t addrlen,
					  const void *hello, size_t hello_len,
					  long interval_ms, long timeout_ms, unsigned failures,
					  int (*skip)(void *arg), void *skip_arg)
{
	struct gw_listenprobe *p;
	struct timeval tv;

	if (!hello) {
		hello = probe_hello;
		hello_len = PROBE_HELLO_LEN;
	}
	if (!base || !name || !addr || addrlen > sizeof(struct sockaddr_storage) || interval_ms <= 0 ||
	    timeout_ms <= 0 || timeout_ms >= interval_ms || failures == 0 || hello_len == 0 ||
	    hello_len > GW_LISTENPROBE_MAX_HELLO)
		return NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->base = base;
	snprintf(p->name, sizeof p->name, "%s", name);
	memcpy(&p->addr, addr, addrlen);
	p->addrlen = addrlen;
	p->interval_ms = interval_ms;
	p->timeout_ms = timeout_ms;
	p->failures = failures;
	p->skip = skip;
	p->skip_arg = skip_arg;
	p->fd = -1;
	memcpy(p->hello, hello, hello_len);
	p->hello_len = hello_len;
	p->st.alive = 1;
	p->ev_tick = event_new(base, -1, EV_PERSIST, probe_on_tick, p);
	tv.tv_sec = interval_ms / 1000;
	tv.tv_usec = (interval_ms % 1000) * 1000;
	if (!p->ev_tick || event_add(p->ev_tick, &tv) != 0) {
		gw_listenprobe_free(p);
		return NULL;
	}
	return p;
}

int gw_listenprobe_alive(const struct gw_listenprobe *p)
{
	return !p || p->st.alive;
}

void gw_listenprobe_stats(const struct gw_listenprobe *p, struct gw_listenprobe_stats *out)
{
	*out = p->st;
}

void gw_listenprobe_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_listenprobe *p = arg;
	char name[96], help[192], labels[48];

	snprintf(name, sizeof name, "%s_listener_alive", p->name);
	snprintf(help, sizeof help, "0 once the self-probe over loopback found the %s listener not "
		 "accepting (/healthz then fails).", p->name);
	gw_metrics_one(o, name, "gauge", help, p->st.alive ? 1 : 0);
	snprintf(name, sizeof name, "%s_listener_probes_total", p->name);
	snprintf(help, sizeof help, "Self-probes of the %s listener by outcome.", p->name);
	gw_metrics_family(o, name, "counter", help);
	for (int i = 0; i < GW_PROBE_NRESULTS; i++) {
		snprintf(labels, sizeof labels, "result=\"%s\"", probe_result_names[i]);
		gw_metrics_value(o, name, labels, p->st.results[i]);
	}
}

void gw_listenprobe_free(struct gw_listenprobe *p)
{
	if (!p)
		return;
	probe_close(p);
	if (p->ev_tick)
		event_free(p->ev_tick);
	free(p);
}

int gw_listenprobe_addr(const char *listen, int port, struct sockaddr_storage *out, socklen_t *len)
{
	char host[64];
	const char *colon, *h = listen;
	size_t hl;
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;

	if (!listen || port <= 0 || port > 65535)
		return -1;
	colon = strrchr(listen, ':');
	if (!colon)
		return -1;
	hl = (size_t)(colon - listen);
	if (listen[0] == '[') {		/* [v6]:port */
		if (hl < 2 || listen[hl - 1] != ']')
			return -1;
		h = listen + 1;
		hl -= 2;
	}
	if (hl >= sizeof host)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof *out);
	if (strcmp(host, "::") == 0 || inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		if (strcmp(host, "::") == 0)
			v6->sin6_addr = in6addr_loopback;
		*len = sizeof *v6;
		return 0;
	}
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &v4->sin_addr) != 1 || v4->sin_addr.s_addr == htonl(INADDR_ANY))
		v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);	/* wildcard, or a name: loopback */
	*len = sizeof *v4;
	return 0;
}

int gw_listenprobe_tls_hello(unsigned char *out, size_t cap, size_t *len)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n, rc = -1;

	if (!ssl || !rb || !wb || SSL_set_alpn_protos(ssl, alpn, sizeof alpn) != 0) {
		BIO_free(rb);
		BIO_free(wb);
		goto out;
	}
	SSL_set_bio(ssl, rb, wb);	/* ssl owns both now */
	SSL_set_connect_state(ssl);
	if (SSL_do_handshake(ssl) == 1)
		goto out;		/* cannot happen without a server: nothing to send */
	n = BIO_read(wb, out, (int)(cap > INT_MAX ? INT_MAX : cap));
	if (n > 0 && BIO_pending(wb) == 0) {
		*len = (size_t)n;
		rc = 0;
	}
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return rc;
}
