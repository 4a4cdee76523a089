"""Webhooks CRUD (tenant subscriptions kept by the gateway, issue 17) and Account balances end
to end."""
import grpc
import pytest

from harness import account_pb2, webhooks_pb2

HOOK = "http://127.0.0.1:9/hooks/a3d"      # never called in these tests (discard port)


def test_webhook_endpoint_crud(gateway):
    wh, md = gateway.webhooks, gateway.md()
    ep = wh.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=HOOK, events=["job.completed"]),
                           timeout=5, metadata=md)
    assert ep.id and ep.url == HOOK and list(ep.events) == ["job.completed"], ep
    assert ep.secret.startswith("whsec_") and not ep.disabled and ep.created_ms > 0

    got = wh.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5, metadata=md)
    assert (got.id, got.url, list(got.events)) == (ep.id, HOOK, ["job.completed"])
    assert got.secret == "", "the secret is in the create and rotate answers only"

    listed = wh.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5, metadata=md).endpoints
    assert ep.id in [e.id for e in listed]

    new_url = HOOK + "/v2"
    up = wh.UpdateEndpoint(webhooks_pb2.UpdateEndpointRequest(id=ep.id, url=new_url,
                                                              events=["job.completed"]),
                           timeout=5, metadata=md)
    assert (up.id, up.url) == (ep.id, new_url), up
    assert up.secret == "" and up.updated_ms >= ep.created_ms
    got = wh.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5, metadata=md)
    assert got.url == new_url

    d = wh.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id=ep.id), timeout=5, metadata=md)
    assert d.id == ep.id and d.deleted is True
    with pytest.raises(grpc.RpcError) as e:
        wh.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=ep.id), timeout=5, metadata=md)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
    listed = wh.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=5, metadata=md).endpoints
    assert ep.id not in [e.id for e in listed]


def test_balances_match_upstream(gateway, sim):
    """The gateway reports the account's balances as the upstream has them."""
    cookie = sim.login()
    credits = gateway.account.GetCreditBalance(account_pb2.GetCreditBalanceRequest(), timeout=5,
                                               metadata=gateway.md()).credits
    minutes = gateway.account.GetMinutesBalance(account_pb2.GetMinutesBalanceRequest(), timeout=5,
                                                metadata=gateway.md()).minutes
    up_credits = sim.get_json("/account/creditBalance", cookie)["credits"]
    up_minutes = sim.get_json("/account/minutesBalance", cookie)["minutes"]
    assert credits == pytest.approx(up_credits) and credits > 0
    assert minutes == pytest.approx(up_minutes) and minutes > 0
