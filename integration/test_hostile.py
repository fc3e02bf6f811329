"""Hostile input against a real daemon: fuzzed requests, and a client hoarding connections."""

import json
import select
import socket
import subprocess
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockernetd.client import RpcError
from dockernetd.server import MAX_PER_PROCESS

FUZZ_EXAMPLES = 10_000
METHODS = [
    "allocate_interface",
    "release_interface",
    "allocate_port",
    "allocate_port_range",
    "link",
    "status",
    "list_interfaces",
    "rpc.discover",
    "nope",
    "",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)  # non_finite sends those
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# A call the contract must refuse: a real method with an unknown param among possibly valid ones.
invalid_calls = st.builds(
    lambda method, params, junk, request_id: {
        "jsonrpc": "2.0",
        "method": method,
        "id": request_id,
        "params": {**params, f"fuzz_{junk}": 1},
    },
    st.sampled_from(METHODS),
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "requested_ip",
                "container_port",
                "count",
                "proto",
                "host_ip",
                "host_port",
                "action",
                "ports",
                "parent_ip",
            ]
        ),
        json_values,
        max_size=4,
    ),
    st.text(alphabet="abcdefghij", min_size=1, max_size=6),
    st.integers(0, 10**6) | st.text(max_size=10),
)
# What a strict parser must refuse: non-finite numbers, bytes that are not UTF-8, lone surrogates.
non_finite = st.recursive(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.builds(
            lambda v, rid: {"jsonrpc": "2.0", "method": "status", "params": {"v": v}, "id": rid},
            children,
            st.integers(),
        )
    ),
    max_leaves=4,
).map(lambda doc: json.dumps(doc).encode())
not_utf8 = st.builds(
    lambda before, bad, after: before + bad + after,
    st.sampled_from(
        [b'{"jsonrpc":"2.0","method":"', b'{"jsonrpc":"2.0","method":"status","id":"', b"["]
    ),
    st.sampled_from(
        [b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf", b"\xff", b"\xf4\x90\x80\x80", b"\xe2\x82"]
    ),
    st.sampled_from([b'","id":1}', b'"}', b"]"]),
)
lone_surrogates = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
).flatmap(
    lambda text: st.sampled_from(
        [
            json.dumps({"jsonrpc": "2.0", "method": text, "id": 1}).encode(),  # escaped: "\\ud800"
            json.dumps(
                {"jsonrpc": "2.0", "method": "status", "id": text}, ensure_ascii=False
            ).encode(
                "utf-8",
                "surrogatepass",  # raw: the bytes ED A0 80
            ),
        ]
    )
)
malformed = st.one_of(
    json_values.map(json.dumps).map(str.encode),  # any JSON that is not a request
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
    invalid_calls.map(json.dumps).map(str.encode),
    st.lists(invalid_calls | json_values, min_size=0, max_size=5).map(json.dumps).map(str.encode),
    invalid_calls.map(lambda c: json.dumps({**c, "jsonrpc": "1.0"}).encode()),
    st.integers(1, 300).map(lambda n: b"[" * n),
    non_finite,
    not_utf8,
    lone_surrogates,
)
# A batch whose answer is known: (member, the id its answer carries, or None for no answer).
batch_members = st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: (v, [None])),
    invalid_calls.map(lambda c: (c, [c["id"]])),
    st.integers().map(lambda n: ({"jsonrpc": "2.0", "method": "status", "id": n}, [n])),
    st.just(({"jsonrpc": "2.0", "method": "status"}, [])),  # a notification
)
known_batches = st.lists(batch_members, min_size=1, max_size=8).map(
    lambda members: (
        json.dumps([m for m, _ in members]).encode(),
        [request_id for _, ids in members for request_id in ids],
    )
)


def strict(line: bytes) -> object:
    """A line as a strict JSON parser reads it: UTF-8, no NaN or Infinity."""

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} sent: {line!r}")

    return json.loads(line.decode("utf-8"), parse_constant=refuse)


def test_fuzzed_requests_get_answers_and_change_nothing(make_daemon):
    daemon = make_daemon()
    with daemon.client() as c:
        c.call("allocate_interface", id="keep")
        before = c.call("list_interfaces")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(daemon.socket)
    reader = conn.makefile("rb")
    counter = iter(range(10**9))

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed.map(lambda line: (line, None)) | known_batches)
    def exchange(case: tuple[bytes, list[object] | None]) -> None:
        line, batch_ids = case
        sentinel = f"sentinel-{next(counter)}"
        conn.sendall(line + b"\n")
        conn.sendall(
            json.dumps({"jsonrpc": "2.0", "method": "status", "id": sentinel}).encode() + b"\n"
        )
        while True:
            answer = strict(reader.readline())
            for response in answer if isinstance(answer, list) else [answer]:
                assert response["jsonrpc"] == "2.0"
                assert ("result" in response) != ("error" in response)
                if "error" in response:
                    assert isinstance(response["error"]["code"], int)
                    assert isinstance(response["error"]["data"]["error"], str)
            if isinstance(answer, dict) and answer.get("id") == sentinel:
                return
            if batch_ids is not None:  # one answer per member that is not a notification
                assert [r["id"] for r in answer] == batch_ids

    exchange()
    conn.close()
    assert daemon.proc.poll() is None
    assert daemon.call("list_interfaces") == before
    assert "Traceback" not in daemon.log()


def connect(path: str) -> socket.socket:
    """A connection, waiting while the listen backlog is full (EAGAIN on Unix sockets)."""
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            assert time.monotonic() < deadline
            time.sleep(0.01)
            continue
        s.settimeout(10)
        return s


def test_a_client_hoarding_connections_does_not_starve_others(make_daemon):
    daemon = make_daemon()
    hoard = []
    for _ in range(1000):
        hoard.append(connect(daemon.socket))
    # every connection over the limit gets one line and EOF; the others stay open, silent
    refused = 0
    deadline = time.monotonic() + 20
    while refused < 1000 - MAX_PER_PROCESS and time.monotonic() < deadline:
        readable, _, _ = select.select(hoard, [], [], 0.5)
        for s in readable:
            line = s.makefile("rb").readline()
            assert json.loads(line)["error"]["data"]["error"] == "too_many_connections"
            hoard.remove(s)
            s.close()
            refused += 1
    assert refused == 1000 - MAX_PER_PROCESS
    assert len(hoard) == MAX_PER_PROCESS
    other = subprocess.run(
        [sys.executable, "-m", "dockernetd.ctl", "--socket", daemon.socket, "--json", "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.returncode == 0 and json.loads(other.stdout)["bridge"] == "docker0"
    for s in hoard:
        s.close()
    # once the daemon has seen the hoard go (EOF on each), this process may connect again
    deadline = time.monotonic() + 10
    while True:
        try:
            assert daemon.call("status")["bridge"] == "docker0"
            break
        except RpcError as exc:
            assert exc.name == "too_many_connections" and time.monotonic() < deadline
            time.sleep(0.05)
