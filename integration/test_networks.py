"""Networks with real packets: several bridges, each isolated from the others.

The topology of test_firewall.py (a host, containers wired to its bridges by
veth, an outside machine behind the host's uplink), with three networks beside
``bridge``: ``red`` (a subnet from the default pools), ``blue`` (a given subnet,
``icc`` off) and ``vault`` (internal).  One container is on red and blue at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from dockernetd.client import RpcError

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    Daemon,
    Netns,
    attach_container,
    both_backends,
    iptables_rules,
    probe,
    start_echo_server,
)


class Topology:
    """The daemon's networks and a container namespace per container id."""

    def __init__(self, host: Netns, daemon: Daemon, make_netns: Callable[[str], Netns]) -> None:
        self.host = host
        self.daemon = daemon
        self._make_netns = make_netns
        self.containers: dict[str, Netns] = {}
        self.ips: dict[tuple[str, str], str] = {}  # (container, network) -> address

    def join(self, container: str, network: str) -> dict[str, Any]:
        """Allocate the container an endpoint on the network and wire it in."""
        first = container not in self.containers
        ns = self.containers.setdefault(container, self._make_netns("dnd-c"))
        iface = self.daemon.call("allocate_interface", id=container, network=network)
        name = "eth0" if first else f"eth{sum(c == container for c, _ in self.ips)}"
        attach_container(self.host, ns, iface, name, route=first)
        self.ips[container, network] = iface["ip"]
        return iface

    def reaches(self, source: str, target: str, network: str, port: int = 80) -> bool:
        answer = probe(self.containers[source], "tcp", self.ips[target, network], port, timeout=1)
        return not answer.startswith("ERR")


#: Without Docker 28's direct-access guards, which drop what comes to a container's address
#: off its bridge: isolation between networks is then the isolation chains' doing alone.
#: Without self-healing: the drift the verify test makes must stay until verify sees it.
FLAGS = ("--allow-direct-routing", "--firewall-self-heal=false")  # drift made here stays


@pytest.fixture
def topology(host, outside, make_daemon, make_netns, processes) -> Topology:
    daemon = make_daemon(*FLAGS)
    world = Topology(host, daemon, make_netns)
    daemon.call("network_create", name="red")
    daemon.call("network_create", name="blue", subnet="10.77.0.0/24", icc=False)
    daemon.call("network_create", name="vault", internal=True)
    for container, networks in {
        "a": ["bridge"],
        "r1": ["red"],
        "r2": ["red"],
        "rb": ["red", "blue"],
        "b1": ["blue"],
        "v1": ["vault"],
        "v2": ["vault"],
    }.items():
        for network in networks:
            world.join(container, network)
        processes.append(start_echo_server(world.containers[container], "tcp", 80, container))
    processes.append(start_echo_server(outside, "tcp", 80, "outside"))
    return world


def networks_by_name(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in daemon.call("network_list")}


@both_backends
def test_networks_get_free_subnets_and_their_own_bridges(topology):
    networks = networks_by_name(topology.daemon)
    assert list(networks) == ["bridge", "red", "blue", "vault"]
    red = networks["red"]
    # 172.17.0.0/16 overlaps bridge's 172.17.42.1/16: the next of Docker's pools
    assert (red["subnet"], red["gateway"]) == ("172.18.0.0/16", "172.18.0.1")
    assert networks["vault"]["subnet"] == "172.19.0.0/16"
    assert red["bridge"] == "br-" + red["id"][:12] and len(red["id"]) == 64
    assert topology.host.ipv4_addresses(red["bridge"]) == ["172.18.0.1/16"]
    assert topology.ips["r1", "red"] == "172.18.0.2"
    assert "network red: subnets skipped: 172.17.0.0/16 overlaps network bridge" in (
        topology.daemon.log()
    )
    assert [e["id"] for e in topology.daemon.call("network_inspect", name="red")["endpoints"]] == [
        "r1",
        "r2",
        "rb",
    ]


@both_backends
def test_traffic_between_networks_is_dropped_both_ways(topology):
    assert topology.reaches("r1", "r2", "red")
    assert topology.reaches("rb", "r1", "red") and topology.reaches("r1", "rb", "red")
    for one, other in (("a", "bridge"), ("r1", "red"), ("b1", "blue"), ("v1", "vault")):
        for target, network in (("a", "bridge"), ("r2", "red"), ("b1", "blue"), ("v2", "vault")):
            if network != other:
                assert not topology.reaches(one, target, network), (one, target)


@both_backends
def test_icc_is_per_network_and_links_open_it_within_one(topology):
    assert topology.reaches("r1", "r2", "red")  # red: icc on
    assert not topology.reaches("b1", "rb", "blue")  # blue: icc off
    link = {"parent_ip": topology.ips["b1", "blue"], "child_ip": topology.ips["rb", "blue"]}
    assert topology.daemon.call("link", action="add", ports=["80"], network="blue", **link) == {
        "rules": 2
    }
    assert topology.reaches("b1", "rb", "blue")


@both_backends
def test_an_internal_network_reaches_nothing_outside_and_publishes_nothing(topology):
    assert topology.reaches("v1", "v2", "vault")
    assert probe(topology.containers["v1"], "tcp", OUTSIDE, 80, timeout=1).startswith("ERR")
    assert probe(topology.containers["r1"], "tcp", OUTSIDE, 80, "hi") == f"outside:{HOST_UPLINK}:hi"
    with pytest.raises(RpcError) as refused:
        topology.daemon.call("allocate_port", id="v1", container_port=80, host_port=8090)
    assert refused.value.code == 1016
    vault_subnet = networks_by_name(topology.daemon)["vault"]["subnet"]
    assert not any(vault_subnet in r for r in iptables_rules(topology.host)["nat"])


@both_backends
def test_ports_are_published_through_each_network(topology, outside):
    daemon = topology.daemon
    daemon.call("allocate_port", id="r1", container_port=80, host_port=8081)
    on_blue = daemon.call(
        "allocate_port", id="rb", container_port=80, host_port=8082, network="blue"
    )
    on_red = daemon.call("allocate_port", id="rb", container_port=80, host_port=8083)  # its first
    assert (on_blue["container_ip"], on_red["container_ip"]) == (
        topology.ips["rb", "blue"],
        topology.ips["rb", "red"],
    )
    for port, tag in ((8081, "r1"), (8082, "rb"), (8083, "rb")):
        assert probe(outside, "tcp", HOST_UPLINK, port, "x") == f"{tag}:{OUTSIDE}:x"
    ports = {(e["id"], e["network"]): e["ports"] for e in daemon.call("list_interfaces")}
    assert [p["host_port"] for p in ports["rb", "blue"]] == [8082]
    assert daemon.call("status")["networks"] == 4


JUMP = '-A FORWARD -m comment --comment "dockernetd:isolation" -j DOCKER-ISOLATION-STAGE-1'


def test_published_ports_and_links_go_below_the_isolation_jump(topology, make_daemon):
    daemon, host = topology.daemon, topology.host
    daemon.call("allocate_port", id="r1", container_port=80, host_port=8081)
    link = {"parent_ip": topology.ips["b1", "blue"], "child_ip": topology.ips["rb", "blue"]}
    daemon.call("link", action="add", ports=["80"], network="blue", **link)
    forward = [r for r in iptables_rules(host)["filter"] if r.startswith("-A FORWARD")]
    assert forward[0] == JUMP
    # the accept of r1's published port does not let another network in
    assert not topology.reaches("a", "r1", "red")
    # a jump found lower down (another program inserted above it) is first again after a
    # restart's reconcile
    jump = ("FORWARD", "-m", "comment", "--comment", "dockernetd:isolation", "-j")
    host.exec("iptables-legacy", "-D", *jump, "DOCKER-ISOLATION-STAGE-1")
    host.exec("iptables-legacy", "-A", *jump, "DOCKER-ISOLATION-STAGE-1")
    daemon.stop(signal.SIGKILL)
    make_daemon(*FLAGS)
    forward = [r for r in iptables_rules(host)["filter"] if r.startswith("-A FORWARD")]
    assert forward[0] == JUMP and forward.count(JUMP) == 1


def test_a_restart_restores_every_network_address_and_port(topology, outside, make_daemon):
    daemon = topology.daemon
    daemon.call("allocate_port", id="rb", container_port=80, host_port=8082, network="blue")
    networks, endpoints = daemon.call("network_list"), daemon.call("list_interfaces")
    rules = iptables_rules(topology.host)
    daemon.stop(signal.SIGKILL)
    again = make_daemon(*FLAGS)
    assert again.call("network_list") == networks
    assert again.call("list_interfaces") == endpoints
    assert iptables_rules(topology.host) == rules  # nothing added, removed or duplicated
    assert probe(outside, "tcp", HOST_UPLINK, 8082, "back") == f"rb:{OUTSIDE}:back"
    assert not topology.reaches("a", "r1", "red")
    assert again.call("verify") == {"drift": [], "repaired": False}


def test_verify_repairs_each_networks_bridge_and_isolation(topology):
    daemon, host = topology.daemon, topology.host
    healthy = iptables_rules(host)
    red = networks_by_name(daemon)["red"]
    host.ip("link", "del", red["bridge"])
    host.exec("iptables-legacy", "-F", "DOCKER-ISOLATION-STAGE-2")
    drift = daemon.call("verify")["drift"]
    assert {"kind": "bridge_missing", "bridge": red["bridge"], "network": "red"} in drift
    missing = sorted(d["rule"] for d in drift if d["kind"] == "rule_missing")
    assert missing == sorted(r for r in healthy["filter"] if "DOCKER-ISOLATION-STAGE-2 -o" in r)
    assert topology.reaches("b1", "a", "bridge")  # the drops are gone: blue reaches bridge
    daemon.call("verify", repair=True)
    assert daemon.call("verify") == {"drift": [], "repaired": False}
    assert host.ipv4_addresses(red["bridge"]) == ["172.18.0.1/16"]
    assert iptables_rules(host) == healthy
    assert not topology.reaches("b1", "a", "bridge")


@both_backends
def test_the_direct_access_guards_isolate_networks_too(
    host, make_daemon, make_netns, processes, firewall_backend
):
    daemon = make_daemon("--firewall-self-heal=false")
    world = Topology(host, daemon, make_netns)
    daemon.call("network_create", name="red")
    for container, network in (("a", "bridge"), ("r1", "red")):
        world.join(container, network)
        processes.append(start_echo_server(world.containers[container], "tcp", 80, container))
    if firewall_backend == "nftables":  # the isolation gone: the guards alone
        host.exec("nft", "flush", "chain", "inet", "dockernetd", "isolation2")
    else:
        host.exec("iptables-legacy", "-F", "DOCKER-ISOLATION-STAGE-2")
    assert not world.reaches("r1", "a", "bridge")
    assert not world.reaches("a", "r1", "red")


def test_delete_is_refused_while_endpoints_remain_then_leaves_nothing(host, make_daemon):
    daemon = make_daemon()
    before = (iptables_rules(host), [link["ifname"] for link in host.ip_json("link")])
    with pytest.raises(RpcError) as taken:  # someone else's interface is never adopted
        daemon.call("network_create", name="x", subnet="10.5.0.0/24", bridge="lo")
    assert (taken.value.code, taken.value.message) == (
        1010,
        "a network interface named lo exists already",
    )
    assert host.ipv4_addresses("lo") == ["127.0.0.1/8"]
    daemon.call("network_create", name="red")
    daemon.call("network_create", name="vault", internal=True)
    daemon.call("allocate_interface", id="c", network="red")
    with pytest.raises(RpcError) as refused:
        daemon.call("network_delete", name="red")
    assert refused.value.code == 1013
    assert "has active endpoints" in refused.value.message
    assert "DOCKER-ISOLATION-STAGE-1" in " ".join(iptables_rules(host)["filter"])
    daemon.call("release_interface", id="c")
    for name in ("red", "vault"):
        daemon.call("network_delete", name=name)
    assert (iptables_rules(host), [link["ifname"] for link in host.ip_json("link")]) == before
    assert [n["name"] for n in daemon.call("network_list")] == ["bridge"]
