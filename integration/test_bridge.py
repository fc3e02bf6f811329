"""init_networkdriver's bridge side against the real kernel, in a throwaway namespace."""

import pytest

from dockernetd.client import RpcError

from netns import Netns


def test_default_bridge_is_created_with_the_first_candidate(host: Netns, make_daemon):
    daemon = make_daemon()
    status = daemon.call("status")
    assert (status["bridge"], status["bridge_cidr"]) == ("docker0", "172.17.42.1/16")
    assert host.ipv4_addresses("docker0") == ["172.17.42.1/16"]
    link = host.ip_json("-d", "link", "show", "dev", "docker0")[0]
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in link["flags"]
    first_octet = int(link["address"].split(":")[0], 16)
    assert first_octet & 0x01 == 0 and first_octet & 0x02  # random, unicast, locally administered
    assert host.sysctl("net/ipv4/ip_forward") == "1"
    assert "init_networkdriver: ok" in daemon.log()


def test_a_route_over_172_17_makes_it_pick_10_0_42_1(host: Netns, make_daemon):
    host.ip("route", "add", "blackhole", "172.17.0.0/16")
    daemon = make_daemon()
    assert daemon.call("status")["bridge_cidr"] == "10.0.42.1/16"
    assert host.ipv4_addresses("docker0") == ["10.0.42.1/16"]
    assert "bridge address 172.17.42.1/16 rejected: overlaps route 172.17.0.0/16" in daemon.log()
    assert daemon.call("allocate_interface", id="c1")["ip"] == "10.0.0.2"


def test_a_nameserver_inside_a_candidate_rejects_it(host: Netns, make_daemon, resolv_conf):
    resolv_conf.write_text("nameserver 172.17.0.53\nnameserver 10.0.9.9\n")
    daemon = make_daemon()
    assert daemon.call("status")["bridge_cidr"] == "10.1.42.1/16"
    log = daemon.log()
    assert "172.17.42.1/16 rejected: overlaps nameserver 172.17.0.53" in log
    assert "10.0.42.1/16 rejected: overlaps nameserver 10.0.9.9" in log


def test_no_free_range_is_a_startup_error(host: Netns, make_daemon):
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
        host.ip("route", "add", "blackhole", net)
    code, err = make_daemon(start=False).run_to_exit()
    assert code == 1
    assert (
        "Could not find a free IP address range for interface 'docker0'. "
        "Please configure its address manually and run 'dockernetd -b docker0'" in err
    )
    assert "Traceback" not in err
    assert host.link("docker0") is None


def test_bip_is_honoured(host: Netns, make_daemon):
    daemon = make_daemon("--bip", "10.20.30.1/24")
    assert host.ipv4_addresses("docker0") == ["10.20.30.1/24"]
    iface = daemon.call("allocate_interface", id="c1")
    assert (iface["ip"], iface["gateway"], iface["mask"]) == (
        "10.20.30.2",
        "10.20.30.1",
        "255.255.255.0",
    )


def test_bip_that_differs_from_the_existing_bridge_is_refused(host: Netns, make_daemon):
    make_daemon("--bip", "10.20.30.1/24").stop()
    code, err = make_daemon("--bip", "10.20.31.1/24", start=False).run_to_exit()
    assert code == 1
    assert "bridge ip (10.20.30.1) does not match existing bridge configuration 10.20.31.1" in err
    assert host.ipv4_addresses("docker0") == ["10.20.30.1/24"]


def test_missing_user_bridge_is_an_error_and_not_created(host: Netns, make_daemon):
    code, err = make_daemon("-b", "br0", start=False).run_to_exit()
    assert code == 1
    assert "br0: no such network interface" in err
    assert host.link("br0") is None


def test_user_bridge_without_address_is_an_error(host: Netns, make_daemon):
    host.ip("link", "add", "br0", "type", "bridge")
    code, err = make_daemon("-b", "br0", start=False).run_to_exit()
    assert code == 1
    assert "Interface br0 has no IP addresses" in err


def test_user_bridge_with_two_addresses_uses_the_first(host: Netns, make_daemon):
    host.ip("link", "add", "br0", "type", "bridge")
    host.ip("addr", "add", "192.168.77.1/24", "dev", "br0")
    host.ip("addr", "add", "192.168.88.1/24", "dev", "br0")
    daemon = make_daemon("-b", "br0")
    assert daemon.call("status")["bridge_cidr"] == "192.168.77.1/24"
    assert (
        "Interface br0 has more than 1 IPv4 address. Defaulting to using 192.168.77.1"
        in daemon.log()
    )
    assert "UP" in host.link("br0")["flags"]
    assert daemon.call("allocate_interface", id="c1")["ip"] == "192.168.77.2"


def test_existing_address_less_docker0_gets_its_address(host: Netns, make_daemon):
    host.ip("link", "add", "docker0", "type", "bridge")
    make_daemon()
    assert host.ipv4_addresses("docker0") == ["172.17.42.1/16"]


def test_restart_reuses_the_bridge(host: Netns, make_daemon):
    first = make_daemon()
    mac = host.link("docker0")["address"]
    assert first.stop() == 0
    second = make_daemon()
    assert second.call("status")["bridge_cidr"] == "172.17.42.1/16"
    assert host.ipv4_addresses("docker0") == ["172.17.42.1/16"]
    assert host.link("docker0")["address"] == mac
    assert "configuring bridge" not in second.log()


def test_bridge_none_disables_networking(host: Netns, make_daemon):
    daemon = make_daemon("-b", "none")
    status = daemon.call("status")
    assert status["network_disabled"] is True
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_interface", id="c1")
    assert exc.value.code == 1009
    assert host.link("docker0") is None
    assert "init_networkdriver skipped" in daemon.log()


def test_fixed_cidr_restricts_the_allocator(host: Netns, make_daemon):
    daemon = make_daemon("--bip", "10.20.30.1/24", "--fixed-cidr", "10.20.30.8/29")
    got = [daemon.call("allocate_interface", id=f"c{i}")["ip"] for i in range(6)]
    assert got == [f"10.20.30.{i}" for i in range(9, 15)]
    with pytest.raises(RpcError) as exc:
        daemon.call("allocate_interface", id="c7")
    assert exc.value.code == 1003


def test_fixed_cidr_outside_the_bridge_is_a_startup_error(make_daemon):
    code, err = make_daemon(
        "--bip", "10.20.30.1/24", "--fixed-cidr", "10.99.0.0/24", start=False
    ).run_to_exit()
    assert code == 1
    assert "--fixed-cidr 10.99.0.0/24: network does not contain specified subnet" in err


def test_mtu_follows_the_default_route_or_the_flag(host: Netns, make_daemon):
    host.ip("link", "add", "up0", "mtu", "9000", "type", "veth", "peer", "name", "up1")
    host.ip("link", "set", "up0", "up")
    host.ip("link", "set", "up1", "up")
    host.ip("addr", "add", "192.0.2.2/24", "dev", "up0")
    host.ip("route", "add", "default", "via", "192.0.2.1")
    assert make_daemon().call("allocate_interface", id="c1")["mtu"] == 9000
    assert (
        make_daemon("--mtu", "1400", "-b", "docker0").call("allocate_interface", id="c1")["mtu"]
        == 1400
    )


def test_ip_forward_false_leaves_the_sysctl(host: Netns, make_daemon):
    make_daemon("--ip-forward=false")
    assert host.sysctl("net/ipv4/ip_forward") == "0"
