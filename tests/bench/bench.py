"""Benchmarks of issues 4, 16, 18, 21 and 23 (status cache, batching, WatchStatus, webhooks, replicas,
the REST facade against nginx, upstream requests per job); run through tests/bench/run.

Every process listens on 127.0.0.1 with a kernel-picked port; every wait is bounded. Steps:
  1  cached GetStatus vs Health/Check throughput of the same gateway (h2load, gRPC frames)
  2  500 concurrent callers polling 200 in-progress jobs: upstream GET /status per TTL window
  3  1000 WatchStatus streams over 200 jobs: upstream load and final-state lag, webhooks off/on
  4  RSS of the gateway with 100 000 cached final statuses, over the idle gateway
  5  replicas (issue 16): three gateways on one PostgreSQL and one Redis, side by side with one
     gateway alone: team-b admitted, logins after a revoke, polling upstream load, webhook
     fan-out lag, webhook endpoints created, cached GetStatus with Redis on vs off; needs the
     A3D_PG_* and A3D_REDIS_* of tests/lib/with-postgres and tests/lib/with-redis, else skipped
  6  instructions per cached GetStatus over Health/Check on the loop thread, and per Health call,
     under callgrind (issue 23; tests/bench/callgrind.py; needs valgrind, else skipped)
  7  50 callers following 20 jobs to completion with webhooks on, then GetDownloadUrls each:
     upstream requests per completed job (issue 23)
  8  the REST facade's cached GET /status/{rid} against nginx with proxy_cache in front of the
     simulator's /status, serving the same JSON (issue 18): same load tool (wrk, else h2load
     --h1), connections and duration, alternating rounds; needs nginx, else skipped; then the
     facade's loop-thread instructions per request under callgrind (tests/bench/callgrind_rest.py)
  9  UploadVideo speed (issue 21): the a3d client through the gateway vs a direct PUT (curl -T) of
     the same file to the same storage URL kind, alternating rounds, median of the paired ratios,
     and the gateway's peak RSS growth over all the rounds' uploads
Steps 1, 4 and 5f use a fake upstream (this process) that knows every rid as SUCCESS, because the
simulator holds at most 16384 jobs; steps 2, 3 and the rest of 5 use the simulator.
Step 10 (issue 21) is tests/bench/sweep.py: upstream GET /status per second against the number of
polling clients, straight at the simulator or through the gateway. Steps 1 and 10 also write
$BENCH_OUT/stepN.dat (tests/bench/benchdata.py) for the figures of tests/bench/plot.
"""
import asyncio
import base64
import http.server
import json
import math
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402  (builds sys.path for the generated stubs)
import benchdata  # noqa: E402  (the data files of tests/bench/plot)
import grpc  # noqa: E402
from harness import jobs_pb2, jobs_pb2_grpc, health_pb2  # noqa: E402

TTL_MS = 1000
# Rids per upstream GET /status (cache.batch_max of the gateways of steps 2 and 3). The simulator
# takes up to 100 rids in one /status path (sim_jobs.h: SIM_JOBS_MAX_RIDS, sim_http.h:
# SIM_HTTP_ARG_MAX), so steps 2 and 3 run at the batch size meant for the real upstream.
BATCH_MAX = int(os.environ.get("BENCH_BATCH_MAX", "50"))
WINDOW_MS = 5
POLL_S = float(os.environ.get("BENCH_POLL_S", "28"))
H2LOAD_S = int(os.environ.get("BENCH_H2LOAD_S", "2"))
H2LOAD_ROUNDS = 5
STEP_LIMIT_S = 30
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
KEY = harness.KEYS["team-a"]


CFG = {"batch_max": BATCH_MAX}     # what the next gateway gets (the fake upstream has no URL limit)


def bench_config(grpc_port, http_port, sim_url, state_path, rest_port=None, extra_top="", **_):
    """One tenant without a rate limit that may read any job (bench load is not a tenant's).
    rest_port: listen.rest (the REST facade of step 8) on that port; None: no facade.
    extra_top: more top-level sections, appended last."""
    return """\
listen:
  grpc: 127.0.0.1:{grpc}
  http: 127.0.0.1:{http}
{rest}log:
  level: warn
state:
  memory: true
upstream:
  connect_timeout_ms: 2000
  default_timeout_ms: 30000
cache:
  status_ttl_ms: {ttl}
  batch_window_ms: {win}
  batch_max: {bmax}
  max_entries: 200000
grpc:
  # Step 3 opens 1000 WatchStatus streams on one channel: above the default of 256 per connection.
  max_concurrent_streams: 1024
accounts:
  - name: sim
    base_url: {sim}
    client_id: {cid}
    client_secret_env: {env}
tenants:
  - name: team-a
    account: sim
    see_foreign_jobs: true
    keys:
      - sha256: {ka}
        permissions: [read, write]
{extra_top}""".format(grpc=grpc_port, http=http_port, sim=sim_url, extra_top=extra_top,
           rest=("  rest: 127.0.0.1:%d\n" % rest_port) if rest_port else "", cid=harness.CLIENT_ID,
           env=harness.SECRET_ENV, ka=harness.sha256_hex(KEY), ttl=TTL_MS, win=WINDOW_MS,
           bmax=CFG["batch_max"])


HARNESS_CONFIG = harness.gateway_config  # step 5's replicas start from the integration tests' config
harness.gateway_config = bench_config    # harness.Gateway renders its config through this


def rid_of(i):
    """A deterministic 22-character base58 rid."""
    r = random.Random(i)
    return "".join(r.choice(B58) for _ in range(22))


# ---- a fake upstream: login + GET /status for any rid (SUCCESS) ---------------------------------
class FakeUpstream:
    def __init__(self):
        self.status_requests = 0
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, obj, extra=()):
                body = json.dumps(obj).encode()
                self.send_response(code)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/session/auth"):
                    self._send(200, {"message": "authenticated"}, [
                        ("Set-Cookie", "dmsess=benchfakesession; Path=/; "
                                       "Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly")])
                elif self.path.startswith("/status/"):
                    owner.status_requests += 1
                    rids = self.path[len("/status/"):].split(",")
                    self._send(200, {"count": len(rids), "status": [
                        {"rid": r, "status": "SUCCESS",
                         "details": {"In": "clip-%s.mp4" % r[:6], "out": r + ".bvh"}} for r in rids]})
                else:
                    self._send(404, {"message": "not found", "error": "404"})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---- helpers --------------------------------------------------------------------------------------
def metrics(gw):
    st, _, body = harness.http("GET", gw.http_url + "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def grpc_frame(msg):
    raw = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(raw)) + raw


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def h2load(url, body_path, log_path, auth, lats=None):
    """-> (req/s, succeeded, p50 ms, p99 ms). 16 connections x 16 streams, one h2load thread.
    lats: a list that gets every answered request's latency in ms, sorted."""
    cmd = (["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() >= 2 else []) + [
           "h2load", "-D", str(H2LOAD_S), "--warm-up-time=500ms", "-c", "16", "-m", "16", "-t", "1",
           "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers",
           "--log-file=" + log_path]
    if auth:
        cmd += ["-H", "authorization: Bearer " + KEY]
    out = subprocess.run(cmd + [url], capture_output=True, text=True,
                         timeout=H2LOAD_S + 20).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    s = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    lat = []
    with open(log_path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    if lats is not None:
        lats.extend(lat)
    return (float(m.group(1)) if m else 0.0, int(s.group(1)) if s else 0,
            percentile(lat, 50), percentile(lat, 99))


def upload_and_start(gw, n, label):
    data = open(harness.TINY_MP4, "rb").read()
    rids = []
    for i in range(n):
        url = harness.upload_put(gw, "%s-%d.mp4" % (label, i), data)
        rids.append(harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"])))
    return rids


ROWS = []


def row(step, what, result, target, ok):
    ROWS.append((step, what, result, target, "yes" if ok else ("NO" if ok is not None else "-")))
    print("  [%s] %s: %s (target %s)" % (step, what, result, target), flush=True)


# ---- step 1 ---------------------------------------------------------------------------------------
def step1(work):
    fake = FakeUpstream()
    gw = harness.Gateway(work, fake.url, name="gw-step1")
    try:
        rid = rid_of(1)
        r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=gw.md())
        assert r.statuses[0].state == jobs_pb2.SUCCESS, r
        gs_body = os.path.join(work, "getstatus.bin")
        hc_body = os.path.join(work, "health.bin")
        with open(gs_body, "wb") as f:
            f.write(grpc_frame(jobs_pb2.GetStatusRequest(rids=[rid])))
        with open(hc_body, "wb") as f:
            f.write(grpc_frame(health_pb2.HealthCheckRequest()))
        base = "http://" + gw.addr
        # The gateway on CPU 0, h2load on CPU 1: the two do not take turns on one core, so the
        # ratio measures the gateway, not the scheduler (2-core machine).
        pinned = subprocess.run(["taskset", "-a", "-p", "-c", "0", str(gw.proc.pid)],
                                capture_output=True).returncode == 0
        ok_key = ('animate3d_gateway_rpc_total{tenant="team-a",'
                  'method="/animate3d.v1.Jobs/GetStatus",code="OK"}')
        ok_before = metrics(gw).get(ok_key, 0)
        hc_url, gs_url = base + "/grpc.health.v1.Health/Check", base + "/animate3d.v1.Jobs/GetStatus"
        rounds = []
        for i in range(H2LOAD_ROUNDS):
            # Adjacent runs see the same machine load; the order alternates to cancel drift.
            # Same headers for both (Health ignores the key): the difference is our logic.
            order = ("hc", "gs") if i % 2 == 0 else ("gs", "hc")
            got = {}
            for k in order:
                got[k] = h2load(hc_url if k == "hc" else gs_url, hc_body if k == "hc" else gs_body,
                                os.path.join(work, k + ".log"), True,
                                lats=got.setdefault(k + " lats", []))
            rounds.append((got["gs"][0] / got["hc"][0] if got["hc"][0] else 0.0, got))
        # For reference: Health without the authorization header (what HPACK and bytes cost).
        hc0 = h2load(hc_url, hc_body, os.path.join(work, "hc0.log"), False)
        ok_after = metrics(gw).get(ok_key, 0)
        rounds.sort(key=lambda x: x[0])
        ratio, med = rounds[len(rounds) // 2]
        hc, gs = med["hc"], med["gs"]
        sent = sum(r[1]["gs"][1] for r in rounds)
        row(1, "Health/Check (same headers), median round", "%.0f req/s, p50 %.2f ms, p99 %.2f ms"
            % (hc[0], hc[2], hc[3]), "-", None)
        row(1, "cached GetStatus, median round", "%.0f req/s, p50 %.2f ms, p99 %.2f ms"
            % (gs[0], gs[2], gs[3]), "-", None)
        row(1, "GetStatus / Health ratio per round", " ".join("%.2f" % r[0] for r in rounds)
            + (" (gateway on CPU 0, h2load on CPU 1)" if pinned else " (not pinned)"), "-", None)
        row(1, "GetStatus / Health ratio, median", "%.2f" % ratio, ">= 0.90", ratio >= 0.9)
        row(1, "Health/Check without auth header", "%.0f req/s, p50 %.2f ms, p99 %.2f ms"
            % (hc0[0], hc0[2], hc0[3]), "info", None)
        # tests/bench/plot's latency figure: the median round's percentiles, Health as the floor.
        benchdata.write(1, "cached GetStatus vs Health/Check latency, ms (h2load, median round)",
                        ("percentile", "health_ms", "getstatus_ms"),
                        [("p%g" % p, percentile(med["hc lats"], p), percentile(med["gs lats"], p))
                         for p in (50, 90, 99, 99.9)],
                        note="h2load as fast as the gateway answers (this round: Health %.0f req/s, "
                        "GetStatus %.0f req/s), 16 connections x 16 streams, %d s per run, %d "
                        "alternating rounds%s" % (hc[0], gs[0], H2LOAD_S, H2LOAD_ROUNDS,
                                                  ", gateway on CPU 0, h2load on CPU 1"
                                                  if pinned else ""))
        # h2load counts HTTP 200; grpc-status comes in trailers: check the gateway's own count.
        # The gateway's count also holds h2load's warm-up requests, which h2load does not report.
        row(1, "GetStatus answered grpc OK", "%d, for %d HTTP 200s counted by h2load (upstream GETs: %d)"
            % (ok_after - ok_before, sent, fake.status_requests), "all", ok_after - ok_before >= sent)
    finally:
        gw.stop()
        fake.stop()


# ---- step 10 (issue 21): upstream GET /status per second vs polling clients ----------------------
SWEEP_CLIENTS = [int(x) for x in os.environ.get("BENCH_SWEEP_CLIENTS", "1,10,50,100,200").split(",")]
SWEEP_S = float(os.environ.get("BENCH_SWEEP_S", "3"))
SWEEP_INTERVAL_MS = int(os.environ.get("BENCH_SWEEP_INTERVAL_MS", "500"))


def step10(work):
    """tests/bench/sweep.py: each client polls its own job every SWEEP_INTERVAL_MS, straight at
    the simulator or through the gateway, SWEEP_S seconds after one TTL of warm-up per point."""
    import sweep  # noqa: E402
    res = sweep.measure(work, upload_and_start, SWEEP_CLIENTS, SWEEP_S, SWEEP_INTERVAL_MS / 1000.0,
                        TTL_MS / 1000.0)
    rows = []
    for r in res:
        d, g = r["direct"], r["gateway"]
        rate = {k: r[k]["upstream"] / r[k]["secs"] for k in ("direct", "gateway")}
        rows.append((r["clients"], rate["direct"], rate["gateway"], d["calls_per_s"],
                     g["calls_per_s"]))
        row(10, "%d clients polling every %d ms: upstream GET /status per second"
            % (r["clients"], SWEEP_INTERVAL_MS), "direct %.1f, through the gateway %.1f "
            "(client calls/s %.1f and %.1f; errors %d and %d)"
            % (rate["direct"], rate["gateway"], d["calls_per_s"], g["calls_per_s"], d["errors"],
               g["errors"]), "-", d["errors"] == 0 and g["errors"] == 0)
    benchdata.write(10, "upstream GET /status per second vs polling clients",
                    ("clients", "direct_per_s", "gateway_per_s", "direct_calls_per_s",
                     "gateway_calls_per_s"), rows,
                    note="each client polls one job every %d ms; %.0f s per point after %d ms "
                    "warm-up; cache TTL %d ms, batch %d, window %d ms"
                    % (SWEEP_INTERVAL_MS, SWEEP_S, TTL_MS, TTL_MS, BATCH_MAX, WINDOW_MS))


PLOT_STEPS = {10: step10}


# ---- step 2 ---------------------------------------------------------------------------------------
async def poll_load(addrs, rids, callers, seconds, lat=None):
    """callers poll random rids for seconds; addrs: one address or a list (callers spread
    round-robin over it); lat: a list that gets (start, ms) of every call answered OK.
    -> (calls, errors)."""
    calls = errors = 0
    deadline = time.monotonic() + seconds
    md = (("authorization", "Bearer " + KEY),)
    chans = [grpc.aio.insecure_channel(a) for a in ([addrs] if isinstance(addrs, str) else addrs)]
    stubs = [jobs_pb2_grpc.JobsStub(ch) for ch in chans]

    async def caller(i):
        nonlocal calls, errors
        rnd = random.Random(i)
        stub = stubs[i % len(stubs)]
        while time.monotonic() < deadline:
            t = time.monotonic()
            try:
                await stub.GetStatus(jobs_pb2.GetStatusRequest(rids=[rnd.choice(rids)]),
                                     timeout=5, metadata=md)
                calls += 1
                if lat is not None:
                    lat.append((t, (time.monotonic() - t) * 1000.0))
            except grpc.RpcError:
                errors += 1
    try:
        await asyncio.gather(*(caller(i) for i in range(callers)))
    finally:
        for ch in chans:
            await ch.close()
    return calls, errors


def step2(work):
    sim = harness.Sim(work, name="sim-step2", job_seconds=POLL_S + 60, extra_args=["--credits", "1000000"])
    gw = harness.Gateway(work, sim.url, name="gw-step2")
    try:
        t0 = time.monotonic()
        rids = upload_and_start(gw, 200, "poll")
        setup_s = time.monotonic() - t0
        before = sim.count("GET /status/{rids}")
        m0 = metrics(gw)
        # A mark one TTL into the polling: by then every rid has been fetched once (the 500
        # callers start within a few hundred ms), so what follows is the polling itself. The
        # whole run, cold start included, is reported beside it.
        mark = []
        timer = threading.Timer(TTL_MS / 1000.0, lambda: mark.append(
            (time.monotonic(), sim.count("GET /status/{rids}"))))
        t0 = time.monotonic()
        timer.start()
        try:
            calls, errors = asyncio.run(poll_load(gw.addr, rids, 500, POLL_S))
        finally:
            timer.cancel()
        t1 = time.monotonic()
        elapsed = t1 - t0
        after = sim.count("GET /status/{rids}")
        upstream = after - before
        m1 = metrics(gw)
        windows = elapsed * 1000.0 / TTL_MS
        per_window = upstream / windows
        bound = math.ceil(200.0 / BATCH_MAX) + 1
        states = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids[:100]), timeout=5,
                                   metadata=gw.md()).statuses
        row(2, "setup", "200 jobs started in %.1f s; %d still PROGRESS after polling"
            % (setup_s, sum(1 for s in states if s.state == jobs_pb2.PROGRESS)) + " (of first 100)",
            "-", None)
        row(2, "client GetStatus calls", "%d in %.1f s by 500 callers (%d errors)"
            % (calls, elapsed, errors), "-", errors == 0)
        if mark and t1 > mark[0][0]:
            steady_n, steady_s = after - mark[0][1], t1 - mark[0][0]
            steady = steady_n / (steady_s * 1000.0 / TTL_MS)
            row(2, "upstream GET /status per TTL window, after the first TTL",
                "%.2f (%d requests in %.1f s)" % (steady, steady_n, steady_s),
                "<= %d" % bound, steady <= bound)
        else:
            row(2, "upstream GET /status per TTL window, after the first TTL", "no mark taken",
                "<= %d" % bound, False)
        row(2, "upstream GET /status per TTL window, whole run",
            "%.2f (%d requests, %.0f rids each on average; cold start included)"
            % (per_window, upstream, (m1.get("animate3d_gateway_status_batched_rids_total", 0)
                                      - m0.get("animate3d_gateway_status_batched_rids_total", 0)) / max(upstream, 1)),
            "info", None)
        row(2, "client calls / upstream calls", "%.0f" % (calls / max(upstream, 1)), "-", None)
    finally:
        gw.stop()
        sim.stop()


# ---- step 3 ---------------------------------------------------------------------------------------
async def watch_load(addr, rids, per_rid, limit_s, sim):
    """-> (list of (rid, final recv wall ms or None, messages), samples, ready wall ms).

    samples: (wall ms, upstream GET /status so far), every 250 ms while the streams run; ready:
    when every stream had its first message (None if never)."""
    md = (("authorization", "Bearer " + KEY),)
    out = []
    total = len(rids) * per_rid
    state = {"first": 0, "ready": None, "done": False}
    samples = []
    loop = asyncio.get_running_loop()
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = jobs_pb2_grpc.JobsStub(ch)

        async def watcher(rid):
            n, final_ms = 0, None
            try:
                async for st in stub.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]),
                                                 timeout=limit_s, metadata=md):
                    n += 1
                    if n == 1:
                        state["first"] += 1
                        if state["first"] == total:
                            state["ready"] = time.time() * 1000
                    if st.state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE):
                        final_ms = time.time() * 1000
            except grpc.RpcError:
                pass
            out.append((rid, final_ms, n))

        async def sampler():
            while not state["done"]:
                t = time.time() * 1000
                samples.append((t, await loop.run_in_executor(None, sim.count, "GET /status/{rids}")))
                await asyncio.sleep(0.25)

        async def watchers():
            await asyncio.gather(*(watcher(r) for r in rids for _ in range(per_rid)))
            state["done"] = True
        await asyncio.gather(sampler(), watchers())
    return out, samples, state["ready"]


def steady_window(samples, ready_ms, first_done_ms):
    """Upstream requests and seconds between the first sample after ready_ms and the last one
    before the first completion (minus a margin): polling only, no start-up, no completions."""
    if ready_ms is None:
        return None
    inside = [s for s in samples if ready_ms <= s[0] <= first_done_ms - 100]
    if len(inside) < 2:
        return None
    return inside[-1][1] - inside[0][1], (inside[-1][0] - inside[0][0]) / 1000.0


def upstream_webhook(sim, gw):
    """Registers the gateway's webhook URL on the simulator's account (upstream's own endpoint,
    as webhooks.public_url would; Webhooks.CreateEndpoint makes tenant subscriptions since
    issue 17)."""
    st, _, out = harness.http("POST", sim.url + "/webhook_endpoints",
                              body={"url": gw.http_url + "/webhooks/animate3d/sim",
                                    "events": ["job.completed"]},
                              headers={"Cookie": sim.login()})
    if not 200 <= st < 300:
        raise RuntimeError("upstream webhook endpoint: %d %s" % (st, out[:200]))


def step3_phase(work, webhooks):
    label = "hook" if webhooks else "poll"
    sim = harness.Sim(work, name="sim-step3-" + label, job_seconds=12, extra_args=["--credits", "1000000"])
    gw = harness.Gateway(work, sim.url, name="gw-step3-" + label)
    try:
        if webhooks:
            upstream_webhook(sim, gw)
        rids = upload_and_start(gw, 200, "watch-" + label)
        before = sim.count("GET /status/{rids}")
        t0 = time.monotonic()
        res, samples, ready_ms = asyncio.run(watch_load(gw.addr, rids, 5, STEP_LIMIT_S, sim))
        elapsed = time.monotonic() - t0
        upstream = sim.count("GET /status/{rids}") - before
        cookie = sim.login()
        mtime = {j["rid"]: j["mtime"] for j in sim.get_json("/list", cookie)["list"]}
        lags = sorted(f - mtime[r] for r, f, _ in res if f is not None)
        steady = steady_window(samples, ready_ms, min(mtime[r] for r in rids))
        missing = sum(1 for _, f, _ in res if f is None)
        m = metrics(gw)
        return dict(streams=len(res), missing=missing, lags=lags, upstream=upstream, steady=steady,
                    elapsed=elapsed, msgs=sum(n for _, _, n in res),
                    hooks=m.get('animate3d_gateway_webhooks_in_total{result="accepted"}', 0))
    finally:
        gw.stop()
        sim.stop()


def step3(work):
    bound = math.ceil(200.0 / BATCH_MAX) + 1
    for webhooks in (False, True):
        r = step3_phase(work, webhooks)
        label = "webhooks on" if webhooks else "webhooks off"
        limit = 100 if webhooks else TTL_MS + 100
        per_window = r["upstream"] / (r["elapsed"] * 1000.0 / TTL_MS)
        row(3, "1000 streams, %s: finals received" % label, "%d of %d (%d messages, %d webhooks)"
            % (r["streams"] - r["missing"], r["streams"], r["msgs"], r["hooks"]), "all",
            r["missing"] == 0)
        if r["steady"] and r["steady"][1] > 0:
            n, secs = r["steady"]
            steady = n / (secs * 1000.0 / TTL_MS)
            row(3, "%s: upstream GET /status per TTL window, steady" % label,
                "%.2f (%d in %.1f s: all streams open .. first completion)" % (steady, n, secs),
                "<= %d" % bound, steady <= bound)
        row(3, "%s: upstream GET /status per TTL window, whole run" % label,
            "%.2f (%d in %.1f s, with start-up%s)" % (per_window, r["upstream"], r["elapsed"],
                                                      " and webhook refreshes" if webhooks else ""),
            "info", None)
        if r["lags"]:
            row(3, "%s: final lag after sim completion" % label, "p50 %.0f ms, p99 %.0f ms, max %.0f ms"
                % (percentile(r["lags"], 50), percentile(r["lags"], 99), r["lags"][-1]),
                "<= %d ms" % limit, r["lags"][-1] <= limit)


# ---- step 4 ---------------------------------------------------------------------------------------
async def fill_cache(addr, n, per_call):
    md = (("authorization", "Bearer " + KEY),)
    sem = asyncio.Semaphore(8)
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = jobs_pb2_grpc.JobsStub(ch)

        async def one(k):
            async with sem:
                rids = [rid_of(1000 + k * per_call + j) for j in range(per_call)]
                r = await stub.GetStatus(jobs_pb2.GetStatusRequest(rids=rids), timeout=30, metadata=md)
                assert len(r.statuses) == per_call
        await asyncio.gather(*(one(k) for k in range(n // per_call)))


def step4(work):
    fake = FakeUpstream()
    CFG["batch_max"] = 100      # one upstream GET per 100-rid call: the fake upstream is slow
    try:
        gw = harness.Gateway(work, fake.url, name="gw-step4")
    finally:
        CFG["batch_max"] = BATCH_MAX
    try:
        gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid_of(0)]), timeout=5, metadata=gw.md())
        time.sleep(0.5)
        idle = rss_kib(gw.proc.pid)
        t0 = time.monotonic()
        asyncio.run(fill_cache(gw.addr, 100000, 100))
        fill_s = time.monotonic() - t0
        time.sleep(0.5)
        full = rss_kib(gw.proc.pid)
        entries = metrics(gw).get("animate3d_gateway_cache_entries", 0)
        delta_mib = (full - idle) / 1024.0
        row(4, "cached final statuses", "%d (filled in %.1f s, %d upstream GETs)"
            % (entries, fill_s, fake.status_requests), ">= 100000", entries >= 100000)
        row(4, "RSS over idle", "%.1f MiB (idle %.1f MiB, full %.1f MiB, %.0f B/entry)"
            % (delta_mib, idle / 1024.0, full / 1024.0, (full - idle) * 1024.0 / 100000),
            "<= 64 MiB", delta_mib <= 64)
    finally:
        gw.stop()
        fake.stop()


# ---- step 5: replicas (issue 16) -----------------------------------------------------------------
# Three gateways on one PostgreSQL and one Redis (tests/lib/with-postgres, tests/lib/with-redis)
# in front of one simulator. Each sub-measure is a few seconds of load; each failure is a row.
REPLICAS = 3
STEP5_ENV = ("A3D_PG_PORT", "A3D_PG_PASSWORD_FILE", "A3D_REDIS_PORT")
RATE_S = 5              # (a) seconds of team-b load
RATE_OFFERED = 60       # (a) team-b calls/s offered, in total (3x its 20/s)
RATE_TEAM_A = 30        # (a) team-a calls/s beside it, in total
REVOKE_CALLS = 200      # (b) calls per replica right after /_sim/sessions/revoke
POLL5_S = float(os.environ.get("BENCH_POLL5_S", "6"))     # (c) polling time, per configuration
FANOUT_JOBS = 30        # (d) jobs watched on B and C
FANOUT_JOB_S = 5        # (d) simulator's job time: longer than starting FANOUT_JOBS jobs
ROUNDS5 = 3             # (f) h2load rounds per configuration


def replica_yaml(work, seal, prefix):
    """The state: and redis: sections of a replica; key_prefix keeps each set of replicas of this
    step apart in the one Redis."""
    pg = ('state:\n  postgres:\n    dsn: "hostaddr=127.0.0.1 port=%s dbname=%s user=%s"\n'
          "    password_file: %s\n" % (os.environ["A3D_PG_PORT"], os.environ.get("A3D_PG_DB", "a3d"),
                                        os.environ.get("A3D_PG_USER", "a3d"),
                                        os.environ["A3D_PG_PASSWORD_FILE"]))
    redis = "redis:\n  url: redis://127.0.0.1:%s/0\n" % os.environ["A3D_REDIS_PORT"]
    pw = os.environ.get("A3D_REDIS_PASSWORD_FILE")
    if pw and os.path.getsize(pw):
        redis += "  password_file: %s\n" % pw
    redis += "  seal_key_file: %s\n  key_prefix: \"%s\"\n" % (seal, prefix)
    return pg, redis


def replica_config(grpc_port, http_port, sim_url, work, name, seal=None, prefix="a3d:",
                   public_url=None):
    """harness.gateway_config for a bench replica: team-a may read every job and is limited only
    far above the load (500 pollers), team-b at 20/s, burst 40. seal: None is one gateway alone
    (SQLite, no redis:, as before issue 16); else PostgreSQL + Redis, expected_replicas 3."""
    text = HARNESS_CONFIG(grpc_port, http_port, sim_url, os.path.join(work, name + ".db"),
                          backend="sqlite")
    text = text.replace("log:\n  level: info\n", "log:\n  level: warn\n")
    text = text.replace("  batch_max: 50\n", "  batch_max: %d\n" % BATCH_MAX)
    text, n = re.subn(r"(  - name: team-a\n    account: sim\n)    rate: [^\n]*\n",
                      r"\1    see_foreign_jobs: true\n    rate: { per_second: 100000, burst: 200000 }\n",
                      text)
    text, m = re.subn(r"(  - name: team-b\n    account: sim\n)    rate: [^\n]*\n",
                      r"\1    rate: { per_second: 20, burst: 40 }\n", text)
    assert n == 1 and m == 1, "harness.gateway_config's tenants changed"
    if seal is not None:
        pg, redis = replica_yaml(work, seal, prefix)
        text, n = re.subn(r"state:\n  path: [^\n]*\n", lambda _: pg, text)
        assert n == 1, "harness.gateway_config's state: block changed"
        text += "cluster:\n  expected_replicas: %d\n" % REPLICAS + redis
    if public_url:
        text = harness.add_webhooks(text, "  public_url: %s\n" % public_url)
    return text


def seal_key(work):
    path = os.path.join(work, "seal.key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
    return path


def start_gateways(work, sim, names, **kw):
    """Gateways started together (threads), as pods of a Deployment are. kw: replica_config's;
    public_url=True points every replica at the first one's HTTP listener."""
    ports = [(harness.free_port(), harness.free_port()) for _ in names]
    if kw.get("public_url") is True:
        kw["public_url"] = "http://127.0.0.1:%d" % ports[0][1]
    gws, errors = {}, []

    def start(i):
        text = replica_config(ports[i][0], ports[i][1], sim.url, work, names[i], **kw)
        try:
            gws[i] = harness.Gateway(work, sim.url, name=names[i], config_text=text,
                                     grpc_port=ports[i][0], http_port=ports[i][1])
        except Exception as e:      # noqa: BLE001  (raised below, after the others are up)
            errors.append(repr(e)[:300])

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    out = [gws[i] for i in sorted(gws)]
    if errors or len(out) != len(names):
        for g in out:
            g.stop()
        raise RuntimeError("gateways did not start: %s" % errors)
    return out


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def measure(step, what, fn, *args):
    """Runs one sub-measure; an exception is a failed row, and the step goes on."""
    t0 = time.monotonic()
    try:
        fn(*args)
    except Exception as e:      # noqa: BLE001
        row(step, what + ": failed", repr(e)[:200], "-", False)
    print("  (%s: %.1f s)" % (what, time.monotonic() - t0), flush=True)


async def paced(loads, seconds):
    """loads: [(addrs, tenant, calls/s)]; GetCreditBalance paced at that rate for seconds, call i
    of a load to addrs[i % len(addrs)]. -> [{status code name: count}] per load."""
    chans = {}
    loop = asyncio.get_running_loop()

    def stub(addr):
        if addr not in chans:
            chans[addr] = grpc.aio.insecure_channel(addr)
        return harness.account_pb2_grpc.AccountStub(chans[addr])

    async def one(st, md, codes):
        try:
            await st.GetCreditBalance(harness.account_pb2.GetCreditBalanceRequest(), timeout=5,
                                      metadata=md)
            k = "OK"
        except grpc.RpcError as e:
            k = e.code().name
        codes[k] = codes.get(k, 0) + 1

    async def load(addrs, tenant, rate, codes):
        stubs = [stub(a) for a in addrs]
        md = (("authorization", "Bearer " + harness.KEYS[tenant]),)
        start, calls = loop.time(), []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / float(rate) - loop.time()))
            calls.append(asyncio.ensure_future(one(stubs[i % len(stubs)], md, codes)))
        await asyncio.gather(*calls)

    out = [{} for _ in loads]
    try:
        await asyncio.gather(*(load(a, t, r, c) for (a, t, r), c in zip(loads, out)))
    finally:
        for ch in chans.values():
            await ch.close()
    return out


def step5_rate(single, gws):
    """(a) team-b at 3x its rate for RATE_S seconds: through one gateway alone, then spread over
    the replicas (team-a beside it on the replicas)."""
    one = asyncio.run(paced([([single.addr], "team-b", RATE_OFFERED)], RATE_S))[0]
    three, team_a = asyncio.run(paced([([g.addr for g in gws], "team-b", RATE_OFFERED),
                                       ([g.addr for g in gws], "team-a", RATE_TEAM_A)], RATE_S))
    fmt = lambda c: ", ".join("%s %d" % kv for kv in sorted(c.items()))      # noqa: E731
    ratio = three.get("OK", 0) / float(max(one.get("OK", 0), 1))
    row(5, "a. team-b (20/s, burst 40) at %d calls/s for %d s: one gateway alone"
        % (RATE_OFFERED, RATE_S), fmt(one), "-", None)
    row(5, "a. the same spread round-robin over %d replicas" % REPLICAS, fmt(three), "-", None)
    row(5, "a. team-b admitted, %d replicas / one" % REPLICAS, "%.2f" % ratio, "<= 1.1",
        ratio <= 1.1)
    row(5, "a. team-a at %d calls/s beside it, on the replicas" % RATE_TEAM_A, fmt(team_a), "all OK",
        team_a.get("OK", 0) == sum(team_a.values()))


def step5_revoke(sim, gws):
    """(b) /_sim/sessions/revoke, then REVOKE_CALLS concurrent calls per replica."""
    before, balances = sim.count("GET /session/auth"), sim.count("GET /account/creditBalance")
    sim.revoke()
    t0 = time.monotonic()
    futs = [g.account.GetCreditBalance.future(harness.account_pb2.GetCreditBalanceRequest(),
                                              timeout=30, metadata=g.md())
            for _ in range(REVOKE_CALLS) for g in gws]
    errors = 0
    for f in futs:
        try:
            f.result(timeout=40)
        except grpc.RpcError:
            errors += 1
    took = time.monotonic() - t0
    logins = sim.count("GET /session/auth") - before
    balances = sim.count("GET /account/creditBalance") - balances
    row(5, "b. revoke, then %d calls per replica: upstream logins" % REVOKE_CALLS,
        "%d (%d calls in %.2f s, %d errors; %d upstream GET /account/creditBalance)"
        % (logins, len(futs), took, errors, balances), "1",
        logins == 1 and errors == 0)


def step5_endpoints(sim, gws):
    """(e) the replicas were started together with webhooks.public_url."""
    key = "animate3d_gateway_webhook_endpoints_registered"
    settled = wait_until(lambda: all(metrics(g).get(key, 0) == 1 for g in gws), 20)
    url = gws[0].http_url + "/webhooks/animate3d/sim"
    eps = sim.get_json("/webhook_endpoints", sim.login())["endpoints"]
    ours = sum(1 for e in eps if e["url"] == url)
    posts = sim.count("POST /webhook_endpoints")
    row(5, "e. %d replicas started together: upstream webhook endpoints" % REPLICAS,
        "%d (POST /webhook_endpoints %d%s)" % (ours, posts, "" if settled else "; not all registered"),
        "1", ours == 1 and posts == 1)


async def watch_finals(addrs, rids, limit_s):
    """WatchStatus on every addr for every rid. -> [(rid, wall ms of the final or None)]."""
    md = (("authorization", "Bearer " + KEY),)
    chans = [grpc.aio.insecure_channel(a) for a in addrs]
    out = []

    async def watch(ch, rid):
        final = None
        try:
            async for st in jobs_pb2_grpc.JobsStub(ch).WatchStatus(
                    jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=limit_s, metadata=md):
                if st.state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE):
                    final = time.time() * 1000
        except grpc.RpcError:
            pass
        out.append((rid, final))
    try:
        await asyncio.gather(*(watch(ch, r) for ch in chans for r in rids))
    finally:
        for ch in chans:
            await ch.close()
    return out


def step5_fanout(sim, gws):
    """(d) jobs started on A; the simulator delivers their webhooks to A (public_url); the
    streams on B and C must learn the final states from A, through Redis."""
    t0 = time.monotonic()
    rids = upload_and_start(gws[0], FANOUT_JOBS, "fan")
    setup = time.monotonic() - t0
    res = asyncio.run(watch_finals([g.addr for g in gws[1:]], rids, FANOUT_JOB_S + 15))
    mtime = {j["rid"]: j["mtime"] for j in sim.get_json("/list", sim.login())["list"]}
    lags = sorted(f - mtime[r] for r, f in res if f is not None)
    missing = sum(1 for _, f in res if f is None)
    applied = sum(metrics(g).get('animate3d_gateway_cluster_status_total{what="applied"}', 0)
                  for g in gws[1:])
    if not lags:
        row(5, "d. webhook to A -> finals on B and C", "none of %d streams" % len(res), "all", False)
        return
    p99 = percentile(lags, 99)
    row(5, "d. webhook to A -> WatchStatus on B and C: final lag",
        "p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d streams, %d without a final; %d applied from "
        "Redis; %d jobs started in %.1f s)" % (percentile(lags, 50), p99, lags[-1], len(res), missing,
                                               applied, len(rids), setup),
        "p99 <= 100 ms", p99 <= 100 and missing == 0)


def poll_figures(sim, addrs, rids, seconds):
    """500 callers polling rids through addrs -> (calls, errors, upstream GET /status per TTL
    window after the first TTL, the same over the whole run, the callers' GetStatus latency
    after the first TTL as (p50, p99) in ms, their p99 over the whole run)."""
    route = "GET /status/{rids}"
    mark, lat = [], []
    timer = threading.Timer(TTL_MS / 1000.0, lambda: mark.append((time.monotonic(), sim.count(route))))
    before, t0 = sim.count(route), time.monotonic()
    timer.start()
    try:
        calls, errors = asyncio.run(poll_load(addrs, rids, 500, seconds, lat))
    finally:
        timer.cancel()
    t1, after = time.monotonic(), sim.count(route)
    steady = None
    if mark and t1 > mark[0][0]:
        steady = (after - mark[0][1]) / ((t1 - mark[0][0]) * 1000.0 / TTL_MS)
    late = sorted(ms for t, ms in lat if t >= t0 + TTL_MS / 1000.0)
    whole = sorted(ms for _, ms in lat)
    return (calls, errors, steady, (after - before) / ((t1 - t0) * 1000.0 / TTL_MS),
            (percentile(late, 50), percentile(late, 99)), percentile(whole, 99))


def step5_polling(work, seal):
    """(c) 500 callers polling 200 in-progress jobs: one gateway alone, then 3 replicas."""
    sim = harness.Sim(work, name="sim-step5-poll", job_seconds=90, extra_args=["--credits", "1000000"])
    single, gws = None, []
    try:
        single = start_gateways(work, sim, ["gw5-poll-single"])[0]
        gws = start_gateways(work, sim, ["gw5-poll-%s" % c for c in "abc"], seal=seal,
                             prefix="a3d:b5poll:")
        t0 = time.monotonic()
        rids = upload_and_start(single, 200, "poll5")
        setup = time.monotonic() - t0
        figs = {}
        for label, addrs in (("one gateway", [single.addr]), ("%d replicas" % REPLICAS,
                                                               [g.addr for g in gws])):
            figs[label] = poll_figures(sim, addrs, rids, POLL5_S)
            calls, errors, steady, whole, (p50, p99), p99_whole = figs[label]
            row(5, "c. 500 callers, 200 jobs, %s: upstream GET /status per TTL window" % label,
                "%s after the first TTL, %.2f whole run (%d calls in %.0f s, %d errors)"
                % ("%.2f" % steady if steady is not None else "no mark", whole, calls, POLL5_S, errors),
                "-", errors == 0)
            row(5, "c. %s: callers' GetStatus latency" % label,
                "p50 %.1f ms, p99 %.1f ms after the first TTL; p99 %.1f ms whole run"
                % (p50, p99, p99_whole), "-", None)
        one, three = figs["one gateway"][2], figs["%d replicas" % REPLICAS][2]
        progress = sum(1 for s in single.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids[:100]),
                                                        timeout=5, metadata=single.md()).statuses
                       if s.state == jobs_pb2.PROGRESS)
        if one and three is not None:
            row(5, "c. upstream GET /status per TTL window, %d replicas / one" % REPLICAS,
                "%.2f (200 jobs started in %.1f s; %d of the first 100 still PROGRESS after)"
                % (three / one, setup, progress), "<= 1.2", three / one <= 1.2)
    finally:
        for g in gws + ([single] if single else []):
            g.stop()
        sim.stop()


def step5_cached(work, seal):
    """(f) cached GetStatus (h2load, as step 1) on one gateway with redis: and one without; both
    on PostgreSQL, one fake upstream; the two gateways on CPU 0, h2load on CPU 1."""
    fake = FakeUpstream()
    pg, redis = replica_yaml(work, seal, "a3d:b5cached:")
    gws = {}
    try:
        for label in ("off", "on"):
            g, h = harness.free_port(), harness.free_port()
            text = bench_config(g, h, fake.url, None)
            assert "state:\n  memory: true\n" in text
            text = text.replace("state:\n  memory: true\n", pg) + (redis if label == "on" else "")
            gws[label] = harness.Gateway(work, fake.url, name="gw5-redis-" + label, config_text=text,
                                         grpc_port=g, http_port=h)
        rid = rid_of(1)
        body = os.path.join(work, "getstatus5.bin")
        with open(body, "wb") as f:
            f.write(grpc_frame(jobs_pb2.GetStatusRequest(rids=[rid])))
        pinned = True
        for gw in gws.values():
            r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=gw.md())
            assert r.statuses[0].state == jobs_pb2.SUCCESS, r
            pinned = subprocess.run(["taskset", "-a", "-p", "-c", "0", str(gw.proc.pid)],
                                    capture_output=True).returncode == 0 and pinned
        rounds = []
        for i in range(ROUNDS5):
            got = {}
            for k in (("off", "on") if i % 2 == 0 else ("on", "off")):
                got[k] = h2load("http://%s/animate3d.v1.Jobs/GetStatus" % gws[k].addr, body,
                                os.path.join(work, "gs5-%s.log" % k), True)
            rounds.append((got["on"][0] / got["off"][0] if got["off"][0] else 0.0, got))
        rounds.sort(key=lambda x: x[0])
        ratio, med = rounds[len(rounds) // 2]
        for k in ("off", "on"):
            row(5, "f. cached GetStatus, Redis %s, median round" % k,
                "%.0f req/s, p50 %.2f ms, p99 %.2f ms" % (med[k][0], med[k][2], med[k][3]), "-", None)
        row(5, "f. cached GetStatus, Redis on / off", "%.2f (rounds %s%s)"
            % (ratio, " ".join("%.2f" % r[0] for r in rounds), "" if pinned else "; not pinned"),
            ">= 0.80", ratio >= 0.8)
    finally:
        for g in gws.values():
            g.stop()
        fake.stop()


def step5(work):
    absent = [v for v in STEP5_ENV if not os.environ.get(v)]
    if absent:
        row(5, "replicas: skipped", "needs PostgreSQL and Redis (%s unset): "
            "tests/lib/with-redis -- tests/lib/with-postgres -- tests/bench/run 5"
            % ", ".join(absent), "-", None)
        return
    seal = seal_key(work)
    sim = harness.Sim(work, name="sim-step5", job_seconds=FANOUT_JOB_S,
                      extra_args=["--credits", "1000000"])
    gws, single = [], None
    try:
        gws = start_gateways(work, sim, ["gw5-a", "gw5-b", "gw5-c"], seal=seal, prefix="a3d:b5:",
                             public_url=True)
        measure(5, "e. webhook endpoints", step5_endpoints, sim, gws)
        measure(5, "d. fan-out", step5_fanout, sim, gws)
        measure(5, "b. revoke", step5_revoke, sim, gws)
        single = start_gateways(work, sim, ["gw5-single"])[0]
        measure(5, "a. rate", step5_rate, single, gws)
    finally:
        for g in gws + ([single] if single else []):
            g.stop()
        sim.stop()
    measure(5, "c. polling", step5_polling, work, seal)
    measure(5, "f. cached GetStatus", step5_cached, work, seal)


# ---- step 6 ---------------------------------------------------------------------------------------
CALLGRIND_CALLS = int(os.environ.get("BENCH_CALLGRIND_CALLS", "2000"))


def step6(work):
    """Issue 23: the gateway's own work per cached GetStatus, as instructions executed on the loop
    thread (where all of its logic runs) under callgrind, over Health/Check's with the same
    headers: tests/bench/callgrind.py, which the machine's load does not move."""
    del work
    missing = [t for t in ("valgrind", "callgrind_control") if not shutil.which(t)]
    if missing:
        row(6, "instructions per call: skipped", "%s not found (package valgrind)"
            % ", ".join(missing), "-", None)
        return
    import callgrind  # noqa: E402  (imports this module: only when the step runs)
    res = callgrind.measure(CALLGRIND_CALLS)
    for shape, per in res.items():
        extra = per["gs"][1] - per["hc"][1]
        row(6, "%s: Health/Check (same headers), loop thread" % shape,
            "%.0f instructions/call (all threads %.0f)" % (per["hc"][1], per["hc"][0]), "-", None)
        row(6, "%s: cached GetStatus - Health, loop thread" % shape,
            "%.0f instructions/call (phases spread %.0f; %d calls each%s)"
            % (extra, per["spread"], CALLGRIND_CALLS, "" if per["ok"] else "; some calls failed"),
            # The target is read where gRPC core's share holds still (callgrind.py, SHAPES).
            "<= 3000" if shape == "serial" else "-",
            (extra <= 3000 and per["ok"]) if shape == "serial" else None)
        # The same calls without gRPC core's share and the timers (callgrind.own_work): what
        # a change to the gateway's code moves, free of the loop thread's phase-to-phase noise.
        row(6, "%s: of it the gateway's own code: Health, GetStatus - Health" % shape,
            "%.0f, %.0f instructions/call (phases spread %.0f)"
            % (per["hc"][2], per["gs"][2] - per["hc"][2], per["own_spread"]), "-", None)


# ---- step 7: upstream requests per completed job (issue 23) ---------------------------------------
# 50 callers follow 20 jobs (caller i follows job i % 20) with upstream webhooks on: each polls
# GetStatus until the job is final, then asks GetDownloadUrls. The simulator counts what reached
# it; the job's own routes per completed job are the figure (the floor is 1: its POST /process).
JOBS7 = 20
CALLERS7 = 50
JOB7_S = 4              # the simulator's job time
POLL7_MS = 20           # pause between one caller's GetStatus calls
LIMIT7_S = 30           # the whole follow-to-download phase
ROUTES7 = ("POST /videoInfo", "POST /process", "GET /status/{rids}", "GET /download/{rids}")
# The usage ledger (issue 22) measures each upload with POST /videoInfo before /process unless
# usage.measure is budgeted (then only teams with a budget are measured): both are run.
MEASURE7 = ("all", "budgeted")


async def follow_jobs(addr, rids, callers):
    """-> (links per caller: list of (rid, number of links or None), errors)."""
    md = (("authorization", "Bearer " + KEY),)
    deadline = time.monotonic() + LIMIT7_S
    out, errors = [], [0]
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = jobs_pb2_grpc.JobsStub(ch)

        async def caller(i):
            rid = rids[i % len(rids)]
            while time.monotonic() < deadline:
                try:
                    st = (await stub.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5,
                                               metadata=md)).statuses[0]
                except grpc.RpcError:
                    errors[0] += 1
                    await asyncio.sleep(POLL7_MS / 1000.0)
                    continue
                if st.state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE):
                    break
                await asyncio.sleep(POLL7_MS / 1000.0)
            try:
                r = await stub.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]),
                                               timeout=5, metadata=md)
                out.append((rid, sum(len(g.files) for l in r.links for g in l.groups)))
            except grpc.RpcError:
                errors[0] += 1
                out.append((rid, None))
        await asyncio.gather(*(caller(i) for i in range(callers)))
    return out, errors[0]


def step7(work):
    for measure in MEASURE7:
        step7_one(work, measure)


def step7_one(work, measure):
    sim = harness.Sim(work, name="sim-step7-" + measure, job_seconds=JOB7_S,
                      extra_args=["--credits", "1000000"])
    gw = harness.Gateway(work, sim.url, name="gw-step7-" + measure,
                         extra_top="usage:\n  measure: %s\n" % measure)
    goal = 2 if measure == "all" else 1     # the floor: (/videoInfo +) /process
    try:
        upstream_webhook(sim, gw)
        data = open(harness.TINY_MP4, "rb").read()
        urls = [harness.upload_put(gw, "dl-%d.mp4" % i, data) for i in range(JOBS7)]
        before = {k: sim.count(k) for k in ROUTES7}
        # Started together (futures), as a team's batch would be: they finish close together.
        futs = [gw.jobs.StartJob.future(jobs_pb2.StartJobRequest(
            upload_url=u, params=jobs_pb2.Params(formats=["bvh", "fbx"])), timeout=10,
            metadata=gw.md()) for u in urls]
        rids = [f.result(timeout=15).rid for f in futs]
        t0 = time.monotonic()
        got, errors = asyncio.run(follow_jobs(gw.addr, rids, CALLERS7))
        took = time.monotonic() - t0
        counts = {k: sim.count(k) - before[k] for k in ROUTES7}
        m = metrics(gw)
        done = sum(1 for s in gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids), timeout=5,
                                                metadata=gw.md()).statuses
                   if s.state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE))
        served = sum(1 for _, n in got if n)
        per_job = sum(counts.values()) / float(max(done, 1))
        row(7, "usage.measure: %s; %d callers following %d jobs (webhooks on): links served"
            % (measure, CALLERS7, JOBS7),
            "%d of %d callers, %d errors, %d jobs completed, %.1f s" % (served, len(got), errors,
                                                                        done, took),
            "all", served == CALLERS7 and errors == 0 and done == JOBS7)
        row(7, "usage.measure: %s; upstream requests by route" % measure,
            ", ".join("%s %d" % (k, counts[k]) for k in ROUTES7)
            + " (download metrics: hits %d, coalesced %d, fetches %d)"
            % (m.get("animate3d_gateway_download_cache_hits_total", 0),
               m.get("animate3d_gateway_download_coalesced_total", 0),
               m.get("animate3d_gateway_download_fetches_total", 0)), "-", None)
        row(7, "usage.measure: %s; upstream requests per completed job" % measure,
            "%.2f (%d for %d jobs)"
            % (per_job, sum(counts.values()), done), "<= %.1f" % (goal + 0.5),
            done == JOBS7 and per_job <= goal + 0.5)
    finally:
        gw.stop()
        sim.stop()


# ---- step 8: the REST facade's cached GET /status vs nginx proxy_cache (issue 18) ----------------
# One finished job; its GET /status/{rid} served (a) by the facade from the gateway's status cache
# and (b) by nginx with proxy_cache in front of the simulator's /status (cache warm). Same load
# tool, same connections and duration, both servers on CPU 0 with one worker each, the tool on
# CPU 1; REST_ROUNDS alternating rounds, the median round's ratio.
REST_S = int(os.environ.get("BENCH_REST_S", "5"))
REST_ROUNDS = int(os.environ.get("BENCH_REST_ROUNDS", "3"))
REST_CONNS = int(os.environ.get("BENCH_REST_CONNS", "16"))
REST_JOB_S = 1          # the simulator's job time: the job is final before the load starts
# Another gateway binary (say main's build) measured in the same rounds as this one, so a change
# to the facade's hot path is compared side by side: BENCH_BASE_GATEWAY=/path/to/animate3d-gateway
BASE_GATEWAY = os.environ.get("BENCH_BASE_GATEWAY")


def http_tool():
    """-> "wrk" or "h2load" (BENCH_HTTP_TOOL picks; default wrk when installed), or None."""
    want = os.environ.get("BENCH_HTTP_TOOL")
    for t in ([want] if want else ["wrk", "h2load"]):
        if t in ("wrk", "h2load") and shutil.which(t):
            return t
    return None


def lat_ms(text):
    """'812.00us' / '1.23ms' / '1.02s' -> ms."""
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def proc_cpu_s(pid):
    """CPU seconds (user + system, every thread) a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def http_load_cpu(tool, url, headers, log_path, pid):
    """http_load + (the server's CPU seconds per second of the run, the tool's): a server
    below 1.0 was not the limit (the tool, or the scheduler, was)."""
    cpu0, tool0, t0 = proc_cpu_s(pid), os.times(), time.monotonic()
    res = http_load(tool, url, headers, log_path)
    wall = max(time.monotonic() - t0, 1e-6)
    tool1 = os.times()
    tool_s = (tool1.children_user - tool0.children_user) + (tool1.children_system - tool0.children_system)
    return res + ((proc_cpu_s(pid) - cpu0) / wall, tool_s / wall)


def http_load(tool, url, headers, log_path):
    """REST_CONNS keep-alive HTTP/1.1 connections for REST_S seconds, one tool thread on CPU 1.
    -> (req/s, 2xx answers, other answers, p50 ms, p99 ms)."""
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() >= 2 else []
    hdr = []
    for h in headers:
        hdr += ["-H", h]
    if tool == "wrk":
        cmd = pin + ["wrk", "-t", "1", "-c", str(REST_CONNS), "-d", "%ds" % REST_S, "--latency"]
    else:
        cmd = pin + ["h2load", "--h1", "-t", "1", "-c", str(REST_CONNS), "-m", "1", "-D", str(REST_S),
                     "--log-file=" + log_path]
    out = subprocess.run(cmd + hdr + [url], capture_output=True, text=True,
                         timeout=REST_S + 20).stdout
    if tool == "wrk":
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        p50 = re.search(r"\s50%\s+(\S+)", out)
        p99 = re.search(r"\s99%\s+(\S+)", out)
        n_bad = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
        n = int(total.group(1)) if total else 0
        return (float(rps.group(1)) if rps else 0.0, n - (int(bad.group(1)) if bad else 0), n_bad,
                lat_ms(p50.group(1)) if p50 else float("nan"),
                lat_ms(p99.group(1)) if p99 else float("nan"))
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    errored = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, \d+ failed, "
                        r"(\d+) errored", out)
    lat = []
    with open(log_path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    ok = int(codes.group(1)) if codes else 0
    other = (sum(int(x) for x in codes.groups()[1:]) if codes else 0) + \
            (int(errored.group(1)) if errored else 0)
    return (float(rps.group(1)) if rps else 0.0, ok, other, percentile(lat, 50),
            percentile(lat, 99))


NGINX_CONF = """\
# Generated by tests/bench/bench.py step 8: proxy_cache in front of the simulator's /status.
# One process (master_process off: no worker to switch users, no fork), like the gateway's one
# loop; keep-alive not cut after 1000 requests, so both servers keep their connections.
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  proxy_cache_path {d}/cache levels=1:2 keys_zone=status:1m max_size=16m inactive=10m;
  # The same Bearer header as the facade's load, checked by string comparison.
  map $http_authorization $bench_denied {{ "Bearer {key}" 0; default 1; }}
  upstream sim {{ server {sim}; keepalive 4; }}
  server {{
    listen 127.0.0.1:{port};
    location /status/ {{
      if ($bench_denied) {{ return 401; }}
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_set_header Cookie "{cookie}";
      proxy_cache status;
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
      proxy_hide_header Set-Cookie;
      add_header X-Cache-Status $upstream_cache_status always;
    }}
    location / {{ return 404; }}
  }}
}}
"""


def nginx_start(work, sim, port):
    """nginx in the foreground with a generated config (proxy_cache in front of sim's /status).
    -> Popen; raises when it does not listen within 10 s."""
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port, sim=sim.url[len("http://"):], key=KEY,
                                  cookie=sim.login()))
    log = open(os.path.join(d, "stdout.log"), "wb")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() >= 2 else []
    proc = subprocess.Popen(pin + ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    nginx_stop(proc)
    raise RuntimeError("nginx did not listen on 127.0.0.1:%d; error.log: %s"
                       % (port, harness.read_text(os.path.join(d, "error.log"))[-1000:]))


def nginx_stop(proc):
    if proc.poll() is None:
        proc.terminate()        # SIGTERM: fast shutdown
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def rest_job(gw):
    """A finished job made over the facade, as a REST client makes one. -> rid."""
    auth = {"Authorization": "Bearer " + KEY}
    st, _, raw = harness.http("GET", gw.rest_url + "/upload?name=bench.mp4&resumable=0", headers=auth)
    assert st == 200, (st, raw[:200])
    url = json.loads(raw)["url"]
    with open(harness.TINY_MP4, "rb") as f:
        assert harness.put_bytes(url, f.read()) in (200, 201)
    st, _, raw = harness.http("POST", gw.rest_url + "/process", headers=auth,
                              body={"url": url, "processor": "video2anim",
                                    "params": ["config=configDefault", "formats=bvh"]})
    assert st == 200, (st, raw[:200])
    rid = json.loads(raw)["rid"]
    harness.wait_job(gw, rid)
    return rid


def step8(work):
    tool = http_tool()
    if not shutil.which("nginx") or not tool:
        row(8, "facade vs nginx: skipped", "%s not found (packages nginx, and wrk or nghttp2-client)"
            % " and ".join(x for x, ok in (("nginx", shutil.which("nginx")), ("wrk/h2load", tool))
                           if not ok), "-", None)
        step8_callgrind()
        return
    sim = harness.Sim(work, name="sim-step8", job_seconds=REST_JOB_S)
    gw = nginx = base = None
    try:
        gw = harness.Gateway(work, sim.url, name="gw-step8", rest=True)
        rid = rest_job(gw)
        if BASE_GATEWAY:
            this_bin, harness.GATEWAY_BIN = harness.GATEWAY_BIN, BASE_GATEWAY
            try:
                base = harness.Gateway(work, sim.url, name="gw-step8-base", rest=True)
            finally:
                harness.GATEWAY_BIN = this_bin
        port = harness.free_port()
        nginx = nginx_start(work, sim, port)
        bearer = "Authorization: Bearer " + KEY
        urls = {"nginx": "http://127.0.0.1:%d/status/%s" % (port, rid),
                "facade": "%s/status/%s" % (gw.rest_url, rid)}
        # The facade's dmsess cookie, as an SDK that logged in with GET /session/auth sends it.
        basic = base64.b64encode(("team-a:" + KEY).encode()).decode()
        st, hdrs, _ = harness.http("GET", gw.rest_url + "/session/auth",
                                   headers={"Authorization": "Basic " + basic})
        assert st == 200, st
        cookie = "Cookie: " + hdrs["Set-Cookie"].split(";", 1)[0]
        # Warm both caches (the gateway's from the job's own polling) and compare the answers.
        bodies = {}
        for k in ("nginx",) * 5 + ("facade",):      # nginx: until its cache answers (bounded)
            if k == "nginx" and bodies.get(k) and bodies[k][1].get("X-Cache-Status") == "HIT":
                continue
            st, hdrs, raw = harness.http("GET", urls[k], headers={"Authorization": "Bearer " + KEY})
            assert st == 200, (k, st, raw[:200])
            bodies[k] = (raw, hdrs)
        assert bodies["nginx"][1].get("X-Cache-Status") == "HIT", bodies["nginx"][1]
        same = json.loads(bodies["nginx"][0]) == json.loads(bodies["facade"][0])
        if base:
            urls["base"] = "%s/status/%s" % (base.rest_url, rid)
            st, _, raw = harness.http("GET", urls["base"], headers={"Authorization": "Bearer " + KEY})
            assert st == 200 and json.loads(raw) == json.loads(bodies["facade"][0]), (st, raw[:200])
        pinned = all(subprocess.run(["taskset", "-a", "-p", "-c", "0", str(g.proc.pid)],
                                    capture_output=True).returncode == 0 for g in (gw, base) if g)
        route = "GET /status/{rids}"
        upstream_before = sim.count(route)
        targets = (("nginx", urls["nginx"], [bearer], nginx.pid),
                   ("facade", urls["facade"], [bearer], gw.proc.pid),
                   ("facade, cookie", urls["facade"], [cookie], gw.proc.pid))
        if base:
            targets += (("facade, base build", urls["base"], [bearer], base.proc.pid),)
        rounds = []
        for i in range(REST_ROUNDS):
            got = {}
            # Adjacent runs see the same machine load; the order alternates to cancel drift.
            for k, url, h, pid in (targets if i % 2 == 0 else targets[::-1]):
                got[k] = http_load_cpu(tool, url, h, os.path.join(work, "rest8.log"), pid)
            rounds.append((got["facade"][0] / got["nginx"][0] if got["nginx"][0] else 0.0, got))
        upstream = sim.count(route) - upstream_before
        rounds.sort(key=lambda x: x[0])
        ratio, med = rounds[len(rounds) // 2]
        how = "%s, %d connections, %d s x %d rounds" % (tool, REST_CONNS, REST_S, REST_ROUNDS)
        row(8, "answers compared", "%s (nginx %d bytes, facade %d bytes); %s"
            % ("same JSON" if same else "JSON DIFFERS", len(bodies["nginx"][0]),
               len(bodies["facade"][0]), how), "same", same)
        for k, _, _, _ in targets:
            rps, ok, other, p50, p99, cpu, tool_cpu = med[k]
            row(8, "cached GET /status, %s, median round" % k,
                "%.0f req/s, p50 %.2f ms, p99 %.2f ms (%d 2xx, %d other); CPU per second: "
                "server %.2f, %s %.2f" % (rps, p50, p99, ok, other, cpu, tool, tool_cpu),
                "-", other == 0 and ok > 0)
        row(8, "facade / nginx ratio per round", " ".join("%.2f" % r[0] for r in rounds)
            + (" (both servers on CPU 0, %s on CPU 1)" % tool if pinned else " (not pinned)"),
            "-", None)
        row(8, "facade (Bearer) / nginx ratio, median", "%.2f" % ratio, ">= 0.50", ratio >= 0.5)
        # Requests per CPU-second of the server: what each costs, whichever side was the limit
        # (a tool that cannot keep up makes both req/s equal).
        eff = sorted((r[1]["facade"][0] / r[1]["facade"][5]) / (r[1]["nginx"][0] / r[1]["nginx"][5])
                     for r in rounds if r[1]["facade"][5] > 0 and r[1]["nginx"][5] > 0
                     and r[1]["nginx"][0] > 0)
        if eff:
            row(8, "facade / nginx, requests per server CPU-second", "median %.2f (rounds %s)"
                % (eff[len(eff) // 2], " ".join("%.2f" % x for x in eff)), "info", None)
        row(8, "facade (cookie) / nginx, median round", "%.2f"
            % (med["facade, cookie"][0] / med["nginx"][0] if med["nginx"][0] else 0.0), "info", None)
        if base:
            per = sorted(r[1]["facade"][0] / r[1]["facade, base build"][0]
                         for r in rounds if r[1]["facade, base build"][0])
            row(8, "facade: this build / base build, per round", " ".join("%.2f" % x for x in per)
                + " (base %s)" % BASE_GATEWAY, "info", None)
            eff = sorted((r[1]["facade"][0] / r[1]["facade"][5])
                         / (r[1]["facade, base build"][0] / r[1]["facade, base build"][5])
                         for r in rounds if r[1]["facade"][5] > 0
                         and r[1]["facade, base build"][5] > 0 and r[1]["facade, base build"][0] > 0)
            if eff:
                row(8, "facade: this build / base build, requests per server CPU-second",
                    "median %.2f (rounds %s)" % (eff[len(eff) // 2], " ".join("%.2f" % x for x in eff)),
                    "info", None)
        row(8, "upstream GET /status during the load", "%d (both served from their caches)"
            % upstream, "0", upstream == 0)
    finally:
        if nginx:
            nginx_stop(nginx)
        if base:
            base.stop()
        if gw:
            gw.stop()
        sim.stop()
    step8_callgrind()


REST_CALLGRIND = os.environ.get("BENCH_REST_CALLGRIND", "1") != "0"
REST_CALLGRIND_N = 2000


def step8_callgrind():
    """The facade's own work per cached GET /status, which the machine's load does not move:
    tests/bench/callgrind_rest.py (loop-thread instructions; about 40 s per build)."""
    if not REST_CALLGRIND:
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        row(8, "instructions per request: skipped", "valgrind not found (package valgrind)", "-",
            None)
        return
    import callgrind_rest  # noqa: E402  (imports this module: only when the step runs)
    res = callgrind_rest.measure(REST_CALLGRIND_N, BASE_GATEWAY)
    for label, per in res.items():
        row(8, "loop instructions per cached GET /status, %s build (callgrind)" % label,
            "Bearer %.0f, cookie %.0f (%d requests each)" % (per["bearer"][0], per["cookie"][0],
                                                            REST_CALLGRIND_N),
            "-", all(ok == REST_CALLGRIND_N for _, ok in per.values()))
    if "base" in res:
        row(8, "loop instructions, this build / base build", "Bearer %.2f, cookie %.2f"
            % (res["this"]["bearer"][0] / res["base"]["bearer"][0],
               res["this"]["cookie"][0] / res["base"]["cookie"][0]), "info", None)


# ---- step 9 ---------------------------------------------------------------------------------------
# UploadVideo through the gateway with the a3d client vs a direct PUT (curl -T) of the same file to
# the same storage (issue 21). Both write into the simulator's storage directory, on tmpfs when
# there is one (/dev/shm) so that the disk's writeback is in neither figure; each stored object is
# deleted after its transfer. The file is random bytes behind the fixture's MP4 header, read once
# before the first round so that both paths read it from the page cache.
UPLOAD_MIB = int(os.environ.get("BENCH_UPLOAD_MIB", "256"))
UPLOAD_ROUNDS = int(os.environ.get("BENCH_UPLOAD_ROUNDS", "5"))
UPLOAD_CHUNK = os.environ.get("BENCH_UPLOAD_CHUNK")     # a3d --chunk-bytes (default: a3d's 1 MiB)
UPLOAD_LIMIT_S = 60             # one transfer; past it the step fails
UPLOAD_RATIO_TARGET = 0.9
UPLOAD_RSS_TARGET_MIB = 32      # peak RSS growth of the gateway over all the rounds' uploads
UPLOAD_SAMPLE_S = 0.02          # RSS sampling while a3d uploads (VmHWM is the peak as well)


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def step9_file(work):
    path = os.path.join(work, "step9-upload.mp4")
    size = UPLOAD_MIB << 20
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(open(harness.TINY_MP4, "rb").read())
        while f.tell() < size:
            f.write(block[:size - f.tell()])
    with open(path, "rb") as f:         # into the page cache for both paths
        while f.read(8 << 20):
            pass
    return path, size


def step9_run(cmd, env=None, watch_pid=None):
    """Runs cmd (bounded by UPLOAD_LIMIT_S). -> (wall s, its CPU s, peak VmRSS KiB of watch_pid)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    peak = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > UPLOAD_LIMIT_S:
            p.kill()
            p.wait()
            raise RuntimeError("%s: over %d s" % (os.path.basename(cmd[0]), UPLOAD_LIMIT_S))
        if watch_pid:
            peak = max(peak, vm_kib(watch_pid, "VmRSS"))
        time.sleep(UPLOAD_SAMPLE_S)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (os.path.basename(cmd[0]), p.returncode, err[-300:]))
    return wall, ru.ru_utime + ru.ru_stime, peak


def step9(work):
    a3d = os.path.join(harness.BUILD, "a3d")
    if not os.access(a3d, os.X_OK) or not shutil.which("curl"):
        row(9, "upload vs direct PUT: skipped", "build/a3d (target a3d) or curl missing", "-", None)
        return
    path, size = step9_file(work)
    mib = size / float(1 << 20)
    store = tempfile.mkdtemp(prefix="a3d-bench-store-",
                             dir="/dev/shm" if os.path.isdir("/dev/shm") else work)
    sim = harness.Sim(work, name="sim-step9",
                      extra_args=["--storage-dir", store, "--max-upload-bytes", str(size + (1 << 20))])
    gw = None
    try:
        gw = harness.Gateway(work, sim.url, name="gw-step9")
        env = {"A3D_ADDR": gw.addr, "A3D_API_KEY": KEY, "PATH": os.environ.get("PATH", "/usr/bin")}
        up = [a3d, "--no-progress", "upload", path] + (
            ["--chunk-bytes", UPLOAD_CHUNK] if UPLOAD_CHUNK else [])
        # One small upload first: the channel, the upstream session and curl's connections exist
        # before the RSS baseline is taken.
        step9_run([a3d, "--no-progress", "upload", harness.TINY_MP4], env=env)
        try:    # VmHWM from now on ("5" resets it: proc(5), clear_refs): start-up's peak is not ours
            with open("/proc/%d/clear_refs" % gw.proc.pid, "w") as f:
                f.write("5")
        except OSError:
            pass
        rss0 = vm_kib(gw.proc.pid, "VmRSS")
        cpu_s = lambda pid: sum(int(x) for x in open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1]
                                .split()[11:13]) / float(os.sysconf("SC_CLK_TCK"))
        rounds, peak = [], 0
        print("  step 9: %d rounds of %.0f MiB, a3d messages of %s bytes, storage in %s, load %.2f"
              % (UPLOAD_ROUNDS, mib, UPLOAD_CHUNK or "1048576", os.path.dirname(store),
                 os.getloadavg()[0]), flush=True)
        for i in range(UPLOAD_ROUNDS):
            load = os.getloadavg()[0]
            res = {}
            # Alternating order: neither path always runs first after the other's writeback.
            for what in (("direct", "a3d") if i % 2 == 0 else ("a3d", "direct")):
                g0, s0 = cpu_s(gw.proc.pid), cpu_s(sim.proc.pid)
                if what == "direct":
                    url = gw.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(
                        name="direct-%d.mp4" % i, resumable=False), timeout=5, metadata=gw.md()).url
                    wall, cli, _ = step9_run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", path,
                                              url])
                else:
                    wall, cli, pk = step9_run(up + ["--name", "a3d-%d.mp4" % i], env=env,
                                              watch_pid=gw.proc.pid)
                    peak = max(peak, pk, vm_kib(gw.proc.pid, "VmHWM"))
                res[what] = (wall, cpu_s(gw.proc.pid) - g0, cpu_s(sim.proc.pid) - s0, cli)
                for f in os.listdir(store):
                    os.unlink(os.path.join(store, f))
            d, a = res["direct"][0], res["a3d"][0]
            rounds.append((d, a, d / a, load, res["a3d"][1], res["direct"][2], res["a3d"][2],
                           res["direct"][3], res["a3d"][3]))
            print("  step 9 round %d (load %.2f): direct %.3f s %.0f MiB/s, a3d %.3f s %.0f MiB/s, "
                  "ratio %.2f; CPU s: curl %.2f + sim %.2f | a3d %.2f + gateway %.2f + sim %.2f; "
                  "gateway peak RSS +%.1f MiB"
                  % (i + 1, load, d, mib / d, a, mib / a, d / a, res["direct"][3], res["direct"][2],
                     res["a3d"][3], res["a3d"][1], res["a3d"][2], (peak - rss0) / 1024.0), flush=True)
        growth = (peak - rss0) / 1024.0
    finally:
        if gw:
            gw.stop()
        sim.stop()
        shutil.rmtree(store, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2.0
    d, a, ratio = med([r[0] for r in rounds]), med([r[1] for r in rounds]), med([r[2] for r in rounds])
    loads = [r[3] for r in rounds]
    row(9, "direct PUT of %.0f MiB (curl -T, signed URL), median of %d" % (mib, len(rounds)),
        "%.3f s, %.0f MiB/s" % (d, mib / d), "-", None)
    row(9, "a3d upload of the same file through the gateway, median of %d" % len(rounds),
        "%.3f s, %.0f MiB/s; CPU s per upload: a3d %.2f + gateway %.2f + sim %.2f (direct: curl "
        "%.2f + sim %.2f)" % (a, mib / a, med([r[8] for r in rounds]), med([r[4] for r in rounds]),
                              med([r[6] for r in rounds]), med([r[7] for r in rounds]),
                              med([r[5] for r in rounds])), "-", None)
    row(9, "upload / direct PUT speed, median of %d paired rounds (load %.1f-%.1f)"
        % (len(rounds), min(loads), max(loads)),
        "%.2f (rounds %s)" % (ratio, " ".join("%.2f" % r[2] for r in rounds)),
        ">= %.1f" % UPLOAD_RATIO_TARGET, ratio >= UPLOAD_RATIO_TARGET)
    row(9, "gateway peak RSS growth over %.0f MiB uploaded" % (mib * len(rounds)),
        "%.1f MiB" % growth, "< %d MiB" % UPLOAD_RSS_TARGET_MIB, growth < UPLOAD_RSS_TARGET_MIB)
    # tests/bench/plot draws it (docs/img/bench-upload.svg): the first row is the reference bar.
    benchdata.write(9, "UploadVideo throughput vs a direct PUT, MiB/s (median of %d paired rounds)"
                    % len(rounds), ("what", "mib_per_s"),
                    [("direct PUT (curl -T)", mib / d), ("UploadVideo (a3d via the gateway)", mib / a)],
                    note="%.0f MiB file, rounds' ratios %s, load %.1f-%.1f"
                    % (mib, " ".join("%.2f" % r[2] for r in rounds), min(loads), max(loads)))


def main(argv):
    steps = [int(a) for a in argv] or [1, 2, 3, 4, 5, 6, 7, 8, 9]
    work = tempfile.mkdtemp(prefix="a3d-bench-")
    os.environ[harness.SECRET_ENV] = harness.CLIENT_SECRET
    print("bench: build %s, work %s, TTL %d ms, batch %d, window %d ms"
          % (harness.BUILD, work, TTL_MS, BATCH_MAX, WINDOW_MS), flush=True)
    fns = {1: step1, 2: step2, 3: step3, 4: step4, 5: step5, 6: step6, 7: step7, 8: step8,
           9: step9}
    failed = False
    # Steps that measure only for tests/bench/plot's figures run by default too.
    fns.update(PLOT_STEPS)
    steps = steps if argv else steps + sorted(PLOT_STEPS)
    try:
        for s in steps:
            t0 = time.monotonic()
            print("step %d ..." % s, flush=True)
            try:
                fns[s](work)
            except Exception as e:      # noqa: BLE001  (a failed step is a table row, not a crash)
                failed = True
                row(s, "step failed", repr(e)[:200], "-", False)
            print("step %d took %.1f s" % (s, time.monotonic() - t0), flush=True)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    w = [max(len(str(r[i])) for r in ROWS + [("step", "measurement", "result", "target", "ok")])
         for i in range(5)]
    print()
    fmt = "| %%-%ds | %%-%ds | %%-%ds | %%-%ds | %%-%ds |" % tuple(w)
    print(fmt % ("step", "measurement", "result", "target", "ok"))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in ROWS:
        print(fmt % r)
    return 1 if failed or any(r[4] == "NO" for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
