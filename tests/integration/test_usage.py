"""Usage ledger and team budgets (issue 22), end to end: the real gateway in front of the real
simulator, on SQLite or (A3D_IT_BACKEND=postgres) PostgreSQL.

The videos are tests/sim/fixtures/tiny.mp4 with the movie header's duration rewritten: the
simulator charges ceil(duration) seconds for a job and answers /videoInfo from the same header,
so a "15 s" video costs 15 s of a budget. Budgets are 1 minute. The job follower polls (no
upstream webhook here); a short poll interval keeps the settlement waits short.
"""
import concurrent.futures
import csv
import datetime
import io
import os
import re
import struct
import subprocess
import time

import grpc
import pytest

import harness
from harness import account_pb2, characters_pb2, jobs_pb2

M = "animate3d_gateway_"
WAIT_S = 30.0
KEY_C, KEY_D, KEY_E = "demo-key-c-usage", "demo-key-d-usage", "demo-key-e-usage"
KEY_OPS = "demo-key-ops-admin"
KEY_F, KEY_S, KEY_M = "demo-key-f-usage", "demo-key-s-usage", "demo-key-m-usage"
KEY_R = "demo-key-r-usage"
KEY_G = "demo-key-g-usage"
STARTED = {}            # tenant -> rids started by the tests, for GetUsage and the CSV
FOLLOWER = """\
follower:
  poll_interval_ms: 200
  max_poll_interval_ms: 500
  scan_interval_ms: 200
  polls_per_second: 100
"""
# team-b gets its budget below; c: failed jobs released (the default), d: counted; e: the race.
TENANTS = """\
  - name: team-c
    account: sim
    budget: {{minutes_per_month: 1}}
    keys:
      - {{sha256: {c}, permissions: [read, write]}}
  - name: team-d
    account: sim
    budget: {{minutes_per_month: 1, count_failed: true}}
    keys:
      - {{sha256: {d}, permissions: [read, write]}}
  - name: team-e
    account: sim
    budget: {{minutes_per_month: 1, hard: true}}
    keys:
      - {{sha256: {e}, permissions: [read, write]}}
  - name: team-f
    account: sim
    budget: {{minutes_per_month: 1}}
    keys:
      - {{sha256: {f}, permissions: [read, write]}}
  - name: team-s
    account: sim
    budget: {{minutes_per_month: 1, hard: false}}
    keys:
      - {{sha256: {s}, permissions: [read, write]}}
  - name: team-m
    account: sim
    keys:
      - {{sha256: {m}, permissions: [read, write]}}
  - name: team-r
    account: sim
    budget: {{minutes_per_month: 1}}
    keys:
      - {{sha256: {r}, permissions: [read, write]}}
  - name: ops
    account: sim
    keys:
      - {{sha256: {ops}, permissions: [admin]}}
""".format(c=harness.sha256_hex(KEY_C), d=harness.sha256_hex(KEY_D), e=harness.sha256_hex(KEY_E),
           f=harness.sha256_hex(KEY_F), s=harness.sha256_hex(KEY_S), m=harness.sha256_hex(KEY_M),
           r=harness.sha256_hex(KEY_R), ops=harness.sha256_hex(KEY_OPS))
KEYS = {"team-c": KEY_C, "team-d": KEY_D, "team-e": KEY_E, "team-f": KEY_F, "team-s": KEY_S,
        "team-m": KEY_M, "team-r": KEY_R, "ops": KEY_OPS, "team-g": KEY_G}
REFUSAL = re.compile(r"^StartJob: budget of team (\S+) is spent: (\d+\.\d\d) of (\d+) minutes used "
                     r"this month, this job needs (\d+\.\d\d) more; it resets at "
                     r"(\d{4}-\d\d-01T00:00:00Z)$")


def _video(seconds):
    """tiny.mp4 whose mvhd says it lasts `seconds` (version 0 box: timescale, then duration)."""
    with open(harness.TINY_MP4, "rb") as f:
        data = bytearray(f.read())
    at = data.index(b"mvhd") + 4
    assert data[at] == 0, "a version 0 mvhd"
    timescale = struct.unpack(">I", data[at + 12:at + 16])[0]
    data[at + 16:at + 20] = struct.pack(">I", int(seconds * timescale))
    return bytes(data)


def _md(gw, tenant):
    return gw.md(tenant, key=KEYS.get(tenant))


def _upload(gw, tenant, name, seconds):
    r = gw.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(name=name, resumable=False), timeout=5,
                             metadata=_md(gw, tenant))
    assert harness.put_bytes(r.url, _video(seconds)) in (200, 201)
    return r.url


def _start(gw, tenant, url, timeout=10):
    return gw.jobs.StartJob(jobs_pb2.StartJobRequest(upload_url=url, params=jobs_pb2.Params(formats=["bvh"])),
                            timeout=timeout, metadata=_md(gw, tenant)).rid


def _next_month_utc():
    now = datetime.datetime.now(datetime.timezone.utc)
    y, m = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return "%04d-%02d-01T00:00:00Z" % (y, m)


def _wait_metric(gw, key, value, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    m = {}
    while time.monotonic() < deadline:
        m = harness.metrics(gw)
        if m.get(key, 0) >= value:
            return m
        time.sleep(0.1)
    raise AssertionError("%s did not reach %s in %.0fs (have %s)" % (key, value, timeout, m.get(key, 0)))


def _config(gw_ports, sim, state_path):
    text = harness.gateway_config(gw_ports[0], gw_ports[1], sim.url, state_path,
                                  extra_tenants=TENANTS, extra_top=FOLLOWER)
    # team-b: a 1-minute hard budget (the default window: the calendar month in UTC)
    return text.replace("  - name: team-b\n    account: sim\n",
                        "  - name: team-b\n    account: sim\n    budget: {minutes_per_month: 1}\n", 1)


@pytest.fixture(scope="module")
def usim(stack):
    return stack.sim(name="usagesim", job_seconds=2)


@pytest.fixture(scope="module")
def ugw(stack, usim):
    ports = (harness.free_port(), harness.free_port())
    state = stack.workdir + "/usage.db"
    return stack.gateway(usim, name="usagegw", grpc_port=ports[0], http_port=ports[1],
                         state_path=state, config_text=_config(ports, usim, state))


def test_hard_budget_refuses_with_the_documented_message(ugw, usim):
    url = _upload(ugw, "team-b", "budget-b.mp4", 15)
    started, refusal = [], None
    for _ in range(8):              # 4 fit in 60 s; bounded either way
        try:
            started.append(_start(ugw, "team-b", url))
        except grpc.RpcError as e:
            refusal = e
            break
    assert len(started) == 4, started
    STARTED["team-b"] = started
    assert refusal is not None and refusal.code() == grpc.StatusCode.FAILED_PRECONDITION
    m = REFUSAL.match(refusal.details())
    assert m, refusal.details()
    assert m.group(1) == "team-b" and m.group(2) == "1.00" and m.group(3) == "1"
    assert m.group(4) == "0.25" and m.group(5) == _next_month_utc()
    # Refused before anything went upstream: the simulator started 4 jobs for it.
    assert harness.metrics(ugw).get(M + 'budget_exceeded_total{tenant="team-b",hard="true"}') == 1
    # Another team's minutes are its own: team-a has no budget.
    STARTED["team-a"] = [_start(ugw, "team-a", _upload(ugw, "team-a", "budget-a.mp4", 15))]


def test_soft_budget_allows_logs_and_counts(ugw):
    url = _upload(ugw, "team-s", "soft-s.mp4", 15)
    for _ in range(5):              # the fifth goes past the minute: started anyway
        _start(ugw, "team-s", url)
    m = harness.metrics(ugw)
    assert m.get(M + 'budget_exceeded_total{tenant="team-s",hard="false"}') == 1
    assert M + 'budget_exceeded_total{tenant="team-s",hard="true"}' not in m
    lines = [l for l in ugw.log_text().splitlines() if '"budget_exceeded"' in l and '"team-s"' in l]
    assert len(lines) == 1 and '"hard":"false"' in lines[0] and '"used_s":60' in lines[0], lines


def test_rerun_is_measured_from_the_original_job(ugw):
    """A rerun costs the original input (from its ledger row), trimmed as upstream trims it."""
    rid = _start(ugw, "team-f", _upload(ugw, "team-f", "rerun-f.mp4", 20))
    assert _wait_final(ugw, "team-f", rid) == jobs_pb2.SUCCESS

    def rerun(**params):
        return ugw.jobs.StartJob(jobs_pb2.StartJobRequest(
            rerun_rid=rid, params=jobs_pb2.Params(formats=["bvh"], **params)), timeout=10,
            metadata=_md(ugw, "team-f")).rid

    rerun()                                                     # 20 s: 40 s used
    rerun(trim=jobs_pb2.Trim(from_s=2.0, to_s=16.5))            # ceil(14.5) = 15 s: 55 s
    with pytest.raises(grpc.RpcError) as e:
        rerun()                                                 # 20 s more: over
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    m = REFUSAL.match(e.value.details())
    assert m and (m.group(2), m.group(4)) == ("0.92", "0.33"), e.value.details()
    rerun(trim=jobs_pb2.Trim(from_s=15.0, to_s=99.0))           # the last 5 s: exactly 60 s


def _usage(gw, tenant, ask=""):
    return gw.account.GetUsage(account_pb2.GetUsageRequest(tenant=ask), timeout=5,
                               metadata=_md(gw, tenant)).usage


def test_get_usage_matches_the_jobs_run(ugw):
    """Once team-b's 4 jobs of 15 s succeeded and were settled, its minute is charged; a team
    reads its own usage only; the admin key reads every team's."""
    for rid in STARTED["team-b"] + STARTED["team-a"]:
        assert _wait_final(ugw, "team-b" if rid in STARTED["team-b"] else "team-a", rid) == \
            jobs_pb2.SUCCESS
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:      # the follower settles them soon after
        u = _usage(ugw, "team-b")
        a = _usage(ugw, "ops", "team-a")
        if u[0].jobs_by_state.succeeded == 4 and a[0].jobs_by_state.succeeded == 1:
            break
        time.sleep(0.1)
    assert len(u) == 1 and u[0].tenant == "team-b"
    assert u[0].minutes_used == pytest.approx(1.0)
    assert u[0].jobs_by_state.succeeded == 4
    assert (u[0].jobs_by_state.running, u[0].jobs_by_state.reserved, u[0].jobs_by_state.failed) == (0, 0, 0)
    assert u[0].has_budget and u[0].hard and u[0].budget_minutes == 1
    assert u[0].remaining_minutes == pytest.approx(0.0)
    assert u[0].reset_at == _next_month_utc()
    for tenant, ask in (("team-b", "team-a"), ("team-a", "*")):
        with pytest.raises(grpc.RpcError) as e:
            _usage(ugw, tenant, ask)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value.details()
    every = {x.tenant: x for x in _usage(ugw, "ops", "*")}
    assert {"team-a", "team-b", "team-c", "team-d", "team-e", "team-f", "ops", "viewer"} <= set(every)
    assert every["team-a"].minutes_used == pytest.approx(0.25) and not every["team-a"].has_budget
    assert every["team-b"].minutes_used == pytest.approx(1.0)
    assert [x.tenant for x in _usage(ugw, "ops", "team-b")] == ["team-b"]
    # An admin key is no read key: it reads usage, nothing else.
    with pytest.raises(grpc.RpcError) as e:
        ugw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=STARTED["team-a"]), timeout=5,
                           metadata=_md(ugw, "ops"))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _wait_usage(gw, tenant, succeeded):
    deadline = time.monotonic() + WAIT_S
    u = None
    while time.monotonic() < deadline:
        u = _usage(gw, tenant)[0]
        if u.jobs_by_state.succeeded >= succeeded:
            return u
        time.sleep(0.1)
    raise AssertionError("%s: %s succeeded rows wanted, have %s" % (tenant, succeeded, u))


def test_multi_person_run_costs_the_detection_input_and_settles(ugw):
    """Phase 1 (detection) and phase 2 (the same rid) are two ledger rows of the input's 10 s;
    phase 2 is settled too, although its rid was settled at the detection's end."""
    url = _upload(ugw, "team-m", "crowd-persons-2.mp4", 10)
    rid = ugw.jobs.StartJob(jobs_pb2.StartJobRequest(upload_url=url, params=jobs_pb2.Params(
        pipeline="mp_detection")), timeout=10, metadata=_md(ugw, "team-m")).rid
    assert _wait_final(ugw, "team-m", rid) == jobs_pb2.SUCCESS
    u = _wait_usage(ugw, "team-m", 1)
    assert u.minutes_used == pytest.approx(10 / 60)
    stock = [m.id for m in ugw.characters.ListModels(characters_pb2.ListModelsRequest(
        include_stock=True), timeout=5, metadata=_md(ugw, "team-m")).models
        if m.platform in ("deepmotion", "roblox")][:2]
    models = [jobs_pb2.TrackedModel(tracking_ref="%03d" % (i + 1), model_id=m) for i, m in enumerate(stock)]
    assert ugw.jobs.StartJob(jobs_pb2.StartJobRequest(mp_detection_rid=rid, params=jobs_pb2.Params(
        formats=["bvh"], models=models)), timeout=10, metadata=_md(ugw, "team-m")).rid == rid
    u = _wait_usage(ugw, "team-m", 2)
    assert u.minutes_used == pytest.approx(20 / 60)
    assert (u.jobs_by_state.running, u.jobs_by_state.reserved) == (0, 0)


def test_concurrent_starts_at_the_edge_never_overspend(stack, ugw, usim):
    """20 StartJobs of 6 s at once against 60 s: exactly 10 pass. On PostgreSQL the calls are
    spread over two gateways sharing the ledger."""
    gws = [ugw]
    if harness.POSTGRES:
        ports = (harness.free_port(), harness.free_port())
        gws.append(stack.gateway(usim, name="usagegw2", grpc_port=ports[0], http_port=ports[1],
                                 config_text=_config(ports, usim, stack.workdir + "/usage2.db")))
    url = _upload(ugw, "team-e", "race-e.mp4", 6)
    jobs_before = usim.count("POST /process")

    def one(i):
        try:
            return _start(gws[i % len(gws)], "team-e", url, timeout=20)
        except grpc.RpcError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        out = list(ex.map(one, range(20)))
    ok = [x for x in out if isinstance(x, str)]
    refused = [x for x in out if not isinstance(x, str)]
    assert len(ok) == 10, [getattr(x, "details", lambda: x)() for x in out]
    assert all(e.code() == grpc.StatusCode.FAILED_PRECONDITION for e in refused), \
        [e.details() for e in refused]
    assert usim.count("POST /process") - jobs_before == 10
    if len(gws) > 1:
        gws[1].stop()


def _wait_final(gw, tenant, rid, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5,
                               metadata=_md(gw, tenant)).statuses[0].state
        if st in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE):
            return st
        time.sleep(0.2)
    raise AssertionError("job %s not final in %.0fs" % (rid, timeout))


def _released_or_counted(gw, tenant, counted):
    """A 40 s job that fails: while it runs a second one does not fit; once it failed the second
    one fits only when failures are released."""
    url_fail = _upload(gw, tenant, "clip-fail-513-%s.mp4" % tenant, 40)
    url = _upload(gw, tenant, "second-%s.mp4" % tenant, 40)
    settled = harness.metrics(gw).get(M + 'usage_ledger_total{what="settled"}', 0)
    rid = _start(gw, tenant, url_fail)
    with pytest.raises(grpc.RpcError) as e:
        _start(gw, tenant, url)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _wait_final(gw, tenant, rid) == jobs_pb2.FAILURE
    _wait_metric(gw, M + 'usage_ledger_total{what="settled"}', settled + 1)
    if counted:
        with pytest.raises(grpc.RpcError) as e:
            _start(gw, tenant, url)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert REFUSAL.match(e.value.details()).group(2) == "0.67"
    else:
        assert _start(gw, tenant, url)


def test_failed_job_minutes_released(ugw):
    _released_or_counted(ugw, "team-c", counted=False)


def test_failed_job_minutes_counted_with_count_failed(ugw):
    _released_or_counted(ugw, "team-d", counted=True)


def test_reservation_released_when_upstream_refuses_the_job(ugw, usim):
    """/process answers 400 once: no job, so its 40 s are given back and the next start fits."""
    url = _upload(ugw, "team-r", "refused-r.mp4", 40)
    released = M + 'usage_ledger_total{what="released"}'
    before = harness.metrics(ugw).get(released, 0)
    usim.faults("POST /process", status=400, count=1)
    try:
        with pytest.raises(grpc.RpcError) as e:
            _start(ugw, "team-r", url)
        assert e.value.code() != grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
    finally:
        usim.clear_faults()
    _wait_metric(ugw, released, before + 1)     # written after the call's answer
    assert _start(ugw, "team-r", url)
    u = _usage(ugw, "team-r")[0]
    assert (u.jobs_by_state.released, u.minutes_used) == (1, pytest.approx(40 / 60))


def test_restart_keeps_the_ledger(stack, ugw, usim):
    """team-b spent its minute before the restart: still refused after it, and the CSV export
    (run while the SQLite file is free) has the jobs run; the gauges are read at start."""
    ugw.stop()
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    out = subprocess.run([harness.GATEWAY_BIN, "usage", "--month", month, "-c", ugw.config_path],
                         capture_output=True, text=True, timeout=30, env=_pg_env())
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    b = [r for r in rows if r["tenant"] == "team-b"]
    assert sorted(r["rid"] for r in b) == sorted(STARTED["team-b"])
    assert {(r["state"], r["seconds"], r["counted_seconds"], r["input_seconds"], r["source"])
            for r in b} == {("succeeded", "15", "15", "15.000", "url")}
    assert all(r["started_at"].startswith(month) and r["ended_at"] for r in b)
    assert [r["rid"] for r in rows if r["tenant"] == "team-a"] == STARTED["team-a"]
    assert subprocess.run([harness.GATEWAY_BIN, "usage", "--month", "2026-13", "-c",
                           ugw.config_path], capture_output=True, timeout=30).returncode == 2
    ports = (harness.free_port(), harness.free_port())
    gw = stack.gateway(usim, name="usagegw-again", grpc_port=ports[0], http_port=ports[1],
                       state_path=ugw.state_path,
                       config_text=_config(ports, usim, ugw.state_path))
    url = _upload(gw, "team-b", "budget-b-again.mp4", 1)
    with pytest.raises(grpc.RpcError) as e:
        _start(gw, "team-b", url)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert REFUSAL.match(e.value.details()).group(2) == "1.00"
    m = _wait_metric(gw, M + 'budget_minutes{tenant="team-b"}', 1)
    deadline = time.monotonic() + WAIT_S
    while M + 'usage_minutes{tenant="team-b"}' not in m and time.monotonic() < deadline:
        time.sleep(0.1)
        m = harness.metrics(gw)
    assert m[M + 'usage_minutes{tenant="team-b"}'] == pytest.approx(1.0)
    assert m[M + 'budget_remaining_minutes{tenant="team-b"}'] == pytest.approx(0.0)


def _pg_env():
    """The gateway's environment (the CSV export loads the same configuration)."""
    env = dict(os.environ)
    env[harness.SECRET_ENV] = harness.CLIENT_SECRET
    return env


ROUTE_VIDEO_INFO = "POST /videoInfo"


def test_measure_budgeted_spares_teams_without_a_budget_the_video_info(stack, usim):
    """usage.measure: budgeted: a team without a budget (team-a) starts its job with one upstream
    request (POST /process, no /videoInfo first) and its row is recorded unmeasured; a team with a
    budget (team-g) is still measured."""
    ports = (harness.free_port(), harness.free_port())
    state = stack.workdir + "/usage-budgeted.db"
    # team-g: a budget of its own that no other test spends (on PostgreSQL the ledger is shared
    # by every gateway of the module).
    team_g = ("  - name: team-g\n    account: sim\n    budget: {minutes_per_month: 100}\n"
              "    keys:\n      - {sha256: %s, permissions: [read, write]}\n"
              % harness.sha256_hex(KEY_G))
    text = harness.gateway_config(ports[0], ports[1], usim.url, state,
                                  extra_tenants=TENANTS + team_g,
                                  extra_top=FOLLOWER + "usage:\n  measure: budgeted\n")
    gw = stack.gateway(usim, name="usagegw-budgeted", grpc_port=ports[0], http_port=ports[1],
                       state_path=state, config_text=text)
    try:
        url_a = _upload(gw, "team-a", "measure-a.mp4", 3)
        url_b = _upload(gw, "team-g", "measure-g.mp4", 3)
        before = usim.count(ROUTE_VIDEO_INFO)
        unmeasured = harness.metrics(gw).get(M + 'usage_ledger_total{what="unmeasured"}', 0)
        _start(gw, "team-a", url_a)
        assert usim.count(ROUTE_VIDEO_INFO) == before
        assert harness.metrics(gw).get(M + 'usage_ledger_total{what="unmeasured"}', 0) == unmeasured + 1
        _start(gw, "team-g", url_b)
        assert usim.count(ROUTE_VIDEO_INFO) == before + 1
    finally:
        gw.stop()
