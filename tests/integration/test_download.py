"""GetDownloadUrls through the link cache and the batcher (gateway/svc/download.c, issue 23).

Concurrent calls for one finished job cost one upstream GET /download, calls for several jobs in
one batch window one GET /download/a,b; a second call is served from the cache; a link is never
served within GW_CACHE_LINK_MARGIN_S (60 s) of its signed URLs' expiry (a simulator with a short
--url-ttl); and the cache never answers a tenant that does not own the rid.
"""
import calendar
import json
import os
import time
import urllib.parse

import grpc

import harness
from harness import jobs_pb2

ROUTE = "GET /download/{rids}"
MARGIN_S = 60           # gateway/api/cache.h: GW_CACHE_LINK_MARGIN_S


def _gateway(stack, sim, name, window_ms=5):
    grpc_port, http_port = harness.free_port(), harness.free_port()
    text = harness.gateway_config(grpc_port, http_port, sim.url,
                                  os.path.join(stack.workdir, name + ".db"))
    assert "batch_window_ms: 5\n" in text
    text = text.replace("batch_window_ms: 5\n", "batch_window_ms: %d\n" % window_ms)
    return stack.gateway(sim, name=name, config_text=text, grpc_port=grpc_port, http_port=http_port)


def _finished_jobs(gw, n, tenant="team-a"):
    data = open(harness.TINY_MP4, "rb").read()
    rids = []
    for i in range(n):
        url = harness.upload_put(gw, "dl-%d.mp4" % i, data, tenant=tenant)
        rids.append(harness.start_job(gw, tenant=tenant, upload_url=url,
                                      params=jobs_pb2.Params(formats=["bvh", "fbx"])))
    for r in rids:
        assert harness.wait_job(gw, r, tenant=tenant).state == jobs_pb2.SUCCESS
    return rids


def _links(gw, rids, tenant="team-a"):
    return gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=rids), timeout=10,
                                   metadata=gw.md(tenant))


def _urls(resp):
    return [f.url for l in resp.links for g in l.groups for f in g.files]


def _expiry(url):
    """Unix seconds at which a signed URL stops working (X-Goog-Date + X-Goog-Expires)."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    date = time.strptime(q["X-Goog-Date"][0], "%Y%m%dT%H%M%SZ")
    return calendar.timegm(date) + int(q["X-Goog-Expires"][0])


def _download_paths(sim):
    st, _, body = harness.http("GET", sim.url + "/_sim/requests")
    assert st == 200
    return [r["path"] for r in json.loads(body)["requests"]
            if r["method"] == "GET" and r["path"].startswith("/download/")]


def test_concurrent_calls_share_one_fetch_then_the_cache(stack):
    sim = stack.sim(name="dlsim", job_seconds=1)
    gw = _gateway(stack, sim, "dlgw")
    rid = _finished_jobs(gw, 1)[0]
    # The upstream answer takes 400 ms: every call below arrives while the first one's fetch
    # is in flight, and must join it.
    sim.faults(ROUTE, status=0, latency_ms=400, count=1)
    before = sim.count(ROUTE)
    futs = [gw.jobs.GetDownloadUrls.future(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=10,
                                           metadata=gw.md()) for _ in range(8)]
    answers = [f.result(timeout=15) for f in futs]
    assert sim.count(ROUTE) == before + 1, "concurrent calls for one rid went upstream apart"
    assert all(a == answers[0] for a in answers)
    assert _urls(answers[0]) and all(_expiry(u) > time.time() for u in _urls(answers[0]))
    m = harness.metrics(gw)
    assert m["animate3d_gateway_download_coalesced_total"] >= 7, m
    # Served from the cache now: the same links, no request.
    again = _links(gw, [rid, rid])
    assert sim.count(ROUTE) == before + 1
    assert again == answers[0]
    assert harness.metrics(gw)["animate3d_gateway_download_cache_hits_total"] >= 1


def test_one_window_one_batched_fetch(stack):
    sim = stack.sim(name="dlsim-batch", job_seconds=1)
    gw = _gateway(stack, sim, "dlgw-batch", window_ms=500)
    rids = _finished_jobs(gw, 3)
    before = sim.count(ROUTE)
    futs = [gw.jobs.GetDownloadUrls.future(jobs_pb2.GetDownloadUrlsRequest(rids=[r]), timeout=10,
                                           metadata=gw.md()) for r in rids]
    got = [f.result(timeout=15) for f in futs]
    assert [g.links[0].rid for g in got] == rids
    assert sim.count(ROUTE) == before + 1, _download_paths(sim)
    batch = _download_paths(sim)[-1][len("/download/"):].split(",")
    assert sorted(batch) == sorted(rids)


def test_links_never_served_past_expiry_minus_margin(stack):
    """--url-ttl 63: cacheable for 3 s (63 - 60, less the time the answer took); afterwards a
    call gets a fresh link, never one within the margin."""
    sim = stack.sim(name="dlsim-ttl", job_seconds=1, extra_args=["--url-ttl", "63"])
    gw = _gateway(stack, sim, "dlgw-ttl")
    rid = _finished_jobs(gw, 1)[0]
    before = sim.count(ROUTE)
    first = _links(gw, [rid])
    exp = min(_expiry(u) for u in _urls(first))
    assert exp - time.time() > MARGIN_S
    fetched, served = 1, 0
    deadline = time.time() + 8
    while time.time() < deadline:
        r = _links(gw, [rid])
        now = time.time()
        urls = _urls(r)
        assert urls
        # Whatever was served, cached or fresh, still has the margin to run (a cached link is
        # dropped at expiry - margin, whole seconds: allow the second the dates round down).
        assert min(_expiry(u) for u in urls) - now > MARGIN_S - 1, (urls, now)
        if r == first:
            served += 1
        else:
            fetched += 1
            first = r
        time.sleep(0.25)
    upstream = sim.count(ROUTE) - before
    assert served >= 1, "the link was never served from the cache"
    assert fetched >= 2, "no fresh link was fetched after the first one aged"
    assert upstream == fetched, (upstream, fetched)


def test_short_url_ttl_is_never_cached(stack):
    """--url-ttl 5: the URLs expire well inside the margin, so every call goes upstream."""
    sim = stack.sim(name="dlsim-short", job_seconds=1, extra_args=["--url-ttl", "5"])
    gw = _gateway(stack, sim, "dlgw-short")
    rid = _finished_jobs(gw, 1)[0]
    before = sim.count(ROUTE)
    for _ in range(3):
        r = _links(gw, [rid])
        assert all(_expiry(u) > time.time() for u in _urls(r))
    assert sim.count(ROUTE) == before + 3
    assert harness.metrics(gw)["animate3d_gateway_download_cache_uncacheable_total"] >= 3


def test_foreign_tenant_not_found_even_when_cached(stack):
    sim = stack.sim(name="dlsim-iso", job_seconds=1)
    gw = _gateway(stack, sim, "dlgw-iso")
    rid = _finished_jobs(gw, 1)[0]
    assert _urls(_links(gw, [rid]))         # cached for team-a now
    before = sim.count(ROUTE)
    for tenant in ("team-b", "viewer"):
        try:
            _links(gw, [rid], tenant=tenant)
            raise AssertionError("%s read team-a's download links" % tenant)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            assert rid not in (e.details() or "")
    assert sim.count(ROUTE) == before
    # team-a still hits its cached link.
    assert _urls(_links(gw, [rid]))
    assert sim.count(ROUTE) == before


def test_call_joining_a_fetch_outlives_its_timeout(stack):
    """A fetch carries its callers' latest deadline; a call that joined it in flight without a
    deadline is not failed when it times out, but goes out again with the next batch."""
    sim = stack.sim(name="dlsim-deadline", job_seconds=1)
    gw = _gateway(stack, sim, "dlgw-deadline")
    rid = _finished_jobs(gw, 1)[0]
    sim.faults(ROUTE, status=0, latency_ms=1500, count=1)
    before = sim.count(ROUTE)
    short = gw.jobs.GetDownloadUrls.future(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=0.6,
                                           metadata=gw.md())
    time.sleep(0.2)
    patient = gw.jobs.GetDownloadUrls.future(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]),
                                             metadata=gw.md())
    try:
        short.result(timeout=10)
        raise AssertionError("the short call outlived the slow upstream")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    r = patient.result(timeout=20)
    assert _urls(r)
    assert sim.count(ROUTE) == before + 2
    assert harness.metrics(gw)["animate3d_gateway_download_requeued_total"] >= 1
