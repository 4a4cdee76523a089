"""Operable in production (issue 7), end to end against the real binaries:

- /metrics after real RPCs: rpc counters by method/code, latency histograms, upstream requests by
  route/status with latency, session counters per account, build info; no rid, key or secret in
  any label.
- /healthz, /readyz (per-account login state in the body).
- SIGHUP: a valid new config (a new tenant key works without restart), a broken one (logged, the
  old keys keep working), a rotated secret file re-read (and a bad one refused, old one kept).
- SIGTERM: an in-flight slow call completes, health goes NOT_SERVING, exit 0; past the grace
  period calls are cancelled and the process still exits 0.
- Secret files readable by group/others are refused at start with a clear message.
- TLS on the gRPC listener; mTLS where a verified client certificate maps to a tenant when the
  call carries no API key (a key, when present, wins).
- The canary run: a full flow with canary client secret and API keys, then every captured log and
  the /metrics text are searched for them, their base64 forms, dmsess values and URL signatures.

Helpers from harness.py/conftest.py are reused; gateways started here are registered with the
module's `stack`, so its teardown also stops them and checks their exit code and output.
"""
import base64
import json
import os
import re
import secrets
import signal
import stat
import subprocess
import time

import grpc
import pytest

import harness
from harness import account_pb2, characters_pb2, health_pb2, jobs_pb2, webhooks_pb2

REPO = harness.REPO
MAKE_CERTS = os.path.join(REPO, "tests", "lib", "make-certs")
PREFIX = "animate3d_gateway_"
LOGIN = "GET /session/auth"
CREDITS = "GET /account/creditBalance"
RID_RX = re.compile(r"(?<![1-9A-HJ-NP-Za-km-z])[1-9A-HJ-NP-Za-km-z]{22}(?![1-9A-HJ-NP-Za-km-z])")
WAIT_S = 10.0           # bound of every poll loop below


# ---- small helpers -------------------------------------------------------------------------------
def wait_until(fn, what, timeout=WAIT_S, period=0.05):
    """Poll fn() until it returns a truthy value; bounded. -> that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (AssertionError, grpc.RpcError, OSError) as e:
            last = e
        time.sleep(period)
    raise AssertionError("%s: not within %.0fs (last: %r)" % (what, timeout, last))


def md_key(key):
    return [("authorization", "Bearer " + key)]


def credits(gw, md=None, channel=None, timeout=5):
    stub = account_pb2_grpc_stub(channel) if channel is not None else gw.account
    return stub.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=timeout,
                                 metadata=md if md is not None else gw.md())


def account_pb2_grpc_stub(channel):
    from animate3d.v1 import account_pb2_grpc
    return account_pb2_grpc.AccountStub(channel)


def rpc_code(fn):
    """Runs fn(); -> grpc.StatusCode.OK or the error's code."""
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def write_atomic(path, text, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def log_lines(gw):
    """The gateway's JSON log lines (other lines, e.g. from gRPC core, are skipped)."""
    out = []
    for line in gw.log_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def rpc_log(gw, method_suffix):
    """Access-log lines of calls whose method ends with method_suffix."""
    return [l for l in log_lines(gw) if l.get("event") == "rpc" and
            str(l.get("method", "")).endswith(method_suffix)]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prom(text):
    """Prometheus text format -> ({family: type}, [(name, {labels}, value)]); asserts well-formed."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            assert len(parts) == 4, "bad TYPE line %r" % line
            types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "malformed metrics line %r" % line
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def family(name, types):
    """The TYPE'd family a sample belongs to (histogram samples carry suffixes)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
            return name[:-len(suffix)]
    return name


def metrics(gw):
    st, hdrs, body = harness.http("GET", gw.http_url + "/metrics")
    assert st == 200, "GET /metrics -> %d" % st
    ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
    assert ctype.startswith("text/plain"), ctype
    text = body.decode()
    types, samples = parse_prom(text)
    return text, types, samples


def settled_metrics(gw):
    """metrics() once no call is in flight: a call is counted when the server frees it, which
    may be a moment after its client saw the answer."""
    def scrape():
        m = metrics(gw)
        return m if value(m[2], PREFIX + "rpc_in_flight") == 0 else None
    return wait_until(scrape, "no call in flight on %s" % gw.name, timeout=5)


def value(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == want for k, want in labels.items()))


def check_histogram(samples, name, **labels):
    """Buckets cumulative and ordered, +Inf == _count; -> _count."""
    buckets = sorted(((float(l["le"]), v) for n, l, v in samples
                      if n == name + "_bucket" and all(l.get(k) == w for k, w in labels.items())),
                     key=lambda b: b[0])
    assert len(buckets) >= 5, "%s%r: only %d buckets" % (name, labels, len(buckets))
    assert buckets[-1][0] == float("inf"), "%s%r: no +Inf bucket" % (name, labels)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "%s%r: buckets not cumulative: %r" % (name, labels, buckets)
    count = value(samples, name + "_count", **labels)
    assert buckets[-1][1] == count, "%s%r: +Inf %s != count %s" % (name, labels, buckets[-1][1], count)
    assert value(samples, name + "_sum", **labels) >= 0
    return count


def http_json(url):
    st, _, body = harness.http("GET", url)
    return st, json.loads(body)


# ---- gateways with our own configuration -----------------------------------------------------------
def base_config(grpc_port, http_port, sim_url, workdir, name, **kw):
    return harness.gateway_config(grpc_port, http_port, sim_url, os.path.join(workdir, name + ".db"),
                                  **kw)


def add_tenant(text, name, key, perms="[read, write]", extra=""):
    """Appends a tenant (tenants: is the last section of harness.gateway_config)."""
    return text + ("  - name: %s\n    account: sim\n%s    keys:\n      - sha256: %s\n"
                   "        permissions: %s\n" % (name, extra, harness.sha256_hex(key), perms))


def add_tls(text, certs, client_ca=False):
    tls = "tls:\n  cert_file: %s\n  key_file: %s\n" % (os.path.join(certs, "server.pem"),
                                                        os.path.join(certs, "server.key"))
    if client_ca:
        tls += "  client_ca_file: %s\n" % os.path.join(certs, "ca.pem")
    return tls + text


def map_cert(text, tenant, cn, perms="[read, write]"):
    """tenants[name=tenant].client_cert = {cn, permissions}."""
    anchor = "  - name: %s\n    account: sim\n" % tenant
    assert anchor in text
    return text.replace(anchor, anchor + "    client_cert: { cn: %s, permissions: %s }\n" % (cn, perms))


def channel_for(addr, tls=None):
    """tls: None (plaintext) or dict(ca=path, cert=path|None, key=path|None)."""
    opts = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250)]
    if tls is None:
        return grpc.insecure_channel(addr, options=opts)

    def rd(p):
        if not p:
            return None
        with open(p, "rb") as f:
            return f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=rd(tls["ca"]),
                                         private_key=rd(tls.get("key")),
                                         certificate_chain=rd(tls.get("cert")))
    return grpc.secure_channel(addr, creds, options=opts)


class OpsGateway(harness.Gateway):
    """harness.Gateway with a config built here (make_config(grpc_port, http_port) -> YAML) and an
    optional TLS client channel. Registered with the stack so teardown stops and checks it."""

    def __init__(self, stack, sim, name, make_config, tls=None, **kw):
        self._ports = (harness.free_port(), harness.free_port())
        self._tls = tls
        self.make_config = make_config
        super().__init__(stack.workdir, sim.url, name=name, config_text=make_config(*self._ports),
                         **kw)
        stack.gateways.append(self)

    def _wait_ready(self, wait_serving):
        from animate3d.v1 import (account_pb2_grpc, characters_pb2_grpc, jobs_pb2_grpc,
                                  webhooks_pb2_grpc)
        from grpc.health.v1 import health_pb2_grpc
        self.grpc_port, self.http_port = self._ports
        self.addr = "127.0.0.1:%d" % self.grpc_port
        self.http_url = "http://127.0.0.1:%d" % self.http_port
        self.channel.close()
        self.channel = channel_for(self.addr, self._tls)
        self.jobs = jobs_pb2_grpc.JobsStub(self.channel)
        self.characters = characters_pb2_grpc.CharactersStub(self.channel)
        self.webhooks = webhooks_pb2_grpc.WebhooksStub(self.channel)
        self.account = account_pb2_grpc.AccountStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        super()._wait_ready(wait_serving)

    def rewrite_config(self, text=None, mode=0o644):
        write_atomic(self.config_path, text if text is not None else self.make_config(*self._ports),
                     mode)

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)


def count_log(gw, pattern):
    return len(re.findall(pattern, gw.log_text()))


def sighup_and_wait(gw, pattern):
    """SIGHUP, then wait for one more log line matching pattern."""
    before = count_log(gw, pattern)
    gw.sighup()
    wait_until(lambda: count_log(gw, pattern) > before, "log line %r after SIGHUP" % pattern)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    p = subprocess.run([MAKE_CERTS, d], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "make-certs failed: %s" % p.stderr
    for f in ("ca.pem", "server.pem", "server.key", "team-a.pem", "team-a.key", "team-b.pem",
              "team-b.key", "rogue.pem", "rogue.key"):
        assert os.path.exists(os.path.join(d, f)), f
    assert stat.S_IMODE(os.stat(os.path.join(d, "server.key")).st_mode) == 0o600
    return d


# ---- /metrics, /healthz, /readyz -----------------------------------------------------------------
@pytest.fixture(scope="module")
def traffic(gateway, sim):
    """Some RPCs with known outcomes on the module's gateway."""
    for _ in range(3):
        credits(gateway)
    gateway.account.GetMinutesBalance(account_pb2.GetMinutesBalanceRequest(), timeout=5,
                                      metadata=gateway.md())
    url = harness.upload_put(gateway, "ops-metrics.mp4", open(harness.TINY_MP4, "rb").read())
    rid = harness.start_job(gateway, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    harness.wait_job(gateway, rid)
    assert rpc_code(lambda: credits(gateway, md=md_key("no-such-key"))) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert rpc_code(lambda: gateway.jobs.GetStatus(
        jobs_pb2.GetStatusRequest(rids=["1" * 22]), timeout=5, metadata=gateway.md())) == \
        grpc.StatusCode.NOT_FOUND
    return dict(rid=rid, url=url)


def test_healthz(gateway):
    st, _, body = harness.http("GET", gateway.http_url + "/healthz")
    assert (st, body.strip()) == (200, b"ok")


def test_readyz_reports_account_state(gateway, traffic):
    st, body = http_json(gateway.http_url + "/readyz")
    assert st == 200, body
    assert body["ready"] is True and body["draining"] is False, body
    assert body["accounts"] == [{"name": "sim", "state": "ok"}], body


def test_metrics_well_formed_and_prefixed(gateway, traffic):
    text, types, samples = settled_metrics(gateway)
    assert samples, text[:500]
    for name, labels, _ in samples:
        # The process_* families keep the Prometheus client conventions' names (issue 20).
        assert name.startswith(PREFIX) or name.startswith("process_"), \
            "metric without the %s prefix: %s" % (PREFIX, name)
        assert family(name, types) in types, "sample %s has no # TYPE line" % name
    assert value(samples, PREFIX + "build_info") == 1
    bi = [l for n, l, _ in samples if n == PREFIX + "build_info"][0]
    assert re.match(r"^\d+\.\d+\.\d+", bi.get("version", "")), bi
    # the replica's instance id: the one its start-up line (and its leases) carry
    ii = [l for n, l, _ in samples if n == PREFIX + "instance_info"]
    assert len(ii) == 1 and ii[0].get("instance"), ii
    assert '"instance":"%s"' % ii[0]["instance"] in gateway.log_text(), ii


def test_metrics_rpc_by_method_code_with_latency(gateway, traffic):
    _, types, samples = settled_metrics(gateway)
    m_credits = "/animate3d.v1.Account/GetCreditBalance"
    m_status = "/animate3d.v1.Jobs/GetStatus"
    assert types.get(PREFIX + "rpc_total") == "counter"
    assert types.get(PREFIX + "rpc_duration_seconds") == "histogram"
    assert value(samples, PREFIX + "rpc_total", method=m_credits, code="OK") >= 3
    assert value(samples, PREFIX + "rpc_total", method=m_credits, code="UNAUTHENTICATED") >= 1
    assert value(samples, PREFIX + "rpc_total", method=m_status, code="NOT_FOUND") >= 1
    assert value(samples, PREFIX + "rpc_total", method=m_status, code="OK") >= 1
    # the wrong key's call has no tenant: tenant="-" (issue 20)
    assert value(samples, PREFIX + "rpc_total", method=m_credits, code="UNAUTHENTICATED",
                 tenant="-") >= 1
    for m in (m_credits, m_status):
        tenants = {l["tenant"] for n, l, _ in samples if n == PREFIX + "rpc_total"
                   and l.get("method") == m}
        assert tenants and tenants <= set(harness.KEYS) | {"-"}, tenants
        for t in tenants:
            total = value(samples, PREFIX + "rpc_total", method=m, tenant=t)
            # the histogram counts every finished call, per tenant and method
            assert check_histogram(samples, PREFIX + "rpc_duration_seconds", method=m,
                                   tenant=t) == total
    assert types.get(PREFIX + "rpc_in_flight") == "gauge"


def test_metrics_upstream_by_route_status_with_latency(gateway, traffic):
    _, types, samples = settled_metrics(gateway)
    assert types.get(PREFIX + "upstream_requests_total") == "counter"
    assert types.get(PREFIX + "upstream_duration_seconds") == "histogram"
    assert value(samples, PREFIX + "upstream_requests_total", route=CREDITS, status="200") >= 3
    assert value(samples, PREFIX + "upstream_requests_total", route="GET /status/{rids}",
                 status="200") >= 1
    assert value(samples, PREFIX + "upstream_requests_total", route=LOGIN, status="200") >= 1
    n = check_histogram(samples, PREFIX + "upstream_duration_seconds", route=CREDITS)
    assert n == value(samples, PREFIX + "upstream_requests_total", route=CREDITS)
    routes = {l["route"] for n_, l, _ in samples if n_ == PREFIX + "upstream_requests_total"}
    for r in routes:    # documented templates only: no rid, no query string
        assert re.match(r"^(GET|POST|PUT|DELETE) [A-Za-z/{}_ ()]*$", r), r


def test_metrics_sessions_per_account(gateway, traffic):
    _, types, samples = settled_metrics(gateway)
    assert value(samples, PREFIX + "session_logins_total", account="sim") >= 1
    assert (PREFIX + "session_refreshes_total") in types
    assert (PREFIX + "session_failures_total") in types
    assert value(samples, PREFIX + "session_failures_total", account="sim") == 0
    assert value(samples, PREFIX + "session_state", account="sim", state="ok") == 1


def test_metrics_labels_carry_no_rid_key_or_secret(gateway, traffic):
    text, _, samples = settled_metrics(gateway)
    for needle in [traffic["rid"], harness.CLIENT_SECRET] + list(harness.KEYS.values()):
        assert needle not in text, "metrics text contains %r" % needle
    assert "X-Goog-Signature" not in text and "dmsess" not in text
    for name, labels, _ in samples:
        for k, v in labels.items():
            assert not RID_RX.search(v), "label %s=%r of %s looks like a rid" % (k, v, name)
            assert "?" not in v, "label %s=%r of %s carries a query" % (k, v, name)


# ---- SIGHUP: configuration ------------------------------------------------------------------------
def test_sighup_valid_config_adds_key_without_restart(stack, sim):
    new_key = "ops-reload-key-" + secrets.token_hex(8)
    gw = OpsGateway(stack, sim, "gw-reload",
                    lambda g, h: base_config(g, h, sim.url, stack.workdir, "gw-reload"))
    pid = gw.proc.pid
    assert rpc_code(lambda: credits(gw, md=md_key(new_key))) == grpc.StatusCode.UNAUTHENTICATED
    text = add_tenant(gw.make_config(*gw._ports), "team-c", new_key)
    gw.rewrite_config(text)
    sighup_and_wait(gw, r'"configuration reloaded"')
    assert credits(gw, md=md_key(new_key)).credits > 0
    assert credits(gw).credits > 0                      # old keys still work
    assert gw.proc.poll() is None and gw.proc.pid == pid
    _, _, samples = settled_metrics(gw)
    assert value(samples, PREFIX + "reloads_total", result="ok") == 1
    assert new_key not in gw.log_text()

    # A broken file: every error logged with its line, the running configuration kept.
    gw.rewrite_config(text.replace("account: sim", "account: nope", 1) + "  - [broken\n")
    sighup_and_wait(gw, r'"invalid configuration, keeping the old one"')
    errors = [l for l in log_lines(gw) if l.get("event") == "reload" and l.get("level") == "error"
              and "error" in l]
    assert any(re.search(r"gw-reload\.yaml:\d+: ", l["error"]) for l in errors), errors
    assert credits(gw, md=md_key(new_key)).credits > 0
    assert credits(gw).credits > 0
    _, _, samples = settled_metrics(gw)
    assert value(samples, PREFIX + "reloads_total", result="failed") == 1
    st, body = http_json(gw.http_url + "/readyz")
    assert st == 200 and body["ready"] is True, body


def test_sighup_account_change_needs_restart(stack, sim):
    gw = OpsGateway(stack, sim, "gw-reload-acct",
                    lambda g, h: base_config(g, h, sim.url, stack.workdir, "gw-reload-acct"))
    gw.rewrite_config(gw.make_config(*gw._ports).replace("client_id: %s" % harness.CLIENT_ID,
                                                          "client_id: someone-else"))
    sighup_and_wait(gw, r'restart the gateway to apply')
    assert credits(gw).credits > 0


def test_sighup_listener_change_waits_for_restart(stack, sim):
    gw = OpsGateway(stack, sim, "gw-reload-listen",
                    lambda g, h: base_config(g, h, sim.url, stack.workdir, "gw-reload-listen"))
    other = harness.free_port()
    gw.rewrite_config(gw.make_config(gw.grpc_port, other))
    sighup_and_wait(gw, r'"key":"listen.http","msg":"changed: takes effect at the next restart"')
    assert harness.http("GET", gw.http_url + "/healthz")[0] == 200     # still the old listener
    assert credits(gw).credits > 0


# ---- SIGHUP: secret files -------------------------------------------------------------------------
def test_sighup_rereads_secret_file(stack):
    sim = stack.sim(name="sim-rotate")
    secret_path = os.path.join(stack.workdir, "rotate.secret")
    write_atomic(secret_path, "not-the-right-secret\n", 0o600)
    gw = OpsGateway(stack, sim, "gw-rotate",
                    lambda g, h: base_config(g, h, sim.url, stack.workdir, "gw-rotate",
                                             secret_file=secret_path))
    code = rpc_code(lambda: credits(gw))
    assert code == grpc.StatusCode.UNAVAILABLE, code
    st, body = http_json(gw.http_url + "/readyz")
    assert st == 503 and body["accounts"][0]["state"] == "rejected", body

    write_atomic(secret_path, harness.CLIENT_SECRET + "\n", 0o600)     # the rotation
    gw.sighup()
    wait_until(lambda: rpc_code(lambda: credits(gw)) == grpc.StatusCode.OK,
               "calls work after the secret file was rotated and SIGHUP")
    st, body = http_json(gw.http_url + "/readyz")
    assert st == 200 and body["accounts"][0]["state"] == "ok", body

    # A secret file others may read is refused on reload too; the old (good) secret stays.
    write_atomic(secret_path, "leaky-" + secrets.token_hex(6) + "\n", 0o644)
    sighup_and_wait(gw, r"group/world-accessible")
    sim.revoke()            # forces a fresh login, which must still use the good secret
    assert credits(gw).credits > 0
    write_atomic(secret_path, harness.CLIENT_SECRET + "\n", 0o600)


# ---- secret file modes at start ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_public_secret_file_refused_at_start(tmp_path, sim, mode):
    secret = "canary-mode-" + secrets.token_hex(8)
    path = str(tmp_path / "client.secret")
    write_atomic(path, secret + "\n", mode)
    cfg = str(tmp_path / "gw.yaml")
    with open(cfg, "w") as f:
        f.write(harness.gateway_config(harness.free_port(), harness.free_port(), sim.url,
                                       str(tmp_path / "gw.db"), secret_file=path))
    env = {k: v for k, v in os.environ.items() if k != harness.SECRET_ENV}
    p = subprocess.run([harness.GATEWAY_BIN, "-c", cfg], capture_output=True, text=True, timeout=15,
                       env=env, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 1, (p.returncode, out)
    assert "%s is group/world-accessible (mode %04o); chmod 600 it" % (path, mode) in out, out
    assert secret not in out


def test_private_secret_file_accepted(stack, sim):
    path = os.path.join(stack.workdir, "private.secret")
    write_atomic(path, harness.CLIENT_SECRET + "\n", 0o400)
    gw = OpsGateway(stack, sim, "gw-private-secret",
                    lambda g, h: base_config(g, h, sim.url, stack.workdir, "gw-private-secret",
                                             secret_file=path))
    assert credits(gw).credits > 0


# ---- SIGTERM drain ----------------------------------------------------------------------------------
def test_sigterm_drains_in_flight_call(stack):
    sim = stack.sim(name="sim-drain")
    gw = stack.gateway(sim, name="gw-drain", extra_args=["--grace-ms", "8000"])
    credits(gw)                                 # a session exists
    watch = gw.health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    before = sim.count(CREDITS)
    sim.faults(CREDITS, latency_ms=2500, count=1)
    fut = gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(), timeout=20,
                                              metadata=gw.md())
    wait_until(lambda: sim.count(CREDITS) > before, "the slow call reached the upstream")
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)

    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    st, body = http_json(gw.http_url + "/readyz")
    assert st == 503 and body["draining"] is True, body
    fresh = channel_for(gw.addr)
    try:
        code = rpc_code(lambda: credits(gw, channel=fresh, timeout=2))
        assert code == grpc.StatusCode.UNAVAILABLE, code     # no new calls while draining
    finally:
        fresh.close()

    r = fut.result(timeout=20)                  # the in-flight call completes normally
    assert r.credits > 0
    rc = gw.proc.wait(timeout=harness.STOP_TIMEOUT_S)
    assert rc == 0, gw.log_text()[-2000:]
    assert time.monotonic() - t0 < 8.0
    assert '"draining"' in gw.log_text() and '"SIGTERM"' in gw.log_text()
    assert rpc_log(gw, "GetCreditBalance")[-1]["grpc_status"] == 0


def test_sigterm_grace_over_cancels_calls(stack):
    sim = stack.sim(name="sim-grace")
    gw = stack.gateway(sim, name="gw-grace", extra_args=["--grace-ms", "300"])
    credits(gw)
    before = sim.count(CREDITS)
    sim.faults(CREDITS, latency_ms=8000, count=1)
    fut = gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(), timeout=20,
                                              metadata=gw.md())
    wait_until(lambda: sim.count(CREDITS) > before, "the slow call reached the upstream")
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.RpcError) as e:
        fut.result(timeout=10)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e.value
    assert gw.proc.wait(timeout=harness.STOP_TIMEOUT_S) == 0
    assert time.monotonic() - t0 < 5.0, "drain did not stop at the grace period"
    assert "grace period over" in gw.log_text()


# ---- TLS and mTLS -----------------------------------------------------------------------------------
def test_tls_server_certificate(stack, sim, certs):
    gw = OpsGateway(stack, sim, "gw-tls",
                    lambda g, h: add_tls(base_config(g, h, sim.url, stack.workdir, "gw-tls"), certs),
                    tls=dict(ca=os.path.join(certs, "ca.pem")))
    assert credits(gw).credits > 0
    plain = channel_for(gw.addr)
    try:
        assert rpc_code(lambda: credits(gw, channel=plain, timeout=2)) == \
            grpc.StatusCode.UNAVAILABLE
    finally:
        plain.close()
    # A client that does not trust the test CA refuses the server.
    other = channel_for(gw.addr, dict(ca=os.path.join(certs, "rogue-ca.pem")))
    try:
        assert rpc_code(lambda: credits(gw, channel=other, timeout=2)) == \
            grpc.StatusCode.UNAVAILABLE
    finally:
        other.close()
    assert '"tls":"tls"' in gw.log_text()


@pytest.fixture(scope="module")
def mtls(stack, sim, certs):
    def cfg(g, h):
        text = base_config(g, h, sim.url, stack.workdir, "gw-mtls")
        return add_tls(map_cert(text, "team-a", "team-a"), certs, client_ca=True)
    gw = OpsGateway(stack, sim, "gw-mtls", cfg, tls=dict(ca=os.path.join(certs, "ca.pem")))

    def chan(who):
        if who is None:
            return channel_for(gw.addr, dict(ca=os.path.join(certs, "ca.pem")))
        return channel_for(gw.addr, dict(ca=os.path.join(certs, "ca.pem"),
                                         cert=os.path.join(certs, who + ".pem"),
                                         key=os.path.join(certs, who + ".key")))
    chans = {}

    def get(who):
        if who not in chans:
            chans[who] = chan(who)
        return chans[who]
    yield gw, get
    for c in chans.values():
        c.close()


def _minutes(channel, md, timeout=5):
    from animate3d.v1 import account_pb2_grpc
    return account_pb2_grpc.AccountStub(channel).GetMinutesBalance(
        account_pb2.GetMinutesBalanceRequest(), timeout=timeout, metadata=md)


def _last_tenant(gw):
    lines = rpc_log(gw, "GetMinutesBalance")
    assert lines, "no access-log line for GetMinutesBalance"
    return lines[-1]["tenant"]


@pytest.mark.parametrize("cert,key,want_code,want_tenant", [
    ("team-a", None, grpc.StatusCode.OK, "team-a"),            # mapped cert, no key
    ("team-b", None, grpc.StatusCode.UNAUTHENTICATED, None),   # valid cert, mapped to nobody
    (None, None, grpc.StatusCode.UNAUTHENTICATED, None),       # no cert, no key
    (None, "team-b", grpc.StatusCode.OK, "team-b"),            # no cert, key
    ("team-a", "team-b", grpc.StatusCode.OK, "team-b"),        # the key wins over the cert
    ("team-a", "bad", grpc.StatusCode.UNAUTHENTICATED, None),  # a wrong key is not rescued
])
def test_mtls_cert_maps_to_tenant(mtls, cert, key, want_code, want_tenant):
    gw, chan = mtls
    md = [] if key is None else (md_key("not-a-key") if key == "bad" else gw.md(key))
    code = rpc_code(lambda: _minutes(chan(cert), md))
    assert code == want_code
    if want_tenant:
        wait_until(lambda: _last_tenant(gw) == want_tenant, "access log names %s" % want_tenant,
                   timeout=2)


def _check_config(tmp_path, text):
    path = str(tmp_path / "gw.yaml")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([harness.GATEWAY_BIN, "--check-config", "-c", path], capture_output=True,
                       text=True, timeout=15, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("mutate,error", [
    (lambda t, c: add_tls(map_cert(t, "team-a", "team-a"), c, client_ca=True), None),
    (lambda t, c: add_tls(map_cert(t, "team-a", "team-a"), c),
     r"gw\.yaml:\d+: tenants\[0\]\.client_cert needs tls\.client_ca_file"),
    (lambda t, c: add_tls(map_cert(map_cert(t, "team-a", "svc"), "team-b", "svc"), c, client_ca=True),
     r"gw\.yaml:\d+: tenants\[1\]\.client_cert\.cn \"svc\" is already tenant \"team-a\"'s"),
    (lambda t, c: add_tls(t.replace("  - name: team-a\n    account: sim\n",
                                    "  - name: team-a\n    account: sim\n    client_cert: { cn: x }\n"),
                          c, client_ca=True),
     r"gw\.yaml:\d+: tenants\[0\]\.client_cert\.permissions is required"),
    (lambda t, c: add_tls(map_cert(t, "team-a", "team-a", perms="[owner]"), c, client_ca=True),
     r"gw\.yaml:\d+: tenants\[0\]\.client_cert\.permissions\[0\]: unknown permission"),
])
def test_client_cert_config_checked(tmp_path, sim, certs, mutate, error):
    text = mutate(harness.gateway_config(1, 2, sim.url, str(tmp_path / "gw.db")), certs)
    rc, out = _check_config(tmp_path, text)
    if error is None:
        assert (rc, out.strip()) == (0, "configuration OK"), out
    else:
        assert rc == 1 and re.search(error, out), out


def test_mtls_cert_of_another_ca_refused(mtls):
    gw, chan = mtls
    code = rpc_code(lambda: _minutes(chan("rogue"), [], timeout=3))
    assert code == grpc.StatusCode.UNAVAILABLE, code
    assert '"tls":"mtls"' in gw.log_text()


# ---- the canary run ---------------------------------------------------------------------------------
def _b64_forms(s):
    raw = s.encode()
    out = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        v = enc(raw).decode()
        out.add(v)
        out.add(v.rstrip("="))
    return out


def test_canary_secrets_never_leak(stack, tmp_path):
    canary_id = "canary-id"
    canary_secret = "CANARY-secret-" + secrets.token_hex(12)
    keys = {t: "CANARY-key-%s-%s" % (t, secrets.token_hex(8)) for t in harness.KEYS}
    wrong_key = "CANARY-wrong-" + secrets.token_hex(8)
    sim = stack.sim(name="sim-canary", accounts=["%s:%s" % (canary_id, canary_secret)])

    def cfg(g, h):
        text = base_config(g, h, sim.url, stack.workdir, "gw-canary")
        text = text.replace("client_id: %s" % harness.CLIENT_ID, "client_id: %s" % canary_id)
        text = text.replace("level: info", "level: debug")      # the chattiest the gateway gets
        for t, k in harness.KEYS.items():
            text = text.replace(harness.sha256_hex(k), harness.sha256_hex(keys[t]))
        return text
    gw = OpsGateway(stack, sim, "gw-canary", cfg, secret=canary_secret)
    md = md_key(keys["team-a"])
    video = open(harness.TINY_MP4, "rb").read()
    urls = []

    # uploads (both ways), video info, a job to the end, downloads, listing
    up = gw.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(name="canary.mp4", resumable=False),
                              timeout=5, metadata=md)
    urls.append(up.url)
    assert harness.put_bytes(up.url, video) == 200

    def chunks():
        yield jobs_pb2.UploadVideoRequest(name="canary-stream.mp4", size=len(video))
        yield jobs_pb2.UploadVideoRequest(chunk=video)
    streamed = gw.jobs.UploadVideo(chunks(), timeout=30, metadata=md)
    urls.append(streamed.url)
    info = gw.jobs.GetVideoInfo(jobs_pb2.GetVideoInfoRequest(upload_url=streamed.url), timeout=5,
                                metadata=md)
    assert info.width > 0
    rid = gw.jobs.StartJob(jobs_pb2.StartJobRequest(upload_url=up.url,
                                                    params=jobs_pb2.Params(formats=["bvh", "fbx"])),
                           timeout=5, metadata=md).rid

    def done():
        r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=md)
        return r.statuses[0].state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE) and r.statuses[0]
    assert wait_until(done, "canary job finished", timeout=20, period=0.2).state == jobs_pb2.SUCCESS
    dl = gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), timeout=5, metadata=md)
    files = [f.url for l in dl.links for g in l.groups for f in g.files]
    assert files
    urls += files
    assert harness.http("GET", files[0])[0] == 200
    assert rid in [j.rid for j in gw.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5,
                                                   metadata=md).jobs]

    # models
    mu = gw.characters.GetModelUploadUrl(characters_pb2.GetModelUploadUrlRequest(
        name="canary-hero", model_ext="fbx", thumb_ext="png", resumable=False), timeout=5, metadata=md)
    urls += [mu.model_url, mu.thumb_url]
    assert harness.put_bytes(mu.model_url, b"Kaydara FBX Binary  \x00" + bytes(64)) == 200
    assert harness.put_bytes(mu.thumb_url, b"\x89PNG\r\n\x1a\n" + bytes(64)) == 200
    mid = gw.characters.StoreModel(characters_pb2.StoreModelRequest(
        model_url=mu.model_url, model_name="canary-hero", thumb_url=mu.thumb_url),
        timeout=5, metadata=md).model_id
    listed = gw.characters.ListModels(characters_pb2.ListModelsRequest(include_stock=True),
                                      timeout=5, metadata=md).models
    urls += [m.thumb for m in listed if m.thumb]
    gw.characters.DeleteModel(characters_pb2.DeleteModelRequest(model_id=mid), timeout=5, metadata=md)

    # webhooks
    ep = gw.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(
        url="http://127.0.0.1:9/canary-hook", events=["job.completed"]), timeout=5, metadata=md)
    gw.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5, metadata=md)
    gw.webhooks.UpdateEndpoint(webhooks_pb2.UpdateEndpointRequest(
        id=ep.id, url="http://127.0.0.1:9/canary-hook2", events=["job.completed"]),
        timeout=5, metadata=md)
    gw.webhooks.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id=ep.id), timeout=5, metadata=md)

    # a forced re-login, balances, and calls that are refused
    logins = sim.count(LOGIN)
    sim.revoke()
    assert credits(gw, md=md).credits > 0
    assert sim.count(LOGIN) > logins, "revoke did not force a re-login"
    gw.account.GetMinutesBalance(account_pb2.GetMinutesBalanceRequest(), timeout=5,
                                 metadata=md_key(keys["team-b"]))
    assert rpc_code(lambda: credits(gw, md=md_key(wrong_key))) == grpc.StatusCode.UNAUTHENTICATED
    assert rpc_code(lambda: gw.jobs.StartJob(jobs_pb2.StartJobRequest(upload_url=up.url), timeout=5,
                                             metadata=md_key(keys["viewer"]))) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(lambda: credits(gw, md=[("authorization", "Basic " + base64.b64encode(
        ("%s:%s" % (canary_id, canary_secret)).encode()).decode())])) == \
        grpc.StatusCode.UNAUTHENTICATED

    # dmsess values the simulator issued: ours (the gateway's are only known by their shape)
    cookies = [sim.login(canary_id, canary_secret).split("=", 1)[1] for _ in range(2)]
    metrics_text = metrics(gw)[0]
    ready_text = harness.http("GET", gw.http_url + "/readyz")[2].decode()
    rc, killed = gw.stop()
    assert (rc, killed) == (0, False)
    sim.stop()

    texts = {"gateway log": gw.log_text(), "sim log": harness.read_text(sim.log_path),
             "/metrics": metrics_text, "/readyz": ready_text}
    assert '"level":"debug"' in texts["gateway log"] or '"upstream"' in texts["gateway log"]
    signatures = set()
    for u in urls:
        signatures.update(re.findall(r"X-Goog-Signature=([0-9a-fA-F]+)", u))
    assert signatures, "no signed URL seen in the flow"
    needles = {canary_secret: "client secret", wrong_key: "wrong API key"}
    for form in _b64_forms("%s:%s" % (canary_id, canary_secret)) | _b64_forms(canary_secret):
        needles[form] = "base64 of the secret"
    for t, k in keys.items():
        needles[k] = "API key of %s" % t
        for form in _b64_forms(k):
            needles[form] = "base64 of an API key"
    for c in cookies:
        needles[c] = "dmsess value"
    for s in signatures:
        needles[s] = "URL signature"
    hits = []
    for where, text in texts.items():
        for needle, what in needles.items():
            if needle in text:
                hits.append("%s in %s" % (what, where))
        for rx, what in [(r"dmsess=[^;\s\"',]{4,}", "dmsess cookie"),
                         (r"X-Goog-Signature=", "signed URL query"),
                         (r"(?i)authorization[\"':= ]+basic", "Basic header"),
                         (r"(?<![1-9A-HJ-NP-Za-km-z])[1-9A-HJ-NP-Za-km-z]{44}(?![1-9A-HJ-NP-Za-km-z])",
                          "44-character base58 token (a dmsess value?)")]:
            if re.search(rx, text):
                hits.append("%s in %s" % (what, where))
    assert not hits, "leaks: %s" % "; ".join(sorted(set(hits)))
