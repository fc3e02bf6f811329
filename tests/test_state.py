import os

import pytest

from dockernetd.state import Snapshot, StateLog, decode, encode

IFACE = {"t": "iface", "id": "web", "ip": "172.17.0.2", "mac": "02:42:ac:11:00:02"}
PORT = {
    "t": "port",
    "id": "web",
    "host_ip": "0.0.0.0",
    "host_port": 8080,
    "proto": "tcp",
    "container_port": 80,
}
LINK = {"t": "link", "parent": "172.17.0.2", "child": "172.17.0.3", "proto": "tcp", "port": 80}


def test_records_replay_into_a_snapshot():
    s = Snapshot()
    for record in (IFACE, PORT, LINK):
        s.apply(record)
    assert s.interfaces == {"web": {"ip": "172.17.0.2", "mac": "02:42:ac:11:00:02"}}
    assert list(s.ports) == ["0.0.0.0:8080/tcp"]
    s.apply({"t": "unlink", **{k: v for k, v in LINK.items() if k != "t"}})
    assert s.links == {}
    s.apply({"t": "release", "id": "web"})  # a release takes the container's ports with it
    assert (s.interfaces, s.ports) == ({}, {})


def test_snapshot_records_rebuild_it():
    s = Snapshot()
    for record in (IFACE, PORT, LINK):
        s.apply(record)
    again = Snapshot()
    for record in s.records():
        again.apply(record)
    assert again == s


@pytest.mark.parametrize(
    "bad",
    [
        {"t": "nope"},
        {"t": "iface", "id": 3, "ip": "x", "mac": "y"},
        {"t": "port", "id": "a"},
        {"t": "link", "parent": "a", "child": "b", "proto": "icmp", "port": 1},
    ],
)
def test_malformed_records_are_refused(bad):
    with pytest.raises((KeyError, ValueError, TypeError)):
        Snapshot().apply(bad)


def test_lines_carry_a_checksum():
    line = encode(IFACE)
    assert decode(line) == IFACE
    with pytest.raises(ValueError, match="torn"):
        decode(line[:-5])
    with pytest.raises(ValueError, match="checksum"):
        decode(line.replace(b"172.17.0.2", b"172.17.0.3"))


def test_log_survives_a_torn_tail_and_reports_it(tmp_path):
    log = StateLog(str(tmp_path))
    log.rewrite(Snapshot())
    log.append(IFACE)
    log.append(PORT)
    log.close()
    with open(log.path, "ab") as f:
        f.write(encode(LINK)[:20])  # the crash happened mid-write
    fresh = StateLog(str(tmp_path))
    problems = fresh.load()
    assert len(problems) == 1 and "line 3: incomplete line" in problems[0]
    assert list(fresh.snapshot.interfaces) == ["web"] and len(fresh.snapshot.ports) == 1


def test_log_compacts_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr("dockernetd.state.COMPACT_MIN_LINES", 10)
    log = StateLog(str(tmp_path))
    log.rewrite(Snapshot())
    for i in range(30):
        log.append({**IFACE, "id": f"c{i}"})
        log.append({"t": "release", "id": f"c{i}"})
    log.append(IFACE)
    log.close()
    with open(log.path, "rb") as f:
        lines = f.readlines()
    assert len(lines) < 15  # compacted on the way, not 61 lines
    assert not os.path.exists(log.path + ".tmp")
    fresh = StateLog(str(tmp_path))
    assert fresh.load() == [] and list(fresh.snapshot.interfaces) == ["web"]


def test_missing_file_is_an_empty_state(tmp_path):
    log = StateLog(str(tmp_path / "absent"))
    assert log.load() == [] and log.snapshot.size() == 0
