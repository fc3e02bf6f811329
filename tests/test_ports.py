import pytest

from dockernetd.errors import AllPortsAllocated, InvalidParams, PortAlreadyAllocated
from dockernetd.ports import DYNAMIC_PORT_END, DYNAMIC_PORT_START, PortAllocator


def test_dynamic_ports_start_at_49153_and_skip_explicit_ones():
    ports = PortAllocator()
    assert ports.request("0.0.0.0", "tcp", 49154) == 49154
    assert ports.request("0.0.0.0", "tcp") == 49153
    assert ports.request("0.0.0.0", "tcp") == 49155


def test_explicit_port_twice_is_docker_error():
    ports = PortAllocator()
    ports.request("0.0.0.0", "tcp", 80)
    with pytest.raises(PortAlreadyAllocated) as exc:
        ports.request("0.0.0.0", "tcp", 80)
    assert exc.value.message == "Bind for 0.0.0.0:80 failed: port is already allocated"
    assert exc.value.code == 1005


def test_pools_are_per_ip_and_protocol():
    ports = PortAllocator()
    assert ports.request("0.0.0.0", "tcp", 80) == 80
    assert ports.request("127.0.0.1", "tcp", 80) == 80
    assert ports.request("0.0.0.0", "udp", 80) == 80
    assert ports.request("127.0.0.1", "tcp") == DYNAMIC_PORT_START


def test_released_port_reused_only_after_wrap_and_exhaustion():
    ports = PortAllocator()
    total = DYNAMIC_PORT_END - DYNAMIC_PORT_START + 1
    for _ in range(total):
        ports.request("0.0.0.0", "udp")
    with pytest.raises(AllPortsAllocated) as exc:
        ports.request("0.0.0.0", "udp")
    assert exc.value.message == "all ports are allocated"
    ports.release("0.0.0.0", "udp", 50000)
    assert ports.request("0.0.0.0", "udp") == 50000
    ports.release("0.0.0.0", "udp", 50000)
    ports.release("0.0.0.0", "udp", 50001)
    assert ports.request("0.0.0.0", "udp") == 50001  # next after the last one handed out


@pytest.mark.parametrize("port", [-1, 65536, 100000])
def test_explicit_ports_are_range_checked(port):
    with pytest.raises(InvalidParams):
        PortAllocator().request("0.0.0.0", "tcp", port)


def test_unknown_protocol():
    with pytest.raises(InvalidParams, match="unknown protocol"):
        PortAllocator().request("0.0.0.0", "sctp", 80)


def test_release_is_idempotent():
    ports = PortAllocator()
    ports.release("1.2.3.4", "tcp", 80)
    ports.request("0.0.0.0", "tcp", 80)
    ports.release("0.0.0.0", "tcp", 80)
    ports.release("0.0.0.0", "tcp", 80)
    assert ports.request("0.0.0.0", "tcp", 80) == 80  # free again, once
