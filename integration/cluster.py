"""Several dockernetd "hosts" on one L2 segment, with a real etcd: the cluster tests' rig.

The segment is a bridge in a namespace of its own (the "switch"), where etcd listens
on the segment's first address; each host is a namespace with a veth into the switch
and a daemon started with --cluster-store.  Everything is deleted by PID and by name.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netns import Daemon, Netns

SEGMENT = "10.99.0"  # .1 is the switch (and etcd), hosts from .11
POOL = "10.200.0.0/16"
ETCD_PORT = 2379
#: Short leases, so a dead host's subnet is given up within the tests' patience.
TTL, HEARTBEAT = 3, 1


_HTTP = """
import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
try:
    print(urllib.request.urlopen(sys.argv[1], data, timeout=1).read().decode())
except OSError as exc:
    print("ERR", exc)
"""


def http(ns: Netns, url: str, body: str | None = None) -> str:
    """GET (or POST ``body`` to) ``url`` from inside ``ns``: the answer, or ``ERR …``."""
    return ns.exec(sys.executable, "-c", _HTTP, url, *([body] if body else [])).stdout


class Etcd:
    """Debian's etcd-server in ``ns``, its data on tmpfs."""

    def __init__(self, ns: Netns, address: str) -> None:
        self.ns = ns
        self.address = address
        self.data = tempfile.mkdtemp(prefix="dnd-etcd-", dir="/dev/shm")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{ETCD_PORT}"

    def start(self) -> Etcd:
        self.proc = self.ns.popen(
            "etcd",
            "--data-dir",
            self.data,
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.healthy():
            assert self.proc.poll() is None, "etcd exited"
            assert time.monotonic() < deadline, "etcd did not become healthy in 20 s"
            time.sleep(0.1)
        return self

    def healthy(self) -> bool:
        return '"health":"true"' in http(self.ns, f"{self.url}/health")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data, ignore_errors=True)


class Host:
    """A machine of the cluster: its namespace, its address on the segment, its daemon."""

    def __init__(self, rig: Rig, number: int) -> None:
        self.ns = rig.make_netns(f"dnd-h{number}")
        self.address = f"{SEGMENT}.{10 + number}"
        self.workdir = rig.workdir / f"host{number}"
        self.workdir.mkdir()
        port = f"sw{number}-{self.ns.name[-6:]}"[:15]
        self.ns.ip(
            "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", rig.switch.name
        )
        self.ns.ip("addr", "add", f"{self.address}/24", "dev", "eth0")
        self.ns.ip("link", "set", "eth0", "up")
        rig.switch.ip("link", "set", port, "master", "seg0", "up")
        self.daemon = Daemon(
            self.ns,
            self.workdir,
            (
                "--firewall-backend",
                rig.firewall_backend,
                "--cluster-store",
                f"etcd://{rig.etcd.address}:{ETCD_PORT}",
                "--cluster-advertise",
                self.address,
                "--cluster-network",
                POOL,
                "--cluster-store-opt",
                f"discovery.ttl={TTL}",
                "--cluster-store-opt",
                f"discovery.heartbeat={HEARTBEAT}",
                *rig.extra_args,
            ),
            rig.resolv_conf,
            None,
        )

    def subnet(self) -> str:
        return str(self.daemon.call("status")["cluster"]["subnet"])

    def routes(self) -> dict[str, str]:
        """The cluster's routes in this host's main table: subnet -> gateway."""
        listed = self.ns.ip_json("route", "show", "proto", "199")
        return {r["dst"]: r["gateway"] for r in listed}


class Rig:
    def __init__(
        self,
        make_netns: Any,
        workdir: Path,
        resolv_conf: Path,
        firewall_backend: str = "iptables",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.make_netns = make_netns
        self.workdir = workdir
        self.resolv_conf = resolv_conf
        self.firewall_backend = firewall_backend
        self.extra_args = extra_args
        self.switch: Netns = make_netns("dnd-sw")
        self.switch.ip("link", "add", "seg0", "type", "bridge")
        self.switch.ip("addr", "add", f"{SEGMENT}.1/24", "dev", "seg0")
        self.switch.ip("link", "set", "seg0", "up")
        self.etcd = Etcd(self.switch, f"{SEGMENT}.1").start()
        self.hosts: list[Host] = []

    def add_host(self) -> Host:
        host = Host(self, len(self.hosts) + 1)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for host in self.hosts:
            if host.daemon.proc is not None:
                host.daemon.stop(signal.SIGKILL)
        self.etcd.remove()

    def etcd_keys(self) -> list[str]:
        """The keys of the pool in etcd, read through the v3 gateway (not the daemon's
        client)."""
        return sorted(self.etcd_leases())

    def etcd_leases(self) -> dict[str, int]:
        """Each key of the pool and the etcd lease it is bound to."""
        prefix = "/dockernetd/cluster/10.200.0.0-16/subnets/"
        body = json.dumps(
            {
                "key": base64.b64encode(prefix.encode()).decode(),
                "range_end": base64.b64encode((prefix[:-1] + "0").encode()).decode(),
                "keys_only": True,
            }
        )
        answer = http(self.switch, f"{self.etcd.url}/v3/kv/range", body)
        return {
            base64.b64decode(kv["key"]).decode(): int(kv.get("lease", 0))
            for kv in json.loads(answer).get("kvs", [])
        }

    def revoke(self, lease: int) -> None:
        """End an etcd lease now (its keys go with it), as its TTL running out would."""
        http(self.switch, f"{self.etcd.url}/v3/lease/revoke", json.dumps({"ID": str(lease)}))
