"""Hostile input (issue 13, items 2 and 8): request field limits and the codes bad input gets.

- A ListJobs carrying 1M repeated states from the read-only viewer key is INVALID_ARGUMENT at
  once (states is capped), and a Health check sent meanwhile is answered: the loop never stalls.
- Every RPC that takes an id, a name or a URL answers INVALID_ARGUMENT naming the field for
  `../x`, `a,b`, `é`, an embedded NUL and a 5000-byte value; never NOT_FOUND (which would mean
  the gateway asked its store or upstream about it) and never UNAVAILABLE.
- Upload names `.` and `..` are INVALID_ARGUMENT.
- A client that resets its stream before its request message arrived is counted as cancelled,
  not as malformed; an upload whose deadline passes before its first chunk ends as a deadline,
  not as "the upload is empty".
Limits are in docs/operations.md ("Request field limits") and the .proto comments.
"""
import json
import socket
import struct
import threading
import time

import grpc
import pytest

import harness
from harness import characters_pb2, health_pb2, jobs_pb2, webhooks_pb2

BIG = "a" * 5000
BAD_VALUES = ["../x", "a,b", "\u00e9", "a\x00b", BIG]
BAD_IDS = ["../x", "a,b", "\u00e9", "a\x00b", BIG]


def _code(fn, req, timeout=10, tenant="team-a"):
    """-> (code, details) of one call; (OK, "") when it succeeded."""
    try:
        fn(req, timeout=timeout, metadata=harness.Gateway.md(tenant))
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def _stream_code(fn, req, timeout=10):
    try:
        for _ in fn(req, timeout=timeout, metadata=harness.Gateway.md()):
            pass
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


@pytest.fixture(scope="module")
def upload_url(gateway):
    with open(harness.TINY_MP4, "rb") as f:
        return harness.upload_put(gateway, "input.mp4", f.read())


# ---- item 2: one ListJobs must not freeze the loop ---------------------------------------------
def _packed_states(n, state=jobs_pb2.SUCCESS):
    """ListJobsRequest{states: n x state}, packed (field 1, wire type 2): about n bytes."""
    body = bytes([state]) * n
    out, v = bytearray(b"\x0a"), len(body)
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out) + body


def test_list_jobs_million_states_viewer_rejected_loop_alive(gateway):
    payload = _packed_states(1_000_000)
    assert len(payload) > 1_000_000
    call = gateway.raw_unary("/animate3d.v1.Jobs/ListJobs")
    fut = call.future(payload, timeout=60, metadata=gateway.md("viewer"))
    # Health checks while the bomb is (or was) on the loop: each must answer within a bounded wait.
    for _ in range(3):
        r = gateway.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
    try:
        fut.result(timeout=30)
        pytest.fail("ListJobs with 1M states succeeded")
    except grpc.RpcError as e:
        code, details = e.code(), e.details() or ""
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details == "states has more than 16 entries", details


def test_list_jobs_states_at_cap_and_repeats_ok(gateway):
    # Repeats within the cap are fine (answered once upstream); the reply is a list.
    states = [jobs_pb2.SUCCESS, jobs_pb2.PROGRESS] * 8
    gateway.jobs.ListJobs(jobs_pb2.ListJobsRequest(states=states), timeout=10,
                          metadata=gateway.md("viewer"))
    code, details = _code(gateway.jobs.ListJobs, jobs_pb2.ListJobsRequest(states=states + [1]),
                          tenant="viewer")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "states" in details, (code, details)


@pytest.mark.parametrize("name,fn,req,field", [
    ("GetStatus", "jobs.GetStatus", lambda: jobs_pb2.GetStatusRequest(rids=["r%d" % i for i in range(101)]), "rids"),
    ("GetDownloadUrls", "jobs.GetDownloadUrls",
     lambda: jobs_pb2.GetDownloadUrlsRequest(rids=["r%d" % i for i in range(5000)]), "rids"),
    ("StartJob.extra", "jobs.StartJob",
     lambda: jobs_pb2.StartJobRequest(rerun_rid="r1", extra_params=["k%d=1" % i for i in range(5000)]),
     "extra_params"),
    ("StartJob.formats", "jobs.StartJob",
     lambda: jobs_pb2.StartJobRequest(rerun_rid="r1", params=jobs_pb2.Params(formats=["bvh"] * 5000)),
     "params.formats"),
    ("StartJob.models", "jobs.StartJob",
     lambda: jobs_pb2.StartJobRequest(mp_detection_rid="r1", params=jobs_pb2.Params(
         models=[jobs_pb2.TrackedModel(tracking_id=i, model_id="m") for i in range(5000)])),
     "params.models"),
    ("CreateEndpoint", "webhooks.CreateEndpoint",
     lambda: webhooks_pb2.CreateEndpointRequest(url="http://127.0.0.1:9/h", events=["job.completed"] * 5000),
     "events"),
    ("UpdateEndpoint", "webhooks.UpdateEndpoint",
     lambda: webhooks_pb2.UpdateEndpointRequest(id="e1", events=["job.completed"] * 5000), "events"),
], ids=["GetStatus", "GetDownloadUrls", "StartJob-extra", "StartJob-formats", "StartJob-models",
        "CreateEndpoint", "UpdateEndpoint"])
def test_repeated_fields_capped(gateway, name, fn, req, field):
    svc, meth = fn.split(".")
    code, details = _code(getattr(getattr(gateway, svc), meth), req())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code, details)
    assert details.startswith(field + " has more than "), (name, details)


def test_watch_status_rids_capped(gateway):
    code, details = _stream_code(gateway.jobs.WatchStatus,
                                 jobs_pb2.WatchStatusRequest(rids=["r%d" % i for i in range(1000)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == "rids has more than 100 entries", \
        (code, details)


# ---- item 8: malformed ids, names and URLs are INVALID_ARGUMENT naming the field -----------------
def _id_cases(upload):
    """(label, stub path, request builder taking the bad value, field named in the message)."""
    hook = "http://127.0.0.1:9/h"
    return [
        ("StoreModel.model_id", "characters.StoreModel",
         lambda v: characters_pb2.StoreModelRequest(model_id=v, model_name="x"), "model_id"),
        ("DeleteModel.model_id", "characters.DeleteModel",
         lambda v: characters_pb2.DeleteModelRequest(model_id=v), "model_id"),
        ("ListModels.model_id", "characters.ListModels",
         lambda v: characters_pb2.ListModelsRequest(model_id=v), "model_id"),
        ("GetEndpoint.id", "webhooks.GetEndpoint", lambda v: webhooks_pb2.GetEndpointRequest(id=v), "id"),
        ("UpdateEndpoint.id", "webhooks.UpdateEndpoint",
         lambda v: webhooks_pb2.UpdateEndpointRequest(id=v, url=hook), "id"),
        ("DeleteEndpoint.id", "webhooks.DeleteEndpoint",
         lambda v: webhooks_pb2.DeleteEndpointRequest(id=v), "id"),
        ("GetStatus.rids", "jobs.GetStatus", lambda v: jobs_pb2.GetStatusRequest(rids=["r1", v]),
         "rids[1]"),
        ("GetDownloadUrls.rids", "jobs.GetDownloadUrls",
         lambda v: jobs_pb2.GetDownloadUrlsRequest(rids=[v]), "rids[0]"),
        ("StartJob.rerun_rid", "jobs.StartJob", lambda v: jobs_pb2.StartJobRequest(rerun_rid=v),
         "rerun_rid"),
        ("StartJob.mp_detection_rid", "jobs.StartJob",
         lambda v: jobs_pb2.StartJobRequest(mp_detection_rid=v, params=jobs_pb2.Params(
             models=[jobs_pb2.TrackedModel(tracking_id=1, model_id="m1")])), "mp_detection_rid"),
        ("StartJob.params.model_id", "jobs.StartJob",
         lambda v: jobs_pb2.StartJobRequest(upload_url=upload, params=jobs_pb2.Params(model_id=v)),
         "params.model_id"),
        ("StartJob.params.models.model_id", "jobs.StartJob",
         lambda v: jobs_pb2.StartJobRequest(mp_detection_rid="r1", params=jobs_pb2.Params(
             models=[jobs_pb2.TrackedModel(tracking_id=1, model_id=v)])), "params.models[0].model_id"),
    ]


def _url_cases(upload):
    return [
        ("StartJob.upload_url", "jobs.StartJob", lambda v: jobs_pb2.StartJobRequest(upload_url=v),
         "upload_url"),
        ("GetVideoInfo.upload_url", "jobs.GetVideoInfo",
         lambda v: jobs_pb2.GetVideoInfoRequest(upload_url=v), "upload_url"),
        ("StoreModel.model_url", "characters.StoreModel",
         lambda v: characters_pb2.StoreModelRequest(model_url=v), "model_url"),
        ("StoreModel.thumb_url", "characters.StoreModel",
         lambda v: characters_pb2.StoreModelRequest(model_url=upload, thumb_url=v), "thumb_url"),
        ("CreateEndpoint.url", "webhooks.CreateEndpoint",
         lambda v: webhooks_pb2.CreateEndpointRequest(url=v, events=["job.completed"]), "url"),
        ("UpdateEndpoint.url", "webhooks.UpdateEndpoint",
         lambda v: webhooks_pb2.UpdateEndpointRequest(id="e1", url=v), "url"),
    ]


def _check_invalid(gateway, sim, label, path, build, field, value):
    svc, meth = path.split(".")
    code, details = _code(getattr(getattr(gateway, svc), meth), build(value))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (label, repr(value[:20]), code, details)
    assert details.startswith(field + " "), (label, repr(value[:20]), details)


@pytest.mark.parametrize("value", BAD_IDS, ids=["dotdot", "comma", "e-acute", "nul", "5000"])
def test_bad_ids_invalid_argument(gateway, sim, upload_url, value):
    for label, path, build, field in _id_cases(upload_url):
        _check_invalid(gateway, sim, label, path, build, field, value)


@pytest.mark.parametrize("value", BAD_VALUES + ["http://127.0.0.1:1/x\x00y", "http://h/" + BIG],
                         ids=["dotdot", "comma", "e-acute", "nul", "5000", "url-nul", "url-5000"])
def test_bad_urls_invalid_argument(gateway, sim, upload_url, value):
    for label, path, build, field in _url_cases(upload_url):
        _check_invalid(gateway, sim, label, path, build, field, value)


def test_nul_after_a_valid_prefix_never_reaches_upstream(gateway, sim, upload_url):
    """`<valid>\\x00junk`: the part before the NUL is valid, so a truncating decoder would pass it."""
    before = sim.count("POST /process")
    code, details = _code(gateway.jobs.StartJob,
                          jobs_pb2.StartJobRequest(upload_url=upload_url + "\x00junk"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "upload_url" in details and "NUL" in details, \
        (code, details)
    rid = harness.start_job(gateway, upload_url=upload_url)
    code, details = _code(gateway.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[rid + "\x00x"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("rids[0] "), (code, details)
    code, details = _code(gateway.characters.ListModels,
                          characters_pb2.ListModelsRequest(search_token="he\x00llo"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("search_token "), \
        (code, details)
    code, details = _code(gateway.jobs.StartJob, jobs_pb2.StartJobRequest(
        upload_url=upload_url, idempotency_key="k\x00" + "x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("idempotency_key "), \
        (code, details)
    assert sim.count("POST /process") == before + 1     # only the honest start_job above


@pytest.mark.parametrize("value", BAD_IDS, ids=["dotdot", "comma", "e-acute", "nul", "5000"])
def test_watch_status_bad_rid_invalid_argument(gateway, value):
    code, details = _stream_code(gateway.jobs.WatchStatus, jobs_pb2.WatchStatusRequest(rids=[value]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("rids[0] "), (code, details)


@pytest.mark.parametrize("value", [".", "..", "a\x00b", BIG, "a/b"],
                         ids=["dot", "dotdot", "nul", "5000", "slash"])
def test_bad_upload_names_invalid_argument(gateway, value):
    for path, build in [("jobs.GetUploadUrl", lambda v: jobs_pb2.GetUploadUrlRequest(name=v)),
                        ("characters.GetModelUploadUrl",
                         lambda v: characters_pb2.GetModelUploadUrlRequest(name=v, model_ext="fbx"))]:
        svc, meth = path.split(".")
        code, details = _code(getattr(getattr(gateway, svc), meth), build(value))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (path, code, details)
        assert details.startswith("name "), (path, details)

    def gen():
        yield jobs_pb2.UploadVideoRequest(name=value, size=3)
        yield jobs_pb2.UploadVideoRequest(chunk=b"abc")
    try:
        gateway.jobs.UploadVideo(gen(), timeout=10, metadata=gateway.md())
        pytest.fail("UploadVideo accepted name %r" % value[:20])
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        assert "name " in (e.details() or ""), e.details()


def test_well_formed_unknown_ids_still_not_found(gateway):
    """The other side of the rule: a well-formed id nobody owns stays NOT_FOUND."""
    for fn, req in [(gateway.characters.DeleteModel, characters_pb2.DeleteModelRequest(model_id="2" * 22)),
                    (gateway.webhooks.GetEndpoint, webhooks_pb2.GetEndpointRequest(id="2" * 22)),
                    (gateway.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=["2" * 22]))]:
        code, details = _code(fn, req)
        assert code == grpc.StatusCode.NOT_FOUND, (code, details)


# ---- cancellations are counted as cancellations ---------------------------------------------------
def _h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    def s(b):
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + s(name.encode()) + s(value.encode())


def _rst_before_message(port, path, key, partial=b""):
    """Opens an HTTP/2 stream for `path` with headers only (and optionally part of a gRPC
    message), then resets it (RST_STREAM CANCEL) and closes the connection."""
    hdrs = b"".join(_hpack_literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
        ("te", "trailers"), ("authorization", "Bearer " + key)])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0))
        s.sendall(_h2_frame(1, 0x4, 1, hdrs))           # HEADERS, END_HEADERS, no END_STREAM
        if partial:
            s.sendall(_h2_frame(0, 0, 1, partial))      # DATA, no END_STREAM
        time.sleep(0.2)                                  # let the server see the headers first
        s.sendall(_h2_frame(3, 0, 1, struct.pack(">I", 8)))   # RST_STREAM CANCEL
        s.sendall(_h2_frame(4, 1, 0))                    # SETTINGS ACK, then read until the server is done
        s.settimeout(1.0)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass


def _metric(gateway, name):
    return sum(v for k, v in harness.metrics(gateway).items()
               if k.split("{")[0] == "animate3d_gateway_" + name)


def _wait_metric(gateway, name, at_least, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = _metric(gateway, name)
        if v >= at_least or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def _log_lines(gateway, since):
    with open(gateway.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("partial", [b"", b"\x00\x00\x00\x00\x64" + b"\x0a\x02"],
                         ids=["headers-only", "half-a-message"])
def test_rst_before_message_counts_cancelled_not_malformed(gateway, partial):
    malformed, cancelled = _metric(gateway, "rpc_malformed_total"), _metric(gateway, "rpc_cancelled_total")
    since = len(open(gateway.log_path, "rb").read())
    for _ in range(3):
        _rst_before_message(gateway.grpc_port, "/animate3d.v1.Jobs/ListJobs", harness.KEYS["team-a"],
                            partial)
    assert _wait_metric(gateway, "rpc_cancelled_total", cancelled + 3) >= cancelled + 3
    assert _metric(gateway, "rpc_malformed_total") == malformed
    rpc = [l for l in _log_lines(gateway, since)
           if l.get("msg") == "rpc" or l.get("event") == "rpc" or "grpc_status" in l]
    # The previous case's closing ListJobs may log its (OK) line after its client had the answer,
    # inside this window: the access line is written when gRPC core reports the call closed.
    mine = [l for l in rpc if l.get("method") == "/animate3d.v1.Jobs/ListJobs" and l.get("grpc_status") != 0]
    assert len(mine) >= 3, rpc
    for l in mine:
        assert l.get("grpc_status") == grpc.StatusCode.CANCELLED.value[0], l
        assert "malformed" not in l.get("message", ""), l
    # The connection-level abuse left the gateway serving.
    gateway.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5, metadata=gateway.md())


def test_upload_deadline_before_first_chunk_is_a_deadline_not_empty(gateway):
    cancelled = _metric(gateway, "rpc_cancelled_total")
    since = len(open(gateway.log_path, "rb").read())
    release = threading.Event()

    def gen():
        yield jobs_pb2.UploadVideoRequest(name="slow.mp4")
        release.wait(4)          # the caller's deadline passes while the gateway waits for a chunk

    try:
        gateway.jobs.UploadVideo(gen(), timeout=1.0, metadata=gateway.md())
        pytest.fail("UploadVideo without bytes succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
    finally:
        release.set()
    assert _wait_metric(gateway, "rpc_cancelled_total", cancelled + 1) >= cancelled + 1
    deadline = time.monotonic() + 5
    mine = []
    while not mine and time.monotonic() < deadline:
        mine = [l for l in _log_lines(gateway, since)
                if l.get("method") == "/animate3d.v1.Jobs/UploadVideo" and "grpc_status" in l]
        time.sleep(0.05)
    assert mine, "no access-log line for the upload"
    for l in mine:
        assert "empty" not in l.get("message", ""), l
        assert l.get("grpc_status") in (grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
                                        grpc.StatusCode.CANCELLED.value[0]), l


def test_zz_still_serving(gateway):
    assert gateway.proc.poll() is None
    r = gateway.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
