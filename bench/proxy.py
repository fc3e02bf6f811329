"""proxy: the in-process userland proxy against a direct connection and socat.

One container serves a sink (TCP, counts what it got) and a one-shot echo.  From
the daemon's namespace the same client sends through three paths: straight to the
container, through the daemon's proxy (127.0.0.1:host port, which DNAT leaves to the
proxy) and through ``socat TCP-LISTEN,fork`` on the same path.  Then 1,000 more
ports are mapped and left idle, and the daemon's RSS is read.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import Daemon, Namespace, attach, rss_kib

from dockernetd.client import Client

TRAFFIC = str(Path(__file__).with_name("traffic.py"))
SINK, ECHO = 5000, 5001
MIB = 512
RUNS = 3
CONNECTIONS = 2000


def client(ns: Namespace, *args: object) -> float:
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, sys.executable, TRAFFIC, *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def socat(ns: Namespace, port: int, target: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns.name,
            "socat",
            f"TCP-LISTEN:{port},fork,reuseaddr,backlog=1024",
            f"TCP:{target}",
        ]
    )


def bench_proxy() -> dict[str, Any]:
    daemon = Daemon()
    container = Namespace()
    helpers: list[subprocess.Popen[Any]] = []
    out: dict[str, Any] = {}
    try:
        daemon.wait_ready()
        with Client(daemon.socket, timeout=120) as rpc, daemon.ns.iproute() as host:
            iface = rpc.call("allocate_interface", id="server")
            attach(daemon.ns, host, host.link_lookup(ifname="docker0")[0], container, iface)
            server = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    container.name,
                    sys.executable,
                    TRAFFIC,
                    "serve",
                    str(SINK),
                    str(ECHO),
                ],
                stdout=subprocess.PIPE,
            )
            helpers.append(server)
            assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
            proxied = {
                port: rpc.call("allocate_port", id="server", container_port=port)["host_port"]
                for port in (SINK, ECHO)
            }
            helpers += [
                socat(daemon.ns, 7000 + port - SINK, f"{iface['ip']}:{port}")
                for port in (SINK, ECHO)
            ]
            paths = {
                "direct": (iface["ip"], SINK, ECHO),
                "dockernetd proxy": ("127.0.0.1", proxied[SINK], proxied[ECHO]),
                "socat": ("127.0.0.1", 7000, 7001),
            }
            for name, (address, sink, echo) in paths.items():
                seconds = statistics.median(
                    client(daemon.ns, "throughput", address, sink, MIB) for _ in range(RUNS)
                )
                rate = CONNECTIONS / client(daemon.ns, "connections", address, echo, CONNECTIONS)
                out[name] = {"mib_per_s": MIB / seconds, "connections_per_s": rate}
            for port in range(6000, 7000):
                rpc.call("allocate_port", id="server", container_port=port)
            out["rss_mib_1002_idle_ports"] = rss_kib(daemon.proc.pid) / 1024
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait()
        daemon.stop()
        container.delete()
    socat_rate = out["socat"]
    print(f"proxy (TCP through each path, {MIB} MiB x {RUNS}, {CONNECTIONS} connections)")
    for name in ("direct", "dockernetd proxy", "socat"):
        result = out[name]
        print(
            f"  {name:<18} {result['mib_per_s']:8.0f} MiB/s "
            f"({result['mib_per_s'] / socat_rate['mib_per_s']:.0%} of socat)  "
            f"{result['connections_per_s']:7.0f} conn/s "
            f"({result['connections_per_s'] / socat_rate['connections_per_s']:.0%} of socat)"
        )
    print(f"  daemon RSS with 1,002 mapped idle ports: {out['rss_mib_1002_idle_ports']:.0f} MiB")
    return out
