"""The REST facade (issue 18), end to end: the real gateway with listen.rest, the real simulator.

Upstream's own paths answered with a team's API key (Authorization: Bearer), in upstream's JSON
shapes, through the same pipeline as gRPC: the viewer key's permission, another tenant's rids
answered as upstream answers unknown rids, the tenant's rate limit as 429 + Retry-After, oversize
bodies 413, upstream's error shape, CORS as upstream does it; every refusal counted in /metrics. A
client that closes its connection mid-call cancels the call (test_rest_tls.py: the same over TLS,
and client certificates).
/webhook_endpoints* manage the tenant's own subscriptions (docs/webhooks.md), whose signed events
reach a receiver on 127.0.0.1.
"""
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

import harness

P = "animate3d_gateway_"
SLOW_KEY = "demo-key-slow"
SLOW_TENANT = """\
  - name: slow
    account: sim
    rate: {{ per_second: 0.5, burst: 2 }}
    keys:
      - sha256: {}
        permissions: [read]
""".format(harness.sha256_hex(SLOW_KEY))


@pytest.fixture(scope="module")
def gw(stack, sim):
    return stack.gateway(sim, name="rest", rest=True, extra_tenants=SLOW_TENANT)


def bearer(tenant="team-a", key=None):
    return {"Authorization": "Bearer " + (key or harness.KEYS[tenant])}


def call(gw, method, path, tenant="team-a", headers=None, body=None, key=None):
    """-> (status, headers, parsed JSON body or None)."""
    h = bearer(tenant, key) if tenant else {}
    h.update(headers or {})
    st, hdrs, raw = harness.http(method, gw.rest_url + path, body=body, headers=h)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return st, hdrs, doc


def is_upstream_error(doc, status):
    return isinstance(doc, dict) and set(doc) == {"message", "error"} and doc["error"] == str(status)


@pytest.fixture(scope="module")
def job(gw):
    """A finished job of team-a, made over REST: upload URL, PUT, /process."""
    st, _, doc = call(gw, "GET", "/upload?name=rest.mp4&resumable=0")
    assert st == 200 and doc["url"].startswith("http"), (st, doc)
    with open(harness.TINY_MP4, "rb") as f:
        data = f.read()
    assert harness.put_bytes(doc["url"], data) in (200, 201)
    st, _, started = call(gw, "POST", "/process",
                          body={"url": doc["url"], "processor": "video2anim",
                                "params": ["config=configDefault", "formats=bvh,fbx"]})
    assert st == 200 and set(started) == {"rid"}, (st, started)
    rid = started["rid"]
    harness.wait_job(gw, rid)
    return {"rid": rid, "url": doc["url"], "size": len(data)}


def test_status_as_upstream_shapes_it(gw, job):
    st, hdrs, doc = call(gw, "GET", "/status/" + job["rid"])
    assert st == 200, doc
    assert hdrs["Content-Type"] == "application/json"
    assert doc == {"count": 1, "status": [{"rid": job["rid"], "status": "SUCCESS",
                                            "details": {"in": "rest.mp4",
                                                        "out": job["rid"] + ".bvh"}}]}


def test_process_idempotency_key_and_params(gw, job):
    body = {"rid": job["rid"], "processor": "video2anim", "params": ["formats=bvh"]}
    key = {"Idempotency-Key": "rest-rerun-1"}
    st1, _, a = call(gw, "POST", "/process", body=body, headers=key)
    st2, _, b = call(gw, "POST", "/process", body=body, headers=key)
    assert st1 == st2 == 200 and a == b and a["rid"] != job["rid"], (a, b)
    st, _, c = call(gw, "POST", "/process", body=body)
    assert st == 200 and c["rid"] != a["rid"], c
    # A documented parameter with an unreadable value: upstream's 400 and words.
    st, _, doc = call(gw, "POST", "/process",
                      body={"rid": job["rid"], "params": ["trackFace=maybe"]})
    assert st == 400 and doc["error"] == "503" and "trackFace" in doc["message"], doc
    # One the gateway's own field limits refuse (as for a gRPC caller): 400 naming it.
    st, _, doc = call(gw, "POST", "/process",
                      body={"rid": job["rid"], "params": ["videoSpeedMultiplier=9.5"]})
    assert st == 400 and doc["error"] == "503" and "video_speed_multiplier" in doc["message"], doc
    # Someone else's job is unknown to them.
    st, _, doc = call(gw, "POST", "/process", tenant="team-b", body=body)
    assert st == 404 and is_upstream_error(doc, 404), doc


def test_download_list_pesave_videoinfo(gw, job):
    st, _, doc = call(gw, "GET", "/download/" + job["rid"])
    assert st == 200 and doc["count"] == 1, doc
    link = doc["links"][0]
    assert link["rid"] == job["rid"] and link["mode"] == 0 and link["urls"], link
    assert all(set(u) == {"name", "files"} for u in link["urls"])

    st, _, doc = call(gw, "GET", "/list")
    assert st == 200 and any(j["rid"] == job["rid"] and j["status"] == "SUCCESS"
                             for j in doc["list"]), doc
    st, _, doc = call(gw, "GET", "/list/SUCCESS")
    assert st == 200 and doc["count"] >= 1 and all(j["status"] == "SUCCESS" for j in doc["list"])
    st, _, doc = call(gw, "GET", "/list/DONE")
    assert st == 400 and is_upstream_error(doc, 400), doc

    st, _, doc = call(gw, "GET", "/pesave/getUrls/" + job["rid"])
    assert st == 200 and isinstance(doc, list) and doc[0]["trackingId"] == "001", doc
    assert doc[0]["modifiedVersionReadUrl"] is None and doc[0]["modifiedVersionWriteUrl"]

    st, _, doc = call(gw, "POST", "/videoInfo", body={"url": job["url"]})
    assert st == 200 and doc["size"] == job["size"] and doc["codec"], doc


def test_account_and_characters(gw):
    st, _, doc = call(gw, "GET", "/account/creditBalance")
    assert st == 200 and isinstance(doc["credits"], (int, float)), doc
    st, _, doc = call(gw, "GET", "/account/minutesBalance")
    assert st == 200 and isinstance(doc["minutes"], (int, float)), doc
    st, _, doc = call(gw, "GET", "/character/listModels?stockModel=all")
    assert st == 200 and doc["list"] and {"id", "name", "platform"} <= set(doc["list"][0]), doc
    st, _, doc = call(gw, "GET", "/character/getModelUploadUrl?name=m.fbx&modelExt=fbx&thumbExt=png")
    assert st == 200 and doc["modelUrl"].startswith("http") and doc["thumbUrl"], doc


def test_unauthenticated_is_401_in_upstream_shape(gw):
    before = harness.metrics(gw)
    for headers in ({}, {"Authorization": "Basic ZGVtby1jbGllbnQtaWQ6ZGVtby1jbGllbnQtc2VjcmV0"},
                    {"Authorization": "Bearer not-a-key"}, {"Cookie": "dmsess=abc"}):
        st, _, doc = call(gw, "GET", "/account/creditBalance", tenant=None, headers=headers)
        assert st == 401 and is_upstream_error(doc, 401), (headers, st, doc)
    after = harness.metrics(gw)
    refused = P + 'rest_rejected_total{reason="unauthenticated"}'
    assert after[refused] - before.get(refused, 0) == 3      # no scheme, Basic, cookie
    unauth = P + "rpc_unauthenticated_total"                 # the wrong key: the call's own count
    assert after[unauth] - before.get(unauth, 0) == 1


def test_permission_of_the_viewer_key(gw, job):
    st, _, doc = call(gw, "GET", "/upload?name=v.mp4", tenant="viewer")
    assert st == 403 and is_upstream_error(doc, 403), doc
    st, _, doc = call(gw, "GET", "/pesave/getUrls/" + job["rid"], tenant="viewer")
    assert st == 403, doc
    st, _, doc = call(gw, "GET", "/account/creditBalance", tenant="viewer")
    assert st == 200, doc


def test_foreign_rids_answered_as_unknown(gw, job):
    st, _, doc = call(gw, "GET", "/status/" + job["rid"], tenant="team-b")
    assert st == 404 and is_upstream_error(doc, 404), doc
    st, _, doc = call(gw, "GET", "/download/" + job["rid"], tenant="team-b")
    assert st == 404, doc
    st, _, doc = call(gw, "GET", "/pesave/getUrls/" + job["rid"], tenant="team-b")
    assert st == 404, doc
    # Upstream leaves unknown rids out of the answer; so does the facade with another's rid.
    url = harness.upload_put(gw, "b.mp4", b"\0" * 64, tenant="team-b")
    mine = harness.start_job(gw, tenant="team-b", upload_url=url)
    st, _, doc = call(gw, "GET", "/status/%s,%s" % (job["rid"], mine), tenant="team-b")
    assert st == 200 and doc["count"] == 1 and doc["status"][0]["rid"] == mine, doc
    st, _, doc = call(gw, "GET", "/list", tenant="team-b")
    assert st == 200 and job["rid"] not in [j["rid"] for j in doc["list"]], doc


def test_rate_limit_is_429_with_retry_after(gw):
    seen = None
    for _ in range(10):             # burst 2 at 0.5/s: the third call within a second is refused
        st, hdrs, doc = call(gw, "GET", "/account/creditBalance", tenant=None,
                             headers=bearer(key=SLOW_KEY))
        if st == 429:
            seen = (hdrs, doc)
            break
        assert st == 200, doc
    assert seen, "never limited"
    hdrs, doc = seen
    assert is_upstream_error(doc, 429), doc
    assert int(hdrs["Retry-After"]) >= 1, hdrs


def test_oversize_body_is_413_and_counted(gw):
    before = harness.metrics(gw)
    st, _, doc = call(gw, "POST", "/videoInfo", body=b"{" + b" " * (64 << 10) + b"}")
    assert st == 413 and is_upstream_error(doc, 413), doc
    after = harness.metrics(gw)
    k = P + 'rest_rejected_total{reason="body_too_large"}'
    assert after[k] - before.get(k, 0) == 1


def test_unknown_path_and_wrong_method(gw):
    st, _, doc = call(gw, "GET", "/nothing/here")
    assert st == 404 and is_upstream_error(doc, 404), doc
    st, _, doc = call(gw, "DELETE", "/status/abc")
    assert st == 405 and is_upstream_error(doc, 405), doc
    st, _, doc = call(gw, "POST", "/videoInfo", body=b"not json")
    assert st == 400 and is_upstream_error(doc, 400), doc


def test_cors_as_upstream(gw):
    st, hdrs, _ = harness.http("OPTIONS", gw.rest_url + "/status/x",
                               headers={"Origin": "http://localhost:8080",
                                        "Access-Control-Request-Method": "GET",
                                        "Access-Control-Request-Headers": "authorization"})
    assert st == 204, hdrs
    assert hdrs["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert hdrs["Access-Control-Allow-Credentials"] == "true"
    assert "GET" in hdrs["Access-Control-Allow-Methods"]
    st, hdrs, _ = call(gw, "GET", "/account/creditBalance", headers={"Origin": "http://evil.example"})
    assert st == 200 and "Access-Control-Allow-Origin" not in hdrs


def test_same_pipeline_as_grpc(gw, job):
    """A REST request is a call of the gRPC method: it shows in rpc_total and the access log."""
    label = P + 'rpc_total{tenant="team-a",method="/animate3d.v1.Jobs/GetStatus",code="OK"}'
    before = harness.metrics(gw).get(label, 0)
    st, _, _ = call(gw, "GET", "/status/" + job["rid"])
    assert st == 200
    assert harness.metrics(gw)[label] == before + 1
    assert harness.CLIENT_SECRET not in harness.read_text(gw.log_path)


# ---- sessions: GET /session/auth -> dmsess ------------------------------------------------------
def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def login(gw, user="team-a", password=None):
    """-> (status, the dmsess value or None, Set-Cookie header)."""
    st, hdrs, raw = harness.http("GET", gw.rest_url + "/session/auth",
                                 headers=basic(user, harness.KEYS[user] if password is None else password))
    cookie = hdrs.get("Set-Cookie", "")
    m = re.match(r"dmsess=([^;]*);", cookie)
    return st, (m.group(1) if m else None), cookie, raw


def test_session_auth_gives_a_cookie_of_our_own(gw):
    st, tok, cookie, raw = login(gw)
    assert st == 200 and json.loads(raw) == {"message": "authenticated"}, (st, raw)
    # 43 characters of URL-safe base64 without '=' (the JS SDK splits Set-Cookie on '='), no Domain.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", tok), tok
    assert "Path=/" in cookie and "HttpOnly" in cookie and "Domain" not in cookie, cookie
    for c in ("dmsess=" + tok, "dmsess=%s; Path" % tok, "other=1; dmsess=" + tok):
        st, _, doc = call(gw, "GET", "/account/creditBalance", tenant=None, headers={"Cookie": c})
        assert st == 200 and "credits" in doc, (c, st, doc)
    # Basic beside a valid cookie is harmless, as upstream; Basic alone is not a session.
    st, _, _ = call(gw, "GET", "/account/creditBalance", tenant=None,
                    headers=dict(basic("team-a", harness.KEYS["team-a"]), Cookie="dmsess=" + tok))
    assert st == 200
    st, _, doc = call(gw, "GET", "/account/creditBalance", tenant=None,
                      headers=basic("team-a", harness.KEYS["team-a"]))
    assert st == 401 and is_upstream_error(doc, 401), doc
    # The upstream cookie and secret never reach the client.
    assert harness.CLIENT_SECRET not in cookie


def test_session_is_the_tenant_of_its_key(gw, job):
    _, tok_b, _, _ = login(gw, "team-b")
    st, _, doc = call(gw, "GET", "/status/" + job["rid"], tenant=None,
                      headers={"Cookie": "dmsess=" + tok_b})
    assert st == 404, doc
    _, tok_v, _, _ = login(gw, "viewer")
    st, _, doc = call(gw, "GET", "/upload?name=x.mp4", tenant=None,
                      headers={"Cookie": "dmsess=" + tok_v})
    assert st == 403, doc


def test_session_auth_refusals(gw):
    before = harness.metrics(gw)
    for user, pw in (("team-a", "wrong"), ("team-b", harness.KEYS["team-a"]), ("nobody", "x"),
                     ("team-a", "")):
        st, tok, _, raw = login(gw, user, pw)
        assert st == 401 and tok is None and is_upstream_error(json.loads(raw), 401), (user, st)
    st, _, raw = harness.http("GET", gw.rest_url + "/session/auth")
    assert st == 401
    st, _, doc = call(gw, "GET", "/account/creditBalance", tenant=None,
                      headers={"Cookie": "dmsess=" + "A" * 43})
    assert st == 401 and is_upstream_error(doc, 401), doc
    after = harness.metrics(gw)
    k = P + 'rest_rejected_total{reason="login_failed"}'
    assert after[k] - before.get(k, 0) == 5


ROT_KEY = "demo-key-rotating"


def test_session_ends_when_its_key_is_removed(stack, sim):
    rot = """\
  - name: rot
    account: sim
    keys:
      - sha256: {}
        permissions: [read]
""".format(harness.sha256_hex(ROT_KEY))
    g = stack.gateway(sim, name="rest-reload", rest=True, extra_tenants=rot)
    st, tok, _, _ = login(g, "rot", ROT_KEY)
    assert st == 200
    h = {"Cookie": "dmsess=" + tok}
    assert call(g, "GET", "/account/creditBalance", tenant=None, headers=h)[0] == 200
    with open(g.config_path) as f:
        text = f.read()
    assert rot in text
    with open(g.config_path + ".new", "w") as f:
        f.write(text.replace(rot, ""))
    os.replace(g.config_path + ".new", g.config_path)
    before = harness.read_text(g.log_path).count("configuration reloaded")
    g.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while harness.read_text(g.log_path).count("configuration reloaded") == before:
        assert time.monotonic() < deadline, "no reload"
        time.sleep(0.05)
    st, _, doc = call(g, "GET", "/account/creditBalance", tenant=None, headers=h)
    assert st == 401 and is_upstream_error(doc, 401), doc
    m = harness.metrics(g)
    assert m[P + "rest_sessions"] == 0         # dropped, not kept until it expires


def test_slow_call_outlives_the_connection_deadline(stack, sim):
    """rest.timeout_s closes connections that send no complete request (slow clients); a request
    whose answer is slow upstream is not such a connection: it is answered."""
    g = stack.gateway(sim, name="rest-slow", rest=True, extra_top="rest:\n  timeout_s: 1\n")
    sim.faults("GET /account/minutesBalance", status=0, rate=1.0, latency_ms=2500, count=1)
    try:
        st, _, doc = call(g, "GET", "/account/minutesBalance")
    finally:
        sim.clear_faults()
    assert st == 200 and "minutes" in doc, (st, doc)
    m = harness.metrics(g)
    assert m[P + 'rest_connections_closed_total{reason="deadline"}'] == 0


def wait_for(pred, what, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def leave_during_call(gw, sim, connect, route="GET /upload", path="/upload?name=gone.mp4"):
    """Sends a request whose upstream answer the simulator holds back (5 s), closes the connection
    once the request reached upstream, and checks that the gateway cancels the call within a
    short bound (well before the answer would have come): counted as a cancel, in rpc_total as
    CANCELLED, the connection closed. connect() -> a connected socket (plain or TLS)."""
    label = P + 'rpc_total{tenant="team-a",method="/animate3d.v1.Jobs/GetUploadUrl",code="CANCELLED"}'
    before = harness.metrics(gw)
    upstream = sim.count(route)
    sim.faults(route, status=0, rate=1.0, latency_ms=5000, count=1)
    try:
        s = connect()
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (path, harness.KEYS["team-a"])).encode())
        wait_for(lambda: sim.count(route) > upstream, "the request never reached upstream", 5)
        t0 = time.monotonic()
        s.close()
        key = P + "rest_cancelled_total"
        wait_for(lambda: harness.metrics(gw).get(key, 0) > before.get(key, 0),
                 "the call was not cancelled", 3)
        assert time.monotonic() - t0 < 4.5     # before the held-back answer: cancelled, not answered
    finally:
        sim.clear_faults()
    after = harness.metrics(gw)
    assert after[P + "rest_cancelled_total"] - before.get(P + "rest_cancelled_total", 0) == 1
    assert after.get(label, 0) - before.get(label, 0) == 1
    wait_for(lambda: harness.metrics(gw)[P + "rest_connections"] <= before[P + "rest_connections"],
             "the connection stayed open", 3)


def test_client_that_leaves_cancels_its_call(gw, sim):
    leave_during_call(gw, sim, lambda: socket.create_connection(("127.0.0.1", gw.rest_port), 5))
    # The facade goes on serving, and a client that waits is answered.
    st, _, doc = call(gw, "GET", "/upload?name=after.mp4")
    assert st == 200 and doc["url"].startswith("http"), doc


class TlsRestGateway(harness.Gateway):
    """A gateway whose listeners speak TLS: ready once the REST port accepts (the harness's
    readiness check is a plaintext gRPC health call)."""

    def _wait_ready(self, wait_serving):
        deadline = time.monotonic() + harness.START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited: " + harness.read_text(self.log_path)[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.rest_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("REST listener not up")


def test_tls_like_the_grpc_listener(stack, sim, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("rest-certs"))
    p = subprocess.run([os.path.join(harness.REPO, "tests", "lib", "make-certs"), d],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    tls = "tls:\n  cert_file: %s\n  key_file: %s\n" % (os.path.join(d, "server.pem"),
                                                     os.path.join(d, "server.key"))
    g = TlsRestGateway(stack.workdir, sim.url, name="rest-tls", rest=True, extra_top=tls)
    stack.gateways.append(g)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    url = "https://127.0.0.1:%d/account/creditBalance" % g.rest_port
    req = urllib.request.Request(url, headers=bearer())
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        assert r.status == 200 and "credits" in json.loads(r.read())
    # Plaintext HTTP on the TLS port gets no answer from the API.
    st = None
    try:
        st, _, _ = harness.http("GET", "http://127.0.0.1:%d/account/creditBalance" % g.rest_port,
                                headers=bearer(), timeout=5)
    except Exception:       # noqa: BLE001 - a reset or a garbled answer: either way, no JSON
        pass
    assert st != 200


# ---- /webhook_endpoints*: the tenant's own subscriptions (docs/webhooks.md) ---------------------
from test_tenant_webhooks import Receiver, verify  # noqa: E402 - the receiver and the check of issue 17

UPSTREAM_ENDPOINT_KEYS = {"id", "object", "url", "events"}
UNKNOWN_ENDPOINT = "ep_" + "1" * 22        # well formed, never made


def make_endpoint(gw, url, tenant="team-a", headers=None):
    st, _, doc = call(gw, "POST", "/webhook_endpoints", tenant=tenant, headers=headers,
                      body={"url": url, "events": ["job.completed"]})
    assert st == 200, (st, doc)
    return doc


def test_webhook_endpoints_create_list_get_update_delete(gw):
    label = P + 'rpc_total{tenant="team-a",method="/animate3d.v1.Webhooks/CreateEndpoint",code="OK"}'
    before = harness.metrics(gw).get(label, 0)
    made = make_endpoint(gw, "http://127.0.0.1:9/made")
    # Upstream's answer, plus the signing secret: shown this once.
    assert set(made) == UPSTREAM_ENDPOINT_KEYS | {"secret"}, made
    assert made["object"] == "webhook_endpoint" and made["url"] == "http://127.0.0.1:9/made"
    assert made["events"] == ["job.completed"] and made["secret"].startswith("whsec_")
    assert len(base64.b64decode(made["secret"][len("whsec_"):])) == 32
    assert harness.metrics(gw)[label] == before + 1      # the gRPC method ran, as for gRPC
    path = "/webhook_endpoints/" + made["id"]

    st, _, doc = call(gw, "GET", path)
    assert st == 200 and doc == {k: made[k] for k in UPSTREAM_ENDPOINT_KEYS}, doc
    st, _, doc = call(gw, "GET", "/webhook_endpoints")
    assert st == 200 and doc["count"] == len(doc["endpoints"]), doc
    assert {k: made[k] for k in UPSTREAM_ENDPOINT_KEYS} in doc["endpoints"], doc
    assert all("secret" not in e for e in doc["endpoints"]), doc

    st, _, doc = call(gw, "POST", path, body={"url": "http://127.0.0.1:9/moved"})
    assert st == 200 and doc == dict({k: made[k] for k in UPSTREAM_ENDPOINT_KEYS},
                                     url="http://127.0.0.1:9/moved"), doc
    # The gateway's switch: deliveries stop (and say why) and resume.
    st, _, doc = call(gw, "POST", path, body={"disabled": True, "description": "paused"})
    assert st == 200 and doc["disabled"] is True and doc["description"] == "paused", doc
    assert doc["disabled_reason"] == "disabled by the tenant" and "secret" not in doc, doc
    st, _, doc = call(gw, "POST", path, body={"disabled": False})
    assert st == 200 and "disabled" not in doc and "disabled_reason" not in doc, doc

    st, _, doc = call(gw, "DELETE", path)
    assert st == 200 and doc == {"id": made["id"], "object": "webhook_endpoint", "deleted": True}
    st, _, doc = call(gw, "GET", path)
    assert st == 404 and is_upstream_error(doc, 404), doc
    st, _, doc = call(gw, "DELETE", path)
    assert st == 404 and is_upstream_error(doc, 404), doc
    st, _, doc = call(gw, "GET", "/webhook_endpoints")
    assert made["id"] not in [e["id"] for e in doc["endpoints"]], doc


def test_webhook_endpoints_of_another_tenant_are_unknown(gw):
    made = make_endpoint(gw, "http://127.0.0.1:9/a-only")
    path = "/webhook_endpoints/" + made["id"]
    try:
        unknown = "/webhook_endpoints/" + UNKNOWN_ENDPOINT
        for method, body in (("GET", None), ("POST", {"url": "http://127.0.0.1:9/stolen"}),
                             ("DELETE", None)):
            st_f, _, foreign = call(gw, method, path, tenant="team-b", body=body)
            st_u, _, never = call(gw, method, unknown, tenant="team-b", body=body)
            # The same answer as for an id that never existed: nothing tells the two apart.
            assert st_f == st_u == 404 and is_upstream_error(foreign, 404), (method, foreign)
            assert foreign == never, (method, foreign, never)
        st, _, doc = call(gw, "GET", "/webhook_endpoints", tenant="team-b")
        assert st == 200 and made["id"] not in [e["id"] for e in doc["endpoints"]], doc
        # Untouched by team-b's attempts.
        st, _, doc = call(gw, "GET", path)
        assert st == 200 and doc["url"] == "http://127.0.0.1:9/a-only", doc
    finally:
        call(gw, "DELETE", path)


def test_webhook_endpoints_permissions_as_for_grpc(gw):
    st, _, doc = call(gw, "POST", "/webhook_endpoints", tenant="viewer",
                      body={"url": "http://127.0.0.1:9/v", "events": ["job.completed"]})
    assert st == 403 and is_upstream_error(doc, 403), doc
    st, _, doc = call(gw, "GET", "/webhook_endpoints", tenant="viewer")
    assert st == 200 and doc == {"count": 0, "endpoints": []}, doc
    st, _, doc = call(gw, "DELETE", "/webhook_endpoints/" + UNKNOWN_ENDPOINT, tenant="viewer")
    assert st == 403 and is_upstream_error(doc, 403), doc


def test_webhook_endpoints_bad_bodies_in_upstream_shape(gw):
    before = harness.metrics(gw)
    # Refused by the facade: the body cannot become the method's request.
    for body in (b"not json", b"[]", {"url": 7, "events": ["job.completed"]},
                 {"url": "http://127.0.0.1:9/h", "events": "job.completed"}):
        st, _, doc = call(gw, "POST", "/webhook_endpoints", body=body)
        assert st == 400 and is_upstream_error(doc, 400), (body, doc)
    after = harness.metrics(gw)
    k = P + 'rest_rejected_total{reason="bad_request"}'
    assert after[k] - before.get(k, 0) == 4
    # Refused by the method, with its words, as a gRPC caller is refused.
    for body, words in (({"events": ["job.completed"]}, "url"),
                        ({"url": "ftp://127.0.0.1/h", "events": ["job.completed"]}, "http"),
                        ({"url": "http://u:pw@127.0.0.1:9/h", "events": ["job.completed"]},
                         "credentials"),
                        ({"url": "http://127.0.0.1:9/h"}, "events"),
                        ({"url": "http://127.0.0.1:9/h", "events": ["job.failed"]}, "event")):
        st, _, doc = call(gw, "POST", "/webhook_endpoints", body=body)
        assert st == 400 and is_upstream_error(doc, 400) and words in doc["message"], (body, doc)
    made = make_endpoint(gw, "http://127.0.0.1:9/bodies")
    try:
        for body in (b"{", {"url": ""}, {"events": []}, {"disabled": "no"}, {}):
            st, _, doc = call(gw, "POST", "/webhook_endpoints/" + made["id"], body=body)
            assert st == 400 and is_upstream_error(doc, 400), (body, doc)
        st, _, doc = call(gw, "GET", "/webhook_endpoints/" + made["id"])
        assert st == 200 and doc["url"] == "http://127.0.0.1:9/bodies", doc
    finally:
        call(gw, "DELETE", "/webhook_endpoints/" + made["id"])
    assert harness.CLIENT_SECRET not in harness.read_text(gw.log_path)


def test_webhook_endpoint_made_over_rest_gets_the_tenants_event(gw):
    """An endpoint made through the facade (with a dmsess session, as upstream clients do) receives
    the tenant's job's final state, signed with the secret the create answer showed."""
    rec = Receiver()
    _, tok, _, _ = login(gw, "team-b")
    session = {"Cookie": "dmsess=" + tok}
    made = make_endpoint(gw, rec.url, tenant=None, headers=session)
    try:
        st, _, up = call(gw, "GET", "/upload?name=hook.mp4&resumable=0", tenant=None,
                         headers=session)
        assert st == 200, up
        with open(harness.TINY_MP4, "rb") as f:
            assert harness.put_bytes(up["url"], f.read()) in (200, 201)
        st, _, started = call(gw, "POST", "/process", tenant=None, headers=session,
                              body={"url": up["url"], "processor": "video2anim",
                                    "params": ["formats=bvh"]})
        assert st == 200, started
        rid = started["rid"]
        harness.wait_job(gw, rid, tenant="team-b", timeout=60)

        def mine():
            return [r for r in rec.snapshot() if json.loads(r[1])["data"]["taskId"] == rid]
        deadline = time.monotonic() + 60
        while not mine():
            assert time.monotonic() < deadline, "no delivery of %s: %s" % (rid, rec.snapshot())
            time.sleep(0.1)
        headers, body = mine()[0]
        event = verify(made["secret"], headers, body)
        assert event["eventType"] == "job.completed", event
        assert event["data"]["status"] == "success" and event["data"]["state"] == "SUCCESS", event
        # Only team-b's jobs reach it: the module's team-a jobs never do.
        assert all(json.loads(b)["data"]["taskId"] == rid for _, b in rec.snapshot())
    finally:
        call(gw, "DELETE", "/webhook_endpoints/" + made["id"], tenant=None, headers=session)
        rec.close()


def test_full_endpoint_table_is_503_as_upstream(gw):
    """A tenant's endpoint table full (GW_STORE_HOOKS_MAX, 32) is not a rate limit: upstream
    answers its own full table 503 "Webhook endpoint table full", so does the facade, and without
    a Retry-After (no delay would help)."""
    st, _, doc = call(gw, "GET", "/webhook_endpoints", tenant="team-b")
    assert st == 200, doc
    made = []
    try:
        for i in range(64 - doc["count"]):     # bounded: the table holds 32
            st, hdrs, got = call(gw, "POST", "/webhook_endpoints", tenant="team-b",
                                 body={"url": "http://127.0.0.1:9/full-%d" % i,
                                       "events": ["job.completed"]})
            if st != 200:
                break
            made.append(got["id"])
        assert st == 503 and is_upstream_error(got, 503), (st, got)
        assert "Retry-After" not in hdrs, hdrs
        assert len(made) + doc["count"] == 32
    finally:
        for i in made:
            call(gw, "DELETE", "/webhook_endpoints/" + i, tenant="team-b")
