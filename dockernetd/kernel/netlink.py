"""Netlink through pyroute2: the bridge, its addresses, routes, and a sysctl.

Thin on purpose: each method is one or two kernel calls and returns plain
values (``ipaddress`` objects, ints), so the decisions stay in the driver.
pyroute2 0.9 leaks a queued ACK on every ``link("get")``/``link_lookup``, so
links are looked up with a filtered dump instead.  Only the worker thread
may call these methods.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Interface, IPv4Network
from typing import Any

MAIN_TABLE = 254
EEXIST = 17


class LinkInfo:
    def __init__(self, msg: Any) -> None:
        self.index: int = msg["index"]
        self.name: str = msg.get("ifname")
        self.up: bool = bool(msg["flags"] & 1)  # IFF_UP


class Netlink:
    def __init__(self) -> None:
        from pyroute2 import IPRoute  # imported here: 200 ms, only the worker needs it

        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def link(self, name: str) -> LinkInfo | None:
        found = self._ipr.link("dump", ifname=name)
        return LinkInfo(found[0]) if found else None

    def ipv4_addresses(self, index: int) -> list[IPv4Interface]:
        """The link's IPv4 addresses with their prefixes, in kernel order."""
        return [
            IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in self._ipr.addr("dump", index=index, family=socket.AF_INET)
        ]

    def main_routes(self) -> list[IPv4Network]:
        """Destinations of the IPv4 main table (the local table would overlap everything)."""
        routes = []
        for r in self._ipr.route("dump", family=socket.AF_INET, table=MAIN_TABLE):
            dst = r.get("RTA_DST") or "0.0.0.0"
            routes.append(IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
        return routes

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

    def create_bridge(self, name: str, mac: str) -> None:
        """Create a bridge; an existing device of that name is left as it is."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._ipr.link("add", ifname=name, kind="bridge", address=mac)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise

    def add_address(self, index: int, address: IPv4Interface) -> None:
        self._ipr.addr(
            "add",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
            broadcast=str(address.network.broadcast_address),
        )

    def delete_link(self, index: int) -> None:
        self._ipr.link("del", index=index)

    def set_up(self, index: int) -> None:
        self._ipr.link("set", index=index, state="up")


def enable_ip_forward() -> None:
    """Docker wrote "1\\n" to this file; per network namespace."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")
