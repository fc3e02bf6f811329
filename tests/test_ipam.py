import tracemalloc
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from dockernetd.errors import IpAlreadyAllocated, IpOutOfRange, NoAvailableIps
from dockernetd.ipam import BadSubnet, IpAllocator

A = IPv4Address


def allocator(bridge: str = "172.17.42.1/16", fixed: str | None = None) -> IpAllocator:
    return IpAllocator(IPv4Interface(bridge), IPv4Network(fixed) if fixed else None)


def test_first_addresses_follow_docker_order():
    ips = allocator()
    assert [ips.request() for _ in range(3)] == [A("172.17.0.2"), A("172.17.0.3"), A("172.17.0.4")]


def test_released_address_comes_back_only_after_wrap():
    ips = allocator("192.168.0.1/24")
    got = [ips.request() for _ in range(8)]  # .2 .. .9
    assert got[-1] == A("192.168.0.9")
    ips.release(A("192.168.0.9"))
    assert ips.request() == A("192.168.0.10")
    for _ in range(11, 255):  # .11 .. .254
        ips.request()
    assert ips.request() == A("192.168.0.9")  # the cursor wrapped to it
    with pytest.raises(NoAvailableIps) as exc:
        ips.request()
    assert exc.value.message == "no available ip addresses on network"


def test_gateway_is_reserved_and_never_released():
    ips = allocator("10.0.0.5/29")  # .2 .. .6, gateway .5
    got = {ips.request() for _ in range(4)}
    assert A("10.0.0.5") not in got
    with pytest.raises(NoAvailableIps):
        ips.request()
    ips.release(A("10.0.0.5"))
    with pytest.raises(IpAlreadyAllocated):
        ips.request(A("10.0.0.5"))


def test_explicit_request_checks_allocated_before_range():
    ips = allocator("192.168.0.1/24")
    assert ips.request(A("192.168.0.50")) == A("192.168.0.50")
    with pytest.raises(IpAlreadyAllocated) as exc:
        ips.request(A("192.168.0.50"))
    assert exc.value.message == "ip already allocated"
    for outside in ("192.168.0.0", "192.168.0.1", "192.168.0.255", "10.0.0.1"):
        with pytest.raises(IpOutOfRange) as out:
            ips.request(A(outside))
        assert out.value.message == "requested ip is out of range"


def test_explicit_request_moves_the_cursor():
    ips = allocator("192.168.0.1/24")
    ips.request(A("192.168.0.100"))
    assert ips.request() == A("192.168.0.101")


def test_release_is_idempotent_and_ignores_strangers():
    ips = allocator("192.168.0.1/24")
    ip = ips.request()
    ips.release(ip)
    ips.release(ip)
    ips.release(A("8.8.8.8"))
    assert ips.request(ip) == ip  # free again, and only once
    with pytest.raises(IpAlreadyAllocated):
        ips.request(ip)


def test_fixed_cidr_limits_the_range():
    ips = allocator("192.168.0.1/24", "192.168.0.8/29")
    assert [str(ips.request()) for _ in range(6)] == [f"192.168.0.{i}" for i in range(9, 15)]
    with pytest.raises(NoAvailableIps):
        ips.request()
    with pytest.raises(IpOutOfRange):
        ips.request(A("192.168.0.20"))


@pytest.mark.parametrize(
    "fixed", ["172.17.0.0/16", "172.17.0.0/24", "172.17.5.0/31", "10.0.0.0/24"]
)
def test_fixed_cidr_rejected_like_docker(fixed):
    with pytest.raises(BadSubnet, match="network does not contain specified subnet"):
        allocator("172.17.42.1/16", fixed)


def test_nearly_full_slash16_still_finds_the_last_free_address():
    ips = allocator()
    handed_out = {ips.request() for _ in range(ips.capacity)}
    assert len(handed_out) == ips.capacity == 65532
    assert A("172.17.42.1") not in handed_out  # the gateway
    with pytest.raises(NoAvailableIps):
        ips.request()
    ips.release(A("172.17.0.77"))
    assert ips.request() == A("172.17.0.77")


def test_slash8_pool_costs_a_few_megabytes():
    tracemalloc.start()
    ips = allocator("10.0.0.1/8")
    ips.request()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
