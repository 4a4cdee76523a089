/* sim_outputs: download link groups and output file bytes. */
#include "sim_outputs.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_ids.h"
#include "sim_jobs.h"
#include "sim_models.h"
#include "sim_storage.h"

static const struct { const char *ext, *ctype; } sim_outputs_types[] = {
	{ "bvh", "text/plain" }, { "fbx", "application/octet-stream" },
	{ "glb", "model/gltf-binary" }, { "mp4", "video/mp4" }, { "png", "image/png" },
	{ "jpg", "image/jpeg" }, { "dmpe", "application/octet-stream" },
};

const char *sim_outputs_content_type(const char *ext)
{
	for (size_t i = 0; i < sizeof(sim_outputs_types) / sizeof(sim_outputs_types[0]); i++)
		if (strcmp(ext, sim_outputs_types[i].ext) == 0)
			return sim_outputs_types[i].ctype;
	return NULL;
}

void sim_outputs_bvh(struct evbuffer *out, double duration)
{
	static const char *const joints[] = { "Spine", "Neck", "Head" };
	int frames = (int)(duration * SIM_OUTPUTS_BVH_FPS);

	if (frames < 1)
		frames = 1;
	if (frames > SIM_OUTPUTS_MAX_FRAMES)
		frames = SIM_OUTPUTS_MAX_FRAMES;
	evbuffer_add_printf(out, "HIERARCHY\nROOT Hips\n{\n\tOFFSET 0.00 0.00 0.00\n"
			    "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n");
	for (int i = 0; i < 3; i++)
		evbuffer_add_printf(out, "%*sJOINT %s\n%*s{\n%*sOFFSET 0.00 10.00 0.00\n"
				    "%*sCHANNELS 3 Zrotation Xrotation Yrotation\n", i + 1, "", joints[i],
				    i + 1, "", i + 2, "", i + 2, "");
	evbuffer_add_printf(out, "%*sEnd Site\n%*s{\n%*sOFFSET 0.00 5.00 0.00\n%*s}\n", 4, "", 4, "", 5,
			    "", 4, "");
	for (int i = 2; i >= 0; i--)
		evbuffer_add_printf(out, "%*s}\n", i + 1, "");
	evbuffer_add_printf(out, "}\nMOTION\nFrames: %d\nFrame Time: %.6f\n", frames,
			    1.0 / SIM_OUTPUTS_BVH_FPS);
	for (int f = 0; f < frames; f++) {
		double a = (double)(f % 60) - 30.0;

		evbuffer_add_printf(out, "0.00 90.00 0.00 0.00 0.00 %.2f %.2f 0.00 0.00 %.2f 0.00 0.00 "
				    "0.00 0.00 %.2f\n", a, a / 2, a / 3, a / 4);
	}
}

/* Deterministic bytes: the format's magic, then a PRNG stream seeded by the object name. */
static void sim_outputs_placeholder(struct evbuffer *out, const char *ext, const char *name)
{
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	static const unsigned char jpg[] = { 0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0 };
	static const unsigned char fbx[] = "Kaydara FBX Binary  \0\x1a\0";
	static const unsigned char glb[] = { 'g', 'l', 'T', 'F', 2, 0, 0, 0, 0x00, 0x10, 0, 0 };
	static const unsigned char mp4[] = { 0, 0, 0, 24, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm',
					     0, 0, 2, 0, 'i', 's', 'o', 'm', 'm', 'p', '4', '1' };
	uint64_t st = 1469598103934665603ull;
	size_t n = 0;

	for (const char *p = name; *p; p++)
		st = (st ^ (unsigned char)*p) * 1099511628211ull;
	if (strcmp(ext, "png") == 0)
		evbuffer_add(out, png, n = sizeof(png));
	else if (strcmp(ext, "jpg") == 0)
		evbuffer_add(out, jpg, n = sizeof(jpg));
	else if (strcmp(ext, "fbx") == 0)
		evbuffer_add(out, fbx, n = sizeof(fbx) - 1);
	else if (strcmp(ext, "glb") == 0)
		evbuffer_add(out, glb, n = sizeof(glb));
	else if (strcmp(ext, "mp4") == 0)
		evbuffer_add(out, mp4, n = sizeof(mp4));
	else
		n = (size_t)evbuffer_add_printf(out, "DMPE1\n");
	while (n < SIM_OUTPUTS_PLACEHOLDER_BYTES) {
		uint64_t r = sim_ids_rand(&st);

		evbuffer_add(out, &r, sizeof(r));
		n += sizeof(r);
	}
	if (strcmp(ext, "jpg") == 0)
		evbuffer_add(out, "\xff\xd9", 2);
}

int sim_outputs_render(struct sim *s, char kind, const char *id, const char *file,
		       struct evbuffer *out, const char **ctype)
{
	const char *dot = strrchr(file, '.');
	const struct sim_job *j;

	if (dot == NULL || (*ctype = sim_outputs_content_type(dot + 1)) == NULL)
		return -1;
	if (kind == 't') {
		if (strcmp(dot + 1, "png") != 0 ||
		    (sim_jobs_find(s, id, -1) == NULL && sim_models_find(s, id, -1) == NULL))
			return -1;
		sim_outputs_placeholder(out, "png", id);
		return 0;
	}
	if (kind != 'o' || (j = sim_jobs_find(s, id, -1)) == NULL || j->final != SIM_JOB_SUCCEEDED)
		return -1;
	if (strcmp(dot + 1, "bvh") == 0)
		sim_outputs_bvh(out, j->processed);
	else
		sim_outputs_placeholder(out, dot + 1, file);
	return 0;
}

/* One group {"name": item, "files": [{ext: url}...]} for the formats in mask. */
static json_t *sim_outputs_group(struct sim *s, const struct sim_job *j, const char *item,
				 unsigned mask)
{
	json_t *files = json_array();

	for (int b = 0; b < SIM_FMT_COUNT; b++) {
		const char *ext = sim_params_format_ext(1u << b);
		char path[SIM_URL_MAX], url[SIM_URL_MAX];

		if (!(mask & (1u << b)))
			continue;
		snprintf(path, sizeof(path), "/storage/o/%s/%s.%s", j->rid, item, ext);
		if (sim_storage_signed_url(s, path, url, sizeof(url)) == 0)
			json_array_append_new(files, json_pack("{s:s}", ext, url));
	}
	return json_pack("{s:s, s:o}", "name", item, "files", files);
}

/* Character name of person i (1-based): its model's name, else dm_character_NNN. */
static void sim_outputs_character(struct sim *s, const struct sim_job *j, int i, char *out,
				  size_t outlen)
{
	const char *model = NULL;
	const struct sim_model *m;

	for (int k = 0; k < j->params.n_models; k++)
		if (j->params.models[k].tracking_id == i)
			model = j->params.models[k].model_id;
	if (model == NULL && i == 1 && j->params.model[0] != '\0')
		model = j->params.model;
	if (model != NULL && (m = sim_models_find(s, model, j->account)) != NULL) {
		snprintf(out, outlen, "%s", m->name);
		for (char *p = out; *p; p++)	/* the name becomes a file name in the URL */
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				*p = '_';
		return;
	}
	snprintf(out, outlen, "dm_character_%03d", i);
}

json_t *sim_outputs_link(struct sim *s, const struct sim_job *j)
{
	json_t *urls;
	unsigned fmts = j->params.formats & ~(unsigned)SIM_FMT_DMPE;
	char name[SIM_NAME_MAX], item[SIM_NAME_MAX + 16];

	if (j->final != SIM_JOB_SUCCEEDED)
		return json_pack("{s:s}", "rid", j->rid);
	urls = json_array();
	sim_outputs_character(s, j, 1, name, sizeof(name));
	json_array_append_new(urls, sim_outputs_group(s, j, name, fmts));
	if (j->persons > 1 && !j->mp_detection) {
		json_array_append_new(urls, sim_outputs_group(s, j, "all_characters", fmts));
		for (int i = 1; i <= j->persons; i++) {
			sim_outputs_character(s, j, i, name, sizeof(name));
			snprintf(item, sizeof(item), "%s_%03d", name, i);
			json_array_append_new(urls, sim_outputs_group(s, j, item, fmts));
		}
	}
	if (j->params.formats & SIM_FMT_DMPE)
		json_array_append_new(urls, sim_outputs_group(s, j, "landmarks", SIM_FMT_DMPE));
	return json_pack("{s:s, s:s, s:I, s:f, s:s, s:o}", "rid", j->rid, "name", j->file_name,
			 "size", (json_int_t)j->file_size, "duration", j->duration, "input",
			 j->input_url, "urls", urls);
}
