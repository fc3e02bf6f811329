"""Netlink through pyroute2: the bridge, its addresses, routes, and a sysctl.

Thin on purpose: each method is one or two kernel calls and returns plain
values (``ipaddress`` objects, ints), so the decisions stay in the driver.
pyroute2 0.9 leaks a queued ACK on every ``link("get")``/``link_lookup``, and
its filtered dump parses every link of the host (28 ms with 100 bridges), so a
link is found by name with two ioctls instead (``if_nametoindex`` and
``SIOCGIFFLAGS``, both answered in the calling thread's network namespace).
Only the worker thread may call these methods.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
MAIN_TABLE = 254
#: The routing protocol number of the cluster's routes (unassigned in rtnetlink): a
#: restarted daemon finds the routes it made, and ``ip route show proto 199`` shows them.
CLUSTER_ROUTE_PROTO = 199
EEXIST = 17
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: the name, then ifr_flags in the union


@contextlib.contextmanager
def os_errors() -> Iterator[None]:
    """pyroute2's NetlinkError (not an OSError in 0.9) as the OSError it reports, so the
    callers' ``except OSError`` sees the kernel's refusals."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        raise OSError(exc.code, os.strerror(exc.code)) from exc


def _kernel_errors(method: F) -> F:
    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with os_errors():
            return method(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


class LinkInfo:
    def __init__(self, index: int, name: str, flags: int) -> None:
        self.index = index
        self.name = name
        self.up = bool(flags & IFF_UP)


class Netlink:
    def __init__(self) -> None:
        from pyroute2 import IPRoute  # imported here: 200 ms, only the worker needs it

        self._ipr = IPRoute()

        self._ioctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # for interface ioctls

    def close(self) -> None:
        self._ipr.close()
        self._ioctl.close()

    def link(self, name: str) -> LinkInfo | None:
        """The interface called ``name`` in this namespace, or None."""
        try:
            index = socket.if_nametoindex(name)
            answer = fcntl.ioctl(self._ioctl, SIOCGIFFLAGS, _IFREQ.pack(name.encode(), 0))
        except OSError:  # ENODEV (also when it went between the two calls)
            return None
        return LinkInfo(index, name, _IFREQ.unpack(answer)[1])

    @_kernel_errors
    def ipv4_addresses(self, index: int) -> list[IPv4Interface]:
        """The link's IPv4 addresses with their prefixes, in kernel order."""
        return [
            IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in self._ipr.addr("dump", index=index, family=socket.AF_INET)
        ]

    @_kernel_errors
    def ipv6_addresses(self, index: int) -> list[IPv6Interface]:
        return [
            IPv6Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in self._ipr.addr("dump", index=index, family=socket.AF_INET6)
        ]

    @_kernel_errors
    def add_address6(self, index: int, address: IPv6Interface) -> None:
        self._ipr.addr(
            "add",
            index=index,
            family=socket.AF_INET6,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
        )

    @_kernel_errors
    def main_routes(self) -> list[IPv4Network]:
        """Destinations of the IPv4 main table (the local table would overlap everything).

        Read from /proc/net/route, the main table of this namespace: pyroute2 takes
        ~0.2 ms to parse each route of a dump, 20 ms with 100 networks' routes.
        """
        with open("/proc/net/route", encoding="ascii") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        return [
            IPv4Network((_address(row[1]), bin(_address(row[7])).count("1")), strict=False)
            for row in rows
            if len(row) > 7
        ]

    @_kernel_errors
    def default_route_mtu(self) -> int | None:
        """The MTU of the first default route's interface, if there is one."""
        for r in self._ipr.route("dump", family=socket.AF_INET, table=MAIN_TABLE):
            oif = r.get("RTA_OIF")
            if r["dst_len"] == 0 and oif is not None:
                links = self._ipr.link("dump", index=oif)
                if links:
                    mtu: int = links[0].get("IFLA_MTU")
                    return mtu
        return None

    @_kernel_errors
    def create_bridge(self, name: str, mac: str) -> bool:
        """Create a bridge, True; an existing device of that name is left as it is, False."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._ipr.link("add", ifname=name, kind="bridge", address=mac)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise
            return False
        return True

    @_kernel_errors
    def add_address(self, index: int, address: IPv4Interface) -> None:
        self._ipr.addr(
            "add",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
            broadcast=str(address.network.broadcast_address),
        )

    @_kernel_errors
    def add_veth(
        self, name: str, master: int, mtu: int, peer: str, peer_mac: str, peer_netns_fd: int | None
    ) -> None:
        """A veth pair in one request: ``name`` up in the bridge ``master``, and ``peer``
        (down, with its MAC) created inside the namespace ``peer_netns_fd`` (in this one
        when None); both ends with ``mtu``."""
        where = {} if peer_netns_fd is None else {"net_ns_fd": peer_netns_fd}
        self._ipr.link(
            "add",
            ifname=name,
            kind="veth",
            master=master,
            mtu=mtu,
            state="up",
            peer={"ifname": peer, "address": peer_mac, "mtu": mtu, **where},
        )

    @_kernel_errors
    def delete_link(self, index: int) -> None:
        self._ipr.link("del", index=index)

    @_kernel_errors
    def cluster_routes(self) -> dict[IPv4Network, IPv4Address]:
        """The main table's routes of the cluster (by their protocol): destination, gateway."""
        return {
            IPv4Network(f"{r.get('RTA_DST')}/{r['dst_len']}"): IPv4Address(r.get("RTA_GATEWAY"))
            for r in self._ipr.route(
                "dump", family=socket.AF_INET, table=MAIN_TABLE, proto=CLUSTER_ROUTE_PROTO
            )
            if r.get("RTA_GATEWAY") and r.get("RTA_DST")
        }

    @_kernel_errors
    def replace_cluster_route(self, destination: IPv4Network, gateway: IPv4Address) -> None:
        self._ipr.route(
            "replace",
            dst=str(destination),
            gateway=str(gateway),
            table=MAIN_TABLE,
            proto=CLUSTER_ROUTE_PROTO,
        )

    @_kernel_errors
    def delete_cluster_route(self, destination: IPv4Network) -> None:
        self._ipr.route("del", dst=str(destination), table=MAIN_TABLE, proto=CLUSTER_ROUTE_PROTO)

    @_kernel_errors
    def set_up(self, index: int) -> None:
        self._ipr.link("set", index=index, state="up")


def _address(hex_text: str) -> int:
    """A /proc/net/route address field (the network-order bytes printed as a host-order
    number) as the address's integer."""
    return int.from_bytes(int(hex_text, 16).to_bytes(4, sys.byteorder), "big")


def enable_ip_forward() -> None:
    """Docker wrote "1\\n" to this file; per network namespace."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


def write_sysctl(path: str, value: str) -> None:
    """``/proc/sys/<path>`` of this network namespace (``net/ipv6/conf/all/forwarding``)."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(f"{value}\n")
