"""firewall: the two firewall backends side by side, in one run.

For each of ``--firewall-backend iptables`` and ``nftables``: 1,000 sequential
``allocate_port`` on one container (each a different port); at those 1,000, one
``allocate_port_range`` of 1,000 ports, with the proxy (what a user gets) and without
it (``proxy: false``: the firewall's transaction and the model, no sockets), and its
release; then enough mappings (ranges on other containers) to hold 10,000, and 100
more single calls: the cost of a call at 10,000 against its cost at 0; then a crash
(SIGKILL) and the start with 10,000 recorded mappings restored, to the first answer.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from common import ROOT, Daemon, Namespace, map_ports, row, summary

from dockernetd.client import Client

BACKENDS = ("iptables", "nftables")
BULK = 10_000
RANGE = 1_000


def timed(client: Client, method: str, **params: Any) -> float:
    t = time.perf_counter()
    client.call(method, **params)
    return time.perf_counter() - t


#: The nftables transaction of a range alone: its 1,000 mappings' rules applied and removed
#: by the firewall itself, in a namespace (no RPC, no model, no proxy).
TRANSACTION = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ipaddress import IPv4Address, IPv4Interface
from dockernetd.kernel.nftables import NftFirewall
from dockernetd.network import Endpoint, NetworkSpec, PortMapping
from dockernetd.rules import boot_plan, publish_rules
spec = NetworkSpec("bridge", "0" * 64, "docker0", IPv4Interface("172.17.42.1/16"), None,
                   False, True, True, 1500, IPv4Address("0.0.0.0"))
endpoint = Endpoint("c", "bridge", IPv4Address("172.17.0.2"), "02:42:ac:11:00:02")
rules = [r for n in range(1000) for r in publish_rules(
    "docker0", endpoint, PortMapping(IPv4Address("0.0.0.0"), 20000 + n, "tcp", 1 + n))]
firewall = NftFirewall()
firewall.setup(boot_plan(spec))
firewall.reconcile([])
t = time.perf_counter(); firewall.apply(insert=rules); add = time.perf_counter() - t
t = time.perf_counter(); firewall.apply(delete=rules); remove = time.perf_counter() - t
print(add, remove)
"""


def range_transaction() -> tuple[float, float]:
    """Seconds of the nftables transaction that publishes a 1,000-port range, and of the
    one that removes it."""
    ns = Namespace()
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", ns.name, sys.executable, "-c", TRANSACTION, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        ns.delete()
    add, remove = map(float, done.stdout.split())
    return add, remove


def one_backend(backend: str) -> dict[str, Any]:
    daemon = Daemon("--firewall-backend", backend)
    try:
        daemon.wait_ready()
        with Client(daemon.socket, timeout=600) as c:
            c.call("allocate_interface", id="one")
            first_1000 = map_ports(c, "one", 1000)
            c.call("allocate_interface", id="ranged")
            c.call("allocate_interface", id="kernel")
            with_proxy = timed(c, "allocate_port_range", id="ranged", container_port=1, count=RANGE)
            no_proxy = timed(
                c, "allocate_port_range", id="kernel", container_port=1, count=RANGE, proxy=False
            )
            release = timed(c, "release_interface", id="kernel")
            c.call("release_interface", id="ranged")
            held, n = 1000, 0
            while held < BULK - 100:  # to 10,000 mappings, ranges on other containers
                c.call("allocate_interface", id=f"bulk{n}")
                count = min(4000, BULK - 100 - held)
                c.call("allocate_port_range", id=f"bulk{n}", container_port=1, count=count)
                held, n = held + count, n + 1
            at_bulk = map_ports(c, "one", 100, first_port=1001)
        restart = daemon.restart_after_crash()
        with Client(daemon.socket) as c:
            mappings = c.call("status")["port_mappings"]
    finally:
        daemon.stop()
    return {
        "first_1000_total_s": sum(first_1000),
        "at_0": summary(first_1000[:100]),
        "at_10000": summary(at_bulk),
        "ratio": statistics.median(at_bulk) / statistics.median(first_1000[:100]),
        "range_1000_s": with_proxy,
        "range_1000_no_proxy_s": no_proxy,
        "range_release_s": release,
        "boot_with_mappings_s": restart,
        "mappings_restored": mappings,
    }


def bench_firewall() -> dict[str, Any]:
    results: dict[str, Any] = {backend: one_backend(backend) for backend in BACKENDS}
    add, remove = range_transaction()
    results["nftables"]["range_transaction_s"] = add
    results["nftables"]["range_release_transaction_s"] = remove
    print("firewall (both backends in this run; one container, then 10,000 mappings)")
    for backend, r in results.items():
        print(f" {backend}")
        print(row("allocate_port at 0 mappings", r["at_0"]))
        print(row("allocate_port at 10,000", r["at_10000"], f"ratio {r['ratio']:.2f}"))
        print(
            f"  1,000 sequential allocate_port {r['first_1000_total_s']:.2f} s; "
            f"a range of 1,000 {r['range_1000_s'] * 1e3:.0f} ms "
            f"({r['range_1000_no_proxy_s'] * 1e3:.0f} ms without the proxy), "
            f"its release {r['range_release_s'] * 1e3:.0f} ms; "
            f"start with {r['mappings_restored']:,} mappings to the first answer "
            f"{r['boot_with_mappings_s']:.2f} s"
        )
    nft = results["nftables"]
    print(
        f"  nftables: the range's transaction alone {nft['range_transaction_s'] * 1e3:.0f} ms, "
        f"its removal {nft['range_release_transaction_s'] * 1e3:.0f} ms"
    )
    return results
