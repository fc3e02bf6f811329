"""The handlers behind the JSON-RPC methods, with params already checked.

Each public coroutine here is one method of the contract in :mod:`api`, under
the same name; the RPC layer wraps each call in a job and turns errors into
answers.  With ``-b none`` there is no driver and every network method answers
1009, as Docker registered no handler at all.

Calls about one container are serialised (a per-container lock): a release
that is unmapping ports must not race an allocate_port for the same id.
Calls about different containers run concurrently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Address
from typing import Any

import trio

from . import __version__
from .api import Method
from .config import Config
from .driver import BridgeDriver
from .errors import InvalidParams, NetworkDisabled
from .links import ADD_ACTIONS
from .network import Interface, PortMapping
from .state import StateLog
from .verify import owned_rule_counts, verify


class KeyedLock:
    """One trio.Lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (trio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ChangeGate:
    """Handlers that change state pass the gate together; verify waits for them all.

    While verify compares and repairs, no change is half-done (a proxy bound but its
    rules not yet in), so an in-flight change is never reported, or repaired away,
    as drift.
    """

    def __init__(self) -> None:
        self._changing = 0
        self._exclusive = False
        self._turn = trio.Condition()

    @asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        async with self._turn:
            while self._exclusive:
                await self._turn.wait()
            self._changing += 1
        try:
            yield
        finally:
            async with self._turn:
                self._changing -= 1
                self._turn.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._turn:
            while self._exclusive or self._changing:
                await self._turn.wait()
            self._exclusive = True
        try:
            yield
        finally:
            async with self._turn:
                self._exclusive = False
                self._turn.notify_all()


class Service:
    def __init__(
        self, config: Config, driver: BridgeDriver | None, state: StateLog | None = None
    ) -> None:
        self.config = config
        self.driver = driver
        self.state = state
        self._containers = KeyedLock()
        self._gate = ChangeGate()
        self._started = time.monotonic()

    async def run(self, method: Method, params: dict[str, Any]) -> Any:
        """Run the handler of ``method`` with checked params."""
        if method.needs_network and self.driver is None:
            raise NetworkDisabled()
        return await getattr(self, method.name)(**params)

    def _driver(self) -> BridgeDriver:
        if self.driver is None:
            raise NetworkDisabled()
        return self.driver

    async def allocate_interface(
        self, id: str, requested_ip: IPv4Address | None, requested_mac: str | None
    ) -> dict[str, Any]:
        network = self._driver().network
        async with self._gate.change(), self._containers.hold(id):
            known = id in network.interfaces
            result = network.allocate_interface(id, requested_ip, requested_mac)
            if not known:
                self._record(
                    {"t": "iface", "id": id, "ip": result["ip"], "mac": result["mac_address"]},
                    undo=lambda: network.release_interface(id),
                )
            return result

    async def release_interface(self, id: str) -> dict[str, Any]:
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            iface = driver.network.interface(id, releasing=True)
            released = [mapping.public() for mapping in iface.ports]
            # Recorded first: if it cannot be, nothing is released; once it is, whatever the
            # unmap leaves in the kernel belongs to no one, and a restart's reconcile removes it.
            self._record({"t": "release", "id": id})
            await driver.mapper.unmap(iface, list(iface.ports))
            driver.network.release_interface(id)
        return {"id": iface.container_id, "ip": str(iface.ip), "released_ports": released}

    async def allocate_port(
        self,
        id: str,
        container_port: int,
        proto: str,
        host_ip: IPv4Address | None,
        host_port: int,
    ) -> dict[str, Any]:
        iface, [mapping] = await self._publish(id, proto, host_ip, [(host_port, container_port)])
        return {
            "host_ip": mapping.host_ip,
            "host_port": mapping.host_port,
            "proto": mapping.proto,
            "container_ip": str(iface.ip),
            "container_port": mapping.container_port,
        }

    async def allocate_port_range(
        self,
        id: str,
        container_port: int,
        count: int,
        proto: str,
        host_ip: IPv4Address | None,
        host_port: int,
    ) -> dict[str, Any]:
        for first, name in ((container_port, "container_port"), (host_port, "host_port")):
            if first and first + count - 1 > 65535:
                raise InvalidParams(
                    f"Bad parameter: {name} {first} + count {count} goes past 65535", param=name
                )
        pairs = [(host_port + n if host_port else 0, container_port + n) for n in range(count)]
        iface, mappings = await self._publish(id, proto, host_ip, pairs)
        return {"container_ip": str(iface.ip), "ports": [m.public() for m in mappings]}

    async def _publish(
        self, id: str, proto: str, host_ip: IPv4Address | None, pairs: list[tuple[int, int]]
    ) -> tuple[Interface, list[PortMapping]]:
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            iface = driver.network.interface(id)
            mappings = await driver.mapper.map(
                iface, proto, host_ip or IPv4Address(self.config.ip), pairs
            )
            try:
                self._record_all([{"t": "port", "id": id, **m.public()} for m in mappings])
            except OSError:
                await driver.mapper.unmap(iface, mappings)
                raise
        return iface, mappings

    async def link(
        self,
        action: str,
        parent_ip: IPv4Address,
        child_ip: IPv4Address,
        ports: list[str],
        ignore_errors: bool,
    ) -> dict[str, Any]:
        driver = self._driver()
        if not self.config.iptables:  # --iptables=false forces --icc=true: nothing to open
            return {"rules": 0}
        action = "add" if action in ADD_ACTIONS else "remove"
        async with self._gate.change():
            changed = await driver.links.link(action, parent_ip, child_ip, ports, ignore_errors)
        for parent, child, proto, port in changed:
            kind = "link" if action == "add" else "unlink"
            self._record(
                {
                    "t": kind,
                    "parent": str(parent),
                    "child": str(child),
                    "proto": proto,
                    "port": port,
                }
            )
        return {"rules": 2 * len(changed)}

    def _record(self, record: dict[str, Any], undo: Callable[[], object] | None = None) -> None:
        """Make a committed change durable before it is acknowledged; undo it if that fails."""
        try:
            self._record_all([record])
        except OSError:
            if undo is not None:
                undo()
            raise

    def _record_all(self, records: list[dict[str, Any]]) -> None:
        if self.state is not None:
            self.state.append(*records)

    async def verify(self, repair: bool) -> dict[str, Any]:
        driver = self._driver()
        async with self._gate.exclusive():
            return await verify(driver, self.config, repair=repair)

    def owned_rules(self) -> Counter[str]:
        """How many rules the daemon owns in each table: what verify would check."""
        driver = self.driver
        if driver is None or not self.config.iptables:
            return Counter()
        return owned_rule_counts(driver, self.config)

    def summary(self) -> str:
        """One line for systemd's STATUS=: "docker0 172.17.42.1/16, 3 interfaces, 5 ports"."""
        if self.driver is None:
            return "networking disabled (-b none)"
        network = self.driver.network
        return (
            f"{network.bridge.name} {network.bridge.address}, "
            f"{len(network.interfaces)} interfaces, {network.port_mapping_count()} ports"
        )

    async def list_interfaces(self) -> list[dict[str, Any]]:
        return self._driver().network.list_interfaces()

    async def status(self) -> dict[str, Any]:
        driver = self.driver
        address = driver.network.bridge.address if driver else None
        return {
            "version": __version__,
            "bridge": driver.network.bridge.name if driver else None,
            "bridge_cidr": str(address) if address else None,
            "gateway": str(address.ip) if address else None,
            "network_disabled": driver is None,
            "config": self.config.public(),
            "interfaces": len(driver.network.interfaces) if driver else 0,
            "port_mappings": driver.network.port_mapping_count() if driver else 0,
            "links": len(driver.links.active) if driver else 0,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }
