"""Hold under abuse, the tenant side (issue 13, items 4-7): no tenant can hold the gateway's
long-lived resources (uploads, watch streams, idempotent StartJob keys) or use another team's
uploads, and forged webhook deliveries cannot multiply upstream traffic.

Every test runs its own small gateway (low caps, short timeouts) so it takes seconds; every
loop is bounded in count and time; everything listens on 127.0.0.1.
"""
import json
import os
import random
import signal
import subprocess
import threading
import time

import grpc
import pytest

import harness
from harness import characters_pb2, health_pb2, jobs_pb2

FAKE_FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 64
FAKE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
WAIT_S = 10.0       # upper bound of every "until" loop below


def _code(fn, req, tenant="team-b", timeout=10):
    """-> (status code, details) of one unary call; OK -> (OK, None)."""
    try:
        fn(req, timeout=timeout, metadata=harness.Gateway.md(tenant))
        return grpc.StatusCode.OK, None
    except grpc.RpcError as e:
        return e.code(), e.details()


def _until(pred, timeout=WAIT_S, step=0.05):
    """Polls pred() until it is true; bounded. -> its last value."""
    deadline = time.monotonic() + timeout
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(step)
        v = pred()
    return v


def _rid():
    return "".join(random.choice(B58) for _ in range(22))


def _config(gw_grpc, gw_http, sim_url, state, head="", tenants_extra=""):
    """The harness config with `head` (top-level YAML sections) prepended; the harness's own
    webhooks section (allow_private_destinations) goes into head's when head has one."""
    if "webhooks:\n" in head:
        head = head.replace("webhooks:\n", "webhooks:\n  allow_private_destinations: true\n", 1)
        return head + harness.gateway_config(gw_grpc, gw_http, sim_url, state, extra_tenants=tenants_extra,
                                             allow_private_destinations=False)
    return head + harness.gateway_config(gw_grpc, gw_http, sim_url, state, extra_tenants=tenants_extra)


def _gateway(stack, sim, name, head="", tenants_extra="", **kw):
    grpc_port, http_port = harness.free_port(), harness.free_port()
    text = _config(grpc_port, http_port, sim.url, os.path.join(stack.workdir, name + ".db"), head,
                   tenants_extra)
    return stack.gateway(sim, name=name, config_text=text, grpc_port=grpc_port, http_port=http_port, **kw)


def _metric(gw, name):
    return harness.metrics(gw).get(name, 0.0)


# ---- item 6: StoreModel with another team's upload URLs ------------------------------------------
@pytest.fixture(scope="module")
def gw_models(stack, sim):
    return _gateway(stack, sim, "gw-models")


def _model_urls(gw, tenant, name):
    up = gw.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name=name, model_ext="fbx", thumb_ext="png",
                                                resumable=False),
        timeout=5, metadata=gw.md(tenant))
    assert harness.put_bytes(up.model_url, FAKE_FBX) == 200
    assert harness.put_bytes(up.thumb_url, FAKE_PNG) == 200
    return up


def test_store_model_with_another_tenants_urls_is_not_found(gw_models, sim):
    """team-b naming team-a's model_url or thumb_url in StoreModel gets exactly what an unknown
    URL gets (NOT_FOUND "StoreModel: not found"), no model is stored upstream, and team-a can
    still store its own."""
    gw = gw_models
    a = _model_urls(gw, "team-a", "abuse-a")
    b = _model_urls(gw, "team-b", "abuse-b")
    unknown = a.model_url.split("?", 1)[0].rsplit("/", 1)[0] + "/never-issued.fbx"
    store_before = sim.count("POST /character/storeModel")
    C = characters_pb2.StoreModelRequest
    cases = [
        ("a's model_url", C(model_url=a.model_url, model_name="stolen")),
        ("a's thumb_url", C(model_url=b.model_url, thumb_url=a.thumb_url, model_name="stolen")),
        ("unknown model_url", C(model_url=unknown, model_name="stolen")),
    ]
    got = {what: _code(gw.characters.StoreModel, req, tenant="team-b") for what, req in cases}
    want = (grpc.StatusCode.NOT_FOUND, "StoreModel: not found")
    assert all(v == want for v in got.values()), got
    assert sim.count("POST /character/storeModel") == store_before, "nothing reached upstream"
    listed = gw.characters.ListModels(characters_pb2.ListModelsRequest(), timeout=5,
                                      metadata=gw.md("team-b")).models
    assert not [m for m in listed if m.name == "stolen"], listed
    # The owners still can.
    mid = gw.characters.StoreModel(C(model_url=a.model_url, thumb_url=a.thumb_url, model_name="mine"),
                                   timeout=5, metadata=gw.md("team-a")).model_id
    assert mid
    assert gw.characters.StoreModel(C(model_url=b.model_url, model_name="mine-b"), timeout=5,
                                    metadata=gw.md("team-b")).model_id


# ---- item 5: one tenant cannot take every long-lived slot ----------------------------------------
WATCH_HEAD = """\
watch:
  max_streams: 6
  max_streams_per_tenant: 4
  health_max_streams: 5
  health_max_streams_per_peer: 3
"""


@pytest.fixture(scope="module")
def slow_sim(stack):
    """Jobs that stay in progress for the whole module: watch streams stay open."""
    return stack.sim(name="sim-slow", job_seconds=120)


@pytest.fixture(scope="module")
def gw_watch(stack, slow_sim):
    return _gateway(stack, slow_sim, "gw-watch", head=WATCH_HEAD)


def _job(gw, tenant, name):
    url = harness.upload_put(gw, name, b"\x00" * 64, tenant=tenant)
    return harness.start_job(gw, tenant, upload_url=url)


def _open_watch(gw, tenant, rid):
    """A WatchStatus stream that is open (its first status arrived). -> (call, None) or
    (None, (code, details)) when it was refused."""
    call = gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=30,
                               metadata=gw.md(tenant))
    try:
        next(call)
        return call, None
    except grpc.RpcError as e:
        return None, (e.code(), e.details())


def test_one_tenant_filling_its_watch_share_leaves_room_for_others(gw_watch):
    """team-a holds its 4 WatchStatus streams (watch.max_streams_per_tenant) and its 5th is
    refused naming team-a and the cap; team-b still opens streams until the global cap (6),
    where the refusal names the gateway's cap; both are counted per tenant; a stream that ends
    gives its slot back."""
    gw = gw_watch
    rid_a, rid_b = _job(gw, "team-a", "watch-a.mp4"), _job(gw, "team-b", "watch-b.mp4")
    held = []
    try:
        for _ in range(4):
            call, err = _open_watch(gw, "team-a", rid_a)
            assert err is None, err
            held.append(call)
        _, err = _open_watch(gw, "team-a", rid_a)
        assert err and err[0] == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        assert "tenant team-a holds 4 streams; its cap is 4" in err[1], err
        for _ in range(2):
            call, err = _open_watch(gw, "team-b", rid_b)
            assert err is None, "team-b must not be starved by team-a: %s" % (err,)
            held.append(call)
        _, err = _open_watch(gw, "team-b", rid_b)
        assert err and err[0] == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        assert "the gateway holds 6 streams; its cap is 6 (watch.max_streams)" in err[1], err
        m = harness.metrics(gw)
        assert m.get('animate3d_gateway_watch_streams_tenant_refused_total{tenant="team-a",cap="tenant"}') == 1, m
        assert m.get('animate3d_gateway_watch_streams_tenant_refused_total{tenant="team-b",cap="global"}') == 1, m
        assert m.get('animate3d_gateway_watch_streams_tenant_held{tenant="team-a"}') == 4
        assert m.get("animate3d_gateway_watch_streams") == 6
    finally:
        for call in held:
            call.cancel()
    assert _until(lambda: _metric(gw, "animate3d_gateway_watch_streams") == 0), "slots given back"
    call, err = _open_watch(gw, "team-b", rid_b)
    assert err is None, err
    call.cancel()
    assert '"resource":"watch_streams"' in gw.log_text(), "refusals are logged"


def test_health_watch_is_capped_per_peer(gw_watch):
    """grpc.health.v1 Watch needs no key: its fair share is per client address. The 4th stream
    from 127.0.0.1 is refused naming the peer and watch.health_max_streams_per_peer."""
    gw = gw_watch
    held = []
    try:
        for _ in range(3):
            call = gw.health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
            assert next(call).status == health_pb2.HealthCheckResponse.SERVING
            held.append(call)
        call = gw.health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
        with pytest.raises(grpc.RpcError) as ei:
            next(call)
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "peer 127.0.0.1 holds 3 streams; its cap is 3 (watch.health_max_streams_per_peer)" \
            in ei.value.details(), ei.value.details()
        assert _metric(gw, 'animate3d_gateway_health_watch_peer_refused_total{cap="peer"}') == 1
    finally:
        for c in held:
            c.cancel()
    assert _until(lambda: _metric(gw, "animate3d_gateway_health_watch_peer_held") == 0)


def test_keyed_start_jobs_in_flight_are_capped_per_tenant(stack):
    """team-a (tenants[].limits.start_jobs_in_flight: 2) leaves two keyed StartJobs hanging
    upstream and cancels them: the transfers outlive the calls and still count, so its third key
    is refused RESOURCE_EXHAUSTED naming team-a and the cap, while team-b starts its jobs."""
    sim = stack.sim(name="sim-idem", job_seconds=1)
    limits = "    limits: { start_jobs_in_flight: 2 }\n"
    gw = None
    grpc_port, http_port = harness.free_port(), harness.free_port()
    text = harness.gateway_config(grpc_port, http_port, sim.url, os.path.join(stack.workdir, "gw-idem.db"))
    # team-a's limits go right after its account line (the first tenant of the harness config).
    text = text.replace("  - name: team-a\n    account: sim\n", "  - name: team-a\n    account: sim\n" + limits, 1)
    gw = stack.gateway(sim, name="gw-idem", config_text=text, grpc_port=grpc_port, http_port=http_port)
    url_a = harness.upload_put(gw, "idem-a.mp4", b"\x00" * 64, tenant="team-a")
    url_b = harness.upload_put(gw, "idem-b.mp4", b"\x00" * 64, tenant="team-b")
    sim.faults("POST /process", status=0, rate=1.0, latency_ms=3000, count=-1)
    try:
        calls = []
        for k in ("k1", "k2"):
            f = gw.jobs.StartJob.future(jobs_pb2.StartJobRequest(upload_url=url_a, idempotency_key=k),
                                        timeout=30, metadata=gw.md("team-a"))
            calls.append(f)
        assert _until(lambda: _metric(gw, 'animate3d_gateway_idempotency_inflight{what="keys"}') == 2)
        for f in calls:
            f.cancel()
        assert _until(lambda: _metric(gw, 'animate3d_gateway_idempotency_inflight{what="detached"}') == 2)
        code, details = _code(gw.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=url_a, idempotency_key="k3"),
                              tenant="team-a")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        assert "tenant team-a holds 2 idempotent StartJob keys in flight; its cap is 2" in details, details
        fb = gw.jobs.StartJob.future(jobs_pb2.StartJobRequest(upload_url=url_b, idempotency_key="k3"),
                                     timeout=30, metadata=gw.md("team-b"))
        assert fb.result(timeout=20).rid, "team-b is not held up by team-a's keys"
        assert _metric(gw, 'animate3d_gateway_idempotency_keys_tenant_refused_total{tenant="team-a",cap="tenant"}') == 1
    finally:
        sim.clear_faults()


# ---- item 4: stalled uploads ----------------------------------------------------------------------
CHUNK = 256 << 10       # limits.upload_chunk_bytes in these gateways: the smallest storage unit


def _stalled_upload(gw, tenant, name, before_stall=b"", first=True):
    """An UploadVideo call whose client sends the first message (name + before_stall bytes, when
    first) and then stops sending until release() (bounded by WAIT_S). -> (future, release)."""
    go = threading.Event()

    def gen():
        if first:
            yield jobs_pb2.UploadVideoRequest(name=name, chunk=before_stall)
        go.wait(WAIT_S)
    fut = gw.jobs.UploadVideo.future(gen(), timeout=30, metadata=gw.md(tenant))
    return fut, go.set


def _rpc_error(fut, timeout=WAIT_S + 5):
    """-> (code, details) once the call ended with an error; (OK, None) when it succeeded."""
    exc = fut.exception(timeout=timeout)
    return (exc.code(), exc.details()) if exc else (grpc.StatusCode.OK, None)


@pytest.fixture(scope="module")
def gw_idle(stack, sim):
    head = ("limits:\n  upload_chunk_bytes: %d\n"
            "uploads:\n  idle_timeout_ms: 600\n  max_message_bytes: 131072\n" % CHUNK)
    return _gateway(stack, sim, "gw-idle", head=head)


def test_stalled_uploads_hit_the_idle_timeout_and_are_freed(gw_idle):
    """A client that sends 100 KiB and then nothing (and one that never sends its first message)
    is failed with DEADLINE_EXCEEDED naming uploads.idle_timeout_ms, well before its own deadline;
    its buffer and slot are freed (gauges back to 0) and the timeout is counted."""
    gw = gw_idle
    before = _metric(gw, "animate3d_gateway_uploads_idle_timeouts_total")
    stalls = [_stalled_upload(gw, "team-a", "stall-1.mp4", b"\x01" * (100 << 10)),
              _stalled_upload(gw, "team-a", "stall-2.mp4", first=False)]
    try:
        assert _until(lambda: _metric(gw, "animate3d_gateway_uploads_buffered_bytes") == 100 << 10), \
            "the first upload's bytes are held while it is open"
        for fut, _ in stalls:
            code, details = _rpc_error(fut)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED, (code, details)
            assert "no message from the client for 600 ms (uploads.idle_timeout_ms)" in details, details
    finally:
        for _, release in stalls:
            release()
    # The calls are over on the gateway's side too (gRPC's buffers for them released).
    assert _until(lambda: _metric(gw, "animate3d_gateway_rpc_in_flight") == 0)
    m = harness.metrics(gw)
    assert m["animate3d_gateway_uploads_idle_timeouts_total"] - before == 2, m
    assert m["animate3d_gateway_uploads_buffered_bytes"] == 0
    assert m["animate3d_gateway_uploads_buffer_reserved_bytes"] == 0
    assert m.get('animate3d_gateway_uploads_tenant_held{tenant="team-a"}', 0) == 0
    # An honest upload still works afterwards, and one message over the per-message cap is refused.
    data = open(harness.TINY_MP4, "rb").read()
    assert harness.upload_stream(gw, "honest.mp4", data, chunk=64 << 10).size == len(data)
    with pytest.raises(grpc.RpcError) as ei:
        harness.upload_stream(gw, "big.mp4", b"\x00" * (200 << 10), chunk=200 << 10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the limit is 131072 (uploads.max_message_bytes)" in ei.value.details()


@pytest.fixture(scope="module")
def gw_uploads(stack, sim):
    head = ("limits:\n  upload_chunk_bytes: %d\n"
            "uploads:\n  max_concurrent: 3\n  max_per_tenant: 2\n  idle_timeout_ms: 20000\n" % CHUNK)
    return _gateway(stack, sim, "gw-uploads", head=head)


def test_concurrent_uploads_are_capped_per_tenant_and_in_all(gw_uploads):
    """team-a holds 2 open uploads (uploads.max_per_tenant): its 3rd is refused naming team-a and
    the cap; team-b still gets the last global slot, then is refused naming uploads.max_concurrent;
    refusals are counted per tenant; once the uploads end, the slots are free again."""
    gw = gw_uploads
    held = []
    try:
        for i in range(2):
            held.append(_stalled_upload(gw, "team-a", "cap-a%d.mp4" % i, b"\x01" * 1024))
        assert _until(lambda: _metric(gw, 'animate3d_gateway_uploads_tenant_held{tenant="team-a"}') == 2)
        fut, release = _stalled_upload(gw, "team-a", "cap-a2.mp4", b"\x01")
        code, details = _rpc_error(fut)
        release()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        assert "tenant team-a holds 2 uploads open; its cap is 2 (tenants[].limits.uploads or " \
               "uploads.max_per_tenant)" in details, details
        held.append(_stalled_upload(gw, "team-b", "cap-b0.mp4", b"\x01" * 1024))
        assert _until(lambda: _metric(gw, 'animate3d_gateway_uploads_tenant_held{tenant="team-b"}') == 1)
        fut, release = _stalled_upload(gw, "team-b", "cap-b1.mp4", b"\x01")
        code, details = _rpc_error(fut)
        release()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        assert "the gateway holds 3 uploads open; its cap is 3 (uploads.max_concurrent)" in details, details
        m = harness.metrics(gw)
        assert m.get('animate3d_gateway_uploads_tenant_refused_total{tenant="team-a",cap="tenant"}') == 1, m
        assert m.get('animate3d_gateway_uploads_tenant_refused_total{tenant="team-b",cap="global"}') == 1, m
    finally:
        for fut, release in held:
            fut.cancel()
            release()
    assert _until(lambda: _metric(gw, 'animate3d_gateway_uploads_tenant_held{tenant="team-a"}') == 0 and
                  _metric(gw, 'animate3d_gateway_uploads_tenant_held{tenant="team-b"}') == 0)
    assert _metric(gw, "animate3d_gateway_uploads_buffer_reserved_bytes") == 0
    data = open(harness.TINY_MP4, "rb").read()
    assert harness.upload_stream(gw, "after.mp4", data, tenant="team-b").size == len(data)


# ---- item 7: forged webhooks ----------------------------------------------------------------------
STATUS_ROUTE = "GET /status/{rids}"


def _deliver(gw, path, rid, sig=harness.CLIENT_ID):
    body = json.dumps({"eventType": "job.completed", "data": {"taskId": rid, "status": "success"}}).encode()
    st, _, _ = harness.http("POST", gw.http_url + path, body=body,
                            headers={"Content-Type": "application/json", "X-DeepMotion-Signature": sig})
    return st


@pytest.fixture(scope="module")
def hook_sim(stack):
    return stack.sim(name="sim-hooks", job_seconds=1)


def test_forged_webhooks_with_random_rids_cause_no_upstream_traffic(stack, hook_sim):
    """200 deliveries with the (public) client id as signature and random rids: every one is
    answered 200 (upstream must not retry), counted as unknown_rid, and not one GET /status goes
    upstream; a delivery for a job the gateway owns still refreshes it."""
    gw = _gateway(stack, hook_sim, "gw-forged")
    rid = _job(gw, "team-a", "hook-own.mp4")
    harness.wait_job(gw, rid)
    time.sleep(0.3)     # let the last poll settle before counting
    before = hook_sim.count(STATUS_ROUTE)
    codes = [_deliver(gw, "/webhooks/animate3d/sim", _rid()) for _ in range(200)]
    assert set(codes) == {200}, codes
    assert hook_sim.count(STATUS_ROUTE) == before, "forged rids reached upstream"
    m = harness.metrics(gw)
    assert m['animate3d_gateway_webhook_refreshes_total{result="unknown_rid"}'] == 200, m
    assert m['animate3d_gateway_webhooks_in_total{result="accepted"}'] == 200
    # The gateway's own job: refreshed.
    assert _deliver(gw, "/webhooks/animate3d/sim", rid) == 200
    assert _metric(gw, 'animate3d_gateway_webhook_refreshes_total{result="refreshed"}') == 1
    assert _until(lambda: hook_sim.count(STATUS_ROUTE) == before + 1), "one refresh upstream"


def test_webhook_refreshes_are_capped_per_account(stack, hook_sim):
    """With webhooks.refresh_per_second 1 and refresh_burst 3, 20 deliveries for a job the
    gateway owns refresh it a few times at most; the rest are counted as rate_limited and
    answered 200."""
    gw = _gateway(stack, hook_sim, "gw-hookrate",
                  head="webhooks:\n  refresh_per_second: 1\n  refresh_burst: 3\n")
    rid = _job(gw, "team-a", "hook-rate.mp4")
    harness.wait_job(gw, rid)
    t0 = time.monotonic()
    codes = [_deliver(gw, "/webhooks/animate3d/sim", rid) for _ in range(20)]
    elapsed = time.monotonic() - t0
    assert set(codes) == {200}, codes
    m = harness.metrics(gw)
    refreshed = m['animate3d_gateway_webhook_refreshes_total{result="refreshed"}']
    limited = m['animate3d_gateway_webhook_refreshes_total{result="rate_limited"}']
    assert refreshed + limited == 20, m
    assert refreshed <= 3 + int(elapsed) + 1, (refreshed, elapsed)
    assert limited >= 20 - (3 + int(elapsed) + 1), (limited, elapsed)


TOKEN_A = "a1" * 20     # 40 characters
TOKEN_B = "b2" * 24


def _write_token(path, token):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)


def _endpoint_urls(sim):
    cookie = sim.login()
    body = sim.get_json("/webhook_endpoints", cookie)
    eps = body.get("endpoints", body) if isinstance(body, dict) else body
    return [e["url"] for e in eps]


def test_webhook_path_token_and_its_rotation(stack):
    """With webhooks.path_token_file the gateway registers <public_url><prefix><token>/<account>
    upstream; a delivery without the token is 404 (bad_token), with it accepted (the simulator's
    own delivery of a finished job included). After the token file changes and SIGHUP, the
    upstream endpoint is moved to the new URL (not doubled), the old token works during
    webhooks.path_token_grace_s and then 404s; no token reaches the log."""
    sim = stack.sim(name="sim-token", job_seconds=1)
    token_path = os.path.join(stack.workdir, "webhook-token")
    _write_token(token_path, TOKEN_A)
    grpc_port, http_port = harness.free_port(), harness.free_port()
    public = "http://127.0.0.1:%d" % http_port
    head = ("webhooks:\n  public_url: %s\n  path_token_file: %s\n  path_token_grace_s: 3\n"
            % (public, token_path))
    text = _config(grpc_port, http_port, sim.url, os.path.join(stack.workdir, "gw-token.db"), head)
    gw = stack.gateway(sim, name="gw-token", config_text=text, grpc_port=grpc_port, http_port=http_port)
    base = public + "/webhooks/animate3d/"
    assert _until(lambda: _endpoint_urls(sim) == [base + TOKEN_A + "/sim"]), _endpoint_urls(sim)

    before = _metric(gw, 'animate3d_gateway_webhooks_in_total{result="bad_token"}')
    assert _deliver(gw, "/webhooks/animate3d/sim", _rid()) == 404
    assert _deliver(gw, "/webhooks/animate3d/" + "x" * 40 + "/sim", _rid()) == 404
    assert _metric(gw, 'animate3d_gateway_webhooks_in_total{result="bad_token"}') == before + 2
    assert _deliver(gw, "/webhooks/animate3d/%s/sim" % TOKEN_A, _rid()) == 200
    # The simulator delivers to the URL it was given: the finished job's delivery is accepted.
    rid = _job(gw, "team-a", "token.mp4")
    harness.wait_job(gw, rid)
    assert _until(lambda: _metric(gw, 'animate3d_gateway_webhook_refreshes_total{result="refreshed"}') >= 1)

    _write_token(token_path, TOKEN_B)
    gw.proc.send_signal(signal.SIGHUP)
    assert _until(lambda: _endpoint_urls(sim) == [base + TOKEN_B + "/sim"]), _endpoint_urls(sim)
    assert _metric(gw, 'animate3d_gateway_webhook_registrations_total{result="retargeted"}') == 1
    assert _deliver(gw, "/webhooks/animate3d/%s/sim" % TOKEN_B, _rid()) == 200
    # The old token during its grace (unless the machine was slow enough to outlast it), then 404.
    first = _deliver(gw, "/webhooks/animate3d/%s/sim" % TOKEN_A, _rid())
    assert first in (200, 404)
    if first == 200:
        assert _metric(gw, "animate3d_gateway_webhooks_in_old_token_total") == 1
    assert _until(lambda: _deliver(gw, "/webhooks/animate3d/%s/sim" % TOKEN_A, _rid()) == 404, step=0.2)
    assert _deliver(gw, "/webhooks/animate3d/%s/sim" % TOKEN_B, _rid()) == 200
    log = gw.log_text()
    assert TOKEN_A not in log and TOKEN_B not in log, "a path token reached the log"
    assert "webhook path token rotated" in log


@pytest.mark.parametrize("text,mode,want", [
    (TOKEN_A + "\n", 0o644, "is group/world-accessible (mode 0644); chmod 600 it"),
    ("short\n", 0o600, "must hold 32 to 256 characters"),
])
def test_unusable_path_token_file_is_refused(stack, sim, text, mode, want):
    """A path token file that others may read, or that is not a usable token, is refused by
    --check-config and at start (exit 1), as file:line: webhooks.path_token_file: ...; the token
    is never printed."""
    token_path = os.path.join(stack.workdir, "bad-token-%o" % mode)
    with open(token_path, "w") as f:
        f.write(text)
    os.chmod(token_path, mode)
    cfg_path = os.path.join(stack.workdir, "bad-token-%o.yaml" % mode)
    with open(cfg_path, "w") as f:
        f.write(_config(harness.free_port(), harness.free_port(), sim.url,
                        os.path.join(stack.workdir, "bad-token.db"),
                        "webhooks:\n  path_token_file: %s\n" % token_path))
    env = dict(os.environ, **{harness.SECRET_ENV: harness.CLIENT_SECRET})
    for args in (["--check-config"], []):
        p = subprocess.run([harness.GATEWAY_BIN, "-c", cfg_path] + args, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode == 1, (args, out)
        assert "%s:3: webhooks.path_token_file: " % cfg_path in out and want in out, out
        assert TOKEN_A not in out
