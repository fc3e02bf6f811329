"""The kernel worker's group commit, with a firewall that only records (pure logic).

The first change holds the worker (its apply waits on a gate) while the next ones
queue up behind it; then the queue is released and the groups are read back.
"""

from __future__ import annotations

import threading
from typing import Any

import trio
import trio.testing

from dockernetd.errors import FirewallFailed
from dockernetd.kernel.firewall import FirewallError
from dockernetd.kernel.worker import open_kernel_worker
from dockernetd.rules import FILTER, Rule

A, B, C, BAD = (Rule(FILTER, "FORWARD", ("-s", f"10.0.0.{n}/32", "-j", "ACCEPT")) for n in range(4))


class RecordingFirewall:
    def __init__(self) -> None:
        self.commits: list[tuple[list[Rule], list[Rule]]] = []
        self.busy = threading.Event()
        self.gate = threading.Event()

    def apply(self, insert: Any = (), delete: Any = ()) -> None:
        self.busy.set()
        assert self.gate.wait(10)
        if BAD in insert:
            raise FirewallError("Bad rule (does a matching rule exist in that chain?)")
        self.commits.append((list(insert), list(delete)))


class FakeContext:
    def __init__(self, firewall: RecordingFirewall) -> None:
        self.firewall = firewall

    def close(self) -> None:
        pass


def run_queued(*jobs: Any) -> tuple[RecordingFirewall, dict[str, Any]]:
    """Run the first job, queue the others behind it, release; the commits and each outcome."""
    firewall = RecordingFirewall()
    outcomes: dict[str, Any] = {}

    async def main() -> None:
        async with (
            open_kernel_worker(lambda: FakeContext(firewall)) as worker,
            trio.open_nursery() as nursery,
        ):

            async def run(name: str, job: Any) -> None:
                try:
                    outcomes[name] = await job(worker)
                except FirewallFailed as exc:
                    outcomes[name] = exc

            first_name, first = jobs[0]
            nursery.start_soon(run, first_name, first)
            await trio.to_thread.run_sync(firewall.busy.wait)
            for name, job in jobs[1:]:
                nursery.start_soon(run, name, job)
                await trio.testing.wait_all_tasks_blocked()  # queued in this order
            firewall.gate.set()

    trio.run(main)
    return firewall, outcomes


def insert(rule: Rule) -> Any:
    return lambda worker: worker.change_rules(insert=[rule])


def test_changes_queued_together_share_one_commit():
    firewall, outcomes = run_queued(
        ("a", insert(A)), ("b", insert(B)), ("c", lambda w: w.change_rules(delete=[C]))
    )
    assert firewall.commits == [([A], []), ([B], [C])]
    assert outcomes == {"a": None, "b": None, "c": None}


def test_a_failing_group_is_retried_change_by_change():
    firewall, outcomes = run_queued(
        ("a", insert(A)), ("b", insert(B)), ("bad", insert(BAD)), ("c", insert(C))
    )
    assert firewall.commits == [([A], []), ([B], []), ([C], [])]
    # the firewall's refusal leaves the worker as the API's error, with the reason
    assert isinstance(outcomes["bad"], FirewallFailed)
    assert (
        outcomes["bad"].message == "iptables: Bad rule (does a matching rule exist in that chain?)"
    )
    assert (outcomes["a"], outcomes["b"], outcomes["c"]) == (None, None, None)


def test_other_jobs_keep_their_place_in_the_queue():
    seen: list[int] = []

    def count(ctx: Any) -> int:
        seen.append(len(ctx.firewall.commits))
        return len(seen)

    firewall, outcomes = run_queued(
        ("a", insert(A)), ("b", insert(B)), ("call", lambda w: w.call(count)), ("c", insert(C))
    )
    assert firewall.commits == [([A], []), ([B], []), ([C], [])]
    assert seen == [2]  # after B's commit, before C's
    assert outcomes["call"] == 1


def test_a_lone_change_is_applied_as_is():
    firewall, outcomes = run_queued(("a", insert(A)))
    assert firewall.commits == [([A], [])]
    assert outcomes == {"a": None}


def test_posted_work_runs_in_order_before_later_calls_and_its_failure_is_logged(caplog):
    """post (a released veth's deletion) is not waited for, but a later call finds it done;
    when it fails, the log says what failed."""
    done: list[str] = []

    def work(context: Any, name: str) -> None:
        if name == "broken":
            raise OSError("gone already")
        done.append(name)

    async def main() -> list[str]:
        async with open_kernel_worker(lambda: FakeContext(RecordingFirewall())) as worker:
            worker.post(work, "first", what="deleting veth first")
            worker.post(work, "broken", what="deleting veth broken")
            # the failure is reported back to this loop before the later call's answer
            seen: list[str] = await worker.call(lambda context: list(done))
            return seen

    assert trio.run(main) == ["first"]
    assert "deleting veth broken failed: gone already" in caplog.text
