/*
 * sim_control: the test controls under /_sim/ (not part of the real API, no auth): request
 * stats, injected faults, session revocation, a job listing across accounts and the log of
 * the last requests (sim_reqlog).
 *
 * Faults: at most SIM_MAX_FAULTS; each matches one route name ("GET /status/{rids}") or "*"
 * (every API route, not storage), hits with probability rate (PRNG seeded by --seed) until its
 * count runs out, and adds latency, answers a status (with Retry-After), resets the connection
 * or answers 200 with a non-JSON body.
 */
#ifndef A3D_SIM_CONTROL_H
#define A3D_SIM_CONTROL_H

#include "sim.h"

struct sim_req;
struct sim_resp;

/* 1 and a copy in *out when a fault hits this request of route name, else 0. */
int sim_control_fault_pick(struct sim *s, const char *route_name, struct sim_fault *out);

void sim_control_h_stats(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_stats_reset(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_faults_get(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_faults_add(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_faults_clear(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_revoke(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_jobs(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
/* GET /_sim/requests?limit=N (1..SIM_REQLOG_MAX, default all kept); DELETE clears. */
void sim_control_h_requests(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_control_h_requests_clear(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

#endif
