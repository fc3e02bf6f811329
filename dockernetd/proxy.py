"""The userland proxy: published ports relayed to containers, inside the daemon.

Docker 1.x started one ``docker-proxy`` process per published port (1,000 ports:
1,000 processes, gigabytes of RSS).  Here each mapping is one trio task in the
daemon's proxy nursery, holding one listening socket:

* TCP: each accepted client gets a connection to the container and two pumps,
  one per direction; when one side sends EOF the other side's write half is
  shut down (half-close), and a reset on either side ends both.
* UDP: each client (ip, port) gets its own connected socket to the container and
  a reply task that sends the container's answers back through the host socket;
  a flow idle for 90 s is forgotten; ECONNREFUSED (nothing listening in the
  container yet) is ignored, as Docker did.

The proxy is what answers on 127.0.0.1 (the nat OUTPUT jump skips loopback) and
the guard of the host port: the socket is bound before any rule points at it.  A port
published on 0.0.0.0 listens on [::] for both families (see _listening_socket).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

import trio

from .metrics import ProxyCounts
from .network import HostAddress, PortMapping

log = logging.getLogger("dockernetd.proxy")

UDP_CONNTRACK_TIMEOUT = 90.0
UDP_BUFFER = 65507
TCP_CHUNK = 65536
DIAL_TIMEOUT = 10.0
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class ProxyError(Exception):
    """The proxy could not bind its host port; the text is Go's ``listen`` error."""


@dataclass
class Proxy:
    mapping: PortMapping
    container_ip: IPv4Address
    counts: ProxyCounts = field(default_factory=ProxyCounts, repr=False)
    _scope: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)
    _stopped: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    @property
    def backend(self) -> tuple[str, int]:
        return str(self.container_ip), self.mapping.container_port

    def bind(self) -> socket.socket:
        proto, host_ip, host_port = self.mapping.proto, self.mapping.host_ip, self.mapping.host_port
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock, address = _listening_socket(host_ip, kind)
        try:
            if proto == "tcp":  # as Go's net.Listen: rebind past TIME_WAIT
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, host_port))
            if proto == "tcp":
                sock.listen(512)
        except OSError as exc:
            sock.close()
            reason = (exc.strerror or str(exc)).lower()
            raise ProxyError(f"listen {proto} {host_ip}:{host_port}: bind: {reason}") from None
        sock.setblocking(False)
        return sock

    async def serve(
        self, sock: socket.socket, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Relay until stopped; the socket is closed when this returns."""
        try:
            with self._scope, trio.socket.from_stdlib_socket(sock) as tsock:
                task_status.started()
                # Most proxies of a range never see a client: the first one is waited for
                # before the relaying's nursery is made and accept is tried (at a boot with
                # 10,000 proxies, that is 0.3 s less before the first answer).
                await trio.lowlevel.wait_readable(sock)
                if self.mapping.proto == "tcp":
                    await self._serve_tcp(tsock)
                else:
                    await self._serve_udp(tsock)
        except Exception:  # one broken proxy must not take the daemon down; verify sees it
            m = self.mapping
            log.exception("proxy %s:%d/%s failed", m.host_ip, m.host_port, m.proto)
        finally:
            self._stopped.set()

    def cancel(self) -> None:
        """Ask it to stop relaying (``stopped`` then waits for its sockets to be closed)."""
        self._scope.cancel()

    async def stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop relaying, close every socket of this proxy, and return once they are closed."""
        self.cancel()
        await self.stopped()

    # -- TCP ----------------------------------------------------------------------------

    async def _serve_tcp(self, tsock: Any) -> None:
        async with trio.open_nursery() as connections:
            while True:
                try:
                    conn, _ = await tsock.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                        raise
                    log.warning("proxy %s: accept: %s; retrying", self, exc.strerror)
                    await trio.sleep(0.1)
                    continue
                connections.start_soon(self._relay_tcp, trio.SocketStream(conn))

    async def _relay_tcp(self, client: trio.SocketStream) -> None:
        async with client:
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    backend = await trio.open_tcp_stream(*self.backend)
            except (OSError, trio.TooSlowError) as exc:
                log.warning("Can't forward traffic to backend tcp/%s:%d: %s", *self.backend, exc)
                return
            self.counts.relayed["tcp"] += 1
            self.counts.open["tcp"] += 1
            try:
                async with backend, trio.open_nursery() as pumps:
                    pumps.start_soon(_pump, client, backend, pumps.cancel_scope)
                    pumps.start_soon(_pump, backend, client, pumps.cancel_scope)
            finally:
                self.counts.open["tcp"] -= 1

    # -- UDP ----------------------------------------------------------------------------

    async def _serve_udp(self, tsock: Any) -> None:
        flows: dict[tuple[str, int], Any] = {}
        async with trio.open_nursery() as replies:
            while True:
                data, client = await tsock.recvfrom(UDP_BUFFER)
                flow = flows.get(client)
                if flow is None:
                    flow = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    try:
                        await flow.connect(self.backend)
                    except OSError as exc:
                        flow.close()
                        log.warning("Can't proxy a datagram to udp/%s:%d: %s", *self.backend, exc)
                        continue
                    flows[client] = flow
                    self.counts.relayed["udp"] += 1
                    self.counts.open["udp"] += 1
                    replies.start_soon(self._udp_replies, tsock, flow, client, flows)
                with contextlib.suppress(ConnectionRefusedError):  # an earlier datagram's ICMP
                    await flow.send(data)

    async def _udp_replies(
        self, tsock: Any, flow: Any, client: tuple[str, int], flows: dict[tuple[str, int], Any]
    ) -> None:
        try:
            while True:
                with trio.move_on_after(UDP_CONNTRACK_TIMEOUT) as idle:
                    try:
                        data = await flow.recv(UDP_BUFFER)
                    except ConnectionRefusedError:
                        continue  # nothing listening in the container yet
                    await tsock.sendto(data, client)
                if idle.cancelled_caught:
                    break
        except OSError as exc:
            log.debug("udp flow %s to %s:%d ended: %s", client, *self.backend, exc)
        finally:
            flows.pop(client, None)
            flow.close()
            self.counts.open["udp"] -= 1


def _listening_socket(host_ip: HostAddress, kind: int) -> tuple[socket.socket, str]:
    """The socket for ``host_ip``, and the address to bind it to.  The unspecified address
    (0.0.0.0) gets one IPv6 socket on [::] that takes IPv4 too (IPV6_V6ONLY off): the port
    is published on both families with one number, as Docker 27's docker-proxy does, and an
    IPv6 client (``[::1]:port``, a host IPv6 address) reaches the IPv4 container through it.
    Where the kernel has no IPv6, IPv4 alone.  An IPv6 address is IPv6's alone."""
    if host_ip.version == 6:
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return sock, str(host_ip)
    if host_ip.packed == bytes(4):
        try:
            sock = socket.socket(socket.AF_INET6, kind)
        except OSError:  # EAFNOSUPPORT: booted with ipv6.disable=1
            pass
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return sock, "::"
    return socket.socket(socket.AF_INET, kind), str(host_ip)


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, pair: trio.CancelScope) -> None:
    """Copy one direction; EOF becomes a half-close, a broken side ends both directions."""
    try:
        while data := await src.receive_some(TCP_CHUNK):
            await dst.send_all(data)
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pair.cancel()


class ProxySupervisor:
    """Starts and stops proxies as tasks of one nursery that lives as long as the daemon."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.counts = ProxyCounts()  # of every proxy started here

    async def start(self, mapping: PortMapping, container_ip: IPv4Address) -> Proxy:
        """Bind the host port (ProxyError if it cannot) and start relaying.

        The socket listens once bound, so the kernel queues connections before the
        relaying task first runs: no start handshake to wait for (it costs a scheduling
        round per proxy, 0.1 ms: a tenth of a second for a range of 1,000)."""
        proxy = Proxy(mapping, container_ip, self.counts)
        sock = proxy.bind()
        self._nursery.start_soon(proxy.serve, sock)
        return proxy
