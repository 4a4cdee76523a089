"""The client examples (examples/python, examples/node; issue 21) against the real gateway and
simulator: each really uploads, starts, watches to the end and downloads; a failed job, a wrong,
a read-only and a missing key end with the documented exit status; under a tiny rate limit the
examples still complete through their retry policy (grpc-retry-pushback-ms), with the gateway's
rate-limited counter showing that calls were refused on the way; a StartJob answered 503 upstream
is retried with its idempotency key after the pushback and runs once; a watch cut by the
gateway's maximum connection age is opened again.

ctest integration.examples (not part of integration.gateway: the Node example needs its npm
packages, installed here into <build>/examples-node as tests/sdk/run installs the SDK).
"""
import filecmp
import json
import os
import shutil
import subprocess

import pytest

import harness

EXAMPLES = os.path.join(harness.REPO, "examples")
PY_EXAMPLE = os.path.join(EXAMPLES, "python", "a3d_example.py")
NODE_DIR = os.path.join(EXAMPLES, "node")
NODE_EXAMPLE = os.path.join(NODE_DIR, "a3d_example.js")
NODE_DEST = os.path.join(harness.BUILD, "examples-node")
NPM_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120         # one example run, start to end (jobs take 1 s in the simulator)
EXIT_OK, EXIT_RPC, EXIT_USAGE, EXIT_JOB = 0, 1, 2, 3

# A tenant whose bucket holds exactly one upload (UploadVideo and StartJob cost 5 each): every
# run is refused on the way and completes only by waiting the pushback the gateway sends.
SLOW_KEY = "demo-key-slow"
SLOW_RATE = (2, 5)          # per_second, burst
SLOW_TENANT = """\
  - name: slow
    account: sim
    rate: {{ per_second: {rps}, burst: {burst} }}
    keys:
      - sha256: {sha}
        permissions: [read, write]
""".format(rps=SLOW_RATE[0], burst=SLOW_RATE[1], sha=harness.sha256_hex(SLOW_KEY))
BIG_BYTES = 3 << 20         # beyond the channel's retry buffer (256 KiB)


def _node_modules():
    """Installs examples/node/package.json's exact versions into the build tree (never the source
    tree); skipped when the installed package.json matches, so reruns work offline."""
    want = os.path.join(NODE_DIR, "package.json")
    have = os.path.join(NODE_DEST, "package.json")
    mods = os.path.join(NODE_DEST, "node_modules")
    if not (os.path.exists(have) and filecmp.cmp(want, have, shallow=False)
            and os.path.exists(os.path.join(mods, "@grpc", "grpc-js", "package.json"))
            and os.path.exists(os.path.join(mods, "@grpc", "proto-loader", "package.json"))):
        assert shutil.which("npm"), "npm not found (scripts/install-deps installs it)"
        os.makedirs(NODE_DEST, exist_ok=True)
        shutil.copy(want, have)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock",
                        "--loglevel=error"], cwd=NODE_DEST, check=True, timeout=NPM_TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    return mods


@pytest.fixture(scope="module")
def node_path():
    assert shutil.which("node"), "node not found (scripts/install-deps installs it)"
    return _node_modules()


# state.reconcile_settle_ms: a keyed StartJob whose /process failed ambiguously is resubmitted only
# this long after it (default 30 s). Here longer than the examples' retry backoffs can add up to
# (0.5 + 1 + 2 + 4 s at most over 5 attempts): a start retried after a 503 completes only when
# the gateway's pushback says how long to wait.
SETTLE_MS = 8000


@pytest.fixture(scope="module")
def gw(stack, sim):
    return stack.gateway(sim, name="gateway", extra_tenants=SLOW_TENANT,
                         state_extra=["reconcile_settle_ms: %d" % SETTLE_MS])


def _run(lang, node_path, gw, video, out_dir, key=harness.KEYS["team-a"], extra_env=None):
    """Runs one example to its end (bounded). -> (exit status, output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3D_")}
    # The simulator's signed URLs name 127.0.0.1: never send them to a proxy.
    env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", A3D_ADDR=gw.addr, A3D_JOB_TIMEOUT_S="60")
    if key is not None:
        env["A3D_API_KEY"] = key
    env.update(extra_env or {})
    if lang == "python":
        env["A3D_PY_STUBS"] = harness.PY_DIR
        argv = ["/usr/bin/python3", PY_EXAMPLE, video, out_dir]
    else:
        env["NODE_PATH"] = node_path
        argv = ["node", NODE_EXAMPLE, video, out_dir]
    p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S, text=True)
    print("--- %s example, exit %d:\n%s" % (lang, p.returncode, p.stdout))
    return p.returncode, p.stdout


def _video(tmp_path, name, size=None):
    """A copy of the tiny MP4 fixture under `name` (the simulator's failure hooks read the name),
    padded with zeros to `size` bytes."""
    data = open(harness.TINY_MP4, "rb").read()
    path = os.path.join(str(tmp_path), name)
    with open(path, "wb") as f:
        f.write(data)
        if size:
            f.write(b"\0" * (size - len(data)))
    return path


def _outputs(out_dir):
    """{file name: size} of what an example wrote."""
    if not os.path.isdir(out_dir):
        return {}
    return {n: os.path.getsize(os.path.join(out_dir, n)) for n in sorted(os.listdir(out_dir))}


def _check_outputs(out_dir):
    files = _outputs(out_dir)
    exts = {n.rsplit(".", 1)[-1] for n in files}
    assert {"bvh", "fbx"} <= exts, files
    assert all(size > 0 for size in files.values()), files
    assert not any(n.endswith(".part") for n in files), files


LANGS = ["python", "node"]


@pytest.mark.parametrize("lang", LANGS)
def test_flow(lang, node_path, gw, sim, tmp_path):
    """upload -> start -> watch -> download: the job really ran upstream and its files are here."""
    before = sim.count("POST /process")
    out = os.path.join(str(tmp_path), "out")
    rc, text = _run(lang, node_path, gw, _video(tmp_path, "clip.mp4"), out)
    assert rc == EXIT_OK, text
    _check_outputs(out)
    assert sim.count("POST /process") == before + 1
    assert "SUCCESS" in text and "done: outputs of" in text, text
    assert "X-Goog-Signature" not in text, "a signed URL was printed"


# name of the uploaded file, key -> exit status, what the output must say
ERRORS = [
    ("clip-fail-513.mp4", harness.KEYS["team-a"], EXIT_JOB, "513"),
    ("clip.mp4", "not-a-key", EXIT_RPC, "UNAUTHENTICATED"),
    ("clip.mp4", harness.KEYS["viewer"], EXIT_RPC, "PERMISSION_DENIED"),
    ("clip.mp4", None, EXIT_USAGE, "A3D_API_KEY"),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name,key,want_rc,want_text", ERRORS)
def test_errors(lang, name, key, want_rc, want_text, node_path, gw, tmp_path):
    out = os.path.join(str(tmp_path), "out")
    rc, text = _run(lang, node_path, gw, _video(tmp_path, name), out, key=key)
    assert rc == want_rc, text
    assert want_text in text, text
    assert _outputs(out) == {}


def _limited(gw, tenant):
    return harness.metrics(gw).get('animate3d_gateway_ratelimited_total{tenant="%s"}' % tenant, 0)


@pytest.mark.parametrize("size", [None, BIG_BYTES], ids=["tiny", "3MiB"])
@pytest.mark.parametrize("lang", LANGS)
def test_rate_limited_tenant_completes(lang, size, node_path, gw, tmp_path):
    """A tenant whose bucket holds one upload's cost: the StartJob after the upload (and the
    calls after it) are refused RESOURCE_EXHAUSTED with grpc-retry-pushback-ms, and the example
    still finishes because the channel's retry policy waits the pushback and tries again. The
    3 MiB upload, started on an empty bucket, is refused too and sent again by the example
    itself after the pushback (UploadVideo is outside the channel's retry policy)."""
    md = gw.md(key=SLOW_KEY)
    if size:
        # Empty the bucket first, so that the upload itself is refused.
        for _ in range(SLOW_RATE[1]):
            try:
                gw.jobs.ListJobs(harness.jobs_pb2.ListJobsRequest(), timeout=5, metadata=md)
            except harness.grpc.RpcError as e:
                assert e.code() == harness.grpc.StatusCode.RESOURCE_EXHAUSTED, e
    before = _limited(gw, "slow")
    out = os.path.join(str(tmp_path), "out")
    rc, text = _run(lang, node_path, gw, _video(tmp_path, "clip.mp4", size), out, key=SLOW_KEY)
    assert rc == EXIT_OK, text
    _check_outputs(out)
    after = _limited(gw, "slow")
    print("%s, %s upload: %d calls of tenant slow refused by its rate limit on the way"
          % (lang, "tiny" if size is None else "3 MiB", after - before))
    assert after > before, "no call was rate limited: the test did not test the retry policy"
    if size:    # refused at its start: UploadVideo is re-sent by the example, not the channel
        assert "upload: RESOURCE_EXHAUSTED" in text and "sending again" in text, text


# A gateway that closes every connection about 1.1 s after it opened (grpc.max_connection_age_ms
# and its grace), in front of a simulator whose jobs take 6 s: a watch cannot last to the end on
# one connection, it breaks UNAVAILABLE after statuses came, which the channel may not retry.
AGE_TOP = """\
grpc:
  max_connection_age_ms: 1000
  max_connection_age_grace_ms: 100
"""
AGE_JOB_SECONDS = 6


@pytest.fixture(scope="module")
def aged_gw(stack):
    slow_sim = stack.sim(name="sim-6s", job_seconds=AGE_JOB_SECONDS)
    return stack.gateway(slow_sim, name="gateway-aged", extra_top=AGE_TOP)


@pytest.mark.parametrize("lang", LANGS)
def test_watch_reopened_after_connection_closed(lang, node_path, aged_gw, tmp_path):
    out = os.path.join(str(tmp_path), "out")
    rc, text = _run(lang, node_path, aged_gw, _video(tmp_path, "clip.mp4"), out)
    assert rc == EXIT_OK, text
    _check_outputs(out)
    assert "watching again" in text, text


@pytest.mark.parametrize("lang", LANGS)
def test_start_retried_after_upstream_unavailable(lang, node_path, gw, clean_sim, tmp_path):
    """Upstream answers the first POST /process with 503: the gateway says UNAVAILABLE, the
    channel retries StartJob with the same idempotency key; the gateway defers the key's
    resubmission for the settle time (UNAVAILABLE with that pushback), the channel waits it out,
    and exactly one job runs."""
    sim = clean_sim
    jobs_before = len(sim.jobs()["jobs"])
    sim.faults("POST /process", status=503, count=1)
    out = os.path.join(str(tmp_path), "out")
    rc, text = _run(lang, node_path, gw, _video(tmp_path, "clip.mp4"), out)
    assert rc == EXIT_OK, text
    _check_outputs(out)
    st, _, body = harness.http("GET", sim.url + "/_sim/faults")
    hits = [f.get("hits") for f in json.loads(body).get("faults", [])] if st == 200 else None
    print("%s: fault hits %s" % (lang, hits))
    assert hits == [1], "the 503 was not served: %s" % (hits,)
    assert len(sim.jobs()["jobs"]) == jobs_before + 1
