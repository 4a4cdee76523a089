"""Upstream sessions: refresh ahead of expiry, revoke mid-traffic, one login for many waiters,
wrong credentials answered fast and clearly.

Each scenario gets its own simulator, so `GET /session/auth` counts are not disturbed by others.
"""
import re
import time

import grpc
import pytest

from harness import account_pb2, jobs_pb2

LOGIN = "GET /session/auth"
TTL_S = 2.0


def _credits(gw, timeout=10):
    return gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=timeout,
                                       metadata=gw.md())


def _steady_calls(gw, seconds, period=0.1, on_halfway=None):
    """Calls at a steady pace for `seconds`; -> list of failures (code, details)."""
    failures = []
    calls = 0
    t0 = time.monotonic()
    fired = False
    while time.monotonic() - t0 < seconds:
        if on_halfway and not fired and time.monotonic() - t0 >= seconds / 2:
            on_halfway()
            fired = True
        try:
            if calls % 2:
                gw.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5, metadata=gw.md())
            else:
                _credits(gw, timeout=5)
        except grpc.RpcError as e:
            failures.append((e.code(), e.details()))
        calls += 1
        time.sleep(period)
    assert calls >= seconds / period / 2, "only %d calls in %.0fs" % (calls, seconds)
    return failures


@pytest.fixture(scope="module")
def short_ttl(stack):
    sim = stack.sim(name="sim-ttl2", session_ttl=TTL_S)
    return sim, stack.gateway(sim, name="gateway-ttl2")


@pytest.fixture(scope="module")
def long_ttl(stack):
    sim = stack.sim(name="sim-revoke")
    return sim, stack.gateway(sim, name="gateway-revoke")


def test_session_refreshed_across_expiry(short_ttl):
    sim, gw = short_ttl
    _credits(gw)                           # a session exists
    logins_before = sim.count(LOGIN)
    seconds = 3 * TTL_S
    failures = _steady_calls(gw, seconds)
    assert not failures, failures[:5]
    logins = sim.count(LOGIN) - logins_before
    # Refresh ahead of expiry at about 2/3 of the lifetime (jitter may make it earlier, but not
    # before half of it): at most one login per half lifetime, plus one.
    bound = int(seconds / (TTL_S * 0.5)) + 1
    assert 1 <= logins <= bound, "%d logins in %.0fs with a %.0fs session" % (logins, seconds, TTL_S)


def test_revoke_mid_traffic(long_ttl):
    sim, gw = long_ttl
    _credits(gw)
    logins_before = sim.count(LOGIN)
    failures = _steady_calls(gw, 2.0, period=0.05, on_halfway=sim.revoke)
    assert not failures, failures[:5]
    assert sim.count(LOGIN) - logins_before == 1


def test_200_concurrent_calls_after_revoke_one_login(long_ttl):
    sim, gw = long_ttl
    _credits(gw)
    logins_before = sim.count(LOGIN)
    sim.revoke()
    futs = [gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(), timeout=20,
                                               metadata=gw.md()) for _ in range(200)]
    errors = []
    for f in futs:
        try:
            f.result(timeout=25)
        except grpc.RpcError as e:
            errors.append((e.code(), e.details()))
    assert not errors, "%d of 200 failed, first: %s" % (len(errors), errors[:3])
    assert sim.count(LOGIN) - logins_before == 1


def test_concurrent_calls_at_expiry_one_login(stack):
    """Sessions that simply expire (no revoke) under a burst: still one login per expiry."""
    sim = stack.sim(name="sim-expiry", session_ttl=TTL_S)
    gw = stack.gateway(sim, name="gateway-expiry")
    _credits(gw)
    time.sleep(TTL_S + 0.3)                # the session has expired (or was refreshed ahead)
    logins_before = sim.count(LOGIN)
    futs = [gw.account.GetCreditBalance.future(account_pb2.GetCreditBalanceRequest(), timeout=20,
                                               metadata=gw.md()) for _ in range(200)]
    errors = []
    for f in futs:
        try:
            f.result(timeout=25)
        except grpc.RpcError as e:
            errors.append((e.code(), e.details()))
    assert not errors, "%d of 200 failed, first: %s" % (len(errors), errors[:3])
    assert sim.count(LOGIN) - logins_before <= 1


def test_wrong_secret_unavailable_fast(stack):
    sim = stack.sim(name="sim-wrongsecret")
    gw = stack.gateway(sim, name="gateway-wrongsecret", secret="wrong-secret-xyz", wait_serving=False)
    for attempt in range(3):
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            _credits(gw, timeout=10)
        elapsed = time.monotonic() - t0
        code, details = e.value.code(), e.value.details() or ""
        assert code == grpc.StatusCode.UNAVAILABLE, (attempt, code, details)
        assert re.search(r"reject", details, re.I) and re.search(r"credential", details, re.I), details
        assert "wrong-secret-xyz" not in details
        assert elapsed < 2.0, "attempt %d took %.2fs" % (attempt, elapsed)
    # Failed logins back off: a handful of calls must not become a login storm.
    assert sim.count(LOGIN) <= 10, sim.stats()
