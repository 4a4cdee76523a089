"""Tenant webhooks end to end (issue 17): gateway-side subscriptions, each tenant's receiver gets
only its own tenant's job events, signed (Standard Webhooks, checked here with hmac/hashlib, not
with the gateway's code), delivered at least once with a stable webhook-id across a receiver
outage and a SIGKILL of the gateway; SSRF refusals at creation (IP literals only: nothing here
resolves a name or connects anywhere but 127.0.0.1).

Until the job follower (gateway/svc/jobevent.h) is merged, the outbox is fed by the status
module's finals: the tests poll GetStatus until each job is final, as a client would.
"""
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

import harness
from harness import jobs_pb2, webhooks_pb2

JOBS_PER_TENANT = 50            # 100 jobs in all
ARRIVAL_TIMEOUT_S = 90.0        # every wait below is bounded by this
REPLAY_WINDOW_S = 300           # docs/webhooks.md: receivers refuse older timestamps


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; answers `status` (503 while down)."""

    def __init__(self, port=0):
        self.requests = []          # (headers dict, body bytes)
        self.lock = threading.Lock()
        self.status = 200
        self.location = None        # sent with the status (a redirect)
        self.answer = b"ok"
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rec.lock:
                    rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = rec.status
                self.send_response(status)
                if rec.location:
                    self.send_header("Location", rec.location)
                self.send_header("Content-Length", str(len(rec.answer)))
                self.end_headers()
                try:
                    self.wfile.write(rec.answer)
                except OSError:
                    pass        # the gateway stops reading past its limit

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.requests)


def verify(secret, headers, body):
    """Standard Webhooks verification, written from the spec: -> the parsed body, or raises."""
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(ts)) <= REPLAY_WINDOW_S, ts
    want = base64.b64encode(hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body,
                                     hashlib.sha256).digest()).decode()
    sigs = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
    assert any(hmac.compare_digest(want, s) for s in sigs), (headers, body)
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def create(gw, tenant, url):
    return gw.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=url, events=["job.completed"]),
                                      timeout=5, metadata=gw.md(tenant))


def start_jobs(gw, tenant, n, data):
    rids = []
    for i in range(n):
        url = harness.upload_put(gw, "wh-%s-%d.mp4" % (tenant, i), data, tenant=tenant)
        rids.append(harness.start_job(gw, tenant, upload_url=url))
    return rids


def finish(gw, rids_by_tenant):
    """Polls every job to its final state (bounded): the finals feed the outbox."""
    for tenant, rids in rids_by_tenant.items():
        for rid in rids:
            harness.wait_job(gw, rid, tenant=tenant, timeout=60)


def wait_for(pred, timeout=ARRIVAL_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


@pytest.fixture(scope="module")
def tiny():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def receivers():
    rs = {"team-a": Receiver(), "team-b": Receiver()}
    yield rs
    for r in rs.values():
        r.close()


def test_each_tenant_gets_only_its_own_signed_events(gateway, receivers, tiny):
    secrets = {}
    for tenant, r in receivers.items():
        ep = create(gateway, tenant, r.url)
        assert ep.secret.startswith("whsec_") and len(base64.b64decode(ep.secret[6:])) == 32
        secrets[tenant] = ep.secret
        got = gateway.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5,
                                           metadata=gateway.md(tenant))
        assert got.secret == "" and got.url == r.url, "the secret is shown once"
    rids = {t: [] for t in receivers}
    for i in range(JOBS_PER_TENANT):
        for t in receivers:
            rids[t] += start_jobs(gateway, t, 1, tiny)
    finish(gateway, rids)

    def arrived(t):
        return {json.loads(b)["data"]["taskId"] for _, b in receivers[t].snapshot()} >= set(rids[t])

    assert wait_for(lambda: all(arrived(t) for t in receivers)), {
        t: len(set(rids[t]) - {json.loads(b)["data"]["taskId"] for _, b in receivers[t].snapshot()})
        for t in receivers}
    foreign = 0
    for t, r in receivers.items():
        ids = set()
        for headers, body in r.snapshot():
            doc = verify(secrets[t], headers, body)
            assert doc["eventType"] == "job.completed"
            assert doc["data"]["status"] in ("success", "failure")
            assert doc["data"]["state"] in ("SUCCESS", "FAILURE")
            foreign += doc["data"]["taskId"] not in rids[t]
            ids.add(headers["webhook-id"])
        assert len(ids) >= len(rids[t])
    assert foreign == 0, "%d foreign rids over %d jobs" % (foreign, 2 * JOBS_PER_TENANT)
    m = harness.metrics(gateway)
    for t in receivers:
        assert m.get('animate3d_gateway_webhook_deliveries_total{tenant="%s",result="delivered"}' % t, 0) \
            >= JOBS_PER_TENANT


def test_endpoint_crud_isolation_and_rotation(gateway, receivers):
    ep = create(gateway, "team-a", receivers["team-a"].url + "/crud")
    for tenant in ("team-b",):
        for call, req in ((gateway.webhooks.GetEndpoint, webhooks_pb2.GetEndpointRequest(id=ep.id)),
                          (gateway.webhooks.RotateSecret, webhooks_pb2.RotateSecretRequest(id=ep.id)),
                          (gateway.webhooks.DeleteEndpoint, webhooks_pb2.DeleteEndpointRequest(id=ep.id)),
                          (gateway.webhooks.UpdateEndpoint,
                           webhooks_pb2.UpdateEndpointRequest(id=ep.id, url=receivers["team-b"].url))):
            with pytest.raises(grpc.RpcError) as e:
                call(req, timeout=5, metadata=gateway.md(tenant))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
        listed = gateway.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5,
                                                metadata=gateway.md(tenant)).endpoints
        assert ep.id not in [x.id for x in listed]
    rot = gateway.webhooks.RotateSecret(webhooks_pb2.RotateSecretRequest(id=ep.id), timeout=5,
                                        metadata=gateway.md("team-a"))
    assert rot.secret.startswith("whsec_") and rot.secret != ep.secret
    off = gateway.webhooks.UpdateEndpoint(
        webhooks_pb2.UpdateEndpointRequest(id=ep.id, toggle=webhooks_pb2.ENDPOINT_DISABLE,
                                           description="paused"),
        timeout=5, metadata=gateway.md("team-a"))
    assert off.disabled and off.disabled_reason == "disabled by the tenant" and off.description == "paused"
    assert off.secret == ""
    on = gateway.webhooks.UpdateEndpoint(
        webhooks_pb2.UpdateEndpointRequest(id=ep.id, toggle=webhooks_pb2.ENDPOINT_ENABLE),
        timeout=5, metadata=gateway.md("team-a"))
    assert not on.disabled and on.disabled_reason == ""
    d = gateway.webhooks.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id=ep.id), timeout=5,
                                        metadata=gateway.md("team-a"))
    assert d.deleted


@pytest.mark.parametrize("url,what", [
    ("http://127.0.0.1:9/h", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/h", "private"),
    ("http://[::1]/h", "loopback"),
    ("http://0.0.0.0/h", "unspecified"),
    ("file:///etc/passwd", "http(s)"),           # refused by the request decoder already
    ("gopher://8.8.8.8/", "http(s)"),
    ("https://user:pw@8.8.8.8/h", "credentials"),
    ("http://2130706433/h", "dotted-quad"),
])
def test_ssrf_refused_at_creation(stack, sim, url, what):
    gw = getattr(test_ssrf_refused_at_creation, "gw", None)
    if gw is None:
        gw = stack.gateway(sim, name="strict", allow_private_destinations=False)
        test_ssrf_refused_at_creation.gw = gw
    before = harness.metrics(gw)
    with pytest.raises(grpc.RpcError) as e:
        create(gw, "team-a", url)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert what in e.value.details(), e.value.details()
    after = harness.metrics(gw)
    refused = lambda m: sum(v for k, v in m.items() if k.startswith("animate3d_gateway_webhook_refusals_total"))
    # the decoder's refusals are counted with every other invalid request, the rest here
    assert refused(after) == refused(before) + (0 if what == "http(s)" else 1)


def test_receiver_down_then_up_every_event_once_after_dedup(gateway, tiny):
    r = Receiver()
    try:
        r.status = 503
        ep = create(gateway, "team-b", r.url)
        rids = start_jobs(gateway, "team-b", 3, tiny)
        finish(gateway, {"team-b": rids})
        assert wait_for(lambda: len(r.snapshot()) >= 3), "first attempts"
        r.status = 200

        def delivered():
            """rid -> the webhook-ids its attempts carried (failed and delivered ones)."""
            ok = {}
            for h, b in r.snapshot():
                ok.setdefault(json.loads(b)["data"]["taskId"], set()).add(h["webhook-id"])
            return ok

        assert wait_for(lambda: gateway_delivered(gateway, "team-b") >= 3 and set(delivered()) >= set(rids))
        by_rid = delivered()
        for rid in rids:
            assert len(by_rid[rid]) == 1, "one webhook-id per event across retries: %s" % by_rid[rid]
        for h, b in r.snapshot():
            verify(ep.secret, h, b)
    finally:
        r.close()


def gateway_delivered(gw, tenant):
    return harness.metrics(gw).get(
        'animate3d_gateway_webhook_deliveries_total{tenant="%s",result="delivered"}' % tenant, 0)


def delivered_everywhere(stack, tenant):
    """Deliveries counted by every gateway of the module still running."""
    total = 0
    for g in stack.gateways:
        if g.proc.poll() is None:
            total += gateway_delivered(g, tenant)
    return total


@pytest.mark.skipif(harness.BACKEND == "postgres",
                    reason="restart on the same SQLite file; on PostgreSQL the module's other "
                           "gateways share the outbox and retry against the dead receiver too, "
                           "pushing the backoff past the bound (failed once in CI: 1 of 3 events "
                           "missing after 120 s)")
def test_sigkill_with_undelivered_events_delivered_after_restart(stack, sim, tiny, tmp_path):
    """Receiver down (connection refused), jobs final, gateway SIGKILLed; receiver up, gateway
    restarted on the same state: every event arrives (after the dead process's leases run out)."""
    probe = Receiver()
    port = probe.port
    probe.close()                   # the port is free: connections are refused
    extra = "webhooks:\n  delivery:\n    timeout_ms: 1000\n"
    state = str(tmp_path / "kill.db")
    g1 = stack.gateway(sim, name="killed", state_path=state, extra_top=extra)
    url = "http://127.0.0.1:%d/hook" % port
    ep = create(g1, "team-a", url)
    rids = start_jobs(g1, "team-a", 3, tiny)
    finish(g1, {"team-a": rids})
    assert wait_for(lambda: harness.metrics(g1).get(
        'animate3d_gateway_webhook_deliveries_total{tenant="team-a",result="retried"}', 0) >= 1)
    stack.kill(g1)
    r = Receiver(port=port)
    try:
        g2 = stack.gateway(sim, name="restarted", state_path=state, extra_top=extra)
        assert wait_for(lambda: {json.loads(b)["data"]["taskId"] for _, b in r.snapshot()} >= set(rids),
                        timeout=120), r.snapshot()
        for h, b in r.snapshot():
            verify(ep.secret, h, b)
        assert g2.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5,
                                       metadata=g2.md("team-a")).url == url
    finally:
        r.close()


def test_passthrough_then_legacy_warning(stack, sim, tmp_path):
    """webhooks.upstream_passthrough (single-tenant only) keeps the old raw upstream endpoints;
    a later start without it names them in one warning line."""
    state = str(tmp_path / "legacy.db")
    g1 = stack.gateway(sim, name="passthrough", state_path=state,
                       extra_top="webhooks:\n  upstream_passthrough: true\n")
    ep = create(g1, "team-a", "http://127.0.0.1:9/legacy")
    assert ep.secret == "", "an upstream endpoint has no gateway secret"
    cookie = sim.login()
    assert ep.id in [e["id"] for e in sim.get_json("/webhook_endpoints", cookie)["endpoints"]]
    with pytest.raises(grpc.RpcError) as e:
        g1.webhooks.RotateSecret(webhooks_pb2.RotateSecretRequest(id=ep.id), timeout=5,
                                 metadata=g1.md("team-a"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    g1.stop()
    g2 = stack.gateway(sim, name="after-passthrough", state_path=state)
    assert wait_for(lambda: "webhook_legacy_endpoints" in g2.log_text(), timeout=10)
    line = [x for x in g2.log_text().splitlines() if "webhook_legacy_endpoints" in x][0]
    doc = json.loads(line)
    assert doc["level"] == "warn" and doc["count"] == 1 and ("team-a:" + ep.id) in doc["endpoints"]
    with pytest.raises(grpc.RpcError) as e:     # no longer a tenant subscription
        g2.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5,
                                metadata=g2.md("team-a"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    harness.http("DELETE", sim.url + "/webhook_endpoints/" + ep.id, headers={"Cookie": cookie})


def test_forged_upstream_webhook_delivers_nothing_until_status_confirms(stack, tiny):
    """A forged (or replayed) upstream webhook saying a running job succeeded: the gateway
    re-reads the status (still running), and the tenant's receiver gets nothing for it."""
    slow = stack.sim(name="slow-forge", job_seconds=60)
    gw = stack.gateway(slow, name="forge")
    r = Receiver()
    try:
        create(gw, "team-a", r.url)
        rid = start_jobs(gw, "team-a", 1, tiny)[0]
        body = json.dumps({"eventType": "job.completed",
                           "data": {"taskId": rid, "status": "success"}}).encode()
        for _ in range(3):
            st, _, _ = harness.http("POST", gw.http_url + "/webhooks/animate3d/sim", body=body,
                                    headers={"Content-Type": "application/json",
                                             "X-DeepMotion-Signature": harness.CLIENT_ID})
            assert st == 200
        assert wait_for(lambda: harness.metrics(gw).get(
            'animate3d_gateway_webhook_refreshes_total{result="refreshed"}', 0) >= 1, timeout=10)
        time.sleep(2.0)         # room for a (wrong) delivery to arrive
        assert r.snapshot() == [], "a forged final reached the tenant"
        s = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=gw.md("team-a"))
        assert s.statuses[0].state not in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE)
    finally:
        r.close()


def test_redirects_not_followed_and_big_answers_cut(gateway, tiny):
    target, redirect, chatty = Receiver(), Receiver(), Receiver()
    eps = []
    try:
        redirect.status, redirect.location = 307, target.url
        chatty.answer = b"x" * (256 * 1024)
        eps = [create(gateway, "team-b", redirect.url), create(gateway, "team-b", chatty.url)]
        before = harness.metrics(gateway)
        rid = start_jobs(gateway, "team-b", 1, tiny)[0]
        finish(gateway, {"team-b": [rid]})
        assert wait_for(lambda: redirect.snapshot() and chatty.snapshot())
        assert wait_for(lambda: harness.metrics(gateway).get(
            'animate3d_gateway_webhook_refusals_total{reason="response_too_large"}', 0)
            > before.get('animate3d_gateway_webhook_refusals_total{reason="response_too_large"}', 0))
        time.sleep(1.0)
        assert target.snapshot() == [], "a redirect was followed"
        log = gateway.log_text()
        assert '"outcome":"retry","http":307' in log
    finally:
        for ep in eps:
            gateway.webhooks.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id=ep.id), timeout=5,
                                            metadata=gateway.md("team-b"))
        for r in (target, redirect, chatty):
            r.close()


@pytest.mark.skipif(harness.BACKEND != "postgres", reason="replicas share their outbox on PostgreSQL")
def test_two_replicas_deliver_each_event_once(stack, sim, tiny):
    """Two replicas on one PostgreSQL both see every final (each polls every job): the outbox
    holds one row per (endpoint, rid) and each is delivered by one replica, once."""
    g1 = stack.gateway(sim, name="rep1")
    g2 = stack.gateway(sim, name="rep2")
    r = Receiver()
    try:
        # earlier tests' endpoints (same database) would share these events: start from none
        for e in g1.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5,
                                           metadata=g1.md("team-a")).endpoints:
            g1.webhooks.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id=e.id), timeout=5,
                                       metadata=g1.md("team-a"))
        # The module's earlier gateways still run on the same database and may deliver some of
        # them too (one did in CI: [9, 0] here): count every live gateway's deliveries.
        before = delivered_everywhere(stack, "team-a")
        create(g1, "team-a", r.url)
        rids = start_jobs(g1, "team-a", 10, tiny)
        finish(g1, {"team-a": rids})
        finish(g2, {"team-a": rids})
        assert wait_for(lambda: {json.loads(b)["data"]["taskId"] for _, b in r.snapshot()} >= set(rids))
        time.sleep(2.0)         # room for a second delivery, if any
        per_rid = {}
        for h, b in r.snapshot():
            per_rid.setdefault(json.loads(b)["data"]["taskId"], []).append(h["webhook-id"])
        assert all(len(per_rid[x]) == 1 for x in rids), per_rid
        both = [gateway_delivered(g, "team-a") for g in (g1, g2)]
        assert delivered_everywhere(stack, "team-a") - before == len(rids), both
    finally:
        r.close()


@pytest.mark.skipif(harness.BACKEND == "postgres",
                    reason="the module's other gateways share the outbox there, with the default "
                           "disable_after_s: they may take the attempts")
def test_endpoint_failing_for_long_is_disabled_with_a_reason(stack, sim, tiny):
    """webhooks.delivery.disable_after_s: 1 and a receiver answering 503: the second failed
    attempt (a few seconds later) disables the endpoint; GetEndpoint says why."""
    gw = stack.gateway(sim, name="disabling",
                       extra_top="webhooks:\n  delivery:\n    disable_after_s: 1\n")
    r = Receiver()
    try:
        r.status = 503
        ep = create(gw, "team-a", r.url)
        rid = start_jobs(gw, "team-a", 1, tiny)[0]
        finish(gw, {"team-a": [rid]})

        def disabled():
            return gw.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5,
                                           metadata=gw.md("team-a"))

        assert wait_for(lambda: disabled().disabled, timeout=30)
        got = disabled()
        assert "deliveries failing for 1s or more" in got.disabled_reason and "HTTP 503" in got.disabled_reason, got
        assert '"event":"webhook_endpoint_disabled"' in gw.log_text()
        n = len(r.snapshot())
        time.sleep(6.0)         # past the next backoff: a disabled endpoint gets no attempt
        assert len(r.snapshot()) == n
    finally:
        r.close()
