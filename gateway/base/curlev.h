/*
 * curlev: one libcurl multi handle driven by a libevent loop (libcurl's multi_socket API): the
 * sockets curl wants watched become persistent events, its timeout one timer, and after curl
 * acted on either the owner's check callback runs, where it reads curl_multi_info_read() for the
 * transfers that ended. The upstream engine, the webhook sender and the OTLP exporter each own
 * one. The timer is armed from curl's callback and fires from the loop: socket_action is never
 * called from inside a curl callback.
 *
 *   struct gw_curlev *cv = gw_curlev_new(base, my_check, me);
 *   curl_multi_add_handle(gw_curlev_multi(cv), easy);   ... my_check(me) reads what ended
 *   gw_curlev_free(cv);                                  after removing the owner's handles
 *
 * Loop thread only.
 */
#ifndef A3D_GATEWAY_CURLEV_H
#define A3D_GATEWAY_CURLEV_H

#include <curl/curl.h>

struct event_base;
struct gw_curlev;

/* After curl acted on a socket or the timer: the owner collects the transfers that ended. */
typedef void (*gw_curlev_check_fn)(void *arg);

/* NULL when out of memory. */
struct gw_curlev *gw_curlev_new(struct event_base *base, gw_curlev_check_fn check, void *arg);
CURLM *gw_curlev_multi(const struct gw_curlev *cv);
/* The multi handle's cleanup (its sockets' events go with it) and the timer; NULL is a no-op. */
void gw_curlev_free(struct gw_curlev *cv);

#endif
