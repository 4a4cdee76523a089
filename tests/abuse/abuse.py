"""The abuse benchmark of issue 13: one table row per attack (see tests/abuse/README.md).

For each attack: a fresh gateway (in front of one shared simulator), honest callers running at a
fixed rate for the whole attack, the gateway's RSS sampled from /proc, then after the attack: does
the gRPC listener still accept (a new TCP connection gets gRPC core's HTTP/2 SETTINGS), does a new
channel's Health/Check answer (the loop is alive), what /healthz says, then SIGTERM (SIGKILL
after 10 s).

usage: tests/abuse/run [attack-name-substring ...]   (no argument: every attack)
Environment: ABUSE_SECONDS (attack length, default 15), ABUSE_HONEST (honest callers, default 4),
ABUSE_RATE (calls/s per honest caller, default 10), ABUSE_DEADLINE_MS (their deadline, default 2000),
ABUSE_<KNOB>=N overrides a size from attacks.DEFAULTS (e.g. ABUSE_FLOOD_CONNS=10),
ABUSE_KEEP=1 keeps the work directory (logs), A3D_GATEWAY_BIN runs another gateway binary
(ABUSE_OLD_CONFIG=1 then leaves out the keys an older binary does not know).
"""
import os
import shutil
import sys
import tempfile
import threading
import time

import attacks
from attacks import h2raw, harness
from harness import account_pb2, health_pb2, jobs_pb2

import grpc

SECONDS = float(os.environ.get("ABUSE_SECONDS", "15"))
HONEST = int(os.environ.get("ABUSE_HONEST", "4"))
RATE = float(os.environ.get("ABUSE_RATE", "10"))
DEADLINE_S = int(os.environ.get("ABUSE_DEADLINE_MS", "2000")) / 1000.0


def knobs():
    k = dict(attacks.DEFAULTS)
    for name in k:
        v = os.environ.get("ABUSE_" + name.upper())
        if v:
            k[name] = int(v)
    return k


class Target:
    def __init__(self, sim, gw):
        self.sim, self.gw = sim, gw
        self.grpc_port, self.http_port = gw.grpc_port, gw.http_port


def rss_status(pid):
    """(VmRSS, VmHWM) in KiB, or (0, 0) once the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


class Honest:
    """HONEST callers (team-b), each on its own channel, RATE calls/s each with a deadline,
    alternating GetCreditBalance and GetStatus of a job team-b owns."""

    def __init__(self, port, rid):
        self.port, self.rid = port, rid
        self.lat, self.fail, self.codes = [], 0, {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(HONEST)]

    def run(self, i):
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.port, options=[
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500)])
        acc = harness.account_pb2_grpc.AccountStub(ch)
        jobs = harness.jobs_pb2_grpc.JobsStub(ch)
        md = harness.Gateway.md("team-b")
        n = 0
        nxt = time.monotonic() + i / (RATE * HONEST)
        while not self.stop.is_set():
            time.sleep(max(0.0, nxt - time.monotonic()))
            nxt += 1.0 / RATE
            t0 = time.monotonic()
            code = "OK"
            try:
                if n % 2:
                    jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[self.rid]), timeout=DEADLINE_S, metadata=md)
                else:
                    acc.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=DEADLINE_S, metadata=md)
            except grpc.RpcError as e:
                code = e.code().name
            n += 1
            with self.lock:
                self.lat.append(time.monotonic() - t0)
                self.codes[code] = self.codes.get(code, 0) + 1
                if code != "OK":
                    self.fail += 1
        ch.close()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(DEADLINE_S + 5)
        lat = sorted(self.lat)
        n = len(lat)
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan")
        ok = (n - self.fail) / n * 100 if n else float("nan")
        return n, ok, p99, self.codes


def listener_accepts(port):
    """A new TCP connection gets gRPC core's SETTINGS within 2 s (what gRPC core 1.51 stops doing
    for good after EMFILE)."""
    try:
        c = h2raw.Conn("127.0.0.1", port, timeout=2)
        c.sock.settimeout(2)
        head = c.sock.recv(9)
        c.close()
        return len(head) == 9 and head[3] == h2raw.SETTINGS
    except OSError:
        return False


def health_serving(port):
    """A new channel's Health/Check answers SERVING within 2 s (the loop answers)."""
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    try:
        r = harness.health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def healthz(port):
    try:
        st, _, _ = harness.http("GET", "http://127.0.0.1:%d/healthz" % port, timeout=2)
        return st
    except OSError:
        return "down"


def log_lines(gw):
    with open(gw.log_path, "rb") as f:
        return sum(1 for _ in f)


def prepare_job(gw):
    """A finished job owned by team-b, for the honest GetStatus."""
    url = harness.upload_put(gw, "honest.mp4", open(harness.TINY_MP4, "rb").read(), tenant="team-b")
    rid = harness.start_job(gw, tenant="team-b", upload_url=url)
    harness.wait_job(gw, rid, tenant="team-b")
    return rid


def run_one(work, sim, name, fn, k):
    extra = {}
    if fn is attacks.fd_pressure:
        extra["rlimit_nofile"] = k["fd_limit"]
        if not os.environ.get("ABUSE_OLD_CONFIG"):
            # The default reserve (256) would not leave room under a 256-fd limit.
            extra["extra_top"] = "process:\n  open_files_reserve: %d\n" % (k["fd_limit"] // 4)
    if os.environ.get("ABUSE_EXTRA_YAML"):
        extra["extra_top"] = extra.get("extra_top", "") + os.environ["ABUSE_EXTRA_YAML"].replace("\\n", "\n") + "\n"
    gw = harness.Gateway(work, sim.url, name="gw-" + name.replace(" ", "-"), **extra)
    pid = gw.proc.pid
    try:
        rid = prepare_job(gw)
        rss0, _ = rss_status(pid)
        honest = Honest(gw.grpc_port, rid)
        peak = [rss0]
        done = threading.Event()

        def sampler():
            while not done.is_set():
                peak[0] = max(peak[0], rss_status(pid)[0])
                time.sleep(0.1)

        smp = threading.Thread(target=sampler, daemon=True)
        smp.start()
        log0 = log_lines(gw)
        honest.start()
        notes = {}
        t0 = time.monotonic()
        try:
            notes = fn(Target(sim, gw), t0 + SECONDS, k)
        except Exception as e:  # noqa: BLE001  (the row says what broke)
            notes = {"attack error": "%s: %s" % (type(e).__name__, e)}
        # A second after the attack stops, still measured: the gateway must recover.
        time.sleep(1.0)
        n, ok, p99, codes = honest.finish()
        done.set()
        smp.join(1)
        _, hwm = rss_status(pid)
        notes["gateway log lines"] = log_lines(gw) - log0
        accepts = listener_accepts(gw.grpc_port)
        serving = health_serving(gw.grpc_port)
        hz = healthz(gw.http_port)
        return {"rss0": rss0 / 1024, "peak": max(peak[0], hwm) / 1024, "calls": n, "ok": ok,
                "p99": p99, "codes": codes, "accepts": accepts, "serving": serving, "healthz": hz,
                "secs": time.monotonic() - t0, "notes": notes}
    finally:
        rc, killed = gw.stop()
        if killed:
            sys.stderr.write("abuse: %s: gateway ignored SIGTERM for 10 s, killed\n" % name)


def main(argv):
    k = knobs()
    sel = [a for a in attacks.ATTACKS if not argv[1:] or any(s.lower() in a[0].lower() for s in argv[1:])]
    work = tempfile.mkdtemp(prefix="a3d-abuse-")
    sim = harness.Sim(work, job_seconds=1)
    print("abuse benchmark: %s, %.0f s per attack, %d honest callers x %.0f calls/s (deadline %.0f ms), "
          "gateway %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), SECONDS, HONEST, RATE, DEADLINE_S * 1000,
                          harness.GATEWAY_BIN))
    print("knobs: " + ", ".join("%s=%d" % kv for kv in sorted(k.items())))
    print()
    hdr = ("| attack | RSS idle -> peak (MiB) | honest calls | honest ok % | honest p99 ms "
           "| gRPC listener after | Health/Check after | /healthz after | notes |")
    print(hdr)
    print("|" + "---|" * 9)
    sys.stdout.flush()
    try:
        for name, fn in sel:
            r = run_one(work, sim, name, fn, k)
            notes = "; ".join("%s: %s" % kv for kv in r["notes"].items())
            bad = {c: v for c, v in r["codes"].items() if c != "OK"}
            if bad:
                notes += "; honest errors: " + ",".join("%s=%d" % kv for kv in sorted(bad.items()))
            print("| %s | %.0f -> %.0f | %d | %.2f | %.0f | %s | %s | %s | %s |"
                  % (name, r["rss0"], r["peak"], r["calls"], r["ok"], r["p99"],
                     "accepts" if r["accepts"] else "DEAD", "SERVING" if r["serving"] else "no answer",
                     r["healthz"], notes))
            sys.stdout.flush()
    finally:
        sim.stop()
        if os.environ.get("ABUSE_KEEP"):
            print("\nlogs kept in " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
