"""`animate3d-gateway --check-config`: "configuration OK", or every error as file:line: message."""
import os
import re
import subprocess

import pytest

import harness


def check_config(path, env_extra=None, cwd=harness.REPO):
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.run([harness.GATEWAY_BIN, "-c", path, "--check-config"], cwd=cwd, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def error_lines(path, out):
    """{line number: message} of the file:line: message lines about `path`."""
    rx = re.compile(r"^%s:(\d+): (.+)$" % re.escape(path), re.M)
    found = {}
    for m in rx.finditer(out):
        found.setdefault(int(m.group(1)), []).append(m.group(2))
    return found


def write(tmp_path, name, text, mode=0o600):
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


HEAD = """\
listen:
  grpc: 127.0.0.1:50051
  http: 127.0.0.1:8080
accounts:
  - name: sim
    base_url: http://127.0.0.1:8090
    client_id: demo-client-id
"""


def test_demo_config_ok():
    rc, out = check_config(os.path.join(harness.REPO, "examples", "demo.yaml"),
                           {"A3D_DEMO_CLIENT_SECRET": "demo-client-secret"})
    assert rc == 0, out
    assert "configuration OK" in out
    assert "demo-client-secret" not in out


def test_broken_config_reports_every_error_with_its_line(tmp_path):
    text = HEAD + """\
    client_secret_env: A3D_DEMO_CLIENT_SECRET
tenants:
  - name: team-a
    account: sim
    rate: { per_second: -5, burst: 10 }
    keys:
      - sha256: not-a-hex-digest
        permissions: [read, fly]
"""
    path = write(tmp_path, "broken.yaml", text)
    rc, out = check_config(path)
    assert rc == 1, out
    assert "configuration OK" not in out
    lines = error_lines(path, out)
    # line 12: per_second, line 14: sha256, line 15: unknown permission
    assert {12, 14, 15} <= set(lines), "expected errors at lines 12, 14, 15; got:\n" + out


def test_unknown_account_is_a_cross_field_error(tmp_path):
    text = HEAD + """\
    client_secret_env: A3D_DEMO_CLIENT_SECRET
tenants:
  - name: team-a
    account: nosuchaccount
    keys:
      - sha256: %s
        permissions: [read]
""" % harness.sha256_hex("k")
    path = write(tmp_path, "xfield.yaml", text)
    rc, out = check_config(path)
    assert rc == 1, out
    lines = error_lines(path, out)
    assert {10, 11} & set(lines), out
    assert any("nosuchaccount" in m for ms in lines.values() for m in ms), out


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "syntax.yaml", HEAD + "tenants: [unclosed\n  - name: x\n")
    rc, out = check_config(path)
    assert rc == 1, out
    assert error_lines(path, out), out


@pytest.mark.parametrize("mode,ok", [(0o600, True), (0o400, True), (0o644, False), (0o640, False)])
def test_secret_file_must_be_private(tmp_path, mode, ok):
    secret = write(tmp_path, "secret", "demo-client-secret\n", mode)
    text = HEAD + """\
    client_secret_file: %s
tenants:
  - name: team-a
    account: sim
    keys:
      - sha256: %s
        permissions: [read]
""" % (secret, harness.sha256_hex("k"))
    path = write(tmp_path, "file.yaml", text)
    rc, out = check_config(path)
    assert "demo-client-secret" not in out
    if ok:
        assert rc == 0 and "configuration OK" in out, out
    else:
        assert rc == 1, out
        assert 8 in error_lines(path, out), out      # the client_secret_file line


def test_daemon_refuses_public_secret_file(tmp_path):
    """The daemon itself never starts on a group/world-readable secret file (exits, no hang)."""
    secret = write(tmp_path, "secret", "demo-client-secret\n", 0o644)
    text = harness.gateway_config(harness.free_port(), harness.free_port(), "http://127.0.0.1:9",
                                  str(tmp_path / "g.db"), secret_file=secret)
    path = write(tmp_path, "gw.yaml", text)
    p = subprocess.run([harness.GATEWAY_BIN, "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode != 0, out
    assert secret in out and "demo-client-secret\n" not in out.replace(secret, ""), out


POSTGRES = """\
state:
  postgres:
    dsn: "hostaddr=127.0.0.1 port={port} dbname=a3d user=a3d"
    password_env: A3D_IT_PG_PASSWORD
"""


def test_postgres_checked_not_connected(tmp_path):
    """--check-config checks state.postgres but never connects (nothing listens on the port);
    a password inside the dsn is refused without being echoed."""
    text = harness.gateway_config(harness.free_port(), harness.free_port(), "http://127.0.0.1:9",
                                  "/unused")
    ok = text.replace("state:\n  path: /unused\n", POSTGRES.format(port=harness.free_port()))
    rc, out = check_config(write(tmp_path, "ok.yaml", ok), {harness.SECRET_ENV: "s3cret-client",
                                                            "A3D_IT_PG_PASSWORD": "pg-pass-123"})
    assert rc == 0 and "configuration OK" in out, out
    bad = ok.replace("user=a3d\"", "user=a3d password=pg-pass-inline\"")
    path = write(tmp_path, "bad.yaml", bad)
    rc, out = check_config(path, {harness.SECRET_ENV: "s3cret-client"})
    assert rc == 1, out
    assert any("password" in m for ms in error_lines(path, out).values() for m in ms), out
    assert "pg-pass-inline" not in out


def test_postgres_unreachable_at_start_names_server_not_password(tmp_path):
    """Start-up connects to PostgreSQL: nothing listening -> the daemon exits at once with one
    line naming host:port/db, never the password."""
    port = harness.free_port()
    text = harness.gateway_config(harness.free_port(), harness.free_port(), "http://127.0.0.1:9",
                                  "/unused")
    text = text.replace("state:\n  path: /unused\n", POSTGRES.format(port=port))
    path = write(tmp_path, "gw.yaml", text)
    env = dict(os.environ)
    env.update({harness.SECRET_ENV: "s3cret-client", "A3D_IT_PG_PASSWORD": "pg-pass-123"})
    p = subprocess.run([harness.GATEWAY_BIN, "-c", path], stdin=subprocess.DEVNULL, env=env,
                       capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode != 0, out
    assert "cannot connect to PostgreSQL at 127.0.0.1:%d/a3d" % port in out, out
    assert "pg-pass-123" not in out and "s3cret-client" not in out
