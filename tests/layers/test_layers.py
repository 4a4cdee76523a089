#!/usr/bin/env python3
"""Proves scripts/layers can fail: small trees in, exit code and message out (a table).

Each case writes a throw-away tree (gateway/README.md with a layer table, a few sources) and runs
the checker on it. Standard library only.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "..", "..", "scripts", "layers")

TABLE = """# layers
<!-- layers:begin -->
| layer | folder | what |
|---|---|---|
| 0 | `gateway/base` | bottom |
| 1 | `gateway/api` | pure |
| 1 | `gateway/state` | store |
| 2 | `gateway/svc` | services |
| 3 | `gateway` | top |
<!-- layers:end -->
"""

# (name, {path: text}, expected exit code, substrings expected in the output)
CASES = [
    ("downward includes are fine",
     {"gateway/base/log.h": "", "gateway/api/tr.c": '#include "gateway/base/log.h"\n',
      "gateway/server.c": '#include "gateway/api/tr.h"\n', "gateway/api/tr.h": ""},
     0, ["layers: clean"]),
    ("an upward include fails with file:line",
     {"gateway/base/log.c": '/* x */\n#include "gateway/svc/status.h"\n',
      "gateway/svc/status.h": ""},
     1, ["gateway/base/log.c:2: includes gateway/svc/status.h", "higher layer"]),
    ("the top included from below fails",
     {"gateway/svc/status.c": '#include "gateway/server.h"\n', "gateway/server.h": ""},
     1, ["gateway/svc/status.c:1: includes gateway/server.h"]),
    ("another folder of the same layer fails",
     {"gateway/api/tr.c": '#include "gateway/state/store.h"\n', "gateway/state/store.h": ""},
     1, ["gateway/api/tr.c:1", "same layer"]),
    ("an allow comment exempts and is counted",
     {"gateway/base/log.c": '#include "gateway/svc/status.h" /* layers: allow - because */\n',
      "gateway/svc/status.h": ""},
     0, ["1 upward include(s) allowed", "gateway/base/log.c:1: gateway/svc/status.h (because)"]),
    ("an allow comment without a reason does not count",
     {"gateway/base/log.c": '#include "gateway/svc/status.h" /* layers: allow */\n',
      "gateway/svc/status.h": ""},
     1, ["gateway/base/log.c:1: includes gateway/svc/status.h"]),
    ("two modules of one folder including each other fail",
     {"gateway/svc/a.c": '#include "gateway/svc/b.h"\n', "gateway/svc/a.h": "",
      "gateway/svc/b.c": '#include "gateway/svc/a.h"\n', "gateway/svc/b.h": ""},
     1, ["include circle among 2 modules", "gateway/svc/a", "gateway/svc/b"]),
    ("x_int.h belongs to module x: no circle with itself",
     {"gateway/svc/a.c": '#include "gateway/svc/a_int.h"\n', "gateway/svc/a_int.h": '#include "gateway/svc/a.h"\n',
      "gateway/svc/a.h": "", "gateway/svc/a_batch.c": '#include "gateway/svc/a_int.h"\n'},
     0, ["layers: clean"]),
    ("a folder missing from the table fails",
     {"gateway/extra/x.c": ""}, 1, ["gateway/extra/ is not in the layer table"]),
    ("an include of a missing file fails",
     {"gateway/svc/a.c": '#include "gateway/svc/nothere.h"\n'}, 1, ["does not exist"]),
    ("generated and library headers are ignored",
     {"gateway/base/a.c": '#include "animate3d/v1/jobs.pb-c.h"\n#include <event2/event.h>\n'},
     0, ["layers: clean"]),
]


def run_case(files):
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "gateway"))
        with open(os.path.join(root, "gateway", "README.md"), "w") as f:
            f.write(TABLE)
        for path, text in files.items():
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        p = subprocess.run([sys.executable, CHECKER, "--root", root], capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr


def main():
    failed = 0
    for name, files, want_rc, wants in CASES:
        rc, out = run_case(files)
        missing = [w for w in wants if w not in out]
        ok = rc == want_rc and not missing
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            print(f"     exit {rc} (want {want_rc}); missing {missing}\n     output: {out.strip()}")
    print(f"{len(CASES) - failed}/{len(CASES)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
