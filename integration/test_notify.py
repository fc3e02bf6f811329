"""sd_notify without systemd: a datagram socket stands in for it, as systemd reads it."""

import socket

import pytest

from netns import Daemon


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    yield path, s
    s.close()


def messages_until(sock: socket.socket, wanted: str) -> list[str]:
    got = []
    while not any(wanted in m for m in got):
        got.append(sock.recv(4096).decode())
    return got


def test_ready_after_init_and_serving_then_watchdog_then_stopping(
    make_daemon, notify_socket, monkeypatch
):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    daemon: Daemon = make_daemon()  # started, and answering
    first = sock.recv(4096).decode()
    assert first.startswith("READY=1\nSTATUS=docker0 172.17.42.1/16, 0 interfaces, 0 ports")
    assert "serving JSON-RPC" in daemon.log()  # the socket was served before READY
    assert "WATCHDOG=1" in messages_until(sock, "WATCHDOG=1")[-1]
    daemon.call("allocate_interface", id="a")
    assert any(
        "1 interfaces" in m
        for m in messages_until(sock, "STATUS=docker0 172.17.42.1/16, 1 interfaces")
    )
    assert daemon.stop() == 0
    assert "STOPPING=1" in messages_until(sock, "STOPPING=1")[-1]


def test_failed_start_reports_its_reason_as_status(make_daemon, notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    code, _ = make_daemon("-b", "br9", start=False).run_to_exit()
    assert code == 1
    assert sock.recv(4096).decode() == "STATUS=failed to start: br9: no such network interface"
