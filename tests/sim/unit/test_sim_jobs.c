/* sim_jobs: state progression over time, failure hooks, error texts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_jobs.h"

static struct sim_job job(int retry_code)
{
	struct sim_job j;

	memset(&j, 0, sizeof(j));
	j.t_start = 100.0;
	j.t_len = 10.0;
	j.queue_pos = SIM_JOBS_QUEUE_START;
	j.retry_code = retry_code;
	return j;
}

Test(sim_jobs, progression_table)
{
	static const struct { double t; int retry; const char *status; int step, queue; } cases[] = {
		{ 100.0, 0, "PROGRESS", 0, 3 },		/* just created: queued */
		{ 100.7, 0, "PROGRESS", 0, 2 },
		{ 101.5, 0, "PROGRESS", 0, 1 },
		{ 102.0, 0, "PROGRESS", 0, 0 },		/* 20%: running, out of the queue */
		{ 106.0, 0, "PROGRESS", 50, 0 },
		{ 109.9, 0, "PROGRESS", 98, 0 },
		{ 110.5, 0, "PROGRESS", 100, 0 },	/* due; sim_jobs_update() fixes the outcome */
		{ 105.0, 513, "RETRY", 0, 0 },		/* retry hook: 50%..65% */
		{ 106.6, 513, "PROGRESS", 57, 0 },
		{ 104.9, 513, "PROGRESS", 36, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_job j = job(cases[i].retry);
		struct sim_job_view v;

		sim_jobs_view(&j, cases[i].t, &v);
		cr_expect_str_eq(v.status, cases[i].status, "case %zu", i);
		cr_expect_eq(v.step, cases[i].step, "case %zu: step %d", i, v.step);
		cr_expect_eq(v.queue_pos, cases[i].queue, "case %zu: queue %d", i, v.queue_pos);
		cr_expect_eq(v.total, 100);
		if (strcmp(cases[i].status, "RETRY") == 0)
			cr_expect_eq(v.code, cases[i].retry);
	}
}

Test(sim_jobs, step_updates_at_least_every_100ms)
{
	struct sim_job j = job(0);
	struct sim_job_view a, b;

	j.t_len = 6.0;	/* the default --job-seconds: 4.8 s of steps for 100 steps */
	for (double t = 101.3; t < 105.9; t += 0.1) {
		sim_jobs_view(&j, t, &a);
		sim_jobs_view(&j, t + 0.1, &b);
		cr_assert(b.step > a.step, "no progress between %.1f and %.1f (%d)", t, t + 0.1, a.step);
	}
}

Test(sim_jobs, final_states_are_fixed)
{
	struct sim_job j = job(0);
	struct sim_job_view v;

	j.final = SIM_JOB_SUCCEEDED;
	sim_jobs_view(&j, 100.0, &v);
	cr_expect_str_eq(v.status, "SUCCESS");
	j.final = SIM_JOB_FAILED;
	j.final_code = 101;
	sim_jobs_view(&j, 1e9, &v);
	cr_expect_str_eq(v.status, "FAILURE");
	cr_expect_eq(v.code, 101);
}

Test(sim_jobs, hooks_table)
{
	static const struct { const char *name; int fail, retry, persons; } cases[] = {
		{ "clip.mp4", 0, 0, -1 },
		{ "clip-fail-513.mp4", 513, 0, -1 },
		{ "fail-1399", 1399, 0, -1 },
		{ "clip-retry-507.mp4", 0, 507, -1 },
		{ "two-persons-3.mp4", 0, 0, 3 },
		{ "persons-0.mp4", 0, 0, 0 },
		{ "persons-99.mp4", 0, 0, 16 },		/* v2.0: up to 16 persons */
		{ "persons-16.mp4", 0, 0, 16 },
		{ "persons-9.mp4", 0, 0, 9 },
		{ "fail-.mp4", 0, 0, -1 },
		{ "fail-x-fail-202.mp4", 202, 0, -1 },
		{ "retry-599-fail-513.mp4", 513, 599, -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int f, r, p;

		sim_jobs_hooks(cases[i].name, &f, &r, &p);
		cr_expect(f == cases[i].fail && r == cases[i].retry && p == cases[i].persons,
			  "%s → %d %d %d", cases[i].name, f, r, p);
	}
}

Test(sim_jobs, error_texts)
{
	cr_expect_str_eq(sim_jobs_error_text(513), "Failed to detect character in the video");
	cr_expect_str_eq(sim_jobs_error_text(101), "Not enough credits");
	cr_expect_str_eq(sim_jobs_error_text(503), "Error processing the parameters");
	cr_expect_str_eq(sim_jobs_error_text(1399), "Hand tracking timeout");
	cr_expect_str_eq(sim_jobs_error_text(42), "Unknown error");
}

Test(sim_jobs, list_status_table)
{
	/* view → what /list calls it: a queued job is STARTING (v1.5.8 API 6), /status keeps PROGRESS */
	static const struct { const char *status; int queue; const char *listed; } cases[] = {
		{ "PROGRESS", 3, "STARTING" },
		{ "PROGRESS", 1, "STARTING" },
		{ "PROGRESS", 0, "PROGRESS" },
		{ "RETRY", 0, "RETRY" },
		{ "SUCCESS", 0, "SUCCESS" },
		{ "FAILURE", 0, "FAILURE" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_job_view v = { .status = cases[i].status, .queue_pos = cases[i].queue };

		cr_expect_str_eq(sim_jobs_list_status(&v), cases[i].listed, "case %zu", i);
	}
}

Test(sim_jobs, minutes_cents_table)
{
	/* credits → hundredths of a minute, floored: printed as "%lld.%02lld" */
	static const struct { double credits; long long cents; } cases[] = {
		{ 0, 0 },
		{ 948, 1580 },		/* 15.80, not 15.800000000000001 */
		{ 1000, 1666 },		/* 16.666… floored */
		{ 998, 1663 },
		{ 60, 100 },
		{ 0.6, 1 },		/* exactly one cent */
		{ 0.5, 0 },
		{ -5, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sim_jobs_minutes_cents(cases[i].credits), cases[i].cents, "%g credits → %lld",
			     cases[i].credits, sim_jobs_minutes_cents(cases[i].credits));
}

Test(sim_jobs, tracked_persons_and_mode_fields_table)
{
	/* job kind -> v2.0 "mode" and "models" as /download and /list show them */
	static const struct {
		int mode, mp_detection, n_models;
		const char *model;		/* params.model */
		int face, hand;
		const char *want;		/* json of {"mode", "models"} */
	} cases[] = {
		{ 0, 0, 0, "", 0, 0, "{\"mode\":0,\"models\":[{\"trackingId\":\"001\",\"modelId\":null,"
		  "\"faceDataType\":0,\"handDataType\":0}]}" },
		{ 0, 0, 0, "Ab3", 1, 0, "{\"mode\":0,\"models\":[{\"trackingId\":\"001\",\"modelId\":\"Ab3\","
		  "\"faceDataType\":1,\"handDataType\":0}]}" },
		{ 1, 1, 0, "", 0, 0, "{\"mode\":1,\"models\":[]}" },	/* a detection run */
		{ 1, 0, 2, "", 0, 1, "{\"mode\":1,\"models\":[{\"trackingId\":\"002\",\"modelId\":\"m2\","
		  "\"faceDataType\":0,\"handDataType\":1},{\"trackingId\":\"012\",\"modelId\":\"m12\","
		  "\"faceDataType\":0,\"handDataType\":1}]}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_job j;
		json_t *o = json_object();
		char *txt;

		memset(&j, 0, sizeof(j));
		j.mode = cases[i].mode;
		j.mp_detection = cases[i].mp_detection;
		snprintf(j.params.model, sizeof(j.params.model), "%s", cases[i].model);
		j.params.track_face = cases[i].face;
		j.params.track_hand = cases[i].hand;
		j.params.n_models = cases[i].n_models;
		j.params.models[0].tracking_id = 2;
		snprintf(j.params.models[0].model_id, sizeof(j.params.models[0].model_id), "m2");
		j.params.models[1].tracking_id = 12;
		snprintf(j.params.models[1].model_id, sizeof(j.params.models[1].model_id), "m12");
		sim_jobs_add_mode(&j, o);
		txt = json_dumps(o, JSON_COMPACT);
		cr_expect_str_eq(txt, cases[i].want, "case %zu", i);
		cr_expect_eq(sim_jobs_n_tracked(&j), (int)json_array_size(json_object_get(o, "models")), "case %zu", i);
		free(txt);
		json_decref(o);
	}
}
