#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/ (committed; rerun when the contract changes).

usage: /usr/bin/python3 tests/fuzz/make_seeds.py <dir with generated *_pb2.py (build/py)>
Each seed of grpc_request / upstream_json starts with the row index byte of gateway/translate.c.
"""
import os, sys
sys.path.insert(0, sys.argv[1])
from animate3d.v1 import jobs_pb2 as J, characters_pb2 as C, webhooks_pb2 as W, account_pb2 as A

ROWS = ["GetUploadUrl", "StartJob", "GetStatus", "GetDownloadUrls", "ListJobs", "GetVideoInfo",
        "GetModelUploadUrl", "StoreModel", "ListModels", "DeleteModel", "CreateEndpoint",
        "GetEndpoint", "ListEndpoints", "UpdateEndpoint", "DeleteEndpoint", "GetCreditBalance",
        "GetMinutesBalance"]
here = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

rid = "4Zx9bQ2mKpTr7VwYcHnE3a"
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
                     J.TrackedModel(tracking_id=1, model_id="m1")]))],
    "GetStatus": [J.GetStatusRequest(rids=[rid, "x" * 22])],
    "GetDownloadUrls": [J.GetDownloadUrlsRequest(rids=[rid])],
    "ListJobs": [J.ListJobsRequest(states=[J.PROGRESS, J.SUCCESS])],
    "GetVideoInfo": [J.GetVideoInfoRequest(upload_url=url)],
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

bodies = {
    "GetUploadUrl": ['{"url":"%s"}' % url],
    "StartJob": ['{"rid":"%s"}' % rid],
    "GetStatus": ['{"count":2,"status":[{"rid":"%s","status":"PROGRESS","details":{"step":3,"total":100,"positionInQueue":0}},'
                  '{"rid":"x","status":"FAILURE","details":{"exc_message":"Error 513: Failed","exc_type":"E"}}]}' % rid],
    "GetDownloadUrls": ['{"count":1,"links":[{"rid":"%s","name":"clip","size":10,"duration":2.0,"input":"%s",'
                        '"urls":[{"name":"dm_character_001","files":[{"bvh":"%s"},{"fbx":"%s"}]}]}]}' % (rid, url, url, url)],
    "ListJobs": ['{"count":1,"list":[{"rid":"%s","fileName":"a.mp4","fileSize":5,"fileDuration":2,"status":"SUCCESS","ctime":1,"mtime":2}]}' % rid],
    "GetVideoInfo": ['{"width":64,"height":48,"fps":10,"duration":2,"codec":"h264","size":3000}'],
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

for j, v in enumerate(["2", "0", "120", "Wed, 21 Oct 2026 07:28:00 GMT", "Wednesday, 21-Oct-26 07:28:00 GMT",
                       "Wed Oct 21 07:28:00 2026", "-1", "99999999999999999999", "soon"]):
    put("retry_after", "seed-%d" % j, v.encode())
