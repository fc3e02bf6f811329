"""containers: the setup workload dockerd, CNI and netavark were measured on.

For each of N "containers" (namespaces made beforehand, as a runtime has the
namespace before it calls the network side): allocate_interface, a veth pair into
the bridge configured with the answer, one allocate_port; then the teardown:
release_interface and the veth deleted.  Timed per container, as the peers were.
"""

from __future__ import annotations

import time
from typing import Any

from common import Daemon, Namespace, attach, row, summary

from dockernetd.client import Client

#: The kernel frees a round's 200 namespaces after it (a work queue): before a round of a
#: pair, a pause, so that it does not pay for the round before.
SETTLE_S = 5.0
#: A B B A cycles of each dual-stack pair: this VM's rounds vary by a fifth among themselves.
PAIR_CYCLES = 2


def run_round(count: int, *flags: str) -> dict[str, Any]:
    daemon = Daemon(*flags)
    containers = [Namespace() for _ in range(count)]
    setup, release, teardown = [], [], []
    try:
        daemon.wait_ready()
        with Client(daemon.socket) as client, daemon.ns.iproute() as host:
            bridge = host.link_lookup(ifname="docker0")[0]
            veths = []
            for n, container in enumerate(containers):
                t = time.perf_counter()
                iface = client.call("allocate_interface", id=f"c{n}")
                veths.append(attach(daemon.ns, host, bridge, container, iface))
                client.call("allocate_port", id=f"c{n}", container_port=80)
                setup.append(time.perf_counter() - t)
            for n, veth in enumerate(veths):
                t = time.perf_counter()
                client.call("release_interface", id=f"c{n}")
                release.append(time.perf_counter() - t)
                host.link("del", ifname=veth)  # the kernel's RCU grace periods: ~20 ms here
                teardown.append(time.perf_counter() - t)
    finally:
        daemon.stop()
        for container in containers:
            container.delete()
    return {"setup": summary(setup), "release": summary(release), "teardown": summary(teardown)}


def bench_containers() -> dict[str, Any]:
    out = {f"n_{count}": run_round(count) for count in (50, 200)}
    # the same without Docker 28's direct-access guard (one raw-table rule per container)
    out["n_200_direct_routing"] = run_round(200, "--allow-direct-routing")
    # dual stack (both addresses configured, the IPv6 DNAT and accept too) against IPv4
    # alone, for each backend: rounds in the order A B B A, so that a drift of the machine
    # over the minutes weighs on both sides alike; the ratio of the rounds' mean medians
    dual_stack = ("--ipv6", "--fixed-cidr-v6", "fd00:be:1::/64")
    for backend in ("iptables", "nftables"):
        flags = ("--firewall-backend", backend)
        ipv4: list[float] = []
        dual: list[float] = []
        for extra in ((), dual_stack, dual_stack, ()) * PAIR_CYCLES:
            time.sleep(SETTLE_S)
            median = run_round(200, *flags, *extra)["setup"]["median_us"]
            (dual if extra else ipv4).append(median)
        out[f"dual_stack_{backend}"] = {
            "ipv4_median_us": ipv4,
            "dual_median_us": dual,
            "ratio": sum(dual) / sum(ipv4),
        }
    print("containers (allocate_interface + veth into the bridge + one allocate_port; teardown)")
    for count in (50, 200):
        result = out[f"n_{count}"]
        print(row(f"setup, N={count}", result["setup"], "(netavark 79 ms, CNI 146 ms at N=200)"))
        print(row("  of which release_interface", result["release"]))
        print(row(f"teardown with veth delete, N={count}", result["teardown"], "(CNI DEL 238 ms)"))
    unguarded = out["n_200_direct_routing"]
    guard_cost = out["n_200"]["setup"]["median_us"] / unguarded["setup"]["median_us"]
    print(
        row(
            "setup, N=200, no direct-access guard",
            unguarded["setup"],
            f"guarded/this {guard_cost:.2f}",
        )
    )
    for backend in ("iptables", "nftables"):
        pair = out[f"dual_stack_{backend}"]
        ipv4_ms, dual_ms = (
            " / ".join(f"{v / 1000:.1f}" for v in pair[k])
            for k in ("ipv4_median_us", "dual_median_us")
        )
        print(
            f"  setup p50, {backend}: IPv4 only {ipv4_ms} ms, dual stack {dual_ms} ms "
            f"(rounds A B B A x {PAIR_CYCLES}): ratio {pair['ratio']:.2f}"
        )
    return out
