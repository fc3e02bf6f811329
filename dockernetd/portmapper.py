"""Publishing container ports: host port, proxy, DNAT and FORWARD rules, as one step.

Docker 1.4's portmapper, reordered so that a failure is cheaper and leaves
nothing behind: the host port is taken from the allocator, the proxy binds it
(proving the kernel agrees it is free), then the two rules go in as one commit.
Each step registers its undo; if a later step fails, the earlier ones are undone
in reverse order, so a failed ``allocate_port`` leaves no port, rule or proxy.
A dynamic port whose bind fails is released and the next one tried, up to 10
times, as in 1.4.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import trio

from .errors import FirewallFailed, ProxyFailed
from .kernel.firewall import FirewallError
from .kernel.worker import KernelContext, KernelWorker
from .network import Interface, PortMapping
from .ports import PortAllocator
from .proxy import Proxy, ProxyError, ProxySupervisor
from .rules import Rule, mapping_rules

log = logging.getLogger("dockernetd.portmapper")

MAX_ALLOCATED_PORT_ATTEMPTS = 10


@dataclass(frozen=True)
class _Key:
    host_ip: str
    host_port: int
    proto: str


class PortMapper:
    def __init__(
        self,
        bridge: str,
        kernel: KernelWorker,
        proxies: ProxySupervisor,
        *,
        iptables: bool,
    ) -> None:
        self.bridge = bridge
        self.ports = PortAllocator()
        self._kernel = kernel
        self._proxies = proxies
        self.iptables = iptables
        self._running: dict[_Key, tuple[Proxy, PortMapping]] = {}

    async def map(
        self,
        iface: Interface,
        proto: str,
        host_ip: IPv4Address,
        host_port: int,
        container_port: int,
        *,
        with_rules: bool = True,
    ) -> PortMapping:
        """Publish ``container_port`` of ``iface`` on ``host_ip:host_port`` (0: dynamic).

        ``with_rules=False`` only takes the port and starts the proxy: at boot, the
        rules of every restored mapping are reconciled at once instead.
        """
        attempts = 1 if host_port else MAX_ALLOCATED_PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return await self._map_once(
                    iface, proto, host_ip, host_port, container_port, with_rules
                )
            except ProxyError as exc:
                failure = ProxyFailed(f"Error starting userland proxy: {exc}")
                if host_port:
                    log.info("Failed to allocate and map port %d: %s", host_port, exc)
                else:
                    log.info("Failed to allocate and map port: %s, retry: %d", exc, attempt)
        raise failure

    async def _map_once(
        self,
        iface: Interface,
        proto: str,
        host_ip: IPv4Address,
        host_port: int,
        container_port: int,
        with_rules: bool,
    ) -> PortMapping:
        async with contextlib.AsyncExitStack() as undo:
            port = self.ports.request(str(host_ip), proto, host_port)
            undo.callback(self.ports.release, str(host_ip), proto, port)
            proxy = await self._proxies.start(proto, host_ip, port, iface.ip, container_port)
            undo.push_async_callback(_shielded, proxy.stop)
            mapping = PortMapping(str(host_ip), port, proto, container_port)
            if self.iptables and with_rules:
                if proto == "udp":  # a remapped port must not keep its old flows
                    await self._kernel.call(_forget_udp, host_ip, port)
                await self._change_rules(insert=self._rules(iface, mapping))
            self._running[_Key(str(host_ip), port, proto)] = (proxy, mapping)
            iface.ports.append(mapping)
            undo.pop_all()
            return mapping

    async def unmap(self, iface: Interface, mappings: Sequence[PortMapping]) -> None:
        """Stop the proxies, delete the rules, free the ports; rule errors are only logged.

        All the rules go in one commit per table (a container's release is one
        table rewrite, not one per port); if that fails, each rule is deleted on
        its own, so one rule deleted behind our back does not keep the others.
        """
        for mapping in mappings:
            proxy, _ = self._running.pop(_Key(mapping.host_ip, mapping.host_port, mapping.proto))
            await _shielded(proxy.stop)
        if self.iptables and mappings:
            rules = [rule for mapping in mappings for rule in self._rules(iface, mapping)]
            try:
                await self._change_rules(delete=rules)
            except FirewallFailed:
                for rule in rules:
                    try:
                        await self._change_rules(delete=[rule])
                    except FirewallFailed as exc:
                        log.warning("Error on iptables delete: %s", exc.message)
            for mapping in mappings:
                if mapping.proto == "udp":
                    await self._kernel.call(
                        _forget_udp, IPv4Address(mapping.host_ip), mapping.host_port
                    )
        for mapping in mappings:
            self.ports.release(mapping.host_ip, mapping.proto, mapping.host_port)
            iface.ports.remove(mapping)

    def stopped_proxies(self) -> list[PortMapping]:
        """Mappings whose proxy stopped without being asked to (it failed)."""
        return [m for proxy, m in self._running.values() if not proxy.running]

    async def revive(self, mapping: PortMapping) -> None:
        """Start a stopped mapping's proxy again (verify --repair)."""
        key = _Key(mapping.host_ip, mapping.host_port, mapping.proto)
        old, _ = self._running[key]
        proxy = await self._proxies.start(
            old.proto, old.host_ip, old.host_port, old.container_ip, old.container_port
        )
        self._running[key] = (proxy, mapping)

    def rules(self, interfaces: Iterable[Interface]) -> list[Rule]:
        """Every rule of the mappings of ``interfaces`` (what the firewall should hold)."""
        if not self.iptables:
            return []
        return [rule for iface in interfaces for m in iface.ports for rule in self._rules(iface, m)]

    def _rules(self, iface: Interface, mapping: PortMapping) -> tuple[Rule, Rule]:
        return mapping_rules(
            self.bridge,
            iface.container_id,
            mapping.proto,
            IPv4Address(mapping.host_ip),
            mapping.host_port,
            iface.ip,
            mapping.container_port,
        )

    async def _change_rules(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None:
        try:
            await self._kernel.change_rules(insert, delete)
        except FirewallError as exc:
            raise FirewallFailed(f"iptables: {exc}") from exc


def _forget_udp(ctx: KernelContext, host_ip: IPv4Address, host_port: int) -> None:
    forgotten = ctx.conntrack.forget_udp(host_ip, host_port)
    if forgotten:
        log.info("forgot %d udp conntrack entries of %s:%d", forgotten, host_ip, host_port)


async def _shielded(fn: Callable[[], Awaitable[Any]]) -> None:
    """Undo steps run even while the call is being cancelled (daemon shutdown)."""
    with trio.CancelScope(shield=True):
        await fn()
