"""The handlers behind the JSON-RPC methods, with params already checked.

Each public coroutine here is one method of the contract in :mod:`api`, under
the same name; the RPC layer wraps each call in a job and turns errors into
answers.  With ``-b none`` there is no network and every network method
answers 1009, as Docker registered no handler at all.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address
from typing import Any

from . import __version__
from .api import Method
from .config import Config
from .errors import MethodNotFound, NetworkDisabled
from .network import BridgeNetwork


class Service:
    def __init__(self, config: Config, network: BridgeNetwork | None) -> None:
        self.config = config
        self.network = network
        self._started = time.monotonic()

    async def run(self, method: Method, params: dict[str, Any]) -> Any:
        """Run the handler of ``method`` with checked params."""
        if method.needs_network and self.network is None:
            raise NetworkDisabled()
        handler = getattr(self, method.name, None)
        if handler is None:
            raise MethodNotFound(method.name)
        return await handler(**params)

    def _network(self) -> BridgeNetwork:
        if self.network is None:
            raise NetworkDisabled()
        return self.network

    async def allocate_interface(
        self, id: str, requested_ip: IPv4Address | None, requested_mac: str | None
    ) -> dict[str, Any]:
        return self._network().allocate_interface(id, requested_ip, requested_mac)

    async def release_interface(self, id: str) -> dict[str, Any]:
        iface = self._network().release_interface(id)
        return {
            "id": iface.container_id,
            "ip": str(iface.ip),
            "released_ports": [p.public() for p in iface.ports],
        }

    async def list_interfaces(self) -> list[dict[str, Any]]:
        return self._network().list_interfaces()

    async def status(self) -> dict[str, Any]:
        network = self.network
        address = network.bridge.address if network else None
        return {
            "version": __version__,
            "bridge": network.bridge.name if network else None,
            "bridge_cidr": str(address) if address else None,
            "gateway": str(address.ip) if address else None,
            "network_disabled": network is None,
            "config": self.config.public(),
            "interfaces": len(network.interfaces) if network else 0,
            "port_mappings": network.port_mapping_count() if network else 0,
            "links": 0,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }
