/* sim_outputs: download link groups and output file bytes. */
#include "sim_outputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sim_ids.h"
#include "sim_jobs.h"
#include "sim_models.h"
#include "sim_png.h"
#include "sim_storage.h"
#include "sim_zip.h"

#define SIM_OUTPUTS_ITEM_MAX (SIM_NAME_MAX + 16)	/* an item name: character + "_NNN" */
#define SIM_OUTPUTS_ANIM (SIM_FMT_BVH | SIM_FMT_FBX | SIM_FMT_GLB)	/* per character */
#define SIM_OUTPUTS_RENDER (SIM_FMT_MP4 | SIM_FMT_PNG | SIM_FMT_JPG)	/* of the whole scene */

static const struct { const char *ext, *ctype; } sim_outputs_types[] = {
	/* an fbx URL serves a zip holding the FBX (sim_outputs_render); the type is its member's */
	{ "bvh", "text/plain" }, { "fbx", "application/octet-stream" },
	{ "glb", "model/gltf-binary" }, { "mp4", "video/mp4" }, { "png", "image/png" },
	{ "jpg", "image/jpeg" }, { "dmpe", "application/octet-stream" },
	{ "cdsave", "application/json" },
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

static uint64_t sim_outputs_hash(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (const char *p = a; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (const char *p = b; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

/* Deterministic bytes: the format's magic, then a PRNG stream seeded by the object name. */
static void sim_outputs_placeholder(struct evbuffer *out, const char *ext, const char *name)
{
	static const unsigned char jpg[] = { 0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0 };
	static const unsigned char fbx[] = "Kaydara FBX Binary  \0\x1a\0";
	static const unsigned char glb[] = { 'g', 'l', 'T', 'F', 2, 0, 0, 0, 0x00, 0x10, 0, 0 };
	static const unsigned char mp4[] = { 0, 0, 0, 24, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm',
					     0, 0, 2, 0, 'i', 's', 'o', 'm', 'm', 'p', '4', '1' };
	uint64_t st = 1469598103934665603ull;
	size_t n = 0;

	for (const char *p = name; *p; p++)
		st = (st ^ (unsigned char)*p) * 1099511628211ull;
	if (strcmp(ext, "jpg") == 0)
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

void sim_outputs_cdsave(struct evbuffer *out, const struct sim_job *j)
{
	int frames = (int)(j->duration * j->fps), n = j->detected;

	if (frames < 1)
		frames = 1;
	if (frames > SIM_OUTPUTS_CDSAVE_MAX_FRAMES)
		frames = SIM_OUTPUTS_CDSAVE_MAX_FRAMES;
	evbuffer_add_printf(out, "{\"fps\":%.3f,\"detectionResults\":[", j->fps);
	for (int f = 0; f < frames; f++) {
		evbuffer_add_printf(out, "%s[", f ? "," : "");
		for (int k = 1; k <= n; k++) {
			/* person k stands in the k-th of n columns and sways a little from frame to frame;
			 * bbox is left, top, width, height as fractions of the frame */
			double w = 0.8 / n, l = (k - 1) * (1.0 / n) + 0.1 / n + ((f + 3 * k) % 10) * 0.002;

			evbuffer_add_printf(out, "%s{\"id\":%d,\"bbox\":[%.3f,%.3f,%.3f,%.3f]}", k > 1 ? "," : "",
					    k, l, 0.15, w, 0.8);
		}
		evbuffer_add(out, "]", 1);
	}
	evbuffer_add(out, "]}", 2);
}

/* Character name of tracked person i (0-based): its model's name made file-safe, else the
 * default character's dm_character_001. */
static void sim_outputs_character(struct sim *s, const struct sim_job *j, int i, char *out,
				  size_t outlen)
{
	const struct sim_model *m;
	const char *model;
	int t;

	sim_jobs_tracked(j, i, &t, &model);
	if (model != NULL && (m = sim_models_find(s, model, j->account)) != NULL) {
		snprintf(out, outlen, "%s", m->name);
		for (char *p = out; *p; p++)	/* the name becomes a file name in the URL */
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				*p = '_';
		return;
	}
	snprintf(out, outlen, "dm_character_001");
}

/* The item of tracked person i: its character name, suffixed _NNN in a multi-person job (v2.0
 * Download: "a character detection/tracking ID (in the format of _XXX) will be appended"). */
static void sim_outputs_item(struct sim *s, const struct sim_job *j, int i, const char *base,
			     char *out, size_t outlen)
{
	char name[SIM_NAME_MAX];
	int t;

	if (base == NULL) {
		sim_outputs_character(s, j, i, name, sizeof(name));
		base = name;
	}
	sim_jobs_tracked(j, i, &t, NULL);
	if (j->mode == 1)
		snprintf(out, outlen, "%s_%03d", base, t);
	else
		snprintf(out, outlen, "%s", base);
}

/* One file of one character: what a single download or an archive member holds. */
static void sim_outputs_file(const struct sim_job *j, const char *ext, const char *name,
			     struct evbuffer *out)
{
	if (strcmp(ext, "bvh") == 0)
		sim_outputs_bvh(out, j->processed);
	else if (strcmp(ext, "png") == 0)
		sim_png_thumb(out, sim_outputs_hash(j->rid, name));
	else
		sim_outputs_placeholder(out, ext, name);
}

/* A zip of members: every tracked person's file (all_characters), or the one file item.ext. */
static int sim_outputs_zip(struct sim *s, const struct sim_job *j, const char *item, const char *ext,
			   struct evbuffer *out)
{
	struct evbuffer *member = evbuffer_new();
	char name[SIM_OUTPUTS_ITEM_MAX], file[SIM_OUTPUTS_ITEM_MAX + 16];
	struct sim_zip z;
	int rc = -1, all = strcmp(item, SIM_OUTPUTS_ALL) == 0;
	int n = all ? sim_jobs_n_tracked(j) : 1;

	if (member == NULL)
		return -1;
	sim_zip_begin(&z, out);
	for (int i = 0; i < n; i++) {
		if (all)
			sim_outputs_item(s, j, i, strcmp(ext, "dmpe") == 0 ? "landmarks" : NULL, name,
					 sizeof(name));
		else
			snprintf(name, sizeof(name), "%s", item);
		snprintf(file, sizeof(file), "%s.%s", name, ext);
		sim_outputs_file(j, ext, file, member);
		if (sim_zip_add(&z, file, member) != 0)
			goto out;
	}
	rc = sim_zip_finish(&z);
out:
	evbuffer_free(member);
	return rc;
}

/* thumbnail_character_NNN with 1 <= NNN <= detected: the number, else -1. */
static int sim_outputs_thumb_person(const char *item, int detected)
{
	static const char prefix[] = "thumbnail_character_";
	const char *d = item + sizeof(prefix) - 1;
	int k;

	if (strncmp(item, prefix, sizeof(prefix) - 1) != 0 || strlen(d) != 3 ||
	    strspn(d, "0123456789") != 3)
		return -1;
	k = (int)strtol(d, NULL, 10);	/* three digits, checked above */
	return k >= 1 && k <= detected ? k : -1;
}

int sim_outputs_render(struct sim *s, char kind, const char *id, const char *file,
		       struct evbuffer *out, const char **ctype)
{
	const char *dot = strrchr(file, '.'), *ext;
	char item[SIM_OUTPUTS_ITEM_MAX];
	const struct sim_job *j;

	if (dot == NULL || (size_t)(dot - file) >= sizeof(item) ||
	    (*ctype = sim_outputs_content_type(dot + 1)) == NULL)
		return -1;
	ext = dot + 1;
	memcpy(item, file, (size_t)(dot - file));
	item[dot - file] = '\0';
	j = sim_jobs_find(s, id, -1);
	if (kind == 't') {
		if (strcmp(ext, "png") != 0)
			return -1;
		if (j != NULL && sim_outputs_thumb_person(item, j->detected) < 0)
			return -1;
		if (j == NULL && (strcmp(item, "thumb") != 0 || sim_models_find(s, id, -1) == NULL))
			return -1;
		return sim_png_thumb(out, sim_outputs_hash(id, item));
	}
	if (kind != 'o' || j == NULL)
		return -1;
	if (strcmp(ext, "cdsave") == 0) {
		/* the detection's result stays while the same rid animates its persons */
		if (strcmp(item, SIM_OUTPUTS_DETECTION) != 0 || j->detected == 0)
			return -1;
		sim_outputs_cdsave(out, j);
		return 0;
	}
	if (j->final != SIM_JOB_SUCCEEDED || j->mp_detection)
		return -1;
	if (strcmp(item, SIM_OUTPUTS_ALL) == 0) {
		if (j->mode != 1 || strcmp(ext, "mp4") == 0 || strcmp(ext, "png") == 0 ||
		    strcmp(ext, "jpg") == 0)
			return -1;
		*ctype = "application/zip";
		return sim_outputs_zip(s, j, item, ext, out);
	}
	if (strcmp(ext, "fbx") == 0) {
		/* an FBX download is an archive (the FBX and what it needs); clients save .fbx.zip */
		*ctype = "application/zip";
		return sim_outputs_zip(s, j, item, ext, out);
	}
	sim_outputs_file(j, ext, file, out);
	return 0;
}

/* One group {"name": item, "files": [{ext: url}...]} for the formats in mask (in SIM_FMT_*
 * order), or NULL when mask is empty. */
static json_t *sim_outputs_group(struct sim *s, const struct sim_job *j, const char *item,
				 unsigned mask, const char *only_ext)
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
	if (only_ext != NULL) {
		char path[SIM_URL_MAX], url[SIM_URL_MAX];

		snprintf(path, sizeof(path), "/storage/%s/%s/%s.%s", strcmp(only_ext, "png") == 0 ? "t" : "o",
			 j->rid, item, only_ext);
		if (sim_storage_signed_url(s, path, url, sizeof(url)) == 0)
			json_array_append_new(files, json_pack("{s:s}", only_ext, url));
	}
	if (json_array_size(files) == 0) {
		json_decref(files);
		return NULL;
	}
	return json_pack("{s:s, s:o}", "name", item, "files", files);
}

static void sim_outputs_append(json_t *urls, json_t *group)
{
	if (group != NULL)
		json_array_append_new(urls, group);
}

/* v2.0 Phase 1: "the characters_detection_result.cdsave and person thumbnails
 * (thumbnail_character_XXX.png)". */
static void sim_outputs_detection(struct sim *s, const struct sim_job *j, json_t *urls)
{
	char item[SIM_OUTPUTS_ITEM_MAX];

	sim_outputs_append(urls, sim_outputs_group(s, j, SIM_OUTPUTS_DETECTION, 0, "cdsave"));
	for (int k = 1; k <= j->detected; k++) {
		snprintf(item, sizeof(item), "thumbnail_character_%03d", k);
		sim_outputs_append(urls, sim_outputs_group(s, j, item, 0, "png"));
	}
}

json_t *sim_outputs_link(struct sim *s, const struct sim_job *j)
{
	json_t *urls, *link;
	unsigned fmts = j->params.formats;
	char item[SIM_OUTPUTS_ITEM_MAX];

	if (j->final != SIM_JOB_SUCCEEDED)
		return json_pack("{s:s}", "rid", j->rid);
	urls = json_array();
	if (j->mp_detection) {
		sim_outputs_detection(s, j, urls);
	} else if (j->mode == 0) {
		sim_outputs_character(s, j, 0, item, sizeof(item));
		sim_outputs_append(urls, sim_outputs_group(s, j, item, fmts & ~(unsigned)SIM_FMT_DMPE, NULL));
		sim_outputs_append(urls, sim_outputs_group(s, j, "landmarks", fmts & SIM_FMT_DMPE, NULL));
	} else {
		sim_outputs_character(s, j, 0, item, sizeof(item));
		sim_outputs_append(urls, sim_outputs_group(s, j, item, fmts & SIM_OUTPUTS_RENDER, NULL));
		sim_outputs_append(urls, sim_outputs_group(s, j, SIM_OUTPUTS_ALL,
							   fmts & (SIM_OUTPUTS_ANIM | SIM_FMT_DMPE), NULL));
		for (int i = 0; i < sim_jobs_n_tracked(j); i++) {
			sim_outputs_item(s, j, i, NULL, item, sizeof(item));
			sim_outputs_append(urls, sim_outputs_group(s, j, item, fmts & SIM_OUTPUTS_ANIM, NULL));
			sim_outputs_item(s, j, i, "landmarks", item, sizeof(item));
			sim_outputs_append(urls, sim_outputs_group(s, j, item, fmts & SIM_FMT_DMPE, NULL));
		}
		sim_outputs_detection(s, j, urls);
	}
	link = json_pack("{s:s, s:s, s:I, s:f, s:s, s:o}", "rid", j->rid, "name", j->file_name,
			 "size", (json_int_t)j->file_size, "duration", j->duration, "input",
			 j->input_url, "urls", urls);
	if (link != NULL)
		sim_jobs_add_mode(j, link);
	return link;
}
