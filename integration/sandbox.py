"""A real runtime (podman, dockerd) in a sandbox: a script run as PID 1 of fresh pid, network
and mount namespaces, with a private /run.

The script prints what it sees as ``NAME: value`` lines; :func:`run_sandbox` returns them
as a dict.  Everything the runtime makes dies with the namespaces, except the cgroup
``/TAG`` it creates on the machine's hierarchies (the script is given TAG for its
``--cgroup-parent``), which is removed here.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CGROUP_ROOT = Path("/sys/fs/cgroup")


def run_sandbox(script: str, runtime: str, timeout: float) -> dict[str, str]:
    """Run integration/SCRIPT ROOT TAG in the sandbox; what it printed, by name."""
    tag = f"dnd-{runtime}-{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run(
            [
                "unshare",
                *("--net", "--mount", "--pid", "--fork", "--mount-proc"),
                *("--propagation", "private", "--kill-child=SIGTERM"),
                "bash",
                str(HERE / script),
                str(HERE.parent),
                tag,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
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


def remove_cgroup(tag: str) -> None:
    """The cgroup /TAG on every hierarchy, deepest first."""
    for top in CGROUP_ROOT.glob(f"*/{tag}"):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                path.rmdir()
        top.rmdir()
    if (CGROUP_ROOT / tag).is_dir():
        (CGROUP_ROOT / tag).rmdir()
