"""Jobs service end to end: uploads, start, poll, download, failure, rerun, multi-person, list, info."""
import os
import re

import grpc
import pytest

import harness
from harness import jobs_pb2, characters_pb2, health_pb2, wait_job, start_job

MIB = 1 << 20


def _fixture_bytes():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _bvh_params():
    return jobs_pb2.Params(formats=["bvh", "fbx"])


@pytest.fixture(scope="module")
def done_job(gateway, sim):
    """A job that went PUT upload -> StartJob -> SUCCESS, with the credit balance around it."""
    before = gateway.account.GetCreditBalance(harness.account_pb2.GetCreditBalanceRequest(),
                                              timeout=5, metadata=gateway.md()).credits
    url = harness.upload_put(gateway, "walk.mp4", _fixture_bytes())
    rid = start_job(gateway, upload_url=url, params=_bvh_params())
    st = wait_job(gateway, rid)
    after = gateway.account.GetCreditBalance(harness.account_pb2.GetCreditBalanceRequest(),
                                             timeout=5, metadata=gateway.md()).credits
    return dict(rid=rid, url=url, status=st, credits_before=before, credits_after=after)


@pytest.fixture(scope="module")
def failed_job(gateway):
    url = harness.upload_put(gateway, "clip-fail-513.mp4", _fixture_bytes())
    rid = start_job(gateway, upload_url=url, params=_bvh_params())
    return dict(rid=rid, status=wait_job(gateway, rid))


def test_health_check_serving(gateway):
    r = gateway.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    r = gateway.health.Check(health_pb2.HealthCheckRequest(service="animate3d.v1.Jobs"), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        gateway.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=2)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_upload_url_is_signed_single_put(gateway):
    r = gateway.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(name="a.mp4", resumable=False),
                                  timeout=5, metadata=gateway.md())
    assert r.url.startswith(gateway.sim_url + "/"), r.url
    assert "X-Goog-Signature=" in r.url and "X-Goog-Expires=" in r.url
    assert harness.put_bytes(r.url, b"\x00" * 1000) == 200


def test_upload_url_resumable_session(gateway):
    """resumable=True asks upstream for a resumable URL: a plain PUT is refused, a session works."""
    r = gateway.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(name="r.mp4", resumable=True),
                                  timeout=5, metadata=gateway.md())
    assert harness.put_bytes(r.url, b"\x00" * 10) == 400
    st, hdrs, _ = harness.http("POST", r.url, body=b"", headers={"x-goog-resumable": "start"})
    assert st == 201 and hdrs.get("Location"), (st, hdrs)
    assert harness.put_bytes(hdrs["Location"], b"\x00" * 1000) in (200, 201)


def _vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(\d+) kB" % field, f.read(), re.M)
    return int(m.group(1))


# The gateway moves bytes to storage in chunks (upload_chunk_bytes, default 4 MiB): sizes that are
# not, and are, a multiple of it, with and without the optional declared size.
@pytest.mark.parametrize("mib,declare", [(12, True), (16, True), (16, False)],
                         ids=["12MiB", "16MiB-chunk-multiple", "16MiB-undeclared"])
def test_upload_video_stream_multi_mib(gateway, mib, declare):
    """A multi-MiB file through the client-streaming UploadVideo; the sim gets every byte."""
    data = os.urandom(mib * MIB)
    name = "big-%dmib-%s.mp4" % (mib, "d" if declare else "u")
    r = harness.upload_stream(gateway, name, data, chunk=MIB, declare_size=declare)
    assert r.size == len(data)
    assert r.url.startswith(gateway.sim_url + "/")
    # The upload is complete upstream: a job on it runs, and the sim reports its size.
    rid = start_job(gateway, upload_url=r.url, params=_bvh_params())
    st = wait_job(gateway, rid)
    assert st.state == jobs_pb2.SUCCESS, st
    jobs = {j.rid: j for j in gateway.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5,
                                                     metadata=gateway.md()).jobs}
    assert rid in jobs
    assert (jobs[rid].file_name, jobs[rid].file_size) == (name, len(data))


@pytest.mark.parametrize("step,name_every_message", [(MIB, False), (700 * 1024 + 3, False),
                                                      (MIB, True)],
                         ids=["1MiB-chunk-only", "odd-size-chunk-only", "1MiB-named"])
def test_upload_video_bytes_exact(gateway, step, name_every_message):
    """The stored object is byte for byte what was streamed, through the gateway's ring (13 MiB +
    odd bytes wrap its 12 MiB twice over) and both receive paths: messages carrying only chunk
    bytes (copied from gRPC's buffers into the ring) and messages that carry more (decoded)."""
    data = os.urandom(13 * MIB + 4321)
    name = "exact-%d-%d.mp4" % (step, name_every_message)

    def gen():
        yield jobs_pb2.UploadVideoRequest(name=name, size=len(data))
        for off in range(0, len(data), step):
            yield jobs_pb2.UploadVideoRequest(chunk=data[off:off + step],
                                              name=name if name_every_message else "")
    r = gateway.jobs.UploadVideo(gen(), timeout=30, metadata=gateway.md())
    assert r.size == len(data)
    st, _, body = harness.http("GET", r.url, timeout=30)
    assert st == 200
    assert len(body) == len(data) and body == data, "stored object differs from the stream"


def test_upload_video_memory_bounded(gateway):
    """64 MiB streamed: peak RSS must grow by far less than the file (measured: ~23 MiB with 8 MiB
    storage chunks); a gateway holding the whole file grows by 64 MiB or more."""
    if harness.sanitized(gateway):
        pytest.skip("sanitizer build: its allocator's quarantine makes RSS meaningless")
    data = os.urandom(64 * MIB + 12345)
    rss_before = _vm_kib(gateway.proc.pid, "VmRSS")
    r = harness.upload_stream(gateway, "huge-64mib.mp4", data, chunk=MIB, timeout=60)
    assert r.size == len(data)
    growth_mib = (_vm_kib(gateway.proc.pid, "VmHWM") - rss_before) / 1024.0
    assert growth_mib < 40, "peak RSS grew by %.1f MiB during a 64 MiB upload" % growth_mib


def test_upload_fixture_and_video_info(gateway):
    data = _fixture_bytes()
    facts = harness.mp4_video_facts(harness.TINY_MP4)
    r = harness.upload_stream(gateway, "tiny.mp4", data, chunk=700)   # several small chunks
    assert r.size == len(data)
    info = gateway.jobs.GetVideoInfo(jobs_pb2.GetVideoInfoRequest(upload_url=r.url), timeout=5,
                                     metadata=gateway.md())
    assert (info.width, info.height) == (facts["width"], facts["height"]), info
    assert info.fps == pytest.approx(facts["fps"], rel=0.01), info
    assert info.duration == pytest.approx(facts["duration"], abs=0.1), info
    assert info.codec.lower() in harness.CODEC_NAMES[facts["codec_fourcc"]], info
    assert info.size == len(data), info


def test_job_success_and_download_bvh(gateway, done_job):
    st = done_job["status"]
    assert st.state == jobs_pb2.SUCCESS, st
    assert st.rid == done_job["rid"]
    assert st.error_code == jobs_pb2.JOB_ERROR_NONE
    assert st.output_file, st
    r = gateway.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[done_job["rid"]]),
                                     timeout=5, metadata=gateway.md())
    assert len(r.links) == 1 and r.links[0].rid == done_job["rid"], r
    files = {f.format: f.url for g in r.links[0].groups for f in g.files}
    assert "bvh" in files and "fbx" in files, files
    st_code, _, body = harness.http("GET", files["bvh"])
    assert st_code == 200
    assert body.startswith(b"HIERARCHY"), body[:40]


def test_credit_balance_drops_after_job(done_job):
    assert done_job["credits_after"] < done_job["credits_before"], done_job


def test_failing_job_reports_code_and_message(failed_job):
    st = failed_job["status"]
    assert st.state == jobs_pb2.FAILURE, st
    assert st.error_code == jobs_pb2.JOB_ERROR_NO_CHARACTER_DETECTED, st
    assert "Failed to detect character in the video" in st.error_message, st


def test_download_of_failed_job_has_no_files(gateway, failed_job):
    r = gateway.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[failed_job["rid"]]),
                                     timeout=5, metadata=gateway.md())
    assert [l.rid for l in r.links] == [failed_job["rid"]]
    assert not [f for g in r.links[0].groups for f in g.files]


def test_status_of_several_rids(gateway, done_job, failed_job):
    rids = [done_job["rid"], failed_job["rid"]]
    r = gateway.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids), timeout=5, metadata=gateway.md())
    got = {s.rid: s.state for s in r.statuses}
    assert got == {done_job["rid"]: jobs_pb2.SUCCESS, failed_job["rid"]: jobs_pb2.FAILURE}


def test_rerun_gives_new_rid_that_succeeds(gateway, done_job):
    rid = start_job(gateway, rerun_rid=done_job["rid"], params=_bvh_params())
    assert rid and rid != done_job["rid"]
    assert wait_job(gateway, rid).state == jobs_pb2.SUCCESS


def _stock_model_id(gateway):
    r = gateway.characters.ListModels(characters_pb2.ListModelsRequest(include_stock=True),
                                      timeout=5, metadata=gateway.md())
    stock = [m for m in r.models if m.platform in ("deepmotion", "roblox")]
    assert stock, r
    return stock[0].id


def test_multi_person_detection_then_models(gateway, sim):
    url = harness.upload_put(gateway, "dance-persons-2.mp4", _fixture_bytes())
    rid = start_job(gateway, upload_url=url, params=jobs_pb2.Params(pipeline="mp_detection"))
    st = wait_job(gateway, rid)
    assert st.state == jobs_pb2.SUCCESS, st
    process_before = sim.count("POST /process")
    model = _stock_model_id(gateway)
    params = jobs_pb2.Params(formats=["bvh"], models=[jobs_pb2.TrackedModel(tracking_id=1, model_id=model),
                                                      jobs_pb2.TrackedModel(tracking_id=2, model_id=model)])
    rid2 = start_job(gateway, mp_detection_rid=rid, params=params)
    assert rid2 == rid
    assert sim.count("POST /process") == process_before + 1
    st = wait_job(gateway, rid, timeout=15)
    assert st.state == jobs_pb2.SUCCESS, st
    # The second phase really ran (not a stale SUCCESS of the detection): one file per person.
    r = gateway.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=5,
                                     metadata=gateway.md())
    names = [g.name for l in r.links for g in l.groups]
    assert any(n.endswith("_001") for n in names) and any(n.endswith("_002") for n in names), names


def test_list_jobs_all_and_by_state(gateway, done_job, failed_job):
    def listed(states):
        r = gateway.jobs.ListJobs(jobs_pb2.ListJobsRequest(states=states), timeout=5,
                                  metadata=gateway.md())
        return {j.rid: j for j in r.jobs}
    all_jobs = listed([])
    assert done_job["rid"] in all_jobs and failed_job["rid"] in all_jobs
    j = all_jobs[done_job["rid"]]
    assert j.file_name == "walk.mp4" and j.file_size == os.path.getsize(harness.TINY_MP4), j
    assert j.state == jobs_pb2.SUCCESS and 0 < j.ctime_ms <= j.mtime_ms, j
    ok = listed([jobs_pb2.SUCCESS])
    assert done_job["rid"] in ok and failed_job["rid"] not in ok
    assert all(x.state == jobs_pb2.SUCCESS for x in ok.values())
    bad = listed([jobs_pb2.FAILURE])
    assert failed_job["rid"] in bad and done_job["rid"] not in bad
    both = listed([jobs_pb2.SUCCESS, jobs_pb2.FAILURE])
    assert {done_job["rid"], failed_job["rid"]} <= set(both)


def test_unknown_rid_is_not_found(gateway):
    with pytest.raises(grpc.RpcError) as e:
        gateway.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=["1111111111111111111111"]), timeout=5,
                               metadata=gateway.md())
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()


def test_formats_reach_upstream(gateway):
    """Typed params are rendered upstream: the outputs are exactly the formats asked for."""
    url = harness.upload_put(gateway, "formats.mp4", _fixture_bytes())
    rid = start_job(gateway, upload_url=url, params=jobs_pb2.Params(formats=["glb", "mp4"]))
    assert wait_job(gateway, rid).state == jobs_pb2.SUCCESS
    r = gateway.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=5,
                                     metadata=gateway.md())
    formats = {f.format for l in r.links for g in l.groups for f in g.files}
    assert {"glb", "mp4"} <= formats and not formats & {"bvh", "fbx"}, formats


# Not in issue 3's "Done when" (the gateway answers "WatchStatus is not available yet"); strict, so
# the marker must go when it lands.
def test_watch_status_streams_until_terminal(gateway):
    url = harness.upload_put(gateway, "watch.mp4", _fixture_bytes())
    rid = start_job(gateway, upload_url=url, params=_bvh_params())
    seen = []
    stream = gateway.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=10,
                                      metadata=gateway.md())
    try:
        for st in stream:
            assert st.rid == rid, st
            seen.append(st.state)
            if st.state in harness.TERMINAL or len(seen) > 200:
                break
    finally:
        stream.cancel()
    assert seen and seen[-1] == jobs_pb2.SUCCESS, [jobs_pb2.JobState.Name(s) for s in seen]


def test_idempotency_key_starts_one_job(gateway, sim):
    url = harness.upload_put(gateway, "idem.mp4", _fixture_bytes())
    before = sim.count("POST /process")
    req = dict(upload_url=url, params=_bvh_params(), idempotency_key="it-idem-1")
    rid1 = start_job(gateway, **req)
    rid2 = start_job(gateway, **req)
    assert rid1 == rid2
    assert sim.count("POST /process") == before + 1
