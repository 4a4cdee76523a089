"""gRPC server reflection (issue 21): grpc.reflection.v1 and v1alpha ServerReflectionInfo.

grpcurl is not in Debian 12 and grpcio-reflection is not packaged, so the client is the few lines
below on the stubs generated from Debian's grpc-proto (target py_stubs). It lists every service,
resolves every method's request and reply types through file_containing_symbol into a fresh
google.protobuf descriptor_pool, and checks each against the type compiled from proto/; then the
error responses, the stream staying open after them, malformed requests, the key rule, and the
installed build/animate3d.protoset being the set the gateway serves.
"""
import os
import queue
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

import h2raw
import harness
from harness import account_pb2, characters_pb2, health_pb2, jobs_pb2, webhooks_pb2
from grpc.reflection.v1 import reflection_pb2 as refl_v1  # noqa: E402  (build/py, see harness)
from grpc.reflection.v1 import reflection_pb2_grpc as refl_v1_grpc
from grpc.reflection.v1alpha import reflection_pb2 as refl_v1alpha
from grpc.reflection.v1alpha import reflection_pb2_grpc as refl_v1alpha_grpc

VERSIONS = {"v1": (refl_v1, refl_v1_grpc), "v1alpha": (refl_v1alpha, refl_v1alpha_grpc)}
STREAM_TIMEOUT_S = 30       # one stream's deadline: every exchange below is far shorter
REPLY_TIMEOUT_S = 10        # one request -> its response
PIPELINED = 100             # requests sent without reading a reply
UNREAD_MAX = 8              # GW_REFL_MAX_UNREAD (gateway/svc/reflection.h)
STREAMS_MAX = 64            # GW_REFL_MAX_STREAMS
PROTOSET = os.path.join(harness.BUILD, "animate3d.protoset")

# What the gateway serves (gateway/methods.c), as the compiled contract names it.
COMPILED_SERVICES = {
    "animate3d.v1.Jobs": jobs_pb2.DESCRIPTOR.services_by_name["Jobs"],
    "animate3d.v1.Characters": characters_pb2.DESCRIPTOR.services_by_name["Characters"],
    "animate3d.v1.Webhooks": webhooks_pb2.DESCRIPTOR.services_by_name["Webhooks"],
    "animate3d.v1.Account": account_pb2.DESCRIPTOR.services_by_name["Account"],
    "grpc.health.v1.Health": health_pb2.DESCRIPTOR.services_by_name["Health"],
    "grpc.reflection.v1.ServerReflection": refl_v1.DESCRIPTOR.services_by_name["ServerReflection"],
    "grpc.reflection.v1alpha.ServerReflection":
        refl_v1alpha.DESCRIPTOR.services_by_name["ServerReflection"],
}


class Stream:
    """One ServerReflectionInfo stream: ask() sends a request and waits for its response."""

    def __init__(self, gw, version="v1", md=None):
        self.pb, grpc_mod = VERSIONS[version]
        self._q = queue.Queue()
        stub = grpc_mod.ServerReflectionStub(gw.channel)
        self.call = stub.ServerReflectionInfo(self._requests(), timeout=STREAM_TIMEOUT_S,
                                              metadata=gw.md() if md is None else md)

    def _requests(self):
        while True:
            r = self._q.get(timeout=STREAM_TIMEOUT_S)
            if r is None:
                return
            yield r

    def ask(self, **kw):
        self._q.put(self.pb.ServerReflectionRequest(**kw))
        return next(self.call)

    def close(self):
        self._q.put(None)
        return list(self.call)      # ends OK once the client half-closes


def _files(resp):
    """The FileDescriptorProtos of a file_descriptor_response, in the order sent."""
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    out = []
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(raw)
        out.append(fd)
    return out


def _add(pool, files, added):
    """Adds the files (the requested one first, then its imports) imports first."""
    for fd in reversed(files):
        if fd.name not in added:
            pool.Add(fd)
            added.add(fd.name)


def _same_message(reflected, compiled):
    """The same fields, types and numbers (json_name aside: protoc's descriptor set spells it
    out, the compiled module's copy leaves it implicit)."""
    a, b = descriptor_pb2.DescriptorProto(), descriptor_pb2.DescriptorProto()
    reflected.CopyToProto(a)
    compiled.CopyToProto(b)
    for d in (a, b):
        for f in d.field:
            f.ClearField("json_name")
    return a == b


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_list_services(gateway, version):
    s = Stream(gateway, version)
    r = s.ask(list_services="*")
    assert r.WhichOneof("message_response") == "list_services_response", r
    names = [x.name for x in r.list_services_response.service]
    assert sorted(names) == sorted(COMPILED_SERVICES), names
    assert len(names) == len(set(names)), names
    assert r.original_request.list_services == "*"
    assert s.close() == []


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_every_method_resolves(gateway, version):
    """Every method of every listed service: its service by symbol, then its request and reply
    types by symbol, each parsed by a fresh descriptor pool and equal to the compiled type."""
    s = Stream(gateway, version)
    pool, added = descriptor_pool.DescriptorPool(), set()
    services = [x.name for x in s.ask(list_services="").list_services_response.service]
    methods = types = 0
    for name in services:
        _add(pool, _files(s.ask(file_containing_symbol=name)), added)
        svc = pool.FindServiceByName(name)
        compiled = COMPILED_SERVICES[name]
        assert sorted(m.name for m in svc.methods) == sorted(m.name for m in compiled.methods), name
        for m in svc.methods:
            methods += 1
            # The method itself is a symbol too (grpcurl describe pkg.Svc.Method).
            assert _files(s.ask(file_containing_symbol=m.full_name))[0].name == svc.file.name
            cm = compiled.methods_by_name[m.name]
            assert (m.client_streaming, m.server_streaming) == \
                (cm.client_streaming, cm.server_streaming), m.full_name
            for t, ct in ((m.input_type, cm.input_type), (m.output_type, cm.output_type)):
                files = _files(s.ask(file_containing_symbol=t.full_name))
                _add(pool, files, added)
                got = pool.FindMessageTypeByName(t.full_name)
                assert got.file.name == files[0].name, t.full_name
                assert _same_message(got, ct), t.full_name
                types += 1
    assert methods == sum(len(c.methods) for c in COMPILED_SERVICES.values())
    assert types == 2 * methods
    print("reflection %s: %d services, %d methods, %d types resolved"
          % (version, len(services), methods, types))
    assert s.close() == []


def test_symbols_of_every_kind(gateway):
    """Enums, enum values, fields, nested types: where protobuf's DescriptorPool finds them."""
    s = Stream(gateway)
    table = [
        ("animate3d.v1.JobState", "animate3d/v1/jobs.proto"),
        ("animate3d.v1.Params", "animate3d/v1/jobs.proto"),
        ("animate3d.v1.GetStatusRequest.rids", "animate3d/v1/jobs.proto"),
        ("animate3d.v1.Endpoint", "animate3d/v1/webhooks.proto"),
        ("animate3d.v1.Characters.ListModels", "animate3d/v1/characters.proto"),
        ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
        ("grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"),
        ("grpc.reflection.v1alpha.ServerReflectionRequest",
         "grpc/reflection/v1alpha/reflection.proto"),
    ]
    for symbol, want in table:
        files = _files(s.ask(file_containing_symbol=symbol))
        assert files[0].name == want, symbol
    s.close()


def test_file_by_filename_matches_protoset(gateway):
    """Every file of the installed descriptor set, asked by name: the same bytes, so the
    embedded set is build/animate3d.protoset."""
    with open(PROTOSET, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    assert {fd.name for fd in fds.file} >= {"animate3d/v1/jobs.proto", "grpc/health/v1/health.proto",
                                           "grpc/reflection/v1/reflection.proto"}
    by_name = {fd.name: fd for fd in fds.file}

    def closure(name):
        out, todo = [], [name]
        while todo:
            n = todo.pop(0)
            if n not in out:
                out.append(n)
                todo.extend(by_name[n].dependency)
        return out

    s = Stream(gateway)
    for fd in fds.file:
        r = s.ask(file_by_filename=fd.name)
        raw = r.file_descriptor_response.file_descriptor_proto
        assert raw[0] == fd.SerializeToString(), fd.name
        # The file first, then each file it imports, directly or not, once.
        names = [x.name for x in _files(r)]
        assert names[0] == fd.name and sorted(names) == sorted(closure(fd.name)), names
    s.close()


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_unknown_names_are_error_responses(gateway, version):
    """NOT_FOUND error_responses; the stream stays open and answers the next request."""
    s = Stream(gateway, version)
    table = [
        (dict(file_containing_symbol="animate3d.v1.Nope"), "symbol not found"),
        (dict(file_containing_symbol="animate3d.v1"), "symbol not found"),
        (dict(file_containing_symbol=""), "symbol not found"),
        (dict(file_by_filename="animate3d/v1/nope.proto"), "file not found"),
        (dict(all_extension_numbers_of_type="animate3d.v1.Nope"), "message type not found"),
        # A service is not a message type.
        (dict(all_extension_numbers_of_type="animate3d.v1.Jobs"), "message type not found"),
        (dict(file_containing_extension=s.pb.ExtensionRequest(
            containing_type="animate3d.v1.GetStatusRequest", extension_number=100)),
         "extension 100 of animate3d.v1.GetStatusRequest not found"),
    ]
    for req, msg in table:
        r = s.ask(**req)
        assert r.WhichOneof("message_response") == "error_response", (req, r)
        assert r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], req
        assert msg in r.error_response.error_message, (req, r.error_response.error_message)
    r = s.ask()     # no request set at all
    assert r.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0], r
    r = s.ask(all_extension_numbers_of_type="animate3d.v1.GetStatusRequest")
    assert r.WhichOneof("message_response") == "all_extension_numbers_response", r
    assert r.all_extension_numbers_response.base_type_name == "animate3d.v1.GetStatusRequest"
    assert list(r.all_extension_numbers_response.extension_number) == []
    r = s.ask(list_services="")
    assert len(r.list_services_response.service) == len(COMPILED_SERVICES)
    assert s.close() == []


def test_key_required(gateway):
    """Any valid key (the read-only one too); none or a wrong one is UNAUTHENTICATED."""
    for md in ([], gateway.md(key="not-a-key")):
        s = Stream(gateway, md=md)
        with pytest.raises(grpc.RpcError) as e:
            s.ask(list_services="")
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, md
    s = Stream(gateway, md=gateway.md("viewer"))
    assert len(s.ask(list_services="").list_services_response.service) == len(COMPILED_SERVICES)
    s.close()


def test_malformed_requests_end_the_stream(gateway):
    """A name beyond the contract's limit and bytes that are no request: INVALID_ARGUMENT naming
    what is wrong; the gateway answers the next stream."""
    s = Stream(gateway)
    with pytest.raises(grpc.RpcError) as e:
        s.ask(file_containing_symbol="a" * 256)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "file_containing_symbol" in e.value.details(), e.value.details()

    raw = gateway.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as e:
        list(raw(iter([b"\xff\xff\xff"]), timeout=REPLY_TIMEOUT_S, metadata=gateway.md()))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in e.value.details(), e.value.details()

    s = Stream(gateway)
    assert s.ask(list_services="").list_services_response.service
    s.close()


def test_unread_replies_end_the_stream(gateway):
    """A client that asks and asks without reading (a raw HTTP/2 client whose window stays 0, so
    nothing can reach it): the gateway answers a few, then ends the stream RESOURCE_EXHAUSTED
    (counted) instead of queueing an answer of tens of KiB for each request."""
    path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    msg = refl_v1.ServerReflectionRequest(file_by_filename="animate3d/v1/jobs.proto").SerializeToString()
    body = (h2raw.grpc_message_prefix(len(msg)) + msg) * PIPELINED
    unread, answered = ("animate3d_gateway_reflection_unread_ended_total",
                        "animate3d_gateway_reflection_requests_total")
    before = harness.metrics(gateway)
    c = h2raw.Conn("127.0.0.1", gateway.grpc_port, timeout=5, window=0)
    try:
        sid = c.new_stream()
        c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, h2raw.grpc_headers(
            path, extra=[("authorization", "Bearer " + harness.KEYS["team-a"])])) +
            b"".join(h2raw.frame(h2raw.DATA, 0, sid, body[k:k + 16384])
                     for k in range(0, len(body), 16384)))
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            c.poll()
            after = harness.metrics(gateway)
            if after.get(unread, 0) > before.get(unread, 0):
                break
            time.sleep(0.05)
    finally:
        c.close()
    got = after[answered] - before.get(answered, 0)
    print("reflection: %d of %d requests answered before the stream ended" % (got, PIPELINED))
    assert after[unread] - before.get(unread, 0) == 1
    assert got <= UNREAD_MAX + 2, got


def _refused(gw):
    """Reflection streams refused so far, by (tenant, cap)."""
    out = {}
    for k, v in harness.metrics(gw).items():
        if k.startswith("animate3d_gateway_reflection_streams_tenant_refused_total{"):
            labels = dict(x.split("=", 1) for x in k[k.index("{") + 1:-1].split(","))
            out[(labels.get("tenant", "").strip('"'), labels["cap"].strip('"'))] = v
    return out


def test_open_streams_are_capped(gateway):
    """A tenant holds at most its fair share of the GW_REFL_MAX_STREAMS (3 tenants: 22 each), the
    gateway at most GW_REFL_MAX_STREAMS; each refusal is RESOURCE_EXHAUSTED naming the cap,
    counted by tenant and cap; once the streams end, a new one is served."""
    share = -(-STREAMS_MAX // len(harness.KEYS))
    open_ = "animate3d_gateway_reflection_streams"
    before = _refused(gateway)
    streams = []

    def refused(tenant):
        with pytest.raises(grpc.RpcError) as e:
            Stream(gateway, md=gateway.md(tenant)).ask(list_services="")
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
        return e.value.details()

    try:
        for tenant, n in (("team-a", share), ("team-b", share), ("viewer", STREAMS_MAX - 2 * share)):
            for _ in range(n):
                streams.append(Stream(gateway, md=gateway.md(tenant)))
                assert streams[-1].ask(list_services="").list_services_response.service
        assert harness.metrics(gateway)[open_] == STREAMS_MAX
        msg = refused("team-a")
        assert "tenant team-a holds %d streams; its cap is %d" % (share, share) in msg, msg
        msg = refused("viewer")
        assert "the gateway holds %d streams; its cap is %d" % (STREAMS_MAX, STREAMS_MAX) in msg, msg
    finally:
        for s in streams:
            s.close()
    after = _refused(gateway)
    assert after.get(("team-a", "tenant"), 0) - before.get(("team-a", "tenant"), 0) == 1, after
    assert after.get(("viewer", "global"), 0) - before.get(("viewer", "global"), 0) == 1, after
    assert harness.metrics(gateway)[open_] == 0
    s = Stream(gateway)
    assert s.ask(list_services="").list_services_response.service
    assert s.close() == []


def test_metrics_count_requests(gateway):
    before = harness.metrics(gateway)
    s = Stream(gateway)
    s.ask(list_services="")
    s.ask(file_containing_symbol="animate3d.v1.Nope")
    s.close()
    after = harness.metrics(gateway)
    assert after["animate3d_gateway_reflection_requests_total"] - before.get("animate3d_gateway_reflection_requests_total", 0) == 2
    assert after["animate3d_gateway_reflection_errors_total"] - before.get("animate3d_gateway_reflection_errors_total", 0) == 1
    assert after["animate3d_gateway_reflection_streams"] == 0


def test_drain_ends_open_streams(stack, sim):
    """SIGTERM: an open reflection stream ends UNAVAILABLE with the drain's own message (not the
    cancel-all at the end of the grace period), and the gateway exits 0."""
    g = stack.gateway(sim, name="gw_drain")
    s = Stream(g)
    assert s.ask(list_services="").list_services_response.service
    g.proc.send_signal(harness.signal.SIGTERM)
    with pytest.raises(grpc.RpcError) as e:
        next(s.call)                # no request outstanding: only the drain ends it
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    assert e.value.details() == "server is shutting down", e.value.details()
    assert g.proc.wait(timeout=harness.STOP_TIMEOUT_S) == 0
