"""Shutdown, reload and the poller -> loop hand-off under load (the concurrency tests, label
`concurrency`; CI runs them under TSan).

Every gRPC call crosses threads twice: gRPC core's completion queue is read by the poller thread,
which hands each event to the libevent loop (gateway/server.c). These tests put many calls through
that hand-off at once, and stop or reload the gateway while they are in flight:

- a burst of 2000 Health/Check + GetCreditBalance from many client threads over several
  connections: every call answered OK;
- SIGTERM during heavy traffic (unary calls, calls held in upstream latency, UploadVideo streams,
  Health/Watch streams, callers that keep calling through the drain), three times: exit 0 within
  the grace period, every call ended with a status (none hangs until its own deadline), the calls
  already upstream completed OK;
- SIGTERM with calls stuck upstream longer than the grace period: they are cancelled, exit 0;
- SIGTERM while idle: exit 0 at once, whether or not idle client connections stay open; with
  calls in flight, the drain ends as soon as the last one has finished (not at the grace end);
- SIGHUP reloads during traffic: every call OK.

Under TSan (detected from A3D_SANITIZE or the binary's __tsan_init symbol) the gateway's output
must hold no "WARNING: ThreadSanitizer"; tests/tsan.supp is passed to it through TSAN_OPTIONS
unless the caller already names a suppressions file. Under ASan the log must hold no ASan/LSan
report either. Every wait is bounded; every server listens on 127.0.0.1.
"""
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

import harness
from harness import account_pb2, health_pb2, jobs_pb2

C = grpc.StatusCode
SUPP = os.path.join(harness.REPO, "tests", "tsan.supp")
# The gateway inherits this process's environment (harness.Gateway): the suppressions go with it.
if "suppressions=" not in os.environ.get("TSAN_OPTIONS", ""):
    os.environ["TSAN_OPTIONS"] = ":".join(
        x for x in (os.environ.get("TSAN_OPTIONS", ""), "suppressions=" + SUPP) if x)

CREDITS = "GET /account/creditBalance"
MINUTES = "GET /account/minutesBalance"
CALL_DEADLINE_S = 30.0      # far beyond every expected end: a call that reaches it hung
GRACE_MS = 4000             # --grace-ms of the drain trials
SLOW_MS = 800               # upstream latency of the "slow" calls: well inside the grace period
N_SLOW = 100                # calls held upstream when SIGTERM arrives
N_FAST = 200                # unary calls launched together with them
N_UPLOADS = 10              # UploadVideo streams (8 chunks, 50 ms apart)
N_WATCH = 5                 # Health/Watch streams
N_CALLERS = 4               # threads that keep calling through the drain
CALLER_MAX_CALLS = 500      # per caller thread: bounds the loop in count as well as in time
BURST_CALLS = 2000
BURST_THREADS = 64
BURST_CHANNELS = 4
SANITIZER_REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")


def _binary_has(symbol):
    try:
        with open(harness.GATEWAY_BIN, "rb") as f:
            return symbol in f.read()
    except OSError:
        return False


TSAN = os.environ.get("A3D_SANITIZE") == "thread" or _binary_has(b"__tsan_init")
# Sanitized builds run several times slower: the bounds on how long things may take scale.
SLOW_FACTOR = 4.0 if TSAN or _binary_has(b"__asan_init") else 1.0


@pytest.fixture(scope="module", autouse=True)
def _sanitizer_start_timeout():
    """A sanitized gateway on a loaded machine may need longer than harness.START_TIMEOUT_S to
    answer its first call; the harness reads the constant at each start."""
    saved = harness.START_TIMEOUT_S
    harness.START_TIMEOUT_S = saved * SLOW_FACTOR
    yield
    harness.START_TIMEOUT_S = saved


def _assert_no_sanitizer_report(gw):
    text = gw.log_text()
    found = [r for r in SANITIZER_REPORTS if r in text]
    assert not found, "%s in %s (TSan build: %s); first report:\n%s" % (
        found, gw.log_path, TSAN, text[text.find(found[0]):][:4000])


def _wait(cond, what, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


class Outcomes:
    """Thread-safe record of how each call ended: (kind, code, details, seconds)."""

    def __init__(self):
        self._mu = threading.Lock()
        self.items = []

    def add(self, kind, code, details, took):
        with self._mu:
            self.items.append((kind, code, details, took))

    def of(self, kind):
        with self._mu:
            return [x for x in self.items if x[0] == kind]

    def codes(self):
        with self._mu:
            out = {}
            for kind, code, _, _ in self.items:
                out.setdefault(kind, {}).setdefault(code.name, 0)
                out[kind][code.name] += 1
            return out

    def bad(self, allowed):
        """Calls that ended with a code outside allowed, or that ran into their own deadline."""
        with self._mu:
            return [x for x in self.items if x[1] not in allowed or x[1] == C.DEADLINE_EXCEEDED]


def _future(out, kind, fut, t0):
    def done(f):
        took = time.monotonic() - t0
        try:
            f.result()
            out.add(kind, C.OK, "", took)
        except grpc.RpcError as e:
            out.add(kind, e.code(), e.details() or "", took)
        except Exception as e:      # noqa: BLE001  (anything else is a harness bug: recorded)
            out.add(kind, C.UNKNOWN, repr(e), took)
    fut.add_done_callback(done)
    return fut


def _blocking(out, kind, fn):
    t0 = time.monotonic()
    try:
        fn()
        out.add(kind, C.OK, "", time.monotonic() - t0)
    except grpc.RpcError as e:
        out.add(kind, e.code(), e.details() or "", time.monotonic() - t0)


def _upload(gw, data):
    def gen():
        yield jobs_pb2.UploadVideoRequest(name="drain.mp4", size=len(data))
        step = max(1, len(data) // 8)
        for off in range(0, len(data), step):
            time.sleep(0.05)
            yield jobs_pb2.UploadVideoRequest(chunk=data[off:off + step])
    return gw.jobs.UploadVideo(gen(), timeout=CALL_DEADLINE_S, metadata=gw.md())


def _watch(gw):
    """Reads a Health/Watch stream to its end (the drain ends watches)."""
    for _ in gw.health.Watch(health_pb2.HealthCheckRequest(), timeout=CALL_DEADLINE_S):
        pass


def _caller(gw, out, stop):
    """Keeps calling until stop is set: before, during and after SIGTERM."""
    for i in range(CALLER_MAX_CALLS):
        if stop.is_set():
            return
        if i % 2:
            _blocking(out, "caller", lambda: gw.account.GetCreditBalance(
                account_pb2.GetCreditBalanceRequest(), timeout=CALL_DEADLINE_S, metadata=gw.md()))
        else:
            _blocking(out, "caller", lambda: gw.health.Check(health_pb2.HealthCheckRequest(),
                                                            timeout=CALL_DEADLINE_S))


@pytest.fixture(scope="module")
def sim(stack):
    return stack.sim(name="sim-shutdown", job_seconds=1)


@pytest.fixture
def clean(sim):
    sim.clear_faults()
    yield sim
    sim.clear_faults()


def _start(stack, sim, name, grace_ms=GRACE_MS):
    gw = stack.gateway(sim, name=name, extra_args=["--grace-ms", str(grace_ms)])
    gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=10 * SLOW_FACTOR,
                                metadata=gw.md())          # an upstream session exists
    return gw


def _sigterm_and_wait(gw, bound_s):
    """SIGTERM -> (exit code, seconds to exit); fails if the process outlives bound_s."""
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    try:
        rc = gw.proc.wait(timeout=bound_s)
    except Exception:
        gw.proc.kill()
        gw.proc.wait(timeout=5)
        raise AssertionError("gateway still running %.1fs after SIGTERM; log tail:\n%s"
                             % (bound_s, gw.log_text()[-3000:]))
    took = time.monotonic() - t0
    # Close the client side too (and record the exit for the stack's teardown): a channel left
    # reconnecting to a dead port keeps the client's gRPC threads busy for the tests after it.
    gw.stop()
    return rc, took


# ---- the hand-off under a burst --------------------------------------------------------------------
def test_burst_health_and_credits_many_threads(stack, sim, clean):
    gw = _start(stack, sim, "gw-burst")
    channels = [harness.grpc.insecure_channel(gw.addr) for _ in range(BURST_CHANNELS)]
    out = Outcomes()
    before = sim.count(CREDITS)
    try:
        health = [harness.health_pb2_grpc.HealthStub(ch) for ch in channels]
        account = [harness.account_pb2_grpc.AccountStub(ch) for ch in channels]

        def one(i):
            if i % 2:
                _blocking(out, "credits", lambda: account[i % BURST_CHANNELS].GetCreditBalance(
                    account_pb2.GetCreditBalanceRequest(), timeout=CALL_DEADLINE_S, metadata=gw.md()))
            else:
                _blocking(out, "health", lambda: health[i % BURST_CHANNELS].Check(
                    health_pb2.HealthCheckRequest(), timeout=CALL_DEADLINE_S))
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=BURST_THREADS) as ex:
            list(ex.map(one, range(BURST_CALLS)))
        took = time.monotonic() - t0
    finally:
        for ch in channels:
            ch.close()
    assert len(out.items) == BURST_CALLS
    assert out.codes() == {"credits": {"OK": BURST_CALLS // 2}, "health": {"OK": BURST_CALLS // 2}}, \
        out.codes()
    assert took < 60 * SLOW_FACTOR, took
    assert sim.count(CREDITS) > before      # the credit calls went through the upstream engine
    assert gw.proc.poll() is None
    rc, _ = _sigterm_and_wait(gw, harness.STOP_TIMEOUT_S * SLOW_FACTOR)
    assert rc == 0, gw.log_text()[-3000:]
    _assert_no_sanitizer_report(gw)


# ---- SIGTERM during heavy traffic --------------------------------------------------------------------
@pytest.mark.parametrize("trial", range(3))
def test_sigterm_during_heavy_traffic(stack, sim, clean, trial):
    gw = _start(stack, sim, "gw-drain-%d" % trial)
    with open(harness.TINY_MP4, "rb") as f:
        video = f.read()
    out, stop = Outcomes(), threading.Event()
    md = gw.md()
    sim.faults(MINUTES, status=0, latency_ms=SLOW_MS, rate=1.0, count=-1)
    before = sim.count(MINUTES)
    pool = ThreadPoolExecutor(max_workers=N_UPLOADS + N_WATCH + N_CALLERS)
    try:
        t0 = time.monotonic()
        slow = [_future(out, "slow", gw.account.GetMinutesBalance.future(
            account_pb2.GetMinutesBalanceRequest(), timeout=CALL_DEADLINE_S, metadata=md), t0)
            for _ in range(N_SLOW)]
        fast = []
        for i in range(N_FAST):
            if i % 3 == 0:
                f = gw.health.Check.future(health_pb2.HealthCheckRequest(), timeout=CALL_DEADLINE_S)
            elif i % 3 == 1:
                f = gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(),
                                                       timeout=CALL_DEADLINE_S, metadata=md)
            else:
                f = gw.jobs.ListJobs.future(jobs_pb2.ListJobsRequest(), timeout=CALL_DEADLINE_S,
                                            metadata=md)
            fast.append(_future(out, "fast", f, t0))
        streams = [pool.submit(_blocking, out, "upload", lambda: _upload(gw, video))
                   for _ in range(N_UPLOADS)]
        streams += [pool.submit(_blocking, out, "watch", lambda: _watch(gw)) for _ in range(N_WATCH)]
        streams += [pool.submit(_caller, gw, out, stop) for _ in range(N_CALLERS)]

        # SIGTERM once every slow call is held upstream (they were admitted: they must complete).
        _wait(lambda: sim.count(MINUTES) - before >= N_SLOW, "%d slow calls upstream" % N_SLOW,
              10 * SLOW_FACTOR)
        rc, took = _sigterm_and_wait(gw, (GRACE_MS / 1000 + 10) * SLOW_FACTOR)
        stop.set()
        for f in slow + fast:
            f.exception(timeout=10)     # bounded: the process is gone, every call has ended
        for s in streams:
            s.result(timeout=10)
    finally:
        stop.set()
        pool.shutdown(wait=True)

    log = gw.log_text()
    assert rc == 0, "exit %s; log tail:\n%s" % (rc, log[-3000:])
    assert took < (GRACE_MS / 1000 + 2) * SLOW_FACTOR, "drain took %.1fs" % took
    assert "clean exit" in log
    codes = out.codes()
    assert len(out.of("slow")) == N_SLOW and len(out.of("fast")) == N_FAST, codes
    assert len(out.of("upload")) == N_UPLOADS and len(out.of("watch")) == N_WATCH, codes
    # Admitted calls held upstream complete normally within the grace period.
    assert codes["slow"] == {"OK": N_SLOW}, codes
    # Everything else ends with a status: OK, or UNAVAILABLE once the server no longer takes calls;
    # a call that reached the server as it shut down, before the gateway ever took it, is
    # CANCELLED by gRPC core (only the callers that keep calling through SIGTERM meet that).
    # Never the caller's own deadline (a hang), never UNKNOWN/INTERNAL (a crash or a protocol error).
    bad = [x for x in out.bad({C.OK, C.UNAVAILABLE, C.CANCELLED})
           if x[1] != C.CANCELLED or x[0] != "caller"]
    assert not bad, "calls that did not end cleanly: %s\nall: %s" % (bad[:10], codes)
    assert codes.get("caller", {}).get("OK", 0) > 0, codes
    _assert_no_sanitizer_report(gw)


def test_sigterm_with_calls_stuck_upstream_past_grace(stack, sim, clean):
    grace_ms = 1000
    gw = _start(stack, sim, "gw-stuck", grace_ms=grace_ms)
    out, md = Outcomes(), gw.md()
    sim.faults(MINUTES, status=0, latency_ms=20000, rate=1.0, count=-1)
    before = sim.count(MINUTES)
    t0 = time.monotonic()
    stuck = [_future(out, "stuck", gw.account.GetMinutesBalance.future(
        account_pb2.GetMinutesBalanceRequest(), timeout=CALL_DEADLINE_S, metadata=md), t0)
        for _ in range(50)]
    fast = [_future(out, "fast", gw.health.Check.future(health_pb2.HealthCheckRequest(),
                                                        timeout=CALL_DEADLINE_S), t0)
            for _ in range(50)]
    _wait(lambda: sim.count(MINUTES) - before >= 50, "50 calls upstream", 10 * SLOW_FACTOR)
    rc, took = _sigterm_and_wait(gw, (grace_ms / 1000 + 10) * SLOW_FACTOR)
    for f in stuck + fast:
        f.exception(timeout=10)
    assert rc == 0, gw.log_text()[-3000:]
    assert took < (grace_ms / 1000 + 3) * SLOW_FACTOR, "drain took %.1fs" % took
    assert "grace period over" in gw.log_text()
    codes = out.codes()
    # Cut off by the end of the grace period: cancelled (or the connection went), never a hang.
    bad = [x for x in out.of("stuck") if x[1] not in (C.CANCELLED, C.UNAVAILABLE)]
    assert not bad, (bad[:5], codes)
    assert not out.bad({C.OK, C.UNAVAILABLE, C.CANCELLED}), codes
    _assert_no_sanitizer_report(gw)


def test_sigterm_idle_no_connection_exits_at_once(stack, sim, clean):
    gw = _start(stack, sim, "gw-idle", grace_ms=GRACE_MS)
    gw.channel.close()          # no call and no client connection left
    time.sleep(0.2)
    rc, took = _sigterm_and_wait(gw, (GRACE_MS / 1000 + 5) * SLOW_FACTOR)
    assert rc == 0, gw.log_text()[-3000:]
    # Nothing to wait for: the drain must not sit out the grace period.
    assert "grace period over" not in gw.log_text(), "an idle drain sat out the grace period"
    assert took < SLOW_FACTOR, "idle drain took %.2fs" % took
    assert "clean exit" in gw.log_text()
    _assert_no_sanitizer_report(gw)


IDLE_GRACE_MS = 10000       # --grace-ms of the idle-connection trials: far longer than they may take
IDLE_EXIT_S = 2.0           # the drain ends this soon once nothing is in flight (x SLOW_FACTOR)


def _idle_channel(gw, used=False):
    """A channel with its own connection (not shared with gw.channel's through grpcio's global
    subchannel pool), connected; used: one call made on it and finished, else never a call."""
    ch = harness.grpc.insecure_channel(gw.addr, options=[("grpc.use_local_subchannel_pool", 1)])
    harness.grpc.channel_ready_future(ch).result(timeout=10 * SLOW_FACTOR)
    if used:
        harness.health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                     timeout=10 * SLOW_FACTOR)
    return ch


def test_sigterm_idle_open_connection_exits_at_once(stack, sim, clean):
    """No call in flight, but clients keep their (idle) connections open, as long-lived clients
    do. gRPC core's shutdown alone waits for them to hang up after GOAWAY, which a client need not
    do soon (grpcio took 4.5 s here, others may never): the gateway closes them once nothing is in
    flight, so it exits at once, not at the end of the grace period."""
    gw = _start(stack, sim, "gw-idle-conn", grace_ms=IDLE_GRACE_MS)    # gw.channel: used, now idle
    idle = _idle_channel(gw)                                            # connected, never a call
    try:
        rc, took = _sigterm_and_wait(gw, (IDLE_GRACE_MS / 1000 + 5) * SLOW_FACTOR)
    finally:
        idle.close()
    print("idle open connections: SIGTERM -> exit %s in %.2fs (grace %d ms)"
          % (rc, took, IDLE_GRACE_MS))
    log = gw.log_text()
    assert rc == 0, log[-3000:]
    assert "grace period over" not in log, "an idle drain sat out the grace period"
    assert "nothing in flight, closing client connections" in log
    assert took < IDLE_EXIT_S * SLOW_FACTOR, "idle drain took %.2fs" % took
    assert "clean exit" in log
    _assert_no_sanitizer_report(gw)


def test_sigterm_drain_ends_when_last_call_finishes(stack, sim, clean):
    """Calls in flight at SIGTERM still finish OK during the drain; once the last one has, the
    drain ends (connections still open) instead of sitting out the rest of the grace period."""
    slow_ms, n = 1500, 20
    gw = _start(stack, sim, "gw-last-call", grace_ms=IDLE_GRACE_MS)
    idle = [_idle_channel(gw), _idle_channel(gw, used=True)]
    out, md = Outcomes(), gw.md()
    sim.faults(MINUTES, status=0, latency_ms=slow_ms, rate=1.0, count=-1)
    before = sim.count(MINUTES)
    try:
        t0 = time.monotonic()
        calls = [_future(out, "slow", gw.account.GetMinutesBalance.future(
            account_pb2.GetMinutesBalanceRequest(), timeout=CALL_DEADLINE_S, metadata=md), t0)
            for _ in range(n)]
        _wait(lambda: sim.count(MINUTES) - before >= n, "%d calls upstream" % n, 10 * SLOW_FACTOR)
        rc, took = _sigterm_and_wait(gw, (IDLE_GRACE_MS / 1000 + 5) * SLOW_FACTOR)
        for f in calls:
            f.exception(timeout=10)
    finally:
        for ch in idle:
            ch.close()
    print("last call finishes: SIGTERM -> exit %s in %.2fs (calls held %d ms upstream, grace %d ms)"
          % (rc, took, slow_ms, IDLE_GRACE_MS))
    log = gw.log_text()
    assert rc == 0, log[-3000:]
    assert out.codes() == {"slow": {"OK": n}}, out.codes()
    # Whether the gateway closed the idle connections or the client hung up once its calls were
    # done, the drain must not sit out the rest of the grace period.
    assert "grace period over" not in log
    assert took < (slow_ms / 1000 + IDLE_EXIT_S) * SLOW_FACTOR, "drain took %.2fs" % took
    assert "clean exit" in log
    _assert_no_sanitizer_report(gw)


# ---- SIGHUP during traffic -------------------------------------------------------------------------
def test_sighup_reload_during_traffic(stack, sim, clean):
    gw = _start(stack, sim, "gw-hup")
    out, stop = Outcomes(), threading.Event()
    reloads = 3
    pattern = r'"configuration reloaded"'
    pool = ThreadPoolExecutor(max_workers=N_CALLERS)
    try:
        callers = [pool.submit(_caller, gw, out, stop) for _ in range(N_CALLERS)]
        _wait(lambda: len(out.items) >= 20, "traffic before the first SIGHUP", 10 * SLOW_FACTOR)
        for i in range(reloads):
            n = len(re.findall(pattern, gw.log_text()))
            gw.proc.send_signal(signal.SIGHUP)
            _wait(lambda: len(re.findall(pattern, gw.log_text())) > n, "reload %d logged" % (i + 1),
                  10 * SLOW_FACTOR)
            seen = len(out.items)
            _wait(lambda: len(out.items) >= seen + 20, "traffic after reload %d" % (i + 1),
                  10 * SLOW_FACTOR)
        stop.set()
        for c in callers:
            c.result(timeout=CALL_DEADLINE_S)
    finally:
        stop.set()
        pool.shutdown(wait=True)
    codes = out.codes()
    assert codes == {"caller": {"OK": len(out.items)}}, codes
    assert len(re.findall(pattern, gw.log_text())) == reloads
    assert gw.proc.poll() is None
    rc, _ = _sigterm_and_wait(gw, harness.STOP_TIMEOUT_S * SLOW_FACTOR)
    assert rc == 0, gw.log_text()[-3000:]
    _assert_no_sanitizer_report(gw)
