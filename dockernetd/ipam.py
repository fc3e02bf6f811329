"""The IP allocator: Docker 1.4's ipallocator, with the gateway reserved.

Theory of operation (Docker 1.4, ``daemon/networkdriver/ipallocator``):

* The allocatable range of a bridge network ``N`` is ``[N.first + 2, N.last - 1]``:
  the network address, ``first + 1`` and the broadcast address are never handed out.
* ``--fixed-cidr S`` narrows it to ``[S.first + 1, S.last - 1]``, which must lie inside
  the range above and hold more than one address (``RegisterSubnet``).
* A dynamic request takes the first free address *after* the last one handed
  out, wrapping at the end; so a released address comes back only when the
  cursor wraps around to it.
* An explicit request fails with "ip already allocated" first, then with
  "requested ip is out of range"; when it succeeds it moves the cursor.
* Releasing is idempotent and does not move the cursor.

The one change from 1.4: the gateway (the bridge's own address) is allocated
from the start and can never be released, so no container is given it.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface

from .bitmap import Bitmap
from .errors import IpAlreadyAllocated, IpOutOfRange, NoAvailableIps


class BadSubnet(ValueError):
    """A --fixed-cidr that the bridge network cannot hold."""

    def __init__(self) -> None:
        super().__init__("network does not contain specified subnet")


class IpAllocator:
    """Addresses of one bridge network, handed out in Docker 1.4's order."""

    def __init__(self, bridge: IPv4Interface, fixed_cidr: IPv4Network | None = None) -> None:
        network = bridge.network
        first, last = int(network.network_address), int(network.broadcast_address)
        begin, end = first + 2, last - 1
        if fixed_cidr is not None:
            sub_begin = int(fixed_cidr.network_address) + 1
            sub_end = int(fixed_cidr.broadcast_address) - 1
            if not (sub_begin >= begin and sub_end <= end and sub_begin < sub_end):
                raise BadSubnet()
            begin, end = sub_begin, sub_end
        self.gateway = bridge.ip
        self.begin = begin
        self.end = end
        self._bits = Bitmap(max(0, end - begin + 1))
        self._last = begin - 1
        if self._in_range(int(self.gateway)):
            self._bits.set(int(self.gateway) - begin)

    @property
    def capacity(self) -> int:
        """How many addresses containers can hold at most."""
        return self._bits.size - (1 if self._in_range(int(self.gateway)) else 0)

    def request(self, ip: IPv4Address | None = None) -> IPv4Address:
        """Allocate ``ip``, or the next free address when ``ip`` is None."""
        if ip is not None:
            return self._request_explicit(ip)
        found = self._bits.next_clear_after(self._last - self.begin, 0, self._bits.size - 1)
        if found < 0:
            raise NoAvailableIps()
        self._bits.set(found)
        self._last = self.begin + found
        return IPv4Address(self._last)

    def release(self, ip: IPv4Address) -> None:
        """Free ``ip``; unknown or out-of-range addresses and the gateway are ignored."""
        value = int(ip)
        if self._in_range(value) and ip != self.gateway:
            self._bits.clear(value - self.begin)

    def __contains__(self, ip: IPv4Address) -> bool:
        value = int(ip)
        return self._in_range(value) and (value - self.begin) in self._bits

    def _request_explicit(self, ip: IPv4Address) -> IPv4Address:
        value = int(ip)
        if ip in self:
            raise IpAlreadyAllocated(str(ip))
        if not self._in_range(value):
            raise IpOutOfRange(str(ip))
        self._bits.set(value - self.begin)
        self._last = value
        return ip

    def _in_range(self, value: int) -> bool:
        return self.begin <= value <= self.end


class Ip6Allocator:
    """Addresses of an IPv6 subnet, in the same order as IPv4's: after the last one
    handed out, wrapping at the end.  A /64 holds 2**64 addresses, so the taken ones are a
    set, not a bitmap.  The subnet's first address (the subnet-router anycast) and the
    gateway are never handed out; IPv6 has no broadcast, so the last address is."""

    def __init__(self, gateway: IPv6Interface) -> None:
        network = gateway.network
        self.gateway = gateway.ip
        self.begin = int(network.network_address) + 1
        self.end = int(network.broadcast_address)
        self._taken = {int(self.gateway)}
        self._last = self.begin - 1

    @property
    def capacity(self) -> int:
        return self.end - self.begin  # every address but the anycast one and the gateway

    def request(self, ip: IPv6Address | None = None) -> IPv6Address:
        """Allocate ``ip``, or the next free address when ``ip`` is None."""
        if ip is not None:
            value = int(ip)
            if value in self._taken:
                raise IpAlreadyAllocated(str(ip))
            if not self.begin <= value <= self.end:
                raise IpOutOfRange(str(ip))
        else:
            if len(self._taken) > self.end - self.begin:
                raise NoAvailableIps()
            value = self._last
            while True:  # at most as many steps as addresses are taken
                value = value + 1 if value < self.end else self.begin
                if value not in self._taken:
                    break
        self._taken.add(value)
        self._last = value
        return IPv6Address(value)

    def release(self, ip: IPv6Address) -> None:
        """Free ``ip``; unknown addresses and the gateway are ignored."""
        if ip != self.gateway:
            self._taken.discard(int(ip))

    def __contains__(self, ip: IPv6Address) -> bool:
        return int(ip) in self._taken
