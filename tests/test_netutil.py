import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from dockernetd.netutil import (
    BRIDGE_CANDIDATES,
    choose_bridge_address,
    mac_for_ip,
    nameservers,
    overlaps,
    parse_mac,
    random_mac,
)

N = IPv4Network


def test_nameservers_ipv4_only_in_order_without_comments():
    text = """# generated
nameserver 10.255.255.53
nameserver 2001:db8::1
  nameserver   8.8.8.8   # google
#nameserver 1.1.1.1
search example.com
"""
    assert nameservers(text) == [N("10.255.255.53/32"), N("8.8.8.8/32")]


def test_overlap_is_containment_of_network_addresses():
    assert overlaps(N("172.17.0.0/16"), N("172.17.5.0/24"))
    assert overlaps(N("172.17.5.0/24"), N("172.17.0.0/16"))
    assert not overlaps(N("172.17.0.0/16"), N("172.18.0.0/16"))


def test_first_candidate_when_nothing_overlaps():
    chosen, rejected = choose_bridge_address([], [N("192.0.2.0/24")])
    assert chosen == IPv4Interface("172.17.42.1/16")
    assert rejected == []


def test_route_over_172_17_picks_10_0_42_1():
    chosen, rejected = choose_bridge_address([], [N("172.17.0.0/16")])
    assert chosen == IPv4Interface("10.0.42.1/16")
    assert [(r.candidate, r.reason) for r in rejected] == [
        ("172.17.42.1/16", "overlaps route 172.17.0.0/16")
    ]


def test_nameserver_overlap_is_rejected_and_default_route_ignored():
    chosen, rejected = choose_bridge_address([N("172.17.0.53/32")], [N("0.0.0.0/0")])
    assert chosen == IPv4Interface("10.0.42.1/16")
    assert rejected[0].reason == "overlaps nameserver 172.17.0.53"


def test_no_candidate_fits():
    everything = [N("10.0.0.0/8"), N("172.16.0.0/12"), N("192.168.0.0/16")]
    chosen, rejected = choose_bridge_address([], everything)
    assert chosen is None
    assert len(rejected) == len(BRIDGE_CANDIDATES)


def test_random_mac_is_local_unicast():
    rng = random.Random(7)
    for _ in range(200):
        first = int(random_mac(rng).split(":")[0], 16)
        assert first & 0x01 == 0 and first & 0x02 == 2


def test_mac_for_ip():
    assert mac_for_ip(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    assert mac_for_ip(IPv4Address("192.168.0.1")) == "02:42:c0:a8:00:01"


def test_parse_mac():
    assert parse_mac("02-42-AC-11-00-02") == "02:42:ac:11:00:02"
    for bad in ("02:42:ac:11:00", "zz:42:ac:11:00:02", "01:00:5e:00:00:01"):
        with pytest.raises(ValueError):
            parse_mac(bad)
