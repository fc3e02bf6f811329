"""systemd: socket activation, sd_notify (READY, STATUS, STOPPING, WATCHDOG), the journal.

All of it degrades to nothing outside systemd: no LISTEN_FDS means the daemon binds
its socket itself, no NOTIFY_SOCKET means notifications are not sent, and a
stderr that is not the journal gets one readable line per event instead of
structured entries.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import traceback
from typing import Any

log = logging.getLogger("dockernetd.systemd")


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed (dockernetd.socket), if it passed one."""
    from systemd import daemon

    fds = daemon.listen_fds()  # checks LISTEN_PID, and unsets the variables
    if not fds:
        return None
    if len(fds) > 1:
        log.warning("systemd passed %d sockets; serving the first, fd %d", len(fds), fds[0])
    sock = socket.socket(fileno=fds[0])
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise OSError(f"the socket systemd passed (fd {fds[0]}) is not a Unix stream socket")
    return sock


class Notifier:
    """sd_notify, if the daemon runs under a Type=notify unit."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._failed = False

    def send(self, *assignments: str) -> None:
        if not self.enabled:
            return
        from systemd import daemon

        try:
            daemon.notify("\n".join(assignments))
        except OSError as exc:  # a stale NOTIFY_SOCKET raises, it never returns False
            if not self._failed:
                log.warning("sd_notify failed: %s", exc)
                self._failed = True

    def watchdog_interval(self) -> float | None:
        """Half of WatchdogSec= (as sd_watchdog_enabled), if the watchdog is meant for us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not self.enabled or not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2 / 1e6


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to journald (JOURNAL_STREAM names it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        info = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalHandler(logging.Handler):
    """One journal entry per record, with the job's fields as journal fields.

    Unlike systemd-python's own JournalHandler, it sends only the fields a job put in
    ``record.fields`` (uppercase names), not every LogRecord attribute.
    """

    def __init__(self) -> None:
        super().__init__()
        from systemd import journal

        self._send = journal.send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            fields: dict[str, Any] = getattr(record, "fields", {})
            self._send(
                message,
                PRIORITY=_PRIORITIES.get(record.levelno, 6),
                SYSLOG_IDENTIFIER="dockernetd",
                LOGGER=record.name,
                **{key: str(value) for key, value in fields.items()},
            )
        except Exception:
            self.handleError(record)
