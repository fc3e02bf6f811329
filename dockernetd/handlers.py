"""The handlers behind the JSON-RPC methods, with params already checked.

Each public coroutine here is one method of the contract in :mod:`api`, under
the same name; the RPC layer wraps each call in a job and turns errors into
answers.  With ``-b none`` there is no driver and every network method answers
1009, as Docker registered no handler at all.

Every change follows one pattern: check, change the model and the kernel
(undoing both if a later step fails), then record it in the state file before
answering; a change that cannot be recorded is undone.  Calls about one
container are serialised (a per-container lock): a release that is unmapping
ports must not race an allocate_port for the same id.  Calls about different
containers run concurrently; network_create and network_delete one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import TYPE_CHECKING, Any

import trio

from . import __version__
from .api import Method
from .config import Config
from .driver import (
    Driver,
    close_endpoint,
    delete_veth,
    inspect_endpoint,
    local_networks,
    open_endpoint,
    plumb_endpoint,
    setup_network,
    teardown_network,
    unplumb_endpoint,
)
from .errors import (
    Conflict,
    FirewallFailed,
    InvalidParams,
    NetworkDisabled,
    NetworkExists,
    NetworkInternal,
    NetworkInUse,
    NoFreeSubnet,
    PoolOverlap,
    PredefinedNetwork,
)
from .ipam import BadSubnet
from .kernel.firewall import FirewallBackend
from .kernel.plumbing import NotANetns
from .links import ADD_ACTIONS
from .network import (
    DEFAULT_NETWORK,
    Attachment,
    Endpoint,
    HostAddress,
    Network,
    NetworkSpec,
    PortMapping,
)
from .networks import Networks
from .pools import choose_subnet, choose_subnet_v6, machine_ula
from .rules import link_rules
from .state import (
    Joined,
    Left,
    Linked,
    NetworkCreated,
    NetworkDeleted,
    Published,
    Record,
    StateLog,
    Unlinked,
    Unpublished,
)
from .verify import verify

if TYPE_CHECKING:  # imported by the daemon only with --cluster-store: httpx adds 25 ms
    from .cluster_member import ClusterMember

log = logging.getLogger("dockernetd.handlers")


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
        self,
        config: Config,
        driver: Driver | None,
        state: StateLog | None = None,
        cluster: ClusterMember | None = None,
    ) -> None:
        self.config = config
        self.driver = driver
        self.state = state
        self.cluster_member = cluster
        self._containers = KeyedLock()
        self._gate = ChangeGate()
        self._network_changes = trio.Lock()
        self._started = time.monotonic()
        self.firewall_repairs = 0  # drift entries put back without being asked

    async def run(self, method: Method, params: dict[str, Any]) -> Any:
        """Run the handler of ``method`` with checked params."""
        if method.needs_network and self.driver is None:
            raise NetworkDisabled()
        return await getattr(self, method.name)(**params)

    @property
    def networks(self) -> Networks:
        return self._driver().networks

    def _driver(self) -> Driver:
        if self.driver is None:
            raise NetworkDisabled()
        return self.driver

    # -- networks ---------------------------------------------------------------------

    async def network_create(
        self,
        name: str,
        subnet: IPv4Network | None,
        gateway: IPv4Address | None,
        ip_range: IPv4Network | None,
        bridge: str | None,
        internal: bool,
        icc: bool,
        ip_masq: bool,
        mtu: int | None,
        host_binding_ip: IPv4Address | None,
        ipv6: bool = False,
        subnet_v6: IPv6Network | None = None,
        gateway_v6: IPv6Address | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """A new network; its id is ``id`` when a runtime names it (Docker's NetworkID)."""
        driver = self._driver()
        async with self._gate.change(), self._network_changes:
            networks = driver.networks
            if name == DEFAULT_NETWORK:
                raise NetworkExists(f"{name} is a pre-defined network and cannot be created")
            if name in networks:
                raise NetworkExists(f"network with name {name} already exists", network=name)
            if internal and not self.config.iptables:  # it would route out, silently
                raise InvalidParams(
                    "Bad parameter: internal networks need --iptables: their isolation is "
                    "firewall rules",
                    param="internal",
                )
            network_id = id or secrets.token_hex(32)
            device = bridge or f"br-{network_id[:12]}"
            if (holder := networks.on_bridge(device)) is not None:
                raise Conflict(f"bridge {device} is used by network {holder.name}", bridge=device)
            if subnet is None:
                subnet = await self.free_subnet(f"network {name}")
            elif (other := networks.overlapping(subnet)) is not None:
                raise PoolOverlap(str(subnet), other.name)
            gateway6 = self._ipv6_gateway(ipv6, subnet_v6, gateway_v6)
            spec = NetworkSpec(
                name=name,
                id=network_id,
                bridge=device,
                gateway=_gateway(subnet, gateway),
                ip_range=ip_range,
                internal=internal,
                icc=icc,
                ip_masq=ip_masq,
                mtu=mtu or driver.mtu,
                host_binding_ip=host_binding_ip or self.config.binding_ip,
                gateway_v6=gateway6,
            )
            try:
                network = Network(spec)
            except BadSubnet:
                raise InvalidParams(
                    f"Bad parameter: ip_range {ip_range} is not inside subnet {subnet}",
                    param="ip_range",
                ) from None
            await setup_network(driver, spec)
            networks.add(network)
            await self._record_or_undo([NetworkCreated(spec)], self._forget_network(network))
            log.info("network %s: bridge %s, subnet %s", name, device, subnet)
            return spec.public()

    def _ipv6_gateway(
        self, ipv6: bool, subnet: IPv6Network | None, gateway: IPv6Address | None
    ) -> IPv6Interface | None:
        """A new network's bridge IPv6 address: in ``subnet``, or in the first /64 of the
        machine's unique-local /48 that no network has; None for an IPv4-only network."""
        if gateway is not None and subnet is None:
            raise InvalidParams("Bad parameter: gateway_v6 needs subnet_v6", param="gateway_v6")
        if not ipv6 and subnet is None:
            return None
        if subnet is None:
            subnet = self.free_subnet_v6()
        elif other := self.overlapping_v6(subnet):
            raise PoolOverlap(str(subnet), other.name)
        address = gateway or subnet.network_address + 1
        if address not in subnet or address == subnet.network_address:
            raise InvalidParams(
                f"Bad parameter: gateway_v6 {address} is not a host address of subnet_v6 {subnet}",
                param="gateway_v6",
            )
        return IPv6Interface((address, subnet.prefixlen))

    def free_subnet_v6(self, held: Iterable[IPv6Network] = ()) -> IPv6Network:
        """The next /64 of the machine's unique-local /48 that no network and nothing of
        ``held`` (subnets promised but not yet networks) has."""
        in_use = [n.spec.subnet_v6 for n in self.networks if n.spec.subnet_v6 is not None]
        subnet = choose_subnet_v6(machine_ula(), [*in_use, *held])
        if subnet is None:
            raise NoFreeSubnet("IPv6")
        return subnet

    def overlapping_v6(self, subnet: IPv6Network) -> Network | None:
        """The network whose IPv6 subnet overlaps ``subnet``, if one does."""
        return next((n for n in self.networks if _overlaps_v6(n, subnet)), None)

    async def free_subnet(
        self, purpose: str, held: list[tuple[IPv4Network, str]] | None = None
    ) -> IPv4Network:
        """The next subnet of the address pools that no network, nameserver, route or
        ``held`` (subnets promised but not yet networks) overlaps."""
        in_use = await local_networks(self._driver()) + (held or [])
        subnet, skipped = choose_subnet(self.config.address_pools, in_use)
        if skipped:
            log.info("%s: subnets skipped: %s", purpose, "; ".join(skipped))
        if subnet is None:
            raise NoFreeSubnet()
        return subnet

    def _forget_network(self, network: Network) -> Callable[[], Awaitable[None]]:
        async def undo() -> None:
            driver = self._driver()
            driver.networks.remove(network.name)
            await teardown_network(driver, network)

        return undo

    async def network_delete(self, name: str) -> dict[str, Any]:
        driver = self._driver()
        async with self._gate.change(), self._network_changes:
            network = driver.networks.get(name)
            if network.spec.is_default:
                raise PredefinedNetwork(name)
            if network.endpoints:
                raise NetworkInUse(name, network.spec.id, len(network.endpoints))
            # Recorded first: once it is, what teardown leaves behind belongs to no one,
            # and the next start's reconcile removes its rules.
            self._record([NetworkDeleted(name)])
            driver.networks.remove(name)  # first: nothing joins it while its rules go
            await teardown_network(driver, network)
            for link in driver.links.of(name):
                driver.links.active.pop(link)
        return network.spec.public()

    async def network_list(self) -> list[dict[str, Any]]:
        driver = self._driver()
        return [{**n.spec.public(), "endpoints": len(n.endpoints)} for n in driver.networks]

    async def network_inspect(self, name: str) -> dict[str, Any]:
        network = self._driver().networks.get(name)
        return {
            **network.spec.public(),
            "endpoints": [_endpoint(e) for e in network.endpoints.values()],
        }

    # -- endpoints ----------------------------------------------------------------------

    async def allocate_interface(
        self,
        id: str,
        requested_ip: IPv4Address | None,
        requested_ipv6: IPv6Address | None,
        requested_mac: str | None,
        network: str,
        netns: str | None,
        ifname: str,
    ) -> dict[str, Any]:
        attachment = Attachment.named(netns, ifname, network, id) if netns else None
        return await self.attach(
            id, network, attachment, requested_ip, requested_mac, requested_ipv6
        )

    async def attach(
        self,
        id: str,
        network: str,
        attachment: Attachment | None,
        requested_ip: IPv4Address | None = None,
        requested_mac: str | None = None,
        requested_ipv6: IPv6Address | None = None,
    ) -> dict[str, Any]:
        """The container's endpoint on ``network``, wired in as ``attachment`` says (not at
        all when it is None); the same call again answers the same."""
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            net = driver.networks.get(network)
            held = net.endpoints.get(id)
            if held is not None and attachment is not None and held.attachment != attachment:
                raise Conflict(f"container {id} is attached elsewhere on network {net.name}", id=id)
            endpoint, new = driver.networks.join(
                net, id, requested_ip, requested_mac, requested_ipv6
            )
            if new:
                endpoint.attachment = attachment
                await self._wire(driver, net, endpoint)

                async def undo() -> None:
                    await self._unwire(driver, net, endpoint)

                await self._record_or_undo([Joined.of(endpoint)], undo)
            return _described(net, endpoint)

    async def hand_over(self, id: str, network: str) -> Attachment:
        """A veth pair for an endpoint that has none, its container end left in the daemon's
        namespace for the runtime to move in and configure (Docker's Join)."""
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            net = driver.networks.get(network)
            endpoint = net.endpoint(id)
            attachment = Attachment.handed_over(net.name, id)
            if endpoint.attachment == attachment:
                return attachment
            if endpoint.attachment is not None:
                raise Conflict(f"container {id} is attached elsewhere on network {net.name}", id=id)
            endpoint.attachment = attachment
            try:
                await plumb_endpoint(driver, net, endpoint)
            except OSError as exc:
                endpoint.attachment = None
                raise Conflict(f"cannot make a veth pair for {id}: {_reason(exc)}", id=id) from None

            async def undo() -> None:
                await self._unplumb(driver, endpoint)

            await self._record_or_undo([Joined.of(endpoint)], undo)
            return attachment

    async def take_back(self, id: str, network: str) -> None:
        """Delete the veth pair hand_over made; the endpoint, its address and ports stay
        (Docker's Leave)."""
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            net = driver.networks.get(network)
            endpoint = net.endpoint(id, releasing=True)
            if endpoint.attachment is None:
                return
            self._record([dataclasses.replace(Joined.of(endpoint), attachment=None)])
            await self._unplumb(driver, endpoint, wait=False)

    async def _unplumb(self, driver: Driver, endpoint: Endpoint, *, wait: bool = True) -> None:
        await unplumb_endpoint(driver, endpoint, wait=wait)
        endpoint.attachment = None

    async def _wire(self, driver: Driver, network: Network, endpoint: Endpoint) -> None:
        """A new endpoint's guard, and its veth when it has an attachment: all or nothing."""
        try:
            await open_endpoint(driver, network, endpoint)
        except FirewallFailed:
            driver.networks.leave(network, endpoint.container_id)
            raise
        if endpoint.attachment is None:
            return
        try:
            await plumb_endpoint(driver, network, endpoint)
        except NotANetns as exc:
            await self._unwire(driver, network, endpoint)
            raise InvalidParams(f"Bad parameter: netns {exc}", param="netns") from None
        except OSError as exc:  # the kernel refused: e.g. the name is taken in that namespace
            await self._unwire(driver, network, endpoint)
            attachment = endpoint.attachment
            raise Conflict(
                f"cannot wire {endpoint.container_id} into {attachment.netns} as "
                f"{attachment.ifname}: {_reason(exc)}",
                id=endpoint.container_id,
            ) from None

    async def _sweep_unrecorded_veth(self, driver: Driver, network: Network, id: str) -> None:
        """A daemon killed between making an endpoint's veth and recording it leaves the
        veth and no endpoint; the runtime's DEL for it finds and deletes it by its name."""
        host_veth = Attachment.host_end(network.name, id)
        try:
            swept = await delete_veth(driver, host_veth)
        except OSError as exc:
            log.warning("%s: unrecorded veth %s not deleted: %s", id, host_veth, exc)
            return
        if swept:
            log.warning("%s: deleted veth %s, made but never recorded", id, host_veth)

    async def _unwire(
        self, driver: Driver, network: Network, endpoint: Endpoint, *, wait: bool = True
    ) -> None:
        """Undo an endpoint: its guard, its address, and its veth, which is left to finish
        deleting unless ``wait`` (last: the kernel thread is busy with it for a while; the
        endpoint is being released, so its container is gone or going)."""
        await close_endpoint(driver, network, endpoint)
        driver.networks.leave(network, endpoint.container_id)
        await unplumb_endpoint(driver, endpoint, wait=wait)

    async def check_interface(self, id: str, network: str) -> dict[str, Any]:
        """What is wrong with an endpoint the daemon wired in (CNI's CHECK): [] if nothing."""
        driver = self._driver()
        net = driver.networks.get(network)
        problems = await inspect_endpoint(driver, net, net.endpoint(id))
        return {"id": id, "network": net.name, "problems": problems}

    async def release_interface(self, id: str, network: str | None) -> dict[str, Any]:
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            if network is None:
                leaving = driver.networks.networks_of(id, releasing=True)
            else:
                leaving = [driver.networks.get(network)]
                if id not in leaving[0].endpoints:
                    await self._sweep_unrecorded_veth(driver, leaving[0], id)
            endpoints = [net.endpoint(id, releasing=True) for net in leaving]
            released = [m.public() for endpoint in endpoints for m in endpoint.ports]
            # Recorded first: if it cannot be, nothing is released; once it is, whatever the
            # unmap leaves in the kernel belongs to no one, and a restart's reconcile removes it.
            self._record([Left(net.name, id) for net in leaving])
            for net, endpoint in zip(leaving, endpoints, strict=True):
                await driver.mapper.unmap(net.spec.bridge, endpoint, list(endpoint.ports))
                # the runtime need not wait the ~20 ms the kernel takes to delete a veth
                await self._unwire(driver, net, endpoint, wait=False)
        result = {"id": id, "ip": str(endpoints[0].ip), "released_ports": released}
        if any(not net.spec.is_default for net in leaving):
            result["networks"] = [net.name for net in leaving]
        return result

    async def allocate_port(
        self,
        id: str,
        container_port: int,
        proto: str,
        host_ip: HostAddress | None,
        host_port: int,
        network: str | None,
        proxy: bool,
    ) -> dict[str, Any]:
        pairs = [(host_port, container_port)]
        endpoint, [mapping] = await self._publish(id, network, proto, host_ip, pairs, proxy)
        published = {
            "host_ip": str(mapping.host_ip),
            "host_port": mapping.host_port,
            "proto": mapping.proto,
            "container_ip": str(endpoint.ip),
            "container_port": mapping.container_port,
        }
        return published if proxy else {**published, "proxy": False}

    async def allocate_port_range(
        self,
        id: str,
        container_port: int,
        count: int,
        proto: str,
        host_ip: HostAddress | None,
        host_port: int,
        network: str | None,
        proxy: bool,
    ) -> dict[str, Any]:
        for first, name in ((container_port, "container_port"), (host_port, "host_port")):
            if first and first + count - 1 > 65535:
                raise InvalidParams(
                    f"Bad parameter: {name} {first} + count {count} goes past 65535", param=name
                )
        pairs = [(host_port + n if host_port else 0, container_port + n) for n in range(count)]
        endpoint, mappings = await self._publish(id, network, proto, host_ip, pairs, proxy)
        return {"container_ip": str(endpoint.ip), "ports": [m.public() for m in mappings]}

    async def _publish(
        self,
        id: str,
        network: str | None,
        proto: str,
        host_ip: HostAddress | None,
        pairs: list[tuple[int, int]],
        proxy: bool,
    ) -> tuple[Endpoint, list[PortMapping]]:
        driver = self._driver()
        if not proxy and not self.config.iptables:
            raise InvalidParams(
                "Bad parameter: proxy false needs --iptables: the rules are the port",
                param="proxy",
            )
        if not proxy and host_ip is not None and host_ip.version == 6:
            raise InvalidParams(
                "Bad parameter: proxy false needs an IPv4 host_ip: a port on an IPv6 address "
                "is published by the proxy alone",
                param="proxy",
            )
        async with self._gate.change(), self._containers.hold(id):
            net, endpoint = driver.networks.endpoint_for(id, network)
            if net.spec.internal:
                raise NetworkInternal(net.name)
            bridge = net.spec.bridge
            address = host_ip or net.spec.host_binding_ip
            mappings = await driver.mapper.map(
                bridge, endpoint, proto, address, pairs, with_proxy=proxy
            )

            async def undo() -> None:
                await driver.mapper.unmap(bridge, endpoint, mappings)

            await self._record_or_undo([Published(net.name, id, m) for m in mappings], undo)
        return endpoint, mappings

    async def unpublish(self, id: str, network: str) -> list[dict[str, Any]]:
        """Take back every port published through the endpoint, which stays (Docker's
        RevokeExternalConnectivity); the mappings taken back."""
        driver = self._driver()
        async with self._gate.change(), self._containers.hold(id):
            net = driver.networks.get(network)
            endpoint = net.endpoint(id, releasing=True)
            mappings = list(endpoint.ports)
            # Recorded first, as a release is (see release_interface).
            self._record([Unpublished(net.name, id, m) for m in mappings])
            await driver.mapper.unmap(net.spec.bridge, endpoint, mappings)
        return [m.public() for m in mappings]

    async def link(
        self,
        action: str,
        parent_ip: IPv4Address,
        child_ip: IPv4Address,
        ports: list[str],
        ignore_errors: bool,
        network: str,
    ) -> dict[str, Any]:
        driver = self._driver()
        net = driver.networks.get(network)
        if not self.config.iptables:  # --iptables=false forces --icc=true: nothing to open
            return {"rules": 0}
        adding = action in ADD_ACTIONS
        async with self._gate.change():
            bridge = net.spec.bridge
            by_ip = {e.ip: e.ipv6 for e in net.endpoints.values() if e.ipv6 is not None}
            parent_v6, child_v6 = by_ip.get(parent_ip), by_ip.get(child_ip)
            both = (parent_v6, child_v6) if parent_v6 and child_v6 else None
            changed = await driver.links.link(
                net.name, bridge, adding, parent_ip, child_ip, ports, ignore_errors, both
            )

            async def undo() -> None:
                await driver.links.link(
                    net.name, bridge, not adding, parent_ip, child_ip, ports, True, both
                )

            kind = Linked if adding else Unlinked
            await self._record_or_undo([kind(link) for link in changed], undo)
        return {"rules": sum(len(link_rules(bridge, link)) for link in changed)}

    # -- the state file -------------------------------------------------------------------

    async def _record_or_undo(
        self, records: list[Record], undo: Callable[[], Awaitable[None]]
    ) -> None:
        """Make a committed change durable before it is acknowledged; undo it if that fails."""
        try:
            self._record(records)
        except OSError:
            with trio.CancelScope(shield=True):
                await undo()
            raise

    def _record(self, records: list[Record]) -> None:
        if self.state is not None and records:
            self.state.append(*records)

    # -- checks and counts ----------------------------------------------------------------

    async def verify(self, repair: bool) -> dict[str, Any]:
        driver = self._driver()
        async with self._gate.exclusive():
            return await verify(driver, repair=repair)

    async def heal_firewall(self) -> None:
        """Put back at once what another program changed of the daemon's rules.

        Cheap when nothing changed (FirewallBackend.changed_by_others); after a change by
        anyone, one verify --repair, which logs each entry it put back.
        """
        driver = self.driver
        if driver is None or not self.config.iptables:
            return
        if not await driver.kernel.firewall(FirewallBackend.changed_by_others):
            return
        async with self._gate.exclusive():
            drift = (await verify(driver, repair=True))["drift"]
        if drift:
            self.firewall_repairs += len(drift)
            log.warning("firewall: another program changed our rules; %d put back", len(drift))

    def owned_rules(self) -> Counter[str]:
        """How many rules the daemon owns in each table: what verify would check."""
        driver = self.driver
        if driver is None or not self.config.iptables:
            return Counter()
        return driver.owned_rule_counts()

    def summary(self) -> str:
        """One line for systemd's STATUS=: "docker0 172.17.42.1/16, 3 interfaces, 5 ports"."""
        if self.driver is None:
            return "networking disabled (-b none)"
        networks = self.driver.networks
        spec = self.driver.default.spec
        more = f", {len(networks) - 1} more networks" if len(networks) > 1 else ""
        return (
            f"{spec.bridge} {spec.gateway}{more}, "
            f"{networks.endpoint_count()} interfaces, {networks.port_mapping_count()} ports"
        )

    async def list_interfaces(self) -> list[dict[str, Any]]:
        return [_endpoint(e) for e in self._driver().networks.endpoints()]

    async def status(self) -> dict[str, Any]:
        driver = self.driver
        spec = driver.default.spec if driver else None
        return {
            "version": __version__,
            "bridge": spec.bridge if spec else None,
            "bridge_cidr": str(spec.gateway) if spec else None,
            "gateway": str(spec.gateway.ip) if spec else None,
            "network_disabled": driver is None,
            "config": self.config.public(),
            "networks": len(driver.networks) if driver else 0,
            "interfaces": driver.networks.endpoint_count() if driver else 0,
            "port_mappings": driver.networks.port_mapping_count() if driver else 0,
            "links": len(driver.links.active) if driver else 0,
            "firewall_repairs": self.firewall_repairs,
            "cluster": self.cluster_member.public() if self.cluster_member else None,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }

    async def cluster(self) -> dict[str, Any]:
        member = self.cluster_member
        return {"enabled": member is not None, "hosts": member.host_list() if member else []}


def _overlaps_v6(network: Network, subnet: IPv6Network) -> bool:
    held = network.spec.subnet_v6
    return held is not None and held.overlaps(subnet)


def _gateway(subnet: IPv4Network, gateway: IPv4Address | None) -> IPv4Interface:
    """The bridge's address: the given gateway, or the subnet's first address."""
    address = gateway or subnet.network_address + 1
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidParams(
            f"Bad parameter: gateway {address} is not a host address of subnet {subnet}",
            param="gateway",
        )
    return IPv4Interface(f"{address}/{subnet.prefixlen}")


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _endpoint(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as list_interfaces and network_inspect show it."""
    shown = {
        "id": endpoint.container_id,
        "network": endpoint.network,
        "ip": str(endpoint.ip),
        "mac_address": endpoint.mac_address,
        "ports": [p.public() for p in endpoint.ports],
    }
    return {**shown, **_attachment(endpoint)}


def _described(network: Network, endpoint: Endpoint) -> dict[str, Any]:
    """allocate_interface's answer: Network.describe, and where it was wired in if it was."""
    return {**network.describe(endpoint), **_attachment(endpoint)}


def _attachment(endpoint: Endpoint) -> dict[str, Any]:
    attachment = endpoint.attachment
    if attachment is None:
        return {}
    return {
        "netns": attachment.netns,
        "ifname": attachment.ifname,
        "host_veth": attachment.host_veth,
    }
