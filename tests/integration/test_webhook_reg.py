"""Webhook self-registration (webhooks.public_url) and the configurable path (webhooks.path_prefix).

Each test runs its own simulator, so the endpoint lists it reads are its own. The gateway's
public_url points at its own HTTP listener (http://127.0.0.1:<port>), where the simulator
delivers job.completed. The status cache TTL is long (10 s) here, so a final state that reaches a
WatchStatus watcher within a second of the job's end can only have come through the webhook.
"""
import json
import signal
import threading
import time

import grpc

import harness
from harness import jobs_pb2

TTL_MS = 10000
REG_TIMEOUT_S = 10.0        # registration is one GET (+ one POST) after the login
ACCEPTED = 'animate3d_gateway_webhooks_in_total{result="accepted"}'
BAD_PATH = 'animate3d_gateway_webhooks_in_total{result="bad_path"}'


def _config(sim, grpc_port, http_port, state, prefix=None, public=True):
    text = harness.gateway_config(grpc_port, http_port, sim.url, state)
    assert "status_ttl_ms: 1000" in text
    text = text.replace("status_ttl_ms: 1000", "status_ttl_ms: %d" % TTL_MS)
    lines = []
    if prefix:
        lines.append("  path_prefix: %s" % prefix)
    if public:
        lines.append("  public_url: http://127.0.0.1:%d/" % http_port)     # trailing '/' is stripped
    if lines:
        text = harness.add_webhooks(text, "\n".join(lines) + "\n")
    return text


def _gateway(stack, sim, name, prefix=None, ports=None, public=True):
    grpc_port, http_port = ports or (harness.free_port(), harness.free_port())
    state = "%s/%s.db" % (stack.workdir, name)
    gw = stack.gateway(sim, name=name, grpc_port=grpc_port, http_port=http_port,
                       config_text=_config(sim, grpc_port, http_port, state, prefix, public))
    return gw, (grpc_port, http_port)


def _endpoints(sim):
    return sim.get_json("/webhook_endpoints", sim.login())["endpoints"]


def _ours(sim, url):
    return [e for e in _endpoints(sim) if e["url"] == url]


def _wait_log(gw, text, count=1, timeout=REG_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.log_text().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("%r not logged %d time(s) within %.0fs; log tail:\n%s"
                         % (text, count, timeout, gw.log_text()[-3000:]))


def _video():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _start_job(gw, name):
    url = harness.upload_put(gw, name, _video())
    return harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))


def _watch(gw, rid, timeout=20):
    """A WatchStatus stream to its end -> ([(recv wall time s, JobStatus)], code)."""
    got = []
    code = grpc.StatusCode.OK
    try:
        for st in gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=timeout,
                                      metadata=gw.md()):
            got.append((time.time(), st))
            if len(got) > 200:
                break
    except grpc.RpcError as e:
        code = e.code()
    return got, code


def _mtime_ms(sim, rid):
    return [j for j in sim.get_json("/list", sim.login())["list"] if j["rid"] == rid][0]["mtime"]


def _delivered_to_watcher(gw, sim, name):
    """One job: its final state reaches a watcher through the webhook. -> lag in ms."""
    before = harness.metrics(gw).get(ACCEPTED, 0)
    rid = _start_job(gw, name)
    res = []
    t = threading.Thread(target=lambda: res.append(_watch(gw, rid)))
    t.start()
    t.join(timeout=30)
    assert res, "watcher did not finish"
    got, code = res[0]
    assert code == grpc.StatusCode.OK, code
    assert got[-1][1].state == jobs_pb2.SUCCESS, [s.state for _, s in got]
    lag_ms = got[-1][0] * 1000 - _mtime_ms(sim, rid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and harness.metrics(gw).get(ACCEPTED, 0) < before + 1:
        time.sleep(0.05)
    assert harness.metrics(gw).get(ACCEPTED, 0) >= before + 1
    return lag_ms


def test_one_endpoint_registered_and_kept_across_restart(stack):
    sim = stack.sim(name="sim-restart", job_seconds=2)
    gw, ports = _gateway(stack, sim, "gw-restart")
    url = "http://127.0.0.1:%d/webhooks/animate3d/sim" % ports[1]
    _wait_log(gw, '"webhook endpoint registered"')
    ours = _ours(sim, url)
    assert len(ours) == 1 and ours[0]["events"] == ["job.completed"], _endpoints(sim)
    assert sim.count("POST /webhook_endpoints") == 1

    # Deliveries reach the gateway and the watcher learns the final state at once.
    lag_ms = _delivered_to_watcher(gw, sim, "reg-1.mp4")
    assert lag_ms <= 1500, lag_ms       # polling alone would take up to TTL_MS

    # Restart on the same ports: the endpoint is found, nothing new is created.
    rc, killed = gw.stop()
    assert rc == 0 and not killed
    gw2, _ = _gateway(stack, sim, "gw-restart-2", ports=ports)
    _wait_log(gw2, '"webhook endpoint present"')
    assert '"webhook endpoint registered"' not in gw2.log_text()
    assert len(_ours(sim, url)) == 1, _endpoints(sim)
    assert sim.count("POST /webhook_endpoints") == 1
    lag_ms = _delivered_to_watcher(gw2, sim, "reg-2.mp4")
    assert lag_ms <= 1500, lag_ms


def test_custom_prefix_is_registered_and_served(stack):
    sim = stack.sim(name="sim-prefix", job_seconds=2)
    gw, ports = _gateway(stack, sim, "gw-prefix", prefix="/hooks/a3d/")
    base = "http://127.0.0.1:%d" % ports[1]
    _wait_log(gw, '"webhook endpoint registered"')
    urls = [e["url"] for e in _endpoints(sim)]
    assert urls == [base + "/hooks/a3d/sim"], urls

    body = json.dumps({"eventType": "job.completed",
                       "data": {"taskId": "2" * 22, "status": "success"}}).encode()
    hdrs = {"Content-Type": "application/json", "X-DeepMotion-Signature": harness.CLIENT_ID}
    m0 = harness.metrics(gw)
    st, _, _ = harness.http("POST", base + "/webhooks/animate3d/sim", body=body, headers=hdrs)
    assert st == 404        # the default path is no longer served
    m1 = harness.metrics(gw)
    assert m1.get(BAD_PATH, 0) == m0.get(BAD_PATH, 0) + 1
    st, _, _ = harness.http("POST", base + "/hooks/a3d/sim", body=body, headers=hdrs)
    assert st == 200
    assert harness.metrics(gw).get(ACCEPTED, 0) == m1.get(ACCEPTED, 0) + 1
    st, _, _ = harness.http("POST", base + "/hooks/a3d/sim", body=body,
                            headers={"Content-Type": "application/json",
                                     "X-DeepMotion-Signature": "forged"})
    assert st == 401

    lag_ms = _delivered_to_watcher(gw, sim, "prefix.mp4")
    assert lag_ms <= 1500, lag_ms


def test_existing_duplicates_and_other_urls_are_left_alone(stack):
    sim = stack.sim(name="sim-dups", job_seconds=2)
    grpc_port, http_port = harness.free_port(), harness.free_port()
    url = "http://127.0.0.1:%d/webhooks/animate3d/sim" % http_port
    other = "http://127.0.0.1:9/elsewhere"
    cookie = sim.login()
    made = []
    for u in (url, other, url):
        st, _, b = harness.http("POST", sim.url + "/webhook_endpoints",
                                body={"url": u, "events": ["job.completed"]},
                                headers={"Cookie": cookie})
        assert st == 200, b
        made.append(json.loads(b)["id"])
    gw, _ = _gateway(stack, sim, "gw-dups", ports=(grpc_port, http_port))
    _wait_log(gw, '"webhook endpoint present"')
    _wait_log(gw, '"duplicate webhook endpoint left in place"')
    eps = _endpoints(sim)
    assert sorted(e["id"] for e in eps) == sorted(made), eps       # none created, none deleted
    assert sim.count("POST /webhook_endpoints") == 3
    assert sim.count("DELETE /webhook_endpoints/{id}") == 0
    assert made[0] in gw.log_text() and made[2] in gw.log_text()   # kept one, duplicate logged


def test_registration_retries_after_upstream_errors(stack):
    sim = stack.sim(name="sim-retry", job_seconds=2)
    sim.faults("POST /webhook_endpoints", status=503, count=2)
    gw, ports = _gateway(stack, sim, "gw-retry")
    url = "http://127.0.0.1:%d/webhooks/animate3d/sim" % ports[1]
    # Backoff 0.5-1 s, then 1-2 s: registered within a few seconds after two failures.
    _wait_log(gw, '"webhook endpoint registered"', timeout=REG_TIMEOUT_S)
    assert gw.log_text().count("webhook endpoint registration failed, will retry") == 2
    # Read before our own GET below (the simulator counts that one too).
    assert sim.count("GET /webhook_endpoints") == 3     # each retry lists first
    assert sim.count("POST /webhook_endpoints") == 3
    assert len(_ours(sim, url)) == 1, _endpoints(sim)


def test_without_public_url_nothing_is_registered(stack):
    sim = stack.sim(name="sim-off", job_seconds=2)
    gw, _ = _gateway(stack, sim, "gw-off", public=False)
    # Wait for the login, then a little: registration would have gone by now.
    deadline = time.monotonic() + REG_TIMEOUT_S
    while time.monotonic() < deadline and sim.count("GET /session/auth") == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    assert sim.count("GET /webhook_endpoints") == 0
    assert sim.count("POST /webhook_endpoints") == 0
    assert _endpoints(sim) == []
    assert '"event":"webhook_reg"' not in gw.log_text()


def test_reload_keeps_the_registered_prefix(stack):
    sim = stack.sim(name="sim-reload", job_seconds=2)
    gw, ports = _gateway(stack, sim, "gw-reload")
    _wait_log(gw, '"webhook endpoint registered"')
    base = "http://127.0.0.1:%d" % ports[1]
    with open(gw.config_path, "w") as f:
        f.write(_config(sim, ports[0], ports[1], gw.state_path, prefix="/other/"))
    gw.proc.send_signal(signal.SIGHUP)
    _wait_log(gw, '"key":"webhooks.path_prefix"')
    _wait_log(gw, '"configuration reloaded"')
    body = json.dumps({"eventType": "job.completed",
                       "data": {"taskId": "3" * 22, "status": "success"}}).encode()
    hdrs = {"Content-Type": "application/json", "X-DeepMotion-Signature": harness.CLIENT_ID}
    # The listener keeps serving what it registered until the next restart.
    st, _, _ = harness.http("POST", base + "/webhooks/animate3d/sim", body=body, headers=hdrs)
    assert st == 200
    st, _, _ = harness.http("POST", base + "/other/sim", body=body, headers=hdrs)
    assert st == 404
    assert [e["url"] for e in _endpoints(sim)] == [base + "/webhooks/animate3d/sim"]
