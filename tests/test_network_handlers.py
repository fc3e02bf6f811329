"""Networks through the JSON-RPC handlers, over the fake kernel (fakes.py)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from ipaddress import IPv4Network
from typing import Any

import pytest
import trio
import trio.testing

from dockernetd.config import Config
from dockernetd.daemon import keep_firewall
from dockernetd.errors import FirewallFailed
from dockernetd.handlers import Service
from dockernetd.jobs import Peer
from dockernetd.network import Attachment
from dockernetd.pools import parse_pool
from dockernetd.rpc import Dispatcher
from dockernetd.rules import ISOLATION_JUMP, RAW, direct_access_rule, network_rules
from dockernetd.state import Snapshot, StateLog

from fakes import FakeKernel, FakeProxies, make_driver
from test_rpc import call, error_of

PEER = Peer(pid=1, uid=0, gid=0)


class World:
    def __init__(self, config: Config | None = None, state: StateLog | None = None) -> None:
        self.driver, self.kernel, self.proxies = make_driver(config=config)
        self.dispatcher = Dispatcher(Service(self.driver.config, self.driver, state))

    def ok(self, method: str, **params: Any) -> Any:
        response = call(self.dispatcher, method, **params)
        assert "result" in response, response
        return response["result"]

    def error(self, method: str, **params: Any) -> tuple[int, str, str]:
        return error_of(call(self.dispatcher, method, **params))


@pytest.fixture
def world(tmp_path) -> World:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    return World(Config(resolv_conf=str(resolv)))


def test_a_network_gets_the_next_free_subnet_its_bridge_and_rules(world, caplog):
    caplog.set_level(logging.INFO)
    red = world.ok("network_create", name="red")
    assert red == {
        "name": "red",
        "id": red["id"],
        "bridge": "br-" + red["id"][:12],
        "subnet": "172.18.0.0/16",
        "gateway": "172.18.0.1",
        "ip_range": None,
        "internal": False,
        "icc": True,
        "ip_masq": True,
        "mtu": 1500,
        "host_binding_ip": "0.0.0.0",
    }
    assert len(red["id"]) == 64 and int(red["id"], 16) >= 0
    assert str(world.kernel.bridges[red["bridge"]]) == "172.18.0.1/16"
    spec = world.driver.networks.get("red").spec
    assert set(network_rules(spec)) < set(world.kernel.rules)
    assert world.kernel.rules[ISOLATION_JUMP] == 1
    assert "network red: subnets skipped: 172.17.0.0/16 overlaps network bridge" in caplog.text


def test_subnets_skip_routes_nameservers_and_other_networks(world, tmp_path):
    world.kernel.routes = [IPv4Network("172.18.0.0/15"), IPv4Network("0.0.0.0/0")]
    (tmp_path / "resolv.conf").write_text("nameserver 172.20.1.1\n")
    assert world.ok("network_create", name="a")["subnet"] == "172.21.0.0/16"
    assert world.ok("network_create", name="b")["subnet"] == "172.22.0.0/16"


def test_the_address_pools_are_configurable_and_can_run_out(tmp_path):
    pool = parse_pool("base=10.10.0.0/23,size=24")
    world = World(Config(default_address_pools=(pool,), resolv_conf=str(tmp_path / "none")))
    assert world.ok("network_create", name="a")["subnet"] == "10.10.0.0/24"
    assert world.ok("network_create", name="b")["subnet"] == "10.10.1.0/24"
    assert world.error("network_create", name="c") == (
        1015,
        "could not find an available, non-overlapping IPv4 address pool among the defaults "
        "to assign to the network",
        "no_free_subnet",
    )
    assert world.ok("network_create", name="c", subnet="10.99.0.0/24")["gateway"] == "10.99.0.1"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "bridge"}, (1012, "bridge is a pre-defined network and cannot be created")),
        ({"name": "red"}, (1012, "network with name red already exists")),
        (
            {"name": "x", "subnet": "172.17.0.0/24"},
            (1014, "Pool overlaps with other one on this address space"),
        ),
        (
            {"name": "x", "subnet": "172.18.128.0/17"},
            (1014, "Pool overlaps with other one on this address space"),
        ),
        ({"name": "x", "bridge": "docker0"}, (1010, "bridge docker0 is used by network bridge")),
        (
            {"name": "-x"},
            (-32602, "Bad parameter: name '-x' does not match ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"),
        ),
        (
            {"name": "x", "subnet": "10.0.0.1/24"},
            (
                -32602,
                "Bad parameter: subnet '10.0.0.1/24' is not an IPv4 subnet such as 172.20.0.0/16",
            ),
        ),
        (
            {"name": "x", "subnet": "10.0.0.0/30"},
            (-32602, "Bad parameter: subnet 10.0.0.0/30 is too small: at most /29"),
        ),
        (
            {"name": "x", "subnet": "10.0.0.0/24", "gateway": "10.0.1.1"},
            (-32602, "Bad parameter: gateway 10.0.1.1 is not a host address of subnet 10.0.0.0/24"),
        ),
        (
            {"name": "x", "subnet": "10.0.0.0/24", "ip_range": "10.0.1.0/25"},
            (-32602, "Bad parameter: ip_range 10.0.1.0/25 is not inside subnet 10.0.0.0/24"),
        ),
        (
            {"name": "x", "bridge": "a-very-long-bridge"},
            (
                -32602,
                "Bad parameter: bridge 'a-very-long-bridge' does not match ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$",
            ),
        ),
    ],
)
def test_bad_networks_are_refused_and_change_nothing(world, params, expected):
    world.ok("network_create", name="red")
    rules, bridges = Counter(world.kernel.rules), dict(world.kernel.bridges)
    code, message, _ = world.error("network_create", **params)
    assert (code, message) == expected
    assert (world.kernel.rules, world.kernel.bridges) == (rules, bridges)
    assert [n["name"] for n in world.ok("network_list")] == ["bridge", "red"]


def test_a_container_has_one_endpoint_per_network(world):
    world.ok("network_create", name="red", subnet="10.1.0.0/24", mtu=9000)
    on_bridge = world.ok("allocate_interface", id="c")
    on_red = world.ok("allocate_interface", id="c", network="red")
    assert (on_bridge["ip"], on_bridge["bridge"]) == ("172.17.0.2", "docker0")
    assert on_red == {
        "id": "c",
        "ip": "10.1.0.2",
        "prefix_len": 24,
        "mask": "255.255.255.0",
        "gateway": "10.1.0.1",
        "mac_address": "02:42:0a:01:00:02",
        "bridge": world.driver.networks.get("red").spec.bridge,
        "mtu": 9000,
    }
    assert world.ok("allocate_interface", id="c", network="red") == on_red  # idempotent per pair
    assert [(e["id"], e["network"], e["ip"]) for e in world.ok("list_interfaces")] == [
        ("c", "bridge", "172.17.0.2"),
        ("c", "red", "10.1.0.2"),
    ]
    assert world.error("allocate_interface", id="c", network="blue")[:2] == (
        1011,
        "network blue not found",
    )
    status = world.ok("status")
    assert (status["networks"], status["interfaces"]) == (2, 2)


def test_ports_go_through_the_named_or_the_oldest_endpoint(world):
    world.ok("network_create", name="red", subnet="10.1.0.0/24", host_binding_ip="127.0.0.1")
    world.ok("allocate_interface", id="c", network="red")
    world.ok("allocate_interface", id="c")
    first = world.ok("allocate_port", id="c", container_port=80, host_port=8080)
    assert (first["container_ip"], first["host_ip"]) == ("10.1.0.2", "127.0.0.1")
    on_bridge = world.ok(
        "allocate_port", id="c", container_port=80, host_port=8081, network="bridge"
    )
    assert (on_bridge["container_ip"], on_bridge["host_ip"]) == ("172.17.0.2", "0.0.0.0")
    assert [p.mapping.host_port for p in world.proxies.started] == [8080, 8081]
    red_bridge = world.driver.networks.get("red").spec.bridge
    assert any(
        f"! -i {red_bridge}" in r.save_line() and "--dport 8080" in r.save_line()
        for r in world.kernel.rules
    )


def test_an_internal_network_publishes_nothing(world):
    world.ok("network_create", name="vault", internal=True)
    world.ok("allocate_interface", id="v", network="vault")
    assert world.error("allocate_port", id="v", container_port=80) == (
        1016,
        "network vault is internal: it has no route out and publishes no ports",
        "network_internal",
    )
    assert world.proxies.started == []
    assert not any("MASQUERADE" in r.save_line() for r in world.kernel.rules)


def test_without_iptables_a_network_has_no_rules_and_cannot_be_internal(tmp_path):
    world = World(Config(iptables=False, ip_masq=False, resolv_conf=str(tmp_path / "none")))
    assert world.ok("network_create", name="red")["subnet"] == "172.18.0.0/16"
    assert world.kernel.rules == Counter()
    assert world.error("network_create", name="vault", internal=True)[:2] == (
        -32602,
        "Bad parameter: internal networks need --iptables: their isolation is firewall rules",
    )


def test_a_release_of_an_unknown_endpoint_deletes_its_unrecorded_veth(world, caplog):
    """What a daemon killed between making a veth and recording it leaves: the runtime's
    DEL (release_interface naming the network) finds the veth by its name."""
    world.ok("network_create", name="red", subnet="10.1.0.0/24")
    left = Attachment.host_end("red", "c.eth0")
    world.kernel.veths[left] = None  # the kernel's veth; no endpoint holds it
    code, message, _ = world.error("release_interface", id="c.eth0", network="red")
    assert (code, message) == (1004, "No network information to release for c.eth0")
    assert world.kernel.veths == {}
    assert f"c.eth0: deleted veth {left}, made but never recorded" in caplog.text
    world.error("release_interface", id="c.eth0", network="red")  # nothing left: quiet
    assert caplog.text.count("made but never recorded") == 1


def test_release_without_network_leaves_every_network(world):
    world.ok("network_create", name="red", subnet="10.1.0.0/24")
    world.ok("allocate_interface", id="c")
    world.ok("allocate_interface", id="c", network="red")
    world.ok("allocate_port", id="c", container_port=80, host_port=8080, network="red")
    one = world.ok("release_interface", id="c", network="red")
    assert one == {
        "id": "c",
        "ip": "10.1.0.2",
        "released_ports": [
            {"host_ip": "0.0.0.0", "host_port": 8080, "proto": "tcp", "container_port": 80}
        ],
        "networks": ["red"],
    }
    world.ok("allocate_interface", id="c", network="red")
    both = world.ok("release_interface", id="c")
    assert (both["ip"], both["networks"]) == ("172.17.0.2", ["bridge", "red"])
    assert world.ok("list_interfaces") == []
    assert world.proxies.running() == []


def test_delete_is_refused_with_endpoints_and_then_removes_everything(world):
    before = Counter(world.kernel.rules)
    red = world.ok("network_create", name="red")
    world.ok("allocate_interface", id="c", network="red")
    code, message, _ = world.error("network_delete", name="red")
    assert (code, message) == (
        1013,
        f"error while removing network: network red id {red['id']} has active endpoints (1)",
    )
    link = {"parent_ip": "172.18.0.2", "child_ip": "172.18.0.3", "ports": ["80"]}
    world.ok("link", action="add", network="red", **link)
    world.ok("release_interface", id="c")
    assert world.ok("network_delete", name="red") == red
    assert world.kernel.rules == before  # its rules, its link's, and the isolation: all gone
    assert red["bridge"] not in world.kernel.bridges
    assert world.ok("status")["links"] == 0
    assert world.error("network_delete", name="red")[0] == 1011
    assert world.error("network_delete", name="bridge")[:2] == (
        1017,
        "bridge is a pre-defined network and cannot be removed",
    )


def test_a_network_whose_rules_are_refused_leaves_no_bridge(world):
    world.kernel.refuse = True
    assert world.error("network_create", name="red", bridge="br-red")[0] == 1008
    assert "br-red" not in world.kernel.bridges
    assert world.ok("network_list")[-1]["name"] == "bridge"


def test_network_changes_are_recorded_and_undone_when_they_cannot_be(world, tmp_path):
    state = StateLog(str(tmp_path / "state"))
    state.rewrite(Snapshot())
    world.dispatcher = Dispatcher(Service(world.driver.config, world.driver, state))
    red = world.ok("network_create", name="red")
    assert list(state.snapshot.networks) == ["red"]
    state._file.close()
    state._file = open("/dev/full", "ab", buffering=0)  # noqa: SIM115 (every write: ENOSPC)
    rules = Counter(world.kernel.rules)
    assert world.error("network_create", name="blue", bridge="br-blue")[0] == -32603
    assert "br-blue" not in world.kernel.bridges and world.kernel.rules == rules
    assert world.error("network_delete", name="red")[0] == -32603
    assert world.ok("network_inspect", name="red")["bridge"] == red["bridge"]


def test_inspect_shows_the_endpoints_with_their_ports(world):
    world.ok("network_create", name="red", subnet="10.1.0.0/24")
    world.ok("allocate_interface", id="c", network="red")
    world.ok("allocate_port", id="c", container_port=53, proto="udp", host_port=5353)
    inspected = world.ok("network_inspect", name="red")
    assert inspected["endpoints"] == [
        {
            "id": "c",
            "network": "red",
            "ip": "10.1.0.2",
            "mac_address": "02:42:0a:01:00:02",
            "ports": [
                {"host_ip": "0.0.0.0", "host_port": 5353, "proto": "udp", "container_port": 53}
            ],
        }
    ]
    assert world.kernel.forgotten_udp  # a UDP mapping forgets the port's old flows
    assert [n["endpoints"] for n in world.ok("network_list")] == [0, 1]


def test_unused_fakes_are_real_classes():
    assert FakeKernel().rules == Counter() and FakeProxies().started == []


def test_nothing_joins_a_network_while_it_is_being_deleted(world):
    world.ok("network_create", name="red")
    answers: dict[str, Any] = {}

    async def send(method: str, params: dict[str, Any]) -> None:
        line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
        answers[method] = json.loads(await world.dispatcher.handle_line(line.encode(), PEER))

    async def main() -> None:
        world.kernel.paused = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "network_delete", {"name": "red"})
            await trio.testing.wait_all_tasks_blocked()  # the delete waits on the kernel
            await send("allocate_interface", {"id": "late", "network": "red"})
            world.kernel.paused.set()

    trio.run(main)
    assert "result" in answers["network_delete"]
    assert answers["allocate_interface"]["error"]["code"] == 1011
    assert world.ok("list_interfaces") == []


def test_each_endpoint_is_guarded_against_direct_access_until_released(world):
    world.ok("network_create", name="red", subnet="10.1.0.0/24")
    world.ok("allocate_interface", id="c", network="red")
    red = world.driver.networks.get("red")
    guard = direct_access_rule(red.spec.bridge, red.endpoint("c"))
    assert world.kernel.rules[guard] == 1
    world.ok("allocate_interface", id="c", network="red")  # the same again: no second guard
    assert world.kernel.rules[guard] == 1
    world.ok("release_interface", id="c")
    assert world.kernel.rules[guard] == 0


def test_an_endpoint_whose_guard_is_refused_is_not_held(world):
    world.kernel.refuse = True
    assert world.error("allocate_interface", id="c")[0] == 1008
    world.kernel.refuse = False
    assert world.ok("list_interfaces") == []
    # its address is free again (the cursor moved on, as after any release: Docker 1.4's order)
    assert world.ok("allocate_interface", id="c", requested_ip="172.17.0.2")["ip"] == "172.17.0.2"


def test_allow_direct_routing_adds_no_guard(tmp_path):
    world = World(Config(allow_direct_routing=True, resolv_conf=str(tmp_path / "none")))
    ip = world.ok("allocate_interface", id="c")["ip"]
    assert not any(rule.table == RAW and ip in rule.save_line() for rule in world.kernel.rules)
    assert world.ok("status")["config"]["allow-direct-routing"] is True


def test_self_healing_looks_only_after_a_change_and_puts_back_what_is_ours(world):
    world.ok("allocate_interface", id="c")
    world.ok("allocate_port", id="c", container_port=80, host_port=8080)
    service = world.dispatcher._service
    dnat = next(rule for rule in world.kernel.rules if rule.chain == "DOCKER")
    world.kernel.rules[dnat] = 0  # gone, but nobody said the tables changed
    trio.run(service.heal_firewall)
    assert world.kernel.rules[dnat] == 0 and service.firewall_repairs == 0
    world.kernel.changed_by_others = True
    trio.run(service.heal_firewall)
    assert world.kernel.rules[dnat] == 1 and service.firewall_repairs == 1
    assert world.ok("status")["firewall_repairs"] == 1


def test_a_failed_self_healing_round_is_logged_and_the_next_one_runs(world, caplog):
    service = world.dispatcher._service
    rounds: list[int] = []

    async def heal() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise FirewallFailed("iptables: another app is holding the xtables lock")

    service.heal_firewall = heal

    async def main() -> None:
        with trio.move_on_after(2.2):  # the mock clock: four rounds, no real waiting
            await keep_firewall(service)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert rounds == [0, 1, 2, 3]
    assert "firewall: not repaired this time: iptables: another app is holding" in caplog.text
