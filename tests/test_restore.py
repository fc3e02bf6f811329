"""Restore over the fake kernel: what one daemon recorded, the next brings back or drops."""

from __future__ import annotations

import logging
from collections import Counter

import trio

from dockernetd.config import Config
from dockernetd.restore import restore
from dockernetd.state import Snapshot, StateLog

from test_network_handlers import World


def recorded_world(tmp_path) -> World:
    state = StateLog(str(tmp_path))
    state.rewrite(Snapshot())
    world = World(Config(resolv_conf=str(tmp_path / "none")), state)
    world.ok("network_create", name="red", subnet="10.1.0.0/24", icc=False)
    world.ok("allocate_interface", id="a", network="red")
    world.ok("allocate_interface", id="b", network="red")
    world.ok("allocate_interface", id="b")
    world.ok("allocate_port", id="b", container_port=80, host_port=8080)
    link = {"parent_ip": "10.1.0.2", "child_ip": "10.1.0.3", "ports": ["80"]}
    world.ok("link", action="add", network="red", **link)
    state.close()
    return world


def restart(tmp_path, config: Config | None = None) -> World:
    world = World(config or Config(resolv_conf=str(tmp_path / "none")))
    trio.run(restore, world.driver, StateLog(str(tmp_path)))
    return world


def test_everything_recorded_comes_back_and_the_firewall_holds_exactly_its_rules(tmp_path):
    before = recorded_world(tmp_path)
    after = restart(tmp_path)
    for method in ("network_list", "list_interfaces"):
        assert after.ok(method) == before.ok(method)
    assert after.ok("network_inspect", name="red") == before.ok("network_inspect", name="red")
    assert after.driver.links.active == before.driver.links.active
    expected = after.driver.owned_rules()
    assert after.kernel.rules == Counter(expected) == before.kernel.rules
    assert [p.mapping.host_port for p in after.proxies.started] == [8080]
    # the oldest endpoint is still b's first: ports without a network go through red
    assert after.ok("allocate_port", id="b", container_port=81)["container_ip"] == "10.1.0.3"


def test_a_network_that_now_clashes_is_dropped_with_its_endpoints_and_ports(tmp_path, caplog):
    recorded_world(tmp_path)
    caplog.set_level(logging.WARNING)
    after = restart(tmp_path, Config(bip="10.1.0.1/16", resolv_conf=str(tmp_path / "none")))
    assert [n["name"] for n in after.ok("network_list")] == ["bridge"]
    assert "state: network red dropped: subnet 10.1.0.0/24 overlaps network bridge" in caplog.text
    assert "interface a (10.1.0.2) on network red dropped: network red not found" in caplog.text
    assert "state: port 0.0.0.0:8080/tcp dropped: its container b is gone" in caplog.text
    assert "interface b (172.17.0.2) dropped: requested ip is out of range" in caplog.text
    assert "link {'network': 'red', 'parent': '10.1.0.2'" in caplog.text
    assert after.ok("list_interfaces") == []
    # nothing of red, no isolation: only the default network's own guard
    assert after.kernel.rules == Counter(after.driver.owned_rules())
    assert all("red" not in rule.save_line() for rule in after.kernel.rules)
    snapshot = StateLog(str(tmp_path))
    snapshot.load()
    assert (list(snapshot.snapshot.networks), len(snapshot.snapshot.links)) == ([], 0)
