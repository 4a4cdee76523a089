#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/ (committed; rerun when the contract changes).

usage: /usr/bin/python3 tests/fuzz/make_seeds.py <dir with generated *_pb2.py (build/py)> [target...]
With targets named (e.g. sim_request webhook_in), only their corpora are written; those two need
no generated stubs ("-" for the dir).
Each seed of grpc_request / upstream_json starts with the index of its row among the rows with an
upstream half, in gateway/methods.c order (ROWS below; tests/unit/test_translate.c checks the order);
each seed of sim_request starts with the parser selector byte of fuzz_sim_request.c.
"""
import os, sys
ONLY = set(sys.argv[2:])
def wanted(target):
    return not ONLY or target in ONLY
if wanted("grpc_request") or wanted("upstream_json") or wanted("reflection"):
    sys.path.insert(0, sys.argv[1])
    from animate3d.v1 import jobs_pb2 as J, characters_pb2 as C, webhooks_pb2 as W, account_pb2 as A

ROWS = ["GetUploadUrl", "StartJob", "GetStatus", "GetDownloadUrls", "ListJobs", "GetVideoInfo",
        "GetPersonUrls", "GetModelUploadUrl", "StoreModel", "ListModels", "DeleteModel", "CreateEndpoint",
        "GetEndpoint", "ListEndpoints", "UpdateEndpoint", "DeleteEndpoint", "GetCreditBalance",
        "GetMinutesBalance"]
here = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

rid = "4Zx9bQ2mKpTr7VwYcHnE3a"
def proto_seeds():
    url = "http://127.0.0.1:8091/b/u/clip.mp4?X-Goog-Date=20261128T071500Z&X-Goog-Expires=3600&X-Goog-Signature=ab"
    p = J.Params(formats=["bvh", "fbx", "mp4"], model_id="m1", sim=True, track_face=False,
                 foot_locking_mode=J.FOOT_LOCKING_GROUNDING, video_speed_multiplier=2.0,
                 pose_filtering_strength=0.5, root_at_origin=True, trim=J.Trim(from_s=1, to_s=2.5),
                 crop=J.Crop(left=0.1, top=0.1, right=0.9, bottom=0.9),
                 render=J.Render(sbs=False, bg_color=J.Color(r=0, g=177, b=64, a=0), backdrop="studio",
                                 shadow=True, include_audio=False, cam_mode=J.CAM_MODE_FACE))
    reqs = {
        "GetUploadUrl": [J.GetUploadUrlRequest(name="clip.mp4", resumable=True)],
        "StartJob": [J.StartJobRequest(upload_url=url, params=p, extra_params=["poseEstimation.x=1"],
                                       idempotency_key="k1"),
                     J.StartJobRequest(rerun_rid=rid),
                     J.StartJobRequest(mp_detection_rid=rid, params=J.Params(models=[
                         J.TrackedModel(tracking_id=1, model_id="m1")])),
                     # issue 19: the documented string ids (and a deprecated int beside one),
                     # the deprecated camera beside render.cam_mode
                     J.StartJobRequest(mp_detection_rid=rid, params=J.Params(camera="fixed",
                         render=J.Render(cam_mode=J.CAM_MODE_FIXED), models=[
                         J.TrackedModel(tracking_ref="001", model_id="m1"),
                         J.TrackedModel(tracking_ref="02", tracking_id=2, model_id="m2")]))],
        "GetStatus": [J.GetStatusRequest(rids=[rid, "x" * 22])],
        "GetDownloadUrls": [J.GetDownloadUrlsRequest(rids=[rid])],
        "ListJobs": [J.ListJobsRequest(states=[J.PROGRESS, J.SUCCESS])],
        "GetVideoInfo": [J.GetVideoInfoRequest(upload_url=url)],
        "GetPersonUrls": [J.GetPersonUrlsRequest(rid=rid)],
        "GetModelUploadUrl": [C.GetModelUploadUrlRequest(name="hero", model_ext="fbx", thumb_ext="png")],
        "StoreModel": [C.StoreModelRequest(model_url=url, model_name="hero", create_thumb=True)],
        "ListModels": [C.ListModelsRequest(search_token="he", include_stock=True)],
        "DeleteModel": [C.DeleteModelRequest(model_id="m1")],
        "CreateEndpoint": [W.CreateEndpointRequest(url="https://example.test/h", events=["job.completed"])],
        "GetEndpoint": [W.GetEndpointRequest(id="e1")],
        "ListEndpoints": [W.ListEndpointsRequest()],
        "UpdateEndpoint": [W.UpdateEndpointRequest(id="e1", url="https://example.test/h2",
                                                   events=["job.completed"])],
        "DeleteEndpoint": [W.DeleteEndpointRequest(id="e1")],
        "GetCreditBalance": [A.GetCreditBalanceRequest()],
        "GetMinutesBalance": [A.GetMinutesBalanceRequest()],
    }
    for i, name in enumerate(ROWS):
        for j, m in enumerate(reqs[name]):
            put("grpc_request", "%02d-%s-%d" % (i, name, j), bytes([i]) + m.SerializeToString())

    # Issue 13: requests at and beyond the field table's limits (gateway/api/validate.c), NULs,
    # repeated singular fields and unknown-field floods, for the scan in front of the rows.
    limits = {
        "ListJobs": [("states-cap", J.ListJobsRequest(states=[J.SUCCESS, J.PROGRESS] * 8).SerializeToString()),
                     ("states-flood", b"\x0a\xe8\x07" + b"\x02" * 1000),
                     ("states-unpacked", b"\x08\x01" * 17)],
        "GetStatus": [("rids-over", J.GetStatusRequest(rids=["r%d" % k for k in range(101)]).SerializeToString()),
                      ("rid-nul", J.GetStatusRequest(rids=[rid, "a\x00b"]).SerializeToString()),
                      ("unknown-flood", b"\x98\x06\x00" * 65 + b"\x0a\x02r1")],
        "GetUploadUrl": [("name-dotdot", J.GetUploadUrlRequest(name="..").SerializeToString()),
                         ("name-repeated", b"\x0a\x01a" * 5)],
        "StartJob": [("models-over", J.StartJobRequest(mp_detection_rid=rid, params=J.Params(models=[
                          J.TrackedModel(tracking_id=k, model_id="m") for k in range(17)])).SerializeToString()),
                     ("extra-over", J.StartJobRequest(rerun_rid=rid, extra_params=["k%d=1" % k for k in range(33)]).SerializeToString()),
                     ("model-nul", J.StartJobRequest(upload_url=url, params=J.Params(models=[
                          J.TrackedModel(tracking_id=1, model_id="m\x00")])).SerializeToString()),
                     ("tracking-ref-bad", J.StartJobRequest(mp_detection_rid=rid, params=J.Params(models=[
                          J.TrackedModel(tracking_ref="1a", model_id="m"),
                          J.TrackedModel(tracking_ref="000", model_id="m")])).SerializeToString()),
                     ("params-twice", J.StartJobRequest(rerun_rid=rid, params=J.Params(formats=["bvh"])).SerializeToString()
                      + J.StartJobRequest(params=J.Params(formats=["fbx"])).SerializeToString())],
        "DeleteModel": [("id-dotdot", C.DeleteModelRequest(model_id="../x").SerializeToString())],
        "GetPersonUrls": [("rid-dotdot", J.GetPersonUrlsRequest(rid="../x").SerializeToString())],
        "CreateEndpoint": [("events-over", W.CreateEndpointRequest(url="https://example.test/h",
                                                                   events=["job.completed"] * 9).SerializeToString())],
    }
    for i, name in enumerate(ROWS):
        for label, data in limits.get(name, []):
            put("grpc_request", "%02d-%s-%s" % (i, name, label), bytes([i]) + data)

    bodies = {
        "GetUploadUrl": ['{"url":"%s"}' % url],
        "StartJob": ['{"rid":"%s"}' % rid],
        "GetStatus": ['{"count":2,"status":[{"rid":"%s","status":"PROGRESS","details":{"step":3,"total":100,"positionInQueue":0}},'
                      '{"rid":"x","status":"FAILURE","details":{"exc_message":"Error 513: Failed","exc_type":"E"}}]}' % rid],
        "GetDownloadUrls": ['{"count":1,"links":[{"rid":"%s","name":"clip","size":10,"duration":2.0,"input":"%s",'
                            '"urls":[{"name":"dm_character_001","files":[{"bvh":"%s"},{"fbx":"%s"}]}]}]}' % (rid, url, url, url),
                            # issue 19: a detection run, then the multi-person outputs of the same rid
                            '{"count":1,"links":[{"rid":"%s","mode":1,"models":[],"urls":[{"name":"characters_detection_result",'
                            '"files":[{"cdsave":"%s"}]},{"name":"thumbnail_character_001","files":[{"png":"%s"}]}]}]}' % (rid, url, url),
                            '{"count":1,"links":[{"rid":"%s","mode":1,"models":[{"trackingId":"001","modelId":"m1","faceDataType":1,'
                            '"handDataType":false},{"trackingId":2,"modelId":null}],"urls":[{"name":"Hero_001","files":[{"bvh":"%s"}]},'
                            '{"name":"landmarks_002","files":[{"dmpe":"%s"}]},{"name":"all_characters","files":[{"bvh":"%s"}]}]}]}'
                            % (rid, url, url, url)],
        "ListJobs": ['{"count":1,"list":[{"rid":"%s","fileName":"a.mp4","fileSize":5,"fileDuration":2,"status":"SUCCESS","ctime":1,"mtime":2}]}' % rid,
                     '{"count":2,"list":[{"rid":"%s","status":"SUCCESS","mode":1,"models":[{"trackingId":"001","modelId":"m1",'
                     '"faceDataType":0,"handDataType":1}]},{"rid":"b","status":"STARTING"}]}' % rid],
        "GetVideoInfo": ['{"width":64,"height":48,"fps":10,"duration":2,"codec":"h264","size":3000}'],
        # v2.0 PeSave API 1's example, and a saved version with an integer id
        "GetPersonUrls": ['[{"trackingId": "001", "modifiedVersionReadUrl": null, "modifiedVersionWriteUrl": "<URL>"},'
                          ' {"trackingId": "002", "modifiedVersionReadUrl": null, "modifiedVersionWriteUrl": "<URL>"}]',
                          '[{"trackingId":1,"modifiedVersionReadUrl":"%s","modifiedVersionWriteUrl":"%s"}]' % (url, url)],
        "GetModelUploadUrl": ['{"modelUrl":"%s","thumbUrl":"%s"}' % (url, url)],
        "StoreModel": ['{"modelId":"m1"}'],
        "ListModels": ['{"list":[{"id":"m1","name":"hero","thumb":"","rigId":"r","ctime":1,"mtime":2,"platform":"deepmotion"}]}',
                       '[{"Id":"m1","name":"hero"}]'],
        "DeleteModel": ['{"count":1}'],
        "CreateEndpoint": ['{"id":"e1","object":"webhook_endpoint","url":"https://x/h","events":["job.completed"]}'],
        "GetEndpoint": ['{"id":"e1","object":"webhook_endpoint","url":"https://x/h","events":["job.completed"]}'],
        "ListEndpoints": ['{"count":1,"endpoints":[{"id":"e1","object":"webhook_endpoint","url":"https://x/h","events":["job.completed"]}]}'],
        "UpdateEndpoint": ['{"id":"e1","object":"webhook_endpoint","url":"https://x/h","events":["job.completed"]}'],
        "DeleteEndpoint": ['{"id":"e1","object":"webhook_endpoint","deleted":true}'],
        "GetCreditBalance": ['{"credits":997.5}'],
        "GetMinutesBalance": ['{"minutes":12}'],
    }
    for i, name in enumerate(ROWS):
        for j, b in enumerate(bodies[name]):
            put("upstream_json", "%02d-%s-%d" % (i, name, j), bytes([i]) + b.encode())
        put("upstream_json", "%02d-%s-garbage" % (i, name), bytes([i]) + b'{"count":"x",')

if wanted("grpc_request") or wanted("upstream_json"):
    proto_seeds()

if wanted("retry_after"):
    for j, v in enumerate(["2", "0", "120", "Wed, 21 Oct 2026 07:28:00 GMT", "Wednesday, 21-Oct-26 07:28:00 GMT",
                           "Wed Oct 21 07:28:00 2026", "-1", "99999999999999999999", "soon"]):
        put("retry_after", "seed-%d" % j, v.encode())

# sim_request: selector byte (see fuzz_sim_request.c) + what a client sends the simulator.
SIM_PARAMS_JSON, SIM_PARAMS_LINES, SIM_RANGE, SIM_BASIC, SIM_COOKIE, SIM_QUERY, SIM_SIGNED, SIM_MP4 = range(8)
if wanted("sim_request"):
    import base64, json
    params = ["formats=bvh,fbx,glb,mp4,png,jpg,dmpe", "model=m1", "sim=1", "trackFace=0", "trackHand=1",
              "render.camera=closeup", "poseEstimation.footLockingMode=grounding",
              "videoSpeedMultiplier=2.5", "poseFilteringStrength=0.5", "rootAtOrigin=true",
              "upperBodyOnly=false", "trim=1,2.5", "crop=0.1,0.1,0.9,0.9", "render.sbs=0",
              "render.bgColor=0,177,64,0", "render.backdrop=studio", "render.shadow=1",
              "render.includeAudio=0", "render.CamMode=2", "config=configDefault"]
    sims = {
        "params-all": (SIM_PARAMS_JSON, json.dumps(params)),
        "params-models": (SIM_PARAMS_JSON, json.dumps(['models=[{"trackingId":1,"modelId":"m1"},{"trackingId":2,"modelId":"m2"}]'])),
        "params-mp": (SIM_PARAMS_JSON, json.dumps(["pipeline=mp_detection"])),
        "params-bad": (SIM_PARAMS_JSON, json.dumps(["trim=5,2", "formats=avi", 3])),
        "params-lines": (SIM_PARAMS_LINES, "\n".join(params)),
        "params-lines-bad": (SIM_PARAMS_LINES, "crop=0.9,0,0.1,1\nrender.bgColor=300,0,0,0\n=x\nnope"),
        "range-chunk": (SIM_RANGE, "bytes 0-262143/1048576"),
        "range-star": (SIM_RANGE, "bytes 262144-524287/*"),
        "range-status": (SIM_RANGE, "bytes */1048576"),
        "range-bad": (SIM_RANGE, "bytes 10-2/5"),
        "basic-ok": (SIM_BASIC, "Basic " + base64.b64encode(b"demo-client-id:demo-client-secret").decode()),
        "basic-pad": (SIM_BASIC, "Basic " + base64.b64encode(b"a:b").decode()),
        "basic-nocolon": (SIM_BASIC, "Basic " + base64.b64encode(b"nocolon").decode()),
        "cookie-sdk": (SIM_COOKIE, "dmsess=4Zx9bQ2mKpTr7VwYcHnE3a4Zx9bQ2mKpTr7VwYcHnE3a12; Path"),
        "cookie-many": (SIM_COOKIE, "a=b; other=1, dmsess=v1;dmsess=v2"),
        "query-upload": (SIM_QUERY, "name=clip%20one.mp4&resumable=0&fileSize=123"),
        "query-form": (SIM_QUERY, "name=a+b%2Fc&upload_id=xyz&X-Goog-Date=20261128T071500Z"),
        "query-bad": (SIM_QUERY, "name=%zz&resumable=%4"),
        "signed-url": (SIM_SIGNED, "/storage/u/abc/clip.mp4\0X-Goog-Algorithm=GOOG4-RSA-SHA256&"
                       "X-Goog-Date=20261128T071500Z&X-Goog-Expires=3600&X-Goog-Signature=" + "ab" * 32),
        "signed-url-nodate": (SIM_SIGNED, "/storage/o/rid/x.bvh\0X-Goog-Expires=60&X-Goog-Signature=00"),
    }
    for name, (sel, text) in sims.items():
        put("sim_request", name, bytes([sel]) + text.encode())
    with open(os.path.join(here, "..", "sim", "fixtures", "tiny.mp4"), "rb") as f:
        mp4 = f.read()
    put("sim_request", "mp4-tiny", bytes([SIM_MP4]) + mp4)
    put("sim_request", "mp4-truncated", bytes([SIM_MP4]) + mp4[:200])

# webhook_in: "path NUL signature NUL body", as fuzz_webhook_in.c splits it.
if wanted("webhook_in"):
    ok = '{"eventType":"job.completed","data":{"taskId":"%s","status":"success"}}' % rid
    hooks = {
        "ok": ("/webhooks/animate3d/main", "demo-client-id", ok),
        "failure": ("/webhooks/animate3d/other", "other-client",
                    '{"eventType":"job.completed","data":{"taskId":"r-1_x","status":"failure"}}'),
        "ignored": ("/webhooks/animate3d/main", "demo-client-id", '{"eventType":"job.started"}'),
        "forged": ("/webhooks/animate3d/main", "demo-client-iX", ok),
        "no-account": ("/webhooks/animate3d/nobody", "demo-client-id", ok),
        "bad-rid": ("/webhooks/animate3d/main", "demo-client-id",
                    '{"eventType":"job.completed","data":{"taskId":"a/b","status":"success"}}'),
        "deep": ("/webhooks/animate3d/main", "demo-client-id", '{"eventType":"x","a":' + "[" * 12 + "]" * 12 + "}"),
        "dup-keys": ("/webhooks/animate3d/main", "demo-client-id",
                     '{"eventType":"job.completed","eventType":"job.completed","data":{}}'),
    }
    for name, (path, sig, body) in hooks.items():
        put("webhook_in", name, ("%s\0%s\0%s" % (path, sig, body)).encode())

# reflection: selector 0 + a descriptor set (hand-made: nesting, an import, an extension, a file
# without a package), selector 1 + a ServerReflectionRequest (fuzz_reflection.c).
if wanted("reflection"):
    import grpc
    from google.protobuf import descriptor_pb2 as D
    grpc.__path__.append(os.path.join(sys.argv[1], "grpc"))
    from grpc.reflection.v1 import reflection_pb2 as R
    a = D.FileDescriptorProto(name="a.proto", package="p")
    m = a.message_type.add(name="M")
    m.field.add(name="x", number=1, type=D.FieldDescriptorProto.TYPE_INT32,
                label=D.FieldDescriptorProto.LABEL_OPTIONAL)
    m.extension_range.add(start=100, end=200)
    inner = m.nested_type.add(name="Inner")
    e = inner.enum_type.add(name="E")
    e.value.add(name="V", number=0)
    a.extension.add(name="ext", number=100, extendee=".p.M", type=D.FieldDescriptorProto.TYPE_INT32,
                    label=D.FieldDescriptorProto.LABEL_OPTIONAL)
    b = D.FileDescriptorProto(name="b.proto", package="q", dependency=["a.proto"])
    svc = b.service.add(name="S")
    svc.method.add(name="Call", input_type=".p.M", output_type=".p.M")
    c = D.FileDescriptorProto(name="c.proto", dependency=["b.proto", "a.proto"])
    c.message_type.add(name="Top")
    sets = {"abc": [a, b, c], "a": [a], "b-before-a": [b, a], "twice": [a, a]}
    for name, files in sets.items():
        put("reflection", "set-" + name, b"\0" + D.FileDescriptorSet(file=files).SerializeToString())
    put("reflection", "set-cut", b"\0" + D.FileDescriptorSet(file=[a, b]).SerializeToString()[:-7])
    reqs = {
        "list": R.ServerReflectionRequest(host="h", list_services="*"),
        "file": R.ServerReflectionRequest(file_by_filename="animate3d/v1/jobs.proto"),
        "symbol": R.ServerReflectionRequest(file_containing_symbol="animate3d.v1.Jobs.GetStatus"),
        "nested": R.ServerReflectionRequest(
            file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus"),
        "unknown": R.ServerReflectionRequest(file_containing_symbol="animate3d.v1.Nope"),
        "extension": R.ServerReflectionRequest(file_containing_extension=R.ExtensionRequest(
            containing_type="animate3d.v1.GetStatusRequest", extension_number=100)),
        "numbers": R.ServerReflectionRequest(all_extension_numbers_of_type="animate3d.v1.Params"),
        "none": R.ServerReflectionRequest(host="h"),
    }
    for name, m in reqs.items():
        put("reflection", "req-" + name, b"\1" + m.SerializeToString())
