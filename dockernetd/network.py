"""One network: its settings, its addresses and the endpoints of the containers on it.

This is the pure half of a bridge network.  :class:`NetworkSpec` is what a
network *is* (the flags' default network ``bridge``, or what ``network_create``
was given and chose), recorded and restored as it is; :class:`Network` is what
it *holds* at run time: the address allocator and the endpoints.  Nothing here
touches the kernel, so it is tested without root, and every change is atomic
under trio (no ``await`` inside one).

:class:`PortMapping` is the one shape of a published port, from the RPC edge to
the firewall rules, the proxy and the state file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Any

from .errors import ApiError, Conflict, InvalidParams, UnknownContainer
from .ipam import Ip6Allocator, IpAllocator
from .netutil import mac_for_ip

DEFAULT_NETWORK = "bridge"
#: Where a port is published: an IPv4 address (0.0.0.0: both families, see proxy.py and
#: rules.mapping_rules_v6) or an IPv6 one (through the proxy alone).
HostAddress = IPv4Address | IPv6Address
HostPort = tuple[HostAddress, int, str]  # host address, host port, protocol


@dataclass(frozen=True)
class PortMapping:
    """A published port: ``host_ip:host_port/proto`` -> the container's ``container_port``.

    ``proxy`` False: published in the kernel only, as CNI's portmap plugin does (the
    runtime holds the host port itself); the host reaches it on 127.0.0.1 through DNAT.
    """

    host_ip: HostAddress
    host_port: int
    proto: str
    container_port: int
    proxy: bool = True

    @property
    def in_kernel(self) -> bool:
        """Whether the firewall publishes it too (DNAT): a port on an IPv4 address (on
        0.0.0.0 for IPv6 clients too, on a dual-stack network); one on an IPv6 address is
        the proxy's alone (::1 has no kernel path to a container: off lo it is a martian)."""
        return self.host_ip.version == 4

    @property
    def on_every_address(self) -> bool:
        """Published on 0.0.0.0: every address of the host, of both families."""
        return self.host_ip.packed == bytes(4)

    @property
    def host_key(self) -> HostPort:
        """The host port it takes: unique on the host, whatever the container or network."""
        return self.host_ip, self.host_port, self.proto

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "host_ip": str(self.host_ip),
            "host_port": self.host_port,
            "proto": self.proto,
            "container_port": self.container_port,
        }
        if not self.proxy:
            shown["proxy"] = False
        return shown


@dataclass(frozen=True)
class Link:
    """A parent container reaching a child's port on one network (Docker's ``--link``).

    A link is named by its IPv4 addresses (Docker 1.x's link job); on a dual-stack
    network it holds the two containers' IPv6 addresses too, found when it was made, so
    that its IPv6 rules are the same ones when it is removed or restored."""

    network: str
    parent: IPv4Address
    child: IPv4Address
    proto: str
    port: int
    parent_v6: IPv6Address | None = field(default=None, compare=False)
    child_v6: IPv6Address | None = field(default=None, compare=False)

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "network": self.network,
            "parent": str(self.parent),
            "child": str(self.child),
            "proto": self.proto,
            "port": self.port,
        }
        if self.parent_v6 is not None and self.child_v6 is not None:
            shown |= {"parent_v6": str(self.parent_v6), "child_v6": str(self.child_v6)}
        return shown


@dataclass(frozen=True)
class NetworkSpec:
    """A network's settings, fixed when it is created (or, for ``bridge``, at boot)."""

    name: str
    id: str  # 64 hex digits
    bridge: str  # the bridge device
    gateway: IPv4Interface  # the bridge's address, with the subnet's prefix
    ip_range: IPv4Network | None  # container addresses come only from here (--fixed-cidr)
    internal: bool
    icc: bool
    ip_masq: bool
    mtu: int
    host_binding_ip: IPv4Address  # where ports are published when no host_ip is given
    # The bridge's IPv6 address with its subnet's prefix, on a dual-stack network.
    gateway_v6: IPv6Interface | None = None
    # The cluster's pool, when this subnet is leased from it (the default network with
    # --cluster-store): traffic to the pool keeps its source, and from it reaches
    # containers at their addresses (the other hosts' containers).
    cluster_pool: IPv4Network | None = None

    @property
    def subnet(self) -> IPv4Network:
        return self.gateway.network

    @property
    def subnet_v6(self) -> IPv6Network | None:
        return self.gateway_v6.network if self.gateway_v6 else None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NETWORK

    def public(self) -> dict[str, Any]:
        """The network as the API shows it; the IPv6 fields only on a dual-stack one."""
        shown = {
            "name": self.name,
            "id": self.id,
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "gateway": str(self.gateway.ip),
            "ip_range": str(self.ip_range) if self.ip_range else None,
            "internal": self.internal,
            "icc": self.icc,
            "ip_masq": self.ip_masq,
            "mtu": self.mtu,
            "host_binding_ip": str(self.host_binding_ip),
        }
        if self.gateway_v6 is not None:
            shown["ipv6"] = True
            shown["subnet_v6"] = str(self.gateway_v6.network)
            shown["gateway_v6"] = str(self.gateway_v6.ip)
        return shown


@dataclass(frozen=True)
class Attachment:
    """A veth pair the daemon made for an endpoint: ``host_veth`` on the bridge, and the
    container end ``ifname`` in the namespace ``netns`` (a CNI plugin's ADD), or, when
    ``netns`` is None, left in the daemon's namespace for the runtime to move into the
    container and configure (Docker's Join)."""

    netns: str | None
    ifname: str
    host_veth: str

    @staticmethod
    def named(netns: str, ifname: str, network: str, container_id: str) -> Attachment:
        """The host end is named after the endpoint: the same ADD again finds it."""
        return Attachment(netns, ifname, Attachment.host_end(network, container_id))

    @staticmethod
    def handed_over(network: str, container_id: str) -> Attachment:
        """Both ends named after the endpoint, the container end for the runtime to take."""
        return Attachment(
            None, "dc" + _digest(network, container_id), Attachment.host_end(network, container_id)
        )

    @staticmethod
    def host_end(network: str, container_id: str) -> str:
        """The name of the host end of any veth the daemon makes for the endpoint."""
        return "dn" + _digest(network, container_id)


def _digest(network: str, container_id: str) -> str:
    """13 hex digits of the endpoint's identity: with a 2-letter prefix, the 15 bytes an
    interface name has at most."""
    return hashlib.sha256(f"{network}/{container_id}".encode()).hexdigest()[:13]


@dataclass
class Endpoint:
    """A container's interface on one network, and the ports published through it."""

    container_id: str
    network: str
    ip: IPv4Address
    mac_address: str
    ports: list[PortMapping] = field(default_factory=list)
    attachment: Attachment | None = None
    ipv6: IPv6Address | None = None  # on a dual-stack network


class Network:
    """The endpoints of one network, addressed in Docker 1.4's order (see :mod:`ipam`).

    ``BadSubnet`` (a ValueError) if ``spec.ip_range`` does not fit the subnet.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self.ips = IpAllocator(spec.gateway, spec.ip_range)
        self.ips_v6 = Ip6Allocator(spec.gateway_v6) if spec.gateway_v6 else None
        self.endpoints: dict[str, Endpoint] = {}  # by container id, oldest first
        self.reserved: set[HostAddress] = set()  # held for endpoints still to come

    @property
    def name(self) -> str:
        return self.spec.name

    def join(
        self,
        container_id: str,
        requested_ip: IPv4Address | None = None,
        requested_mac: str | None = None,
        requested_ipv6: IPv6Address | None = None,
    ) -> tuple[Endpoint, bool]:
        """The container's endpoint, and whether it is new; the same request again is a no-op.
        On a dual-stack network it has an IPv6 address too (``requested_ipv6``, or the next)."""
        held = self.endpoints.get(container_id)
        if held is not None:
            _check_same_request(held, requested_ip, requested_mac, requested_ipv6)
            return held, False
        if requested_ipv6 is not None and self.ips_v6 is None:
            raise InvalidParams(
                f"network {self.name} has no IPv6 subnet: requested_ipv6 {requested_ipv6} "
                "cannot be given",
                param="requested_ipv6",
            )
        ipv6 = self._take_v6(requested_ipv6) if self.ips_v6 else None
        try:
            if requested_ip is not None and requested_ip in self.reserved:
                self.reserved.remove(requested_ip)
                ip = requested_ip
            else:
                ip = self.ips.request(requested_ip)
        except ApiError:  # no IPv4 address: the IPv6 one goes back
            if self.ips_v6 is not None and ipv6 is not None:
                self.ips_v6.release(ipv6)
            raise
        mac = requested_mac or mac_for_ip(ip)
        endpoint = Endpoint(container_id, self.name, ip, mac, ipv6=ipv6)
        self.endpoints[container_id] = endpoint
        return endpoint, True

    def _take_v6(self, requested: IPv6Address | None) -> IPv6Address:
        assert self.ips_v6 is not None
        if requested is not None and requested in self.reserved:
            self.reserved.remove(requested)
            return requested
        return self.ips_v6.request(requested)

    def reserve(self, ip: IPv4Address | None = None) -> IPv4Address:
        """Hold an address (``ip``, or the next free one) for an endpoint still to come:
        the endpoint that asks for it by ``requested_ip`` takes it over (Docker's IPAM
        hands out addresses before the network driver makes the endpoint)."""
        ip = self.ips.request(ip)
        self.reserved.add(ip)
        return ip

    def reserve_v6(self, ip: IPv6Address | None = None) -> IPv6Address:
        """The same for an IPv6 address, taken over by ``requested_ipv6``."""
        if self.ips_v6 is None:
            raise InvalidParams(f"network {self.name} has no IPv6 subnet", param="ipv6")
        ip = self.ips_v6.request(ip)
        self.reserved.add(ip)
        return ip

    def unreserve(self, ip: HostAddress) -> None:
        """Free a held address no endpoint took; any other address is left alone."""
        if ip in self.reserved:
            self.reserved.remove(ip)
            if isinstance(ip, IPv6Address):
                assert self.ips_v6 is not None  # only a dual-stack network holds one
                self.ips_v6.release(ip)
            else:
                self.ips.release(ip)

    def endpoint(self, container_id: str, *, releasing: bool = False) -> Endpoint:
        try:
            return self.endpoints[container_id]
        except KeyError:
            raise UnknownContainer(container_id, releasing=releasing) from None

    def leave(self, container_id: str) -> Endpoint:
        """Forget a container and free its address; its ports must be unmapped already."""
        endpoint = self.endpoint(container_id, releasing=True)
        del self.endpoints[container_id]
        self.ips.release(endpoint.ip)
        if self.ips_v6 is not None and endpoint.ipv6 is not None:
            self.ips_v6.release(endpoint.ipv6)
        return endpoint

    def address_of(self, endpoint: Endpoint) -> IPv4Interface:
        """The endpoint's address with the subnet's prefix, as its interface holds it."""
        return IPv4Interface((endpoint.ip, self.spec.subnet.prefixlen))

    def address_v6_of(self, endpoint: Endpoint) -> IPv6Interface | None:
        subnet = self.spec.subnet_v6
        if endpoint.ipv6 is None or subnet is None:
            return None
        return IPv6Interface((endpoint.ipv6, subnet.prefixlen))

    def describe(self, endpoint: Endpoint) -> dict[str, Any]:
        """allocate_interface's answer: what a runtime needs to wire the container in."""
        spec = self.spec
        described: dict[str, Any] = {
            "id": endpoint.container_id,
            "ip": str(endpoint.ip),
            "prefix_len": spec.subnet.prefixlen,
            "mask": str(spec.gateway.netmask),
            "gateway": str(spec.gateway.ip),
            "mac_address": endpoint.mac_address,
            "bridge": spec.bridge,
            "mtu": spec.mtu,
        }
        if endpoint.ipv6 is not None and spec.gateway_v6 is not None:
            described["ipv6"] = str(endpoint.ipv6)
            described["ipv6_prefix_len"] = spec.gateway_v6.network.prefixlen
            described["ipv6_gateway"] = str(spec.gateway_v6.ip)
        return described

    def port_mapping_count(self) -> int:
        return sum(len(endpoint.ports) for endpoint in self.endpoints.values())


def _check_same_request(
    held: Endpoint,
    requested_ip: IPv4Address | None,
    requested_mac: str | None,
    requested_ipv6: IPv6Address | None,
) -> None:
    if requested_ip is not None and requested_ip != held.ip:
        raise Conflict(
            f"container {held.container_id} already has ip {held.ip}, not {requested_ip}",
            id=held.container_id,
            ip=str(held.ip),
        )
    if requested_ipv6 is not None and requested_ipv6 != held.ipv6:
        raise Conflict(
            f"container {held.container_id} already has ipv6 {held.ipv6}, not {requested_ipv6}",
            id=held.container_id,
            ipv6=str(held.ipv6),
        )
    if requested_mac is not None and requested_mac != held.mac_address:
        raise Conflict(
            f"container {held.container_id} already has mac address {held.mac_address}, "
            f"not {requested_mac}",
            id=held.container_id,
            mac_address=held.mac_address,
        )
