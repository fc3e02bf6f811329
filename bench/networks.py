"""networks: what a network costs to create, and what many networks cost everyone else.

* ``network_create`` of 100 networks (subnets from a pool), each timed; baseline in
  the same run: the least any network needs, a bridge made, addressed and set up
  with iproute2's ``ip`` in the same kind of namespace.
* ``allocate_interface`` with one network holding 1,000 containers, and with 100
  networks of 10 containers each (the same 1,000 calls): the ratio says whether
  the number of networks costs an allocation anything.  The one-network daemon
  runs before and after the other, and counts both runs (the first run of a
  benchmark is the slower one on this machine, whichever it is).
* ``allocate_port``, 100 calls, with 1 network and with 100 networks (legacy
  iptables rewrites whole tables, and 100 networks' rules fill them).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from common import Daemon, Namespace, row, summary

from dockernetd.client import Client

POOL = ("--default-address-pool", "base=10.0.0.0/8,size=20")  # 4,094 addresses each
CONTAINERS = 1000


def fill(networks: int) -> dict[str, list[float]]:
    """A daemon with ``networks`` networks sharing 1,000 containers; the calls' times."""
    daemon = Daemon(*POOL)
    times: dict[str, list[float]] = {"create": [], "interface": [], "port": [], "delete": []}
    try:
        daemon.wait_ready()
        with Client(daemon.socket, timeout=120) as client:
            for n in range(networks):
                t = time.perf_counter()
                client.call("network_create", name=f"n{n}")
                times["create"].append(time.perf_counter() - t)
            for n in range(CONTAINERS):
                t = time.perf_counter()
                client.call("allocate_interface", id=f"c{n}", network=f"n{n % networks}")
                times["interface"].append(time.perf_counter() - t)
            for n in range(100):
                t = time.perf_counter()
                client.call("allocate_port", id=f"c{n}", container_port=80)
                times["port"].append(time.perf_counter() - t)
            for n in range(CONTAINERS):
                client.call("release_interface", id=f"c{n}")
            for n in range(networks):
                t = time.perf_counter()
                client.call("network_delete", name=f"n{n}")
                times["delete"].append(time.perf_counter() - t)
    finally:
        daemon.stop()
    return times


def bridges_with_ip(count: int) -> list[float]:
    """The baseline: each bridge made, addressed and set up by three ``ip`` commands."""
    ns = Namespace()
    times = []
    try:
        for n in range(count):
            name, address = f"base{n}", f"10.{n // 16}.{(n % 16) * 16}.1/20"
            t = time.perf_counter()
            for args in (
                ("link", "add", name, "type", "bridge"),
                ("addr", "add", address, "dev", name),
                ("link", "set", name, "up"),
            ):
                subprocess.run(["ip", "-n", ns.name, *args], check=True)
            times.append(time.perf_counter() - t)
    finally:
        ns.delete()
    return times


def bench_networks() -> dict[str, Any]:
    baseline = bridges_with_ip(100)
    # one network before and after the hundred: whichever runs first is slower here
    before, many, after = fill(1), fill(100), fill(1)
    one = {name: before[name] + after[name] for name in before}
    interface_ratio = statistics.median(many["interface"]) / statistics.median(one["interface"])
    port_ratio = statistics.median(many["port"]) / statistics.median(one["port"])
    create_ratio = statistics.median(many["create"]) / statistics.median(baseline)
    print("networks (100 networks from a pool; 1,000 containers over 1 or 100 networks)")
    print(row("ip link add + addr + up (baseline)", summary(baseline)))
    print(row("network_create", summary(many["create"]), f"ratio {create_ratio:.2f}"))
    print(row("network_delete (empty)", summary(many["delete"])))
    print(row("allocate_interface, 1 network", summary(one["interface"])))
    print(
        row(
            "allocate_interface, 100 networks",
            summary(many["interface"]),
            f"ratio {interface_ratio:.2f}",
        )
    )
    print(row("allocate_port, 1 network", summary(one["port"])))
    print(row("allocate_port, 100 networks", summary(many["port"]), f"ratio {port_ratio:.2f}"))
    return {
        "baseline_bridge": summary(baseline),
        "network_create": summary(many["create"]),
        "network_delete": summary(many["delete"]),
        "interface_1": summary(one["interface"]),
        "interface_100": summary(many["interface"]),
        "interface_ratio": interface_ratio,
        "port_1": summary(one["port"]),
        "port_100": summary(many["port"]),
        "port_ratio": port_ratio,
    }
