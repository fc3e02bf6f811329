"""Throwaway network namespaces and a daemon running in one, for the integration tests.

Every namespace is made with ``ip netns add`` and deleted by the fixture that made
it; every daemon is a child process stopped by PID.  Nothing here touches the
network namespace the tests run in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockernetd.client import Client

STARTUP_TIMEOUT = 20.0
HERE = Path(__file__).resolve().parent


def run(*cmd: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


class Netns:
    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}-{os.getpid() % 100000}-{uuid.uuid4().hex[:6]}"
        run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.name, *args, check=check)

    def ip_json(self, *args: str) -> Any:
        return json.loads(self.ip("-j", *args).stdout or "[]")

    def exec(
        self, *cmd: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.name, *cmd, check=check, timeout=timeout)

    def popen(self, *cmd: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kwargs)

    def ipv4_addresses(self, dev: str) -> list[str]:
        links = self.ip_json("addr", "show", "dev", dev)
        return [
            f"{a['local']}/{a['prefixlen']}" for a in links[0]["addr_info"] if a["family"] == "inet"
        ]

    def link(self, dev: str) -> dict[str, Any] | None:
        found = self.ip("-j", "link", "show", "dev", dev, check=False)
        return json.loads(found.stdout)[0] if found.returncode == 0 else None

    def sysctl(self, path: str) -> str:
        return self.exec("cat", f"/proc/sys/{path}").stdout.strip()

    def delete(self) -> None:
        run("ip", "netns", "del", self.name, check=False)


class Daemon:
    """One dockernetd process in a namespace, with its socket and log in a temp dir."""

    def __init__(
        self, ns: Netns, workdir: Path, args: tuple[str, ...], resolv_conf: Path, socket: str | None
    ) -> None:
        self.ns = ns
        self.socket = socket or str(workdir / f"dockernetd-{uuid.uuid4().hex[:6]}.sock")
        self.log_path = workdir / f"dockernetd-{uuid.uuid4().hex[:6]}.log"
        self.state_dir = str(workdir / "state")  # shared by the daemons of one test: restarts
        self.args = (
            "--socket",
            self.socket,
            "--resolv-conf",
            str(resolv_conf),
            "--state-dir",
            self.state_dir,
            *args,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[str, ...]:
        return (sys.executable, "-m", "dockernetd", *self.args)

    def start(self) -> Daemon:
        with open(self.log_path, "ab") as log:
            self.proc = self.ns.popen(*self.command(), stdout=log, stderr=log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockernetd exited {self.proc.returncode}:\n{self.log()}")
            try:
                with self.client() as c:
                    c.call("status")
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"dockernetd did not answer in {STARTUP_TIMEOUT}s:\n{self.log()}")

    def run_to_exit(self, timeout: float = STARTUP_TIMEOUT) -> tuple[int, str]:
        """Run a daemon expected to refuse to start: its exit code and stderr."""
        result = self.ns.exec(*self.command(), check=False, timeout=timeout)
        return result.returncode, result.stderr

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def call(self, method: str, **params: Any) -> Any:
        with self.client() as c:
            return c.call(method, **params)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``check()`` holds (it must, within ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{check} did not hold in {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


#: Runs a test once with each firewall backend (the conftest fixture firewall_backend).
both_backends = pytest.mark.parametrize("firewall_backend", ["iptables", "nftables"], indirect=True)


def nft_elements(ns: Netns, name: str) -> list[tuple[str, ...]]:
    """The elements of a set or map of the nftables backend's table, sorted; a map's
    element is its key's atoms and then its value's."""
    from dockernetd.kernel.nftables import SETS, element_of

    kind = "map" if SETS[name][1] else "set"
    listed = json.loads(ns.exec("nft", "-j", "list", kind, "inet", "dockernetd", name).stdout)
    [body] = [entry[kind] for entry in listed["nftables"] if kind in entry]
    elements = (element_of(name, raw) for raw in body.get("elem", []))
    return sorted(element.key + element.value for element in elements)


#: The "outside" machine (the ``outside`` fixture) and the host's address on their link.
HOST_UPLINK = "192.0.2.1"
OUTSIDE = "192.0.2.2"


def wire_outside(host: Netns, outside: Netns) -> None:
    """An uplink up0 from the host to a machine on 192.0.2.0/24 that has no route to any
    bridge network: it reaches containers only through DNAT, they it only through
    masquerade."""
    host.ip("link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside.name)
    host.ip("addr", "add", f"{HOST_UPLINK}/24", "dev", "up0")
    host.ip("link", "set", "up0", "up")
    outside.ip("addr", "add", f"{OUTSIDE}/24", "dev", "eth0")
    outside.ip("link", "set", "eth0", "up")


def attach_container(
    host: Netns, container: Netns, iface: dict[str, Any], name: str = "eth0", *, route: bool = True
) -> str:
    """Wire a container namespace into the bridge with the interface the daemon allocated.

    What a runtime does with allocate_interface's answer: a veth pair, one end in the
    bridge, the other in the container with the given MAC, address, MTU and gateway
    (the default route goes through its first interface only: ``route``).
    """
    veth = f"v{uuid.uuid4().hex[:8]}"
    host.ip("link", "add", veth, "type", "veth", "peer", "name", name, "netns", container.name)
    host.ip("link", "set", veth, "master", iface["bridge"], "up")
    container.ip("link", "set", name, "address", iface["mac_address"], "mtu", str(iface["mtu"]))
    container.ip("addr", "add", f"{iface['ip']}/{iface['prefix_len']}", "dev", name)
    container.ip("link", "set", name, "up")
    if route:
        container.ip("route", "add", "default", "via", iface["gateway"])
    if "ipv6" in iface:  # a dual-stack network's second address, as a runtime adds it
        address = f"{iface['ipv6']}/{iface['ipv6_prefix_len']}"
        container.ip("-6", "addr", "add", address, "dev", name, "nodad")
        if route:
            container.ip("-6", "route", "add", "default", "via", iface["ipv6_gateway"])
    return veth


def start_echo_server(
    ns: Netns, proto: str, port: int, tag: str, *, ipv6: bool = False
) -> subprocess.Popen[str]:
    """A TCP/UDP server in ``ns`` answering ``tag:client-ip:message`` (on [::] with
    ``ipv6``); the caller stops it."""
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns.name,
            sys.executable,
            str(HERE / "echo_server.py"),
            proto,
            str(port),
            tag,
            *(["ipv6"] if ipv6 else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def probe(
    ns: Netns,
    proto: str,
    host: str,
    port: int,
    message: str = "ping",
    *,
    source_port: int = 0,
    timeout: float = 3.0,
) -> str:
    """Send ``message`` from ``ns``; the answer, or ``ERR <reason>``."""
    args = [proto, host, str(port), message] + ([str(source_port)] if source_port else [])
    result = subprocess.run(
        ["ip", "netns", "exec", ns.name, sys.executable, str(HERE / "probe.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout + 20,
        env={**os.environ, "PROBE_TIMEOUT": str(timeout)},
    )
    return result.stdout.strip()


def add_foreign_tagged_rule(ns: Netns) -> None:
    """A FORWARD rule carrying dockernetd's tag that no mapping or link owns."""
    ns.exec(
        "iptables-legacy",
        "-I",
        "FORWARD",
        "-p",
        "tcp",
        "--dport",
        "9",
        "-m",
        "comment",
        "--comment",
        "dockernetd:ghost",
        "-j",
        "ACCEPT",
    )


def iptables_rules(ns: Netns) -> dict[str, list[str]]:
    """nat and filter as iptables-legacy-save prints them: chains (no counters) and rules."""
    saved = ns.exec("iptables-legacy-save").stdout
    tables: dict[str, list[str]] = {}
    current: list[str] = []
    for line in saved.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif line.startswith(":"):
            current.append(line.rsplit(" ", 1)[0])  # drop the [packets:bytes] counters
        elif line.startswith("-A"):
            current.append(line)
    return {name: tables.get(name, []) for name in ("nat", "filter")}


def tcp_segments_in(ns: Netns) -> int:
    """The TCP segments the namespace has received (/proc/net/snmp Tcp: InSegs)."""
    lines = [line.split() for line in ns.exec("cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = (line for line in lines if line[0] == "Tcp:")
    return int(values[names.index("InSegs")])


def crafted_syn_arrives(
    sender: Netns, to_mac: str, source: str, destination: str, port: int, receiver: Netns
) -> bool:
    """Whether a TCP SYN crafted in ``sender`` (integration/craft.py: straight to ``to_mac``
    on its eth0, whatever the addresses) arrives in ``receiver``."""
    before = tcp_segments_in(receiver)
    for _ in range(20):  # a quiet receiver first: a late segment of an earlier connection
        time.sleep(0.3)  # would be taken for the crafted one
        now, before = before, tcp_segments_in(receiver)
        if now == before:
            break
    args = ("eth0", to_mac, source, destination, str(port))
    sender.exec(sys.executable, str(HERE / "craft.py"), *args)
    time.sleep(0.3)  # for it to cross the host; there is no answer to wait for
    return tcp_segments_in(receiver) > before
