"""cni: the CNI plugin run the way libcni runs plugins (config on stdin, env, exec).

For each of N containers (namespaces made beforehand, as a runtime has the namespace
before it calls the plugin): ADD with one port mapping (published in the kernel only, as
the runtime holds the port), then DEL for all, each timed as a whole exec.  The floor in
the same run: the same launcher answering VERSION, which asks the daemon nothing (its
start-up alone); and the console script's VERSION, for what the launcher saves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, Daemon, Namespace, row, summary

CONSOLE_SCRIPT = Path(sys.executable).parent / "dockernetd-cni"


def launcher() -> Path:
    out = Path(tempfile.mkdtemp(prefix="dnd-bench-cni-"))
    subprocess.run(["bash", str(ROOT / "contrib/cni/render.sh"), str(ROOT), str(out)], check=True)
    return out / "dockernetd"


def exec_plugin(plugin: Path, command: str, config: dict[str, Any], **env: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(plugin)],
        input=json.dumps(config).encode(),
        env={"CNI_COMMAND": command, "CNI_IFNAME": "eth0", "CNI_PATH": str(plugin.parent), **env},
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command}: {done.stdout.decode()}")
    return elapsed


def bench_cni(count: int = 200) -> dict[str, Any]:
    plugin = launcher()
    daemon = Daemon()
    containers = [Namespace() for _ in range(count)]
    added, deleted = [], []
    try:
        daemon.wait_ready()
        config = {"cniVersion": "1.0.0", "name": "bench", "type": "dockernetd"}
        config["socket"] = daemon.socket
        floor = [exec_plugin(plugin, "VERSION", config) for _ in range(50)]
        console = [exec_plugin(CONSOLE_SCRIPT, "VERSION", config) for _ in range(50)]
        for n, ns in enumerate(containers):
            env = {"CNI_CONTAINERID": f"c{n}", "CNI_NETNS": f"/run/netns/{ns.name}"}
            port = {"hostPort": 20000 + n, "containerPort": 80, "protocol": "tcp"}
            with_port = {**config, "runtimeConfig": {"portMappings": [port]}}
            added.append(exec_plugin(plugin, "ADD", with_port, **env))
        for n, ns in enumerate(containers):
            env = {"CNI_CONTAINERID": f"c{n}", "CNI_NETNS": f"/run/netns/{ns.name}"}
            deleted.append(exec_plugin(plugin, "DEL", config, **env))
    finally:
        daemon.stop()
        for ns in containers:
            ns.delete()
        subprocess.run(["rm", "-rf", str(plugin.parent)], check=False)
    print(f"cni (the plugin exec'd as libcni does; N={count}; one port mapping each)")
    print(row("VERSION, the -IS launcher (floor)", summary(floor)))
    print(row("VERSION, the console script", summary(console)))
    print(row("ADD with one port", summary(added), "(bridge+host-local+portmap 146 ms)"))
    print(row("DEL", summary(deleted), "(CNI DEL 120-240 ms)"))
    return {
        "floor": summary(floor),
        "console_script": summary(console),
        "add": summary(added),
        "del": summary(deleted),
    }
