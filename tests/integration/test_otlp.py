"""OTLP/HTTP span export (issue 20), end to end: the real gateway against the simulator, with a
small OTLP receiver (http.server on 127.0.0.1, a free port) that records what is POSTed.

- An RPC with a caller's traceparent becomes a SERVER span of the caller's trace whose parent is
  the caller's span and whose id is the gateway's span (the traceparent it answered); its
  upstream request is a CLIENT span, child of the RPC span, named by its route template.
- Each upstream login is a span ("upstream login", a root) with its GET /session/auth attempt
  as a child.
- A trace the gateway starts is sampled (exported, answered with flag 01); a caller's "not
  sampled" is respected and counted.
- A receiver that answers 500, or none at all, costs the calls nothing: they succeed, and the
  spans are counted as failed/dropped on /metrics.
"""
import http.server
import json
import os
import signal
import subprocess
import re
import threading
import time

import pytest

import harness
from harness import account_pb2

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP_RX = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
PREFIX = "animate3d_gateway_"
WAIT_S = 10.0           # bound of every poll below
BODY_MAX = 8 << 20      # a POST larger than this is refused by the receiver


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1: records every ExportTraceServiceRequest POSTed to
    /v1/traces; answers `status` (200, or 500 to play a broken collector)."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []
        self.headers = []       # each POST's headers, as {lower-case name: value}
        self.lock = threading.Lock()
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if 0 < n <= BODY_MAX else b""
                ok = self.path == "/v1/traces" and \
                    self.headers.get("Content-Type") == "application/json"
                if ok and body:
                    with rcv.lock:
                        rcv.requests.append(json.loads(body))
                        rcv.headers.append({k.lower(): v for k, v in self.headers.items()})
                code = rcv.status if ok else 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/v1/traces" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        """Every span received, each with its resource attributes under "_resource"."""
        out = []
        with self.lock:
            reqs = list(self.requests)
        for req in reqs:
            for rs in req["resourceSpans"]:
                res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        s = dict(s)
                        s["_resource"] = res
                        out.append(s)
        return out

    def wait_span(self, pred, what):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = [s for s in self.spans() if pred(s)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError("no span %s within %.0fs; received %d spans: %r"
                             % (what, WAIT_S, len(self.spans()), self.spans()[-5:]))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _otlp_yaml(url):
    return ("otlp:\n  endpoint: %s\n  flush_ms: 100\n  batch_max: 64\n  queue_max: 512\n"
            "  timeout_ms: 1000\n  service_name: a3d-it\n" % url)


def _attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


def _credits(gw, extra):
    """GetCreditBalance with extra metadata -> the traceparent the gateway answered, parsed."""
    _, call = gw.account.GetCreditBalance.with_call(
        account_pb2.GetCreditBalanceRequest(), timeout=5, metadata=gw.md() + list(extra))
    md = dict(call.initial_metadata())
    m = TP_RX.match(md["traceparent"])
    assert m, md
    return m


def _metric(gw, name):
    return harness.metrics(gw).get(PREFIX + name, 0.0)


def _wait_metric(gw, name, pred):
    deadline = time.monotonic() + WAIT_S
    v = None
    while time.monotonic() < deadline:
        v = _metric(gw, name)
        if pred(v):
            return v
        time.sleep(0.05)
    raise AssertionError("%s stayed %r for %.0fs" % (name, v, WAIT_S))


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def otlp_gw(stack, sim, receiver):
    return stack.gateway(sim, name="otlp", extra_top=_otlp_yaml(receiver.url))


def test_rpc_and_upstream_spans_with_parent_links(otlp_gw, receiver):
    m = _credits(otlp_gw, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT))])
    assert m.group(1) == TRACE and m.group(3) == "01"
    span = m.group(2)

    rpc = receiver.wait_span(lambda s: s["spanId"] == span, "for the RPC")[0]
    assert rpc["traceId"] == TRACE
    assert rpc["parentSpanId"] == PARENT, "the caller's span is the parent"
    assert rpc["name"] == "animate3d.v1.Account/GetCreditBalance"
    assert rpc["kind"] == 2, "SERVER"
    assert int(rpc["endTimeUnixNano"]) >= int(rpc["startTimeUnixNano"]) > 1.6e18
    a = _attrs(rpc)
    assert a["rpc.system"] == "grpc" and a["rpc.service"] == "animate3d.v1.Account"
    assert a["rpc.method"] == "GetCreditBalance" and a["rpc.grpc.status_code"] == "0"
    assert a["tenant"] == "team-a"
    assert rpc["_resource"]["service.name"] == {"stringValue": "a3d-it"}

    up = receiver.wait_span(lambda s: s.get("parentSpanId") == span, "child of the RPC")
    assert len(up) == 1, up
    up = up[0]
    assert up["traceId"] == TRACE and up["spanId"] not in (span, PARENT)
    assert up["name"] == "GET /account/creditBalance" and up["kind"] == 3, "CLIENT"
    a = _attrs(up)
    assert a["http.request.method"] == "GET" and a["url.template"] == "/account/creditBalance"
    assert a["http.response.status_code"] == "200"
    assert int(rpc["startTimeUnixNano"]) <= int(up["startTimeUnixNano"])
    assert int(up["endTimeUnixNano"]) <= int(rpc["endTimeUnixNano"])


def test_login_span_with_its_attempt(otlp_gw, receiver):
    # The gateway logs in at start (and the calls above need the session).
    login = receiver.wait_span(lambda s: s["name"] == "upstream login", "upstream login")[0]
    assert "parentSpanId" not in login, "a login is a root: no one call caused it"
    assert login["kind"] == 1 and login["status"]["code"] == 1, login
    assert _attrs(login)["upstream.account"] == "sim"
    att = receiver.wait_span(lambda s: s.get("parentSpanId") == login["spanId"], "login attempt")
    assert att[0]["name"] == "GET /session/auth" and att[0]["traceId"] == login["traceId"]
    assert _attrs(att[0])["http.response.status_code"] == "200"


def test_sampling_roots_and_callers_decision(otlp_gw, receiver):
    # No traceparent: the gateway's own trace, sampled, exported.
    m = _credits(otlp_gw, [])
    assert m.group(3) == "01", "with export on, a trace the gateway starts is sampled"
    root = receiver.wait_span(lambda s: s["spanId"] == m.group(2), "for a root call")[0]
    assert root["traceId"] == m.group(1) and "parentSpanId" not in root

    # The caller said "not sampled": nothing of that trace is exported, counted.
    before = _metric(otlp_gw, "otlp_spans_unsampled_total")
    trace = "%032x" % (time.monotonic_ns() | 1)
    m = _credits(otlp_gw, [("traceparent", "00-%s-%s-00" % (trace, PARENT))])
    assert m.group(1) == trace and m.group(3) == "00"
    _wait_metric(otlp_gw, "otlp_spans_unsampled_total", lambda v: v >= before + 2)
    # A later sampled call's spans arrive: the unsampled ones would have come before them.
    m2 = _credits(otlp_gw, [])
    receiver.wait_span(lambda s: s["spanId"] == m2.group(2), "for the call after")
    assert not [s for s in receiver.spans() if s["traceId"] == trace]
    assert _metric(otlp_gw, "otlp_spans_exported_total") > 0
    assert _metric(otlp_gw, 'otlp_exports_total{result="ok"}') > 0


def test_receiver_500_counts_failed_and_calls_succeed(stack, sim):
    r = Receiver(status=500)
    try:
        gw = stack.gateway(sim, name="otlp500", extra_top=_otlp_yaml(r.url))
        for _ in range(5):
            _credits(gw, [])
        _wait_metric(gw, 'otlp_exports_total{result="failed"}', lambda v: v >= 1)
        _wait_metric(gw, 'otlp_spans_dropped_total{reason="export_failed"}', lambda v: v >= 1)
        assert r.spans(), "the POSTs arrived; the receiver refused them"
        assert _metric(gw, "otlp_spans_exported_total") == 0
        _credits(gw, [])
    finally:
        r.close()


def test_receiver_down_counts_dropped_and_calls_succeed(stack, sim):
    # A port nobody listens on (taken, then freed): connections are refused.
    gw = stack.gateway(sim, name="otlpdown",
                       extra_top=_otlp_yaml("http://127.0.0.1:%d/v1/traces" % harness.free_port()))
    for _ in range(5):
        _credits(gw, [])
    # Refused: kept for one retry on the next flush, then dropped.
    _wait_metric(gw, 'otlp_exports_total{result="retried"}', lambda v: v >= 1)
    _wait_metric(gw, 'otlp_spans_dropped_total{reason="export_failed"}', lambda v: v >= 1)
    assert _metric(gw, "otlp_spans_exported_total") == 0
    _credits(gw, [])


def test_shutdown_flushes_what_waits(stack, sim):
    """A flush period longer than the test: the spans still waiting go out at SIGTERM."""
    r = Receiver()
    try:
        gw = stack.gateway(sim, name="otlpstop",
                           extra_top=_otlp_yaml(r.url).replace("flush_ms: 100", "flush_ms: 600000"))
        m = _credits(gw, [])
        assert not [s for s in r.spans() if s["spanId"] == m.group(2)]
        rc, killed = gw.stop()
        assert rc == 0 and not killed
        r.wait_span(lambda s: s["spanId"] == m.group(2), "for the call before SIGTERM")
        assert "exporter stopped" in gw.log_text()
    finally:
        r.close()


def test_headers_file_sent_never_logged_and_reload_says_restart(stack, sim):
    """headers_file (a collector's token) goes with every POST and never into the log; a SIGHUP
    that changes otlp: says it takes effect at the next restart."""
    token = "otlp-canary-%d" % time.monotonic_ns()
    r = Receiver()
    try:
        path = os.path.join(stack.workdir, "otlp-headers")
        with open(path, "w") as f:
            f.write("# the collector's token\nAuthorization: Bearer %s\nX-Scope-OrgID: a3d\n" % token)
        os.chmod(path, 0o600)
        gw = stack.gateway(sim, name="otlphdr",
                           extra_top=_otlp_yaml(r.url) + "  headers_file: %s\n" % path)
        m = _credits(gw, [])
        r.wait_span(lambda s: s["spanId"] == m.group(2), "for the call")
        with r.lock:
            hdrs = list(r.headers)
        assert hdrs and all(h.get("authorization") == "Bearer " + token for h in hdrs), hdrs
        assert all(h.get("x-scope-orgid") == "a3d" for h in hdrs)

        with open(gw.config_path) as f:
            text = f.read()
        with open(gw.config_path, "w") as f:
            f.write(text.replace("batch_max: 64", "batch_max: 32"))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_S
        while '"key":"otlp"' not in gw.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = [x for x in gw.log_text().splitlines() if '"key":"otlp"' in x]
        assert line and "next restart" in line[0], line
        gw.stop()
        assert token not in gw.log_text()
    finally:
        r.close()


def test_bad_headers_file_check_config_and_start(tmp_path):
    """--check-config reads the headers file like the start does: a malformed line is named by
    its number, never quoted; the daemon refuses to start with it."""
    token = "otlp-canary-%d" % time.monotonic_ns()
    hdr = tmp_path / "headers"
    hdr.write_text("X-Ok: 1\nAuthorization Bearer %s\n" % token)
    cfg = tmp_path / "gw.yaml"
    text = harness.gateway_config(harness.free_port(), harness.free_port(), "http://127.0.0.1:9",
                                  str(tmp_path / "gw.db"))
    lines = text.count("\n")
    cfg.write_text(text + _otlp_yaml("http://127.0.0.1:9/v1/traces") +
                   "  headers_file: %s\n" % hdr)
    env = dict(os.environ)
    env[harness.SECRET_ENV] = harness.CLIENT_SECRET
    for args in (["--check-config"], []):
        p = subprocess.run([harness.GATEWAY_BIN, "-c", str(cfg)] + args, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        assert p.returncode != 0, out
        assert "otlp.headers_file %s:2: expected" % hdr in out, out
        assert token not in out
        if args:
            assert "%s:%d: otlp.headers_file" % (cfg, lines + 2) in out, out
