"""IPv6 on dual-stack networks, with real packets: addresses, the bridge, restarts."""

from __future__ import annotations

import signal
from ipaddress import IPv6Address, IPv6Network

import pytest

from dockernetd.client import RpcError

from netns import HOST_UPLINK, OUTSIDE, both_backends, iptables_rules, probe, start_echo_server

SUBNET_V6 = "fd00:d0c:1::/64"


def test_containers_of_a_dual_stack_network_talk_over_ipv6(host, make_daemon, container, processes):
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    addresses = {a["local"] + "/" + str(a["prefixlen"]) for a in _ipv6_of(host, "docker0")}
    assert {"fd00:d0c:1::1/64", "fe80::1/64"} <= addresses
    assert host.sysctl("net/ipv6/conf/docker0/accept_dad") == "0"
    assert host.sysctl("net/ipv6/conf/all/forwarding") == "0"  # until the firewall's IPv6 half
    a_ns, a = container(daemon, "a")
    b_ns, b = container(daemon, "b")
    assert (a["ipv6"], a["ipv6_prefix_len"], a["ipv6_gateway"]) == (
        "fd00:d0c:1::2",
        64,
        "fd00:d0c:1::1",
    )
    assert b["ipv6"] == "fd00:d0c:1::3" and a["ip"] == "172.17.0.2"
    processes.append(start_echo_server(b_ns, "tcp", 8080, "b", ipv6=True))
    assert probe(a_ns, "tcp", b["ipv6"], 8080, "six") == f"b:{a['ipv6']}:six"
    processes.append(start_echo_server(b_ns, "udp", 5353, "b", ipv6=True))
    assert probe(a_ns, "udp", b["ipv6"], 5353, "dgram") == f"b:{a['ipv6']}:dgram"
    # IPv4 as before, on the same endpoints
    processes.append(start_echo_server(b_ns, "tcp", 8081, "b4"))
    assert probe(a_ns, "tcp", b["ip"], 8081, "four") == f"b4:{a['ip']}:four"


def test_a_restart_gives_every_endpoint_its_ipv6_address_back(host, make_daemon, container):
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    _, a = container(daemon, "a")
    created = daemon.call("network_create", name="red", ipv6=True)
    red = daemon.call("allocate_interface", id="r", network="red")
    daemon.stop(signal.SIGKILL)
    again = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    listed = {(e["id"], e["network"]) for e in again.call("list_interfaces")}
    assert listed == {("a", "bridge"), ("r", "red")}
    assert again.call("allocate_interface", id="a")["ipv6"] == a["ipv6"]  # the same answer
    assert again.call("allocate_interface", id="r", network="red")["ipv6"] == red["ipv6"]
    assert again.call("allocate_interface", id="new")["ipv6"] == "fd00:d0c:1::3"
    [inspected] = [n for n in again.call("network_list") if n["name"] == "red"]
    assert inspected["subnet_v6"] == created["subnet_v6"]
    subnet = IPv6Network(created["subnet_v6"])
    assert subnet.subnet_of(IPv6Network("fd00::/8")) and IPv6Address(red["ipv6"]) in subnet
    bridge = created["bridge"]
    assert f"{subnet[1]}/64" in {f"{a['local']}/{a['prefixlen']}" for a in _ipv6_of(host, bridge)}


def test_without_a_subnet_the_default_network_gets_a_unique_local_64(make_daemon):
    daemon = make_daemon("--ipv6")
    [bridge] = [n for n in daemon.call("network_list") if n["name"] == "bridge"]
    subnet = IPv6Network(bridge["subnet_v6"])
    assert subnet.prefixlen == 64 and subnet.subnet_of(IPv6Network("fd00::/8"))
    assert daemon.call("allocate_interface", id="a")["ipv6"] == str(subnet[2])


def _ipv6_of(host, device):
    [link] = host.ip_json("-6", "addr", "show", "dev", device)
    return link["addr_info"]


def test_the_cni_plugin_passes_both_families_on(make_daemon, make_netns, processes):
    from test_cni import cni

    daemon = make_daemon()
    red = daemon.call("network_create", name="red", subnet="10.44.0.0/24", subnet_v6=SUBNET_V6)
    first, second = make_netns("dnd-c"), make_netns("dnd-c")
    code, added = cni(daemon, "ADD", "c1", ns=first)
    assert code == 0, added
    assert added["ips"] == [
        {"address": "10.44.0.2/24", "gateway": "10.44.0.1", "interface": 1},
        {"address": "fd00:d0c:1::2/64", "gateway": "fd00:d0c:1::1", "interface": 1},
    ]
    assert added["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.44.0.1"},
        {"dst": "::/0", "gw": "fd00:d0c:1::1"},
    ]
    assert cni(daemon, "ADD", "c2", ns=second, version="0.4.0")[1]["ips"][1]["version"] == "6"
    [route] = first.ip_json("-6", "route", "show", "default")
    assert route["gateway"] == red["gateway_v6"]
    processes.append(start_echo_server(second, "tcp", 8080, "c2", ipv6=True))
    assert probe(first, "tcp", "fd00:d0c:1::3", 8080, "cni") == "c2:fd00:d0c:1::2:cni"


def test_two_dual_stack_networks_stay_apart_over_ipv6(host, make_daemon, make_netns, processes):
    """Nothing routes IPv6 between bridges while the firewall has no IPv6 half: the
    isolation between networks holds for IPv6 too."""
    from netns import attach_container

    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    daemon.call("network_create", name="red", ipv6=True)
    ns_a, ns_r = make_netns("dnd-c"), make_netns("dnd-c")
    a = daemon.call("allocate_interface", id="a")
    r = daemon.call("allocate_interface", id="r", network="red")
    attach_container(host, ns_a, a)
    attach_container(host, ns_r, r)
    processes.append(start_echo_server(ns_r, "tcp", 8080, "red", ipv6=True))
    assert probe(ns_a, "tcp", r["ipv6"], 8080, "x", timeout=1).startswith("ERR")
    assert probe(ns_r, "tcp", r["ipv6"], 8080, "self") == f"red:{r['ipv6']}:self"


@both_backends
def test_an_ipv6_client_reaches_an_ipv4_container_through_the_proxy(
    host, outside, make_daemon, container, processes
):
    """A port published on the default address is on both families: IPv4 through DNAT
    (the client's address kept), IPv6 through the proxy (which dials the container over
    IPv4), even without --ipv6."""
    host.ip("-6", "addr", "add", "2001:db8:a::1/64", "dev", "up0", "nodad")
    outside.ip("-6", "addr", "add", "2001:db8:a::2/64", "dev", "eth0", "nodad")
    daemon = make_daemon()
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    processes.append(start_echo_server(ns, "udp", 53, "dns"))
    published = daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert published["host_ip"] == "0.0.0.0"
    daemon.call("allocate_port", id="web", container_port=53, proto="udp", host_port=5353)
    gateway = iface["gateway"]  # the proxy's connection to the container comes from the bridge
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "v4") == f"web:{OUTSIDE}:v4"
    assert probe(outside, "tcp", "2001:db8:a::1", 8080, "v6") == f"web:{gateway}:v6"
    assert probe(host, "tcp", "::1", 8080, "lo6") == f"web:{gateway}:lo6"
    assert probe(host, "tcp", "127.0.0.1", 8080, "lo4") == f"web:{gateway}:lo4"
    assert probe(outside, "udp", "2001:db8:a::1", 5353, "q6") == f"dns:{gateway}:q6"
    daemon.call("release_interface", id="web")
    assert probe(outside, "tcp", "2001:db8:a::1", 8080, "gone", timeout=1).startswith("ERR")


def test_a_port_published_on_an_ipv6_address_is_the_proxys(
    host, outside, make_daemon, container, processes
):
    """host_ip may be IPv6: ``::`` (IPv6 alone), ``::1``, a host address; the proxy
    publishes it (the firewall has no IPv6 rules yet), and nothing is added to them."""
    host.ip("-6", "addr", "add", "2001:db8:a::1/64", "dev", "up0", "nodad")
    outside.ip("-6", "addr", "add", "2001:db8:a::2/64", "dev", "eth0", "nodad")
    daemon = make_daemon()
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    rules_before = iptables_rules(host)
    on_loopback = daemon.call("allocate_port", id="web", container_port=80, host_ip="::1")
    assert on_loopback["host_ip"] == "::1" and on_loopback["host_port"] >= 49153
    on_any = daemon.call("allocate_port", id="web", container_port=80, host_ip="::", host_port=8080)
    on_host = daemon.call(
        "allocate_port", id="web", container_port=80, host_ip="2001:db8:a::1", host_port=8081
    )
    assert (on_any["host_ip"], on_host["host_ip"]) == ("::", "2001:db8:a::1")
    gateway = iface["gateway"]
    assert probe(host, "tcp", "::1", on_loopback["host_port"], "a") == f"web:{gateway}:a"
    assert probe(outside, "tcp", "2001:db8:a::1", 8080, "b") == f"web:{gateway}:b"
    assert probe(outside, "tcp", "2001:db8:a::1", 8081, "c") == f"web:{gateway}:c"
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "v4", timeout=1).startswith("ERR")  # :: only
    assert iptables_rules(host) == rules_before
    with pytest.raises(RpcError) as refused:
        daemon.call("allocate_port", id="web", container_port=80, host_ip="::", proxy=False)
    assert refused.value.message.startswith("Bad parameter: proxy false needs an IPv4 host_ip")
    daemon.stop(signal.SIGKILL)
    again = make_daemon()  # recorded, restored
    assert {(p["host_ip"], p["host_port"]) for p in again.call("list_interfaces")[0]["ports"]} == {
        ("::1", on_loopback["host_port"]),
        ("::", 8080),
        ("2001:db8:a::1", 8081),
    }
    assert probe(outside, "tcp", "2001:db8:a::1", 8081, "d") == f"web:{gateway}:d"
