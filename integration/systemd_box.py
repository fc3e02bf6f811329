"""A real systemd as PID 1 in throwaway namespaces, for testing the units for real.

``SystemdBox(directory).up(units, bind=[checkout])`` boots systemd in new pid, mount,
network, uts, ipc and cgroup namespaces (systemd-box-init.sh builds its root: an
overlay of the host's ``/`` whose writes vanish, fresh /proc, /sys, /dev, /run, /tmp)
and returns once ``systemctl is-system-running`` says it has booted. The box has its
own network namespace, so the bridges, rules and sysctls a test makes in it never
reach the host. :meth:`run` runs a command in the box's namespaces; :meth:`down`
powers it off, kills what is left by PID, removes its cgroup and closes its console.

What it needs from the host: root, a cgroup2 hierarchy (mounted under the box's
directory when the host has none), and Debian's systemd, util-linux and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

INIT = Path(__file__).resolve().parent / "systemd-box-init.sh"
SYSTEMD = Path("/lib/systemd/systemd")
BOOT_TIMEOUT = 60.0
_POWEROFF = signal.SIGRTMIN + 4  # systemd: an orderly poweroff
_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TERM": "dumb",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


class SystemdBox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.console_log = directory / "console.log"
        self.init_pid: int | None = None  # the box's systemd, as the host sees it
        self._unshare: subprocess.Popen[bytes] | None = None
        self._cgroup: Path | None = None
        self._cgroup_mount: Path | None = None
        self._console: threading.Thread | None = None

    def up(self, units: Sequence[Path] = (), bind: Sequence[Path] = ()) -> None:
        """Boot the box; on any failure it is taken down again and the console log raised."""
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {
            **_ENV,
            "BOX_UNITS": " ".join(str(u) for u in units),
            "BOX_BIND": " ".join(str(b) for b in bind),
        }
        master, console = pty.openpty()  # systemd wants a terminal for /dev/console
        # reads until every holder of the console is gone (EIO), then closes the master
        self._console = threading.Thread(target=self._copy_console, args=(master,), daemon=True)
        self._console.start()
        try:
            try:
                self._cgroup = self._make_cgroup()
                cgroup_procs = self._cgroup / "cgroup.procs"
                self._unshare = subprocess.Popen(
                    [
                        "unshare",
                        *("--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "--cgroup"),
                        "--propagation=private",
                        str(INIT),
                        str(self.directory),
                    ],
                    stdin=console,
                    stdout=console,
                    stderr=console,
                    env=env,
                    start_new_session=True,
                    # into the box cgroup before unshare: the new cgroup namespace is rooted there
                    preexec_fn=lambda: cgroup_procs.write_text("0"),
                )
            finally:
                os.close(console)
            self._wait_for_boot()
        except BaseException:
            self.down()
            raise

    def run(
        self, *cmd: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the box's namespaces (outside its units), with a clean environment."""
        assert self.init_pid is not None, "the box is not up"
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", "env", "-i", *_env_args(), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def down(self) -> None:
        """Power off, then kill whatever is left; idempotent."""
        if self.init_pid is None and self._unshare is not None:
            self.init_pid = _child_of(self._unshare.pid)  # failed before it was seen booting
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, _POWEROFF)
            _wait_gone(self.init_pid, 10.0)
            with contextlib.suppress(ProcessLookupError):  # PID 1 gone: its namespace dies
                os.kill(self.init_pid, signal.SIGKILL)
            self.init_pid = None
        if self._unshare is not None:
            try:
                self._unshare.wait(10)
            except subprocess.TimeoutExpired:
                self._unshare.kill()
                self._unshare.wait()
            self._unshare = None
        if self._console is not None:
            self._console.join(10)
            self._console = None
        if self._cgroup is not None:
            _remove_cgroup_tree(self._cgroup)
            self._cgroup = None
        if self._cgroup_mount is not None:
            subprocess.run(["umount", str(self._cgroup_mount)], check=False)
            self._cgroup_mount.rmdir()
            self._cgroup_mount = None
        for mount_point in ("root", "layer"):  # the box's mounts died with its namespace
            with contextlib.suppress(FileNotFoundError):
                (self.directory / mount_point).rmdir()

    def _make_cgroup(self) -> Path:
        for candidate in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
            if _is_cgroup2(candidate):
                hierarchy = candidate
                break
        else:
            hierarchy = self.directory / "cgroup2"
            hierarchy.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", "cgroup2", "none", str(hierarchy)], check=True)
            self._cgroup_mount = hierarchy
        cgroup = hierarchy / f"dockernetd-box-{os.getpid()}-{self.directory.name}"
        cgroup.mkdir()
        return cgroup

    def _wait_for_boot(self) -> None:
        assert self._unshare is not None
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                raise BoxFailed(f"the box exited during boot\n{self.console()}")
            if self.init_pid is None:
                self.init_pid = _child_of(self._unshare.pid)
            elif os.readlink(f"/proc/{self.init_pid}/exe").endswith("/systemd"):
                state = self.run("systemctl", "is-system-running").stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.1)
        raise BoxFailed(f"the box did not boot (state {state or 'unknown'})\n{self.console()}")

    def console(self) -> str:
        """What systemd wrote on its console so far (its boot messages)."""
        with contextlib.suppress(FileNotFoundError):
            return self.console_log.read_text(errors="replace")[-5000:]
        return ""

    def _copy_console(self, master: int) -> None:
        with open(self.console_log, "wb") as log:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every process holding the console is gone
                    break
                if not data:
                    break
                log.write(data)
                log.flush()
        os.close(master)


class BoxFailed(Exception):
    pass


def _env_args() -> list[str]:
    return [f"{k}={v}" for k, v in _ENV.items()]


def _child_of(pid: int) -> int | None:
    with contextlib.suppress(FileNotFoundError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return None


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _is_cgroup2(path: Path) -> bool:
    return (path / "cgroup.controllers").exists()


def _remove_cgroup_tree(cgroup: Path) -> None:
    """Remove the box cgroup, leaves first; its processes take a moment to be gone."""
    deadline = time.monotonic() + 10
    while cgroup.exists():
        for sub in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()
        if time.monotonic() > deadline:
            raise BoxFailed(f"cgroup {cgroup} still busy")
        time.sleep(0.1)
