"""Lints and renders helm/animate3d-gateway and asserts on the rendered objects.

chart_hygiene.py (schema, routes, `helm test`, spread, hooks, Chart.yaml) and chart_monitoring.py
(dashboard and alert rules against a running gateway) hold issue 20's checks; main() runs them.

Rendering: `helm template` (offline). Parsing: the YAML stream is turned into JSON by
`kubectl label --local -o json` (offline, no cluster, no python3-yaml needed); the gateway.yaml
inside the ConfigMap is parsed the same way after wrapping it in a dummy object header.
Prints one line per check and ends with "N passed, M failed"; exits 1 on any failure.
"""

import argparse
import base64
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys

import chart_hygiene
import chart_monitoring

CMD_TIMEOUT_S = 30  # every helm/kubectl call is bounded
GRACE_MARGIN_S = 1  # terminationGracePeriodSeconds must exceed preStop + grace by at least this


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


class Chart:
    def __init__(self, args):
        self.helm = args.helm
        self.kubectl = args.kubectl
        self.chart = args.chart
        self.prod = args.prod_values
        self.work = args.work
        self.gateway = args.gateway if args.gateway and os.access(args.gateway, os.X_OK) else None
        self.nrender = 0

    def run(self, argv, stdin=None):
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=CMD_TIMEOUT_S)

    def lint(self, values=None):
        argv = [self.helm, "lint", "--strict", self.chart]
        if values:
            argv += ["-f", values]
        return self.run(argv)

    def values_file(self, obj):
        """Writes a values file (JSON is YAML) and returns its path. Lists must be given whole:
        `--set list[0].x=...` would replace the list rather than edit one element."""
        self.nrender += 1
        path = os.path.join(self.work, f"values-{self.nrender}.json")
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def template(self, values=None, sets=()):
        argv = [self.helm, "template", "t", self.chart, "--namespace", "a3d"]
        for v in [values] if isinstance(values, str) else (values or []):
            argv += ["-f", v]
        for s in sets:
            argv += ["--set", s]
        return self.run(argv)

    def notes(self, values=None, sets=()):
        """NOTES.txt as `helm install` would print it. `helm template` skips NOTES.txt and
        `helm install --dry-run` wants a cluster, so a copy of the chart carries the same text as
        a named template that a ConfigMap includes."""
        self.nrender += 1
        copy = os.path.join(self.work, f"notes-chart-{self.nrender}")
        shutil.copytree(self.chart, copy)
        tdir = os.path.join(copy, "templates")
        with open(os.path.join(tdir, "NOTES.txt")) as f:
            text = f.read()
        os.remove(os.path.join(tdir, "NOTES.txt"))
        with open(os.path.join(tdir, "_a3d_test_notes.tpl"), "w") as f:
            f.write('{{- define "a3d-test.notes" -}}' + text + "{{- end -}}")
        with open(os.path.join(tdir, "a3d-test-notes.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a3d-test-notes}\n"
                    'data:\n  notes: {{ include "a3d-test.notes" . | toJson }}\n')
        saved, self.chart = self.chart, copy
        try:
            p = self.template(values, sets)
        finally:
            self.chart = saved
            shutil.rmtree(copy, ignore_errors=True)
        if p.returncode != 0:
            raise RuntimeError(f"helm template (NOTES) failed: {p.stderr.strip()}")
        objs = self.to_json(p.stdout)
        return next(o for o in objs if o["metadata"]["name"] == "a3d-test-notes")["data"]["notes"]

    def to_json(self, yaml_text):
        """YAML stream -> list of dicts, via kubectl's offline local mode."""
        self.nrender += 1
        path = os.path.join(self.work, f"render-{self.nrender}.yaml")
        with open(path, "w") as f:
            f.write(yaml_text)
        p = self.run([self.kubectl, "label", "--local", "-o", "json", "-f", path,
                      "a3d-test/parsed=1"])
        if p.returncode != 0:
            raise RuntimeError(f"kubectl could not parse {path}: {p.stderr.strip()}")
        dec = json.JSONDecoder()
        out, text, i = [], p.stdout, 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            obj, i = dec.raw_decode(text, i)
            if obj.get("kind") == "List":
                out.extend(obj.get("items", []))
            else:
                out.append(obj)
        for o in out:
            o.get("metadata", {}).get("labels", {}).pop("a3d-test/parsed", None)
        return out

    def render(self, values=None, sets=()):  # values: a path or a list of paths
        p = self.template(values, sets)
        if p.returncode != 0:
            raise RuntimeError(f"helm template failed: {p.stderr.strip()}")
        return Render(self, p.stdout)


class Render:
    def __init__(self, chart, text):
        self.text = text
        self.objs = chart.to_json(text)
        self.chart = chart
        self._gw = None

    def kinds(self):
        return sorted(o["kind"] for o in self.objs)

    def one(self, kind):
        found = [o for o in self.objs if o["kind"] == kind]
        if len(found) != 1:
            raise AssertionError(f"expected one {kind}, found {len(found)}")
        return found[0]

    def has(self, kind):
        return any(o["kind"] == kind for o in self.objs)

    @property
    def pod(self):
        return self.one("Deployment")["spec"]["template"]

    def container(self, name="gateway"):
        return next(c for c in self.all_containers() if c["name"] == name)

    def all_containers(self):
        spec = self.pod["spec"]
        return spec.get("initContainers", []) + spec["containers"]

    def volume(self, name):
        return next(v for v in self.pod["spec"]["volumes"] if v["name"] == name)

    def mount(self, volume, container="gateway"):
        return next(m for m in self.container(container)["volumeMounts"] if m["name"] == volume)

    def config_arg(self):
        args = self.container()["args"]
        return args[args.index("-c") + 1]

    def config_map(self):
        """The ConfigMap the config volume mounts (the dashboard may be another ConfigMap)."""
        name = self.volume("config")["configMap"]["name"]
        return next(o for o in self.objs if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == name)

    def gateway_yaml_text(self):
        return self.config_map()["data"][posixpath.basename(self.config_arg())]

    def gateway_config(self):
        """The gateway.yaml, parsed: wrapped in an object header kubectl accepts."""
        if self._gw is None:
            header = "apiVersion: a3d.test/v1\nkind: GatewayConfig\nmetadata:\n  name: gw\n"
            obj = self.chart.to_json(header + self.gateway_yaml_text())[0]
            for k in ("apiVersion", "kind", "metadata"):
                obj.pop(k)
            self._gw = obj
        return self._gw

    def checksum(self, name="checksum/config"):
        return self.pod["metadata"].get("annotations", {}).get(name)

    def volumes(self):
        return {v["name"]: v for v in self.pod["spec"]["volumes"]}

    def strategy(self):
        return self.one("Deployment")["spec"]["strategy"]


def port_of(container, name):
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def check_security(c, r, label):
    psc = r.pod["spec"].get("securityContext", {})
    c.check(f"{label}: pod runAsNonRoot, non-zero runAsUser, seccomp RuntimeDefault",
            psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0
            and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", psc)
    for ctr in r.all_containers():
        sc = ctr.get("securityContext", {})
        caps = sc.get("capabilities", {})
        c.check(f"{label}: container {ctr['name']}: readOnlyRootFilesystem, no privilege "
                "escalation, drop ALL, runAsNonRoot",
                sc.get("readOnlyRootFilesystem") is True
                and sc.get("allowPrivilegeEscalation") is False
                and caps.get("drop") == ["ALL"] and not caps.get("add")
                and sc.get("privileged", False) is False
                and sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, sc)
        res = ctr.get("resources", {})
        c.check(f"{label}: container {ctr['name']}: cpu/memory requests and limits set",
                all(res.get(k, {}).get(r_) for k in ("requests", "limits")
                    for r_ in ("cpu", "memory")), res)


def check_secret_mount(c, r, label, expect_secret_name, delivery):
    """The account secrets reach the directory the config names as owner-only (0400) files:
    delivery "mount" mounts the Secret volume there; "copy" has an init container copy the Secret
    volume's files there (in-memory emptyDir) with install -m 0400, before check-config runs."""
    gw = r.gateway_config()
    vol = r.volume("account-secrets")["secret"]
    c.check(f"{label}: account secret volume uses Secret {expect_secret_name!r} with mode 0400",
            vol.get("secretName") == expect_secret_name and vol.get("defaultMode") == 0o400, vol)
    names = [ctr["name"] for ctr in r.all_containers()]
    if delivery == "copy":
        cp = r.container("copy-secrets")
        src = r.mount("account-secrets", "copy-secrets")
        dst = r.mount("account-secrets-copy", "copy-secrets")
        script = " ".join(cp.get("command", []))
        c.check(f"{label}: copy-secrets copies {src['mountPath']}/* to {dst['mountPath']} with "
                "install -m 0400, before check-config and the gateway",
                f"{src['mountPath']}/*" in script
                and f'install -m 0400 "$f" {dst["mountPath"]}/' in script
                and src.get("readOnly") is True
                and names.index("copy-secrets") < names.index("check-config"), (script, names))
        c.check(f"{label}: the copies live in an in-memory emptyDir",
                r.volume("account-secrets-copy").get("emptyDir", {}).get("medium") == "Memory")
        vol_name = "account-secrets-copy"
    else:
        c.check(f"{label}: no copy-secrets init container with delivery=mount",
                "copy-secrets" not in names, names)
        vol_name = "account-secrets"
    for ctr in ("gateway", "check-config"):
        m = r.mount(vol_name, ctr)
        for acc in gw["accounts"]:
            f = acc.get("client_secret_file", "")
            c.check(f"{label}: {ctr}: account {acc['name']} secret file {f} is in the read-only "
                    f"mount of {vol_name} at {m['mountPath']}, named like the account (Secret key)",
                    m.get("readOnly") is True
                    and f == posixpath.join(m["mountPath"], acc["name"]), (f, m))


def check_probes(c, r, label, kind):
    ctr = r.container()
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = ctr.get(probe, {})
        if kind == "grpc":
            c.check(f"{label}: {probe} is a native gRPC probe on the gRPC port",
                    p.get("grpc", {}).get("port") == port_of(ctr, "grpc")
                    and "httpGet" not in p and "exec" not in p and "tcpSocket" not in p, p)
        else:
            want = "/readyz" if probe == "readinessProbe" else "/healthz"
            c.check(f"{label}: {probe} is httpGet {want} on the HTTP port (gRPC probes cannot "
                    "speak TLS)",
                    p.get("httpGet", {}).get("path") == want
                    and p["httpGet"].get("port") in ("http", port_of(ctr, "http"))
                    and "grpc" not in p, p)


def check_config_wiring(c, r, label, values_accounts, values_tenants):
    gw = r.gateway_config()
    ctr = r.container()
    cfg = r.config_arg()
    m = r.mount("config")
    c.check(f"{label}: -c {cfg} is inside the ConfigMap mount",
            posixpath.dirname(cfg) == m["mountPath"]
            and r.config_map()["metadata"]["name"] == r.one("Deployment")["metadata"]["name"],
            (cfg, m))
    c.check(f"{label}: gateway.yaml listens on the container's grpc, http and rest ports",
            gw["listen"]["grpc"].endswith(f":{port_of(ctr, 'grpc')}")
            and gw["listen"]["http"].endswith(f":{port_of(ctr, 'http')}")
            and gw["listen"]["rest"].endswith(f":{port_of(ctr, 'rest')}"), gw.get("listen"))
    c.check(f"{label}: gateway.yaml accounts are {values_accounts}",
            [a["name"] for a in gw["accounts"]] == values_accounts, gw["accounts"])
    c.check(f"{label}: gateway.yaml tenants are {[t for t, _ in values_tenants]} with their key "
            "digests",
            [(t["name"], [k["sha256"] for k in t["keys"]]) for t in gw["tenants"]]
            == [(t, keys) for t, keys in values_tenants], gw["tenants"])
    if "postgres" in gw["state"]:
        c.check(f"{label}: state in PostgreSQL: no state.path and no state volume",
                "path" not in gw["state"] and "memory" not in gw["state"]
                and "state" not in r.volumes(), (gw["state"], list(r.volumes())))
    else:
        state = posixpath.dirname(gw["state"]["path"])
        sm = r.mount("state")
        c.check(f"{label}: state.path {gw['state']['path']} is on the writable state volume",
                state == sm["mountPath"] and not sm.get("readOnly"), (state, sm))
    c.check(f"{label}: /tmp is a writable emptyDir",
            "emptyDir" in r.volume("tmp") and r.mount("tmp")["mountPath"] == "/tmp")


def check_service(c, r, label):
    svc = r.one("Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    c.check(f"{label}: Service has grpc (appProtocol grpc), http and rest ports on the named targets",
            ports.get("grpc", {}).get("appProtocol") == "grpc"
            and ports["grpc"].get("targetPort") == "grpc"
            and ports.get("http", {}).get("targetPort") == "http"
            and ports.get("rest", {}).get("targetPort") == "rest", ports)
    labels = r.pod["metadata"]["labels"]
    c.check(f"{label}: Service selector matches the pod labels",
            all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
            (svc["spec"]["selector"], labels))


def check_grace(c, r, label, grace_ms, prestop_s):
    ctr = r.container()
    args = ctr["args"]
    tgps = r.pod["spec"]["terminationGracePeriodSeconds"]
    c.check(f"{label}: --grace-ms {grace_ms} passed and terminationGracePeriodSeconds {tgps} "
            f"exceeds preStop {prestop_s}s + grace",
            "--grace-ms" in args and args[args.index("--grace-ms") + 1] == str(grace_ms)
            and tgps * 1000 >= (prestop_s + GRACE_MARGIN_S) * 1000 + grace_ms, (args, tgps))
    lp = ctr["livenessProbe"]
    window_ms = lp["failureThreshold"] * lp["periodSeconds"] * 1000
    c.check(f"{label}: liveness failure window {window_ms} ms outlasts the {grace_ms} ms drain",
            window_ms > grace_ms, lp)


def dsn_pairs(dsn):
    """libpq conninfo keyword=value pairs (the chart never quotes: its values have no spaces)."""
    return dict(kv.split("=", 1) for kv in dsn.split())


def check_postgres(c, r, label, want, secret_name, secret_key, delivery, replicas):
    """The state.postgres block, the password file behind it, the rollout and the replica count.
    want: the conninfo keywords the DSN must hold exactly."""
    gw = r.gateway_config()
    pg = gw.get("state", {}).get("postgres", {})
    pairs = dsn_pairs(pg.get("dsn", ""))
    c.check(f"{label}: state.postgres.dsn is {want}, with no password keyword",
            pairs == want and not {"password", "passfile"} & set(pairs), pg.get("dsn"))
    c.check(f"{label}: cluster.expected_replicas is {replicas}",
            gw.get("cluster", {}).get("expected_replicas") == replicas, gw.get("cluster"))
    pw = pg.get("password_file", "")
    vol = r.volume("postgres-secret")["projected"]
    srcs = [s_["secret"] for s_ in vol["sources"]]
    c.check(f"{label}: the password comes from Secret {secret_name!r} key {secret_key!r} as file "
            "'password', mode 0400",
            srcs[0] == {"name": secret_name, "items": [{"key": secret_key, "path": "password"}]}
            and vol.get("defaultMode") == 0o400, vol)
    names = [ctr["name"] for ctr in r.all_containers()]
    vol_name = "postgres-secret-copy" if delivery == "copy" else "postgres-secret"
    if delivery == "copy":
        script = " ".join(r.container("copy-secrets").get("command", []))
        src = r.mount("postgres-secret", "copy-secrets")["mountPath"]
        dst = r.mount("postgres-secret-copy", "copy-secrets")["mountPath"]
        c.check(f"{label}: copy-secrets installs the password 0400 into the in-memory emptyDir "
                "before check-config",
                f"install -m 0400 {src}/password {dst}/password" in script
                and r.volume("postgres-secret-copy").get("emptyDir", {}).get("medium") == "Memory"
                and names.index("copy-secrets") < names.index("check-config"), script)
    for ctr in ("gateway", "check-config"):
        m = r.mount(vol_name, ctr)
        c.check(f"{label}: {ctr}: state.postgres.password_file {pw} is the file 'password' of "
                f"the read-only mount of {vol_name}",
                m.get("readOnly") is True and pw == posixpath.join(m["mountPath"], "password"),
                (pw, m))
    c.check(f"{label}: state.postgres.pool is a positive integer",
            isinstance(pg.get("pool"), int) and pg["pool"] >= 1, pg.get("pool"))
    st = r.strategy()
    c.check(f"{label}: RollingUpdate with maxUnavailable 0 (a new pod must be ready first)",
            st.get("type") == "RollingUpdate"
            and st.get("rollingUpdate", {}).get("maxUnavailable") == 0, st)
    c.check(f"{label}: no PersistentVolumeClaim, no state volume",
            not r.has("PersistentVolumeClaim") and "state" not in r.volumes(), r.kinds())
    c.check(f"{label}: the gateway's root filesystem stays read-only",
            r.container()["securityContext"].get("readOnlyRootFilesystem") is True)


def check_redis(c, r, label, url, prefix, password, seal, delivery):
    """The redis block of gateway.yaml and the files behind it. password: (Secret, key) or None;
    seal: (Secret, key)."""
    rd = r.gateway_config().get("redis", {})
    c.check(f"{label}: redis.url is {url}, key_prefix {prefix!r}",
            rd.get("url") == url and rd.get("key_prefix") == prefix, rd)
    vol = r.volume("redis-secret")["projected"]
    srcs = [s_["secret"] for s_ in vol["sources"]]
    want = ([{"name": password[0], "items": [{"key": password[1], "path": "password"}]}]
            if password else [])
    want.append({"name": seal[0], "items": [{"key": seal[1], "path": "seal.key"}]})
    c.check(f"{label}: the Redis files come from {'password ' + str(password) + ' and ' if password else ''}"
            f"seal key {seal}, mode 0400",
            srcs == want and vol.get("defaultMode") == 0o400, vol)
    c.check(f"{label}: redis.password_file is {'set' if password else 'absent (no password)'}",
            ("password_file" in rd) == bool(password), rd)
    names = [ctr["name"] for ctr in r.all_containers()]
    vol_name = "redis-secret-copy" if delivery == "copy" else "redis-secret"
    if delivery == "copy":
        script = " ".join(r.container("copy-secrets").get("command", []))
        src = r.mount("redis-secret", "copy-secrets")["mountPath"]
        dst = r.mount("redis-secret-copy", "copy-secrets")["mountPath"]
        files = (["password"] if password else []) + ["seal.key"]
        c.check(f"{label}: copy-secrets installs {files} 0400 into the in-memory emptyDir before "
                "check-config",
                all(f"install -m 0400 {src}/{f} {dst}/{f}" in script for f in files)
                and (password or f"{src}/password" not in script)
                and r.volume("redis-secret-copy").get("emptyDir", {}).get("medium") == "Memory"
                and names.index("copy-secrets") < names.index("check-config"), script)
    for ctr in ("gateway", "check-config"):
        m = r.mount(vol_name, ctr)
        files = [rd.get("seal_key_file")] + ([rd.get("password_file")] if password else [])
        c.check(f"{label}: {ctr}: the Redis files {files} are in the read-only mount of {vol_name}",
                m.get("readOnly") is True and rd.get("seal_key_file") == posixpath.join(
                    m["mountPath"], "seal.key")
                and (not password or rd.get("password_file")
                     == posixpath.join(m["mountPath"], "password")), (rd, m))


# What --check-config may say about a rendered gateway.yaml outside a pod: the secret files are
# mounted there, not here. Any other line is a configuration the gateway would refuse.
SECRET_NOT_HERE = re.compile(
    r"^[^:]+:\d+: (accounts\[\d+\]\.client_secret_file|state\.postgres\.password_file|"
    r"redis\.password_file|redis\.seal_key_file|"
    r"webhooks\.path_token_file): cannot open secret file \S+: No such file or directory$")


def check_gateway_parses(c, chart, r, label):
    """The rendered gateway.yaml read by the gateway itself (--check-config, which never connects
    to PostgreSQL): OK, or only the pod's secret files missing. Skipped without a gateway binary."""
    if not chart.gateway:
        print(f"skip {label}: the gateway reads the rendered gateway.yaml (no gateway binary)")
        return
    chart.nrender += 1
    path = os.path.join(chart.work, f"gateway-{chart.nrender}.yaml")
    with open(path, "w") as f:
        f.write(r.gateway_yaml_text())
    p = subprocess.run([chart.gateway, "--check-config", "-c", path], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT_S)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    c.check(f"{label}: the gateway reads the rendered gateway.yaml (--check-config)",
            (p.returncode == 0 and "configuration OK" in p.stdout)
            or (p.returncode == 1 and lines and all(SECRET_NOT_HERE.match(ln) for ln in lines)),
            (p.returncode, p.stdout.strip(), lines))


def undocumented_values(text):
    """Key lines of values.yaml with neither a comment line right above nor a trailing comment."""
    lines = text.split("\n")
    bad = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(- )?[A-Za-z_][\w./-]*:", line)
        if not m or " # " in line:
            continue
        prev = lines[i - 1].strip() if i else ""
        if not (prev.startswith("#") or prev.startswith("- #")):
            bad.append(f"{i + 1}: {line.strip()}")
    return bad


def values_referenced(chart_dir):
    """Every .Values.a.b path the templates use."""
    refs = set()
    for d, _, names in os.walk(os.path.join(chart_dir, "templates")):
        for name in sorted(names):
            with open(os.path.join(d, name)) as f:
                refs.update(re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", f.read()))
    return sorted(r.lstrip(".") for r in refs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--chart", required=True)
    ap.add_argument("--prod-values", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--promql-modules", required=True,
                    help="node_modules holding @prometheus-io/lezer-promql")
    ap.add_argument("--gateway", help="animate3d-gateway binary; when there, it reads the rendered "
                    "gateway.yaml files (--check-config)")
    args = ap.parse_args()
    chart = Chart(args)
    c = Checker()

    def guarded(name, fn):
        """Runs one group of checks; an exception in it is one failure, not a crash."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            c.check(name, False, f"{type(e).__name__}: {e}")

    key_a = "333023d04b2bb2e3c569c221abd094480a5ea65ebdc52e3b904da1d8eb826c3f"

    def tenants(rate=50, **key):
        return chart.values_file({"config": {"tenants": [{
            "name": "team-a", "account": "main", "rate": {"per_second": rate, "burst": 100},
            "keys": [dict({"sha256": key_a, "permissions": ["read", "write"]}, **key)]}]}})

    def accounts(**extra):
        return chart.values_file({"config": {"accounts": [dict({
            "name": "main", "base_url": "https://service.deepmotion.com",
            "client_id": "replace-me"}, **extra)]}})

    # -- helm lint ----------------------------------------------------------------------------
    for label, values in (("lint default values", None), ("lint values-prod.yaml", chart.prod)):
        p = chart.lint(values)
        c.check(f"{label}: 0 errors (--strict)",
                p.returncode == 0 and "0 chart(s) failed" in p.stdout
                and "[ERROR]" not in p.stdout, (p.stdout + p.stderr).strip())

    # -- values.yaml documents every value the templates read --------------------------------
    def values_doc():
        with open(os.path.join(chart.chart, "values.yaml")) as f:
            text = f.read()
        bad = undocumented_values(text)
        c.check("values.yaml: every key has a comment", not bad, bad)
        header = "apiVersion: a3d.test/v1\nkind: Values\nmetadata:\n  name: v\n"
        values = chart.to_json(header + text)[0]
        missing = []
        for ref in values_referenced(chart.chart):
            node = values
            for part in ref.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(ref)
                    break
                node = node[part]
        c.check("values.yaml: every .Values path the templates read is defined there",
                not missing, missing)

    guarded("values.yaml", values_doc)

    # -- issue 20: schema, routes, helm test, spread, hooks, Chart.yaml -----------------------
    def hygiene():
        with open(os.path.join(chart.chart, "values.yaml")) as f:
            header = "apiVersion: a3d.test/v1\nkind: Values\nmetadata:\n  name: v\n"
            values = chart.to_json(header + f.read())[0]
        for k in ("apiVersion", "kind", "metadata"):
            values.pop(k)
        chart_hygiene.check_schema(c, chart, values)
        chart_hygiene.check_routes(c, chart)
        chart_hygiene.check_spread_and_hooks(c, chart)
        chart_hygiene.check_chart_yaml(c, chart)

    guarded("chart hygiene", hygiene)

    # -- issue 20: the dashboard, the alert rules and the helm test pod against a live gateway --
    def live_checks():
        chart_monitoring.check_helpers(c)
        live = chart_monitoring.LiveGateway(chart.work)
        try:
            families = chart_monitoring.families_of(live.metrics_text)
            c.check("live gateway: /metrics scraped after a job ended FAILURE 101 (no credits)",
                    "animate3d_gateway_job_outcomes_total" in families
                    and 'error="101"' in live.metrics_text, sorted(families)[:5])
            c.check("live gateway: the balance poller filled the credit and minutes gauges",
                    re.search(r'^animate3d_gateway_upstream_credit_balance\{account="sim"\} 0$',
                              live.metrics_text, re.M)
                    and re.search(r'^animate3d_gateway_upstream_minutes_balance\{account="sim"\} ',
                                  live.metrics_text, re.M),
                    [x for x in live.metrics_text.splitlines() if "balance" in x])
            chart_monitoring.check_monitoring(c, chart, args.promql_modules, families)
            chart_hygiene.check_test_pod(c, chart, live)
        finally:
            live.stop()

    guarded("dashboard, alert rules and helm test against a live gateway", live_checks)

    # -- defaults -----------------------------------------------------------------------------
    def defaults():
        r = chart.render()
        lab = "default"
        c.check(f"{lab}: renders exactly ConfigMap, Deployment, PDB, PVC, Secret, Service, "
                "ServiceAccount and the helm test Pod",
                r.kinds() == sorted(["ConfigMap", "Deployment", "PersistentVolumeClaim",
                                     "PodDisruptionBudget", "Secret", "Service",
                                     "ServiceAccount", "Pod"]), r.kinds())
        pvc = r.one("PersistentVolumeClaim")
        state = r.volume("state")
        c.check(f"{lab}: the SQLite state is on the chart's PVC (kept on uninstall), no emptyDir",
                state.get("persistentVolumeClaim", {}).get("claimName")
                == pvc["metadata"]["name"] and "emptyDir" not in state
                and pvc["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
                == "keep", (state, pvc["metadata"]))
        c.check(f"{lab}: Recreate rollout (one SQLite file on a ReadWriteOnce volume)",
                r.strategy() == {"type": "Recreate"}, r.strategy())
        gw = r.gateway_config()
        c.check(f"{lab}: no state.postgres and no cluster section without PostgreSQL",
                "postgres" not in gw["state"] and "cluster" not in gw, gw.get("state"))
        check_probes(c, r, lab, "grpc")
        check_security(c, r, lab)
        check_secret_mount(c, r, lab, r.one("Secret")["metadata"]["name"], "copy")
        mounted = chart.render(sets=["secrets.delivery=mount"])
        check_secret_mount(c, mounted, "delivery=mount", r.one("Secret")["metadata"]["name"],
                           "mount")
        check_config_wiring(c, r, lab, ["main"], [("team-a", [key_a])])
        check_service(c, r, lab)
        check_grace(c, r, lab, 20000, 5)
        c.check(f"{lab}: replicas set on the Deployment when the HPA is off",
                r.one("Deployment")["spec"].get("replicas") == 1)
        c.check(f"{lab}: no TLS volume and no tls section when TLS is off",
                all(v["name"] != "tls" for v in r.pod["spec"]["volumes"])
                and "tls" not in r.gateway_config())
        c.check(f"{lab}: ServiceAccount token not mounted",
                r.pod["spec"].get("automountServiceAccountToken") is False)

        # The checksum follows the config, and only the config.
        again = chart.render()
        c.check("checksum/config: identical for identical values",
                r.checksum() and again.checksum() == r.checksum(), (r.checksum(), again.checksum()))
        c.check("checksum/config: unchanged when the tenants are given again as they are",
                chart.render(values=tenants()).checksum() == r.checksum())
        for what, values, sets in (("log level", None, ["config.log.level=debug"]),
                                   ("tenant rate", tenants(rate=7), []),
                                   ("gRPC port", None, ["ports.grpc=50052"])):
            other = chart.render(values=values, sets=sets)
            c.check(f"checksum/config: changes when the {what} changes",
                    other.checksum() and other.checksum() != r.checksum()
                    and other.gateway_yaml_text() != r.gateway_yaml_text())
            if what == "gRPC port":
                check_probes(c, other, "ports.grpc=50052", "grpc")
                c.check("ports.grpc=50052: container port follows the value",
                        port_of(other.container(), "grpc") == 50052)
        passthrough = chart.render(sets=["config.max_message_bytes=4194304",
                                         "config.extra.upload_chunk_bytes=8388608"])
        gw = passthrough.gateway_config()
        c.check("config: other top-level keys and config.extra reach gateway.yaml as written",
                gw.get("max_message_bytes") == 4194304
                and gw.get("upload_chunk_bytes") == 8388608 and "extra" not in gw, gw)
        same = chart.render(sets=["resources.limits.memory=1Gi"])
        c.check("checksum/config: unchanged by a value outside the config (resources)",
                same.checksum() == r.checksum())

    guarded("default render", defaults)

    # -- chart-managed secrets never reach the ConfigMap ----------------------------------------
    def secrets():
        canary = "A3D-CANARY-s3cr3t-7f1e"
        r = chart.render(sets=[f"secrets.accounts.main={canary}"])
        sec = r.one("Secret")
        c.check("secrets.accounts.main: Secret key 'main' holds the client secret",
                base64.b64decode(sec["data"]["main"]).decode() == canary, sec.get("data"))
        forms = [canary, base64.b64encode(canary.encode()).decode()]
        non_secret = [o for o in r.objs if o["kind"] != "Secret"]
        leaked = [o["kind"] for o in non_secret for f in forms if f in json.dumps(o)]
        c.check("secrets.accounts.main: no object but the Secret carries it (plain or base64)",
                not leaked, leaked)
        gw_text = r.gateway_yaml_text()
        c.check("ConfigMap gateway.yaml names a secret file, never an inline secret",
                canary not in gw_text and "client_secret:" not in gw_text
                and "client_secret_file:" in gw_text, gw_text)
        base = chart.render()
        c.check("checksum/secret: changes when a chart-managed secret changes",
                r.checksum("checksum/secret") and
                r.checksum("checksum/secret") != base.checksum("checksum/secret"))
        c.check("checksum/secret: is a digest, not the secret",
                all(f not in json.dumps(r.pod["metadata"]) for f in forms))

    guarded("secrets render", secrets)

    # -- PostgreSQL: several replicas ----------------------------------------------------------
    pg_sets = ["postgres.enabled=true", "postgres.hostaddr=10.0.0.5"]
    # Several replicas need Redis too (cluster.requireRedis, true by default): the Redis values a
    # multi-replica render adds to PostgreSQL's.
    redis_on = ["redis.enabled=true", "redis.hostaddr=10.0.0.7",
                "redis.sealKey.existingSecret=a3d-redis-seal"]
    # The explicit opt-out: several replicas on PostgreSQL alone (limits split per pod).
    no_redis = ["cluster.requireRedis=false"]

    def postgres():
        canary = "A3D-CANARY-pgpw-91ab"
        for delivery in ("copy", "mount"):
            lab = f"postgres, replicaCount 3, delivery={delivery}"
            r = chart.render(sets=pg_sets + redis_on + [f"postgres.password={canary}",
                                                        "replicaCount=3",
                                                        f"secrets.delivery={delivery}"])
            secret = next(o for o in r.objs if o["kind"] == "Secret"
                          and o["metadata"]["name"].endswith("-postgres"))
            check_postgres(c, r, lab, {"hostaddr": "10.0.0.5", "port": "5432", "dbname": "a3d",
                                       "user": "a3d", "sslmode": "require"},
                           secret["metadata"]["name"], "password", delivery, 3)
            check_config_wiring(c, r, lab, ["main"], [("team-a", [key_a])])
            check_security(c, r, lab)
            c.check(f"{lab}: Deployment replicas 3",
                    r.one("Deployment")["spec"].get("replicas") == 3)
        c.check("postgres.password: the chart's Secret holds it under 'password'",
                base64.b64decode(secret["data"]["password"]).decode() == canary, secret["data"])
        forms = [canary, base64.b64encode(canary.encode()).decode()]
        leaked = [o["kind"] for o in r.objs if o["kind"] != "Secret"
                  for f in forms if f in json.dumps(o)]
        c.check("postgres.password: no object but its Secret carries it (plain or base64)",
                not leaked, leaked)
        other = chart.render(sets=pg_sets + redis_on + ["postgres.password=another",
                                                        "replicaCount=3"])
        c.check("checksum/postgres-secret: a digest that changes with the password",
                r.checksum("checksum/postgres-secret")
                and r.checksum("checksum/postgres-secret")
                != other.checksum("checksum/postgres-secret")
                and all(f not in json.dumps(r.pod["metadata"]) for f in forms))
        ext = chart.render(sets=pg_sets + redis_on + ["postgres.existingSecret=pg", "replicaCount=2",
                                           "cluster.expectedReplicas=4", "postgres.host=db.x",
                                           "postgres.params.application_name=a3d"])
        check_postgres(c, ext, "postgres.existingSecret, expectedReplicas 4",
                       {"host": "db.x", "hostaddr": "10.0.0.5", "port": "5432", "dbname": "a3d",
                        "user": "a3d", "sslmode": "require", "application_name": "a3d"},
                       "pg", "password", "copy", 4)
        check_gateway_parses(c, chart, r, "postgres, replicaCount 3")
        check_gateway_parses(c, chart, ext, "postgres.existingSecret, expectedReplicas 4")
        # The longest DSN the chart writes (toYaml folds it over several lines): every keyword.
        full = chart.render(sets=pg_sets + redis_on + [
            "postgres.existingSecret=pg", "replicaCount=3", "postgres.sslmode=verify-full",
            "postgres.host=pg-a3d.example.internal.a-long-name-for-folding.example.com",
            "postgres.caSecret=pg-ca", "postgres.params.application_name=a3d-prod",
            "postgres.params.keepalives_idle=30", "postgres.params.target_session_attrs=read-write",
            "postgres.params.tcp_user_timeout=10000"])
        dsn = full.gateway_config()["state"]["postgres"]["dsn"]
        c.check("postgres, verify-full with caSecret and params: the DSN holds every keyword",
                set(dsn_pairs(dsn)) == {"host", "hostaddr", "port", "dbname", "user", "sslmode",
                                        "sslrootcert", "application_name", "keepalives_idle",
                                        "target_session_attrs", "tcp_user_timeout"}, dsn)
        check_gateway_parses(c, chart, full, "postgres, verify-full with caSecret and params")
        c.check("postgres.existingSecret: the chart renders no PostgreSQL Secret and no "
                "checksum/postgres-secret",
                not any(o["kind"] == "Secret" and o["metadata"]["name"].endswith("-postgres")
                        for o in ext.objs)
                and ext.checksum("checksum/postgres-secret") is None)
        one = chart.render(sets=pg_sets + ["postgres.password=x"])
        c.check("postgres with one replica: still RollingUpdate and no PVC, expected_replicas 1",
                one.strategy().get("type") == "RollingUpdate"
                and not one.has("PersistentVolumeClaim")
                and one.gateway_config()["cluster"]["expected_replicas"] == 1)
        stopped = chart.render(sets=pg_sets + ["postgres.password=x", "replicaCount=0"])
        c.check("postgres, replicaCount 0 (stopped for a restore): renders, expected_replicas 1",
                stopped.one("Deployment")["spec"]["replicas"] == 0
                and stopped.gateway_config()["cluster"]["expected_replicas"] == 1)
        hpa = chart.render(sets=pg_sets + redis_on + ["postgres.password=x",
                                                      "autoscaling.enabled=true",
                                                      "autoscaling.minReplicas=2",
                                                      "autoscaling.maxReplicas=7"])
        c.check("postgres and redis with the HPA: rendered, expected_replicas = maxReplicas (7)",
                hpa.has("HorizontalPodAutoscaler")
                and hpa.gateway_config()["cluster"]["expected_replicas"] == 7)
        # cluster.requireRedis=false: the old rule, PostgreSQL alone, chosen explicitly.
        for lab, sets, n in (("replicaCount 3", ["replicaCount=3"], 3),
                             ("the HPA up to 5", ["autoscaling.enabled=true",
                                                  "autoscaling.maxReplicas=5"], 5)):
            lab = f"postgres only, cluster.requireRedis=false, {lab}"
            opt = chart.render(sets=pg_sets + no_redis + ["postgres.existingSecret=pg"] + sets)
            c.check(f"{lab}: renders, no redis block or volume, expected_replicas {n}",
                    opt.has("Deployment") and "redis" not in opt.gateway_config()
                    and not any(v.startswith("redis-") for v in opt.volumes())
                    and opt.gateway_config()["cluster"]["expected_replicas"] == n,
                    (opt.kinds(), opt.gateway_config().get("cluster")))
            check_gateway_parses(c, chart, opt, lab)
        v6 = chart.render(sets=["postgres.enabled=true", "postgres.hostaddr=fd00::5",
                                "postgres.password=x", "networkPolicy.enabled=true"])
        eg = v6.one("NetworkPolicy")["spec"]["egress"]
        check_gateway_parses(c, chart, v6, "postgres on IPv6")
        c.check("postgres on IPv6: hostaddr in the DSN, NetworkPolicy egress to its /128 on 5432",
                dsn_pairs(v6.gateway_config()["state"]["postgres"]["dsn"])["hostaddr"] == "fd00::5"
                and any(rule.get("to") == [{"ipBlock": {"cidr": "fd00::5/128"}}]
                        and rule["ports"] == [{"port": 5432, "protocol": "TCP"}] for rule in eg),
                eg)

    guarded("postgres render", postgres)

    # -- Redis: coordination of several replicas ---------------------------------------------
    redis_sets = pg_sets + ["postgres.existingSecret=pg"] + redis_on

    def redis():
        for delivery in ("copy", "mount"):
            lab = f"redis, replicaCount 3, delivery={delivery}"
            r = chart.render(sets=redis_sets + ["redis.existingSecret=a3d-redis", "replicaCount=3",
                                                f"secrets.delivery={delivery}"])
            check_redis(c, r, lab, "redis://10.0.0.7:6379/0", "a3d:", ("a3d-redis", "password"),
                        ("a3d-redis-seal", "seal.key"), delivery)
            check_postgres(c, r, lab, {"hostaddr": "10.0.0.5", "port": "5432", "dbname": "a3d",
                                       "user": "a3d", "sslmode": "require"}, "pg", "password",
                           delivery, 3)
            check_security(c, r, lab)
            check_gateway_parses(c, chart, r, lab)
            c.check(f"{lab}: no Redis Secret rendered (the password never goes through values)",
                    not any(o["kind"] == "Secret" and "redis" in o["metadata"]["name"]
                            for o in r.objs), r.kinds())
        nopw = chart.render(sets=redis_sets + ["redis.port=6380", "redis.db=3",
                                               "redis.keyPrefix=a3d-prod:v1.",
                                               "redis.sealKey.existingSecretKey=key",
                                               "redis.connectTimeoutMs=60000",
                                               "redis.commandTimeoutMs=10"])
        lab = "redis without a password, port 6380, db 3, timeouts"
        check_redis(c, nopw, lab, "redis://10.0.0.7:6380/3", "a3d-prod:v1.", None,
                    ("a3d-redis-seal", "key"), "copy")
        rd = nopw.gateway_config()["redis"]
        c.check(f"{lab}: connect_timeout_ms 60000, command_timeout_ms 10",
                rd.get("connect_timeout_ms") == 60000 and rd.get("command_timeout_ms") == 10, rd)
        check_gateway_parses(c, chart, nopw, lab)
        dflt = chart.render(sets=redis_sets)
        c.check("redis with default timeouts: gateway.yaml leaves them to the gateway",
                "connect_timeout_ms" not in dflt.gateway_config()["redis"]
                and "command_timeout_ms" not in dflt.gateway_config()["redis"])
        v6 = chart.render(sets=redis_sets + ["redis.hostaddr=fd00::7", "redis.port=7000",
                                             "networkPolicy.enabled=true"])
        eg = v6.one("NetworkPolicy")["spec"]["egress"]
        check_gateway_parses(c, chart, v6, "redis on IPv6")
        c.check("redis on IPv6: redis://[fd00::7]:7000/0, NetworkPolicy egress to its /128 on 7000",
                v6.gateway_config()["redis"]["url"] == "redis://[fd00::7]:7000/0"
                and any(rule.get("to") == [{"ipBlock": {"cidr": "fd00::7/128"}}]
                        and rule["ports"] == [{"port": 7000, "protocol": "TCP"}] for rule in eg),
                eg)
        v4 = chart.render(sets=redis_sets + ["networkPolicy.enabled=true"])
        c.check("redis: NetworkPolicy egress to 10.0.0.7/32 on 6379 next to PostgreSQL's",
                any(rule.get("to") == [{"ipBlock": {"cidr": "10.0.0.7/32"}}]
                    and rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
                    for rule in v4.one("NetworkPolicy")["spec"]["egress"]))
        off = chart.render(sets=pg_sets + no_redis + ["postgres.password=x", "replicaCount=3",
                                                      "networkPolicy.enabled=true"])
        c.check("without redis.enabled (cluster.requireRedis=false, 3 replicas): no redis block, "
                "no Redis volume, no egress to 6379",
                "redis" not in off.gateway_config()
                and not any(n.startswith("redis-") for n in off.volumes())
                and not any(p_.get("port") == 6379 for rule in
                            off.one("NetworkPolicy")["spec"]["egress"] for p_ in rule["ports"]))
        # Secrets: every canary in values reaches only its Secret, whatever else is enabled.
        canaries = {"secrets.accounts.main": "A3D-CANARY-acct-19c4",
                    "postgres.password": "A3D-CANARY-pgpw-77d0"}
        sec = chart.render(sets=[x for x in redis_sets if x != "postgres.existingSecret=pg"]
                           + [f"{k}={v}" for k, v in canaries.items()]
                           + ["redis.existingSecret=a3d-redis", "replicaCount=3",
                              "networkPolicy.enabled=true"])
        forms = [f for v in canaries.values() for f in (v, base64.b64encode(v.encode()).decode())]
        leaked = [o["kind"] for o in sec.objs if o["kind"] != "Secret"
                  for f in forms if f in json.dumps(o)]
        c.check("redis with chart-managed secrets: no object but a Secret carries a secret value "
                "(plain or base64)", not leaked, leaked)
        # cluster.requireRedis (default true): several replicas render with PostgreSQL and Redis.
        for lab, sets in (("replicaCount 3", ["replicaCount=3"]),
                          ("the HPA", ["autoscaling.enabled=true"])):
            on = chart.render(sets=redis_sets + sets)
            c.check(f"default cluster.requireRedis, redis.enabled and {lab}: renders",
                    on.has("Deployment") and "redis" in on.gateway_config())
        for lab, sets in (("one replica", []), ("replicaCount 0", ["replicaCount=0"])):
            one = chart.render(sets=pg_sets + ["postgres.password=x"] + sets)
            c.check(f"default cluster.requireRedis, {lab}, no Redis: renders",
                    one.has("Deployment") and "redis" not in one.gateway_config())
        # The opt-out with chart-managed secrets: still no secret outside its Secret.
        sec = chart.render(sets=pg_sets + no_redis
                           + [f"{k}={v}" for k, v in canaries.items()]
                           + ["replicaCount=3", "networkPolicy.enabled=true"])
        leaked = [o["kind"] for o in sec.objs if o["kind"] != "Secret"
                  for f in forms if f in json.dumps(o)]
        c.check("cluster.requireRedis=false, 3 replicas with chart-managed secrets: no object but "
                "a Secret carries a secret value (plain or base64)", not leaked, leaked)

    guarded("redis render", redis)

    # -- helm upgrade with persistence: the SQLite file survives the rollout -------------------
    def upgrade():
        before = chart.render()
        after = chart.render(values=tenants(rate=9), sets=["config.log.level=debug"])
        lab = "helm upgrade (changed config, persistence)"
        pb, pa = before.one("PersistentVolumeClaim"), after.one("PersistentVolumeClaim")
        claim = [x.volume("state")["persistentVolumeClaim"]["claimName"] for x in (before, after)]
        c.check(f"{lab}: checksum/config changes, so the pod rolls",
                before.checksum() and before.checksum() != after.checksum())
        c.check(f"{lab}: the PVC and the pod's claim keep their name ({claim[0]})",
                pb["metadata"]["name"] == pa["metadata"]["name"] == claim[0] == claim[1]
                and pb["spec"] == pa["spec"], (claim, pb["metadata"]["name"],
                                                pa["metadata"]["name"]))
        c.check(f"{lab}: state.path and its mount are unchanged",
                before.gateway_config()["state"] == after.gateway_config()["state"]
                and before.mount("state") == after.mount("state"))
        c.check(f"{lab}: both renders roll out with Recreate (the old pod releases the file first)",
                before.strategy() == after.strategy() == {"type": "Recreate"})
        kept = chart.render(sets=["persistence.existingClaim=a3d-state", "config.log.level=warn"])
        c.check("persistence.existingClaim: mounted, no PVC rendered",
                kept.volume("state")["persistentVolumeClaim"]["claimName"] == "a3d-state"
                and not kept.has("PersistentVolumeClaim"))

    guarded("upgrade render", upgrade)

    # -- NOTES.txt says where the state is and what several replicas mean ----------------------
    def notes():
        cases = (("default", [], ["PersistentVolumeClaim", "Recreate"], ["WARNING: SQLite"]),
                 ("persistence.enabled=false", ["persistence.enabled=false"],
                  ["WARNING: SQLite in an emptyDir"], []),
                 ("postgres only, 3 replicas, cluster.requireRedis=false",
                  pg_sets + no_redis + ["postgres.password=x", "replicaCount=3"],
                  ["PostgreSQL at 10.0.0.5:5432", "cluster.expected_replicas is 3",
                   "not shared (cluster.requireRedis=false, no Redis)",
                   "1/3 of every tenant's rate limit", "logs in upstream on its own",
                   "Set redis.enabled"],
                  ["WARNING: SQLite", "PersistentVolumeClaim", "through Redis",
                   "Coordination: Redis"]),
                 ("postgres, 1 replica", pg_sets + ["postgres.password=x"],
                  ["PostgreSQL at 10.0.0.5:5432"], ["expected_replicas", "Coordination: Redis"]),
                 ("redis, 3 replicas", redis_sets + ["replicaCount=3", "redis.existingSecret=rp"],
                  ["Coordination: Redis at 10.0.0.7:6379, database 0, key prefix a3d:",
                   "password from Secret rp", "seal key from Secret a3d-redis-seal",
                   "rate limits, the upstream session and job statuses are shared\n"
                   "through Redis at 10.0.0.7:6379",
                   "falls back to its local share: it admits 1/3",
                   "cluster.expected_replicas is 3\n(from replicaCount)",
                   "TLS sidecar or the service mesh"],
                  ["no password", "does not use Redis yet", "not shared", "later release",
                   "Set redis.enabled"]),
                 ("redis, 1 replica", redis_sets,
                  ["Coordination: Redis at 10.0.0.7:6379"],
                  ["expected_replicas", "Several replicas, one gateway", "not shared"]),
                 ("redis with the HPA up to 4", redis_sets + ["autoscaling.enabled=true",
                                                             "autoscaling.maxReplicas=4"],
                  ["through Redis at 10.0.0.7:6379", "falls back to its local share: it admits 1/4",
                   "cluster.expected_replicas is 4\n(the HPA's maxReplicas)"],
                  ["not shared", "Set redis.enabled"]),
                 ("redis without a password", redis_sets,
                  ["Coordination: Redis at 10.0.0.7:6379", "no password, seal key from Secret"],
                  ["password from Secret rp"]))
        for lab, sets, want, unwanted in cases:
            text = chart.notes(sets=sets)
            c.check(f"NOTES ({lab}): says {want}, not {unwanted}, never state.redis",
                    all(w in text for w in want) and not any(u in text for u in unwanted)
                    and "state.redis" not in text, text)
        text = chart.notes(values=chart.prod)
        c.check("NOTES (prod, HPA 3..10): shared through Redis at 10.20.0.30:6379; expected_replicas "
                "(the local fallback share) is the HPA's maxReplicas (10)",
                "through Redis at 10.20.0.30:6379" in text
                and "cluster.expected_replicas is 10" in text and "maxReplicas" in text
                and "not shared" not in text, text)
        c.check("NOTES (prod): helm test, the public webhook path on the Ingress host, no "
                "public_url warning (it is set)",
                "helm test t -n a3d" in text
                and "public under /webhooks/animate3d/ through the Ingress (a3d-hooks.example.com)"
                in text and "public_url is not set" not in text, text)
        text = chart.notes(sets=["route.http.enabled=true", "route.http.parentRefs[0].name=gw",
                                 "tests.enabled=false"])
        c.check("NOTES (route.http without config.webhooks.public_url): warns that nothing will "
                "be delivered; no helm test line without the test pod",
                "through the HTTPRoute" in text and "WARNING: config.webhooks.public_url is not set"
                in text and "helm test" not in text, text)

    guarded("NOTES", notes)

    # -- non-default values -------------------------------------------------------------------
    def prod():
        r = chart.render(values=chart.prod)
        lab = "prod"
        c.check(f"{lab}: existingSecret renders no Secret", not r.has("Secret"), r.kinds())
        check_postgres(c, r, lab, {
            "host": "pg-a3d.prod.example.internal", "hostaddr": "10.20.0.15", "port": "5432",
            "dbname": "animate3d_gateway", "user": "animate3d_gateway", "sslmode": "verify-full",
            "sslrootcert": "/var/run/secrets/animate3d-gateway/postgres/ca.crt",
            "application_name": "animate3d-gateway"}, "a3d-postgres", "gateway-password", "copy",
            10)
        check_redis(c, r, lab, "redis://10.20.0.30:6379/0", "a3d-prod:", ("a3d-redis", "password"),
                    ("a3d-redis-seal", "seal.key"), "copy")
        check_gateway_parses(c, chart, r, lab)
        pv = r.volume("postgres-secret")["projected"]["sources"]
        c.check(f"{lab}: the CA certificate (sslrootcert) comes from a3d-postgres-ca as ca.crt "
                "next to the password",
                pv[1]["secret"] == {"name": "a3d-postgres-ca",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}]}, pv)
        check_secret_mount(c, r, lab, "a3d-upstream-accounts", "copy")
        check_security(c, r, lab)
        check_probes(c, r, lab, "http")
        check_config_wiring(c, r, lab, ["prod-eu", "prod-us"], [
            ("render-farm", ["5b41362bc82b7f3d56edc5a306db22105707d01ff4819e26faef9724a2d406c9"]),
            ("dashboard", ["45ae5d0e3ce6e2db5e8e5e5c0f6ec6a6b46cd0cf1a81b6e5a6a35dbd3b7b3f2a"])])
        check_service(c, r, lab)
        check_grace(c, r, lab, 45000, 10)
        ctr = r.container()
        c.check(f"{lab}: image and resources come from values",
                ctr["image"] == "registry.example.com/platform/animate3d-gateway:0.1.0"
                and ctr["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                         "limits": {"cpu": "2", "memory": "1Gi"}},
                (ctr["image"], ctr["resources"]))
        gw = r.gateway_config()
        tm = r.mount("tls")
        tls = gw.get("tls", {})
        c.check(f"{lab}: TLS Secret mounted read-only (0400) and gateway.yaml tls files point "
                "into it (cert, key, client CA)",
                r.volume("tls")["secret"] == {"secretName": "a3d-gateway-tls",
                                              "defaultMode": 0o400}
                and tm.get("readOnly") is True
                and tls.get("cert_file") == posixpath.join(tm["mountPath"], "tls.crt")
                and tls.get("key_file") == posixpath.join(tm["mountPath"], "tls.key")
                and tls.get("client_ca_file") == posixpath.join(tm["mountPath"], "ca.crt"),
                (tls, tm))
        dep = r.one("Deployment")
        hpa = r.one("HorizontalPodAutoscaler")
        c.check(f"{lab}: HPA autoscaling/v2 targets the Deployment, 3..10 at 60% CPU; the "
                "Deployment leaves replicas to it",
                hpa["apiVersion"] == "autoscaling/v2"
                and hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1",
                                                      "kind": "Deployment",
                                                      "name": dep["metadata"]["name"]}
                and hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 10
                and hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
                and "replicas" not in dep["spec"], hpa["spec"])
        pdb = r.one("PodDisruptionBudget")
        c.check(f"{lab}: PDB minAvailable 2 selects the pods",
                pdb["spec"].get("minAvailable") == 2 and "maxUnavailable" not in pdb["spec"]
                and pdb["spec"]["selector"]["matchLabels"].items()
                <= r.pod["metadata"]["labels"].items(), pdb["spec"])
        sm = r.one("ServiceMonitor")
        ep = sm["spec"]["endpoints"][0]
        c.check(f"{lab}: ServiceMonitor scrapes /metrics on the Service's http port, with the "
                "selector label",
                sm["apiVersion"] == "monitoring.coreos.com/v1" and ep["port"] == "http"
                and ep["path"] == "/metrics"
                and sm["metadata"]["labels"].get("release") == "kube-prometheus"
                and sm["spec"]["selector"]["matchLabels"].items()
                <= r.one("Service")["metadata"]["labels"].items(), sm["spec"])
        npol = r.one("NetworkPolicy")
        ing_ports = {p["port"] for rule in npol["spec"]["ingress"] for p in rule["ports"]}
        eg_ports = {(p["port"], p["protocol"]) for rule in npol["spec"]["egress"]
                    for p in rule["ports"]}
        c.check(f"{lab}: NetworkPolicy admits grpc/http from the listed peers, egress DNS and 443",
                npol["spec"]["policyTypes"] == ["Ingress", "Egress"]
                and ing_ports == {"grpc", "http", "rest"}
                and npol["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
                == {"a3d-client": "true"}
                and {(53, "UDP"), (53, "TCP"), (443, "TCP")} <= eg_ports, npol["spec"])
        c.check(f"{lab}: NetworkPolicy admits egress to PostgreSQL 10.20.0.15/32 on 5432",
                any(rule.get("to") == [{"ipBlock": {"cidr": "10.20.0.15/32"}}]
                    and rule["ports"] == [{"port": 5432, "protocol": "TCP"}]
                    for rule in npol["spec"]["egress"]), npol["spec"]["egress"])
        c.check(f"{lab}: NetworkPolicy admits egress to Redis 10.20.0.30/32 on 6379",
                any(rule.get("to") == [{"ipBlock": {"cidr": "10.20.0.30/32"}}]
                    and rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
                    for rule in npol["spec"]["egress"]), npol["spec"]["egress"])
        ing = r.one("Ingress")
        c.check(f"{lab}: Ingress for the webhook path on a3d-hooks.example.com with TLS; a "
                "GRPCRoute on the internal Gateway; no HTTPRoute",
                [(x["host"], [p["path"] for p in x["http"]["paths"]])
                 for x in ing["spec"]["rules"]]
                == [("a3d-hooks.example.com", ["/webhooks/animate3d"])]
                and ing["spec"]["tls"][0]["secretName"] == "a3d-hooks-tls"
                and r.one("GRPCRoute")["spec"]["parentRefs"][0]["name"] == "internal-gw"
                and not r.has("HTTPRoute"), ing["spec"])
        c.check(f"{lab}: hard zone spread as given, with the release's selector",
                r.pod["spec"]["topologySpreadConstraints"][0]["whenUnsatisfiable"]
                == "DoNotSchedule"
                and r.pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
                == r.one("Deployment")["spec"]["selector"]["matchLabels"])
        rules = [x for g in r.one("PrometheusRule")["spec"]["groups"] for x in g["rules"]]
        c.check(f"{lab}: dashboard ConfigMap, PrometheusRule with team label and thresholds",
                any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")
                    for o in r.objs)
                and all(x["labels"].get("team") == "platform" for x in rules)
                and any(x["expr"].rstrip().endswith("> 500") for x in rules), rules[:1])

    guarded("prod render", prod)

    # -- each optional object is present exactly when enabled ----------------------------------
    def toggles():
        for kind, key, base in (("HorizontalPodAutoscaler", "autoscaling.enabled",
                                 pg_sets + redis_on + ["postgres.password=x"]),
                                ("PodDisruptionBudget", "podDisruptionBudget.enabled", []),
                                ("ServiceMonitor", "serviceMonitor.enabled", []),
                                ("NetworkPolicy", "networkPolicy.enabled", [])):
            on = chart.render(sets=base + [f"{key}=true"])
            off = chart.render(sets=base + [f"{key}=false"])
            c.check(f"{kind}: rendered with {key}=true, absent with false",
                    on.has(kind) and not off.has(kind), (on.kinds(), off.kinds()))
        r = chart.render(sets=["persistence.enabled=false"])
        c.check("persistence.enabled=false: no PVC, the SQLite file in an emptyDir, RollingUpdate",
                not r.has("PersistentVolumeClaim") and "emptyDir" in r.volume("state")
                and r.strategy().get("type") == "RollingUpdate", (r.kinds(), r.strategy()))
        r = chart.render(sets=["config.state.memory=true"])
        c.check("config.state.memory: no PVC, no state volume",
                not r.has("PersistentVolumeClaim") and "state" not in r.volumes())
        r = chart.render(sets=["strategy.type=Recreate"])
        c.check("strategy: an explicit Recreate is accepted with the SQLite claim",
                r.strategy() == {"type": "Recreate"})

    guarded("optional objects", toggles)

    # -- values the chart must refuse ---------------------------------------------------------
    canary = "A3D-CANARY-refused-4c2d"
    # Why several replicas need Redis: the refusal names each cost and both ways out.
    redis_why = ("rate limits would be split per pod", "each pod would log in upstream on its own",
                 "WatchStatus streams would miss the webhooks other pods receive",
                 "set redis.enabled", "cluster.requireRedis=false")
    for what, values, sets, needle in (
            ("a plain API key instead of its sha256", tenants(key=canary), [], "sha256"),
            ("a malformed sha256", tenants(sha256=canary), [], "sha256"),
            ("a budget without minutes_per_month", chart.values_file({"config": {"tenants": [{
                "name": "team-a", "account": "main", "budget": {"hard": True},
                "keys": [{"sha256": key_a, "permissions": ["read"]}]}]}}), [], "minutes_per_month"),
            ("a budget window that is no window", chart.values_file({"config": {"tenants": [{
                "name": "team-a", "account": "main",
                "budget": {"minutes_per_month": 5, "window": "week"},
                "keys": [{"sha256": key_a, "permissions": ["read"]}]}]}}), [], "window"),
            ("an inline client_secret", accounts(client_secret=canary), [], "inline"),
            ("tls.enabled without tls.secretName", None, ["tls.enabled=true"], "tls.secretName"),
            ("an unknown secrets.delivery", None, ["secrets.delivery=symlink"], "delivery"),
            ("config.listen (the chart owns it)", None, ["config.listen.grpc=0.0.0.0:1"],
             "config.listen"),
            ("replicaCount 3 without PostgreSQL", None, ["replicaCount=3"],
             "replicaCount 3 needs postgres.enabled: without PostgreSQL each pod keeps job"),
            ("replicaCount 2 with persistence off and no PostgreSQL", None,
             ["replicaCount=2", "persistence.enabled=false"], "own SQLite file"),
            ("the HPA without PostgreSQL", None, ["autoscaling.enabled=true"],
             "autoscaling.enabled needs postgres.enabled"),
            ("several replicas on the memory store", None,
             ["replicaCount=2", "config.state.memory=true"], "its own memory"),
            ("RollingUpdate with the SQLite claim", None, ["strategy.type=RollingUpdate"],
             "only Recreate"),
            ("postgres without hostaddr", None, ["postgres.enabled=true", "postgres.password=x"],
             "postgres.hostaddr"),
            ("postgres.hostaddr a DNS name", None,
             ["postgres.enabled=true", "postgres.password=x", "postgres.hostaddr=db.example.com"],
             "must be an IPv4 or IPv6 address"),
            ("postgres without a password", None, pg_sets, "postgres.existingSecret"),
            ("a password in postgres.params", None,
             pg_sets + ["postgres.existingSecret=pg", f"postgres.params.password={canary}"],
             "never from the connection string"),
            ("a second keyword smuggled into a DSN value", None,
             pg_sets + ["postgres.password=x", f"postgres.database=a3d password={canary}"],
             "postgres.database"),
            ("sslmode verify-full without a CA", None,
             pg_sets + ["postgres.password=x", "postgres.sslmode=verify-full"],
             "postgres.caSecret"),
            ("sslmode verify-full without postgres.host", None,
             pg_sets + ["postgres.password=x", "postgres.sslmode=verify-full",
                        "postgres.caSecret=ca"], "postgres.host"),
            ("config.state.postgres (the chart owns it)", None,
             [f"config.state.postgres.dsn=host=x password={canary}"], "config.state.postgres"),
            ("config.state.path with postgres", None,
             pg_sets + ["postgres.password=x", "config.state.path=/x.db"], "config.state.path"),
            ("cluster.expectedReplicas 0", None,
             pg_sets + ["postgres.password=x", "cluster.expectedReplicas=0"],
             "cluster.expectedReplicas must be at least 1"),
            ("config.cluster.expected_replicas (the chart owns it)", None,
             pg_sets + ["postgres.password=x", "config.cluster.expected_replicas=2"],
             "config.cluster.expected_replicas"),
            ("redis without PostgreSQL", None,
             ["redis.enabled=true", "redis.hostaddr=10.0.0.7", "redis.sealKey.existingSecret=s"],
             "redis.enabled needs postgres.enabled"),
            ("redis without hostaddr", None,
             [x for x in redis_sets if x != "redis.hostaddr=10.0.0.7"], "needs redis.hostaddr"),
            ("redis.hostaddr a DNS name", None, redis_sets + ["redis.hostaddr=redis.example.com"],
             "redis.hostaddr \"redis.example.com\" must be an IPv4 or IPv6 address"),
            ("redis.hostaddr smuggling a password into the url", None,
             redis_sets + [f"redis.hostaddr=:{canary}@10.0.0.7"], "must be an IPv4 or IPv6"),
            ("redis without a seal key", None,
             [x for x in redis_sets if not x.startswith("redis.sealKey")],
             "redis.enabled needs redis.sealKey.existingSecret"),
            ("redis.password (only from a Secret)", None, redis_sets + [f"redis.password={canary}"],
             "redis.password: the chart takes the Redis password only from a Secret"),
            ("redis.port 0", None, redis_sets + ["redis.port=0"], "redis.port must be 1..65535"),
            ("redis.db 16", None, redis_sets + ["redis.db=16"], "redis.db must be 0..15"),
            ("redis.keyPrefix with a space", None, redis_sets + ["redis.keyPrefix=a3d prod"],
             "redis.keyPrefix must be 1..32"),
            ("redis.keyPrefix of 33 bytes", None, redis_sets + ["redis.keyPrefix=" + "a" * 33],
             "redis.keyPrefix must be 1..32"),
            ("redis.commandTimeoutMs 5", None, redis_sets + ["redis.commandTimeoutMs=5"],
             "redis.commandTimeoutMs must be 10..10000"),
            ("redis.connectTimeoutMs 60001", None, redis_sets + ["redis.connectTimeoutMs=60001"],
             "redis.connectTimeoutMs must be 100..60000"),
            ("config.redis (the chart owns it)", None,
             [f"config.redis.url=redis://:{canary}@10.0.0.7"], "config.redis is set by the chart"),
            ("replicaCount 3 with PostgreSQL but no Redis (default cluster.requireRedis)", None,
             pg_sets + [f"postgres.password={canary}", "replicaCount=3"],
             ("replicaCount 3 needs redis.enabled (cluster.requireRedis)",) + redis_why),
            ("the HPA with PostgreSQL but no Redis (default cluster.requireRedis)", None,
             pg_sets + [f"postgres.password={canary}", "autoscaling.enabled=true"],
             ("autoscaling.enabled needs redis.enabled (cluster.requireRedis)",) + redis_why),
            ("replicaCount 2 with PostgreSQL, Redis configured but off", None,
             pg_sets + ["postgres.existingSecret=pg", "replicaCount=2", "redis.hostaddr=10.0.0.7",
                        "redis.sealKey.existingSecret=s"],
             "replicaCount 2 needs redis.enabled"),
            ("cluster.requireRedis=true given, replicaCount 3 without Redis", None,
             pg_sets + ["postgres.password=x", "replicaCount=3", "cluster.requireRedis=true"],
             "replicaCount 3 needs redis.enabled (cluster.requireRedis)"),
            ("replicaCount 2 without PostgreSQL or Redis (PostgreSQL named first)", None,
             ["replicaCount=2"], "replicaCount 2 needs postgres.enabled"),
            ("cluster.requireRedis=false, replicaCount 2 still without PostgreSQL", None,
             ["replicaCount=2", "cluster.requireRedis=false"],
             "replicaCount 2 needs postgres.enabled"),
            ("cluster.requireRedis=false, the HPA still without PostgreSQL", None,
             ["autoscaling.enabled=true", "cluster.requireRedis=false"],
             "autoscaling.enabled needs postgres.enabled")):
        needles = (needle,) if isinstance(needle, str) else needle
        p = chart.template(values=values, sets=sets)
        c.check(f"refused: {what}, without echoing the value"
                + (f"; the message says {list(needles[1:])}" if len(needles) > 1 else ""),
                p.returncode != 0 and all(n in p.stderr for n in needles)
                and canary not in p.stderr, (p.returncode, p.stderr.strip()[-600:]))

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed or not c.passed else 0


if __name__ == "__main__":
    sys.exit(main())
