"""Draws the chart's Grafana dashboard from a real run: docs/dashboard.png (issue 20).

A screenshot of a real Grafana is not possible here, so this runs the dashboard's own queries on a
real Prometheus and plots them. Everything is real and local: animate3d-sim and animate3d-gateway of
this build (tests/integration/harness.py) on 127.0.0.1, a Prometheus (Debian's `prometheus`
package) scraping the gateway's /metrics every 2 s with the labels the ServiceMonitor would give
(namespace, job), and a bounded load of LOAD_S seconds (default 150) by three tenants:
  team-a       uploads and starts a job every 3 s (some fail with error 513), polls them and asks
               for their download links once done, and keeps 5 WatchStatus streams open;
  render-farm  bursts 10 GetStatus calls per second against its 5/s limit (rate-limited);
  viewer       asks the credit balance once a second.
From 40 % to 60 % of the run the simulator fails half of the GET /status requests with 503
(upstream errors, retries); at 75 % it expires every upstream session (logins); its account has
25 credits, so jobs start failing with error 101 part-way. Then every panel's targets are asked
with query_range ($__rate_interval = 10 s) and drawn where the dashboard's grid puts it. The chart's alert rules
(prometheusRule.enabled, rendered with the build tree's helm) are loaded into the same Prometheus,
and the alerts that went pending or firing during the run are printed (most wait longer than the
run before they fire).

Not part of ctest (needs `apt-get install prometheus python3-matplotlib`; about 3 minutes):
  A3D_BUILD_DIR=build /usr/bin/python3 tests/helm/plot_dashboard.py [docs/dashboard.png]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402
import grpc  # noqa: E402
from harness import account_pb2, jobs_pb2  # noqa: E402

DASHBOARD = os.path.join(REPO, "helm", "animate3d-gateway", "dashboards", "animate3d-gateway.json")
LOAD_S = float(os.environ.get("PLOT_LOAD_S", "150"))
SCRAPE_S = 2
RATE_INTERVAL = "10s"
NAMESPACE, JOB = "a3d", "a3d-animate3d-gateway"
FARM_KEY = "plot-render-farm-key"
PROM_START_S = 15.0


def chart_rules(work):
    """The chart's alert rules for release a3d in namespace a3d, as a Prometheus rule file."""
    tools = os.path.join(harness.BUILD, "helm-tools", "bin")
    chart = os.path.join(REPO, "helm", "animate3d-gateway")
    p = subprocess.run([os.path.join(tools, "helm", "helm"), "template", "a3d", chart,
                        "--namespace", NAMESPACE, "--set", "prometheusRule.enabled=true",
                        "--show-only", "templates/prometheusrule.yaml"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("helm template: " + p.stderr)
    path = os.path.join(work, "rule.yaml")
    with open(path, "w") as f:
        f.write(p.stdout)
    p = subprocess.run([os.path.join(tools, "kubectl", "kubectl"), "label", "--local", "-o",
                        "json", "-f", path, "plot=1"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, KUBECONFIG=os.devnull))
    if p.returncode != 0:
        raise RuntimeError("kubectl: " + p.stderr)
    rules = os.path.join(work, "rules.json")      # JSON is YAML to Prometheus
    with open(rules, "w") as f:
        json.dump(json.loads(p.stdout)["spec"], f)
    return rules


def prometheus(work, target):
    """A Prometheus on 127.0.0.1 scraping target, with the chart's rules. -> (process, URL)."""
    port = harness.free_port()
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global: {{ scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s }}
rule_files: ["{chart_rules(work)}"]
scrape_configs:
  - job_name: {JOB}
    static_configs:
      - targets: ["{target}"]
        labels: {{ namespace: {NAMESPACE}, pod: {JOB}-0 }}
""")
    log = open(os.path.join(work, "prometheus.log"), "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                             f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PROM_START_S
    while time.monotonic() < deadline:
        try:
            st, _, _ = harness.http("GET", url + "/-/ready", timeout=1)
            if st == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not start; see " + log.name)


def load(gw, sim, stop_at):
    """The three tenants' traffic until stop_at (monotonic). -> counts of what was done."""
    done = {"jobs": 0, "limited": 0, "errors": 0}
    video = open(harness.TINY_MP4, "rb").read()
    md_farm = gw.md(key=FARM_KEY)
    rids = []

    def team_a():
        i = 0
        while time.monotonic() < stop_at:
            try:
                name = f"plot-{i}.mp4" if i % 4 else f"clip-fail-513-{i}.mp4"
                url = harness.upload_put(gw, name, video)
                rids.append(harness.start_job(gw, upload_url=url,
                                              params=jobs_pb2.Params(formats=["bvh"])))
                done["jobs"] += 1
                recent = rids[-20:]
                st = gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=recent), timeout=5,
                                       metadata=gw.md())
                ok = [s.rid for s in st.statuses if s.state == jobs_pb2.SUCCESS]
                if ok:
                    gw.jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=ok[-5:]),
                                            timeout=5, metadata=gw.md())
            except grpc.RpcError:
                done["errors"] += 1
            i += 1
            time.sleep(3)

    def watcher():
        while time.monotonic() < stop_at:
            if not rids:
                time.sleep(0.5)
                continue
            try:
                left = max(1.0, min(20.0, stop_at - time.monotonic()))
                for _ in gw.jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rids[-1]]),
                                             timeout=left, metadata=gw.md()):
                    pass
            except grpc.RpcError:
                pass
            time.sleep(1)

    def farm():
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            for _ in range(10):
                try:
                    gw.jobs.GetStatus(jobs_pb2.GetStatusRequest(rids=rids[-1:] or ["x" * 22]),
                                      timeout=5, metadata=md_farm)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        done["limited"] += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    def viewer():
        while time.monotonic() < stop_at:
            try:
                gw.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                            metadata=gw.md("viewer"))
            except grpc.RpcError:
                done["errors"] += 1
            time.sleep(1)

    threads = [threading.Thread(target=f, daemon=True)
               for f in [team_a, farm, viewer] + [watcher] * 5]
    for t in threads:
        t.start()
    start = time.monotonic()
    faulted = revoked = False
    while time.monotonic() < stop_at:
        frac = (time.monotonic() - start) / LOAD_S
        if not faulted and frac >= 0.4:
            sim.faults("GET /status/{rids}", status=503, rate=0.5, count=-1)
            faulted = True
        if faulted and frac >= 0.6:
            sim.clear_faults()
            faulted = None
        if not revoked and frac >= 0.75:
            sim.revoke()        # every upstream session expires: the gateway logs in again
            revoked = True
        time.sleep(0.5)
    for t in threads:
        t.join(timeout=30)
    return done


def query_range(url, expr, start, end):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": SCRAPE_S})
    st, _, body = harness.http("GET", f"{url}/api/v1/query_range?{q}", timeout=30)
    if st != 200:
        raise RuntimeError(f"query_range {expr!r} -> {st}: {body[:300]!r}")
    return json.loads(body)["data"]["result"]


def legend(fmt, metric):
    out = fmt or "{{__name__}}"
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out.replace("{{", "").replace("}}", "")


def substitute(expr):
    for var, val in (("$__rate_interval", RATE_INTERVAL), ("$namespace", NAMESPACE),
                     ("$job", JOB), ("$tenant", ".*"), ("$account", ".*")):
        expr = expr.replace(var, val)
    return expr


def draw(dash, url, start, end, out):
    """Every panel where its gridPos puts it on Grafana's 24-column grid (a row is a title)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_in = 0.42                      # inches per grid row
    fig = plt.figure(figsize=(20, rows * unit_in + 1.2))
    fig.suptitle(f"{dash['title']} (namespace={NAMESPACE}, job={JOB}, tenant=All, account=All): "
                 f"{int(end - start)} s of load against animate3d-sim", fontsize=14)
    gs = fig.add_gridspec(rows, 24, hspace=0, wspace=0, left=0.03, right=0.995, bottom=0.003,
                          top=1 - 1.0 / (rows * unit_in + 1.2))
    for p in panels:
        g = p["gridPos"]
        if p["type"] == "row":
            ax = fig.add_subplot(gs[g["y"], :])
            ax.axis("off")
            ax.text(0, 0.1, p["title"], fontsize=13, fontweight="bold")
            continue
        # A margin inside the panel's cells: room for the title and the tick labels.
        sub = gs[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]].subgridspec(
            10, 20, hspace=0, wspace=0)
        ax = fig.add_subplot(sub[2:9, 1:20] if g["w"] >= 6 else sub[2:9, 3:20])
        ax.set_title(p["title"], fontsize=9, loc="left")
        n = 0
        for tg in p["targets"]:
            for series in query_range(url, substitute(tg["expr"]), start, end):
                ts = [float(v[0]) - start for v in series["values"]]
                vs = [float(v[1]) for v in series["values"]]
                ax.plot(ts, vs, linewidth=1,
                        label=legend(tg.get("legendFormat"), series["metric"])[:48])
                n += 1
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, end - start)
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        if unit and unit != "short":
            ax.set_ylabel(unit, fontsize=7)
        if n == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
        elif n <= 8 and g["w"] >= 8:
            ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
        else:
            ax.text(0.99, 0.97, f"{n} series", ha="right", va="top", fontsize=7,
                    transform=ax.transAxes, color="grey")
    fig.savefig(out, dpi=60)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "docs", "dashboard.png")
    with open(DASHBOARD) as f:
        dash = json.load(f)
    work = tempfile.mkdtemp(prefix="a3d-plot-")
    # 25 credits: the account runs out part-way, and jobs fail with error 101 from then on.
    sim = harness.Sim(work, job_seconds=4, extra_args=["--credits", "25"])
    farm = ("  - name: render-farm\n    account: sim\n    rate: { per_second: 5, burst: 10 }\n"
            "    keys:\n      - sha256: %s\n        permissions: [read, write]\n"
            % harness.sha256_hex(FARM_KEY))
    gw = prom = None
    try:
        # The balance poller every 5 s: the credits panel follows the account running out.
        gw = harness.Gateway(work, sim.url, extra_tenants=farm, extra_top="balance:\n  poll_s: 5\n")
        prom, url = prometheus(work, f"127.0.0.1:{gw.http_port}")
        time.sleep(3 * SCRAPE_S)
        start = time.time()
        done = load(gw, sim, time.monotonic() + LOAD_S)
        time.sleep(2 * SCRAPE_S)
        end = time.time()
        print(f"plot: {LOAD_S:.0f} s of load: {done}")
        alerts = set()
        for s in query_range(url, "ALERTS", start, end):
            alerts.add((s["metric"]["alertname"], s["metric"].get("tenant") or
                        s["metric"].get("account") or s["metric"].get("pod") or "",
                        max((v[1] == "1", s["metric"]["alertstate"]) for v in s["values"])[1]))
        print("plot: alerts pending or firing during the run: "
              + (", ".join(f"{a}({w}) {st}" for a, w, st in sorted(alerts)) or "none"))
        draw(dash, url, start, end, out)
        print(f"plot: wrote {out}")
    finally:
        if prom:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
        if gw:
            gw.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
