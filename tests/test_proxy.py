"""The UDP side of the userland proxy over loopback sockets, on trio's mock clock.

A UDP flow (one client ip:port) has its own socket to the container; after 90 s
without an answer it is forgotten, so the container sees the client's next
datagram come from a new source port.  The clock is jumped by hand, never while
a datagram is on its way or a flow is between two waits.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

import trio
import trio.testing

from dockernetd.network import PortMapping
from dockernetd.proxy import UDP_CONNTRACK_TIMEOUT, ProxySupervisor

LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def test_a_udp_flow_idle_for_90_s_is_forgotten_and_not_before():
    clock = trio.testing.MockClock()
    sources: list[int] = []  # the proxy-side port of each datagram the container got

    async def main() -> None:
        backend = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await backend.bind((LOOPBACK, 0))
        host_port = free_udp_port()
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.bind((LOOPBACK, 0))

        async def echo() -> None:
            while True:
                data, source = await backend.recvfrom(100)
                sources.append(source[1])
                await backend.sendto(data, source)

        async def exchange(message: bytes) -> None:
            await client.sendto(message, (LOOPBACK, host_port))
            assert await client.recv(100) == message
            await trio.testing.wait_all_tasks_blocked()  # the flow waits again, its timer set

        async def idle(seconds: float) -> None:
            clock.jump(seconds)
            await trio.testing.wait_all_tasks_blocked()  # an expired flow is gone

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            mapping = PortMapping(IPv4Address(LOOPBACK), host_port, "udp", backend.getsockname()[1])
            proxy = await ProxySupervisor(nursery).start(mapping, IPv4Address(LOOPBACK))
            await exchange(b"first")
            await idle(UDP_CONNTRACK_TIMEOUT - 1)
            await exchange(b"still the same flow")
            await idle(UDP_CONNTRACK_TIMEOUT + 1)
            await exchange(b"a new flow")
            await proxy.stop()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
    assert sources[0] == sources[1] != sources[2]
