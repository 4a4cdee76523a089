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


def _cluster_config(stack, name, grpc_port, http_port, public_http_port, seal, ttl_ms=TTL_MS,
                    key_prefix=None, rate=(1000, 2000)):
    text = harness.gateway_config(grpc_port, http_port, "SIMURL",
                                  os.path.join(stack.workdir, name + ".db"), rate=rate)
    text, n = re.subn(r"state:\n  path: [^\n]*\n",
                      'state:\n  postgres:\n    dsn: "hostaddr=127.0.0.1 port=%s dbname=%s user=%s"\n'
                      "    password_file: %s\n"
                      % (os.environ["A3D_PG_PORT"], os.environ.get("A3D_PG_DB", "a3d"),
                         os.environ.get("A3D_PG_USER", "a3d"), os.environ["A3D_PG_PASSWORD_FILE"]),
                      text)
    assert n == 1, text
    assert "status_ttl_ms: 1000" in text
    text = text.replace("status_ttl_ms: 1000", "status_ttl_ms: %d" % ttl_ms)
    # The simulator reads at most 255 bytes of rids from one /status path (about 10 rids).
    text = text.replace("batch_max: 50", "batch_max: 10")
    redis = ("redis:\n  url: redis://127.0.0.1:%s/0\n" % os.environ["A3D_REDIS_PORT"])
    if os.environ.get("A3D_REDIS_PASSWORD_FILE") and os.path.getsize(os.environ["A3D_REDIS_PASSWORD_FILE"]):
        redis += "  password_file: %s\n" % os.environ["A3D_REDIS_PASSWORD_FILE"]
    redis += "  seal_key_file: %s\n" % seal
    if key_prefix:
        redis += '  key_prefix: "%s"\n' % key_prefix
    # The job follower polls the module's other jobs (nobody else polls them) on its own
    # schedule; those requests are not the callers' polling this file measures.
    text += "cluster:\n  expected_replicas: 3\nfollower:\n  enabled: false\n" + redis
    if public_http_port:
        text = harness.add_webhooks(text, "  public_url: http://127.0.0.1:%d\n" % public_http_port)
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


# Coordinated polling (issue 16): a cluster of its own, on a simulator whose jobs stay in progress
# for the whole measurement, with a short TTL so that a few seconds hold many windows.
POLL_TTL_MS = 500
POLL_JOBS = 60          # in-progress jobs polled (6 upstream requests of 10 rids per window)
POLL_SLICE = 10         # rids per GetStatus
POLL_CALLERS = 36       # pollers; each slice is polled through every replica
POLL_SECONDS = 4.0      # per phase: 8 TTL windows
POLL_BOUND = 1.2        # 3 replicas / 1 replica, upstream GET /status per TTL window
POLL_BATCH = 10         # batch_max of _cluster_config
# What one gateway without Redis sends per window: every hot rid once, in full requests. Both
# figures are held to it, not only to each other: a replica alone coordinates too (it claims), so
# a ratio hides what both do wrong (claims polled claim by claim: 48 + 12 rids went out as 7
# requests, not 6; with the MGET race, 8 per window on one replica, 7 on three, ratio 0.9).
POLL_IDEAL = POLL_JOBS // POLL_BATCH
POLL_IDEAL_BOUND = 1.1


@pytest.fixture(scope="module")
def poll_cluster(stack):
    sim = stack.sim(name="pollsim", job_seconds=120)
    seal = os.path.join(stack.workdir, "poll-seal.key")
    with open(seal, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(seal, 0o600)
    gws = []
    for name in ("poll-a", "poll-b", "poll-c"):
        gp, hp = harness.free_port(), harness.free_port()
        # A key prefix of its own: the other cluster's "sim" account is another upstream.
        # Tenant limits far above the pollers' calls: upstream load is what is measured.
        text = _cluster_config(stack, name, gp, hp, None, seal, ttl_ms=POLL_TTL_MS,
                               key_prefix="a3dpoll:", rate=(30000, 60000))
        gws.append(stack.gateway(sim, name=name, config_text=text.replace("SIMURL", sim.url),
                                 grpc_port=gp, http_port=hp))
    return sim, gws


def _poll_load(gws, rids, seconds, callers=9, slice_len=None):
    """callers pollers spread round-robin over gws for `seconds`; each polls a slice of rids
    (all of them by default), every slice through every gw. -> GetStatus calls made."""
    errors, calls = [], [0]
    t_end = time.monotonic() + seconds
    slice_len = slice_len or len(rids)
    nslices = max(1, len(rids) // slice_len)

    def poller(i):
        g = gws[i % len(gws)]
        k = (i // len(gws)) % nslices
        mine = rids[k * slice_len:(k + 1) * slice_len]
        while time.monotonic() < t_end:
            try:
                r = g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=mine), timeout=5, metadata=g.md())
                assert len(r.statuses) == len(mine)
                calls[0] += 1
            except grpc.RpcError as e:
                errors.append(e.code())
            time.sleep(0.03)

    threads = [threading.Thread(target=poller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    assert not errors, errors[:3]
    return calls[0]


def _poll_figure(sim, gws, rids):
    before, t0 = sim.count(STATUS_ROUTE), time.monotonic()
    calls = _poll_load(gws, rids, POLL_SECONDS, callers=POLL_CALLERS, slice_len=POLL_SLICE)
    windows = (time.monotonic() - t0) * 1000.0 / POLL_TTL_MS
    return (sim.count(STATUS_ROUTE) - before) / windows, calls


def test_polling_through_all_replicas(poll_cluster):
    """Upstream GET /status per TTL window, callers on one replica vs the same callers spread
    over three: one replica per window holds the lease and polls the cluster's hot rids, the
    others serve what it published."""
    sim, gws = poll_cluster
    rids = _start(gws[0], POLL_JOBS, "poll")
    for g in gws:       # every replica has its callers' rids hot before the measurement
        _poll_load([g], rids, 0.6, callers=POLL_JOBS // POLL_SLICE, slice_len=POLL_SLICE)
    one, calls1 = _poll_figure(sim, gws[:1], rids)
    three, calls3 = _poll_figure(sim, gws, rids)
    states = [st.state for st in gws[0].jobs.GetStatus(
        jobs_pb2.GetStatusRequest(rids=rids[:POLL_SLICE]), timeout=5, metadata=gws[0].md()).statuses]
    m = {w: sum(_metric(g, w) for g in gws) for w in
         ("lease_taken", "lease_lost", "polled_for_cluster", "served_from_cluster", "fallback",
          "claim_stored", "progress_applied")}
    print("\nupstream GET /status per TTL window (%d in-progress jobs, %d callers, TTL %d ms): "
          "1 replica %.1f (%d calls), 3 replicas %.1f (%d calls), ratio %.2f, ideal %d; %s"
          % (POLL_JOBS, POLL_CALLERS, POLL_TTL_MS, one, calls1, three, calls3, three / one, POLL_IDEAL,
             " ".join("%s=%d" % kv for kv in sorted(m.items()))))
    assert all(s == jobs_pb2.PROGRESS for s in states), states   # still in progress throughout
    assert m["lease_taken"] > 0 and m["progress_applied"] > 0
    assert three <= POLL_BOUND * one, (one, three)
    assert one <= POLL_IDEAL_BOUND * POLL_IDEAL, (one, POLL_IDEAL)
    assert three <= POLL_IDEAL_BOUND * POLL_IDEAL, (three, POLL_IDEAL)


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
