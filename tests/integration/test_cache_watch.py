"""Status cache, coalescing/batching, WatchStatus and webhook ingestion, end to end (issue 4).

A gateway of its own in front of a simulator whose jobs take a few seconds, so that statuses stay
in PROGRESS long enough to poll. Upstream load is read from the simulator's /_sim/stats; webhook
timing from the job's completion time as the simulator reports it (GET /list mtime).
"""
import json
import os
import threading
import time

import grpc
import pytest

import harness
from harness import jobs_pb2

JOB_SECONDS = 4
TTL_MS = 1000           # harness.gateway_config: cache.status_ttl_ms
STATUS_ROUTE = "GET /status/{rids}"
BATCH_MAX = 10


@pytest.fixture(scope="module")
def slow_sim(stack):
    return stack.sim(name="slowsim", job_seconds=JOB_SECONDS)


def _gateway(stack, sim, name, max_entries=None):
    # The simulator reads at most 255 bytes of rids from one /status path (about 10 rids): keep
    # batches, hot rids riding along included, within that.
    grpc_port, http_port = harness.free_port(), harness.free_port()
    text = harness.gateway_config(grpc_port, http_port, sim.url,
                                  os.path.join(stack.workdir, name + ".db"))
    assert "batch_max: 50" in text
    text = text.replace("batch_max: 50", "batch_max: %d" % BATCH_MAX)
    if max_entries is not None:
        text = text.replace("cache:\n", "cache:\n  max_entries: %d\n" % max_entries)
    return stack.gateway(sim, name=name, config_text=text, grpc_port=grpc_port, http_port=http_port)


@pytest.fixture(scope="module")
def gw(stack, slow_sim):
    return _gateway(stack, slow_sim, "cachegw")


def _video():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _start(gw, n):
    rids = []
    for i in range(n):
        url = harness.upload_put(gw, "cache-%d.mp4" % i, _video())
        rids.append(harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"])))
    return rids


def _mtime_ms(sim, rid):
    """The simulator's completion time of rid (wall-clock ms)."""
    lst = sim.get_json("/list", sim.login())["list"]
    return [j for j in lst if j["rid"] == rid][0]["mtime"]


def _watch(gw, rids, timeout=15):
    """Runs a WatchStatus stream to its end. -> ([(recv wall time s, JobStatus)], code)."""
    got = []
    stream = gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=rids), timeout=timeout,
                                 metadata=gw.md())
    code = grpc.StatusCode.OK
    try:
        for st in stream:
            got.append((time.time(), st))
            if len(got) > 500:
                break
    except grpc.RpcError as e:
        code = e.code()
    return got, code


def test_concurrent_getstatus_share_upstream_requests(gw, slow_sim):
    rids = _start(gw, 4)
    before = slow_sim.count(STATUS_ROUTE)
    calls = [0]
    errors = []
    lock = threading.Lock()

    t_end = time.monotonic() + 2.5     # about two and a half TTL windows, jobs still running

    def poller():
        while time.monotonic() < t_end:
            try:
                r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids), timeout=5,
                                      metadata=gw.md())
                assert [s.rid for s in r.statuses] == rids, r
            except Exception as e:      # noqa: BLE001  (reported below)
                errors.append(repr(e))
            with lock:
                calls[0] += 1
            time.sleep(0.02)    # 8 pollers: ~400 calls/s, under the tenant's 1000/s rate limit

    threads = [threading.Thread(target=poller) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - t0
    upstream = slow_sim.count(STATUS_ROUTE) - before
    assert not errors, errors[:3]
    assert calls[0] >= 200, calls[0]
    # One GET /status carries all 4 rids; at most about one per TTL window (+ the first miss).
    windows = elapsed * 1000.0 / TTL_MS
    assert 1 <= upstream <= windows + 3, (upstream, elapsed)
    assert upstream * 20 <= calls[0], (upstream, calls[0])
    m = harness.metrics(gw)
    assert m["animate3d_gateway_cache_hits_total"] > 0 and m["animate3d_gateway_status_fetches_total"] >= upstream, m


def test_status_order_duplicates_and_unknown(gw):
    rids = _start(gw, 2)
    unknown = "1" * 22
    r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rids[1], unknown, rids[0], rids[1]]),
                          timeout=5, metadata=gw.md())
    assert [s.rid for s in r.statuses] == [rids[1], rids[0]], r
    with pytest.raises(grpc.RpcError) as e:
        gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[unknown]), timeout=5, metadata=gw.md())
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_progress_then_final_without_webhook(gw, slow_sim):
    rid = _start(gw, 1)[0]
    got, code = _watch(gw, [rid])
    assert code == grpc.StatusCode.OK
    states = [st.state for _, st in got]
    assert states[0] == jobs_pb2.PROGRESS and states[-1] == jobs_pb2.SUCCESS, states
    assert states.count(jobs_pb2.SUCCESS) == 1
    # Consecutive messages differ (only changes are sent).
    pairs = [(st.state, st.step) for _, st in got]
    assert all(a != b for a, b in zip(pairs, pairs[1:])), pairs
    lag_ms = got[-1][0] * 1000 - _mtime_ms(slow_sim, rid)
    assert lag_ms <= TTL_MS + 100 + 100, lag_ms     # TTL + 100 ms, plus the sim's 100 ms cron


def test_many_watchers_one_poll_per_ttl(gw, slow_sim):
    rid = _start(gw, 1)[0]
    before = slow_sim.count(STATUS_ROUTE)
    results = []

    def watcher():
        results.append(_watch(gw, [rid]))

    threads = [threading.Thread(target=watcher) for _ in range(50)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.monotonic() - t0
    upstream = slow_sim.count(STATUS_ROUTE) - before
    assert len(results) == 50
    for got, code in results:
        assert code == grpc.StatusCode.OK and got[-1][1].state == jobs_pb2.SUCCESS
    assert upstream <= elapsed * 1000.0 / TTL_MS + 3, (upstream, elapsed)


def _sim_endpoint(sim, method, path, body=None):
    """The upstream's own webhook endpoints (the gateway registers its one with
    webhooks.public_url; Webhooks.CreateEndpoint makes tenant subscriptions, issue 17)."""
    st, _, out = harness.http(method, sim.url + path, body=body, headers={"Cookie": sim.login()})
    assert 200 <= st < 300, (method, path, st, out[:200])
    return json.loads(out) if out else None


def test_webhook_delivers_final_within_100ms(gw, slow_sim):
    hook = gw.http_url + "/webhooks/animate3d/sim"
    ep = _sim_endpoint(slow_sim, "POST", "/webhook_endpoints", {"url": hook, "events": ["job.completed"]})
    try:
        before = harness.metrics(gw).get('animate3d_gateway_webhooks_in_total{result="accepted"}', 0)
        rids = _start(gw, 3)
        results = {}

        def watcher(r):
            results[r] = _watch(gw, [r])

        threads = [threading.Thread(target=watcher, args=(r,)) for r in rids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for r in rids:
            got, code = results[r]
            assert code == grpc.StatusCode.OK and got[-1][1].state == jobs_pb2.SUCCESS, got
            lag_ms = got[-1][0] * 1000 - _mtime_ms(slow_sim, r)
            assert lag_ms <= 100, (r, lag_ms)
        after = harness.metrics(gw).get('animate3d_gateway_webhooks_in_total{result="accepted"}', 0)
        assert after - before >= 3
    finally:
        _sim_endpoint(slow_sim, "DELETE", "/webhook_endpoints/" + ep["id"])


BODY = json.dumps({"eventType": "job.completed",
                   "data": {"taskId": "2" * 22, "status": "success"}}).encode()


@pytest.mark.parametrize("path,sig,body,code,result", [
    ("/webhooks/animate3d/sim", "forged-signature", BODY, 401, "bad_signature"),
    ("/webhooks/animate3d/sim", None, BODY, 401, "bad_signature"),
    ("/webhooks/animate3d/sim", harness.CLIENT_ID + "x", BODY, 401, "bad_signature"),
    ("/webhooks/animate3d/nobody", harness.CLIENT_ID, BODY, 404, "bad_path"),
    ("/webhooks/animate3d/sim", harness.CLIENT_ID, b"{not json", 400, "malformed"),
    ("/webhooks/animate3d/sim", harness.CLIENT_ID, b" " * (100 << 10), 413, "too_large"),
    ("/webhooks/animate3d/sim", harness.CLIENT_ID, BODY, 200, "accepted"),
])
def test_webhook_rejections_counted(gw, path, sig, body, code, result):
    key = 'animate3d_gateway_webhooks_in_total{result="%s"}' % result
    before = harness.metrics(gw).get(key, 0)
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-DeepMotion-Signature"] = sig
    st, _, _ = harness.http("POST", gw.http_url + path, body=body, headers=headers)
    assert st == code
    assert harness.metrics(gw).get(key, 0) == before + 1
    # Nothing else disturbed: the gateway still answers.
    assert gw.health.Check(harness.health_pb2.HealthCheckRequest(), timeout=5).status == \
        harness.health_pb2.HealthCheckResponse.SERVING


def test_cancelled_watchers_are_freed(gw):
    rids = _start(gw, 2)
    streams = [gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=rids), timeout=30,
                                   metadata=gw.md()) for _ in range(20)]
    for s in streams:
        next(s)         # the stream is open and registered
    assert harness.metrics(gw)["animate3d_gateway_watch_streams"] >= 20
    for s in streams:
        s.cancel()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and harness.metrics(gw)["animate3d_gateway_watch_streams"] != 0:
        time.sleep(0.05)
    assert harness.metrics(gw)["animate3d_gateway_watch_streams"] == 0


def test_download_links_cached_until_expiry(gw, slow_sim):
    rid = _start(gw, 1)[0]
    route = "GET /download/{rids}"
    # Unfinished: a link without URLs, never cached.
    before = slow_sim.count(route)
    for _ in range(2):
        r = gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=5,
                                    metadata=gw.md())
        assert [l.rid for l in r.links] == [rid] and not r.links[0].groups, r
    assert slow_sim.count(route) == before + 2
    assert harness.wait_job(gw, rid, timeout=JOB_SECONDS + 10).state == jobs_pb2.SUCCESS
    # Finished: the signed URLs live an hour; the second answer comes from the cache.
    first = gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=5,
                                    metadata=gw.md())
    urls = [f.url for l in first.links for g in l.groups for f in g.files]
    assert urls and all("X-Goog-Expires=" in u for u in urls), urls
    mid = slow_sim.count(route)
    again = gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid, rid]), timeout=5,
                                    metadata=gw.md())
    assert slow_sim.count(route) == mid
    assert again == first


def test_tiny_cache_evicts_least_recently_used(stack, sim):
    """cache.max_entries: 2 -- three finished jobs: the least recently used one is fetched again."""
    tiny = _gateway(stack, sim, "tinygw", max_entries=2)
    rids = _start(tiny, 3)
    for r in rids:
        assert harness.wait_job(tiny, r).state in harness.TERMINAL
    for r in rids:      # each final now cached once, in this order: rids[0] was evicted
        tiny.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[r]), timeout=5, metadata=tiny.md())
    m = harness.metrics(tiny)
    assert m["animate3d_gateway_cache_entries"] == 2 and m["animate3d_gateway_cache_evictions_total"] >= 1, m
    before = sim.count(STATUS_ROUTE)
    tiny.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rids[2]]), timeout=5, metadata=tiny.md())
    assert sim.count(STATUS_ROUTE) == before, "a cached final went upstream"
    r = tiny.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rids[0]]), timeout=5, metadata=tiny.md())
    assert r.statuses[0].state in harness.TERMINAL
    assert sim.count(STATUS_ROUTE) == before + 1, "the evicted final was not fetched again"


@pytest.mark.parametrize("rids,needle", [
    ([], "rids must hold 1..100 rids (got 0)"),
    (["a/b"], "rids[0] must be 1..64 characters"),
    (["x" * 65], "rids[0] must be 1..64 characters"),
    (["r%d" % i for i in range(101)], "rids has more than 100 entries"),
])
def test_invalid_rids_rejected_like_the_uncached_path(gw, rids, needle):
    for call, req in [(gw.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=rids)),
                      (gw.jobs.WatchStatus, jobs_pb2.WatchStatusRequest(rids=rids))]:
        with pytest.raises(grpc.RpcError) as e:
            r = call(req, timeout=5, metadata=gw.md())
            list(r) if not isinstance(r, jobs_pb2.GetStatusResponse) else None
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        assert needle in e.value.details(), e.value.details()
