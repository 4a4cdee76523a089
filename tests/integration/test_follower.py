"""The job follower (issue 17), end to end: jobs started through the gateway reach the jobevent
listeners without anyone polling, across a SIGKILL, and a forged upstream webhook changes nothing.

The listener observed is the gateway's own job outcome metric
(animate3d_gateway_job_outcomes_total{tenant,state,error}); the follower's own counters say where
each final came from and that the jobs ended settled. No upstream webhook is configured here
(webhooks.public_url unset), so the follower polls: a short follower.poll_interval_ms keeps the
tests short.
"""
import os
import sqlite3
import time

import pytest

import harness
from harness import jobs_pb2

JOB_SECONDS = 2
WAIT_S = 30.0           # bound of every wait for outcomes
FOLLOWER = """\
follower:
  poll_interval_ms: 300
  max_poll_interval_ms: 1000
  scan_interval_ms: 200
  polls_per_second: 50
"""
M = "animate3d_gateway_"


def _outcome(tenant, state, error=""):
    return '%sjob_outcomes_total{tenant="%s",state="%s",error="%s"}' % (M, tenant, state, error)


def _video():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _start(gw, name, tenant="team-a"):
    url = harness.upload_put(gw, name, _video(), tenant=tenant)
    return harness.start_job(gw, tenant=tenant, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))


def _wait_metrics(gw, want, timeout=WAIT_S):
    """Polls /metrics until every key of want reaches its value (bounded). -> the last metrics."""
    deadline = time.monotonic() + timeout
    m = {}
    while time.monotonic() < deadline:
        m = harness.metrics(gw)
        if all(m.get(k, 0) >= v for k, v in want.items()):
            return m
        time.sleep(0.1)
    raise AssertionError("metrics not reached in %.0fs: want %s, have %s"
                         % (timeout, want, {k: m.get(k, 0) for k in want}))


@pytest.fixture(scope="module")
def fsim(stack):
    return stack.sim(name="followsim", job_seconds=JOB_SECONDS)


@pytest.fixture(scope="module")
def fgw(stack, fsim):
    return stack.gateway(fsim, name="followgw", extra_top=FOLLOWER)


def test_finals_reach_listener_without_polling(fgw, fsim):
    before = harness.metrics(fgw)
    status_gets = fsim.count("GET /status/{rids}")
    _start(fgw, "follow-a1.mp4")
    _start(fgw, "follow-a2.mp4")
    _start(fgw, "clip-fail-513.mp4", tenant="team-b")
    want = {_outcome("team-a", "SUCCESS"): before.get(_outcome("team-a", "SUCCESS"), 0) + 2,
            _outcome("team-b", "FAILURE", "513"): before.get(_outcome("team-b", "FAILURE", "513"), 0) + 1,
            M + "follower_settled_total": before.get(M + "follower_settled_total", 0) + 3}
    m = _wait_metrics(fgw, want)
    # Nobody asked: the follower's own polls found every final, and the jobs are settled.
    src = M + 'follower_finals_total{source="follower"}'
    assert m[src] - before.get(src, 0) == 3
    assert m[M + "follower_jobs"] == 0
    assert m[M + "follower_polls_total"] > before.get(M + "follower_polls_total", 0)
    # Batched and bounded: no more upstream reads than the follower's polls.
    assert fsim.count("GET /status/{rids}") - status_gets <= \
        m[M + "follower_polls_total"] - before.get(M + "follower_polls_total", 0)
    # Each outcome once, the other tenant's untouched.
    assert m.get(_outcome("team-b", "SUCCESS"), 0) == before.get(_outcome("team-b", "SUCCESS"), 0)
    assert m.get(_outcome("team-a", "FAILURE", "513"), 0) == 0


def test_forged_webhook_changes_nothing(fgw, fsim):
    """An upstream-looking delivery for an owned, running rid saying "failure": the refresh reads
    PROGRESS, so no event; the job's real end (SUCCESS) is what the listener gets, once."""
    before = harness.metrics(fgw)
    rid = _start(fgw, "follow-forged.mp4")
    accepted = M + 'webhooks_in_total{result="accepted"}'
    body = ('{"eventType":"job.completed","data":{"taskId":"%s","status":"failure"}}' % rid).encode()
    st, _, _ = harness.http("POST", fgw.http_url + "/webhooks/animate3d/sim", body=body,
                            headers={"Content-Type": "application/json",
                                     "X-DeepMotion-Signature": harness.CLIENT_ID})
    assert st == 200
    _wait_metrics(fgw, {accepted: before.get(accepted, 0) + 1})
    time.sleep(0.5)     # the refresh it caused has been answered (PROGRESS)
    m = harness.metrics(fgw)
    assert m.get(_outcome("team-a", "FAILURE", "0"), 0) == before.get(_outcome("team-a", "FAILURE", "0"), 0)
    assert m.get(_outcome("team-a", "SUCCESS"), 0) == before.get(_outcome("team-a", "SUCCESS"), 0)
    assert m[M + "follower_jobs"] >= 1
    ok = _outcome("team-a", "SUCCESS")
    m = _wait_metrics(fgw, {ok: before.get(ok, 0) + 1, M + "follower_settled_total":
                            before.get(M + "follower_settled_total", 0) + 1})
    assert m[ok] == before.get(ok, 0) + 1
    for k, v in m.items():
        if k.startswith(M + "job_outcomes_total") and 'state="FAILURE"' in k and 'tenant="team-a"' in k:
            assert v == before.get(k, 0), k


def _sum(gws, keys):
    out = {k: 0 for k in keys}
    for g in gws:
        m = harness.metrics(g)
        for k in keys:
            out[k] += m.get(k, 0)
    return out


def _wait_sum(gws, base, want, timeout):
    """Waits until the summed metrics of gws minus base reach want (bounded). -> the deltas."""
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        now = _sum(gws, want)
        got = {k: now[k] - base.get(k, 0) for k in want}
        if all(got[k] >= want[k] for k in want):
            return got
        time.sleep(0.2)
    raise AssertionError("metrics not reached in %.0fs: want %s, have %s" % (timeout, want, got))


# On PostgreSQL the dead gateway's lease (GW_FOLLOWER_LEASE_MS, 60 s) is waited out; the module's
# gateway shares the database and may be the one that takes the jobs over.
LEASE_S = 60.0


def test_sigkill_restart_finals_still_arrive(stack, fsim, fgw):
    ok = _outcome("team-a", "SUCCESS")
    keys = (ok, M + "follower_settled_total")
    base = _sum([fgw], keys)
    g = stack.gateway(fsim, name="followkill", extra_top=FOLLOWER)
    state_path = g.state_path
    rids = [_start(g, "follow-kill-%d.mp4" % i) for i in range(3)]
    assert harness.metrics(g).get(ok, 0) == 0, "ended before the kill"
    stack.kill(g)
    g2 = stack.gateway(fsim, name="followkill2", extra_top=FOLLOWER, state_path=state_path,
                       grpc_port=g.grpc_port, http_port=g.http_port)
    got = _wait_sum([fgw, g2], base, {ok: 3, M + "follower_settled_total": 3},
                    WAIT_S + (LEASE_S if harness.POSTGRES else 0))
    assert got[ok] == 3, got       # at least once; here exactly once: no listener failed
    g2.stop()
    if harness.POSTGRES:
        n = harness.pg_sql("SELECT count(*) FROM a3d_owner WHERE kind = 1 AND settled_ms = 0"
                           " AND id IN ('%s')" % "','".join(rids))
        assert n.strip() == "0", n
        return
    # Settled in the file: nothing left for the next start.
    db = sqlite3.connect(state_path)
    try:
        unsettled = db.execute("SELECT count(*) FROM owner WHERE kind = 1 AND settled_ms = 0").fetchone()[0]
        settled = db.execute("SELECT count(*) FROM owner WHERE kind = 1 AND settled_ms > 0 AND id IN (?, ?, ?)",
                             rids).fetchone()[0]
    finally:
        db.close()
    assert (unsettled, settled) == (0, 3)
    g3 = stack.gateway(fsim, name="followkill3", extra_top=FOLLOWER, state_path=state_path)
    time.sleep(0.5)     # a few scans
    m = harness.metrics(g3)
    assert m[M + "follower_claimed_total"] == 0 and m[M + "follower_jobs"] == 0
    assert m.get(ok, 0) == 0
    g3.stop()


@pytest.mark.skipif(not harness.POSTGRES, reason="replicas share their state on PostgreSQL only")
def test_replicas_deliver_each_final_once(stack, fsim, fgw):
    """Two replicas follow the same store: each job is claimed (leased) by one of them, so the
    outcomes summed over both count each job once and the jobs are polled by one replica each."""
    other = stack.gateway(fsim, name="followreplica", extra_top=FOLLOWER)
    ok = _outcome("team-a", "SUCCESS")
    keys = (ok, M + "follower_settled_total", M + "follower_claimed_total")
    base = _sum([fgw, other], keys)
    n = 6
    for i in range(n):
        _start(fgw if i % 2 else other, "follow-replica-%d.mp4" % i)
    got = _wait_sum([fgw, other], base, {ok: n, M + "follower_settled_total": n}, WAIT_S)
    time.sleep(1.0)     # nothing more comes
    now = _sum([fgw, other], keys)
    assert now[ok] - base[ok] == n, got
    assert now[M + "follower_claimed_total"] - base[M + "follower_claimed_total"] == n
