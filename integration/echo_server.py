"""A TCP or UDP server for the tests: answers ``<tag>:<client ip>:<message>``.

The client IP tells a test which path a packet took: DNAT keeps the real client's
address, the userland proxy shows up as the bridge's gateway.

Run inside a container namespace: ``python echo_server.py tcp|udp PORT TAG [ipv6]``
(``ipv6``: on [::], IPv6 only; else on 0.0.0.0).  It prints "ready" once it listens,
and serves until killed.
"""

import socket
import sys
import threading

ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def serve_tcp(port: int, tag: bytes, family: socket.AddressFamily) -> None:
    server = socket.create_server((ANY[family], port), family=family, reuse_port=False)
    print("ready", flush=True)
    while True:
        conn, client = server.accept()
        threading.Thread(target=answer_tcp, args=(conn, client, tag), daemon=True).start()


def answer_tcp(conn: socket.socket, client: tuple[str, int], tag: bytes) -> None:
    with conn:
        data = b""
        while chunk := conn.recv(65536):  # read to EOF: proves the half-close got through
            data += chunk
        conn.sendall(b":".join([tag, client[0].encode(), data]))


def serve_udp(port: int, tag: bytes, family: socket.AddressFamily) -> None:
    server = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((ANY[family], port))
    print("ready", flush=True)
    while True:
        data, client = server.recvfrom(65535)
        server.sendto(b":".join([tag, client[0].encode(), data]), client)


if __name__ == "__main__":
    proto, port, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    family = socket.AF_INET6 if sys.argv[4:] == ["ipv6"] else socket.AF_INET
    (serve_tcp if proto == "tcp" else serve_udp)(port, tag, family)
