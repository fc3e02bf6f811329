"""Many hosts: subnets leased from a real etcd, routes between hosts, real TCP across them.

Each host is a namespace on one L2 segment (cluster.py's rig); etcd runs on the segment.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from ipaddress import IPv4Address, IPv4Network

import pytest

from cluster import HEARTBEAT, POOL, SEGMENT, TTL, Rig, http
from netns import Daemon, attach_container, both_backends, probe, start_echo_server, wait_for

METRICS = "http://127.0.0.1:9323/metrics"


@pytest.fixture
def rig(make_netns, tmp_path, resolv_conf, firewall_backend):
    made: list[Rig] = []

    def make(*extra_args: str) -> Rig:
        made.append(Rig(make_netns, tmp_path, resolv_conf, firewall_backend, extra_args))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def containers(make_netns):
    def make(host, name):
        ns = make_netns("dnd-c")
        iface = host.daemon.call("allocate_interface", id=name)
        attach_container(host.ns, ns, iface)
        return ns, iface

    return make


@both_backends
def test_containers_on_different_hosts_reach_each_other_by_address(rig, containers, processes):
    cluster = rig()
    a, b, c = (cluster.add_host() for _ in range(3))
    for host in (a, b, c):
        host.daemon.start()
    subnets = {host.subnet() for host in (a, b, c)}
    assert len(subnets) == 3 and all(IPv4Network(s).subnet_of(IPv4Network(POOL)) for s in subnets)
    assert all(IPv4Network(s).prefixlen == 24 for s in subnets)
    for host in (a, b, c):  # a route to each other host's subnet, via its address
        others = {other.subnet(): other.address for other in (a, b, c) if other is not host}
        wait_for(lambda host=host, others=others: host.routes() == others)
    a_ns, a_iface = containers(a, "web-a")
    b_ns, b_iface = containers(b, "web-b")
    assert IPv4Address(a_iface["ip"]) in IPv4Network(a.subnet())
    assert a_iface["gateway"] == str(IPv4Network(a.subnet())[1])
    processes.append(start_echo_server(b_ns, "tcp", 8080, "b"))
    # the receiver sees the sender container's own address: no masquerade between hosts,
    # and the direct-access filter lets the cluster's pool through
    assert probe(a_ns, "tcp", b_iface["ip"], 8080, "hi") == f"b:{a_iface['ip']}:hi"
    # the world (here the switch, outside the pool) still sees the host's address
    processes.append(start_echo_server(cluster.switch, "tcp", 9090, "world"))
    assert probe(a_ns, "tcp", f"{SEGMENT}.1", 9090, "out") == f"world:{a.address}:out"
    listed = a.daemon.call("cluster")
    assert listed["enabled"] is True
    assert [(h["advertise"], h["self"], h["routed"]) for h in listed["hosts"]] == sorted(
        [(a.address, True, False), (b.address, False, True), (c.address, False, True)],
        key=lambda row: IPv4Network(next(h.subnet() for h in (a, b, c) if h.address == row[0])),
    )
    status = a.daemon.call("status")["cluster"]
    assert status["state"] == "ok" and status["subnet"] == a.subnet() and status["routes"] == 2
    assert status["lease_age_s"] >= 0


def test_direct_access_from_outside_the_pool_is_still_dropped(rig, containers, processes):
    """The exemption is the pool's alone: a machine of the segment outside the pool that
    routes to a container's address by hand is dropped, as without a cluster."""
    cluster = rig()
    a = cluster.add_host()
    a.daemon.start()
    ns, iface = containers(a, "web")
    processes.append(start_echo_server(ns, "tcp", 8080, "web"))
    cluster.switch.ip("route", "add", a.subnet(), "via", a.address)
    assert probe(cluster.switch, "tcp", iface["ip"], 8080, timeout=1).startswith("ERR")


def test_twenty_daemons_started_at_once_get_distinct_subnets(rig):
    cluster = rig()
    hosts = [cluster.add_host() for _ in range(20)]
    for host in hosts:  # all racing for the pool: started together, waited for after
        with open(host.daemon.log_path, "ab") as log:
            host.daemon.proc = host.ns.popen(*host.daemon.command(), stdout=log, stderr=log)
    for host in hosts:
        wait_for(lambda host=host: _answers(host.daemon), timeout=60)
    subnets = [host.subnet() for host in hosts]
    assert len(set(subnets)) == 20
    assert len(cluster.etcd_keys()) == 20
    for host in hosts:
        wait_for(lambda host=host: len(host.routes()) == 19, timeout=20)


def _answers(daemon: Daemon) -> bool:
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
    try:
        daemon.call("status")
    except OSError:
        return False
    return True


def test_etcd_lost_then_back_nothing_is_torn_down(rig, containers, processes):
    cluster = rig("--metrics-addr", "127.0.0.1:9323")  # each host its own loopback
    a, b = cluster.add_host(), cluster.add_host()
    a.daemon.start()
    b.daemon.start()
    wait_for(lambda: len(a.routes()) == 1 and len(b.routes()) == 1)
    a_ns, a_iface = containers(a, "ca")
    b_ns, b_iface = containers(b, "cb")
    processes.append(start_echo_server(b_ns, "tcp", 8080, "b"))
    cluster.etcd.stop(signal.SIGKILL)
    wait_for(lambda: a.daemon.call("status")["cluster"]["state"] == "degraded", timeout=10)
    problems = a.daemon.call("status")["cluster"]["problems"]
    assert problems and all(f"{SEGMENT}.1:2379" in p for p in problems)
    assert "dockernetd_cluster_degraded 1.0" in http(a.ns, METRICS)
    time.sleep(TTL + HEARTBEAT)  # past the TTL: nothing expires while etcd is away
    assert probe(a_ns, "tcp", b_iface["ip"], 8080, "still") == f"b:{a_iface['ip']}:still"
    new = a.daemon.call("allocate_interface", id="new")
    assert IPv4Address(new["ip"]) in IPv4Network(a.subnet())
    assert len(a.routes()) == 1
    cluster.etcd.start()  # same data: the leases are back, and renewed in time
    for host in (a, b):
        wait_for(lambda host=host: host.daemon.call("status")["cluster"]["state"] == "ok", 15)
    assert len(cluster.etcd_keys()) == 2
    time.sleep(TTL + HEARTBEAT)
    assert len(cluster.etcd_keys()) == 2 and len(a.routes()) == 1
    assert a.daemon.call("status")["cluster"]["state"] == "ok"
    metrics = http(a.ns, METRICS)
    assert "dockernetd_cluster_degraded 0.0" in metrics
    assert "dockernetd_cluster_hosts 2.0" in metrics and "dockernetd_cluster_routes 1.0" in metrics


def test_a_dead_hosts_route_goes_after_its_ttl(rig):
    cluster = rig()
    a, b, c = (cluster.add_host() for _ in range(3))
    for host in (a, b, c):
        host.daemon.start()
    b_subnet = b.subnet()
    for host in (a, c):
        wait_for(lambda host=host: b_subnet in host.routes())
    b.daemon.stop(signal.SIGKILL)  # no goodbye: only the lease's TTL tells
    for host in (a, c):
        gone_after = wait_for(lambda host=host: b_subnet not in host.routes(), timeout=TTL + 10)
        assert len(host.routes()) == 1
    assert gone_after > 0  # it was there when b died, and went with the lease
    assert len(cluster.etcd_keys()) == 2


def test_a_restarted_host_keeps_its_subnet_and_its_containers_addresses(rig, containers):
    cluster = rig()
    a, b = cluster.add_host(), cluster.add_host()
    a.daemon.start()
    b.daemon.start()
    subnet = a.subnet()
    _, iface = containers(a, "keep")
    a.daemon.stop(signal.SIGKILL)
    a.daemon.start()
    assert a.subnet() == subnet
    [endpoint] = a.daemon.call("list_interfaces")
    assert endpoint["id"] == "keep" and endpoint["ip"] == iface["ip"]
    assert a.ns.ipv4_addresses("docker0") == [f"{IPv4Network(subnet)[1]}/24"]
    assert len(cluster.etcd_keys()) == 2
    wait_for(lambda: list(a.routes()) == [b.subnet()])


def test_not_ready_until_etcd_answers_and_status_says_why(rig, tmp_path):
    cluster = rig()
    a = cluster.add_host()
    cluster.etcd.stop()
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(10)
        with open(a.daemon.log_path, "ab") as log:
            a.daemon.proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    a.ns.name,
                    "env",
                    f"NOTIFY_SOCKET={notify}",
                    *a.daemon.command(),
                ],
                stdout=log,
                stderr=log,
            )
        first = listener.recv(4096).decode()
        assert first.startswith(
            f"STATUS=waiting for the cluster store: etcd at http://{SEGMENT}.1:2379"
        )
        time.sleep(1)
        assert not _answers(a.daemon)  # not serving (nor READY) without a lease
        cluster.etcd.start()
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(listener.recv(4096).decode())
    assert _answers(a.daemon)
    assert a.subnet()


def test_a_full_pool_is_a_clear_error_at_start(rig):
    cluster = rig("--cluster-subnet-size", "17")  # a /16 pool holds two /17s
    hosts = [cluster.add_host() for _ in range(3)]
    hosts[0].daemon.start()
    hosts[1].daemon.start()
    code, stderr = hosts[2].daemon.run_to_exit()
    assert code == 1
    assert stderr.strip() == (
        "dockernetd: cluster network 10.200.0.0/16 is full: every /17 of it is leased (2 hosts)"
    )


def test_a_lost_lease_is_taken_again_for_the_same_subnet(rig):
    """etcd away for longer than the TTL (here: the lease revoked, which deletes the key
    as its expiry would): the daemon leases the same subnet again under a new lease."""
    cluster = rig()
    a, b = cluster.add_host(), cluster.add_host()
    a.daemon.start()
    b.daemon.start()
    subnet = a.subnet()
    [(key, lease)] = [
        (k, v) for k, v in cluster.etcd_leases().items() if k.endswith(subnet.replace("/", "-"))
    ]
    wait_for(lambda: subnet in b.routes())
    cluster.revoke(lease)
    wait_for(lambda: key in cluster.etcd_leases() and cluster.etcd_leases()[key] != lease)
    assert a.subnet() == subnet
    assert "expired; leased again" in a.daemon.log()
    wait_for(lambda: subnet in b.routes())  # b saw it go and come back
    assert a.daemon.call("status")["cluster"]["state"] == "ok"


def test_a_restarted_host_deletes_the_routes_of_hosts_gone_meanwhile(rig):
    """Routes outlive the daemon (protocol 199): the next start finds them and deletes
    the ones whose host's lease went while it was down."""
    cluster = rig()
    a, b = cluster.add_host(), cluster.add_host()
    a.daemon.start()
    b.daemon.start()
    b_subnet = b.subnet()
    wait_for(lambda: b_subnet in a.routes())
    a.daemon.stop(signal.SIGKILL)
    b.daemon.stop(signal.SIGKILL)
    [b_lease] = [
        lease
        for key, lease in cluster.etcd_leases().items()
        if key.endswith(b_subnet.replace("/", "-"))
    ]
    cluster.revoke(b_lease)  # b's TTL ran out while a was down
    assert b_subnet in a.routes()  # left in the kernel by the daemon that made it
    a.daemon.start()
    wait_for(lambda: a.routes() == {})
