"""The portmapper and links over the fake kernel: success paths, retries and undo."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address

import pytest
import trio

from dockernetd.errors import FirewallFailed, PortAlreadyAllocated, ProxyFailed
from dockernetd.links import Links
from dockernetd.network import Endpoint, PortMapping
from dockernetd.portmapper import MAX_ALLOCATED_PORT_ATTEMPTS, PortMapper
from dockernetd.ports import DYNAMIC_PORT_START
from dockernetd.rules import link_rules, mapping_rules

from fakes import FakeKernel, FakeProxies

ANY = IPv4Address("0.0.0.0")


def setup() -> tuple[PortMapper, FakeKernel, FakeProxies, Endpoint]:
    kernel, proxies = FakeKernel(), FakeProxies()
    mapper = PortMapper(kernel, proxies, iptables=True)
    return mapper, kernel, proxies, Endpoint("web", "bridge", IPv4Address("172.17.0.2"), "m")


def test_a_mapping_is_a_proxy_two_rules_and_a_port_of_the_endpoint():
    mapper, kernel, proxies, web = setup()
    [mapping] = trio.run(mapper.map, "docker0", web, "tcp", ANY, [(8080, 80)])
    assert mapping == PortMapping(ANY, 8080, "tcp", 80)
    assert web.ports == [mapping]
    assert kernel.rules == Counter(mapping_rules("docker0", web, mapping))
    assert [(p.mapping, p.container_ip) for p in proxies.started] == [(mapping, web.ip)]
    trio.run(mapper.unmap, "docker0", web, [mapping])
    assert (web.ports, kernel.rules, proxies.running()) == ([], Counter(), [])
    assert mapper.ports.request(ANY, "tcp", 8080) == 8080  # free again


def test_a_dynamic_port_whose_bind_fails_is_retried_with_the_next():
    mapper, _, proxies, web = setup()
    proxies.taken = {(ANY, DYNAMIC_PORT_START, "tcp")}
    [mapping] = trio.run(mapper.map, "docker0", web, "tcp", ANY, [(0, 80)])
    assert mapping.host_port == DYNAMIC_PORT_START + 1


def test_ten_failed_binds_give_up_and_hold_no_port():
    mapper, kernel, proxies, web = setup()
    ports = range(DYNAMIC_PORT_START, DYNAMIC_PORT_START + MAX_ALLOCATED_PORT_ATTEMPTS)
    proxies.taken = {(ANY, port, "tcp") for port in ports}
    with pytest.raises(ProxyFailed, match="address already in use"):
        trio.run(mapper.map, "docker0", web, "tcp", ANY, [(0, 80)])
    assert (web.ports, kernel.rules) == ([], Counter())
    for port in ports:
        assert mapper.ports.request(ANY, "tcp", port) == port


def test_a_refused_rule_undoes_the_ports_and_proxies_of_the_whole_range():
    mapper, kernel, proxies, web = setup()
    kernel.refuse = True
    with pytest.raises(FirewallFailed):
        trio.run(mapper.map, "docker0", web, "tcp", ANY, [(8000, 80), (8001, 81)])
    assert len(proxies.started) == 2 and proxies.running() == []
    assert web.ports == [] and mapper.ports.request(ANY, "tcp", 8000) == 8000


def test_a_range_with_one_port_held_takes_none():
    mapper, kernel, proxies, web = setup()
    mapper.ports.request(ANY, "tcp", 8001)
    with pytest.raises(PortAlreadyAllocated):
        trio.run(mapper.map, "docker0", web, "tcp", ANY, [(8000, 80), (8001, 81)])
    assert proxies.running() == [] and kernel.rules == Counter()
    assert mapper.ports.request(ANY, "tcp", 8000) == 8000


def test_unmap_deletes_the_rules_that_remain_when_one_is_gone():
    mapper, kernel, _, web = setup()
    mappings = trio.run(mapper.map, "docker0", web, "tcp", ANY, [(8000, 80), (8001, 81)])
    kernel.rules[mapping_rules("docker0", web, mappings[0])[0]] = 0  # deleted behind our back
    trio.run(mapper.unmap, "docker0", web, mappings)
    assert +kernel.rules == Counter()


def test_boot_mappings_start_proxies_without_rules():
    mapper, kernel, proxies, web = setup()
    trio.run(lambda: mapper.map("docker0", web, "tcp", ANY, [(8080, 80)], with_rules=False))
    assert kernel.rules == Counter() and len(proxies.running()) == 1


def test_a_stopped_proxy_is_reported_and_revived():
    mapper, _, proxies, web = setup()
    [mapping] = trio.run(mapper.map, "docker0", web, "udp", ANY, [(5353, 53)])
    proxies.started[0].running = False
    assert mapper.stopped_proxies() == [mapping]
    trio.run(mapper.revive, mapping)
    assert mapper.stopped_proxies() == [] and mapper.running_proxies() == 1


def test_links_are_idempotent_and_skip_refused_ports_only_when_told():
    kernel = FakeKernel()
    links = Links(kernel)
    a, b = IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3")

    def link(adding: bool, ports: list[str], ignore_errors: bool = False) -> list:
        return trio.run(links.link, "red", "br-red", adding, a, b, ports, ignore_errors)

    [added] = link(True, ["80"])
    assert link(True, ["80"]) == []  # already linked: no duplicate rules
    assert kernel.rules == Counter(link_rules("br-red", added))
    kernel.refuse = True
    with pytest.raises(FirewallFailed) as refused:
        link(True, ["81/udp"])
    assert refused.value.details == {"port": "81/udp"}
    assert link(True, ["82"], ignore_errors=True) == []
    kernel.refuse = False
    assert link(False, ["80"]) == [added] and links.active == {}


def test_without_the_proxy_nothing_is_bound_and_the_host_reaches_it_through_dnat():
    mapper, kernel, proxies, web = setup()
    proxies.taken = {(ANY, 8080, "tcp")}  # the runtime holds it: no bind is even tried
    mappings = trio.run(
        lambda: mapper.map("br-red", web, "tcp", ANY, [(8080, 80), (8081, 81)], with_proxy=False)
    )
    assert [m.proxy for m in mappings] == [False, False] and proxies.started == []
    assert mapper.running_proxies() == 0 and mapper.stopped_proxies() == []
    assert kernel.localnet == ["br-red"]  # once for the bridge
    lines = sorted(rule.save_line() for rule in kernel.rules)
    assert (
        "-A OUTPUT -d 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m comment --comment "
        '"dockernetd:web" -j DNAT --to-destination 172.17.0.2:80'
    ) in lines
    assert (
        "-A POSTROUTING -s 127.0.0.0/8 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -m comment "
        '--comment "dockernetd:web" -j MASQUERADE'
    ) in lines
    trio.run(mapper.unmap, "br-red", web, mappings)
    assert +kernel.rules == Counter() and mapper.ports.request(ANY, "tcp", 8080) == 8080
