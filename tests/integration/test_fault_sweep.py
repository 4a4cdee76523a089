"""Upstream fault sweep: every upstream-backed RPC x every fault the simulator can inject on its route.

For each row of the contract (the 13 upstream-backed RPCs of gateway/methods.c; the
Webhooks methods are gateway-side subscriptions since issue 17) and each fault of FAULTS, the
simulator is told to inject that fault on the row's route (POST /_sim/faults), the RPC is made
once with a bounded deadline, and it must end with the expected gRPC status (table EXPECTED) and
a non-empty message, having reached the upstream (the fault's hit counter moved: a case answered
by the gateway alone would test nothing). Faults are cleared and one healthy call is made between
cases, so that no case inherits another's state (a consecutive-failure count, an account pause).
A storage pass does the same for UploadVideo with faults on the signed-URL store.

After the sweep the gateway must still be SERVING and answer; at teardown (conftest) it must exit 0
after SIGTERM, which under ASan also means LeakSanitizer found nothing (it turns a leak into exit
23); the log is also scanned for sanitizer reports, so a report that does not change the exit
status still fails here.

One gateway, one simulator, faults cleared between cases: the whole sweep is bounded (~60 s).
"""
import json
import os
import time

import grpc
import pytest

import harness
from harness import account_pb2, characters_pb2, health_pb2, jobs_pb2

CALL_TIMEOUT_S = 5.0            # every RPC of the sweep: a hang is a DEADLINE_EXCEEDED, never a stall
LATENCY_DEADLINE_S = 0.4        # the caller's deadline in the latency case
LATENCY_MS = 1500               # the upstream's latency in that case: longer than the deadline
RETRY_AFTER_S = 1               # Retry-After of the 429 case

C = grpc.StatusCode
# fault name -> (fault spec for POST /_sim/faults, without route; expected gRPC code).
# The mapping is DESIGN.md's "Error mapping" as gateway/base/errmap.h spells it out per status.
FAULTS = {
    "400": (dict(status=400), C.INVALID_ARGUMENT),
    "401": (dict(status=401), C.UNAVAILABLE),       # after one re-login: account credentials rejected
    "403": (dict(status=403), C.PERMISSION_DENIED),
    "404": (dict(status=404), C.NOT_FOUND),
    "409": (dict(status=409), C.ALREADY_EXISTS),
    "429": (dict(status=429, retry_after=RETRY_AFTER_S), C.RESOURCE_EXHAUSTED),
    "500": (dict(status=500), C.UNAVAILABLE),
    "502": (dict(status=502), C.UNAVAILABLE),
    "503": (dict(status=503), C.UNAVAILABLE),
    "reset": (dict(mode="reset"), C.UNAVAILABLE),
    "garbage": (dict(status=200, mode="garbage"), C.UNAVAILABLE),
    "latency": (dict(status=0, latency_ms=LATENCY_MS), C.DEADLINE_EXCEEDED),
}
EXPECTED = {name: code for name, (_, code) in FAULTS.items()}

# Storage faults on the PUT of UploadVideo's bytes. The signed-URL store is the gateway's own
# transfer, not the caller's request: whatever the store refuses (4xx included: the URL it was
# just handed is unusable) is the upstream failing -> UNAVAILABLE, naming the HTTP status. A 200
# with a garbage body is a success (an upload's answer body carries nothing the gateway needs).
STORAGE_ROUTE = "PUT /storage"
STORAGE_EXPECTED = {"400": C.UNAVAILABLE, "401": C.UNAVAILABLE, "403": C.UNAVAILABLE,
                    "404": C.UNAVAILABLE, "409": C.UNAVAILABLE, "429": C.UNAVAILABLE,
                    "500": C.UNAVAILABLE, "502": C.UNAVAILABLE, "503": C.UNAVAILABLE,
                    "reset": C.UNAVAILABLE, "garbage": C.OK, "latency": C.DEADLINE_EXCEEDED}


def _code(fn, req, timeout):
    """-> (code, details) of one call; OK calls give (C.OK, "")."""
    try:
        fn(req, timeout=timeout, metadata=harness.Gateway.md())
        return C.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def _faults_hits(sim):
    st, _, body = harness.http("GET", sim.url + "/_sim/faults")
    assert st == 200, st
    return sum(int(f.get("hits", 0)) for f in json.loads(body).get("faults", []))


@pytest.fixture(scope="module")
def sweep(stack):
    """A simulator whose jobs stay in progress (so GetStatus/GetDownloadUrls go upstream), a
    gateway with a 1 ms status TTL (so the status cache never answers for the upstream), and what
    the rows need that the tenant owns: an uploaded video, a job, a model, a webhook endpoint."""
    sim = stack.sim(name="sim-sweep", job_seconds=3600)
    gport, hport = harness.free_port(), harness.free_port()
    text = harness.gateway_config(gport, hport, sim.url, os.path.join(stack.workdir, "gw-sweep.db"))
    assert "status_ttl_ms: 1000" in text
    text = text.replace("status_ttl_ms: 1000", "status_ttl_ms: 1")
    gw = stack.gateway(sim, name="gw-sweep", config_text=text, grpc_port=gport, http_port=hport)
    md = gw.md()
    with open(harness.TINY_MP4, "rb") as f:
        video = f.read()
    upload_url = harness.upload_put(gw, "sweep.mp4", video)
    rid = harness.start_job(gw, upload_url=upload_url)
    up = gw.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name="sweep", model_ext="glb", resumable=False),
        timeout=CALL_TIMEOUT_S, metadata=md)
    assert harness.put_bytes(up.model_url, b"glTF" + b"\x00" * 100) == 200
    model_id = gw.characters.StoreModel(
        characters_pb2.StoreModelRequest(model_url=up.model_url, model_name="sweep"),
        timeout=CALL_TIMEOUT_S, metadata=md).model_id
    assert rid and model_id
    return dict(sim=sim, gw=gw, video=video, upload_url=upload_url, model_url=up.model_url,
                rid=rid, model_id=model_id)


def _rows(s):
    """(RPC name, sim route, stub method, request): every row of gateway/methods.c with an
    upstream half."""
    gw = s["gw"]
    j, ch, acc = gw.jobs, gw.characters, gw.account
    return [
        ("GetUploadUrl", "GET /upload", j.GetUploadUrl,
         jobs_pb2.GetUploadUrlRequest(name="f.mp4", resumable=False)),
        ("StartJob", "POST /process", j.StartJob, jobs_pb2.StartJobRequest(upload_url=s["upload_url"])),
        ("GetStatus", "GET /status/{rids}", j.GetStatus, jobs_pb2.GetStatusRequest(rids=[s["rid"]])),
        ("GetDownloadUrls", "GET /download/{rids}", j.GetDownloadUrls,
         jobs_pb2.GetDownloadUrlsRequest(rids=[s["rid"]])),
        ("ListJobs", "GET /list", j.ListJobs, jobs_pb2.ListJobsRequest()),
        ("GetVideoInfo", "POST /videoInfo", j.GetVideoInfo,
         jobs_pb2.GetVideoInfoRequest(upload_url=s["upload_url"])),
        ("GetPersonUrls", "GET /pesave/getUrls/{rid}", j.GetPersonUrls,
         jobs_pb2.GetPersonUrlsRequest(rid=s["rid"])),
        ("GetModelUploadUrl", "GET /character/getModelUploadUrl", ch.GetModelUploadUrl,
         characters_pb2.GetModelUploadUrlRequest(name="m", model_ext="fbx", thumb_ext="png")),
        ("StoreModel", "POST /character/storeModel", ch.StoreModel,
         characters_pb2.StoreModelRequest(model_url=s["model_url"], model_name="again")),
        ("ListModels", "GET /character/listModels", ch.ListModels,
         characters_pb2.ListModelsRequest(include_stock=True)),
        ("DeleteModel", "DELETE /character/deleteModel/{id}", ch.DeleteModel,
         characters_pb2.DeleteModelRequest(model_id=s["model_id"])),
        # The Webhooks methods keep tenant subscriptions in the gateway (issue 17): no upstream
        # route to fault.
        ("GetCreditBalance", "GET /account/creditBalance", acc.GetCreditBalance,
         account_pb2.GetCreditBalanceRequest()),
        ("GetMinutesBalance", "GET /account/minutesBalance", acc.GetMinutesBalance,
         account_pb2.GetMinutesBalanceRequest()),
    ]


def _healthy(s):
    """Between cases: no fault left, and one call that must succeed upstream (it closes any
    consecutive-failure count). A 429 pause of the account may still hold it: it is waited out,
    bounded by the call deadline."""
    s["sim"].clear_faults()
    code, details = _code(s["gw"].account.GetMinutesBalance, account_pb2.GetMinutesBalanceRequest(),
                          CALL_TIMEOUT_S)
    return code, details


def _run_case(s, route, fault, call):
    """Injects fault on route, makes the call -> (code, details, hits, seconds)."""
    spec, _ = FAULTS[fault]
    sim = s["sim"]
    sim.faults(route, rate=1.0, count=-1, **spec)
    timeout = LATENCY_DEADLINE_S if fault == "latency" else CALL_TIMEOUT_S
    t0 = time.monotonic()
    code, details = call(timeout)
    took = time.monotonic() - t0
    hits = _faults_hits(sim)
    return code, details, hits, took


def test_fault_table_covers_every_row(sweep):
    """The sweep's row list is the contract: 13 upstream-backed RPCs, each with a known route."""
    rows = _rows(sweep)
    assert len(rows) == 13 and len({r[0] for r in rows}) == 13
    routes = sweep["sim"].stats()
    for name, route, _, _ in rows:
        assert route in routes, "%s: the simulator has no route %r" % (name, route)


def test_upstream_fault_sweep(sweep):
    wrong, unreached = [], []
    cases = 0
    for name, route, fn, req in _rows(sweep):
        for fault in FAULTS:
            # Rows whose object a fault-free call would consume (delete) keep it: every case
            # injects a fault on the very request, so the object is never really deleted.
            code, details, hits, took = _run_case(
                sweep, route, fault, lambda t, fn=fn, req=req: _code(fn, req, t))
            cases += 1
            label = "%s x %s" % (name, fault)
            limit = LATENCY_DEADLINE_S + 1.0 if fault == "latency" else CALL_TIMEOUT_S + 1.0
            if code != EXPECTED[fault] or not details.strip() or took > limit:
                wrong.append("%s: %s %r in %.2fs (want %s)" % (label, code, details[:120], took,
                                                                 EXPECTED[fault]))
            if hits < 1:
                unreached.append("%s: answered without reaching the upstream (%s %r)"
                                 % (label, code, details[:80]))
            hcode, hdetails = _healthy(sweep)
            if hcode != C.OK:
                wrong.append("%s: the healthy call after it failed: %s %r" % (label, hcode, hdetails))
    assert cases == 13 * len(FAULTS)
    assert not wrong and not unreached, "\n".join(wrong + unreached)


def _upload(gw, data, timeout):
    """UploadVideo in 3 chunks -> (code, details)."""
    third = max(1, len(data) // 3)

    def gen():
        yield jobs_pb2.UploadVideoRequest(name="sweep-up.mp4", size=len(data))
        for off in range(0, len(data), third):
            yield jobs_pb2.UploadVideoRequest(chunk=data[off:off + third])
    try:
        gw.jobs.UploadVideo(gen(), timeout=timeout, metadata=gw.md())
        return C.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def test_upload_video_storage_fault_sweep(sweep):
    gw, wrong, unreached = sweep["gw"], [], []
    assert _upload(gw, sweep["video"], CALL_TIMEOUT_S)[0] == C.OK, "UploadVideo without faults"
    for fault, want in STORAGE_EXPECTED.items():
        before = sweep["sim"].count(STORAGE_ROUTE) + sweep["sim"].count("POST /storage")
        code, details, hits, took = _run_case(sweep, STORAGE_ROUTE, fault,
                                              lambda t: _upload(gw, sweep["video"], t))
        after = sweep["sim"].count(STORAGE_ROUTE) + sweep["sim"].count("POST /storage")
        limit = LATENCY_DEADLINE_S + 1.0 if fault == "latency" else CALL_TIMEOUT_S + 1.0
        if code != want or (code != C.OK and not details.strip()) or took > limit:
            wrong.append("UploadVideo x storage %s: %s %r in %.2fs (want %s)"
                         % (fault, code, details[:120], took, want))
        # A resumable upload starts with POST /storage, which the PUT fault does not cover.
        if hits < 1 and after == before:
            unreached.append("UploadVideo x storage %s: the store was never reached" % fault)
        hcode, hdetails = _healthy(sweep)
        if hcode != C.OK:
            wrong.append("after storage %s: healthy call failed: %s %r" % (fault, hcode, hdetails))
    assert _upload(gw, sweep["video"], CALL_TIMEOUT_S)[0] == C.OK, "UploadVideo after the sweep"
    assert not wrong and not unreached, "\n".join(wrong + unreached)


def test_zz_still_serving_after_sweep(sweep):
    gw = sweep["gw"]
    assert gw.proc.poll() is None, "gateway exited during the sweep"
    r = gw.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    assert gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=CALL_TIMEOUT_S,
                                       metadata=gw.md()).credits > 0
    text = gw.log_text()
    for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert needle not in text, "sanitizer report in %s: %s" % (gw.log_path, needle)
    assert not gw.leaked_secrets(), gw.leaked_secrets()


def test_zz_sigterm_exit_clean_no_leak(sweep):
    """The conftest teardown checks exit 0 too; here the check is explicit and also reads the log
    the sanitizer writes at exit (LeakSanitizer reports after the loop has returned)."""
    gw = sweep["gw"]
    rc, killed = gw.stop()
    text = gw.log_text()
    assert not killed and rc == 0, "exit %s%s; log tail:\n%s" % (rc, " (killed)" if killed else "",
                                                                 text[-3000:])
    for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert needle not in text, "sanitizer report at exit: %s" % needle
