"""The real podman (Debian's, CNI backend) with dockernetd as its network.

integration/podman_sandbox.sh runs as PID 1 of fresh pid, network and mount namespaces with
a private /run and podman's storage and configuration on tmpfs: the real `podman run -p`,
`podman network ls` and `podman rm -f` against our conflist, HTTP from another machine and
from the host's 127.0.0.1.  What podman leaves outside (its cgroup) is removed here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_cgroup(tag: str) -> None:
    """podman's cgroup /TAG on every hierarchy, deepest first."""
    for top in CGROUP_ROOT.glob(f"*/{tag}"):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                path.rmdir()
        top.rmdir()
    if (CGROUP_ROOT / tag).is_dir():
        (CGROUP_ROOT / tag).rmdir()


def run_sandbox() -> dict[str, str]:
    tag = f"dnd-podman-{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run(
            [
                "unshare",
                *("--net", "--mount", "--pid", "--fork", "--mount-proc"),
                *("--propagation", "private", "--kill-child=SIGTERM"),
                "bash",
                str(HERE / "podman_sandbox.sh"),
                str(HERE.parent),
                tag,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        remove_cgroup(tag)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = {}
    for line in done.stdout.splitlines():
        name, colon, value = line.partition(": ")
        if colon and name.isupper():
            seen[name] = value.strip()
    return seen


def test_podman_runs_a_container_on_a_dockernetd_network():
    assert shutil.which("podman"), "podman is not installed: make install brings it"
    seen = run_sandbox()
    assert "red/dockernetd" in seen["NETWORKS"].split()
    [endpoint] = json.loads(seen["ENDPOINTS"])
    assert (endpoint["network"], endpoint["ip"]) == ("red", "10.88.5.2")
    assert endpoint["ports"] == [
        {
            "host_ip": "0.0.0.0",
            "host_port": 8080,
            "proto": "tcp",
            "container_port": 80,
            "proxy": False,
        }
    ]
    assert seen["HOLDER"] == "conmon"  # podman holds the host port; the daemon binds nothing
    assert seen["OUTSIDE"] == "hello from podman"
    assert seen["LOCAL"] == "hello from podman"
    # dockernetd killed and started again while the container runs: nothing lost
    assert seen["WHILE DOWN"] == "hello from podman"
    assert json.loads(seen["RESTARTED"]) == [endpoint]
    assert json.loads(seen["AFTER RM"]) == []
    assert seen["RULES LEFT"] == "0"
