"""Many hosts: the cluster's pure side (settings, the store's layout, subnet choice, routes).

With ``--cluster-store etcd://…`` each daemon leases one subnet of ``--cluster-network``
for its default bridge, and routes every other host's subnet via that host's
``--cluster-advertise`` address (flannel's host-gw: the hosts share an L2 segment).

The store holds one key per leased subnet, created only if absent (an etcd transaction)
and bound to an etcd lease that its daemon keeps alive::

    /dockernetd/cluster/<pool>/subnets/10.200.3.0-24  ->  {"advertise": "192.0.2.3",
                                                          "subnet": "10.200.3.0/24",
                                                          "since": 1764640000.0}

A key is a subnet, so two daemons racing for one subnet cannot both create it; the
value names the holder by its advertise address (hosts may share a machine id), which
is how a restarted daemon finds its subnet again while its lease lives.  A host that
dies stops keeping its lease alive: etcd deletes the key after the TTL, and every other
daemon, watching the prefix, deletes its route.

The trio side (the etcd client, the lease's upkeep, the watch) is cluster_member.py.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

DEFAULT_SUBNET_SIZE = 24
#: Docker 1.12's discovery defaults: a heartbeat every 20 s, a TTL of three heartbeats.
DEFAULT_HEARTBEAT = 20
TTL_FACTOR = 3
STORE_OPTIONS = ("discovery.heartbeat", "discovery.ttl")


@dataclass(frozen=True)
class ClusterSettings:
    """The cluster flags, parsed: where the store is, who we are, what we lease from."""

    endpoints: tuple[tuple[str, int], ...]  # etcd's client URLs, as (host, port)
    advertise: IPv4Address  # what other hosts route our subnet via
    pool: IPv4Network
    subnet_size: int
    ttl: int  # seconds an etcd lease outlives its last keepalive
    heartbeat: int  # seconds between keepalives

    @property
    def prefix(self) -> str:
        """The keys of this pool: daemons of different pools share a store, not subnets."""
        return f"/dockernetd/cluster/{_key_part(self.pool)}/subnets/"

    def key(self, subnet: IPv4Network) -> str:
        return self.prefix + _key_part(subnet)

    def urls(self) -> list[str]:
        return [f"http://{host}:{port}" for host, port in self.endpoints]


def _key_part(network: IPv4Network) -> str:
    return f"{network.network_address}-{network.prefixlen}"


def parse_store(text: str) -> tuple[tuple[str, int], ...]:
    """``etcd://HOST:PORT[,HOST:PORT…]`` as endpoints; ValueError saying what is wrong."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme != "etcd":
        raise ValueError(f"unsupported cluster store {text!r}: want etcd://HOST:PORT[,HOST:PORT…]")
    endpoints = []
    for part in rest.split(","):
        host, colon, port = part.rpartition(":")
        if not (host and colon and port.isdigit() and 0 < int(port) <= 65535):
            raise ValueError(f"invalid cluster store address {part!r}: want HOST:PORT")
        endpoints.append((host, int(port)))
    return tuple(endpoints)


def parse_store_options(options: Mapping[str, str]) -> tuple[int, int]:
    """``discovery.heartbeat`` and ``discovery.ttl`` as Docker 1.12 read them: (ttl,
    heartbeat) in seconds.  Either one alone sets the other (ttl = 3 heartbeats)."""
    unknown = sorted(set(options) - set(STORE_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown cluster-store-opt {unknown[0]!r}: known are {', '.join(STORE_OPTIONS)}"
        )
    heartbeat, ttl = DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT * TTL_FACTOR
    if "discovery.heartbeat" in options:
        heartbeat = _positive(options, "discovery.heartbeat")
        ttl = heartbeat * TTL_FACTOR
    if "discovery.ttl" in options:
        ttl = _positive(options, "discovery.ttl")
        if "discovery.heartbeat" not in options:
            heartbeat = ttl // TTL_FACTOR
        if ttl <= heartbeat:
            raise ValueError("discovery.ttl timer must be greater than discovery.heartbeat")
    if heartbeat <= 0:  # a ttl under 3 s leaves no whole second between keepalives
        raise ValueError("discovery.heartbeat must be positive")
    return ttl, heartbeat


def _positive(options: Mapping[str, str], name: str) -> int:
    text = options[name]
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{name} must be positive")
    return int(text)


@dataclass(frozen=True)
class HostLease:
    """One host's subnet, as the store holds it."""

    subnet: IPv4Network
    advertise: IPv4Address
    since: float  # when it was first leased (seconds since the epoch)
    lease_id: int  # the etcd lease the key is bound to

    def value(self) -> str:
        return json.dumps(
            {"advertise": str(self.advertise), "subnet": str(self.subnet), "since": self.since}
        )

    def public(self, now: float) -> dict[str, Any]:
        return {
            "subnet": str(self.subnet),
            "advertise": str(self.advertise),
            "age_s": round(max(0.0, now - self.since), 1),
        }


def lease_of(value: bytes, lease_id: int) -> HostLease | None:
    """A key's value as a HostLease; None for what is not one (written by something else)."""
    try:
        raw = json.loads(value)
        return HostLease(
            IPv4Network(raw["subnet"]),
            IPv4Address(raw["advertise"]),
            float(raw["since"]),
            lease_id,
        )
    except (ValueError, KeyError, TypeError):
        return None


def candidates(settings: ClusterSettings, taken: Iterable[IPv4Network]) -> list[IPv4Network]:
    """The pool's free subnets, in the order this host tries them: from a place that
    depends on its advertise address, so that daemons starting together mostly try
    different subnets first (and a host whose lease expired tends to get its old one)."""
    subnets = list(settings.pool.subnets(new_prefix=settings.subnet_size))
    held = set(taken)
    start = zlib.crc32(settings.advertise.packed) % len(subnets)
    ordered = subnets[start:] + subnets[:start]
    return [subnet for subnet in ordered if subnet not in held]


def routes_wanted(
    settings: ClusterSettings, leases: Iterable[HostLease]
) -> dict[IPv4Network, IPv4Address]:
    """Every other host's subnet and the address to route it via."""
    return {
        lease.subnet: lease.advertise for lease in leases if lease.advertise != settings.advertise
    }


def route_changes(
    current: Mapping[IPv4Network, IPv4Address], wanted: Mapping[IPv4Network, IPv4Address]
) -> tuple[dict[IPv4Network, IPv4Address], list[IPv4Network]]:
    """What to (re)place and what to delete to go from ``current`` to ``wanted``."""
    place = {subnet: via for subnet, via in wanted.items() if current.get(subnet) != via}
    delete = [subnet for subnet in current if subnet not in wanted]
    return place, delete
