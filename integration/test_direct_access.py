"""Closed to direct access (Docker 28), with real packets from another host.

The outside machine gets a route to the bridge network through the host, as a
neighbour on the same segment could set one: it must still reach containers only
through published ports.  And a port published on 127.0.0.1 must not be reachable
by a crafted packet addressed to 127.0.0.1 (integration/craft.py).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    Netns,
    attach_container,
    both_backends,
    crafted_syn_arrives,
    nft_elements,
    probe,
    start_echo_server,
)

HERE = Path(__file__).resolve().parent


#: Every network's guard of the host's loopback (see docs/API.md, proxy false): always there.
LOCALNET_GUARD = (
    '-A PREROUTING -d 127.0.0.0/8 -i docker0 -m comment --comment "dockernetd:localnet" -j DROP'
)
#: The exact iptables forms (Docker 28's), and what the tests compare.
_DIRECT = re.compile(r"-A PREROUTING -d (\S+)/32 ! -i (\S+) -j DROP")
_LOOPBACK = re.compile(r"-A PREROUTING -d (\S+)/32 ! -i lo -p (\w+) -m \2 --dport (\d+) -j DROP")


def guards(ns: Netns, backend: str) -> list[str]:
    """The guards but the default network's loopback guard, as ``direct IP BRIDGE`` and
    ``loopback IP PROTO PORT``; in iptables, each in exactly Docker 28's form."""
    if backend == "nftables":
        assert nft_elements(ns, "localnet_bridges") == [("docker0",)]
        direct = nft_elements(ns, "endpoints")
        assert [ip for ip, _ in direct] == [ip for (ip,) in nft_elements(ns, "endpoint_ips")]
        loopback = nft_elements(ns, "loopback_guard")
        return [f"direct {' '.join(d)}" for d in direct] + [
            f"loopback {' '.join(g)}" for g in loopback
        ]
    saved = ns.exec("iptables-legacy-save", "-t", "raw").stdout
    rules = [line for line in saved.splitlines() if line.startswith("-A")]
    assert LOCALNET_GUARD in rules
    shown = []
    for rule in rules:
        if rule == LOCALNET_GUARD:
            continue
        direct, loopback = _DIRECT.fullmatch(rule), _LOOPBACK.fullmatch(rule)
        assert direct or loopback, f"not a guard: {rule}"
        shown.append(
            f"direct {' '.join(direct.groups())}"
            if direct
            else f"loopback {' '.join(loopback.groups())}"
        )
    return shown


def delete_loopback_guard(ns: Netns, backend: str) -> None:
    """What another program could do: the guard of 127.0.0.1:8080/tcp, gone."""
    if backend == "nftables":
        element = "{ 127.0.0.1 . tcp . 8080 }"
        ns.exec("nft", "delete", "element", "inet", "dockernetd", "loopback_guard", element)
    else:
        ns.exec(
            "iptables-legacy",
            "-t",
            "raw",
            "-D",
            "PREROUTING",
            "-d",
            "127.0.0.1/32",
            "!",
            "-i",
            "lo",
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "DROP",
        )


def routed_container(host, outside, make_netns, daemon, processes) -> tuple[Netns, dict]:
    """A container with a server on :80, and a route to its network from outside."""
    ns = make_netns("dnd-c")
    iface = daemon.call("allocate_interface", id="web")
    attach_container(host, ns, iface)
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    outside.ip("route", "add", "172.17.0.0/16", "via", HOST_UPLINK)
    return ns, iface


def crafted_reaches(outside: Netns, host: Netns, container: Netns, destination: str) -> bool:
    """Whether a SYN crafted outside for destination:8080 arrives in the container."""
    mac = host.link("up0")["address"]
    return crafted_syn_arrives(outside, mac, OUTSIDE, destination, 8080, container)


@both_backends
def test_a_container_is_reached_from_outside_only_through_its_published_port(
    host, outside, make_netns, make_daemon, processes, firewall_backend
):
    daemon = make_daemon()
    _, iface = routed_container(host, outside, make_netns, daemon, processes)
    assert guards(host, firewall_backend) == ["direct 172.17.0.2 docker0"]
    assert probe(outside, "tcp", iface["ip"], 80, timeout=1).startswith("ERR")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "x") == f"web:{OUTSIDE}:x"
    assert probe(host, "tcp", iface["ip"], 80, "h") == f"web:{iface['gateway']}:h"  # the host
    daemon.stop(signal.SIGKILL)
    again = make_daemon()
    assert guards(host, firewall_backend) == ["direct 172.17.0.2 docker0"]
    again.call("release_interface", id="web")
    assert guards(host, firewall_backend) == []


@both_backends
def test_allow_direct_routing_opens_it(
    host, outside, make_netns, make_daemon, processes, firewall_backend
):
    daemon = make_daemon("--allow-direct-routing")
    _, iface = routed_container(host, outside, make_netns, daemon, processes)
    assert guards(host, firewall_backend) == []
    assert probe(outside, "tcp", iface["ip"], 80, "d") == f"web:{OUTSIDE}:d"


@both_backends
def test_a_port_on_loopback_is_closed_to_crafted_packets(
    host, outside, make_netns, make_daemon, processes, firewall_backend
):
    daemon = make_daemon("--firewall-self-heal=false")  # the guard deleted here must stay gone
    web, _ = routed_container(host, outside, make_netns, daemon, processes)
    daemon.call("allocate_port", id="web", container_port=80, host_ip="127.0.0.1", host_port=8080)
    assert "loopback 127.0.0.1 tcp 8080" in guards(host, firewall_backend)
    assert probe(host, "tcp", "127.0.0.1", 8080, "l").startswith("web:")  # the host's own
    assert not crafted_reaches(outside, host, web, "127.0.0.1")
    # the attack is real: without the guard, the crafted packet reaches the container
    delete_loopback_guard(host, firewall_backend)
    assert crafted_reaches(outside, host, web, "127.0.0.1")
    missing = {
        "iptables": {
            "table": "raw",
            "rule": "-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8080 -j DROP",
        },
        "nftables": {
            "table": "inet dockernetd",
            "rule": "inet dockernetd loopback_guard: { 127.0.0.1 . tcp . 8080 }",
        },
    }[firewall_backend]
    assert daemon.call("verify")["drift"] == [{"kind": "rule_missing", **missing}]
    daemon.call("verify", repair=True)
    assert not crafted_reaches(outside, host, web, "127.0.0.1")
    daemon.call("release_interface", id="web")
    assert guards(host, firewall_backend) == []
