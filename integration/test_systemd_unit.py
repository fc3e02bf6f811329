"""The units under a real systemd: systemd_box.SystemdBox boots one as PID 1 in throwaway
namespaces (its own network namespace too), the checkout bind-mounted in.
Every test gets a fresh box and takes it down, even when it fails."""

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from systemd_box import SYSTEMD, SystemdBox

ROOT = Path(__file__).resolve().parent.parent
CTL = f"{ROOT}/.venv/bin/dockernetctl"


class Box(SystemdBox):
    def run(
        self, *cmd: str, check: bool = False, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = super().run(*cmd, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)}: {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, check=True)

    def prop(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "-P", name, unit, check=True).stdout.strip()

    def journal(self, *matches: str) -> list[dict]:
        out = self.run(
            "journalctl", "--no-pager", "-o", "json", "-u", "dockernetd", *matches
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def messages(self) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", "dockernetd").stdout

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out\n" + self.messages()
            time.sleep(0.1)


@pytest.fixture
def box(tmp_path: Path):
    assert SYSTEMD.exists(), "systemd is not installed: make install brings it"
    units = tmp_path / "units"
    subprocess.run(
        ["bash", str(ROOT / "contrib/systemd/render.sh"), str(ROOT), str(units)], check=True
    )
    b = Box(tmp_path / "box")
    try:
        b.up([units / "dockernetd.service", units / "dockernetd.socket"], bind=[ROOT])
        yield b
    finally:
        b.down()


def set_flags(box: Box, opts: str) -> None:
    box.sh(f"echo DOCKERNETD_OPTS={shlex.quote(opts)} > /etc/default/dockernetd")


def test_socket_activation_readiness_and_structured_journal(box: Box):
    box.run("systemctl", "start", "dockernetd.socket", check=True)
    assert box.run("systemctl", "is-active", "dockernetd").stdout.strip() == "inactive"
    assert box.sh("stat -c '%a %U %G' /run/dockernetd/dockernetd.sock").stdout.split() == [
        "660",
        "root",
        "root",
    ]

    status = json.loads(box.run(CTL, "--json", "status", check=True).stdout)  # activates it
    assert status["bridge_cidr"] == "172.17.42.1/16"
    assert box.run("systemctl", "is-active", "dockernetd").stdout.strip() == "active"
    assert box.prop("dockernetd", "Type") == "notify"
    assert box.prop("dockernetd", "LimitNOFILE") == "1048576"
    assert box.prop("dockernetd", "StatusText").startswith("docker0 172.17.42.1/16, 0 interfaces")

    # the kernel side is inside the box
    assert "172.17.42.1/16" in box.run("ip", "-br", "addr", "show", "docker0", check=True).stdout
    saved = box.run("iptables-legacy-save", check=True).stdout
    assert "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" in saved
    assert box.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    box.run(CTL, "allocate-interface", "web1", check=True)
    box.run(CTL, "allocate-interface", "web2", check=True)
    assert box.run(CTL, "release-interface", "nobody").returncode == 1
    box.run(CTL, "allocate-port", "web1", "80", check=True)
    box.wait_for(lambda: "2 interfaces, 1 ports" in box.prop("dockernetd", "StatusText"))

    entries = box.journal("JOB=allocate_interface")
    assert [e["CONTAINER_ID"] for e in entries] == ["web1", "web2"]
    for e in entries:
        assert (e["OUTCOME"], e["PEER_UID"], e["SYSLOG_IDENTIFIER"]) == ("ok", "0", "dockernetd")
        assert int(e["DURATION_US"]) > 0 and int(e["PEER_PID"]) > 0
        assert e["MESSAGE"] == f"allocate_interface({e['CONTAINER_ID']}): ok"
    [failed] = box.journal("JOB=release_interface")
    assert (failed["OUTCOME"], failed["ERROR_CODE"]) == ("error", "1004")
    assert [e["JOB"] for e in box.journal("JOB=allocate_port")] == ["allocate_port"]
    [init] = box.journal("JOB=init_networkdriver")
    assert json.loads(init["JOB_ENV"])["BridgeIface"] == ""


def test_a_bad_flag_fails_the_start_visibly_and_is_not_restarted(box: Box):
    set_flags(box, "--iptables=false --icc=false")
    assert box.run("systemctl", "start", "dockernetd").returncode != 0
    status = box.run("systemctl", "status", "--no-pager", "-l", "dockernetd").stdout
    assert "You specified --iptables=false with --icc=false." in status
    assert box.prop("dockernetd", "ExecMainStatus") == "2"
    time.sleep(1)
    assert box.prop("dockernetd", "NRestarts") == "0"
    assert box.run("systemctl", "is-active", "dockernetd").stdout.strip() == "failed"


def test_a_failed_init_is_in_the_status(box: Box):
    set_flags(box, "-b br0")
    assert box.run("systemctl", "start", "dockernetd").returncode != 0
    status = box.run("systemctl", "status", "--no-pager", "-l", "dockernetd").stdout
    assert "br0: no such network interface" in status


def test_stop_is_clean_and_sigkill_is_restarted(box: Box):
    box.run("systemctl", "start", "dockernetd", check=True)
    first = box.prop("dockernetd", "MainPID")
    box.run("systemctl", "kill", "-s", "SIGKILL", "dockernetd", check=True)
    box.wait_for(
        lambda: (
            box.prop("dockernetd", "MainPID") not in ("0", first)
            and box.run("systemctl", "is-active", "dockernetd").stdout.strip() == "active"
        )
    )
    assert box.prop("dockernetd", "NRestarts") == "1"
    box.run(CTL, "status", check=True)

    box.run("systemctl", "stop", "dockernetd", check=True)
    assert box.prop("dockernetd", "Result") == "success"
    assert box.prop("dockernetd", "ExecMainStatus") == "0"
    assert "SIGTERM: shutting down" in box.messages()


def test_watchdog_and_reload(box: Box):
    box.sh(
        "mkdir -p /etc/systemd/system/dockernetd.service.d && "
        "printf '[Service]\\nWatchdogSec=2s\\n' > /etc/systemd/system/dockernetd.service.d/wd.conf"
    )
    box.run("systemctl", "daemon-reload", check=True)
    box.run("systemctl", "start", "dockernetd", check=True)
    first = int(box.prop("dockernetd", "WatchdogTimestampMonotonic"))
    box.wait_for(
        lambda: int(box.prop("dockernetd", "WatchdogTimestampMonotonic")) > first, timeout=5
    )
    time.sleep(2.5)  # longer than WatchdogSec: still alive, because the trio loop keeps pinging
    assert box.prop("dockernetd", "NRestarts") == "0"

    box.run("systemctl", "reload", "dockernetd", check=True)
    box.wait_for(lambda: "SIGHUP: configuration reloaded, log level info" in box.messages())
    assert box.run("systemctl", "is-active", "dockernetd").stdout.strip() == "active"


CNI_CONF = json.dumps(
    {
        "cniVersion": "1.0.0",
        "type": "dockernetd",
        "network": "bridge",
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
    }
)
CNI_ENV = ("CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/c1", "CNI_IFNAME=eth0", "CNI_PATH=/")


def cni(box: Box, command: str) -> subprocess.CompletedProcess[str]:
    plugin = f"{ROOT}/.venv/bin/dockernetd-cni"
    return box.run("env", f"CNI_COMMAND={command}", *CNI_ENV, plugin, input=CNI_CONF)


def test_the_hardened_unit_refuses_to_enter_namespaces_and_the_cni_drop_in_allows_it(box: Box):
    box.run("systemctl", "start", "dockernetd.socket", check=True)
    box.sh("ip netns add c1")
    refused = cni(box, "ADD")
    assert refused.returncode == 1
    assert "Operation not permitted" in json.loads(refused.stdout)["msg"]
    box.sh(
        "mkdir -p /etc/systemd/system/dockernetd.service.d && "
        f"cp {ROOT}/contrib/systemd/cni.conf /etc/systemd/system/dockernetd.service.d/ && "
        "systemctl daemon-reload && systemctl restart dockernetd.service"
    )
    added = cni(box, "ADD")
    assert added.returncode == 0, added.stdout + added.stderr + box.messages()
    assert json.loads(added.stdout)["ips"][0]["address"] == "172.17.0.2/16"
    assert "172.17.0.2/16" in box.sh("ip -n c1 -4 -br addr show eth0").stdout
    assert box.sh("cat /proc/sys/net/ipv4/conf/docker0/route_localnet").stdout == "1\n"
    assert cni(box, "DEL").returncode == 0
    # the veth's deletion finishes on the daemon's kernel thread after DEL has answered
    box.wait_for(lambda: box.run("ip", "-n", "c1", "link", "show", "eth0").returncode != 0, 2)


def activate_plugin(box: Box) -> subprocess.CompletedProcess[str]:
    """POST /Plugin.Activate on the plugin socket, as dockerd does when it finds it."""
    probe = (
        "import http.client, socket\n"
        "c = http.client.HTTPConnection('localhost')\n"
        "c.sock = socket.socket(socket.AF_UNIX)\n"
        "c.sock.connect('/run/docker/plugins/dockernetd.sock')\n"
        "c.request('POST', '/Plugin.Activate')\n"
        "print(c.getresponse().read().decode())\n"
    )
    return box.run(f"{ROOT}/.venv/bin/python", "-c", probe)


def test_the_docker_plugin_under_the_unit_and_its_drop_in(box: Box):
    set_flags(box, "--docker-plugin")
    box.sh(
        "mkdir -p /etc/systemd/system/dockernetd.service.d && "
        f"cp {ROOT}/contrib/systemd/docker-plugin.conf /etc/systemd/system/dockernetd.service.d/ && "
        "systemctl daemon-reload && systemctl start dockernetd.service"
    )
    assert box.sh("stat -c '%a %U' /run/docker/plugins/dockernetd.sock").stdout == "600 root\n"
    answer = activate_plugin(box)
    assert json.loads(answer.stdout) == {"Implements": ["NetworkDriver", "IpamDriver"]}, answer
    assert "docker.service" in box.prop("dockernetd", "Before").split()
    box.run("systemctl", "stop", "dockernetd.service", check=True)
    assert box.run("test", "-e", "/run/docker/plugins/dockernetd.sock").returncode == 1


def test_the_hardened_unit_runs_the_nftables_backend(box: Box):
    set_flags(box, "--firewall-backend nftables")
    box.run("systemctl", "start", "dockernetd.service", check=True)
    box.run(CTL, "allocate-interface", "web1", check=True)
    box.run(CTL, "allocate-port", "web1", "80", "--host-port", "8080", check=True)
    listed = box.run("nft", "list", "map", "inet", "dockernetd", "dnat_any", check=True).stdout
    assert "tcp . 8080 : 172.17.0.2 . 80" in listed
    assert box.run("cat", "/proc/net/ip_tables_names").stdout.split() == []  # no legacy table
    box.run("nft", "flush", "ruleset", check=True)  # self-healing under the unit too
    box.wait_for(
        lambda: (
            "172.17.0.2 . 80"
            in box.run("nft", "list", "map", "inet", "dockernetd", "dnat_any").stdout
        ),
        timeout=5,
    )
