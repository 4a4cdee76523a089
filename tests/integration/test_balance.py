"""The upstream balance poller (issues 20 and 22, gateway/svc/balance.h), end to end: the real
gateway polls the real simulator every second (balance.poll_s: 1).

- the credit and minutes gauges equal what the simulator answers our own session;
- the poll's requests go the ordinary upstream way: counted by route in upstream_requests_total,
  each with a W3C traceparent (the simulator's request log, /_sim/requests);
- after a job is charged (the simulator charges ceil(duration) credits on SUCCESS) the gauges drop
  to the simulator's new balance;
- while the simulator answers the balance with garbage (a /_sim/faults fault), the gauges keep
  their last values, balance_poll_failures_total counts the failed polls and the log says why;
  once the fault is gone the gauges catch up.
"""
import json
import re
import time

import pytest

import harness
from harness import jobs_pb2

M = "animate3d_gateway_"
ACCOUNT = "sim"                 # the account name in harness.gateway_config
CREDITS = M + 'upstream_credit_balance{account="%s"}' % ACCOUNT
MINUTES = M + 'upstream_minutes_balance{account="%s"}' % ACCOUNT
UPDATED = M + 'upstream_balance_updated_seconds{account="%s"}' % ACCOUNT
POLLS = M + 'balance_polls_total{account="%s"}' % ACCOUNT
FAILURES = M + 'balance_poll_failures_total{account="%s"}' % ACCOUNT
WAIT_S = 30.0                   # bound of every wait below
JOB_WAIT_S = 20.0
BALANCE = "balance:\n  poll_s: 1\n"


def _sim_balance(sim):
    """The simulator's own answers to a session of ours. -> (credits, minutes)."""
    cookie = sim.login()
    return (sim.get_json("/account/creditBalance", cookie)["credits"],
            sim.get_json("/account/minutesBalance", cookie)["minutes"])


def _wait(gw, cond, what, timeout=WAIT_S):
    return harness.wait_metrics(gw, cond, what, timeout, show="balance")


def _charge_one_job(gw, name):
    """A job through the gateway, to SUCCESS: the simulator charges ceil(2 s) = 2 credits."""
    with open(harness.TINY_MP4, "rb") as f:
        url = harness.upload_put(gw, name, f.read())
    rid = harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    final = harness.wait_job(gw, rid, timeout=JOB_WAIT_S)
    assert final.state == jobs_pb2.SUCCESS, final


@pytest.fixture(scope="module")
def bsim(stack):
    return stack.sim(name="balsim", job_seconds=1)


@pytest.fixture(scope="module")
def bgw(stack, bsim):
    return stack.gateway(bsim, name="balgw", extra_top=BALANCE)


@pytest.fixture
def faults(bsim):
    bsim.clear_faults()
    yield bsim
    bsim.clear_faults()


def test_gauges_equal_the_simulators_balance(bgw, bsim):
    m = _wait(bgw, lambda m: UPDATED in m, "a first good poll")
    credits, minutes = _sim_balance(bsim)
    m = _wait(bgw, lambda m: m.get(CREDITS) == credits and m.get(MINUTES) == minutes,
              "gauges equal to the simulator's %s credits, %s minutes" % (credits, minutes))
    assert credits == 1000 and minutes == pytest.approx(16.66)
    assert abs(m[UPDATED] - time.time()) < 60, m[UPDATED]
    # The poll's requests are ordinary upstream requests: counted by route and status.
    for route in ("GET /account/creditBalance", "GET /account/minutesBalance"):
        key = M + 'upstream_requests_total{route="%s",status="200"}' % route
        assert m.get(key, 0) >= 1, (key, sorted(k for k in m if "upstream_requests" in k))
    assert m[FAILURES] == 0


def test_poll_requests_carry_a_traceparent(bgw, bsim):
    start = _wait(bgw, lambda m: UPDATED in m, "a first good poll")
    st, _, _ = harness.http("DELETE", bsim.url + "/_sim/requests")
    assert st in (200, 204)
    # Two polls later the log holds at least one whole poll, and nothing of ours.
    _wait(bgw, lambda m: m[POLLS] >= start[POLLS] + 2, "two more polls")
    st, _, body = harness.http("GET", bsim.url + "/_sim/requests?limit=64")
    assert st == 200
    reqs = [r for r in json.loads(body)["requests"]
            if r["path"] in ("/account/creditBalance", "/account/minutesBalance")]
    assert {r["path"] for r in reqs} == {"/account/creditBalance", "/account/minutesBalance"}, reqs
    tp = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$")
    traces = {}
    for r in reqs:
        vals = [h["value"] for h in r["headers"] if h["name"].lower() == "traceparent"]
        assert len(vals) == 1 and tp.match(vals[0]), r
        traces.setdefault(tp.match(vals[0]).group(1), []).append(r["path"])
    # One trace per poll: both requests of a poll share it, and polls do not.
    assert any(sorted(p) == ["/account/creditBalance", "/account/minutesBalance"]
               for p in traces.values()), traces
    assert len(traces) >= 2, traces


def test_gauges_drop_after_a_job_is_charged(bgw, bsim):
    before = _wait(bgw, lambda m: CREDITS in m, "a first good poll")[CREDITS]
    _charge_one_job(bgw, "balance-charge.mp4")
    credits, minutes = _sim_balance(bsim)
    assert credits == before - 2, (before, credits)
    _wait(bgw, lambda m: m.get(CREDITS) == credits and m.get(MINUTES) == minutes,
          "gauges at the charged balance %s credits, %s minutes" % (credits, minutes))


def test_a_failed_poll_keeps_the_last_value_and_is_counted(bgw, faults):
    bsim = faults
    credits0, minutes0 = _sim_balance(bsim)
    start = _wait(bgw, lambda m: m.get(CREDITS) == credits0 and m.get(MINUTES) == minutes0,
                  "gauges at %s credits, %s minutes" % (credits0, minutes0))
    # A 200 answer that is not JSON: the poll fails while the breaker is not involved (not a
    # 5xx), so the job below runs normally. Only the credits are faulted: the simulator's minutes
    # still show that its balance moved.
    bsim.faults("GET /account/creditBalance", status=200, mode="garbage")
    _charge_one_job(bgw, "balance-fault.mp4")
    cookie = bsim.login()
    minutes1 = bsim.get_json("/account/minutesBalance", cookie)["minutes"]
    assert minutes1 < minutes0, (minutes0, minutes1)
    f0 = harness.metrics(bgw)[FAILURES]
    m = _wait(bgw, lambda m: m[FAILURES] >= f0 + 2, "two more failed polls")
    # A poll is good only whole: the minutes answered, yet neither gauge moved.
    assert m[CREDITS] == credits0 and m[MINUTES] == minutes0, \
        "the gauges moved during the fault: %s" % {CREDITS: m[CREDITS], MINUTES: m[MINUTES]}
    assert m[UPDATED] == start[UPDATED]
    assert m[POLLS] >= start[POLLS] + 2
    assert re.search(r'"event":"balance_poll_failed".*"account":"sim".*"path":"/account/'
                     r'creditBalance".*"error":"[^"]*not valid JSON', bgw.log_text()), \
        bgw.log_text()[-2000:]
    # The upstream is healthy again: the next good poll brings the charged balance.
    bsim.clear_faults()
    credits1, minutes1 = _sim_balance(bsim)
    assert credits1 == credits0 - 2
    m = _wait(bgw, lambda m: m.get(CREDITS) == credits1 and m.get(MINUTES) == minutes1,
              "gauges at %s credits after the fault" % credits1)
    assert m[UPDATED] > start[UPDATED]
