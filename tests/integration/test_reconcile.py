"""The usage ledger against the upstream balance (issue 22, gateway/svc/reconcile.h), end to end:
the real gateway polls the real simulator's balance every second and compares what it fell by
with what the ledger charged.

- jobs started through the gateway: upstream's minutes and the ledger's agree
  (usage_unreconciled_minutes near 0, within the minutes balance's rounding of 0.01);
- a job started directly upstream with the account's own session (as a team holding the secret
  could): the difference is that job's minutes.
"""
import json
import time

import pytest

import harness
from harness import jobs_pb2
from test_usage import _video

M = "animate3d_gateway_"
ACCOUNT = "sim"
UPSTREAM = M + 'usage_reconcile_upstream_minutes{account="%s"}' % ACCOUNT
LEDGER = M + 'usage_reconcile_ledger_minutes{account="%s"}' % ACCOUNT
DIFF = M + 'usage_unreconciled_minutes{account="%s"}' % ACCOUNT
ROUNDING = 0.011                # the simulator's minutesBalance is floored to hundredths
WAIT_S = 30.0
TOP = """\
balance:
  poll_s: 1
follower:
  poll_interval_ms: 200
  max_poll_interval_ms: 500
  scan_interval_ms: 200
  polls_per_second: 100
"""


def _wait(gw, cond, what, timeout=WAIT_S):
    return harness.wait_metrics(gw, cond, what, timeout, show="reconcile")


def _near(m, key, want):
    return key in m and abs(m[key] - want) <= ROUNDING


@pytest.fixture(scope="module")
def rsim(stack):
    return stack.sim(name="recsim", job_seconds=1)


@pytest.fixture(scope="module")
def rgw(stack, rsim):
    return stack.gateway(rsim, name="recgw", extra_top=TOP)


def _upload(gw, name, seconds):
    return harness.upload_put(gw, name, _video(seconds))


def test_jobs_through_the_gateway_reconcile(rgw):
    _wait(rgw, lambda m: DIFF in m, "the first comparison (the baseline)")
    url = _upload(rgw, "rec-6s.mp4", 6)
    rid = harness.start_job(rgw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    assert harness.wait_job(rgw, rid, timeout=WAIT_S).state == jobs_pb2.SUCCESS
    # 6 s charged: 0.10 minutes on both sides once the follower settled the row and a poll came.
    m = _wait(rgw, lambda m: _near(m, LEDGER, 0.10) and _near(m, UPSTREAM, 0.10),
              "ledger and upstream at 0.10 minutes")
    assert abs(m[DIFF]) <= ROUNDING, m[DIFF]


def test_a_job_started_directly_upstream_shows_as_unreconciled(rgw, rsim):
    before = harness.metrics(rgw)
    assert DIFF in before and abs(before[DIFF]) <= ROUNDING, before.get(DIFF)
    url = _upload(rgw, "rec-direct-9s.mp4", 9)
    cookie = rsim.login()
    st, _, body = harness.http("POST", rsim.url + "/process", body={"url": url, "params": ["formats=bvh"]},
                               headers={"Cookie": cookie})
    assert st == 200, (st, body[:200])
    rid = json.loads(body)["rid"]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:      # the simulator charges when it sees the job end
        if "SUCCESS" in json.dumps(rsim.get_json("/status/" + rid, cookie)):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the direct job did not succeed")
    # 9 s the ledger never saw: 0.15 minutes unreconciled, the ledger unchanged.
    m = _wait(rgw, lambda m: _near(m, DIFF, 0.15), "0.15 minutes unreconciled")
    assert m[LEDGER] == before[LEDGER]
    assert _near(m, UPSTREAM, before[UPSTREAM] + 0.15)
