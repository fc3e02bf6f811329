"""IPv6 on a dual-stack network: flags, the allocator, endpoints, records (pure)."""

import json
from ipaddress import IPv4Address, IPv6Address, IPv6Interface, IPv6Network

import pytest

from dockernetd.cli import parse_args
from dockernetd.driver import default_spec
from dockernetd.errors import ConfigError, IpAlreadyAllocated, IpOutOfRange, NoAvailableIps
from dockernetd.ipam import Ip6Allocator
from dockernetd.network import Network
from dockernetd.pools import choose_subnet_v6, ula_base
from dockernetd.state import Joined, NetworkCreated, from_json, to_json

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
