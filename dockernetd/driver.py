"""init_networkdriver: find or create the bridge, as Docker 1.4's InitDriver did.

The decisions (which address, which error) are made here; every kernel call
goes through the kernel worker.  In Docker 1.4's order: the bridge, then (with
--iptables) the boot rules and the nat DOCKER chain, then ip_forward, then the
allocator over the bridge network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Interface

from .config import Config
from .errors import StartupError
from .ipam import BadSubnet
from .jobs import Job, run_job
from .kernel.firewall import FirewallError
from .kernel.netlink import LinkInfo, Netlink, enable_ip_forward
from .kernel.worker import KernelContext, KernelWorker
from .links import Links
from .netutil import choose_bridge_address, nameservers, parse_cidr, random_mac
from .network import Bridge, BridgeNetwork
from .portmapper import PortMapper
from .proxy import ProxySupervisor
from .rules import boot_plan

log = logging.getLogger("dockernetd.driver")

DEFAULT_MTU = 1500


class _NoAddress(Exception):
    """GetIfaceAddr failed: the bridge is missing or has no IPv4 address."""


@dataclass
class BridgeDriver:
    """What init_networkdriver sets up and the handlers use."""

    network: BridgeNetwork
    mapper: PortMapper
    links: Links
    kernel: KernelWorker


async def init_networkdriver(
    config: Config, kernel: KernelWorker, proxies: ProxySupervisor
) -> BridgeDriver:
    """Run the init job: bridge, boot rules, ip_forward, allocators over the network."""
    with run_job(Job("init_networkdriver", env=config.job_env())):
        try:
            address = await _bridge_address(config, kernel)
            mtu = config.mtu or await _default_mtu(kernel)
            if config.iptables:
                await _setup_iptables(config, address, kernel)
            if config.ip_forward:
                await kernel.call(_enable_ip_forward)
        except OSError as exc:  # NetlinkError is an OSError
            raise StartupError(f"{config.bridge_name}: {exc}") from exc
        fixed_cidr = parse_cidr(config.fixed_cidr).network if config.fixed_cidr else None
        try:
            network = BridgeNetwork(Bridge(config.bridge_name, address, mtu), fixed_cidr)
        except BadSubnet as exc:
            raise StartupError(f"--fixed-cidr {config.fixed_cidr}: {exc}") from None
        log.info(
            "bridge %s %s, %d addresses for containers",
            config.bridge_name,
            address,
            network.ips.capacity,
        )
        name = config.bridge_name
        return BridgeDriver(
            network,
            PortMapper(name, kernel, proxies, iptables=config.iptables),
            Links(name, kernel),
            kernel,
        )


async def _setup_iptables(config: Config, address: IPv4Interface, kernel: KernelWorker) -> None:
    plan = boot_plan(config.bridge_name, address.network, icc=config.icc, ip_masq=config.ip_masq)
    try:
        await kernel.call(lambda ctx: ctx.firewall.setup(plan))
    except FirewallError as exc:
        raise StartupError(f"Unable to set up iptables: {exc}") from exc


async def _bridge_address(config: Config, kernel: KernelWorker) -> IPv4Interface:
    name = config.bridge_name
    try:
        address = await kernel.call(_iface_addr, name)
    except _NoAddress as exc:
        if not config.using_default_bridge:
            raise StartupError(str(exc)) from None
        log.info("%s; configuring bridge %s", exc, name)
        await _configure_bridge(config, kernel)
        try:
            return await kernel.call(_iface_addr, name)
        except _NoAddress as again:
            raise StartupError(str(again)) from None
    if config.bip:
        requested = parse_cidr(config.bip)
        if requested.ip != address.ip:
            raise StartupError(
                f"bridge ip ({address.ip}) does not match existing bridge configuration "
                f"{requested.ip}"
            )
    return address


def _iface_addr(ctx: KernelContext, name: str) -> IPv4Interface:
    """Docker's GetIfaceAddr: the bridge's first IPv4 address, brought up if it was down."""
    link = ctx.netlink.link(name)
    if link is None:
        raise _NoAddress(f"{name}: no such network interface")
    addresses = ctx.netlink.ipv4_addresses(link.index)
    if not addresses:
        raise _NoAddress(f"Interface {name} has no IP addresses")
    if len(addresses) > 1:
        log.warning(
            "Interface %s has more than 1 IPv4 address. Defaulting to using %s",
            name,
            addresses[0].ip,
        )
    _ensure_up(ctx.netlink, link)
    return addresses[0]


def _ensure_up(netlink: Netlink, link: LinkInfo) -> None:
    if not link.up:
        log.info("bridge %s was down; setting it up", link.name)
        netlink.set_up(link.index)


async def _configure_bridge(config: Config, kernel: KernelWorker) -> None:
    if config.bip:
        address = parse_cidr(config.bip)
    else:
        address = await _choose_address(config, kernel)
    await kernel.call(_create_bridge, config.bridge_name, address)


async def _choose_address(config: Config, kernel: KernelWorker) -> IPv4Interface:
    try:
        with open(config.resolv_conf, encoding="utf-8", errors="replace") as f:
            resolvers = nameservers(f.read())
    except OSError as exc:  # Docker: a missing resolv.conf means no nameservers
        log.info("not reading nameservers from %s: %s", config.resolv_conf, exc.strerror)
        resolvers = []
    routes = await kernel.call(lambda ctx: ctx.netlink.main_routes())
    chosen, rejected = choose_bridge_address(resolvers, routes)
    for rejection in rejected:
        log.info("bridge address %s rejected: %s", rejection.candidate, rejection.reason)
    if chosen is None:
        name = config.bridge_name
        raise StartupError(
            f"Could not find a free IP address range for interface '{name}'. "
            f"Please configure its address manually and run 'dockernetd -b {name}'"
        )
    return chosen


def _create_bridge(ctx: KernelContext, name: str, address: IPv4Interface) -> None:
    """Create the bridge (an address-less existing one is reused), address it, set it up."""
    netlink = ctx.netlink
    netlink.create_bridge(name, random_mac())
    link = netlink.link(name)
    if link is None:
        raise StartupError(f"{name}: no such network interface after creating it")
    try:
        netlink.add_address(link.index, address)
    except OSError as exc:
        raise StartupError(f"Unable to add private network: {exc}") from exc
    try:
        netlink.set_up(link.index)
    except OSError as exc:
        raise StartupError(f"Unable to start network bridge: {exc}") from exc


async def _default_mtu(kernel: KernelWorker) -> int:
    """Docker's --mtu 0: the default route interface's MTU, or 1500 without one."""
    mtu: int | None = await kernel.call(lambda ctx: ctx.netlink.default_route_mtu())
    return mtu or DEFAULT_MTU


def _enable_ip_forward(ctx: KernelContext) -> None:
    try:
        enable_ip_forward()
    except OSError as exc:
        log.warning("WARNING: unable to enable IPv4 forwarding: %s", exc)
