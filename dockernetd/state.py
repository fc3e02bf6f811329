"""The durable record of what the daemon handed out, so a restart loses nothing.

Theory of operation: every committed change (a network, an endpoint, a port
mapping, a link, and their removals: one typed record each, below) is one
line appended to ``state.jsonl`` and made durable (``fdatasync``) before the
client is answered.  A line is ``<crc32 hex> <json>``, so a torn or corrupted
line is recognised and dropped at load, never half-applied.  The file lives
under ``/run/dockernetd``: tmpfs, the same lifetime as the bridge and the rules
it describes, so a reboot starts clean.  When the log has grown to several
times the live entries, it is compacted: the live entries are written to a new
file, fsync'd, and renamed over
the old one (atomic), so a crash at any moment leaves either file whole.

:class:`Snapshot` is the pure part: the state a sequence of records produces.
Handlers write records and restore reads them through the same types; only
:func:`to_json` and :func:`from_json` know the JSON.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, ip_address
from typing import Any

from .netutil import parse_cidr, parse_ipv4, parse_mac
from .network import (
    DEFAULT_NETWORK,
    Attachment,
    Endpoint,
    HostPort,
    Link,
    NetworkSpec,
    PortMapping,
)

log = logging.getLogger("dockernetd.state")

STATE_FILE = "state.jsonl"
COMPACT_MIN_LINES = 1000
COMPACT_RATIO = 4


@dataclass(frozen=True)
class NetworkCreated:
    spec: NetworkSpec


@dataclass(frozen=True)
class NetworkDeleted:
    name: str


@dataclass(frozen=True)
class Joined:
    """A container's endpoint on a network, at its address and MAC."""

    network: str
    container_id: str
    ip: IPv4Address
    mac_address: str
    attachment: Attachment | None = None
    ipv6: IPv6Address | None = None

    @staticmethod
    def of(endpoint: Endpoint) -> Joined:
        return Joined(
            endpoint.network,
            endpoint.container_id,
            endpoint.ip,
            endpoint.mac_address,
            endpoint.attachment,
            endpoint.ipv6,
        )


@dataclass(frozen=True)
class Left:
    """An endpoint released, with every port published through it."""

    network: str
    container_id: str


@dataclass(frozen=True)
class Published:
    network: str
    container_id: str
    mapping: PortMapping


@dataclass(frozen=True)
class Unpublished:
    """A published port taken back while its endpoint stays (Docker's
    RevokeExternalConnectivity)."""

    network: str
    container_id: str
    mapping: PortMapping


@dataclass(frozen=True)
class Linked:
    link: Link


@dataclass(frozen=True)
class Unlinked:
    link: Link


Record = (
    NetworkCreated | NetworkDeleted | Joined | Left | Published | Unpublished | Linked | Unlinked
)


def to_json(record: Record) -> dict[str, Any]:
    """A record as the line's JSON object (``t`` says which)."""
    match record:
        case NetworkCreated(spec):
            created = {"t": "net", **spec.public(), "gateway": str(spec.gateway)}
            if spec.gateway_v6 is not None:  # with its prefix, as the IPv4 gateway
                created["gateway_v6"] = str(spec.gateway_v6)
            return created
        case NetworkDeleted(name):
            return {"t": "netdel", "name": name}
        case Joined(network, container, ip, mac, attachment, ipv6):
            joined: dict[str, Any] = {
                "t": "iface",
                "network": network,
                "id": container,
                "ip": str(ip),
                "mac": mac,
            }
            if ipv6 is not None:
                joined["ipv6"] = str(ipv6)
            if attachment is not None:
                joined.update(
                    netns=attachment.netns, ifname=attachment.ifname, veth=attachment.host_veth
                )
            return joined
        case Left(network, container):
            return {"t": "release", "network": network, "id": container}
        case Published(network, container, mapping):
            return {"t": "port", "network": network, "id": container, **mapping.public()}
        case Unpublished(network, container, mapping):
            return {"t": "unport", "network": network, "id": container, **mapping.public()}
        case Linked(link):
            return {"t": "link", **link.public()}
        case Unlinked(link):
            return {"t": "unlink", **link.public()}


def from_json(obj: dict[str, Any]) -> Record:
    """The record of a line's JSON; KeyError, ValueError or TypeError if malformed.

    Records written before networks existed have no ``network``: they are of ``bridge``.
    """
    kind = obj["t"]
    network = _text(obj.get("network", DEFAULT_NETWORK))
    if kind == "net":
        return NetworkCreated(
            NetworkSpec(
                name=_text(obj["name"]),
                id=_text(obj["id"]),
                bridge=_text(obj["bridge"]),
                gateway=parse_cidr(_text(obj["gateway"])),
                ip_range=IPv4Network(_text(obj["ip_range"])) if obj["ip_range"] else None,
                internal=_flag(obj["internal"]),
                icc=_flag(obj["icc"]),
                ip_masq=_flag(obj["ip_masq"]),
                mtu=_number(obj["mtu"]),
                host_binding_ip=parse_ipv4(_text(obj["host_binding_ip"])),
                gateway_v6=IPv6Interface(_text(obj["gateway_v6"])) if obj.get("ipv6") else None,
            )
        )
    if kind == "netdel":
        return NetworkDeleted(_text(obj["name"]))
    if kind == "iface":
        ip, mac = parse_ipv4(_text(obj["ip"])), parse_mac(_text(obj["mac"]))
        attachment = None
        if "netns" in obj:
            netns = None if obj["netns"] is None else _text(obj["netns"])
            attachment = Attachment(netns, _text(obj["ifname"]), _text(obj["veth"]))
        ipv6 = IPv6Address(_text(obj["ipv6"])) if "ipv6" in obj else None
        return Joined(network, _text(obj["id"]), ip, mac, attachment, ipv6)
    if kind == "release":
        return Left(network, _text(obj["id"]))
    if kind in ("port", "unport"):
        mapping = PortMapping(
            ip_address(_text(obj["host_ip"])),
            _port(obj["host_port"]),
            _proto(obj["proto"]),
            _port(obj["container_port"]),
            proxy=_flag(obj.get("proxy", True)),
        )
        kept = Published if kind == "port" else Unpublished
        return kept(network, _text(obj["id"]), mapping)
    if kind in ("link", "unlink"):
        link = Link(
            network,
            parse_ipv4(_text(obj["parent"])),
            parse_ipv4(_text(obj["child"])),
            _proto(obj["proto"]),
            _port(obj["port"]),
            IPv6Address(_text(obj["parent_v6"])) if "parent_v6" in obj else None,
            IPv6Address(_text(obj["child_v6"])) if "child_v6" in obj else None,
        )
        return Linked(link) if kind == "link" else Unlinked(link)
    raise ValueError(f"unknown record type {kind!r}")


@dataclass
class Snapshot:
    """Networks, endpoints, published ports and links, as the records so far describe them.

    Dicts keep insertion order: a container's endpoints come back oldest first.
    """

    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    endpoints: dict[tuple[str, str], Joined] = field(default_factory=dict)  # (network, id)
    ports: dict[HostPort, Published] = field(default_factory=dict)
    links: dict[Link, None] = field(default_factory=dict)  # an ordered set

    def apply(self, record: Record) -> None:
        match record:
            case NetworkCreated(spec):
                self.networks[spec.name] = spec
            case NetworkDeleted(name):
                self.networks.pop(name, None)
            case Joined(network=network, container_id=container):
                self.endpoints[network, container] = record
            case Left(network, container):
                self.endpoints.pop((network, container), None)
                self.ports = {
                    key: port
                    for key, port in self.ports.items()
                    if (port.network, port.container_id) != (network, container)
                }
            case Published(_, _, m):
                self.ports[m.host_key] = record
            case Unpublished(network, container, m):
                held = self.ports.get(m.host_key)
                if held is not None and (held.network, held.container_id) == (network, container):
                    del self.ports[m.host_key]
            case Linked(link):
                self.links[link] = None
            case Unlinked(link):
                self.links.pop(link, None)

    def records(self) -> list[Record]:
        """The fewest records that rebuild this snapshot, in an order that does."""
        return [
            *map(NetworkCreated, self.networks.values()),
            *self.endpoints.values(),
            *self.ports.values(),
            *map(Linked, self.links),
        ]

    def size(self) -> int:
        return len(self.networks) + len(self.endpoints) + len(self.ports) + len(self.links)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def _number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _port(value: Any) -> int:
    port = _number(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port {port}")
    return port


def _proto(value: Any) -> str:
    if value not in ("tcp", "udp"):
        raise ValueError(f"bad protocol {value!r}")
    return str(value)


def encode(record: Record) -> bytes:
    body = json.dumps(to_json(record), separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> Record:
    """A record from one line; ValueError if the line is torn or corrupt."""
    if not line.endswith(b"\n"):
        raise ValueError("incomplete line (torn write)")
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
        raise ValueError("checksum mismatch")
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("not a record")
    return from_json(obj)


class StateLog:
    """The append-only file; only the trio thread writes it (tmpfs: microseconds)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STATE_FILE)
        self.directory = directory
        self.snapshot = Snapshot()
        self._lines = 0
        self._file: Any = None
        self.compactions = 0  # rewrites of the file to the live records

    def file_size(self) -> int:
        return os.fstat(self._file.fileno()).st_size if self._file is not None else 0

    def load(self) -> list[str]:
        """Read the file into :attr:`snapshot`; the reasons of every line dropped."""
        problems = []
        try:
            with open(self.path, "rb") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return []
        for number, line in enumerate(lines, 1):
            try:
                self.snapshot.apply(decode(line))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"{self.path} line {number}: {exc}; dropped")
        return problems

    def rewrite(self, snapshot: Snapshot) -> None:
        """Replace the file with ``snapshot`` atomically, then append to the new one."""
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        temporary = self.path + ".tmp"
        with open(temporary, "wb") as f:
            for record in snapshot.records():
                f.write(encode(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        if self._file is not None:
            self._file.close()
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        self.snapshot = snapshot
        self._lines = snapshot.size()
        self.compactions += 1

    def append(self, *records: Record) -> None:
        """Record committed changes durably, one write and one sync (the caller answers after).

        The snapshot takes them only once they are on disk: a failed write (OSError)
        leaves it as the file says.
        """
        self._file.write(b"".join(map(encode, records)))
        os.fdatasync(self._file.fileno())
        for record in records:
            self.snapshot.apply(record)
        self._lines += len(records)
        if self._lines > max(COMPACT_MIN_LINES, COMPACT_RATIO * self.snapshot.size()):
            self.rewrite(self.snapshot)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
