"""The nftables backend in the kernel: its table exactly, real packets, repair, self-healing,
and switching backends.  (The networks, isolation, links and direct-access tests run on
both backends: see @both_backends in test_networks.py and test_direct_access.py.)

The table is read with ``nft -j`` and parsed: the chains and their rules (by the comment
each rule carries, its own text) and the elements of every set and map.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from dockernetd.client import RpcError
from dockernetd.kernel.nftables import BASE_CHAINS, CHAINS, SETS, SKELETON, element_of

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    Netns,
    iptables_rules,
    nft_elements,
    probe,
    start_echo_server,
    wait_for,
)

#: The default network's own rules (Docker 1.4's boot rules, as this table writes them).
BOOT_RULES = [
    ("postrouting_nat", 'ip saddr 172.17.0.0/16 oifname != "docker0" masquerade'),
    ("networks", 'iifname "docker0" oifname "docker0" accept'),
    ("networks", 'iifname "docker0" oifname != "docker0" accept'),
    ("established", 'oifname "docker0" ct state established,related accept'),
]


@pytest.fixture
def firewall_backend() -> str:
    return "nftables"


def table(ns: Netns) -> dict[str, Any]:
    """The table as ``{"chains": {chain: [rule text, ...]}, "sets": {name: [element]}}``."""
    listed = json.loads(ns.exec("nft", "-j", "list", "table", "inet", "dockernetd").stdout)
    chains: dict[str, list[str]] = {}
    sets: dict[str, list[tuple[str, ...]]] = {}
    for entry in listed["nftables"]:
        kind, body = next(iter(entry.items()))
        if kind == "chain":
            chains[body["name"]] = []
        elif kind == "rule":
            chains[body["chain"]].append(body.get("comment", "").replace("'", '"'))
        elif kind in ("set", "map"):
            elements = (element_of(body["name"], raw) for raw in body.get("elem", []))
            sets[body["name"]] = sorted(element.key + element.value for element in elements)
    return {"chains": chains, "sets": sets}


def boot_table(**elements: list[tuple[str, ...]]) -> dict[str, Any]:
    """The table of a daemon with ``bridge`` only, plus ``elements``: the boot rules first
    in their chains, as iptables inserts them at the top."""
    chains: dict[str, list[str]] = {name: [] for name in (*BASE_CHAINS, *CHAINS)}
    for chain, text in BOOT_RULES:
        chains[chain].append(text)
    for rule in SKELETON:
        chains[rule.chain].append(rule.text)
    sets: dict[str, list[tuple[str, ...]]] = {name: [] for name in SETS}
    sets["localnet_bridges"] = [("docker0",)]
    sets.update(elements)
    return {"chains": chains, "sets": sets}


def legacy_tables(ns: Netns) -> list[str]:
    """The legacy iptables tables that exist in the namespace (made by any use of them)."""
    return ns.exec("cat", "/proc/net/ip_tables_names").stdout.split()


def test_boot_writes_exactly_the_table_and_nothing_in_iptables(host, make_daemon):
    make_daemon()
    assert table(host) == boot_table()
    assert legacy_tables(host) == []  # legacy iptables never even loaded


def test_published_ports_are_elements_and_reach_the_container(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon()
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    processes.append(start_echo_server(ns, "udp", 53, "dns"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    daemon.call("allocate_port", id="web", container_port=53, proto="udp", host_port=5353)
    daemon.call("allocate_port", id="web", container_port=80, host_ip=HOST_UPLINK, host_port=9090)
    gateway = iface["gateway"]
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "hello") == f"web:{OUTSIDE}:hello"
    assert probe(outside, "udp", HOST_UPLINK, 5353, "q") == f"dns:{OUTSIDE}:q"
    assert probe(outside, "tcp", HOST_UPLINK, 9090, "at") == f"web:{OUTSIDE}:at"
    assert probe(host, "tcp", "127.0.0.1", 8080, "hi") == f"web:{gateway}:hi"  # the proxy
    assert table(host) == boot_table(
        endpoint_ips=[("172.17.0.2",)],
        endpoints=[("172.17.0.2", "docker0")],
        skip_any=[("docker0", "tcp", "8080", "return"), ("docker0", "udp", "5353", "return")],
        dnat_any=[("tcp", "8080", "172.17.0.2", "80"), ("udp", "5353", "172.17.0.2", "53")],
        skip_at=[("docker0", HOST_UPLINK, "tcp", "9090", "return")],
        dnat_at=[(HOST_UPLINK, "tcp", "9090", "172.17.0.2", "80")],
        published_to=[("172.17.0.2", "tcp", "80"), ("172.17.0.2", "udp", "53")],
    )
    daemon.call("release_interface", id="web")
    assert table(host) == boot_table()


def test_a_port_without_the_proxy_reaches_the_container_from_the_hosts_loopback(
    host, make_daemon, container, processes
):
    daemon = make_daemon()
    ns, iface = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080, proxy=False)
    assert probe(host, "tcp", "127.0.0.1", 8080, "k") == f"web:{iface['gateway']}:k"
    assert nft_elements(host, "loopback_any") == [("tcp", "8080", "172.17.0.2", "80")]
    assert nft_elements(host, "loopback_masq") == [("172.17.0.2", "tcp", "80")]


def test_masquerade_and_icc_off_until_linked(host, outside, make_daemon, container, processes):
    daemon = make_daemon("--icc=false")
    a, ia = container(daemon, "a")
    b, ib = container(daemon, "b")
    a.exec("ping", "-c", "1", "-W", "3", OUTSIDE)  # masqueraded out
    processes.append(start_echo_server(b, "tcp", 80, "b80"))
    assert probe(a, "tcp", ib["ip"], 80, timeout=1).startswith("ERR")
    link = {"parent_ip": ia["ip"], "child_ip": ib["ip"], "ports": ["80/tcp"]}
    assert daemon.call("link", action="add", **link) == {"rules": 2}
    assert probe(a, "tcp", ib["ip"], 80, "hi") == f"b80:{ia['ip']}:hi"
    assert nft_elements(host, "links") == [("docker0", ia["ip"], ib["ip"], "tcp", "80")]
    assert nft_elements(host, "links_reply") == [("docker0", ib["ip"], ia["ip"], "tcp", "80")]
    assert 'iifname "docker0" oifname "docker0" drop' in table(host)["chains"]["networks"]
    daemon.call("link", action="remove", **link)
    assert probe(a, "tcp", ib["ip"], 80, timeout=1).startswith("ERR")
    assert nft_elements(host, "links") == []


def test_a_killed_daemon_comes_back_to_the_same_table(
    host, outside, make_daemon, container, processes
):
    daemon = make_daemon()
    daemon.call("network_create", name="red", subnet="10.9.0.0/24", icc=False)
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    before = table(host)
    daemon.stop(signal.SIGKILL)
    again = make_daemon()
    assert table(host) == before
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "back") == f"web:{OUTSIDE}:back"
    assert again.call("verify") == {"drift": [], "repaired": False}


def test_verify_reports_and_repairs_what_another_program_changed(host, make_daemon, container):
    daemon = make_daemon("--firewall-self-heal=false")  # the drift made here must stay
    container(daemon, "web")
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    healthy = table(host)
    host.exec("nft", "delete", "element", "inet", "dockernetd", "dnat_any", "{ tcp . 8080 }")
    host.exec("nft", "flush", "chain", "inet", "dockernetd", "networks")
    host.exec(
        "nft", "add", "element", "inet", "dockernetd", "published_to", "{ 10.1.1.1 . tcp . 1 }"
    )
    drift = daemon.call("verify")["drift"]
    assert sorted(entry["rule"] for entry in drift) == sorted(
        [
            'inet dockernetd skip_any: { "docker0" . tcp . 8080 : return }; '
            "inet dockernetd dnat_any: { tcp . 8080 : 172.17.0.2 . 80 }",
            'inet dockernetd networks: iifname "docker0" oifname "docker0" accept',
            'inet dockernetd networks: iifname "docker0" oifname != "docker0" accept',
            "inet dockernetd published_to: { 10.1.1.1 . tcp . 1 }",
        ]
    )
    assert {entry["kind"] for entry in drift} == {"rule_missing", "rule_extra"}
    assert daemon.call("verify", repair=True)["repaired"] is True
    assert table(host) == healthy
    assert daemon.call("verify") == {"drift": [], "repaired": False}


@pytest.mark.parametrize(
    "attack",
    [
        ("nft", "flush", "ruleset"),
        ("nft", "delete", "table", "inet", "dockernetd"),
        ("nft", "flush", "chain", "inet", "dockernetd", "published"),
    ],
    ids=["flush-ruleset", "delete-table", "flush-chain"],
)
def test_self_healing_puts_the_table_back_within_a_second(
    host, outside, make_daemon, container, processes, attack
):
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    healthy = table(host)
    host.exec(*attack)
    started = time.monotonic()
    wait_for(
        lambda: (
            host.exec("nft", "list", "table", "inet", "dockernetd", check=False).returncode == 0
            and table(host) == healthy
        ),
        timeout=5,
    )
    print(f"healed in {time.monotonic() - started:.2f} s")  # the README's figure; not asserted
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "healed") == f"web:{OUTSIDE}:healed"
    assert daemon.call("status")["firewall_repairs"] >= 1


def test_switching_backends_cleans_up_what_the_other_left(
    host, outside, make_daemon, container, processes, tmp_path
):
    # iptables first: its rules, a port published
    legacy = make_daemon("--firewall-backend", "iptables")  # the last flag wins
    ns, _ = container(legacy, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    legacy.call("allocate_port", id="web", container_port=80, host_port=8080)
    empty = {
        "nat": [":PREROUTING ACCEPT", ":INPUT ACCEPT", ":OUTPUT ACCEPT", ":POSTROUTING ACCEPT"],
        "filter": [":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"],
    }
    assert iptables_rules(host) != empty
    legacy.stop()
    # then nftables, from the same state: the iptables rules are gone, the table serves
    daemon = make_daemon()
    assert iptables_rules(host) == empty
    assert nft_elements(host, "dnat_any") == [("tcp", "8080", "172.17.0.2", "80")]
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "nft") == f"web:{OUTSIDE}:nft"
    daemon.stop()
    # and back: the table is gone
    make_daemon("--firewall-backend", "iptables")
    assert host.exec("nft", "list", "table", "inet", "dockernetd", check=False).returncode != 0
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "ipt") == f"web:{OUTSIDE}:ipt"


def test_an_element_two_mappings_share_stays_while_one_of_them_does(
    host, outside, make_daemon, container, processes
):
    """8080 and 9000 both go to the container's port 80: one ``published_to`` element for
    the two (iptables holds the rule twice).  A range that fails on a taken port undoes its
    9000: the element stays, and 8080 keeps working."""
    daemon = make_daemon()
    ns, _ = container(daemon, "web")
    processes.append(start_echo_server(ns, "tcp", 80, "web"))
    daemon.call("allocate_port", id="web", container_port=80, host_port=8080)
    processes.append(start_echo_server(host, "tcp", 9001, "squatter"))
    with pytest.raises(RpcError):
        daemon.call("allocate_port_range", id="web", container_port=80, count=2, host_port=9000)
    assert nft_elements(host, "published_to") == [("172.17.0.2", "tcp", "80")]
    assert probe(outside, "tcp", HOST_UPLINK, 8080, "kept") == f"web:{OUTSIDE}:kept"
    daemon.call("allocate_port", id="web", container_port=80, host_port=9000)
    daemon.call("release_interface", id="web")
    assert table(host) == boot_table()


def test_a_network_made_before_a_restart_is_deleted_by_the_daemon_after_it(host, make_daemon):
    """Its rules are found again by their handles (a netlink dump of the rules at start)."""
    daemon = make_daemon()
    daemon.call("network_create", name="red", subnet="10.9.0.0/24")
    daemon.stop(signal.SIGKILL)
    again = make_daemon()
    again.call("network_delete", name="red")
    assert table(host) == boot_table()
