"""Default address pools: parsing (flag and daemon.json) and the choice of a free subnet."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest

from dockernetd.cli import parse_args
from dockernetd.errors import ConfigError
from dockernetd.pools import DEFAULT_POOLS, AddressPool, choose_subnet, parse_pool

N = IPv4Network


def test_dockers_defaults():
    assert [str(p) for p in DEFAULT_POOLS[:2]] == [
        "base=172.17.0.0/16,size=16",
        "base=172.18.0.0/16,size=16",
    ]
    assert str(DEFAULT_POOLS[-1]) == "base=192.168.0.0/16,size=20" and len(DEFAULT_POOLS) == 16
    subnet, skipped = choose_subnet(DEFAULT_POOLS, [])
    assert (subnet, skipped) == (N("172.17.0.0/16"), [])


def test_the_first_free_subnet_and_why_the_others_were_skipped():
    in_use = [(N("172.17.0.0/16"), "network bridge"), (N("172.16.0.0/13"), "route 172.16.0.0/13")]
    subnet, skipped = choose_subnet(DEFAULT_POOLS, in_use)
    assert subnet == N("172.24.0.0/16")
    assert skipped[:2] == [
        "172.17.0.0/16 overlaps network bridge",
        "172.18.0.0/16 overlaps route 172.16.0.0/13",
    ]


def test_a_large_clash_is_stepped_over_in_one_step():
    pool = parse_pool("base=10.0.0.0/8,size=24")
    subnet, skipped = choose_subnet([pool], [(N("10.0.0.0/12"), "route 10.0.0.0/12")])
    assert subnet == N("10.16.0.0/24")
    assert skipped == ["10.0.0.0/24 (+4095 more) overlaps route 10.0.0.0/12"]


def test_a_full_pool_has_no_subnet():
    pool = parse_pool("base=10.0.0.0/24,size=25")
    subnet, skipped = choose_subnet([pool], [(N("10.0.0.0/25"), "a"), (N("10.0.0.128/25"), "b")])
    assert subnet is None and len(skipped) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/8", "want base=CIDR,size=N"),
        ("base=10.0.0.0/8", "want base=CIDR,size=N"),
        ("base=10.0.0.0/8,size=24,size=25", "want base=CIDR,size=N"),
        ("base=10.0.0.1/8,size=24", "base '10.0.0.1/8': not an IPv4 CIDR"),
        ("base=10.0.0.0/16,size=8", "size 8 for base 10.0.0.0/16"),
        ("base=10.0.0.0/16,size=30", "size 30 for base 10.0.0.0/16"),
        ("base=10.0.0.0/16,size=x", "size 'x': not a number"),
    ],
)
def test_bad_pools(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_pool(text)


def test_the_flag_repeats_and_replaces_the_defaults():
    config = parse_args(
        [
            "--default-address-pool",
            "base=10.10.0.0/16,size=24",
            "--default-address-pool",
            "base=10.20.0.0/16,size=20",
        ]
    )
    assert config.address_pools == (
        AddressPool(N("10.10.0.0/16"), 24),
        AddressPool(N("10.20.0.0/16"), 20),
    )
    assert config.public()["default-address-pools"][0] == {"base": "10.10.0.0/16", "size": 24}
    assert parse_args([]).address_pools == DEFAULT_POOLS
    assert parse_args([]).public()["default-address-pools"] == []
    with pytest.raises(ConfigError, match="invalid default address pool"):
        parse_args(["--default-address-pool", "base=10.10.0.0/16"])


def test_daemon_json_has_dockers_key(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"default-address-pools": [{"base": "10.10.0.0/16", "size": 24}]}))
    assert parse_args(["--config-file", str(path)]).address_pools == (
        AddressPool(N("10.10.0.0/16"), 24),
    )
    for bad in ([{"base": "10.10.0.0/16"}], [{"base": "10.10.0.0/16", "size": 99}], "x"):
        path.write_text(json.dumps({"default-address-pools": bad}))
        with pytest.raises(ConfigError):
            parse_args(["--config-file", str(path)])
