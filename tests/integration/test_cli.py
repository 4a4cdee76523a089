"""a3d, the command-line client (issue 21), run as a user would: the real build/a3d binary against
the real gateway and simulator. Output is read from pipes (not a terminal) except where a test
gives stderr a pseudo-terminal to see the progress bar.
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

import harness

# A3D_CLI_BIN runs another a3d build against the same tests (e.g. an ASan one).
A3D_BIN = os.environ.get("A3D_CLI_BIN") or os.path.join(harness.BUILD, "a3d")
RUN_TIMEOUT_S = 60          # one a3d command, jobs of the module's simulator last 1 s
COMMANDS = ("upload", "start", "watch", "download", "run", "jobs", "credits", "models")


@pytest.fixture(scope="module", autouse=True)
def a3d_built():
    assert os.access(A3D_BIN, os.X_OK), "build the a3d target first (%s)" % A3D_BIN


def _env(gw, key="demo-key-a", **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3D_")}
    env["A3D_ADDR"] = gw.addr
    if key is not None:
        env["A3D_API_KEY"] = key
    env.update(extra)
    return env


def a3d(args, env=None, cwd=None, timeout=RUN_TIMEOUT_S):
    """Runs a3d with pipes. -> CompletedProcess (text)."""
    return subprocess.run([A3D_BIN] + list(args), env=env if env is not None else {}, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def _clip(tmp_path, name="clip.mp4"):
    """The sample clip of examples/ under another name (the simulator reads its name: fail-513)."""
    with open(os.path.join(harness.REPO, "examples", "clip.mp4"), "rb") as f:
        data = f.read()
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ---- command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    r = a3d([cmd, "--help"])
    assert r.returncode == 0, r
    assert r.stdout.startswith("usage: a3d %s" % cmd), r.stdout
    assert "exit codes:" in r.stdout and "--key-file" in r.stdout


@pytest.mark.parametrize("args, says", [
    ([], "usage: a3d COMMAND"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["start"], "needs exactly one FILE or URL"),
    (["run", "clip.mp4"], "needs -o DIR"),
    (["watch"], "needs at least one RID"),
    (["jobs", "--state", "DONE"], "unknown --state 'DONE'"),
    (["jobs", "--bogus"], "unknown option '--bogus'"),
    (["start", "x.mp4", "--param", "novalue"], "--param wants KEY=VALUE"),
    (["credits", "--timeout-ms", "0"], "--timeout-ms must be 1..86400000"),
    (["download"], "needs at least one RID"),
    (["upload", "x.mp4", "--chunk-bytes", "16383"], "--chunk-bytes must be 16384..4190208, not '16383'"),
    (["upload", "x.mp4", "--chunk-bytes", "4190209"], "--chunk-bytes must be 16384..4190208"),
    (["upload", "x.mp4", "--chunk-bytes", "1M"], "--chunk-bytes must be 16384..4190208, not '1M'"),
])
def test_usage_errors_exit_2(args, says):
    r = a3d(args)
    assert r.returncode == 2, r
    assert says in r.stderr, r.stderr


def test_no_key_is_a_usage_error(gateway):
    r = a3d(["credits"], env=_env(gateway, key=None))
    assert r.returncode == 2, r
    assert "no API key" in r.stderr


# ---- end to end ----------------------------------------------------------------------------------
def test_run_end_to_end_plain_output(gateway, tmp_path):
    out = tmp_path / "out"
    # "out/" as in the README's Try it: made, and named with one slash in what is printed.
    r = a3d(["run", _clip(tmp_path), "-o", str(out) + "/", "--formats", "bvh,fbx"], env=_env(gateway))
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert all(os.path.dirname(p) == str(out) for p in lines[1:]), lines
    rid = lines[0]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rid), r.stdout
    files = lines[1:]
    assert files and all(os.path.isfile(p) for p in files), (files, os.listdir(out))
    assert sorted(os.path.basename(p) for p in files) == sorted(os.listdir(out))
    assert {os.path.splitext(p)[1] for p in files} == {".bvh", ".fbx"}, files
    bvh = [p for p in files if p.endswith(".bvh")][0]
    with open(bvh, "rb") as f:
        assert f.read(9) == b"HIERARCHY"
    # Not a terminal: plain progress lines, no bar redrawn in place, no escape sequences.
    assert "\r" not in r.stderr and "\033" not in r.stderr, r.stderr
    assert re.search(r"^clip\.mp4: 100% 2\.0 KiB", r.stderr, re.M), r.stderr
    assert re.search(r"^%s  SUCCESS$" % rid, r.stderr, re.M), r.stderr
    # The job is the team's: the gateway reports it finished.
    assert harness.wait_job(gateway, rid).state == harness.jobs_pb2.SUCCESS
    # Nothing of a signed URL reaches the output.
    assert "X-Goog-Signature" not in r.stdout + r.stderr


def test_run_json_lines(gateway, tmp_path):
    out = tmp_path / "json-out"
    r = a3d(["--json", "run", _clip(tmp_path), "-o", str(out), "--formats", "bvh"], env=_env(gateway))
    assert r.returncode == 0, r
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert objs[0]["url"].startswith("http://127.0.0.1:") and objs[0]["size"] == 2091, objs[0]
    rid = objs[1]["rid"]
    statuses = [o for o in objs if "state" in o]
    assert statuses and statuses[-1] == dict(statuses[-1], rid=rid, state="SUCCESS"), statuses
    files = [o for o in objs if "path" in o]
    assert [f["format"] for f in files] == ["bvh"], files
    assert all(os.path.getsize(f["path"]) == f["bytes"] > 0 for f in files), files


@pytest.mark.parametrize("chunk", [16384, 4190208])
def test_upload_message_size(gateway, tmp_path, chunk):
    """--chunk-bytes sets the message size; storage gets every byte either way (a 16 KiB message
    size gives 7 messages of a 100 KiB file, each with a 3-byte length in its header but the last
    one; the largest size 1 message)."""
    path = tmp_path / "big.mp4"
    data = open(harness.TINY_MP4, "rb").read() + os.urandom(100 << 10)
    path.write_bytes(data)
    up = a3d(["--json", "upload", str(path), "--chunk-bytes", str(chunk)], env=_env(gateway))
    assert up.returncode == 0, up
    reply = json.loads(up.stdout)
    assert int(reply["size"]) == len(data), up.stdout
    st, _, body = harness.http("GET", reply["url"])      # storage holds exactly the file's bytes
    assert st == 200 and body == data


def test_upload_then_start_url_then_download(gateway, tmp_path):
    env = _env(gateway)
    up = a3d(["upload", _clip(tmp_path), "--name", "renamed.mp4"], env=env)
    assert up.returncode == 0, up
    url = up.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "renamed.mp4" in url, up.stdout
    st = a3d(["start", url, "--formats", "bvh", "--wait"], env=env)
    assert st.returncode == 0, st
    rid = st.stdout.strip()
    dl = a3d(["download", rid, "-o", str(tmp_path / "dl")], env=env)
    assert dl.returncode == 0, dl
    assert [os.path.splitext(p)[1] for p in dl.stdout.split()] == [".bvh"], dl.stdout
    listed = a3d(["jobs", "--state", "SUCCESS"], env=env)
    assert listed.returncode == 0 and rid in listed.stdout, listed


def test_watch_failing_job_exit_4_and_message(gateway, tmp_path):
    env = _env(gateway)
    st = a3d(["start", _clip(tmp_path, "clip-fail-513.mp4"), "--formats", "bvh"], env=env)
    assert st.returncode == 0, st
    rid = st.stdout.strip()
    w = a3d(["watch", rid], env=env)
    assert w.returncode == 4, w
    assert "job %s failed: error 513 JOB_ERROR_NO_CHARACTER_DETECTED" % rid in w.stderr, w.stderr
    assert "Failed to detect character in the video" in w.stderr, w.stderr
    assert re.search(r"^%s  FAILURE  error 513" % rid, w.stdout, re.M), w.stdout
    # The same job through download: no outputs, the job's failure, exit 4.
    dl = a3d(["download", rid, "-o", str(tmp_path / "none")], env=env)
    assert dl.returncode == 4, dl
    assert "error 513" in dl.stderr, dl.stderr
    wj = a3d(["--json", "watch", rid], env=env)
    assert wj.returncode == 4, wj
    last = json.loads(wj.stdout.splitlines()[-1])
    assert (last["state"], last["error_code"]) == ("FAILURE", "JOB_ERROR_NO_CHARACTER_DETECTED"), last


def test_rpc_errors_exit_3_with_code_name(gateway):
    r = a3d(["watch", "NoSuchJobAnywhere00000"], env=_env(gateway))
    assert r.returncode == 3, r
    assert "WatchStatus: NOT_FOUND" in r.stderr, r.stderr
    r = a3d(["credits"], env=_env(gateway, key="not-a-key"))
    assert r.returncode == 3, r
    assert "GetCreditBalance: UNAUTHENTICATED" in r.stderr, r.stderr
    j = a3d(["--json", "credits"], env=_env(gateway, key="not-a-key"))
    assert j.returncode == 3 and json.loads(j.stdout)["error"]["code"] == "UNAUTHENTICATED", j


def test_key_from_file_or_flag(gateway, tmp_path):
    keyfile = tmp_path / "key"
    keyfile.write_text("demo-key-a\n")
    keyfile.chmod(0o600)
    r = a3d(["--key-file", str(keyfile), "--json", "credits"], env=_env(gateway, key=None))
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["credits"] > 0
    assert r.stderr == "", r.stderr
    r = a3d(["credits", "--key", "demo-key-a"], env=_env(gateway, key=None))
    assert r.returncode == 0, r
    r = a3d(["credits", "--key", "demo-key-a", "--key-file", str(keyfile)], env=_env(gateway, key=None))
    assert r.returncode == 2, r


def test_rate_limit_pushback_is_honoured(gateway, clean_sim):
    # One upstream 429 with Retry-After: 1 -> the gateway answers RESOURCE_EXHAUSTED with
    # grpc-retry-pushback-ms 1000; a3d waits what it says and retries once.
    clean_sim.faults("GET /account/creditBalance", status=429, retry_after=1, count=1)
    r = a3d(["credits"], env=_env(gateway))
    assert r.returncode == 0, r
    assert "RESOURCE_EXHAUSTED" in r.stderr and "retry 1 of 4 in 1000 ms" in r.stderr, r.stderr
    assert float(r.stdout) > 0


def test_progress_bar_on_a_terminal(gateway, tmp_path):
    """stderr on a pseudo-terminal: a bar with a percentage, redrawn with \\r."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([A3D_BIN, "upload", str(big)], env=_env(gateway), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        seen = b""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:         # EIO: the child closed its side
                    break
                if not chunk:
                    break
                seen += chunk
            elif p.poll() is not None:
                break
        out, _ = p.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert p.returncode == 0, (p.returncode, seen)
    text = seen.decode(errors="replace")
    assert re.search(r"big\.bin \[#+\.*\]\s+100%  3\.0 MiB / 3\.0 MiB", text), text
    assert "\r" in text, text
    assert out.decode().startswith("http://127.0.0.1:")


def test_ctrl_c_cancels_watch_exit_130(stack, tmp_path):
    """A job that runs for a minute: SIGINT during WatchStatus cancels the call (the gateway's
    watch stream is gone) and a3d exits 130."""
    slow = stack.sim(name="slow_sim", job_seconds=60)
    gw = stack.gateway(slow, name="slow_gw")
    env = _env(gw)
    st = a3d(["start", _clip(tmp_path)], env=env)
    assert st.returncode == 0, st
    rid = st.stdout.strip()
    p = subprocess.Popen([A3D_BIN, "watch", rid], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()         # a first status: the stream is open
        assert first.startswith(rid + "  PROGRESS"), first
        assert harness.metrics(gw)["animate3d_gateway_watch_streams"] == 1
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert p.returncode == 130, (p.returncode, err)
    assert "WatchStatus: interrupted" in err, err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and harness.metrics(gw)["animate3d_gateway_watch_streams"] != 0:
        time.sleep(0.05)
    assert harness.metrics(gw)["animate3d_gateway_watch_streams"] == 0


def test_tls_server_and_client_certificate(stack, sim, tmp_path):
    """--ca-file checks the gateway's certificate; --cert/--cert-key alone (no key) is team-a
    through tenants[].client_cert; a CA that did not sign the server is refused (UNAVAILABLE)."""
    from test_ops import OpsGateway, add_tls, map_cert
    certs = str(tmp_path / "certs")
    made = subprocess.run([os.path.join(harness.REPO, "tests", "lib", "make-certs"), certs],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr

    def config(g, h):
        text = harness.gateway_config(g, h, sim.url, os.path.join(stack.workdir, "gw-cli-tls.db"))
        return add_tls(map_cert(text, "team-a", "team-a"), certs, client_ca=True)
    gw = OpsGateway(stack, sim, "gw-cli-tls", config, tls=dict(ca=os.path.join(certs, "ca.pem")))
    ca = ["--ca-file", os.path.join(certs, "ca.pem")]
    r = a3d(ca + ["credits"], env=_env(gw))
    assert r.returncode == 0 and float(r.stdout) > 0, r
    r = a3d(ca + ["--cert", os.path.join(certs, "team-a.pem"), "--cert-key",
                  os.path.join(certs, "team-a.key"), "jobs"], env=_env(gw, key=None))
    assert r.returncode == 0, r
    r = a3d(["credits"], env=_env(gw), timeout=30)
    assert r.returncode == 3 and "UNAVAILABLE" in r.stderr, r
    r = a3d(["--ca-file", os.path.join(certs, "rogue-ca.pem"), "credits"], env=_env(gw), timeout=30)
    assert r.returncode == 3 and "UNAVAILABLE" in r.stderr, r
    r = a3d(ca + ["--cert", os.path.join(certs, "team-a.pem"), "credits"], env=_env(gw, key=None))
    assert r.returncode == 2 and "--cert and --cert-key go together" in r.stderr, r
