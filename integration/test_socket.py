"""The JSON-RPC socket for real: many clients, hostile clients, permissions, lifecycle."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from dockernetd.client import Client, RpcError

from netns import Netns


def test_concurrent_clients_never_get_the_same_ip(make_daemon):
    daemon = make_daemon("--bip", "10.50.0.1/22")  # 1021 addresses for containers
    results: dict[str, str] = {}
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with daemon.client() as c:
                for i in range(40):
                    cid = f"w{n}-{i}"
                    results[cid] = c.call("allocate_interface", id=cid)["ip"]
                    if i % 3 == 0:  # churn: give some back while others allocate
                        c.call("release_interface", id=cid)
                        del results[cid]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    held = daemon.call("list_interfaces")
    assert {i["id"]: i["ip"] for i in held} == results
    assert len(set(results.values())) == len(results) == 16 * 26
    assert daemon.call("status")["interfaces"] == len(results)


def test_docker_allocation_order_over_the_socket(make_daemon):
    daemon = make_daemon("--bip", "192.168.0.1/24")
    with daemon.client() as c:
        ips = [c.call("allocate_interface", id=f"c{i}")["ip"] for i in range(2, 10)]
        assert ips == [f"192.168.0.{i}" for i in range(2, 10)]
        assert c.call("release_interface", id="c9")["ip"] == "192.168.0.9"
        assert c.call("allocate_interface", id="c10")["ip"] == "192.168.0.10"


def raw(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_line(s: socket.socket) -> Any:
    """The next answer line, parsed as a strict JSON parser would (no NaN, no Infinity)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        data += chunk

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} is not JSON: {data!r}")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


def test_hostile_clients_do_not_disturb_others(make_daemon):
    daemon = make_daemon()
    idle = raw(daemon.socket)
    idle.sendall(b'{"jsonrpc":"2.0","method":"sta')  # half a request, then silence

    garbage = raw(daemon.socket)
    garbage.sendall(os.urandom(4096).replace(b"\n", b"x") + b"\n")
    assert read_line(garbage)["error"]["code"] == -32700

    huge = raw(daemon.socket)
    huge.sendall(b"[" + b" " * (10 * 1024 * 1024) + b"]\n")
    assert read_line(huge)["error"]["data"] == {
        "error": "invalid_request",
        "detail": "line longer than 1048576 bytes",
    }
    huge.sendall(b'{"jsonrpc":"2.0","method":"status","id":2}\n')  # the connection is still usable
    assert read_line(huge)["id"] == 2

    gone = raw(daemon.socket)
    gone.sendall(
        b'{"jsonrpc":"2.0","method":"allocate_interface","params":{"id":"ghost"},"id":1}\n'
    )
    gone.close()  # disconnects before reading the answer

    with daemon.client() as c:
        assert c.call("allocate_interface", id="fine")["ip"].startswith("172.17.")
    for s in (idle, garbage, huge):
        s.close()
    assert daemon.proc.poll() is None
    assert "Traceback" not in daemon.log()


def test_strict_json_rpc_over_the_socket(make_daemon):
    daemon = make_daemon()
    s = raw(daemon.socket)
    status = b'{"jsonrpc":"2.0","method":"status","id":"s"}'
    allocate = b'{"jsonrpc":"2.0","method":"allocate_interface","params":{"id":"batched"},"id":2}'
    s.sendall(b"[1," + allocate + b',{"jsonrpc":"1.0","method":"status","id":3},' + status + b"]\n")
    answers = read_line(s)
    assert [(a["id"], a.get("error", {}).get("code")) for a in answers] == [
        (None, -32600),
        (2, None),
        (None, -32600),
        ("s", None),
    ]
    assert answers[1]["result"]["ip"] == "172.17.0.2"  # the valid members ran

    s.sendall(b"[]\n")
    assert read_line(s)["error"]["code"] == -32600
    for line in (
        b'{"jsonrpc":"2.0","method":"status","id":-Infinity}',
        b'{"jsonrpc":"2.0","method":"status","params":{"n":NaN},"id":1}',
        b'{"jsonrpc":"2.0","method":"status","id":"\xc3(x"}',
        b'{"jsonrpc":"2.0","method":"\xed\xa0\x80","id":1}',
    ):
        s.sendall(line + b"\n")
        answer = read_line(s)
        assert (answer["id"], answer["error"]["code"]) == (None, -32700), line
    s.sendall(status + b"\n")  # the connection is still usable
    assert read_line(s)["result"]["interfaces"] == 1
    s.close()
    assert daemon.call("list_interfaces")[0]["id"] == "batched"


def test_socket_mode_group_and_stale_file(host: Netns, make_daemon, tmp_path):
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # the file stays: what a killed daemon leaves behind
    daemon = make_daemon("--group", "nogroup", socket=str(stale))
    info = os.stat(stale)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert (info.st_uid, info.st_gid) == (0, 65534)
    assert "replaced stale socket" in daemon.log()


def test_other_users_are_refused_by_permissions(make_daemon, tmp_path):
    os.chmod(tmp_path, 0o755)  # let the other user reach the socket file, not through it
    daemon = make_daemon()
    probe = (
        "import socket; s = socket.socket(socket.AF_UNIX);\n"
        f"try:\n s.connect({daemon.socket!r}); print('connected')\n"
        "except PermissionError: print('refused')"
    )
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "refused", out.stderr


def test_a_second_daemon_on_a_live_socket_is_refused(make_daemon):
    first = make_daemon()
    code, err = make_daemon(socket=first.socket, start=False).run_to_exit()
    assert code == 1
    assert f"another daemon is already serving on {first.socket}" in err
    assert first.call("status")["bridge"] == "docker0"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_removes_the_socket(make_daemon, sig):
    daemon = make_daemon()
    with daemon.client() as c:
        c.call("allocate_interface", id="c1")
        assert daemon.stop(sig) == 0
    assert not os.path.exists(daemon.socket)
    assert f"{signal.Signals(sig).name}: shutting down" in daemon.log()


def test_peer_credentials_are_logged_with_each_job(make_daemon):
    daemon = make_daemon()
    daemon.call("allocate_interface", id="who")
    time.sleep(0.1)
    line = next(ln for ln in daemon.log().splitlines() if "allocate_interface(who): ok" in ln)
    assert f"PEER_UID=0 PEER_PID={os.getpid()}" in line
    assert "CONTAINER_ID=who" in line and "OUTCOME=ok" in line and "DURATION_US=" in line


def test_dockernetctl_against_the_daemon(make_daemon):
    daemon = make_daemon()
    ctl = [sys.executable, "-m", "dockernetd.ctl", "--socket", daemon.socket]
    out = subprocess.run(
        [*ctl, "--json", "allocate-interface", "web1"], capture_output=True, text=True
    )
    assert out.returncode == 0 and json.loads(out.stdout)["ip"] == "172.17.0.2"
    out = subprocess.run([*ctl, "release-interface", "nobody"], capture_output=True, text=True)
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "dockernetctl: error 1004: No network information to release for nobody"
    )
    out = subprocess.run([*ctl, "list"], capture_output=True, text=True)
    assert "web1" in out.stdout and "172.17.0.2" in out.stdout


def test_client_raises_rpc_errors(make_daemon):
    daemon = make_daemon()
    with Client(daemon.socket) as c, pytest.raises(RpcError) as exc:
        c.call("release_interface", id="nobody")
    assert (exc.value.code, exc.value.name) == (1004, "unknown_container")
