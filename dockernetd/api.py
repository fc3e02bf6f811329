"""The API contract (v1) as data: methods, their params, results and errors.

One table drives three things: the checking of every call's params (before
any handler runs, so an invalid call never changes state), the OpenRPC
document served by ``rpc.discover``, and the tests that keep ``docs/API.md``
in step.  The schemas use a small subset of JSON Schema, checked here by hand
because jsonschema costs ~40 us a call and gives messages no operator can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

from . import __version__
from .errors import (
    APPLICATION_ERRORS,
    AllPortsAllocated,
    ApiError,
    Conflict,
    FirewallFailed,
    InvalidParams,
    IpAlreadyAllocated,
    IpOutOfRange,
    NetworkDisabled,
    NetworkExists,
    NetworkInternal,
    NetworkInUse,
    NoAvailableIps,
    NoFreeSubnet,
    PoolOverlap,
    PortAlreadyAllocated,
    PredefinedNetwork,
    ProxyFailed,
    UnknownContainer,
    UnknownNetwork,
)
from .netutil import parse_ipv4, parse_mac
from .network import DEFAULT_NETWORK
from .pools import MAX_SUBNET_SIZE, MAX_SUBNET_V6_SIZE

CONTAINER_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
IPV4 = {"type": "string", "format": "ipv4"}
IPV6 = {"type": "string", "format": "ipv6"}
SUBNET = {"type": "string", "format": "ipv4-network"}
SUBNET_V6 = {"type": "string", "format": "ipv6-network"}
#: Docker's network names (no length limit there; 128 here, as container ids).
NETWORK_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"}
#: A Linux interface name: 1-15 bytes (IFNAMSIZ 16 with the NUL).
BRIDGE_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$"}
#: A network namespace file (CNI_NETNS): an absolute path, checked to be one before use.
NETNS_PATH = {"type": "string", "pattern": "^/[^\\x00]{0,4095}$"}
NETWORK_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "id": {"type": "string"},
    "bridge": {"type": "string"},
    "subnet": SUBNET,
    "gateway": IPV4,
    "ip_range": {"type": ["string", "null"]},
    "internal": {"type": "boolean"},
    "icc": {"type": "boolean"},
    "ip_masq": {"type": "boolean"},
    "mtu": {"type": "integer"},
    "host_binding_ip": IPV4,
    "ipv6": {"type": "boolean"},
    "subnet_v6": {"type": ["string", "null"]},
    "gateway_v6": {"type": ["string", "null"]},
}
NETWORK_OBJECT = {"type": "object", "properties": NETWORK_PROPERTIES}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
HOST_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}  # 0: a dynamic port
#: One range publishes at most this many ports (each is a proxy and two rules).
MAX_PORT_RANGE = 4096
PROTO = {"type": "string", "enum": ["tcp", "udp"]}
PORT_MAPPING = {
    "type": "object",
    "properties": {
        "host_ip": {"type": "string", "format": "ip"},
        "host_port": PORT,
        "proto": PROTO,
        "container_port": PORT,
        "proxy": {"type": "boolean", "description": "present, false, when published without"},
    },
}


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    params: tuple[Param, ...]
    result: dict[str, Any]
    errors: tuple[type[ApiError], ...] = ()
    needs_network: bool = True
    #: Changes nothing: its successful calls are logged at DEBUG (see jobs.run_job).
    query: bool = False
    takes_container: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "takes_container", any(p.name == "id" for p in self.params))


_ID = Param("id", CONTAINER_ID, "container id: 1-128 of A-Z a-z 0-9 _ . -", required=True)
_PROTO = Param("proto", PROTO, "tcp or udp", default="tcp")
_HOST_IP = Param(
    "host_ip",
    {"type": "string", "format": "ip"},
    "host address to bind, IPv4 or IPv6 (default: the network's host_binding_ip, or --ip)",
)
_NETWORK = Param("network", NETWORK_NAME, "the network (default: bridge)", default=DEFAULT_NETWORK)
_PROXY = Param(
    "proxy",
    {"type": "boolean"},
    "false: publish in the kernel only, binding nothing, as CNI's portmap plugin does (the "
    "caller holds the host port); the host's 127.0.0.1 reaches it through DNAT",
    default=True,
)
_ENDPOINT_NETWORK = Param(
    "network",
    NETWORK_NAME,
    "the network of the endpoint (default: the container's only or oldest endpoint)",
)
_PUBLISH_ERRORS = (
    UnknownContainer,
    PortAlreadyAllocated,
    AllPortsAllocated,
    ProxyFailed,
    FirewallFailed,
    NetworkDisabled,
    UnknownNetwork,
    NetworkInternal,
)
ENDPOINT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "network": {"type": "string"},
        "ip": IPV4,
        "mac_address": {"type": "string"},
        "ports": {"type": "array", "items": PORT_MAPPING},
    },
}

METHODS: tuple[Method, ...] = (
    Method(
        "network_create",
        "A network: its own bridge, subnet, addresses and rules, isolated from the others "
        "(Docker's network create).",
        (
            Param("name", NETWORK_NAME, "unique; bridge is the default network's", required=True),
            Param("subnet", SUBNET, "e.g. 172.20.0.0/16 (default: the next free one of the pools)"),
            Param("gateway", IPV4, "the bridge's address (default: the subnet's first)"),
            Param("ip_range", SUBNET, "hand out container addresses only from here"),
            Param("bridge", BRIDGE_NAME, "the bridge device (default: br- + 12 hex of the id)"),
            Param(
                "internal", {"type": "boolean"}, "no route out, no published ports", default=False
            ),
            Param("icc", {"type": "boolean"}, "containers may talk to each other", default=True),
            Param("ip_masq", {"type": "boolean"}, "masquerade traffic going out", default=True),
            Param(
                "mtu",
                {"type": "integer", "minimum": 68, "maximum": 65535},
                "MTU for the containers' interfaces (default: the daemon's)",
            ),
            Param("host_binding_ip", IPV4, "where ports are published by default (default: --ip)"),
            Param(
                "ipv6",
                {"type": "boolean"},
                "dual stack: containers get an IPv6 address too (implied by subnet_v6)",
                default=False,
            ),
            Param(
                "subnet_v6",
                SUBNET_V6,
                "e.g. fd00:1::/64 (default: the next free /64 of the machine's unique-local /48)",
            ),
            Param("gateway_v6", IPV6, "the bridge's IPv6 address (default: the subnet's first)"),
        ),
        NETWORK_OBJECT,
        (NetworkExists, PoolOverlap, NoFreeSubnet, Conflict, FirewallFailed, NetworkDisabled),
    ),
    Method(
        "network_delete",
        "Remove a network: its rules and its bridge. Refused while it has endpoints.",
        (Param("name", NETWORK_NAME, "the network", required=True),),
        NETWORK_OBJECT,
        (UnknownNetwork, PredefinedNetwork, NetworkInUse, NetworkDisabled),
    ),
    Method(
        "network_list",
        "Every network, bridge first, with its number of endpoints.",
        (),
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {**NETWORK_PROPERTIES, "endpoints": {"type": "integer"}},
            },
        },
        (NetworkDisabled,),
        query=True,
    ),
    Method(
        "network_inspect",
        "A network with its endpoints, their addresses and published ports.",
        (Param("name", NETWORK_NAME, "the network", required=True),),
        {
            "type": "object",
            "properties": {
                **NETWORK_PROPERTIES,
                "endpoints": {"type": "array", "items": ENDPOINT},
            },
        },
        (UnknownNetwork, NetworkDisabled),
        query=True,
    ),
    Method(
        "allocate_interface",
        "An IP address, MAC and gateway for a container from the bridge subnet. "
        "Idempotent: the same id gets the same allocation.",
        (
            _ID,
            Param("requested_ip", IPV4, "this address instead of the next free one"),
            Param(
                "requested_ipv6",
                IPV6,
                "on a dual-stack network: this IPv6 address instead of the next free one",
            ),
            Param(
                "requested_mac",
                {"type": "string", "format": "mac"},
                "this MAC instead of 02:42 + the IPv4 bytes",
            ),
            _NETWORK,
            Param(
                "netns",
                NETNS_PATH,
                "also wire the container in: a veth pair into this network namespace "
                "(what a CNI plugin asks for)",
            ),
            Param(
                "ifname",
                BRIDGE_NAME,
                "the name of the container's end in netns",
                default="eth0",
            ),
        ),
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "ip": IPV4,
                "prefix_len": {"type": "integer"},
                "mask": IPV4,
                "gateway": IPV4,
                "mac_address": {"type": "string"},
                "bridge": {"type": "string"},
                "mtu": {"type": "integer"},
                "ipv6": IPV6,
                "ipv6_prefix_len": {"type": "integer"},
                "ipv6_gateway": IPV6,
            },
        },
        (
            IpAlreadyAllocated,
            IpOutOfRange,
            NoAvailableIps,
            NetworkDisabled,
            Conflict,
            UnknownNetwork,
            FirewallFailed,
        ),
    ),
    Method(
        "check_interface",
        "What is wrong with an endpoint the daemon wired into a network namespace (CNI's "
        "CHECK): its interface, address and default route; [] if nothing.",
        (_ID, _NETWORK),
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "network": {"type": "string"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        },
        (UnknownContainer, UnknownNetwork, NetworkDisabled),
        query=True,
    ),
    Method(
        "release_interface",
        "Free a container's address and unmap every port it published; without network, "
        "on every network it joined.",
        (
            _ID,
            Param("network", NETWORK_NAME, "only the endpoint on this network"),
        ),
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "ip": IPV4,
                "released_ports": {"type": "array", "items": PORT_MAPPING},
                "networks": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "the networks released, when one is not bridge",
                },
            },
        },
        (UnknownContainer, FirewallFailed, NetworkDisabled, UnknownNetwork),
    ),
    Method(
        "allocate_port",
        "Publish a container port on the host: a DNAT rule and a userland proxy.",
        (
            _ID,
            Param("container_port", PORT, "the port inside the container", required=True),
            _PROTO,
            _HOST_IP,
            Param(
                "host_port",
                HOST_PORT,
                "host port; 0 picks the next free one in 49153-65535",
                default=0,
            ),
            _ENDPOINT_NETWORK,
            _PROXY,
        ),
        {
            "type": "object",
            "properties": {
                "host_ip": {"type": "string", "format": "ip"},
                "host_port": PORT,
                "proto": PROTO,
                "container_ip": IPV4,
                "container_port": PORT,
                "proxy": {"type": "boolean", "description": "present, false, when without"},
            },
        },
        _PUBLISH_ERRORS,
    ),
    Method(
        "allocate_port_range",
        "Publish count consecutive container ports (Docker's -p 8000-8009:80-89), all or "
        "nothing: every proxy bound, then the rules of all in one commit per table.",
        (
            _ID,
            Param("container_port", PORT, "the first port inside the container", required=True),
            Param(
                "count",
                {"type": "integer", "minimum": 1, "maximum": MAX_PORT_RANGE},
                f"how many consecutive ports (1-{MAX_PORT_RANGE})",
                required=True,
            ),
            _PROTO,
            _HOST_IP,
            Param(
                "host_port",
                HOST_PORT,
                "the first host port; 0 picks a free one in 49153-65535 for each",
                default=0,
            ),
            _ENDPOINT_NETWORK,
            _PROXY,
        ),
        {
            "type": "object",
            "properties": {
                "container_ip": IPV4,
                "ports": {"type": "array", "items": PORT_MAPPING},
            },
        },
        _PUBLISH_ERRORS,
    ),
    Method(
        "link",
        "Add or remove the FORWARD accept rules that let a parent reach a child's ports.",
        (
            Param(
                "action",
                {"type": "string", "enum": ["add", "remove", "-I", "-A", "-D"]},
                "add (-I, -A) or remove (-D)",
                required=True,
            ),
            Param("parent_ip", IPV4, "the parent container's address", required=True),
            Param("child_ip", IPV4, "the child container's address", required=True),
            Param(
                "ports",
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[0-9]{1,5}(/(tcp|udp))?$"},
                },
                "ports of the child, as 80/tcp, 53/udp or 8080 (tcp)",
                required=True,
            ),
            Param("ignore_errors", {"type": "boolean"}, "skip rules that fail", default=False),
            _NETWORK,
        ),
        {"type": "object", "properties": {"rules": {"type": "integer"}}},
        (FirewallFailed, NetworkDisabled, UnknownNetwork),
    ),
    Method(
        "verify",
        "Compare the recorded state with the kernel (bridge, owned rules, proxies); "
        "with repair, put back what drifted. Idempotent.",
        (Param("repair", {"type": "boolean"}, "put back what drifted", default=False),),
        {
            "type": "object",
            "properties": {
                "drift": {"type": "array", "items": {"type": "object"}},
                "repaired": {"type": "boolean"},
            },
        },
        (FirewallFailed, NetworkDisabled),
    ),
    Method(
        "status",
        "The daemon's bridge, configuration and counts.",
        (),
        {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "bridge": {"type": ["string", "null"]},
                "bridge_cidr": {"type": ["string", "null"]},
                "gateway": {"type": ["string", "null"]},
                "network_disabled": {"type": "boolean"},
                "config": {"type": "object"},
                "networks": {"type": "integer"},
                "interfaces": {"type": "integer"},
                "port_mappings": {"type": "integer"},
                "links": {"type": "integer"},
                "cluster": {"type": ["object", "null"]},
                "uptime_s": {"type": "number"},
            },
        },
        needs_network=False,
        query=True,
    ),
    Method(
        "cluster",
        "The hosts of the cluster (--cluster-store): each one's subnet, advertise address "
        "and lease age, and whether this host routes to it.",
        (),
        {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "hosts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "subnet": {"type": "string"},
                            "advertise": IPV4,
                            "age_s": {"type": "number"},
                            "self": {"type": "boolean"},
                            "routed": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        needs_network=False,
        query=True,
    ),
    Method(
        "list_interfaces",
        "Every endpoint (a container on a network) with its published ports.",
        (),
        {"type": "array", "items": ENDPOINT},
        (NetworkDisabled,),
        query=True,
    ),
)

METHODS_BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}
_PATTERNS: dict[str, re.Pattern[str]] = {}


def check_params(method: Method, params: dict[str, Any]) -> dict[str, Any]:
    """The params with defaults filled in and addresses parsed; InvalidParams if wrong.

    ``ipv4`` values become IPv4Address objects and ``mac`` values are normalised.
    """
    known = {p.name for p in method.params}
    for name in params:
        if name not in known:
            raise InvalidParams(f"Bad parameter: unknown parameter {name}", param=name)
    checked: dict[str, Any] = {}
    for param in method.params:
        if param.name not in params or (params[param.name] is None and not param.required):
            if param.required:
                raise InvalidParams(
                    f"Bad parameter: missing required parameter {param.name}", param=param.name
                )
            checked[param.name] = param.default
            continue
        checked[param.name] = _check(param.name, param.schema, params[param.name])
    return checked


def _check(name: str, schema: dict[str, Any], value: Any) -> Any:
    kind = schema["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise _bad(name, f"must be a string, not {_json_type(value)}")
        if "enum" in schema and value not in schema["enum"]:
            raise _bad(name, f"must be one of {', '.join(schema['enum'])}, not {value!r}")
        if "pattern" in schema and not _pattern(schema["pattern"]).match(value):
            raise _bad(name, f"{value[:140]!r} does not match {schema['pattern']}")
        fmt = schema.get("format")
        if fmt == "ipv4":
            return _ipv4(name, value)
        if fmt in _SUBNETS:
            return _subnet(name, value, fmt)
        if fmt == "ipv6":
            return _ipv6(name, value)
        if fmt == "ip":
            return _host_ip(name, value)
        if fmt == "mac":
            try:
                return parse_mac(value)
            except ValueError as exc:
                raise _bad(name, str(exc)) from None
        return value
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(name, f"must be an integer, not {_json_type(value)}")
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _bad(name, f"{value} is out of range {low}-{high}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _bad(name, f"must be true or false, not {_json_type(value)}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise _bad(name, f"must be an array, not {_json_type(value)}")
        return [_check(f"{name}[{i}]", schema["items"], v) for i, v in enumerate(value)]
    raise AssertionError(f"schema type {kind} is not checked")


def _ipv4(name: str, value: str) -> IPv4Address:
    try:
        return parse_ipv4(value)
    except ValueError:
        raise _bad(name, f"{value[:140]!r} is not an IPv4 address") from None


def _host_ip(name: str, value: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(value)
    except ValueError:  # Docker 1.3+'s exact text
        raise InvalidParams(f"Bad parameter: invalid host ip {value[:140]}", param=name) from None


def _ipv6(name: str, value: str) -> IPv6Address:
    try:
        return IPv6Address(value)
    except ValueError:
        raise _bad(name, f"{value[:140]!r} is not an IPv6 address") from None


#: Each subnet format: its type, the family's name, an example, the longest prefix allowed
#: (room for a gateway and containers).
_SUBNETS: dict[str, tuple[type[IPv4Network] | type[IPv6Network], str, str, int]] = {
    "ipv4-network": (IPv4Network, "IPv4", "172.20.0.0/16", MAX_SUBNET_SIZE),
    "ipv6-network": (IPv6Network, "IPv6", "fd00:1::/64", MAX_SUBNET_V6_SIZE),
}


def _subnet(name: str, value: str, fmt: str) -> IPv4Network | IPv6Network:
    """A subnet in CIDR form with no host bits, room for a gateway and a container."""
    kind, family, example, longest = _SUBNETS[fmt]
    try:
        network = kind(value)
    except ValueError:
        raise _bad(name, f"{value[:140]!r} is not an {family} subnet such as {example}") from None
    if network.prefixlen > longest:
        raise _bad(name, f"{value} is too small: at most /{longest}")
    return network


def _bad(name: str, why: str) -> InvalidParams:
    return InvalidParams(f"Bad parameter: {name} {why}", param=name)


def _pattern(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern.rstrip("$") + r"\Z")
    return compiled


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def openrpc_document() -> dict[str, Any]:
    """The contract as an OpenRPC 1.2.6 document (served by ``rpc.discover``)."""
    methods = []
    for method in METHODS:
        errors = list(method.errors)
        entry: dict[str, Any] = {
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "by-name",
            "params": [
                {
                    "name": p.name,
                    "description": p.description,
                    "required": p.required,
                    "schema": p.schema if p.default is None else {**p.schema, "default": p.default},
                }
                for p in method.params
            ],
            "result": {"name": f"{method.name}_result", "schema": method.result},
            "errors": [{"code": e.code, "message": e.name} for e in errors],
        }
        methods.append(entry)
    return {
        "openrpc": "1.2.6",
        "info": {
            "title": "dockernetd",
            "version": __version__,
            "description": "Docker 1.x's bridge network driver over JSON-RPC 2.0: one JSON "
            "request or batch per line on a Unix stream socket, one response line back.",
        },
        "methods": methods,
        "components": {
            "errors": {e.name: {"code": e.code, "message": e.name} for e in APPLICATION_ERRORS}
        },
    }
