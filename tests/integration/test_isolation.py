"""Tenant isolation (issue 6): team-b probes every id of team-a through every RPC and gets exactly
what it gets for an id that does not exist; lists show only the tenant's own items; the viewer key
changes nothing; jobs created outside the gateway are visible only to a see_foreign_jobs tenant;
ownership survives a restart on the same state file; a corrupt or unwritable state file stops the
gateway; state.read_only serves reads and refuses mutations.

Runs on SQLite and, with A3D_IT_BACKEND=postgres (ctest integration.postgres), on PostgreSQL, where
the state-file tests skip themselves.
"""
import os
import stat

import grpc
import pytest

import harness
from harness import characters_pb2, jobs_pb2, webhooks_pb2

ADMIN_KEY = "demo-key-admin-isolation"
ADMIN_TENANT = """\
  - name: admin
    account: sim
    see_foreign_jobs: true
    keys:
      - sha256: %s
        permissions: [read]
""" % harness.sha256_hex(ADMIN_KEY)
FAKE_RID = "1111111111111111111111"          # base58-shaped, never issued
FAKE_ID = "2222222222222222222222"
FAKE_FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 64
FAKE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HOOK = "http://127.0.0.1:9/hook"


def _fixture_bytes():
    with open(harness.TINY_MP4, "rb") as f:
        return f.read()


def _code(fn, req, tenant="team-b", key=None):
    """-> (status code, details) of one call; OK -> (OK, None)."""
    try:
        fn(req, timeout=10, metadata=harness.Gateway.md(tenant, key))
        return grpc.StatusCode.OK, None
    except grpc.RpcError as e:
        return e.code(), e.details()


def _stream_code(fn, req, tenant="team-b"):
    try:
        for _ in fn(req, timeout=5, metadata=harness.Gateway.md(tenant)):
            pass
        return grpc.StatusCode.OK, None
    except grpc.RpcError as e:
        return e.code(), e.details()


@pytest.fixture(scope="module")
def gw(stack, sim):
    return stack.gateway(sim, name="gw-iso", extra_tenants=ADMIN_TENANT)


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


@pytest.fixture(scope="module")
def team_a(gw):
    """Everything team-a owns: uploads (PUT and stream), a finished job, a finished mp_detection
    job, a custom model, a webhook endpoint."""
    data = _fixture_bytes()
    url = harness.upload_put(gw, "iso-a.mp4", data, tenant="team-a")
    url_stream = harness.upload_stream(gw, "iso-a-stream.mp4", data, tenant="team-a").url
    rid = harness.start_job(gw, "team-a", upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    mp_url = harness.upload_put(gw, "iso-a-persons-2.mp4", data, tenant="team-a")
    rid_mp = harness.start_job(gw, "team-a", upload_url=mp_url,
                               params=jobs_pb2.Params(pipeline="mp_detection"))
    harness.wait_job(gw, rid, "team-a")
    harness.wait_job(gw, rid_mp, "team-a")
    model = _model(gw, "team-a", "iso-hero-a")
    ep = gw.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]),
                                    timeout=5, metadata=gw.md("team-a")).id
    return dict(url=url, url_stream=url_stream, rid=rid, rid_mp=rid_mp, model=model, ep=ep)


@pytest.fixture(scope="module")
def team_b(gw):
    data = _fixture_bytes()
    url = harness.upload_put(gw, "iso-b.mp4", data, tenant="team-b")
    rid = harness.start_job(gw, "team-b", upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
    harness.wait_job(gw, rid, "team-b")
    model = _model(gw, "team-b", "iso-hero-b")
    ep = gw.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]),
                                    timeout=5, metadata=gw.md("team-b")).id
    return dict(url=url, rid=rid, model=model, ep=ep)


def _probes(gw, a, b, sim_url):
    """(label, rpc, request naming team-a's id, the same request naming an id that does not exist)."""
    J, C, W = gw.jobs, gw.characters, gw.webhooks
    fake_url = sim_url + "/storage/u/%s/nothing.mp4" % FAKE_ID
    models = [jobs_pb2.TrackedModel(tracking_id=1, model_id=b["model"])]
    return [
        ("GetStatus", J.GetStatus, jobs_pb2.GetStatusRequest(rids=[a["rid"]]),
         jobs_pb2.GetStatusRequest(rids=[FAKE_RID])),
        ("GetStatus mp", J.GetStatus, jobs_pb2.GetStatusRequest(rids=[a["rid_mp"]]),
         jobs_pb2.GetStatusRequest(rids=[FAKE_RID])),
        ("GetDownloadUrls", J.GetDownloadUrls, jobs_pb2.GetDownloadUrlsRequest(rids=[a["rid"]]),
         jobs_pb2.GetDownloadUrlsRequest(rids=[FAKE_RID])),
        ("GetVideoInfo", J.GetVideoInfo, jobs_pb2.GetVideoInfoRequest(upload_url=a["url"]),
         jobs_pb2.GetVideoInfoRequest(upload_url=fake_url)),
        ("GetPersonUrls", J.GetPersonUrls, jobs_pb2.GetPersonUrlsRequest(rid=a["rid"]),
         jobs_pb2.GetPersonUrlsRequest(rid=FAKE_RID)),
        ("GetVideoInfo stream upload", J.GetVideoInfo, jobs_pb2.GetVideoInfoRequest(upload_url=a["url_stream"]),
         jobs_pb2.GetVideoInfoRequest(upload_url=fake_url)),
        ("StartJob upload_url", J.StartJob, jobs_pb2.StartJobRequest(upload_url=a["url"]),
         jobs_pb2.StartJobRequest(upload_url=fake_url)),
        ("StartJob rerun_rid", J.StartJob, jobs_pb2.StartJobRequest(rerun_rid=a["rid"]),
         jobs_pb2.StartJobRequest(rerun_rid=FAKE_RID)),
        ("StartJob mp_detection_rid", J.StartJob,
         jobs_pb2.StartJobRequest(mp_detection_rid=a["rid_mp"], params=jobs_pb2.Params(models=models)),
         jobs_pb2.StartJobRequest(mp_detection_rid=FAKE_RID, params=jobs_pb2.Params(models=models))),
        ("StartJob rerun_rid + key", J.StartJob,
         jobs_pb2.StartJobRequest(rerun_rid=a["rid"], idempotency_key="iso-k1"),
         jobs_pb2.StartJobRequest(rerun_rid=FAKE_RID, idempotency_key="iso-k1")),
        ("StoreModel model_id", C.StoreModel,
         characters_pb2.StoreModelRequest(model_id=a["model"], model_name="stolen"),
         characters_pb2.StoreModelRequest(model_id=FAKE_ID, model_name="stolen")),
        ("DeleteModel", C.DeleteModel, characters_pb2.DeleteModelRequest(model_id=a["model"]),
         characters_pb2.DeleteModelRequest(model_id=FAKE_ID)),
        ("ListModels model_id", C.ListModels, characters_pb2.ListModelsRequest(model_id=a["model"]),
         characters_pb2.ListModelsRequest(model_id=FAKE_ID)),
        ("GetEndpoint", W.GetEndpoint, webhooks_pb2.GetEndpointRequest(id=a["ep"]),
         webhooks_pb2.GetEndpointRequest(id=FAKE_ID)),
        ("UpdateEndpoint", W.UpdateEndpoint,
         webhooks_pb2.UpdateEndpointRequest(id=a["ep"], url=HOOK + "2", events=["job.completed"]),
         webhooks_pb2.UpdateEndpointRequest(id=FAKE_ID, url=HOOK + "2", events=["job.completed"])),
        ("DeleteEndpoint", W.DeleteEndpoint, webhooks_pb2.DeleteEndpointRequest(id=a["ep"]),
         webhooks_pb2.DeleteEndpointRequest(id=FAKE_ID)),
    ]


def test_team_b_gets_not_found_for_every_team_a_id(gw, sim, team_a, team_b):
    before = sim.count("POST /process")
    rows = []
    for label, fn, foreign, unknown in _probes(gw, team_a, team_b, sim.url):
        got, want = _code(fn, foreign), _code(fn, unknown)
        rows.append((label, got, want))
    bad = [r for r in rows if r[1][0] != grpc.StatusCode.NOT_FOUND or r[1] != r[2]]
    assert not bad, "\n".join("%s: foreign %s, unknown %s" % r for r in bad)
    # Nothing of team-a's reached upstream as a job.
    assert sim.count("POST /process") == before


def test_start_job_with_team_a_model_looks_unknown(gw, sim, team_a, team_b):
    """team-b naming team-a's custom model (params.model_id, models[]) gets exactly the answer an
    unknown model id gets, and no job runs with team-a's model."""
    jobs_before = len(sim.jobs()["jobs"])
    for field in ("model_id", "models"):
        def params(mid):
            if field == "model_id":
                return jobs_pb2.Params(model_id=mid)
            return jobs_pb2.Params(models=[jobs_pb2.TrackedModel(tracking_id=1, model_id=mid)])
        foreign = _code(gw.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=team_b["url"], params=params(team_a["model"])))
        unknown = _code(gw.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=team_b["url"], params=params(FAKE_ID)))
        assert foreign[0] != grpc.StatusCode.OK and foreign == unknown, (field, foreign, unknown)
    assert len(sim.jobs()["jobs"]) == jobs_before


def test_watch_status_of_team_a_rid(gw, team_a):
    code, details = _stream_code(gw.jobs.WatchStatus, jobs_pb2.WatchStatusRequest(rids=[team_a["rid"]]))
    assert code == grpc.StatusCode.NOT_FOUND, (code, details)


def test_mixed_rids_keep_only_own(gw, team_a, team_b):
    r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[team_a["rid"], team_b["rid"]]), timeout=5,
                          metadata=gw.md("team-b"))
    assert [s.rid for s in r.statuses] == [team_b["rid"]], r
    r = gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[team_b["rid"], team_a["rid"]]),
                                timeout=5, metadata=gw.md("team-b"))
    assert [x.rid for x in r.links] == [team_b["rid"]], r


def test_team_a_still_sees_its_own(gw, team_a):
    """The probes above changed nothing of team-a's."""
    md = gw.md("team-a")
    assert [s.rid for s in gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[team_a["rid"]]),
                                             timeout=5, metadata=md).statuses] == [team_a["rid"]]
    assert gw.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=team_a["ep"]), timeout=5,
                                   metadata=md).id == team_a["ep"]
    ids = [m.id for m in gw.characters.ListModels(characters_pb2.ListModelsRequest(), timeout=5,
                                                   metadata=md).models]
    assert team_a["model"] in ids
    info = gw.jobs.GetVideoInfo(jobs_pb2.GetVideoInfoRequest(upload_url=team_a["url"]), timeout=5, metadata=md)
    assert info.width > 0


def test_lists_show_only_own(gw, team_a, team_b):
    for tenant, mine, theirs in (("team-a", team_a, team_b), ("team-b", team_b, team_a)):
        md = gw.md(tenant)
        jobs = {j.rid for j in gw.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5, metadata=md).jobs}
        assert mine["rid"] in jobs and theirs["rid"] not in jobs and theirs.get("rid_mp") not in jobs, (tenant, jobs)
        models = gw.characters.ListModels(characters_pb2.ListModelsRequest(include_stock=True), timeout=5,
                                          metadata=md).models
        ids = {m.id for m in models}
        assert mine["model"] in ids and theirs["model"] not in ids, (tenant, ids)
        assert [m for m in models if m.platform in ("deepmotion", "roblox")], "stock models are shared"
        eps = {e.id for e in gw.webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5,
                                                       metadata=md).endpoints}
        assert mine["ep"] in eps and theirs["ep"] not in eps, (tenant, eps)


def test_viewer_changes_nothing(gw, sim, team_a):
    before = sim.count("POST /process")
    data_calls = [
        (gw.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=team_a["url"])),
        (gw.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=team_a["url"], idempotency_key="v1")),
        (gw.jobs.GetUploadUrl, jobs_pb2.GetUploadUrlRequest(name="v.mp4")),
        (gw.characters.StoreModel, characters_pb2.StoreModelRequest(model_id=team_a["model"], model_name="x")),
        (gw.characters.DeleteModel, characters_pb2.DeleteModelRequest(model_id=team_a["model"])),
        (gw.webhooks.CreateEndpoint, webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"])),
        (gw.webhooks.UpdateEndpoint, webhooks_pb2.UpdateEndpointRequest(id=team_a["ep"], url=HOOK)),
        (gw.webhooks.DeleteEndpoint, webhooks_pb2.DeleteEndpointRequest(id=team_a["ep"])),
    ]
    for fn, req in data_calls:
        code, details = _code(fn, req, tenant="viewer")
        assert code == grpc.StatusCode.PERMISSION_DENIED, (req, code, details)
    with pytest.raises(grpc.RpcError) as e:
        harness.upload_stream(gw, "viewer.mp4", b"x" * 10, tenant="viewer", timeout=5)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert sim.count("POST /process") == before
    # ... and the viewer (its own tenant) sees none of team-a's jobs.
    code, _ = _code(gw.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[team_a["rid"]]), tenant="viewer")
    assert code == grpc.StatusCode.NOT_FOUND


def test_foreign_jobs_only_for_see_foreign_tenant(gw, sim, team_a):
    """A job created upstream directly (not through the gateway) is visible to the admin tenant
    (see_foreign_jobs: true) and to nobody else; team-a's own jobs stay team-a's."""
    cookie = sim.login()
    st, _, body = harness.http("GET", sim.url + "/upload?name=foreign.mp4&resumable=0",
                               headers={"Cookie": cookie})
    assert st == 200, body
    url = __import__("json").loads(body)["url"]
    assert harness.put_bytes(url, _fixture_bytes()) in (200, 201)
    st, _, body = harness.http("POST", sim.url + "/process", headers={"Cookie": cookie},
                               body={"url": url, "processor": "video2anim", "params": ["formats=bvh"]})
    if st != 200:       # params as an object, if this upstream spelling wants it
        st, _, body = harness.http("POST", sim.url + "/process", headers={"Cookie": cookie},
                                   body={"url": url, "processor": "video2anim"})
    assert st == 200, body
    foreign = __import__("json").loads(body)["rid"]
    req = jobs_pb2.GetStatusRequest(rids=[foreign])
    for tenant in ("team-a", "team-b", "viewer"):
        assert _code(gw.jobs.GetStatus, req, tenant=tenant)[0] == grpc.StatusCode.NOT_FOUND, tenant
        listed = {j.rid for j in gw.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5,
                                                  metadata=gw.md(tenant)).jobs}
        assert foreign not in listed, tenant
    r = gw.jobs.GetStatus(req, timeout=5, metadata=gw.md(key=ADMIN_KEY))
    assert [s.rid for s in r.statuses] == [foreign]
    listed = {j.rid for j in gw.jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5,
                                              metadata=gw.md(key=ADMIN_KEY)).jobs}
    assert foreign in listed and team_a["rid"] not in listed
    assert _code(gw.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[team_a["rid"]]),
                 key=ADMIN_KEY)[0] == grpc.StatusCode.NOT_FOUND


# ---- durability --------------------------------------------------------------------------------

def test_ownership_survives_restart(stack, sim, tmp_path):
    state = str(tmp_path / "restart.db")
    g1 = harness.Gateway(str(tmp_path), sim.url, name="gw-restart-1", state_path=state)
    try:
        url = harness.upload_put(g1, "restart.mp4", _fixture_bytes(), tenant="team-a")
        rid = harness.start_job(g1, "team-a", upload_url=url)
        ep = g1.webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]),
                                        timeout=5, metadata=g1.md("team-a")).id
    finally:
        rc, killed = g1.stop()
    assert (rc, killed) == (0, False)
    g2 = stack.gateway(sim, name="gw-restart-2", state_path=state)
    assert [s.rid for s in g2.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5,
                                             metadata=g2.md("team-a")).statuses] == [rid]
    assert g2.webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep), timeout=5,
                                   metadata=g2.md("team-a")).id == ep
    for fn, req in ((g2.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[rid])),
                    (g2.webhooks.GetEndpoint, webhooks_pb2.GetEndpointRequest(id=ep)),
                    (g2.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=url))):
        assert _code(fn, req, tenant="team-b")[0] == grpc.StatusCode.NOT_FOUND, req


def _start_fails(tmp_path, sim, name, state_path, state_extra=()):
    """Start a gateway expected to refuse: -> (exit code, log text)."""
    with pytest.raises(RuntimeError) as e:
        g = harness.Gateway(str(tmp_path), sim.url, name=name, state_path=state_path, state_extra=state_extra)
        g.stop()
    log = harness.read_text(os.path.join(str(tmp_path), name + ".log"))
    return str(e.value), log


@pytest.mark.skipif(harness.POSTGRES, reason=harness.SKIP_ON_POSTGRES)
def test_corrupt_state_file_refuses_to_start(sim, tmp_path):
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not a database, just garbage " * 200)
    msg, log = _start_fails(tmp_path, sim, "gw-corrupt", str(bad))
    assert "exited with 1" in msg, msg
    assert "corrupt" in log and str(bad) in log, log[-2000:]


@pytest.mark.skipif(harness.POSTGRES, reason=harness.SKIP_ON_POSTGRES)
def test_unwritable_state_file_refuses_to_start(stack, sim, tmp_path):
    """Non-root: a valid state file in a read-only directory, itself read-only. Root writes through
    modes, so there the path cannot be created at all (a parent is a regular file)."""
    if os.geteuid() == 0:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        msg, log = _start_fails(tmp_path, sim, "gw-unwritable", str(blocker / "state.db"))
        assert "exited with 1" in msg, msg
        assert str(blocker / "state.db") in log, log[-2000:]
        return
    state = str(tmp_path / "ro.db")
    g = stack.gateway(sim, name="gw-mkstate", state_path=state)     # creates a valid file
    assert g.stop() == (0, False)
    d = tmp_path / "rodir"
    d.mkdir()
    ro = str(d / "ro.db")
    os.replace(state, ro)
    os.chmod(ro, stat.S_IRUSR)
    os.chmod(str(d), stat.S_IRUSR | stat.S_IXUSR)
    try:
        msg, log = _start_fails(tmp_path, sim, "gw-unwritable", ro)
        assert "exited with 1" in msg, msg
        assert ro in log, log[-2000:]
    finally:
        os.chmod(str(d), stat.S_IRWXU)
        os.chmod(ro, stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.skipif(harness.POSTGRES, reason=harness.SKIP_ON_POSTGRES)
def test_read_only_serves_reads_refuses_writes(stack, sim, tmp_path):
    state = str(tmp_path / "readonly.db")
    g1 = harness.Gateway(str(tmp_path), sim.url, name="gw-rw", state_path=state)
    try:
        url = harness.upload_put(g1, "ro.mp4", _fixture_bytes(), tenant="team-a")
        rid = harness.start_job(g1, "team-a", upload_url=url)
    finally:
        assert g1.stop() == (0, False)
    g = stack.gateway(sim, name="gw-ro", state_path=state, state_extra=["read_only: true"])
    md = g.md("team-a")
    assert [s.rid for s in g.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5,
                                            metadata=md).statuses] == [rid]
    assert _code(g.jobs.GetStatus, jobs_pb2.GetStatusRequest(rids=[rid]), tenant="team-b")[0] == \
        grpc.StatusCode.NOT_FOUND
    before = sim.count("POST /process")
    for fn, req in ((g.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=url)),
                    (g.jobs.StartJob, jobs_pb2.StartJobRequest(upload_url=url, idempotency_key="ro-1")),
                    (g.jobs.GetUploadUrl, jobs_pb2.GetUploadUrlRequest(name="x.mp4")),
                    (g.webhooks.CreateEndpoint, webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]))):
        code, details = _code(fn, req, tenant="team-a")
        assert code == grpc.StatusCode.UNAVAILABLE and "read-only" in details, (req, code, details)
    with pytest.raises(grpc.RpcError) as e:
        harness.upload_stream(g, "ro-stream.mp4", b"x" * 10, tenant="team-a", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "read-only" in e.value.details()
    assert sim.count("POST /process") == before


def test_reload_refuses_state_changes(stack, sim, tmp_path):
    """SIGHUP with different state.* settings keeps the running configuration (restart to apply):
    the store stays writable and its file stays the same. (PostgreSQL refuses read_only: there the
    change is the idempotency keys' lifetime.)"""
    import signal
    import time
    g = stack.gateway(sim, name="gw-reload", state_path=str(tmp_path / "reload.db"))
    text = harness.read_text(g.config_path)
    change = "  idempotency_ttl_s: 4321\n" if harness.POSTGRES else "  read_only: true\n"
    with open(g.config_path, "w") as f:
        f.write(text.replace("state:\n", "state:\n" + change, 1))
    g.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "state settings changed" not in g.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "state settings changed" in g.log_text()
    url = harness.upload_put(g, "reload.mp4", _fixture_bytes(), tenant="team-a")    # still writable
    assert harness.start_job(g, "team-a", upload_url=url)
