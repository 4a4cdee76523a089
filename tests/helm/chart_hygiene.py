"""Chart hygiene (issue 20): values.schema.json, the public routes (Ingress, Gateway API), the
`helm test` pod, topology spread, the extra pod hooks and Chart.yaml's metadata.

Called by check_chart.py with its Checker and Chart; the `helm test` pod's script also runs here
against the real gateway that chart_monitoring.LiveGateway started.
"""

import json
import os
import re
import subprocess

SCHEMA_ERROR = "values don't meet the specifications of the schema"
# Objects of values.yaml passed through as written (the gateway's own config, labels, annotations,
# Kubernetes objects): the schema leaves them open; every other object is closed.
OPEN = {"config", "service.annotations", "ingress.annotations", "route.grpc.annotations",
        "route.http.annotations", "secrets.accounts", "postgres.params", "nodeSelector",
        "affinity", "podSecurityContext", "securityContext", "serviceAccount.annotations",
        "podAnnotations", "podLabels", "autoscaling.behavior", "serviceMonitor.labels",
        "dashboard.labels", "dashboard.annotations", "prometheusRule.labels",
        "prometheusRule.alertLabels", "global",
        # Resource lists: cpu and memory are named, extended resources (nvidia.com/gpu, ...) pass.
        "resources.requests", "resources.limits", "initResources.requests",
        "initResources.limits", "tests.resources.requests", "tests.resources.limits"}
PRIVATE_PATHS = ("/metrics", "/healthz", "/readyz")
TEST_POD_TIMEOUT_S = 30


def prefix_matches(prefix, path):
    """Kubernetes Ingress `Prefix` / Gateway API `PathPrefix` matching: element-wise on '/'."""
    p = [x for x in prefix.split("/") if x]
    q = [x for x in path.split("/") if x]
    return q[:len(p)] == p


def schema_node(schema, path):
    """The schema node of a dotted values path, or None when the schema does not name it."""
    node = schema
    for part in path.split("."):
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif node.get("additionalProperties") is True or (
                node.get("type") == "object" and "properties" not in node
                and "additionalProperties" not in node):
            return {}           # inside an open map: anything goes
        else:
            return None
    return node


def values_paths(values, prefix=""):
    """Every dotted key path of values.yaml (lists are leaves)."""
    for k, v in values.items():
        path = f"{prefix}{k}"
        yield path
        if isinstance(v, dict) and path not in OPEN:
            yield from values_paths(v, path + ".")


def closed_objects(schema, path=""):
    """Dotted paths of schema objects that accept unknown keys although not listed in OPEN."""
    bad = []
    for k, node in schema.get("properties", {}).items():
        p = f"{path}{k}"
        if node.get("type") == "object" and p not in OPEN:
            if node.get("additionalProperties") is not False and not isinstance(
                    node.get("additionalProperties"), dict):
                bad.append(p)
            bad.extend(closed_objects(node, p + "."))
    return bad


def check_schema(c, chart, values):
    path = os.path.join(chart.chart, "values.schema.json")
    schema = {}
    if c.check("values.schema.json: present", os.path.isfile(path)):
        with open(path) as f:
            schema = json.load(f)
    c.check("values.schema.json: draft-07, closed at the top level",
            "draft-07" in schema.get("$schema", "") and schema.get("additionalProperties") is False)
    uncovered = [p for p in values_paths(values) if schema_node(schema, p) is None]
    c.check("values.schema.json: covers every value of values.yaml", schema and not uncovered,
            uncovered)
    open_ = closed_objects(schema)
    c.check("values.schema.json: every object is closed (additionalProperties false) except the "
            "free-form maps passed through", schema and not open_, open_)
    # A typo anywhere, a wrong type or a value outside its enum fails template and lint alike.
    for what, sets, needle in (
            ("a misspelt top-level value", ["replicaCont=3"], "replicaCont"),
            ("a misspelt nested value", ["serviceMonitor.intervl=30s"], "intervl"),
            ("a misspelt value two levels down", ["probes.liveness.periodSecond=5"],
             "periodSecond"),
            ("a misspelt value of the new sections", ["ingress.hostz[0]=a.example.com"], "hostz"),
            ("a misspelt threshold", ["prometheusRule.thresholds.webhookBacklg=5"],
             "webhookBacklg"),
            ("a string for a port", ["ports.grpc=grpc"], "ports.grpc"),
            ("a pull policy outside its enum", ["image.pullPolicy=Sometimes"], "pullPolicy"),
            ("a hard topology spread misspelt", ["topologySpreadConstraints[0].maxSkew=1",
                                                 "topologySpreadConstraints[0].topologyKey=x",
                                                 "topologySpreadConstraints[0].whenUnsatisfiable="
                                                 "ScheduleAnyhow"], "whenUnsatisfiable")):
        p = chart.template(sets=sets)
        c.check(f"schema refuses {what} ({sets[-1]}) in helm template",
                p.returncode != 0 and SCHEMA_ERROR in p.stderr and needle in p.stderr,
                (p.returncode, p.stderr.strip()[-400:]))
    typo = chart.values_file({"serviceMonitor": {"enabled": True, "intervl": "30s"}})
    p = chart.lint(typo)
    c.check("schema refuses a misspelt value in helm lint --strict (values file)",
            p.returncode != 0 and "intervl" in p.stdout + p.stderr,
            (p.returncode, (p.stdout + p.stderr).strip()[-400:]))
    ok = chart.template(sets=["config.some_future_key=1", "podAnnotations.a=b",
                              "postgres.params.keepalives_idle=30"])
    c.check("schema leaves the free-form maps open (config, annotations, postgres.params)",
            ok.returncode == 0, ok.stderr.strip()[-400:])


def check_routes(c, chart):
    base = chart.render()
    c.check("Ingress, GRPCRoute and HTTPRoute are off by default",
            not any(base.has(k) for k in ("Ingress", "GRPCRoute", "HTTPRoute")), base.kinds())
    svc = base.one("Service")
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    on = ["ingress.enabled=true", "route.grpc.enabled=true", "route.http.enabled=true",
          "route.grpc.parentRefs[0].name=internal", "route.http.parentRefs[0].name=public",
          "ingress.className=nginx"]
    for label, extra, want in (("default path prefix", [], "/webhooks/animate3d"),
                               ("config.webhooks.path_prefix /hooks/a3d/",
                                ["config.webhooks.path_prefix=/hooks/a3d/"], "/hooks/a3d")):
        r = chart.render(sets=on + extra + ["ingress.hosts[0]=a3d.example.com"])
        ing = r.one("Ingress")
        paths = [(rule.get("host"), p) for rule in ing["spec"]["rules"]
                 for p in rule["http"]["paths"]]
        c.check(f"Ingress ({label}): one rule, the webhook prefix {want} (Prefix) to the Service's "
                "http port, for the host given",
                [(h, p["path"], p["pathType"], p["backend"]["service"]) for h, p in paths]
                == [("a3d.example.com", want, "Prefix",
                     {"name": svc["metadata"]["name"], "port": {"name": "http"}})]
                and ing["spec"].get("ingressClassName") == "nginx", ing["spec"])
        hr = r.one("HTTPRoute")
        matches = [m for rule in hr["spec"]["rules"] for m in rule["matches"]]
        backends = [b for rule in hr["spec"]["rules"] for b in rule["backendRefs"]]
        c.check(f"HTTPRoute ({label}): PathPrefix {want} to the Service's http port, attached to "
                "the Gateway given",
                matches == [{"path": {"type": "PathPrefix", "value": want}}]
                and backends == [{"name": svc["metadata"]["name"], "port": ports["http"]}]
                and hr["spec"]["parentRefs"] == [{"name": "public"}], hr["spec"])
        routed = [p["path"] for _, p in paths] + [m["path"]["value"] for m in matches]
        leaks = [(pre, path) for pre in routed for path in PRIVATE_PATHS
                 if prefix_matches(pre, path)]
        c.check(f"Ingress and HTTPRoute ({label}): neither routes /metrics, /healthz or /readyz, "
                "both route a delivery path",
                not leaks and all(prefix_matches(pre, want + "/main") for pre in routed), leaks)
        gr = r.one("GRPCRoute")
        c.check(f"GRPCRoute ({label}): every gRPC service to the Service's grpc port",
                gr["apiVersion"] == "gateway.networking.k8s.io/v1"
                and [b for rule in gr["spec"]["rules"] for b in rule["backendRefs"]]
                == [{"name": svc["metadata"]["name"], "port": ports["grpc"]}]
                and not any(rule.get("matches") for rule in gr["spec"]["rules"]), gr["spec"])
    for what, sets, needle in (
            ("path_prefix / (would route /metrics)", ["config.webhooks.path_prefix=/"],
             "/metrics, /healthz and /readyz must stay private"),
            ("path_prefix /metrics/", ["config.webhooks.path_prefix=/metrics/"],
             "/metrics, /healthz and /readyz must stay private"),
            ("path_prefix /readyz/x/", ["config.webhooks.path_prefix=/readyz/x/"],
             "must stay private")):
        for kind, sw in (("ingress", ["ingress.enabled=true"]),
                         ("route.http", ["route.http.enabled=true",
                                         "route.http.parentRefs[0].name=gw"])):
            p = chart.template(sets=sw + sets)
            c.check(f"refused with {kind}: {what}", p.returncode != 0 and needle in p.stderr,
                    p.stderr.strip()[-300:])
    for kind in ("grpc", "http"):
        p = chart.template(sets=[f"route.{kind}.enabled=true"])
        c.check(f"refused: route.{kind} without parentRefs",
                p.returncode != 0 and f"route.{kind}.enabled needs route.{kind}.parentRefs"
                in p.stderr, p.stderr.strip()[-300:])


def test_pod(r):
    return next((o for o in r.objs if o["kind"] == "Pod"
                 and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"), None)


def run_test_pod(pod, host, http_port, grpc_port):
    """Runs the test pod's command here, its Service address replaced by the given one."""
    ctr = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in ctr.get("env", [])}
    env.update(A3D_TEST_HOST=host, A3D_TEST_HTTP_PORT=str(http_port),
               A3D_TEST_GRPC_PORT=str(grpc_port))
    return subprocess.run(ctr["command"], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=TEST_POD_TIMEOUT_S)


def check_test_pod(c, chart, live):
    r = chart.render()
    pod = test_pod(r)
    c.check("helm test: a Pod with the helm.sh/hook: test annotation is rendered by default",
            pod is not None, r.kinds())
    if pod is None:
        return
    svc = r.one("Service")
    sel = svc["spec"]["selector"]
    labels = pod["metadata"].get("labels", {})
    c.check("helm test: the pod is not selected by the Service or the PDB (not the gateway's "
            "selector labels)", not sel.items() <= labels.items(), labels)
    ctr = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in ctr.get("env", [])}
    c.check("helm test: it asks the Service (http and grpc ports) by its cluster DNS name",
            env.get("A3D_TEST_HOST") == f"{svc['metadata']['name']}.a3d.svc"
            and env.get("A3D_TEST_HTTP_PORT") == str(next(
                p["port"] for p in svc["spec"]["ports"] if p["name"] == "http"))
            and env.get("A3D_TEST_GRPC_PORT") == str(next(
                p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"))
            and env.get("A3D_TEST_GRPC_TLS") == "0", env)
    gw_sc = r.container()["securityContext"]
    c.check("helm test: restartPolicy Never, no service account token, the gateway's security "
            "contexts, resources set",
            pod["spec"].get("restartPolicy") == "Never"
            and pod["spec"].get("automountServiceAccountToken") is False
            and pod["spec"].get("securityContext") == r.pod["spec"].get("securityContext")
            and ctr.get("securityContext") == gw_sc
            and all(ctr.get("resources", {}).get(k, {}).get(x) for k in ("requests", "limits")
                    for x in ("cpu", "memory")), pod["spec"])
    # The pod's own script, against the real gateway: ready and speaking HTTP/2 passes; a port
    # answering 404 for /readyz, a gRPC port that is not HTTP/2 and a closed port fail.
    gw, sim_port = live.gw, int(live.sim.url.rsplit(":", 1)[1])
    for what, hp, gp, ok in (("the ready gateway", gw.http_port, gw.grpc_port, True),
                             ("/readyz answering 404 (the simulator)", sim_port, gw.grpc_port,
                              False),
                             ("a gRPC port that speaks HTTP/1.1", gw.http_port, gw.http_port,
                              False),
                             ("a closed HTTP port", live.h.free_port(), gw.grpc_port, False)):
        p = run_test_pod(pod, "127.0.0.1", hp, gp)
        c.check(f"helm test pod's script against {what}: {'passes' if ok else 'fails'}",
                (p.returncode == 0) is ok, (p.returncode, p.stdout.strip(), p.stderr.strip()))
    tls = test_pod(chart.render(sets=["tls.enabled=true", "tls.secretName=t"]))
    c.check("helm test: with tls.enabled the gRPC check is a TCP connect (the pod speaks no TLS)",
            {e["name"]: e["value"] for e in tls["spec"]["containers"][0]["env"]}
            .get("A3D_TEST_GRPC_TLS") == "1")
    off = chart.render(sets=["tests.enabled=false"])
    c.check("helm test: tests.enabled=false renders no test pod", test_pod(off) is None)
    np_ = chart.render(sets=["networkPolicy.enabled=true",
                             "networkPolicy.ingressFrom[0].podSelector.matchLabels.a=b"])
    rules = np_.one("NetworkPolicy")["spec"]["ingress"]
    c.check("helm test: a NetworkPolicy with ingressFrom admits the test pod to grpc and http",
            any(any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items()
                    and peer.get("podSelector", {}).get("matchLabels")
                    for peer in rule.get("from", []))
                and {p["port"] for p in rule["ports"]} == {"grpc", "http"} for rule in rules),
            rules)


def check_spread_and_hooks(c, chart):
    r = chart.render()
    tsc = r.pod["spec"].get("topologySpreadConstraints", [])
    sel = r.one("Deployment")["spec"]["selector"]["matchLabels"]
    c.check("topology spread by default: zone and node, soft (ScheduleAnyway), over the "
            "release's pods",
            [(t["topologyKey"], t["whenUnsatisfiable"], t["maxSkew"]) for t in tsc]
            == [("topology.kubernetes.io/zone", "ScheduleAnyway", 1),
                ("kubernetes.io/hostname", "ScheduleAnyway", 1)]
            and all(t["labelSelector"] == {"matchLabels": sel} for t in tsc), tsc)
    own = chart.render(values=chart.values_file({"topologySpreadConstraints": [
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"x": "y"}}}]}))
    c.check("topology spread: an entry's own labelSelector is kept",
            own.pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]
            == {"matchLabels": {"x": "y"}})
    none = chart.render(values=chart.values_file({"topologySpreadConstraints": []}))
    c.check("topology spread: [] turns it off",
            "topologySpreadConstraints" not in none.pod["spec"])
    side = {"name": "tunnel", "image": "ghostunnel:1", "args": ["client"]}
    init = {"name": "warm", "image": "busybox:1", "command": ["true"]}
    vol = {"name": "ca-bundle", "configMap": {"name": "ca"}}
    mnt = {"name": "ca-bundle", "mountPath": "/etc/ssl/extra", "readOnly": True}
    env = {"name": "SSL_CERT_DIR", "value": "/etc/ssl/extra"}
    h = chart.render(values=chart.values_file({
        "sidecars": [side], "extraInitContainers": [init], "extraVolumes": [vol],
        "gateway": {"extraVolumeMounts": [mnt], "extraEnv": [env]}}))
    spec = h.pod["spec"]
    c.check("hooks: sidecars after the gateway, extra init containers after the chart's own",
            [x["name"] for x in spec["containers"]] == ["gateway", "tunnel"]
            and spec["containers"][1] == side
            and [x["name"] for x in spec["initContainers"]] == ["copy-secrets", "check-config",
                                                                 "warm"],
            ([x["name"] for x in spec["containers"]], [x["name"] for x in spec["initContainers"]]))
    c.check("hooks: extraVolumes in the pod, gateway.extraVolumeMounts and extraEnv in the "
            "gateway container",
            vol in spec["volumes"] and mnt in h.container()["volumeMounts"]
            and env in h.container()["env"], (spec["volumes"], h.container()))


def check_chart_yaml(c, chart):
    with open(os.path.join(chart.chart, "Chart.yaml")) as f:
        text = f.read()
    have = {k: bool(re.search(rf"^{k}:", text, re.M)) for k in
            ("home", "sources", "maintainers", "keywords", "kubeVersion", "appVersion")}
    c.check("Chart.yaml: home, sources, maintainers, keywords, kubeVersion, appVersion",
            all(have.values()), have)
    m = re.search(r"^version: (\d+)\.(\d+)\.(\d+)", text, re.M)
    with open(os.path.join(chart.chart, "README.md")) as f:
        readme = f.read()
    c.check("Chart.yaml: version 0.4.0 (issue 20's minor bump), with a note in the README",
            m and m.groups() == ("0", "4", "0") and "0.4.0" in readme, m and m.group(0))
