"""The real podman (Debian's, CNI backend) with dockernetd as its network.

integration/podman_sandbox.sh runs as PID 1 of fresh pid, network and mount namespaces with
a private /run and podman's storage and configuration on tmpfs (see sandbox.py): the real
`podman run -p`, `podman network ls` and `podman rm -f` against our conflist, HTTP from
another machine and from the host's 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil

from sandbox import run_sandbox


def test_podman_runs_a_container_on_a_dockernetd_network():
    assert shutil.which("podman"), "podman is not installed: make install brings it"
    seen = run_sandbox("podman_sandbox.sh", "podman", timeout=180)
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
