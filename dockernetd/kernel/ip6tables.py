"""The IPv6 half of the iptables backend: ip6tables-legacy-restore and -save.

python-iptables cannot use an extension for both families in one process: libxtables
keeps one registry of loaded extensions, and MASQUERADE loaded for IPv4 is then "not
found" for IPv6 (python-iptables#135, #316; its author: "only use one address family
per process").  So the IPv6 rules go through the iptables tools, whose language a
:class:`~dockernetd.rules.Rule` already speaks: its save form is what ``-save`` prints
and, after ``-I`` or ``-D``, what ``-restore`` reads.  A change is one restore (a
commit per table, the xtables lock taken with ``-w``), a read is one save; the places
that are the daemon's are the same as in iptables (firewall.py).

The isolation chains and the jump into them are tracked, not read per change: only this
daemon changes them, and boot and repair (which read) set what is tracked.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..rules import (
    DOCKER_CHAIN,
    FILTER6,
    ISOLATION_JUMPS,
    NAT6,
    OWN_FILTER_CHAINS,
    OWNER_TAG,
    RAW6,
    STALE_JUMPS,
    BootPlan,
    Rule,
)

RESTORE = ("ip6tables-legacy-restore", "--noflush", "--wait=10")
SAVE = "ip6tables-legacy-save"
TABLES = (NAT6, FILTER6, RAW6)
ISOLATION_JUMP6 = next(jump for jump in ISOLATION_JUMPS if jump.table == FILTER6)
#: Chains of everyone's, and chains that are all ours, by table.
SHARED = {NAT6: ("POSTROUTING", "OUTPUT"), FILTER6: ("FORWARD",), RAW6: ("PREROUTING",)}
OWN = {NAT6: (DOCKER_CHAIN,), FILTER6: OWN_FILTER_CHAINS, RAW6: ()}
_GUARD = re.compile(r"-A PREROUTING -d \S+/128 ! -i \S+ -j DROP$")  # untagged, as Docker 28's


class Ip6tablesError(Exception):
    """A restore refused; ``committed``: the tables whose part was committed before."""

    def __init__(self, message: str, committed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.committed = list(committed)


@dataclass
class SavedTable:
    """One table as ``-save`` prints it: its chains and its rules (``-A`` lines), in order."""

    chains: set[str]
    rules: list[str]

    def of(self, chain: str) -> list[str]:
        return [line for line in self.rules if line.split(" ", 2)[1] == chain]


class Ip6tables:
    def __init__(self) -> None:
        self._jump_first = False  # whether FORWARD starts with the isolation jump

    # -- boot, repair, verify (they read) -------------------------------------------------

    def setup(self, plan: BootPlan) -> None:
        """As Firewall.setup: the opposite icc rule out, each boot rule in at the top
        unless there, the DOCKER chain kept (its stale jumps out) or made, the jumps last."""
        saved = self.save()
        script: dict[str, list[str]] = {table: [] for table in TABLES}
        for rule in plan.absent:
            if rule.save_line() in saved[rule.table].rules:
                script[rule.table].append(_delete(rule))
        for rule in plan.present:
            if rule.save_line() not in saved[rule.table].rules:
                script[rule.table].append(f"-I {rule.chain} 1 {_args(rule)}")
        if DOCKER_CHAIN in saved[NAT6].chains:
            held = saved[NAT6].rules
            script[NAT6] += [_delete(r) for r in STALE_JUMPS if r.table == NAT6 and _in(r, held)]
        else:
            script[NAT6].insert(0, f":{DOCKER_CHAIN} - [0:0]")
        script[NAT6] += [rule.save_line() for rule in plan.jumps]
        self.restore(script)

    def reconcile(self, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        """Our places hold exactly ``desired`` (a multiset), the isolation jump first."""
        desired = list(desired)
        saved = self.save()
        missing, extra = _compare(saved, desired)
        script: dict[str, list[str]] = {table: [] for table in TABLES}
        declared = [
            f":{chain} - [0:0]"
            for chain in OWN_FILTER_CHAINS
            if chain not in saved[FILTER6].chains
            and any(rule.chain == chain or rule.args[-1] == chain for rule in missing)
        ]
        script[FILTER6] += declared
        for table, line in extra:
            script[table].append("-D" + line[2:])
        for rule in missing:
            if rule != ISOLATION_JUMP6:
                script[rule.table].append(self._insert(rule))
        wanted = ISOLATION_JUMP6 in desired
        if wanted:  # first in FORWARD, above what went in at the top
            if ISOLATION_JUMP6 not in missing:
                script[FILTER6].append(_delete(ISOLATION_JUMP6))
            script[FILTER6].append(f"-I FORWARD 1 {_args(ISOLATION_JUMP6)}")
        left = [line for t, line in extra if t == FILTER6]
        emptied = all(
            chain in saved[FILTER6].chains and set(saved[FILTER6].of(chain)) <= set(left)
            for chain in OWN_FILTER_CHAINS
        )
        if not wanted and emptied:
            script[FILTER6] += [f"-X {chain}" for chain in OWN_FILTER_CHAINS]
        self.restore(script)
        self._jump_first = wanted
        return missing, [line for _, line in extra]

    def drift(self, plan: BootPlan, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        saved = self.save()
        boot = [r for r in (*plan.present, *plan.jumps) if not _in(r, saved[r.table].rules)]
        missing, extra = _compare(saved, desired)
        return boot + missing, [line for _, line in extra]

    def teardown(self, plan: BootPlan) -> list[str]:
        """Every rule and chain of ours out (a switch to the nftables backend)."""
        saved = self.save()
        boot = [r for r in (*plan.present, *plan.jumps) if _in(r, saved[r.table].rules)]
        _, extra = _compare(saved, [])
        script: dict[str, list[str]] = {table: [] for table in TABLES}
        for rule in boot:
            script[rule.table].append(_delete(rule))
        for table, line in extra:
            script[table].append("-D" + line[2:])
        for table, chains in OWN.items():
            script[table] += [f"-X {chain}" for chain in chains if chain in saved[table].chains]
        self.restore(script)
        self._jump_first = False
        return [r.save_line() for r in boot] + [line for _, line in extra]

    # -- per operation ----------------------------------------------------------------------

    def apply(self, insert: Sequence[Rule], delete: Sequence[Rule]) -> None:
        """One restore: ``delete``'s rules out, ``insert``'s in at the top of their chains
        (raw's appended, FORWARD's below the isolation jump), all or nothing: the tables
        committed before a refusal are changed back.  The jump comes and goes with the
        isolation chains, which the planner changes together (rules.isolation_rules)."""
        try:
            self.restore(self._script(insert, delete))
        except Ip6tablesError as exc:
            done = set(exc.committed)
            with contextlib.suppress(Ip6tablesError):
                self.restore(
                    self._script(
                        [r for r in delete if r.table in done],
                        [r for r in insert if r.table in done],
                    )
                )
            raise
        if ISOLATION_JUMP6 in insert:
            self._jump_first = True
        elif ISOLATION_JUMP6 in delete:
            self._jump_first = False

    def _script(self, insert: Sequence[Rule], delete: Sequence[Rule]) -> dict[str, list[str]]:
        script: dict[str, list[str]] = {table: [] for table in TABLES}
        jump_first = self._jump_first
        if ISOLATION_JUMP6 in insert:
            script[FILTER6] += [f":{chain} - [0:0]" for chain in OWN_FILTER_CHAINS]
        for rule in delete:
            script[rule.table].append(_delete(rule))
        if ISOLATION_JUMP6 in delete:
            script[FILTER6] += [f"-X {chain}" for chain in OWN_FILTER_CHAINS]
            jump_first = False
        for rule in insert:
            if rule == ISOLATION_JUMP6:
                script[FILTER6].append(f"-I FORWARD 1 {_args(rule)}")
                jump_first = True
            else:
                script[rule.table].append(self._insert(rule, jump_first=jump_first))
        return script

    def _insert(self, rule: Rule, *, jump_first: bool = False) -> str:
        if rule.table == RAW6:
            return rule.save_line()
        below = rule.chain == "FORWARD" and rule != ISOLATION_JUMP6 and jump_first
        return f"-I {rule.chain} {2 if below else 1} {_args(rule)}"

    # -- the tools ----------------------------------------------------------------------------

    def restore(self, script: dict[str, list[str]]) -> None:
        """Run the lines of each table that has any; Ip6tablesError says which committed."""
        text, commits = [], []  # commits: (line number of COMMIT, table)
        for table, lines in script.items():
            if lines:
                text += [f"*{table.split()[1]}", *lines, "COMMIT"]
                commits.append((len(text), table))
        if not text:
            return
        done = subprocess.run(
            RESTORE, input="\n".join(text) + "\n", capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            failed = re.search(r"line (\d+) failed", done.stderr)
            at = int(failed.group(1)) if failed else 0
            raise Ip6tablesError(message, [t for line, t in commits if line < at])

    def save(self) -> dict[str, SavedTable]:
        """Our three tables as ip6tables-legacy-save prints them."""
        done = subprocess.run((SAVE,), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Ip6tablesError(done.stderr.strip() or f"{SAVE} failed")
        tables = {table: SavedTable(set(), []) for table in TABLES}
        current: SavedTable | None = None
        for line in done.stdout.splitlines():
            if line.startswith("*"):
                current = tables.get("ip6 " + line[1:])
            elif current is None:
                continue
            elif line.startswith(":"):
                current.chains.add(line[1:].split()[0])
            elif line.startswith("-A "):
                current.rules.append(line)
        return tables


def _compare(
    saved: dict[str, SavedTable], desired: Iterable[Rule]
) -> tuple[list[Rule], list[tuple[str, str]]]:
    """The desired rules not there, and the lines in our places no desired rule accounts for."""
    wanted: Counter[tuple[str, str]] = Counter()
    by_line: dict[tuple[str, str], Rule] = {}
    for rule in desired:
        key = (rule.table, rule.save_line())
        wanted[key] += 1
        by_line[key] = rule
    extra = []
    for table, held in saved.items():
        ours = [
            line
            for chain in (*SHARED[table], *OWN[table])
            for line in held.of(chain)
            if chain in OWN[table] or f'"{OWNER_TAG}' in line or _GUARD.match(line)
        ]
        for line in ours:
            if wanted[(table, line)] > 0:
                wanted[(table, line)] -= 1
            else:
                extra.append((table, line))
    missing = [by_line[key] for key, count in wanted.items() for _ in range(count)]
    return missing, extra


def _in(rule: Rule, lines: list[str]) -> bool:
    return rule.save_line() in lines


def _args(rule: Rule) -> str:
    """The rule after its chain: ``-A FORWARD -i br0 ...`` less ``-A FORWARD``."""
    return rule.save_line().split(" ", 2)[2]


def _delete(rule: Rule) -> str:
    return f"-D {rule.chain} {_args(rule)}"
