"""Step 10 of tests/bench (issue 21): upstream GET /status per second against the number of
polling clients, the gateway against every client polling the upstream itself.

Each client follows one in-progress job of its own and asks for its status once every interval,
as an SDK's wait loop does; the clients start spread over the first interval, so they do not tick
together. "direct": each client sends GET /status/{rid} to the simulator on its own keep-alive
connection, with the account's session cookie; "gateway": each client calls GetStatus on the
gateway (one channel for all, as one process of many threads would). Either way the simulator
counts the GET /status requests it receives. The first TTL of every run is left out (the
gateway's first fetch of each rid, the clients' connects); the simulator's count over the
following seconds, divided by them, is the figure. Every run is bounded by its seconds plus a
5 s answer timeout.
"""
import asyncio
import random
import re
import time

import grpc
import harness
from harness import jobs_pb2, jobs_pb2_grpc

ROUTE = "GET /status/{rids}"
ANSWER_TIMEOUT_S = 5.0          # one status answer, either way
HEAD_MAX = 16384                # an answer's status line and headers (asyncio reader limit)


async def _paced(interval, phase, deadline, ask, tally):
    """Calls ask() once every interval from now + phase until deadline; counts ok / errors.
    ask() -> True (a status answered), False (another answer); raises on a failure."""
    nxt = time.monotonic() + phase
    while True:
        await asyncio.sleep(max(0.0, min(nxt, deadline) - time.monotonic()))
        if time.monotonic() >= deadline:
            return
        # A late answer does not make the client catch up with a burst: the next tick is one
        # interval after the later of the planned tick and now.
        nxt = max(nxt, time.monotonic()) + interval
        try:
            ok = await ask()
        except (ConnectionError, TimeoutError, grpc.RpcError):
            ok = False
        tally["ok" if ok else "errors"] += 1


class _Direct:
    """One client's keep-alive HTTP/1.1 connection to the simulator."""

    def __init__(self, host, port, cookie, rid):
        self.req = ("GET /status/%s HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n"
                    "Accept: application/json\r\n\r\n" % (rid, host, port, cookie)).encode()
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def ask(self):
        try:
            return await asyncio.wait_for(self._ask(), ANSWER_TIMEOUT_S)
        except TimeoutError:
            self.close()        # the late answer must not be read as the next one
            raise

    async def _ask(self):
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                         limit=HEAD_MAX)
            self.writer.write(self.req)
            head = await self.reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.I)
            if not m:
                raise ConnectionError("answer without Content-Length")
            await self.reader.readexactly(int(m.group(1)))
            if re.search(rb"\r\nconnection:[ \t]*close", head, re.I):
                self.close()
            return head.startswith(b"HTTP/1.1 200 ")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.close()
            raise ConnectionError(repr(e)) from None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _run(mode, sim, gw, cookie, rids, interval, warm_s, seconds):
    """One run of len(rids) clients. -> dict(upstream, secs, ok, errors)."""
    loop = asyncio.get_running_loop()
    tally = {"ok": 0, "errors": 0}
    rnd = random.Random(len(rids))
    start = time.monotonic()
    deadline = start + warm_s + seconds
    clients = []
    chan = None
    if mode == "direct":
        host, port = sim.url[len("http://"):].rsplit(":", 1)
        clients = [_Direct(host, int(port), cookie, r) for r in rids]
        asks = [c.ask for c in clients]
    else:
        chan = grpc.aio.insecure_channel(gw.addr)
        stub = jobs_pb2_grpc.JobsStub(chan)
        md = (("authorization", "Bearer " + harness.KEYS["team-a"]),)

        def asker(rid):
            async def ask():
                r = await stub.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]),
                                         timeout=ANSWER_TIMEOUT_S, metadata=md)
                return len(r.statuses) == 1
            return ask
        asks = [asker(r) for r in rids]

    async def marks():
        """(time, simulator's count, clients' answers) after the warm-up and at the deadline."""
        out = []
        for at in (start + warm_s, deadline):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            t, ok = time.monotonic(), tally["ok"]
            out.append((t, await loop.run_in_executor(None, sim.count, ROUTE), ok))
        return out

    try:
        (m1, m2), _ = await asyncio.gather(
            marks(), asyncio.gather(*(_paced(interval, rnd.uniform(0, interval), deadline, a, tally)
                                      for a in asks)))
    finally:
        for c in clients:
            c.close()
        if chan is not None:
            await chan.close()
    secs = m2[0] - m1[0]
    return {"upstream": m2[1] - m1[1], "secs": secs, "ok": tally["ok"], "errors": tally["errors"],
            "calls_per_s": (m2[2] - m1[2]) / secs}


def measure(work, start_jobs, clients, seconds, interval, warm_s):
    """clients: the sweep, e.g. (1, 10, 50, 100, 200); start_jobs(gw, n, label) -> rids.
    -> [dict(clients, direct=_run's dict, gateway=_run's dict)]."""
    runs = len(clients) * 2 * (warm_s + seconds + ANSWER_TIMEOUT_S)
    sim = harness.Sim(work, name="sim-step10", job_seconds=int(runs) + 120,
                      extra_args=["--credits", "1000000"])
    gw = None
    try:
        gw = harness.Gateway(work, sim.url, name="gw-step10")
        rids = start_jobs(gw, max(clients), "sweep")
        cookie = sim.login()
        out = []
        for i, n in enumerate(clients):
            got = {}
            # Alternate which mode goes first, so a drift of the machine's load falls on both.
            for mode in (("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")):
                got[mode] = asyncio.run(_run(mode, sim, gw, cookie, rids[:n], interval, warm_s,
                                             seconds))
            out.append({"clients": n, "direct": got["direct"], "gateway": got["gateway"]})
        return out
    finally:
        if gw:
            gw.stop()
        sim.stop()
