/*
 * connguard: per-connection reset accounting and socket shutdown for the gRPC listener.
 * See connguard.h.
 */
#include "gateway/base/connguard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/base/clock.h"
#include "gateway/base/hex.h"
#include "gateway/base/log.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"

struct connguard_slot {
	char peer[GW_CONNGUARD_MAX_PEER];	/* "" when free */
	struct gw_connguard_window w;
};

struct connguard_conn {
	struct sockaddr_storage peer;	/* ss_family 0 when free */
	struct gw_connguard_intake in;
};

enum connguard_mode {
	CONNGUARD_RELIEVE,	/* sample every connection, close those with a backlog */
	CONNGUARD_SHED,		/* sample every connection, close the heavy senders */
};

struct connguard_closed {
	struct sockaddr_storage peer;
	int64_t at_ms;
};

struct gw_connguard {
	int port;
	/* Closed lately, a ring: written by the loop and the stream guard's thread (closed_mu);
	 * last_close_ms is read without it (atomically) before every call's lookup. */
	pthread_mutex_t closed_mu;
	struct connguard_closed closed[GW_CONNGUARD_CLOSED_RING];
	size_t closed_next;
	int64_t last_close_ms;
	uint64_t dropped;			/* queued calls of closed connections dropped */
	uint32_t max_resets, backlog;
	struct connguard_slot slots[GW_CONNGUARD_MAX_PEERS];
	struct connguard_conn conns[GW_CONNGUARD_MAX_PEERS];	/* intake samples, direct-mapped */
	int64_t scan_window_ms;
	unsigned scans_in_window;
	struct gw_lograte log;
	uint64_t closed_resets, closed_backlog, closed_shed;	/* connections shut down, by reason */
	uint64_t evicted;			/* intake samples replaced by another connection's */
	uint64_t untracked;			/* resets of a connection without a slot */
	uint64_t scans_skipped;			/* scans refused by the per-second budget */
	uint64_t not_found;			/* a connection to close whose socket was gone */
};

int gw_connguard_count(struct gw_connguard_window *w, uint32_t limit, int64_t now_ms)
{
	if (!limit)
		return 0;
	if (w->closed_ms) {
		if (now_ms - w->closed_ms < GW_CONNGUARD_CLOSED_KEEP_MS)
			return 0;
		w->closed_ms = 0;
		w->start_ms = 0;
	}
	if (!w->start_ms || now_ms - w->start_ms >= GW_CONNGUARD_WINDOW_MS) {
		w->start_ms = now_ms ? now_ms : 1;
		w->resets = 0;
	}
	if (++w->resets < limit)
		return 0;
	w->closed_ms = now_ms ? now_ms : 1;
	return 1;
}

void gw_connguard_intake_note(struct gw_connguard_intake *s, uint64_t bytes, int64_t now_ms)
{
	if (!now_ms)
		now_ms = 1;
	if (!s->new_ms || bytes < s->new_bytes) {
		s->old_bytes = s->new_bytes = bytes;
		s->old_ms = s->new_ms = now_ms;
	} else if (now_ms - s->new_ms >= GW_CONNGUARD_SAMPLE_MS) {
		s->old_bytes = s->new_bytes;
		s->old_ms = s->new_ms;
		s->new_bytes = bytes;
		s->new_ms = now_ms;
	}
}

int gw_connguard_intake_heavy(const struct gw_connguard_intake *s, uint64_t bytes, int64_t now_ms)
{
	uint64_t base;
	int64_t since;

	if (!s->new_ms || bytes < s->old_bytes)
		return bytes >= GW_CONNGUARD_SHED_NEW;
	/* The newer sample when it spans enough time to tell a rate, else the older one. */
	if (now_ms - s->new_ms >= GW_CONNGUARD_SAMPLE_MS / 2 && bytes >= s->new_bytes) {
		base = s->new_bytes;
		since = now_ms - s->new_ms;
	} else {
		base = s->old_bytes;
		since = now_ms - s->old_ms;
	}
	if (since <= 0)
		return bytes >= GW_CONNGUARD_SHED_NEW;
	return (bytes - base) * 1000 / (uint64_t)since >= GW_CONNGUARD_SHED_RATE;
}

/* %XX -> byte, into out (bounded by outlen); -1 on a bad escape or too long. */
static int connguard_unescape(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in; in++) {
		int hi, lo;

		if (n + 1 >= outlen)
			return -1;
		if (*in == '%') {
			hi = gw_hex_digit(in[1]);
			lo = hi < 0 ? -1 : gw_hex_digit(in[2]);
			if (lo < 0)
				return -1;
			out[n++] = (char)(hi * 16 + lo);
			in += 2;
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
	return 0;
}

static int connguard_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer) as plain IPv4. */
static void connguard_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&s6, ss, sizeof s6);
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return;
	memset(ss, 0, sizeof *ss);
	s4->sin_family = AF_INET;
	s4->sin_port = s6.sin6_port;
	memcpy(&s4->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
}

int gw_connguard_parse_peer(const char *peer, struct sockaddr_storage *ss)
{
	char buf[GW_CONNGUARD_MAX_PEER];
	char *host, *colon, *close;
	uint16_t port;

	memset(ss, 0, sizeof *ss);
	if (!peer || connguard_unescape(peer, buf, sizeof buf) != 0)
		return -1;
	if (strncmp(buf, "ipv4:", 5) == 0) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		host = buf + 5;
		colon = strrchr(host, ':');
		if (!colon)
			return -1;
		*colon = '\0';
		if (connguard_port(colon + 1, &port) != 0 || inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return 0;
	}
	if (strncmp(buf, "ipv6:[", 6) == 0) {
		struct sockaddr_in6 s6;

		host = buf + 6;
		close = strchr(host, ']');
		if (!close || close[1] != ':')
			return -1;
		*close = '\0';
		memset(&s6, 0, sizeof s6);
		if (connguard_port(close + 2, &port) != 0 || strchr(host, '%') ||
		    inet_pton(AF_INET6, host, &s6.sin6_addr) != 1)
			return -1;
		s6.sin6_family = AF_INET6;
		s6.sin6_port = htons(port);
		memcpy(ss, &s6, sizeof s6);
		connguard_unmap(ss);
		return 0;
	}
	return -1;
}

static int connguard_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
	}
	return 0;
}

/* fd is a connection accepted on the gRPC port: 0 with its peer in *peer, else -1. */
static int connguard_conn_of(int fd, int port, struct sockaddr_storage *peer)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	int lport;

	if (getsockname(fd, (struct sockaddr *)&local, &len) != 0)
		return -1;
	if (local.ss_family == AF_INET)
		lport = ntohs(((struct sockaddr_in *)&local)->sin_port);
	else if (local.ss_family == AF_INET6)
		lport = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
	else
		return -1;
	if (lport != port)
		return -1;
	len = sizeof *peer;
	if (getpeername(fd, (struct sockaddr *)peer, &len) != 0)
		return -1;	/* the listening socket itself, or a connection already gone */
	connguard_unmap(peer);
	return 0;
}

/* One scan a budget allows: GW_CONNGUARD_SCANS_PER_S a second. */
static int connguard_scan_allowed(struct gw_connguard *g, int64_t now_ms)
{
	if (now_ms - g->scan_window_ms >= 1000) {
		g->scan_window_ms = now_ms;
		g->scans_in_window = 0;
	}
	if (g->scans_in_window >= GW_CONNGUARD_SCANS_PER_S) {
		g->scans_skipped++;
		return 0;
	}
	g->scans_in_window++;
	return 1;
}

static void connguard_log_close(struct gw_connguard *g, const char *reason, const char *peer,
				long long value)
{
	uint64_t held = 0;

	if (!gw_lograte_allow(&g->log, gw_clock_now_us() / 1000, GW_CONNGUARD_LOG_PER_S, &held))
		return;
	gw_log(GW_LOG_WARN, "grpc_conn", GW_LS("msg", "abusive gRPC connection closed"),
	       GW_LS("reason", reason), GW_LS("peer", peer), GW_LN("value", value),
	       GW_LN("suppressed", (long long)held), GW_LEND);
}

static void connguard_peer_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof host);
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/*
 * What the peer had sent before the shutdown is still queued in the kernel, and gRPC core would
 * parse all of it (under rapid reset: thousands of streams, each a call, per connection). Read it
 * away here, bounded; after SHUT_RD nothing new is queued (Linux answers later data with a reset).
 * gRPC core's I/O thread may read some of it at the same time: it then sees a cut frame and
 * fails the transport, which is what is wanted anyway.
 */
static void connguard_discard(int fd)
{
	char buf[GW_CONNGUARD_DISCARD_CHUNK];
	size_t total = 0;
	ssize_t n;

	while (total < GW_CONNGUARD_DISCARD_MAX &&
	       (n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		total += (size_t)n;
}

/* Bytes the kernel has received on a TCP socket (TCP_INFO), 0 when it cannot tell. */
static uint64_t connguard_received(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return 0;
	return ti.tcpi_bytes_received;
}

/* The intake sample slot of a connection (a newcomer replaces the slot's last holder, counted). */
static struct connguard_conn *connguard_conn_slot(struct gw_connguard *g,
						  const struct sockaddr_storage *peer)
{
	uint32_t h = 2166136261u;
	const uint8_t *p;
	size_t n;
	struct connguard_conn *c;

	if (peer->ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
		n = 4;
		h = (h ^ ((const struct sockaddr_in *)peer)->sin_port) * 16777619u;
	} else {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)peer)->sin6_addr;
		n = 16;
		h = (h ^ ((const struct sockaddr_in6 *)peer)->sin6_port) * 16777619u;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	c = &g->conns[h % GW_CONNGUARD_MAX_PEERS];
	if (!connguard_same(&c->peer, peer)) {
		if (c->peer.ss_family)
			g->evicted++;
		memset(c, 0, sizeof *c);
		c->peer = *peer;
	}
	return c;
}

/* A /proc/self/fd entry's descriptor, -1 for ".", "..", and the directory's own. */
static int connguard_fd_of(const char *name, int dfd)
{
	char *end;
	long v = strtol(name, &end, 10);

	if (end == name || *end || v < 0 || v > INT_MAX || (int)v == dfd)
		return -1;
	return (int)v;
}

/* fd is a socket accepted on the gRPC port: 0 with its peer in *peer, else -1. */
static int connguard_socket_conn(int fd, int port, struct sockaddr_storage *peer)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return -1;
	return connguard_conn_of(fd, port, peer);
}

/* Shuts fd, a connection from peer, down and reads away what it had sent. Checked right before
 * acting: still the same connection (gRPC core's threads may have closed it, and the number may
 * name another socket by now). 1 when shut. */
static int connguard_shut(int fd, int port, const struct sockaddr_storage *peer)
{
	struct sockaddr_storage again;

	if (connguard_conn_of(fd, port, &again) != 0 || !connguard_same(peer, &again))
		return 0;
	if (shutdown(fd, SHUT_RDWR) != 0)
		return 0;
	connguard_discard(fd);
	return 1;
}

int gw_connguard_shutdown_peer(int port, const struct sockaddr_storage *peer)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t seen = 0;
	int dfd, shut = 0;

	if (!d)
		return 0;
	dfd = dirfd(d);
	while (!shut && (e = readdir(d)) != NULL && seen < GW_CONNGUARD_MAX_FDS) {
		struct sockaddr_storage got;
		int fd = connguard_fd_of(e->d_name, dfd);

		if (fd < 0)
			continue;
		seen++;
		if (connguard_socket_conn(fd, port, &got) == 0 && connguard_same(&got, peer))
			shut = connguard_shut(fd, port, peer);
	}
	closedir(d);
	return shut;
}

/*
 * Walks /proc/self/fd for the gRPC connections, samples every one's intake and shuts down those
 * holding at least g->backlog unread bytes (RELIEVE) or sending heavily (SHED). Returns how many
 * it shut. (One peer's connection: gw_connguard_shutdown_peer.)
 */
static size_t connguard_scan(struct gw_connguard *g, enum connguard_mode mode)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t seen = 0, shut = 0;
	int64_t now = gw_clock_now_us() / 1000;
	int dfd;

	if (!d)
		return 0;
	dfd = dirfd(d);
	while ((e = readdir(d)) != NULL && seen < GW_CONNGUARD_MAX_FDS) {
		struct sockaddr_storage peer;
		char text[INET6_ADDRSTRLEN + 8];
		const char *reason;
		int fd, unread = 0, close_it;
		long long value;
		uint64_t bytes;
		struct connguard_conn *conn;

		fd = connguard_fd_of(e->d_name, dfd);
		if (fd < 0)
			continue;
		seen++;
		if (connguard_socket_conn(fd, g->port, &peer) != 0)
			continue;
		bytes = connguard_received(fd);
		conn = connguard_conn_slot(g, &peer);
		if (mode == CONNGUARD_SHED) {
			close_it = gw_connguard_intake_heavy(&conn->in, bytes, now);
			reason = "shed";
			value = (long long)bytes;
		} else {
			close_it = g->backlog && ioctl(fd, FIONREAD, &unread) == 0 &&
				   (uint32_t)unread >= g->backlog;
			reason = "backlog";
			value = unread;
		}
		gw_connguard_intake_note(&conn->in, bytes, now);
		if (!close_it || !connguard_shut(fd, g->port, &peer))
			continue;
		shut++;
		gw_connguard_note_closed(g, &peer);
		connguard_peer_text(&peer, text, sizeof text);
		connguard_log_close(g, reason, text, value);
		if (mode == CONNGUARD_SHED)
			g->closed_shed++;
		else
			g->closed_backlog++;
	}
	closedir(d);
	return shut;
}

struct gw_connguard *gw_connguard_new(int port, uint32_t max_resets_per_s, uint32_t backlog_bytes)
{
	struct gw_connguard *g = calloc(1, sizeof *g);

	if (!g)
		return NULL;
	pthread_mutex_init(&g->closed_mu, NULL);
	g->port = port;
	g->max_resets = max_resets_per_s;
	g->backlog = backlog_bytes;
	return g;
}

/* FNV-1a: spreads "ipv4:127.0.0.1:PORT" strings that differ in a few digits. */
static size_t connguard_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % GW_CONNGUARD_MAX_PEERS;
}

void gw_connguard_call_ended(struct gw_connguard *g, const char *peer, int reset)
{
	struct connguard_slot *s;
	struct sockaddr_storage ss;
	char text[INET6_ADDRSTRLEN + 8];
	int64_t now;

	if (!g || !reset || !g->max_resets || !peer || strlen(peer) >= GW_CONNGUARD_MAX_PEER)
		return;
	now = gw_clock_now_us() / 1000;
	s = &g->slots[connguard_hash(peer)];
	if (strcmp(s->peer, peer) != 0) {
		/* Another connection holds the slot: it gives way once its window is over (a closed
		 * one at once), so a flood of new connections cannot pin the table. */
		if (s->peer[0] && !s->w.closed_ms && now - s->w.start_ms < GW_CONNGUARD_WINDOW_MS) {
			g->untracked++;
			return;
		}
		snprintf(s->peer, sizeof s->peer, "%s", peer);
		memset(&s->w, 0, sizeof s->w);
	}
	if (!gw_connguard_count(&s->w, g->max_resets, now))
		return;
	if (gw_connguard_parse_peer(peer, &ss) != 0) {
		g->untracked++;
		return;	/* not an IP peer: nothing to close (and closed_ms stops counting it) */
	}
	if (!connguard_scan_allowed(g, now)) {
		/* Over the budget: the connection's next reset tries again. */
		s->w.closed_ms = 0;
		s->w.resets = g->max_resets - 1;
		return;
	}
	if (!gw_connguard_shutdown_peer(g->port, &ss)) {
		g->not_found++;	/* gone already (closed by gRPC core or an earlier scan) */
		return;
	}
	g->closed_resets++;
	gw_connguard_note_closed(g, &ss);
	connguard_peer_text(&ss, text, sizeof text);
	connguard_log_close(g, "resets", text, g->max_resets);
}

void gw_connguard_note_closed(struct gw_connguard *g, const struct sockaddr_storage *peer)
{
	int64_t now = gw_clock_now_us() / 1000;

	pthread_mutex_lock(&g->closed_mu);
	g->closed[g->closed_next].peer = *peer;
	g->closed[g->closed_next].at_ms = now;
	g->closed_next = (g->closed_next + 1) % GW_CONNGUARD_CLOSED_RING;
	__atomic_store_n(&g->last_close_ms, now, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g->closed_mu);
}

static int64_t connguard_last_close(const struct gw_connguard *g)
{
	return __atomic_load_n(&g->last_close_ms, __ATOMIC_ACQUIRE);
}

int gw_connguard_closed_lately(const struct gw_connguard *g)
{
	int64_t last = g ? connguard_last_close(g) : 0;

	return last && gw_clock_now_us() / 1000 - last <= GW_CONNGUARD_CLOSED_KEEP_MS;
}

int gw_connguard_abuse_lately(const struct gw_connguard *g)
{
	int64_t last = g ? connguard_last_close(g) : 0;

	return last && gw_clock_now_us() / 1000 - last <= GW_CONNGUARD_ABUSE_QUIET_MS;
}

int gw_connguard_closed_peer(struct gw_connguard *g, const char *peer)
{
	struct sockaddr_storage ss;
	int64_t now, last = g ? connguard_last_close(g) : 0;
	int found = 0;

	if (!last)
		return 0;
	now = gw_clock_now_us() / 1000;
	if (now - last > GW_CONNGUARD_CLOSED_KEEP_MS || gw_connguard_parse_peer(peer, &ss) != 0)
		return 0;
	pthread_mutex_lock(&g->closed_mu);
	for (size_t i = 0; i < GW_CONNGUARD_CLOSED_RING && !found; i++)
		found = g->closed[i].at_ms && now - g->closed[i].at_ms <= GW_CONNGUARD_CLOSED_KEEP_MS &&
			connguard_same(&g->closed[i].peer, &ss);
	pthread_mutex_unlock(&g->closed_mu);
	if (found)
		g->dropped++;
	return found;
}

size_t gw_connguard_relieve(struct gw_connguard *g)
{
	if (!g || !connguard_scan_allowed(g, gw_clock_now_us() / 1000))
		return 0;
	return connguard_scan(g, CONNGUARD_RELIEVE);
}

size_t gw_connguard_shed(struct gw_connguard *g)
{
	return g ? connguard_scan(g, CONNGUARD_SHED) : 0;
}

void gw_connguard_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_connguard *g = arg;

	if (!g)
		return;
	gw_metrics_family(o, "grpc_connections_closed_total", "counter",
			  "gRPC connections shut down by the gateway: resets (grpc.max_resets_per_s), "
			  "backlog (unread bytes under memory pressure, grpc.shed_backlog_kib), "
			  "shed (heavy senders at the memory guard's shed).");
	gw_metrics_value(o, "grpc_connections_closed_total", "reason=\"resets\"", g->closed_resets);
	gw_metrics_value(o, "grpc_connections_closed_total", "reason=\"backlog\"", g->closed_backlog);
	gw_metrics_value(o, "grpc_connections_closed_total", "reason=\"shed\"", g->closed_shed);
	gw_metrics_one(o, "grpc_connguard_intake_evicted_total", "counter",
		       "Connection intake samples replaced by another connection's (table full).",
		       g->evicted);
	gw_metrics_one(o, "grpc_connguard_untracked_total", "counter",
		       "Resets not counted: the connection table was full, or the peer is not an IP address.", g->untracked);
	gw_metrics_one(o, "grpc_connguard_scans_skipped_total", "counter",
		       "Descriptor scans refused by the per-second budget.", g->scans_skipped);
	gw_metrics_one(o, "grpc_connguard_not_found_total", "counter",
		       "Connections over the reset limit whose socket was already gone.", g->not_found);
	gw_metrics_one(o, "grpc_connguard_calls_dropped_total", "counter",
		       "Calls gRPC core had queued for a connection closed here, dropped unanswered.",
		       g->dropped);
}

void gw_connguard_free(struct gw_connguard *g)
{
	if (g)
		pthread_mutex_destroy(&g->closed_mu);
	free(g);
}
