"""cluster: what a cluster store costs a start, and how fast routes follow leases.

* start to the first answer, without ``--cluster-store`` and with it (etcd in the
  daemon's own namespace, on 127.0.0.1): the lease is taken before READY;
* a new host's lease (a key the benchmark writes into etcd, as a daemon does) to its
  route on two running hosts;
* 100 hosts' leases in etcd (written by the benchmark) and a daemon started: to its
  first answer, and to all 100 routes programmed.

The hosts share one L2 segment: a bridge in a namespace of its own, where etcd runs.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from common import Daemon, Namespace

RUNS = 5
POOL = "10.200.0.0/16"
FAKE_HOSTS = 100

#: Writes leases as a daemon would (cluster.HostLease's value, bound to one etcd lease),
#: run inside the switch's namespace: ``python - URL FIRST_HOST COUNT``.
WRITE_LEASES = """
import base64, json, sys, time, urllib.request
from ipaddress import IPv4Network
url, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def post(path, body):
    return json.loads(urllib.request.urlopen(url + "/v3/" + path, json.dumps(body).encode()).read())
b64 = lambda text: base64.b64encode(text.encode()).decode()
lease = post("lease/grant", {"TTL": 600})["ID"]
hosts = iter(range(first, first + count))
host = next(hosts)
for subnet in reversed(list(IPv4Network("10.200.0.0/16").subnets(new_prefix=24))):
    value = {"advertise": f"10.99.0.{host}", "subnet": str(subnet), "since": time.time()}
    key = b64(f"/dockernetd/cluster/10.200.0.0-16/subnets/{subnet.network_address}-24")
    put = {"request_put": {"key": key, "value": b64(json.dumps(value)), "lease": lease}}
    compare = [{"key": key, "target": "CREATE", "create_revision": "0"}]
    if post("kv/txn", {"compare": compare, "success": [put]}).get("succeeded"):
        host = next(hosts, None)  # a subnet held already (by a real host) is skipped
        if host is None:
            break
print(time.monotonic())
"""


def ns_run(ns: Namespace, *cmd: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *cmd], capture_output=True, text=True, check=True, **kwargs
    )


class Etcd:
    def __init__(self, ns: Namespace, address: str) -> None:
        self.ns = ns
        self.url = f"http://{address}:2379"
        self.data = tempfile.mkdtemp(prefix="dnd-bench-etcd-", dir="/dev/shm")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "etcd", "--data-dir", self.data,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", "http://127.0.0.1:2380"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while "true" not in self._health():
            if time.monotonic() > deadline:
                raise RuntimeError("etcd did not start")
            time.sleep(0.1)

    def _health(self) -> str:
        probe = f"import urllib.request; print(urllib.request.urlopen('{self.url}/health').read())"
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns.name, sys.executable, "-c", probe],
            capture_output=True,
            text=True,
        )
        return done.stdout

    def write_leases(self, first: int, count: int) -> float:
        """Lease ``count`` subnets to fake hosts 10.99.0.<first>…; the monotonic time the
        last key was written."""
        done = ns_run(self.ns, sys.executable, "-c", WRITE_LEASES, self.url, str(first), str(count))
        return float(done.stdout)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def cluster_flags(etcd: Etcd, advertise: str) -> tuple[str, ...]:
    return (
        "--iptables=false",
        "--icc=true",
        "--cluster-store",
        etcd.url.replace("http://", "etcd://"),
        "--cluster-advertise",
        advertise,
        "--cluster-network",
        POOL,
    )


def start_times() -> tuple[list[float], list[float]]:
    """Seconds from start to the first answer, without a cluster store and with one."""
    plain, clustered = [], []
    for _ in range(RUNS):
        daemon = Daemon("--iptables=false", "--icc=true")
        try:
            plain.append(daemon.wait_ready())
        finally:
            daemon.stop()
        ns = Namespace()  # deleted by the daemon's stop
        etcd = Etcd(ns, "127.0.0.1")
        daemon = Daemon(*cluster_flags(etcd, "127.0.0.1"), ns=ns)
        try:
            clustered.append(daemon.wait_ready())
        finally:
            daemon.stop()
            etcd.stop()
    return plain, clustered


class Segment:
    """A bridge in a namespace of its own, with etcd on 10.99.0.1, and hosts wired to it."""

    def __init__(self) -> None:
        self.switch = Namespace()
        for args in (
            ("link", "add", "seg0", "type", "bridge"),
            ("addr", "add", "10.99.0.1/24", "dev", "seg0"),
            ("link", "set", "seg0", "up"),
        ):
            subprocess.run(["ip", "-n", self.switch.name, *args], check=True)
        self.etcd = Etcd(self.switch, "10.99.0.1")
        self.hosts: list[Daemon] = []

    def start_host(self, number: int) -> Daemon:
        ns = Namespace()
        address = f"10.99.0.{number}"
        port, switch = f"p{number}-{ns.name[-6:]}", self.switch.name
        for args in (
            ("link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", switch),
            ("addr", "add", f"{address}/24", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
        ):
            subprocess.run(["ip", "-n", ns.name, *args], check=True)
        subprocess.run(
            ["ip", "-n", self.switch.name, "link", "set", port, "master", "seg0", "up"], check=True
        )
        daemon = Daemon(*cluster_flags(self.etcd, address), ns=ns)
        self.hosts.append(daemon)
        return daemon

    def close(self) -> None:
        for daemon in self.hosts:
            daemon.stop()
        self.etcd.stop()
        self.switch.delete()


def routes(daemon: Daemon) -> int:
    listed = ns_run(daemon.ns, "ip", "route", "show", "proto", "199").stdout
    return len(listed.splitlines())


def wait_routes(daemons: list[Daemon], count: int, timeout: float = 30) -> float:
    """The monotonic time at which every one of ``daemons`` has ``count`` routes."""
    deadline = time.monotonic() + timeout
    while not all(routes(d) == count for d in daemons):
        if time.monotonic() > deadline:
            raise RuntimeError(f"routes did not reach {count}")
        time.sleep(0.005)
    return time.monotonic()


def route_latency() -> tuple[list[float], float, float]:
    """Seconds from a new lease to its route on two running hosts (RUNS leases); then a
    daemon started with 100 more leases in etcd: seconds to its first answer and to
    all its routes."""
    segment = Segment()
    try:
        running = [segment.start_host(2), segment.start_host(3)]
        for daemon in running:
            daemon.wait_ready()
        wait_routes(running, 1)
        latencies = []
        for n in range(RUNS):
            leased = segment.etcd.write_leases(10 + n, 1)
            latencies.append(wait_routes(running, 2 + n) - leased)
        segment.etcd.write_leases(100, FAKE_HOSTS)
        expected = 2 + RUNS + FAKE_HOSTS  # every host but itself
        late = segment.start_host(4)
        to_answer = late.wait_ready()
        to_routes = wait_routes([late], expected) - late.started
    finally:
        segment.close()
    return latencies, to_answer, to_routes


def bench_cluster() -> dict[str, Any]:
    plain, clustered = start_times()
    latencies, to_answer, to_routes = route_latency()
    plain_ms, cluster_ms = statistics.median(plain) * 1e3, statistics.median(clustered) * 1e3
    lease_ms, others = statistics.median(latencies) * 1e3, FAKE_HOSTS + RUNS + 2
    print(f"cluster (etcd {RUNS} starts each; routes on one L2 segment)")
    print(
        f"  start to first answer: without --cluster-store {plain_ms:.0f} ms, with it (etcd "
        f"local) {cluster_ms:.0f} ms: +{cluster_ms - plain_ms:.0f} ms"
    )
    print(
        f"  a new host's lease to its route on 2 hosts: median {lease_ms:.0f} ms, "
        f"max {max(latencies) * 1e3:.0f} ms"
    )
    print(
        f"  start with {others} other hosts' leases: first answer {to_answer:.2f} s, every "
        f"route {to_routes:.2f} s after the start ({to_routes - to_answer:.2f} s after the answer)"
    )
    return {
        "start_plain_s": plain,
        "start_cluster_s": clustered,
        "start_extra_s": (cluster_ms - plain_ms) / 1e3,
        "lease_to_route_s": latencies,
        "many_hosts_first_answer_s": to_answer,
        "many_hosts_all_routes_s": to_routes,
    }
