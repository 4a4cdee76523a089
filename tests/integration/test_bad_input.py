"""Bad input and hostile conditions: each a clear status, no crash, no leak.

Keys and permissions, malformed protobuf, out-of-range params, unknown methods, oversized
messages, a caller deadline shorter than the upstream's latency, upstream garbage, unknown rids.
The last test checks the gateway is still alive and healthy after all of it.
"""
import re
import time

import grpc
import pytest

import harness
from harness import account_pb2, characters_pb2, health_pb2, jobs_pb2, webhooks_pb2

CREDIT_ROUTE = "GET /account/creditBalance"


def _code(fn, *a, **kw):
    """-> (status code, details) of a call that must fail."""
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details() or ""


@pytest.fixture(scope="module")
def upload_url(gateway):
    with open(harness.TINY_MP4, "rb") as f:
        return harness.upload_put(gateway, "input.mp4", f.read())


# ---- keys and permissions ----------------------------------------------------------------------
@pytest.mark.parametrize("metadata", [
    None,                                                   # no key at all
    [("authorization", "Bearer wrong-key-123")],            # unknown key
    [("authorization", "Bearer ")],                         # empty key
    [("authorization", "Basic ZGVtby1rZXktYQ==")],          # right key, wrong scheme
    [("authorization", "demo-key-a")],                      # no scheme
], ids=["none", "wrong", "empty", "basic", "noscheme"])
def test_missing_or_wrong_key_unauthenticated(gateway, metadata):
    code, details = _code(gateway.jobs.ListJobs, jobs_pb2.ListJobsRequest(), timeout=5, metadata=metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
    assert "wrong-key-123" not in details and "demo-key-a" not in details


def test_viewer_cannot_write(gateway, sim, upload_url):
    md = gateway.md("viewer")
    process_before = sim.count("POST /process")
    calls = [
        ("StartJob", gateway.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=upload_url)),
        ("StoreModel", gateway.characters.StoreModel,
         characters_pb2.StoreModelRequest(model_url=upload_url, model_name="x")),
        ("DeleteModel", gateway.characters.DeleteModel,
         characters_pb2.DeleteModelRequest(model_id="x" * 22)),
        ("CreateEndpoint", gateway.webhooks.CreateEndpoint,
         webhooks_pb2.CreateEndpointRequest(url="http://127.0.0.1:9/h", events=["job.completed"])),
        ("UpdateEndpoint", gateway.webhooks.UpdateEndpoint,
         webhooks_pb2.UpdateEndpointRequest(id="x" * 22, url="http://127.0.0.1:9/h")),
        ("DeleteEndpoint", gateway.webhooks.DeleteEndpoint,
         webhooks_pb2.DeleteEndpointRequest(id="x" * 22)),
    ]
    got = {name: _code(fn, req, timeout=5, metadata=md)[0] for name, fn, req in calls}
    assert all(c == grpc.StatusCode.PERMISSION_DENIED for c in got.values()), got
    assert sim.count("POST /process") == process_before


def test_viewer_can_read(gateway):
    md = gateway.md("viewer")
    gateway.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5, metadata=md)
    gateway.characters.ListModels(characters_pb2.ListModelsRequest(include_stock=True), timeout=5,
                                  metadata=md)
    gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5, metadata=md)
    # A job made by team-a: the viewer may read statuses; whether it sees team-a's job is the
    # ownership rule (NOT_FOUND is fine), but never an auth or permission error.
    rid = harness.start_job(gateway, upload_url=harness.upload_put(gateway, "v.mp4", b"\x00" * 64))
    try:
        r = gateway.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=md)
        assert [s.rid for s in r.statuses] == [rid]
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())


# ---- malformed and oversized messages, unknown methods ------------------------------------------
@pytest.mark.parametrize("path,payload", [
    ("/animate3d.v1.Jobs/GetStatus", b"\xff\xff\xff"),          # invalid tag/varint
    ("/animate3d.v1.Jobs/StartJob", b"\x0a\x50abc"),             # length runs past the end
    ("/animate3d.v1.Characters/ListModels", b"\x08"),            # varint missing
    ("/animate3d.v1.Webhooks/CreateEndpoint", b"\x0f\x00"),      # wire type 7
])
def test_malformed_protobuf_invalid_argument(gateway, path, payload):
    code, details = _code(gateway.raw_unary(path), payload, timeout=5, metadata=gateway.md())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)


@pytest.mark.parametrize("path", ["/animate3d.v1.Jobs/Nope", "/animate3d.v1.Nope/GetStatus",
                                  "/grpc.health.v1.Health/Nope"])
def test_unknown_method_unimplemented(gateway, path):
    t0 = time.monotonic()
    code, details = _code(gateway.raw_unary(path), b"", timeout=5, metadata=gateway.md())
    assert code == grpc.StatusCode.UNIMPLEMENTED, (code, details)
    assert time.monotonic() - t0 < 2


def test_oversized_message_resource_exhausted(gateway):
    big = "x" * (5 << 20)
    code, details = _code(gateway.jobs.GetUploadUrl, jobs_pb2.GetUploadUrlRequest(name=big),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)


def test_oversized_upload_chunk_resource_exhausted(gateway):
    def gen():
        yield jobs_pb2.UploadVideoRequest(name="x.mp4", size=5 << 20)
        yield jobs_pb2.UploadVideoRequest(chunk=b"\x00" * (5 << 20))
    code, details = _code(gateway.jobs.UploadVideo, gen(), timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)


# ---- params validated at the gateway -------------------------------------------------------------
BAD_PARAMS = [
    ("video_speed_multiplier", jobs_pb2.Params(video_speed_multiplier=9)),
    ("video_speed_multiplier", jobs_pb2.Params(video_speed_multiplier=0.5)),
    ("pose_filtering_strength", jobs_pb2.Params(pose_filtering_strength=2)),
    ("pose_filtering_strength", jobs_pb2.Params(pose_filtering_strength=-0.1)),
    ("crop", jobs_pb2.Params(crop=jobs_pb2.Crop(left=0.8, top=0.0, right=0.2, bottom=1.0))),
    ("crop", jobs_pb2.Params(crop=jobs_pb2.Crop(left=0.0, top=0.9, right=1.0, bottom=0.1))),
    ("formats", jobs_pb2.Params(formats=["bvh", "avi"])),
    ("trim", jobs_pb2.Params(trim=jobs_pb2.Trim(from_s=5.0, to_s=2.0))),
    ("trim", jobs_pb2.Params(trim=jobs_pb2.Trim(from_s=-1.0, to_s=2.0))),
    ("bg_color", jobs_pb2.Params(render=jobs_pb2.Render(bg_color=jobs_pb2.Color(r=300)))),
]


@pytest.mark.parametrize("field,params", BAD_PARAMS,
                         ids=["%s-%d" % (f, i) for i, (f, _) in enumerate(BAD_PARAMS)])
def test_out_of_range_params_invalid_argument(gateway, sim, upload_url, field, params):
    before = sim.count("POST /process")
    code, details = _code(gateway.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=upload_url,
                                                                           params=params),
                          timeout=5, metadata=gateway.md())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert field in details, details
    assert sim.count("POST /process") == before, "invalid params went upstream"


def test_start_job_without_source_invalid_argument(gateway):
    code, details = _code(gateway.jobs.StartJob, jobs_pb2.StartJobRequest(), timeout=5,
                          metadata=gateway.md())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)


# ---- upstream misbehaving -------------------------------------------------------------------------
def test_caller_deadline_shorter_than_upstream_latency(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, status=0, rate=1.0, latency_ms=2000, count=1)
    t0 = time.monotonic()
    code, details = _code(gateway.account.GetCreditBalance, account_pb2.GetCreditBalanceRequest(),
                          timeout=0.3, metadata=gateway.md())
    elapsed = time.monotonic() - t0
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED, (code, details)
    assert elapsed < 1.0, elapsed
    # The loop is not stuck behind the slow transfer: other calls are answered at once.
    t0 = time.monotonic()
    r = gateway.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    gateway.account.GetMinutesBalance(account_pb2.GetMinutesBalanceRequest(), timeout=2,
                                      metadata=gateway.md())
    assert time.monotonic() - t0 < 1.0


def test_upstream_garbage_json_unavailable(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, status=200, rate=1.0, mode="garbage", count=-1)
    code, details = _code(gateway.account.GetCreditBalance, account_pb2.GetCreditBalanceRequest(),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert re.search(r"upstream", details, re.I), details
    assert re.search(r"json|invalid|malformed|unexpected|pars", details, re.I), details
    clean_sim.clear_faults()
    gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                     metadata=gateway.md())


def test_upstream_5xx_unavailable(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, status=503, rate=1.0, count=-1)
    t0 = time.monotonic()
    code, details = _code(gateway.account.GetCreditBalance, account_pb2.GetCreditBalanceRequest(),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert time.monotonic() - t0 < 9, "5xx retries ran into the caller's deadline"


def test_upstream_5xx_once_get_is_retried(gateway, clean_sim):
    """One 503 on a GET: the gateway retries it (design: GETs retried with backoff) and succeeds."""
    before = clean_sim.count(CREDIT_ROUTE)
    clean_sim.faults(CREDIT_ROUTE, status=503, rate=1.0, count=1)
    gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=10,
                                     metadata=gateway.md())
    assert clean_sim.count(CREDIT_ROUTE) - before == 2


def test_upstream_5xx_on_post_process_not_retried(gateway, clean_sim, upload_url):
    """POST /process is not idempotent: one 503 is UNAVAILABLE, never a second job."""
    before = clean_sim.count("POST /process")
    clean_sim.faults("POST /process", status=503, rate=1.0, count=1)
    code, details = _code(gateway.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=upload_url),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert clean_sim.count("POST /process") - before == 1


def test_slow_upstream_within_deadline_succeeds(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, status=0, rate=1.0, latency_ms=1500, count=1)
    t0 = time.monotonic()
    gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                     metadata=gateway.md())
    assert 1.4 < time.monotonic() - t0 < 4


def test_upstream_404_unknown_rid_not_found(gateway):
    for call, req in [(gateway.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=["2" * 22])),
                      (gateway.jobs.GetDownloadUrls, jobs_pb2.GetDownloadUrlsRequest(rids=["3" * 22]))]:
        code, details = _code(call, req, timeout=5, metadata=gateway.md())
        assert code == grpc.StatusCode.NOT_FOUND, (code, details)


# ---- UploadVideo stream rules ----------------------------------------------------------------------
def _upload_msgs(*msgs):
    def gen():
        for m in msgs:
            yield m
    return gen()


@pytest.mark.parametrize("msgs", [
    [jobs_pb2.UploadVideoRequest(name="empty.mp4")],                                   # no bytes
    [jobs_pb2.UploadVideoRequest(chunk=b"abc")],                                       # no name
    [jobs_pb2.UploadVideoRequest(name="../x.mp4"), jobs_pb2.UploadVideoRequest(chunk=b"abc")],
    [jobs_pb2.UploadVideoRequest(name="s.mp4", size=10), jobs_pb2.UploadVideoRequest(chunk=b"abc")],
], ids=["empty", "no-name", "slash-in-name", "size-mismatch"])
def test_bad_upload_stream_invalid_argument(gateway, msgs):
    code, details = _code(gateway.jobs.UploadVideo, _upload_msgs(*msgs), timeout=10,
                          metadata=gateway.md())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)


# ---- more upstream failures ------------------------------------------------------------------------
def test_upstream_429_resource_exhausted(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, status=429, retry_after=1, rate=1.0, count=-1)
    code, details = _code(gateway.account.GetCreditBalance, account_pb2.GetCreditBalanceRequest(),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)


def test_upstream_connection_reset_unavailable(gateway, clean_sim):
    clean_sim.faults(CREDIT_ROUTE, rate=1.0, mode="reset", count=-1)
    t0 = time.monotonic()
    code, details = _code(gateway.account.GetCreditBalance, account_pb2.GetCreditBalanceRequest(),
                          timeout=10, metadata=gateway.md())
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert time.monotonic() - t0 < 9


def test_health_watch_first_message_serving(gateway):
    stream = gateway.health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
    try:
        first = next(stream)
    finally:
        stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


# ---- still alive after all of the above ----------------------------------------------------------
def test_zz_gateway_still_healthy(gateway, sim):
    assert gateway.proc.poll() is None, "gateway exited"
    r = gateway.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    assert gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                            metadata=gateway.md()).credits > 0
    st, _, _ = harness.http("GET", gateway.http_url + "/healthz", timeout=2)
    assert st == 200
    assert not gateway.leaked_secrets(), gateway.leaked_secrets()
