"""Issue 13, items 1, 3 and 9: the gateway holds under connection, file-descriptor, HTTP/2 and
config-file abuse. Each test is bounded in time (seconds) and size; tests/abuse/ has the
benchmark that prints figures.

- reload: a 100 KB file of nested '[' sent by SIGHUP is refused at its line by the nesting cap
  while calls keep being answered (the parse runs on a worker thread, not the loop);
- fd pressure (gateway under a low RLIMIT_NOFILE): idle sockets to the HTTP port fill the HTTP
  connection cap, the listener pauses instead of spinning on EMFILE, nothing is logged per
  accept, and gRPC keeps accepting; once the sockets close, HTTP serves again;
- dead gRPC listener: idle gRPC connections exhaust the descriptors, gRPC core 1.51 stops
  accepting for good, and the self-probe turns /healthz and /readyz to 503 with the metric;
- HTTP/2 streams flood with partial messages under a low memory ceiling: the memory guard sheds
  the connections, RSS stays bounded, an honest call still succeeds;
- rapid reset (HEADERS + DATA + RST_STREAM, CVE-2023-44487) from reconnecting connections: each
  is closed once its client has cancelled grpc.max_resets_per_s calls within a second (counted
  by reason), RSS stays under a low ceiling, honest calls on their own connection succeed
  throughout.
"""
import os
import re
import signal
import socket
import threading
import time

import pytest

import harness
from harness import account_pb2, health_pb2

import grpc

WAIT_S = 15.0


def wait_until(pred, what, timeout=WAIT_S, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


def balance(gw, timeout=2.0, channel=None):
    stub = harness.account_pb2_grpc.AccountStub(channel or gw.channel)
    return stub.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=timeout,
                                 metadata=gw.md("team-a"))


def balance_through_sheds(gw, timeout=5.0, tries=3):
    """An honest call while the memory guard may shed: a shed cancels every call in flight
    (UNAVAILABLE "Cancelling all calls", documented in memguard.h), and a caller retries. Other
    errors fail at once; bounded."""
    for i in range(tries):
        try:
            return balance(gw, timeout=timeout)
        except harness.grpc.RpcError as e:
            if e.code() != harness.grpc.StatusCode.UNAVAILABLE or i == tries - 1:
                raise
            time.sleep(0.2)


def log_lines_matching(gw, pattern):
    return [l for l in gw.log_text().splitlines() if re.search(pattern, l)]


# ---- item 9: SIGHUP does not parse on the loop -----------------------------------------------------
def test_sighup_deeply_nested_file_refused_while_calls_answer(stack, sim):
    gw = stack.gateway(sim, name="gw-reload-nest")
    balance(gw)
    good = open(gw.config_path).read()
    with open(gw.config_path, "w") as f:
        f.write("listen:\n  grpc: " + "[" * 100000 + "\n")
    try:
        results = []
        stop = threading.Event()

        def caller():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    balance(gw, timeout=2.0)
                    results.append(("OK", time.monotonic() - t0))
                except grpc.RpcError as e:
                    results.append((e.code().name, time.monotonic() - t0))
                time.sleep(0.05)

        th = threading.Thread(target=caller)
        th.start()
        time.sleep(0.3)
        gw.proc.send_signal(signal.SIGHUP)
        try:
            refused = wait_until(lambda: log_lines_matching(gw, r"nested deeper than 32"),
                                 "the nesting cap's error in the log")
            time.sleep(0.5)
        finally:
            stop.set()
            th.join(10)
        # file:line of the first list too many (line 2), and the old configuration kept.
        assert re.search(r"gw-reload-nest\.yaml:2: nested deeper than 32 mappings/lists", refused[0]), refused
        assert log_lines_matching(gw, r"invalid configuration, keeping the old one")
        bad = [r for r in results if r[0] != "OK"]
        assert results and not bad, "calls failed during the reload: %s" % bad[:5]
        balance(gw)
    finally:
        with open(gw.config_path, "w") as f:
            f.write(good)


# ---- item 1: file descriptors ------------------------------------------------------------------------
FD_LIMIT = 512          # RLIMIT_NOFILE of the gateway: default reserve 256 -> HTTP cap 128


def open_idle(port, n):
    """n idle TCP connections to 127.0.0.1:port (those refused or timed out are skipped)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            s.close()
    return socks


def grpc_accepts(gw, timeout=3.0):
    """A new connection to the gRPC port gets a Health/Check answer."""
    ch = grpc.insecure_channel(gw.addr)
    try:
        r = harness.health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def non_json_lines(text):
    return [l for l in text.splitlines() if l and not l.startswith("{")]


def test_http_fd_pressure_pauses_listener_and_grpc_keeps_accepting(stack, sim):
    gw = stack.gateway(sim, name="gw-fd-http", rlimit_nofile=FD_LIMIT)
    lines0 = len(gw.log_text().splitlines())
    socks = open_idle(gw.http_port, FD_LIMIT + 100)
    try:
        time.sleep(1.0)
        # A new gRPC connection while the HTTP listener is full: gRPC core still accepts (before
        # the fix the descriptors ran out, its accept4 failed once with EMFILE and never again).
        assert grpc_accepts(gw), "the gRPC listener stopped accepting under HTTP fd pressure"
        balance(gw)
        text = gw.log_text()
        assert not non_json_lines(text), non_json_lines(text)[:3]
        # No line per refused accept: the cap logs at most once a second.
        assert len(text.splitlines()) - lines0 < 100, "log spin: %d lines" % (len(text.splitlines()) - lines0)
    finally:
        for s in socks:
            s.close()
    # Once the sockets are gone HTTP serves again, and the cap held throughout.
    wait_until(lambda: healthz(gw) == 200, "/healthz 200 after the sockets closed")
    m = harness.metrics(gw)
    assert m["animate3d_gateway_http_connections_max"] == 128, m["animate3d_gateway_http_connections_max"]
    assert m["animate3d_gateway_http_connections_high_water"] <= 129
    assert m["animate3d_gateway_http_connections_closed_total{reason=\"cap\"}"] > 0
    assert m["animate3d_gateway_max_fds"] == FD_LIMIT


def healthz(gw):
    try:
        return harness.http("GET", gw.http_url + "/healthz", timeout=2)[0]
    except OSError:
        return None


PROBE_CONFIG = """\
process:
  open_files_reserve: 64
grpc:
  probe_interval_ms: 300
  probe_timeout_ms: 200
  probe_failures: 2
"""


def test_dead_grpc_listener_fails_liveness(stack, sim):
    """gRPC connections have no cap in gRPC core 1.51: enough of them exhaust the descriptors and
    its listener never accepts again (grpc/grpc#20418). The self-probe sees it, /healthz and
    /readyz turn 503 so the kubelet restarts the pod, and the metric says why."""
    gw = stack.gateway(sim, name="gw-fd-grpc", rlimit_nofile=256, extra_top=PROBE_CONFIG)
    assert healthz(gw) == 200
    assert harness.metrics(gw)["animate3d_gateway_grpc_listener_alive"] == 1
    socks = open_idle(gw.grpc_port, 400)
    try:
        # Several probes fail while the descriptors are gone. gRPC core takes the queued
        # connections when it gets the CPU: on a loaded machine that is later, so wait (bounded)
        # for the probe's log line rather than a fixed time (/metrics cannot answer meanwhile:
        # the HTTP listener has no descriptor either).
        wait_until(lambda: log_lines_matching(gw, r'"event":"listener_probe".*stopped accepting'),
                   "the listener probe's 'stopped accepting' line while the fds are gone")
    finally:
        for s in socks:
            s.close()
    # The descriptors are back, the listener is not: liveness and readiness fail from now on.
    wait_until(lambda: healthz(gw) == 503, "/healthz 503 once the gRPC listener is dead")
    st, _, body = harness.http("GET", gw.http_url + "/readyz")
    assert st == 503 and b'"grpc_listener":"dead"' in body, (st, body)
    m = harness.metrics(gw)
    assert m["animate3d_gateway_grpc_listener_alive"] == 0
    failed = sum(v for k, v in m.items()
                 if k.startswith("animate3d_gateway_grpc_listener_probes_total") and 'result="ok"' not in k)
    assert failed >= 2, m
    assert log_lines_matching(gw, r'"event":"listener_probe".*stopped accepting')
    assert not grpc_accepts(gw, timeout=1.0), "gRPC core accepts again: the premise changed"


# ---- item 3: HTTP/2 memory -------------------------------------------------------------------------
FLOOD_CONFIG = """\
process:
  memory_mib: 224
"""


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def test_streams_flood_stays_under_the_memory_ceiling(stack, sim):
    """15 unauthenticated connections that never acknowledge SETTINGS (so gRPC core 1.51 does
    not hold them to MAX_CONCURRENT_STREAMS), 1000 streams each holding 60 KB of an announced
    1 MiB message: about 900 MB if nothing bounds it (376 MiB peak measured before
    the fix). With a 224 MiB ceiling the resource quota and the memory guard keep the peak under
    it, and an honest call still succeeds during and after."""
    import h2raw
    gw = stack.gateway(sim, name="gw-flood", extra_top=FLOOD_CONFIG)
    pid = gw.proc.pid
    if harness.sanitized(gw):
        pytest.skip("sanitizer build: its allocator's quarantine makes RSS meaningless")
    balance(gw)
    chunk = b"\0" * (60 << 10)
    conns, opened = [], 0
    deadline = time.monotonic() + 20
    try:
        for _ in range(15):
            conns.append(h2raw.Conn("127.0.0.1", gw.grpc_port, timeout=2, ack_settings=False))
        for c in conns:
            for _ in range(1000):
                if time.monotonic() > deadline:
                    break
                sid = c.new_stream()
                body = h2raw.grpc_message_prefix(1 << 20) + chunk
                try:
                    c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                                       h2raw.grpc_headers("/animate3d.v1.Jobs/UploadVideo")) +
                           b"".join(h2raw.frame(h2raw.DATA, 0, sid, body[i:i + 16384])
                                    for i in range(0, len(body), 16384)))
                    opened += 1
                except OSError:
                    break       # closed by the gateway, or its windows are full
            balance_through_sheds(gw)   # honest callers keep working during the flood
        time.sleep(0.5)
        peak = vm_kib(pid, "VmHWM")
        m = harness.metrics(gw)
    finally:
        for c in conns:
            c.close()
    print("flood: %d streams sent, peak %d KiB, sheds %s" % (opened, peak, m.get("animate3d_gateway_memory_sheds_total")))
    assert opened >= 1000, opened
    assert peak < 224 * 1024, "RSS peak %d KiB over the 224 MiB ceiling" % peak
    assert m["animate3d_gateway_memory_ceiling_bytes"] == 224 << 20
    assert m["animate3d_gateway_grpc_memory_quota_bytes"] == 112 << 20
    balance(gw, timeout=5)


RESET_CONFIG = """\
process:
  memory_mib: 224
grpc:
  max_resets_per_s: 50
  shed_backlog_kib: %d
"""


@pytest.mark.parametrize("backlog_kib", [32, 0], ids=["relief", "shed-only"])
def test_rapid_reset_closes_the_abusive_connections(stack, sim, backlog_kib):
    """4 connections sending HEADERS + DATA + RST_STREAM in batches of 100 as fast as they can
    for 6 s, each reconnecting when the gateway closes it (at most 150 000 streams). Before any
    fix nothing closed them: gRPC core queued every reset stream as a call faster than the loop
    took them, and RSS passed the ceiling within a second. The loop's own reset count
    (grpc_connections_closed_total{reason="resets"}) sees the resets only when their calls reach
    it, seconds late under the flood: peaks of 157-286 MiB with the backlog relief and 498-558
    MiB without it were measured here before the stream guard. Now a thread reads gRPC core's
    per-connection reset counts and closes each connection within a tick or two
    (grpc_streamguard_closed_total), the loop drops the calls queued for it, the thread that
    parses runs niced (grpc.io_thread_nice) and is stopped for a tick at a time while calls pour
    in at half the ceiling (the I/O brake): RSS stays under the 224 MiB ceiling in both
    variants, and an honest caller's calls on its own channel all succeed. Run twice: with the
    backlog relief, and without it (shed-only). A shed closes the heavy senders only, never every
    connection while abusive ones are being closed (gateway/base/connguard.h)."""
    import h2raw
    gw = stack.gateway(sim, name="gw-reset-%d" % backlog_kib, extra_top=RESET_CONFIG % backlog_kib)
    pid = gw.proc.pid
    sanitized = harness.sanitized(gw)
    honest = harness.grpc.insecure_channel("127.0.0.1:%d" % gw.grpc_port)
    balance(gw, channel=honest)
    stop_at = time.monotonic() + 6
    sent, closed = [0], [0]
    body = h2raw.grpc_message_prefix(1 << 20) + b"\0" * 1024

    def attacker():
        while time.monotonic() < stop_at and sent[0] < 150000:
            try:
                c = h2raw.Conn("127.0.0.1", gw.grpc_port, timeout=2, ack_settings=False)
            except OSError:
                time.sleep(0.05)
                continue
            try:
                while time.monotonic() < stop_at and sent[0] < 150000:
                    out = []
                    for _ in range(100):
                        sid = c.new_stream()
                        out.append(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                                               h2raw.grpc_headers("/animate3d.v1.Jobs/UploadVideo")))
                        out.append(h2raw.frame(h2raw.DATA, 0, sid, body))
                        out.append(h2raw.frame(h2raw.RST_STREAM, 0, sid, h2raw.CANCEL.to_bytes(4, "big")))
                    c.send(b"".join(out))
                    sent[0] += 100
                    if not c.poll():
                        closed[0] += 1
                        break
            except OSError:
                closed[0] += 1
            finally:
                c.close()

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    calls = 0
    try:
        while time.monotonic() < stop_at:
            balance(gw, timeout=5, channel=honest)     # honest calls keep working
            calls += 1
            time.sleep(0.2)
    finally:
        for th in threads:
            th.join(10)
    time.sleep(0.5)
    peak = vm_kib(pid, "VmHWM")
    m = harness.metrics(gw)
    balance(gw, timeout=5, channel=honest)
    honest.close()
    closed_resets = m.get('animate3d_gateway_grpc_connections_closed_total{reason="resets"}')
    closed_guard = m.get("animate3d_gateway_grpc_streamguard_closed_total")
    print("rapid reset (backlog %d KiB): %d streams sent, %d closes seen, peak %d KiB, closed by the stream "
          "guard %s, by the loop's count %s, calls dropped %s, I/O brakes %s, sheds %s (of every "
          "connection %s, heavy senders closed %s), honest calls %d"
          % (backlog_kib, sent[0], closed[0], peak, closed_guard, closed_resets,
             m.get("animate3d_gateway_grpc_connguard_calls_dropped_total"),
             m.get("animate3d_gateway_grpc_io_brakes_total"),
             m.get("animate3d_gateway_memory_sheds_total"), m.get("animate3d_gateway_memory_sheds_all_total"),
             m.get('animate3d_gateway_grpc_connections_closed_total{reason="shed"}'), calls))
    assert sent[0] >= 1000, sent[0]
    assert closed_guard is not None, "no grpc_streamguard_closed_total metric"
    # Which of the two closes a connection first depends on how far behind the loop is (under a
    # sanitizer gRPC core is slow too and the loop's count is mostly first); the stream guard
    # alone is tested with expired calls below.
    assert closed_guard + closed_resets >= 1, (closed_guard, closed_resets)
    assert closed[0] >= 1, "the attacker never saw its connection closed"
    assert log_lines_matching(gw, r'"event":"grpc_conn".*"reason":"(reset rate|resets)"')
    assert m.get("animate3d_gateway_memory_sheds_all_total") == 0
    assert calls >= 10, calls
    if not sanitized:
        assert peak < 224 * 1024, "RSS peak %d KiB over the 224 MiB ceiling" % peak


def test_resets_of_expired_calls_close_the_connection(stack, sim):
    """Rapid reset with a deadline already past (grpc-timeout 1n): the loop's own reset count
    leaves out calls whose deadline passed (a client cancelling at its deadline is no abuse), so
    before the stream guard such a flood was never closed however fast it came. The stream guard
    counts the resets as gRPC core parses them, deadline or not: one connection sending 4000
    HEADERS + RST_STREAM (at least 1000 a second, where the guard reads the connections) is shut
    down by it, and the loop's count closes nothing."""
    import h2raw
    gw = stack.gateway(sim, name="gw-expired-resets", extra_top=RESET_CONFIG % 0)
    headers = h2raw.grpc_headers("/animate3d.v1.Jobs/UploadVideo", extra=[("grpc-timeout", "1n")])
    c = h2raw.Conn("127.0.0.1", gw.grpc_port, timeout=2, ack_settings=False)
    sent, open_ = 0, True
    deadline = time.monotonic() + 10
    try:
        while open_ and sent < 4000 and time.monotonic() < deadline:
            out = []
            for _ in range(200):
                sid = c.new_stream()
                out.append(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, headers))
                out.append(h2raw.frame(h2raw.RST_STREAM, 0, sid, h2raw.CANCEL.to_bytes(4, "big")))
            try:
                c.send(b"".join(out))
            except OSError:
                open_ = False
                break
            sent += 200
            open_ = c.poll()
        # Closed within the burst, or right after it: wait for the end of file a little.
        while open_ and time.monotonic() < deadline:
            time.sleep(0.05)
            open_ = c.poll()
    finally:
        c.close()
    m = harness.metrics(gw)
    closed_guard = m.get("animate3d_gateway_grpc_streamguard_closed_total")
    closed_loop = m.get('animate3d_gateway_grpc_connections_closed_total{reason="resets"}')
    print("expired resets: %d sent, closed by the stream guard %s, by the loop's count %s, scans %s"
          % (sent, closed_guard, closed_loop, m.get("animate3d_gateway_grpc_streamguard_scans_total")))
    assert not open_, "the connection was never closed (%d streams sent)" % sent
    assert closed_guard == 1, closed_guard
    assert closed_loop == 0, closed_loop
    assert log_lines_matching(gw, r'"event":"grpc_conn".*"reason":"reset rate"')
    balance(gw, timeout=5)      # the gateway still answers
