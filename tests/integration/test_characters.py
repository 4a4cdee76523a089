"""Characters service end to end: upload URLs, store, list (custom and stock), update, delete."""
import grpc
import pytest

import harness
from harness import characters_pb2

FAKE_FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + bytes(range(256)) * 8
STOCK = ("deepmotion", "roblox")     # the platforms of stock models; the simulator says "custom" for custom ones
FAKE_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _list(gw, **kw):
    r = gw.characters.ListModels(characters_pb2.ListModelsRequest(**kw), timeout=5, metadata=gw.md())
    return {m.id: m for m in r.models}


@pytest.fixture(scope="module")
def stored_model(gateway):
    up = gateway.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name="hero", model_ext="fbx", thumb_ext="png",
                                                resumable=False),
        timeout=5, metadata=gateway.md())
    assert up.model_url.startswith(gateway.sim_url + "/") and up.thumb_url.startswith(gateway.sim_url + "/")
    assert harness.put_bytes(up.model_url, FAKE_FBX) == 200
    assert harness.put_bytes(up.thumb_url, FAKE_PNG) == 200
    r = gateway.characters.StoreModel(
        characters_pb2.StoreModelRequest(model_url=up.model_url, model_name="hero",
                                         thumb_url=up.thumb_url),
        timeout=5, metadata=gateway.md())
    assert r.model_id
    return r.model_id


def test_store_then_list_custom(gateway, stored_model):
    models = _list(gateway)
    assert stored_model in models, models
    m = models[stored_model]
    assert m.name == "hero" and m.ctime_ms > 0, m
    assert not [x for x in models.values() if x.platform in STOCK], "stock models without include_stock"


def test_custom_model_platform_passes_through(gateway, stored_model):
    """characters.proto: Model.platform is what upstream reports; never a stock platform for a custom model."""
    m = _list(gateway, include_stock=True)[stored_model]
    assert m.platform not in STOCK and m.platform == "custom", m


def test_list_with_stock(gateway, stored_model):
    models = _list(gateway, include_stock=True)
    assert stored_model in models
    assert [m for m in models.values() if m.platform in STOCK], "include_stock listed no stock model"


def test_list_by_model_id(gateway, stored_model):
    assert list(_list(gateway, model_id=stored_model)) == [stored_model]


def test_store_model_updates_name(gateway, stored_model):
    r = gateway.characters.StoreModel(
        characters_pb2.StoreModelRequest(model_id=stored_model, model_name="hero-renamed"),
        timeout=5, metadata=gateway.md())
    assert r.model_id == stored_model
    assert _list(gateway, model_id=stored_model)[stored_model].name == "hero-renamed"


def test_delete_model_count(gateway):
    up = gateway.characters.GetModelUploadUrl(
        characters_pb2.GetModelUploadUrlRequest(name="tmp", model_ext="glb", resumable=False),
        timeout=5, metadata=gateway.md())
    assert harness.put_bytes(up.model_url, b"glTF" + b"\x00" * 100) == 200
    mid = gateway.characters.StoreModel(
        characters_pb2.StoreModelRequest(model_url=up.model_url, model_name="tmp", create_thumb=True),
        timeout=5, metadata=gateway.md()).model_id
    assert mid in _list(gateway)
    r = gateway.characters.DeleteModel(characters_pb2.DeleteModelRequest(model_id=mid), timeout=5,
                                       metadata=gateway.md())
    assert r.count == 1
    assert mid not in _list(gateway)
    # Deleting it again deletes nothing: either a count of 0 or NOT_FOUND, never a second success.
    try:
        r = gateway.characters.DeleteModel(characters_pb2.DeleteModelRequest(model_id=mid), timeout=5,
                                           metadata=gateway.md())
        assert r.count == 0
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e.details()
