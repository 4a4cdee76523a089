/* sim_params: params lists → accepted, or the name of the rejected parameter. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "sim_params.h"

struct params_case {
	const char *json;	/* the params value */
	const char *bad;	/* NULL: accepted; else the parameter reported */
};

static const struct params_case cases[] = {
	{ "[]", NULL },
	{ "[\"config=configDefault\"]", NULL },
	{ "[\"formats=bvh,fbx,glb,mp4,png,jpg,dmpe\"]", NULL },
	{ "[\"formats=bvh,obj\"]", "formats" },
	{ "[\"formats=\"]", "formats" },
	{ "[\"formats=bvh,\"]", "formats" },
	{ "[\"sim=1\", \"trackFace=0\", \"trackHand=1\"]", NULL },
	{ "[\"sim=2\"]", "sim" },
	{ "[\"trackFace=true\"]", "trackFace" },
	{ "[\"render.camera=closeup\"]", NULL },
	{ "[\"render.camera=wide\"]", "render.camera" },
	{ "[\"footLockingMode=grounding\"]", NULL },
	{ "[\"poseEstimation.footLockingMode=always\"]", NULL },
	{ "[\"footLockingMode=sometimes\"]", "footLockingMode" },
	{ "[\"videoSpeedMultiplier=1.0\"]", NULL },
	{ "[\"videoSpeedMultiplier=8\"]", NULL },
	{ "[\"videoSpeedMultiplier=8.5\"]", "videoSpeedMultiplier" },
	{ "[\"poseEstimation.videoSpeedMultiplier=0.9\"]", "poseEstimation.videoSpeedMultiplier" },
	{ "[\"poseFilteringStrength=0.0\"]", NULL },
	{ "[\"poseFilteringStrength=1.01\"]", "poseFilteringStrength" },
	{ "[\"poseFilteringStrength=abc\"]", "poseFilteringStrength" },
	{ "[\"rootAtOrigin=true\", \"upperBodyOnly=false\"]", NULL },
	{ "[\"rootAtOrigin=1\"]", NULL },
	{ "[\"rootAtOrigin=yes\"]", "rootAtOrigin" },
	{ "[\"upperBodyOnly=1\"]", "upperBodyOnly" },
	{ "[\"trim=0,2.5\"]", NULL },
	{ "[\"trim=3,2\"]", "trim" },
	{ "[\"trim=-1,2\"]", "trim" },
	{ "[\"trim=1\"]", "trim" },
	{ "[\"crop=0,0,1,1\"]", NULL },
	{ "[\"crop=0.5,0,0.4,1\"]", "crop" },
	{ "[\"crop=0,0,1.2,1\"]", "crop" },
	{ "[\"render.sbs=1\", \"render.shadow=0\", \"render.includeAudio=1\"]", NULL },
	{ "[\"render.bgColor=0,255,128,255\"]", NULL },
	{ "[\"render.bgColor=0,256,0,0\"]", "render.bgColor" },
	{ "[\"render.bgColor=0,1.5,0,0\"]", "render.bgColor" },
	{ "[\"render.backdrop=studio\"]", NULL },
	{ "[\"render.backdrop=beach\"]", "render.backdrop" },
	{ "[\"render.CamMode=2\"]", NULL },
	{ "[\"render.CamMode=3\"]", "render.CamMode" },
	{ "[\"pipeline=mp_detection\"]", NULL },
	{ "[\"pipeline=fast\"]", "pipeline" },
	{ "[\"models=[{\\\"trackingId\\\":1,\\\"modelId\\\":\\\"abc\\\"}]\"]", NULL },
	{ "[\"models=[{\\\"trackingId\\\":0,\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	/* v2.0 Phase 2: the documented zero-padded string ids, integers, and the JS-like literal */
	{ "[\"models=[{\\\"trackingId\\\":\\\"001\\\",\\\"modelId\\\":\\\"abc\\\"}]\"]", NULL },
	{ "[\"models=[{\\\"trackingId\\\":\\\"1\\\",\\\"modelId\\\":\\\"abc\\\"}]\"]", NULL },
	{ "[\"models=[{trackingId:'001', modelId:'model_id'}, {trackingId:'002', modelId:'x'}]\"]", NULL },
	{ "[\"models=[{ trackingId : 3 , modelId : 'x' }]\"]", NULL },
	{ "[\"models=[{\\\"trackingId\\\":\\\"000\\\",\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	{ "[\"models=[{\\\"trackingId\\\":\\\"0001\\\",\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	{ "[\"models=[{\\\"trackingId\\\":\\\"a01\\\",\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	{ "[\"models=[{\\\"trackingId\\\":1000,\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	{ "[\"models=[{\\\"trackingId\\\":1.5,\\\"modelId\\\":\\\"abc\\\"}]\"]", "models" },
	{ "[\"models=[{trackingId:'001', modelId:'a'}, {trackingId:1, modelId:'b'}]\"]", "models" },	/* same person twice */
	{ "[\"models=[{trackingId:'001', modelId:'a b'}]\"]", "models" },
	{ "[\"models=[{trackingId:'001, modelId:'a'}]\"]", "models" },	/* unclosed quote */
	{ "[\"models=[{trackingId:'001'}]\"]", "models" },
	{ "[\"models=[]\"]", "models" },
	{ "[\"models=notjson\"]", "models" },
	{ "[\"pipeline=mp_detection\", \"models=[{\\\"trackingId\\\":1,\\\"modelId\\\":\\\"a\\\"}]\"]", "models" },
	{ "[\"model=Ab3\"]", NULL },
	{ "[\"model=\"]", "model" },
	{ "[\"unknownParam=1\"]", "unknownParam" },
	{ "[\"noequals\"]", "noequals" },
	{ "[\"=1\"]", "=1" },
	{ "[1]", "params" },
	{ "{\"formats\":\"bvh\"}", "params" },
};

Test(sim_params, table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t err;
		json_t *list = json_loads(cases[i].json, 0, &err);
		struct sim_params p;
		char bad[128] = "";
		int rc;

		cr_assert_not_null(list, "case %zu does not parse: %s", i, err.text);
		rc = sim_params_parse(list, &p, bad, sizeof(bad));
		if (cases[i].bad == NULL)
			cr_expect_eq(rc, 0, "case %zu %s rejected as %s", i, cases[i].json, bad);
		else
			cr_expect(rc == -1 && strcmp(bad, cases[i].bad) == 0, "case %zu %s: rc %d bad '%s', want '%s'",
				  i, cases[i].json, rc, bad, cases[i].bad);
		json_decref(list);
	}
}

Test(sim_params, sixteen_models_at_most)
{
	/* n models with distinct ids -> accepted */
	static const struct { int n, ok; } rows[] = { { 1, 1 }, { 8, 1 }, { 9, 1 }, { 16, 1 }, { 17, 0 } };

	for (size_t c = 0; c < sizeof(rows) / sizeof(rows[0]); c++) {
		char item[SIM_PARAMS_ITEM_MAX], bad[64] = "";
		size_t o = (size_t)snprintf(item, sizeof(item), "models=[");
		struct sim_params p;

		for (int i = 1; i <= rows[c].n; i++)
			o += (size_t)snprintf(item + o, sizeof(item) - o, "%s{trackingId:'%03d',modelId:'m%d'}",
					      i > 1 ? "," : "", i, i);
		snprintf(item + o, sizeof(item) - o, "]");
		json_t *list = json_pack("[s]", item);
		int rc = sim_params_parse(list, &p, bad, sizeof(bad));

		cr_expect_eq(rc == 0, rows[c].ok, "%d models: rc %d bad '%s'", rows[c].n, rc, bad);
		if (rc == 0) {
			cr_expect_eq(p.n_models, rows[c].n);
			cr_expect_eq(p.models[rows[c].n - 1].tracking_id, rows[c].n);
		}
		json_decref(list);
	}
}

Test(sim_params, relaxed_json_table)
{
	static const struct { const char *in, *out; } rows[] = {
		{ "[{trackingId:'001', modelId:'m'}]", "[{\"trackingId\":\"001\", \"modelId\":\"m\"}]" },
		{ "[{\"trackingId\":\"001\"}]", "[{\"trackingId\":\"001\"}]" },	/* JSON unchanged */
		{ "{a :1}", "{\"a\" :1}" },
		{ "{a:true, b:null}", "{\"a\":true, \"b\":null}" },
		{ "{a:'it\\'s'}", "{\"a\":\"it's\"}" },
		{ "{a:'say \"hi\"'}", "{\"a\":\"say \\\"hi\\\"\"}" },
		{ "{a:'x\\ny'}", "{\"a\":\"x\\ny\"}" },
		{ "{$k_1:2}", "{\"$k_1\":2}" },
		{ "{a:'open}", NULL },
		{ "{a:'x\\", NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char out[256] = "";
		int rc = sim_params_relaxed_json(rows[i].in, out, sizeof(out));

		if (rows[i].out == NULL) {
			cr_expect_eq(rc, -1, "case %zu: %s -> %s", i, rows[i].in, out);
		} else {
			cr_expect_eq(rc, 0, "case %zu", i);
			cr_expect_str_eq(out, rows[i].out, "case %zu", i);
		}
	}
	char small[8];
	cr_expect_eq(sim_params_relaxed_json("{abcdefgh:1}", small, sizeof(small)), -1, "output bound");
}

Test(sim_params, values_are_kept)
{
	json_t *list = json_loads("[\"formats=glb,dmpe\", \"trim=1,3\", \"pipeline=mp_detection\", \"model=Xy\"]", 0, NULL);
	struct sim_params p;
	char bad[64];

	cr_assert_eq(sim_params_parse(list, &p, bad, sizeof(bad)), 0);
	cr_expect_eq(p.formats, SIM_FMT_GLB | SIM_FMT_DMPE);
	cr_expect(p.has_trim && p.trim_from == 1.0 && p.trim_to == 3.0);
	cr_expect_eq(p.mp_detection, 1);
	cr_expect_str_eq(p.model, "Xy");
	json_decref(list);

	list = json_loads("[\"models=[{trackingId:'007', modelId:'A'}, {\\\"trackingId\\\":12, \\\"modelId\\\":\\\"B\\\"}]\"]", 0, NULL);
	cr_assert_not_null(list);
	cr_assert_eq(sim_params_parse(list, &p, bad, sizeof(bad)), 0, "%s", bad);
	cr_expect(p.n_models == 2 && p.models[0].tracking_id == 7 && p.models[1].tracking_id == 12);
	cr_expect_str_eq(p.models[0].model_id, "A");
	cr_expect_str_eq(p.models[1].model_id, "B");
	json_decref(list);

	cr_assert_eq(sim_params_parse(NULL, &p, bad, sizeof(bad)), 0);
	cr_expect_eq(p.formats, SIM_FMT_DEFAULT, "no params → bvh,fbx,mp4");
	cr_expect_str_eq(sim_params_format_ext(SIM_FMT_DMPE), "dmpe");
	cr_expect_null(sim_params_format_ext(3));
}
