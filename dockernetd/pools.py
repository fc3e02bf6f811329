"""Default address pools: where a network created without a subnet gets one.

Docker (since 1.9, configurable since 18.06) carves networks out of pools, each
a base network split into subnets of one size, taken in order; the first that
overlaps nothing in use wins.  Its defaults are 172.17.0.0/16 … 172.31.0.0/16
as /16s, then 192.168.0.0/16 as /20s; ``--default-address-pool
base=CIDR,size=N`` (repeatable) or the ``daemon.json`` key
``default-address-pools`` replaces them.  Pure: the caller says what is in use.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

#: Smallest subnet worth a network: a gateway and two containers (Docker 1.4's allocator
#: never hands out first + 1 or the broadcast address).
MAX_SUBNET_SIZE = 29
#: The same for IPv6: the gateway and a handful of containers.
MAX_SUBNET_V6_SIZE = 124


@dataclass(frozen=True)
class AddressPool:
    base: IPv4Network
    size: int  # prefix length of each subnet taken from base

    def subnets(self) -> Iterator[IPv4Network]:
        return self.base.subnets(new_prefix=self.size)

    def __str__(self) -> str:
        return f"base={self.base},size={self.size}"


DEFAULT_POOLS: tuple[AddressPool, ...] = (
    *(AddressPool(IPv4Network(f"172.{n}.0.0/16"), 16) for n in range(17, 32)),
    AddressPool(IPv4Network("192.168.0.0/16"), 20),
)


def parse_pool(text: str) -> AddressPool:
    """``base=10.10.0.0/16,size=24`` (Docker's flag form); ValueError with the reason."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, equals, value = part.partition("=")
        if not equals or key not in ("base", "size") or key in fields:
            raise ValueError(f"invalid default address pool {text!r}: want base=CIDR,size=N")
        fields[key] = value
    if set(fields) != {"base", "size"}:
        raise ValueError(f"invalid default address pool {text!r}: want base=CIDR,size=N")
    return pool_of(fields["base"], fields["size"])


def pool_of(base: object, size: object) -> AddressPool:
    """A pool from its two values (flag text or daemon.json values); ValueError if bad."""
    try:
        network = IPv4Network(str(base))
    except ValueError:
        raise ValueError(f"invalid default address pool base {base!r}: not an IPv4 CIDR") from None
    if isinstance(size, bool) or not isinstance(size, int | str) or not str(size).isdigit():
        raise ValueError(f"invalid default address pool size {size!r}: not a number")
    prefix = int(size)
    if not network.prefixlen <= prefix <= MAX_SUBNET_SIZE:
        raise ValueError(
            f"invalid default address pool size {prefix} for base {network}: "
            f"must be at least the base's prefix and at most {MAX_SUBNET_SIZE}"
        )
    return AddressPool(network, prefix)


def choose_subnet(
    pools: Iterable[AddressPool], in_use: Iterable[tuple[IPv4Network, str]]
) -> tuple[IPv4Network | None, list[str]]:
    """The first subnet of the pools overlapping nothing of ``in_use``, and why the ones
    before it were skipped.  ``in_use`` pairs a network with what it is ("route
    10.0.0.0/8", "nameserver 10.0.0.2", "network web"); a clash is named by the
    nearest span, the first given of equal ones.

    Each candidate costs one binary search, however many networks there are, and a
    clash larger than the subnet is stepped over at once: a route 10.0.0.0/8 costs
    one step, not 65,536.
    """
    given = list(in_use)
    order = sorted(range(len(given)), key=lambda i: (given[i][0].network_address, -i))
    spans = [
        (int(given[i][0].network_address), int(given[i][0].broadcast_address), given[i][1])
        for i in order
    ]  # by start; of equal starts the first given last, nearest
    starts = [start for start, _, _ in spans]
    reach: list[tuple[int, str]] = []  # of the spans starting so far: the furthest end, its name
    for _, end, what in spans:
        reach.append(max(reach[-1], (end, what)) if reach else (end, what))
    skipped: list[str] = []
    for pool in pools:
        step = 1 << (32 - pool.size)
        start, last = int(pool.base.network_address), int(pool.base.broadcast_address)
        while start <= last:
            subnet = IPv4Network((start, pool.size))
            before = bisect.bisect_right(starts, start + step - 1)  # spans starting in or before
            if not before or reach[before - 1][0] < start:
                return subnet, skipped
            end, what = reach[before - 1]
            _, nearest_end, nearest = spans[before - 1]
            if nearest_end >= start:  # the closest clash says the most: "network web"
                what = nearest
            past = min(max(start + step, end + 1), last + 1)
            more = -(-past // step) - start // step - 1  # further subnets the clash covers
            skipped.append(f"{subnet}{f' (+{more} more)' if more else ''} overlaps {what}")
            start = -(-past // step) * step  # the next subnet boundary at or after past
    return None, skipped


#: Where the machine's id is (systemd's); a host without one uses its name.
MACHINE_ID = "/etc/machine-id"


def ula_base(machine_id: str) -> IPv6Network:
    """The machine's unique-local /48 (RFC 4193): fd00::/8 and 40 bits of the SHA-256 of
    its id, as Docker 27 derives its default IPv6 pool from the engine's id."""
    digest = hashlib.sha256(machine_id.encode()).digest()
    return IPv6Network((int.from_bytes(b"\xfd" + digest[:5], "big") << 80, 48))


@functools.cache
def machine_ula() -> IPv6Network:
    """This machine's unique-local /48 (read once: the machine id does not change)."""
    return ula_base(read_machine_id())


def read_machine_id(path: str = MACHINE_ID) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()


def choose_subnet_v6(base: IPv6Network, in_use: Iterable[IPv6Network]) -> IPv6Network | None:
    """The first /64 of ``base`` that overlaps no subnet of ``in_use``."""
    used = [network for network in in_use if network.overlaps(base)]
    for subnet in base.subnets(new_prefix=64):
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    return None
