"""Docker's plugin API (--docker-plugin): its socket over HTTP, and the real dockerd.

integration/docker_sandbox.sh runs dockerd (Debian's docker.io, with its own containerd,
vfs storage and everything on tmpfs) as PID 1's child in fresh pid, network and mount
namespaces, with dockernetd as the network and IPAM driver of two networks: `docker run
-p`, HTTP from another machine and from 127.0.0.1, `docker network connect`/`disconnect`,
dockernetd killed and restarted while the container runs, dockerd restarted, then `docker
rm -f` and `docker network rm`, after which the kernel is exactly as before (see sandbox.py).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
from typing import Any

from netns import Netns
from sandbox import run_sandbox


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def post(path: str, method: str, body: Any = None, verb: str = "POST") -> tuple[int, Any, str]:
    """One request as dockerd's plugin client makes it: status, JSON answer, content type."""
    conn = UnixHTTPConnection(path)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(
            verb, f"/{method}", payload, {"Accept": "application/vnd.docker.plugins.v1.2+json"}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read()), response.getheader("Content-Type")
    finally:
        conn.close()


def test_plugin_socket_speaks_docker_plugin_http(host: Netns, make_daemon, tmp_path):
    plugin = tmp_path / "plugins" / "dockernetd.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    plugin.parent.mkdir()
    stale.bind(str(plugin))
    stale.close()  # what a killed daemon leaves behind
    daemon = make_daemon("--docker-plugin", "--docker-plugin-socket", str(plugin))
    info = os.stat(plugin)
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)
    assert f"replaced stale socket {plugin}" in daemon.log()
    assert post(str(plugin), "Plugin.Activate") == (
        200,
        {"Implements": ["NetworkDriver", "IpamDriver"]},
        "application/vnd.docker.plugins.v1+json",
    )
    status, answer, _ = post(str(plugin), "IpamDriver.RequestPool", {"Pool": "10.44.0.0/24"})
    assert (status, answer) == (
        200,
        {"PoolID": "dockernetd/10.44.0.0/24", "Pool": "10.44.0.0/24", "Data": {}},
    )
    assert post(str(plugin), "NetworkDriver.AllocateNetwork", {})[:2] == (
        404,
        {"Err": "dockernetd does not implement NetworkDriver.AllocateNetwork"},
    )
    assert post(str(plugin), "Plugin.Activate", verb="GET")[:2] == (405, {"Err": "POST only"})
    # a second daemon on the live plugin socket is refused at start; the first serves on
    second = make_daemon("--docker-plugin", "--docker-plugin-socket", str(plugin), start=False)
    code, err = second.run_to_exit()
    assert code == 1 and f"another daemon is already serving on {plugin}" in err
    assert post(str(plugin), "Plugin.Activate")[0] == 200
    daemon.stop()
    assert not plugin.exists()


def test_dockerd_runs_containers_on_dockernetd_networks():
    assert shutil.which("dockerd"), "dockerd is not installed: make install brings docker.io"
    seen = run_sandbox("docker_sandbox.sh", "docker", timeout=300)
    assert seen["PLUGIN SOCKET"] == "600 root"
    networks = {n["name"]: n for n in json.loads(seen["NETWORKS"])}
    [n1, n2] = [n for name, n in networks.items() if name != "bridge"]
    assert (n1["subnet"], n1["gateway"], n2["subnet"]) == (
        "172.18.0.0/16",
        "172.18.0.1",
        "10.77.0.0/24",
    )
    assert all(
        n["name"] == "docker-" + n["id"][:12] and n["bridge"] == "br-" + n["id"][:12]
        for n in (n1, n2)
    )
    [web] = json.loads(seen["ENDPOINTS"])
    assert (web["network"], web["ip"], web["mac_address"], web["netns"]) == (
        n1["name"],
        "172.18.0.2",
        "02:42:ac:12:00:02",
        None,
    )
    assert web["ports"] == [
        {"host_ip": "0.0.0.0", "host_port": 8080, "proto": "tcp", "container_port": 80}
    ]
    assert len(web["id"]) == 64  # Docker's EndpointID
    # Docker configured the interface we handed over with the address our IPAM gave
    assert seen["IN CONTAINER"] == "172.18.0.2/16 172.18.0.1"
    assert seen["DOCKER SEES"] == "172.18.0.2/16 172.18.0.1 02:42:ac:12:00:02"
    assert seen["OUTSIDE"] == "hello from docker"
    assert seen["LOCAL"] == "hello from docker"
    assert seen["CONNECTED"] == "eth0 172.18.0.2/16 eth1 10.77.0.2/24"
    # dockernetd killed and started again while the container runs: nothing lost
    assert seen["WHILE DOWN"] == "hello from docker"
    restarted = json.loads(seen["RESTARTED"])
    assert [(e["network"], e["ip"]) for e in restarted] == [
        (n1["name"], "172.18.0.2"),
        (n2["name"], "10.77.0.2"),
    ]
    assert restarted[0] == web
    assert json.loads(seen["DISCONNECTED"]) == [web]
    # dockerd restarted: it finds its networks, and the container starts on them again
    assert seen["DOCKERD RESTARTED"] == "n1 n2"
    assert seen["AGAIN"] == "hello from docker"
    # docker network create --ipv6: a unique-local /64 from dockernetd's IPAM, the
    # container's address and gateway from it, its published port reached over IPv6
    [dual] = [n for n in json.loads(seen["DUAL STACK"]) if n.get("ipv6")]
    subnet_v6, gateway_v6 = dual["subnet_v6"], dual["gateway_v6"]
    assert subnet_v6.startswith("fd") and subnet_v6.endswith("::/64")
    address_v6 = gateway_v6[:-1] + "2"  # the first after the gateway (…::1)
    assert seen["DUAL STACK IN CONTAINER"] == f"{address_v6}/64 {gateway_v6}"
    assert seen["DUAL STACK DOCKER SEES"] == f"{address_v6}/64 {gateway_v6}"
    assert seen["OUTSIDE OVER IPV6"] == "hello from docker"
    [endpoints, networks_left] = seen["AFTER RM"].split("] [")
    assert endpoints == "[" and [n["name"] for n in json.loads("[" + networks_left)] == ["bridge"]
    assert seen["KERNEL AS BEFORE"] == "yes"
