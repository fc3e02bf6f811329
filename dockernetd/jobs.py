"""Jobs: every piece of work the daemon does for someone is a named, logged job.

Docker 1.x ran ``init_networkdriver`` and each network handler as an engine
job with a name and an environment.  Here a job is a context manager that logs
its start (debug), then one entry with its outcome and duration.  The log
record carries journald-style fields (uppercase names: ``JOB``,
``CONTAINER_ID``, ``OUTCOME``, ``ERROR_CODE``, ``DURATION_US``, ``PEER_UID``,
``PEER_PID``) in ``record.fields``, so a journal handler can send them as they
are and a terminal handler can print them on one line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, StartupError

log = logging.getLogger("dockernetd.jobs")


@dataclass(frozen=True)
class Peer:
    """Who asked: the credentials of the socket's other end (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


@dataclass
class Job:
    name: str
    container_id: str = ""
    peer: Peer | None = None
    env: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"JOB": self.name}
        if self.container_id:
            out["CONTAINER_ID"] = self.container_id
        if self.peer is not None:
            out["PEER_UID"] = self.peer.uid
            out["PEER_PID"] = self.peer.pid
        if self.env:
            out["JOB_ENV"] = json.dumps(self.env, sort_keys=True)
        return out

    def describe(self) -> str:
        return f"{self.name}({self.container_id})" if self.container_id else self.name


@contextmanager
def run_job(job: Job, *, query: bool = False) -> Iterator[Job]:
    """Log the job's start and, once it ends, its outcome and duration.

    An ApiError is an answered failure and a StartupError a refused start (both
    logged without traceback); any other exception is a bug (logged with its
    traceback).  Every exception propagates.  A ``query`` (a call that changes
    nothing, such as ``status``) that succeeds is logged at DEBUG: a monitor
    polling it must not fill the journal (nor pay for an entry per call).
    """
    fields = job.fields()
    log.debug("%s: start", job.describe(), extra={"fields": fields})
    started = time.perf_counter()
    try:
        yield job
    except ApiError as exc:
        _finish(
            job, fields, started, logging.WARNING, f"error {exc.code}: {exc.message}", code=exc.code
        )
        raise
    except StartupError as exc:
        _finish(job, fields, started, logging.ERROR, f"error: {exc}")
        raise
    except Exception as exc:
        _finish(
            job,
            fields,
            started,
            logging.ERROR,
            f"error -32603: {exc!r}",
            code=-32603,
            exc_info=True,
        )
        raise
    except BaseException:  # cancelled (shutdown) or interrupted: not a failure of the job
        _finish(job, fields, started, logging.INFO, "cancelled", outcome="cancelled")
        raise
    _finish(job, fields, started, logging.DEBUG if query else logging.INFO, "ok", outcome="ok")


def _finish(
    job: Job,
    fields: dict[str, Any],
    started: float,
    level: int,
    result: str,
    *,
    outcome: str = "error",
    code: int | None = None,
    exc_info: bool = False,
) -> None:
    if not log.isEnabledFor(level):
        return
    duration_us = int((time.perf_counter() - started) * 1e6)
    fields = {**fields, "OUTCOME": outcome, "DURATION_US": duration_us}
    if code is not None:
        fields["ERROR_CODE"] = code
    log.log(level, "%s: %s", job.describe(), result, extra={"fields": fields}, exc_info=exc_info)


class OneLineFormatter(logging.Formatter):
    """``time level message KEY=value ...`` for a terminal or a plain log file."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            first, _, rest = line.partition("\n")  # keep a traceback below the fields
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"{first} [{extra}]" + (f"\n{rest}" if rest else "")
        return line
