"""The figures of tests/bench as data files, for tests/bench/plot (issue 21).

A step that has something to draw writes $BENCH_OUT/stepN.dat (default: <build>/bench/), a text
file gnuplot could read as it is:

    # step 1: cached GetStatus vs Health/Check latency, ms (h2load, median round)
    # measured: 2026-12-07 11:40 UTC, RelWithDebInfo build, 2 CPUs, load average 3.10
    # note: 16 connections x 16 streams, 2 s per run, gateway on CPU 0, h2load on CPU 1
    # columns: percentile health_ms getstatus_ms
    "p50" 1.21 1.3
    "p99.9" 3.5 3.9

The four header lines come first, in that order ("note:" may be left out); then one row per line,
fields separated by one space, a text field in double quotes (no quote or newline inside), numbers
as Python's %.6g. Which columns a figure needs is tests/bench/plot's FIGURES table. The file is
written whole (a temporary file renamed over it), so a step that fails half-way leaves the
previous run's file, with its own date, or none.
"""
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DAT_MAX_BYTES = 1 << 20         # a data file holds a few rows; anything bigger is not ours


def out_dir():
    """$BENCH_OUT, else <$A3D_BUILD_DIR or build>/bench."""
    d = os.environ.get("BENCH_OUT")
    if d:
        return os.path.abspath(d)
    return os.path.join(os.path.abspath(os.environ.get("A3D_BUILD_DIR")
                                        or os.path.join(REPO, "build")), "bench")


def _build_type(build):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip() or "default"
    except OSError:
        pass
    return "unknown"


def measured_line():
    """When and on what: UTC minute, build type, CPUs, 1-minute load average at the end."""
    build = os.path.abspath(os.environ.get("A3D_BUILD_DIR") or os.path.join(REPO, "build"))
    return "%s, %s build, %d CPUs, load average %.2f" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), _build_type(build), os.cpu_count() or 0,
        os.getloadavg()[0])


def _field(v):
    if isinstance(v, str):
        if '"' in v or "\n" in v:
            raise ValueError("text field with a quote or newline: %r" % v)
        return '"%s"' % v
    return "%.6g" % v


def write(step, title, columns, rows, note=None, directory=None):
    """Writes <directory or out_dir()>/step<step>.dat. columns: names (no spaces); rows: tuples of
    str and numbers, as many as columns. -> the path."""
    d = directory or out_dir()
    os.makedirs(d, exist_ok=True)
    lines = ["# step %s: %s" % (step, title), "# measured: " + measured_line()]
    if note:
        lines.append("# note: " + note)
    lines.append("# columns: " + " ".join(columns))
    for r in rows:
        if len(r) != len(columns):
            raise ValueError("step %s: row %r has %d fields for %d columns"
                             % (step, r, len(r), len(columns)))
        lines.append(" ".join(_field(v) for v in r))
    path = os.path.join(d, "step%s.dat" % step)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


class DatError(ValueError):
    """A data file that does not follow the format; str() is 'file:line: what is wrong'."""


def _split(path, lineno, text):
    out, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            j = text.find('"', i + 1)
            if j < 0:
                raise DatError("%s:%d: unterminated quoted field" % (path, lineno))
            out.append(text[i + 1:j])
            i = j + 1
        else:
            j = text.find(" ", i)
            j = len(text) if j < 0 else j
            try:
                out.append(float(text[i:j]))
            except ValueError:
                raise DatError("%s:%d: %r is neither a number nor a quoted text"
                               % (path, lineno, text[i:j])) from None
            i = j
    return out


def read(path):
    """-> dict(title, measured, note (or ""), columns, rows, lines: each row's line number);
    raises DatError. A field is a str (quoted) or a float."""
    if os.path.getsize(path) > DAT_MAX_BYTES:
        raise DatError("%s:1: larger than %d bytes" % (path, DAT_MAX_BYTES))
    with open(path) as f:
        lines = f.read().splitlines()
    d = {"title": None, "measured": None, "note": "", "columns": None, "rows": [], "lines": []}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, val = line[1:].strip().partition(": ")
            if key.startswith("step ") and sep and d["title"] is None:
                d["title"] = val
            elif key in ("measured", "note") and sep:
                d[key] = val
            elif key == "columns" and sep:
                d["columns"] = val.split()
            continue
        if d["columns"] is None:
            raise DatError("%s:%d: a row before the '# columns:' line" % (path, n))
        row = _split(path, n, line)
        if len(row) != len(d["columns"]):
            raise DatError("%s:%d: %d fields for %d columns (%s)"
                           % (path, n, len(row), len(d["columns"]), " ".join(d["columns"])))
        d["rows"].append(row)
        d["lines"].append(n)
    if d["title"] is None or d["columns"] is None:
        raise DatError("%s:1: no '# step N: title' or '# columns:' line" % path)
    return d
