"""The rule planner: Docker 1.4's exact rules, as iptables-save prints them."""

from ipaddress import IPv4Address, IPv4Network

import pytest

from dockernetd.rules import (
    DOCKER_JUMPS,
    FILTER,
    LINK_RULE_TABLES,
    MAPPING_RULE_TABLES,
    NAT,
    STALE_JUMPS,
    boot_plan,
    link_rules,
    mapping_rules,
)

NET = IPv4Network("172.17.0.0/16")


def lines(rules) -> list[str]:
    return [r.save_line() for r in rules]


@pytest.mark.parametrize("ip_masq", [True, False])
@pytest.mark.parametrize("icc", [True, False])
def test_boot_plan_in_dockers_order(icc, ip_masq):
    plan = boot_plan("docker0", NET, icc=icc, ip_masq=ip_masq)
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
    assert lines(plan.jumps) == [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
    ]
    assert all(r.table == NAT for r in plan.jumps)


def test_stale_jumps_include_the_old_forms():
    assert STALE_JUMPS[:2] == DOCKER_JUMPS
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER" in lines(STALE_JUMPS)
    assert "-A PREROUTING -j DOCKER" in lines(STALE_JUMPS)


def test_mapping_rules_any_host_ip():
    dnat, forward = mapping_rules(
        "docker0", "web1", "tcp", IPv4Address("0.0.0.0"), 8080, IPv4Address("172.17.0.2"), 80
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
        "br1", "db", "udp", IPv4Address("192.0.2.1"), 5353, IPv4Address("10.0.0.9"), 53
    )
    assert dnat.save_line() == (
        "-A DOCKER -d 192.0.2.1/32 ! -i br1 -p udp -m udp --dport 5353 "
        "-j DNAT --to-destination 10.0.0.9:53"
    )
    assert "-p udp -m udp --dport 53" in forward.save_line()


def test_link_rules_both_directions():
    to_child, to_parent = link_rules(
        "docker0", IPv4Address("172.17.0.2"), IPv4Address("172.17.0.3"), "tcp", 80
    )
    assert to_child.save_line() == (
        "-A FORWARD -s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT'
    )
    assert to_parent.save_line() == (
        "-A FORWARD -s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 "
        '-m comment --comment "dockernetd:link" -j ACCEPT'
    )


def test_boot_rules_carry_no_owner_tag():
    assert not any(
        "dockernetd:" in line
        for line in lines(boot_plan("docker0", NET, icc=True, ip_masq=True).present)
    )


@pytest.mark.parametrize("host_ip", ["0.0.0.0", "192.0.2.1"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_every_mapping_and_link_has_rules_of_one_shape(host_ip, proto):
    """What the metrics count rules by, instead of building them."""
    a, b = IPv4Address("172.17.0.2"), IPv4Address("172.17.0.3")
    mapping = mapping_rules("docker0", "web", proto, IPv4Address(host_ip), 8080, a, 80)
    assert tuple(rule.table for rule in mapping) == MAPPING_RULE_TABLES
    link = link_rules("docker0", a, b, proto, 5432)
    assert tuple(rule.table for rule in link) == LINK_RULE_TABLES
