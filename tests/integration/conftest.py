"""Fixtures for the end-to-end tests (see harness.py for what each piece does).

A3D_BUILD_DIR names the build tree (default <repo>/build): its animate3d-sim, animate3d-gateway and
py/ (generated stubs, target py_stubs) are used. Logs of every process land in the pytest tmp dir
and, for the shared gateway, are copied to <build>/integration-logs/ for debugging.
"""
import os
import shutil

import pytest

import harness


def pytest_configure(config):
    missing = [p for p in (harness.SIM_BIN, harness.GATEWAY_BIN,
                           os.path.join(harness.PY_DIR, "animate3d", "v1", "jobs_pb2.py"))
               if not os.path.exists(p)]
    if missing:
        raise pytest.UsageError("integration tests need a built tree (A3D_BUILD_DIR=%s); missing: %s"
                                % (harness.BUILD, ", ".join(missing)))


def _keep_log(path, label):
    """Copy a log next to the build tree so it survives pytest's tmp cleanup."""
    dst_dir = os.path.join(harness.BUILD, "integration-logs", label)
    try:
        os.makedirs(dst_dir, exist_ok=True)
        shutil.copy(path, dst_dir)
    except OSError:
        pass


class Stack:
    """Factory for extra simulators/gateways; everything it started is stopped and checked."""

    def __init__(self, workdir, label):
        self.workdir = workdir
        self.label = label
        self.sims = []
        self.gateways = []
        self.killed = set()     # gateways a test SIGKILLed on purpose (Gateway.kill)

    def sim(self, **kw):
        kw.setdefault("name", "sim%d" % len(self.sims))
        s = harness.Sim(self.workdir, **kw)
        self.sims.append(s)
        return s

    def gateway(self, sim, **kw):
        kw.setdefault("name", "gateway%d" % len(self.gateways))
        g = harness.Gateway(self.workdir, sim.url, **kw)
        self.gateways.append(g)
        return g

    def kill(self, g):
        """SIGKILL one of ours on purpose: close() then checks only its log for secrets."""
        self.killed.add(id(g))
        return g.kill()

    def close(self):
        """-> problems found while stopping (exit codes, leaked secrets)."""
        problems = []
        for g in self.gateways:
            rc, killed = g.stop()
            _keep_log(g.log_path, self.label)
            if id(g) in self.killed:
                pass
            elif killed or rc != 0:
                problems.append("%s: exit %s after SIGTERM%s (log %s)"
                                % (g.name, rc, " (killed)" if killed else "", g.log_path))
            leaks = g.leaked_secrets(extra=harness.pg_secrets())
            if leaks:
                problems.append("%s: log leaks %s (log %s)" % (g.name, ", ".join(leaks), g.log_path))
        for s in self.sims:
            s.stop()
            _keep_log(s.log_path, self.label)
        return problems


@pytest.fixture(scope="module", autouse=True)
def pg_clean():
    """A3D_IT_BACKEND=postgres: every test module starts from empty tables, as it starts from new
    state files on SQLite (autouse at module scope: before the module's gateways start). A module's
    tests share its gateways and their state, as they do on SQLite; a test that needs empty tables
    of its own asks for pg_empty."""
    if harness.POSTGRES:
        harness.pg_truncate()
    yield


@pytest.fixture
def pg_empty():
    """Empty tables for this test (PostgreSQL only; a no-op on SQLite). Only for tests whose
    gateways start after it: a running gateway caches positive ownership."""
    if harness.POSTGRES:
        harness.pg_truncate()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    label = request.module.__name__.rsplit(".", 1)[-1]
    st = Stack(str(tmp_path_factory.mktemp(label)), label)
    yield st
    problems = st.close()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def sim(stack):
    return stack.sim(name="sim", job_seconds=1)


@pytest.fixture(scope="module")
def gateway(stack, sim):
    return stack.gateway(sim, name="gateway")


@pytest.fixture
def clean_sim(sim):
    """Faults never outlive the test that set them."""
    sim.clear_faults()
    yield sim
    sim.clear_faults()
