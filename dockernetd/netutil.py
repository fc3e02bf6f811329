"""Address arithmetic and the choice of the bridge subnet, with no I/O.

Docker 1.4's ``configureBridge`` walked twelve hard-coded candidates and took
the first whose network overlapped no IPv4 nameserver and no route; this module
holds that list, the overlap rule (``NetworkOverlaps``), the resolv.conf
parser, and the MAC address rules.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_interface

#: Docker 1.4's candidate bridge addresses, in the order it tried them.
BRIDGE_CANDIDATES: tuple[str, ...] = (
    "172.17.42.1/16",
    "10.0.42.1/16",
    "10.1.42.1/16",
    "10.42.42.1/16",
    "172.16.42.1/24",
    "172.16.43.1/24",
    "172.16.44.1/24",
    "10.0.42.1/24",
    "10.0.43.1/24",
    "192.168.42.1/24",
    "192.168.43.1/24",
    "192.168.44.1/24",
)

_NAMESERVER = re.compile(r"^\s*nameserver\s*(([0-9]+\.){3}([0-9]+))\s*$")


def parse_cidr(text: str) -> IPv4Interface:
    """An IPv4 address with its prefix (``172.17.42.1/16``); Go's error text otherwise."""
    try:
        if "/" not in text:
            raise ValueError(text)
        iface = ip_interface(text)
    except ValueError:
        raise ValueError(f"invalid CIDR address: {text}") from None
    if not isinstance(iface, IPv4Interface):
        raise ValueError(f"invalid CIDR address: {text} (only IPv4 is supported)")
    return iface


def parse_ipv4(text: str) -> IPv4Address:
    """A dotted-quad IPv4 address; ValueError otherwise."""
    address = ip_address(text)
    if not isinstance(address, IPv4Address):
        raise ValueError(f"{text} is not an IPv4 address")
    return address


def parse_host_port(text: str) -> tuple[str, int]:
    """``IPv4:PORT`` or ``[IPv6]:PORT`` as (address, port), port 0-65535; else ValueError."""
    host, colon, port = text.rpartition(":")
    if not (colon and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"{text}: no port")
    bracketed = host.startswith("[") and host.endswith("]")
    address = ip_address(host[1:-1] if bracketed else host)
    if bracketed != (address.version == 6):
        raise ValueError(f"{text}: IPv6 addresses go in brackets, IPv4 ones do not")
    return str(address), int(port)


def nameservers(resolv_conf: str) -> list[IPv4Network]:
    """The IPv4 nameservers of a resolv.conf text, as /32 networks, in file order."""
    found = []
    for line in resolv_conf.splitlines():
        match = _NAMESERVER.match(line.split("#", 1)[0])
        if match:
            try:
                found.append(IPv4Network(f"{match.group(1)}/32"))
            except ValueError:
                continue  # 999.1.1.1 matches the regex; Docker skipped the candidate, we skip it
    return found


def overlaps(a: IPv4Network, b: IPv4Network) -> bool:
    """Docker's NetworkOverlaps: either network contains the other's network address."""
    return a.network_address in b or b.network_address in a


@dataclass(frozen=True)
class Rejection:
    candidate: str
    reason: str


def choose_bridge_address(
    resolvers: Iterable[IPv4Network],
    routes: Iterable[IPv4Network],
    candidates: Iterable[str] = BRIDGE_CANDIDATES,
) -> tuple[IPv4Interface | None, list[Rejection]]:
    """The first candidate whose network overlaps no nameserver and no route.

    Returns the chosen address (or None) and why each earlier candidate was rejected.
    """
    resolvers = list(resolvers)
    routes = [r for r in routes if r.prefixlen > 0]  # routes with no destination are skipped
    rejected = []
    for candidate in candidates:
        network = parse_cidr(candidate).network
        if server := next((n for n in resolvers if overlaps(n, network)), None):
            rejected.append(Rejection(candidate, f"overlaps nameserver {server.network_address}"))
        elif route := next((r for r in routes if overlaps(r, network)), None):
            rejected.append(Rejection(candidate, f"overlaps route {route}"))
        else:
            return parse_cidr(candidate), rejected
    return None, rejected


def random_mac(rng: random.Random | None = None) -> str:
    """A random unicast, locally administered MAC (Docker 1.x gave the bridge one)."""
    rng = rng or random.SystemRandom()
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] & ~0x01 & 0xFF) | 0x02
    return format_mac(bytes(octets))


def mac_for_ip(ip: IPv4Address) -> str:
    """The container MAC Docker derived from its IPv4 address: ``02:42:`` + the 4 bytes."""
    return format_mac(b"\x02\x42" + ip.packed)


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_mac(text: str) -> str:
    """A 6-byte MAC written with ``:`` or ``-``, lowercased; ValueError otherwise."""
    parts = re.split(r"[:-]", text)
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9A-Fa-f]{2}", p) for p in parts):
        raise ValueError(f"{text} is not a MAC address")
    raw = bytes(int(p, 16) for p in parts)
    if raw[0] & 0x01:
        raise ValueError(f"{text} is a multicast MAC address")
    return format_mac(raw)
