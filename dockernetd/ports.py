"""The host-port allocator: Docker 1.4's portallocator, range-checked.

Theory of operation (Docker 1.4, ``daemon/networkdriver/portallocator``):

* Each (host IP, protocol) pair is a pool of its own: ``0.0.0.0:80/tcp`` and
  ``127.0.0.1:80/tcp`` do not conflict here; the kernel says so later, when the
  proxy binds.
* A dynamic request (port 0) takes the first free port after the last one
  handed out, in 49153-65535, wrapping; the first is 49153.
* An explicit request takes exactly that port or fails with
  "Bind for <ip>:<port> failed: port is already allocated"; it does not move the
  cursor.  Unlike 1.4, ports outside 1-65535 are refused.
"""

from __future__ import annotations

from .bitmap import Bitmap
from .errors import AllPortsAllocated, InvalidParams, PortAlreadyAllocated
from .network import HostAddress

DYNAMIC_PORT_START = 49153
DYNAMIC_PORT_END = 65535
PROTOCOLS = ("tcp", "udp")


class _PortPool:
    def __init__(self) -> None:
        self.used = Bitmap(DYNAMIC_PORT_END + 1)
        self.last = DYNAMIC_PORT_END


class PortAllocator:
    """Host ports per (host IP, protocol)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[HostAddress, str], _PortPool] = {}

    def request(self, host_ip: HostAddress, proto: str, port: int = 0) -> int:
        """Allocate ``port`` on ``host_ip``/``proto``, or the next dynamic one if 0."""
        pool = self._pool(host_ip, proto, create=True)
        assert pool is not None
        if port:
            _check_port(port)
            if port in pool.used:
                raise PortAlreadyAllocated(str(host_ip), port, proto)
            pool.used.set(port)
            return port
        found = pool.used.next_clear_after(pool.last, DYNAMIC_PORT_START, DYNAMIC_PORT_END)
        if found < 0:
            raise AllPortsAllocated(str(host_ip), proto)
        pool.used.set(found)
        pool.last = found
        return found

    def release(self, host_ip: HostAddress, proto: str, port: int) -> None:
        """Free a port; idempotent, unknown IPs and ports are ignored."""
        pool = self._pool(host_ip, proto, create=False)
        if pool is not None and 1 <= port <= DYNAMIC_PORT_END:
            pool.used.clear(port)

    def _pool(self, host_ip: HostAddress, proto: str, *, create: bool) -> _PortPool | None:
        if proto not in PROTOCOLS:
            raise InvalidParams(f"Bad parameter: unknown protocol {proto}", param="proto")
        key = (host_ip, proto)
        pool = self._pools.get(key)
        if pool is None and create:
            pool = self._pools[key] = _PortPool()
        return pool


def _check_port(port: int) -> None:
    if not 1 <= port <= DYNAMIC_PORT_END:
        raise InvalidParams(
            f"Bad parameter: invalid port {port}: must be between 1 and 65535", param="port"
        )
