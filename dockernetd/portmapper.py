"""Publishing container ports: host port, proxy, DNAT and FORWARD rules, as one step.

Docker 1.4's portmapper, reordered so that a failure is cheaper and leaves
nothing behind: the host port is taken from the allocator, the proxy binds it
(proving the kernel agrees it is free), then the two rules go in as one commit.
A range does the same for every port, then commits the rules of all at once.
Each step registers its undo; if a later step fails, the earlier ones are undone
in reverse order, so a failed ``allocate_port`` leaves no port, rule or proxy.
A dynamic port whose bind fails is released and the next one tried, up to 10
times, as in 1.4.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Address
from typing import Any

import trio

from .errors import ProxyFailed
from .kernel.bridge import enable_route_localnet
from .kernel.conntrack import forget_udp
from .kernel.worker import KernelWorker
from .network import Endpoint, HostAddress, HostPort, PortMapping
from .ports import PortAllocator
from .proxy import Proxy, ProxyError, ProxySupervisor
from .rules import Rule, publish_rules

log = logging.getLogger("dockernetd.portmapper")

MAX_ALLOCATED_PORT_ATTEMPTS = 10


class PortMapper:
    """The host's published ports, over every network (a host port is the host's, once)."""

    def __init__(self, kernel: KernelWorker, proxies: ProxySupervisor, *, iptables: bool) -> None:
        self.ports = PortAllocator()
        self._kernel = kernel
        self._proxies = proxies
        self.iptables = iptables
        self._running: dict[HostPort, tuple[Proxy | None, PortMapping]] = {}
        # each mapping's rules as published, so that its release needn't build them again
        # (a third of a 1,000-port release); a restored mapping's are built at its release
        self._rules: dict[HostPort, list[Rule]] = {}

    async def map(
        self,
        bridge: str,
        endpoint: Endpoint,
        proto: str,
        host_ip: HostAddress,
        ports: Sequence[tuple[int, int]],
        *,
        with_proxy: bool = True,
        with_rules: bool = True,
    ) -> list[PortMapping]:
        """Publish each (host port, container port) of ``ports`` for ``endpoint``, all or nothing.

        A host port of 0 is dynamic.  Every host port is taken and its proxy bound
        first; then the rules of them all go in as one commit per table.
        ``with_rules=False`` only takes the ports and starts the proxies: at boot,
        the rules of every restored mapping are reconciled at once instead.
        ``with_proxy=False`` binds nothing (the caller holds the host ports): the rules alone
        publish them, and the bridge is let route the host's 127.0.0.1 to them.
        """
        async with contextlib.AsyncExitStack() as undo:
            bound = [
                await self._bind(
                    endpoint, proto, host_ip, host_port, container_port, with_proxy, undo
                )
                for host_port, container_port in ports
            ]
            if not with_proxy:  # every time: the bridge may be new since (deleted, made again)
                await self._kernel.call(enable_route_localnet, bridge)
            mappings = [mapping for mapping, _ in bound]
            rules = {}
            if self.iptables and with_rules:
                if proto == "udp" and isinstance(host_ip, IPv4Address):  # no old flows to keep
                    await self._kernel.call(forget_udp, host_ip, [m.host_port for m in mappings])
                rules = {m.host_key: publish_rules(bridge, endpoint, m) for m in mappings}
                await self._kernel.change_rules(insert=_flat(rules.values()))
            self._rules.update(rules)
            for mapping, proxy in bound:
                self._running[mapping.host_key] = (proxy, mapping)
                endpoint.ports.append(mapping)
            undo.pop_all()
            return mappings

    async def _bind(
        self,
        endpoint: Endpoint,
        proto: str,
        host_ip: HostAddress,
        host_port: int,
        container_port: int,
        with_proxy: bool,
        undo: contextlib.AsyncExitStack,
    ) -> tuple[PortMapping, Proxy | None]:
        """Take the host port and start its proxy, their undo on ``undo``.

        The proxy's bind proves the kernel agrees the port is free; a dynamic port
        whose bind fails is released and the next one tried, up to 10 times.
        """
        if not with_proxy:
            port = self.ports.request(host_ip, proto, host_port)
            undo.callback(self.ports.release, host_ip, proto, port)
            return PortMapping(host_ip, port, proto, container_port, proxy=False), None
        attempts = 1 if host_port else MAX_ALLOCATED_PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self.ports.request(host_ip, proto, host_port)
            mapping = PortMapping(host_ip, port, proto, container_port)
            try:
                proxy = await self._proxies.start(mapping, endpoint.ip)
            except ProxyError as exc:
                self.ports.release(host_ip, proto, port)
                failure = ProxyFailed(f"Error starting userland proxy: {exc}")
                if host_port:
                    log.info("Failed to allocate and map port %d: %s", host_port, exc)
                else:
                    log.info("Failed to allocate and map port: %s, retry: %d", exc, attempt)
                continue
            undo.callback(self.ports.release, host_ip, proto, port)
            undo.push_async_callback(_shielded, proxy.stop)
            return mapping, proxy
        raise failure

    async def unmap(self, bridge: str, endpoint: Endpoint, mappings: Sequence[PortMapping]) -> None:
        """Stop the proxies, delete the rules, free the ports; rule errors are only logged.

        All the rules go in one commit per table (a container's release is one
        table rewrite, not one per port); see KernelWorker.remove_rules.
        """
        stopping: list[Proxy] = []
        for mapping in mappings:
            proxy, _ = self._running.pop(mapping.host_key)
            if proxy is not None:
                stopping.append(proxy)
                proxy.cancel()  # all at once: they close in one scheduling round
        for proxy in stopping:
            await _shielded(proxy.stopped)
        if self.iptables and mappings:
            rules = (
                self._rules.pop(m.host_key, []) or publish_rules(bridge, endpoint, m)
                for m in mappings
            )
            await self._kernel.remove_rules(_flat(rules))
            for host_ip, ports in _udp_ports_by_address(mappings).items():
                await self._kernel.call(forget_udp, host_ip, ports)
        for mapping in mappings:
            self.ports.release(mapping.host_ip, mapping.proto, mapping.host_port)
        gone = set(mappings)  # a mapping's host address, port and proto are its own
        endpoint.ports[:] = [mapping for mapping in endpoint.ports if mapping not in gone]

    def running_proxies(self) -> int:
        return sum(proxy.running for proxy, _ in self._running.values() if proxy is not None)

    def stopped_proxies(self) -> list[PortMapping]:
        """Mappings whose proxy stopped without being asked to (it failed)."""
        return [m for p, m in self._running.values() if p is not None and not p.running]

    async def revive(self, mapping: PortMapping) -> None:
        """Start a stopped mapping's proxy again (verify --repair)."""
        old, _ = self._running[mapping.host_key]
        assert old is not None, "only a proxy can stop"
        self._running[mapping.host_key] = (
            await self._proxies.start(mapping, old.container_ip),
            mapping,
        )


def _flat(rules: Iterable[list[Rule]]) -> list[Rule]:
    return [rule for some in rules for rule in some]


def _udp_ports_by_address(mappings: Iterable[PortMapping]) -> dict[IPv4Address, list[int]]:
    """The UDP ports the firewall DNATs, by host address: their flows to forget."""
    ports: dict[IPv4Address, list[int]] = {}
    for m in mappings:
        if m.proto == "udp" and isinstance(m.host_ip, IPv4Address):
            ports.setdefault(m.host_ip, []).append(m.host_port)
    return ports


async def _shielded(fn: Callable[[], Awaitable[Any]]) -> None:
    """Undo steps run even while the call is being cancelled (daemon shutdown)."""
    with trio.CancelScope(shield=True):
        await fn()
