"""Per-team metrics and the process_* families on /metrics (issue 20).

rpc_total and rpc_duration_seconds carry the tenant the call authenticated as ("-" for none), so
the counts of calls made by two tenants, and by a wrong key, show up each under its own tenant; a
SIGHUP that adds a tenant makes its series appear with its first call, and one that removes a
tenant drops its series once no call can count into them. The process_* families (Prometheus
client conventions, no prefix) parse and hold plausible values for the gateway's process.
"""

import os
import re
import signal
import threading
import time

import grpc
import pytest

import harness
from harness import account_pb2, jobs_pb2

P = "animate3d_gateway_"
CREDITS = "/animate3d.v1.Account/GetCreditBalance"
STATUS = "/animate3d.v1.Jobs/GetStatus"
WAIT_S = 10.0
SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(gw):
    """/metrics -> ({family: type}, [(name, {labels}, value)])."""
    st, _, body = harness.http("GET", gw.http_url + "/metrics")
    assert st == 200
    types, samples = {}, []
    for line in body.decode().splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return types, samples


def value(samples, name, **labels):
    """Sum of the samples of name whose labels include labels (0 when none)."""
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == w for k, w in labels.items()))


def settled(gw):
    """scrape() once no call is in flight: a call is counted when the server frees it, a moment
    after its client saw the answer. Bounded by WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        types, samples = scrape(gw)
        if value(samples, P + "rpc_in_flight") == 0 or time.monotonic() > deadline:
            return types, samples
        time.sleep(0.05)


def credits(gw, tenant=None, key=None):
    return gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                       metadata=gw.md(tenant or "team-a", key=key))


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


# (tenant label, method, code name) -> calls this test makes
CALLS = {
    ("team-a", CREDITS, "OK"): 5,
    ("team-b", CREDITS, "OK"): 3,
    ("team-b", STATUS, "NOT_FOUND"): 2,
    ("-", CREDITS, "UNAUTHENTICATED"): 2,
}


def test_rpc_series_per_tenant_count_the_calls(gateway):
    _, before = settled(gateway)
    for _ in range(CALLS[("team-a", CREDITS, "OK")]):
        credits(gateway, "team-a")
    for _ in range(CALLS[("team-b", CREDITS, "OK")]):
        credits(gateway, "team-b")
    for _ in range(CALLS[("team-b", STATUS, "NOT_FOUND")]):
        assert code_of(lambda: gateway.jobs.GetStatus(
            jobs_pb2.GetStatusRequest(rids=["1" * 22]), timeout=5,
            metadata=gateway.md("team-b"))) == grpc.StatusCode.NOT_FOUND
    for _ in range(CALLS[("-", CREDITS, "UNAUTHENTICATED")]):
        assert code_of(lambda: credits(gateway, key="no-such-key")) == \
            grpc.StatusCode.UNAUTHENTICATED
    types, after = settled(gateway)
    assert types.get(P + "rpc_total") == "counter"
    assert types.get(P + "rpc_duration_seconds") == "histogram"

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    for (tenant, method, code), n in CALLS.items():
        got = delta(P + "rpc_total", tenant=tenant, method=method, code=code)
        assert got == n, "rpc_total{tenant=%r,method=%r,code=%r}: +%d, want +%d" % (
            tenant, method, code, got, n)
    # Nothing counted under the wrong tenant.
    assert delta(P + "rpc_total", tenant="team-a", method=STATUS) == 0
    assert delta(P + "rpc_total", tenant="team-b", method=CREDITS, code="UNAUTHENTICATED") == 0
    assert delta(P + "rpc_total", tenant="viewer") == 0
    # Every tenant label is a configured tenant or "-".
    tenants = {l.get("tenant") for n, l, _ in after if n == P + "rpc_total"}
    assert tenants <= set(harness.KEYS) | {"-"}, tenants
    # The histogram counted the same calls, per tenant and method, its buckets cumulative.
    for tenant, method in {(t, m) for t, m, _ in CALLS}:
        calls = sum(n for (t, m, _), n in CALLS.items() if (t, m) == (tenant, method))
        assert delta(P + "rpc_duration_seconds_count", tenant=tenant, method=method) == calls
        buckets = sorted((float(l["le"]), v) for n, l, v in after
                         if n == P + "rpc_duration_seconds_bucket"
                         and l.get("tenant") == tenant and l.get("method") == method)
        assert buckets and buckets[-1][0] == float("inf")
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets
        assert buckets[-1][1] == value(after, P + "rpc_duration_seconds_count", tenant=tenant,
                                       method=method)


def test_process_metrics_parse_and_are_plausible(sim, tmp_path):
    want = {"process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
            "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
            "process_max_fds": "gauge", "process_start_time_seconds": "gauge"}
    t0 = time.time()
    gw = harness.Gateway(str(tmp_path), sim.url, name="gw-process-metrics")
    t1 = time.time()
    try:
        types, samples = scrape(gw)
        _, again = scrape(gw)
    finally:
        gw.stop()
    got = {n: v for n, l, v in samples if n.startswith("process_")}
    for name, kind in want.items():
        assert types.get(name) == kind, (name, types.get(name))
        assert name in got, "no sample of %s" % name
    assert got["process_resident_memory_bytes"] > 0
    assert got["process_virtual_memory_bytes"] >= got["process_resident_memory_bytes"]
    # Its listeners and the HTTP connection of this scrape at least.
    assert 3 <= got["process_open_fds"] <= got["process_max_fds"]
    # Started while this test started it, so within the last hour. Slack: /proc/stat's boot
    # time is whole seconds, and the kernel's estimate of it moves with clock adjustments.
    assert t0 - 3 <= got["process_start_time_seconds"] <= t1 + 3, (t0, got, t1)
    assert time.time() - 3600 < got["process_start_time_seconds"]
    assert got["process_cpu_seconds_total"] >= 0
    # A counter: the next scrape never shows less.
    assert value(again, "process_cpu_seconds_total") >= got["process_cpu_seconds_total"]


def rpc_series(samples, tenant):
    """The rpc_total and rpc_duration_seconds samples of tenant."""
    return [(n, l) for n, l, _ in samples if l.get("tenant") == tenant
            and (n == P + "rpc_total" or n.startswith(P + "rpc_duration_seconds_"))]


def rewrite_tenants(gw, drop=(), add=""):
    """Rewrites gw's configuration without the tenants in drop and with add appended to
    tenants: (the last section), then SIGHUPs and waits for the reload line."""
    with open(gw.config_path) as f:
        text = f.read()
    for name in drop:
        text, n = re.subn(r"(?m)^  - name: %s\n(?:    .*\n)+" % re.escape(name), "", text)
        assert n == 1, name
    tmp = gw.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + add)
    os.replace(tmp, gw.config_path)
    before = harness.read_text(gw.log_path).count('"configuration reloaded"')
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while harness.read_text(gw.log_path).count('"configuration reloaded"') <= before:
        assert time.monotonic() < deadline, "no reload line after SIGHUP"
        time.sleep(0.05)


@pytest.fixture
def own_gateway(sim, tmp_path):
    gw = harness.Gateway(str(tmp_path), sim.url, name="gw-tenant-metrics")
    yield gw
    gw.stop()


def test_reload_adds_and_drops_tenant_series(own_gateway):
    gw = own_gateway
    new_key = "tenant-metrics-new-key"
    credits(gw, "team-a")
    credits(gw, "team-b")
    _, s = settled(gw)
    assert value(s, P + "rpc_total", tenant="team-b", method=CREDITS, code="OK") == 1
    rewrite_tenants(gw, drop=["team-b"], add="""\
  - name: team-new
    account: sim
    keys:
      - sha256: %s
        permissions: [read, write]
""" % harness.sha256_hex(new_key))
    _, s = settled(gw)
    # team-b is in no configuration any call holds: its series are gone; team-a's stay.
    assert not rpc_series(s, "team-b"), "team-b's series stayed"
    assert value(s, P + "rpc_total", tenant="team-a", method=CREDITS, code="OK") == 1
    assert not rpc_series(s, "team-new"), "series before any call"
    assert code_of(lambda: credits(gw, key=harness.KEYS["team-b"])) == \
        grpc.StatusCode.UNAUTHENTICATED
    for _ in range(2):
        credits(gw, key=new_key)
    credits(gw, "team-a")
    _, s = settled(gw)
    assert value(s, P + "rpc_total", tenant="team-new", method=CREDITS, code="OK") == 2
    assert value(s, P + "rpc_duration_seconds_count", tenant="team-new", method=CREDITS) == 2
    assert value(s, P + "rpc_total", tenant="team-a", method=CREDITS, code="OK") == 2
    assert value(s, P + "rpc_total", tenant="-", method=CREDITS, code="UNAUTHENTICATED") == 1
    assert value(s, P + "rpc_tenant_slots_refused_total") == 0


def until(fn, what):
    deadline = time.monotonic() + WAIT_S
    while not fn():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_removed_tenant_series_stay_while_its_call_lives(own_gateway):
    """A call that authenticated before the reload can still count into its tenant's series (an
    upload stream held open here): they stay until it ends, then leave /metrics."""
    gw = own_gateway
    credits(gw, "team-b")
    release = threading.Event()

    def nothing_yet():
        release.wait(WAIT_S)
        return
        yield  # noqa: unreachable - makes this a generator that sends no message

    fut = gw.jobs.UploadVideo.future(nothing_yet(), timeout=30, metadata=gw.md("team-b"))
    try:
        until(lambda: value(scrape(gw)[1], P + "rpc_in_flight") >= 1, "the upload call arrived")
        rewrite_tenants(gw, drop=["team-b"])
        _, s = scrape(gw)
        assert value(s, P + "rpc_total", tenant="team-b", method=CREDITS, code="OK") == 1
    finally:
        fut.cancel()
        release.set()
    until(lambda: not rpc_series(scrape(gw)[1], "team-b"), "team-b's series gone after its call")
