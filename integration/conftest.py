import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netns import Daemon, Netns, attach_container, wire_outside


@pytest.fixture(autouse=True)
def _needs_root_and_iproute2() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root: they create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("integration tests need iproute2's ip")


@pytest.fixture
def make_netns() -> Iterator[Callable[[str], Netns]]:
    made: list[Netns] = []

    def make(prefix: str = "dnd") -> Netns:
        ns = Netns(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in reversed(made):
        ns.delete()


@pytest.fixture
def host(make_netns: Callable[[str], Netns]) -> Netns:
    """The namespace the daemon runs in: the 'host' of the containers."""
    return make_netns("dnd-host")


@pytest.fixture
def outside(host: Netns, make_netns: Callable[[str], Netns]) -> Netns:
    """Another machine on the host's uplink (netns.wire_outside)."""
    ns = make_netns("dnd-out")
    wire_outside(host, ns)
    return ns


@pytest.fixture
def resolv_conf(tmp_path: Path) -> Path:
    """A nameserver in TEST-NET-1, which overlaps none of Docker's candidates."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\n")
    return path


@pytest.fixture
def firewall_backend(request: pytest.FixtureRequest) -> str:
    """The daemons' --firewall-backend: iptables, unless a test is parametrized with
    ``@both_backends`` (then once with each)."""
    return str(getattr(request, "param", "iptables"))


@pytest.fixture
def make_daemon(
    host: Netns, tmp_path: Path, resolv_conf: Path, firewall_backend: str
) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(
        *args: str, ns: Netns | None = None, socket: str | None = None, start: bool = True
    ) -> Daemon:
        args = ("--firewall-backend", firewall_backend, *args)
        daemon = Daemon(ns or host, tmp_path, args, resolv_conf, socket)
        started.append(daemon)
        return daemon.start() if start else daemon

    yield make
    for daemon in started:
        if daemon.proc is not None:
            daemon.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Helper processes a test starts (servers in containers); killed by PID afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture
def container(host: Netns, make_netns):
    """A container namespace wired to the bridge with its allocated interface."""

    def make(daemon, container_id: str) -> tuple[Netns, dict]:
        ns = make_netns("dnd-c")
        iface = daemon.call("allocate_interface", id=container_id)
        attach_container(host, ns, iface)
        return ns, iface

    return make
