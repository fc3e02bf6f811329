import dataclasses
import json
import os
from ipaddress import IPv4Address

import pytest

from dockernetd.network import Attachment, Link, PortMapping
from dockernetd.state import (
    Joined,
    Left,
    Linked,
    NetworkCreated,
    NetworkDeleted,
    Published,
    Snapshot,
    StateLog,
    Unlinked,
    Unpublished,
    decode,
    encode,
    from_json,
    to_json,
)

from fakes import make_spec

WEB_NET = make_spec("web", "br-web", "172.18.0.1/16", id="ab" * 32, icc=False)
JOINED = Joined("bridge", "web", IPv4Address("172.17.0.2"), "02:42:ac:11:00:02")
PUBLISHED = Published("bridge", "web", PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80))
LINK = Link("bridge", IPv4Address("172.17.0.2"), IPv4Address("172.17.0.3"), "tcp", 80)
EVERY_KIND = [
    NetworkCreated(WEB_NET),
    Published("web", "c", PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80, proxy=False)),
    Joined(
        "web",
        "c.eth0",
        IPv4Address("172.18.0.2"),
        "02:42:ac:12:00:02",
        Attachment("/run/netns/c", "eth0", "dn0123456789abc"),
    ),
    Joined(
        "web",
        "e" * 64,
        IPv4Address("172.18.0.3"),
        "02:42:ac:12:00:03",
        Attachment.handed_over("web", "e" * 64),
    ),
    Unpublished("web", "c", PortMapping(IPv4Address("0.0.0.0"), 8080, "tcp", 80, proxy=False)),
    NetworkDeleted("web"),
    JOINED,
    Left("bridge", "web"),
    PUBLISHED,
    Linked(LINK),
    Unlinked(LINK),
]


@pytest.mark.parametrize("record", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_its_line(record):
    assert decode(encode(record)) == record


def test_records_written_before_networks_are_of_bridge():
    """A state file of the single-bridge daemon is read by this one."""
    old = [
        {"t": "iface", "id": "web", "ip": "172.17.0.2", "mac": "02:42:ac:11:00:02"},
        {
            "t": "port",
            "id": "web",
            "host_ip": "0.0.0.0",
            "host_port": 8080,
            "proto": "tcp",
            "container_port": 80,
        },
        {"t": "link", "parent": "172.17.0.2", "child": "172.17.0.3", "proto": "tcp", "port": 80},
        {"t": "release", "id": "web"},
    ]
    assert [from_json(o) for o in old] == [JOINED, PUBLISHED, Linked(LINK), Left("bridge", "web")]


def test_records_replay_into_a_snapshot():
    s = Snapshot()
    for record in (NetworkCreated(WEB_NET), JOINED, PUBLISHED, Linked(LINK)):
        s.apply(record)
    assert s.networks == {"web": WEB_NET}
    assert s.endpoints == {("bridge", "web"): JOINED}
    assert list(s.ports) == [(IPv4Address("0.0.0.0"), 8080, "tcp")]
    s.apply(Unlinked(LINK))
    assert s.links == {}
    s.apply(Left("bridge", "web"))  # a release takes the endpoint's ports with it
    assert (s.endpoints, s.ports) == ({}, {})
    s.apply(NetworkDeleted("web"))
    assert s.size() == 0


def test_leaving_one_network_keeps_the_containers_other_endpoint_and_its_ports():
    s = Snapshot()
    on_web = dataclasses.replace(JOINED, network="web", ip=IPv4Address("172.18.0.2"))
    web_port = Published("web", "web", PortMapping(IPv4Address("0.0.0.0"), 9090, "tcp", 90))
    for record in (JOINED, on_web, PUBLISHED, web_port, Left("bridge", "web")):
        s.apply(record)
    assert list(s.endpoints) == [("web", "web")]
    assert list(s.ports.values()) == [web_port]


def test_an_unpublished_port_goes_and_the_endpoint_stays():
    s = Snapshot()
    for record in (JOINED, PUBLISHED):
        s.apply(record)
    s.apply(Unpublished("bridge", "other", PUBLISHED.mapping))  # not its port: nothing
    assert list(s.ports.values()) == [PUBLISHED]
    s.apply(Unpublished("bridge", "web", PUBLISHED.mapping))
    assert (list(s.endpoints.values()), s.ports) == ([JOINED], {})


def test_snapshot_records_rebuild_it():
    s = Snapshot()
    for record in (NetworkCreated(WEB_NET), JOINED, PUBLISHED, Linked(LINK)):
        s.apply(record)
    again = Snapshot()
    for record in s.records():
        again.apply(record)
    assert again == s


@pytest.mark.parametrize(
    "bad",
    [
        {"t": "nope"},
        {"t": "unport", "id": "a"},  # never written: no longer a kind
        {"t": "iface", "id": 3, "ip": "x", "mac": "y"},
        {"t": "iface", "id": "a", "ip": "172.17.0.2", "mac": "01:00:00:00:00:00"},
        {"t": "port", "id": "a"},
        {
            "t": "port",
            "id": "a",
            "host_ip": "0.0.0.0",
            "host_port": 0,
            "proto": "tcp",
            "container_port": 80,
        },
        {"t": "link", "parent": "a", "child": "b", "proto": "icmp", "port": 1},
        {**to_json(NetworkCreated(WEB_NET)), "gateway": "172.18.0.1"},
        {**to_json(NetworkCreated(WEB_NET)), "icc": "yes"},
    ],
)
def test_malformed_records_are_refused(bad):
    with pytest.raises((KeyError, ValueError, TypeError)):
        from_json(bad)


def test_lines_carry_a_checksum():
    line = encode(JOINED)
    assert json.loads(line.split(b" ", 1)[1])["ip"] == "172.17.0.2"
    with pytest.raises(ValueError, match="torn"):
        decode(line[:-5])
    with pytest.raises(ValueError, match="checksum"):
        decode(line.replace(b"172.17.0.2", b"172.17.0.3"))


def test_log_survives_a_torn_tail_and_reports_it(tmp_path):
    log = StateLog(str(tmp_path))
    log.rewrite(Snapshot())
    log.append(JOINED)
    log.append(PUBLISHED)
    log.close()
    with open(log.path, "ab") as f:
        f.write(encode(Linked(LINK))[:20])  # the crash happened mid-write
    fresh = StateLog(str(tmp_path))
    problems = fresh.load()
    assert len(problems) == 1 and "line 3: incomplete line" in problems[0]
    assert list(fresh.snapshot.endpoints) == [("bridge", "web")] and len(fresh.snapshot.ports) == 1


def test_log_compacts_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr("dockernetd.state.COMPACT_MIN_LINES", 10)
    log = StateLog(str(tmp_path))
    log.rewrite(Snapshot())
    for i in range(30):
        log.append(dataclasses.replace(JOINED, container_id=f"c{i}"))
        log.append(Left("bridge", f"c{i}"))
    log.append(JOINED)
    log.close()
    with open(log.path, "rb") as f:
        lines = f.readlines()
    assert len(lines) < 15  # compacted on the way, not 61 lines
    assert not os.path.exists(log.path + ".tmp")
    fresh = StateLog(str(tmp_path))
    assert fresh.load() == [] and list(fresh.snapshot.endpoints) == [("bridge", "web")]


def test_missing_file_is_an_empty_state(tmp_path):
    log = StateLog(str(tmp_path / "absent"))
    assert log.load() == [] and log.snapshot.size() == 0
