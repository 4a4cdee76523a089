"""Harness for the end-to-end tests: runs the real animate3d-sim and animate3d-gateway binaries.

Everything listens on 127.0.0.1, on ports the kernel picked. Every wait is bounded in time; every
process started here is stopped here (SIGTERM, then SIGKILL after a bounded wait).
"""
import base64
import glob
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("A3D_BUILD_DIR", os.path.join(REPO, "build")))
PY_DIR = os.path.join(BUILD, "py")
# A3D_GATEWAY_BIN runs another gateway binary against the same tests (e.g. an older build, to
# see a regression test fail before its fix).
GATEWAY_BIN = os.environ.get("A3D_GATEWAY_BIN") or os.path.join(BUILD, "animate3d-gateway")
SIM_BIN = os.path.join(BUILD, "animate3d-sim")
TINY_MP4 = os.path.join(REPO, "tests", "sim", "fixtures", "tiny.mp4")

CLIENT_ID = "demo-client-id"
CLIENT_SECRET = "demo-client-secret"
SECRET_ENV = "A3D_IT_CLIENT_SECRET"
KEYS = {"team-a": "demo-key-a", "team-b": "demo-key-b", "viewer": "demo-key-viewer"}

# The state backend the gateways run on: "sqlite" (a file per gateway, the default) or "postgres"
# (A3D_IT_BACKEND=postgres, inside tests/lib/with-postgres, which exports the A3D_PG_* variables:
# every gateway then shares that cluster's database).
BACKEND = os.environ.get("A3D_IT_BACKEND", "sqlite")
POSTGRES = BACKEND == "postgres"
PG_POOL = 4
PG_TIMEOUT_MS = 5000        # state.postgres.timeout_ms: how long a query may wait for a connection
PG_TABLES = ("a3d_owner", "a3d_idem", "a3d_hook", "a3d_outbox", "a3d_rest_sess", "a3d_usage")  # the gateway's own (its migrations create them)
SKIP_ON_POSTGRES = "SQLite-file specific (state.path): meaningless with A3D_IT_BACKEND=postgres"

START_TIMEOUT_S = 10.0      # a binary that is not ready within this is a failure
STOP_TIMEOUT_S = 10.0       # SIGTERM -> exit, else SIGKILL and fail
HTTP_TIMEOUT_S = 10.0

# ---- generated stubs (build tree only) ----------------------------------------------------------
if PY_DIR not in sys.path:
    sys.path.insert(0, PY_DIR)
import grpc  # noqa: E402  (Debian's python3-grpcio)

# The health stubs are generated as grpc/health/v1/*.py under <build>/py, but "grpc" is already the
# grpcio package; let its package path also cover the generated subtree.
_gen_grpc = os.path.join(PY_DIR, "grpc")
if _gen_grpc not in list(grpc.__path__):
    grpc.__path__.append(_gen_grpc)

from animate3d.v1 import account_pb2, account_pb2_grpc  # noqa: E402
from animate3d.v1 import characters_pb2, characters_pb2_grpc  # noqa: E402
from animate3d.v1 import jobs_pb2, jobs_pb2_grpc  # noqa: E402
from animate3d.v1 import webhooks_pb2, webhooks_pb2_grpc  # noqa: E402
from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def free_port():
    """A port nobody listens on right now (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(gw):
    """gw's /metrics as {"name{labels}": value}."""
    st, _, body = http("GET", gw.http_url + "/metrics")
    assert st == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def sanitized(gw):
    """True when the gateway runs under ASan or TSan: their allocators' quarantine and shadow
    memory make its RSS say nothing about what it uses (the gateway's memory guard does not act
    there either)."""
    with open("/proc/%d/maps" % gw.proc.pid) as f:
        return bool(re.search(r"lib[at]san", f.read()))


def wait_metrics(gw, cond, what, timeout=30.0, show=""):
    """Polls gw's /metrics until cond(metrics) holds, at most timeout s. -> the metrics. On
    timeout an AssertionError names what and the series whose names contain show."""
    deadline = time.monotonic() + timeout
    m = {}
    while time.monotonic() < deadline:
        m = metrics(gw)
        if cond(m):
            return m
        time.sleep(0.1)
    raise AssertionError("%s not reached in %.0fs; %s series: %s"
                         % (what, timeout, show or "all",
                            {k: v for k, v in m.items() if show in k}))


def readyz(gw, timeout=HTTP_TIMEOUT_S):
    """gw's /readyz -> (HTTP status, parsed JSON body)."""
    st, _, body = http("GET", gw.http_url + "/readyz", timeout=timeout)
    return st, json.loads(body)


def http(method, url, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
    """-> (status, headers, body bytes); HTTP errors are returned, not raised."""
    data = body
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def put_bytes(url, data):
    """Single PUT of an upload (resumable=0 signed URL) -> HTTP status."""
    st, _, _ = http("PUT", url, body=data, headers={"Content-Type": "application/octet-stream"})
    return st


def _wait_for_line(path, pattern, proc, timeout):
    """Poll a log file until a line matches; bounded. -> match or None."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        try:
            with open(path, "r", errors="replace") as f:
                m = rx.search(f.read())
            if m:
                return m
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _stop(proc, timeout=STOP_TIMEOUT_S):
    """SIGTERM, bounded wait, SIGKILL. -> (exit code, killed?)"""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5), True


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---- PostgreSQL backend (A3D_IT_BACKEND=postgres) ----------------------------------------------
def pg_env():
    """The throw-away cluster tests/lib/with-postgres made: {host, port, db, user, password_file,
    data, ctl}. Raises when a variable is missing (not run under with-postgres)."""
    names = dict(host="A3D_PG_HOST", port="A3D_PG_PORT", db="A3D_PG_DB", user="A3D_PG_USER",
                 password_file="A3D_PG_PASSWORD_FILE", data="A3D_PG_DATA", ctl="A3D_PG_CTL")
    missing = [v for v in names.values() if not os.environ.get(v)]
    if missing:
        raise RuntimeError("A3D_IT_BACKEND=postgres needs tests/lib/with-postgres (missing %s)"
                           % ", ".join(missing))
    return {k: os.environ[v] for k, v in names.items()}


def pg_state_yaml(pool=PG_POOL):
    """The lines under state: for the PostgreSQL backend (indented two spaces, newline-ended).
    hostaddr, never host: the gateway refuses to resolve names on its loop."""
    pg = pg_env()
    return ('  postgres:\n'
            '    dsn: "hostaddr=127.0.0.1 port={port} dbname={db} user={user}"\n'
            '    password_file: {pw}\n'
            '    pool: {pool}\n'
            '    timeout_ms: {tmo}\n').format(port=pg["port"], db=pg["db"], user=pg["user"],
                                              pw=pg["password_file"], pool=pool, tmo=PG_TIMEOUT_MS)


def _psql_bin():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if os.access(os.path.join(d, "psql"), os.X_OK):
            return os.path.join(d, "psql")
    return shutil.which("psql") or "psql"


def _version_key(path):
    m = re.search(r"/(\d+)/bin$", path)
    return int(m.group(1)) if m else 0


def pg_sql(sql, timeout=20.0):
    """Runs sql with psql as the gateway's user over TCP on 127.0.0.1 (the password from the
    cluster's password file, in PGPASSWORD: never on a command line). -> stdout (unaligned, tuples
    only). Raises on failure."""
    pg = pg_env()
    with open(pg["password_file"]) as f:
        password = f.read().strip()
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    r = subprocess.run([_psql_bin(), "-h", "127.0.0.1", "-p", pg["port"], "-U", pg["user"],
                        "-d", pg["db"], "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("psql failed (%d): %s" % (r.returncode, r.stderr.strip()[-2000:]))
    return r.stdout


def pg_secrets():
    """(the PostgreSQL password,) when A3D_IT_BACKEND=postgres, else (): for leaked_secrets(extra=)."""
    if not POSTGRES:
        return ()
    with open(pg_env()["password_file"]) as f:
        return (f.read().strip(),)


def pg_truncate():
    """Empties the gateway's tables (ownership, idempotency keys); the schema stays. Nothing to do
    before a gateway has created them."""
    tables = ", ".join(PG_TABLES)
    pg_sql("DO $$ BEGIN IF to_regclass('%s') IS NOT NULL THEN TRUNCATE %s; END IF; END $$;"
           % (PG_TABLES[0], tables))


def pg_count(table):
    """Rows in one of the gateway's tables (0 when it does not exist yet)."""
    assert table in PG_TABLES
    out = pg_sql("SELECT CASE WHEN to_regclass('%s') IS NULL THEN 0 ELSE "
                 "(SELECT count(*) FROM %s) END" % (table, table))
    return int(out.strip() or 0)


def pg_ctl(action, timeout=60.0):
    """Stops ("stop": fast shutdown, waits) or starts ("start": waits until it accepts) the
    cluster's server, through with-postgres's control script. -> seconds it took."""
    assert action in ("stop", "start")
    t0 = time.monotonic()
    r = subprocess.run([pg_env()["ctl"], action], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s %s failed (%d): %s" % (pg_env()["ctl"], action, r.returncode,
                                                      (r.stdout + r.stderr).strip()[-2000:]))
    return time.monotonic() - t0


class Sim:
    """A running animate3d-sim and its control API (/_sim/...)."""

    def __init__(self, workdir, name="sim", session_ttl=None, job_seconds=1, accounts=None,
                 extra_args=()):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        args = [SIM_BIN, "--listen", "127.0.0.1:0"]
        if session_ttl is not None:
            args += ["--session-ttl", str(session_ttl)]
        if job_seconds is not None:
            args += ["--job-seconds", str(job_seconds)]
        for a in accounts or ():
            args += ["--account", a]
        args += list(extra_args)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir)
        m = _wait_for_line(self.log_path, r"animate3d-sim listening on (http://127\.0\.0\.1:\d+)",
                           self.proc, START_TIMEOUT_S)
        if not m:
            self.stop()
            raise RuntimeError("simulator did not become ready in %.0fs; log:\n%s"
                               % (START_TIMEOUT_S, read_text(self.log_path)[-4000:]))
        self.url = m.group(1)

    # -- control API
    def stats(self):
        st, _, body = http("GET", self.url + "/_sim/stats")
        assert st == 200, "GET /_sim/stats -> %d %r" % (st, body[:200])
        return json.loads(body).get("requests", {})

    def count(self, route):
        return int(self.stats().get(route, 0))

    def clear_stats(self):
        st, _, _ = http("DELETE", self.url + "/_sim/stats")
        assert st in (200, 204)

    def faults(self, route, **kw):
        spec = dict(route=route)
        spec.update(kw)
        st, _, body = http("POST", self.url + "/_sim/faults", body=spec)
        assert st in (200, 201, 204), "POST /_sim/faults -> %d %r" % (st, body[:200])

    def clear_faults(self):
        st, _, _ = http("DELETE", self.url + "/_sim/faults")
        assert st in (200, 204)

    def revoke(self):
        st, _, body = http("POST", self.url + "/_sim/sessions/revoke")
        assert st in (200, 204), "revoke -> %d %r" % (st, body[:200])

    def jobs(self):
        st, _, body = http("GET", self.url + "/_sim/jobs")
        assert st == 200
        return json.loads(body)

    def login(self, client_id=CLIENT_ID, secret=CLIENT_SECRET):
        """Our own upstream session, for cross-checks. -> cookie header value."""
        basic = base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode()
        st, hdrs, _ = http("GET", self.url + "/session/auth", headers={"Authorization": "Basic " + basic})
        assert st == 200, "sim login -> %d" % st
        cookie = hdrs.get("Set-Cookie", "")
        return cookie.split(";", 1)[0]

    def get_json(self, path, cookie):
        st, _, body = http("GET", self.url + path, headers={"Cookie": cookie})
        assert st == 200, "GET %s -> %d %r" % (path, st, body[:200])
        return json.loads(body)

    def stop(self):
        rc, _ = _stop(self.proc)
        self._log.close()
        return rc


def gateway_config(grpc_port, http_port, sim_url, state_path, secret_env=SECRET_ENV,
                   secret_file=None, rate=(1000, 2000), state_extra=(), extra_tenants="", extra_top="",
                   backend=None, rest_port=None, allow_private_destinations=True, balance_poll_s=0):
    """The YAML text for a test gateway (schema as examples/demo.yaml).

    allow_private_destinations: webhooks.allow_private_destinations (issue 17), on by default:
    the tests' webhook receivers listen on 127.0.0.1, which the SSRF rules refuse otherwise.

    state_extra: more "key: value" lines under state:; extra_tenants: YAML appended to tenants:;
    extra_top: more top-level sections (YAML at column 0), appended last. backend: "sqlite"
    (state.path: state_path) or "postgres" (state.postgres naming with-postgres's cluster;
    state_path unused); None: BACKEND, from A3D_IT_BACKEND. rest_port: listen.rest (the REST
    facade) on that port; None: no facade. balance_poll_s: balance.poll_s (issue 20's balance
    poller), off by default so that its GETs never mix with the counts of tests that watch the
    balance routes; an extra_top with its own balance: section wins."""
    # The webhooks section goes before accounts: (tenants: stays the last section, which tests
    # that append tenants rely on), or into extra_top's own webhooks: section.
    webhooks = ""
    if allow_private_destinations:
        line = "  allow_private_destinations: true\n"
        if re.search(r"(^|\n)webhooks:\n", extra_top):
            extra_top = re.sub(r"(^|\n)webhooks:\n", lambda m: m.group(1) + "webhooks:\n" + line,
                               extra_top, count=1)
        else:
            webhooks = "webhooks:\n" + line
    secret_line = ("client_secret_file: %s" % secret_file) if secret_file else \
                  ("client_secret_env: %s" % secret_env)
    balance = "" if re.search(r"(^|\n)balance:", extra_top) else \
        "balance:\n  poll_s: %d\n" % balance_poll_s
    backend = backend or BACKEND
    if backend == "postgres":
        state_lines = pg_state_yaml()
    elif backend == "sqlite":
        state_lines = "  path: %s\n" % state_path
    else:
        raise ValueError("unknown state backend %r (A3D_IT_BACKEND: sqlite or postgres)" % backend)
    return """\
listen:
  grpc: 127.0.0.1:{grpc}
  http: 127.0.0.1:{http}
{rest_line}log:
  level: info
state:
{state_lines}{state_extra}upstream:
  connect_timeout_ms: 2000
  default_timeout_ms: 30000
cache:
  status_ttl_ms: 1000
  batch_window_ms: 5
  batch_max: 50
{balance}{webhooks}accounts:
  - name: sim
    base_url: {sim}
    client_id: {cid}
    {secret_line}
tenants:
  - name: team-a
    account: sim
    rate: {{ per_second: {rps}, burst: {burst} }}
    keys:
      - sha256: {ka}
        permissions: [read, write]
  - name: team-b
    account: sim
    rate: {{ per_second: {rps}, burst: {burst} }}
    keys:
      - sha256: {kb}
        permissions: [read, write]
  - name: viewer
    account: sim
    keys:
      - sha256: {kv}
        permissions: [read]
{extra_tenants}{extra_top}""".format(grpc=grpc_port, state_extra="".join("  %s\n" % x for x in state_extra),
           webhooks=webhooks, balance=balance,
           extra_tenants=extra_tenants, extra_top=extra_top, http=http_port,
           rest_line=("  rest: 127.0.0.1:%d\n" % rest_port) if rest_port else "", state_lines=state_lines, sim=sim_url, cid=CLIENT_ID,
           secret_line=secret_line, rps=rate[0], burst=rate[1], ka=sha256_hex(KEYS["team-a"]),
           kb=sha256_hex(KEYS["team-b"]), kv=sha256_hex(KEYS["viewer"]))


def add_webhooks(text, body):
    """Adds `body` (lines indented two spaces) to the webhooks: section of a config text made by
    gateway_config (which has one: allow_private_destinations), or appends the section."""
    m = re.search(r"(^|\n)webhooks:\n", text)
    if not m:
        return text + "webhooks:\n" + body
    return text[:m.end()] + body + text[m.end():]


class Gateway:
    """A running animate3d-gateway with channel and stubs."""

    def __init__(self, workdir, sim_url, name="gateway", secret=CLIENT_SECRET, wait_serving=True,
                 extra_args=(), config_text=None, state_path=None, state_extra=(), extra_tenants="",
                 grpc_port=None, http_port=None, rlimit_nofile=None, extra_top="", rest=False,
                 allow_private_destinations=True):
        """rlimit_nofile: RLIMIT_NOFILE (soft = hard) for the gateway process, as a container's
        limit would be; None inherits this process's. rest: also run the REST facade
        (listen.rest on a free port, self.rest_url)."""
        self.name = name
        self.workdir = workdir
        self.secret = secret
        self.sim_url = sim_url
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.addr = "127.0.0.1:%d" % self.grpc_port
        self.http_url = "http://127.0.0.1:%d" % self.http_port
        self.rest_port = free_port() if rest else None
        self.rest_url = "http://127.0.0.1:%d" % self.rest_port if rest else None
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.log_path = os.path.join(workdir, name + ".log")
        self.state_path = state_path or os.path.join(workdir, name + ".db")
        text = config_text or gateway_config(self.grpc_port, self.http_port, sim_url,
                                             self.state_path, state_extra=state_extra,
                                             extra_tenants=extra_tenants, extra_top=extra_top,
                                             rest_port=self.rest_port,
                                             allow_private_destinations=allow_private_destinations)
        with open(self.config_path, "w") as f:
            f.write(text)
        env = dict(os.environ)
        env[SECRET_ENV] = secret
        self._log = open(self.log_path, "wb")

        def limit_fds():
            resource.setrlimit(resource.RLIMIT_NOFILE, (rlimit_nofile, rlimit_nofile))

        self.proc = subprocess.Popen([GATEWAY_BIN, "-c", self.config_path] + list(extra_args),
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=workdir,
                                     preexec_fn=limit_fds if rlimit_nofile else None)
        # Short reconnect backoff: the channel may try before the gateway listens, and gRPC's
        # default backoff would then hold every call for seconds.
        self.channel = grpc.insecure_channel(self.addr, options=[
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250)])
        self.jobs = jobs_pb2_grpc.JobsStub(self.channel)
        self.characters = characters_pb2_grpc.CharactersStub(self.channel)
        self.webhooks = webhooks_pb2_grpc.WebhooksStub(self.channel)
        self.account = account_pb2_grpc.AccountStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.stopped_rc = None
        try:
            self._wait_ready(wait_serving)
        except Exception:
            self.channel.close()
            _stop(self.proc)
            self._log.close()
            raise

    def _wait_ready(self, wait_serving):
        deadline = time.monotonic() + START_TIMEOUT_S
        last = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:        # the port accepts connections: the gRPC listener is up
                socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited with %d before it was ready; log:\n%s"
                                   % (self.proc.returncode, read_text(self.log_path)[-4000:]))
            try:
                r = self.health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                last = r.status
                if not wait_serving or r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as e:
                last = e.code()
            time.sleep(0.05)
        raise RuntimeError("gateway not SERVING within %.0fs (last: %s); log:\n%s"
                           % (START_TIMEOUT_S, last, read_text(self.log_path)[-4000:]))

    @staticmethod
    def md(tenant="team-a", key=None):
        """Call metadata for a tenant's demo key (or an explicit key)."""
        return [("authorization", "Bearer " + (key if key is not None else KEYS[tenant]))]

    def raw_unary(self, path):
        """A bytes-in/bytes-out unary callable for `path`."""
        return self.channel.unary_unary(path)

    def log_text(self):
        return read_text(self.log_path)

    def kill(self):
        """SIGKILL now (crash tests); the object is then stopped (stop() returns (-9, True))."""
        if self.stopped_rc is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            self.channel.close()
            self._log.close()
            self.stopped_rc = (self.proc.returncode, True)
        return self.stopped_rc

    def stop(self):
        """SIGTERM and wait. -> (exit code, killed?) ; idempotent."""
        if self.stopped_rc is None:
            self.channel.close()
            self.stopped_rc = _stop(self.proc)
            self._log.close()
        return self.stopped_rc

    def leaked_secrets(self, extra=()):
        """Secrets found in the captured output; [] is the only good answer."""
        text = self.log_text()
        basic = base64.b64encode(("%s:%s" % (CLIENT_ID, self.secret)).encode()).decode()
        found = []
        for needle, what in [(self.secret, "client secret"), (basic, "Basic credentials"),
                             (CLIENT_SECRET, "demo client secret")] + [(x, "secret") for x in extra]:
            if needle and needle in text:
                found.append(what)
        if re.search(r"dmsess=[^;\s\"',]{4,}", text):
            found.append("dmsess cookie value")
        # The simulator's session values are 44 base58 characters (ids are 22): one in the log
        # is a cookie value logged without its name.
        if re.search(r"(?<![1-9A-HJ-NP-Za-km-z])[1-9A-HJ-NP-Za-km-z]{44}(?![1-9A-HJ-NP-Za-km-z])", text):
            found.append("a 44-character base58 token (dmsess value?)")
        if re.search(r"X-Goog-Signature=[0-9a-fA-F]{8,}", text):
            found.append("signed URL signature")
        for k in KEYS.values():
            if re.search(r"\b%s\b" % re.escape(k), text):
                found.append("caller API key")
        return found


# ---- job helpers ---------------------------------------------------------------------------------
TERMINAL = (jobs_pb2.SUCCESS, jobs_pb2.FAILURE)


def wait_job(gw, rid, tenant="team-a", timeout=15.0, states=TERMINAL):
    """Poll GetStatus until the job reaches one of `states`; bounded. -> JobStatus."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=[rid]), timeout=5, metadata=gw.md(tenant))
        assert len(r.statuses) == 1 and r.statuses[0].rid == rid, r
        last = r.statuses[0]
        if last.state in states:
            return last
        time.sleep(0.2)
    raise AssertionError("job %s not in %s after %.0fs; last status: %s"
                         % (rid, [jobs_pb2.JobState.Name(s) for s in states], timeout, last))


def upload_stream(gw, name, data, chunk=1 << 20, tenant="team-a", timeout=30, declare_size=True):
    """UploadVideo: first message name (+ size), then chunks. -> UploadVideoResponse."""
    def gen():
        yield jobs_pb2.UploadVideoRequest(name=name, size=len(data) if declare_size else 0)
        for off in range(0, len(data), chunk):
            yield jobs_pb2.UploadVideoRequest(chunk=data[off:off + chunk])
    return gw.jobs.UploadVideo(gen(), timeout=timeout, metadata=gw.md(tenant))


def upload_put(gw, name, data, tenant="team-a"):
    """GetUploadUrl(resumable=False) + one PUT. -> signed URL."""
    r = gw.jobs.GetUploadUrl(jobs_pb2.GetUploadUrlRequest(name=name, resumable=False),
                             timeout=5, metadata=gw.md(tenant))
    assert r.url.startswith("http"), r
    st = put_bytes(r.url, data)
    assert st in (200, 201), "PUT upload -> %d" % st
    return r.url


def start_job(gw, tenant="team-a", **kw):
    return gw.jobs.StartJob(jobs_pb2.StartJobRequest(**kw), timeout=5, metadata=gw.md(tenant)).rid


# ---- MP4 facts, read from the file itself (ground truth for GetVideoInfo) -----------------------
def _boxes(buf, off, end):
    while off + 8 <= end:
        size = int.from_bytes(buf[off:off + 4], "big")
        typ = buf[off + 4:off + 8].decode("latin-1")
        hdr = 8
        if size == 1:
            size = int.from_bytes(buf[off + 8:off + 16], "big")
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr:
            return
        yield typ, off + hdr, off + size
        off += size


def mp4_video_facts(path):
    """{width, height, fps, codec_fourcc} of the first video track of an MP4 file."""
    buf = open(path, "rb").read()
    for typ, s, e in _boxes(buf, 0, len(buf)):
        if typ != "moov":
            continue
        for ttyp, ts, te in _boxes(buf, s, e):
            if ttyp != "trak":
                continue
            facts = {}
            for btyp, bs, be in _boxes(buf, ts, te):
                if btyp == "tkhd":
                    # width/height are the last 8 bytes, 16.16 fixed point
                    facts["width"] = int.from_bytes(buf[be - 8:be - 4], "big") >> 16
                    facts["height"] = int.from_bytes(buf[be - 4:be], "big") >> 16
                if btyp == "mdia":
                    _mdia(buf, bs, be, facts)
            if facts.get("handler") == "vide":
                return facts
    raise ValueError("no video track in %s" % path)


def _mdia(buf, s, e, facts):
    for typ, bs, be in _boxes(buf, s, e):
        if typ == "mdhd":
            ver = buf[bs]
            facts["timescale"] = int.from_bytes(buf[bs + (20 if ver == 1 else 12):][:4], "big")
        elif typ == "hdlr":
            facts["handler"] = buf[bs + 8:bs + 12].decode("latin-1")
        elif typ == "minf":
            for mtyp, ms, me in _boxes(buf, bs, be):
                if mtyp == "stbl":
                    for styp, ss, se in _boxes(buf, ms, me):
                        if styp == "stsd":
                            facts["codec_fourcc"] = buf[ss + 12:ss + 16].decode("latin-1")
                        elif styp == "stts":
                            n = int.from_bytes(buf[ss + 4:ss + 8], "big")
                            samples = dur = 0
                            for i in range(n):
                                c = int.from_bytes(buf[ss + 8 + 8 * i:ss + 12 + 8 * i], "big")
                                d = int.from_bytes(buf[ss + 12 + 8 * i:ss + 16 + 8 * i], "big")
                                samples += c
                                dur += c * d
                            facts["samples"], facts["sample_dur"] = samples, dur
    if facts.get("sample_dur") and facts.get("timescale"):
        facts["fps"] = facts["samples"] * facts["timescale"] / facts["sample_dur"]
        facts["duration"] = facts["sample_dur"] / facts["timescale"]


CODEC_NAMES = {"avc1": ("h264", "avc1", "avc"), "avc3": ("h264", "avc3", "avc"),
               "hvc1": ("hevc", "h265", "hvc1"), "hev1": ("hevc", "h265", "hev1"),
               "mp4v": ("mpeg4", "mp4v"), "av01": ("av1", "av01"), "vp09": ("vp9", "vp09")}
