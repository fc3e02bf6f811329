"""iptables through python-iptables: apply, reconcile and delete :class:`~dockernetd.rules.Rule`.

One address family per process: python-iptables cannot hold an extension for both (see
ip6tables.py), so the daemon's Firewall is IPv4's and hands the rules of the ``ip6``
tables to a Firewall of IPv6 in a process of its own, in the same operations, and undoes
both halves together.

python-iptables writes the *legacy* x_tables (``iptables-legacy-save`` shows what it
did), is not thread-safe (only the kernel worker may call this module), and
rewrites a whole table on every commit; so every operation here is one commit per
table, changes that belong together are batched into it, and a failure rolls the
batch back: the kernel never keeps half an operation.  The daemon knows the rules it
owns from its own records (each mapping and link rebuilds its rules), so no operation
scans a chain to find them; only boot and verify read the chains.  Commits hold
``/run/xtables.lock``, as ``iptables -w`` does, so they do not race the iptables
command.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import glob
import logging
import os
import re
import socket
import struct
import sysconfig
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from ..metrics import CommitTimes
from ..rules import (
    DOCKER_CHAIN,
    FILTER,
    IP6,
    ISOLATION_1,
    ISOLATION_JUMPS,
    NAT,
    OWN_FILTER_CHAINS,
    OWNER_TAG,
    RAW,
    STALE_JUMPS,
    BootPlan,
    Rule,
)
from .ip6tables import Ip6tablesProcess

log = logging.getLogger("dockernetd.firewall")
_libc = ctypes.CDLL(None, use_errno=True)

XTABLES_LOCK = "/run/xtables.lock"
LOCK_TIMEOUT = 10.0
#: Compiled rules kept for later deletes: ~1 KB each, two per published port.
COMPILED_RULES = 16384
_RULE_FIELDS = {
    "-s": "src",
    "-d": "dst",
    "-i": "in_interface",
    "-o": "out_interface",
    "-p": "protocol",
}
#: Protocols iptables-save names otherwise than python-iptables does.
_PROTOCOLS = {"ipv6-icmp": "icmpv6"}


IPT_SO_GET_INFO = 64  # linux/netfilter_ipv4/ip_tables.h: IPT_BASE_CTL (IP6T_ the same)
_GET_INFO = struct.Struct("32sI5I5III")  # struct ipt_getinfo: name ... num_entries, size


class FirewallError(Exception):
    """The firewall refused a change; nothing of the change is left in the kernel."""

    backend = "iptables"  # what the API's message starts with


def library_hints() -> dict[str, str]:
    """Where python-iptables' C libraries are, so importing it starts no ldconfig or gcc.

    Left to itself, iptc looks for libxtables, its xtwrapper extension and the
    xtables plugins with ctypes.util.find_library and ``ldconfig -v``, which run
    ldconfig and gcc several times: most of its import time.  Given the
    directories, it opens the files directly.  It also imports distutils, which
    setuptools' shim replaces with its own (135 ms of imports) unless the process
    started with SETUPTOOLS_USE_DISTUTILS=stdlib: so the IPv6 firewall's child,
    which inherits these, is ready in ~0.1 s instead of ~0.37 s.
    """
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    hints: dict[str, str] = {"SETUPTOOLS_USE_DISTUTILS": "stdlib"}
    for libdir in (f"/usr/lib/{multiarch}", "/usr/lib", "/usr/lib64"):
        if os.path.isdir(f"{libdir}/xtables"):
            hints["XTABLES_LIBDIR"] = f"{libdir}/xtables"
            hints["IPTABLES_LIBDIR"] = f"{libdir}:{sysconfig.get_path('platlib')}"
            versions = glob.glob(f"{libdir}/libxtables.so.*[0-9]")
            if versions:
                major = min(versions, key=len).rsplit(".", 1)[-1]  # libxtables.so.12
                hints["PYTHON_IPTABLES_XTABLES_VERSION"] = major
            break
    return hints


class FirewallBackend(Protocol):
    """What the daemon asks of a firewall, on the kernel thread: this module's Firewall
    (legacy iptables) or nftables.NftFirewall.  Callers name a method through this class
    (``kernel.firewall(FirewallBackend.reconcile, desired)``); the worker calls it on the
    backend the daemon runs with."""

    def setup(self, plan: BootPlan) -> None: ...

    def reconcile(self, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]: ...

    def drift(self, plan: BootPlan, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]: ...

    def apply(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None: ...

    def changed_by_others(self) -> bool: ...

    def forget_other_backend(self, plan: BootPlan) -> list[str]: ...

    def close(self) -> None: ...


class Firewall:
    """Legacy iptables of one family: IPv4's (``nat``, ``filter``, ``raw``), which with
    ``ipv6`` passes the ``ip6`` tables' rules on to IPv6's in its own process
    (ip6tables.py), or IPv6's (``family=6``: ``ip6 nat`` and so on)."""

    def __init__(
        self, commit_times: CommitTimes | None = None, *, ipv6: bool = True, family: int = 4
    ) -> None:
        self._commit_times = commit_times  # observed here, in the kernel thread only
        for name, value in library_hints().items():
            os.environ.setdefault(name, value)
        import iptc  # a C library with global state: only here, only in the worker

        self._iptc = iptc
        prefix = IP6 if family == 6 else ""
        self._nat, self._filter, self._raw = (prefix + name for name in (NAT, FILTER, RAW))
        self._jump = ISOLATION_JUMPS[family == 6]  # into the isolation chains
        self._rule_class = iptc.Rule6 if family == 6 else iptc.Rule
        table_class = iptc.Table6 if family == 6 else iptc.Table
        self._tables = {prefix + name: table_class(name) for name in (NAT, FILTER, RAW)}
        for table in self._tables.values():
            table.autocommit = False  # we commit once per operation
        # python-iptables takes ~1 ms of Python to turn a rule into kernel bytes (and
        # again on delete); a published port's rules are compiled once.
        self._compiled = functools.lru_cache(maxsize=COMPILED_RULES)(self._compile)
        self._family = socket.AF_INET6 if family == 6 else socket.AF_INET
        self._info_socket = socket.socket(self._family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._seen = self._table_sizes()  # the tables as our last commit or look left them
        self._noticed = False  # another program's change, seen before one of our commits
        # IPv6's firewall, in its own process
        self._ip6 = Ip6tablesProcess() if family == 4 and ipv6 else None

    def close(self) -> None:
        self._info_socket.close()
        if self._ip6 is not None:
            self._ip6.close()

    # -- noticing others' changes ---------------------------------------------------------

    def changed_by_others(self) -> bool:
        """Whether a table changed since this firewall last committed or looked: one
        getsockopt per table (its rule count and size), no read of any rule.

        Another program's change (``iptables -F``, a firewall manager reloading) shows
        here once; the caller then compares every rule (verify) and puts ours back.
        """
        now = self._table_sizes()
        changed = self._noticed or now != self._seen
        self._seen, self._noticed = now, False
        if self._ip6 is not None:
            changed |= bool(self._ip6.call("changed_by_others"))
        return changed

    def _table_sizes(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._table_size(name) for name in self._tables)

    def _table_size(self, name: str) -> tuple[int, int]:
        """(entries, bytes) of a table as the kernel holds it; (0, 0) if it is not loaded."""
        request = bytearray(_GET_INFO.pack(name.removeprefix(IP6).encode(), 0, *[0] * 10, 0, 0))
        size = ctypes.c_uint32(len(request))
        buffer = (ctypes.c_char * len(request)).from_buffer(request)
        fd = self._info_socket.fileno()
        level = socket.IPPROTO_IPV6 if self._family == socket.AF_INET6 else socket.IPPROTO_IP
        if _libc.getsockopt(fd, level, IPT_SO_GET_INFO, buffer, ctypes.byref(size)):
            return (0, 0)
        *_, entries, length = _GET_INFO.unpack(bytes(request))
        return entries, length

    # -- boot ---------------------------------------------------------------------------

    def setup(self, plan: BootPlan) -> None:
        """Docker 1.4's setupIPTables and DOCKER chain, without duplicating anything.

        The rules inside DOCKER and the tagged FORWARD rules are left alone: a
        restarted daemon keeps forwarding published ports while it reconciles them
        (:meth:`reconcile`).  Each table is one commit, so the jumps into DOCKER are
        never missing, not even for an instant.
        """
        plan, plan6 = self._by_family(plan)
        more = sorted({r.table for r in plan.present} - {self._nat, self._filter})  # raw, if any
        with self._commit(self._nat, self._filter, *more):
            for rule in plan.absent:
                self._delete_if_present(rule)
            for rule in plan.present:
                if not self._present(rule):
                    self._chain(rule.table, rule.chain).insert_rule(self._build(rule))
            nat = self._tables[self._nat]
            if nat.is_chain(DOCKER_CHAIN):  # jumps to it can only exist if it does
                for rule in STALE_JUMPS:
                    if rule.table == self._nat:
                        self._delete_if_present(rule)
            else:
                nat.create_chain(DOCKER_CHAIN)
            for rule in plan.jumps:
                self._chain(rule.table, rule.chain).append_rule(self._build(rule))
        if self._ip6 is not None:
            self._ip6.call("setup", plan6)

    def forget_other_backend(self, plan: BootPlan) -> list[str]:
        """What the nftables backend left, if it ran before: its table, deleted."""
        from .nftables import table_exists

        if not table_exists():  # one netlink request; libnftables costs ~40 ms to load
            return []
        from .libnftables import Nft

        nft = Nft()
        try:
            nft.run("delete table inet dockernetd")
        finally:
            nft.close()
        return ["nftables table inet dockernetd"]

    def teardown(self, plan: BootPlan) -> list[str]:
        """Everything of the daemon's in the iptables tables, out: the boot rules and
        jumps, the DOCKER chain, every owned rule and chain (when switching backends)."""
        plan, plan6 = self._by_family(plan)
        removed = [r.save_line() for r in (*plan.present, *plan.jumps) if self._present(r)]
        if self._ip6 is not None:
            removed += self._ip6.call("teardown", plan6)
        with self._commit(*self._tables):
            for rule in (*plan.present, *plan.jumps):
                self._delete_if_present(rule)
            _, extra = self._scan([], delete_extra=True)
            for table, chain in self._own_chains():
                if self._tables[table].is_chain(chain):
                    self._tables[table].delete_chain(chain)
        return removed + extra

    def _own_chains(self) -> list[tuple[str, str]]:
        """The chains that are the daemon's, all of their rules: DOCKER and isolation."""
        return [(self._nat, DOCKER_CHAIN), *((self._filter, c) for c in OWN_FILTER_CHAINS)]

    def _by_family(self, plan: BootPlan) -> tuple[BootPlan, BootPlan]:
        """This firewall's part of the plan, and the rest (IPv6's, or nothing of it)."""
        split = [self._split(rules) for rules in (plan.absent, plan.present, plan.jumps)]
        mine = BootPlan(*(tuple(rules) for rules, _ in split))
        return mine, BootPlan(*(tuple(rules) for _, rules in split))

    def _split(self, rules: Iterable[Rule]) -> tuple[list[Rule], list[Rule]]:
        """The rules of this firewall's tables, and the others (IPv6's)."""
        mine: list[Rule] = []
        others: list[Rule] = []
        for rule in rules:
            (mine if rule.table in self._tables else others).append(rule)
        return mine, others

    # -- what this daemon owns ------------------------------------------------------------

    def reconcile(self, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        """Make our places hold exactly ``desired``; what was added and what removed.

        "Our places" are the DOCKER chain and the isolation chains (all of them) and
        the FORWARD and POSTROUTING rules tagged ``dockernetd:``; a duplicate of a
        desired rule counts as extra.  One scan of those chains: for boot and
        repair, not per operation.  The isolation jump ends up first in FORWARD.
        """
        desired, desired6 = self._split(desired)
        missing6, extra6 = self._ip6.call("reconcile", desired6) if self._ip6 else ([], [])
        with self._commit(*self._tables):
            missing, extra = self._scan(desired, delete_extra=True)
            for rule in missing:
                self._insert(rule)
            handle = self._tables[self._filter]
            if self._jump in desired and not self._jump_first(handle):
                entry, mask = self._compiled(self._jump)
                handle.delete_entry("FORWARD", entry, mask)
                handle.insert_entry("FORWARD", entry, 0)
            self._drop_unused_chains(handle)
        return missing + missing6, extra + extra6

    def drift(self, plan: BootPlan, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        """What :meth:`setup` and :meth:`reconcile` would change, changing nothing.

        The boot and owned rules that are missing, and what is in our places that
        nothing owns.  Scans the chains: for ``verify``, not per operation.
        """
        plan, plan6 = self._by_family(plan)
        desired, desired6 = self._split(desired)
        missing6, extra6 = self._ip6.call("drift", plan6, desired6) if self._ip6 else ([], [])
        with self._commit():
            for table in self._tables.values():
                table.refresh()
            if not self._tables[self._nat].is_chain(DOCKER_CHAIN):
                return [*plan.present, *plan.jumps, *desired, *missing6], extra6
            boot = [r for r in (*plan.present, *plan.jumps) if not self._present(r)]
            missing, extra = self._scan(desired, delete_extra=False)
            return boot + missing + missing6, extra + extra6

    def _scan(self, desired: Iterable[Rule], *, delete_extra: bool) -> tuple[list[Rule], list[str]]:
        """The desired rules not found, and what no desired rule accounts for.

        A multiset: two mappings of one container port want the same FORWARD rule
        twice, and each is deleted with its own mapping.
        """
        by_key: dict[Any, Rule] = {}
        wanted: Counter[Any] = Counter()
        for rule in desired:
            key = _key(self._build(rule))
            by_key[key] = rule
            wanted[key] += 1
        extra: list[str] = []
        shared = {  # chains of everyone's: which of their rules are ours
            (self._filter, "FORWARD"): _is_tagged,
            (self._nat, "POSTROUTING"): _is_tagged,
            (self._nat, "OUTPUT"): _is_tagged,
            (self._raw, "PREROUTING"): _is_raw_guard,
        }
        own = self._own_chains()
        places = [*shared, *((t, c) for t, c in own if self._tables[t].is_chain(c))]
        for table, chain_name in places:
            chain = self._chain(table, chain_name)
            ours = shared.get((table, chain_name))
            for rule in chain.rules:
                if ours is not None and not ours(rule):
                    continue
                key = _key(rule)
                if wanted[key] > 0:
                    wanted[key] -= 1
                    continue
                extra.append(_describe(chain_name, rule))
                if delete_extra:
                    chain.delete_rule(rule)
        missing = [by_key[key] for key, count in wanted.items() for _ in range(count)]
        return missing, extra

    # -- per operation ------------------------------------------------------------------

    def apply(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None:
        """Insert rules at the top of their chains and delete owned ones, all or nothing.

        The changes of each table go in one commit.  If a later table's commit fails,
        the earlier tables are put back as they were before raising FirewallError.
        """
        insert, insert6 = self._split(insert)
        delete, delete6 = self._split(delete)
        done: list[str] = []
        tables = sorted({r.table for r in (*insert, *delete)})
        try:
            for table in tables:
                with self._commit(table):
                    self._change(table, insert, delete)
                done.append(table)
            if self._ip6 is not None and (insert6 or delete6):
                self._ip6.call("apply", insert6, delete6)  # all or nothing, as this
        except FirewallError:
            for table in done:  # undo: the inverse change of what was committed
                with contextlib.suppress(FirewallError), self._commit(table):
                    self._change(table, insert=delete, delete=insert)
            raise
        for rule in delete:
            log.debug("iptables -t %s -D %s", rule.table, rule.save_line()[3:])
        for rule in insert:
            log.debug("iptables -t %s -I %s", rule.table, rule.save_line()[3:])

    def _change(self, table: str, insert: Sequence[Rule], delete: Sequence[Rule]) -> None:
        handle = self._tables[table]
        for rule in delete:
            if rule.table == table:
                entry, mask = self._compiled(rule)
                handle.delete_entry(rule.chain, entry, mask)
        for rule in insert:
            if rule.table == table:
                self._insert(rule)
        if table == self._filter and self._jump in delete:
            self._drop_unused_chains(handle)

    def _insert(self, rule: Rule) -> None:
        """At the top of its chain, below the isolation jump; our chains made when needed.
        The raw table's guards are appended, as Docker 28 appends its own: below the
        cluster's exemption, which boot inserts at the top."""
        handle = self._tables[rule.table]
        if rule.table == self._raw:
            handle.append_entry(rule.chain, self._compiled(rule)[0])
            return
        if rule.table == self._filter and {rule.chain, rule.args[-1]} & set(OWN_FILTER_CHAINS):
            for name in OWN_FILTER_CHAINS:  # a rule in or a jump into one: both must exist
                if not handle.is_chain(name):
                    handle.create_chain(name)
        below_jump = rule.chain == "FORWARD" and rule != self._jump and self._jump_first(handle)
        entry, _ = self._compiled(rule)
        handle.insert_entry(rule.chain, entry, 1 if below_jump else 0)

    @staticmethod
    def _jump_first(handle: Any) -> bool:
        """Whether FORWARD's first rule is the jump into the isolation chains (no scan)."""
        first = handle.first_rule("FORWARD")
        return bool(first) and handle.get_target(first) == ISOLATION_1.encode()

    def _drop_unused_chains(self, handle: Any) -> None:
        """Delete our filter chains once they are empty and the jump into them is gone."""
        empty = all(handle.is_chain(c) and not handle.first_rule(c) for c in OWN_FILTER_CHAINS)
        if empty and not self._jump_first(handle):
            for chain in OWN_FILTER_CHAINS:  # stage 1 jumps to stage 2: it goes first
                handle.delete_chain(chain)

    # -- helpers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _commit(self, *tables: str) -> Iterator[None]:
        """Read the tables afresh, make the changes of the block, commit them.

        Reading first means changes made by others since our last commit are seen
        (and kept); a failure anywhere leaves the kernel as it was, and what was not
        committed is dropped at the next read.
        """
        started = time.perf_counter()
        self._noticed |= self._table_sizes() != self._seen  # before ours hides it
        try:
            with _xtables_lock():
                for name in tables:
                    self._tables[name].refresh()
                yield
                for name in tables:
                    self._tables[name].commit()
        except (self._iptc.IPTCError, self._iptc.xtables.XTablesError, OSError) as exc:
            raise FirewallError(_reason(exc)) from exc
        self._seen = self._table_sizes()  # our own change is not someone else's
        if self._commit_times is not None:
            self._commit_times.observe(tables, time.perf_counter() - started)

    def _chain(self, table: str, chain: str) -> Any:
        return self._iptc.Chain(self._tables[table], chain)

    def _build(self, rule: Rule, *, normalise: bool = True) -> Any:
        """An iptc.Rule from save-form arguments (only the forms rules.py writes).

        ``normalise`` runs python-iptables' whole final_check, as its own
        insert_rule and delete_rule do: for boot and verify, which compare with
        rules read from the kernel.  Without it only xtables' own final checks run
        (see :meth:`_compile`).
        """
        built = self._rule_class()
        part: Any = None  # the match or target that --options belong to
        negate = False
        args = iter(rule.args)
        for arg in args:
            if arg == "!":
                negate = True
                continue
            value = next(args)
            if arg in _RULE_FIELDS:
                value = _PROTOCOLS.get(value, value)
                setattr(built, _RULE_FIELDS[arg], f"!{value}" if negate else value)
            elif arg == "-m":
                part = built.create_match(value)
            elif arg == "-j":
                part = built.create_target(value)
            else:
                part.set_parameter(arg[2:], value)
            negate = False
        if normalise:
            built.final_check()
        else:
            for part in (*built.matches, built.target):
                part._final_check()  # python-iptables 1.2: the extension's xtables check alone
        return built

    def _compile(self, rule: Rule) -> tuple[Any, Any]:
        """The kernel's bytes of a rule and the mask that finds it again (for delete).

        Without python-iptables' final_check, which prints every match and target
        through its save function, reads that back through a pipe and parses it
        again: 40 % of a compile, and for the rules rules.py writes it changes no
        byte (integration/test_firewall.py compares both for every shape).
        """
        built = self._build(rule, normalise=False)
        return built.rule, built.mask

    def _present(self, rule: Rule) -> bool:
        """A scan of the chain: for boot only, never per operation."""
        built = self._build(rule)
        return any(existing == built for existing in self._chain(rule.table, rule.chain).rules)

    def _delete_if_present(self, rule: Rule) -> None:
        if self._present(rule):
            self._chain(rule.table, rule.chain).delete_rule(self._build(rule))


def _is_tagged(rule: Any) -> bool:
    """Whether an iptc rule's comment says a dockernetd owns it."""
    return any(m.name == "comment" and str(m.comment).startswith(OWNER_TAG) for m in rule.matches)


def _is_raw_guard(rule: Any) -> bool:
    return _is_tagged(rule) or _is_guard(rule)


def _is_guard(rule: Any) -> bool:
    """Whether a raw PREROUTING rule has the shape of our guards, which are untagged as
    Docker 28's are: a DROP of one destination address arriving not on one interface
    (a container's address off its bridge, or a loopback port off lo), or of a dual-stack
    network's IPv6 subnet off its bridge."""
    return (
        rule.target.name == "DROP"
        and (rule.dst.endswith("/255.255.255.255") or (":" in rule.dst and rule.dst != "::/0"))
        and rule.in_interface is not None
        and rule.in_interface.startswith("!")
    )


def _key(rule: Any) -> tuple[Any, ...]:
    """What makes two iptc rules the same rule, as hashable values."""

    def params(part: Any) -> tuple[Any, ...]:
        return tuple(sorted((k, tuple(v)) for k, v in part.get_all_parameters().items()))

    return (
        rule.src,
        rule.dst,
        rule.in_interface,
        rule.out_interface,
        rule.protocol,
        tuple((m.name, params(m)) for m in rule.matches),
        rule.target.name,
        params(rule.target),
    )


def _describe(chain: str, rule: Any) -> str:
    """An iptc rule for a report, close to iptables-save's form."""
    words = [f"-A {chain}"]
    for flag, value in (
        ("-s", rule.src),
        ("-d", rule.dst),
        ("-i", rule.in_interface),
        ("-o", rule.out_interface),
        ("-p", rule.protocol),
    ):
        if value and value not in ("0.0.0.0/0.0.0.0", "::/0", "ip"):
            words.append(f"! {flag} {value[1:]}" if value.startswith("!") else f"{flag} {value}")
    for m in rule.matches:
        words.append(f"-m {m.name}")
        words.extend(f"--{k} {' '.join(v)}" for k, v in m.get_all_parameters().items())
    words.append(f"-j {rule.target.name}")
    words.extend(f"--{k} {' '.join(v)}" for k, v in rule.target.get_all_parameters().items())
    return " ".join(words)


@contextlib.contextmanager
def _xtables_lock() -> Iterator[None]:
    fd = _open_lock_file()
    if fd is None:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FirewallError(
                        f"another app is holding the xtables lock ({XTABLES_LOCK})"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


_lock_warned = False


def _open_lock_file() -> int | None:
    """The lock file, read-only is enough for flock; None if it cannot exist here."""
    global _lock_warned
    try:
        return os.open(XTABLES_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        return os.open(XTABLES_LOCK, os.O_RDONLY | os.O_CREAT, 0o600)
    except OSError as exc:  # e.g. a read-only /run under ProtectSystem=strict
        if not _lock_warned:
            log.warning("not taking %s: %s", XTABLES_LOCK, exc.strerror)
            _lock_warned = True
        return None


def _reason(exc: BaseException) -> str:
    """iptc's message without its bytes reprs: "can't commit: Resource temporarily unavailable"."""
    return re.sub(r"b'([^']*)'", r"\1", str(exc)) or type(exc).__name__
