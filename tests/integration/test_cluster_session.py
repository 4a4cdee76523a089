"""One upstream session for three replicas (issue 16): the cookie is shared through Redis, sealed.

Runs under tests/lib/with-redis and tests/lib/with-postgres (ctest integration.cluster_session);
skipped without them. One simulator, three gateway replicas on one PostgreSQL and one Redis:
- start: one login in total, not three;
- /_sim/sessions/revoke, then 200 concurrent calls per replica: exactly one login in total;
- Redis holds the cookie sealed only (its values never contain it), no log holds it;
- Redis killed: calls still work (local logins, fallback counted); Redis back: shared again.
The figures are printed (pytest -s shows them; ctest prints them on failure).
"""
import os
import re
import subprocess
import time

import grpc
import pytest

import harness
from harness import account_pb2

pytestmark = pytest.mark.skipif(
    not (os.environ.get("A3D_REDIS_PORT") and os.environ.get("A3D_PG_PORT")),
    reason="needs tests/lib/with-redis and tests/lib/with-postgres")

LOGIN = "GET /session/auth"
REPLICAS = 3
CALLS = 200
WAIT_S = 15.0


def _cluster_config(gw_grpc, gw_http, sim_url, workdir, seal_key_file):
    text = harness.gateway_config(gw_grpc, gw_http, sim_url, os.path.join(workdir, "unused.db"))
    text, n = re.subn(r"state:\n  path: [^\n]*\n",
                      "state:\n  postgres:\n"
                      "    dsn: \"hostaddr=127.0.0.1 port=%s dbname=%s user=%s\"\n"
                      "    password_file: %s\n"
                      % (os.environ["A3D_PG_PORT"], os.environ["A3D_PG_DB"],
                         os.environ["A3D_PG_USER"], os.environ["A3D_PG_PASSWORD_FILE"]), text)
    assert n == 1, "the state: block of harness.gateway_config changed"
    redis = ("cluster:\n  expected_replicas: %d\n"
             "redis:\n  url: redis://127.0.0.1:%s/0\n" % (REPLICAS, os.environ["A3D_REDIS_PORT"]))
    if os.environ.get("A3D_REDIS_PASSWORD_FILE") and os.path.getsize(os.environ["A3D_REDIS_PASSWORD_FILE"]):
        redis += "  password_file: %s\n" % os.environ["A3D_REDIS_PASSWORD_FILE"]
    redis += "  seal_key_file: %s\n" % seal_key_file
    return text + redis


def _redis_cli(*args):
    cmd = ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", os.environ["A3D_REDIS_PORT"]]
    pw = os.environ.get("A3D_REDIS_PASSWORD_FILE")
    if pw and os.path.getsize(pw):
        with open(pw) as f:
            cmd += ["-a", f.read().strip()]
    return subprocess.run(cmd + list(args), capture_output=True, timeout=10, check=True).stdout


def _redis_ctl(what):
    subprocess.run([os.environ["A3D_REDIS_CTL"], what], check=True, timeout=30)


def _redis_values():
    """{key: raw value} of every string key in Redis."""
    out = {}
    for key in _redis_cli("--scan").split(b"\n"):
        if not key:
            continue
        if _redis_cli("TYPE", key).strip() == b"string":
            raw = _redis_cli("--raw", "GET", key)
            # redis-cli --raw appends exactly one newline; a sealed blob may itself end in
            # 0x0a (one in 256), so strip that one byte only, never rstrip.
            assert raw.endswith(b"\n"), raw
            out[key.decode()] = raw[:-1]
    return out


def _shared(gw, what):
    return int(sum(v for k, v in harness.metrics(gw).items()
                   if k.startswith("animate3d_gateway_session_shared_total{")
                   and 'what="%s"' % what in k))


def _redis_connected(gw):
    m = harness.metrics(gw)
    return any(v == 1 for k, v in m.items() if "redis_connections" in k and "command" in k)


def _burst(gws, n=CALLS):
    """n concurrent GetCreditBalance on every replica; -> list of errors."""
    futs = [gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(), timeout=30,
                                               metadata=gw.md())
            for _ in range(n) for gw in gws]
    errors = []
    for f in futs:
        try:
            f.result(timeout=40)
        except grpc.RpcError as e:
            errors.append((e.code(), e.details()))
    return errors


def _open_sealed(key_bytes, keyname, blob):
    """The Python twin of auth/upstream/seal.c + session_shared.c: -> (expiry_ms, cookie)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    assert blob[0] == 1, "seal version"
    plain = AESGCM(key_bytes).decrypt(blob[1:13], blob[13:], bytes([1]) + keyname.encode())
    exp, cookie = plain.decode().split(":", 1)
    return int(exp), cookie


@pytest.fixture(scope="module")
def cluster(stack):
    sim = stack.sim(name="sim-cluster")
    key = os.urandom(32)
    key_path = os.path.join(stack.workdir, "seal.key")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, key)
    os.close(fd)
    gws = []
    for i in range(REPLICAS):
        g, h = harness.free_port(), harness.free_port()
        text = _cluster_config(g, h, sim.url, stack.workdir, key_path)
        gws.append(stack.gateway(sim, name="replica%d" % i, config_text=text, grpc_port=g,
                                 http_port=h))
    return sim, gws, key


def test_start_one_login(cluster):
    sim, gws, _ = cluster
    errors = _burst(gws, 5)
    assert not errors, errors[:3]
    logins = sim.count(LOGIN)
    adopted = sum(_shared(g, "adopted") for g in gws)
    print("\ncluster_session start: replicas=%d upstream_logins=%d adopted=%d"
          % (REPLICAS, logins, adopted))
    assert logins == 1, "%d logins for %d replicas" % (logins, REPLICAS)
    assert adopted == REPLICAS - 1


def test_revoke_then_200_calls_per_replica_one_login(cluster):
    sim, gws, _ = cluster
    before = sim.count(LOGIN)
    sim.revoke()
    t0 = time.monotonic()
    errors = _burst(gws)
    took = time.monotonic() - t0
    logins = sim.count(LOGIN) - before
    print("\ncluster_session revoke: calls=%d errors=%d upstream_logins=%d seconds=%.2f "
          "lock_lost=%d adopted=%d" % (CALLS * REPLICAS, len(errors), logins, took,
                                       sum(_shared(g, "lock_lost") for g in gws),
                                       sum(_shared(g, "adopted") for g in gws)))
    assert not errors, "%d failed, first: %s" % (len(errors), errors[:3])
    assert logins == 1


def test_cookie_sealed_in_redis_and_never_logged(cluster):
    sim, gws, key = cluster
    values = _redis_values()
    sealed = {k: v for k, v in values.items() if re.match(r"^a3d:session:[^:]+$", k)}
    assert list(sealed) == ["a3d:session:sim"], sorted(values)
    keyname, blob = next(iter(sealed.items()))
    exp_ms, cookie = _open_sealed(key, keyname, blob)
    assert exp_ms > time.time() * 1000
    # It is the live session: the simulator accepts it.
    sim.get_json("/character/listModels", "dmsess=" + cookie)
    for k, v in values.items():
        assert cookie.encode() not in v, "cookie in clear under %s" % k
        assert cookie not in k, "cookie in a key name"
    for g in gws:
        assert cookie not in g.log_text(), "cookie in the log of %s" % g.name
    # Under another account's key name (the AAD) it does not open.
    from cryptography.exceptions import InvalidTag
    with pytest.raises(InvalidTag):
        _open_sealed(key, "a3d:session:other", blob)
    print("\ncluster_session redis: keys=%s sealed_bytes=%d cookie_in_clear=0"
          % (sorted(values), len(blob)))


def test_redis_down_local_fallback_then_shared_again(cluster):
    sim, gws, _ = cluster
    fallback0 = sum(_shared(g, "fallback") for g in gws)
    _redis_ctl("kill")
    try:
        before = sim.count(LOGIN)
        sim.revoke()
        errors = _burst(gws, 50)
        down_logins = sim.count(LOGIN) - before
        fallbacks = sum(_shared(g, "fallback") for g in gws) - fallback0
        print("\ncluster_session redis down: calls=%d errors=%d upstream_logins=%d fallbacks=%d"
              % (50 * REPLICAS, len(errors), down_logins, fallbacks))
        assert not errors, "%d failed, first: %s" % (len(errors), errors[:3])
        assert 1 <= down_logins <= REPLICAS
        assert fallbacks >= 1
    finally:
        _redis_ctl("start")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not all(_redis_connected(g) for g in gws):
        time.sleep(0.1)
    assert all(_redis_connected(g) for g in gws), "replicas did not reconnect to Redis"
    before = sim.count(LOGIN)
    sim.revoke()
    errors = _burst(gws)
    logins = sim.count(LOGIN) - before
    print("cluster_session redis back: calls=%d errors=%d upstream_logins=%d"
          % (CALLS * REPLICAS, len(errors), logins))
    assert not errors, "%d failed, first: %s" % (len(errors), errors[:3])
    assert logins == 1
