"""What every benchmark shares: statistics, the table row, namespaces, the daemon.

A :class:`Namespace` can also hand out a pyroute2 ``IPRoute`` bound inside it
(:meth:`Namespace.iproute`): the calling thread enters the namespace only for
as long as it takes to open the netlink socket, so the benchmark itself never
changes the host's network namespace.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dockernetd.client import Client  # noqa: E402

_CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02  # an address usable at once, as the daemon's plumbing adds it
_libc = ctypes.CDLL(None, use_errno=True)


def summary(samples_s: list[float]) -> dict[str, float]:
    """median, p90, p99, min, max in microseconds."""
    ordered = sorted(samples_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1e6

    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "min_us": ordered[0] * 1e6,
        "max_us": ordered[-1] * 1e6,
        "n": len(ordered),
    }


def row(name: str, s: dict[str, float], extra: str = "") -> str:
    return (
        f"  {name:<34} median {s['median_us']:9.1f} us  p90 {s['p90_us']:9.1f}  "
        f"p99 {s['p99_us']:9.1f}  min {s['min_us']:8.1f}  max {s['max_us']:9.1f}  {extra}"
    )


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


class Namespace:
    def __init__(self) -> None:
        self.name = f"dnd-bench-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def iproute(self) -> Any:
        """A pyroute2 IPRoute whose netlink socket lives in this namespace.

        Only the calling thread enters the namespace, and only while the socket
        is opened (pyroute2's own ``netns=`` costs ~15 ms a call here).
        """
        from pyroute2 import IPRoute

        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return IPRoute()
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def fd(self) -> int:
        """An open descriptor of the namespace (for IFLA_NET_NS_FD); the caller closes it."""
        return os.open(f"/run/netns/{self.name}", os.O_RDONLY)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Daemon:
    """dockernetd in its own namespace; stopped by PID."""

    def __init__(self, *flags: str, notify: str | None = None, ns: Namespace | None = None) -> None:
        self.ns = ns or Namespace()
        self.dir = tempfile.mkdtemp(prefix="dnd-bench-", dir="/dev/shm")  # tmpfs, as /run is
        self.socket = f"{self.dir}/d.sock"
        resolv = f"{self.dir}/resolv.conf"
        Path(resolv).write_text("nameserver 192.0.2.53\n")
        env = {
            **os.environ,
            "SETUPTOOLS_USE_DISTUTILS": "stdlib",  # as the unit sets it
            **({"NOTIFY_SOCKET": notify} if notify else {}),
        }
        self._command = [
            "ip",
            "netns",
            "exec",
            self.ns.name,
            sys.executable,
            "-m",
            "dockernetd",
            "--socket",
            self.socket,
            "--resolv-conf",
            resolv,
            "--state-dir",
            self.dir,
            *flags,
        ]
        self._env = env
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self._command, env=env, stderr=subprocess.DEVNULL)

    def restart_after_crash(self) -> float:
        """SIGKILL, then the same daemon again (same namespace, flags and state): seconds
        from its start to its first answer (it restores everything recorded first)."""
        self.proc.kill()
        self.proc.wait()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self._command, env=self._env, stderr=subprocess.DEVNULL)
        return self.wait_ready()

    def wait_ready(self) -> float:
        while True:
            try:
                with Client(self.socket) as c:
                    c.call("status")
                return time.monotonic() - self.started
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("dockernetd exited") from None
                time.sleep(0.002)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.ns.delete()
        subprocess.run(["rm", "-rf", self.dir], check=False)


def attach(
    host: Namespace,
    host_netlink: Any,
    bridge_index: int,
    container: Namespace,
    iface: dict[str, Any],
) -> str:
    """What a runtime does with allocate_interface's answer, over netlink.

    A veth pair, one end in the bridge, the other (eth0) in the container with
    the MAC, address, MTU and default route the daemon gave (for both families on a
    dual-stack network); the host end's name.
    """
    veth = f"v{uuid.uuid4().hex[:10]}"
    ns_fd = container.fd()
    try:
        host_netlink.link(
            "add", ifname=veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns_fd}
        )
    finally:
        os.close(ns_fd)
    index = host_netlink.link_lookup(ifname=veth)[0]
    host_netlink.link("set", index=index, master=bridge_index, state="up")
    with container.iproute() as inside:
        eth0 = inside.link_lookup(ifname="eth0")[0]
        inside.link("set", index=eth0, address=iface["mac_address"], mtu=iface["mtu"])
        inside.addr("add", index=eth0, address=iface["ip"], prefixlen=iface["prefix_len"])
        if "ipv6" in iface:
            inside.addr(
                "add",
                index=eth0,
                family=socket.AF_INET6,
                address=iface["ipv6"],
                prefixlen=iface["ipv6_prefix_len"],
                flags=IFA_F_NODAD,
            )
        inside.link("set", index=eth0, state="up")
        inside.route("add", dst="0.0.0.0/0", gateway=iface["gateway"])
        if "ipv6" in iface:
            inside.route("add", family=socket.AF_INET6, dst="::/0", gateway=iface["ipv6_gateway"])
    return veth


def map_ports(client: Client, container: str, count: int, first_port: int = 1) -> list[float]:
    """``count`` sequential allocate_port calls, each a different container port; times."""
    times = []
    for port in range(first_port, first_port + count):
        t = time.perf_counter()
        client.call("allocate_port", id=container, container_port=port)
        times.append(time.perf_counter() - t)
    return times
