"""The bridge network once it is up: who holds which address.

This is the pure half of Docker 1.4's bridge driver handlers: given the bridge
address that ``init_networkdriver`` found or made, it hands out and takes back
container interfaces.  Nothing here touches the kernel, so it is tested
without root and it is atomic under trio (no ``await`` inside a change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from .errors import Conflict, UnknownContainer
from .ipam import IpAllocator
from .netutil import mac_for_ip


@dataclass(frozen=True)
class Bridge:
    """The bridge as init_networkdriver left it."""

    name: str
    address: IPv4Interface  # the bridge's own IP with the network prefix: the gateway
    mtu: int  # what containers should use on their veth (--mtu, or the default route's)


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port: int
    proto: str
    container_port: int

    def public(self) -> dict[str, Any]:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "proto": self.proto,
            "container_port": self.container_port,
        }


@dataclass
class Interface:
    container_id: str
    ip: IPv4Address
    mac_address: str
    ports: list[PortMapping] = field(default_factory=list)


class BridgeNetwork:
    """Container interfaces on one bridge, allocated in Docker 1.4's order."""

    def __init__(self, bridge: Bridge, fixed_cidr: IPv4Network | None = None) -> None:
        self.bridge = bridge
        self.pool = fixed_cidr or bridge.address.network  # where container addresses come from
        self.ips = IpAllocator(bridge.address, fixed_cidr)
        self.interfaces: dict[str, Interface] = {}

    def allocate_interface(
        self,
        container_id: str,
        requested_ip: IPv4Address | None = None,
        requested_mac: str | None = None,
    ) -> dict[str, Any]:
        """An address and MAC for a container; the same id again gets the same answer."""
        held = self.interfaces.get(container_id)
        if held is not None:
            self._check_same_request(held, requested_ip, requested_mac)
            return self.describe(held)
        ip = self.ips.request(requested_ip)
        iface = Interface(
            container_id=container_id,
            ip=ip,
            mac_address=requested_mac or mac_for_ip(ip),
        )
        self.interfaces[container_id] = iface
        return self.describe(iface)

    def interface(self, container_id: str, *, releasing: bool = False) -> Interface:
        try:
            return self.interfaces[container_id]
        except KeyError:
            raise UnknownContainer(container_id, releasing=releasing) from None

    def release_interface(self, container_id: str) -> Interface:
        """Forget a container and free its address; its ports must be unmapped already."""
        iface = self.interface(container_id, releasing=True)
        del self.interfaces[container_id]
        self.ips.release(iface.ip)
        return iface

    def describe(self, iface: Interface) -> dict[str, Any]:
        address = self.bridge.address
        return {
            "id": iface.container_id,
            "ip": str(iface.ip),
            "prefix_len": address.network.prefixlen,
            "mask": str(address.netmask),
            "gateway": str(address.ip),
            "mac_address": iface.mac_address,
            "bridge": self.bridge.name,
            "mtu": self.bridge.mtu,
        }

    def list_interfaces(self) -> list[dict[str, Any]]:
        return [
            {
                "id": iface.container_id,
                "ip": str(iface.ip),
                "mac_address": iface.mac_address,
                "ports": [p.public() for p in iface.ports],
            }
            for iface in self.interfaces.values()
        ]

    def port_mapping_count(self) -> int:
        return sum(len(iface.ports) for iface in self.interfaces.values())

    @staticmethod
    def _check_same_request(
        held: Interface, requested_ip: IPv4Address | None, requested_mac: str | None
    ) -> None:
        if requested_ip is not None and requested_ip != held.ip:
            raise Conflict(
                f"container {held.container_id} already has ip {held.ip}, not {requested_ip}",
                id=held.container_id,
                ip=str(held.ip),
            )
        if requested_mac is not None and requested_mac != held.mac_address:
            raise Conflict(
                f"container {held.container_id} already has mac address {held.mac_address}, "
                f"not {requested_mac}",
                id=held.container_id,
                mac_address=held.mac_address,
            )
