import pytest

from dockernetd.ctl import build_parser, main, render, request_for


def request(*argv: str):
    return request_for(build_parser().parse_args(list(argv)))


def test_commands_map_to_methods():
    assert request("status") == ("status", {})
    assert request("list") == ("list_interfaces", {})
    assert request("allocate-interface", "web1", "--ip", "172.17.0.9") == (
        "allocate_interface",
        {"id": "web1", "requested_ip": "172.17.0.9"},
    )
    assert request("release-interface", "web1") == ("release_interface", {"id": "web1"})
    assert request("allocate-port", "web1", "80", "--proto", "udp", "--host-port", "8080") == (
        "allocate_port",
        {"id": "web1", "container_port": 80, "proto": "udp", "host_port": 8080},
    )
    assert request("allocate-port", "web1", "8000", "--host-port", "8000", "--count", "10") == (
        "allocate_port_range",
        {"id": "web1", "container_port": 8000, "proto": "tcp", "host_port": 8000, "count": 10},
    )
    assert request("link", "add", "172.17.0.2", "172.17.0.3", "80/tcp", "53/udp") == (
        "link",
        {
            "action": "add",
            "parent_ip": "172.17.0.2",
            "child_ip": "172.17.0.3",
            "ports": ["80/tcp", "53/udp"],
            "ignore_errors": False,
        },
    )
    assert request("call", "status", '{"a": 1}') == ("status", {"a": 1})


def test_network_commands_map_to_methods():
    assert request("network", "ls") == ("network_list", {})
    assert request("network", "inspect", "red") == ("network_inspect", {"name": "red"})
    assert request("network", "rm", "red") == ("network_delete", {"name": "red"})
    assert request("network", "create", "red") == ("network_create", {"name": "red"})
    argv = ["--subnet", "10.1.0.0/24", "--icc", "false", "--internal", "--mtu", "9000"]
    assert request("network", "create", "red", *argv) == (
        "network_create",
        {"name": "red", "subnet": "10.1.0.0/24", "icc": False, "internal": True, "mtu": 9000},
    )
    assert request("allocate-interface", "c", "--network", "red") == (
        "allocate_interface",
        {"id": "c", "network": "red"},
    )
    assert request("release-interface", "c", "--network", "red")[1] == {"id": "c", "network": "red"}
    assert request("allocate-port", "c", "80", "--network", "red")[1]["network"] == "red"
    assert request("allocate-port", "c", "80", "--no-proxy")[1]["proxy"] is False
    assert "proxy" not in request("allocate-port", "c", "80")[1]
    assert (
        request("link", "add", "10.1.0.2", "10.1.0.3", "80", "--network", "red")[1]["network"]
        == "red"
    )


def test_networks_render_as_a_table():
    net = {"name": "red", "bridge": "br-1", "subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}
    table = render("network_list", [{**net, "internal": True, "endpoints": 2}])
    assert table.splitlines()[1].split() == [
        "red",
        "br-1",
        "10.1.0.0/24",
        "10.1.0.1",
        "2",
        "(internal)",
    ]
    inspected = render("network_inspect", {**net, "endpoints": []})
    assert inspected.splitlines()[0] == "name     red" and inspected.endswith("no interfaces")


def test_the_cluster_renders_as_a_table():
    assert request("cluster") == ("cluster", {})
    hosts = [
        {"subnet": "10.200.42.0/24", "advertise": "10.99.0.12", "age_s": 40.4, "self": False,
         "routed": True},
        {"subnet": "10.200.137.0/24", "advertise": "10.99.0.11", "age_s": 42.5, "self": True,
         "routed": False},
        {"subnet": "10.200.201.0/24", "advertise": "10.99.0.13", "age_s": 3.0, "self": False,
         "routed": False, "route_error": "via 10.99.0.13: Network is unreachable"},
    ]  # fmt: skip
    lines = render("cluster", {"enabled": True, "hosts": hosts}).splitlines()
    assert lines == [
        "HOST             SUBNET              LEASE AGE  ROUTE",
        "10.99.0.12       10.200.42.0/24            40s  yes",
        "10.99.0.11       10.200.137.0/24           42s  (this host)",
        "10.99.0.13       10.200.201.0/24            3s  no: via 10.99.0.13: Network is unreachable",
    ]
    assert render("cluster", {"enabled": False, "hosts": []}) == (
        "no cluster (the daemon runs without --cluster-store)"
    )


def test_call_needs_an_object():
    with pytest.raises(ValueError):
        request("call", "status", "[1]")


def test_render_is_readable():
    assert (
        render("status", {"bridge": "docker0", "gateway": None}) == "bridge   docker0\ngateway  -"
    )
    table = render(
        "list_interfaces",
        [
            {
                "id": "a",
                "network": "bridge",
                "ip": "172.17.0.2",
                "mac_address": "m",
                "ports": [
                    {"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "proto": "tcp"},
                    {"host_ip": "::1", "host_port": 8081, "container_port": 80, "proto": "tcp"},
                ],
            }
        ],
    )
    assert "0.0.0.0:8080->80/tcp, [::1]:8081->80/tcp" in table
    assert "bridge" in table.splitlines()[1]
    assert render("list_interfaces", []) == "no interfaces"


def test_unreachable_daemon_exits_3(tmp_path, capsys):
    assert main(["--socket", str(tmp_path / "absent.sock"), "status"]) == 3
    assert "cannot reach dockernetd" in capsys.readouterr().err
