"""The bridge driver: networks in the kernel, set up at boot and on demand.

``init_networkdriver`` is Docker 1.4's InitDriver for the default network
``bridge``: find or create the bridge, then (with --iptables) the boot rules
and the nat DOCKER chain, then ip_forward.  :func:`setup_network` and
:func:`teardown_network` do the same for the networks ``network_create`` makes
and ``network_delete`` removes: a bridge of their own, their tagged rules, and
the isolation rules that change with the set of networks.  The decisions are
made here; every kernel call goes through the kernel worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

from .config import Config
from .errors import Conflict, FirewallFailed, StartupError
from .ipam import BadSubnet
from .jobs import Job, run_job
from .kernel import bridge as bridges
from .kernel import plumbing
from .kernel.firewall import FirewallBackend
from .kernel.plumbing import Plumbing
from .kernel.worker import KernelWorker
from .links import Links
from .netutil import choose_bridge_address, nameservers
from .network import DEFAULT_NETWORK, Endpoint, Network, NetworkSpec
from .networks import Networks
from .pools import machine_ula
from .portmapper import PortMapper
from .proxy import ProxySupervisor
from .rules import (
    Rule,
    boot_plan,
    direct_access_rule,
    isolation_rules,
    link_rules,
    own_network_rules,
    owned_rule_counts,
    owned_rules,
)

log = logging.getLogger("dockernetd.driver")

DEFAULT_MTU = 1500


@dataclass
class Driver:
    """What init_networkdriver sets up and the handlers use."""

    networks: Networks
    mapper: PortMapper
    links: Links
    kernel: KernelWorker
    config: Config
    mtu: int  # what containers use when a network does not say (--mtu, or the default route's)

    @property
    def default(self) -> Network:
        return self.networks.get(DEFAULT_NETWORK)

    @property
    def guards_direct_access(self) -> bool:
        """Each endpoint gets Docker 28's raw-table guard (not with --allow-direct-routing)."""
        return self.config.iptables and not self.config.allow_direct_routing

    def owned_rules(self) -> list[Rule]:
        """The rules the firewall should hold in the daemon's places (see rules.owned_rules)."""
        return owned_rules(
            self.networks, self.links.active, direct_access=self.guards_direct_access
        )

    def owned_rule_counts(self) -> Counter[str]:
        """How many rules the daemon owns in each table, the boot plan's too: what verify checks."""
        plan = boot_plan(self.default.spec)
        return Counter(rule.table for rule in (*plan.present, *plan.jumps)) + owned_rule_counts(
            self.networks, self.links.active, direct_access=self.guards_direct_access
        )


async def init_networkdriver(
    config: Config, kernel: KernelWorker, proxies: ProxySupervisor
) -> Driver:
    """Run the init job: bridge, boot rules, ip_forward, allocators over the network."""
    with run_job(Job("init_networkdriver", env=config.job_env())):
        try:
            address = await _bridge_address(config, kernel)
            mtu = config.mtu or await _default_mtu(kernel)
            spec = default_spec(config, address, mtu)
            if spec.gateway_v6 is not None:
                await _setup_ipv6(kernel, spec)
            if config.iptables:
                plan = boot_plan(spec)
                try:
                    # what the other backend left, from a run before the switch
                    for left in await kernel.firewall(FirewallBackend.forget_other_backend, plan):
                        log.info("firewall: removed %s (the other backend's)", left)
                    await kernel.firewall(FirewallBackend.setup, plan)
                except FirewallFailed as exc:  # "Unable to set up iptables: <why>"
                    raise StartupError(f"Unable to set up {exc.message}") from exc
            if config.ip_forward:
                await kernel.call(bridges.enable_ip_forward)
                if spec.gateway_v6 is not None:
                    await kernel.call(bridges.enable_ipv6_forward)
        except OSError as exc:  # the netlink adapter raises the kernel's refusals as OSError
            raise StartupError(f"{config.bridge_name}: {exc}") from exc
        try:
            network = Network(spec)
        except BadSubnet as exc:
            raise StartupError(f"--fixed-cidr {config.fixed_cidr}: {exc}") from None
        log.info(
            "bridge %s %s, %d addresses for containers",
            config.bridge_name,
            address,
            network.ips.capacity,
        )
        networks = Networks()
        networks.add(network)
        return Driver(
            networks,
            PortMapper(kernel, proxies, iptables=config.iptables),
            Links(kernel),
            kernel,
            config,
            mtu,
        )


def default_spec(config: Config, address: IPv4Interface, mtu: int) -> NetworkSpec:
    """The flags' network, ``bridge``; its id is stable across restarts.  With --ipv6 its
    IPv6 subnet is --fixed-cidr-v6, or the first /64 of the machine's unique-local /48."""
    digest = hashlib.sha256(f"dockernetd:{DEFAULT_NETWORK}:{config.bridge_name}".encode())
    gateway_v6 = None
    if config.ipv6:
        subnet_v6 = config.fixed_subnet_v6 or next(machine_ula().subnets(new_prefix=64))
        gateway_v6 = IPv6Interface((subnet_v6.network_address + 1, subnet_v6.prefixlen))
    return NetworkSpec(
        name=DEFAULT_NETWORK,
        id=digest.hexdigest(),
        bridge=config.bridge_name,
        gateway=address,
        ip_range=config.fixed_subnet,
        internal=False,
        icc=config.icc,
        ip_masq=config.ip_masq,
        mtu=mtu,
        host_binding_ip=config.binding_ip,
        gateway_v6=gateway_v6,
        cluster_pool=config.cluster.pool if config.cluster else None,
    )


async def _setup_ipv6(kernel: KernelWorker, spec: NetworkSpec) -> None:
    """A dual-stack network's bridge addresses."""
    assert spec.gateway_v6 is not None
    await kernel.call(bridges.ensure_ipv6, spec.bridge, spec.gateway_v6)


async def _forward_ipv6(driver: Driver, spec: NetworkSpec) -> None:
    """IPv6 routing, once a dual-stack network has its rules (with --ip-forward)."""
    if spec.gateway_v6 is not None and driver.config.ip_forward:
        await driver.kernel.call(bridges.enable_ipv6_forward)


async def setup_network(driver: Driver, spec: NetworkSpec) -> None:
    """The bridge and rules of a new network, all or nothing (Conflict, FirewallFailed)."""
    try:
        await driver.kernel.call(bridges.create_network_bridge, spec.bridge, spec.gateway)
    except bridges.DeviceExists:
        raise Conflict(
            f"a network interface named {spec.bridge} exists already", bridge=spec.bridge
        ) from None
    if spec.gateway_v6 is not None:
        try:
            await _setup_ipv6(driver.kernel, spec)
        except OSError:
            await driver.kernel.call(bridges.delete_bridge, spec.bridge)
            raise
    if driver.config.iptables:
        specs = [network.spec for network in driver.networks]
        try:
            insert, delete = _isolation_change(specs, [*specs, spec])
            own = own_network_rules(spec, direct_access=driver.guards_direct_access)
            rules = [*own, *insert]
            await driver.kernel.change_rules(insert=rules, delete=delete)
        except FirewallFailed:
            await driver.kernel.call(bridges.delete_bridge, spec.bridge)
            raise
    await _forward_ipv6(driver, spec)


async def teardown_network(driver: Driver, network: Network) -> None:
    """Delete the rules and bridge of a network already taken out of ``driver.networks``
    (so nothing can join it meanwhile); errors are logged."""
    spec = network.spec
    if driver.config.iptables:
        others = [n.spec for n in driver.networks]
        _, delete = _isolation_change([*others, spec], others)  # one network fewer: only deletes
        links = [r for link in driver.links.of(spec.name) for r in link_rules(spec.bridge, link)]
        own = own_network_rules(spec, direct_access=driver.guards_direct_access)
        await driver.kernel.remove_rules([*links, *own, *delete])
    try:
        await driver.kernel.call(bridges.delete_bridge, spec.bridge)
    except OSError as exc:
        log.warning("network %s: bridge %s not deleted: %s", spec.name, spec.bridge, exc)


async def open_endpoint(driver: Driver, network: Network, endpoint: Endpoint) -> None:
    """A new endpoint's direct-access guard, unless direct routing is allowed (FirewallFailed)."""
    if driver.guards_direct_access:
        rule = direct_access_rule(network.spec.bridge, endpoint)
        await driver.kernel.change_rules(insert=[rule])


async def close_endpoint(driver: Driver, network: Network, endpoint: Endpoint) -> None:
    """Take a released endpoint's guard away (a guard already gone is only logged)."""
    if driver.guards_direct_access:
        await driver.kernel.remove_rules([direct_access_rule(network.spec.bridge, endpoint)])


async def plumb_endpoint(driver: Driver, network: Network, endpoint: Endpoint) -> None:
    """Wire an endpoint into its namespace (OSError, NotANetns); see kernel/plumbing.py."""
    attachment = endpoint.attachment
    assert attachment is not None
    spec = network.spec
    plan = Plumbing(
        netns=attachment.netns,
        host_veth=attachment.host_veth,
        ifname=attachment.ifname,
        bridge=spec.bridge,
        mac=endpoint.mac_address,
        mtu=spec.mtu,
        address=network.address_of(endpoint),
        gateway=spec.gateway.ip,
        address_v6=network.address_v6_of(endpoint),
        gateway_v6=spec.gateway_v6.ip if spec.gateway_v6 else None,
    )
    await driver.kernel.call(plumbing.plumb, plan)


async def inspect_endpoint(driver: Driver, network: Network, endpoint: Endpoint) -> list[str]:
    """What is wrong with a wired-in endpoint in its namespace (CNI's CHECK); [] if nothing."""
    attachment = endpoint.attachment
    if attachment is None:
        return ["not attached by the daemon"]
    if attachment.netns is None:
        return ["handed over to its runtime: the daemon does not know its namespace"]
    return await driver.kernel.call(
        plumbing.inspect, attachment.netns, attachment.ifname, network.address_of(endpoint)
    )


async def unplumb_endpoint(driver: Driver, endpoint: Endpoint, *, wait: bool = True) -> None:
    """Delete the veth the daemon made for an endpoint, if it did (errors logged); with
    ``wait`` False the deletion is left to finish on the kernel thread (see post)."""
    if endpoint.attachment is None:
        return
    host_veth = endpoint.attachment.host_veth
    if not wait:
        what = f"{endpoint.container_id}: deleting veth {host_veth}"
        driver.kernel.post(plumbing.unplumb, host_veth, what=what)
        return
    try:
        await delete_veth(driver, host_veth)
    except OSError as exc:
        log.warning("%s: veth %s not deleted: %s", endpoint.container_id, host_veth, exc)


async def delete_veth(driver: Driver, host_veth: str) -> bool:
    """Delete a veth pair by its host end if it is there (OSError); whether it was."""
    deleted: bool = await driver.kernel.call(plumbing.unplumb, host_veth)
    return deleted


async def restore_network(driver: Driver, spec: NetworkSpec) -> None:
    """A recorded network's bridge as it was (its rules are reconciled with all the others)."""
    await driver.kernel.call(bridges.ensure_bridge, spec.bridge, spec.gateway)
    if spec.gateway_v6 is not None:
        await _setup_ipv6(driver.kernel, spec)
        await _forward_ipv6(driver, spec)


def _isolation_change(
    before: list[NetworkSpec], after: list[NetworkSpec]
) -> tuple[list[Rule], list[Rule]]:
    """The isolation rules to insert and to delete when the networks go from before to after."""
    old, new = isolation_rules(before), isolation_rules(after)
    kept_old, kept_new = set(old), set(new)
    return [r for r in new if r not in kept_old], [r for r in old if r not in kept_new]


async def local_networks(driver: Driver) -> list[tuple[IPv4Network, str]]:
    """What a new network's subnet must not overlap: networks, nameservers, routes (the
    networks first: a network's bridge has a route of its subnet, and its name says more)."""
    routes = await driver.kernel.call(bridges.main_routes)
    in_use = [(n.spec.subnet, f"network {n.name}") for n in driver.networks]
    in_use += [(ns, f"nameserver {ns.network_address}") for ns in _nameservers(driver.config)]
    in_use += [(route, f"route {route}") for route in routes if route.prefixlen > 0]
    return in_use


def _nameservers(config: Config) -> list[IPv4Network]:
    try:
        with open(config.resolv_conf, encoding="utf-8", errors="replace") as f:
            return nameservers(f.read())
    except OSError as exc:  # Docker: a missing resolv.conf means no nameservers
        log.info("not reading nameservers from %s: %s", config.resolv_conf, exc.strerror)
        return []


async def _bridge_address(config: Config, kernel: KernelWorker) -> IPv4Interface:
    name = config.bridge_name
    try:
        address = await kernel.call(bridges.iface_addr, name)
    except bridges.NoAddress as exc:
        if not config.using_default_bridge:
            raise StartupError(str(exc)) from None
        log.info("%s; configuring bridge %s", exc, name)
        await _configure_bridge(config, kernel)
        try:
            return await kernel.call(bridges.iface_addr, name)
        except bridges.NoAddress as again:
            raise StartupError(str(again)) from None
    if config.bridge_address and config.bridge_address.ip != address.ip:
        raise StartupError(
            f"bridge ip ({address.ip}) does not match existing bridge configuration "
            f"{config.bridge_address.ip}"
        )
    return address


async def _configure_bridge(config: Config, kernel: KernelWorker) -> None:
    address = config.bridge_address or await _choose_address(config, kernel)
    try:
        await kernel.call(bridges.create_bridge, config.bridge_name, address)
    except bridges.BridgeSetupFailed as exc:
        raise StartupError(str(exc)) from None


async def _choose_address(config: Config, kernel: KernelWorker) -> IPv4Interface:
    routes = await kernel.call(bridges.main_routes)
    chosen, rejected = choose_bridge_address(_nameservers(config), routes)
    for rejection in rejected:
        log.info("bridge address %s rejected: %s", rejection.candidate, rejection.reason)
    if chosen is None:
        name = config.bridge_name
        raise StartupError(
            f"Could not find a free IP address range for interface '{name}'. "
            f"Please configure its address manually and run 'dockernetd -b {name}'"
        )
    return chosen


async def _default_mtu(kernel: KernelWorker) -> int:
    """Docker's --mtu 0: the default route interface's MTU, or 1500 without one."""
    mtu: int | None = await kernel.call(bridges.default_route_mtu)
    return mtu or DEFAULT_MTU
