"""Instructions per cached REST GET /status/{rid} on the gateway's loop thread, under callgrind
(issue 18, bench step 8).

Step 8's req/s against nginx moves with whatever else the machine runs; instructions executed do
not. This runs the gateway of ${A3D_BUILD_DIR:-build} (and, with BENCH_BASE_GATEWAY, another
binary, e.g. main's build, behind the same simulator) under `valgrind --tool=callgrind`, makes one
finished job through the facade, warms the status cache, then sends `requests` cached GET /status
with h2load --h1 (4 connections, one request at a time each) twice: with the team's key as
Authorization: Bearer, and with the dmsess cookie of GET /session/auth. Each phase is zeroed and
dumped with callgrind_control (tests/bench/callgrind.py); the loop thread (the libevent loop that
runs the REST listener and every handler) is the figure. Run:
  /usr/bin/python3 tests/bench/callgrind_rest.py [requests]      (default 2000, about 40 s each)
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (gateway config, the REST job)
import callgrind  # noqa: E402  (zero, dump)
import harness  # noqa: E402

REQUESTS = 2000
WARM = 200
CONNS = 4


def wrapper_for(work, binary, label):
    path = os.path.join(work, "gw-%s-under-callgrind" % label)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p "
                "--dump-instr=no --collect-atstart=yes --separate-threads=yes \"%s\" \"$@\"\n"
                % (work, binary))
    os.chmod(path, 0o755)
    return path


def load(url, header, n):
    """n requests, CONNS connections -> 2xx answers."""
    out = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", str(CONNS), "-t", "1", "-H", header,
                          url], capture_output=True, text=True, timeout=callgrind.WAIT_S).stdout
    for line in out.splitlines():
        if line.startswith("status codes:"):
            return int(line.split()[2])
    return 0


def one_gateway(work, sim, binary, label, rid, n):
    """-> {"bearer": (loop instructions per request, 2xx), "cookie": (...)}; rid None: make the
    job through this gateway first. Also -> the rid."""
    real = harness.GATEWAY_BIN
    harness.GATEWAY_BIN = wrapper_for(work, binary, label)
    try:
        gw = harness.Gateway(work, sim.url, name="gw-cg-" + label, rest=True)
    finally:
        harness.GATEWAY_BIN = real
    try:
        rid = rid or bench.rest_job(gw)
        url = "%s/status/%s" % (gw.rest_url, rid)
        basic = base64.b64encode(("team-a:" + bench.KEY).encode()).decode()
        st, hdrs, _ = harness.http("GET", gw.rest_url + "/session/auth",
                                   headers={"Authorization": "Basic " + basic})
        assert st == 200, st
        headers = {"bearer": "Authorization: Bearer " + bench.KEY,
                   "cookie": "Cookie: " + hdrs["Set-Cookie"].split(";", 1)[0]}
        load(url, headers["bearer"], WARM)
        out = {}
        for k in ("bearer", "cookie"):
            callgrind.zero(gw.proc.pid)
            ok = load(url, headers[k], n)
            _, loop = callgrind.dump(gw.proc.pid, work, "%s-%s" % (label, k))
            out[k] = (loop / float(max(ok, 1)), ok)
        return out, rid
    finally:
        gw.stop()


def measure(n, base_binary=None):
    """-> {"this": {"bearer": (per request, ok), "cookie": ...}, "base": ... (with base_binary)}."""
    work = tempfile.mkdtemp(prefix="a3d-callgrind-rest-")
    os.environ[harness.SECRET_ENV] = harness.CLIENT_SECRET
    harness.START_TIMEOUT_S = 120.0
    sim = harness.Sim(work, name="sim-cg-rest", job_seconds=1)
    res = {}
    try:
        res["this"], rid = one_gateway(work, sim, harness.GATEWAY_BIN, "this", None, n)
        if base_binary:
            res["base"], _ = one_gateway(work, sim, base_binary, "base", rid, n)
        for label, per in res.items():
            print("callgrind REST (%s build): loop thread per cached GET /status: Bearer %.0f, "
                  "cookie %.0f instructions (%d and %d of %d answered 2xx)"
                  % (label, per["bearer"][0], per["cookie"][0], per["bearer"][1], per["cookie"][1], n),
                  flush=True)
        return res
    finally:
        sim.stop()
        if os.environ.get("CALLGRIND_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("work dir kept: " + work)


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS, os.environ.get("BENCH_BASE_GATEWAY"))
