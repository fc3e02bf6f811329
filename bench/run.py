"""dockernetd benchmarks: ``make bench`` (as root: each daemon runs in a throwaway namespace).

Every figure that depends on the machine's speed is printed next to a baseline
measured in the same run, as a ratio.  Benchmarks never fail on a number; they
print a table and write ``bench/results/<name>.json``.

    python bench/run.py [allocator] [rpc] [ports] [containers] [proxy] [boot] [networks] [cni]
        [firewall] [cluster]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import Any

from cni import bench_cni
from common import ROOT, Daemon, map_ports, row, rss_kib, summary
from containers import bench_containers
from firewall import bench_firewall
from networks import bench_networks
from proxy import bench_proxy

from dockernetd.client import Client, RpcError
from dockernetd.ipam import IpAllocator

from cluster import bench_cluster

RESULTS = ROOT / "bench" / "results"


# -- allocator ---------------------------------------------------------------------------


def slices(times: list[float]) -> tuple[dict[str, float], dict[str, float]]:
    """The first and the last 1 % of a run of calls."""
    size = max(1, len(times) // 100)
    return summary(times[:size]), summary(times[-size:])


def bench_allocator() -> dict[str, Any]:
    daemon = Daemon("--iptables=false")  # allocate_interface touches no rule
    try:
        daemon.wait_ready()
        rpc_times: list[float] = []
        with Client(daemon.socket) as c:
            while True:
                t = time.perf_counter()
                try:
                    c.call("allocate_interface", id=f"c{len(rpc_times)}")
                except RpcError as exc:
                    if exc.code != 1003:  # no_available_ips: the /16 is full
                        raise
                    break
                rpc_times.append(time.perf_counter() - t)
    finally:
        daemon.stop()
    rpc_first, rpc_last = slices(rpc_times)
    first, last = fill_in_process("10.0.0.1/16")
    t = time.perf_counter()
    first8, last8 = fill_in_process("10.0.0.1/8")
    slash8_time = time.perf_counter() - t
    tracemalloc.start()
    pool = IpAllocator(IPv4Interface("10.0.0.1/8"))
    pool.request()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"allocator (every address of the bridge's /16: {len(rpc_times)} allocate_interface)")
    print(row("RPC, first 1 %", rpc_first))
    print(row("RPC, last 1 %", rpc_last, f"ratio {ratio(rpc_last, rpc_first):.2f}"))
    print(row("in-process /16, first 1 %", first))
    print(row("in-process /16, last 1 %", last, f"ratio {ratio(last, first):.2f}"))
    print(row("in-process /8, first 1 %", first8))
    print(row("in-process /8, last 1 %", last8, f"ratio {ratio(last8, first8):.2f}"))
    print(
        f"  /8 pool: {peak / 2**20:.2f} MiB traced peak; "
        f"all {pool.capacity:,} addresses in {slash8_time:.0f} s"
    )
    return {
        "rpc_addresses": len(rpc_times),
        "rpc_first_1pct": rpc_first,
        "rpc_last_1pct": rpc_last,
        "rpc_ratio_last_first": ratio(rpc_last, rpc_first),
        "first_1pct": first,
        "last_1pct": last,
        "ratio_last_first": ratio(last, first),
        "slash8_first_1pct": first8,
        "slash8_last_1pct": last8,
        "slash8_ratio_last_first": ratio(last8, first8),
        "slash8_fill_s": slash8_time,
        "slash8_peak_mib": peak / 2**20,
    }


def fill_in_process(cidr: str) -> tuple[dict[str, float], dict[str, float]]:
    """Allocate every address of ``cidr``; the first and last 1 % of the calls, timed."""
    ips = IpAllocator(IPv4Interface(cidr))
    size = max(1, ips.capacity // 100)
    first, last = [], []
    for _ in range(size):
        t = time.perf_counter()
        ips.request()
        first.append(time.perf_counter() - t)
    for _ in range(ips.capacity - 2 * size):
        ips.request()
    for _ in range(size):
        t = time.perf_counter()
        ips.request()
        last.append(time.perf_counter() - t)
    return summary(first), summary(last)


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["median_us"] / b["median_us"]


# -- rpc ---------------------------------------------------------------------------------

ECHO_SERVER = r"""
import socket, sys, trio
async def handle(stream):
    buf = b""
    async with stream:
        while data := await stream.receive_some(65536):
            buf += data
            out = []
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.append(line + b"\n")
            if out:
                await stream.send_all(b"".join(out))
async def main(path):
    s = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await s.bind(path); s.listen(128)
    await trio.serve_listeners(handle, [trio.SocketListener(s)])
trio.run(main, sys.argv[1])
"""


def in_threads(work: Callable[[int], None], count: int) -> float:
    """Run ``work(0)`` .. ``work(count - 1)`` in as many threads; the seconds until all end."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def round_trips(path: str, line: bytes, clients: int, per_client: int) -> tuple[list[float], float]:
    samples: list[float] = []
    lock = threading.Lock()

    def client(_: int) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        reader = s.makefile("rb")
        mine = []
        for _ in range(per_client):
            t = time.perf_counter()
            s.sendall(line)
            reader.readline()
            mine.append(time.perf_counter() - t)
        s.close()
        with lock:
            samples.extend(mine)

    return samples, in_threads(client, clients)


def allocate_release_pairs(path: str, clients: int, per_client: int) -> tuple[list[float], float]:
    """allocate_interface + release_interface of a fresh id, from ``clients`` threads."""
    samples: list[float] = []

    def client(n: int) -> None:
        with Client(path) as c:
            for k in range(per_client):
                t = time.perf_counter()
                c.call("allocate_interface", id=f"p{n}-{k}")
                c.call("release_interface", id=f"p{n}-{k}")
                samples.append(time.perf_counter() - t)

    return samples, in_threads(client, clients)


SCRAPER = """
import sys, time, urllib.request
while True:
    urllib.request.urlopen("http://127.0.0.1:9323/metrics").read()
    time.sleep(float(sys.argv[1]))
"""


def compare_with_metrics(plain: Daemon, status: bytes) -> dict[str, Any]:
    """status on a daemon without metrics vs one with --metrics-addr scraped 5 times a second."""
    metered = Daemon("--iptables=false", "--icc=true", "--metrics-addr", "127.0.0.1:9323")
    out: dict[str, Any] = {}
    scraper = None
    try:
        metered.wait_ready()
        scraper = subprocess.Popen(
            ["ip", "netns", "exec", metered.ns.name, sys.executable, "-c", SCRAPER, "0.2"]
        )
        print("rpc with metrics (same run; --metrics-addr, scraped every 0.2 s)")
        for clients, per in ((1, 3000), (16, 500)):
            rates = {}
            for name, daemon in (("without", plain), ("with", metered)):
                samples, wall = round_trips(daemon.socket, status, clients, per)
                rates[name] = len(samples) / wall
                out[f"{name}_{clients}"] = summary(samples)
                print(
                    row(
                        f"status {name} metrics, {clients} client(s)",
                        summary(samples),
                        f"{rates[name]:8.0f} req/s",
                    )
                )
            out[f"ratio_{clients}"] = rates["with"] / rates["without"]
            print(f"  with/without, {clients} client(s): {out[f'ratio_{clients}']:.2f}")
    finally:
        if scraper is not None:
            scraper.kill()
            scraper.wait()
        metered.stop()
    return out


def bench_rpc() -> dict[str, Any]:
    status = b'{"jsonrpc":"2.0","method":"status","id":1}\n'
    workdir = tempfile.mkdtemp(prefix="dnd-bench-")
    echo_path = f"{workdir}/echo.sock"
    echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, echo_path])
    daemon = Daemon("--iptables=false", "--icc=true")
    out: dict[str, Any] = {}
    try:
        daemon.wait_ready()
        while not os.path.exists(echo_path):
            time.sleep(0.01)
        print("rpc (status round trip; baseline: raw trio newline echo, same framing)")
        for clients, per in ((1, 3000), (16, 500)):
            base, base_wall = round_trips(echo_path, status, clients, per)
            ours, ours_wall = round_trips(daemon.socket, status, clients, per)
            base_rate, our_rate = len(base) / base_wall, len(ours) / ours_wall
            print(row(f"echo floor, {clients} client(s)", summary(base), f"{base_rate:8.0f} req/s"))
            print(
                row(
                    f"dockernetd status, {clients} client(s)",
                    summary(ours),
                    f"{our_rate:8.0f} req/s = {our_rate / base_rate:.0%} of the floor",
                )
            )
            out[f"clients_{clients}"] = {
                "floor": summary(base),
                "floor_rps": base_rate,
                "status": summary(ours),
                "status_rps": our_rate,
                "ratio": our_rate / base_rate,
            }
        out["metrics"] = compare_with_metrics(daemon, status)
        for clients, per in ((1, 1000), (16, 100)):
            samples, wall = allocate_release_pairs(daemon.socket, clients, per)
            print(
                row(
                    f"allocate+release pair, {clients} client(s)",
                    summary(samples),
                    f"{len(samples) / wall:8.0f} pairs/s",
                )
            )
            out[f"allocate_release_pair_{clients}"] = summary(samples)
    finally:
        daemon.stop()
        echo.kill()
        echo.wait()
        subprocess.run(["rm", "-rf", workdir], check=False)
    return out


# -- ports -------------------------------------------------------------------------------


def map_ports_concurrently(path: str, clients: int, total: int) -> float:
    """``total`` allocate_port calls from ``clients`` threads, each its own container."""

    def client(n: int) -> None:
        with Client(path, timeout=120) as c:
            map_ports(c, f"busy{n}", total // clients)

    with Client(path) as c:
        for n in range(clients):
            c.call("allocate_interface", id=f"busy{n}")
    elapsed = in_threads(client, clients)
    with Client(path, timeout=120) as c:
        for n in range(clients):
            c.call("release_interface", id=f"busy{n}")
    return elapsed


def bench_ports() -> dict[str, Any]:
    daemon = Daemon()
    try:
        daemon.wait_ready()
        with Client(daemon.socket, timeout=120) as c:
            c.call("allocate_interface", id="many")
            t0 = time.perf_counter()
            times = map_ports(c, "many", 1000)
            total = time.perf_counter() - t0
            rss = rss_kib(daemon.proc.pid)
            t = time.perf_counter()
            c.call("release_interface", id="many")
            release = time.perf_counter() - t
            c.call("allocate_interface", id="many")
            map_ports(c, "many", 5000)
            at_5000 = map_ports(c, "many", 100, first_port=5001)
            c.call("release_interface", id="many")
        concurrent = map_ports_concurrently(daemon.socket, 16, 1000)
        with Client(daemon.socket, timeout=120) as c:
            c.call("allocate_interface", id="ranged")
            t = time.perf_counter()
            c.call("allocate_port_range", id="ranged", container_port=1, count=1000)
            one_range = time.perf_counter() - t
            t = time.perf_counter()
            c.call("release_interface", id="ranged")
            range_release = time.perf_counter() - t
    finally:
        daemon.stop()
    first = statistics.median(times[:100])
    print("ports (sequential allocate_port on one container, each a different port; iptables on)")
    print(row("first 100 calls (0+ mappings)", summary(times[:100])))
    print(
        row(
            "last 100 calls (900+ mappings)",
            summary(times[-100:]),
            f"ratio {statistics.median(times[-100:]) / first:.2f}",
        )
    )
    print(
        row(
            "100 calls at 5,000 mappings",
            summary(at_5000),
            f"ratio {statistics.median(at_5000) / first:.2f}",
        )
    )
    print(
        f"  total {total:.2f} s for 1,000 mappings; release of all {release:.2f} s; "
        f"daemon RSS with 1,000 mapped ports {rss / 1024:.0f} MiB"
    )
    print(
        f"  16 clients, 16 containers, 1,000 allocate_port in all: {concurrent:.2f} s "
        f"({total / concurrent:.1f}x the sequential rate: group commit)"
    )
    print(
        f"  one allocate_port_range of 1,000 ports: {one_range:.2f} s "
        f"({total / one_range:.1f}x faster than 1,000 calls); its release {range_release:.2f} s"
    )
    return {
        "range_1000_s": one_range,
        "range_1000_release_s": range_release,
        "concurrent_16_total_s": concurrent,
        "first_100": summary(times[:100]),
        "last_100": summary(times[-100:]),
        "at_5000": summary(at_5000),
        "total_s": total,
        "release_all_s": release,
        "rss_mib": rss / 1024,
    }


# -- boot --------------------------------------------------------------------------------


def bench_boot(runs: int = 10) -> dict[str, Any]:
    to_ready, to_rpc = [], []
    for _ in range(runs):
        workdir = tempfile.mkdtemp(prefix="dnd-bench-")
        path = f"{workdir}/notify"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(path)
        listener.settimeout(30)
        daemon = Daemon(notify=path)
        try:
            while b"READY=1" not in listener.recv(4096):
                pass
            to_ready.append(time.monotonic() - daemon.started)
            to_rpc.append(daemon.wait_ready())
        finally:
            daemon.stop()
            listener.close()
            subprocess.run(["rm", "-rf", workdir], check=False)
    interpreter = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter.append(time.monotonic() - t)
    print(f"boot (process start to READY=1, cold, {runs} runs; baseline: bare interpreter)")
    print(row("bare python -c pass", summary(interpreter)))
    print(row("start to READY=1", summary(to_ready)))
    print(row("start to first answered RPC", summary(to_rpc)))
    return {
        "interpreter": summary(interpreter),
        "ready": summary(to_ready),
        "first_rpc": summary(to_rpc),
    }


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "allocator": bench_allocator,
    "rpc": bench_rpc,
    "ports": bench_ports,
    "containers": bench_containers,
    "proxy": bench_proxy,
    "boot": bench_boot,
    "networks": bench_networks,
    "cni": bench_cni,
    "firewall": bench_firewall,
    "cluster": bench_cluster,
}


def main(names: list[str]) -> int:
    if os.geteuid() != 0 and set(names or BENCHMARKS) - {"allocator"}:
        print("bench: needs root for the daemon's throwaway namespaces", file=sys.stderr)
        return 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names or list(BENCHMARKS):
        result = BENCHMARKS[name]()
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
