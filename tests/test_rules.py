"""The rule planner: Docker 1.4's exact rules, as iptables-save prints them."""

from collections import Counter
from ipaddress import IPv4Address, IPv6Address

import pytest

from dockernetd.network import Endpoint, Link, Network, PortMapping
from dockernetd.rules import (
    DOCKER_JUMPS,
    FILTER,
    LINK_RULE_TABLES,
    MAPPING_RULE_TABLES,
    NAT,
    NAT6,
    RAW,
    STALE_JUMPS,
    boot_plan,
    direct_access_rule,
    isolation_rules,
    link_rules,
    loopback_guard_rule,
    mapping_rules,
    network_rules,
    owned_rule_counts,
    owned_rules,
    publish_rules,
)

from fakes import make_spec

DOCKER0 = make_spec()
WEB = make_spec("web", "br-web", "172.18.0.1/16")
DB = make_spec("db", "br-db", "172.19.0.1/16", icc=False)


def endpoint(container: str, ip: str) -> Endpoint:
    return Endpoint(container, "bridge", IPv4Address(ip), "02:42:00:00:00:00")


def mapping(host_ip: str, host_port: int, proto: str, container_port: int) -> PortMapping:
    return PortMapping(IPv4Address(host_ip), host_port, proto, container_port)


def link(parent: str, child: str, proto: str, port: int, network: str = "bridge") -> Link:
    return Link(network, IPv4Address(parent), IPv4Address(child), proto, port)


def lines(rules) -> list[str]:
    return [r.save_line() for r in rules]


@pytest.mark.parametrize("ip_masq", [True, False])
@pytest.mark.parametrize("icc", [True, False])
def test_boot_plan_in_dockers_order(icc, ip_masq):
    plan = boot_plan(make_spec(icc=icc, ip_masq=ip_masq))
    verdict, opposite = ("ACCEPT", "DROP") if icc else ("DROP", "ACCEPT")
    expected = [
        *(["-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"] if ip_masq else []),
        f"-A FORWARD -i docker0 -o docker0 -j {verdict}",
        "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    assert lines(plan.present) == expected
    assert lines(plan.absent) == [f"-A FORWARD -i docker0 -o docker0 -j {opposite}"]
    assert [r.table for r in plan.present][-3:] == [FILTER] * 3
    assert [(r.table, r.save_line()) for r in plan.jumps] == [
        (NAT, "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
        (NAT, "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"),
        (NAT6, "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),  # Docker 27's
        (NAT6, "-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER"),
    ]


def test_stale_jumps_include_the_old_forms():
    assert STALE_JUMPS[: len(DOCKER_JUMPS)] == DOCKER_JUMPS
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER" in lines(STALE_JUMPS)
    assert "-A PREROUTING -j DOCKER" in lines(STALE_JUMPS)


def test_mapping_rules_any_host_ip():
    dnat, forward = mapping_rules(
        "docker0", endpoint("web1", "172.17.0.2"), mapping("0.0.0.0", 8080, "tcp", 80)
    )
    assert (dnat.table, dnat.chain, forward.table, forward.chain) == (
        NAT,
        "DOCKER",
        FILTER,
        "FORWARD",
    )
    assert dnat.save_line() == (
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
    )
    assert forward.save_line() == (
        "-A FORWARD -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -m comment "
        '--comment "dockernetd:web1" -j ACCEPT'
    )


def test_mapping_rules_specific_host_ip_and_udp():
    dnat, forward = mapping_rules(
        "br1", endpoint("db", "10.0.0.9"), mapping("192.0.2.1", 5353, "udp", 53)
    )
    assert dnat.save_line() == (
        "-A DOCKER -d 192.0.2.1/32 ! -i br1 -p udp -m udp --dport 5353 "
        "-j DNAT --to-destination 10.0.0.9:53"
    )
    assert "-p udp -m udp --dport 53" in forward.save_line()


def test_link_rules_both_directions():
    to_child, to_parent = link_rules("docker0", link("172.17.0.2", "172.17.0.3", "tcp", 80))
    assert to_child.save_line() == (
        "-A FORWARD -s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT'
    )
    assert to_parent.save_line() == (
        "-A FORWARD -s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT'
    )


def test_boot_rules_carry_no_owner_tag():
    assert not any("dockernetd:" in line for line in lines(boot_plan(DOCKER0).present))


@pytest.mark.parametrize("host_ip", ["0.0.0.0", "192.0.2.1"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_every_mapping_and_link_has_rules_of_one_shape(host_ip, proto):
    """What the metrics count rules by, instead of building them."""
    published = mapping_rules(
        "docker0", endpoint("web", "172.17.0.2"), mapping(host_ip, 8080, proto, 80)
    )
    assert tuple(rule.table for rule in published) == MAPPING_RULE_TABLES
    linked = link_rules("docker0", link("172.17.0.2", "172.17.0.3", proto, 5432))
    assert tuple(rule.table for rule in linked) == LINK_RULE_TABLES


def test_the_default_network_has_no_rules_of_its_own_beyond_the_boot_plan():
    assert network_rules(DOCKER0) == ()
    assert isolation_rules([DOCKER0]) == []  # one network: nothing to isolate, no chains


def test_a_network_has_the_boot_plans_rules_tagged_with_its_name():
    assert lines(network_rules(WEB)) == [
        '-A POSTROUTING -s 172.18.0.0/16 ! -o br-web -m comment --comment "dockernetd:net:web" '
        "-j MASQUERADE",
        '-A FORWARD -i br-web -o br-web -m comment --comment "dockernetd:net:web" -j ACCEPT',
        '-A FORWARD -i br-web ! -o br-web -m comment --comment "dockernetd:net:web" -j ACCEPT',
        "-A FORWARD -o br-web -m conntrack --ctstate RELATED,ESTABLISHED -m comment "
        '--comment "dockernetd:net:web" -j ACCEPT',
    ]
    assert "-j DROP" in lines(network_rules(DB))[1]


def test_an_internal_network_has_no_masquerade_and_no_way_out():
    internal = make_spec("vault", "br-vault", "10.9.0.1/24", internal=True)
    assert lines(network_rules(internal)) == [
        '-A FORWARD -i br-vault -o br-vault -m comment --comment "dockernetd:net:vault" -j ACCEPT'
    ]
    assert lines(isolation_rules([internal])) == [
        "-A DOCKER-ISOLATION-STAGE-1 -i br-vault ! -o br-vault -j DROP",
        "-A DOCKER-ISOLATION-STAGE-1 ! -i br-vault -o br-vault -j DROP",
        '-A FORWARD -m comment --comment "dockernetd:isolation" -j DOCKER-ISOLATION-STAGE-1',
    ]


def test_isolation_is_two_rules_per_network_and_one_jump():
    assert lines(isolation_rules([DOCKER0, WEB, DB])) == [
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
        "-A DOCKER-ISOLATION-STAGE-1 -i br-web ! -o br-web -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-2 -o br-web -j DROP",
        "-A DOCKER-ISOLATION-STAGE-1 -i br-db ! -o br-db -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-2 -o br-db -j DROP",
        '-A FORWARD -m comment --comment "dockernetd:isolation" -j DOCKER-ISOLATION-STAGE-1',
    ]


def test_owned_rules_are_counted_by_table_without_building_the_mappings():
    networks = [Network(DOCKER0), Network(WEB)]
    web = Endpoint("w", "web", IPv4Address("172.18.0.2"), "02:42:ac:12:00:02")
    web.ports += [mapping("0.0.0.0", 80, "tcp", 80), mapping("127.0.0.1", 53, "udp", 53)]
    web.ports.append(PortMapping(IPv6Address("::1"), 81, "tcp", 80))  # the proxy's alone
    networks[1].endpoints["w"] = web
    links = [link("172.18.0.2", "172.18.0.3", "tcp", 80, "web")]
    for direct_access in (True, False):
        owned = owned_rules(networks, links, direct_access=direct_access)
        counted = owned_rule_counts(networks, links, direct_access=direct_access)
        assert counted == Counter(rule.table for rule in owned)
        # network, localnet guards, mappings + the loopback guard, link, isolation, the
        # endpoint's guard
        assert len(owned) == 4 + 2 + (2 * 2 + 1) + 2 + 5 + direct_access


def test_a_container_is_reached_off_its_bridge_only_through_published_ports():
    guard = direct_access_rule("docker0", endpoint("web", "172.17.0.2"))
    assert (guard.table, guard.save_line()) == (
        RAW,
        "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP",  # Docker 28's, exactly
    )


def test_a_port_on_loopback_is_guarded_against_other_hosts():
    guard = loopback_guard_rule(mapping("127.0.0.1", 8080, "tcp", 80))
    assert guard is not None and guard.save_line() == (
        "-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8080 -j DROP"
    )
    assert loopback_guard_rule(mapping("0.0.0.0", 8080, "tcp", 80)) is None
    published = publish_rules(
        "docker0", endpoint("web", "172.17.0.2"), mapping("127.0.0.2", 53, "udp", 53)
    )
    assert [r.table for r in published] == [NAT, FILTER, RAW]
