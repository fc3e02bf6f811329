"""IPv6 on dual-stack networks, with real packets: addresses, the bridge, restarts."""

from __future__ import annotations

import os
import signal
from ipaddress import IPv6Address, IPv6Network

import pytest

from dockernetd.client import RpcError

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    both_backends,
    iptables_rules,
    probe,
    start_echo_server,
    wait_for,
)

SUBNET_V6 = "fd00:d0c:1::/64"


def test_containers_of_a_dual_stack_network_talk_over_ipv6(host, make_daemon, container, processes):
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    addresses = {a["local"] + "/" + str(a["prefixlen"]) for a in _ipv6_of(host, "docker0")}
    assert {"fd00:d0c:1::1/64", "fe80::1/64"} <= addresses
    assert host.sysctl("net/ipv6/conf/docker0/accept_dad") == "0"
    assert host.sysctl("net/ipv6/conf/all/forwarding") == "1"
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


@both_backends
def test_two_dual_stack_networks_stay_apart_over_ipv6(host, make_daemon, make_netns, processes):
    """IPv6 is routed, and the isolation between networks holds for it as for IPv4."""
    from netns import attach_container

    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    daemon.call("network_create", name="red", ipv6=True)
    ns_a, ns_r = make_netns("dnd-c"), make_netns("dnd-c")
    a = daemon.call("allocate_interface", id="a")
    r = daemon.call("allocate_interface", id="r", network="red")
    attach_container(host, ns_a, a)
    attach_container(host, ns_r, r)
    processes.append(start_echo_server(ns_r, "tcp", 8080, "red", ipv6=True))
    assert host.sysctl("net/ipv6/conf/all/forwarding") == "1"
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
    publishes it, and nothing is added to the rules."""
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


HOST_V6, OUTSIDE_V6 = "2001:db8:a::1", "2001:db8:a::2"


def _wire_ipv6(host, outside):
    host.ip("-6", "addr", "add", f"{HOST_V6}/64", "dev", "up0", "nodad")
    outside.ip("-6", "addr", "add", f"{OUTSIDE_V6}/64", "dev", "eth0", "nodad")


def _ip6tables(host) -> dict[str, list[str]]:
    """nat, filter and raw of ip6tables-legacy-save: rules only."""
    tables: dict[str, list[str]] = {}
    table = ""
    for line in host.exec("ip6tables-legacy-save").stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = []
        elif line.startswith("-A "):
            tables[table].append(line)
    return tables


@both_backends
def test_outside_reaches_a_published_port_over_ipv6_with_its_address_kept(
    host, outside, make_daemon, container, processes, firewall_backend
):
    _wire_ipv6(host, outside)
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    ns, web = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web", ipv6=True))
    processes.append(start_echo_server(ns, "tcp", 80, "web4"))  # the IPv6 one is IPv6 only
    processes.append(start_echo_server(ns, "udp", 53, "dns", ipv6=True))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.call("allocate_port", id="web", container_port=53, proto="udp", host_port=5353)
    # DNAT to the container's IPv6 address: the client's own address arrives
    assert probe(outside, "tcp", HOST_V6, 8080, "six") == f"web:{OUTSIDE_V6}:six"
    assert probe(outside, "udp", HOST_V6, 5353, "q") == f"dns:{OUTSIDE_V6}:q"
    if firewall_backend == "iptables":  # on a host whose FORWARD drops the rest, as Docker's
        host.exec("ip6tables-legacy", "-P", "FORWARD", "DROP")
        assert probe(outside, "tcp", HOST_V6, 8080, "policy") == f"web:{OUTSIDE_V6}:policy"
        host.exec("ip6tables-legacy", "-P", "FORWARD", "ACCEPT")
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "four") == f"web4:{OUTSIDE}:four"
    # the host's own ::1 through the proxy, which dials the container over IPv4
    assert probe(host, "tcp", "::1", 8080, "lo") == f"web4:{web['gateway']}:lo"
    # the container's address itself is not reachable from outside (Docker 28's guard)
    outside.ip("-6", "route", "add", SUBNET_V6, "via", HOST_V6)
    assert probe(outside, "tcp", web["ipv6"], 80, "direct", timeout=1).startswith("ERR")
    # a range the same: each port DNATed for IPv6 clients too
    processes.append(start_echo_server(ns, "tcp", 8001, "r1", ipv6=True))
    daemon.call("allocate_port_range", id="web", container_port=8000, count=3, host_port=9000)
    assert probe(outside, "tcp", HOST_V6, 9001, "range") == f"r1:{OUTSIDE_V6}:range"
    daemon.call("release_interface", id="web")
    assert probe(outside, "tcp", HOST_V6, 8080, "gone", timeout=1).startswith("ERR")
    assert probe(outside, "tcp", HOST_V6, 9001, "gone", timeout=1).startswith("ERR")


@both_backends
@pytest.mark.parametrize("ip_masq", [True, False])
def test_a_container_reaches_the_world_over_ipv6_masqueraded_or_not(
    host, outside, make_daemon, container, processes, ip_masq
):
    _wire_ipv6(host, outside)
    # without masquerade the answers come to the container's address: direct routing
    flags = () if ip_masq else ("--ip-masq=false", "--allow-direct-routing")
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6, *flags)
    ns, web = container(daemon, "web")
    processes.append(start_echo_server(outside, "tcp", 9000, "world", ipv6=True))
    if not ip_masq:  # the outside has to know the way back to the containers' subnet
        outside.ip("-6", "route", "add", SUBNET_V6, "via", HOST_V6)
    source = HOST_V6 if ip_masq else web["ipv6"]
    assert probe(ns, "tcp", OUTSIDE_V6, 9000, "out") == f"world:{source}:out"


def test_the_ipv6_rules_in_ip6tables_exactly_and_after_a_restart(
    host, outside, make_daemon, container
):
    _wire_ipv6(host, outside)
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    red = daemon.call("network_create", name="red", ipv6=True)
    _, web = container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.call("allocate_port", id="web", container_port=81, host_ip="127.0.0.1")  # IPv4 only
    br, subnet = red["bridge"], red["subnet_v6"]
    tag, iso = '-m comment --comment "dockernetd:net:red"', "DOCKER-ISOLATION-STAGE"
    saved = _ip6tables(host)
    assert saved["nat"] == [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER",
        f"-A POSTROUTING -s {subnet} ! -o {br} {tag} -j MASQUERADE",
        "-A POSTROUTING -s fd00:d0c:1::/64 ! -o docker0 -j MASQUERADE",
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
        f"[{web['ipv6']}]:80",
    ]
    assert saved["filter"] == [
        '-A FORWARD -m comment --comment "dockernetd:isolation" -j DOCKER-ISOLATION-STAGE-1',
        # what DOCKER DNATed in passes, one rule per network (no per-port accept for IPv6)
        f"-A FORWARD -o {br} -m conntrack --ctstate DNAT {tag} -j ACCEPT",
        f"-A FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED {tag} -j ACCEPT",
        f"-A FORWARD -i {br} ! -o {br} {tag} -j ACCEPT",
        f"-A FORWARD -i {br} -o {br} {tag} -j ACCEPT",
        "-A FORWARD -o docker0 -m conntrack --ctstate DNAT -j ACCEPT",
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
        "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
        f"-A {iso}-1 -i {br} ! -o {br} -j {iso}-2",  # each inserted at the top, as IPv4's
        f"-A {iso}-1 -i docker0 ! -o docker0 -j {iso}-2",
        f"-A {iso}-2 -o {br} -j DROP",
        f"-A {iso}-2 -o docker0 -j DROP",
    ]
    assert saved["raw"] == [  # each network's IPv6 subnet, not each container
        "-A PREROUTING -d fd00:d0c:1::/64 ! -i docker0 -j DROP",
        f"-A PREROUTING -d {subnet} ! -i {br} -j DROP",
    ]
    assert daemon.call("verify") == {"drift": [], "repaired": False}
    daemon.stop(signal.SIGKILL)
    again = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    assert _ip6tables(host) == saved
    assert probe(outside, "tcp", HOST_V6, 8080, "again", timeout=1).startswith("ERR")  # no server
    again.call("network_delete", name="red")
    again.call("release_interface", id="web")
    assert {t: rules for t, rules in _ip6tables(host).items() if rules} == {
        "nat": [
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            "-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER",
            "-A POSTROUTING -s fd00:d0c:1::/64 ! -o docker0 -j MASQUERADE",
        ],
        "filter": [
            "-A FORWARD -o docker0 -m conntrack --ctstate DNAT -j ACCEPT",
            "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
            "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
        ],
        "raw": ["-A PREROUTING -d fd00:d0c:1::/64 ! -i docker0 -j DROP"],
    }
    assert f":{iso}-1" not in host.exec("ip6tables-legacy-save", "-t", "filter").stdout


@both_backends
def test_verify_repairs_a_flushed_ipv6_rule_and_a_restart_keeps_them(
    host, outside, make_daemon, container, processes, firewall_backend
):
    _wire_ipv6(host, outside)
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6, "--firewall-self-heal=false")
    ns, web = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web", ipv6=True))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert probe(outside, "tcp", HOST_V6, 8080, "a") == f"web:{OUTSIDE_V6}:a"
    if firewall_backend == "iptables":
        host.exec("ip6tables-legacy", "-t", "nat", "-F", "DOCKER")
        missing = {
            "table": "ip6 nat",
            "rule": "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 "
            f"-j DNAT --to-destination [{web['ipv6']}]:80",
        }
    else:
        host.exec("nft", "flush", "map", "inet", "dockernetd", "dnat6_any")
        missing = {
            "table": "inet dockernetd",
            "rule": 'inet dockernetd skip_any: { "docker0" . tcp . 8080 : return }; '
            f"inet dockernetd dnat6_any: {{ tcp . 8080 : {web['ipv6']} . 80 }}",
        }
    assert probe(outside, "tcp", HOST_V6, 8080, "b", timeout=1).startswith("ERR")
    assert daemon.call("verify")["drift"] == [{"kind": "rule_missing", **missing}]
    assert daemon.call("verify", repair=True)["repaired"] is True
    assert daemon.call("verify") == {"drift": [], "repaired": False}
    assert probe(outside, "tcp", HOST_V6, 8080, "c") == f"web:{OUTSIDE_V6}:c"
    daemon.stop(signal.SIGKILL)
    again = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    assert again.call("verify") == {"drift": [], "repaired": False}
    assert probe(outside, "tcp", HOST_V6, 8080, "d") == f"web:{OUTSIDE_V6}:d"


def test_ip6tables_false_leaves_ip6tables_alone(host, make_daemon, container):
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6, "--ip6tables=false")
    container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert not any(_ip6tables(host).values())
    assert daemon.call("verify") == {"drift": [], "repaired": False}


@both_backends
def test_icc_false_holds_for_ipv6_until_linked_and_the_link_survives_a_restart(
    host, make_daemon, container, processes
):
    flags = ("--ipv6", "--fixed-cidr-v6", SUBNET_V6, "--icc=false")
    daemon = make_daemon(*flags)
    a_ns, a = container(daemon, "a")
    b_ns, b = container(daemon, "b")
    processes.append(start_echo_server(b_ns, "tcp", 5432, "db", ipv6=True))
    assert probe(a_ns, "tcp", b["ipv6"], 5432, "x", timeout=1).startswith("ERR")
    link = {"parent_ip": a["ip"], "child_ip": b["ip"], "ports": ["5432/tcp"]}
    assert daemon.call("link", action="add", **link) == {"rules": 4}  # 2 per family
    assert probe(a_ns, "tcp", b["ipv6"], 5432, "y") == f"db:{a['ipv6']}:y"
    daemon.stop(signal.SIGKILL)
    again = make_daemon(*flags)
    assert again.call("verify") == {"drift": [], "repaired": False}
    assert probe(a_ns, "tcp", b["ipv6"], 5432, "z") == f"db:{a['ipv6']}:z"
    assert again.call("link", action="remove", **link) == {"rules": 4}
    assert probe(a_ns, "tcp", b["ipv6"], 5432, "w", timeout=1).startswith("ERR")
    assert again.call("verify") == {"drift": [], "repaired": False}


def test_the_ipv6_firewall_process_is_started_again_if_it_dies(host, make_daemon, container):
    """The iptables backend's IPv6 half is a child of the daemon (kernel/ip6tables.py)."""
    daemon = make_daemon("--ipv6", "--fixed-cidr-v6", SUBNET_V6)
    _, web = container(daemon, "web")
    [child] = _ipv6_firewall_children(daemon)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: child not in _ipv6_firewall_children(daemon))  # a zombie has no cmdline
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)  # a new child
    assert _ipv6_firewall_children(daemon) not in ([], [child])
    assert f"[{web['ipv6']}]:80" in " ".join(_ip6tables(host)["nat"])
    assert daemon.call("verify") == {"drift": [], "repaired": False}


def _ipv6_firewall_children(daemon) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{daemon.proc.pid}/task"):
        with open(f"/proc/{daemon.proc.pid}/task/{task}/children") as f:
            found += [int(pid) for pid in f.read().split()]
    return [pid for pid in found if b"dockernetd.kernel.ip6tables" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except FileNotFoundError:  # reaped meanwhile
        return b""
