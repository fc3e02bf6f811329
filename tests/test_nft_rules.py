"""What stands for each rule in the nftables table, and how it is written and read back.

The same planner (rules.py) gives both backends their rules; here, the nftables side
of each: exactly which elements and chain rules, and their nft syntax.  The kernel
side (the table itself, real packets) is in integration/test_nftables.py.
"""

from ipaddress import IPv4Address

import pytest

from dockernetd.kernel.nftables import (
    SETS,
    SKELETON,
    _element_text,
    atoms,
    describe,
    skeleton_commands,
)
from dockernetd.network import Endpoint, Link, Network, PortMapping
from dockernetd.rules import (
    NftElement,
    NftRule,
    boot_plan,
    direct_access_rule,
    isolation_rules,
    link_rules,
    loopback_path_rules,
    owned_rules,
    publish_rules,
)

from fakes import make_spec

WEB = Endpoint("web", "bridge", IPv4Address("172.17.0.2"), "02:42:ac:11:00:02")


def test_a_published_port_is_four_elements():
    mapping = PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80)
    assert [item for rule in publish_rules("docker0", WEB, mapping) for item in rule.nft] == [
        NftElement("skip_any", ("docker0", "tcp", "8080"), ("return",)),
        NftElement("dnat_any", ("tcp", "8080"), ("172.17.0.2", "80")),
        NftElement("published_to", ("172.17.0.2", "tcp", "80")),
    ]


def test_a_port_on_one_address_is_looked_up_by_that_address_and_guarded_on_loopback():
    mapping = PortMapping(IPv4Address("127.0.0.1"), 8080, "udp", 53, proxy=False)
    items = [item for rule in publish_rules("docker0", WEB, mapping) for item in rule.nft]
    assert items == [
        NftElement("skip_at", ("docker0", "127.0.0.1", "udp", "8080"), ("return",)),
        NftElement("dnat_at", ("127.0.0.1", "udp", "8080"), ("172.17.0.2", "53")),
        NftElement("published_to", ("172.17.0.2", "udp", "53")),
        NftElement("loopback_guard", ("127.0.0.1", "udp", "8080")),
        NftElement("loopback_at", ("127.0.0.1", "udp", "8080"), ("172.17.0.2", "53")),
        NftElement("loopback_masq", ("172.17.0.2", "udp", "53")),
    ]


def test_without_the_proxy_on_every_address_the_loopback_path_is_by_port():
    mapping = PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80, proxy=False)
    assert [item for rule in loopback_path_rules(WEB, mapping) for item in rule.nft] == [
        NftElement("loopback_any", ("tcp", "8080"), ("172.17.0.2", "80")),
        NftElement("loopback_masq", ("172.17.0.2", "tcp", "80")),
    ]


def test_a_guard_is_the_address_and_the_address_on_its_bridge():
    guard = direct_access_rule("br-red", WEB)
    assert guard.nft == (
        NftElement("endpoint_ips", ("172.17.0.2",)),
        NftElement("endpoints", ("172.17.0.2", "br-red")),
    )


def test_a_link_is_an_element_each_way():
    link = Link("bridge", IPv4Address("172.17.0.2"), IPv4Address("172.17.0.3"), "tcp", 80)
    to_child, to_parent = link_rules("docker0", link)
    assert to_child.nft == (
        NftElement("links", ("docker0", "172.17.0.2", "172.17.0.3", "tcp", "80")),
    )
    assert to_parent.nft == (
        NftElement("links_reply", ("docker0", "172.17.0.3", "172.17.0.2", "tcp", "80")),
    )


def test_boot_and_network_rules_are_rules_of_the_tables_chains():
    plan = boot_plan(make_spec(icc=False))
    assert [item for rule in plan.present for item in rule.nft] == [
        NftRule("postrouting_nat", 'ip saddr 172.17.0.0/16 oifname != "docker0" masquerade'),
        NftRule("networks", 'iifname "docker0" oifname "docker0" drop'),
        NftRule("networks", 'iifname "docker0" oifname != "docker0" accept'),
        NftRule("established", 'oifname "docker0" ct state established,related accept'),
    ]
    assert [item for rule in plan.absent for item in rule.nft] == [
        NftRule("networks", 'iifname "docker0" oifname "docker0" accept')
    ]
    assert {rule.nft for rule in plan.jumps} == {()}  # the table has its own hooks


def test_isolation_is_rules_of_the_isolation_chains():
    red = make_spec("red", "br-red", "172.18.0.1/16")
    vault = make_spec("vault", "br-vault", "172.19.0.1/16", internal=True)
    assert [item for rule in isolation_rules([red, vault]) for item in rule.nft] == [
        NftRule("isolation1", 'iifname "br-red" oifname != "br-red" jump isolation2'),
        NftRule("isolation2", 'oifname "br-red" drop'),
        NftRule("isolation1", 'iifname "br-vault" oifname != "br-vault" drop'),
        NftRule("isolation1", 'iifname != "br-vault" oifname "br-vault" drop'),
    ]


def test_every_owned_rule_has_something_in_the_table():
    """Else the nftables backend would not have it: only the jump into the isolation
    chains has no counterpart (the table's forward chain always jumps there)."""
    network = Network(make_spec("red", "br-red", "172.18.0.1/16"))
    endpoint, _ = network.join("c")
    endpoint.ports.append(PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80))
    link = Link("red", IPv4Address("172.18.0.2"), IPv4Address("172.18.0.3"), "tcp", 80)
    default = Network(make_spec())
    rules = owned_rules([default, network], [link], direct_access=True)
    assert [rule.save_line() for rule in rules if not rule.nft] == [
        '-A FORWARD -m comment --comment "dockernetd:isolation" -j DOCKER-ISOLATION-STAGE-1'
    ]


@pytest.mark.parametrize(
    ("element", "text"),
    [
        (NftElement("endpoints", ("172.17.0.2", "docker0")), '172.17.0.2 . "docker0"'),
        (
            NftElement("dnat_any", ("tcp", "8080"), ("172.17.0.2", "80")),
            "tcp . 8080 : 172.17.0.2 . 80",
        ),
        (
            NftElement("skip_any", ("docker0", "tcp", "8080"), ("return",)),
            '"docker0" . tcp . 8080 : return',
        ),
    ],
)
def test_elements_are_written_in_nft_syntax(element, text):
    assert _element_text(element) == text
    assert describe(element) == f"inet dockernetd {element.set}: {{ {text} }}"


@pytest.mark.parametrize(
    ("listed", "read"),
    [
        ("172.17.0.2", ("172.17.0.2",)),
        ({"concat": ["tcp", 8080]}, ("tcp", "8080")),
        ({"return": None}, ("return",)),
        (
            {"elem": {"val": {"concat": ["docker0", "tcp", 80]}, "comment": "x"}},
            ("docker0", "tcp", "80"),
        ),
    ],
)
def test_listed_elements_are_read_back_as_written(listed, read):
    assert atoms(listed) == read


def test_the_skeleton_declares_every_set_and_comments_every_rule_with_its_text():
    commands = skeleton_commands()
    for name, (_, value) in SETS.items():
        assert (
            sum(f" {'map' if value else 'set'} inet dockernetd {name} " in c for c in commands) == 1
        )
    rules = [c for c in commands if c.startswith("add rule")]
    assert len(rules) == len(SKELETON)
    for command, rule in zip(rules, SKELETON, strict=True):
        quoted = rule.text.replace('"', "'")
        assert command == f'add rule inet dockernetd {rule.chain} {rule.text} comment "{quoted}"'
