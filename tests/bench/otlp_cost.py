"""What span export (issue 20, otlp:) costs per call, under callgrind: the same measurement as
tests/bench/callgrind.py (Health/Check and cached GetStatus, instructions per call on the loop
thread and in all threads), run in one go on a gateway without otlp: and on one exporting every
call's span to a local OTLP receiver (http.server on 127.0.0.1 answering 200), then printed side
by side. Every call is a root trace (h2load sends no traceparent), so with export on every call
ends a span, and the POSTs (encoding, libcurl) fall inside the measured phases.

Run:  /usr/bin/python3 tests/bench/otlp_cost.py [calls]   (default 1000 per phase; needs valgrind,
h2load and a built tree, A3D_BUILD_DIR as for callgrind.py). CALLGRIND_PHASES as there.
"""
import http.server
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import callgrind  # noqa: E402  (imports bench and harness, sets their paths)
import harness  # noqa: E402

CALLS = 1000


class Receiver:
    """Counts the spans POSTed to it; answers 200."""

    def __init__(self):
        self.spans = 0
        self.posts = 0
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n)) if n > 0 else {}
                for rs in body.get("resourceSpans", []):
                    for ss in rs.get("scopeSpans", []):
                        rcv.spans += len(ss.get("spans", []))
                rcv.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/v1/traces" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def main(argv):
    n = int(argv[0]) if argv else CALLS
    plain, binary = harness.gateway_config, harness.GATEWAY_BIN
    print("== span export off ==")
    off = callgrind.measure(n)
    harness.GATEWAY_BIN = binary    # measure() put its callgrind wrapper there
    rcv = Receiver()
    try:
        def with_otlp(*a, **kw):
            return plain(*a, **kw) + ("otlp:\n  endpoint: %s\n  batch_max: 512\n"
                                      "  queue_max: 4096\n  flush_ms: 2000\n" % rcv.url)
        harness.gateway_config = with_otlp
        print("== span export on (every call a sampled root span) ==")
        on = callgrind.measure(n)
    finally:
        harness.gateway_config = plain
        rcv.close()
    print("otlp receiver: %d spans in %d POSTs" % (rcv.spans, rcv.posts))
    print("%-10s %-9s %12s %12s %10s %8s" % ("shape", "method", "off", "on", "on - off", "on/off"))
    for shape in off:
        for k, name in (("hc", "Health"), ("gs", "GetStatus")):
            for i, what in ((1, "loop thread"), (0, "all threads")):
                a, b = off[shape][k][i], on[shape][k][i]
                print("%-10s %-9s %12.0f %12.0f %10.0f %8.3f   (%s)"
                      % (shape, name, a, b, b - a, b / a, what))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
