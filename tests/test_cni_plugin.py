"""The CNI plugin's decisions without a daemon: versions, results, errors (integration/
test_cni.py runs it against the daemon with real namespaces)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dockernetd import cni

ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/"}
IFACE = {
    "ip": "10.1.0.2",
    "prefix_len": 24,
    "gateway": "10.1.0.1",
    "mac_address": "02:42:0a:01:00:02",
    "netns": "/run/netns/c1",
    "ifname": "eth0",
    "host_veth": "dn0123456789abc",
}


def run(command: str, config: dict | str, **env: str) -> tuple[int, dict | None]:
    stdin = config if isinstance(config, str) else json.dumps(config)
    return cni.run({**ENV, "CNI_COMMAND": command, **env}, stdin)


@pytest.mark.parametrize(
    ("version", "ip_version"), [("0.3.1", "4"), ("0.4.0", "4"), ("1.1.0", None)]
)
def test_the_result_has_the_format_of_the_version_asked_for(version, ip_version):
    result = cni.result(version, IFACE)
    assert result["cniVersion"] == version
    assert result["ips"][0].get("version") == ip_version
    assert result["ips"][0]["address"] == "10.1.0.2/24" and result["ips"][0]["interface"] == 1
    assert result["interfaces"][1] == {
        "name": "eth0",
        "mac": "02:42:0a:01:00:02",
        "sandbox": "/run/netns/c1",
    }


@pytest.mark.parametrize(
    ("command", "config", "env", "code", "msg"),
    [
        ("ADD", "{oops", {}, 6, "cannot decode the network configuration"),
        ("ADD", "[1]", {}, 6, "the network configuration is not a JSON object"),
        ("ADD", {"cniVersion": "0.2.0"}, {}, 1, "incompatible CNI version 0.2.0"),
        ("NOPE", {"cniVersion": "1.0.0"}, {}, 4, "unknown CNI_COMMAND 'NOPE'"),
        ("ADD", {"cniVersion": "1.0.0"}, {"CNI_NETNS": ""}, 4, "missing CNI_NETNS"),
        (
            "ADD",
            {"cniVersion": "1.0.0"},
            {"CNI_CONTAINERID": "a/b"},
            4,
            "CNI_CONTAINERID and CNI_IFNAME must be 1-128 of A-Z a-z 0-9 _ . - in all",
        ),
        ("ADD", {"cniVersion": "1.0.0", "network": 3}, {}, 7, "network must be a string"),
        (
            "ADD",
            {"cniVersion": "1.0.0", "runtimeConfig": {"portMappings": [{"hostPort": 80}]}},
            {},
            7,
            "bad portMappings entry {'hostPort': 80}",
        ),
        ("CHECK", {"cniVersion": "0.3.1"}, {}, 1, "CHECK needs cniVersion 0.4.0 or later"),
        (
            "ADD",
            {"cniVersion": "1.0.0", "socket": "/nonexistent"},
            {},
            11,
            "dockernetd is not answering at /nonexistent",
        ),
        (
            "STATUS",
            {"cniVersion": "1.1.0", "socket": "/nonexistent"},
            {},
            50,
            "network bridge is not available",
        ),
    ],
)
def test_every_failure_is_a_cni_error(command, config, env, code, msg):
    status, error = run(command, config, **env)
    assert status == 1 and error is not None
    assert (error["code"], error["msg"]) == (code, msg)


def test_del_with_no_daemon_to_ask_is_try_again_later():
    assert run("DEL", {"cniVersion": "1.0.0", "socket": "/nonexistent"})[1]["code"] == 11


def test_version_needs_no_daemon_and_the_entry_point_prints_json():
    assert run("VERSION", {"cniVersion": "0.4.0"}) == (
        0,
        {"cniVersion": "0.4.0", "supportedVersions": list(cni.SUPPORTED_VERSIONS)},
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockernetd.cni"],
        input="{}",
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.1.0"
