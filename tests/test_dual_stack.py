"""IPv6 on a dual-stack network: flags, the allocator, endpoints, records (pure)."""

import dataclasses
import json
from collections import Counter
from ipaddress import IPv4Address, IPv6Address, IPv6Interface, IPv6Network

import pytest

from dockernetd.cli import parse_args
from dockernetd.driver import default_spec
from dockernetd.errors import ConfigError, IpAlreadyAllocated, IpOutOfRange, NoAvailableIps
from dockernetd.ipam import Ip6Allocator
from dockernetd.network import Link, Network, PortMapping
from dockernetd.pools import choose_subnet_v6, ula_base
from dockernetd.rules import (
    FILTER,
    FILTER6,
    IP6,
    NAT6,
    RAW6,
    NftElement,
    NftRule,
    boot_plan,
    direct_access_rule,
    isolation_rules,
    link_rules,
    network_rules,
    own_network_rules,
    owned_rule_counts,
    owned_rules,
    publish_rules,
)
from dockernetd.state import Joined, Linked, NetworkCreated, from_json, to_json

from fakes import make_spec
from test_network_handlers import World


def test_the_allocator_hands_out_in_order_skipping_the_gateway_and_wraps():
    pool = Ip6Allocator(IPv6Interface("fd00:1::1/125"))  # ::1 gateway, ::2 … ::7 for containers
    assert pool.capacity == 6
    got = [pool.request() for _ in range(6)]
    assert got == [IPv6Address(f"fd00:1::{n}") for n in range(2, 8)]
    with pytest.raises(NoAvailableIps):
        pool.request()
    pool.release(IPv6Address("fd00:1::3"))
    pool.release(IPv6Address("fd00:1::1"))  # the gateway stays taken
    assert pool.request() == IPv6Address("fd00:1::3")
    with pytest.raises(NoAvailableIps):
        pool.request()


def test_explicit_requests_as_ipv4s():
    pool = Ip6Allocator(IPv6Interface("fd00:1::1/64"))
    assert pool.request(IPv6Address("fd00:1::abcd")) == IPv6Address("fd00:1::abcd")
    assert pool.request() == IPv6Address("fd00:1::abce")  # the cursor moved
    with pytest.raises(IpAlreadyAllocated):
        pool.request(IPv6Address("fd00:1::abcd"))
    with pytest.raises(IpAlreadyAllocated):
        pool.request(IPv6Address("fd00:1::1"))
    with pytest.raises(IpOutOfRange):
        pool.request(IPv6Address("fd00:2::5"))
    with pytest.raises(IpOutOfRange):
        pool.request(IPv6Address("fd00:1::"))  # the subnet-router anycast address


def test_the_unique_local_48_comes_from_the_machine_id_and_64s_are_taken_in_order():
    base = ula_base("0123456789abcdef0123456789abcdef")
    assert base.prefixlen == 48 and base.subnet_of(IPv6Network("fd00::/8"))
    assert base == ula_base("0123456789abcdef0123456789abcdef") != ula_base("another")
    first = next(base.subnets(new_prefix=64))
    assert choose_subnet_v6(base, []) == first
    assert choose_subnet_v6(base, [first, IPv6Network("2001:db8::/64")]) == IPv6Network(
        (int(first.network_address) + (1 << 64), 64)
    )


def test_flags_and_their_checks():
    config = parse_args(["--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64"])
    spec = default_spec(config, make_spec().gateway, 1500)
    assert spec.gateway_v6 == IPv6Interface("2001:db8:1::1/64")
    assert default_spec(parse_args([]), make_spec().gateway, 1500).gateway_v6 is None
    ula = default_spec(parse_args(["--ipv6"]), make_spec().gateway, 1500).gateway_v6
    assert ula is not None and ula.network.prefixlen == 64
    assert ula.network.subnet_of(IPv6Network("fd00::/8")) and int(ula.ip) & 0xFFFF == 1
    for argv, message in [
        (["--fixed-cidr-v6", "2001:db8::/64"], "--fixed-cidr-v6 is the default network's IPv6 "
         "subnet: it needs --ipv6"),
        (["--ipv6", "--fixed-cidr-v6", "nonsense"], "invalid fixed-cidr-v6: nonsense"),
        (["--ipv6", "--fixed-cidr-v6", "2001:db8::/126"],
         "invalid fixed-cidr-v6: 2001:db8::/126 is too small: at most /124"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as exc:
            parse_args(argv)
        assert str(exc.value) == message


def dual_stack() -> Network:
    return Network(make_spec(gateway_v6=IPv6Interface("fd00:1::1/64")))


def test_an_endpoint_has_both_families_and_gives_both_back():
    network = dual_stack()
    endpoint, _ = network.join("a")
    assert endpoint.ip == IPv4Address("172.17.0.2") and endpoint.ipv6 == IPv6Address("fd00:1::2")
    described = network.describe(endpoint)
    assert (described["ipv6"], described["ipv6_prefix_len"], described["ipv6_gateway"]) == (
        "fd00:1::2",
        64,
        "fd00:1::1",
    )
    wanted, _ = network.join("b", requested_ipv6=IPv6Address("fd00:1::99"))
    assert wanted.ipv6 == IPv6Address("fd00:1::99")
    network.leave("a")
    assert IPv6Address("fd00:1::2") not in network.ips_v6
    assert "ipv6" not in Network(make_spec()).describe(Network(make_spec()).join("c")[0])


def test_a_failed_join_takes_no_address_of_either_family():
    network = dual_stack()
    network.join("a", requested_ip=IPv4Address("172.17.0.9"))
    with pytest.raises(IpAlreadyAllocated):
        network.join("b", requested_ip=IPv4Address("172.17.0.9"))
    assert IPv6Address("fd00:1::3") not in network.ips_v6  # b's went back
    with pytest.raises(IpAlreadyAllocated):
        network.join("d", requested_ipv6=IPv6Address("fd00:1::2"))
    assert "d" not in network.endpoints


def test_records_keep_the_ipv6_side():
    network = dual_stack()
    endpoint, _ = network.join("a")
    for record in (Joined.of(endpoint), NetworkCreated(network.spec)):
        line = json.loads(json.dumps(to_json(record)))
        assert from_json(line) == record
    assert "ipv6" not in to_json(Joined.of(Network(make_spec()).join("b")[0]))


def test_network_create_dual_stack_through_the_api(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    from dockernetd.config import Config

    world = World(Config(resolv_conf=str(resolv)))
    red = world.ok("network_create", name="red", ipv6=True)
    subnet = IPv6Network(red["subnet_v6"])
    assert subnet.prefixlen == 64 and subnet.subnet_of(IPv6Network("fd00::/8"))
    assert red["gateway_v6"] == str(subnet[1]) and red["ipv6"] is True
    assert world.kernel.bridges_v6[red["bridge"]] == IPv6Interface(f"{subnet[1]}/64")
    blue = world.ok("network_create", name="blue", subnet_v6="2001:db8:7::/64")
    assert blue["gateway_v6"] == "2001:db8:7::1"
    green = world.ok("network_create", name="green", ipv6=True)
    assert IPv6Network(green["subnet_v6"]) != subnet  # the next free /64
    iface = world.ok("allocate_interface", id="c", network="red", requested_ipv6=str(subnet[7]))
    assert iface["ipv6"] == str(subnet[7]) and iface["ipv6_gateway"] == str(subnet[1])
    assert world.error("network_create", name="x", subnet_v6="2001:db8:7::/80")[0] == 1014
    assert world.error("allocate_interface", id="d", requested_ipv6="fd00::5")[2] == (
        "invalid_params"
    )
    assert world.error("network_create", name="y", gateway_v6="fd00::1")[2] == "invalid_params"


def test_ip6tables_is_on_by_default_and_off_with_iptables():
    assert parse_args([]).ip6tables is True  # Docker 27's default
    assert parse_args(["--ip6tables=false"]).ip6tables is False
    assert parse_args(["--iptables=false", "--icc=true"]).ip6tables is False  # quietly


def save_lines(rules) -> list[tuple[str, str]]:
    return [(rule.table, rule.save_line()) for rule in rules]


def test_a_dual_stack_default_network_has_the_same_boot_rules_in_ip6tables():
    plan = boot_plan(dual_stack().spec)
    assert save_lines(rule for rule in plan.present if rule.family == 6) == [
        (NAT6, "-A POSTROUTING -s fd00:1::/64 ! -o docker0 -j MASQUERADE"),
        (FILTER6, "-A FORWARD -i docker0 -o docker0 -j ACCEPT"),
        (FILTER6, "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"),
        (FILTER6, "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        (FILTER6, "-A FORWARD -o docker0 -m conntrack --ctstate DNAT -j ACCEPT"),  # published
    ]
    neighbour_discovery = [
        (FILTER6, "-A FORWARD -i docker0 -o docker0 -p ipv6-icmp -m icmp6 "
                  f"--icmpv6-type {kind} -j ACCEPT")
        for kind in (135, 136)
    ]  # fmt: skip
    assert save_lines(plan.absent) == [
        (FILTER, "-A FORWARD -i docker0 -o docker0 -j DROP"),
        (FILTER6, "-A FORWARD -i docker0 -o docker0 -j DROP"),
        *neighbour_discovery,  # needed with icc off only (above its DROP)
    ]
    isolated = boot_plan(make_spec(icc=False, gateway_v6=IPv6Interface("fd00:1::1/64")))
    assert (FILTER6, "-A FORWARD -i docker0 -o docker0 -j DROP") in save_lines(isolated.present)
    assert save_lines(isolated.present)[-2:] == neighbour_discovery  # inserted last: on top
    # nftables: the masquerade of the IPv6 subnet and the accept of what was DNATed to it;
    # the rest are the inet table's IPv4 rules, which hold for both families
    assert [item for rule in plan.present if rule.family == 6 for item in rule.nft] == [
        NftRule("postrouting_nat", 'ip6 saddr fd00:1::/64 oifname != "docker0" masquerade'),
        NftRule("established", 'meta nfproto ipv6 oifname "docker0" ct status dnat accept'),
    ]
    unmasked = boot_plan(make_spec(ip_masq=False, gateway_v6=IPv6Interface("fd00:1::1/64")))
    assert not [rule for rule in unmasked.present if rule.table == NAT6]


def test_a_dual_stack_networks_rules_and_isolation_are_in_both_families():
    red = make_spec("red", "br-red", "10.1.0.1/24", gateway_v6=IPv6Interface("fd00:2::1/64"))
    tag = '-m comment --comment "dockernetd:net:red"'
    assert save_lines(rule for rule in network_rules(red) if rule.family == 6) == [
        (NAT6, f"-A POSTROUTING -s fd00:2::/64 ! -o br-red {tag} -j MASQUERADE"),
        (FILTER6, f"-A FORWARD -i br-red -o br-red {tag} -j ACCEPT"),
        (FILTER6, f"-A FORWARD -i br-red ! -o br-red {tag} -j ACCEPT"),
        (FILTER6, f"-A FORWARD -o br-red -m conntrack --ctstate RELATED,ESTABLISHED {tag} -j ACCEPT"),
        (FILTER6, f"-A FORWARD -o br-red -m conntrack --ctstate DNAT {tag} -j ACCEPT"),
    ]  # fmt: skip
    internal = dataclasses.replace(red, internal=True)
    assert save_lines(rule for rule in network_rules(internal) if rule.family == 6) == [
        (FILTER6, f"-A FORWARD -i br-red -o br-red {tag} -j ACCEPT")
    ]
    ipv4_only = [make_spec(), make_spec("blue", "br-blue", "10.2.0.1/24")]
    assert all(rule.family == 4 for rule in isolation_rules(ipv4_only))
    both = isolation_rules([*ipv4_only, red])
    ipv4 = [rule for rule in both if rule.family == 4]
    assert [rule for rule in both if rule.family == 6] == [
        dataclasses.replace(rule, table=IP6 + rule.table, nft=()) for rule in ipv4
    ]


def test_a_port_on_the_default_address_is_dnated_for_ipv6_clients_too():
    network = dual_stack()
    endpoint, _ = network.join("web")
    anywhere = PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80)
    rules = publish_rules("docker0", endpoint, anywhere)
    # its FORWARD accept is the network's (--ctstate DNAT): one IPv6 rule per port
    assert save_lines(rule for rule in rules if rule.family == 6) == [
        (NAT6, "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
               "[fd00:1::2]:80"),
    ]  # fmt: skip
    assert [item for rule in rules if rule.family == 6 for item in rule.nft] == [
        NftElement("skip_any", ("docker0", "tcp", "8080"), ("return",)),
        NftElement("dnat6_any", ("tcp", "8080"), ("fd00:1::2", "80")),
    ]
    at_one_address = PortMapping(IPv4Address("192.0.2.1"), 8080, "tcp", 80)
    assert all(r.family == 4 for r in publish_rules("docker0", endpoint, at_one_address))


def test_a_link_on_a_dual_stack_network_opens_both_families():
    link = Link(
        "bridge",
        IPv4Address("172.17.0.2"),
        IPv4Address("172.17.0.3"),
        "tcp",
        5432,
        IPv6Address("fd00:1::2"),
        IPv6Address("fd00:1::3"),
    )
    tag = '-m comment --comment "dockernetd:link"'
    rules = link_rules("docker0", link)
    assert save_lines(rules[2:]) == [
        (FILTER6, "-A FORWARD -s fd00:1::2/128 -d fd00:1::3/128 -i docker0 -o docker0 -p tcp "
                  f"-m tcp --dport 5432 {tag} -j ACCEPT"),
        (FILTER6, "-A FORWARD -s fd00:1::3/128 -d fd00:1::2/128 -i docker0 -o docker0 -p tcp "
                  f"-m tcp --sport 5432 {tag} -j ACCEPT"),
    ]  # fmt: skip
    assert [item for rule in rules[2:] for item in rule.nft] == [
        NftElement("links6", ("docker0", "fd00:1::2", "fd00:1::3", "tcp", "5432")),
        NftElement("links6_reply", ("docker0", "fd00:1::3", "fd00:1::2", "tcp", "5432")),
    ]
    # named by its IPv4 addresses: the link removed by them is this one
    assert link == Link("bridge", link.parent, link.child, "tcp", 5432)
    record = Linked(link)
    assert from_json(json.loads(json.dumps(to_json(record)))).link.child_v6 == link.child_v6


def test_a_dual_stack_networks_ipv6_subnet_is_guarded_in_one_rule():
    spec = dual_stack().spec
    guarded = own_network_rules(spec, direct_access=True)
    [guard] = [rule for rule in guarded if rule.table == RAW6]
    assert save_lines([guard]) == [(RAW6, "-A PREROUTING -d fd00:1::/64 ! -i docker0 -j DROP")]
    assert guard.nft == (
        NftRule("prerouting_raw", 'ip6 daddr fd00:1::/64 iifname != "docker0" drop'),
    )
    assert guard not in own_network_rules(spec, direct_access=False)  # --allow-direct-routing
    endpoint, _ = dual_stack().join("web")
    assert direct_access_rule("docker0", endpoint).family == 4  # IPv4's stays per container


def test_dual_stack_rules_are_counted_by_table_as_built():
    networks = [dual_stack(), Network(make_spec("blue", "br-blue", "10.2.0.1/24"))]
    web, _ = networks[0].join("web")
    web.ports += [
        PortMapping(IPv4Address("0.0.0.0"), 80, "tcp", 80),
        PortMapping(IPv4Address("127.0.0.1"), 53, "udp", 53),
        PortMapping(IPv6Address("::1"), 81, "tcp", 80),
    ]
    db, _ = networks[0].join("db")
    networks[1].join("plain")[0].ports.append(PortMapping(IPv4Address("0.0.0.0"), 90, "tcp", 90))
    links = [
        Link("bridge", web.ip, db.ip, "tcp", 5432, web.ipv6, db.ipv6),
        Link("blue", IPv4Address("10.2.0.2"), IPv4Address("10.2.0.3"), "tcp", 80),
    ]
    for direct_access in (True, False):
        owned = owned_rules(networks, links, direct_access=direct_access)
        counted = owned_rule_counts(networks, links, direct_access=direct_access)
        assert counted == Counter(rule.table for rule in owned)
        assert counted[NAT6] == 1 and counted[RAW6] == direct_access  # the subnet's guard


def test_a_dual_stack_network_has_its_ipv6_rules_and_turns_forwarding_on(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    from dockernetd.config import Config

    world = World(Config(resolv_conf=str(resolv)))
    world.ok("network_create", name="plain")
    assert not world.kernel.ipv6_forwarding
    red = world.ok("network_create", name="red", ipv6=True)
    assert world.kernel.ipv6_forwarding
    assert any(rule.table == NAT6 and red["bridge"] in rule.args for rule in world.kernel.rules)
