/* Unit tests for gateway/api/params.c: typed Params in -> upstream "params" array or a field-naming error. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api/params.h"

/* Storage for one Params and its sub-messages; a case's setup wires what it needs. */
struct pfix {
	Animate3d__V1__Params p;
	Animate3d__V1__Trim trim;
	Animate3d__V1__Crop crop;
	Animate3d__V1__Render render;
	Animate3d__V1__Color color;
	Animate3d__V1__TrackedModel m[GW_PARAMS_MAX_MODELS + 1];
	Animate3d__V1__TrackedModel *mp[GW_PARAMS_MAX_MODELS + 1];
	char *formats[GW_PARAMS_MAX_FORMATS + 2];
};

static void pfix_init(struct pfix *f)
{
	Animate3d__V1__Params p = ANIMATE3D__V1__PARAMS__INIT;
	Animate3d__V1__Trim t = ANIMATE3D__V1__TRIM__INIT;
	Animate3d__V1__Crop c = ANIMATE3D__V1__CROP__INIT;
	Animate3d__V1__Render r = ANIMATE3D__V1__RENDER__INIT;
	Animate3d__V1__Color col = ANIMATE3D__V1__COLOR__INIT;
	Animate3d__V1__TrackedModel m = ANIMATE3D__V1__TRACKED_MODEL__INIT;

	memset(f, 0, sizeof(*f));
	f->p = p;
	f->trim = t;
	f->crop = c;
	f->render = r;
	f->color = col;
	for (size_t i = 0; i < GW_PARAMS_MAX_MODELS + 1; i++) {
		f->m[i] = m;
		f->mp[i] = &f->m[i];
	}
}

static void set_formats(struct pfix *f, size_t n, const char *const *v)
{
	for (size_t i = 0; i < n; i++)
		f->formats[i] = (char *)v[i];
	f->p.formats = f->formats;
	f->p.n_formats = n;
}

/* The fields the contract deprecates (TrackedModel.tracking_id, Params.camera) are still served:
 * the tests set them here, out of the compiler's deprecation warning. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void set_legacy_tid(Animate3d__V1__TrackedModel *m, int v)
{
	m->tracking_id = v;
}

static void set_camera(struct pfix *f, const char *camera)
{
	f->p.camera = (char *)camera;
}
#pragma GCC diagnostic pop

/* Models with the deprecated int ids (tid) and/or the documented string ones (ref, may be
 * NULL, or hold NULL for "not set"). */
static void set_models_refs(struct pfix *f, size_t n, const int *tid, const char *const *ref,
			    const char *const *mid)
{
	for (size_t i = 0; i < n; i++) {
		set_legacy_tid(&f->m[i], tid ? tid[i] : 0);
		if (ref && ref[i])
			f->m[i].tracking_ref = (char *)ref[i];
		f->m[i].model_id = (char *)mid[i];
	}
	f->p.models = f->mp;
	f->p.n_models = n;
}

static void set_models(struct pfix *f, size_t n, const int *tid, const char *const *mid)
{
	set_models_refs(f, n, tid, NULL, mid);
}

static void set_vsm(struct pfix *f, double v)
{
	f->p.video_speed_multiplier_opt_case =
		ANIMATE3D__V1__PARAMS__VIDEO_SPEED_MULTIPLIER_OPT_VIDEO_SPEED_MULTIPLIER;
	f->p.video_speed_multiplier = v;
}

static void set_pfs(struct pfix *f, double v)
{
	f->p.pose_filtering_strength_opt_case =
		ANIMATE3D__V1__PARAMS__POSE_FILTERING_STRENGTH_OPT_POSE_FILTERING_STRENGTH;
	f->p.pose_filtering_strength = v;
}

static void set_trim(struct pfix *f, double from, double to)
{
	f->trim.from_s = from;
	f->trim.to_s = to;
	f->p.trim = &f->trim;
}

static void set_crop(struct pfix *f, double l, double t, double r, double b)
{
	f->crop.left = l;
	f->crop.top = t;
	f->crop.right = r;
	f->crop.bottom = b;
	f->p.crop = &f->crop;
}

/* ---- valid params -> exact rendering ---- */

static void v_empty(struct pfix *f) { (void)f; }

static void v_basic(struct pfix *f)
{
	static const char *const fm[] = { "bvh", "fbx", "mp4" };

	set_formats(f, 3, fm);
	f->p.model_id = "dm_character_001";
	f->p.config = "configCustom";
}

static void v_flags(struct pfix *f)
{
	f->p.sim_opt_case = ANIMATE3D__V1__PARAMS__SIM_OPT_SIM;
	f->p.sim = 1;
	set_camera(f, "closeup");
	f->p.track_face_opt_case = ANIMATE3D__V1__PARAMS__TRACK_FACE_OPT_TRACK_FACE;
	f->p.track_face = 0;
	f->p.track_hand_opt_case = ANIMATE3D__V1__PARAMS__TRACK_HAND_OPT_TRACK_HAND;
	f->p.track_hand = 1;
	f->p.foot_locking_mode = ANIMATE3D__V1__FOOT_LOCKING_MODE__FOOT_LOCKING_GROUNDING;
	f->p.root_at_origin_opt_case = ANIMATE3D__V1__PARAMS__ROOT_AT_ORIGIN_OPT_ROOT_AT_ORIGIN;
	f->p.root_at_origin = 1;
	f->p.upper_body_only_opt_case = ANIMATE3D__V1__PARAMS__UPPER_BODY_ONLY_OPT_UPPER_BODY_ONLY;
	f->p.upper_body_only = 0;
}

static void v_numbers(struct pfix *f)
{
	set_vsm(f, 2.0);
	set_pfs(f, 0.25);
	set_trim(f, 1.5, 10);
	set_crop(f, 0, 0.1, 1, 0.9);
}

static void v_numbers2(struct pfix *f)
{
	set_vsm(f, 1.5);
	set_pfs(f, 0.1);
	set_trim(f, 0, 0.333);
}

static void v_render(struct pfix *f)
{
	f->render.sbs_opt_case = ANIMATE3D__V1__RENDER__SBS_OPT_SBS;
	f->render.sbs = 1;
	f->color.r = 0;
	f->color.g = 255;
	f->color.b = 16;
	f->color.a = 128;
	f->render.bg_color = &f->color;
	f->render.backdrop = "studio";
	f->render.shadow_opt_case = ANIMATE3D__V1__RENDER__SHADOW_OPT_SHADOW;
	f->render.shadow = 0;
	f->render.include_audio_opt_case = ANIMATE3D__V1__RENDER__INCLUDE_AUDIO_OPT_INCLUDE_AUDIO;
	f->render.include_audio = 1;
	f->render.cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
	f->render.cam_mode = ANIMATE3D__V1__CAM_MODE__CAM_MODE_FACE;
	f->p.render = &f->render;
}

static void v_render_unset(struct pfix *f)
{
	f->p.render = &f->render;	/* present but empty: renders nothing */
}

/* Issue 19: the documented string form; the deprecated ints are zero-padded to it. */
static void v_models(struct pfix *f)
{
	static const int tid[] = { 0, 0, 3, 12 };
	static const char *const ref[] = { "001", "2", NULL, "012" };
	static const char *const mid[] = { "abcDEF123", "x_y-z", "m3", "m4" };

	set_models_refs(f, 4, tid, ref, mid);
}

/* v2.0 Phase 2, verbatim: "params": ["models=[{trackingId:'001', modelId:'model_id'}, ...]"
 * (a JavaScript literal in the document; sent as the JSON it means). */
static void v_models_doc(struct pfix *f)
{
	static const char *const ref[] = { "001" };
	static const char *const mid[] = { "model_id" };

	set_models_refs(f, 1, NULL, ref, mid);
}

/* Both ids set and naming the same person: one entry, the string form. */
static void v_models_both(struct pfix *f)
{
	static const int tid[] = { 7 };
	static const char *const ref[] = { "07" };
	static const char *const mid[] = { "m" };

	set_models_refs(f, 1, tid, ref, mid);
}

/* The deprecated camera goes out as the documented render.CamMode (fixed -> 1). */
static void v_camera_fixed(struct pfix *f)
{
	set_camera(f, "fixed");
}

/* camera beside render.cam_mode, agreeing (closeup is cinematic): CamMode once. */
static void v_camera_both(struct pfix *f)
{
	set_camera(f, "closeup");
	f->render.cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
	f->render.cam_mode = ANIMATE3D__V1__CAM_MODE__CAM_MODE_CINEMATIC;
	f->render.shadow_opt_case = ANIMATE3D__V1__RENDER__SHADOW_OPT_SHADOW;
	f->render.shadow = 1;
	f->p.render = &f->render;
}

static void v_pipeline(struct pfix *f)
{
	f->p.pipeline = "mp_detection";
	f->p.foot_locking_mode = ANIMATE3D__V1__FOOT_LOCKING_MODE__FOOT_LOCKING_AUTO;
}

static const struct {
	const char *name;
	void (*setup)(struct pfix *f);
	const char *expected;	/* compact JSON of the rendered array */
} render_cases[] = {
	{ "empty", v_empty, "[\"config=configDefault\"]" },
	{ "basic", v_basic,
	  "[\"config=configCustom\",\"formats=bvh,fbx,mp4\",\"model=dm_character_001\"]" },
	{ "flags", v_flags,
	  "[\"config=configDefault\",\"sim=1\",\"trackFace=0\",\"trackHand=1\","
	  "\"footLockingMode=grounding\",\"rootAtOrigin=1\",\"upperBodyOnly=false\",\"render.CamMode=0\"]" },
	{ "numbers", v_numbers,
	  "[\"config=configDefault\",\"videoSpeedMultiplier=2\",\"poseFilteringStrength=0.25\","
	  "\"trim=1.5,10\",\"crop=0,0.1,1,0.9\"]" },
	{ "numbers2", v_numbers2,
	  "[\"config=configDefault\",\"videoSpeedMultiplier=1.5\",\"poseFilteringStrength=0.1\","
	  "\"trim=0,0.333\"]" },
	{ "render", v_render,
	  "[\"config=configDefault\",\"render.sbs=1\",\"render.bgColor=0,255,16,128\","
	  "\"render.backdrop=studio\",\"render.shadow=0\",\"render.includeAudio=1\",\"render.CamMode=2\"]" },
	{ "render_unset", v_render_unset, "[\"config=configDefault\"]" },
	{ "models", v_models,
	  "[\"config=configDefault\",\"models=[{\\\"trackingId\\\":\\\"001\\\",\\\"modelId\\\":\\\"abcDEF123\\\"},"
	  "{\\\"trackingId\\\":\\\"002\\\",\\\"modelId\\\":\\\"x_y-z\\\"},"
	  "{\\\"trackingId\\\":\\\"003\\\",\\\"modelId\\\":\\\"m3\\\"},"
	  "{\\\"trackingId\\\":\\\"012\\\",\\\"modelId\\\":\\\"m4\\\"}]\"]" },
	{ "models_doc", v_models_doc,
	  "[\"config=configDefault\",\"models=[{\\\"trackingId\\\":\\\"001\\\",\\\"modelId\\\":\\\"model_id\\\"}]\"]" },
	{ "models_both", v_models_both,
	  "[\"config=configDefault\",\"models=[{\\\"trackingId\\\":\\\"007\\\",\\\"modelId\\\":\\\"m\\\"}]\"]" },
	{ "camera_fixed", v_camera_fixed, "[\"config=configDefault\",\"render.CamMode=1\"]" },
	{ "camera_both", v_camera_both,
	  "[\"config=configDefault\",\"render.shadow=1\",\"render.CamMode=0\"]" },
	{ "pipeline", v_pipeline,
	  "[\"config=configDefault\",\"footLockingMode=auto\",\"pipeline=mp_detection\"]" },
};

static char *render_str(const Animate3d__V1__Params *p, char **extra, size_t n)
{
	json_t *arr = gw_params_render(p, extra, n);
	char *s;

	cr_assert_not_null(arr);
	s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	cr_assert_not_null(s);
	return s;
}

Test(params, render_table)
{
	for (size_t i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++) {
		struct pfix f;
		char err[256] = "";
		char *s;

		pfix_init(&f);
		render_cases[i].setup(&f);
		cr_expect_eq(gw_params_validate(&f.p, err, sizeof(err)), 0, "%s: rejected: %s",
			     render_cases[i].name, err);
		s = render_str(&f.p, NULL, 0);
		cr_expect_str_eq(s, render_cases[i].expected, "%s: got %s", render_cases[i].name, s);
		free(s);
	}
}

Test(params, render_null_and_extras)
{
	char *extra[] = { "newThing=1", "render.futureOpt=a b" };
	char *s = render_str(NULL, NULL, 0);
	struct pfix f;

	cr_expect_str_eq(s, "[\"config=configDefault\"]");
	free(s);
	cr_expect_eq(gw_params_validate(NULL, NULL, 0), 0);
	pfix_init(&f);
	v_basic(&f);
	cr_expect_eq(gw_params_validate_extra(extra, 2, NULL, 0), 0);
	s = render_str(&f.p, extra, 2);
	cr_expect_str_eq(s, "[\"config=configCustom\",\"formats=bvh,fbx,mp4\",\"model=dm_character_001\","
			    "\"newThing=1\",\"render.futureOpt=a b\"]");
	free(s);
}

/* ---- invalid params -> -1 and the field ---- */

static void i_format_unknown(struct pfix *f)
{
	static const char *const fm[] = { "bvh", "avi" };
	set_formats(f, 2, fm);
}
static void i_format_dup(struct pfix *f)
{
	static const char *const fm[] = { "bvh", "fbx", "bvh" };
	set_formats(f, 3, fm);
}
static void i_format_many(struct pfix *f)
{
	static const char *const fm[] = { "bvh", "fbx", "glb", "mp4", "png", "jpg", "dmpe", "bvh" };
	set_formats(f, 8, fm);
}
static void i_format_case(struct pfix *f)
{
	static const char *const fm[] = { "BVH" };
	set_formats(f, 1, fm);
}
static void i_model_id(struct pfix *f) { f->p.model_id = "bad id"; }
static void i_model_id_long(struct pfix *f)
{
	static char id[GW_PARAMS_MAX_ID + 2];
	memset(id, 'a', GW_PARAMS_MAX_ID + 1);
	id[GW_PARAMS_MAX_ID + 1] = '\0';
	f->p.model_id = id;
}
static void i_config(struct pfix *f) { f->p.config = "../etc"; }
static void i_camera(struct pfix *f) { set_camera(f, "wide"); }
/* camera fixed (CamMode 1) beside render.cam_mode face (2): which one? Refused. */
static void i_camera_conflict(struct pfix *f)
{
	set_camera(f, "fixed");
	f->render.cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
	f->render.cam_mode = ANIMATE3D__V1__CAM_MODE__CAM_MODE_FACE;
	f->p.render = &f->render;
}
static void i_foot(struct pfix *f) { f->p.foot_locking_mode = (Animate3d__V1__FootLockingMode)9; }
static void i_vsm_hi(struct pfix *f) { set_vsm(f, 9.5); }
static void i_vsm_lo(struct pfix *f) { set_vsm(f, 0.5); }
static void i_vsm_nan(struct pfix *f) { set_vsm(f, NAN); }
static void i_vsm_zero(struct pfix *f) { set_vsm(f, 0); }	/* set to 0: differs from unset */
static void i_pfs_hi(struct pfix *f) { set_pfs(f, 1.01); }
static void i_pfs_inf(struct pfix *f) { set_pfs(f, INFINITY); }
static void i_trim_neg(struct pfix *f) { set_trim(f, -1, 3); }
static void i_trim_order(struct pfix *f) { set_trim(f, 3, 3); }
static void i_trim_inf(struct pfix *f) { set_trim(f, 0, INFINITY); }
static void i_crop_range(struct pfix *f) { set_crop(f, 0, 0, 1.5, 1); }
static void i_crop_lr(struct pfix *f) { set_crop(f, 0.5, 0, 0.5, 1); }
static void i_crop_tb(struct pfix *f) { set_crop(f, 0, 0.9, 1, 0.1); }
static void i_crop_nan(struct pfix *f) { set_crop(f, NAN, 0, 1, 1); }
static void i_color(struct pfix *f)
{
	f->color.b = 256;
	f->render.bg_color = &f->color;
	f->p.render = &f->render;
}
static void i_backdrop(struct pfix *f)
{
	f->render.backdrop = "beach";
	f->p.render = &f->render;
}
static void i_cam_mode(struct pfix *f)
{
	f->render.cam_mode_opt_case = ANIMATE3D__V1__RENDER__CAM_MODE_OPT_CAM_MODE;
	f->render.cam_mode = (Animate3d__V1__CamMode)3;
	f->p.render = &f->render;
}
static void i_pipeline(struct pfix *f) { f->p.pipeline = "sp_detection"; }
static void i_model_tid(struct pfix *f)
{
	static const int tid[] = { -1 };
	static const char *const mid[] = { "m" };
	set_models(f, 1, tid, mid);
}
static void i_model_dup(struct pfix *f)
{
	static const int tid[] = { 1, 2, 1 };
	static const char *const mid[] = { "a", "b", "c" };
	set_models(f, 3, tid, mid);
}
/* Issue 19: tracking_ref is 1..3 digits naming a person from 001 up. */
static void models_ref(struct pfix *f, const char *ref)
{
	static const char *const mid[] = { "m" };
	const char *refs[] = { ref };

	set_models_refs(f, 1, NULL, refs, mid);
}
static void i_ref_alpha(struct pfix *f) { models_ref(f, "1a"); }
static void i_ref_zero(struct pfix *f) { models_ref(f, "0"); }
static void i_ref_000(struct pfix *f) { models_ref(f, "000"); }
static void i_ref_long(struct pfix *f) { models_ref(f, "0001"); }
static void i_ref_sign(struct pfix *f) { models_ref(f, "+1"); }
static void i_ref_space(struct pfix *f) { models_ref(f, " 1"); }
static void i_ref_none(struct pfix *f)
{
	static const char *const mid[] = { "m" };
	set_models_refs(f, 1, NULL, NULL, mid);
}
static void i_tid_big(struct pfix *f)
{
	static const int tid[] = { 1000 };
	static const char *const mid[] = { "m" };
	set_models(f, 1, tid, mid);
}
static void i_ref_disagree(struct pfix *f)
{
	static const int tid[] = { 2 };
	static const char *const ref[] = { "001" };
	static const char *const mid[] = { "m" };
	set_models_refs(f, 1, tid, ref, mid);
}
/* "1" and "001" are one person (and so are 2 and "002"). */
static void i_ref_dup(struct pfix *f)
{
	static const char *const ref[] = { "1", "001" };
	static const char *const mid[] = { "a", "b" };
	set_models_refs(f, 2, NULL, ref, mid);
}
static void i_ref_dup_legacy(struct pfix *f)
{
	static const int tid[] = { 0, 2 };
	static const char *const ref[] = { "002", NULL };
	static const char *const mid[] = { "a", "b" };
	set_models_refs(f, 2, tid, ref, mid);
}
static void i_model_mid(struct pfix *f)
{
	static const int tid[] = { 1, 2 };
	static const char *const mid[] = { "a", "" };
	set_models(f, 2, tid, mid);
}
static void i_model_many(struct pfix *f)
{
	int tid[GW_PARAMS_MAX_MODELS + 1];
	const char *mid[GW_PARAMS_MAX_MODELS + 1];

	for (int i = 0; i < GW_PARAMS_MAX_MODELS + 1; i++) {
		tid[i] = i;
		mid[i] = "m";
	}
	set_models(f, GW_PARAMS_MAX_MODELS + 1, tid, mid);
}
static void i_mp_models(struct pfix *f)
{
	static const int tid[] = { 1 };
	static const char *const mid[] = { "m" };
	set_models(f, 1, tid, mid);
	f->p.pipeline = "mp_detection";
}

static const struct {
	const char *name;
	void (*setup)(struct pfix *f);
	const char *field;	/* err starts with this, then a space */
} invalid_cases[] = {
	{ "format_unknown", i_format_unknown, "params.formats[1]" },
	{ "format_dup", i_format_dup, "params.formats[2]" },
	{ "format_many", i_format_many, "params.formats" },
	{ "format_case", i_format_case, "params.formats[0]" },
	{ "model_id", i_model_id, "params.model_id" },
	{ "model_id_long", i_model_id_long, "params.model_id" },
	{ "config", i_config, "params.config" },
	{ "camera", i_camera, "params.camera" },
	{ "camera_conflict", i_camera_conflict, "params.camera" },
	{ "foot", i_foot, "params.foot_locking_mode" },
	{ "vsm_hi", i_vsm_hi, "params.video_speed_multiplier" },
	{ "vsm_lo", i_vsm_lo, "params.video_speed_multiplier" },
	{ "vsm_nan", i_vsm_nan, "params.video_speed_multiplier" },
	{ "vsm_zero", i_vsm_zero, "params.video_speed_multiplier" },
	{ "pfs_hi", i_pfs_hi, "params.pose_filtering_strength" },
	{ "pfs_inf", i_pfs_inf, "params.pose_filtering_strength" },
	{ "trim_neg", i_trim_neg, "params.trim.from_s" },
	{ "trim_order", i_trim_order, "params.trim.to_s" },
	{ "trim_inf", i_trim_inf, "params.trim" },
	{ "crop_range", i_crop_range, "params.crop.right" },
	{ "crop_lr", i_crop_lr, "params.crop.left" },
	{ "crop_tb", i_crop_tb, "params.crop.top" },
	{ "crop_nan", i_crop_nan, "params.crop.left" },
	{ "color", i_color, "params.render.bg_color.b" },
	{ "backdrop", i_backdrop, "params.render.backdrop" },
	{ "cam_mode", i_cam_mode, "params.render.cam_mode" },
	{ "pipeline", i_pipeline, "params.pipeline" },
	{ "model_tid", i_model_tid, "params.models[0].tracking_id" },
	{ "model_dup", i_model_dup, "params.models[2].tracking_id" },
	{ "ref_alpha", i_ref_alpha, "params.models[0].tracking_ref" },
	{ "ref_zero", i_ref_zero, "params.models[0].tracking_ref" },
	{ "ref_000", i_ref_000, "params.models[0].tracking_ref" },
	{ "ref_long", i_ref_long, "params.models[0].tracking_ref" },
	{ "ref_sign", i_ref_sign, "params.models[0].tracking_ref" },
	{ "ref_space", i_ref_space, "params.models[0].tracking_ref" },
	{ "ref_none", i_ref_none, "params.models[0].tracking_ref" },
	{ "tid_big", i_tid_big, "params.models[0].tracking_id" },
	{ "ref_disagree", i_ref_disagree, "params.models[0].tracking_ref" },
	{ "ref_dup", i_ref_dup, "params.models[1].tracking_ref" },
	{ "ref_dup_legacy", i_ref_dup_legacy, "params.models[1].tracking_id" },
	{ "model_mid", i_model_mid, "params.models[1].model_id" },
	{ "model_many", i_model_many, "params.models" },
	{ "mp_models", i_mp_models, "params.models" },
};

Test(params, invalid_table)
{
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		struct pfix f;
		char err[256] = "";
		size_t n = strlen(invalid_cases[i].field);

		pfix_init(&f);
		invalid_cases[i].setup(&f);
		cr_expect_eq(gw_params_validate(&f.p, err, sizeof(err)), -1, "%s: accepted",
			     invalid_cases[i].name);
		cr_expect(strncmp(err, invalid_cases[i].field, n) == 0 && err[n] == ' ',
			  "%s: err \"%s\" does not name %s", invalid_cases[i].name, err,
			  invalid_cases[i].field);
	}
}

Test(params, error_message_text)
{
	struct pfix f;
	char err[256] = "";

	pfix_init(&f);
	set_vsm(&f, 9.5);
	cr_assert_eq(gw_params_validate(&f.p, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "params.video_speed_multiplier must be between 1.0 and 8.0 (got 9.5)");
}

/* ---- extra_params ---- */

static const struct {
	const char *entries[3];
	size_t n;
	int rc;
	const char *field;	/* NULL when valid */
} extra_cases[] = {
	{ { "newParam=1" }, 1, 0, NULL },
	{ { "a.b_c9=x,y z", "other=" }, 2, 0, NULL },
	{ { "noequals" }, 1, -1, "extra_params[0]" },
	{ { "=value" }, 1, -1, "extra_params[0]" },
	{ { "ok=1", "bad key=1" }, 2, -1, "extra_params[1]" },
	{ { "ok=1", "k-dash=1" }, 2, -1, "extra_params[1]" },
	{ { "sim=1" }, 1, -1, "extra_params[0]" },
	{ { "SIM=1" }, 1, -1, "extra_params[0]" },
	{ { "poseEstimation.videoSpeedMultiplier=2" }, 1, -1, "extra_params[0]" },
	{ { "render.CamMode=1" }, 1, -1, "extra_params[0]" },
	{ { "config=x" }, 1, -1, "extra_params[0]" },
	{ { "x=1", "y=2", "x=3" }, 3, -1, "extra_params[2]" },
	{ { "x=tab\there" }, 1, -1, "extra_params[0]" },
	{ { "x=caf\xc3\xa9" }, 1, -1, "extra_params[0]" },
};

Test(params, extra_table)
{
	for (size_t i = 0; i < sizeof(extra_cases) / sizeof(extra_cases[0]); i++) {
		char err[256] = "";
		int rc = gw_params_validate_extra((char **)extra_cases[i].entries, extra_cases[i].n, err,
						  sizeof(err));

		cr_expect_eq(rc, extra_cases[i].rc, "case %zu (%s): rc %d err %s", i,
			     extra_cases[i].entries[0], rc, err);
		if (extra_cases[i].field) {
			size_t n = strlen(extra_cases[i].field);
			cr_expect(strncmp(err, extra_cases[i].field, n) == 0 && err[n] == ' ',
				  "case %zu: err \"%s\"", i, err);
		}
	}
}

Test(params, extra_limits)
{
	char *many[GW_PARAMS_MAX_EXTRA + 1];
	char names[GW_PARAMS_MAX_EXTRA + 1][16];
	char longv[GW_PARAMS_MAX_EXTRA_LEN + 2];
	char *one[1] = { longv };
	char err[256];

	for (int i = 0; i < GW_PARAMS_MAX_EXTRA + 1; i++) {
		snprintf(names[i], sizeof(names[i]), "k%d=v", i);
		many[i] = names[i];
	}
	cr_expect_eq(gw_params_validate_extra(many, GW_PARAMS_MAX_EXTRA, err, sizeof(err)), 0);
	cr_expect_eq(gw_params_validate_extra(many, GW_PARAMS_MAX_EXTRA + 1, err, sizeof(err)), -1);
	cr_expect(strncmp(err, "extra_params ", 13) == 0, "%s", err);

	memset(longv, 'a', sizeof(longv) - 1);
	longv[0] = 'k';
	longv[1] = '=';
	longv[GW_PARAMS_MAX_EXTRA_LEN] = '\0';	/* exactly the limit */
	cr_expect_eq(gw_params_validate_extra(one, 1, err, sizeof(err)), 0);
	longv[GW_PARAMS_MAX_EXTRA_LEN] = 'a';
	longv[GW_PARAMS_MAX_EXTRA_LEN + 1] = '\0';	/* one over */
	cr_expect_eq(gw_params_validate_extra(one, 1, err, sizeof(err)), -1);
}

/* ---- fingerprint ---- */

static void fp(const Animate3d__V1__StartJobRequest *r, unsigned char out[32])
{
	cr_assert_eq(gw_params_fingerprint(r, out), 0);
}

Test(params, fingerprint)
{
	Animate3d__V1__StartJobRequest a = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	Animate3d__V1__StartJobRequest b = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	struct pfix f;
	char *extra[] = { "x=1" };
	unsigned char ha[32], hb[32], h0[32];

	a.source_case = b.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL;
	a.upload_url = b.upload_url = "http://127.0.0.1:8090/storage/v.mp4";
	a.idempotency_key = "k1";
	b.idempotency_key = "k2";	/* the key is not part of the fingerprint */
	fp(&a, ha);
	fp(&b, hb);
	cr_expect_eq(memcmp(ha, hb, 32), 0);
	memcpy(h0, ha, 32);

	/* same string, other source kind */
	b.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID;
	b.rerun_rid = b.upload_url;
	fp(&b, hb);
	cr_expect_neq(memcmp(ha, hb, 32), 0);

	/* params change it */
	pfix_init(&f);
	set_vsm(&f, 2);
	a.params = &f.p;
	fp(&a, ha);
	cr_expect_neq(memcmp(ha, h0, 32), 0);

	/* extras change it */
	a.params = NULL;
	a.extra_params = extra;
	a.n_extra_params = 1;
	fp(&a, ha);
	cr_expect_neq(memcmp(ha, h0, 32), 0);

	/* deterministic */
	fp(&a, hb);
	cr_expect_eq(memcmp(ha, hb, 32), 0);
	cr_expect_eq(gw_params_fingerprint(NULL, ha), -1);
}

/* Issue 19: the deprecated int id and the documented string name one person: the rendering's
 * fingerprint is the same for every spelling (they render the same upstream request). */
Test(params, fingerprint_tracking_forms)
{
	static const int one[] = { 1 };
	static const char *const refs[][1] = { { "001" }, { "1" }, { "01" } };
	static const char *const mid[] = { "m1" };
	Animate3d__V1__StartJobRequest r = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	struct pfix f;
	unsigned char h_legacy[32], h[32];

	r.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID;
	r.mp_detection_rid = "Mp1";
	pfix_init(&f);
	set_models(&f, 1, one, mid);
	r.params = &f.p;
	fp(&r, h_legacy);
	for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
		pfix_init(&f);
		set_models_refs(&f, 1, NULL, refs[i], mid);
		r.params = &f.p;
		fp(&r, h);
		cr_expect_eq(memcmp(h, h_legacy, 32), 0, "\"%s\"", refs[i][0]);
	}
}

/* The error for tracking_ref "000" says what a tracking id is. */
Test(params, tracking_ref_message)
{
	struct pfix f;
	char err[256] = "";

	pfix_init(&f);
	models_ref(&f, "000");
	cr_assert_eq(gw_params_validate(&f.p, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "params.models[0].tracking_ref must name a detected person: tracking ids "
			      "start at \"001\" (got \"000\")");
	pfix_init(&f);
	models_ref(&f, "1a");
	cr_assert_eq(gw_params_validate(&f.p, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "params.models[0].tracking_ref must be 1..3 digits, e.g. \"001\"");
}
