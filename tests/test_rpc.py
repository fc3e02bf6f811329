"""The JSON-RPC contract, driven line by line through the Dispatcher (no socket, no kernel)."""

import json
from typing import Any

import pytest
import trio

from dockernetd import errors
from dockernetd.api import METHODS, openrpc_document
from dockernetd.config import Config
from dockernetd.handlers import Service
from dockernetd.jobs import Peer
from dockernetd.rpc import MAX_BATCH, Dispatcher
from dockernetd.state import Snapshot, StateLog

from fakes import make_driver


def make_dispatcher(
    network: bool = True, bridge: str = "172.17.42.1/16", state: StateLog | None = None
) -> Dispatcher:
    """A dispatcher over the real network model and handlers, with a fake kernel (fakes.py)."""
    driver = make_driver(bridge)[0] if network else None
    return Dispatcher(Service(Config(), driver, state))


def send(dispatcher: Dispatcher, payload: Any) -> Any:
    line = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    out = trio.run(dispatcher.handle_line, line, Peer(pid=1, uid=0, gid=0))
    if out is None:
        return None
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    return json.loads(out)


def call(dispatcher: Dispatcher, method: str, request_id: int = 1, **params: Any) -> Any:
    return send(
        dispatcher, {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
    )


def error_of(response: dict) -> tuple[int, str, str]:
    err = response["error"]
    return err["code"], err["message"], err["data"]["error"]


def test_allocate_interface_result_shape():
    d = make_dispatcher()
    result = call(d, "allocate_interface", id="web1")["result"]
    assert result == {
        "id": "web1",
        "ip": "172.17.0.2",
        "prefix_len": 16,
        "mask": "255.255.0.0",
        "gateway": "172.17.42.1",
        "mac_address": "02:42:ac:11:00:02",
        "bridge": "docker0",
        "mtu": 1500,
    }


def test_allocate_is_idempotent_and_conflicts_on_different_ip():
    d = make_dispatcher()
    first = call(d, "allocate_interface", id="web1")["result"]
    assert call(d, "allocate_interface", id="web1")["result"] == first
    assert call(d, "allocate_interface", id="web1", requested_ip=first["ip"])["result"] == first
    assert error_of(call(d, "allocate_interface", id="web1", requested_ip="172.17.0.9"))[0] == 1010
    response = call(d, "allocate_interface", id="web1", requested_mac="02:00:00:00:00:01")
    assert error_of(response) == (
        1010,
        "container web1 already has mac address 02:42:ac:11:00:02, not 02:00:00:00:00:01",
        "conflict",
    )


def test_requested_ip_and_mac():
    d = make_dispatcher()
    result = call(
        d,
        "allocate_interface",
        id="a",
        requested_ip="172.17.3.4",
        requested_mac="02-AA-bb-cc-dd-ee",
    )["result"]
    assert (result["ip"], result["mac_address"]) == ("172.17.3.4", "02:aa:bb:cc:dd:ee")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"id": "b", "requested_ip": "172.17.0.2"},
            (1001, "ip already allocated", "ip_already_allocated"),
        ),
        (
            {"id": "b", "requested_ip": "10.0.0.1"},
            (1002, "requested ip is out of range", "ip_out_of_range"),
        ),
    ],
)
def test_allocator_errors(params, expected):
    d = make_dispatcher()
    call(d, "allocate_interface", id="a")
    assert error_of(call(d, "allocate_interface", **params)) == expected


def test_no_available_ips():
    d = make_dispatcher(bridge="10.0.0.1/30")  # one address: .2
    call(d, "allocate_interface", id="a")
    assert error_of(call(d, "allocate_interface", id="b")) == (
        1003,
        "no available ip addresses on network",
        "no_available_ips",
    )


def test_release_then_second_release_is_1004():
    d = make_dispatcher()
    call(d, "allocate_interface", id="web1")
    assert call(d, "release_interface", id="web1")["result"] == {
        "id": "web1",
        "ip": "172.17.0.2",
        "released_ports": [],
    }
    assert error_of(call(d, "release_interface", id="web1")) == (
        1004,
        "No network information to release for web1",
        "unknown_container",
    )
    assert call(d, "list_interfaces")["result"] == []


def test_network_disabled_answers_1009_but_status_works():
    d = make_dispatcher(network=False)
    for method, params in [
        ("allocate_interface", {"id": "a"}),
        ("release_interface", {"id": "a"}),
        ("allocate_port", {"id": "a", "container_port": 80}),
        ("link", {"action": "add", "parent_ip": "1.1.1.1", "child_ip": "1.1.1.2", "ports": ["80"]}),
        ("list_interfaces", {}),
    ]:
        assert error_of(call(d, method, **params))[0] == 1009, method
    status = call(d, "status")["result"]
    assert status["network_disabled"] is True and status["bridge"] is None


def test_status_counts():
    d = make_dispatcher()
    call(d, "allocate_interface", id="a")
    status = call(d, "status")["result"]
    assert status["bridge"] == "docker0"
    assert status["bridge_cidr"] == "172.17.42.1/16"
    assert status["gateway"] == "172.17.42.1"
    assert status["interfaces"] == 1
    assert status["config"]["icc"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Bad parameter: missing required parameter id"),
        ({"id": ""}, "Bad parameter: id '' does not match ^[A-Za-z0-9_.-]{1,128}$"),
        ({"id": "a b"}, "Bad parameter: id 'a b' does not match ^[A-Za-z0-9_.-]{1,128}$"),
        ({"id": "x" * 129}, None),
        ({"id": 7}, "Bad parameter: id must be a string, not integer"),
        (
            {"id": "a", "requested_ip": "localhost"},
            "Bad parameter: requested_ip 'localhost' is not an IPv4 address",
        ),
        (
            {"id": "a", "requested_mac": "nope"},
            "Bad parameter: requested_mac nope is not a MAC address",
        ),
        ({"id": "a", "color": "red"}, "Bad parameter: unknown parameter color"),
    ],
)
def test_invalid_params_name_the_parameter(params, message):
    d = make_dispatcher()
    code, _, name = error_of(call(d, "allocate_interface", **params))
    assert (code, name) == (-32602, "invalid_params")
    if message:
        assert call(d, "allocate_interface", **params)["error"]["message"] == message
    assert call(d, "list_interfaces")["result"] == []  # nothing changed


def test_host_ip_message_is_dockers():
    d = make_dispatcher()
    response = call(d, "allocate_port", id="a", container_port=80, host_ip="localhost")
    assert response["error"]["message"] == "Bad parameter: invalid host ip localhost"


def test_positional_params_are_refused():
    d = make_dispatcher()
    response = send(d, {"jsonrpc": "2.0", "method": "allocate_interface", "params": ["a"], "id": 3})
    assert error_of(response)[0] == -32602 and response["id"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"count": 0}, "Bad parameter: count 0 is out of range 1-4096"),
        ({"count": 4097}, "Bad parameter: count 4097 is out of range 1-4096"),
        (
            {"container_port": 65530, "count": 7},
            "Bad parameter: container_port 65530 + count 7 goes past 65535",
        ),
        (
            {"host_port": 65535, "count": 2},
            "Bad parameter: host_port 65535 + count 2 goes past 65535",
        ),
    ],
)
def test_a_port_range_must_fit(params, message):
    d = make_dispatcher()
    call(d, "allocate_interface", id="a")
    response = call(d, "allocate_port_range", **{"id": "a", "container_port": 80, **params})
    assert error_of(response)[0] == -32602
    assert response["error"]["message"] == message


def test_a_port_range_for_an_unknown_container_is_1004():
    d = make_dispatcher()
    response = call(d, "allocate_port_range", id="ghost", container_port=80, count=3)
    assert error_of(response)[0] == 1004


def test_a_change_that_cannot_be_recorded_changes_nothing(tmp_path):
    state = StateLog(str(tmp_path))
    state.rewrite(Snapshot())
    d = make_dispatcher(state=state)
    call(d, "allocate_interface", id="web")
    state._file.close()
    state._file = open("/dev/full", "ab", buffering=0)  # noqa: SIM115 (every write: ENOSPC)
    assert error_of(call(d, "release_interface", id="web"))[0] == -32603
    assert error_of(call(d, "allocate_interface", id="db"))[0] == -32603
    assert [i["id"] for i in call(d, "list_interfaces")["result"]] == ["web"]
    assert [container for _, container in state.snapshot.endpoints] == ["web"]


def test_allocate_port_for_an_unknown_container_is_1004():
    d = make_dispatcher()
    assert error_of(call(d, "allocate_port", id="ghost", container_port=80)) == (
        1004,
        "no network information for ghost",
        "unknown_container",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"action": "bogus"},
            "Bad parameter: action must be one of add, remove, -I, -A, -D, not 'bogus'",
        ),
        ({"parent_ip": "x"}, "Bad parameter: parent_ip 'x' is not an IPv4 address"),
        (
            {"ports": ["80/sctp"]},
            "Bad parameter: ports[0] '80/sctp' does not match ^[0-9]{1,5}(/(tcp|udp))?$",
        ),
        ({"ports": ["0/tcp"]}, "Bad parameter: ports '0/tcp': port must be 1-65535"),
        ({"ports": "80"}, "Bad parameter: ports must be an array, not string"),
    ],
)
def test_link_params_are_checked_before_any_change(params, message):
    d = make_dispatcher()
    base = {"action": "add", "parent_ip": "172.17.0.2", "child_ip": "172.17.0.3", "ports": ["80"]}
    response = call(d, "link", **{**base, **params})
    assert response["error"]["code"] == -32602
    assert response["error"]["message"] == message


@pytest.mark.parametrize(
    ("line", "code", "name"),
    [
        (b"garbage", -32700, "parse_error"),
        (b"\xff\xfe{}", -32700, "parse_error"),
        (b"[]", -32600, "invalid_request"),
        (b'{"jsonrpc":"1.0","method":"status","id":1}', -32600, "invalid_request"),
        (b'{"method":"status","id":1}', -32600, "invalid_request"),
        (b'{"jsonrpc":"2.0","method":"status","id":true}', -32600, "invalid_request"),
        (b'{"jsonrpc":"2.0","method":"status","params":3,"id":1}', -32600, "invalid_request"),
        (b'{"jsonrpc":"2.0","method":"nope","id":1}', -32601, "method_not_found"),
        (b'"just a string"', -32600, "invalid_request"),
    ],
)
def test_protocol_errors(line, code, name):
    response = send(make_dispatcher(), line)
    assert error_of(response)[0::2] == (code, name)


def test_batches_and_notifications():
    d = make_dispatcher()
    batch = [
        {"jsonrpc": "2.0", "method": "allocate_interface", "params": {"id": "a"}, "id": 1},
        {"jsonrpc": "2.0", "method": "allocate_interface", "params": {"id": "n"}},  # notification
        {"jsonrpc": "2.0", "method": "nope", "id": 2},
    ]
    responses = send(d, batch)
    assert [r["id"] for r in responses] == [1, 2]
    assert responses[0]["result"]["ip"] == "172.17.0.2"
    assert send(d, batch[1]) is None
    assert [i["id"] for i in call(d, "list_interfaces")["result"]] == ["a", "n"]


def test_oversized_batch_is_refused():
    d = make_dispatcher()
    batch = [{"jsonrpc": "2.0", "method": "status", "id": i} for i in range(MAX_BATCH + 1)]
    assert error_of(send(d, batch))[0] == -32600


def strict_json(line: bytes) -> Any:
    """What a strict parser (RFC 8259) makes of a line: no NaN, no Infinity."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in {line!r}")

    return json.loads(line.decode("utf-8"), parse_constant=refuse)


def answer(dispatcher: Dispatcher, line: bytes) -> Any:
    out = trio.run(dispatcher.handle_line, line, Peer(pid=1, uid=0, gid=0))
    return None if out is None else strict_json(out)


STATUS = '{"jsonrpc":"2.0","method":"status","id":7}'
INVALID = {
    "jsonrpc": "2.0",
    "error": {"code": -32600, "message": "Invalid request", "data": {"error": "invalid_request"}},
    "id": None,
}


def without_detail(response: dict) -> dict:
    if "error" in response:
        response["error"]["data"].pop("detail", None)
    return response


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("[1]", [INVALID]),
        ("[null]", [INVALID]),
        (f"[true,{STATUS}]", [INVALID, "status"]),
        (f'[{{"jsonrpc":"1.0","method":"status","id":1}},{STATUS}]', [INVALID, "status"]),
        (f'[{{"jsonrpc":"2.0","method":5,"id":1}},{STATUS},1]', [INVALID, "status", INVALID]),
        (f'[{STATUS},{{"jsonrpc":"2.0","method":"status"}}]', ["status"]),  # a notification
    ],
)
def test_a_batch_answers_each_member_on_its_own(batch, expected):
    responses = answer(make_dispatcher(), batch.encode())
    assert isinstance(responses, list)
    assert [without_detail(r) if "error" in r else "status" for r in responses] == expected
    for r in responses:
        if "result" in r:
            assert (r["id"], r["result"]["bridge"]) == (7, "docker0")


def test_the_valid_members_of_a_batch_run_beside_invalid_ones():
    d = make_dispatcher()
    batch = [
        [],
        {"jsonrpc": "2.0", "method": "allocate_interface", "params": {"id": "a"}, "id": "x"},
        {"jsonrpc": "2.0", "method": "allocate_interface", "params": {"id": "b"}},
        {"jsonrpc": "2.0", "method": ["allocate_interface"], "params": {"id": "c"}, "id": 3},
    ]
    responses = send(d, batch)
    assert [r["id"] for r in responses] == [None, "x", None]
    assert [r["error"]["data"]["detail"] for r in responses if "error" in r] == [
        "a request is an object, not an array",
        "method must be a string",
    ]
    assert [i["id"] for i in call(d, "list_interfaces")["result"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b"[]", "a batch holds 1 to 256 requests"),
        (
            json.dumps([json.loads(STATUS)] * (MAX_BATCH + 1)).encode(),
            "a batch holds 1 to 256 requests",
        ),
    ],
)
def test_an_empty_or_oversized_batch_is_one_invalid_request(line, detail):
    response = answer(make_dispatcher(), line)
    assert response == {
        **INVALID,
        "error": {**INVALID["error"], "data": {"error": "invalid_request", "detail": detail}},
    }


def test_a_batch_of_notifications_gets_no_answer():
    line = b'[{"jsonrpc":"2.0","method":"status"},{"jsonrpc":"2.0","method":"list_interfaces"}]'
    assert answer(make_dispatcher(), line) is None


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b'{"jsonrpc":"2.0","method":"status","id":-Infinity}', "-Infinity is not JSON"),
        (b'{"jsonrpc":"2.0","method":"status","id":Infinity}', "Infinity is not JSON"),
        (b'{"jsonrpc":"2.0","method":"status","id":NaN}', "NaN is not JSON"),
        (b'{"jsonrpc":"2.0","method":"status","params":{"x":[NaN]},"id":1}', "NaN is not JSON"),
        (b'[{"jsonrpc":"2.0","method":"status","id":1},NaN]', "NaN is not JSON"),
        (b'{"jsonrpc":"2.0","method":"status","id":1e400}', "number 1e400 is out of range"),
        (b'{"jsonrpc":"2.0","method":"status","id":-2E+999}', "number -2E+999 is out of range"),
        (
            b'{"jsonrpc":"2.0","method":"status","id":"\\ud800"}',
            "a string holds a lone surrogate (not Unicode)",
        ),
        (
            b'{"jsonrpc":"2.0","method":"st\\udc00atus","id":1}',
            "a string holds a lone surrogate (not Unicode)",
        ),
        (
            b'{"jsonrpc":"2.0","method":"status","id":"\xc3(x"}',
            "not UTF-8: byte 41 (invalid continuation byte)",
        ),
        (
            b'{"jsonrpc":"2.0","method":"\xed\xa0\x80","id":1}',
            "not UTF-8: byte 27 (invalid continuation byte)",
        ),
        (
            b'{"jsonrpc":"2.0","method":"status","id":"\xc0\xaf"}',
            "not UTF-8: byte 41 (invalid start byte)",
        ),
        (
            b'{"jsonrpc":"2.0","method":"status","id":"\xff"}',
            "not UTF-8: byte 41 (invalid start byte)",
        ),
    ],
)
def test_what_strict_json_refuses_is_a_parse_error(line, detail):
    response = answer(make_dispatcher(), line)
    assert response["id"] is None
    assert response["error"] == {
        "code": -32700,
        "message": "Parse error",
        "data": {"error": "parse_error", "detail": detail},
    }


def test_strict_json_that_python_finds_unusual_is_still_accepted():
    d = make_dispatcher()
    # a surrogate pair is one character; big integers and exponents are JSON numbers
    for request_id in ('"\\ud83d\\ude00"', "12345678901234567890123", "1e300", "-0.5"):
        line = f'{{"jsonrpc":"2.0","method":"status","id":{request_id}}}'.encode()
        response = answer(d, line)
        assert response["id"] == json.loads(request_id)
        assert "result" in response


@pytest.mark.parametrize(
    "error",
    [
        errors.IpAlreadyAllocated("172.17.0.2"),
        errors.IpOutOfRange("10.0.0.1"),
        errors.NoAvailableIps(),
        errors.UnknownContainer("web1"),
        errors.PortAlreadyAllocated("0.0.0.0", 80, "tcp"),
        errors.AllPortsAllocated("0.0.0.0", "tcp"),
        errors.ProxyFailed(
            "Error starting userland proxy: listen tcp 0.0.0.0:80: bind: address already in use"
        ),
        errors.FirewallFailed("iptables: commit failed"),
        errors.NetworkDisabled(),
        errors.Conflict("container a already has ip 172.17.0.2"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_application_error_is_answered_with_code_message_and_name(error):
    class Failing(Service):
        async def run(self, method, params):
            raise error

    d = Dispatcher(Failing(Config(), None))
    response = call(d, "status", request_id=9)
    assert response["id"] == 9
    assert response["error"]["code"] == error.code
    assert response["error"]["message"] == error.message
    assert response["error"]["data"] == {"error": error.name, **error.details}


def test_a_bug_is_answered_32603_without_its_text(caplog):
    class Broken(Service):
        async def run(self, method, params):
            raise RuntimeError("secret path /etc/shadow")

    response = call(Dispatcher(Broken(Config(), None)), "status")
    assert response["error"] == {
        "code": -32603,
        "message": "Internal error",
        "data": {"error": "internal_error"},
    }
    assert "secret" not in json.dumps(response)
    assert "secret path" in caplog.text  # logged for the operator, with its traceback


def test_rpc_discover_serves_the_openrpc_document():
    response = call(make_dispatcher(), "rpc.discover")
    doc = response["result"]
    assert doc == json.loads(json.dumps(openrpc_document()))
    assert doc["openrpc"].startswith("1.")
    assert [m["name"] for m in doc["methods"]] == [m.name for m in METHODS]
    assert {"allocate_port", "link"} <= {m["name"] for m in doc["methods"]}
    codes = {e["code"] for e in doc["components"]["errors"].values()}
    assert codes == set(range(1001, 1018))


def test_api_doc_covers_every_method_and_error():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "API.md").read_text()
    for method in [m.name for m in METHODS] + ["rpc.discover"]:
        assert f"`{method}`" in text, method
    for cls in errors.APPLICATION_ERRORS:
        assert f"{cls.code}" in text and cls.name in text, cls.name
    for code in errors.PROTOCOL_ERROR_NAMES:
        assert str(code) in text


def test_the_protocol_examples_of_the_api_doc_are_what_the_daemon_answers():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "API.md").read_text()
    section = text[text.index("### Protocol errors") : text.index("### Application errors")]
    lines = section.splitlines()
    pairs = [
        (sent[4:], lines[n + 1][4:])
        for n, sent in enumerate(lines)
        if sent.startswith("--> ") and "   (" not in sent  # annotated ones need a state
    ]
    assert len(pairs) >= 6
    for request, expected in pairs:
        assert answer(make_dispatcher(), request.encode()) == json.loads(expected), request
