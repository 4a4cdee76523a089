/*
 * listenprobe: is a listener of this process still accepting connections? Asked over loopback.
 *
 * gRPC core 1.51 stops accepting for good after one accept4() fails with EMFILE
 * (grpc/grpc#20418), and nothing in its API says so: the port stays bound, the kernel still
 * completes handshakes into the backlog, existing connections still work. Only a new connection
 * that waits for the server's first bytes tells. So every interval_ms the probe connects to the
 * listener (non-blocking, on the loop), sends a greeting (the HTTP/2 client preface and an empty
 * SETTINGS frame; for a TLS listener a TLS ClientHello, gw_listenprobe_tls_hello, so that gRPC
 * logs no failed handshake) and waits up to timeout_ms for the server to answer anything (its
 * SETTINGS, its ServerHello): an answer or an orderly close means the application took the
 * connection; silence, a refusal or a reset means it did not. failures probes failing in a row
 * make the listener dead (gw_listenprobe_alive() 0: /healthz and /readyz answer 503, so the
 * kubelet restarts the pod); one success makes it alive again.
 *
 * The probe never blocks the loop: every step is an event with a timeout. While skip(arg)
 * returns 1 (draining: the listener is closed on purpose) no probe runs and the state is kept.
 * A probe whose socket() fails (EMFILE) counts as failed: the listener is as starved as we are.
 */
#ifndef A3D_GATEWAY_LISTENPROBE_H
#define A3D_GATEWAY_LISTENPROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_LISTENPROBE_MAX_HELLO 2048	/* bytes of a greeting */

struct event_base;
struct evbuffer;
struct gw_listenprobe;

/* Why a probe failed; GW_PROBE_OK for a success. Indexes the counters. */
enum gw_probe_result {
	GW_PROBE_OK, GW_PROBE_SOCKET, GW_PROBE_REFUSED, GW_PROBE_CONNECT, GW_PROBE_RESET,
	GW_PROBE_TIMEOUT, GW_PROBE_NRESULTS
};

struct gw_listenprobe_stats {
	uint64_t results[GW_PROBE_NRESULTS];	/* probes by outcome */
	unsigned failing;			/* failures in a row now */
	int alive;				/* 1 until failures probes fail in a row */
};

/*
 * Probes addr (copied; the listener's address as a client reaches it, e.g. 127.0.0.1:port) every
 * interval_ms (> 0), each waiting at most timeout_ms (< interval_ms); failures (>= 1) in a row
 * make it dead. hello (copied, at most GW_LISTENPROBE_MAX_HELLO bytes) is what each probe sends;
 * NULL: the HTTP/2 preface. name ("grpc") is for the log. skip may be NULL. NULL on bad arguments
 * or out of memory.
 */
struct gw_listenprobe *gw_listenprobe_new(struct event_base *base, const char *name,
					  const struct sockaddr *addr, socklen_t addrlen,
					  const void *hello, size_t hello_len,
					  long interval_ms, long timeout_ms, unsigned failures,
					  int (*skip)(void *arg), void *skip_arg);
/* A TLS ClientHello (ALPN h2, no SNI) into out: 0 and *len, or -1. Made once with OpenSSL's
 * memory BIOs; the probe never completes the handshake (it hangs up at the server's answer). */
int gw_listenprobe_tls_hello(unsigned char *out, size_t cap, size_t *len);
/* 1 while the listener is taken to accept (also before the first probe), 0 once dead. NULL: 1. */
int gw_listenprobe_alive(const struct gw_listenprobe *p);
void gw_listenprobe_stats(const struct gw_listenprobe *p, struct gw_listenprobe_stats *out);
/* animate3d_gateway_<name>_listener_alive and _probes_total{result}: a metrics renderer. */
struct gw_metrics_out;
void gw_listenprobe_render_metrics(void *p, struct gw_metrics_out *o);
void gw_listenprobe_free(struct gw_listenprobe *p);	/* NULL is fine */

/*
 * Where to probe a listener bound to "host:port" (config syntax) on port: the wildcard
 * addresses (0.0.0.0, [::], ::) become loopback, an IP literal is used as is, anything else
 * (a host name) becomes 127.0.0.1 (no DNS on the loop). 0, or -1 for an unusable host. Pure.
 */
int gw_listenprobe_addr(const char *listen, int port, struct sockaddr_storage *out, socklen_t *len);

#endif
