"""Every network by name, and each container's endpoints across them.

A container may be on several networks, with one endpoint on each; the oldest
is its *first* endpoint, the one ``allocate_port`` publishes through when no
network is named (a container on ``bridge`` only has nothing to choose).
Pure, like :mod:`network`.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from .errors import UnknownContainer, UnknownNetwork
from .netutil import overlaps
from .network import Endpoint, Network


class Networks:
    def __init__(self) -> None:
        self._by_name: dict[str, Network] = {}
        self._joined: dict[str, list[Network]] = {}  # container id -> its networks, oldest first

    def __iter__(self) -> Iterator[Network]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Network:
        network = self.find(name)
        if network is None:
            raise UnknownNetwork(name)
        return network

    def find(self, name: str) -> Network | None:
        return self._by_name.get(name)

    def add(self, network: Network) -> None:
        assert network.name not in self._by_name, network.name
        self._by_name[network.name] = network

    def remove(self, name: str) -> Network:
        """Forget a network that has no endpoints left."""
        network = self.get(name)
        assert not network.endpoints, f"{name} still has endpoints"
        del self._by_name[name]
        return network

    def join(
        self,
        network: Network,
        container_id: str,
        requested_ip: IPv4Address | None = None,
        requested_mac: str | None = None,
        requested_ipv6: IPv6Address | None = None,
    ) -> tuple[Endpoint, bool]:
        """The container's endpoint on ``network`` and whether it is new (Network.join)."""
        endpoint, new = network.join(container_id, requested_ip, requested_mac, requested_ipv6)
        if new:
            self._joined.setdefault(container_id, []).append(network)
        return endpoint, new

    def leave(self, network: Network, container_id: str) -> Endpoint:
        endpoint = network.leave(container_id)
        remaining = [n for n in self._joined[container_id] if n is not network]
        if remaining:
            self._joined[container_id] = remaining
        else:
            del self._joined[container_id]
        return endpoint

    def networks_of(self, container_id: str, *, releasing: bool = False) -> list[Network]:
        """The container's networks, oldest first; UnknownContainer if it is on none."""
        joined = self._joined.get(container_id)
        if not joined:
            raise UnknownContainer(container_id, releasing=releasing)
        return list(joined)

    def endpoint_for(self, container_id: str, network_name: str | None) -> tuple[Network, Endpoint]:
        """The endpoint named by (container, network), or the container's first one."""
        if network_name is not None:
            network = self.get(network_name)
        else:
            network = self.networks_of(container_id)[0]
        return network, network.endpoint(container_id)

    def endpoints(self) -> Iterator[Endpoint]:
        """Every endpoint, network by network."""
        for network in self._by_name.values():
            yield from network.endpoints.values()

    def endpoint_count(self) -> int:
        return sum(len(network.endpoints) for network in self._by_name.values())

    def port_mapping_count(self) -> int:
        return sum(network.port_mapping_count() for network in self._by_name.values())

    def overlapping(self, subnet: IPv4Network) -> Network | None:
        return next((n for n in self if overlaps(n.spec.subnet, subnet)), None)

    def on_bridge(self, bridge: str) -> Network | None:
        return next((n for n in self if n.spec.bridge == bridge), None)
