"""The kernel worker: one OS thread that owns every kernel handle.

trio tasks call :meth:`KernelWorker.call` with a function taking the
:class:`KernelContext`; the worker runs it in its thread, in submission order,
and hands back the result or the exception.  A caller that is cancelled
stops waiting, but the function still runs to its end: a half-applied
netlink or iptables change would be worse than a late one.

Rule changes (:meth:`KernelWorker.change_rules`) are group-committed: legacy
iptables rewrites a whole table per commit, so the changes waiting in the
queue when the worker gets to one are applied together, one commit per table.
If that fails, each is applied on its own, so every caller gets its own answer.

The firewall's refusals (:class:`FirewallError`) leave the worker as the API's
:class:`~dockernetd.errors.FirewallFailed`, here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import outcome
import trio

from ..errors import FirewallFailed
from ..metrics import CommitTimes
from ..rules import Rule
from .conntrack import ConntrackTable
from .firewall import Firewall, FirewallBackend, FirewallError
from .netlink import Netlink

T = TypeVar("T")
log = logging.getLogger("dockernetd.worker")


class KernelContext:
    """The handles the worker thread owns, opened in that thread when first needed."""

    def __init__(
        self,
        commit_times: CommitTimes | None = None,
        firewall_backend: str = "iptables",
        ipv6: bool = True,  # the firewall's IPv6 half (--ip6tables)
    ) -> None:
        self.netlink = Netlink()
        self._commit_times = commit_times
        self._firewall_backend = firewall_backend
        self._ipv6 = ipv6
        self._firewall: FirewallBackend | None = None
        self._conntrack: ConntrackTable | None = None

    @property
    def firewall(self) -> FirewallBackend:
        if self._firewall is None:
            if self._firewall_backend == "nftables":
                from .nftables import NftFirewall

                self._firewall = NftFirewall(self._commit_times, ipv6=self._ipv6)
            else:
                self._firewall = Firewall(self._commit_times, ipv6=self._ipv6)
        return self._firewall

    @property
    def conntrack(self) -> ConntrackTable:
        if self._conntrack is None:
            self._conntrack = ConntrackTable()
        return self._conntrack

    def close(self) -> None:
        self.netlink.close()
        if self._firewall is not None:
            self._firewall.close()
        if self._conntrack is not None:
            self._conntrack.close()


@dataclass(frozen=True)
class RuleChange:
    insert: Sequence[Rule]
    delete: Sequence[Rule]


_Job = tuple[
    Callable[..., Any] | RuleChange, tuple[Any, ...], trio.lowlevel.TrioToken, Callable[..., None]
]


class KernelWorker:
    def __init__(self, open_context: Callable[[], KernelContext] = KernelContext) -> None:
        self._open_context = open_context
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kernel-worker", daemon=True)
        self._started = threading.Event()
        self._startup_error: BaseException | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(context, *args)`` in the worker thread and return its result."""
        result: T = await self._submit(fn, args)
        return result

    def post(self, fn: Callable[..., Any], *args: Any, what: str) -> None:
        """Run ``fn(context, *args)`` in the worker thread without waiting for it: work
        whose end nobody needs to see (a released veth's deletion, which the kernel takes
        ~20 ms to finish).  It runs in order with every other call, so a later call finds
        it done; a failure is logged, saying ``what`` failed."""

        def deliver(result: outcome.Outcome[Any]) -> None:
            if isinstance(result, outcome.Error):
                log.warning("%s failed: %s", what, result.error)

        self._jobs.put((fn, args, trio.lowlevel.current_trio_token(), deliver))

    async def change_rules(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None:
        """Insert and delete rules, all or nothing (FirewallFailed), group-committed."""
        with _translated():
            await self._submit(RuleChange(insert, delete), ())

    async def remove_rules(self, rules: Sequence[Rule]) -> None:
        """Delete rules that may be gone already: one commit, or if that fails each on its
        own, so one rule deleted behind our back does not keep the others (logged)."""
        try:
            await self.change_rules(delete=rules)
        except FirewallFailed:
            for rule in rules:
                try:
                    await self.change_rules(delete=[rule])
                except FirewallFailed as exc:
                    log.warning("Error on iptables delete: %s", exc.message)

    async def firewall(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(firewall, *args)`` in the worker thread (FirewallFailed if refused)."""
        with _translated():
            result: T = await self._submit(_on_firewall, (fn, *args))
        return result

    async def _submit(self, work: Callable[..., Any] | RuleChange, args: tuple[Any, ...]) -> Any:
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []

        def deliver(result: outcome.Outcome[Any]) -> None:
            box.append(result)
            done.set()

        self._jobs.put((work, args, trio.lowlevel.current_trio_token(), deliver))
        await done.wait()
        return box[0].unwrap()

    def _run(self) -> None:
        try:
            context = self._open_context()
        except BaseException as exc:  # reported to start(), which raises it in trio
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        held: deque[_Job | None] = deque()  # taken from the queue while grouping, run next
        try:
            while (job := held.popleft() if held else self._jobs.get()) is not None:
                work, args, _, _ = job
                if isinstance(work, RuleChange):
                    group = [job, *self._more_rule_changes(held)]
                    changes = [cast(RuleChange, change) for change, *_ in group]
                    for member, result in zip(group, _apply_group(context, changes), strict=True):
                        _deliver(member, result)
                else:
                    _deliver(job, outcome.capture(work, context, *args))
        finally:
            context.close()

    def _more_rule_changes(self, held: deque[_Job | None]) -> list[_Job]:
        """The rule changes queued right behind; the first other job goes to ``held``."""
        more: list[_Job] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return more
            if job is None or not isinstance(job[0], RuleChange):
                held.append(job)
                return more
            more.append(job)

    async def _start(self) -> None:
        self._thread.start()
        await trio.to_thread.run_sync(self._started.wait)
        if self._startup_error is not None:
            raise self._startup_error

    async def _stop(self) -> None:
        self._jobs.put(None)
        await trio.to_thread.run_sync(self._thread.join)


def _apply_group(context: KernelContext, changes: list[RuleChange]) -> list[outcome.Outcome[None]]:
    """One commit per table for all of ``changes``; if that fails, each on its own."""
    if len(changes) > 1:
        together = outcome.capture(
            context.firewall.apply,
            [rule for change in changes for rule in change.insert],
            [rule for change in changes for rule in change.delete],
        )
        if isinstance(together, outcome.Value):
            return [outcome.Value(None) for _ in changes]  # an outcome is unwrapped only once
    return [outcome.capture(context.firewall.apply, c.insert, c.delete) for c in changes]


def _on_firewall(context: KernelContext, fn: Callable[..., T], *args: Any) -> T:
    """``fn`` names a method of FirewallBackend: that method of the daemon's backend."""
    method: Callable[..., T] = getattr(context.firewall, fn.__name__)
    return method(*args)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except FirewallError as exc:
        raise FirewallFailed(f"{exc.backend}: {exc}") from exc


def _deliver(job: _Job, result: outcome.Outcome[Any]) -> None:
    _, _, token, deliver = job
    with contextlib.suppress(trio.RunFinishedError):  # nobody is left to tell
        token.run_sync_soon(deliver, result)


@asynccontextmanager
async def open_kernel_worker(
    open_context: Callable[[], KernelContext] = KernelContext,
) -> AsyncIterator[KernelWorker]:
    """Start the worker thread; it finishes its queue and closes its handles on exit."""
    worker = KernelWorker(open_context)
    await worker._start()
    try:
        yield worker
    finally:
        with trio.CancelScope(shield=True):
            await worker._stop()
