"""sdk_flow.js, unchanged, against the gateway's REST facade (issue 18) instead of the simulator.

Starts the real simulator and the real gateway (listen.rest on a free port of 127.0.0.1) with
tests/integration/harness.py, then runs the official JS SDK's flow with the facade's URL as its
base, the tenant's name as its client id and the tenant's API key as its secret. The upstream
client secret is in the gateway's environment only: the SDK's environment is checked not to hold
it anywhere. Run by `tests/sdk/run --facade` (after the SDK is installed); /usr/bin/python3.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

FLOW_TIMEOUT_S = 300
TENANT = "team-a"


def main():
    work = tempfile.mkdtemp(prefix="a3d-sdk-facade-")
    sim = harness.Sim(work, job_seconds=1)
    gw = None
    rc = 1
    try:
        gw = harness.Gateway(work, sim.url, rest=True)
        env = {k: v for k, v in os.environ.items()
               if k != harness.SECRET_ENV and harness.CLIENT_SECRET not in v}
        env.update(A3D_SIM_URL=gw.rest_url, A3D_CLIENT_ID=TENANT,
                   A3D_CLIENT_SECRET=harness.KEYS[TENANT])
        assert not any(harness.CLIENT_SECRET in v for v in env.values())
        print("sdk/facade: REST facade at %s, tenant %s, no upstream secret in the SDK's "
              "environment" % (gw.rest_url, TENANT), flush=True)
        p = subprocess.run(["node", os.path.join(HERE, "sdk_flow.js")], env=env,
                           timeout=FLOW_TIMEOUT_S)
        rc = p.returncode
    finally:
        if gw:
            stop_rc, killed = gw.stop()
            if stop_rc != 0 or killed:
                print("sdk/facade: gateway exit %s%s (log %s)" % (stop_rc, " killed" if killed else "",
                                                                  gw.log_path))
                rc = 1
            leaks = gw.leaked_secrets()
            if leaks:
                print("sdk/facade: gateway log leaks %s (log %s)" % (", ".join(leaks), gw.log_path))
                rc = 1
        sim.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
