"""Docker's plugin API driven as libnetwork drives it, over the fake kernel (fakes.py).

The real dockerd runs the same calls in integration/test_docker.py; here each
step's answer and the daemon's model and kernel after it are checked exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from ipaddress import IPv4Address, IPv6Network
from typing import Any

import pytest
import trio

from dockernetd.config import Config
from dockernetd.docker_plugin import DockerPlugin, network_name
from dockernetd.handlers import Service
from dockernetd.network import Attachment
from dockernetd.rules import direct_access_rule
from dockernetd.state import StateLog

from fakes import make_driver

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
NET_ID = "1f" * 32
EP_ID = "e1" * 32


class Libnetwork:
    """dockerd's side: each call a POST with a JSON body, as its plugin client sends it."""

    def __init__(self, tmp_path: Any, state: StateLog | None = None) -> None:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 192.0.2.53\n")
        self.driver, self.kernel, self.proxies = make_driver(config=Config(resolv_conf=str(resolv)))
        self.service = Service(self.driver.config, self.driver, state)
        self.plugin = DockerPlugin(self.service)

    def post(self, method: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        raw = b"" if body is None else json.dumps(body).encode()
        return trio.run(self.plugin.handle, method, raw)

    def ok(self, method: str, body: Any = None) -> dict[str, Any]:
        status, answer = self.post(method, body)
        assert status == 200, answer
        return answer

    def refused(self, method: str, body: Any = None) -> str:
        status, answer = self.post(method, body)
        assert status == 500 and list(answer) == ["Err"], answer
        return str(answer["Err"])

    def create_network(
        self, network_id: str = NET_ID, pool: str = "", **options: Any
    ) -> dict[str, Any]:
        """RequestPool, RequestAddress for the gateway, CreateNetwork: `docker network create`."""
        got = self.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd", "Pool": pool})
        gateway = self.ok(
            "IpamDriver.RequestAddress", {"PoolID": got["PoolID"], "Options": GATEWAY}
        )
        self.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": network_id,
                "Options": {"com.docker.network.generic": options},
                "IPv4Data": [
                    {
                        "AddressSpace": "dockernetd",
                        "Pool": got["Pool"],
                        "Gateway": gateway["Address"],
                    }
                ],
            },
        )
        return got

    def start(
        self, pool_id: str, endpoint_id: str = EP_ID, network_id: str = NET_ID, **ports: int
    ) -> str:
        """RequestAddress, CreateEndpoint, Join, ProgramExternalConnectivity: `docker run`;
        the address handed out."""
        address = self.ok("IpamDriver.RequestAddress", {"PoolID": pool_id})["Address"]
        ids = {"NetworkID": network_id, "EndpointID": endpoint_id}
        self.ok("NetworkDriver.CreateEndpoint", {**ids, "Interface": {"Address": address}})
        self.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/var/run/docker/netns/x"})
        bindings = [
            {"Proto": 6, "IP": "", "Port": port, "HostIP": "", "HostPort": host, "HostPortEnd": 0}
            for host, port in ((int(h.removeprefix("p")), p) for h, p in ports.items())
        ]
        options = {"com.docker.network.portmap": bindings}
        self.ok("NetworkDriver.ProgramExternalConnectivity", {**ids, "Options": options})
        return str(address)

    def stop(self, pool_id: str, address: str, endpoint_id: str = EP_ID) -> None:
        """What dockerd calls when the container stops."""
        ids = {"NetworkID": NET_ID, "EndpointID": endpoint_id}
        self.ok("NetworkDriver.RevokeExternalConnectivity", ids)
        self.ok("NetworkDriver.Leave", ids)
        self.ok("NetworkDriver.DeleteEndpoint", ids)
        ip = address.split("/")[0]
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": ip})


@pytest.fixture
def docker(tmp_path) -> Libnetwork:
    return Libnetwork(tmp_path)


def test_handshake_says_what_the_plugin_is(docker):
    assert docker.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert docker.ok("NetworkDriver.GetCapabilities") == {
        "Scope": "local",
        "ConnectivityScope": "local",
    }
    assert docker.ok("IpamDriver.GetCapabilities") == {
        "RequiresMACAddress": False,
        "RequiresRequestReplay": False,
    }
    assert docker.ok("IpamDriver.GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "dockernetd",
        "GlobalDefaultAddressSpace": "dockernetd",
    }


def test_a_container_lifetime_as_libnetwork_drives_it(docker):
    pool = docker.create_network()
    assert pool == {"PoolID": "dockernetd/172.18.0.0/16", "Pool": "172.18.0.0/16", "Data": {}}
    network = docker.driver.networks.get(network_name(NET_ID))
    assert (network.name, network.spec.id) == ("docker-" + NET_ID[:12], NET_ID)
    assert (str(network.spec.gateway), network.spec.bridge) == ("172.18.0.1/16", "br-1f1f1f1f1f1f")

    address = docker.start(pool["PoolID"], p8080=80)
    assert address == "172.18.0.2/16"
    endpoint = network.endpoint(EP_ID)
    attachment = Attachment.handed_over(network.name, EP_ID)
    assert endpoint.attachment == attachment
    plan = docker.kernel.veths[attachment.host_veth]
    assert (plan.netns, plan.ifname, plan.bridge, plan.mac) == (
        None,
        attachment.ifname,
        "br-1f1f1f1f1f1f",
        "02:42:ac:12:00:02",
    )
    assert [m.public() for m in endpoint.ports] == [
        {"host_ip": "0.0.0.0", "host_port": 8080, "proto": "tcp", "container_port": 80}
    ]
    assert [m.host_port for m in docker.proxies.running()] == [8080]
    guard = direct_access_rule(network.spec.bridge, endpoint)
    assert docker.kernel.rules[guard] == 1
    info = docker.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": NET_ID, "EndpointID": EP_ID})
    assert info == {
        "Value": {
            "ip": "172.18.0.2",
            "mac_address": "02:42:ac:12:00:02",
            "ports": [
                {"host_ip": "0.0.0.0", "host_port": 8080, "proto": "tcp", "container_port": 80}
            ],
            "host_veth": attachment.host_veth,
        }
    }

    docker.stop(pool["PoolID"], address)
    assert network.endpoints == {} and docker.kernel.veths == {}
    assert docker.proxies.running() == []
    assert IPv4Address("172.18.0.2") not in network.ips
    docker.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET_ID})
    docker.ok("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "172.18.0.1"})
    docker.ok("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    assert [n.name for n in docker.driver.networks] == ["bridge"]
    assert "br-1f1f1f1f1f1f" not in docker.kernel.bridges
    assert Counter(docker.driver.owned_rules()) == docker.kernel.rules


def test_join_answers_the_interface_to_move_and_the_gateway(docker):
    pool = docker.create_network()
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    address = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})["Address"]
    created = docker.ok("NetworkDriver.CreateEndpoint", {**ids, "Interface": {"Address": address}})
    # Docker keeps the address it gave; the answer adds only the MAC
    assert created == {"Interface": {"MacAddress": "02:42:ac:12:00:02"}}
    joined = docker.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/var/run/docker/netns/x"})
    assert joined == {
        "InterfaceName": {
            "SrcName": Attachment.handed_over("docker-" + NET_ID[:12], EP_ID).ifname,
            "DstPrefix": "eth",
        },
        "Gateway": "172.18.0.1",
    }
    assert docker.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/x"}) == joined  # again: same


def test_a_mac_docker_gives_is_kept_and_not_answered(docker):
    pool = docker.create_network()
    address = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})["Address"]
    interface = {"Address": address, "MacAddress": "02:00:00:00:00:07"}
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    assert docker.ok("NetworkDriver.CreateEndpoint", {**ids, "Interface": interface}) == {}
    endpoint = docker.driver.networks.get(network_name(NET_ID)).endpoint(EP_ID)
    assert endpoint.mac_address == "02:00:00:00:00:07"


def test_addresses_handed_out_are_held_until_their_endpoint_takes_them(docker):
    pool = docker.create_network()["PoolID"]
    first = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool})["Address"]
    second = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool})["Address"]
    assert (first, second) == ("172.18.0.2/16", "172.18.0.3/16")
    wanted = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool, "Address": "172.18.0.9"})
    assert wanted["Address"] == "172.18.0.9/16"
    taken = docker.refused("IpamDriver.RequestAddress", {"PoolID": pool, "Address": "172.18.0.9"})
    assert taken == "ip already allocated"
    docker.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": "172.18.0.3"})
    network = docker.driver.networks.get(network_name(NET_ID))
    assert network.reserved == {IPv4Address("172.18.0.2"), IPv4Address("172.18.0.9")}


def test_release_address_never_frees_an_address_an_endpoint_holds(docker):
    """libnetwork releases an endpoint's address after DeleteEndpoint; a late or repeated
    release must not free the address of the container that has it now."""
    pool = docker.create_network()["PoolID"]
    address = docker.start(pool)
    docker.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": address.split("/")[0]})
    network = docker.driver.networks.get(network_name(NET_ID))
    assert IPv4Address("172.18.0.2") in network.ips and EP_ID in network.endpoints


def test_pools_promised_but_not_yet_networks_are_not_promised_twice(docker):
    first = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd"})
    second = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd"})
    assert (first["Pool"], second["Pool"]) == ("172.18.0.0/16", "172.19.0.0/16")
    docker.ok("IpamDriver.ReleasePool", {"PoolID": first["PoolID"]})
    again = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd"})
    assert again["Pool"] == "172.18.0.0/16"


def test_a_given_pool_that_overlaps_is_refused(docker):
    docker.create_network(pool="10.9.0.0/16")
    assert docker.refused("IpamDriver.RequestPool", {"Pool": "10.9.8.0/24"}) == (
        "Pool overlaps with other one on this address space: network docker-" + NET_ID[:12]
    )
    docker.ok("IpamDriver.RequestPool", {"Pool": "10.10.0.0/24"})
    assert docker.refused("IpamDriver.RequestPool", {"Pool": "10.10.0.0/16"}) == (
        "Pool overlaps with other one on this address space: pool 10.10.0.0/24 being created"
    )


def test_sub_pool_gateway_and_aux_addresses_become_the_network(docker):
    got = docker.ok("IpamDriver.RequestPool", {"Pool": "10.20.0.0/16", "SubPool": "10.20.5.0/24"})
    pool = got["PoolID"]
    gateway = {"PoolID": pool, "Address": "10.20.0.254", "Options": GATEWAY}
    assert docker.ok("IpamDriver.RequestAddress", gateway)["Address"] == "10.20.0.254/16"
    for aux in ("10.20.5.1", "10.20.9.9"):  # the second is outside the range handed out
        got = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool, "Address": aux})
        assert got["Address"] == f"{aux}/16"
    ipv4 = [{"Pool": "10.20.0.0/16", "Gateway": "10.20.0.254/16"}]
    docker.ok("NetworkDriver.CreateNetwork", {"NetworkID": NET_ID, "IPv4Data": ipv4})
    network = docker.driver.networks.get(network_name(NET_ID))
    assert (str(network.spec.gateway), str(network.spec.ip_range)) == (
        "10.20.0.254/16",
        "10.20.5.0/24",
    )
    assert network.reserved == {IPv4Address("10.20.5.1")}
    assert docker.ok("IpamDriver.RequestAddress", {"PoolID": pool})["Address"] == "10.20.5.2/16"


def test_bridge_options_of_docker_network_create(docker):
    docker.create_network(
        **{
            "com.docker.network.bridge.name": "dn-web",
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.enable_ip_masquerade": "false",
            "com.docker.network.driver.mtu": "1400",
            "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
            "com.docker.network.bridge.enable_ipv6": "false",  # not used: ignored, logged
        }
    )
    spec = docker.driver.networks.get(network_name(NET_ID)).spec
    assert (spec.bridge, spec.icc, spec.ip_masq, spec.mtu, str(spec.host_binding_ip)) == (
        "dn-web",
        False,
        False,
        1400,
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"com.docker.network.driver.mtu": "big"}, "Bad parameter: mtu must be an integer"),
        (
            {"com.docker.network.bridge.enable_icc": "maybe"},
            "com.docker.network.bridge.enable_icc 'maybe' is not true or false",
        ),
        (
            {"com.docker.network.bridge.name": "a-name-far-too-long"},
            "Bad parameter: bridge 'a-name-far-too-long' does not match",
        ),
    ],
)
def test_bad_bridge_options_are_refused_and_the_pool_stays_promised(docker, options, message):
    got = docker.ok("IpamDriver.RequestPool", {})
    body = {
        "NetworkID": NET_ID,
        "Options": {"com.docker.network.generic": options},
        "IPv4Data": [{"Pool": got["Pool"]}],
    }
    assert docker.refused("NetworkDriver.CreateNetwork", body).startswith(message)
    assert [n.name for n in docker.driver.networks] == ["bridge"]
    other = docker.ok("IpamDriver.RequestPool", {})
    assert other["Pool"] != got["Pool"]  # Docker releases the pool as it unwinds, not before


def test_revoke_takes_the_ports_back_and_the_endpoint_stays(tmp_path):
    state = StateLog(str(tmp_path / "state"))
    state.rewrite(state.snapshot)
    docker = Libnetwork(tmp_path, state)
    pool = docker.create_network()["PoolID"]
    docker.start(pool, p8080=80, p8081=81)
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    docker.ok("NetworkDriver.RevokeExternalConnectivity", ids)
    network = docker.driver.networks.get(network_name(NET_ID))
    assert network.endpoint(EP_ID).ports == [] and docker.proxies.running() == []
    assert (list(state.snapshot.endpoints), state.snapshot.ports) == (
        [(network.name, EP_ID)],
        {},
    )
    docker.ok("NetworkDriver.ProgramExternalConnectivity", {**ids, "Options": {}})
    assert network.endpoint(EP_ID).ports == []


def test_leave_deletes_the_veth_and_records_the_endpoint_without_it(tmp_path):
    state = StateLog(str(tmp_path / "state"))
    state.rewrite(state.snapshot)
    docker = Libnetwork(tmp_path, state)
    pool = docker.create_network()["PoolID"]
    docker.start(pool)
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    docker.ok("NetworkDriver.Leave", ids)
    assert docker.kernel.veths == {}
    [joined] = state.snapshot.endpoints.values()
    assert (joined.container_id, joined.attachment) == (EP_ID, None)
    docker.ok("NetworkDriver.Leave", ids)  # again: nothing to do


def test_a_port_range_takes_its_first_free_port(docker):
    pool = docker.create_network()["PoolID"]
    docker.start(pool, "e2" * 32, p8000=80)
    docker.start(pool)
    binding = {"Proto": 17, "Port": 53, "HostPort": 8000, "HostPortEnd": 8002}
    docker.proxies.taken.add((IPv4Address("0.0.0.0"), 8001, "tcp"))  # by another program
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    options = {"com.docker.network.portmap": [binding, {**binding, "Proto": 6}]}
    docker.ok("NetworkDriver.ProgramExternalConnectivity", {**ids, "Options": options})
    endpoint = docker.driver.networks.get(network_name(NET_ID)).endpoint(EP_ID)
    assert [(m.proto, m.host_port) for m in endpoint.ports] == [("udp", 8000), ("tcp", 8002)]
    full = {"Proto": 6, "Port": 80, "HostPort": 8000, "HostPortEnd": 8002}
    assert docker.refused(
        "NetworkDriver.ProgramExternalConnectivity",
        {**ids, "Options": {"com.docker.network.portmap": [full]}},
    ).startswith("Bind for 0.0.0.0:8002 failed: port is already allocated")


def test_what_is_already_gone_is_deleted_without_error(docker):
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    for method in (
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "NetworkDriver.DeleteNetwork",
    ):
        assert docker.ok(method, ids) == {}
    assert docker.ok("IpamDriver.ReleasePool", {"PoolID": "dockernetd/10.0.0.0/8"}) == {}


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        (
            "IpamDriver.RequestPool",
            {"V6": True, "Pool": "fd00::/64", "SubPool": "fd00::/80"},
            "dockernetd hands out IPv6 addresses from the whole subnet",
        ),
        (
            "IpamDriver.RequestPool",
            {"V6": True, "Pool": "fd00::1/200"},
            "Pool 'fd00::1/200' is not an IPv6 subnet",
        ),
        (
            "IpamDriver.RequestPool",
            {"Pool": "10.0.0.1/33"},
            "Pool '10.0.0.1/33' is not an IPv4 subnet",
        ),
        (
            "IpamDriver.RequestPool",
            {"Pool": "10.0.0.0/16", "SubPool": "10.1.0.0/24"},
            "SubPool 10.1.0.0/24 is not inside pool 10.0.0.0/16",
        ),
        (
            "IpamDriver.RequestAddress",
            {"PoolID": "dockernetd/10.0.0.0/8"},
            "unknown pool dockernetd/10.0.0.0/8",
        ),
        (
            "NetworkDriver.CreateNetwork",
            {"NetworkID": NET_ID},
            "a dockernetd network has one IPv4 subnet, not 0",
        ),
        (
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": NET_ID,
                "IPv4Data": [{"Pool": "10.0.0.0/24"}],
                "IPv6Data": [{"Pool": "fd00::/64"}, {"Pool": "fd00:1::/64"}],
            },
            "a dockernetd network has one IPv6 subnet, not 2",
        ),
        ("NetworkDriver.CreateEndpoint", {"NetworkID": NET_ID}, "EndpointID is missing"),
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET_ID, "EndpointID": EP_ID},
            "network docker-1f1f1f1f1f1f not found",
        ),
        (
            "NetworkDriver.Join",
            {"NetworkID": "00" * 32, "EndpointID": EP_ID},
            "network docker-000000000000 not found",
        ),
    ],
)
def test_refusals_are_500_with_err(docker, method, body, message):
    assert docker.refused(method, body) == message


def test_a_pool_without_a_dockernetd_network_serves_no_addresses(docker):
    """Another driver with dockernetd's IPAM: refused with what to do instead."""
    pool = docker.ok("IpamDriver.RequestPool", {})["PoolID"]
    assert docker.refused("IpamDriver.RequestAddress", {"PoolID": pool}) == (
        f"pool {pool} has no dockernetd network: dockernetd's IPAM serves networks of the "
        "dockernetd driver (docker network create -d dockernetd)"
    )


def test_unknown_methods_are_404_and_bad_bodies_400(docker):
    assert docker.post("NetworkDriver.AllocateNetwork", {}) == (
        404,
        {"Err": "dockernetd does not implement NetworkDriver.AllocateNetwork"},
    )
    assert trio.run(docker.plugin.handle, "IpamDriver.RequestPool", b"{nope") == (
        400,
        {"Err": "IpamDriver.RequestPool: the body is not JSON"},
    )
    assert trio.run(docker.plugin.handle, "IpamDriver.RequestPool", b"[1]") == (
        400,
        {"Err": "IpamDriver.RequestPool: the body is not a JSON object"},
    )


def test_a_kernel_failure_at_join_leaves_the_endpoint_without_a_veth(docker):
    pool = docker.create_network()["PoolID"]
    address = docker.ok("IpamDriver.RequestAddress", {"PoolID": pool})["Address"]
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    docker.ok("NetworkDriver.CreateEndpoint", {**ids, "Interface": {"Address": address}})
    network = docker.driver.networks.get(network_name(NET_ID))
    del docker.kernel.bridges[network.spec.bridge]
    message = docker.refused("NetworkDriver.Join", {**ids, "SandboxKey": "/x"})
    assert (
        message == f"cannot make a veth pair for {EP_ID}: bridge {network.spec.bridge} is missing"
    )
    assert network.endpoint(EP_ID).attachment is None and docker.kernel.veths == {}


def test_the_gateway_ipam_gave_is_the_networks_when_docker_does_not_repeat_it(docker):
    got = docker.ok("IpamDriver.RequestPool", {"Pool": "10.40.0.0/24"})
    gateway = {"PoolID": got["PoolID"], "Address": "10.40.0.9", "Options": GATEWAY}
    docker.ok("IpamDriver.RequestAddress", gateway)
    docker.ok(
        "NetworkDriver.CreateNetwork", {"NetworkID": NET_ID, "IPv4Data": [{"Pool": got["Pool"]}]}
    )
    spec = docker.driver.networks.get(network_name(NET_ID)).spec
    assert str(spec.gateway) == "10.40.0.9/24"


def test_a_dual_stack_network_through_dockers_calls(docker):
    """`docker network create --ipv6` and `docker run`: both pools, both gateways, both
    addresses asked of IPAM first and then given to the endpoint, as libnetwork does."""
    v4 = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd"})
    v6 = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "dockernetd", "V6": True})
    subnet = IPv6Network(v6["Pool"])
    assert subnet.prefixlen == 64 and subnet.subnet_of(IPv6Network("fd00::/8"))
    again = docker.ok("IpamDriver.RequestPool", {"V6": True})  # another network's, meanwhile
    assert again["Pool"] != v6["Pool"]
    docker.ok("IpamDriver.ReleasePool", {"PoolID": again["PoolID"]})
    gateways = [
        docker.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Options": GATEWAY})
        for pool in (v4, v6)
    ]
    assert gateways[1]["Address"] == f"{subnet[1]}/64"
    docker.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET_ID,
            "IPv4Data": [{"Pool": v4["Pool"], "Gateway": gateways[0]["Address"]}],
            "IPv6Data": [{"Pool": v6["Pool"], "Gateway": gateways[1]["Address"]}],
        },
    )
    network = docker.driver.networks.get(network_name(NET_ID))
    assert network.spec.subnet_v6 == subnet
    address = docker.ok("IpamDriver.RequestAddress", {"PoolID": v4["PoolID"]})["Address"]
    address6 = docker.ok("IpamDriver.RequestAddress", {"PoolID": v6["PoolID"]})["Address"]
    assert address6 == f"{subnet[2]}/64"
    other6 = docker.ok("IpamDriver.RequestAddress", {"PoolID": v6["PoolID"]})["Address"]
    assert other6 == f"{subnet[3]}/64"  # held for its endpoint: never the same twice
    docker.ok("IpamDriver.ReleaseAddress", {"PoolID": v6["PoolID"], "Address": str(subnet[3])})
    ids = {"NetworkID": NET_ID, "EndpointID": EP_ID}
    interface = {"Address": address, "AddressIPv6": address6}
    assert docker.ok("NetworkDriver.CreateEndpoint", {**ids, "Interface": interface}) == {
        "Interface": {"MacAddress": network.endpoint(EP_ID).mac_address}
    }
    assert network.endpoint(EP_ID).ipv6 == subnet[2]
    joined = docker.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/var/run/docker/netns/x"})
    assert joined["GatewayIPv6"] == str(subnet[1])
    binding = {"Proto": 6, "Port": 80, "HostIP": "::1", "HostPort": 8080}
    options = {"com.docker.network.portmap": [binding]}
    docker.ok("NetworkDriver.ProgramExternalConnectivity", {**ids, "Options": options})
    assert [str(m.host_ip) for m in network.endpoint(EP_ID).ports] == ["::1"]
    assert docker.refused(
        "IpamDriver.RequestAddress", {"PoolID": v6["PoolID"], "Address": "10.0.0.9"}
    ) == (f"Address 10.0.0.9 is not of pool {v6['PoolID']}'s family")
