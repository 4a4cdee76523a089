"""Several replicas sharing statuses through Redis (issue 16), end to end.

Three gateways on one PostgreSQL (job ownership) and one Redis, in front of one simulator, all
started together with the same webhooks.public_url (replica A's HTTP listener stands for the
Service in front of the replicas): one upstream webhook endpoint is created, deliveries reach A,
and WatchStatus streams on B and C learn the final states through Redis (A reads each final
status once and publishes it). Then polling through every replica, and Redis killed and back.

Runs under tests/lib/with-redis and tests/lib/with-postgres (ctest integration.cluster_status);
skipped without them.
"""
import os
import re
import subprocess
import threading
import time

import grpc
import pytest

import harness
from harness import jobs_pb2

for _v in ("A3D_REDIS_PORT", "A3D_REDIS_CTL", "A3D_PG_PORT"):
    if not os.environ.get(_v):
        pytest.skip("needs tests/lib/with-redis and tests/lib/with-postgres (%s unset)" % _v,
                    allow_module_level=True)

JOB_SECONDS = 2
TTL_MS = 3000           # longer than a job: a final state seen before TTL came from the fan-out
STATUS_ROUTE = "GET /status/{rids}"
FANOUT_JOBS = 8         # jobs whose final state is timed on B and C
FANOUT_BOUND_MS = 2000  # generous bound asserted; the p99 is printed (goal: 100 ms)
NAMES = ("gw-a", "gw-b", "gw-c")


def _metric(gw, what):
    return harness.metrics(gw).get('animate3d_gateway_cluster_status_total{what="%s"}' % what, 0)


def _cluster_config(stack, name, grpc_port, http_port, public_http_port, seal):
    text = harness.gateway_config(grpc_port, http_port, "SIMURL",
                                  os.path.join(stack.workdir, name + ".db"))
    text, n = re.subn(r"state:\n  path: [^\n]*\n",
                      'state:\n  postgres:\n    dsn: "hostaddr=127.0.0.1 port=%s dbname=%s user=%s"\n'
                      "    password_file: %s\n"
                      % (os.environ["A3D_PG_PORT"], os.environ.get("A3D_PG_DB", "a3d"),
                         os.environ.get("A3D_PG_USER", "a3d"), os.environ["A3D_PG_PASSWORD_FILE"]),
                      text)
    assert n == 1, text
    assert "status_ttl_ms: 1000" in text
    text = text.replace("status_ttl_ms: 1000", "status_ttl_ms: %d" % TTL_MS)
    # The simulator reads at most 255 bytes of rids from one /status path (about 10 rids).
    text = text.replace("batch_max: 50", "batch_max: 10")
    redis = ("redis:\n  url: redis://127.0.0.1:%s/0\n" % os.environ["A3D_REDIS_PORT"])
    if os.environ.get("A3D_REDIS_PASSWORD_FILE") and os.path.getsize(os.environ["A3D_REDIS_PASSWORD_FILE"]):
        redis += "  password_file: %s\n" % os.environ["A3D_REDIS_PASSWORD_FILE"]
    redis += "  seal_key_file: %s\n" % seal
    text += "cluster:\n  expected_replicas: 3\n" + redis
    text += "webhooks:\n  public_url: http://127.0.0.1:%d\n" % public_http_port
    return text


@pytest.fixture(scope="module")
def cluster(stack):
    sim = stack.sim(name="clustersim", job_seconds=JOB_SECONDS)
    seal = os.path.join(stack.workdir, "seal.key")
    with open(seal, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(seal, 0o600)
    ports = [(harness.free_port(), harness.free_port()) for _ in NAMES]
    gws, errors = {}, []

    def start(i):
        name = NAMES[i]
        text = _cluster_config(stack, name, ports[i][0], ports[i][1], ports[0][1], seal)
        text = text.replace("SIMURL", sim.url)
        try:
            gws[name] = stack.gateway(sim, name=name, config_text=text, grpc_port=ports[i][0],
                                      http_port=ports[i][1])
        except Exception as e:      # noqa: BLE001  (reported below)
            errors.append(repr(e))

    # Started together: the registration lock is what keeps them to one endpoint.
    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(NAMES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return sim, [gws[n] for n in NAMES]


def _redis_ctl(what):
    subprocess.run([os.environ["A3D_REDIS_CTL"], what], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)


def _video():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _start(gw, n, tag):
    rids = []
    for i in range(n):
        url = harness.upload_put(gw, "cl-%s-%d.mp4" % (tag, i), _video())
        rids.append(harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"])))
    return rids


def _watch(gw, rid, out, timeout=20):
    got, code = [], grpc.StatusCode.OK
    try:
        for st in gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=timeout,
                                      metadata=gw.md()):
            got.append((time.time(), st))
    except grpc.RpcError as e:
        code = e.code()
    out.append((gw.name, rid, got, code))


def _mtimes(sim):
    return {j["rid"]: j["mtime"] for j in sim.get_json("/list", sim.login())["list"]}


def _watch_all(gws, rids):
    """WatchStatus on every gw for every rid, to the end. -> [(gw name, rid, got, code)]."""
    out = []
    threads = [threading.Thread(target=_watch, args=(g, r, out)) for g in gws for r in rids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    assert len(out) == len(threads), "watchers did not finish"
    return out


def _lags_ms(sim, results):
    mt = _mtimes(sim)
    lags = []
    for name, rid, got, code in results:
        assert code == grpc.StatusCode.OK, (name, rid, code)
        assert got and got[-1][1].state == jobs_pb2.SUCCESS, (name, rid, [s.state for _, s in got])
        lags.append(got[-1][0] * 1000 - mt[rid])
    return sorted(lags)


def _p99(xs):
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("not within %.0fs: %s" % (timeout, what))


def test_replicas_started_together_register_one_endpoint(cluster):
    sim, gws = cluster
    url = "%s/webhooks/animate3d/sim" % gws[0].http_url
    _wait(lambda: all(harness.metrics(g).get("animate3d_gateway_webhook_endpoints_registered", 0) == 1
                      for g in gws), 20, "every replica sees its endpoint in place")
    eps = sim.get_json("/webhook_endpoints", sim.login())["endpoints"]
    ours = [e for e in eps if e["url"] == url]
    created = sum(harness.metrics(g).get('animate3d_gateway_webhook_registrations_total{result="created"}', 0)
                  for g in gws)
    print("\nwebhook endpoints: %d with our url, %d created, POST /webhook_endpoints %d"
          % (len(ours), created, sim.count("POST /webhook_endpoints")))
    assert len(ours) == 1, eps
    assert created == 1
    assert sim.count("POST /webhook_endpoints") == 1


def test_webhook_to_a_reaches_watchers_on_b_and_c(cluster):
    sim, gws = cluster
    a, others = gws[0], gws[1:]
    applied = [_metric(g, "applied") for g in others]
    rids = _start(a, FANOUT_JOBS, "fan")
    results = _watch_all(others, rids)
    lags = _lags_ms(sim, results)
    print("\nfan-out: %d finals on B and C, lag after upstream completion: p50 %.0f ms, p99 %.0f ms, "
          "max %.0f ms (TTL %d ms)" % (len(lags), lags[len(lags) // 2], _p99(lags), lags[-1], TTL_MS))
    assert lags[-1] <= FANOUT_BOUND_MS, lags
    for g, before in zip(others, applied):
        assert _metric(g, "applied") > before, g.name
    assert _metric(a, "published") >= FANOUT_JOBS


def test_finals_served_from_redis_without_upstream(cluster):
    """A final read by A is served by B and C without a GET /status of their own: from the
    published message (cached on arrival) or, had it been missed, from Redis."""
    sim, gws = cluster
    a = gws[0]
    rid = _start(a, 1, "final")[0]
    harness.wait_job(a, rid, timeout=20)
    before = sim.count(STATUS_ROUTE)
    for g in gws[1:]:
        r = g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=g.md())
        assert r.statuses[0].state == jobs_pb2.SUCCESS
    assert sim.count(STATUS_ROUTE) == before


def _poll_load(gws, rids, seconds):
    """Pollers spread round-robin over gws for `seconds`."""
    errors = []
    t_end = time.monotonic() + seconds

    def poller(g):
        while time.monotonic() < t_end:
            try:
                g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids), timeout=5, metadata=g.md())
            except grpc.RpcError as e:
                errors.append(e.code())
            time.sleep(0.02)

    threads = [threading.Thread(target=poller, args=(gws[i % len(gws)],)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    assert not errors, errors[:3]


def test_polling_through_all_replicas(cluster):
    """Upstream GET /status per TTL window, one replica vs three (printed; coalescing the
    in-progress polling across replicas is not built yet: about 3x is expected)."""
    sim, gws = cluster
    figures = {}
    for label, targets in (("1 replica", gws[:1]), ("3 replicas", gws)):
        rids = _start(gws[0], 4, label[0])
        time.sleep(0.2)
        before, t0 = sim.count(STATUS_ROUTE), time.monotonic()
        _poll_load(targets, rids, 1.5)
        windows = (time.monotonic() - t0) * 1000.0 / TTL_MS
        figures[label] = (sim.count(STATUS_ROUTE) - before) / max(windows, 0.5)
        _wait(lambda: all(st.state == jobs_pb2.SUCCESS for st in gws[0].jobs.GetStatus(
            jobs_pb2.GetStatusRequest(rids=rids), timeout=5, metadata=gws[0].md()).statuses),
            20, "jobs done")
    print("\nupstream GET /status per TTL window: 1 replica %.1f, 3 replicas %.1f"
          % (figures["1 replica"], figures["3 replicas"]))
    assert figures["3 replicas"] <= 3 * figures["1 replica"] + 3


def test_redis_killed_then_back(cluster):
    sim, gws = cluster
    a, others = gws[0], gws[1:]
    _redis_ctl("kill")
    try:
        failed = _metric(a, "publish_failed")
        rids = _start(a, 2, "down")
        results = _watch_all(others, rids)
        lags = _lags_ms(sim, results)      # every watcher got SUCCESS, by polling
        print("\nRedis down: finals by polling, max lag %.0f ms (TTL %d ms)" % (lags[-1], TTL_MS))
        for g in gws:
            assert g.proc.poll() is None, g.name + " exited"
        assert _metric(a, "publish_failed") > failed
    finally:
        resub = [_metric(g, "resubscribed") for g in gws]
        _redis_ctl("start")
    # Back: every replica subscribed again, then the fan-out works again.
    _wait(lambda: all(_metric(g, "resubscribed") > r for g, r in zip(gws, resub)), 20,
          "replicas subscribed again")
    _wait(lambda: all(harness.metrics(g).get('animate3d_gateway_redis_connections{what="commands"}', 0) == 1
                      for g in gws), 20, "replicas connected again")
    applied = [_metric(g, "applied") for g in others]
    rids = _start(a, 2, "back")
    lags = _lags_ms(sim, _watch_all(others, rids))
    print("\nRedis back: fan-out max lag %.0f ms" % lags[-1])
    assert lags[-1] <= FANOUT_BOUND_MS, lags
    for g, before in zip(others, applied):
        assert _metric(g, "applied") > before, g.name
