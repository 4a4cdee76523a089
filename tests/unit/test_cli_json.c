/* cli/json.c: protobuf-c messages as JSON, as a table of message -> text. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "cli/json.h"

static char *dump(const ProtobufCMessage *m)
{
	json_t *j = a3d_json_from_message(m);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(j);
	return s;
}

Test(cli_json, messages)
{
	Animate3d__V1__JobStatus failed = ANIMATE3D__V1__JOB_STATUS__INIT;
	Animate3d__V1__UploadVideoRequest up = ANIMATE3D__V1__UPLOAD_VIDEO_REQUEST__INIT;
	Animate3d__V1__DownloadLink link = ANIMATE3D__V1__DOWNLOAD_LINK__INIT;
	Animate3d__V1__DownloadGroup grp = ANIMATE3D__V1__DOWNLOAD_GROUP__INIT, *grps[1] = { &grp };
	Animate3d__V1__DownloadFile file = ANIMATE3D__V1__DOWNLOAD_FILE__INIT, *files[1] = { &file };
	Animate3d__V1__StartJobRequest start = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	char *formats[2] = { "bvh", "fbx" };
	Animate3d__V1__Params params = ANIMATE3D__V1__PARAMS__INIT;
	uint8_t bytes[4] = { 'a', 'b', 'c', 'd' };

	failed.rid = "r1";
	failed.state = ANIMATE3D__V1__JOB_STATE__FAILURE;
	failed.step = 3;
	failed.total = 10;
	failed.error_code = ANIMATE3D__V1__JOB_ERROR__JOB_ERROR_NO_CHARACTER_DETECTED;
	failed.error_message = "Failed to \"detect\"";
	up.name = "x";
	up.size = 4;
	up.chunk.data = bytes;
	up.chunk.len = 4;
	file.format = "bvh";
	file.url = "http://h/x.bvh";
	grp.name = "dm";
	grp.n_files = 1;
	grp.files = files;
	link.rid = "r2";
	link.n_groups = 1;
	link.groups = grps;
	link.mode_opt_case = ANIMATE3D__V1__DOWNLOAD_LINK__MODE_OPT_MODE;
	link.mode = 0;
	params.n_formats = 2;
	params.formats = formats;
	params.track_face_opt_case = ANIMATE3D__V1__PARAMS__TRACK_FACE_OPT_TRACK_FACE;
	params.track_face = 1;
	start.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID;
	start.rerun_rid = "r3";
	start.params = &params;

	const struct {
		const ProtobufCMessage *m;
		const char *want;
	} rows[] = {
		{ &failed.base,
		  "{\"error_code\":\"JOB_ERROR_NO_CHARACTER_DETECTED\",\"error_message\":\"Failed to \\\"detect\\\"\","
		  "\"error_type\":\"\",\"input_file\":\"\",\"output_file\":\"\",\"position_in_queue\":0,"
		  "\"rid\":\"r1\",\"state\":\"FAILURE\",\"step\":3,\"total\":10}" },
		/* bytes as base64 */
		{ &up.base, "{\"chunk\":\"YWJjZA==\",\"name\":\"x\",\"size\":4}" },
		/* nested repeated messages; the oneof mode written because it is set, even as 0 */
		{ &link.base,
		  "{\"duration\":0.0,\"groups\":[{\"files\":[{\"format\":\"bvh\",\"url\":\"http://h/x.bvh\"}],"
		  "\"kind\":\"DOWNLOAD_GROUP_CHARACTER\",\"name\":\"dm\",\"tracking_id\":\"\"}],\"input\":\"\","
		  "\"mode\":0,\"models\":[],\"name\":\"\",\"rid\":\"r2\",\"size\":0}" },
		/* only the oneof member that is set; unset sub-messages left out */
		{ &start.base,
		  "{\"extra_params\":[],\"idempotency_key\":\"\",\"params\":{\"camera\":\"\",\"config\":\"\","
		  "\"foot_locking_mode\":\"FOOT_LOCKING_MODE_UNSPECIFIED\",\"formats\":[\"bvh\",\"fbx\"],"
		  "\"model_id\":\"\",\"models\":[],\"pipeline\":\"\",\"track_face\":true},\"rerun_rid\":\"r3\"}" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *got = dump(rows[i].m);

		cr_expect_str_eq(got, rows[i].want, "row %zu: %s", i, got);
		free(got);
	}
}
