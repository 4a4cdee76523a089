/*
 * sim_webhooks: webhook endpoints per account and job.completed deliveries.
 *
 * A delivery is POST <endpoint url> with Content-Type: application/json,
 * X-DeepMotion-Signature: <client id> and {"eventType":"job.completed","data":{"taskId":rid,
 * "status":"success"|"failure"}}, sent with libevent's evhttp client (http:// only). A non-2xx
 * answer or a connection error is retried after SIM_WEBHOOKS_BACKOFF_MS * 2^(attempt-1), up to
 * SIM_WEBHOOKS_TRIES attempts; then it counts as failed. At most SIM_MAX_DELIVERIES in flight.
 */
#ifndef A3D_SIM_WEBHOOKS_H
#define A3D_SIM_WEBHOOKS_H

#include "sim.h"

struct sim_req;
struct sim_resp;

#define SIM_WEBHOOKS_TRIES 5
#define SIM_WEBHOOKS_BACKOFF_MS 500
#define SIM_WEBHOOKS_TIMEOUT_S 5
#define SIM_WEBHOOKS_MAX_EVENTS 4

/* Starts the deliveries of job j's completion to its account's endpoints. */
void sim_webhooks_job_done(struct sim *s, const struct sim_job *j);
void sim_webhooks_free(struct sim *s);	/* endpoints and deliveries in flight */

void sim_webhooks_h_create(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_webhooks_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_webhooks_h_get(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_webhooks_h_update(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_webhooks_h_delete(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

#endif
