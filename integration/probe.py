"""A one-shot TCP or UDP client for the tests, run inside a namespace.

``python probe.py tcp|udp HOST PORT MESSAGE [SOURCE_PORT]`` prints the answer, or
``ERR <reason>`` and exits 1.  TCP sends the message, half-closes, and reads to EOF.
"""

import os
import socket
import sys

TIMEOUT = float(os.environ.get("PROBE_TIMEOUT", "3"))


def main() -> int:
    proto, host, port, message = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    source_port = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, kind)
    s.settimeout(TIMEOUT)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if source_port:
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
        if proto == "tcp":
            s.connect((host, port))
            s.sendall(message)
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        else:
            s.sendto(message, (host, port))
            answer, _ = s.recvfrom(65535)
    except OSError as exc:
        print(f"ERR {exc}")
        return 1
    print(answer.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
