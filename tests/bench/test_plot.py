#!/usr/bin/python3
"""tests/bench/plot and tests/bench/benchdata.py as tables of input -> expected (issue 21).

  test_plot.py svg    the committed docs/img/*.svg parse as SVG, and the checker (plot --check)
                      refuses what is not one; standard library only
  test_plot.py plot   data directories in -> exit code, output lines and SVGs out, through gnuplot;
                      exit 77 (ctest: skipped) without gnuplot

Every case runs in a throw-away directory; nothing in the source tree is written.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PLOT = os.path.join(HERE, "plot")
sys.path.insert(0, HERE)
import benchdata  # noqa: E402

SKIP = 77
SVG_OK = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"></svg>\n'

# (name, file text, valid?, substring expected in the checker's line)
SVG_CASES = [
    ("a minimal SVG", SVG_OK, True, "valid SVG"),
    ("cut short", SVG_OK[:60], False, "INVALID"),
    ("an unescaped & in a text", SVG_OK.replace("></svg>", "><text>a & b</text></svg>"), False,
     "INVALID"),
    ("HTML, not SVG", "<html><body/></html>\n", False, "not an SVG <svg>"),
    ("SVG without its namespace", '<svg viewBox="0 0 1 1"></svg>\n', False, "not an SVG <svg>"),
    ("empty", "", False, "INVALID"),
    ("a script", SVG_OK.replace("></svg>", "><script>alert(1)</script></svg>"), False,
     "has a <script>"),
    ("a link out", SVG_OK.replace(
        "></svg>", ' xmlns:xlink="http://www.w3.org/1999/xlink"><use xlink:href="http://x/y#a"/>'
        "</svg>"), False, "links to http://x/y#a"),
    ("a link inside the file", SVG_OK.replace(
        "></svg>", ' xmlns:xlink="http://www.w3.org/1999/xlink"><g id="a"/><use xlink:href="#a"/>'
        "</svg>"), True, "valid SVG"),
    ("over the size limit", SVG_OK.replace("></svg>", ">" + " " * (1 << 20) + "</svg>"), False,
     "larger than"),
]

STEP1 = """\
# step 1: cached GetStatus vs Health/Check latency, ms (h2load, median round)
# measured: 2026-12-07 11:40 UTC, RelWithDebInfo build, 2 CPUs, load average 3.10
# note: h2load, 16 connections x 16 streams
# columns: percentile health_ms getstatus_ms
"p50" 10.28 10.71
"p90" 17.63 15.86
"p99" 28.32 23.58
"p99.9" 32.26 24.03
"""
STEP9 = """\
# step 9: UploadVideo throughput vs a direct PUT, MiB/s
# measured: 2026-12-07 11:40 UTC, RelWithDebInfo build, 2 CPUs, load average 3.10
# columns: what mib_per_s
"direct PUT (curl)" 800
"UploadVideo (a3d)" 744
"""
STEP10 = """\
# step 10: upstream GET /status per second vs polling clients
# measured: 2026-12-07 11:40 UTC, RelWithDebInfo build, 2 CPUs, load average 3.10
# note: each client polls one job every 500 ms
# columns: clients direct_per_s gateway_per_s direct_calls_per_s gateway_calls_per_s
1 2 0.5 2 2
10 21 1 20 20
200 396.7 4 399.2 399.8
"""
GOOD = {"step1.dat": STEP1, "step9.dat": STEP9, "step10.dat": STEP10}
ALL_SVGS = {"bench-latency.svg", "bench-upload.svg", "bench-polling.svg"}

# (name, data files, exit code, substrings of the output, SVGs expected with a text in each)
PLOT_CASES = [
    ("all three figures", GOOD, 0, ["bench-polling.svg: written", "bench-latency.svg: written",
                                    "bench-upload.svg: written"],
     {"bench-polling.svg": "GetStatus on the gateway", "bench-latency.svg": "p99.9",
      "bench-upload.svg": "744 MiB/s (0.93x)"}),
    ("no step 9 yet: its figure is skipped", {k: v for k, v in GOOD.items() if k != "step9.dat"},
     0, ["bench-upload.svg: skip", "step9.dat not found"],
     {"bench-polling.svg": "397", "bench-latency.svg": "Health/Check"}),
    ("no data at all", {}, 0, ["bench-polling.svg: skip", "bench-latency.svg: skip",
                               "bench-upload.svg: skip"], {}),
    ("a row with too few fields names its line",
     {"step10.dat": STEP10.replace("10 21 1 20 20", "10 21")}, 1,
     ["bench-polling.svg: FAILED", "step10.dat:6: 2 fields for 5 columns"], {}),
    ("a text where a number belongs", {"step1.dat": STEP1.replace("10.28", '"10.28"')}, 1,
     ["step1.dat:5: column health_ms must be a number"], {}),
    ("a column missing", {"step1.dat": STEP1.replace("getstatus_ms", "gs_ms")}, 1,
     ["step1.dat:1: no column getstatus_ms"], {}),
    ("an unquoted word", {"step9.dat": STEP9.replace('"direct PUT (curl)"', "direct")}, 1,
     ["step9.dat:4: 'direct' is neither a number nor a quoted text"], {}),
    ("upload needs the reference and one more", {"step9.dat": STEP9.rsplit('"Upload', 1)[0]}, 1,
     ["step9.dat: needs a reference row and at least one more"], {}),
    ("no columns line", {"step10.dat": STEP10.replace("# columns:", "# cols:")}, 1,
     ["step10.dat:5: a row before the '# columns:' line"], {}),
    ("one bad file does not stop the others",
     dict(GOOD, **{"step1.dat": STEP1.replace("p50", 'p"50')}), 1,
     ["bench-latency.svg: FAILED", "bench-polling.svg: written", "bench-upload.svg: written"],
     {"bench-polling.svg": "polling clients", "bench-upload.svg": "direct PUT (curl)"}),
    ("quotes and backslashes in a label reach the SVG as text",
     {"step9.dat": STEP9.replace("(curl)", "(curl \\\\ 'q' <&>)")}, 0, ["bench-upload.svg: written"],
     {"bench-upload.svg": "(curl \\\\ 'q' <&>)"}),
]

# (name, rows, columns, rows read back)
DAT_CASES = [
    ("numbers and texts", [("p50", 1.5, 2.0), ("p99.9", 10.25, 12.0)], ("p", "a", "b"),
     [["p50", 1.5, 2.0], ["p99.9", 10.25, 12.0]]),
    ("six significant digits", [(1, 396.71349)], ("n", "v"), [[1.0, 396.713]]),
    ("a label with spaces", [("direct PUT (curl)", 800)], ("what", "mib_per_s"),
     [["direct PUT (curl)", 800.0]]),
]


def svg_text(path):
    """All text of an SVG, as a reader would see it (entities resolved)."""
    return " ".join("".join(e.itertext()) for e in ET.parse(path).getroot().iter()
                    if e.tag.endswith("}text"))


def run(args, **kw):
    r = subprocess.run(["/usr/bin/python3", PLOT] + args, capture_output=True, text=True,
                       timeout=120, **kw)
    return r.returncode, r.stdout + r.stderr


def test_svg():
    failures = 0
    committed = sorted(glob.glob(os.path.join(REPO, "docs", "img", "*.svg")))
    if not committed:
        print("FAIL committed SVGs: none in docs/img")
        failures += 1
    else:
        rc, out = run(["--check"] + committed)
        ok = rc == 0 and out.count("valid SVG") == len(committed)
        print("%s committed SVGs (%d): %s" % ("ok  " if ok else "FAIL", len(committed),
                                             out.strip().replace("\n", "; ")))
        failures += not ok
    with tempfile.TemporaryDirectory(prefix="a3d-plot-") as d:
        for name, text, valid, want in SVG_CASES:
            p = os.path.join(d, "x.svg")
            with open(p, "w") as f:
                f.write(text)
            rc, out = run(["--check", p])
            ok = (rc == 0) == valid and want in out
            print("%s %s: rc %d, %s" % ("ok  " if ok else "FAIL", name, rc, out.strip()[:200]))
            failures += not ok
    for name, rows, cols, back in DAT_CASES:
        with tempfile.TemporaryDirectory(prefix="a3d-plot-") as d:
            got = benchdata.read(benchdata.write(7, "t", cols, rows, directory=d))
            ok = got["rows"] == back and got["columns"] == list(cols) and got["title"] == "t"
            print("%s benchdata %s: %r" % ("ok  " if ok else "FAIL", name, got["rows"]))
            failures += not ok
    try:
        benchdata.write(7, "t", ("a",), [('say "x"',)], directory=tempfile.gettempdir())
        print("FAIL benchdata refuses a quote in a text: written")
        failures += 1
    except ValueError:
        print("ok   benchdata refuses a quote in a text")
    return failures


def test_plot():
    if not shutil.which("gnuplot"):
        print("skip: gnuplot not found (apt-get install gnuplot-nox)")
        return None
    failures = 0
    for name, files, want_rc, want_out, want_svgs in PLOT_CASES:
        with tempfile.TemporaryDirectory(prefix="a3d-plot-") as d:
            data, out_dir = os.path.join(d, "data"), os.path.join(d, "img")
            os.makedirs(data)
            os.makedirs(out_dir)
            for k, v in files.items():
                with open(os.path.join(data, k), "w") as f:
                    f.write(v)
            # A figure that fails leaves the SVG that was there.
            old = os.path.join(out_dir, "bench-latency.svg")
            with open(old, "w") as f:
                f.write(SVG_OK)
            rc, out = run(["--data", data, "--out", out_dir])
            why = []
            if rc != want_rc:
                why.append("exit %d, want %d" % (rc, want_rc))
            why += ["no %r in the output" % w for w in want_out if w not in out]
            for svg in ALL_SVGS:
                p = os.path.join(out_dir, svg)
                if svg in want_svgs:
                    text = svg_text(p) if os.path.exists(p) else ""
                    if want_svgs[svg] not in text:
                        why.append("%s lacks %r" % (svg, want_svgs[svg]))
                elif svg == "bench-latency.svg":
                    if open(p).read() != SVG_OK:
                        why.append("the old bench-latency.svg was replaced")
                elif os.path.exists(p):
                    why.append("%s written" % svg)
            leftover = [f for f in os.listdir(out_dir) if f.endswith(".tmp")]
            if leftover:
                why.append("temporary files left: %s" % leftover)
            print("%s %s%s" % ("FAIL" if why else "ok  ", name, (": " + "; ".join(why)
                                                                   + "\n" + out) if why else ""))
            failures += bool(why)
    return failures


def main(argv):
    which = argv[0] if argv else ""
    if which == "svg":
        failures = test_svg()
    elif which == "plot":
        failures = test_plot()
        if failures is None:
            return SKIP
    else:
        print("usage: test_plot.py svg|plot", file=sys.stderr)
        return 2
    print("%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
