"""Per-call instruction counts of Health/Check vs cached GetStatus, under callgrind (issue 4, step 1).

Wall-clock throughput on a shared 2-core machine is noisy; instructions executed are not. This runs
the gateway of ${A3D_BUILD_DIR:-build} under `valgrind --tool=callgrind` (collection of every thread
summed), behind the same fake upstream as bench.py step 1, and sends the same h2load load to both
methods: same connections, streams, headers (the API key on both) and request count. Each phase is
zeroed and dumped with callgrind_control, so a phase's total is what the whole process (gRPC core
threads and our loop) executed while serving it. An idle phase of comparable length shows what
timers cost in the background. Run:  /usr/bin/python3 tests/bench/callgrind.py [calls]
Prints instructions per call for each phase and the ratio, and of the loop thread's the
gateway's own (own_work(): its code and the libraries it calls, not gRPC core, not timers);
CALLGRIND_KEEP=1 keeps the work dir
(with the dumps, for callgrind_annotate); CALLGRIND_STATE=sqlite keeps ownership in a SQLite file
(the embedded default) instead of bench.py's in-memory store; CALLGRIND_PHASES (default 2) sets
the phases per method and load shape, of which the least is reported. Two load shapes (SHAPES):
"concurrent", h2load -c 4 -m 16, and "serial", one call at a time, whose figures move least.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (fake upstream, gateway config, gRPC frames)
import harness  # noqa: E402
from harness import jobs_pb2, health_pb2  # noqa: E402

CALLS = 3000            # per phase; about 10 s under callgrind
# Phases per method and load shape, interleaved (hc gs gs hc ...); the least of each method's
# phases is what is reported.
PHASES = int(os.environ.get("CALLGRIND_PHASES", "2"))
# Load shapes (name, h2load connections, streams per connection). Under "concurrent" (the shape of
# bench.py step 1) how much of gRPC core's transport work lands on the loop thread moves from
# phase to phase by up to ~4 k instructions per call, with how calls bunch together in one
# wake-up; "serial" (one call at a time) moves by a few hundred, so the difference of the two
# methods there is the gateway's own work: the figure issue 23's target is about.
SHAPES = (("concurrent", 4, 16), ("serial", 1, 1))
WAIT_S = 120            # bound on each h2load run and each dump


# The loop's entry for completion-queue events (gateway/base/handoff.c): every call's work on the
# loop runs under it, timers (webhook pump, follower, memory guard) do not.
CALL_ENTRY = "handoff_on_wake"
OUR_OBJECT = "animate3d-gateway"
CORE_OBJECT = "libgrpc"


def own_work(path):
    """-> (instructions under CALL_ENTRY, of which in gRPC core called from our code) of one
    thread's dump, read from its call records (the callgrind format's calls= lines carry the
    inclusive cost of each call site). Their difference is the gateway's own work on the loop
    for the calls of the phase: its code and the libraries it calls (libc, protobuf-c, OpenSSL),
    without gRPC core, whose share of the loop moves from phase to phase with how completions
    fall between the threads, and without the timers, which move with the phase's wall time."""
    names = {"ob": {}, "fn": {}}
    ob = fn = cob = cfn = None
    pending = False
    entry = core = 0

    def name(table, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[table][m.group(1)] = m.group(2)
        return names[table].get(m.group(1), "?")

    with open(path) as f:
        for line in f:
            if pending:     # the line after calls=: "<position> <inclusive cost>"
                pending = False
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if cfn and cfn.endswith(CALL_ENTRY) and not (fn or "").endswith(CALL_ENTRY):
                    entry += cost
                if OUR_OBJECT in (ob or "") and CORE_OBJECT in (cob if cob is not None else ob or ""):
                    core += cost
                cob = None
            elif line.startswith("ob="):
                ob = name("ob", line[3:].strip())
            elif line.startswith("cob="):
                cob = name("ob", line[4:].strip())
            elif line.startswith("fn="):
                fn = name("fn", line[3:].strip())
            elif line.startswith("cfn="):
                cfn = name("fn", line[4:].strip())
            elif line.startswith("calls="):
                pending = True
    return entry, core


def dump(pid, work, name):
    """callgrind_control --dump; -> (instructions of every thread, of the loop thread, the
    gateway's own on the loop thread: own_work()).

    Threads are dumped separately (--separate-threads): the main thread is the libevent loop that
    runs all of our logic; the others are gRPC core's (pollers, executor), whose totals include
    lock spinning that depends on how valgrind serialises threads, so the loop thread is the
    noise-free figure and the total is shown beside it."""
    before = set(os.listdir(work))
    subprocess.run(["callgrind_control", "--dump=" + name, str(pid)], capture_output=True,
                   timeout=WAIT_S, check=True)
    deadline = time.monotonic() + WAIT_S
    new = []
    while time.monotonic() < deadline and not new:
        time.sleep(0.5)             # let valgrind finish writing every thread's file
        new = sorted(f for f in set(os.listdir(work)) - before if f.startswith("callgrind.out"))
    if not new:
        raise RuntimeError("no callgrind dump for " + name)
    time.sleep(0.5)
    new = sorted(f for f in set(os.listdir(work)) - before if f.startswith("callgrind.out"))
    total = loop = own = 0
    for fname in new:
        with open(os.path.join(work, fname)) as f:
            for line in f:
                m = re.match(r"(?:summary|totals): (\d+)", line)
                if m:
                    total += int(m.group(1))
                    if fname.endswith("-01"):
                        loop += int(m.group(1))
                    break
        if fname.endswith("-01"):
            entry, core = own_work(os.path.join(work, fname))
            own += entry - core
    return total, loop, own


def zero(pid):
    subprocess.run(["callgrind_control", "--zero", str(pid)], capture_output=True,
                   timeout=WAIT_S, check=True)


def h2load_n(url, body, n, conns, streams):
    cmd = ["h2load", "-n", str(n), "-c", str(conns), "-m", str(streams), "-t", "1", "-d", body,
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           "-H", "authorization: Bearer " + bench.KEY, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S).stdout
    s = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    return int(s.group(1)) if s else 0


def run_shape(pid, work, urls, bodies, n, conns, streams):
    """Warms both methods, then PHASES phases of n calls each, interleaved; prints them. ->
    {"hc"/"gs": (all threads, loop thread, the gateway's own on the loop thread) least
    instructions per call, "spread": the loop thread's largest minus least phase of either
    method, "own_spread": the same of the gateway's own, "ok": every call answered HTTP 200}."""
    for k in ("hc", "gs"):
        h2load_n(urls[k], bodies[k], 200, conns, streams)
    res = {"hc": [], "gs": []}
    secs = []
    for k in [("hc", "gs", "gs", "hc")[i % 4] for i in range(2 * max(PHASES, 1))]:
        zero(pid)
        t0 = time.monotonic()
        ok = h2load_n(urls[k], bodies[k], n, conns, streams)
        secs.append(time.monotonic() - t0)
        total, loop, own = dump(pid, work, k)
        res[k].append((total, loop, ok, own))
    zero(pid)
    time.sleep(max(secs) if secs else 5)
    idle, idle_loop, _ = dump(pid, work, "idle")
    print("callgrind: %d calls per phase, h2load -c %d -m %d -t 1 with the API key on both;"
          " idle %.1f s: %d instructions (%d on the loop thread)"
          % (n, conns, streams, max(secs), idle, idle_loop))
    per = {"spread": 0.0, "own_spread": 0.0}
    for k in ("hc", "gs"):
        tot = [t / max(ok, 1) for t, _, ok, _ in res[k]]
        lp = [lo / max(ok, 1) for _, lo, ok, _ in res[k]]
        own = [o / max(ok, 1) for _, _, ok, o in res[k]]
        per[k] = (min(tot), min(lp), min(own))
        per["spread"] = max(per["spread"], max(lp) - min(lp))
        per["own_spread"] = max(per["own_spread"], max(own) - min(own))
        print("  %-9s all threads %s, loop thread %s, of it the gateway's own %s instructions/call"
              " (HTTP 200: %s)"
              % ("Health" if k == "hc" else "GetStatus", " ".join("%.0f" % v for v in tot),
                 " ".join("%.0f" % v for v in lp), " ".join("%.0f" % v for v in own),
                 " ".join(str(ok) for _, _, ok, _ in res[k])))
    print("  GetStatus - Health: loop thread %.0f, the gateway's own %.0f, all threads %.0f"
          " instructions/call; Health/GetStatus all threads %.3f"
          % (per["gs"][1] - per["hc"][1], per["gs"][2] - per["hc"][2],
             per["gs"][0] - per["hc"][0], per["hc"][0] / per["gs"][0]))
    per["ok"] = all(ok == n for k in ("hc", "gs") for _, _, ok, _ in res[k])
    return per


def main(argv):
    measure(int(argv[0]) if argv else CALLS)
    return 0


def measure(n):
    """Runs every load shape's phases on one gateway and prints them; -> {shape name:
    run_shape()'s answer} (bench.py step 6 reads it)."""
    work = tempfile.mkdtemp(prefix="a3d-callgrind-")
    os.environ[harness.SECRET_ENV] = harness.CLIENT_SECRET
    wrapper = os.path.join(work, "gw-under-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p "
                "--dump-instr=no --collect-atstart=yes --separate-threads=yes \"%s\" \"$@\"\n" % (work, harness.GATEWAY_BIN))
    os.chmod(wrapper, 0o755)
    harness.GATEWAY_BIN = wrapper
    if os.environ.get("CALLGRIND_STATE") == "sqlite":
        def sqlite_config(grpc_port, http_port, sim_url, state_path, **kw):
            return bench.bench_config(grpc_port, http_port, sim_url, state_path, **kw).replace(
                "  memory: true\n", "  path: %s\n" % state_path)
        harness.gateway_config = sqlite_config
    harness.START_TIMEOUT_S = 120.0
    fake = bench.FakeUpstream()
    gw = None
    try:
        gw = harness.Gateway(work, fake.url, name="gw-callgrind")
        rid = bench.rid_of(1)
        r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=60, metadata=gw.md())
        assert r.statuses[0].state == jobs_pb2.SUCCESS, r
        bodies = {}
        for k, msg in (("hc", health_pb2.HealthCheckRequest()),
                       ("gs", jobs_pb2.GetStatusRequest(rids=[rid]))):
            bodies[k] = os.path.join(work, k + ".bin")
            with open(bodies[k], "wb") as f:
                f.write(bench.grpc_frame(msg))
        base = "http://" + gw.addr
        urls = {"hc": base + "/grpc.health.v1.Health/Check",
                "gs": base + "/animate3d.v1.Jobs/GetStatus"}
        pid = gw.proc.pid
        out = {}
        for shape, conns, streams in SHAPES:
            out[shape] = run_shape(pid, work, urls, bodies, n, conns, streams)
        return out
    finally:
        if gw:
            gw.stop()
        fake.stop()
        if os.environ.get("CALLGRIND_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("work dir kept: " + work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
