"""The endpoints of the proxy benchmark, run inside namespaces by bench/proxy.py.

traffic.py serve SINK_PORT ECHO_PORT     # in the container: prints "ready"
traffic.py throughput HOST PORT MIB      # prints seconds to send MIB and get the count back
traffic.py connections HOST PORT COUNT   # prints seconds for COUNT connect/echo/close
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable

CHUNK = 1 << 20


def sink(conn: socket.socket) -> None:
    """Read until EOF, then answer with the byte count: the sender knows all arrived."""
    buffer = bytearray(CHUNK)
    total = 0
    with conn:
        while received := conn.recv_into(buffer):
            total += received
        conn.sendall(str(total).encode())


def echo_once(conn: socket.socket) -> None:
    with conn:
        conn.sendall(conn.recv(64))


def serve(port: int, handler: Callable[[socket.socket], None]) -> None:
    listener = socket.create_server(("0.0.0.0", port), backlog=1024)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def throughput(host: str, port: int, mib: int) -> float:
    payload = memoryview(bytes(CHUNK))
    t = time.perf_counter()
    with socket.create_connection((host, port)) as conn:
        for _ in range(mib):
            conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        assert int(conn.recv(64)) == mib * CHUNK
    return time.perf_counter() - t


def connections(host: str, port: int, count: int) -> float:
    t = time.perf_counter()
    for _ in range(count):
        with socket.create_connection((host, port)) as conn:
            conn.sendall(b"ping")
            assert conn.recv(64) == b"ping"
    return time.perf_counter() - t


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "serve":
        threading.Thread(target=serve, args=(int(args[1]), echo_once), daemon=True).start()
        print("ready", flush=True)
        serve(int(args[0]), sink)
    elif mode == "throughput":
        print(throughput(args[0], int(args[1]), int(args[2])))
    else:
        print(connections(args[0], int(args[1]), int(args[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
