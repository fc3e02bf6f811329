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
import time
from typing import Any

from common import Daemon, row, summary

from dockernetd.client import Client

BACKENDS = ("iptables", "nftables")
BULK = 10_000
RANGE = 1_000


def single_calls(client: Client, container: str, first: int, count: int) -> list[float]:
    times = []
    for port in range(first, first + count):
        t = time.perf_counter()
        client.call("allocate_port", id=container, container_port=port)
        times.append(time.perf_counter() - t)
    return times


def timed(client: Client, method: str, **params: Any) -> float:
    t = time.perf_counter()
    client.call(method, **params)
    return time.perf_counter() - t


def one_backend(backend: str) -> dict[str, Any]:
    daemon = Daemon("--firewall-backend", backend)
    try:
        daemon.wait_ready()
        with Client(daemon.socket, timeout=600) as c:
            c.call("allocate_interface", id="one")
            first_1000 = single_calls(c, "one", 1, 1000)
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
            at_bulk = single_calls(c, "one", 1001, 100)
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
    results = {backend: one_backend(backend) for backend in BACKENDS}
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
    return results
