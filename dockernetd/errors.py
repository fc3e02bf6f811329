"""The errors a client can see, and the errors that stop the daemon.

Every failure a handler can meet is an :class:`ApiError` subclass with a stable
JSON-RPC code and a short machine name (``data.error``).  The messages are
Docker 1.4's where Docker had one, so a runtime written against Docker's
driver recognises them.  Anything that is *not* an ApiError is a bug: the RPC
layer logs it and answers -32603 without its text.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the CNI plugin imports this module (see cni.py)
if TYPE_CHECKING:
    from typing import Any


class ApiError(Exception):
    """An answer to a client that is an error, not a crash."""

    code: int = -32603
    name: str = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def data(self) -> dict[str, Any]:
        return {"error": self.name, **self.details}


class InvalidParams(ApiError):
    code = -32602
    name = "invalid_params"


class IpAlreadyAllocated(ApiError):
    code = 1001
    name = "ip_already_allocated"

    def __init__(self, ip: str) -> None:
        super().__init__("ip already allocated", ip=ip)


class IpOutOfRange(ApiError):
    code = 1002
    name = "ip_out_of_range"

    def __init__(self, ip: str) -> None:
        super().__init__("requested ip is out of range", ip=ip)


class NoAvailableIps(ApiError):
    code = 1003
    name = "no_available_ips"

    def __init__(self) -> None:
        super().__init__("no available ip addresses on network")


class UnknownContainer(ApiError):
    code = 1004
    name = "unknown_container"

    def __init__(self, container_id: str, *, releasing: bool = False) -> None:
        if releasing:
            message = f"No network information to release for {container_id}"
        else:
            message = f"no network information for {container_id}"
        super().__init__(message, id=container_id)


class PortAlreadyAllocated(ApiError):
    code = 1005
    name = "port_already_allocated"

    def __init__(self, host_ip: str, port: int, proto: str) -> None:
        super().__init__(
            f"Bind for {host_ip}:{port} failed: port is already allocated",
            host_ip=host_ip,
            host_port=port,
            proto=proto,
        )


class AllPortsAllocated(ApiError):
    code = 1006
    name = "all_ports_allocated"

    def __init__(self, host_ip: str, proto: str) -> None:
        super().__init__("all ports are allocated", host_ip=host_ip, proto=proto)


class ProxyFailed(ApiError):
    code = 1007
    name = "proxy_failed"


class FirewallFailed(ApiError):
    code = 1008
    name = "firewall_failed"


class NetworkDisabled(ApiError):
    code = 1009
    name = "network_disabled"

    def __init__(self) -> None:
        super().__init__("networking is disabled (-b none)")


class Conflict(ApiError):
    code = 1010
    name = "conflict"


class UnknownNetwork(ApiError):
    code = 1011
    name = "unknown_network"

    def __init__(self, network: str) -> None:
        super().__init__(f"network {network} not found", network=network)


class NetworkExists(ApiError):
    """Docker's messages: a name taken, or the predefined ``bridge``."""

    code = 1012
    name = "network_exists"


class NetworkInUse(ApiError):
    code = 1013
    name = "network_in_use"

    def __init__(self, network: str, network_id: str, endpoints: int) -> None:
        super().__init__(
            f"error while removing network: network {network} id {network_id} has active "
            f"endpoints ({endpoints})",
            network=network,
            endpoints=endpoints,
        )


class PoolOverlap(ApiError):
    code = 1014
    name = "pool_overlap"

    def __init__(self, subnet: str, other: str) -> None:
        super().__init__(
            "Pool overlaps with other one on this address space",
            subnet=subnet,
            network=other,
        )


class NoFreeSubnet(ApiError):
    code = 1015
    name = "no_free_subnet"

    def __init__(self, family: str = "IPv4") -> None:
        super().__init__(
            f"could not find an available, non-overlapping {family} address pool among the "
            "defaults to assign to the network"
        )


class NetworkInternal(ApiError):
    code = 1016
    name = "network_internal"

    def __init__(self, network: str) -> None:
        super().__init__(
            f"network {network} is internal: it has no route out and publishes no ports",
            network=network,
        )


class PredefinedNetwork(ApiError):
    code = 1017
    name = "predefined_network"

    def __init__(self, network: str) -> None:
        super().__init__(f"{network} is a pre-defined network and cannot be removed")


#: Every application error class, in code order (documented in docs/API.md and OpenRPC).
APPLICATION_ERRORS: tuple[type[ApiError], ...] = (
    IpAlreadyAllocated,
    IpOutOfRange,
    NoAvailableIps,
    UnknownContainer,
    PortAlreadyAllocated,
    AllPortsAllocated,
    ProxyFailed,
    FirewallFailed,
    NetworkDisabled,
    Conflict,
    UnknownNetwork,
    NetworkExists,
    NetworkInUse,
    PoolOverlap,
    NoFreeSubnet,
    NetworkInternal,
    PredefinedNetwork,
)

#: The protocol-level JSON-RPC codes and the names we give them in ``data.error``.
PROTOCOL_ERROR_NAMES: dict[int, str] = {
    -32700: "parse_error",
    -32600: "invalid_request",
    -32601: "method_not_found",
    -32602: "invalid_params",
    -32603: "internal_error",
    -32000: "server_error",
}


class ConfigError(Exception):
    """Bad flags or config file: the daemon exits 2 (usage) with this message."""


class StartupError(Exception):
    """The daemon cannot start (init_networkdriver failed, socket busy): exit 1."""
