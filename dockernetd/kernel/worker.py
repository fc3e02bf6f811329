"""The kernel worker: one OS thread that owns every kernel handle.

trio tasks call :meth:`KernelWorker.call` with a function taking the
:class:`KernelContext`; the worker runs it in its thread, in submission order,
and hands back the result or the exception.  A caller that is cancelled
stops waiting, but the function still runs to its end: a half-applied
netlink or iptables change would be worse than a late one.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import outcome
import trio

from .conntrack import ConntrackTable
from .firewall import Firewall
from .netlink import Netlink

T = TypeVar("T")


class KernelContext:
    """The handles the worker thread owns, opened in that thread when first needed."""

    def __init__(self) -> None:
        self.netlink = Netlink()
        self._firewall: Firewall | None = None
        self._conntrack: ConntrackTable | None = None

    @property
    def firewall(self) -> Firewall:
        if self._firewall is None:
            self._firewall = Firewall()
        return self._firewall

    @property
    def conntrack(self) -> ConntrackTable:
        if self._conntrack is None:
            self._conntrack = ConntrackTable()
        return self._conntrack

    def close(self) -> None:
        self.netlink.close()
        if self._conntrack is not None:
            self._conntrack.close()


_Job = tuple[Callable[..., Any], tuple[Any, ...], trio.lowlevel.TrioToken, Callable[..., None]]


class KernelWorker:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kernel-worker", daemon=True)
        self._started = threading.Event()
        self._startup_error: BaseException | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(context, *args)`` in the worker thread and return its result."""
        done = trio.Event()
        box: list[outcome.Outcome[T]] = []

        def deliver(result: outcome.Outcome[T]) -> None:
            box.append(result)
            done.set()

        self._jobs.put((fn, args, trio.lowlevel.current_trio_token(), deliver))
        await done.wait()
        return box[0].unwrap()

    def _run(self) -> None:
        try:
            context = KernelContext()
        except BaseException as exc:  # reported to start(), which raises it in trio
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while (job := self._jobs.get()) is not None:
                fn, args, token, deliver = job
                result = outcome.capture(fn, context, *args)
                with contextlib.suppress(trio.RunFinishedError):  # nobody is left to tell
                    token.run_sync_soon(deliver, result)
        finally:
            context.close()

    async def _start(self) -> None:
        self._thread.start()
        await trio.to_thread.run_sync(self._started.wait)
        if self._startup_error is not None:
            raise self._startup_error

    async def _stop(self) -> None:
        self._jobs.put(None)
        await trio.to_thread.run_sync(self._thread.join)


@asynccontextmanager
async def open_kernel_worker() -> AsyncIterator[KernelWorker]:
    """Start the worker thread; it finishes its queue and closes its handles on exit."""
    worker = KernelWorker()
    await worker._start()
    try:
        yield worker
    finally:
        with trio.CancelScope(shield=True):
            await worker._stop()
