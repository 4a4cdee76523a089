"""Hold under abuse, the tenant side (issue 13, items 4-7): no tenant can hold the gateway's
long-lived resources (uploads, watch streams, idempotent StartJob keys) or use another team's
uploads, and forged webhook deliveries cannot multiply upstream traffic.

Every test runs its own small gateway (low caps, short timeouts) so it takes seconds; every
loop is bounded in count and time; everything listens on 127.0.0.1.
"""
import json
import os
import random
import signal
import threading
import time

import grpc
import pytest

import harness
from harness import characters_pb2, health_pb2, jobs_pb2

FAKE_FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 64
FAKE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
WAIT_S = 10.0       # upper bound of every "until" loop below


def _code(fn, req, tenant="team-b", timeout=10):
    """-> (status code, details) of one unary call; OK -> (OK, None)."""
    try:
        fn(req, timeout=timeout, metadata=harness.Gateway.md(tenant))
        return grpc.StatusCode.OK, None
    except grpc.RpcError as e:
        return e.code(), e.details()


def _until(pred, timeout=WAIT_S, step=0.05):
    """Polls pred() until it is true; bounded. -> its last value."""
    deadline = time.monotonic() + timeout
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(step)
        v = pred()
    return v


def _rid():
    return "".join(random.choice(B58) for _ in range(22))


def _config(gw_grpc, gw_http, sim_url, state, head="", tenants_extra=""):
    """The harness config with `head` (top-level YAML sections) prepended."""
    return head + harness.gateway_config(gw_grpc, gw_http, sim_url, state, extra_tenants=tenants_extra)


def _gateway(stack, sim, name, head="", tenants_extra="", **kw):
    grpc_port, http_port = harness.free_port(), harness.free_port()
    text = _config(grpc_port, http_port, sim.url, os.path.join(stack.workdir, name + ".db"), head,
                   tenants_extra)
    return stack.gateway(sim, name=name, config_text=text, grpc_port=grpc_port, http_port=http_port, **kw)


def _metric(gw, name):
    return harness.metrics(gw).get(name, 0.0)


# ---- item 6: StoreModel with another team's upload URLs ------------------------------------------
@pytest.fixture(scope="module")
def gw_models(stack, sim):
    return _gateway(stack, sim, "gw-models")


def _model_urls(gw, tenant, name):
    up = gw.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name=name, model_ext="fbx", thumb_ext="png",
                                                resumable=False),
        timeout=5, metadata=gw.md(tenant))
    assert harness.put_bytes(up.model_url, FAKE_FBX) == 200
    assert harness.put_bytes(up.thumb_url, FAKE_PNG) == 200
    return up


def test_store_model_with_another_tenants_urls_is_not_found(gw_models, sim):
    """team-b naming team-a's model_url or thumb_url in StoreModel gets exactly what an unknown
    URL gets (NOT_FOUND "StoreModel: not found"), no model is stored upstream, and team-a can
    still store its own."""
    gw = gw_models
    a = _model_urls(gw, "team-a", "abuse-a")
    b = _model_urls(gw, "team-b", "abuse-b")
    unknown = a.model_url.split("?", 1)[0].rsplit("/", 1)[0] + "/never-issued.fbx"
    store_before = sim.count("POST /character/storeModel")
    C = characters_pb2.StoreModelRequest
    cases = [
        ("a's model_url", C(model_url=a.model_url, model_name="stolen")),
        ("a's thumb_url", C(model_url=b.model_url, thumb_url=a.thumb_url, model_name="stolen")),
        ("unknown model_url", C(model_url=unknown, model_name="stolen")),
    ]
    got = {what: _code(gw.characters.StoreModel, req, tenant="team-b") for what, req in cases}
    want = (grpc.StatusCode.NOT_FOUND, "StoreModel: not found")
    assert all(v == want for v in got.values()), got
    assert sim.count("POST /character/storeModel") == store_before, "nothing reached upstream"
    listed = gw.characters.ListModels(characters_pb2.ListModelsRequest(), timeout=5,
                                      metadata=gw.md("team-b")).models
    assert not [m for m in listed if m.name == "stolen"], listed
    # The owners still can.
    mid = gw.characters.StoreModel(C(model_url=a.model_url, thumb_url=a.thumb_url, model_name="mine"),
                                   timeout=5, metadata=gw.md("team-a")).model_id
    assert mid
    assert gw.characters.StoreModel(C(model_url=b.model_url, model_name="mine-b"), timeout=5,
                                    metadata=gw.md("team-b")).model_id
