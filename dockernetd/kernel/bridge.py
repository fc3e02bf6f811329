"""Bridge devices, on the kernel thread: find, create, check, repair and delete them.

Each function takes the worker's :class:`~dockernetd.kernel.worker.KernelContext`
and is run with ``kernel.call``; the decisions (which address, which error for
the client) are made by the callers.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from typing import TYPE_CHECKING, Any

from ..netutil import random_mac
from .netlink import enable_ip_forward as write_ip_forward
from .netlink import write_sysctl

if TYPE_CHECKING:
    from .worker import KernelContext

log = logging.getLogger("dockernetd.bridge")


class NoAddress(Exception):
    """GetIfaceAddr failed: the bridge is missing or has no IPv4 address."""


class DeviceExists(Exception):
    """A new network's bridge name is taken by an interface the daemon did not make."""


class BridgeSetupFailed(Exception):
    """A step of creating a bridge failed; the message says which, as Docker 1.4's did."""


def iface_addr(ctx: KernelContext, name: str) -> IPv4Interface:
    """Docker's GetIfaceAddr: the bridge's first IPv4 address, brought up if it was down."""
    link = ctx.netlink.link(name)
    if link is None:
        raise NoAddress(f"{name}: no such network interface")
    addresses = ctx.netlink.ipv4_addresses(link.index)
    if not addresses:
        raise NoAddress(f"Interface {name} has no IP addresses")
    if len(addresses) > 1:
        log.warning(
            "Interface %s has more than 1 IPv4 address. Defaulting to using %s",
            name,
            addresses[0].ip,
        )
    if not link.up:
        log.info("bridge %s was down; setting it up", link.name)
        ctx.netlink.set_up(link.index)
    return addresses[0]


def create_bridge(ctx: KernelContext, name: str, address: IPv4Interface) -> None:
    """Create the bridge (an address-less existing one is reused), address it, set it up."""
    netlink = ctx.netlink
    netlink.create_bridge(name, random_mac())
    link = netlink.link(name)
    if link is None:
        raise BridgeSetupFailed(f"{name}: no such network interface after creating it")
    try:
        netlink.add_address(link.index, address)
    except OSError as exc:
        raise BridgeSetupFailed(f"Unable to add private network: {exc}") from exc
    try:
        netlink.set_up(link.index)
    except OSError as exc:
        raise BridgeSetupFailed(f"Unable to start network bridge: {exc}") from exc


def create_network_bridge(ctx: KernelContext, name: str, address: IPv4Interface) -> None:
    """A new network's bridge, addressed and up; DeviceExists if the name is taken (an
    interface of someone else's is never adopted, let alone given an address)."""
    if not ctx.netlink.create_bridge(name, random_mac()):
        raise DeviceExists(name)
    ensure_bridge(ctx, name, address, made=True)


def bridge_drift(ctx: KernelContext, name: str, address: IPv4Interface) -> list[dict[str, Any]]:
    """How the bridge differs from what it should be (verify's entries); [] if it does not."""
    link = ctx.netlink.link(name)
    if link is None:
        return [{"kind": "bridge_missing", "bridge": name}]
    drift: list[dict[str, Any]] = []
    found = ctx.netlink.ipv4_addresses(link.index)
    if address not in found:
        drift.append(
            {
                "kind": "bridge_address",
                "bridge": name,
                "expected": str(address),
                "found": [str(a) for a in found],
            }
        )
    if not link.up:
        drift.append({"kind": "bridge_down", "bridge": name})
    return drift


def ensure_bridge(
    ctx: KernelContext, name: str, address: IPv4Interface, *, made: bool = False
) -> None:
    """The bridge exists, holds ``address`` and is up, whatever was missing (idempotent).

    A bridge just made has no address yet: only one that existed is asked for its
    addresses (a dump that grows with the host's addresses).
    """
    netlink = ctx.netlink
    made = made or (netlink.link(name) is None and netlink.create_bridge(name, random_mac()))
    link = netlink.link(name)
    if link is None:
        raise BridgeSetupFailed(f"{name}: no such network interface after creating it")
    if made or address not in netlink.ipv4_addresses(link.index):
        netlink.add_address(link.index, address)
    netlink.set_up(link.index)


def delete_bridge(ctx: KernelContext, name: str) -> None:
    """Delete the bridge if it exists (the containers' veths in it go with it)."""
    link = ctx.netlink.link(name)
    if link is not None:
        ctx.netlink.delete_link(link.index)


def enable_route_localnet(ctx: KernelContext, bridge: str) -> None:
    """Let packets from 127.0.0.0/8 be routed out of the bridge: what the host's own
    connections to 127.0.0.1 need once DNAT sends them to a container (a warning if not)."""
    try:
        with open(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet", "w") as f:
            f.write("1\n")
    except OSError as exc:
        log.warning(
            "%s: route_localnet not set (127.0.0.1 will not reach its ports): %s", bridge, exc
        )


def main_routes(ctx: KernelContext) -> list[IPv4Network]:
    return ctx.netlink.main_routes()


def default_route_mtu(ctx: KernelContext) -> int | None:
    return ctx.netlink.default_route_mtu()


def enable_ip_forward(ctx: KernelContext) -> None:
    try:
        write_ip_forward()
    except OSError as exc:
        log.warning("WARNING: unable to enable IPv4 forwarding: %s", exc)


def enable_ipv6_forward(ctx: KernelContext) -> None:
    """Routing for dual-stack networks (Docker's ``net.ipv6.conf.all.forwarding=1``)."""
    try:
        write_sysctl("net/ipv6/conf/all/forwarding", "1")
    except OSError as exc:
        log.warning("WARNING: unable to enable IPv6 forwarding: %s", exc)


#: Every bridge's IPv6 link-local address, as Docker 28 gives its bridges.
LINK_LOCAL_GATEWAY = IPv6Interface("fe80::1/64")


def ensure_ipv6(ctx: KernelContext, name: str, gateway: IPv6Interface) -> None:
    """The bridge's IPv6 side: duplicate address detection off (as Docker 28, so the
    gateway address is usable at once, not "tentative" for a second), the gateway address
    and fe80::1/64, whichever is missing (idempotent)."""
    link = ctx.netlink.link(name)
    if link is None:
        raise BridgeSetupFailed(f"{name}: no such network interface")
    write_sysctl(f"net/ipv6/conf/{name}/accept_dad", "0")
    held = ctx.netlink.ipv6_addresses(link.index)
    for address in (gateway, LINK_LOCAL_GATEWAY):
        if address not in held:
            ctx.netlink.add_address6(link.index, address)
