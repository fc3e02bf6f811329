"""The cluster's pure side: its flags, the store's layout, subnet choice and route plans."""

import json
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from dockernetd.cli import parse_args
from dockernetd.cluster import (
    ClusterSettings,
    HostLease,
    candidates,
    lease_of,
    parse_store_options,
    route_changes,
    routes_wanted,
)
from dockernetd.errors import ConfigError
from dockernetd.network import NetworkSpec
from dockernetd.rules import boot_plan

CLUSTER = [
    "--cluster-store",
    "etcd://10.99.0.1:2379,etcd2:2379",
    "--cluster-advertise",
    "10.99.0.11",
    "--cluster-network",
    "10.200.0.0/16",
]


def settings(advertise="10.99.0.11", pool="10.200.0.0/22", size=24):
    return ClusterSettings(
        (("10.99.0.1", 2379),), IPv4Address(advertise), IPv4Network(pool), size, 60, 20
    )


def test_the_flags_parsed_with_dockers_discovery_defaults():
    config = parse_args(CLUSTER)
    assert config.cluster == ClusterSettings(
        endpoints=(("10.99.0.1", 2379), ("etcd2", 2379)),
        advertise=IPv4Address("10.99.0.11"),
        pool=IPv4Network("10.200.0.0/16"),
        subnet_size=24,
        ttl=60,
        heartbeat=20,
    )
    assert config.cluster.urls() == ["http://10.99.0.1:2379", "http://etcd2:2379"]
    assert parse_args([]).cluster is None


def test_the_config_file_takes_the_same_keys(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(
        json.dumps(
            {
                "cluster-store": "etcd://10.99.0.1:2379",
                "cluster-advertise": "10.99.0.11",
                "cluster-network": "10.200.0.0/16",
                "cluster-subnet-size": 26,
                "cluster-store-opts": {"discovery.ttl": "9"},
            }
        )
    )
    cluster = parse_args(["--config-file", str(path)]).cluster
    assert cluster is not None
    assert (cluster.subnet_size, cluster.ttl, cluster.heartbeat) == (26, 9, 3)


@pytest.mark.parametrize(
    ("options", "ttl", "heartbeat"),
    [
        ({}, 60, 20),
        ({"discovery.heartbeat": "5"}, 15, 5),
        ({"discovery.ttl": "30"}, 30, 10),
        ({"discovery.ttl": "3", "discovery.heartbeat": "1"}, 3, 1),
    ],
)
def test_store_options_as_docker_read_them(options, ttl, heartbeat):
    assert parse_store_options(options) == (ttl, heartbeat)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--cluster-advertise", "10.0.0.1"],
            "invalid cluster configuration. --cluster-advertise must be accompanied by "
            "--cluster-store configuration",
        ),
        (
            CLUSTER[:2] + CLUSTER[4:],
            "invalid cluster configuration. --cluster-store must be accompanied by "
            "--cluster-advertise (the address other hosts route this host's subnet via)",
        ),
        (
            ["--cluster-store", "consul://h:8500", *CLUSTER[2:]],
            "unsupported cluster store 'consul://h:8500': want etcd://HOST:PORT[,HOST:PORT…]",
        ),
        (
            ["--cluster-store", "etcd://h", *CLUSTER[2:]],
            "invalid cluster store address 'h': want HOST:PORT",
        ),
        (
            [*CLUSTER[:2], "--cluster-advertise", "eth0", *CLUSTER[4:]],
            "discovery advertise parsing failed ('eth0' is not an IPv4 address)",
        ),
        (CLUSTER[:4], "--cluster-store needs --cluster-network, the pool to lease from"),
        (
            [*CLUSTER, "--cluster-subnet-size", "8"],
            "invalid cluster-subnet-size 8: must be between the pool's prefix length (16) and 30",
        ),
        (
            [
                *CLUSTER,
                "--cluster-store-opt",
                "discovery.ttl=10",
                "--cluster-store-opt",
                "discovery.heartbeat=10",
            ],
            "discovery.ttl timer must be greater than discovery.heartbeat",
        ),
        ([*CLUSTER, "--cluster-store-opt", "discovery.ttl=0"], "discovery.ttl must be positive"),
        (
            [*CLUSTER, "--cluster-store-opt", "kv.cacertfile=x"],
            "unknown cluster-store-opt 'kv.cacertfile': known are discovery.heartbeat, "
            "discovery.ttl",
        ),
        (
            [*CLUSTER, "--bip", "10.1.0.1/24"],
            "--cluster-store leases the default bridge's subnet: it cannot be used with "
            "--bip, --fixed-cidr or -b",
        ),
    ],
)
def test_bad_cluster_flags_are_refused_before_anything_is_touched(argv, message):
    with pytest.raises(ConfigError) as exc:
        parse_args(argv)
    assert str(exc.value) == message


def test_keys_name_the_pool_and_the_subnet():
    s = settings(pool="10.200.0.0/16")
    assert s.key(IPv4Network("10.200.3.0/24")) == (
        "/dockernetd/cluster/10.200.0.0-16/subnets/10.200.3.0-24"
    )


def test_a_lease_round_trips_through_its_value_and_junk_is_not_one():
    lease = HostLease(IPv4Network("10.200.3.0/24"), IPv4Address("10.99.0.11"), 1000.0, 7)
    assert lease_of(lease.value().encode(), 7) == lease
    assert lease.public(1012.34) == {
        "subnet": "10.200.3.0/24",
        "advertise": "10.99.0.11",
        "age_s": 12.3,
    }
    for junk in (b"", b"{}", b"[1]", b'{"subnet": "x", "advertise": "y", "since": 1}'):
        assert lease_of(junk, 7) is None


def test_candidates_skip_the_taken_and_start_where_the_host_does():
    s = settings()  # four /24s
    every = list(IPv4Network("10.200.0.0/22").subnets(new_prefix=24))
    order = candidates(s, [])
    assert sorted(order) == every
    start = every.index(order[0])
    assert order == every[start:] + every[:start]  # the pool in order, from the host's place
    taken = [order[0], every[3]]
    assert candidates(s, taken) == [subnet for subnet in order if subnet not in taken]
    assert candidates(s, every) == []
    starts = {candidates(settings(advertise=f"10.99.0.{n}"), [])[0] for n in range(1, 40)}
    assert len(starts) == 4  # hosts start in different places


def test_routes_to_every_other_host_and_the_changes_to_get_there():
    s = settings()
    ours = HostLease(IPv4Network("10.200.0.0/24"), s.advertise, 0.0, 1)
    b = HostLease(IPv4Network("10.200.1.0/24"), IPv4Address("10.99.0.12"), 0.0, 2)
    c = HostLease(IPv4Network("10.200.2.0/24"), IPv4Address("10.99.0.13"), 0.0, 3)
    wanted = routes_wanted(s, [ours, b, c])
    assert wanted == {b.subnet: b.advertise, c.subnet: c.advertise}
    moved = {b.subnet: IPv4Address("10.99.0.99")}  # b's subnet now held by another host
    gone = {IPv4Network("10.200.3.0/24"): IPv4Address("10.99.0.14")}
    place, delete = route_changes({**moved, **gone}, wanted)
    assert place == wanted and delete == [IPv4Network("10.200.3.0/24")]
    assert route_changes(wanted, wanted) == ({}, [])


def _spec(pool):
    return NetworkSpec(
        "bridge",
        "0" * 64,
        "docker0",
        IPv4Interface("10.200.3.1/24"),
        None,
        False,
        True,
        True,
        1500,
        IPv4Address("0.0.0.0"),
        cluster_pool=pool,
    )


def test_in_a_cluster_the_pool_is_not_masqueraded_and_passes_the_guard():
    plan = boot_plan(_spec(IPv4Network("10.200.0.0/16")))
    lines = [(rule.table, rule.save_line()) for rule in plan.present]
    assert lines[:2] == [
        ("raw", "-A PREROUTING -s 10.200.0.0/16 -d 10.200.3.0/24 -j ACCEPT"),
        ("nat", "-A POSTROUTING -s 10.200.3.0/24 ! -d 10.200.0.0/16 ! -o docker0 -j MASQUERADE"),
    ]
    assert [item.text for rule in plan.present[:2] for item in rule.nft] == [
        "ip saddr 10.200.0.0/16 ip daddr 10.200.3.0/24 accept",
        'ip saddr 10.200.3.0/24 ip daddr != 10.200.0.0/16 oifname != "docker0" masquerade',
    ]
    alone = boot_plan(_spec(None))
    assert [rule.table for rule in alone.present] == ["nat", "filter", "filter", "filter"]
