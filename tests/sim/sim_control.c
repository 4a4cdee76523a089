/* sim_control: /_sim/ stats, faults, session revocation, job listing. */
#include "sim_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sim_auth.h"
#include "sim_http.h"
#include "sim_ids.h"
#include "sim_jobs.h"
#include "sim_reqlog.h"

static const char *const sim_control_modes[] = { "status", "reset", "garbage" };

int sim_control_fault_pick(struct sim *s, const char *route_name, struct sim_fault *out)
{
	int r = sim_http_route_find(route_name);
	int storage = r >= 0 && (sim_http_route_flags(r) & SIM_RT_STORAGE);

	for (int i = 0; i < s->n_faults; i++) {
		struct sim_fault *f = &s->faults[i];

		if (f->count == 0)
			continue;
		if (strcmp(f->route, route_name) != 0 && !(strcmp(f->route, "*") == 0 && !storage))
			continue;
		if (f->rate < 1.0 && sim_ids_rand01(&s->rng) >= f->rate)
			continue;
		f->hits++;
		if (f->count > 0)
			f->count--;
		*out = *f;
		return 1;
	}
	return 0;
}

static json_t *sim_control_fault_json(const struct sim_fault *f)
{
	return json_pack("{s:s, s:i, s:f, s:i, s:i, s:i, s:s, s:i}", "route", f->route, "status",
			 f->status, "rate", f->rate, "latency_ms", f->latency_ms, "retry_after",
			 f->retry_after, "count", f->count, "mode", sim_control_modes[f->mode], "hits",
			 f->hits);
}

static json_t *sim_control_faults(struct sim *s)
{
	json_t *arr = json_array();

	for (int i = 0; i < s->n_faults; i++)
		json_array_append_new(arr, sim_control_fault_json(&s->faults[i]));
	return json_pack("{s:o}", "faults", arr);
}

void sim_control_h_faults_get(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	sim_resp_json(rs, 200, sim_control_faults(s));
}

void sim_control_h_faults_clear(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	s->n_faults = 0;
	sim_resp_json(rs, 200, sim_control_faults(s));
}

/* Integer field with a default; -1 and a 400 answer when present but not an integer. */
static int sim_control_int(json_t *body, const char *k, int def, int *out, struct sim_resp *rs)
{
	json_t *v = json_object_get(body, k);

	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > 3600000) {
		sim_resp_error(rs, 400, "400", "%s must be an integer", k);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

void sim_control_h_faults_add(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *body = sim_http_json_body(rq, rs), *rate;
	struct sim_fault f;
	const char *route, *mode;

	if (body == NULL)
		return;
	memset(&f, 0, sizeof(f));
	route = json_string_value(json_object_get(body, "route"));
	snprintf(f.route, sizeof(f.route), "%s", route ? route : "*");
	if (strcmp(f.route, "*") != 0 && sim_http_route_find(f.route) < 0) {
		sim_resp_error(rs, 400, "400", "Unknown route: %s (use \"METHOD /template\" or \"*\")", f.route);
		goto out;
	}
	if (sim_control_int(body, "status", 0, &f.status, rs) != 0 ||
	    sim_control_int(body, "latency_ms", 0, &f.latency_ms, rs) != 0 ||
	    sim_control_int(body, "retry_after", 0, &f.retry_after, rs) != 0 ||
	    sim_control_int(body, "count", -1, &f.count, rs) != 0)
		goto out;
	if ((f.status != 0 && (f.status < 100 || f.status > 599)) || f.latency_ms < 0 || f.retry_after < 0) {
		sim_resp_error(rs, 400, "400", "status must be 0 or 100..599; latency_ms, retry_after >= 0");
		goto out;
	}
	rate = json_object_get(body, "rate");
	f.rate = rate != NULL ? json_number_value(rate) : 1.0;
	if (rate != NULL && (!json_is_number(rate) || f.rate < 0 || f.rate > 1)) {
		sim_resp_error(rs, 400, "400", "rate must be a number in 0..1");
		goto out;
	}
	mode = json_string_value(json_object_get(body, "mode"));
	f.mode = SIM_FAULT_STATUS;
	if (mode != NULL && strcmp(mode, "reset") == 0)
		f.mode = SIM_FAULT_RESET;
	else if (mode != NULL && strcmp(mode, "garbage") == 0)
		f.mode = SIM_FAULT_GARBAGE;
	else if (mode != NULL && strcmp(mode, "status") != 0) {
		sim_resp_error(rs, 400, "400", "mode must be status, reset or garbage");
		goto out;
	}
	/* Spent one-shot faults (count reached 0) give their slot back. */
	for (int i = 0; i < s->n_faults;)
		if (s->faults[i].count == 0)
			s->faults[i] = s->faults[--s->n_faults];
		else
			i++;
	if (s->n_faults == SIM_MAX_FAULTS) {
		s->rejections[SIM_REJ_FAULTS]++;
		sim_resp_error(rs, 409, "409", "At most %d faults", SIM_MAX_FAULTS);
		goto out;
	}
	s->faults[s->n_faults++] = f;
	sim_resp_json(rs, 200, sim_control_faults(s));
out:
	json_decref(body);
}

void sim_control_h_stats(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *req = json_object(), *acc = json_object(), *rej = json_object();
	int live = 0;

	for (int i = 0; i < sim_http_route_count(); i++)
		if (!(sim_http_route_flags(i) & SIM_RT_CONTROL))
			json_object_set_new(req, sim_http_route_name(i), json_integer((json_int_t)s->requests[i]));
	for (int a = 0; a < s->n_accounts; a++) {
		json_t *o = json_object();

		for (int i = 0; i < sim_http_route_count(); i++)
			if (s->accounts[a].requests[i] > 0)
				json_object_set_new(o, sim_http_route_name(i),
						    json_integer((json_int_t)s->accounts[a].requests[i]));
		json_object_set_new(acc, s->accounts[a].id, o);
	}
	for (int r = 0; r < SIM_REJ_COUNT; r++)
		json_object_set_new(rej, sim_reject_name(r), json_integer((json_int_t)s->rejections[r]));
	for (int i = 0; i < SIM_MAX_SESSIONS; i++)
		live += s->sessions[i] != NULL && s->sessions[i]->expires > sim_now_wall();
	sim_resp_json(rs, 200, json_pack("{s:o, s:o, s:I, s:{s:I, s:I}, s:o, s:i, s:i, s:{s:i, s:i}}",
		"requests", req, "accounts", acc, "jobs", (json_int_t)s->jobs_created,
		"webhook_deliveries", "ok", (json_int_t)s->deliveries_ok, "failed",
		(json_int_t)s->deliveries_failed, "rejections", rej, "sessions", live, "uploads",
		s->n_uploads, "inflight", "now", s->api_inflight, "max", s->api_inflight_max));
}

void sim_control_h_stats_reset(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	memset(s->requests, 0, sizeof(s->requests));
	memset(s->rejections, 0, sizeof(s->rejections));
	for (int a = 0; a < s->n_accounts; a++)
		memset(s->accounts[a].requests, 0, sizeof(s->accounts[a].requests));
	s->deliveries_ok = s->deliveries_failed = 0;
	s->jobs_created = 0;
	s->api_inflight_max = s->api_inflight;	/* the most at once from now on */
	sim_resp_json(rs, 200, json_pack("{s:b}", "reset", 1));
}

void sim_control_h_revoke(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int n = 0;

	for (int i = 0; i < SIM_MAX_SESSIONS; i++)
		n += s->sessions[i] != NULL;
	sim_auth_revoke_all(s);
	sim_resp_json(rs, 200, json_pack("{s:i}", "revoked", n));
}

void sim_control_h_jobs(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *arr = json_array();
	double now = sim_now_mono();

	sim_jobs_update(s, now);
	for (int i = 0; i < s->n_jobs; i++) {
		const struct sim_job *j = s->jobs[i];
		struct sim_job_view v;

		sim_jobs_view(j, now, &v);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I}", "rid", j->rid, "account",
			s->accounts[j->account].id, "url", j->input_url, "status", v.status, "ctime",
			(json_int_t)j->ctime_ms));
	}
	sim_resp_json(rs, 200, json_pack("{s:o}", "jobs", arr));
}

void sim_control_h_requests(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	char v[16], *end;
	long limit = SIM_REQLOG_MAX;

	if (sim_http_query(rq, "limit", v, sizeof(v)) == 0) {
		limit = strtol(v, &end, 10);
		if (v[0] == '\0' || *end != '\0' || limit < 1 || limit > SIM_REQLOG_MAX) {
			sim_resp_error(rs, 400, "400", "limit must be an integer in 1..%d", SIM_REQLOG_MAX);
			return;
		}
	}
	sim_resp_json(rs, 200, sim_reqlog_json(s->reqlog, (int)limit));
}

void sim_control_h_requests_clear(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	sim_reqlog_clear(s->reqlog);
	sim_resp_json(rs, 200, json_pack("{s:b}", "cleared", 1));
}
