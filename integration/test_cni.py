"""The CNI plugin, exec'd the way libcni runs plugins: the network configuration on
stdin, the command and the container in the environment, JSON on stdout.

Containers are namespaces of the test; the daemon runs in the "host" namespace and
wires them in itself (allocate_interface with netns).  Real packets prove the wiring.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netns import (
    HOST_UPLINK,
    OUTSIDE,
    Daemon,
    Netns,
    crafted_syn_arrives,
    probe,
    start_echo_server,
    wait_for,
)

PLUGIN = Path(sys.executable).parent / "dockernetd-cni"


def cni(
    daemon: Daemon,
    command: str,
    container: str = "c1",
    ns: Netns | None = None,
    version: str = "1.0.0",
    **config: Any,
) -> tuple[int, Any]:
    """Run the plugin once; its exit code and its decoded output (None if it printed none)."""
    conf = {"cniVersion": version, "name": "red-cni", "type": "dockernetd", "network": "red"}
    conf.update(socket=daemon.socket, **config)
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": f"/run/netns/{ns.name}" if ns else "",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(PLUGIN.parent),
    }
    done = subprocess.run(
        [str(PLUGIN)], input=json.dumps(conf), env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    started = make_daemon()
    started.call("network_create", name="red")
    return started


def test_add_wires_the_container_in_and_del_takes_it_out(
    daemon, host, outside, make_netns, processes
):
    ns = make_netns("dnd-c")
    code, added = cni(daemon, "ADD", ns=ns)
    assert code == 0, added
    veth = added["interfaces"][0]["name"]
    assert added == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": veth},
            {"name": "eth0", "mac": "02:42:ac:12:00:02", "sandbox": f"/run/netns/{ns.name}"},
        ],
        "ips": [{"address": "172.18.0.2/16", "gateway": "172.18.0.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "172.18.0.1"}],
        "dns": {},
    }
    assert ns.ipv4_addresses("eth0") == ["172.18.0.2/16"]
    assert host.link(veth)["master"].startswith("br-")
    processes.append(start_echo_server(outside, "tcp", 80, "outside"))
    assert probe(ns, "tcp", OUTSIDE, 80, "hi") == f"outside:{HOST_UPLINK}:hi"  # masqueraded
    assert cni(daemon, "CHECK", ns=ns) == (0, None)
    ns.ip("addr", "flush", "dev", "eth0")
    code, failed = cni(daemon, "CHECK", ns=ns)
    assert (code, failed["code"]) == (1, 100)
    assert failed["msg"] == (  # the route went with the address
        f"eth0 does not hold 172.18.0.2/16; no default route in /run/netns/{ns.name}"
    )
    assert cni(daemon, "DEL", ns=ns) == (0, None)
    assert daemon.call("list_interfaces") == []
    # the veth's deletion finishes on the daemon's kernel thread after DEL has answered
    wait_for(lambda: host.link(veth) is None and ns.link("eth0") is None, timeout=2)
    assert cni(daemon, "DEL", ns=ns) == (0, None)  # again: still success


def test_the_same_add_again_is_the_same_attachment(daemon, make_netns):
    ns = make_netns("dnd-c")
    first = cni(daemon, "ADD", ns=ns)
    assert cni(daemon, "ADD", ns=ns) == first
    other = make_netns("dnd-c")
    code, refused = cni(daemon, "ADD", ns=other)
    assert (code, refused["code"]) == (1, 101)
    assert refused["msg"] == "container c1.eth0 is attached elsewhere on network red"


def test_results_errors_and_versions(daemon, make_netns):
    ns = make_netns("dnd-c")
    assert cni(daemon, "VERSION") == (
        0,
        {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]},
    )
    code, old = cni(daemon, "ADD", ns=ns, version="0.4.0")
    assert code == 0 and old["ips"][0]["version"] == "4"
    assert cni(daemon, "CHECK", ns=ns, version="0.3.1")[1]["code"] == 1
    assert cni(daemon, "ADD", ns=ns, version="0.2.0")[1]["code"] == 1
    assert cni(daemon, "ADD", container="c2")[1] == {
        "cniVersion": "1.0.0",
        "code": 4,
        "msg": "missing CNI_NETNS",
    }
    code, refused = cni(daemon, "ADD", container="c3", ns=None, network="red")
    assert refused["code"] == 4
    env = {"CNI_COMMAND": "ADD"}
    bad = subprocess.run([str(PLUGIN)], input="{not json", env=env, capture_output=True, text=True)
    assert json.loads(bad.stdout)["code"] == 6 and bad.returncode == 1


def test_a_path_that_is_not_a_namespace_is_refused_and_leaves_nothing(daemon, host):
    conf = {"cniVersion": "1.0.0", "type": "dockernetd", "network": "red", "socket": daemon.socket}
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c9",
        "CNI_NETNS": "/etc/hostname",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/",
    }
    done = subprocess.run(
        [str(PLUGIN)], input=json.dumps(conf), env=env, capture_output=True, text=True
    )
    refused = json.loads(done.stdout)
    assert refused["code"] == 101
    assert refused["msg"] == "Bad parameter: netns /etc/hostname is not a network namespace"
    assert daemon.call("list_interfaces") == []
    assert not [link for link in host.ip_json("link") if link["ifname"].startswith("dn")]


def test_del_after_the_namespace_is_gone_gc_and_status(daemon, host, make_netns, make_daemon):
    one, two = make_netns("dnd-c"), make_netns("dnd-c")
    assert cni(daemon, "ADD", "c1", one)[0] == 0
    assert cni(daemon, "ADD", "c2", two)[0] == 0
    one.delete()  # the runtime removed the container first: DEL must still succeed
    assert cni(daemon, "DEL", "c1") == (0, None)
    assert cni(daemon, "ADD", "c3", make_netns("dnd-c"))[0] == 0
    valid = [{"containerID": "c2", "ifname": "eth0"}]
    assert cni(daemon, "GC", version="1.1.0", **{"cni.dev/valid-attachments": valid}) == (0, None)
    assert [e["id"] for e in daemon.call("list_interfaces")] == ["c2.eth0"]
    assert cni(daemon, "STATUS", version="1.1.0") == (0, None)
    assert cni(daemon, "STATUS", version="1.1.0", network="nope")[1]["code"] == 50
    daemon.stop()
    assert cni(daemon, "ADD", "c4", two)[1]["code"] == 11  # try again later


def test_a_name_taken_in_the_namespace_is_refused_and_leaves_nothing(daemon, host, make_netns):
    ns = make_netns("dnd-c")
    ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    code, refused = cni(daemon, "ADD", "c5", ns)
    assert (code, refused["code"]) == (1, 101)
    assert refused["msg"] == f"cannot wire c5.eth0 into /run/netns/{ns.name} as eth0: File exists"
    assert daemon.call("list_interfaces") == []
    assert not [link for link in host.ip_json("link") if link["ifname"].startswith("dn")]
    assert "172.18.0.2" not in host.exec("iptables-legacy-save", "-t", "raw").stdout  # no guard


def test_the_rendered_launcher_is_the_same_plugin(daemon, make_netns, tmp_path):
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        ["bash", str(root / "contrib/cni/render.sh"), str(root), str(tmp_path)], check=True
    )
    launcher = tmp_path / "dockernetd"
    assert launcher.read_text().startswith(f"#!{root}/.venv/bin/python -IS\n")
    ns = make_netns("dnd-c")
    conf = {"cniVersion": "1.1.0", "type": "dockernetd", "network": "red", "socket": daemon.socket}
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "viaLauncher",
        "CNI_NETNS": f"/run/netns/{ns.name}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(tmp_path),
    }
    done = subprocess.run(
        [str(launcher)], input=json.dumps(conf), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ips"][0]["address"] == "172.18.0.2/16"


def test_port_mappings_are_published_in_the_kernel_only(
    daemon, host, outside, make_netns, processes
):
    # the runtime holds the host port itself (podman reserves every published port)
    holder = host.popen(
        sys.executable,
        "-c",
        "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 8080));"
        "s.listen(); print('held', flush=True); time.sleep(60)",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        ns = make_netns("dnd-c")
        mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        code, added = cni(daemon, "ADD", ns=ns, runtimeConfig={"portMappings": mappings})
        assert code == 0, added
        processes.append(start_echo_server(ns, "tcp", 80, "web"))
        assert probe(outside, "tcp", HOST_UPLINK, 8080, "o") == f"web:{OUTSIDE}:o"  # DNAT
        assert probe(host, "tcp", "127.0.0.1", 8080, "l") == "web:172.18.0.1:l"  # masqueraded
        [endpoint] = daemon.call("list_interfaces")
        assert endpoint["ports"] == [
            {
                "host_ip": "0.0.0.0",
                "host_port": 8080,
                "proto": "tcp",
                "container_port": 80,
                "proxy": False,
            }
        ]
        bridge = daemon.call("network_inspect", name="red")["bridge"]
        assert host.sysctl(f"net/ipv4/conf/{bridge}/route_localnet") == "1"
        assert cni(daemon, "DEL", ns=ns) == (0, None)
        assert probe(outside, "tcp", HOST_UPLINK, 8080, timeout=1).startswith("ERR")
        saved = host.exec("iptables-legacy-save").stdout
        assert "8080" not in saved and "172.18.0.2" not in saved
    finally:
        holder.kill()
        holder.wait()


def test_a_container_cannot_reach_the_hosts_loopback_through_route_localnet(
    make_daemon, host, make_netns, processes
):
    daemon = make_daemon("--firewall-self-heal=false")  # the guard deleted below stays gone
    daemon.call("network_create", name="red")
    ns = make_netns("dnd-c")
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    assert cni(daemon, "ADD", ns=ns, runtimeConfig={"portMappings": mappings})[0] == 0
    processes.append(start_echo_server(host, "tcp", 9999, "host-loopback"))
    bridge_mac = host.link(daemon.call("network_inspect", name="red")["bridge"])["address"]

    def crafted_reaches_host() -> bool:
        return crafted_syn_arrives(ns, bridge_mac, "172.18.0.2", "127.0.0.1", 9999, host)

    assert not crafted_reaches_host()
    guard = "-A PREROUTING -d 127.0.0.0/8 -i {} -m comment --comment dockernetd:localnet -j DROP"
    bridge = daemon.call("network_inspect", name="red")["bridge"]
    host.exec("iptables-legacy", "-t", "raw", "-D", *guard.format(bridge).split()[1:])
    assert crafted_reaches_host()  # what the guard is for


def test_the_ips_and_mac_capabilities_are_honoured(daemon, make_netns):
    ns = make_netns("dnd-c")
    runtime = {"ips": ["172.18.7.9/16"], "mac": "02:aa:bb:cc:dd:ee"}
    code, added = cni(daemon, "ADD", ns=ns, runtimeConfig=runtime)
    assert code == 0, added
    assert added["ips"][0]["address"] == "172.18.7.9/16"
    assert added["interfaces"][1]["mac"] == "02:aa:bb:cc:dd:ee"
    assert ns.link("eth0")["address"] == "02:aa:bb:cc:dd:ee"


def test_gc_leaves_what_cni_did_not_make(daemon, make_netns):
    assert cni(daemon, "ADD", "c1", make_netns("dnd-c"))[0] == 0
    daemon.call("allocate_interface", id="plain", network="red")  # not through CNI
    assert cni(daemon, "GC", version="1.1.0", **{"cni.dev/valid-attachments": []}) == (0, None)
    assert [e["id"] for e in daemon.call("list_interfaces")] == ["plain"]


def start_add(daemon: Daemon, container: str, ns: Netns) -> subprocess.Popen[str]:
    """An ADD with a port mapping, left running (to be killed mid-call)."""
    conf = {
        "cniVersion": "1.0.0",
        "name": "red-cni",
        "type": "dockernetd",
        "network": "red",
        "socket": daemon.socket,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
    }
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": container,
        "CNI_NETNS": f"/run/netns/{ns.name}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(PLUGIN.parent),
    }
    proc = subprocess.Popen(
        [str(PLUGIN)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(conf))
    proc.stdin.close()
    return proc


def leftovers(daemon: Daemon, host: Netns, ns: Netns) -> list[str]:
    """What an attachment of red could have left anywhere: [] when nothing."""
    daemon.call("verify")  # a kernel call: every deletion queued before it is done
    left = [f"endpoint {e['id']}" for e in daemon.call("list_interfaces")]
    left += [
        f"veth {link['ifname']}" for link in host.ip_json("link") if link["ifname"].startswith("dn")
    ]
    left += [f"container {link['ifname']}" for link in ns.ip_json("link") if link["ifname"] != "lo"]
    rules = host.exec("iptables-legacy-save").stdout.splitlines()
    left += [f"rule {rule}" for rule in rules if "172.18.0.2" in rule or "8080" in rule]
    return left


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.035, 0.05, 0.08])
def test_a_killed_add_leaves_nothing_after_del(daemon, host, make_netns, delay):
    """The plugin SIGKILLed at some point of its ADD (its start, its call, its answer): the
    daemon finishes or never starts the call, and the runtime's DEL removes what it made."""
    ns = make_netns("dnd-c")
    add = start_add(daemon, "k1", ns)
    time.sleep(delay)
    add.kill()
    add.wait()
    assert cni(daemon, "DEL", "k1", ns) == (0, None)
    assert leftovers(daemon, host, ns) == []


@pytest.mark.parametrize("delay", [0.03, 0.045, 0.06, 0.08])
def test_a_daemon_killed_during_add_leaves_nothing_after_restart_and_del(
    daemon, host, make_netns, delay
):
    ns = make_netns("dnd-c")
    add = start_add(daemon, "k2", ns)
    time.sleep(delay)
    daemon.stop(signal.SIGKILL)
    add.wait(timeout=30)
    daemon.start()
    assert cni(daemon, "DEL", "k2", ns) == (0, None)
    assert leftovers(daemon, host, ns) == []


def test_a_daemon_killed_after_wiring_before_recording_leaves_nothing_after_del(
    daemon, host, make_netns
):
    """The narrowest window, made for certain: the kernel work of an ADD done and its
    records never written (cut from the state file, as a SIGKILL between the two leaves it).
    The restart's reconcile removes the rules; DEL finds the veth by its name."""
    ns = make_netns("dnd-c")
    state = Path(daemon.state_dir) / "state.jsonl"
    before = state.read_bytes()
    assert start_add(daemon, "k3", ns).wait(timeout=30) == 0
    daemon.stop(signal.SIGKILL)
    state.write_bytes(before)
    daemon.start()
    assert daemon.call("list_interfaces") == []
    assert [link["ifname"] for link in host.ip_json("link") if link["ifname"].startswith("dn")]
    assert cni(daemon, "DEL", "k3", ns) == (0, None)
    assert leftovers(daemon, host, ns) == []
    assert "made but never recorded" in daemon.log()
