"""The durable record of what the daemon handed out, so a restart loses nothing.

Theory of operation: every committed change (an interface, a port mapping, a
link, and their removals) is one line appended to ``state.jsonl`` and made
durable (``fdatasync``) before the client is answered.  A line is
``<crc32 hex> <json>``, so a torn or corrupted line is recognised and dropped
at load, never half-applied.  The file lives under ``/run/dockernetd``: tmpfs,
the same lifetime as the bridge and the rules it describes, so a reboot starts
clean.  When the log has grown to several times the live entries, it is
compacted: the live entries are written to a new file, fsync'd, and renamed over
the old one (atomic), so a crash at any moment leaves either file whole.

:class:`Snapshot` is the pure part: the state a sequence of records produces.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dockernetd.state")

STATE_FILE = "state.jsonl"
COMPACT_MIN_LINES = 1000
COMPACT_RATIO = 4


@dataclass
class Snapshot:
    """Interfaces, port mappings and links, as the records so far describe them."""

    interfaces: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {ip, mac}
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # "ip:port/proto" -> mapping
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # "parent>child:port/proto"

    def apply(self, record: dict[str, Any]) -> None:
        """One record; KeyError/ValueError/TypeError if it is not a well-formed record."""
        kind = record["t"]
        if kind == "iface":
            self.interfaces[_text(record, "id")] = {
                "ip": _text(record, "ip"),
                "mac": _text(record, "mac"),
            }
        elif kind == "release":
            container = _text(record, "id")
            self.interfaces.pop(container, None)
            self.ports = {k: p for k, p in self.ports.items() if p["id"] != container}
        elif kind == "port":
            mapping = {
                k: record[k] for k in ("id", "host_ip", "host_port", "proto", "container_port")
            }
            self.ports[port_key(mapping)] = mapping
        elif kind == "unport":
            self.ports.pop(port_key(record), None)
        elif kind == "link":
            self.links[link_key(record)] = {
                k: record[k] for k in ("parent", "child", "proto", "port")
            }
        elif kind == "unlink":
            self.links.pop(link_key(record), None)
        else:
            raise ValueError(f"unknown record type {kind!r}")

    def records(self) -> list[dict[str, Any]]:
        """The fewest records that rebuild this snapshot."""
        return [
            *({"t": "iface", "id": i, **v} for i, v in self.interfaces.items()),
            *({"t": "port", **p} for p in self.ports.values()),
            *({"t": "link", **lk} for lk in self.links.values()),
        ]

    def size(self) -> int:
        return len(self.interfaces) + len(self.ports) + len(self.links)


def port_key(mapping: dict[str, Any]) -> str:
    return f"{mapping['host_ip']}:{int(mapping['host_port'])}/{_proto(mapping)}"


def link_key(link: dict[str, Any]) -> str:
    return f"{link['parent']}>{link['child']}:{int(link['port'])}/{_proto(link)}"


def _proto(record: dict[str, Any]) -> str:
    proto = record["proto"]
    if proto not in ("tcp", "udp"):
        raise ValueError(f"bad protocol {proto!r}")
    return str(proto)


def _text(record: dict[str, Any], name: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> dict[str, Any]:
    """A record from one line; ValueError if the line is torn or corrupt."""
    if not line.endswith(b"\n"):
        raise ValueError("incomplete line (torn write)")
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
        raise ValueError("checksum mismatch")
    record = json.loads(body)
    if not isinstance(record, dict):
        raise ValueError("not a record")
    return record


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

    def append(self, *records: dict[str, Any]) -> None:
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
