"""REST facade sessions in the state store (issue 18): a `dmsess` cookie is a random token whose
SHA-256 only is stored, with its tenant, the SHA-256 of its key and its expiry.

On SQLite (integration.gateway): the session outlives a restart of the gateway; a row whose expiry
has passed opens nothing; the file holds the token's hash, never the token.

On PostgreSQL (integration.postgres, two replicas sharing it): a session opened through one replica
works through the other; a key removed by a reload of one replica ends its sessions there at once
and on the other, whose key ring still has the key, within its session cache's time
(GW_REST_SESS_CACHE_TTL_MS, 2 s; waited for up to WAIT_S); an expired row opens nothing on either
and the sweeps remove it; a store that is down answers 503 with Retry-After, never 500.

Every wait is bounded in time; everything listens on 127.0.0.1.
"""
import base64
import hashlib
import os
import re
import signal
import sqlite3
import time

import pytest

import harness

P = "animate3d_gateway_"
ROT_KEY = "demo-key-rotating-sess"
ROT_TENANT = """\
  - name: rot
    account: sim
    keys:
      - sha256: {}
        permissions: [read]
""".format(harness.sha256_hex(ROT_KEY))
WAIT_S = 10.0           # for what the cache TTL (2 s) or a reload bounds
SWEEP_WAIT_S = 30.0     # the sweep runs every 10 s per replica


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def login(gw, user="team-a", password=None):
    """-> (status, token or None, headers)."""
    st, hdrs, _ = harness.http("GET", gw.rest_url + "/session/auth",
                               headers=basic(user, harness.KEYS[user] if password is None else password))
    m = re.match(r"dmsess=([^;]*);", hdrs.get("Set-Cookie", ""))
    return st, (m.group(1) if m else None), hdrs


def credits(gw, tok):
    """-> HTTP status of GET /account/creditBalance with the session cookie alone."""
    st, _, _ = harness.http("GET", gw.rest_url + "/account/creditBalance",
                            headers={"Cookie": "dmsess=" + tok})
    return st


def until(fn, want, timeout=WAIT_S):
    """Polls fn() until it returns want; -> the last value (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    v = fn()
    while v != want and time.monotonic() < deadline:
        time.sleep(0.1)
        v = fn()
    return v


def token_hash(tok):
    return hashlib.sha256(tok.encode()).hexdigest()


def reload_config(g, text):
    """Writes the config and SIGHUPs g; waits for its "configuration reloaded" line."""
    before = harness.read_text(g.log_path).count("configuration reloaded")
    with open(g.config_path + ".new", "w") as f:
        f.write(text)
    os.replace(g.config_path + ".new", g.config_path)
    g.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while harness.read_text(g.log_path).count("configuration reloaded") == before:
        assert time.monotonic() < deadline, "no reload"
        time.sleep(0.05)


# ---- SQLite: one gateway, restarted --------------------------------------------------------------
@pytest.mark.skipif(harness.POSTGRES, reason=harness.SKIP_ON_POSTGRES)
def test_sqlite_session_survives_a_restart_and_expires(stack, sim, tmp_path):
    path = str(tmp_path / "sess.db")
    g = stack.gateway(sim, name="sess-1", rest=True, state_path=path)
    st, tok, _ = login(g)
    assert st == 200 and tok
    assert credits(g, tok) == 200
    g.stop()

    # The file holds the token's SHA-256 with its tenant and key hash, never the token.
    with open(path, "rb") as f:
        raw = f.read()
    for side in ("-wal",):
        if os.path.exists(path + side):
            with open(path + side, "rb") as f:
                raw += f.read()
    assert tok.encode() not in raw
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT hex(token_hash), tenant, hex(key_hash) FROM sess").fetchall()
    finally:
        db.close()
    assert rows == [(token_hash(tok).upper(), "team-a", harness.sha256_hex(harness.KEYS["team-a"]).upper())]

    g2 = stack.gateway(sim, name="sess-2", rest=True, state_path=path)
    assert credits(g2, tok) == 200, "a session opened before the restart"
    g2.stop()

    # Its expiry passed while the gateway was down: it opens nothing after the next start.
    db = sqlite3.connect(path)
    try:
        db.execute("UPDATE sess SET expires_ms = 1")
        db.commit()
    finally:
        db.close()
    g3 = stack.gateway(sim, name="sess-3", rest=True, state_path=path)
    assert credits(g3, tok) == 401
    m = harness.metrics(g3)
    assert m[P + "rest_sessions_unknown_total"] >= 1


# ---- PostgreSQL: two replicas --------------------------------------------------------------------
pg_only = pytest.mark.skipif(not harness.POSTGRES,
                             reason="replicas share sessions only through PostgreSQL: run with "
                                    "A3D_IT_BACKEND=postgres (ctest integration.postgres)")


@pytest.fixture(scope="module")
def pair(stack, sim):
    if not harness.POSTGRES:
        pytest.skip("PostgreSQL only")
    return [stack.gateway(sim, name="rest-%s" % n, rest=True, extra_tenants=ROT_TENANT)
            for n in ("a", "b")]


def sess_rows(where="true"):
    return int(harness.pg_sql("SELECT count(*) FROM a3d_rest_sess WHERE %s" % where).strip() or 0)


@pg_only
def test_session_opened_on_one_replica_works_on_the_other(pair):
    a, b = pair
    st, tok, _ = login(a)
    assert st == 200 and tok
    assert credits(b, tok) == 200
    assert credits(a, tok) == 200
    # one row: the token's hash, the tenant, the key's hash; never the token
    assert sess_rows("token_hash = decode('%s', 'hex') AND tenant = 'team-a' AND key_hash = "
                     "decode('%s', 'hex')" % (token_hash(tok), harness.sha256_hex(harness.KEYS["team-a"]))) == 1
    assert tok not in harness.pg_sql("SELECT string_agg(tenant || encode(token_hash, 'escape'), ',')"
                                     " FROM a3d_rest_sess")
    # and the other way round
    st, tok_b, _ = login(b, "team-b")
    assert st == 200 and credits(a, tok_b) == 200


@pg_only
def test_removed_key_revokes_its_sessions_on_both_replicas(pair):
    a, b = pair
    _, tok_a, _ = login(a, "rot", ROT_KEY)
    _, tok_b, _ = login(b, "rot", ROT_KEY)
    _, keep, _ = login(a, "team-a")
    for g in (a, b):                         # each replica has both sessions cached now
        for t in (tok_a, tok_b, keep):
            assert credits(g, t) == 200
    rot_rows = "key_hash = decode('%s', 'hex')" % harness.sha256_hex(ROT_KEY)
    assert sess_rows(rot_rows) == 2

    # Only replica a reloads without the key: the rows go at once.
    with open(a.config_path) as f:
        text = f.read()
    assert ROT_TENANT in text
    reload_config(a, text.replace(ROT_TENANT, ""))
    assert until(lambda: sess_rows(rot_rows), 0) == 0
    assert credits(a, tok_a) == 401 and credits(a, tok_b) == 401
    # b still has the key in its ring: its cache forgets the sessions within its TTL, then the
    # store has no row for them.
    assert until(lambda: credits(b, tok_a), 401) == 401
    assert until(lambda: credits(b, tok_b), 401) == 401
    assert credits(b, keep) == 200 and credits(a, keep) == 200     # other keys' sessions stay
    m = harness.metrics(a)
    assert m[P + "rest_sessions_revoked_total"] == 2

    # b reloads too: nothing left to revoke, the key refused there by its own ring as well.
    with open(b.config_path) as f:
        text_b = f.read()
    reload_config(b, text_b.replace(ROT_TENANT, ""))
    st, _, _ = login(b, "rot", ROT_KEY)
    assert st == 401


@pg_only
def test_expired_session_ends_on_both_replicas_and_is_swept(pair):
    a, b = pair
    _, tok, _ = login(a)
    assert credits(b, tok) == 200 and credits(a, tok) == 200
    harness.pg_sql("UPDATE a3d_rest_sess SET expires_ms = 1 WHERE token_hash = decode('%s', 'hex')"
                   % token_hash(tok))
    assert until(lambda: credits(a, tok), 401) == 401
    assert until(lambda: credits(b, tok), 401) == 401
    assert until(lambda: sess_rows("expires_ms <= 1"), 0, timeout=SWEEP_WAIT_S) == 0
    swept = sum(harness.metrics(g)[P + "rest_sessions_expired_total"] for g in (a, b))
    assert swept >= 1


@pg_only
def test_store_down_answers_503_not_500(pair):
    a, _ = pair
    before = harness.metrics(a)
    harness.pg_ctl("stop")
    try:
        st, tok, hdrs = login(a)
        assert st == 503 and tok is None, st
        assert hdrs.get("Retry-After") == "1"
        fresh = "B" * 43                      # not cached: the lookup goes to the store
        st, hdrs, raw = harness.http("GET", a.rest_url + "/account/creditBalance",
                                     headers={"Cookie": "dmsess=" + fresh})
        assert st == 503, (st, raw)
        assert b"PostgreSQL" not in raw and b"127.0.0.1" not in raw     # no detail leaks
    finally:
        harness.pg_ctl("start")
    after = harness.metrics(a)
    k = P + 'rest_rejected_total{reason="session_store"}'
    assert after[k] - before.get(k, 0) == 2
    assert after[P + "rest_sessions_store_errors_total"] >= 2
    # once the store is back, logins work again without a restart
    assert until(lambda: login(a)[0], 200, timeout=30.0) == 200
