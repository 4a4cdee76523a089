/* sim: the server struct's life cycle, clocks and housekeeping. */
#include "sim.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sim_auth.h"
#include "sim_http.h"
#include "sim_jobs.h"
#include "sim_models.h"
#include "sim_reqlog.h"
#include "sim_storage.h"
#include "sim_webhooks.h"

#define SIM_CRON_MS 50		/* job completion granularity */

static const char *const sim_reject_names[SIM_REJ_COUNT] = {
	"connections", "header_size", "body_size", "upload_size", "sessions", "jobs", "models",
	"endpoints", "deliveries", "uploads", "faults", "auth", "signature", "params", "credits",
};

const char *sim_reject_name(enum sim_reject r)
{
	return r < SIM_REJ_COUNT ? sim_reject_names[r] : "unknown";
}

double sim_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sim_now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sim_cron_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;

	sim_jobs_update(s, sim_now_mono());
	sim_auth_expire(s, sim_now_wall());
}

static void sim_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sim *s = arg;

	event_base_loopbreak(s->base);
}

int sim_init(struct sim *s)
{
	struct timeval tv = { 0, SIM_CRON_MS * 1000 };

	s->rng = s->cfg.seed;
	if (RAND_bytes(s->url_key, sizeof(s->url_key)) != 1 ||
	    RAND_bytes((unsigned char *)&s->id_rng, sizeof(s->id_rng)) != 1)
		return -1;
	if ((s->base = event_base_new()) == NULL || (s->reqlog = sim_reqlog_new()) == NULL)
		return -1;
	if (sim_storage_init(s) != 0 || sim_models_init(s) != 0 || sim_http_start(s) != 0)
		return -1;
	s->cron = event_new(s->base, -1, EV_PERSIST, sim_cron_cb, s);
	s->sig_term = evsignal_new(s->base, SIGTERM, sim_signal_cb, s);
	s->sig_int = evsignal_new(s->base, SIGINT, sim_signal_cb, s);
	if (s->cron == NULL || s->sig_term == NULL || s->sig_int == NULL ||
	    event_add(s->cron, &tv) != 0 || event_add(s->sig_term, NULL) != 0 ||
	    event_add(s->sig_int, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

void sim_free(struct sim *s)
{
	sim_http_free(s);
	sim_webhooks_free(s);
	sim_jobs_free(s);
	sim_models_free(s);
	sim_storage_free(s);
	sim_auth_free(s);
	if (s->cron != NULL)
		event_free(s->cron);
	if (s->sig_term != NULL)
		event_free(s->sig_term);
	if (s->sig_int != NULL)
		event_free(s->sig_int);
	if (s->base != NULL)
		event_base_free(s->base);
	sim_reqlog_free(s->reqlog);
	s->reqlog = NULL;
	OPENSSL_cleanse(s->url_key, sizeof(s->url_key));
	s->base = NULL;
	s->cron = s->sig_term = s->sig_int = NULL;
}
