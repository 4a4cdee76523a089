"""Three gateway replicas on one PostgreSQL (issue 15): one simulator, one database, three gateways
that differ only in their ports (cluster.expected_replicas: 3).

- jobs, custom models and webhook endpoints created through any replica are their tenant's through
  every replica, and NOT_FOUND to team-b exactly as an id that does not exist;
- upload on A, StartJob on B, GetStatus/WatchStatus on C;
- 200 keyed StartJob calls (40 keys x 5 identical duplicates) spread round-robin over the replicas,
  one replica SIGKILLed midway, clients retrying on the others: one rid per key, one upstream job
  per key (the simulator's own job list);
- PostgreSQL stopped for 10 s under traffic: writes answer UNAVAILABLE naming the store, reads of
  ownership a replica already checked go on, /readyz says why, nothing crashes; after the restart
  everything works again without restarting a gateway, and every acknowledged rid is still there.

Runs only with A3D_IT_BACKEND=postgres, inside tests/lib/with-postgres (ctest integration.postgres).
Every loop is bounded in count and time; everything listens on 127.0.0.1.
"""
import concurrent.futures as cf
import json
import re
import threading
import time

import grpc
import pytest

import harness
from harness import characters_pb2, jobs_pb2, jobs_pb2_grpc, webhooks_pb2

pytestmark = pytest.mark.skipif(not harness.POSTGRES,
                                reason="replicas share state only through PostgreSQL: "
                                       "run with A3D_IT_BACKEND=postgres (ctest integration.postgres)")

REPLICAS = 3
CLUSTER_YAML = "cluster:\n  expected_replicas: %d\n" % REPLICAS
HOOK = "http://127.0.0.1:9/hook"
FAKE_RID = "1111111111111111111111"          # base58-shaped, never issued
FAKE_ID = "2222222222222222222222"
FAKE_FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 64
FAKE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

# The kill test.
KEYS_N = 40                 # distinct idempotency keys
DUPS = 5                    # identical calls per key: KEYS_N * DUPS = 200 calls
WORKERS = 30                # client threads
KILL_AFTER = KEYS_N * DUPS // 3     # completed calls before the SIGKILL
RETRY_BUDGET_S = 60.0       # per call: covers a dead replica's lease (30 s) and the settle time
BACKOFF_S = 0.2
CALL_TIMEOUT_S = 10.0       # per attempt
PROCESS_LATENCY_MS = 600    # sim delay on POST /process: keys are PENDING when the kill comes
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.RESOURCE_EXHAUSTED}

# The outage test.
OUTAGE_S = 10.0
PROBE_TIMEOUT_S = harness.PG_TIMEOUT_MS / 1000.0 + 3     # a write may wait timeout_ms; < OUTAGE_S
TRAFFIC_TIMEOUT_S = PROBE_TIMEOUT_S
RECOVERY_BUDGET_S = 30.0
STORE_MSG = re.compile(r"PostgreSQL|state store")

# Every rid acknowledged to a caller in this module -> its tenant (checked after the outage).
ACKED = {}


def _fixture_bytes():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _no_query(url):
    return url.split("?", 1)[0]


def _code(fn, req, tenant="team-b", timeout=10):
    """-> (status code, details) of one unary call; OK -> (OK, None)."""
    try:
        fn(req, timeout=timeout, metadata=harness.Gateway.md(tenant))
        return grpc.StatusCode.OK, None
    except grpc.RpcError as e:
        return e.code(), e.details()


class Cluster:
    """The simulator and the live replicas; a killed replica is replaced by a new one (new ports)."""

    def __init__(self, stack, sim):
        self.stack, self.sim = stack, sim
        self.gws = []
        self.started = 0

    def start(self):
        g = self.stack.gateway(self.sim, name="replica-%d" % self.started, extra_top=CLUSTER_YAML)
        self.started += 1
        return g

    def kill(self, i):
        """SIGKILL replica i; a new replica takes its place in gws. -> the killed one."""
        g = self.gws[i]
        self.stack.kill(g)
        return g

    def replace(self, i):
        self.gws[i] = self.start()
        return self.gws[i]


@pytest.fixture(scope="module")
def cluster(stack):
    sim = stack.sim(name="sim", job_seconds=1, extra_args=["--credits", "1000000"])
    c = Cluster(stack, sim)
    c.gws = [c.start() for _ in range(REPLICAS)]
    return c


def _model(gw, tenant, name):
    up = gw.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name=name, model_ext="fbx", thumb_ext="png",
                                                resumable=False),
        timeout=5, metadata=gw.md(tenant))
    assert harness.put_bytes(up.model_url, FAKE_FBX) == 200
    assert harness.put_bytes(up.thumb_url, FAKE_PNG) == 200
    return gw.characters.StoreModel(
        characters_pb2.StoreModelRequest(model_url=up.model_url, model_name=name, thumb_url=up.thumb_url),
        timeout=5, metadata=gw.md(tenant)).model_id


def _visible(g, tenant, rids):
    """rids (any number) that GetStatus on g shows to tenant; batches of 10 (the simulator takes
    about 11 rids per /status URL)."""
    seen, errors = set(), []
    rids = sorted(rids)
    for i in range(0, len(rids), 10):
        try:
            r = g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids[i:i + 10]), timeout=10,
                                 metadata=g.md(tenant))
            seen |= {s.rid for s in r.statuses}
        except grpc.RpcError as e:
            errors.append((rids[i:i + 10], e.code().name, e.details()))
    return seen, errors


# ---- a. one truth through every replica ---------------------------------------------------------

def test_objects_visible_through_every_replica(cluster):
    gws, data = cluster.gws, _fixture_bytes()
    created = []            # (creator index, rid, model id, endpoint id)
    for i, g in enumerate(gws):
        url = harness.upload_put(g, "rep-a-%d.mp4" % i, data, tenant="team-a")
        rid = harness.start_job(g, "team-a", upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
        ACKED[rid] = "team-a"
        model = _model(g, "team-a", "rep-hero-%d" % i)
        ep = g.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]),
                                       timeout=5, metadata=g.md("team-a")).id
        created.append((i, rid, model, ep))
    # One of team-b's, so that team-a's lists are checked for not showing it either.
    url_b = harness.upload_put(gws[2], "rep-a-b.mp4", data, tenant="team-b")
    rid_b = harness.start_job(gws[2], "team-b", upload_url=url_b)
    ACKED[rid_b] = "team-b"

    problems = []
    for j, g in enumerate(gws):
        md_a = g.md("team-a")
        jobs_a = {x.rid for x in g.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=10, metadata=md_a).jobs}
        models_a = {m.id for m in g.characters.ListModels(characters_pb2.ListModelsRequest(), timeout=10,
                                                          metadata=md_a).models}
        eps_a = {e.id for e in g.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=10,
                                                        metadata=md_a).endpoints}
        jobs_b = {x.rid for x in g.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=10,
                                                 metadata=g.md("team-b")).jobs}
        models_b = {m.id for m in g.characters.ListModels(characters_pb2.ListModelsRequest(), timeout=10,
                                                          metadata=g.md("team-b")).models}
        eps_b = {e.id for e in g.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=10,
                                                        metadata=g.md("team-b")).endpoints}
        if rid_b in jobs_a or rid_b not in jobs_b:
            problems.append("replica %d: team-b's job %s: in team-a's list %s, in team-b's %s"
                            % (j, rid_b, rid_b in jobs_a, rid_b in jobs_b))
        for i, rid, model, ep in created:
            where = "made on replica %d, asked on %d" % (i, j)
            r = g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=10, metadata=md_a)
            if [s.rid for s in r.statuses] != [rid]:
                problems.append("%s: GetStatus(team-a) of its job %s -> %s" % (where, rid, r))
            if rid not in jobs_a:
                problems.append("%s: ListJobs(team-a) misses %s" % (where, rid))
            if model not in models_a:
                problems.append("%s: ListModels(team-a) misses %s" % (where, model))
            got = _code(g.characters.ListModels, characters_pb2.ListModelsRequest(model_id=model), "team-a")
            if got[0] != grpc.StatusCode.OK:
                problems.append("%s: ListModels(team-a, model_id) -> %s" % (where, got))
            got = _code(g.webhooks.GetEndpoint, webhooks_pb2.GetEndpointRequest(id=ep), "team-a")
            if got[0] != grpc.StatusCode.OK:
                problems.append("%s: GetEndpoint(team-a) -> %s" % (where, got))
            if ep not in eps_a:
                problems.append("%s: ListEndpoints(team-a) misses %s" % (where, ep))
            # team-b: exactly the answer for an id that does not exist.
            for label, fn, foreign, unknown in (
                    ("GetStatus", g.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[rid]),
                     jobs_pb2.GetStatusRequest(rids=[FAKE_RID])),
                    ("ListModels model_id", g.characters.ListModels,
                     characters_pb2.ListModelsRequest(model_id=model),
                     characters_pb2.ListModelsRequest(model_id=FAKE_ID)),
                    ("GetEndpoint", g.webhooks.GetEndpoint, webhooks_pb2.GetEndpointRequest(id=ep),
                     webhooks_pb2.GetEndpointRequest(id=FAKE_ID))):
                a, b = _code(fn, foreign), _code(fn, unknown)
                if a[0] != grpc.StatusCode.NOT_FOUND or a != b:
                    problems.append("%s: team-b %s -> %s, for an unknown id %s" % (where, label, a, b))
            if rid in jobs_b or model in models_b or ep in eps_b:
                problems.append("%s: team-b lists team-a's job %s / model %s / endpoint %s"
                                % (where, rid in jobs_b, model in models_b, ep in eps_b))
    assert not problems, "\n".join(problems)


# ---- b. a normal flow spread over the replicas -------------------------------------------------

def _watch_to_end(g, rid, tenant="team-a", timeout=30.0):
    """WatchStatus until a terminal state or the stream ends. -> (last JobStatus, code, messages)."""
    last, n = None, 0
    stream = g.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), timeout=timeout,
                                metadata=g.md(tenant))
    try:
        for st in stream:
            n += 1
            if st.rid == rid:
                last = st
            if last is not None and last.state in harness.TERMINAL:
                stream.cancel()
                return last, grpc.StatusCode.OK, n
            if n > 500:
                break
    except grpc.RpcError as e:
        return last, e.code(), n
    return last, grpc.StatusCode.OK, n


def test_upload_on_a_start_on_b_status_on_c(cluster):
    a, b, c = cluster.gws
    data = _fixture_bytes()
    # UploadVideo (stream) on A -> GetVideoInfo on C -> StartJob on B -> GetStatus on C.
    up = harness.upload_stream(a, "rep-b-stream.mp4", data, tenant="team-a")
    info = c.jobs.GetVideoInfo(jobs_pb2.GetVideoInfoRequest(upload_url=up.url), timeout=10,
                               metadata=c.md("team-a"))
    assert info.width > 0, info
    rid = harness.start_job(b, "team-a", upload_url=up.url, params=jobs_pb2.Params(formats=["bvh"]))
    ACKED[rid] = "team-a"
    st = harness.wait_job(c, rid, "team-a", timeout=30)
    assert st.state == jobs_pb2.SUCCESS, st
    # GetUploadUrl + PUT on C -> StartJob on A -> WatchStatus on B.
    url = harness.upload_put(c, "rep-b-put.mp4", data, tenant="team-a")
    rid2 = harness.start_job(a, "team-a", upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    ACKED[rid2] = "team-a"
    last, code, n = _watch_to_end(b, rid2)
    assert code == grpc.StatusCode.OK and last is not None and last.state == jobs_pb2.SUCCESS, (code, n, last)
    # team-b cannot start a job from team-a's upload through any replica.
    for g in cluster.gws:
        assert _code(g.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=url))[0] == grpc.StatusCode.NOT_FOUND


# ---- c. 200 keyed StartJob, one replica SIGKILLed midway ---------------------------------------

class _Call:
    """One client call: the key's identical request, first on replica `first`, then round-robin
    over the others on transient errors; bounded in time."""

    def __init__(self, idx, key, url, stubs, first):
        self.idx, self.key, self.url, self.stubs, self.first = idx, key, url, stubs, first
        self.rid = None
        self.attempts = 0
        self.errors = {}            # code name -> count
        self.lease_refusals = 0     # "another gateway replica is starting ..."
        self.final_error = None
        self.done_at = None

    def run(self, t0, counter):
        req = jobs_pb2.StartJobRequest(upload_url=self.url, params=jobs_pb2.Params(formats=["bvh"]),
                                       idempotency_key=self.key)
        deadline = time.monotonic() + RETRY_BUDGET_S
        try:
            while True:
                stub = self.stubs[(self.first + self.attempts) % len(self.stubs)]
                self.attempts += 1
                try:
                    self.rid = stub.StartJob(req, timeout=CALL_TIMEOUT_S,
                                             metadata=harness.Gateway.md("team-a")).rid
                    return self
                except grpc.RpcError as e:
                    self.errors[e.code().name] = self.errors.get(e.code().name, 0) + 1
                    if "another gateway replica" in (e.details() or ""):
                        self.lease_refusals += 1
                    if e.code() not in RETRYABLE:
                        self.final_error = (e.code().name, e.details())
                        return self
                    last = (e.code().name, e.details())
                if time.monotonic() + BACKOFF_S > deadline:
                    self.final_error = ("TIMEOUT", "no rid within %.0f s; last %s" % (RETRY_BUDGET_S, last))
                    return self
                time.sleep(BACKOFF_S)
        finally:
            self.done_at = time.monotonic() - t0
            counter.inc()


class _Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def inc(self):
        with self.lock:
            self.n += 1

    def get(self):
        with self.lock:
            return self.n


def _log_outcomes(paths):
    """Reconciliation outcomes ("outcome":"adopt" ...) and lease lines counted in the logs."""
    counts = {}
    for p in paths:
        text = harness.read_text(p)
        for m in re.finditer(r'"outcome":"(\w+)"', text):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_keyed_start_jobs_survive_a_killed_replica(cluster):
    sim, data = cluster.sim, _fixture_bytes()
    urls = [harness.upload_put(cluster.gws[k % REPLICAS], "rep-c-%02d.mp4" % k, data, tenant="team-a")
            for k in range(KEYS_N)]
    # The clients' own channels: a killed replica's harness channel is closed by kill().
    channels = [grpc.insecure_channel(g.addr, options=[
        ("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
        ("grpc.max_reconnect_backoff_ms", 250)]) for g in cluster.gws]
    stubs = [jobs_pb2_grpc.JobsStub(ch) for ch in channels]
    victim = 1
    # Key-major order: a key's five duplicates are submitted together, to three replicas.
    calls = [_Call(i, "rep-key-%02d" % (i // DUPS), urls[i // DUPS], stubs, i % REPLICAS)
             for i in range(KEYS_N * DUPS)]
    counter = _Counter()
    sim.faults("POST /process", status=0, latency_ms=PROCESS_LATENCY_MS)
    process_before = sim.count("POST /process")
    t0 = time.monotonic()
    killed_at = killed_done = None
    try:
        with cf.ThreadPoolExecutor(WORKERS) as ex:
            futs = [ex.submit(c.run, t0, counter) for c in calls]
            kill_deadline = t0 + 30
            while counter.get() < KILL_AFTER and time.monotonic() < kill_deadline:
                time.sleep(0.01)
            killed_done = counter.get()
            cluster.kill(victim)
            killed_at = time.monotonic() - t0
            for f in futs:
                f.result(timeout=RETRY_BUDGET_S + CALL_TIMEOUT_S + 30)
        wall = time.monotonic() - t0
    finally:
        sim.clear_faults()
        for ch in channels:
            ch.close()
    process_after = sim.count("POST /process")
    killed_gw = cluster.gws[victim]
    new_gw = cluster.replace(victim)            # back to three live replicas

    per_key = {}
    for c in calls:
        per_key.setdefault(c.key, []).append(c)
    failed = [(c.idx, c.key, c.final_error) for c in calls if not c.rid]
    split = {k: sorted({c.rid for c in cs if c.rid}) for k, cs in per_key.items()
             if len({c.rid for c in cs if c.rid}) != 1}
    rids = {k: cs[0].rid for k, cs in per_key.items() if cs[0].rid}
    for r in rids.values():
        ACKED[r] = "team-a"

    # Upstream truth: the simulator's jobs per upload.
    per_url = {}
    for j in sim.jobs()["jobs"]:
        per_url.setdefault(_no_query(j["url"] or ""), []).append(j["rid"])
    mine = {_no_query(u): "rep-key-%02d" % k for k, u in enumerate(urls)}
    dup = {mine[u]: r for u, r in per_url.items() if u in mine and len(r) > 1}
    lost = sorted(k for u, k in mine.items() if not per_url.get(u))
    wrong = {mine[u]: (r, rids.get(mine[u])) for u, r in per_url.items()
             if u in mine and len(r) == 1 and rids.get(mine[u]) and r[0] != rids[mine[u]]}

    # Replays on every live replica (the new one too): the same rid, no /process.
    replay_changed = []
    for k, u in enumerate(urls):
        key = "rep-key-%02d" % k
        g = cluster.gws[k % REPLICAS]
        try:
            r = g.jobs.StartJob(jobs_pb2.StartJobRequest(upload_url=u, params=jobs_pb2.Params(formats=["bvh"]),
                                                         idempotency_key=key),
                                timeout=10, metadata=g.md("team-a")).rid
        except grpc.RpcError as e:
            replay_changed.append((key, e.code().name, e.details()))
            continue
        if r != rids.get(key):
            replay_changed.append((key, r, rids.get(key)))
    process_replays = sim.count("POST /process") - process_after
    # The database's view: one finished row per key, none left PENDING, each with the key's rid.
    rows = harness.pg_sql("SELECT key, done, rid FROM a3d_idem WHERE tenant = 'team-a' AND key LIKE 'rep-key-%'")
    idem = {}
    for line in rows.splitlines():
        if line:
            k, done, r = line.split("|")
            idem[k] = (done == "t", r)
    bad_rows = {k: v for k, v in idem.items() if not v[0] or v[1] != rids.get(k)}
    if len(idem) != KEYS_N:
        bad_rows["(rows)"] = len(idem)
    hidden = {}
    for j, g in enumerate(cluster.gws):
        seen, errs = _visible(g, "team-a", set(rids.values()))
        if set(rids.values()) - seen or errs:
            hidden[j] = (sorted(set(rids.values()) - seen)[:5], errs[:2])
    leaks = [r for r in sorted(set(rids.values()))[:10]
             if _code(new_gw.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[r]))[0] != grpc.StatusCode.NOT_FOUND]

    attempts = sum(c.attempts for c in calls)
    errors = {}
    for c in calls:
        for k, v in c.errors.items():
            errors[k] = errors.get(k, 0) + v
    lease_refusals = sum(c.lease_refusals for c in calls)
    done = sorted(c.done_at for c in calls)
    outcomes = _log_outcomes([g.log_path for g in cluster.stack.gateways])
    print("\nkill test: %d calls (%d keys x %d), %d workers, %d replicas; replica %s SIGKILLed at %.2f s "
          "after %d calls completed; wall %.1f s (last call done at %.1f s, median %.1f s)"
          % (len(calls), KEYS_N, DUPS, WORKERS, REPLICAS, killed_gw.name, killed_at or -1, killed_done or -1,
             wall, done[-1], done[len(done) // 2]))
    print("kill test: %d StartJob attempts, %d retries, retried errors %s, lease refusals ('another "
          "gateway replica ...') %d" % (attempts, attempts - len(calls), json.dumps(errors, sort_keys=True),
                                        lease_refusals))
    print("kill test: rids %d distinct for %d keys; keys with >1 rid %d; calls without a rid %d; "
          "sim POST /process %d (+%d on replays); upstream jobs for our uploads %d; duplicates %d; lost %d"
          % (len(set(rids.values())), KEYS_N, len(split), len(failed), process_after - process_before,
             process_replays, sum(len(per_url.get(u, [])) for u in mine), len(dup), len(lost)))
    print("kill test: reconciliation outcomes in the logs %s; rids hidden from team-a %s; visible to team-b %d; "
          "a3d_idem rows not done or with another rid %s"
          % (json.dumps(outcomes, sort_keys=True), hidden, len(leaks), bad_rows))

    assert killed_at is not None and killed_done < len(calls), "the kill came after every call completed"
    assert not failed, failed[:10]
    assert not split, split
    assert len(set(rids.values())) == KEYS_N, rids
    assert not dup, dup
    assert not lost, lost
    assert not wrong, wrong
    assert not replay_changed, replay_changed
    assert process_replays == 0, "replays reached upstream"
    assert not hidden, hidden
    assert not leaks, leaks
    assert not bad_rows, bad_rows


# ---- d. PostgreSQL stopped for 10 s under traffic -----------------------------------------------

class _Traffic(threading.Thread):
    """Writes and reads round-robin over the replicas until stopped (bounded in count and time):
    GetUploadUrl + PUT + StartJob, and GetStatus of a job every replica has already checked."""

    MAX_ROUNDS = 2000

    def __init__(self, gws, rid_known, t0, budget_s):
        super().__init__(daemon=True)
        self.gws, self.rid_known, self.t0, self.budget_s = gws, rid_known, t0, budget_s
        self.stop_evt = threading.Event()
        self.log = []       # (t, op, replica, code name, details)
        self.acked = []
        self.crash = None

    def _one(self, op, j, fn):
        try:
            out = fn()
            self.log.append((time.monotonic() - self.t0, op, j, "OK", ""))
            return out
        except grpc.RpcError as e:
            self.log.append((time.monotonic() - self.t0, op, j, e.code().name, e.details() or ""))
            return None

    def run(self):
        data = _fixture_bytes()
        try:
            for n in range(self.MAX_ROUNDS):
                if self.stop_evt.is_set() or time.monotonic() - self.t0 > self.budget_s:
                    return
                j = n % len(self.gws)
                g = self.gws[j]
                md = g.md("team-a")
                r = self._one("GetUploadUrl", j, lambda: g.jobs.GetUploadUrl(
                    jobs_pb2.GetUploadUrlRequest(name="rep-d-%04d.mp4" % n, resumable=False),
                    timeout=TRAFFIC_TIMEOUT_S, metadata=md))
                if r is not None and harness.put_bytes(r.url, data) in (200, 201):
                    g2 = self.gws[(j + 1) % len(self.gws)]
                    rid = self._one("StartJob", (j + 1) % len(self.gws), lambda: g2.jobs.StartJob(
                        jobs_pb2.StartJobRequest(upload_url=r.url), timeout=TRAFFIC_TIMEOUT_S,
                        metadata=g2.md("team-a")).rid)
                    if rid:
                        self.acked.append(rid)
                self._one("GetStatus", j, lambda: g.jobs.GetStatus(
                    jobs_pb2.GetStatusRequest(rids=[self.rid_known]), timeout=TRAFFIC_TIMEOUT_S,
                    metadata=md))
                time.sleep(0.05)
        except Exception as e:      # noqa: BLE001  (reported by the test, never swallowed)
            self.crash = repr(e)


def _wait(pred, budget_s, step=0.1):
    """Polls pred() until true; bounded. -> seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < budget_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def _state(g):
    try:
        return harness.readyz(g, timeout=3)[1].get("state", {})
    except Exception as e:      # noqa: BLE001
        return {"error": repr(e)}


def _state_metrics(g):
    return {k.replace("animate3d_gateway_", ""): v for k, v in harness.metrics(g).items()
            if "state_" in k or "postgres" in k}


def test_postgres_outage_under_traffic(cluster):
    sim, gws, data = cluster.sim, cluster.gws, _fixture_bytes()
    assert all(_state(g).get("backend") == "postgres" and _state(g).get("reachable") is True for g in gws), \
        [_state(g) for g in gws]
    url0 = harness.upload_put(gws[0], "rep-d-known.mp4", data, tenant="team-a")
    rid_known = harness.start_job(gws[0], "team-a", upload_url=url0)
    ACKED[rid_known] = "team-a"
    for g in gws:       # every replica checks (and caches) the ownership of rid_known
        assert [s.rid for s in g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid_known]), timeout=10,
                                                metadata=g.md("team-a")).statuses] == [rid_known]
    # Uploads for the StartJob probes of the outage, one per replica and kind: the simulator's job
    # list then tells whether a refused StartJob still started a job upstream.
    spare = {(j, kind): harness.upload_put(g, "rep-d-spare-%s-%d.mp4" % (kind, j), data, tenant="team-a")
             for j, g in enumerate(gws) for kind in ("plain", "keyed")}

    t0 = time.monotonic()
    traffic = _Traffic(gws, rid_known, t0, budget_s=OUTAGE_S + RECOVERY_BUDGET_S + 30)
    traffic.start()
    problems = []
    recovered = {}
    try:
        time.sleep(1.0)
        t_stop = time.monotonic() - t0
        stop_s = harness.pg_ctl("stop")
        t_down = time.monotonic() - t0

        # /readyz says why, on every replica (bounded: the pool notices its dead connections).
        noticed = [_wait(lambda g=g: _state(g).get("reachable") is False, 10.0) for g in gws]
        states_down = [_state(g) for g in gws]
        for j, (n, st) in enumerate(zip(noticed, states_down)):
            if n is None or st.get("backend") != "postgres" or st.get("reachable") is not False \
                    or not STORE_MSG.search(st.get("why", "")):
                problems.append("replica %d: /readyz state during the outage %s (noticed after %s s)" % (j, st, n))

        # Writes: UNAVAILABLE naming the store. Reads of checked ownership: answered. All at once
        # (a write may wait state.postgres.timeout_ms for a connection), within the outage.
        probes = []
        for j, g in enumerate(gws):
            probes += [
                (j, "GetUploadUrl", g.jobs.GetUploadUrl, jobs_pb2.GetUploadUrlRequest(name="rep-d-x.mp4")),
                (j, "StartJob", g.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=spare[(j, "plain")])),
                (j, "StartJob keyed", g.jobs.StartJob,
                 jobs_pb2.StartJobRequest(upload_url=spare[(j, "keyed")], idempotency_key="rep-d-key-%d" % j)),
                (j, "CreateEndpoint", g.webhooks.CreateEndpoint,
                 webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"])),
                (j, "GetStatus cached", g.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[rid_known]))]

        def probe(p):
            """-> (replica, label, code, seconds, details, grpc-retry-pushback-ms or None)"""
            t = time.monotonic()
            try:
                p[2](p[3], timeout=PROBE_TIMEOUT_S, metadata=harness.Gateway.md("team-a"))
                return (p[0], p[1], "OK", round(time.monotonic() - t, 2), None, None)
            except grpc.RpcError as e:
                pushback = dict(e.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
                return (p[0], p[1], e.code().name, round(time.monotonic() - t, 2), e.details(), pushback)
        with cf.ThreadPoolExecutor(len(probes)) as ex:
            down_answers = list(ex.map(probe, probes))
        for j, label, code, took, details, pushback in down_answers:
            if label == "GetStatus cached":
                if code != "OK":
                    problems.append("replica %d: GetStatus of a checked rid during the outage -> %s %r"
                                    % (j, code, details))
            elif code != "UNAVAILABLE" or not STORE_MSG.search(details or "") or not pushback:
                problems.append("replica %d: %s during the outage -> %s %r (retry pushback %s)"
                                % (j, label, code, details, pushback))
        metrics_down = _state_metrics(gws[0])
        if time.monotonic() - t0 - t_stop > OUTAGE_S:
            problems.append("the outage probes took %.1f s (> the %.0f s outage)"
                            % (time.monotonic() - t0 - t_stop, OUTAGE_S))

        left = OUTAGE_S - (time.monotonic() - t0 - t_stop)
        if left > 0:
            time.sleep(left)
        for j, g in enumerate(gws):
            if g.proc.poll() is not None:
                problems.append("replica %d exited with %s during the outage" % (j, g.proc.returncode))
        start_s = harness.pg_ctl("start")
        t_up = time.monotonic() - t0

        # Recovery without restarting anything: writes work on every replica again.
        def writes_ok(g):
            if _state(g).get("reachable") is not True:
                return False
            return _code(g.jobs.GetUploadUrl, jobs_pb2.GetUploadUrlRequest(name="rep-d-up.mp4"), "team-a")[0] \
                == grpc.StatusCode.OK
        for j, g in enumerate(gws):
            took = _wait(lambda g=g: writes_ok(g), RECOVERY_BUDGET_S - (time.monotonic() - t0 - t_up), step=0.2)
            recovered[j] = None if took is None else round(time.monotonic() - t0 - t_up, 2)
            if took is None:
                problems.append("replica %d: not writable %.0f s after PostgreSQL came back; /readyz %s"
                                % (j, RECOVERY_BUDGET_S, _state(g)))
        time.sleep(1.0)         # a little traffic after the recovery too
    finally:
        traffic.stop_evt.set()
        traffic.join(timeout=30)
        if not _pg_up():
            try:
                harness.pg_ctl("start")     # never leave the next module without its database
            except Exception:       # noqa: BLE001
                pass
    assert not traffic.is_alive(), "traffic thread did not stop"
    assert traffic.crash is None, traffic.crash

    # After: a new job through every replica, and every rid acknowledged in this module (before,
    # during, after the outage) is its tenant's through every replica.
    for j, g in enumerate(gws):
        url = harness.upload_put(g, "rep-d-after-%d.mp4" % j, data, tenant="team-a")
        rid = harness.start_job(g, "team-a", upload_url=url)
        ACKED[rid] = "team-a"
    for rid in traffic.acked:
        ACKED[rid] = "team-a"
    for j, g in enumerate(gws):
        if g.proc.poll() is not None:
            problems.append("replica %d exited with %s" % (j, g.proc.returncode))
            continue
        for tenant in ("team-a", "team-b"):
            mine = {r for r, t in ACKED.items() if t == tenant}
            seen, errs = _visible(g, tenant, mine)
            if mine - seen or errs:
                problems.append("replica %d: %s's acknowledged rids missing %s, errors %s"
                                % (j, tenant, sorted(mine - seen)[:5], errs[:2]))
        other = sorted(r for r, t in ACKED.items() if t == "team-a")[:5]
        for r in other:
            if _code(g.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[r]), "team-b")[0] != grpc.StatusCode.NOT_FOUND:
                problems.append("replica %d: team-b sees %s" % (j, r))

    # Figures.
    def phase(t):
        return "before" if t < t_stop else "outage" if t < t_up else "after"
    table = {}
    odd = []
    for t, op, j, code, details in traffic.log:
        key = (phase(t), op, code)
        table[key] = table.get(key, 0) + 1
        if code != "OK" and (phase(t) == "before" or (phase(t) == "outage" and code != "UNAVAILABLE")
                             or (phase(t) == "after" and t - t_up > max([v for v in recovered.values()
                                                                         if v is not None] or [0]) + 1)):
            odd.append((round(t, 2), phase(t), op, j, code, details))
    outage_msgs = sorted({d for t, op, j, code, d in traffic.log if phase(t) == "outage" and code != "OK"})
    print("\noutage test: PostgreSQL stopped at %.2f s (pg_ctl stop took %.2f s), started at %.2f s "
          "(took %.2f s); replicas noticed after %s s; writable again after %s s"
          % (t_stop, stop_s, t_up, start_s, noticed, recovered))
    print("outage test: traffic %s" % json.dumps({"%s %s %s" % k: v for k, v in sorted(table.items())}))
    print("outage test: answers during the outage (replica, rpc, code, seconds, details, grpc-retry-pushback-ms)\n  %s"
          % "\n  ".join(json.dumps([j, lb, c, t, (d or "")[:110], pb]) for j, lb, c, t, d, pb in down_answers))
    print("outage test: traffic error messages during the outage %s" % json.dumps(outage_msgs[:6]))
    print("outage test: /readyz during the outage %s" % json.dumps(states_down))
    print("outage test: state metrics of replica 0 during the outage %s; after %s"
          % (json.dumps(metrics_down, sort_keys=True), json.dumps(_state_metrics(gws[0]), sort_keys=True)))
    # Upstream jobs started by StartJob probes that were refused: nobody owns them, and a client's
    # retry of an unkeyed StartJob starts another.
    per_url = {}
    for job in sim.jobs()["jobs"]:
        per_url.setdefault(_no_query(job["url"] or ""), []).append(job["rid"])
    orphans = {"%s on replica %d" % (kind, j): per_url[_no_query(u)] for (j, kind), u in spare.items()
               if per_url.get(_no_query(u))}
    unrecorded = sum(harness.read_text(g.log_path).count("created object could not be recorded") for g in gws)
    print("outage test: upstream jobs started by refused StartJob probes %s; 'created object could not be "
          "recorded' log lines %d; rids acknowledged by the traffic %d; acknowledged in this module %d, all "
          "checked through %d replicas" % (json.dumps(orphans, sort_keys=True), unrecorded, len(traffic.acked),
                                           len(ACKED), len(gws)))
    if odd:
        problems.append("unexpected traffic answers (before the outage, or not UNAVAILABLE during it, or "
                        "after the recovery): %s" % odd[:10])
    if orphans:
        problems.append("StartJob refused UNAVAILABLE during the outage still started upstream jobs nobody "
                        "owns: %s" % orphans)
    assert not problems, "\n".join(problems)


def _pg_up():
    try:
        harness.pg_sql("SELECT 1", timeout=5)
        return True
    except Exception:       # noqa: BLE001
        return False
