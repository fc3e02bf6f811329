"""The firewall side, port mapping and links, proven with real packets.

Topology, every part a throwaway namespace: the daemon's "host"; "containers"
joined to its bridge by veth with the address allocate_interface gave; and an
"outside" host on 192.0.2.0/24 behind the host's up0 (192.0.2.1), which has no
route to the bridge network, so it can only be reached through MASQUERADE and
can only reach containers through DNAT.
"""

import sys

import pytest

from dockernetd.client import RpcError

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    add_foreign_tagged_rule,
    both_backends,
    iptables_rules,
    probe,
    start_echo_server,
)

BOOT_NAT = [
    ":PREROUTING ACCEPT",
    ":INPUT ACCEPT",
    ":OUTPUT ACCEPT",
    ":POSTROUTING ACCEPT",
    ":DOCKER -",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
    "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
]
MASQUERADE = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
FILTER_CHAINS = [":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"]
BOOT_FORWARD = [
    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
]


# Every shape of rule the daemon writes, compiled with and without python-iptables'
# final_check (which the per-operation path skips): the kernel bytes and masks must match.
COMPILE_BOTH_WAYS = """
from ipaddress import IPv4Address as A, IPv4Interface as I
from dockernetd.kernel.firewall import Firewall
from dockernetd.network import Endpoint, Link, NetworkSpec, PortMapping
from dockernetd.rules import (
    OWN_FILTER_CHAINS, boot_plan, isolation_rules, link_rules, mapping_rules, network_rules
)
def spec(name, bridge, gateway, **settings):
    values = dict(id="0" * 64, ip_range=None, internal=False, icc=True, ip_masq=True, mtu=1500,
                  host_binding_ip=A("0.0.0.0"))
    return NetworkSpec(name, bridge=bridge, gateway=I(gateway), **{**values, **settings})
firewall = Firewall()
for chain in OWN_FILTER_CHAINS:  # jumps into a chain need the chain
    firewall._tables["filter"].create_chain(chain)
web, db = (Endpoint(c, "bridge", A(ip), "02:42:00:00:00:00") for c, ip in
           (("web", "172.17.0.2"), ("db", "10.0.0.9")))
rules = [
    *mapping_rules("docker0", web, PortMapping(A("0.0.0.0"), 8080, "tcp", 80)),
    *mapping_rules("br1", db, PortMapping(A("192.0.2.1"), 5353, "udp", 53)),
    *link_rules("docker0", Link("bridge", A("172.17.0.2"), A("172.17.0.3"), "tcp", 5432)),
]
for icc in (True, False):
    plan = boot_plan(spec("bridge", "docker0", "172.17.42.1/16", icc=icc))
    rules += [*plan.absent, *plan.present]  # (jumps to DOCKER need the chain)
user = spec("web", "br-web", "172.18.0.1/16", icc=False)
internal = spec("vault", "br-vault", "10.9.0.1/24", internal=True)
rules += [*network_rules(user), *isolation_rules([user, internal])]
for rule in rules:
    normalised = firewall._build(rule)
    compiled = firewall._compile(rule)
    same = (bytes(normalised.rule), bytes(normalised.mask)) == tuple(map(bytes, compiled))
    print(same, rule.save_line())
"""


def test_rules_compile_to_the_same_bytes_as_python_iptables_normalises_them(host):
    lines = host.exec(sys.executable, "-c", COMPILE_BOTH_WAYS).stdout.splitlines()
    assert len(lines) == 16 + 4 + 5
    assert [line for line in lines if not line.startswith("True ")] == []


# Importing python-iptables as the firewall does, recording every command it starts.
IMPORT_WITH_HINTS = """
import os, subprocess
from dockernetd.kernel.firewall import library_hints
for name, value in library_hints().items():
    os.environ[name] = value
real_init = subprocess.Popen.__init__
def recording_init(self, args, *rest, **kwargs):
    print(args if isinstance(args, str) else " ".join(map(str, args)))
    real_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = recording_init
import iptc
"""


def test_python_iptables_is_imported_without_gcc_or_an_ldconfig_scan(host):
    started = host.exec(sys.executable, "-c", IMPORT_WITH_HINTS).stdout.splitlines()
    assert not [c for c in started if "gcc" in c or c.endswith("ldconfig -N -v")], started


def expected_boot(icc: bool, ip_masq: bool) -> dict[str, list[str]]:
    nat = BOOT_NAT + ([MASQUERADE] if ip_masq else [])
    icc_rule = f"-A FORWARD -i docker0 -o docker0 -j {'ACCEPT' if icc else 'DROP'}"
    return {"nat": nat, "filter": [*FILTER_CHAINS, *BOOT_FORWARD, icc_rule]}


@pytest.mark.parametrize(
    ("flags", "icc", "ip_masq"),
    [
        ((), True, True),
        (("--icc=false",), False, True),
        (("--ip-masq=false",), True, False),
        (("--icc=false", "--ip-masq=false"), False, False),
    ],
)
def test_boot_rules_are_dockers_exactly_and_survive_a_restart(
    host, make_daemon, flags, icc, ip_masq
):
    make_daemon(*flags).stop()
    assert iptables_rules(host) == expected_boot(icc, ip_masq)
    make_daemon(*flags)
    assert iptables_rules(host) == expected_boot(icc, ip_masq)


def test_switching_icc_replaces_the_opposite_rule(host, make_daemon):
    make_daemon("--icc=false").stop()
    make_daemon("--icc=true")
    # as Docker: the DROP is deleted and the ACCEPT inserted at the top (-I)
    assert iptables_rules(host)["filter"] == [
        *FILTER_CHAINS,
        "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
        *BOOT_FORWARD,
    ]


def test_iptables_false_writes_no_rule(host, make_daemon):
    make_daemon("--iptables=false")
    assert iptables_rules(host) == {"nat": [], "filter": []}  # not even a table was loaded


@both_backends
def test_a_container_reaches_the_outside_through_masquerade(host, outside, make_daemon, container):
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    ns.exec("ping", "-c", "1", "-W", "3", OUTSIDE)


@both_backends
def test_without_masquerade_the_outside_cannot_answer(host, outside, make_daemon, container):
    daemon = make_daemon("--ip-masq=false")
    ns, _ = container(daemon, "web")
    assert ns.exec("ping", "-c", "1", "-W", "1", OUTSIDE, check=False).returncode != 0


def test_published_ports_through_dnat_and_through_the_proxy(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon()
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    processes.append(start_echo_server(ns, "udp", 53, "dns"))
    tcp = daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    udp = daemon.call("allocate_port", id="web", container_port=53, proto="udp")
    assert tcp == {
        "host_ip": "0.0.0.0",
        "host_port": 8080,
        "proto": "tcp",
        "container_ip": iface["ip"],
        "container_port": 80,
    }
    assert (udp["host_port"], udp["proto"]) == (49153, "udp")
    gateway = iface["gateway"]
    # from outside: DNAT, the container sees the real client
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "hello") == f"web:{OUTSIDE}:hello"
    assert probe(outside, "udp", HOST_UPLINK, 49153, "q") == f"dns:{OUTSIDE}:q"
    # from the host to loopback: the userland proxy, the container sees the gateway
    assert probe(host, "tcp", "127.0.0.1", 8080, "hi") == f"web:{gateway}:hi"
    assert probe(host, "udp", "127.0.0.1", 49153, "q2") == f"dns:{gateway}:q2"
    rules = iptables_rules(host)
    assert (
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
    ) in rules["nat"]
    assert (
        "-A FORWARD -d 172.17.0.2/32 ! -i docker0 -o docker0 -p udp -m udp --dport 53 -m comment "
        '--comment "dockernetd:web" -j ACCEPT'
    ) in rules["filter"]


@both_backends
def test_a_port_held_twice_or_by_another_process(host, make_daemon, container, processes):
    daemon = make_daemon()
    container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_port", id="web", container_port=81, host_port=8080)
    assert (exc.value.code, exc.value.message) == (
        1005,
        "Bind for 0.0.0.0:8080 failed: port is already allocated",
    )
    # another process holds 49153 in the host namespace: the dynamic mapping moves on
    processes.append(start_echo_server(host, "tcp", 49153, "squatter"))
    moved = daemon.call("allocate_port", id="web", container_port=80)
    assert moved["host_port"] == 49154
    assert (
        "Failed to allocate and map port: listen tcp 0.0.0.0:49153: bind: address already in use, retry: 1"
        in daemon.log()
    )
    # and an explicit request for a port another process holds is 1007
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_port", id="web", container_port=80, host_port=49153)
    assert exc.value.code == 1007
    assert exc.value.message == (
        "Error starting userland proxy: listen tcp 0.0.0.0:49153: bind: address already in use"
    )
    assert [p["host_port"] for p in daemon.call("list_interfaces")[0]["ports"]] == [8080, 49154]


def test_a_port_range_is_published_in_one_go_and_released_with_its_container(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 8001, "web"))
    result = daemon.call(
        "allocate_port_range", id="web", container_port=8000, count=3, host_port=9000
    )
    assert result == {
        "container_ip": "172.17.0.2",
        "ports": [
            {
                "host_ip": "0.0.0.0",
                "host_port": 9000 + n,
                "proto": "tcp",
                "container_port": 8000 + n,
            }
            for n in range(3)
        ],
    }
    rules = iptables_rules(host)
    for n in range(3):
        assert (
            f"-A DOCKER ! -i docker0 -p tcp -m tcp --dport {9000 + n} "
            f"-j DNAT --to-destination 172.17.0.2:{8000 + n}"
        ) in rules["nat"]
        assert (
            f"-A FORWARD -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport {8000 + n} "
            '-m comment --comment "dockernetd:web" -j ACCEPT'
        ) in rules["filter"]
    assert probe(outside, "tcp", HOST_UPLINK, 9001, "r") == f"web:{OUTSIDE}:r"
    assert probe(host, "tcp", "127.0.0.1", 9001, "p").startswith("web:")
    assert len(daemon.call("release_interface", id="web")["released_ports"]) == 3
    assert iptables_rules(host) == expected_boot(icc=True, ip_masq=True)


def test_a_port_range_with_one_port_taken_leaves_nothing(host, make_daemon, container, processes):
    daemon = make_daemon()
    container(daemon, "web")
    processes.append(start_echo_server(host, "tcp", 9001, "squatter"))
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_port_range", id="web", container_port=80, count=3, host_port=9000)
    assert exc.value.code == 1007
    assert iptables_rules(host) == expected_boot(icc=True, ip_masq=True)
    assert daemon.call("list_interfaces")[0]["ports"] == []
    # the ports taken before the failure are free again, for this daemon and for the kernel
    assert (
        daemon.call("allocate_port", id="web", container_port=80, host_port=9000)["host_port"]
        == 9000
    )
    dynamic = daemon.call("allocate_port_range", id="web", container_port=81, count=2, proto="udp")
    assert [p["host_port"] for p in dynamic["ports"]] == [49153, 49154]


def test_specific_host_ip(host, outside, make_daemon, container, processes):
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_ip=HOST_UPLINK, host_port=8080)
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "x") == f"web:{OUTSIDE}:x"
    assert (
        f"-A DOCKER -d {HOST_UPLINK}/32 ! -i docker0 -p tcp -m tcp --dport 8080 "
        "-j DNAT --to-destination 172.17.0.2:80"
    ) in iptables_rules(host)["nat"]
    assert probe(host, "tcp", "127.0.0.1", 8080).startswith("ERR")  # bound to 192.0.2.1 only


def test_icc_false_isolates_until_linked(host, make_daemon, container, processes):
    daemon = make_daemon("--icc=false")
    a, ia = container(daemon, "a")
    b, ib = container(daemon, "b")
    processes.append(start_echo_server(b, "tcp", 80, "b80"))
    processes.append(start_echo_server(b, "tcp", 81, "b81"))
    assert probe(a, "tcp", ib["ip"], 80, timeout=1).startswith("ERR")
    link = {"parent_ip": ia["ip"], "child_ip": ib["ip"], "ports": ["80/tcp"]}
    assert daemon.call("link", action="add", **link) == {"rules": 2}
    assert daemon.call("link", action="add", **link) == {"rules": 0}  # idempotent
    assert probe(a, "tcp", ib["ip"], 80, "hi") == f"b80:{ia['ip']}:hi"
    assert probe(a, "tcp", ib["ip"], 81, timeout=1).startswith("ERR")
    forward = iptables_rules(host)["filter"]
    assert forward[3:5] == [
        "-A FORWARD -s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT',
        "-A FORWARD -s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT',
    ]
    assert forward[-1] == "-A FORWARD -i docker0 -o docker0 -j DROP"
    assert daemon.call("status")["links"] == 1
    assert daemon.call("link", action="remove", **link) == {"rules": 2}
    assert probe(a, "tcp", ib["ip"], 80, timeout=1).startswith("ERR")
    assert iptables_rules(host) == expected_boot(icc=False, ip_masq=True)
    with pytest.raises(RpcError) as exc:
        daemon.call("link", action="-D", **link)
    assert exc.value.code == 1008
    assert daemon.call("link", action="-D", ignore_errors=True, **link) == {"rules": 0}


def test_release_frees_port_rules_and_proxy(host, make_daemon, container, processes):
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.call("allocate_port", id="web", container_port=80, proto="udp", host_port=8080)
    released = daemon.call("release_interface", id="web")["released_ports"]
    assert {(p["host_port"], p["proto"]) for p in released} == {(8080, "tcp"), (8080, "udp")}
    assert iptables_rules(host) == expected_boot(icc=True, ip_masq=True)
    assert probe(host, "tcp", "127.0.0.1", 8080).startswith("ERR")
    with pytest.raises(RpcError) as exc:
        daemon.call("release_interface", id="web")
    assert exc.value.code == 1004
    container(daemon, "other")
    assert (
        daemon.call("allocate_port", id="other", container_port=80, host_port=8080)["host_port"]
        == 8080
    )


def test_a_rule_deleted_behind_the_daemons_back_does_not_keep_the_others(
    host, make_daemon, container
):
    daemon = make_daemon("--firewall-self-heal=false")  # the drift made here must stay for the test
    container(daemon, "web")
    for host_port in (8080, 8081, 8082):
        daemon.call("allocate_port", id="web", container_port=80, host_port=host_port)
    gone = next(r for r in iptables_rules(host)["nat"] if "--dport 8081" in r)
    host.exec("iptables-legacy", "-t", "nat", "-D", *gone.split()[1:])
    # the release's one commit fails on the missing rule; each mapping is then deleted alone
    assert len(daemon.call("release_interface", id="web")["released_ports"]) == 3
    assert iptables_rules(host) == expected_boot(icc=True, ip_masq=True)
    assert "Error on iptables delete" in daemon.log()


def test_a_firewall_failure_leaves_nothing_behind(host, make_daemon, container):
    daemon = make_daemon("--firewall-self-heal=false")  # the drift made here must stay for the test
    container(daemon, "web")
    # break the firewall behind the daemon's back: its DOCKER chain is gone
    for jump in (
        "PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
    ):
        host.exec("iptables-legacy", "-t", "nat", "-D", *jump.split())
    host.exec("iptables-legacy", "-t", "nat", "-X", "DOCKER")
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert exc.value.code == 1008 and exc.value.message.startswith("iptables: ")
    assert daemon.call("list_interfaces")[0]["ports"] == []
    assert not any("dockernetd:" in r for r in iptables_rules(host)["filter"])
    assert probe(host, "tcp", "127.0.0.1", 8080).startswith("ERR")  # no proxy left listening
    assert daemon.call("status")["port_mappings"] == 0
    host.exec("iptables-legacy", "-t", "nat", "-N", "DOCKER")
    assert (
        daemon.call("allocate_port", id="web", container_port=80, host_port=8080)["host_port"]
        == 8080
    )


def test_unknown_container(make_daemon):
    daemon = make_daemon()
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_port", id="ghost", container_port=80)
    assert (exc.value.code, exc.value.message) == (1004, "no network information for ghost")


def test_iptables_false_publishes_through_the_proxy_only(host, make_daemon, container, processes):
    daemon = make_daemon("--iptables=false")
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert probe(host, "tcp", "127.0.0.1", 8080, "p") == f"web:{iface['gateway']}:p"
    assert iptables_rules(host) == {"nat": [], "filter": []}


@both_backends
def test_udp_remap_is_not_stuck_on_the_old_container(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon()
    a, _ = container(daemon, "a")
    b, _ = container(daemon, "b")
    processes.append(start_echo_server(a, "udp", 53, "A"))
    processes.append(start_echo_server(b, "udp", 53, "B"))
    daemon.call("allocate_port", id="a", container_port=53, proto="udp", host_port=5353)
    assert probe(outside, "udp", HOST_UPLINK, 5353, "1", source_port=40000) == f"A:{OUTSIDE}:1"
    daemon.call("release_interface", id="a")
    daemon.call("allocate_port", id="b", container_port=53, proto="udp", host_port=5353)
    # same client port: without the conntrack cleanup this still went to A
    assert probe(outside, "udp", HOST_UPLINK, 5353, "2", source_port=40000) == f"B:{OUTSIDE}:2"


def test_a_killed_daemon_comes_back_with_the_same_state_and_rules(
    host, outside, make_daemon, container, processes
):
    import signal

    daemon = make_daemon("--icc=false")
    ns, iface = container(daemon, "web")
    other, other_iface = container(daemon, "db")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.call("allocate_port", id="web", container_port=80, proto="udp")
    daemon.call(
        "link", action="add", parent_ip=other_iface["ip"], child_ip=iface["ip"], ports=["80/tcp"]
    )
    rules_before = iptables_rules(host)
    listed_before = daemon.call("list_interfaces")
    # a tagged rule nobody owns, and an untagged one in our DOCKER chain: both must go
    add_foreign_tagged_rule(host)
    host.exec(
        "iptables-legacy", "-t", "nat", "-A", "DOCKER", "-p", "tcp", "--dport", "9", "-j", "RETURN"
    )
    daemon.stop(signal.SIGKILL)
    # while no daemon runs, published ports still forward through DNAT
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "gap") == f"web:{OUTSIDE}:gap"
    again = make_daemon("--icc=false")
    assert again.call("list_interfaces") == listed_before
    assert iptables_rules(host) == rules_before  # same rules, in the same order, nothing duplicated
    assert probe(host, "tcp", "127.0.0.1", 8080, "back") == f"web:{iface['gateway']}:back"
    assert probe(other, "tcp", iface["ip"], 80, "linked") == f"web:{other_iface['ip']}:linked"
    assert (
        again.call("allocate_interface", id="new")["ip"] == "172.17.0.4"
    )  # no IP handed out twice
    assert "state: restored 2 interfaces, 2 ports, 1 links" in again.log()


def test_state_that_no_longer_fits_is_dropped_with_a_reason(host, make_daemon, container, tmp_path):
    daemon = make_daemon("--bip", "10.20.30.1/24")
    container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.stop()
    with open(tmp_path / "state" / "state.jsonl", "ab") as f:
        f.write(b"deadbeef {not json}\n")
    again = make_daemon("-b", "docker0", "--fixed-cidr", "10.20.30.128/25")
    log = again.log()
    assert "state.jsonl line 3: checksum mismatch; dropped" in log
    assert "state: interface web (10.20.30.2) dropped: requested ip is out of range" in log
    assert "state: port 0.0.0.0:8080/tcp dropped: its container web is gone" in log
    assert again.call("list_interfaces") == []
    rules = iptables_rules(host)
    assert not any("dockernetd:" in r for r in rules["filter"])
    assert not any(r.startswith("-A DOCKER ") for r in rules["nat"])


@both_backends
def test_sigterm_closes_the_proxies(host, make_daemon, container):
    daemon = make_daemon()
    container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert daemon.stop() == 0
    assert probe(host, "tcp", "127.0.0.1", 8080).startswith("ERR")


@both_backends
def test_udp_proxy_survives_a_container_not_listening_yet(host, make_daemon, container, processes):
    daemon = make_daemon()
    ns, iface = container(daemon, "dns")
    daemon.call("allocate_port", id="dns", container_port=53, proto="udp", host_port=5353)
    # nothing listens yet: the container answers ICMP port unreachable to the proxy
    assert probe(host, "udp", "127.0.0.1", 5353, "early", source_port=41000, timeout=1).startswith(
        "ERR"
    )
    processes.append(start_echo_server(ns, "udp", 53, "dns"))
    answer = probe(host, "udp", "127.0.0.1", 5353, "late", source_port=41000)
    assert answer == f"dns:{iface['gateway']}:late"


def test_sigterm_with_idle_clients_connected_exits_promptly(make_daemon):
    import contextlib
    import socket
    import time

    daemon = make_daemon()
    idle = []
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(daemon.socket)
        idle.append(s)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5  # idle connections are closed, not waited for
    for s in idle:
        # closed by the daemon (EOF), or reset if it was never accepted before the listener closed
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1) == b""
        s.close()


def test_verify_finds_drift_and_repair_puts_it_back(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon("--firewall-self-heal=false")  # the drift made here must stay for the test
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    assert daemon.call("verify") == {"drift": [], "repaired": False}
    healthy = iptables_rules(host)
    # behind the daemon's back: a DNAT rule deleted, a foreign tagged rule, the address gone
    dnat = next(r for r in healthy["nat"] if "--dport 8080" in r)
    host.exec("iptables-legacy", "-t", "nat", "-F", "DOCKER")
    add_foreign_tagged_rule(host)
    host.ip("addr", "del", "172.17.42.1/16", "dev", "docker0")
    report = daemon.call("verify")
    kinds = sorted(d["kind"] for d in report["drift"])
    assert kinds == ["bridge_address", "rule_extra", "rule_missing"]
    assert next(d for d in report["drift"] if d["kind"] == "rule_missing")["rule"] == dnat
    assert report["repaired"] is False
    assert daemon.call("verify", repair=True)["repaired"] is True
    assert daemon.call("verify") == {"drift": [], "repaired": False}
    assert host.ipv4_addresses("docker0") == ["172.17.42.1/16"]
    assert sorted(iptables_rules(host)["nat"]) == sorted(healthy["nat"])
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "ok") == f"web:{OUTSIDE}:ok"


def test_verify_repairs_a_deleted_bridge(host, make_daemon, container):
    daemon = make_daemon()
    container(daemon, "web")
    host.ip("link", "del", "docker0")
    assert [d["kind"] for d in daemon.call("verify")["drift"]] == ["bridge_missing"]
    daemon.call("verify", repair=True)
    assert host.ipv4_addresses("docker0") == ["172.17.42.1/16"]
    assert "UP" in host.link("docker0")["flags"]
    assert daemon.call("verify")["drift"] == []
