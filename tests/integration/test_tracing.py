"""Request ids and W3C tracing (issue 20), end to end against the real binaries.

- A call that sends x-request-id, traceparent and tracestate gets x-request-id back unchanged and
  a traceparent of the same trace with the gateway's own span; the gateway's log lines of that
  call (the access line and the upstream attempt lines) name the request id, the trace and the
  spans; the simulator's request log (GET /_sim/requests) shows the upstream request carrying a
  traceparent of the same trace whose span is the upstream attempt's, child of the gateway's span,
  and the tracestate as sent.
- A batched upstream request (GetStatus through the status batcher) carries its caller's trace.
- A call without them gets generated ones (two calls: different ids); server streaming and
  refused calls get them too.
- Invalid values are replaced or dropped, never echoed, and counted on /metrics.
"""
import json
import re
import time

import grpc
import pytest

import harness
from harness import account_pb2, jobs_pb2

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = "00-%s-%s-01" % (TRACE, PARENT)
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
TP_RX = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
GEN_ID_RX = re.compile(r"^[0-9a-f]{32}$")
PREFIX = "animate3d_gateway_"
WAIT_S = 10.0           # bound of every poll below
CREDITS_ROUTE = "/account/creditBalance"


def _md_dict(md):
    out = {}
    for k, v in md or ():
        out.setdefault(k, []).append(v)
    return out


def _credits(gw, extra):
    """GetCreditBalance with extra metadata -> (response, initial metadata as {key: [values]})."""
    resp, call = gw.account.GetCreditBalance.with_call(
        account_pb2.GetCreditBalanceRequest(), timeout=5, metadata=gw.md() + list(extra))
    return resp, _md_dict(call.initial_metadata())


def _one(md, key):
    vals = md.get(key, [])
    assert len(vals) == 1, "%s: %r" % (key, md)
    return vals[0]


def _log_lines(gw, request_id):
    """The gateway's JSON log lines naming request_id."""
    out = []
    for line in gw.log_text().splitlines():
        if request_id not in line or not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("request_id") == request_id:
            out.append(rec)
    return out


def _wait_lines(gw, request_id, events):
    """Polls the log until lines of every event in events name request_id (the access line is
    written when the call is freed, just after the reply left); bounded."""
    deadline = time.monotonic() + WAIT_S
    lines = []
    while time.monotonic() < deadline:
        lines = _log_lines(gw, request_id)
        if events <= {r.get("event") for r in lines}:
            return lines
        time.sleep(0.05)
    raise AssertionError("no %s lines for request id %s within %.0fs; found %r"
                         % (sorted(events), request_id, WAIT_S, lines))


def _sim_requests(sim):
    st, _, body = harness.http("GET", sim.url + "/_sim/requests?limit=256")
    assert st == 200, body[:200]
    return json.loads(body)["requests"]


def _headers(req):
    out = {}
    for h in req["headers"]:
        out.setdefault(h["name"].lower(), []).append(h["value"])
    return out


def _upstream_with_span(sim, span):
    """The simulator's logged request whose traceparent's span is span (bounded poll)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for req in _sim_requests(sim):
            for tp in _headers(req).get("traceparent", []):
                m = TP_RX.match(tp)
                if m and m.group(2) == span:
                    return req
        time.sleep(0.05)
    raise AssertionError("the simulator logged no request with span %s" % span)


def _metric(gw, name):
    return harness.metrics(gw).get(PREFIX + name, 0.0)


# ---- ids sent by the caller -----------------------------------------------------------------------
def test_ids_sent_come_back_and_reach_logs_and_upstream(gateway, sim):
    rid = "trace-test-%d" % time.monotonic_ns()
    _, md = _credits(gateway, [("x-request-id", rid), ("traceparent", TRACEPARENT),
                               ("tracestate", TRACESTATE)])

    assert _one(md, "x-request-id") == rid
    m = TP_RX.match(_one(md, "traceparent"))
    assert m, md
    assert m.group(1) == TRACE, "same trace"
    span = m.group(2)
    assert span != PARENT and span != "0" * 16, "the gateway's own span"
    assert m.group(3) == "01", "the sampled flag is carried"

    lines = _wait_lines(gateway, rid, {"rpc", "upstream"})
    for rec in lines:
        assert rec["trace_id"] == TRACE, rec
    rpc = [r for r in lines if r["event"] == "rpc"]
    assert len(rpc) == 1 and rpc[0]["span_id"] == span, rpc
    ups = [r for r in lines if r["event"] == "upstream"]
    assert ups, lines
    for u in ups:
        assert u["parent_span_id"] == span, u
        assert u["span_id"] not in (span, PARENT), u

    # The upstream request: same trace, the attempt's span (child of the gateway's), tracestate
    # as sent; the session cookie is never in the simulator's log.
    req = _upstream_with_span(sim, ups[-1]["span_id"])
    assert req["path"] == CREDITS_ROUTE, req
    hdrs = _headers(req)
    tp = TP_RX.match(_one(hdrs, "traceparent"))
    assert tp.group(1) == TRACE and tp.group(3) == "01", hdrs
    assert _one(hdrs, "tracestate") == TRACESTATE
    assert all(v == "[redacted]" for v in hdrs.get("cookie", [])), hdrs


def test_batched_status_request_carries_the_callers_trace(gateway, sim):
    """GetStatus misses go upstream through the status batcher: the batch's request is a child
    of its (first) caller's span. A poll may ride on another's fetch (the job follower, the cache):
    calls are repeated, bounded, until one of them went upstream itself."""
    url = harness.upload_put(gateway, "trace.mp4", b"\x00" * 4096)
    job = harness.start_job(gateway, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    for i in range(40):
        rid = "trace-status-%d-%d" % (time.monotonic_ns(), i)
        parent = "%016x" % (0x1000 + i)
        _, call = gateway.jobs.GetStatus.with_call(
            jobs_pb2.GetStatusRequest(rids=[job]), timeout=5,
            metadata=gateway.md() + [("x-request-id", rid),
                                     ("traceparent", "00-%s-%s-00" % (TRACE, parent))])
        md = _md_dict(call.initial_metadata())
        assert _one(md, "x-request-id") == rid
        span = TP_RX.match(_one(md, "traceparent")).group(2)
        lines = _wait_lines(gateway, rid, {"rpc"})
        ups = [r for r in lines if r["event"] == "upstream"]
        if not ups:
            time.sleep(0.25)
            continue
        assert ups[0]["route"] == "GET /status/{rids}", ups
        assert ups[0]["parent_span_id"] == span and ups[0]["trace_id"] == TRACE
        req = _upstream_with_span(sim, ups[0]["span_id"])
        assert req["path"].startswith("/status/"), req
        tp = TP_RX.match(_one(_headers(req), "traceparent"))
        assert tp.group(1) == TRACE and tp.group(3) == "00", "not sampled, as the caller said"
        assert "tracestate" not in _headers(req)
        return
    pytest.fail("no GetStatus call of 40 went upstream under its own trace")


# ---- ids made up by the gateway -------------------------------------------------------------------
def test_ids_generated_when_absent(gateway):
    seen = []
    for _ in range(2):
        _, md = _credits(gateway, [])
        rid = _one(md, "x-request-id")
        m = TP_RX.match(_one(md, "traceparent"))
        assert GEN_ID_RX.match(rid), rid
        assert m and m.group(3) == "00", md
        assert m.group(1) != "0" * 32 and m.group(2) != "0" * 16
        seen.append((rid, m.group(1), m.group(2)))
        lines = _wait_lines(gateway, rid, {"rpc", "upstream"})
        assert all(r["trace_id"] == m.group(1) for r in lines), lines
    (r1, t1, s1), (r2, t2, s2) = seen
    assert r1 != r2 and t1 != t2 and s1 != s2, seen
    assert r1 != t1, "request id and trace id are drawn apart"


def test_streaming_and_refused_calls_get_ids(gateway):
    # A refused call (no key) still answers with its ids, and logs them: in its trailers, so
    # that the answer stays Trailers-Only (no response headers), which a client's retry policy
    # needs to retry it (gRFC A6).
    with pytest.raises(grpc.RpcError) as e:
        gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                         metadata=[("x-request-id", "refused-1"),
                                                   ("traceparent", TRACEPARENT)])
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not e.value.initial_metadata(), e.value.initial_metadata()
    md = _md_dict(e.value.trailing_metadata())
    assert _one(md, "x-request-id") == "refused-1"
    assert TP_RX.match(_one(md, "traceparent")).group(1) == TRACE
    _wait_lines(gateway, "refused-1", {"rpc"})

    # Server streaming: initial metadata arrives with the first message.
    url = harness.upload_put(gateway, "trace-watch.mp4", b"\x00" * 4096)
    job = harness.start_job(gateway, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    stream = gateway.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[job]), timeout=10,
                                      metadata=gateway.md() + [("x-request-id", "watch-1"),
                                                               ("traceparent", TRACEPARENT)])
    next(stream)
    md = _md_dict(stream.initial_metadata())
    stream.cancel()
    assert _one(md, "x-request-id") == "watch-1"
    m = TP_RX.match(_one(md, "traceparent"))
    assert m.group(1) == TRACE and m.group(2) != PARENT


# ---- invalid values ---------------------------------------------------------------------------------
BAD_REQUEST_IDS = ["x" * 129, "has space", ""]  # gRPC itself refuses control bytes
BAD_TRACEPARENTS = [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   # all-zero trace id
    "00-%s-0000000000000000-01" % TRACE,                          # all-zero parent id
    "ff-%s-%s-01" % (TRACE, PARENT),                              # version ff
    "00-%s-%s-01-extra" % (TRACE, PARENT),                        # version 00 is 55 bytes
    "00-%s-%s" % (TRACE, PARENT),                                 # no flags
    "garbage",
]


@pytest.mark.parametrize("bad", BAD_REQUEST_IDS)
def test_invalid_request_id_replaced(gateway, bad):
    before = _metric(gateway, "rpc_request_id_replaced_total")
    _, md = _credits(gateway, [("x-request-id", bad)])
    rid = _one(md, "x-request-id")
    assert rid != bad and GEN_ID_RX.match(rid), rid
    if bad:
        assert bad not in gateway.log_text(), "an invalid request id is never logged"
    assert _metric(gateway, "rpc_request_id_replaced_total") == before + 1


@pytest.mark.parametrize("bad", BAD_TRACEPARENTS)
def test_invalid_traceparent_starts_new_trace(gateway, sim, bad):
    before = _metric(gateway, "rpc_traceparent_invalid_total")
    dropped = _metric(gateway, "rpc_tracestate_dropped_total")
    rid = "bad-tp-%d" % time.monotonic_ns()
    _, md = _credits(gateway, [("x-request-id", rid), ("traceparent", bad),
                               ("tracestate", TRACESTATE)])
    m = TP_RX.match(_one(md, "traceparent"))
    assert m, md
    assert m.group(1) not in (TRACE, "0" * 32) and m.group(1).lower() != TRACE, "a new trace"
    assert m.group(3) == "00"
    assert _metric(gateway, "rpc_traceparent_invalid_total") == before + 1
    assert _metric(gateway, "rpc_tracestate_dropped_total") == dropped + 1
    # Upstream, the new trace goes out without the caller's tracestate.
    ups = [r for r in _wait_lines(gateway, rid, {"rpc", "upstream"}) if r["event"] == "upstream"]
    req = _upstream_with_span(sim, ups[-1]["span_id"])
    hdrs = _headers(req)
    assert TP_RX.match(_one(hdrs, "traceparent")).group(1) == m.group(1)
    assert "tracestate" not in hdrs


def test_several_tracestates_are_one_list(gateway, sim):
    """A proxy may split tracestate into several values: they go upstream joined, in order."""
    rid = "two-states-%d" % time.monotonic_ns()
    _credits(gateway, [("x-request-id", rid), ("traceparent", TRACEPARENT),
                       ("tracestate", "congo=t61rcWkgMzE"), ("tracestate", "rojo=00f067aa0ba902b7")])
    ups = [r for r in _wait_lines(gateway, rid, {"rpc", "upstream"}) if r["event"] == "upstream"]
    hdrs = _headers(_upstream_with_span(sim, ups[-1]["span_id"]))
    assert _one(hdrs, "tracestate") == TRACESTATE


def test_two_traceparents_are_not_believed(gateway):
    before = _metric(gateway, "rpc_traceparent_invalid_total")
    _, md = _credits(gateway, [("traceparent", TRACEPARENT),
                               ("traceparent", "00-%s-%s-01" % ("1" * 32, PARENT))])
    m = TP_RX.match(_one(md, "traceparent"))
    assert m.group(1) not in (TRACE, "1" * 32)
    assert _metric(gateway, "rpc_traceparent_invalid_total") == before + 1


# ---- the REST facade: the same ids, as HTTP headers ------------------------------------------------
@pytest.fixture(scope="module")
def rest_gw(stack, sim):
    return stack.gateway(sim, name="rest", rest=True)


def _rest(gw, headers):
    h = {"Authorization": "Bearer " + harness.KEYS["team-a"]}
    h.update(headers)
    st, hdrs, _ = harness.http("GET", gw.rest_url + CREDITS_ROUTE, headers=h)
    assert st == 200, st
    return {k.lower(): v for k, v in hdrs.items()}


def test_rest_facade_ids(rest_gw, sim):
    rid = "rest-trace-%d" % time.monotonic_ns()
    hdrs = _rest(rest_gw, {"X-Request-Id": rid, "traceparent": TRACEPARENT,
                           "tracestate": TRACESTATE})
    assert hdrs["x-request-id"] == rid
    m = TP_RX.match(hdrs["traceparent"])
    assert m and m.group(1) == TRACE and m.group(2) != PARENT, hdrs
    ups = [r for r in _wait_lines(rest_gw, rid, {"rpc", "upstream"}) if r["event"] == "upstream"]
    assert ups[-1]["parent_span_id"] == m.group(2)
    up = _headers(_upstream_with_span(sim, ups[-1]["span_id"]))
    assert TP_RX.match(_one(up, "traceparent")).group(1) == TRACE
    assert _one(up, "tracestate") == TRACESTATE

    # Without ids, or with invalid ones: generated, never echoed.
    a = _rest(rest_gw, {})
    b = _rest(rest_gw, {"X-Request-Id": "has space", "traceparent": "00-bad"})
    for h in (a, b):
        assert GEN_ID_RX.match(h["x-request-id"]), h
        assert TP_RX.match(h["traceparent"]).group(3) == "00"
    assert a["x-request-id"] != b["x-request-id"]
    assert TP_RX.match(a["traceparent"]).group(1) != TP_RX.match(b["traceparent"]).group(1)
