"""Client certificates on the REST facade (issue 18): listen.rest with tls.client_ca_file asks for
client certificates as the gRPC listener does (test_ops.py, test_mtls_cert_maps_to_tenant): a
verified certificate whose CN names a tenant (tenants[].client_cert) calls as that tenant with
client_cert.permissions; a key or a session wins over it; an unmapped certificate is 401 in
upstream's error shape; one from another CA fails the handshake. Each refusal counted in
rest_rejected_total{reason}. The client is curl; certificates are made at test time.
"""
import json
import os
import socket
import ssl
import subprocess

import pytest

import harness
from test_rest import P, TlsRestGateway, is_upstream_error, leave_during_call

CERT_TENANT = """\
  - name: svc
    account: sim
    client_cert: { cn: team-a, permissions: [read] }
    keys: []
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("rest-mtls-certs"))
    p = subprocess.run([os.path.join(harness.REPO, "tests", "lib", "make-certs"), d],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture(scope="module")
def gw(stack, sim, certs):
    tls = "tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n" % (
        os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"),
        os.path.join(certs, "ca.pem"))
    g = TlsRestGateway(stack.workdir, sim.url, name="rest-mtls", rest=True, extra_top=tls,
                       extra_tenants=CERT_TENANT)
    stack.gateways.append(g)
    return g


def curl(gw, certs, path, cert=None, key=None):
    """curl over TLS with the test CA -> (exit code, HTTP status or None, parsed JSON or None)."""
    args = ["curl", "-sS", "--max-time", "10", "--cacert", os.path.join(certs, "ca.pem"),
            "-o", "-", "-w", "\n%{http_code}"]
    if cert:
        args += ["--cert", os.path.join(certs, cert + ".pem"),
                 "--key", os.path.join(certs, cert + ".key")]
    if key:
        args += ["-H", "Authorization: Bearer " + key]
    args.append("https://127.0.0.1:%d%s" % (gw.rest_port, path))
    p = subprocess.run(args, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    body, _, code = p.stdout.rpartition("\n")
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    return p.returncode, (int(code) if code.isdigit() and code != "000" else None), doc


def last_rpc(gw, method):
    """The last access-log line of a call of method."""
    lines = []
    for x in harness.read_text(gw.log_path).splitlines():
        try:
            doc = json.loads(x)
        except ValueError:
            continue
        if doc.get("event") == "rpc" and str(doc.get("method", "")).endswith(method):
            lines.append(doc)
    return lines[-1] if lines else None


@pytest.mark.parametrize("cert,key,status,tenant,auth,reason", [
    ("team-a", None, 200, "svc", "cert", None),               # mapped certificate, no key
    ("team-b", None, 401, None, None, "cert_unknown"),        # verified, mapped to nobody
    (None, None, 401, None, None, "unauthenticated"),         # nothing at all
    ("team-a", "team-b", 200, "team-b", "key", None),         # the key wins over the certificate
    ("team-a", "not-a-key", 401, None, None, None),           # a wrong key is not rescued
])
def test_client_certificate_maps_to_tenant(gw, certs, cert, key, status, tenant, auth, reason):
    before = harness.metrics(gw)
    rc, st, doc = curl(gw, certs, "/account/creditBalance", cert=cert,
                       key=harness.KEYS.get(key, key) if key else None)
    assert rc == 0 and st == status, (rc, st, doc)
    if status == 200:
        assert "credits" in doc, doc
        line = last_rpc(gw, "GetCreditBalance")
        assert line and line["tenant"] == tenant and line["auth"] == auth, line
    else:
        assert is_upstream_error(doc, 401), doc
    after = harness.metrics(gw)
    for r in ("cert_unknown", "unauthenticated", "cert_invalid"):
        k = P + 'rest_rejected_total{reason="%s"}' % r
        assert after[k] - before.get(k, 0) == (1 if r == reason else 0), r


def test_certificate_of_another_ca_fails_the_handshake(gw, certs):
    k = P + 'rest_rejected_total{reason="cert_invalid"}'
    before = harness.metrics(gw).get(k, 0)
    rc, st, _ = curl(gw, certs, "/account/creditBalance", cert="rogue")
    assert rc != 0 and st is None, (rc, st)
    assert harness.metrics(gw)[k] == before + 1


def test_certificate_tenant_has_its_permissions(gw, certs):
    rc, st, doc = curl(gw, certs, "/upload?name=c.mp4", cert="team-a")    # svc may only read
    assert rc == 0 and st == 403 and is_upstream_error(doc, 403), (st, doc)
    assert '"tls":"mtls"' in harness.read_text(gw.log_path)


def test_tls_client_that_leaves_cancels_its_call(gw, sim, certs):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))

    def connect():
        raw = socket.create_connection(("127.0.0.1", gw.rest_port), 5)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    leave_during_call(gw, sim, connect)


@pytest.fixture(scope="module")
def gw_required(stack, sim, certs):
    tls = ("tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n"
           "  client_cert_required: true\n") % (
        os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"),
        os.path.join(certs, "ca.pem"))
    g = TlsRestGateway(stack.workdir, sim.url, name="rest-mtls-required", rest=True, extra_top=tls,
                       extra_tenants=CERT_TENANT)
    stack.gateways.append(g)
    return g


@pytest.mark.parametrize("cert,key,status,reason", [
    (None, "team-a", 401, "cert_missing"),      # a key is not enough when certificates are required
    (None, None, 401, "cert_missing"),
    ("team-a", None, 200, None),                # the mapped certificate
    ("team-b", "team-b", 200, None),            # a certificate, and the key decides the tenant
    ("team-b", None, 401, "cert_unknown"),
])
def test_required_client_certificate_on_rest(gw_required, certs, cert, key, status, reason):
    gw = gw_required
    before = harness.metrics(gw)
    rc, st, doc = curl(gw, certs, "/account/creditBalance", cert=cert,
                       key=harness.KEYS[key] if key else None)
    assert rc == 0 and st == status, (rc, st, doc)
    if status != 200:
        assert is_upstream_error(doc, status), doc
    after = harness.metrics(gw)
    for r in ("cert_missing", "cert_unknown", "unauthenticated"):
        k = P + 'rest_rejected_total{reason="%s"}' % r
        assert after[k] - before.get(k, 0) == (1 if r == reason else 0), r


def test_required_client_certificate_on_grpc(gw_required, certs):
    """The same key on the gRPC listener: the handshake refuses a client without a certificate."""
    import grpc
    from test_ops import credits, md_key, rpc_code

    def channel(cert=None):
        def rd(name):
            with open(os.path.join(certs, name), "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=rd("ca.pem"), private_key=rd(cert + ".key") if cert else None,
            certificate_chain=rd(cert + ".pem") if cert else None)
        # Its own subchannels: a failed handshake of one channel must not answer for the other.
        return grpc.secure_channel(gw_required.addr, creds,
                                   options=[("grpc.use_local_subchannel_pool", 1)])
    md = md_key(harness.KEYS["team-a"])
    with_cert, bare = channel("team-a"), channel()
    try:
        assert rpc_code(lambda: credits(gw_required, md, channel=with_cert)) == grpc.StatusCode.OK
        assert rpc_code(lambda: credits(gw_required, md, channel=bare, timeout=3)) == \
            grpc.StatusCode.UNAVAILABLE
    finally:
        bare.close()
        with_cert.close()
