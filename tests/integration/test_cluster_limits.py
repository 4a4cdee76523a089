"""Shared rate limits across replicas (issue 16), end to end: three gateways on one PostgreSQL and
one Redis, one simulator, callers spread round-robin over the replicas.

- team-b (20/s, burst 40) offered well over its limit for 5 s through the three replicas is
  admitted about as much as one gateway alone admits for the same load (<= 1.1x), and team-a (a
  large limit) loses nothing;
- Redis killed under traffic: no replica crashes, callers are still served (each replica falls back
  to its local share, limit / 3), the fallback decisions are counted in /metrics and /readyz shows
  "limits":"local"; Redis back: "shared" again, and decisions are shared again.

Runs under tests/lib/with-redis and tests/lib/with-postgres (ctest integration.cluster_limits);
skipped without them. Every loop is bounded in count and time; measured figures are printed.
"""
import os
import secrets
import subprocess
import threading
import time

import grpc
import pytest

import harness
from harness import account_pb2

P = "animate3d_gateway_"
WINDOW_S = 5.0
TEAM_B_OFFERED = 100        # calls/s, 5x team-b's 20/s
TEAM_A_OFFERED = 30         # calls/s, far below team-a's limit

pytestmark = pytest.mark.skipif(
    not (os.environ.get("A3D_REDIS_PORT") and os.environ.get("A3D_PG_PORT")),
    reason="needs tests/lib/with-redis and tests/lib/with-postgres (ctest integration.cluster_limits)")


def cluster_config(grpc_port, http_port, sim_url, seal_key_file, replicas=3):
    """harness.gateway_config, with team-b at 20/s (burst 40), the state in PostgreSQL, and Redis."""
    text = harness.gateway_config(grpc_port, http_port, sim_url, "UNUSED", rate=(1000, 2000))
    b = "  - name: team-b\n    account: sim\n    rate: { per_second: 1000, burst: 2000 }\n"
    assert b in text
    text = text.replace(b, "  - name: team-b\n    account: sim\n    rate: { per_second: 20, burst: 40 }\n")
    old = "state:\n  path: UNUSED\n"
    assert old in text
    text = text.replace(old, (
        "state:\n  postgres:\n"
        "    dsn: \"hostaddr=127.0.0.1 port={port} dbname={db} user={user}\"\n"
        "    password_file: {pw}\n").format(port=os.environ["A3D_PG_PORT"], db=os.environ["A3D_PG_DB"],
                                           user=os.environ["A3D_PG_USER"],
                                           pw=os.environ["A3D_PG_PASSWORD_FILE"]))
    text += ("cluster:\n  expected_replicas: {n}\n"
             "redis:\n  url: redis://127.0.0.1:{port}/0\n  password_file: {pw}\n"
             "  seal_key_file: {seal}\n").format(n=replicas, port=os.environ["A3D_REDIS_PORT"],
                                                pw=os.environ["A3D_REDIS_PASSWORD_FILE"],
                                                seal=seal_key_file)
    return text


def single_config(grpc_port, http_port, sim_url, state_path):
    """One gateway alone, as before issue 16: SQLite, no Redis, team-b at 20/s (burst 40)."""
    text = harness.gateway_config(grpc_port, http_port, sim_url, state_path, rate=(1000, 2000))
    b = "  - name: team-b\n    account: sim\n    rate: { per_second: 1000, burst: 2000 }\n"
    return text.replace(b, "  - name: team-b\n    account: sim\n    rate: { per_second: 20, burst: 40 }\n")


def start(stack, sim, name, text_of):
    g, h = harness.free_port(), harness.free_port()
    gw = harness.Gateway(stack.workdir, sim.url, name=name, config_text=text_of(g, h),
                         grpc_port=g, http_port=h)
    stack.gateways.append(gw)       # the stack stops it and checks its exit code and log
    return gw


def truncate_pg():
    """The gateway's tables empty (they exist once a gateway has migrated); bounded."""
    psql = subprocess.run(["which", "psql"], capture_output=True, text=True).stdout.strip()
    if not psql:
        return
    env = dict(os.environ)
    with open(os.environ["A3D_PG_PASSWORD_FILE"]) as f:
        env["PGPASSWORD"] = f.read().strip()
    subprocess.run([psql, "-h", "127.0.0.1", "-p", os.environ["A3D_PG_PORT"], "-U",
                    os.environ["A3D_PG_USER"], "-d", os.environ["A3D_PG_DB"], "-q", "-c",
                    "DO $$ BEGIN IF to_regclass('a3d_owner') IS NOT NULL THEN "
                    "TRUNCATE a3d_owner, a3d_idem; END IF; END $$;"],
                   env=env, capture_output=True, timeout=20)


class RoundRobin:
    """Paced GetCreditBalance calls of one tenant from a thread, `rate` per second for `seconds`,
    call i going to gateway i % len(gws); the results kept per status code."""

    def __init__(self, gws, tenant, rate, seconds, timeout=3.0):
        self.gws, self.tenant, self.rate, self.seconds, self.timeout = gws, tenant, rate, seconds, timeout
        self.codes = {}
        self.pushbacks = []
        self.sent = 0
        self.span = 0.0             # seconds from the first call sent to the last
        self._lock = threading.Lock()
        self._pending = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, fut):
        err = fut.exception()
        code = err.code() if err is not None else grpc.StatusCode.OK
        with self._lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            self._pending -= 1
            if err is not None:
                for k, v in (err.trailing_metadata() or ()):
                    if k == "grpc-retry-pushback-ms":
                        self.pushbacks.append(int(v))

    def _run(self):
        req = account_pb2.GetCreditBalanceRequest()
        t0 = time.monotonic()
        for i in range(int(self.rate * self.seconds)):
            delay = t0 + i / float(self.rate) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            gw = self.gws[i % len(self.gws)]
            with self._lock:
                self._pending += 1
            try:
                f = gw.account.GetCreditBalance.future(req, timeout=self.timeout,
                                                       metadata=gw.md(self.tenant))
            except Exception:           # a closed channel: counted as a failure, never a hang
                with self._lock:
                    self._pending -= 1
                    self.codes["client-error"] = self.codes.get("client-error", 0) + 1
                continue
            self.sent += 1
            self.span = time.monotonic() - t0
            f.add_done_callback(self._done)

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(timeout=self.seconds + 15)
        deadline = time.monotonic() + self.timeout + 5
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending <= 0 and not self.thread.is_alive():
                    break
            time.sleep(0.02)
        return self

    def ok(self):
        return self.codes.get(grpc.StatusCode.OK, 0)


def metric_sum(gws, name):
    return sum(harness.metrics(g).get(name, 0.0) for g in gws)


def readyz(gw):
    import json
    st, _, body = harness.http("GET", gw.http_url + "/readyz")
    return st, json.loads(body.decode())


def wait_limits(gws, mode, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(readyz(g)[1].get("limits") == mode for g in gws):
            return True
        time.sleep(0.05)
    return False


def redis_ctl(what):
    subprocess.run([os.environ["A3D_REDIS_CTL"], what], check=True, timeout=30)


@pytest.fixture(scope="module")
def csim(stack):
    return stack.sim(name="cluster-sim", job_seconds=1)


@pytest.fixture(scope="module")
def seal_key(stack):
    path = os.path.join(stack.workdir, "seal.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    return path


@pytest.fixture(scope="module")
def replicas(stack, csim, seal_key):
    truncate_pg()
    gws = [start(stack, csim, "replica%d" % i,
                 lambda g, h: cluster_config(g, h, csim.url, seal_key)) for i in range(3)]
    assert wait_limits(gws, "shared"), [readyz(g)[1] for g in gws]
    return gws


def test_team_b_limited_cluster_wide_team_a_unaffected(stack, csim, replicas):
    # One gateway alone, the same load: what "the limit" admits.
    alone = start(stack, csim, "alone",
                  lambda g, h: single_config(g, h, csim.url, os.path.join(stack.workdir, "alone.db")))
    b1 = RoundRobin([alone], "team-b", TEAM_B_OFFERED, WINDOW_S).start()
    a1 = RoundRobin([alone], "team-a", TEAM_A_OFFERED, WINDOW_S).start()
    b1.join(), a1.join()
    alone.stop()

    # Leases taken by the warm-up (/readyz) are none: the buckets are full. Three replicas now.
    before = metric_sum(replicas, P + 'cluster_limit_total{what="shared"}')
    b3 = RoundRobin(replicas, "team-b", TEAM_B_OFFERED, WINDOW_S).start()
    a3 = RoundRobin(replicas, "team-a", TEAM_A_OFFERED, WINDOW_S).start()
    b3.join(), a3.join()
    shared = metric_sum(replicas, P + 'cluster_limit_total{what="shared"}') - before
    fallback = metric_sum(replicas, P + 'cluster_limit_total{what="fallback"}')
    refills = metric_sum(replicas, P + 'cluster_limit_total{what="lease_refill"}')
    ratio = b3.ok() / float(max(1, b1.ok()))
    print("\ncluster limits: team-b offered %d/s for %.0f s: one gateway alone admitted %d, "
          "three replicas (shared) admitted %d (ratio %.3f; ideal 20/s * %.2f s + 40 = %.1f, bound "
          "+ 3 leases of 2 = %.1f); "
          "team-a OK %d/%d alone, %d/%d on three; shared decisions %d, fallbacks %d, lease "
          "requests %d; team-b pushbacks (ms) min %s max %s"
          % (TEAM_B_OFFERED, WINDOW_S, b1.ok(), b3.ok(), ratio, b3.span, 20 * b3.span + 40,
             20 * b3.span + 46,
             a1.ok(), a1.sent, a3.ok(), a3.sent, shared, fallback, refills,
             min(b3.pushbacks) if b3.pushbacks else "-", max(b3.pushbacks) if b3.pushbacks else "-"))
    assert b1.ok() > 0 and b3.ok() > 0
    assert b3.ok() <= 1.1 * b1.ok(), (b3.ok(), b1.ok())
    # The accuracy bound (gateway/cluster/climit.h): the limit plus one lease (2) per replica,
    # over the span the calls were sent in (0.1 s of slack for when they reached the replicas).
    assert b3.ok() <= 20 * (b3.span + 0.1) + 40 + 3 * 2, (b3.ok(), b3.span)
    # Without sharing each replica would admit its local share (limit / 3) or, worse, the whole
    # limit each (before issue 12): well above. It is not starved either.
    assert b3.ok() >= 0.8 * b1.ok(), (b3.ok(), b1.ok())
    assert set(b3.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, b3.codes
    assert a3.codes == {grpc.StatusCode.OK: a3.sent}, a3.codes
    assert a1.codes == {grpc.StatusCode.OK: a1.sent}, a1.codes
    assert b3.pushbacks and min(b3.pushbacks) >= 1
    assert fallback == 0
    assert shared >= b3.sent + a3.sent


def test_redis_killed_under_traffic_falls_back_then_shared_again(replicas):
    fb0 = metric_sum(replicas, P + 'cluster_limit_total{what="fallback"}')
    b = RoundRobin(replicas, "team-b", TEAM_B_OFFERED, WINDOW_S).start()
    a = RoundRobin(replicas, "team-a", TEAM_A_OFFERED, WINDOW_S).start()
    time.sleep(1.0)
    redis_ctl("kill")
    try:
        assert wait_limits(replicas, "local", timeout=5.0), [readyz(g)[1] for g in replicas]
        for g in replicas:
            st, body = readyz(g)
            assert st == 200, body          # never unready because of Redis
            assert body["redis"]["connected"] is False
        time.sleep(1.5)
    finally:
        redis_ctl("start")
    b.join(), a.join()
    fb1 = metric_sum(replicas, P + 'cluster_limit_total{what="fallback"}')
    print("\ncluster limits, Redis killed for ~2 s of 5: team-a OK %d/%d, team-b OK %d/%d (%s), "
          "fallback decisions %d" % (a.ok(), a.sent, b.ok(), b.sent,
                                     {str(k): v for k, v in b.codes.items()}, fb1 - fb0))
    for g in replicas:
        assert g.proc.poll() is None, "%s exited" % g.name
    assert a.codes == {grpc.StatusCode.OK: a.sent}, a.codes          # still served
    assert set(b.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, b.codes
    assert b.ok() > 0
    assert fb1 - fb0 > 0

    # Back: shared by itself, and decisions are shared ones again.
    assert wait_limits(replicas, "shared", timeout=15.0), [readyz(g)[1] for g in replicas]
    time.sleep(1.2)         # past the hold after a refill that failed in the outage
    s0 = metric_sum(replicas, P + 'cluster_limit_total{what="shared"}')
    f0 = metric_sum(replicas, P + 'cluster_limit_total{what="fallback"}')
    c = RoundRobin(replicas, "team-a", TEAM_A_OFFERED, 1.0).start().join()
    assert c.codes == {grpc.StatusCode.OK: c.sent}, c.codes
    assert metric_sum(replicas, P + 'cluster_limit_total{what="shared"}') - s0 >= c.sent
    assert metric_sum(replicas, P + 'cluster_limit_total{what="fallback"}') == f0


ROUTE_BALANCE = "GET /account/creditBalance"
ACCOUNT_RATE = 10           # the account's upstream requests/s in the test below


def account_capped(text):
    """The account `sim` capped at ACCOUNT_RATE upstream requests per second."""
    old = "    client_id: %s\n" % harness.CLIENT_ID
    assert text.count(old) == 1
    return text.replace(old, old + "    rate_per_second: %d\n" % ACCOUNT_RATE)


def test_account_rate_cap_shared(stack, seal_key):
    """An account's upstream rate cap is one bucket for the three replicas: all the load on one
    replica gets the whole rate (not a third), spread over the three it still gets no more."""
    sim = stack.sim(name="capped-sim", job_seconds=1)
    gws = [start(stack, sim, "capped%d" % i,
                 lambda g, h: account_capped(cluster_config(g, h, sim.url, seal_key))) for i in range(3)]
    assert wait_limits(gws, "shared"), [readyz(g)[1] for g in gws]
    figures = []
    for label, targets in (("one replica", gws[:1]), ("three replicas", gws)):
        time.sleep(1.2)             # the account's bucket full again (burst = 1 s of the rate)
        sim.clear_stats()
        t0 = time.monotonic()
        load = RoundRobin(targets, "team-a", 40, 3.0, timeout=3.0).start().join()
        elapsed = time.monotonic() - t0
        sent = sim.count(ROUTE_BALANCE)
        # Shared: rate x time + burst + one lease (1 token) per replica. A local share would be
        # a third of the rate for the one replica.
        bound = ACCOUNT_RATE * elapsed + ACCOUNT_RATE + 3
        local_share = (ACCOUNT_RATE * elapsed + ACCOUNT_RATE) / 3.0 + 1
        figures.append("%s: %d upstream requests in %.2f s (bound %.1f, a local share %.1f), "
                       "callers %s" % (label, sent, elapsed, bound, local_share,
                                       {str(k): v for k, v in load.codes.items()}))
        assert sent <= bound, figures[-1]
        assert sent >= 1.5 * local_share, figures[-1]
        assert set(load.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE,
                                   grpc.StatusCode.DEADLINE_EXCEEDED,
                                   grpc.StatusCode.RESOURCE_EXHAUSTED}, load.codes
        assert load.ok() == sent, figures[-1]
    waits = metric_sum(gws, P + 'upstream_shared_rate_waits_total{account="sim"}')
    print("\naccount rate cap %d/s shared by three replicas: %s; times requests were held back %d"
          % (ACCOUNT_RATE, "; ".join(figures), waits))
    assert waits > 0
    for g in gws:
        g.stop()
