"""Issue 19: the v2.0 multi-person flow through the gateway, end to end against the simulator.

Phase 1: a video named persons-3 (tests/sim/README.md failure hooks) -> StartJob
pipeline=mp_detection -> WatchStatus to SUCCESS -> GetDownloadUrls lists the detection result
(characters_detection_result.cdsave: downloaded through its signed URL, its detectionResults name
persons 1, 2, 3) and three person thumbnails, as first-class groups. Phase 2: StartJob with
mp_detection_rid and the documented string tracking ids "001", "002" -> the same rid -> SUCCESS ->
per-person outputs (_001, _002) with their person, mode 1 and models on the link and in
ListJobs; GetPersonUrls lists the two tracked persons with write URLs, and a PUT to one sets its
read URL. Around it: malformed tracking refs are INVALID_ARGUMENT naming the field before
anything goes upstream, another tenant's rid is NOT_FOUND exactly like an unknown one, a
read-only key may not have write URLs, a single-person job has the one person "001", and a queued
job is listed as STARTING (not finished).

Two stacks: the module's simulator (jobs take 1 s) and, for STARTING, one whose jobs stay queued
for two minutes.
"""
import json

import grpc
import pytest

import harness
from harness import characters_pb2, jobs_pb2

CALL_S = 5
WATCH_S = 20                      # a 1 s job, on a loaded 2-core machine
FAKE_RID = "1111111111111111111111"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = jobs_pb2


def _video():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _code(fn, req, tenant="team-a"):
    try:
        fn(req, timeout=CALL_S, metadata=harness.Gateway.md(tenant))
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def _watch_success(gw, rid):
    """WatchStatus until rid is SUCCESS (bounded); -> the JobStatus."""
    seen = []
    call = gw.jobs.WatchStatus(K.WatchStatusRequest(rids=[rid]), timeout=WATCH_S, metadata=gw.md())
    try:
        for st in call:
            seen.append(K.JobState.Name(st.state))
            assert st.state != K.FAILURE, st
            if st.state == K.SUCCESS:
                return st
    finally:
        call.cancel()
    raise AssertionError("WatchStatus(%s) ended without SUCCESS: %s" % (rid, seen))


def _link(gw, rid, tenant="team-a"):
    r = gw.jobs.GetDownloadUrls(K.GetDownloadUrlsRequest(rids=[rid]), timeout=CALL_S,
                                metadata=gw.md(tenant))
    assert [l.rid for l in r.links] == [rid], r
    return r.links[0]


def _groups(link, kind):
    return [g for g in link.groups if g.kind == kind]


def _stock_models(gw):
    r = gw.characters.ListModels(characters_pb2.ListModelsRequest(include_stock=True), timeout=CALL_S,
                                 metadata=gw.md())
    stock = [m.id for m in r.models if m.platform in ("deepmotion", "roblox")]
    assert len(stock) >= 2, r
    return stock[:2]


def _persons(gw, rid):
    r = gw.jobs.GetPersonUrls(K.GetPersonUrlsRequest(rid=rid), timeout=CALL_S, metadata=gw.md())
    return {p.tracking_id: p for p in r.persons}


@pytest.fixture(scope="module")
def detection(gateway, sim):
    """Phase 1 done: the rid of a finished mp_detection run over a video with three persons."""
    url = harness.upload_put(gateway, "crowd-persons-3.mp4", _video())
    rid = harness.start_job(gateway, upload_url=url, params=K.Params(pipeline="mp_detection"))
    st = _watch_success(gateway, rid)
    assert st.output_file == "characters_detection_result.cdsave", st
    return rid


def test_detection_outputs_are_first_class(gateway, detection):
    link = _link(gateway, detection)
    assert link.HasField("mode") and link.mode == 1 and len(link.models) == 0, link
    results = _groups(link, K.DOWNLOAD_GROUP_DETECTION_RESULT)
    assert [g.name for g in results] == ["characters_detection_result"], link
    assert [f.format for f in results[0].files] == ["cdsave"], results[0]
    assert results[0].tracking_id == ""
    thumbs = _groups(link, K.DOWNLOAD_GROUP_PERSON_THUMBNAIL)
    assert [(g.name, g.tracking_id) for g in thumbs] == [
        ("thumbnail_character_%03d" % k, "%03d" % k) for k in (1, 2, 3)], link
    assert all([f.format for f in g.files] == ["png"] for g in thumbs), thumbs

    # The cdsave, through its signed URL: every frame lists the persons the detection found.
    st, _, body = harness.http("GET", results[0].files[0].url)
    assert st == 200, st
    frames = json.loads(body)["detectionResults"]
    assert frames and isinstance(frames, list), body[:200]
    ids = {p["id"] for frame in frames for p in frame}
    assert ids == {1, 2, 3}, ids
    # The demo's rule: str(id) zero-padded to three digits is the thumbnail's NNN.
    assert {"%03d" % i for i in ids} == {g.tracking_id for g in thumbs}
    st, _, png = harness.http("GET", thumbs[2].files[0].url)
    assert st == 200 and png.startswith(PNG_MAGIC), (st, png[:8])


def test_person_urls_need_a_pose(gateway, detection):
    """A detection run alone has no pose estimated yet: upstream's 400, INVALID_ARGUMENT."""
    code, details = _code(gateway.jobs.GetPersonUrls, K.GetPersonUrlsRequest(rid=detection))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details, (code, details)


@pytest.mark.parametrize("ref", ["1a", "0", "000", "0001", "-1"])
def test_bad_tracking_ref_is_invalid_argument(gateway, sim, detection, ref):
    """Refused at the gateway, naming the field; nothing reaches POST /process."""
    before = sim.count("POST /process")
    models = [K.TrackedModel(tracking_ref=ref, model_id="m1")]
    code, details = _code(gateway.jobs.StartJob,
                          K.StartJobRequest(mp_detection_rid=detection, params=K.Params(models=models)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "params.models[0].tracking_ref" in details, details
    assert sim.count("POST /process") == before


@pytest.fixture(scope="module")
def phase2(gateway, sim, detection):
    """Phase 2 done on the detection's rid: persons "001" and "002", each with a stock model."""
    m1, m2 = _stock_models(gateway)
    before = sim.count("POST /process")
    params = K.Params(formats=["bvh", "fbx", "dmpe"], models=[
        K.TrackedModel(tracking_ref="001", model_id=m1), K.TrackedModel(tracking_ref="002", model_id=m2)])
    rid = harness.start_job(gateway, mp_detection_rid=detection, params=params)
    assert rid == detection        # v2.0: "the same as the input rid_mp_detection argument"
    assert sim.count("POST /process") == before + 1
    _watch_success(gateway, rid)
    return dict(rid=rid, models={"001": m1, "002": m2})


def test_phase2_per_person_outputs(gateway, phase2):
    link = _link(gateway, phase2["rid"])
    assert link.HasField("mode") and link.mode == 1, link
    assert [(m.tracking_id, m.model_id, m.face_data_type, m.hand_data_type) for m in link.models] == [
        ("001", phase2["models"]["001"], 0, 0), ("002", phase2["models"]["002"], 0, 0)], link.models
    for nnn in ("001", "002"):
        mine = [g for g in link.groups if g.tracking_id == nnn]
        chars = [g for g in mine if g.kind == K.DOWNLOAD_GROUP_CHARACTER]
        assert len(chars) == 1 and chars[0].name.endswith("_" + nnn), mine
        assert sorted(f.format for f in chars[0].files) == ["bvh", "fbx"], chars[0]
        marks = [g for g in mine if g.kind == K.DOWNLOAD_GROUP_LANDMARKS]
        assert [g.name for g in marks] == ["landmarks_" + nnn], mine
    assert not [g for g in link.groups if g.tracking_id not in ("", "001", "002", "003")]
    everyone = _groups(link, K.DOWNLOAD_GROUP_ALL_CHARACTERS)
    assert len(everyone) == 1 and everyone[0].tracking_id == "", everyone
    # The detection's result stays listed under the same rid.
    assert len(_groups(link, K.DOWNLOAD_GROUP_DETECTION_RESULT)) == 1
    assert len(_groups(link, K.DOWNLOAD_GROUP_PERSON_THUMBNAIL)) == 3


def test_phase2_in_list_jobs(gateway, phase2):
    r = gateway.jobs.ListJobs(K.ListJobsRequest(states=[K.SUCCESS]), timeout=CALL_S, metadata=gateway.md())
    mine = [j for j in r.jobs if j.rid == phase2["rid"]]
    assert len(mine) == 1, r
    j = mine[0]
    assert j.state == K.SUCCESS and j.HasField("mode") and j.mode == 1, j
    assert [(m.tracking_id, m.model_id) for m in j.models] == [
        ("001", phase2["models"]["001"]), ("002", phase2["models"]["002"])], j


def test_person_urls_write_then_read(gateway, phase2):
    persons = _persons(gateway, phase2["rid"])
    assert sorted(persons) == ["001", "002"], persons
    for p in persons.values():
        assert p.modified_version_write_url.startswith("http") and p.modified_version_read_url == "", p
    edited = b'{"edited": "pose of person 001"}'
    assert harness.put_bytes(persons["001"].modified_version_write_url, edited) == 200
    after = _persons(gateway, phase2["rid"])
    assert after["001"].modified_version_read_url.startswith("http"), after["001"]
    assert after["002"].modified_version_read_url == "", after["002"]
    st, _, body = harness.http("GET", after["001"].modified_version_read_url)
    assert (st, body) == (200, edited)


def test_person_urls_isolation(gateway, phase2):
    """team-b asking for team-a's rid gets exactly what a rid nobody has gets; the read-only key
    gets no write URLs; a malformed rid is INVALID_ARGUMENT naming it."""
    foreign = _code(gateway.jobs.GetPersonUrls, K.GetPersonUrlsRequest(rid=phase2["rid"]), "team-b")
    unknown = _code(gateway.jobs.GetPersonUrls, K.GetPersonUrlsRequest(rid=FAKE_RID), "team-b")
    assert foreign[0] == grpc.StatusCode.NOT_FOUND and foreign == unknown, (foreign, unknown)
    code, _ = _code(gateway.jobs.GetPersonUrls, K.GetPersonUrlsRequest(rid=phase2["rid"]), "viewer")
    assert code == grpc.StatusCode.PERMISSION_DENIED, code
    code, details = _code(gateway.jobs.GetPersonUrls, K.GetPersonUrlsRequest(rid="../x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("rid "), (code, details)


def test_single_person_job_has_person_001(gateway):
    url = harness.upload_put(gateway, "solo.mp4", _video())
    rid = harness.start_job(gateway, upload_url=url, params=K.Params(formats=["bvh"]))
    _watch_success(gateway, rid)
    assert sorted(_persons(gateway, rid)) == ["001"]
    link = _link(gateway, rid)
    assert link.HasField("mode") and link.mode == 0, link
    assert [m.tracking_id for m in link.models] == ["001"], link.models
    # dm_character_001 is the character's name here, not person 001's file.
    assert all(g.tracking_id == "" for g in link.groups), link.groups


def test_pesave_route_is_a_template_in_metrics(gateway, phase2):
    text = "\n".join(harness.metrics(gateway))
    assert 'route="GET /pesave/getUrls/{rid}"' in text, "no pesave route in /metrics"
    assert phase2["rid"] not in text


def test_queued_job_is_listed_starting(stack):
    """A job still queued upstream is STARTING in ListJobs (a state of its own, not finished),
    and GetStatus shows it in progress with its place in the queue."""
    slow = stack.sim(name="sim-queued", job_seconds=600)      # ~20% queued: two minutes
    gw = stack.gateway(slow, name="gw-queued")
    url = harness.upload_put(gw, "queued.mp4", _video())
    rid = harness.start_job(gw, upload_url=url)
    r = gw.jobs.ListJobs(K.ListJobsRequest(states=[K.STARTING]), timeout=CALL_S, metadata=gw.md())
    listed = [j for j in r.jobs if j.rid == rid]
    assert len(listed) == 1 and listed[0].state == K.STARTING, r
    assert not listed[0].HasField("mode") and not listed[0].models, listed[0]
    r = gw.jobs.ListJobs(K.ListJobsRequest(states=[K.SUCCESS, K.FAILURE]), timeout=CALL_S, metadata=gw.md())
    assert rid not in [j.rid for j in r.jobs]
    st = gw.jobs.GetStatus(K.GetStatusRequest(rids=[rid]), timeout=CALL_S, metadata=gw.md()).statuses[0]
    assert st.state == K.PROGRESS, st
    # Its link is just the rid: no mode yet.
    link = _link(gw, rid)
    assert not link.HasField("mode") and not link.groups, link
