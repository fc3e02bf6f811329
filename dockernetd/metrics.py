"""Metrics: plain counters where the work happens, Prometheus families when scraped.

Recording must cost a call almost nothing, so nothing here takes a lock or
formats a label: the RPC layer adds to dicts and a histogram's bucket list, in
the trio thread; the firewall's commit histogram is written by the kernel
thread only.  One writer per number, so a scrape (in the trio thread) reads a
value that is at worst one event old, never a torn one.

:mod:`dockernetd.prometheus` turns them into metric families when scraped;
nothing here imports ``prometheus_client``, so a daemon without
``--metrics-addr`` never loads it.  Method names are counted under a contract
name or ``unknown``: a client cannot mint a new series by sending a strange one.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

#: RPC latency buckets (seconds): a status call is ~0.1 ms, a port with its rules a few ms.
RPC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: Firewall commit buckets (seconds): a small table commits in ~1 ms, 5,000 rules in ~10 ms.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
UNKNOWN_METHOD = "unknown"


class Histogram:
    """Cumulative-on-read buckets: ``observe`` is one bisect and three additions."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, int]]:
        """(upper bound, cumulative count) pairs, as Prometheus wants them."""
        total = 0
        out = []
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@dataclass
class RpcMetrics:
    """What the RPC layer counts, by method (a contract name or ``unknown``)."""

    methods: frozenset[str]
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    latency: dict[str, Histogram] = field(default_factory=dict)
    open_connections: int = 0
    refused_connections: int = 0

    def observe(self, method: object, error_code: int | None, seconds: float) -> None:
        name = method if isinstance(method, str) and method in self.methods else UNKNOWN_METHOD
        self.calls[name, "ok" if error_code is None else "error"] += 1
        if error_code is not None:
            self.errors[error_code] += 1
        histogram = self.latency.get(name)
        if histogram is None:
            histogram = self.latency[name] = Histogram(RPC_BUCKETS)
        histogram.observe(seconds)


@dataclass
class ProxyCounts:
    """Relayed connections (TCP) and flows (UDP) of every proxy, by protocol."""

    relayed: Counter[str] = field(default_factory=Counter)
    open: Counter[str] = field(default_factory=Counter)


class CommitTimes:
    """Firewall commit durations by table set; written by the kernel thread alone."""

    def __init__(self) -> None:
        self.by_tables: dict[str, Histogram] = {}

    def observe(self, tables: Iterable[str], seconds: float) -> None:
        key = ",".join(tables)
        histogram = self.by_tables.get(key)
        if histogram is None:
            histogram = self.by_tables[key] = Histogram(COMMIT_BUCKETS)
        histogram.observe(seconds)


def process_age() -> float:
    """Seconds since this process started (the kernel's start time, so imports count)."""
    with open("/proc/self/stat") as f:
        started_ticks = int(f.read().rpartition(")")[2].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
