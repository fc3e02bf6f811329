"""Docker's network and IPAM plugin API, served by the daemon (``--docker-plugin``).

dockerd finds the socket in ``/run/docker/plugins`` when a network uses the
driver ``dockernetd``, POSTs ``/Plugin.Activate``, then calls the methods below,
one JSON object in and one out.  This module translates each call into the
daemon's own operations; it keeps nothing of its own that must outlive a
restart, so everything Docker made through it is recorded, restored and
verified as any other network is.

libnetwork's order, which the translation follows:

* ``docker network create -d dockernetd --ipam-driver dockernetd n1``:
  ``IpamDriver.RequestPool`` (a subnet, or a free one of the address pools), then
  ``RequestAddress`` for its gateway, then ``NetworkDriver.CreateNetwork`` with
  both: a dockernetd network named ``docker-<first 12 of NetworkID>`` whose id is
  Docker's NetworkID.  Until then the pool is held here only (*pending*), so that
  two creates at once do not get the same subnet.
* A container start: ``RequestAddress`` (held in the network, see
  Network.reserve), ``CreateEndpoint`` (the endpoint takes that address, its id is
  Docker's EndpointID; the answer adds the MAC when Docker gave none),
  ``Join`` (the veth pair; Docker moves the container end in and configures it),
  ``ProgramExternalConnectivity`` (the ``-p`` bindings, DNAT and the proxy).
* A stop: ``RevokeExternalConnectivity``, ``Leave``, ``DeleteEndpoint``,
  ``ReleaseAddress``.  Deleting what is already gone succeeds: Docker must be able
  to clean up after a daemon that lost something.

An error is an HTTP 500 with ``{"Err": message}``, the daemon's own message; a
method this plugin does not serve is a 404, which Docker takes as "not
implemented" where that is allowed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, TypeVar

import h11

from .api import METHODS, check_params
from .errors import (
    ApiError,
    IpAlreadyAllocated,
    IpOutOfRange,
    PortAlreadyAllocated,
    ProxyFailed,
    UnknownContainer,
    UnknownNetwork,
)
from .handlers import Service
from .httpserve import Answer, HttpServer
from .jobs import Job, run_job
from .netutil import parse_cidr
from .network import HostAddress, Network

log = logging.getLogger("dockernetd.docker")

CONTENT_TYPE = ("Content-Type", "application/vnd.docker.plugins.v1+json")
ADDRESS_SPACE = "dockernetd"
GATEWAY_REQUEST = ("RequestAddressType", "com.docker.network.gateway")
PORT_MAP = "com.docker.network.portmap"
GENERIC = "com.docker.network.generic"
INTERNAL = "com.docker.network.internal"
PROTOCOLS = {6: "tcp", 17: "udp"}
#: Calls that change nothing: logged at DEBUG when they succeed (dockerd polls some).
QUERIES = frozenset(
    {
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "NetworkDriver.EndpointOperInfo",
        "NetworkDriver.DiscoverNew",
        "NetworkDriver.DiscoverDelete",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
    }
)
#: Docker's bridge options (``docker network create -o KEY=VALUE``) that mean the same here.
BRIDGE_OPTIONS = {
    "com.docker.network.bridge.name": "bridge",
    "com.docker.network.bridge.enable_icc": "icc",
    "com.docker.network.bridge.enable_ip_masquerade": "ip_masq",
    "com.docker.network.driver.mtu": "mtu",
    "com.docker.network.bridge.host_binding_ipv4": "host_binding_ip",
}


class PluginError(ApiError):
    """A request this plugin refuses, with what Docker shows the user."""

    code = -32602
    name = "invalid_params"


Subnet = IPv4Network | IPv6Network


@dataclass
class PendingPool:
    """A subnet promised by RequestPool whose network CreateNetwork has not made yet
    (an IPv4 pool, or with ``docker network create --ipv6`` an IPv6 one too)."""

    subnet: Subnet
    ip_range: IPv4Network | None
    gateway: HostAddress | None = None
    reserved: set[HostAddress] = field(default_factory=set)  # --aux-address


CONTRACT = {method.name: method for method in METHODS}


def network_name(network_id: str) -> str:
    return f"docker-{network_id[:12]}"


def pool_id(subnet: Subnet) -> str:
    return f"{ADDRESS_SPACE}/{subnet}"


class DockerPlugin:
    """The plugin's methods over a Service; ``handle`` answers one request."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._pending: dict[str, PendingPool] = {}  # by pool id
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "Plugin.Activate": self.activate,
            "NetworkDriver.GetCapabilities": self.network_capabilities,
            "NetworkDriver.CreateNetwork": self.create_network,
            "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.ProgramExternalConnectivity": self.publish,
            "NetworkDriver.RevokeExternalConnectivity": self.unpublish,
            "NetworkDriver.DiscoverNew": self.ignore,
            "NetworkDriver.DiscoverDelete": self.ignore,
            "IpamDriver.GetCapabilities": self.ipam_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self.address_spaces,
            "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": self.release_pool,
            "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
        }

    async def handle(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON answer of ``POST /<method>``."""
        handler = self._methods.get(method)
        if handler is None:
            return 404, {"Err": f"dockernetd does not implement {method}"}
        try:
            request = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"Err": f"{method}: the body is not JSON"}
        if not isinstance(request, dict):
            return 400, {"Err": f"{method}: the body is not a JSON object"}
        log.debug("%s %s", method, request)
        job = Job(f"docker.{method}", str(request.get("EndpointID") or ""))
        if request.get("NetworkID"):
            job.env["network"] = network_name(str(request["NetworkID"]))
        try:
            with run_job(job, query=method in QUERIES):
                return 200, await handler(request)
        except ApiError as exc:
            return 500, {"Err": exc.message}
        except Exception:  # logged with its traceback by run_job; Docker learns nothing more
            return 500, {"Err": f"{method}: internal error, see the dockernetd log"}

    async def _call(self, method: str, **params: Any) -> Any:
        """A method of the contract, its params checked as a JSON-RPC call's are."""
        contract = CONTRACT[method]
        return await self._service.run(contract, check_params(contract, params))

    # -- handshake ------------------------------------------------------------------------

    async def activate(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def network_capabilities(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Scope": "local", "ConnectivityScope": "local"}

    async def ipam_capabilities(self, request: dict[str, Any]) -> dict[str, Any]:
        # The daemon keeps its allocations across restarts: no replay needed.
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def address_spaces(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "LocalDefaultAddressSpace": ADDRESS_SPACE,
            "GlobalDefaultAddressSpace": ADDRESS_SPACE,
        }

    async def ignore(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- IPAM -----------------------------------------------------------------------------

    async def request_pool(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("V6"):
            return self._request_pool_v6(request)
        held = [
            (p.subnet, f"pool {p.subnet} being created")
            for p in self._pending.values()
            if isinstance(p.subnet, IPv4Network)
        ]
        if request.get("Pool"):
            subnet = _subnet(request["Pool"], "Pool")
            clash = next((why for taken, why in held if taken.overlaps(subnet)), None)
            other = self._service.networks.overlapping(subnet)
            if other is not None or clash is not None:
                raise PluginError(
                    "Pool overlaps with other one on this address space: "
                    + (f"network {other.name}" if other else str(clash))
                )
        else:
            subnet = await self._service.free_subnet("docker pool", held)
        ip_range = _subnet(request["SubPool"], "SubPool") if request.get("SubPool") else None
        if ip_range is not None and not ip_range.subnet_of(subnet):
            raise PluginError(f"SubPool {ip_range} is not inside pool {subnet}")
        self._pending[pool_id(subnet)] = PendingPool(subnet, ip_range)
        return {"PoolID": pool_id(subnet), "Pool": str(subnet), "Data": {}}

    def _request_pool_v6(self, request: dict[str, Any]) -> dict[str, Any]:
        """A network's IPv6 subnet: the one asked for, or the next unique-local /64."""
        if request.get("SubPool"):
            raise PluginError("dockernetd hands out IPv6 addresses from the whole subnet")
        held = [p.subnet for p in self._pending.values() if isinstance(p.subnet, IPv6Network)]
        if request.get("Pool"):
            subnet = _subnet_v6(request["Pool"])
            other = self._service.overlapping_v6(subnet)
            clash = next((taken for taken in held if taken.overlaps(subnet)), None)
            if other is not None or clash is not None:
                raise PluginError(
                    "Pool overlaps with other one on this address space: "
                    + (f"network {other.name}" if other else f"pool {clash} being created")
                )
        else:
            subnet = self._service.free_subnet_v6(held)
        self._pending[pool_id(subnet)] = PendingPool(subnet, None)
        return {"PoolID": pool_id(subnet), "Pool": str(subnet), "Data": {}}

    async def release_pool(self, request: dict[str, Any]) -> dict[str, Any]:
        self._pending.pop(_text(request, "PoolID"), None)
        return {}

    async def request_address(self, request: dict[str, Any]) -> dict[str, Any]:
        pool = _text(request, "PoolID")
        wanted = _address(request["Address"]) if request.get("Address") else None
        gateway = GATEWAY_REQUEST in (request.get("Options") or {}).items()
        network = self._network_of_pool(pool)
        if network is not None:
            spec = network.spec
            ipv6 = spec.gateway_v6 is not None and pool == pool_id(spec.gateway_v6.network)
            interface = spec.gateway_v6 if ipv6 and spec.gateway_v6 else spec.gateway
            address: HostAddress
            if gateway:
                address = interface.ip
                if wanted not in (None, address):
                    raise PluginError(f"the gateway of {pool} is {address}, not {wanted}")
            elif ipv6:
                address = network.reserve_v6(_of_family(wanted, IPv6Address, pool))
            else:
                address = network.reserve(_of_family(wanted, IPv4Address, pool))
            return {"Address": f"{address}/{interface.network.prefixlen}", "Data": {}}
        pending = self._pending.get(pool)
        if pending is None:
            raise PluginError(f"unknown pool {pool}")
        if gateway:
            address = wanted or pending.subnet.network_address + 1
            pending.gateway = address
        elif wanted is not None:  # an --aux-address: held until the network takes it over
            pending.reserved.add(wanted)
            address = wanted
        else:
            raise PluginError(
                f"pool {pool} has no dockernetd network: dockernetd's IPAM serves networks "
                "of the dockernetd driver (docker network create -d dockernetd)"
            )
        return {"Address": f"{address}/{pending.subnet.prefixlen}", "Data": {}}

    async def release_address(self, request: dict[str, Any]) -> dict[str, Any]:
        pool = _text(request, "PoolID")
        if request.get("Address"):
            address = _address(request["Address"])
            network = self._network_of_pool(pool)
            if network is not None:
                network.unreserve(address)  # an endpoint's own address goes with it
            elif (pending := self._pending.get(pool)) is not None:
                pending.reserved.discard(address)
        return {}

    def _network_of_pool(self, pool: str) -> Network | None:
        """The network of an IPv4 pool, or of the IPv6 pool of a dual-stack network."""
        for network in self._service.networks:
            subnets = (network.spec.subnet, network.spec.subnet_v6)
            if pool in (pool_id(subnet) for subnet in subnets if subnet is not None):
                return network
        return None

    # -- networks -------------------------------------------------------------------------

    async def create_network(self, request: dict[str, Any]) -> dict[str, Any]:
        network_id = _text(request, "NetworkID")
        ipv4, ipv6 = request.get("IPv4Data") or [], request.get("IPv6Data") or []
        if len(ipv4) != 1:
            raise PluginError(f"a dockernetd network has one IPv4 subnet, not {len(ipv4)}")
        if len(ipv6) > 1:
            raise PluginError(f"a dockernetd network has one IPv6 subnet, not {len(ipv6)}")
        pool = pool_id(_subnet(ipv4[0].get("Pool"), "Pool"))
        pool_v6 = pool_id(_subnet_v6(ipv6[0].get("Pool"))) if ipv6 else None
        pending = {p: self._pending.pop(p) for p in (pool, pool_v6) if p in self._pending}
        try:
            pending_v6 = pending.get(pool_v6) if pool_v6 else None
            params = _network_params(request, pending.get(pool), pending_v6)
            await self._service.network_create(
                **check_params(CONTRACT["network_create"], params), id=network_id
            )
        except BaseException:
            self._pending |= pending  # Docker releases them as it unwinds
            raise
        network = self._service.networks.get(network_name(network_id))
        for address in (a for pool in pending.values() for a in pool.reserved):
            # one outside the range handed out, or the gateway, needs no holding
            with contextlib.suppress(IpOutOfRange, IpAlreadyAllocated):
                if isinstance(address, IPv6Address):
                    network.reserve_v6(address)
                else:
                    network.reserve(address)
        return {}

    async def delete_network(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        try:
            await self._call("network_delete", name=name)
        except UnknownNetwork:
            log.info("%s: already gone", name)
        return {}

    # -- endpoints ------------------------------------------------------------------------

    async def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        endpoint_id = _text(request, "EndpointID")
        interface = request.get("Interface") or {}
        ip = parse_cidr(interface["Address"]).ip if interface.get("Address") else None
        ipv6 = interface.get("AddressIPv6") or None
        mac = interface.get("MacAddress") or None
        params = {"id": endpoint_id, "network": name}
        if ip is not None:
            params["requested_ip"] = str(ip)
        if ipv6 is not None:
            params["requested_ipv6"] = str(ipv6).split("/")[0]
        if mac is not None:
            params["requested_mac"] = mac
        checked = check_params(CONTRACT["allocate_interface"], params)
        described = await self._service.attach(
            endpoint_id,
            name,
            None,
            checked["requested_ip"],
            checked["requested_mac"],
            checked["requested_ipv6"],
        )
        # Docker keeps what it gave; the answer adds only what it did not
        added: dict[str, str] = {}
        if ip is None:
            added["Address"] = f"{described['ip']}/{described['prefix_len']}"
        if ipv6 is None and "ipv6" in described:
            added["AddressIPv6"] = f"{described['ipv6']}/{described['ipv6_prefix_len']}"
        if mac is None and ip is not None:
            added["MacAddress"] = described["mac_address"]
        return {"Interface": added} if added else {}

    async def endpoint_info(self, request: dict[str, Any]) -> dict[str, Any]:
        network = self._service.networks.get(network_name(_text(request, "NetworkID")))
        endpoint = network.endpoint(_text(request, "EndpointID"))
        value = {
            "ip": str(endpoint.ip),
            "mac_address": endpoint.mac_address,
            "ports": [m.public() for m in endpoint.ports],
        }
        if endpoint.attachment is not None:
            value["host_veth"] = endpoint.attachment.host_veth
        return {"Value": value}

    async def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        try:
            await self._call("release_interface", id=_text(request, "EndpointID"), network=name)
        except (UnknownContainer, UnknownNetwork):
            log.info("%s on %s: already gone", request["EndpointID"][:12], name)
        return {}

    async def join(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        attachment = await self._service.hand_over(_text(request, "EndpointID"), name)
        spec = self._service.networks.get(name).spec
        joined = {
            "InterfaceName": {"SrcName": attachment.ifname, "DstPrefix": "eth"},
            "Gateway": str(spec.gateway.ip),
        }
        if spec.gateway_v6 is not None:
            joined["GatewayIPv6"] = str(spec.gateway_v6.ip)
        return joined

    async def leave(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        try:
            await self._service.take_back(_text(request, "EndpointID"), name)
        except (UnknownContainer, UnknownNetwork):
            log.info("%s on %s: already gone", request["EndpointID"][:12], name)
        return {}

    async def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        """Each ``-p`` binding through the daemon's port mapper, DNAT and the proxy; a
        host port range (``-p 8000-8010:80``) takes its first free port."""
        name = network_name(_text(request, "NetworkID"))
        endpoint_id = _text(request, "EndpointID")
        for binding in (request.get("Options") or {}).get(PORT_MAP) or []:
            proto = PROTOCOLS.get(binding.get("Proto"))
            if proto is None:
                raise PluginError(f"dockernetd publishes tcp and udp ports, not {binding}")
            host_ip = binding.get("HostIP") or None  # IPv6 too: then the proxy publishes it
            first = int(binding.get("HostPort") or 0)
            last = max(first, int(binding.get("HostPortEnd") or 0))
            await self._publish_one(endpoint_id, name, proto, host_ip, first, last, binding)
        return {}

    async def _publish_one(
        self,
        endpoint_id: str,
        network: str,
        proto: str,
        host_ip: str | None,
        first: int,
        last: int,
        binding: dict[str, Any],
    ) -> None:
        for host_port in range(first, last + 1):
            params = {
                "id": endpoint_id,
                "network": network,
                "container_port": binding.get("Port"),
                "proto": proto,
                "host_port": host_port,
            }
            if host_ip is not None:
                params["host_ip"] = host_ip
            try:
                await self._call("allocate_port", **params)
                return
            except (PortAlreadyAllocated, ProxyFailed):  # taken here, or by another program
                if host_port == last:
                    raise

    async def unpublish(self, request: dict[str, Any]) -> dict[str, Any]:
        name = network_name(_text(request, "NetworkID"))
        try:
            await self._service.unpublish(_text(request, "EndpointID"), name)
        except (UnknownContainer, UnknownNetwork):
            log.info("%s on %s: already gone", request["EndpointID"][:12], name)
        return {}


def plugin_server(plugin: DockerPlugin) -> HttpServer:
    """The plugin API over HTTP/1.1: ``POST /<Method>`` with a JSON body."""

    async def answer(request: h11.Request, body: bytes) -> Answer:
        if request.method != b"POST":
            return Answer(405, [CONTENT_TYPE, ("Allow", "POST")], b'{"Err": "POST only"}')
        method = request.target.decode("latin-1").split("?", 1)[0].lstrip("/")
        status, answered = await plugin.handle(method, body)
        return Answer(status, [CONTENT_TYPE], json.dumps(answered).encode())

    return HttpServer(answer, name="docker plugin")


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise PluginError(f"{key} is missing")
    return value


def _subnet(text: Any, key: str) -> IPv4Network:
    try:
        return IPv4Network(str(text))
    except ValueError:
        raise PluginError(f"{key} {text!r} is not an IPv4 subnet") from None


def _subnet_v6(text: Any) -> IPv6Network:
    try:
        return IPv6Network(str(text))
    except ValueError:
        raise PluginError(f"Pool {text!r} is not an IPv6 subnet") from None


def _address(text: Any) -> HostAddress:
    """An address as IPAM gets it: ``10.0.0.2`` or ``fd00::2``, maybe with a prefix."""
    try:
        return ip_address(str(text).split("/")[0])
    except ValueError:
        raise PluginError(f"Address {text!r} is not an IP address") from None


Family = TypeVar("Family", IPv4Address, IPv6Address)


def _of_family(address: HostAddress | None, family: type[Family], pool: str) -> Family | None:
    if address is None or isinstance(address, family):
        return address
    raise PluginError(f"Address {address} is not of pool {pool}'s family")


def _option_flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0", ""):
        return False
    raise PluginError(f"{key} {value!r} is not true or false")


def _network_params(
    request: dict[str, Any], pending: PendingPool | None, pending_v6: PendingPool | None
) -> dict[str, Any]:
    """network_create's params (as a JSON-RPC call has them) from CreateNetwork's request."""
    [ipv4] = request["IPv4Data"]
    options = request.get("Options") or {}
    params = {
        "name": network_name(request["NetworkID"]),
        "subnet": ipv4["Pool"],
        "internal": _option_flag(options.get(INTERNAL, False), INTERNAL),
        **_bridge_options(options.get(GENERIC) or {}),
    }
    if ipv4.get("Gateway"):
        params["gateway"] = str(parse_cidr(ipv4["Gateway"]).ip)
    elif pending is not None and pending.gateway is not None:  # what RequestAddress gave
        params["gateway"] = str(pending.gateway)
    if pending is not None and pending.ip_range is not None:
        params["ip_range"] = str(pending.ip_range)
    for ipv6 in request.get("IPv6Data") or []:
        params["subnet_v6"] = ipv6["Pool"]
        if ipv6.get("Gateway"):
            params["gateway_v6"] = str(_address(ipv6["Gateway"]))
        elif pending_v6 is not None and pending_v6.gateway is not None:
            params["gateway_v6"] = str(pending_v6.gateway)
    return params


def _bridge_options(generic: dict[str, Any]) -> dict[str, Any]:
    """network_create's params from Docker's bridge options (``-o``, all strings)."""
    params: dict[str, Any] = {}
    for key, value in generic.items():
        param = BRIDGE_OPTIONS.get(key)
        if param is None:
            log.info("docker network option %s ignored: dockernetd does not use it", key)
        elif param in ("icc", "ip_masq"):
            params[param] = _option_flag(value, key)
        elif param == "mtu":
            params[param] = int(value) if str(value).isdigit() else value
        else:
            params[param] = value
    return params
