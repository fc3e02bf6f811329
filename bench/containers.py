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
    # dual stack (both addresses configured, the IPv6 guard, DNAT and accept too) against
    # IPv4 alone, measured one after the other for each backend
    for backend in ("iptables", "nftables"):
        plain = run_round(200, "--firewall-backend", backend)
        dual = run_round(
            200, "--firewall-backend", backend, "--ipv6", "--fixed-cidr-v6", "fd00:be:1::/64"
        )
        out[f"dual_stack_{backend}"] = {
            "ipv4": plain,
            "dual": dual,
            "ratio": dual["setup"]["median_us"] / plain["setup"]["median_us"],
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
        print(row(f"  {backend}: IPv4 only", pair["ipv4"]["setup"]))
        print(row(f"  {backend}: dual stack", pair["dual"]["setup"], f"ratio {pair['ratio']:.2f}"))
    return out
