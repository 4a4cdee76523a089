"""The chart's Grafana dashboard and alert rules, checked against a running gateway.

Both are rendered (dashboard.enabled, prometheusRule.enabled), the dashboard JSON is parsed, every
PromQL expression (dashboard targets and variables, alert exprs) is parsed with the Prometheus
project's own grammar (@prometheus-io/lezer-promql, tests/helm/promql_names.cjs), and every metric
name those expressions select must be a family the gateway really exports: the real
animate3d-gateway and animate3d-sim of this build are started (tests/integration/harness.py), a
few calls are driven so that the series exist, and /metrics is scraped. Histogram families also
answer to their _bucket, _sum and _count series.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PREFIX = "animate3d_gateway_"
NODE_TIMEOUT_S = 30
JOB_WAIT_S = 20.0          # bound of the wait for the driven job's final state

# Series Prometheus writes itself for every scrape target; the only names allowed that the gateway
# does not export.
PROMETHEUS_OWN = {"up"}
# Grafana's interval variables, replaced by a duration before parsing; any other $variable may
# appear only inside a label matcher's string, where it is text to the parser.
GRAFANA_INTERVALS = (("${__rate_interval}", "5m"), ("$__rate_interval", "5m"),
                     ("${__interval}", "1m"), ("$__interval", "1m"), ("$__range", "1h"))
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# What the issue asks the dashboard to show, each by a metric it must query.
DASHBOARD_TOPICS = (
    ("calls by method", PREFIX + "rpc_total"),
    ("call latency", PREFIX + "rpc_duration_seconds_bucket"),
    ("rate-limited calls per tenant", PREFIX + "ratelimited_total"),
    ("jobs per tenant", PREFIX + "job_outcomes_total"),
    ("upstream status by route", PREFIX + "upstream_requests_total"),
    ("upstream latency by route", PREFIX + "upstream_duration_seconds_bucket"),
    ("breaker state", PREFIX + "breaker_state"),
    ("cache hit ratio", PREFIX + "cache_hits_total"),
    ("upstream calls saved (batching)", PREFIX + "status_fetches_total"),
    ("session logins", PREFIX + "session_logins_total"),
    ("credits", PREFIX + "upstream_credit_balance"),
    ("queue depths", PREFIX + "webhook_queue_depth"),
    ("replicas", "up"),
    ("process CPU", "process_cpu_seconds_total"),
    ("process memory", "process_resident_memory_bytes"),
    ("process descriptors", "process_open_fds"),
    ("process start (uptime)", "process_start_time_seconds"),
)
# Families whose per-team panels must group by the tenant label (issue 20).
DASHBOARD_BY_TENANT = (PREFIX + "rpc_total", PREFIX + "rpc_duration_seconds_bucket")
# The alerts the issue asks for.
REQUIRED_ALERTS = ("A3DGatewayUpstreamErrorRatio", "A3DGatewayBreakerOpen",
                   "A3DGatewayLoginFailures", "A3DGatewayCreditsLow", "A3DGatewayBalanceRunsOut",
                   "A3DGatewayTenantRateLimited", "A3DGatewayWebhookBacklog",
                   "A3DGatewayReplicaNotReady", "A3DGatewayTenantErrorRatio")


def grafana_to_promql(expr):
    """A Grafana target or variable query -> the PromQL in it (None: not a PromQL query).
    label_values(selector, label) and query_result(expr) carry PromQL; label_values(label) alone
    and plain lists do not."""
    e = expr.strip()
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_]\w*\s*\)", e, re.S)
    if m:
        e = m.group(1)
    elif re.fullmatch(r"label_values\(\s*[A-Za-z_]\w*\s*\)", e):
        return None
    else:
        m = re.fullmatch(r"query_result\((.*)\)", e, re.S)
        if m:
            e = m.group(1)
    for var, dur in GRAFANA_INTERVALS:
        e = e.replace(var, dur)
    return e


def exported(name, families):
    """Is `name` a series of one of the families ({name: type}) the gateway exports?"""
    if name in PROMETHEUS_OWN or name in families:
        return True
    for suf in HISTOGRAM_SUFFIXES:
        base = name[:-len(suf)]
        if name.endswith(suf) and families.get(base) in ("histogram", "summary") \
                and (suf != "_bucket" or families[base] == "histogram"):
            return True
    return False


def families_of(text):
    """/metrics text (Prometheus format 0.0.4) -> {family name: type} from its # TYPE lines."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) (\w+)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def parse_promql(modules, exprs):
    """[expr] -> [{expr, errors, names, nameless}] from promql_names.cjs."""
    p = subprocess.run(["node", os.path.join(HERE, "promql_names.cjs")], input=json.dumps(exprs),
                       capture_output=True, text=True, timeout=NODE_TIMEOUT_S,
                       env=dict(os.environ, NODE_PATH=modules))
    if p.returncode != 0:
        raise RuntimeError(f"promql_names.cjs failed: {p.stderr.strip()[-800:]}")
    return json.loads(p.stdout)


def dashboard_queries(dash):
    """-> [(where, PromQL)] of every panel target (rows' nested panels too) and every query
    variable of the dashboard."""
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            q = grafana_to_promql(t.get("expr", ""))
            if q:
                out.append((f"panel {p.get('title')!r} target {t.get('refId')}", q))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        q = grafana_to_promql(q)
        if q:
            out.append((f"variable ${v.get('name')}", q))
    return out


class LiveGateway:
    """The real gateway and simulator of this build, driven so that the series exist. Started
    once; stop() ends both. Every wait is bounded (harness.py's start/stop bounds, JOB_WAIT_S)."""

    def __init__(self, work):
        sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
        import harness  # noqa: E402 - needs A3D_BUILD_DIR, set by tests/helm/run
        from harness import account_pb2, jobs_pb2

        self.h = harness
        self.work = tempfile.mkdtemp(prefix="live-", dir=work)
        # No credits: the driven job ends FAILURE with error 101 (not enough credits), the series
        # the credits alert watches.
        self.sim = harness.Sim(self.work, job_seconds=1, extra_args=["--credits", "0"])
        try:
            # The balance poller on (the harness turns it off): its first poll at start fills
            # the balance gauges the credits alerts and the dashboard's credits panel read.
            self.gw = harness.Gateway(self.work, self.sim.url, extra_top="balance:\n  poll_s: 60\n")
        except Exception:
            self.sim.stop()
            raise
        try:
            gw = self.gw
            gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                        metadata=gw.md())
            with open(harness.TINY_MP4, "rb") as f:
                url = harness.upload_put(gw, "chart-live.mp4", f.read())
            rid = harness.start_job(gw, upload_url=url, params=jobs_pb2.Params(formats=["bvh"]))
            self.final = harness.wait_job(gw, rid, timeout=JOB_WAIT_S)
            self.metrics_text = self._scrape_after_outcome()
        except Exception:
            self.stop()
            raise

    def _scrape_after_outcome(self):
        """/metrics once the job outcome is counted (the follower settles it on the loop)."""
        deadline = time.monotonic() + JOB_WAIT_S
        text = ""
        while time.monotonic() < deadline:
            st, _, body = self.h.http("GET", self.gw.http_url + "/metrics")
            text = body.decode()
            if st == 200 and re.search(r'^%sjob_outcomes_total\{[^}]*error="101"' % PREFIX, text,
                                       re.M):
                break
            time.sleep(0.1)
        return text

    def stop(self):
        for part in ("gw", "sim"):
            if hasattr(self, part):
                getattr(self, part).stop()


def check_promql(c, label, queries, modules, families):
    """Every query parses and selects only exported metrics. -> the names selected."""
    parsed = parse_promql(modules, [q for _, q in queries])
    names = set()
    for (where, q), res in zip(queries, parsed):
        names.update(res["names"])
        c.check(f"{label}: {where}: PromQL parses, every selector names its metric",
                not res["errors"] and res["nameless"] == 0 and res["names"],
                (q, res))
        missing = [n for n in res["names"] if not exported(n, families)]
        c.check(f"{label}: {where}: every metric is exported by the gateway "
                f"({', '.join(n.replace(PREFIX, '') for n in res['names'])})",
                not missing, (missing, q))
    return names


def check_helpers(c):
    """The pieces the PromQL check stands on, as tables of input -> expected."""
    for expr, want in (
            ('sum(rate(a_total{job=~"$job"}[$__rate_interval]))',
             'sum(rate(a_total{job=~"$job"}[5m]))'),
            ('label_values(animate3d_gateway_build_info{namespace=~"$namespace"}, job)',
             'animate3d_gateway_build_info{namespace=~"$namespace"}'),
            ("label_values(namespace)", None),
            ("query_result(topk(5, x[${__interval}]))", "topk(5, x[1m])")):
        got = grafana_to_promql(expr)
        c.check(f"grafana_to_promql({expr!r}) -> {want!r}", got == want, got)
    fams = {"a_total": "counter", "h_seconds": "histogram", "s_seconds": "summary"}
    for name, want in (("a_total", True), ("up", True), ("h_seconds_bucket", True),
                       ("h_seconds_sum", True), ("h_seconds_count", True), ("h_seconds", True),
                       ("s_seconds_bucket", False), ("s_seconds_count", True),
                       ("a_total_count", False), ("b_total", False), ("a", False)):
        c.check(f"exported({name!r}) -> {want}", exported(name, fams) is want)
    text = ("# HELP x_total y\n# TYPE x_total counter\nx_total 1\n"
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n")
    c.check("families_of: # TYPE lines -> {name: type}",
            families_of(text) == {"x_total": "counter", "h": "histogram"}, families_of(text))


def check_monitoring(c, chart, modules, families):
    """The dashboard and the PrometheusRule: off by default; rendered, well formed and querying
    only exported metrics when on."""
    base = chart.render()
    c.check("dashboard and PrometheusRule are off by default",
            not base.has("PrometheusRule")
            and not any(o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]
                        for o in base.objs), base.kinds())

    r = chart.render(sets=["dashboard.enabled=true", "prometheusRule.enabled=true",
                           "dashboard.annotations.grafana_folder=Platform",
                           "prometheusRule.labels.release=kube-prometheus"])
    cm = next(o for o in r.objs if o["kind"] == "ConfigMap"
              and o["metadata"]["name"].endswith("-dashboard"))
    c.check("dashboard: ConfigMap labelled grafana_dashboard=\"1\" for the Grafana sidecar, with "
            "its annotations",
            cm["metadata"]["labels"].get("grafana_dashboard") == "1"
            and cm["metadata"].get("annotations", {}).get("grafana_folder") == "Platform",
            cm["metadata"])
    text = cm["data"].get("animate3d-gateway.json", "")
    try:
        dash = json.loads(text)
    except ValueError as e:
        c.check("dashboard: the JSON parses", False, str(e))
        return
    c.check("dashboard: the JSON parses", True)
    panels = dash.get("panels", [])
    ids = [p.get("id") for p in panels]
    graphs = [p for p in panels if p.get("type") != "row"]
    c.check("dashboard: uid and title set, panel ids unique, every panel inside the 24-column grid",
            dash.get("uid") and dash.get("title") and len(ids) == len(set(ids))
            and all(0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
                    for p in panels), [(p.get("id"), p.get("gridPos")) for p in panels])
    c.check("dashboard: every panel queries the ${datasource} variable and has a target",
            all(p.get("datasource", {}).get("uid") == "${datasource}" and p.get("targets")
                and all(t.get("expr") for t in p["targets"]) for p in graphs),
            [p.get("title") for p in graphs if not p.get("targets")])
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    c.check("dashboard: variables datasource (prometheus), namespace, job, tenant, account",
            variables.get("datasource", {}).get("query") == "prometheus"
            and {"namespace", "job", "tenant", "account"} <= variables.keys(), list(variables))
    names = check_promql(c, "dashboard", dashboard_queries(dash), modules, families)
    for topic, metric in DASHBOARD_TOPICS:
        c.check(f"dashboard shows {topic} ({metric})", metric in names)
    queries = [q for _, q in dashboard_queries(dash)]
    for metric in DASHBOARD_BY_TENANT:
        c.check(f"dashboard: a panel shows {metric} by tenant",
                any(metric in q and re.search(r"\bby \([^)]*\btenant\b", q) for q in queries))

    rule = r.one("PrometheusRule")
    rules = [x for g in rule["spec"]["groups"] for x in g["rules"]]
    alerts = {x.get("alert"): x for x in rules}
    c.check("PrometheusRule: monitoring.coreos.com/v1 with the selector label",
            rule["apiVersion"] == "monitoring.coreos.com/v1"
            and rule["metadata"]["labels"].get("release") == "kube-prometheus", rule["metadata"])
    c.check(f"PrometheusRule: the alerts {', '.join(REQUIRED_ALERTS)}",
            set(REQUIRED_ALERTS) <= alerts.keys(), sorted(alerts))
    c.check("PrometheusRule: every rule has an expr, a severity (warning or critical), a summary "
            "and a description",
            all(x.get("expr") and x.get("labels", {}).get("severity") in ("warning", "critical")
                and x.get("annotations", {}).get("summary")
                and x.get("annotations", {}).get("description") for x in rules), rules)
    sel = 'namespace="a3d",job="t-animate3d-gateway"'
    c.check("PrometheusRule: every expr selects this release (namespace and job) by default",
            all(x["expr"].count(sel) >= x["expr"].count("{") for x in rules),
            [x["expr"] for x in rules if sel not in x["expr"]])
    check_promql(c, "PrometheusRule", [(f"alert {x.get('alert')}", x["expr"]) for x in rules],
                 modules, families)

    own = chart.render(sets=["prometheusRule.enabled=true", 'prometheusRule.selector=cluster="eu"',
                             "prometheusRule.thresholds.webhookBacklog=7",
                             "prometheusRule.thresholds.creditsLow=250",
                             "prometheusRule.thresholds.balanceRunsOutDays=3",
                             "prometheusRule.thresholds.balanceTrendWindow=1d",
                             "prometheusRule.alertLabels.team=platform"])
    orules = {x["alert"]: x for g in own.one("PrometheusRule")["spec"]["groups"]
              for x in g["rules"]}
    c.check("PrometheusRule: prometheusRule.selector, thresholds and alertLabels are used",
            all('{cluster="eu"' in x["expr"] and "job=" not in x["expr"] for x in orules.values())
            and orules["A3DGatewayWebhookBacklog"]["expr"].rstrip().endswith("> 7")
            and orules["A3DGatewayCreditsLow"]["expr"].rstrip().endswith("< 250")
            and "[1d], 3 * 86400)" in orules["A3DGatewayBalanceRunsOut"]["expr"]
            and all(x["labels"].get("team") == "platform" for x in orules.values()),
            [x["expr"] for x in orules.values()][:3])
