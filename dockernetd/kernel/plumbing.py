"""A container's interface in its network namespace: the veth pair a CNI plugin makes.

Run on the kernel thread (``kernel.call``).  The namespace is given as a path (what
CNI_NETNS is: ``/run/netns/<name>``, ``/proc/<pid>/ns/net``); it is checked to be a
network namespace before anything is done with it.  The veth is created with its
container end already inside the namespace (IFLA_NET_NS_FD); the container end is
then configured through a netlink socket opened *in* that namespace: this thread
enters it with setns(2) only while the socket is opened and leaves it at once
(Python 3.11 has no os.setns, hence libc; the socket stays bound to the namespace
it was opened in).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING, Any

from .netlink import MAIN_TABLE, os_errors

if TYPE_CHECKING:
    from .worker import KernelContext

log = logging.getLogger("dockernetd.plumbing")
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # linux/nsfs.h: _IO(0xb7, 0x3)
IFA_F_NODAD = 0x02  # linux/if_addr.h
_libc = ctypes.CDLL(None, use_errno=True)


class NotANetns(ValueError):
    """The path is not a network namespace (or cannot be opened)."""


@dataclass(frozen=True)
class Plumbing:
    """What to make: the host end in ``bridge``, the container end ``ifname`` in ``netns``,
    or left in the daemon's namespace when ``netns`` is None (see Attachment)."""

    netns: str | None
    host_veth: str
    ifname: str
    bridge: str
    mac: str
    mtu: int
    address: IPv4Interface
    gateway: IPv4Address
    address_v6: IPv6Interface | None = None  # on a dual-stack network
    gateway_v6: IPv6Address | None = None


def plumb(ctx: KernelContext, plan: Plumbing) -> None:
    """Make the veth pair (one request: the host end up in the bridge, the container end
    with its MAC, both with the MTU); inside a namespace, also give the container end its
    address, bring it up and route by default via the gateway.  A pair left by an earlier
    attempt is replaced."""
    bridge = ctx.netlink.link(plan.bridge)
    if bridge is None:
        raise OSError(f"bridge {plan.bridge} is missing")
    unplumb(ctx, plan.host_veth)
    if plan.netns is None:
        _add_veth(ctx, plan, bridge.index, None)
        return
    with open_netns(plan.netns) as fd, os_errors():
        _add_veth(ctx, plan, bridge.index, fd)
        with _unplumbed_on_failure(ctx, plan.host_veth), netlink_in(fd) as inside:
            index = inside.link_lookup(ifname=plan.ifname)[0]
            inside.addr(
                "add",
                index=index,
                address=str(plan.address.ip),
                prefixlen=plan.address.network.prefixlen,
                broadcast=str(plan.address.network.broadcast_address),
            )
            if plan.address_v6 is not None:  # no duplicate address detection: usable at once
                inside.addr(
                    "add",
                    index=index,
                    family=socket.AF_INET6,
                    address=str(plan.address_v6.ip),
                    prefixlen=plan.address_v6.network.prefixlen,
                    flags=IFA_F_NODAD,
                )
            inside.link("set", index=index, state="up")
            inside.route("replace", dst="0.0.0.0/0", gateway=str(plan.gateway))
            if plan.gateway_v6 is not None:
                inside.route(
                    "replace", family=socket.AF_INET6, dst="::/0", gateway=str(plan.gateway_v6)
                )


def _add_veth(ctx: KernelContext, plan: Plumbing, bridge_index: int, netns_fd: int | None) -> None:
    ctx.netlink.add_veth(plan.host_veth, bridge_index, plan.mtu, plan.ifname, plan.mac, netns_fd)


@contextlib.contextmanager
def _unplumbed_on_failure(ctx: KernelContext, host_veth: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        unplumb(ctx, host_veth)
        raise


def unplumb(ctx: KernelContext, host_veth: str) -> bool:
    """Delete the pair by its host end, if it is there (gone with its namespace, or never);
    whether it was."""
    link = ctx.netlink.link(host_veth)
    if link is None:
        return False
    ctx.netlink.delete_link(link.index)
    return True


def inspect(ctx: KernelContext, netns: str, ifname: str, address: IPv4Interface) -> list[str]:
    """What is wrong with a container's interface, [] if nothing: CNI's CHECK."""
    try:
        handle = open_netns(netns)
    except NotANetns as exc:
        return [str(exc)]
    with handle as fd, netlink_in(fd) as inside, os_errors():
        found = inside.link_lookup(ifname=ifname)
        if not found:
            return [f"{ifname} is missing in {netns}"]
        problems = []
        held = [
            IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in inside.addr("dump", index=found[0], family=socket.AF_INET)
        ]
        if address not in held:
            problems.append(f"{ifname} does not hold {address}")
        defaults = [
            r
            for r in inside.route("dump", family=socket.AF_INET, table=MAIN_TABLE)
            if r["dst_len"] == 0
        ]
        if not defaults:
            problems.append(f"no default route in {netns}")
        return problems


@contextlib.contextmanager
def open_netns(path: str) -> Iterator[int]:
    """An open descriptor of a network namespace file; NotANetns for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NotANetns(f"{path}: {exc.strerror}") from None
    try:
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)  # nsfs only: ENOTTY for any other file
        except OSError:
            kind = 0
        if kind != CLONE_NEWNET:
            raise NotANetns(f"{path} is not a network namespace")
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def netlink_in(fd: int) -> Iterator[Any]:
    """A pyroute2 IPRoute whose socket lives in the namespace ``fd``, closed on exit."""
    from pyroute2 import IPRoute

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        try:
            ipr = IPRoute()
        finally:
            _return_home(home)
    finally:
        os.close(home)
    try:
        yield ipr
    finally:
        ipr.close()


def _return_home(home: int) -> None:
    """Back to the daemon's namespace; if that fails, stop: every later call of this
    thread would change the container's namespace instead of the host's."""
    try:
        _setns(home)
    except OSError as exc:
        log.critical("cannot return to the daemon's network namespace: %s; exiting", exc)
        os._exit(70)  # EX_SOFTWARE; the state file has everything for the next start


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
